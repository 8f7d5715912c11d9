/* diff_jsonscan.c - libFuzzer differential target: jsonscan's verdict on any input against
 * jansson's (json_loadb with JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, what the codec
 * used to parse requests with), and every number of an accepted document against strtof.
 *
 * Not one of `make fuzz`'s fuzz_<target>.c (a finding here is a disagreement, not a crash, and
 * the seeds are the codec target's). Build and run from the repository root:
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -fsanitize=fuzzer,address,undefined \
 *       -o build/diff_jsonscan tests/fuzz/diff_jsonscan.c src/jsonscan.c src/jsonnum.c \
 *       -ljansson -lm
 *   mkdir -p build/fuzz/work/jsonscan
 *   build/diff_jsonscan -max_total_time=300 -dict=tests/fuzz/codec.dict \
 *       build/fuzz/work/jsonscan tests/fuzz/corpus/codec
 *
 * The one difference allowed is jansson's NUL quirk: its reader keeps a look-ahead byte in a
 * NUL-terminated buffer, so a NUL byte right after a number or a literal is skipped ("[1\0]"
 * loads); RFC 8259 and jsonscan reject it. Such an input must read the same once its NUL bytes
 * are gone (jansson accepting means it skipped every one of them that way). */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnserve/jsonnum.h"
#include "rnnserve/jsonscan.h"

#define DIFF_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "diff_jsonscan: %s: ", #cond);                                         \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Walks one value, checking each number against strtof. */
static int walk(js_reader *r, int depth)
{
    switch (js_peek(r)) {
    case JS_ARRAY: {
        int rc;
        if (js_array_begin(r, depth) < 0)
            return -1;
        for (size_t n = 0; (rc = js_array_next(r, n)) > 0; n++)
            if (walk(r, depth + 1) < 0)
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
            if (walk(r, depth + 1) < 0)
                return -1;
        return rc;
    }
    case JS_NUMBER: {
        float f = 0;
        const char *a, *b;
        const int st = js_number(r, depth, &f, &a, &b);
        if (st < 0)
            return -1;
        char *tok = strndup(a, (size_t)(b - a));
        DIFF_CHECK(tok != NULL, "out of memory");
        const float want = strtof(tok, NULL);
        DIFF_CHECK(st == JN_OK ? memcmp(&f, &want, sizeof f) == 0 : isinf(want),
                   "number \"%.200s\": status %d, %.9g; strtof %.9g", tok, st, (double)f,
                   (double)want);
        free(tok);
        return 0;
    }
    default:
        return js_skip(r, depth);
    }
}

static bool jsonscan_accepts(const char *buf, size_t len)
{
    js_reader r;
    js_init(&r, buf, len);
    const js_kind k = js_peek(&r);
    const bool ok = (k == JS_OBJECT || k == JS_ARRAY) && walk(&r, 1) == 0 && js_end(&r) == 0;
    DIFF_CHECK(ok || !js_ok(&r) || (k != JS_OBJECT && k != JS_ARRAY), "rejected, no error");
    js_release(&r);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    json_error_t err;
    json_t *v = json_loadb(buf, size, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &err);
    const bool j = v != NULL;
    json_decref(v);
    const bool s = jsonscan_accepts(buf, size);
    if (j && !s && memchr(buf, '\0', size)) {
        char *t = malloc(size);
        DIFF_CHECK(t != NULL, "out of memory");
        size_t n = 0;
        for (size_t i = 0; i < size; i++)
            if (buf[i] != '\0')
                t[n++] = buf[i];
        DIFF_CHECK(jsonscan_accepts(t, n), "jansson accepts, jsonscan rejects, NULs aside too");
        free(t);
        return 0;
    }
    DIFF_CHECK(j == s, "jansson %s (%s), jsonscan %s", j ? "accepts" : "rejects", j ? "" : err.text,
               s ? "accepts" : "rejects");
    return 0;
}
