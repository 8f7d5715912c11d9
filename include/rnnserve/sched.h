/* sched.h - the scheduler between the wire formats and the engine: one queue of forward jobs,
 * admission by estimated cost, deadlines, merging jobs for one model into one engine pass, and
 * cancellation of work nobody waits for.
 *
 * A job is a decoded ragged batch and the buffers its results go to. The scheduler borrows the
 * job from sched_submit until it calls the job's `done` exactly once, from one of its threads
 * (or never, when sched_submit refused the job). It knows nothing of HTTP or JSON: "is anyone
 * still waiting" is the submitter's `gone` callback. */
#ifndef RNNSERVE_SCHED_H
#define RNNSERVE_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "rnnserve/engine.h"

typedef enum {
    SCHED_OK,        /* computed: the job's result buffers hold its results */
    SCHED_FAILED,    /* the engine refused the batch (msg says why) */
    SCHED_EXPIRED,   /* its deadline passed while it was queued: not computed */
    SCHED_CANCELLED, /* its requester was gone: dropped from the queue, or its pass stopped */
    SCHED_STOPPED    /* the scheduler was stopped (shutdown) before or while computing it */
} sched_outcome;

typedef struct sched sched;
typedef struct sched_job sched_job;

struct sched_job {
    /* Filled by the submitter; the scheduler only reads them. */
    const rnn_model *model;
    const rnn_batch *batch;
    rnn_result *result;     /* sized for BATCH (rnn_result_sizes); NULL parts are not wanted */
    double flops;           /* estimated cost of the pass for this batch */
    int64_t deadline_ns;    /* CLOCK_MONOTONIC; 0: submit time + the scheduler's queue_timeout */
    int (*gone)(void *ctx); /* nonzero when nobody waits for the answer any more; may be NULL */
    /* Called exactly once per accepted job, on a scheduler thread, without scheduler locks held.
     * MSG is a NUL-terminated reason for every outcome but SCHED_OK. After it returns the
     * scheduler never touches the job again. */
    void (*done)(sched_job *j, sched_outcome o, const char *msg, void *ctx);
    void *ctx;
    /* NULL for a forward pass over BATCH (merged with others). Otherwise the job's own work, run
     * alone on a compute thread in place of a pass (a generation loop: many passes of its own):
     * it returns 0, -1 with err[errlen] (SCHED_FAILED), or RNN_STOPPED when STOP(STOP_CTX),
     * which it should ask between its passes (or pass on in its batches' stop field), said so
     * (its requester is gone, or the scheduler stops). BATCH and RESULT may then be NULL. */
    int (*run)(sched_job *j, int (*stop)(void *), void *stop_ctx, char *err, size_t errlen);

    /* Filled by the scheduler before `done`, for logs and metrics. */
    int64_t wait_ns;       /* queued: submit to the start of its pass (or to its end) */
    int64_t compute_ns;    /* the engine pass it ran in */
    size_t pass_sequences; /* sequences in that pass */
    size_t pass_jobs;      /* jobs merged into that pass */

    /* The scheduler's own. */
    sched_job *next;
    int64_t enq_ns, key_ns, est_ns;
};

typedef struct {
    int threads;               /* compute threads (>= 1) */
    size_t max_pass_sequences; /* sequences one merged pass may hold */
    int64_t max_pass_ns;       /* estimated compute one merged pass may hold */
    size_t merge_cache_bytes;  /* a core's cache: the merging bound of take_pass (0: none) */
    int64_t batch_delay_ns;    /* how long a pass may wait for company (0: never waits) */
    int64_t max_queue_ns;      /* estimated compute the queue may hold (admission bound) */
    int64_t queue_timeout_ns;  /* the deadline of a job that brings none */
} sched_config;

/* Starts CFG->threads compute threads and a timer thread. Returns 0 and a new scheduler in *out,
 * or -1 with the reason in err[errlen]. */
int sched_start(const sched_config *cfg, sched **out, char *err, size_t errlen);

/* Admission. Queues J and returns 0, or refuses it at once and returns -1 with a sentence in
 * why[whylen] (the queue is full; the deadline is shorter than the queue's estimated wait; the
 * scheduler is stopping) and the seconds after which a retry may succeed in *retry_after_s.
 * On -1 `done` is never called. */
int sched_submit(sched *s, sched_job *j, char *why, size_t whylen, int *retry_after_s);

/* Whether a small job (at most a few ms of compute) for MODEL would wait much longer than its own
 * cost behind larger passes, with nothing queued that it could merge with: its submitter then
 * does better to compute it at once on its own thread than to queue it (the express lane). */
int sched_express(sched *s, const rnn_model *model, double flops);

/* Whether the queue already holds all the work it may (any job would be refused as "queue
 * full" now): the HTTP layer asks before reading a body. RETRY_AFTER_S as sched_submit's. */
int sched_full(sched *s, char *why, size_t whylen, int *retry_after_s);

/* Queue depth now, for the metrics gauges. */
typedef struct {
    long jobs;           /* queued, not yet in a pass */
    double queued_flops; /* their estimated cost */
    long running_passes;
} sched_depth;
void sched_get_depth(sched *s, sched_depth *d);

/* Stops: no job is accepted any more (sched_submit refuses, safely, until sched_free); when
 * ABORT is 0 every queued job is still computed, when it is 1 queued jobs end SCHED_STOPPED at
 * once and running passes stop at their next step boundary. Returns once every accepted job's
 * `done` has been called and the threads are gone. A second call does nothing. */
void sched_stop(sched *s, int abort);

/* Stops (as sched_stop(s, 1) when not stopped yet) and frees S. NULL is allowed. */
void sched_free(sched *s);

/* Asks a running sched_stop(s, 0) to become an abort (SIGTERM's timeout_s ran out). Safe from
 * any thread while S is alive. */
void sched_abort(sched *s);

/* A test hook: while paused, no pass starts; jobs queue, expire and are cancelled as usual. */
void sched_pause(sched *s, int paused);

#endif
