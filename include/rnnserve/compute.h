/* compute.h - the compute hand-off: forward passes leave the I/O threads here.
 *
 * A request whose body is complete is submitted as a job. It is decoded on the caller's thread;
 * a cheap one is computed there at once, any other is parked by its submitter and handed to the
 * scheduler (sched.h), which admits it or refuses it (503), merges it with other requests for
 * the same model, drops it when its client has gone, and hands it back encoded. Nothing here
 * knows of HTTP connections. */
#ifndef RNNSERVE_COMPUTE_H
#define RNNSERVE_COMPUTE_H

#include <stddef.h>
#include <stdint.h>

#include "rnnserve/api.h"
#include "rnnserve/compress.h"
#include "rnnserve/config.h"
#include "rnnserve/sched.h"

typedef struct compute compute;

/* How a job ended, for the access log and the metrics. */
typedef enum {
    COMPUTE_DONE,      /* answered with its result or a decode error */
    COMPUTE_REJECTED,  /* refused at admission (503 with Retry-After) */
    COMPUTE_EXPIRED,   /* its deadline passed while it was queued (503) */
    COMPUTE_CANCELLED, /* its client left before it was computed: nothing to answer */
    COMPUTE_STOPPED,   /* the server stopped before computing it (503) */
    COMPUTE_FAILED     /* the engine refused it (500) */
} compute_outcome;

typedef struct compute_job {
    /* in, borrowed until the job is done */
    const api_wire *wire;
    const rnn_model *model;
    const char *body;
    size_t len;
    api_framing framing; /* the body's (Inference-Header-Content-Length); zero: all JSON */
    cz_coding coding;    /* the response's coding (Accept-Encoding): a queued job's answer is
                            compressed on the scheduler's thread that encoded it */
    int64_t arrival_ns;  /* CLOCK_MONOTONIC: the request's own deadline counts from here */
    /* out: the answer (*out is the submitter's to free; NULL with COMPUTE_CANCELLED) */
    int status;
    char *out;
    size_t outlen;
    const char *ctype; /* out's Content-Type (static) */
    size_t header_len; /* > 0: a binary response, its Inference-Header-Content-Length */
    cz_coding coded;   /* what out is compressed with (CZ_IDENTITY: as encoded, for the
                          submitter to compress or not) */
    int retry_after_s; /* > 0: send Retry-After */
    compute_outcome outcome;
    const char *reason; /* a short word for the access log when not COMPUTE_DONE */
    api_stats stats;
    /* out: where the time went, in ns (0 when the phase did not happen) */
    int64_t decode_ns, wait_ns, compute_ns, encode_ns;
    size_t pass_sequences, pass_jobs; /* the engine pass it ran in */
    /* The submitter's hooks for a queued job. park runs on the submitting thread before the job
     * can be taken; resume runs on a scheduler thread once the outputs are written; gone says,
     * from any thread, whether the client has left (NULL: never asked). */
    void (*park)(struct compute_job *);
    void (*resume)(struct compute_job *);
    int (*gone)(struct compute_job *);
    void *ctx;
    /* A session step's hook (NULL: none): runs exactly once on the thread that computed the
     * pass, right after it and before encoding, OK 1 when it succeeded (api_call_result(call)
     * holds the final states), else 0 with nothing computed (refused, expired, cancelled,
     * stopped, failed). COMPUTED_CTX is the submitter's. */
    void (*computed)(struct compute_job *, int ok);
    void *computed_ctx;
    /* in/out: a call the submitter decoded itself (api_decode, timed in decode_ns), which the
     * job then owns and frees (no body is read); NULL: the hand-off decodes BODY */
    api_call *call;
    /* the hand-off's own */
    sched_job sj;
} compute_job;

/* Starts the scheduler with S's settings (server.threads compute threads, 0: one per usable
 * core, and the scheduler's knobs) and sets the engine's thread policy to match; LIM is copied.
 * Returns NULL with the reason in err[errlen]. */
compute *compute_new(const cfg_server *s, const api_limits *lim, char *err, size_t errlen);

/* Whether a decoded call is computed inline on the I/O thread (cheap by what it will cost and
 * produce: under ~2 MFLOP and 64 KB of response) rather than handed to the scheduler. */
int compute_runs_inline(const api_call *call);

/* Runs JOB. Returns 1 when it was answered on the caller's thread (a decode error, or cheap
 * enough to compute inline): the outputs are set and no hook is called. Returns 0 when it was
 * parked: resume() follows exactly once, from another thread or from this one. */
int compute_submit(compute *c, compute_job *job);

/* Hands SJ, a job that brings its own work (sj->run: a generation loop), to the scheduler as it
 * is: its admission, deadline, cancellation and `done` are the scheduler's (sched.h). Returns 0
 * when accepted (`done` follows exactly once), or -1 with a sentence in why[whylen] and the
 * seconds after which a retry may succeed in *retry_after_s when refused (the server is
 * stopping, or the queue is full): `done` is then never called. */
int compute_submit_job(compute *c, sched_job *sj, char *why, size_t whylen, int *retry_after_s);

/* Whether a forward request would be refused now whatever its size (the queue is full, or the
 * server is stopping): asked before its body is read, so that overload costs no body reads.
 * Fills why and *retry_after_s when it returns 1. */
int compute_busy(compute *c, char *why, size_t whylen, int *retry_after_s);

/* Queue depth now (for the metrics' gauges). */
void compute_depth(compute *c, sched_depth *d);

/* Freezes computing (PAUSED 1) or lets it go on (0), for tests and operators' debugging: while
 * paused nothing is computed, not even a request cheap enough to run inline or one the express
 * lane would take (every forward request is queued, as a session step or a generation is), so
 * that what is queued stays so; deadlines still expire queued requests, clients that leave are
 * still dropped, and admission still refuses by the queued estimates. compute_stop ends a pause
 * (a paused server still drains). */
void compute_pause(compute *c, int paused);

/* Stops accepting and computes what is queued (ABORT 0), or ends queued jobs and stops running
 * passes at their next step (ABORT 1: the drain deadline ran out); every parked job is resumed.
 * A later submit is answered 503 on the caller's thread. */
void compute_stop(compute *c, int abort);

/* Turns a compute_stop(c, 0) in progress on another thread into an abort. */
void compute_abort(compute *c);

/* Stops (if not yet) and frees. NULL is allowed. */
void compute_free(compute *c);

#endif
