/* server.c - the server instance: assembling the HTTP layer's parts (models, metrics, compute
 * hand-off, listening socket, libmicrohttpd) at start, and its drain, reload and stop.
 *
 * Threads: libmicrohttpd's epoll workers only move bytes (http.c); forward passes run on the
 * compute pool (compute.c); one thread accepts (accept.c). See docs/ARCHITECTURE.md. */
#include <errno.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_impl.h"
#include "session_routes.h"
#include "rnnserve/file.h"
#include "rnnserve/sysres.h"
#include "rnnserve/version.h"

/* Reads a PEM file into a new NUL-terminated buffer; NULL with a message naming KEY and PATH. */
/* A PEM file's text: a regular file of at most FILE_CAP_PEM bytes (a FIFO or a device is refused
 * at once, never waited on), holding a PEM block. NULL with the reason in err[errlen]. */
static char *read_pem(const char *path, const char *key, char *err, size_t errlen)
{
    char *buf = NULL, why[512];
    size_t len;
    if (file_read_all(path, FILE_CAP_PEM, &buf, &len, why, sizeof why) < 0) {
        snprintf(err, errlen, "server.%s: %s", key, why);
        return NULL;
    }
    if (strstr(buf, "-----BEGIN "))
        return buf;
    snprintf(err, errlen, "server.%s: %s is not a PEM file", key, path);
    free(buf);
    return NULL;
}

/* The metrics registry, labelled by the route table. */
static int start_metrics(srv *s)
{
    const char *labels[ROUTES_MAX + 2];
    size_t n = routes_labels(s, labels, sizeof labels / sizeof *labels);
    char build[256];
    snprintf(build, sizeof build, "version=\"%s\",libmicrohttpd=\"%s\"", RNNSERVE_VERSION,
             MHD_get_version());
    return (s->met = metrics_new(labels, n, build)) ? 0 : -1;
}

/* HTTPS through libmicrohttpd's GnuTLS: the PEM files are read here so that a bad path fails at
 * start, naming it. */
static int load_tls(srv *s, char *err, size_t errlen)
{
    const cfg_server *cs = &s->cfg->server;
    if (!cs->tls_cert)
        return 0;
    if (!(s->tls_cert = read_pem(cs->tls_cert, "tls_cert", err, errlen)) ||
        !(s->tls_key = read_pem(cs->tls_key, "tls_key", err, errlen)))
        return -1;
    return 0;
}

/* Plain HTTP: each connection's first request head is vetted before libmicrohttpd reads it
 * (http_vet); under TLS the head is encrypted, and libmicrohttpd answers alone. */
static int vet_heads(srv *s)
{
    if (!s->tls_cert)
        accept_vet(&s->acc, http_vet, s, s->cfg->server.timeout_s);
    return 0;
}

/* The sweeper: expires idle sessions every second, so that their memory is freed on time on an
 * idle server too (the table otherwise expires them only on its next call). */
static void *sweep_main(void *p)
{
    srv *s = p;
    pthread_mutex_lock(&s->sweep_mu);
    while (!s->sweep_stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&s->sweep_cv, &s->sweep_mu, &until);
        if (s->sweep_stop)
            break;
        pthread_mutex_unlock(&s->sweep_mu);
        sess_sweep(s->sessions);
        pthread_mutex_lock(&s->sweep_mu);
    }
    pthread_mutex_unlock(&s->sweep_mu);
    return NULL;
}

/* The session table from server.max_sessions and server.session_ttl_s, and its sweeper. The last
 * 4 x max_sessions ends are remembered, so that a client is told 410 (and why) rather than 404;
 * at most SESS_REMEMBER_MAX of them (the ring is allocated whole: ~2 MB, and ~200 bytes an end). */
#define SESS_REMEMBER_MAX ((size_t)1 << 18)
static int start_sessions(srv *s, char *err, size_t errlen)
{
    const cfg_server *cs = &s->cfg->server;
    const sess_config sc = {.max_sessions = (size_t)cs->max_sessions,
                            .ttl_ns = (int64_t)cs->session_ttl_s * 1000000000LL,
                            .remember_ends = 4 * (size_t)cs->max_sessions < SESS_REMEMBER_MAX
                                                 ? 4 * (size_t)cs->max_sessions
                                                 : SESS_REMEMBER_MAX};
    char why[256];
    if (!(s->sessions = sess_new(&sc, why, sizeof why))) {
        snprintf(err, errlen, "sessions: %s", why);
        return -1;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->sweep_mu, NULL);
    pthread_cond_init(&s->sweep_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->sweeper, NULL, sweep_main, s) != 0) {
        snprintf(err, errlen, "cannot start the session sweeper thread");
        return -1;
    }
    s->sweeping = 1;
    return 0;
}

static void stop_sessions(srv *s)
{
    if (s->sweeping) {
        pthread_mutex_lock(&s->sweep_mu);
        s->sweep_stop = 1;
        pthread_cond_signal(&s->sweep_cv);
        pthread_mutex_unlock(&s->sweep_mu);
        pthread_join(s->sweeper, NULL);
    }
    if (s->sessions) {
        pthread_cond_destroy(&s->sweep_cv);
        pthread_mutex_destroy(&s->sweep_mu);
    }
    sess_free(s->sessions);
}

int srv_start(const cfg_config *cfg, srv **out, char *err, size_t errlen)
{
    srv *s = NULL;
    unsigned mhd_limit = 0;
    modelset *first;
    *out = NULL;

    if (!(s = calloc(1, sizeof *s)))
        goto oom;
    s->cfg = cfg;
    if (getrandom(s->rid_seed, sizeof s->rid_seed, 0) != (ssize_t)sizeof s->rid_seed) {
        /* no entropy (early boot): ids stay unique, only guessable */
        s->rid_seed[0] = (uint64_t)time(NULL);
        s->rid_seed[1] = (uint64_t)(uintptr_t)s;
    }
    s->router = (http_router){routes_match,  routes_keeps_body, routes_refuse_early,
                              routes_answer, routes_reloaded,   routes_wire_of};
    accept_init(&s->acc);
    pthread_mutex_init(&s->rl_mu, NULL);
    pthread_cond_init(&s->rl_cv, NULL);
    s->lim.max_batch = (size_t)cfg->server.max_batch;
    s->lim.max_steps = (size_t)cfg->server.max_steps;
    if (!(first = modelset_load(cfg, err, errlen))) {
        pthread_mutex_destroy(&s->rl_mu);
        pthread_cond_destroy(&s->rl_cv);
        free(s);
        return -1;
    }
    modelset_slot_init(&s->models, first);
    if (start_metrics(s) < 0)
        goto oom;
    /* The PEM files before the port: a file that cannot be read fails start-up at once. */
    if (load_tls(s, err, errlen) < 0 || start_sessions(s, err, errlen) < 0 ||
        !(s->compute = compute_new(&cfg->server, &s->lim, err, errlen)) ||
        reloader_start(s, err, errlen) < 0 ||
        accept_listen(&s->acc, cfg->server.host, cfg->server.port,
                      (unsigned)cfg->server.max_connections, &mhd_limit, err, errlen) < 0 ||
        http_start(s, (unsigned)sysres_cpus_usable(), mhd_limit, err, errlen) < 0 ||
        vet_heads(s) < 0 || accept_start(&s->acc, s->d, err, errlen) < 0)
        goto fail;
    *out = s;
    return 0;

oom:
    snprintf(err, errlen, "out of memory starting the server");
fail:
    srv_stop(s);
    return -1;
}

int srv_port(const srv *s)
{
    return s->acc.port;
}

void srv_drain(srv *s)
{
    if (atomic_exchange(&s->draining, 1))
        return;
    /* Stop accepting; connections already open are served (and told to close). */
    accept_stop(&s->acc);
}

void srv_abort(srv *s)
{
    if (s->compute)
        compute_abort(s->compute);
}

void srv_pause_compute(srv *s, int paused)
{
    compute_pause(s->compute, paused);
}

long srv_wait_idle(srv *s, int timeout_ms)
{
    struct timespec nap = {0, 10 * 1000 * 1000};
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        if (atomic_load(&s->inflight) == 0)
            return 0;
        nanosleep(&nap, NULL);
    }
    return atomic_load(&s->inflight);
}

int srv_quiet_since(srv *s, long *mark)
{
    long now = atomic_load(&s->started);
    int quiet = now == *mark && atomic_load(&s->inflight) == 0;
    *mark = now;
    return quiet;
}

void srv_wait_quiet(srv *s, int deadline_ms, int quiet_ms)
{
    struct timespec nap = {0, 10 * 1000 * 1000};
    int quiet = 0;
    long seen = atomic_load(&s->started);
    for (int waited = 0; waited < deadline_ms && quiet < quiet_ms; waited += 10) {
        if (accept_open(&s->acc) == 0)
            return;
        long now = atomic_load(&s->started);
        quiet = now != seen || atomic_load(&s->inflight) ? 0 : quiet + 10;
        seen = now;
        nanosleep(&nap, NULL);
    }
}

int srv_reload(srv *s, const char *config_path, char *err, size_t errlen)
{
    return reloader_reload(s, config_path, err, errlen);
}

void srv_log_models(srv *s, const char *prefix, int mark_default)
{
    modelset *m = modelset_slot_get(&s->models);
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm); /* dated as serve.c's lines */
    for (size_t i = 0; i < m->n_models; i++) {
        char line[256];
        const rnn_info *info = rnn_model_info(m->models[i]);
        rnn_info_summary(info, line, sizeof line);
        fprintf(stderr, "%s rnnserve: %smodel %s: %s%s\n", ts, prefix, info->name, line,
                mark_default && i == 0 ? " [default: POST /forward]" : "");
    }
    modelset_release(m);
}

void srv_stop(srv *s)
{
    if (!s)
        return;
    /* No new connection may reach MHD while it stops. Queued passes finish and resume their
     * connections next: MHD must not be stopped with a suspended connection. */
    accept_stop(&s->acc);
    if (s->compute)
        compute_stop(s->compute, 0);
    reloader_stop(s);
    if (s->d)
        MHD_stop_daemon(s->d);
    accept_close(&s->acc);
    compute_free(s->compute);
    stop_sessions(s); /* after compute: every step has handed its session back */
    modelset_slot_destroy(&s->models);
    free(s->tls_cert);
    free(s->tls_key);
    metrics_free(s->met);
    pthread_mutex_destroy(&s->rl_mu);
    pthread_cond_destroy(&s->rl_cv);
    free(s);
}
