/* wire.c - what the wire formats share: error filling, the padded layout's bound, the state
 * transpose between the engine's (B, L*D, H) and PyTorch's [L*D][B][H], and the words of their
 * messages. One copy each, for v1 and v2 alike. */
#include "wire.h"

#include "rnnserve/jsonnum.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int wire_fail(wire_error *e, int status, const char *fmt, ...)
{
    va_list ap;
    e->status = status;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

int wire_scan(js_reader *js, const char *body, size_t len, int (*read_root)(void *ctx), void *ctx,
              wire_error *e)
{
    js_init(js, body, len);
    js->big_numbers = true;
    if (read_root(ctx) == 0)
        js_end(js);
    if (js_ok(js))
        return 0;
    char where[160];
    js_error_message(js, where, sizeof where);
    if (js->oom)
        return wire_fail(e, 500, "out of memory decoding the request");
    if (len == 0)
        return wire_fail(e, 400, "empty request body (expected a JSON object with \"inputs\")");
    return wire_fail(e, 400, "malformed JSON at %s", where);
}

void wire_first(wire_error *e, bool *set, int status, const char *fmt, ...)
{
    if (*set)
        return;
    va_list ap;
    e->status = status;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    *set = true;
}

size_t wire_max_len(const rnn_batch *b)
{
    size_t T = 0;
    for (size_t i = 0; i < b->batch; i++)
        T = (size_t)b->lengths[i] > T ? (size_t)b->lengths[i] : T;
    return T;
}

int wire_padding_check(const rnn_batch *b, size_t width, const char *avoid, wire_error *e)
{
    size_t steps = 0;
    for (size_t i = 0; i < b->batch; i++)
        steps += (size_t)b->lengths[i];
    const size_t T = wire_max_len(b);
    /* in doubles: B x T x width can pass size_t for a request that only claims it */
    const double padded = (double)b->batch * (double)T * (double)width;
    const double limit = 4.0 * (double)steps * (double)width > (double)WIRE_PAD_FLOOR
                             ? 4.0 * (double)steps * (double)width
                             : (double)WIRE_PAD_FLOOR;
    if (padded <= limit)
        return 0;
    return wire_fail(e, 413,
                     "the padded response would hold %.0f values (%zu sequences x %zu steps x "
                     "%zu), over the limit of %.0f (4 x its %zu unpadded values, and at least "
                     "%zu): %s",
                     padded, b->batch, T, width, limit, steps * width, WIRE_PAD_FLOOR, avoid);
}

void wire_states_to_layers(const float *src, size_t B, size_t LD, size_t H, float *dst)
{
    for (size_t i = 0; i < B; i++)
        for (size_t r = 0; r < LD; r++)
            memcpy(dst + (r * B + i) * H, src + (i * LD + r) * H, H * sizeof *dst);
}

void wire_states_from_layers(const float *src, size_t B, size_t LD, size_t H, float *dst)
{
    for (size_t i = 0; i < B; i++)
        for (size_t r = 0; r < LD; r++)
            memcpy(dst + (i * LD + r) * H, src + (r * B + i) * H, H * sizeof *dst);
}

const char *wire_number_text(const char *tok, const char *end, char *buf, size_t cap)
{
    const double v = jn_to_double(tok, end);
    if (isinf(v))
        snprintf(buf, cap, "%.*s", (int)(end - tok), tok);
    else
        snprintf(buf, cap, "%g", v);
    return buf;
}

int wire_read_whole(js_reader *js, int depth, double max, double *v)
{
    float f;
    const char *a, *b;
    if (js_number(js, depth, &f, &a, &b) < 0)
        return -1;
    *v = jn_to_double(a, b);
    return *v >= 0 && *v <= max && *v == floor(*v);
}

const char *wire_kind_name(js_kind k)
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

unsigned wire_parts_of(const rnn_info *info)
{
    return WIRE_OUTPUTS | WIRE_HIDDEN | (rnn_cell_describe(info->type)->has_cell ? WIRE_CELL : 0) |
           (info->head_size > 0 ? WIRE_PREDICTIONS : 0);
}

void wire_parts_list(const rnn_info *info, const char *const names[4], char *out, size_t cap)
{
    const unsigned have = wire_parts_of(info);
    size_t n = 0, k = 0;
    for (int i = 0; i < 4; i++)
        n += (have & (1u << i)) && names[i];
    out[0] = '\0';
    for (int i = 0; i < 4; i++) {
        if (!(have & (1u << i)) || !names[i])
            continue;
        const size_t used = strlen(out);
        snprintf(out + used, cap - used, "%s\"%s\"",
                 k == 0       ? ""
                 : k + 1 == n ? " or "
                              : ", ",
                 names[i]);
        k++;
    }
}
