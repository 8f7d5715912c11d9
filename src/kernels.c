/* kernels.c - matrix products and activations for the engine (see kernels.h).
 *
 * Products go to CBLAS sgemm; the naive loops beside them are the reference in tests. */
#include "kernels.h"

#include <cblas.h>
#include <math.h>

#include "rnnserve/engine.h"

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
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)M, (blasint)N, (blasint)K, 1.0f,
                A, (blasint)lda, W, (blasint)ldw, beta, C, (blasint)ldc);
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

void kern_tanh(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = tanhf(x[i]);
}

void kern_sigmoid(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = kern_sigmoidf(x[i]);
}

void kern_relu(float *x, size_t n)
{
    /* PyTorch's relu propagates NaN; a plain x > 0 ? x : 0 would turn it into 0 and hide the
     * non-finite result the server must report. */
    for (size_t i = 0; i < n; i++)
        x[i] = isnan(x[i]) ? x[i] : (x[i] > 0.0f ? x[i] : 0.0f);
}

void rnn_set_blas_threads(int n)
{
    openblas_set_num_threads(n < 1 ? 1 : n);
}
