/* codec.c - forward request JSON -> rnn_batch, and rnn_result -> response JSON.
 *
 * Decoding reads the body in one strict pass (jsonscan.c, with jansson's verdicts) straight into
 * the batch's arrays and checks every shape against the model, naming the JSON path of the first
 * problem. Encoding reserves the response's longest size once and writes it straight into that
 * buffer, a row of numbers per call of the shortest-round-trip printer: no DOM for the (large)
 * outputs, no bounds check or reallocation per number. */
#include "rnnserve/codec.h"

#include <jansson.h>
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

struct codec_request {
    rnn_batch batch;
    int32_t *lengths;
    float *x, *h0, *c0;
    size_t steps;
    unsigned parts;
    int precision;
    int padded; /* "layout": "padded": PyTorch's tensors instead of ragged rows */
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

enum { E_ROOT, E_FIELD, E_INPUTS, E_SEQUENCE, E_STEP, E_RETURN, E_PRECISION, E_LAYOUT, E_KINDS };

/* "h0" or "c0": kept apart because its checks need B, known only once "inputs" is read. */
typedef struct {
    bool seen, null;
    bool shape_set, entry_set;
    codec_error shape; /* not an array */
    codec_error entry; /* the first entry that is wrong */
    size_t entries;
    float *v; /* (entries, L*D, H) as read */
    size_t n, cap;
} state_field;

typedef struct {
    js_reader js;
    const rnn_info *info;
    const codec_limits *lim;
    size_t I, H, LD;
    bool has[E_KINDS];
    codec_error err[E_KINDS];
    bool inputs_seen, return_seen, precision_seen, layout_seen;
    int padded; /* "layout": "padded" */
    size_t B;
    int32_t *lengths; /* (min(B, max_batch)) */
    size_t lcap;
    float *x; /* (sum(lengths), I) while no error is found */
    size_t nx, xcap;
    state_field h0, c0;
    unsigned parts;
    int precision;
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

static const char *kind_name(js_kind k)
{
    switch (k) {
    case JS_OBJECT:
        return "an object";
    case JS_ARRAY:
        return "an array";
    case JS_STRING:
        return "a string";
    case JS_NUMBER:
        return "a number";
    case JS_BOOL:
        return "a boolean";
    case JS_NULL:
        return "null";
    case JS_NONE:
        break;
    }
    return "a value"; /* a syntax error, reported instead */
}

static void verr(codec_error *e, int status, const char *fmt, va_list ap)
{
    e->status = status;
    vsnprintf(e->message, sizeof e->message, fmt, ap);
}

/* Fills *E unless *SET says an earlier error of its kind is already there. */
static void first(codec_error *e, bool *set, int status, const char *fmt, ...)
{
    if (*set)
        return;
    va_list ap;
    va_start(ap, fmt);
    verr(e, status, fmt, ap);
    va_end(ap);
    *set = true;
}

#define FIRST(d, kind, status, ...) first(&(d)->err[kind], &(d)->has[kind], status, __VA_ARGS__)

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
static int read_row(decoder *d, int depth, float *dst, size_t n, const jpath *path, codec_error *e,
                    bool *set)
{
    char p[96];
    size_t count;
    js_bad bad;
    if (js_f32_array(&d->js, depth, dst, n, &count, &bad) < 0)
        return -1;
    if (count != n)
        first(e, set, 400, "%s: expected %zu number%s, got %zu", path_str(path, p, sizeof p), n,
              n == 1 ? "" : "s", count);
    else if (bad.index != JS_NO_INDEX && bad.kind == JS_NUMBER)
        first(e, set, 400, "%s[%zu]: %g is not representable as float32",
              path_str(path, p, sizeof p), bad.index, jn_to_double(bad.tok, bad.tok_end));
    else if (bad.index != JS_NO_INDEX)
        first(e, set, 400, "%s[%zu]: expected a number, got %s", path_str(path, p, sizeof p),
              bad.index, kind_name(bad.kind));
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
        if (st == JN_RANGE)
            FIRST(d, E_STEP, 400, "%s: %g is not representable as float32",
                  path_str(&path, p, sizeof p), jn_to_double(a, b));
        d->nx += 1;
        return 0;
    }
    if (k != JS_ARRAY) {
        if (I == 1)
            FIRST(d, E_STEP, 400, "%s: expected a number or an array of 1 number, got %s",
                  path_str(&path, p, sizeof p), kind_name(k));
        else
            FIRST(d, E_STEP, 400, "%s: expected an array of %zu numbers, got %s",
                  path_str(&path, p, sizeof p), I, kind_name(k));
        return js_skip(&d->js, 4);
    }
    if (read_row(d, 4, dst, I, &path, &d->err[E_STEP], &d->has[E_STEP]) < 0)
        return -1;
    d->nx += I;
    return 0;
}

/* inputs[i], at depth 3. Steps are stored until the first error of the inputs is found; after
 * it, only what can still outrank that error (a sequence's shape and length) is looked at. */
static int read_sequence(decoder *d, size_t i)
{
    js_reader *js = &d->js;
    const size_t max = d->lim->max_steps;
    const js_kind k = js_peek(js);
    d->lengths[i] = 0;
    if (k != JS_ARRAY) {
        FIRST(d, E_SEQUENCE, 400, "inputs[%zu]: expected an array of steps, got %s", i,
              kind_name(k));
        return js_skip(js, 3);
    }
    if (js_array_begin(js, 3) < 0)
        return -1;
    size_t t = 0;
    int rc;
    while ((rc = js_array_next(js, t)) > 0) {
        if (t < max && !d->has[E_SEQUENCE] && !d->has[E_STEP]) {
            if (read_step(d, i, t) < 0)
                return -1;
        } else if (js_skip(js, 4) < 0) {
            return -1;
        }
        t++;
    }
    if (rc < 0)
        return -1;
    if (t > max)
        FIRST(d, E_SEQUENCE, 413, "inputs[%zu]: %zu steps exceed max_steps %zu", i, t, max);
    d->lengths[i] = t > INT32_MAX ? INT32_MAX : (int32_t)t;
    return 0;
}

/* "inputs", at depth 2. Past max_batch sequences nothing is kept: the answer is a 413. */
static int read_inputs(decoder *d)
{
    js_reader *js = &d->js;
    const js_kind k = js_peek(js);
    if (k != JS_ARRAY) {
        FIRST(d, E_INPUTS, 400, "inputs: expected an array of sequences, got %s", kind_name(k));
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
            if (read_sequence(d, i) < 0)
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
        FIRST(d, E_INPUTS, 400, "inputs: expected at least one sequence, got an empty array");
    else if (i > d->lim->max_batch)
        FIRST(d, E_INPUTS, 413, "inputs: %zu sequences exceed max_batch %zu", i, d->lim->max_batch);
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
        first(&st->entry, &st->entry_set, 400,
              "%s[%zu]: expected %zu rows (num_layers*num_directions) of %zu numbers, got %s", name,
              e, LD, H, kind_name(k));
        return js_skip(js, 3);
    }
    if (js_array_begin(js, 3) < 0)
        return -1;
    codec_error row_err;
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
                first(&row_err, &row_set, 400, "%s: expected an array of %zu numbers, got %s",
                      path_str(&path, p, sizeof p), H, kind_name(k));
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
        first(&st->entry, &st->entry_set, 400,
              "%s[%zu]: expected %zu rows (num_layers*num_directions), got %zu", name, e, LD, r);
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
        first(&st->shape, &st->shape_set, 400,
              "%s: expected an array with one entry per sequence, got %s", name, kind_name(k));
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

/* "return", at depth 2: any subset of "outputs", "hidden", "cell". */
static int read_return(decoder *d)
{
    js_reader *js = &d->js;
    js_kind k = js_peek(js);
    if (k != JS_ARRAY) {
        FIRST(d, E_RETURN, 400,
              "return: expected an array of \"outputs\", \"hidden\", \"cell\", got %s",
              kind_name(k));
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
            FIRST(d, E_RETURN, 400, "return[%zu]: expected a string, got %s", i, kind_name(k));
            if (js_skip(js, 3) < 0)
                return -1;
        } else if (js_string(js, 3, &s) < 0) {
            return -1;
        } else if (js_str_eq(&s, "outputs")) {
            parts |= CODEC_OUTPUTS;
        } else if (js_str_eq(&s, "hidden")) {
            parts |= CODEC_HIDDEN;
        } else if (js_str_eq(&s, "cell") && d->info->type == RNN_CELL_LSTM) {
            parts |= CODEC_CELL;
        } else if (js_str_eq(&s, "cell")) {
            FIRST(d, E_RETURN, 400, "return[%zu]: \"cell\" exists for lstm models only", i);
        } else if (js_str_eq(&s, "predictions") && d->info->head_size > 0) {
            parts |= CODEC_PREDICTIONS;
        } else if (js_str_eq(&s, "predictions")) {
            FIRST(d, E_RETURN, 400, "return[%zu]: \"predictions\" needs a model with a head", i);
        } else {
            char name[CODEC_MSG_LEN];
            js_str_copy(&s, name, sizeof name);
            FIRST(d, E_RETURN, 400,
                  "return[%zu]: \"%s\" is not a part of the response (expected \"outputs\", "
                  "\"hidden\" or \"cell\")",
                  i, name);
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

/* The body, at depth 1. A repeated known field is skipped here; the reader fails it. */
static int read_root(decoder *d)
{
    js_reader *js = &d->js;
    const js_kind k = js_peek(js);
    if (k == JS_ARRAY) {
        FIRST(d, E_ROOT, 400, "request body: expected a JSON object with \"inputs\", got %s",
              kind_name(k));
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
        if (js_str_eq(&key, "inputs") && !d->inputs_seen) {
            d->inputs_seen = true;
            r = read_inputs(d);
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
        } else {
            if (!d->has[E_FIELD] && !js_str_eq(&key, "inputs") && !js_str_eq(&key, "h0") &&
                !js_str_eq(&key, "c0") && !js_str_eq(&key, "return") &&
                !js_str_eq(&key, "precision") && !js_str_eq(&key, "layout")) {
                char name[CODEC_MSG_LEN];
                js_str_copy(&key, name, sizeof name);
                FIRST(d, E_FIELD, 400,
                      "%s: unknown field (expected \"inputs\", \"h0\", \"c0\", \"return\", "
                      "\"precision\", \"layout\")",
                      name);
            }
            r = js_skip(js, 2);
        }
        if (r < 0)
            return -1;
    }
    return rc;
}

/* The state field's error, in read_state's order, if it has one; B is the batch size. */
static bool state_error(const state_field *st, const char *name, size_t B, codec_error *e)
{
    if (!st->seen || st->null)
        return false;
    if (st->shape_set)
        *e = st->shape;
    else if (st->entries != B)
        fail(e, 400, "%s: expected %zu entries (one per sequence in inputs), got %zu", name, B,
             st->entries);
    else if (st->entry_set)
        *e = st->entry;
    else
        return false;
    return true;
}

int codec_decode_request(const char *body, size_t len, const rnn_info *info,
                         const codec_limits *lim, codec_request **out, codec_error *e)
{
    decoder *d = NULL;
    codec_request *r = NULL;
    *out = NULL;

    /* On the heap: the error slots make it a few kilobytes, and the server's threads are not
     * the place for that. */
    if (!(d = calloc(1, sizeof *d))) {
        fail(e, 500, "out of memory");
        goto fail;
    }
    d->info = info;
    d->lim = lim;
    d->I = (size_t)info->input_size;
    d->H = (size_t)info->hidden_size;
    d->LD = (size_t)(info->num_layers * info->num_directions);
    d->parts = CODEC_OUTPUTS | CODEC_HIDDEN | (info->type == RNN_CELL_LSTM ? CODEC_CELL : 0) |
               (info->head_size > 0 ? CODEC_PREDICTIONS : 0);
    d->precision = 9;
    js_init(&d->js, body, len);
    if (read_root(d) == 0)
        js_end(&d->js);

    if (!js_ok(&d->js)) {
        char where[160];
        js_error_message(&d->js, where, sizeof where);
        if (d->js.oom)
            fail(e, 500, "out of memory decoding the request");
        else if (len == 0)
            fail(e, 400, "empty request body (expected a JSON object with \"inputs\")");
        else
            fail(e, 400, "malformed JSON at %s", where);
        goto fail;
    }
    for (int k = E_ROOT; k <= E_STEP; k++) {
        if (k == E_INPUTS && !d->inputs_seen && !d->has[E_ROOT] && !d->has[E_FIELD]) {
            fail(e, 400, "inputs: missing (expected an array of sequences)");
            goto fail;
        }
        if (d->has[k]) {
            *e = d->err[k];
            goto fail;
        }
    }
    if (state_error(&d->h0, "h0", d->B, e))
        goto fail;
    if (d->c0.seen && !d->c0.null && info->type != RNN_CELL_LSTM) {
        fail(e, 400, "c0: only lstm models have a cell state (this model is %s)",
             rnn_cell_describe(info->type)->name);
        goto fail;
    }
    if (state_error(&d->c0, "c0", d->B, e))
        goto fail;
    for (int k = E_RETURN; k < E_KINDS; k++) {
        if (d->has[k]) {
            *e = d->err[k];
            goto fail;
        }
    }

    if (!(r = calloc(1, sizeof *r))) {
        fail(e, 500, "out of memory");
        goto fail;
    }
    if (!d->x && !(d->x = malloc(d->I * sizeof(float)))) { /* no steps: still a valid pointer */
        fail(e, 500, "out of memory");
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
    r->steps = d->nx / d->I;
    r->parts = d->parts;
    r->precision = d->precision;
    r->padded = d->padded;
    r->batch.batch = d->B;
    r->batch.lengths = r->lengths;
    r->batch.x = r->x;
    r->batch.h0 = r->h0;
    r->batch.c0 = r->c0;
    *out = r;
    r = NULL;

fail:
    if (d) {
        js_release(&d->js);
        free(d->lengths);
        free(d->x);
        free(d->h0.v);
        free(d->c0.v);
        free(d);
    }
    codec_request_free(r);
    return *out ? 0 : -1;
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

/* Length of the UTF-8 sequence at P (NUL-terminated), or 0 when P does not start a valid one
 * (a stray continuation byte, an overlong form, a surrogate, past U+10FFFF, or cut short). */
static size_t utf8_len(const unsigned char *p)
{
    size_t n;
    unsigned long cp, min;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2, cp = p[0] & 0x1fu, min = 0x80;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3, cp = p[0] & 0x0fu, min = 0x800;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4, cp = p[0] & 0x07u, min = 0x10000;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    return cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? 0 : n;
}

/* A JSON string with the escapes RFC 8259 requires. Error messages quote what the client sent
 * (a URL's %FF, a method), so bytes that are not UTF-8 become U+FFFD: the body stays JSON. */
static void wb_json_string(wbuf *w, const char *s)
{
    if (wb_reserve(w, strlen(s) * 6 + 2) < 0)
        return;
    char *o = w->buf + w->len;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        size_t n;
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = (char)*p;
        } else if (*p < 0x20) {
            o += sprintf(o, "\\u%04x", *p);
        } else if (*p < 0x80) {
            *o++ = (char)*p;
        } else if ((n = utf8_len(p)) > 0) {
            memcpy(o, p, n);
            o += n;
            p += n - 1;
        } else {
            o += sprintf(o, "\\ufffd");
        }
    }
    *o++ = '"';
    w->len = (size_t)(o - w->buf);
}

/* Room for the numbers of ROWS rows of N floats, "[[a,b],[c,d]]," at their longest. */
static size_t rows_bound(size_t rows, size_t n)
{
    return 3 + rows * (n * FF_ROW_LEN + 3);
}

/* Rows of N floats: [[a,b],[c,d]], into room the caller reserved (rows_bound, plus
 * FF_ROW_SLACK once at the end). Fails (422) at the first non-finite value, naming it as
 * NAME[seq][row][col]. */
static int put_rows(wbuf *w, const float *v, size_t rows, size_t n, int prec, const char *name,
                    size_t seq, codec_error *e)
{
    char *o = w->buf + w->len;
    *o++ = '[';
    for (size_t r = 0; r < rows; r++) {
        size_t bad;
        *o++ = '[';
        const size_t k = ff_format_row(v + r * n, n, prec, o, &bad);
        if (k == FF_NOT_FINITE) {
            const float f = v[r * n + bad];
            return fail(e, 422,
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
    w->len = (size_t)(o - w->buf);
    return 0;
}

/* "layout": "padded": the tensors exactly as PyTorch prints them,
 *   outputs, predictions  [B][T_max][width]  zero rows past each sequence's length
 *                         (pad_packed_sequence's padding)
 *   hidden, cell          [L*D][B][H]        h_n and c_n
 * Same numbers as the ragged layout, rearranged. */
static int encode_padded(const char *model_name, const rnn_info *info, const codec_request *req,
                         const rnn_result *res, char **out, size_t *len, codec_error *e)
{
    const rnn_batch *b = &req->batch;
    const size_t B = b->batch, H = (size_t)info->hidden_size, O = (size_t)info->head_size;
    const size_t DH = (size_t)(info->num_directions * info->hidden_size);
    const size_t LD = (size_t)(info->num_layers * info->num_directions);
    size_t T = 0;
    for (size_t i = 0; i < B; i++)
        T = (size_t)b->lengths[i] > T ? (size_t)b->lengths[i] : T;
    struct {
        unsigned bit;
        const char *name;
        const float *data;
        size_t width; /* 0: a state, [L*D][B][H] */
    } parts[] = {{CODEC_OUTPUTS, "outputs", res->outputs, DH},
                 {CODEC_HIDDEN, "hidden", res->hidden, 0},
                 {CODEC_CELL, "cell", res->cell, 0},
                 {CODEC_PREDICTIONS, "predictions", res->predictions, O}};
    wbuf w = {0};
    float *tmp = NULL;
    size_t need = FF_ROW_SLACK + 64 + strlen(model_name) * 6;
    for (size_t p = 0; p < 4; p++)
        need += 16 + (parts[p].width ? B * rows_bound(T, parts[p].width) : LD * rows_bound(B, H));
    if (wb_reserve(&w, need) < 0 || !(tmp = malloc((B * H + 1) * sizeof(float)))) {
        fail(e, 500, "out of memory encoding the response");
        goto fail;
    }
    wb_puts(&w, "{\"model\":");
    wb_json_string(&w, model_name);
    for (size_t p = 0; p < 4; p++) {
        if (!(req->parts & parts[p].bit) || !parts[p].data)
            continue;
        wb_puts(&w, ",\"");
        wb_puts(&w, parts[p].name);
        wb_puts(&w, "\":[");
        if (parts[p].width) {
            const size_t n = parts[p].width;
            size_t row = 0;
            for (size_t i = 0; i < B; i++) {
                const size_t Ti = (size_t)b->lengths[i];
                if (i)
                    wb_puts(&w, ",");
                if (put_rows(&w, parts[p].data + row * n, Ti, n, req->precision, parts[p].name, i,
                             e) < 0)
                    goto fail;
                row += Ti;
                /* the zero rows past T_i go inside this sequence's brackets */
                w.len--;
                for (size_t t = Ti; t < T; t++) {
                    wb_puts(&w, t ? ",[" : "[");
                    for (size_t k = 0; k < n; k++)
                        wb_puts(&w, k ? ",0" : "0");
                    wb_puts(&w, "]");
                }
                wb_puts(&w, "]");
            }
        } else {
            for (size_t r = 0; r < LD; r++) {
                for (size_t i = 0; i < B; i++)
                    memcpy(tmp + i * H, parts[p].data + (i * LD + r) * H, H * sizeof(float));
                if (r)
                    wb_puts(&w, ",");
                if (put_rows(&w, tmp, B, H, req->precision, parts[p].name, r, e) < 0)
                    goto fail;
            }
        }
        wb_puts(&w, "]");
    }
    wb_puts(&w, "}");
    if (w.oom) {
        fail(e, 500, "out of memory encoding the response");
        goto fail;
    }
    free(tmp);
    *out = w.buf;
    *len = w.len;
    return 0;
fail:
    free(tmp);
    free(w.buf);
    return -1;
}

int codec_encode_response(const char *model_name, const rnn_info *info, const codec_request *req,
                          const rnn_result *res, char **out, size_t *len, codec_error *e)
{
    if (req->padded)
        return encode_padded(model_name, info, req, res, out, len, e);
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
                 {CODEC_CELL, "cell", res->cell},
                 {CODEC_PREDICTIONS, "predictions", res->predictions}};
    const size_t O = (size_t)info->head_size;
    /* One reservation for everything still to come, at the numbers' longest: the loops below
     * then write without a bounds check or a reallocation. Pages past what is written are
     * never touched, so the slack costs address space, not memory. */
    size_t need = FF_ROW_SLACK + 1;
    for (size_t p = 0; p < 4; p++) {
        if (!(req->parts & parts[p].bit) || !parts[p].data)
            continue;
        need += strlen(parts[p].name) + 6;
        for (size_t i = 0; i < b->batch; i++)
            need += parts[p].bit == CODEC_OUTPUTS       ? rows_bound((size_t)b->lengths[i], DH)
                    : parts[p].bit == CODEC_PREDICTIONS ? rows_bound((size_t)b->lengths[i], O)
                                                        : rows_bound(LD, H);
    }
    if (wb_reserve(&w, need) < 0) {
        fail(e, 500, "out of memory encoding the response");
        goto fail;
    }
    for (size_t p = 0; p < 4; p++) {
        if (!(req->parts & parts[p].bit) || !parts[p].data)
            continue;
        wb_puts(&w, ",\"");
        wb_puts(&w, parts[p].name);
        wb_puts(&w, "\":[");
        size_t row = 0;
        for (size_t i = 0; i < b->batch; i++) {
            if (i)
                wb_puts(&w, ",");
            /* outputs and predictions: a row per step; hidden and cell: a row per layer */
            int per_step = parts[p].bit == CODEC_OUTPUTS || parts[p].bit == CODEC_PREDICTIONS;
            size_t rows = per_step ? (size_t)b->lengths[i] : LD;
            size_t n = parts[p].bit == CODEC_OUTPUTS       ? DH
                       : parts[p].bit == CODEC_PREDICTIONS ? O
                                                           : H;
            if (put_rows(&w, parts[p].data + row * n, rows, n, req->precision, parts[p].name, i,
                         e) < 0)
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
                     rnn_cell_describe(in->type)->name, "input_size", in->input_size, "hidden_size",
                     in->hidden_size, "num_layers", in->num_layers, "nonlinearity",
                     in->type == RNN_CELL_RNN ? json_string(rnn_nonlinearity_name(in->nonlinearity))
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
    /* Unwanted parts stay NULL: the engine then keeps them in scratch only. The head reads the
     * outputs, so they are kept whenever predictions are wanted. */
    const size_t O = (size_t)info->head_size;
    if (req->parts & (CODEC_OUTPUTS | CODEC_PREDICTIONS))
        res.outputs = malloc((n_out ? n_out : 1) * sizeof(float));
    if ((req->parts & CODEC_PREDICTIONS) &&
        !(res.predictions = malloc((req->steps * O + 1) * sizeof(float)))) {
        fail(&e, 503, "out of memory for the predictions of %zu steps", req->steps);
        goto fail;
    }
    if (req->parts & CODEC_HIDDEN)
        res.hidden = malloc((n_hid ? n_hid : 1) * sizeof(float));
    if (req->parts & CODEC_CELL)
        res.cell = malloc((n_cell ? n_cell : 1) * sizeof(float));
    if (((req->parts & (CODEC_OUTPUTS | CODEC_PREDICTIONS)) && !res.outputs) ||
        ((req->parts & CODEC_HIDDEN) && !res.hidden) || ((req->parts & CODEC_CELL) && !res.cell)) {
        fail(&e, 503, "out of memory for the results of %zu steps", req->steps);
        goto fail;
    }
    if (rnn_forward(model, b, &res, msg, sizeof msg) < 0) {
        fail(&e, 503, "forward pass failed: %s", msg);
        goto fail;
    }
    if (res.predictions)
        rnn_head_forward(model, res.outputs, req->steps, res.predictions);
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
    free(res.predictions);
    return status;
}
