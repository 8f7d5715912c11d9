/* session_generate.c - POST /v1/sessions/{id}/generate: the generate route (generate_routes.c)
 * with the session's state as the one prompt's h0/c0, the session held from before decoding until
 * the generation ends, and then its final state written back and its steps advanced (unchanged
 * on any failure or cancellation), before the client can read the answer's end. */
#include <stdlib.h>
#include <string.h>

#include "generate_routes.h"
#include "rnnserve/buf.h"
#include "session_routes.h"

/* The held session while its generation runs: malloc'ed here, freed by settle (which may run on
 * a compute thread after the request itself has completed, as a stream's does). */
typedef struct {
    sess_table *t;
    sess_ref *ref;
    char id[SESS_ID_LEN + 1];
} held;

/* gen_from.settle: the state and steps advance only when the answer carries them. */
static void settle(void *ctx, int ok, const float *hidden, const float *cell, uint64_t advanced,
                   api_gen_call *answer)
{
    held *h = ctx;
    const sess_shape *sh = sess_shape_of(h->ref);
    const size_t n = (size_t)sh->rows * (size_t)sh->hidden;
    if (ok) {
        memcpy(sess_state_h(h->ref), hidden, n * sizeof(float));
        if (sh->has_cell)
            memcpy(sess_state_c(h->ref), cell, n * sizeof(float));
        buf m = BUF_INIT;
        buf_puts(&m, "\"session\":");
        buf_json_string(&m, h->id);
        buf_printf(&m, ",\"steps\":%llu", (unsigned long long)(sess_steps(h->ref) + advanced));
        size_t len;
        char *members = buf_take(&m, &len);
        api_gen_extra_fields(answer, members); /* NULL: the answer fails, out of memory */
        free(members);
    }
    sess_release(h->t, h->ref, ok ? advanced : 0, SESS_KEEP);
    free(h);
}

enum MHD_Result session_generate_handle(req *r)
{
    sess_ref *ref;
    const rnn_model *m;
    enum MHD_Result ret;
    if (sr_acquire(r, &ref, &m, &ret))
        return ret;
    held *h = malloc(sizeof *h);
    if (!h) {
        sess_release(r->s->sessions, ref, 0, SESS_KEEP);
        return http_respond_error(r, 503, NULL, "out of memory for a session's generate");
    }
    *h = (held){r->s->sessions, ref, {0}};
    memcpy(h->id, r->session, strlen(r->session) + 1);
    r->model = m;
    const gen_from from = {sess_state_h(ref), sess_state_c(ref), settle, h};
    return generate_from(r, &from);
}
