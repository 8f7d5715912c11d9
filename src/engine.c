/* engine.c - the forward pass over a ragged batch, as PyTorch's packed sequences compute it.
 *
 * Sequences are ordered by length (longest first) so that at step t the still-active ones are a
 * prefix of the state matrix: one GEMM for the recurrent product of exactly the active rows, and
 * a short sequence never pays for a long one. The input projection of all steps of a layer is
 * one big GEMM up front. A naive per-sequence reference sits at the end for the tests.
 *
 * Letters: B sequences, N = sum of lengths, I_l layer input width, H hidden, G gates, L layers,
 * D directions. */
#include "rnnserve/engine.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model_impl.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* N = sum of lengths, with a check that every length is sane. */
static int batch_steps(const rnn_batch *b, size_t *N, size_t *maxT, char *err, size_t errlen)
{
    size_t n = 0, mx = 0;
    for (size_t i = 0; i < b->batch; i++) {
        if (b->lengths[i] < 0)
            return fail(err, errlen, "sequence %zu: negative length %d", i, (int)b->lengths[i]);
        n += (size_t)b->lengths[i];
        if ((size_t)b->lengths[i] > mx)
            mx = (size_t)b->lengths[i];
    }
    *N = n;
    *maxT = mx;
    return 0;
}

void rnn_result_sizes(const rnn_model *m, const rnn_batch *b, size_t *n_outputs, size_t *n_hidden,
                      size_t *n_cell)
{
    const rnn_info *in = &m->info;
    size_t N = 0;
    for (size_t i = 0; i < b->batch; i++)
        N += b->lengths[i] > 0 ? (size_t)b->lengths[i] : 0;
    size_t state = b->batch * (size_t)(in->num_layers * in->num_directions) * in->hidden_size;
    if (n_outputs)
        *n_outputs = N * (size_t)(in->num_directions * in->hidden_size);
    if (n_hidden)
        *n_hidden = state;
    if (n_cell)
        *n_cell = in->type == CFG_LSTM ? state : 0;
}

/* Sort key for the packed order: longer first, ties by index so the order is deterministic. */
typedef struct {
    int32_t len;
    size_t idx;
} len_idx;

static int by_len_desc(const void *a, const void *b)
{
    const len_idx *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

/* Multiplies with an overflow check; returns 0 on overflow. */
static int mul_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

/* One cell update for the active row j.
 *   p:  (G*H) input projection of this step, biases bx already added
 *   r:  (G*H) recurrent product h_{t-1} . W_hh^T (no bias)
 *   h:  (H) state, updated in place; c: (H) LSTM cell state, updated in place */
static void cell_step(const rnn_info *in, const rnn_dir *w, const float *p, const float *r,
                      float *h, float *c)
{
    const size_t H = (size_t)in->hidden_size;
    switch (in->type) {
    case CFG_RNN:
        if (in->nonlinearity == CFG_RELU) {
            for (size_t u = 0; u < H; u++) {
                float a = p[u] + r[u];
                h[u] = isnan(a) ? a : (a > 0.0f ? a : 0.0f);
            }
        } else {
            for (size_t u = 0; u < H; u++)
                h[u] = tanhf(p[u] + r[u]);
        }
        break;
    case CFG_LSTM:
        /* gates i, f, g, o */
        for (size_t u = 0; u < H; u++) {
            float ig = kern_sigmoidf(p[u] + r[u]);
            float fg = kern_sigmoidf(p[H + u] + r[H + u]);
            float gg = tanhf(p[2 * H + u] + r[2 * H + u]);
            float og = kern_sigmoidf(p[3 * H + u] + r[3 * H + u]);
            c[u] = fg * c[u] + ig * gg;
            h[u] = og * tanhf(c[u]);
        }
        break;
    case CFG_GRU:
        /* gates r, z, n; b_hn stays inside r * (W_hn h + b_hn) */
        for (size_t u = 0; u < H; u++) {
            float rg = kern_sigmoidf(p[u] + r[u]);
            float zg = kern_sigmoidf(p[H + u] + r[H + u]);
            float ng = tanhf(p[2 * H + u] + rg * (r[2 * H + u] + w->bhn[u]));
            h[u] = (1.0f - zg) * ng + zg * h[u];
        }
        break;
    }
}

int rnn_forward(const rnn_model *m, const rnn_batch *b, rnn_result *res, char *err, size_t errlen)
{
    const rnn_info *in = &m->info;
    const size_t B = b->batch, H = (size_t)in->hidden_size, G = (size_t)in->gates;
    const size_t L = (size_t)in->num_layers, D = (size_t)in->num_directions;
    const size_t LD = L * D, GH = G * H, DH = D * H;
    const int lstm = in->type == CFG_LSTM;
    size_t N = 0, maxT = 0, nP, nY, nR;
    int rc = -1;
    len_idx *order = NULL;
    size_t *off = NULL;
    float *P = NULL, *Y[2] = {NULL, NULL}, *R = NULL, *h = NULL, *c = NULL;

    if (batch_steps(b, &N, &maxT, err, errlen) < 0)
        return -1;
    if (!mul_ok(N, GH, &nP) || !mul_ok(N, DH, &nY) || !mul_ok(B, GH, &nR)) {
        fail(err, errlen, "batch too large: %zu steps x %zu gate units", N, GH);
        goto fail;
    }
    order = malloc((B ? B : 1) * sizeof *order);
    off = malloc((B ? B : 1) * sizeof *off);
    P = malloc((nP ? nP : 1) * sizeof(float));
    Y[0] = malloc((nY ? nY : 1) * sizeof(float));
    Y[1] = L > 1 ? malloc((nY ? nY : 1) * sizeof(float)) : NULL;
    R = malloc((nR ? nR : 1) * sizeof(float));
    h = malloc((B ? B : 1) * H * sizeof(float));
    c = lstm ? malloc((B ? B : 1) * H * sizeof(float)) : NULL;
    if (!order || !off || !P || !Y[0] || (L > 1 && !Y[1]) || !R || !h || (lstm && !c)) {
        fail(err, errlen, "out of memory for a batch of %zu steps (%zu MB of scratch)", N,
             ((nP + 2 * nY + nR) * sizeof(float)) >> 20);
        goto fail;
    }
    for (size_t i = 0, o = 0; i < B; i++) {
        off[i] = o;
        o += (size_t)b->lengths[i];
        order[i].len = b->lengths[i];
        order[i].idx = i;
    }
    qsort(order, B, sizeof *order, by_len_desc);

    const float *X = b->x; /* layer input, (N, I_l) */
    for (size_t l = 0; l < L; l++) {
        /* The top layer writes straight into the caller's outputs when they are wanted. */
        float *out = (l == L - 1 && res->outputs) ? res->outputs : Y[l % 2];
        for (size_t d = 0; d < D; d++) {
            const rnn_dir *w = &m->dirs[l * D + d];
            const size_t row_state = l * D + d;

            /* P (N, G*H) = X . W_ih^T + bx, for every step of every sequence at once. */
            for (size_t n = 0; n < N; n++)
                memcpy(P + n * GH, w->bx, GH * sizeof(float));
            kern_gemm_xwt(N, GH, w->in, X, w->in, w->w_ih, w->in, 1.0f, P, GH);

            /* State in packed order: row j belongs to sequence order[j].idx. */
            for (size_t j = 0; j < B; j++) {
                size_t s = order[j].idx;
                if (b->h0)
                    memcpy(h + j * H, b->h0 + (s * LD + row_state) * H, H * sizeof(float));
                else
                    memset(h + j * H, 0, H * sizeof(float));
                if (lstm) {
                    if (b->c0)
                        memcpy(c + j * H, b->c0 + (s * LD + row_state) * H, H * sizeof(float));
                    else
                        memset(c + j * H, 0, H * sizeof(float));
                }
            }

            size_t k = B; /* active rows: order[0..k) have length > t */
            for (size_t t = 0; t < maxT; t++) {
                while (k > 0 && (size_t)order[k - 1].len <= t)
                    k--;
                /* R (k, G*H) = h[0..k) . W_hh^T */
                kern_gemm_xwt(k, GH, H, h, H, w->w_hh, H, 0.0f, R, GH);
                for (size_t j = 0; j < k; j++) {
                    size_t s = order[j].idx, T = (size_t)order[j].len;
                    /* the backward direction walks each sequence's own steps from its end */
                    size_t row = off[s] + (d == 0 ? t : T - 1 - t);
                    cell_step(in, w, P + row * GH, R + j * GH, h + j * H, lstm ? c + j * H : NULL);
                    memcpy(out + row * DH + d * H, h + j * H, H * sizeof(float));
                }
            }

            /* A sequence's state stopped changing after its own last step: that is h_n. */
            for (size_t j = 0; j < B; j++) {
                size_t s = order[j].idx;
                if (res->hidden)
                    memcpy(res->hidden + (s * LD + row_state) * H, h + j * H, H * sizeof(float));
                if (lstm && res->cell)
                    memcpy(res->cell + (s * LD + row_state) * H, c + j * H, H * sizeof(float));
            }
        }
        X = out;
    }
    rc = 0;

fail:
    free(order);
    free(off);
    free(P);
    free(Y[0]);
    free(Y[1]);
    free(R);
    free(h);
    free(c);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Reference: one sequence at a time, naive loops over PyTorch's raw tensors (b_ih and b_hh kept
 * apart, exactly the documented equations), double accumulation. */

static float act_ref(const rnn_info *in, double a)
{
    if (in->nonlinearity == CFG_RELU)
        return a > 0 ? (float)a : 0.0f;
    return (float)tanh(a);
}

static float sig_ref(double a)
{
    return (float)(1.0 / (1.0 + exp(-a)));
}

int rnn_forward_reference(const rnn_model *m, const rnn_batch *b, rnn_result *res, char *err,
                          size_t errlen)
{
    const rnn_info *in = &m->info;
    const size_t H = (size_t)in->hidden_size, G = (size_t)in->gates;
    const size_t L = (size_t)in->num_layers, D = (size_t)in->num_directions;
    const size_t LD = L * D, GH = G * H, DH = D * H;
    size_t N = 0, maxT = 0, off = 0;
    int rc = -1;
    float *cur = NULL, *nxt = NULL, *h = NULL, *c = NULL;
    double *gx = NULL, *gh = NULL;

    if (batch_steps(b, &N, &maxT, err, errlen) < 0)
        return -1;
    size_t width = DH > (size_t)in->input_size ? DH : (size_t)in->input_size;
    cur = malloc((maxT ? maxT : 1) * width * sizeof(float));
    nxt = malloc((maxT ? maxT : 1) * width * sizeof(float));
    h = malloc(H * sizeof(float));
    c = malloc(H * sizeof(float));
    gx = malloc(GH * sizeof(double));
    gh = malloc(GH * sizeof(double));
    if (!cur || !nxt || !h || !c || !gx || !gh) {
        fail(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t s = 0; s < b->batch; s++) {
        const size_t T = (size_t)b->lengths[s];
        size_t I = (size_t)in->input_size;
        memcpy(cur, b->x + off * I, T * I * sizeof(float));
        for (size_t l = 0; l < L; l++) {
            for (size_t d = 0; d < D; d++) {
                const rnn_dir *w = &m->dirs[l * D + d];
                const size_t srow = (s * LD + l * D + d) * H;
                for (size_t u = 0; u < H; u++) {
                    h[u] = b->h0 ? b->h0[srow + u] : 0.0f;
                    c[u] = b->c0 ? b->c0[srow + u] : 0.0f;
                }
                for (size_t step = 0; step < T; step++) {
                    size_t t = d == 0 ? step : T - 1 - step;
                    for (size_t g = 0; g < GH; g++) {
                        double ax = w->b_ih[g], ah = w->b_hh[g];
                        for (size_t k = 0; k < I; k++)
                            ax += (double)w->w_ih[g * I + k] * cur[t * I + k];
                        for (size_t k = 0; k < H; k++)
                            ah += (double)w->w_hh[g * H + k] * h[k];
                        gx[g] = ax;
                        gh[g] = ah;
                    }
                    for (size_t u = 0; u < H; u++) {
                        if (in->type == CFG_RNN) {
                            h[u] = act_ref(in, gx[u] + gh[u]);
                        } else if (in->type == CFG_LSTM) {
                            float ig = sig_ref(gx[u] + gh[u]);
                            float fg = sig_ref(gx[H + u] + gh[H + u]);
                            float gg = (float)tanh(gx[2 * H + u] + gh[2 * H + u]);
                            float og = sig_ref(gx[3 * H + u] + gh[3 * H + u]);
                            c[u] = fg * c[u] + ig * gg;
                            h[u] = og * (float)tanh(c[u]);
                        }
                    }
                    if (in->type == CFG_GRU) {
                        /* h is read by every unit's n gate, so update after all are computed */
                        for (size_t u = 0; u < H; u++) {
                            float rg = sig_ref(gx[u] + gh[u]);
                            float zg = sig_ref(gx[H + u] + gh[H + u]);
                            float ng = (float)tanh(gx[2 * H + u] + rg * gh[2 * H + u]);
                            gx[u] = (1.0f - zg) * ng + zg * h[u];
                        }
                        for (size_t u = 0; u < H; u++)
                            h[u] = (float)gx[u];
                    }
                    memcpy(nxt + t * DH + d * H, h, H * sizeof(float));
                }
                if (res->hidden)
                    memcpy(res->hidden + srow, h, H * sizeof(float));
                if (res->cell && in->type == CFG_LSTM)
                    memcpy(res->cell + srow, c, H * sizeof(float));
            }
            float *tmp = cur;
            cur = nxt;
            nxt = tmp;
            I = DH;
        }
        if (res->outputs)
            memcpy(res->outputs + off * DH, cur, T * DH * sizeof(float));
        off += T;
    }
    rc = 0;
fail:
    free(cur);
    free(nxt);
    free(h);
    free(c);
    free(gx);
    free(gh);
    return rc;
}
