/* compute.h - the compute hand-off: forward passes leave the I/O threads here.
 *
 * A request whose body is complete is submitted as a job; a cheap one runs at once on the
 * caller's thread, any other is parked by its submitter and run by one of a bounded pool of
 * threads, which then hands it back. Nothing here knows of HTTP connections. */
#ifndef RNNSERVE_COMPUTE_H
#define RNNSERVE_COMPUTE_H

#include <stddef.h>

#include "rnnserve/api.h"

typedef struct compute compute;

typedef struct compute_job {
    /* in, borrowed until the job is done */
    const api_wire *wire;
    const rnn_model *model;
    const char *body;
    size_t len;
    /* out, as api_forward gives them (*out is the submitter's to free) */
    int status;
    char *out;
    size_t outlen;
    api_stats stats;
    /* The submitter's hooks for a queued job. park runs on the submitting thread under the
     * queue's lock, before any pool thread can take the job; resume runs on the pool thread
     * once the outputs are written. */
    void (*park)(struct compute_job *);
    void (*resume)(struct compute_job *);
    void *ctx;
    struct compute_job *next; /* the queue's */
} compute_job;

/* Starts THREADS pool threads (server.threads: 0 is one per usable core) and sets the engine's
 * thread policy to match; LIM is copied. Returns NULL with the reason in err[errlen]. */
compute *compute_new(int threads, const api_limits *lim, char *err, size_t errlen);

/* Runs JOB. Returns 1 when it ran inline (cheap, or the pool is stopping): the outputs are set
 * and neither hook is called. Returns 0 when it was parked and queued: resume() follows. */
int compute_submit(compute *c, compute_job *job);

/* Finishes every queued job, then joins the threads; later submits run inline. */
void compute_stop(compute *c);

/* Stops (if not yet) and frees. NULL is allowed. */
void compute_free(compute *c);

#endif
