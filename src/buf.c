/* buf.c - the growable byte buffer and the JSON string writer every JSON body goes through. */
#include "rnnserve/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnserve/utf8.h"

int buf_reserve(buf *b, size_t more)
{
    if (b->oom)
        return -1;
    if (more > (size_t)-1 / 2 - b->len - 1) {
        b->oom = 1;
        return -1;
    }
    if (b->len + more + 1 <= b->cap) /* one byte more for the NUL */
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *nb = realloc(b->data, cap);
    if (!nb) {
        b->oom = 1;
        return -1;
    }
    b->data = nb;
    b->cap = cap;
    return 0;
}

void buf_append(buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void buf_puts(buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_putc(buf *b, char c)
{
    buf_append(b, &c, 1);
}

void buf_printf(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        buf_append(b, small, (size_t)n);
        return;
    }
    if (buf_reserve(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void buf_json_stringn(buf *b, const char *s, size_t n)
{
    /* at most 6 bytes out per byte in ("\u001f", "\ufffd"), plus the quotes */
    if (n > ((size_t)-1 - 8) / 6 || buf_reserve(b, n * 6 + 2) < 0)
        return;
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    char *o = b->data + b->len;
    *o++ = '"';
    while (p < end) {
        size_t k;
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = (char)*p++;
        } else if (*p < 0x20) {
            o += sprintf(o, "\\u%04x", *p++);
        } else if (*p < 0x80) {
            *o++ = (char)*p++;
        } else if ((k = utf8_seq_len(p, end)) > 0) {
            memcpy(o, p, k);
            o += k;
            p += k;
        } else {
            memcpy(o, "\\ufffd", 6);
            o += 6;
            p++;
        }
    }
    *o++ = '"';
    *o = '\0';
    b->len = (size_t)(o - b->data);
}

void buf_json_string(buf *b, const char *s)
{
    buf_json_stringn(b, s, strlen(s));
}

char *buf_take(buf *b, size_t *len)
{
    if (b->oom || buf_reserve(b, 0) < 0) {
        buf_free(b);
        return NULL;
    }
    char *d = b->data;
    d[b->len] = '\0';
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

void buf_free(buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}
