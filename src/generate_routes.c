/* generate_routes.c - POST /v1/models/{name}/generate over HTTP: the request's context, the
 * generation as a scheduler job with its own work, and its answer as one body or as Server-Sent
 * Events, one per generated step. The body's JSON, in and out, is the api layer's (api_gen_*).
 *
 * The request is decoded on the I/O thread, as a forward request is; the loop runs on a compute
 * thread, which also encodes. A plain answer parks the connection and hands the body back
 * through r->job (http_park, answer_job); a stream answers 200 at once and the loop feeds the
 * events to an http_stream, the request itself being free to complete. A session's generate
 * (session_generate.c) runs the same with its state as the prompt's and is told how it ended
 * (gen_from), before the answer is sent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate_routes.h"
#include "rnnserve/buf.h"

/* One generate request, from its decoding to its answer; malloc'ed by the handler, freed by
 * the job's `done` (or by the handler when the job never starts). */
typedef struct {
    api_gen_call *call; /* the decoded body, the run's buffers, the answer (wire_generate.c) */
    bool has_from, settled;
    gen_from from; /* the state to start from, and who is told the end (has_from) */
    /* the answer goes to R (plain) or ST (streamed) */
    req *r;
    http_stream *st;
    buf ev;          /* the streamed event being framed */
    bool not_finite; /* the run failed on the model's values (set by gen_run): a 422 */
    sched_job sj;
} gen_req;

/* Tells FROM's caller how the request ended, once: OK with the answer being encoded. */
static void settle(gen_req *g, int ok)
{
    if (!g->has_from || g->settled)
        return;
    g->settled = true;
    api_stats st = {0, 0};
    if (g->call)
        api_gen_stats(g->call, &st); /* one sequence: the steps it advances by */
    g->from.settle(g->from.ctx, ok, ok ? api_gen_hidden(g->call) : NULL,
                   ok ? api_gen_cell(g->call) : NULL, (uint64_t)st.steps, ok ? g->call : NULL);
}

static void gen_free(gen_req *g)
{
    if (!g)
        return;
    settle(g, 0);
    api_gen_free(g->call);
    buf_free(&g->ev);
    free(g);
}

/* The answer after a successful run into *out (malloc'ed), or its error body: the status.
 * Settles G: the run is over. */
static int encode_answer(gen_req *g, char **out, size_t *len)
{
    int status = api_gen_encode(g->call, out, len);
    if (status != 200) { /* the session, if any, stays as it was */
        settle(g, 0);
        return status;
    }
    settle(g, 1);
    return api_gen_answer(g->call, out, len);
}

/* One Server-Sent Event, EVENT and the one-line DATA[N], pushed to the stream. */
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

/* api_gen_run's emit for a stream: one step event. Nonzero stops the run (the client left). */
static int on_step(void *ctx, const char *data, size_t len)
{
    return push_event(ctx, "step", data, len) != 0;
}

/* ---------------------------------------------------------------------------------------------
 * The job */

static int gen_run(sched_job *sj, int (*stop)(void *), void *stop_ctx, char *err, size_t errlen)
{
    gen_req *g = sj->ctx;
    int rc = api_gen_run(g->call, stop, stop_ctx, g->st ? on_step : NULL, g, err, errlen);
    if (rc == API_GEN_NOT_FINITE) { /* a failed job to the scheduler; the answer says 422 */
        g->not_finite = true;
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
    char *body = NULL;
    size_t len = 0;
    if (status == 200) { /* the answer, or its error body: settled either way */
        status = encode_answer(g, &body, &len);
        if (body)
            push_event(g, status == 200 ? "done" : "error", body, len);
    } else if (status != 0) {
        settle(g, 0); /* before the client reads the end, so that its next request finds the
                         session free */
        if (o == SCHED_FAILED && g->not_finite)
            status = 422;
        body = api_gen_error_body(status, msg, &len);
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
    j->out = NULL;
    j->retry_after_s = o == SCHED_EXPIRED ? 1 : 0;
    j->wait_ns = g->sj.wait_ns;
    j->compute_ns = g->sj.compute_ns;
    j->pass_sequences = g->sj.pass_sequences;
    j->pass_jobs = 1;
    if (status == 200) {
        status = encode_answer(g, &j->out, &j->outlen); /* the answer or its error body */
    } else {
        if (o == SCHED_FAILED && g->not_finite) /* the model's values, not the server */
            status = 422;
        if (status != 0)
            j->out = api_gen_error_body(status, msg, &j->outlen);
    }
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
    const int stream = api_gen_stream(g->call);
    if (stream >= 0)
        return stream;
    const char *accept = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Accept");
    return accept && strstr(accept, "text/event-stream") != NULL;
}

enum MHD_Result generate_handle(req *r)
{
    return generate_from(r, NULL);
}

enum MHD_Result generate_from(req *r, const gen_from *from)
{
    if (r->too_big) {
        if (from)
            from->settle(from->ctx, 0, NULL, NULL, 0, NULL);
        return http_respond_error(r, 413, NULL, "request body exceeds max_body_bytes %zu",
                                  r->s->cfg->server.max_body_bytes);
    }
    gen_req *g = calloc(1, sizeof *g);
    if (!g) {
        if (from)
            from->settle(from->ctx, 0, NULL, NULL, 0, NULL);
        return http_respond_error(r, 500, NULL, "out of memory");
    }
    if (from) {
        g->has_from = true;
        g->from = *from;
    }
    g->r = r;
    const api_gen_state state = {from ? from->h0 : NULL, from ? from->c0 : NULL};
    char *err;
    size_t errlen;
    const int status = api_gen_decode(r->model, r->body, r->len, &r->s->lim, from ? &state : NULL,
                                      &g->call, &err, &errlen);
    if (status != 200) {
        gen_free(g); /* settles FROM */
        return err ? http_respond_json(r, status, err, errlen) : MHD_NO;
    }
    api_gen_stats(g->call, &r->stats);
    r->job.stats = r->stats; /* what answer_job reports once the job resumes R */
    const int64_t t_us = api_gen_timeout_us(g->call);
    const int64_t arrival = (int64_t)r->t0.tv_sec * 1000000000LL + r->t0.tv_nsec;
    g->sj = (sched_job){.model = r->model,
                        .batch = api_gen_batch(g->call),
                        .flops = api_gen_flops(g->call),
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
            r->job.out = api_gen_error_body(503, why, &r->job.outlen);
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
