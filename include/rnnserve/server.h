/* server.h - the HTTP service: routes, limits, CORS, metrics, drain (libmicrohttpd).
 *
 * Serves every model of a config per spec/API.md. Knows nothing of BLAS or of the JSON inside a
 * forward request: bodies go to the codec, answers come back as bytes. */
#ifndef RNNSERVE_SERVER_H
#define RNNSERVE_SERVER_H

#include <stddef.h>

#include "rnnserve/config.h"

typedef struct srv srv;

/* Command-line values that override the config's server section (NULL / -1: keep). */
typedef struct {
    const char *host;
    int port;
    int threads;
} srv_overrides;

/* Loads every model of CFG (borrowed; it must outlive the server), binds and starts serving.
 * Returns 0 and a new server in *out, or -1 with the reason in err[errlen]: a model that does not
 * load fails here, before the port is bound. Stop with srv_stop. */
int srv_start(const cfg_config *cfg, srv **out, char *err, size_t errlen);

/* The TCP port actually bound (useful with port 0). */
int srv_port(const srv *s);

/* Starts draining: /readyz answers 503, no new connections are accepted, responses carry
 * "Connection: close". Requests already accepted are still answered. */
void srv_drain(srv *s);

/* Waits until no request is in flight or TIMEOUT_MS has passed. Returns the number still in
 * flight (0 when idle). */
long srv_wait_idle(srv *s, int timeout_ms);

/* Reloads the models from the config at CONFIG_PATH without dropping a request: everything is
 * loaded and validated first, then swapped in; requests in flight finish on the models they
 * started with. The new file's server section is ignored (it needs a restart). Returns 0, or -1
 * with the reason in err[errlen] while the old models keep serving. Thread-safe. */
int srv_reload(srv *s, const char *config_path, char *err, size_t errlen);

/* Stops the daemon and the compute threads, frees everything. NULL is allowed. */
void srv_stop(srv *s);

/* The whole life of `rnnserve serve`: load the config, apply O, start, log, wait for SIGTERM or
 * SIGINT, drain within server.timeout_s, exit. Returns the process exit code. */
int srv_main(const char *config_path, const srv_overrides *o);

#endif
