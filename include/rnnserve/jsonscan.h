/* jsonscan.h - a strict pull reader of JSON text that accepts and rejects exactly what jansson
 * (json_loadb with JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL) does, without a DOM.
 *
 * The codec walks a request with it and keeps only what it needs: numbers go straight into the
 * caller's float arrays (4 bytes each, against ~40 for a jansson node), everything else is checked
 * and skipped. The rules are RFC 8259's plus jansson's choices: the top level must be an object or
 * an array; strings must be valid UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF) and may not hold U+0000, raw or escaped; an escaped surrogate must be a proper pair;
 * an object may not repeat a key (compared after unescaping); no value may sit deeper than
 * JS_MAX_DEPTH (the top level is depth 1, and scalars count); a number too large for a double is
 * an error. The first error is kept, with where it happened; every call after it fails. */
#ifndef RNNSERVE_JSONSCAN_H
#define RNNSERVE_JSONSCAN_H

#include <stdbool.h>
#include <stddef.h>

#include "rnnserve/jsonnum.h"

/* jansson's JSON_PARSER_MAX_DEPTH. */
#define JS_MAX_DEPTH 2048

typedef enum {
    JS_OBJECT,
    JS_ARRAY,
    JS_STRING,
    JS_NUMBER,
    JS_BOOL,
    JS_NULL,
    JS_NONE /* no value can start here (a stray character, or the end of the text) */
} js_kind;

/* A string's raw text between its quotes, already validated; borrowed from the input. */
typedef struct {
    const char *s;
    size_t len;
    bool esc; /* holds a backslash escape: compare and copy with the js_str_* functions */
} js_str;

typedef struct {
    const char *begin, *p, *end; /* the text, and the cursor */
    const char *err_at;          /* NULL until the first error */
    char err[112];               /* what that error was ("invalid token near 'tru'") */
    bool oom;                    /* the error was running out of memory */
    bool big_numbers;            /* set by the caller after js_init: a number beyond a double is
                                    a value out of range (js_number's JN_OVERFLOW, a bad element
                                    of js_f32_array), not jansson's "real number overflow", so
                                    that its message can name where it is */
    js_str *keys;                /* the keys of every open object, innermost last */
    size_t nkeys, cap;
} js_reader;

/* An open object: where its keys start in the reader's key stack. */
typedef struct {
    size_t first;
} js_object;

/* The first element of a js_f32_array that was not a float32: its index, and what it was
 * (JS_NUMBER: a number out of float32's range, or with big_numbers beyond a double's, whose text
 * is [tok, tok_end)). */
typedef struct {
    size_t index; /* JS_NO_INDEX when every element was a float32 */
    js_kind kind;
    const char *tok, *tok_end;
} js_bad;

#define JS_NO_INDEX ((size_t)-1)

/* Starts reading BUF[LEN] (not NUL-terminated). Nothing is allocated until an object is. */
void js_init(js_reader *r, const char *buf, size_t len);

/* Frees what the reader allocated (the key stack). */
void js_release(js_reader *r);

static inline bool js_ok(const js_reader *r)
{
    return r->err_at == NULL;
}

/* Records an error at AT (the first one wins) and returns -1. */
int js_fail(js_reader *r, const char *at, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* js_fail at the cursor, naming the token there: "WHAT near 'tok'" (or "near end of file"). */
int js_fail_here(js_reader *r, const char *what);

/* "line L, column C: what" for the recorded error (columns count characters, as jansson's). */
void js_error_message(const js_reader *r, char *buf, size_t len);

/* Skips whitespace and says what kind of value starts at the cursor; consumes nothing else. */
js_kind js_peek(js_reader *r);

/* Reads and discards one value of any kind sitting at DEPTH, checking all of it. 0, or -1. */
int js_skip(js_reader *r, int depth);

/* Checks that only whitespace follows the top-level value. 0, or -1. */
int js_end(js_reader *r);

/* Consumes the '[' of an array at DEPTH (js_peek said JS_ARRAY). 0, or -1. */
int js_array_begin(js_reader *r, int depth);

/* Call before each element, N being the number of elements read so far: returns 1 when an
 * element follows (its ',' consumed), 0 when the array ended (its ']' consumed), -1 on error. */
int js_array_next(js_reader *r, size_t n);

/* Consumes the '{' of an object at DEPTH (js_peek said JS_OBJECT). 0, or -1. */
int js_object_begin(js_reader *r, int depth, js_object *o);

/* Call before each member: returns 1 with its key in *key and the ':' consumed (the caller then
 * reads or skips the value, at the object's depth + 1), 0 when the object ended (its '}' consumed
 * and its keys found distinct), -1 on error, a repeated key included. */
int js_object_next(js_reader *r, js_object *o, js_str *key);

/* Reads a string value at DEPTH (js_peek said JS_STRING). 0, or -1. */
int js_string(js_reader *r, int depth, js_str *out);

/* Reads a number at DEPTH (js_peek said JS_NUMBER): JN_OK with *out set, or JN_RANGE (a number,
 * but not a float32), with its text in [*tok, *tok_end) either way; -1 on a syntax error or a
 * number beyond a double (JN_OVERFLOW instead when the reader's big_numbers is set). */
int js_number(js_reader *r, int depth, float *out, const char **tok, const char **tok_end);

/* The hot path: reads an array at DEPTH (js_peek said JS_ARRAY) that should hold only numbers.
 * Stores the first CAP elements that are float32 numbers at their index in dst (dst needs room
 * for CAP), sets *count to the number of elements, and describes in *bad the first element that
 * is not a float32; other values are checked and skipped. 0, or -1 on error. */
int js_f32_array(js_reader *r, int depth, float *dst, size_t cap, size_t *count, js_bad *bad);

/* Whether S, unescaped, is the NUL-terminated LIT. */
bool js_str_eq(const js_str *s, const char *lit);

/* Copies S unescaped into buf[cap] (cap >= 1), cut short if need be, NUL-terminated. */
void js_str_copy(const js_str *s, char *buf, size_t cap);

#endif
