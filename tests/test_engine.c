/* test_engine.c - the forward pass against PyTorch's own numbers, the naive reference, and the
 * ragged-batch invariants; and one model shared by several threads.
 *
 * Fixtures: tests/fixtures/cases/<case>/ made by tests/fixtures/gen.py from PyTorch, each
 * sequence run alone (so they encode the per-sequence semantics the engine must match). */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/cells_impl.h"
#include "../src/wire.h"
#include "rnnserve/config.h"
#include "rnnserve/engine.h"
#include "testutil.h"

#define TOL 1e-5

/* One fixture, loaded: model, decoded request, expected results flattened as the engine lays
 * them out. */
typedef struct {
    char name[128];
    cfg_config *cfg;
    rnn_model *model;
    wire_v1_request *req;
    float *exp_out, *exp_hid, *exp_cell;
    size_t n_out, n_hid, n_cell;
} fixture;

/* Appends every number of a nested JSON array to dst in order; returns the count. */
static size_t flatten(const json_t *v, float *dst, size_t at)
{
    if (json_is_number(v)) {
        if (dst)
            dst[at] = (float)json_number_value(v);
        return at + 1;
    }
    for (size_t i = 0; i < json_array_size(v); i++)
        at = flatten(json_array_get(v, i), dst, at);
    return at;
}

static float *flat_new(const json_t *v, size_t *n)
{
    *n = flatten(v, NULL, 0);
    float *d = malloc((*n ? *n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(d);
    flatten(v, d, 0);
    return d;
}

static void fixture_load(fixture *f, const char *name)
{
    char path[512], err[1024];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    snprintf(path, sizeof path, "tests/fixtures/cases/%s/config.json", name);
    ck_assert_msg(cfg_load_file(path, &f->cfg, err, sizeof err) == 0, "%s: %s", name, err);
    ck_assert_msg(rnn_model_load(&f->cfg->models[0], &f->model, err, sizeof err) == 0, "%s: %s",
                  name, err);

    size_t len;
    snprintf(path, sizeof path, "tests/fixtures/cases/%s/request.json", name);
    char *body = tu_read_file(path, &len);
    ck_assert_ptr_nonnull(body);
    api_limits lim = {1024, 100000};
    wire_error e;
    ck_assert_msg(wire_v1_decode(body, len, rnn_model_info(f->model), &lim, &f->req, &e) == 0,
                  "%s: %s", name, e.message);
    free(body);

    snprintf(path, sizeof path, "tests/fixtures/cases/%s/expected.json", name);
    json_error_t jerr;
    json_t *exp = json_load_file(path, 0, &jerr);
    ck_assert_msg(exp != NULL, "%s: %s", path, jerr.text);
    f->exp_out = flat_new(json_object_get(exp, "outputs"), &f->n_out);
    f->exp_hid = flat_new(json_object_get(exp, "hidden"), &f->n_hid);
    if (json_object_get(exp, "cell"))
        f->exp_cell = flat_new(json_object_get(exp, "cell"), &f->n_cell);
    json_decref(exp);
}

static void fixture_free(fixture *f)
{
    wire_v1_free(f->req);
    rnn_model_free(f->model);
    cfg_free(f->cfg);
    free(f->exp_out);
    free(f->exp_hid);
    free(f->exp_cell);
}

/* A result sized for the fixture's batch; free with result_free. */
static rnn_result result_new(const fixture *f)
{
    size_t no, nh, nc;
    rnn_result r;
    rnn_result_sizes(f->model, wire_v1_batch(f->req), &no, &nh, &nc);
    ck_assert_uint_eq(no, f->n_out);
    ck_assert_uint_eq(nh, f->n_hid);
    ck_assert_uint_eq(nc, f->n_cell);
    r.outputs = calloc(no + 1, sizeof(float));
    r.hidden = calloc(nh + 1, sizeof(float));
    r.cell = nc ? calloc(nc, sizeof(float)) : NULL;
    return r;
}

static void result_free(rnn_result *r)
{
    free(r->outputs);
    free(r->hidden);
    free(r->cell);
}

/* Fixture names from MANIFEST; the caller frees the array and the strings. */
static char **manifest(size_t *n)
{
    char *text = tu_read_file("tests/fixtures/cases/MANIFEST", NULL);
    ck_assert_ptr_nonnull(text);
    char **names = calloc(256, sizeof *names);
    *n = 0;
    for (char *line = strtok(text, "\n"); line && *n < 256; line = strtok(NULL, "\n"))
        if (*line)
            names[(*n)++] = strdup(line);
    free(text);
    ck_assert_uint_gt(*n, 0);
    return names;
}

static void manifest_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

START_TEST(test_every_fixture_matches_pytorch)
{
    size_t n;
    char **names = manifest(&n);
    double worst = 0;
    const char *worst_case = "";
    for (size_t i = 0; i < n; i++) {
        fixture f;
        char err[256];
        fixture_load(&f, names[i]);
        rnn_result r = result_new(&f);
        ck_assert_msg(rnn_forward(f.model, wire_v1_batch(f.req), &r, err, sizeof err) == 0, "%s",
                      err);
        double d = fmax(tu_max_abs_diff(r.outputs, f.exp_out, f.n_out),
                        tu_max_abs_diff(r.hidden, f.exp_hid, f.n_hid));
        if (r.cell)
            d = fmax(d, tu_max_abs_diff(r.cell, f.exp_cell, f.n_cell));
        ck_assert_msg(d <= TOL, "%s: max abs diff %g > %g", names[i], d, TOL);
        if (d > worst) {
            worst = d;
            worst_case = names[i];
        }
        result_free(&r);
        fixture_free(&f);
    }
    printf("engine vs PyTorch: %zu fixtures, max abs diff %.3g (%s)\n", n, worst, worst_case);
    manifest_free(names, n);
}
END_TEST

START_TEST(test_reference_matches_pytorch_and_engine)
{
    size_t n;
    char **names = manifest(&n);
    for (size_t i = 0; i < n; i++) {
        fixture f;
        char err[256];
        fixture_load(&f, names[i]);
        rnn_result r = result_new(&f), q = result_new(&f);
        const rnn_batch *b = wire_v1_batch(f.req);
        ck_assert(rnn_forward_reference(f.model, b, &r, err, sizeof err) == 0);
        ck_assert(rnn_forward(f.model, b, &q, err, sizeof err) == 0);
        ck_assert_msg(tu_max_abs_diff(r.outputs, f.exp_out, f.n_out) <= TOL, "%s", names[i]);
        ck_assert_msg(tu_max_abs_diff(r.hidden, f.exp_hid, f.n_hid) <= TOL, "%s", names[i]);
        ck_assert_msg(tu_max_abs_diff(r.outputs, q.outputs, f.n_out) <= TOL, "%s", names[i]);
        result_free(&r);
        result_free(&q);
        fixture_free(&f);
    }
    manifest_free(names, n);
}
END_TEST

/* outputs[i][T_i-1] == hidden[i][L-1] (unidirectional), and for bidirectional models the
 * backward half of outputs[i][0] is the last layer's backward final state. */
START_TEST(test_ragged_final_state_is_at_own_length)
{
    size_t n;
    char **names = manifest(&n);
    for (size_t c = 0; c < n; c++) {
        fixture f;
        char err[256];
        fixture_load(&f, names[c]);
        const rnn_info *in = rnn_model_info(f.model);
        const rnn_batch *b = wire_v1_batch(f.req);
        rnn_result r = result_new(&f);
        ck_assert(rnn_forward(f.model, b, &r, err, sizeof err) == 0);
        const size_t H = (size_t)in->hidden_size, D = (size_t)in->num_directions;
        const size_t LD = (size_t)in->num_layers * D;
        size_t off = 0;
        for (size_t i = 0; i < b->batch; i++) {
            size_t T = (size_t)b->lengths[i];
            const float *hid = r.hidden + i * LD * H;
            if (T == 0) {
                for (size_t k = 0; k < LD * H; k++)
                    ck_assert_float_eq(hid[k], b->h0 ? b->h0[i * LD * H + k] : 0.0f);
                continue;
            }
            const float *last = r.outputs + (off + T - 1) * D * H;
            const float *first = r.outputs + off * D * H;
            /* forward half at its own last step == last layer's forward final state */
            ck_assert_mem_eq(last, hid + (LD - D) * H, H * sizeof(float));
            if (D == 2) /* backward half at step 0 == last layer's backward final state */
                ck_assert_mem_eq(first + H, hid + (LD - 1) * H, H * sizeof(float));
            off += T;
        }
        result_free(&r);
        fixture_free(&f);
    }
    manifest_free(names, n);
}
END_TEST

/* A short sequence batched with a long one gets exactly what it gets alone. */
START_TEST(test_batching_does_not_change_a_sequence)
{
    fixture f;
    char err[256];
    fixture_load(&f, "ragged_mixed");
    const rnn_info *in = rnn_model_info(f.model);
    const rnn_batch *b = wire_v1_batch(f.req);
    rnn_result all = result_new(&f);
    ck_assert(rnn_forward(f.model, b, &all, err, sizeof err) == 0);
    const size_t I = (size_t)in->input_size, DH = (size_t)(in->num_directions * in->hidden_size);
    const size_t LDH = (size_t)(in->num_layers * in->num_directions * in->hidden_size);
    size_t off = 0;
    for (size_t i = 0; i < b->batch; i++) {
        rnn_batch one = {.batch = 1,
                         .lengths = &b->lengths[i],
                         .x = b->x + off * I,
                         .h0 = b->h0 ? b->h0 + i * LDH : NULL};
        size_t no, nh;
        rnn_result_sizes(f.model, &one, &no, &nh, NULL);
        rnn_result r = {calloc(no + 1, sizeof(float)), calloc(nh, sizeof(float)), NULL, NULL, NULL};
        ck_assert(rnn_forward(f.model, &one, &r, err, sizeof err) == 0);
        ck_assert(tu_max_abs_diff(r.outputs, all.outputs + off * DH, no) <= 1e-6);
        ck_assert(tu_max_abs_diff(r.hidden, all.hidden + i * LDH, nh) <= 1e-6);
        result_free(&r);
        off += (size_t)b->lengths[i];
    }
    result_free(&all);
    fixture_free(&f);
}
END_TEST

/* Random models of every kind against the naive reference: sizes the fixtures do not cover. */
static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return ((float)((*s >> 8) & 0xffff) / 65535.0f) * 2.0f - 1.0f;
}

START_TEST(test_random_models_match_reference)
{
    unsigned seed = 12345;
    const rnn_cell_type types[] = {RNN_CELL_RNN, RNN_CELL_LSTM, RNN_CELL_GRU};
    for (int ti = 0; ti < 3; ti++)
        for (int bidir = 0; bidir < 2; bidir++)
            for (int layers = 1; layers <= 3; layers += 2) {
                const int I = 7, H = 33, G = ti == 1 ? 4 : ti == 2 ? 3 : 1, D = bidir + 1;
                cfg_model cm = {0};
                cm.name = "random";
                cm.type = types[ti];
                cm.input_size = I;
                cm.hidden_size = H;
                cm.num_layers = layers;
                cm.bias = true;
                cm.bidirectional = bidir;
                cm.prefix = "";
                cm.tensors = calloc((size_t)(4 * layers * D), sizeof(cfg_tensor));
                char names[4][32];
                for (int l = 0; l < layers; l++)
                    for (int d = 0; d < D; d++) {
                        const char *sfx = d ? "_reverse" : "";
                        int in = l == 0 ? I : D * H;
                        snprintf(names[0], 32, "weight_ih_l%d%s", l, sfx);
                        snprintf(names[1], 32, "weight_hh_l%d%s", l, sfx);
                        snprintf(names[2], 32, "bias_ih_l%d%s", l, sfx);
                        snprintf(names[3], 32, "bias_hh_l%d%s", l, sfx);
                        int64_t shapes[4][2] = {{G * H, in}, {G * H, H}, {G * H, 0}, {G * H, 0}};
                        for (int k = 0; k < 4; k++) {
                            cfg_tensor *t = &cm.tensors[cm.n_tensors++];
                            t->name = strdup(names[k]);
                            t->ndim = k < 2 ? 2 : 1;
                            t->shape[0] = shapes[k][0];
                            t->shape[1] = shapes[k][1];
                            t->numel = (size_t)(k < 2 ? shapes[k][0] * shapes[k][1] : shapes[k][0]);
                            t->data = malloc(t->numel * sizeof(float));
                            for (size_t e = 0; e < t->numel; e++)
                                t->data[e] = frand(&seed) * 0.3f;
                        }
                    }
                rnn_model *m;
                char err[512];
                ck_assert_msg(rnn_model_load(&cm, &m, err, sizeof err) == 0, "%s", err);
                int32_t lengths[6] = {9, 0, 1, 17, 4, 17};
                size_t N = 48, LD = (size_t)(layers * D);
                float *x = malloc(N * I * sizeof(float));
                float *h0 = malloc(6 * LD * H * sizeof(float));
                float *c0 = malloc(6 * LD * H * sizeof(float));
                for (size_t e = 0; e < N * I; e++)
                    x[e] = frand(&seed);
                for (size_t e = 0; e < 6 * LD * H; e++) {
                    h0[e] = frand(&seed) * 0.5f;
                    c0[e] = frand(&seed) * 0.5f;
                }
                rnn_batch b = {
                    .batch = 6, .lengths = lengths, .x = x, .h0 = h0, .c0 = ti == 1 ? c0 : NULL};
                size_t no, nh, nc;
                rnn_result_sizes(m, &b, &no, &nh, &nc);
                rnn_result r1 = {malloc(no * 4), malloc(nh * 4), nc ? malloc(nc * 4) : NULL, NULL, NULL};
                rnn_result r2 = {malloc(no * 4), malloc(nh * 4), nc ? malloc(nc * 4) : NULL, NULL, NULL};
                ck_assert(rnn_forward(m, &b, &r1, err, sizeof err) == 0);
                ck_assert(rnn_forward_reference(m, &b, &r2, err, sizeof err) == 0);
                ck_assert_msg(tu_max_abs_diff(r1.outputs, r2.outputs, no) <= TOL,
                              "type %d bidir %d layers %d", ti, bidir, layers);
                ck_assert(tu_max_abs_diff(r1.hidden, r2.hidden, nh) <= TOL);
                if (nc)
                    ck_assert(tu_max_abs_diff(r1.cell, r2.cell, nc) <= TOL);
                result_free(&r1);
                result_free(&r2);
                free(x);
                free(h0);
                free(c0);
                rnn_model_free(m);
                for (size_t k = 0; k < cm.n_tensors; k++) {
                    free(cm.tensors[k].name);
                    free(cm.tensors[k].data);
                }
                free(cm.tensors);
            }
}
END_TEST

START_TEST(test_parts_not_wanted_may_be_null)
{
    fixture f;
    char err[256];
    fixture_load(&f, "lstm_2layer_bidir");
    rnn_result full = result_new(&f);
    rnn_result only_hidden = {NULL, calloc(f.n_hid, sizeof(float)), NULL, NULL, NULL};
    const rnn_batch *b = wire_v1_batch(f.req);
    ck_assert(rnn_forward(f.model, b, &full, err, sizeof err) == 0);
    ck_assert(rnn_forward(f.model, b, &only_hidden, err, sizeof err) == 0);
    ck_assert_mem_eq(full.hidden, only_hidden.hidden, f.n_hid * sizeof(float));
    result_free(&full);
    result_free(&only_hidden);
    fixture_free(&f);
}
END_TEST

START_TEST(test_negative_length_is_an_error)
{
    fixture f;
    char err[256] = "";
    fixture_load(&f, "rnn_tanh_1layer");
    int32_t lengths[2] = {1, -1};
    float x[3] = {0};
    rnn_batch b = {.batch = 2, .lengths = lengths, .x = x};
    rnn_result r = {NULL, NULL, NULL, NULL, NULL};
    ck_assert_int_eq(rnn_forward(f.model, &b, &r, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "negative length"));
    fixture_free(&f);
}
END_TEST

/* Several threads on one model: each result identical to a single-threaded run. */
typedef struct {
    const fixture *f;
    const float *want_out, *want_hid;
    int ok;
} thread_arg;

static void *hammer(void *p)
{
    thread_arg *a = p;
    const rnn_batch *b = wire_v1_batch(a->f->req);
    char err[256];
    a->ok = 1;
    for (int it = 0; it < 25 && a->ok; it++) {
        rnn_result r = {malloc(a->f->n_out * 4 + 4), malloc(a->f->n_hid * 4), NULL, NULL, NULL};
        if (rnn_model_info(a->f->model)->type == RNN_CELL_LSTM)
            r.cell = malloc(a->f->n_cell * 4);
        if (rnn_forward(a->f->model, b, &r, err, sizeof err) != 0 ||
            memcmp(r.outputs, a->want_out, a->f->n_out * 4) != 0 ||
            memcmp(r.hidden, a->want_hid, a->f->n_hid * 4) != 0)
            a->ok = 0;
        free(r.outputs);
        free(r.hidden);
        free(r.cell);
    }
    return NULL;
}

START_TEST(test_threads_share_one_model)
{
    const char *cases[] = {"ragged_mixed", "lstm_2layer_bidir", "long_1000"};
    for (size_t c = 0; c < 3; c++) {
        fixture f;
        char err[256];
        fixture_load(&f, cases[c]);
        rnn_result want = result_new(&f);
        ck_assert(rnn_forward(f.model, wire_v1_batch(f.req), &want, err, sizeof err) == 0);
        pthread_t th[4];
        thread_arg args[4];
        for (int i = 0; i < 4; i++) {
            args[i] = (thread_arg){&f, want.outputs, want.hidden, 0};
            ck_assert_int_eq(pthread_create(&th[i], NULL, hammer, &args[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            ck_assert_msg(args[i].ok, "%s: thread %d saw a different result", cases[c], i);
        }
        result_free(&want);
        fixture_free(&f);
    }
}
END_TEST

/* The cell table (src/cells.c) row by row against torch.nn: the config's type names, the gate
 * blocks of weight_ih_l0 / weight_hh_l0 in PyTorch's order (nn.RNN: one block, (H, I); nn.LSTM:
 * W_ii|W_if|W_ig|W_io; nn.GRU: W_ir|W_iz|W_in), which type carries c_n, which takes a
 * nonlinearity, and GRU's b_hn applied inside r * (W_hn h + b_hn). */
START_TEST(test_cell_table_matches_pytorch)
{
    static const struct {
        rnn_cell_type type;
        const char *name, *gate_names;
        int gates, hh_bias_gate;
        bool has_cell, nonlinearity;
    } torch[] = {
        {RNN_CELL_RNN, "rnn", "h", 1, -1, false, true},
        {RNN_CELL_LSTM, "lstm", "i f g o", 4, -1, true, false},
        {RNN_CELL_GRU, "gru", "r z n", 3, 2, false, false},
    };
    ck_assert_int_eq(sizeof torch / sizeof *torch, RNN_N_CELLS);
    for (size_t i = 0; i < sizeof torch / sizeof *torch; i++) {
        const rnn_cell_impl *row = rnn_cell_impl_of(torch[i].type);
        ck_assert_ptr_eq(rnn_cell_describe(torch[i].type), &row->desc);
        ck_assert_str_eq(row->desc.name, torch[i].name);
        ck_assert_int_eq(rnn_cell_by_name(torch[i].name), torch[i].type);
        ck_assert_int_eq(row->desc.gates, torch[i].gates);
        ck_assert_str_eq(row->gate_names, torch[i].gate_names);
        int words = 0; /* one name per gate */
        for (const char *p = row->gate_names; *p; p++)
            words += *p != ' ' && (p == row->gate_names || p[-1] == ' ');
        ck_assert_int_eq(words, row->desc.gates);
        ck_assert_int_eq(row->desc.has_cell, torch[i].has_cell);
        ck_assert_int_eq(row->desc.nonlinearity, torch[i].nonlinearity);
        ck_assert_int_eq(row->hh_bias_gate, torch[i].hh_bias_gate);
        ck_assert_int_lt(row->hh_bias_gate, row->desc.gates);
        /* Its step functions are named by its row in cells.def: a row without them does not
         * build. */
    }
    ck_assert_int_eq(rnn_cell_by_name("transformer"), -1);
}
END_TEST

static Suite *engine_suite(void)
{
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("pytorch");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_every_fixture_matches_pytorch);
    tcase_add_test(tc, test_reference_matches_pytorch_and_engine);
    tcase_add_test(tc, test_ragged_final_state_is_at_own_length);
    tcase_add_test(tc, test_batching_does_not_change_a_sequence);
    suite_add_tcase(s, tc);
    tc = tcase_create("engine");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cell_table_matches_pytorch);
    tcase_add_test(tc, test_random_models_match_reference);
    tcase_add_test(tc, test_parts_not_wanted_may_be_null);
    tcase_add_test(tc, test_negative_length_is_an_error);
    tcase_add_test(tc, test_threads_share_one_model);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(engine_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
