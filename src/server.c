/* server.c - rnnserve over HTTP: routing, body accumulation, limits, CORS, metrics, drain.
 *
 * Threading, and why: libmicrohttpd runs a small pool of epoll workers that only move bytes;
 * a connection stays pinned to its worker, so a worker must never sit in a long forward pass.
 * A forward request whose body is complete is therefore suspended (MHD_suspend_connection) and
 * handed to a bounded compute pool of `threads` workers, which decodes, runs and encodes it and
 * then resumes the connection. Probes, /metrics and small requests on other connections keep
 * being served meanwhile. Requests too small to be worth the hand-off (their cost is bounded by
 * their body size) run inline on the I/O worker. Thread-per-connection was the simpler
 * alternative; it was measured at 57% of an epoll pool's throughput on tiny requests with a 15x
 * worse p99 (see docs/ARCHITECTURE.md), and it ties a thread to every idle keep-alive socket. */
#include "rnnserve/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rnnserve/codec.h"
#include "rnnserve/sysres.h"
#include "rnnserve/kserve.h"
#include "rnnserve/metrics.h"
#include "rnnserve/model.h"
#include "rnnserve/openapi.h"
#include "rnnserve/playground.h"
#include "rnnserve/version.h"

/* Routes, also the metrics' route label (same order as ROUTE_NAMES). */
enum {
    R_FORWARD,
    R_MODELS,
    R_MODEL,
    R_HEALTHZ,
    R_READYZ,
    R_METRICS,
    R_PREFLIGHT,
    R_UNMATCHED,
    R_V2_INFER,
    R_V2_HEALTH,
    R_V2_METADATA,
    R_ADMIN,
    R_PLAYGROUND,
    R_OPENAPI
};
static const char *const ROUTE_NAMES[] = {
    "forward",   "models",   "model",     "healthz",     "readyz", "metrics",    "preflight",
    "unmatched", "v2_infer", "v2_health", "v2_metadata", "admin",  "playground", "openapi"};
#define N_ROUTES (sizeof ROUTE_NAMES / sizeof *ROUTE_NAMES)

/* Requests whose worst-case cost (body bytes / 2 steps, times the model's per-step FLOPs) is
 * under this many FLOPs run inline on the I/O thread: ~50 us at most, less than a hand-off. */
#define INLINE_FLOPS 2e6

/* Body bytes past max_body_bytes that are still read (and dropped) so that a chunked upload
 * over the limit can get its 413 at the end; at least this many, or max_body_bytes if larger. */
#define DISCARD_MIN ((size_t)1 << 20)

/* File descriptors kept free of connections (see srv_start). */
#define FD_RESERVE 32

/* Draining ends once no request has been in flight this long (see wait_quiet). */
#define DRAIN_QUIET_MS 500

typedef struct modelset modelset;

/* One request in flight; freed in on_completed() whatever happens to it. */
typedef struct req {
    struct srv *s;
    modelset *set; /* held until on_completed() */
    struct MHD_Connection *conn;
    int route;
    const rnn_model *model;
    char method[16];
    char path[256];
    struct timespec t0;
    /* body */
    char *body;
    size_t len, cap;
    size_t received; /* body bytes so far, kept or not */
    int wants_body;  /* a POST to a forward route: keep the body */
    int v2;          /* an Open Inference Protocol route: errors are {"error": "..."} */
    /* decode + forward + encode for this route: codec_forward or kserve_infer */
    int (*run)(const rnn_model *, const char *, size_t, const codec_limits *, char **, size_t *,
               codec_stats *);
    int too_big;
    /* outcome */
    int status; /* 0 until a response is queued */
    size_t out_bytes;
    codec_stats stats;
    /* compute hand-off: set by the pool, read by the I/O thread after MHD_resume_connection */
    int queued;
    char *resp;
    size_t resp_len;
    int resp_status;
    struct req *next;
} req;

/* The bounded compute pool: a FIFO of suspended requests and `n` threads. */
typedef struct {
    pthread_t *th;
    int n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    req *head, *tail;
    int stop;
} pool;

/* The models being served and their cached metadata bodies. A request holds a reference from
 * its first callback to its completion, so a reload can swap in a new set at any moment and the
 * old one is freed only when its last request is done (PERSISTENT response bodies point in). */
struct modelset {
    atomic_long refs;
    cfg_config *own_cfg; /* the config a reload read (freed with the set); NULL at start */
    rnn_model **models;
    size_t n_models;
    char **meta; /* per model: GET /v1/models/{name} body */
    size_t *meta_len;
    char **v2meta; /* per model: GET /v2/models/{name} body */
    size_t *v2meta_len;
    char *list; /* GET /v1/models body */
    size_t list_len;
};

struct srv {
    const cfg_config *cfg; /* server settings; a reload replaces models only */
    modelset *set;         /* guarded by set_mu */
    pthread_mutex_t set_mu;
    pthread_mutex_t reload_mu; /* one reload at a time (SIGHUP and the admin route) */
    struct MHD_Daemon *d;
    int lfd; /* listening socket, ours (see acceptor_main); -1 when none */
    pthread_t acceptor;
    int acceptor_running;
    metrics *met;
    pool pool;
    char *tls_cert, *tls_key; /* PEM text, kept for the daemon's life */
    atomic_int draining;
    atomic_long inflight;
    atomic_long started; /* requests ever begun (drain watches it move) */
    atomic_long conns;   /* open connections, counted from accept() to MHD's CLOSED notice */
    unsigned max_conns;  /* max_connections, lowered to fit RLIMIT_NOFILE */
    int port;
    codec_limits lim;
};

/* ---------------------------------------------------------------------------------------------
 * Model sets */

static void set_free(modelset *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_models; i++) {
        rnn_model_free(m->models[i]);
        free(m->meta[i]);
        free(m->v2meta[i]);
    }
    free(m->models);
    free(m->meta);
    free(m->meta_len);
    free(m->v2meta);
    free(m->v2meta_len);
    free(m->list);
    cfg_free(m->own_cfg);
    free(m);
}

/* Loads every model of CFG with its metadata bodies. Returns a set holding one reference, or
 * NULL with the reason in err. */
static modelset *set_load(const cfg_config *cfg, char *err, size_t errlen)
{
    char msg[1024];
    const rnn_info **infos = NULL;
    modelset *m = calloc(1, sizeof *m);
    size_t n = cfg->n_models;
    if (!m || !(m->models = calloc(n, sizeof *m->models)) ||
        !(m->meta = calloc(n, sizeof *m->meta)) ||
        !(m->meta_len = calloc(n, sizeof *m->meta_len)) ||
        !(m->v2meta = calloc(n, sizeof *m->v2meta)) ||
        !(m->v2meta_len = calloc(n, sizeof *m->v2meta_len)) || !(infos = calloc(n, sizeof *infos)))
        goto oom;
    atomic_init(&m->refs, 1);
    m->n_models = n;
    for (size_t i = 0; i < n; i++) {
        if (rnn_model_load(&cfg->models[i], &m->models[i], msg, sizeof msg) < 0) {
            snprintf(err, errlen, "model \"%s\": %s", cfg->models[i].name, msg);
            goto fail;
        }
        infos[i] = rnn_model_info(m->models[i]);
        if (!(m->meta[i] = codec_encode_model(infos[i], i == 0, &m->meta_len[i])) ||
            !(m->v2meta[i] = kserve_model_metadata(infos[i], &m->v2meta_len[i])))
            goto oom;
    }
    if (!(m->list = codec_encode_models(infos, n, &m->list_len)))
        goto oom;
    free(infos);
    return m;
oom:
    snprintf(err, errlen, "out of memory loading the models");
fail:
    free(infos);
    set_free(m);
    return NULL;
}

static modelset *set_acquire(srv *s)
{
    pthread_mutex_lock(&s->set_mu);
    modelset *m = s->set;
    atomic_fetch_add(&m->refs, 1);
    pthread_mutex_unlock(&s->set_mu);
    return m;
}

static void set_release(modelset *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1)
        set_free(m);
}

/* ---------------------------------------------------------------------------------------------
 * Compute pool */

static void *pool_main(void *arg)
{
    srv *s = arg;
    pool *p = &s->pool;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        req *r = p->head;
        if (!r) { /* stop requested and nothing left to do */
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        p->head = r->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->mu);

        r->resp_status =
            r->run(r->model, r->body, r->len, &s->lim, &r->resp, &r->resp_len, &r->stats);
        /* MHD's resume takes its own lock, which orders the writes above before the I/O
         * thread reads them. */
        MHD_resume_connection(r->conn);
    }
}

static int pool_start(srv *s, int n, char *err, size_t errlen)
{
    pool *p = &s->pool;
    if (!(p->th = calloc((size_t)n, sizeof *p->th))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (p->n = 0; p->n < n; p->n++)
        if (pthread_create(&p->th[p->n], NULL, pool_main, s) != 0) {
            snprintf(err, errlen, "cannot start compute thread %d: %s", p->n, strerror(errno));
            return -1;
        }
    return 0;
}

/* Suspends R's connection and queues it, in one critical section with the stop flag: once
 * pool_stop() has begun nothing more is queued (the caller then computes inline), so MHD is
 * never stopped with a suspended connection nobody will resume. Returns -1 when stopping. */
static int pool_push(pool *p, req *r)
{
    pthread_mutex_lock(&p->mu);
    if (p->stop || p->n == 0) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    r->queued = 1;
    /* No worker can pop (and resume) R before the mutex is released. */
    MHD_suspend_connection(r->conn);
    r->next = NULL;
    if (p->tail)
        p->tail->next = r;
    else
        p->head = r;
    p->tail = r;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

/* Finishes every queued job, then joins the threads. The lock stays usable (pool_push may
 * still be called by an I/O thread until MHD stops, and is then refused). */
static void pool_stop(pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++)
        pthread_join(p->th[i], NULL);
    p->n = 0;
}

/* ---------------------------------------------------------------------------------------------
 * Responses */

/* Adds the CORS headers the request's Origin earns (none for a disallowed origin). */
static int add_cors(srv *s, struct MHD_Connection *c, struct MHD_Response *resp)
{
    const cfg_server *cs = &s->cfg->server;
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    for (size_t i = 0; i < cs->n_cors_origins; i++)
        if (strcmp(cs->cors_origins[i], "*") == 0)
            return MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*") == MHD_YES;
    /* With a list, the answer depends on Origin: say so to caches, whatever the origin. */
    if (MHD_add_response_header(resp, "Vary", "Origin") != MHD_YES)
        return 0;
    for (size_t i = 0; origin && i < cs->n_cors_origins; i++)
        if (strcmp(cs->cors_origins[i], origin) == 0)
            return MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin) == MHD_YES;
    return 1;
}

/* Queues BODY (LEN bytes; freed by MHD when OWNED) with STATUS and the common headers. EXTRA
 * is a NULL-terminated list of header name/value pairs, or NULL. */
static enum MHD_Result respond(req *r, int status, char *body, size_t len, int owned,
                               const char *ctype, const char *const *extra)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    int ok = add_cors(r->s, r->conn, resp);
    if (ctype)
        ok = ok && MHD_add_response_header(resp, "Content-Type", ctype) == MHD_YES;
    for (; extra && extra[0]; extra += 2)
        ok = ok && MHD_add_response_header(resp, extra[0], extra[1]) == MHD_YES;
    if (atomic_load(&r->s->draining))
        ok = ok && MHD_add_response_header(resp, "Connection", "close") == MHD_YES;
    enum MHD_Result ret = ok ? MHD_queue_response(r->conn, (unsigned)status, resp) : MHD_NO;
    MHD_destroy_response(resp);
    if (ret == MHD_YES) {
        r->status = status;
        r->out_bytes = len;
    }
    return ret;
}

static enum MHD_Result respond_json(req *r, int status, char *body, size_t len)
{
    return respond(r, status, body, len, 1, "application/json", NULL);
}

/* The contract's error body: {"error": {"status": N, "message": "..."}}. */
static enum MHD_Result respond_error(req *r, int status, const char *const *extra, const char *fmt,
                                     ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len;
    char *body = r->v2 ? kserve_encode_error(msg, &len) : codec_encode_error(status, msg, &len);
    if (!body)
        return MHD_NO;
    return respond(r, status, body, len, 1, "application/json", extra);
}

static enum MHD_Result respond_405(req *r, const char *allow)
{
    const char *const extra[] = {"Allow", allow, NULL};
    return respond_error(r, 405, extra, "method %s is not allowed on %s (allowed: %s)", r->method,
                         r->path, allow);
}

static enum MHD_Result respond_static(req *r, int status, const char *body, const char *ctype)
{
    return respond(r, status, (char *)body, strlen(body), 0, ctype, NULL);
}

/* ---------------------------------------------------------------------------------------------
 * Routing */

static const rnn_model *find_model(const modelset *m, const char *name, size_t len, size_t *idx)
{
    for (size_t i = 0; i < m->n_models; i++) {
        const char *n = rnn_model_info(m->models[i])->name;
        if (strlen(n) == len && memcmp(n, name, len) == 0) {
            if (idx)
                *idx = i;
            return m->models[i];
        }
    }
    return NULL;
}

static int is_get(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
}

/* Compares in time that depends only on the lengths, so that response timing does not reveal
 * how much of a secret a guess got right. */
static int secret_eq(const char *given, size_t glen, const char *want)
{
    size_t wlen = strlen(want);
    unsigned char diff = glen != wlen;
    for (size_t i = 0; i < glen; i++)
        diff |= (unsigned char)given[i] ^ (unsigned char)want[i < wlen ? i : 0];
    return diff == 0;
}

/* The token of an "Authorization: Bearer TOKEN" header, or NULL. */
static const char *bearer(struct MHD_Connection *c, size_t *len)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    *len = strlen(h);
    while (*len && h[*len - 1] == ' ')
        (*len)--;
    return *len ? h : NULL;
}

/* Routes that need an API key when server.api_keys is set: the models and their forward
 * passes. Probes, metrics, the playground and this API's description stay open. */
static int protected_url(const char *url)
{
    return strcmp(url, "/forward") == 0 || strncmp(url, "/v1/models", 10) == 0 ||
           strncmp(url, "/v2/models/", 11) == 0;
}

/* Every key is compared, whatever matched, so timing reveals neither which key nor how much. */
static int api_key_ok(req *r)
{
    const cfg_server *cs = &r->s->cfg->server;
    size_t len = 0;
    const char *tok = bearer(r->conn, &len);
    int ok = 0;
    for (size_t i = 0; tok && i < cs->n_api_keys; i++)
        ok |= secret_eq(tok, len, cs->api_keys[i]);
    return ok;
}

/* POST /v1/admin/reload: reload the config's models (off unless server.admin_token is set). */
static enum MHD_Result route_admin(req *r)
{
    srv *s = r->s;
    const char *const challenge[] = {"WWW-Authenticate", "Bearer realm=\"rnnserve-admin\"", NULL};
    char err[1024];
    size_t len = 0;
    r->route = R_ADMIN;
    if (!s->cfg->server.admin_token)
        return respond_error(r, 404, NULL, "no route %s (set server.admin_token to enable it)",
                             r->path);
    if (strcmp(r->method, "POST") != 0)
        return respond_405(r, "POST, OPTIONS");
    const char *tok = bearer(r->conn, &len);
    if (!tok || !secret_eq(tok, len, s->cfg->server.admin_token))
        return respond_error(r, 401, challenge,
                             "reloading needs \"Authorization: Bearer <server.admin_token>\"");
    if (srv_reload(s, s->cfg->path, err, sizeof err) < 0)
        return respond_error(r, 500, NULL, "reload failed, still serving the previous models: %s",
                             err);
    modelset *m = set_acquire(s);
    size_t n = 0, cap = 64 + m->n_models * 140;
    char *body = malloc(cap);
    if (body) {
        n = (size_t)snprintf(body, cap, "{\"status\":\"reloaded\",\"models\":[");
        for (size_t i = 0; i < m->n_models; i++)
            n += (size_t)snprintf(body + n, cap - n, "%s\"%s\"", i ? "," : "",
                                  rnn_model_info(m->models[i])->name);
        n += (size_t)snprintf(body + n, cap - n, "]}");
    }
    set_release(m);
    if (!body)
        return MHD_NO;
    return respond_json(r, 200, body, n);
}

/* The Open Inference Protocol (KServe v2) routes: health, server and model metadata, infer.
 * Errors here use the protocol's {"error": "..."} body. */
static enum MHD_Result route_v2(req *r, const char *url)
{
    srv *s = r->s;
    const char *m = r->method;
    int draining = atomic_load(&s->draining);
    r->v2 = 1;
    if (strcmp(url, "/v2/health/live") == 0 || strcmp(url, "/v2/health/ready") == 0) {
        r->route = R_V2_HEALTH;
        if (!is_get(m))
            return respond_405(r, "GET, HEAD, OPTIONS");
        if (strcmp(url, "/v2/health/live") == 0)
            return respond_static(r, 200, "{\"live\":true}", "application/json");
        return draining ? respond_static(r, 503, "{\"ready\":false}", "application/json")
                        : respond_static(r, 200, "{\"ready\":true}", "application/json");
    }
    if (strcmp(url, "/v2") == 0) {
        r->route = R_V2_METADATA;
        if (!is_get(m))
            return respond_405(r, "GET, HEAD, OPTIONS");
        return respond_static(r, 200,
                              "{\"name\":\"rnnserve\",\"version\":\"" RNNSERVE_VERSION
                              "\",\"extensions\":[]}",
                              "application/json");
    }
    const char *name = url + 11, *slash = strchr(name, '/');
    size_t n = slash ? (size_t)(slash - name) : strlen(name), idx = 0;
    if (strncmp(url, "/v2/models/", 11) != 0 || n == 0 ||
        (slash && strcmp(slash, "/infer") != 0 && strcmp(slash, "/ready") != 0)) {
        r->route = R_UNMATCHED;
        return respond_error(r, 404, NULL, "no route %s", url);
    }
    r->route = slash && strcmp(slash, "/infer") == 0 ? R_V2_INFER : R_V2_METADATA;
    if (!(r->model = find_model(r->set, name, n, &idx)))
        return respond_error(r, 404, NULL,
                             "model \"%.*s\" not found (GET /v1/models lists the models)", (int)n,
                             name);
    if (r->route == R_V2_INFER) {
        if (strcmp(m, "POST") != 0)
            return respond_405(r, "POST, OPTIONS");
        r->run = kserve_infer;
        return MHD_YES;
    }
    if (!is_get(m))
        return respond_405(r, "GET, HEAD, OPTIONS");
    if (slash) { /* /ready */
        char body[256];
        snprintf(body, sizeof body, "{\"name\":\"%s\",\"ready\":%s}",
                 rnn_model_info(r->model)->name, draining ? "false" : "true");
        char *copy = strdup(body);
        if (!copy)
            return MHD_NO;
        return respond(r, draining ? 503 : 200, copy, strlen(copy), 1, "application/json", NULL);
    }
    return respond(r, 200, r->set->v2meta[idx], r->set->v2meta_len[idx], 0, "application/json",
                   NULL);
}

/* Called on the first access-handler call, once headers are in: routes the request and answers
 * everything that needs no body. Returns MHD_YES to go on receiving the body. */
static enum MHD_Result start_request(req *r, const char *url)
{
    srv *s = r->s;
    const char *m = r->method;

    if (strcmp(m, "OPTIONS") == 0) {
        r->route = R_PREFLIGHT;
        const char *const extra[] = {"Access-Control-Allow-Methods",
                                     "GET, POST, OPTIONS",
                                     "Access-Control-Allow-Headers",
                                     "Content-Type, Authorization",
                                     "Access-Control-Max-Age",
                                     "600",
                                     "Allow",
                                     "GET, POST, OPTIONS",
                                     NULL};
        return respond(r, 204, NULL, 0, 0, NULL, extra);
    }
    if (strcmp(url, "/") == 0 && s->cfg->server.playground) {
        r->route = R_PLAYGROUND;
        if (!is_get(m))
            return respond_405(r, "GET, HEAD, OPTIONS");
        /* The page needs nothing but its inline code and this server's API; the policy makes
         * the browser refuse anything else, so it cannot be made to load or send elsewhere. */
        const char *const extra[] = {"Content-Security-Policy",
                                     "default-src 'none'; script-src 'unsafe-inline'; "
                                     "style-src 'unsafe-inline'; connect-src 'self'; "
                                     "img-src data:; base-uri 'none'; form-action 'none'; "
                                     "frame-ancestors 'none'",
                                     "X-Content-Type-Options",
                                     "nosniff",
                                     "Cache-Control",
                                     "no-cache",
                                     NULL};
        return respond(r, 200, (char *)playground_html, playground_html_len, 0,
                       "text/html; charset=utf-8", extra);
    }
    if (strcmp(url, "/openapi.json") == 0) {
        r->route = R_OPENAPI;
        if (!is_get(m))
            return respond_405(r, "GET, HEAD, OPTIONS");
        return respond(r, 200, (char *)openapi_json, openapi_json_len, 0, "application/json", NULL);
    }
    if (strcmp(url, "/healthz") == 0) {
        r->route = R_HEALTHZ;
        return is_get(m) ? respond_static(r, 200, "{\"status\":\"ok\"}", "application/json")
                         : respond_405(r, "GET, HEAD, OPTIONS");
    }
    if (strcmp(url, "/readyz") == 0) {
        r->route = R_READYZ;
        if (!is_get(m))
            return respond_405(r, "GET, HEAD, OPTIONS");
        if (atomic_load(&s->draining))
            return respond_error(r, 503, NULL, "draining: the server is shutting down");
        return respond_static(r, 200, "{\"status\":\"ready\"}", "application/json");
    }
    if (strcmp(url, "/metrics") == 0) {
        r->route = R_METRICS;
        if (!is_get(m))
            return respond_405(r, "GET, HEAD, OPTIONS");
        size_t len;
        char *text = metrics_render(s->met, &len);
        if (!text)
            return respond_error(r, 500, NULL, "out of memory rendering metrics");
        return respond(r, 200, text, len, 1, "text/plain; version=0.0.4; charset=utf-8", NULL);
    }
    if (s->cfg->server.n_api_keys && protected_url(url) && !api_key_ok(r)) {
        const char *const challenge[] = {"WWW-Authenticate", "Bearer realm=\"rnnserve\"", NULL};
        r->route = strncmp(url, "/v2/", 4) == 0 ? R_V2_INFER : R_FORWARD;
        r->v2 = strncmp(url, "/v2/", 4) == 0;
        return respond_error(r, 401, challenge,
                             "missing or unknown API key: send \"Authorization: Bearer <key>\"");
    }
    if (strcmp(url, "/v1/models") == 0) {
        r->route = R_MODELS;
        if (!is_get(m))
            return respond_405(r, "GET, HEAD, OPTIONS");
        return respond(r, 200, r->set->list, r->set->list_len, 0, "application/json", NULL);
    }
    if (strncmp(url, "/v2", 3) == 0 && (url[3] == '\0' || url[3] == '/'))
        return route_v2(r, url);
    if (strcmp(url, "/v1/admin/reload") == 0)
        return route_admin(r);
    r->run = codec_forward;
    if (strcmp(url, "/forward") == 0) {
        r->route = R_FORWARD;
        r->model = r->set->models[0];
    } else if (strncmp(url, "/v1/models/", 11) == 0) {
        const char *name = url + 11, *slash = strchr(name, '/');
        size_t idx = 0;
        if (!slash) {
            r->route = R_MODEL;
            if (!find_model(r->set, name, strlen(name), &idx))
                return respond_error(r, 404, NULL,
                                     "model \"%s\" not found (GET /v1/models lists "
                                     "the models)",
                                     name);
            if (!is_get(m))
                return respond_405(r, "GET, HEAD, OPTIONS");
            return respond(r, 200, r->set->meta[idx], r->set->meta_len[idx], 0, "application/json",
                           NULL);
        }
        if (strcmp(slash, "/forward") != 0) {
            r->route = R_UNMATCHED;
            return respond_error(r, 404, NULL, "no route %s", url);
        }
        r->route = R_FORWARD;
        if (!(r->model = find_model(r->set, name, (size_t)(slash - name), NULL)))
            return respond_error(r, 404, NULL,
                                 "model \"%.*s\" not found (GET /v1/models lists the models)",
                                 (int)(slash - name), name);
    } else {
        r->route = R_UNMATCHED;
        return respond_error(r, 404, NULL, "no route %s (see GET /v1/models, POST /forward)", url);
    }
    /* A forward route. */
    if (strcmp(m, "POST") != 0)
        return respond_405(r, "POST, OPTIONS");
    return MHD_YES;
}

/* Whether URL names a forward route, so that a POST body is worth keeping. */
static int forward_url(const char *url)
{
    size_t n = strlen(url);
    return strcmp(url, "/forward") == 0 ||
           (strncmp(url, "/v1/models/", 11) == 0 && n > 19 &&
            strcmp(url + n - 8, "/forward") == 0) ||
           (strncmp(url, "/v2/models/", 11) == 0 && n > 17 && strcmp(url + n - 6, "/infer") == 0);
}

/* 413 before reading a body the Content-Length already says is too large; MHD then skips the
 * body and closes the connection. Returns 1 when it answered. */
static int early_413(req *r, enum MHD_Result *ret)
{
    size_t max = r->s->cfg->server.max_body_bytes;
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
    if (!cl)
        return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    /* MHD has already rejected a malformed Content-Length; this only compares. */
    if (errno != 0 || end == cl || n <= max)
        return 0;
    *ret = respond_error(r, 413, NULL, "request body of %llu bytes exceeds max_body_bytes %zu", n,
                         max);
    return 1;
}

/* Per-step FLOPs of a model: an upper bound on the cost of one time step. */
static double step_flops(const rnn_model *m)
{
    const rnn_info *in = rnn_model_info(m);
    double gh = (double)in->gates * in->hidden_size;
    double per_layer =
        gh * (in->input_size + in->hidden_size) +
        (in->num_layers - 1) * gh * (in->num_directions * in->hidden_size + in->hidden_size);
    return 2.0 * per_layer * in->num_directions;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    srv *s = cls;
    req *r = *con_cls;
    (void)version;

    if (!r) {
        if (!(r = calloc(1, sizeof *r)))
            return MHD_NO;
        *con_cls = r; /* freed in on_completed() */
        r->s = s;
        r->set = set_acquire(s); /* the request runs on the models it started with */
        r->conn = c;
        clock_gettime(CLOCK_MONOTONIC, &r->t0);
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", url);
        atomic_fetch_add(&s->inflight, 1);
        atomic_fetch_add(&s->started, 1);
        metrics_inflight_add(s->met, 1);
        r->wants_body = strcmp(method, "POST") == 0 && forward_url(url);
        enum MHD_Result ret;
        if (r->wants_body && early_413(r, &ret))
            return ret;
        /* Everything else is answered once the request is complete: answering earlier makes
         * libmicrohttpd close the connection, and keep-alive would be lost. */
        return MHD_YES;
    }
    if (r->status) { /* answered early (413): the rest is discarded */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0; /* always consume, or MHD stalls the connection */
        /* libmicrohttpd 0.9.75 refuses to queue a response before the request is complete, so
         * a 413 for a chunked upload (or an answer to a body nobody wanted) waits for its end,
         * and a client that never stops sending would hold the connection forever. Past the
         * limit plus a margin, it is closed without an answer. */
        size_t max = s->cfg->server.max_body_bytes;
        r->received += n;
        if (r->received > max + (max > DISCARD_MIN ? max : DISCARD_MIN))
            return MHD_NO;
        if (!r->wants_body || r->too_big)
            return MHD_YES;
        if (r->len + n > s->cfg->server.max_body_bytes) {
            /* chunked upload (no Content-Length): stop storing, answer 413 at the end */
            r->too_big = 1;
            free(r->body);
            r->body = NULL;
            return MHD_YES;
        }
        if (r->len + n > r->cap) {
            size_t cap = r->cap ? r->cap : 4096;
            while (cap < r->len + n)
                cap *= 2;
            if (cap > s->cfg->server.max_body_bytes)
                cap = s->cfg->server.max_body_bytes;
            char *nb = realloc(r->body, cap);
            if (!nb)
                return MHD_NO;
            r->body = nb;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        return MHD_YES;
    }
    /* The request is complete. */
    if (r->queued) { /* resumed by the compute pool */
        char *body = r->resp;
        r->resp = NULL;
        if (!body)
            return MHD_NO;
        return respond_json(r, r->resp_status, body, r->resp_len);
    }
    enum MHD_Result ret = start_request(r, url);
    if (r->status || ret == MHD_NO)
        return ret;
    /* A POST to a forward route of a known model. */
    if (r->too_big)
        return respond_error(r, 413, NULL, "request body exceeds max_body_bytes %zu",
                             s->cfg->server.max_body_bytes);
    if ((double)r->len / 2.0 * step_flops(r->model) > INLINE_FLOPS && pool_push(&s->pool, r) == 0)
        return MHD_YES; /* resumed by the pool when the answer is ready */
    char *body;
    size_t len;
    int status = r->run(r->model, r->body, r->len, &s->lim, &body, &len, &r->stats);
    if (!body)
        return MHD_NO;
    return respond_json(r, status, body, len);
}

static const char *toe_name(enum MHD_RequestTerminationCode toe)
{
    switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK:
        return "ok";
    case MHD_REQUEST_TERMINATED_WITH_ERROR:
        return "error";
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
        return "timeout";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
        return "shutdown";
    case MHD_REQUEST_TERMINATED_READ_ERROR:
        return "read_error";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
        return "client_abort";
    }
    return "unknown";
}

/* The one place a request ends: metrics, the access log line, and freeing. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    srv *s = cls;
    req *r = *con_cls;
    (void)c;
    if (!r)
        return;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - r->t0.tv_sec) + (double)(t1.tv_nsec - r->t0.tv_nsec) / 1e9;
    if (r->status)
        metrics_observe(s->met, (size_t)r->route, r->status, secs, r->stats.sequences,
                        r->stats.steps);
    time_t now = time(NULL);
    struct tm tm;
    char ts[32];
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    /* One fprintf per line: stdio locks the stream, so lines from threads never interleave. */
    fprintf(stderr,
            "%s access method=%s path=%s status=%d bytes=%zu duration_ms=%.3f batch=%zu "
            "steps=%zu end=%s\n",
            ts, r->method, r->path, r->status, r->out_bytes, secs * 1e3, r->stats.sequences,
            r->stats.steps, toe_name(toe));
    metrics_inflight_add(s->met, -1);
    atomic_fetch_sub(&s->inflight, 1);
    set_release(r->set);
    free(r->body);
    free(r->resp);
    free(r);
    *con_cls = NULL;
}

/* The listening socket is ours, not libmicrohttpd's: this thread accepts and hands each
 * connection to MHD_add_connection. Why: MHD_quiesce_daemon on an epoll thread pool races with
 * the workers removing the same socket from their epoll sets, and MHD_PANIC()s (aborts) when it
 * loses (3 aborts in 1,200 quiesces of a loaded two-worker daemon; a SIGTERM under load). With the
 * socket ours, draining is a shutdown() of it (stop_accepting). Past max_connections a new
 * connection is closed at once: the client learns right away and can retry or go elsewhere,
 * instead of waiting unaccepted in the backlog (see srv_start). */
static void *acceptor_main(void *arg)
{
    srv *s = arg;
    for (;;) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int fd = accept4(s->lfd, (struct sockaddr *)&addr, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors or memory: the client waits in the backlog until a
                 * connection ends; retry soon rather than spin. */
                struct timespec nap = {0, 10 * 1000 * 1000};
                nanosleep(&nap, NULL);
                continue;
            }
            return NULL; /* EINVAL: stop_accepting() shut the socket down */
        }
        if (atomic_load(&s->conns) >= (long)s->max_conns) {
            close(fd);
            continue;
        }
        /* Counted before MHD sees it, so that a burst of connects cannot overshoot the limit
         * while the workers pick them up. MHD closes the socket itself if it cannot take it. */
        atomic_fetch_add(&s->conns, 1);
        if (MHD_add_connection(s->d, fd, (struct sockaddr *)&addr, len) != MHD_YES)
            atomic_fetch_sub(&s->conns, 1);
    }
}

/* Ends the listening (new connects are refused, queued ones reset) and the acceptor thread.
 * Connections already handed to MHD are untouched. */
static void stop_accepting(srv *s)
{
    if (s->lfd >= 0)
        shutdown(s->lfd, SHUT_RDWR);
    if (s->acceptor_running) {
        pthread_join(s->acceptor, NULL);
        s->acceptor_running = 0;
    }
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    srv *s = cls;
    (void)c;
    (void)socket_context;
    /* STARTED was counted by the acceptor already. */
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
        atomic_fetch_sub(&s->conns, 1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    fprintf(stderr, "rnnserve: libmicrohttpd: %s\n", msg);
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle */

static int ncpu(void)
{
    return sysres_cpus_usable();
}

/* Reads a PEM file into a new NUL-terminated buffer; NULL with a message naming KEY and PATH. */
static char *read_pem(const char *path, const char *key, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        n < (1L << 20) && (buf = malloc((size_t)n + 1)) &&
        fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = '\0';
        fclose(f);
        if (strstr(buf, "-----BEGIN "))
            return buf;
        snprintf(err, errlen, "server.%s: %s is not a PEM file", key, path);
        free(buf);
        return NULL;
    }
    snprintf(err, errlen, "server.%s: cannot read %s: %s", key, path,
             f ? (n >= (1L << 20) ? "larger than 1 MB" : strerror(errno)) : strerror(errno));
    if (f)
        fclose(f);
    free(buf);
    return NULL;
}

int srv_start(const cfg_config *cfg, srv **out, char *err, size_t errlen)
{
    srv *s = NULL;
    struct addrinfo *ai = NULL;
    *out = NULL;

    if (!(s = calloc(1, sizeof *s)))
        goto oom;
    pthread_mutex_init(&s->pool.mu, NULL);
    pthread_cond_init(&s->pool.cv, NULL);
    pthread_mutex_init(&s->set_mu, NULL);
    pthread_mutex_init(&s->reload_mu, NULL);
    s->cfg = cfg;
    s->lfd = -1;
    s->lim.max_batch = (size_t)cfg->server.max_batch;
    s->lim.max_steps = (size_t)cfg->server.max_steps;
    if (!(s->set = set_load(cfg, err, errlen)))
        goto fail;

    char build[256];
    snprintf(build, sizeof build, "version=\"%s\",libmicrohttpd=\"%s\"", RNNSERVE_VERSION,
             MHD_get_version());
    if (!(s->met = metrics_new(ROUTE_NAMES, N_ROUTES, build)))
        goto oom;

    /* Forward passes run `threads` at a time, one BLAS thread each: never more busy threads
     * than cores. With the default (threads 0: one per core) a pass may also borrow the other
     * cores, but only while it is the only pass in flight (the engine checks at every layer):
     * one large request alone gets the whole machine, concurrent requests keep one core each
     * (see rnn_set_threads). An explicit `threads` keeps every pass on one core. */
    int compute = cfg->server.threads > 0 ? cfg->server.threads : ncpu();
    rnn_set_blas_threads(1);
    rnn_set_threads(cfg->server.threads > 0 ? 1 : ncpu());
    if (pool_start(s, compute, err, errlen) < 0)
        goto fail;

    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->server.port);
    int gai = getaddrinfo(cfg->server.host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve host \"%s\": %s", cfg->server.host,
                 gai_strerror(gai));
        goto fail;
    }
    s->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_storage bound; /* the address bound, for the port when port 0 was asked */
    socklen_t bound_len = sizeof bound;
    /* As libmicrohttpd would: rebind at once after a restart; "::" means IPv6 only. */
    if (s->lfd < 0 || setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (ai->ai_family == AF_INET6 &&
         setsockopt(s->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
        bind(s->lfd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(s->lfd, 1024) != 0 ||
        getsockname(s->lfd, (struct sockaddr *)&bound, &bound_len) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d (%s)", cfg->server.host, cfg->server.port,
                 strerror(errno));
        goto fail;
    }
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    /* No listening socket for MHD (acceptor_main feeds it); ITC wakes a worker for each new
     * connection. */
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
    unsigned io_threads = (unsigned)ncpu();
    /* At its connection limit, or out of descriptors (accept() failing), libmicrohttpd stops
     * accepting, and new clients wait in the kernel's backlog, unanswered, until a connection
     * ends. So max_connections is enforced by acceptor_main instead, which closes the excess at
     * once; libmicrohttpd's own limit is a backstop above it. Both stay below RLIMIT_NOFILE,
     * less FD_RESERVE for everything else (listening socket, epoll sets, files a reload opens). */
    s->max_conns = (unsigned)cfg->server.max_connections;
    unsigned max_conn = 2 * s->max_conns;
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
        unsigned room = nofile.rlim_cur > FD_RESERVE ? (unsigned)(nofile.rlim_cur - FD_RESERVE) : 1;
        if (s->max_conns > room) {
            fprintf(stderr,
                    "rnnserve: max_connections %u lowered to %u: the process may open only %llu "
                    "files (ulimit -n)\n",
                    s->max_conns, room, (unsigned long long)nofile.rlim_cur);
            s->max_conns = room;
        }
        if (max_conn > room + FD_RESERVE / 2)
            max_conn = room + FD_RESERVE / 2;
    }
    /* HTTPS through libmicrohttpd's GnuTLS: the PEM files are read here so that a bad path
     * fails at start, naming it. */
    struct MHD_OptionItem tls[3] = {{MHD_OPTION_END, 0, NULL}};
    if (cfg->server.tls_cert) {
        if (!(s->tls_cert = read_pem(cfg->server.tls_cert, "tls_cert", err, errlen)) ||
            !(s->tls_key = read_pem(cfg->server.tls_key, "tls_key", err, errlen)))
            goto fail;
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, errlen, "server.tls_cert: this libmicrohttpd has no TLS support");
            goto fail;
        }
        flags |= MHD_USE_TLS;
        tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key};
        tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert};
        tls[2] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    }
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_ARRAY, tls,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)cfg->server.timeout_s, MHD_OPTION_CONNECTION_LIMIT, max_conn,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024),
        io_threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, io_threads, MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, errlen, "cannot listen on %s:%d (%s)", cfg->server.host, cfg->server.port,
                 errno ? strerror(errno) : "see the libmicrohttpd message above");
        goto fail;
    }
    if (pthread_create(&s->acceptor, NULL, acceptor_main, s) != 0) {
        snprintf(err, errlen, "cannot start the accept thread: %s", strerror(errno));
        goto fail;
    }
    s->acceptor_running = 1;
    freeaddrinfo(ai);
    *out = s;
    return 0;

oom:
    snprintf(err, errlen, "out of memory starting the server");
fail:
    if (ai)
        freeaddrinfo(ai);
    srv_stop(s);
    return -1;
}

int srv_port(const srv *s)
{
    return s->port;
}

void srv_drain(srv *s)
{
    if (atomic_exchange(&s->draining, 1))
        return;
    /* Stop accepting; connections already open are served (and told to close). */
    stop_accepting(s);
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

/* After the last request in flight, a kept-alive connection may still carry a next request that
 * its client sent before any answer could tell it "Connection: close": stopping at once would
 * drop it unanswered. Waits until every connection has closed, or no request has begun or been
 * in flight for DRAIN_QUIET_MS, or DEADLINE_MS has passed. (A client that waits longer than that
 * before reusing its connection can still find it closed: HTTP lets a server close an idle
 * connection, and clients must be ready for it.) */
static void wait_quiet(srv *s, int deadline_ms)
{
    struct timespec nap = {0, 10 * 1000 * 1000};
    int quiet = 0;
    long seen = atomic_load(&s->started);
    for (int waited = 0; waited < deadline_ms && quiet < DRAIN_QUIET_MS; waited += 10) {
        if (atomic_load(&s->conns) == 0)
            return;
        long now = atomic_load(&s->started);
        quiet = now != seen || atomic_load(&s->inflight) ? 0 : quiet + 10;
        seen = now;
        nanosleep(&nap, NULL);
    }
}

int srv_reload(srv *s, const char *config_path, char *err, size_t errlen)
{
    cfg_config *cfg = NULL;
    char msg[1024];
    int rc = -1;
    pthread_mutex_lock(&s->reload_mu);
    if (cfg_load_file(config_path, &cfg, msg, sizeof msg) < 0) {
        snprintf(err, errlen, "%s", msg);
        goto done;
    }
    /* Everything is loaded and checked before anything is swapped: on any error the old models
     * keep serving. */
    modelset *m = set_load(cfg, err, errlen);
    if (!m) {
        cfg_free(cfg);
        goto done;
    }
    m->own_cfg = cfg;
    pthread_mutex_lock(&s->set_mu);
    modelset *old = s->set;
    s->set = m;
    pthread_mutex_unlock(&s->set_mu);
    set_release(old); /* freed when its last in-flight request completes */
    rc = 0;
done:
    pthread_mutex_unlock(&s->reload_mu);
    return rc;
}

void srv_stop(srv *s)
{
    if (!s)
        return;
    /* No new connection may reach MHD while it stops. Queued passes finish and resume their
     * connections next: MHD must not be stopped with a suspended connection. */
    stop_accepting(s);
    pool_stop(&s->pool);
    if (s->d)
        MHD_stop_daemon(s->d);
    if (s->lfd >= 0)
        close(s->lfd);
    free(s->pool.th);
    pthread_mutex_destroy(&s->pool.mu);
    pthread_cond_destroy(&s->pool.cv);
    set_release(s->set);
    free(s->tls_cert);
    free(s->tls_key);
    pthread_mutex_destroy(&s->set_mu);
    pthread_mutex_destroy(&s->reload_mu);
    metrics_free(s->met);
    free(s);
}

int srv_main(const char *config_path, const srv_overrides *o)
{
    char err[1024];
    cfg_config *cfg = NULL;
    srv *s = NULL;
    sigset_t set;

    if (cfg_load_file(config_path, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "rnnserve: %s\n", err);
        return 1;
    }
    if (o && o->host) {
        char *h = strdup(o->host);
        if (!h) {
            cfg_free(cfg);
            return 1;
        }
        free(cfg->server.host);
        cfg->server.host = h;
    }
    if (o && o->port >= 0)
        cfg->server.port = o->port;
    if (o && o->threads >= 0)
        cfg->server.threads = o->threads;

    /* Signals are taken synchronously by this thread (sigwait); every thread started below
     * inherits the mask, so none of them is interrupted. Writes to a closed peer or pipe must
     * return EPIPE, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    if (srv_start(cfg, &s, err, sizeof err) < 0) {
        fprintf(stderr, "rnnserve: %s\n", err);
        cfg_free(cfg);
        return 1;
    }
    for (size_t i = 0; i < cfg->n_models; i++) {
        char line[256];
        rnn_info_summary(rnn_model_info(s->set->models[i]), line, sizeof line);
        fprintf(stderr, "rnnserve: model %s: %s%s\n", cfg->models[i].name, line,
                i == 0 ? " [default: POST /forward]" : "");
    }
    int compute = cfg->server.threads > 0 ? cfg->server.threads : ncpu();
    const char *host = cfg->server.host;
    int v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "rnnserve: listening on %s://%s%s%s:%d (%d compute threads)\n",
            cfg->server.tls_cert ? "https" : "http", v6 ? "[" : "", host, v6 ? "]" : "", s->port,
            compute);

    int sig = 0;
    /* SIGHUP reloads the models (server settings need a restart); SIGTERM/SIGINT drain. */
    while (sigwait(&set, &sig) == 0 && sig == SIGHUP) {
        if (srv_reload(s, config_path, err, sizeof err) < 0) {
            fprintf(stderr,
                    "rnnserve: SIGHUP: reload failed, still serving the previous models: %s\n",
                    err);
            continue;
        }
        modelset *m = set_acquire(s);
        for (size_t i = 0; i < m->n_models; i++) {
            char line[256];
            rnn_info_summary(rnn_model_info(m->models[i]), line, sizeof line);
            fprintf(stderr, "rnnserve: SIGHUP: reloaded model %s: %s\n",
                    rnn_model_info(m->models[i])->name, line);
        }
        set_release(m);
    }
    fprintf(stderr, "rnnserve: %s received, draining (up to %d s)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", cfg->server.timeout_s);
    srv_drain(s);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long left = srv_wait_idle(s, cfg->server.timeout_s * 1000);
    if (left)
        fprintf(stderr, "rnnserve: %ld request(s) still open after %d s, closing them\n", left,
                cfg->server.timeout_s);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!left)
        wait_quiet(s, cfg->server.timeout_s * 1000 - (int)((t1.tv_sec - t0.tv_sec) * 1000 +
                                                           (t1.tv_nsec - t0.tv_nsec) / 1000000));
    srv_stop(s);
    cfg_free(cfg);
    fprintf(stderr, "rnnserve: stopped\n");
    return 0;
}
