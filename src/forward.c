/* forward.c - the one forward path: decode (the wire format's), the result buffers, the forward
 * pass, the output head, encode (the wire format's again). Every route that runs a model comes
 * through here, whatever it speaks; the wait for compute is the seam between api_decode and
 * api_finish, where a scheduler may merge calls into one engine pass. */
#include "rnnserve/api.h"

#include <stdlib.h>

#include "wire.h"

struct api_call {
    const api_wire *w;
    const rnn_model *model;
    const rnn_info *info;
    void *req; /* the format's decoded request; owns the batch */
    wire_decoded d;
    rnn_result res;    /* owned */
    size_t header_len; /* the response's JSON header, when binary tensors follow it */
};

const char *api_wire_content_type(const api_wire *w)
{
    (void)w; /* both formats are JSON; a binary response says so itself (api_call_content_type) */
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
    if ((parts & WIRE_PREDICTIONS) &&
        !(c->res.predictions =
              malloc((c->d.steps * (size_t)c->info->head_size + 1) * sizeof(float))))
        return wire_fail(e, 503, "out of memory for the predictions of %zu steps", c->d.steps);
    if ((parts & WIRE_HIDDEN) && !(c->res.hidden = malloc((n_hid ? n_hid : 1) * sizeof(float))))
        goto oom;
    if ((parts & WIRE_CELL) && !(c->res.cell = malloc((n_cell ? n_cell : 1) * sizeof(float))))
        goto oom;
    return 0;
oom:
    return wire_fail(e, 503, "out of memory for the results of %zu steps", c->d.steps);
}

int api_decode(const api_wire *w, const rnn_model *model, const char *body, size_t len,
               const api_limits *lim, api_call **out, char **errbody, size_t *errlen)
{
    return api_decode_framed(w, model, body, len, NULL, lim, out, errbody, errlen);
}

int api_decode_framed(const api_wire *w, const rnn_model *model, const char *body, size_t len,
                      const api_framing *f, const api_limits *lim, api_call **out, char **errbody,
                      size_t *errlen)
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
    if (w->decode(body, len, f, c->info, lim, &c->req, &c->d, &e) < 0 || alloc_results(c, &e) < 0)
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
        f += 2.0 * DH * in->head_size * (double)c->d.steps;
    return f;
}

size_t api_call_response_bytes(const api_call *c)
{
    return c->w->response_bytes(c->req, c->info);
}

size_t api_call_header_len(const api_call *c)
{
    return c->header_len;
}

const char *api_call_content_type(const api_call *c)
{
    return c->header_len ? "application/octet-stream" : api_wire_content_type(c->w);
}

char *api_call_error_body(const api_call *c, int status, const char *message, size_t *len)
{
    return c->w->encode_error(status, message, len);
}

int api_finish(api_call *c, char **out, size_t *outlen, api_stats *stats)
{
    wire_error e = {500, ""};
    buf b = BUF_INIT;
    *out = NULL;
    *outlen = 0;
    c->header_len = 0;
    if (stats) {
        stats->sequences = c->d.batch->batch;
        stats->steps = c->d.steps;
    }
    if (c->res.predictions &&
        rnn_head_forward(c->model, c->res.outputs, c->d.steps, c->res.predictions) < 0) {
        wire_fail(&e, 500, "the output head failed");
        goto fail;
    }
    if (c->w->encode(c->req, c->info, &c->res, &b, &c->header_len, &e) < 0)
        goto fail;
    if (!(*out = buf_take(&b, outlen))) {
        wire_fail(&e, 500, "out of memory encoding the response");
        goto fail;
    }
    return 200;
fail:
    c->header_len = 0;
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
