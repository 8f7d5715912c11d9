/* serve.c - `rnnserve serve`: the process around the server. Applies the command line to the
 * config, takes SIGTERM, SIGINT and SIGHUP synchronously, logs the start, reloads and the drain,
 * and turns the outcome into an exit code. */
#include "rnnserve/serve.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rnnserve/config.h"
#include "rnnserve/engine.h"
#include "rnnserve/sysres.h"
#include "rnnserve/server.h"

/* Draining ends once no request has been in flight this long (see srv_wait_quiet). */
#define DRAIN_QUIET_MS 500

/* One log line of the process, "<ISO-8601 UTC> rnnserve: ...", dated as the access lines are:
 * a reload or a drain is then placed among the requests around it. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char ts[32], msg[1536];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s rnnserve: %s\n", ts, msg);
}

/* Applies O to CFG's server section. Returns -1 when out of memory. */
static int apply_overrides(cfg_config *cfg, const serve_overrides *o)
{
    if (!o)
        return 0;
    if (o->host) {
        char *h = strdup(o->host);
        if (!h)
            return -1;
        free(cfg->server.host);
        cfg->server.host = h;
    }
    if (o->port >= 0)
        cfg->server.port = o->port;
    if (o->threads >= 0)
        cfg->server.threads = o->threads;
    return 0;
}

static void log_listening(const cfg_config *cfg, srv *s)
{
    int compute = cfg->server.threads > 0 ? cfg->server.threads : sysres_cpus_usable();
    const char *host = cfg->server.host;
    int v6 = strchr(host, ':') != NULL;
    say("listening on %s://%s%s%s:%d (%d compute threads)", cfg->server.tls_cert ? "https" : "http",
        v6 ? "[" : "", host, v6 ? "]" : "", srv_port(s), compute);
}

/* SIGHUP reloads the models (server settings need a restart). Returns the signal that ends the
 * wait, SIGTERM or SIGINT. Once a second without one, it looks whether the server has been quiet
 * since the last look after being busy: the heap and the engine keep freed memory for the next
 * requests (sysres_heap_keep, the engine's large scratch), and this is when it goes back to the
 * system. */
static int serve_until_stopped(srv *s, const char *config_path, sigset_t *set)
{
    char err[1024];
    const struct timespec tick = {1, 0};
    long mark = -1;
    int busy = 0;
    for (;;) {
        int sig = sigtimedwait(set, NULL, &tick);
        if (sig < 0) { /* the tick (EAGAIN), or EINTR */
            if (!srv_quiet_since(s, &mark))
                busy = 1;
            else if (busy) {
                rnn_release_scratch();
                sysres_heap_release();
                busy = 0;
            }
            continue;
        }
        if (sig != SIGHUP)
            return sig;
        if (srv_reload(s, config_path, err, sizeof err) < 0) {
            say("SIGHUP: reload failed, still serving the previous models: %s", err);
            continue;
        }
        srv_log_models(s, "SIGHUP: reloaded ", 0);
    }
}

/* Drains within TIMEOUT_S: in-flight requests finish, then kept-alive connections settle. */
static void drain(srv *s, int timeout_s)
{
    srv_drain(s);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long left = srv_wait_idle(s, timeout_s * 1000);
    if (left) {
        say("%ld request(s) still open after %d s, closing them", left, timeout_s);
        srv_abort(s); /* passes still computing stop at their next step */
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!left)
        srv_wait_quiet(s,
                       timeout_s * 1000 - (int)((t1.tv_sec - t0.tv_sec) * 1000 +
                                                (t1.tv_nsec - t0.tv_nsec) / 1000000),
                       DRAIN_QUIET_MS);
}

int serve_main(const char *config_path, const serve_overrides *o)
{
    char err[1024];
    cfg_config *cfg = NULL;
    srv *s = NULL;
    sigset_t set;

    if (cfg_load_file(config_path, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "rnnserve: %s\n", err);
        return 1;
    }
    if (apply_overrides(cfg, o) < 0) {
        cfg_free(cfg);
        return 1;
    }

    /* Signals are taken synchronously by this thread (sigwait); every thread started below
     * inherits the mask, so none of them is interrupted. Writes to a closed peer or pipe must
     * return EPIPE, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    sysres_heap_keep();
    if (srv_start(cfg, &s, err, sizeof err) < 0) {
        fprintf(stderr, "rnnserve: %s\n", err);
        cfg_free(cfg);
        return 1;
    }
    srv_log_models(s, "", 1);
    log_listening(cfg, s);

    int sig = serve_until_stopped(s, config_path, &set);
    say("%s received, draining (up to %d s)", sig == SIGINT ? "SIGINT" : "SIGTERM",
        cfg->server.timeout_s);
    drain(s, cfg->server.timeout_s);
    srv_stop(s);
    cfg_free(cfg);
    say("stopped");
    return 0;
}
