/* floatfmt.c - float32 to JSON number text: the shortest round-trip digits, and the same rounded
 * to N significant digits, one number at a time or a whole row at once. Owns every float the
 * server prints; nothing here allocates, reads the locale or keeps state, so it is safe from any
 * thread.
 *
 * The shortest-digit search (to_decimal and its table) is Schubfach: Raffaello Giulietti, "The
 * Schubfach way to render doubles" (2020), ported from the float32 version Alexander Bolz wrote in
 * Drachennest (src/schubfach_32.cc, https://github.com/abolz/Drachennest).
 *   Copyright 2020 Alexander Bolz. Distributed under the Boost Software License, Version 1.0
 *   (https://www.boost.org/LICENSE_1_0.txt).
 * It prints exactly what Ryu (the search used here before) printed, the shortest decimal that
 * reads back to the float and of those the nearest, ties to even: checked byte for byte on all
 * 2^32 bit patterns. It costs three 64x32-bit products and no digit-removal loop, and its
 * round-to-odd value also settles the exact ties of N-digit rounding (which needed big-integer
 * arithmetic before; checked against it on every float whose shortest form ends in 5). Digits
 * are written eight at a time by multiplications, and the per-number choices are selects rather
 * than jumps: a row's numbers differ at random, and mispredicted branches cost more than the
 * arithmetic. */
#include "rnnserve/floatfmt.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* The per-number helpers must inline into the row loop: a call per helper (and the registers it
 * saves) cost more than some of them do. */
#if defined(__GNUC__)
#define HOT static inline __attribute__((always_inline))
#else
#define HOT static inline
#endif

#define MANTISSA_BITS 23
#define EXPONENT_BIAS 127

/* Schubfach's g(k) = ceil(10^k / 2^r) with r = floor(log2(10^k)) - 63, so 2^63 <= g < 2^64, for
 * the k in [-31, 45] float32 needs (regenerated with exact rationals; equal to Bolz's table). */
#define G_KMIN (-31)
static const uint64_t POW10_G[77] = {
    0x81ceb32c4b43fcf5u, /* -31 */
    0xa2425ff75e14fc32u, /* -30 */
    0xcad2f7f5359a3b3fu, /* -29 */
    0xfd87b5f28300ca0eu, /* -28 */
    0x9e74d1b791e07e49u, /* -27 */
    0xc612062576589ddbu, /* -26 */
    0xf79687aed3eec552u, /* -25 */
    0x9abe14cd44753b53u, /* -24 */
    0xc16d9a0095928a28u, /* -23 */
    0xf1c90080baf72cb2u, /* -22 */
    0x971da05074da7befu, /* -21 */
    0xbce5086492111aebu, /* -20 */
    0xec1e4a7db69561a6u, /* -19 */
    0x9392ee8e921d5d08u, /* -18 */
    0xb877aa3236a4b44au, /* -17 */
    0xe69594bec44de15cu, /* -16 */
    0x901d7cf73ab0acdau, /* -15 */
    0xb424dc35095cd810u, /* -14 */
    0xe12e13424bb40e14u, /* -13 */
    0x8cbccc096f5088ccu, /* -12 */
    0xafebff0bcb24aaffu, /* -11 */
    0xdbe6fecebdedd5bfu, /* -10 */
    0x89705f4136b4a598u, /* -9 */
    0xabcc77118461cefdu, /* -8 */
    0xd6bf94d5e57a42bdu, /* -7 */
    0x8637bd05af6c69b6u, /* -6 */
    0xa7c5ac471b478424u, /* -5 */
    0xd1b71758e219652cu, /* -4 */
    0x83126e978d4fdf3cu, /* -3 */
    0xa3d70a3d70a3d70bu, /* -2 */
    0xcccccccccccccccdu, /* -1 */
    0x8000000000000000u, /* 0 */
    0xa000000000000000u, /* 1 */
    0xc800000000000000u, /* 2 */
    0xfa00000000000000u, /* 3 */
    0x9c40000000000000u, /* 4 */
    0xc350000000000000u, /* 5 */
    0xf424000000000000u, /* 6 */
    0x9896800000000000u, /* 7 */
    0xbebc200000000000u, /* 8 */
    0xee6b280000000000u, /* 9 */
    0x9502f90000000000u, /* 10 */
    0xba43b74000000000u, /* 11 */
    0xe8d4a51000000000u, /* 12 */
    0x9184e72a00000000u, /* 13 */
    0xb5e620f480000000u, /* 14 */
    0xe35fa931a0000000u, /* 15 */
    0x8e1bc9bf04000000u, /* 16 */
    0xb1a2bc2ec5000000u, /* 17 */
    0xde0b6b3a76400000u, /* 18 */
    0x8ac7230489e80000u, /* 19 */
    0xad78ebc5ac620000u, /* 20 */
    0xd8d726b7177a8000u, /* 21 */
    0x878678326eac9000u, /* 22 */
    0xa968163f0a57b400u, /* 23 */
    0xd3c21bcecceda100u, /* 24 */
    0x84595161401484a0u, /* 25 */
    0xa56fa5b99019a5c8u, /* 26 */
    0xcecb8f27f4200f3au, /* 27 */
    0x813f3978f8940985u, /* 28 */
    0xa18f07d736b90be6u, /* 29 */
    0xc9f2c9cd04674edfu, /* 30 */
    0xfc6f7c4045812297u, /* 31 */
    0x9dc5ada82b70b59eu, /* 32 */
    0xc5371912364ce306u, /* 33 */
    0xf684df56c3e01bc7u, /* 34 */
    0x9a130b963a6c115du, /* 35 */
    0xc097ce7bc90715b4u, /* 36 */
    0xf0bdc21abb48db21u, /* 37 */
    0x96769950b50d88f5u, /* 38 */
    0xbc143fa4e250eb32u, /* 39 */
    0xeb194f8e1ae525feu, /* 40 */
    0x92efd1b8d0cf37bfu, /* 41 */
    0xb7abc627050305aeu, /* 42 */
    0xe596b7b0c643c71au, /* 43 */
    0x8f7e32ce7bea5c70u, /* 44 */
    0xb35dbf821ae4f38cu, /* 45 */
};

static const uint32_t POW10[10] = {
    1u, 10u, 100u, 1000u, 10000u, 100000u, 1000000u, 10000000u, 100000000u, 1000000000u,
};

/* A decimal DIGITS * 10^EXP (at most 9 digits, maybe ending in zeros), and CMP, the sign of the
 * float minus that decimal: -1, 0 (exactly equal) or 1. */
struct decimal {
    uint32_t digits;
    int32_t exp;
    int cmp;
};

/* floor(x / 2^n), without relying on an arithmetic right shift of a negative number. */
static inline int32_t floor_div_pow2(int32_t x, int n)
{
    return x >= 0 ? x >> n : ~(~x >> n);
}

/* Bits 64..95 of the product g * cp, rounded to odd: the lowest bit is forced on when the bits
 * below carry anything that matters (Schubfach needs only "exact or not", and for these operands
 * bits 33..63 tell it, as in Bolz's implementation). Compared with an integer, the result orders
 * exactly as the true scaled value does. */
static inline uint32_t round_to_odd(uint64_t g, uint32_t cp)
{
#if defined(__SIZEOF_INT128__)
    __extension__ const unsigned __int128 p = (unsigned __int128)g * cp;
    const uint64_t hi = (uint64_t)(p >> 64), lo = (uint64_t)p;
#else
    const uint64_t b01 = (g & 0xffffffffu) * cp, b11 = (g >> 32) * cp;
    const uint64_t mid = b11 + (b01 >> 32);
    const uint64_t hi = mid >> 32, lo = mid << 32;
#endif
    return (uint32_t)hi | ((uint32_t)(lo >> 32) > 1);
}

static inline int clz32(uint32_t v)
{
#if defined(__GNUC__)
    return __builtin_clz(v);
#else
    int n = 0;
    while (!(v & 0x80000000u)) {
        v <<= 1;
        n++;
    }
    return n;
#endif
}

/* Decimal digits of 1 <= v < 10^10, without a chain of data-dependent branches (the lengths of
 * a row's numbers vary at random, and mispredictions cost more than the arithmetic):
 * bits * 1233 / 4096 is log10(2^bits) rounded down, then one comparison corrects it. */
static inline int decimal_length(uint32_t v)
{
    const int t = ((32 - clz32(v)) * 1233) >> 12;
    return t + (v >= POW10[t]);
}

/* Schubfach: the shortest DIGITS * 10^EXP inside the interval of decimals that round to the float
 * with these IEEE fields (nonzero, finite), and among those the one nearest the exact value, ties
 * to even; DIGITS may end in zeros (callers drop them). Works on the value scaled by 4 (so the
 * interval ends, half an ulp each side, are integers) times 10^-k, with k chosen so the scaled
 * interval is about 10 units wide: then only s/10 (one digit fewer) and s, s + 1 are candidates.
 * Which one wins is random from one number to the next, so it is chosen by selects, not jumps. */
HOT struct decimal to_decimal(uint32_t ieee_mantissa, uint32_t ieee_exponent)
{
    uint32_t c;
    int32_t q;
    if (ieee_exponent != 0) {
        c = (1u << MANTISSA_BITS) | ieee_mantissa;
        q = (int32_t)ieee_exponent - EXPONENT_BIAS - MANTISSA_BITS;
        /* Integers below 2^24 are their own shortest form. */
        if (q <= 0 && -q < MANTISSA_BITS + 1 && (c & ((1u << -q) - 1)) == 0)
            return (struct decimal){c >> -q, 0, 0};
    } else {
        c = ieee_mantissa;
        q = 1 - EXPONENT_BIAS - MANTISSA_BITS;
    }
    /* Round-to-nearest-even reading: an even mantissa owns its interval ends. */
    const bool even = (c & 1) == 0;
    /* The gap below a power of two is half the one above. */
    const bool lower_closer = ieee_mantissa == 0 && ieee_exponent > 1;
    const uint32_t cbl = 4 * c - 2 + lower_closer, cb = 4 * c, cbr = 4 * c + 2;
    /* k = floor(log10(2^q)), or floor(log10(3/4 * 2^q)) when the lower end is closer */
    const int32_t k = floor_div_pow2(q * 1262611 - (lower_closer ? 524031 : 0), 22);
    const int32_t h = q + floor_div_pow2(-k * 1741647, 19) + 1; /* 1..4 */
    const uint64_t g = POW10_G[-k - G_KMIN];
    const uint32_t vbl = round_to_odd(g, cbl << h);
    const uint32_t vb = round_to_odd(g, cb << h);
    const uint32_t vbr = round_to_odd(g, cbr << h);
    const uint32_t lower = vbl + !even, upper = vbr - !even;
    const uint32_t s = vb / 4;
    /* One digit fewer: at most one of its two candidates can be inside. */
    const uint32_t sp = s / 10;
    const uint32_t up_inside = lower <= 40 * sp, wp_inside = 40 * sp + 40 <= upper;
    const uint32_t shorter = (s >= 10) & (up_inside ^ wp_inside);
    /* Else s or s + 1: the one inside, or if both are, the nearer, and on a tie the even. The
     * choices are made with masks: written as conditionals, they compiled to jumps. */
    const uint32_t u_inside = lower <= 4 * s, w_inside = 4 * s + 4 <= upper;
    const uint32_t mid = 4 * s + 2;
    const uint32_t nearer = (vb > mid) | ((vb == mid) & s);
    const uint32_t one = u_inside ^ w_inside;
    const uint32_t up = (one & w_inside) | (~one & nearer & 1);
    const uint32_t m = 0u - shorter;
    const uint32_t digits = ((sp + wp_inside) & m) | ((s + up) & ~m);
    /* vb is the scaled value rounded to odd, which orders exactly against any integer (what
     * Schubfach's own comparisons rest on), so the sign of x minus the result, at this scale
     * and times 4, is that of vb minus 4 * digits. */
    const uint64_t at_k = (uint64_t)digits * (shorter ? 40 : 4);
    return (struct decimal){digits, k + (int32_t)shorter, (vb > at_k) - (vb < at_k)};
}

static inline int clz64(uint64_t v)
{
#if defined(__GNUC__)
    return __builtin_clzll(v);
#else
    int n = 0;
    while (!(v & (1ull << 63))) {
        v <<= 1;
        n++;
    }
    return n;
#endif
}

/* The 8 decimal digits of v < 10^8, most significant first, as the 8 bytes to store: v splits
 * into two 4-digit lanes, each into two 2-digit lanes, each into two digits, all by
 * multiplications by reciprocals that are exact in these ranges (x/10000 by the compiler,
 * x/100 = x*5243 >> 19 for x < 43699, x/10 = x*103 >> 10 for x < 179). Character i is byte i
 * counted from the least significant, whatever the machine (store8 puts it in memory order). */
HOT uint64_t digits8(uint32_t v)
{
    const uint64_t hi = v / 10000;
    const uint64_t y = ((uint64_t)v << 32) - hi * ((10000ull << 32) - 1);
    const uint64_t a = ((y * 5243) >> 19) & 0x0000007f0000007full;
    const uint64_t z = (y << 16) - a * ((100ull << 16) - 1);
    const uint64_t b = ((z * 103) >> 10) & 0x000f000f000f000full;
    const uint64_t w = ((z << 8) - b * ((10ull << 8) - 1)) | 0x3030303030303030ull;
    return w;
}

/* Text of DIGITS (LEN of them, 1..9, trailing zeros allowed) followed by '0's: 16 characters as
 * two words to store, and in *sig the digits left once trailing zeros are dropped. Scaled to
 * nine digits first, so every length takes the same path. The words stay in registers and go out
 * in 8-byte stores: building them in a local array and copying that out cost more than the
 * digits (a 16-byte load of two fresh 8-byte stores misses store forwarding). */
typedef struct {
    uint64_t lo, hi;
} text16;

HOT text16 digit_text(uint32_t digits, int len, int *sig)
{
    const uint32_t nine = digits * POW10[9 - len];
    const uint32_t first = nine / 100000000, rest = nine % 100000000;
    const uint64_t r = digits8(rest);
    /* Trailing '0' characters of the eight: the high bytes whose digit value is zero. */
    const uint64_t values = r - 0x3030303030303030ull;
    *sig = rest ? 9 - clz64(values) / 8 : 1;
    return (text16){(uint64_t)('0' + first) | (r << 8), (r >> 56) | 0x3030303030303000ull};
}

/* The 8 characters of T from character K (0 <= K <= 9) on. */
HOT uint64_t text_from(text16 t, int k)
{
    if (k == 0)
        return t.lo;
    if (k >= 8)
        return t.hi >> (8 * (k - 8));
    return (t.lo >> (8 * k)) | (t.hi << (64 - 8 * k));
}

/* Stores the 8 characters of W, character 0 (the low byte) first. */
static inline void store8(char *p, uint64_t w)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    memcpy(p, &w, 8);
}

/* Two ASCII digits per entry, for exponents. */
static const char DIGIT_PAIRS[100][2] = {
    {'0', '0'}, {'0', '1'}, {'0', '2'}, {'0', '3'}, {'0', '4'}, {'0', '5'}, {'0', '6'}, {'0', '7'},
    {'0', '8'}, {'0', '9'}, {'1', '0'}, {'1', '1'}, {'1', '2'}, {'1', '3'}, {'1', '4'}, {'1', '5'},
    {'1', '6'}, {'1', '7'}, {'1', '8'}, {'1', '9'}, {'2', '0'}, {'2', '1'}, {'2', '2'}, {'2', '3'},
    {'2', '4'}, {'2', '5'}, {'2', '6'}, {'2', '7'}, {'2', '8'}, {'2', '9'}, {'3', '0'}, {'3', '1'},
    {'3', '2'}, {'3', '3'}, {'3', '4'}, {'3', '5'}, {'3', '6'}, {'3', '7'}, {'3', '8'}, {'3', '9'},
    {'4', '0'}, {'4', '1'}, {'4', '2'}, {'4', '3'}, {'4', '4'}, {'4', '5'}, {'4', '6'}, {'4', '7'},
    {'4', '8'}, {'4', '9'}, {'5', '0'}, {'5', '1'}, {'5', '2'}, {'5', '3'}, {'5', '4'}, {'5', '5'},
    {'5', '6'}, {'5', '7'}, {'5', '8'}, {'5', '9'}, {'6', '0'}, {'6', '1'}, {'6', '2'}, {'6', '3'},
    {'6', '4'}, {'6', '5'}, {'6', '6'}, {'6', '7'}, {'6', '8'}, {'6', '9'}, {'7', '0'}, {'7', '1'},
    {'7', '2'}, {'7', '3'}, {'7', '4'}, {'7', '5'}, {'7', '6'}, {'7', '7'}, {'7', '8'}, {'7', '9'},
    {'8', '0'}, {'8', '1'}, {'8', '2'}, {'8', '3'}, {'8', '4'}, {'8', '5'}, {'8', '6'}, {'8', '7'},
    {'8', '8'}, {'8', '9'}, {'9', '0'}, {'9', '1'}, {'9', '2'}, {'9', '3'}, {'9', '4'}, {'9', '5'},
    {'9', '6'}, {'9', '7'}, {'9', '8'}, {'9', '9'},
};

/* Lays out DIGITS (LEN of them) * 10^EXP in the header's notation at p and returns the length.
 * Works in fixed-size copies, so it writes up to FF_ROW_SLACK bytes past the returned length:
 * callers give it that room. The plain/scientific choice follows the printed value, so 1e-5f,
 * whose shortest form is 1e-5 though its exact value is a hair below, prints "0.00001". */
HOT size_t layout(char *p, bool neg, uint32_t digits, int len, int32_t exp)
{
    char *const start = p;
    *p = '-';
    p += neg;
    int sig;
    const text16 t = digit_text(digits, len, &sig);
    const int32_t lead = exp + len - 1; /* power of ten of the first digit */
    if (lead < -5 || lead > 8) {
        /* d.ddde+NN */
        p[0] = (char)t.lo;
        p[1] = '.';
        store8(p + 2, text_from(t, 1));
        p += sig > 1 ? sig + 1 : 1;
        const uint32_t e = (uint32_t)(lead < 0 ? -lead : lead); /* at most 45 for float32 */
        p[0] = 'e';
        p[1] = lead < 0 ? '-' : '+';
        if (e >= 10) {
            memcpy(p + 2, DIGIT_PAIRS[e], 2);
            p += 4;
        } else {
            p[2] = (char)('0' + e);
            p += 3;
        }
    } else if (lead < 0) {
        /* 0.000ddd: the zeros come from the template, the digits go after them */
        memcpy(p, "0.000000", 8);
        store8(p + 1 - lead, t.lo);
        store8(p + 9 - lead, t.hi);
        p += 1 - lead + sig;
    } else {
        /* ddd.ddd, or ddd000 (the text already ends in zeros) */
        store8(p, t.lo);
        store8(p + 8, t.hi);
        if (sig > lead + 1) {
            p[lead + 1] = '.';
            store8(p + lead + 2, text_from(t, lead + 1));
            p += sig + 1;
        } else {
            p += lead + 1;
        }
    }
    return (size_t)(p - start);
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

/* ff_format_f32 with FF_ROW_SLACK bytes of scratch room at p. */
HOT size_t format_shortest(uint32_t bits, char *p)
{
    const bool neg = bits >> 31;
    const uint32_t ieee_mantissa = bits & ((1u << MANTISSA_BITS) - 1);
    const uint32_t ieee_exponent = (bits >> MANTISSA_BITS) & 0xff;
    if (ieee_exponent == 0xff || (ieee_exponent == 0 && ieee_mantissa == 0))
        return format_special(neg, ieee_exponent, p);
    const struct decimal d = to_decimal(ieee_mantissa, ieee_exponent);
    return layout(p, neg, d.digits, decimal_length(d.digits), d.exp);
}

size_t ff_format_f32(float x, char *buf)
{
    /* Laid out in a scratch buffer, so that buf gets exactly the returned length. */
    char tmp[FF_MAX_LEN + FF_ROW_SLACK];
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    const size_t n = format_shortest(bits, tmp);
    memcpy(buf, tmp, n);
    return n;
}

/* ceil(2^64 / 10^j) for j = 1..8: floor(x / 10^j) is the high word of x * M for any 32-bit x
 * (Lemire, Kaser and Kurz, "Faster remainder by direct computation", 2019), which spares the
 * hardware division a variable divisor would need. */
static const uint64_t DIV_POW10[9] = {
    0,
    0x199999999999999au,
    0x028f5c28f5c28f5du,
    0x004189374bc6a7f0u,
    0x00068db8bac710ccu,
    0x0000a7c5ac471b48u,
    0x000010c6f7a0b5eeu,
    0x000001ad7f29abcbu,
    0x0000002af31dc462u,
};

HOT uint32_t div_pow10(uint32_t x, int j)
{
#if defined(__SIZEOF_INT128__)
    __extension__ typedef unsigned __int128 u128;
    return (uint32_t)(((u128)DIV_POW10[j] * x) >> 64);
#else
    return x / POW10[j];
#endif
}

/* ff_format_f32_prec for 1 <= DIGITS <= 8, with FF_ROW_SLACK bytes of scratch room at buf. */
HOT size_t format_prec(uint32_t bits, int digits, char *buf)
{
    const bool neg = bits >> 31;
    const uint32_t ieee_mantissa = bits & ((1u << MANTISSA_BITS) - 1);
    const uint32_t ieee_exponent = (bits >> MANTISSA_BITS) & 0xff;
    if (ieee_exponent == 0xff || (ieee_exponent == 0 && ieee_mantissa == 0))
        return format_special(neg, ieee_exponent, buf);

    struct decimal d = to_decimal(ieee_mantissa, ieee_exponent);
    int len = decimal_length(d.digits);
    if (len > digits) {
        /* The shortest DIGITS is the floor or the ceiling of x at its last place (the nearest of
         * the one or two candidates there), so x lies on the same side as DIGITS of any other
         * number of that scale, in particular of the midpoint between the two DIGITS-long
         * candidates. Only when DIGITS is that midpoint (a 5 and then zeros past the cut) must
         * the exact binary value decide, and to_decimal says on which side of DIGITS it is. */
        const int cut = len - digits;
        const uint32_t scale = POW10[cut], half = scale / 2;
        uint32_t kept = div_pow10(d.digits, cut);
        const uint32_t rest = d.digits - kept * scale;
        const bool up = rest != half ? rest > half : d.cmp > 0 || (d.cmp == 0 && (kept & 1));
        kept += up;
        d.exp += cut;
        d.digits = kept;
        /* Rounding can carry into a new digit (0.96 -> 1.0); trailing zeros layout drops. */
        len = digits + (kept >= POW10[digits]);
    }
    return layout(buf, neg, d.digits, len, d.exp);
}

size_t ff_format_f32_prec(float x, int digits, char *buf)
{
    char tmp[FF_MAX_LEN + FF_ROW_SLACK];
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    if (digits >= 9)
        return ff_format_f32(x, buf);
    const size_t n = format_prec(bits, digits < 1 ? 1 : digits, tmp);
    memcpy(buf, tmp, n);
    return n;
}

/* One loop per formatter, so that each inlines into its own loop. */
#define ROW_LOOP(FORMAT)                                                                           \
    for (size_t i = 0; i < n; i++) {                                                               \
        uint32_t bits;                                                                             \
        memcpy(&bits, &v[i], sizeof bits);                                                         \
        if ((bits & 0x7f800000u) == 0x7f800000u) {                                                 \
            *bad = i;                                                                              \
            return FF_NOT_FINITE;                                                                  \
        }                                                                                          \
        /* Every number gets its comma; the last one is taken back. */                             \
        p += FORMAT;                                                                               \
        *p++ = ',';                                                                                \
    }

size_t ff_format_row(const float *v, size_t n, int digits, char *buf, size_t *bad)
{
    char *p = buf;
    if (digits >= 9) {
        ROW_LOOP(format_shortest(bits, p))
    } else {
        const int d = digits < 1 ? 1 : digits;
        ROW_LOOP(format_prec(bits, d, p))
    }
    return n ? (size_t)(p - buf) - 1 : 0;
}
