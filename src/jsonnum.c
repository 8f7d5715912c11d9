/* jsonnum.c - JSON number text to the correctly rounded float32, without a DOM or a copy. Owns
 * the number grammar and the decimal-to-binary rounding every request number goes through.
 *
 * Up to 19 significant digits (every number rnnserve or Python prints) take the Eisel-Lemire path:
 * one or two 64x64-bit products against a 128-bit power of five, exact for float32 (the method and
 * its table are those of fast_float by Daniel Lemire et al.,
 * https://github.com/fastfloat/fast_float, Apache-2.0/MIT/Boost; "Number Parsing at a Gigabyte per
 * Second", Software: Practice and Experience 51(8), 2021; Mushtak and Lemire, "Fast Number Parsing
 * Without Fallback", 2023). Longer numbers try the truncated digits and the next value up; when
 * those round apart (the decimal sits on a rounding boundary), libc's strtof decides, on a copy
 * reduced to digits and an exponent (no decimal point, so no locale). */
#include "rnnserve/jsonnum.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Decimal exponents q of w * 10^q (w < 10^19) outside which float32 is 0 or infinity. */
#define Q_MIN (-65)
#define Q_MAX 38
/* Within these, a product that is exact can be a tie that must round to even (fast_float). */
#define Q_MIN_EVEN (-17)
#define Q_MAX_EVEN 10
#define MANT_BITS 23
/* Significant digits the slow path keeps (a double's boundary needs at most 767), plus one
 * sticky digit standing for any nonzero digits dropped, which keeps the rounding exact. */
#define SLOW_DIGITS 800

/* 5^q for q in [Q_MIN, Q_MAX], normalised to 128 bits (top bit set); truncated for q >= 0 and
 * rounded up for q < 0, as fast_float's table (script/table_generation.py) builds them. */
static const uint64_t POW5_128[2 * (Q_MAX - Q_MIN + 1)] = {
    0x86ccbb52ea94baeau, 0x98e947129fc2b4e9u, /* 5^-65 */
    0xa87fea27a539e9a5u, 0x3f2398d747b36224u, /* 5^-64 */
    0xd29fe4b18e88640eu, 0x8eec7f0d19a03aadu, /* 5^-63 */
    0x83a3eeeef9153e89u, 0x1953cf68300424acu, /* 5^-62 */
    0xa48ceaaab75a8e2bu, 0x5fa8c3423c052dd7u, /* 5^-61 */
    0xcdb02555653131b6u, 0x3792f412cb06794du, /* 5^-60 */
    0x808e17555f3ebf11u, 0xe2bbd88bbee40bd0u, /* 5^-59 */
    0xa0b19d2ab70e6ed6u, 0x5b6aceaeae9d0ec4u, /* 5^-58 */
    0xc8de047564d20a8bu, 0xf245825a5a445275u, /* 5^-57 */
    0xfb158592be068d2eu, 0xeed6e2f0f0d56712u, /* 5^-56 */
    0x9ced737bb6c4183du, 0x55464dd69685606bu, /* 5^-55 */
    0xc428d05aa4751e4cu, 0xaa97e14c3c26b886u, /* 5^-54 */
    0xf53304714d9265dfu, 0xd53dd99f4b3066a8u, /* 5^-53 */
    0x993fe2c6d07b7fabu, 0xe546a8038efe4029u, /* 5^-52 */
    0xbf8fdb78849a5f96u, 0xde98520472bdd033u, /* 5^-51 */
    0xef73d256a5c0f77cu, 0x963e66858f6d4440u, /* 5^-50 */
    0x95a8637627989aadu, 0xdde7001379a44aa8u, /* 5^-49 */
    0xbb127c53b17ec159u, 0x5560c018580d5d52u, /* 5^-48 */
    0xe9d71b689dde71afu, 0xaab8f01e6e10b4a6u, /* 5^-47 */
    0x9226712162ab070du, 0xcab3961304ca70e8u, /* 5^-46 */
    0xb6b00d69bb55c8d1u, 0x3d607b97c5fd0d22u, /* 5^-45 */
    0xe45c10c42a2b3b05u, 0x8cb89a7db77c506au, /* 5^-44 */
    0x8eb98a7a9a5b04e3u, 0x77f3608e92adb242u, /* 5^-43 */
    0xb267ed1940f1c61cu, 0x55f038b237591ed3u, /* 5^-42 */
    0xdf01e85f912e37a3u, 0x6b6c46dec52f6688u, /* 5^-41 */
    0x8b61313bbabce2c6u, 0x2323ac4b3b3da015u, /* 5^-40 */
    0xae397d8aa96c1b77u, 0xabec975e0a0d081au, /* 5^-39 */
    0xd9c7dced53c72255u, 0x96e7bd358c904a21u, /* 5^-38 */
    0x881cea14545c7575u, 0x7e50d64177da2e54u, /* 5^-37 */
    0xaa242499697392d2u, 0xdde50bd1d5d0b9e9u, /* 5^-36 */
    0xd4ad2dbfc3d07787u, 0x955e4ec64b44e864u, /* 5^-35 */
    0x84ec3c97da624ab4u, 0xbd5af13bef0b113eu, /* 5^-34 */
    0xa6274bbdd0fadd61u, 0xecb1ad8aeacdd58eu, /* 5^-33 */
    0xcfb11ead453994bau, 0x67de18eda5814af2u, /* 5^-32 */
    0x81ceb32c4b43fcf4u, 0x80eacf948770ced7u, /* 5^-31 */
    0xa2425ff75e14fc31u, 0xa1258379a94d028du, /* 5^-30 */
    0xcad2f7f5359a3b3eu, 0x096ee45813a04330u, /* 5^-29 */
    0xfd87b5f28300ca0du, 0x8bca9d6e188853fcu, /* 5^-28 */
    0x9e74d1b791e07e48u, 0x775ea264cf55347eu, /* 5^-27 */
    0xc612062576589ddau, 0x95364afe032a819eu, /* 5^-26 */
    0xf79687aed3eec551u, 0x3a83ddbd83f52205u, /* 5^-25 */
    0x9abe14cd44753b52u, 0xc4926a9672793543u, /* 5^-24 */
    0xc16d9a0095928a27u, 0x75b7053c0f178294u, /* 5^-23 */
    0xf1c90080baf72cb1u, 0x5324c68b12dd6339u, /* 5^-22 */
    0x971da05074da7beeu, 0xd3f6fc16ebca5e04u, /* 5^-21 */
    0xbce5086492111aeau, 0x88f4bb1ca6bcf585u, /* 5^-20 */
    0xec1e4a7db69561a5u, 0x2b31e9e3d06c32e6u, /* 5^-19 */
    0x9392ee8e921d5d07u, 0x3aff322e62439fd0u, /* 5^-18 */
    0xb877aa3236a4b449u, 0x09befeb9fad487c3u, /* 5^-17 */
    0xe69594bec44de15bu, 0x4c2ebe687989a9b4u, /* 5^-16 */
    0x901d7cf73ab0acd9u, 0x0f9d37014bf60a11u, /* 5^-15 */
    0xb424dc35095cd80fu, 0x538484c19ef38c95u, /* 5^-14 */
    0xe12e13424bb40e13u, 0x2865a5f206b06fbau, /* 5^-13 */
    0x8cbccc096f5088cbu, 0xf93f87b7442e45d4u, /* 5^-12 */
    0xafebff0bcb24aafeu, 0xf78f69a51539d749u, /* 5^-11 */
    0xdbe6fecebdedd5beu, 0xb573440e5a884d1cu, /* 5^-10 */
    0x89705f4136b4a597u, 0x31680a88f8953031u, /* 5^-9 */
    0xabcc77118461cefcu, 0xfdc20d2b36ba7c3eu, /* 5^-8 */
    0xd6bf94d5e57a42bcu, 0x3d32907604691b4du, /* 5^-7 */
    0x8637bd05af6c69b5u, 0xa63f9a49c2c1b110u, /* 5^-6 */
    0xa7c5ac471b478423u, 0x0fcf80dc33721d54u, /* 5^-5 */
    0xd1b71758e219652bu, 0xd3c36113404ea4a9u, /* 5^-4 */
    0x83126e978d4fdf3bu, 0x645a1cac083126eau, /* 5^-3 */
    0xa3d70a3d70a3d70au, 0x3d70a3d70a3d70a4u, /* 5^-2 */
    0xccccccccccccccccu, 0xcccccccccccccccdu, /* 5^-1 */
    0x8000000000000000u, 0x0000000000000000u, /* 5^0 */
    0xa000000000000000u, 0x0000000000000000u, /* 5^1 */
    0xc800000000000000u, 0x0000000000000000u, /* 5^2 */
    0xfa00000000000000u, 0x0000000000000000u, /* 5^3 */
    0x9c40000000000000u, 0x0000000000000000u, /* 5^4 */
    0xc350000000000000u, 0x0000000000000000u, /* 5^5 */
    0xf424000000000000u, 0x0000000000000000u, /* 5^6 */
    0x9896800000000000u, 0x0000000000000000u, /* 5^7 */
    0xbebc200000000000u, 0x0000000000000000u, /* 5^8 */
    0xee6b280000000000u, 0x0000000000000000u, /* 5^9 */
    0x9502f90000000000u, 0x0000000000000000u, /* 5^10 */
    0xba43b74000000000u, 0x0000000000000000u, /* 5^11 */
    0xe8d4a51000000000u, 0x0000000000000000u, /* 5^12 */
    0x9184e72a00000000u, 0x0000000000000000u, /* 5^13 */
    0xb5e620f480000000u, 0x0000000000000000u, /* 5^14 */
    0xe35fa931a0000000u, 0x0000000000000000u, /* 5^15 */
    0x8e1bc9bf04000000u, 0x0000000000000000u, /* 5^16 */
    0xb1a2bc2ec5000000u, 0x0000000000000000u, /* 5^17 */
    0xde0b6b3a76400000u, 0x0000000000000000u, /* 5^18 */
    0x8ac7230489e80000u, 0x0000000000000000u, /* 5^19 */
    0xad78ebc5ac620000u, 0x0000000000000000u, /* 5^20 */
    0xd8d726b7177a8000u, 0x0000000000000000u, /* 5^21 */
    0x878678326eac9000u, 0x0000000000000000u, /* 5^22 */
    0xa968163f0a57b400u, 0x0000000000000000u, /* 5^23 */
    0xd3c21bcecceda100u, 0x0000000000000000u, /* 5^24 */
    0x84595161401484a0u, 0x0000000000000000u, /* 5^25 */
    0xa56fa5b99019a5c8u, 0x0000000000000000u, /* 5^26 */
    0xcecb8f27f4200f3au, 0x0000000000000000u, /* 5^27 */
    0x813f3978f8940984u, 0x4000000000000000u, /* 5^28 */
    0xa18f07d736b90be5u, 0x5000000000000000u, /* 5^29 */
    0xc9f2c9cd04674edeu, 0xa400000000000000u, /* 5^30 */
    0xfc6f7c4045812296u, 0x4d00000000000000u, /* 5^31 */
    0x9dc5ada82b70b59du, 0xf020000000000000u, /* 5^32 */
    0xc5371912364ce305u, 0x6c28000000000000u, /* 5^33 */
    0xf684df56c3e01bc6u, 0xc732000000000000u, /* 5^34 */
    0x9a130b963a6c115cu, 0x3c7f400000000000u, /* 5^35 */
    0xc097ce7bc90715b3u, 0x4b9f100000000000u, /* 5^36 */
    0xf0bdc21abb48db20u, 0x1e86d40000000000u, /* 5^37 */
    0x96769950b50d88f4u, 0x1314448000000000u, /* 5^38 */
};

#if defined(__SIZEOF_INT128__)
__extension__ typedef unsigned __int128 u128;

static inline uint64_t mul128(uint64_t a, uint64_t b, uint64_t *lo)
{
    const u128 r = (u128)a * b;
    *lo = (uint64_t)r;
    return (uint64_t)(r >> 64);
}
#else
static inline uint64_t mul128(uint64_t a, uint64_t b, uint64_t *lo)
{
    const uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
    const uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    const uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
    *lo = (mid << 32) | (uint32_t)p00;
    return p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}
#endif

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

static inline int ctz64(uint64_t v)
{
#if defined(__GNUC__)
    return __builtin_ctzll(v);
#else
    int n = 0;
    while (!(v & 1)) {
        v >>= 1;
        n++;
    }
    return n;
#endif
}

/* floor(q * log2(10)) + 63 for |q| < 350, as fast_float's detail::power, without relying on an
 * arithmetic right shift of a negative number. */
static inline int32_t binary_power(int32_t q)
{
    const int32_t t = 217706 * q;
    return (t >= 0 ? t >> 16 : -(int32_t)((uint32_t)(65535 - t) >> 16)) + 63;
}

/* The float32 bits (sign excluded) nearest w * 10^q, w > 0; *inf set when that is infinity. */
static uint32_t eisel_lemire(uint64_t w, int64_t q, bool *inf)
{
    *inf = false;
    if (q < Q_MIN)
        return 0;
    if (q > Q_MAX) {
        *inf = true;
        return 0;
    }
    const int lz = clz64(w);
    w <<= lz;
    const size_t i = 2 * (size_t)(q - Q_MIN);
    uint64_t lo, hi = mul128(w, POW5_128[i], &lo);
    /* The low bits below the float's precision are all ones: the truncated power may have
     * hidden a carry, which the next 64 bits of the power settle. */
    const uint64_t mask = UINT64_MAX >> (MANT_BITS + 3);
    if ((hi & mask) == mask) {
        uint64_t lo2, hi2 = mul128(w, POW5_128[i + 1], &lo2);
        (void)lo2;
        lo += hi2;
        hi += hi2 > lo;
    }
    const int upper = (int)(hi >> 63);
    const int shift = upper + 64 - MANT_BITS - 3;
    uint64_t m = hi >> shift;
    int32_t p2 = binary_power((int32_t)q) + upper - lz + 127;
    if (p2 <= 0) { /* subnormal, or zero */
        if (-p2 + 1 >= 64)
            return 0;
        m >>= -p2 + 1;
        m += m & 1;
        m >>= 1;
        /* Rounding up may have reached the smallest normal: its bit then lands on the exponent
         * field's lowest bit, which is the right encoding. */
        return (uint32_t)m;
    }
    /* An exact product halfway between two floats rounds to even, not up. */
    if (lo <= 1 && q >= Q_MIN_EVEN && q <= Q_MAX_EVEN && (m & 3) == 1 && (m << shift) == hi)
        m &= ~(uint64_t)1;
    m += m & 1;
    m >>= 1;
    if (m >= (2u << MANT_BITS)) {
        m = 1u << MANT_BITS;
        p2++;
    }
    if (p2 >= 0xff) {
        *inf = true;
        return 0;
    }
    return (uint32_t)(m & ~((uint64_t)1 << MANT_BITS)) | ((uint32_t)p2 << MANT_BITS);
}

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LITTLE_ENDIAN_SWAR 1
#else
#define LITTLE_ENDIAN_SWAR 0
#endif

static const uint64_t POW10_U64[9] = {1,      10,      100,      1000,     10000,
                                      100000, 1000000, 10000000, 100000000};

/* How many ASCII digits the eight bytes of V start with (the first character is the lowest
 * byte). x = v ^ '0' is below 10 exactly in digit bytes; x + 0x76 or x itself then has no top
 * bit. A carry out of a non-digit byte only disturbs bytes above the first non-digit, which
 * are not looked at. */
static inline int digit_run(uint64_t v)
{
    const uint64_t x = v ^ 0x3030303030303030ull;
    const uint64_t stop = ((x + 0x7676767676767676ull) | x) & 0x8080808080808080ull;
    return stop ? ctz64(stop) / 8 : 8;
}

/* The value of the eight digit values in D's bytes, the first (most significant) lowest: pairs,
 * then quads, then all eight. */
static inline uint64_t eight_digit_value(uint64_t d)
{
    uint64_t x = (d * 10 + (d >> 8)) & 0x00ff00ff00ff00ffull;
    x = (x * 100 + (x >> 16)) & 0x0000ffff0000ffffull;
    return (uint32_t)(x * 10000 + (x >> 32));
}

/* Rewrites the valid number token [p, end) as "[-]DIGITSe[-]EXP" into buf[SLOW_DIGITS + 32]:
 * leading zeros gone, at most SLOW_DIGITS digits plus a sticky 1, no decimal point. */
static void compact(const char *p, const char *end, char *buf)
{
    char *o = buf;
    int64_t exp = 0, e = 0;
    size_t kept = 0;
    bool any = false, sticky = false, frac = false;
    if (*p == '-')
        *o++ = *p++;
    for (; p < end && (is_digit(*p) || *p == '.'); p++) {
        if (*p == '.') {
            frac = true;
            continue;
        }
        if (!any && *p == '0') {
            exp -= frac;
            continue;
        }
        any = true;
        if (kept < SLOW_DIGITS) {
            *o++ = *p;
            kept++;
            exp -= frac;
        } else {
            exp += !frac;
            sticky |= *p != '0';
        }
    }
    if (p < end) { /* the exponent */
        const bool neg = *++p == '-';
        p += *p == '-' || *p == '+';
        for (; p < end; p++)
            if (e < 1000000000000)
                e = e * 10 + (*p - '0');
        exp += neg ? -e : e;
    }
    if (!any)
        *o++ = '0';
    if (sticky) {
        *o++ = '1';
        exp--;
    }
    /* Far past either end of a double; keeps the text short. */
    if (exp > 99999999)
        exp = 99999999;
    if (exp < -99999999)
        exp = -99999999;
    snprintf(o, 16, "e%lld", (long long)exp);
}

double jn_to_double(const char *p, const char *end)
{
    char buf[SLOW_DIGITS + 32];
    compact(p, end, buf);
    return strtod(buf, NULL);
}

static jn_status slow_f32(const char *p, const char *end, float *out)
{
    char buf[SLOW_DIGITS + 32];
    compact(p, end, buf);
    const float f = strtof(buf, NULL);
    if (isinf(f))
        return isinf(strtod(buf, NULL)) ? JN_OVERFLOW : JN_RANGE;
    *out = f;
    return JN_OK;
}

jn_status jn_parse_f32(const char *p, const char *end, const char **next, float *out)
{
    const char *const start = p;
    const bool neg = p < end && *p == '-';
    p += neg;
    if (p >= end || !is_digit(*p)) {
        *next = p;
        return JN_SYNTAX;
    }
    uint64_t w = 0;
    int nd = 0;           /* significant digits in w (at most 19: w < 10^19 < 2^64) */
    int64_t q = 0;        /* the value is w * 10^q, give or take dropped digits */
    bool dropped = false; /* nonzero digits past the 19th */
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p)) { /* a leading zero: "01" is not a number */
            *next = p;
            return JN_SYNTAX;
        }
    } else {
        do {
            if (nd < 19) {
                w = w * 10 + (uint64_t)(*p - '0');
                nd++;
            } else {
                q++;
                dropped |= *p != '0';
            }
            p++;
        } while (p < end && is_digit(*p));
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p)) {
            *next = p;
            return JN_SYNTAX;
        }
        /* Up to eight digits at a time: the run's length is found from the bits (no loop, no
         * branch on how long it is), its value by multiplications. A fraction of 6 to 9 digits,
         * the common case, takes one or two steps. Near the end of the text, byte by byte. */
        while (LITTLE_ENDIAN_SWAR && nd <= 11 && end - p >= 8) {
            uint64_t v;
            memcpy(&v, p, 8);
            const int n = digit_run(v);
            if (n == 0)
                break;
            /* Digits sit in the low bytes, first character lowest; shifted to the top, the bytes
             * below become leading zeros and the eight-digit conversion reads the run's value. */
            const uint64_t d = (v - 0x3030303030303030ull) << (8 * (8 - n));
            const uint64_t value = eight_digit_value(d);
            /* Leading zeros are not significant: while w is 0, count only from the first nonzero
             * digit (the lowest nonzero byte of d, n digits ending at its top). */
            nd = w ? nd + n : d ? 8 - ctz64(d) / 8 : 0;
            w = w * POW10_U64[n] + value;
            q -= n;
            p += n;
            if (n < 8)
                break;
        }
        for (; p < end && is_digit(*p); p++) {
            if (nd < 19) {
                w = w * 10 + (uint64_t)(*p - '0');
                nd += w != 0;
                q--;
            } else {
                dropped |= *p != '0';
            }
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        bool eneg = false;
        if (p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (p >= end || !is_digit(*p)) {
            *next = p;
            return JN_SYNTAX;
        }
        int64_t e = 0;
        for (; p < end && is_digit(*p); p++)
            if (e < 1000000000000) /* past any float; keeps q far from overflow */
                e = e * 10 + (*p - '0');
        q += eneg ? -e : e;
    }
    *next = p;

    if (w == 0) {
        *out = neg ? -0.0f : 0.0f;
        return JN_OK;
    }
    bool inf;
    uint32_t bits = eisel_lemire(w, q, &inf);
    if (dropped) {
        /* The decimal lies strictly between w and w + 1 at this scale: if both round alike,
         * so does every value between. */
        bool inf1;
        const uint32_t bits1 = eisel_lemire(w + 1, q, &inf1);
        if (bits1 != bits || inf1 != inf)
            return slow_f32(start, p, out);
    }
    if (inf) {
        /* w < 10^19, so below 10^(q+19) no double overflows; past it, strtod has the word. */
        if (q + 19 > 308 && isinf(jn_to_double(start, p)))
            return JN_OVERFLOW;
        return JN_RANGE;
    }
    bits |= (uint32_t)neg << 31;
    memcpy(out, &bits, sizeof *out);
    return JN_OK;
}
