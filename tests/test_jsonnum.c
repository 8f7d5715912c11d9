/* test_jsonnum.c - Check suite for jsonnum: JSON number text to float32 against glibc's strtof
 * (correctly rounded) on random decimal strings of every length and exponent, on the exact
 * halfway points between neighbouring floats and just either side of them, on long and extreme
 * inputs; the number grammar; and the float32/double range verdicts against strtof/strtod. */
#include "rnnserve/floatfmt.h"
#include "rnnserve/jsonnum.h"

#include <check.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Random strings per sweep: about a second for all sweeps under ASan. */
#define RANDOM_STRINGS 200000
/* Random mantissas tried at each decimal exponent of the conversion's table. */
#define PER_EXPONENT 1500
/* Floats whose halfway points are tried (each three ways). */
#define HALFWAYS 60000
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
 * ck_assert sends its location to the parent, a system call each. */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static uint32_t to_bits(float x)
{
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}

static float from_bits(uint32_t b)
{
    float x;
    memcpy(&x, &b, sizeof x);
    return x;
}

/* Parses the whole of S with jn_parse_f32 and checks it against strtof/strtod: the same float
 * bits when strtof is finite, JN_RANGE when only the double is, JN_OVERFLOW when neither is.
 * NULL when all agree, else a description (static buffer). */
static const char *check_against_libc(const char *s)
{
    static char why[512];
    const size_t n = strlen(s);
    const char *next = NULL;
    float got = -12345.0f;
    const jn_status st = jn_parse_f32(s, s + n, &next, &got);
    const float want = strtof(s, NULL);
    const double dwant = strtod(s, NULL);
    if (next != s + n) {
        snprintf(why, sizeof why, "\"%.300s\": stopped after %td of %zu bytes", s, next - s, n);
        return why;
    }
    const jn_status expect = !isinf(want) ? JN_OK : !isinf(dwant) ? JN_RANGE : JN_OVERFLOW;
    if (st != expect) {
        snprintf(why, sizeof why, "\"%.300s\": status %d, want %d", s, (int)st, (int)expect);
        return why;
    }
    if (st == JN_OK && to_bits(got) != to_bits(want)) {
        snprintf(why, sizeof why,
                 "\"%.300s\": got %.9g (0x%08" PRIx32 "), want %.9g (0x%08" PRIx32 ")", s,
                 (double)got, to_bits(got), (double)want, to_bits(want));
        return why;
    }
    const double d = jn_to_double(s, s + n);
    if (memcmp(&d, &dwant, sizeof d) != 0) {
        snprintf(why, sizeof why, "\"%.300s\": jn_to_double %.17g, strtod %.17g", s, d, dwant);
        return why;
    }
    return NULL;
}

#define CHECK_LIBC(s)                                                                              \
    do {                                                                                           \
        const char *why_ = check_against_libc(s);                                                  \
        if (why_)                                                                                  \
            ck_abort_msg("%s", why_);                                                              \
    } while (0)

/* A random JSON number: sign, 1..NDIG significant digits split between the integer and the
 * fraction, leading zeros in the fraction, and maybe an exponent in [-EXP, EXP]. */
static void random_number(uint64_t *s, char *out, int ndig, int exp)
{
    char *o = out;
    if (rng_next(s) & 1)
        *o++ = '-';
    const int nd = 1 + (int)(rng_next(s) % (uint64_t)ndig);
    const int ip = (int)(rng_next(s) % (uint64_t)(nd + 1));
    if (ip == 0) {
        *o++ = '0';
    } else {
        *o++ = (char)('1' + rng_next(s) % 9);
        for (int i = 1; i < ip; i++)
            *o++ = (char)('0' + rng_next(s) % 10);
    }
    if (nd > ip) {
        *o++ = '.';
        for (int z = (int)(rng_next(s) % 4); ip == 0 && z > 0; z--)
            *o++ = '0';
        for (int i = ip; i < nd; i++)
            *o++ = (char)('0' + rng_next(s) % 10);
    }
    if (exp && rng_next(s) % 3) {
        const long e = (long)(rng_next(s) % (uint64_t)(2 * exp + 1)) - exp;
        o += sprintf(o, "%s%s%ld", rng_next(s) & 1 ? "e" : "E",
                     e >= 0 && (rng_next(s) & 1) ? "+" : "", e);
    }
    *o = '\0';
}

/* ---- correctly rounded ----------------------------------------------------------------------- */

START_TEST(test_random_short_numbers_match_strtof)
{
    /* Up to 9 digits and small exponents: what clients send. */
    uint64_t s = 0x9e3779b97f4a7c15u;
    char buf[128];
    for (int i = 0; i < RANDOM_STRINGS / SWEEP_DIVISOR; i++) {
        random_number(&s, buf, 9, 12);
        CHECK_LIBC(buf);
    }
}
END_TEST

START_TEST(test_random_long_numbers_match_strtof)
{
    /* 10 to 40 digits (past the 19 the fast path holds) and exponents over the whole range. */
    uint64_t s = 0x2545f4914f6cdd1du;
    char buf[160];
    for (int i = 0; i < RANDOM_STRINGS / SWEEP_DIVISOR; i++) {
        random_number(&s, buf, 40, 60);
        CHECK_LIBC(buf);
    }
}
END_TEST

START_TEST(test_every_decimal_exponent_matches_strtof)
{
    /* w * 10^q for random w of 1..19 digits and every q the table covers, and past both ends. */
    uint64_t s = 0x853c49e6748fea9bu;
    char buf[64];
    for (int q = -90; q <= 60; q++) {
        for (int i = 0; i < PER_EXPONENT / SWEEP_DIVISOR; i++) {
            const int nd = 1 + (int)(rng_next(&s) % 19);
            uint64_t w = 1 + rng_next(&s) % 9;
            for (int k = 1; k < nd; k++)
                w = w * 10 + rng_next(&s) % 10;
            snprintf(buf, sizeof buf, "%" PRIu64 "e%d", w, q);
            CHECK_LIBC(buf);
        }
    }
}
END_TEST

/* The exact decimal expansion of the double D (every float midpoint is one), no exponent
 * rounding: glibc prints doubles exactly given enough digits. */
static void exact(double d, char *out, size_t len)
{
    snprintf(out, len, "%.140e", d);
}

START_TEST(test_halfway_points_round_to_even_and_neighbours_do_not)
{
    /* The point halfway between a float and the next one up is a tie, which rounds to the even
     * mantissa; a decimal a hair below or above it must not. Floats from every binade, both
     * signs, subnormals included. */
    uint64_t s = 0xda942042e4dd58b5u;
    char mid[256], other[256];
    for (int i = 0; i < HALFWAYS / SWEEP_DIVISOR; i++) {
        uint32_t bits = (uint32_t)rng_next(&s) & 0x7fffffffu;
        if (bits >= 0x7f7fffffu)
            bits = 0x7f7ffffeu; /* the next one up must be finite too */
        const double lo = from_bits(bits), hi = from_bits(bits + 1);
        const double half = lo + (hi - lo) / 2; /* exact: 25 significant bits */
        exact((i & 1) ? -half : half, mid, sizeof mid);
        CHECK_LIBC(mid);
        /* Below: the expansion cut short. Above: a 1 after all its digits. */
        char *e = strchr(mid, 'e');
        const size_t mant = (size_t)(e - mid);
        size_t cut = mant;
        while (mid[cut - 1] == '0')
            cut--;
        snprintf(other, sizeof other, "%.*s%s", (int)cut - 1, mid, e);
        if (strchr(other, '.') && other[strlen(other) - strlen(e) - 1] == '.')
            continue; /* a one-digit midpoint has nothing to cut */
        CHECK_LIBC(other);
        snprintf(other, sizeof other, "%.*s1%s", (int)cut, mid, e);
        CHECK_LIBC(other);
    }
}
END_TEST

START_TEST(test_known_halfway_cases)
{
    /* 2^24 + 1: a tie between 16777216 and 16777218, to the even one; just past it, up. */
    static const char *const cases[] = {
        "16777217",
        "16777217.000000000000000000001",
        "16777216.999999999999999999999",
        "16777219",
        "1.00000005960464477539062500",  /* 1 + 2^-24: tie, to 1 */
        "1.00000017881393432617187500",  /* 1 + 3*2^-24: tie, to 1 + 2^-22 */
        "1.000000059604644775390625001", /* just above the first tie */
        /* half the smallest subnormal: a tie to zero, and a hair above it */
        "7.00649232162408535461864791644958065640130970938257885878534141944895541342930300743319"
        "094181060791015625e-46",
        "7.00649232162408535461864791644958065640130970938257885878534141944895541342930300743319"
        "094181060791015626e-46",
        /* the decimal nearest the tie just above FLT_MAX, and the tie itself (to infinity) */
        "3.4028235677973366e38",
        "340282356779733661637539395458142568448",
        "340282356779733661637539395458142568447.99999999",
        "-340282356779733661637539395458142568448",
        /* the smallest normal, and the largest subnormal */
        "1.1754943508222875e-38",
        "1.1754942106924411e-38",
        "0.000000000000000000000000000000000000011754942807573642917278829910357981",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_LIBC(cases[i]);
}
END_TEST

START_TEST(test_printed_floats_read_back_exactly)
{
    /* What rnnserve prints (shortest), what Python prints for a float32 as a double (17 digits),
     * and %.9g all read back to the float itself. Every 9973rd bit pattern. */
    char buf[64];
    for (uint64_t u = 0; u < (UINT64_C(1) << 32); u += 9973 * SWEEP_DIVISOR) {
        const uint32_t bits = (uint32_t)u;
        if (((bits >> 23) & 0xff) == 0xff)
            continue;
        const float x = from_bits(bits);
        const char *forms[3] = {"shortest", "%.17g", "%.9g"};
        for (int f = 0; f < 3; f++) {
            if (f == 0)
                buf[ff_format_f32(x, buf)] = '\0';
            else
                snprintf(buf, sizeof buf, f == 1 ? "%.17g" : "%.9g", (double)x);
            const char *next;
            float got;
            const size_t n = strlen(buf);
            if (jn_parse_f32(buf, buf + n, &next, &got) != JN_OK || next != buf + n ||
                to_bits(got) != bits)
                ck_abort_msg("0x%08" PRIx32 " as %s \"%s\" read back as 0x%08" PRIx32, bits,
                             forms[f], buf, to_bits(got));
        }
    }
}
END_TEST

/* ---- long and extreme inputs ------------------------------------------------------------------
 */

START_TEST(test_long_digit_strings_match_strtof)
{
    /* Far more digits than any rounding needs, with the deciding digit very late. */
    static char buf[24000];
    uint64_t s = 0x6a09e667f3bcc909u;
    for (int round = 0; round < 40; round++) {
        char *o = buf;
        const int lead = (int)(rng_next(&s) % 3);
        if (lead == 0) {
            o += sprintf(o, "0.");
            for (int z = (int)(rng_next(&s) % 50); z > 0; z--)
                *o++ = '0';
        }
        *o++ = (char)('1' + rng_next(&s) % 9);
        const int n = 100 + (int)(rng_next(&s) % 20000);
        bool point = lead == 0;
        for (int i = 0; i < n; i++) {
            if (!point && i == 5) {
                *o++ = '.';
                point = true;
            }
            /* mostly 9s or 0s, so the tail decides near a boundary */
            const uint64_t r = rng_next(&s) % 100;
            *o++ = (char)(r < 45 ? '9' : r < 90 ? '0' : '0' + r % 10);
        }
        if (rng_next(&s) & 1)
            o += sprintf(o, "e%d", (int)(rng_next(&s) % 80) - 40);
        *o = '\0';
        CHECK_LIBC(buf);
    }
}
END_TEST

START_TEST(test_extreme_exponents_and_zeros)
{
    static const char *const cases[] = {
        "0",
        "-0",
        "0.0",
        "-0.000",
        "0e0",
        "0E+0",
        "0e-0",
        "0e99999999999999999999",
        "-0e-99999999999999999999",
        "1e-99999999999999999999",
        "-1e-400",
        "1e-46",
        "-1e-50",
        "1.4e-45",
        "1e-45",
        "2e-45",
        "1e38",
        "1e39",
        "-1e39",
        "3.4028235e38",
        "3.4028236e38",
        "1e308",
        "1.7976931348623157e308",
        "1.7976931348623158e308",
        "1.7976931348623159e308",
        "1e309",
        "-1e400",
        "1e99999999999999999999",
        "123456789012345678901234567890e-30",
        "0.0000000000000000000000000000000000000000000000000000000000000000000001e70",
        "100000000000000000000000000000000000000000000000000000000000000000000000e-72",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_LIBC(cases[i]);
    /* 10^-10001 * 10^10010 = 10^9, over ten thousand zeros */
    static char buf[10100];
    char *o = buf + sprintf(buf, "0.");
    memset(o, '0', 10000);
    o += 10000;
    sprintf(o, "1e10010");
    CHECK_LIBC(buf);
    float f;
    const char *next;
    ck_assert_int_eq(jn_parse_f32(buf, buf + strlen(buf), &next, &f), JN_OK);
    ck_assert(f == 1e9f);
}
END_TEST

/* jn_parse_f32 on the whole of S. */
static jn_status parse_all(const char *s, float *f)
{
    const char *next;
    return jn_parse_f32(s, s + strlen(s), &next, f);
}

START_TEST(test_negative_zero_and_signs)
{
    float f = 1;
    ck_assert_int_eq(parse_all("-0", &f), JN_OK);
    ck_assert(f == 0 && signbit(f));
    ck_assert_int_eq(parse_all("-1e-60", &f), JN_OK);
    ck_assert(f == 0 && signbit(f));
    ck_assert_int_eq(parse_all("0", &f), JN_OK);
    ck_assert(f == 0 && !signbit(f));
}
END_TEST

/* ---- grammar -------------------------------------------------------------------------------- */

START_TEST(test_grammar_matches_rfc_8259)
{
    /* TEXT, the status, and how many bytes the token takes (or where the grammar broke). */
    static const struct {
        const char *text;
        jn_status st;
        int used;
    } cases[] = {
        {"0", JN_OK, 1},        {"-0", JN_OK, 2},
        {"12", JN_OK, 2},       {"1.5", JN_OK, 3},
        {"1e5", JN_OK, 3},      {"1E+5", JN_OK, 4},
        {"1e-05", JN_OK, 5},    {"-0.0e-0", JN_OK, 7},
        {"1.5,", JN_OK, 3},     {"2]", JN_OK, 1},
        {"3 ", JN_OK, 1},       {"01", JN_SYNTAX, 1},
        {"0x1", JN_OK, 1},      {"1.5.5", JN_OK, 3},
        {"1e5e5", JN_OK, 3},    {"-", JN_SYNTAX, 1},
        {"-a", JN_SYNTAX, 1},   {"+1", JN_SYNTAX, 0},
        {".5", JN_SYNTAX, 0},   {"-.5", JN_SYNTAX, 1},
        {"1.", JN_SYNTAX, 2},   {"1.e5", JN_SYNTAX, 2},
        {"1e", JN_SYNTAX, 2},   {"1e+", JN_SYNTAX, 3},
        {"1E-x", JN_SYNTAX, 3}, {"x", JN_SYNTAX, 0},
        {"", JN_SYNTAX, 0},     {"Infinity", JN_SYNTAX, 0},
        {"NaN", JN_SYNTAX, 0},  {"- 1", JN_SYNTAX, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *t = cases[i].text, *next = NULL;
        float f;
        const jn_status st = jn_parse_f32(t, t + strlen(t), &next, &f);
        ck_assert_msg(st == cases[i].st, "\"%s\": status %d, want %d", t, (int)st,
                      (int)cases[i].st);
        ck_assert_msg(next == t + cases[i].used, "\"%s\": next at %td, want %d", t, next - t,
                      cases[i].used);
    }
}
END_TEST

START_TEST(test_no_read_past_end)
{
    /* The end pointer bounds every read: "12345" cut at each length, in an exact-size heap
     * block (ASan reports any read past it). */
    const char *full = "-12.5e+3";
    for (size_t n = 1; n <= strlen(full); n++) {
        char *b = malloc(n);
        ck_assert_ptr_nonnull(b);
        memcpy(b, full, n);
        const char *next;
        float f;
        (void)jn_parse_f32(b, b + n, &next, &f);
        ck_assert(next >= b && next <= b + n);
        free(b);
    }
    /* Eight-digit runs at the very end (the fast path reads eight bytes at a time). */
    const char *frac = "0.1234567812345678";
    for (size_t n = 3; n <= strlen(frac); n++) {
        char *b = malloc(n);
        ck_assert_ptr_nonnull(b);
        memcpy(b, frac, n);
        const char *next;
        float f = 0;
        ck_assert_int_eq(jn_parse_f32(b, b + n, &next, &f), JN_OK);
        ck_assert(next == b + n);
        char *z = strndup(frac, n);
        ck_assert(to_bits(f) == to_bits(strtof(z, NULL)));
        free(z);
        free(b);
    }
}
END_TEST

static Suite *jsonnum_suite(void)
{
    Suite *s = suite_create("jsonnum");
    TCase *sweep = tcase_create("against_strtof");
    tcase_set_timeout(sweep, 60); /* ~1 s; the slack is for loaded CI machines */
    tcase_add_test(sweep, test_random_short_numbers_match_strtof);
    tcase_add_test(sweep, test_random_long_numbers_match_strtof);
    tcase_add_test(sweep, test_every_decimal_exponent_matches_strtof);
    tcase_add_test(sweep, test_halfway_points_round_to_even_and_neighbours_do_not);
    tcase_add_test(sweep, test_printed_floats_read_back_exactly);
    tcase_add_test(sweep, test_long_digit_strings_match_strtof);
    suite_add_tcase(s, sweep);

    TCase *cases = tcase_create("cases");
    tcase_add_test(cases, test_known_halfway_cases);
    tcase_add_test(cases, test_extreme_exponents_and_zeros);
    tcase_add_test(cases, test_negative_zero_and_signs);
    tcase_add_test(cases, test_grammar_matches_rfc_8259);
    tcase_add_test(cases, test_no_read_past_end);
    suite_add_tcase(s, cases);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(jsonnum_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
