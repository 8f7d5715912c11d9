/* test_binary.c - the binary tensor data extension on /v2 (Triton's extension_binary_data.md)
 * and HTTP compression on every route: requests built byte by byte from the spec's layout and
 * exactly as NVIDIA's Python client (tritonclient.http) builds them, mixed JSON and binary
 * inputs, every mismatch's 400, binary outputs compared bit for bit with the JSON path's, and
 * PyTorch's numbers (tests/fixtures/cases). */
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <zlib.h>

#define FUZZ_NO_MAIN
#include "fuzz/fuzz_binary.c"

#include <dirent.h>

#include "rnnserve/api.h"
#include "rnnserve/buf.h"
#include "rnnserve/config.h"
#include "rnnserve/server.h"
#include "httpc.h"
#include "testutil.h"

static const api_limits LIM = {1024, 100000};

static rnn_model *load_model(const char *name)
{
    char path[512], err[512];
    cfg_config *cfg;
    rnn_model *m;
    snprintf(path, sizeof path, "tests/fixtures/cases/%s/config.json", name);
    ck_assert_msg(cfg_load_file(path, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(rnn_model_load(&cfg->models[0], &m, err, sizeof err) == 0, "%s", err);
    cfg_free(cfg);
    return m;
}

static json_t *load_json(const char *name, const char *file)
{
    char path[512];
    json_error_t err;
    snprintf(path, sizeof path, "tests/fixtures/cases/%s/%s", name, file);
    json_t *j = json_load_file(path, JSON_DECODE_INT_AS_REAL, &err);
    ck_assert_msg(j != NULL, "%s: %s", path, err.text);
    return j;
}

/* A fixture's request as the v2 tensors: input [B, T, I] zero-padded, lengths [B], and h0/c0
 * [L*D, B, H] when the request has them (NULL otherwise). Malloc'ed, the caller frees. */
typedef struct {
    size_t B, T, I, LD, H;
    float *x, *h0, *c0;
    int64_t *lengths;
} tensors;

static void fixture_tensors(const char *name, const rnn_info *in, tensors *t)
{
    json_t *req = load_json(name, "request.json");
    json_t *inputs = json_object_get(req, "inputs");
    memset(t, 0, sizeof *t);
    t->B = json_array_size(inputs);
    t->I = (size_t)in->input_size;
    t->LD = (size_t)(in->num_layers * in->num_directions);
    t->H = (size_t)in->hidden_size;
    for (size_t b = 0; b < t->B; b++)
        if (json_array_size(json_array_get(inputs, b)) > t->T)
            t->T = json_array_size(json_array_get(inputs, b));
    t->x = calloc(t->B * t->T * t->I + 1, sizeof *t->x);
    t->lengths = calloc(t->B, sizeof *t->lengths);
    for (size_t b = 0; b < t->B; b++) {
        json_t *seq = json_array_get(inputs, b);
        t->lengths[b] = (int64_t)json_array_size(seq);
        for (size_t s = 0; s < json_array_size(seq); s++)
            for (size_t k = 0; k < t->I; k++) {
                json_t *step = json_array_get(seq, s);
                t->x[(b * t->T + s) * t->I + k] =
                    (float)(json_is_number(step) ? json_number_value(step)
                                                 : json_number_value(json_array_get(step, k)));
            }
    }
    const char *names[2] = {"h0", "c0"};
    float **dst[2] = {&t->h0, &t->c0};
    for (int s = 0; s < 2; s++) {
        json_t *st = json_object_get(req, names[s]);
        if (!st)
            continue;
        *dst[s] = malloc(t->LD * t->B * t->H * sizeof **dst[s]);
        for (size_t row = 0; row < t->LD; row++)
            for (size_t b = 0; b < t->B; b++)
                for (size_t u = 0; u < t->H; u++)
                    (*dst[s])[(row * t->B + b) * t->H + u] = (float)json_number_value(
                        json_array_get(json_array_get(json_array_get(st, b), row), u));
    }
    json_decref(req);
}

static void tensors_free(tensors *t)
{
    free(t->x);
    free(t->h0);
    free(t->c0);
    free(t->lengths);
}

/* One request through the forward path as the HTTP layer runs it. Returns the status; the body
 * in *out (free it), the response's Inference-Header-Content-Length in *hlen. */
static int run(rnn_model *m, const char *body, size_t len, const api_framing *f, char **out,
               size_t *outlen, size_t *hlen)
{
    api_call *c;
    int st = api_decode_framed(api_wire_v2(), m, body, len, f, &LIM, &c, out, outlen);
    *hlen = 0;
    if (st != 200)
        return st;
    st = api_compute_and_finish(c, out, outlen, NULL);
    *hlen = api_call_header_len(c);
    ck_assert_str_eq(api_call_content_type(c),
                     *hlen ? "application/octet-stream" : "application/json");
    api_call_free(c);
    return st;
}

/* A response's tensor NAME as floats, read the way tritonclient's InferResult does: from "data"
 * in the JSON, or from the bytes after the header at the offset the outputs' binary_data_size
 * before it add up to. Returns the element count (0 when absent); *BIN says which it was. */
static size_t response_tensor(const char *body, size_t len, size_t hlen, const char *name,
                              float *dst, size_t cap, int *bin)
{
    json_error_t err;
    json_t *root = json_loadb(body, hlen ? hlen : len, 0, &err);
    ck_assert_msg(root != NULL, "response header: %s: %.*s", err.text, (int)len, body);
    json_t *outs = json_object_get(root, "outputs"), *o;
    size_t i, off = 0, n = 0;
    *bin = -1;
    json_array_foreach(outs, i, o)
    {
        json_t *size = json_object_get(json_object_get(o, "parameters"), "binary_data_size");
        const int is_name = strcmp(json_string_value(json_object_get(o, "name")), name) == 0;
        ck_assert_str_eq(json_string_value(json_object_get(o, "datatype")), "FP32");
        if (size) {
            const size_t bytes = (size_t)json_integer_value(size);
            ck_assert_msg(json_object_get(o, "data") == NULL, "%s: data and binary", name);
            if (is_name) {
                ck_assert_uint_le(hlen + off + bytes, len);
                ck_assert_uint_le(bytes / 4, cap);
                memcpy(dst, body + hlen + off, bytes);
                n = bytes / 4;
                *bin = 1;
            }
            off += bytes;
        } else if (is_name) {
            json_t *v;
            size_t k;
            json_array_foreach(json_object_get(o, "data"), k, v)
            {
                ck_assert_uint_lt(k, cap);
                dst[k] = (float)json_number_value(v);
            }
            n = json_array_size(json_object_get(o, "data"));
            *bin = 0;
        }
    }
    if (hlen) /* the header's sizes account for every byte after it */
        ck_assert_uint_eq(hlen + off, len);
    json_decref(root);
    return n;
}

/* Appends N floats / int64s as their little-endian bytes, one byte at a time from the value's
 * bits: the spec's layout written without relying on the host's. */
static void put_le32(buf *b, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++)
            buf_putc(b, (char)(u >> (8 * k) & 0xff));
    }
}

static void put_le64(buf *b, const int64_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 8; k++)
            buf_putc(b, (char)((uint64_t)v[i] >> (8 * k) & 0xff));
}

static void put_le32i(buf *b, const int64_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++)
            buf_putc(b, (char)((uint32_t)(int32_t)v[i] >> (8 * k) & 0xff));
}

/* The JSON path's request for T: every tensor's "data" in the JSON. */
static char *json_request(const tensors *t, const char *extra)
{
    buf b = BUF_INIT;
    buf_printf(&b,
               "{\"inputs\":[{\"name\":\"input\",\"shape\":[%zu,%zu,%zu],\"datatype\":\"FP32\","
               "\"data\":[",
               t->B, t->T, t->I);
    for (size_t i = 0; i < t->B * t->T * t->I; i++)
        buf_printf(&b, "%s%.9g", i ? "," : "", (double)t->x[i]);
    buf_printf(&b, "]},{\"name\":\"lengths\",\"shape\":[%zu],\"datatype\":\"INT64\",\"data\":[",
               t->B);
    for (size_t i = 0; i < t->B; i++)
        buf_printf(&b, "%s%lld", i ? "," : "", (long long)t->lengths[i]);
    buf_puts(&b, "]}");
    const float *st[2] = {t->h0, t->c0};
    for (int s = 0; s < 2; s++) {
        if (!st[s])
            continue;
        buf_printf(&b, ",{\"name\":\"%s\",\"shape\":[%zu,%zu,%zu],\"datatype\":\"FP32\",\"data\":[",
                   s ? "c0" : "h0", t->LD, t->B, t->H);
        for (size_t i = 0; i < t->LD * t->B * t->H; i++)
            buf_printf(&b, "%s%.9g", i ? "," : "", (double)st[s][i]);
        buf_puts(&b, "]}");
    }
    buf_printf(&b, "]%s}", extra ? extra : "");
    size_t len;
    return buf_take(&b, &len);
}

/* The spec's layout, byte by byte: a JSON header naming each input's binary_data_size, then the
 * inputs' bytes in the header's order. *HLEN is the header's length. */
static char *binary_request(const tensors *t, const char *lengths_type, const char *extra,
                            size_t *len, size_t *hlen)
{
    const size_t lsize = strcmp(lengths_type, "INT32") == 0 ? 4 : 8;
    buf b = BUF_INIT;
    buf_printf(&b,
               "{\"inputs\":[{\"name\":\"input\",\"shape\":[%zu,%zu,%zu],\"datatype\":\"FP32\","
               "\"parameters\":{\"binary_data_size\":%zu}},{\"name\":\"lengths\",\"shape\":[%zu],"
               "\"datatype\":\"%s\",\"parameters\":{\"binary_data_size\":%zu}}",
               t->B, t->T, t->I, t->B * t->T * t->I * 4, t->B, lengths_type, t->B * lsize);
    const float *st[2] = {t->h0, t->c0};
    for (int s = 0; s < 2; s++)
        if (st[s])
            buf_printf(&b,
                       ",{\"name\":\"%s\",\"shape\":[%zu,%zu,%zu],\"datatype\":\"FP32\","
                       "\"parameters\":{\"binary_data_size\":%zu}}",
                       s ? "c0" : "h0", t->LD, t->B, t->H, t->LD * t->B * t->H * 4);
    buf_printf(&b, "]%s}", extra ? extra : "");
    *hlen = b.len;
    put_le32(&b, t->x, t->B * t->T * t->I);
    if (lsize == 4)
        put_le32i(&b, t->lengths, t->B);
    else
        put_le64(&b, t->lengths, t->B);
    for (int s = 0; s < 2; s++)
        if (st[s])
            put_le32(&b, st[s], t->LD * t->B * t->H);
    return buf_take(&b, len);
}

/* Every output of NAME's model, binary in and out, against the JSON path bit for bit. */
static void check_binary_equals_json(const char *name, const char *lengths_type)
{
    rnn_model *m = load_model(name);
    const rnn_info *in = rnn_model_info(m);
    tensors t;
    fixture_tensors(name, in, &t);
    char *jreq = json_request(&t, NULL), *jout, *bout;
    size_t blen, hlen, jlen, bl, bh, jh;
    char *breq = binary_request(&t, lengths_type, ",\"parameters\":{\"binary_data_output\":true}",
                                &blen, &hlen);
    api_framing f = {1, hlen};
    ck_assert_int_eq(run(m, jreq, strlen(jreq), NULL, &jout, &jlen, &jh), 200);
    ck_assert_msg(run(m, breq, blen, &f, &bout, &bl, &bh) == 200, "%s: %.*s", name, (int)bl, bout);
    ck_assert_uint_eq(jh, 0);
    ck_assert_uint_gt(bh, 0);
    static const char *const outs[] = {"output", "h_n", "c_n", "predictions"};
    size_t cap = t.B * t.T * 64 + t.LD * t.B * t.H + 16, seen = 0;
    float *a = malloc(cap * sizeof *a), *b = malloc(cap * sizeof *b);
    for (int k = 0; k < 4; k++) {
        int abin, bbin;
        size_t na = response_tensor(jout, jlen, 0, outs[k], a, cap, &abin);
        size_t nb = response_tensor(bout, bl, bh, outs[k], b, cap, &bbin);
        ck_assert_uint_eq(na, nb);
        if (!na)
            continue;
        ck_assert_msg(abin == 0 && bbin == 1, "%s %s: json %d binary %d", name, outs[k], abin,
                      bbin);
        ck_assert_msg(memcmp(a, b, na * sizeof *a) == 0, "%s %s: not bit for bit", name, outs[k]);
        seen++;
    }
    ck_assert_uint_ge(seen, 2);
    free(a);
    free(b);
    free(jreq);
    free(breq);
    free(jout);
    free(bout);
    tensors_free(&t);
    rnn_model_free(m);
}

START_TEST(test_spec_layout_binary_equals_json_bit_for_bit)
{
    check_binary_equals_json("lstm_h0c0", "INT64");
    check_binary_equals_json("lstm_h0c0", "INT32");
    check_binary_equals_json("head_sigmoid", "INT64");
    check_binary_equals_json("gru_h0", "INT32");
    check_binary_equals_json("ragged_mixed", "INT64");
}
END_TEST

/* The request tritonclient.http builds (_utils.py's _get_inference_request, _infer_input.py's
 * _get_tensor, rapidjson.dumps' compact output): for
 *   x = InferInput("input", [4, 5, 2], "FP32"); x.set_data_from_numpy(a)   # binary_data=True
 *   n = InferInput("lengths", [4], "INT64"); n.set_data_from_numpy(l)
 *   client.infer("lstm_h0c0", [x, n])                                       # no outputs named
 * the JSON header is exactly this, then a.tobytes() and l.tobytes(), with the header's length
 * in Inference-Header-Content-Length. Its outputs come back in binary (binary_data_output),
 * read as InferResult reads them, and equal PyTorch's within 1e-5. */
START_TEST(test_official_client_request_and_result)
{
    rnn_model *m = load_model("lstm_h0c0");
    const rnn_info *in = rnn_model_info(m);
    json_t *exp = load_json("lstm_h0c0", "expected.json");
    tensors t;
    fixture_tensors("lstm_h0c0", in, &t);
    free(t.h0); /* the expected outputs below are for zero initial states: compare h0/c0-less */
    free(t.c0);
    t.h0 = t.c0 = NULL;
    const char *header =
        "{\"inputs\":[{\"name\":\"input\",\"shape\":[4,5,2],\"datatype\":\"FP32\",\"parameters\":{"
        "\"binary_data_size\":160}},{\"name\":\"lengths\",\"shape\":[4],\"datatype\":\"INT64\","
        "\"parameters\":{\"binary_data_size\":32}}],\"parameters\":{\"binary_data_output\":true}}";
    buf b = BUF_INIT;
    buf_puts(&b, header);
    buf_append(&b, t.x, 160); /* numpy's tobytes(): the host's little-endian floats */
    buf_append(&b, t.lengths, 32);
    size_t len, outlen, hlen;
    char *body = buf_take(&b, &len), *out;
    api_framing f;
    char hv[32], err[160];
    snprintf(hv, sizeof hv, "%zu", strlen(header));
    ck_assert_int_eq(api_framing_parse(hv, &f, err, sizeof err), 0);
    ck_assert_int_eq(f.binary, 1);
    ck_assert_uint_eq(f.header_len, strlen(header));
    ck_assert_msg(run(m, body, len, &f, &out, &outlen, &hlen) == 200, "%.*s", (int)outlen, out);
    ck_assert_uint_gt(hlen, 0);
    /* every output in binary, each as the JSON path gives it for the same tensors */
    char *jreq = json_request(&t, NULL), *jout;
    size_t jlen, jh;
    ck_assert_int_eq(run(m, jreq, strlen(jreq), NULL, &jout, &jlen, &jh), 200);
    float v[256], w[256];
    int bin, jbin;
    static const char *const outs[] = {"output", "h_n", "c_n"};
    const size_t counts[] = {4 * 5 * 8, 2 * 4 * 4, 2 * 4 * 4};
    for (int k = 0; k < 3; k++) {
        ck_assert_uint_eq(response_tensor(out, outlen, hlen, outs[k], v, 256, &bin), counts[k]);
        ck_assert_uint_eq(response_tensor(jout, jlen, 0, outs[k], w, 256, &jbin), counts[k]);
        ck_assert_msg(bin == 1 && jbin == 0, "%s: %d %d", outs[k], bin, jbin);
        ck_assert_msg(memcmp(v, w, counts[k] * sizeof *v) == 0, "%s: not bit for bit", outs[k]);
    }
    free(out);
    /* with outputs named, client.infer("lstm_h0c0", [x, n], outputs=[InferRequestedOutput(
     * "output"), InferRequestedOutput("c_n")]) (binary_data=True by default) writes no request
     * parameters, and those two come back in binary, in its order */
    const char *named =
        "{\"inputs\":[{\"name\":\"input\",\"shape\":[4,5,2],\"datatype\":\"FP32\",\"parameters\":{"
        "\"binary_data_size\":160}},{\"name\":\"lengths\",\"shape\":[4],\"datatype\":\"INT64\","
        "\"parameters\":{\"binary_data_size\":32}}],\"outputs\":[{\"name\":\"output\","
        "\"parameters\":"
        "{\"binary_data\":true}},{\"name\":\"c_n\",\"parameters\":{\"binary_data\":true}}]}";
    buf nb = BUF_INIT;
    buf_puts(&nb, named);
    buf_append(&nb, t.x, 160);
    buf_append(&nb, t.lengths, 32);
    size_t nlen;
    char *nbody = buf_take(&nb, &nlen);
    f = (api_framing){1, strlen(named)};
    ck_assert_msg(run(m, nbody, nlen, &f, &out, &outlen, &hlen) == 200, "%.*s", (int)outlen, out);
    ck_assert_uint_eq(response_tensor(out, outlen, hlen, "h_n", v, 256, &bin), 0);
    for (int k = 0; k < 3; k += 2) {
        ck_assert_uint_eq(response_tensor(out, outlen, hlen, outs[k], v, 256, &bin), counts[k]);
        ck_assert_uint_eq(response_tensor(jout, jlen, 0, outs[k], w, 256, &jbin), counts[k]);
        ck_assert_msg(bin == 1 && memcmp(v, w, counts[k] * sizeof *v) == 0, "%s", outs[k]);
    }
    ck_assert_msg(strstr(out, "{\"name\":\"output\",\"datatype\":\"FP32\",\"shape\":[4,5,8],"
                              "\"parameters\":{\"binary_data_size\":640}}"),
                  "%.*s", (int)hlen, out);
    free(out);
    free(nbody);
    free(jout);
    free(jreq);
    /* the same request with h0 and c0 as binary inputs too, as set_data_from_numpy sends them,
     * against PyTorch's numbers */
    tensors_free(&t);
    fixture_tensors("lstm_h0c0", in, &t);
    size_t blen, bh;
    char *breq =
        binary_request(&t, "INT64", ",\"parameters\":{\"binary_data_output\":true}", &blen, &bh);
    f = (api_framing){1, bh};
    ck_assert_int_eq(run(m, breq, blen, &f, &out, &outlen, &hlen), 200);
    ck_assert_uint_eq(response_tensor(out, outlen, hlen, "output", v, 256, &bin), 4 * 5 * 8);
    json_t *expo = json_object_get(exp, "outputs");
    double worst = 0;
    for (size_t s = 0; s < 4; s++)
        for (size_t k = 0; k < 5; k++)
            for (size_t u = 0; u < 8; u++) {
                json_t *row = json_array_get(json_array_get(expo, s), k);
                const double want = row ? json_number_value(json_array_get(row, u)) : 0.0;
                worst = fmax(worst, fabs(v[(s * 5 + k) * 8 + u] - want));
            }
    ck_assert_msg(worst < 1e-5, "output differs from PyTorch by %g", worst);
    ck_assert_uint_eq(response_tensor(out, outlen, hlen, "h_n", v, 256, &bin), 2 * 4 * 4);
    json_t *exph = json_object_get(exp, "hidden");
    worst = 0;
    for (size_t r = 0; r < 2; r++)
        for (size_t s = 0; s < 4; s++)
            for (size_t u = 0; u < 4; u++)
                worst = fmax(worst, fabs(v[(r * 4 + s) * 4 + u] -
                                         json_number_value(json_array_get(
                                             json_array_get(json_array_get(exph, s), r), u))));
    ck_assert_msg(worst < 1e-5, "h_n differs from PyTorch by %g", worst);
    free(out);
    free(breq);
    free(body);
    tensors_free(&t);
    json_decref(exp);
    rnn_model_free(m);
}
END_TEST

/* Outputs named with InferRequestedOutput(name, binary_data=...): "binary_data" per output, and
 * over binary_data_output when both are given. */
START_TEST(test_binary_data_per_output_overrides_binary_data_output)
{
    rnn_model *m = load_model("lstm_h0c0");
    tensors t;
    fixture_tensors("lstm_h0c0", rnn_model_info(m), &t);
    struct {
        const char *extra;
        int output_bin, hn_bin; /* -1: not returned */
    } cases[] = {
        {",\"outputs\":[{\"name\":\"output\",\"parameters\":{\"binary_data\":true}},{\"name\":"
         "\"h_n\",\"parameters\":{\"binary_data\":false}}]",
         1, 0},
        {",\"outputs\":[{\"name\":\"h_n\",\"parameters\":{\"binary_data\":true}}]", -1, 1},
        {",\"outputs\":[{\"name\":\"h_n\"}],\"parameters\":{\"binary_data_output\":true}", -1, 1},
        {",\"outputs\":[{\"name\":\"output\",\"parameters\":{\"binary_data\":false}},{\"name\":"
         "\"h_n\"}],\"parameters\":{\"binary_data_output\":true}",
         0, 1},
        {",\"outputs\":[{\"name\":\"output\"},{\"name\":\"h_n\",\"parameters\":{\"binary_data\":"
         "false,\"classification\":0}}]",
         0, 0},
        {"", 0, 0},
        {",\"parameters\":{\"binary_data_output\":false}", 0, 0},
    };
    float *v = malloc(4096 * sizeof *v);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len, hlen, outlen, oh;
        char *body = binary_request(&t, "INT64", cases[i].extra, &len, &hlen), *out;
        api_framing f = {1, hlen};
        ck_assert_msg(run(m, body, len, &f, &out, &outlen, &oh) == 200, "case %zu: %.*s", i,
                      (int)outlen, out);
        int bin;
        const size_t n1 = response_tensor(out, outlen, oh, "output", v, 4096, &bin);
        ck_assert_msg(bin == cases[i].output_bin, "case %zu: output %d", i, bin);
        ck_assert_uint_eq(n1, cases[i].output_bin < 0 ? 0 : 4 * 5 * 8);
        response_tensor(out, outlen, oh, "h_n", v, 4096, &bin);
        ck_assert_msg(bin == cases[i].hn_bin, "case %zu: h_n %d", i, bin);
        ck_assert_msg((oh > 0) == (cases[i].output_bin == 1 || cases[i].hn_bin == 1),
                      "case %zu: header %zu", i, oh);
        free(out);
        free(body);
    }
    free(v);
    tensors_free(&t);
    rnn_model_free(m);
}
END_TEST

/* JSON and binary inputs in one request: each binary input's bytes in the order the header
 * lists the binary ones, JSON ones skipped. */
START_TEST(test_mixed_json_and_binary_inputs)
{
    rnn_model *m = load_model("lstm_h0c0");
    const rnn_info *in = rnn_model_info(m);
    tensors t;
    fixture_tensors("lstm_h0c0", in, &t);
    char *jreq = json_request(&t, NULL), *jout;
    size_t jlen, jh;
    ck_assert_int_eq(run(m, jreq, strlen(jreq), NULL, &jout, &jlen, &jh), 200);
    float want[64], got[64];
    int bin;
    const size_t nh = response_tensor(jout, jlen, 0, "h_n", want, 64, &bin);
    ck_assert_uint_eq(nh, 32);
    /* c0 first in the header and binary, lengths JSON, input binary, h0 JSON: the bytes are
     * c0's then input's */
    buf b = BUF_INIT;
    buf_printf(&b,
               "{\"inputs\":[{\"name\":\"c0\",\"shape\":[2,4,4],\"datatype\":\"FP32\","
               "\"parameters\":{\"binary_data_size\":128}},{\"name\":\"lengths\",\"shape\":[4],"
               "\"datatype\":\"INT32\",\"data\":[3,1,0,5]},{\"parameters\":{\"binary_data_size\":"
               "160},\"datatype\":\"FP32\",\"name\":\"input\",\"shape\":[4,5,2]},{\"name\":\"h0\","
               "\"shape\":[2,4,4],\"datatype\":\"FP32\",\"data\":[");
    for (size_t i = 0; i < 32; i++)
        buf_printf(&b, "%s%.9g", i ? "," : "", (double)t.h0[i]);
    buf_puts(&b, "]}]}");
    const size_t hlen = b.len;
    put_le32(&b, t.c0, 32);
    put_le32(&b, t.x, 40);
    size_t len, outlen, oh;
    char *body = buf_take(&b, &len), *out;
    api_framing f = {1, hlen};
    ck_assert_msg(run(m, body, len, &f, &out, &outlen, &oh) == 200, "%.*s", (int)outlen, out);
    ck_assert_uint_eq(oh, 0); /* nothing asked in binary: all JSON back */
    ck_assert_uint_eq(response_tensor(out, outlen, 0, "h_n", got, 64, &bin), 32);
    ck_assert(memcmp(want, got, sizeof got[0] * 32) == 0);
    free(out);
    free(body);
    free(jout);
    free(jreq);
    tensors_free(&t);
    rnn_model_free(m);
}
END_TEST

/* A token model's "tokens" in binary (INT32 or INT64 ids), and only_last's [batch, width] rows
 * in binary: the JSON path's numbers, bit for bit. */
START_TEST(test_binary_tokens_and_only_last)
{
    char err[512];
    cfg_config *cfg;
    rnn_model *m;
    ck_assert_msg(cfg_load_file("tests/fixtures/tokens/embed_gru_bidir/config.json", &cfg, err,
                                sizeof err) == 0,
                  "%s", err);
    ck_assert_msg(rnn_model_load(&cfg->models[0], &m, err, sizeof err) == 0, "%s", err);
    const int64_t ids[6] = {1, 6, 0, 3, 2, 5}, lens[2] = {3, 2};
    const char *json =
        "{\"inputs\":[{\"name\":\"tokens\",\"shape\":[2,3],\"datatype\":\"INT64\",\"data\":[1,6,"
        "0,3,2,5]},{\"name\":\"lengths\",\"shape\":[2],\"datatype\":\"INT64\",\"data\":[3,2]}],"
        "\"parameters\":{\"only_last\":true}}";
    char *jout, *bout;
    size_t jlen, jh, blen, bh;
    ck_assert_msg(run(m, json, strlen(json), NULL, &jout, &jlen, &jh) == 200, "%.*s", (int)jlen,
                  jout);
    for (int wide = 0; wide < 2; wide++) {
        buf b = BUF_INIT;
        buf_printf(&b,
                   "{\"inputs\":[{\"name\":\"tokens\",\"shape\":[2,3],\"datatype\":\"%s\","
                   "\"parameters\":{\"binary_data_size\":%d}},{\"name\":\"lengths\",\"shape\":[2],"
                   "\"datatype\":\"INT64\",\"parameters\":{\"binary_data_size\":16}}],"
                   "\"parameters\":{\"only_last\":true,\"binary_data_output\":true}}",
                   wide ? "INT64" : "INT32", wide ? 48 : 24);
        const size_t hlen = b.len;
        if (wide)
            put_le64(&b, ids, 6);
        else
            put_le32i(&b, ids, 6);
        put_le64(&b, lens, 2);
        size_t len;
        char *body = buf_take(&b, &len);
        api_framing f = {1, hlen};
        ck_assert_msg(run(m, body, len, &f, &bout, &blen, &bh) == 200, "%.*s", (int)blen, bout);
        static const char *const outs[] = {"output", "h_n", "predictions"};
        float a[64], c[64];
        for (int k = 0; k < 3; k++) {
            int abin, cbin;
            const size_t na = response_tensor(jout, jlen, 0, outs[k], a, 64, &abin);
            const size_t nc = response_tensor(bout, blen, bh, outs[k], c, 64, &cbin);
            ck_assert_msg(na > 0 && na == nc && abin == 0 && cbin == 1, "%s: %zu %zu", outs[k], na,
                          nc);
            ck_assert_msg(memcmp(a, c, na * sizeof *a) == 0, "%s: not bit for bit", outs[k]);
        }
        ck_assert_msg(strstr(bout, "\"name\":\"output\",\"datatype\":\"FP32\",\"shape\":[2,6]"),
                      "%.*s", (int)bh, bout);
        free(bout);
        free(body);
    }
    free(jout);
    rnn_model_free(m);
    cfg_free(cfg);
}
END_TEST

/* Every mismatch between the header and the bytes is a 400 naming it. */
START_TEST(test_mismatches_are_400s_naming_them)
{
    rnn_model *m = load_model("rnn_input1_bare");
    const char *in_ok = "{\"name\":\"input\",\"shape\":[1,3,1],\"datatype\":\"FP32\","
                        "\"parameters\":{\"binary_data_size\":12}}";
    struct {
        const char *header; /* %s: in_ok */
        size_t bytes;       /* binary bytes after the header */
        long hlen;          /* -1: the header's own length; -2: no framing */
        int status;
        const char *says;
    } cases[] = {
        {"{\"inputs\":[%s]}", 12, -1, 200, ""},
        {"{\"inputs\":[%s]}", 11, -1, 400, "past its end: 11 bytes follow"},
        {"{\"inputs\":[%s]}", 16, -1, 400, "add up to 12 bytes, but 16 bytes follow"},
        {"{\"inputs\":[%s]}", 12, 100000, 400, "past the end of the"},
        {"{\"inputs\":[%s]}", 12, 0, 400, "raw binary request"},
        {"{\"inputs\":[%s]}", 0, -2, 400, "needs the Inference-Header-Content-Length"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,3,1],\"datatype\":\"FP32\","
         "\"parameters\":{\"binary_data_size\":10}}]}",
         10, -1, 400, "10 bytes is not a whole number of FP32 elements (4 bytes each)"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,3,1],\"datatype\":\"FP32\","
         "\"parameters\":{\"binary_data_size\":16}}]}",
         16, -1, 400, "its shape holds 3 elements, but its binary_data_size of 16 bytes holds 4"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,3,1],\"datatype\":\"FP32\",\"data\":[1,2,"
         "3],\"parameters\":{\"binary_data_size\":12}}]}",
         12, -1, 400, "both \\\"data\\\" and parameters.binary_data_size"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,3,1],\"datatype\":\"FP64\","
         "\"parameters\":{\"binary_data_size\":24}}]}",
         24, -1, 400, "\\\"FP64\\\" is not accepted in binary (expected FP32)"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,3,1],\"datatype\":\"UINT8\","
         "\"parameters\":{\"binary_data_size\":3}}]}",
         3, -1, 400, "\\\"UINT8\\\" is not accepted in binary"},
        {"{\"inputs\":[%s,{\"name\":\"lengths\",\"shape\":[1],\"datatype\":\"FP32\","
         "\"parameters\":{\"binary_data_size\":4}}]}",
         16, -1, 400,
         "inputs[lengths].datatype: \\\"FP32\\\" is not accepted in binary "
         "(expected INT32 or INT64)"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,3,1],\"datatype\":\"FP32\","
         "\"parameters\":{\"binary_data_size\":-4}}]}",
         0, -1, 400, "inputs[input].parameters: expected an object whose binary_data_size"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,3,1],\"datatype\":\"FP32\","
         "\"parameters\":{\"binary_data_size\":\"12\"}}]}",
         12, -1, 400, "binary_data_size is a byte count"},
        {"{\"inputs\":[%s],\"parameters\":{\"binary_data_output\":1}}", 12, -1, 400,
         "parameters.binary_data_output: expected true or false"},
        {"{\"inputs\":[%s],\"outputs\":[{\"name\":\"h_n\",\"parameters\":{\"binary_data\":"
         "\"yes\"}}]}",
         12, -1, 400, "outputs[].parameters.binary_data: expected true or false"},
        {"{\"inputs\":[%s,{\"name\":\"lengths\",\"shape\":[1],\"datatype\":\"INT64\","
         "\"parameters\":{\"binary_data_size\":8}}]}",
         20, -1, 200, ""},
        {"{\"inputs\":[%s]}\xff", 12, -1, 400, "malformed JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char header[1024];
        snprintf(header, sizeof header, cases[i].header, in_ok);
        buf b = BUF_INIT;
        buf_puts(&b, header);
        for (size_t k = 0; k < cases[i].bytes; k++)
            buf_putc(&b, k >= 12 ? (k == 12 ? 3 : 0) : (k % 4 == 3 ? 0x3f : 0)); /* 1.0f, 3 */
        size_t len, outlen, oh;
        char *body = buf_take(&b, &len), *out;
        api_framing f = {cases[i].hlen != -2,
                         cases[i].hlen < 0 ? strlen(header) : (size_t)cases[i].hlen};
        const int st = run(m, body, len, &f, &out, &outlen, &oh);
        ck_assert_msg(st == cases[i].status && strstr(out, cases[i].says), "case %zu: %d %.*s", i,
                      st, (int)outlen, out);
        if (st != 200)
            ck_assert_msg(strncmp(out, "{\"error\":", 9) == 0 && oh == 0, "case %zu: %s", i, out);
        free(out);
        free(body);
    }
    rnn_model_free(m);
}
END_TEST

START_TEST(test_framing_header_values)
{
    api_framing f;
    char err[160];
    ck_assert_int_eq(api_framing_parse(NULL, &f, err, sizeof err), 0);
    ck_assert_int_eq(f.binary, 0);
    ck_assert_int_eq(api_framing_parse("153", &f, err, sizeof err), 0);
    ck_assert(f.binary == 1 && f.header_len == 153);
    ck_assert_int_eq(api_framing_parse(" 7 ", &f, err, sizeof err), 0);
    ck_assert(f.binary == 1 && f.header_len == 7);
    const char *bad[] = {"", "-1", "12x", "0x10", "1 2", "99999999999999999999999", "+5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_msg(api_framing_parse(bad[i], &f, err, sizeof err) == -1, "%s", bad[i]);
        ck_assert_msg(strstr(err, "Inference-Header-Content-Length: expected"), "%s", err);
    }
    /* v1 has no binary framing */
    rnn_model *m = load_model("rnn_input1_bare");
    api_call *c;
    char *eb;
    size_t el;
    f = (api_framing){1, 2};
    ck_assert_int_eq(api_decode_framed(api_wire_v1(), m, "{}", 2, &f, &LIM, &c, &eb, &el), 400);
    ck_assert_msg(strstr(eb, "accepted on /v2/models/{name}/infer only"), "%s", eb);
    free(eb);
    rnn_model_free(m);
}
END_TEST

/* ---- over HTTP: the headers, and compression on every route ---------------------------------- */

/* The server and the config it runs on (the config must outlive it). */
typedef struct {
    srv *s;
    cfg_config *cfg;
} server;

static server start(const char *fixture, size_t max_body, int *port)
{
    char path[512], err[512];
    cfg_config *cfg;
    srv *s;
    snprintf(path, sizeof path, "tests/fixtures/cases/%s/config.json", fixture);
    ck_assert_msg(cfg_load_file(path, &cfg, err, sizeof err) == 0, "%s", err);
    free(cfg->server.host);
    cfg->server.host = strdup("127.0.0.1");
    cfg->server.port = 0;
    if (max_body)
        cfg->server.max_body_bytes = max_body;
    ck_assert_msg(srv_start(cfg, &s, err, sizeof err) == 0, "%s", err);
    *port = srv_port(s);
    return (server){s, cfg};
}

static void stop(server sv)
{
    srv_stop(sv.s);
    cfg_free(sv.cfg);
}

/* BODY compressed by zlib itself (an encoder other than the one under test): WBITS 31 gzip, 15
 * the zlib format (HTTP's "deflate", as Python's zlib.compress and tritonclient send it). */
static char *zlib_compress(const void *body, size_t len, int wbits, size_t *outlen)
{
    z_stream z = {0};
    ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    const size_t cap = deflateBound(&z, (uLong)len) + 64;
    char *out = malloc(cap);
    z.next_in = (Bytef *)body;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    *outlen = z.total_out;
    deflateEnd(&z);
    return out;
}

/* A response body inflated by zlib (gzip or zlib format, told apart by its header). */
static char *zlib_inflate(const char *body, size_t len, size_t *outlen)
{
    z_stream z = {0};
    ck_assert_int_eq(inflateInit2(&z, 47), Z_OK);
    size_t cap = len * 8 + 1024, n = 0;
    char *out = malloc(cap);
    z.next_in = (Bytef *)body;
    z.avail_in = (uInt)len;
    int rc;
    do {
        if (n == cap)
            out = realloc(out, cap *= 2);
        z.next_out = (Bytef *)out + n;
        z.avail_out = (uInt)(cap - n);
        rc = inflate(&z, Z_NO_FLUSH);
        n = z.total_out;
    } while (rc == Z_OK);
    ck_assert_msg(rc == Z_STREAM_END, "inflate: %d", rc);
    inflateEnd(&z);
    *outlen = n;
    return out;
}

static const char *header_of(const httpc_resp *r, const char *name, char *buf, size_t cap)
{
    return httpc_header(r, name, buf, cap);
}

/* The binary framing over HTTP: the request's header in, the response's headers out, the bytes
 * as the API path gives them; and the v1 routes refuse it. */
START_TEST(test_binary_over_http_has_its_headers)
{
    int port;
    server s = start("lstm_h0c0", 0, &port);
    rnn_model *m = load_model("lstm_h0c0");
    tensors t;
    fixture_tensors("lstm_h0c0", rnn_model_info(m), &t);
    size_t len, hlen, wl, wh;
    char *body = binary_request(&t, "INT64", ",\"parameters\":{\"binary_data_output\":true}", &len,
                                &hlen),
         *want;
    api_framing f = {1, hlen};
    ck_assert_int_eq(run(m, body, len, &f, &want, &wl, &wh), 200);
    char ihcl[96], v[128];
    snprintf(ihcl, sizeof ihcl, "Inference-Header-Content-Length: %zu", hlen);
    const char *hdrs[] = {ihcl, "Content-Type: application/octet-stream", NULL};
    CURL *h = curl_easy_init();
    httpc_resp r;
    ck_assert_int_eq(
        httpc_full(h, port, "POST", "/v2/models/lstm_h0c0/infer", body, len, 0, hdrs, &r),
        CURLE_OK);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    ck_assert_str_eq(header_of(&r, "Content-Type", v, sizeof v), "application/octet-stream");
    ck_assert_uint_eq(
        strtoul(header_of(&r, "Inference-Header-Content-Length", v, sizeof v), NULL, 10), wh);
    ck_assert_msg(r.len == wl && memcmp(r.body, want, wl) == 0, "HTTP's bytes differ");
    httpc_resp_free(&r);
    /* chunked, so the body arrives in pieces, gives the same */
    ck_assert_int_eq(
        httpc_full(h, port, "POST", "/v2/models/lstm_h0c0/infer", body, len, 1, hdrs, &r),
        CURLE_OK);
    ck_assert_msg(r.status == 200 && r.len == wl && memcmp(r.body, want, wl) == 0, "chunked");
    httpc_resp_free(&r);
    const char *bad[] = {"Inference-Header-Content-Length: 12abc", NULL};
    ck_assert_int_eq(
        httpc_full(h, port, "POST", "/v2/models/lstm_h0c0/infer", body, len, 0, bad, &r), CURLE_OK);
    ck_assert_msg(r.status == 400 && strstr(r.body, "expected the JSON header's length"), "%s",
                  r.body);
    httpc_resp_free(&r);
    ck_assert_int_eq(httpc_full(h, port, "POST", "/forward", body, len, 0, hdrs, &r), CURLE_OK);
    ck_assert_msg(r.status == 400 && strstr(r.body, "accepted on /v2/models/{name}/infer only"),
                  "%s", r.body);
    httpc_resp_free(&r);
    ck_assert_int_eq(httpc_full(h, port, "GET", "/v2", NULL, 0, 0, NULL, &r), CURLE_OK);
    ck_assert_msg(strstr(r.body, "\"extensions\":[") && strstr(r.body, "\"binary_tensor_data\""),
                  "%s", r.body);
    httpc_resp_free(&r);
    curl_easy_cleanup(h);
    free(want);
    free(body);
    tensors_free(&t);
    rnn_model_free(m);
    stop(s);
}
END_TEST

/* gzip and deflate both ways on v1 and v2: a compressed request answers what the plain one
 * does, and an Accept-Encoding answer inflates to the plain answer's bytes, with
 * Content-Encoding and Vary; small answers stay plain, but still say Vary. A long request goes
 * through the scheduler, which compresses on its own thread. */
START_TEST(test_gzip_and_deflate_both_ways_on_v1_and_v2)
{
    int port;
    server s = start("lstm_h0c0", 0, &port);
    rnn_model *m = load_model("lstm_h0c0");
    tensors t;
    fixture_tensors("lstm_h0c0", rnn_model_info(m), &t);
    size_t blen, bh;
    char *bin =
        binary_request(&t, "INT64", ",\"parameters\":{\"binary_data_output\":true}", &blen, &bh);
    /* a long v1 request: its answer (~250 KB) is computed and compressed by the scheduler */
    buf lb = BUF_INIT;
    buf_puts(&lb, "{\"inputs\":[[");
    for (int k = 0; k < 2500; k++)
        buf_printf(&lb, "%s[%.3f,%.3f]", k ? "," : "", 0.001 * (k % 97), -0.002 * (k % 89));
    buf_puts(&lb, "]]}");
    size_t llen;
    char *longreq = buf_take(&lb, &llen);
    char *jreq = json_request(&t, NULL);
    size_t v1len;
    char *v1req = tu_read_file("tests/fixtures/cases/lstm_h0c0/request.json", &v1len);
    ck_assert_ptr_nonnull(v1req);
    char ihcl[96], v[128];
    snprintf(ihcl, sizeof ihcl, "Inference-Header-Content-Length: %zu", bh);
    struct {
        const char *path, *body;
        size_t len;
        const char *ihcl;
    } reqs[] = {{"/forward", v1req, v1len, NULL},
                {"/v2/models/lstm_h0c0/infer", jreq, 0, NULL},
                {"/v2/models/lstm_h0c0/infer", bin, blen, ihcl},
                {"/v1/models/lstm_h0c0/forward", longreq, llen, NULL}};
    /* the v2 JSON request: json_request's tensors, which the v2 route takes as they are */
    reqs[1].len = strlen(jreq);
    const int wbits[2] = {31, 15};
    const char *names[2] = {"gzip", "deflate"};
    CURL *h = curl_easy_init();
    for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++) {
        const char *plain_h[] = {reqs[i].ihcl, NULL};
        httpc_resp plain;
        ck_assert_int_eq(httpc_full(h, port, "POST", reqs[i].path, reqs[i].body, reqs[i].len, 0,
                                    plain_h, &plain),
                         CURLE_OK);
        ck_assert_msg(plain.status == 200, "%s: %ld %s", reqs[i].path, plain.status, plain.body);
        ck_assert_ptr_null(header_of(&plain, "Content-Encoding", v, sizeof v));
        ck_assert_msg(header_of(&plain, "Vary", v, sizeof v) &&
                          strstr(plain.headers, "Vary: Accept-Encoding"),
                      "%s: no Vary: %s", reqs[i].path, plain.headers);
        for (int c = 0; c < 2; c++) {
            size_t zlen, ilen;
            char *z = zlib_compress(reqs[i].body, reqs[i].len, wbits[c], &zlen);
            char ce[64], ae[64];
            snprintf(ce, sizeof ce, "Content-Encoding: %s", names[c]);
            snprintf(ae, sizeof ae, "Accept-Encoding: %s", names[c]);
            const char *both[] = {ce, ae, reqs[i].ihcl, NULL};
            httpc_resp r;
            ck_assert_int_eq(httpc_full(h, port, "POST", reqs[i].path, z, zlen, c, both, &r),
                             CURLE_OK);
            ck_assert_msg(r.status == 200, "%s %s: %ld %s", reqs[i].path, names[c], r.status,
                          r.body);
            ck_assert_msg(header_of(&r, "Content-Encoding", v, sizeof v) &&
                              strcmp(v, names[c]) == 0,
                          "%s %s: Content-Encoding %s", reqs[i].path, names[c],
                          header_of(&r, "Content-Encoding", v, sizeof v));
            ck_assert_msg(strstr(r.headers, "Vary: Accept-Encoding"), "%s", r.headers);
            char *in = zlib_inflate(r.body, r.len, &ilen);
            ck_assert_msg(ilen == plain.len && memcmp(in, plain.body, ilen) == 0,
                          "%s %s: the answer inflates to other bytes", reqs[i].path, names[c]);
            ck_assert_uint_lt(r.len, plain.len);
            free(in);
            free(z);
            httpc_resp_free(&r);
        }
        httpc_resp_free(&plain);
    }
    /* small answers (under 1 KiB) go out plain even when asked */
    const char *gz[] = {"Accept-Encoding: gzip", NULL};
    httpc_resp r;
    ck_assert_int_eq(httpc_full(h, port, "GET", "/healthz", NULL, 0, 0, gz, &r), CURLE_OK);
    ck_assert_msg(r.status == 200 && !header_of(&r, "Content-Encoding", v, sizeof v) &&
                      strstr(r.headers, "Vary: Accept-Encoding"),
                  "%s", r.headers);
    httpc_resp_free(&r);
    /* other routes too: the OpenAPI document */
    ck_assert_int_eq(httpc_full(h, port, "GET", "/openapi.json", NULL, 0, 0, gz, &r), CURLE_OK);
    ck_assert_msg(r.status == 200 && header_of(&r, "Content-Encoding", v, sizeof v) &&
                      strcmp(v, "gzip") == 0,
                  "%s", r.headers);
    httpc_resp_free(&r);
    curl_easy_cleanup(h);
    free(jreq);
    free(v1req);
    free(longreq);
    free(bin);
    tensors_free(&t);
    rnn_model_free(m);
    stop(s);
}
END_TEST

/* Accept-Encoding's q-values pick the coding; a refused identity with nothing else acceptable is
 * answered plain (RFC 9110 allows it). Content-Encoding the server does not decode: a 415 naming
 * it; a corrupt or truncated stream: a 400. */
START_TEST(test_accept_encoding_q_values_and_bad_codings)
{
    int port;
    server s = start("lstm_h0c0", 0, &port);
    struct {
        const char *accept, *want; /* NULL: plain */
    } cases[] = {
        {"gzip", "gzip"},
        {"deflate", "deflate"},
        {"gzip;q=0.5, deflate;q=0.9", "deflate"},
        {"deflate;q=0.5, gzip", "gzip"},
        {"gzip;q=0, deflate;q=0", NULL},
        {"gzip, deflate", "gzip"},
        {"*", "gzip"},
        {"*;q=0.3, identity;q=0.5", NULL},
        {"br", NULL},
        {"identity;q=0", NULL},
        {"x-gzip;q=1.0", "gzip"},
    };
    CURL *h = curl_easy_init();
    char v[64];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char ae[96];
        snprintf(ae, sizeof ae, "Accept-Encoding: %s", cases[i].accept);
        const char *hd[] = {ae, NULL};
        httpc_resp r;
        ck_assert_int_eq(httpc_full(h, port, "GET", "/openapi.json", NULL, 0, 0, hd, &r), CURLE_OK);
        const char *got = header_of(&r, "Content-Encoding", v, sizeof v);
        ck_assert_msg(r.status == 200 &&
                          ((!got && !cases[i].want) ||
                           (got && cases[i].want && strcmp(got, cases[i].want) == 0)),
                      "%s: got %s, want %s", cases[i].accept, got ? got : "plain",
                      cases[i].want ? cases[i].want : "plain");
        httpc_resp_free(&r);
    }
    const char *body = "{\"inputs\":[[[0.1,0.2]]]}";
    size_t zlen;
    char *z = zlib_compress(body, strlen(body), 31, &zlen);
    struct {
        const char *ce;
        const char *data;
        size_t len;
        long status;
        const char *says;
    } bad[] = {
        {"Content-Encoding: br", body, strlen(body), 415, "unsupported Content-Encoding"},
        {"Content-Encoding: gzip, gzip", z, zlen, 415, "stacked"},
        {"Content-Encoding: gzip", z, zlen - 6, 400, "ends before its stream does"},
        {"Content-Encoding: gzip", body, strlen(body), 400, "gzip body is corrupt"},
        {"Content-Encoding: deflate", body, strlen(body), 400, "deflate body is corrupt"},
        {"Content-Encoding: identity", body, strlen(body), 200, "\"outputs\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *hd[] = {bad[i].ce, NULL};
        httpc_resp r;
        ck_assert_int_eq(
            httpc_full(h, port, "POST", "/forward", bad[i].data, bad[i].len, 0, hd, &r), CURLE_OK);
        ck_assert_msg(r.status == bad[i].status && strstr(r.body, bad[i].says), "%s: %ld %s",
                      bad[i].ce, r.status, r.body);
        httpc_resp_free(&r);
        /* MHD closes the connection after an early answer: a fresh one for the next */
        curl_easy_cleanup(h);
        h = curl_easy_init();
    }
    free(z);
    curl_easy_cleanup(h);
    stop(s);
}
END_TEST

static long peak_rss_kb(void)
{
    char *st = tu_read_file("/proc/self/status", NULL);
    const char *p = st ? strstr(st, "VmHWM:") : NULL;
    long kb = p ? strtol(p + 6, NULL, 10) : -1;
    free(st);
    return kb;
}

/* A zip bomb: 256 MiB of zeros in about 250 KB of gzip, against max_body_bytes 1 MiB, is a 413
 * naming the limit, and the server's process (this one) peaks at no more than the limit's worth
 * of memory more. The bomb is compressed piece by piece, so the test itself holds only its
 * compressed bytes. */
START_TEST(test_zip_bomb_is_a_413_with_bounded_memory)
{
    int port;
    server s = start("lstm_h0c0", (size_t)1 << 20, &port);
    z_stream z = {0};
    ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    static char zeros[1 << 16];
    size_t cap = 1 << 20, n = 0;
    char *bomb = malloc(cap);
    for (int k = 0; k < 4096; k++) { /* 4096 x 64 KiB = 256 MiB */
        z.next_in = (Bytef *)zeros;
        z.avail_in = sizeof zeros;
        do {
            if (cap - n < 65536)
                bomb = realloc(bomb, cap *= 2);
            z.next_out = (Bytef *)bomb + n;
            z.avail_out = (uInt)(cap - n);
            deflate(&z, k == 4095 ? Z_FINISH : Z_NO_FLUSH);
            n = z.total_out;
        } while (z.avail_out == 0 || (k == 4095 && z.avail_in));
    }
    deflate(&z, Z_FINISH);
    n = z.total_out;
    deflateEnd(&z);
    const long before = peak_rss_kb();
    const char *hd[] = {"Content-Encoding: gzip", NULL};
    for (int route = 0; route < 2; route++) {
        httpc_resp r;
        CURL *h = curl_easy_init();
        ck_assert_int_eq(httpc_full(h, port, "POST",
                                    route ? "/v2/models/lstm_h0c0/infer" : "/forward", bomb, n, 0,
                                    hd, &r),
                         CURLE_OK);
        ck_assert_msg(r.status == 413 && strstr(r.body, "inflated body exceeds max_body_bytes"),
                      "%ld %s", r.status, r.body);
        httpc_resp_free(&r);
        curl_easy_cleanup(h);
    }
    const long after = peak_rss_kb();
    ck_assert_msg(after - before < 16 * 1024, "peak RSS grew by %ld KiB for a %zu-byte bomb",
                  after - before, n);
    free(bomb);
    stop(s);
}
END_TEST

/* The fuzz target's seeds and regressions (tests/fuzz/corpus/binary, tests/fuzz/regress/binary)
 * replay cleanly: its checks abort on a violation. */
START_TEST(test_fuzz_binary_seeds_replay_cleanly)
{
    const char *dirs[] = {"tests/fuzz/corpus/binary", "tests/fuzz/regress/binary"};
    size_t seeds = 0;
    for (int k = 0; k < 2; k++) {
        DIR *d = opendir(dirs[k]);
        if (!d) {
            ck_assert_msg(k == 1, "%s is missing", dirs[k]);
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            char path[600];
            size_t len;
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", dirs[k], e->d_name);
            char *data = tu_read_file(path, &len);
            ck_assert_msg(data != NULL, "%s", path);
            fz_binary_one((const uint8_t *)data, len);
            free(data);
            seeds += k == 0;
        }
        closedir(d);
    }
    ck_assert_uint_ge(seeds, 12);
}
END_TEST

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    Suite *s = suite_create("binary");
    TCase *tc = tcase_create("framing");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_spec_layout_binary_equals_json_bit_for_bit);
    tcase_add_test(tc, test_official_client_request_and_result);
    tcase_add_test(tc, test_binary_data_per_output_overrides_binary_data_output);
    tcase_add_test(tc, test_mixed_json_and_binary_inputs);
    tcase_add_test(tc, test_binary_tokens_and_only_last);
    tcase_add_test(tc, test_mismatches_are_400s_naming_them);
    tcase_add_test(tc, test_framing_header_values);
    tcase_add_test(tc, test_fuzz_binary_seeds_replay_cleanly);
    suite_add_tcase(s, tc);
    tc = tcase_create("http");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_binary_over_http_has_its_headers);
    tcase_add_test(tc, test_gzip_and_deflate_both_ways_on_v1_and_v2);
    tcase_add_test(tc, test_accept_encoding_q_values_and_bad_codings);
    tcase_add_test(tc, test_zip_bomb_is_a_413_with_bounded_memory);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
