/* metrics.h - request counters and latency histograms, per route and per model, and the
 * scheduler's and reloads' figures, rendered as Prometheus text.
 *
 * Lock-free on the observe path (C11 atomics): every request thread records into it, /metrics
 * renders a snapshot. It knows routes and models only as label values, nothing of HTTP. */
#ifndef RNNSERVE_METRICS_H
#define RNNSERVE_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct metrics metrics;

/* Creates the registry for routes ROUTES[0..n_routes) (label values, e.g. "forward"; the strings
 * are copied). BUILD_LABELS is the label set of rnnserve_build_info, e.g.
 * `version="0.1.0",libmicrohttpd="0.9.75"` (copied). Returns NULL when out of memory; free with
 * metrics_free. */
metrics *metrics_new(const char *const *routes, size_t n_routes, const char *build_labels);

void metrics_free(metrics *m);

/* Records one answered request: its route index, HTTP status, duration in seconds, and the
 * sequences and time steps it computed (0 for non-forward routes). Thread-safe. */
void metrics_observe(metrics *m, size_t route, int status, double seconds, size_t sequences,
                     size_t steps);

/* Requests being processed now: +1 when one starts, -1 when it ends. Thread-safe. */
void metrics_inflight_add(metrics *m, int delta);

/* Current in-flight count. */
long metrics_inflight(const metrics *m);

/* Model labels the registry holds at most. Models come and go with reloads; a name seen after
 * this many others is counted under model="other", so the series set stays bounded. */
#define METRICS_MAX_MODELS 256

/* The label slot of model NAME, registered (copied) on first use; the "other" slot when the
 * table is full or out of memory. Thread-safe; takes a lock only to register. */
size_t metrics_model(metrics *m, const char *name);

/* How a forward request ended (the compute hand-off's outcomes, as this leaf knows them). */
typedef enum {
    METRICS_DONE,      /* answered: its result or a decode error */
    METRICS_REJECTED,  /* refused at admission */
    METRICS_EXPIRED,   /* its deadline passed while queued */
    METRICS_CANCELLED, /* its client left before it was computed */
    METRICS_STOPPED,   /* the server stopped before computing it */
    METRICS_FAILED     /* the engine refused it */
} metrics_outcome;

/* One forward request, as on_completed knows it. A phase that did not happen is < 0. */
typedef struct {
    int status; /* 0: nothing was answered (cancelled) */
    double seconds;
    metrics_outcome outcome;
    int64_t decode_ns, wait_ns, compute_ns, encode_ns;
    size_t pass_sequences, pass_jobs; /* the engine pass it ran in; 0: not computed */
} metrics_forward;

/* A forward request whose model is unknown: only its outcome and pass are counted. */
#define METRICS_NO_MODEL SIZE_MAX

/* Records a forward request for model slot MODEL (metrics_model, or METRICS_NO_MODEL): its status
 * and duration, its phases, its pass's size and its outcome. The route series are
 * metrics_observe's. */
void metrics_observe_forward(metrics *m, size_t model, const metrics_forward *f);

/* What the registry does not own but renders: the scheduler's queue and the reloads. */
typedef struct {
    long queued_requests;
    double queued_flops; /* estimated work of the queued requests */
    long running_passes;
    uint64_t reloads_ok, reloads_failed;
    double last_reload_s; /* Unix time of the last successful reload; 0: none yet */
} metrics_state;

/* Renders everything, with ST's figures (NULL: left out), in the Prometheus text exposition
 * format 0.0.4 into a new malloc'ed, NUL-terminated buffer (the caller frees it); *len excludes
 * the NUL. NULL when out of memory. */
char *metrics_render(const metrics *m, const metrics_state *st, size_t *len);

#endif
