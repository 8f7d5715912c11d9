/* buf.h - a growable byte buffer, and JSON written into it: the one way rnnserve writes JSON.
 *
 * Appends never fail visibly: the first allocation failure sets `oom`, later appends do nothing,
 * and the owner checks `oom` once at the end (as jansson's strbuffer does for its printer). */
#ifndef RNNSERVE_BUF_H
#define RNNSERVE_BUF_H

#include <stddef.h>

typedef struct {
    char *data; /* owned; NUL-terminated whenever len < cap */
    size_t len, cap;
    int oom;
} buf;

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }

/* Room for MORE bytes past len (data + len is then writable for MORE bytes); -1 (and oom set)
 * when it cannot be had. */
int buf_reserve(buf *b, size_t more);
void buf_append(buf *b, const void *p, size_t n);
void buf_puts(buf *b, const char *s);
void buf_putc(buf *b, char c);
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* S as a JSON string, quotes included, with the escapes RFC 8259 requires; bytes that are not
 * UTF-8 become U+FFFD (error messages quote what clients sent: the body stays JSON). */
void buf_json_string(buf *b, const char *s);
/* As buf_json_string for the N bytes at S. */
void buf_json_stringn(buf *b, const char *s, size_t n);
/* The contents, NUL-terminated, ownership passing to the caller (*len excludes the NUL), and B
 * emptied; NULL (B freed) when any append failed. */
char *buf_take(buf *b, size_t *len);
void buf_free(buf *b);

#endif
