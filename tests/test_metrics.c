/* test_metrics.c - the metrics registry: counts, histogram buckets, in-flight gauge, exact totals
 * from many threads, label escaping, and a line-by-line check of the rendered text format.
 *
 * Every test reads its numbers back from metrics_render's text, as a scraper would. */
#include <check.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rnnserve/metrics.h"

static const char *const ROUTES[] = {"forward", "models", "healthz"};
#define N_ROUTES 3

static char *render(const metrics *m)
{
    size_t len = 0;
    char *text = metrics_render(m, NULL, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(len, strlen(text));
    return text;
}

/* The line of TEXT that starts with SERIES and a space (e.g. `x_total{a="b"}`), or NULL. */
static const char *find_series(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text; *line;) {
        if (!strncmp(line, series, n) && line[n] == ' ')
            return line + n + 1;
        const char *nl = strchr(line, '\n');
        if (!nl)
            break;
        line = nl + 1;
    }
    return NULL;
}

/* The value of SERIES in TEXT; fails the test when the series is missing. */
static double value_of(const char *text, const char *series)
{
    const char *v = find_series(text, series);
    ck_assert_msg(v != NULL, "no series %s in:\n%s", series, text);
    return strtod(v, NULL);
}

/* An exact decimal number of seconds ("12.0015") as nanoseconds. */
static uint64_t ns_of(const char *text, const char *series)
{
    const char *v = find_series(text, series);
    ck_assert_msg(v != NULL, "no series %s", series);
    char *end;
    uint64_t ns = strtoull(v, &end, 10) * 1000000000u;
    if (*end == '.') {
        uint64_t scale = 100000000u;
        for (end++; *end >= '0' && *end <= '9'; end++, scale /= 10)
            ns += (uint64_t)(*end - '0') * scale;
    }
    ck_assert_msg(*end == '\n', "%s: not an exact decimal", series);
    return ns;
}

static double requests(const char *text, const char *route, const char *code)
{
    char series[256];
    snprintf(series, sizeof series, "rnnserve_requests_total{route=\"%s\",code=\"%s\"}", route,
             code);
    return value_of(text, series);
}

static double bucket(const char *text, const char *route, const char *le)
{
    char series[256];
    snprintf(series, sizeof series,
             "rnnserve_request_duration_seconds_bucket{route=\"%s\",le=\"%s\"}", route, le);
    return value_of(text, series);
}

static double hist_count(const char *text, const char *route)
{
    char series[256];
    snprintf(series, sizeof series, "rnnserve_request_duration_seconds_count{route=\"%s\"}", route);
    return value_of(text, series);
}

static uint64_t hist_sum_ns(const char *text, const char *route)
{
    char series[256];
    snprintf(series, sizeof series, "rnnserve_request_duration_seconds_sum{route=\"%s\"}", route);
    return ns_of(text, series);
}

/* ---------------------------------------------------------------------------------------------
 * a checker for the text exposition format 0.0.4, as strict as our own output allows */

static const char *LE[] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
                           "0.01",   "0.025",   "0.05",   "0.1",   "0.25",   "0.5",
                           "1",      "2.5",     "5",      "10",    "+Inf"};
#define N_LE (sizeof LE / sizeof LE[0])

static int is_name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* Length of the metric or label name at S (0 when none). */
static size_t name_len(const char *s)
{
    size_t n = 0;
    while (is_name_char(s[n], n == 0))
        n++;
    return n;
}

/* Length of a sample value at S: a decimal float, +Inf, -Inf or NaN (0 when none). */
static size_t value_len(const char *s)
{
    if (!strncmp(s, "+Inf", 4) || !strncmp(s, "-Inf", 4))
        return 4;
    if (!strncmp(s, "NaN", 3))
        return 3;
    size_t n = (*s == '-' || *s == '+'), d = 0;
    for (; s[n] >= '0' && s[n] <= '9'; n++)
        d++;
    if (s[n] == '.')
        for (n++; s[n] >= '0' && s[n] <= '9'; n++)
            d++;
    if (!d)
        return 0;
    if (s[n] == 'e' || s[n] == 'E') {
        size_t e = n + 1 + (s[n + 1] == '-' || s[n + 1] == '+'), k = e;
        while (s[k] >= '0' && s[k] <= '9')
            k++;
        if (k == e)
            return 0;
        n = k;
    }
    return n;
}

/* Checks TEXT line by line: every line ends in \n; comments are `# HELP name text` or
 * `# TYPE name type`; each family has one HELP and one TYPE before its samples and is never
 * reopened; every sample is `name{label="value",...} value` or `name value` with escapes limited
 * to \\ \" \n, and belongs to the current family (histograms: _bucket with le, _sum, _count).
 * Returns NULL, or a message naming the first bad line (per thread, valid until the next call). */
static const char *lint(const char *text)
{
    static _Thread_local char why[512];
    char family[128] = "", type[16] = "", done[64][128];
    size_t n_done = 0;
    int help = 0, line_no = 0;
    if (!*text || text[strlen(text) - 1] != '\n')
        return "output does not end with a newline";
    for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
        line_no++;
        const char *eol = strchr(line, '\n');
#define BAD(msg)                                                                                   \
    do {                                                                                           \
        snprintf(why, sizeof why, "line %d: %s: %.*s", line_no, msg, (int)(eol - line), line);     \
        return why;                                                                                \
    } while (0)
        if (*line == '#') {
            int is_help = !strncmp(line, "# HELP ", 7), is_type = !strncmp(line, "# TYPE ", 7);
            if (!is_help && !is_type)
                BAD("comment other than HELP/TYPE");
            const char *name = line + 7;
            size_t nl = name_len(name);
            if (!nl || name[nl] != ' ' || nl >= sizeof family)
                BAD("bad family name");
            if (strlen(family) != nl || strncmp(family, name, nl)) {
                for (size_t i = 0; i < n_done; i++)
                    if (strlen(done[i]) == nl && !strncmp(done[i], name, nl))
                        BAD("family reopened");
                if (*family) {
                    if (!help || !*type)
                        BAD("previous family lacks HELP or TYPE");
                    if (n_done == 64)
                        BAD("too many families for this checker");
                    strcpy(done[n_done++], family);
                }
                memcpy(family, name, nl);
                family[nl] = '\0';
                help = 0;
                type[0] = '\0';
            }
            const char *rest = name + nl + 1;
            if (is_help) {
                if (help)
                    BAD("second HELP");
                if (rest == eol)
                    BAD("empty HELP");
                help = 1;
            } else {
                if (*type)
                    BAD("second TYPE");
                size_t tl = (size_t)(eol - rest);
                const char *types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
                for (size_t i = 0; i < 5; i++)
                    if (tl == strlen(types[i]) && !strncmp(rest, types[i], tl))
                        strcpy(type, types[i]);
                if (!*type)
                    BAD("unknown TYPE");
            }
            continue;
        }
        size_t nl = name_len(line);
        if (!nl)
            BAD("no metric name");
        if (!help || !*type)
            BAD("sample before its family's HELP and TYPE");
        size_t fl = strlen(family);
        const char *suffix = line + fl;
        int in_family = nl >= fl && !strncmp(line, family, fl);
        int is_bucket = 0;
        if (!strcmp(type, "histogram")) {
            is_bucket = in_family && nl == fl + 7 && !strncmp(suffix, "_bucket", 7);
            in_family = in_family && (is_bucket || (nl == fl + 4 && !strncmp(suffix, "_sum", 4)) ||
                                      (nl == fl + 6 && !strncmp(suffix, "_count", 6)));
        } else {
            in_family = in_family && nl == fl;
        }
        if (!in_family)
            BAD("sample outside its family");
        const char *p = line + nl;
        int has_le = 0;
        if (*p == '{') {
            p++;
            for (;;) {
                size_t ll = name_len(p);
                if (!ll || p[ll] != '=' || p[ll + 1] != '"')
                    BAD("bad label");
                has_le |= ll == 2 && !strncmp(p, "le", 2);
                for (p += ll + 2; *p != '"'; p++) {
                    if (p >= eol)
                        BAD("unterminated label value");
                    if (*p == '\\' && (p[1] == '\\' || p[1] == '"' || p[1] == 'n'))
                        p++;
                    else if (*p == '\\')
                        BAD("bad escape in label value");
                }
                p++;
                if (*p == '}')
                    break;
                if (*p != ',')
                    BAD("expected , or } after a label");
                p++;
            }
            p++;
        }
        if (is_bucket && !has_le)
            BAD("histogram bucket without le");
        if (*p != ' ')
            BAD("expected one space before the value");
        p++;
        size_t vl = value_len(p);
        if (!vl || p + vl != eol)
            BAD("bad value");
#undef BAD
    }
    if (!help || !*type)
        return "last family lacks HELP or TYPE";
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * tests */

START_TEST(test_counts_by_route_and_status)
{
    metrics *m = metrics_new(ROUTES, N_ROUTES, "version=\"0.1.0\"");
    ck_assert_ptr_nonnull(m);
    char *text = render(m);
    ck_assert_ptr_null(strstr(text, "rnnserve_requests_total{")); /* nothing answered yet */
    free(text);

    for (int i = 0; i < 3; i++)
        metrics_observe(m, 0, 200, 0.001, 0, 0);
    metrics_observe(m, 0, 422, 0.001, 0, 0);
    metrics_observe(m, 0, 503, 0.001, 0, 0);
    metrics_observe(m, 2, 200, 0.001, 0, 0);
    text = render(m);
    ck_assert_double_eq(requests(text, "forward", "200"), 3);
    ck_assert_double_eq(requests(text, "forward", "422"), 1);
    ck_assert_double_eq(requests(text, "forward", "503"), 1);
    ck_assert_double_eq(requests(text, "healthz", "200"), 1);
    ck_assert_ptr_null(
        find_series(text, "rnnserve_requests_total{route=\"forward\",code=\"404\"}"));
    ck_assert_ptr_null(strstr(text, "rnnserve_requests_total{route=\"models\""));
    /* Histograms have stable series: every route, even without requests. */
    ck_assert_double_eq(hist_count(text, "models"), 0);
    ck_assert_double_eq(bucket(text, "models", "+Inf"), 0);
    ck_assert_double_eq(hist_count(text, "forward"), 5);
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(test_every_fixed_status_and_the_others)
{
    metrics *m = metrics_new(ROUTES, N_ROUTES, "");
    ck_assert_ptr_nonnull(m);
    const int fixed[] = {200, 204, 400, 401, 404, 405, 413, 422, 500, 503};
    for (size_t i = 0; i < 10; i++)
        for (size_t k = 0; k <= i; k++)
            metrics_observe(m, 1, fixed[i], 0.001, 0, 0);
    /* Unlisted codes: the first eight distinct ones keep their code, the rest and invalid
     * statuses are code="other". */
    for (int code = 600 - 20; code < 600; code++)
        metrics_observe(m, 1, code, 0.001, 0, 0);
    metrics_observe(m, 1, 580, 0.001, 0, 0);
    metrics_observe(m, 1, 0, 0.001, 0, 0);
    metrics_observe(m, 1, 600, 0.001, 0, 0);
    metrics_observe(m, 1, -1, 0.001, 0, 0);
    metrics_observe(m, 1, 99, 0.001, 0, 0);
    char *text = render(m);
    for (size_t i = 0; i < 10; i++) {
        char code[16];
        snprintf(code, sizeof code, "%d", fixed[i]);
        ck_assert_double_eq(requests(text, "models", code), (double)(i + 1));
    }
    ck_assert_double_eq(requests(text, "models", "580"), 2);
    for (int code = 581; code < 588; code++) {
        char s[16];
        snprintf(s, sizeof s, "%d", code);
        ck_assert_double_eq(requests(text, "models", s), 1);
    }
    ck_assert_ptr_null(find_series(text, "rnnserve_requests_total{route=\"models\",code=\"588\"}"));
    ck_assert_double_eq(requests(text, "models", "other"), 12 + 4);
    ck_assert_double_eq(hist_count(text, "models"), 55 + 21 + 4);
    ck_assert_ptr_null(lint(text));
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(test_buckets_are_cumulative_and_le_is_inclusive)
{
    const double bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                             0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
    metrics *m = metrics_new(ROUTES, N_ROUTES, "");
    ck_assert_ptr_nonnull(m);
    /* One observation exactly at each bound, one just above it. */
    for (size_t b = 0; b < 16; b++) {
        metrics_observe(m, 0, 200, bounds[b], 0, 0);
        metrics_observe(m, 0, 200, nextafter(bounds[b], INFINITY), 0, 0);
    }
    metrics_observe(m, 0, 200, 0, 0, 0);
    char *text = render(m);
    /* At le=bounds[b]: zero, the b+1 bounds up to it, and the b values just above the bounds
     * below it. */
    for (size_t b = 0; b < 16; b++)
        ck_assert_msg(bucket(text, "forward", LE[b]) == (double)(1 + (b + 1) + b), "le=%s: %g",
                      LE[b], bucket(text, "forward", LE[b]));
    ck_assert_double_eq(bucket(text, "forward", "+Inf"), 33);
    ck_assert_double_eq(hist_count(text, "forward"), 33);
    double prev = 0;
    for (size_t b = 0; b < N_LE; b++) {
        ck_assert(bucket(text, "forward", LE[b]) >= prev);
        prev = bucket(text, "forward", LE[b]);
    }
    /* The other routes' buckets are all there, and zero. */
    for (size_t b = 0; b < N_LE; b++)
        ck_assert_double_eq(bucket(text, "healthz", LE[b]), 0);
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(test_sum_and_count)
{
    metrics *m = metrics_new(ROUTES, N_ROUTES, "");
    ck_assert_ptr_nonnull(m);
    char *text = render(m);
    ck_assert_uint_eq(hist_sum_ns(text, "forward"), 0);
    ck_assert_ptr_nonnull(
        strstr(text, "rnnserve_request_duration_seconds_sum{route=\"forward\"} 0\n"));
    free(text);

    metrics_observe(m, 0, 200, 0.0015, 1, 10);
    metrics_observe(m, 0, 400, 2.25, 0, 0);
    metrics_observe(m, 0, 200, 12, 4, 7);
    metrics_observe(m, 0, 200, 1e-9, 1, 1);
    metrics_observe(m, 1, 200, 0.5, 0, 0);
    text = render(m);
    ck_assert_uint_eq(hist_sum_ns(text, "forward"), 14251500001u);
    ck_assert_ptr_nonnull(
        strstr(text, "rnnserve_request_duration_seconds_sum{route=\"forward\"} 14.251500001\n"));
    ck_assert_double_eq(hist_count(text, "forward"), 4);
    ck_assert_ptr_nonnull(
        strstr(text, "rnnserve_request_duration_seconds_sum{route=\"models\"} 0.5\n"));
    ck_assert_double_eq(hist_count(text, "models"), 1);
    ck_assert_double_eq(value_of(text, "rnnserve_sequences_total"), 6);
    ck_assert_double_eq(value_of(text, "rnnserve_steps_total"), 18);
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(test_bad_observations_do_not_break_anything)
{
    metrics *m = metrics_new(ROUTES, N_ROUTES, "");
    ck_assert_ptr_nonnull(m);
    metrics_observe(m, N_ROUTES, 200, 0.1, 1, 1); /* no such route: ignored */
    metrics_observe(m, (size_t)-1, 200, 0.1, 1, 1);
    metrics_observe(m, 0, 200, -3, 0, 0); /* negative and NaN count as 0 s */
    metrics_observe(m, 0, 200, NAN, 0, 0);
    metrics_observe(m, 0, 200, INFINITY, 0, 0); /* +Inf bucket, sum capped */
    char *text = render(m);
    ck_assert_double_eq(value_of(text, "rnnserve_sequences_total"), 0);
    ck_assert_double_eq(bucket(text, "forward", "0.0001"), 2);
    ck_assert_double_eq(bucket(text, "forward", "10"), 2);
    ck_assert_double_eq(bucket(text, "forward", "+Inf"), 3);
    ck_assert_uint_eq(hist_sum_ns(text, "forward"), UINT64_C(1000000000000000000));
    ck_assert_ptr_null(lint(text));
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(test_in_flight_up_and_down)
{
    metrics *m = metrics_new(ROUTES, N_ROUTES, "");
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(metrics_inflight(m), 0);
    metrics_inflight_add(m, 1);
    metrics_inflight_add(m, 1);
    metrics_inflight_add(m, 1);
    metrics_inflight_add(m, -1);
    ck_assert_int_eq(metrics_inflight(m), 2);
    char *text = render(m);
    ck_assert_double_eq(value_of(text, "rnnserve_in_flight_requests"), 2);
    free(text);
    metrics_inflight_add(m, -2);
    ck_assert_int_eq(metrics_inflight(m), 0);
    text = render(m);
    ck_assert_double_eq(value_of(text, "rnnserve_in_flight_requests"), 0);
    free(text);
    metrics_free(m);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * many threads: totals must be exact */

#define N_THREADS 8
#define N_PER_THREAD 100000

static const int T_STATUS[] = {200, 422, 500, 418};
static const double T_SECONDS[] = {0.0001, 0.001, 0.003, 0.7, 20};

/* The observation thread T makes at step I. */
static void plan(int t, int i, size_t *route, int *status, double *seconds, size_t *steps)
{
    *route = (size_t)(t + i) % N_ROUTES;
    *status = T_STATUS[i % 4];
    *seconds = T_SECONDS[i % 5];
    *steps = (size_t)(i % 7);
}

typedef struct {
    metrics *m;
    int t;
    int bad_renders;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    for (int i = 0; i < N_PER_THREAD; i++) {
        size_t route, steps;
        int status;
        double seconds;
        plan(a->t, i, &route, &status, &seconds, &steps);
        metrics_inflight_add(a->m, 1);
        metrics_observe(a->m, route, status, seconds, 1, steps);
        metrics_inflight_add(a->m, -1);
        if (i % 20000 == 0) { /* renders racing with observes must stay well-formed */
            size_t len;
            char *text = metrics_render(a->m, NULL, &len);
            const char *why = text ? lint(text) : "out of memory";
            if (why) {
                fprintf(stderr, "thread %d: %s\n", a->t, why);
                a->bad_renders++;
            }
            free(text);
        }
    }
    return NULL;
}

START_TEST(test_threads_give_exact_totals)
{
    metrics *m = metrics_new(ROUTES, N_ROUTES, "");
    ck_assert_ptr_nonnull(m);
    pthread_t th[N_THREADS];
    worker_arg args[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        args[t] = (worker_arg){m, t, 0};
        ck_assert_int_eq(pthread_create(&th[t], NULL, worker, &args[t]), 0);
    }
    for (int t = 0; t < N_THREADS; t++) {
        pthread_join(th[t], NULL);
        ck_assert_int_eq(args[t].bad_renders, 0);
    }

    /* The same plan, counted single-threaded. */
    uint64_t by_status[N_ROUTES][4] = {{0}}, by_bucket[N_ROUTES][N_LE] = {{0}};
    uint64_t sum_ns[N_ROUTES] = {0}, steps_total = 0;
    for (int t = 0; t < N_THREADS; t++) {
        for (int i = 0; i < N_PER_THREAD; i++) {
            size_t route, steps;
            int status;
            double seconds;
            plan(t, i, &route, &status, &seconds, &steps);
            by_status[route][i % 4]++;
            sum_ns[route] += (uint64_t)(seconds * 1e9 + 0.5);
            steps_total += steps;
            for (size_t b = 0; b < N_LE; b++)
                if (b == N_LE - 1 || seconds <= strtod(LE[b], NULL))
                    by_bucket[route][b]++;
        }
    }

    char *text = render(m);
    ck_assert_ptr_null(lint(text));
    for (size_t r = 0; r < N_ROUTES; r++) {
        for (size_t s = 0; s < 4; s++) {
            char code[16];
            snprintf(code, sizeof code, "%d", T_STATUS[s]);
            ck_assert_msg(requests(text, ROUTES[r], code) == (double)by_status[r][s],
                          "%s %s: %g != %" PRIu64, ROUTES[r], code, requests(text, ROUTES[r], code),
                          by_status[r][s]);
        }
        for (size_t b = 0; b < N_LE; b++)
            ck_assert_msg(bucket(text, ROUTES[r], LE[b]) == (double)by_bucket[r][b],
                          "%s le=%s: %g != %" PRIu64, ROUTES[r], LE[b],
                          bucket(text, ROUTES[r], LE[b]), by_bucket[r][b]);
        ck_assert_uint_eq(hist_sum_ns(text, ROUTES[r]), sum_ns[r]);
    }
    ck_assert_double_eq(value_of(text, "rnnserve_sequences_total"), N_THREADS * N_PER_THREAD);
    ck_assert_double_eq(value_of(text, "rnnserve_steps_total"), (double)steps_total);
    ck_assert_double_eq(value_of(text, "rnnserve_in_flight_requests"), 0);
    ck_assert_int_eq(metrics_inflight(m), 0);
    free(text);
    metrics_free(m);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * labels and format */

START_TEST(test_build_labels_are_escaped)
{
    const char *raw = "version=\"0.1.0\",cc=\"gcc \"12\" C:\\x\nnext\", jansson=\"2.14\"";
    metrics *m = metrics_new(ROUTES, N_ROUTES, raw);
    ck_assert_ptr_nonnull(m);
    char *text = render(m);
    ck_assert_ptr_nonnull(strstr(text,
                                 "\nrnnserve_build_info{version=\"0.1.0\","
                                 "cc=\"gcc \\\"12\\\" C:\\\\x\\nnext\",jansson=\"2.14\"} 1\n"));
    ck_assert_ptr_null(lint(text));
    free(text);
    metrics_free(m);

    /* Malformed, reserved and repeated names are dropped rather than breaking the scrape. */
    m = metrics_new(ROUTES, N_ROUTES, "a=\"1\",__b=\"2\",a=\"3\",9c=\"4\",d=5,e=\"6\",=\"7\"");
    ck_assert_ptr_nonnull(m);
    text = render(m);
    ck_assert_ptr_nonnull(strstr(text, "\nrnnserve_build_info{a=\"1\",e=\"6\"} 1\n"));
    free(text);
    metrics_free(m);

    /* No labels at all. */
    const char *empty[] = {"", NULL, " , "};
    for (size_t i = 0; i < 3; i++) {
        m = metrics_new(ROUTES, N_ROUTES, empty[i]);
        ck_assert_ptr_nonnull(m);
        text = render(m);
        ck_assert_ptr_nonnull(strstr(text, "\nrnnserve_build_info 1\n"));
        ck_assert_ptr_null(lint(text));
        free(text);
        metrics_free(m);
    }
}
END_TEST

START_TEST(test_route_labels_are_escaped)
{
    const char *routes[] = {"a\"b\\c\nd"};
    metrics *m = metrics_new(routes, 1, "");
    ck_assert_ptr_nonnull(m);
    metrics_observe(m, 0, 200, 0.01, 0, 0);
    char *text = render(m);
    ck_assert_double_eq(requests(text, "a\\\"b\\\\c\\nd", "200"), 1);
    ck_assert_double_eq(hist_count(text, "a\\\"b\\\\c\\nd"), 1);
    ck_assert_ptr_null(lint(text));
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(test_render_parses_line_by_line)
{
    metrics *m = metrics_new(ROUTES, N_ROUTES, "version=\"0.1.0\",libmicrohttpd=\"0.9.75\"");
    ck_assert_ptr_nonnull(m);
    char *text = render(m);
    const char *why = lint(text);
    ck_assert_msg(why == NULL, "%s", why);
    free(text);

    metrics_inflight_add(m, 1);
    metrics_observe(m, 0, 200, 0.0012, 2, 17);
    metrics_observe(m, 0, 418, 0.3, 0, 0);
    metrics_observe(m, 1, 404, 0.0002, 0, 0);
    metrics_observe(m, 2, 0, 99, 0, 0);
    text = render(m);
    why = lint(text);
    ck_assert_msg(why == NULL, "%s\n%s", why, text);
    /* Every family, in order, once. */
    const char *families[] = {
        "# TYPE rnnserve_requests_total counter\n",
        "# TYPE rnnserve_request_duration_seconds histogram\n",
        "# TYPE rnnserve_sequences_total counter\n",
        "# TYPE rnnserve_steps_total counter\n",
        "# TYPE rnnserve_in_flight_requests gauge\n",
        "# TYPE rnnserve_build_info gauge\n",
        "# TYPE rnnserve_start_time_seconds gauge\n",
    };
    const char *at = text;
    for (size_t i = 0; i < 7; i++) {
        at = strstr(at, families[i]);
        ck_assert_msg(at != NULL, "missing or out of order: %s", families[i]);
    }
    free(text);
    metrics_free(m);

    /* No routes at all is still a valid page. */
    m = metrics_new(NULL, 0, NULL);
    ck_assert_ptr_nonnull(m);
    text = render(m);
    ck_assert_ptr_null(lint(text));
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(test_lint_rejects_bad_text)
{
    /* The checker above must itself catch what it claims to. */
    const char *bad[] = {
        "x 1\n",
        "# HELP x h\nx 1\n",
        "# TYPE x gauge\n# HELP x h\nx 1",
        "# HELP x h\n# TYPE x gauge\nx{a=\"b} 1\n",
        "# HELP x h\n# TYPE x gauge\nx{a=\"\\t\"} 1\n",
        "# HELP x h\n# TYPE x gauge\nx 1 \n",
        "# HELP x h\n# TYPE x gauge\nx one\n",
        "# HELP x h\n# TYPE x gauge\ny 1\n",
        "# HELP x h\n# TYPE x histogram\nx_bucket 1\n",
        "# HELP x h\n# TYPE x gauge\n# HELP y h\n# TYPE y gauge\n# HELP x h\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(lint(bad[i]) != NULL, "accepted: %s", bad[i]);
    ck_assert_ptr_null(lint("# HELP x h\n# TYPE x gauge\nx{a=\"\\\"\"} -1.5e-3\n"));
}
END_TEST

START_TEST(test_start_time_is_now)
{
    struct timespec before, after;
    clock_gettime(CLOCK_REALTIME, &before);
    metrics *m = metrics_new(ROUTES, N_ROUTES, "");
    clock_gettime(CLOCK_REALTIME, &after);
    ck_assert_ptr_nonnull(m);
    char *text = render(m);
    uint64_t ns = ns_of(text, "rnnserve_start_time_seconds");
    ck_assert_uint_ge(ns, (uint64_t)before.tv_sec * 1000000000u + (uint64_t)before.tv_nsec);
    ck_assert_uint_le(ns, (uint64_t)after.tv_sec * 1000000000u + (uint64_t)after.tv_nsec);
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(test_new_and_free_many)
{
    /* Leaks show up under ASan (LeakSanitizer) and valgrind, which run this suite too. */
    for (int i = 0; i < 1000; i++) {
        metrics *m = metrics_new(ROUTES, (size_t)(i % 4), i % 2 ? "v=\"1\"" : NULL);
        ck_assert_ptr_nonnull(m);
        metrics_observe(m, 0, 200 + i % 300, 0.001 * i, 1, 1);
        char *text = render(m);
        free(text);
        metrics_free(m);
    }
    metrics_free(NULL);
}
END_TEST

START_TEST(test_models_are_labelled_and_the_table_is_bounded)
{
    metrics *m = metrics_new(ROUTES, N_ROUTES, "");
    ck_assert_ptr_nonnull(m);
    char name[32];
    for (int i = 0; i < METRICS_MAX_MODELS + 40; i++) {
        snprintf(name, sizeof name, "m%d", i);
        size_t slot = metrics_model(m, name);
        ck_assert_uint_eq(slot, i < METRICS_MAX_MODELS ? (size_t)i : METRICS_MAX_MODELS);
        ck_assert_uint_eq(metrics_model(m, name), slot); /* the same name, the same slot */
        metrics_forward f = {.status = 200,
                             .seconds = 0.01,
                             .decode_ns = -1,
                             .wait_ns = -1,
                             .compute_ns = -1,
                             .encode_ns = -1};
        metrics_observe_forward(m, slot, &f);
    }
    ck_assert_uint_eq(metrics_model(m, "m0"), 0);
    ck_assert_uint_eq(metrics_model(m, "a \"quoted\\ name"), METRICS_MAX_MODELS);
    char *text = render(m);
    ck_assert_ptr_null(lint(text));
    ck_assert_double_eq(value_of(text, "rnnserve_model_requests_total{model=\"m0\",code=\"200\"}"),
                        1);
    ck_assert_double_eq(
        value_of(text, "rnnserve_model_requests_total{model=\"m255\",code=\"200\"}"), 1);
    ck_assert_ptr_null(
        find_series(text, "rnnserve_model_requests_total{model=\"m256\",code=\"200\"}"));
    ck_assert_double_eq(
        value_of(text, "rnnserve_model_requests_total{model=\"other\",code=\"200\"}"), 40);
    ck_assert_double_eq(
        value_of(text, "rnnserve_model_request_duration_seconds_count{model=\"other\"}"), 40);
    /* the route series are metrics_observe's alone */
    ck_assert_ptr_null(
        find_series(text, "rnnserve_requests_total{route=\"forward\",code=\"200\"}"));
    free(text);
    metrics_free(m);

    /* A fresh registry: labels are escaped, and "other" is not shown before it is used. */
    m = metrics_new(ROUTES, N_ROUTES, "");
    ck_assert_uint_eq(metrics_model(m, "a \"quoted\\ name"), 0);
    metrics_forward f = {.status = 404,
                         .seconds = 0,
                         .decode_ns = -1,
                         .wait_ns = -1,
                         .compute_ns = -1,
                         .encode_ns = -1};
    metrics_observe_forward(m, 0, &f);
    text = render(m);
    ck_assert_ptr_null(lint(text));
    ck_assert_double_eq(
        value_of(text,
                 "rnnserve_model_requests_total{model=\"a \\\"quoted\\\\ name\",code=\"404\"}"),
        1);
    ck_assert_ptr_null(strstr(text, "model=\"other\""));
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(test_forward_phases_pass_sizes_and_outcomes)
{
    metrics *m = metrics_new(ROUTES, N_ROUTES, "");
    size_t s = metrics_model(m, "sine");
    /* a queued request merged into a pass of 3 requests and 5 sequences */
    metrics_forward done = {.status = 200,
                            .seconds = 0.2,
                            .outcome = METRICS_DONE,
                            .decode_ns = 1000000,
                            .wait_ns = 50000000,
                            .compute_ns = 100000000,
                            .encode_ns = 2000000,
                            .pass_sequences = 5,
                            .pass_jobs = 3};
    metrics_observe_forward(m, s, &done);
    /* inline: no queue wait, no encode of its own */
    metrics_forward inl = {.status = 200,
                           .seconds = 0.001,
                           .decode_ns = 10000,
                           .wait_ns = -1,
                           .compute_ns = 20000,
                           .encode_ns = -1,
                           .pass_sequences = 1,
                           .pass_jobs = 1};
    metrics_observe_forward(m, s, &inl);
    /* ended in the queue, or at admission: not computed */
    metrics_forward ended = {.status = 503,
                             .seconds = 0.5,
                             .decode_ns = 1000,
                             .wait_ns = 400000000,
                             .compute_ns = -1,
                             .encode_ns = -1};
    ended.outcome = METRICS_EXPIRED;
    metrics_observe_forward(m, s, &ended);
    ended.outcome = METRICS_REJECTED;
    ended.wait_ns = -1;
    metrics_observe_forward(m, s, &ended);
    ended.outcome = METRICS_STOPPED;
    metrics_observe_forward(m, s, &ended);
    ended.outcome = METRICS_REJECTED; /* refused before its model was known */
    metrics_observe_forward(m, METRICS_NO_MODEL, &ended);
    ended.outcome = METRICS_CANCELLED; /* nothing answered */
    ended.status = 0;
    ended.wait_ns = 300000000;
    metrics_observe_forward(m, s, &ended);

    char *text = render(m);
    ck_assert_ptr_null(lint(text));
    ck_assert_double_eq(
        value_of(text, "rnnserve_model_requests_total{model=\"sine\",code=\"200\"}"), 2);
    ck_assert_double_eq(
        value_of(text, "rnnserve_model_requests_total{model=\"sine\",code=\"503\"}"), 3);
    ck_assert_double_eq(
        value_of(text, "rnnserve_model_request_duration_seconds_count{model=\"sine\"}"), 5);
    ck_assert_double_eq(value_of(text, "rnnserve_queue_wait_seconds_count{model=\"sine\"}"), 3);
    ck_assert_uint_eq(ns_of(text, "rnnserve_queue_wait_seconds_sum{model=\"sine\"}"), 750000000);
    ck_assert_double_eq(
        value_of(text, "rnnserve_queue_wait_seconds_bucket{model=\"sine\",le=\"0.05\"}"), 1);
    ck_assert_double_eq(value_of(text, "rnnserve_decode_seconds_count{model=\"sine\"}"), 6);
    ck_assert_double_eq(value_of(text, "rnnserve_compute_seconds_count{model=\"sine\"}"), 2);
    ck_assert_uint_eq(ns_of(text, "rnnserve_compute_seconds_sum{model=\"sine\"}"), 100020000);
    ck_assert_double_eq(value_of(text, "rnnserve_encode_seconds_count{model=\"sine\"}"), 1);
    ck_assert_double_eq(value_of(text, "rnnserve_pass_requests_count"), 2);
    ck_assert_double_eq(value_of(text, "rnnserve_pass_requests_sum"), 4);
    ck_assert_double_eq(value_of(text, "rnnserve_pass_requests_bucket{le=\"1\"}"), 1);
    ck_assert_double_eq(value_of(text, "rnnserve_pass_requests_bucket{le=\"2\"}"), 1);
    ck_assert_double_eq(value_of(text, "rnnserve_pass_requests_bucket{le=\"4\"}"), 2);
    ck_assert_double_eq(value_of(text, "rnnserve_pass_sequences_sum"), 6);
    ck_assert_double_eq(value_of(text, "rnnserve_pass_sequences_bucket{le=\"4\"}"), 1);
    ck_assert_double_eq(value_of(text, "rnnserve_pass_sequences_bucket{le=\"8\"}"), 2);
    ck_assert_double_eq(value_of(text, "rnnserve_pass_sequences_bucket{le=\"+Inf\"}"), 2);
    ck_assert_double_eq(value_of(text, "rnnserve_expired_requests_total"), 1);
    ck_assert_double_eq(value_of(text, "rnnserve_rejected_requests_total"), 2);
    ck_assert_double_eq(value_of(text, "rnnserve_stopped_requests_total"), 1);
    ck_assert_double_eq(value_of(text, "rnnserve_cancelled_requests_total"), 1);
    ck_assert_double_eq(value_of(text, "rnnserve_failed_requests_total"), 0);
    /* without a state, its gauges are left out */
    ck_assert_ptr_null(find_series(text, "rnnserve_queue_requests"));
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(test_queue_and_reload_state_is_rendered)
{
    metrics *m = metrics_new(ROUTES, N_ROUTES, "");
    metrics_state st = {.queued_requests = 3,
                        .queued_flops = 1.5e9,
                        .running_passes = 2,
                        .reloads_ok = 4,
                        .reloads_failed = 1,
                        .last_reload_s = 1700000000.25};
    size_t len;
    char *text = metrics_render(m, &st, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_null(lint(text));
    ck_assert_double_eq(value_of(text, "rnnserve_queue_requests"), 3);
    ck_assert_double_eq(value_of(text, "rnnserve_queue_flops"), 1.5e9);
    ck_assert_double_eq(value_of(text, "rnnserve_running_passes"), 2);
    ck_assert_double_eq(value_of(text, "rnnserve_reloads_total{result=\"success\"}"), 4);
    ck_assert_double_eq(value_of(text, "rnnserve_reloads_total{result=\"failure\"}"), 1);
    ck_assert_double_eq(value_of(text, "rnnserve_last_reload_success_timestamp_seconds"),
                        1700000000.25);
    free(text);
    metrics_free(m);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("counts");
    tcase_add_test(tc, test_counts_by_route_and_status);
    tcase_add_test(tc, test_every_fixed_status_and_the_others);
    tcase_add_test(tc, test_buckets_are_cumulative_and_le_is_inclusive);
    tcase_add_test(tc, test_sum_and_count);
    tcase_add_test(tc, test_bad_observations_do_not_break_anything);
    tcase_add_test(tc, test_in_flight_up_and_down);
    suite_add_tcase(s, tc);
    tc = tcase_create("threads");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_threads_give_exact_totals);
    suite_add_tcase(s, tc);
    tc = tcase_create("format");
    tcase_add_test(tc, test_build_labels_are_escaped);
    tcase_add_test(tc, test_route_labels_are_escaped);
    tcase_add_test(tc, test_render_parses_line_by_line);
    tcase_add_test(tc, test_lint_rejects_bad_text);
    tcase_add_test(tc, test_start_time_is_now);
    tcase_add_test(tc, test_new_and_free_many);
    tcase_add_test(tc, test_models_are_labelled_and_the_table_is_bounded);
    tcase_add_test(tc, test_forward_phases_pass_sizes_and_outcomes);
    tcase_add_test(tc, test_queue_and_reload_state_is_rendered);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
