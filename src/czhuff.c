/* czhuff.c - literal-only deflate for large responses (see czhuff.h).
 *
 * The stream is one final block of dynamic Huffman codes (RFC 1951 section 3.2.7): 257 literal /
 * length codes (bytes 0-255 and end-of-block; no length codes, so HLIT is 257), two distance
 * codes of one bit each that are never sent, and the code lengths themselves Huffman-coded
 * without run lengths. The code comes from a byte histogram of a sample of the body, every
 * symbol counted at least once so that any byte can be coded whatever the sample missed, the
 * lengths held to 14 bits. The body is then coded with a per-byte table into a 64-bit bit
 * buffer, straight into OUT. zlib still computes the trailers' CRC-32 and Adler-32: 0.27 ms and
 * 0.46 ms of the 1.8 MB "M" response's 0.98 ms (gzip) and 1.14 ms (deflate), not worth a
 * hand-written CRC. */
#include "czhuff.h"

#include <stdint.h>
#include <string.h>
#include <zlib.h>

/* Literal/length symbols sent: the 256 bytes and end-of-block (256). */
#define CZH_NLIT 257
#define CZH_EOB 256
/* Deflate's longest literal code, and longest code-length code (RFC 1951 section 3.2.7). */
#define CZH_MAXBITS 15
#define CZH_CL_MAXBITS 7
/* The literal codes are held to 14 bits, one under deflate's limit, so that four of them fit the
 * coding loop's 64-bit buffer beside the fewer than 8 bits left from the last store. */
#define CZH_LIT_MAXBITS 14
/* The histogram reads CZH_PIECES pieces of CZH_PIECE bytes spread evenly over the body (all of
 * it when shorter): a sample from everywhere, not just the start, at a fixed cost. On the 1.8 MB
 * "M" response a histogram of every byte took 0.44 ms more (a third of the whole) for an output
 * 0.04% smaller; the first 64 KB alone gave this sample's size, 16 x 1 KB 0.07% more. */
#define CZH_PIECES 16
#define CZH_PIECE 4096
/* Input bytes coded between two checks that the output still saves 1/16: small, so that the
 * output may run past the limit by at most one chunk's worst case (14 bits a byte). */
#define CZH_CHUNK 16384
/* Bound on everything but the coded literals: a 10-byte gzip header and 8-byte trailer (zlib's
 * are 2 and 4), the block header (17 bits, 19 x 3 bits, 259 lengths of at most 7 bits: 237
 * bytes), end-of-block and padding (3 bytes), and the 8 bytes the coding loop's last store may
 * write past its data. */
#define CZH_SLACK 300

/* The order the code-length code's lengths are sent in (RFC 1951 section 3.2.7). */
static const unsigned char cl_order[19] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                           11, 4,  12, 3, 13, 2, 14, 1, 15};

/* Bit writer for the header: deflate packs bits LSB first. */
typedef struct {
    unsigned char *p;
    uint64_t bits; /* pending, the first in bit 0 */
    unsigned n;    /* pending bit count, < 8 between calls */
} bitw;

static void put_bits(bitw *w, uint32_t v, unsigned nbits)
{
    w->bits |= (uint64_t)v << w->n;
    w->n += nbits;
    while (w->n >= 8) {
        *w->p++ = (unsigned char)w->bits;
        w->bits >>= 8;
        w->n -= 8;
    }
}

/* Stores 8 bytes little-endian, unaligned: one store on a little-endian machine. */
static inline void store64le(unsigned char *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 8);
#else
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
#endif
}

/* Code lengths of a Huffman code for the N symbols of COUNT (0: unused, length 0) into LEN,
 * built with the two-queue method over the used symbols sorted by count. Returns the longest.
 * One used symbol gets length 1. */
static unsigned build_lengths(const uint32_t *count, unsigned n, unsigned char *len)
{
    /* Leaves sorted by (count, symbol): insertion sort, n <= 257 and run a few times a body. */
    uint16_t sym[CZH_NLIT];
    uint64_t weight[2 * CZH_NLIT];
    uint16_t parent[2 * CZH_NLIT];
    unsigned m = 0;
    for (unsigned s = 0; s < n; s++) {
        len[s] = 0;
        if (!count[s])
            continue;
        unsigned i = m++;
        while (i > 0 && count[sym[i - 1]] > count[s]) {
            sym[i] = sym[i - 1];
            i--;
        }
        sym[i] = (uint16_t)s;
    }
    if (m == 0)
        return 0;
    if (m == 1) {
        len[sym[0]] = 1;
        return 1;
    }
    for (unsigned i = 0; i < m; i++)
        weight[i] = count[sym[i]];
    /* Nodes 0..m-1 are the leaves in order, m.. the internal ones in the order made, which is
     * also increasing weight: the two smallest are always at the heads of the two queues. */
    unsigned leaf = 0, inner = m, made = m;
    while (made < 2 * m - 1) {
        unsigned pick[2];
        for (int k = 0; k < 2; k++) {
            /* A leaf on ties: shallower trees for the same cost. */
            if (leaf < m && (inner == made || weight[leaf] <= weight[inner]))
                pick[k] = leaf++;
            else
                pick[k] = inner++;
        }
        weight[made] = weight[pick[0]] + weight[pick[1]];
        parent[pick[0]] = parent[pick[1]] = (uint16_t)made;
        made++;
    }
    /* Depths from the root (the last node) down: a parent is always made after its children. */
    unsigned char depth[2 * CZH_NLIT];
    unsigned root = 2 * m - 2, longest = 0;
    depth[root] = 0;
    for (unsigned i = root; i-- > 0;)
        depth[i] = (unsigned char)(depth[parent[i]] + 1);
    for (unsigned i = 0; i < m; i++) {
        len[sym[i]] = depth[i];
        longest = depth[i] > longest ? depth[i] : longest;
    }
    return longest;
}

/* As build_lengths, but no length over MAXBITS: while the tree is too deep, the counts are
 * halved (kept >= 1, so used symbols stay used) and the tree rebuilt. Flatter counts give a
 * flatter tree, and all-equal ones a balanced tree of depth 9 for 257 symbols, so this ends. The
 * cost in size is tiny: only symbols rarer than 1 in ~2^14 have to move. */
static void limited_lengths(const uint32_t *count, unsigned n, unsigned maxbits, unsigned char *len)
{
    uint32_t c[CZH_NLIT];
    memcpy(c, count, n * sizeof *c);
    while (build_lengths(c, n, len) > maxbits)
        for (unsigned s = 0; s < n; s++)
            c[s] = c[s] ? (c[s] >> 1) | 1 : 0;
}

/* Canonical codes for LEN (RFC 1951 section 3.2.2), bit-reversed: deflate sends a Huffman code
 * from its most significant bit, into a stream packed from each byte's least significant bit. */
static void canonical_codes(const unsigned char *len, unsigned n, uint16_t *code)
{
    unsigned count[CZH_MAXBITS + 1] = {0}, next[CZH_MAXBITS + 1];
    for (unsigned s = 0; s < n; s++)
        count[len[s]]++;
    count[0] = 0;
    unsigned c = 0;
    for (unsigned b = 1; b <= CZH_MAXBITS; b++) {
        c = (c + count[b - 1]) << 1;
        next[b] = c;
    }
    for (unsigned s = 0; s < n; s++) {
        code[s] = 0;
        if (!len[s])
            continue;
        unsigned v = next[len[s]]++, r = 0;
        for (unsigned b = 0; b < len[s]; b++)
            r |= ((v >> b) & 1) << (len[s] - 1 - b);
        code[s] = (uint16_t)r;
    }
}

/* The literal code lengths for IN[len]: a histogram of the sample, each symbol at least 1. */
static void literal_lengths(const unsigned char *in, size_t len, unsigned char *lit_len)
{
    /* Four tables, so that runs of one byte do not wait on one counter's increments. */
    uint32_t h[4][256];
    memset(h, 0, sizeof h);
    size_t pieces = len <= (size_t)CZH_PIECES * CZH_PIECE ? 1 : CZH_PIECES;
    size_t piece = pieces == 1 ? len : CZH_PIECE;
    for (size_t k = 0; k < pieces; k++) {
        /* Piece k starts k/pieces of the way into the body (the last one ends at its end). */
        const unsigned char *p = in + (pieces == 1 ? 0 : (len - piece) / (pieces - 1) * k);
        size_t i = 0;
        for (; i + 4 <= piece; i += 4) {
            h[0][p[i]]++;
            h[1][p[i + 1]]++;
            h[2][p[i + 2]]++;
            h[3][p[i + 3]]++;
        }
        for (; i < piece; i++)
            h[0][p[i]]++;
    }
    uint32_t count[CZH_NLIT];
    for (unsigned s = 0; s < 256; s++) {
        uint32_t c = h[0][s] + h[1][s] + h[2][s] + h[3][s];
        count[s] = c ? c : 1;
    }
    count[CZH_EOB] = 1;
    limited_lengths(count, CZH_NLIT, CZH_LIT_MAXBITS, lit_len);
}

/* Writes the block header for LIT_LEN at W: BFINAL, BTYPE, HLIT/HDIST/HCLEN, the code-length
 * code's lengths, then the 257 + 2 code lengths coded with it. */
static void write_header(bitw *w, const unsigned char *lit_len)
{
    /* All lengths sent: the literals', then the two distance codes'. Deflate allows one
     * distance code of zero bits when none is used, but zlib itself always sends two of one
     * bit (trees.c, "the pkzip format requires that at least one distance code exists"): that
     * complete code is what every decoder has seen, so it is what is sent here, for 2 bits. */
    unsigned char all[CZH_NLIT + 2];
    memcpy(all, lit_len, CZH_NLIT);
    all[CZH_NLIT] = all[CZH_NLIT + 1] = 1;
    uint32_t cl_count[19] = {0};
    for (unsigned i = 0; i < CZH_NLIT + 2; i++)
        cl_count[all[i]]++;
    /* A complete literal code of 257 symbols has two lengths at least (257 is no power of 2),
     * so the code-length code has two used symbols and is complete, as inflaters require. */
    unsigned char cl_len[19];
    uint16_t cl_code[19];
    limited_lengths(cl_count, 19, CZH_CL_MAXBITS, cl_len);
    canonical_codes(cl_len, 19, cl_code);
    unsigned ncl = 19;
    while (ncl > 4 && cl_len[cl_order[ncl - 1]] == 0)
        ncl--;
    put_bits(w, 1, 1);              /* BFINAL: the only block */
    put_bits(w, 2, 2);              /* BTYPE 10: dynamic Huffman codes */
    put_bits(w, CZH_NLIT - 257, 5); /* HLIT */
    put_bits(w, 2 - 1, 5);          /* HDIST */
    put_bits(w, ncl - 4, 4);        /* HCLEN */
    for (unsigned i = 0; i < ncl; i++)
        put_bits(w, cl_len[cl_order[i]], 3);
    for (unsigned i = 0; i < CZH_NLIT + 2; i++)
        put_bits(w, cl_code[all[i]], cl_len[all[i]]);
}

/* Appends V as 4 bytes, little-endian (gzip) or big-endian (zlib). */
static unsigned char *put32(unsigned char *p, uint32_t v, int big)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (big ? 24 - 8 * i : 8 * i));
    return p + 4;
}

/* zlib's checksums take uInt lengths: a body past 4 GiB goes in pieces. */
static uint32_t checksum(cz_coding c, const unsigned char *in, size_t len)
{
    uLong sum = c == CZ_GZIP ? crc32(0, Z_NULL, 0) : adler32(0, Z_NULL, 0);
    for (size_t off = 0; off < len;) {
        uInt n = len - off > (1u << 30) ? (1u << 30) : (uInt)(len - off);
        sum = c == CZ_GZIP ? crc32(sum, in + off, n) : adler32(sum, in + off, n);
        off += n;
    }
    return (uint32_t)sum;
}

/* czh_compress's 1: nothing was counted into OUT, but its NUL was written over. */
static int not_worth_it(buf *out)
{
    out->data[out->len] = '\0';
    return 1;
}

int czh_compress(cz_coding c, const void *in_, size_t len, int force, buf *out)
{
    const unsigned char *in = in_;
    /* Without FORCE the deflate data must save 1/16 of the body; near that line zlib's choice
     * per ~16 KB block (stored, or its own codes) could beat one code for the whole body. */
    size_t limit = len - len / 16;
    /* Room: with FORCE, every byte's worst case (14 bits); else the limit plus one chunk's. */
    size_t most = force ? len / 8 * CZH_LIT_MAXBITS + CZH_LIT_MAXBITS
                        : limit + CZH_CHUNK / 8 * CZH_LIT_MAXBITS;
    if (most > SIZE_MAX - CZH_SLACK - 1 || buf_reserve(out, most + CZH_SLACK + 1) < 0)
        return -1;

    unsigned char lit_len[CZH_NLIT];
    uint16_t lit_code[CZH_NLIT];
    literal_lengths(in, len, lit_len);
    canonical_codes(lit_len, CZH_NLIT, lit_code);
    /* Per byte: its code and its length, apart, so that the loop needs no unpacking. */
    uint64_t code[256];
    unsigned char bits_of[256];
    for (unsigned s = 0; s < 256; s++) {
        code[s] = lit_code[s];
        bits_of[s] = lit_len[s];
    }

    unsigned char *start = (unsigned char *)out->data + out->len, *p = start;
    if (c == CZ_GZIP) {
        /* ID1 ID2, CM 8 (deflate), FLG 0, MTIME 0 (none), XFL 0, OS 255 (unknown). */
        static const unsigned char gz[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255};
        memcpy(p, gz, sizeof gz);
        p += sizeof gz;
    } else {
        /* CMF 0x78: deflate, 32 KiB window; FLG 0x01: fastest level, no dictionary, and the
         * check bits that make 0x7801 a multiple of 31. */
        *p++ = 0x78;
        *p++ = 0x01;
    }
    unsigned char *data = p;
    bitw w = {p, 0, 0};
    write_header(&w, lit_len);
    p = w.p;
    uint64_t bits = w.bits;
    unsigned n = w.n;

    /* The coding loop: after each store fewer than 8 bits are pending, so four codes of at
     * most 14 bits fit the 64-bit buffer; the store writes 8 bytes and p advances by the whole
     * bytes written (CZH_SLACK covers the overhang). */
    for (size_t off = 0; off < len;) {
        size_t end = len - off > CZH_CHUNK ? off + CZH_CHUNK : len;
        size_t i = off;
        for (; i + 4 <= end; i += 4) {
            unsigned a = in[i], b = in[i + 1], d = in[i + 2], e = in[i + 3];
            bits |= code[a] << n;
            n += bits_of[a];
            bits |= code[b] << n;
            n += bits_of[b];
            bits |= code[d] << n;
            n += bits_of[d];
            bits |= code[e] << n;
            n += bits_of[e];
            store64le(p, bits);
            p += n >> 3;
            bits >>= n & ~7u;
            n &= 7;
        }
        for (; i < end; i++) {
            unsigned a = in[i];
            bits |= code[a] << n;
            n += bits_of[a];
            store64le(p, bits);
            p += n >> 3;
            bits >>= n & ~7u;
            n &= 7;
        }
        off = end;
        if (!force && (size_t)(p - data) > limit)
            return not_worth_it(out);
    }
    bitw t = {p, bits, n};
    put_bits(&t, lit_code[CZH_EOB], lit_len[CZH_EOB]);
    put_bits(&t, 0, (8 - t.n) & 7); /* pad to a byte */
    p = t.p;
    if (!force && (size_t)(p - data) > limit)
        return not_worth_it(out);

    uint32_t sum = checksum(c, in, len);
    if (c == CZ_GZIP) {
        p = put32(p, sum, 0);
        p = put32(p, (uint32_t)len, 0); /* ISIZE: the length mod 2^32 */
    } else {
        p = put32(p, sum, 1);
    }
    out->len += (size_t)(p - start);
    out->data[out->len] = '\0';
    return 0;
}
