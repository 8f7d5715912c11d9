/* kernels.h - private to the engine: the matrix product and the activations the cells use.
 *
 * One place for every numeric primitive, so a faster version (hand-written SIMD, a different
 * BLAS call) replaces one function and is tested against the naive one kept beside it. */
#ifndef RNNSERVE_KERNELS_H
#define RNNSERVE_KERNELS_H

#include <stddef.h>

/* C (M, N) = A (M, K) . W^T + beta * C, with W (N, K) row-major as PyTorch stores weights.
 * lda, ldw, ldc are row strides in floats. M == 0 is a no-op. */
void kern_gemm_xwt(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *W,
                   size_t ldw, float beta, float *C, size_t ldc);

/* The same with plain loops (double accumulation): the reference the fast path is tested
 * against. */
void kern_gemm_xwt_naive(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *W,
                         size_t ldw, float beta, float *C, size_t ldc);

/* Elementwise activations, in place over n values. */
void kern_tanh(float *x, size_t n);
void kern_sigmoid(float *x, size_t n);
void kern_relu(float *x, size_t n);

static inline float kern_sigmoidf(float x)
{
    return 1.0f / (1.0f + __builtin_expf(-x));
}

#endif
