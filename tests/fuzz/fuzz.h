/* fuzz.h - what the libFuzzer targets in tests/fuzz/ share with each other and with their replay
 * runner (tests/test_fuzz.c): a check that aborts (so that libFuzzer and Check both see it), and
 * small models built from inline weights, so that no target depends on files beside it.
 *
 * Each target defines fz_<target>_one(data, size); it becomes LLVMFuzzerTestOneInput unless
 * FUZZ_NO_MAIN is defined, which is how tests/test_fuzz.c includes all of them in one runner. */
#ifndef RNNSERVE_FUZZ_H
#define RNNSERVE_FUZZ_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnserve/config.h"
#include "rnnserve/model.h"

/* Where FZ_CHECK reports: stderr, unless a runner that silences the server's access log
 * points it elsewhere. */
static FILE *fz_report;

/* An invariant of the code under test: a failure is a finding, reported like a crash. */
#define FZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            FILE *fz_f_ = fz_report ? fz_report : stderr;                                          \
            fprintf(fz_f_, "%s:%d: fuzz check failed: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(fz_f_, __VA_ARGS__);                                                           \
            fputc('\n', fz_f_);                                                                    \
            fflush(fz_f_);                                                                         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Deterministic weights in [-0.5, 0.5): the same model on every run, so findings replay. */
static inline float fz_weight(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (float)(*state >> 8) / (float)(1u << 24) - 0.5f;
}

static inline json_t *fz_tensor(uint32_t *state, size_t rows, size_t cols)
{
    json_t *t = json_array();
    for (size_t r = 0; t && r < rows; r++) {
        json_t *row = cols ? json_array() : NULL;
        for (size_t c = 0; row && c < cols; c++)
            json_array_append_new(row, json_real(fz_weight(state)));
        json_array_append_new(t, cols ? row : json_real(fz_weight(state)));
    }
    return t;
}

/* The config entry of a model with inline weights named NAME: TYPE "rnn", "lstm" or "gru",
 * input size I, hidden size H, L layers (a new reference). */
static inline json_t *fz_model_json(const char *name, const char *type, int I, int H, int L,
                                    int bidir, int bias)
{
    size_t G = strcmp(type, "lstm") == 0 ? 4 : strcmp(type, "gru") == 0 ? 3 : 1;
    size_t D = bidir ? 2 : 1;
    uint32_t state = 12345u + (uint32_t)(I * 7 + H * 13 + L);
    json_t *w = json_object();
    for (int l = 0; l < L; l++)
        for (size_t d = 0; d < D; d++) {
            const char *sfx = d ? "_reverse" : "";
            size_t in = l == 0 ? (size_t)I : D * (size_t)H;
            char key[64];
            snprintf(key, sizeof key, "weight_ih_l%d%s", l, sfx);
            json_object_set_new(w, key, fz_tensor(&state, G * (size_t)H, in));
            snprintf(key, sizeof key, "weight_hh_l%d%s", l, sfx);
            json_object_set_new(w, key, fz_tensor(&state, G * (size_t)H, (size_t)H));
            if (!bias)
                continue;
            snprintf(key, sizeof key, "bias_ih_l%d%s", l, sfx);
            json_object_set_new(w, key, fz_tensor(&state, G * (size_t)H, 0));
            snprintf(key, sizeof key, "bias_hh_l%d%s", l, sfx);
            json_object_set_new(w, key, fz_tensor(&state, G * (size_t)H, 0));
        }
    json_t *m = json_pack("{s:s, s:s, s:i, s:i, s:i, s:b, s:b, s:o}", "name", name, "type", type,
                          "input_size", I, "hidden_size", H, "num_layers", L, "bidirectional",
                          bidir, "bias", bias, "weights", w);
    FZ_CHECK(m != NULL, "cannot build model %s", name);
    return m;
}

/* Loads a config from a JSON value (stolen); aborts when it does not load (the harness itself
 * is broken then). */
static inline cfg_config *fz_config(json_t *root)
{
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    FZ_CHECK(text != NULL, "cannot build a config");
    cfg_config *cfg = NULL;
    char err[1024];
    FZ_CHECK(cfg_load_buffer(text, strlen(text), NULL, &cfg, err, sizeof err) == 0, "%s", err);
    free(text);
    return cfg;
}

/* A loaded model with inline weights (see fz_model_json). */
static inline rnn_model *fz_model(const char *name, const char *type, int I, int H, int L,
                                  int bidir, int bias)
{
    cfg_config *cfg =
        fz_config(json_pack("{s:[o]}", "models", fz_model_json(name, type, I, H, L, bidir, bias)));
    rnn_model *model = NULL;
    char err[1024];
    FZ_CHECK(rnn_model_load(&cfg->models[0], &model, err, sizeof err) == 0, "%s", err);
    cfg_free(cfg);
    return model;
}

#endif
