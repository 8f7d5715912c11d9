/* test_jsonscan.c - Check suite for jsonscan: the reader's verdict (accept or reject) against
 * jansson's (json_loadb with JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, the flags the codec
 * used) on hand-picked edge cases and on a few hundred thousand generated and mutated documents;
 * every number of an accepted document against strtof; and the reader's own API. */
#include "rnnserve/jsonnum.h"
#include "rnnserve/jsonscan.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Under valgrind (make valgrind) the sweeps run a fifth of their iterations: memcheck learns
 * nothing new from the rest, and CI's time is shared. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define SWEEP_DIVISOR (RUNNING_ON_VALGRIND ? 5 : 1)
#endif
#endif
#ifndef SWEEP_DIVISOR
#define SWEEP_DIVISOR 1
#endif

#define JANSSON_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL)
/* Generated documents (each also mutated twice): ~2 s under ASan. */
#define GENERATED 60000
#define DOC_MAX 4096

/* ---- the two verdicts ----------------------------------------------------------------------- */

static bool jansson_accepts(const char *buf, size_t len)
{
    json_error_t err;
    json_t *v = json_loadb(buf, len, JANSSON_FLAGS, &err);
    json_decref(v);
    return v != NULL;
}

/* Walks one value at DEPTH as a consumer would, checking every number against strtof. */
static int walk(js_reader *r, int depth, size_t *numbers)
{
    switch (js_peek(r)) {
    case JS_ARRAY: {
        if (js_array_begin(r, depth) < 0)
            return -1;
        int rc;
        for (size_t n = 0; (rc = js_array_next(r, n)) > 0; n++)
            if (walk(r, depth + 1, numbers) < 0)
                return -1;
        return rc;
    }
    case JS_OBJECT: {
        js_object o;
        js_str key;
        int rc;
        if (js_object_begin(r, depth, &o) < 0)
            return -1;
        while ((rc = js_object_next(r, &o, &key)) > 0)
            if (walk(r, depth + 1, numbers) < 0)
                return -1;
        return rc;
    }
    case JS_NUMBER: {
        float f = 0;
        const char *a, *b;
        const int st = js_number(r, depth, &f, &a, &b);
        if (st < 0)
            return -1;
        char tok[512];
        const size_t n = (size_t)(b - a) < sizeof tok - 1 ? (size_t)(b - a) : sizeof tok - 1;
        memcpy(tok, a, n);
        tok[n] = '\0';
        const float want = strtof(tok, NULL);
        if ((size_t)(b - a) < sizeof tok - 1) {
            if (st == JN_OK && memcmp(&f, &want, sizeof f) != 0)
                ck_abort_msg("number \"%s\": %.9g, strtof %.9g", tok, (double)f, (double)want);
            if ((st == JN_RANGE) != (isinf(want) != 0))
                ck_abort_msg("number \"%s\": range verdict %d, strtof %g", tok, st, (double)want);
        }
        ++*numbers;
        return 0;
    }
    default:
        return js_skip(r, depth);
    }
}

/* The reader's verdict under the codec's rules (the top level must be an object or an array). */
static bool jsonscan_accepts(const char *buf, size_t len, size_t *numbers)
{
    js_reader r;
    js_init(&r, buf, len);
    const js_kind k = js_peek(&r);
    bool ok = false;
    if (k == JS_OBJECT || k == JS_ARRAY)
        ok = walk(&r, 1, numbers) == 0 && js_end(&r) == 0;
    else
        js_fail_here(&r, "'[' or '{' expected");
    if (!ok)
        ck_assert_msg(!js_ok(&r), "rejected without an error recorded");
    js_release(&r);
    return ok;
}

/* The input, printable, for a failure message (static buffer). */
static const char *show(const char *buf, size_t len)
{
    static char out[1200];
    size_t o = 0;
    for (size_t i = 0; i < len && o + 8 < sizeof out; i++) {
        const unsigned char c = (unsigned char)buf[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

/* jansson's one departure from RFC 8259 that the comparison met: its reader keeps a look-ahead
 * byte in a NUL-terminated buffer, so a NUL byte right after a number or a literal, pushed back,
 * reads as "buffer empty" and is skipped ("[1\0]" loads as [1]). jsonscan rejects that byte, as
 * the RFC does. Whether a disagreement is exactly that: jansson accepts, and the text without
 * its NUL bytes (which jansson could only have skipped that way) is what jsonscan accepts. */
static bool is_jansson_nul_quirk(const char *buf, size_t len)
{
    if (!memchr(buf, '\0', len))
        return false;
    char *t = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(t);
    size_t n = 0, numbers = 0;
    for (size_t i = 0; i < len; i++)
        if (buf[i] != '\0')
            t[n++] = buf[i];
    const bool ok = jsonscan_accepts(t, n, &numbers);
    free(t);
    return ok;
}

typedef struct {
    size_t compared, accepted, quirks, numbers;
} tally;

/* Aborts unless both readers give BUF[LEN] the same verdict (jansson's NUL quirk aside, which is
 * counted); returns jsonscan's. */
static bool same_verdict(const char *buf, size_t len, tally *t)
{
    const bool j = jansson_accepts(buf, len);
    const bool s = jsonscan_accepts(buf, len, &t->numbers);
    t->compared++;
    t->accepted += s;
    if (j && !s && is_jansson_nul_quirk(buf, len)) {
        t->quirks++;
        return s;
    }
    if (j != s)
        ck_abort_msg("jansson %s, jsonscan %s: \"%s\" (%zu bytes)", j ? "accepts" : "rejects",
                     s ? "accepts" : "rejects", show(buf, len), len);
    return s;
}

/* ---- hand-picked edge cases ---------------------------------------------------------------- */

START_TEST(test_edge_cases_agree_with_jansson)
{
    /* Each case with the verdict expected, so that a change on both sides shows too. */
    static const struct {
        const char *text;
        int len; /* -1: strlen */
        bool ok;
    } cases[] = {
        /* top level */
        {"{}", -1, true},
        {"[]", -1, true},
        {" \t\r\n[ ] \n", -1, true},
        {"", -1, false},
        {"   ", -1, false},
        {"1", -1, false},
        {"\"s\"", -1, false},
        {"null", -1, false},
        {"[] []", -1, false},
        {"[]x", -1, false},
        {"[]\0", 3, false},
        {"\xef\xbb\xbf[]", -1, false}, /* a BOM */
        {"\f[]", -1, false},
        {"[\v]", -1, false},
        {"[\xc2\xa0]", -1, false}, /* no-break space is not whitespace */
        /* arrays and objects */
        {"[1,]", -1, false},
        {"[,1]", -1, false},
        {"[1 2]", -1, false},
        {"[", -1, false},
        {"]", -1, false},
        {"{\"a\":1,}", -1, false},
        {"{,}", -1, false},
        {"{\"a\" 1}", -1, false},
        {"{\"a\":}", -1, false},
        {"{1:1}", -1, false},
        {"{\"a\":1 \"b\":2}", -1, false},
        {"{\"a\":1}}", -1, false},
        {"[{\"a\":[{}]}]", -1, true},
        /* duplicate keys, compared unescaped, at any depth, in small and large objects */
        {"{\"a\":1,\"a\":2}", -1, false},
        {"{\"a\":1,\"\\u0061\":2}", -1, false},
        {"{\"\\/\":1,\"/\":2}", -1, false},
        {"{\"\\u00e9\":1,\"\xc3\xa9\":2}", -1, false},
        {"{\"\":1,\"\":2}", -1, false},
        {"{\"a\":1,\"A\":2,\"a \":3}", -1, true},
        {"[{\"x\":{\"y\":1,\"y\":1}}]", -1, false},
        {"{\"a\":{\"b\":1},\"b\":{\"a\":1}}", -1, true},
        {"{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,"
         "\"k9\":9,\"k10\":10,\"k1\":11}",
         -1, false},
        {"{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,"
         "\"k9\":9,\"k10\":10,\"k11\":11}",
         -1, true},
        {"{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,"
         "\"k9\":{\"k9\":1,\"k9\":2},\"k10\":10}",
         -1, false},
        /* strings */
        {"[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]", -1, true},
        {"[\"\\a\"]", -1, false},
        {"[\"\\x41\"]", -1, false},
        {"[\"\\u00e9\\u20AC\"]", -1, true},
        {"[\"\\u00g9\"]", -1, false},
        {"[\"\\u12\"]", -1, false},
        {"[\"\\u0000\"]", -1, false},
        {"{\"a\\u0000\":1}", -1, false},
        {"[\"\\ud83d\\ude00\"]", -1, true},
        {"[\"\\ud83d\"]", -1, false},
        {"[\"\\ude00\"]", -1, false},
        {"[\"\\ud83d\\u0041\"]", -1, false},
        {"[\"\\ud83d\\\\ude00\"]", -1, false},
        {"[\"\\ud83dx\"]", -1, false},
        {"[\"a\x01\"]", -1, false},
        {"[\"a\tb\"]", -1, false},
        {"[\"a\nb\"]", -1, false},
        {"[\"a\x7f\"]", -1, true},
        {"[\"a\0b\"]", 7, false},
        /* a raw NUL anywhere outside a string, where jansson skips one after a number or a
         * literal: counted as its quirk by same_verdict */
        {"[1\0]", 4, false},
        {"[true\0]", 7, false},
        {"{\"a\":null\0}", 11, false},
        {"[1\0\0]", 5, false},
        {"[\"a\"\0]", 6, false},
        {"[\"unterminated]", -1, false},
        {"[\"\\", -1, false},
        /* UTF-8 */
        {"[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]", -1, true},
        {"[\"\xc0\x80\"]", -1, false},         /* overlong */
        {"[\"\xe0\x80\xaf\"]", -1, false},     /* overlong */
        {"[\"\xed\xa0\x80\"]", -1, false},     /* a surrogate */
        {"[\"\xf4\x90\x80\x80\"]", -1, false}, /* past U+10FFFF */
        {"[\"\xf4\x8f\xbf\xbf\"]", -1, true},  /* U+10FFFF */
        {"[\"\x80\"]", -1, false},
        {"[\"\xe2\x82\"]", -1, false},
        {"[\"\xff\"]", -1, false},
        {"[\xc3\xa9]", -1, false},
        {"[1]\xff", -1, false},
        /* numbers */
        {"[0,-0,1.5,-1e5,1E+5,1e-5,0.0e0]", -1, true},
        {"[01]", -1, false},
        {"[-01]", -1, false},
        {"[1.]", -1, false},
        {"[.5]", -1, false},
        {"[+1]", -1, false},
        {"[-]", -1, false},
        {"[1e]", -1, false},
        {"[1e+]", -1, false},
        {"[0x10]", -1, false},
        {"[NaN]", -1, false},
        {"[Infinity]", -1, false},
        {"[-Infinity]", -1, false},
        {"[1e39]", -1, true}, /* not a float32, but a number */
        {"[1e308]", -1, true},
        {"[1e309]", -1, false}, /* past a double: jansson's "real number overflow" */
        {"[-1.7976931348623159e308]", -1, false},
        {"[1.7976931348623157e308]", -1, true},
        {"[1e-400]", -1, true},
        {"[123456789012345678901234567890]", -1, true},
        /* literals */
        {"[true,false,null]", -1, true},
        {"[tru]", -1, false},
        {"[True]", -1, false},
        {"[nul]", -1, false},
        {"[truex]", -1, false},
        {"[true1]", -1, false},
        {"[nulll]", -1, false},
        {"{\"a\":null}", -1, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const size_t len = cases[i].len < 0 ? strlen(cases[i].text) : (size_t)cases[i].len;
        tally t = {0, 0, 0, 0};
        const bool ok = same_verdict(cases[i].text, len, &t);
        ck_assert_msg(ok == cases[i].ok, "\"%s\": %s, expected otherwise", show(cases[i].text, len),
                      ok ? "accepted" : "rejected");
    }
}
END_TEST

/* N nested arrays around INNER (and N closing brackets), or objects {"a": ...} when OBJ. */
static char *nested(size_t n, const char *inner, bool obj, size_t *len)
{
    const size_t open = obj ? 5 : 1, il = strlen(inner);
    char *b = malloc(n * (open + 1) + il + 1);
    ck_assert_ptr_nonnull(b);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(b + o, obj ? "{\"a\":" : "[", open);
        o += open;
    }
    memcpy(b + o, inner, il);
    o += il;
    for (size_t i = 0; i < n; i++)
        b[o++] = obj ? '}' : ']';
    *len = o;
    return b;
}

START_TEST(test_depth_limit_is_jansson_s)
{
    /* The top level is depth 1 and a scalar counts: 2048 empty levels pass, 2047 around a
     * number pass, one more of either fails, for arrays and objects alike. */
    static const struct {
        size_t n;
        const char *inner;
        bool ok;
    } cases[] = {
        {2047, "[]", true},    {2048, "[]", false},   {2047, "1", true},   {2048, "1", false},
        {2047, "{}", true},    {2048, "{}", false},   {2046, "[1]", true}, {2047, "[1]", false},
        {2047, "\"s\"", true}, {2048, "null", false}, {100000, "", false},
    };
    for (int obj = 0; obj <= 1; obj++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            size_t len;
            tally t = {0, 0, 0, 0};
            const size_t n = obj && cases[i].n == 100000 ? 20000 : cases[i].n;
            char *b = nested(n, cases[i].inner, obj, &len);
            const bool ok = same_verdict(b, len, &t);
            /* objects add one level of their own around "a"'s value, as arrays do */
            ck_assert_msg(ok == cases[i].ok, "%zu %s around \"%s\": %s", n,
                          obj ? "objects" : "arrays", cases[i].inner, ok ? "accepted" : "rejected");
            free(b);
        }
    }
    /* unbalanced: never closed */
    char *b = malloc(200000);
    ck_assert_ptr_nonnull(b);
    memset(b, '[', 200000);
    tally t = {0, 0, 0, 0};
    ck_assert(!same_verdict(b, 200000, &t));
    free(b);
}
END_TEST

/* ---- generated and mutated documents -------------------------------------------------------- */

typedef struct {
    char *b;
    size_t n, cap;
    uint64_t s;
} gen;

static uint64_t rnd(gen *g)
{
    g->s ^= g->s << 13;
    g->s ^= g->s >> 7;
    g->s ^= g->s << 17;
    return g->s;
}

static void put(gen *g, const char *s, size_t n)
{
    if (g->n + n > g->cap)
        return; /* the document is cut short: still a document to judge */
    memcpy(g->b + g->n, s, n);
    g->n += n;
}

static void puts_(gen *g, const char *s)
{
    put(g, s, strlen(s));
}

static void ws(gen *g)
{
    static const char *const w[] = {"", "", "", " ", "\n", "\t", "\r\n ", "  ", "\f", "\v"};
    const uint64_t r = rnd(g) % 64;
    puts_(g, r < 8 ? w[r] : "");
}

static void gen_string(gen *g)
{
    static const char *const pieces[] = {
        "a",
        "b",
        "inputs",
        "h0",
        "x y",
        "\\\"",
        "\\\\",
        "\\/",
        "\\b",
        "\\f",
        "\\n",
        "\\r",
        "\\t",
        "\\u0061",
        "\\u00e9",
        "\\u20ac",
        "\\uD83D\\uDE00",
        "\xc3\xa9",
        "\xe2\x82\xac",
        "\xf0\x9f\x98\x80",
        "\x7f",
        "\\u0000",
        "\\uD800",
        "\\uDC00",
        "\\uD800\\u0041",
        "\\x",
        "\\u12",
        "\x01",
        "\n",
        "\t",
        "\xc0\x80",
        "\xed\xa0\x80",
        "\xf4\x90\x80\x80",
        "\x80",
        "\xe2\x82",
        "\xff",
        "\"",
    };
    /* Mostly clean pieces (the first 20), now and then a bad one. */
    puts_(g, "\"");
    for (int n = (int)(rnd(g) % 4); n > 0; n--) {
        const size_t k = sizeof pieces / sizeof pieces[0];
        puts_(g, pieces[rnd(g) % 16 ? rnd(g) % 20 : rnd(g) % k]);
    }
    puts_(g, "\"");
}

static void gen_number(gen *g)
{
    static const char *const odd[] = {"01",
                                      "1.",
                                      ".5",
                                      "+1",
                                      "-",
                                      "1e",
                                      "1e400",
                                      "-1e400",
                                      "1e39",
                                      "NaN",
                                      "Infinity",
                                      "-0",
                                      "3.4028235e38",
                                      "3.4028236e38",
                                      "1e-46",
                                      "0e999999",
                                      "12345678901234567890123",
                                      "1E+2",
                                      "0.000001234567891"};
    char num[64];
    if (rnd(g) % 12 == 0) {
        puts_(g, odd[rnd(g) % (sizeof odd / sizeof odd[0])]);
        return;
    }
    const double v =
        ((double)(rnd(g) >> 11) / 9007199254740992.0 * 2 - 1) * pow(10, (double)(rnd(g) % 20) - 10);
    static const char *const fmts[] = {"%.9g", "%.17g", "%g", "%.3e", "%.0f"};
    snprintf(num, sizeof num, fmts[rnd(g) % 5], v);
    puts_(g, num);
}

static void gen_value(gen *g, int depth)
{
    /* Containers only near the top, and nothing once the buffer is full: the documents stay
     * small and the generator's recursion shallow. */
    const uint64_t r = rnd(g) % (depth > 4 || g->n >= g->cap ? 4 : 10);
    ws(g);
    if (r < 2) {
        gen_number(g);
    } else if (r < 3) {
        gen_string(g);
    } else if (r < 4) {
        static const char *const lit[] = {"true", "false", "null", "null", "tru", "nul", "True"};
        puts_(g, lit[rnd(g) % 16 ? rnd(g) % 4 : rnd(g) % 7]);
    } else if (r < 5 || r >= 8) {
        puts_(g, "[");
        for (int n = (int)(rnd(g) % 6), i = 0; i < n; i++) {
            if (i)
                puts_(g, ",");
            gen_value(g, depth + 1);
        }
        ws(g);
        puts_(g, "]");
    } else {
        /* Keys from a small pool, so that duplicates (also escaped ones) come up often; up to
         * twelve members, past the size where duplicates are found by sorting. */
        static const char *const keys[] = {
            "\"a\"",  "\"b\"",  "\"c\"",  "\"\\u0061\"", "\"\"",   "\"inputs\"", "\"k1\"", "\"k2\"",
            "\"k3\"", "\"k4\"", "\"k5\"", "\"k6\"",      "\"k7\"", "\"k8\"",     "\"k9\""};
        puts_(g, "{");
        const int n = (int)(rnd(g) % 13);
        const size_t pool = rnd(g) % 2 ? 4 : sizeof keys / sizeof keys[0];
        for (int i = 0; i < n; i++) {
            if (i)
                puts_(g, ",");
            ws(g);
            if (rnd(g) % 4 == 0)
                gen_string(g);
            else
                puts_(g, keys[rnd(g) % pool]);
            ws(g);
            puts_(g, ":");
            gen_value(g, depth + 1);
        }
        ws(g);
        puts_(g, "}");
    }
    ws(g);
}

static void mutate(gen *g)
{
    static const char interesting[] = "{}[]:,\"\\ 0123456789eE.-+tfnu\x80\xff\x00\x01";
    for (int m = 1 + (int)(rnd(g) % 3); m > 0 && g->n > 0; m--) {
        const size_t at = (size_t)(rnd(g) % g->n);
        const char c = rnd(g) % 4 ? interesting[rnd(g) % (sizeof interesting - 1)] : (char)rnd(g);
        switch (rnd(g) % 5) {
        case 0: /* replace a byte */
            g->b[at] = c;
            break;
        case 1: /* delete a byte */
            memmove(g->b + at, g->b + at + 1, g->n - at - 1);
            g->n--;
            break;
        case 2: /* insert a byte */
            if (g->n < g->cap) {
                memmove(g->b + at + 1, g->b + at, g->n - at);
                g->b[at] = c;
                g->n++;
            }
            break;
        case 3: /* cut the document short */
            g->n = at;
            break;
        default: { /* repeat a span */
            const size_t len = (size_t)(rnd(g) % 16);
            if (at + len <= g->n && g->n + len <= g->cap) {
                memmove(g->b + at + len, g->b + at, g->n - at);
                g->n += len;
            }
        }
        }
    }
}

START_TEST(test_generated_and_mutated_documents_agree_with_jansson)
{
    char *buf = malloc(DOC_MAX), *orig = malloc(DOC_MAX);
    ck_assert_ptr_nonnull(buf);
    ck_assert_ptr_nonnull(orig);
    gen g = {buf, 0, DOC_MAX, 0x243f6a8885a308d3u};
    tally t = {0, 0, 0, 0};
    for (int i = 0; i < GENERATED / SWEEP_DIVISOR; i++) {
        g.n = 0;
        /* mostly an object or an array at the top, as requests are */
        if (rnd(&g) % 8) {
            const bool obj = rnd(&g) % 2;
            puts_(&g, obj ? "{\"a\":" : "[");
            gen_value(&g, 2);
            puts_(&g, obj ? "}" : "]");
        } else {
            gen_value(&g, 1);
        }
        const size_t n = g.n;
        memcpy(orig, buf, n);
        same_verdict(buf, n, &t);
        for (int k = 0; k < 2; k++) {
            memcpy(buf, orig, n);
            g.n = n;
            mutate(&g);
            same_verdict(buf, g.n, &t);
        }
    }
    printf("jsonscan vs jansson: %zu documents compared: %zu accepted by both, %zu rejected by "
           "both, %zu accepted by jansson only through its NUL quirk; %zu numbers of accepted "
           "documents equal to strtof's\n",
           t.compared, t.accepted, t.compared - t.accepted - t.quirks, t.quirks, t.numbers);
    ck_assert_uint_gt(t.accepted, t.compared / 10);
    ck_assert_uint_gt(t.compared - t.accepted, t.compared / 10);
    free(buf);
    free(orig);
}
END_TEST

/* ---- the API -------------------------------------------------------------------------------- */

START_TEST(test_first_error_is_kept_with_its_position)
{
    const char *text = "{\"a\": [1, 2],\n  \"b\": [3, 4,]}";
    js_reader r;
    js_init(&r, text, strlen(text));
    ck_assert_int_eq(js_skip(&r, 1), -1);
    char msg[200];
    js_error_message(&r, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "line 2, column 14") && strstr(msg, "unexpected token near ']'"),
                  "%s", msg);
    ck_assert_int_eq(js_fail(&r, r.begin, "later"), -1);
    js_error_message(&r, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "line 2"), "the first error was replaced: %s", msg);
    ck_assert_int_eq(js_end(&r), -1);
    js_release(&r);

    /* Columns count characters, not bytes. */
    const char *u = "[\"\xc3\xa9\xc3\xa9\", x]";
    js_init(&r, u, strlen(u));
    ck_assert_int_eq(js_skip(&r, 1), -1);
    js_error_message(&r, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "column 8"), "%s", msg);
    js_release(&r);
}
END_TEST

START_TEST(test_strings_compare_and_copy_unescaped)
{
    const char *text = "[\"in\\u0070uts\", \"caf\\u00e9 \\ud83d\\ude00\\n\", \"plain\"]";
    js_reader r;
    js_str s;
    js_init(&r, text, strlen(text));
    ck_assert_int_eq(js_peek(&r), JS_ARRAY);
    ck_assert_int_eq(js_array_begin(&r, 1), 0);
    ck_assert_int_eq(js_array_next(&r, 0), 1);
    ck_assert_int_eq(js_string(&r, 2, &s), 0);
    ck_assert(s.esc);
    ck_assert(js_str_eq(&s, "inputs"));
    ck_assert(!js_str_eq(&s, "input"));
    ck_assert(!js_str_eq(&s, "inputss"));
    ck_assert_int_eq(js_array_next(&r, 1), 1);
    ck_assert_int_eq(js_string(&r, 2, &s), 0);
    char buf[32];
    js_str_copy(&s, buf, sizeof buf);
    ck_assert_str_eq(buf, "caf\xc3\xa9 \xf0\x9f\x98\x80\n");
    js_str_copy(&s, buf, 6); /* cut short, still terminated */
    ck_assert_str_eq(buf, "caf\xc3\xa9");
    ck_assert_int_eq(js_array_next(&r, 2), 1);
    ck_assert_int_eq(js_string(&r, 2, &s), 0);
    ck_assert(!s.esc);
    ck_assert(js_str_eq(&s, "plain"));
    ck_assert_int_eq(js_array_next(&r, 3), 0);
    ck_assert_int_eq(js_end(&r), 0);
    js_release(&r);
}
END_TEST

START_TEST(test_f32_array_reports_count_and_first_bad_element)
{
    const char *text = "[1, 2.5, \"x\", 1e39, [3], -0, 7]";
    js_reader r;
    js_init(&r, text, strlen(text));
    float dst[4] = {0, 0, 0, 0};
    size_t count;
    js_bad bad;
    ck_assert_int_eq(js_peek(&r), JS_ARRAY);
    ck_assert_int_eq(js_f32_array(&r, 1, dst, 4, &count, &bad), 0);
    ck_assert_uint_eq(count, 7);
    ck_assert(dst[0] == 1 && dst[1] == 2.5f);
    ck_assert_uint_eq(bad.index, 2);
    ck_assert_int_eq(bad.kind, JS_STRING);
    ck_assert_int_eq(js_end(&r), 0);
    js_release(&r);

    const char *range = "[0, 1e39]";
    js_init(&r, range, strlen(range));
    js_peek(&r);
    ck_assert_int_eq(js_f32_array(&r, 1, dst, 4, &count, &bad), 0);
    ck_assert_uint_eq(bad.index, 1);
    ck_assert_int_eq(bad.kind, JS_NUMBER);
    ck_assert_int_eq((int)(bad.tok_end - bad.tok), 4);
    ck_assert(jn_to_double(bad.tok, bad.tok_end) == 1e39);
    js_release(&r);

    const char *empty = "[ ]";
    js_init(&r, empty, strlen(empty));
    js_peek(&r);
    ck_assert_int_eq(js_f32_array(&r, 1, dst, 4, &count, &bad), 0);
    ck_assert_uint_eq(count, 0);
    ck_assert_uint_eq(bad.index, JS_NO_INDEX);
    js_release(&r);

    const char *broken = "[1, 2,]";
    js_init(&r, broken, strlen(broken));
    js_peek(&r);
    ck_assert_int_eq(js_f32_array(&r, 1, dst, 4, &count, &bad), -1);
    ck_assert(!js_ok(&r));
    js_release(&r);
}
END_TEST

static Suite *jsonscan_suite(void)
{
    Suite *s = suite_create("jsonscan");
    TCase *diff = tcase_create("against_jansson");
    tcase_set_timeout(diff, 120); /* ~2 s under ASan; the slack is for loaded CI machines */
    tcase_add_test(diff, test_edge_cases_agree_with_jansson);
    tcase_add_test(diff, test_depth_limit_is_jansson_s);
    tcase_add_test(diff, test_generated_and_mutated_documents_agree_with_jansson);
    suite_add_tcase(s, diff);

    TCase *api = tcase_create("api");
    tcase_add_test(api, test_first_error_is_kept_with_its_position);
    tcase_add_test(api, test_strings_compare_and_copy_unescaped);
    tcase_add_test(api, test_f32_array_reports_count_and_first_bad_element);
    suite_add_tcase(s, api);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(jsonscan_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
