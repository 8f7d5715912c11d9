/* compress.h - HTTP content codings over zlib, without HTTP: which coding a Content-Encoding or
 * Accept-Encoding value names, bounded streaming inflation of request bodies, and whole-buffer
 * compression of responses.
 *
 * A body inflates into at most CAP bytes of the caller's buffer, however small it was on the wire
 * (a zip bomb costs CAP bytes, never more). Errors are return codes, an HTTP status for the caller
 * to answer with, and one message in err[errlen]. */
#ifndef RNNSERVE_COMPRESS_H
#define RNNSERVE_COMPRESS_H

#include <stddef.h>

#include "rnnserve/buf.h"

typedef enum {
    CZ_IDENTITY, /* no coding */
    CZ_GZIP,     /* RFC 1952, members concatenated as the RFC allows */
    CZ_DEFLATE,  /* HTTP's "deflate": the zlib format (RFC 1950), or raw deflate (RFC 1951) */
} cz_coding;

/* "gzip", "deflate" or "identity": the coding's name in HTTP. */
const char *cz_coding_name(cz_coding c);

/* Parses a Content-Encoding header value: "gzip" or "x-gzip", "deflate", "identity" (or an
 * empty value), case-insensitive, surrounded by optional whitespace. Returns 0 with *out set, or
 * -1 with a message naming what was refused (the caller answers 415): a coding rnnserve does not
 * decode ("unsupported Content-Encoding "br" (supported: gzip, deflate, identity)") or several
 * stacked ones ("stacked Content-Encodings are not supported: "gzip, gzip""). */
int cz_parse_content_encoding(const char *value, cz_coding *out, char *err, size_t errlen);

/* Picks the response coding from an Accept-Encoding header value (NULL when the request has
 * none: identity) per RFC 9110 section 12.5.3: q-values, "*" for any coding not listed,
 * "x-gzip" as gzip, refusals by q=0. The acceptable coding of highest q wins; gzip before
 * deflate at equal q; identity only when it ranks strictly above both (or neither is
 * acceptable), since an unlisted identity is acceptable but not preferred. Elements that do not
 * parse (a bad q-value, junk) are ignored. Returns 0 with *out set, or -1 when even identity is
 * refused ("identity;q=0", or "*;q=0" without identity listed) and neither gzip nor deflate is
 * acceptable: *out is then CZ_IDENTITY, and the caller answers unencoded anyway (RFC 9110
 * allows that) or with 406. */
int cz_choose_encoding(const char *accept, cz_coding *out);

/* Bodies shorter than this go out unencoded: gzip's 18 bytes of framing and the time spent
 * would save next to nothing on a body that fits one TCP segment. */
#define CZ_MIN_COMPRESS_BYTES 1024

/* 1 when a response body of N bytes is worth compressing (N >= CZ_MIN_COMPRESS_BYTES). */
int cz_worth_compressing(size_t n);

/* Compresses IN[len] as C (CZ_GZIP or CZ_DEFLATE, the zlib format) into OUT, appended; OUT is
 * the caller's (buf_take or buf_free it). Returns 0, or -1 with err (out of memory, or C is
 * CZ_IDENTITY), OUT then unchanged but for its capacity. */
int cz_compress(cz_coding c, const void *in, size_t len, buf *out, char *err, size_t errlen);

/* A request body being inflated as it arrives. */
typedef struct cz_inflater cz_inflater;

/* A new inflater for coding C (CZ_GZIP or CZ_DEFLATE) that inflates at most CAP bytes in all;
 * the caller frees it with cz_inflater_free. NULL when out of memory or C is CZ_IDENTITY. */
cz_inflater *cz_inflater_new(cz_coding c, size_t cap);

/* Inflates the next LEN compressed bytes at IN (any split of the body: one byte at a time gives
 * what one chunk gives), appending the inflated bytes to OUT. Returns 0, or -1 with *status and
 * err; every later call then fails the same way. The errors:
 *   413 "inflated body exceeds max_body_bytes CAP" (OUT then holds exactly CAP inflated bytes);
 *   400 "gzip body is corrupt: <zlib's message>" ("deflate body ..." for deflate);
 *   400 "gzip body has trailing bytes after its end" (bytes after the last gzip member, or after
 *       the deflate stream);
 *   500 "out of memory inflating the body".
 * OUT's capacity never grows past its length before the call plus CAP plus one byte (its NUL). */
int cz_inflate(cz_inflater *z, const void *in, size_t len, buf *out, int *status, char *err,
               size_t errlen);

/* Once the whole body was fed: 0 when it held complete streams, else -1 with *status 400 and
 * "gzip body ends before its stream does" (or the error an earlier cz_inflate returned). */
int cz_inflate_end(cz_inflater *z, int *status, char *err, size_t errlen);

/* Inflated bytes so far. */
size_t cz_inflated_bytes(const cz_inflater *z);

void cz_inflater_free(cz_inflater *z);

#endif
