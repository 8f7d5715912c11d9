/* floatfmt.h - shortest round-trip printing of float32 values as JSON numbers.
 *
 * Responses carry hundreds of thousands of floats; printf("%.9g") costs ~100 ns each and
 * doubles the size. These write the shortest decimal that reads back (strtof) to the same
 * float32, straight into the caller's buffer, with no locale and no allocation. */
#ifndef RNNSERVE_FLOATFMT_H
#define RNNSERVE_FLOATFMT_H

#include <stddef.h>

/* Room a caller must leave for one number (sign, 9 digits, point, exponent, spare). */
#define FF_MAX_LEN 24

/* Writes finite X as the shortest JSON number that strtof() parses back to exactly X (at most 9
 * significant digits), into buf[FF_MAX_LEN], without a terminating NUL. Returns the length.
 * Plain notation for 1e-5 <= |x| < 1e9 ("0.1", "-12.5", "3"), otherwise scientific ("1e-7",
 * "1.5e+20"). Zero prints "0", negative zero "-0". X must be finite (callers check isfinite). */
size_t ff_format_f32(float x, char *buf);

/* As ff_format_f32, but rounded to DIGITS (1..9) significant digits, round-half-even on the
 * exact binary value, trailing zeros dropped. DIGITS >= 9 behaves as ff_format_f32. */
size_t ff_format_f32_prec(float x, int digits, char *buf);

#endif
