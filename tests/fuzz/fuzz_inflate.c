/* fuzz_inflate.c - libFuzzer target: arbitrary bytes as a request body sent with
 * Content-Encoding gzip or deflate, through cz_inflate (src/compress.c) in chunks of sizes the
 * input picks, under a small cap.
 *
 * Beyond "no crash, no leak", it checks what the HTTP layer relies on: the inflated bytes never
 * pass the cap, nor does the buffer's capacity; every failure is a 400 or a 413 with a message;
 * any split of the body gives what one chunk gives; and what inflates compresses back (cz_compress)
 * to a body that inflates to the same bytes.
 *
 * Input: byte 0 picks the coding (bit 0: gzip or deflate), byte 1 seeds the chunk sizes, the rest
 * is the body. */
#include "fuzz.h"
#include "rnnserve/compress.h"

/* Small, so that inputs reach it: a few hundred compressed bytes inflate past 4 KiB easily. */
#define FZ_INFLATE_CAP 4096u

typedef struct {
    int rc, status;
    char err[256];
    buf out;
} fz_inflate_result;

/* Inflates BODY[len] as C, in one chunk when SEED is 0, else in sizes drawn from SEED. */
static void fz_inflate_run(cz_coding c, const uint8_t *body, size_t len, uint32_t seed,
                           fz_inflate_result *r)
{
    memset(r, 0, sizeof *r);
    cz_inflater *z = cz_inflater_new(c, FZ_INFLATE_CAP);
    FZ_CHECK(z != NULL, "cz_inflater_new failed");
    uint32_t state = seed;
    for (size_t off = 0; off < len && r->rc == 0;) {
        size_t n = len - off;
        if (seed) {
            state = state * 1664525u + 1013904223u;
            /* mostly tiny pieces, which split headers and trailers; some larger */
            size_t most = state & 0x80000000u ? 512 : 8;
            size_t pick = 1 + (state >> 8) % most;
            n = n < pick ? n : pick;
        }
        r->rc = cz_inflate(z, body + off, n, &r->out, &r->status, r->err, sizeof r->err);
        off += n;
        FZ_CHECK(r->out.len <= FZ_INFLATE_CAP, "%zu inflated bytes, cap %u", r->out.len,
                 FZ_INFLATE_CAP);
        FZ_CHECK(r->out.cap <= FZ_INFLATE_CAP + 1, "buffer capacity %zu, cap %u", r->out.cap,
                 FZ_INFLATE_CAP);
        FZ_CHECK(cz_inflated_bytes(z) == r->out.len, "%zu bytes counted, %zu in the buffer",
                 cz_inflated_bytes(z), r->out.len);
    }
    if (r->rc == 0)
        r->rc = cz_inflate_end(z, &r->status, r->err, sizeof r->err);
    FZ_CHECK(r->rc == 0 || r->rc == -1, "rc %d", r->rc);
    if (r->rc < 0) {
        FZ_CHECK(r->status == 400 || r->status == 413, "status %d: %s", r->status, r->err);
        FZ_CHECK(r->err[0] != '\0', "an error without a message (status %d)", r->status);
        FZ_CHECK(r->status != 413 || r->out.len == FZ_INFLATE_CAP, "413 at %zu bytes", r->out.len);
    }
    cz_inflater_free(z);
}

/* What inflated compresses back to a body that inflates to the same bytes. */
static void fz_inflate_round_trip(cz_coding c, const void *data, size_t len)
{
    buf z = BUF_INIT;
    char err[256];
    FZ_CHECK(cz_compress(c, data, len, &z, err, sizeof err) == 0, "cz_compress: %s", err);
    fz_inflate_result r;
    fz_inflate_run(c, (const uint8_t *)z.data, z.len, 0, &r);
    FZ_CHECK(r.rc == 0, "%s of %zu bytes does not inflate back: %s", cz_coding_name(c), len, r.err);
    FZ_CHECK(r.out.len == len && (len == 0 || memcmp(r.out.data, data, len) == 0),
             "%s of %zu bytes inflates to %zu other bytes", cz_coding_name(c), len, r.out.len);
    buf_free(&r.out);
    buf_free(&z);
}

int fz_inflate_one(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    cz_coding c = data[0] & 1 ? CZ_DEFLATE : CZ_GZIP;
    uint32_t seed = data[1] | 0x100u; /* never 0: that means one chunk */
    const uint8_t *body = data + 2;
    size_t len = size - 2;
    fz_inflate_result whole, split;
    fz_inflate_run(c, body, len, 0, &whole);
    fz_inflate_run(c, body, len, seed, &split);
    FZ_CHECK(whole.rc == split.rc && whole.status == split.status,
             "one chunk: %d %d \"%s\"; split: %d %d \"%s\"", whole.rc, whole.status, whole.err,
             split.rc, split.status, split.err);
    FZ_CHECK(strcmp(whole.err, split.err) == 0 || whole.rc == 0, "\"%s\" against \"%s\"", whole.err,
             split.err);
    /* Up to the error both saw the same prefix of the stream; zlib may stop a little earlier
     * on one of them, so only accepted bodies must match byte for byte. */
    if (whole.rc == 0) {
        FZ_CHECK(
            whole.out.len == split.out.len &&
                (whole.out.len == 0 || memcmp(whole.out.data, split.out.data, whole.out.len) == 0),
            "one chunk inflates to %zu bytes, split to %zu other bytes", whole.out.len,
            split.out.len);
        fz_inflate_round_trip(c, whole.out.data, whole.out.len);
    }
    /* The body itself as the payload: the compressor on arbitrary bytes. */
    if (len <= FZ_INFLATE_CAP)
        fz_inflate_round_trip(c, body, len);
    buf_free(&whole.out);
    buf_free(&split.out);
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fz_inflate_one(data, size);
}
#endif
