/* generate.c - the generation loop (prompt pass, then one engine step per generated step for the
 * whole batch) and its sampler (SplitMix64, softmax in double after top_k).
 *
 * The output a step predicts from is the top layer's hidden state: for a unidirectional model it
 * is the top layer's output at the sequence's last step, and it exists for an empty prompt too
 * (its h0), so one rule serves prompts of every length. */
#include "rnnserve/generate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model_impl.h"
#include "rnnserve/embed.h"

rnn_gen_mode rnn_gen_mode_of(const rnn_model *m, char *err, size_t errlen)
{
    const rnn_info *in = rnn_model_info(m);
    if (in->num_directions != 1) {
        snprintf(err, errlen,
                 "model \"%s\" is bidirectional: its backward direction reads the future, so "
                 "it cannot predict the next step",
                 in->name);
        return RNN_GEN_NONE;
    }
    if (in->vocab_size > 0) {
        if (in->head_size != in->vocab_size || in->head_activation == RNN_HEAD_SIGMOID) {
            snprintf(err, errlen,
                     "model \"%s\" takes tokens (a vocabulary of %d) but its head is not a "
                     "softmax (or linear) head over that vocabulary (head width %d%s): nothing "
                     "to sample the next id from",
                     in->name, in->vocab_size, in->head_size,
                     in->head_activation == RNN_HEAD_SIGMOID ? ", sigmoid" : "");
            return RNN_GEN_NONE;
        }
        return RNN_GEN_TOKENS;
    }
    const int width = in->head_size > 0 ? in->head_size : in->hidden_size;
    if (width != in->input_size) {
        snprintf(err, errlen,
                 "model \"%s\" cannot forecast: its %s is %d wide and its input %d, so a "
                 "prediction cannot be fed back as the next input (and it has no embedding to "
                 "generate tokens)",
                 in->name, in->head_size > 0 ? "head" : "hidden state (it has no head)", width,
                 in->input_size);
        return RNN_GEN_NONE;
    }
    return RNN_GEN_FORECAST;
}

void rnn_gen_sizes(const rnn_model *m, size_t batch, size_t steps, size_t *n_tokens,
                   size_t *n_forecast, size_t *n_hidden, size_t *n_cell)
{
    const rnn_info *in = rnn_model_info(m);
    const size_t LH = (size_t)(in->num_layers * in->num_directions * in->hidden_size);
    *n_tokens = batch * steps;
    *n_forecast = batch * steps * (size_t)in->input_size;
    *n_hidden = batch * LH;
    *n_cell = in->type == RNN_CELL_LSTM ? batch * LH : 0;
}

int rnn_gen_check(const rnn_model *m, const rnn_batch *prompt, const int32_t *tokens,
                  const rnn_gen_params *p, char *err, size_t errlen)
{
    rnn_gen_mode mode = rnn_gen_mode_of(m, err, errlen);
    if (mode == RNN_GEN_NONE)
        return -1;
    if (mode == RNN_GEN_TOKENS ? !tokens : !prompt->x) {
        snprintf(err, errlen, "the prompt must be %s for this model",
                 mode == RNN_GEN_TOKENS ? "token ids" : "rows of floats");
        return -1;
    }
    if (p->steps < 1) {
        snprintf(err, errlen, "steps: expected at least 1");
        return -1;
    }
    if (!(p->temperature >= 0.0) || !isfinite(p->temperature)) {
        snprintf(err, errlen, "temperature: expected a finite number >= 0");
        return -1;
    }
    for (size_t b = 0; b < prompt->batch; b++) {
        if (prompt->lengths[b] < 0) {
            snprintf(err, errlen, "sequence %zu: negative length", b);
            return -1;
        }
        if (prompt->lengths[b] == 0 && !prompt->h0) {
            snprintf(err, errlen,
                     "sequence %zu: an empty prompt and no h0: nothing to predict the first "
                     "step from (send at least one step, or an h0 to continue from)",
                     b);
            return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The sampler */

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void rnn_gen_rng_init(rnn_gen_rng *g, uint64_t seed, size_t sequence)
{
    g->state = seed ^ mix((uint64_t)sequence + 1);
}

uint64_t rnn_gen_rng_next(rnn_gen_rng *g)
{
    g->state += 0x9E3779B97F4A7C15ULL;
    return mix(g->state);
}

double rnn_gen_rng_uniform(rnn_gen_rng *g)
{
    return (double)(rnn_gen_rng_next(g) >> 11) * 0x1.0p-53;
}

/* Whether (a, ia) comes before (b, ib) in the order top_k keeps: larger logit, then lower id. */
static int ahead(float a, size_t ia, float b, size_t ib)
{
    return a > b || (a == b && ia < ib);
}

int32_t rnn_gen_sample(const float *logits, size_t V, double temperature, size_t top_k,
                       rnn_gen_rng *g)
{
    size_t best = 0;
    for (size_t i = 0; i < V; i++) {
        if (!isfinite(logits[i]))
            return -1;
        if (logits[i] > logits[best])
            best = i;
    }
    if (temperature == 0.0 || V == 1)
        return (int32_t)best;
    /* The k-th entry of the order, found by k selection passes: k is small where it is used (a
     * few tens), and no scratch memory is needed. Kept: every entry not behind it. */
    float thr = logits[best];
    size_t thr_id = best;
    if (top_k > 0 && top_k < V) {
        for (size_t k = 1; k < top_k; k++) {
            size_t nx = V;
            for (size_t i = 0; i < V; i++)
                if (ahead(thr, thr_id, logits[i], i) &&
                    (nx == V || ahead(logits[i], i, logits[nx], nx)))
                    nx = i;
            thr = logits[nx];
            thr_id = nx;
        }
    } else {
        thr = -INFINITY;
        thr_id = V;
    }
    const double mx = logits[best];
    double total = 0.0;
    for (size_t i = 0; i < V; i++)
        if (!ahead(thr, thr_id, logits[i], i))
            total += exp(((double)logits[i] - mx) / temperature);
    const double u = rnn_gen_rng_uniform(g) * total;
    double run = 0.0;
    size_t last = best;
    for (size_t i = 0; i < V; i++) {
        if (ahead(thr, thr_id, logits[i], i))
            continue;
        run += exp(((double)logits[i] - mx) / temperature);
        last = i;
        if (run > u)
            return (int32_t)i;
    }
    return (int32_t)last; /* u rounded up to the total: the last kept id */
}

/* ---------------------------------------------------------------------------------------------
 * The loop */

/* The buffers of one generation, allocated at once. */
typedef struct {
    float *x;          /* the prompt's rows (token models: embedded here) */
    float *hid[2];     /* (B, L, H): the states before and after a step */
    float *cel[2];     /* LSTM only */
    float *top;        /* (B, H): each sequence's top-layer row */
    float *pred;       /* (B, W): logits (tokens) or the next inputs (forecast) */
    float *next;       /* (B, I): the next step's inputs */
    int32_t *ids;      /* (B) */
    int32_t *ones;     /* (B) lengths of 1 */
    rnn_gen_rng *rngs; /* (B) */
} gen_bufs;

static void bufs_free(gen_bufs *g)
{
    free(g->x);
    for (int i = 0; i < 2; i++) {
        free(g->hid[i]);
        free(g->cel[i]);
    }
    free(g->top);
    free(g->pred);
    free(g->next);
    free(g->ids);
    free(g->ones);
    free(g->rngs);
}

/* The predictions from each sequence's top-layer row in HID: a token model's logits (its head
 * without the softmax: sampling works on logits), else the head's output, or the row itself
 * without a head. Into g->pred (B, W). */
static void predict(const rnn_model *m, const float *hid, size_t B, gen_bufs *g, rnn_gen_mode mode)
{
    const rnn_info *in = &m->info;
    const size_t H = (size_t)in->hidden_size, L = (size_t)in->num_layers;
    for (size_t b = 0; b < B; b++)
        memcpy(g->top + b * H, hid + (b * L + L - 1) * H, H * sizeof(float));
    if (in->head_size == 0) {
        memcpy(g->pred, g->top, B * H * sizeof(float));
    } else if (mode == RNN_GEN_TOKENS) {
        const size_t O = (size_t)in->head_size;
        for (size_t b = 0; b < B; b++)
            memcpy(g->pred + b * O, m->head_b, O * sizeof(float));
        kern_gemm_xwt(B, O, H, g->top, H, m->head_w, H, 1.0f, g->pred, O);
    } else {
        rnn_head_forward(m, g->top, B, g->pred);
    }
}

int rnn_generate(const rnn_model *m, const rnn_batch *prompt, const int32_t *tokens,
                 const rnn_gen_params *p, rnn_gen_result *r, char *err, size_t errlen)
{
    if (rnn_gen_check(m, prompt, tokens, p, err, errlen) < 0)
        return -1;
    const rnn_info *in = rnn_model_info(m);
    const rnn_gen_mode mode = rnn_gen_mode_of(m, err, errlen);
    const size_t B = prompt->batch, I = (size_t)in->input_size, H = (size_t)in->hidden_size;
    const size_t LH = (size_t)in->num_layers * H, V = (size_t)in->vocab_size;
    const size_t W = mode == RNN_GEN_TOKENS ? V : I;
    const int lstm = in->type == RNN_CELL_LSTM;
    size_t steps = 0;
    for (size_t b = 0; b < B; b++)
        steps += (size_t)prompt->lengths[b];
    gen_bufs g = {0};
    int rc = -1, cur = 0;
    const size_t nb = B ? B : 1;
    g.hid[0] = malloc(nb * LH * sizeof(float));
    g.hid[1] = malloc(nb * LH * sizeof(float));
    g.top = malloc(nb * H * sizeof(float));
    g.pred = malloc(nb * (W > H ? W : H) * sizeof(float));
    g.next = malloc(nb * I * sizeof(float));
    g.ids = malloc(nb * sizeof(int32_t));
    g.ones = malloc(nb * sizeof(int32_t));
    g.rngs = malloc(nb * sizeof(rnn_gen_rng));
    if (lstm) {
        g.cel[0] = malloc(nb * LH * sizeof(float));
        g.cel[1] = malloc(nb * LH * sizeof(float));
    }
    if (tokens)
        g.x = malloc((steps ? steps : 1) * I * sizeof(float));
    if (!g.hid[0] || !g.hid[1] || !g.top || !g.pred || !g.next || !g.ids || !g.ones || !g.rngs ||
        (lstm && (!g.cel[0] || !g.cel[1])) || (tokens && !g.x)) {
        snprintf(err, errlen, "out of memory for a generation of %zu sequences", B);
        goto fail;
    }
    for (size_t b = 0; b < B; b++) {
        g.ones[b] = 1;
        rnn_gen_rng_init(&g.rngs[b], p->seed, b);
    }
    if (tokens && rnn_embed_rows(m, tokens, steps, g.x, err, errlen) < 0)
        goto fail;

    /* The prompt, ragged: its final states are where generation starts. */
    rnn_batch pb = *prompt;
    if (tokens)
        pb.x = g.x;
    pb.stop = p->stop;
    pb.stop_ctx = p->stop_ctx;
    rnn_result pr = {.hidden = g.hid[0], .cell = g.cel[0]};
    if ((rc = rnn_forward(m, &pb, &pr, err, errlen)) != 0)
        goto fail;

    for (size_t s = 0; s < p->steps; s++) {
        predict(m, g.hid[cur], B, &g, mode);
        if (mode == RNN_GEN_TOKENS) {
            for (size_t b = 0; b < B; b++) {
                int32_t id =
                    rnn_gen_sample(g.pred + b * V, V, p->temperature, p->top_k, &g.rngs[b]);
                if (id < 0) {
                    snprintf(err, errlen,
                             "step %zu, sequence %zu: the head's logits are not finite (the "
                             "model's state overflowed)",
                             s, b);
                    rc = RNN_GEN_NOT_FINITE;
                    goto fail;
                }
                g.ids[b] = id;
                if (r->tokens)
                    r->tokens[b * p->steps + s] = id;
            }
            if ((rc = rnn_embed_rows(m, g.ids, B, g.next, err, errlen)) != 0)
                goto fail;
        } else {
            memcpy(g.next, g.pred, B * I * sizeof(float));
            for (size_t b = 0; r->forecast && b < B; b++)
                memcpy(r->forecast + (b * p->steps + s) * I, g.next + b * I, I * sizeof(float));
        }
        if (p->on_step && p->on_step(p->step_ctx, s, mode == RNN_GEN_TOKENS ? g.ids : NULL,
                                     mode == RNN_GEN_TOKENS ? NULL : g.next, B)) {
            rc = RNN_STOPPED;
            goto fail;
        }
        if (p->stop && p->stop(p->stop_ctx)) {
            rc = RNN_STOPPED;
            goto fail;
        }
        /* Fed back: one engine step for the whole batch, from the last states. */
        rnn_batch sb = {.batch = B,
                        .lengths = g.ones,
                        .x = g.next,
                        .h0 = g.hid[cur],
                        .c0 = g.cel[cur],
                        .stop = p->stop,
                        .stop_ctx = p->stop_ctx};
        rnn_result sr = {.hidden = g.hid[!cur], .cell = g.cel[!cur]};
        if ((rc = rnn_forward(m, &sb, &sr, err, errlen)) != 0)
            goto fail;
        cur = !cur;
    }
    if (r->hidden)
        memcpy(r->hidden, g.hid[cur], B * LH * sizeof(float));
    if (r->cell && lstm)
        memcpy(r->cell, g.cel[cur], B * LH * sizeof(float));
    rc = 0;

fail:
    if (rc == RNN_STOPPED)
        snprintf(err, errlen, "stopped");
    bufs_free(&g);
    return rc;
}
