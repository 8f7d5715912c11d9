/* test_codec.c - Check suites for src/codec.c: request decoding (every error with its exact status
 * and the JSON path it names), response and error encoding (parsed back with jansson), and
 * api_forward (v1) end to end on every PyTorch fixture in tests/fixtures/cases/MANIFEST. */
#include "rnnserve/api.h"
#include "../src/wire.h"
#include "rnnserve/config.h"
#include "rnnserve/engine.h"
#include "rnnserve/floatfmt.h"
#include "rnnserve/model.h"
#include "testutil.h"

#include <check.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define ERRLEN 1024

static const api_limits LIM = {1024, 100000};
/* Under valgrind (make valgrind) the sweeps run a fifth of their iterations: memcheck learns
 * nothing new from the rest, and CI's time is shared. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define SWEEP_DIVISOR (RUNNING_ON_VALGRIND ? 5 : 1)
#endif
#endif
#ifndef SWEEP_DIVISOR
#define SWEEP_DIVISOR 1
#endif
/* Requests the differential suite compares (a quarter of them mutated). */
#define DIFF_REQUESTS 60000

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
static rnn_info info_of(rnn_cell_type type, int I, int H, int L, int D)
{
    rnn_info in = {.name = "m",
                   .type = type,
                   .nonlinearity = RNN_TANH,
                   .input_size = I,
                   .hidden_size = H,
                   .num_layers = L,
                   .num_directions = D,
                   .gates = type == RNN_CELL_LSTM  ? 4
                            : type == RNN_CELL_GRU ? 3
                                                   : 1,
                   .bias = true};
    return in;
}

static wire_v1_request *decode_ok_lim(const char *text, const rnn_info *in, const api_limits *lim)
{
    char *body = dq(text);
    wire_v1_request *r = NULL;
    wire_error e = {0, ""};
    int rc = wire_v1_decode(body, strlen(body), in, lim, &r, &e);
    ck_assert_msg(rc == 0, "decode failed (%d): %s, for %s", e.status, e.message, body);
    ck_assert_ptr_nonnull(r);
    free(body);
    return r;
}

static wire_v1_request *decode_ok(const char *text, const rnn_info *in)
{
    return decode_ok_lim(text, in, &LIM);
}

/* Asserts that BODY[LEN] fails to decode with STATUS, *out NULL, and a message holding every
 * NEEDLE (a NULL-terminated va_list). */
static void vexpect_raw(const char *body, size_t len, const rnn_info *in, const api_limits *lim,
                        int status, va_list ap)
{
    wire_v1_request *r = (wire_v1_request *)&r; /* not NULL, to see decode clear it */
    wire_error e = {0, ""};
    ck_assert_int_eq(wire_v1_decode(body, len, in, lim, &r, &e), -1);
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
static void expect_lim(const char *text, const rnn_info *in, const api_limits *lim, int status, ...)
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

/* Runs TEXT (JSON with ' for ") through api_forward (v1); returns the status, *out the parsed body.
 */
static int forward(const rnn_model *m, const char *text, json_t **out, api_stats *stats)
{
    char *body = dq(text), *resp = NULL;
    size_t rlen = 0;
    int status = api_forward(api_wire_v1(), m, body, strlen(body), &LIM, &resp, &rlen, stats);
    ck_assert_ptr_nonnull(resp);
    *out = parse(resp, rlen);
    free(resp);
    free(body);
    return status;
}

/* ---- decoding: what is accepted ------------------------------------------------------------- */

START_TEST(test_nested_arrays_decode_into_a_flat_batch)
{
    rnn_info in = info_of(RNN_CELL_RNN, 3, 2, 1, 1);
    wire_v1_request *r = decode_ok("{'inputs': [[[1, 2, 3], [4, 5, 6]], [], [[7, 8, 9.5]]]}", &in);
    const rnn_batch *b = wire_v1_batch(r);
    ck_assert_uint_eq(b->batch, 3);
    ck_assert_int_eq(b->lengths[0], 2);
    ck_assert_int_eq(b->lengths[1], 0);
    ck_assert_int_eq(b->lengths[2], 1);
    const float want[] = {1, 2, 3, 4, 5, 6, 7, 8, 9.5f};
    for (size_t i = 0; i < 9; i++)
        ck_assert_msg(b->x[i] == want[i], "x[%zu] = %g", i, (double)b->x[i]);
    ck_assert_ptr_null(b->h0);
    ck_assert_ptr_null(b->c0);
    ck_assert_uint_eq(wire_v1_steps(r), 3);
    ck_assert_uint_eq(wire_v1_parts(r), WIRE_OUTPUTS | WIRE_HIDDEN);
    ck_assert_int_eq(wire_v1_precision(r), 9);
    wire_v1_free(r);
    wire_v1_free(NULL);
}
END_TEST

START_TEST(test_bare_numbers_are_steps_when_input_size_is_1)
{
    rnn_info in = info_of(RNN_CELL_GRU, 1, 2, 1, 1);
    wire_v1_request *r = decode_ok("{'inputs': [[1, [2], -3.5], [0.25]]}", &in);
    const rnn_batch *b = wire_v1_batch(r);
    ck_assert_uint_eq(b->batch, 2);
    ck_assert_int_eq(b->lengths[0], 3);
    ck_assert_int_eq(b->lengths[1], 1);
    ck_assert(b->x[0] == 1.0f && b->x[1] == 2.0f && b->x[2] == -3.5f && b->x[3] == 0.25f);
    wire_v1_free(r);
}
END_TEST

START_TEST(test_bare_number_step_is_rejected_when_input_size_is_not_1)
{
    rnn_info in = info_of(RNN_CELL_RNN, 2, 2, 1, 1);
    expect("{'inputs': [[[1, 2], 3]]}", &in, 400, "inputs[0][1]", "2 numbers", NULL);
    rnn_info one = info_of(RNN_CELL_RNN, 1, 2, 1, 1);
    expect("{'inputs': [[1, 'x']]}", &one, 400, "inputs[0][1]", NULL);
    expect("{'inputs': [[[1, 2]]]}", &one, 400, "inputs[0][0]", "got 2", NULL);
}
END_TEST

START_TEST(test_integers_and_exponents_decode_as_float32)
{
    rnn_info in = info_of(RNN_CELL_RNN, 1, 1, 1, 1);
    wire_v1_request *r = decode_ok("{'inputs': [[0, -0, 7, -12, 1e-3, 2.5E+2, -4e-1, 1E2, -0.0,"
                                   " 12345678901234567890, 1e-40]]}",
                                   &in);
    const rnn_batch *b = wire_v1_batch(r);
    const float want[] = {
        0, -0.0f, 7, -12, 1e-3f, 250, -0.4f, 100, -0.0f, 1.2345678901234567890e19f, 1e-40f};
    ck_assert_int_eq(b->lengths[0], 11);
    for (size_t i = 0; i < 11; i++)
        ck_assert_msg(b->x[i] == want[i], "x[%zu] = %.9g, not %.9g", i, (double)b->x[i],
                      (double)want[i]);
    ck_assert(signbit(b->x[8]));
    wire_v1_free(r);
}
END_TEST

START_TEST(test_float32_extremes_are_accepted)
{
    /* FLT_MAX exactly, and its shortest decimal form, which lies above it but rounds to it */
    rnn_info in = info_of(RNN_CELL_RNN, 1, 1, 1, 1);
    wire_v1_request *r = decode_ok("{'inputs': [[340282346638528859811704183484516925440,"
                                   " 3.4028235e38, -3.40282347e+38, 1.17549435e-38, 1e-45,"
                                   " 340282356779733661637539395458142568447,"
                                   " 3.4028235677973366e38]]}",
                                   &in);
    const rnn_batch *b = wire_v1_batch(r);
    ck_assert(b->x[0] == FLT_MAX);
    ck_assert(b->x[1] == FLT_MAX);
    ck_assert(b->x[2] == -FLT_MAX);
    ck_assert(b->x[3] == FLT_MIN);
    ck_assert(b->x[4] > 0);
    /* Just below the halfway point to 2^128: FLT_MAX, as strtof reads it. The second is the
     * double nearest that point; reading through a double rounded it up to the point and then
     * to infinity (a 400 before this decoder). */
    ck_assert(b->x[5] == FLT_MAX);
    ck_assert(b->x[6] == FLT_MAX);
    wire_v1_free(r);
}
END_TEST

START_TEST(test_h0_and_c0_rows_follow_pytorch_layout)
{
    /* L=2, D=2: four rows per sequence, h_n order (l0 fwd, l0 bwd, l1 fwd, l1 bwd) */
    rnn_info in = info_of(RNN_CELL_LSTM, 1, 2, 2, 2);
    wire_v1_request *r = decode_ok("{'inputs': [[1], [2, 3]],"
                                   " 'h0': [[[0, 1], [2, 3], [4, 5], [6, 7]],"
                                   "        [[8, 9], [10, 11], [12, 13], [14, 15]]],"
                                   " 'c0': [[[-0, -1], [-2, -3], [-4, -5], [-6, -7]],"
                                   "        [[-8, -9], [-10, -11], [-12, -13], [-14, -15]]]}",
                                   &in);
    const rnn_batch *b = wire_v1_batch(r);
    ck_assert_ptr_nonnull(b->h0);
    ck_assert_ptr_nonnull(b->c0);
    for (size_t i = 0; i < 16; i++) {
        ck_assert_msg(b->h0[i] == (float)i, "h0[%zu] = %g", i, (double)b->h0[i]);
        ck_assert_msg(b->c0[i] == -(float)i, "c0[%zu] = %g", i, (double)b->c0[i]);
    }
    ck_assert_uint_eq(wire_v1_parts(r), WIRE_OUTPUTS | WIRE_HIDDEN | WIRE_CELL);
    wire_v1_free(r);
}
END_TEST

START_TEST(test_null_h0_and_c0_mean_zeros)
{
    rnn_info in = info_of(RNN_CELL_LSTM, 1, 2, 1, 1);
    wire_v1_request *r = decode_ok("{'inputs': [[1]], 'h0': null, 'c0': null}", &in);
    ck_assert_ptr_null(wire_v1_batch(r)->h0);
    ck_assert_ptr_null(wire_v1_batch(r)->c0);
    wire_v1_free(r);
}
END_TEST

START_TEST(test_all_empty_sequences_decode)
{
    rnn_info in = info_of(RNN_CELL_RNN, 3, 2, 1, 1);
    wire_v1_request *r = decode_ok("{'inputs': [[], []]}", &in);
    ck_assert_uint_eq(wire_v1_batch(r)->batch, 2);
    ck_assert_uint_eq(wire_v1_steps(r), 0);
    wire_v1_free(r);
}
END_TEST

START_TEST(test_return_selects_parts)
{
    rnn_info rnn = info_of(RNN_CELL_RNN, 1, 1, 1, 1), lstm = info_of(RNN_CELL_LSTM, 1, 1, 1, 1);
    static const struct {
        const char *ret;
        int lstm;
        unsigned parts;
    } cases[] = {
        {"['hidden']", 0, WIRE_HIDDEN},
        {"['outputs']", 0, WIRE_OUTPUTS},
        {"['hidden', 'outputs']", 0, WIRE_OUTPUTS | WIRE_HIDDEN},
        {"['hidden', 'hidden']", 0, WIRE_HIDDEN},
        {"['cell']", 1, WIRE_CELL},
        {"['cell', 'outputs']", 1, WIRE_CELL | WIRE_OUTPUTS},
        {"['outputs', 'hidden', 'cell']", 1, WIRE_OUTPUTS | WIRE_HIDDEN | WIRE_CELL},
        {"[]", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "{'inputs': [[1]], 'return': %s}", cases[i].ret);
        wire_v1_request *r = decode_ok(text, cases[i].lstm ? &lstm : &rnn);
        ck_assert_msg(wire_v1_parts(r) == cases[i].parts, "%s: parts %u", cases[i].ret,
                      wire_v1_parts(r));
        wire_v1_free(r);
    }
}
END_TEST

START_TEST(test_precision_1_to_9_is_accepted)
{
    rnn_info in = info_of(RNN_CELL_RNN, 1, 1, 1, 1);
    char text[128];
    snprintf(text, sizeof text, "{'inputs': [[1]], 'precision': %d}", _i);
    wire_v1_request *r = decode_ok(text, &in);
    ck_assert_int_eq(wire_v1_precision(r), _i);
    wire_v1_free(r);
    snprintf(text, sizeof text, "{'inputs': [[1]], 'precision': %d.0}", _i);
    r = decode_ok(text, &in);
    ck_assert_int_eq(wire_v1_precision(r), _i);
    wire_v1_free(r);
}
END_TEST

START_TEST(test_limits_are_inclusive)
{
    rnn_info in = info_of(RNN_CELL_RNN, 1, 1, 1, 1);
    api_limits lim = {2, 3};
    wire_v1_request *r = decode_ok_lim("{'inputs': [[1, 2, 3], [4, 5, 6]]}", &in, &lim);
    ck_assert_uint_eq(wire_v1_steps(r), 6);
    wire_v1_free(r);
}
END_TEST

START_TEST(test_a_16_mib_body_costs_little_more_than_its_floats)
{
    /* The decoder keeps 4 bytes a number and no DOM: peak RSS grows by about the floats
     * (jansson's tree cost ~60 MB here). Rows of 32 shortest floats, as the M benchmark's. */
    enum { I = 32, T = 1000 };
    const size_t cap = (16u << 20) + 4096;
    char *body = malloc(cap);
    ck_assert_ptr_nonnull(body);
    size_t n = (size_t)sprintf(body, "{\"inputs\": [");
    uint32_t state = 1;
    size_t numbers = 0, B = 0;
    while (n < (16u << 20) - (size_t)T * I * 17) {
        body[n++] = B++ ? ',' : '[';
        if (B > 1)
            body[n++] = '[';
        for (int t = 0; t < T; t++) {
            body[n++] = t ? ',' : '[';
            if (t)
                body[n++] = '[';
            for (int k = 0; k < I; k++) {
                if (k)
                    body[n++] = ',';
                state = state * 1664525u + 1013904223u;
                n += ff_format_f32((float)(state >> 8) / (float)(1u << 23) - 1.0f, body + n);
            }
            body[n++] = ']';
        }
        body[n++] = ']';
        numbers += (size_t)T * I;
    }
    n += (size_t)sprintf(body + n, "]}");
    rnn_info in = info_of(RNN_CELL_RNN, I, 2, 1, 1);
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    wire_v1_request *r = NULL;
    wire_error e = {0, ""};
    ck_assert_msg(wire_v1_decode(body, n, &in, &LIM, &r, &e) == 0, "%s", e.message);
    getrusage(RUSAGE_SELF, &after);
    ck_assert_uint_eq(wire_v1_steps(r), B * T);
    const double grew = (double)(after.ru_maxrss - before.ru_maxrss) * 1024.0;
    ck_assert_msg(grew < 3.0 * (double)(numbers * sizeof(float)),
                  "decoding %zu bytes (%zu numbers) grew peak RSS by %.1f MB", n, numbers,
                  grew / 1e6);
    wire_v1_free(r);
    free(body);
}
END_TEST

/* ---- decoding: what is rejected ------------------------------------------------------------- */

START_TEST(test_malformed_json_is_400_with_its_position)
{
    rnn_info in = info_of(RNN_CELL_RNN, 1, 1, 1, 1);
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
    rnn_info in = info_of(RNN_CELL_RNN, 1, 1, 1, 1);
    expect_raw("", 0, &in, 400, "empty", NULL);
}
END_TEST

START_TEST(test_body_that_is_not_an_object_is_400)
{
    rnn_info in = info_of(RNN_CELL_RNN, 1, 1, 1, 1);
    expect("[[1]]", &in, 400, NULL);
    expect("[]", &in, 400, NULL);
    expect("42", &in, 400, NULL);
    expect("'inputs'", &in, 400, NULL);
    expect("null", &in, 400, NULL);
}
END_TEST

START_TEST(test_unknown_field_is_400_and_named)
{
    rnn_info in = info_of(RNN_CELL_RNN, 1, 1, 1, 1);
    expect("{'inputs': [[1]], 'input': 1}", &in, 400, "input: unknown field", NULL);
    expect("{'inputs': [[1]], 'H0': []}", &in, 400, "H0", "unknown field", NULL);
}
END_TEST

START_TEST(test_missing_inputs_is_400)
{
    rnn_info in = info_of(RNN_CELL_RNN, 1, 1, 1, 1);
    expect("{}", &in, 400, "inputs", "missing", NULL);
    expect("{'h0': [[[0]]]}", &in, 400, "inputs", "missing", NULL);
}
END_TEST

START_TEST(test_inputs_not_an_array_is_400)
{
    rnn_info in = info_of(RNN_CELL_RNN, 1, 1, 1, 1);
    expect("{'inputs': {}}", &in, 400, "inputs", "an object", NULL);
    expect("{'inputs': 1}", &in, 400, "inputs", NULL);
    expect("{'inputs': null}", &in, 400, "inputs", NULL);
    expect("{'inputs': '[[1]]'}", &in, 400, "inputs", NULL);
}
END_TEST

START_TEST(test_empty_inputs_is_400)
{
    rnn_info in = info_of(RNN_CELL_RNN, 1, 1, 1, 1);
    expect("{'inputs': []}", &in, 400, "inputs", NULL);
}
END_TEST

START_TEST(test_more_than_max_batch_sequences_is_413)
{
    rnn_info in = info_of(RNN_CELL_RNN, 1, 1, 1, 1);
    api_limits lim = {2, 3};
    expect_lim("{'inputs': [[], [], []]}", &in, &lim, 413, "inputs", "max_batch", NULL);
}
END_TEST

START_TEST(test_sequence_over_max_steps_is_413)
{
    rnn_info in = info_of(RNN_CELL_RNN, 1, 1, 1, 1);
    api_limits lim = {2, 3};
    expect_lim("{'inputs': [[1, 2, 3], [1, 2, 3, 4]]}", &in, &lim, 413, "inputs[1]", "max_steps",
               NULL);
}
END_TEST

START_TEST(test_step_with_wrong_width_names_its_path)
{
    rnn_info in = info_of(RNN_CELL_RNN, 3, 2, 1, 1);
    const char *text = "{'inputs': [[[0, 0, 0]], [],"
                       " [[1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4], [5, 5, 5], [6, 6]]]}";
    expect(text, &in, 400, "inputs[2][5]: expected 3 numbers, got 2", NULL);
    expect("{'inputs': [[[1, 2, 3, 4]]]}", &in, 400, "inputs[0][0]", "got 4", NULL);
    expect("{'inputs': [[[]]]}", &in, 400, "inputs[0][0]", "got 0", NULL);
}
END_TEST

START_TEST(test_sequence_not_an_array_is_named)
{
    rnn_info in = info_of(RNN_CELL_RNN, 1, 1, 1, 1);
    expect("{'inputs': [[1], 5]}", &in, 400, "inputs[1]", NULL);
    expect("{'inputs': [{'x': 1}]}", &in, 400, "inputs[0]", NULL);
}
END_TEST

START_TEST(test_non_number_value_names_its_path)
{
    rnn_info in = info_of(RNN_CELL_RNN, 3, 2, 1, 1);
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
    rnn_info in = info_of(RNN_CELL_RNN, 2, 2, 1, 1);
    expect("{'inputs': [[[1, 1e39]]]}", &in, 400, "inputs[0][0][1]", "float32", NULL);
    expect("{'inputs': [[[-1e39, 0]]]}", &in, 400, "inputs[0][0][0]", "float32", NULL);
    /* the halfway point between FLT_MAX and 2^128, written exactly, already rounds to infinity
     * (a tie, and FLT_MAX's mantissa is odd) */
    expect("{'inputs': [[[340282356779733661637539395458142568448, 0]]]}", &in, 400,
           "inputs[0][0][0]: 3.40282e+38 is not representable as float32", NULL);
    expect("{'inputs': [[[0, -3.40282356779733661637539395458142568448e38]]]}", &in, 400,
           "inputs[0][0][1]: -3.40282e+38 is not representable as float32", NULL);
    expect("{'inputs': [[[0, 1e400]]]}", &in, 400, NULL);
    rnn_info big = info_of(RNN_CELL_RNN, 1, 1, 1, 1);
    expect("{'inputs': [[1, 2, 1e39]]}", &big, 400, "inputs[0][2]", "float32", NULL);
    expect("{'inputs': [[1]], 'h0': [[[1e39]]]}", &big, 400, "h0[0][0][0]", "float32", NULL);
}
END_TEST

START_TEST(test_duplicate_keys_are_400)
{
    rnn_info in = info_of(RNN_CELL_RNN, 1, 1, 1, 1);
    expect("{'inputs': [[1]], 'inputs': [[2]]}", &in, 400, "duplicate", NULL);
    expect("{'inputs': [[1]], 'precision': 3, 'precision': 3}", &in, 400, "duplicate", NULL);
}
END_TEST

START_TEST(test_deep_nesting_is_400_without_crashing)
{
    rnn_info in = info_of(RNN_CELL_RNN, 1, 1, 1, 1);
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
    rnn_info in = info_of(RNN_CELL_GRU, 1, 3, 2, 1); /* L*D = 2 rows of 3 per sequence */
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
    rnn_info rnn = info_of(RNN_CELL_RNN, 1, 1, 1, 1), gru = info_of(RNN_CELL_GRU, 1, 1, 1, 1);
    expect("{'inputs': [[1]], 'c0': [[[0]]]}", &rnn, 400, "c0", NULL);
    expect("{'inputs': [[1]], 'c0': [[[0]]]}", &gru, 400, "c0", NULL);
}
END_TEST

START_TEST(test_c0_with_wrong_shape_is_named)
{
    rnn_info in = info_of(RNN_CELL_LSTM, 1, 2, 1, 2);
    expect("{'inputs': [[1]], 'c0': [[[0, 0]]]}", &in, 400, "c0[0]", "2 rows", NULL);
    expect("{'inputs': [[1]], 'c0': [[[0, 0], [0]]]}", &in, 400, "c0[0][1]", "got 1", NULL);
    expect("{'inputs': [[1]], 'h0': [[[0, 0], [0, 0]]], 'c0': []}", &in, 400, "c0", "got 0", NULL);
}
END_TEST

START_TEST(test_bad_return_values_are_400)
{
    rnn_info rnn = info_of(RNN_CELL_RNN, 1, 1, 1, 1), lstm = info_of(RNN_CELL_LSTM, 1, 1, 1, 1);
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
    rnn_info in = info_of(RNN_CELL_RNN, 1, 1, 1, 1);
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
    rnn_info in = info_of(RNN_CELL_RNN, 1, 2, 1, 1);
    wire_v1_request *r = decode_ok(RAGGED, &in);
    float outputs[] = {0.5f, -1.25f, 2, 3, 1e-7f, -4e20f};
    float hidden[] = {2, 3, 0, 0, 1e-7f, -4e20f};
    rnn_result res = {.outputs = outputs, .hidden = hidden};
    char *out = NULL;
    size_t len = 0;
    wire_error e = {0, ""};
    ck_assert_msg(wire_v1_encode("m", &in, r, &res, &out, &len, &e) == 0, "%s", e.message);
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
    wire_v1_free(r);
}
END_TEST

START_TEST(test_lstm_response_has_cell_and_others_do_not)
{
    static const rnn_cell_type types[] = {RNN_CELL_RNN, RNN_CELL_GRU, RNN_CELL_LSTM};
    for (size_t k = 0; k < 3; k++) {
        rnn_info in = info_of(types[k], 1, 2, 1, 1);
        wire_v1_request *r = decode_ok(RAGGED, &in);
        float outputs[6] = {0}, hidden[6] = {0}, cell[6] = {0};
        rnn_result res = {
            .outputs = outputs, .hidden = hidden, .cell = types[k] == RNN_CELL_LSTM ? cell : NULL};
        char *out = NULL;
        size_t len = 0;
        wire_error e = {0, ""};
        ck_assert_msg(wire_v1_encode("m", &in, r, &res, &out, &len, &e) == 0, "%s", e.message);
        json_t *v = parse(out, len);
        int lstm = types[k] == RNN_CELL_LSTM;
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
        wire_v1_free(r);
    }
}
END_TEST

START_TEST(test_return_subset_leaves_parts_out)
{
    rnn_info in = info_of(RNN_CELL_LSTM, 1, 2, 1, 1);
    wire_v1_request *r = decode_ok("{'inputs': [[1, 2], [], [3]], 'return': ['cell']}", &in);
    float outputs[6] = {0}, hidden[6] = {0}, cell[6] = {1, 2, 3, 4, 5, 6};
    rnn_result res = {.outputs = outputs, .hidden = hidden, .cell = cell};
    char *out = NULL;
    size_t len = 0;
    wire_error e = {0, ""};
    ck_assert_msg(wire_v1_encode("m", &in, r, &res, &out, &len, &e) == 0, "%s", e.message);
    json_t *v = parse(out, len);
    ck_assert_uint_eq(json_object_size(v), 2);
    ck_assert_ptr_nonnull(json_object_get(v, "model"));
    ck_assert_uint_eq(json_array_size(json_object_get(v, "cell")), 3);
    json_decref(v);
    free(out);
    wire_v1_free(r);
}
END_TEST

START_TEST(test_precision_rounds_printed_values)
{
    rnn_info in = info_of(RNN_CELL_RNN, 1, 3, 1, 1);
    const float vals[] = {0.123456789f, -2.71828183f, 123456.789f, 9.99999e-8f, 1.0f, 0.5f};
    for (int p = 1; p <= 9; p++) {
        char text[96];
        snprintf(text, sizeof text, "{'inputs': [[1, 2]], 'precision': %d}", p);
        wire_v1_request *r = decode_ok(text, &in);
        float hidden[3] = {vals[3], vals[4], vals[5]};
        rnn_result res = {.outputs = (float *)vals, .hidden = hidden};
        char *out = NULL;
        size_t len = 0;
        wire_error e = {0, ""};
        ck_assert_msg(wire_v1_encode("m", &in, r, &res, &out, &len, &e) == 0, "%s", e.message);
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
        wire_v1_free(r);
    }
}
END_TEST

/* Encodes RAGGED's result on a model of TYPE with one non-finite value planted; expects 422
 * naming PATH. */
static void expect_non_finite(rnn_cell_type type, float *outputs, float *hidden, float *cell,
                              const char *path)
{
    rnn_info in = info_of(type, 1, 2, 1, 1);
    wire_v1_request *r = decode_ok(RAGGED, &in);
    rnn_result res = {.outputs = outputs, .hidden = hidden, .cell = cell};
    char *out = (char *)&out;
    size_t len = 0;
    wire_error e = {0, ""};
    ck_assert_int_eq(wire_v1_encode("m", &in, r, &res, &out, &len, &e), -1);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(e.status, 422);
    ck_assert_msg(strstr(e.message, path), "message lacks %s: %s", path, e.message);
    wire_v1_free(r);
}

START_TEST(test_non_finite_value_is_422_naming_its_path)
{
    float o[6] = {0}, h[6] = {0}, c[6] = {0};
    o[5] = INFINITY; /* sequence 2, step 0, unit 1 (sequence 1 is empty) */
    expect_non_finite(RNN_CELL_RNN, o, h, NULL, "outputs[2][0][1]");
    o[5] = 0;
    h[2] = NAN; /* sequence 1's final state: the zero-length sequence */
    expect_non_finite(RNN_CELL_GRU, o, h, NULL, "hidden[1][0][0]");
    h[2] = 0;
    c[1] = -INFINITY;
    expect_non_finite(RNN_CELL_LSTM, o, h, c, "cell[0][0][1]");
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
        char *out = api_error_body(api_wire_v1(), status, msgs[i], &len);
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
    char *out = api_error_body(api_wire_v1(), 400, "x", NULL);
    ck_assert_ptr_nonnull(out);
    free(out);
}
END_TEST

/* ---- api_forward, v1 ---------------------------------------------------------------------- */

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

    api_limits lim = {(size_t)cfg->server.max_batch, (size_t)cfg->server.max_steps};
    char *resp = NULL;
    api_stats st;
    int status = api_forward(api_wire_v1(), m, body, len, &lim, &resp, &rlen, &st);
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
    ck_assert_int_eq(api_forward(api_wire_v1(), m, body, len, &LIM, &resp, &rlen, NULL), 200);
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
    api_stats st = {99, 99};
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
        api_stats st = {99, 99};
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
    api_limits lim = {1, 2};
    const char *body = "{\"inputs\": [[1], [2]]}";
    ck_assert_int_eq(api_forward(api_wire_v1(), m, body, strlen(body), &lim, &resp, &rlen, NULL),
                     413);
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

/* ---- differential: the decoder against the one it replaced ------------------------------------ *
 *
 * ref_decode is the jansson-based decoder this codec had before its one-pass reader (verbatim but
 * for names): it parses with json_loadb(JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL) and
 * then checks the document. Generated requests, right and wrong in every way the checks know,
 * and mutated ones, must get the same status and the same message from both (for malformed JSON,
 * both must say so; the position wording is the reader's own), and when accepted the same batch,
 * bit for bit. Three known differences are counted, not failed: jansson's NUL quirk (see
 * test_jsonscan.c), a number past a double (1e400: jansson's "real number overflow", which the
 * new decoder reports at its JSON path, as it does 1e39), and numbers where a double rounds
 * differently than float32 does (none are generated: the reference reads numbers through a double,
 * then to float; that double rounding is what test_jsonnum checks the new reader against strtof
 * for). */

typedef struct {
    rnn_batch batch;
    int32_t *lengths;
    float *x, *h0, *c0;
    size_t steps;
    unsigned parts;
    int precision;
} ref_request;

static void ref_request_free(ref_request *r)
{
    if (!r)
        return;
    free(r->lengths);
    free(r->x);
    free(r->h0);
    free(r->c0);
    free(r);
}

static int ref_fail(wire_error *e, int status, const char *fmt, ...)
{
    va_list ap;
    e->status = status;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *ref_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

/* A JSON number as float32; PATH is the JSON path for the message. */
static int ref_to_f32(const json_t *v, const char *path, float *out, wire_error *e)
{
    if (!json_is_number(v))
        return ref_fail(e, 400, "%s: expected a number, got %s", path, ref_kind(v));
    double d = json_number_value(v);
    /* Decimal forms of FLT_MAX ("3.4028235e38") lie a little above it and still round to it;
     * from halfway to the next power of two (2^128 - 2^103) on, float32 rounds to infinity. */
    if (!isfinite(d) || fabs(d) >= 0x1.ffffffp127)
        return ref_fail(e, 400, "%s: %g is not representable as float32", path, d);
    *out = d > FLT_MAX ? FLT_MAX : d < -FLT_MAX ? -FLT_MAX : (float)d;
    return 0;
}

/* Reads a row of N numbers (ROW must be an array of exactly N numbers) into dst. */
static int ref_read_row(const json_t *row, size_t n, const char *path, float *dst, wire_error *e)
{
    char p[256];
    if (!json_is_array(row))
        return ref_fail(e, 400, "%s: expected an array of %zu numbers, got %s", path, n,
                        ref_kind(row));
    if (json_array_size(row) != n)
        return ref_fail(e, 400, "%s: expected %zu number%s, got %zu", path, n, n == 1 ? "" : "s",
                        json_array_size(row));
    for (size_t k = 0; k < n; k++) {
        snprintf(p, sizeof p, "%s[%zu]", path, k);
        if (ref_to_f32(json_array_get(row, k), p, &dst[k], e) < 0)
            return -1;
    }
    return 0;
}

/* "h0" / "c0": per sequence, L*D rows of H numbers, into (B, L*D, H). */
static int ref_read_state(const json_t *v, const char *name, const rnn_info *info, size_t B,
                          float **out, wire_error *e)
{
    const size_t LD = (size_t)(info->num_layers * info->num_directions);
    const size_t H = (size_t)info->hidden_size;
    char p[256];
    if (!json_is_array(v))
        return ref_fail(e, 400, "%s: expected an array with one entry per sequence, got %s", name,
                        ref_kind(v));
    if (json_array_size(v) != B)
        return ref_fail(e, 400, "%s: expected %zu entries (one per sequence in inputs), got %zu",
                        name, B, json_array_size(v));
    float *buf = malloc(B * LD * H * sizeof(float));
    if (!buf)
        return ref_fail(e, 500, "%s: out of memory", name);
    *out = buf;
    for (size_t i = 0; i < B; i++) {
        json_t *seq = json_array_get(v, i);
        snprintf(p, sizeof p, "%s[%zu]", name, i);
        if (!json_is_array(seq))
            return ref_fail(e, 400,
                            "%s: expected %zu rows (num_layers*num_directions) of %zu numbers, "
                            "got %s",
                            p, LD, H, ref_kind(seq));
        if (json_array_size(seq) != LD)
            return ref_fail(e, 400, "%s: expected %zu rows (num_layers*num_directions), got %zu", p,
                            LD, json_array_size(seq));
        for (size_t r = 0; r < LD; r++) {
            snprintf(p, sizeof p, "%s[%zu][%zu]", name, i, r);
            if (ref_read_row(json_array_get(seq, r), H, p, buf + (i * LD + r) * H, e) < 0)
                return -1;
        }
    }
    return 0;
}

/* The parts a model has, as the messages list them (issue 15: exactly those that exist; the
 * generated models have no head). */
static const char *ref_parts_list(const rnn_info *info)
{
    return info->type == RNN_CELL_LSTM ? "\"outputs\", \"hidden\" or \"cell\""
                                       : "\"outputs\" or \"hidden\"";
}

static int ref_read_parts(const json_t *v, const rnn_info *info, unsigned *parts, wire_error *e)
{
    if (!json_is_array(v))
        return ref_fail(e, 400, "return: expected an array of %s, got %s", ref_parts_list(info),
                        ref_kind(v));
    *parts = 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *s = json_array_get(v, i);
        const char *name = json_string_value(s);
        if (!name)
            return ref_fail(e, 400, "return[%zu]: expected a string, got %s", i, ref_kind(s));
        if (strcmp(name, "outputs") == 0)
            *parts |= WIRE_OUTPUTS;
        else if (strcmp(name, "hidden") == 0)
            *parts |= WIRE_HIDDEN;
        else if (strcmp(name, "cell") == 0 && info->type == RNN_CELL_LSTM)
            *parts |= WIRE_CELL;
        else if (strcmp(name, "cell") == 0)
            return ref_fail(e, 400, "return[%zu]: \"cell\" exists for lstm models only", i);
        else
            return ref_fail(e, 400,
                            "return[%zu]: \"%s\" is not a part of the response (expected %s)", i,
                            name, ref_parts_list(info));
    }
    return 0;
}

static int ref_decode(const char *body, size_t len, const rnn_info *info, const api_limits *lim,
                      ref_request **out, wire_error *e)
{
    json_error_t jerr;
    json_t *root = NULL;
    ref_request *r = NULL;
    const size_t I = (size_t)info->input_size;
    char p[256];
    *out = NULL;

    root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!root) {
        if (len == 0)
            ref_fail(e, 400, "empty request body (expected a JSON object with \"inputs\")");
        else
            ref_fail(e, 400, "malformed JSON at line %d, column %d: %s", jerr.line, jerr.column,
                     jerr.text);
        goto fail;
    }
    if (!json_is_object(root)) {
        ref_fail(e, 400, "request body: expected a JSON object with \"inputs\", got %s",
                 ref_kind(root));
        goto fail;
    }
    if (!(r = calloc(1, sizeof *r))) {
        ref_fail(e, 500, "out of memory");
        goto fail;
    }
    r->parts = WIRE_OUTPUTS | WIRE_HIDDEN | (info->type == RNN_CELL_LSTM ? WIRE_CELL : 0);
    r->precision = 9;

    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (strcmp(key, "inputs") && strcmp(key, "h0") && strcmp(key, "c0") &&
            strcmp(key, "return") && strcmp(key, "precision")) {
            ref_fail(e, 400,
                     "%s: unknown field (expected \"inputs\", \"h0\", \"c0\", \"return\", "
                     "\"precision\")",
                     key);
            goto fail;
        }
    }

    json_t *inputs = json_object_get(root, "inputs");
    if (!inputs) {
        ref_fail(e, 400, "inputs: missing (expected an array of sequences)");
        goto fail;
    }
    if (!json_is_array(inputs)) {
        ref_fail(e, 400, "inputs: expected an array of sequences, got %s", ref_kind(inputs));
        goto fail;
    }
    const size_t B = json_array_size(inputs);
    if (B == 0) {
        ref_fail(e, 400, "inputs: expected at least one sequence, got an empty array");
        goto fail;
    }
    if (B > lim->max_batch) {
        ref_fail(e, 413, "inputs: %zu sequences exceed max_batch %zu", B, lim->max_batch);
        goto fail;
    }

    /* First pass: shapes and lengths, so x is allocated once. */
    if (!(r->lengths = malloc(B * sizeof *r->lengths))) {
        ref_fail(e, 500, "out of memory");
        goto fail;
    }
    size_t N = 0;
    for (size_t i = 0; i < B; i++) {
        json_t *seq = json_array_get(inputs, i);
        if (!json_is_array(seq)) {
            ref_fail(e, 400, "inputs[%zu]: expected an array of steps, got %s", i, ref_kind(seq));
            goto fail;
        }
        size_t T = json_array_size(seq);
        if (T > lim->max_steps) {
            ref_fail(e, 413, "inputs[%zu]: %zu steps exceed max_steps %zu", i, T, lim->max_steps);
            goto fail;
        }
        r->lengths[i] = (int32_t)T;
        N += T;
    }
    if (!(r->x = malloc((N ? N : 1) * I * sizeof(float)))) {
        ref_fail(e, 500, "out of memory for %zu steps", N);
        goto fail;
    }
    float *x = r->x;
    for (size_t i = 0; i < B; i++) {
        json_t *seq = json_array_get(inputs, i);
        for (size_t t = 0; t < (size_t)r->lengths[i]; t++, x += I) {
            json_t *step = json_array_get(seq, t);
            snprintf(p, sizeof p, "inputs[%zu][%zu]", i, t);
            /* input_size 1: a bare number per step reads as a one-element step */
            if (I == 1 && json_is_number(step)) {
                if (ref_to_f32(step, p, x, e) < 0)
                    goto fail;
                continue;
            }
            if (!json_is_array(step)) {
                if (I == 1)
                    ref_fail(e, 400, "%s: expected a number or an array of 1 number, got %s", p,
                             ref_kind(step));
                else
                    ref_fail(e, 400, "%s: expected an array of %zu numbers, got %s", p, I,
                             ref_kind(step));
                goto fail;
            }
            if (ref_read_row(step, I, p, x, e) < 0)
                goto fail;
        }
    }
    r->steps = N;

    json_t *h0 = json_object_get(root, "h0");
    if (h0 && !json_is_null(h0) && ref_read_state(h0, "h0", info, B, &r->h0, e) < 0)
        goto fail;
    json_t *c0 = json_object_get(root, "c0");
    if (c0 && !json_is_null(c0)) {
        if (info->type != RNN_CELL_LSTM) {
            ref_fail(e, 400, "c0: only lstm models have a cell state (this model is %s)",
                     rnn_cell_describe(info->type)->name);
            goto fail;
        }
        if (ref_read_state(c0, "c0", info, B, &r->c0, e) < 0)
            goto fail;
    }
    json_t *ret = json_object_get(root, "return");
    if (ret && ref_read_parts(ret, info, &r->parts, e) < 0)
        goto fail;
    json_t *prec = json_object_get(root, "precision");
    if (prec) {
        double d = json_number_value(prec);
        if (!json_is_number(prec) || d != floor(d) || d < 1 || d > 9) {
            ref_fail(e, 400, "precision: expected an integer from 1 to 9 (significant digits)");
            goto fail;
        }
        r->precision = (int)d;
    }

    r->batch.batch = B;
    r->batch.lengths = r->lengths;
    r->batch.x = r->x;
    r->batch.h0 = r->h0;
    r->batch.c0 = r->c0;
    json_decref(root);
    *out = r;
    return 0;

fail:
    json_decref(root);
    ref_request_free(r);
    return -1;
}

typedef struct {
    char *b;
    size_t n, cap;
    uint64_t s;
    unsigned noise; /* wrong values come 1 in noise times as often as usual; 0: none */
} rgen;

static uint64_t rg_rnd(rgen *g)
{
    g->s ^= g->s << 13;
    g->s ^= g->s >> 7;
    g->s ^= g->s << 17;
    return g->s;
}

/* 1 in N. */
static bool rg_one_in(rgen *g, unsigned n)
{
    return rg_rnd(g) % n == 0;
}

/* 1 in N times the request's noise: for the mistakes, which clean requests never make. */
static bool rg_mistake(rgen *g, unsigned n)
{
    return g->noise && rg_rnd(g) % (n * g->noise) == 0;
}

static void rg_puts(rgen *g, const char *s)
{
    const size_t n = strlen(s);
    if (g->n + n <= g->cap) {
        memcpy(g->b + g->n, s, n);
        g->n += n;
    }
}

static void rg_number(rgen *g)
{
    static const char *const odd[] = {"1e39",  "-1e39", "3.4028235e38", "-3.4028236e38",
                                      "1e-46", "-0",    "1e400",        "01",
                                      "1.",    "0.5e",  "NaN",          "12345678901234"};
    char num[48];
    if (rg_mistake(g, 40)) {
        rg_puts(g, odd[rg_rnd(g) % (sizeof odd / sizeof odd[0])]);
        return;
    }
    const double v = ((double)(rg_rnd(g) >> 11) / 9007199254740992.0 * 2 - 1);
    snprintf(num, sizeof num,
             rg_one_in(g, 3)   ? "%.9g"
             : rg_one_in(g, 2) ? "%.4g"
                               : "%.8e",
             rg_one_in(g, 10) ? v * 1e6 : v);
    rg_puts(g, num);
}

/* A value where a number or a row was expected: the wrong kinds the checks name. */
static void rg_wrong(rgen *g)
{
    static const char *const w[] = {"\"x\"",      "null", "true",  "false", "{}",
                                    "{\"a\": 1}", "[]",   "[[1]]", "1",     "\"\\u0041\""};
    rg_puts(g, w[rg_rnd(g) % (sizeof w / sizeof w[0])]);
}

/* An array of about N numbers (sometimes one more or less, sometimes a wrong element). */
static void rg_row(rgen *g, size_t n)
{
    size_t k = n;
    if (rg_mistake(g, 25))
        k = rg_rnd(g) % 2 ? k + 1 : k > 0 ? k - 1 : 0;
    rg_puts(g, "[");
    for (size_t i = 0; i < k; i++) {
        if (i)
            rg_puts(g, rg_one_in(g, 2) ? ", " : ",");
        if (rg_mistake(g, 60))
            rg_wrong(g);
        else
            rg_number(g);
    }
    rg_puts(g, "]");
}

/* "inputs" of about B sequences of up to T steps of I numbers. */
static void rg_inputs(rgen *g, size_t B, size_t T, size_t I)
{
    rg_puts(g, "[");
    for (size_t i = 0; i < B; i++) {
        if (i)
            rg_puts(g, ", ");
        if (rg_mistake(g, 40)) {
            rg_wrong(g);
            continue;
        }
        rg_puts(g, "[");
        const size_t steps = rg_rnd(g) % (T + 1);
        for (size_t t = 0; t < steps; t++) {
            if (t)
                rg_puts(g, ", ");
            if (I == 1 && rg_one_in(g, 2))
                rg_number(g); /* a bare number */
            else if (rg_mistake(g, 50))
                rg_wrong(g);
            else
                rg_row(g, I);
        }
        rg_puts(g, "]");
    }
    rg_puts(g, "]");
}

/* "h0" / "c0": about B entries of about LD rows of H numbers. */
static void rg_state(rgen *g, size_t B, size_t LD, size_t H)
{
    if (rg_one_in(g, 15)) {
        rg_puts(g, rg_one_in(g, 2) || !g->noise ? "null" : "{}");
        return;
    }
    const size_t entries = !rg_mistake(g, 8) ? B : rg_rnd(g) % 2 ? B + 1 : B > 0 ? B - 1 : 0;
    rg_puts(g, "[");
    for (size_t e = 0; e < entries; e++) {
        if (e)
            rg_puts(g, ", ");
        if (rg_mistake(g, 30)) {
            rg_wrong(g);
            continue;
        }
        const size_t rows = !rg_mistake(g, 10) ? LD : rg_rnd(g) % 2 ? LD + 1 : LD - 1;
        rg_puts(g, "[");
        for (size_t r = 0; r < rows; r++) {
            if (r)
                rg_puts(g, ", ");
            rg_row(g, H);
        }
        rg_puts(g, "]");
    }
    rg_puts(g, "]");
}

static void rg_field(rgen *g, int which, const rnn_info *in, size_t B)
{
    static const char *const keys[] = {"\"inputs\"", "\"h0\"",        "\"c0\"",
                                       "\"return\"", "\"precision\"", "\"inp\\u0075ts\"",
                                       "\"extra\"",  "\"H0\""};
    static const char *const parts[] = {"\"outputs\"",      "\"hidden\"", "\"cell\"", "\"Hidden\"",
                                        "\"h\\u0069dden\"", "3",          "null",     "\"\""};
    static const char *const precs[] = {"1",     "4",    "9",   "3.0",
                                        "30e-1", "0",    "10",  "2.5",
                                        "\"3\"", "null", "1e9", "9.0000000000000001",
                                        "[3]",   "-1"};
    const size_t LD = (size_t)(in->num_layers * in->num_directions), H = (size_t)in->hidden_size;
    rg_puts(g, keys[which]);
    rg_puts(g, rg_one_in(g, 2) ? ": " : ":");
    switch (which) {
    case 0:
    case 5:
        if (rg_mistake(g, 30))
            rg_wrong(g);
        else
            rg_inputs(g, B, 7, (size_t)in->input_size);
        break;
    case 1:
    case 2:
        rg_state(g, B, LD, H);
        break;
    case 3:
        if (rg_mistake(g, 10)) {
            rg_wrong(g);
            break;
        }
        rg_puts(g, "[");
        for (size_t i = 0, n = rg_rnd(g) % 4; i < n; i++) {
            if (i)
                rg_puts(g, ", ");
            rg_puts(g, parts[rg_mistake(g, 5) ? rg_rnd(g) % 8 : rg_rnd(g) % 3]);
        }
        rg_puts(g, "]");
        break;
    case 4:
        rg_puts(g, precs[rg_rnd(g) % (g->noise ? sizeof precs / sizeof precs[0] : 5)]);
        break;
    default:
        rg_wrong(g);
    }
}

/* A request for IN: the fields in a random order, some left out, now and then repeated or
 * unknown, with batches of up to 5 sequences (limits of 4 and 6, so both are crossed). */
static void rg_request(rgen *g, const rnn_info *in)
{
    const size_t B = rg_rnd(g) % 6;
    if (rg_mistake(g, 40)) {
        rg_inputs(g, B, 3, (size_t)in->input_size); /* an array at the top */
        return;
    }
    int order[5] = {0, 1, 2, 3, 4};
    for (int i = 4; i > 0; i--) {
        const int j = (int)(rg_rnd(g) % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    rg_puts(g, "{");
    bool any = false;
    for (int i = 0; i < 5; i++) {
        const int f = order[i];
        const bool want = f == 0 ? !rg_mistake(g, 30) : rg_one_in(g, 3);
        if (!want)
            continue;
        if (any)
            rg_puts(g, ", ");
        rg_field(g, rg_mistake(g, 40) ? 5 + (int)(rg_rnd(g) % 3) : f, in, B);
        any = true;
        if (rg_mistake(g, 60)) {
            rg_puts(g, ", ");
            rg_field(g, f, in, B); /* repeated */
        }
    }
    rg_puts(g, "}");
}

static void rg_mutate(rgen *g)
{
    static const char interesting[] = "{}[]:,\"\\ 0123456789eE.-+tfnu\x80\x00";
    for (int m = 1 + (int)(rg_rnd(g) % 2); m > 0 && g->n > 0; m--) {
        const size_t at = (size_t)(rg_rnd(g) % g->n);
        const char c = interesting[rg_rnd(g) % (sizeof interesting - 1)];
        switch (rg_rnd(g) % 3) {
        case 0:
            g->b[at] = c;
            break;
        case 1:
            memmove(g->b + at, g->b + at + 1, g->n - at - 1);
            g->n--;
            break;
        default:
            if (g->n < g->cap) {
                memmove(g->b + at + 1, g->b + at, g->n - at);
                g->b[at] = c;
                g->n++;
            }
        }
    }
}

typedef struct {
    size_t compared, accepted, malformed, rejected, nul_quirk, overflow;
} diff_tally;

/* BODY with every number beyond a double (1e400) written as 1e39, padded with spaces to keep
 * every position: a number out of float32's range that jansson accepts. Malloc'ed. */
static char *tame_overflows(const char *body, size_t len, bool *changed)
{
    char *out = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(out);
    memcpy(out, body, len);
    *changed = false;
    for (size_t i = 0; i < len; i++) {
        const char c = body[i], before = i ? body[i - 1] : ' ';
        if (!(c == '-' || (c >= '0' && c <= '9')) || (before >= '0' && before <= '9') ||
            (before >= 'a' && before <= 'z') || (before >= 'A' && before <= 'Z') || before == '.' ||
            before == '+' || before == '-')
            continue;
        const char *next;
        float f;
        if (jn_parse_f32(body + i, body + len, &next, &f) != JN_OVERFLOW)
            continue;
        const size_t n = (size_t)(next - (body + i)), neg = c == '-';
        memset(out + i, ' ', n);
        memcpy(out + i, neg ? "-1e39" : "1e39", neg ? 5 : 4);
        *changed = true;
        i += n - 1;
    }
    return out;
}

/* Equal messages; an unknown field's only up to the list of the fields expected, which has grown
 * since the reference was written ("layout"). */
static bool same_message(const char *a, const char *b)
{
    const char *ka = strstr(a, ": unknown field (expected"), *kb = strstr(b, ": unknown field (");
    if (ka && kb)
        return ka - a == kb - b && strncmp(a, b, (size_t)(ka - a)) == 0;
    return strcmp(a, b) == 0;
}

static bool floats_equal(const float *a, const float *b, size_t n)
{
    return n == 0 || (a && b && memcmp(a, b, n * sizeof(float)) == 0);
}

/* Decodes BODY[LEN] both ways and aborts on any difference. */
static void compare_decoders(const char *body, size_t len, const rnn_info *in,
                             const api_limits *lim, diff_tally *t)
{
    wire_v1_request *got = NULL;
    ref_request *want = NULL;
    wire_error ge = {0, ""}, we = {0, ""};
    const int grc = wire_v1_decode(body, len, in, lim, &got, &ge);
    const int wrc = ref_decode(body, len, in, lim, &want, &we);
    t->compared++;
    const bool gmal = grc < 0 && strncmp(ge.message, "malformed JSON", 14) == 0;
    const bool wmal = wrc < 0 && strncmp(we.message, "malformed JSON", 14) == 0;
    if (gmal && !wmal && memchr(body, '\0', len)) {
        /* jansson skipped a NUL after a number or literal; without the NULs, both must agree */
        char *stripped = malloc(len);
        ck_assert_ptr_nonnull(stripped);
        size_t n = 0;
        for (size_t i = 0; i < len; i++)
            if (body[i] != '\0')
                stripped[n++] = body[i];
        diff_tally inner = {0, 0, 0, 0, 0, 0};
        compare_decoders(stripped, n, in, lim, &inner);
        ck_assert_msg(inner.malformed == 0, "a NUL-free body is still malformed");
        free(stripped);
        t->nul_quirk++;
    } else if (wmal && !gmal && strstr(we.message, "real number overflow")) {
        /* 1e400: jansson rejects the document; the new decoder names the number's path, as for
         * 1e39 (issue 15, item 14). With it written as 1e39 both must agree, and the new
         * decoder must answer both spellings alike. */
        bool changed;
        char *tamed = tame_overflows(body, len, &changed);
        ck_assert_msg(changed, "an overflow the rewrite does not find: %.*s", (int)len, body);
        diff_tally inner = {0, 0, 0, 0, 0, 0};
        compare_decoders(tamed, len, in, lim, &inner);
        wire_v1_request *r2 = NULL;
        wire_error e2 = {0, ""};
        ck_assert_int_eq(wire_v1_decode(tamed, len, in, lim, &r2, &e2), grc);
        ck_assert_msg(grc == 0 || e2.status == ge.status, "%d %s vs %d %s", ge.status, ge.message,
                      e2.status, e2.message);
        wire_v1_free(r2);
        free(tamed);
        t->overflow++;
    } else if (gmal != wmal || grc != wrc) {
        ck_abort_msg("new: %d %s\nold: %d %s\nfor: %.*s", ge.status, ge.message, we.status,
                     we.message, (int)len, body);
    } else if (grc < 0) {
        if (ge.status != we.status || (!gmal && !same_message(ge.message, we.message)))
            ck_abort_msg("new: %d %s\nold: %d %s\nfor: %.*s", ge.status, ge.message, we.status,
                         we.message, (int)len, body);
        t->malformed += gmal;
        t->rejected += !gmal;
    } else {
        const rnn_batch *b = wire_v1_batch(got);
        const size_t LDH =
            (size_t)(in->num_layers * in->num_directions * in->hidden_size) * b->batch;
        ck_assert_msg(b->batch == want->batch.batch && wire_v1_steps(got) == want->steps &&
                          memcmp(b->lengths, want->lengths, b->batch * sizeof(int32_t)) == 0 &&
                          floats_equal(b->x, want->x, want->steps * (size_t)in->input_size) &&
                          (b->h0 == NULL) == (want->h0 == NULL) &&
                          (!b->h0 || floats_equal(b->h0, want->h0, LDH)) &&
                          (b->c0 == NULL) == (want->c0 == NULL) &&
                          (!b->c0 || floats_equal(b->c0, want->c0, LDH)) &&
                          wire_v1_parts(got) == want->parts &&
                          wire_v1_precision(got) == want->precision,
                      "the decoded batches differ for: %.*s", (int)len, body);
        t->accepted++;
    }
    wire_v1_free(got);
    ref_request_free(want);
}

START_TEST(test_decoder_agrees_with_the_jansson_decoder_it_replaced)
{
    const rnn_info models[] = {info_of(RNN_CELL_RNN, 3, 2, 1, 1),
                               info_of(RNN_CELL_LSTM, 1, 2, 2, 2),
                               info_of(RNN_CELL_GRU, 2, 3, 1, 1)};
    const api_limits lim = {4, 6};
    enum { CAP = 8192 };
    char *buf = malloc(CAP);
    ck_assert_ptr_nonnull(buf);
    rgen g = {buf, 0, CAP, 0x5851f42d4c957f2du, 0};
    diff_tally t = {0, 0, 0, 0, 0, 0};
    for (int i = 0; i < DIFF_REQUESTS / SWEEP_DIVISOR; i++) {
        const rnn_info *in = &models[i % 3];
        static const unsigned noise[] = {0, 0, 1, 4, 16};
        g.n = 0;
        g.noise = noise[i % 5];
        rg_request(&g, in);
        if (i % 4 == 3)
            rg_mutate(&g);
        compare_decoders(buf, g.n, in, &lim, &t);
    }
    printf("codec vs the jansson decoder: %zu requests compared: %zu accepted alike, %zu "
           "rejected with the same status and message, %zu malformed for both, %zu jansson NUL "
           "quirks, %zu numbers past a double named by path\n",
           t.compared, t.accepted, t.rejected, t.malformed, t.nul_quirk, t.overflow);
    ck_assert_uint_gt(t.accepted, t.compared / 10);
    ck_assert_uint_gt(t.rejected, t.compared / 4);
    free(buf);
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

    TCase *mem = tcase_create("memory");
    tcase_set_timeout(mem, 120); /* under valgrind; ~0.2 s natively */
    tcase_add_test(mem, test_a_16_mib_body_costs_little_more_than_its_floats);
    suite_add_tcase(s, mem);

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

static Suite *differential_suite(void)
{
    Suite *s = suite_create("differential");
    TCase *tc = tcase_create("against_jansson_decoder");
    tcase_set_timeout(tc, 120); /* ~2 s under ASan; the slack is for loaded CI machines */
    tcase_add_test(tc, test_decoder_agrees_with_the_jansson_decoder_it_replaced);
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
    srunner_add_suite(sr, differential_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
