/* fuzz_binary.c - libFuzzer target: a /v2 infer body in the binary tensor data extension's
 * framing (a JSON header of Inference-Header-Content-Length bytes, then the binary inputs'
 * bytes), through api_framing_parse, api_decode_framed and api_finish, against an LSTM (h0, c0,
 * cell) and a two-layer GRU.
 *
 * Beyond "no crash, no leak", it checks what the HTTP layer and tritonclient rely on: every
 * answer is a documented status; an error is the protocol's JSON error body and never binary; a
 * binary answer's header parses as JSON whose outputs' binary_data_size add up to exactly the
 * bytes after it; an all-JSON answer parses whole.
 *
 * Input: byte 0's low bit picks the model, bit 1 sends no header (all JSON), bit 2 sends the
 * header's value as text from the input (bytes 1..8, to reach api_framing_parse's refusals);
 * otherwise bytes 1-2 are the header length (little-endian). The rest is the body. */
#include "fuzz.h"
#include "rnnserve/api.h"

static const api_limits FZ_BINARY_LIMITS = {16, 64};

static const rnn_model *fz_binary_models[2];

static void fz_binary_init(void)
{
    if (fz_binary_models[0])
        return;
    fz_binary_models[0] = fz_model("l2", "lstm", 2, 3, 1, 1, 1);
    fz_binary_models[1] = fz_model("g1", "gru", 1, 4, 2, 0, 1);
}

/* The answer's shape: JSON error, JSON response, or header + binary outputs that add up. */
static void fz_binary_check_answer(int status, const char *out, size_t outlen, size_t hlen)
{
    FZ_CHECK(out != NULL, "status %d without a body", status);
    FZ_CHECK(status == 200 || status == 400 || status == 413 || status == 422 || status == 500 ||
                 status == 503,
             "status %d", status);
    FZ_CHECK(status == 200 || hlen == 0, "a %d with a binary header of %zu bytes", status, hlen);
    FZ_CHECK(hlen <= outlen, "header %zu past the body's %zu", hlen, outlen);
    json_error_t err;
    json_t *root = json_loadb(out, hlen ? hlen : outlen, 0, &err);
    FZ_CHECK(root != NULL, "answer %d does not parse (%s): %.*s", status, err.text,
             (int)(hlen ? hlen : outlen), out);
    if (status != 200) {
        FZ_CHECK(json_is_string(json_object_get(root, "error")), "error body without \"error\"");
        json_decref(root);
        return;
    }
    json_t *outs = json_object_get(root, "outputs"), *o;
    size_t i, bytes = 0;
    FZ_CHECK(json_is_array(outs), "no outputs array");
    json_array_foreach(outs, i, o)
    {
        json_t *size = json_object_get(json_object_get(o, "parameters"), "binary_data_size");
        json_t *shape = json_object_get(o, "shape"), *d;
        size_t k, count = 1;
        json_array_foreach(shape, k, d) count *= (size_t)json_integer_value(d);
        if (size) {
            FZ_CHECK(hlen > 0, "binary_data_size in an all-JSON answer");
            FZ_CHECK(!json_object_get(o, "data"), "binary output with data");
            FZ_CHECK((size_t)json_integer_value(size) == count * 4,
                     "binary_data_size %lld for %zu FP32 elements",
                     (long long)json_integer_value(size), count);
            bytes += count * 4;
        } else {
            FZ_CHECK(json_array_size(json_object_get(o, "data")) == count,
                     "%zu values for %zu elements", json_array_size(json_object_get(o, "data")),
                     count);
        }
    }
    FZ_CHECK(hlen == 0 || hlen + bytes == outlen, "header %zu + binary %zu != body %zu", hlen,
             bytes, outlen);
    json_decref(root);
}

int fz_binary_one(const uint8_t *data, size_t size)
{
    fz_binary_init();
    if (size < 3)
        return 0;
    const rnn_model *m = fz_binary_models[data[0] & 1];
    api_framing f = {0, 0};
    const uint8_t *body = data + 3;
    size_t len = size - 3;
    if (data[0] & 4) {
        char value[9] = {0}, err[160];
        const size_t n = size - 1 < 8 ? size - 1 : 8;
        memcpy(value, data + 1, n);
        body = data + 1 + n;
        len = size - 1 - n;
        if (api_framing_parse(value, &f, err, sizeof err) < 0) {
            FZ_CHECK(strstr(err, "Inference-Header-Content-Length"), "message %s", err);
            return 0;
        }
    } else if (!(data[0] & 2)) {
        f.binary = 1;
        f.header_len = (size_t)data[1] | (size_t)data[2] << 8;
    }
    /* a copy of exactly the body, so that ASan sees any read past it */
    char *copy = malloc(len ? len : 1);
    FZ_CHECK(copy != NULL, "out of memory");
    memcpy(copy, body, len);
    api_call *c = NULL;
    char *out = NULL;
    size_t outlen = 0;
    int st =
        api_decode_framed(api_wire_v2(), m, copy, len, &f, &FZ_BINARY_LIMITS, &c, &out, &outlen);
    if (st == 200) {
        FZ_CHECK(c != NULL && out == NULL, "decoded without a call");
        free(copy); /* the call owns what it needs: the body is gone before the pass */
        copy = NULL;
        st = api_compute_and_finish(c, &out, &outlen, NULL);
        fz_binary_check_answer(st, out, outlen, api_call_header_len(c));
        FZ_CHECK(strcmp(api_call_content_type(c),
                        api_call_header_len(c) ? "application/octet-stream" : "application/json") ==
                     0,
                 "content type %s", api_call_content_type(c));
        api_call_free(c);
    } else {
        FZ_CHECK(c == NULL, "a failed decode returned a call");
        fz_binary_check_answer(st, out, outlen, 0);
    }
    free(out);
    free(copy);
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fz_binary_one(data, size);
}
#endif
