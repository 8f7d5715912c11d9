/* utf8.h - UTF-8 validation, with jansson's verdicts (RFC 3629: no overlongs, no surrogates,
 * nothing past U+10FFFF). One copy for the JSON reader and every JSON writer. */
#ifndef RNNSERVE_UTF8_H
#define RNNSERVE_UTF8_H

#include <stddef.h>

/* Length (2..4) of the valid multi-byte sequence starting at P, which may read up to END; 0 when
 * P does not start one (an ASCII byte, a stray continuation byte, an overlong form, a surrogate,
 * past U+10FFFF, or cut short by END). */
size_t utf8_seq_len(const unsigned char *p, const unsigned char *end);

/* Whether the LEN bytes at S are valid UTF-8. */
int utf8_valid(const char *s, size_t len);

#endif
