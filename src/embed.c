/* embed.c - the input embedding lookup: token ids to rows of a batch's x.
 *
 * The table is the model's (model.c loads and checks it); this is the one place that reads it,
 * for every wire format. */
#include "rnnserve/embed.h"

#include <stdio.h>
#include <string.h>

#include "model_impl.h"

const float *rnn_embed_row(const rnn_model *m, int32_t id)
{
    if (!m->embed || id < 0 || id >= m->info.vocab_size)
        return NULL;
    return m->embed + (size_t)id * (size_t)m->info.input_size;
}

int rnn_embed_rows(const rnn_model *m, const int32_t *ids, size_t n, float *x, char *err,
                   size_t errlen)
{
    const size_t I = (size_t)m->info.input_size;
    for (size_t k = 0; k < n; k++) {
        const float *row = rnn_embed_row(m, ids[k]);
        if (!row) {
            if (!m->embed)
                snprintf(err, errlen, "model \"%s\" has no embedding", m->info.name);
            else
                snprintf(err, errlen, "token %zu: id %d is outside [0, %d)", k, (int)ids[k],
                         m->info.vocab_size);
            return -1;
        }
        memcpy(x + k * I, row, I * sizeof *x);
    }
    return 0;
}
