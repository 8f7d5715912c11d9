/* generate.h - generation and forecasting: a model's own predictions fed back as its next inputs,
 * many engine steps in one call, with a sampler whose draws are the same on every machine.
 *
 * Model layer: no JSON, no HTTP. The prompt is a ragged batch as rnn_forward takes it (h0/c0
 * included, so a session can continue from its state); the states after the last generated step
 * come back in the result, so that the next call (or the session) continues from them. */
#ifndef RNNSERVE_GENERATE_H
#define RNNSERVE_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "rnnserve/engine.h"
#include "rnnserve/model.h"

typedef enum {
    RNN_GEN_NONE,     /* the model cannot generate */
    RNN_GEN_TOKENS,   /* a token model with a head over its vocabulary: each step samples an id */
    RNN_GEN_FORECAST, /* the head (or the top layer, without a head) is as wide as the input:
                         each step's prediction is the next input */
} rnn_gen_mode;

/* What MODEL generates. RNN_GEN_NONE with a sentence saying why in err[errlen] (bidirectional;
 * a token model whose head is not over its vocabulary or is a sigmoid; widths that differ). */
rnn_gen_mode rnn_gen_mode_of(const rnn_model *m, char *err, size_t errlen);

typedef struct {
    size_t steps;       /* ids (or rows) to generate per sequence, >= 1 */
    double temperature; /* tokens: >= 0; 0 is argmax (ties to the lowest id) */
    size_t top_k;       /* tokens: sample among the K largest logits only; 0: all of them */
    uint64_t seed;      /* tokens: the sampler's seed (see rnn_gen_rng_init) */
    /* Asked between steps and polled by the engine between time steps when not NULL: nonzero
     * stops the loop, which returns RNN_STOPPED (the result is then partial). */
    int (*stop)(void *ctx);
    void *stop_ctx;
    /* Called after each generated step STEP (0-based) when not NULL, with that step's ids (B)
     * or rows (B, input_size), borrowed for the call. Nonzero stops as STOP does. */
    int (*on_step)(void *ctx, size_t step, const int32_t *ids, const float *rows, size_t batch);
    void *step_ctx;
} rnn_gen_params;

/* Caller-allocated, sized by rnn_gen_sizes; any pointer may be NULL when not wanted.
 *   tokens:   (B, steps)              RNN_GEN_TOKENS: sequence b's ids, step after step
 *   forecast: (B, steps, input_size)  RNN_GEN_FORECAST: sequence b's rows
 *   hidden:   (B, L, H)               the states after the last generated id (row) was fed back
 *   cell:     (B, L, H)               LSTM only */
typedef struct {
    int32_t *tokens;
    float *forecast;
    float *hidden;
    float *cell;
} rnn_gen_result;

/* Element counts of each part of rnn_gen_result for B sequences and STEPS steps on MODEL. */
void rnn_gen_sizes(const rnn_model *m, size_t batch, size_t steps, size_t *n_tokens,
                   size_t *n_forecast, size_t *n_hidden, size_t *n_cell);

/* Checks a generation before it is run: the model generates (rnn_gen_mode_of), the prompt is
 * given as the model takes it (TOKENS, (sum of lengths) ids already checked against the
 * vocabulary, for a token model; PROMPT->x otherwise), steps >= 1, temperature >= 0 and finite,
 * and every empty prompt has an h0 to predict from (its top layer's row is then the output the
 * first id is predicted from). 0, or -1 with a sentence in err[errlen] (a client's mistake). */
int rnn_gen_check(const rnn_model *m, const rnn_batch *prompt, const int32_t *tokens,
                  const rnn_gen_params *p, char *err, size_t errlen);

/* rnn_generate's return when a token model's logits are not finite (the model's state
 * overflowed): the model's values, not the request's nor the server's. */
#define RNN_GEN_NOT_FINITE (-3)

/* Runs it: one engine pass over the prompt (ragged, from its h0/c0), then per generated step
 * one engine step for the whole batch (B sequences of length 1, from the last states). The
 * first id (row) is the one predicted after the prompt's last step. Returns 0; RNN_STOPPED when
 * stop or on_step said so; RNN_GEN_NOT_FINITE with err[errlen] when a token model's logits are
 * not finite; -1 with err[errlen] when rnn_gen_check fails or memory cannot be had. Thread-safe
 * (the model is only read). */
int rnn_generate(const rnn_model *m, const rnn_batch *prompt, const int32_t *tokens,
                 const rnn_gen_params *p, rnn_gen_result *r, char *err, size_t errlen);

/* ---- The sampler, open for tests and for clients that want to reproduce it.
 *
 * SplitMix64 (Steele, Lea, Flood 2014): state += 0x9E3779B97F4A7C15, then the output is the
 * state mixed by z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9; z = (z ^ z >> 27) * 0x94D049BB133111EB;
 * z ^ z >> 31. Sequence b of a request starts at state seed ^ mix(b + 1), mix being that same
 * output function, so every sequence has its own stream and a sequence's draws do not depend on
 * the batch it is in. A uniform double in [0, 1) is the output's top 53 bits times 2^-53. */
typedef struct {
    uint64_t state;
} rnn_gen_rng;

void rnn_gen_rng_init(rnn_gen_rng *g, uint64_t seed, size_t sequence);
uint64_t rnn_gen_rng_next(rnn_gen_rng *g);
double rnn_gen_rng_uniform(rnn_gen_rng *g);

/* Picks an id from LOGITS[0..V): temperature 0 is the argmax (ties to the lowest id; no draw);
 * otherwise the TOP_K largest logits are kept (0: all; ties to the lower id), weighted in
 * double by exp((logit - max) / temperature), and one uniform draw u picks, in ascending id
 * order, the first id whose running weight exceeds u times the total. -1 when a logit is not
 * finite (NaN or infinite). */
int32_t rnn_gen_sample(const float *logits, size_t V, double temperature, size_t top_k,
                       rnn_gen_rng *g);

#endif
