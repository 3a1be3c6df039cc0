/* nca_requantize.c - the fixed-point requantisation of both layers, in 32-bit
 * words only: Armv6-M and AVR have no 64-bit multiply or shift, and libgcc's
 * would cost flash the 10 KiB cell does not have. Portable C99.
 */
#include "nca_kernels.h"

/* Armv6-M and AVR multiply 32 x 32 -> 32 only: there the 64-bit product is
 * assembled from 16-bit halves; elsewhere the compiler's widening multiply is
 * one or two instructions. */
#if defined(__ARM_ARCH_6M__) || defined(__AVR__)
#define NCA_WIDE_MULTIPLY 0
#else
#define NCA_WIDE_MULTIPLY 1
#endif

/* (*hi, *lo) = a * b for a, b < 2^31 */
static void nca_multiply(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
#if NCA_WIDE_MULTIPLY
    const uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
#else
    /* a = a1 2^16 + a0, b = b1 2^16 + b0 with a1, b1 < 2^15: the cross sum
     * a1 b0 + a0 b1 + (a0 b0 >> 16) stays below 2^32. */
    const uint32_t a0 = a & 0xFFFFu, a1 = a >> 16, b0 = b & 0xFFFFu, b1 = b >> 16;
    const uint32_t low = a0 * b0;
    const uint32_t cross = a1 * b0 + a0 * b1 + (low >> 16);
    *hi = a1 * b1 + (cross >> 16);
    *lo = (cross << 16) | (low & 0xFFFFu);
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
 * floor((P + 2^(t-1)) / 2^t).
 * - shift <= -2 (t >= 33, every realistic genome): the low word of P cannot
 *   change the result, so with hi = floor(P / 2^32) and s = t - 32 >= 1,
 *       floor((P + 2^(t-1)) / 2^t) = floor((floor(hi / 2^(s-1)) + 1) / 2),
 *   where |hi| < 2^30.
 * - otherwise, on the magnitude Q = |acc| * m (|acc| <= INT32_MAX by the
 *   accumulator range check, m < 2^31) in two words:
 *       P >= 0:  (Q + 2^(t-1)) >> t
 *       P < 0:   -((Q + 2^(t-1) - 1) >> t)   as floor(-y) = -ceil(y)
 *   so every shift is of a non-negative value. */
int32_t nca_requantize(int32_t acc, int32_t m, int shift, int32_t lo, int32_t hi)
{
    const int t = 31 - shift;
    const int negative = acc < 0;
    const uint32_t magnitude = negative ? 0u - (uint32_t)acc : (uint32_t)acc;
    uint32_t qh, ql, rh, rl, u;

    if (t >= 33) {
#if NCA_WIDE_MULTIPLY
        /* floor(P / 2^32), the high word of the two's complement product */
        const int64_t p = (int64_t)acc * m;
        const int32_t high = (int32_t)(p < 0 ? ~(~p >> 32) : p >> 32);
#else
        /* floor(P / 2^32): -ceil(Q / 2^32) for a negative product */
        int32_t high;
        nca_multiply(magnitude, (uint32_t)m, &qh, &ql);
        high = negative ? -(int32_t)qh - (ql != 0u) : (int32_t)qh;
#endif
        {
            const int32_t r = nca_floor_shift(nca_floor_shift(high, t - 33) + 1, 1);
            return r < lo ? lo : r > hi ? hi : r;
        }
    }
    nca_multiply(magnitude, (uint32_t)m, &qh, &ql);
    /* + 2^(t-1) - negative, as a 64-bit (rh, rl); Q + 2^(t-1) - 1 >= 0 */
    rl = ql + (t <= 32 ? 1u << (t - 1) : 0u);
    rh = qh + (rl < ql);
    if (negative) {
        rh -= (rl == 0u);
        rl -= 1u;
    }
    if (t == 32) {
        u = rh;
    } else {
        if (rh >> t != 0u) { /* the magnitude is at least 2^32: saturated */
            return negative ? lo : hi;
        }
        u = (rl >> t) | (rh << (32 - t));
    }
    if (u > 0x7FFFFFFFu) {
        return negative ? lo : hi;
    }
    {
        const int32_t r = negative ? -(int32_t)u : (int32_t)u;
        return r < lo ? lo : r > hi ? hi : r;
    }
}
