/* test_compress.c - the content codings (src/compress.c): bodies inflate back to what was
 * compressed whatever the split, a zip bomb stops at the cap with 413 holding no more than the cap,
 * each kind of bad body has its named 400, and the two header grammars pick what RFC 9110 says.
 * The literal-only encoder for large bodies (src/czhuff.c) writes streams that zlib's inflate and
 * cz_inflater both read back, from any bytes, never bigger than zlib would make them. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../src/czhuff.h"
#include "rnnserve/compress.h"
#include "testutil.h"

/* A JSON-ish body of N bytes, compressible the way responses are. */
static char *sample(size_t n)
{
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    unsigned st = 7;
    for (size_t i = 0; i < n; i++) {
        st = st * 1664525u + 1013904223u;
        s[i] = "0123456789.,-[]"[(st >> 16) % 15];
    }
    s[n] = '\0';
    return s;
}

/* IN[len] compressed by zlib itself at LEVEL and STRATEGY with window bits WBITS (31 gzip, 15
 * zlib, -15 raw), into a new buffer of *out_len bytes: an encoder independent of cz_compress. */
static unsigned char *zlib_compress_with(int level, int strategy, int wbits, const void *in,
                                         size_t len, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    ck_assert_int_eq(deflateInit2(&zs, level, Z_DEFLATED, wbits, 8, strategy), Z_OK);
    size_t cap = deflateBound(&zs, len);
    unsigned char *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *out_len = zs.total_out;
    deflateEnd(&zs);
    return out;
}

static unsigned char *zlib_compress(int wbits, const void *in, size_t len, size_t *out_len)
{
    return zlib_compress_with(6, Z_DEFAULT_STRATEGY, wbits, in, len, out_len);
}

typedef struct {
    int rc, status;
    char err[256];
    buf out;
} result;

/* Inflates IN[len] as C under CAP, fed CHUNK bytes at a time (then cz_inflate_end). The
 * caller buf_free()s r->out. */
static void inflate_all(cz_coding c, size_t cap, const void *in, size_t len, size_t chunk,
                        result *r)
{
    memset(r, 0, sizeof *r);
    cz_inflater *z = cz_inflater_new(c, cap);
    ck_assert_ptr_nonnull(z);
    const char *p = in;
    for (size_t off = 0; off < len && r->rc == 0; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        r->rc = cz_inflate(z, p + off, n, &r->out, &r->status, r->err, sizeof r->err);
        ck_assert_msg(r->out.len <= cap, "%zu inflated bytes past the cap %zu", r->out.len, cap);
    }
    if (r->rc == 0)
        r->rc = cz_inflate_end(z, &r->status, r->err, sizeof r->err);
    cz_inflater_free(z);
}

static void expect_inflates_to(cz_coding c, const void *in, size_t len, size_t chunk,
                               const void *want, size_t want_len)
{
    result r;
    inflate_all(c, want_len + 100, in, len, chunk, &r);
    ck_assert_msg(r.rc == 0, "chunk %zu: %s", chunk, r.err);
    ck_assert_uint_eq(r.out.len, want_len);
    ck_assert_msg(memcmp(r.out.data, want, want_len) == 0, "chunk %zu: other bytes", chunk);
    buf_free(&r.out);
}

static void expect_error(cz_coding c, const void *in, size_t len, size_t chunk, int status,
                         const char *message)
{
    result r;
    inflate_all(c, 1 << 20, in, len, chunk, &r);
    ck_assert_msg(r.rc == -1, "accepted, wanted \"%s\"", message);
    ck_assert_int_eq(r.status, status);
    ck_assert_msg(strstr(r.err, message) != NULL, "\"%s\", wanted \"%s\"", r.err, message);
    buf_free(&r.out);
}

/* A fixed-seed PRNG (xorshift32) for the encoder's test bodies. */
static unsigned next_rand(unsigned *st)
{
    *st ^= *st << 13;
    *st ^= *st >> 17;
    *st ^= *st << 5;
    return *st;
}

/* About N bytes (*len exactly) of JSON like the server's float outputs: rows of 16 numbers of
 * 7 to 9 digits, half of them negative ([[0.12345678,-0.9876543,...],...]). */
static char *float_text(size_t n, size_t *len)
{
    char *s = malloc(n + 512); /* the last row may pass N by one row's ~220 bytes */
    ck_assert_ptr_nonnull(s);
    unsigned st = 12345;
    size_t i = 0;
    s[i++] = '[';
    while (i < n) {
        s[i++] = '[';
        for (int k = 0; k < 16; k++) {
            unsigned r = next_rand(&st);
            if (k)
                s[i++] = ',';
            if (r & 1)
                s[i++] = '-';
            s[i++] = '0';
            s[i++] = '.';
            for (unsigned d = 0, nd = 7 + (r >> 1) % 3; d < nd; d++)
                s[i++] = (char)('0' + next_rand(&st) % 10);
        }
        s[i++] = ']';
        s[i++] = ',';
    }
    s[i - 1] = ']';
    s[i] = '\0';
    *len = i;
    return s;
}

/* N random bytes (fixed seed): incompressible. */
static unsigned char *random_bytes(size_t n)
{
    unsigned char *s = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(s);
    unsigned st = 99;
    for (size_t i = 0; i < n; i++)
        s[i] = (unsigned char)(next_rand(&st) >> 7);
    return s;
}

/* The size zlib's level 1 Huffman-only (what bodies from CZ_HUFFMAN_FROM up got before
 * czh_compress) makes of IN[len] with window bits WBITS. */
static size_t zlib_huffman_size(int wbits, const void *in, size_t len)
{
    size_t n;
    free(zlib_compress_with(1, Z_HUFFMAN_ONLY, wbits, in, len, &n));
    return n;
}

/* Z[zlen], a whole C stream, inflates by zlib's own inflate (window bits 15 + 16 for gzip, 15
 * for the zlib format) to exactly WANT[want_len], every input byte used. */
static void expect_zlib_inflates_to(cz_coding c, const void *z, size_t zlen, const void *want,
                                    size_t want_len)
{
    unsigned char *back = malloc(want_len + 1);
    ck_assert_ptr_nonnull(back);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    ck_assert_int_eq(inflateInit2(&zs, c == CZ_GZIP ? 15 + 16 : 15), Z_OK);
    zs.next_in = (Bytef *)z;
    zs.avail_in = (uInt)zlen;
    zs.next_out = back;
    zs.avail_out = (uInt)want_len + 1;
    int rc = inflate(&zs, Z_FINISH);
    ck_assert_msg(rc == Z_STREAM_END, "zlib's inflate: %d (%s)", rc, zs.msg ? zs.msg : "-");
    ck_assert_uint_eq(zs.avail_in, 0);
    ck_assert_uint_eq(zs.total_out, want_len);
    ck_assert_msg(want_len == 0 || memcmp(back, want, want_len) == 0, "zlib: other bytes");
    inflateEnd(&zs);
    free(back);
}

/* Z[zlen] reads back as BODY[len] by both decoders: zlib's, and cz_inflater whole and in
 * pieces of 4093 bytes. */
static void expect_both_inflate_to(cz_coding c, const void *z, size_t zlen, const void *body,
                                   size_t len)
{
    expect_zlib_inflates_to(c, z, zlen, body, len);
    expect_inflates_to(c, z, zlen, zlen, body, len);
    expect_inflates_to(c, z, zlen, 4093, body, len);
}

/* BODY[len] coded by czh_compress as C (FORCE as czh_compress takes it), checked to read back
 * by both decoders; the caller buf_free()s it. */
static buf huffman_round_trip(cz_coding c, const void *body, size_t len, int force)
{
    buf z = BUF_INIT;
    ck_assert_int_eq(czh_compress(c, body, len, force, &z), 0);
    ck_assert_int_eq(z.data[z.len], '\0');
    expect_both_inflate_to(c, z.data, z.len, body, len);
    return z;
}

START_TEST(test_gzip_round_trip_restores_the_body)
{
    size_t n = 200000;
    char *body = sample(n), err[256];
    buf z = BUF_INIT;
    ck_assert_msg(cz_compress(CZ_GZIP, body, n, &z, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_lt(z.len, n * 3 / 4);
    ck_assert_int_eq((unsigned char)z.data[0], 0x1f);
    ck_assert_int_eq((unsigned char)z.data[1], 0x8b);
    expect_inflates_to(CZ_GZIP, z.data, z.len, z.len, body, n);
    /* zlib's own decoder agrees that it is gzip */
    unsigned char *back = malloc(n);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    ck_assert_int_eq(inflateInit2(&zs, 15 + 16), Z_OK);
    zs.next_in = (Bytef *)z.data;
    zs.avail_in = (uInt)z.len;
    zs.next_out = back;
    zs.avail_out = (uInt)n;
    ck_assert_int_eq(inflate(&zs, Z_FINISH), Z_STREAM_END);
    ck_assert_uint_eq(zs.total_out, n);
    inflateEnd(&zs);
    free(back);
    buf_free(&z);
    free(body);
}
END_TEST

START_TEST(test_deflate_round_trip_is_the_zlib_format)
{
    size_t n = 50000;
    char *body = sample(n), err[256];
    buf z = BUF_INIT;
    ck_assert_msg(cz_compress(CZ_DEFLATE, body, n, &z, err, sizeof err) == 0, "%s", err);
    /* RFC 1950's header: deflate, 32 KiB window, check bits */
    ck_assert_int_eq((unsigned char)z.data[0], 0x78);
    ck_assert_int_eq(((unsigned char)z.data[0] * 256 + (unsigned char)z.data[1]) % 31, 0);
    expect_inflates_to(CZ_DEFLATE, z.data, z.len, z.len, body, n);
    buf_free(&z);
    free(body);
}
END_TEST

START_TEST(test_compress_appends_to_what_the_buffer_holds)
{
    char err[256];
    buf z = BUF_INIT;
    buf_puts(&z, "prefix");
    ck_assert_int_eq(cz_compress(CZ_GZIP, "hello hello hello", 17, &z, err, sizeof err), 0);
    ck_assert_mem_eq(z.data, "prefix", 6);
    expect_inflates_to(CZ_GZIP, z.data + 6, z.len - 6, 3, "hello hello hello", 17);
    ck_assert_int_eq(cz_compress(CZ_IDENTITY, "x", 1, &z, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "identity"));
    buf_free(&z);
}
END_TEST

START_TEST(test_empty_body_compresses_and_inflates_to_nothing)
{
    char err[256];
    for (int c = CZ_GZIP; c <= CZ_DEFLATE; c++) {
        buf z = BUF_INIT;
        ck_assert_int_eq(cz_compress((cz_coding)c, "", 0, &z, err, sizeof err), 0);
        ck_assert_uint_gt(z.len, 0);
        expect_inflates_to((cz_coding)c, z.data, z.len, 1, "", 0);
        buf_free(&z);
    }
}
END_TEST

START_TEST(test_raw_deflate_body_is_accepted_as_deflate)
{
    size_t n = 30000, len;
    char *body = sample(n);
    unsigned char *raw = zlib_compress(-15, body, n, &len);
    expect_inflates_to(CZ_DEFLATE, raw, len, len, body, n);
    expect_inflates_to(CZ_DEFLATE, raw, len, 1, body, n);
    free(raw);
    /* The shortest raw stream, an empty final block, ends within the 2 bytes looked at. */
    expect_inflates_to(CZ_DEFLATE, "\3\0", 2, 2, "", 0);
    expect_error(CZ_DEFLATE, "\3\0x", 3, 3, 400, "deflate body has trailing bytes after its end");
    free(body);
}
END_TEST

START_TEST(test_one_byte_chunks_give_what_one_chunk_gives)
{
    size_t n = 20000;
    char *body = sample(n);
    const int wbits[] = {31, 15, -15};
    const cz_coding coding[] = {CZ_GZIP, CZ_DEFLATE, CZ_DEFLATE};
    for (int k = 0; k < 3; k++) {
        size_t len;
        unsigned char *z = zlib_compress(wbits[k], body, n, &len);
        expect_inflates_to(coding[k], z, len, len, body, n);
        expect_inflates_to(coding[k], z, len, 1, body, n);
        expect_inflates_to(coding[k], z, len, 7, body, n);
        free(z);
    }
    free(body);
}
END_TEST

START_TEST(test_zip_bomb_stops_at_the_cap_with_413)
{
    /* 1 GB of zeros (64 MB under valgrind, where zlib itself runs 30 times slower), compressed
     * as a stream: about 1 MB of gzip. */
    size_t blocks = tu_under_valgrind() ? 1024 : 16384;
    static unsigned char zero[65536];
    buf bomb = BUF_INIT;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    ck_assert_int_eq(deflateInit2(&zs, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    for (size_t i = 0; i < blocks; i++) {
        zs.next_in = zero;
        zs.avail_in = sizeof zero;
        do {
            ck_assert_int_eq(buf_reserve(&bomb, 65536), 0);
            zs.next_out = (Bytef *)bomb.data + bomb.len;
            zs.avail_out = 65536;
            deflate(&zs, i + 1 == blocks ? Z_FINISH : Z_NO_FLUSH);
            bomb.len += 65536 - zs.avail_out;
        } while (zs.avail_out == 0);
    }
    ck_assert_uint_eq(zs.total_in, blocks * sizeof zero);
    deflateEnd(&zs);
    ck_assert_uint_lt(bomb.len, blocks * sizeof zero / 500);

    size_t cap = 1 << 20;
    cz_inflater *z = cz_inflater_new(CZ_GZIP, cap);
    buf out = BUF_INIT;
    int status = 0, rc = 0;
    char err[256];
    size_t fed = 0;
    /* Fed as it would arrive: 16 KiB at a time, until refused. */
    while (fed < bomb.len && rc == 0) {
        size_t n = bomb.len - fed < 16384 ? bomb.len - fed : 16384;
        rc = cz_inflate(z, bomb.data + fed, n, &out, &status, err, sizeof err);
        fed += n;
        ck_assert_uint_le(out.len, cap);
    }
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(status, 413);
    ck_assert_str_eq(err, "inflated body exceeds max_body_bytes 1048576");
    /* Refused after the first kilobytes, holding exactly the cap and no more memory than it. */
    ck_assert_uint_le(fed, 16384);
    ck_assert_uint_eq(out.len, cap);
    ck_assert_uint_eq(cz_inflated_bytes(z), cap);
    ck_assert_uint_le(out.cap, cap + 1);
    /* and every later call says the same */
    status = 0;
    ck_assert_int_eq(cz_inflate(z, bomb.data + fed, 100, &out, &status, err, sizeof err), -1);
    ck_assert_int_eq(status, 413);
    ck_assert_int_eq(cz_inflate_end(z, &status, err, sizeof err), -1);
    ck_assert_str_eq(err, "inflated body exceeds max_body_bytes 1048576");
    ck_assert_uint_eq(out.len, cap);
    cz_inflater_free(z);
    buf_free(&out);
    buf_free(&bomb);
}
END_TEST

START_TEST(test_body_inflating_to_exactly_the_cap_is_accepted)
{
    size_t n = 100000, len;
    char *body = sample(n);
    for (int k = 0; k < 2; k++) {
        unsigned char *z = zlib_compress(k ? 15 : 31, body, n, &len);
        cz_coding c = k ? CZ_DEFLATE : CZ_GZIP;
        for (size_t chunk = 1; chunk <= len; chunk = chunk * 10 + 3) {
            result r;
            inflate_all(c, n, z, len, chunk, &r);
            ck_assert_msg(r.rc == 0, "chunk %zu: %s", chunk, r.err);
            ck_assert_uint_eq(r.out.len, n);
            ck_assert_uint_le(r.out.cap, n + 1);
            buf_free(&r.out);
            inflate_all(c, n - 1, z, len, chunk, &r);
            ck_assert_int_eq(r.rc, -1);
            ck_assert_int_eq(r.status, 413);
            ck_assert_uint_eq(r.out.len, n - 1);
            buf_free(&r.out);
        }
        free(z);
    }
    free(body);
}
END_TEST

START_TEST(test_corrupt_body_is_400_with_zlibs_message)
{
    size_t n = 5000, len;
    char *body = sample(n);
    unsigned char *z = zlib_compress(31, body, n, &len);
    /* not gzip at all */
    expect_error(CZ_GZIP, "{\"inputs\": []}", 14, 14, 400,
                 "gzip body is corrupt: incorrect header check");
    /* a wrong CRC-32 in the trailer */
    z[len - 8] ^= 0xff;
    expect_error(CZ_GZIP, z, len, len, 400, "gzip body is corrupt: incorrect data check");
    expect_error(CZ_GZIP, z, len, 1, 400, "gzip body is corrupt: incorrect data check");
    z[len - 8] ^= 0xff;
    /* a block type that does not exist (BTYPE 11) in the first block */
    z[10] |= 0x06;
    expect_error(CZ_GZIP, z, len, len, 400, "gzip body is corrupt: invalid block type");
    free(z);
    /* zlib format with a wrong Adler-32 */
    z = zlib_compress(15, body, n, &len);
    z[len - 1] ^= 0x01;
    expect_error(CZ_DEFLATE, z, len, 5, 400, "deflate body is corrupt: incorrect data check");
    free(z);
    /* a zlib header asking for a preset dictionary (FDICT) */
    expect_error(CZ_DEFLATE, "\x78\xbb\0\0\0\1\3\0", 8, 8, 400,
                 "deflate body is corrupt: it needs a preset dictionary");
    free(body);
}
END_TEST

START_TEST(test_truncated_body_ends_before_its_stream_does)
{
    size_t n = 5000, len;
    char *body = sample(n);
    for (int k = 0; k < 3; k++) {
        int wbits = k == 0 ? 31 : k == 1 ? 15 : -15;
        cz_coding c = k == 0 ? CZ_GZIP : CZ_DEFLATE;
        const char *want = k == 0 ? "gzip body ends before its stream does"
                                  : "deflate body ends before its stream does";
        unsigned char *z = zlib_compress(wbits, body, n, &len);
        expect_error(c, z, len - 1, len, 400, want);
        expect_error(c, z, len / 2, 1, 400, want);
        expect_error(c, z, 1, 1, 400, want);
        expect_error(c, z, 0, 1, 400, want);
        free(z);
    }
    free(body);
}
END_TEST

START_TEST(test_trailing_garbage_after_the_stream_is_400)
{
    size_t n = 5000, len;
    char *body = sample(n);
    for (int k = 0; k < 3; k++) {
        int wbits = k == 0 ? 31 : k == 1 ? 15 : -15;
        cz_coding c = k == 0 ? CZ_GZIP : CZ_DEFLATE;
        const char *want = k == 0 ? "gzip body has trailing bytes after its end"
                                  : "deflate body has trailing bytes after its end";
        unsigned char *z = zlib_compress(wbits, body, n, &len);
        unsigned char *more = malloc(len + 3);
        memcpy(more, z, len);
        memcpy(more + len, "xyz", 3);
        expect_error(c, more, len + 3, len + 3, 400, want);
        expect_error(c, more, len + 3, 1, 400, want);
        /* one byte more is refused too, once the body is known to end there */
        expect_error(c, more, len + 1, len + 1, 400, want);
        free(more);
        free(z);
    }
    free(body);
}
END_TEST

START_TEST(test_concatenated_gzip_members_inflate_to_both)
{
    size_t na = 3000, nb = 7000, la, lb;
    char *a = sample(na), *b = sample(nb);
    memset(b, 'b', 100);
    unsigned char *za = zlib_compress(31, a, na, &la), *zb = zlib_compress(31, b, nb, &lb);
    unsigned char *both = malloc(la + lb + la);
    memcpy(both, za, la);
    memcpy(both + la, zb, lb);
    memcpy(both + la + lb, za, la);
    char *want = malloc(na + nb + na);
    memcpy(want, a, na);
    memcpy(want + na, b, nb);
    memcpy(want + na + nb, a, na);
    expect_inflates_to(CZ_GZIP, both, la + lb, la + lb, want, na + nb);
    expect_inflates_to(CZ_GZIP, both, la + lb + la, 1, want, na + nb + na);
    expect_inflates_to(CZ_GZIP, both, la + lb + la, 1000, want, na + nb + na);
    /* the cap counts every member */
    result r;
    inflate_all(CZ_GZIP, na + nb, both, la + lb + la, 64, &r);
    ck_assert_int_eq(r.status, 413);
    ck_assert_uint_eq(r.out.len, na + nb);
    buf_free(&r.out);
    /* a second member cut short is a truncated body */
    expect_error(CZ_GZIP, both, la + lb / 2, 1, 400, "gzip body ends before its stream does");
    /* zlib-format streams do not concatenate: a second one is trailing garbage */
    unsigned char *zz = zlib_compress(15, a, na, &la);
    unsigned char *two = malloc(2 * la);
    memcpy(two, zz, la);
    memcpy(two + la, zz, la);
    expect_error(CZ_DEFLATE, two, 2 * la, 100, 400, "deflate body has trailing bytes");
    free(two);
    free(zz);
    free(want);
    free(both);
    free(za);
    free(zb);
    free(a);
    free(b);
}
END_TEST

START_TEST(test_inflating_appends_after_what_the_buffer_holds)
{
    size_t len;
    unsigned char *z = zlib_compress(31, "abcdef", 6, &len);
    cz_inflater *zi = cz_inflater_new(CZ_GZIP, 6);
    buf out = BUF_INIT;
    buf_puts(&out, "head:");
    int status;
    char err[256];
    ck_assert_int_eq(cz_inflate(zi, z, len, &out, &status, err, sizeof err), 0);
    ck_assert_int_eq(cz_inflate_end(zi, &status, err, sizeof err), 0);
    ck_assert_str_eq(out.data, "head:abcdef");
    cz_inflater_free(zi);
    buf_free(&out);
    free(z);
    ck_assert_ptr_null(cz_inflater_new(CZ_IDENTITY, 10));
}
END_TEST

static unsigned get32(const char *p, int big)
{
    const unsigned char *u = (const unsigned char *)p;
    return big ? (unsigned)u[0] << 24 | (unsigned)u[1] << 16 | (unsigned)u[2] << 8 | u[3]
               : (unsigned)u[3] << 24 | (unsigned)u[2] << 16 | (unsigned)u[1] << 8 | u[0];
}

START_TEST(test_huffman_streams_are_standard_gzip_and_zlib)
{
    size_t n;
    char *body = float_text(300000, &n);
    /* gzip (RFC 1952): ID1 ID2, deflate, no flags, no time, OS 255; CRC-32 and ISIZE last. */
    buf z = huffman_round_trip(CZ_GZIP, body, n, 0);
    ck_assert_mem_eq(z.data, "\x1f\x8b\x08\0\0\0\0\0\0\xff", 10);
    ck_assert_uint_eq(get32(z.data + z.len - 8, 0), crc32(0, (const Bytef *)body, (uInt)n));
    ck_assert_uint_eq(get32(z.data + z.len - 4, 0), n);
    /* one final block of dynamic codes: BFINAL 1, BTYPE 10 */
    ck_assert_int_eq(z.data[10] & 7, 5);
    buf_free(&z);
    /* zlib (RFC 1950): 0x78 0x01, whose check bits hold; Adler-32 big-endian last. */
    z = huffman_round_trip(CZ_DEFLATE, body, n, 0);
    ck_assert_int_eq((unsigned char)z.data[0], 0x78);
    ck_assert_int_eq((unsigned char)z.data[1], 0x01);
    ck_assert_int_eq((0x78 * 256 + 0x01) % 31, 0);
    ck_assert_int_eq(z.data[2] & 7, 5);
    ck_assert_uint_eq(get32(z.data + z.len - 4, 1), adler32(1, (const Bytef *)body, (uInt)n));
    buf_free(&z);
    free(body);
}
END_TEST

START_TEST(test_bodies_from_the_threshold_up_take_the_huffman_encoder)
{
    /* Told apart by the gzip header's OS byte: zlib writes 3 (Unix), czh_compress 255. */
    size_t n;
    char *body = float_text(CZ_HUFFMAN_FROM + 100, &n), err[256];
    for (size_t len = CZ_HUFFMAN_FROM - 1; len <= CZ_HUFFMAN_FROM + 1; len++) {
        for (int c = CZ_GZIP; c <= CZ_DEFLATE; c++) {
            buf z = BUF_INIT;
            buf_puts(&z, "prefix");
            ck_assert_int_eq(cz_compress((cz_coding)c, body, len, &z, err, sizeof err), 0);
            ck_assert_mem_eq(z.data, "prefix", 6);
            ck_assert_int_eq(z.data[z.len], '\0');
            if (c == CZ_GZIP)
                ck_assert_int_eq((unsigned char)z.data[6 + 9], len < CZ_HUFFMAN_FROM ? 3 : 255);
            expect_both_inflate_to((cz_coding)c, z.data + 6, z.len - 6, body, len);
            buf_free(&z);
        }
    }
    free(body);
}
END_TEST

START_TEST(test_huffman_encoder_codes_the_shortest_bodies)
{
    /* Forced (cz_compress never sends these here): nothing, and the first bytes one by one,
     * each length through the coding loop's tail. */
    const char *text = "[0.5,-0.25]";
    for (size_t len = 0; len <= strlen(text); len++)
        for (int c = CZ_GZIP; c <= CZ_DEFLATE; c++) {
            buf z = huffman_round_trip((cz_coding)c, text, len, 1);
            buf_free(&z);
        }
    /* Unforced, a body that short cannot save 1/16 of itself: left to zlib, OUT untouched. */
    buf z = BUF_INIT;
    buf_puts(&z, "kept");
    ck_assert_int_eq(czh_compress(CZ_GZIP, text, strlen(text), 0, &z), 1);
    ck_assert_uint_eq(z.len, 4);
    ck_assert_str_eq(z.data, "kept");
    buf_free(&z);
}
END_TEST

START_TEST(test_huffman_encoder_codes_every_byte_value)
{
    /* Digits mostly, every one of the 256 byte values among them, in several places. */
    size_t n = 200000;
    unsigned char *body = malloc(n);
    ck_assert_ptr_nonnull(body);
    unsigned st = 5;
    for (size_t i = 0; i < n; i++)
        body[i] = (unsigned char)('0' + next_rand(&st) % 10);
    for (size_t v = 0; v < 256; v++) {
        body[v * 7] = (unsigned char)v;
        body[n / 2 + v * 3] = (unsigned char)(255 - v);
        body[n - 1 - v] = (unsigned char)v;
    }
    for (int c = CZ_GZIP; c <= CZ_DEFLATE; c++) {
        buf z = huffman_round_trip((cz_coding)c, body, n, 0);
        buf_free(&z);
    }
    /* and all 256 equally often, forced: codes of 8 and 9 bits, more than the body */
    for (size_t i = 0; i < n; i++)
        body[i] = (unsigned char)(i * 7);
    for (int c = CZ_GZIP; c <= CZ_DEFLATE; c++) {
        buf z = huffman_round_trip((cz_coding)c, body, n, 1);
        ck_assert_uint_gt(z.len, n);
        buf_free(&z);
    }
    free(body);
}
END_TEST

START_TEST(test_huffman_encoder_codes_a_body_of_one_byte_value)
{
    /* One used symbol: the sample sees nothing else, yet every byte keeps a code. */
    size_t n = 150000;
    char *body = malloc(n), err[256];
    ck_assert_ptr_nonnull(body);
    memset(body, '7', n);
    for (int c = CZ_GZIP; c <= CZ_DEFLATE; c++) {
        buf z = huffman_round_trip((cz_coding)c, body, n, 0);
        /* one bit a byte */
        ck_assert_uint_lt(z.len, n / 8 + 300);
        buf_free(&z);
        ck_assert_int_eq(cz_compress((cz_coding)c, body, n, &z, err, sizeof err), 0);
        expect_both_inflate_to((cz_coding)c, z.data, z.len, body, n);
        buf_free(&z);
    }
    /* and one stray byte the sample missed, in the middle: a long code, still decoded */
    body[n / 2 + 1] = '\n';
    buf z = huffman_round_trip(CZ_GZIP, body, n, 0);
    buf_free(&z);
    free(body);
}
END_TEST

START_TEST(test_skewed_counts_are_held_to_deflates_code_lengths)
{
    /* Byte k appears fib(k + 1) times, shuffled so that the encoder's sample sees those
     * counts too: a Huffman tree over them is 24 deep (15 over the sample's), past the 14 bits
     * the encoder allows itself, so it has to flatten it. */
    size_t n = 0, fa = 1, fb = 1;
    unsigned char *body = malloc(200000);
    ck_assert_ptr_nonnull(body);
    for (int k = 0; k < 25; k++) {
        for (size_t i = 0; i < fa; i++)
            body[n++] = (unsigned char)('A' + k);
        size_t t = fa + fb;
        fa = fb;
        fb = t;
    }
    ck_assert_uint_ge(n, CZ_HUFFMAN_FROM);
    ck_assert_uint_le(n, 200000);
    unsigned st = 3;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = next_rand(&st) % (i + 1);
        unsigned char t = body[i];
        body[i] = body[j];
        body[j] = t;
    }
    for (int c = CZ_GZIP; c <= CZ_DEFLATE; c++) {
        buf z = huffman_round_trip((cz_coding)c, body, n, 0);
        buf_free(&z);
    }
    free(body);
}
END_TEST

START_TEST(test_random_bytes_are_never_bigger_than_zlib_makes_them)
{
    size_t n = 1 << 20;
    unsigned char *body = random_bytes(n);
    char err[256];
    for (int c = CZ_GZIP; c <= CZ_DEFLATE; c++) {
        buf z = BUF_INIT;
        ck_assert_int_eq(cz_compress((cz_coding)c, body, n, &z, err, sizeof err), 0);
        ck_assert_uint_le(z.len, zlib_huffman_size(c == CZ_GZIP ? 31 : 15, body, n));
        expect_both_inflate_to((cz_coding)c, z.data, z.len, body, n);
        buf_free(&z);
        /* czh_compress itself gives them up (OUT unchanged), or codes them when forced */
        ck_assert_int_eq(czh_compress((cz_coding)c, body, n, 0, &z), 1);
        ck_assert_uint_eq(z.len, 0);
        buf_free(&z);
        z = huffman_round_trip((cz_coding)c, body, n, 1);
        buf_free(&z);
    }
    free(body);
}
END_TEST

START_TEST(test_float_text_compresses_at_least_2_1_times)
{
    size_t n;
    char *body = float_text(2 << 20, &n), err[256];
    for (int c = CZ_GZIP; c <= CZ_DEFLATE; c++) {
        buf z = BUF_INIT;
        ck_assert_int_eq(cz_compress((cz_coding)c, body, n, &z, err, sizeof err), 0);
        expect_both_inflate_to((cz_coding)c, z.data, z.len, body, n);
        double ratio = (double)n / (double)z.len;
        ck_assert_msg(ratio >= 2.1, "%s ratio %.3f", cz_coding_name((cz_coding)c), ratio);
        /* no bigger than zlib's own Huffman-only coding of it */
        ck_assert_uint_le(z.len, zlib_huffman_size(c == CZ_GZIP ? 31 : 15, body, n));
        buf_free(&z);
    }
    free(body);
}
END_TEST

START_TEST(test_twenty_megabyte_body_round_trips)
{
    size_t n;
    char *body = float_text(20 << 20, &n), err[256];
    for (int c = CZ_GZIP; c <= CZ_DEFLATE; c++) {
        buf z = BUF_INIT;
        ck_assert_int_eq(cz_compress((cz_coding)c, body, n, &z, err, sizeof err), 0);
        ck_assert_uint_lt(z.len, n / 2);
        expect_zlib_inflates_to((cz_coding)c, z.data, z.len, body, n);
        expect_inflates_to((cz_coding)c, z.data, z.len, 1 << 20, body, n);
        buf_free(&z);
    }
    free(body);
}
END_TEST

static cz_coding content(const char *value)
{
    cz_coding c = (cz_coding)-1;
    char err[256] = "";
    ck_assert_msg(cz_parse_content_encoding(value, &c, err, sizeof err) == 0, "\"%s\": %s", value,
                  err);
    return c;
}

static void content_refused(const char *value, const char *message)
{
    cz_coding c;
    char err[256] = "";
    ck_assert_msg(cz_parse_content_encoding(value, &c, err, sizeof err) == -1, "\"%s\" accepted",
                  value);
    ck_assert_msg(strcmp(err, message) == 0, "\"%s\": \"%s\", wanted \"%s\"", value, err, message);
}

START_TEST(test_content_encoding_names_one_known_coding)
{
    ck_assert_int_eq(content("gzip"), CZ_GZIP);
    ck_assert_int_eq(content("GZip"), CZ_GZIP);
    ck_assert_int_eq(content("x-gzip"), CZ_GZIP);
    ck_assert_int_eq(content(" \tdeflate "), CZ_DEFLATE);
    ck_assert_int_eq(content("DEFLATE"), CZ_DEFLATE);
    ck_assert_int_eq(content("identity"), CZ_IDENTITY);
    ck_assert_int_eq(content(""), CZ_IDENTITY);
    /* empty list elements do not count (RFC 9110 section 5.6.1) */
    ck_assert_int_eq(content(", gzip ,"), CZ_GZIP);
    ck_assert_str_eq(cz_coding_name(CZ_GZIP), "gzip");
    ck_assert_str_eq(cz_coding_name(CZ_DEFLATE), "deflate");
    ck_assert_str_eq(cz_coding_name(CZ_IDENTITY), "identity");
}
END_TEST

START_TEST(test_content_encoding_refuses_unknown_and_stacked_codings_by_name)
{
    content_refused("br",
                    "unsupported Content-Encoding \"br\" (supported: gzip, deflate, identity)");
    content_refused(
        " compress ",
        "unsupported Content-Encoding \"compress\" (supported: gzip, deflate, identity)");
    content_refused(
        "gzip;q=1",
        "unsupported Content-Encoding \"gzip;q=1\" (supported: gzip, deflate, identity)");
    content_refused("gzip, gzip", "stacked Content-Encodings are not supported: \"gzip, gzip\"");
    content_refused("deflate,gzip",
                    "stacked Content-Encodings are not supported: \"deflate,gzip\"");
}
END_TEST

/* The coding Accept-Encoding value V picks, and whether anything was acceptable (rc). */
static void accept_picks(const char *v, cz_coding want, int want_rc)
{
    cz_coding c = (cz_coding)-1;
    int rc = cz_choose_encoding(v, &c);
    ck_assert_msg(rc == want_rc && c == want, "\"%s\": %s (%d), wanted %s (%d)", v ? v : "(none)",
                  cz_coding_name(c), rc, cz_coding_name(want), want_rc);
}

START_TEST(test_accept_encoding_picks_per_rfc_9110)
{
    accept_picks(NULL, CZ_IDENTITY, 0);
    accept_picks("", CZ_IDENTITY, 0);
    accept_picks("gzip", CZ_GZIP, 0);
    accept_picks("deflate", CZ_DEFLATE, 0);
    accept_picks("gzip, deflate, br", CZ_GZIP, 0);
    accept_picks("deflate, gzip", CZ_GZIP, 0); /* gzip first at equal q */
    accept_picks("br", CZ_IDENTITY, 0);
    accept_picks("x-gzip", CZ_GZIP, 0);
    /* q-values */
    accept_picks("gzip;q=0.5, deflate;q=0.8", CZ_DEFLATE, 0);
    accept_picks("gzip;q=0.5", CZ_GZIP, 0); /* an unlisted identity is not preferred */
    accept_picks("gzip;q=0.5, identity", CZ_IDENTITY, 0);
    accept_picks("gzip;q=1.0, identity;q=0.999", CZ_GZIP, 0);
    accept_picks("gzip;q=0.3, identity;q=0.3", CZ_GZIP, 0);
    /* refusals */
    accept_picks("gzip;q=0", CZ_IDENTITY, 0);
    accept_picks("gzip;q=0, deflate", CZ_DEFLATE, 0);
    accept_picks("gzip;q=0.000, deflate;q=0", CZ_IDENTITY, 0);
    accept_picks("identity;q=0", CZ_IDENTITY, -1);
    accept_picks("identity;q=0, gzip;q=0.1", CZ_GZIP, 0);
    /* "*": any coding not listed */
    accept_picks("*", CZ_GZIP, 0);
    accept_picks("*;q=0.5, gzip;q=0", CZ_DEFLATE, 0);
    accept_picks("*;q=0", CZ_IDENTITY, -1);
    accept_picks("*;q=0, identity", CZ_IDENTITY, 0);
    accept_picks("*;q=0, gzip", CZ_GZIP, 0);
    accept_picks("br;q=1, *;q=0.1", CZ_GZIP, 0);
    /* case and whitespace */
    accept_picks("GZIP", CZ_GZIP, 0);
    accept_picks(" \tDeflate ; Q=0.9 ,  gzip ;q=0.2\t", CZ_DEFLATE, 0);
    accept_picks(",,gzip,,", CZ_GZIP, 0);
    /* junk: elements that do not parse are ignored, the rest still count */
    accept_picks("gzip;q=2", CZ_IDENTITY, 0);
    accept_picks("gzip;q=0.5x, deflate;q=0.1", CZ_DEFLATE, 0);
    accept_picks("gzip;q=.5", CZ_IDENTITY, 0);
    accept_picks("gzip;q=0.12345", CZ_IDENTITY, 0);
    accept_picks("gzip;level=9", CZ_IDENTITY, 0);
    accept_picks("gzip deflate", CZ_IDENTITY, 0);
    accept_picks("\"gzip\", deflate", CZ_DEFLATE, 0);
    accept_picks(";q=1, gzip;q=", CZ_IDENTITY, 0);
    accept_picks("gzip;q=1.001", CZ_IDENTITY, 0);
    accept_picks("gzip;q=1.000", CZ_GZIP, 0);
}
END_TEST

START_TEST(test_small_bodies_are_not_worth_compressing)
{
    ck_assert_int_eq(cz_worth_compressing(0), 0);
    ck_assert_int_eq(cz_worth_compressing(CZ_MIN_COMPRESS_BYTES - 1), 0);
    ck_assert_int_eq(cz_worth_compressing(CZ_MIN_COMPRESS_BYTES), 1);
    ck_assert_int_eq(cz_worth_compressing(1 << 20), 1);
}
END_TEST

static Suite *compress_suite(void)
{
    Suite *s = suite_create("compress");
    TCase *tc = tcase_create("inflate");
    /* The bomb's 1 GB is compressed in the test: a few seconds, more under valgrind. */
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gzip_round_trip_restores_the_body);
    tcase_add_test(tc, test_deflate_round_trip_is_the_zlib_format);
    tcase_add_test(tc, test_compress_appends_to_what_the_buffer_holds);
    tcase_add_test(tc, test_empty_body_compresses_and_inflates_to_nothing);
    tcase_add_test(tc, test_raw_deflate_body_is_accepted_as_deflate);
    tcase_add_test(tc, test_one_byte_chunks_give_what_one_chunk_gives);
    tcase_add_test(tc, test_zip_bomb_stops_at_the_cap_with_413);
    tcase_add_test(tc, test_body_inflating_to_exactly_the_cap_is_accepted);
    tcase_add_test(tc, test_corrupt_body_is_400_with_zlibs_message);
    tcase_add_test(tc, test_truncated_body_ends_before_its_stream_does);
    tcase_add_test(tc, test_trailing_garbage_after_the_stream_is_400);
    tcase_add_test(tc, test_concatenated_gzip_members_inflate_to_both);
    tcase_add_test(tc, test_inflating_appends_after_what_the_buffer_holds);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("huffman");
    /* The 20 MB body inflates four times: seconds under valgrind. */
    tcase_set_timeout(te, 120);
    tcase_add_test(te, test_huffman_streams_are_standard_gzip_and_zlib);
    tcase_add_test(te, test_bodies_from_the_threshold_up_take_the_huffman_encoder);
    tcase_add_test(te, test_huffman_encoder_codes_the_shortest_bodies);
    tcase_add_test(te, test_huffman_encoder_codes_every_byte_value);
    tcase_add_test(te, test_huffman_encoder_codes_a_body_of_one_byte_value);
    tcase_add_test(te, test_skewed_counts_are_held_to_deflates_code_lengths);
    tcase_add_test(te, test_random_bytes_are_never_bigger_than_zlib_makes_them);
    tcase_add_test(te, test_float_text_compresses_at_least_2_1_times);
    tcase_add_test(te, test_twenty_megabyte_body_round_trips);
    suite_add_tcase(s, te);
    TCase *th = tcase_create("headers");
    tcase_add_test(th, test_content_encoding_names_one_known_coding);
    tcase_add_test(th, test_content_encoding_refuses_unknown_and_stacked_codings_by_name);
    tcase_add_test(th, test_accept_encoding_picks_per_rfc_9110);
    tcase_add_test(th, test_small_bodies_are_not_worth_compressing);
    suite_add_tcase(s, th);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(compress_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
