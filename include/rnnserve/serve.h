/* serve.h - `rnnserve serve`: the process around the server (signals, logging, drain, exit).
 *
 * The app layer: main.c calls it; it drives server.h. */
#ifndef RNNSERVE_SERVE_H
#define RNNSERVE_SERVE_H

/* Command-line values that override the config's server section (NULL / -1: keep). */
typedef struct {
    const char *host;
    int port;
    int threads;
} serve_overrides;

/* The whole life of `rnnserve serve`: load the config, apply O, start, log, reload on SIGHUP,
 * wait for SIGTERM or SIGINT, drain within server.timeout_s, exit. Returns the process exit
 * code. */
int serve_main(const char *config_path, const serve_overrides *o);

#endif
