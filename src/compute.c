/* compute.c - the compute hand-off: decoding on the I/O thread, the rule that keeps cheap
 * requests there, and the hand-over of the rest to the scheduler (sched.c) and back.
 *
 * Why not compute everything on the I/O threads: libmicrohttpd pins a connection to its epoll
 * worker, so a worker must never sit in a long forward pass; probes and small requests on other
 * connections are served meanwhile. Decoding stays on the I/O thread: its cost is bounded by the
 * body (max_body_bytes at ~1 GB/s), and the scheduler needs the decoded batch to price, merge
 * and admit it. Encoding runs on the scheduler's thread that computed the pass, and so does
 * compressing its answer (Accept-Encoding); an inline answer (under 64 KB) is compressed by the
 * HTTP layer. */
#include "rnnserve/compute.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rnnserve/engine.h"
#include "rnnserve/sysres.h"

/* A request runs inline on the I/O thread when its forward pass is under this many FLOPs (~50 us
 * at most, less than a hand-off) and its response under INLINE_BYTES (encoding runs at about
 * 700 MB/s: 64 KB is ~0.1 ms). What it will produce counts, not its body's size: a small body
 * can ask for a large answer (a padded layout). */
#define INLINE_FLOPS 2e6
#define INLINE_BYTES ((size_t)64 << 10)
/* The express lane's bound on the response a job it computes here may encode (~0.4 ms). */
#define EXPRESS_BYTES ((size_t)256 << 10)

struct compute {
    api_limits lim;
    sched *sc;
    pthread_mutex_t mu; /* guards stopped */
    int stopped;
    atomic_int paused; /* read on every submit: no lock on that path */
};

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Forward passes run `threads` at a time (the scheduler's threads), one BLAS thread each: never
 * more busy threads than cores. With the default (threads 0: one per core) a pass may also
 * borrow the other cores, but only while it is the only pass in flight (the engine checks at
 * every layer): one large request alone gets the whole machine. An explicit `threads` keeps
 * every pass on one core. */
compute *compute_new(const cfg_server *s, const api_limits *lim, char *err, size_t errlen)
{
    int threads = s->threads;
    rnn_set_blas_threads(1);
    rnn_set_threads(threads > 0 ? 1 : sysres_cpus_usable());
    if (threads <= 0)
        threads = sysres_cpus_usable();
    compute *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->lim = *lim;
    pthread_mutex_init(&c->mu, NULL);
    sched_config sc = {.threads = threads,
                       .max_pass_sequences = (size_t)s->max_pass_sequences,
                       .max_pass_ns = (int64_t)s->max_pass_ms * 1000000LL,
                       .merge_cache_bytes = sysres_cache_bytes(),
                       .batch_delay_ns = (int64_t)s->batch_delay_us * 1000LL,
                       .max_queue_ns = (int64_t)s->max_queue_ms * 1000000LL,
                       .queue_timeout_ns = (int64_t)s->queue_timeout_ms * 1000000LL};
    if (sched_start(&sc, &c->sc, err, errlen) < 0) {
        pthread_mutex_destroy(&c->mu);
        free(c);
        return NULL;
    }
    return c;
}

/* The scheduler's questions and answers, on its threads. */
static int job_gone(void *ctx)
{
    compute_job *j = ctx;
    return j->gone && j->gone(j);
}

/* The error answer of a job that was not computed. */
static void answer_error(compute_job *j, int status, compute_outcome o, const char *reason,
                         const char *msg)
{
    j->status = status;
    j->outcome = o;
    j->reason = reason;
    j->out = api_call_error_body(j->call, status, msg, &j->outlen);
    j->ctype = "application/json";
    j->header_len = 0;
}

/* The answer's framing, read from the call after api_finish (before it is freed). */
static void take_framing(compute_job *j)
{
    j->ctype = api_call_content_type(j->call);
    j->header_len = api_call_header_len(j->call);
}

/* Compresses a computed answer as the job asked, here on the scheduler's thread: a large body
 * (a padded output runs to megabytes) costs milliseconds to deflate, which the I/O thread must
 * not spend while other connections wait on it. Out of memory leaves the body as it was. */
static void compress_answer(compute_job *j)
{
    char err[128];
    buf z = BUF_INIT;
    if (j->coding == CZ_IDENTITY || !j->out || !cz_worth_compressing(j->outlen))
        return;
    if (cz_compress(j->coding, j->out, j->outlen, &z, err, sizeof err) < 0) {
        buf_free(&z);
        return;
    }
    size_t len;
    char *body = buf_take(&z, &len);
    if (!body)
        return;
    free(j->out);
    j->out = body;
    j->outlen = len;
    j->coded = j->coding;
}

static void job_done(sched_job *sj, sched_outcome o, const char *msg, void *ctx)
{
    compute_job *j = ctx;
    j->wait_ns = sj->wait_ns;
    j->compute_ns = sj->compute_ns;
    j->pass_sequences = sj->pass_sequences;
    j->pass_jobs = sj->pass_jobs;
    if (j->computed)
        j->computed(j, o == SCHED_OK);
    switch (o) {
    case SCHED_OK: {
        int64_t t = now_ns();
        j->status = api_finish(j->call, &j->out, &j->outlen, &j->stats);
        take_framing(j);
        compress_answer(j);
        j->encode_ns = now_ns() - t;
        j->outcome = COMPUTE_DONE;
        break;
    }
    case SCHED_EXPIRED:
        j->retry_after_s = 1;
        answer_error(j, 503, COMPUTE_EXPIRED, "expired", msg);
        break;
    case SCHED_CANCELLED: /* nobody to answer: the connection is closed when resumed */
        j->status = 0;
        j->out = NULL;
        j->outcome = COMPUTE_CANCELLED;
        j->reason = "cancelled";
        break;
    case SCHED_STOPPED:
        answer_error(j, 503, COMPUTE_STOPPED, "shutdown", msg);
        break;
    case SCHED_FAILED:
        answer_error(j, 500, COMPUTE_FAILED, "engine", msg);
        break;
    }
    api_call_free(j->call);
    j->call = NULL;
    j->resume(j);
}

/* Hands a decoded, parked job to the scheduler; on refusal answers it 503 and resumes it. */
static void hand_over(compute *c, compute_job *j)
{
    char why[512];
    int retry = 1, refused;
    int64_t t_us = api_call_timeout_us(j->call);
    j->sj = (sched_job){.model = j->model,
                        .batch = api_call_batch(j->call),
                        .result = api_call_result(j->call),
                        .flops = api_call_flops(j->call),
                        .deadline_ns = t_us > 0 ? j->arrival_ns + t_us * 1000 : 0,
                        .gone = job_gone,
                        .done = job_done,
                        .ctx = j};
    pthread_mutex_lock(&c->mu);
    refused = c->stopped;
    pthread_mutex_unlock(&c->mu);
    if (refused)
        snprintf(why, sizeof why, "the server is shutting down");
    else
        refused = sched_submit(c->sc, &j->sj, why, sizeof why, &retry) < 0;
    if (!refused)
        return; /* job_done resumes it */
    if (j->computed)
        j->computed(j, 0);
    j->retry_after_s = retry;
    answer_error(j, 503, COMPUTE_REJECTED, "rejected", why);
    api_call_free(j->call);
    j->call = NULL;
    j->resume(j);
}

/* The inline path of a job with a computed hook: the pass, the hook, then encoding. */
static int compute_with_hook(compute_job *j)
{
    char msg[256];
    const int ok = rnn_forward(j->model, api_call_batch(j->call), api_call_result(j->call), msg,
                               sizeof msg) == 0;
    j->computed(j, ok);
    if (ok)
        return api_finish(j->call, &j->out, &j->outlen, &j->stats);
    char why[320];
    snprintf(why, sizeof why, "forward pass failed: %s", msg);
    j->outcome = COMPUTE_FAILED;
    j->reason = "engine";
    j->out = api_call_error_body(j->call, 500, why, &j->outlen);
    return 500;
}

int compute_runs_inline(const api_call *call)
{
    return api_call_flops(call) < INLINE_FLOPS && api_call_response_bytes(call) < INLINE_BYTES;
}

int compute_submit(compute *c, compute_job *j)
{
    int64_t t0 = now_ns();
    char *err = NULL;
    size_t errlen = 0;
    j->out = NULL;
    j->outcome = COMPUTE_DONE;
    j->reason = NULL;
    j->retry_after_s = 0;
    j->ctype = "application/json";
    j->header_len = 0;
    j->coded = CZ_IDENTITY;
    if (!j->call) { /* else its submitter decoded it, and timed that in decode_ns */
        j->status = api_decode_framed(j->wire, j->model, j->body, j->len, &j->framing, &c->lim,
                                      &j->call, &err, &errlen);
        j->decode_ns = now_ns() - t0;
    } else {
        j->status = 200;
    }
    if (j->status != 200) {
        j->out = err;
        j->outlen = errlen;
        j->reason = "invalid";
        return 1;
    }
    /* Cheap, or small and stuck behind larger passes with nobody to merge with (the express
     * lane, sched_express): computed here, now. Not while paused: a test that froze the
     * scheduler to build a queue state must not see a request slip past it. */
    if (!atomic_load(&c->paused) && (compute_runs_inline(j->call) ||
                                     (api_call_response_bytes(j->call) < EXPRESS_BYTES &&
                                      sched_express(c->sc, j->model, api_call_flops(j->call))))) {
        int64_t t = now_ns();
        if (j->computed)
            j->status = compute_with_hook(j);
        else
            j->status = api_compute_and_finish(j->call, &j->out, &j->outlen, &j->stats);
        take_framing(j);
        j->compute_ns = now_ns() - t;
        j->pass_sequences = api_call_batch(j->call)->batch;
        j->pass_jobs = 1;
        api_call_free(j->call);
        j->call = NULL;
        return 1;
    }
    j->park(j);
    hand_over(c, j);
    return 0;
}

int compute_submit_job(compute *c, sched_job *sj, char *why, size_t whylen, int *retry_after_s)
{
    pthread_mutex_lock(&c->mu);
    int stopped = c->stopped;
    pthread_mutex_unlock(&c->mu);
    *retry_after_s = 1;
    if (stopped) {
        snprintf(why, whylen, "the server is shutting down");
        return -1;
    }
    return sched_submit(c->sc, sj, why, whylen, retry_after_s);
}

int compute_busy(compute *c, char *why, size_t whylen, int *retry_after_s)
{
    return sched_full(c->sc, why, whylen, retry_after_s);
}

void compute_depth(compute *c, sched_depth *d)
{
    sched_get_depth(c->sc, d);
}

void compute_pause(compute *c, int paused)
{
    atomic_store(&c->paused, paused != 0);
    sched_pause(c->sc, paused);
}

void compute_stop(compute *c, int abort)
{
    pthread_mutex_lock(&c->mu);
    c->stopped = 1;
    pthread_mutex_unlock(&c->mu);
    atomic_store(&c->paused, 0); /* as sched_stop's: what is queued is computed (or ended) */
    sched_stop(c->sc, abort);
}

void compute_abort(compute *c)
{
    sched_abort(c->sc);
}

void compute_free(compute *c)
{
    if (!c)
        return;
    compute_stop(c, 1);
    sched_free(c->sc);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
