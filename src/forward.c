/* forward.c - the one forward path: decode (the wire format's), a token request's embedding, the
 * result buffers, the forward pass, only_last's rows, the output head, encode (the wire format's
 * again). Every route that runs a model comes through here, whatever it speaks; the wait for
 * compute is the seam between api_decode and api_finish, where a scheduler may merge calls into
 * one engine pass (it sees the embedded rows: api_call_batch's x). */
#include "rnnserve/api.h"

#include <stdlib.h>
#include <string.h>

#include "rnnserve/embed.h"
#include "wire.h"

struct api_call {
    const api_wire *w;
    const rnn_model *model;
    const rnn_info *info;
    void *req; /* the format's decoded request; owns the batch's lengths and states */
    wire_decoded d;
    rnn_batch batch;       /* the format's batch, with x the embedded rows for a token request */
    float *x;              /* owned: a token request's embedded rows (steps, I); NULL otherwise */
    rnn_result res;        /* owned; what the engine fills */
    float *last;           /* owned, only_last: (B, D*H) the outputs at each sequence's last step */
    rnn_batch state_batch; /* the batch with a session's state in it (api_call_use_state) */
    char *extra;           /* members api_finish appends (api_call_extra_fields), owned */
};

const char *api_wire_content_type(const api_wire *w)
{
    (void)w; /* both formats are JSON today; a binary one would say otherwise */
    return "application/json";
}

char *api_error_body(const api_wire *w, int status, const char *message, size_t *len)
{
    return w->encode_error(status, message, len);
}

char *api_model_metadata(const api_wire *w, const rnn_info *info, int is_default, size_t *len)
{
    return w->metadata(info, is_default, len);
}

int64_t api_call_timeout_us(const api_call *c)
{
    return c->d.timeout_us;
}

void api_call_free(api_call *c)
{
    if (!c)
        return;
    if (c->req)
        c->w->free_req(c->req);
    free(c->res.outputs);
    free(c->res.hidden);
    free(c->res.cell);
    free(c->res.predictions);
    free(c->x);
    free(c->last);
    free(c->extra);
    free(c);
}

/* The result buffers for C's parts. Unwanted parts stay NULL: the engine then keeps them in
 * scratch only. The head reads the outputs, so they are kept whenever predictions are wanted. */
static int alloc_results(api_call *c, wire_error *e)
{
    const unsigned parts = c->d.parts;
    size_t n_out, n_hid, n_cell;
    rnn_result_sizes(c->model, c->d.batch, &n_out, &n_hid, &n_cell);
    if ((parts & (WIRE_OUTPUTS | WIRE_PREDICTIONS)) &&
        !(c->res.outputs = malloc((n_out ? n_out : 1) * sizeof(float))))
        goto oom;
    /* only_last: the head runs on one row per sequence, gathered into last */
    const size_t B = c->batch.batch, rows = c->d.only_last ? B : c->d.steps;
    const size_t DH = (size_t)(c->info->num_directions * c->info->hidden_size);
    if (c->d.only_last && (parts & (WIRE_OUTPUTS | WIRE_PREDICTIONS)) &&
        !(c->last = malloc((B * DH + 1) * sizeof(float))))
        goto oom;
    if ((parts & WIRE_PREDICTIONS) &&
        !(c->res.predictions = malloc((rows * (size_t)c->info->head_size + 1) * sizeof(float))))
        return wire_fail(e, 503, "out of memory for the predictions of %zu steps", rows);
    if ((parts & WIRE_HIDDEN) && !(c->res.hidden = malloc((n_hid ? n_hid : 1) * sizeof(float))))
        goto oom;
    if ((parts & WIRE_CELL) && !(c->res.cell = malloc((n_cell ? n_cell : 1) * sizeof(float))))
        goto oom;
    return 0;
oom:
    return wire_fail(e, 503, "out of memory for the results of %zu steps", c->d.steps);
}

/* A token request's ids, looked up into the batch's x: the only copy of its inputs. */
static int embed(api_call *c, wire_error *e)
{
    char msg[128];
    const size_t I = (size_t)c->info->input_size;
    if (!(c->x = malloc((c->d.steps * I + 1) * sizeof(float))))
        return wire_fail(e, 503, "out of memory for the inputs of %zu steps", c->d.steps);
    if (rnn_embed_rows(c->model, c->d.tokens, c->d.steps, c->x, msg, sizeof msg) < 0)
        return wire_fail(e, 500, "embedding: %s", msg); /* the decoder checked every id */
    c->batch.x = c->x;
    return 0;
}

int api_decode(const api_wire *w, const rnn_model *model, const char *body, size_t len,
               const api_limits *lim, api_call **out, char **errbody, size_t *errlen)
{
    wire_error e = {500, "out of memory"};
    api_call *c = calloc(1, sizeof *c);
    *out = NULL;
    *errbody = NULL;
    *errlen = 0;
    if (!c)
        goto fail;
    c->w = w;
    c->model = model;
    c->info = rnn_model_info(model);
    if (w->decode(body, len, c->info, lim, &c->req, &c->d, &e) < 0)
        goto fail;
    c->batch = *c->d.batch;
    c->d.batch = &c->batch;
    if (c->d.tokens && embed(c, &e) < 0)
        goto fail;
    if (alloc_results(c, &e) < 0)
        goto fail;
    *out = c;
    return 200;
fail:
    api_call_free(c);
    *errbody = w->encode_error(e.status, e.message, errlen);
    return e.status;
}

const rnn_batch *api_call_batch(const api_call *c)
{
    return c->d.batch;
}

const rnn_model *api_call_model(const api_call *c)
{
    return c->model;
}

rnn_result *api_call_result(api_call *c)
{
    return &c->res;
}

double api_call_flops(const api_call *c)
{
    /* per step and direction: the gates' two matrix products, layer 0 on the input, the others
     * on the layer below's D*H outputs; then the head's product on the top layer's outputs */
    const rnn_info *in = c->info;
    const double gh = (double)in->gates * in->hidden_size;
    const double DH = (double)in->num_directions * in->hidden_size;
    const double step = 2.0 * in->num_directions *
                        (gh * (in->input_size + in->hidden_size) +
                         (in->num_layers - 1) * gh * (DH + in->hidden_size));
    double f = step * (double)c->d.steps;
    if (c->d.parts & WIRE_PREDICTIONS)
        f += 2.0 * DH * in->head_size * (double)(c->d.only_last ? c->batch.batch : c->d.steps);
    return f;
}

size_t api_call_response_bytes(const api_call *c)
{
    return c->w->response_bytes(c->req, c->info) + (c->extra ? strlen(c->extra) + 1 : 0);
}

int api_call_use_state(api_call *c, const float *h0, const float *c0)
{
    size_t n_out, n_hid, n_cell;
    rnn_result_sizes(c->model, c->d.batch, &n_out, &n_hid, &n_cell);
    if (!c->res.hidden && !(c->res.hidden = malloc((n_hid ? n_hid : 1) * sizeof(float))))
        return -1;
    if (n_cell && !c->res.cell && !(c->res.cell = malloc(n_cell * sizeof(float))))
        return -1;
    /* A copy of the format's batch: the request keeps its own h0/c0 (freed with it). */
    c->state_batch = *c->d.batch;
    c->state_batch.h0 = h0;
    c->state_batch.c0 = n_cell ? c0 : NULL;
    c->d.batch = &c->state_batch;
    return 0;
}

int api_call_extra_fields(api_call *c, const char *json_members)
{
    char *e = strdup(json_members);
    if (!e)
        return -1;
    free(c->extra);
    c->extra = e;
    return 0;
}

const api_sequence *api_call_sequence(const api_call *c)
{
    return &c->d.seq;
}

char *api_call_error_body(const api_call *c, int status, const char *message, size_t *len)
{
    return c->w->encode_error(status, message, len);
}

/* only_last: each sequence's row at its own last step (for a bidirectional model the backward
 * half there has seen that one element only), zeros for an empty sequence, into last. */
static void gather_last(api_call *c)
{
    const size_t DH = (size_t)(c->info->num_directions * c->info->hidden_size);
    size_t row = 0;
    for (size_t i = 0; i < c->batch.batch; i++) {
        const size_t T = (size_t)c->batch.lengths[i];
        if (T)
            memcpy(c->last + i * DH, c->res.outputs + (row + T - 1) * DH, DH * sizeof(float));
        else
            memset(c->last + i * DH, 0, DH * sizeof(float));
        row += T;
    }
}

int api_finish(api_call *c, char **out, size_t *outlen, api_stats *stats)
{
    wire_error e = {500, ""};
    buf b = BUF_INIT;
    *out = NULL;
    *outlen = 0;
    if (stats) {
        stats->sequences = c->d.batch->batch;
        stats->steps = c->d.steps;
    }
    rnn_result shown = c->res;
    if (c->last) {
        gather_last(c);
        shown.outputs = c->last;
    }
    const size_t rows = c->last ? c->batch.batch : c->d.steps;
    if (shown.predictions &&
        rnn_head_forward(c->model, shown.outputs, rows, shown.predictions) < 0) {
        wire_fail(&e, 500, "the output head failed");
        goto fail;
    }
    if (c->last && shown.predictions) {
        /* an empty sequence has no last step: its row stays zeros, not the head of zeros */
        const size_t O = (size_t)c->info->head_size;
        for (size_t i = 0; i < c->batch.batch; i++)
            if (c->batch.lengths[i] == 0)
                memset(shown.predictions + i * O, 0, O * sizeof(float));
    }
    if (c->w->encode(c->req, c->info, &shown, &b, &e) < 0)
        goto fail;
    if (c->extra && b.len && b.data[b.len - 1] == '}') { /* both formats answer an object */
        b.len--;
        buf_putc(&b, ',');
        buf_puts(&b, c->extra);
        buf_putc(&b, '}');
    }
    if (!(*out = buf_take(&b, outlen))) {
        wire_fail(&e, 500, "out of memory encoding the response");
        goto fail;
    }
    return 200;
fail:
    buf_free(&b);
    *out = c->w->encode_error(e.status, e.message, outlen);
    return e.status;
}

int api_compute_and_finish(api_call *c, char **out, size_t *outlen, api_stats *stats)
{
    char msg[256];
    if (rnn_forward(c->model, c->d.batch, &c->res, msg, sizeof msg) < 0) {
        wire_error e;
        wire_fail(&e, 503, "forward pass failed: %s", msg);
        if (stats) {
            stats->sequences = c->d.batch->batch;
            stats->steps = c->d.steps;
        }
        *out = c->w->encode_error(e.status, e.message, outlen);
        return e.status;
    }
    return api_finish(c, out, outlen, stats);
}

int api_forward(const api_wire *w, const rnn_model *model, const char *body, size_t len,
                const api_limits *lim, char **out, size_t *outlen, api_stats *stats)
{
    api_call *c;
    if (stats)
        stats->sequences = stats->steps = 0;
    const int status = api_decode(w, model, body, len, lim, &c, out, outlen);
    if (status != 200)
        return status;
    const int st = api_compute_and_finish(c, out, outlen, stats);
    api_call_free(c);
    return st;
}
