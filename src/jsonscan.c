/* jsonscan.c - strict JSON reading with jansson's verdicts and no DOM. Owns the grammar, UTF-8 and
 * escape validation, the depth limit and duplicate-key detection for every request body; numbers
 * are left to jsonnum.c. The rules, and why they are jansson's, are in jsonscan.h. */
#include "rnnserve/jsonscan.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnserve/utf8.h"

/* Keys an object may have before a new key is no longer compared with each earlier one on the
 * spot; past it the object's keys are sorted once, when it closes. */
#define LINEAR_KEYS 8

/* Bytes a string holds as they are: printable ASCII (DEL included) but '"' and '\\'. */
static inline bool plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

void js_init(js_reader *r, const char *buf, size_t len)
{
    memset(r, 0, sizeof *r);
    /* An empty body may come as NULL (the server has nothing buffered): NULL + 0 is undefined
     * behaviour, and an error recorded at NULL would read as no error at all. */
    if (!buf)
        buf = "";
    r->begin = r->p = buf;
    r->end = buf + len;
}

void js_release(js_reader *r)
{
    free(r->keys);
    r->keys = NULL;
    r->nkeys = r->cap = 0;
}

/* The token at AT for a message: one structural character, or a run of printable ASCII up to
 * 20 bytes (jansson shows its token the same way); "" when there is nothing printable. */
static void excerpt(const js_reader *r, const char *at, char *buf, size_t cap)
{
    size_t n = 0;
    if (at < r->end && *at && strchr("{}[]:,", *at)) {
        buf[n++] = *at;
    } else {
        while (at + n < r->end && n < 20 && n + 1 < cap && at[n] > 0x20 && at[n] < 0x7f &&
               !strchr("{}[]:,\"", at[n]))
            n++;
        memcpy(buf, at, n);
    }
    buf[n] = '\0';
}

int js_fail(js_reader *r, const char *at, const char *fmt, ...)
{
    if (r->err_at)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
    r->err_at = at;
    return -1;
}

/* js_fail with jansson's "near 'token'" / "near end of file" suffix. */
static int fail_near(js_reader *r, const char *at, const char *what)
{
    char tok[24];
    if (at >= r->end)
        return js_fail(r, r->end, "%s near end of file", what);
    excerpt(r, at, tok, sizeof tok);
    if (!tok[0])
        return js_fail(r, at, "%s", what);
    return js_fail(r, at, "%s near '%s'", what, tok);
}

int js_fail_here(js_reader *r, const char *what)
{
    return fail_near(r, r->p, what);
}

static int fail_oom(js_reader *r)
{
    js_fail(r, r->p, "out of memory");
    r->oom = true;
    return -1;
}

void js_error_message(const js_reader *r, char *buf, size_t len)
{
    const char *at = r->err_at ? r->err_at : r->p;
    int line = 1, column = 1;
    for (const char *c = r->begin; c < at; c++) {
        if (*c == '\n') {
            line++;
            column = 1;
        } else if (((unsigned char)*c & 0xc0) != 0x80) {
            column++; /* count characters, not UTF-8 continuation bytes */
        }
    }
    snprintf(buf, len, "line %d, column %d: %s", line, column, r->err_at ? r->err : "no error");
}

static inline const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

static js_kind kind_of(const char *p, const char *end)
{
    if (p >= end)
        return JS_NONE;
    switch (*p) {
    case '{':
        return JS_OBJECT;
    case '[':
        return JS_ARRAY;
    case '"':
        return JS_STRING;
    case 't':
    case 'f':
        return JS_BOOL;
    case 'n':
        return JS_NULL;
    case '-':
        return JS_NUMBER;
    default:
        return *p >= '0' && *p <= '9' ? JS_NUMBER : JS_NONE;
    }
}

js_kind js_peek(js_reader *r)
{
    r->p = skip_ws(r->p, r->end);
    return kind_of(r->p, r->end);
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        const char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

/* Validates the string whose opening quote is at r->p; fills *out and moves past the closing
 * quote. 0, or -1. */
static int scan_string(js_reader *r, js_str *out)
{
    const char *p = r->p + 1, *const end = r->end;
    out->s = p;
    out->esc = false;
    for (;;) {
        while (p < end && plain((unsigned char)*p))
            p++;
        if (p >= end)
            return js_fail(r, end, "premature end of input in a string");
        const unsigned char c = (unsigned char)*p;
        if (c == '"')
            break;
        if (c == '\\') {
            out->esc = true;
            if (end - p < 2)
                return js_fail(r, end, "premature end of input in a string");
            const char e = p[1];
            if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
                e == 't') {
                p += 2;
                continue;
            }
            if (e != 'u')
                return js_fail(r, p, "invalid escape");
            const int v = end - p >= 6 ? hex4(p + 2) : -1;
            if (v < 0)
                return js_fail(r, p, "invalid escape");
            if (v == 0)
                return js_fail(r, p, "\\u0000 is not allowed in a string");
            if (v >= 0xdc00 && v <= 0xdfff)
                return js_fail(r, p, "invalid Unicode '\\u%04X' (a lone low surrogate)", v);
            if (v >= 0xd800 && v <= 0xdbff) {
                const int v2 = end - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8) : -1;
                if (v2 < 0xdc00 || v2 > 0xdfff)
                    return js_fail(r, p, "invalid Unicode '\\u%04X' (a high surrogate alone)", v);
                p += 12;
            } else {
                p += 6;
            }
            continue;
        }
        if (c < 0x20)
            return js_fail(r, p, "control character 0x%x in a string", c);
        const size_t n = utf8_seq_len((const unsigned char *)p, (const unsigned char *)end);
        if (!n)
            return js_fail(r, p, "unable to decode byte 0x%x", c);
        p += n;
    }
    out->len = (size_t)(p - out->s);
    r->p = p + 1;
    return 0;
}

/* Unescapes a validated string one byte at a time. */
typedef struct {
    const char *p, *end;
    unsigned char pend[4];
    int npend, ipend;
} unescaper;

static void unescaper_init(unescaper *u, const js_str *s)
{
    u->p = s->s;
    u->end = s->s + s->len;
    u->npend = u->ipend = 0;
}

/* The next byte, or -1 at the end. */
static int unescape_next(unescaper *u)
{
    if (u->ipend < u->npend)
        return u->pend[u->ipend++];
    if (u->p >= u->end)
        return -1;
    const char c = *u->p;
    if (c != '\\') {
        u->p++;
        return (unsigned char)c;
    }
    const char e = u->p[1];
    u->p += 2;
    switch (e) {
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'u':
        break;
    default:
        return (unsigned char)e; /* '"', '\\', '/' */
    }
    uint32_t v = (uint32_t)hex4(u->p);
    u->p += 4;
    if (v >= 0xd800 && v <= 0xdbff) {
        v = 0x10000 + ((v - 0xd800) << 10) + ((uint32_t)hex4(u->p + 2) - 0xdc00);
        u->p += 6;
    }
    /* UTF-8 of v: the first byte is returned now, the rest queued. */
    u->ipend = 0;
    if (v < 0x80) {
        u->npend = 0;
        return (int)v;
    }
    if (v < 0x800) {
        u->pend[0] = (unsigned char)(0x80 | (v & 0x3f));
        u->npend = 1;
        return (int)(0xc0 | (v >> 6));
    }
    if (v < 0x10000) {
        u->pend[0] = (unsigned char)(0x80 | ((v >> 6) & 0x3f));
        u->pend[1] = (unsigned char)(0x80 | (v & 0x3f));
        u->npend = 2;
        return (int)(0xe0 | (v >> 12));
    }
    u->pend[0] = (unsigned char)(0x80 | ((v >> 12) & 0x3f));
    u->pend[1] = (unsigned char)(0x80 | ((v >> 6) & 0x3f));
    u->pend[2] = (unsigned char)(0x80 | (v & 0x3f));
    u->npend = 3;
    return (int)(0xf0 | (v >> 18));
}

/* memcmp-like order of the unescaped strings. */
static int str_cmp(const js_str *a, const js_str *b)
{
    if (!a->esc && !b->esc) {
        const int c = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
        return c ? c : (a->len > b->len) - (a->len < b->len);
    }
    unescaper ua, ub;
    unescaper_init(&ua, a);
    unescaper_init(&ub, b);
    for (;;) {
        const int x = unescape_next(&ua), y = unescape_next(&ub);
        if (x != y || x < 0)
            return (x > y) - (x < y);
    }
}

bool js_str_eq(const js_str *s, const char *lit)
{
    const js_str l = {lit, strlen(lit), false};
    return str_cmp(s, &l) == 0;
}

void js_str_copy(const js_str *s, char *buf, size_t cap)
{
    unescaper u;
    unescaper_init(&u, s);
    size_t n = 0;
    for (int c; n + 1 < cap && (c = unescape_next(&u)) >= 0;)
        buf[n++] = (char)c;
    buf[n] = '\0';
}

static int depth_ok(js_reader *r, int depth)
{
    if (depth > JS_MAX_DEPTH)
        return fail_near(r, r->p, "maximum parsing depth reached");
    return 0;
}

int js_string(js_reader *r, int depth, js_str *out)
{
    if (!js_ok(r) || depth_ok(r, depth) < 0)
        return -1;
    return scan_string(r, out);
}

int js_number(js_reader *r, int depth, float *out, const char **tok, const char **tok_end)
{
    if (!js_ok(r) || depth_ok(r, depth) < 0)
        return -1;
    const char *start = r->p, *next;
    const jn_status st = jn_parse_f32(start, r->end, &next, out);
    if (st == JN_SYNTAX)
        return fail_near(r, start, "invalid token");
    if (st == JN_OVERFLOW && !r->big_numbers)
        return fail_near(r, start, "real number overflow");
    *tok = start;
    *tok_end = next;
    r->p = next;
    return (int)st;
}

int js_array_begin(js_reader *r, int depth)
{
    if (!js_ok(r) || depth_ok(r, depth) < 0)
        return -1;
    r->p++;
    return 0;
}

int js_array_next(js_reader *r, size_t n)
{
    if (!js_ok(r))
        return -1;
    const char *p = skip_ws(r->p, r->end);
    if (p < r->end && *p == ']') {
        r->p = p + 1;
        return 0;
    }
    if (n == 0) {
        r->p = p;
        return 1;
    }
    if (p < r->end && *p == ',') {
        r->p = skip_ws(p + 1, r->end);
        return 1;
    }
    return fail_near(r, p, "']' expected");
}

int js_object_begin(js_reader *r, int depth, js_object *o)
{
    if (!js_ok(r) || depth_ok(r, depth) < 0)
        return -1;
    r->p++;
    o->first = r->nkeys;
    return 0;
}

/* A repeated key, whose opening quote is at AT: named when it is short printable ASCII. */
static int fail_duplicate(js_reader *r, const char *at)
{
    size_t n = 1;
    while (at + n < r->end && n <= 21 && at[n] != '"' && at[n] >= 0x20 && at[n] < 0x7f &&
           at[n] != '\\')
        n++;
    if (at + n < r->end && at[n] == '"' && n <= 21)
        return js_fail(r, at, "duplicate object key near '%.*s'", (int)n + 1, at);
    return js_fail(r, at, "duplicate object key");
}

static int cmp_keys(const void *a, const void *b)
{
    const js_str *x = a, *y = b;
    const int c = str_cmp(x, y);
    return c ? c : (x->s > y->s) - (x->s < y->s);
}

/* Sorts the closing object's keys and fails at the earliest second occurrence of a key. */
static int check_sorted(js_reader *r, js_str *k, size_t n)
{
    qsort(k, n, sizeof *k, cmp_keys);
    const char *dup = NULL;
    for (size_t i = 1; i < n; i++)
        if (str_cmp(&k[i - 1], &k[i]) == 0 && (!dup || k[i].s < dup))
            dup = k[i].s;
    return dup ? fail_duplicate(r, dup - 1) : 0;
}

int js_object_next(js_reader *r, js_object *o, js_str *key)
{
    if (!js_ok(r))
        return -1;
    const size_t count = r->nkeys - o->first;
    const char *p = skip_ws(r->p, r->end);
    if (p < r->end && *p == '}') {
        r->p = p + 1;
        const int rc = count > LINEAR_KEYS ? check_sorted(r, r->keys + o->first, count) : 0;
        r->nkeys = o->first;
        return rc < 0 ? -1 : 0;
    }
    if (count > 0) {
        if (p >= r->end || *p != ',')
            return fail_near(r, p, "'}' expected");
        p = skip_ws(p + 1, r->end);
    }
    if (p >= r->end || *p != '"')
        return fail_near(r, p, "string or '}' expected");
    r->p = p;
    if (scan_string(r, key) < 0)
        return -1;
    if (count < LINEAR_KEYS) {
        for (size_t i = o->first; i < r->nkeys; i++)
            if (str_cmp(&r->keys[i], key) == 0)
                return fail_duplicate(r, p);
    }
    if (r->nkeys == r->cap) {
        const size_t cap = r->cap ? 2 * r->cap : 16;
        js_str *k = realloc(r->keys, cap * sizeof *k);
        if (!k)
            return fail_oom(r);
        r->keys = k;
        r->cap = cap;
    }
    r->keys[r->nkeys++] = *key;
    p = skip_ws(r->p, r->end);
    if (p >= r->end || *p != ':')
        return fail_near(r, p, "':' expected");
    r->p = skip_ws(p + 1, r->end);
    return 1;
}

static int skip_literal(js_reader *r)
{
    static const char *const words[] = {"true", "false", "null"};
    const char *p = r->p;
    for (size_t i = 0; i < 3; i++) {
        const size_t n = strlen(words[i]);
        if ((size_t)(r->end - p) >= n && memcmp(p, words[i], n) == 0) {
            r->p = p + n;
            return 0;
        }
    }
    return fail_near(r, p, "invalid token");
}

int js_skip(js_reader *r, int depth)
{
    if (!js_ok(r))
        return -1;
    switch (js_peek(r)) {
    case JS_OBJECT: {
        js_object o;
        js_str key;
        int rc;
        if (js_object_begin(r, depth, &o) < 0)
            return -1;
        while ((rc = js_object_next(r, &o, &key)) > 0)
            if (js_skip(r, depth + 1) < 0)
                return -1;
        return rc;
    }
    case JS_ARRAY: {
        int rc;
        if (js_array_begin(r, depth) < 0)
            return -1;
        for (size_t n = 0; (rc = js_array_next(r, n)) > 0; n++)
            if (js_skip(r, depth + 1) < 0)
                return -1;
        return rc;
    }
    case JS_STRING: {
        js_str s;
        return js_string(r, depth, &s);
    }
    case JS_NUMBER: {
        float f;
        const char *a, *b;
        return js_number(r, depth, &f, &a, &b) < 0 ? -1 : 0;
    }
    case JS_BOOL:
    case JS_NULL:
        return depth_ok(r, depth) < 0 ? -1 : skip_literal(r);
    case JS_NONE:
        break;
    }
    if (depth_ok(r, depth) < 0)
        return -1;
    if (r->p >= r->end)
        return fail_near(r, r->p, "premature end of input");
    const char c = *r->p;
    if (c == ']' || c == '}' || c == ',' || c == ':')
        return fail_near(r, r->p, "unexpected token");
    if ((unsigned char)c >= 0x80 &&
        !utf8_seq_len((const unsigned char *)r->p, (const unsigned char *)r->end))
        return js_fail(r, r->p, "unable to decode byte 0x%x", (unsigned char)c);
    return fail_near(r, r->p, "invalid token");
}

int js_end(js_reader *r)
{
    if (!js_ok(r))
        return -1;
    r->p = skip_ws(r->p, r->end);
    if (r->p < r->end)
        return fail_near(r, r->p, "end of file expected");
    return 0;
}

int js_f32_array(js_reader *r, int depth, float *dst, size_t cap, size_t *count, js_bad *bad)
{
    *count = 0;
    bad->index = JS_NO_INDEX;
    if (js_array_begin(r, depth) < 0)
        return -1;
    const char *p = skip_ws(r->p, r->end), *const end = r->end;
    if (p < end && *p == ']') {
        r->p = p + 1;
        return 0;
    }
    size_t n = 0;
    for (;;) {
        if (p < end && (*p == '-' || (*p >= '0' && *p <= '9')) && depth < JS_MAX_DEPTH) {
            const char *next;
            float f;
            const jn_status st = jn_parse_f32(p, end, &next, &f);
            if (st == JN_OK) {
                if (n < cap)
                    dst[n] = f;
            } else if (st == JN_RANGE || (st == JN_OVERFLOW && r->big_numbers)) {
                if (bad->index == JS_NO_INDEX)
                    *bad = (js_bad){n, JS_NUMBER, p, next};
            } else {
                r->p = p;
                return fail_near(r, p,
                                 st == JN_OVERFLOW ? "real number overflow" : "invalid token");
            }
            p = next;
        } else {
            r->p = p;
            const js_kind k = kind_of(p, end);
            if (js_skip(r, depth + 1) < 0)
                return -1;
            if (bad->index == JS_NO_INDEX)
                *bad = (js_bad){n, k, NULL, NULL};
            p = r->p;
        }
        n++;
        p = skip_ws(p, end);
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == ']') {
            r->p = p + 1;
            *count = n;
            return 0;
        }
        r->p = p;
        return fail_near(r, p, "']' expected");
    }
}
