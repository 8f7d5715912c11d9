/* czhuff.h - private to src/compress.c (and its tests and fuzz target): a deflate encoder that
 * codes literals only, one dynamic-Huffman block for the whole body, for large responses whose
 * bytes barely repeat (JSON of float digits), where zlib's string matching finds little and its
 * Huffman-only mode runs at ~200 MB/s. CZ_HUFFMAN_FROM below is where compress.c hands over. */
#ifndef RNNSERVE_CZHUFF_H
#define RNNSERVE_CZHUFF_H

#include <stddef.h>

#include "rnnserve/buf.h"
#include "rnnserve/compress.h"

/* Past this size a body is coded with Huffman codes only (no string matching), by czh_compress
 * (src/czhuff.c). JSON of float32 digits barely repeats, so matching finds little: on the 1.8 MB
 * "M" response zlib's level 1 gave a ratio of 2.19 in 15 ms and zlib's Huffman-only 2.16 in
 * 8.9 ms (206 MB/s); czh_compress gives 2.17 in 0.98 ms as gzip (1.9 GB/s, of which zlib's
 * CRC-32 is 0.27 ms) and 1.14 ms as deflate (1.6 GB/s, Adler-32 0.46 ms) (best of 50,
 * 2026-12-02, this 2-core machine, loaded). The small answers below it (errors, metadata, short
 * sequences) do repeat, and keep level 1. */
#define CZ_HUFFMAN_FROM ((size_t)64 << 10)

/* Appends IN[len] to OUT as C (CZ_GZIP: RFC 1952; CZ_DEFLATE: the zlib format, RFC 1950), its
 * deflate data one block of Huffman-coded literals (RFC 1951, BTYPE 10, no matches). Returns 0;
 * 1 when FORCE is 0 and the block would not save at least 1/16 of LEN (random bytes: the caller
 * then leaves it to zlib, which stores them), OUT then unchanged; -1 when out of memory, OUT
 * unchanged but for its capacity. With FORCE it codes whatever the size (tests, fuzzing). OUT is
 * NUL-terminated after a success, as buf promises. */
int czh_compress(cz_coding c, const void *in, size_t len, int force, buf *out);

#endif
