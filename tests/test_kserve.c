/* test_kserve.c - the Open Inference Protocol (KServe v2) surface: padded tensors in, PyTorch's
 * layouts out, against the PyTorch fixtures; its errors; and the /v2 routes over real HTTP.
 *
 * The requests are written by hand from the protocol's spec (inference_rest.md): a FP32 `input`
 * [batch, max_len, input_size] with row-major data, an INT64 `lengths`, and `outputs` naming
 * what to return. */
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnserve/api.h"
#include "rnnserve/config.h"
#include "rnnserve/server.h"
#include "httpc.h"
#include "testutil.h"

static json_t *load_json(const char *fmt, const char *name)
{
    char path[512];
    json_error_t err;
    snprintf(path, sizeof path, fmt, name);
    json_t *j = json_load_file(path, JSON_DECODE_INT_AS_REAL, &err);
    ck_assert_msg(j != NULL, "%s: %s", path, err.text);
    return j;
}

/* A number at PyTorch-layout position of the fixture's expected JSON: outputs[b][t][k] (or
 * predictions[b][t][k]) with
 * zero padding past each length, or hidden[b][row][u] read as h_n[row][b][u]. */
static double want_steps(json_t *exp, const char *key, size_t b, size_t t, size_t k)
{
    json_t *seq = json_array_get(json_object_get(exp, key), b);
    if (t >= json_array_size(seq))
        return 0.0;
    return json_number_value(json_array_get(json_array_get(seq, t), k));
}

static double want_state(json_t *exp, const char *key, size_t row, size_t b, size_t u)
{
    json_t *seq = json_array_get(json_object_get(exp, key), b);
    return json_number_value(json_array_get(json_array_get(seq, row), u));
}

/* Builds the v2 request for a fixture's native request: pads the ragged inputs, transposes
 * h0/c0 to [L*D, B, H]. */
static char *v2_request(json_t *req, const rnn_info *in)
{
    json_t *inputs = json_object_get(req, "inputs");
    size_t B = json_array_size(inputs), T = 0, I = (size_t)in->input_size;
    for (size_t b = 0; b < B; b++)
        if (json_array_size(json_array_get(inputs, b)) > T)
            T = json_array_size(json_array_get(inputs, b));
    json_t *data = json_array(), *lengths = json_array();
    for (size_t b = 0; b < B; b++) {
        json_t *seq = json_array_get(inputs, b);
        json_array_append_new(lengths, json_integer((json_int_t)json_array_size(seq)));
        for (size_t t = 0; t < T; t++)
            for (size_t k = 0; k < I; k++) {
                json_t *step = json_array_get(seq, t);
                double v = !step                  ? 0.0
                           : json_is_number(step) ? json_number_value(step)
                                                  : json_number_value(json_array_get(step, k));
                json_array_append_new(data, json_real(v));
            }
    }
    json_t *tensors =
        json_pack("[{s:s,s:[I,I,I],s:s,s:o},{s:s,s:[I],s:s,s:o}]", "name", "input", "shape",
                  (json_int_t)B, (json_int_t)T, (json_int_t)I, "datatype", "FP32", "data", data,
                  "name", "lengths", "shape", (json_int_t)B, "datatype", "INT64", "data", lengths);
    const char *states[] = {"h0", "c0"};
    size_t LD = (size_t)(in->num_layers * in->num_directions), H = (size_t)in->hidden_size;
    for (int s = 0; s < 2; s++) {
        json_t *st = json_object_get(req, states[s]);
        if (!st)
            continue;
        json_t *flat = json_array();
        for (size_t row = 0; row < LD; row++)
            for (size_t b = 0; b < B; b++)
                for (size_t u = 0; u < H; u++)
                    json_array_append_new(flat, json_real(want_state(req, states[s], row, b, u)));
        json_array_append_new(tensors, json_pack("{s:s,s:[I,I,I],s:s,s:o}", "name", states[s],
                                                 "shape", (json_int_t)LD, (json_int_t)B,
                                                 (json_int_t)H, "datatype", "FP32", "data", flat));
    }
    json_t *root = json_pack("{s:s,s:o}", "id", "fixture", "inputs", tensors);
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

START_TEST(test_v2_infer_matches_pytorch_padded_layouts)
{
    char *manifest = tu_read_file("tests/fixtures/cases/MANIFEST", NULL);
    ck_assert_ptr_nonnull(manifest);
    size_t cases = 0, heads = 0;
    for (char *name = strtok(manifest, "\n"); name; name = strtok(NULL, "\n")) {
        char path[512], err[512];
        cfg_config *cfg;
        rnn_model *m;
        snprintf(path, sizeof path, "tests/fixtures/cases/%s/config.json", name);
        ck_assert_msg(cfg_load_file(path, &cfg, err, sizeof err) == 0, "%s", err);
        ck_assert_msg(rnn_model_load(&cfg->models[0], &m, err, sizeof err) == 0, "%s", err);
        const rnn_info *in = rnn_model_info(m);
        json_t *req = load_json("tests/fixtures/cases/%s/request.json", name);
        json_t *exp = load_json("tests/fixtures/cases/%s/expected.json", name);
        char *body = v2_request(req, in), *out;
        size_t len;
        api_limits lim = {1024, 100000};
        int status = api_forward(api_wire_v2(), m, body, strlen(body), &lim, &out, &len, NULL);
        ck_assert_msg(status == 200, "%s: %d %.*s", name, status, (int)len, out);
        json_t *resp = json_loadb(out, len, 0, NULL);
        ck_assert_ptr_nonnull(resp);
        ck_assert_str_eq(json_string_value(json_object_get(resp, "model_name")), name);
        ck_assert_str_eq(json_string_value(json_object_get(resp, "id")), "fixture");
        json_t *outs = json_object_get(resp, "outputs");
        /* by default every output the model has: a head model's predictions too */
        ck_assert_uint_eq(json_array_size(outs),
                          (in->type == RNN_CELL_LSTM ? 3 : 2) + (in->head_size > 0));
        const size_t B = json_array_size(json_object_get(req, "inputs"));
        const size_t DH = (size_t)(in->num_directions * in->hidden_size);
        const size_t LD = (size_t)(in->num_layers * in->num_directions);
        const size_t H = (size_t)in->hidden_size;
        for (size_t o = 0; o < json_array_size(outs); o++) {
            json_t *t = json_array_get(outs, o);
            const char *tn = json_string_value(json_object_get(t, "name"));
            json_t *shape = json_object_get(t, "shape"), *data = json_object_get(t, "data");
            ck_assert_str_eq(json_string_value(json_object_get(t, "datatype")), "FP32");
            size_t d0 = (size_t)json_integer_value(json_array_get(shape, 0));
            size_t d1 = (size_t)json_integer_value(json_array_get(shape, 1));
            size_t d2 = (size_t)json_integer_value(json_array_get(shape, 2));
            ck_assert_uint_eq(json_array_size(data), d0 * d1 * d2);
            for (size_t i = 0; i < d0; i++)
                for (size_t j = 0; j < d1; j++)
                    for (size_t k = 0; k < d2; k++) {
                        double got = json_number_value(json_array_get(data, (i * d1 + j) * d2 + k));
                        double want = strcmp(tn, "output") == 0
                                          ? want_steps(exp, "outputs", i, j, k)
                                      : strcmp(tn, "predictions") == 0
                                          ? want_steps(exp, "predictions", i, j, k)
                                      : strcmp(tn, "h_n") == 0 ? want_state(exp, "hidden", i, j, k)
                                                               : want_state(exp, "cell", i, j, k);
                        ck_assert_msg(fabs(got - want) <= 1e-5, "%s %s[%zu][%zu][%zu]: %g vs %g",
                                      name, tn, i, j, k, got, want);
                    }
            if (strcmp(tn, "output") == 0) {
                ck_assert_uint_eq(d0, B);
                ck_assert_uint_eq(d2, DH);
            } else if (strcmp(tn, "predictions") == 0) {
                ck_assert_uint_eq(d0, B);
                ck_assert_uint_eq(d2, (size_t)in->head_size);
                heads++;
            } else {
                ck_assert_uint_eq(d0, LD);
                ck_assert_uint_eq(d1, B);
                ck_assert_uint_eq(d2, H);
            }
        }
        json_decref(resp);
        json_decref(req);
        json_decref(exp);
        free(body);
        free(out);
        rnn_model_free(m);
        cfg_free(cfg);
        cases++;
    }
    free(manifest);
    ck_assert_uint_gt(cases, 20);
    ck_assert_uint_ge(heads, 3); /* head_linear, head_sigmoid, head_softmax */
}
END_TEST

/* The sine model (rnn 1 -> 4) for the error tests. */
static rnn_model *sine(cfg_config **cfg)
{
    char err[512];
    rnn_model *m;
    ck_assert(cfg_load_file("config/default.json", cfg, err, sizeof err) == 0);
    ck_assert(rnn_model_load(&(*cfg)->models[0], &m, err, sizeof err) == 0);
    return m;
}

/* Runs BODY on the sine model; returns the status and the error text (static). */
static int infer(const char *body, const char **error)
{
    static char msg[600];
    cfg_config *cfg;
    rnn_model *m = sine(&cfg);
    char *out;
    size_t len;
    api_limits lim = {4, 10};
    int status = api_forward(api_wire_v2(), m, body, strlen(body), &lim, &out, &len, NULL);
    json_t *j = json_loadb(out, len, 0, NULL);
    ck_assert_ptr_nonnull(j);
    snprintf(msg, sizeof msg, "%s",
             json_is_string(json_object_get(j, "error"))
                 ? json_string_value(json_object_get(j, "error"))
                 : "");
    if (error)
        *error = msg;
    json_decref(j);
    free(out);
    rnn_model_free(m);
    cfg_free(cfg);
    return status;
}

#define INPUT(shape, data)                                                                         \
    "{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":" shape ",\"data\":" data "}"

START_TEST(test_v2_errors_use_the_protocol_error_body)
{
    const char *e;
    ck_assert_int_eq(infer("{", &e), 400);
    ck_assert_ptr_nonnull(strstr(e, "malformed JSON"));
    ck_assert_int_eq(infer("{\"inputs\":[]}", &e), 400);
    ck_assert_int_eq(infer("{\"inputs\":[" INPUT("[1,2,2]", "[1,2,3,4]") "]}", &e), 400);
    ck_assert_ptr_nonnull(strstr(e, "expected [batch, max_len, 1]"));
    ck_assert_int_eq(infer("{\"inputs\":[" INPUT("[1,2,1]", "[1,2,3]") "]}", &e), 400);
    ck_assert_ptr_nonnull(strstr(e, "3 values, but shape says 2"));
    ck_assert_int_eq(infer("{\"inputs\":[" INPUT("[1,2,1]", "[1,\"a\"]") "]}", &e), 400);
    ck_assert_int_eq(infer("{\"inputs\":[" INPUT("[1,1,1]", "[1e39]") "]}", &e), 400);
    ck_assert_ptr_nonnull(strstr(e, "not representable as float32"));
    ck_assert_int_eq(infer("{\"inputs\":[" INPUT("[5,1,1]", "[1,2,3,4,5]") "]}", &e), 413);
    ck_assert_int_eq(infer("{\"inputs\":[" INPUT("[1,11,1]", "[1,2,3,4,5,6,7,8,9,10,11]") "]}", &e),
                     413);
    ck_assert_int_eq(
        infer("{\"inputs\":[" INPUT("[1,1,1]", "[1]") ",{\"name\":\"x\",\"shape\":[1],"
                                                      "\"datatype\":\"FP32\",\"data\":[1]}]}",
              &e),
        400);
    ck_assert_ptr_nonnull(strstr(e, "unknown input \"x\""));
    ck_assert_int_eq(infer("{\"inputs\":[" INPUT(
                               "[1,1,1]", "[1]") ",{\"name\":\"c0\",\"shape\":[1,"
                                                 "1,4],\"datatype\":\"FP32\",\"data\":[1,2,3,4]}]}",
                           &e),
                     400);
    ck_assert_int_eq(infer("{\"inputs\":[" INPUT(
                               "[1,2,1]", "[1,2]") ",{\"name\":\"lengths\",\"shape"
                                                   "\":[1],\"datatype\":\"INT64\",\"data\":[3]}]}",
                           &e),
                     400);
    ck_assert_ptr_nonnull(strstr(e, "outside [0, 2]"));
    ck_assert_int_eq(
        infer("{\"inputs\":[" INPUT("[1,2,1]",
                                    "[1,2]") ",{\"name\":\"lengths\",\"shape"
                                             "\":[1],\"datatype\":\"INT64\",\"data\":[1.5]}]}",
              &e),
        400);
    ck_assert_int_eq(
        infer("{\"inputs\":[" INPUT("[1,1,1]", "[1]") "],\"outputs\":[{\"name\":\"c_n\"}]}", &e),
        400);
    ck_assert_ptr_nonnull(strstr(e, "unknown output \"c_n\""));
    ck_assert_int_eq(infer("{\"inputs\":[" INPUT("[1,1,1]", "[1]") "]}", &e), 200);
}
END_TEST

START_TEST(test_v2_outputs_parameter_selects_tensors_and_lengths_default_to_max_len)
{
    cfg_config *cfg;
    rnn_model *m = sine(&cfg);
    const char *body = "{\"inputs\":[" INPUT("[2,3,1]", "[[[0],[0.1411],[-0.2794]],[[0],[0.1411],"
                                                        "[-0.2794]]]") "],\"outputs\":[{\"name\":"
                                                                       "\"h_n\"}]}";
    char *out;
    size_t len;
    api_limits lim = {4, 10};
    ck_assert_int_eq(api_forward(api_wire_v2(), m, body, strlen(body), &lim, &out, &len, NULL),
                     200);
    json_t *j = json_loadb(out, len, 0, NULL), *outs = json_object_get(j, "outputs");
    ck_assert_uint_eq(json_array_size(outs), 1);
    json_t *hn = json_array_get(outs, 0), *data = json_object_get(hn, "data");
    ck_assert_str_eq(json_string_value(json_object_get(hn, "name")), "h_n");
    /* both sequences are 3 steps long: both final states are the README's answer */
    const double want[4] = {0.11202405, 0.42659247, 0.24675381, 0.18257815};
    for (size_t b = 0; b < 2; b++)
        for (size_t u = 0; u < 4; u++)
            ck_assert_double_eq_tol(json_number_value(json_array_get(data, b * 4 + u)), want[u],
                                    1e-6);
    ck_assert_ptr_null(json_object_get(j, "id"));
    json_decref(j);
    free(out);
    rnn_model_free(m);
    cfg_free(cfg);
}
END_TEST

START_TEST(test_v2_model_metadata_has_variable_dims)
{
    cfg_config *cfg;
    rnn_model *m = sine(&cfg);
    size_t len;
    char *s = api_model_metadata(api_wire_v2(), rnn_model_info(m), 0, &len);
    json_t *j = json_loads(s, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "sine");
    json_t *input = json_array_get(json_object_get(j, "inputs"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(input, "name")), "input");
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(input, "shape"), 0)), -1);
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(input, "shape"), 2)), 1);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "outputs")), 2);
    json_decref(j);
    free(s);
    rnn_model_free(m);
    cfg_free(cfg);
}
END_TEST

/* --- over HTTP --------------------------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len;
} sink;

/* METHOD PATH; the body lands in *OUT (free out->data). */
static long http(int port, const char *method, const char *path, const char *body, sink *out)
{
    httpc_resp r;
    ck_assert_int_eq(httpc(port, method, path, body, NULL, &r), CURLE_OK);
    out->data = r.body;
    out->len = r.len;
    free(r.headers);
    return r.status;
}

START_TEST(test_v2_routes_over_http)
{
    cfg_config *cfg;
    srv *s;
    char err[512];
    ck_assert(cfg_load_file("config/default.json", &cfg, err, sizeof err) == 0);
    free(cfg->server.host);
    cfg->server.host = strdup("127.0.0.1");
    cfg->server.port = 0;
    ck_assert_msg(srv_start(cfg, &s, err, sizeof err) == 0, "%s", err);
    int port = srv_port(s);
    struct {
        const char *method, *path, *body;
        long status;
        const char *contains;
    } cases[] = {
        {"GET", "/v2/health/live", NULL, 200, "\"live\":true"},
        {"GET", "/v2/health/ready", NULL, 200, "\"ready\":true"},
        {"GET", "/v2", NULL, 200, "\"name\":\"rnnserve\""},
        {"GET", "/v2/models/sine", NULL, 200, "\"platform\":\"rnnserve\""},
        {"GET", "/v2/models/sine/ready", NULL, 200, "\"ready\":true"},
        {"POST", "/v2/models/sine/infer",
         "{\"inputs\":[" INPUT("[1,3,1]", "[0.0,0.1411,-0.2794]") "]}", 200,
         "\"name\":\"h_n\",\"datatype\":\"FP32\",\"shape\":[1,1,4],\"data\":[0.1120240"},
        {"GET", "/v2/models/sine/infer", NULL, 405, "{\"error\":\"method GET"},
        {"POST", "/v2/models/nope/infer", "{}", 404, "{\"error\":\"model \\\"nope\\\" not found"},
        {"GET", "/v2/models/sine/other", NULL, 404, "{\"error\":\"no route"},
        {"POST", "/v2/models/sine/infer", "[", 400, "{\"error\":\"malformed JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sink out = {0};
        long st = http(port, cases[i].method, cases[i].path, cases[i].body, &out);
        ck_assert_msg(st == cases[i].status, "%s %s: %ld", cases[i].method, cases[i].path, st);
        ck_assert_msg(out.data && strstr(out.data, cases[i].contains), "%s %s: %s", cases[i].method,
                      cases[i].path, out.data ? out.data : "(empty)");
        free(out.data);
    }
    srv_stop(s);
    cfg_free(cfg);
}
END_TEST

/* A head model over HTTP: v2 answers its predictions (named, or by default) with the numbers v1
 * gives, padded as output is; both metadata routes describe the head and its outputs. */
START_TEST(test_v2_predictions_over_http_equal_v1s)
{
    cfg_config *cfg;
    srv *s;
    char err[512];
    ck_assert(
        cfg_load_file("tests/fixtures/cases/head_sigmoid/config.json", &cfg, err, sizeof err) == 0);
    free(cfg->server.host);
    cfg->server.host = strdup("127.0.0.1");
    cfg->server.port = 0;
    ck_assert_msg(srv_start(cfg, &s, err, sizeof err) == 0, "%s", err);
    const int port = srv_port(s);

    sink m1 = {0}, m2 = {0};
    ck_assert_int_eq(http(port, "GET", "/v1/models/head_sigmoid", NULL, &m1), 200);
    ck_assert_int_eq(http(port, "GET", "/v2/models/head_sigmoid", NULL, &m2), 200);
    json_t *j1 = json_loads(m1.data, 0, NULL), *j2 = json_loads(m2.data, 0, NULL);
    ck_assert_ptr_nonnull(j1);
    ck_assert_ptr_nonnull(j2);
    json_t *h1 = json_object_get(j1, "head"), *h2 = json_object_get(j2, "head");
    const json_int_t O = json_integer_value(json_object_get(h1, "out_features"));
    ck_assert_int_gt(O, 0);
    ck_assert_str_eq(json_string_value(json_object_get(h1, "activation")), "sigmoid");
    ck_assert_int_eq(json_integer_value(json_object_get(h2, "out_features")), O);
    ck_assert_str_eq(json_string_value(json_object_get(h2, "activation")), "sigmoid");
    json_t *parts = json_object_get(j1, "outputs"); /* a gru: no cell */
    ck_assert_uint_eq(json_array_size(parts), 3);
    ck_assert_str_eq(json_string_value(json_array_get(parts, 0)), "outputs");
    ck_assert_str_eq(json_string_value(json_array_get(parts, 1)), "hidden");
    ck_assert_str_eq(json_string_value(json_array_get(parts, 2)), "predictions");
    json_t *outs = json_object_get(j2, "outputs");
    ck_assert_uint_eq(json_array_size(outs), 3); /* output, h_n, predictions */
    json_t *pred = json_array_get(outs, 2), *shape = json_object_get(pred, "shape");
    ck_assert_str_eq(json_string_value(json_object_get(pred, "name")), "predictions");
    ck_assert_int_eq(json_integer_value(json_array_get(shape, 0)), -1);
    ck_assert_int_eq(json_integer_value(json_array_get(shape, 1)), -1);
    ck_assert_int_eq(json_integer_value(json_array_get(shape, 2)), O);
    json_decref(j1);
    json_decref(j2);
    free(m1.data);
    free(m2.data);

    const char *v1 = "{\"inputs\": [[[0.1, -0.2, 0.3], [0.4, 0.5, -0.6]], [[-0.7, 0.8, 0.9]]], "
                     "\"return\": [\"predictions\"]}";
    const char *v2[2] = {
        "{\"inputs\":[" INPUT(
            "[2,2,3]",
            "[0.1,-0.2,0.3,0.4,0.5,-0.6,-0.7,0.8,0.9,0,0,0]") ","
                                                              "{\"name\":\"lengths\",\"datatype\":"
                                                              "\"INT64\",\"shape\":[2],\"data\":[2,"
                                                              "1]}],"
                                                              "\"outputs\":[{\"name\":"
                                                              "\"predictions\"}]}",
        "{\"inputs\":[" INPUT(
            "[2,2,3]",
            "[0.1,-0.2,0.3,0.4,0.5,-0.6,-0.7,0.8,0.9,0,0,0]") ","
                                                              "{\"name\":\"lengths\",\"datatype\":"
                                                              "\"INT64\",\"shape\":[2],\"data\":[2,"
                                                              "1]}]}"};
    sink r1 = {0};
    ck_assert_int_eq(http(port, "POST", "/forward", v1, &r1), 200);
    json_t *v1resp = json_loads(r1.data, 0, NULL), *want = json_object_get(v1resp, "predictions");
    ck_assert_uint_eq(json_array_size(want), 2);
    for (int k = 0; k < 2; k++) {
        sink r2 = {0};
        ck_assert_int_eq(http(port, "POST", "/v2/models/head_sigmoid/infer", v2[k], &r2), 200);
        json_t *resp = json_loads(r2.data, 0, NULL);
        json_t *tensors = json_object_get(resp, "outputs"), *got = NULL;
        ck_assert_uint_eq(json_array_size(tensors), k == 0 ? 1 : 3);
        for (size_t i = 0; i < json_array_size(tensors); i++)
            if (strcmp(json_string_value(json_object_get(json_array_get(tensors, i), "name")),
                       "predictions") == 0)
                got = json_array_get(tensors, i);
        ck_assert_ptr_nonnull(got);
        json_t *gs = json_object_get(got, "shape"), *data = json_object_get(got, "data");
        ck_assert_int_eq(json_integer_value(json_array_get(gs, 0)), 2);
        ck_assert_int_eq(json_integer_value(json_array_get(gs, 1)), 2);
        ck_assert_int_eq(json_integer_value(json_array_get(gs, 2)), O);
        for (size_t b = 0; b < 2; b++)
            for (size_t t = 0; t < 2; t++)
                for (size_t o = 0; o < (size_t)O; o++) {
                    json_t *row = json_array_get(json_array_get(want, b), t);
                    const double w = row ? json_number_value(json_array_get(row, o)) : 0.0;
                    const double g =
                        json_number_value(json_array_get(data, (b * 2 + t) * (size_t)O + o));
                    ck_assert_msg(g == w, "predictions[%zu][%zu][%zu]: v2 %.9g, v1 %.9g", b, t, o,
                                  g, w);
                }
        json_decref(resp);
        free(r2.data);
    }
    json_decref(v1resp);
    free(r1.data);
    srv_stop(s);
    cfg_free(cfg);
}
END_TEST

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    Suite *s = suite_create("kserve");
    TCase *tc = tcase_create("infer");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_v2_infer_matches_pytorch_padded_layouts);
    tcase_add_test(tc, test_v2_errors_use_the_protocol_error_body);
    tcase_add_test(tc, test_v2_outputs_parameter_selects_tensors_and_lengths_default_to_max_len);
    tcase_add_test(tc, test_v2_model_metadata_has_variable_dims);
    suite_add_tcase(s, tc);
    tc = tcase_create("http");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_v2_routes_over_http);
    tcase_add_test(tc, test_v2_predictions_over_http_equal_v1s);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
