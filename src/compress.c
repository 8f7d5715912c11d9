/* compress.c - HTTP content codings over zlib (see compress.h).
 *
 * Owns the two header grammars (Content-Encoding, Accept-Encoding), the inflater's member and
 * flavour detection and its memory bound, and the response compressor's speed/size trade-off:
 * zlib level 1 for small bodies, rnnserve's own literal-only deflate encoder (src/czhuff.c) for
 * large ones, zlib again for large ones too random for that to pay. Inflating is zlib's alone. */
#include "rnnserve/compress.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "czhuff.h"

/* Level 1, not zlib's default 6. On a 1.8 MB response of 7-digit floats ([[0.1234567,
 * -0.7654321, ...], ...], 16 per row) level 1 took 18.5 ms (97 MB/s) for a ratio of 2.15, level
 * 6 took 134 ms (13 MB/s) for 2.39 (best of 5, 2026-12-01, the 2-core development machine). The
 * 85 KB more that level 6 saves cost 115 ms of a compute-bound server's CPU, and arrive sooner
 * only on a link slower than ~6 Mbit/s: a model server's clients sit closer than that. */
#define CZ_LEVEL 1
/* Inflated bytes asked of zlib per call: enough to amortise the call, small next to any cap. */
#define CZ_STEP (64u << 10)

const char *cz_coding_name(cz_coding c)
{
    return c == CZ_GZIP ? "gzip" : c == CZ_DEFLATE ? "deflate" : "identity";
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 9110's tchar: what a coding name may hold. */
static int is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The coding NAME[n] names (x-gzip is gzip's old name), or -1 for one rnnserve does not know. */
static int coding_of(const char *name, size_t n)
{
    if ((n == 4 && strncasecmp(name, "gzip", 4) == 0) ||
        (n == 6 && strncasecmp(name, "x-gzip", 6) == 0))
        return CZ_GZIP;
    if (n == 7 && strncasecmp(name, "deflate", 7) == 0)
        return CZ_DEFLATE;
    if (n == 8 && strncasecmp(name, "identity", 8) == 0)
        return CZ_IDENTITY;
    return -1;
}

int cz_parse_content_encoding(const char *value, cz_coding *out, char *err, size_t errlen)
{
    const char *name = NULL;
    size_t name_len = 0, count = 0;
    *out = CZ_IDENTITY;
    /* A list, whose empty elements RFC 9110 section 5.6.1 says to ignore. */
    for (const char *p = value; *p;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && is_ows(*a))
            a++;
        while (b > a && is_ows(b[-1]))
            b--;
        if (b > a) {
            name = a;
            name_len = (size_t)(b - a);
            count++;
        }
        p = *end ? end + 1 : end;
    }
    if (count == 0)
        return 0;
    if (count > 1) {
        snprintf(err, errlen, "stacked Content-Encodings are not supported: \"%.100s\"", value);
        return -1;
    }
    int c = coding_of(name, name_len);
    if (c < 0) {
        snprintf(err, errlen,
                 "unsupported Content-Encoding \"%.*s\" (supported: gzip, deflate, identity)",
                 (int)(name_len > 100 ? 100 : name_len), name);
        return -1;
    }
    *out = (cz_coding)c;
    return 0;
}

/* RFC 9110's qvalue ("0" ["." 0*3DIGIT] / "1" ["." 0*3"0"]) at S[n], in thousandths; -1 when
 * it is not one. */
static int parse_qvalue(const char *s, size_t n)
{
    if (n == 0 || (s[0] != '0' && s[0] != '1') || (n > 1 && s[1] != '.') || n > 5)
        return -1;
    int q = (s[0] - '0') * 1000, scale = 100;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        q += (s[i] - '0') * scale;
    }
    return q > 1000 ? -1 : q;
}

/* One Accept-Encoding element, E[n] trimmed: its coding name (*name, *name_len) and weight in
 * thousandths (1000 without one), or -1 when it does not parse. */
static int parse_element(const char *e, size_t n, const char **name, size_t *name_len)
{
    size_t i = 0;
    while (i < n && is_tchar(e[i]))
        i++;
    if (i == 0)
        return -1;
    *name = e;
    *name_len = i;
    while (i < n && is_ows(e[i]))
        i++;
    if (i == n)
        return 1000;
    if (e[i++] != ';')
        return -1;
    while (i < n && is_ows(e[i]))
        i++;
    if (n - i < 2 || (e[i] != 'q' && e[i] != 'Q') || e[i + 1] != '=')
        return -1;
    return parse_qvalue(e + i + 2, n - i - 2);
}

int cz_choose_encoding(const char *accept, cz_coding *out)
{
    /* Thousandths per coding, -1 while not listed: [CZ_IDENTITY], [CZ_GZIP], [CZ_DEFLATE], and
     * "*" at index 3. */
    int q[4] = {-1, -1, -1, -1};
    *out = CZ_IDENTITY;
    if (!accept)
        return 0;
    for (const char *p = accept; *p;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && is_ows(*a))
            a++;
        while (b > a && is_ows(b[-1]))
            b--;
        p = *end ? end + 1 : end;
        const char *name;
        size_t name_len;
        int w = b > a ? parse_element(a, (size_t)(b - a), &name, &name_len) : -1;
        if (w < 0)
            continue;
        int c = name_len == 1 && name[0] == '*' ? 3 : coding_of(name, name_len);
        /* Listed twice: the kinder weight, as a client cannot mean both. */
        if (c >= 0 && w > q[c])
            q[c] = w;
    }
    int star = q[3];
    int qg = q[CZ_GZIP] >= 0 ? q[CZ_GZIP] : star > 0 ? star : 0;
    int qd = q[CZ_DEFLATE] >= 0 ? q[CZ_DEFLATE] : star > 0 ? star : 0;
    int best_q = qg >= qd ? qg : qd;
    cz_coding best = qg >= qd ? CZ_GZIP : CZ_DEFLATE;
    /* Identity unlisted is acceptable unless "*;q=0" excludes it (RFC 9110 section 12.5.3). */
    int qi = q[CZ_IDENTITY] >= 0 ? q[CZ_IDENTITY] : star == 0 ? 0 : -1;
    if (best_q > 0 && !(q[CZ_IDENTITY] >= 0 && qi > best_q)) {
        *out = best;
        return 0;
    }
    return qi == 0 ? -1 : 0;
}

int cz_worth_compressing(size_t n)
{
    return n >= CZ_MIN_COMPRESS_BYTES;
}

int cz_compress(cz_coding c, const void *in, size_t len, buf *out, char *err, size_t errlen)
{
    z_stream zs;
    size_t start = out->len, left = len;
    const unsigned char *p = in;
    memset(&zs, 0, sizeof zs);
    if (c == CZ_IDENTITY) {
        snprintf(err, errlen, "cz_compress: identity is not a compression");
        return -1;
    }
    if (len >= CZ_HUFFMAN_FROM) {
        int rc = czh_compress(c, in, len, 0, out);
        if (rc < 0) {
            snprintf(err, errlen, "out of memory compressing %zu bytes", len);
            return -1;
        }
        if (rc == 0)
            return 0;
        /* Too random to save much: zlib (stored blocks, mostly). */
    }
    /* windowBits 15 + 16 asks zlib for the gzip wrapper; 15 alone for the zlib one. */
    if (deflateInit2(&zs, CZ_LEVEL, Z_DEFLATED, c == CZ_GZIP ? 15 + 16 : 15, 8,
                     len >= CZ_HUFFMAN_FROM ? Z_HUFFMAN_ONLY : Z_DEFAULT_STRATEGY) != Z_OK) {
        snprintf(err, errlen, "out of memory compressing %zu bytes", len);
        return -1;
    }
    /* deflateBound is enough for one deflate call to finish the stream. */
    size_t bound = deflateBound(&zs, len > ULONG_MAX ? ULONG_MAX : (uLong)len);
    for (int rc = Z_OK; rc != Z_STREAM_END;) {
        if (zs.avail_in == 0 && left > 0) {
            zs.next_in = (Bytef *)p;
            zs.avail_in = left > UINT_MAX ? UINT_MAX : (uInt)left;
            p += zs.avail_in;
            left -= zs.avail_in;
        }
        if (out->cap - out->len <= 1 && buf_reserve(out, bound > CZ_STEP ? bound : CZ_STEP) < 0) {
            snprintf(err, errlen, "out of memory compressing %zu bytes", len);
            goto fail;
        }
        size_t spare = out->cap - out->len - 1;
        uInt give = spare > UINT_MAX ? UINT_MAX : (uInt)spare;
        zs.next_out = (Bytef *)out->data + out->len;
        zs.avail_out = give;
        rc = deflate(&zs, left > 0 ? Z_NO_FLUSH : Z_FINISH);
        out->len += give - zs.avail_out;
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
            snprintf(err, errlen, "compressing the body failed: %s", zs.msg ? zs.msg : "zlib");
            goto fail;
        }
    }
    deflateEnd(&zs);
    out->data[out->len] = '\0';
    return 0;
fail:
    deflateEnd(&zs);
    out->len = start;
    if (out->data && out->len < out->cap)
        out->data[out->len] = '\0';
    return -1;
}

/* Where an inflater is in its body. */
enum {
    PH_LOOK,   /* reading 2 bytes to decide: zlib or raw deflate, or a next gzip member */
    PH_STREAM, /* inside a stream */
    PH_DONE,   /* after the deflate stream: any byte more is trailing garbage */
    PH_FAILED, /* an error was returned: every call returns it again */
};

struct cz_inflater {
    z_stream zs;
    cz_coding coding;
    int zinit; /* inflateInit2 was called */
    int phase;
    unsigned char head[2];
    size_t nhead;
    size_t cap, total; /* inflated bytes allowed, and so far */
    int status;
    char err[192];
};

cz_inflater *cz_inflater_new(cz_coding c, size_t cap)
{
    if (c != CZ_GZIP && c != CZ_DEFLATE)
        return NULL;
    cz_inflater *z = calloc(1, sizeof *z);
    if (!z)
        return NULL;
    z->coding = c;
    z->cap = cap;
    /* gzip starts at once (zlib checks its magic); deflate first looks at its first 2 bytes. */
    if (c == CZ_GZIP) {
        if (inflateInit2(&z->zs, 15 + 16) != Z_OK) {
            free(z);
            return NULL;
        }
        z->zinit = 1;
        z->phase = PH_STREAM;
    }
    return z;
}

void cz_inflater_free(cz_inflater *z)
{
    if (!z)
        return;
    if (z->zinit)
        inflateEnd(&z->zs);
    free(z);
}

size_t cz_inflated_bytes(const cz_inflater *z)
{
    return z->total;
}

/* Records the error every later call returns. */
__attribute__((format(printf, 3, 4))) static int fail(cz_inflater *z, int status, const char *fmt,
                                                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(z->err, sizeof z->err, fmt, ap);
    va_end(ap);
    z->status = status;
    z->phase = PH_FAILED;
    return -1;
}

/* Makes room for at least one inflated byte past OUT's length and its NUL, without letting its
 * capacity pass CEIL: doubling (as buf_reserve does) would let a body inflating to CAP bytes hold
 * up to twice that. */
static int grow(buf *out, size_t ceil)
{
    if (out->oom)
        return -1;
    if (out->cap >= out->len + 2)
        return 0;
    size_t want = out->cap < CZ_STEP ? CZ_STEP : out->cap * 2;
    if (want > ceil)
        want = ceil;
    char *nd = realloc(out->data, want);
    if (!nd) {
        out->oom = 1;
        return -1;
    }
    nd[out->len] = '\0'; /* buf's promise, should nothing more be inflated */
    out->data = nd;
    out->cap = want;
    return 0;
}

/* Inflates IN[len] inside a stream; returns the bytes consumed (fewer than LEN when the stream
 * ended), or -1 after fail(). */
static long run(cz_inflater *z, const unsigned char *in, size_t len, buf *out)
{
    const char *what = cz_coding_name(z->coding);
    size_t used = 0;
    for (;;) {
        if (z->zs.avail_in == 0 && used < len) {
            z->zs.next_in = (Bytef *)in + used;
            z->zs.avail_in = len - used > UINT_MAX ? UINT_MAX : (uInt)(len - used);
            used += z->zs.avail_in;
        }
        size_t room = z->cap - z->total, give;
        unsigned char probe;
        if (room == 0) {
            /* At the cap: one byte of scratch tells whether the stream holds more. */
            z->zs.next_out = &probe;
            give = 1;
        } else {
            if (grow(out, out->len + room + 1) < 0)
                return fail(z, 500, "out of memory inflating the body");
            give = out->cap - out->len - 1;
            give = give < room ? give : room;
            give = give < UINT_MAX ? give : UINT_MAX;
            z->zs.next_out = (Bytef *)out->data + out->len;
        }
        z->zs.avail_out = (uInt)give;
        uInt had = z->zs.avail_in;
        int rc = inflate(&z->zs, Z_NO_FLUSH);
        size_t got = give - z->zs.avail_out;
        if (room == 0 && got > 0)
            return fail(z, 413, "inflated body exceeds max_body_bytes %zu", z->cap);
        out->len += got;
        z->total += got;
        if (got)
            out->data[out->len] = '\0';
        if (rc == Z_STREAM_END) {
            long consumed = (long)(used - z->zs.avail_in);
            z->zs.avail_in = 0;
            z->phase = z->coding == CZ_GZIP ? PH_LOOK : PH_DONE;
            z->nhead = 0;
            return consumed;
        }
        if (rc == Z_NEED_DICT)
            return fail(z, 400, "%s body is corrupt: it needs a preset dictionary", what);
        if (rc == Z_DATA_ERROR)
            return fail(z, 400, "%s body is corrupt: %s", what, z->zs.msg ? z->zs.msg : "bad data");
        if (rc == Z_MEM_ERROR)
            return fail(z, 500, "out of memory inflating the body");
        /* Z_OK or Z_BUF_ERROR: go on while zlib has input, or filled all the room it was given. */
        if (z->zs.avail_in == 0 && used == len && z->zs.avail_out > 0)
            return (long)len;
        /* zlib promises progress with input and room; were it to break that, no loop forever. */
        if (got == 0 && z->zs.avail_in == had)
            return fail(z, 500, "inflating the body made no progress (zlib %d)", rc);
    }
}

/* zlib's 2-byte header (RFC 1950 section 2.2): deflate method, a window zlib takes, and the
 * check bits. Raw deflate passes this test by chance only for an uncompressed first block of
 * one exact length, which is how curl, Chromium and Firefox tell the two apart too. */
static int is_zlib_header(const unsigned char h[2])
{
    return (h[0] & 0x0f) == 8 && (h[0] >> 4) <= 7 && ((unsigned)h[0] << 8 | h[1]) % 31 == 0;
}

/* Takes lookahead bytes from IN[len] and, once there are 2, starts the stream they begin;
 * returns the bytes taken from IN, or -1 after fail(). */
static long look(cz_inflater *z, const unsigned char *in, size_t len, buf *out)
{
    const char *what = cz_coding_name(z->coding);
    size_t take = 2 - z->nhead < len ? 2 - z->nhead : len;
    memcpy(z->head + z->nhead, in, take);
    z->nhead += take;
    if (z->nhead < 2)
        return (long)take;
    if (z->coding == CZ_GZIP) {
        /* After a member: a next one (RFC 1952 section 2.2), or garbage. */
        if (z->head[0] != 0x1f || z->head[1] != 0x8b)
            return fail(z, 400, "gzip body has trailing bytes after its end");
        if (inflateReset(&z->zs) != Z_OK)
            return fail(z, 500, "out of memory inflating the body");
    } else {
        if (inflateInit2(&z->zs, is_zlib_header(z->head) ? 15 : -15) != Z_OK)
            return fail(z, 500, "out of memory inflating the body");
        z->zinit = 1;
    }
    z->phase = PH_STREAM;
    long used = run(z, z->head, 2, out);
    if (used < 0)
        return -1;
    /* Only raw deflate's empty final block ("\3\0") ends within 2 bytes. */
    if (used < 2)
        return fail(z, 400, "%s body has trailing bytes after its end", what);
    return (long)take;
}

int cz_inflate(cz_inflater *z, const void *in, size_t len, buf *out, int *status, char *err,
               size_t errlen)
{
    const unsigned char *p = in;
    while (len > 0 && z->phase != PH_FAILED) {
        long used = 0;
        if (z->phase == PH_LOOK)
            used = look(z, p, len, out);
        else if (z->phase == PH_STREAM)
            used = run(z, p, len, out);
        else
            used =
                fail(z, 400, "%s body has trailing bytes after its end", cz_coding_name(z->coding));
        if (used < 0)
            break;
        p += used;
        len -= (size_t)used;
    }
    if (z->phase != PH_FAILED)
        return 0;
    *status = z->status;
    snprintf(err, errlen, "%s", z->err);
    return -1;
}

int cz_inflate_end(cz_inflater *z, int *status, char *err, size_t errlen)
{
    const char *what = cz_coding_name(z->coding);
    if (z->phase == PH_STREAM || (z->phase == PH_LOOK && !z->zinit))
        fail(z, 400, "%s body ends before its stream does", what);
    else if (z->phase == PH_LOOK && z->nhead > 0)
        fail(z, 400, "%s body has trailing bytes after its end", what);
    if (z->phase != PH_FAILED)
        return 0;
    *status = z->status;
    snprintf(err, errlen, "%s", z->err);
    return -1;
}
