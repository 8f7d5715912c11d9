/* wire_generate.c - the generate request's wire format behind api.h (api_gen_*): v1's forward
 * body plus the generate fields -> the generation's prompt and parameters, its cost, the run
 * (generate.c) into its own buffers, and the answer and each streamed step's event data as JSON.
 *
 * The HTTP layer (generate_routes.c) owns the request, the scheduler job and the streaming; it
 * hands this file the body and gets bodies back, plain or one event's data at a time. */
#include "rnnserve/api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnserve/buf.h"
#include "rnnserve/floatfmt.h"
#include "rnnserve/generate.h"
#include "wire.h"

/* Values (ids, or floats of forecast rows) one request may generate: about what a padded
 * forward response may hold (wire.h's WIRE_PAD_FLOOR, 4 times), so that a small body cannot
 * ask for gigabytes. */
#define MAX_VALUES ((size_t)4 << 20)

/* The fields generate adds to a forward body, for the unknown-field message. */
#define FIELD_NAMES                                                                                \
    "\"steps\", \"temperature\", \"top_k\", \"seed\", \"stream\", \"precision\", \"timeout_ms\""

/* One decoded generate request, its results and its answer being encoded. */
struct api_gen_call {
    /* decoded */
    const rnn_model *model;
    const rnn_info *info;
    size_t max_steps;
    wire_v1_request *fwd; /* the prompt batch, h0/c0, precision, timeout */
    const rnn_batch *pb;  /* the prompt batch: fwd's, or FROM_BATCH */
    bool has_from;
    rnn_batch from_batch; /* fwd's batch with the given state as h0/c0 */
    rnn_gen_params p;
    rnn_gen_mode mode;
    bool steps_seen, temperature_seen, top_k_seen, seed_seen, stream_seen, stream;
    bool err_set;
    wire_error err; /* the first error in the generate fields */
    /* results */
    int32_t *tokens;
    float *forecast, *hidden, *cell;
    size_t n_hidden;
    /* a streamed run: each step's event data goes to EMIT */
    int (*emit)(void *ctx, const char *data, size_t len);
    void *emit_ctx;
    buf ev; /* the step event's data being encoded */
    char run_err[512];
    /* the answer between api_gen_encode and api_gen_answer */
    buf ans;
    bool encoded;
};

void api_gen_free(api_gen_call *c)
{
    if (!c)
        return;
    wire_v1_free(c->fwd);
    free(c->tokens);
    free(c->forecast);
    free(c->hidden);
    free(c->cell);
    buf_free(&c->ev);
    buf_free(&c->ans);
    free(c);
}

char *api_gen_error_body(int status, const char *message, size_t *len)
{
    return api_error_body(api_wire_v1(), status, message, len);
}

/* ---------------------------------------------------------------------------------------------
 * Decoding: the generate fields, read by the v1 decoder's hook */

/* The number at the cursor as a double with its text in [*tok, *end): 0, 1 when the value is
 * not a number (skipped; the caller names it), -1 when the reader failed. */
static int read_number(js_reader *js, double *v, const char **tok, const char **end)
{
    if (js_peek(js) != JS_NUMBER)
        return js_skip(js, 2) < 0 ? -1 : 1;
    float f;
    int rc = js_number(js, 2, &f, tok, end);
    if (rc < 0)
        return -1;
    char text[64];
    size_t n = (size_t)(*end - *tok) < sizeof text - 1 ? (size_t)(*end - *tok) : sizeof text - 1;
    memcpy(text, *tok, n);
    text[n] = '\0';
    *v = strtod(text, NULL);
    return 0;
}

/* The first error in the generate fields is kept (the forward decoder's own come first). */
#define GEN_FAIL(g, ...) wire_first(&(g)->err, &(g)->err_set, 400, __VA_ARGS__)

/* "seed": an unsigned 64-bit integer, written as digits (a double cannot hold every seed). */
static int read_seed(api_gen_call *g, js_reader *js)
{
    double v;
    const char *tok, *end;
    int rc = read_number(js, &v, &tok, &end);
    if (rc < 0)
        return -1;
    uint64_t s = 0;
    int ok = rc == 0 && tok < end && end - tok <= 20;
    for (const char *c = tok; ok && c < end; c++) {
        unsigned d = (unsigned)(*c - '0');
        ok = d <= 9 && s <= (UINT64_MAX - d) / 10;
        s = s * 10 + d;
    }
    if (!ok)
        GEN_FAIL(g, "seed: expected an unsigned integer below 2^64, written as digits");
    g->p.seed = s;
    return 0;
}

static int gen_field(void *ctx, const js_str *key, js_reader *js)
{
    api_gen_call *g = ctx;
    double v = 0;
    const char *tok, *end;
    int rc;
    const double max_steps = (double)g->max_steps;
    if (js_str_eq(key, "steps") && !g->steps_seen) {
        g->steps_seen = true;
        if ((rc = read_number(js, &v, &tok, &end)) < 0)
            return -1;
        if (rc || v != floor(v) || v < 1 || v > max_steps)
            GEN_FAIL(g, "steps: expected an integer from 1 to %.0f (the server's max_steps)",
                     max_steps);
        else
            g->p.steps = (size_t)v;
    } else if (js_str_eq(key, "temperature") && !g->temperature_seen) {
        g->temperature_seen = true;
        if ((rc = read_number(js, &v, &tok, &end)) < 0)
            return -1;
        if (rc || !(v >= 0) || !isfinite(v))
            GEN_FAIL(g, "temperature: expected a number >= 0 (0: the likeliest id)");
        else
            g->p.temperature = v;
    } else if (js_str_eq(key, "top_k") && !g->top_k_seen) {
        g->top_k_seen = true;
        if ((rc = read_number(js, &v, &tok, &end)) < 0)
            return -1;
        if (rc || v != floor(v) || v < 0 || v > 2147483647.0)
            GEN_FAIL(g, "top_k: expected an integer >= 0 (0: no cut)");
        else
            g->p.top_k = (size_t)v;
    } else if (js_str_eq(key, "seed") && !g->seed_seen) {
        g->seed_seen = true;
        return read_seed(g, js) < 0 ? -1 : 1;
    } else if (js_str_eq(key, "stream") && !g->stream_seen) {
        g->stream_seen = true;
        if (js_peek(js) == JS_BOOL)
            g->stream = *js->p == 't';
        else
            GEN_FAIL(g, "stream: expected true or false");
        return js_skip(js, 2) < 0 ? -1 : 1;
    } else if (g->has_from && (js_str_eq(key, "h0") || js_str_eq(key, "c0"))) {
        char name[4];
        js_str_copy(key, name, sizeof name);
        GEN_FAIL(g,
                 "%s: a session's state is the server's: its generate takes no h0 or c0 (start "
                 "a new session from a state instead)",
                 name);
        return js_skip(js, 2) < 0 ? -1 : 1;
    } else if (js_str_eq(key, "return") || js_str_eq(key, "layout") ||
               js_str_eq(key, "only_last")) {
        char name[32];
        js_str_copy(key, name, sizeof name);
        GEN_FAIL(g,
                 "%s: not a generate field (the answer is always the generated ids or rows and "
                 "the final hidden/cell)",
                 name);
        return js_skip(js, 2) < 0 ? -1 : 1;
    } else {
        return 0;
    }
    return 1;
}

/* Frees G and returns STATUS with the error body for E in *errbody. */
static int refuse(api_gen_call *g, const wire_error *e, char **errbody, size_t *errlen)
{
    api_gen_free(g);
    *errbody = api_gen_error_body(e->status, e->message, errlen);
    return e->status;
}

int api_gen_decode(const rnn_model *model, const char *body, size_t len, const api_limits *lim,
                   const api_gen_state *from, api_gen_call **out, char **errbody, size_t *errlen)
{
    *out = NULL;
    *errbody = NULL;
    *errlen = 0;
    wire_error e;
    api_gen_call *g = calloc(1, sizeof *g);
    if (!g) {
        wire_fail(&e, 500, "out of memory");
        return refuse(NULL, &e, errbody, errlen);
    }
    g->has_from = from != NULL;
    g->model = model;
    g->info = rnn_model_info(model);
    g->max_steps = lim->max_steps;
    g->p.temperature = 1.0;
    char msg[512];
    wire_v1_fields more = {gen_field, g, FIELD_NAMES};
    if (wire_v1_decode_with(body, len, g->info, lim, &more, &g->fwd, &e) == 0 && g->err_set)
        e = g->err;
    if (!g->fwd || g->err_set)
        return refuse(g, &e, errbody, errlen);
    if ((g->mode = rnn_gen_mode_of(g->model, msg, sizeof msg)) == RNN_GEN_NONE) {
        wire_fail(&e, 400, "%s", msg);
        return refuse(g, &e, errbody, errlen);
    }
    if (!g->steps_seen) {
        wire_fail(&e, 400,
                  "steps: missing (expected how many ids or rows to generate, from 1 to %zu)",
                  lim->max_steps);
        return refuse(g, &e, errbody, errlen);
    }
    const rnn_batch *pb = g->pb = wire_v1_batch(g->fwd);
    if (g->has_from) {
        if (pb->batch != 1) {
            wire_fail(&e, 400,
                      "%s: a session generates from one sequence, got %zu (send one prompt, "
                      "which may be empty: [[]])",
                      g->info->vocab_size > 0 ? "tokens" : "inputs", pb->batch);
            return refuse(g, &e, errbody, errlen);
        }
        g->from_batch = *pb;
        g->from_batch.h0 = from->h0;
        g->from_batch.c0 = from->c0;
        pb = g->pb = &g->from_batch;
    }
    for (size_t b = 0; b < pb->batch && !pb->h0; b++)
        if (pb->lengths[b] == 0) {
            wire_fail(&e, 400,
                      "%s[%zu]: an empty prompt and no h0: nothing to predict the first step "
                      "from (send at least one step, or an h0 to continue from)",
                      g->info->vocab_size > 0 ? "tokens" : "inputs", b);
            return refuse(g, &e, errbody, errlen);
        }
    if (rnn_gen_check(g->model, pb, wire_v1_tokens(g->fwd), &g->p, msg, sizeof msg) < 0) {
        wire_fail(&e, 400, "%s", msg);
        return refuse(g, &e, errbody, errlen);
    }
    const size_t width = g->mode == RNN_GEN_TOKENS ? 1 : (size_t)g->info->input_size;
    if (pb->batch * g->p.steps * width > MAX_VALUES) {
        wire_fail(&e, 413,
                  "steps: %zu sequences x %zu steps x %zu values is over the %zu values one "
                  "generate request may produce",
                  pb->batch, g->p.steps, width, MAX_VALUES);
        return refuse(g, &e, errbody, errlen);
    }
    size_t nt, nf, nc;
    rnn_gen_sizes(g->model, pb->batch, g->p.steps, &nt, &nf, &g->n_hidden, &nc);
    if (g->mode == RNN_GEN_TOKENS)
        g->tokens = malloc((nt ? nt : 1) * sizeof *g->tokens);
    else
        g->forecast = malloc((nf ? nf : 1) * sizeof *g->forecast);
    g->hidden = malloc((g->n_hidden ? g->n_hidden : 1) * sizeof *g->hidden);
    g->cell = nc ? malloc(nc * sizeof *g->cell) : NULL;
    if (!(g->tokens || g->forecast) || !g->hidden || (nc && !g->cell)) {
        wire_fail(&e, 500, "out of memory");
        return refuse(g, &e, errbody, errlen);
    }
    *out = g;
    return 200;
}

const rnn_batch *api_gen_batch(const api_gen_call *c)
{
    return c->pb;
}

void api_gen_stats(const api_gen_call *c, api_stats *stats)
{
    stats->sequences = c->pb->batch;
    stats->steps = wire_v1_steps(c->fwd) + c->pb->batch * c->p.steps;
}

/* Estimated FLOPs of the whole generation: the prompt's steps and B per generated step, each
 * a step of every layer (and the head). */
double api_gen_flops(const api_gen_call *c)
{
    const rnn_info *in = c->info;
    const double G = in->gates, H = in->hidden_size;
    double step = 0;
    for (int l = 0; l < in->num_layers; l++)
        step += 2.0 * G * H * ((l ? H : in->input_size) + H);
    step += 2.0 * in->head_size * H;
    return step * (double)(wire_v1_steps(c->fwd) + c->pb->batch * c->p.steps);
}

int64_t api_gen_timeout_us(const api_gen_call *c)
{
    return wire_v1_timeout_us(c->fwd);
}

int api_gen_stream(const api_gen_call *c)
{
    return c->stream_seen ? c->stream : -1;
}

const float *api_gen_hidden(const api_gen_call *c)
{
    return c->hidden;
}

const float *api_gen_cell(const api_gen_call *c)
{
    return c->cell;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding (on the compute thread) */

/* N floats of V as a JSON array at DIGITS; -1 at a value JSON cannot carry (*bad its index). */
static int put_floats(buf *b, const float *v, size_t n, int digits, size_t *bad)
{
    char num[FF_MAX_LEN];
    buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) {
            *bad = i;
            return -1;
        }
        if (i)
            buf_putc(b, ',');
        buf_append(b, num, ff_format_f32_prec(v[i], digits, num));
    }
    buf_putc(b, ']');
    return 0;
}

/* The states (B, L, H) as v1 writes them (and reads h0/c0): per sequence, its L rows of H.
 * -1 when a value is not finite. */
static int put_states(buf *b, const char *name, const float *s, size_t B, size_t L, size_t H,
                      int digits)
{
    size_t bad;
    buf_printf(b, ",\"%s\":[", name);
    for (size_t i = 0; i < B; i++) {
        buf_puts(b, i ? ",[" : "[");
        for (size_t l = 0; l < L; l++) {
            if (l)
                buf_putc(b, ',');
            if (put_floats(b, s + (i * L + l) * H, H, digits, &bad) < 0)
                return -1;
        }
        buf_putc(b, ']');
    }
    buf_putc(b, ']');
    return 0;
}

/* Sequence i's generated ids (or rows) of steps [0, N). */
static int put_sequence(buf *b, const api_gen_call *g, size_t i, size_t n)
{
    const size_t steps = g->p.steps, I = (size_t)g->info->input_size;
    const int digits = wire_v1_precision(g->fwd);
    size_t bad;
    buf_putc(b, '[');
    for (size_t s = 0; s < n; s++) {
        if (s)
            buf_putc(b, ',');
        if (g->mode == RNN_GEN_TOKENS)
            buf_printf(b, "%d", (int)g->tokens[i * steps + s]);
        else if (put_floats(b, g->forecast + (i * steps + s) * I, I, digits, &bad) < 0)
            return -1;
    }
    buf_putc(b, ']');
    return 0;
}

/* The whole answer's members after "model": the generated values and the states. 0, or -1 with
 * E (422: a value JSON cannot carry). */
static int put_answer(buf *b, const api_gen_call *g, wire_error *e)
{
    const rnn_batch *pb = g->pb;
    const size_t B = pb->batch, L = (size_t)g->info->num_layers;
    const size_t H = (size_t)g->info->hidden_size;
    const int digits = wire_v1_precision(g->fwd);
    buf_puts(b, g->mode == RNN_GEN_TOKENS ? ",\"tokens\":[" : ",\"forecast\":[");
    for (size_t i = 0; i < B; i++) {
        if (i)
            buf_putc(b, ',');
        if (put_sequence(b, g, i, g->p.steps) < 0)
            return wire_fail(e, 422,
                             "forecast[%zu]: a value is not finite (the model's state "
                             "overflowed): JSON cannot carry it",
                             i);
    }
    buf_putc(b, ']');
    if (put_states(b, "hidden", g->hidden, B, L, H, digits) < 0 ||
        (g->cell && put_states(b, "cell", g->cell, B, L, H, digits) < 0))
        return wire_fail(e, 422, "hidden/cell: a value is not finite: JSON cannot carry it");
    return 0;
}

int api_gen_encode(api_gen_call *c, char **errbody, size_t *errlen)
{
    *errbody = NULL;
    *errlen = 0;
    wire_error e;
    buf_free(&c->ans);
    c->encoded = false;
    buf *b = &c->ans;
    buf_puts(b, "{\"model\":");
    buf_json_string(b, c->info->name);
    const int bad = put_answer(b, c, &e) < 0, oom = b->oom;
    if (bad || oom) {
        buf_free(b);
        if (!bad)
            wire_fail(&e, 500, "out of memory");
        *errbody = api_gen_error_body(e.status, e.message, errlen);
        return e.status;
    }
    c->encoded = true;
    return 200;
}

int api_gen_extra_fields(api_gen_call *c, const char *json_members)
{
    if (!json_members) {
        c->ans.oom = 1;
        return -1;
    }
    buf_putc(&c->ans, ',');
    buf_puts(&c->ans, json_members);
    return c->ans.oom ? -1 : 0;
}

int api_gen_answer(api_gen_call *c, char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (c->encoded) {
        c->encoded = false;
        buf_putc(&c->ans, '}');
        if ((*out = buf_take(&c->ans, outlen)))
            return 200;
    }
    *out = api_gen_error_body(500, "out of memory", outlen);
    return 500;
}

/* ---------------------------------------------------------------------------------------------
 * The run */

/* generate.c's on_step for a stream: {"step": s, "tokens": [id, ...]} (one id per sequence) or
 * {"step": s, "forecast": [[row], ...]} to EMIT. Nonzero stops the loop (EMIT said so, or a
 * value JSON cannot carry: RUN_ERR says which). */
static int on_step(void *ctx, size_t step, const int32_t *ids, const float *rows, size_t B)
{
    api_gen_call *g = ctx;
    buf *d = &g->ev;
    size_t bad;
    int rc = 0;
    d->len = 0;
    buf_printf(d, "{\"step\":%zu,\"%s\":[", step, ids ? "tokens" : "forecast");
    for (size_t i = 0; i < B && rc == 0; i++) {
        if (i)
            buf_putc(d, ',');
        if (ids)
            buf_printf(d, "%d", (int)ids[i]);
        else
            rc = put_floats(d, rows + i * (size_t)g->info->input_size, (size_t)g->info->input_size,
                            wire_v1_precision(g->fwd), &bad);
    }
    buf_puts(d, "]}");
    if (rc == 0 && !d->oom)
        rc = g->emit(g->emit_ctx, d->data, d->len);
    else if (rc < 0)
        snprintf(g->run_err, sizeof g->run_err,
                 "step %zu: a forecast value is not finite (the model's state overflowed): JSON "
                 "cannot carry it",
                 step);
    if (d->oom) /* an event lost to memory is skipped, and the next one tried afresh */
        buf_free(d);
    return rc != 0;
}

int api_gen_run(api_gen_call *c, int (*stop)(void *), void *stop_ctx,
                int (*emit)(void *ctx, const char *data, size_t len), void *emit_ctx, char *err,
                size_t errlen)
{
    c->p.stop = stop;
    c->p.stop_ctx = stop_ctx;
    c->run_err[0] = '\0';
    if (emit) {
        c->emit = emit;
        c->emit_ctx = emit_ctx;
        c->p.on_step = on_step;
        c->p.step_ctx = c;
    }
    rnn_gen_result res = {c->tokens, c->forecast, c->hidden, c->cell};
    int rc = rnn_generate(c->model, c->pb, wire_v1_tokens(c->fwd), &c->p, &res, err, errlen);
    if (rc == RNN_STOPPED && c->run_err[0]) { /* on_step's one failure: a forecast not finite */
        snprintf(err, errlen, "%s", c->run_err);
        return API_GEN_NOT_FINITE;
    }
    return rc == RNN_GEN_NOT_FINITE ? API_GEN_NOT_FINITE : rc;
}
