/* test_apikeys.c - server.api_keys: the model and forward routes need "Authorization: Bearer
 * KEY" (401 with WWW-Authenticate and the contract's error otherwise), while probes, metrics,
 * CORS preflights and the API description stay open; keys can come from a file. */
#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rnnserve/config.h"
#include "rnnserve/server.h"
#include "httpc.h"
#include "testutil.h"

typedef struct {
    char *data;
    size_t len;
    int challenged; /* a WWW-Authenticate: Bearer header came back */
} sink;

/* METHOD PATH with "Authorization: Bearer KEY" (none when KEY is NULL); the body lands in *OUT
 * (free out->data), and whether a WWW-Authenticate: Bearer challenge came back. */
static long http(int port, const char *method, const char *path, const char *body, const char *key,
                 sink *out)
{
    char auth[4200], v[256]; /* a key may be 4,096 bytes long */
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key ? key : "");
    const char *const headers[] = {key ? auth : NULL, NULL};
    httpc_resp r;
    ck_assert_int_eq(httpc(port, method, path, body, headers, &r), CURLE_OK);
    const char *challenge = httpc_header(&r, "WWW-Authenticate", v, sizeof v);
    out->challenged = challenge && strncmp(challenge, "Bearer", 6) == 0;
    out->data = r.body;
    out->len = r.len;
    free(r.headers);
    return r.status;
}

static const char *const FWD = "{\"inputs\": [[0.0, 0.1411, -0.2794]]}";
static const char *const V2 = "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 1, 1], "
                              "\"datatype\": \"FP32\", \"data\": [0.5]}]}";

static srv *start(const char *server_json, cfg_config **cfg)
{
    char text[1024], err[1024];
    srv *s;
    snprintf(text, sizeof text,
             "{\"server\": %s, \"models\": [{\"name\": \"sine\", \"type\": \"rnn\", "
             "\"input_size\": 1, \"hidden_size\": 4, \"weights\": \"sine.safetensors\"}]}",
             server_json);
    ck_assert_msg(cfg_load_buffer(text, strlen(text), "config", cfg, err, sizeof err) == 0, "%s",
                  err);
    ck_assert_msg(srv_start(*cfg, &s, err, sizeof err) == 0, "%s", err);
    return s;
}

START_TEST(test_model_routes_need_a_known_key)
{
    cfg_config *cfg;
    srv *s = start("{\"host\": \"127.0.0.1\", \"port\": 0, \"api_keys\": [\"key-one\", "
                   "\"key-two-longer\"]}",
                   &cfg);
    int port = srv_port(s);
    struct {
        const char *method, *path, *body;
    } guarded[] = {{"POST", "/forward", FWD},
                   {"POST", "/v1/models/sine/forward", FWD},
                   {"GET", "/v1/models", NULL},
                   {"GET", "/v1/models/sine", NULL},
                   {"GET", "/v2/models/sine", NULL},
                   {"GET", "/v2/models/sine/ready", NULL},
                   {"POST", "/v2/models/sine/infer", V2}};
    for (size_t i = 0; i < sizeof guarded / sizeof *guarded; i++) {
        const char *keys[] = {NULL, "wrong", "key-one-", "key-on", ""};
        for (size_t k = 0; k < 5; k++) {
            sink out = {0};
            long st =
                http(port, guarded[i].method, guarded[i].path, guarded[i].body, keys[k], &out);
            ck_assert_msg(st == 401, "%s %s key %s: %ld", guarded[i].method, guarded[i].path,
                          keys[k] ? keys[k] : "(none)", st);
            ck_assert(out.challenged);
            /* the native error body on v1, the protocol's on v2 */
            if (strncmp(guarded[i].path, "/v2", 3) == 0)
                ck_assert_ptr_nonnull(strstr(out.data, "{\"error\":\"missing or unknown API key"));
            else
                ck_assert_ptr_nonnull(strstr(out.data, "{\"error\":{\"status\":401"));
            free(out.data);
        }
        const char *good[] = {"key-one", "key-two-longer"};
        for (size_t k = 0; k < 2; k++) {
            sink out = {0};
            long st =
                http(port, guarded[i].method, guarded[i].path, guarded[i].body, good[k], &out);
            ck_assert_msg(st == 200, "%s %s with %s: %ld %s", guarded[i].method, guarded[i].path,
                          good[k], st, out.data);
            free(out.data);
        }
    }
    srv_stop(s);
    cfg_free(cfg);
}
END_TEST

START_TEST(test_probes_metrics_and_preflight_stay_open)
{
    cfg_config *cfg;
    srv *s = start("{\"host\": \"127.0.0.1\", \"port\": 0, \"api_keys\": [\"key-one\"]}", &cfg);
    int port = srv_port(s);
    const char *open[][2] = {
        {"GET", "/healthz"},      {"GET", "/readyz"},         {"GET", "/metrics"},
        {"GET", "/openapi.json"}, {"GET", "/v2/health/live"}, {"GET", "/v2/health/ready"},
        {"GET", "/v2"},           {"OPTIONS", "/forward"},    {"OPTIONS", "/v1/models"}};
    for (size_t i = 0; i < sizeof open / sizeof *open; i++) {
        sink out = {0};
        long st = http(port, open[i][0], open[i][1], NULL, NULL, &out);
        ck_assert_msg(st == 200 || st == 204, "%s %s: %ld", open[i][0], open[i][1], st);
        free(out.data);
    }
    srv_stop(s);
    cfg_free(cfg);
}
END_TEST

START_TEST(test_keys_can_come_from_a_file)
{
    const char *keys = "# rnnserve keys\n\n  file-key-1  \nfile-key-2\r\n";
    char *path = tu_write_tmp(".keys", keys, strlen(keys)), server[512];
    snprintf(server, sizeof server, "{\"host\": \"127.0.0.1\", \"port\": 0, \"api_keys\": \"%s\"}",
             path);
    cfg_config *cfg;
    srv *s = start(server, &cfg);
    ck_assert_uint_eq(cfg->server.n_api_keys, 2);
    ck_assert_str_eq(cfg->server.api_keys[0], "file-key-1");
    ck_assert_str_eq(cfg->server.api_keys[1], "file-key-2");
    sink out = {0};
    ck_assert_int_eq(http(srv_port(s), "POST", "/forward", FWD, "file-key-2", &out), 200);
    free(out.data);
    srv_stop(s);
    cfg_free(cfg);
    unlink(path);
    free(path);
}
END_TEST

/* A key of 4,096 characters (the longest allowed) is one key, never cut at a line buffer's size:
 * the full key opens the routes, a prefix or the tail does not. */
START_TEST(test_a_key_of_the_longest_length_is_one_key)
{
    char key[4097], text[4200];
    for (size_t i = 0; i < 4096; i++)
        key[i] = (char)('a' + i % 26);
    key[4096] = '\0';
    snprintf(text, sizeof text, "# one long key\n%s\n", key);
    char *path = tu_write_tmp(".keys", text, strlen(text)), server[512];
    snprintf(server, sizeof server, "{\"host\": \"127.0.0.1\", \"port\": 0, \"api_keys\": \"%s\"}",
             path);
    cfg_config *cfg;
    srv *s = start(server, &cfg);
    ck_assert_uint_eq(cfg->server.n_api_keys, 1);
    ck_assert_str_eq(cfg->server.api_keys[0], key);
    sink out = {0};
    ck_assert_int_eq(http(srv_port(s), "POST", "/forward", FWD, key, &out), 200);
    free(out.data);
    out = (sink){0};
    ck_assert_int_eq(http(srv_port(s), "POST", "/forward", FWD, key + 4095, &out), 401);
    free(out.data);
    key[4095] = '\0';
    out = (sink){0};
    ck_assert_int_eq(http(srv_port(s), "POST", "/forward", FWD, key, &out), 401);
    free(out.data);
    srv_stop(s);
    cfg_free(cfg);
    unlink(path);
    free(path);
}
END_TEST

/* A longer key is a config error naming the file and the line, not several keys. */
START_TEST(test_an_over_long_key_is_refused_with_its_line)
{
    char text[4300], err[1024], conf[512];
    size_t n = (size_t)snprintf(text, sizeof text, "short-key-one\n\n");
    memset(text + n, 'k', 4097);
    snprintf(text + n + 4097, sizeof text - n - 4097, "\nshort-key-two\n");
    char *path = tu_write_tmp(".keys", text, strlen(text));
    snprintf(conf, sizeof conf, "{\"server\": {\"api_keys\": \"%s\"}, \"models\": []}", path);
    cfg_config *cfg;
    ck_assert_int_eq(cfg_load_buffer(conf, strlen(conf), "config", &cfg, err, sizeof err), -1);
    ck_assert_msg(strstr(err, path) && strstr(err, "line 3") && strstr(err, "4097 bytes"), "%s",
                  err);
    unlink(path);
    free(path);
}
END_TEST

/* A FIFO as the key file fails at once (it would wait for a writer) and says what it is. */
START_TEST(test_a_fifo_as_key_file_fails_at_once)
{
    char path[256], err[1024], conf[512];
    snprintf(path, sizeof path, "%s/rnnserve-keys-fifo-%d",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    unlink(path);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    snprintf(conf, sizeof conf, "{\"server\": {\"api_keys\": \"%s\"}, \"models\": []}", path);
    cfg_config *cfg;
    double t0 = tu_now_s();
    int rc = cfg_load_buffer(conf, strlen(conf), "config", &cfg, err, sizeof err);
    double spent = tu_now_s() - t0;
    unlink(path);
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(strstr(err, path) && strstr(err, "a FIFO"), "%s", err);
    ck_assert_double_lt(spent, 1.0);
}
END_TEST

START_TEST(test_bad_key_settings_are_config_errors)
{
    char err[1024];
    cfg_config *cfg;
    const char *bad[][2] = {
        {"{\"server\": {\"api_keys\": []}, \"models\": []}", "server.api_keys"},
        {"{\"server\": {\"api_keys\": [\"\"]}, \"models\": []}", "empty API key"},
        {"{\"server\": {\"api_keys\": \"/nonexistent/keys\"}, \"models\": []}",
         "/nonexistent/keys"},
        {"{\"server\": {\"api_keys\": 5}, \"models\": []}", "server.api_keys"},
        {"{\"server\": {\"admin_token\": \"short\"}, \"models\": []}", "server.admin_token"},
        {"{\"server\": {\"tls_cert\": \"c.pem\"}, \"models\": []}", "tls_key"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_int_eq(
            cfg_load_buffer(bad[i][0], strlen(bad[i][0]), "config", &cfg, err, sizeof err), -1);
        ck_assert_msg(strstr(err, bad[i][1]) != NULL, "%s: %s", bad[i][0], err);
    }
}
END_TEST

START_TEST(test_unreadable_tls_files_fail_at_start_naming_them)
{
    char err[1024];
    cfg_config *cfg;
    srv *s;
    const char *text = "{\"server\": {\"host\": \"127.0.0.1\", \"port\": 0, \"tls_cert\": "
                       "\"/nonexistent/cert.pem\", \"tls_key\": \"/nonexistent/key.pem\"}, "
                       "\"models\": [{\"name\": \"sine\", \"type\": \"rnn\", \"input_size\": 1, "
                       "\"hidden_size\": 4, \"weights\": \"sine.safetensors\"}]}";
    ck_assert(cfg_load_buffer(text, strlen(text), "config", &cfg, err, sizeof err) == 0);
    ck_assert_int_eq(srv_start(cfg, &s, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "/nonexistent/cert.pem") != NULL, "%s", err);
    cfg_free(cfg);
}
END_TEST

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    Suite *s = suite_create("apikeys");
    TCase *tc = tcase_create("apikeys");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_model_routes_need_a_known_key);
    tcase_add_test(tc, test_probes_metrics_and_preflight_stay_open);
    tcase_add_test(tc, test_keys_can_come_from_a_file);
    tcase_add_test(tc, test_a_key_of_the_longest_length_is_one_key);
    tcase_add_test(tc, test_an_over_long_key_is_refused_with_its_line);
    tcase_add_test(tc, test_a_fifo_as_key_file_fails_at_once);
    tcase_add_test(tc, test_bad_key_settings_are_config_errors);
    tcase_add_test(tc, test_unreadable_tls_files_fail_at_start_naming_them);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
