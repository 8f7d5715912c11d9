/* generate_routes.c - POST /v1/models/{name}/generate: the body (v1's forward decoder plus the
 * generate fields), the generation run as a scheduler job with its own loop (generate.c), and
 * its answer as one JSON body or as Server-Sent Events, one event per generated step.
 *
 * The request is decoded on the I/O thread, as a forward request is; the loop runs on a compute
 * thread, which also encodes. A plain answer parks the connection and hands the body back
 * through r->job (http_park, answer_job); a stream answers 200 at once and the loop feeds the
 * events to an http_stream, the request itself being free to complete. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_impl.h"
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

/* One generate request, from its decoding to its answer; malloc'ed by the handler, freed by
 * the job's `done` (or by the handler when the job never starts). */
typedef struct {
    /* decoded */
    const rnn_model *model;
    const rnn_info *info;
    wire_v1_request *fwd; /* the prompt batch, h0/c0, precision, timeout */
    rnn_gen_params p;
    rnn_gen_mode mode;
    bool steps_seen, temperature_seen, top_k_seen, seed_seen, stream_seen, stream;
    bool err_set;
    wire_error err; /* the first error in the generate fields */
    /* results */
    int32_t *tokens;
    float *forecast, *hidden, *cell;
    size_t n_hidden;
    /* the answer goes to R (plain) or ST (streamed) */
    req *r;
    http_stream *st;
    buf ev; /* the streamed event being encoded */
    char run_err[512];
    sched_job sj;
} gen_req;

static void gen_free(gen_req *g)
{
    if (!g)
        return;
    wire_v1_free(g->fwd);
    free(g->tokens);
    free(g->forecast);
    free(g->hidden);
    free(g->cell);
    buf_free(&g->ev);
    free(g);
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
static int read_seed(gen_req *g, js_reader *js)
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
    gen_req *g = ctx;
    double v = 0;
    const char *tok, *end;
    int rc;
    const double max_steps = (double)g->r->s->lim.max_steps;
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

/* Estimated FLOPs of the whole generation: the prompt's steps and B per generated step, each
 * a step of every layer (and the head). */
static double gen_flops(const rnn_info *in, size_t prompt_steps, size_t B, size_t steps)
{
    const double G = in->gates, H = in->hidden_size;
    double step = 0;
    for (int l = 0; l < in->num_layers; l++)
        step += 2.0 * G * H * ((l ? H : in->input_size) + H);
    step += 2.0 * in->head_size * H;
    return step * (double)(prompt_steps + B * steps);
}

/* Decodes R's body into a new G (*out), or answers the error and returns MHD's result with *out
 * NULL. */
static enum MHD_Result gen_decode(req *r, gen_req **out)
{
    *out = NULL;
    gen_req *g = calloc(1, sizeof *g);
    if (!g)
        return http_respond_error(r, 500, NULL, "out of memory");
    g->r = r;
    g->model = r->model;
    g->info = rnn_model_info(r->model);
    g->p.temperature = 1.0;
    char msg[512];
    wire_error e;
    wire_v1_fields more = {gen_field, g, FIELD_NAMES};
    if (wire_v1_decode_with(r->body, r->len, g->info, &r->s->lim, &more, &g->fwd, &e) == 0 &&
        g->err_set)
        e = g->err;
    if (!g->fwd || g->err_set) {
        gen_free(g);
        return http_respond_error(r, e.status, NULL, "%s", e.message);
    }
    if ((g->mode = rnn_gen_mode_of(g->model, msg, sizeof msg)) == RNN_GEN_NONE) {
        gen_free(g);
        return http_respond_error(r, 400, NULL, "%s", msg);
    }
    if (!g->steps_seen) {
        gen_free(g);
        return http_respond_error(r, 400, NULL,
                                  "steps: missing (expected how many ids or rows to generate, "
                                  "from 1 to %zu)",
                                  r->s->lim.max_steps);
    }
    const rnn_batch *pb = wire_v1_batch(g->fwd);
    for (size_t b = 0; b < pb->batch && !pb->h0; b++)
        if (pb->lengths[b] == 0) {
            const char *field = g->info->vocab_size > 0 ? "tokens" : "inputs";
            gen_free(g);
            return http_respond_error(r, 400, NULL,
                                      "%s[%zu]: an empty prompt and no h0: nothing to predict the "
                                      "first step from (send at least one step, or an h0 to "
                                      "continue from)",
                                      field, b);
        }
    if (rnn_gen_check(g->model, pb, wire_v1_tokens(g->fwd), &g->p, msg, sizeof msg) < 0) {
        gen_free(g);
        return http_respond_error(r, 400, NULL, "%s", msg);
    }
    const size_t width = g->mode == RNN_GEN_TOKENS ? 1 : (size_t)g->info->input_size;
    if (pb->batch * g->p.steps * width > MAX_VALUES) {
        const size_t B = pb->batch, steps = g->p.steps;
        gen_free(g);
        return http_respond_error(r, 413, NULL,
                                  "steps: %zu sequences x %zu steps x %zu values is over the %zu "
                                  "values one generate request may produce",
                                  B, steps, width, MAX_VALUES);
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
        gen_free(g);
        return http_respond_error(r, 500, NULL, "out of memory");
    }
    *out = g;
    return MHD_YES;
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
static int put_sequence(buf *b, const gen_req *g, size_t i, size_t n)
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
static int put_answer(buf *b, const gen_req *g, wire_error *e)
{
    const rnn_batch *pb = wire_v1_batch(g->fwd);
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

/* {"model": ..., then the answer's members}: a new malloc'ed body in *out, or -1 with E. */
static int encode_answer(const gen_req *g, char **out, size_t *len, wire_error *e)
{
    buf b = BUF_INIT;
    buf_puts(&b, "{\"model\":");
    buf_json_string(&b, g->info->name);
    if (put_answer(&b, g, e) < 0) {
        buf_free(&b);
        return -1;
    }
    buf_putc(&b, '}');
    if (!(*out = buf_take(&b, len)))
        return wire_fail(e, 500, "out of memory");
    return 0;
}

/* One Server-Sent Event, EVENT and the one-line JSON DATA[N], pushed to the stream. */
static int push_event(gen_req *g, const char *event, const char *data, size_t n)
{
    g->ev.len = 0;
    buf_printf(&g->ev, "event: %s\ndata: ", event);
    buf_append(&g->ev, data, n);
    buf_puts(&g->ev, "\n\n");
    if (g->ev.oom)
        return -1;
    return http_stream_push(g->st, g->ev.data, g->ev.len);
}

/* generate.c's on_step for a stream: {"step": s, "tokens": [id, ...]} (one id per sequence) or
 * {"step": s, "forecast": [[row], ...]}. Nonzero stops the loop (the client left). */
static int on_step(void *ctx, size_t step, const int32_t *ids, const float *rows, size_t B)
{
    gen_req *g = ctx;
    buf d = BUF_INIT;
    size_t bad;
    int rc = 0;
    buf_printf(&d, "{\"step\":%zu,\"%s\":[", step, ids ? "tokens" : "forecast");
    for (size_t i = 0; i < B && rc == 0; i++) {
        if (i)
            buf_putc(&d, ',');
        if (ids)
            buf_printf(&d, "%d", (int)ids[i]);
        else
            rc = put_floats(&d, rows + i * (size_t)g->info->input_size, (size_t)g->info->input_size,
                            wire_v1_precision(g->fwd), &bad);
    }
    buf_puts(&d, "]}");
    if (rc == 0 && !d.oom)
        rc = push_event(g, "step", d.data, d.len);
    else if (rc < 0)
        snprintf(g->run_err, sizeof g->run_err,
                 "step %zu: a forecast value is not finite (the model's state overflowed): JSON "
                 "cannot carry it",
                 step);
    buf_free(&d);
    return rc != 0;
}

/* ---------------------------------------------------------------------------------------------
 * The job */

static int gen_run(sched_job *sj, int (*stop)(void *), void *stop_ctx, char *err, size_t errlen)
{
    gen_req *g = sj->ctx;
    g->p.stop = stop;
    g->p.stop_ctx = stop_ctx;
    if (g->st) {
        g->p.on_step = on_step;
        g->p.step_ctx = g;
    }
    rnn_gen_result res = {g->tokens, g->forecast, g->hidden, g->cell};
    int rc = rnn_generate(g->model, wire_v1_batch(g->fwd), wire_v1_tokens(g->fwd), &g->p, &res, err,
                          errlen);
    if (rc == RNN_STOPPED && g->run_err[0]) { /* on_step's own failure, not a stop */
        snprintf(err, errlen, "%s", g->run_err);
        return -1;
    }
    return rc;
}

static int gen_gone(void *ctx)
{
    gen_req *g = ctx;
    return g->st ? http_stream_closed(g->st) : http_client_gone(g->r);
}

/* What an outcome other than SCHED_OK answers: status, log reason, outcome. */
static int outcome_status(sched_outcome o, const char **reason, compute_outcome *co)
{
    switch (o) {
    case SCHED_OK:
        break;
    case SCHED_EXPIRED:
        *reason = "expired";
        *co = COMPUTE_EXPIRED;
        return 503;
    case SCHED_CANCELLED:
        *reason = "cancelled";
        *co = COMPUTE_CANCELLED;
        return 0;
    case SCHED_STOPPED:
        *reason = "shutdown";
        *co = COMPUTE_STOPPED;
        return 503;
    case SCHED_FAILED:
        *reason = "engine";
        *co = COMPUTE_FAILED;
        return 500;
    }
    *reason = NULL;
    *co = COMPUTE_DONE;
    return 200;
}

/* The streamed answer's end: the done event with the states and everything generated, or an
 * error event. */
static void done_stream(gen_req *g, sched_outcome o, const char *msg)
{
    const char *reason;
    compute_outcome co;
    int status = outcome_status(o, &reason, &co);
    wire_error e;
    char *body = NULL;
    size_t len = 0;
    if (status == 200 && encode_answer(g, &body, &len, &e) == 0) {
        push_event(g, "done", body, len);
    } else if (status != 0) {
        if (status == 200) {
            status = e.status;
            msg = e.message;
        } else if (o == SCHED_FAILED && strstr(msg, "not finite")) {
            status = 422;
        }
        body = api_error_body(api_wire_v1(), status, msg, &len);
        if (body)
            push_event(g, "error", body, len);
    }
    free(body);
    http_stream_end(g->st);
}

/* The plain answer: into r->job, then the connection is resumed (answer_job sends it). */
static void done_plain(gen_req *g, sched_outcome o, const char *msg)
{
    req *r = g->r;
    compute_job *j = &r->job;
    int status = outcome_status(o, &j->reason, &j->outcome);
    wire_error e;
    j->out = NULL;
    j->retry_after_s = o == SCHED_EXPIRED ? 1 : 0;
    j->wait_ns = g->sj.wait_ns;
    j->compute_ns = g->sj.compute_ns;
    j->pass_sequences = g->sj.pass_sequences;
    j->pass_jobs = 1;
    if (status == 200 && encode_answer(g, &j->out, &j->outlen, &e) < 0) {
        status = e.status;
        msg = e.message;
    }
    if (o == SCHED_FAILED && strstr(msg, "not finite")) /* the model's values, not the server */
        status = 422;
    if (status != 200 && status != 0)
        j->out = api_error_body(api_wire_v1(), status, msg, &j->outlen);
    j->status = status;
    gen_free(g);
    http_unpark(r);
}

static void gen_done(sched_job *sj, sched_outcome o, const char *msg, void *ctx)
{
    gen_req *g = ctx;
    (void)sj;
    if (g->st) {
        done_stream(g, o, msg);
        gen_free(g);
    } else {
        done_plain(g, o, msg);
    }
}

/* Whether R asks for a stream: "stream" when the body says, else an Accept naming
 * text/event-stream. */
static bool wants_stream(const gen_req *g, req *r)
{
    if (g->stream_seen)
        return g->stream;
    const char *accept = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Accept");
    return accept && strstr(accept, "text/event-stream") != NULL;
}

enum MHD_Result generate_handle(req *r)
{
    if (r->too_big)
        return http_respond_error(r, 413, NULL, "request body exceeds max_body_bytes %zu",
                                  r->s->cfg->server.max_body_bytes);
    gen_req *g;
    enum MHD_Result ret = gen_decode(r, &g);
    if (!g)
        return ret;
    const rnn_batch *pb = wire_v1_batch(g->fwd);
    r->stats.sequences = pb->batch;
    r->stats.steps = wire_v1_steps(g->fwd) + pb->batch * g->p.steps;
    r->job.stats = r->stats; /* what answer_job reports once the job resumes R */
    const int64_t t_us = wire_v1_timeout_us(g->fwd);
    const int64_t arrival = (int64_t)r->t0.tv_sec * 1000000000LL + r->t0.tv_nsec;
    g->sj = (sched_job){.model = g->model,
                        .batch = pb,
                        .flops = gen_flops(g->info, wire_v1_steps(g->fwd), pb->batch, g->p.steps),
                        .deadline_ns = t_us > 0 ? arrival + t_us * 1000 : 0,
                        .gone = gen_gone,
                        .done = gen_done,
                        .ctx = g,
                        .run = gen_run};
    const bool stream = wants_stream(g, r);
    if (stream && !(g->st = http_stream_new())) {
        gen_free(g);
        return http_respond_error(r, 500, NULL, "out of memory");
    }
    char why[512], retry[16];
    int after = 1;
    http_stream *st = g->st;
    if (!stream)
        http_park(r); /* before submitting: `done` may resume it at once */
    if (compute_submit_job(r->s->compute, &g->sj, why, sizeof why, &after) < 0) {
        if (st) { /* never started: both references are ours */
            http_stream_end(st);
            http_stream_end(st);
        }
        gen_free(g);
        if (!stream) {
            r->job.status = 503;
            r->job.retry_after_s = after;
            r->job.outcome = COMPUTE_REJECTED;
            r->job.reason = "rejected";
            r->job.out = api_error_body(api_wire_v1(), 503, why, &r->job.outlen);
            http_unpark(r);
            return MHD_YES;
        }
        snprintf(retry, sizeof retry, "%d", after);
        const char *const extra[] = {"Retry-After", retry, NULL};
        return http_respond_error(r, 503, extra, "%s", why);
    }
    if (!stream)
        return MHD_YES; /* answered by answer_job once the job resumes the connection */
    /* From here the job may already be running (or done): it holds its own reference. */
    const char *const extra[] = {"Cache-Control", "no-cache", "X-Accel-Buffering", "no", NULL};
    return http_respond_stream(r, 200, st, "text/event-stream", extra);
}
