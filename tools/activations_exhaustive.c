/* activations_exhaustive.c - proves the engine's tanh and sigmoid on every float32 input.
 *
 * For all 2^32 bit patterns and every instruction-set path this CPU runs (generic, AVX2,
 * AVX-512), checks kern_tanh / kern_sigmoid against a double-precision reference (libm tanh, and
 * 1 / (1 + exp(-x))):
 *   - NaN in gives NaN out;
 *   - every other result is within 1e-6 absolute of the reference (the bound kernels.h states);
 *   - tanh(+-inf) = +-1 and sigmoid(+inf) = 1, sigmoid(-inf) = 0 exactly, and tanh keeps the
 *     sign of zero.
 * Prints the largest error per function and path (with the input where it happens) and exits 0
 * when nothing failed. `make check-activations` builds and runs it (about 5-10 minutes on two
 * cores for the three paths; libm's double tanh and exp dominate).
 *   build/activations_exhaustive [FIRST LAST]   a sub-range of bit patterns [FIRST, LAST) */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/kernels.h"

#define THREADS 2
#define CHUNK (1u << 20)
#define BOUND 1e-6

static uint64_t first, last;
static atomic_ullong next;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct {
    double worst;
    uint32_t at;
    uint64_t failures;
} stat;

static kern_isa isas[3];
static int n_isas;
static stat tanh_st[3], sig_st[3];

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void note(stat *s, double err, uint32_t bits, int failed, const char *what, kern_isa isa,
                 float got, double want)
{
    pthread_mutex_lock(&lock);
    if (err > s->worst) {
        s->worst = err;
        s->at = bits;
    }
    if (failed) {
        if (s->failures < 10)
            fprintf(stderr, "FAIL %s[%s](%a = %.9g) = %.9g, want %.12g\n", what,
                    kern_isa_name(isa), (double)from_bits(bits), (double)from_bits(bits),
                    (double)got, want);
        s->failures++;
    }
    pthread_mutex_unlock(&lock);
}

static void *worker(void *arg)
{
    (void)arg;
    float *in = malloc(CHUNK * sizeof(float));
    double *rt = malloc(CHUNK * sizeof(double)), *rs = malloc(CHUNK * sizeof(double));
    float *out = malloc(CHUNK * sizeof(float));
    for (;;) {
        uint64_t base = atomic_fetch_add(&next, CHUNK);
        if (base >= last)
            break;
        size_t n = (size_t)(last - base < CHUNK ? last - base : CHUNK);
        for (size_t i = 0; i < n; i++) {
            float x = from_bits((uint32_t)(base + i));
            in[i] = x;
            rt[i] = tanh((double)x);
            rs[i] = 1.0 / (1.0 + exp(-(double)x));
        }
        for (int k = 0; k < n_isas; k++) {
            for (int f = 0; f < 2; f++) {
                memcpy(out, in, n * sizeof(float));
                if (f == 0)
                    kern_tanh_with(isas[k], out, n);
                else
                    kern_sigmoid_with(isas[k], out, n);
                double worst = 0;
                uint32_t at = 0;
                for (size_t i = 0; i < n; i++) {
                    float x = in[i], y = out[i];
                    uint32_t bits = (uint32_t)(base + i);
                    double want = f == 0 ? rt[i] : rs[i];
                    int bad;
                    double err = 0;
                    if (isnan(x)) {
                        bad = !isnan(y);
                    } else if (isinf(x)) {
                        bad = f == 0 ? y != (x > 0 ? 1.0f : -1.0f) : y != (x > 0 ? 1.0f : 0.0f);
                    } else {
                        err = fabs((double)y - want);
                        bad = !(err <= BOUND);
                        if (f == 0 && x == 0.0f)
                            bad |= signbit(y) != signbit(x) || y != 0.0f;
                    }
                    if (err > worst) {
                        worst = err;
                        at = bits;
                    }
                    if (bad)
                        note(f == 0 ? &tanh_st[k] : &sig_st[k], err, bits, 1,
                             f == 0 ? "tanh" : "sigmoid", isas[k], y, want);
                }
                note(f == 0 ? &tanh_st[k] : &sig_st[k], worst, at, 0, "", isas[k], 0, 0);
            }
        }
    }
    free(in);
    free(rt);
    free(rs);
    free(out);
    return NULL;
}

int main(int argc, char **argv)
{
    first = 0;
    last = 1ull << 32;
    if (argc == 3) {
        first = strtoull(argv[1], NULL, 0);
        last = strtoull(argv[2], NULL, 0);
    }
    kern_isa best = kern_isa_supported();
    for (int i = 0; i <= (int)best; i++)
        isas[n_isas++] = (kern_isa)i;
    atomic_store(&next, first);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    uint64_t fails = 0;
    printf("%" PRIu64 " float32 inputs [0x%" PRIx64 ", 0x%" PRIx64 "), bound %.0e absolute\n",
           last - first, first, last, BOUND);
    for (int k = 0; k < n_isas; k++) {
        printf("  %-8s tanh    max error %.3g at %.9g   failures %" PRIu64 "\n",
               kern_isa_name(isas[k]), tanh_st[k].worst, (double)from_bits(tanh_st[k].at),
               tanh_st[k].failures);
        printf("  %-8s sigmoid max error %.3g at %.9g   failures %" PRIu64 "\n",
               kern_isa_name(isas[k]), sig_st[k].worst, (double)from_bits(sig_st[k].at),
               sig_st[k].failures);
        fails += tanh_st[k].failures + sig_st[k].failures;
    }
    printf("%s\n", fails ? "FAILED" : "all within bounds");
    return fails ? 1 : 0;
}
