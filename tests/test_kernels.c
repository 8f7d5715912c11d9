/* test_kernels.c - the engine's numeric primitives on every instruction-set path this CPU runs
 * (generic C, AVX2, AVX-512), each against a naive reference:
 *   - packed products (kern_gemm_packed) and the CBLAS one against kern_gemm_xwt_naive, on
 *     shapes that hit every register-tile edge, K blocking, unit sub-ranges and groups;
 *   - tanh and sigmoid on a dense sweep against double precision (1e-6 absolute; the proof on all
 *     2^32 inputs is make check-activations), NaN, infinities and signed zero;
 *   - the elementwise cell helpers, bit-identical across paths;
 *   - whole forward passes with each path forced, and split across threads, against the naive
 *     reference. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/kernels.h"
#include "rnnserve/config.h"
#include "rnnserve/engine.h"
#include "testutil.h"

static unsigned rng = 2024;

static float frand(void)
{
    rng = rng * 1103515245u + 12345u;
    return ((float)((rng >> 8) & 0xffff) / 65535.0f) * 2.0f - 1.0f;
}

static float *rand_array(size_t n)
{
    float *a = malloc((n ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(a);
    for (size_t i = 0; i < n; i++)
        a[i] = frand();
    return a;
}

static int n_paths(void)
{
    return (int)kern_isa_supported() + 1;
}

/* ---------------------------------------------------------------------------------------------
 * Products */

/* kern_gemm_packed on group g, units [u0, u1) against the naive product of the same rows. */
/* ACC: 0 start from zero, 1 accumulate into C, 2 start from init rows (a scrambled choice of
 * rows of another matrix, at an offset). */
static void check_packed(kern_isa isa, size_t M, size_t G, size_t U, size_t K, size_t g, size_t u0,
                         size_t u1, int acc)
{
    const size_t lda = K + 3, ldc = (u1 - u0) + 5;
    float *A = rand_array(M * lda), *W = rand_array(G * U * K);
    float *C = rand_array(M * ldc), *R = malloc((M * ldc + 1) * sizeof(float));
    float *S = rand_array(7 * (ldc + 9));
    const float **init = malloc((M + 1) * sizeof *init);
    for (size_t i = 0; i < M; i++)
        init[i] = S + ((i * 5) % 7) * (ldc + 9);
    memcpy(R, C, M * ldc * sizeof(float));
    if (acc == 2)
        for (size_t i = 0; i < M; i++)
            memcpy(R + i * ldc, init[i] + 3, (u1 - u0) * sizeof(float));
    kern_packed p;
    ck_assert_int_eq(kern_pack(&p, W, K, G, U, K), 0);
    kern_gemm_packed_with(isa, M, A, lda, &p, g, u0, u1, acc == 2 ? init : NULL, 3, acc == 1, C,
                          ldc);
    kern_gemm_xwt_naive(M, u1 - u0, K, A, lda, W + (g * U + u0) * K, K, acc ? 1.0f : 0.0f, R, ldc);
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < ldc; j++) {
            float got = C[i * ldc + j], want = R[i * ldc + j];
            /* columns past u1 - u0 are the caller's: untouched */
            double tol = j < u1 - u0 ? 1e-5 * (1.0 + (double)K) : 0.0;
            ck_assert_msg(fabs((double)got - want) <= tol,
                          "%s M=%zu G=%zu U=%zu K=%zu g=%zu [%zu,%zu) acc=%d: C[%zu][%zu] = %g, "
                          "want %g",
                          kern_isa_name(isa), M, G, U, K, g, u0, u1, acc, i, j, (double)got,
                          (double)want);
        }
    kern_pack_free(&p);
    free(A);
    free(W);
    free(C);
    free(R);
    free(S);
    free(init);
}

START_TEST(test_packed_product_matches_naive)
{
    const size_t Ms[] = {1, 2, 3, 5, 6, 7, 12, 13, 97, 200};
    const size_t Us[] = {1, 4, 15, 16, 17, 33, 64, 65, 130};
    const size_t Ks[] = {0, 1, 7, 16, 129, 300};
    for (int isa = 0; isa < n_paths(); isa++)
        for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
            for (size_t b = 0; b < sizeof Us / sizeof *Us; b++)
                for (size_t c = 0; c < sizeof Ks / sizeof *Ks; c++) {
                    if (Ms[a] * Us[b] * Ks[c] > (tu_under_valgrind() ? 40000u : 2000000u))
                        continue;
                    check_packed((kern_isa)isa, Ms[a], 1, Us[b], Ks[c], 0, 0, Us[b],
                                 (int)((a + c) % 3));
                }
}
END_TEST

/* Row pointers (kern_gemm_packed_rows): A's rows and C's in a scrambled order at an offset give
 * exactly the strided product's values (the same operations), and C's other columns stay. K 600
 * crosses a K chunk (C is then read back between chunks). */
START_TEST(test_packed_product_on_row_pointers)
{
    const size_t Ms[] = {1, 5, 7, 13, 97}, Us[] = {16, 33, 130}, Ks[] = {7, 129, 600};
    for (int isa = 0; isa < n_paths(); isa++)
        for (size_t a = 0; a < 5; a++)
            for (size_t b = 0; b < 3; b++)
                for (size_t c = 0; c < 3; c++) {
                    const size_t M = Ms[a], U = Us[b], K = Ks[c], off = 3, ld = U + 8;
                    if (tu_under_valgrind() && M * U * K > 40000u)
                        continue;
                    float *A = rand_array(M * K), *W = rand_array(U * K), *S = rand_array(U + 1);
                    float *Cs = rand_array(M * U), *Cr = rand_array(M * ld),
                          *Ar = rand_array(M * (K + off));
                    float *keep = malloc(M * ld * sizeof(float));
                    const float **arow = malloc(M * sizeof *arow),
                                **init = malloc(M * sizeof *init);
                    float **crow = malloc(M * sizeof *crow);
                    for (size_t i = 0; i < M; i++) { /* row i lives at slot M-1-i */
                        memcpy(Ar + (M - 1 - i) * (K + off) + off, A + i * K, K * sizeof(float));
                        arow[i] = Ar + (M - 1 - i) * (K + off);
                        crow[i] = Cr + (M - 1 - i) * ld;
                        init[i] = S;
                    }
                    memcpy(keep, Cr, M * ld * sizeof(float));
                    kern_packed p;
                    ck_assert_int_eq(kern_pack(&p, W, K, 1, U, K), 0);
                    int acc = (int)((a + b + c) % 2);
                    kern_gemm_packed_with((kern_isa)isa, M, A, K, &p, 0, 0, U, acc ? init : NULL, 1,
                                          0, Cs, U);
                    kern_gemm_packed_rows_with((kern_isa)isa, M, KERN_ROWS_PTRS(arow, off), &p, 0,
                                               0, U, acc ? init : NULL, 1, 0,
                                               KERN_ROWS_PTRS(crow, off));
                    for (size_t i = 0; i < M; i++)
                        for (size_t j = 0; j < ld; j++) {
                            float got = crow[i][j];
                            float want = j >= off && j < off + U ? Cs[i * U + j - off]
                                                                 : keep[(M - 1 - i) * ld + j];
                            ck_assert_msg(memcmp(&got, &want, sizeof got) == 0,
                                          "%s M=%zu U=%zu K=%zu: row %zu col %zu: %g, want %g",
                                          kern_isa_name((kern_isa)isa), M, U, K, i, j, (double)got,
                                          (double)want);
                        }
                    kern_pack_free(&p);
                    free(A), free(W), free(S), free(Cs), free(Cr), free(Ar), free(keep);
                    free(arow), free(init), free(crow);
                }
}
END_TEST

/* Groups (gates) and the unit ranges a threaded stage uses: [u0, u1) with u0 on a panel. */
START_TEST(test_packed_product_groups_and_ranges)
{
    for (int isa = 0; isa < n_paths(); isa++)
        for (size_t G = 1; G <= 4; G++)
            for (size_t g = 0; g < G; g++) {
                check_packed((kern_isa)isa, 9, G, 70, 40, g, 0, 70, 0);
                check_packed((kern_isa)isa, 9, G, 70, 40, g, 16, 70, 1);
                check_packed((kern_isa)isa, 9, G, 70, 40, g, 32, 48, 2);
                check_packed((kern_isa)isa, 9, G, 70, 40, g, 64, 70, 1);
                check_packed((kern_isa)isa, 4, G, 128, 128, g, 64, 128, 2);
            }
}
END_TEST

START_TEST(test_blas_product_matches_naive)
{
    const size_t M = 37, N = 29, K = 53;
    float *A = rand_array(M * K), *W = rand_array(N * K), *C = rand_array(M * N);
    float *R = malloc(M * N * sizeof(float));
    memcpy(R, C, M * N * sizeof(float));
    kern_gemm_xwt(M, N, K, A, K, W, K, 1.0f, C, N);
    kern_gemm_xwt_naive(M, N, K, A, K, W, K, 1.0f, R, N);
    ck_assert(tu_max_abs_diff(C, R, M * N) <= 1e-4);
    kern_gemm_xwt(M, N, 0, A, K, W, K, 0.0f, C, N);
    for (size_t i = 0; i < M * N; i++)
        ck_assert_float_eq(C[i], 0.0f);
    free(A);
    free(W);
    free(C);
    free(R);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Activations */

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static double ref(int f, float x)
{
    return f == 0 ? tanh((double)x) : 1.0 / (1.0 + exp(-(double)x));
}

static void act(kern_isa isa, int f, float *x, size_t n)
{
    if (f == 0)
        kern_tanh_with(isa, x, n);
    else
        kern_sigmoid_with(isa, x, n);
}

/* Every 4099th bit pattern (about a million inputs, every exponent), and a fine grid on [-12,
 * 12], within 1e-6 of double precision (fewer under valgrind). */
START_TEST(test_activations_dense_sweep)
{
    const uint64_t stride = tu_under_valgrind() ? 65521 : 4099;
    const int grid = tu_under_valgrind() ? 12000 : 120000;
    size_t n = 2 * (size_t)grid + 1;
    for (uint64_t u = 0; u < (1ull << 32); u += stride)
        n++;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    ck_assert(x && y);
    size_t k = 0;
    for (uint64_t u = 0; u < (1ull << 32); u += stride)
        x[k++] = from_bits((uint32_t)u);
    for (int i = -grid; i <= grid; i++)
        x[k++] = (float)i * (12.0f / (float)grid);
    for (int isa = 0; isa < n_paths(); isa++)
        for (int f = 0; f < 2; f++) {
            ck_assert_uint_eq(k, n);
            memcpy(y, x, n * sizeof(float));
            act((kern_isa)isa, f, y, n);
            double worst = 0;
            for (size_t i = 0; i < k; i++) {
                if (isnan(x[i])) {
                    ck_assert_msg(isnan(y[i]), "%s: NaN in, %g out", kern_isa_name(isa),
                                  (double)y[i]);
                    continue;
                }
                double e = fabs((double)y[i] - ref(f, x[i]));
                ck_assert_msg(e <= 1e-6, "%s %s(%.9g) = %.9g, want %.12g",
                              kern_isa_name((kern_isa)isa), f ? "sigmoid" : "tanh", (double)x[i],
                              (double)y[i], ref(f, x[i]));
                worst = fmax(worst, e);
            }
            printf("%-8s %-7s max abs error %.3g over %zu inputs\n", kern_isa_name((kern_isa)isa),
                   f ? "sigmoid" : "tanh", worst, k);
        }
    free(x);
    free(y);
}
END_TEST

START_TEST(test_activations_special_values)
{
    for (int isa = 0; isa < n_paths(); isa++) {
        float v[7] = {NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-30f};
        kern_tanh_with((kern_isa)isa, v, 7);
        ck_assert(isnan(v[0]) && isnan(v[1]));
        ck_assert_float_eq(v[2], 1.0f);
        ck_assert_float_eq(v[3], -1.0f);
        ck_assert(v[4] == 0.0f && !signbit(v[4]));
        ck_assert(v[5] == 0.0f && signbit(v[5]));
        ck_assert_float_eq(v[6], 1e-30f);
        float s[5] = {NAN, INFINITY, -INFINITY, 0.0f, -200.0f};
        kern_sigmoid_with((kern_isa)isa, s, 5);
        ck_assert(isnan(s[0]));
        ck_assert_float_eq(s[1], 1.0f);
        ck_assert_float_eq(s[2], 0.0f);
        ck_assert(fabsf(s[3] - 0.5f) <= 6e-8f);
        ck_assert_float_eq(s[4], 0.0f);
    }
}
END_TEST

/* A value's result does not depend on its place in the array (vector body or tail) nor on the
 * path for the tails; every length from 0 to 40. */
START_TEST(test_activations_tails)
{
    float base[40];
    for (int i = 0; i < 40; i++)
        base[i] = frand() * 6.0f;
    for (int isa = 0; isa < n_paths(); isa++)
        for (int f = 0; f < 2; f++) {
            float full[40];
            memcpy(full, base, sizeof full);
            act((kern_isa)isa, f, full, 40);
            for (size_t n = 0; n <= 40; n++) {
                float part[41];
                memcpy(part, base, sizeof base);
                part[n] = 12345.0f; /* guard: must stay */
                act((kern_isa)isa, f, part, n);
                for (size_t i = 0; i < n; i++)
                    ck_assert_mem_eq(&part[i], &full[i], sizeof(float));
                ck_assert_float_eq(part[n], n < 40 ? 12345.0f : part[n]);
            }
        }
}
END_TEST

START_TEST(test_relu_keeps_nan)
{
    float v[4] = {NAN, -1.0f, 2.0f, -0.0f};
    kern_relu(v, 4);
    ck_assert(isnan(v[0]));
    ck_assert_float_eq(v[1], 0.0f);
    ck_assert_float_eq(v[2], 2.0f);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Elementwise helpers: every path gives exactly the generic result. */

START_TEST(test_elementwise_identical_on_every_path)
{
    const size_t n = 37;
    float *a = rand_array(n), *b = rand_array(n), *c = rand_array(n), *d = rand_array(n);
    float want[6][37], got[37], got2[37];
    for (int isa = 0; isa < n_paths(); isa++) {
        kern_isa_use((kern_isa)isa);
        kern_sum(got, a, b, n);
        if (isa == 0)
            memcpy(want[0], got, sizeof got);
        ck_assert_mem_eq(got, want[0], sizeof got);
        memcpy(got, a, sizeof got);
        kern_add(got, b, n);
        if (isa == 0)
            memcpy(want[1], got, sizeof got);
        ck_assert_mem_eq(got, want[1], sizeof got);
        memcpy(got, a, sizeof got);
        kern_mul(got, b, n);
        if (isa == 0)
            memcpy(want[2], got, sizeof got);
        ck_assert_mem_eq(got, want[2], sizeof got);
        memcpy(got, a, sizeof got);
        kern_lstm_c(got, got2, b, c, d, n);
        ck_assert_mem_eq(got, got2, sizeof got);
        if (isa == 0)
            memcpy(want[3], got, sizeof got);
        ck_assert_mem_eq(got, want[3], sizeof got);
        memcpy(got, d, sizeof got);
        kern_gru_n(got, a, b, got, c, n); /* out aliases rn, as the GRU cell calls it */
        if (isa == 0)
            memcpy(want[4], got, sizeof got);
        ck_assert_mem_eq(got, want[4], sizeof got);
        kern_gru_h(got2, a, b, c, n);
        if (isa == 0)
            memcpy(want[5], got2, sizeof got2);
        ck_assert_mem_eq(got2, want[5], sizeof got2);
        for (size_t i = 0; i < n; i++)
            ck_assert_float_eq(want[3][i], c[i] * a[i] + b[i] * d[i]);
    }
    kern_isa_use(KERN_AVX512);
    free(a);
    free(b);
    free(c);
    free(d);
}
END_TEST

/* ---------------------------------------------------------------------------------------------
 * Whole passes on each path and split across threads */

typedef struct {
    cfg_model cm;
    rnn_model *m;
} rand_model;

static void rand_model_make(rand_model *r, rnn_cell_type type, int I, int H, int layers, int bidir,
                            rnn_nonlinearity nl)
{
    const int G = type == RNN_CELL_LSTM ? 4 : type == RNN_CELL_GRU ? 3 : 1, D = bidir + 1;
    memset(r, 0, sizeof *r);
    cfg_model *cm = &r->cm;
    cm->name = "random";
    cm->type = type;
    cm->nonlinearity = nl;
    cm->input_size = I;
    cm->hidden_size = H;
    cm->num_layers = layers;
    cm->bias = true;
    cm->bidirectional = bidir;
    cm->prefix = "";
    cm->tensors = calloc((size_t)(4 * layers * D), sizeof(cfg_tensor));
    const float scale = 1.0f / sqrtf((float)H);
    for (int l = 0; l < layers; l++)
        for (int d = 0; d < D; d++) {
            const char *sfx = d ? "_reverse" : "";
            const char *base[4] = {"weight_ih_l", "weight_hh_l", "bias_ih_l", "bias_hh_l"};
            int in = l == 0 ? I : D * H;
            int64_t shapes[4][2] = {{G * H, in}, {G * H, H}, {G * H, 0}, {G * H, 0}};
            for (int k = 0; k < 4; k++) {
                char name[64];
                snprintf(name, sizeof name, "%s%d%s", base[k], l, sfx);
                cfg_tensor *t = &cm->tensors[cm->n_tensors++];
                t->name = strdup(name);
                t->ndim = k < 2 ? 2 : 1;
                t->shape[0] = shapes[k][0];
                t->shape[1] = shapes[k][1];
                t->numel = (size_t)(k < 2 ? shapes[k][0] * shapes[k][1] : shapes[k][0]);
                t->data = malloc(t->numel * sizeof(float));
                for (size_t e = 0; e < t->numel; e++)
                    t->data[e] = frand() * scale;
            }
        }
    char err[512];
    ck_assert_msg(rnn_model_load(cm, &r->m, err, sizeof err) == 0, "%s", err);
}

static void rand_model_free(rand_model *r)
{
    rnn_model_free(r->m);
    for (size_t k = 0; k < r->cm.n_tensors; k++) {
        free(r->cm.tensors[k].name);
        free(r->cm.tensors[k].data);
    }
    free(r->cm.tensors);
}

/* Runs MODEL on a ragged batch with the engine (current path and threads) and the reference;
 * returns the largest difference over outputs, hidden and cell. */
static double engine_vs_reference(const rnn_model *m, const int32_t *lengths, size_t B, int with_h0)
{
    const rnn_info *in = rnn_model_info(m);
    size_t N = 0;
    for (size_t i = 0; i < B; i++)
        N += (size_t)lengths[i];
    const size_t LDH = (size_t)(in->num_layers * in->num_directions * in->hidden_size);
    float *x = rand_array(N * (size_t)in->input_size);
    float *h0 = with_h0 ? rand_array(B * LDH) : NULL;
    float *c0 = with_h0 && in->type == RNN_CELL_LSTM ? rand_array(B * LDH) : NULL;
    rnn_batch b = {.batch = B, .lengths = lengths, .x = x, .h0 = h0, .c0 = c0};
    size_t no, nh, nc;
    rnn_result_sizes(m, &b, &no, &nh, &nc);
    rnn_result r1 = {.outputs = malloc(no * 4 + 4),
                     .hidden = malloc(nh * 4),
                     .cell = nc ? malloc(nc * 4) : NULL};
    rnn_result r2 = {.outputs = malloc(no * 4 + 4),
                     .hidden = malloc(nh * 4),
                     .cell = nc ? malloc(nc * 4) : NULL};
    char err[256];
    ck_assert_msg(rnn_forward(m, &b, &r1, err, sizeof err) == 0, "%s", err);
    ck_assert(rnn_forward_reference(m, &b, &r2, err, sizeof err) == 0);
    double d = fmax(tu_max_abs_diff(r1.outputs, r2.outputs, no),
                    tu_max_abs_diff(r1.hidden, r2.hidden, nh));
    if (nc)
        d = fmax(d, tu_max_abs_diff(r1.cell, r2.cell, nc));
    free(r1.outputs), free(r1.hidden), free(r1.cell);
    free(r2.outputs), free(r2.hidden), free(r2.cell);
    free(x), free(h0), free(c0);
    return d;
}

START_TEST(test_forward_on_every_path)
{
    const rnn_cell_type types[3] = {RNN_CELL_RNN, RNN_CELL_LSTM, RNN_CELL_GRU};
    const int32_t lengths[7] = {9, 0, 1, 23, 4, 23, 16};
    for (int t = 0; t < 3; t++)
        for (int bidir = 0; bidir < 2; bidir++) {
            rand_model rm;
            rand_model_make(&rm, types[t], 5, 37, 2, bidir, bidir ? RNN_RELU : RNN_TANH);
            for (int isa = 0; isa < n_paths(); isa++) {
                kern_isa_use((kern_isa)isa);
                double d = engine_vs_reference(rm.m, lengths, 7, bidir);
                ck_assert_msg(d <= 1e-5, "type %d bidir %d on %s: %g", t, bidir,
                              kern_isa_name((kern_isa)isa), d);
            }
            kern_isa_use(KERN_AVX512);
            rand_model_free(&rm);
        }
}
END_TEST

/* rnn_result.out_rows: each sequence's rows written where asked (here a padded layout with a
 * row of slack, NaN-filled) hold exactly the packed outputs, the slack is untouched, and the
 * final states are the same: every cell type, both directions, empty and long sequences, every
 * path, one thread and two. */
START_TEST(test_forward_writes_out_rows_in_place)
{
    const rnn_cell_type types[3] = {RNN_CELL_RNN, RNN_CELL_LSTM, RNN_CELL_GRU};
    const int32_t lengths[6] = {9, 0, 1, 23, 4, 23};
    const size_t B = 6, Tpad = 24;
    for (int t = 0; t < 3; t++)
        for (int bidir = 0; bidir < 2; bidir++) {
            rand_model rm;
            rand_model_make(&rm, types[t], 5, 144, 2, bidir, RNN_TANH);
            const rnn_info *in = rnn_model_info(rm.m);
            const size_t DH = (size_t)in->num_directions * (size_t)in->hidden_size;
            size_t N = 0;
            for (size_t i = 0; i < B; i++)
                N += (size_t)lengths[i];
            float *x = rand_array(N * 5);
            rnn_batch b = {.batch = B, .lengths = lengths, .x = x};
            size_t no, nh, nc;
            rnn_result_sizes(rm.m, &b, &no, &nh, &nc);
            for (int isa = 0; isa < n_paths(); isa++)
                for (int th = 1; th <= 2; th++) {
                    kern_isa_use((kern_isa)isa);
                    rnn_set_threads(th);
                    float *packed = malloc(no * 4 + 4), *h1 = malloc(nh * 4), *h2 = malloc(nh * 4);
                    float *pad = malloc(B * Tpad * DH * sizeof(float));
                    float *c1 = nc ? malloc(nc * 4) : NULL, *c2 = nc ? malloc(nc * 4) : NULL;
                    float *rowp[6];
                    for (size_t e = 0; e < B * Tpad * DH; e++)
                        pad[e] = NAN;
                    for (size_t i = 0; i < B; i++)
                        rowp[i] = pad + i * Tpad * DH;
                    rnn_result r1 = {.outputs = packed, .hidden = h1, .cell = c1};
                    rnn_result r2 = {.hidden = h2, .cell = c2, .out_rows = rowp};
                    char err[256];
                    ck_assert_msg(rnn_forward(rm.m, &b, &r1, err, sizeof err) == 0, "%s", err);
                    ck_assert_msg(rnn_forward(rm.m, &b, &r2, err, sizeof err) == 0, "%s", err);
                    size_t row = 0;
                    for (size_t i = 0; i < B; i++) {
                        const size_t T = (size_t)lengths[i];
                        ck_assert_msg(memcmp(rowp[i], packed + row * DH, T * DH * 4) == 0,
                                      "type %d bidir %d %s threads %d: sequence %zu's rows differ",
                                      t, bidir, kern_isa_name((kern_isa)isa), th, i);
                        for (size_t e = T * DH; e < Tpad * DH; e++)
                            ck_assert_msg(isnan(rowp[i][e]), "sequence %zu: slack written", i);
                        row += T;
                    }
                    ck_assert(memcmp(h1, h2, nh * 4) == 0);
                    if (nc)
                        ck_assert(memcmp(c1, c2, nc * 4) == 0);
                    free(packed), free(h1), free(h2), free(pad), free(c1), free(c2);
                }
            kern_isa_use(KERN_AVX512);
            rnn_set_threads(1);
            free(x);
            rand_model_free(&rm);
        }
}
END_TEST

/* Large enough that rnn_set_threads(2) splits each layer's units between two threads. */
START_TEST(test_forward_split_across_threads)
{
    const rnn_cell_type types[4] = {RNN_CELL_RNN, RNN_CELL_LSTM, RNN_CELL_GRU, RNN_CELL_RNN};
    int32_t lengths[40];
    for (int i = 0; i < 40; i++)
        lengths[i] = tu_under_valgrind() ? 2 + i % 4 : 3 + (i * 7) % 19;
    for (int t = 0; t < 4; t++) {
        rand_model rm;
        rand_model_make(&rm, types[t], 6, 144, 2, t == 1, t == 3 ? RNN_RELU : RNN_TANH);
        for (int isa = 0; isa < n_paths(); isa++) {
            kern_isa_use((kern_isa)isa);
            rnn_set_threads(2);
            double d2 = engine_vs_reference(rm.m, lengths, 40, 1);
            rnn_set_threads(1);
            double d1 = engine_vs_reference(rm.m, lengths, 40, 1);
            ck_assert_msg(d2 <= 1e-5 && d1 <= 1e-5, "type %d on %s: %g (2 threads), %g (1)", t,
                          kern_isa_name((kern_isa)isa), d2, d1);
        }
        kern_isa_use(KERN_AVX512);
        rand_model_free(&rm);
    }
    ck_assert_int_eq(rnn_get_threads(), 1);
}
END_TEST

static Suite *kernels_suite(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("products");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_packed_product_matches_naive);
    tcase_add_test(tc, test_packed_product_groups_and_ranges);
    tcase_add_test(tc, test_packed_product_on_row_pointers);
    tcase_add_test(tc, test_blas_product_matches_naive);
    suite_add_tcase(s, tc);
    tc = tcase_create("activations");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_activations_dense_sweep);
    tcase_add_test(tc, test_activations_special_values);
    tcase_add_test(tc, test_activations_tails);
    tcase_add_test(tc, test_relu_keeps_nan);
    tcase_add_test(tc, test_elementwise_identical_on_every_path);
    suite_add_tcase(s, tc);
    tc = tcase_create("forward");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_forward_on_every_path);
    tcase_add_test(tc, test_forward_split_across_threads);
    tcase_add_test(tc, test_forward_writes_out_rows_in_place);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    printf("kernels: this CPU runs up to %s\n", kern_isa_name(kern_isa_supported()));
    SRunner *sr = srunner_create(kernels_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
