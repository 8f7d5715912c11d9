/* fuzz_codec.c - libFuzzer target: a request body, through the decoders' public API only
 * (the v1 decoder and api_forward for POST /forward; api_forward v2 for the Open Inference
 * Protocol's POST /v2/models/{name}/infer), against three small models of different shapes.
 *
 * Beyond "no crash, no leak", it checks what the HTTP layer relies on: a decoded batch is within
 * the limits and self-consistent, every answer is one of the documented statuses, and the bytes
 * sent back always parse as JSON of the documented shape. */
#include <math.h>

#include "fuzz.h"
#include "rnnserve/api.h"
#include "../../src/wire.h"
#include "rnnserve/engine.h"

/* Small limits keep one execution cheap; the limit checks themselves are exercised all the same. */
static const api_limits FZ_CODEC_LIMITS = {16, 64};

static const rnn_model *fz_codec_models[3];

static void fz_codec_init(void)
{
    if (fz_codec_models[0])
        return;
    /* input_size 1 (bare-number steps), a bidirectional 2-layer LSTM (h0, c0, cell), and a GRU
     * without biases. */
    fz_codec_models[0] = fz_model("r1", "rnn", 1, 4, 1, 0, 1);
    fz_codec_models[1] = fz_model("l3", "lstm", 3, 4, 2, 1, 1);
    fz_codec_models[2] = fz_model("g3", "gru", 3, 4, 1, 0, 0);
}

/* Decoding alone: the batch handed to the engine must be what the limits and the model allow. */
static void fz_codec_decode(const char *body, size_t len, const rnn_info *info)
{
    wire_v1_request *req = NULL;
    wire_error e;
    memset(&e, 0, sizeof e);
    if (wire_v1_decode(body, len, info, &FZ_CODEC_LIMITS, &req, &e) < 0) {
        FZ_CHECK(req == NULL, "a failed decode returned a request");
        FZ_CHECK(e.status == 400 || e.status == 413, "decode error status %d: %s", e.status,
                 e.message);
        FZ_CHECK(memchr(e.message, '\0', sizeof e.message) && e.message[0], "empty message");
        return;
    }
    const rnn_batch *b = wire_v1_batch(req);
    FZ_CHECK(b->batch >= 1 && b->batch <= FZ_CODEC_LIMITS.max_batch, "batch %zu", b->batch);
    size_t steps = 0;
    for (size_t i = 0; i < b->batch; i++) {
        FZ_CHECK(b->lengths[i] >= 0 && (size_t)b->lengths[i] <= FZ_CODEC_LIMITS.max_steps,
                 "lengths[%zu] = %d", i, (int)b->lengths[i]);
        steps += (size_t)b->lengths[i];
    }
    FZ_CHECK(steps == wire_v1_steps(req), "%zu steps, request says %zu", steps, wire_v1_steps(req));
    for (size_t k = 0; k < steps * (size_t)info->input_size; k++)
        FZ_CHECK(isfinite(b->x[k]), "x[%zu] is not finite", k);
    FZ_CHECK(!b->c0 || info->type == RNN_CELL_LSTM, "c0 on a %s model",
             rnn_cell_describe(info->type)->name);
    int prec = wire_v1_precision(req);
    FZ_CHECK(prec >= 1 && prec <= 9, "precision %d", prec);
    unsigned parts = wire_v1_parts(req);
    FZ_CHECK((parts & ~7u) == 0 && (!(parts & WIRE_CELL) || info->type == RNN_CELL_LSTM),
             "parts %#x", parts);
    wire_v1_free(req);
}

/* The whole path: whatever the body, the answer is JSON with a documented status. */
static void fz_codec_forward(const char *body, size_t len, const rnn_model *m)
{
    char *out = NULL;
    size_t outlen = 0;
    api_stats st;
    int status = api_forward(api_wire_v1(), m, body, len, &FZ_CODEC_LIMITS, &out, &outlen, &st);
    FZ_CHECK(status == 200 || status == 400 || status == 413 || status == 422, "status %d", status);
    FZ_CHECK(out != NULL, "no body for status %d", status);
    json_error_t jerr;
    json_t *root = json_loadb(out, outlen, JSON_REJECT_DUPLICATES, &jerr);
    FZ_CHECK(root != NULL, "status %d answer is not JSON (%s): %.*s", status, jerr.text,
             (int)(outlen < 300 ? outlen : 300), out);
    if (status == 200) {
        const char *name = json_string_value(json_object_get(root, "model"));
        FZ_CHECK(name && strcmp(name, rnn_model_info(m)->name) == 0, "model name in %.200s", out);
        /* Every part present has one entry per sequence. */
        const char *parts[] = {"outputs", "hidden", "cell"};
        for (size_t p = 0; p < 3; p++) {
            json_t *v = json_object_get(root, parts[p]);
            FZ_CHECK(!v || (json_is_array(v) && json_array_size(v) == st.sequences),
                     "%s has %zu entries for %zu sequences", parts[p], json_array_size(v),
                     st.sequences);
        }
    } else {
        json_t *e = json_object_get(root, "error");
        json_t *s = json_object_get(e, "status");
        const char *msg = json_string_value(json_object_get(e, "message"));
        FZ_CHECK(json_object_size(root) == 1 && json_is_integer(s) &&
                     json_integer_value(s) == status && msg && *msg,
                 "error body %.300s", out);
    }
    json_decref(root);
    free(out);
}

/* The same body as a v2 infer request: a documented status and a JSON answer, {"error": "..."}
 * when it is not 200. */
static void fz_codec_kserve(const char *body, size_t len, const rnn_model *m)
{
    char *out = NULL;
    size_t outlen = 0;
    int status = api_forward(api_wire_v2(), m, body, len, &FZ_CODEC_LIMITS, &out, &outlen, NULL);
    FZ_CHECK(status == 200 || status == 400 || status == 413 || status == 422, "v2 status %d",
             status);
    FZ_CHECK(out != NULL, "no v2 body for status %d", status);
    json_error_t jerr;
    json_t *root = json_loadb(out, outlen, JSON_REJECT_DUPLICATES, &jerr);
    FZ_CHECK(root != NULL, "v2 status %d answer is not JSON (%s): %.*s", status, jerr.text,
             (int)(outlen < 300 ? outlen : 300), out);
    if (status != 200)
        FZ_CHECK(json_string_value(json_object_get(root, "error")) != NULL, "v2 error body %.300s",
                 out);
    else
        FZ_CHECK(json_is_array(json_object_get(root, "outputs")), "v2 answer %.300s", out);
    json_decref(root);
    free(out);
}

int fz_codec_one(const uint8_t *data, size_t size)
{
    fz_codec_init();
    for (size_t i = 0; i < sizeof fz_codec_models / sizeof *fz_codec_models; i++) {
        fz_codec_decode((const char *)data, size, rnn_model_info(fz_codec_models[i]));
        fz_codec_forward((const char *)data, size, fz_codec_models[i]);
        fz_codec_kserve((const char *)data, size, fz_codec_models[i]);
    }
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fz_codec_one(data, size);
}
#endif
