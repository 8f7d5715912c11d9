/* kernels.c - matrix products and activations for the engine (see kernels.h).
 *
 * Layout of this file: dispatch; CBLAS and naive products; packing; the packed-product driver
 * (cache blocking, shared by every path) and its three microkernels; the activations in three
 * versions. AVX-512 and AVX2 code is compiled with per-function target attributes, so the file
 * builds with plain -O2 for any x86-64 and the choice is made at run time. On other
 * architectures only the generic code exists. */
#include "kernels.h"

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KERN_X86 1
#include <immintrin.h>
#define T512 __attribute__((target("avx512f")))
#define T256 __attribute__((target("avx2,fma")))
#else
#define KERN_X86 0
#endif

/* ---------------------------------------------------------------------------------------------
 * Dispatch */

static atomic_int active_isa = -1;

kern_isa kern_isa_supported(void)
{
#if KERN_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return KERN_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return KERN_AVX2;
#endif
    return KERN_GENERIC;
}

kern_isa kern_isa_active(void)
{
    int a = atomic_load_explicit(&active_isa, memory_order_relaxed);
    if (a < 0) {
        a = (int)kern_isa_supported();
        atomic_store_explicit(&active_isa, a, memory_order_relaxed);
    }
    return (kern_isa)a;
}

kern_isa kern_isa_use(kern_isa want)
{
    kern_isa best = kern_isa_supported();
    kern_isa a = want > best ? best : want;
    atomic_store(&active_isa, (int)a);
    return a;
}

const char *kern_isa_name(kern_isa isa)
{
    return isa == KERN_AVX512 ? "avx512" : isa == KERN_AVX2 ? "avx2" : "generic";
}

/* ---------------------------------------------------------------------------------------------
 * CBLAS and naive products */

/* CBLAS, loaded on first use (dlopen) rather than linked: on CPUs with AVX2 or AVX-512 the
 * engine never calls it, and a linked OpenBLAS would cost every process its constructor (a
 * thread pool, buffers) and about 3.5 MB of resident memory for nothing. */
typedef void (*sgemm_fn)(int order, int transa, int transb, int M, int N, int K, float alpha,
                         const float *A, int lda, const float *B, int ldb, float beta, float *C,
                         int ldc);
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t blas_mu = PTHREAD_MUTEX_INITIALIZER;
static sgemm_fn blas_sgemm;
static void (*blas_set_threads)(int);
static char *(*blas_get_config)(void);
static char *(*blas_get_corename)(void);
static int blas_threads; /* kern_set_blas_threads; 0: the library's default */
static char blas_name[64] = "none";

static void blas_load(void)
{
    static const char *const libs[] = {"libopenblas.so.0", "libopenblas.so", "libcblas.so.3",
                                       "libblas.so.3"};
    for (size_t i = 0; i < sizeof libs / sizeof *libs && !blas_sgemm; i++) {
        void *h = dlopen(libs[i], RTLD_NOW | RTLD_LOCAL);
        if (!h)
            continue;
        sgemm_fn f = (sgemm_fn)(uintptr_t)dlsym(h, "cblas_sgemm");
        if (!f) {
            dlclose(h);
            continue;
        }
        snprintf(blas_name, sizeof blas_name, "%s", libs[i]);
        pthread_mutex_lock(&blas_mu);
        blas_set_threads = (void (*)(int))(uintptr_t)dlsym(h, "openblas_set_num_threads");
        blas_get_config = (char *(*)(void))(uintptr_t)dlsym(h, "openblas_get_config");
        blas_get_corename = (char *(*)(void))(uintptr_t)dlsym(h, "openblas_get_corename");
        if (blas_threads > 0 && blas_set_threads)
            blas_set_threads(blas_threads);
        blas_sgemm = f;
        pthread_mutex_unlock(&blas_mu);
    }
}

const char *kern_blas_describe(int what)
{
    pthread_once(&blas_once, blas_load);
    if (!blas_sgemm)
        return "not found";
    if (what == 1)
        return blas_get_corename ? blas_get_corename() : "?";
    if (what == 2)
        return blas_name;
    return blas_get_config ? blas_get_config() : blas_name;
}

void kern_gemm_xwt(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *W,
                   size_t ldw, float beta, float *C, size_t ldc)
{
    if (M == 0 || N == 0)
        return;
    if (K == 0) {
        /* BLAS requires lda >= max(1, K); with nothing to multiply only the scaling remains. */
        for (size_t i = 0; i < M; i++)
            for (size_t j = 0; j < N; j++)
                C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    pthread_once(&blas_once, blas_load);
    if (blas_sgemm) {
        blas_sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_TRANS, (int)M, (int)N, (int)K, 1.0f, A,
                   (int)lda, W, (int)ldw, beta, C, (int)ldc);
        return;
    }
    /* No CBLAS library at all: plain loops (correct, slow; only CPUs without AVX2 get here). */
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            float acc = 0.0f;
            for (size_t k = 0; k < K; k++)
                acc += A[i * lda + k] * W[j * ldw + k];
            C[i * ldc + j] = acc + (beta == 0.0f ? 0.0f : beta * C[i * ldc + j]);
        }
}

void kern_gemm_xwt_naive(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *W,
                         size_t ldw, float beta, float *C, size_t ldc)
{
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            double acc = 0;
            for (size_t k = 0; k < K; k++)
                acc += (double)A[i * lda + k] * (double)W[j * ldw + k];
            float prev = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
            C[i * ldc + j] = (float)acc + prev;
        }
}

void kern_set_blas_threads(int n)
{
    /* Remembered, and applied now if the library is loaded or when it is. */
    pthread_mutex_lock(&blas_mu);
    blas_threads = n < 1 ? 1 : n;
    if (blas_set_threads)
        blas_set_threads(blas_threads);
    pthread_mutex_unlock(&blas_mu);
}

/* ---------------------------------------------------------------------------------------------
 * Packing */

size_t kern_pack_bytes(size_t groups, size_t units, size_t k)
{
    size_t panels = (units + KERN_NR - 1) / KERN_NR;
    return groups * panels * (k ? k : 1) * KERN_NR * sizeof(float);
}

int kern_pack(kern_packed *p, const float *W, size_t ldw, size_t groups, size_t units, size_t k)
{
    memset(p, 0, sizeof *p);
    p->groups = groups;
    p->units = units;
    p->k = k;
    p->panels = (units + KERN_NR - 1) / KERN_NR;
    size_t bytes = kern_pack_bytes(groups, units, k);
    /* Large packs (a model's big layers) on 2 MB boundaries with transparent huge pages: fewer
     * page faults at load, fewer TLB misses while the panels stream. */
    size_t align = bytes >= (4u << 20) ? (2u << 20) : 64;
    bytes = (bytes + align - 1) / align * align;
    if (!(p->data = aligned_alloc(align, bytes ? bytes : align)))
        return -1;
#ifdef MADV_HUGEPAGE
    if (align > 64)
        madvise(p->data, bytes, MADV_HUGEPAGE);
#endif
    /* Panel by panel, 16 rows of W at a time: sequential writes, 16 sequential read streams. */
    for (size_t g = 0; g < groups; g++)
        for (size_t pn = 0; pn < p->panels; pn++) {
            float *panel = p->data + (g * p->panels + pn) * k * KERN_NR;
            size_t u0 = pn * KERN_NR, n = units - u0 < KERN_NR ? units - u0 : KERN_NR;
            const float *rows[KERN_NR];
            for (size_t c = 0; c < n; c++)
                rows[c] = W + (g * units + u0 + c) * ldw;
            for (size_t kk = 0; kk < k; kk++) {
                float *dst = panel + kk * KERN_NR;
                size_t c = 0;
                for (; c < n; c++)
                    dst[c] = rows[c][kk];
                for (; c < KERN_NR; c++)
                    dst[c] = 0.0f;
            }
        }
    return 0;
}

void kern_pack_free(kern_packed *p)
{
    free(p->data);
    p->data = NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Packed product: the driver.
 *
 * A microkernel computes a tile of mr rows by nc panels (16 columns each) over kc steps of K:
 *   C[i][j*16 + c] = S[i][j*16 + c] + sum_k A[i][k] * P_j[k][c]
 * with the tile's accumulators in registers. S, the starting values, is row i of C itself
 * (mode ACC_C), src[i] (ACC_SRC: a bias or a projection row) or zero (ACC_ZERO). `lastw` (1..16)
 * is how many columns of the last panel exist (the pack is zero-padded; loads of S and stores of
 * C are masked).
 * Blocking: rows in blocks of MC, panels in groups of NC, K in chunks of KC: one chunk of the
 * panel group (KC * NC * 64 bytes = 128 KB) stays in L2 while every row tile of the block streams
 * past it, and C's tiles are reloaded only every KC steps. (KC 512 measured ~13% faster than an
 * L1-sized 128 on "L"'s 6400 x 1024 x 1024 projection, and no slower on small products.) */
enum { ACC_ZERO, ACC_C, ACC_SRC };

/* A[i] and C[i] are the tile's rows (row pointers, so that a caller's rows may lie anywhere:
 * the engine's recurrent step reads the last step's outputs and writes this step's in place). */
typedef void (*micro_fn)(size_t mr, size_t nc, size_t kc, const float *const *A, const float *P,
                         size_t pstride, float *const *C, int mode, const float *const *src,
                         size_t lastw);

typedef struct {
    micro_fn fn;
    size_t mr, nc; /* largest tile */
} micro_info;

#define MC 96
#define KC 512

static void micro_generic(size_t mr, size_t nc, size_t kc, const float *const *A, const float *P,
                          size_t pstride, float *const *C, int mode, const float *const *src,
                          size_t lastw)
{
    for (size_t j = 0; j < nc; j++) {
        const float *Pj = P + j * pstride;
        size_t w = j + 1 == nc ? lastw : KERN_NR;
        for (size_t i = 0; i < mr; i++) {
            float t[KERN_NR];
            float *Ci = C[i] + j * KERN_NR;
            const float *S = mode == ACC_C ? Ci : mode == ACC_SRC ? src[i] + j * KERN_NR : NULL;
            for (size_t c = 0; c < KERN_NR; c++)
                t[c] = S && c < w ? S[c] : 0.0f;
            for (size_t k = 0; k < kc; k++) {
                float a = A[i][k];
                for (size_t c = 0; c < KERN_NR; c++)
                    t[c] += a * Pj[k * KERN_NR + c];
            }
            for (size_t c = 0; c < w; c++)
                Ci[c] = t[c];
        }
    }
}

#if KERN_X86
/* AVX-512: up to 6 rows x 4 panels = 24 zmm accumulators, 4 panel loads and one broadcast per
 * row and step: 24 FMAs for 10 loads, enough independent chains to hide the FMA latency. The
 * body is instantiated for every (rows, panels) so that the tile lives in registers. */
#define MK512_FN(MR_, NC_)                                                                         \
    static T512 void mk512_##MR_##_##NC_(size_t kc, const float *const *A, const float *P,         \
                                         size_t pstride, float *const *C, int mode,                \
                                         const float *const *src, size_t lastw)                    \
    {                                                                                              \
        __m512 c_[MR_][NC_];                                                                       \
        const float *a_r[MR_];                                                                     \
        const __mmask16 lm_ = (__mmask16)((1u << lastw) - 1u);                                     \
        _Pragma("GCC unroll 8") for (int i = 0; i < MR_; i++)                                      \
        {                                                                                          \
            a_r[i] = A[i];                                                                         \
            const float *s_ = mode == ACC_C ? C[i] : mode == ACC_SRC ? src[i] : NULL;              \
            _Pragma("GCC unroll 8") for (int j = 0; j < NC_; j++) c_[i][j] =                       \
                !s_ ? _mm512_setzero_ps()                                                          \
                    : (j == NC_ - 1 ? _mm512_maskz_loadu_ps(lm_, s_ + j * 16)                      \
                                    : _mm512_loadu_ps(s_ + j * 16));                               \
        }                                                                                          \
        for (size_t k = 0; k < kc; k++) {                                                          \
            __m512 w_[NC_];                                                                        \
            _Pragma("GCC unroll 8") for (int j = 0; j < NC_; j++) w_[j] =                          \
                _mm512_load_ps(P + j * pstride + k * 16);                                          \
            _Pragma("GCC unroll 8") for (int i = 0; i < MR_; i++)                                  \
            {                                                                                      \
                __m512 a_ = _mm512_set1_ps(a_r[i][k]);                                             \
                _Pragma("GCC unroll 8") for (int j = 0; j < NC_; j++) c_[i][j] =                   \
                    _mm512_fmadd_ps(a_, w_[j], c_[i][j]);                                          \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 8") for (int i = 0; i < MR_; i++)                                      \
            _Pragma("GCC unroll 8") for (int j = 0; j < NC_; j++) if (j == NC_ - 1)                \
                _mm512_mask_storeu_ps(C[i] + j * 16, lm_, c_[i][j]);                               \
        else _mm512_storeu_ps(C[i] + j * 16, c_[i][j]);                                            \
    }
#define MK512_ROW(MR_) MK512_FN(MR_, 1) MK512_FN(MR_, 2) MK512_FN(MR_, 3) MK512_FN(MR_, 4)
MK512_ROW(1)
MK512_ROW(2)
MK512_ROW(3)
MK512_ROW(4)
MK512_ROW(5)
MK512_ROW(6)

typedef void (*mk_fn)(size_t, const float *const *, const float *, size_t, float *const *, int,
                      const float *const *, size_t);
#define MK512_PTRS(MR_)                                                                            \
    {                                                                                              \
        mk512_##MR_##_1, mk512_##MR_##_2, mk512_##MR_##_3, mk512_##MR_##_4                         \
    }
static const mk_fn mk512_table[6][4] = {MK512_PTRS(1), MK512_PTRS(2), MK512_PTRS(3),
                                        MK512_PTRS(4), MK512_PTRS(5), MK512_PTRS(6)};

static void micro_avx512(size_t mr, size_t nc, size_t kc, const float *const *A, const float *P,
                         size_t pstride, float *const *C, int mode, const float *const *src,
                         size_t lastw)
{
    mk512_table[mr - 1][nc - 1](kc, A, P, pstride, C, mode, src, lastw);
}

/* AVX2: up to 6 rows x 1 panel (two ymm) = 12 accumulators of the 16 registers. */
#define MK256_FN(MR_)                                                                              \
    static T256 void mk256_##MR_(size_t kc, const float *const *A, const float *P,                 \
                                 float *const *C, size_t coff, int mode, const float *const *src,  \
                                 size_t off, size_t lastw)                                         \
    {                                                                                              \
        __m256 lo_[MR_], hi_[MR_];                                                                 \
        const float *a_r[MR_];                                                                     \
        const __m256i iota_ = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);                           \
        const __m256i mlo_ = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)lastw), iota_);             \
        const __m256i mhi_ = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)lastw - 8), iota_);         \
        _Pragma("GCC unroll 8") for (int i = 0; i < MR_; i++)                                      \
        {                                                                                          \
            a_r[i] = A[i];                                                                         \
            const float *s_ = mode == ACC_C ? C[i] + coff : mode == ACC_SRC ? src[i] + off : NULL; \
            lo_[i] = s_ ? _mm256_maskload_ps(s_, mlo_) : _mm256_setzero_ps();                      \
            hi_[i] = s_ ? _mm256_maskload_ps(s_ + 8, mhi_) : _mm256_setzero_ps();                  \
        }                                                                                          \
        for (size_t k = 0; k < kc; k++) {                                                          \
            __m256 w0_ = _mm256_load_ps(P + k * 16), w1_ = _mm256_load_ps(P + k * 16 + 8);         \
            _Pragma("GCC unroll 8") for (int i = 0; i < MR_; i++)                                  \
            {                                                                                      \
                __m256 a_ = _mm256_broadcast_ss(a_r[i] + k);                                       \
                lo_[i] = _mm256_fmadd_ps(a_, w0_, lo_[i]);                                         \
                hi_[i] = _mm256_fmadd_ps(a_, w1_, hi_[i]);                                         \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 8") for (int i = 0; i < MR_; i++)                                      \
        {                                                                                          \
            _mm256_maskstore_ps(C[i] + coff, mlo_, lo_[i]);                                        \
            _mm256_maskstore_ps(C[i] + coff + 8, mhi_, hi_[i]);                                    \
        }                                                                                          \
    }
MK256_FN(1)
MK256_FN(2)
MK256_FN(3)
MK256_FN(4)
MK256_FN(5)
MK256_FN(6)
typedef void (*mk256_fn)(size_t, const float *const *, const float *, float *const *, size_t, int,
                         const float *const *, size_t, size_t);
static const mk256_fn mk256_table[6] = {mk256_1, mk256_2, mk256_3, mk256_4, mk256_5, mk256_6};

static void micro_avx2(size_t mr, size_t nc, size_t kc, const float *const *A, const float *P,
                       size_t pstride, float *const *C, int mode, const float *const *src,
                       size_t lastw)
{
    for (size_t j = 0; j < nc; j++)
        mk256_table[mr - 1](kc, A, P + j * pstride, C, j * 16, mode, src, j * 16,
                            j + 1 == nc ? lastw : 16);
}
#endif

static micro_info micro_for(kern_isa isa)
{
#if KERN_X86
    if (isa == KERN_AVX512)
        return (micro_info){micro_avx512, 6, 4};
    if (isa == KERN_AVX2)
        return (micro_info){micro_avx2, 6, 1};
#endif
    (void)isa;
    return (micro_info){micro_generic, 4, 1};
}

static const float *row_at(const kern_rows *r, size_t i)
{
    return r->rows ? r->rows[i] + r->off : r->base + i * r->ld;
}

static void gemm_packed(kern_isa isa, size_t M, kern_rows a, const kern_packed *W, size_t g,
                        size_t u0, size_t u1, const float *const *init, size_t init_off,
                        int accumulate, kern_rows c)
{
    if (M == 0 || u1 <= u0)
        return;
    const size_t K = W->k, cols = u1 - u0;
    const micro_info mi = micro_for(isa);
    const int mode0 = init ? ACC_SRC : accumulate ? ACC_C : ACC_ZERO;
    if (K == 0) {
        for (size_t i = 0; i < M; i++)
            if (mode0 == ACC_SRC)
                memcpy((float *)row_at(&c, i), init[i] + init_off, cols * sizeof(float));
            else if (mode0 == ACC_ZERO)
                memset((float *)row_at(&c, i), 0, cols * sizeof(float));
        return;
    }
    const size_t npan = (cols + KERN_NR - 1) / KERN_NR;
    const size_t pstride = K * KERN_NR;
    const float *P0 = W->data + (g * W->panels + u0 / KERN_NR) * pstride;
    const float *src[6], *ar[6];
    float *cr[6];
    for (size_t rb = 0; rb < M; rb += MC) {
        size_t rend = rb + MC < M ? rb + MC : M;
        for (size_t pg = 0; pg < npan; pg += mi.nc) {
            size_t nc = npan - pg < mi.nc ? npan - pg : mi.nc;
            size_t lastw = pg + nc == npan ? cols - (npan - 1) * KERN_NR : KERN_NR;
            for (size_t kb = 0; kb < K; kb += KC) {
                size_t kc = K - kb < KC ? K - kb : KC;
                int mode = kb > 0 ? ACC_C : mode0;
                for (size_t i = rb; i < rend; i += mi.mr) {
                    size_t mr = rend - i < mi.mr ? rend - i : mi.mr;
                    for (size_t r = 0; r < mr; r++) {
                        ar[r] = row_at(&a, i + r) + kb;
                        /* C's rows are the caller's to write: kern_rows keeps them const only
                         * so that one type serves both operands */
                        cr[r] = (float *)row_at(&c, i + r) + pg * KERN_NR;
                        if (mode == ACC_SRC)
                            src[r] = init[i + r] + init_off + pg * KERN_NR;
                    }
                    mi.fn(mr, nc, kc, ar, P0 + pg * pstride + kb * KERN_NR, pstride, cr, mode, src,
                          lastw);
                }
            }
        }
    }
}

void kern_gemm_packed_with(kern_isa isa, size_t M, const float *A, size_t lda, const kern_packed *W,
                           size_t g, size_t u0, size_t u1, const float *const *init,
                           size_t init_off, int accumulate, float *C, size_t ldc)
{
    gemm_packed(isa, M, KERN_ROWS_STRIDED(A, lda), W, g, u0, u1, init, init_off, accumulate,
                KERN_ROWS_STRIDED(C, ldc));
}

void kern_gemm_packed(size_t M, const float *A, size_t lda, const kern_packed *W, size_t g,
                      size_t u0, size_t u1, const float *const *init, size_t init_off,
                      int accumulate, float *C, size_t ldc)
{
    kern_gemm_packed_with(kern_isa_active(), M, A, lda, W, g, u0, u1, init, init_off, accumulate, C,
                          ldc);
}

void kern_gemm_packed_rows_with(kern_isa isa, size_t M, kern_rows A, const kern_packed *W, size_t g,
                                size_t u0, size_t u1, const float *const *init, size_t init_off,
                                int accumulate, kern_rows C)
{
    gemm_packed(isa, M, A, W, g, u0, u1, init, init_off, accumulate, C);
}

void kern_gemm_packed_rows(size_t M, kern_rows A, const kern_packed *W, size_t g, size_t u0,
                           size_t u1, const float *const *init, size_t init_off, int accumulate,
                           kern_rows C)
{
    gemm_packed(kern_isa_active(), M, A, W, g, u0, u1, init, init_off, accumulate, C);
}

/* ---------------------------------------------------------------------------------------------
 * Activations.
 *
 * tanh(x), on |x| with x's sign put back (so tanh(-x) = -tanh(x) exactly and -0 stays -0):
 * |x| < 0.0004 gives x (the cubic term is below float precision); |x| >= 9.011 gives exactly 1
 * (where tanh rounds to 1, so tanh(+-inf) = +-1); in between the rational function
 * c P(c^2) / Q(c^2), c = min(|x|, 7.905), with Eigen's float coefficients: 13 multiply-adds and a
 * reciprocal (rcp and one Newton step on the vector paths), no exp, no division.
 * sigmoid(x) = 1 / (1 + exp(-x)): exp(v) for v clamped to [-87.3, 88.3] (so 2^n stays a normal
 * float): n = round(v / ln 2), r = v - n ln 2 in two parts (Cody-Waite), e^r by Cephes' degree-6
 * polynomial, times 2^n built in the exponent field. x < -88.3 gives 0 (sigmoid(-inf) = 0),
 * x >= 17.5 gives exactly 1 (where it rounds to 1).
 * NaN is restored at the end, since min/max/compare would otherwise turn it into a number.
 * Error bounds are proven on every float32 by tools/activations_exhaustive.c (make
 * check-activations): see kernels.h. */

#define EXP_HI 88.3f
#define EXP_LO -87.3f
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f
#define LN2_LO -2.12194440e-4f
#define EP0 1.9875691500e-4f
#define EP1 1.3981999507e-3f
#define EP2 8.3334519073e-3f
#define EP3 4.1665795894e-2f
#define EP4 1.6666665459e-1f
#define EP5 5.0000001201e-1f
/* tanh as a rational function x P(x^2) / Q(x^2) on |x| <= TR_CLAMP (Eigen's float tanh
 * coefficients): 13 multiply-adds and one reciprocal, half the work of the exp form. */
#define TR_CLAMP 7.90531110763549805f
#define TR_TINY 0.0004f /* below: tanh(x) = x to float precision */
#define TR_ONE 9.0110f  /* above: tanh(x) rounds to exactly 1 */
#define TA1 4.89352455891786e-03f
#define TA3 6.37261928875436e-04f
#define TA5 1.48572235717979e-05f
#define TA7 5.12229709037114e-08f
#define TA9 -8.60467152213735e-11f
#define TA11 2.00018790482477e-13f
#define TA13 -2.76076847742355e-16f
#define TB0 4.89352518554385e-03f
#define TB2 2.26843463243900e-03f
#define TB4 1.18534705686654e-04f
#define TB6 1.19825839466702e-06f
#define SIG_ONE 17.5f /* x >= this: 1 - e^-x rounds to exactly 1 */

/* Scalar versions: the generic path, and the tails of the vector loops (same algorithm, so a
 * value's result does not depend on where it sits in an array). */
/* a * b + c, unfused: fmaf without hardware FMA would be a slow library call. */
#define MADD(a, b, c) ((a) * (b) + (c))

static float exp_core(float v)
{
    v = v > EXP_HI ? EXP_HI : v < EXP_LO ? EXP_LO : v;
    float n = nearbyintf(v * LOG2E);
    float r = MADD(-n, LN2_HI, v);
    r = MADD(-n, LN2_LO, r);
    float p = MADD(EP0, r, EP1);
    p = MADD(p, r, EP2);
    p = MADD(p, r, EP3);
    p = MADD(p, r, EP4);
    p = MADD(p, r, EP5);
    float e = MADD(p, r * r, r) + 1.0f;
    union {
        uint32_t u;
        float f;
    } s = {(uint32_t)((int32_t)n + 127) << 23};
    return e * s.f;
}

static float tanh1(float x)
{
    if (isnan(x))
        return x;
    /* on |x|, then x's sign: tanh is odd, so tanh(-x) == -tanh(x) bit for bit, and -0 stays -0 */
    float a = fabsf(x), t;
    if (a < TR_TINY) {
        t = a;
    } else if (a >= TR_ONE) {
        t = 1.0f;
    } else {
        float c = a > TR_CLAMP ? TR_CLAMP : a, z = c * c;
        float p = MADD(TA13, z, TA11);
        p = MADD(p, z, TA9);
        p = MADD(p, z, TA7);
        p = MADD(p, z, TA5);
        p = MADD(p, z, TA3);
        p = MADD(p, z, TA1) * c;
        float q = MADD(TB6, z, TB4);
        q = MADD(q, z, TB2);
        q = MADD(q, z, TB0);
        t = p / q;
        t = t > 1.0f ? 1.0f : t;
    }
    return copysignf(t, x);
}

static float sigmoid1(float x)
{
    if (isnan(x))
        return x;
    if (x < -EXP_HI)
        return 0.0f;
    if (x >= SIG_ONE)
        return 1.0f;
    return 1.0f / (1.0f + exp_core(-x));
}

static void tanh_generic(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = tanh1(x[i]);
}

static void sigmoid_generic(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = sigmoid1(x[i]);
}

#if KERN_X86
static inline T512 __m512 exp512(__m512 v)
{
    v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(EXP_LO)), _mm512_set1_ps(EXP_HI));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), v);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(EP0), r, _mm512_set1_ps(EP1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EP2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EP3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EP4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EP5));
    __m512 e = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    __m512i s =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(e, _mm512_castsi512_ps(s));
}

/* 1/d by rcp14 and one Newton step, y + y(1 - dy) (relative error ~2^-27, far inside the bound): a
 * division would cost more than everything else in tanh. d >= 1 here. */
static inline T512 __m512 recip512(__m512 d)
{
    __m512 y = _mm512_rcp14_ps(d);
    return _mm512_fmadd_ps(y, _mm512_fnmadd_ps(d, y, _mm512_set1_ps(1.0f)), y);
}

static inline T512 __m512 tanh512(__m512 x)
{
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512 a = _mm512_castsi512_ps(_mm512_andnot_si512(sign, _mm512_castps_si512(x)));
    __m512 c = _mm512_min_ps(a, _mm512_set1_ps(TR_CLAMP));
    __m512 z = _mm512_mul_ps(c, c);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(TA13), z, _mm512_set1_ps(TA11));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(TA9));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(TA7));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(TA5));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(TA3));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(TA1));
    p = _mm512_mul_ps(p, c);
    __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(TB6), z, _mm512_set1_ps(TB4));
    q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(TB2));
    q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(TB0));
    __m512 t = _mm512_mul_ps(p, recip512(q));
    __mmask16 one = _mm512_cmp_ps_mask(a, _mm512_set1_ps(TR_ONE), _CMP_GE_OQ);
    t = _mm512_mask_blend_ps(one, _mm512_min_ps(t, _mm512_set1_ps(1.0f)), _mm512_set1_ps(1.0f));
    __mmask16 tiny = _mm512_cmp_ps_mask(a, _mm512_set1_ps(TR_TINY), _CMP_LT_OQ);
    t = _mm512_mask_blend_ps(tiny, t, a);
    __m512 out = _mm512_castsi512_ps(
        _mm512_or_si512(_mm512_castps_si512(t), _mm512_and_si512(_mm512_castps_si512(x), sign)));
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_blend_ps(nan, out, x);
}

static inline T512 __m512 sigmoid512(__m512 x)
{
    __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
    __m512 s = recip512(_mm512_add_ps(_mm512_set1_ps(1.0f), e));
    __mmask16 zero = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-EXP_HI), _CMP_LT_OQ);
    s = _mm512_mask_blend_ps(zero, s, _mm512_setzero_ps());
    __mmask16 one = _mm512_cmp_ps_mask(x, _mm512_set1_ps(SIG_ONE), _CMP_GE_OQ);
    s = _mm512_mask_blend_ps(one, s, _mm512_set1_ps(1.0f));
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_blend_ps(nan, s, x);
}

static T512 void tanh_avx512(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, tanh512(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(x + i, m, tanh512(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

static T512 void sigmoid_avx512(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, sigmoid512(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(x + i, m, sigmoid512(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

static inline T256 __m256 exp256(__m256 v)
{
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(v, _mm256_set1_ps(LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), v);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(EP0), r, _mm256_set1_ps(EP1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EP2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EP3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EP4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EP5));
    __m256 e = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    __m256i s =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(e, _mm256_castsi256_ps(s));
}

/* 1/d by rcp (12 bits) and one Newton step, y + y(1 - dy) (~23 bits). d >= 1 here. */
static inline T256 __m256 recip256(__m256 d)
{
    __m256 y = _mm256_rcp_ps(d);
    return _mm256_fmadd_ps(y, _mm256_fnmadd_ps(d, y, _mm256_set1_ps(1.0f)), y);
}

static inline T256 __m256 tanh256(__m256 x)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 a = _mm256_andnot_ps(sign, x);
    __m256 c = _mm256_min_ps(a, _mm256_set1_ps(TR_CLAMP));
    __m256 z = _mm256_mul_ps(c, c);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(TA13), z, _mm256_set1_ps(TA11));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(TA9));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(TA7));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(TA5));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(TA3));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(TA1));
    p = _mm256_mul_ps(p, c);
    __m256 q = _mm256_fmadd_ps(_mm256_set1_ps(TB6), z, _mm256_set1_ps(TB4));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(TB2));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(TB0));
    __m256 t = _mm256_min_ps(_mm256_mul_ps(p, recip256(q)), _mm256_set1_ps(1.0f));
    t = _mm256_blendv_ps(t, _mm256_set1_ps(1.0f),
                         _mm256_cmp_ps(a, _mm256_set1_ps(TR_ONE), _CMP_GE_OQ));
    t = _mm256_blendv_ps(t, a, _mm256_cmp_ps(a, _mm256_set1_ps(TR_TINY), _CMP_LT_OQ));
    __m256 out = _mm256_or_ps(t, _mm256_and_ps(x, sign));
    __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    return _mm256_blendv_ps(out, x, nan);
}

static inline T256 __m256 sigmoid256(__m256 x)
{
    __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
    __m256 s = recip256(_mm256_add_ps(_mm256_set1_ps(1.0f), e));
    __m256 zero = _mm256_cmp_ps(x, _mm256_set1_ps(-EXP_HI), _CMP_LT_OQ);
    s = _mm256_andnot_ps(zero, s);
    __m256 one = _mm256_cmp_ps(x, _mm256_set1_ps(SIG_ONE), _CMP_GE_OQ);
    s = _mm256_blendv_ps(s, _mm256_set1_ps(1.0f), one);
    __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    return _mm256_blendv_ps(s, x, nan);
}

/* Tails go through the vector code too (via a padded copy), so that a value's result does not
 * depend on where it sits in an array. */
static T256 void tanh_avx2(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, tanh256(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float t[8] = {0};
        memcpy(t, x + i, (n - i) * sizeof(float));
        _mm256_storeu_ps(t, tanh256(_mm256_loadu_ps(t)));
        memcpy(x + i, t, (n - i) * sizeof(float));
    }
}

static T256 void sigmoid_avx2(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, sigmoid256(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float t[8] = {0};
        memcpy(t, x + i, (n - i) * sizeof(float));
        _mm256_storeu_ps(t, sigmoid256(_mm256_loadu_ps(t)));
        memcpy(x + i, t, (n - i) * sizeof(float));
    }
}
#endif

void kern_tanh_with(kern_isa isa, float *x, size_t n)
{
#if KERN_X86
    if (isa == KERN_AVX512) {
        tanh_avx512(x, n);
        return;
    }
    if (isa == KERN_AVX2) {
        tanh_avx2(x, n);
        return;
    }
#endif
    (void)isa;
    tanh_generic(x, n);
}

void kern_sigmoid_with(kern_isa isa, float *x, size_t n)
{
#if KERN_X86
    if (isa == KERN_AVX512) {
        sigmoid_avx512(x, n);
        return;
    }
    if (isa == KERN_AVX2) {
        sigmoid_avx2(x, n);
        return;
    }
#endif
    (void)isa;
    sigmoid_generic(x, n);
}

void kern_tanh(float *x, size_t n)
{
    kern_tanh_with(kern_isa_active(), x, n);
}

void kern_sigmoid(float *x, size_t n)
{
    kern_sigmoid_with(kern_isa_active(), x, n);
}

void kern_relu(float *x, size_t n)
{
    /* PyTorch's relu propagates NaN; a plain x > 0 ? x : 0 would turn it into 0 and hide the
     * non-finite result the server must report. */
    for (size_t i = 0; i < n; i++)
        x[i] = isnan(x[i]) ? x[i] : (x[i] > 0.0f ? x[i] : 0.0f);
}

/* ---------------------------------------------------------------------------------------------
 * Elementwise helpers: one plain C body, compiled three times (vectorised by GCC for each target
 * at -O3 whatever the file's -O level). No fused multiply-add is formed (-std=c11 keeps
 * -ffp-contract=off), so every path rounds the same way. */
#if defined(__GNUC__) && !defined(__clang__)
#define VEC_OPT __attribute__((optimize("O3")))
#else
#define VEC_OPT
#endif

#define ELEMWISE(SFX, ATTR)                                                                        \
    static ATTR VEC_OPT void sum_##SFX(float *restrict o, const float *restrict a,                 \
                                       const float *restrict b, size_t n)                          \
    {                                                                                              \
        for (size_t i = 0; i < n; i++)                                                             \
            o[i] = a[i] + b[i];                                                                    \
    }                                                                                              \
    static ATTR VEC_OPT void add_##SFX(float *restrict a, const float *restrict b, size_t n)       \
    {                                                                                              \
        for (size_t i = 0; i < n; i++)                                                             \
            a[i] += b[i];                                                                          \
    }                                                                                              \
    static ATTR VEC_OPT void mul_##SFX(float *restrict a, const float *restrict b, size_t n)       \
    {                                                                                              \
        for (size_t i = 0; i < n; i++)                                                             \
            a[i] *= b[i];                                                                          \
    }                                                                                              \
    static ATTR VEC_OPT void lstm_c_##SFX(float *restrict c, float *restrict h,                    \
                                          const float *restrict ig, const float *restrict fg,      \
                                          const float *restrict gg, size_t n)                      \
    {                                                                                              \
        for (size_t i = 0; i < n; i++) {                                                           \
            float v = fg[i] * c[i] + ig[i] * gg[i];                                                \
            c[i] = v;                                                                              \
            h[i] = v;                                                                              \
        }                                                                                          \
    }                                                                                              \
    static ATTR VEC_OPT void gru_n_##SFX(float *o, const float *restrict p,                        \
                                         const float *restrict r, const float *rn,                 \
                                         const float *restrict bhn, size_t n)                      \
    {                                                                                              \
        for (size_t i = 0; i < n; i++)                                                             \
            o[i] = p[i] + r[i] * (rn[i] + bhn[i]);                                                 \
    }                                                                                              \
    static ATTR VEC_OPT void gru_h_##SFX(float *restrict h, const float *restrict nn,              \
                                         const float *restrict z, const float *restrict hp,        \
                                         size_t n)                                                 \
    {                                                                                              \
        for (size_t i = 0; i < n; i++)                                                             \
            h[i] = (1.0f - z[i]) * nn[i] + z[i] * hp[i];                                           \
    }

ELEMWISE(generic, )
#if KERN_X86
ELEMWISE(avx2, T256)
ELEMWISE(avx512, T512)
#define PICK(NAME, ARGS)                                                                           \
    do {                                                                                           \
        kern_isa isa_ = kern_isa_active();                                                         \
        if (isa_ == KERN_AVX512)                                                                   \
            NAME##_avx512 ARGS;                                                                    \
        else if (isa_ == KERN_AVX2)                                                                \
            NAME##_avx2 ARGS;                                                                      \
        else                                                                                       \
            NAME##_generic ARGS;                                                                   \
    } while (0)
#else
#define PICK(NAME, ARGS) NAME##_generic ARGS
#endif

void kern_sum(float *out, const float *a, const float *b, size_t n)
{
    PICK(sum, (out, a, b, n));
}

void kern_add(float *a, const float *b, size_t n)
{
    PICK(add, (a, b, n));
}

void kern_mul(float *a, const float *b, size_t n)
{
    PICK(mul, (a, b, n));
}

void kern_lstm_c(float *c, float *h, const float *i, const float *f, const float *g, size_t n)
{
    PICK(lstm_c, (c, h, i, f, g, n));
}

void kern_gru_n(float *out, const float *p, const float *r, const float *rn, const float *bhn,
                size_t n)
{
    PICK(gru_n, (out, p, r, rn, bhn, n));
}

void kern_gru_h(float *h, const float *nn, const float *z, const float *hp, size_t n)
{
    PICK(gru_h, (h, nn, z, hp, n));
}
