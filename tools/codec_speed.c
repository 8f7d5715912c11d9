/* codec_speed.c - times the codec on the benchmark's "M" request: decode of the request body and
 * encode of the response, as MB/s of JSON (medians of many runs), and the peak memory a decode of
 * a 16 MiB body costs. Standalone (not in `make test`). Each run is timed twice: wall clock, and
 * the thread's CPU time, which a machine shared with other work inflates much less.
 *
 * Build and run from the repository root, after `make`:
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude $(pkg-config --cflags jansson) \
 *      -o build/codec_speed tools/codec_speed.c build/librnnserve.a \
 *      $(pkg-config --libs libmicrohttpd jansson) -lm -lpthread -ldl
 *   (as the Makefile links rnnserve: OpenBLAS is not linked, the engine dlopens it if needed)
 *   build/codec_speed [RUNS]      # RUNS timed repetitions of each measure (default 41)
 *   build/codec_speed --memory    # peak RSS growth while decoding a 16 MiB request
 *
 * M: rnn tanh, input 32, hidden 128, 2 layers, batch 16, lengths round(linspace(50, 100, 16)),
 * weights uniform in +-1/sqrt(H) and inputs uniform in +-1 from fixed seeds. The request is timed
 * in three spellings: shortest float32 digits (what rnnserve itself prints, ~10 bytes a number),
 * %.9g (what `make bench` sends), and 17 significant digits (what Python's json.dumps writes for
 * tensor.tolist(), ~20 bytes). The response is the real forward pass's output, encoded at full
 * and at 4-digit precision. */
#include "rnnserve/api.h"
#include "../src/wire.h"
#include "rnnserve/config.h"
#include "rnnserve/engine.h"
#include "rnnserve/floatfmt.h"
#include "rnnserve/model.h"

#include <math.h>
#include <stdint.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define I_M 32
#define H_M 128
#define L_M 2
#define B_M 16

typedef struct {
    char *buf;
    size_t len, cap;
} text;

static void put(text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->buf = realloc(t->buf, t->cap);
        if (!t->buf) {
            fprintf(stderr, "codec_speed: out of memory\n");
            exit(2);
        }
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void puts_(text *t, const char *s)
{
    put(t, s, strlen(s));
}

/* A float in the spelling asked for: shortest float32 (0), %.9g as make bench writes (1), or 17
 * digits of its double value as Python's json.dumps does (2). */
static void put_num(text *t, float x, int form)
{
    char s[40];
    size_t n = form == 0   ? ff_format_f32(x, s)
               : form == 1 ? (size_t)snprintf(s, sizeof s, "%.9g", (double)x)
                           : (size_t)snprintf(s, sizeof s, "%.17g", (double)x);
    put(t, s, n);
}

/* xorshift64*: fixed seeds, the same numbers on every machine. */
static double uniform(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 2685821657736338717ull) >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static void put_matrix(text *t, const char *name, int rows, int cols, double scale, uint64_t *s)
{
    char head[64];
    snprintf(head, sizeof head, "\"%s\": [", name);
    puts_(t, head);
    for (int r = 0; r < rows; r++) {
        if (cols > 1)
            puts_(t, r ? ",[" : "[");
        for (int c = 0; c < cols; c++) {
            if (c || (cols == 1 && r))
                puts_(t, ",");
            put_num(t, (float)(uniform(s) * scale), 0);
        }
        if (cols > 1)
            puts_(t, "]");
    }
    puts_(t, "]");
}

static rnn_model *m_model(void)
{
    text t = {0};
    uint64_t s = 0x9e3779b97f4a7c15ull;
    const double k = 1.0 / sqrt(H_M);
    puts_(&t, "{\"models\": [{\"name\": \"m\", \"type\": \"rnn\", \"input_size\": 32, "
              "\"hidden_size\": 128, \"num_layers\": 2, \"weights\": {");
    for (int l = 0; l < L_M; l++) {
        char name[32];
        snprintf(name, sizeof name, "weight_ih_l%d", l);
        put_matrix(&t, name, H_M, l ? H_M : I_M, k, &s);
        puts_(&t, ",");
        snprintf(name, sizeof name, "weight_hh_l%d", l);
        put_matrix(&t, name, H_M, H_M, k, &s);
        puts_(&t, ",");
        snprintf(name, sizeof name, "bias_ih_l%d", l);
        put_matrix(&t, name, H_M, 1, k, &s);
        puts_(&t, ",");
        snprintf(name, sizeof name, "bias_hh_l%d", l);
        put_matrix(&t, name, H_M, 1, k, &s);
        puts_(&t, l + 1 < L_M ? "," : "");
    }
    puts_(&t, "}}]}");
    char err[512];
    cfg_config *cfg = NULL;
    rnn_model *m = NULL;
    if (cfg_load_buffer(t.buf, t.len, NULL, &cfg, err, sizeof err) < 0 ||
        rnn_model_load(&cfg->models[0], &m, err, sizeof err) < 0) {
        fprintf(stderr, "codec_speed: %s\n", err);
        exit(2);
    }
    cfg_free(cfg);
    free(t.buf);
    return m;
}

static text m_request(const int32_t *lengths, int form)
{
    text t = {0};
    uint64_t s = 0x2545f4914f6cdd1dull;
    puts_(&t, "{\"inputs\": [");
    for (int i = 0; i < B_M; i++) {
        puts_(&t, i ? ", [" : "[");
        for (int j = 0; j < lengths[i]; j++) {
            puts_(&t, j ? ", [" : "[");
            for (int k = 0; k < I_M; k++) {
                if (k)
                    puts_(&t, ", ");
                put_num(&t, (float)uniform(&s), form);
            }
            puts_(&t, "]");
        }
        puts_(&t, "]");
    }
    puts_(&t, "]}");
    return t;
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Wall and thread CPU time, in seconds. */
typedef struct {
    double wall, cpu;
} stamp;

static stamp now(void)
{
    return (stamp){clock_s(CLOCK_MONOTONIC), clock_s(CLOCK_THREAD_CPUTIME_ID)};
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* One line: medians of wall and CPU time, and MB/s of JSON by each. */
static void report(const char *what, const char *label, size_t bytes, double *t, double *c,
                   int runs, size_t numbers)
{
    const double mt = median(t, runs), mc = median(c, runs);
    printf("%s %-22s %8zu bytes  wall %7.3f ms %7.1f MB/s   cpu %7.3f ms %7.1f MB/s", what, label,
           bytes, mt * 1e3, (double)bytes / mt / 1e6, mc * 1e3, (double)bytes / mc / 1e6);
    if (numbers)
        printf("  %.1f ns/number", mc * 1e9 / (double)numbers);
    printf("\n");
}

static void time_decode(const char *label, const text *body, const rnn_info *info, int runs)
{
    const api_limits lim = {1024, 100000};
    double *t = malloc((size_t)runs * sizeof *t), *c = malloc((size_t)runs * sizeof *c);
    for (int r = -3; r < runs; r++) { /* three warm-up runs */
        wire_v1_request *req = NULL;
        wire_error e;
        const stamp t0 = now();
        if (wire_v1_decode(body->buf, body->len, info, &lim, &req, &e) < 0) {
            fprintf(stderr, "codec_speed: decode failed: %s\n", e.message);
            exit(1);
        }
        const stamp t1 = now();
        wire_v1_free(req);
        if (r >= 0) {
            t[r] = t1.wall - t0.wall;
            c[r] = t1.cpu - t0.cpu;
        }
    }
    report("decode", label, body->len, t, c, runs, 0);
    free(t);
    free(c);
}

static void time_encode(const char *label, const text *body, const rnn_model *m, int precision,
                        int runs)
{
    const rnn_info *info = rnn_model_info(m);
    const api_limits lim = {1024, 100000};
    wire_v1_request *req = NULL;
    wire_error e;
    if (wire_v1_decode(body->buf, body->len, info, &lim, &req, &e) < 0) {
        fprintf(stderr, "codec_speed: decode failed: %s\n", e.message);
        exit(1);
    }
    const rnn_batch *b = wire_v1_batch(req);
    size_t n_out, n_hid, n_cell;
    rnn_result_sizes(m, b, &n_out, &n_hid, &n_cell);
    rnn_result res = {.outputs = malloc(n_out * sizeof(float)),
                      .hidden = malloc(n_hid * sizeof(float))};
    char msg[256];
    if (!res.outputs || !res.hidden || rnn_forward(m, b, &res, msg, sizeof msg) < 0) {
        fprintf(stderr, "codec_speed: forward failed\n");
        exit(1);
    }
    /* wire_v1_encode reads the precision from the request: decode one that asks. */
    wire_v1_request *preq = req;
    text pbody = {0};
    if (precision != 9) {
        char tail[64];
        put(&pbody, body->buf, body->len - 1); /* drop the closing brace */
        snprintf(tail, sizeof tail, ", \"precision\": %d}", precision);
        puts_(&pbody, tail);
        if (wire_v1_decode(pbody.buf, pbody.len, info, &lim, &preq, &e) < 0) {
            fprintf(stderr, "codec_speed: decode failed: %s\n", e.message);
            exit(1);
        }
    }
    double *t = malloc((size_t)runs * sizeof *t), *c = malloc((size_t)runs * sizeof *c);
    size_t len = 0;
    for (int r = -3; r < runs; r++) {
        char *out = NULL;
        const stamp t0 = now();
        if (wire_v1_encode(info->name, info, preq, &res, &out, &len, &e) < 0) {
            fprintf(stderr, "codec_speed: encode failed: %s\n", e.message);
            exit(1);
        }
        const stamp t1 = now();
        free(out);
        if (r >= 0) {
            t[r] = t1.wall - t0.wall;
            c[r] = t1.cpu - t0.cpu;
        }
    }
    report("encode", label, len, t, c, runs, n_out + n_hid);
    free(t);
    free(c);
    free(res.outputs);
    free(res.hidden);
    if (preq != req)
        wire_v1_free(preq);
    wire_v1_free(req);
    free(pbody.buf);
}

/* Peak RSS growth while one 16 MiB request (M's rows, 48 sequences of 1000 steps) is decoded:
 * the body is built first, so only the decoder's own memory shows. */
static int memory(const rnn_info *info)
{
    text body = {0};
    uint64_t s = 0x2545f4914f6cdd1dull;
    const api_limits lim = {1024, 100000};
    puts_(&body, "{\"inputs\": [");
    size_t numbers = 0;
    for (int i = 0; body.len < (16u << 20) - 512 * 1024; i++) {
        puts_(&body, i ? ", [" : "[");
        for (int j = 0; j < 1000; j++) {
            puts_(&body, j ? ", [" : "[");
            for (int k = 0; k < I_M; k++) {
                if (k)
                    puts_(&body, ", ");
                put_num(&body, (float)uniform(&s), 0);
            }
            puts_(&body, "]");
        }
        puts_(&body, "]");
        numbers += 1000 * I_M;
    }
    puts_(&body, "]}");
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    wire_v1_request *req = NULL;
    wire_error e;
    if (wire_v1_decode(body.buf, body.len, info, &lim, &req, &e) < 0) {
        fprintf(stderr, "codec_speed: decode failed: %s\n", e.message);
        return 1;
    }
    getrusage(RUSAGE_SELF, &after);
    printf("decode of a %.1f MiB body (%zu numbers, %zu bytes as float32): peak RSS grew by "
           "%.1f MB\n",
           (double)body.len / 1048576.0, numbers, numbers * sizeof(float),
           (double)(after.ru_maxrss - before.ru_maxrss) / 1000.0);
    wire_v1_free(req);
    free(body.buf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--memory") == 0) {
        rnn_model *m = m_model();
        const int rc = memory(rnn_model_info(m));
        rnn_model_free(m);
        return rc;
    }
    int runs = argc > 1 ? atoi(argv[1]) : 41;
    if (runs < 1)
        runs = 1;
    int32_t lengths[B_M];
    size_t steps = 0;
    for (int i = 0; i < B_M; i++) {
        lengths[i] = (int32_t)lround(50.0 + 50.0 * i / (B_M - 1));
        steps += (size_t)lengths[i];
    }
    rnn_set_blas_threads(1);
    rnn_model *m = m_model();
    const rnn_info *info = rnn_model_info(m);
    text shortest = m_request(lengths, 0), g9 = m_request(lengths, 1),
         digits17 = m_request(lengths, 2);
    printf("M: %zu steps, %zu input numbers, %zu output numbers; median of %d runs\n", steps,
           steps * I_M, steps * H_M + (size_t)(B_M * L_M * H_M), runs);
    time_decode("request (shortest)", &shortest, info, runs);
    time_decode("request (%.9g, as bench)", &g9, info, runs);
    time_decode("request (17 digits)", &digits17, info, runs);
    time_encode("response (shortest)", &shortest, m, 9, runs);
    time_encode("response (precision 4)", &shortest, m, 4, runs);
    free(shortest.buf);
    free(g9.buf);
    free(digits17.buf);
    rnn_model_free(m);
    return 0;
}
