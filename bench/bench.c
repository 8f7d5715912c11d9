/* bench.c - `make bench`: rnnserve side by side with what a user would otherwise run.
 *
 *   build/bench/bench [--quick] [--out FILE] [--only SECTIONS]
 *
 * Sections, each independent (one failing prints why and the rest goes on):
 *   peak     this machine's float32 FMA peak, measured by an AVX-512 (else AVX2) FMA loop on 1
 *            thread and on every core at once
 *   engine   rnn_forward in-process on S, M, L, L1 at 1 and 2 threads: median time, GFLOP/s
 *            (FLOPs = sum over layers of 2*(I_l*H + H*H)*G*sum(lengths)), % of the peak
 *   torch    the same models and batches in PyTorch (bench/torch_peer.py, /usr/bin/python3), same
 *            thread count (torch.set_num_threads and OPENBLAS_NUM_THREADS)
 *   codec    decode of the M request and encode of the M response through the public codec API
 *   http     wrk on S and M at 1 and 8 connections against build/rnnserve, the bare
 *            libmicrohttpd server (build/bench/mhd_bare) and FastAPI + uvicorn + torch
 *            (bench/fastapi_peer.py); L1 end to end with "return": ["hidden"]; memory (idle RSS,
 *            peak RSS serving M under load)
 *   startup  exec to a 200 from /readyz with the L weights
 *   sched    model B (nn.LSTM(64, 512, 2)): merged passes from many connections, and overload
 *   sessions model B stepped one step per request: 1,024 sessions from 64 connections
 *            (bench/wrk_sessions.lua) vs the client carrying the state (/forward with 1 step,
 *            h0 and c0) from 64 connections
 *   generate examples/char-lstm: one 200-step greedy POST /v1/models/char-lstm/generate against
 *            200 /forward round trips that carry h0/c0 back and forth (only_last, the client
 *            taking the argmax), the same server and prompt; both must give the same ids
 *   binary   M through /v2/models/M/infer with binary tensors in and out (the binary tensor data
 *            extension, as tritonclient sends it) against /v1/models/M/forward JSON, both at 8
 *            connections; and the JSON M response with Accept-Encoding: gzip against plain: its
 *            size on the wire and requests/s
 * Shapes (tanh Elman RNNs with bias, weights uniform in +-1/sqrt(H), inputs uniform in +-1, fixed
 * seeds) are generated into build/bench/ at every run: weights as safetensors, configs, request
 * bodies. One table is printed, and the same data is written as JSON (bench/results/latest.json
 * by default) with the table in it. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rnnserve/api.h"
#include "../src/wire.h"
#include "rnnserve/config.h"
#include "rnnserve/engine.h"
#include "rnnserve/model.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

extern char **environ;

#define WORK "build/bench"
#define PY "/usr/bin/python3"

static int quick;  /* --quick: shorter runs (a smoke test of the harness) */
static json_t *J;  /* everything measured */
static char *only; /* --only: comma-separated sections */

/* ---------------------------------------------------------------------------------------------
 * Small utilities */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static int want(const char *section)
{
    if (!only)
        return 1;
    char buf[256];
    snprintf(buf, sizeof buf, ",%s,", only);
    char key[64];
    snprintf(key, sizeof key, ",%s,", section);
    return strstr(buf, key) != NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* splitmix64: fixed seeds, the same numbers on every machine */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [-a, a) */
static float rng_uniform(uint64_t *s, float a)
{
    double u = (double)(rng_next(s) >> 40) / (double)(1ull << 24);
    return (float)((2.0 * u - 1.0) * a);
}

static int write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, len, f) == len;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

/* A growable string. */
typedef struct {
    char *s;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        b->s = realloc(b->s, cap);
        b->cap = cap;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Shapes */

typedef struct {
    const char *name;
    int input, hidden, layers, batch;
    int gates; /* 0 or 1: nn.RNN; 4: nn.LSTM */
    int32_t lengths[64];
    uint64_t seed;
    size_t steps; /* sum of lengths */
    double flops; /* per forward pass */
    float *x;     /* (steps, input) */
    rnn_model *model;
    cfg_config *cfg;
    char *request; /* the forward request body (return: hidden only for L1) */
    size_t request_len;
} shape;

static shape SHAPES[4] = {
    {.name = "S", .input = 1, .hidden = 4, .layers = 1, .batch = 1, .seed = 1},
    {.name = "M", .input = 32, .hidden = 128, .layers = 2, .batch = 16, .seed = 2},
    {.name = "L", .input = 256, .hidden = 1024, .layers = 2, .batch = 64, .seed = 3},
    {.name = "L1", .input = 1, .hidden = 1024, .layers = 2, .batch = 64, .seed = 4},
};
enum { S_, M_, L_, L1_ };
/* The scheduler's model "B": nn.LSTM(64, 512, num_layers=2), sequences of 50 steps. */
static shape SB = {
    .name = "B", .input = 64, .hidden = 512, .layers = 2, .batch = 64, .gates = 4, .seed = 5};

static void shape_lengths(shape *s)
{
    s->steps = 0;
    for (int i = 0; i < s->batch; i++) {
        if (strcmp(s->name, "S") == 0)
            s->lengths[i] = 3;
        else if (strcmp(s->name, "M") == 0) /* round(linspace(50, 100, 16)) */
            s->lengths[i] = (int32_t)lround(50.0 + 50.0 * i / (s->batch - 1));
        else if (strcmp(s->name, "B") == 0)
            s->lengths[i] = 50;
        else
            s->lengths[i] = 100;
        s->steps += (size_t)s->lengths[i];
    }
    double f = 0;
    for (int l = 0; l < s->layers; l++) {
        double Iw = l == 0 ? s->input : s->hidden, H = s->hidden;
        f += 2.0 * (Iw * H + H * H) * (s->gates ? s->gates : 1) * (double)s->steps;
    }
    s->flops = f;
}

/* Writes the state_dict of nn.RNN(input, hidden, layers) as F32 safetensors: weights and biases
 * uniform in +-1/sqrt(H), drawn in state_dict order from the shape's seed. */
static int write_weights(const shape *s, const char *path)
{
    const int H = s->hidden, GH = (s->gates ? s->gates : 1) * H;
    const float a = (float)(1.0 / sqrt((double)H));
    uint64_t rng = s->seed * 1000003u;
    sbuf hdr = {0};
    size_t total = 0;
    for (int l = 0; l < s->layers; l++) {
        size_t in = (size_t)(l == 0 ? s->input : H);
        total += (size_t)GH * in + (size_t)GH * (size_t)H + 2 * (size_t)GH;
    }
    float *data = malloc(total * sizeof(float));
    if (!data)
        return -1;
    size_t at = 0;
    sb_printf(&hdr, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int l = 0; l < s->layers; l++) {
        int in = l == 0 ? s->input : H;
        struct {
            const char *base;
            int d0, d1;
        } t[4] = {{"weight_ih_l", GH, in},
                  {"weight_hh_l", GH, H},
                  {"bias_ih_l", GH, 0},
                  {"bias_hh_l", GH, 0}};
        for (int k = 0; k < 4; k++) {
            size_t n = (size_t)t[k].d0 * (size_t)(t[k].d1 ? t[k].d1 : 1);
            for (size_t i = 0; i < n; i++)
                data[at + i] = rng_uniform(&rng, a);
            if (t[k].d1)
                sb_printf(&hdr, ",\"%s%d\":{\"dtype\":\"F32\",\"shape\":[%d,%d],", t[k].base, l,
                          t[k].d0, t[k].d1);
            else
                sb_printf(&hdr, ",\"%s%d\":{\"dtype\":\"F32\",\"shape\":[%d],", t[k].base, l,
                          t[k].d0);
            sb_printf(&hdr, "\"data_offsets\":[%zu,%zu]}", at * 4, (at + n) * 4);
            at += n;
        }
    }
    sb_printf(&hdr, "}");
    while (hdr.len % 8)
        sb_printf(&hdr, " ");
    FILE *f = fopen(path, "wb");
    int ok = f != NULL;
    if (ok) {
        uint64_t n = hdr.len;
        unsigned char le[8];
        for (int i = 0; i < 8; i++)
            le[i] = (unsigned char)(n >> (8 * i));
        ok = fwrite(le, 1, 8, f) == 8 && fwrite(hdr.s, 1, hdr.len, f) == hdr.len &&
             fwrite(data, sizeof(float), total, f) == total;
        ok = fclose(f) == 0 && ok;
    }
    free(hdr.s);
    free(data);
    return ok ? 0 : -1;
}

static void config_text(sbuf *b, const shape *const *models, int n)
{
    sb_printf(b, "{\"server\": {\"host\": \"127.0.0.1\", \"port\": 0}, \"models\": [");
    for (int i = 0; i < n; i++)
        sb_printf(b,
                  "%s{\"name\": \"%s\", \"type\": \"%s\", \"input_size\": %d, "
                  "\"hidden_size\": %d, \"num_layers\": %d,%s \"bias\": true, "
                  "\"weights\": \"%s.safetensors\"}",
                  i ? ", " : "", models[i]->name, models[i]->gates == 4 ? "lstm" : "rnn",
                  models[i]->input, models[i]->hidden, models[i]->layers,
                  models[i]->gates == 4 ? "" : " \"nonlinearity\": \"tanh\",", models[i]->name);
    sb_printf(b, "]}\n");
}

static int write_config(const char *path, const shape *const *models, int n)
{
    sbuf b = {0};
    config_text(&b, models, n);
    int rc = write_file(path, b.s, b.len);
    free(b.s);
    return rc;
}

/* Generates everything a shape needs: weights, inputs (raw for PyTorch, JSON for HTTP), its own
 * one-model config, and loads the model for the in-process sections. */
static int shape_prepare(shape *s, char *why, size_t whylen)
{
    char path[512], err[1024];
    shape_lengths(s);
    snprintf(path, sizeof path, WORK "/%s.safetensors", s->name);
    if (write_weights(s, path) < 0) {
        snprintf(why, whylen, "cannot write %s", path);
        return -1;
    }
    size_t n = s->steps * (size_t)s->input;
    s->x = malloc((n ? n : 1) * sizeof(float));
    uint64_t rng = s->seed * 7919u + 17u;
    for (size_t i = 0; i < n; i++)
        s->x[i] = rng_uniform(&rng, 1.0f);
    snprintf(path, sizeof path, WORK "/%s.inputs.bin", s->name);
    if (write_file(path, s->x, n * sizeof(float)) < 0) {
        snprintf(why, whylen, "cannot write %s", path);
        return -1;
    }
    const shape *one[1] = {s};
    snprintf(path, sizeof path, WORK "/%s.json", s->name);
    if (write_config(path, one, 1) < 0) {
        snprintf(why, whylen, "cannot write %s", path);
        return -1;
    }
    if (cfg_load_file(path, &s->cfg, err, sizeof err) < 0 ||
        rnn_model_load(&s->cfg->models[0], &s->model, err, sizeof err) < 0) {
        snprintf(why, whylen, "%s", err);
        return -1;
    }
    /* The request body: bare numbers when input_size is 1, %.9g (exact for float32). L1 asks for
     * final states only, as a client needing only them would. */
    sbuf b = {0};
    sb_printf(&b, "{\"inputs\": [");
    size_t at = 0;
    for (int i = 0; i < s->batch; i++) {
        sb_printf(&b, "%s[", i ? ", " : "");
        for (int t = 0; t < s->lengths[i]; t++, at++) {
            if (s->input == 1) {
                sb_printf(&b, "%s%.9g", t ? ", " : "", (double)s->x[at]);
                continue;
            }
            sb_printf(&b, "%s[", t ? ", " : "");
            for (int k = 0; k < s->input; k++)
                sb_printf(&b, "%s%.9g", k ? ", " : "", (double)s->x[at * (size_t)s->input + k]);
            sb_printf(&b, "]");
        }
        sb_printf(&b, "]");
    }
    sb_printf(&b, "]%s}",
              strcmp(s->name, "L1") == 0 || strcmp(s->name, "B") == 0 ? ", \"return\": [\"hidden\"]"
                                                                      : "");
    s->request = b.s;
    s->request_len = b.len;
    snprintf(path, sizeof path, WORK "/%s.request.json", s->name);
    if (write_file(path, b.s, b.len) < 0) {
        snprintf(why, whylen, "cannot write %s", path);
        return -1;
    }
    return 0;
}

static int write_shapes_json(void)
{
    json_t *arr = json_array();
    for (int i = 0; i < 4; i++) {
        shape *s = &SHAPES[i];
        json_t *lens = json_array();
        for (int k = 0; k < s->batch; k++)
            json_array_append_new(lens, json_integer(s->lengths[k]));
        char w[64], x[64];
        snprintf(w, sizeof w, "%s.safetensors", s->name);
        snprintf(x, sizeof x, "%s.inputs.bin", s->name);
        json_array_append_new(arr, json_pack("{s:s, s:i, s:i, s:i, s:o, s:s, s:s, s:f}", "name",
                                             s->name, "input", s->input, "hidden", s->hidden,
                                             "layers", s->layers, "lengths", lens, "weights", w,
                                             "inputs", x, "flops", s->flops));
    }
    int rc = json_dump_file(arr, WORK "/shapes.json", JSON_INDENT(1));
    json_decref(arr);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * FMA peak: independent FMA chains (more than latency x ports), nothing else, per thread; best of
 * a few short runs. On all cores at once too: a virtual machine's "cores" may share a physical
 * one, and then two threads do not double the peak. */

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static double fma_loop512(long iters)
{
    __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
    __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2),
           a3 = _mm512_set1_ps(3), a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5),
           a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7), a8 = _mm512_set1_ps(8),
           a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11);
    for (long k = 0; k < iters; k++) {
#define F5(x) x = _mm512_fmadd_ps(x, m, c);
        F5(a0)
        F5(a1)
        F5(a2)
        F5(a3) F5(a4) F5(a5) F5(a6) F5(a7) F5(a8) F5(a9) F5(a10)
            F5(a11) __asm__(""
                            : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6),
                              "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return (double)_mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static double fma_loop256(long iters)
{
    __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
    __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2),
           a3 = _mm256_set1_ps(3), a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5),
           a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7), a8 = _mm256_set1_ps(8),
           a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
    for (long k = 0; k < iters; k++) {
#define F2(x) x = _mm256_fmadd_ps(x, m, c);
        F2(a0)
        F2(a1)
        F2(a2)
        F2(a3) F2(a4) F2(a5) F2(a6) F2(a7) F2(a8) F2(a9) F2(a10)
            F2(a11) __asm__(""
                            : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6),
                              "+x"(a7), "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float o[8];
    _mm256_storeu_ps(o, s);
    return (double)o[0];
}
#endif

static int fma_width; /* floats per vector: 16 (AVX-512), 8 (AVX2), 0 (none) */

typedef struct {
    double gflops;
    pthread_barrier_t *bar;
} fma_arg;

static void *fma_thread(void *p)
{
    fma_arg *a = p;
    const long iters = quick ? 2000000 : 5000000; /* 12 FMAs each: ~25-40 ms at full speed */
    double best = 0;
    volatile double sink = 0;
    for (int r = 0; r < (quick ? 3 : 6); r++) {
        if (a->bar)
            pthread_barrier_wait(a->bar);
        double t = now();
#if defined(__x86_64__)
        sink += fma_width == 16 ? fma_loop512(iters) : fma_loop256(iters);
#endif
        t = now() - t;
        double g = (double)iters * 12 * fma_width * 2 / t / 1e9;
        if (g > best)
            best = g;
    }
    (void)sink;
    a->gflops = best;
    return NULL;
}

static double peak1, peak_all, peak2;
static int ncpu;

static void section_peak(void)
{
    json_t *o = json_object();
    json_object_set_new(J, "fma_peak", o);
#if defined(__x86_64__)
    __builtin_cpu_init();
    fma_width = __builtin_cpu_supports("avx512f")                                 ? 16
                : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 8
                                                                                  : 0;
#endif
    if (!fma_width) {
        say("peak: skipped (no AVX2/AVX-512 FMA on this CPU)");
        json_object_set_new(o, "skipped", json_string("no AVX2 or AVX-512 FMA"));
        return;
    }
    fma_arg one = {0, NULL};
    fma_thread(&one);
    peak1 = one.gflops;
    int n = ncpu > 16 ? 16 : ncpu;
    fma_arg args[16];
    pthread_t th[16];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        args[i] = (fma_arg){0, &bar};
        pthread_create(&th[i], NULL, fma_thread, &args[i]);
    }
    peak_all = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        peak_all += args[i].gflops;
    }
    pthread_barrier_destroy(&bar);
    /* the 2-thread peak: all cores' sum when there are 2, else twice one (an upper bound) */
    peak2 = n == 2 ? peak_all : n > 2 ? 2 * peak1 : peak1;
    json_object_set_new(o, "isa", json_string(fma_width == 16 ? "avx512" : "avx2"));
    json_object_set_new(o, "gflops_1_thread", json_real(peak1));
    json_object_set_new(o, "gflops_2_threads", json_real(peak2));
    json_object_set_new(o, "threads_all", json_integer(n));
    json_object_set_new(o, "gflops_all_threads", json_real(peak_all));
    say("peak: %s FMA loop: %.1f GFLOP/s on 1 thread, %.1f on %d at once",
        fma_width == 16 ? "AVX-512" : "AVX2", peak1, peak_all, n);
}

/* ---------------------------------------------------------------------------------------------
 * Engine in-process */

typedef struct {
    double t1, t2; /* median seconds per forward, 1 and 2 threads; 0 when not run */
    double torch1, torch2;
} shape_times;
static shape_times TIMES[4];

static double time_engine(shape *s, int threads, int *reps_out)
{
    rnn_set_blas_threads(1);
    rnn_set_threads(threads);
    rnn_batch b = {.batch = (size_t)s->batch, .lengths = s->lengths, .x = s->x};
    size_t no, nh;
    rnn_result_sizes(s->model, &b, &no, &nh, NULL);
    rnn_result r = {.outputs = malloc(no * sizeof(float)), .hidden = malloc(nh * sizeof(float))};
    char err[256];
    double budget = (s->flops > 1e10 ? 2.5 : 0.8) * (quick ? 0.3 : 1.0);
    double t = now();
    if (rnn_forward(s->model, &b, &r, err, sizeof err) < 0) { /* warm-up: scratch, helpers */
        say("engine %s: %s", s->name, err);
        free(r.outputs);
        free(r.hidden);
        return 0;
    }
    double one = now() - t;
    int inner = one > 1e-3 ? 1 : (int)(1e-3 / (one > 1e-7 ? one : 1e-7)) + 1;
    double samples[4096];
    size_t n = 0;
    double start = now();
    while (n < 3 || (now() - start < budget && n < 4096)) {
        t = now();
        for (int i = 0; i < inner; i++)
            rnn_forward(s->model, &b, &r, err, sizeof err);
        samples[n++] = (now() - t) / inner;
    }
    *reps_out = (int)n * inner;
    free(r.outputs);
    free(r.hidden);
    rnn_set_threads(1);
    return median(samples, n);
}

/* Agreement with the naive reference (double accumulation, libm tanh) on the small shapes. */
static double check_engine(shape *s)
{
    rnn_batch b = {.batch = (size_t)s->batch, .lengths = s->lengths, .x = s->x};
    size_t no, nh;
    rnn_result_sizes(s->model, &b, &no, &nh, NULL);
    rnn_result r = {.outputs = malloc(no * 4), .hidden = malloc(nh * 4)};
    rnn_result q = {.outputs = malloc(no * 4), .hidden = malloc(nh * 4)};
    char err[256];
    double worst = -1;
    if (rnn_forward(s->model, &b, &r, err, sizeof err) == 0 &&
        rnn_forward_reference(s->model, &b, &q, err, sizeof err) == 0) {
        worst = 0;
        for (size_t i = 0; i < no; i++)
            worst = fmax(worst, fabs((double)r.outputs[i] - q.outputs[i]));
    }
    free(r.outputs), free(r.hidden), free(q.outputs), free(q.hidden);
    return worst;
}

static void section_engine(void)
{
    json_t *arr = json_array();
    json_object_set_new(J, "engine", arr);
    for (int i = 0; i < 4; i++) {
        shape *s = &SHAPES[i];
        if (!s->model)
            continue;
        for (int th = 1; th <= 2; th++) {
            int reps = 0;
            double t = time_engine(s, th, &reps);
            if (t <= 0)
                continue;
            double gf = s->flops / t / 1e9, pk = th == 1 ? peak1 : peak2;
            if (th == 1)
                TIMES[i].t1 = t;
            else
                TIMES[i].t2 = t;
            json_t *o = json_pack("{s:s, s:i, s:f, s:i, s:f, s:f}", "shape", s->name, "threads", th,
                                  "median_s", t, "reps", reps, "flops", s->flops, "gflops", gf);
            if (pk > 0)
                json_object_set_new(o, "pct_peak", json_real(100 * gf / pk));
            json_array_append_new(arr, o);
            say("engine %-2s %d thread%s: %10.3f us  %7.1f GFLOP/s%s", s->name, th,
                th > 1 ? "s" : " ", t * 1e6, gf, "");
        }
        if (i <= M_) {
            double d = check_engine(s);
            json_array_append_new(
                arr, json_pack("{s:s, s:f}", "shape", s->name, "max_abs_diff_vs_reference", d));
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Child processes */

#define MAX_CHILDREN 16
static pid_t children[MAX_CHILDREN];

static void kill_children(void)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
}

static void on_signal(int sig)
{
    kill_children();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Starts ARGV with stdout and stderr to LOG (NULL: /dev/null) and extra environment ENV (a
 * NULL-terminated list of "K=V", or NULL). Returns the pid, or -1. */
static pid_t spawn(char *const argv[], const char *log, char *const *env)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    const char *out = log ? log : "/dev/null";
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    char **envp = environ;
    char **merged = NULL;
    if (env) {
        size_t n = 0, m = 0;
        while (environ[n])
            n++;
        while (env[m])
            m++;
        merged = calloc(n + m + 1, sizeof *merged);
        size_t k = 0;
        for (size_t i = 0; i < m; i++)
            merged[k++] = env[i];
        for (size_t i = 0; i < n; i++) {
            int dup = 0;
            for (size_t j = 0; j < m; j++) {
                size_t kl = strcspn(env[j], "=");
                if (strncmp(environ[i], env[j], kl + 1) == 0)
                    dup = 1;
            }
            if (!dup)
                merged[k++] = environ[i];
        }
        envp = merged;
    }
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    free(merged);
    if (rc != 0)
        return -1;
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] == 0) {
            children[i] = pid;
            break;
        }
    return pid;
}

static void stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    double t = now();
    int st;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (now() - t > 3) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        usleep(2000);
    }
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] == pid)
            children[i] = 0;
}

static int alive(pid_t pid)
{
    return pid > 0 && waitpid(pid, NULL, WNOHANG) == 0;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* kB of VmRSS / VmHWM of PID, or -1. */
static long proc_kb(pid_t pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':')
            v = strtol(line + kl + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* ---------------------------------------------------------------------------------------------
 * A minimal HTTP/1.1 client (one request per connection) for probes and single timed requests.
 * Returns the status, or -1 (connection refused, timeout). *resp_len gets the body length. */
static int http_once(int port, const char *method, const char *path, const char *body, size_t len,
                     double timeout, size_t *resp_len, char **resp_out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      method, path, len);
    if (write(fd, head, (size_t)hl) != hl) {
        close(fd);
        return -1;
    }
    for (size_t at = 0; at < len;) {
        ssize_t w = write(fd, body + at, len - at);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        at += (size_t)w;
    }
    sbuf r = {0};
    double t0 = now();
    char buf[65536];
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)((timeout - (now() - t0)) * 1000);
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        if (!r.s)
            sb_printf(&r, "%s", "");
        while (r.len + (size_t)n + 1 > r.cap) {
            r.cap *= 2;
            r.s = realloc(r.s, r.cap);
        }
        memcpy(r.s + r.len, buf, (size_t)n);
        r.len += (size_t)n;
        r.s[r.len] = '\0';
    }
    close(fd);
    int status = -1;
    if (r.s && sscanf(r.s, "HTTP/1.%*d %d", &status) != 1)
        status = -1;
    char *hdr_end = r.s ? strstr(r.s, "\r\n\r\n") : NULL;
    if (resp_len)
        *resp_len = hdr_end ? r.len - (size_t)(hdr_end + 4 - r.s) : 0;
    if (resp_out)
        *resp_out = r.s;
    else
        free(r.s);
    return status;
}

/* Polls GET PATH until 200 (or TIMEOUT seconds, or the process died); seconds waited or -1. */
static double wait_ready(pid_t pid, int port, const char *path, double timeout, double t0)
{
    for (;;) {
        if (http_once(port, "GET", path, "", 0, 1.0, NULL, NULL) == 200)
            return now() - t0;
        if (now() - t0 > timeout || !alive(pid))
            return -1;
        usleep(200);
    }
}

static void log_tail(const char *log)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "tail -n 5 %s 1>&2", log);
    if (system(cmd) != 0)
        return;
}

/* ---------------------------------------------------------------------------------------------
 * PyTorch in-process */

static char torch_version[64];
static char torch_skip[512];

static void section_torch(void)
{
    json_t *arr = json_array();
    json_object_set_new(J, "torch", arr);
    if (access(PY, X_OK) != 0) {
        snprintf(torch_skip, sizeof torch_skip, "%s not found", PY);
        say("torch: skipped (%s)", torch_skip);
        json_object_set_new(J, "torch_skipped", json_string(torch_skip));
        return;
    }
    for (int th = 1; th <= 2; th++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "OPENBLAS_NUM_THREADS=%d OMP_NUM_THREADS=%d %s bench/torch_peer.py %s %d %s 2>&1",
                 th, th, PY, WORK, th, quick ? "S M" : "");
        FILE *p = popen(cmd, "r");
        if (!p)
            continue;
        char line[4096];
        while (fgets(line, sizeof line, p)) {
            if (strncmp(line, "TORCHSKIP ", 10) == 0) {
                line[strcspn(line, "\n")] = '\0';
                snprintf(torch_skip, sizeof torch_skip, "%.400s", line + 10);
                continue;
            }
            if (strncmp(line, "TORCHJSON ", 10) != 0) {
                fprintf(stderr, "bench: torch_peer: %s", line);
                continue;
            }
            json_t *o = json_loads(line + 10, 0, NULL);
            if (!o)
                continue;
            const char *name = json_string_value(json_object_get(o, "shape"));
            double t = json_real_value(json_object_get(o, "median_s"));
            snprintf(torch_version, sizeof torch_version, "%s",
                     json_string_value(json_object_get(o, "torch")));
            for (int i = 0; i < 4; i++)
                if (name && strcmp(name, SHAPES[i].name) == 0) {
                    if (th == 1)
                        TIMES[i].torch1 = t;
                    else
                        TIMES[i].torch2 = t;
                    json_object_set_new(o, "gflops", json_real(SHAPES[i].flops / t / 1e9));
                }
            say("torch  %-2s %d thread%s: %10.3f us", name, th, th > 1 ? "s" : " ", t * 1e6);
            json_array_append_new(arr, o);
        }
        pclose(p);
        if (torch_skip[0]) {
            say("torch: skipped (%s)", torch_skip);
            json_object_set_new(J, "torch_skipped", json_string(torch_skip));
            return;
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Codec */

static double codec_dec_mbs, codec_enc_mbs, codec_dec_ms, codec_enc_ms;
static size_t codec_req_bytes, codec_resp_bytes;

static void section_codec(void)
{
    shape *s = &SHAPES[M_];
    json_t *o = json_object();
    json_object_set_new(J, "codec", o);
    if (!s->model) {
        json_object_set_new(o, "skipped", json_string("no M model"));
        return;
    }
    const rnn_info *info = rnn_model_info(s->model);
    api_limits lim = {1024, 100000};
    wire_v1_request *req = NULL;
    wire_error e;
    double samples[2048];
    size_t n = 0;
    double budget = quick ? 0.3 : 1.0, start = now();
    while (n < 3 || (now() - start < budget && n < 2048)) {
        double t = now();
        if (wire_v1_decode(s->request, s->request_len, info, &lim, &req, &e) < 0) {
            say("codec: decode failed: %s", e.message);
            json_object_set_new(o, "skipped", json_string(e.message));
            return;
        }
        samples[n++] = now() - t;
        wire_v1_free(req);
    }
    codec_dec_ms = median(samples, n) * 1e3;
    codec_req_bytes = s->request_len;
    codec_dec_mbs = (double)s->request_len / (codec_dec_ms / 1e3) / 1e6;

    wire_v1_decode(s->request, s->request_len, info, &lim, &req, &e);
    const rnn_batch *b = wire_v1_batch(req);
    size_t no, nh;
    rnn_result_sizes(s->model, b, &no, &nh, NULL);
    rnn_result r = {.outputs = malloc(no * 4), .hidden = malloc(nh * 4)};
    char err[256];
    rnn_forward(s->model, b, &r, err, sizeof err);
    n = 0;
    start = now();
    while (n < 3 || (now() - start < budget && n < 2048)) {
        char *out = NULL;
        size_t len = 0;
        double t = now();
        if (wire_v1_encode(info->name, info, req, &r, &out, &len, &e) < 0) {
            say("codec: encode failed: %s", e.message);
            break;
        }
        samples[n++] = now() - t;
        codec_resp_bytes = len;
        free(out);
    }
    free(r.outputs);
    free(r.hidden);
    wire_v1_free(req);
    if (n) {
        codec_enc_ms = median(samples, n) * 1e3;
        codec_enc_mbs = (double)codec_resp_bytes / (codec_enc_ms / 1e3) / 1e6;
    }
    json_object_set_new(o, "decode_bytes", json_integer((json_int_t)codec_req_bytes));
    json_object_set_new(o, "decode_ms", json_real(codec_dec_ms));
    json_object_set_new(o, "decode_mb_s", json_real(codec_dec_mbs));
    json_object_set_new(o, "encode_bytes", json_integer((json_int_t)codec_resp_bytes));
    json_object_set_new(o, "encode_ms", json_real(codec_enc_ms));
    json_object_set_new(o, "encode_mb_s", json_real(codec_enc_mbs));
    say("codec: decode M %zu bytes %.3f ms (%.0f MB/s), encode %zu bytes %.3f ms (%.0f MB/s)",
        codec_req_bytes, codec_dec_ms, codec_dec_mbs, codec_resp_bytes, codec_enc_ms,
        codec_enc_mbs);
}

/* ---------------------------------------------------------------------------------------------
 * HTTP */

typedef struct {
    double rps, p50_ms, p99_ms;
    long errors, requests;
    double bytes_per_request; /* on the wire, headers included */
    int ok;
} wrk_result;

enum { PEER_RNNSERVE, PEER_BARE, PEER_FASTAPI, N_PEERS };
static const char *const PEER_NAMES[N_PEERS] = {"rnnserve", "bare libmicrohttpd", "FastAPI"};
/* [peer][shape S/M][connections 1/8] */
static wrk_result WRK[N_PEERS][2][2];
static char peer_skip[N_PEERS][256];
static double l1_e2e_s, l1_resp_bytes;
static long idle_rss_kb = -1, idle_rss_after_kb = -1, peak_rss_kb = -1, fastapi_peak_kb = -1,
            fastapi_idle_kb = -1;
static char http_skip[256];

/* wrk with SCRIPT (bench/wrk_post.lua, or bench/wrk_headers.lua with ARGS: quoted request
 * headers after the body file). */
static wrk_result run_wrk_script(int port, const char *path, const char *script,
                                 const char *body_file, const char *args, int conns, double secs)
{
    wrk_result w = {0};
    char cmd[1024];
    int threads = conns > 1 ? 2 : 1;
    snprintf(cmd, sizeof cmd,
             "wrk -t%d -c%d -d%ds --timeout 5s -s %s http://127.0.0.1:%d%s -- %s %s 2>&1", threads,
             conns, (int)(secs + 0.5), script, port, path, body_file, args);
    FILE *p = popen(cmd, "r");
    if (!p)
        return w;
    char line[2048];
    while (fgets(line, sizeof line, p)) {
        if (strncmp(line, "WRKJSON ", 8) != 0)
            continue;
        json_t *o = json_loads(line + 8, 0, NULL);
        if (!o)
            continue;
        double reqs = (double)json_integer_value(json_object_get(o, "requests"));
        double dur = (double)json_integer_value(json_object_get(o, "duration_us")) / 1e6;
        w.requests = (long)reqs;
        w.rps = dur > 0 ? reqs / dur : 0;
        w.bytes_per_request =
            reqs > 0 ? (double)json_integer_value(json_object_get(o, "bytes")) / reqs : 0;
        w.p50_ms = (double)json_integer_value(json_object_get(o, "p50_us")) / 1e3;
        w.p99_ms = (double)json_integer_value(json_object_get(o, "p99_us")) / 1e3;
        const char *keys[] = {"err_connect", "err_read", "err_write", "err_status", "err_timeout"};
        for (int k = 0; k < 5; k++)
            w.errors += (long)json_integer_value(json_object_get(o, keys[k]));
        w.ok = w.requests > 0;
        json_decref(o);
    }
    pclose(p);
    return w;
}

static wrk_result run_wrk(int port, const char *path, const char *body_file, int conns, double secs)
{
    return run_wrk_script(port, path, "bench/wrk_post.lua", body_file, "", conns, secs);
}

/* The two request paths of a peer serving models S (default) and M. */
static const char *peer_path(int shape)
{
    return shape == 0 ? "/forward" : "/v1/models/M/forward";
}

static void bench_peer(int peer, int port, pid_t pid)
{
    double secs = quick ? 1.0 : (peer == PEER_FASTAPI ? 3.0 : 3.0);
    for (int sh = 0; sh < 2; sh++) {
        const char *body = sh == 0 ? WORK "/S.request.json" : WORK "/M.request.json";
        for (int c = 0; c < 2; c++) {
            if (!alive(pid)) {
                snprintf(peer_skip[peer], sizeof peer_skip[peer], "server exited");
                return;
            }
            int conns = c == 0 ? 1 : 8;
            wrk_result w = run_wrk(port, peer_path(sh), body, conns, secs);
            WRK[peer][sh][c] = w;
            say("http %-18s %s c=%d: %9.0f req/s  p50 %.3f ms  p99 %.3f ms  errors %ld",
                PEER_NAMES[peer], sh ? "M" : "S", conns, w.rps, w.p50_ms, w.p99_ms, w.errors);
            if (peer == PEER_RNNSERVE && sh == 1 && c == 1)
                peak_rss_kb = proc_kb(pid, "VmHWM");
            if (peer == PEER_FASTAPI && sh == 1 && c == 1)
                fastapi_peak_kb = proc_kb(pid, "VmHWM");
        }
    }
}

/* Starts a peer, waits for its /readyz and checks one forward request; returns its pid or -1
 * with the reason in peer_skip. */
static pid_t start_peer(int peer, int port, const char *log, long *idle_kb)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    pid_t pid = -1;
    double timeout = 10;
    if (peer == PEER_RNNSERVE) {
        char *argv[] = {"build/rnnserve", "--config", WORK "/SM.json", "--host",
                        "127.0.0.1",      "--port",   portstr,         NULL};
        pid = spawn(argv, NULL, NULL);
    } else if (peer == PEER_BARE) {
        char *argv[] = {WORK "/mhd_bare", portstr, NULL};
        pid = spawn(argv, log, NULL);
    } else {
        if (access(PY, X_OK) != 0) {
            snprintf(peer_skip[peer], sizeof peer_skip[peer], "%s not found", PY);
            return -1;
        }
        char *argv[] = {PY, "bench/fastapi_peer.py", WORK, portstr, "S", "M", NULL};
        pid = spawn(argv, log, NULL);
        timeout = 60;
    }
    if (pid < 0) {
        snprintf(peer_skip[peer], sizeof peer_skip[peer], "cannot start: %s", strerror(errno));
        return -1;
    }
    if (wait_ready(pid, port, "/readyz", timeout, now()) < 0) {
        int st = 0;
        if (!alive(pid) && log) {
            char *text = read_file(log, NULL);
            char *skip = text ? strstr(text, "FASTAPI_SKIP ") : NULL;
            if (skip) {
                skip[strcspn(skip, "\n")] = '\0';
                snprintf(peer_skip[peer], sizeof peer_skip[peer], "%s", skip + 13);
            } else {
                snprintf(peer_skip[peer], sizeof peer_skip[peer], "exited before ready (see %s)",
                         log);
                log_tail(log);
            }
            free(text);
        } else {
            snprintf(peer_skip[peer], sizeof peer_skip[peer], "not ready after %.0f s", timeout);
        }
        (void)st;
        stop(pid);
        return -1;
    }
    /* idle: models loaded, ready, nothing served yet */
    usleep(50000);
    *idle_kb = proc_kb(pid, "VmRSS");
    /* one real request, so a broken peer is reported rather than measured */
    if (peer != PEER_BARE) {
        size_t len = 0;
        char *resp = NULL;
        int st = http_once(port, "POST", peer_path(1), SHAPES[M_].request, SHAPES[M_].request_len,
                           30, &len, &resp);
        if (st != 200) {
            snprintf(peer_skip[peer], sizeof peer_skip[peer], "POST %s answered %d: %.120s",
                     peer_path(1), st, resp ? resp : "");
            free(resp);
            stop(pid);
            return -1;
        }
        free(resp);
    }
    return pid;
}

static void section_http(void)
{
    json_t *o = json_object();
    json_object_set_new(J, "http", o);
    if (system("command -v wrk >/dev/null 2>&1") != 0) {
        snprintf(http_skip, sizeof http_skip,
                 "wrk is not installed (tools/install-deps.sh bench installs it)");
        say("http: skipped (%s)", http_skip);
        json_object_set_new(o, "skipped", json_string(http_skip));
        return;
    }
    json_object_set_new(o, "access_log", json_string("rnnserve's stderr to /dev/null"));
    const char *logs[N_PEERS] = {NULL, WORK "/mhd_bare.log", WORK "/fastapi.log"};
    for (int peer = 0; peer < N_PEERS; peer++) {
        int port = free_port();
        long idle = -1;
        pid_t pid = start_peer(peer, port, logs[peer], &idle);
        if (pid < 0) {
            say("http %s: skipped (%s)", PEER_NAMES[peer], peer_skip[peer]);
            continue;
        }
        if (peer == PEER_RNNSERVE)
            idle_rss_kb = idle;
        if (peer == PEER_FASTAPI)
            fastapi_idle_kb = idle;
        bench_peer(peer, port, pid);
        if (peer == PEER_RNNSERVE) {
            /* The server keeps freed memory while requests come, and gives it back after a
             * second without one (its once-a-second look may come up to a second late). */
            usleep(2500000);
            idle_rss_after_kb = proc_kb(pid, "VmRSS");
        }
        stop(pid);
    }
    const char *pk[N_PEERS] = {"rnnserve", "bare", "fastapi"};
    for (int peer = 0; peer < N_PEERS; peer++) {
        json_t *p = json_object();
        json_object_set_new(o, pk[peer], p);
        if (peer_skip[peer][0]) {
            json_object_set_new(p, "skipped", json_string(peer_skip[peer]));
            continue;
        }
        for (int sh = 0; sh < 2; sh++)
            for (int c = 0; c < 2; c++) {
                wrk_result *w = &WRK[peer][sh][c];
                char key[16];
                snprintf(key, sizeof key, "%s_c%d", sh ? "M" : "S", c ? 8 : 1);
                json_object_set_new(p, key,
                                    json_pack("{s:f, s:f, s:f, s:i, s:i}", "rps", w->rps, "p50_ms",
                                              w->p50_ms, "p99_ms", w->p99_ms, "requests",
                                              (json_int_t)w->requests, "errors",
                                              (json_int_t)w->errors));
            }
    }
    if (fastapi_peak_kb > 0)
        json_object_set_new(o, "fastapi_peak_rss_kb", json_integer(fastapi_peak_kb));
    if (fastapi_idle_kb > 0)
        json_object_set_new(o, "fastapi_idle_rss_kb", json_integer(fastapi_idle_kb));
    json_t *mem = json_object();
    json_object_set_new(J, "memory", mem);
    json_object_set_new(mem, "idle_rss_kb", json_integer(idle_rss_kb));
    json_object_set_new(mem, "rss_after_load_kb", json_integer(idle_rss_after_kb));
    json_object_set_new(mem, "peak_rss_kb", json_integer(peak_rss_kb));
}

/* L1 end to end: one request at a time, median of a few, against a server serving L1 alone. */
static void section_l1(void)
{
    json_t *o = json_object();
    json_object_set_new(J, "l1_end_to_end", o);
    shape *s = &SHAPES[L1_];
    if (!s->model) {
        json_object_set_new(o, "skipped", json_string("no L1 model"));
        return;
    }
    int port = free_port();
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    char *argv[] = {"build/rnnserve", "--config", WORK "/L1.json", "--host",
                    "127.0.0.1",      "--port",   portstr,         NULL};
    pid_t pid = spawn(argv, WORK "/rnnserve-L1.log", NULL);
    if (pid < 0 || wait_ready(pid, port, "/readyz", 10, now()) < 0) {
        json_object_set_new(o, "skipped", json_string("rnnserve did not start with L1"));
        say("l1: skipped (rnnserve did not start, see " WORK "/rnnserve-L1.log)");
        stop(pid);
        return;
    }
    double samples[16];
    int n = 0;
    size_t len = 0;
    for (int i = 0; i < (quick ? 3 : 7); i++) {
        double t = now();
        int st = http_once(port, "POST", "/forward", s->request, s->request_len, 30, &len, NULL);
        t = now() - t;
        if (st != 200) {
            say("l1: POST /forward answered %d", st);
            break;
        }
        if (i > 0) /* the first warms the server's scratch and helper thread */
            samples[n++] = t;
    }
    stop(pid);
    if (n == 0) {
        json_object_set_new(o, "skipped", json_string("no successful request"));
        return;
    }
    l1_e2e_s = median(samples, (size_t)n);
    l1_resp_bytes = (double)len;
    json_object_set_new(o, "median_s", json_real(l1_e2e_s));
    json_object_set_new(o, "request_bytes", json_integer((json_int_t)s->request_len));
    json_object_set_new(o, "response_bytes", json_integer((json_int_t)len));
    say("l1: end to end %.1f ms (request %zu bytes, response %zu bytes)", l1_e2e_s * 1e3,
        s->request_len, len);
}

/* ---------------------------------------------------------------------------------------------
 * generate: one request against the client's loop of round trips */

#define GEN_STEPS 200
static double gen_one_s, gen_loop_s;
static int gen_same; /* both gave the same ids */

/* The argmax of a JSON array of numbers (ties to the lowest index). */
static int argmax_json(json_t *a)
{
    int best = 0;
    for (size_t i = 1; i < json_array_size(a); i++)
        if (json_number_value(json_array_get(a, i)) >
            json_number_value(json_array_get(a, (size_t)best)))
            best = (int)i;
    return best;
}

/* The JSON body of an HTTP answer RESP (after its headers), parsed; NULL when not JSON. */
static json_t *answer_json(const char *resp)
{
    const char *b = resp ? strstr(resp, "\r\n\r\n") : NULL;
    return b ? json_loads(b + 4, 0, NULL) : NULL;
}

/* The client's loop: the prompt, then one /forward per id with the last states as h0/c0 and
 * "only_last" predictions, the argmax fed back. The ids into IDS; 0, or -1 with why. */
static int gen_loop(int port, const char *prompt_ids, int *ids, char *why, size_t whylen)
{
    char first[1024];
    snprintf(first, sizeof first,
             "{\"tokens\": [%s], \"only_last\": true, \"return\": [\"hidden\", \"cell\", "
             "\"predictions\"]}",
             prompt_ids);
    char *resp = NULL;
    int st = http_once(port, "POST", "/v1/models/char-lstm/forward", first, strlen(first), 30, NULL,
                       &resp);
    json_t *j = answer_json(resp);
    free(resp);
    for (int s = 0; s < GEN_STEPS; s++) {
        if (st != 200 || !j) {
            snprintf(why, whylen, "POST /forward answered %d at step %d", st, s);
            json_decref(j);
            return -1;
        }
        ids[s] = argmax_json(json_array_get(json_object_get(j, "predictions"), 0));
        json_t *req = json_pack("{s:[[i]],s:O,s:O,s:b,s:[sss]}", "tokens", ids[s], "h0",
                                json_object_get(j, "hidden"), "c0", json_object_get(j, "cell"),
                                "only_last", 1, "return", "hidden", "cell", "predictions");
        char *body = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        json_decref(j);
        if (s + 1 == GEN_STEPS) { /* the last id is not fed back: generate's states are */
            free(body);
            return 0;
        }
        st = http_once(port, "POST", "/v1/models/char-lstm/forward", body, strlen(body), 30, NULL,
                       &resp);
        free(body);
        j = answer_json(resp);
        free(resp);
    }
    return 0;
}

static void section_generate(void)
{
    json_t *o = json_object();
    json_object_set_new(J, "generate", o);
    int port = free_port();
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    char *argv[] = {"build/rnnserve", "--config",  "examples/char-lstm/config.json",
                    "--host",         "127.0.0.1", "--port",
                    portstr,          NULL};
    pid_t pid = spawn(argv, WORK "/rnnserve-char.log", NULL);
    if (pid < 0 || wait_ready(pid, port, "/readyz", 10, now()) < 0) {
        json_object_set_new(o, "skipped", json_string("rnnserve did not start with char-lstm"));
        say("generate: skipped (rnnserve did not start, see " WORK "/rnnserve-char.log)");
        stop(pid);
        return;
    }
    /* "Licensed under the " */
    const char *prompt =
        "[35, 58, 52, 54, 63, 68, 54, 53, 1, 70, 63, 53, 54, 67, 1, 69, 57, 54, 1]";
    char body[512];
    snprintf(body, sizeof body, "{\"tokens\": [%s], \"steps\": %d, \"temperature\": 0}", prompt,
             GEN_STEPS);
    double one[8], loop[8];
    int n = 0, reps = quick ? 2 : 5, ids[GEN_STEPS], same = 1;
    char why[256] = "";
    for (int i = 0; i < reps; i++) {
        char *resp = NULL;
        double t = now();
        int st = http_once(port, "POST", "/v1/models/char-lstm/generate", body, strlen(body), 30,
                           NULL, &resp);
        t = now() - t;
        json_t *j = answer_json(resp);
        free(resp);
        if (st != 200 || !j) {
            snprintf(why, sizeof why, "POST generate answered %d", st);
            json_decref(j);
            break;
        }
        double t2 = now();
        if (gen_loop(port, prompt, ids, why, sizeof why) < 0) {
            json_decref(j);
            break;
        }
        t2 = now() - t2;
        json_t *got = json_array_get(json_object_get(j, "tokens"), 0);
        for (int s = 0; s < GEN_STEPS; s++)
            same = same && json_integer_value(json_array_get(got, (size_t)s)) == ids[s];
        json_decref(j);
        one[n] = t;
        loop[n++] = t2;
    }
    stop(pid);
    if (n == 0) {
        json_object_set_new(o, "skipped", json_string(why));
        say("generate: skipped (%s)", why);
        return;
    }
    gen_same = same;
    gen_one_s = median(one, (size_t)n);
    gen_loop_s = median(loop, (size_t)n);
    json_object_set_new(o, "steps", json_integer(GEN_STEPS));
    json_object_set_new(o, "generate_median_s", json_real(gen_one_s));
    json_object_set_new(o, "forward_loop_median_s", json_real(gen_loop_s));
    json_object_set_new(o, "speedup", json_real(gen_loop_s / gen_one_s));
    json_object_set_new(o, "same_ids", json_boolean(same));
    say("generate: one %d-step request %.1f ms, %d /forward round trips %.1f ms: %.1fx%s",
        GEN_STEPS, gen_one_s * 1e3, GEN_STEPS, gen_loop_s * 1e3, gen_loop_s / gen_one_s,
        same ? "" : " (the ids DIFFER)");
}

static double startup_s;

static void section_startup(void)
{
    json_t *o = json_object();
    json_object_set_new(J, "startup", o);
    if (!SHAPES[L_].model) {
        json_object_set_new(o, "skipped", json_string("no L model"));
        return;
    }
    double samples[8];
    int n = 0;
    for (int i = 0; i < (quick ? 3 : 7); i++) {
        int port = free_port();
        char portstr[16];
        snprintf(portstr, sizeof portstr, "%d", port);
        char *argv[] = {"build/rnnserve", "--config", WORK "/L.json", "--host",
                        "127.0.0.1",      "--port",   portstr,        NULL};
        double t0 = now();
        pid_t pid = spawn(argv, NULL, NULL);
        double t = pid < 0 ? -1 : wait_ready(pid, port, "/readyz", 10, t0);
        stop(pid);
        if (t < 0) {
            say("startup: rnnserve with L did not become ready");
            break;
        }
        samples[n++] = t;
    }
    if (!n) {
        json_object_set_new(o, "skipped", json_string("not ready"));
        return;
    }
    startup_s = median(samples, (size_t)n);
    json_object_set_new(o, "median_s", json_real(startup_s));
    json_object_set_new(o, "runs", json_integer(n));
    say("startup: exec to 200 from /readyz with L weights: %.1f ms", startup_s * 1e3);
}

/* ---------------------------------------------------------------------------------------------
 * Binary tensors and compression (issue 14): model M as NVIDIA's client sends it by default. */

static wrk_result bin_json, bin_v2, gz_plain, gz_gzip;
static size_t bin_header_len, bin_body_len;
static char bin_skip[256];
static int bin_ran;

/* The M request in the binary tensor data extension's framing, as tritonclient.http frames it
 * (compact JSON header, then input [16, 100, 32] FP32 zero-padded and lengths [16] INT64 as raw
 * little-endian bytes; binary_data_output since no outputs are named), into WORK/M.v2bin. */
static int write_binary_request(const shape *s, char *why, size_t whylen)
{
    int32_t T = 0;
    for (int i = 0; i < s->batch; i++)
        T = s->lengths[i] > T ? s->lengths[i] : T;
    const size_t I = (size_t)s->input, B = (size_t)s->batch, xbytes = B * (size_t)T * I * 4;
    sbuf b = {0};
    sb_printf(&b,
              "{\"inputs\":[{\"name\":\"input\",\"shape\":[%zu,%d,%zu],\"datatype\":\"FP32\","
              "\"parameters\":{\"binary_data_size\":%zu}},{\"name\":\"lengths\",\"shape\":[%zu],"
              "\"datatype\":\"INT64\",\"parameters\":{\"binary_data_size\":%zu}}],"
              "\"parameters\":{\"binary_data_output\":true}}",
              B, T, I, xbytes, B, B * 8);
    bin_header_len = b.len;
    bin_body_len = b.len + xbytes + B * 8;
    char *body = calloc(1, bin_body_len);
    if (!body) {
        free(b.s);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    memcpy(body, b.s, b.len);
    float *x = (float *)calloc(xbytes / 4 + 1, sizeof(float));
    size_t at = 0;
    for (size_t i = 0; x && i < B; i++) {
        memcpy(x + i * (size_t)T * I, s->x + at * I, (size_t)s->lengths[i] * I * sizeof(float));
        at += (size_t)s->lengths[i];
    }
    if (x)
        memcpy(body + b.len, x, xbytes); /* the host's little-endian floats, as tobytes() */
    for (size_t i = 0; i < B; i++) {
        int64_t n = s->lengths[i];
        memcpy(body + b.len + xbytes + 8 * i, &n, 8);
    }
    int rc = x ? write_file(WORK "/M.v2bin", body, bin_body_len) : -1;
    if (rc < 0)
        snprintf(why, whylen, "cannot write " WORK "/M.v2bin");
    free(x);
    free(body);
    free(b.s);
    return rc;
}

/* The run of median rps among N (sorted on a copy; N <= 3). */
static wrk_result median_by_rps(const wrk_result *w, int n)
{
    wrk_result v[3];
    memcpy(v, w, (size_t)n * sizeof *v);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j].rps < v[j - 1].rps; j--) {
            wrk_result t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

static void section_binary(void)
{
    json_t *o = json_object();
    json_object_set_new(J, "binary", o);
    bin_ran = 1;
    if (!SHAPES[M_].model)
        snprintf(bin_skip, sizeof bin_skip, "shape M was not prepared");
    else if (system("command -v wrk >/dev/null 2>&1") != 0)
        snprintf(bin_skip, sizeof bin_skip,
                 "wrk is not installed (tools/install-deps.sh bench installs it)");
    else
        write_binary_request(&SHAPES[M_], bin_skip, sizeof bin_skip);
    int port = free_port();
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    char *argv[] = {"build/rnnserve", "--config", WORK "/SM.json", "--host",
                    "127.0.0.1",      "--port",   portstr,         NULL};
    pid_t pid = bin_skip[0] ? -1 : spawn(argv, NULL, NULL);
    if (!bin_skip[0] && (pid < 0 || wait_ready(pid, port, "/readyz", 10, now()) < 0))
        snprintf(bin_skip, sizeof bin_skip, "build/rnnserve did not start");
    if (bin_skip[0]) {
        say("binary: skipped (%s)", bin_skip);
        json_object_set_new(o, "skipped", json_string(bin_skip));
        if (pid > 0)
            stop(pid);
        return;
    }
    /* Each measure three times (once with --quick), the four interleaved, and each row's median
     * run by rps kept: the peers are sampled at the same moments, so a busy second of the machine
     * (the load generator shares its two cores) moves every measure alike rather than one. */
    const double secs = quick ? 1.0 : 2.0;
    const int rounds = quick ? 1 : 3;
    char ihcl[96];
    snprintf(ihcl, sizeof ihcl, "'Inference-Header-Content-Length: %zu'", bin_header_len);
    wrk_result got[4][3];
    for (int r = 0; r < rounds; r++) {
        got[0][r] = run_wrk(port, "/v1/models/M/forward", WORK "/M.request.json", 8, secs);
        got[1][r] = run_wrk_script(port, "/v2/models/M/infer", "bench/wrk_headers.lua",
                                   WORK "/M.v2bin", ihcl, 8, secs);
        got[2][r] = run_wrk_script(port, "/v1/models/M/forward", "bench/wrk_headers.lua",
                                   WORK "/M.request.json", "", 8, secs);
        got[3][r] = run_wrk_script(port, "/v1/models/M/forward", "bench/wrk_headers.lua",
                                   WORK "/M.request.json", "'Accept-Encoding: gzip'", 8, secs);
    }
    wrk_result *keep[4] = {&bin_json, &bin_v2, &gz_plain, &gz_gzip};
    for (int m = 0; m < 4; m++)
        *keep[m] = median_by_rps(got[m], rounds);
    stop(pid);
    const struct {
        const char *key;
        const wrk_result *w;
    } runs[] = {{"forward_json_M_c8", &bin_json},
                {"v2_binary_M_c8", &bin_v2},
                {"forward_json_M_plain_c8", &gz_plain},
                {"forward_json_M_gzip_c8", &gz_gzip}};
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        const wrk_result *w = runs[i].w;
        say("binary %-24s %9.0f req/s  p50 %.3f ms  p99 %.3f ms  %.0f bytes/response  errors %ld",
            runs[i].key, w->rps, w->p50_ms, w->p99_ms, w->bytes_per_request, w->errors);
        json_object_set_new(o, runs[i].key,
                            json_pack("{s:f, s:f, s:f, s:i, s:i, s:f}", "rps", w->rps, "p50_ms",
                                      w->p50_ms, "p99_ms", w->p99_ms, "requests",
                                      (json_int_t)w->requests, "errors", (json_int_t)w->errors,
                                      "bytes_per_response", w->bytes_per_request));
    }
    json_object_set_new(o, "v2_request_bytes", json_integer((json_int_t)bin_body_len));
    json_object_set_new(o, "json_request_bytes", json_integer((json_int_t)SHAPES[M_].request_len));
}

/* ---------------------------------------------------------------------------------------------
 * The table */

typedef struct {
    sbuf md;
    json_t *targets;
} table;

static void row(table *t, const char *measure, const char *ours, const char *peer,
                const char *ratio, const char *target, const char *met)
{
    sb_printf(&t->md, "| %s | %s | %s | %s | %s | %s |\n", measure, ours, peer, ratio, target, met);
}

static const char *verdict(table *t, const char *name, int measured, int ok, const char *detail)
{
    json_array_append_new(t->targets, json_pack("{s:s, s:s, s:s}", "target", name, "result",
                                                !measured ? "not measured"
                                                : ok      ? "met"
                                                          : "missed",
                                                "detail", detail));
    return !measured ? "n/a" : ok ? "**met**" : "missed";
}

static char *fmt_time(char *buf, size_t n, double s)
{
    if (s <= 0)
        snprintf(buf, n, "-");
    else if (s < 1e-3)
        snprintf(buf, n, "%.2f us", s * 1e6);
    else if (s < 1)
        snprintf(buf, n, "%.2f ms", s * 1e3);
    else
        snprintf(buf, n, "%.2f s", s);
    return buf;
}

/* ---------------------------------------------------------------------------------------------
 * The scheduler: model B (nn.LSTM(64, 512, 2), 50-step sequences, "return": ["hidden"]). */

typedef struct {
    double rps, p50_ms, p99_ms, max_ms;
    long requests, n200, n503, n503_retry, nother, timeouts, errors;
} wrk_status;

static wrk_status run_wrk_status(int port, const char *path, const char *body_file, int conns,
                                 double secs, double timeout_s)
{
    wrk_status w = {0};
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "wrk -t2 -c%d -d%ds --timeout %ds -s bench/wrk_status.lua http://127.0.0.1:%d%s -- "
             "%s 2>&1",
             conns, (int)(secs + 0.5), (int)timeout_s, port, path, body_file);
    FILE *p = popen(cmd, "r");
    if (!p)
        return w;
    char line[2048];
    while (fgets(line, sizeof line, p)) {
        if (strncmp(line, "WRKJSON ", 8) != 0)
            continue;
        json_t *o = json_loads(line + 8, 0, NULL);
        if (!o)
            continue;
#define GETI(k) ((long)json_integer_value(json_object_get(o, k)))
        double dur = (double)GETI("duration_us") / 1e6;
        w.requests = GETI("requests");
        w.rps = dur > 0 ? (double)w.requests / dur : 0;
        w.p50_ms = (double)GETI("p50_us") / 1e3;
        w.p99_ms = (double)GETI("p99_us") / 1e3;
        w.max_ms = (double)GETI("max_us") / 1e3;
        w.n200 = GETI("n200");
        w.n503 = GETI("n503");
        w.n503_retry = GETI("n503_retry");
        w.nother = GETI("nother");
        w.timeouts = GETI("err_timeout");
        w.errors = GETI("err_connect") + GETI("err_read") + GETI("err_write");
        if (dur > 0) /* answered 200 per second */
            w.rps = (double)w.n200 / dur;
#undef GETI
        json_decref(o);
    }
    pclose(p);
    return w;
}

/* One-sequence probes sent while the overload runs: their latency and status. */
typedef struct {
    int port, n;
    const char *body;
    size_t len;
    double delay_s;
    double lat[32];
    int status[32];
} probe;

static void *probe_main(void *arg)
{
    probe *pr = arg;
    usleep((useconds_t)(pr->delay_s * 1e6));
    for (pr->n = 0; pr->n < 8; pr->n++) {
        double t = now();
        pr->status[pr->n] =
            http_once(pr->port, "POST", "/forward", pr->body, pr->len, 10, NULL, NULL);
        pr->lat[pr->n] = now() - t;
        usleep(700000);
    }
    return NULL;
}

static double sched_seq_1x64, sched_seq_64x1, sched_seq_2x64;
static wrk_status sched_over;
static double probe_max_ms = -1, probe_med_ms = -1;
static int probe_n, probe_answered;
static char sched_skip[1100];

static void section_sched(void)
{
    json_t *o = json_object();
    json_object_set_new(J, "sched", o);
    char why[1024];
    if (system("command -v wrk >/dev/null 2>&1") != 0) {
        snprintf(sched_skip, sizeof sched_skip, "wrk is not installed");
    } else if (shape_prepare(&SB, why, sizeof why) < 0) {
        snprintf(sched_skip, sizeof sched_skip, "model B: %s", why);
    }
    if (sched_skip[0]) {
        say("sched: skipped (%s)", sched_skip);
        json_object_set_new(o, "skipped", json_string(sched_skip));
        return;
    }
    /* The one-sequence request (B's first sequence), and the 64-sequence one with a deadline. */
    sbuf one = {0}, dl = {0};
    sb_printf(&one, "{\"inputs\": [[");
    for (int t = 0; t < SB.lengths[0]; t++) {
        sb_printf(&one, "%s[", t ? ", " : "");
        for (int k = 0; k < SB.input; k++)
            sb_printf(&one, "%s%.9g", k ? ", " : "", (double)SB.x[(size_t)t * SB.input + k]);
        sb_printf(&one, "]");
    }
    sb_printf(&one, "]], \"return\": [\"hidden\"]}");
    write_file(WORK "/B1.request.json", one.s, one.len);
    sb_printf(&dl, "%.*s, \"timeout_ms\": 2000}", (int)SB.request_len - 1, SB.request);
    write_file(WORK "/B64t.request.json", dl.s, dl.len);

    int port = free_port();
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    char *argv[] = {"build/rnnserve", "--config", WORK "/B.json", "--host",
                    "127.0.0.1",      "--port",   portstr,        NULL};
    pid_t pid = spawn(argv, WORK "/rnnserve-B.log", NULL);
    if (pid < 0 || wait_ready(pid, port, "/readyz", 10, now()) < 0) {
        snprintf(sched_skip, sizeof sched_skip, "rnnserve did not start with B");
        say("sched: skipped (%s, see " WORK "/rnnserve-B.log)", sched_skip);
        json_object_set_new(o, "skipped", json_string(sched_skip));
        stop(pid);
        free(one.s);
        free(dl.s);
        return;
    }
    double secs = quick ? 2.0 : 5.0;
    wrk_result w1 = run_wrk(port, "/forward", WORK "/B.request.json", 1, secs);
    wrk_result w2 = run_wrk(port, "/forward", WORK "/B.request.json", 2, secs);
    wrk_result w64 = run_wrk(port, "/forward", WORK "/B1.request.json", 64, secs);
    sched_seq_1x64 = w1.rps * SB.batch;
    sched_seq_2x64 = w2.rps * SB.batch;
    sched_seq_64x1 = w64.rps;
    say("sched B: 1 conn x 64 seqs %.0f seq/s; 2 conns x 64 seqs %.0f seq/s; 64 conns x 1 seq "
        "%.0f seq/s (p50 %.1f ms, p99 %.1f ms)",
        sched_seq_1x64, sched_seq_2x64, sched_seq_64x1, w64.p50_ms, w64.p99_ms);

    /* Overload: 128 connections of 64-sequence requests with "timeout_ms": 2000, client timeout
     * 3 s, 10 s; one-sequence probes meanwhile. */
    probe pr = {.port = port, .body = one.s, .len = one.len, .delay_s = 2.0};
    pthread_t th;
    int probing = pthread_create(&th, NULL, probe_main, &pr) == 0;
    sched_over =
        run_wrk_status(port, "/forward", WORK "/B64t.request.json", 128, quick ? 4.0 : 10.0, 3);
    if (probing)
        pthread_join(th, NULL);
    probe_n = pr.n;
    double lat[32];
    for (int i = 0; i < pr.n; i++) {
        lat[i] = pr.lat[i] * 1e3;
        probe_answered += pr.status[i] == 200 || pr.status[i] == 503;
        if (lat[i] > probe_max_ms)
            probe_max_ms = lat[i];
    }
    if (pr.n)
        probe_med_ms = median(lat, (size_t)pr.n);
    say("sched B overload: %.0f answered 200/s (%.0f seq/s), %ld x 200, %ld x 503 (%ld with "
        "Retry-After), %ld other, %ld client timeouts, %ld socket errors",
        sched_over.rps, sched_over.rps * SB.batch, sched_over.n200, sched_over.n503,
        sched_over.n503_retry, sched_over.nother, sched_over.timeouts, sched_over.errors);
    say("sched B probes during overload: %d sent, %d answered, median %.1f ms, max %.1f ms", pr.n,
        probe_answered, probe_med_ms, probe_max_ms);
    stop(pid);
    json_object_set_new(o, "seq_per_s_1conn_x64", json_real(sched_seq_1x64));
    json_object_set_new(o, "seq_per_s_2conn_x64", json_real(sched_seq_2x64));
    json_object_set_new(o, "seq_per_s_64conn_x1", json_real(sched_seq_64x1));
    json_object_set_new(
        o, "overload",
        json_pack("{s:f, s:i, s:i, s:i, s:i, s:i, s:i}", "ok_per_s", sched_over.rps, "n200",
                  (json_int_t)sched_over.n200, "n503", (json_int_t)sched_over.n503,
                  "n503_retry_after", (json_int_t)sched_over.n503_retry, "other",
                  (json_int_t)sched_over.nother, "client_timeouts", (json_int_t)sched_over.timeouts,
                  "socket_errors", (json_int_t)sched_over.errors));
    json_object_set_new(o, "probe_max_ms", json_real(probe_max_ms));
    json_object_set_new(o, "probe_median_ms", json_real(probe_med_ms));
    free(one.s);
    free(dl.s);
}

static void sched_rows(table *t)
{
    char a[256], b[256], c[256], d[256];
    if (sched_skip[0]) {
        row(t, "scheduler (model B)", "skipped", sched_skip, "", "", "");
        return;
    }
    double r = sched_seq_1x64 > 0 ? sched_seq_64x1 / sched_seq_1x64 : 0;
    snprintf(a, sizeof a, "%.0f seq/s", sched_seq_64x1);
    snprintf(b, sizeof b, "1 connection x 64 seqs: %.0f seq/s; 2 connections: %.0f seq/s",
             sched_seq_1x64, sched_seq_2x64);
    snprintf(c, sizeof c, "%.2fx", r);
    snprintf(d, sizeof d, "%.2f", r);
    row(t, "B: 64 connections x 1 sequence vs 1 connection x 64 in one request", a, b, c, ">= 0.9",
        verdict(t, "B merged throughput", 1, r >= 0.9, d));
    const wrk_status *w = &sched_over;
    double cap = sched_seq_1x64 / SB.batch, share = cap > 0 ? w->rps / cap : 0;
    int others_ok = w->n503 == w->n503_retry && w->nother == 0;
    snprintf(a, sizeof a,
             "%.1f answered 200/s; %ld x 200, %ld x 503 (%ld with Retry-After), %ld other, %ld "
             "client timeouts",
             w->rps, w->n200, w->n503, w->n503_retry, w->nother, w->timeouts);
    snprintf(b, sizeof b, "capacity (1 connection) %.1f req/s", cap);
    snprintf(c, sizeof c, "%.0f%% of capacity", 100 * share);
    snprintf(d, sizeof d, "%.0f%% of capacity, %ld timeouts", 100 * share, w->timeouts);
    row(t, "B overload: 128 connections x 64 seqs, \"timeout_ms\": 2000, client timeout 3 s, 10 s",
        a, b, c,
        "0 client timeouts; 200s >= 80% of capacity; every other answer a 503 with "
        "Retry-After",
        verdict(t, "B overload", w->requests > 0, w->timeouts == 0 && share >= 0.8 && others_ok,
                d));
    snprintf(a, sizeof a, "max %.1f ms, median %.1f ms (%d of %d answered)", probe_max_ms,
             probe_med_ms, probe_answered, probe_n);
    snprintf(d, sizeof d, "max %.1f ms", probe_max_ms);
    row(t, "a 1-sequence request during that overload", a, "", "", "answered in < 100 ms",
        verdict(t, "B probe during overload", probe_n > 0,
                probe_answered == probe_n && probe_max_ms < 100, d));
}

static void binary_rows(table *t)
{
    char b[256], c[256], d[128], detail[256];
    if (!bin_ran)
        return;
    if (bin_skip[0]) {
        row(t, "M via /v2 binary in and out, 8 connections", "skipped", bin_skip, "", ">= 5x",
            verdict(t, "v2 binary M >= 5x /forward JSON M", 0, 0, bin_skip));
        return;
    }
    const int ok1 = bin_v2.ok && bin_json.ok && !bin_v2.errors && !bin_json.errors;
    const double r1 = bin_json.rps > 0 ? bin_v2.rps / bin_json.rps : 0;
    snprintf(b, sizeof b, "%.0f req/s (%.0f KB in, %.0f KB out)", bin_v2.rps, bin_body_len / 1024.0,
             bin_v2.bytes_per_request / 1024.0);
    snprintf(c, sizeof c, "/forward JSON %.0f req/s (%.0f KB in, %.0f KB out)", bin_json.rps,
             SHAPES[M_].request_len / 1024.0, bin_json.bytes_per_request / 1024.0);
    snprintf(d, sizeof d, "%.2fx", r1);
    snprintf(detail, sizeof detail, "%.0f vs %.0f req/s (%.2fx), errors %ld/%ld", bin_v2.rps,
             bin_json.rps, r1, bin_v2.errors, bin_json.errors);
    row(t, "M via /v2 binary in and out, 8 connections", b, c, d, ">= 5x",
        verdict(t, "v2 binary M >= 5x /forward JSON M", ok1, ok1 && r1 >= 5, detail));
    const int ok2 = gz_gzip.ok && gz_plain.ok && !gz_gzip.errors && !gz_plain.errors;
    const double size = gz_gzip.bytes_per_request > 0
                            ? gz_plain.bytes_per_request / gz_gzip.bytes_per_request
                            : 0,
                 rps = gz_plain.rps > 0 ? gz_gzip.rps / gz_plain.rps : 0;
    snprintf(b, sizeof b, "%.0f KB, %.0f req/s", gz_gzip.bytes_per_request / 1024.0, gz_gzip.rps);
    snprintf(c, sizeof c, "plain %.0f KB, %.0f req/s", gz_plain.bytes_per_request / 1024.0,
             gz_plain.rps);
    /* Two targets, two verdicts: the size a coding gains and what it costs in throughput. */
    snprintf(d, sizeof d, "%.1fx smaller", size);
    snprintf(detail, sizeof detail, "%.0f vs %.0f KB (%.2fx)", gz_gzip.bytes_per_request / 1024.0,
             gz_plain.bytes_per_request / 1024.0, size);
    row(t, "M JSON response with Accept-Encoding: gzip, 8 connections: size", b, c, d,
        ">= 3x smaller",
        verdict(t, "gzip M response >= 3x smaller", ok2, ok2 && size >= 3, detail));
    snprintf(d, sizeof d, "%.2fx the rps", rps);
    snprintf(detail, sizeof detail, "%.0f vs %.0f req/s (%.2fx)", gz_gzip.rps, gz_plain.rps, rps);
    row(t, "the same: requests/s, gzip vs plain", "", "", d, ">= 0.8x rps",
        verdict(t, "gzip M response >= 0.8x the plain rps", ok2, ok2 && rps >= 0.8, detail));
}

/* ---------------------------------------------------------------------------------------------
 * Sessions: model B stepped one step per request, the state kept by the server vs carried by the
 * client. */

#define N_SESSIONS 1024
static double sess_steps_s, carried_steps_s;
static long sess_errors = -1, carried_errors = -1;
static size_t sess_body_bytes, carried_body_bytes;
static char sess_skip[1100];

/* {"inputs": [[[x_0]]] ...} for B's first step; with the client's state (h0, c0: B's rows of
 * small values) when CARRIED. */
static void step_body(sbuf *b, int carried)
{
    sb_printf(b, "{\"inputs\": [[[");
    for (int k = 0; k < SB.input; k++)
        sb_printf(b, "%s%.9g", k ? ", " : "", (double)SB.x[k]);
    sb_printf(b, "]]]");
    if (!carried) {
        /* what a streaming client reads at each step; the state stays on the server */
        sb_printf(b, ", \"return\": [\"outputs\"]}");
        return;
    }
    uint64_t rng = 99;
    for (int s = 0; s < 2; s++) {
        sb_printf(b, ", \"%s\": [[", s ? "c0" : "h0");
        for (int r = 0; r < SB.layers; r++) {
            sb_printf(b, "%s[", r ? ", " : "");
            for (int k = 0; k < SB.hidden; k++)
                sb_printf(b, "%s%.9g", k ? ", " : "", (double)rng_uniform(&rng, 0.5f));
            sb_printf(b, "]");
        }
        sb_printf(b, "]]");
    }
    sb_printf(b, "}"); /* the whole response: the client needs hidden and cell back */
}

static void section_sessions(void)
{
    json_t *o = json_object();
    json_object_set_new(J, "sessions", o);
    char why[1024];
    if (system("command -v wrk >/dev/null 2>&1") != 0)
        snprintf(sess_skip, sizeof sess_skip, "wrk is not installed");
    else if (!SB.model && shape_prepare(&SB, why, sizeof why) < 0)
        snprintf(sess_skip, sizeof sess_skip, "model B: %s", why);
    int port = free_port();
    pid_t pid = -1;
    if (!sess_skip[0]) {
        char portstr[16];
        snprintf(portstr, sizeof portstr, "%d", port);
        char *argv[] = {"build/rnnserve", "--config", WORK "/B.json", "--host",
                        "127.0.0.1",      "--port",   portstr,        NULL};
        pid = spawn(argv, WORK "/rnnserve-sessions.log", NULL);
        if (pid < 0 || wait_ready(pid, port, "/readyz", 10, now()) < 0)
            snprintf(sess_skip, sizeof sess_skip, "rnnserve did not start with B");
    }
    FILE *ids = NULL;
    for (int i = 0; !sess_skip[0] && i < N_SESSIONS; i++) {
        char *resp = NULL;
        size_t len = 0;
        int st = http_once(port, "POST", "/v1/models/B/sessions", "", 0, 10, &len, &resp);
        const char *body = resp ? strstr(resp, "\r\n\r\n") : NULL; /* resp holds the headers */
        json_t *j = st == 201 && body ? json_loadb(body + 4, len, 0, NULL) : NULL;
        const char *id = json_string_value(json_object_get(j, "session"));
        if (!ids)
            ids = fopen(WORK "/sessions.txt", "w");
        if (!id || !ids)
            snprintf(sess_skip, sizeof sess_skip, "creating session %d: HTTP %d", i, st);
        else
            fprintf(ids, "%s\n", id);
        json_decref(j);
        free(resp);
    }
    if (ids)
        fclose(ids);
    if (sess_skip[0]) {
        say("sessions: skipped (%s)", sess_skip);
        json_object_set_new(o, "skipped", json_string(sess_skip));
        stop(pid);
        return;
    }
    sbuf step = {0}, carried = {0};
    step_body(&step, 0);
    step_body(&carried, 1);
    sess_body_bytes = step.len;
    carried_body_bytes = carried.len;
    write_file(WORK "/B.step.json", step.s, step.len);
    write_file(WORK "/B.carried.json", carried.s, carried.len);
    double secs = quick ? 2.0 : 5.0;
    char cmd[1024], line[2048];
    snprintf(
        cmd, sizeof cmd,
        "wrk -t2 -c64 -d%ds --timeout 5s -s bench/wrk_sessions.lua http://127.0.0.1:%d -- " WORK
        "/B.step.json " WORK "/sessions.txt 2 2>&1",
        (int)(secs + 0.5), port);
    FILE *p = popen(cmd, "r");
    while (p && fgets(line, sizeof line, p)) {
        json_t *w = strncmp(line, "WRKJSON ", 8) == 0 ? json_loads(line + 8, 0, NULL) : NULL;
        if (!w)
            continue;
        double dur = (double)json_integer_value(json_object_get(w, "duration_us")) / 1e6;
        sess_steps_s =
            dur > 0 ? (double)json_integer_value(json_object_get(w, "requests")) / dur : 0;
        sess_errors = 0;
        const char *keys[] = {"err_connect", "err_read", "err_write", "err_status", "err_timeout"};
        for (int k = 0; k < 5; k++)
            sess_errors += (long)json_integer_value(json_object_get(w, keys[k]));
        json_decref(w);
    }
    if (p)
        pclose(p);
    wrk_result c = run_wrk(port, "/v1/models/B/forward", WORK "/B.carried.json", 64, secs);
    carried_steps_s = c.rps;
    carried_errors = c.ok ? c.errors : -1;
    say("sessions B: %d sessions from 64 connections %.0f steps/s (%zu-byte requests, %ld errors); "
        "client-carried state from 64 connections %.0f steps/s (%zu-byte requests, %ld errors)",
        N_SESSIONS, sess_steps_s, sess_body_bytes, sess_errors, carried_steps_s, carried_body_bytes,
        carried_errors);
    stop(pid);
    json_object_set_new(o, "sessions", json_integer(N_SESSIONS));
    json_object_set_new(o, "steps_per_s_sessions", json_real(sess_steps_s));
    json_object_set_new(o, "steps_per_s_client_carried", json_real(carried_steps_s));
    json_object_set_new(o, "errors_sessions", json_integer(sess_errors));
    json_object_set_new(o, "errors_client_carried", json_integer(carried_errors));
    json_object_set_new(o, "request_bytes_sessions", json_integer((json_int_t)sess_body_bytes));
    json_object_set_new(o, "request_bytes_client_carried",
                        json_integer((json_int_t)carried_body_bytes));
    free(step.s);
    free(carried.s);
}

static void sessions_rows(table *t)
{
    char a[256], b[256], c[64], d[128];
    if (sess_skip[0]) {
        row(t, "sessions (model B)", "skipped", sess_skip, "", "", "");
        return;
    }
    double r = carried_steps_s > 0 ? sess_steps_s / carried_steps_s : 0;
    snprintf(a, sizeof a, "%.0f steps/s (%ld errors)", sess_steps_s, sess_errors);
    snprintf(b, sizeof b, "client carries h0/c0: %.0f steps/s (%ld errors)", carried_steps_s,
             carried_errors);
    snprintf(c, sizeof c, "%.2fx", r);
    snprintf(d, sizeof d, "%.2fx", r);
    row(t,
        "B: 1,024 sessions stepped 1 step per request from 64 connections vs the state carried "
        "by the client (/forward with 1 step + h0 + c0), 64 connections",
        a, b, c, ">= 4x",
        verdict(t, "B session steps", sess_steps_s > 0 && carried_steps_s > 0,
                r >= 4 && sess_errors == 0 && carried_errors == 0, d));
}

static void print_table(void)
{
    table t = {{0}, json_array()};
    char a[256], b[256], c[256], d[256], tt[64], tp[64];
    sb_printf(&t.md, "| measure | rnnserve | peer | ratio | target | |\n");
    sb_printf(&t.md, "| --- | --- | --- | --- | --- | --- |\n");
    snprintf(a, sizeof a, "%.0f GFLOP/s 1 thread, %.0f GFLOP/s 2 threads", peak1, peak2);
    row(&t, "FMA peak (measured here)", a, "", "", "", "");

    /* engine rows */
    for (int i = 0; i < 4; i++) {
        shape *s = &SHAPES[i];
        for (int th = 1; th <= 2; th++) {
            double e = th == 1 ? TIMES[i].t1 : TIMES[i].t2;
            double p = th == 1 ? TIMES[i].torch1 : TIMES[i].torch2;
            double pk = th == 1 ? peak1 : peak2;
            if (e <= 0)
                continue;
            double gf = s->flops / e / 1e9;
            snprintf(a, sizeof a, "engine %s, %d thread%s", s->name, th, th > 1 ? "s" : "");
            if (i == S_)
                snprintf(b, sizeof b, "%s", fmt_time(tt, sizeof tt, e));
            else
                snprintf(b, sizeof b, "%s, %.1f GFLOP/s, %.0f%% of peak",
                         fmt_time(tt, sizeof tt, e), gf, pk > 0 ? 100 * gf / pk : 0);
            if (p > 0)
                snprintf(c, sizeof c, "PyTorch %s", fmt_time(tp, sizeof tp, p));
            else
                snprintf(c, sizeof c, "PyTorch: %s", torch_skip[0] ? "skipped" : "-");
            if (p > 0)
                snprintf(d, sizeof d, "%.1fx faster", p / e);
            else
                snprintf(d, sizeof d, "-");
            const char *target = "", *met = "";
            char detail[256];
            if (th == 1 && i == M_) {
                target = ">= 4x PyTorch, >= 60% of peak";
                snprintf(detail, sizeof detail, "%.2fx, %.0f%% of peak", p > 0 ? p / e : 0,
                         100 * gf / pk);
                met = verdict(&t, "engine M 1 thread", p > 0 && pk > 0,
                              p / e >= 4 && 100 * gf / pk >= 60, detail);
            } else if (th == 1 && i == L_) {
                target = ">= 1.7x PyTorch, >= 65% of peak";
                snprintf(detail, sizeof detail, "%.2fx, %.0f%% of peak", p > 0 ? p / e : 0,
                         100 * gf / pk);
                met = verdict(&t, "engine L 1 thread", p > 0 && pk > 0,
                              p / e >= 1.7 && 100 * gf / pk >= 65, detail);
            } else if (th == 1 && i == S_) {
                target = "<= 2 us per forward";
                snprintf(detail, sizeof detail, "%.2f us", e * 1e6);
                met = verdict(&t, "engine S", 1, e <= 2e-6, detail);
            }
            row(&t, a, b, c, d, target, met);
        }
        if (i == L_ && TIMES[i].t1 > 0 && TIMES[i].t2 > 0) {
            double r = TIMES[i].t1 / TIMES[i].t2;
            snprintf(b, sizeof b, "%.2fx", r);
            snprintf(c, sizeof c, "FMA loop: %.2fx%s", peak1 > 0 ? peak2 / peak1 : 0,
                     TIMES[i].torch2 > 0 ? "" : "");
            if (TIMES[i].torch1 > 0 && TIMES[i].torch2 > 0)
                snprintf(c + strlen(c), sizeof c - strlen(c), "; PyTorch: %.2fx",
                         TIMES[i].torch1 / TIMES[i].torch2);
            char detail[128];
            snprintf(detail, sizeof detail, "%.2fx (the FMA loop itself scales %.2fx here)", r,
                     peak1 > 0 ? peak2 / peak1 : 0);
            row(&t, "engine L, 2 threads vs 1", b, c, "", ">= 1.8x",
                verdict(&t, "engine L 2 vs 1 thread", 1, r >= 1.8, detail));
        }
    }
    /* codec */
    if (codec_dec_mbs > 0) {
        snprintf(b, sizeof b, "%.0f MB/s (%zu bytes in %.2f ms)", codec_dec_mbs, codec_req_bytes,
                 codec_dec_ms);
        row(&t, "codec: decode M request", b, "", "", "", "");
        snprintf(b, sizeof b, "%.0f MB/s (%zu bytes in %.2f ms)", codec_enc_mbs, codec_resp_bytes,
                 codec_enc_ms);
        row(&t, "codec: encode M response", b, "", "", "", "");
    }
    /* http */
    if (http_skip[0]) {
        row(&t, "HTTP", http_skip, "", "", "", "");
    } else {
        for (int sh = 0; sh < 2; sh++)
            for (int cc = 0; cc < 2; cc++) {
                wrk_result *r = &WRK[PEER_RNNSERVE][sh][cc], *bare = &WRK[PEER_BARE][sh][cc],
                           *fa = &WRK[PEER_FASTAPI][sh][cc];
                snprintf(a, sizeof a, "HTTP %s, %d connection%s", sh ? "M" : "S", cc ? 8 : 1,
                         cc ? "s" : "");
                if (r->ok)
                    snprintf(b, sizeof b, "%.0f req/s, p50 %.3f ms, p99 %.3f ms%s", r->rps,
                             r->p50_ms, r->p99_ms, r->errors ? " (errors!)" : "");
                else
                    snprintf(b, sizeof b, "%s", peer_skip[0][0] ? peer_skip[0] : "-");
                c[0] = d[0] = '\0';
                if (bare->ok)
                    snprintf(c, sizeof c, "bare %.0f req/s, p99 %.3f ms", bare->rps, bare->p99_ms);
                else
                    snprintf(c, sizeof c, "bare: %s", peer_skip[PEER_BARE][0] ? "skipped" : "-");
                if (fa->ok)
                    snprintf(c + strlen(c), sizeof c - strlen(c),
                             "; FastAPI %.0f req/s, p99 %.1f ms", fa->rps, fa->p99_ms);
                else
                    snprintf(c + strlen(c), sizeof c - strlen(c), "; FastAPI: %.150s",
                             peer_skip[PEER_FASTAPI][0] ? peer_skip[PEER_FASTAPI] : "-");
                if (r->ok && bare->ok)
                    snprintf(d, sizeof d, "%.0f%% of bare", 100 * r->rps / bare->rps);
                if (r->ok && fa->ok)
                    snprintf(d + strlen(d), sizeof d - strlen(d), "%s%.1fx FastAPI",
                             d[0] ? "; " : "", r->rps / fa->rps);
                const char *target = "", *met = "";
                char detail[256];
                if (sh == 0 && cc == 1) {
                    target = ">= 10x FastAPI, >= 60% of bare, p99 < 1 ms";
                    snprintf(detail, sizeof detail, "%.1fx FastAPI, %.0f%% of bare, p99 %.3f ms",
                             fa->ok ? r->rps / fa->rps : 0, bare->ok ? 100 * r->rps / bare->rps : 0,
                             r->p99_ms);
                    met = verdict(&t, "HTTP S 8 connections", r->ok && fa->ok && bare->ok,
                                  r->rps >= 10 * fa->rps && r->rps >= 0.6 * bare->rps &&
                                      r->p99_ms < 1.0 && !r->errors,
                                  detail);
                } else if (sh == 1 && cc == 1) {
                    target = ">= 25x FastAPI";
                    snprintf(detail, sizeof detail, "%.1fx FastAPI", fa->ok ? r->rps / fa->rps : 0);
                    met = verdict(&t, "HTTP M 8 connections", r->ok && fa->ok,
                                  r->rps >= 25 * fa->rps && !r->errors, detail);
                }
                row(&t, a, b, c, d, target, met);
            }
    }
    /* L1 */
    if (l1_e2e_s > 0) {
        /* against PyTorch's better thread count (2 threads can be slower on a busy machine) */
        double p1 = TIMES[L1_].torch1, p2 = TIMES[L1_].torch2;
        int pth = p2 > 0 && (p1 <= 0 || p2 < p1) ? 2 : 1;
        double p = pth == 2 ? p2 : p1;
        snprintf(b, sizeof b, "%s end to end (%.0f KB response)", fmt_time(tt, sizeof tt, l1_e2e_s),
                 l1_resp_bytes / 1024);
        if (p > 0) {
            snprintf(c, sizeof c, "PyTorch in-process %s on %d thread%s (its best)",
                     fmt_time(tp, sizeof tp, p), pth, pth > 1 ? "s" : "");
            double other = pth == 2 ? p1 : p2;
            if (other > 0)
                snprintf(c + strlen(c), sizeof c - strlen(c), "; %s on %d thread%s",
                         fmt_time(tp, sizeof tp, other), pth == 2 ? 1 : 2, pth == 2 ? "" : "s");
            snprintf(d, sizeof d, "%.2fx", l1_e2e_s / p);
        } else {
            snprintf(c, sizeof c, "PyTorch: skipped");
            d[0] = '\0';
        }
        char detail[128];
        snprintf(detail, sizeof detail, "%.2fx PyTorch's in-process forward (%d thread%s)",
                 p > 0 ? l1_e2e_s / p : 0, pth, pth > 1 ? "s" : "");
        row(&t, "HTTP L1 (hidden only), one request", b, c, d, "<= 0.7x PyTorch in-process",
            verdict(&t, "HTTP L1 one request", p > 0, l1_e2e_s <= 0.7 * p, detail));
    }
    if (gen_one_s > 0) {
        double x = gen_loop_s / gen_one_s;
        char tl[64], detail[128];
        snprintf(b, sizeof b, "one 200-step generate: %s", fmt_time(tt, sizeof tt, gen_one_s));
        snprintf(c, sizeof c, "200 /forward round trips with h0/c0: %s",
                 fmt_time(tl, sizeof tl, gen_loop_s));
        snprintf(d, sizeof d, "%.1fx", x);
        snprintf(detail, sizeof detail, "%.1fx faster than the client's loop%s", x,
                 gen_same ? "" : ", but the ids differ");
        row(&t, "char-lstm generation, 200 greedy steps", b, c, d, ">= 20x, the same ids",
            verdict(&t, "generate vs /forward round trips", 1, x >= 20 && gen_same, detail));
    }
    /* memory and start-up */
    if (idle_rss_kb > 0) {
        snprintf(b, sizeof b, "%.1f MB (idle 2.5 s after the load: %.1f MB)", idle_rss_kb / 1024.0,
                 idle_rss_after_kb / 1024.0);
        char detail[64];
        snprintf(detail, sizeof detail, "%.1f MB", idle_rss_kb / 1024.0);
        if (fastapi_idle_kb > 0)
            snprintf(c, sizeof c, "FastAPI %.1f MB", fastapi_idle_kb / 1024.0);
        else
            c[0] = '\0';
        row(&t, "idle RSS, serving S and M (MB = 2^20 bytes)", b, c, "", "<= 8 MB",
            verdict(&t, "idle RSS with M", 1, idle_rss_kb <= 8 * 1024, detail));
    }
    if (peak_rss_kb > 0) {
        snprintf(b, sizeof b, "%.1f MB", peak_rss_kb / 1024.0);
        if (fastapi_peak_kb > 0)
            snprintf(c, sizeof c, "FastAPI %.1f MB", fastapi_peak_kb / 1024.0);
        else
            c[0] = '\0';
        row(&t, "peak RSS serving M, 8 connections", b, c, "", "", "");
    }
    if (startup_s > 0) {
        snprintf(b, sizeof b, "%.1f ms", startup_s * 1e3);
        char detail[64];
        snprintf(detail, sizeof detail, "%.1f ms", startup_s * 1e3);
        row(&t, "start-up with the L weights (exec to 200 /readyz)", b, "", "", "<= 50 ms",
            verdict(&t, "ready with L weights", 1, startup_s <= 0.05, detail));
    }
    sched_rows(&t);
    sessions_rows(&t);
    binary_rows(&t);
    printf("\n%s\n", t.md.s);
    json_object_set_new(J, "targets", t.targets);
    json_object_set_new(J, "table_markdown", json_string(t.md.s));
    free(t.md.s);
}

/* ---------------------------------------------------------------------------------------------
 * Machine facts */

static void machine(void)
{
    json_t *o = json_object();
    json_object_set_new(J, "machine", o);
    char model[256] = "?", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                snprintf(model, sizeof model, "%s", p + 2);
                model[strcspn(model, "\n")] = '\0';
            }
            break;
        }
    if (f)
        fclose(f);
    double load[3] = {0};
    if (getloadavg(load, 3) < 0)
        load[0] = -1;
    const char *ct = getenv("OPENBLAS_CORETYPE");
    time_t tnow = time(NULL);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime(&tnow));
    json_object_set_new(o, "date", json_string(ts));
    json_object_set_new(o, "cpu", json_string(model));
    json_object_set_new(o, "cores", json_integer(ncpu));
    json_object_set_new(o, "openblas_core", json_string(rnn_blas_corename()));
    json_object_set_new(o, "OPENBLAS_CORETYPE", ct ? json_string(ct) : json_null());
    json_object_set_new(o, "loadavg_1min_at_start", json_real(load[0]));
    printf("rnnserve bench, %s\n%s, %d cores; engine kernels %s; OpenBLAS kernel %s "
           "(OPENBLAS_CORETYPE %s; the engine calls OpenBLAS only without AVX2); load average at "
           "start %.2f\n",
           ts, model, ncpu, rnn_kernels_isa(), rnn_blas_corename(), ct ? ct : "unset", load[0]);
}

int main(int argc, char **argv)
{
    const char *out = "bench/results/latest.json";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr,
                    "usage: %s [--quick] [--out FILE] [--only peak,engine,torch,codec,"
                    "http,l1,startup,sched,sessions,generate,binary]\n",
                    argv[0]);
            return 2;
        }
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    atexit(kill_children);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    ncpu = n < 1 ? 1 : (int)n;
    mkdir("build", 0755);
    mkdir(WORK, 0755);
    J = json_object();
    double t0 = now();
    machine();
    json_object_set_new(J, "kernels", json_string(rnn_kernels_isa()));

    /* Shapes first: every section uses them. */
    const shape *sm[2] = {&SHAPES[S_], &SHAPES[M_]};
    for (int i = 0; i < 4; i++) {
        char why[1024];
        if (shape_prepare(&SHAPES[i], why, sizeof why) < 0)
            say("shape %s: %s (sections needing it are skipped)", SHAPES[i].name, why);
    }
    write_config(WORK "/SM.json", sm, 2);
    write_shapes_json();

    if (want("peak"))
        section_peak();
    if (want("engine"))
        section_engine();
    if (want("torch"))
        section_torch();
    if (want("codec"))
        section_codec();
    if (want("http"))
        section_http();
    if (want("l1"))
        section_l1();
    if (want("startup"))
        section_startup();
    if (want("sched"))
        section_sched();
    if (want("sessions"))
        section_sessions();
    if (want("generate"))
        section_generate();
    if (want("binary"))
        section_binary();
    kill_children();

    double load[3] = {0};
    if (getloadavg(load, 3) == 0)
        json_object_set_new(json_object_get(J, "machine"), "loadavg_1min_at_end",
                            json_real(load[0]));
    json_object_set_new(J, "duration_s", json_real(now() - t0));
    print_table();
    printf("(%.0f s; JSON in %s)\n", now() - t0, out);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", out);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        mkdir(dir, 0755); /* bench/results/ on a fresh clone */
    }
    if (json_dump_file(J, out, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) < 0)
        say("cannot write %s", out);
    for (int i = 0; i < 4; i++) {
        rnn_model_free(SHAPES[i].model);
        cfg_free(SHAPES[i].cfg);
        free(SHAPES[i].x);
        free(SHAPES[i].request);
    }
    json_decref(J);
    return 0;
}
