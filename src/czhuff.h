/* czhuff.h - private to src/compress.c (and its tests and fuzz target): a deflate encoder that
 * codes literals only, one dynamic-Huffman block for the whole body, for large responses whose
 * bytes barely repeat (JSON of float digits), where zlib's string matching finds little and its
 * Huffman-only mode runs at ~170 MB/s. */
#ifndef RNNSERVE_CZHUFF_H
#define RNNSERVE_CZHUFF_H

#include <stddef.h>

#include "rnnserve/buf.h"
#include "rnnserve/compress.h"

/* Appends IN[len] to OUT as C (CZ_GZIP: RFC 1952; CZ_DEFLATE: the zlib format, RFC 1950), its
 * deflate data one block of Huffman-coded literals (RFC 1951, BTYPE 10, no matches). Returns 0;
 * 1 when FORCE is 0 and the block would not save at least 1/16 of LEN (random bytes: the caller
 * then leaves it to zlib, which stores them), OUT then unchanged; -1 when out of memory, OUT
 * unchanged but for its capacity. With FORCE it codes whatever the size (tests, fuzzing). OUT is
 * NUL-terminated after a success, as buf promises. */
int czh_compress(cz_coding c, const void *in, size_t len, int force, buf *out);

#endif
