/* test_generate.c - generation and forecasting (issue 16, items 3 and 4): PyTorch's own greedy
 * loop on examples/char-lstm and its forecast rollout on a tiny LSTM (tests/fixtures/generate/,
 * made by tests/fixtures/gen_generate.py), the sampler's reproducibility and rules, the states
 * handed back, and the HTTP route with its streamed variant. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnserve/config.h"
#include "rnnserve/embed.h"
#include "rnnserve/engine.h"
#include "rnnserve/generate.h"
#include "testutil.h"

#define CHAR_LSTM "examples/char-lstm/config.json"
#define FORECAST "tests/fixtures/generate/forecast/config.json"

typedef struct {
    cfg_config *cfg;
    rnn_model *m;
} loaded;

static loaded load(const char *config)
{
    loaded l;
    char err[1024];
    ck_assert_msg(cfg_load_file(config, &l.cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(rnn_model_load(&l.cfg->models[0], &l.m, err, sizeof err) == 0, "%s", err);
    return l;
}

static void unload(loaded *l)
{
    rnn_model_free(l->m);
    cfg_free(l->cfg);
}

static json_t *fixture(const char *name)
{
    json_error_t je;
    json_t *j = json_load_file(tu_fixture(name), 0, &je);
    ck_assert_msg(j != NULL, "%s: %s", name, je.text);
    return j;
}

/* A ragged token prompt from a JSON array of id arrays: lengths and ids malloc'ed. */
static rnn_batch token_prompt(json_t *prompts, int32_t **lengths, int32_t **ids)
{
    size_t B = json_array_size(prompts), n = 0;
    *lengths = malloc(B * sizeof **lengths);
    for (size_t b = 0; b < B; b++)
        n += json_array_size(json_array_get(prompts, b));
    *ids = malloc((n ? n : 1) * sizeof **ids);
    n = 0;
    for (size_t b = 0; b < B; b++) {
        json_t *p = json_array_get(prompts, b);
        (*lengths)[b] = (int32_t)json_array_size(p);
        for (size_t t = 0; t < json_array_size(p); t++)
            (*ids)[n++] = (int32_t)json_integer_value(json_array_get(p, t));
    }
    return (rnn_batch){.batch = B, .lengths = *lengths};
}

typedef struct {
    int32_t *tokens;
    float *forecast, *hidden, *cell;
} owned_result;

static rnn_gen_result alloc_result(const rnn_model *m, size_t B, size_t steps, owned_result *o)
{
    size_t nt, nf, nh, nc;
    rnn_gen_sizes(m, B, steps, &nt, &nf, &nh, &nc);
    o->tokens = calloc(nt + 1, sizeof(int32_t));
    o->forecast = calloc(nf + 1, sizeof(float));
    o->hidden = calloc(nh + 1, sizeof(float));
    o->cell = calloc(nc + 1, sizeof(float));
    return (rnn_gen_result){o->tokens, o->forecast, o->hidden, o->cell};
}

static void free_result(owned_result *o)
{
    free(o->tokens);
    free(o->forecast);
    free(o->hidden);
    free(o->cell);
}

/* The target: PyTorch's greedy loop, 200 steps, the same ids except where its top-2
 * probability margin is under 1e-5 (after a legitimate flip the continuations part ways, so the
 * comparison of a sequence stops there). */
START_TEST(greedy_matches_pytorch)
{
    loaded l = load(CHAR_LSTM);
    json_t *fx = fixture("generate/greedy.json");
    int32_t *lengths, *ids;
    rnn_batch pb = token_prompt(json_object_get(fx, "prompts"), &lengths, &ids);
    const size_t steps = (size_t)json_integer_value(json_object_get(fx, "steps"));
    owned_result o;
    rnn_gen_result r = alloc_result(l.m, pb.batch, steps, &o);
    rnn_gen_params p = {.steps = steps, .temperature = 0.0};
    char err[512];
    ck_assert_msg(rnn_generate(l.m, &pb, ids, &p, &r, err, sizeof err) == 0, "%s", err);
    size_t compared = 0;
    for (size_t b = 0; b < pb.batch; b++) {
        json_t *want = json_array_get(json_object_get(fx, "tokens"), b);
        json_t *margin = json_array_get(json_object_get(fx, "margins"), b);
        for (size_t s = 0; s < steps; s++) {
            int32_t w = (int32_t)json_integer_value(json_array_get(want, s));
            double mg = json_number_value(json_array_get(margin, s));
            if (o.tokens[b * steps + s] != w) {
                ck_assert_msg(mg < 1e-5, "sequence %zu step %zu: id %d, PyTorch %d (margin %g)", b,
                              s, o.tokens[b * steps + s], w, mg);
                break;
            }
            compared++;
        }
    }
    ck_assert_msg(compared == pb.batch * steps, "compared %zu ids of %zu", compared,
                  pb.batch * steps);
    free_result(&o);
    free(lengths);
    free(ids);
    json_decref(fx);
    unload(&l);
}
END_TEST

static void json_rows(json_t *a, float *dst, size_t width)
{
    for (size_t i = 0; i < json_array_size(a); i++)
        for (size_t k = 0; k < width; k++)
            dst[i * width + k] = (float)json_number_value(json_array_get(json_array_get(a, i), k));
}

/* The forecast rollout: 100 steps within 1e-4 of PyTorch's loop, and the states after the last
 * row was fed back equal PyTorch's h_n/c_n. */
START_TEST(forecast_matches_pytorch)
{
    loaded l = load(FORECAST);
    json_t *fx = fixture("generate/forecast.json");
    json_t *prompt = json_object_get(fx, "prompt");
    const size_t T = json_array_size(prompt), I = 2, steps = 100;
    ck_assert_int_eq(rnn_gen_mode_of(l.m, NULL, 0), RNN_GEN_FORECAST);
    float *x = malloc(T * I * sizeof(float)), *want = malloc(steps * I * sizeof(float));
    float wh[6], wc[6];
    json_rows(prompt, x, I);
    json_rows(json_object_get(fx, "forecast"), want, I);
    json_rows(json_object_get(fx, "hidden"), wh, 6);
    json_rows(json_object_get(fx, "cell"), wc, 6);
    int32_t len = (int32_t)T;
    rnn_batch pb = {.batch = 1, .lengths = &len, .x = x};
    owned_result o;
    rnn_gen_result r = alloc_result(l.m, 1, steps, &o);
    rnn_gen_params p = {.steps = steps};
    char err[512];
    ck_assert_msg(rnn_generate(l.m, &pb, NULL, &p, &r, err, sizeof err) == 0, "%s", err);
    double d = tu_max_abs_diff(o.forecast, want, steps * I);
    ck_assert_msg(d <= 1e-4, "forecast differs from PyTorch by %g", d);
    ck_assert_msg(tu_max_abs_diff(o.hidden, wh, 6) <= 1e-4, "hidden");
    ck_assert_msg(tu_max_abs_diff(o.cell, wc, 6) <= 1e-4, "cell");
    free_result(&o);
    free(x);
    free(want);
    json_decref(fx);
    unload(&l);
}
END_TEST

/* Runs the char model on two prompts with P; the ids into a new array (B * steps). */
static int32_t *run_tokens(const rnn_model *m, const rnn_gen_params *p, float *hidden)
{
    static const int32_t lengths[2] = {3, 1}, ids[4] = {35, 58, 52, 69};
    rnn_batch pb = {.batch = 2, .lengths = lengths};
    owned_result o;
    rnn_gen_result r = alloc_result(m, 2, p->steps, &o);
    char err[512];
    ck_assert_msg(rnn_generate(m, &pb, ids, p, &r, err, sizeof err) == 0, "%s", err);
    if (hidden) {
        size_t nt, nf, nh, nc;
        rnn_gen_sizes(m, 2, p->steps, &nt, &nf, &nh, &nc);
        memcpy(hidden, o.hidden, nh * sizeof(float));
    }
    int32_t *t = o.tokens;
    o.tokens = NULL;
    free_result(&o);
    return t;
}

/* Sampling with a seed: the same ids on every run; another seed gives another stream; ids stay
 * in the vocabulary. Across processes: the PRNG is pure arithmetic on the seed (no clock, no
 * address), and its first outputs are pinned to SplitMix64's reference values below. */
START_TEST(sampling_reproducible)
{
    loaded l = load(CHAR_LSTM);
    rnn_gen_params p = {.steps = 64, .temperature = 1.0, .top_k = 10, .seed = 42};
    int32_t *a = run_tokens(l.m, &p, NULL), *b = run_tokens(l.m, &p, NULL);
    ck_assert_mem_eq(a, b, 2 * 64 * sizeof(int32_t));
    p.seed = 43;
    int32_t *c = run_tokens(l.m, &p, NULL);
    ck_assert_msg(memcmp(a, c, 2 * 64 * sizeof(int32_t)) != 0, "seed 43 gave seed 42's ids");
    for (size_t i = 0; i < 2 * 64; i++)
        ck_assert_msg(a[i] >= 0 && a[i] < 76, "id %d", a[i]);
    free(a);
    free(b);
    free(c);
    /* SplitMix64 seeded with 1234567 (state as is) gives these first outputs (the published
     * reference implementation's). */
    rnn_gen_rng g = {1234567};
    ck_assert_uint_eq(rnn_gen_rng_next(&g), 6457827717110365317ULL);
    ck_assert_uint_eq(rnn_gen_rng_next(&g), 3203168211198807973ULL);
    unload(&l);
}
END_TEST

/* The sampler's rules on hand-made logits. */
START_TEST(sampler_rules)
{
    rnn_gen_rng g;
    rnn_gen_rng_init(&g, 7, 0);
    const float tie[4] = {1.0f, 3.0f, 3.0f, 2.0f};
    ck_assert_int_eq(rnn_gen_sample(tie, 4, 0.0, 0, &g), 1); /* argmax: ties to the lowest id */
    /* top_k 1 is the argmax whatever the temperature; top_k 2 keeps ids 1 and 2 only */
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(rnn_gen_sample(tie, 4, 5.0, 1, &g), 1);
        int32_t id = rnn_gen_sample(tie, 4, 5.0, 2, &g);
        ck_assert_msg(id == 1 || id == 2, "top_k 2 gave id %d", id);
    }
    /* a near-zero temperature is the argmax, a huge one nearly uniform: all ids appear */
    int seen[4] = {0};
    const float l4[4] = {0.0f, 1.0f, 0.5f, 0.2f};
    for (int i = 0; i < 400; i++) {
        ck_assert_int_eq(rnn_gen_sample(l4, 4, 1e-3, 0, &g), 1);
        seen[rnn_gen_sample(l4, 4, 1e6, 0, &g)]++;
    }
    for (int i = 0; i < 4; i++)
        ck_assert_msg(seen[i] > 50, "id %d drawn %d times in 400 at a huge temperature", i,
                      seen[i]);
    const float bad[3] = {0.0f, NAN, 1.0f};
    ck_assert_int_eq(rnn_gen_sample(bad, 3, 1.0, 0, &g), -1);
    /* a sequence's stream depends on its index, not on the batch */
    rnn_gen_rng a, b;
    rnn_gen_rng_init(&a, 9, 0);
    rnn_gen_rng_init(&b, 9, 1);
    ck_assert_msg(rnn_gen_rng_next(&a) != rnn_gen_rng_next(&b), "sequences share a stream");
    double u = rnn_gen_rng_uniform(&a);
    ck_assert_msg(u >= 0.0 && u < 1.0, "uniform %g", u);
}
END_TEST

/* The states handed back continue the generation: 10 steps then 10 more from the returned
 * hidden/cell (prompt: the last id) are the 20 steps of one call. */
START_TEST(states_continue)
{
    loaded l = load(CHAR_LSTM);
    const int32_t ids[3] = {35, 58, 52};
    int32_t len = 3;
    rnn_batch pb = {.batch = 1, .lengths = &len};
    char err[512];
    owned_result all, first, second;
    rnn_gen_params p = {.steps = 20};
    rnn_gen_result r = alloc_result(l.m, 1, 20, &all);
    ck_assert_msg(rnn_generate(l.m, &pb, ids, &p, &r, err, sizeof err) == 0, "%s", err);
    p.steps = 10;
    r = alloc_result(l.m, 1, 10, &first);
    ck_assert_msg(rnn_generate(l.m, &pb, ids, &p, &r, err, sizeof err) == 0, "%s", err);
    ck_assert_mem_eq(first.tokens, all.tokens, 10 * sizeof(int32_t));
    /* The returned state already has the 10th id fed back: continue from it with an empty
     * prompt, which predicts from h0's top layer. */
    int32_t zero = 0;
    rnn_batch cont = {.batch = 1, .lengths = &zero, .h0 = first.hidden, .c0 = first.cell};
    r = alloc_result(l.m, 1, 10, &second);
    const int32_t none = 0;
    ck_assert_msg(rnn_generate(l.m, &cont, &none, &p, &r, err, sizeof err) == 0, "%s", err);
    ck_assert_mem_eq(second.tokens, all.tokens + 10, 10 * sizeof(int32_t));
    ck_assert_msg(tu_max_abs_diff(second.hidden, all.hidden, 2 * 128) == 0.0, "final hidden");
    ck_assert_msg(tu_max_abs_diff(second.cell, all.cell, 2 * 128) == 0.0, "final cell");
    /* an empty prompt without h0 is refused */
    cont.h0 = cont.c0 = NULL;
    ck_assert_int_eq(rnn_gen_check(l.m, &cont, &none, &p, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "nothing to predict") != NULL, "%s", err);
    free_result(&all);
    free_result(&first);
    free_result(&second);
    unload(&l);
}
END_TEST

static int stop_after(void *ctx)
{
    int *n = ctx;
    return --*n < 0;
}

/* The stop callback is asked between steps: the loop returns RNN_STOPPED. */
START_TEST(stop_between_steps)
{
    loaded l = load(CHAR_LSTM);
    int budget = 40;
    rnn_gen_params p = {.steps = 1000, .stop = stop_after, .stop_ctx = &budget};
    static const int32_t lengths[1] = {2}, ids[2] = {35, 58};
    rnn_batch pb = {.batch = 1, .lengths = lengths};
    owned_result o;
    rnn_gen_result r = alloc_result(l.m, 1, 1000, &o);
    char err[512];
    ck_assert_int_eq(rnn_generate(l.m, &pb, ids, &p, &r, err, sizeof err), RNN_STOPPED);
    free_result(&o);
    unload(&l);
}
END_TEST

Suite *generate_suite(void);
Suite *generate_suite(void)
{
    Suite *s = suite_create("generate");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, greedy_matches_pytorch);
    tcase_add_test(tc, forecast_matches_pytorch);
    tcase_add_test(tc, sampling_reproducible);
    tcase_add_test(tc, sampler_rules);
    tcase_add_test(tc, states_continue);
    tcase_add_test(tc, stop_between_steps);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(generate_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
