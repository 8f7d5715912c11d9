/* kernels.h - private to the engine: the matrix products and the activations the cells use.
 *
 * One place for every numeric primitive, so a faster version replaces one function and is tested
 * against the naive one kept beside it (tests/test_kernels.c).
 *
 * Three instruction sets, picked once at run time (__builtin_cpu_supports): AVX-512F, AVX2+FMA,
 * and a portable C fallback. Every path computes the same functions; tests and the benchmark
 * may force a path with kern_isa_use(). No code here is built with -ffast-math: NaN propagates
 * through every activation and infinities saturate as the math says. */
#ifndef RNNSERVE_KERNELS_H
#define RNNSERVE_KERNELS_H

#include <stddef.h>

typedef enum { KERN_GENERIC = 0, KERN_AVX2 = 1, KERN_AVX512 = 2 } kern_isa;

/* The best path this CPU runs (AVX-512F, else AVX2 with FMA, else generic). */
kern_isa kern_isa_supported(void);
/* The path in use: kern_isa_supported() unless forced. */
kern_isa kern_isa_active(void);
/* Forces a path, clamped to what the CPU supports; returns the one now in use. Process-wide,
 * meant for tests and benchmarks (not while forward passes run). */
kern_isa kern_isa_use(kern_isa want);
const char *kern_isa_name(kern_isa isa);

/* ---- products ---------------------------------------------------------------------------- */

/* C (M, N) = A (M, K) . W^T + beta * C, with W (N, K) row-major as PyTorch stores weights, by
 * CBLAS sgemm (OpenBLAS, loaded with dlopen on first use; plain loops if no CBLAS library can
 * be found). lda, ldw, ldc are row strides in floats. M == 0 is a no-op. */
void kern_gemm_xwt(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *W,
                   size_t ldw, float beta, float *C, size_t ldc);

/* Loads the CBLAS library if not yet done, and describes it: WHAT 0 its configuration string
 * (OpenBLAS's openblas_get_config), 1 the kernel it picked for this CPU, 2 the file loaded;
 * "not found" without one. */
const char *kern_blas_describe(int what);
/* Threads the BLAS library may use (n < 1 counts as 1): kept, and applied now if the library is
 * loaded or when it loads (see rnn_set_blas_threads). Process-wide, thread-safe. */
void kern_set_blas_threads(int n);

/* The same with plain loops (double accumulation): the reference the fast paths are tested
 * against. */
void kern_gemm_xwt_naive(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *W,
                         size_t ldw, float beta, float *C, size_t ldc);

/* A weight matrix W (G*U, K), PyTorch's gate-major layout (G groups of U rows), packed for the
 * hand-written kernels: W^T cut into panels of KERN_NR columns (K x 16 floats each, contiguous,
 * so a panel streams through the cache in order). Each group starts a new panel (its last one is
 * zero-padded), so a range of units [u0, u1) with u0 a multiple of 16 is a run of whole panels in
 * every group: that is how a pass splits one layer's units between threads. */
#define KERN_NR 16
typedef struct {
    size_t groups, units, k; /* G, U, K */
    size_t panels;           /* per group: ceil(U / 16) */
    float *data;             /* groups * panels * k * 16 floats, 64-byte aligned */
} kern_packed;

/* Packs W (groups*units rows of k floats, row stride ldw). Returns 0, or -1 out of memory. */
int kern_pack(kern_packed *p, const float *W, size_t ldw, size_t groups, size_t units, size_t k);
void kern_pack_free(kern_packed *p);
/* Bytes kern_pack allocates for these sizes. */
size_t kern_pack_bytes(size_t groups, size_t units, size_t k);

/* For group g and units [u0, u1) (u0 a multiple of 16, u1 <= U):
 *   C[i][c] = start[i][c] + sum_k A[i][k] * W[g*U + u0 + c][k]     i < M, c < u1 - u0
 * where start is: init[i] + init_off (c values per row; rows may repeat, e.g. a bias) when INIT
 * is not NULL; else C itself when ACCUMULATE; else zero. lda, ldc are row strides in floats; A
 * has W's K columns. Register tiles of up to 6 rows by 64 columns, blocked for L1: latency-bound
 * small M (the recurrent product of a few active rows) and large M (an input projection)
 * alike. */
void kern_gemm_packed(size_t M, const float *A, size_t lda, const kern_packed *W, size_t g,
                      size_t u0, size_t u1, const float *const *init, size_t init_off,
                      int accumulate, float *C, size_t ldc);
/* The same on an explicit path (tests). */
void kern_gemm_packed_with(kern_isa isa, size_t M, const float *A, size_t lda, const kern_packed *W,
                           size_t g, size_t u0, size_t u1, const float *const *init,
                           size_t init_off, int accumulate, float *C, size_t ldc);
/* A product's rows anywhere: row i at rows[i] + off when ROWS is not NULL, else at base + i * ld.
 * A row-pointer operand lets the engine's recurrent step read the last step's states where it
 * wrote them and write this step's straight into the layer's output rows, with no copies. */
typedef struct {
    const float *base;
    size_t ld;
    const float *const *rows;
    size_t off;
} kern_rows;
#define KERN_ROWS_STRIDED(base_, ld_) ((kern_rows){(base_), (ld_), NULL, 0})
#define KERN_ROWS_PTRS(rows_, off_) ((kern_rows){NULL, 0, (const float *const *)(rows_), (off_)})

/* kern_gemm_packed on rows described by A and C (C's rows are written; none may overlap A's). */
void kern_gemm_packed_rows(size_t M, kern_rows A, const kern_packed *W, size_t g, size_t u0,
                           size_t u1, const float *const *init, size_t init_off, int accumulate,
                           kern_rows C);
void kern_gemm_packed_rows_with(kern_isa isa, size_t M, kern_rows A, const kern_packed *W, size_t g,
                                size_t u0, size_t u1, const float *const *init, size_t init_off,
                                int accumulate, kern_rows C);

/* ---- activations ------------------------------------------------------------------------- */

/* In place over n values. Within 1e-6 absolute of the exact function for every float32 input
 * (make check-activations proves it on all 2^32 patterns); NaN in gives NaN out, tanh(+-inf) =
 * +-1, sigmoid(+inf) = 1, sigmoid(-inf) = 0. */
void kern_tanh(float *x, size_t n);
void kern_sigmoid(float *x, size_t n);
void kern_relu(float *x, size_t n);
/* The same on an explicit path (tests and the exhaustive check). */
void kern_tanh_with(kern_isa isa, float *x, size_t n);
void kern_sigmoid_with(kern_isa isa, float *x, size_t n);

/* Elementwise helpers of the cells, vectorised for the active path (plain arithmetic, so every
 * path gives bit-identical results). Arrays must not overlap except where noted.
 *   kern_sum:    out = a + b
 *   kern_add:    a += b
 *   kern_mul:    a *= b
 *   kern_lstm_c: c = f * c + i * g, then h = c (h gets tanh and the o gate next)
 *   kern_gru_n:  out = p + r * (rn + bhn)        (out may be rn)
 *   kern_gru_h:  h = (1 - z) * n + z * hp */
void kern_sum(float *out, const float *a, const float *b, size_t n);
void kern_add(float *a, const float *b, size_t n);
void kern_mul(float *a, const float *b, size_t n);
void kern_lstm_c(float *c, float *h, const float *i, const float *f, const float *g, size_t n);
void kern_gru_n(float *out, const float *p, const float *r, const float *rn, const float *bhn,
                size_t n);
void kern_gru_h(float *h, const float *nn, const float *z, const float *hp, size_t n);

#endif
