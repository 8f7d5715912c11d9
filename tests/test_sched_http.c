/* test_sched_http.c - the scheduler seen over HTTP: merging is exact, admission refuses with 503
 * and Retry-After, deadlines expire queued requests uncomputed, a client that leaves is dropped,
 * a burst gets exactly one answer per request; and the request id, traceparent and access line.
 *
 * Each test starts its own server in-process (srv_start on 127.0.0.1, port 0) with one compute
 * thread, and builds the queue state it needs with the scheduler frozen (srv_pause_compute):
 * while paused nothing is computed, so what a test queued stays queued however slow or loaded
 * the machine, while admission, deadlines and cancellation act as usual. A test polls /metrics
 * (rnnserve_queue_requests and the counters) to know that a request is queued, refused or ended
 * before it looks or sends the next; polls are bounded only to end a failure. No assertion is on
 * time. Admission weighs estimates (FLOPs over the scheduler's rate, its guess on a server that
 * has computed nothing yet): sizes keep each estimate about 10x clear of the bound it is tested
 * against. The server's stderr (the access log) goes to a file the tests read. */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rnnserve/config.h"
#include "rnnserve/server.h"
#include "httpc.h"
#include "testutil.h"

#define BIG "/v1/models/big/forward"
#define BIG_V2 "/v2/models/big/infer"

static double slack(void)
{
    return tu_slack(3.0, 20.0);
}

/* ---------------------------------------------------------------------------------------------
 * The server under test, its log */

static struct {
    cfg_config *cfg;
    srv *s;
    int port;
    char *tmp[4]; /* files to unlink at teardown */
    size_t n_tmp;
    char *log; /* the file stderr goes to */
    int saved_stderr;
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
    g.log = tu_write_tmp(".log", "", 0);
    ck_assert_ptr_nonnull(g.log);
    int fd = open(g.log, O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    g.saved_stderr = dup(2);
    ck_assert_int_ge(dup2(fd, 2), 0);
    close(fd);
}

static void teardown(void)
{
    srv_stop(g.s);
    cfg_free(g.cfg);
    dup2(g.saved_stderr, 2);
    close(g.saved_stderr);
    unlink(g.log);
    free(g.log);
    for (size_t i = 0; i < g.n_tmp; i++) {
        unlink(g.tmp[i]);
        free(g.tmp[i]);
    }
    memset(&g, 0, sizeof g);
}

/* The access log so far (free it). */
static char *log_text(void)
{
    size_t len;
    char *t = tu_read_file(g.log, &len);
    ck_assert_ptr_nonnull(t);
    return t;
}

/* The log line holding NEEDLE (malloc'ed, no newline), waiting for it: a request's line is
 * written just after its answer is sent. Fails after 5 s (stretched). */
static char *log_line(const char *needle)
{
    double end = tu_now_s() + 5.0 * slack();
    for (;;) {
        char *t = log_text(), *hit = strstr(t, needle);
        if (hit) {
            char *start = hit;
            while (start > t && start[-1] != '\n')
                start--;
            char *stop = strchr(hit, '\n');
            char *line = stop ? strndup(start, (size_t)(stop - start)) : strdup(start);
            free(t);
            ck_assert_ptr_nonnull(line);
            return line;
        }
        ck_assert_msg(tu_now_s() < end, "no log line with \"%s\" in:\n%s", needle, t);
        free(t);
        tu_sleep_ms(5);
    }
}

/* How many lines of the log contain NEEDLE. */
static int log_count(const char *needle)
{
    char *t = log_text();
    int n = 0;
    for (const char *p = t; (p = strstr(p, needle)); p++)
        n++;
    free(t);
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * A slow model: LSTM, input 8, hidden 256, 2 layers, deterministic weights as F32 safetensors */

#define BIG_I 8
#define BIG_H 256
#define BIG_L 2

static void put_tensor(json_t *hdr, float *data, size_t *at, const char *name, int64_t rows,
                       int64_t cols, uint32_t *seed)
{
    size_t n = (size_t)rows * (size_t)(cols ? cols : 1);
    const float k = 1.0f / sqrtf((float)BIG_H);
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

/* The big model's "models" entry (its weights written to a temporary file). */
static json_t *big_model(void)
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
    for (size_t i = 0; i < total; i++) {
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
    return json_pack("{s:s,s:s,s:i,s:i,s:i,s:s}", "name", "big", "type", "lstm", "input_size",
                     BIG_I, "hidden_size", BIG_H, "num_layers", BIG_L, "weights", path);
}

/* Starts the server with SERVER_JSON as its server section (one compute thread added) and the
 * big model. */
static void serve(const char *server_json)
{
    json_error_t jerr;
    json_t *server = json_loads(server_json, 0, &jerr);
    ck_assert_msg(server != NULL, "server json: %s", jerr.text);
    json_object_set_new(server, "threads", json_integer(1));
    json_t *root = json_pack("{s:o,s:[o]}", "server", server, "models", big_model());
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    char *path = tu_write_tmp(".json", text, strlen(text));
    free(text);
    keep_tmp(path);
    char err[1024];
    ck_assert_msg(cfg_load_file(path, &g.cfg, err, sizeof err) == 0, "%s", err);
    free(g.cfg->server.host);
    g.cfg->server.host = strdup("127.0.0.1");
    g.cfg->server.port = 0;
    ck_assert_msg(srv_start(g.cfg, &g.s, err, sizeof err) == 0, "srv_start: %s", err);
    g.port = srv_port(g.s);
}

/* The bundled sine model, config/default.json as it is. */
static void serve_default(void)
{
    char err[1024];
    ck_assert_msg(cfg_load_file("config/default.json", &g.cfg, err, sizeof err) == 0, "%s", err);
    free(g.cfg->server.host);
    g.cfg->server.host = strdup("127.0.0.1");
    g.cfg->server.port = 0;
    ck_assert_msg(srv_start(g.cfg, &g.s, err, sizeof err) == 0, "srv_start: %s", err);
    g.port = srv_port(g.s);
}

/* A v1 body of SEQS sequences of STEPS steps for the big model, its values set by VARIANT, and
 * EXTRA (e.g. `,"timeout_ms":1`, or "") before the closing brace. Malloc'ed. */
static char *body_v1(size_t seqs, size_t steps, int variant, const char *extra)
{
    size_t cap = 64 + strlen(extra) + seqs * (4 + steps * (BIG_I * 5 + 3));
    char *b = malloc(cap), *p = b;
    ck_assert_ptr_nonnull(b);
    p += sprintf(p, "{\"inputs\":[");
    for (size_t s = 0; s < seqs; s++) {
        p += sprintf(p, "%s[", s ? "," : "");
        for (size_t t = 0; t < steps; t++) {
            p += sprintf(p, "%s[", t ? "," : "");
            for (int i = 0; i < BIG_I; i++) {
                int v = (int)((t * 7 + (size_t)i * 3 + s * 5 + (size_t)variant * 11) % 19) - 9;
                p += sprintf(p, "%s%.1f", i ? "," : "", v / 10.0);
            }
            *p++ = ']';
        }
        *p++ = ']';
    }
    p += sprintf(p, "]%s}", extra);
    return b;
}

/* The same one sequence as a v2 request with parameters.timeout TIMEOUT_US. */
static char *body_v2(size_t steps, long timeout_us)
{
    char *b = malloc(160 + steps * BIG_I * 5), *p = b;
    ck_assert_ptr_nonnull(b);
    p += sprintf(p,
                 "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,%zu,%d],"
                 "\"data\":[",
                 steps, BIG_I);
    for (size_t t = 0; t < steps; t++)
        for (int i = 0; i < BIG_I; i++)
            p += sprintf(p, "%s%.1f", t || i ? "," : "",
                         ((int)((t * 7 + (size_t)i * 3) % 19) - 9) / 10.0);
    sprintf(p, "]}],\"parameters\":{\"timeout\":%ld}}", timeout_us);
    return b;
}

/* ---------------------------------------------------------------------------------------------
 * HTTP */

typedef httpc_resp resp;

static void post(const char *path, const char *body, resp *r)
{
    CURLcode rc = httpc(g.port, "POST", path, body, NULL, r);
    ck_assert_msg(rc == CURLE_OK, "POST %s: %s", path, curl_easy_strerror(rc));
}

static void get(const char *path, const char *const *headers, resp *r)
{
    CURLcode rc = httpc(g.port, "GET", path, NULL, headers, r);
    ck_assert_msg(rc == CURLE_OK, "GET %s: %s", path, curl_easy_strerror(rc));
}

/* A request in a thread of its own. */
typedef struct {
    const char *path;
    const char *body;
    pthread_t th;
    CURLcode rc;
    resp r;
} call;

static void *call_main(void *arg)
{
    call *c = arg;
    c->rc = httpc(g.port, "POST", c->path, c->body, NULL, &c->r);
    return NULL;
}

static void call_start(call *c, const char *path, const char *body)
{
    *c = (call){.path = path, .body = body};
    ck_assert_int_eq(pthread_create(&c->th, NULL, call_main, c), 0);
}

/* Joins C and checks that it got STATUS (0: any). */
static void call_join(call *c, long status)
{
    pthread_join(c->th, NULL);
    ck_assert_msg(c->rc == CURLE_OK, "POST %s: %s", c->path, curl_easy_strerror(c->rc));
    ck_assert_msg(!status || c->r.status == status, "POST %s: %ld %s (expected %ld)", c->path,
                  c->r.status, c->r.body, status);
}

static void assert_503_with_retry(const resp *r, const char *needle)
{
    char v[32];
    ck_assert_msg(r->status == 503, "expected 503, got %ld %s", r->status, r->body);
    ck_assert_msg(httpc_header(r, "Retry-After", v, sizeof v) && atoi(v) >= 1,
                  "503 without a Retry-After: %s", r->headers);
    ck_assert_msg(strstr(r->body, needle), "503 body does not say \"%s\": %s", needle, r->body);
}

/* ---------------------------------------------------------------------------------------------
 * Metrics */

/* The value of SERIES (name and labels as printed) in /metrics; -1 when absent. */
static double metric(const char *series)
{
    resp r;
    get("/metrics", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    double v = -1;
    size_t n = strlen(series);
    for (const char *p = r.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            v = strtod(p + n + 1, NULL);
            break;
        }
    httpc_resp_free(&r);
    return v;
}

/* Polls until SERIES is WANT; fails after TIMEOUT_S (stretched). */
static void wait_metric(const char *series, double want, double timeout_s)
{
    double end = tu_now_s() + timeout_s * slack(), v;
    while ((v = metric(series)) != want) {
        ck_assert_msg(tu_now_s() < end, "%s is %g, expected %g", series, v, want);
        tu_sleep_ms(5);
    }
}

#define RUNNING "rnnserve_running_passes"
#define QUEUED "rnnserve_queue_requests"
#define COMPUTED "rnnserve_compute_seconds_count{model=\"big\"}"

/* Freezes the compute thread (PAUSED 1) or lets it go on (0). */
static void pause_compute(int paused)
{
    srv_pause_compute(g.s, paused);
}

/* The sizes below come from this: a step of the big model is about 1.6 MFLOP, estimated at about
 * 0.08 ms by a scheduler that has not measured a pass yet (its guess, 20 FLOPs per ns). A test
 * whose admissions depend on it pauses before anything is computed, so no measurement (a loaded
 * machine's, a sanitizer's) moves those estimates. */

/* ---------------------------------------------------------------------------------------------
 * Merging */

#define N_MERGE 4

START_TEST(test_merged_requests_get_the_bytes_they_get_alone)
{
    serve("{\"max_pass_ms\": 60000, \"max_queue_ms\": 60000, \"queue_timeout_ms\": 60000}");
    char *small[N_MERGE];
    resp alone[N_MERGE];
    for (int v = 0; v < N_MERGE; v++) {
        small[v] = body_v1(1, 64, v + 1, "");
        post(BIG, small[v], &alone[v]);
        ck_assert_msg(alone[v].status == 200, "%ld %s", alone[v].status, alone[v].body);
    }
    /* an answer's metrics are recorded just after it is sent: wait for them */
    wait_metric("rnnserve_pass_requests_count", N_MERGE, 5);
    double before = metric("rnnserve_pass_requests_bucket{le=\"1\"}");
    ck_assert_double_eq(before, N_MERGE); /* all alone so far */

    /* Queued while nothing computes, then taken together in one pass. */
    call merged[N_MERGE];
    pause_compute(1);
    for (int v = 0; v < N_MERGE; v++)
        call_start(&merged[v], BIG, small[v]);
    wait_metric(QUEUED, N_MERGE, 10);
    pause_compute(0);
    for (int v = 0; v < N_MERGE; v++) {
        call_join(&merged[v], 200);
        ck_assert_msg(merged[v].r.len == alone[v].len &&
                          memcmp(merged[v].r.body, alone[v].body, alone[v].len) == 0,
                      "request %d merged:\n%s\nalone:\n%s", v, merged[v].r.body, alone[v].body);
    }
    /* one observation per request: all N in a pass of N */
    wait_metric("rnnserve_pass_requests_count", before + N_MERGE, 5);
    ck_assert_double_eq(metric("rnnserve_pass_requests_bucket{le=\"1\"}"), before);
    ck_assert_double_eq(metric("rnnserve_pass_requests_bucket{le=\"4\"}"), before + N_MERGE);
    free(log_line("pass=4x4"));
    ck_assert_int_eq(log_count("pass=4x4"), N_MERGE);

    for (int v = 0; v < N_MERGE; v++) {
        httpc_resp_free(&alone[v]);
        httpc_resp_free(&merged[v].r);
        free(small[v]);
    }
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Admission */

/* Estimates, at the unmeasured rate: FIRST and SHORT 128 steps, ~10 ms each, ten times a 1 ms
 * deadline, and together a tenth of max_queue_ms; HUGE 32768 steps, ~2.6 s, ten times it. */
#define ADMISSION_MAX_QUEUE_MS "250"
#define ADMISSION_STEPS 128
#define ADMISSION_HUGE_STEPS 32768

START_TEST(test_admission_refuses_a_full_queue_and_a_short_deadline_at_once)
{
    serve("{\"max_queue_ms\": " ADMISSION_MAX_QUEUE_MS ", \"queue_timeout_ms\": 60000}");
    char *first_body = body_v1(1, ADMISSION_STEPS, 0, "");
    char *short_v1 = body_v1(1, ADMISSION_STEPS, 2, ",\"timeout_ms\":1");
    char *short_v2 = body_v2(ADMISSION_STEPS, 1);
    char *huge_body = body_v1(1, ADMISSION_HUGE_STEPS, 1, "");
    call first;
    pause_compute(1);
    call_start(&first, BIG, first_body);
    wait_metric(QUEUED, 1, 10);

    /* The queued request's estimate is ahead of a request as large as it (a later one is ordered
     * after it): a 1 ms deadline cannot be met, though the queue has room. */
    resp r;
    post(BIG, short_v1, &r);
    assert_503_with_retry(&r, "deadline");
    ck_assert_msg(strncmp(r.body, "{\"error\":", 9) == 0, "v1 error shape: %s", r.body);
    httpc_resp_free(&r);
    post(BIG_V2, short_v2, &r);
    assert_503_with_retry(&r, "deadline");
    ck_assert_msg(strncmp(r.body, "{\"error\":\"", 10) == 0, "v2 error shape: %s", r.body);
    httpc_resp_free(&r);
    free(log_line("reason=rejected"));

    /* What is queued and this one's estimate together exceed max_queue_ms: refused. */
    post(BIG, huge_body, &r);
    assert_503_with_retry(&r, "queue full");
    httpc_resp_free(&r);
    wait_metric("rnnserve_rejected_requests_total", 3, 5);
    ck_assert_double_eq(metric(QUEUED), 1); /* the refused were never queued */

    pause_compute(0);
    call_join(&first, 200);
    wait_metric("rnnserve_in_flight_requests", 1, 5); /* the scrape itself */
    ck_assert_double_eq(metric("rnnserve_requests_total{route=\"forward\",code=\"503\"}"), 2);
    ck_assert_double_eq(metric("rnnserve_requests_total{route=\"v2_infer\",code=\"503\"}"), 1);
    ck_assert_double_eq(metric("rnnserve_model_requests_total{model=\"big\",code=\"503\"}"), 3);
    httpc_resp_free(&first.r);
    free(first_body);
    free(short_v1);
    free(short_v2);
    free(huge_body);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Deadlines */

#define DEADLINE_STEPS 64

START_TEST(test_a_deadline_passing_in_the_queue_is_503_and_not_computed)
{
    serve("{\"max_pass_ms\": 60000, \"max_queue_ms\": 600000, \"queue_timeout_ms\": 600000}");
    char *first_body = body_v1(1, DEADLINE_STEPS, 2, "");
    char *after_body = body_v1(1, DEADLINE_STEPS, 3, "");
    /* The victim's estimated wait is the first's estimate (~5 ms), well within its 300 ms: it is
     * admitted, then its deadline passes while nothing is computed. The deadline is stretched for
     * slow builds only so that decoding it cannot eat it before admission. */
    char extra[64];
    snprintf(extra, sizeof extra, ",\"timeout_ms\":%d", (int)(300 * slack()));
    char *victim_body = body_v1(10, DEADLINE_STEPS, 1, extra);
    double steps_total = metric("rnnserve_steps_total");
    call first, victim, after;
    pause_compute(1);
    call_start(&first, BIG, first_body);
    wait_metric(QUEUED, 1, 10);
    call_start(&victim, BIG, victim_body);
    wait_metric(QUEUED, 2, 10);
    call_start(&after, BIG, after_body);
    wait_metric(QUEUED, 3, 10);

    /* Expired by the timer while paused: answered at once, the others still queued. */
    wait_metric("rnnserve_expired_requests_total", 1, 10);
    call_join(&victim, 0);
    assert_503_with_retry(&victim.r, "deadline");
    char *line = log_line("reason=expired");
    ck_assert_msg(strstr(line, "status=503"), "%s", line);
    free(line);
    ck_assert_double_eq(metric(QUEUED), 2);
    ck_assert_double_eq(metric("rnnserve_rejected_requests_total"), 0);

    /* The first and the one after it were computed, the victim not. */
    pause_compute(0);
    call_join(&first, 200);
    call_join(&after, 200);
    wait_metric(QUEUED, 0, 10);
    wait_metric(RUNNING, 0, 10);
    wait_metric("rnnserve_in_flight_requests", 1, 5);
    wait_metric(COMPUTED, 2, 5);
    ck_assert_double_eq(metric("rnnserve_expired_requests_total"), 1);
    ck_assert_double_eq(metric("rnnserve_steps_total"), steps_total + 2.0 * DEADLINE_STEPS);

    httpc_resp_free(&first.r);
    httpc_resp_free(&victim.r);
    httpc_resp_free(&after.r);
    free(first_body);
    free(after_body);
    free(victim_body);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Cancellation */

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
        p += (size_t)w;
        n -= (size_t)w;
    }
}

/* Reads what arrives on FD until it closes or TIMEOUT_MS pass (into buf[cap], NUL-terminated). */
static void raw_read_all(int fd, char *buf, size_t cap, int timeout_ms)
{
    size_t n = 0;
    double end = tu_now_s() + timeout_ms / 1e3;
    struct timeval tv = {0, 20000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (n + 1 < cap && tu_now_s() < end) {
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r == 0)
            break;
        if (r > 0)
            n += (size_t)r;
    }
    buf[n] = '\0';
}

START_TEST(test_a_client_that_leaves_while_queued_is_dropped_and_counted)
{
    serve("{\"max_queue_ms\": 60000, \"queue_timeout_ms\": 60000}");
    char *body = body_v1(1, 64, 1, "");
    pause_compute(1);
    int fd = raw_connect();
    char head[256];
    snprintf(head, sizeof head,
             "POST " BIG " HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: leaver\r\n"
             "Content-Length: %zu\r\n\r\n",
             strlen(body));
    raw_send(fd, head, strlen(head));
    raw_send(fd, body, strlen(body));
    wait_metric(QUEUED, 1, 10);
    close(fd);

    /* Dropped while paused: by the timer thread, not by a pass that found it gone. */
    wait_metric("rnnserve_cancelled_requests_total", 1, 10);
    char *line = log_line("rid=leaver");
    ck_assert_msg(strstr(line, "end=cancelled"), "%s", line);
    free(line);
    ck_assert_double_eq(metric(QUEUED), 0);
    pause_compute(0);

    resp r; /* and it keeps serving: the next is the first computed */
    post(BIG, body, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    httpc_resp_free(&r);
    wait_metric(COMPUTED, 1, 5);
    ck_assert_double_eq(metric("rnnserve_steps_total"), 64);
    get("/healthz", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    httpc_resp_free(&r);
    free(body);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Nothing lost */

#define N_BURST 40

/* Half of the burst arrives while nothing is computed: 20 requests of ~10 ms estimated each are
 * ten times max_queue_ms, so some are refused and one at least (the first queued) is admitted.
 * The other half arrives while the queue is being computed, answers racing arrivals: how many of
 * those are refused depends on timing, what is checked does not. */
START_TEST(test_a_burst_gets_exactly_one_answer_per_request)
{
    /* No deadline to meet (the default's 5 s is a pass or two under valgrind): "queue full" is
     * the only refusal. */
    serve("{\"max_queue_ms\": 20, \"queue_timeout_ms\": 600000}");
    char *body = body_v1(1, 128, 0, "");
    call c[N_BURST];
    pause_compute(1);
    for (int i = 0; i < N_BURST / 2; i++)
        call_start(&c[i], BIG, body);
    double end = tu_now_s() + 10 * slack();
    while (metric(QUEUED) + metric("rnnserve_rejected_requests_total") != N_BURST / 2) {
        ck_assert_msg(tu_now_s() < end, "the first half of the burst is not all queued or refused");
        tu_sleep_ms(5);
    }
    ck_assert_double_ge(metric(QUEUED), 1);
    ck_assert_double_ge(metric("rnnserve_rejected_requests_total"), 1);
    pause_compute(0);
    for (int i = N_BURST / 2; i < N_BURST; i++)
        call_start(&c[i], BIG, body);
    int ok = 0, refused = 0;
    for (int i = 0; i < N_BURST; i++) {
        call_join(&c[i], 0);
        if (c[i].r.status == 200)
            ok++;
        else
            assert_503_with_retry(&c[i].r, "queue full"), refused++;
        httpc_resp_free(&c[i].r);
    }
    ck_assert_int_eq(ok + refused, N_BURST);
    ck_assert_int_gt(ok, 0);
    ck_assert_int_gt(refused, 0);
    wait_metric("rnnserve_in_flight_requests", 1, 5); /* the scrape itself */
    ck_assert_double_eq(metric("rnnserve_requests_total{route=\"forward\",code=\"200\"}"), ok);
    ck_assert_double_eq(metric("rnnserve_rejected_requests_total"), refused);
    ck_assert_int_eq(log_count(" path=" BIG " "), N_BURST);
    free(body);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Request ids, traceparent, the access line */

#define SINE_BODY "{\"inputs\": [[[0.0],[0.1411],[-0.2794]]]}"

static int is_hex32(const char *s)
{
    if (strlen(s) != 32)
        return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    return 1;
}

START_TEST(test_request_id_is_echoed_or_generated_on_every_answer)
{
    serve_default();
    resp r;
    char v[256];
    const char *given[] = {"X-Request-Id: client-id-42", NULL};
    CURLcode rc = httpc(g.port, "POST", "/forward", SINE_BODY, given, &r);
    ck_assert_int_eq(rc, CURLE_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(httpc_header(&r, "X-Request-Id", v, sizeof v), "client-id-42");
    httpc_resp_free(&r);
    free(log_line("rid=client-id-42"));

    /* errors carry it too, generated when none was sent, a new one each time */
    char first[64];
    get("/nowhere", NULL, &r);
    ck_assert_int_eq(r.status, 404);
    ck_assert_ptr_nonnull(httpc_header(&r, "X-Request-Id", first, sizeof first));
    ck_assert_msg(is_hex32(first), "generated id: %s", first);
    httpc_resp_free(&r);
    char needle[80];
    snprintf(needle, sizeof needle, "rid=%s", first);
    char *line = log_line(needle);
    ck_assert_msg(strstr(line, "status=404") && strstr(line, "reason=not_found"), "%s", line);
    free(line);
    get("/nowhere", NULL, &r);
    ck_assert_ptr_nonnull(httpc_header(&r, "X-Request-Id", v, sizeof v));
    ck_assert_msg(is_hex32(v) && strcmp(v, first) != 0, "second id: %s after %s", v, first);
    httpc_resp_free(&r);

    /* over 128 bytes: replaced */
    char longh[200];
    snprintf(longh, sizeof longh, "X-Request-Id: %0129d", 7);
    const char *too_long[] = {longh, NULL};
    get("/healthz", too_long, &r);
    ck_assert_ptr_nonnull(httpc_header(&r, "X-Request-Id", v, sizeof v));
    ck_assert_msg(is_hex32(v), "a 129-byte id was kept: %s", v);
    httpc_resp_free(&r);
    /* exactly 128: kept */
    snprintf(longh, sizeof longh, "X-Request-Id: %0128d", 7);
    get("/healthz", too_long, &r);
    ck_assert_ptr_nonnull(httpc_header(&r, "X-Request-Id", v, sizeof v));
    ck_assert_uint_eq(strlen(v), 128);
    httpc_resp_free(&r);
}
END_TEST

START_TEST(test_cors_exposes_the_request_id_and_the_preflight_allows_it)
{
    serve_default();
    resp r;
    char v[256];
    get("/healthz", NULL, &r); /* config/default.json allows every origin */
    ck_assert_ptr_nonnull(httpc_header(&r, "Access-Control-Allow-Origin", v, sizeof v));
    ck_assert_ptr_nonnull(httpc_header(&r, "Access-Control-Expose-Headers", v, sizeof v));
    ck_assert_msg(strstr(v, "X-Request-Id"), "exposed: %s", v);
    httpc_resp_free(&r);
    ck_assert_int_eq(httpc(g.port, "OPTIONS", "/forward", NULL, NULL, &r), CURLE_OK);
    ck_assert_int_eq(r.status, 204);
    ck_assert_ptr_nonnull(httpc_header(&r, "Access-Control-Allow-Headers", v, sizeof v));
    ck_assert_msg(strstr(v, "X-Request-Id") && strstr(v, "traceparent"), "allowed: %s", v);
    httpc_resp_free(&r);
}
END_TEST

START_TEST(test_traceparent_is_logged_when_well_formed_only)
{
    serve_default();
    static const struct {
        const char *value;
        int logged;
    } cases[] = {
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 1},
        {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-future", 1},
        {"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", 0},   /* uppercase */
        {"00-00000000000000000000000000000000-00f067aa0ba902b7-01", 0},   /* zero trace id */
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", 0},   /* zero parent id */
        {"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0},   /* version ff */
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", 0}, /* 00 has 4 fields */
        {"00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", 0},   /* misplaced dash */
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", 0},    /* short */
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", 0},   /* not hex */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char rid[64], tp[128];
        snprintf(rid, sizeof rid, "X-Request-Id: tp-case-%zu", i);
        snprintf(tp, sizeof tp, "traceparent: %s", cases[i].value);
        const char *h[] = {rid, tp, NULL};
        resp r;
        get("/healthz", h, &r);
        ck_assert_int_eq(r.status, 200);
        httpc_resp_free(&r);
        char needle[64];
        snprintf(needle, sizeof needle, "rid=tp-case-%zu", i);
        char *line = log_line(needle);
        char want[80];
        snprintf(want, sizeof want, " traceparent=%.55s", cases[i].value);
        if (cases[i].logged)
            ck_assert_msg(strstr(line, want), "case %zu not logged: %s", i, line);
        else
            ck_assert_msg(!strstr(line, "traceparent="), "case %zu logged: %s", i, line);
        free(line);
    }
}
END_TEST

START_TEST(test_the_access_line_cannot_be_forged)
{
    serve_default();
    /* A path with encoded CR/LF (libmicrohttpd decodes them), a space and a quote, and an id
     * with a space, a quote and a backslash: one line, every such byte as \xNN. */
    int fd = raw_connect();
    const char *req = "GET /x%0D%0A2026-01-01T00:00:00Z%20access%20method=GET%22 HTTP/1.1\r\n"
                      "Host: 127.0.0.1\r\nX-Request-Id: a b\"c\\d\r\nConnection: close\r\n\r\n";
    raw_send(fd, req, strlen(req));
    char buf[4096];
    raw_read_all(fd, buf, sizeof buf, (int)(5000 * slack()));
    close(fd);
    ck_assert_msg(strstr(buf, "HTTP/1.1 404"), "%s", buf);
    ck_assert_msg(strstr(buf, "X-Request-Id: a b\"c\\d\r\n"), "id not echoed: %s", buf);
    char *line = log_line("rid=a\\x20b\\x22c\\x5cd");
    ck_assert_msg(strstr(line, " path=/x\\x0d\\x0a2026-01-01T00:00:00Z\\x20access\\x20method=GET"
                               "\\x22 "),
                  "%s", line);
    ck_assert_msg(strstr(line, "reason=not_found"), "%s", line);
    free(line);
    ck_assert_int_eq(log_count("access method="), 1);
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

static Suite *sched_http_suite(void)
{
    Suite *s = suite_create("sched_http");
    /* Queue states built with the compute thread paused: nothing depends on how fast the passes
     * or the client are, so these run under valgrind too. */
    TCase *tc = tcase(s, "queue", 120);
    tcase_add_test(tc, test_merged_requests_get_the_bytes_they_get_alone);
    tcase_add_test(tc, test_admission_refuses_a_full_queue_and_a_short_deadline_at_once);
    tcase_add_test(tc, test_a_deadline_passing_in_the_queue_is_503_and_not_computed);
    tcase_add_test(tc, test_a_client_that_leaves_while_queued_is_dropped_and_counted);
    tcase_add_test(tc, test_a_burst_gets_exactly_one_answer_per_request);

    tc = tcase(s, "request_id", 30);
    tcase_add_test(tc, test_request_id_is_echoed_or_generated_on_every_answer);
    tcase_add_test(tc, test_cors_exposes_the_request_id_and_the_preflight_allows_it);
    tcase_add_test(tc, test_traceparent_is_logged_when_well_formed_only);
    tcase_add_test(tc, test_the_access_line_cannot_be_forged);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    SRunner *sr = srunner_create(sched_http_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
