/* nca_requantize.c - the reference fixed-point requantisation of both layers
 * (contract in nca_kernels.h), in 32-bit words only: Armv6-M and AVR have no
 * 64-bit multiply or shift, and libgcc's would cost flash the 10 KiB cell
 * does not have. Portable C99 (int may be 16 bits).
 */
#include "nca_kernels.h"

#if !NCA_KERNEL_AVR

/* Armv6-M and AVR multiply 32 x 32 -> 32 only: there the 64-bit product is
 * assembled from 16-bit halves; elsewhere the compiler's widening multiply is
 * one or two instructions. */
#ifndef NCA_WIDE_MULTIPLY /* the tests set it to check both paths on the host */
#if defined(__ARM_ARCH_6M__) || defined(__AVR__)
#define NCA_WIDE_MULTIPLY 0
#else
#define NCA_WIDE_MULTIPLY 1
#endif
#endif

/* floor(acc * m / 2^32) for |acc| < 2^31, 0 <= m < 2^31 (|result| < 2^30) */
static int32_t nca_high_product(int32_t acc, int32_t m)
{
#if NCA_WIDE_MULTIPLY
    const int64_t p = (int64_t)acc * m;
    return (int32_t)(p < 0 ? ~(~p >> 32) : p >> 32); /* floor without >> of a negative */
#else
    /* on the magnitude a = a1 2^16 + a0, m = m1 2^16 + m0 with a1, m1 < 2^15:
     * the cross sum a1 m0 + a0 m1 + (a0 m0 >> 16) stays below 2^32; a negative
     * product's floor is -ceil(|p| / 2^32) */
    const uint32_t a = acc < 0 ? 0u - (uint32_t)acc : (uint32_t)acc;
    const uint32_t a0 = a & 0xFFFFu, a1 = a >> 16, m0 = (uint32_t)m & 0xFFFFu, m1 = (uint32_t)m >> 16;
    const uint32_t low = a0 * m0;
    const uint32_t cross = a1 * m0 + a0 * m1 + (low >> 16);
    const uint32_t high = a1 * m1 + (cross >> 16);
    if (acc >= 0) {
        return (int32_t)high;
    }
    return -(int32_t)high - (((cross << 16) | (low & 0xFFFFu)) != 0u);
#endif
}

/* floor(x / 2^s) for 0 <= s <= 31 without shifting a negative value (C99
 * leaves that implementation-defined): ~x = -x - 1 >= 0 for x < 0. GCC and
 * Clang compile it into one arithmetic shift. */
static int32_t nca_floor_shift(int32_t x, int s)
{
    return x < 0 ? ~(~x >> s) : x >> s;
}

/* With t = 31 - shift in [1, 62] and P = acc * m, the result is
 * floor((P + 2^(t-1)) / 2^t), computed from the high word of a product only:
 * - t >= 33: the low word of P cannot change the result, so with
 *   hi = floor(P / 2^32) and s = t - 32 >= 1,
 *       floor((P + 2^(t-1)) / 2^t) = floor((floor(hi / 2^(s-1)) + 1) / 2);
 * - t < 33: with k = 33 - t, the same value is
 *       floor((acc 2^k m + 2^32) / 2^33),
 *   the first case for acc 2^k, when |acc| < 2^(31-k). Otherwise (m != 0,
 *   so m >= 2^30) |result| >= 2^28, beyond the clamp.
 * Needs -2^28 < lo <= 0 <= hi < 2^28 (the layers use [0, 255] and [-128, 127]);
 * |acc| <= INT32_MAX by the accumulator range check. */
int32_t nca_requantize(int32_t acc, int32_t m, int shift, int32_t lo, int32_t hi)
{
    int t = 31 - shift;
    int32_t r;
    if (t < 33 && acc != 0 && m != 0) {
        const int k = 33 - t; /* 1 .. 32 */
        const uint32_t magnitude = acc < 0 ? 0u - (uint32_t)acc : (uint32_t)acc;
        if (k >= 31 || magnitude >= (uint32_t)1 << (31 - k)) { /* 1u is 16 bits on AVR */
            return acc < 0 ? lo : hi;
        }
        acc = acc < 0 ? -(int32_t)(magnitude << k) : (int32_t)(magnitude << k);
        t = 33;
    }
    r = nca_floor_shift(nca_floor_shift(nca_high_product(acc, m), t - 33) + 1, 1);
    return r < lo ? lo : r > hi ? hi : r;
}

#else
typedef int nca_requantize_reference_unused; /* ISO C: no empty file */
#endif
