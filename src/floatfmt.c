/* floatfmt.c - float32 to JSON number text: the shortest round-trip digits, and the same rounded
 * to N significant digits. Owns every float the server prints; nothing here allocates, reads the
 * locale or keeps state, so it is safe from any thread.
 *
 * The shortest-digit search (f2d, its two tables and helpers) is ported from f2s.c of Ryu by
 * Ulf Adams, https://github.com/ulfjack/ryu ("Ryu: fast float-to-string conversion", PLDI 2018).
 *   Copyright 2018 Ulf Adams.
 *   The contents of this file may be used under the terms of the Apache License, Version 2.0
 *   (http://www.apache.org/licenses/LICENSE-2.0), or alternatively under the terms of the Boost
 *   Software License, Version 1.0 (https://www.boost.org/LICENSE_1_0.txt). Unless required by
 *   applicable law or agreed to in writing, this software is distributed on an "AS IS" BASIS,
 *   WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * Changes from f2s.c: one C11 file with the tables inlined (regenerated and checked against the
 * originals), JSON layout instead of "1.5E20", and the exact rounding for ff_format_f32_prec. */
#include "rnnserve/floatfmt.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define MANTISSA_BITS 23
#define EXPONENT_BIAS 127

/* Ryu's tables for float: POW5_INV_SPLIT[q] = floor(2^(bitlen(5^q) - 1 + 59) / 5^q) + 1 and
 * POW5_SPLIT[i] = 5^i scaled to exactly 61 bits. These widths are the ones the paper proves
 * exact for every float exponent. */
#define POW5_INV_BITCOUNT 59
#define POW5_BITCOUNT 61

static const uint64_t POW5_INV_SPLIT[31] = {
    576460752303423489u, 461168601842738791u, 368934881474191033u, 295147905179352826u,
    472236648286964522u, 377789318629571618u, 302231454903657294u, 483570327845851670u,
    386856262276681336u, 309485009821345069u, 495176015714152110u, 396140812571321688u,
    316912650057057351u, 507060240091291761u, 405648192073033409u, 324518553658426727u,
    519229685853482763u, 415383748682786211u, 332306998946228969u, 531691198313966350u,
    425352958651173080u, 340282366920938464u, 544451787073501542u, 435561429658801234u,
    348449143727040987u, 557518629963265579u, 446014903970612463u, 356811923176489971u,
    570899077082383953u, 456719261665907162u, 365375409332725730u,
};

static const uint64_t POW5_SPLIT[47] = {
    1152921504606846976u, 1441151880758558720u, 1801439850948198400u, 2251799813685248000u,
    1407374883553280000u, 1759218604441600000u, 2199023255552000000u, 1374389534720000000u,
    1717986918400000000u, 2147483648000000000u, 1342177280000000000u, 1677721600000000000u,
    2097152000000000000u, 1310720000000000000u, 1638400000000000000u, 2048000000000000000u,
    1280000000000000000u, 1600000000000000000u, 2000000000000000000u, 1250000000000000000u,
    1562500000000000000u, 1953125000000000000u, 1220703125000000000u, 1525878906250000000u,
    1907348632812500000u, 1192092895507812500u, 1490116119384765625u, 1862645149230957031u,
    1164153218269348144u, 1455191522836685180u, 1818989403545856475u, 2273736754432320594u,
    1421085471520200371u, 1776356839400250464u, 2220446049250313080u, 1387778780781445675u,
    1734723475976807094u, 2168404344971008868u, 1355252715606880542u, 1694065894508600678u,
    2117582368135750847u, 1323488980084844279u, 1654361225106055349u, 2067951531382569187u,
    1292469707114105741u, 1615587133892632177u, 2019483917365790221u,
};

static const uint32_t POW10[10] = {
    1u, 10u, 100u, 1000u, 10000u, 100000u, 1000000u, 10000000u, 100000000u, 1000000000u,
};

/* Two ASCII digits per entry: writing pairs halves the divisions when printing. */
static const char DIGIT_PAIRS[200] = {
    '0', '0', '0', '1', '0', '2', '0', '3', '0', '4', '0', '5', '0', '6', '0', '7', '0', '8', '0',
    '9', '1', '0', '1', '1', '1', '2', '1', '3', '1', '4', '1', '5', '1', '6', '1', '7', '1', '8',
    '1', '9', '2', '0', '2', '1', '2', '2', '2', '3', '2', '4', '2', '5', '2', '6', '2', '7', '2',
    '8', '2', '9', '3', '0', '3', '1', '3', '2', '3', '3', '3', '4', '3', '5', '3', '6', '3', '7',
    '3', '8', '3', '9', '4', '0', '4', '1', '4', '2', '4', '3', '4', '4', '4', '5', '4', '6', '4',
    '7', '4', '8', '4', '9', '5', '0', '5', '1', '5', '2', '5', '3', '5', '4', '5', '5', '5', '6',
    '5', '7', '5', '8', '5', '9', '6', '0', '6', '1', '6', '2', '6', '3', '6', '4', '6', '5', '6',
    '6', '6', '7', '6', '8', '6', '9', '7', '0', '7', '1', '7', '2', '7', '3', '7', '4', '7', '5',
    '7', '6', '7', '7', '7', '8', '7', '9', '8', '0', '8', '1', '8', '2', '8', '3', '8', '4', '8',
    '5', '8', '6', '8', '7', '8', '8', '8', '9', '9', '0', '9', '1', '9', '2', '9', '3', '9', '4',
    '9', '5', '9', '6', '9', '7', '9', '8', '9', '9',
};

/* A decimal DIGITS * 10^EXP; f2d's DIGITS has no trailing zeros and at most 9 digits. */
struct decimal {
    uint32_t digits;
    int32_t exp;
};

/* ceil(log2(5^e)), and 1 for e == 0; exact for 0 <= e <= 1500 (Ryu common.h). */
static inline int32_t pow5bits(int32_t e)
{
    return (int32_t)((((uint32_t)e * 1217359u) >> 19) + 1);
}

/* floor(log10(2^e)) for 0 <= e <= 1500. */
static inline uint32_t log10_pow2(int32_t e)
{
    return ((uint32_t)e * 78913u) >> 18;
}

/* floor(log10(5^e)) for 0 <= e <= 1500. */
static inline uint32_t log10_pow5(int32_t e)
{
    return ((uint32_t)e * 732923u) >> 20;
}

static inline uint32_t pow5_factor(uint32_t v)
{
    uint32_t count = 0;
    while (v % 5 == 0) {
        v /= 5;
        count++;
    }
    return count;
}

static inline bool multiple_of_pow5(uint32_t v, uint32_t p)
{
    return pow5_factor(v) >= p;
}

static inline bool multiple_of_pow2(uint32_t v, uint32_t p)
{
    return (v & ((1u << p) - 1)) == 0;
}

/* (m * factor) >> shift for shift > 32, without a 128-bit product: the low 32 bits of the
 * 96-bit product only matter through their carry, which the split keeps. */
static inline uint32_t mul_shift(uint32_t m, uint64_t factor, int32_t shift)
{
    uint64_t bits0 = (uint64_t)m * (uint32_t)factor;
    uint64_t bits1 = (uint64_t)m * (uint32_t)(factor >> 32);
    return (uint32_t)(((bits0 >> 32) + bits1) >> (shift - 32));
}

static inline uint32_t mul_pow5_inv_div_pow2(uint32_t m, uint32_t q, int32_t j)
{
    return mul_shift(m, POW5_INV_SPLIT[q], j);
}

static inline uint32_t mul_pow5_div_pow2(uint32_t m, uint32_t i, int32_t j)
{
    return mul_shift(m, POW5_SPLIT[i], j);
}

static inline int decimal_length(uint32_t v)
{
    if (v >= 100000000)
        return 9 + (v >= 1000000000);
    if (v >= 10000000)
        return 8;
    if (v >= 1000000)
        return 7;
    if (v >= 100000)
        return 6;
    if (v >= 10000)
        return 5;
    if (v >= 1000)
        return 4;
    if (v >= 100)
        return 3;
    return 1 + (v >= 10);
}

/* Ryu: the shortest DIGITS * 10^EXP inside the interval of decimals that round to the float with
 * these IEEE fields (nonzero, finite), and among those the one nearest the exact value. Works on
 * the exact value scaled by 4 so the interval ends (half an ulp each side) are integers. */
static struct decimal f2d(uint32_t ieee_mantissa, uint32_t ieee_exponent)
{
    int32_t e2;
    uint32_t m2;
    if (ieee_exponent == 0) {
        e2 = 1 - EXPONENT_BIAS - MANTISSA_BITS - 2;
        m2 = ieee_mantissa;
    } else {
        e2 = (int32_t)ieee_exponent - EXPONENT_BIAS - MANTISSA_BITS - 2;
        m2 = (1u << MANTISSA_BITS) | ieee_mantissa;
    }
    /* Round-to-nearest-even reading: an even mantissa owns its interval ends. */
    const bool accept_bounds = (m2 & 1) == 0;

    /* The interval [mm, mp] around mv; the gap below a power of two is half the one above. */
    const uint32_t mv = 4 * m2;
    const uint32_t mp = 4 * m2 + 2;
    const uint32_t mm_shift = ieee_mantissa != 0 || ieee_exponent <= 1;
    const uint32_t mm = 4 * m2 - 1 - mm_shift;

    /* Scale all three by 10^-e10, truncating, and note whether the truncation dropped only
     * zeros: that decides exact ties and whether the lower end is itself representable. */
    uint32_t vr, vp, vm;
    int32_t e10;
    bool vm_is_trailing_zeros = false;
    bool vr_is_trailing_zeros = false;
    uint8_t last_removed_digit = 0;
    if (e2 >= 0) {
        const uint32_t q = log10_pow2(e2);
        e10 = (int32_t)q;
        const int32_t k = POW5_INV_BITCOUNT + pow5bits((int32_t)q) - 1;
        const int32_t i = -e2 + (int32_t)q + k;
        vr = mul_pow5_inv_div_pow2(mv, q, i);
        vp = mul_pow5_inv_div_pow2(mp, q, i);
        vm = mul_pow5_inv_div_pow2(mm, q, i);
        if (q != 0 && (vp - 1) / 10 <= vm / 10) {
            /* The loop below will not run, but rounding still needs one more digit; computing
             * it separately keeps everything in 32 bits. */
            const int32_t l = POW5_INV_BITCOUNT + pow5bits((int32_t)(q - 1)) - 1;
            last_removed_digit =
                (uint8_t)(mul_pow5_inv_div_pow2(mv, q - 1, -e2 + (int32_t)q - 1 + l) % 10);
        }
        if (q <= 9) {
            /* At most one of mp, mv, mm is a multiple of 5. */
            if (mv % 5 == 0)
                vr_is_trailing_zeros = multiple_of_pow5(mv, q);
            else if (accept_bounds)
                vm_is_trailing_zeros = multiple_of_pow5(mm, q);
            else
                vp -= multiple_of_pow5(mp, q);
        }
    } else {
        const uint32_t q = log10_pow5(-e2);
        e10 = (int32_t)q + e2;
        const int32_t i = -e2 - (int32_t)q;
        const int32_t k = pow5bits(i) - POW5_BITCOUNT;
        int32_t j = (int32_t)q - k;
        vr = mul_pow5_div_pow2(mv, (uint32_t)i, j);
        vp = mul_pow5_div_pow2(mp, (uint32_t)i, j);
        vm = mul_pow5_div_pow2(mm, (uint32_t)i, j);
        if (q != 0 && (vp - 1) / 10 <= vm / 10) {
            j = (int32_t)q - 1 - (pow5bits(i + 1) - POW5_BITCOUNT);
            last_removed_digit = (uint8_t)(mul_pow5_div_pow2(mv, (uint32_t)(i + 1), j) % 10);
        }
        if (q <= 1) {
            /* mv = 4 * m2 has two trailing zero bits; mm has one exactly when mm_shift is 1. */
            vr_is_trailing_zeros = true;
            if (accept_bounds)
                vm_is_trailing_zeros = mm_shift == 1;
            else
                --vp; /* mp = mv + 2 is even, so its end is exact and must be excluded */
        } else if (q < 31) {
            vr_is_trailing_zeros = multiple_of_pow2(mv, q - 1);
        }
    }

    /* Drop digits while the interval still holds a shorter number. */
    int32_t removed = 0;
    uint32_t output;
    if (vm_is_trailing_zeros || vr_is_trailing_zeros) {
        /* Rare (about 4%): exact ties or an exactly representable lower end. */
        while (vp / 10 > vm / 10) {
            vm_is_trailing_zeros &= vm % 10 == 0;
            vr_is_trailing_zeros &= last_removed_digit == 0;
            last_removed_digit = (uint8_t)(vr % 10);
            vr /= 10;
            vp /= 10;
            vm /= 10;
            ++removed;
        }
        if (vm_is_trailing_zeros) {
            while (vm % 10 == 0) {
                vr_is_trailing_zeros &= last_removed_digit == 0;
                last_removed_digit = (uint8_t)(vr % 10);
                vr /= 10;
                vp /= 10;
                vm /= 10;
                ++removed;
            }
        }
        if (vr_is_trailing_zeros && last_removed_digit == 5 && vr % 2 == 0)
            last_removed_digit = 4; /* exactly ...50000: round half to even */
        output = vr + ((vr == vm && (!accept_bounds || !vm_is_trailing_zeros)) ||
                       last_removed_digit >= 5);
    } else {
        while (vp / 10 > vm / 10) {
            last_removed_digit = (uint8_t)(vr % 10);
            vr /= 10;
            vp /= 10;
            vm /= 10;
            ++removed;
        }
        /* vr + 1 when vr fell outside the interval or the dropped digits round up. */
        output = vr + (vr == vm || last_removed_digit >= 5);
    }
    return (struct decimal){output, e10 + removed};
}

/* Writes the LEN decimal digits of V to p[0..LEN), least significant first from the right. */
static inline void write_digits(char *p, uint32_t v, int len)
{
    char *end = p + len;
    while (v >= 10000) {
        uint32_t c = v % 10000;
        v /= 10000;
        memcpy(end - 2, DIGIT_PAIRS + 2 * (c % 100), 2);
        memcpy(end - 4, DIGIT_PAIRS + 2 * (c / 100), 2);
        end -= 4;
    }
    if (v >= 100) {
        memcpy(end - 2, DIGIT_PAIRS + 2 * (v % 100), 2);
        v /= 100;
        end -= 2;
    }
    if (v >= 10)
        memcpy(end - 2, DIGIT_PAIRS + 2 * v, 2);
    else
        end[-1] = (char)('0' + v);
}

/* Lays out DIGITS (LEN of them) * 10^EXP in the header's notation and returns the length. The
 * plain/scientific choice follows the printed value, so 1e-5f, whose shortest form is 1e-5 though
 * its exact value is a hair below, prints "0.00001". Writes nothing past the returned length. */
static size_t layout(char *buf, bool neg, uint32_t digits, int len, int32_t exp)
{
    char *p = buf;
    if (neg)
        *p++ = '-';
    const int32_t lead = exp + len - 1; /* power of ten of the first digit */
    if (lead >= -5 && lead <= 8) {
        if (exp >= 0) {
            write_digits(p, digits, len);
            p += len;
            for (int32_t i = 0; i < exp; i++)
                *p++ = '0';
        } else if (lead >= 0) {
            /* Write the digits one place right, then slide the integer part over the gap. */
            write_digits(p + 1, digits, len);
            for (int32_t i = 0; i <= lead; i++)
                p[i] = p[i + 1];
            p[lead + 1] = '.';
            p += len + 1;
        } else {
            const int zeros = -lead - 1;
            *p++ = '0';
            *p++ = '.';
            for (int i = 0; i < zeros; i++)
                *p++ = '0';
            write_digits(p, digits, len);
            p += len;
        }
        return (size_t)(p - buf);
    }
    write_digits(p + 1, digits, len);
    p[0] = p[1];
    if (len > 1) {
        p[1] = '.';
        p += len + 1;
    } else {
        p += 1;
    }
    *p++ = 'e';
    *p++ = lead < 0 ? '-' : '+';
    const uint32_t e = (uint32_t)(lead < 0 ? -lead : lead); /* at most 45 for float32 */
    if (e >= 10) {
        memcpy(p, DIGIT_PAIRS + 2 * e, 2);
        p += 2;
    } else {
        *p++ = (char)('0' + e);
    }
    return (size_t)(p - buf);
}

/* Zero (an IEEE exponent field of 0 here) or a value the contract excludes (0xff). Those print
 * "null", JSON's own stand-in and what JSON.stringify writes, so a caller's slip still yields a
 * parseable document rather than garbage digits. */
static size_t format_special(bool neg, uint32_t ieee_exponent, char *buf)
{
    if (ieee_exponent == 0xff) {
        memcpy(buf, "null", 4);
        return 4;
    }
    size_t n = 0;
    if (neg)
        buf[n++] = '-';
    buf[n++] = '0';
    return n;
}

size_t ff_format_f32(float x, char *buf)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    const bool neg = bits >> 31;
    const uint32_t ieee_mantissa = bits & ((1u << MANTISSA_BITS) - 1);
    const uint32_t ieee_exponent = (bits >> MANTISSA_BITS) & 0xff;
    if (ieee_exponent == 0xff || (ieee_exponent == 0 && ieee_mantissa == 0))
        return format_special(neg, ieee_exponent, buf);

    const struct decimal d = f2d(ieee_mantissa, ieee_exponent);
    return layout(buf, neg, d.digits, decimal_length(d.digits), d.exp);
}

/* Little-endian 32-bit limbs. 192 bits is enough: compare_exact only compares numbers within a
 * factor of two of each other, and the larger is below 2^24 * 5^53 * 2 < 2^150. */
struct big {
    uint32_t w[6];
};

static void big_mul(struct big *b, uint32_t m)
{
    uint64_t carry = 0;
    for (int i = 0; i < 6; i++) {
        uint64_t t = (uint64_t)b->w[i] * m + carry;
        b->w[i] = (uint32_t)t;
        carry = t >> 32;
    }
}

static void big_mul_pow5(struct big *b, int32_t n)
{
    for (; n >= 13; n -= 13)
        big_mul(b, 1220703125u); /* 5^13, the largest power of 5 below 2^32 */
    uint32_t m = 1;
    while (n-- > 0)
        m *= 5;
    big_mul(b, m);
}

static void big_shl(struct big *b, int32_t s)
{
    const int limbs = s / 32, bits = s % 32;
    for (int i = 5; i >= 0; i--) {
        uint32_t hi = i - limbs >= 0 ? b->w[i - limbs] : 0;
        uint32_t lo = i - limbs - 1 >= 0 ? b->w[i - limbs - 1] : 0;
        b->w[i] = bits ? (hi << bits) | (lo >> (32 - bits)) : hi;
    }
}

static int big_cmp(const struct big *a, const struct big *b)
{
    for (int i = 5; i >= 0; i--) {
        if (a->w[i] != b->w[i])
            return a->w[i] < b->w[i] ? -1 : 1;
    }
    return 0;
}

/* Sign of M2 * 2^E2 - DIGITS * 10^EXP, exactly. Only called for a decimal inside the float's
 * rounding interval, which bounds the sizes (see struct big). */
static int compare_exact(uint32_t m2, int32_t e2, uint32_t digits, int32_t exp)
{
    struct big a = {{m2}}, b = {{digits}};
    if (exp >= 0)
        big_mul_pow5(&b, exp);
    else
        big_mul_pow5(&a, -exp);
    if (e2 >= exp)
        big_shl(&a, e2 - exp);
    else
        big_shl(&b, exp - e2);
    return big_cmp(&a, &b);
}

size_t ff_format_f32_prec(float x, int digits, char *buf)
{
    if (digits >= 9)
        return ff_format_f32(x, buf);
    if (digits < 1)
        digits = 1;

    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    const bool neg = bits >> 31;
    const uint32_t ieee_mantissa = bits & ((1u << MANTISSA_BITS) - 1);
    const uint32_t ieee_exponent = (bits >> MANTISSA_BITS) & 0xff;
    if (ieee_exponent == 0xff || (ieee_exponent == 0 && ieee_mantissa == 0))
        return format_special(neg, ieee_exponent, buf);

    struct decimal d = f2d(ieee_mantissa, ieee_exponent);
    int len = decimal_length(d.digits);
    if (len > digits) {
        /* Ryu's DIGITS is the floor or the ceiling of x at its last place, so x lies on the same
         * side as DIGITS of any other number of that scale, in particular of the midpoint
         * between the two DIGITS-long candidates. Only when DIGITS is that midpoint (it ends in
         * 5 and has one digit too many) must the exact binary value decide. */
        const uint32_t scale = POW10[len - digits];
        uint32_t kept = d.digits / scale;
        const uint32_t rest = d.digits % scale, half = scale / 2;
        bool up;
        if (rest != half) {
            up = rest > half;
        } else {
            const uint32_t m2 =
                ieee_exponent ? (1u << MANTISSA_BITS) | ieee_mantissa : ieee_mantissa;
            const int32_t e2 =
                (ieee_exponent ? (int32_t)ieee_exponent : 1) - EXPONENT_BIAS - MANTISSA_BITS;
            const int c = compare_exact(m2, e2, d.digits, d.exp);
            up = c > 0 || (c == 0 && (kept & 1));
        }
        kept += up;
        d.exp += len - digits;
        /* Rounding can leave trailing zeros, or carry into a new digit (0.96 -> 1.0). */
        while (kept % 10 == 0) {
            kept /= 10;
            d.exp++;
        }
        d.digits = kept;
        len = decimal_length(kept);
    }
    return layout(buf, neg, d.digits, len, d.exp);
}
