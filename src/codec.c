/* codec.c - forward request JSON -> rnn_batch, and rnn_result -> response JSON.
 *
 * Decoding uses jansson and checks every shape against the model, naming the JSON path of the
 * first problem. Encoding writes the response straight into one growing buffer with the
 * shortest-round-trip float printer: no DOM for the (large) outputs. */
#include "rnnserve/codec.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnserve/floatfmt.h"

struct codec_request {
    rnn_batch batch;
    int32_t *lengths;
    float *x, *h0, *c0;
    size_t steps;
    unsigned parts;
    int precision;
};

static int fail(codec_error *e, int status, const char *fmt, ...)
{
    va_list ap;
    e->status = status;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *kind(const json_t *v)
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
static int to_f32(const json_t *v, const char *path, float *out, codec_error *e)
{
    if (!json_is_number(v))
        return fail(e, 400, "%s: expected a number, got %s", path, kind(v));
    double d = json_number_value(v);
    /* Decimal forms of FLT_MAX ("3.4028235e38") lie a little above it and still round to it;
     * from halfway to the next power of two (2^128 - 2^103) on, float32 rounds to infinity. */
    if (!isfinite(d) || fabs(d) >= 0x1.ffffffp127)
        return fail(e, 400, "%s: %g is not representable as float32", path, d);
    *out = d > FLT_MAX ? FLT_MAX : d < -FLT_MAX ? -FLT_MAX : (float)d;
    return 0;
}

/* Reads a row of N numbers (ROW must be an array of exactly N numbers) into dst. */
static int read_row(const json_t *row, size_t n, const char *path, float *dst, codec_error *e)
{
    char p[256];
    if (!json_is_array(row))
        return fail(e, 400, "%s: expected an array of %zu numbers, got %s", path, n, kind(row));
    if (json_array_size(row) != n)
        return fail(e, 400, "%s: expected %zu number%s, got %zu", path, n, n == 1 ? "" : "s",
                    json_array_size(row));
    for (size_t k = 0; k < n; k++) {
        snprintf(p, sizeof p, "%s[%zu]", path, k);
        if (to_f32(json_array_get(row, k), p, &dst[k], e) < 0)
            return -1;
    }
    return 0;
}

/* "h0" / "c0": per sequence, L*D rows of H numbers, into (B, L*D, H). */
static int read_state(const json_t *v, const char *name, const rnn_info *info, size_t B,
                      float **out, codec_error *e)
{
    const size_t LD = (size_t)(info->num_layers * info->num_directions);
    const size_t H = (size_t)info->hidden_size;
    char p[256];
    if (!json_is_array(v))
        return fail(e, 400, "%s: expected an array with one entry per sequence, got %s", name,
                    kind(v));
    if (json_array_size(v) != B)
        return fail(e, 400, "%s: expected %zu entries (one per sequence in inputs), got %zu", name,
                    B, json_array_size(v));
    float *buf = malloc(B * LD * H * sizeof(float));
    if (!buf)
        return fail(e, 500, "%s: out of memory", name);
    *out = buf;
    for (size_t i = 0; i < B; i++) {
        json_t *seq = json_array_get(v, i);
        snprintf(p, sizeof p, "%s[%zu]", name, i);
        if (!json_is_array(seq))
            return fail(e, 400,
                        "%s: expected %zu rows (num_layers*num_directions) of %zu numbers, "
                        "got %s",
                        p, LD, H, kind(seq));
        if (json_array_size(seq) != LD)
            return fail(e, 400, "%s: expected %zu rows (num_layers*num_directions), got %zu", p, LD,
                        json_array_size(seq));
        for (size_t r = 0; r < LD; r++) {
            snprintf(p, sizeof p, "%s[%zu][%zu]", name, i, r);
            if (read_row(json_array_get(seq, r), H, p, buf + (i * LD + r) * H, e) < 0)
                return -1;
        }
    }
    return 0;
}

static int read_parts(const json_t *v, const rnn_info *info, unsigned *parts, codec_error *e)
{
    if (!json_is_array(v))
        return fail(e, 400,
                    "return: expected an array of \"outputs\", \"hidden\", \"cell\", got %s",
                    kind(v));
    *parts = 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *s = json_array_get(v, i);
        const char *name = json_string_value(s);
        if (!name)
            return fail(e, 400, "return[%zu]: expected a string, got %s", i, kind(s));
        if (strcmp(name, "outputs") == 0)
            *parts |= CODEC_OUTPUTS;
        else if (strcmp(name, "hidden") == 0)
            *parts |= CODEC_HIDDEN;
        else if (strcmp(name, "cell") == 0 && info->type == CFG_LSTM)
            *parts |= CODEC_CELL;
        else if (strcmp(name, "cell") == 0)
            return fail(e, 400, "return[%zu]: \"cell\" exists for lstm models only", i);
        else
            return fail(e, 400,
                        "return[%zu]: \"%s\" is not a part of the response (expected \"outputs\", "
                        "\"hidden\" or \"cell\")",
                        i, name);
    }
    return 0;
}

int codec_decode_request(const char *body, size_t len, const rnn_info *info,
                         const codec_limits *lim, codec_request **out, codec_error *e)
{
    json_error_t jerr;
    json_t *root = NULL;
    codec_request *r = NULL;
    const size_t I = (size_t)info->input_size;
    char p[256];
    *out = NULL;

    root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!root) {
        if (len == 0)
            fail(e, 400, "empty request body (expected a JSON object with \"inputs\")");
        else
            fail(e, 400, "malformed JSON at line %d, column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        goto fail;
    }
    if (!json_is_object(root)) {
        fail(e, 400, "request body: expected a JSON object with \"inputs\", got %s", kind(root));
        goto fail;
    }
    if (!(r = calloc(1, sizeof *r))) {
        fail(e, 500, "out of memory");
        goto fail;
    }
    r->parts = CODEC_OUTPUTS | CODEC_HIDDEN | (info->type == CFG_LSTM ? CODEC_CELL : 0);
    r->precision = 9;

    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (strcmp(key, "inputs") && strcmp(key, "h0") && strcmp(key, "c0") &&
            strcmp(key, "return") && strcmp(key, "precision")) {
            fail(e, 400,
                 "%s: unknown field (expected \"inputs\", \"h0\", \"c0\", \"return\", "
                 "\"precision\")",
                 key);
            goto fail;
        }
    }

    json_t *inputs = json_object_get(root, "inputs");
    if (!inputs) {
        fail(e, 400, "inputs: missing (expected an array of sequences)");
        goto fail;
    }
    if (!json_is_array(inputs)) {
        fail(e, 400, "inputs: expected an array of sequences, got %s", kind(inputs));
        goto fail;
    }
    const size_t B = json_array_size(inputs);
    if (B == 0) {
        fail(e, 400, "inputs: expected at least one sequence, got an empty array");
        goto fail;
    }
    if (B > lim->max_batch) {
        fail(e, 413, "inputs: %zu sequences exceed max_batch %zu", B, lim->max_batch);
        goto fail;
    }

    /* First pass: shapes and lengths, so x is allocated once. */
    if (!(r->lengths = malloc(B * sizeof *r->lengths))) {
        fail(e, 500, "out of memory");
        goto fail;
    }
    size_t N = 0;
    for (size_t i = 0; i < B; i++) {
        json_t *seq = json_array_get(inputs, i);
        if (!json_is_array(seq)) {
            fail(e, 400, "inputs[%zu]: expected an array of steps, got %s", i, kind(seq));
            goto fail;
        }
        size_t T = json_array_size(seq);
        if (T > lim->max_steps) {
            fail(e, 413, "inputs[%zu]: %zu steps exceed max_steps %zu", i, T, lim->max_steps);
            goto fail;
        }
        r->lengths[i] = (int32_t)T;
        N += T;
    }
    if (!(r->x = malloc((N ? N : 1) * I * sizeof(float)))) {
        fail(e, 500, "out of memory for %zu steps", N);
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
                if (to_f32(step, p, x, e) < 0)
                    goto fail;
                continue;
            }
            if (!json_is_array(step)) {
                if (I == 1)
                    fail(e, 400, "%s: expected a number or an array of 1 number, got %s", p,
                         kind(step));
                else
                    fail(e, 400, "%s: expected an array of %zu numbers, got %s", p, I, kind(step));
                goto fail;
            }
            if (read_row(step, I, p, x, e) < 0)
                goto fail;
        }
    }
    r->steps = N;

    json_t *h0 = json_object_get(root, "h0");
    if (h0 && !json_is_null(h0) && read_state(h0, "h0", info, B, &r->h0, e) < 0)
        goto fail;
    json_t *c0 = json_object_get(root, "c0");
    if (c0 && !json_is_null(c0)) {
        if (info->type != CFG_LSTM) {
            fail(e, 400, "c0: only lstm models have a cell state (this model is %s)",
                 cfg_type_name(info->type));
            goto fail;
        }
        if (read_state(c0, "c0", info, B, &r->c0, e) < 0)
            goto fail;
    }
    json_t *ret = json_object_get(root, "return");
    if (ret && read_parts(ret, info, &r->parts, e) < 0)
        goto fail;
    json_t *prec = json_object_get(root, "precision");
    if (prec) {
        double d = json_number_value(prec);
        if (!json_is_number(prec) || d != floor(d) || d < 1 || d > 9) {
            fail(e, 400, "precision: expected an integer from 1 to 9 (significant digits)");
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
    codec_request_free(r);
    return -1;
}

void codec_request_free(codec_request *r)
{
    if (!r)
        return;
    free(r->lengths);
    free(r->x);
    free(r->h0);
    free(r->c0);
    free(r);
}

const rnn_batch *codec_request_batch(const codec_request *r)
{
    return &r->batch;
}

unsigned codec_request_parts(const codec_request *r)
{
    return r->parts;
}

int codec_request_precision(const codec_request *r)
{
    return r->precision;
}

size_t codec_request_steps(const codec_request *r)
{
    return r->steps;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding */

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} wbuf;

static int wb_reserve(wbuf *w, size_t more)
{
    if (w->oom)
        return -1;
    if (w->len + more <= w->cap)
        return 0;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < w->len + more)
        cap *= 2;
    char *nb = realloc(w->buf, cap);
    if (!nb) {
        w->oom = 1;
        return -1;
    }
    w->buf = nb;
    w->cap = cap;
    return 0;
}

static void wb_puts(wbuf *w, const char *s)
{
    size_t n = strlen(s);
    if (wb_reserve(w, n) == 0) {
        memcpy(w->buf + w->len, s, n);
        w->len += n;
    }
}

/* A JSON string with the escapes RFC 8259 requires. */
static void wb_json_string(wbuf *w, const char *s)
{
    if (wb_reserve(w, strlen(s) * 6 + 2) < 0)
        return;
    char *o = w->buf + w->len;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = (char)*p;
        } else if (*p < 0x20) {
            o += sprintf(o, "\\u%04x", *p);
        } else {
            *o++ = (char)*p;
        }
    }
    *o++ = '"';
    w->len = (size_t)(o - w->buf);
}

/* Rows of N floats: [[a,b],[c,d]]. Fails (422) at the first non-finite value, naming it as
 * NAME[seq][row][col]. */
static int wb_rows(wbuf *w, const float *v, size_t rows, size_t n, int prec, const char *name,
                   size_t seq, codec_error *e)
{
    /* worst case per number: FF_MAX_LEN plus a comma; plus brackets */
    if (wb_reserve(w, rows * (n * (FF_MAX_LEN + 1) + 3) + 2) < 0)
        return fail(e, 500, "out of memory encoding the response");
    char *o = w->buf + w->len;
    *o++ = '[';
    for (size_t r = 0; r < rows; r++) {
        if (r)
            *o++ = ',';
        *o++ = '[';
        for (size_t k = 0; k < n; k++) {
            float f = v[r * n + k];
            if (!isfinite(f))
                return fail(e, 422,
                            "%s[%zu][%zu][%zu]: the forward pass produced %s, which JSON cannot "
                            "carry (the model diverged for this input)",
                            name, seq, r, k,
                            isnan(f) ? "NaN"
                            : f > 0  ? "+inf"
                                     : "-inf");
            if (k)
                *o++ = ',';
            o += prec >= 9 ? ff_format_f32(f, o) : ff_format_f32_prec(f, prec, o);
        }
        *o++ = ']';
    }
    *o++ = ']';
    w->len = (size_t)(o - w->buf);
    return 0;
}

int codec_encode_response(const char *model_name, const rnn_info *info, const codec_request *req,
                          const rnn_result *res, char **out, size_t *len, codec_error *e)
{
    const rnn_batch *b = &req->batch;
    const size_t DH = (size_t)(info->num_directions * info->hidden_size);
    const size_t LD = (size_t)(info->num_layers * info->num_directions);
    const size_t H = (size_t)info->hidden_size;
    wbuf w = {0};
    *out = NULL;

    wb_puts(&w, "{\"model\":");
    wb_json_string(&w, model_name);
    struct {
        unsigned bit;
        const char *name;
        const float *data;
    } parts[] = {{CODEC_OUTPUTS, "outputs", res->outputs},
                 {CODEC_HIDDEN, "hidden", res->hidden},
                 {CODEC_CELL, "cell", res->cell}};
    for (size_t p = 0; p < 3; p++) {
        if (!(req->parts & parts[p].bit) || !parts[p].data)
            continue;
        wb_puts(&w, ",\"");
        wb_puts(&w, parts[p].name);
        wb_puts(&w, "\":[");
        size_t row = 0;
        for (size_t i = 0; i < b->batch; i++) {
            if (i)
                wb_puts(&w, ",");
            size_t rows = parts[p].bit == CODEC_OUTPUTS ? (size_t)b->lengths[i] : LD;
            size_t n = parts[p].bit == CODEC_OUTPUTS ? DH : H;
            if (wb_rows(&w, parts[p].data + row * n, rows, n, req->precision, parts[p].name, i, e) <
                0)
                goto fail;
            row += rows;
        }
        wb_puts(&w, "]");
    }
    wb_puts(&w, "}");
    if (w.oom) {
        fail(e, 500, "out of memory encoding the response");
        goto fail;
    }
    *out = w.buf;
    *len = w.len;
    return 0;
fail:
    free(w.buf);
    return -1;
}

char *codec_encode_error(int status, const char *message, size_t *len)
{
    wbuf w = {0};
    char num[32];
    snprintf(num, sizeof num, "%d", status);
    wb_puts(&w, "{\"error\":{\"status\":");
    wb_puts(&w, num);
    wb_puts(&w, ",\"message\":");
    wb_json_string(&w, message);
    wb_puts(&w, "}}");
    if (wb_reserve(&w, 1) < 0) {
        free(w.buf);
        return NULL;
    }
    w.buf[w.len] = '\0';
    if (len)
        *len = w.len;
    return w.buf;
}

static json_t *model_json(const rnn_info *in, int is_default)
{
    return json_pack("{s:s, s:s, s:i, s:i, s:i, s:o, s:b, s:b, s:I, s:b}", "name", in->name, "type",
                     cfg_type_name(in->type), "input_size", in->input_size, "hidden_size",
                     in->hidden_size, "num_layers", in->num_layers, "nonlinearity",
                     in->type == CFG_RNN ? json_string(cfg_nonlinearity_name(in->nonlinearity))
                                         : json_null(),
                     "bias", in->bias, "bidirectional", in->num_directions == 2, "parameters",
                     (json_int_t)in->parameters, "default", is_default);
}

/* Dumps and frees V; NULL when out of memory. */
static char *dump(json_t *v, size_t *len)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(v);
    if (s && len)
        *len = strlen(s);
    return s;
}

char *codec_encode_model(const rnn_info *info, int is_default, size_t *len)
{
    return dump(model_json(info, is_default), len);
}

char *codec_encode_models(const rnn_info *const *infos, size_t n, size_t *len)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < n; i++)
        if (json_array_append_new(list, model_json(infos[i], i == 0)) < 0) {
            json_decref(list);
            return NULL;
        }
    return dump(list ? json_pack("{s:o}", "models", list) : NULL, len);
}

int codec_forward(const rnn_model *model, const char *body, size_t len, const codec_limits *lim,
                  char **out, size_t *outlen, codec_stats *stats)
{
    const rnn_info *info = rnn_model_info(model);
    codec_request *req = NULL;
    codec_error e = {500, ""};
    rnn_result res = {0};
    char msg[256];
    int status = 200;
    *out = NULL;
    *outlen = 0;
    if (stats)
        stats->sequences = stats->steps = 0;

    if (codec_decode_request(body, len, info, lim, &req, &e) < 0)
        goto fail;
    const rnn_batch *b = codec_request_batch(req);
    if (stats) {
        stats->sequences = b->batch;
        stats->steps = req->steps;
    }
    size_t n_out, n_hid, n_cell;
    rnn_result_sizes(model, b, &n_out, &n_hid, &n_cell);
    /* Unwanted parts stay NULL: the engine then keeps them in scratch only. */
    if (req->parts & CODEC_OUTPUTS)
        res.outputs = malloc((n_out ? n_out : 1) * sizeof(float));
    if (req->parts & CODEC_HIDDEN)
        res.hidden = malloc((n_hid ? n_hid : 1) * sizeof(float));
    if (req->parts & CODEC_CELL)
        res.cell = malloc((n_cell ? n_cell : 1) * sizeof(float));
    if (((req->parts & CODEC_OUTPUTS) && !res.outputs) ||
        ((req->parts & CODEC_HIDDEN) && !res.hidden) || ((req->parts & CODEC_CELL) && !res.cell)) {
        fail(&e, 503, "out of memory for the results of %zu steps", req->steps);
        goto fail;
    }
    if (rnn_forward(model, b, &res, msg, sizeof msg) < 0) {
        fail(&e, 503, "forward pass failed: %s", msg);
        goto fail;
    }
    if (codec_encode_response(info->name, info, req, &res, out, outlen, &e) < 0)
        goto fail;
    goto done;

fail:
    status = e.status;
    *out = codec_encode_error(e.status, e.message, outlen);
done:
    codec_request_free(req);
    free(res.outputs);
    free(res.hidden);
    free(res.cell);
    return status;
}
