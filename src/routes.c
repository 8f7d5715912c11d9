/* routes.c - the route table and its dispatch: one row per route, and everything derived from
 * the rows (matching, 404, 405 with Allow, preflights, which requests keep a body, the API-key
 * check, the metrics labels), then each route's handler.
 *
 * Adding a route is one row in ROWS and a handler; docs/openapi.json documents it (tests/
 * test_openapi.c checks the two agree). */
#include <stdio.h>
#include <string.h>

#include "http_impl.h"
#include "rnnserve/auth.h"
#include "rnnserve/buf.h"
#include "rnnserve/openapi.h"
#include "rnnserve/playground.h"
#include "rnnserve/version.h"
#include "session_routes.h"

enum {
    TAKES_BODY = 1u, /* a POST body is kept (up to max_body_bytes) and the row's handler runs it */
    NEEDS_KEY = 2u,  /* an API key is required when server.api_keys is set */
};

struct route_row {
    routes_entry pub; /* pattern, methods, label */
    unsigned flags;
    const api_wire *(*wire)(void); /* the format of its bodies, errors included */
    enum MHD_Result (*handle)(req *r);
    const struct route_switch *when; /* NULL: always served */
};

/* A route that exists only while the config turns it on; off, its path is unmatched, and the 404
 * says how to turn it on (HINT) or, when NULL, what exists. */
struct route_switch {
    int (*on)(const srv *s);
    const char *hint;
};

static enum MHD_Result h_forward(req *r);
static enum MHD_Result h_models(req *r);
static enum MHD_Result h_model(req *r);
static enum MHD_Result h_healthz(req *r);
static enum MHD_Result h_readyz(req *r);
static enum MHD_Result h_metrics(req *r);
static enum MHD_Result h_playground(req *r);
static enum MHD_Result h_openapi(req *r);
static enum MHD_Result h_admin_reload(req *r);
static enum MHD_Result h_v2_server(req *r);
static enum MHD_Result h_v2_live(req *r);
static enum MHD_Result h_v2_ready(req *r);
static enum MHD_Result h_v2_model(req *r);
static enum MHD_Result h_v2_model_ready(req *r);
static int playground_on(const srv *s);
static int admin_on(const srv *s);
static const struct route_switch ADMIN = {admin_on, "(set server.admin_token to enable it)"};
static const struct route_switch PLAYGROUND = {playground_on, NULL};

#define GET ROUTE_GET
#define POST ROUTE_POST
#define DELETE ROUTE_DELETE
#define V1 api_wire_v1
#define V2 api_wire_v2
static const route_row ROWS[] = {
    {{"/forward", POST, "forward"}, TAKES_BODY | NEEDS_KEY, V1, h_forward, NULL},
    {{"/v1/models", GET, "models"}, NEEDS_KEY, V1, h_models, NULL},
    {{"/v1/models/{name}", GET, "model"}, NEEDS_KEY, V1, h_model, NULL},
    {{"/v1/models/{name}/forward", POST, "forward"}, TAKES_BODY | NEEDS_KEY, V1, h_forward, NULL},
    {{"/v1/models/{name}/generate", POST, "generate"},
     TAKES_BODY | NEEDS_KEY,
     V1,
     generate_handle,
     NULL},
    {{"/healthz", GET, "healthz"}, 0, V1, h_healthz, NULL},
    {{"/readyz", GET, "readyz"}, 0, V1, h_readyz, NULL},
    {{"/metrics", GET, "metrics"}, 0, V1, h_metrics, NULL},
    {{"/v2/models/{name}/infer", POST, "v2_infer"}, TAKES_BODY | NEEDS_KEY, V2, sr_v2_infer, NULL},
    {{"/v1/models/{name}/sessions", POST, "sessions"}, TAKES_BODY | NEEDS_KEY, V1, sr_create, NULL},
    {{"/v1/sessions/{id}/forward", POST, "session_forward"},
     TAKES_BODY | NEEDS_KEY,
     V1,
     sr_forward,
     NULL},
    {{"/v1/sessions/{id}", GET | DELETE, "sessions"}, NEEDS_KEY, V1, sr_state, NULL},
    {{"/v2/health/live", GET, "v2_health"}, 0, V2, h_v2_live, NULL},
    {{"/v2/health/ready", GET, "v2_health"}, 0, V2, h_v2_ready, NULL},
    {{"/v2", GET, "v2_metadata"}, 0, V2, h_v2_server, NULL},
    {{"/v2/models/{name}", GET, "v2_metadata"}, NEEDS_KEY, V2, h_v2_model, NULL},
    {{"/v2/models/{name}/ready", GET, "v2_metadata"}, NEEDS_KEY, V2, h_v2_model_ready, NULL},
    {{"/v1/admin/reload", POST, "admin"}, 0, V1, h_admin_reload, &ADMIN},
    {{"/", GET, "playground"}, 0, V1, h_playground, &PLAYGROUND},
    {{"/openapi.json", GET, "openapi"}, 0, V1, h_openapi, NULL},
};
#undef GET
#undef POST
#undef DELETE
#undef V1
#undef V2
#define N_ROWS (sizeof ROWS / sizeof *ROWS)

/* Unmatched paths answer in the format of the tree they fall in; outside the model trees the
 * 404 points at what exists. The first prefix that matches (at a segment boundary) wins. */
static const struct {
    const char *prefix;
    const api_wire *(*wire)(void);
    const char *hint;
} TREES[] = {
    {"/v2", api_wire_v2, NULL},
    {"/v1/models/", api_wire_v1, NULL},
    {"/v1/sessions/", api_wire_v1, NULL},
    {"", api_wire_v1, "(see GET /v1/models, POST /forward)"},
};

size_t routes_count(void)
{
    return N_ROWS;
}

const routes_entry *routes_at(size_t i)
{
    return i < N_ROWS ? &ROWS[i].pub : NULL;
}

/* ---------------------------------------------------------------------------------------------
 * What the rows say */

_Static_assert(N_ROWS <= ROUTES_MAX, "raise ROUTES_MAX in http_impl.h");

/* Whether row I is the first with its label. */
static int first_with_label(size_t i)
{
    size_t j = 0;
    while (strcmp(ROWS[j].pub.label, ROWS[i].pub.label) != 0)
        j++;
    return j == i;
}

size_t routes_labels(srv *s, const char **names, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < N_ROWS; i++) {
        if (!first_with_label(i))
            continue;
        for (size_t j = i; j < N_ROWS; j++)
            if (strcmp(ROWS[j].pub.label, ROWS[i].pub.label) == 0)
                s->row_label[j] = n;
        if (n < cap)
            names[n] = ROWS[i].pub.label;
        n++;
    }
    s->label_preflight = n;
    s->label_unmatched = n + 1;
    if (n < cap)
        names[n] = "preflight";
    if (n + 1 < cap)
        names[n + 1] = "unmatched";
    return n + 2;
}

/* The tree of TREES an unmatched PATH falls in. */
static size_t tree_of(const char *path)
{
    size_t i = 0;
    for (;; i++) {
        size_t n = strlen(TREES[i].prefix);
        if (strncmp(path, TREES[i].prefix, n) == 0 &&
            (n == 0 || TREES[i].prefix[n - 1] == '/' || path[n] == '\0' || path[n] == '/'))
            return i;
    }
}

/* PATH against PATTERN: literal segments, and {name} or {id} for one segment, whose span is
 * stored in *name, *len. An empty name matches too: it is a model (or a session) that does not
 * exist (404 naming ""). */
static int match(const char *pattern, const char *path, const char **name, size_t *len)
{
    const char *cap = strchr(pattern, '{');
    if (!cap)
        return strcmp(pattern, path) == 0;
    size_t head = (size_t)(cap - pattern);
    if (strncmp(pattern, path, head) != 0)
        return 0;
    const char *seg = path + head, *end = strchr(seg, '/');
    size_t n = end ? (size_t)(end - seg) : strlen(seg);
    if (strcmp(strchr(cap, '}') + 1, seg + n) != 0)
        return 0;
    *name = seg;
    *len = n;
    return 1;
}

static int method_ok(unsigned methods, const char *m)
{
    return ((methods & ROUTE_GET) && (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)) ||
           ((methods & ROUTE_POST) && strcmp(m, "POST") == 0) ||
           ((methods & ROUTE_DELETE) && strcmp(m, "DELETE") == 0);
}

/* The Allow header's value for METHODS: "GET, HEAD, OPTIONS", "POST, OPTIONS", ... */
static void allow_list(unsigned methods, char *out, size_t len)
{
    snprintf(out, len, "%s%s%sOPTIONS", methods & ROUTE_GET ? "GET, HEAD, " : "",
             methods & ROUTE_POST ? "POST, " : "", methods & ROUTE_DELETE ? "DELETE, " : "");
}

void routes_match(req *r)
{
    r->row = NULL;
    r->label = r->s->label_unmatched;
    for (size_t i = 0; i < N_ROWS; i++) {
        const route_row *row = &ROWS[i];
        const char *name = NULL;
        size_t len = 0;
        if (match(row->pub.pattern, r->path, &name, &len) && (!row->when || row->when->on(r->s))) {
            r->row = row;
            r->label = r->s->row_label[i];
            r->wire = row->wire();
            if (strstr(row->pub.pattern, "{id}")) { /* a session: routes_answer looks up none */
                r->sid = name;
                r->sid_len = len;
            } else {
                r->name = name;
                r->name_len = len;
            }
            return;
        }
    }
    r->wire = TREES[tree_of(r->path)].wire();
}

const api_wire *routes_wire_of(const srv *s, const char *path)
{
    for (size_t i = 0; i < N_ROWS; i++) {
        const char *name;
        size_t len;
        if (match(ROWS[i].pub.pattern, path, &name, &len) && (!ROWS[i].when || ROWS[i].when->on(s)))
            return ROWS[i].wire();
    }
    return TREES[tree_of(path)].wire();
}

int routes_keeps_body(const req *r)
{
    return r->row && (r->row->flags & TAKES_BODY) && strcmp(r->method, "POST") == 0;
}

/* ---------------------------------------------------------------------------------------------
 * Dispatch */

/* Any path: a CORS preflight, answered for every method the table serves. */
static enum MHD_Result preflight(req *r)
{
    unsigned all = 0;
    for (size_t i = 0; i < N_ROWS; i++)
        all |= ROWS[i].pub.methods;
    char allow[64];
    snprintf(allow, sizeof allow, "%s%s%sOPTIONS", all & ROUTE_GET ? "GET, " : "",
             all & ROUTE_POST ? "POST, " : "", all & ROUTE_DELETE ? "DELETE, " : "");
    const char *const extra[] = {"Access-Control-Allow-Methods",
                                 allow,
                                 "Access-Control-Allow-Headers",
                                 "Content-Type, Authorization, X-Request-Id, traceparent",
                                 "Access-Control-Max-Age",
                                 "600",
                                 "Allow",
                                 allow,
                                 NULL};
    r->label = r->s->label_preflight;
    return http_respond(r, 204, NULL, 0, 0, NULL, extra);
}

static enum MHD_Result not_found(req *r)
{
    const char *hint = TREES[tree_of(r->path)].hint;
    for (size_t i = 0; i < N_ROWS; i++) { /* a route that is off says how to turn it on */
        const char *name;
        size_t len;
        if (ROWS[i].when && ROWS[i].when->hint && match(ROWS[i].pub.pattern, r->path, &name, &len))
            hint = ROWS[i].when->hint;
    }
    if (hint)
        return http_respond_error(r, 404, NULL, "no route %s %s", r->path, hint);
    return http_respond_error(r, 404, NULL, "no route %s", r->path);
}

/* Whether R's route needs an API key that R does not carry (never for a preflight or an
 * unmatched path, which answer without one). */
static int lacks_key(const req *r)
{
    const cfg_server *cs = &r->s->cfg->server;
    return r->row && strcmp(r->method, "OPTIONS") != 0 && (r->row->flags & NEEDS_KEY) &&
           cs->n_api_keys &&
           !auth_bearer_ok(MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization"),
                           (const char *const *)cs->api_keys, cs->n_api_keys);
}

static enum MHD_Result unauthorized(req *r)
{
    const char *const challenge[] = {"WWW-Authenticate", "Bearer realm=\"rnnserve\"", NULL};
    return http_respond_error(r, 401, challenge,
                              "missing or unknown API key: send \"Authorization: Bearer <key>\"");
}

int routes_refuse_early(req *r, enum MHD_Result *ret)
{
    if (!lacks_key(r))
        return 0;
    *ret = unauthorized(r);
    return 1;
}

enum MHD_Result routes_answer(req *r)
{
    if (strcmp(r->method, "OPTIONS") == 0)
        return preflight(r);
    const route_row *row = r->row;
    if (!row)
        return not_found(r);
    if (lacks_key(r))
        return unauthorized(r);
    /* The model a route names is looked up before its method is checked: a 404 for a model
     * that does not exist, whatever the method. */
    r->model = r->set->models[0];
    r->model_idx = 0;
    if (r->name && !(r->model = modelset_find(r->set, r->name, r->name_len, &r->model_idx)))
        return http_respond_error(r, 404, NULL,
                                  "model \"%.*s\" not found (GET /v1/models lists the models)",
                                  (int)r->name_len, r->name);
    if (!method_ok(row->pub.methods, r->method)) {
        char allow[64];
        allow_list(row->pub.methods, allow, sizeof allow);
        const char *const extra[] = {"Allow", allow, NULL};
        return http_respond_error(r, 405, extra, "method %s is not allowed on %s (allowed: %s)",
                                  r->method, r->path, allow);
    }
    return row->handle(r);
}

/* ---------------------------------------------------------------------------------------------
 * Handlers: the route is matched, authorised, its model found and its method allowed. */

static const char *const JSON = "application/json";

static int playground_on(const srv *s)
{
    return s->cfg->server.playground;
}

static int admin_on(const srv *s)
{
    return s->cfg->server.admin_token != NULL;
}

/* POST /forward, /v1/models/{name}/forward, /v2/models/{name}/infer. */
static enum MHD_Result h_forward(req *r)
{
    if (r->too_big)
        return http_respond_error(r, 413, NULL, "request body exceeds max_body_bytes %zu",
                                  r->s->cfg->server.max_body_bytes);
    return http_forward(r);
}

static enum MHD_Result h_models(req *r)
{
    return http_respond(r, 200, r->set->list, r->set->list_len, 0, JSON, NULL);
}

static enum MHD_Result h_model(req *r)
{
    return http_respond(r, 200, r->set->meta[r->model_idx], r->set->meta_len[r->model_idx], 0, JSON,
                        NULL);
}

static enum MHD_Result h_healthz(req *r)
{
    return http_respond_static(r, 200, "{\"status\":\"ok\"}", JSON);
}

static enum MHD_Result h_readyz(req *r)
{
    if (atomic_load(&r->s->draining))
        return http_respond_error(r, 503, NULL, "draining: the server is shutting down");
    return http_respond_static(r, 200, "{\"status\":\"ready\"}", JSON);
}

/* The registry's counters with the figures other modules own: the queue and the reloads. */
static enum MHD_Result h_metrics(req *r)
{
    srv *s = r->s;
    sched_depth d;
    compute_depth(s->compute, &d);
    metrics_state st = {.queued_requests = d.jobs,
                        .queued_flops = d.queued_flops,
                        .running_passes = d.running_passes,
                        .reloads_ok = atomic_load(&s->models.reloads_ok),
                        .reloads_failed = atomic_load(&s->models.reloads_failed),
                        .last_reload_s = (double)atomic_load(&s->models.last_reload_ns) / 1e9};
    size_t len;
    char *text = metrics_render(s->met, &st, &len);
    text = text ? sr_metrics_append(r->s, text, &len) : NULL;
    if (!text)
        return http_respond_error(r, 500, NULL, "out of memory rendering metrics");
    return http_respond(r, 200, text, len, 1, "text/plain; version=0.0.4; charset=utf-8", NULL);
}

static enum MHD_Result h_playground(req *r)
{
    /* The page needs nothing but its inline code and this server's API; the policy makes the
     * browser refuse anything else, so it cannot be made to load or send elsewhere. */
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
    return http_respond(r, 200, (char *)playground_html, playground_html_len, 0,
                        "text/html; charset=utf-8", extra);
}

static enum MHD_Result h_openapi(req *r)
{
    return http_respond(r, 200, (char *)openapi_json, openapi_json_len, 0, JSON, NULL);
}

/* POST /v1/admin/reload: reloads the config's models (only while server.admin_token is set).
 * Loading a model can take seconds, so it runs on the reloader thread, and the connection waits
 * suspended; the I/O thread serves its other connections meanwhile. */
static enum MHD_Result h_admin_reload(req *r)
{
    srv *s = r->s;
    const char *const challenge[] = {"WWW-Authenticate", "Bearer realm=\"rnnserve-admin\"", NULL};
    const char *token = s->cfg->server.admin_token;
    if (!auth_bearer_ok(MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization"),
                        &token, 1))
        return http_respond_error(r, 401, challenge,
                                  "reloading needs \"Authorization: Bearer <server.admin_token>\"");
    if (reloader_submit(s, r) < 0)
        return http_respond_error(r, 503, NULL, "draining: the server is shutting down");
    return MHD_YES;
}

enum MHD_Result routes_reloaded(req *r)
{
    srv *s = r->s;
    if (r->reload_rc < 0)
        return http_respond_error(r, 500, NULL,
                                  "reload failed, still serving the previous models: %s",
                                  r->reload_err ? r->reload_err : "out of memory");
    modelset *m = modelset_slot_get(&s->models);
    buf b = BUF_INIT;
    buf_puts(&b, "{\"status\":\"reloaded\",\"models\":[");
    for (size_t i = 0; i < m->n_models; i++) {
        if (i)
            buf_putc(&b, ',');
        buf_json_string(&b, rnn_model_info(m->models[i])->name);
    }
    buf_puts(&b, "]}");
    modelset_release(m);
    size_t len;
    char *body = buf_take(&b, &len);
    if (!body)
        return MHD_NO;
    return http_respond_json(r, 200, body, len);
}

static enum MHD_Result h_v2_server(req *r)
{
    return http_respond_static(r, 200,
                               "{\"name\":\"rnnserve\",\"version\":\"" RNNSERVE_VERSION
                               "\",\"extensions\":[\"sequence\"]}",
                               JSON);
}

static enum MHD_Result h_v2_live(req *r)
{
    return http_respond_static(r, 200, "{\"live\":true}", JSON);
}

static enum MHD_Result h_v2_ready(req *r)
{
    return atomic_load(&r->s->draining) ? http_respond_static(r, 503, "{\"ready\":false}", JSON)
                                        : http_respond_static(r, 200, "{\"ready\":true}", JSON);
}

static enum MHD_Result h_v2_model(req *r)
{
    return http_respond(r, 200, r->set->v2meta[r->model_idx], r->set->v2meta_len[r->model_idx], 0,
                        JSON, NULL);
}

static enum MHD_Result h_v2_model_ready(req *r)
{
    int draining = atomic_load(&r->s->draining);
    buf b = BUF_INIT;
    buf_puts(&b, "{\"name\":");
    buf_json_string(&b, rnn_model_info(r->model)->name);
    buf_puts(&b, draining ? ",\"ready\":false}" : ",\"ready\":true}");
    size_t len;
    char *body = buf_take(&b, &len);
    if (!body)
        return MHD_NO;
    return http_respond_json(r, draining ? 503 : 200, body, len);
}
