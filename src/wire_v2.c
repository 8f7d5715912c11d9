/* wire_v2.c - the Open Inference Protocol's (KServe v2) JSON for rnnserve's models, behind api.h.
 *
 * Tensors are rectangular there: the ragged batch travels as a zero-padded `input`
 * [batch, max_len, input_size] plus a `lengths` [batch] tensor, and the results come back in
 * PyTorch's own layouts: `output` and `predictions` [batch, max_len, width] (zero past each
 * length, as pad_packed_sequence gives), `h_n` and `c_n` [L*D, batch, H]. Errors use the
 * protocol's {"error": "message"} body. Requests are read in one strict pass (jsonscan.c, as v1):
 * numbers go straight to float32, correctly rounded, into arrays no larger than the data present
 * (never sized from a claimed shape); the tensors' fields may come in any order, so each is
 * judged when its object ends and the request when the body does. */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnserve/floatfmt.h"
#include "rnnserve/jsonnum.h"
#include "rnnserve/jsonscan.h"
#include "wire.h"

/* Nesting of a tensor's "data" past which it is refused (flat or nested row-major arrays). */
#define MAX_NEST 9
#define MAX_RANK 8

enum { T_INPUT, T_LENGTHS, T_H0, T_C0, T_TOKENS, T_SLOTS };
static const char *const SLOT_NAMES[T_SLOTS] = {"input", "lengths", "h0", "c0", "tokens"};

/* One input tensor as read: its fields, and its data's numbers with the first problems found. */
typedef struct {
    bool present;
    char datatype[32];
    bool has_datatype;
    int rank; /* -1: "shape" missing or not an array */
    double dims[MAX_RANK];
    float *v; /* the data's numbers, row-major, as many as there are (cap grows with them) */
    size_t n, cap;
    bool data_seen, data_array;
    size_t bad_at;                     /* first element that is not a number (or nested too deep) */
    size_t range_at;                   /* first number past float32 */
    const char *range_tok, *range_end; /* its text, in the body */
    size_t nonint_at;                  /* first number that is not an integer */
    double nonint_v;                   /* its value */
    /* the binary tensor data extension: parameters.binary_data_size, and the bytes it names */
    bool has_bin, bin_bad;
    size_t bin_size;
    size_t order;    /* its index in "inputs": binary data follows the header in that order */
    const char *raw; /* input's FP32 bytes in the body: read from there, never copied into v */
} tensor;

typedef struct {
    js_reader js;
    const rnn_info *info;
    bool root_bad, id_bad, inputs_seen, inputs_bad, outputs_seen;
    bool params_seen, params_bad, timeout_bad, only_last_bad;
    bool only_last;      /* parameters.only_last */
    int64_t timeout_us;  /* parameters.timeout: microseconds, as Triton's clients send it */
    api_sequence seq;    /* parameters.sequence_*: the sequence extension (seq.str owned) */
    const char *seq_bad; /* the first bad sequence parameter's message */
    size_t ninputs;
    wire_error tensor_err, outputs_err; /* the first problem of each kind, in document order */
    bool tensor_set, outputs_set;
    tensor t[T_SLOTS];
    char *id;
    unsigned parts;
    /* the binary tensor data extension: the body's framing, and which outputs go out in binary
     * (parameters.binary_data_output for all, an output's "binary_data" overriding it) */
    const api_framing *framing;
    const char *body;
    size_t len;
    bool bin_output, bin_output_bad;
    unsigned bin_on, bin_off; /* WIRE_* bits an output's "binary_data" set true / false */
    bool bin_param_bad;
} decoder;

struct wire_v2_request {
    rnn_batch batch;
    int32_t *lengths;
    float *x, *h0, *c0;
    int32_t *tokens; /* a token model's ids (steps); x is then NULL (forward.c embeds them) */
    size_t B, T, steps;
    unsigned parts;
    unsigned binary; /* WIRE_* bits returned as binary tensors after the JSON header */
    bool only_last;
    char *id;
    int64_t timeout_us;
    api_sequence seq; /* seq.str owned */
};
typedef struct wire_v2_request request;

static void request_free(void *p)
{
    request *r = p;
    if (!r)
        return;
    free(r->lengths);
    free(r->x);
    free(r->tokens);
    free(r->h0);
    free(r->c0);
    free(r->id);
    free((char *)r->seq.str);
    free(r);
}

/* The names of the response tensors, by WIRE bit. */
static const char *const OUT_NAMES[4] = {"output", "h_n", "c_n", "predictions"};

/* Appends one number of a tensor's data (the cursor is on it). */
static int read_number(decoder *d, tensor *t, int depth)
{
    float f;
    const char *a, *b;
    const int st = js_number(&d->js, depth, &f, &a, &b);
    if (st < 0)
        return -1;
    if (t->n == t->cap) {
        /* grows with the data present only: a claimed shape never sizes an allocation */
        const size_t c = t->cap ? 2 * t->cap : 64;
        float *nv = realloc(t->v, c * sizeof *nv);
        if (!nv) {
            d->js.oom = true;
            return js_fail(&d->js, d->js.p, "out of memory");
        }
        t->v = nv;
        t->cap = c;
    }
    if (st == JN_RANGE || st == JN_OVERFLOW) {
        if (t->range_at == JS_NO_INDEX)
            t->range_at = t->n, t->range_tok = a, t->range_end = b;
        f = *a == '-' ? -INFINITY : INFINITY;
    }
    if (t->nonint_at == JS_NO_INDEX) {
        /* only a fraction or an exponent can make a number other than an integer */
        const size_t n = (size_t)(b - a);
        if (memchr(a, '.', n) || memchr(a, 'e', n) || memchr(a, 'E', n)) {
            const double v = jn_to_double(a, b);
            if (v != floor(v))
                t->nonint_at = t->n, t->nonint_v = v;
        }
    }
    t->v[t->n++] = f;
    return 0;
}

/* A (nested) array of a tensor's data at DEPTH, NEST arrays deep. */
static int read_data(decoder *d, tensor *t, int depth, int nest)
{
    js_reader *js = &d->js;
    if (js_array_begin(js, depth) < 0)
        return -1;
    size_t i = 0;
    int rc;
    while ((rc = js_array_next(js, i)) > 0) {
        const js_kind k = js_peek(js);
        if (k == JS_NUMBER) {
            if (read_number(d, t, depth + 1) < 0)
                return -1;
        } else if (k == JS_ARRAY && nest < MAX_NEST) {
            if (read_data(d, t, depth + 1, nest + 1) < 0)
                return -1;
        } else {
            if (t->bad_at == JS_NO_INDEX)
                t->bad_at = t->n;
            if (js_skip(js, depth + 1) < 0)
                return -1;
        }
        i++;
    }
    return rc;
}

/* "shape", at DEPTH: up to MAX_RANK numbers (NAN for what is not one). */
static int read_shape(decoder *d, tensor *t, int depth)
{
    js_reader *js = &d->js;
    t->rank = -1;
    if (js_peek(js) != JS_ARRAY)
        return js_skip(js, depth);
    if (js_array_begin(js, depth) < 0)
        return -1;
    size_t i = 0;
    int rc;
    while ((rc = js_array_next(js, i)) > 0) {
        double v = NAN;
        if (js_peek(js) == JS_NUMBER) {
            float f;
            const char *a, *b;
            if (js_number(js, depth + 1, &f, &a, &b) < 0)
                return -1;
            v = jn_to_double(a, b);
        } else if (js_skip(js, depth + 1) < 0) {
            return -1;
        }
        if (i < MAX_RANK)
            t->dims[i] = v;
        i++;
    }
    t->rank = i > MAX_RANK ? MAX_RANK + 1 : (int)i;
    return rc;
}

/* A tensor's "parameters", at depth 4: binary_data_size (the extension's byte count of its
 * binary data) is read, whatever else the protocol's clients send is skipped. */
static int read_tensor_params(decoder *d, tensor *t)
{
    js_reader *js = &d->js;
    if (js_peek(js) != JS_OBJECT) {
        t->bin_bad = true;
        return js_skip(js, 4);
    }
    js_object o;
    js_str key;
    int rc;
    if (js_object_begin(js, 4, &o) < 0)
        return -1;
    while ((rc = js_object_next(js, &o, &key)) > 0) {
        if (!js_str_eq(&key, "binary_data_size")) {
            if (js_skip(js, 5) < 0)
                return -1;
            continue;
        }
        t->has_bin = true;
        if (js_peek(js) != JS_NUMBER) {
            t->bin_bad = true;
            if (js_skip(js, 5) < 0)
                return -1;
            continue;
        }
        double v;
        const int whole = wire_read_whole(js, 5, 1e15, &v);
        if (whole < 0)
            return -1;
        if (whole)
            t->bin_size = (size_t)v;
        else
            t->bin_bad = true;
    }
    return rc;
}

/* inputs[i], at depth 3: a tensor object; judged (its name) once it ends. */
static int read_tensor(decoder *d, size_t i)
{
    js_reader *js = &d->js;
    const bool lstm = rnn_cell_describe(d->info->type)->has_cell;
    const bool tok = d->info->vocab_size > 0;
    if (js_peek(js) != JS_OBJECT) {
        wire_first(&d->tensor_err, &d->tensor_set, 400,
                   "inputs[%zu]: expected a tensor object with a \"name\"", i);
        return js_skip(js, 3);
    }
    tensor t = {.rank = -1,
                .bad_at = JS_NO_INDEX,
                .range_at = JS_NO_INDEX,
                .nonint_at = JS_NO_INDEX,
                .order = i};
    char name[WIRE_MSG_LEN / 4] = "";
    bool has_name = false, seen_name = false, seen_dt = false, seen_shape = false;
    bool seen_params = false;
    js_object o;
    js_str key, s;
    int rc;
    if (js_object_begin(js, 3, &o) < 0)
        return -1;
    while ((rc = js_object_next(js, &o, &key)) > 0) {
        int r;
        const js_kind k = js_peek(js);
        if (js_str_eq(&key, "name") && !seen_name) {
            seen_name = true;
            if (k == JS_STRING) {
                if ((r = js_string(js, 4, &s)) == 0)
                    js_str_copy(&s, name, sizeof name), has_name = true;
            } else {
                r = js_skip(js, 4);
            }
        } else if (js_str_eq(&key, "datatype") && !seen_dt) {
            seen_dt = true;
            if (k == JS_STRING) {
                if ((r = js_string(js, 4, &s)) == 0)
                    js_str_copy(&s, t.datatype, sizeof t.datatype), t.has_datatype = true;
            } else {
                r = js_skip(js, 4);
            }
        } else if (js_str_eq(&key, "shape") && !seen_shape) {
            seen_shape = true;
            r = read_shape(d, &t, 4);
        } else if (js_str_eq(&key, "data") && !t.data_seen) {
            t.data_seen = true;
            t.data_array = k == JS_ARRAY;
            r = t.data_array ? read_data(d, &t, 4, 1) : js_skip(js, 4);
        } else if (js_str_eq(&key, "parameters") && !seen_params) {
            seen_params = true;
            r = read_tensor_params(d, &t);
        } else {
            r = js_skip(js, 4); /* what the protocol may add; repeats fail */
        }
        if (r < 0) {
            free(t.v);
            return -1;
        }
    }
    if (rc < 0) {
        free(t.v);
        return -1;
    }
    int slot = -1;
    for (int k = 0; has_name && k < T_SLOTS; k++)
        if (strcmp(name, SLOT_NAMES[k]) == 0)
            slot = k;
    if (!has_name)
        wire_first(&d->tensor_err, &d->tensor_set, 400,
                   "inputs[%zu]: expected a tensor object with a \"name\"", i);
    else if (tok && slot == T_INPUT)
        wire_first(&d->tensor_err, &d->tensor_set, 400,
                   "inputs[%zu]: this model takes token ids (an embedding of %d tokens): send "
                   "\"tokens\" (INT64 [batch, max_len]) instead of \"input\"",
                   i, d->info->vocab_size);
    else if (slot < 0 || (slot == T_C0 && !lstm) || (slot == T_TOKENS && !tok))
        wire_first(&d->tensor_err, &d->tensor_set, 400,
                   "inputs[%zu]: unknown input \"%s\" (this model takes %s, lengths, h0%s)", i,
                   name, tok ? "tokens" : "input", lstm ? ", c0" : "");
    else if (d->t[slot].present)
        wire_first(&d->tensor_err, &d->tensor_set, 400, "inputs[%zu]: input \"%s\" given twice", i,
                   name);
    if (d->tensor_set || slot < 0 || d->t[slot].present) {
        free(t.v);
        return 0;
    }
    t.present = true;
    d->t[slot] = t;
    return 0;
}

/* "inputs", at depth 2. */
static int read_inputs(decoder *d)
{
    js_reader *js = &d->js;
    d->inputs_seen = true;
    if (js_peek(js) != JS_ARRAY) {
        d->inputs_bad = true;
        return js_skip(js, 2);
    }
    if (js_array_begin(js, 2) < 0)
        return -1;
    size_t i = 0;
    int rc;
    while ((rc = js_array_next(js, i)) > 0) {
        if (read_tensor(d, i) < 0)
            return -1;
        i++;
    }
    d->ninputs = i;
    d->inputs_bad = d->inputs_bad || i == 0;
    return rc;
}

/* An output's "parameters", at depth 4: "binary_data" (true: return it in binary) into *BIN
 * (1 true, 0 false, -1 not given); the rest is skipped. */
static int read_output_params(decoder *d, int *bin)
{
    js_reader *js = &d->js;
    if (js_peek(js) != JS_OBJECT) {
        d->bin_param_bad = true;
        return js_skip(js, 4);
    }
    js_object o;
    js_str key;
    int rc;
    if (js_object_begin(js, 4, &o) < 0)
        return -1;
    while ((rc = js_object_next(js, &o, &key)) > 0) {
        if (js_str_eq(&key, "binary_data")) {
            if (js_peek(js) == JS_BOOL)
                *bin = *js->p == 't';
            else
                d->bin_param_bad = true;
        }
        if (js_skip(js, 5) < 0)
            return -1;
    }
    return rc;
}

/* "outputs", at depth 2: [{"name": ...}] selects what to return. */
static int read_outputs(decoder *d)
{
    js_reader *js = &d->js;
    d->outputs_seen = true;
    d->parts = 0;
    if (js_peek(js) != JS_ARRAY) {
        wire_first(&d->outputs_err, &d->outputs_set, 400,
                   "outputs: expected an array of {\"name\": ...}");
        return js_skip(js, 2);
    }
    if (js_array_begin(js, 2) < 0)
        return -1;
    const unsigned have = wire_parts_of(d->info);
    size_t i = 0;
    int rc;
    while ((rc = js_array_next(js, i)) > 0) {
        char name[WIRE_MSG_LEN / 4] = "(no name)";
        int bin = -1;
        if (js_peek(js) == JS_OBJECT) {
            js_object o;
            js_str key, s;
            int r;
            bool seen = false, seen_params = false;
            if (js_object_begin(js, 3, &o) < 0)
                return -1;
            while ((r = js_object_next(js, &o, &key)) > 0) {
                if (js_str_eq(&key, "name") && !seen && js_peek(js) == JS_STRING) {
                    seen = true;
                    if (js_string(js, 4, &s) < 0)
                        return -1;
                    js_str_copy(&s, name, sizeof name);
                } else if (js_str_eq(&key, "parameters") && !seen_params) {
                    seen_params = true;
                    if (read_output_params(d, &bin) < 0)
                        return -1;
                } else if (js_skip(js, 4) < 0) {
                    return -1;
                }
            }
            if (r < 0)
                return -1;
        } else if (js_skip(js, 3) < 0) {
            return -1;
        }
        int bit = -1;
        for (int p = 0; p < 4; p++)
            if ((have & (1u << p)) && strcmp(name, OUT_NAMES[p]) == 0)
                bit = p;
        if (bit >= 0) {
            d->parts |= 1u << bit;
            d->bin_on |= bin == 1 ? 1u << bit : 0;
            d->bin_off |= bin == 0 ? 1u << bit : 0;
        } else {
            char list[96];
            wire_parts_list(d->info, OUT_NAMES, list, sizeof list);
            wire_first(&d->outputs_err, &d->outputs_set, 400,
                       "outputs[%zu]: unknown output \"%s\" (this model has %s)", i, name, list);
        }
        i++;
    }
    return rc;
}

/* The sequence extension's parameters (KEY, its value at depth 3): "sequence_id" a uint64 or a
 * string, "sequence_start" and "sequence_end" booleans. 1 when KEY is one of them (read), 0 when
 * not, -1 on a scan error. */
static int read_sequence_param(decoder *d, const js_str *key)
{
    js_reader *js = &d->js;
    api_sequence *q = &d->seq;
    const js_kind k = js_peek(js);
    if (js_str_eq(key, "sequence_start") || js_str_eq(key, "sequence_end")) {
        if (k != JS_BOOL)
            d->seq_bad = d->seq_bad ? d->seq_bad
                                    : "parameters.sequence_start and sequence_end: expected true "
                                      "or false";
        else
            *(js_str_eq(key, "sequence_start") ? &q->start : &q->end) = *js->p == 't';
        return js_skip(js, 3) < 0 ? -1 : 1;
    }
    if (!js_str_eq(key, "sequence_id"))
        return 0;
    static const char *const BAD =
        "parameters.sequence_id: expected an unsigned 64-bit integer or a string";
    if (k == JS_STRING && !q->given) {
        js_str v;
        char *copy;
        if (js_string(js, 3, &v) < 0)
            return -1;
        if (!(copy = malloc(v.len + 1))) {
            js->oom = true;
            return js_fail(js, js->p, "out of memory");
        }
        js_str_copy(&v, copy, v.len + 1);
        *q = (api_sequence){true, true, copy, strlen(copy), 0, q->start, q->end};
        return 1;
    }
    if (k != JS_NUMBER || q->given) {
        d->seq_bad = d->seq_bad ? d->seq_bad : BAD;
        return js_skip(js, 3) < 0 ? -1 : 1;
    }
    float f;
    const char *a, *b;
    if (js_number(js, 3, &f, &a, &b) < 0)
        return -1;
    uint64_t n = 0;
    bool ok = b > a && b - a <= 20;
    for (const char *c = a; ok && c < b; c++) {
        ok = *c >= '0' && *c <= '9' && n <= (UINT64_MAX - (uint64_t)(*c - '0')) / 10;
        n = n * 10 + (uint64_t)(*c - '0');
    }
    if (!ok)
        d->seq_bad = d->seq_bad ? d->seq_bad : BAD;
    else
        *q = (api_sequence){true, false, NULL, 0, n, q->start, q->end};
    return 1;
}

/* The request's "parameters", at depth 2: "timeout" (microseconds the request may wait for
 * compute; 0 is none), "only_last" (true: output and predictions at each sequence's last step
 * only) and "binary_data_output" are read, and whatever else the protocol's clients send is
 * skipped. */
static int read_parameters(decoder *d)
{
    js_reader *js = &d->js;
    if (js_peek(js) != JS_OBJECT) {
        d->params_bad = true;
        return js_skip(js, 2);
    }
    js_object o;
    js_str key;
    int rc;
    if (js_object_begin(js, 2, &o) < 0)
        return -1;
    while ((rc = js_object_next(js, &o, &key)) > 0) {
        if (js_str_eq(&key, "binary_data_output")) {
            if (js_peek(js) == JS_BOOL)
                d->bin_output = *js->p == 't';
            else
                d->bin_output_bad = true;
            if (js_skip(js, 3) < 0)
                return -1;
            continue;
        }
        if (js_str_eq(&key, "only_last")) {
            if (js_peek(js) == JS_BOOL)
                d->only_last = *js->p == 't';
            else
                d->only_last_bad = true;
            if (js_skip(js, 3) < 0)
                return -1;
            continue;
        }
        const int seq = read_sequence_param(d, &key);
        if (seq < 0)
            return -1;
        if (seq)
            continue;
        if (!js_str_eq(&key, "timeout") || js_peek(js) != JS_NUMBER) {
            d->timeout_bad |= js_str_eq(&key, "timeout");
            if (js_skip(js, 3) < 0)
                return -1;
            continue;
        }
        double v;
        const int whole = wire_read_whole(js, 3, 3.6e9, &v);
        if (whole < 0)
            return -1;
        if (whole)
            d->timeout_us = (int64_t)v;
        else
            d->timeout_bad = true;
    }
    return rc;
}

/* The body, at depth 1. */
static int read_root(void *p)
{
    decoder *d = p;
    js_reader *js = &d->js;
    const js_kind k = js_peek(js);
    if (k == JS_ARRAY) {
        d->root_bad = true;
        return js_skip(js, 1);
    }
    if (k != JS_OBJECT)
        return js_fail_here(js, "'[' or '{' expected");
    js_object o;
    js_str key, s;
    int rc;
    if (js_object_begin(js, 1, &o) < 0)
        return -1;
    while ((rc = js_object_next(js, &o, &key)) > 0) {
        int r;
        if (js_str_eq(&key, "id") && !d->id && !d->id_bad) {
            if (js_peek(js) != JS_STRING) {
                d->id_bad = true;
                r = js_skip(js, 2);
            } else if ((r = js_string(js, 2, &s)) == 0) {
                if (!(d->id = malloc(s.len + 1))) {
                    js->oom = true;
                    return js_fail(js, js->p, "out of memory");
                }
                js_str_copy(&s, d->id, s.len + 1);
            }
        } else if (js_str_eq(&key, "inputs") && !d->inputs_seen) {
            r = read_inputs(d);
        } else if (js_str_eq(&key, "outputs") && !d->outputs_seen) {
            r = read_outputs(d);
        } else if (js_str_eq(&key, "parameters") && !d->params_seen) {
            d->params_seen = true;
            r = read_parameters(d);
        } else {
            r = js_skip(js, 2); /* what the protocol may add; repeats fail */
        }
        if (r < 0)
            return -1;
    }
    return rc;
}

/* Checks tensor T's datatype against ALLOWED (two names). */
static int check_datatype(const tensor *t, const char *name, const char *const allowed[2],
                          wire_error *e)
{
    if (t->has_datatype &&
        (strcmp(t->datatype, allowed[0]) == 0 || strcmp(t->datatype, allowed[1]) == 0))
        return 0;
    return wire_fail(e, 400, "inputs[%s].datatype: \"%s\" is not accepted (expected %s or %s)",
                     name, t->has_datatype ? t->datatype : "(missing)", allowed[0], allowed[1]);
}

/* T's shape as RANK non-negative integers into dims. */
static int check_shape(const tensor *t, const char *name, int rank, size_t *dims, wire_error *e)
{
    if (t->rank != rank)
        return wire_fail(e, 400, "inputs[%s].shape: expected %d dimensions", name, rank);
    for (int k = 0; k < rank; k++) {
        const double v = t->dims[k];
        if (!(v >= 0) || v != floor(v) || v > 1e9)
            return wire_fail(e, 400, "inputs[%s].shape[%d]: expected a non-negative integer", name,
                             k);
        dims[k] = (size_t)v;
    }
    return 0;
}

/* T's data: exactly COUNT numbers, integers when INTEGERS, else float32s. */
static int check_data(const tensor *t, const char *name, int integers, size_t count, wire_error *e)
{
    if (!t->data_array)
        return wire_fail(e, 400, "inputs[%s].data: expected an array of numbers", name);
    const size_t num_at = integers ? t->nonint_at : t->range_at;
    char num[48];
    if (t->bad_at != JS_NO_INDEX && (num_at == JS_NO_INDEX || t->bad_at <= num_at))
        return wire_fail(e, 400, "inputs[%s].data: expected numbers (a flat or nested array)",
                         name);
    if (num_at != JS_NO_INDEX && integers)
        return wire_fail(e, 400, "inputs[%s].data[%zu]: expected an integer, got %g", name, num_at,
                         t->nonint_v);
    if (num_at != JS_NO_INDEX)
        return wire_fail(e, 400, "inputs[%s].data[%zu]: %s is not representable as float32", name,
                         num_at, wire_number_text(t->range_tok, t->range_end, num, sizeof num));
    if (t->n != count && t->has_bin)
        return wire_fail(e, 400,
                         "inputs[%s]: its shape holds %zu elements, but its binary_data_size of "
                         "%zu bytes holds %zu %s elements",
                         name, count, t->bin_size, t->n, t->datatype);
    if (t->n != count)
        return wire_fail(e, 400, "inputs[%s].data: %zu values, but shape says %zu", name, t->n,
                         count);
    return 0;
}

/* The binary tensor data extension: the bytes after the JSON header belong to the inputs whose
 * parameters give a binary_data_size, in the order "inputs" lists them, and must add up to
 * exactly what follows the header. Each input's bytes become its data: input's FP32 read in
 * place (build copies each sequence's rows from the body), the others into their arrays. */
static int attach_binary(decoder *d, wire_error *e)
{
    static const char *const TYPES[T_SLOTS] = {"FP32", "INT32 or INT64", "FP32", "FP32",
                                               "INT32 or INT64"};
    const size_t start = d->framing && d->framing->binary ? d->framing->header_len : d->len;
    const size_t avail = d->len - start;
    int order[T_SLOTS], n = 0;
    for (int k = 0; k < T_SLOTS; k++) /* by their place in "inputs" */
        if (d->t[k].present) {
            int j = n++;
            for (; j > 0 && d->t[order[j - 1]].order > d->t[k].order; j--)
                order[j] = order[j - 1];
            order[j] = k;
        }
    size_t off = 0;
    for (int j = 0; j < n; j++) {
        tensor *t = &d->t[order[j]];
        const char *name = SLOT_NAMES[order[j]];
        if (t->bin_bad)
            return wire_fail(e, 400,
                             "inputs[%s].parameters: expected an object whose binary_data_size is "
                             "a byte count (a non-negative integer)",
                             name);
        if (!t->has_bin)
            continue;
        if (!d->framing || !d->framing->binary)
            return wire_fail(e, 400,
                             "inputs[%s].parameters.binary_data_size: binary tensor data needs "
                             "the Inference-Header-Content-Length header (the JSON header's "
                             "length in bytes)",
                             name);
        if (t->data_seen)
            return wire_fail(e, 400,
                             "inputs[%s]: both \"data\" and parameters.binary_data_size given "
                             "(a tensor's data is in the JSON or in binary, not both)",
                             name);
        const size_t el = t->has_datatype ? wire_bin_dtype_size(t->datatype) : 0;
        const bool ints = order[j] == T_LENGTHS || order[j] == T_TOKENS;
        if (!el || ints != (strcmp(t->datatype, "FP32") != 0))
            return wire_fail(e, 400,
                             "inputs[%s].datatype: \"%s\" is not accepted in binary (expected %s)",
                             name, t->has_datatype ? t->datatype : "(missing)", TYPES[order[j]]);
        if (t->bin_size % el)
            return wire_fail(e, 400,
                             "inputs[%s].parameters.binary_data_size: %zu bytes is not a whole "
                             "number of %s elements (%zu bytes each)",
                             name, t->bin_size, t->datatype, el);
        if (t->bin_size > avail - off)
            return wire_fail(e, 400,
                             "inputs[%s].parameters.binary_data_size: %zu bytes from byte %zu of "
                             "the binary data, past its end: %zu bytes follow the JSON header",
                             name, t->bin_size, off, avail);
        const char *src = d->body + start + off;
        t->n = t->bin_size / el;
        t->data_array = true;
        if (order[j] == T_INPUT) {
            t->raw = src;
        } else {
            if (!(t->v = malloc((t->n + 1) * sizeof *t->v)))
                return wire_fail(e, 500, "out of memory");
            wire_bin_to_f32(src, t->datatype, t->n, t->v);
        }
        off += t->bin_size;
    }
    if (off != avail)
        return wire_fail(e, 400,
                         "binary data: the inputs' binary_data_size add up to %zu bytes, but %zu "
                         "bytes follow the JSON header (Inference-Header-Content-Length %zu of a "
                         "%zu-byte body)",
                         off, avail, start, d->len);
    if (d->bin_output_bad || d->bin_param_bad)
        return wire_fail(e, 400, "%s: expected true or false",
                         d->bin_output_bad ? "parameters.binary_data_output"
                                           : "outputs[].parameters.binary_data");
    return 0;
}

static const char *const FP[2] = {"FP32", "FP64"}, *const INTS[2] = {"INT64", "INT32"};

/* h0 / c0 [L*D, B, H] -> the engine's (B, L*D, H): a new array in *out. */
static int state_in(tensor *t, const char *name, const rnn_info *in, size_t B, float **out,
                    wire_error *e)
{
    const size_t LD = (size_t)(in->num_layers * in->num_directions), H = (size_t)in->hidden_size;
    size_t dims[3];
    if (check_datatype(t, name, FP, e) < 0 || check_shape(t, name, 3, dims, e) < 0)
        return -1;
    if (dims[0] != LD || dims[1] != B || dims[2] != H)
        return wire_fail(e, 400,
                         "inputs[%s].shape: expected [%zu, %zu, %zu] (num_layers*num_directions, "
                         "batch, hidden_size), got [%zu, %zu, %zu]",
                         name, LD, B, H, dims[0], dims[1], dims[2]);
    if (check_data(t, name, 0, LD * B * H, e) < 0)
        return -1;
    if (!(*out = malloc((LD * B * H + 1) * sizeof **out)))
        return wire_fail(e, 500, "out of memory");
    wire_states_from_layers(t->v, B, LD, H, *out);
    return 0;
}

/* A token model's "tokens" [B, T] (T = r->T), integers already checked: each sequence's ids
 * within its length (what lies past it is padding, never looked at) into r->tokens, each in
 * [0, vocab_size). */
static int tokens_in(const tensor *t, const rnn_info *in, request *r, wire_error *e)
{
    const size_t V = (size_t)in->vocab_size;
    if (!(r->tokens = malloc((r->steps + 1) * sizeof *r->tokens)))
        return wire_fail(e, 500, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < r->B; i++)
        for (size_t s = 0; s < (size_t)r->lengths[i]; s++) {
            const size_t at = i * r->T + s;
            const float v = t->v[at];
            char num[48];
            if (!(v >= 0 && (double)v < (double)V))
                return wire_fail(e, 400,
                                 "inputs[tokens].data[%zu]: %s is not a token id (an integer in "
                                 "[0, %zu))",
                                 at,
                                 at == t->range_at
                                     ? wire_number_text(t->range_tok, t->range_end, num, sizeof num)
                                     : (snprintf(num, sizeof num, "%g", (double)v), num),
                                 V);
            r->tokens[n++] = (int32_t)v;
        }
    return 0;
}

/* The request from what the pass read, in the order the protocol's checks go: the body, "id",
 * "inputs", each tensor, then input's type and shape, the limits, lengths, input's data, the
 * states, and "outputs" last. */
static int build(decoder *d, const api_limits *lim, request *r, wire_error *e)
{
    const rnn_info *in = d->info;
    if (d->root_bad)
        return wire_fail(e, 400, "request body: expected a JSON object with \"inputs\"");
    if (d->id_bad)
        return wire_fail(e, 400, "id: expected a string");
    if (d->params_bad)
        return wire_fail(e, 400, "parameters: expected an object");
    if (d->timeout_bad)
        return wire_fail(e, 400,
                         "parameters.timeout: expected an integer number of microseconds from 0 "
                         "to 3600000000");
    if (d->only_last_bad)
        return wire_fail(e, 400, "parameters.only_last: expected true or false");
    if (d->seq_bad)
        return wire_fail(e, 400, "%s", d->seq_bad);
    if (!d->inputs_seen || d->inputs_bad)
        return wire_fail(e, 400, "inputs: expected a non-empty array of tensors");
    if (d->tensor_set) {
        *e = d->tensor_err;
        return -1;
    }
    if (attach_binary(d, e) < 0)
        return -1;
    /* a token model's "tokens" [batch, max_len] stands where "input" [batch, max_len, I] does */
    const bool tok = in->vocab_size > 0;
    const char *iname = tok ? "tokens" : "input";
    tensor *input = &d->t[tok ? T_TOKENS : T_INPUT], *lengths = &d->t[T_LENGTHS];
    if (!input->present && tok)
        return wire_fail(e, 400,
                         "inputs: the tensor \"tokens\" [batch, max_len] (INT64 ids in "
                         "[0, %d)) is required",
                         in->vocab_size);
    if (!input->present)
        return wire_fail(e, 400, "inputs: the tensor \"input\" [batch, max_len, %d] is required",
                         in->input_size);
    size_t dims[3];
    if (check_datatype(input, iname, tok ? INTS : FP, e) < 0 ||
        check_shape(input, iname, tok ? 2 : 3, dims, e) < 0)
        return -1;
    const size_t B = dims[0], T = dims[1], I = tok ? 1 : (size_t)in->input_size;
    if (!tok && dims[2] != I)
        return wire_fail(e, 400,
                         "inputs[input].shape: expected [batch, max_len, %zu], got [%zu, %zu, %zu]",
                         I, B, T, dims[2]);
    if (B == 0)
        return wire_fail(e, 400, "inputs[%s].shape: batch must be at least 1", iname);
    if (B > lim->max_batch)
        return wire_fail(e, 413, "inputs[%s]: batch %zu exceeds max_batch %zu", iname, B,
                         lim->max_batch);
    if (T > lim->max_steps)
        return wire_fail(e, 413, "inputs[%s]: max_len %zu exceeds max_steps %zu", iname, T,
                         lim->max_steps);
    r->B = B;
    r->T = T;
    if (!(r->lengths = malloc(B * sizeof *r->lengths)))
        return wire_fail(e, 500, "out of memory");
    for (size_t i = 0; i < B; i++)
        r->lengths[i] = (int32_t)T;
    if (lengths->present) {
        size_t ld;
        if (check_datatype(lengths, "lengths", INTS, e) < 0 ||
            check_shape(lengths, "lengths", 1, &ld, e) < 0)
            return -1;
        if (ld != B)
            return wire_fail(e, 400, "inputs[lengths].shape: expected [%zu] (the batch), got [%zu]",
                             B, ld);
        if (check_data(lengths, "lengths", 1, B, e) < 0)
            return -1;
        for (size_t i = 0; i < B; i++) {
            const float v = lengths->v[i];
            if (!(v >= 0) || v > (float)T)
                return wire_fail(e, 400,
                                 "inputs[lengths].data[%zu]: %g is outside [0, %zu] (max_len)", i,
                                 (double)v, T);
            r->lengths[i] = (int32_t)v;
        }
    }
    /* the data present (at most len/2 numbers) bounds every allocation, never the shape */
    if (check_data(input, iname, tok, B * T * I, e) < 0)
        return -1;
    for (size_t i = 0; i < B; i++)
        r->steps += (size_t)r->lengths[i];
    if (tok) {
        if (tokens_in(input, in, r, e) < 0)
            return -1;
    } else {
        if (!(r->x = malloc((r->steps ? r->steps : 1) * I * sizeof *r->x)))
            return wire_fail(e, 500, "out of memory");
        /* Keep each sequence's own rows; padding past its length never reaches the engine. */
        float *x = r->x;
        const char *src = input->raw ? input->raw : (const char *)input->v;
        for (size_t i = 0; i < B; i++) {
            const size_t n = (size_t)r->lengths[i] * I;
            memcpy(x, src + i * T * I * sizeof *x, n * sizeof *x);
            x += n;
        }
    }
    if (d->t[T_H0].present && state_in(&d->t[T_H0], "h0", in, B, &r->h0, e) < 0)
        return -1;
    if (d->t[T_C0].present && state_in(&d->t[T_C0], "c0", in, B, &r->c0, e) < 0)
        return -1;
    if (d->outputs_set) {
        *e = d->outputs_err;
        return -1;
    }
    r->parts = d->parts;
    r->binary = ((d->bin_output ? d->parts : 0) | d->bin_on) & ~d->bin_off & d->parts;
    r->only_last = d->only_last;
    r->batch.batch = B;
    r->batch.lengths = r->lengths;
    r->batch.x = r->x;
    r->batch.h0 = r->h0;
    r->batch.c0 = r->c0;
    /* output and predictions are always padded here (one row per sequence with only_last): the
     * same bound as v1's padded layout */
    if (r->only_last)
        return 0;
    const size_t width =
        (r->parts & WIRE_OUTPUTS ? (size_t)(in->num_directions * in->hidden_size) : 0) +
        (r->parts & WIRE_PREDICTIONS ? (size_t)in->head_size : 0);
    return wire_padding_check(&r->batch, width,
                              "send sequences of similar lengths in separate requests, or name "
                              "only h_n in \"outputs\"",
                              e);
}

static int v2_decode(const char *body, size_t len, const api_framing *f, const rnn_info *info,
                     const api_limits *lim, void **req, wire_decoded *out, wire_error *e)
{
    decoder *d = NULL;
    request *r = NULL;
    int rc = -1;
    *req = NULL;
    /* On the heap: the error slots make it a few kilobytes. */
    if (!(d = calloc(1, sizeof *d)) || !(r = calloc(1, sizeof *r))) {
        wire_fail(e, 500, "out of memory");
        goto done;
    }
    d->info = info;
    d->parts = wire_parts_of(info);
    d->framing = f;
    d->body = body;
    d->len = len;
    if (f && f->binary && f->header_len > len) {
        wire_fail(e, 400,
                  "Inference-Header-Content-Length: %zu bytes of JSON header, past the end of "
                  "the %zu-byte body",
                  f->header_len, len);
        goto done;
    }
    if (f && f->binary && f->header_len == 0) {
        wire_fail(e, 400,
                  "Inference-Header-Content-Length: 0 (a raw binary request, without a JSON "
                  "header) is for models of one input: send the JSON header naming \"input\" "
                  "(and \"lengths\") first");
        goto done;
    }
    if (wire_scan(&d->js, body, f && f->binary ? f->header_len : len, read_root, d, e) < 0)
        goto done;
    if (build(d, lim, r, e) < 0)
        goto done;
    r->id = d->id;
    d->id = NULL;
    r->timeout_us = d->timeout_us;
    r->seq = d->seq;
    d->seq.str = NULL;
    out->seq = r->seq;
    out->batch = &r->batch;
    out->tokens = r->tokens;
    out->only_last = r->only_last;
    out->parts = r->parts;
    out->steps = r->steps;
    out->timeout_us = r->timeout_us;
    *req = r;
    r = NULL;
    rc = 0;
done:
    if (d) {
        js_release(&d->js);
        for (int k = 0; k < T_SLOTS; k++)
            free(d->t[k].v);
        free(d->id);
        free((char *)d->seq.str);
        free(d);
    }
    request_free(r);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding */

/* What one output tensor holds. */
typedef struct {
    const char *name;
    const float *data;
    size_t width; /* per step (padded [B, T, width]); 0 for a state [L*D, B, H] */
    bool binary;  /* returned as binary data after the JSON header */
} out_tensor;

static size_t tensor_count(const request *r, const rnn_info *in, const out_tensor *t)
{
    const size_t LD = (size_t)(in->num_layers * in->num_directions);
    if (t->width)
        return r->B * (r->only_last ? 1 : r->T) * t->width;
    return LD * r->B * (size_t)in->hidden_size;
}

static void tensors_of(const request *r, const rnn_info *in, const rnn_result *res,
                       out_tensor out[4])
{
    const float *data[4] = {res ? res->outputs : NULL, res ? res->hidden : NULL,
                            res ? res->cell : NULL, res ? res->predictions : NULL};
    const size_t widths[4] = {(size_t)(in->num_directions * in->hidden_size), 0, 0,
                              (size_t)in->head_size};
    for (int p = 0; p < 4; p++)
        out[p] = (out_tensor){(r->parts & (1u << p)) ? OUT_NAMES[p] : NULL, data[p], widths[p],
                              (r->binary & (1u << p)) != 0};
}

static size_t v2_response_bytes(const void *req, const rnn_info *in)
{
    const request *r = req;
    out_tensor t[4];
    tensors_of(r, in, NULL, t);
    size_t need = 64 + strlen(in->name) * 6 + (r->id ? strlen(r->id) * 6 : 0);
    for (int p = 0; p < 4; p++)
        if (t[p].name)
            need += 96 + tensor_count(r, in, &t[p]) * (FF_MAX_LEN + 1);
    return need;
}

/* Writes V (N floats) at O, comma-separated; the index of the first non-finite one in *bad (and
 * returns NULL), else the end. */
static char *put_values(char *o, const float *v, size_t n, bool comma, size_t *bad)
{
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) {
            *bad = i;
            return NULL;
        }
        if (comma || i)
            *o++ = ',';
        o += ff_format_f32(v[i], o);
    }
    return o;
}

/* One tensor {"name", "datatype", "shape", "data"}, into room v2_response_bytes reserved. TMP
 * has room for a state. */
static int put_tensor(buf *w, const request *r, const rnn_info *in, const out_tensor *t, float *tmp,
                      bool comma, wire_error *e)
{
    const size_t LD = (size_t)(in->num_layers * in->num_directions), H = (size_t)in->hidden_size;
    if (t->width && r->only_last)
        buf_printf(w, "%s{\"name\":\"%s\",\"datatype\":\"FP32\",\"shape\":[%zu,%zu]",
                   comma ? "," : "", t->name, r->B, t->width);
    else if (t->width)
        buf_printf(w, "%s{\"name\":\"%s\",\"datatype\":\"FP32\",\"shape\":[%zu,%zu,%zu]",
                   comma ? "," : "", t->name, r->B, r->T, t->width);
    else
        buf_printf(w, "%s{\"name\":\"%s\",\"datatype\":\"FP32\",\"shape\":[%zu,%zu,%zu]",
                   comma ? "," : "", t->name, LD, r->B, H);
    if (t->binary) /* its place in the header only: its bytes follow the header (put_binary) */
        buf_printf(w, ",\"parameters\":{\"binary_data_size\":%zu}}",
                   tensor_count(r, in, t) * sizeof(float));
    else
        buf_puts(w, ",\"data\":[");
    if (w->oom)
        return wire_fail(e, 500, "out of memory encoding the response");
    if (t->binary)
        return 0;
    char *o = w->data + w->len;
    size_t bad = 0, at = 0;
    if (t->width && r->only_last) {
        /* [B, width]: a row per sequence at its last step (zeros for an empty one) */
        if (!(o = put_values(o, t->data, r->B * t->width, false, &bad))) {
            at = bad;
            goto not_finite;
        }
    } else if (t->width) {
        /* [B, T, width]: each sequence's rows, then zeros past its length (pad_packed_sequence) */
        const size_t n = t->width;
        size_t row = 0;
        for (size_t b = 0; b < r->B; b++) {
            const size_t Tb = (size_t)r->lengths[b];
            char *next = put_values(o, t->data + row * n, Tb * n, at > 0, &bad);
            if (!next) {
                at += bad;
                goto not_finite;
            }
            o = next;
            at += Tb * n;
            for (size_t k = Tb * n; k < r->T * n; k++, at++) {
                if (at)
                    *o++ = ',';
                *o++ = '0';
            }
            row += Tb;
        }
    } else {
        wire_states_to_layers(t->data, r->B, LD, H, tmp);
        if (!(o = put_values(o, tmp, LD * r->B * H, false, &bad))) {
            at = bad;
            goto not_finite;
        }
    }
    *o++ = ']';
    *o++ = '}';
    w->len = (size_t)(o - w->data);
    return 0;
not_finite:
    return wire_fail(e, 422,
                     "%s[%zu]: the forward pass produced a non-finite value, which JSON cannot "
                     "carry (the model diverged for this input)",
                     t->name, at);
}

/* A binary output's bytes, in the layout put_tensor would write its data in: straight from
 * the engine's arrays (the padding as zeros), no number formatting. TMP has room for a state. */
static void put_binary(buf *w, const request *r, const rnn_info *in, const out_tensor *t,
                       float *tmp)
{
    const size_t LD = (size_t)(in->num_layers * in->num_directions), H = (size_t)in->hidden_size;
    if (!t->width) {
        wire_states_to_layers(t->data, r->B, LD, H, tmp);
        wire_bin_put_f32(w, tmp, LD * r->B * H, 0);
        return;
    }
    if (r->only_last) { /* [B, width]: a row per sequence at its last step */
        wire_bin_put_f32(w, t->data, r->B * t->width, 0);
        return;
    }
    size_t row = 0;
    for (size_t b = 0; b < r->B; b++) {
        const size_t Tb = (size_t)r->lengths[b];
        wire_bin_put_f32(w, t->data + row * t->width, Tb * t->width, (r->T - Tb) * t->width);
        row += Tb;
    }
}

static int v2_encode(const void *req, const rnn_info *in, const rnn_result *res, buf *w,
                     size_t *header_len, wire_error *e)
{
    const request *r = req;
    const size_t LD = (size_t)(in->num_layers * in->num_directions);
    out_tensor t[4];
    float *tmp = NULL;
    int rc = -1;
    tensors_of(r, in, res, t);
    if (!(tmp = malloc((LD * r->B * (size_t)in->hidden_size + 1) * sizeof *tmp)) ||
        buf_reserve(w, v2_response_bytes(r, in)) < 0) {
        wire_fail(e, 500, "out of memory encoding the response");
        goto done;
    }
    buf_puts(w, "{\"model_name\":");
    buf_json_string(w, in->name);
    if (r->id) {
        buf_puts(w, ",\"id\":");
        buf_json_string(w, r->id);
    }
    buf_puts(w, ",\"outputs\":[");
    /* the protocol's order: output, h_n, c_n, then predictions */
    bool comma = false;
    for (int p = 0; p < 4; p++) {
        if (!t[p].name || !t[p].data)
            continue;
        if (put_tensor(w, r, in, &t[p], tmp, comma, e) < 0)
            goto done;
        comma = true;
    }
    buf_puts(w, "]}");
    if (r->binary) {
        *header_len = w->len;
        for (int p = 0; p < 4; p++)
            if (t[p].name && t[p].data && t[p].binary)
                put_binary(w, r, in, &t[p], tmp);
    }
    if (w->oom) {
        wire_fail(e, 500, "out of memory encoding the response");
        goto done;
    }
    rc = 0;
done:
    free(tmp);
    return rc;
}

static char *v2_error(int status, const char *message, size_t *len)
{
    buf w = BUF_INIT;
    (void)status; /* the protocol's body carries the message only; the status is HTTP's */
    buf_puts(&w, "{\"error\":");
    buf_json_string(&w, message);
    buf_putc(&w, '}');
    return buf_take(&w, len);
}

/* GET /v2/models/{name}: name, platform, inputs and outputs with datatypes and shapes (-1 for
 * the batch and time dimensions), and the head ({"out_features", "activation"}) when the model
 * has one. No "versions": rnnserve does not version models, and the protocol then leaves it
 * out. */
static char *v2_metadata(const rnn_info *in, int is_default, size_t *len)
{
    const int LD = in->num_layers * in->num_directions, H = in->hidden_size;
    const bool lstm = rnn_cell_describe(in->type)->has_cell;
    buf w = BUF_INIT;
    (void)is_default;
    buf_puts(&w, "{\"name\":");
    buf_json_string(&w, in->name);
    /* a token model takes ids [batch, max_len] where another takes input [batch, max_len, I] */
    if (in->vocab_size > 0)
        buf_puts(&w, ",\"platform\":\"rnnserve\",\"inputs\":[{\"name\":\"tokens\",\"datatype\":"
                     "\"INT64\",\"shape\":[-1,-1]}");
    else
        buf_printf(&w,
                   ",\"platform\":\"rnnserve\",\"inputs\":[{\"name\":\"input\",\"datatype\":"
                   "\"FP32\",\"shape\":[-1,-1,%d]}",
                   in->input_size);
    buf_printf(&w,
               ",{\"name\":\"lengths\",\"datatype\":\"INT64\",\"shape\":[-1]},"
               "{\"name\":\"h0\",\"datatype\":\"FP32\",\"shape\":[%d,-1,%d]}",
               LD, H);
    if (lstm)
        buf_printf(&w, ",{\"name\":\"c0\",\"datatype\":\"FP32\",\"shape\":[%d,-1,%d]}", LD, H);
    buf_printf(&w,
               "],\"outputs\":[{\"name\":\"output\",\"datatype\":\"FP32\",\"shape\":[-1,-1,%d]},"
               "{\"name\":\"h_n\",\"datatype\":\"FP32\",\"shape\":[%d,-1,%d]}",
               in->num_directions * H, LD, H);
    if (lstm)
        buf_printf(&w, ",{\"name\":\"c_n\",\"datatype\":\"FP32\",\"shape\":[%d,-1,%d]}", LD, H);
    if (in->head_size > 0)
        buf_printf(&w, ",{\"name\":\"predictions\",\"datatype\":\"FP32\",\"shape\":[-1,-1,%d]}",
                   in->head_size);
    buf_putc(&w, ']');
    if (in->head_size > 0) {
        buf_printf(&w, ",\"head\":{\"out_features\":%d,\"activation\":", in->head_size);
        buf_json_string(&w, rnn_head_activation_name(in->head_activation));
        buf_putc(&w, '}');
    }
    if (in->vocab_size > 0)
        buf_printf(&w, ",\"embedding\":{\"num_embeddings\":%d}", in->vocab_size);
    buf_putc(&w, '}');
    return buf_take(&w, len);
}

static const api_wire V2 = {"v2",      v2_decode, request_free, v2_response_bytes,
                            v2_encode, v2_error,  v2_metadata};

const api_wire *api_wire_v2(void)
{
    return &V2;
}
