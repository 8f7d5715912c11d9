/* server.h - the HTTP service's instance: start, port, drain, reload, stop (libmicrohttpd).
 *
 * Serves every model of a config per docs/API.md and the route table (routes.h). Knows nothing
 * of BLAS or of the JSON inside a forward request: bodies go through api.h, answers come back as
 * bytes. */
#ifndef RNNSERVE_SERVER_H
#define RNNSERVE_SERVER_H

#include <stddef.h>

#include "rnnserve/config.h"

typedef struct srv srv;

/* Loads every model of CFG (borrowed; it must outlive the server), binds and starts serving.
 * Returns 0 and a new server in *out, or -1 with the reason in err[errlen]: a model that does not
 * load fails here, before the port is bound. Stop with srv_stop. */
int srv_start(const cfg_config *cfg, srv **out, char *err, size_t errlen);

/* The TCP port actually bound (useful with port 0). */
int srv_port(const srv *s);

/* Starts draining: /readyz answers 503, no new connections are accepted, responses carry
 * "Connection: close". Requests already accepted are still answered. */
void srv_drain(srv *s);

/* The drain deadline has passed: queued requests are answered 503 at once and running passes
 * stop at their next step boundary (answered 503 too), so that stopping takes no longer. */
void srv_abort(srv *s);

/* Freezes the compute pool (PAUSED 1) or lets it go on (0), for tests and operators' debugging:
 * while paused no forward pass, session step or generation is computed (cheap requests too are
 * queued rather than computed on the I/O thread), but deadlines and cancellations still apply
 * and admission still refuses a full queue; see compute_pause. srv_stop ends a pause. */
void srv_pause_compute(srv *s, int paused);

/* Waits until no request is in flight or TIMEOUT_MS has passed. Returns the number still in
 * flight (0 when idle). */
long srv_wait_idle(srv *s, int timeout_ms);

/* After the last request in flight, a kept-alive connection may still carry a next request that
 * its client sent before any answer could tell it "Connection: close": stopping at once would
 * drop it unanswered. Waits until every connection has closed, or no request has begun or been
 * in flight for QUIET_MS, or DEADLINE_MS has passed. (A client that waits longer than that
 * before reusing its connection can still find it closed: HTTP lets a server close an idle
 * connection, and clients must be ready for it.) */
void srv_wait_quiet(srv *s, int deadline_ms, int quiet_ms);

/* 1 when no request has begun since the call that set *MARK and none is in flight now; sets
 * *MARK for the next call (start it at -1). The app's idle moment to give memory back. */
int srv_quiet_since(srv *s, long *mark);

/* Reloads the models from the config at CONFIG_PATH without dropping a request: everything is
 * loaded and validated first, then swapped in; requests in flight finish on the models they
 * started with. The new file's server section is ignored (it needs a restart). Returns 0, or -1
 * with the reason in err[errlen] while the old models keep serving. Thread-safe. */
int srv_reload(srv *s, const char *config_path, char *err, size_t errlen);

/* Logs one line per model served, "rnnserve: PREFIXmodel NAME: SUMMARY", the first marked as
 * the default when MARK_DEFAULT. */
void srv_log_models(srv *s, const char *prefix, int mark_default);

/* Stops the daemon and the compute threads, frees everything. NULL is allowed. */
void srv_stop(srv *s);

#endif
