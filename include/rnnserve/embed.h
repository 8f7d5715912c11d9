/* embed.h - a token model's input embedding: ids to the rows the engine reads.
 *
 * A model loaded with an "embedding" (an nn.Embedding's weight, V x input_size) takes token ids;
 * their rows are looked up straight into a batch's x, exactly the floats PyTorch's Embedding
 * returns, so a token request and the same request sent as embedded floats run the same pass. */
#ifndef RNNSERVE_EMBED_H
#define RNNSERVE_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "rnnserve/model.h"

/* Writes the embedding rows of IDS[0..N) into X (room for N * input_size floats), row k being
 * id k's. Returns 0, or -1 with a message naming the first id outside [0, vocab_size) (or the
 * model having no embedding) in err[errlen]; X is then partly written. Thread-safe. */
int rnn_embed_rows(const rnn_model *m, const int32_t *ids, size_t n, float *x, char *err,
                   size_t errlen);

/* The embedding's row for ID (input_size floats), borrowed from the model; NULL when ID is out
 * of range or the model has none. */
const float *rnn_embed_row(const rnn_model *m, int32_t id);

#endif
