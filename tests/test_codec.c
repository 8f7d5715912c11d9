/* test_codec.c - Check suites for src/codec.c: request decoding (every error with its exact status
 * and the JSON path it names), response and error encoding (parsed back with jansson), and
 * codec_forward end to end on every PyTorch fixture in tests/fixtures/cases/MANIFEST. */
#include "rnnserve/codec.h"
#include "rnnserve/config.h"
#include "rnnserve/engine.h"
#include "rnnserve/model.h"
#include "testutil.h"

#include <check.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN 1024

static const codec_limits LIM = {1024, 100000};

/* ---- helpers ------------------------------------------------------------------------------- */

/* TEXT with every ' turned into " (JSON in C strings reads better that way). New string. */
static char *dq(const char *text)
{
    char *s = strdup(text);
    ck_assert_ptr_nonnull(s);
    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    return s;
}

/* What codec needs to know of a model, without loading one. */
static rnn_info info_of(cfg_type type, int I, int H, int L, int D)
{
    rnn_info in = {"m",  type, CFG_TANH, I, H, L, D, type == CFG_LSTM ? 4 : type == CFG_GRU ? 3 : 1,
                   true, 0};
    return in;
}

static codec_request *decode_ok_lim(const char *text, const rnn_info *in, const codec_limits *lim)
{
    char *body = dq(text);
    codec_request *r = NULL;
    codec_error e = {0, ""};
    int rc = codec_decode_request(body, strlen(body), in, lim, &r, &e);
    ck_assert_msg(rc == 0, "decode failed (%d): %s, for %s", e.status, e.message, body);
    ck_assert_ptr_nonnull(r);
    free(body);
    return r;
}

static codec_request *decode_ok(const char *text, const rnn_info *in)
{
    return decode_ok_lim(text, in, &LIM);
}

/* Asserts that BODY[LEN] fails to decode with STATUS, *out NULL, and a message holding every
 * NEEDLE (a NULL-terminated va_list). */
static void vexpect_raw(const char *body, size_t len, const rnn_info *in, const codec_limits *lim,
                        int status, va_list ap)
{
    codec_request *r = (codec_request *)&r; /* not NULL, to see decode clear it */
    codec_error e = {0, ""};
    ck_assert_int_eq(codec_decode_request(body, len, in, lim, &r, &e), -1);
    ck_assert_ptr_null(r);
    ck_assert_msg(e.status == status, "status %d, not %d: %s", e.status, status, e.message);
    for (const char *needle; (needle = va_arg(ap, const char *));)
        ck_assert_msg(strstr(e.message, needle), "message lacks \"%s\": %s", needle, e.message);
}

static void expect_raw(const char *body, size_t len, const rnn_info *in, int status, ...)
{
    va_list ap;
    va_start(ap, status);
    vexpect_raw(body, len, in, &LIM, status, ap);
    va_end(ap);
}

/* TEXT is JSON with ' for ". */
static void expect_lim(const char *text, const rnn_info *in, const codec_limits *lim, int status,
                       ...)
{
    char *body = dq(text);
    va_list ap;
    va_start(ap, status);
    vexpect_raw(body, strlen(body), in, lim, status, ap);
    va_end(ap);
    free(body);
}

#define expect(text, in, status, ...) expect_lim(text, in, &LIM, status, __VA_ARGS__)

/* Compares WANT with GOT: the same object keys, the same array sizes, equal strings and booleans,
 * numbers within TOL. On the first difference returns 0 and writes its JSON path into msg. */
static int json_close(const json_t *want, const json_t *got, double tol, char *path, size_t plen,
                      char *msg, size_t mlen)
{
    size_t n = strlen(path);
    if (json_is_number(want) && json_is_number(got)) {
        double a = json_number_value(want), b = json_number_value(got);
        if (fabs(a - b) <= tol)
            return 1;
        snprintf(msg, mlen, "%s: expected %.9g, got %.9g", path, a, b);
        return 0;
    }
    if (json_typeof(want) != json_typeof(got)) {
        snprintf(msg, mlen, "%s: JSON types differ", path);
        return 0;
    }
    if (json_is_array(want)) {
        if (json_array_size(want) != json_array_size(got)) {
            snprintf(msg, mlen, "%s: expected %zu elements, got %zu", path, json_array_size(want),
                     json_array_size(got));
            return 0;
        }
        for (size_t i = 0; i < json_array_size(want); i++) {
            snprintf(path + n, plen - n, "[%zu]", i);
            if (!json_close(json_array_get(want, i), json_array_get(got, i), tol, path, plen, msg,
                            mlen))
                return 0;
        }
        path[n] = '\0';
        return 1;
    }
    if (json_is_object(want)) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)got, key, v)
        {
            if (!json_object_get(want, key)) {
                snprintf(msg, mlen, "%s: unexpected key \"%s\"", path, key);
                return 0;
            }
        }
        json_object_foreach((json_t *)want, key, v)
        {
            json_t *g = json_object_get(got, key);
            if (!g) {
                snprintf(msg, mlen, "%s: missing key \"%s\"", path, key);
                return 0;
            }
            snprintf(path + n, plen - n, ".%s", key);
            if (!json_close(v, g, tol, path, plen, msg, mlen))
                return 0;
            path[n] = '\0';
        }
        return 1;
    }
    if (json_is_string(want) && strcmp(json_string_value(want), json_string_value(got)) != 0) {
        snprintf(msg, mlen, "%s: expected \"%s\", got \"%s\"", path, json_string_value(want),
                 json_string_value(got));
        return 0;
    }
    return 1; /* true, false, null: equal types suffice */
}

/* BUF[LEN] as a new NUL-terminated string (responses are not terminated). */
static char *cstr(const char *buf, size_t len)
{
    char *s = malloc(len + 1);
    ck_assert_ptr_nonnull(s);
    memcpy(s, buf, len);
    s[len] = '\0';
    return s;
}

static json_t *parse(const char *buf, size_t len)
{
    json_error_t jerr;
    json_t *v = json_loadb(buf, len, 0, &jerr);
    ck_assert_msg(v != NULL, "not valid JSON (%s at %d): %.*s", jerr.text, jerr.position,
                  (int)(len > 300 ? 300 : len), buf);
    return v;
}

/* A model from a config text (JSON with ' for "), e.g. with inline weights. */
static rnn_model *model_from(const char *text)
{
    char err[ERRLEN], *json = dq(text);
    cfg_config *cfg = NULL;
    rnn_model *m = NULL;
    ck_assert_msg(cfg_load_buffer(json, strlen(json), NULL, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(rnn_model_load(&cfg->models[0], &m, err, sizeof err) == 0, "%s", err);
    cfg_free(cfg);
    free(json);
    return m;
}

/* rnn I=1, H=2, tanh, with biases. */
static const char *const SMALL_RNN =
    "{'models': [{'name': 'small', 'type': 'rnn', 'input_size': 1, 'hidden_size': 2,"
    " 'weights': {'weight_ih_l0': [[0.5], [-0.25]], 'weight_hh_l0': [[0.1, 0.2], [-0.3, 0.4]],"
    " 'bias_ih_l0': [0.01, 0.02], 'bias_hh_l0': [-0.03, 0.05]}}]}";

/* Runs TEXT (JSON with ' for ") through codec_forward; returns the status, *out the parsed body. */
static int forward(const rnn_model *m, const char *text, json_t **out, codec_stats *stats)
{
    char *body = dq(text), *resp = NULL;
    size_t rlen = 0;
    int status = codec_forward(m, body, strlen(body), &LIM, &resp, &rlen, stats);
    ck_assert_ptr_nonnull(resp);
    *out = parse(resp, rlen);
    free(resp);
    free(body);
    return status;
}

/* ---- decoding: what is accepted ------------------------------------------------------------- */

START_TEST(test_nested_arrays_decode_into_a_flat_batch)
{
    rnn_info in = info_of(CFG_RNN, 3, 2, 1, 1);
    codec_request *r = decode_ok("{'inputs': [[[1, 2, 3], [4, 5, 6]], [], [[7, 8, 9.5]]]}", &in);
    const rnn_batch *b = codec_request_batch(r);
    ck_assert_uint_eq(b->batch, 3);
    ck_assert_int_eq(b->lengths[0], 2);
    ck_assert_int_eq(b->lengths[1], 0);
    ck_assert_int_eq(b->lengths[2], 1);
    const float want[] = {1, 2, 3, 4, 5, 6, 7, 8, 9.5f};
    for (size_t i = 0; i < 9; i++)
        ck_assert_msg(b->x[i] == want[i], "x[%zu] = %g", i, (double)b->x[i]);
    ck_assert_ptr_null(b->h0);
    ck_assert_ptr_null(b->c0);
    ck_assert_uint_eq(codec_request_steps(r), 3);
    ck_assert_uint_eq(codec_request_parts(r), CODEC_OUTPUTS | CODEC_HIDDEN);
    ck_assert_int_eq(codec_request_precision(r), 9);
    codec_request_free(r);
    codec_request_free(NULL);
}
END_TEST

START_TEST(test_bare_numbers_are_steps_when_input_size_is_1)
{
    rnn_info in = info_of(CFG_GRU, 1, 2, 1, 1);
    codec_request *r = decode_ok("{'inputs': [[1, [2], -3.5], [0.25]]}", &in);
    const rnn_batch *b = codec_request_batch(r);
    ck_assert_uint_eq(b->batch, 2);
    ck_assert_int_eq(b->lengths[0], 3);
    ck_assert_int_eq(b->lengths[1], 1);
    ck_assert(b->x[0] == 1.0f && b->x[1] == 2.0f && b->x[2] == -3.5f && b->x[3] == 0.25f);
    codec_request_free(r);
}
END_TEST

START_TEST(test_bare_number_step_is_rejected_when_input_size_is_not_1)
{
    rnn_info in = info_of(CFG_RNN, 2, 2, 1, 1);
    expect("{'inputs': [[[1, 2], 3]]}", &in, 400, "inputs[0][1]", "2 numbers", NULL);
    rnn_info one = info_of(CFG_RNN, 1, 2, 1, 1);
    expect("{'inputs': [[1, 'x']]}", &one, 400, "inputs[0][1]", NULL);
    expect("{'inputs': [[[1, 2]]]}", &one, 400, "inputs[0][0]", "got 2", NULL);
}
END_TEST

START_TEST(test_integers_and_exponents_decode_as_float32)
{
    rnn_info in = info_of(CFG_RNN, 1, 1, 1, 1);
    codec_request *r = decode_ok("{'inputs': [[0, -0, 7, -12, 1e-3, 2.5E+2, -4e-1, 1E2, -0.0,"
                                 " 12345678901234567890, 1e-40]]}",
                                 &in);
    const rnn_batch *b = codec_request_batch(r);
    const float want[] = {
        0, -0.0f, 7, -12, 1e-3f, 250, -0.4f, 100, -0.0f, 1.2345678901234567890e19f, 1e-40f};
    ck_assert_int_eq(b->lengths[0], 11);
    for (size_t i = 0; i < 11; i++)
        ck_assert_msg(b->x[i] == want[i], "x[%zu] = %.9g, not %.9g", i, (double)b->x[i],
                      (double)want[i]);
    ck_assert(signbit(b->x[8]));
    codec_request_free(r);
}
END_TEST

START_TEST(test_float32_extremes_are_accepted)
{
    /* FLT_MAX exactly, and its shortest decimal form, which lies above it but rounds to it */
    rnn_info in = info_of(CFG_RNN, 1, 1, 1, 1);
    codec_request *r = decode_ok("{'inputs': [[340282346638528859811704183484516925440,"
                                 " 3.4028235e38, -3.40282347e+38, 1.17549435e-38, 1e-45]]}",
                                 &in);
    const rnn_batch *b = codec_request_batch(r);
    ck_assert(b->x[0] == FLT_MAX);
    ck_assert(b->x[1] == FLT_MAX);
    ck_assert(b->x[2] == -FLT_MAX);
    ck_assert(b->x[3] == FLT_MIN);
    ck_assert(b->x[4] > 0);
    codec_request_free(r);
}
END_TEST

START_TEST(test_h0_and_c0_rows_follow_pytorch_layout)
{
    /* L=2, D=2: four rows per sequence, h_n order (l0 fwd, l0 bwd, l1 fwd, l1 bwd) */
    rnn_info in = info_of(CFG_LSTM, 1, 2, 2, 2);
    codec_request *r = decode_ok("{'inputs': [[1], [2, 3]],"
                                 " 'h0': [[[0, 1], [2, 3], [4, 5], [6, 7]],"
                                 "        [[8, 9], [10, 11], [12, 13], [14, 15]]],"
                                 " 'c0': [[[-0, -1], [-2, -3], [-4, -5], [-6, -7]],"
                                 "        [[-8, -9], [-10, -11], [-12, -13], [-14, -15]]]}",
                                 &in);
    const rnn_batch *b = codec_request_batch(r);
    ck_assert_ptr_nonnull(b->h0);
    ck_assert_ptr_nonnull(b->c0);
    for (size_t i = 0; i < 16; i++) {
        ck_assert_msg(b->h0[i] == (float)i, "h0[%zu] = %g", i, (double)b->h0[i]);
        ck_assert_msg(b->c0[i] == -(float)i, "c0[%zu] = %g", i, (double)b->c0[i]);
    }
    ck_assert_uint_eq(codec_request_parts(r), CODEC_OUTPUTS | CODEC_HIDDEN | CODEC_CELL);
    codec_request_free(r);
}
END_TEST

START_TEST(test_null_h0_and_c0_mean_zeros)
{
    rnn_info in = info_of(CFG_LSTM, 1, 2, 1, 1);
    codec_request *r = decode_ok("{'inputs': [[1]], 'h0': null, 'c0': null}", &in);
    ck_assert_ptr_null(codec_request_batch(r)->h0);
    ck_assert_ptr_null(codec_request_batch(r)->c0);
    codec_request_free(r);
}
END_TEST

START_TEST(test_all_empty_sequences_decode)
{
    rnn_info in = info_of(CFG_RNN, 3, 2, 1, 1);
    codec_request *r = decode_ok("{'inputs': [[], []]}", &in);
    ck_assert_uint_eq(codec_request_batch(r)->batch, 2);
    ck_assert_uint_eq(codec_request_steps(r), 0);
    codec_request_free(r);
}
END_TEST

START_TEST(test_return_selects_parts)
{
    rnn_info rnn = info_of(CFG_RNN, 1, 1, 1, 1), lstm = info_of(CFG_LSTM, 1, 1, 1, 1);
    static const struct {
        const char *ret;
        int lstm;
        unsigned parts;
    } cases[] = {
        {"['hidden']", 0, CODEC_HIDDEN},
        {"['outputs']", 0, CODEC_OUTPUTS},
        {"['hidden', 'outputs']", 0, CODEC_OUTPUTS | CODEC_HIDDEN},
        {"['hidden', 'hidden']", 0, CODEC_HIDDEN},
        {"['cell']", 1, CODEC_CELL},
        {"['cell', 'outputs']", 1, CODEC_CELL | CODEC_OUTPUTS},
        {"['outputs', 'hidden', 'cell']", 1, CODEC_OUTPUTS | CODEC_HIDDEN | CODEC_CELL},
        {"[]", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "{'inputs': [[1]], 'return': %s}", cases[i].ret);
        codec_request *r = decode_ok(text, cases[i].lstm ? &lstm : &rnn);
        ck_assert_msg(codec_request_parts(r) == cases[i].parts, "%s: parts %u", cases[i].ret,
                      codec_request_parts(r));
        codec_request_free(r);
    }
}
END_TEST

START_TEST(test_precision_1_to_9_is_accepted)
{
    rnn_info in = info_of(CFG_RNN, 1, 1, 1, 1);
    char text[128];
    snprintf(text, sizeof text, "{'inputs': [[1]], 'precision': %d}", _i);
    codec_request *r = decode_ok(text, &in);
    ck_assert_int_eq(codec_request_precision(r), _i);
    codec_request_free(r);
    snprintf(text, sizeof text, "{'inputs': [[1]], 'precision': %d.0}", _i);
    r = decode_ok(text, &in);
    ck_assert_int_eq(codec_request_precision(r), _i);
    codec_request_free(r);
}
END_TEST

START_TEST(test_limits_are_inclusive)
{
    rnn_info in = info_of(CFG_RNN, 1, 1, 1, 1);
    codec_limits lim = {2, 3};
    codec_request *r = decode_ok_lim("{'inputs': [[1, 2, 3], [4, 5, 6]]}", &in, &lim);
    ck_assert_uint_eq(codec_request_steps(r), 6);
    codec_request_free(r);
}
END_TEST

/* ---- decoding: what is rejected ------------------------------------------------------------- */

START_TEST(test_malformed_json_is_400_with_its_position)
{
    rnn_info in = info_of(CFG_RNN, 1, 1, 1, 1);
    expect("{'inputs': [[1]],}", &in, 400, "malformed JSON", "line 1", "column", NULL);
    expect("{'inputs': [[1]]", &in, 400, "malformed JSON", NULL);
    expect("{'inputs': [[1]]} x", &in, 400, "malformed JSON", NULL);
    expect("{'inputs': [[NaN]]}", &in, 400, "malformed JSON", NULL);
    expect("{'inputs': [[Infinity]]}", &in, 400, "malformed JSON", NULL);
    expect("{'inputs': [[01]]}", &in, 400, "malformed JSON", NULL);
    expect("   ", &in, 400, NULL);
    expect_raw("{\"inputs\": [[1]]}\0", 19, &in, 400, NULL);
    expect_raw("{\"inputs\": [[\xff]]}", 17, &in, 400, NULL);
}
END_TEST

START_TEST(test_empty_body_is_400)
{
    rnn_info in = info_of(CFG_RNN, 1, 1, 1, 1);
    expect_raw("", 0, &in, 400, "empty", NULL);
}
END_TEST

START_TEST(test_body_that_is_not_an_object_is_400)
{
    rnn_info in = info_of(CFG_RNN, 1, 1, 1, 1);
    expect("[[1]]", &in, 400, NULL);
    expect("[]", &in, 400, NULL);
    expect("42", &in, 400, NULL);
    expect("'inputs'", &in, 400, NULL);
    expect("null", &in, 400, NULL);
}
END_TEST

START_TEST(test_unknown_field_is_400_and_named)
{
    rnn_info in = info_of(CFG_RNN, 1, 1, 1, 1);
    expect("{'inputs': [[1]], 'input': 1}", &in, 400, "input: unknown field", NULL);
    expect("{'inputs': [[1]], 'H0': []}", &in, 400, "H0", "unknown field", NULL);
}
END_TEST

START_TEST(test_missing_inputs_is_400)
{
    rnn_info in = info_of(CFG_RNN, 1, 1, 1, 1);
    expect("{}", &in, 400, "inputs", "missing", NULL);
    expect("{'h0': [[[0]]]}", &in, 400, "inputs", "missing", NULL);
}
END_TEST

START_TEST(test_inputs_not_an_array_is_400)
{
    rnn_info in = info_of(CFG_RNN, 1, 1, 1, 1);
    expect("{'inputs': {}}", &in, 400, "inputs", "an object", NULL);
    expect("{'inputs': 1}", &in, 400, "inputs", NULL);
    expect("{'inputs': null}", &in, 400, "inputs", NULL);
    expect("{'inputs': '[[1]]'}", &in, 400, "inputs", NULL);
}
END_TEST

START_TEST(test_empty_inputs_is_400)
{
    rnn_info in = info_of(CFG_RNN, 1, 1, 1, 1);
    expect("{'inputs': []}", &in, 400, "inputs", NULL);
}
END_TEST

START_TEST(test_more_than_max_batch_sequences_is_413)
{
    rnn_info in = info_of(CFG_RNN, 1, 1, 1, 1);
    codec_limits lim = {2, 3};
    expect_lim("{'inputs': [[], [], []]}", &in, &lim, 413, "inputs", "max_batch", NULL);
}
END_TEST

START_TEST(test_sequence_over_max_steps_is_413)
{
    rnn_info in = info_of(CFG_RNN, 1, 1, 1, 1);
    codec_limits lim = {2, 3};
    expect_lim("{'inputs': [[1, 2, 3], [1, 2, 3, 4]]}", &in, &lim, 413, "inputs[1]", "max_steps",
               NULL);
}
END_TEST

START_TEST(test_step_with_wrong_width_names_its_path)
{
    rnn_info in = info_of(CFG_RNN, 3, 2, 1, 1);
    const char *text = "{'inputs': [[[0, 0, 0]], [],"
                       " [[1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4], [5, 5, 5], [6, 6]]]}";
    expect(text, &in, 400, "inputs[2][5]: expected 3 numbers, got 2", NULL);
    expect("{'inputs': [[[1, 2, 3, 4]]]}", &in, 400, "inputs[0][0]", "got 4", NULL);
    expect("{'inputs': [[[]]]}", &in, 400, "inputs[0][0]", "got 0", NULL);
}
END_TEST

START_TEST(test_sequence_not_an_array_is_named)
{
    rnn_info in = info_of(CFG_RNN, 1, 1, 1, 1);
    expect("{'inputs': [[1], 5]}", &in, 400, "inputs[1]", NULL);
    expect("{'inputs': [{'x': 1}]}", &in, 400, "inputs[0]", NULL);
}
END_TEST

START_TEST(test_non_number_value_names_its_path)
{
    rnn_info in = info_of(CFG_RNN, 3, 2, 1, 1);
    static const char *const bad[] = {"'1'", "null", "true", "false", "{}", "[1]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "{'inputs': [[[1, 2, 3]], [[1, 2, 3], [4, %s, 6]]]}", bad[i]);
        expect(text, &in, 400, "inputs[1][1][1]", "expected a number", NULL);
    }
}
END_TEST

START_TEST(test_value_not_representable_as_float32_is_400)
{
    rnn_info in = info_of(CFG_RNN, 2, 2, 1, 1);
    expect("{'inputs': [[[1, 1e39]]]}", &in, 400, "inputs[0][0][1]", "float32", NULL);
    expect("{'inputs': [[[-1e39, 0]]]}", &in, 400, "inputs[0][0][0]", "float32", NULL);
    /* the halfway point between FLT_MAX and 2^128 already rounds to infinity */
    expect("{'inputs': [[[3.4028235677973366e38, 0]]]}", &in, 400, "inputs[0][0][0]", NULL);
    expect("{'inputs': [[[0, 1e400]]]}", &in, 400, NULL);
    rnn_info big = info_of(CFG_RNN, 1, 1, 1, 1);
    expect("{'inputs': [[1, 2, 1e39]]}", &big, 400, "inputs[0][2]", "float32", NULL);
    expect("{'inputs': [[1]], 'h0': [[[1e39]]]}", &big, 400, "h0[0][0][0]", "float32", NULL);
}
END_TEST

START_TEST(test_duplicate_keys_are_400)
{
    rnn_info in = info_of(CFG_RNN, 1, 1, 1, 1);
    expect("{'inputs': [[1]], 'inputs': [[2]]}", &in, 400, "duplicate", NULL);
    expect("{'inputs': [[1]], 'precision': 3, 'precision': 3}", &in, 400, "duplicate", NULL);
}
END_TEST

START_TEST(test_deep_nesting_is_400_without_crashing)
{
    rnn_info in = info_of(CFG_RNN, 1, 1, 1, 1);
    const size_t depth = 100000;
    char *body = malloc(depth + 16);
    ck_assert_ptr_nonnull(body);
    memset(body, '[', depth);
    expect_raw(body, depth, &in, 400, NULL);
    memcpy(body, "{\"inputs\":", 10);
    expect_raw(body, depth, &in, 400, NULL);
    /* balanced, too: the depth alone is refused */
    free(body);
    body = malloc(2 * depth + 16);
    ck_assert_ptr_nonnull(body);
    size_t n = 0;
    n += (size_t)sprintf(body, "{\"inputs\":");
    memset(body + n, '[', depth);
    n += depth;
    memset(body + n, ']', depth);
    n += depth;
    body[n++] = '}';
    expect_raw(body, n, &in, 400, NULL);
    free(body);
}
END_TEST

START_TEST(test_h0_with_wrong_shape_is_named)
{
    rnn_info in = info_of(CFG_GRU, 1, 3, 2, 1); /* L*D = 2 rows of 3 per sequence */
    const char *seq = "[[1, 2, 3], [4, 5, 6]]";
    char text[512];
    expect("{'inputs': [[1], [2]], 'h0': {}}", &in, 400, "h0", "array", NULL);
    snprintf(text, sizeof text, "{'inputs': [[1], [2]], 'h0': [%s]}", seq);
    expect(text, &in, 400, "h0", "expected 2 entries", "got 1", NULL);
    snprintf(text, sizeof text, "{'inputs': [[1], [2]], 'h0': [%s, %s, %s]}", seq, seq, seq);
    expect(text, &in, 400, "h0", "got 3", NULL);
    snprintf(text, sizeof text, "{'inputs': [[1], [2]], 'h0': [%s, [[1, 2, 3]]]}", seq);
    expect(text, &in, 400, "h0[1]", "2 rows", "got 1", NULL);
    snprintf(text, sizeof text, "{'inputs': [[1], [2]], 'h0': [%s, 5]}", seq);
    expect(text, &in, 400, "h0[1]", NULL);
    snprintf(text, sizeof text, "{'inputs': [[1], [2]], 'h0': [%s, [[1, 2, 3], [4, 5]]]}", seq);
    expect(text, &in, 400, "h0[1][1]: expected 3 numbers, got 2", NULL);
    snprintf(text, sizeof text, "{'inputs': [[1], [2]], 'h0': [%s, [[1, 2, 3], 4]]}", seq);
    expect(text, &in, 400, "h0[1][1]", NULL);
    snprintf(text, sizeof text, "{'inputs': [[1], [2]], 'h0': [[[1, 'x', 3], [4, 5, 6]], %s]}",
             seq);
    expect(text, &in, 400, "h0[0][0][1]", "expected a number", NULL);
}
END_TEST

START_TEST(test_c0_on_a_non_lstm_model_is_400)
{
    rnn_info rnn = info_of(CFG_RNN, 1, 1, 1, 1), gru = info_of(CFG_GRU, 1, 1, 1, 1);
    expect("{'inputs': [[1]], 'c0': [[[0]]]}", &rnn, 400, "c0", NULL);
    expect("{'inputs': [[1]], 'c0': [[[0]]]}", &gru, 400, "c0", NULL);
}
END_TEST

START_TEST(test_c0_with_wrong_shape_is_named)
{
    rnn_info in = info_of(CFG_LSTM, 1, 2, 1, 2);
    expect("{'inputs': [[1]], 'c0': [[[0, 0]]]}", &in, 400, "c0[0]", "2 rows", NULL);
    expect("{'inputs': [[1]], 'c0': [[[0, 0], [0]]]}", &in, 400, "c0[0][1]", "got 1", NULL);
    expect("{'inputs': [[1]], 'h0': [[[0, 0], [0, 0]]], 'c0': []}", &in, 400, "c0", "got 0", NULL);
}
END_TEST

START_TEST(test_bad_return_values_are_400)
{
    rnn_info rnn = info_of(CFG_RNN, 1, 1, 1, 1), lstm = info_of(CFG_LSTM, 1, 1, 1, 1);
    expect("{'inputs': [[1]], 'return': 'outputs'}", &rnn, 400, "return", NULL);
    expect("{'inputs': [[1]], 'return': {}}", &rnn, 400, "return", NULL);
    expect("{'inputs': [[1]], 'return': null}", &rnn, 400, "return", NULL);
    expect("{'inputs': [[1]], 'return': ['cell']}", &rnn, 400, "return[0]", "cell", NULL);
    expect("{'inputs': [[1]], 'return': ['hidden', 'outputz']}", &lstm, 400, "return[1]", "outputz",
           NULL);
    expect("{'inputs': [[1]], 'return': [1]}", &lstm, 400, "return[0]", NULL);
    expect("{'inputs': [[1]], 'return': ['Hidden']}", &lstm, 400, "return[0]", NULL);
}
END_TEST

START_TEST(test_bad_precision_is_400)
{
    rnn_info in = info_of(CFG_RNN, 1, 1, 1, 1);
    static const char *const bad[] = {"0", "10", "-1", "2.5", "'3'", "true", "null", "[3]", "1e9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "{'inputs': [[1]], 'precision': %s}", bad[i]);
        expect(text, &in, 400, "precision", NULL);
    }
}
END_TEST

/* ---- encoding -------------------------------------------------------------------------------- */

/* A ragged request on an rnn with I=1, H=2: lengths 2, 0, 1. */
static const char *const RAGGED = "{'inputs': [[1, 2], [], [3]]}";

START_TEST(test_response_shape_for_a_ragged_batch)
{
    rnn_info in = info_of(CFG_RNN, 1, 2, 1, 1);
    codec_request *r = decode_ok(RAGGED, &in);
    float outputs[] = {0.5f, -1.25f, 2, 3, 1e-7f, -4e20f};
    float hidden[] = {2, 3, 0, 0, 1e-7f, -4e20f};
    rnn_result res = {outputs, hidden, NULL};
    char *out = NULL;
    size_t len = 0;
    codec_error e = {0, ""};
    ck_assert_msg(codec_encode_response("m", &in, r, &res, &out, &len, &e) == 0, "%s", e.message);
    ck_assert_msg(strncmp(out, "{\"model\":\"m\",", 13) == 0, "model is not first: %.*s", (int)len,
                  out);
    json_t *v = parse(out, len);
    ck_assert_uint_eq(json_object_size(v), 3);
    ck_assert_str_eq(json_string_value(json_object_get(v, "model")), "m");
    json_t *o = json_object_get(v, "outputs"), *h = json_object_get(v, "hidden");
    ck_assert_uint_eq(json_array_size(o), 3);
    ck_assert_uint_eq(json_array_size(json_array_get(o, 0)), 2);
    ck_assert_uint_eq(json_array_size(json_array_get(o, 1)), 0);
    ck_assert_uint_eq(json_array_size(json_array_get(o, 2)), 1);
    ck_assert_uint_eq(json_array_size(h), 3);
    size_t k = 0;
    for (size_t i = 0; i < 3; i++)
        for (size_t t = 0; t < json_array_size(json_array_get(o, i)); t++) {
            json_t *row = json_array_get(json_array_get(o, i), t);
            ck_assert_uint_eq(json_array_size(row), 2);
            for (size_t j = 0; j < 2; j++, k++)
                ck_assert((float)json_number_value(json_array_get(row, j)) == outputs[k]);
        }
    for (size_t i = 0; i < 3; i++) {
        json_t *rows = json_array_get(h, i);
        ck_assert_uint_eq(json_array_size(rows), 1);
        for (size_t j = 0; j < 2; j++)
            ck_assert((float)json_number_value(json_array_get(json_array_get(rows, 0), j)) ==
                      hidden[i * 2 + j]);
    }
    json_decref(v);
    free(out);
    codec_request_free(r);
}
END_TEST

START_TEST(test_lstm_response_has_cell_and_others_do_not)
{
    static const cfg_type types[] = {CFG_RNN, CFG_GRU, CFG_LSTM};
    for (size_t k = 0; k < 3; k++) {
        rnn_info in = info_of(types[k], 1, 2, 1, 1);
        codec_request *r = decode_ok(RAGGED, &in);
        float outputs[6] = {0}, hidden[6] = {0}, cell[6] = {0};
        rnn_result res = {outputs, hidden, types[k] == CFG_LSTM ? cell : NULL};
        char *out = NULL;
        size_t len = 0;
        codec_error e = {0, ""};
        ck_assert_msg(codec_encode_response("m", &in, r, &res, &out, &len, &e) == 0, "%s",
                      e.message);
        json_t *v = parse(out, len);
        int lstm = types[k] == CFG_LSTM;
        ck_assert_uint_eq(json_object_size(v), lstm ? 4 : 3);
        ck_assert_int_eq(json_object_get(v, "cell") != NULL, lstm);
        /* parts in the order the spec lists them */
        char *text = cstr(out, len);
        const char *pm = strstr(text, "\"model\""), *po = strstr(text, "\"outputs\""),
                   *ph = strstr(text, "\"hidden\"");
        ck_assert(pm && po && ph && pm < po && po < ph);
        if (lstm)
            ck_assert(strstr(text, "\"cell\"") > ph);
        free(text);
        json_decref(v);
        free(out);
        codec_request_free(r);
    }
}
END_TEST

START_TEST(test_return_subset_leaves_parts_out)
{
    rnn_info in = info_of(CFG_LSTM, 1, 2, 1, 1);
    codec_request *r = decode_ok("{'inputs': [[1, 2], [], [3]], 'return': ['cell']}", &in);
    float outputs[6] = {0}, hidden[6] = {0}, cell[6] = {1, 2, 3, 4, 5, 6};
    rnn_result res = {outputs, hidden, cell};
    char *out = NULL;
    size_t len = 0;
    codec_error e = {0, ""};
    ck_assert_msg(codec_encode_response("m", &in, r, &res, &out, &len, &e) == 0, "%s", e.message);
    json_t *v = parse(out, len);
    ck_assert_uint_eq(json_object_size(v), 2);
    ck_assert_ptr_nonnull(json_object_get(v, "model"));
    ck_assert_uint_eq(json_array_size(json_object_get(v, "cell")), 3);
    json_decref(v);
    free(out);
    codec_request_free(r);
}
END_TEST

START_TEST(test_precision_rounds_printed_values)
{
    rnn_info in = info_of(CFG_RNN, 1, 3, 1, 1);
    const float vals[] = {0.123456789f, -2.71828183f, 123456.789f, 9.99999e-8f, 1.0f, 0.5f};
    for (int p = 1; p <= 9; p++) {
        char text[96];
        snprintf(text, sizeof text, "{'inputs': [[1, 2]], 'precision': %d}", p);
        codec_request *r = decode_ok(text, &in);
        float hidden[3] = {vals[3], vals[4], vals[5]};
        rnn_result res = {(float *)vals, hidden, NULL};
        char *out = NULL;
        size_t len = 0;
        codec_error e = {0, ""};
        ck_assert_msg(codec_encode_response("m", &in, r, &res, &out, &len, &e) == 0, "%s",
                      e.message);
        json_t *v = parse(out, len);
        json_t *o = json_object_get(v, "outputs");
        for (size_t k = 0; k < 6; k++) {
            json_t *num = json_array_get(json_array_get(json_array_get(o, 0), k / 3), k % 3);
            char want[64];
            snprintf(want, sizeof want, "%.*g", p, (double)vals[k]);
            float w = strtof(want, NULL);
            if (p == 9)
                w = vals[k]; /* 9 digits: the exact float back */
            ck_assert_msg((float)json_number_value(num) == w,
                          "precision %d: %.9g printed as %.9g, not %.9g", p, (double)vals[k],
                          json_number_value(num), (double)w);
        }
        if (p == 3) {
            char *text = cstr(out, len);
            ck_assert_msg(strstr(text, "0.123,") && !strstr(text, "0.1234"), "%s", text);
            free(text);
        }
        json_decref(v);
        free(out);
        codec_request_free(r);
    }
}
END_TEST

/* Encodes RAGGED's result on a model of TYPE with one non-finite value planted; expects 422
 * naming PATH. */
static void expect_non_finite(cfg_type type, float *outputs, float *hidden, float *cell,
                              const char *path)
{
    rnn_info in = info_of(type, 1, 2, 1, 1);
    codec_request *r = decode_ok(RAGGED, &in);
    rnn_result res = {outputs, hidden, cell};
    char *out = (char *)&out;
    size_t len = 0;
    codec_error e = {0, ""};
    ck_assert_int_eq(codec_encode_response("m", &in, r, &res, &out, &len, &e), -1);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(e.status, 422);
    ck_assert_msg(strstr(e.message, path), "message lacks %s: %s", path, e.message);
    codec_request_free(r);
}

START_TEST(test_non_finite_value_is_422_naming_its_path)
{
    float o[6] = {0}, h[6] = {0}, c[6] = {0};
    o[5] = INFINITY; /* sequence 2, step 0, unit 1 (sequence 1 is empty) */
    expect_non_finite(CFG_RNN, o, h, NULL, "outputs[2][0][1]");
    o[5] = 0;
    h[2] = NAN; /* sequence 1's final state: the zero-length sequence */
    expect_non_finite(CFG_GRU, o, h, NULL, "hidden[1][0][0]");
    h[2] = 0;
    c[1] = -INFINITY;
    expect_non_finite(CFG_LSTM, o, h, c, "cell[0][0][1]");
}
END_TEST

START_TEST(test_error_body_escapes_and_parses_back)
{
    static const char *const msgs[] = {
        "inputs[2][5]: expected 3 numbers, got 2",
        "say \"hi\"",
        "back\\slash \\\" \\n",
        "line\nbreak\ttab\r\x01\x1f\x7f end",
        "caf\xc3\xa9 \xe2\x9c\x93",
        "</script>",
        "",
    };
    static const int statuses[] = {400, 404, 405, 413, 422, 500, 503};
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        size_t len = 0;
        int status = statuses[i % (sizeof statuses / sizeof statuses[0])];
        char *out = codec_encode_error(status, msgs[i], &len);
        ck_assert_ptr_nonnull(out);
        ck_assert_uint_eq(len, strlen(out));
        json_t *v = parse(out, len);
        ck_assert_uint_eq(json_object_size(v), 1);
        json_t *err = json_object_get(v, "error");
        ck_assert_uint_eq(json_object_size(err), 2);
        ck_assert(json_is_integer(json_object_get(err, "status")));
        ck_assert_int_eq(json_integer_value(json_object_get(err, "status")), status);
        ck_assert_str_eq(json_string_value(json_object_get(err, "message")), msgs[i]);
        for (const char *p = out; *p; p++)
            ck_assert_msg((unsigned char)*p >= 0x20, "raw control character in %s", out);
        json_decref(v);
        free(out);
    }
    char *out = codec_encode_error(400, "x", NULL);
    ck_assert_ptr_nonnull(out);
    free(out);
}
END_TEST

/* ---- codec_forward ------------------------------------------------------------------------- */

#define MAX_CASES 128
static char g_cases[MAX_CASES][64];
static int g_ncases;

/* Reads tests/fixtures/cases/MANIFEST: one case per line, blank lines and # comments skipped. */
static void read_manifest(void)
{
    char *text = tu_read_file(tu_fixture("cases/MANIFEST"), NULL);
    if (!text)
        return;
    for (char *line = strtok(text, "\n"); line && g_ncases < MAX_CASES; line = strtok(NULL, "\n")) {
        line += strspn(line, " \t\r");
        line[strcspn(line, " \t\r#")] = '\0';
        if (*line)
            snprintf(g_cases[g_ncases++], sizeof g_cases[0], "%s", line);
    }
    free(text);
}

START_TEST(test_manifest_lists_cases)
{
    ck_assert_msg(g_ncases > 0, "no cases read from %s", tu_fixture("cases/MANIFEST"));
}
END_TEST

static char *case_file(const char *c, const char *file)
{
    char rel[256];
    snprintf(rel, sizeof rel, "cases/%s/%s", c, file);
    return strdup(tu_fixture(rel));
}

START_TEST(test_forward_matches_pytorch_fixture)
{
    const char *c = g_cases[_i];
    char err[ERRLEN], *cfg_path = case_file(c, "config.json");
    char *req_path = case_file(c, "request.json"), *exp_path = case_file(c, "expected.json");
    cfg_config *cfg = NULL;
    rnn_model *m = NULL;
    ck_assert_msg(cfg_load_file(cfg_path, &cfg, err, sizeof err) == 0, "%s: %s", c, err);
    ck_assert_msg(rnn_model_load(&cfg->models[0], &m, err, sizeof err) == 0, "%s: %s", c, err);
    size_t len = 0, rlen = 0, elen = 0;
    char *body = tu_read_file(req_path, &len), *want = tu_read_file(exp_path, &elen);
    ck_assert_msg(body && want, "%s: cannot read request.json or expected.json", c);

    codec_limits lim = {(size_t)cfg->server.max_batch, (size_t)cfg->server.max_steps};
    char *resp = NULL;
    codec_stats st;
    int status = codec_forward(m, body, len, &lim, &resp, &rlen, &st);
    ck_assert_ptr_nonnull(resp);
    ck_assert_msg(status == 200, "%s: status %d: %.*s", c, status, (int)rlen, resp);

    json_t *got = parse(resp, rlen), *exp = parse(want, elen);
    char path[512] = "", msg[ERRLEN] = "";
    ck_assert_msg(json_close(exp, got, 1e-5, path, sizeof path, msg, sizeof msg), "%s: %s", c, msg);

    /* unidirectional: the last output row is the top layer's final hidden state */
    const rnn_info *in = rnn_model_info(m);
    json_t *o = json_object_get(got, "outputs"), *h = json_object_get(got, "hidden");
    ck_assert_uint_eq(st.sequences, json_array_size(o));
    for (size_t i = 0; in->num_directions == 1 && i < json_array_size(o); i++) {
        json_t *seq = json_array_get(o, i);
        size_t T = json_array_size(seq);
        if (T == 0)
            continue;
        json_t *last = json_array_get(seq, T - 1);
        json_t *top = json_array_get(json_array_get(h, i), (size_t)in->num_layers - 1);
        for (size_t k = 0; k < (size_t)in->hidden_size; k++)
            ck_assert_msg(json_number_value(json_array_get(last, k)) ==
                              json_number_value(json_array_get(top, k)),
                          "%s: outputs[%zu][%zu] differs from hidden[%zu][%d]", c, i, T - 1, i,
                          in->num_layers - 1);
    }
    json_decref(got);
    json_decref(exp);
    free(resp);
    free(body);
    free(want);
    rnn_model_free(m);
    cfg_free(cfg);
    free(cfg_path);
    free(req_path);
    free(exp_path);
}
END_TEST

START_TEST(test_zero_length_sequence_returns_h0_as_hidden)
{
    rnn_model *m = model_from(SMALL_RNN);
    json_t *v;
    ck_assert_int_eq(
        forward(m, "{'inputs': [[0.5, 1], []], 'h0': [[[0.1, 0.2]], [[0.3, -0.4]]]}", &v, NULL),
        200);
    json_t *o1 = json_array_get(json_object_get(v, "outputs"), 1);
    ck_assert(json_is_array(o1) && json_array_size(o1) == 0);
    json_t *h1 = json_array_get(json_array_get(json_object_get(v, "hidden"), 1), 0);
    ck_assert_uint_eq(json_array_size(h1), 2);
    ck_assert((float)json_number_value(json_array_get(h1, 0)) == 0.3f);
    ck_assert((float)json_number_value(json_array_get(h1, 1)) == -0.4f);
    json_decref(v);

    /* without h0: zeros, and a batch of only empty sequences works too */
    ck_assert_int_eq(forward(m, "{'inputs': [[], []]}", &v, NULL), 200);
    json_t *want = json_loads("{\"model\": \"small\", \"outputs\": [[], []],"
                              " \"hidden\": [[[0, 0]], [[0, 0]]]}",
                              0, NULL);
    char path[256] = "", msg[ERRLEN] = "";
    ck_assert_msg(json_close(want, v, 0, path, sizeof path, msg, sizeof msg), "%s", msg);
    json_decref(want);
    json_decref(v);
    rnn_model_free(m);
}
END_TEST

START_TEST(test_zero_length_lstm_sequence_returns_h0_and_c0)
{
    /* lstm_h0c0: bidirectional, with a zero-length sequence at index 2 and both states given */
    char err[ERRLEN], *cfg_path = case_file("lstm_h0c0", "config.json");
    char *req_path = case_file("lstm_h0c0", "request.json");
    cfg_config *cfg = NULL;
    rnn_model *m = NULL;
    ck_assert_msg(cfg_load_file(cfg_path, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(rnn_model_load(&cfg->models[0], &m, err, sizeof err) == 0, "%s", err);
    size_t len = 0, rlen = 0;
    char *body = tu_read_file(req_path, &len), *resp = NULL;
    ck_assert_ptr_nonnull(body);
    ck_assert_int_eq(codec_forward(m, body, len, &LIM, &resp, &rlen, NULL), 200);
    json_t *req = parse(body, len), *v = parse(resp, rlen);
    ck_assert_uint_eq(json_array_size(json_array_get(json_object_get(v, "outputs"), 2)), 0);
    static const char *const pairs[][2] = {{"h0", "hidden"}, {"c0", "cell"}};
    for (size_t p = 0; p < 2; p++) {
        json_t *given = json_array_get(json_object_get(req, pairs[p][0]), 2);
        json_t *back = json_array_get(json_object_get(v, pairs[p][1]), 2);
        ck_assert_uint_eq(json_array_size(given), json_array_size(back));
        for (size_t r = 0; r < json_array_size(given); r++)
            for (size_t k = 0; k < json_array_size(json_array_get(given, r)); k++)
                ck_assert_msg(
                    (float)json_number_value(json_array_get(json_array_get(given, r), k)) ==
                        (float)json_number_value(json_array_get(json_array_get(back, r), k)),
                    "%s[2][%zu][%zu] is not %s[2][%zu][%zu]", pairs[p][1], r, k, pairs[p][0], r, k);
    }
    json_decref(req);
    json_decref(v);
    free(resp);
    free(body);
    rnn_model_free(m);
    cfg_free(cfg);
    free(cfg_path);
    free(req_path);
}
END_TEST

START_TEST(test_forward_counts_sequences_and_steps)
{
    rnn_model *m = model_from(SMALL_RNN);
    json_t *v;
    codec_stats st = {99, 99};
    ck_assert_int_eq(forward(m, "{'inputs': [[1, 2], [], [3]], 'return': ['hidden']}", &v, &st),
                     200);
    ck_assert_uint_eq(st.sequences, 3);
    ck_assert_uint_eq(st.steps, 3);
    ck_assert_ptr_null(json_object_get(v, "outputs"));
    ck_assert_uint_eq(json_array_size(json_object_get(v, "hidden")), 3);
    json_decref(v);
    rnn_model_free(m);
}
END_TEST

START_TEST(test_forward_answers_errors_with_status_and_error_body)
{
    rnn_model *m = model_from(SMALL_RNN);
    static const struct {
        const char *body;
        int status;
        const char *needle;
    } cases[] = {
        {"{'inputs': [[1], [[1, 2]]]}", 400, "inputs[1][0]"},
        {"{'inputs': 'x'}", 400, "inputs"},
        {"{'inputs': [[1]], 'c0': [[[0, 0]]]}", 400, "c0"},
        {"{", 400, "malformed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v;
        codec_stats st = {99, 99};
        int status = forward(m, cases[i].body, &v, &st);
        ck_assert_int_eq(status, cases[i].status);
        json_t *err = json_object_get(v, "error");
        ck_assert_ptr_nonnull(err);
        ck_assert_int_eq(json_integer_value(json_object_get(err, "status")), status);
        const char *msg = json_string_value(json_object_get(err, "message"));
        ck_assert_msg(msg && strstr(msg, cases[i].needle), "%s: %s", cases[i].body, msg);
        ck_assert_uint_eq(st.sequences, 0);
        json_decref(v);
    }

    /* over the limits: 413 */
    char *resp = NULL;
    size_t rlen = 0;
    codec_limits lim = {1, 2};
    const char *body = "{\"inputs\": [[1], [2]]}";
    ck_assert_int_eq(codec_forward(m, body, strlen(body), &lim, &resp, &rlen, NULL), 413);
    json_t *v = parse(resp, rlen);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(v, "error"), "status")),
                     413);
    json_decref(v);
    free(resp);
    rnn_model_free(m);
}
END_TEST

START_TEST(test_diverging_relu_model_is_422)
{
    rnn_model *m =
        model_from("{'models': [{'name': 'boom', 'type': 'rnn', 'input_size': 1,"
                   " 'hidden_size': 1, 'nonlinearity': 'relu', 'bias': false,"
                   " 'weights': {'weight_ih_l0': [[3e38]], 'weight_hh_l0': [[3e38]]}}]}");
    json_t *v;
    ck_assert_int_eq(forward(m, "{'inputs': [[0.5], [10, 1]]}", &v, NULL), 422);
    json_t *err = json_object_get(v, "error");
    ck_assert_int_eq(json_integer_value(json_object_get(err, "status")), 422);
    const char *msg = json_string_value(json_object_get(err, "message"));
    ck_assert_msg(msg && strstr(msg, "outputs[1][0][0]"), "%s", msg);
    json_decref(v);
    rnn_model_free(m);
}
END_TEST

/* ---- suites -------------------------------------------------------------------------------- */

static Suite *decode_suite(void)
{
    Suite *s = suite_create("decode");
    TCase *ok = tcase_create("accepts");
    tcase_add_test(ok, test_nested_arrays_decode_into_a_flat_batch);
    tcase_add_test(ok, test_bare_numbers_are_steps_when_input_size_is_1);
    tcase_add_test(ok, test_integers_and_exponents_decode_as_float32);
    tcase_add_test(ok, test_float32_extremes_are_accepted);
    tcase_add_test(ok, test_h0_and_c0_rows_follow_pytorch_layout);
    tcase_add_test(ok, test_null_h0_and_c0_mean_zeros);
    tcase_add_test(ok, test_all_empty_sequences_decode);
    tcase_add_test(ok, test_return_selects_parts);
    tcase_add_loop_test(ok, test_precision_1_to_9_is_accepted, 1, 10);
    tcase_add_test(ok, test_limits_are_inclusive);
    suite_add_tcase(s, ok);

    TCase *bad = tcase_create("rejects");
    tcase_add_test(bad, test_bare_number_step_is_rejected_when_input_size_is_not_1);
    tcase_add_test(bad, test_malformed_json_is_400_with_its_position);
    tcase_add_test(bad, test_empty_body_is_400);
    tcase_add_test(bad, test_body_that_is_not_an_object_is_400);
    tcase_add_test(bad, test_unknown_field_is_400_and_named);
    tcase_add_test(bad, test_missing_inputs_is_400);
    tcase_add_test(bad, test_inputs_not_an_array_is_400);
    tcase_add_test(bad, test_empty_inputs_is_400);
    tcase_add_test(bad, test_more_than_max_batch_sequences_is_413);
    tcase_add_test(bad, test_sequence_over_max_steps_is_413);
    tcase_add_test(bad, test_step_with_wrong_width_names_its_path);
    tcase_add_test(bad, test_sequence_not_an_array_is_named);
    tcase_add_test(bad, test_non_number_value_names_its_path);
    tcase_add_test(bad, test_value_not_representable_as_float32_is_400);
    tcase_add_test(bad, test_duplicate_keys_are_400);
    tcase_add_test(bad, test_deep_nesting_is_400_without_crashing);
    tcase_add_test(bad, test_h0_with_wrong_shape_is_named);
    tcase_add_test(bad, test_c0_on_a_non_lstm_model_is_400);
    tcase_add_test(bad, test_c0_with_wrong_shape_is_named);
    tcase_add_test(bad, test_bad_return_values_are_400);
    tcase_add_test(bad, test_bad_precision_is_400);
    suite_add_tcase(s, bad);
    return s;
}

static Suite *encode_suite(void)
{
    Suite *s = suite_create("encode");
    TCase *tc = tcase_create("response");
    tcase_add_test(tc, test_response_shape_for_a_ragged_batch);
    tcase_add_test(tc, test_lstm_response_has_cell_and_others_do_not);
    tcase_add_test(tc, test_return_subset_leaves_parts_out);
    tcase_add_test(tc, test_precision_rounds_printed_values);
    tcase_add_test(tc, test_non_finite_value_is_422_naming_its_path);
    tcase_add_test(tc, test_error_body_escapes_and_parses_back);
    suite_add_tcase(s, tc);
    return s;
}

static Suite *forward_suite(void)
{
    Suite *s = suite_create("forward");
    TCase *fx = tcase_create("fixtures");
    tcase_set_timeout(fx, 30);
    tcase_add_test(fx, test_manifest_lists_cases);
    tcase_add_loop_test(fx, test_forward_matches_pytorch_fixture, 0, g_ncases);
    suite_add_tcase(s, fx);

    TCase *tc = tcase_create("end_to_end");
    tcase_add_test(tc, test_zero_length_sequence_returns_h0_as_hidden);
    tcase_add_test(tc, test_zero_length_lstm_sequence_returns_h0_and_c0);
    tcase_add_test(tc, test_forward_counts_sequences_and_steps);
    tcase_add_test(tc, test_forward_answers_errors_with_status_and_error_body);
    tcase_add_test(tc, test_diverging_relu_model_is_422);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    read_manifest();
    SRunner *sr = srunner_create(decode_suite());
    srunner_add_suite(sr, encode_suite());
    srunner_add_suite(sr, forward_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
