/* floatfmt_exhaustive.c - checks ff_format_f32 on every finite float32 bit pattern: valid JSON,
 * the header's notation, exact round trip through strtof, shortest, and nearest among the
 * shortest. Standalone (not in the Makefile); about 20 minutes on two cores (strtof dominates).
 *
 * Build and run from the repository root:
 *   gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wpedantic -Iinclude -O2 -pthread \
 *       -o build/floatfmt_exhaustive tools/floatfmt_exhaustive.c src/floatfmt.c -lm
 *   build/floatfmt_exhaustive            # all 2^32 patterns; exit status 0 when none failed
 *   build/floatfmt_exhaustive 0x3f800000 0x3f900000   # a sub-range [first, last) while debugging
 *
 * The checks use only libc as the reference: strtof/strtod (correctly rounded in glibc) and, in
 * the rare exact-tie case, printf's exact expansion. None of the library's arithmetic is reused. */
#include "rnnserve/floatfmt.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 2
#define CHUNK (1u << 24) /* bit patterns per work unit; 256 units in all */
#define MAX_REPORTS 20   /* failures printed in full; all are counted */

/* A parsed number: sign, and DIGITS * 10^EXP with trailing zeros moved into EXP. */
struct dec {
    bool neg;
    uint64_t digits;
    int exp;
    int len; /* significant digits in DIGITS */
};

static atomic_uint next_chunk;
static atomic_ullong checked;
static atomic_ullong failures;
static atomic_uint chunks_done;
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* JSON's number grammar: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static bool is_json_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n)
        return false;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < n && is_digit(s[i]))
            i++;
    } else {
        return false;
    }
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        while (i < n && is_digit(s[i]))
            i++;
        if (i == start)
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t start = i;
        while (i < n && is_digit(s[i]))
            i++;
        if (i == start)
            return false;
    }
    return i == n;
}

/* Parses a string that passed is_json_number. Returns a complaint about the house notation
 * (header: plain for 1e-5 <= |x| < 1e9 by the printed value, else d[.ddd]e[+-]N), or NULL. */
static const char *parse_checked(const char *s, struct dec *out)
{
    const char *p = s;
    out->neg = *p == '-';
    p += out->neg;
    uint64_t digits = 0;
    int frac = 0, seen = 0;
    bool point = false;
    const char *mant = p;
    for (; *p && *p != 'e'; p++) {
        if (*p == '.') {
            point = true;
            continue;
        }
        if (digits || *p != '0')
            seen++;
        digits = digits * 10 + (uint64_t)(*p - '0');
        frac += point;
    }
    const bool sci = *p == 'e';
    int e = 0;
    if (sci) {
        if (p[1] != '+' && p[1] != '-')
            return "exponent without sign";
        if (p[2] == '0')
            return "exponent with a leading zero";
        e = atoi(p + 1);
        if (mant[0] == '0')
            return "scientific mantissa starts with 0";
        if (point && mant[1] != '.')
            return "scientific mantissa has more than one integer digit";
        if (!point && p - mant != 1)
            return "scientific mantissa has several digits but no point";
    }
    if (point && p[-1] == '0')
        return "trailing zero after the point";
    if (seen > 9)
        return "more than 9 significant digits";
    out->exp = e - frac;
    while (digits != 0 && digits % 10 == 0) {
        digits /= 10;
        out->exp++;
    }
    out->digits = digits;
    out->len = 0;
    for (uint64_t d = digits; d; d /= 10)
        out->len++;
    if (digits == 0)
        return NULL;
    const int lead = out->exp + out->len - 1;
    const bool plain = lead >= -5 && lead <= 8;
    if (plain && sci)
        return "scientific notation inside the plain range";
    if (!plain && !sci)
        return "plain notation outside the plain range";
    return NULL;
}

/* Appends the decimal digits of V at P and returns the new end. */
static char *put_uint(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* DIGITS * 10^EXP as a C string for strtof/strtod; by hand, since snprintf would double the
 * run time of the whole check. */
static char *dec_string(char *buf, bool neg, uint64_t digits, int exp)
{
    char *p = buf;
    if (neg)
        *p++ = '-';
    p = put_uint(p, digits);
    *p++ = 'e';
    if (exp < 0)
        *p++ = '-';
    p = put_uint(p, (uint64_t)(exp < 0 ? -exp : exp));
    *p = '\0';
    return buf;
}

static bool same_float(float a, float b)
{
    uint32_t ua, ub;
    memcpy(&ua, &a, 4);
    memcpy(&ub, &b, 4);
    return ua == ub;
}

static bool round_trips(float x, bool neg, uint64_t digits, int exp)
{
    char s[48];
    return same_float(strtof(dec_string(s, neg, digits, exp), NULL), x);
}

/* Sign of |X| - DIGITS * 10^EXP, exactly. strtod settles it unless the decimal rounds to |X|
 * itself; then printf's exact expansion of |X| (a float has at most 112 significant digits) is
 * compared digit by digit. */
static int cmp_abs(float x, uint64_t digits, int exp)
{
    char s[48], full[200];
    const double ax = x < 0 ? -(double)x : (double)x;
    const double y = strtod(dec_string(s, false, digits, exp), NULL);
    if (ax != y)
        return ax < y ? -1 : 1;
    snprintf(full, sizeof full, "%.150e", ax);
    char xd[160], yd[32];
    int xn = 0;
    for (const char *p = full; *p != 'e'; p++)
        if (is_digit(*p))
            xd[xn++] = *p;
    const int xlead = atoi(strchr(full, 'e') + 1);
    const int yn = snprintf(yd, sizeof yd, "%" PRIu64, digits);
    const int ylead = exp + yn - 1;
    if (xlead != ylead)
        return xlead < ylead ? -1 : 1;
    for (int i = 0; i < xn || i < yn; i++) {
        const char a = i < xn ? xd[i] : '0', b = i < yn ? yd[i] : '0';
        if (a != b)
            return a < b ? -1 : 1;
    }
    return 0;
}

/* All the checks for one float; returns NULL or what went wrong. */
static const char *check_one(float x, char *out, size_t *out_len)
{
    char buf[FF_MAX_LEN + 8];
    memset(buf, 0x7f, sizeof buf);
    const size_t n = ff_format_f32(x, buf);
    *out_len = n < FF_MAX_LEN ? n : FF_MAX_LEN;
    memcpy(out, buf, *out_len);
    out[*out_len] = '\0';
    if (n == 0 || n > FF_MAX_LEN)
        return "length out of range";
    for (size_t i = n; i < sizeof buf; i++)
        if (buf[i] != 0x7f)
            return "wrote past the returned length";
    if (!is_json_number(out, n))
        return "not a JSON number";
    if (!same_float(strtof(out, NULL), x))
        return "does not round-trip";
    struct dec d;
    const char *bad = parse_checked(out, &d);
    if (bad)
        return bad;
    if (d.digits == 0)
        return NULL; /* zero is checked by the round trip (sign included) */

    /* Shortest: with n digits, any shorter decimal inside the (convex) rounding interval would
     * put D's floor or ceiling on the (n-1)-digit grid inside it too, so those two suffice. */
    if (d.len >= 2) {
        const uint64_t t = d.digits / 10;
        if (round_trips(x, d.neg, t, d.exp + 1) || round_trips(x, d.neg, t + 1, d.exp + 1))
            return "a shorter decimal round-trips";
    }

    /* Nearest among the n-digit candidates: a closer one would make a grid neighbour of D
     * closer too. Ties (x exactly halfway) must go to the even D, as Ryu and printf do. */
    const bool pow10 = d.digits == 1; /* below 1eK the n-digit grid is ten times finer */
    const uint64_t lo = pow10 ? 9 : d.digits - 1, hi = d.digits + 1;
    const int lo_exp = pow10 ? d.exp - 1 : d.exp;
    if (round_trips(x, d.neg, hi, d.exp)) {
        const int c = cmp_abs(x, d.digits * 10 + 5, d.exp - 1);
        if (c > 0 || (c == 0 && d.digits % 2))
            return "the next decimal up is nearer the exact value";
    }
    if (round_trips(x, d.neg, lo, lo_exp)) {
        const int c = pow10 ? cmp_abs(x, 95, d.exp - 2) : cmp_abs(x, d.digits * 10 - 5, d.exp - 1);
        if (c < 0 || (c == 0 && d.digits % 2))
            return "the next decimal down is nearer the exact value";
    }
    return NULL;
}

struct range {
    uint64_t first, last; /* [first, last) */
};

static void *worker(void *arg)
{
    const struct range *r = arg;
    const uint64_t nchunks = (r->last - r->first + CHUNK - 1) / CHUNK;
    for (;;) {
        const uint64_t c = atomic_fetch_add(&next_chunk, 1);
        if (c >= nchunks)
            break;
        const uint64_t lo = r->first + c * CHUNK;
        const uint64_t hi = lo + CHUNK < r->last ? lo + CHUNK : r->last;
        unsigned long long n = 0, bad = 0;
        for (uint64_t u = lo; u < hi; u++) {
            const uint32_t bits = (uint32_t)u;
            if (((bits >> 23) & 0xff) == 0xff)
                continue; /* NaN and infinities are outside the contract */
            float x;
            memcpy(&x, &bits, 4);
            char s[FF_MAX_LEN + 1];
            size_t len;
            const char *why = check_one(x, s, &len);
            n++;
            if (why) {
                bad++;
                if (atomic_fetch_add(&failures, 1) < MAX_REPORTS) {
                    pthread_mutex_lock(&print_lock);
                    printf("FAIL 0x%08" PRIx32 " (%.9g) -> \"%s\": %s\n", bits, (double)x, s, why);
                    fflush(stdout);
                    pthread_mutex_unlock(&print_lock);
                }
            }
        }
        atomic_fetch_add(&checked, n);
        const unsigned done = atomic_fetch_add(&chunks_done, 1) + 1;
        pthread_mutex_lock(&print_lock);
        printf("chunk %u/%" PRIu64 " [0x%08" PRIx64 ", 0x%08" PRIx64 ") done: %llu floats, %llu "
               "failures\n",
               done, nchunks, lo, hi, n, bad);
        fflush(stdout);
        pthread_mutex_unlock(&print_lock);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct range r = {0, UINT64_C(1) << 32};
    if (argc == 3) {
        r.first = strtoull(argv[1], NULL, 0);
        r.last = strtoull(argv[2], NULL, 0);
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [first last]   (bit patterns, last exclusive)\n", argv[0]);
        return 2;
    }
    if (r.first >= r.last || r.last > (UINT64_C(1) << 32)) {
        fprintf(stderr, "empty or out-of-range bit pattern range\n");
        return 2;
    }
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        if (pthread_create(&t[i], NULL, worker, &r) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 2;
        }
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("checked %llu floats, %llu failures\n", (unsigned long long)atomic_load(&checked),
           (unsigned long long)atomic_load(&failures));
    return atomic_load(&failures) == 0 ? 0 : 1;
}
