/* test_openapi.c - docs/openapi.json describes exactly what the server serves.
 *
 * Every documented operation is answered (never 404/405), every other method on a documented
 * path is a 405, paths near the documented ones are 404, GET /openapi.json serves the committed
 * file byte for byte, and every request example in the document is accepted by the server. The
 * routes are the server's own table (routes.h): every row is documented with exactly its
 * methods, and nothing else is. */
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnserve/config.h"
#include "rnnserve/routes.h"
#include "rnnserve/server.h"
#include "httpc.h"
#include "testutil.h"

typedef struct {
    char *data;
    size_t len;
} sink;

/* METHOD PATH; the body lands in *OUT (free out->data). */
static long http(int port, const char *method, const char *path, const char *body, sink *out)
{
    httpc_resp r;
    ck_assert_int_eq(httpc(port, method, path, body, NULL, &r), CURLE_OK);
    out->data = r.body;
    out->len = r.len;
    free(r.headers);
    return r.status;
}

static cfg_config *cfg;
static srv *server;
static int port;
static json_t *doc;
static char session_id[40]; /* a session of sine, made at setup: {id} in the document's paths */

static void setup(void)
{
    char err[1024];
    const char *text = "{\"server\": {\"host\": \"127.0.0.1\", \"port\": 0, \"admin_token\": "
                       "\"0123456789abcdef-openapi\"}, \"models\": [{\"name\": \"sine\", \"type\": "
                       "\"rnn\", \"input_size\": 1, \"hidden_size\": 4, \"weights\": "
                       "\"sine.safetensors\"}]}";
    ck_assert_msg(cfg_load_buffer(text, strlen(text), "config", &cfg, err, sizeof err) == 0, "%s",
                  err);
    ck_assert_msg(srv_start(cfg, &server, err, sizeof err) == 0, "%s", err);
    port = srv_port(server);
    sink made = {0};
    ck_assert_int_eq(http(port, "POST", "/v1/models/sine/sessions", NULL, &made), 201);
    json_t *sess = json_loads(made.data, 0, NULL);
    snprintf(session_id, sizeof session_id, "%s",
             json_string_value(json_object_get(sess, "session")));
    json_decref(sess);
    free(made.data);
    json_error_t jerr;
    doc = json_load_file("docs/openapi.json", 0, &jerr);
    ck_assert_msg(doc != NULL, "docs/openapi.json: %s", jerr.text);
}

static void teardown(void)
{
    json_decref(doc);
    srv_stop(server);
    cfg_free(cfg);
}

/* A documented path with its parameter filled in: {name} -> sine, {id} -> the setup's session. */
static void concrete(const char *tmpl, char *out, size_t len)
{
    const char *p = strstr(tmpl, "{name}"), *q = strstr(tmpl, "{id}");
    if (p)
        snprintf(out, len, "%.*ssine%s", (int)(p - tmpl), tmpl, p + 6);
    else if (q)
        snprintf(out, len, "%.*s%s%s", (int)(q - tmpl), tmpl, session_id, q + 4);
    else
        snprintf(out, len, "%s", tmpl);
}

START_TEST(test_document_is_served_byte_for_byte)
{
    size_t len;
    char *file = tu_read_file("docs/openapi.json", &len);
    sink out = {0};
    ck_assert_int_eq(http(port, "GET", "/openapi.json", NULL, &out), 200);
    ck_assert_uint_eq(out.len, len);
    ck_assert_mem_eq(out.data, file, len);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    free(out.data);
    free(file);
}
END_TEST

START_TEST(test_every_documented_operation_is_answered)
{
    const char *tmpl;
    json_t *item;
    size_t ops = 0;
    json_object_foreach(json_object_get(doc, "paths"), tmpl, item)
    {
        char path[256];
        concrete(tmpl, path, sizeof path);
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op)
        {
            char upper[16];
            size_t i = 0;
            for (; method[i] && i < sizeof upper - 1; i++)
                upper[i] = (char)(method[i] - 'a' + 'A');
            upper[i] = '\0';
            sink out = {0};
            long st = http(port, upper, path, strcmp(upper, "POST") == 0 ? "{}" : NULL, &out);
            ck_assert_msg(st != 404 && st != 405, "%s %s: %ld %s", upper, path, st,
                          out.data ? out.data : "");
            free(out.data);
            ops++;
        }
    }
    ck_assert_uint_ge(ops, 16);
}
END_TEST

START_TEST(test_document_lists_exactly_the_route_table)
{
    json_t *paths = json_object_get(doc, "paths");
    ck_assert_uint_ge(routes_count(), 16);
    for (size_t i = 0; i < routes_count(); i++) {
        const routes_entry *e = routes_at(i);
        json_t *item = json_object_get(paths, e->pattern);
        ck_assert_msg(item != NULL, "route %s is not in docs/openapi.json", e->pattern);
        ck_assert_msg(!json_object_get(item, "get") == !(e->methods & ROUTE_GET),
                      "%s: GET in the document and in the route table differ", e->pattern);
        ck_assert_msg(!json_object_get(item, "post") == !(e->methods & ROUTE_POST),
                      "%s: POST in the document and in the route table differ", e->pattern);
        ck_assert_msg(!json_object_get(item, "delete") == !(e->methods & ROUTE_DELETE),
                      "%s: DELETE in the document and in the route table differ", e->pattern);
        ck_assert_msg(e->label && *e->label, "%s has no metrics label", e->pattern);
    }
    const char *tmpl;
    json_t *item;
    json_object_foreach(paths, tmpl, item)
    {
        size_t i = 0;
        while (i < routes_count() && strcmp(routes_at(i)->pattern, tmpl) != 0)
            i++;
        ck_assert_msg(i < routes_count(), "docs/openapi.json documents %s, no route serves it",
                      tmpl);
    }
    ck_assert_ptr_null(routes_at(routes_count()));
}
END_TEST

START_TEST(test_undocumented_methods_are_405)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH"};
    const char *tmpl;
    json_t *item;
    json_object_foreach(json_object_get(doc, "paths"), tmpl, item)
    {
        char path[256];
        concrete(tmpl, path, sizeof path);
        for (size_t m = 0; m < 5; m++) {
            char lower[16];
            size_t i = 0;
            for (; methods[m][i]; i++)
                lower[i] = (char)(methods[m][i] - 'A' + 'a');
            lower[i] = '\0';
            if (json_object_get(item, lower))
                continue;
            sink out = {0};
            long st = http(port, methods[m], path, NULL, &out);
            ck_assert_msg(st == 405, "%s %s: %ld (not documented, so it must be 405)", methods[m],
                          path, st);
            free(out.data);
        }
    }
}
END_TEST

START_TEST(test_paths_not_in_the_document_are_404)
{
    static const char *const paths[] = {"/v1",
                                        "/v1/admin",
                                        "/v1/models/sine/forward/more",
                                        "/v1/models/sine/backward",
                                        "/v2/models",
                                        "/v2/models/sine/other",
                                        "/v2/health",
                                        "/forwardx",
                                        "/healthz/x",
                                        "/metrics2",
                                        "/openapi.yaml",
                                        "/index.html"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        ck_assert_ptr_null(json_object_get(json_object_get(doc, "paths"), paths[i]));
        sink out = {0};
        long st = http(port, "GET", paths[i], NULL, &out);
        ck_assert_msg(st == 404, "GET %s: %ld", paths[i], st);
        free(out.data);
    }
}
END_TEST

/* Same structure, numbers within 1e-5 (the document shows rounded float32 values). */
static int same(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return fabs(json_number_value(a) - json_number_value(b)) <= 1e-5;
    if (json_typeof(a) != json_typeof(b))
        return 0;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    if (json_is_object(a)) {
        const char *k;
        json_t *v;
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_foreach(a, k, v) if (!same(v, json_object_get(b, k))) return 0;
        return 1;
    }
    return json_equal(a, b);
}

/* Follows object keys (NULL-terminated); NULL when one is missing. */
static json_t *jpath(json_t *v, ...)
{
    va_list ap;
    va_start(ap, v);
    for (const char *k = va_arg(ap, const char *); v && k; k = va_arg(ap, const char *))
        v = json_object_get(v, k);
    va_end(ap);
    return v;
}

START_TEST(test_request_examples_are_accepted)
{
    const char *tmpl;
    json_t *item;
    size_t examples = 0;
    json_object_foreach(json_object_get(doc, "paths"), tmpl, item)
    {
        json_t *ex =
            jpath(item, "post", "requestBody", "content", "application/json", "example", NULL);
        if (!ex)
            continue;
        char path[256], *body = json_dumps(ex, JSON_COMPACT);
        concrete(tmpl, path, sizeof path);
        sink out = {0};
        long st = http(port, "POST", path, body, &out);
        ck_assert_msg(st == 200, "POST %s with the document's example: %ld %s", path, st,
                      out.data ? out.data : "");
        /* Where the document shows the answer too, the server gives those numbers. */
        json_t *shown =
            jpath(item, "post", "responses", "200", "content", "application/json", "example", NULL);
        if (shown) {
            json_t *got = json_loads(out.data, 0, NULL);
            ck_assert_msg(same(shown, got),
                          "%s: the document's example answer differs from the "
                          "server's: %s",
                          path, out.data);
            json_decref(got);
        }
        free(out.data);
        free(body);
        examples++;
    }
    ck_assert_uint_ge(examples, 3);
}
END_TEST

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    Suite *s = suite_create("openapi");
    TCase *tc = tcase_create("document");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_document_is_served_byte_for_byte);
    tcase_add_test(tc, test_every_documented_operation_is_answered);
    tcase_add_test(tc, test_document_lists_exactly_the_route_table);
    tcase_add_test(tc, test_undocumented_methods_are_405);
    tcase_add_test(tc, test_paths_not_in_the_document_are_404);
    tcase_add_test(tc, test_request_examples_are_accepted);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
