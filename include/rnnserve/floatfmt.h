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

/* Bytes one number of a row takes at most: "-0.0000" and 9 digits, and its comma. */
#define FF_ROW_LEN 17
/* Scratch room a row needs past its last number: numbers are laid out with fixed-size copies
 * (no per-digit or per-length branches), which write beyond the text they leave. */
#define FF_ROW_SLACK 32
/* What ff_format_row returns on a non-finite value. */
#define FF_NOT_FINITE ((size_t)-1)

/* The N finite floats of V as JSON numbers joined by commas ("0.5,-1,2e-7": no brackets),
 * each exactly as ff_format_f32_prec(v[i], DIGITS) prints it, into buf, which must have room
 * for N * FF_ROW_LEN + FF_ROW_SLACK bytes; what lies past the returned length is scratch.
 * Returns the length. At the first value that is not finite it stops and returns FF_NOT_FINITE
 * with the value's index in *bad (buf then holds nothing useful). This is the response encoder's
 * loop: one call per row, no per-number call, bounds check or separator branch. */
size_t ff_format_row(const float *v, size_t n, int digits, char *buf, size_t *bad);

#endif
