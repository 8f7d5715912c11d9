/* test_playground.c - GET / and the page compiled into the binary: served whole with the right
 * headers, HEAD and wrong methods, switched off by server.playground: false.
 *
 * Each test starts the server in-process on 127.0.0.1 (port 0) with the bundled sine model and
 * talks to it through libcurl. What the page does in a browser is tests/browser/'s job. */
#include <check.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "rnnserve/config.h"
#include "rnnserve/playground.h"
#include "rnnserve/server.h"
#include "httpc.h"
#include "testutil.h"

/* ---------------------------------------------------------------------------------------------
 * The server under test */

static struct {
    cfg_config *cfg;
    srv *s;
    int port;
} g;

/* Starts the sine model with SERVER_JSON as the config's server section. */
static void serve(const char *server_json)
{
    char *weights = realpath("config/sine.safetensors", NULL);
    ck_assert_msg(weights != NULL, "run from the repository root (config/sine.safetensors)");
    char text[2048];
    snprintf(text, sizeof text,
             "{\"server\": %s, \"models\": [{\"name\": \"sine\", \"type\": \"rnn\", "
             "\"input_size\": 1, \"hidden_size\": 4, \"weights\": \"%s\"}]}",
             server_json, weights);
    free(weights);
    char err[1024];
    ck_assert_msg(cfg_load_buffer(text, strlen(text), NULL, &g.cfg, err, sizeof err) == 0, "%s",
                  err);
    free(g.cfg->server.host); /* loopback, any free port, whatever the section says */
    ck_assert_ptr_nonnull(g.cfg->server.host = strdup("127.0.0.1"));
    g.cfg->server.port = 0;
    ck_assert_msg(srv_start(g.cfg, &g.s, err, sizeof err) == 0, "srv_start: %s", err);
    g.port = srv_port(g.s);
    ck_assert_int_gt(g.port, 0);
}

static void teardown(void)
{
    srv_stop(g.s);
    cfg_free(g.cfg);
    memset(&g, 0, sizeof g);
}

/* ---------------------------------------------------------------------------------------------
 * HTTP through libcurl */

typedef httpc_resp resp;

/* METHOD PATH against the server under test (a POST sends "{}"); the body and headers land in
 * *OUT. */
static void http(const char *method, const char *path, resp *out)
{
    const char *body = strcmp(method, "POST") == 0 ? "{}" : NULL;
    CURLcode rc = httpc(g.port, method, path, body, NULL, out);
    ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
}

static void resp_free(resp *r)
{
    httpc_resp_free(r);
}

/* The value of header NAME in R (static buffer), or NULL. */
static const char *header(const resp *r, const char *name)
{
    static char value[1024];
    return httpc_header(r, name, value, sizeof value);
}

/* ---------------------------------------------------------------------------------------------
 * Tests */

START_TEST(test_get_root_serves_the_page_as_html)
{
    serve("{}");
    resp r;
    http("GET", "/", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(header(&r, "Content-Type"), "text/html; charset=utf-8");
    ck_assert_uint_eq(r.len, playground_html_len);
    ck_assert_mem_eq(r.body, playground_html, playground_html_len);
    ck_assert_msg(strncmp(r.body, "<!doctype html>", 15) == 0, "%.40s", r.body);
    ck_assert_ptr_nonnull(strstr(r.body, "</html>"));
    resp_free(&r);
}
END_TEST

START_TEST(test_the_binary_carries_web_playground_html_as_it_is)
{
    /* The build embeds the file byte for byte: an edit to the page needs no edit in C. */
    size_t len;
    char *file = tu_read_file("web/playground.html", &len);
    ck_assert_ptr_nonnull(file);
    ck_assert_uint_eq(playground_html_len, len);
    ck_assert_mem_eq(playground_html, file, len);
    ck_assert_int_eq(playground_html[len], '\0');
    free(file);
}
END_TEST

START_TEST(test_the_page_loads_nothing_from_elsewhere)
{
    serve("{}");
    resp r;
    http("GET", "/", &r);
    ck_assert_int_eq(r.status, 200);
    /* No script, style sheet or font by URL, and no absolute URL at all but the SVG namespace
     * (a name, never fetched); the page reaches its own server by relative paths only. */
    const char *forbidden[] = {"<script src", "rel=\"stylesheet\"", "@import", "url(", "https:"};
    for (size_t i = 0; i < sizeof forbidden / sizeof *forbidden; i++)
        ck_assert_msg(!strstr(r.body, forbidden[i]), "the page holds %s", forbidden[i]);
    for (const char *p = r.body; (p = strstr(p, "http:")); p++)
        ck_assert_msg(strncmp(p, "http://www.w3.org/2000/svg", 26) == 0, "absolute URL: %.60s", p);
    /* And the browser is told so: only this origin, no framing. */
    const char *csp = header(&r, "Content-Security-Policy");
    ck_assert_ptr_nonnull(csp);
    ck_assert_ptr_nonnull(strstr(csp, "default-src 'none'"));
    ck_assert_ptr_nonnull(strstr(csp, "connect-src 'self'"));
    ck_assert_ptr_nonnull(strstr(csp, "frame-ancestors 'none'"));
    ck_assert_str_eq(header(&r, "X-Content-Type-Options"), "nosniff");
    resp_free(&r);
}
END_TEST

START_TEST(test_the_page_says_why_outputs_grow_and_streams_generation)
{
    /* What a reader of the page must find, whatever the browser test draws: the one sentence on
     * why outputs grows with the sequence and hidden does not, and a generate mode that reads
     * the stream itself (EventSource cannot POST a body). */
    const char *page = (const char *)playground_html;
    ck_assert_ptr_nonnull(strstr(page, "<strong>outputs</strong> grows with the sequence because"));
    ck_assert_ptr_nonnull(strstr(page, "never by the length."));
    ck_assert_ptr_nonnull(strstr(page, "'/generate'"));
    ck_assert_ptr_nonnull(strstr(page, "getReader()"));
    ck_assert_ptr_nonnull(strstr(page, "text/event-stream"));
    ck_assert_ptr_null(strstr(page, "EventSource"));
    /* A 404 there is a message on the page, not a broken one. */
    ck_assert_ptr_nonnull(strstr(page, "This server cannot generate"));
}
END_TEST

START_TEST(test_query_string_does_not_change_the_route)
{
    serve("{}");
    resp r;
    http("GET", "/?model=sine", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.len, playground_html_len);
    resp_free(&r);
}
END_TEST

START_TEST(test_head_root_sends_the_headers_only)
{
    serve("{}");
    resp r;
    http("HEAD", "/", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(header(&r, "Content-Type"), "text/html; charset=utf-8");
    char want[32];
    snprintf(want, sizeof want, "%zu", playground_html_len);
    ck_assert_str_eq(header(&r, "Content-Length"), want);
    ck_assert_uint_eq(r.len, 0);
    resp_free(&r);
}
END_TEST

START_TEST(test_post_root_is_405_allowing_get)
{
    serve("{}");
    resp r;
    http("POST", "/", &r);
    ck_assert_int_eq(r.status, 405);
    ck_assert_str_eq(header(&r, "Allow"), "GET, HEAD, OPTIONS");
    ck_assert_ptr_nonnull(strstr(r.body, "\"status\":405"));
    resp_free(&r);
    http("DELETE", "/", &r);
    ck_assert_int_eq(r.status, 405);
    resp_free(&r);
}
END_TEST

START_TEST(test_playground_false_makes_root_a_404)
{
    serve("{\"playground\": false}");
    resp r;
    http("GET", "/", &r);
    ck_assert_int_eq(r.status, 404);
    ck_assert_str_eq(header(&r, "Content-Type"), "application/json");
    ck_assert_msg(strstr(r.body, "\"status\":404") && strstr(r.body, "no route /"), "%s", r.body);
    ck_assert(!strstr(r.body, "<html"));
    resp_free(&r);
    /* Only the page is gone. */
    http("GET", "/healthz", &r);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    http("GET", "/v1/models", &r);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
}
END_TEST

START_TEST(test_page_requests_are_counted_under_route_playground)
{
    serve("{\"playground\": true}");
    resp r;
    http("GET", "/", &r);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    /* The completion callback counts a request after its answer is sent: poll briefly. */
    const char *want = "rnnserve_requests_total{route=\"playground\",code=\"200\"} 1";
    int found = 0;
    for (int i = 0; i < 200 && !found; i++) {
        http("GET", "/metrics", &r);
        found = strstr(r.body, want) != NULL;
        resp_free(&r);
        if (!found)
            usleep(10000);
    }
    ck_assert_msg(found, "no \"%s\" in /metrics", want);
}
END_TEST

static Suite *playground_suite(void)
{
    Suite *s = suite_create("playground");
    TCase *tc = tcase_create("root");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_get_root_serves_the_page_as_html);
    tcase_add_test(tc, test_the_binary_carries_web_playground_html_as_it_is);
    tcase_add_test(tc, test_the_page_loads_nothing_from_elsewhere);
    tcase_add_test(tc, test_the_page_says_why_outputs_grow_and_streams_generation);
    tcase_add_test(tc, test_query_string_does_not_change_the_route);
    tcase_add_test(tc, test_head_root_sends_the_headers_only);
    tcase_add_test(tc, test_post_root_is_405_allowing_get);
    tcase_add_test(tc, test_playground_false_makes_root_a_404);
    tcase_add_test(tc, test_page_requests_are_counted_under_route_playground);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    SRunner *sr = srunner_create(playground_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
