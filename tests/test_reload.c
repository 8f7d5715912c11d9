/* test_reload.c - hot reload: models swapped without dropping a request, failures leave the old
 * models serving, in-flight requests finish on the model they started with, and the admin
 * route's bearer-token guard. */
#include <check.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rnnserve/config.h"
#include "rnnserve/server.h"
#include "httpc.h"
#include "testutil.h"

#define TOKEN "0123456789abcdef-test"

/* One request; returns the status (0 when the exchange failed) and the body in *out (free it).
 * AUTH is one header line, or NULL. */
static long http(int port, const char *method, const char *path, const char *body, const char *auth,
                 char **out)
{
    const char *const headers[] = {auth, NULL};
    httpc_resp r;
    long status = httpc(port, method, path, body, headers, &r) == CURLE_OK ? r.status : 0;
    if (out) {
        *out = r.body;
        r.body = NULL;
    }
    httpc_resp_free(&r);
    return status;
}

/* Writes a config serving MODELS (a JSON array text) to PATH, with the admin token. */
static void write_config(const char *path, const char *models)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "{\"server\": {\"admin_token\": \"%s\"}, \"models\": %s}\n", TOKEN, models);
    fclose(f);
}

/* Model entries by absolute path to the fixtures' weights. */
static char *model_entry(const char *name, const char *fixture)
{
    char cwd[2048], *s = malloc(8192);
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/cases/%s/config.json", cwd, fixture);
    json_t *cfg = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(cfg);
    json_t *m = json_deep_copy(json_array_get(json_object_get(cfg, "models"), 0));
    snprintf(path, sizeof path, "%s/tests/fixtures/cases/%s/model.safetensors", cwd, fixture);
    json_object_set_new(m, "weights", json_string(path));
    json_object_set_new(m, "name", json_string(name));
    char *text = json_dumps(m, JSON_COMPACT);
    snprintf(s, 8192, "%s", text);
    free(text);
    json_decref(m);
    json_decref(cfg);
    return s;
}

typedef struct {
    char dir[256], path[300];
    cfg_config *cfg;
    srv *s;
    int port;
} fixture;

static void start(fixture *f, const char *models)
{
    char err[1024];
    snprintf(f->dir, sizeof f->dir, "/tmp/rnnserve-reload-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/config.json", f->dir);
    write_config(f->path, models);
    ck_assert_msg(cfg_load_file(f->path, &f->cfg, err, sizeof err) == 0, "%s", err);
    free(f->cfg->server.host);
    f->cfg->server.host = strdup("127.0.0.1");
    f->cfg->server.port = 0;
    f->cfg->server.threads = 1;
    ck_assert_msg(srv_start(f->cfg, &f->s, err, sizeof err) == 0, "%s", err);
    f->port = srv_port(f->s);
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

/* The "type" GET /v1/models/{name} reports. */
static char *model_type(int port, const char *name)
{
    char path[128], *body = NULL;
    snprintf(path, sizeof path, "/v1/models/%s", name);
    if (http(port, "GET", path, NULL, NULL, &body) != 200) {
        free(body);
        return NULL;
    }
    json_t *j = json_loads(body, 0, NULL);
    char *t = strdup(json_string_value(json_object_get(j, "type")));
    json_decref(j);
    free(body);
    return t;
}

START_TEST(test_reload_swaps_models_and_keeps_the_old_ones_on_error)
{
    fixture f;
    char *a = model_entry("m", "rnn_tanh_1layer"), *b = model_entry("m", "gru_1layer");
    char *extra = model_entry("extra", "lstm_1layer"), models[20000], err[1024];
    snprintf(models, sizeof models, "[%s]", a);
    start(&f, models);
    char *t = model_type(f.port, "m");
    ck_assert_str_eq(t, "rnn");
    free(t);

    /* a new model under the same name, plus one more */
    snprintf(models, sizeof models, "[%s, %s]", b, extra);
    write_config(f.path, models);
    ck_assert_msg(srv_reload(f.s, f.path, err, sizeof err) == 0, "%s", err);
    t = model_type(f.port, "m");
    ck_assert_str_eq(t, "gru");
    free(t);
    t = model_type(f.port, "extra");
    ck_assert_str_eq(t, "lstm");
    free(t);

    /* a broken config: the error names the problem, the current models keep serving */
    write_config(f.path,
                 "[{\"name\": \"m\", \"type\": \"rnn\", \"input_size\": 3, \"hidden_size\": 5,"
                 " \"weights\": \"/nonexistent.safetensors\"}]");
    ck_assert_int_eq(srv_reload(f.s, f.path, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent.safetensors"));
    t = model_type(f.port, "m");
    ck_assert_str_eq(t, "gru");
    free(t);
    ck_assert_int_eq(http(f.port, "POST", "/forward",
                          "{\"inputs\": [[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]]}", NULL, NULL),
                     200);
    free(a);
    free(b);
    free(extra);
    stop(&f);
}
END_TEST

START_TEST(test_admin_reload_needs_the_bearer_token)
{
    fixture f;
    char *a = model_entry("m", "rnn_tanh_1layer"), models[10000], *body = NULL;
    snprintf(models, sizeof models, "[%s]", a);
    start(&f, models);
    ck_assert_int_eq(http(f.port, "POST", "/v1/admin/reload", "", NULL, &body), 401);
    ck_assert_ptr_nonnull(strstr(body, "\"status\":401"));
    free(body);
    ck_assert_int_eq(
        http(f.port, "POST", "/v1/admin/reload", "", "Authorization: Bearer wrong", NULL), 401);
    ck_assert_int_eq(
        http(f.port, "GET", "/v1/admin/reload", NULL, "Authorization: Bearer " TOKEN, NULL), 405);
    ck_assert_int_eq(
        http(f.port, "POST", "/v1/admin/reload", "", "Authorization: Bearer " TOKEN, &body), 200);
    ck_assert_ptr_nonnull(strstr(body, "\"status\":\"reloaded\""));
    free(body);
    /* a config that no longer loads: 500 naming why, previous models still serving */
    write_config(f.path,
                 "[{\"name\": \"m\", \"type\": \"rnn\", \"input_size\": 3, \"hidden_size\": 5,"
                 " \"weights\": \"missing.safetensors\", \"typo\": 1}]");
    ck_assert_int_eq(
        http(f.port, "POST", "/v1/admin/reload", "", "Authorization: Bearer " TOKEN, &body), 500);
    ck_assert_ptr_nonnull(strstr(body, "typo"));
    free(body);
    ck_assert_int_eq(http(f.port, "GET", "/v1/models/m", NULL, NULL, NULL), 200);
    free(a);
    stop(&f);
}
END_TEST

/* A slow reload, made so by opening its config: every open() of a path under slow_dir waits
 * slow_ms first (the process's own open, interposed; everything else passes straight on). */
static _Atomic(const char *) slow_dir;
static atomic_int slow_ms;

int open(const char *path, int flags, ...)
{
    static int (*real)(const char *, int, ...);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "open");
    mode_t mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    const char *dir = atomic_load(&slow_dir);
    if (dir && strncmp(path, dir, strlen(dir)) == 0)
        tu_sleep_ms(atomic_load(&slow_ms));
    return real(path, flags, mode);
}

typedef struct {
    int port;
    long status;
    atomic_int done;
} admin_call;

static void *admin_main(void *arg)
{
    admin_call *a = arg;
    a->status = http(a->port, "POST", "/v1/admin/reload", "", "Authorization: Bearer " TOKEN, NULL);
    atomic_store(&a->done, 1);
    return NULL;
}

START_TEST(test_admin_reload_does_not_stall_the_io_threads)
{
    fixture f;
    char *a = model_entry("m", "rnn_tanh_1layer"), models[10000];
    snprintf(models, sizeof models, "[%s]", a);
    start(&f, models);
    int ms = (int)(1500 * tu_slack(2.0, 10.0));
    atomic_store(&slow_ms, ms);
    atomic_store(&slow_dir, f.dir);
    /* Two reloads at once: one at a time, both answered. */
    admin_call calls[2] = {{f.port, 0, 0}, {f.port, 0, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, admin_main, &calls[i]), 0);
    tu_sleep_ms(ms / 5);
    /* Probes on fresh connections, spread over the I/O threads, answered while it loads. */
    for (int i = 0; i < 8; i++) {
        double t0 = tu_now_s();
        ck_assert_int_eq(http(f.port, "GET", "/healthz", NULL, NULL, NULL), 200);
        ck_assert_msg(tu_now_s() - t0 < ms / 4e3, "probe %d waited %.3f s behind a reload", i,
                      tu_now_s() - t0);
    }
    ck_assert_msg(!atomic_load(&calls[0].done) || !atomic_load(&calls[1].done),
                  "both reloads ended before the probes did");
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(calls[i].status, 200);
    }
    atomic_store(&slow_dir, NULL);
    ck_assert_int_eq(http(f.port, "GET", "/v1/models/m", NULL, NULL, NULL), 200);
    free(a);
    stop(&f);
}
END_TEST

/* A reload still waiting when the server stops is answered, not left suspended. */
START_TEST(test_a_stop_answers_the_waiting_reloads)
{
    fixture f;
    char *a = model_entry("m", "rnn_tanh_1layer"), models[10000];
    snprintf(models, sizeof models, "[%s]", a);
    start(&f, models);
    int ms = (int)(500 * tu_slack(2.0, 10.0));
    atomic_store(&slow_ms, ms);
    atomic_store(&slow_dir, f.dir);
    admin_call calls[3] = {{f.port, 0, 0}, {f.port, 0, 0}, {f.port, 0, 0}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, admin_main, &calls[i]), 0);
    tu_sleep_ms(ms / 5);
    srv_drain(f.s);
    double t0 = tu_now_s();
    srv_stop(f.s); /* MHD would abort stopping with a connection still suspended */
    ck_assert_msg(tu_now_s() - t0 < 3 * ms / 1e3, "stop took %.3f s", tu_now_s() - t0);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(calls[i].status == 200 || calls[i].status == 500 || calls[i].status == 0,
                      "reload %d: %ld", i, calls[i].status);
    }
    atomic_store(&slow_dir, NULL);
    cfg_free(f.cfg);
    unlink(f.path);
    rmdir(f.dir);
    free(a);
}
END_TEST

START_TEST(test_admin_reload_is_off_without_a_token)
{
    char err[1024];
    cfg_config *cfg;
    srv *s;
    ck_assert(cfg_load_file("config/default.json", &cfg, err, sizeof err) == 0);
    free(cfg->server.host);
    cfg->server.host = strdup("127.0.0.1");
    cfg->server.port = 0;
    ck_assert(srv_start(cfg, &s, err, sizeof err) == 0);
    ck_assert_int_eq(http(srv_port(s), "POST", "/v1/admin/reload", "", NULL, NULL), 404);
    srv_stop(s);
    cfg_free(cfg);
}
END_TEST

/* Requests in flight during reloads: every one answered 200, by the model it started on. */
typedef struct {
    int port, ok, total;
    const char *body;
} load_arg;

static void *load(void *p)
{
    load_arg *a = p;
    for (int i = 0; i < a->total; i++)
        a->ok += http(a->port, "POST", "/v1/models/m/forward", a->body, NULL, NULL) == 200;
    return NULL;
}

START_TEST(test_reload_under_load_loses_no_request)
{
    fixture f;
    char *a = model_entry("m", "rnn_tanh_1layer"), *b = model_entry("m", "rnn_nobias");
    char ma[10000], mb[10000], err[1024];
    snprintf(ma, sizeof ma, "[%s]", a);
    snprintf(mb, sizeof mb, "[%s]", b);
    start(&f, ma);
    /* both models take 3 inputs; a long request goes through the compute pool */
    size_t cap = 200000, n = 0;
    char *body = malloc(cap);
    n += (size_t)snprintf(body + n, cap - n, "{\"inputs\": [[");
    for (int t = 0; t < 3000; t++)
        n += (size_t)snprintf(body + n, cap - n, "%s[0.1, -0.2, 0.3]", t ? "," : "");
    snprintf(body + n, cap - n, "]]}");
    pthread_t th[4];
    load_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (load_arg){f.port, 0, 25, i % 2 ? body : "{\"inputs\": [[[1, 2, 3]]]}"};
        pthread_create(&th[i], NULL, load, &args[i]);
    }
    for (int k = 0; k < 20; k++) {
        write_config(f.path, k % 2 ? ma : mb);
        ck_assert_msg(srv_reload(f.s, f.path, err, sizeof err) == 0, "%s", err);
        usleep(20000);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(args[i].ok, args[i].total);
    }
    free(body);
    free(a);
    free(b);
    stop(&f);
}
END_TEST

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    Suite *s = suite_create("reload");
    TCase *tc = tcase_create("reload");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_reload_swaps_models_and_keeps_the_old_ones_on_error);
    tcase_add_test(tc, test_admin_reload_needs_the_bearer_token);
    tcase_add_test(tc, test_admin_reload_is_off_without_a_token);
    tcase_add_test(tc, test_admin_reload_does_not_stall_the_io_threads);
    tcase_add_test(tc, test_a_stop_answers_the_waiting_reloads);
    tcase_add_test(tc, test_reload_under_load_loses_no_request);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
