/* fuzz_deflate.c - libFuzzer target: arbitrary bytes as a response body through the literal-only
 * deflate encoder (czh_compress, src/czhuff.c), forced to code whatever it is given, then read
 * back by zlib's own inflate and by cz_inflater.
 *
 * Beyond "no crash, no leak", it checks: every stream inflates to exactly the body, all of its
 * bytes used; the forced stream stays within the encoder's bound (14 bits a byte plus framing);
 * unforced, the encoder either saves its 1/16 or gives the body up leaving OUT as it was; and,
 * for bodies repeated past CZ_HUFFMAN_FROM, cz_compress (which picks the encoder or zlib) reads
 * back too.
 *
 * Input: byte 0 picks the coding (bit 0: gzip or deflate) and, with bit 1, repeats the body to
 * CZ_HUFFMAN_FROM bytes for cz_compress; the rest is the body. */
#include <zlib.h>

#include "../../src/czhuff.h"
#include "fuzz.h"
#include "rnnserve/compress.h"

/* Z[zlen] inflates to exactly WANT[len] by zlib (window bits as C says) and by cz_inflater. */
static void fz_deflate_expect(cz_coding c, const char *z, size_t zlen, const uint8_t *want,
                              size_t len)
{
    unsigned char *back = malloc(len + 1);
    FZ_CHECK(back != NULL, "out of memory");
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    FZ_CHECK(inflateInit2(&zs, c == CZ_GZIP ? 15 + 16 : 15) == Z_OK, "inflateInit2");
    zs.next_in = (Bytef *)z;
    zs.avail_in = (uInt)zlen;
    zs.next_out = back;
    zs.avail_out = (uInt)len + 1;
    int rc = inflate(&zs, Z_FINISH);
    FZ_CHECK(rc == Z_STREAM_END, "%s of %zu bytes: zlib's inflate says %d (%s)", cz_coding_name(c),
             len, rc, zs.msg ? zs.msg : "-");
    FZ_CHECK(zs.avail_in == 0, "%u bytes after the stream's end", zs.avail_in);
    FZ_CHECK(zs.total_out == len && (len == 0 || memcmp(back, want, len) == 0),
             "%s of %zu bytes inflates to %lu other bytes", cz_coding_name(c), len, zs.total_out);
    inflateEnd(&zs);
    free(back);

    cz_inflater *zi = cz_inflater_new(c, len);
    FZ_CHECK(zi != NULL, "cz_inflater_new failed");
    buf out = BUF_INIT;
    int status = 0;
    char err[256] = "";
    rc = cz_inflate(zi, z, zlen, &out, &status, err, sizeof err);
    if (rc == 0)
        rc = cz_inflate_end(zi, &status, err, sizeof err);
    FZ_CHECK(rc == 0, "cz_inflater refuses %s of %zu bytes: %d %s", cz_coding_name(c), len, status,
             err);
    FZ_CHECK(out.len == len && (len == 0 || memcmp(out.data, want, len) == 0),
             "cz_inflater: %zu other bytes", out.len);
    cz_inflater_free(zi);
    buf_free(&out);
}

int fz_deflate_one(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    cz_coding c = data[0] & 1 ? CZ_DEFLATE : CZ_GZIP;
    const uint8_t *body = data + 1;
    size_t len = size - 1;

    buf z = BUF_INIT;
    FZ_CHECK(czh_compress(c, body, len, 1, &z) == 0, "czh_compress failed on %zu bytes", len);
    FZ_CHECK(z.data[z.len] == '\0', "no NUL after the stream");
    FZ_CHECK(z.len <= len / 8 * 14 + 14 + 300, "%zu bytes coded as %zu", len, z.len);
    fz_deflate_expect(c, z.data, z.len, body, len);
    buf_free(&z);

    /* Unforced: worth it, or OUT as it was. */
    buf_puts(&z, "x");
    int rc = czh_compress(c, body, len, 0, &z);
    FZ_CHECK(rc == 0 || rc == 1, "czh_compress returned %d", rc);
    if (rc == 0) {
        FZ_CHECK(z.len - 1 <= len - len / 16 + 18, "%zu bytes coded as %zu", len, z.len - 1);
        fz_deflate_expect(c, z.data + 1, z.len - 1, body, len);
    } else {
        FZ_CHECK(z.len == 1 && strcmp(z.data, "x") == 0, "a body given up changed OUT");
    }
    buf_free(&z);

    if ((data[0] & 2) && len > 0) {
        size_t n = CZ_HUFFMAN_FROM;
        uint8_t *big = malloc(n);
        FZ_CHECK(big != NULL, "out of memory");
        for (size_t i = 0; i < n; i++)
            big[i] = body[i % len];
        char err[256];
        FZ_CHECK(cz_compress(c, big, n, &z, err, sizeof err) == 0, "cz_compress: %s", err);
        fz_deflate_expect(c, z.data, z.len, big, n);
        buf_free(&z);
        free(big);
    }
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fz_deflate_one(data, size);
}
#endif
