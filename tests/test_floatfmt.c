/* test_floatfmt.c - Check suite for floatfmt: known strings, the plain/scientific boundaries,
 * rounding to N digits, whole rows, and sweeps over the float32 bit patterns checked against libc's
 * correctly rounded strtof/strtod/printf. tools/floatfmt_exhaustive.c runs the same shortest
 * checks on all 2^32 patterns. */
#include "rnnserve/floatfmt.h"

#include <check.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every 4099th pattern: about a million floats, all exponents, both signs, in well under 2 s
 * under ASan. 4099 is prime, so the sample does not lock onto mantissa bit patterns. */
#define DENSE_STRIDE 4099u
/* The printf-backed precision sweep costs eight snprintf calls per float, so it samples less. */
#define PREC_STRIDE 65537u
/* The exact-tie sweep formats every sampled float but asks printf only about the ~10% whose
 * shortest form ends in 5. */
#define TIE_STRIDE 1031u
/* Rows of 1..40 numbers, one row per sampled pattern. */
#define ROW_STRIDE 262147u
/* Under valgrind (make valgrind) the sweeps run a fifth of their iterations: memcheck learns
 * nothing new from the rest, and CI's time is shared. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define SWEEP_DIVISOR (RUNNING_ON_VALGRIND ? 5 : 1)
#endif
#endif
#ifndef SWEEP_DIVISOR
#define SWEEP_DIVISOR 1
#endif
/* The sweeps check with `if (...) ck_abort_msg`, not ck_assert: in fork mode every passing
 * ck_assert sends its location to the parent, a system call each: several times slower. */

static float from_bits(uint32_t bits)
{
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

static uint32_t to_bits(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    return bits;
}

/* ff_format_f32, or ff_format_f32_prec when PREC, as a C string in S (FF_MAX_LEN + 1 bytes). */
static const char *fmt_into(char *s, float x, bool prec, int digits)
{
    const size_t n = prec ? ff_format_f32_prec(x, digits, s) : ff_format_f32(x, s);
    if (n > FF_MAX_LEN)
        ck_abort_msg("%zu bytes, more than FF_MAX_LEN", n);
    s[n] = '\0';
    return s;
}

#define FMT(x) fmt_into((char[FF_MAX_LEN + 1]){0}, (x), false, 0)
#define FMTP(x, d) fmt_into((char[FF_MAX_LEN + 1]){0}, (x), true, (d))

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* JSON's number grammar: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static bool is_json_number(const char *s)
{
    size_t i = 0;
    if (s[i] == '-')
        i++;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (is_digit(s[i]))
            i++;
    } else {
        return false;
    }
    if (s[i] == '.') {
        const size_t start = ++i;
        while (is_digit(s[i]))
            i++;
        if (i == start)
            return false;
    }
    if (s[i] == 'e' || s[i] == 'E') {
        i++;
        if (s[i] == '+' || s[i] == '-')
            i++;
        const size_t start = i;
        while (is_digit(s[i]))
            i++;
        if (i == start)
            return false;
    }
    return s[i] == '\0';
}

/* A printed number as sign and DIGITS * 10^EXP, trailing zeros moved into EXP. */
struct dec {
    bool neg;
    uint64_t digits;
    int exp;
    int len; /* significant digits */
};

/* Parses a JSON number (or printf's %e output) into D; returns a complaint about the house
 * notation when NOTATION is set, else NULL. The notation: plain exactly when the printed value's
 * leading digit is at 10^-5 .. 10^8; scientific as d[.ddd]e[+-]N without a leading zero in N;
 * no trailing zero after a point; at most 9 significant digits. */
static const char *parse_dec(const char *s, struct dec *d, bool notation)
{
    const char *p = s;
    d->neg = *p == '-';
    p += d->neg;
    const char *mant = p;
    uint64_t digits = 0;
    int frac = 0, sig = 0;
    bool point = false;
    for (; *p && *p != 'e'; p++) {
        if (*p == '.') {
            point = true;
            continue;
        }
        if (digits || *p != '0')
            sig++;
        if (sig <= 18)
            digits = digits * 10 + (uint64_t)(*p - '0');
        else
            frac--; /* printf %e never gets here; keeps a long input from overflowing */
        frac += point;
    }
    const bool sci = *p == 'e';
    const int e = sci ? atoi(p + 1) : 0;
    d->exp = e - frac;
    while (digits != 0 && digits % 10 == 0) {
        digits /= 10;
        d->exp++;
    }
    d->digits = digits;
    d->len = 0;
    for (uint64_t v = digits; v; v /= 10)
        d->len++;
    if (!notation)
        return NULL;
    if (sci) {
        if (p[1] != '+' && p[1] != '-')
            return "exponent without a sign";
        if (p[2] == '0')
            return "exponent with a leading zero";
        if (mant[0] == '0')
            return "scientific mantissa starts with 0";
        if (point ? mant[1] != '.' : p - mant != 1)
            return "scientific mantissa without exactly one integer digit";
    }
    if (point && p[-1] == '0')
        return "trailing zero after the point";
    if (sig > 9)
        return "more than 9 significant digits";
    if (digits == 0)
        return NULL;
    const int lead = d->exp + d->len - 1;
    const bool plain = lead >= -5 && lead <= 8;
    if (plain == sci)
        return plain ? "scientific notation inside the plain range"
                     : "plain notation outside the plain range";
    return NULL;
}

static void put_uint(char **p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *(*p)++ = tmp[--n];
}

/* DIGITS * 10^EXP as a C string, by hand: snprintf would dominate the sweep's run time. */
static const char *dec_string(char *buf, bool neg, uint64_t digits, int exp)
{
    char *p = buf;
    if (neg)
        *p++ = '-';
    put_uint(&p, digits);
    *p++ = 'e';
    if (exp < 0)
        *p++ = '-';
    put_uint(&p, (uint64_t)(exp < 0 ? -exp : exp));
    *p = '\0';
    return buf;
}

static bool round_trips(float x, bool neg, uint64_t digits, int exp)
{
    char s[48];
    return to_bits(strtof(dec_string(s, neg, digits, exp), NULL)) == to_bits(x);
}

/* Sign of |X| - DIGITS * 10^EXP, exactly. strtod settles it unless the decimal rounds to |X|
 * itself; then printf's exact expansion of |X| (at most 112 significant digits for a float)
 * decides digit by digit. */
static int cmp_abs(float x, uint64_t digits, int exp)
{
    char s[48], full[200], yd[32];
    const double ax = fabs((double)x);
    const double y = strtod(dec_string(s, false, digits, exp), NULL);
    if (ax != y)
        return ax < y ? -1 : 1;
    snprintf(full, sizeof full, "%.150e", ax);
    const int xlead = atoi(strchr(full, 'e') + 1);
    const int yn = snprintf(yd, sizeof yd, "%" PRIu64, digits);
    const int ylead = exp + yn - 1;
    if (xlead != ylead)
        return xlead < ylead ? -1 : 1;
    const char *xp = full;
    for (int i = 0; *xp != 'e' || i < yn; i++) {
        while (*xp == '.')
            xp++;
        const char a = *xp != 'e' ? *xp++ : '0', b = i < yn ? yd[i] : '0';
        if (a != b)
            return a < b ? -1 : 1;
    }
    return 0;
}

/* Every property ff_format_f32 promises for finite X; NULL when all hold. OUT receives the
 * string (FF_MAX_LEN + 1 bytes). */
static const char *check_shortest(float x, char *out)
{
    char buf[FF_MAX_LEN + 8];
    memset(buf, 0x7f, sizeof buf);
    const size_t n = ff_format_f32(x, buf);
    if (n == 0 || n > FF_MAX_LEN)
        return "length out of range";
    memcpy(out, buf, n);
    out[n] = '\0';
    for (size_t i = n; i < sizeof buf; i++)
        if (buf[i] != 0x7f)
            return "wrote past the returned length";
    if (!is_json_number(out))
        return "not a JSON number";
    if (to_bits(strtof(out, NULL)) != to_bits(x))
        return "does not round-trip through strtof";
    struct dec d;
    const char *bad = parse_dec(out, &d, true);
    if (bad || d.digits == 0)
        return bad;

    /* Shortest: a shorter decimal inside the (convex) rounding interval would put the floor or
     * the ceiling of D on the one-digit-shorter grid inside it too, so those two suffice. This
     * also covers rounding the exact value to n-1 digits, which is one of them. */
    if (d.len >= 2) {
        const uint64_t t = d.digits / 10;
        if (round_trips(x, d.neg, t, d.exp + 1) || round_trips(x, d.neg, t + 1, d.exp + 1))
            return "a shorter decimal round-trips";
    }

    /* Nearest among the n-digit candidates: any nearer one makes a grid neighbour of D nearer
     * too. An exact tie must go to the even one. Below a power of ten the grid is finer. */
    const bool pow10 = d.digits == 1;
    if (round_trips(x, d.neg, d.digits + 1, d.exp)) {
        const int c = cmp_abs(x, d.digits * 10 + 5, d.exp - 1);
        if (c > 0 || (c == 0 && d.digits % 2))
            return "the next decimal up is nearer the exact value";
    }
    if (round_trips(x, d.neg, pow10 ? 9 : d.digits - 1, pow10 ? d.exp - 1 : d.exp)) {
        const int c = pow10 ? cmp_abs(x, 95, d.exp - 2) : cmp_abs(x, d.digits * 10 - 5, d.exp - 1);
        if (c < 0 || (c == 0 && d.digits % 2))
            return "the next decimal down is nearer the exact value";
    }
    return NULL;
}

struct known {
    float x;
    const char *s;
};

static void check_known(const struct known *k, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(strcmp(FMT(k[i].x), k[i].s) == 0, "0x%08" PRIx32 ": got \"%s\", want \"%s\"",
                      to_bits(k[i].x), FMT(k[i].x), k[i].s);
}

START_TEST(test_shortest_known_values)
{
    const struct known k[] = {
        {0.1f, "0.1"},
        {1.0f / 3, "0.33333334"},
        {2.0f / 3, "0.6666667"},
        {0.5f, "0.5"},
        {0.3f, "0.3"},
        {123.456f, "123.456"},
        {3.14159265f, "3.1415927"},
        {FLT_MAX, "3.4028235e+38"},
        {FLT_MIN, "1.1754944e-38"},
        {from_bits(0x00000001), "1e-45"},         /* smallest denormal */
        {from_bits(0x007fffff), "1.1754942e-38"}, /* largest denormal */
        {from_bits(0x3f800001), "1.0000001"},     /* one ulp above 1 */
        {16777216.0f, "16777216"},                /* 2^24 */
        {16777218.0f, "16777218"},
        {1.0e7f, "10000000"},
        {123456789.0f, "123456790"}, /* stored as 123456792 */
        {1.5e20f, "1.5e+20"},
        {1.0e38f, "1e+38"},
        {1.0e-7f, "1e-7"},
        {1.25e-6f, "1.25e-6"},
        {9.8765434e-12f, "9.876543e-12"},
        {33554432.0f, "33554432"},
    };
    check_known(k, sizeof k / sizeof k[0]);
}
END_TEST

START_TEST(test_zero_prints_0_and_negative_zero_prints_minus_0)
{
    ck_assert_str_eq(FMT(0.0f), "0");
    ck_assert_str_eq(FMT(-0.0f), "-0");
    ck_assert_str_eq(FMTP(0.0f, 3), "0");
    ck_assert_str_eq(FMTP(-0.0f, 1), "-0");
}
END_TEST

START_TEST(test_integers_print_without_point)
{
    const struct known k[] = {
        {1.0f, "1"},
        {3.0f, "3"},
        {-12.0f, "-12"},
        {10.0f, "10"},
        {100.0f, "100"},
        {65536.0f, "65536"},
        {100000000.0f, "100000000"},
        {-7e8f, "-700000000"},
    };
    check_known(k, sizeof k / sizeof k[0]);
}
END_TEST

START_TEST(test_negative_values_are_positive_with_minus)
{
    const float xs[] = {0.1f, 1.0f / 3, FLT_MAX, FLT_MIN, from_bits(1), 1e9f, 1e-5f, 12.5f, 3e-7f};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        char want[FF_MAX_LEN + 2] = "-";
        strcat(want, FMT(xs[i]));
        ck_assert_str_eq(FMT(-xs[i]), want);
    }
    ck_assert_str_eq(FMT(-3.4028235e38f), "-3.4028235e+38");
    ck_assert_str_eq(FMT(-0.1f), "-0.1");
    ck_assert_str_eq(FMT(-1e-7f), "-1e-7");
}
END_TEST

/* The header's rule (plain for 1e-5 <= |x| < 1e9) is applied to the printed value: 1e-5f is a
 * hair below 1e-5 exactly, but it prints as 1e-5, so it takes the plain form. */
START_TEST(test_plain_range_is_1e_minus5_to_below_1e9)
{
    const struct known k[] = {
        {1e-5f, "0.00001"},
        {nextafterf(1e-5f, 0), "9.999999e-6"},
        {nextafterf(1e-5f, 1), "0.000010000001"},
        {1.2345678e-5f, "0.000012345678"},
        {0.0001f, "0.0001"},
        {99999.99f, "99999.99"},
        {nextafterf(1e9f, 0), "999999940"},
        {1e9f, "1e+9"},
        {nextafterf(1e9f, 2e9f), "1.00000006e+9"}, /* 1000000064 */
        {-1e9f, "-1e+9"},
        {1e10f, "1e+10"},
        {-1.2345678e-5f, "-0.000012345678"},
    };
    check_known(k, sizeof k / sizeof k[0]);
}
END_TEST

START_TEST(test_scientific_exponent_has_sign_and_no_leading_zero)
{
    const struct known k[] = {
        {1e-6f, "1e-6"},
        {1e-10f, "1e-10"},
        {2.5e-45f, "3e-45"},
        {1e20f, "1e+20"},
        {4.2e21f, "4.2e+21"},
        {1.25e-6f, "1.25e-6"},
        {6.0221409e23f, "6.022141e+23"},
    };
    check_known(k, sizeof k / sizeof k[0]);
}
END_TEST

START_TEST(test_nonfinite_prints_null)
{
    /* Outside the contract; pinned so a caller's slip still yields parseable JSON. */
    ck_assert_str_eq(FMT(INFINITY), "null");
    ck_assert_str_eq(FMT(-INFINITY), "null");
    ck_assert_str_eq(FMT(NAN), "null");
    ck_assert_str_eq(FMTP(NAN, 3), "null");
}
END_TEST

START_TEST(test_longest_outputs_fit_ff_max_len)
{
    /* The longest forms: a negative 9-digit mantissa with a two-digit exponent, and the
     * deepest plain fraction. */
    char buf[FF_MAX_LEN + 8];
    const float xs[] = {-1.1754942e-38f, -1.2345678e-5f, -1.0000001e-5f, -FLT_MAX, -123456.79f};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        memset(buf, 0x7f, sizeof buf);
        const size_t n = ff_format_f32(xs[i], buf);
        ck_assert_uint_le(n, 16);
        for (size_t j = n; j < sizeof buf; j++)
            ck_assert_int_eq(buf[j], 0x7f);
    }
}
END_TEST

START_TEST(test_shortest_roundtrips_dense_sweep)
{
    char out[FF_MAX_LEN + 1];
    unsigned long checked = 0;
    for (uint64_t u = 0; u < (UINT64_C(1) << 32); u += DENSE_STRIDE) {
        const uint32_t bits = (uint32_t)u;
        if (((bits >> 23) & 0xff) == 0xff)
            continue;
        const char *why = check_shortest(from_bits(bits), out);
        if (why)
            ck_abort_msg("0x%08" PRIx32 " -> \"%s\": %s", bits, out, why);
        checked++;
    }
    ck_assert_uint_gt(checked, 1000000);
}
END_TEST

START_TEST(test_shortest_small_denormals_and_binade_edges)
{
    /* The sweep's stride skips most of these, and Ryu's bounds are asymmetric exactly at the
     * powers of two, where the gap below is half the gap above. */
    char out[FF_MAX_LEN + 1];
    for (uint32_t e = 0; e < 255; e++) {
        for (uint32_t m = 0; m < 4; m++) {
            const uint32_t edge[] = {e << 23 | m, (e << 23 | 0x7fffff) - m};
            for (int i = 0; i < 2; i++) {
                const char *why = check_shortest(from_bits(edge[i]), out);
                if (why)
                    ck_abort_msg("0x%08" PRIx32 " -> \"%s\": %s", edge[i], out, why);
            }
        }
    }
    for (uint32_t bits = 0; bits < 4096; bits++) {
        const char *why = check_shortest(from_bits(bits), out);
        if (why)
            ck_abort_msg("0x%08" PRIx32 " -> \"%s\": %s", bits, out, why);
    }
}
END_TEST

START_TEST(test_prec_rounds_half_even_on_exact_value)
{
    /* 0.125 and 0.375 are exact ties; 0.35f and 0.45f print as ties but sit just below. */
    ck_assert_str_eq(FMTP(0.125f, 2), "0.12");
    ck_assert_str_eq(FMTP(0.375f, 2), "0.38");
    ck_assert_str_eq(FMTP(2.5f, 1), "2");
    ck_assert_str_eq(FMTP(3.5f, 1), "4");
    ck_assert_str_eq(FMTP(0.25f, 1), "0.2");
    ck_assert_str_eq(FMTP(0.75f, 1), "0.8");
    ck_assert_str_eq(FMTP(125.0f, 2), "120");
    ck_assert_str_eq(FMTP(135.0f, 2), "140");
    ck_assert_str_eq(FMTP(1.25e9f, 2), "1.2e+9");
    ck_assert_str_eq(FMTP(-0.125f, 2), "-0.12");
    ck_assert_str_eq(FMTP(0.35f, 1), "0.3");   /* 0.3499999940... */
    ck_assert_str_eq(FMTP(0.45f, 1), "0.4");   /* 0.4499999880... */
    ck_assert_str_eq(FMTP(0.15f, 1), "0.2");   /* 0.1500000059... */
    ck_assert_str_eq(FMTP(2.675f, 3), "2.67"); /* 2.6749999523... */
    /* Shortest ends in 5 one digit past the cut, in every exponent range, so only the exact
     * binary value can decide: the denormal 4.5e-44 is 4.484...e-44 and 1.5e-44 is 1.541...e-44;
     * 1.0000005e+20 is 1.0000004598...e20 and 1.0000015e+20 is 1.0000015153...e20. */
    ck_assert_str_eq(FMTP(from_bits(0x00000020), 1), "4e-44");
    ck_assert_str_eq(FMTP(from_bits(0x0000000b), 1), "2e-44");
    ck_assert_str_eq(FMTP(from_bits(0x006ce3f2), 7), "1e-38");
    ck_assert_str_eq(FMTP(from_bits(0x60ad78f1), 7), "1e+20");
    ck_assert_str_eq(FMTP(from_bits(0x60ad78fd), 7), "1.000002e+20");
}
END_TEST

START_TEST(test_prec_keeps_shortest_when_it_is_short_enough)
{
    /* 0.1f is 0.100000001490116..., but its shortest form already has one digit. */
    ck_assert_str_eq(FMTP(0.1f, 1), "0.1");
    ck_assert_str_eq(FMTP(0.1f, 8), "0.1");
    ck_assert_str_eq(FMTP(100.0f, 1), "100");
    ck_assert_str_eq(FMTP(1e9f, 1), "1e+9");
    ck_assert_str_eq(FMTP(12.5f, 3), "12.5");
    ck_assert_str_eq(FMTP(from_bits(1), 1), "1e-45");
    /* 2^30 = 1073741824 prints shortest as 1.0737418e+9; 8 digits keep exactly that. */
    ck_assert_str_eq(FMTP(1073741824.0f, 8), "1.0737418e+9");
}
END_TEST

START_TEST(test_prec_rounds_to_n_significant_digits)
{
    ck_assert_str_eq(FMTP(1.0f / 3, 1), "0.3");
    ck_assert_str_eq(FMTP(1.0f / 3, 3), "0.333");
    ck_assert_str_eq(FMTP(2.0f / 3, 3), "0.667");
    ck_assert_str_eq(FMTP(2.0f / 3, 8), "0.6666667"); /* shortest has 7 digits */
    ck_assert_str_eq(FMTP(3.14159265f, 4), "3.142");
    ck_assert_str_eq(FMTP(123456.78f, 3), "123000");
    ck_assert_str_eq(FMTP(-123456.78f, 5), "-123460");
    ck_assert_str_eq(FMTP(FLT_MAX, 3), "3.4e+38");
    ck_assert_str_eq(FMTP(-FLT_MAX, 4), "-3.403e+38");
    ck_assert_str_eq(FMTP(FLT_MIN, 2), "1.2e-38");
    ck_assert_str_eq(FMTP(1.2345678e-5f, 3), "0.0000123");
    ck_assert_str_eq(FMTP(1.2345678e-7f, 3), "1.23e-7");
}
END_TEST

START_TEST(test_prec_drops_trailing_zeros_and_carries)
{
    ck_assert_str_eq(FMTP(0.96f, 1), "1");
    ck_assert_str_eq(FMTP(9.99f, 2), "10");
    ck_assert_str_eq(FMTP(0.19999f, 2), "0.2");
    ck_assert_str_eq(FMTP(1.0001f, 3), "1");
    ck_assert_str_eq(FMTP(999999.9f, 3), "1000000");
    ck_assert_str_eq(FMTP(9.9999e20f, 2), "1e+21");
    /* Carries cross the notation boundary both ways. */
    ck_assert_str_eq(FMTP(nextafterf(1e9f, 0), 2), "1e+9");
    ck_assert_str_eq(FMTP(9.9996e-6f, 3), "0.00001");
}
END_TEST

START_TEST(test_prec_digits_out_of_range_are_clamped)
{
    ck_assert_str_eq(FMTP(2.0f / 3, 0), "0.7");
    ck_assert_str_eq(FMTP(2.0f / 3, -5), "0.7");
    ck_assert_str_eq(FMTP(2.0f / 3, INT_MIN), "0.7");
    ck_assert_str_eq(FMTP(2.0f / 3, 9), FMT(2.0f / 3));
    ck_assert_str_eq(FMTP(1.0f / 3, 12), "0.33333334");
    ck_assert_str_eq(FMTP(FLT_MAX, INT_MAX), "3.4028235e+38");
}
END_TEST

/* The expected ff_format_f32_prec result: the shortest form when it has at most DIGITS digits,
 * else glibc's %.*e, which rounds the exact binary value half to even. */
static void expected_prec(float x, int digits, struct dec *want)
{
    char s[64];
    parse_dec(FMT(x), want, false);
    if (want->len <= digits)
        return;
    snprintf(s, sizeof s, "%.*e", digits - 1, (double)x);
    parse_dec(s, want, false);
}

START_TEST(test_prec_matches_printf_rounding_sweep)
{
    char s[FF_MAX_LEN + 1];
    for (uint64_t u = 0; u < (UINT64_C(1) << 32); u += PREC_STRIDE) {
        const uint32_t bits = (uint32_t)u;
        if (((bits >> 23) & 0xff) == 0xff)
            continue;
        const float x = from_bits(bits);
        for (int digits = 1; digits <= 8; digits++) {
            fmt_into(s, x, true, digits);
            struct dec got, want;
            if (!is_json_number(s))
                ck_abort_msg("0x%08" PRIx32 " to %d: \"%s\" is not JSON", bits, digits, s);
            const char *bad = parse_dec(s, &got, true);
            if (bad)
                ck_abort_msg("0x%08" PRIx32 " to %d: \"%s\": %s", bits, digits, s, bad);
            expected_prec(x, digits, &want);
            if (got.neg != want.neg || got.digits != want.digits || got.exp != want.exp)
                ck_abort_msg("0x%08" PRIx32 " to %d digits: got \"%s\", want %" PRIu64 "e%d", bits,
                             digits, s, want.digits, want.exp);
        }
    }
}
END_TEST

START_TEST(test_prec_exact_ties_sweep)
{
    /* Where the shortest form ends in 5 one digit past the cut, only the exact binary value can
     * decide (to_decimal's round-to-odd sign); printf's %.*e rounds that exact value. */
    char s[FF_MAX_LEN + 1];
    size_t checked = 0;
    for (uint64_t u = 0; u < (UINT64_C(1) << 32); u += TIE_STRIDE * SWEEP_DIVISOR) {
        const uint32_t bits = (uint32_t)u;
        if (((bits >> 23) & 0xff) == 0xff)
            continue;
        const float x = from_bits(bits);
        struct dec d;
        parse_dec(FMT(x), &d, false);
        if (d.len < 2 || d.digits % 10 != 5)
            continue;
        checked++;
        struct dec got, want;
        fmt_into(s, x, true, d.len - 1);
        parse_dec(s, &got, false);
        expected_prec(x, d.len - 1, &want);
        if (got.neg != want.neg || got.digits != want.digits || got.exp != want.exp)
            ck_abort_msg("0x%08" PRIx32 " to %d digits: got \"%s\", want %" PRIu64 "e%d", bits,
                         d.len - 1, s, want.digits, want.exp);
    }
    ck_assert_uint_gt(checked, 100000 / SWEEP_DIVISOR);
}
END_TEST

/* ---- rows ------------------------------------------------------------------------------------ */

/* V[N] as ff_format_f32_prec prints each, joined with commas: what ff_format_row must write. */
static size_t joined(const float *v, size_t n, int digits, char *out)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (i)
            out[len++] = ',';
        len += ff_format_f32_prec(v[i], digits, out + len);
    }
    return len;
}

START_TEST(test_row_is_the_numbers_joined_with_commas)
{
    /* Rows of 1..40 numbers drawn from a sweep of bit patterns, at every precision; the row
     * writer's scratch stays inside the room the header asks for. */
    enum { MAXN = 40 };
    float v[MAXN];
    char got[MAXN * FF_ROW_LEN + FF_ROW_SLACK + 16], want[MAXN * (FF_MAX_LEN + 1)];
    uint32_t bits = 0x3f800000u;
    size_t rows = 0;
    for (uint64_t u = 0; u < (UINT64_C(1) << 32); u += ROW_STRIDE * SWEEP_DIVISOR, rows++) {
        const size_t n = 1 + rows % MAXN;
        for (size_t i = 0; i < n; i++) {
            bits = bits * 1664525u + 1013904223u; /* any pattern, but finite */
            v[i] = from_bits((bits & 0x7f800000u) == 0x7f800000u ? bits & 0xbfffffffu : bits);
        }
        v[0] = from_bits((uint32_t)u & 0xbfffffffu);
        const int digits = 1 + (int)(rows % 9);
        memset(got, 0x7f, sizeof got);
        size_t bad = 12345;
        const size_t len = ff_format_row(v, n, digits, got, &bad);
        const size_t wlen = joined(v, n, digits, want);
        if (len != wlen || memcmp(got, want, len) != 0)
            ck_abort_msg("row of %zu at %d digits: got \"%.*s\", want \"%.*s\"", n, digits,
                         (int)len, got, (int)wlen, want);
        if (len > n * FF_ROW_LEN - 1)
            ck_abort_msg("row of %zu: %zu bytes, over FF_ROW_LEN", n, len);
        for (size_t i = n * FF_ROW_LEN + FF_ROW_SLACK; i < sizeof got; i++)
            if (got[i] != 0x7f)
                ck_abort_msg("row of %zu wrote past its room", n);
        ck_assert_uint_eq(bad, 12345);
    }
}
END_TEST

START_TEST(test_row_of_longest_numbers_fits_row_len)
{
    const float v[] = {-1.2345678e-5f, -1.0000001e-5f, -1.1754942e-38f,
                       -FLT_MAX,       -123456.79f,    -1.2345679e-5f};
    const size_t n = sizeof v / sizeof v[0];
    char buf[sizeof v / sizeof v[0] * FF_ROW_LEN + FF_ROW_SLACK];
    size_t bad;
    const size_t len = ff_format_row(v, n, 9, buf, &bad);
    ck_assert_uint_le(len, n * FF_ROW_LEN - 1);
    ck_assert_int_eq(memcmp(buf, "-0.000012345678,", 16), 0);
}
END_TEST

START_TEST(test_row_stops_at_the_first_non_finite_value)
{
    const float specials[] = {NAN, INFINITY, -INFINITY, -NAN};
    float v[6] = {0.5f, -1, 2e-7f, 3, 4, 5};
    char buf[6 * FF_ROW_LEN + FF_ROW_SLACK];
    for (size_t k = 0; k < 6; k++) {
        for (int prec = 4; prec <= 9; prec += 5) {
            float w[6];
            memcpy(w, v, sizeof w);
            w[k] = specials[k % 4];
            if (k < 5)
                w[k + 1] = NAN; /* only the first counts */
            size_t bad = 99;
            ck_assert(ff_format_row(w, 6, prec, buf, &bad) == FF_NOT_FINITE);
            ck_assert_uint_eq(bad, k);
        }
    }
    size_t bad = 99;
    ck_assert_uint_eq(ff_format_row(v, 6, 9, buf, &bad), strlen("0.5,-1,2e-7,3,4,5"));
    ck_assert_int_eq(memcmp(buf, "0.5,-1,2e-7,3,4,5", 17), 0);
    ck_assert_uint_eq(ff_format_row(v, 0, 9, buf, &bad), 0);
    ck_assert_uint_eq(bad, 99);
}
END_TEST

static Suite *floatfmt_suite(void)
{
    Suite *s = suite_create("floatfmt");
    TCase *shortest = tcase_create("shortest");
    tcase_add_test(shortest, test_shortest_known_values);
    tcase_add_test(shortest, test_zero_prints_0_and_negative_zero_prints_minus_0);
    tcase_add_test(shortest, test_integers_print_without_point);
    tcase_add_test(shortest, test_negative_values_are_positive_with_minus);
    tcase_add_test(shortest, test_plain_range_is_1e_minus5_to_below_1e9);
    tcase_add_test(shortest, test_scientific_exponent_has_sign_and_no_leading_zero);
    tcase_add_test(shortest, test_nonfinite_prints_null);
    tcase_add_test(shortest, test_longest_outputs_fit_ff_max_len);
    suite_add_tcase(s, shortest);

    TCase *sweep = tcase_create("sweep");
    tcase_set_timeout(sweep, 30); /* the budget is 2 s; the slack is for loaded CI machines */
    tcase_add_test(sweep, test_shortest_roundtrips_dense_sweep);
    tcase_add_test(sweep, test_shortest_small_denormals_and_binade_edges);
    tcase_add_test(sweep, test_prec_matches_printf_rounding_sweep);
    tcase_add_test(sweep, test_prec_exact_ties_sweep);
    tcase_add_test(sweep, test_row_is_the_numbers_joined_with_commas);
    suite_add_tcase(s, sweep);

    TCase *prec = tcase_create("prec");
    tcase_add_test(prec, test_prec_rounds_half_even_on_exact_value);
    tcase_add_test(prec, test_prec_keeps_shortest_when_it_is_short_enough);
    tcase_add_test(prec, test_prec_rounds_to_n_significant_digits);
    tcase_add_test(prec, test_prec_drops_trailing_zeros_and_carries);
    tcase_add_test(prec, test_prec_digits_out_of_range_are_clamped);
    suite_add_tcase(s, prec);

    TCase *row = tcase_create("row");
    tcase_add_test(row, test_row_of_longest_numbers_fits_row_len);
    tcase_add_test(row, test_row_stops_at_the_first_non_finite_value);
    suite_add_tcase(s, row);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(floatfmt_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
