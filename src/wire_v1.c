/* wire_v1.c - rnnserve's own JSON (docs/API.md): forward request -> rnn_batch, rnn_result ->
 * response, error and metadata bodies; the v1 wire format behind api.h.
 *
 * Decoding reads the body in one strict pass (jsonscan.c, with jansson's verdicts) straight into
 * the batch's arrays and checks every shape against the model, naming the JSON path of the first
 * problem. Encoding reserves the response's longest size once and writes it straight into that
 * buffer, a row of numbers per call of the shortest-round-trip printer: no DOM for the (large)
 * outputs, no bounds check or reallocation per number. */
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

struct wire_v1_request {
    rnn_batch batch;
    int32_t *lengths;
    float *x, *h0, *c0;
    int32_t *tokens; /* a token model's ids (steps); x is then NULL (forward.c embeds them) */
    size_t steps;
    unsigned parts;
    int precision;
    bool only_last;     /* "only_last": outputs and predictions at each sequence's last step */
    int padded;         /* "layout": "padded": PyTorch's tensors instead of ragged rows */
    int64_t timeout_us; /* "timeout_ms": how long it may wait for compute; 0: the server's */
};

/* ---------------------------------------------------------------------------------------------
 * Decoding
 *
 * One pass over the body with the strict reader (jsonscan.c): numbers go straight into the
 * arrays the engine reads, so a request costs 4 bytes a number and no DOM. The messages, and
 * which of several problems is reported, are those of the checks the codec has always made one
 * after the other on a parsed document: a syntax error anywhere first, then the body not being
 * an object, an unknown field, "inputs" itself, every sequence's shape and length, every step,
 * then h0, c0, "return" and "precision". A single pass finds them out of that order, so it keeps
 * the first error of each kind (the document's order is the checks' order within a kind) and
 * reports the highest-ranked kind at the end. */

/* The response parts, in the order the body lists them (bit 1 << i is PART_NAMES[i]). */
static const char *const PART_NAMES[4] = {"outputs", "hidden", "cell", "predictions"};

enum {
    E_ROOT,
    E_FIELD,
    E_INPUTS,
    E_SEQUENCE,
    E_STEP,
    E_RETURN,
    E_PRECISION,
    E_LAYOUT,
    E_TIMEOUT,
    E_ONLY_LAST,
    E_KINDS
};

/* "h0" or "c0": kept apart because its checks need B, known only once "inputs" is read. */
typedef struct {
    bool seen, null;
    bool shape_set, entry_set;
    wire_error shape; /* not an array */
    wire_error entry; /* the first entry that is wrong */
    size_t entries;
    float *v; /* (entries, L*D, H) as read */
    size_t n, cap;
} state_field;

typedef struct {
    js_reader js;
    const rnn_info *info;
    const api_limits *lim;
    size_t I, H, LD;
    bool has[E_KINDS];
    wire_error err[E_KINDS];
    bool inputs_seen, return_seen, precision_seen, layout_seen, timeout_seen;
    bool tokens_seen, only_last_seen, only_last;
    int padded;         /* "layout": "padded" */
    int64_t timeout_us; /* "timeout_ms", 0 when absent */
    size_t B;
    int32_t *lengths; /* (min(B, max_batch)) */
    size_t lcap;
    float *x; /* (sum(lengths), I) while no error is found */
    size_t nx, xcap;
    int32_t *ids; /* "tokens": (sum(lengths)) while no error is found */
    size_t nids, idcap;
    state_field h0, c0;
    unsigned parts;
    int precision;
    const wire_v1_fields *more; /* a route's own fields (generate), or NULL */
} decoder;

/* A JSON path like inputs[3][7], formatted only when a message needs it. */
typedef struct {
    const char *name;
    size_t i[2];
    int n;
} jpath;

static const char *path_str(const jpath *p, char *buf, size_t len)
{
    int k = snprintf(buf, len, "%s", p->name);
    for (int j = 0; j < p->n && k > 0 && (size_t)k < len; j++)
        k += snprintf(buf + k, len - (size_t)k, "[%zu]", p->i[j]);
    return buf;
}

#define FIRST(d, kind, status, ...)                                                                \
    wire_first(&(d)->err[kind], &(d)->has[kind], status, __VA_ARGS__)

/* Room for MORE floats after the N in *buf; NULL (and the reader failed) when out of memory. */
static float *room(decoder *d, float **buf, size_t *cap, size_t n, size_t more, size_t guess)
{
    if (n + more > *cap) {
        size_t c = *cap ? 2 * *cap : guess;
        if (c < n + more)
            c = n + more;
        float *nb = realloc(*buf, c * sizeof *nb);
        if (!nb) {
            js_fail(&d->js, d->js.p, "out of memory");
            d->js.oom = true;
            return NULL;
        }
        *buf = nb;
        *cap = c;
    }
    return *buf + n;
}

/* A row at DEPTH that must be an array of exactly N float32 numbers, read into dst (room for
 * N). Its problem, if any, goes to *e unless *set. 0, or -1 on a syntax error. */
static int read_row(decoder *d, int depth, float *dst, size_t n, const jpath *path, wire_error *e,
                    bool *set)
{
    char p[96], num[48];
    size_t count;
    js_bad bad;
    if (js_f32_array(&d->js, depth, dst, n, &count, &bad) < 0)
        return -1;
    if (count != n)
        wire_first(e, set, 400, "%s: expected %zu number%s, got %zu", path_str(path, p, sizeof p),
                   n, n == 1 ? "" : "s", count);
    else if (bad.index != JS_NO_INDEX && bad.kind == JS_NUMBER)
        wire_first(e, set, 400, "%s[%zu]: %s is not representable as float32",
                   path_str(path, p, sizeof p), bad.index,
                   wire_number_text(bad.tok, bad.tok_end, num, sizeof num));
    else if (bad.index != JS_NO_INDEX)
        wire_first(e, set, 400, "%s[%zu]: expected a number, got %s", path_str(path, p, sizeof p),
                   bad.index, wire_kind_name(bad.kind));
    return 0;
}

/* inputs[i][t], at depth 4. */
static int read_step(decoder *d, size_t i, size_t t)
{
    const size_t I = d->I;
    const jpath path = {"inputs", {i, t}, 2};
    char p[96];
    float *dst = room(d, &d->x, &d->xcap, d->nx, I, (size_t)(d->js.end - d->js.begin) / 8);
    if (!dst)
        return -1;
    const js_kind k = js_peek(&d->js);
    if (I == 1 && k == JS_NUMBER) {
        /* input_size 1: a bare number per step reads as a one-element step */
        const char *a, *b;
        const int st = js_number(&d->js, 4, dst, &a, &b);
        if (st < 0)
            return -1;
        char num[48];
        if (st == JN_RANGE || st == JN_OVERFLOW)
            FIRST(d, E_STEP, 400, "%s: %s is not representable as float32",
                  path_str(&path, p, sizeof p), wire_number_text(a, b, num, sizeof num));
        d->nx += 1;
        return 0;
    }
    if (k != JS_ARRAY) {
        if (I == 1)
            FIRST(d, E_STEP, 400, "%s: expected a number or an array of 1 number, got %s",
                  path_str(&path, p, sizeof p), wire_kind_name(k));
        else
            FIRST(d, E_STEP, 400, "%s: expected an array of %zu numbers, got %s",
                  path_str(&path, p, sizeof p), I, wire_kind_name(k));
        return js_skip(&d->js, 4);
    }
    if (read_row(d, 4, dst, I, &path, &d->err[E_STEP], &d->has[E_STEP]) < 0)
        return -1;
    d->nx += I;
    return 0;
}

/* tokens[i][t], at depth 4: an integer id in [0, vocab_size), however it is written (7, 7.0). */
static int read_token(decoder *d, size_t i, size_t t)
{
    js_reader *js = &d->js;
    const size_t V = (size_t)d->info->vocab_size;
    const jpath path = {"tokens", {i, t}, 2};
    char p[96], num[48];
    if (d->nids == d->idcap) {
        const size_t c = d->idcap ? 2 * d->idcap : 256;
        int32_t *n = realloc(d->ids, c * sizeof *n);
        if (!n) {
            js->oom = true;
            return js_fail(js, js->p, "out of memory");
        }
        d->ids = n;
        d->idcap = c;
    }
    const js_kind k = js_peek(js);
    if (k != JS_NUMBER) {
        FIRST(d, E_STEP, 400, "%s: expected an integer token id in [0, %zu), got %s",
              path_str(&path, p, sizeof p), V, wire_kind_name(k));
        return js_skip(js, 4);
    }
    float f;
    const char *a, *b;
    if (js_number(js, 4, &f, &a, &b) < 0)
        return -1;
    const double v = jn_to_double(a, b);
    if (!(v >= 0 && v < (double)V && v == floor(v))) {
        FIRST(d, E_STEP, 400, "%s: %s is not a token id (an integer in [0, %zu))",
              path_str(&path, p, sizeof p), wire_number_text(a, b, num, sizeof num), V);
        return 0;
    }
    d->ids[d->nids++] = (int32_t)v;
    return 0;
}

/* inputs[i] or tokens[i] (FIELD), at depth 3, each step read by STEP (WHAT names a step's kind
 * in the message). Steps are stored until the first error of the inputs is found; after it,
 * only what can still outrank that error (a sequence's shape and length) is looked at. */
static int read_sequence(decoder *d, size_t i, const char *field, const char *what,
                         int (*step)(decoder *, size_t, size_t))
{
    js_reader *js = &d->js;
    const size_t max = d->lim->max_steps;
    const js_kind k = js_peek(js);
    d->lengths[i] = 0;
    if (k != JS_ARRAY) {
        FIRST(d, E_SEQUENCE, 400, "%s[%zu]: expected an array of %s, got %s", field, i, what,
              wire_kind_name(k));
        return js_skip(js, 3);
    }
    if (js_array_begin(js, 3) < 0)
        return -1;
    size_t t = 0;
    int rc;
    while ((rc = js_array_next(js, t)) > 0) {
        if (t < max && !d->has[E_SEQUENCE] && !d->has[E_STEP]) {
            if (step(d, i, t) < 0)
                return -1;
        } else if (js_skip(js, 4) < 0) {
            return -1;
        }
        t++;
    }
    if (rc < 0)
        return -1;
    if (t > max)
        FIRST(d, E_SEQUENCE, 413, "%s[%zu]: %zu steps exceed max_steps %zu", field, i, t, max);
    d->lengths[i] = t > INT32_MAX ? INT32_MAX : (int32_t)t;
    return 0;
}

/* "inputs" (or a token model's "tokens", when TOKENS), at depth 2. Past max_batch sequences
 * nothing is kept: the answer is a 413. */
static int read_inputs(decoder *d, bool tokens)
{
    js_reader *js = &d->js;
    const char *field = tokens ? "tokens" : "inputs";
    const js_kind k = js_peek(js);
    if (k != JS_ARRAY) {
        FIRST(d, E_INPUTS, 400, "%s: expected an array of sequences, got %s", field,
              wire_kind_name(k));
        return js_skip(js, 2);
    }
    if (js_array_begin(js, 2) < 0)
        return -1;
    size_t i = 0;
    int rc;
    while ((rc = js_array_next(js, i)) > 0) {
        if (i < d->lim->max_batch) {
            if (i == d->lcap) {
                const size_t c = d->lcap ? 2 * d->lcap : 64;
                int32_t *l = realloc(d->lengths, c * sizeof *l);
                if (!l) {
                    js_fail(js, js->p, "out of memory");
                    js->oom = true;
                    return -1;
                }
                d->lengths = l;
                d->lcap = c;
            }
            if ((tokens ? read_sequence(d, i, "tokens", "token ids", read_token)
                        : read_sequence(d, i, "inputs", "steps", read_step)) < 0)
                return -1;
        } else if (js_skip(js, 3) < 0) {
            return -1;
        }
        i++;
    }
    if (rc < 0)
        return -1;
    d->B = i;
    if (i == 0)
        FIRST(d, E_INPUTS, 400, "%s: expected at least one sequence, got an empty array", field);
    else if (i > d->lim->max_batch)
        FIRST(d, E_INPUTS, 413, "%s: %zu sequences exceed max_batch %zu", field, i,
              d->lim->max_batch);
    return 0;
}

/* NAME[e] of h0 or c0, at depth 3: L*D rows of H numbers. A wrong number of rows outranks a
 * problem inside one, so a row's problem waits in row_err until the rows are counted. */
static int read_entry(decoder *d, state_field *st, const char *name, size_t e)
{
    js_reader *js = &d->js;
    const size_t LD = d->LD, H = d->H;
    js_kind k = js_peek(js);
    if (k != JS_ARRAY) {
        wire_first(&st->entry, &st->entry_set, 400,
                   "%s[%zu]: expected %zu rows (num_layers*num_directions) of %zu numbers, got %s",
                   name, e, LD, H, wire_kind_name(k));
        return js_skip(js, 3);
    }
    if (js_array_begin(js, 3) < 0)
        return -1;
    wire_error row_err;
    bool row_set = false;
    size_t r = 0;
    int rc;
    while ((rc = js_array_next(js, r)) > 0) {
        if (r < LD && !row_set) {
            const jpath path = {name, {e, r}, 2};
            char p[96];
            float *dst = room(d, &st->v, &st->cap, st->n, H, LD * H);
            if (!dst)
                return -1;
            k = js_peek(js);
            if (k != JS_ARRAY) {
                wire_first(&row_err, &row_set, 400, "%s: expected an array of %zu numbers, got %s",
                           path_str(&path, p, sizeof p), H, wire_kind_name(k));
                if (js_skip(js, 4) < 0)
                    return -1;
            } else if (read_row(d, 4, dst, H, &path, &row_err, &row_set) < 0) {
                return -1;
            }
            st->n += H;
        } else if (js_skip(js, 4) < 0) {
            return -1;
        }
        r++;
    }
    if (rc < 0)
        return -1;
    if (r != LD)
        wire_first(&st->entry, &st->entry_set, 400,
                   "%s[%zu]: expected %zu rows (num_layers*num_directions), got %zu", name, e, LD,
                   r);
    else if (row_set && !st->entry_set)
        st->entry = row_err, st->entry_set = true;
    return 0;
}

/* "h0" / "c0", at depth 2: per sequence, L*D rows of H numbers, into (B, L*D, H). */
static int read_state(decoder *d, state_field *st, const char *name)
{
    js_reader *js = &d->js;
    const js_kind k = js_peek(js);
    st->seen = true;
    if (k == JS_NULL) {
        st->null = true;
        return js_skip(js, 2);
    }
    if (k != JS_ARRAY) {
        wire_first(&st->shape, &st->shape_set, 400,
                   "%s: expected an array with one entry per sequence, got %s", name,
                   wire_kind_name(k));
        return js_skip(js, 2);
    }
    if (js_array_begin(js, 2) < 0)
        return -1;
    size_t e = 0;
    int rc;
    /* More entries than max_batch cannot match B: the count is the error, the rest need no
     * reading. */
    while ((rc = js_array_next(js, e)) > 0) {
        if (!st->entry_set && e < d->lim->max_batch) {
            if (read_entry(d, st, name, e) < 0)
                return -1;
        } else if (js_skip(js, 3) < 0) {
            return -1;
        }
        e++;
    }
    st->entries = e;
    return rc < 0 ? -1 : 0;
}

/* "return", at depth 2: any subset of the parts the model has (wire_parts_of). */
static int read_return(decoder *d)
{
    js_reader *js = &d->js;
    js_kind k = js_peek(js);
    if (k != JS_ARRAY) {
        char list[96];
        wire_parts_list(d->info, PART_NAMES, list, sizeof list);
        FIRST(d, E_RETURN, 400, "return: expected an array of %s, got %s", list, wire_kind_name(k));
        return js_skip(js, 2);
    }
    if (js_array_begin(js, 2) < 0)
        return -1;
    unsigned parts = 0;
    size_t i = 0;
    int rc;
    while ((rc = js_array_next(js, i)) > 0) {
        k = js_peek(js);
        js_str s;
        if (d->has[E_RETURN] || k != JS_STRING) {
            FIRST(d, E_RETURN, 400, "return[%zu]: expected a string, got %s", i, wire_kind_name(k));
            if (js_skip(js, 3) < 0)
                return -1;
        } else if (js_string(js, 3, &s) < 0) {
            return -1;
        } else if (js_str_eq(&s, "outputs")) {
            parts |= WIRE_OUTPUTS;
        } else if (js_str_eq(&s, "hidden")) {
            parts |= WIRE_HIDDEN;
        } else if (js_str_eq(&s, "cell") && d->info->type == RNN_CELL_LSTM) {
            parts |= WIRE_CELL;
        } else if (js_str_eq(&s, "cell")) {
            FIRST(d, E_RETURN, 400, "return[%zu]: \"cell\" exists for lstm models only", i);
        } else if (js_str_eq(&s, "predictions") && d->info->head_size > 0) {
            parts |= WIRE_PREDICTIONS;
        } else if (js_str_eq(&s, "predictions")) {
            FIRST(d, E_RETURN, 400, "return[%zu]: \"predictions\" needs a model with a head", i);
        } else {
            char name[WIRE_MSG_LEN], list[96];
            js_str_copy(&s, name, sizeof name);
            wire_parts_list(d->info, PART_NAMES, list, sizeof list);
            FIRST(d, E_RETURN, 400,
                  "return[%zu]: \"%s\" is not a part of the response (expected %s)", i, name, list);
        }
        i++;
    }
    d->parts = parts;
    return rc < 0 ? -1 : 0;
}

/* "precision", at depth 2: an integer from 1 to 9, however it is written (3, 3.0, 30e-1). */
static int read_precision(decoder *d)
{
    js_reader *js = &d->js;
    const js_kind k = js_peek(js);
    float f;
    const char *a, *b;
    if (k == JS_NUMBER) {
        if (js_number(js, 2, &f, &a, &b) < 0)
            return -1;
        const double v = jn_to_double(a, b);
        if (v == floor(v) && v >= 1 && v <= 9) {
            d->precision = (int)v;
            return 0;
        }
    } else if (js_skip(js, 2) < 0) {
        return -1;
    }
    FIRST(d, E_PRECISION, 400, "precision: expected an integer from 1 to 9 (significant digits)");
    return 0;
}

/* "layout", at depth 2: "ragged" (the contract's default) or "padded" (PyTorch's tensors). */
static int read_layout(decoder *d)
{
    js_reader *js = &d->js;
    js_str s;
    if (js_peek(js) == JS_STRING) {
        if (js_string(js, 2, &s) < 0)
            return -1;
        if (js_str_eq(&s, "padded") || js_str_eq(&s, "ragged")) {
            d->padded = js_str_eq(&s, "padded");
            return 0;
        }
    } else if (js_skip(js, 2) < 0) {
        return -1;
    }
    FIRST(d, E_LAYOUT, 400, "layout: expected \"ragged\" (the default) or \"padded\"");
    return 0;
}

/* "timeout_ms", at depth 2: how long the request may wait for compute, a number of milliseconds
 * above 0 and at most an hour (fractions allowed: 0.5 is 500 us). */
static int read_timeout(decoder *d)
{
    js_reader *js = &d->js;
    float f;
    const char *a, *b;
    if (js_peek(js) == JS_NUMBER) {
        if (js_number(js, 2, &f, &a, &b) < 0)
            return -1;
        const double v = jn_to_double(a, b);
        if (v > 0 && v <= 3600000) {
            d->timeout_us = (int64_t)ceil(v * 1000);
            return 0;
        }
    } else if (js_skip(js, 2) < 0) {
        return -1;
    }
    FIRST(d, E_TIMEOUT, 400,
          "timeout_ms: expected a number of milliseconds above 0 and at most 3600000");
    return 0;
}

/* "only_last", at depth 2: true or false. */
static int read_only_last(decoder *d)
{
    js_reader *js = &d->js;
    if (js_peek(js) == JS_BOOL) {
        d->only_last = *js->p == 't';
        return js_skip(js, 2);
    }
    FIRST(d, E_ONLY_LAST, 400, "only_last: expected true or false, got %s",
          wire_kind_name(js_peek(js)));
    return js_skip(js, 2);
}

/* The body, at depth 1. A repeated known field is skipped here; the reader fails it. */
static int read_root(void *p)
{
    decoder *d = p;
    js_reader *js = &d->js;
    const js_kind k = js_peek(js);
    if (k == JS_ARRAY) {
        FIRST(d, E_ROOT, 400, "request body: expected a JSON object with \"inputs\", got %s",
              wire_kind_name(k));
        return js_skip(js, 1);
    }
    if (k != JS_OBJECT)
        return js_fail_here(js, "'[' or '{' expected");
    js_object o;
    js_str key;
    int rc;
    if (js_object_begin(js, 1, &o) < 0)
        return -1;
    while ((rc = js_object_next(js, &o, &key)) > 0) {
        int r;
        /* a token model reads "tokens", any other "inputs"; the other one is only noted, for
         * the message that says which to send */
        const bool tok = d->info->vocab_size > 0;
        if (d->more && (r = d->more->field(d->more->ctx, &key, js)) != 0) {
            if (r < 0)
                return -1;
        } else if (js_str_eq(&key, "inputs") && !d->inputs_seen) {
            d->inputs_seen = true;
            r = tok ? js_skip(js, 2) : read_inputs(d, false);
        } else if (js_str_eq(&key, "tokens") && !d->tokens_seen) {
            d->tokens_seen = true;
            r = tok ? read_inputs(d, true) : js_skip(js, 2);
        } else if (js_str_eq(&key, "only_last") && !d->only_last_seen) {
            d->only_last_seen = true;
            r = read_only_last(d);
        } else if (js_str_eq(&key, "h0") && !d->h0.seen) {
            r = read_state(d, &d->h0, "h0");
        } else if (js_str_eq(&key, "c0") && !d->c0.seen) {
            r = read_state(d, &d->c0, "c0");
        } else if (js_str_eq(&key, "return") && !d->return_seen) {
            d->return_seen = true;
            r = read_return(d);
        } else if (js_str_eq(&key, "precision") && !d->precision_seen) {
            d->precision_seen = true;
            r = read_precision(d);
        } else if (js_str_eq(&key, "layout") && !d->layout_seen) {
            d->layout_seen = true;
            r = read_layout(d);
        } else if (js_str_eq(&key, "timeout_ms") && !d->timeout_seen) {
            d->timeout_seen = true;
            r = read_timeout(d);
        } else {
            if (!d->has[E_FIELD] && !js_str_eq(&key, "inputs") && !js_str_eq(&key, "h0") &&
                !js_str_eq(&key, "c0") && !js_str_eq(&key, "return") &&
                !js_str_eq(&key, "precision") && !js_str_eq(&key, "layout") &&
                !js_str_eq(&key, "timeout_ms") && !js_str_eq(&key, "tokens") &&
                !js_str_eq(&key, "only_last")) {
                char name[WIRE_MSG_LEN];
                js_str_copy(&key, name, sizeof name);
                FIRST(d, E_FIELD, 400, "%s: unknown field (expected \"%s\", \"h0\", \"c0\", %s)",
                      name, d->info->vocab_size > 0 ? "tokens" : "inputs",
                      d->more ? d->more->names
                              : "\"return\", \"precision\", \"layout\", \"timeout_ms\", "
                                "\"only_last\"");
            }
            r = js_skip(js, 2);
        }
        if (r < 0)
            return -1;
    }
    return rc;
}

/* The state field's error, in read_state's order, if it has one; B is the batch size, read
 * from FIELD. */
/* Whether the body sent what the model takes: "tokens" for a token model, "inputs" otherwise,
 * one of them only. -1 with E when not. */
static int which_error(const decoder *d, bool tok, wire_error *e)
{
    const int V = d->info->vocab_size;
    if (d->tokens_seen && d->inputs_seen)
        return wire_fail(e, 400, "tokens, inputs: send one of them, not both (this model takes %s)",
                         tok ? "\"tokens\"" : "\"inputs\"");
    if (tok && d->inputs_seen)
        return wire_fail(e, 400,
                         "inputs: this model takes token ids (an embedding of %d tokens): send "
                         "\"tokens\": [[id, ...], ...] instead",
                         V);
    if (!tok && d->tokens_seen)
        return wire_fail(e, 400,
                         "tokens: this model has no embedding: send \"inputs\" (%d numbers per "
                         "step) instead",
                         d->info->input_size);
    if (tok && !d->tokens_seen)
        return wire_fail(
            e, 400, "tokens: missing (expected an array of sequences of token ids in [0, %d))", V);
    if (!tok && !d->inputs_seen)
        return wire_fail(e, 400, "inputs: missing (expected an array of sequences)");
    return 0;
}

static bool state_error(const state_field *st, const char *name, const char *field, size_t B,
                        wire_error *e)
{
    if (!st->seen || st->null)
        return false;
    if (st->shape_set)
        *e = st->shape;
    else if (st->entries != B)
        wire_fail(e, 400, "%s: expected %zu entries (one per sequence in %s), got %zu", name, B,
                  field, st->entries);
    else if (st->entry_set)
        *e = st->entry;
    else
        return false;
    return true;
}

int wire_v1_decode(const char *body, size_t len, const rnn_info *info, const api_limits *lim,
                   wire_v1_request **out, wire_error *e)
{
    return wire_v1_decode_with(body, len, info, lim, NULL, out, e);
}

int wire_v1_decode_with(const char *body, size_t len, const rnn_info *info, const api_limits *lim,
                        const wire_v1_fields *more, wire_v1_request **out, wire_error *e)
{
    decoder *d = NULL;
    wire_v1_request *r = NULL;
    *out = NULL;

    /* On the heap: the error slots make it a few kilobytes, and the server's threads are not
     * the place for that. */
    if (!(d = calloc(1, sizeof *d))) {
        wire_fail(e, 500, "out of memory");
        goto fail;
    }
    d->info = info;
    d->lim = lim;
    d->more = more;
    d->I = (size_t)info->input_size;
    d->H = (size_t)info->hidden_size;
    d->LD = (size_t)(info->num_layers * info->num_directions);
    d->parts = wire_parts_of(info);
    d->precision = 9;
    if (wire_scan(&d->js, body, len, read_root, d, e) < 0)
        goto fail;
    const bool tok = info->vocab_size > 0;
    for (int k = E_ROOT; k <= E_STEP; k++) {
        if (k == E_INPUTS && !d->has[E_ROOT] && !d->has[E_FIELD] && which_error(d, tok, e) < 0)
            goto fail;
        if (d->has[k]) {
            *e = d->err[k];
            goto fail;
        }
    }
    if (state_error(&d->h0, "h0", tok ? "tokens" : "inputs", d->B, e))
        goto fail;
    if (d->c0.seen && !d->c0.null && info->type != RNN_CELL_LSTM) {
        wire_fail(e, 400, "c0: only lstm models have a cell state (this model is %s)",
                  rnn_cell_describe(info->type)->name);
        goto fail;
    }
    if (state_error(&d->c0, "c0", tok ? "tokens" : "inputs", d->B, e))
        goto fail;
    for (int k = E_RETURN; k < E_KINDS; k++) {
        if (d->has[k]) {
            *e = d->err[k];
            goto fail;
        }
    }

    if (!(r = calloc(1, sizeof *r))) {
        wire_fail(e, 500, "out of memory");
        goto fail;
    }
    if (tok) {
        if (!d->ids && !(d->ids = malloc(sizeof *d->ids))) { /* no steps: still a pointer */
            wire_fail(e, 500, "out of memory");
            goto fail;
        }
        r->tokens = d->ids;
        d->ids = NULL;
    } else if (!d->x && !(d->x = malloc(d->I * sizeof(float)))) { /* the same for floats */
        wire_fail(e, 500, "out of memory");
        goto fail;
    }
    r->lengths = d->lengths;
    r->x = d->x;
    d->lengths = NULL;
    d->x = NULL;
    if (d->h0.seen && !d->h0.null) {
        r->h0 = d->h0.v;
        d->h0.v = NULL;
    }
    if (d->c0.seen && !d->c0.null) {
        r->c0 = d->c0.v;
        d->c0.v = NULL;
    }
    r->steps = tok ? d->nids : d->nx / d->I;
    r->only_last = d->only_last;
    r->parts = d->parts;
    r->precision = d->precision;
    r->padded = d->padded;
    r->timeout_us = d->timeout_us;
    r->batch.batch = d->B;
    r->batch.lengths = r->lengths;
    r->batch.x = r->x;
    r->batch.h0 = r->h0;
    r->batch.c0 = r->c0;
    if (r->padded && !r->only_last) {
        const size_t width =
            (r->parts & WIRE_OUTPUTS ? (size_t)(info->num_directions * info->hidden_size) : 0) +
            (r->parts & WIRE_PREDICTIONS ? (size_t)info->head_size : 0);
        if (wire_padding_check(&r->batch, width, "\"layout\": \"ragged\" avoids the padding", e) <
            0)
            goto fail;
    }
    *out = r;
    r = NULL;

fail:
    if (d) {
        js_release(&d->js);
        free(d->lengths);
        free(d->x);
        free(d->ids);
        free(d->h0.v);
        free(d->c0.v);
        free(d);
    }
    wire_v1_free(r);
    return *out ? 0 : -1;
}

void wire_v1_free(wire_v1_request *r)
{
    if (!r)
        return;
    free(r->lengths);
    free(r->x);
    free(r->tokens);
    free(r->h0);
    free(r->c0);
    free(r);
}

const rnn_batch *wire_v1_batch(const wire_v1_request *r)
{
    return &r->batch;
}

unsigned wire_v1_parts(const wire_v1_request *r)
{
    return r->parts;
}

int64_t wire_v1_timeout_us(const wire_v1_request *r)
{
    return r->timeout_us;
}

int wire_v1_precision(const wire_v1_request *r)
{
    return r->precision;
}

size_t wire_v1_steps(const wire_v1_request *r)
{
    return r->steps;
}

const int32_t *wire_v1_tokens(const wire_v1_request *r)
{
    return r->tokens;
}

bool wire_v1_only_last(const wire_v1_request *r)
{
    return r->only_last;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding */

/* Width of a row of part P (1 << p): a step's D*H or O for outputs and predictions (per_step
 * set), a layer's H for hidden and cell. */
static size_t part_width(const rnn_info *info, int p, bool *per_step)
{
    *per_step = p == 0 || p == 3;
    return p == 0   ? (size_t)(info->num_directions * info->hidden_size)
           : p == 3 ? (size_t)info->head_size
                    : (size_t)info->hidden_size;
}

/* Room for the numbers of ROWS rows of N floats, "[[a,b],[c,d]]," at their longest. */
static size_t rows_bound(size_t rows, size_t n)
{
    return 3 + rows * (n * FF_ROW_LEN + 3);
}

/* The longest response REQ can get (every number at its longest), model name excluded: what the
 * encoders reserve at once, so that their loops write without a bounds check or a reallocation
 * (pages past what is written are never touched: the slack costs address space, not memory). */
static size_t response_bound(const rnn_info *info, const wire_v1_request *req)
{
    const rnn_batch *b = &req->batch;
    const size_t LD = (size_t)(info->num_layers * info->num_directions), T = wire_max_len(b);
    size_t need = FF_ROW_SLACK + 64;
    for (int p = 0; p < 4; p++) {
        if (!(req->parts & (1u << p)))
            continue;
        bool per_step;
        const size_t n = part_width(info, p, &per_step);
        need += strlen(PART_NAMES[p]) + 6;
        if (!per_step)
            need += req->padded ? LD * rows_bound(b->batch, n) : b->batch * rows_bound(LD, n);
        else if (req->only_last)
            need += rows_bound(b->batch, n) + 5 * b->batch; /* "null," for an empty sequence */
        else if (req->padded)
            need += b->batch * rows_bound(T, n);
        else
            for (size_t i = 0; i < b->batch; i++)
                need += rows_bound((size_t)b->lengths[i], n);
    }
    return need;
}

/* Rows of N floats: [[a,b],[c,d]], into room the caller reserved (rows_bound, plus
 * FF_ROW_SLACK once at the end). Fails (422) at the first non-finite value, naming it as
 * NAME[seq][row][col]. */
static int put_rows(buf *w, const float *v, size_t rows, size_t n, int prec, const char *name,
                    size_t seq, wire_error *e)
{
    char *o = w->data + w->len;
    *o++ = '[';
    for (size_t r = 0; r < rows; r++) {
        size_t bad;
        *o++ = '[';
        const size_t k = ff_format_row(v + r * n, n, prec, o, &bad);
        if (k == FF_NOT_FINITE) {
            const float f = v[r * n + bad];
            return wire_fail(e, 422,
                             "%s[%zu][%zu][%zu]: the forward pass produced %s, which JSON cannot "
                             "carry (the model diverged for this input)",
                             name, seq, r, bad,
                             isnan(f) ? "NaN"
                             : f > 0  ? "+inf"
                                      : "-inf");
        }
        o += k;
        *o++ = ']';
        *o++ = ',';
    }
    o -= rows > 0; /* the last row's comma */
    *o++ = ']';
    w->len = (size_t)(o - w->data);
    return 0;
}

/* One per-step part: ragged, a row per step of each sequence; padded ("layout": "padded"),
 * [B][T_max][width] with zero rows past each sequence's length (pad_packed_sequence's). */
static int put_steps(buf *w, const wire_v1_request *req, const float *data, size_t n,
                     const char *name, wire_error *e)
{
    const rnn_batch *b = &req->batch;
    const size_t T = req->padded ? wire_max_len(b) : 0;
    size_t row = 0;
    for (size_t i = 0; i < b->batch; i++) {
        const size_t Ti = (size_t)b->lengths[i];
        if (i)
            buf_putc(w, ',');
        if (put_rows(w, data + row * n, Ti, n, req->precision, name, i, e) < 0)
            return -1;
        row += Ti;
        if (Ti >= T)
            continue;
        w->len--; /* the zero rows past T_i go inside this sequence's brackets */
        for (size_t t = Ti; t < T; t++) {
            buf_puts(w, t ? ",[" : "[");
            for (size_t k = 0; k < n; k++)
                buf_puts(w, k ? ",0" : "0");
            buf_putc(w, ']');
        }
        buf_putc(w, ']');
    }
    return 0;
}

/* One per-step part of an only_last request: a row per sequence (its last step), null for an
 * empty sequence, which has none. */
static int put_last(buf *w, const wire_v1_request *req, const float *data, size_t n,
                    const char *name, wire_error *e)
{
    const rnn_batch *b = &req->batch;
    for (size_t i = 0; i < b->batch; i++) {
        if (i)
            buf_putc(w, ',');
        if (b->lengths[i] == 0) {
            buf_puts(w, "null");
            continue;
        }
        /* one row, without the brackets put_rows sets around its rows */
        const size_t at = w->len;
        if (put_rows(w, data + i * n, 1, n, req->precision, name, i, e) < 0)
            return -1;
        memmove(w->data + at, w->data + at + 1, w->len - at - 2);
        w->len -= 2;
    }
    return 0;
}

/* One state part: ragged, per sequence its L*D rows (the engine's own layout); padded, PyTorch's
 * h_n/c_n [L*D][B][H], through TMP (room for B*L*D*H). */
static int put_states(buf *w, const wire_v1_request *req, const rnn_info *info, const float *data,
                      float *tmp, const char *name, wire_error *e)
{
    const rnn_batch *b = &req->batch;
    const size_t LD = (size_t)(info->num_layers * info->num_directions);
    const size_t H = (size_t)info->hidden_size;
    const size_t outer = req->padded ? LD : b->batch, inner = req->padded ? b->batch : LD;
    if (req->padded) {
        wire_states_to_layers(data, b->batch, LD, H, tmp);
        data = tmp;
    }
    for (size_t r = 0; r < outer; r++) {
        if (r)
            buf_putc(w, ',');
        if (put_rows(w, data + r * inner * H, inner, H, req->precision, name, r, e) < 0)
            return -1;
    }
    return 0;
}

/* Appends REQ's response to W. */
static int encode(const char *model_name, const rnn_info *info, const wire_v1_request *req,
                  const rnn_result *res, buf *w, wire_error *e)
{
    const float *data[4] = {res->outputs, res->hidden, res->cell, res->predictions};
    const size_t B = req->batch.batch, LD = (size_t)(info->num_layers * info->num_directions);
    float *tmp = NULL;
    int rc = -1;
    if (req->padded && (req->parts & (WIRE_HIDDEN | WIRE_CELL)) &&
        !(tmp = malloc((B * LD * (size_t)info->hidden_size + 1) * sizeof *tmp)))
        goto oom;
    buf_puts(w, "{\"model\":");
    buf_json_string(w, model_name);
    if (buf_reserve(w, response_bound(info, req)) < 0)
        goto oom;
    for (int p = 0; p < 4; p++) {
        if (!(req->parts & (1u << p)) || !data[p])
            continue;
        bool per_step;
        const size_t n = part_width(info, p, &per_step);
        buf_puts(w, ",\"");
        buf_puts(w, PART_NAMES[p]);
        buf_puts(w, "\":[");
        if (per_step && req->only_last ? put_last(w, req, data[p], n, PART_NAMES[p], e) < 0
            : per_step                 ? put_steps(w, req, data[p], n, PART_NAMES[p], e) < 0
                       : put_states(w, req, info, data[p], tmp, PART_NAMES[p], e) < 0)
            goto done;
        buf_putc(w, ']');
    }
    buf_putc(w, '}');
    if (w->oom)
        goto oom;
    rc = 0;
    goto done;
oom:
    wire_fail(e, 500, "out of memory encoding the response");
done:
    free(tmp);
    return rc;
}

int wire_v1_encode(const char *model_name, const rnn_info *info, const wire_v1_request *req,
                   const rnn_result *res, char **out, size_t *len, wire_error *e)
{
    buf w = BUF_INIT;
    *out = NULL;
    if (encode(model_name, info, req, res, &w, e) < 0) {
        buf_free(&w);
        return -1;
    }
    *out = buf_take(&w, len);
    return 0;
}

static char *v1_error(int status, const char *message, size_t *len)
{
    buf w = BUF_INIT;
    buf_printf(&w, "{\"error\":{\"status\":%d,\"message\":", status);
    buf_json_string(&w, message);
    buf_puts(&w, "}}");
    return buf_take(&w, len);
}

/* One model's metadata object: its shape, its head ("head": {"out_features", "activation"}, or
 * null) and the response parts it has ("outputs"). */
static void put_model(buf *w, const rnn_info *in, int is_default)
{
    buf_puts(w, "{\"name\":");
    buf_json_string(w, in->name);
    buf_puts(w, ",\"type\":");
    buf_json_string(w, rnn_cell_describe(in->type)->name);
    buf_printf(w, ",\"input_size\":%d,\"hidden_size\":%d,\"num_layers\":%d,\"nonlinearity\":",
               in->input_size, in->hidden_size, in->num_layers);
    if (in->type == RNN_CELL_RNN)
        buf_json_string(w, rnn_nonlinearity_name(in->nonlinearity));
    else
        buf_puts(w, "null");
    buf_printf(w, ",\"bias\":%s,\"bidirectional\":%s,\"parameters\":%zu",
               in->bias ? "true" : "false", in->num_directions == 2 ? "true" : "false",
               in->parameters);
    if (in->head_size > 0) {
        buf_printf(w, ",\"head\":{\"out_features\":%d,\"activation\":", in->head_size);
        buf_json_string(w, rnn_head_activation_name(in->head_activation));
        buf_putc(w, '}');
    } else {
        buf_puts(w, ",\"head\":null");
    }
    if (in->vocab_size > 0)
        buf_printf(w, ",\"embedding\":{\"num_embeddings\":%d}", in->vocab_size);
    else
        buf_puts(w, ",\"embedding\":null");
    buf_puts(w, ",\"outputs\":[");
    const unsigned have = wire_parts_of(in);
    for (int p = 0, k = 0; p < 4; p++)
        if (have & (1u << p)) {
            buf_puts(w, k++ ? ",\"" : "\"");
            buf_puts(w, PART_NAMES[p]);
            buf_putc(w, '"');
        }
    buf_printf(w, "],\"default\":%s}", is_default ? "true" : "false");
}

static char *v1_metadata(const rnn_info *info, int is_default, size_t *len)
{
    buf w = BUF_INIT;
    put_model(&w, info, is_default);
    return buf_take(&w, len);
}

char *api_models_list(const rnn_info *const *infos, size_t n, size_t *len)
{
    buf w = BUF_INIT;
    buf_puts(&w, "{\"models\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(&w, ',');
        put_model(&w, infos[i], i == 0);
    }
    buf_puts(&w, "]}");
    return buf_take(&w, len);
}

/* ---- behind api.h */

static int v1_decode(const char *body, size_t len, const api_framing *f, const rnn_info *info,
                     const api_limits *lim, void **req, wire_decoded *d, wire_error *e)
{
    wire_v1_request *r;
    *req = NULL;
    if (f && f->binary) /* the binary tensor data extension is the Open Inference Protocol's */
        return wire_fail(e, 400,
                         "Inference-Header-Content-Length: binary tensor data is accepted on "
                         "/v2/models/{name}/infer only");
    if (wire_v1_decode(body, len, info, lim, &r, e) < 0)
        return -1;
    *req = r;
    d->batch = &r->batch;
    d->tokens = r->tokens;
    d->only_last = r->only_last;
    d->parts = r->parts;
    d->steps = r->steps;
    d->timeout_us = r->timeout_us;
    return 0;
}

static void v1_free(void *req)
{
    wire_v1_free(req);
}

static size_t v1_response_bytes(const void *req, const rnn_info *info)
{
    return response_bound(info, req) + strlen(info->name) * 6 + 16;
}

static int v1_encode(const void *req, const rnn_info *info, const rnn_result *res, buf *out,
                     size_t *header_len, wire_error *e)
{
    (void)header_len; /* all JSON */
    return encode(info->name, info, req, res, out, e);
}

static const api_wire V1 = {"v1",      v1_decode, v1_free,    v1_response_bytes,
                            v1_encode, v1_error,  v1_metadata};

const api_wire *api_wire_v1(void)
{
    return &V1;
}
