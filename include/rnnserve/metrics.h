/* metrics.h - request counters and latency histograms, rendered as Prometheus text.
 *
 * Lock-free (C11 atomics): every request thread records into it, /metrics renders a snapshot.
 * It knows route names only as labels given at creation, nothing of HTTP or models. */
#ifndef RNNSERVE_METRICS_H
#define RNNSERVE_METRICS_H

#include <stddef.h>

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

/* Renders everything in the Prometheus text exposition format 0.0.4 into a new malloc'ed,
 * NUL-terminated buffer (the caller frees it); *len excludes the NUL. NULL when out of memory. */
char *metrics_render(const metrics *m, size_t *len);

#endif
