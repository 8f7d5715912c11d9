/* test_forward.c - the one forward path (src/forward.c) through api.h: its stages give the bytes
 * api_forward gives (what a scheduler merging calls relies on), the cost estimates are honest,
 * the padded layouts are bounded (issue 15, item 1), and what v1 and v2 now share: float32
 * rounding, the path of a number past a double, the empty-body message, the claimed shape that
 * the data does not fill. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnserve/api.h"
#include "rnnserve/config.h"
#include "rnnserve/engine.h"
#include "testutil.h"

static const api_limits LIM = {1024, 100000};

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

#define SINE "config/default.json"                           /* rnn 1 -> 4, no head */
#define HEAD "tests/fixtures/cases/head_sigmoid/config.json" /* gru 3 -> 4 x2, bidirectional */

/* The error message of a v1 or v2 error body (static). */
static const char *message_of(const char *body, size_t len)
{
    static char msg[1024];
    json_t *j = json_loadb(body, len, 0, NULL);
    ck_assert_msg(j != NULL, "not JSON: %.*s", (int)len, body);
    json_t *e = json_object_get(j, "error");
    snprintf(msg, sizeof msg, "%s",
             json_is_string(e) ? json_string_value(e)
                               : json_string_value(json_object_get(e, "message")));
    json_decref(j);
    return msg;
}

/* Runs BODY through api_forward; returns the status and, in *msg, the error message if any. */
static int run(const api_wire *w, const rnn_model *m, const char *body, size_t len,
               const api_limits *lim, const char **msg)
{
    char *out;
    size_t outlen;
    const int st = api_forward(w, m, body, len, lim, &out, &outlen, NULL);
    ck_assert_ptr_nonnull(out);
    if (msg)
        *msg = st == 200 ? "" : message_of(out, outlen);
    free(out);
    return st;
}

static const char *V1_HEAD_BODY = "{\"inputs\": [[[0.1, -0.2, 0.3], [0.4, 0.5, -0.6]], [], "
                                  "[[-0.7, 0.8, 0.9]]]}";
static const char *V1_PADDED_BODY = "{\"inputs\": [[[0.1, -0.2, 0.3], [0.4, 0.5, -0.6]], [], "
                                    "[[-0.7, 0.8, 0.9]]], \"layout\": \"padded\"}";
static const char *V2_HEAD_BODY =
    "{\"id\": \"x\", \"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", \"shape\": [3, 2, "
    "3], \"data\": [0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0, 0, 0, 0, 0, 0, -0.7, 0.8, 0.9, 0, 0, 0]}, "
    "{\"name\": \"lengths\", \"datatype\": \"INT64\", \"shape\": [3], \"data\": [2, 0, 1]}]}";

/* The stages, run by hand as a scheduler would (decode; rnn_forward on the call's batch into its
 * result; finish), and api_compute_and_finish, give api_forward's bytes exactly. */
START_TEST(test_stages_give_the_bytes_of_api_forward)
{
    loaded l = load(HEAD);
    struct {
        const api_wire *w;
        const char *body;
    } cases[] = {{api_wire_v1(), V1_HEAD_BODY},
                 {api_wire_v1(), V1_PADDED_BODY},
                 {api_wire_v1(), "{\"inputs\": [[[1, 2, 3]]], \"return\": [\"hidden\"]}"},
                 {api_wire_v2(), V2_HEAD_BODY}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *body = cases[i].body;
        char *want, *got, *err, msg[256];
        size_t want_len, got_len, err_len;
        api_stats st = {0, 0};
        ck_assert_int_eq(
            api_forward(cases[i].w, l.m, body, strlen(body), &LIM, &want, &want_len, &st), 200);
        ck_assert_uint_eq(st.sequences, 3 - 2 * (i == 2));

        api_call *c;
        ck_assert_int_eq(api_decode(cases[i].w, l.m, body, strlen(body), &LIM, &c, &err, &err_len),
                         200);
        ck_assert_ptr_null(err);
        ck_assert_ptr_eq(api_call_model(c), l.m);
        ck_assert_int_eq(
            rnn_forward(api_call_model(c), api_call_batch(c), api_call_result(c), msg, sizeof msg),
            0);
        ck_assert_int_eq(api_finish(c, &got, &got_len, NULL), 200);
        ck_assert_msg(got_len == want_len && memcmp(got, want, want_len) == 0,
                      "case %zu: stages %.*s\nvs api_forward %.*s", i, (int)got_len, got,
                      (int)want_len, want);
        ck_assert_uint_ge(api_call_response_bytes(c), got_len);
        free(got);
        api_call_free(c);

        ck_assert_int_eq(api_decode(cases[i].w, l.m, body, strlen(body), &LIM, &c, &err, &err_len),
                         200);
        ck_assert_int_eq(api_compute_and_finish(c, &got, &got_len, NULL), 200);
        ck_assert(got_len == want_len && memcmp(got, want, want_len) == 0);
        char *e503 = api_call_error_body(c, 503, "queue full", &err_len);
        ck_assert_str_eq(message_of(e503, err_len), "queue full");
        free(e503);
        api_call_free(c);
        free(got);
        free(want);
    }
    unload(&l);
}
END_TEST

/* A request that does not need the outputs leaves them out of its result buffers. */
START_TEST(test_result_buffers_follow_what_is_returned)
{
    loaded l = load(HEAD);
    const char *body = "{\"inputs\": [[[1, 2, 3]]], \"return\": [\"hidden\"]}";
    api_call *c;
    char *err;
    size_t err_len;
    ck_assert_int_eq(api_decode(api_wire_v1(), l.m, body, strlen(body), &LIM, &c, &err, &err_len),
                     200);
    ck_assert_ptr_null(api_call_result(c)->outputs);
    ck_assert_ptr_nonnull(api_call_result(c)->hidden);
    ck_assert_ptr_null(api_call_result(c)->cell);
    ck_assert_ptr_null(api_call_result(c)->predictions);
    api_call_free(c);
    body = "{\"inputs\": [[[1, 2, 3]]], \"return\": [\"predictions\"]}";
    ck_assert_int_eq(api_decode(api_wire_v1(), l.m, body, strlen(body), &LIM, &c, &err, &err_len),
                     200);
    ck_assert_ptr_nonnull(api_call_result(c)->outputs); /* the head reads them */
    ck_assert_ptr_nonnull(api_call_result(c)->predictions);
    api_call_free(c);
    /* a decode error comes back in the format's own body */
    ck_assert_int_eq(api_decode(api_wire_v2(), l.m, "[", 1, &LIM, &c, &err, &err_len), 400);
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(message_of(err, err_len), "malformed JSON"));
    free(err);
    unload(&l);
}
END_TEST

/* A body of N sequences: the first of STEPS steps (zeros, input_size 1), the others empty. */
static char *long_and_empty(size_t n, size_t steps, const char *extra, size_t *len)
{
    const size_t cap = steps * 2 + n * 3 + 256;
    char *b = malloc(cap), *o = b;
    ck_assert_ptr_nonnull(b);
    o += sprintf(o, "{\"inputs\":[[");
    for (size_t t = 0; t < steps; t++)
        o += sprintf(o, t ? ",0" : "0");
    o += sprintf(o, "]");
    for (size_t i = 1; i < n; i++)
        o += sprintf(o, ",[]");
    o += sprintf(o, "]%s}", extra);
    *len = (size_t)(o - b);
    return b;
}

/* Issue 15, item 1: one 100,000-step sequence and 1,023 empty ones padded would be ~1 GB; it is a
 * 413 naming the padded size, the limit and the ragged layout, never a 500. The estimates follow
 * what the request produces: its own steps, not its padding. */
START_TEST(test_padded_layout_is_bounded_and_estimates_are_honest)
{
    loaded l = load(SINE);
    size_t len;
    char *body = long_and_empty(1024, 100000, ",\"layout\":\"padded\"", &len);
    const char *msg;
    ck_assert_int_eq(run(api_wire_v1(), l.m, body, len, &LIM, &msg), 413);
    ck_assert_msg(strstr(msg, "409600000 values") && strstr(msg, "\"layout\": \"ragged\"") &&
                      strstr(msg, "1600000"),
                  "%s", msg);
    free(body);

    /* the same request ragged: fine, and its estimated size is that of its own steps */
    body = long_and_empty(1024, 100000, "", &len);
    api_call *c;
    char *err, *out;
    size_t err_len, out_len;
    ck_assert_int_eq(api_decode(api_wire_v1(), l.m, body, len, &LIM, &c, &err, &err_len), 200);
    const size_t est = api_call_response_bytes(c);
    const double flops = api_call_flops(c);
    ck_assert_int_eq(api_compute_and_finish(c, &out, &out_len, NULL), 200);
    ck_assert_uint_ge(est, out_len);
    ck_assert_uint_lt(est, 16u << 20); /* 100,000 rows of 4 numbers, 1,024 hidden states */
    free(out);
    api_call_free(c);
    free(body);

    /* FLOPs grow with the steps (rnn 1 -> 4: 2 x (4 x (1 + 4)) = 40 a step), not the batch */
    ck_assert_double_eq_tol(flops, 40.0 * 100000, 1.0);
    body = long_and_empty(1024, 10, "", &len);
    ck_assert_int_eq(api_decode(api_wire_v1(), l.m, body, len, &LIM, &c, &err, &err_len), 200);
    ck_assert_double_eq_tol(api_call_flops(c), 40.0 * 10, 1e-9);
    api_call_free(c);
    free(body);

    /* padding within the bound is served, and the estimate covers it */
    body = long_and_empty(3, 1000, ",\"layout\":\"padded\"", &len);
    ck_assert_int_eq(api_decode(api_wire_v1(), l.m, body, len, &LIM, &c, &err, &err_len), 200);
    ck_assert_int_eq(api_compute_and_finish(c, &out, &out_len, NULL), 200);
    ck_assert_uint_ge(api_call_response_bytes(c), out_len);
    free(out);
    api_call_free(c);
    free(body);
    unload(&l);
}
END_TEST

/* v2's output is always padded: the same bound, in the protocol's error body. */
START_TEST(test_v2_padded_output_is_bounded)
{
    loaded l = load(SINE);
    const size_t B = 1024, T = 1000;
    char *body = malloc(B * T * 2 + 4096), *o = body;
    ck_assert_ptr_nonnull(body);
    o += sprintf(o,
                 "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[%zu,%zu,1],"
                 "\"data\":[",
                 B, T);
    for (size_t i = 0; i < B * T; i++)
        o += sprintf(o, i ? ",0" : "0");
    o += sprintf(o, "]},{\"name\":\"lengths\",\"datatype\":\"INT64\",\"shape\":[%zu],\"data\":[%zu",
                 B, T);
    for (size_t i = 1; i < B; i++)
        o += sprintf(o, ",0");
    o += sprintf(o, "]}]}");
    const char *msg;
    ck_assert_int_eq(run(api_wire_v2(), l.m, body, (size_t)(o - body), &LIM, &msg), 413);
    ck_assert_msg(strstr(msg, "4096000 values") && strstr(msg, "h_n"), "%s", msg);
    /* naming only h_n asks for no padding at all */
    strcpy(o - 1, ",\"outputs\":[{\"name\":\"h_n\"}]}");
    ck_assert_int_eq(run(api_wire_v2(), l.m, body, strlen(body), &LIM, &msg), 200);
    free(body);
    unload(&l);
}
END_TEST

/* Issue 15, item 2: a shape the data cannot fill is a 400 that allocates nothing from it. */
START_TEST(test_v2_claimed_shape_the_data_does_not_fill_is_400)
{
    loaded l = load(SINE);
    const char *msg;
    const char *claim = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1024,"
                        "100000,1],\"data\":[1,2]}]}";
    ck_assert_int_lt(strlen(claim), 100);
    ck_assert_int_eq(run(api_wire_v2(), l.m, claim, strlen(claim), &LIM, &msg), 400);
    ck_assert_msg(strstr(msg, "2 values, but shape says 102400000"), "%s", msg);
    const char *wide = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1024,"
                       "100000,4096],\"data\":[1]}]}";
    ck_assert_int_eq(run(api_wire_v2(), l.m, wide, strlen(wide), &LIM, &msg), 400);
    unload(&l);
}
END_TEST

/* Issue 15, item 13: v2 reads numbers as v1 does, correctly rounded to float32 (not through a
 * double), and says what v1 says of an empty body. */
START_TEST(test_v2_rounds_as_v1_and_names_an_empty_body)
{
    loaded l = load(SINE);
    const char *num = "1.00000005960464477539147203294725430033";
    char v1[256], v2[512];
    snprintf(v1, sizeof v1, "{\"inputs\": [[%s]]}", num);
    snprintf(v2, sizeof v2,
             "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,1,1],"
             "\"data\":[%s]}]}",
             num);
    const char *bodies[2] = {v1, v2};
    const api_wire *wires[2] = {api_wire_v1(), api_wire_v2()};
    for (int i = 0; i < 2; i++) {
        api_call *c;
        char *err;
        size_t err_len;
        ck_assert_int_eq(
            api_decode(wires[i], l.m, bodies[i], strlen(bodies[i]), &LIM, &c, &err, &err_len), 200);
        ck_assert_float_eq(api_call_batch(c)->x[0], nextafterf(1.0f, 2.0f)); /* 1.0000001 */
        api_call_free(c);
    }
    const char *m1, *m2;
    static char keep[512];
    ck_assert_int_eq(run(api_wire_v1(), l.m, "", 0, &LIM, &m1), 400);
    snprintf(keep, sizeof keep, "%s", m1);
    ck_assert_int_eq(run(api_wire_v2(), l.m, "", 0, &LIM, &m2), 400);
    ck_assert_str_eq(m2, keep);
    ck_assert_ptr_nonnull(strstr(keep, "empty request body"));
    unload(&l);
}
END_TEST

/* Issue 15, item 14: 1e400 is well-formed JSON; it is named at its path, as 1e39 is. */
START_TEST(test_number_past_a_double_is_named_by_path)
{
    loaded l = load(SINE);
    const char *msg;
    const char *v1 = "{\"inputs\": [[0, 1e400]]}";
    ck_assert_int_eq(run(api_wire_v1(), l.m, v1, strlen(v1), &LIM, &msg), 400);
    ck_assert_str_eq(msg, "inputs[0][1]: 1e400 is not representable as float32");
    const char *v1b = "{\"inputs\": [[[0], [-1e400]]]}";
    ck_assert_int_eq(run(api_wire_v1(), l.m, v1b, strlen(v1b), &LIM, &msg), 400);
    ck_assert_str_eq(msg, "inputs[0][1][0]: -1e400 is not representable as float32");
    const char *v2 = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,2,1],"
                     "\"data\":[0,1e400]}]}";
    ck_assert_int_eq(run(api_wire_v2(), l.m, v2, strlen(v2), &LIM, &msg), 400);
    ck_assert_str_eq(msg, "inputs[input].data[1]: 1e400 is not representable as float32");
    unload(&l);
}
END_TEST

/* Issue 15, item 6: the "return" messages list exactly the parts this model has. */
START_TEST(test_return_messages_list_the_parts_the_model_has)
{
    loaded sine = load(SINE), head = load(HEAD);
    const char *msg, *body = "{\"inputs\": [[0]], \"return\": [\"x\"]}";
    ck_assert_int_eq(run(api_wire_v1(), sine.m, body, strlen(body), &LIM, &msg), 400);
    ck_assert_str_eq(msg, "return[0]: \"x\" is not a part of the response (expected \"outputs\" "
                          "or \"hidden\")");
    body = "{\"inputs\": [[[0, 0, 0]]], \"return\": [\"x\"]}";
    ck_assert_int_eq(run(api_wire_v1(), head.m, body, strlen(body), &LIM, &msg), 400);
    ck_assert_str_eq(msg, "return[0]: \"x\" is not a part of the response (expected \"outputs\", "
                          "\"hidden\" or \"predictions\")");
    body = "{\"inputs\": [[[0, 0, 0]]], \"return\": 1}";
    ck_assert_int_eq(run(api_wire_v1(), head.m, body, strlen(body), &LIM, &msg), 400);
    ck_assert_str_eq(msg, "return: expected an array of \"outputs\", \"hidden\" or "
                          "\"predictions\", got a number");
    body = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,1,3],"
           "\"data\":[0,0,0]}],\"outputs\":[{\"name\":\"c_n\"}]}";
    ck_assert_int_eq(run(api_wire_v2(), head.m, body, strlen(body), &LIM, &msg), 400);
    ck_assert_str_eq(msg, "outputs[0]: unknown output \"c_n\" (this model has \"output\", "
                          "\"h_n\" or \"predictions\")");
    unload(&sine);
    unload(&head);
}
END_TEST

/* The request's own deadline reaches the call (the scheduler reads it): "timeout_ms" on v1,
 * parameters.timeout in microseconds on v2, as Triton's clients send it; bad values are 400s
 * naming the field. */
static int64_t timeout_of(const api_wire *w, const rnn_model *m, const char *body, int *status,
                          char *msg, size_t msglen)
{
    api_call *c = NULL;
    char *err = NULL;
    size_t elen = 0;
    *status = api_decode(w, m, body, strlen(body), &LIM, &c, &err, &elen);
    msg[0] = '\0';
    if (err)
        snprintf(msg, msglen, "%s", message_of(err, elen));
    free(err);
    int64_t t = c ? api_call_timeout_us(c) : -1;
    api_call_free(c);
    return t;
}

START_TEST(test_request_deadline_reaches_the_call)
{
    loaded l = load(SINE);
    int st;
    char msg[1024];
    ck_assert_int_eq(timeout_of(api_wire_v1(), l.m, "{\"inputs\": [[1, 2]]}", &st, msg, sizeof msg),
                     0);
    ck_assert_int_eq(st, 200);
    ck_assert_int_eq(timeout_of(api_wire_v1(), l.m, "{\"inputs\": [[1, 2]], \"timeout_ms\": 250}",
                                &st, msg, sizeof msg),
                     250000);
    ck_assert_int_eq(timeout_of(api_wire_v1(), l.m, "{\"timeout_ms\": 0.5, \"inputs\": [[1]]}", &st,
                                msg, sizeof msg),
                     500);
    const char *bad[] = {"0", "-3", "\"5\"", "3600001", "null"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"inputs\": [[1]], \"timeout_ms\": %s}", bad[i]);
        timeout_of(api_wire_v1(), l.m, body, &st, msg, sizeof msg);
        ck_assert_msg(st == 400 && strstr(msg, "timeout_ms"), "%s: %d %s", body, st, msg);
    }
    const char *v2 = "{\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", \"shape\": "
                     "[1, 2, 1], \"data\": [1, 2]}], \"parameters\": {\"binary_data_output\": "
                     "false, \"timeout\": 1500000}}";
    ck_assert_int_eq(timeout_of(api_wire_v2(), l.m, v2, &st, msg, sizeof msg), 1500000);
    ck_assert_int_eq(st, 200);
    const char *v2bad = "{\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", "
                        "\"shape\": [1, 1, 1], \"data\": [1]}], \"parameters\": {\"timeout\": "
                        "-1}}";
    timeout_of(api_wire_v2(), l.m, v2bad, &st, msg, sizeof msg);
    ck_assert_msg(st == 400 && strstr(msg, "parameters.timeout"), "%d %s", st, msg);
    const char *v2bad2 = "{\"inputs\": [{\"name\": \"input\", \"datatype\": \"FP32\", "
                         "\"shape\": [1, 1, 1], \"data\": [1]}], \"parameters\": [1]}";
    timeout_of(api_wire_v2(), l.m, v2bad2, &st, msg, sizeof msg);
    ck_assert_msg(st == 400 && strstr(msg, "parameters"), "%d %s", st, msg);
    unload(&l);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("forward");
    TCase *tc = tcase_create("stages");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_stages_give_the_bytes_of_api_forward);
    tcase_add_test(tc, test_result_buffers_follow_what_is_returned);
    tcase_add_test(tc, test_padded_layout_is_bounded_and_estimates_are_honest);
    tcase_add_test(tc, test_v2_padded_output_is_bounded);
    tcase_add_test(tc, test_v2_claimed_shape_the_data_does_not_fill_is_400);
    tcase_add_test(tc, test_v2_rounds_as_v1_and_names_an_empty_body);
    tcase_add_test(tc, test_number_past_a_double_is_named_by_path);
    tcase_add_test(tc, test_return_messages_list_the_parts_the_model_has);
    tcase_add_test(tc, test_request_deadline_reaches_the_call);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
