/* test_layout.c - the native API's extensions against PyTorch: "layout": "padded" returns the
 * tensors PyTorch prints (output [B][T_max][D*H] zero-padded, h_n [L*D][B][H]), and a model's
 * output head ("head" in the config, PyTorch's self.fc) adds "predictions" at every step. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rnnserve/api.h"
#include "rnnserve/config.h"
#include "testutil.h"

/* Runs the fixture's request with EXTRA fields merged in; returns the parsed response. */
static json_t *run(const char *name, const char *extra, int *status)
{
    char path[512], err[1024];
    cfg_config *cfg;
    rnn_model *m;
    snprintf(path, sizeof path, "tests/fixtures/cases/%s/config.json", name);
    ck_assert_msg(cfg_load_file(path, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(rnn_model_load(&cfg->models[0], &m, err, sizeof err) == 0, "%s", err);
    snprintf(path, sizeof path, "tests/fixtures/cases/%s/request.json", name);
    json_t *req = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(req);
    json_t *more = json_loads(extra, 0, NULL);
    ck_assert_ptr_nonnull(more);
    json_object_update(req, more);
    char *body = json_dumps(req, JSON_COMPACT), *out;
    size_t len;
    api_limits lim = {1024, 100000};
    *status = api_forward(api_wire_v1(), m, body, strlen(body), &lim, &out, &len, NULL);
    json_t *resp = json_loadb(out, len, 0, NULL);
    ck_assert_msg(resp != NULL, "%s: %.*s", name, (int)len, out);
    free(out);
    free(body);
    json_decref(more);
    json_decref(req);
    rnn_model_free(m);
    cfg_free(cfg);
    return resp;
}

static json_t *expected(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "tests/fixtures/cases/%s/expected.json", name);
    json_t *j = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(j);
    return j;
}

static double at3(json_t *v, size_t a, size_t b, size_t c)
{
    return json_number_value(json_array_get(json_array_get(json_array_get(v, a), b), c));
}

START_TEST(test_padded_layout_is_pytorchs_tensors)
{
    char *manifest = tu_read_file("tests/fixtures/cases/MANIFEST", NULL);
    size_t cases = 0;
    for (char *name = strtok(manifest, "\n"); name; name = strtok(NULL, "\n")) {
        int status;
        json_t *got = run(name, "{\"layout\": \"padded\"}", &status), *want = expected(name);
        ck_assert_msg(status == 200, "%s: %d", name, status);
        json_t *wo = json_object_get(want, "outputs"), *go = json_object_get(got, "outputs");
        size_t B = json_array_size(wo), T = 0;
        for (size_t i = 0; i < B; i++)
            T = json_array_size(json_array_get(wo, i)) > T ? json_array_size(json_array_get(wo, i))
                                                           : T;
        ck_assert_uint_eq(json_array_size(go), B);
        /* outputs, predictions: [B][T_max][width], zero past each length */
        const char *per_step[] = {"outputs", "predictions"};
        for (int p = 0; p < 2; p++) {
            json_t *w = json_object_get(want, per_step[p]), *g = json_object_get(got, per_step[p]);
            if (!w) {
                ck_assert_ptr_null(g);
                continue;
            }
            size_t width = 0;
            for (size_t i = 0; i < B && !width; i++)
                width = json_array_size(json_array_get(json_array_get(w, i), 0));
            for (size_t i = 0; i < B; i++) {
                json_t *gs = json_array_get(g, i);
                size_t Ti = json_array_size(json_array_get(w, i));
                ck_assert_uint_eq(json_array_size(gs), T);
                for (size_t t = 0; t < T; t++)
                    for (size_t k = 0; k < width; k++) {
                        double want_v = t < Ti ? at3(w, i, t, k) : 0.0;
                        ck_assert_msg(fabs(at3(g, i, t, k) - want_v) <= 1e-5,
                                      "%s %s[%zu][%zu][%zu]", name, per_step[p], i, t, k);
                    }
            }
        }
        /* hidden, cell: [L*D][B][H] */
        const char *states[] = {"hidden", "cell"};
        for (int p = 0; p < 2; p++) {
            json_t *w = json_object_get(want, states[p]), *g = json_object_get(got, states[p]);
            if (!w) {
                ck_assert_ptr_null(g);
                continue;
            }
            size_t LD = json_array_size(json_array_get(w, 0));
            size_t H = json_array_size(json_array_get(json_array_get(w, 0), 0));
            ck_assert_uint_eq(json_array_size(g), LD);
            for (size_t r = 0; r < LD; r++) {
                ck_assert_uint_eq(json_array_size(json_array_get(g, r)), B);
                for (size_t i = 0; i < B; i++)
                    for (size_t u = 0; u < H; u++)
                        ck_assert_msg(fabs(at3(g, r, i, u) - at3(w, i, r, u)) <= 1e-5,
                                      "%s %s[%zu][%zu][%zu]", name, states[p], r, i, u);
            }
        }
        json_decref(got);
        json_decref(want);
        cases++;
    }
    free(manifest);
    ck_assert_uint_gt(cases, 20);
}
END_TEST

START_TEST(test_head_predictions_match_pytorch)
{
    const char *cases[] = {"head_sigmoid", "head_softmax", "head_linear"};
    for (size_t c = 0; c < 3; c++) {
        int status;
        json_t *got = run(cases[c], "{}", &status), *want = expected(cases[c]);
        ck_assert_int_eq(status, 200);
        json_t *w = json_object_get(want, "predictions"), *g = json_object_get(got, "predictions");
        ck_assert_ptr_nonnull(g);
        ck_assert_uint_eq(json_array_size(g), json_array_size(w));
        for (size_t i = 0; i < json_array_size(w); i++) {
            json_t *ws = json_array_get(w, i), *gs = json_array_get(g, i);
            ck_assert_uint_eq(json_array_size(gs), json_array_size(ws));
            for (size_t t = 0; t < json_array_size(ws); t++)
                for (size_t k = 0; k < json_array_size(json_array_get(ws, t)); k++)
                    ck_assert_msg(fabs(at3(g, i, t, k) - at3(w, i, t, k)) <= 1e-5, "%s", cases[c]);
        }
        /* outputs and hidden are there, unchanged */
        ck_assert_ptr_nonnull(json_object_get(got, "outputs"));
        ck_assert_ptr_nonnull(json_object_get(got, "hidden"));
        json_decref(got);
        json_decref(want);
    }
}
END_TEST

START_TEST(test_return_predictions_only)
{
    int status;
    json_t *got = run("head_softmax", "{\"return\": [\"predictions\"]}", &status);
    ck_assert_int_eq(status, 200);
    ck_assert_ptr_null(json_object_get(got, "outputs"));
    ck_assert_ptr_null(json_object_get(got, "hidden"));
    json_t *p = json_object_get(got, "predictions");
    /* softmax rows sum to 1 */
    for (size_t i = 0; i < json_array_size(p); i++)
        for (size_t t = 0; t < json_array_size(json_array_get(p, i)); t++) {
            double sum = 0;
            json_t *row = json_array_get(json_array_get(p, i), t);
            for (size_t k = 0; k < json_array_size(row); k++)
                sum += json_number_value(json_array_get(row, k));
            ck_assert_double_eq_tol(sum, 1.0, 1e-5);
        }
    json_decref(got);
    got = run("rnn_tanh_1layer", "{\"return\": [\"predictions\"]}", &status);
    ck_assert_int_eq(status, 400);
    ck_assert_ptr_nonnull(strstr(
        json_string_value(json_object_get(json_object_get(got, "error"), "message")), "head"));
    json_decref(got);
    got = run("rnn_tanh_1layer", "{\"layout\": \"square\"}", &status);
    ck_assert_int_eq(status, 400);
    ck_assert_ptr_nonnull(strstr(
        json_string_value(json_object_get(json_object_get(got, "error"), "message")), "layout"));
    json_decref(got);
}
END_TEST

START_TEST(test_head_config_errors_name_the_tensor)
{
    char err[1024], text[2048];
    const char *cases[][2] = {
        {"{\"weight\": \"fc.nope\"}", "fc.nope"},
        {"{\"weight\": \"fc.weight\", \"bias\": \"fc.nope\"}", "fc.nope"},
        {"{\"weight\": \"rnn.weight_hh_l0\"}", "must be [out_features, 8]"},
        {"{\"weight\": \"fc.weight\", \"activation\": \"tanh\"}", "activation"},
        {"{\"bias\": \"fc.bias\"}", "head.weight"},
        {"{\"weight\": \"fc.weight\", \"scale\": 2}", "scale"},
    };
    char cwd[1024];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cfg_config *cfg = NULL;
        rnn_model *m = NULL;
        snprintf(
            text, sizeof text,
            "{\"models\": [{\"name\": \"h\", \"type\": \"gru\", \"input_size\": 3, "
            "\"hidden_size\": 4, \"num_layers\": 2, \"bidirectional\": true, \"prefix\": "
            "\"rnn.\", \"weights\": \"%s/tests/fixtures/cases/head_sigmoid/model.safetensors\", "
            "\"head\": %s}]}",
            cwd, cases[i][0]);
        int rc = cfg_load_buffer(text, strlen(text), ".", &cfg, err, sizeof err);
        if (rc == 0) {
            rc = rnn_model_load(&cfg->models[0], &m, err, sizeof err);
            rnn_model_free(m);
        }
        cfg_free(cfg);
        ck_assert_int_eq(rc, -1);
        ck_assert_msg(strstr(err, cases[i][1]) != NULL, "%s: %s", cases[i][0], err);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("layout");
    TCase *tc = tcase_create("layout");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_padded_layout_is_pytorchs_tensors);
    tcase_add_test(tc, test_head_predictions_match_pytorch);
    tcase_add_test(tc, test_return_predictions_only);
    tcase_add_test(tc, test_head_config_errors_name_the_tensor);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
