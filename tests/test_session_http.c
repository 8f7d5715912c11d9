/* test_session_http.c - sessions over HTTP end to end: the walk (create, steps, state, delete),
 * every error path (404, 409, 410 for each cause, eviction order, TTL), hot reload, the v2
 * sequence extension, concurrency, and the target: a 1,000-step sequence fed through a session
 * in chunks of random sizes equals PyTorch on the whole sequence, and /forward on it.
 *
 * Each test starts its own server in-process on 127.0.0.1 (port 0), from a config file written
 * to a temporary folder (so that reloads can rewrite it), with the fixtures' weights by absolute
 * path. */
#include <check.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rnnserve/config.h"
#include "rnnserve/server.h"
#include "httpc.h"
#include "testutil.h"

#define TOL 1e-5
#define TOKEN "0123456789abcdef-sessions"

/* ---------------------------------------------------------------------------------------------
 * The server under test */

typedef struct {
    char dir[256], path[300];
    cfg_config *cfg;
    srv *s;
    int port;
} fixture;

/* Model entry NAME with the fixture case's shape and weights (absolute path); malloc'ed text. */
static char *model_entry(const char *name, const char *fixture_case)
{
    char cwd[2048], path[4096];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    snprintf(path, sizeof path, "%s/tests/fixtures/cases/%s/config.json", cwd, fixture_case);
    json_t *cfg = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(cfg);
    json_t *m = json_deep_copy(json_array_get(json_object_get(cfg, "models"), 0));
    snprintf(path, sizeof path, "%s/tests/fixtures/cases/%s/model.safetensors", cwd, fixture_case);
    json_object_set_new(m, "weights", json_string(path));
    json_object_set_new(m, "name", json_string(name));
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    json_decref(cfg);
    return text;
}

static void write_config(const fixture *f, const char *server, const char *models)
{
    FILE *fp = fopen(f->path, "w");
    ck_assert_ptr_nonnull(fp);
    fprintf(fp, "{\"server\": {\"admin_token\": \"%s\"%s%s}, \"models\": %s}\n", TOKEN,
            server ? ", " : "", server ? server : "", models);
    fclose(fp);
}

/* Starts a server of MODELS (a JSON array's text) with SERVER's extra members (NULL: none). */
static void start(fixture *f, const char *server, const char *models)
{
    char err[1024];
    snprintf(f->dir, sizeof f->dir, "/tmp/rnnserve-sessions-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/config.json", f->dir);
    write_config(f, server, models);
    ck_assert_msg(cfg_load_file(f->path, &f->cfg, err, sizeof err) == 0, "%s", err);
    free(f->cfg->server.host);
    f->cfg->server.host = strdup("127.0.0.1");
    f->cfg->server.port = 0;
    ck_assert_msg(srv_start(f->cfg, &f->s, err, sizeof err) == 0, "%s", err);
    f->port = srv_port(f->s);
}

/* A server of one model M from fixture case CASE. */
static void start_one(fixture *f, const char *server, const char *name, const char *fixture_case)
{
    char *m = model_entry(name, fixture_case), models[16384];
    snprintf(models, sizeof models, "[%s]", m);
    free(m);
    start(f, server, models);
}

static void stop(fixture *f)
{
    srv_drain(f->s);
    srv_wait_idle(f->s, 10000);
    srv_stop(f->s);
    cfg_free(f->cfg);
    unlink(f->path);
    rmdir(f->dir);
}

/* ---------------------------------------------------------------------------------------------
 * HTTP and JSON */

/* METHOD PATH with BODY (NULL: none); the status, and the parsed body in *out when OUT is not
 * NULL (json_decref it; NULL when not JSON). */
static long call(int port, const char *method, const char *path, const char *body, json_t **out)
{
    httpc_resp r;
    ck_assert_int_eq(httpc(port, method, path, body, NULL, &r), CURLE_OK);
    if (out)
        *out = json_loads(r.body, 0, NULL);
    long st = r.status;
    httpc_resp_free(&r);
    return st;
}

/* The error message of a v1 ({"error": {"message"}}) or v2 ({"error": "..."}) error body. */
static const char *message(json_t *j)
{
    json_t *e = json_object_get(j, "error");
    return json_is_string(e) ? json_string_value(e)
                             : json_string_value(json_object_get(e, "message"));
}

/* Asserts an error STATUS whose message holds WORD. */
static void expect_error(int port, const char *method, const char *path, const char *body,
                         long status, const char *word)
{
    json_t *j;
    long st = call(port, method, path, body, &j);
    const char *msg = j ? message(j) : NULL;
    ck_assert_msg(st == status && msg && strstr(msg, word),
                  "%s %s: %ld %s (wanted %ld with \"%s\")", method, path, st,
                  msg ? msg : "(no message)", status, word);
    json_decref(j);
}

/* Creates a session of MODEL with BODY (NULL: none): its id into id[40]. */
static void create(int port, const char *model, const char *body, char id[40])
{
    char path[256];
    snprintf(path, sizeof path, "/v1/models/%s/sessions", model);
    httpc_resp r;
    ck_assert_int_eq(httpc(port, "POST", path, body, NULL, &r), CURLE_OK);
    ck_assert_msg(r.status == 201, "create: %ld %s", r.status, r.body);
    json_t *j = json_loads(r.body, 0, NULL);
    const char *s = json_string_value(json_object_get(j, "session"));
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(strlen(s), 32);
    snprintf(id, 40, "%s", s);
    char loc[128], want[128];
    snprintf(want, sizeof want, "/v1/sessions/%s", s);
    ck_assert_str_eq(httpc_header(&r, "Location", loc, sizeof loc), want);
    ck_assert_str_eq(json_string_value(json_object_get(j, "model")), model);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "steps")), 0);
    json_decref(j);
    httpc_resp_free(&r);
}

static void session_path(const char *id, const char *tail, char *out, size_t len)
{
    snprintf(out, len, "/v1/sessions/%s%s", id, tail);
}

/* POST /v1/sessions/ID/forward with BODY: 200 asserted, the response (json_decref it). */
static json_t *step(int port, const char *id, const char *body)
{
    char path[256];
    json_t *j;
    session_path(id, "/forward", path, sizeof path);
    long st = call(port, "POST", path, body, &j);
    ck_assert_msg(st == 200, "step: %ld %s", st, j ? message(j) : "");
    return j;
}

/* Largest difference between two nested arrays of numbers of the same structure. */
static double json_diff(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return fabs(json_number_value(a) - json_number_value(b));
    ck_assert_msg(json_is_array(a) && json_is_array(b) && json_array_size(a) == json_array_size(b),
                  "arrays of different shapes");
    double m = 0;
    for (size_t i = 0; i < json_array_size(a); i++) {
        double d = json_diff(json_array_get(a, i), json_array_get(b, i));
        m = d > m ? d : m;
    }
    return m;
}

/* {"inputs": [ROWS[a, b)]}, compact; free() it. */
static char *chunk_body(json_t *rows, size_t a, size_t b)
{
    json_t *seq = json_array(), *outer = json_array();
    for (size_t t = a; t < b; t++)
        json_array_append(seq, json_array_get(rows, t));
    json_array_append_new(outer, seq);
    json_t *root = json_pack("{s:o}", "inputs", outer);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

/* ---------------------------------------------------------------------------------------------
 * The walk */

START_TEST(test_walk_create_step_read_delete)
{
    fixture f;
    char id[40], path[256];
    start_one(&f, NULL, "m", "lstm_1layer");
    create(f.port, "m", NULL, id);
    /* three steps in two requests equal one /forward of the three */
    json_t *a = step(f.port, id, "{\"inputs\": [[[0.1, 0.2, 0.3]]]}");
    ck_assert_int_eq(json_integer_value(json_object_get(a, "steps")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(a, "session")), id);
    json_t *b = step(f.port, id, "{\"inputs\": [[[0.4, 0.5, 0.6], [-0.1, 0.0, 0.7]]]}");
    ck_assert_int_eq(json_integer_value(json_object_get(b, "steps")), 3);
    json_t *whole;
    ck_assert_int_eq(call(f.port, "POST", "/v1/models/m/forward",
                          "{\"inputs\": [[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [-0.1, 0.0, 0.7]]]}",
                          &whole),
                     200);
    json_t *wo = json_array_get(json_object_get(whole, "outputs"), 0);
    ck_assert_double_le(
        json_diff(json_array_get(json_array_get(json_object_get(a, "outputs"), 0), 0),
                  json_array_get(wo, 0)),
        TOL);
    json_t *tail = json_pack("[OO]", json_array_get(wo, 1), json_array_get(wo, 2));
    ck_assert_double_le(json_diff(json_array_get(json_object_get(b, "outputs"), 0), tail), TOL);
    json_decref(tail);
    ck_assert_double_le(json_diff(json_object_get(b, "hidden"), json_object_get(whole, "hidden")),
                        TOL);
    ck_assert_double_le(json_diff(json_object_get(b, "cell"), json_object_get(whole, "cell")), TOL);
    /* GET: the state, in the layout of one sequence's hidden */
    json_t *g;
    session_path(id, "", path, sizeof path);
    ck_assert_int_eq(call(f.port, "GET", path, NULL, &g), 200);
    ck_assert_int_eq(json_integer_value(json_object_get(g, "steps")), 3);
    ck_assert_str_eq(json_string_value(json_object_get(g, "model")), "m");
    ck_assert_double_le(json_diff(json_object_get(g, "hidden"),
                                  json_array_get(json_object_get(whole, "hidden"), 0)),
                        TOL);
    ck_assert_double_le(
        json_diff(json_object_get(g, "cell"), json_array_get(json_object_get(whole, "cell"), 0)),
        TOL);
    ck_assert(json_is_number(json_object_get(g, "idle_s")));
    ck_assert_double_eq(json_number_value(json_object_get(g, "expires_in_s")), 300);
    /* DELETE: the final state, then it is gone (410, saying so) */
    json_t *d;
    ck_assert_int_eq(call(f.port, "DELETE", path, NULL, &d), 200);
    ck_assert_double_le(json_diff(json_object_get(d, "hidden"), json_object_get(g, "hidden")), TOL);
    ck_assert_int_eq(json_integer_value(json_object_get(d, "steps")), 3);
    expect_error(f.port, "GET", path, NULL, 410, "deleted");
    session_path(id, "/forward", path, sizeof path);
    expect_error(f.port, "POST", path, "{\"inputs\": [[[0.1, 0.2, 0.3]]]}", 410, "deleted");
    json_decref(a);
    json_decref(b);
    json_decref(whole);
    json_decref(g);
    json_decref(d);
    stop(&f);
}
END_TEST

/* A session started from a state equals /forward given that state as h0/c0; the metrics count. */
START_TEST(test_create_from_a_state_resumes_it)
{
    fixture f;
    char id[40];
    start_one(&f, NULL, "m", "lstm_1layer");
    const char *h0 = "[[0.1, -0.2, 0.3, 0.0, 0.5]]", *c0 = "[[0.5, 0.4, -0.3, 0.2, 0.1]]";
    char body[512];
    snprintf(body, sizeof body, "{\"h0\": %s, \"c0\": %s}", h0, c0);
    create(f.port, "m", body, id);
    json_t *s = step(f.port, id, "{\"inputs\": [[[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]]]}");
    snprintf(body, sizeof body,
             "{\"inputs\": [[[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]]], \"h0\": [%s], \"c0\": [%s]}", h0,
             c0);
    json_t *w;
    ck_assert_int_eq(call(f.port, "POST", "/v1/models/m/forward", body, &w), 200);
    ck_assert_double_le(json_diff(json_object_get(s, "outputs"), json_object_get(w, "outputs")),
                        TOL);
    ck_assert_double_le(json_diff(json_object_get(s, "cell"), json_object_get(w, "cell")), TOL);
    /* "return" can leave the state out; the session still advances */
    json_t *t = step(f.port, id, "{\"inputs\": [[[0.0, 0.0, 0.0]]], \"return\": [\"outputs\"]}");
    ck_assert_ptr_null(json_object_get(t, "hidden"));
    ck_assert_int_eq(json_integer_value(json_object_get(t, "steps")), 3);
    httpc_resp r;
    ck_assert_int_eq(httpc(f.port, "GET", "/metrics", NULL, NULL, &r), CURLE_OK);
    ck_assert_ptr_nonnull(strstr(r.body, "\nrnnserve_sessions_active 1\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "\nrnnserve_sessions_created_total 1\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "\nrnnserve_sessions_ended_total 0\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "# TYPE rnnserve_sessions_evicted_total counter\n"));
    httpc_resp_free(&r);
    json_decref(s);
    json_decref(w);
    json_decref(t);
    stop(&f);
}
END_TEST

START_TEST(test_bad_requests_are_named)
{
    fixture f;
    char id[40], path[256];
    char *a = model_entry("m", "rnn_tanh_1layer"), *b = model_entry("bi", "lstm_2layer_bidir"),
         models[16384];
    snprintf(models, sizeof models, "[%s, %s]", a, b);
    free(a);
    free(b);
    start(&f, NULL, models);
    expect_error(f.port, "POST", "/v1/models/bi/sessions", NULL, 400, "bidirectional");
    expect_error(f.port, "POST", "/v1/models/nope/sessions", NULL, 404, "nope");
    expect_error(f.port, "POST", "/v1/models/m/sessions", "{\"h0\": [[1, 2]]}", 400, "h0[0]");
    expect_error(f.port, "POST", "/v1/models/m/sessions", "{\"h0\": [[1, 2, 3, 4, 5], [1]]}", 400,
                 "expected 1 rows");
    expect_error(f.port, "POST", "/v1/models/m/sessions", "{\"h0\": [[1, 2, \"x\", 4, 5]]}", 400,
                 "h0[0][2]");
    expect_error(f.port, "POST", "/v1/models/m/sessions", "{\"h0\": [[1, 2, 1e39, 4, 5]]}", 400,
                 "float32");
    expect_error(f.port, "POST", "/v1/models/m/sessions", "{\"c0\": [[1, 2, 3, 4, 5]]}", 400,
                 "only an LSTM");
    expect_error(f.port, "POST", "/v1/models/m/sessions", "{\"hO\": []}", 400, "unknown field");
    expect_error(f.port, "POST", "/v1/models/m/sessions", "[1]", 400, "JSON object");
    expect_error(f.port, "POST", "/v1/models/m/sessions", "{", 400, "malformed JSON");
    create(f.port, "m", NULL, id);
    session_path(id, "/forward", path, sizeof path);
    expect_error(f.port, "POST", path, "{\"inputs\": [[[1, 2, 3]], [[1, 2, 3]]]}", 400,
                 "one sequence");
    expect_error(f.port, "POST", path, "{\"inputs\": [[[1, 2, 3]]], \"h0\": [[[0, 0, 0, 0, 0]]]}",
                 400, "state is the server's");
    expect_error(f.port, "POST", path, "{\"inputs\": [[[1, 2]]]}", 400, "inputs[0][0]");
    /* a bad request leaves the session as it was */
    json_t *g;
    session_path(id, "", path, sizeof path);
    ck_assert_int_eq(call(f.port, "GET", path, NULL, &g), 200);
    ck_assert_int_eq(json_integer_value(json_object_get(g, "steps")), 0);
    json_decref(g);
    /* unknown ids, of any shape: 404 */
    expect_error(f.port, "GET", "/v1/sessions/0123456789abcdef0123456789abcdef", NULL, 404,
                 "no such session");
    expect_error(f.port, "DELETE", "/v1/sessions/abc", NULL, 404, "no such session");
    expect_error(f.port, "POST", "/v1/sessions//forward", "{\"inputs\": [[[1, 2, 3]]]}", 404,
                 "no such session");
    expect_error(f.port, "PUT", path, NULL, 405, "allowed");
    stop(&f);
}
END_TEST

START_TEST(test_api_keys_guard_the_session_routes)
{
    fixture f;
    start_one(&f, "\"api_keys\": [\"k-0123456789abcdef\"]", "m", "rnn_tanh_1layer");
    expect_error(f.port, "POST", "/v1/models/m/sessions", NULL, 401, "API key");
    expect_error(f.port, "GET", "/v1/sessions/0123456789abcdef0123456789abcdef", NULL, 401,
                 "API key");
    expect_error(f.port, "DELETE", "/v1/sessions/0123456789abcdef0123456789abcdef", NULL, 401,
                 "API key");
    expect_error(f.port, "POST", "/v1/sessions/0123456789abcdef0123456789abcdef/forward", "{}", 401,
                 "API key");
    const char *const auth[] = {"Authorization: Bearer k-0123456789abcdef", NULL};
    httpc_resp r;
    ck_assert_int_eq(httpc(f.port, "POST", "/v1/models/m/sessions", NULL, auth, &r), CURLE_OK);
    ck_assert_int_eq(r.status, 201);
    httpc_resp_free(&r);
    stop(&f);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * The target: chunks of random sizes equal PyTorch on the whole sequence, and /forward */

static void chunked_equals_whole(const char *fixture_case, unsigned seed)
{
    fixture f;
    char id[40], path[256];
    start_one(&f, NULL, "m", fixture_case);
    snprintf(path, sizeof path, "tests/fixtures/cases/%s/request.json", fixture_case);
    json_t *req = json_load_file(path, 0, NULL);
    snprintf(path, sizeof path, "tests/fixtures/cases/%s/expected.json", fixture_case);
    json_t *exp = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(req);
    ck_assert_ptr_nonnull(exp);
    json_t *rows = json_array_get(json_object_get(req, "inputs"), 0);
    const size_t T = json_array_size(rows);
    ck_assert_uint_eq(T, 1000);
    create(f.port, "m", NULL, id);
    json_t *outs = json_array(), *last = NULL;
    size_t chunks = 0;
    for (size_t t = 0; t < T; chunks++) {
        size_t n = 1 + (size_t)(rand_r(&seed) % 50);
        n = t + n > T ? T - t : n;
        char *body = chunk_body(rows, t, t + n);
        json_decref(last);
        last = step(f.port, id, body);
        free(body);
        json_t *o = json_array_get(json_object_get(last, "outputs"), 0);
        ck_assert_uint_eq(json_array_size(o), n);
        json_array_extend(outs, o);
        t += n;
        ck_assert_int_eq(json_integer_value(json_object_get(last, "steps")), (json_int_t)t);
    }
    ck_assert_uint_gt(chunks, 20);
    /* PyTorch on the whole sequence */
    double d_out = json_diff(outs, json_array_get(json_object_get(exp, "outputs"), 0));
    json_t *eh = json_pack("[O]", json_array_get(json_object_get(exp, "hidden"), 0));
    double d_h = json_diff(json_object_get(last, "hidden"), eh);
    json_decref(eh);
    ck_assert_msg(d_out <= TOL && d_h <= TOL, "%s: outputs differ by %g, hidden by %g",
                  fixture_case, d_out, d_h);
    if (json_object_get(exp, "cell")) {
        json_t *ec = json_pack("[O]", json_array_get(json_object_get(exp, "cell"), 0));
        ck_assert_double_le(json_diff(json_object_get(last, "cell"), ec), TOL);
        json_decref(ec);
    }
    /* and /forward on the whole sequence */
    char *body = chunk_body(rows, 0, T);
    json_t *w;
    ck_assert_int_eq(call(f.port, "POST", "/v1/models/m/forward", body, &w), 200);
    free(body);
    ck_assert_double_le(json_diff(outs, json_array_get(json_object_get(w, "outputs"), 0)), TOL);
    ck_assert_double_le(json_diff(json_object_get(last, "hidden"), json_object_get(w, "hidden")),
                        TOL);
    json_decref(w);
    json_decref(outs);
    json_decref(last);
    json_decref(req);
    json_decref(exp);
    stop(&f);
}

START_TEST(test_chunks_equal_the_whole_sequence_rnn_1_layer)
{
    chunked_equals_whole("long_1000", 1);
}
END_TEST

START_TEST(test_chunks_equal_the_whole_sequence_lstm_2_layers)
{
    chunked_equals_whole("long_1000_lstm2", 2);
}
END_TEST

START_TEST(test_chunks_equal_the_whole_sequence_gru_3_layers)
{
    chunked_equals_whole("long_1000_gru3", 3);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Lifetime: TTL, eviction, reload */

START_TEST(test_idle_sessions_expire_on_an_idle_server)
{
    fixture f;
    char id[40], path[256];
    start_one(&f, "\"session_ttl_s\": 1", "m", "rnn_tanh_1layer");
    create(f.port, "m", NULL, id);
    /* the sweeper ends it with nobody calling; the metrics say so before any request asks */
    httpc_resp r = {0};
    int expired = 0;
    for (int i = 0; i < 60 && !expired; i++) {
        tu_sleep_ms(100);
        ck_assert_int_eq(httpc(f.port, "GET", "/metrics", NULL, NULL, &r), CURLE_OK);
        expired = strstr(r.body, "\nrnnserve_sessions_expired_total 1\n") != NULL;
        httpc_resp_free(&r);
    }
    ck_assert_msg(expired, "no expiry within 6 s of a 1 s TTL");
    session_path(id, "", path, sizeof path);
    expect_error(f.port, "GET", path, NULL, 410, "expired");
    stop(&f);
}
END_TEST

START_TEST(test_a_full_table_evicts_the_least_recently_used)
{
    fixture f;
    char a[40], b[40], c[40], path[256];
    start_one(&f, "\"max_sessions\": 2", "m", "rnn_tanh_1layer");
    create(f.port, "m", NULL, a);
    create(f.port, "m", NULL, b);
    json_decref(step(f.port, a, "{\"inputs\": [[[1, 2, 3]]]}")); /* a is now the more recent */
    create(f.port, "m", NULL, c);
    session_path(b, "", path, sizeof path);
    expect_error(f.port, "GET", path, NULL, 410, "evicted");
    session_path(a, "", path, sizeof path);
    ck_assert_int_eq(call(f.port, "GET", path, NULL, NULL), 200);
    session_path(c, "", path, sizeof path);
    ck_assert_int_eq(call(f.port, "GET", path, NULL, NULL), 200);
    stop(&f);
}
END_TEST

START_TEST(test_reload_keeps_sessions_of_the_same_shape_and_ends_the_others)
{
    fixture f;
    char keep[40], gone[40], path[256], err[1024], models[32768];
    char *m1 = model_entry("m", "rnn_tanh_1layer"), *n1 = model_entry("n", "rnn_tanh_1layer");
    snprintf(models, sizeof models, "[%s, %s]", m1, n1);
    start(&f, NULL, models);
    create(f.port, "m", NULL, keep);
    create(f.port, "n", NULL, gone);
    json_t *s = step(f.port, keep, "{\"inputs\": [[[0.1, 0.2, 0.3]]]}");
    /* m becomes a GRU of the same state shape (1 x 5): kept, stepped by the new weights; n
     * becomes 3 layers of 4: ended */
    char *m2 = model_entry("m", "gru_1layer"), *n2 = model_entry("n", "rnn_tanh_3layer");
    snprintf(models, sizeof models, "[%s, %s]", m2, n2);
    write_config(&f, NULL, models);
    ck_assert_msg(srv_reload(f.s, f.path, err, sizeof err) == 0, "%s", err);
    json_t *t = step(f.port, keep, "{\"inputs\": [[[0.3, 0.2, 0.1]]]}");
    ck_assert_int_eq(json_integer_value(json_object_get(t, "steps")), 2);
    char body[512], *h = json_dumps(json_object_get(s, "hidden"), JSON_COMPACT);
    snprintf(body, sizeof body, "{\"inputs\": [[[0.3, 0.2, 0.1]]], \"h0\": %s}", h);
    free(h);
    json_t *w;
    ck_assert_int_eq(call(f.port, "POST", "/v1/models/m/forward", body, &w), 200);
    ck_assert_double_le(json_diff(json_object_get(t, "hidden"), json_object_get(w, "hidden")), TOL);
    session_path(gone, "", path, sizeof path);
    expect_error(f.port, "GET", path, NULL, 410, "reload");
    expect_error(f.port, "GET", path, NULL, 410, "\"n\"");
    json_decref(s);
    json_decref(t);
    json_decref(w);
    free(m1);
    free(n1);
    free(m2);
    free(n2);
    stop(&f);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Busy sessions: a step held queued by a paused compute thread (it holds its session from before
 * decoding until its pass is over, so a queued step is as busy as a running one) */

typedef struct {
    int port;
    const char *id;
    char *body;
    long status;
    json_int_t steps;
} held_step;

static void *run_held_step(void *p)
{
    held_step *s = p;
    char path[256];
    json_t *j;
    session_path(s->id, "/forward", path, sizeof path);
    s->status = call(s->port, "POST", path, s->body, &j);
    s->steps = json_integer_value(json_object_get(j, "steps"));
    json_decref(j);
    return NULL;
}

/* {"inputs": [[T steps of I numbers]]} */
static char *steps_body(size_t T, int I)
{
    size_t cap = T * (size_t)I * 8 + 64, n = 0;
    char *b = malloc(cap);
    n += (size_t)snprintf(b + n, cap - n, "{\"inputs\": [[");
    for (size_t t = 0; t < T; t++) {
        b[n++] = t ? ',' : '[';
        if (t)
            b[n++] = '[';
        for (int i = 0; i < I; i++)
            n += (size_t)snprintf(b + n, cap - n, "%s0.%d", i ? "," : "", (int)((t + i) % 10));
        b[n++] = ']';
    }
    snprintf(b + n, cap - n, "]]}");
    return b;
}

START_TEST(test_a_running_step_makes_the_session_busy)
{
    fixture f;
    char id[40], other[40], third[40], path[256], weights[400], models[1024];
    snprintf(f.dir, sizeof f.dir, "unused");
    char dir[] = "/tmp/rnnserve-heldstep-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(weights, sizeof weights, "%s/lstm.safetensors", dir);
    tu_write_lstm(weights, 64, 32, 2);
    snprintf(models, sizeof models,
             "[{\"name\": \"lstm\", \"type\": \"lstm\", \"input_size\": 64, \"hidden_size\": 32, "
             "\"num_layers\": 2, \"weights\": \"%s\"}]",
             weights);
    /* no deadline while the client looks, however slow it is (valgrind) */
    start(&f, "\"threads\": 1, \"max_sessions\": 2, \"queue_timeout_ms\": 600000", models);
    create(f.port, "lstm", NULL, id);
    /* Nothing is computed until the client has seen the session busy: the step stays queued (not
     * even computed inline, as a step this small would be otherwise). */
    const json_int_t T = 16;
    held_step s = {f.port, id, steps_body((size_t)T, 64), 0, 0};
    srv_pause_compute(f.s, 1);
    pthread_t th;
    pthread_create(&th, NULL, run_held_step, &s);
    /* Wait until the step is queued, watching /metrics: a GET of the session would hold it for
     * a moment and could make the arriving step itself a 409. The bound only ends a failure. */
    ck_assert_msg(httpc_wait_metric(f.port, "rnnserve_queue_requests", 1, 60),
                  "the step was never queued");
    session_path(id, "", path, sizeof path);
    json_t *j = NULL;
    long st = call(f.port, "GET", path, NULL, &j);
    ck_assert_msg(st == 409 && strstr(message(j), "still running"), "GET while stepping: %ld", st);
    json_decref(j);
    /* a second step, and a DELETE, while it runs: 409 */
    expect_error(f.port, "DELETE", path, NULL, 409, "still running");
    session_path(id, "/forward", path, sizeof path);
    expect_error(f.port, "POST", path, "{\"inputs\": [[[0]]]}", 409, "still running");
    /* a full table evicts an idle session, never the busy one */
    create(f.port, "lstm", NULL, other);
    create(f.port, "lstm", NULL, third);
    session_path(other, "", path, sizeof path);
    expect_error(f.port, "GET", path, NULL, 410, "evicted");
    srv_pause_compute(f.s, 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(s.status, 200);
    ck_assert_int_eq(s.steps, T);
    session_path(id, "", path, sizeof path);
    json_t *d;
    ck_assert_int_eq(call(f.port, "DELETE", path, NULL, &d), 200);
    ck_assert_int_eq(json_integer_value(json_object_get(d, "steps")), T);
    ck_assert_uint_eq(json_array_size(json_object_get(d, "cell")), 2);
    json_decref(d);
    free(s.body);
    stop(&f);
    unlink(weights);
    rmdir(dir);
}
END_TEST

/* The process's resident set, in bytes. */
static double rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *fp = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fscanf(fp, "%ld %ld", &pages, &resident), 2);
    fclose(fp);
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

/* The memory target: 10,000 idle sessions grow the RSS by at most 1.5x the states' own
 * bytes plus 1 KB per session. An LSTM of 2 layers of 256 keeps 4 KB of state per session. The
 * bound is for a plain build: a sanitizer's or valgrind's allocator pads every block. */
START_TEST(test_ten_thousand_idle_sessions_fit_their_memory_bound)
{
    fixture f;
    char dir[] = "/tmp/rnnserve-memmodel-XXXXXX", weights[400], models[1024];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(weights, sizeof weights, "%s/m.safetensors", dir);
    tu_write_lstm(weights, 8, 256, 2);
    snprintf(models, sizeof models,
             "[{\"name\": \"m\", \"type\": \"lstm\", \"input_size\": 8, \"hidden_size\": 256, "
             "\"num_layers\": 2, \"weights\": \"%s\"}]",
             weights);
    start(&f, "\"max_sessions\": 10000", models);
    const int n = tu_slack(2, 2) > 1 ? 1000 : 10000;
    CURL *h = curl_easy_init();
    httpc_resp r;
    /* one first, so that the table's and the connection's own memory is there before */
    ck_assert_int_eq(httpc_full(h, f.port, "POST", "/v1/models/m/sessions", NULL, 0, 0, NULL, &r),
                     CURLE_OK);
    httpc_resp_free(&r);
    const double before = rss_bytes();
    /* 10,000 access lines say nothing: the server's stderr is quiet meanwhile */
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    for (int i = 1; i < n; i++) {
        ck_assert_int_eq(
            httpc_full(h, f.port, "POST", "/v1/models/m/sessions", NULL, 0, 0, NULL, &r), CURLE_OK);
        ck_assert_int_eq(r.status, 201);
        httpc_resp_free(&r);
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(null);
    const double grown = rss_bytes() - before, state = 2.0 * 2 * 256 * sizeof(float);
    const double bound = (n - 1) * (1.5 * state + 1024);
    ck_assert_msg(tu_slack(2, 2) > 1 || grown <= bound,
                  "%d idle sessions of %.0f state bytes grew the RSS by %.0f bytes (bound %.0f)", n,
                  state, grown, bound);
    fprintf(stderr,
            "%d idle sessions: RSS grew %.1f MB, %.0f bytes per session of %.0f state "
            "bytes (bound %.0f)\n",
            n - 1, grown / 1048576, grown / (n - 1), state, bound / (n - 1));
    ck_assert_int_eq(httpc_full(h, f.port, "GET", "/metrics", NULL, 0, 0, NULL, &r), CURLE_OK);
    char want[64];
    snprintf(want, sizeof want, "\nrnnserve_sessions_active %d\n", n);
    ck_assert_ptr_nonnull(strstr(r.body, want));
    httpc_resp_free(&r);
    curl_easy_cleanup(h);
    stop(&f);
    unlink(weights);
    rmdir(dir);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Concurrency: many sessions stepping at once from several threads */

#define N_THREADS 8
#define SESS_PER_THREAD 4
#define N_STEPS 12

typedef struct {
    int port, k;
    int failures;
} worker;

/* Step t of sequence k: the same on both paths. */
static void step_values(int k, int t, char *out, size_t len)
{
    snprintf(out, len, "[%.2f, %.2f]", ((k * 7 + t * 3) % 19) / 10.0 - 0.9,
             ((k * 5 + t) % 13) / 10.0 - 0.6);
}

static void *run_worker(void *p)
{
    worker *w = p;
    char ids[SESS_PER_THREAD][40], body[256], path[256], v[64];
    for (int i = 0; i < SESS_PER_THREAD; i++)
        create(w->port, "m", NULL, ids[i]);
    json_t *last[SESS_PER_THREAD] = {0};
    for (int t = 0; t < N_STEPS; t++)
        for (int i = 0; i < SESS_PER_THREAD; i++) {
            step_values(w->k * SESS_PER_THREAD + i, t, v, sizeof v);
            snprintf(body, sizeof body, "{\"inputs\": [[%s]]}", v);
            json_decref(last[i]);
            session_path(ids[i], "/forward", path, sizeof path);
            if (call(w->port, "POST", path, body, &last[i]) != 200)
                w->failures++;
        }
    for (int i = 0; i < SESS_PER_THREAD; i++) {
        char whole[2048];
        size_t n = (size_t)snprintf(whole, sizeof whole, "{\"inputs\": [[");
        for (int t = 0; t < N_STEPS; t++) {
            step_values(w->k * SESS_PER_THREAD + i, t, v, sizeof v);
            n += (size_t)snprintf(whole + n, sizeof whole - n, "%s%s", t ? "," : "", v);
        }
        snprintf(whole + n, sizeof whole - n, "]]}");
        json_t *f;
        if (call(w->port, "POST", "/v1/models/m/forward", whole, &f) != 200 ||
            json_diff(json_object_get(f, "hidden"), json_object_get(last[i], "hidden")) > TOL ||
            json_integer_value(json_object_get(last[i], "steps")) != N_STEPS)
            w->failures++;
        json_decref(f);
        json_decref(last[i]);
    }
    return NULL;
}

START_TEST(test_many_sessions_step_at_once)
{
    fixture f;
    start_one(&f, "\"threads\": 2", "m", "long_1000");
    pthread_t th[N_THREADS];
    worker w[N_THREADS];
    for (int k = 0; k < N_THREADS; k++) {
        w[k] = (worker){f.port, k, 0};
        pthread_create(&th[k], NULL, run_worker, &w[k]);
    }
    int failures = 0;
    for (int k = 0; k < N_THREADS; k++) {
        pthread_join(th[k], NULL);
        failures += w[k].failures;
    }
    ck_assert_int_eq(failures, 0);
    httpc_resp r;
    ck_assert_int_eq(httpc(f.port, "GET", "/metrics", NULL, NULL, &r), CURLE_OK);
    char want[64];
    snprintf(want, sizeof want, "\nrnnserve_sessions_active %d\n", N_THREADS * SESS_PER_THREAD);
    ck_assert_ptr_nonnull(strstr(r.body, want));
    httpc_resp_free(&r);
    stop(&f);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * The Open Inference Protocol's sequence extension */

/* A v2 body of STEPS (FP32 values, input_size 3, batch 1) with PARAMS (the parameters'
 * members). */
static void v2_body(char *out, size_t len, const char *data, int steps, const char *params)
{
    snprintf(out, len,
             "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, %d, 3], \"datatype\": \"FP32\", "
             "\"data\": [%s]}], \"parameters\": {%s}}",
             steps, data, params);
}

/* The data of output tensor NAME of a v2 response. */
static json_t *v2_output(json_t *resp, const char *name)
{
    json_t *outs = json_object_get(resp, "outputs"), *o;
    size_t i;
    json_array_foreach(outs, i, o) if (strcmp(json_string_value(json_object_get(o, "name")),
                                              name) == 0) return json_object_get(o, "data");
    return NULL;
}

START_TEST(test_v2_sequence_start_continue_end)
{
    fixture f;
    char body[1024];
    json_t *a, *b, *c, *w;
    start_one(&f, NULL, "m", "lstm_1layer");
    json_t *meta;
    ck_assert_int_eq(call(f.port, "GET", "/v2", NULL, &meta), 200);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(meta, "extensions"), 0)),
                     "sequence");
    json_decref(meta);
    v2_body(body, sizeof body, "0.1, 0.2, 0.3", 1, "\"sequence_id\": 5, \"sequence_start\": true");
    ck_assert_int_eq(call(f.port, "POST", "/v2/models/m/infer", body, &a), 200);
    v2_body(body, sizeof body, "0.4, 0.5, 0.6, -0.1, 0.0, 0.7", 2, "\"sequence_id\": 5");
    ck_assert_int_eq(call(f.port, "POST", "/v2/models/m/infer", body, &b), 200);
    /* "5" is not 5 */
    v2_body(body, sizeof body, "0.1, 0.2, 0.3", 1, "\"sequence_id\": \"5\"");
    expect_error(f.port, "POST", "/v2/models/m/infer", body, 400, "not started");
    v2_body(body, sizeof body, "0.3, 0.3, 0.3", 1, "\"sequence_id\": 5, \"sequence_end\": true");
    ck_assert_int_eq(call(f.port, "POST", "/v2/models/m/infer", body, &c), 200);
    /* the same four steps at once, without a sequence */
    v2_body(body, sizeof body, "0.1, 0.2, 0.3, 0.4, 0.5, 0.6, -0.1, 0.0, 0.7, 0.3, 0.3, 0.3", 4,
            "\"timeout\": 0");
    ck_assert_int_eq(call(f.port, "POST", "/v2/models/m/infer", body, &w), 200);
    ck_assert_double_le(json_diff(v2_output(c, "h_n"), v2_output(w, "h_n")), TOL);
    ck_assert_double_le(json_diff(v2_output(c, "c_n"), v2_output(w, "c_n")), TOL);
    json_t *wo = v2_output(w, "output"), *bo = v2_output(b, "output");
    ck_assert_uint_eq(json_array_size(bo), 10);
    for (size_t i = 0; i < 10; i++)
        ck_assert_double_le(fabs(json_number_value(json_array_get(bo, i)) -
                                 json_number_value(json_array_get(wo, 5 + i))),
                            TOL);
    /* ended: 410; a fresh start revives the id from zeros */
    v2_body(body, sizeof body, "0.1, 0.2, 0.3", 1, "\"sequence_id\": 5");
    expect_error(f.port, "POST", "/v2/models/m/infer", body, 410, "sequence_end");
    v2_body(body, sizeof body, "0.1, 0.2, 0.3", 1,
            "\"sequence_id\": 5, \"sequence_start\": true, \"sequence_end\": true");
    json_t *again;
    ck_assert_int_eq(call(f.port, "POST", "/v2/models/m/infer", body, &again), 200);
    ck_assert_double_le(json_diff(v2_output(again, "h_n"), v2_output(a, "h_n")), TOL);
    /* string ids, and what the extension refuses */
    v2_body(body, sizeof body, "0.1, 0.2, 0.3", 1,
            "\"sequence_id\": \"abc\", \"sequence_start\": true");
    ck_assert_int_eq(call(f.port, "POST", "/v2/models/m/infer", body, NULL), 200);
    v2_body(body, sizeof body, "0.1, 0.2, 0.3", 1, "\"sequence_id\": -1");
    expect_error(f.port, "POST", "/v2/models/m/infer", body, 400, "sequence_id");
    v2_body(body, sizeof body, "0.1, 0.2, 0.3", 1, "\"sequence_id\": 1.5");
    expect_error(f.port, "POST", "/v2/models/m/infer", body, 400, "sequence_id");
    v2_body(body, sizeof body, "0.1, 0.2, 0.3", 1,
            "\"sequence_id\": 7, \"sequence_start\": \"yes\"");
    expect_error(f.port, "POST", "/v2/models/m/infer", body, 400, "sequence_start");
    snprintf(body, sizeof body,
             "{\"inputs\": [{\"name\": \"input\", \"shape\": [2, 1, 3], \"datatype\": \"FP32\", "
             "\"data\": [1, 2, 3, 4, 5, 6]}], \"parameters\": {\"sequence_id\": 8, "
             "\"sequence_start\": true}}");
    expect_error(f.port, "POST", "/v2/models/m/infer", body, 400, "one sequence");
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(w);
    json_decref(again);
    stop(&f);
}
END_TEST

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    Suite *s = suite_create("session_http");
    TCase *tc = tcase_create("sessions");
    tcase_set_timeout(tc, 120 * tu_slack(3.0, 20.0));
    tcase_add_test(tc, test_walk_create_step_read_delete);
    tcase_add_test(tc, test_create_from_a_state_resumes_it);
    tcase_add_test(tc, test_bad_requests_are_named);
    tcase_add_test(tc, test_api_keys_guard_the_session_routes);
    tcase_add_test(tc, test_chunks_equal_the_whole_sequence_rnn_1_layer);
    tcase_add_test(tc, test_chunks_equal_the_whole_sequence_lstm_2_layers);
    tcase_add_test(tc, test_chunks_equal_the_whole_sequence_gru_3_layers);
    tcase_add_test(tc, test_idle_sessions_expire_on_an_idle_server);
    tcase_add_test(tc, test_a_full_table_evicts_the_least_recently_used);
    tcase_add_test(tc, test_reload_keeps_sessions_of_the_same_shape_and_ends_the_others);
    tcase_add_test(tc, test_many_sessions_step_at_once);
    tcase_add_test(tc, test_ten_thousand_idle_sessions_fit_their_memory_bound);
    tcase_add_test(tc, test_v2_sequence_start_continue_end);
    tcase_add_test(tc, test_a_running_step_makes_the_session_busy);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
