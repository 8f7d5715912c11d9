/* jsonnum.h - JSON number text to float32, correctly rounded, straight from the request bytes.
 *
 * Requests carry tens of thousands of numbers; a DOM node per number and strtod-then-cast (which
 * rounds twice, and so is not always the float32 nearest the decimal) are what this replaces.
 * Nothing here allocates, reads the locale or keeps state: safe from any thread. */
#ifndef RNNSERVE_JSONNUM_H
#define RNNSERVE_JSONNUM_H

#include <stddef.h>

typedef enum {
    JN_OK,       /* *out is the float32 nearest the decimal (ties to even; tiny values to +-0) */
    JN_RANGE,    /* a number whose float32 rounding is +-infinity, though a double holds it */
    JN_OVERFLOW, /* a number beyond even a double (strtod returns HUGE_VAL): jansson, and so this
                    server, rejects the whole document ("real number overflow") */
    JN_SYNTAX    /* the text at p does not start a JSON number */
} jn_status;

/* Reads the JSON number that starts at p (p < end), RFC 8259's grammar
 *   -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
 * and stores in *next where it ends (on JN_SYNTAX, where the grammar broke; a leading zero
 * followed by a digit, "01", is JN_SYNTAX too). On JN_OK *out is the correctly rounded float32
 * (what glibc's strtof gives); otherwise *out is untouched. What follows the number is the
 * caller's to judge ("1x" reads as 1 and leaves "x"). */
jn_status jn_parse_f32(const char *p, const char *end, const char **next, float *out);

/* The double nearest the JSON number [p, end) (what strtod returns: +-HUGE_VAL on overflow), for
 * messages and the few fields read as doubles. [p, end) must be a whole valid number token. */
double jn_to_double(const char *p, const char *end);

#endif
