/* sched.c - one queue of forward jobs, compute threads that merge jobs into passes, and a timer
 * thread that expires deadlines and drops jobs whose requester is gone.
 *
 * Order: each job's key is its submit time plus its own estimated compute time, and the queue is
 * kept sorted by key. A free compute thread seeds a pass with the first job and adds the later
 * jobs for the same model while the pass stays within max_pass_sequences and max_pass_ns
 * (estimated) and the joining job costs no more than the pass so far (a huge job never delays a
 * pass of small ones by more than their own cost; a small one may ride along with a large one,
 * which it would have waited for anyway). Keys make short jobs overtake long ones that were queued
 * a little earlier, but never a long one that has waited longer than the short one's own cost.
 *
 * Estimates: FLOPs (the decoder knows them) over the throughput measured on the last passes
 * (an exponential average of FLOPs per nanosecond per thread, seeded at a conservative guess). */
#include "rnnserve/sched.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The throughput guess before any pass was measured: 20 GFLOP/s, well under what the engine
 * does on anything with AVX2, so the first admissions are cautious rather than optimistic. */
#define RATE_GUESS 20.0 /* FLOPs per ns */
/* A job's key is its arrival plus this many times its own estimated compute: short jobs go
 * ahead of long ones queued less than that before them (a one-sequence request does not wait
 * behind seconds of large ones), and no job waits longer than KEY_WEIGHT times its own cost
 * for jobs that came after it. */
#define KEY_WEIGHT 16
/* The express lane (sched_express): jobs of at most EXPRESS_NS of estimated compute, that would
 * wait more than EXPRESS_WAIT times that (and at least EXPRESS_MIN_WAIT_NS). */
#define EXPRESS_NS 5000000LL
#define EXPRESS_WAIT 8
#define EXPRESS_MIN_WAIT_NS 10000000LL
/* How often the timer thread, and a running pass, ask whether requesters are gone. */
#define POLL_NS 10000000LL

/* A pass being computed: what the timer thread and the engine's stop callback look at. */
typedef struct pass {
    sched *s;
    sched_job **jobs;
    size_t n;
    int64_t start_ns, est_ns;
    int64_t next_poll_ns;
    int all_gone;
    struct pass *next;
} pass;

struct sched {
    sched_config cfg;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;  /* compute threads: a job arrived, a pause ended, stop */
    pthread_cond_t timer_cv; /* the timer thread: stop */
    sched_job *head;         /* queued jobs, sorted by key_ns */
    long n_jobs;
    double queued_flops;
    int64_t queued_est_ns;
    pass *running;
    long n_running;
    double rate; /* FLOPs per ns per thread, measured */
    int paused, stopping;
    atomic_int aborting;
    pthread_t *workers;
    int n_workers;
    pthread_t timer;
    int timer_running;
    int stopped; /* sched_stop has returned */
};

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static size_t job_steps(const sched_job *j)
{
    size_t n = 0;
    if (!j->batch)
        return 0;
    for (size_t i = 0; i < j->batch->batch; i++)
        n += (size_t)j->batch->lengths[i];
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * The queue (callers hold mu) */

static void enqueue(sched *s, sched_job *j)
{
    sched_job **p = &s->head;
    while (*p && (*p)->key_ns <= j->key_ns)
        p = &(*p)->next;
    j->next = *p;
    *p = j;
    s->n_jobs++;
    s->queued_flops += j->flops;
    s->queued_est_ns += j->est_ns;
}

static void unlink_job(sched *s, sched_job **link)
{
    sched_job *j = *link;
    *link = j->next;
    j->next = NULL;
    s->n_jobs--;
    s->queued_flops -= j->flops;
    s->queued_est_ns -= j->est_ns;
    if (s->n_jobs == 0) /* no drift from the subtractions */
        s->queued_flops = 0, s->queued_est_ns = 0;
}

/* Estimated ns until a job with key KEY would start: the queued work ahead of it and what the
 * running passes have left, spread over the threads. */
static int64_t wait_estimate(const sched *s, int64_t key, int64_t now)
{
    int64_t ahead = 0;
    for (const sched_job *j = s->head; j && j->key_ns <= key; j = j->next)
        ahead += j->est_ns;
    for (const pass *p = s->running; p; p = p->next) {
        int64_t left = p->est_ns - (now - p->start_ns);
        ahead += left > 0 ? left : 0;
    }
    /* With free threads the job starts at once (its own pass). */
    if (s->n_running < s->cfg.threads && s->n_jobs < s->cfg.threads - s->n_running)
        return 0;
    return ahead / s->cfg.threads;
}

/* ---------------------------------------------------------------------------------------------
 * Finishing jobs (never with mu held: `done` may take the caller's own locks) */

static void finish(sched_job *j, sched_outcome o, const char *msg, int64_t now)
{
    if (!j->wait_ns)
        j->wait_ns = now - j->enq_ns;
    j->done(j, o, msg ? msg : "", j->ctx);
}

static const char *outcome_msg(sched_outcome o, char *buf, size_t len, const sched_job *j,
                               int64_t now)
{
    switch (o) {
    case SCHED_EXPIRED:
        snprintf(buf, len,
                 "deadline passed after %.0f ms in the queue, before the request could be computed",
                 (double)(now - j->enq_ns) / 1e6);
        break;
    case SCHED_CANCELLED:
        snprintf(buf, len, "cancelled: the client closed its connection");
        break;
    case SCHED_STOPPED:
        snprintf(buf, len, "the server is shutting down and could not compute this request");
        break;
    default:
        snprintf(buf, len, "%s", "");
    }
    return buf;
}

/* Removes from the queue every job that is past its deadline, whose requester is gone, or (when
 * aborting) any job, into *out (a list through next). Caller holds mu. */
static void sweep(sched *s, int64_t now, sched_job **expired, sched_job **cancelled,
                  sched_job **stopped)
{
    int abort = atomic_load(&s->aborting);
    sched_job **p = &s->head;
    while (*p) {
        sched_job *j = *p;
        sched_job **dst = abort                        ? stopped
                          : j->deadline_ns <= now      ? expired
                          : j->gone && j->gone(j->ctx) ? cancelled
                                                       : NULL;
        if (!dst) {
            p = &j->next;
            continue;
        }
        unlink_job(s, p);
        j->next = *dst;
        *dst = j;
    }
}

static void finish_list(sched_job *list, sched_outcome o, int64_t now)
{
    char msg[160];
    while (list) {
        sched_job *j = list;
        list = j->next;
        finish(j, o, outcome_msg(o, msg, sizeof msg, j, now), now);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Passes */

/* The engine's stop callback, polled at step boundaries: stop when aborting, or when every
 * requester of the pass is gone (asked at most every POLL_NS). */
static int pass_should_stop(void *ctx)
{
    pass *p = ctx;
    if (atomic_load(&p->s->aborting))
        return 1;
    int64_t now = now_ns();
    if (now < p->next_poll_ns)
        return 0;
    p->next_poll_ns = now + POLL_NS;
    for (size_t i = 0; i < p->n; i++)
        if (!p->jobs[i]->gone || !p->jobs[i]->gone(p->jobs[i]->ctx))
            return 0;
    p->all_gone = 1;
    return 1;
}

/* Merging pays by streaming the weights once per step for all the pass's rows; it costs cache
 * for the activations each step row touches per layer (its projection, the layer's output and
 * the rows the next layer or the caller reads). A model whose largest layer's weights fit a
 * core's cache gains nothing by it once the pass's activations outgrow twice that cache, and
 * loses: "M" (rnn, H 128, weights 80 KB; a request of 1,200 steps touches 1.8 MB) ran 635 us a
 * request alone, 624 two to a pass, 697 four, 905 eight (engine only, one thread), and binary
 * /v2 M served 1,191 req/s merging vs 1,490 not (8 connections). A model whose weights do not fit
 * ("B", LSTM H 512, 4.7 MB a layer) merges as far as the other bounds allow. Returns the most
 * step rows a pass seeded by SEED may hold under this rule (SIZE_MAX: no bound). */
static size_t merge_row_cap(const sched *s, const sched_job *seed)
{
    if (!s->cfg.merge_cache_bytes || !seed->batch || !seed->model)
        return SIZE_MAX;
    const rnn_info *in = rnn_model_info(seed->model);
    const size_t H = (size_t)in->hidden_size, GH = (size_t)in->gates * H;
    const size_t DH = (size_t)in->num_directions * H;
    const size_t I = (size_t)in->input_size > DH ? (size_t)in->input_size : DH;
    const size_t weights = GH * (I + H) * sizeof(float), row = (GH + 2 * DH) * sizeof(float);
    if (weights > s->cfg.merge_cache_bytes)
        return SIZE_MAX;
    return 2 * s->cfg.merge_cache_bytes / row;
}

/* Takes the first queued job and the later jobs it can merge with into P. Caller holds mu. */
static void take_pass(sched *s, pass *p, sched_job **buf, size_t cap)
{
    sched_job *seed = s->head;
    size_t seqs = seed->batch ? seed->batch->batch : 0, rows = job_steps(seed);
    const size_t row_cap = merge_row_cap(s, seed);
    double flops = seed->flops;
    p->n = 0;
    unlink_job(s, &s->head);
    buf[p->n++] = seed;
    p->est_ns = seed->est_ns;
    for (sched_job **q = &s->head; *q && p->n < cap;) {
        sched_job *j = *q;
        if (!seed->run && !j->run && j->model == seed->model &&
            seqs + j->batch->batch <= s->cfg.max_pass_sequences &&
            p->est_ns + j->est_ns <= s->cfg.max_pass_ns && j->flops <= flops &&
            rows + job_steps(j) <= row_cap) {
            seqs += j->batch->batch;
            rows += job_steps(j);
            flops += j->flops;
            p->est_ns += j->est_ns;
            unlink_job(s, q);
            buf[p->n++] = j;
        } else {
            q = &j->next;
        }
    }
    p->jobs = buf;
}

/* N floats (at least one, so that 0 is not a failure), zeroed when ZERO. */
static float *floats(size_t n, int zero)
{
    return zero ? calloc(n + 1, sizeof(float)) : malloc((n + 1) * sizeof(float));
}

/* Runs the jobs of P as one engine pass and splits the results. The engine writes each
 * sequence's output rows straight into its job's buffers (rnn_result.out_rows); only the inputs
 * and the small final states are gathered and split. Returns 0, -1 with err (the engine refused
 * the merged batch), or -2 when the pass was stopped. */
static int run_merged(pass *p, char *err, size_t errlen)
{
    const rnn_model *m = p->jobs[0]->model;
    const rnn_info *in = rnn_model_info(m);
    const size_t I = (size_t)in->input_size, H = (size_t)in->hidden_size;
    const size_t LDH = (size_t)in->num_layers * (size_t)in->num_directions * H;
    const size_t DH = (size_t)in->num_directions * H;
    size_t B = 0, N = 0, sink_steps = 0;
    int any_h0 = 0, any_c0 = 0, want_out = 0, want_h = 0, want_c = 0;
    for (size_t k = 0; k < p->n; k++) {
        const sched_job *j = p->jobs[k];
        B += j->batch->batch;
        N += job_steps(j);
        if (!j->result->outputs && !j->result->out_rows)
            sink_steps += job_steps(j);
        any_h0 |= j->batch->h0 != NULL;
        any_c0 |= j->batch->c0 != NULL;
        want_out |= j->result->outputs != NULL;
        want_h |= j->result->hidden != NULL;
        want_c |= j->result->cell != NULL;
    }
    int rc = -1;
    int32_t *lengths = malloc((B + 1) * sizeof *lengths);
    float *x = floats(N * I, 0);
    float *h0 = any_h0 ? floats(B * LDH, 1) : NULL;
    float *c0 = any_c0 ? floats(B * LDH, 1) : NULL;
    /* Every sequence's output rows, when any job wants them (the engine keeps the state in
     * them): a job that does not gets rows in SINK. */
    float **out_rows = want_out ? malloc((B + 1) * sizeof *out_rows) : NULL;
    float *sink = want_out && sink_steps ? floats(sink_steps * DH, 0) : NULL;
    float *hidden = want_h ? floats(B * LDH, 0) : NULL;
    float *cell = want_c ? floats(B * LDH, 0) : NULL;
    if (!lengths || !x || (any_h0 && !h0) || (any_c0 && !c0) || (want_out && !out_rows) ||
        (want_out && sink_steps && !sink) || (want_h && !hidden) || (want_c && !cell)) {
        snprintf(err, errlen, "out of memory merging %zu requests (%zu steps)", p->n, N);
        goto done;
    }
    /* Gather: sequences back to back in job order; absent h0/c0 are zeros, as alone. */
    size_t b = 0, n = 0, sunk = 0;
    for (size_t k = 0; k < p->n; k++) {
        const rnn_batch *jb = p->jobs[k]->batch;
        const rnn_result *jr = p->jobs[k]->result;
        size_t steps = job_steps(p->jobs[k]);
        for (size_t i = 0, row = 0; out_rows && i < jb->batch; row += (size_t)jb->lengths[i++])
            out_rows[b + i] = jr->out_rows  ? jr->out_rows[i]
                              : jr->outputs ? jr->outputs + row * DH
                                            : sink + (sunk + row) * DH;
        if (out_rows && !jr->out_rows && !jr->outputs)
            sunk += steps;
        memcpy(lengths + b, jb->lengths, jb->batch * sizeof *lengths);
        memcpy(x + n * I, jb->x, steps * I * sizeof *x);
        if (jb->h0)
            memcpy(h0 + b * LDH, jb->h0, jb->batch * LDH * sizeof *h0);
        if (jb->c0)
            memcpy(c0 + b * LDH, jb->c0, jb->batch * LDH * sizeof *c0);
        b += jb->batch;
        n += steps;
    }
    rnn_batch mb = {.batch = B,
                    .lengths = lengths,
                    .x = x,
                    .h0 = h0,
                    .c0 = c0,
                    .stop = pass_should_stop,
                    .stop_ctx = p};
    rnn_result mr = {.hidden = hidden, .cell = cell, .out_rows = out_rows};
    rc = rnn_forward(m, &mb, &mr, err, errlen);
    if (rc < 0)
        goto done;
    /* Split the final states: each job's rows are where its gather put them. */
    b = 0;
    for (size_t k = 0; k < p->n; k++) {
        const sched_job *j = p->jobs[k];
        size_t jb = j->batch->batch;
        if (j->result->hidden)
            memcpy(j->result->hidden, hidden + b * LDH, jb * LDH * sizeof *hidden);
        if (j->result->cell)
            memcpy(j->result->cell, cell + b * LDH, jb * LDH * sizeof *cell);
        b += jb;
    }
done:
    free(lengths);
    free(x);
    free(h0);
    free(c0);
    free(out_rows);
    free(sink);
    free(hidden);
    free(cell);
    return rc;
}

/* Runs P: one job straight into its own buffers, several merged. */
static int run_pass(pass *p, char *err, size_t errlen)
{
    if (p->n > 1)
        return run_merged(p, err, errlen);
    sched_job *j = p->jobs[0];
    if (j->run)
        return j->run(j, pass_should_stop, p, err, errlen);
    rnn_batch b = *j->batch;
    b.stop = pass_should_stop;
    b.stop_ctx = p;
    return rnn_forward(j->model, &b, j->result, err, errlen);
}

/* Waits (mu held) until a pass may start: 1 then, 0 when the thread should leave. */
static int wait_for_work(sched *s)
{
    for (;;) {
        int abort = atomic_load(&s->aborting);
        if (!s->head && s->stopping)
            return 0;
        /* Nothing to do, paused, or aborting (the timer thread ends the queued jobs then). */
        if (!s->head || (s->paused && !abort) || abort) {
            pthread_cond_wait(&s->work_cv, &s->mu);
            continue;
        }
        /* Waiting for company: the seed has been queued less than batch_delay, and the pass is
         * not full yet (a full pass goes at once). */
        int64_t now = now_ns(), until = s->head->enq_ns + s->cfg.batch_delay_ns;
        if (s->cfg.batch_delay_ns > 0 && !s->stopping && now < until &&
            (size_t)s->n_jobs < s->cfg.max_pass_sequences) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t wake = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + (until - now);
            ts.tv_sec = (time_t)(wake / 1000000000LL);
            ts.tv_nsec = (long)(wake % 1000000000LL);
            pthread_cond_timedwait(&s->work_cv, &s->mu, &ts);
            continue;
        }
        return 1;
    }
}

/* Last look before computing (mu not held): whoever left since the timer's sweep is dropped.
 * Returns how many jobs of P remain. */
static size_t drop_gone(pass *p, int64_t now)
{
    size_t kept = 0;
    for (size_t k = 0; k < p->n; k++) {
        sched_job *j = p->jobs[k];
        j->wait_ns = now - j->enq_ns;
        if (j->gone && j->gone(j->ctx)) {
            char msg[160];
            finish(j, SCHED_CANCELLED, outcome_msg(SCHED_CANCELLED, msg, sizeof msg, j, now), now);
        } else {
            p->jobs[kept++] = j;
        }
    }
    return p->n = kept;
}

/* Takes P off the running list (mu held) and learns the throughput from it: passes shorter than
 * 1 ms say more about overheads than about the engine, and a stopped pass says nothing. */
static void end_pass(sched *s, pass *p, int rc, int64_t end)
{
    for (pass **q = &s->running; *q; q = &(*q)->next)
        if (*q == p) {
            *q = p->next;
            break;
        }
    s->n_running--;
    double flops = 0;
    for (size_t k = 0; k < p->n; k++)
        flops += p->jobs[k]->flops;
    if (rc == 0 && end - p->start_ns > 1000000 && flops > 0)
        s->rate = 0.7 * s->rate + 0.3 * flops / (double)(end - p->start_ns);
}

/* Hands every job of P its outcome (mu not held). */
static void deliver(sched *s, pass *p, int rc, const char *err, int64_t end)
{
    size_t seqs = 0;
    for (size_t k = 0; k < p->n; k++)
        seqs += p->jobs[k]->batch ? p->jobs[k]->batch->batch : 0;
    char msg[160];
    for (size_t k = 0; k < p->n; k++) {
        sched_job *j = p->jobs[k];
        j->compute_ns = end - p->start_ns;
        j->pass_sequences = seqs;
        j->pass_jobs = p->n;
        sched_outcome o = rc == 0                                     ? SCHED_OK
                          : rc == -1                                  ? SCHED_FAILED
                          : atomic_load(&s->aborting) && !p->all_gone ? SCHED_STOPPED
                                                                      : SCHED_CANCELLED;
        finish(j, o, o == SCHED_FAILED ? err : outcome_msg(o, msg, sizeof msg, j, end), end);
    }
}

/* A compute thread: take a pass, compute it, hand the results back; until stopped. */
static void *worker_main(void *arg)
{
    sched *s = arg;
    size_t cap = s->cfg.max_pass_sequences;
    sched_job **buf = malloc(cap * sizeof *buf);
    sched_job *single[1]; /* when buf could not be had: one job a pass */
    char err[256];
    pthread_mutex_lock(&s->mu);
    while (wait_for_work(s)) {
        int64_t now = now_ns();
        pass p = {.s = s, .start_ns = now, .next_poll_ns = now + POLL_NS, .next = s->running};
        take_pass(s, &p, buf ? buf : single, buf ? cap : 1);
        s->running = &p;
        s->n_running++;
        pthread_mutex_unlock(&s->mu);

        int rc = drop_gone(&p, now) ? run_pass(&p, err, sizeof err) : 0;
        int64_t end = now_ns();
        pthread_mutex_lock(&s->mu);
        end_pass(s, &p, rc, end);
        pthread_mutex_unlock(&s->mu);
        deliver(s, &p, rc, err, end);

        pthread_mutex_lock(&s->mu);
        if (s->stopping && !s->head)
            pthread_cond_broadcast(&s->work_cv); /* the others may leave too */
    }
    pthread_mutex_unlock(&s->mu);
    free(buf);
    return NULL;
}

/* The timer thread: deadlines, requesters gone, and the abort of a stopping scheduler. */
static void *timer_main(void *arg)
{
    sched *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        int64_t now = now_ns();
        sched_job *expired = NULL, *cancelled = NULL, *stopped = NULL;
        sweep(s, now, &expired, &cancelled, &stopped);
        int leave = s->stopping && !s->head && s->n_running == 0;
        if (expired || cancelled || stopped) {
            pthread_mutex_unlock(&s->mu);
            finish_list(expired, SCHED_EXPIRED, now);
            finish_list(cancelled, SCHED_CANCELLED, now);
            finish_list(stopped, SCHED_STOPPED, now);
            pthread_mutex_lock(&s->mu);
            pthread_cond_broadcast(&s->work_cv);
            continue;
        }
        if (leave)
            break;
        /* Sleep until the next deadline or the next poll of requesters, whichever is first. */
        int64_t wake = now + POLL_NS;
        for (const sched_job *j = s->head; j; j = j->next)
            if (j->deadline_ns < wake)
                wake = j->deadline_ns;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t abs = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + (wake - now);
        if (wake <= now)
            continue;
        ts.tv_sec = (time_t)(abs / 1000000000LL);
        ts.tv_nsec = (long)(abs % 1000000000LL);
        pthread_cond_timedwait(&s->timer_cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Public */

int sched_start(const sched_config *cfg, sched **out, char *err, size_t errlen)
{
    *out = NULL;
    sched *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->cfg = *cfg;
    if (s->cfg.threads < 1)
        s->cfg.threads = 1;
    if (s->cfg.max_pass_sequences < 1)
        s->cfg.max_pass_sequences = 1;
    s->rate = RATE_GUESS;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work_cv, &ca);
    pthread_cond_init(&s->timer_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!(s->workers = calloc((size_t)s->cfg.threads, sizeof *s->workers))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (pthread_create(&s->timer, NULL, timer_main, s) != 0) {
        snprintf(err, errlen, "cannot start the scheduler's timer thread: %s", strerror(errno));
        goto fail;
    }
    s->timer_running = 1;
    for (; s->n_workers < s->cfg.threads; s->n_workers++)
        if (pthread_create(&s->workers[s->n_workers], NULL, worker_main, s) != 0) {
            snprintf(err, errlen, "cannot start compute thread %d: %s", s->n_workers,
                     strerror(errno));
            goto fail;
        }
    *out = s;
    return 0;
fail:
    sched_free(s);
    return -1;
}

int sched_express(sched *s, const rnn_model *model, double flops)
{
    int64_t now = now_ns();
    pthread_mutex_lock(&s->mu);
    double est = flops / s->rate;
    /* Queued work, all of it larger: an empty queue means the job starts at the next free
     * thread, and the next arrivals will merge with it. */
    int express = !s->stopping && est <= (double)EXPRESS_NS && s->head;
    if (express) {
        int64_t e = est < 1 ? 1 : (int64_t)est;
        int64_t wait = wait_estimate(s, now + KEY_WEIGHT * e, now);
        express = wait > EXPRESS_MIN_WAIT_NS && wait > EXPRESS_WAIT * e;
        /* Company to merge with is worth the wait: many small requests for one model are the
         * scheduler's best case, and must stay queued. */
        for (const sched_job *j = s->head; express && j; j = j->next)
            if (j->model == model && j->flops <= 2 * flops)
                express = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return express;
}

/* The "queue full" sentence. Caller holds mu. */
static void full_message(const sched *s, char *why, size_t whylen)
{
    snprintf(why, whylen,
             "queue full: %ld requests with about %.0f ms of compute are waiting (the bound is "
             "server.max_queue_ms %.0f); retry later",
             s->n_jobs, (double)s->queued_est_ns / s->cfg.threads / 1e6,
             (double)s->cfg.max_queue_ns / 1e6);
}

/* Seconds until the queue has drained, by the estimates, for Retry-After. Caller holds mu. */
static int retry_after(const sched *s)
{
    int64_t retry = (s->queued_est_ns / s->cfg.threads + 999999999LL) / 1000000000LL;
    return retry < 1 ? 1 : retry > 3600 ? 3600 : (int)retry;
}

int sched_full(sched *s, char *why, size_t whylen, int *retry_after_s)
{
    pthread_mutex_lock(&s->mu);
    int full =
        s->stopping || (s->n_jobs > 0 && s->queued_est_ns >= s->cfg.max_queue_ns * s->cfg.threads);
    if (full && s->stopping)
        snprintf(why, whylen, "the server is shutting down");
    else if (full)
        full_message(s, why, whylen);
    *retry_after_s = retry_after(s);
    pthread_mutex_unlock(&s->mu);
    return full;
}

int sched_submit(sched *s, sched_job *j, char *why, size_t whylen, int *retry_after_s)
{
    int64_t now = now_ns();
    *retry_after_s = 1;
    j->enq_ns = now;
    j->wait_ns = j->compute_ns = 0;
    j->pass_sequences = j->pass_jobs = 0;
    j->next = NULL;
    if (!j->deadline_ns)
        j->deadline_ns = now + s->cfg.queue_timeout_ns;
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        snprintf(why, whylen, "the server is shutting down");
        return -1;
    }
    double est = j->flops / s->rate;
    j->est_ns = est < 1 ? 1 : est > 1e15 ? (int64_t)1e15 : (int64_t)est;
    j->key_ns = now + KEY_WEIGHT * j->est_ns;
    int64_t wait = wait_estimate(s, j->key_ns, now);
    int64_t left = j->deadline_ns - now;
    *retry_after_s = retry_after(s);
    if (s->n_jobs > 0 && s->queued_est_ns + j->est_ns > s->cfg.max_queue_ns * s->cfg.threads) {
        full_message(s, why, whylen);
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    if (wait > left) {
        snprintf(why, whylen,
                 "the request's deadline (%.0f ms) is shorter than the queue's estimated wait "
                 "(%.0f ms); retry later or allow more time (\"timeout_ms\")",
                 (double)left / 1e6, (double)wait / 1e6);
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    enqueue(s, j);
    pthread_cond_signal(&s->work_cv);
    pthread_cond_signal(&s->timer_cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void sched_get_depth(sched *s, sched_depth *d)
{
    pthread_mutex_lock(&s->mu);
    d->jobs = s->n_jobs;
    d->queued_flops = s->queued_flops;
    d->running_passes = s->n_running;
    pthread_mutex_unlock(&s->mu);
}

void sched_pause(sched *s, int paused)
{
    pthread_mutex_lock(&s->mu);
    s->paused = paused;
    pthread_cond_broadcast(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
}

void sched_abort(sched *s)
{
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->aborting, 1);
    pthread_cond_broadcast(&s->work_cv);
    pthread_cond_broadcast(&s->timer_cv);
    pthread_mutex_unlock(&s->mu);
}

void sched_stop(sched *s, int abort)
{
    if (!s || s->stopped)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    s->paused = 0;
    if (abort)
        atomic_store(&s->aborting, 1);
    pthread_cond_broadcast(&s->work_cv);
    pthread_cond_broadcast(&s->timer_cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_workers; i++)
        pthread_join(s->workers[i], NULL);
    s->n_workers = 0;
    /* The workers are gone: the timer thread ends what is left (an abort) and leaves. */
    pthread_mutex_lock(&s->mu);
    if (s->head)
        atomic_store(&s->aborting, 1);
    pthread_cond_broadcast(&s->timer_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->timer_running)
        pthread_join(s->timer, NULL);
    s->timer_running = 0;
    s->stopped = 1;
}

void sched_free(sched *s)
{
    if (!s)
        return;
    sched_stop(s, 1);
    free(s->workers);
    pthread_cond_destroy(&s->work_cv);
    pthread_cond_destroy(&s->timer_cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
