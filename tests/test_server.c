/* test_server.c - the HTTP service end to end: every route and error of docs/API.md, CORS,
 * keep-alive, split and stalled uploads, concurrency, the compute pool, and drain.
 *
 * Each test starts its own server in-process (srv_start on 127.0.0.1, port 0) and talks to it
 * over real sockets: libcurl for ordinary requests, raw sockets where curl cannot misbehave
 * enough (bodies sent a byte at a time, stalled half-requests, clients that vanish).
 *
 * The server runs a forward pass inline on its I/O thread when it is cheap, and otherwise
 * suspends the connection and hands it to the compute pool. To see which path a request took,
 * this file interposes MHD_suspend_connection (librnnserve.a is linked statically, so its calls
 * bind to the definition below, which counts and forwards to libmicrohttpd's). */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rnnserve/api.h"
#include "rnnserve/compute.h"
#include "rnnserve/config.h"
#include "rnnserve/server.h"
#include "httpc.h"
#include "testutil.h"

#define TOL 1e-5

/* config/default.request.json, compact, as the README's curl line sends it. */
#define DEFAULT_BODY "{\"inputs\": [[[0.0],[0.1411],[-0.2794]]]}"
#define STALL_AT 20 /* a client that stops after this many bytes of DEFAULT_BODY */

/* ---------------------------------------------------------------------------------------------
 * Time, and how much slower than native we run */

/* Latency bounds are stated for a native build; sanitizers and valgrind stretch them. */
static double slack(void)
{
    return tu_slack(2.0, 20.0);
}

/* ---------------------------------------------------------------------------------------------
 * Which path a forward took: count MHD_suspend_connection calls (one per pool hand-off) */

static atomic_int n_suspends;
static void (*real_suspend)(struct MHD_Connection *);

void MHD_suspend_connection(struct MHD_Connection *connection)
{
    atomic_fetch_add(&n_suspends, 1);
    real_suspend(connection);
}

/* ---------------------------------------------------------------------------------------------
 * The server under test (one per test; fork mode gives each test a fresh process) */

static struct {
    cfg_config *cfg;
    srv *s;
    int port;
    char *tmp[8]; /* files to unlink at teardown */
    size_t n_tmp;
} g;

static void keep_tmp(char *path)
{
    ck_assert_ptr_nonnull(path);
    ck_assert_uint_lt(g.n_tmp, sizeof g.tmp / sizeof *g.tmp);
    g.tmp[g.n_tmp++] = path;
}

static void setup(void)
{
    memset(&g, 0, sizeof g);
    atomic_store(&n_suspends, 0);
}

static void teardown(void)
{
    srv_stop(g.s);
    cfg_free(g.cfg);
    for (size_t i = 0; i < g.n_tmp; i++) {
        unlink(g.tmp[i]);
        free(g.tmp[i]);
    }
    memset(&g, 0, sizeof g);
}

static char *abs_path(const char *rel)
{
    char *p = realpath(rel, NULL);
    ck_assert_msg(p != NULL, "realpath %s: %s", rel, strerror(errno));
    return p;
}

/* One "models" entry of a config: "default" (config/default.json's model), a fixture case name
 * (tests/fixtures/cases/<case>/config.json's model), or a literal JSON object. Weight paths are
 * made absolute so that the generated config can live anywhere. */
static json_t *model_entry(const char *spec)
{
    json_error_t jerr;
    if (spec[0] == '{') {
        json_t *m = json_loads(spec, 0, &jerr);
        ck_assert_msg(m != NULL, "model spec: %s", jerr.text);
        return m;
    }
    char dir[256], path[512];
    if (strcmp(spec, "default") == 0)
        snprintf(dir, sizeof dir, "config");
    else
        snprintf(dir, sizeof dir, "tests/fixtures/cases/%s", spec);
    snprintf(path, sizeof path, "%s/%s", dir,
             strcmp(spec, "default") == 0 ? "default.json" : "config.json");
    json_t *root = json_load_file(path, 0, &jerr);
    ck_assert_msg(root != NULL, "%s: %s", path, jerr.text);
    json_t *m = json_array_get(json_object_get(root, "models"), 0);
    ck_assert_ptr_nonnull(m);
    json_incref(m);
    json_decref(root);
    json_t *w = json_object_get(m, "weights");
    if (json_is_string(w)) {
        snprintf(path, sizeof path, "%s/%s", dir, json_string_value(w));
        char *abs = abs_path(path);
        json_object_set_new(m, "weights", json_string(abs));
        free(abs);
    }
    return m;
}

/* Writes a config with server section SERVER_JSON (NULL: none) and the models SPECS (see
 * model_entry; NULL-terminated) to a temporary file, loads it with cfg_load_file, points it at
 * 127.0.0.1 port 0 and starts the server. */
static void serve_models(const char *server_json, const char *const *specs)
{
    json_error_t jerr;
    json_t *root = json_object();
    json_t *server = server_json ? json_loads(server_json, 0, &jerr) : json_object();
    ck_assert_msg(server != NULL, "server json: %s", jerr.text);
    json_object_set_new(root, "server", server);
    json_t *models = json_array();
    for (size_t i = 0; specs[i]; i++)
        json_array_append_new(models, model_entry(specs[i]));
    json_object_set_new(root, "models", models);
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    ck_assert_ptr_nonnull(text);
    char *path = tu_write_tmp(".json", text, strlen(text));
    free(text);
    keep_tmp(path);

    char err[1024];
    ck_assert_msg(cfg_load_file(path, &g.cfg, err, sizeof err) == 0, "%s", err);
    free(g.cfg->server.host);
    g.cfg->server.host = strdup("127.0.0.1");
    ck_assert_ptr_nonnull(g.cfg->server.host);
    g.cfg->server.port = 0;
    ck_assert_msg(srv_start(g.cfg, &g.s, err, sizeof err) == 0, "srv_start: %s", err);
    g.port = srv_port(g.s);
    ck_assert_int_gt(g.port, 0);
}

static void serve1(const char *server_json, const char *spec)
{
    const char *specs[] = {spec, NULL};
    serve_models(server_json, specs);
}

/* The bundled default model with the server section as config/default.json has it. */
static void serve_default(void)
{
    char err[1024];
    ck_assert_msg(cfg_load_file("config/default.json", &g.cfg, err, sizeof err) == 0, "%s", err);
    free(g.cfg->server.host);
    g.cfg->server.host = strdup("127.0.0.1");
    ck_assert_ptr_nonnull(g.cfg->server.host);
    g.cfg->server.port = 0;
    ck_assert_msg(srv_start(g.cfg, &g.s, err, sizeof err) == 0, "srv_start: %s", err);
    g.port = srv_port(g.s);
    ck_assert_int_gt(g.port, 0);
}

static long in_flight(void)
{
    return srv_wait_idle(g.s, 0);
}

/* Polls until at least N requests are in flight; fails after TIMEOUT_MS. */
static void wait_in_flight(long n, int timeout_ms)
{
    double end = tu_now_s() + timeout_ms / 1e3;
    while (in_flight() < n) {
        ck_assert_msg(tu_now_s() < end, "only %ld of %ld requests in flight after %d ms",
                      in_flight(), n, timeout_ms);
        tu_sleep_ms(2);
    }
}

/* ---------------------------------------------------------------------------------------------
 * A model big enough that every forward goes to the compute pool and takes a while:
 * LSTM, input 8, hidden 256, 2 layers (~1.6 MFLOP per step), written as F32 safetensors. */

#define BIG_I 8
#define BIG_H 256
#define BIG_L 2

static void put_tensor(json_t *hdr, float *data, size_t *at, const char *name, int64_t rows,
                       int64_t cols, uint32_t *seed)
{
    size_t n = (size_t)rows * (size_t)(cols ? cols : 1);
    const float k = 1.0f / sqrtf((float)BIG_H); /* PyTorch's init range */
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        data[*at + i] = k * (2.0f * (float)(*seed >> 8) / (float)(1u << 24) - 1.0f);
    }
    json_t *shape = cols ? json_pack("[I,I]", (json_int_t)rows, (json_int_t)cols)
                         : json_pack("[I]", (json_int_t)rows);
    json_object_set_new(hdr, name,
                        json_pack("{s:s,s:o,s:[I,I]}", "dtype", "F32", "shape", shape,
                                  "data_offsets", (json_int_t)(*at * 4),
                                  (json_int_t)((*at + n) * 4)));
    *at += n;
}

/* Writes the big model's weights to a temporary file; returns its "models" entry. */
static char *big_model_spec(void)
{
    const int64_t G = 4 * BIG_H;
    size_t total = 0;
    for (int l = 0; l < BIG_L; l++)
        total += (size_t)(G * (l ? BIG_H : BIG_I) + G * BIG_H + 2 * G);
    float *data = malloc(total * sizeof *data);
    ck_assert_ptr_nonnull(data);
    json_t *hdr = json_object();
    size_t at = 0;
    uint32_t seed = 12345;
    char name[64];
    for (int l = 0; l < BIG_L; l++) {
        snprintf(name, sizeof name, "weight_ih_l%d", l);
        put_tensor(hdr, data, &at, name, G, l ? BIG_H : BIG_I, &seed);
        snprintf(name, sizeof name, "weight_hh_l%d", l);
        put_tensor(hdr, data, &at, name, G, BIG_H, &seed);
        snprintf(name, sizeof name, "bias_ih_l%d", l);
        put_tensor(hdr, data, &at, name, G, 0, &seed);
        snprintf(name, sizeof name, "bias_hh_l%d", l);
        put_tensor(hdr, data, &at, name, G, 0, &seed);
    }
    ck_assert_uint_eq(at, total);
    char *htext = json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(hdr);
    size_t hlen = strlen(htext), padded = (hlen + 7) / 8 * 8;
    size_t flen = 8 + padded + total * sizeof(float);
    unsigned char *file = malloc(flen);
    ck_assert_ptr_nonnull(file);
    for (int i = 0; i < 8; i++)
        file[i] = (unsigned char)(((uint64_t)padded >> (8 * i)) & 0xff);
    memcpy(file + 8, htext, hlen);
    memset(file + 8 + hlen, ' ', padded - hlen);
    for (size_t i = 0; i < total; i++) { /* little-endian, as the format says */
        uint32_t u;
        memcpy(&u, &data[i], 4);
        for (int b = 0; b < 4; b++)
            file[8 + padded + 4 * i + (size_t)b] = (unsigned char)(u >> (8 * b));
    }
    free(htext);
    free(data);
    char *path = tu_write_tmp(".safetensors", file, flen);
    free(file);
    keep_tmp(path);
    char *spec = malloc(strlen(path) + 256);
    ck_assert_ptr_nonnull(spec);
    sprintf(spec,
            "{\"name\": \"big\", \"type\": \"lstm\", \"input_size\": %d, \"hidden_size\": %d, "
            "\"num_layers\": %d, \"weights\": \"%s\"}",
            BIG_I, BIG_H, BIG_L, path);
    return spec;
}

/* A request of one sequence of STEPS steps for the big model (malloc'ed). */
static char *big_request(size_t steps)
{
    size_t cap = 32 + steps * (BIG_I * 8 + 4);
    char *b = malloc(cap), *p = b;
    ck_assert_ptr_nonnull(b);
    p += sprintf(p, "{\"inputs\": [[");
    for (size_t t = 0; t < steps; t++) {
        p += sprintf(p, "%s[", t ? "," : "");
        for (int i = 0; i < BIG_I; i++) {
            int v = (int)((t * 7 + (size_t)i * 3) % 19) - 9; /* -0.9 .. 0.9 */
            p += sprintf(p, "%s%.1f", i ? "," : "", v / 10.0);
        }
        *p++ = ']';
    }
    p += sprintf(p, "]]}");
    return b;
}

/* ---------------------------------------------------------------------------------------------
 * HTTP through libcurl */

typedef httpc_resp resp;

static void resp_free(resp *r)
{
    httpc_resp_free(r);
}

/* METHOD PATH against the server under test on handle H (see httpc_full). */
static CURLcode http_full(CURL *h, const char *method, const char *path, const char *body,
                          size_t len, int chunked, const char *const *headers, resp *out)
{
    return httpc_full(h, g.port, method, path, body, len, chunked, headers, out);
}

/* One request on a fresh connection; BODY is a string (or NULL). */
static CURLcode http(const char *method, const char *path, const char *body,
                     const char *const *headers, resp *out)
{
    return httpc(g.port, method, path, body, headers, out);
}

/* As http, asserting that the exchange itself worked (any status). */
static void fetch(const char *method, const char *path, const char *body,
                  const char *const *headers, resp *out)
{
    CURLcode rc = http(method, path, body, headers, out);
    ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
}

/* The value of the last header NAME in R (case-insensitive name), copied to val[vlen]; NULL
 * when absent. */
static const char *header(const resp *r, const char *name, char *val, size_t vlen)
{
    return httpc_header(r, name, val, vlen);
}

static void assert_header_contains(const resp *r, const char *name, const char *needle)
{
    char v[512];
    ck_assert_msg(header(r, name, v, sizeof v) != NULL, "no %s header in:\n%s", name, r->headers);
    ck_assert_msg(strstr(v, needle) != NULL, "%s: \"%s\" lacks \"%s\"", name, v, needle);
}

static void assert_no_header(const resp *r, const char *name)
{
    char v[512];
    ck_assert_msg(header(r, name, v, sizeof v) == NULL, "unexpected %s: %s", name, v);
}

/* The contract's error: STATUS, a JSON body {"error": {"status": STATUS, "message": "..."}}
 * whose message contains NEEDLE, and (under the default cors_origins ["*"]) CORS. */
static void assert_error(const resp *r, long status, const char *needle)
{
    ck_assert_msg(r->status == status, "status %ld, expected %ld; body: %s", r->status, status,
                  r->body);
    assert_header_contains(r, "Content-Type", "application/json");
    json_error_t jerr;
    json_t *root = json_loadb(r->body, r->len, 0, &jerr);
    ck_assert_msg(root != NULL, "error body is not JSON (%s): %s", jerr.text, r->body);
    ck_assert_msg(json_object_size(root) == 1, "extra fields in %s", r->body);
    json_t *e = json_object_get(root, "error");
    ck_assert_msg(json_is_object(e) && json_object_size(e) == 2, "bad error object: %s", r->body);
    ck_assert_msg(json_is_integer(json_object_get(e, "status")) &&
                      json_integer_value(json_object_get(e, "status")) == status,
                  "error.status mismatch: %s", r->body);
    const char *msg = json_string_value(json_object_get(e, "message"));
    ck_assert_msg(msg && *msg, "error.message missing: %s", r->body);
    ck_assert_msg(strstr(msg, needle) != NULL, "message \"%s\" does not name \"%s\"", msg, needle);
    json_decref(root);
}

static void assert_cors_star(const resp *r)
{
    char v[64];
    ck_assert_msg(header(r, "Access-Control-Allow-Origin", v, sizeof v) && strcmp(v, "*") == 0,
                  "no Access-Control-Allow-Origin: * in:\n%s", r->headers);
}

/* ---------------------------------------------------------------------------------------------
 * Expected answers */

/* Compares GOT against EXP structurally: same object keys, same array lengths, equal strings
 * and booleans, numbers within TOL. Returns 1 when they match; otherwise 0 with the first
 * difference in why[wlen]. */
static int json_close(const json_t *got, const json_t *exp, char *path, size_t plen, char *why,
                      size_t wlen)
{
    size_t at = strlen(path);
    if (json_is_number(exp)) {
        if (!json_is_number(got)) {
            snprintf(why, wlen, "%s: expected a number", path);
            return 0;
        }
        double a = json_number_value(got), b = json_number_value(exp);
        if (!(fabs(a - b) <= TOL)) {
            snprintf(why, wlen, "%s: got %.9g, expected %.9g", path, a, b);
            return 0;
        }
        return 1;
    }
    if (json_typeof(got) != json_typeof(exp) && !(json_is_boolean(got) && json_is_boolean(exp))) {
        snprintf(why, wlen, "%s: type %d, expected %d", path, (int)json_typeof(got),
                 (int)json_typeof(exp));
        return 0;
    }
    if (json_is_array(exp)) {
        if (json_array_size(got) != json_array_size(exp)) {
            snprintf(why, wlen, "%s: %zu entries, expected %zu", path, json_array_size(got),
                     json_array_size(exp));
            return 0;
        }
        for (size_t i = 0; i < json_array_size(exp); i++) {
            snprintf(path + at, plen - at, "[%zu]", i);
            if (!json_close(json_array_get(got, i), json_array_get(exp, i), path, plen, why, wlen))
                return 0;
        }
    } else if (json_is_object(exp)) {
        if (json_object_size(got) != json_object_size(exp)) {
            snprintf(why, wlen, "%s: %zu fields, expected %zu", path, json_object_size(got),
                     json_object_size(exp));
            return 0;
        }
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)exp, k, v)
        {
            snprintf(path + at, plen - at, ".%s", k);
            json_t *gv = json_object_get(got, k);
            if (!gv) {
                snprintf(why, wlen, "%s: missing", path);
                return 0;
            }
            if (!json_close(gv, v, path, plen, why, wlen))
                return 0;
        }
    } else if (json_is_string(exp)) {
        if (strcmp(json_string_value(got), json_string_value(exp)) != 0) {
            snprintf(why, wlen, "%s: \"%s\", expected \"%s\"", path, json_string_value(got),
                     json_string_value(exp));
            return 0;
        }
    } else if (json_is_boolean(exp) && json_is_true(got) != json_is_true(exp)) {
        snprintf(why, wlen, "%s: wrong boolean", path);
        return 0;
    }
    path[at] = '\0';
    return 1;
}

/* Whether BODY (a forward response) matches EXP (an expected.json) within TOL. */
static int matches(const char *body, size_t len, const json_t *exp, char *why, size_t wlen)
{
    json_error_t jerr;
    json_t *got = json_loadb(body, len, 0, &jerr);
    if (!got) {
        snprintf(why, wlen, "response is not JSON: %s", jerr.text);
        return 0;
    }
    char path[256] = "";
    int ok = json_close(got, exp, path, sizeof path, why, wlen);
    json_decref(got);
    return ok;
}

/* A forward request ready to send: where, what, and the answer PyTorch gave. */
typedef struct {
    char url[128];
    char *body;
    size_t len;
    json_t *exp;
    int pooled; /* handed to the scheduler by the server's rule (compute_runs_inline) */
} job;

static void job_free(job *j)
{
    free(j->body);
    json_decref(j->exp);
    memset(j, 0, sizeof *j);
}

/* Loads CASE's request and expected answer ("default": the bundled model's), to be sent to URL.
 * PAD_TO > 0 appends spaces to the body up to that many bytes (valid JSON all the same). */
/* Whether the server hands BODY for model CASE to the scheduler: its own rule, on its own
 * decoding (what the request will cost and produce, not the size of its body). */
static int pooled_by_rule(const char *case_, const char *body, size_t len)
{
    char path[256], err[1024];
    cfg_config *cfg;
    rnn_model *m;
    if (strcmp(case_, "default") == 0)
        snprintf(path, sizeof path, "config/default.json");
    else
        snprintf(path, sizeof path, "tests/fixtures/cases/%s/config.json", case_);
    ck_assert_msg(cfg_load_file(path, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(rnn_model_load(&cfg->models[0], &m, err, sizeof err) == 0, "%s", err);
    api_limits lim = {1024, 100000};
    api_call *call = NULL;
    char *eb = NULL;
    size_t el;
    ck_assert_int_eq(api_decode(api_wire_v1(), m, body, len, &lim, &call, &eb, &el), 200);
    int pooled = !compute_runs_inline(call);
    api_call_free(call);
    rnn_model_free(m);
    cfg_free(cfg);
    return pooled;
}

static void job_load(job *j, const char *case_, const char *url, size_t pad_to)
{
    char req[256], exp[256];
    memset(j, 0, sizeof *j);
    snprintf(j->url, sizeof j->url, "%s", url);
    if (strcmp(case_, "default") == 0) {
        snprintf(req, sizeof req, "config/default.request.json");
        snprintf(exp, sizeof exp, "config/default.expected.json");
    } else {
        snprintf(req, sizeof req, "tests/fixtures/cases/%s/request.json", case_);
        snprintf(exp, sizeof exp, "tests/fixtures/cases/%s/expected.json", case_);
    }
    j->body = tu_read_file(req, &j->len);
    ck_assert_msg(j->body != NULL, "cannot read %s", req);
    if (pad_to > j->len) {
        char *nb = realloc(j->body, pad_to + 1);
        ck_assert_ptr_nonnull(nb);
        memset(nb + j->len, ' ', pad_to - j->len);
        nb[pad_to] = '\0';
        j->body = nb;
        j->len = pad_to;
    }
    j->pooled = pooled_by_rule(case_, j->body, j->len);
    json_error_t jerr;
    j->exp = json_load_file(exp, 0, &jerr);
    ck_assert_msg(j->exp != NULL, "%s: %s", exp, jerr.text);
}

/* Body size past which the server used to send a request for model CASE to the compute pool
 * (the old rule: body_bytes / 2 * per-step FLOPs over 2e6), times 4: the padding the concurrency
 * test sends, to show that a body's size no longer decides (compute_runs_inline does). */
static size_t pool_size_for(const char *case_)
{
    json_t *m = model_entry(case_);
    const char *type = json_string_value(json_object_get(m, "type"));
    double G = strcmp(type, "lstm") == 0 ? 4 : strcmp(type, "gru") == 0 ? 3 : 1;
    double I = (double)json_integer_value(json_object_get(m, "input_size"));
    double H = (double)json_integer_value(json_object_get(m, "hidden_size"));
    json_t *jl = json_object_get(m, "num_layers");
    double L = jl ? (double)json_integer_value(jl) : 1;
    double D = json_is_true(json_object_get(m, "bidirectional")) ? 2 : 1;
    json_decref(m);
    double step = 2.0 * D * (G * H * (I + H) + (L - 1) * G * H * (D * H + H));
    return (size_t)(4.0 * 2.0 * 2e6 / step);
}

static void post_and_match(const char *url, const char *body, const json_t *exp)
{
    resp r;
    fetch("POST", url, body, NULL, &r);
    ck_assert_msg(r.status == 200, "POST %s: %ld %s", url, r.status, r.body);
    assert_header_contains(&r, "Content-Type", "application/json");
    char why[512];
    ck_assert_msg(matches(r.body, r.len, exp, why, sizeof why), "POST %s: %s", url, why);
    resp_free(&r);
}

static void post_case_and_match(const char *case_, const char *url)
{
    job j;
    job_load(&j, case_, url, 0);
    post_and_match(url, j.body, j.exp);
    job_free(&j);
}

/* ---------------------------------------------------------------------------------------------
 * Metrics */

/* The value of the sample whose line starts with SERIES (name plus labels, exactly as printed);
 * -1 when absent. */
static double metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

static double metric_now(const char *series)
{
    resp r;
    fetch("GET", "/metrics", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    double v = metric(r.body, series);
    resp_free(&r);
    return v;
}

/* The completion callback (which counts) runs just after the answer is sent, so poll. */
static void wait_metric(const char *series, double want)
{
    double end = tu_now_s() + 5.0 * slack(), v;
    while ((v = metric_now(series)) != want) {
        ck_assert_msg(tu_now_s() < end, "%s is %g, expected %g", series, v, want);
        tu_sleep_ms(5);
    }
}

#define FWD_200 "rnnserve_requests_total{route=\"forward\",code=\"200\"}"

/* ---------------------------------------------------------------------------------------------
 * Raw sockets */

static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)g.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s",
                  strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void raw_send(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        ck_assert_msg(w > 0, "send: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

static void raw_sends(int fd, const char *s)
{
    raw_send(fd, s, strlen(s));
}

/* Reads at most CAP bytes that arrive within TIMEOUT_MS. Returns the count, 0 on EOF or reset,
 * -1 on timeout. */
static ssize_t raw_recv(int fd, char *buf, size_t cap, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0)
        return -1;
    ssize_t r = recv(fd, buf, cap, 0);
    return r < 0 ? 0 : r;
}

/* Reads one HTTP response (Content-Length framed) within TIMEOUT_MS into OUT. Returns 0, or -1
 * when the connection ended or the time ran out first. */
static int raw_response(int fd, int timeout_ms, resp *out)
{
    memset(out, 0, sizeof *out);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    ck_assert_ptr_nonnull(buf);
    double end = tu_now_s() + timeout_ms / 1e3;
    long clen = -1;
    char *body = NULL;
    for (;;) {
        if (!body) {
            buf[n] = '\0';
            char *eoh = strstr(buf, "\r\n\r\n");
            if (eoh) {
                body = eoh + 4;
                out->hlen = (size_t)(body - buf);
                out->headers = strndup(buf, out->hlen);
                char v[64];
                clen = header(out, "Content-Length", v, sizeof v) ? atol(v) : 0;
                sscanf(buf, "HTTP/1.%*d %ld", &out->status);
            }
        }
        if (body && (size_t)(body - buf) + (size_t)clen <= n)
            break;
        int left = (int)((end - tu_now_s()) * 1e3);
        if (left <= 0)
            goto fail;
        if (n == cap) {
            size_t off = body ? (size_t)(body - buf) : 0;
            char *nb = realloc(buf, 2 * cap + 1);
            ck_assert_ptr_nonnull(nb);
            buf = nb;
            cap *= 2;
            if (body)
                body = buf + off;
        }
        ssize_t r = raw_recv(fd, buf + n, cap - n, left);
        if (r <= 0)
            goto fail;
        n += (size_t)r;
    }
    out->len = (size_t)clen;
    out->body = strndup(body, out->len);
    free(buf);
    return 0;
fail:
    free(buf);
    free(out->headers);
    memset(out, 0, sizeof *out);
    return -1;
}

/* Waits for the server to close FD (EOF or reset), discarding anything it sends first. Returns
 * the seconds it took, or -1 when it is still open after TIMEOUT_MS. */
static double raw_wait_closed(int fd, int timeout_ms)
{
    double t0 = tu_now_s(), end = t0 + timeout_ms / 1e3;
    char buf[4096];
    for (;;) {
        int left = (int)((end - tu_now_s()) * 1e3);
        if (left <= 0)
            return -1;
        ssize_t r = raw_recv(fd, buf, sizeof buf, left);
        if (r == 0)
            return tu_now_s() - t0;
        if (r < 0)
            return -1;
    }
}

/* "POST PATH" request head for a body of LEN bytes. */
static void post_head(char *dst, size_t cap, const char *path, size_t len)
{
    snprintf(dst, cap,
             "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n"
             "Content-Type: application/json\r\n\r\n",
             path, len);
}

/* Steps for one big-model request that takes about TARGET seconds here (measured, so that the
 * test means the same on a fast box, a loaded one, and under a sanitizer). */
static size_t big_steps_for(double target)
{
    char *body = big_request(64);
    double best = 1e9;
    for (int i = 0; i < 2; i++) {
        resp r;
        fetch("POST", "/v1/models/big/forward", body, NULL, &r);
        ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
        if (r.seconds < best)
            best = r.seconds;
        resp_free(&r);
    }
    free(body);
    double steps = 64.0 * target / (best > 1e-4 ? best : 1e-4);
    return steps < 64 ? 64 : steps > 20000 ? 20000 : (size_t)steps;
}

/* ---------------------------------------------------------------------------------------------
 * Endpoints */

START_TEST(test_post_forward_answers_with_the_default_model_like_pytorch)
{
    serve_default();
    post_case_and_match("default", "/forward");
}
END_TEST

static const char *const TWO_MODELS[] = {"lstm_h0c0", "gru_2layer_bidir", NULL};

START_TEST(test_post_named_model_forward_answers_like_pytorch)
{
    serve_models(NULL, TWO_MODELS);
    post_case_and_match("lstm_h0c0", "/v1/models/lstm_h0c0/forward");
    post_case_and_match("gru_2layer_bidir", "/v1/models/gru_2layer_bidir/forward");
    /* The first model of the config is the default one. */
    post_case_and_match("lstm_h0c0", "/forward");
}
END_TEST

/* Checks one metadata object against the config entry it came from. */
static void assert_metadata(const json_t *m, const char *case_)
{
    json_t *c = model_entry(case_);
    const char *type = json_string_value(json_object_get(c, "type"));
    ck_assert_str_eq(json_string_value(json_object_get(m, "name")), case_);
    ck_assert_str_eq(json_string_value(json_object_get(m, "type")), type);
    static const char *const ints[] = {"input_size", "hidden_size", "num_layers"};
    for (size_t i = 0; i < 3; i++) {
        json_t *want = json_object_get(c, ints[i]);
        ck_assert_msg(json_is_integer(json_object_get(m, ints[i])), "%s: %s not an integer", case_,
                      ints[i]);
        ck_assert_int_eq(json_integer_value(json_object_get(m, ints[i])),
                         want ? json_integer_value(want) : 1);
    }
    ck_assert_msg(json_object_get(m, "nonlinearity") != NULL, "%s: no nonlinearity", case_);
    if (strcmp(type, "rnn") == 0) {
        json_t *nl = json_object_get(c, "nonlinearity");
        ck_assert_str_eq(json_string_value(json_object_get(m, "nonlinearity")),
                         nl ? json_string_value(nl) : "tanh");
    }
    json_t *b = json_object_get(c, "bias"), *bd = json_object_get(c, "bidirectional");
    ck_assert(json_is_boolean(json_object_get(m, "bias")));
    ck_assert(json_is_boolean(json_object_get(m, "bidirectional")));
    ck_assert_int_eq(json_is_true(json_object_get(m, "bias")), b ? json_is_true(b) : 1);
    ck_assert_int_eq(json_is_true(json_object_get(m, "bidirectional")), bd ? json_is_true(bd) : 0);

    /* parameters: the number of scalars in PyTorch's state_dict. */
    long long G = strcmp(type, "lstm") == 0 ? 4 : strcmp(type, "gru") == 0 ? 3 : 1;
    long long I = json_integer_value(json_object_get(c, "input_size"));
    long long H = json_integer_value(json_object_get(c, "hidden_size"));
    json_t *jl = json_object_get(c, "num_layers");
    long long L = jl ? json_integer_value(jl) : 1;
    long long D = json_is_true(bd) ? 2 : 1, n = 0;
    for (long long l = 0; l < L; l++)
        n += D * (G * H * (l ? D * H : I) + G * H * H + (b && !json_is_true(b) ? 0 : 2 * G * H));
    ck_assert_int_eq(json_integer_value(json_object_get(m, "parameters")), n);
    json_decref(c);
}

START_TEST(test_get_models_lists_every_model_with_its_metadata)
{
    serve_models(NULL, TWO_MODELS);
    resp r;
    fetch("GET", "/v1/models", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    assert_header_contains(&r, "Content-Type", "application/json");
    json_t *root = json_loadb(r.body, r.len, 0, NULL);
    ck_assert_msg(root != NULL, "not JSON: %s", r.body);
    json_t *models = json_object_get(root, "models");
    ck_assert_uint_eq(json_array_size(models), 2);
    for (size_t i = 0; i < 2; i++)
        assert_metadata(json_array_get(models, i), TWO_MODELS[i]);
    json_decref(root);
    resp_free(&r);
}
END_TEST

START_TEST(test_get_model_by_name_returns_its_metadata)
{
    serve_models(NULL, TWO_MODELS);
    for (size_t i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof path, "/v1/models/%s", TWO_MODELS[i]);
        resp r;
        fetch("GET", path, NULL, NULL, &r);
        ck_assert_msg(r.status == 200, "%s: %ld", path, r.status);
        json_t *m = json_loadb(r.body, r.len, 0, NULL);
        ck_assert_msg(m != NULL, "not JSON: %s", r.body);
        assert_metadata(m, TWO_MODELS[i]);
        json_decref(m);
        resp_free(&r);
    }
}
END_TEST

START_TEST(test_healthz_answers_status_ok)
{
    serve_default();
    resp r;
    fetch("GET", "/healthz", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    assert_header_contains(&r, "Content-Type", "application/json");
    json_t *got = json_loadb(r.body, r.len, 0, NULL), *want = json_pack("{s:s}", "status", "ok");
    ck_assert_msg(got && json_equal(got, want), "body: %s", r.body);
    json_decref(got);
    json_decref(want);
    resp_free(&r);
}
END_TEST

START_TEST(test_readyz_answers_200_while_serving)
{
    serve_default();
    resp r;
    fetch("GET", "/readyz", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
}
END_TEST

START_TEST(test_metrics_is_prometheus_text_and_counts_a_forward)
{
    serve_default();
    post_case_and_match("default", "/forward");
    resp r;
    fetch("GET", "/metrics", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    assert_header_contains(&r, "Content-Type", "text/plain");
    ck_assert_msg(strstr(r.body, "# TYPE rnnserve_requests_total counter") != NULL, "%s", r.body);
    resp_free(&r);
    wait_metric(FWD_200, 1);
}
END_TEST

START_TEST(test_head_on_get_routes_sends_headers_only)
{
    serve_default();
    static const char *const paths[] = {"/healthz", "/readyz", "/v1/models", "/v1/models/sine",
                                        "/metrics"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        resp r;
        fetch("HEAD", paths[i], NULL, NULL, &r);
        ck_assert_msg(r.status == 200, "HEAD %s: %ld", paths[i], r.status);
        ck_assert_uint_eq(r.len, 0);
        char v[128];
        ck_assert_msg(header(&r, "Content-Type", v, sizeof v), "HEAD %s: no Content-Type",
                      paths[i]);
        assert_cors_star(&r);
        resp_free(&r);
    }
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Errors */

START_TEST(test_malformed_json_is_400_saying_so)
{
    serve_default();
    resp r;
    fetch("POST", "/forward", "{\"inputs\": [[[0.0]]", NULL, &r);
    assert_error(&r, 400, "JSON");
    assert_cors_star(&r);
    resp_free(&r);
    fetch("POST", "/forward", "hello", NULL, &r);
    assert_error(&r, 400, "JSON");
    resp_free(&r);
}
END_TEST

START_TEST(test_wrong_step_width_is_400_naming_inputs_i_t)
{
    serve_models(NULL, TWO_MODELS); /* gru_2layer_bidir: input_size 3 */
    resp r;
    fetch("POST", "/v1/models/gru_2layer_bidir/forward",
          "{\"inputs\": [[[1,2,3]], [[1,2,3],[4,5,6],[7,8]]]}", NULL, &r);
    assert_error(&r, 400, "inputs[1][2]");
    resp_free(&r);
}
END_TEST

START_TEST(test_unknown_route_is_404)
{
    serve_default();
    static const char *const reqs[][2] = {{"GET", "/nope"},
                                          {"POST", "/v1/forward"},
                                          {"GET", "/v1/models/sine/extra"},
                                          {"POST", "/forward/again"}};
    for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++) {
        resp r;
        fetch(reqs[i][0], reqs[i][1], strcmp(reqs[i][0], "POST") == 0 ? "{}" : NULL, NULL, &r);
        assert_error(&r, 404, reqs[i][1]);
        assert_cors_star(&r);
        resp_free(&r);
    }
}
END_TEST

START_TEST(test_unknown_model_is_404_on_forward_and_on_metadata)
{
    serve_default();
    resp r;
    fetch("POST", "/v1/models/nosuch/forward", "{\"inputs\": [[[0.5]]]}", NULL, &r);
    assert_error(&r, 404, "nosuch");
    resp_free(&r);
    fetch("GET", "/v1/models/nosuch", NULL, NULL, &r);
    assert_error(&r, 404, "nosuch");
    resp_free(&r);
    /* The known model answers on the same routes. */
    post_case_and_match("default", "/v1/models/sine/forward");
}
END_TEST

START_TEST(test_wrong_method_is_405_with_an_allow_header)
{
    serve_default();
    static const char *const reqs[][3] = {{"GET", "/forward", "POST"},
                                          {"POST", "/healthz", "GET"},
                                          {"DELETE", "/v1/models", "GET"},
                                          {"PUT", "/v1/models/sine/forward", "POST"},
                                          {"POST", "/metrics", "GET"}};
    for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++) {
        resp r;
        fetch(reqs[i][0], reqs[i][1], strcmp(reqs[i][0], "GET") == 0 ? NULL : "{}", NULL, &r);
        assert_error(&r, 405, reqs[i][0]);
        assert_header_contains(&r, "Allow", reqs[i][2]);
        assert_cors_star(&r);
        resp_free(&r);
    }
}
END_TEST

/* A valid default-model request padded with spaces to exactly LEN bytes. */
static char *padded_default_request(size_t len)
{
    const char *base = DEFAULT_BODY;
    ck_assert_uint_ge(len, strlen(base));
    char *b = malloc(len + 1);
    ck_assert_ptr_nonnull(b);
    memset(b, ' ', len);
    memcpy(b, base, strlen(base));
    b[len] = '\0';
    return b;
}

START_TEST(test_body_over_max_body_bytes_is_413_before_it_is_read)
{
    serve1("{\"max_body_bytes\": 1024}", "default");
    /* At the limit: fine. */
    char *ok = padded_default_request(1024);
    resp r;
    fetch("POST", "/forward", ok, NULL, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    free(ok);
    /* One byte over. */
    char *big = padded_default_request(1025);
    fetch("POST", "/forward", big, NULL, &r);
    assert_error(&r, 413, "max_body_bytes");
    assert_cors_star(&r);
    resp_free(&r);
    free(big);
    /* The Content-Length alone earns the 413: no body is ever sent. */
    int fd = raw_connect();
    char head[512];
    post_head(head, sizeof head, "/forward", 100000000);
    raw_sends(fd, head);
    ck_assert_msg(raw_response(fd, (int)(3000 * slack()), &r) == 0,
                  "no early 413 before the body was sent");
    assert_error(&r, 413, "max_body_bytes");
    resp_free(&r);
    close(fd);
}
END_TEST

START_TEST(test_chunked_body_over_max_body_bytes_is_413)
{
    serve1("{\"max_body_bytes\": 1024}", "default");
    CURL *h = curl_easy_init();
    resp r;
    /* Chunked and small: accepted. */
    const char *small = DEFAULT_BODY;
    ck_assert_int_eq(http_full(h, "POST", "/forward", small, strlen(small), 1, NULL, &r), CURLE_OK);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    /* Chunked, 8 KB, no Content-Length: the server counts and answers 413 at the end. */
    char *big = padded_default_request(8192);
    ck_assert_int_eq(http_full(h, "POST", "/forward", big, 8192, 1, NULL, &r), CURLE_OK);
    assert_error(&r, 413, "max_body_bytes");
    resp_free(&r);
    free(big);
    curl_easy_cleanup(h);
}
END_TEST

START_TEST(test_batch_over_max_batch_is_413)
{
    serve1("{\"max_batch\": 2}", "default");
    resp r;
    fetch("POST", "/forward", "{\"inputs\": [[[0.1]], [[0.2]]]}", NULL, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    fetch("POST", "/forward", "{\"inputs\": [[[0.1]], [[0.2]], [[0.3]]]}", NULL, &r);
    assert_error(&r, 413, "max_batch");
    resp_free(&r);
}
END_TEST

START_TEST(test_steps_over_max_steps_is_413)
{
    serve1("{\"max_steps\": 3}", "default");
    resp r;
    fetch("POST", "/forward", "{\"inputs\": [[[0.1], [0.2], [0.3]]]}", NULL, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    fetch("POST", "/forward", "{\"inputs\": [[[0.1]], [[0.1], [0.2], [0.3], [0.4]]]}", NULL, &r);
    assert_error(&r, 413, "max_steps");
    resp_free(&r);
}
END_TEST

START_TEST(test_non_finite_output_is_422_naming_outputs)
{
    /* relu(1e30 * 1e30) overflows float32 to inf. */
    serve1(NULL, "{\"name\": \"blowup\", \"type\": \"rnn\", \"input_size\": 1, \"hidden_size\": "
                 "1, \"nonlinearity\": \"relu\", \"bias\": false, \"weights\": "
                 "{\"weight_ih_l0\": [[1e30]], \"weight_hh_l0\": [[1e30]]}}");
    resp r;
    fetch("POST", "/forward", "{\"inputs\": [[[1e-30]]]}", NULL, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    fetch("POST", "/forward", "{\"inputs\": [[[1e-30]], [[1e30]]]}", NULL, &r);
    assert_error(&r, 422, "outputs[1]");
    assert_cors_star(&r);
    resp_free(&r);
}
END_TEST

/* A forecast whose values overflow (relu(1e30 * 1e30) at its second step) is the model's
 * fault, not the server's: 422 naming the step, plain and as a stream's error event. */
START_TEST(test_generation_whose_values_overflow_is_422)
{
    serve1(NULL, "{\"name\": \"blowup\", \"type\": \"rnn\", \"input_size\": 1, \"hidden_size\": "
                 "1, \"nonlinearity\": \"relu\", \"bias\": false, \"weights\": "
                 "{\"weight_ih_l0\": [[1e30]], \"weight_hh_l0\": [[1e30]]}}");
    resp r;
    fetch("POST", "/v1/models/blowup/generate", "{\"inputs\": [[[1e-30]]], \"steps\": 1}", NULL,
          &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    fetch("POST", "/v1/models/blowup/generate", "{\"inputs\": [[[1]]], \"steps\": 3}", NULL, &r);
    assert_error(&r, 422, "not finite");
    resp_free(&r);
    fetch("POST", "/v1/models/blowup/generate",
          "{\"inputs\": [[[1]]], \"steps\": 3, \"stream\": true}", NULL, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    ck_assert_msg(strstr(r.body, "event: error\ndata: {\"error\":{\"status\":422") != NULL &&
                      strstr(r.body, "not finite") != NULL,
                  "no 422 error event: %s", r.body);
    resp_free(&r);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * CORS */

START_TEST(test_cors_star_is_on_every_response_including_errors)
{
    serve_default();
    const char *with_origin[] = {"Origin: http://anywhere.example", NULL};
    static const char *const reqs[][3] = {
        {"GET", "/healthz", NULL},    {"GET", "/v1/models", NULL},
        {"GET", "/metrics", NULL},    {"POST", "/forward", "{\"inputs\": [[[0.5]]]}"},
        {"POST", "/forward", "{bad"}, {"GET", "/nope", NULL},
        {"GET", "/forward", NULL}};
    for (int o = 0; o < 2; o++)
        for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++) {
            resp r;
            fetch(reqs[i][0], reqs[i][1], reqs[i][2], o ? with_origin : NULL, &r);
            assert_cors_star(&r);
            resp_free(&r);
        }
}
END_TEST

static const char *const ALLOW_A = "{\"cors_origins\": [\"http://a.example\"]}";

START_TEST(test_cors_allowlist_echoes_an_allowed_origin_with_vary)
{
    serve1(ALLOW_A, "default");
    const char *origin[] = {"Origin: http://a.example", NULL};
    static const char *const paths[] = {"/healthz", "/nope"};
    for (size_t i = 0; i < 2; i++) {
        resp r;
        fetch("GET", paths[i], NULL, origin, &r);
        char v[128];
        ck_assert_msg(header(&r, "Access-Control-Allow-Origin", v, sizeof v) &&
                          strcmp(v, "http://a.example") == 0,
                      "%s: headers:\n%s", paths[i], r.headers);
        assert_header_contains(&r, "Vary", "Origin");
        resp_free(&r);
    }
}
END_TEST

START_TEST(test_cors_allowlist_gives_other_origins_no_cors_header)
{
    serve1(ALLOW_A, "default");
    const char *evil[] = {"Origin: http://evil.example", NULL};
    resp r;
    fetch("GET", "/healthz", NULL, evil, &r);
    ck_assert_int_eq(r.status, 200);
    assert_no_header(&r, "Access-Control-Allow-Origin");
    resp_free(&r);
    fetch("POST", "/forward", "{\"inputs\": [[[0.5]]]}", evil, &r);
    ck_assert_int_eq(r.status, 200);
    assert_no_header(&r, "Access-Control-Allow-Origin");
    resp_free(&r);
}
END_TEST

START_TEST(test_options_preflight_is_204_on_any_path)
{
    serve_default();
    const char *pre[] = {"Origin: http://a.example", "Access-Control-Request-Method: POST",
                         "Access-Control-Request-Headers: content-type", NULL};
    static const char *const paths[] = {"/forward", "/v1/models/sine/forward", "/v1/models",
                                        "/healthz", "/no/such/path"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        resp r;
        fetch("OPTIONS", paths[i], NULL, pre, &r);
        ck_assert_msg(r.status == 204, "OPTIONS %s: %ld", paths[i], r.status);
        ck_assert_uint_eq(r.len, 0);
        assert_cors_star(&r);
        assert_header_contains(&r, "Access-Control-Allow-Methods", "POST");
        assert_header_contains(&r, "Access-Control-Allow-Methods", "GET");
        assert_header_contains(&r, "Access-Control-Allow-Headers", "Content-Type");
        resp_free(&r);
    }
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Transport: split bodies, content types, keep-alive, stalls, vanishing clients */

START_TEST(test_body_sent_one_byte_at_a_time_is_answered)
{
    serve_default();
    job j;
    job_load(&j, "default", "/forward", 0);
    int fd = raw_connect();
    char head[512];
    post_head(head, sizeof head, "/forward", j.len);
    size_t hl = strlen(head);
    raw_send(fd, head, hl / 2); /* the head in two pieces too */
    tu_sleep_ms(5);
    raw_send(fd, head + hl / 2, hl - hl / 2);
    for (size_t i = 0; i < j.len; i++) {
        raw_send(fd, j.body + i, 1);
        if (i % 4 == 0)
            tu_sleep_ms(1);
    }
    resp r;
    ck_assert_int_eq(raw_response(fd, 10000, &r), 0);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    char why[512];
    ck_assert_msg(matches(r.body, r.len, j.exp, why, sizeof why), "%s", why);
    resp_free(&r);
    close(fd);
    job_free(&j);
}
END_TEST

START_TEST(test_content_type_is_not_required)
{
    serve_default();
    job j;
    job_load(&j, "default", "/forward", 0);
    const char *none[] = {"Content-Type:", NULL}; /* curl: drop the header */
    const char *text[] = {"Content-Type: text/plain", NULL};
    const char *const *variants[] = {NULL /* curl -d: x-www-form-urlencoded */, none, text};
    for (size_t v = 0; v < 3; v++) {
        resp r;
        fetch("POST", "/forward", j.body, variants[v], &r);
        ck_assert_msg(r.status == 200, "variant %zu: %ld %s", v, r.status, r.body);
        char why[512];
        ck_assert_msg(matches(r.body, r.len, j.exp, why, sizeof why), "variant %zu: %s", v, why);
        resp_free(&r);
    }
    job_free(&j);
}
END_TEST

START_TEST(test_keepalive_serves_many_requests_on_one_connection)
{
    serve_default();
    job j;
    job_load(&j, "default", "/forward", 0);
    CURL *h = curl_easy_init();
    ck_assert_ptr_nonnull(h);
    long port0 = 0;
    /* Answers of every kind, errors included, leave the connection open. */
    static const char *const reqs[][2] = {
        {"GET", "/healthz"},  {"POST", "/forward"}, {"GET", "/v1/models"}, {"GET", "/nope"},
        {"POST", "/forward"}, {"GET", "/forward"},  {"POST", "/forward"},  {"GET", "/metrics"}};
    for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++) {
        resp r;
        int post = strcmp(reqs[i][0], "POST") == 0;
        const char *body = post ? (i == 4 ? "{\"inputs\": 1}" : j.body) : NULL;
        ck_assert_int_eq(
            http_full(h, reqs[i][0], reqs[i][1], body, body ? strlen(body) : 0, 0, NULL, &r),
            CURLE_OK);
        ck_assert_msg(r.status >= 200 && r.status < 500, "%s %s: %ld", reqs[i][0], reqs[i][1],
                      r.status);
        if (i == 0) {
            ck_assert_int_eq(r.connects, 1);
            port0 = r.local_port;
        } else {
            ck_assert_msg(r.connects == 0, "request %zu (%s %s) opened a new connection", i,
                          reqs[i][0], reqs[i][1]);
            ck_assert_int_eq(r.local_port, port0);
        }
        resp_free(&r);
    }
    curl_easy_cleanup(h);
    job_free(&j);
}
END_TEST

/* Two clients that stop halfway: one in the middle of its headers, one in the middle of its
 * body. Returns their sockets. */
static void open_stalled(int fds[2])
{
    fds[0] = raw_connect();
    raw_sends(fds[0], "POST /forward HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le");
    fds[1] = raw_connect();
    char head[512];
    post_head(head, sizeof head, "/forward", strlen(DEFAULT_BODY));
    raw_sends(fds[1], head);
    raw_send(fds[1], DEFAULT_BODY, STALL_AT);
}

START_TEST(test_stalled_half_requests_do_not_delay_other_clients)
{
    serve_default();
    int stalled[2];
    open_stalled(stalled);
    job j;
    job_load(&j, "default", "/forward", 0);
    double t0 = tu_now_s();
    for (int i = 0; i < 20; i++) {
        resp r;
        if (i % 2)
            fetch("GET", "/healthz", NULL, NULL, &r);
        else
            fetch("POST", "/forward", j.body, NULL, &r);
        ck_assert_int_eq(r.status, 200);
        resp_free(&r);
    }
    double took = tu_now_s() - t0;
    ck_assert_msg(took < 2.0 * slack(), "20 requests took %.3f s beside stalled clients", took);
    /* The stalled ones are still open (timeout_s is 30), and can still finish. */
    raw_sends(stalled[1], &DEFAULT_BODY[STALL_AT]);
    resp r;
    ck_assert_int_eq(raw_response(stalled[1], 5000, &r), 0);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    close(stalled[0]);
    close(stalled[1]);
    job_free(&j);
}
END_TEST

START_TEST(test_stalled_connections_are_closed_after_timeout_s)
{
    serve1("{\"timeout_s\": 1}", "default");
    int stalled[2];
    open_stalled(stalled);
    int idle = raw_connect(); /* connected, never says a word */
    double t0 = tu_now_s();
    const int fds[] = {stalled[0], stalled[1], idle};
    for (int i = 0; i < 3; i++) {
        double t = raw_wait_closed(fds[i], (int)(4000 * slack()));
        ck_assert_msg(t >= 0, "connection %d still open after %.0f ms", i, 4000 * slack());
        t = tu_now_s() - t0;
        ck_assert_msg(t >= 0.5 && t <= 3.5 * slack(), "connection %d closed after %.2f s", i, t);
        close(fds[i]);
    }
    /* The half-uploaded request was counted in flight; its timeout ended it. */
    ck_assert_int_eq(srv_wait_idle(g.s, 2000), 0);
    resp r;
    fetch("GET", "/healthz", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
}
END_TEST

/* libmicrohttpd 0.9.75 (edge-triggered epoll, no EPOLLRDHUP) can miss a FIN that arrives
 * together with the last bytes it reads; such a connection then ends only at timeout_s. So the
 * abandoned requests must end by timeout_s, and nobody else may wait for them. */
START_TEST(test_client_gone_mid_body_does_not_hurt_others)
{
    serve1("{\"timeout_s\": 2}", "default");
    char head[512];
    post_head(head, sizeof head, "/forward", 1000);
    for (int how = 0; how < 3; how++) {
        int fd = raw_connect();
        if (how == 2) { /* head, some body and the FIN in one go */
            char all[1024];
            snprintf(all, sizeof all, "%s%.*s", head, STALL_AT, DEFAULT_BODY);
            raw_sends(fd, all);
        } else {
            raw_sends(fd, head);
            raw_send(fd, DEFAULT_BODY, STALL_AT);
            wait_in_flight(1, 5000);
            if (how == 1) { /* abortive close: RST instead of FIN */
                struct linger lg = {1, 0};
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            }
        }
        close(fd);
        post_case_and_match("default", "/forward");
    }
    ck_assert_msg(srv_wait_idle(g.s, (int)(5000 * slack())) == 0,
                  "an abandoned request outlived timeout_s");
    post_case_and_match("default", "/forward");
}
END_TEST

START_TEST(test_client_gone_while_computing_does_not_hurt_others)
{
    char *big = big_model_spec();
    const char *specs[] = {"default", big, NULL};
    serve_models("{\"threads\": 1}", specs);
    char *body = big_request(big_steps_for(0.1));
    size_t len = strlen(body);
    for (int rst = 0; rst < 2; rst++) {
        int before = atomic_load(&n_suspends);
        int fd = raw_connect();
        char head[512];
        post_head(head, sizeof head, "/v1/models/big/forward", len);
        raw_sends(fd, head);
        raw_send(fd, body, len);
        /* Suspended: it is in the compute pool now. */
        double end = tu_now_s() + 5;
        while (atomic_load(&n_suspends) == before && tu_now_s() < end)
            tu_sleep_ms(1);
        ck_assert_int_eq(atomic_load(&n_suspends), before + 1);
        if (rst) {
            struct linger lg = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(fd);
        post_case_and_match("default", "/forward");
        ck_assert_msg(srv_wait_idle(g.s, (int)(10000 * slack())) == 0,
                      "the abandoned request is still in flight");
    }
    free(body);
    free(big);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Concurrency */

typedef struct {
    const job *jobs;
    size_t n_jobs;
    int tid, count;
    int failures;
    char first[1024];
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    CURL *h = curl_easy_init();
    for (int i = 0; h && i < w->count; i++) {
        const job *j = &w->jobs[(size_t)(w->tid * 7 + i) % w->n_jobs];
        resp r;
        char why[512] = "";
        CURLcode rc = http_full(h, "POST", j->url, j->body, j->len, 0, NULL, &r);
        int ok =
            rc == CURLE_OK && r.status == 200 && matches(r.body, r.len, j->exp, why, sizeof why);
        if (!ok && w->failures++ == 0)
            snprintf(w->first, sizeof w->first, "thread %d request %d %s: %.100s status %ld %.400s",
                     w->tid, i, j->url, curl_easy_strerror(rc), r.status, why);
        resp_free(&r);
    }
    if (!h) {
        w->failures++;
        snprintf(w->first, sizeof w->first, "curl_easy_init failed");
    }
    curl_easy_cleanup(h);
    return NULL;
}

static const char *const MIX[] = {
    "default",      "lstm_h0c0",      "gru_2layer_bidir",  "long_1000",
    "ragged_mixed", "rnn_relu_bidir", "lstm_2layer_bidir", NULL};

START_TEST(test_eight_threads_of_mixed_requests_all_match_pytorch)
{
    serve_models(NULL, MIX);
    /* Every case twice: as it is and padded with spaces past the old body-size hand-off
     * threshold, same answer expected. Which path a request takes is decided by what it will
     * cost and produce (compute_runs_inline), so padding changes nothing: the cheap cases run
     * inline either way and long_1000 (a 140 KB answer) goes to the scheduler. */
    job jobs[16];
    size_t n = 0;
    for (size_t i = 0; MIX[i]; i++) {
        char url[128];
        if (i == 0)
            snprintf(url, sizeof url, "/forward");
        else
            snprintf(url, sizeof url, "/v1/models/%s/forward", MIX[i]);
        if (strcmp(MIX[i], "long_1000") != 0) {
            job_load(&jobs[n], MIX[i], url, 0);
            ck_assert_msg(!jobs[n].pooled, "%s is not cheap", MIX[i]);
            n++;
        }
        job_load(&jobs[n++], MIX[i], url, pool_size_for(MIX[i]));
    }
    enum { THREADS = 8, EACH = 50 };
    worker w[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        w[t] = (worker){jobs, n, t, EACH, 0, ""};
        ck_assert_int_eq(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
    }
    int failures = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        if (w[t].failures)
            fprintf(stderr, "%s (%d failures)\n", w[t].first, w[t].failures);
        failures += w[t].failures;
    }
    ck_assert_msg(failures == 0, "%d of %d answers wrong", failures, THREADS * EACH);

    /* Which path each request took: the ones the rule sends to the scheduler were suspended,
     * the rest not. */
    int pooled = 0;
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < EACH; i++)
            pooled += jobs[(size_t)(t * 7 + i) % n].pooled;
    ck_assert_int_gt(pooled, 0);
    ck_assert_int_lt(pooled, THREADS * EACH);
    ck_assert_int_eq(atomic_load(&n_suspends), pooled);
    wait_metric(FWD_200, THREADS * EACH);
    for (size_t i = 0; i < n; i++)
        job_free(&jobs[i]);
}
END_TEST

typedef struct {
    const char *url;
    const char *body;
    resp r;
    CURLcode rc;
} call;

static void *call_main(void *arg)
{
    call *c = arg;
    CURL *h = curl_easy_init();
    c->rc = h ? http_full(h, "POST", c->url, c->body, strlen(c->body), 0, NULL, &c->r)
              : CURLE_FAILED_INIT;
    curl_easy_cleanup(h);
    return NULL;
}

/* Starts N big-model requests in threads; returns once all N are in flight. */
static void start_big_calls(call *calls, pthread_t *th, int n, const char *body)
{
    for (int i = 0; i < n; i++) {
        calls[i] = (call){"/v1/models/big/forward", body, {0}, CURLE_OK};
        ck_assert_int_eq(pthread_create(&th[i], NULL, call_main, &calls[i]), 0);
    }
    wait_in_flight(n, (int)(10000 * slack()));
}

static void join_big_calls(call *calls, pthread_t *th, int n)
{
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(calls[i].rc == CURLE_OK, "big call %d: %s", i,
                      curl_easy_strerror(calls[i].rc));
        ck_assert_msg(calls[i].r.status == 200, "big call %d: %ld %s", i, calls[i].r.status,
                      calls[i].r.body);
    }
}

static void free_big_calls(call *calls, int n)
{
    for (int i = 0; i < n; i++)
        resp_free(&calls[i].r);
}

START_TEST(test_slow_forwards_do_not_delay_healthz_or_metrics)
{
    char *big = big_model_spec();
    const char *specs[] = {"default", big, NULL};
    serve_models("{\"threads\": 1}", specs);
    char *body = big_request(big_steps_for(0.3));
    enum { N = 4 };
    call calls[N];
    pthread_t th[N];
    start_big_calls(calls, th, N, body);
    /* ~1.2 s of queued compute on one compute thread; the probes must not wait for it. */
    double worst = 0;
    for (int i = 0; i < 5; i++) {
        static const char *const probes[] = {"/healthz", "/metrics", "/readyz"};
        for (size_t p = 0; p < 3; p++) {
            double t0 = tu_now_s();
            resp r;
            fetch("GET", probes[p], NULL, NULL, &r);
            double took = tu_now_s() - t0;
            ck_assert_int_eq(r.status, 200);
            /* The gauge counts this /metrics request and the forwards still running; on a slow
             * client (valgrind) some of the N may already have finished, so ask for one. */
            if (p == 1 && i == 0)
                ck_assert_msg(metric(r.body, "rnnserve_in_flight_requests") >= 2,
                              "in-flight gauge %g with forwards running",
                              metric(r.body, "rnnserve_in_flight_requests"));
            resp_free(&r);
            if (took > worst)
                worst = took;
        }
        tu_sleep_ms(20);
    }
    ck_assert_msg(in_flight() >= 1, "the forwards ended before the probes did: not a real test");
    ck_assert_msg(worst < 0.1 * slack(), "a probe took %.1f ms beside slow forwards", worst * 1e3);
    join_big_calls(calls, th, N);
    free_big_calls(calls, N);
    ck_assert_int_ge(atomic_load(&n_suspends), N + 2);
    free(body);
    free(big);
}
END_TEST

START_TEST(test_metrics_counters_and_in_flight_gauge_move)
{
    serve_default();
    /* The /metrics request itself is the only one in flight. */
    wait_metric("rnnserve_in_flight_requests", 1);
    ck_assert(metric_now(FWD_200) <= 0);
    double seqs0 = metric_now("rnnserve_sequences_total");
    double steps0 = metric_now("rnnserve_steps_total");
    for (int i = 0; i < 3; i++)
        post_case_and_match("default", "/forward");
    resp r;
    fetch("POST", "/forward", "{\"inputs\": []}", NULL, &r);
    ck_assert_int_eq(r.status, 400);
    resp_free(&r);
    fetch("GET", "/nope", NULL, NULL, &r);
    resp_free(&r);
    wait_metric(FWD_200, 3);
    wait_metric("rnnserve_requests_total{route=\"forward\",code=\"400\"}", 1);
    wait_metric("rnnserve_requests_total{route=\"unmatched\",code=\"404\"}", 1);
    wait_metric("rnnserve_sequences_total", seqs0 + 3);
    wait_metric("rnnserve_steps_total", steps0 + 9);
    wait_metric("rnnserve_in_flight_requests", 1);
    ck_assert_int_eq(srv_wait_idle(g.s, 2000), 0);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Drain */

/* Whether a new connection is turned away: refused, reset, or closed without an answer. */
static int new_connection_refused(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)g.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return 1;
    }
    const char *req = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    int refused = send(fd, req, strlen(req), MSG_NOSIGNAL) < 0;
    char buf[256];
    if (!refused)
        refused = raw_recv(fd, buf, sizeof buf, 2000) == 0;
    close(fd);
    return refused;
}

START_TEST(test_drain_still_answers_requests_in_flight)
{
    char *big = big_model_spec();
    const char *specs[] = {"default", big, NULL};
    serve_models("{\"threads\": 1}", specs);
    char *body = big_request(64);
    enum { N = 3 };
    call calls[N];
    pthread_t th[N];
    /* all N are queued, none answered yet, when the drain begins */
    srv_pause_compute(g.s, 1);
    start_big_calls(calls, th, N, body);
    srv_drain(g.s);
    ck_assert_int_eq(in_flight(), N);
    srv_pause_compute(g.s, 0);
    join_big_calls(calls, th, N);
    for (int i = 0; i < N; i++)
        assert_header_contains(&calls[i].r, "Connection", "close");
    free_big_calls(calls, N);
    ck_assert_int_eq(srv_wait_idle(g.s, (int)(10000 * slack())), 0);
    free(body);
    free(big);
}
END_TEST

START_TEST(test_wait_idle_counts_in_flight_until_they_finish)
{
    char *big = big_model_spec();
    const char *specs[] = {"default", big, NULL};
    serve_models("{\"threads\": 1}", specs);
    ck_assert_int_eq(srv_wait_idle(g.s, 100), 0);
    char *body = big_request(64);
    enum { N = 2 };
    call calls[N];
    pthread_t th[N];
    srv_pause_compute(g.s, 1);
    start_big_calls(calls, th, N, body);
    srv_drain(g.s);
    ck_assert_int_eq(srv_wait_idle(g.s, 1), N); /* queued, and nothing computes them yet */
    srv_pause_compute(g.s, 0);
    double t0 = tu_now_s();
    ck_assert_int_eq(srv_wait_idle(g.s, (int)(10000 * slack())), 0);
    ck_assert_msg(tu_now_s() - t0 < 5 * slack(), "wait_idle took %.2f s", tu_now_s() - t0);
    join_big_calls(calls, th, N);
    free_big_calls(calls, N);
    free(body);
    free(big);
}
END_TEST

START_TEST(test_readyz_is_503_on_a_keepalive_connection_after_drain)
{
    serve_default();
    CURL *h = curl_easy_init();
    resp r;
    ck_assert_int_eq(http_full(h, "GET", "/readyz", NULL, 0, 0, NULL, &r), CURLE_OK);
    ck_assert_int_eq(r.status, 200);
    long port0 = r.local_port;
    resp_free(&r);
    srv_drain(g.s);
    ck_assert_int_eq(http_full(h, "GET", "/readyz", NULL, 0, 0, NULL, &r), CURLE_OK);
    ck_assert_msg(r.connects == 0 && r.local_port == port0, "not the same connection");
    assert_error(&r, 503, "drain");
    assert_header_contains(&r, "Connection", "close");
    resp_free(&r);
    curl_easy_cleanup(h);
}
END_TEST

START_TEST(test_drain_refuses_new_connections)
{
    serve_default();
    ck_assert(!new_connection_refused());
    srv_drain(g.s);
    double t0 = tu_now_s();
    ck_assert_msg(new_connection_refused(), "a new connection was served after drain");
    ck_assert_msg(tu_now_s() - t0 < 1.0 * slack(), "refusal took %.2f s", tu_now_s() - t0);
    resp r;
    CURLcode rc = http("GET", "/healthz", NULL, NULL, &r);
    ck_assert_msg(rc != CURLE_OK, "curl got %ld after drain", r.status);
    resp_free(&r);
}
END_TEST

START_TEST(test_drain_still_answers_a_request_mid_upload)
{
    serve_default();
    job j;
    job_load(&j, "default", "/forward", 0);
    int fd = raw_connect();
    char head[512];
    post_head(head, sizeof head, "/forward", j.len);
    raw_sends(fd, head);
    raw_send(fd, j.body, 10);
    wait_in_flight(1, 5000);
    srv_drain(g.s);
    raw_send(fd, j.body + 10, j.len - 10);
    resp r;
    ck_assert_int_eq(raw_response(fd, 5000, &r), 0);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    char why[512];
    ck_assert_msg(matches(r.body, r.len, j.exp, why, sizeof why), "%s", why);
    assert_header_contains(&r, "Connection", "close");
    resp_free(&r);
    ck_assert_msg(raw_wait_closed(fd, 2000) >= 0, "connection kept open while draining");
    close(fd);
    ck_assert_int_eq(srv_wait_idle(g.s, 2000), 0);
    job_free(&j);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Runner */

static TCase *tcase(Suite *s, const char *name, double timeout)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, timeout);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *server_suite(void)
{
    Suite *s = suite_create("server");
    TCase *tc = tcase(s, "endpoints", 20);
    tcase_add_test(tc, test_post_forward_answers_with_the_default_model_like_pytorch);
    tcase_add_test(tc, test_post_named_model_forward_answers_like_pytorch);
    tcase_add_test(tc, test_get_models_lists_every_model_with_its_metadata);
    tcase_add_test(tc, test_get_model_by_name_returns_its_metadata);
    tcase_add_test(tc, test_healthz_answers_status_ok);
    tcase_add_test(tc, test_readyz_answers_200_while_serving);
    tcase_add_test(tc, test_metrics_is_prometheus_text_and_counts_a_forward);
    tcase_add_test(tc, test_head_on_get_routes_sends_headers_only);

    tc = tcase(s, "errors", 20);
    tcase_add_test(tc, test_malformed_json_is_400_saying_so);
    tcase_add_test(tc, test_wrong_step_width_is_400_naming_inputs_i_t);
    tcase_add_test(tc, test_unknown_route_is_404);
    tcase_add_test(tc, test_unknown_model_is_404_on_forward_and_on_metadata);
    tcase_add_test(tc, test_wrong_method_is_405_with_an_allow_header);
    tcase_add_test(tc, test_body_over_max_body_bytes_is_413_before_it_is_read);
    tcase_add_test(tc, test_chunked_body_over_max_body_bytes_is_413);
    tcase_add_test(tc, test_batch_over_max_batch_is_413);
    tcase_add_test(tc, test_steps_over_max_steps_is_413);
    tcase_add_test(tc, test_non_finite_output_is_422_naming_outputs);
    tcase_add_test(tc, test_generation_whose_values_overflow_is_422);

    tc = tcase(s, "cors", 20);
    tcase_add_test(tc, test_cors_star_is_on_every_response_including_errors);
    tcase_add_test(tc, test_cors_allowlist_echoes_an_allowed_origin_with_vary);
    tcase_add_test(tc, test_cors_allowlist_gives_other_origins_no_cors_header);
    tcase_add_test(tc, test_options_preflight_is_204_on_any_path);

    tc = tcase(s, "transport", 30);
    tcase_add_test(tc, test_body_sent_one_byte_at_a_time_is_answered);
    tcase_add_test(tc, test_content_type_is_not_required);
    tcase_add_test(tc, test_keepalive_serves_many_requests_on_one_connection);
    tcase_add_test(tc, test_stalled_half_requests_do_not_delay_other_clients);
    tcase_add_test(tc, test_stalled_connections_are_closed_after_timeout_s);
    tcase_add_test(tc, test_client_gone_mid_body_does_not_hurt_others);
    tcase_add_test(tc, test_client_gone_while_computing_does_not_hurt_others);

    tc = tcase(s, "concurrency", 60);
    tcase_add_test(tc, test_eight_threads_of_mixed_requests_all_match_pytorch);
    tcase_add_test(tc, test_metrics_counters_and_in_flight_gauge_move);

    /* These need requests to stay in flight while a client looks: under valgrind the client
     * is ~50x slower than the (unvalgrinded-speed) forward passes it waits on, so `make
     * valgrind` leaves them out (CK_EXCLUDE_TAGS=timing); they run plain and under ASan. */
    tc = tcase(s, "timing", 60);
    tcase_set_tags(tc, "timing");
    tcase_add_test(tc, test_slow_forwards_do_not_delay_healthz_or_metrics);
    tcase_add_test(tc, test_drain_still_answers_a_request_mid_upload);

    /* Requests held in flight by a paused compute thread: no timing, valgrind too. */
    tc = tcase(s, "drain", 30);
    tcase_add_test(tc, test_wait_idle_counts_in_flight_until_they_finish);
    tcase_add_test(tc, test_drain_still_answers_requests_in_flight);
    tcase_add_test(tc, test_readyz_is_503_on_a_keepalive_connection_after_drain);
    tcase_add_test(tc, test_drain_refuses_new_connections);
    return s;
}

int main(void)
{
    void *sym = dlsym(RTLD_NEXT, "MHD_suspend_connection");
    if (!sym) {
        fprintf(stderr, "test_server: cannot find libmicrohttpd's MHD_suspend_connection\n");
        return EXIT_FAILURE;
    }
    memcpy(&real_suspend, &sym, sizeof sym);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    SRunner *sr = srunner_create(server_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
