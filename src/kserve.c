/* kserve.c - Open Inference Protocol (KServe v2) requests and responses (see kserve.h).
 *
 * Owns the mapping between v2's padded, rectangular tensors and the engine's ragged flat batch:
 * rows past each sequence's length are dropped on the way in and zero-filled on the way out, and
 * state tensors are transposed between v2's [L*D, B, H] and the engine's (B, L*D, H). */
#include "rnnserve/kserve.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnserve/floatfmt.h"

/* The largest decimal that still rounds to a finite float32 (halfway to 2^128). */
#define F32_LIMIT 0x1.ffffffp127

static int fail(codec_error *e, int status, const char *fmt, ...)
{
    va_list ap;
    e->status = status;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* One input tensor of the request, borrowed from the parsed JSON. */
typedef struct {
    const json_t *shape, *data;
    const char *datatype;
    int present;
} tensor_in;

/* Reads SHAPE as RANK non-negative integers into dims. */
static int read_shape(const tensor_in *t, const char *name, int rank, size_t *dims, codec_error *e)
{
    if (!json_is_array(t->shape) || (int)json_array_size(t->shape) != rank)
        return fail(e, 400, "inputs[%s].shape: expected %d dimensions", name, rank);
    for (int k = 0; k < rank; k++) {
        const json_t *d = json_array_get(t->shape, (size_t)k);
        double v = json_number_value(d);
        if (!json_is_number(d) || v < 0 || v != floor(v) || v > 1e9)
            return fail(e, 400, "inputs[%s].shape[%d]: expected a non-negative integer", name, k);
        dims[k] = (size_t)v;
    }
    return 0;
}

/* Appends the numbers of DATA (flat or nested arrays, row-major) to dst[0..cap); *n counts them.
 * Counting goes on past cap so that a wrong element count can be reported exactly. */
static int flatten(const json_t *v, const char *name, int integers, double *dst, size_t cap,
                   size_t *n, int depth, codec_error *e)
{
    if (json_is_number(v)) {
        double d = json_number_value(v);
        if (integers && d != floor(d))
            return fail(e, 400, "inputs[%s].data[%zu]: expected an integer, got %g", name, *n, d);
        if (!integers && fabs(d) >= F32_LIMIT)
            return fail(e, 400, "inputs[%s].data[%zu]: %g is not representable as float32", name,
                        *n, d);
        if (*n < cap)
            dst[*n] = d;
        (*n)++;
        return 0;
    }
    if (!json_is_array(v) || depth > 8)
        return fail(e, 400, "inputs[%s].data: expected numbers (a flat or nested array)", name);
    for (size_t i = 0; i < json_array_size(v); i++)
        if (flatten(json_array_get(v, i), name, integers, dst, cap, n, depth + 1, e) < 0)
            return -1;
    return 0;
}

/* Reads tensor T's data as exactly COUNT numbers into a new array (the caller frees it). */
static double *read_data(const tensor_in *t, const char *name, int integers, size_t count,
                         codec_error *e)
{
    double *d = malloc((count ? count : 1) * sizeof *d);
    size_t n = 0;
    if (!d) {
        fail(e, 500, "out of memory reading %s", name);
        return NULL;
    }
    if (!json_is_array(t->data)) {
        fail(e, 400, "inputs[%s].data: expected an array of numbers", name);
        goto fail;
    }
    if (flatten(t->data, name, integers, d, count, &n, 0, e) < 0)
        goto fail;
    if (n != count) {
        fail(e, 400, "inputs[%s].data: %zu values, but shape says %zu", name, n, count);
        goto fail;
    }
    return d;
fail:
    free(d);
    return NULL;
}

static int check_datatype(const tensor_in *t, const char *name, const char *const *allowed,
                          codec_error *e)
{
    for (const char *const *a = allowed; *a; a++)
        if (t->datatype && strcmp(t->datatype, *a) == 0)
            return 0;
    return fail(e, 400, "inputs[%s].datatype: \"%s\" is not accepted (expected %s%s%s)", name,
                t->datatype ? t->datatype : "(missing)", allowed[0], allowed[1] ? " or " : "",
                allowed[1] ? allowed[1] : "");
}

/* A decoded request: the engine's batch plus what to answer with. */
typedef struct {
    rnn_batch batch;
    int32_t *lengths;
    float *x, *h0, *c0;
    size_t B, T;
    size_t steps;
    int want_output, want_hn, want_cn;
    char *id;
} request;

static void request_free(request *r)
{
    free(r->lengths);
    free(r->x);
    free(r->h0);
    free(r->c0);
    free(r->id);
}

/* [L*D, B, H] doubles -> (B, L*D, H) floats. */
static float *state_in(const tensor_in *t, const char *name, const rnn_info *in, size_t B,
                       codec_error *e)
{
    static const char *const fp[] = {"FP32", "FP64", NULL};
    const size_t LD = (size_t)(in->num_layers * in->num_directions), H = (size_t)in->hidden_size;
    size_t dims[3];
    if (check_datatype(t, name, fp, e) < 0 || read_shape(t, name, 3, dims, e) < 0)
        return NULL;
    if (dims[0] != LD || dims[1] != B || dims[2] != H) {
        fail(e, 400,
             "inputs[%s].shape: expected [%zu, %zu, %zu] (num_layers*num_directions, batch, "
             "hidden_size), got [%zu, %zu, %zu]",
             name, LD, B, H, dims[0], dims[1], dims[2]);
        return NULL;
    }
    const size_t count = LD * B * H;
    double *d = read_data(t, name, 0, count, e);
    float *s = d ? malloc((count ? count : 1) * sizeof *s) : NULL;
    if (d && !s)
        fail(e, 500, "out of memory");
    for (size_t r = 0; s && r < LD; r++)
        for (size_t i = 0; i < B; i++)
            for (size_t u = 0; u < H; u++)
                s[(i * LD + r) * H + u] = (float)d[(r * B + i) * H + u];
    free(d);
    return s;
}

static int decode(const char *body, size_t len, const rnn_info *in, const codec_limits *lim,
                  request *r, codec_error *e)
{
    static const char *const fp[] = {"FP32", "FP64", NULL};
    static const char *const ints[] = {"INT64", "INT32", NULL};
    json_error_t jerr;
    tensor_in input = {0}, lengths = {0}, h0 = {0}, c0 = {0};
    double *d = NULL;
    int rc = -1;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!root)
        return fail(e, 400, "malformed JSON at line %d, column %d: %s", jerr.line, jerr.column,
                    jerr.text);
    if (!json_is_object(root)) {
        fail(e, 400, "request body: expected a JSON object with \"inputs\"");
        goto done;
    }
    const json_t *id = json_object_get(root, "id");
    if (id && !json_is_string(id)) {
        fail(e, 400, "id: expected a string");
        goto done;
    }
    if (id && !(r->id = strdup(json_string_value(id)))) {
        fail(e, 500, "out of memory");
        goto done;
    }
    const json_t *inputs = json_object_get(root, "inputs");
    if (!json_is_array(inputs) || json_array_size(inputs) == 0) {
        fail(e, 400, "inputs: expected a non-empty array of tensors");
        goto done;
    }
    for (size_t i = 0; i < json_array_size(inputs); i++) {
        const json_t *t = json_array_get(inputs, i);
        const char *name = json_string_value(json_object_get(t, "name"));
        tensor_in *slot = !name                          ? NULL
                          : strcmp(name, "input") == 0   ? &input
                          : strcmp(name, "lengths") == 0 ? &lengths
                          : strcmp(name, "h0") == 0      ? &h0
                          : strcmp(name, "c0") == 0      ? &c0
                                                         : NULL;
        if (!json_is_object(t) || !name) {
            fail(e, 400, "inputs[%zu]: expected a tensor object with a \"name\"", i);
            goto done;
        }
        if (!slot || (slot == &c0 && in->type != RNN_CELL_LSTM)) {
            fail(e, 400,
                 "inputs[%zu]: unknown input \"%s\" (this model takes input, lengths, h0%s)", i,
                 name, in->type == RNN_CELL_LSTM ? ", c0" : "");
            goto done;
        }
        if (slot->present) {
            fail(e, 400, "inputs[%zu]: input \"%s\" given twice", i, name);
            goto done;
        }
        slot->present = 1;
        slot->shape = json_object_get(t, "shape");
        slot->data = json_object_get(t, "data");
        slot->datatype = json_string_value(json_object_get(t, "datatype"));
    }
    if (!input.present) {
        fail(e, 400, "inputs: the tensor \"input\" [batch, max_len, %d] is required",
             in->input_size);
        goto done;
    }
    size_t dims[3];
    if (check_datatype(&input, "input", fp, e) < 0 || read_shape(&input, "input", 3, dims, e) < 0)
        goto done;
    const size_t B = dims[0], T = dims[1], I = (size_t)in->input_size;
    if (dims[2] != I) {
        fail(e, 400, "inputs[input].shape: expected [batch, max_len, %zu], got [%zu, %zu, %zu]", I,
             B, T, dims[2]);
        goto done;
    }
    if (B == 0) {
        fail(e, 400, "inputs[input].shape: batch must be at least 1");
        goto done;
    }
    if (B > lim->max_batch) {
        fail(e, 413, "inputs[input]: batch %zu exceeds max_batch %zu", B, lim->max_batch);
        goto done;
    }
    if (T > lim->max_steps) {
        fail(e, 413, "inputs[input]: max_len %zu exceeds max_steps %zu", T, lim->max_steps);
        goto done;
    }
    r->B = B;
    r->T = T;
    if (!(r->lengths = malloc(B * sizeof *r->lengths))) {
        fail(e, 500, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < B; i++)
        r->lengths[i] = (int32_t)T;
    if (lengths.present) {
        size_t ld;
        if (check_datatype(&lengths, "lengths", ints, e) < 0 ||
            read_shape(&lengths, "lengths", 1, &ld, e) < 0)
            goto done;
        if (ld != B) {
            fail(e, 400, "inputs[lengths].shape: expected [%zu] (the batch), got [%zu]", B, ld);
            goto done;
        }
        if (!(d = read_data(&lengths, "lengths", 1, B, e)))
            goto done;
        for (size_t i = 0; i < B; i++) {
            if (d[i] < 0 || d[i] > (double)T) {
                fail(e, 400, "inputs[lengths].data[%zu]: %g is outside [0, %zu] (max_len)", i, d[i],
                     T);
                goto done;
            }
            r->lengths[i] = (int32_t)d[i];
        }
        free(d);
        d = NULL;
    }
    if (!(d = read_data(&input, "input", 0, B * T * I, e)))
        goto done;
    for (size_t i = 0; i < B; i++)
        r->steps += (size_t)r->lengths[i];
    if (!(r->x = malloc((r->steps ? r->steps : 1) * I * sizeof *r->x))) {
        fail(e, 500, "out of memory");
        goto done;
    }
    /* Keep each sequence's own rows; padding past its length never reaches the engine. */
    float *x = r->x;
    for (size_t i = 0; i < B; i++)
        for (size_t t = 0; t < (size_t)r->lengths[i]; t++)
            for (size_t k = 0; k < I; k++)
                *x++ = (float)d[(i * T + t) * I + k];
    if (h0.present && !(r->h0 = state_in(&h0, "h0", in, B, e)))
        goto done;
    if (c0.present && !(r->c0 = state_in(&c0, "c0", in, B, e)))
        goto done;

    /* "outputs": [{"name": ...}] selects what to return; absent means everything. */
    const json_t *outs = json_object_get(root, "outputs");
    r->want_output = r->want_hn = 1;
    r->want_cn = in->type == RNN_CELL_LSTM;
    if (outs) {
        if (!json_is_array(outs)) {
            fail(e, 400, "outputs: expected an array of {\"name\": ...}");
            goto done;
        }
        r->want_output = r->want_hn = r->want_cn = 0;
        for (size_t i = 0; i < json_array_size(outs); i++) {
            const char *name = json_string_value(json_object_get(json_array_get(outs, i), "name"));
            if (name && strcmp(name, "output") == 0)
                r->want_output = 1;
            else if (name && strcmp(name, "h_n") == 0)
                r->want_hn = 1;
            else if (name && strcmp(name, "c_n") == 0 && in->type == RNN_CELL_LSTM)
                r->want_cn = 1;
            else {
                fail(e, 400, "outputs[%zu]: unknown output \"%s\" (this model has output, h_n%s)",
                     i, name ? name : "(no name)", in->type == RNN_CELL_LSTM ? ", c_n" : "");
                goto done;
            }
        }
    }
    r->batch.batch = B;
    r->batch.lengths = r->lengths;
    r->batch.x = r->x;
    r->batch.h0 = r->h0;
    r->batch.c0 = r->c0;
    rc = 0;
done:
    free(d);
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding */

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} wbuf;

static char *wb_room(wbuf *w, size_t more)
{
    if (w->oom)
        return NULL;
    if (w->len + more > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->len + more)
            cap *= 2;
        char *nb = realloc(w->buf, cap);
        if (!nb) {
            w->oom = 1;
            return NULL;
        }
        w->buf = nb;
        w->cap = cap;
    }
    return w->buf + w->len;
}

static void wb_puts(wbuf *w, const char *s)
{
    size_t n = strlen(s);
    char *o = wb_room(w, n);
    if (o) {
        memcpy(o, s, n);
        w->len += n;
    }
}

static void wb_string(wbuf *w, const char *s)
{
    json_t *j = json_string(s);
    char *q = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    if (q)
        wb_puts(w, q);
    else
        w->oom = 1;
    free(q);
    json_decref(j);
}

/* One output tensor; VALUE(i) gives element i of the row-major tensor. Fails (422) on a
 * non-finite value. */
typedef float (*elem_fn)(const void *ctx, size_t i);

static int wb_tensor(wbuf *w, const char *name, const size_t *shape, int rank, elem_fn value,
                     const void *ctx, int first, codec_error *e)
{
    char num[64];
    size_t count = 1;
    wb_puts(w, first ? "{\"name\":\"" : ",{\"name\":\"");
    wb_puts(w, name);
    wb_puts(w, "\",\"datatype\":\"FP32\",\"shape\":[");
    for (int k = 0; k < rank; k++) {
        snprintf(num, sizeof num, "%s%zu", k ? "," : "", shape[k]);
        wb_puts(w, num);
        count *= shape[k];
    }
    wb_puts(w, "],\"data\":[");
    char *o = wb_room(w, count * (FF_MAX_LEN + 1) + 4);
    if (!o)
        return fail(e, 500, "out of memory encoding the response");
    for (size_t i = 0; i < count; i++) {
        float f = value(ctx, i);
        if (!isfinite(f))
            return fail(e, 422,
                        "%s[%zu]: the forward pass produced a non-finite value, which JSON cannot "
                        "carry (the model diverged for this input)",
                        name, i);
        if (i)
            *o++ = ',';
        o += ff_format_f32(f, o);
    }
    *o++ = ']';
    *o++ = '}';
    w->len = (size_t)(o - w->buf);
    return 0;
}

typedef struct {
    const request *r;
    const rnn_result *res;
    size_t DH, LD, H;
    size_t *off; /* per sequence: first row in res->outputs */
} enc_ctx;

/* output [B, T, D*H]: the sequence's row, or zero past its length (pad_packed_sequence). */
static float output_elem(const void *p, size_t i)
{
    const enc_ctx *c = p;
    size_t k = i % c->DH, t = (i / c->DH) % c->r->T, b = i / (c->DH * c->r->T);
    if (t >= (size_t)c->r->lengths[b])
        return 0.0f;
    return c->res->outputs[(c->off[b] + t) * c->DH + k];
}

/* h_n / c_n [L*D, B, H] from the engine's (B, L*D, H). */
static float hn_elem(const void *p, size_t i)
{
    const enc_ctx *c = p;
    size_t u = i % c->H, b = (i / c->H) % c->r->B, row = i / (c->H * c->r->B);
    return c->res->hidden[(b * c->LD + row) * c->H + u];
}

static float cn_elem(const void *p, size_t i)
{
    const enc_ctx *c = p;
    size_t u = i % c->H, b = (i / c->H) % c->r->B, row = i / (c->H * c->r->B);
    return c->res->cell[(b * c->LD + row) * c->H + u];
}

static int encode(const rnn_info *in, const request *r, const rnn_result *res, char **out,
                  size_t *outlen, codec_error *e)
{
    wbuf w = {0};
    enc_ctx c = {r,
                 res,
                 (size_t)(in->num_directions * in->hidden_size),
                 (size_t)(in->num_layers * in->num_directions),
                 (size_t)in->hidden_size,
                 NULL};
    int first = 1;
    if (!(c.off = malloc((r->B ? r->B : 1) * sizeof *c.off)))
        return fail(e, 500, "out of memory");
    for (size_t i = 0, o = 0; i < r->B; i++) {
        c.off[i] = o;
        o += (size_t)r->lengths[i];
    }
    wb_puts(&w, "{\"model_name\":");
    wb_string(&w, in->name);
    if (r->id) {
        wb_puts(&w, ",\"id\":");
        wb_string(&w, r->id);
    }
    wb_puts(&w, ",\"outputs\":[");
    size_t oshape[3] = {r->B, r->T, c.DH}, sshape[3] = {c.LD, r->B, c.H};
    if (r->want_output) {
        if (wb_tensor(&w, "output", oshape, 3, output_elem, &c, first, e) < 0)
            goto fail;
        first = 0;
    }
    if (r->want_hn) {
        if (wb_tensor(&w, "h_n", sshape, 3, hn_elem, &c, first, e) < 0)
            goto fail;
        first = 0;
    }
    if (r->want_cn && wb_tensor(&w, "c_n", sshape, 3, cn_elem, &c, first, e) < 0)
        goto fail;
    wb_puts(&w, "]}");
    if (w.oom) {
        fail(e, 500, "out of memory encoding the response");
        goto fail;
    }
    free(c.off);
    *out = w.buf;
    *outlen = w.len;
    return 0;
fail:
    free(c.off);
    free(w.buf);
    return -1;
}

char *kserve_encode_error(const char *message, size_t *len)
{
    /* jansson refuses a string that is not UTF-8, and a message can quote the client's bytes
     * (jansson's own "near '...'" cuts a multibyte character in two): without this, a bad
     * request would get no answer at all. Such bytes become U+FFFD. */
    char *clean = malloc(strlen(message) * 3 + 1), *o = clean;
    if (!clean)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)message; *p; p++) {
        size_t n = 1;
        unsigned long cp = *p, min = 0;
        if (*p >= 0xc2 && *p <= 0xdf)
            n = 2, cp = *p & 0x1fu, min = 0x80;
        else if (*p >= 0xe0 && *p <= 0xef)
            n = 3, cp = *p & 0x0fu, min = 0x800;
        else if (*p >= 0xf0 && *p <= 0xf4)
            n = 4, cp = *p & 0x07u, min = 0x10000;
        else if (*p >= 0x80)
            n = 0;
        for (size_t i = 1; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                n = 0; /* also stops at the NUL */
            else
                cp = cp << 6 | (p[i] & 0x3fu);
        if (n == 0 || cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            continue;
        }
        memcpy(o, p, n);
        o += n;
        p += n - 1;
    }
    *o = '\0';
    json_t *j = json_pack("{s:s}", "error", clean);
    free(clean);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (s && len)
        *len = strlen(s);
    return s;
}

int kserve_infer(const rnn_model *model, const char *body, size_t len, const codec_limits *lim,
                 char **out, size_t *outlen, codec_stats *stats)
{
    const rnn_info *in = rnn_model_info(model);
    request r = {0};
    codec_error e = {500, ""};
    rnn_result res = {0};
    char msg[256];
    size_t no, nh, nc;
    int status = 200;
    *out = NULL;
    *outlen = 0;
    if (stats)
        stats->sequences = stats->steps = 0;
    if (decode(body, len, in, lim, &r, &e) < 0)
        goto fail;
    if (stats) {
        stats->sequences = r.B;
        stats->steps = r.steps;
    }
    rnn_result_sizes(model, &r.batch, &no, &nh, &nc);
    /* The engine computes the top layer's outputs anyway; h_n is always kept (cheap). */
    res.outputs = r.want_output ? malloc((no ? no : 1) * sizeof(float)) : NULL;
    res.hidden = malloc((nh ? nh : 1) * sizeof(float));
    res.cell = r.want_cn ? malloc((nc ? nc : 1) * sizeof(float)) : NULL;
    if ((r.want_output && !res.outputs) || !res.hidden || (r.want_cn && !res.cell)) {
        fail(&e, 503, "out of memory for the results of %zu steps", r.steps);
        goto fail;
    }
    if (rnn_forward(model, &r.batch, &res, msg, sizeof msg) < 0) {
        fail(&e, 503, "forward pass failed: %s", msg);
        goto fail;
    }
    if (encode(in, &r, &res, out, outlen, &e) < 0)
        goto fail;
    goto done;
fail:
    status = e.status;
    *out = kserve_encode_error(e.message, outlen);
done:
    request_free(&r);
    free(res.outputs);
    free(res.hidden);
    free(res.cell);
    return status;
}

char *kserve_model_metadata(const rnn_info *in, size_t *len)
{
    const json_int_t LD = in->num_layers * in->num_directions, H = in->hidden_size;
    json_t *inputs = json_pack("[{s:s,s:s,s:[i,i,i]},{s:s,s:s,s:[i]},{s:s,s:s,s:[I,i,I]}]", "name",
                               "input", "datatype", "FP32", "shape", -1, -1, in->input_size, "name",
                               "lengths", "datatype", "INT64", "shape", -1, "name", "h0",
                               "datatype", "FP32", "shape", LD, -1, H);
    json_t *outputs =
        json_pack("[{s:s,s:s,s:[i,i,I]},{s:s,s:s,s:[I,i,I]}]", "name", "output", "datatype", "FP32",
                  "shape", -1, -1, (json_int_t)(in->num_directions * in->hidden_size), "name",
                  "h_n", "datatype", "FP32", "shape", LD, -1, H);
    if (in->type == RNN_CELL_LSTM && inputs && outputs) {
        json_array_append_new(inputs, json_pack("{s:s,s:s,s:[I,i,I]}", "name", "c0", "datatype",
                                                "FP32", "shape", LD, -1, H));
        json_array_append_new(outputs, json_pack("{s:s,s:s,s:[I,i,I]}", "name", "c_n", "datatype",
                                                 "FP32", "shape", LD, -1, H));
    }
    if (!inputs || !outputs) {
        json_decref(inputs);
        json_decref(outputs);
        return NULL;
    }
    /* No "versions": rnnserve does not version models, and the protocol then leaves it out. */
    json_t *m = json_pack("{s:s,s:s,s:o,s:o}", "name", in->name, "platform", "rnnserve", "inputs",
                          inputs, "outputs", outputs);
    if (!m)
        return NULL;
    char *s = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    if (s && len)
        *len = strlen(s);
    return s;
}
