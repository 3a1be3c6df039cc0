/* nca_perceive_arm_dsp.c - the perception (contract in nca_kernels.h) for Arm
 * cores with the DSP extension: four channels per pass, one word of each
 * mailbox slot, in 16-bit SIMD lanes (even channels, then odd ones). The
 * reference kernel (nca_perceive.c) computes the same bytes.
 */
#include "nca_kernels.h"

#if NCA_PERCEIVE_ARM_DSP

#include <arm_acle.h>
#include <string.h>

/* bytes 1 and 3 of a word sign-extended into two 16-bit lanes (GCC 12's ACLE
 * has no __ror to let the compiler fold the rotation into SXTB16) */
static inline uint32_t nca_sxtb16_odd(uint32_t w)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(w));
    return r;
}

/* A word of the mailbox: channels q..q+3 of slot k. */
static inline uint32_t nca_slot(const nca_cell_ram_t *ram, unsigned k, unsigned q)
{
    uint32_t w;
    memcpy(&w, &ram->mailbox[k][q], sizeof w);
    return w;
}

/* Sobel x and y of two channels (16-bit lanes: the words' even bytes, or with
 * `odd` their odd bytes), as floor((S + 4) / 8) saturated to int8. With
 * p = dr - ul and q = ur - dl (slots 7, 0, 2, 5),
 *     Sx = p + q + 2 (rt - lf),   Sy = p - q + 2 (dn - up),
 * and for S = s + 2 a, floor((S + 4) / 8) is three floor halvings (SHADD16:
 * floor((y + z) / 2) per lane, and floor(floor(y / 2) / 2) = floor(y / 4)):
 *     floor((floor((floor((s + 4) / 2) + a) / 2) + 0) / 2),
 * all within 16 bits (|S| <= 1020). */
static inline void nca_sobel2(const nca_cell_ram_t *ram, unsigned q, int odd,
                              uint32_t *gx, uint32_t *gy)
{
#define NCA_LANES(k) (odd ? nca_sxtb16_odd(nca_slot(ram, k, q)) \
                      : (uint32_t)__sxtb16(nca_slot(ram, k, q)))
    const uint32_t p = __ssub16(NCA_LANES(7), NCA_LANES(0));
    const uint32_t r = __ssub16(NCA_LANES(2), NCA_LANES(5));
    const uint32_t a = __ssub16(NCA_LANES(4), NCA_LANES(3));
    const uint32_t b = __ssub16(NCA_LANES(6), NCA_LANES(1));
#undef NCA_LANES
    const uint32_t sx = __shadd16(__shadd16(__shadd16(__sadd16(p, r), 0x00040004u), a), 0u);
    const uint32_t sy = __shadd16(__shadd16(__shadd16(__ssub16(p, r), 0x00040004u), b), 0u);
    *gx = (uint32_t)__ssat16((int16x2_t)sx, 8);
    *gy = (uint32_t)__ssat16((int16x2_t)sy, 8);
}

/* Two lanes of even channels and two of odd ones back into 4 bytes. */
static inline uint32_t nca_bytes(uint32_t even, uint32_t odd)
{
    return __uxtb16(even) | __uxtb16(odd) << 8;
}

int32_t nca_perceive(nca_cell_ram_t *ram, uint8_t xq[NCA_INPUTS])
{
    uint32_t sum = 0; /* sum of the offset-binary inputs, by USADA8 */
    unsigned q;
    for (q = 0; q < NCA_CHANNELS; q += 4) {
        uint32_t xe, ye, xo, yo, gx, gy, state;
        nca_sobel2(ram, q, 0, &xe, &ye);
        nca_sobel2(ram, q, 1, &xo, &yo);
        gx = nca_bytes(xe, xo);
        gy = nca_bytes(ye, yo);
        memcpy(&ram->grad_x[q], &gx, sizeof gx);
        memcpy(&ram->grad_y[q], &gy, sizeof gy);
        memcpy(&state, &ram->state[q], sizeof state);
        /* offset-binary: x + 128 flips the sign bit of each byte */
        state ^= 0x80808080u;
        gx ^= 0x80808080u;
        gy ^= 0x80808080u;
        memcpy(xq + q, &state, sizeof state);
        memcpy(xq + NCA_CHANNELS + q, &gx, sizeof gx);
        memcpy(xq + 2 * NCA_CHANNELS + q, &gy, sizeof gy);
        sum = __usada8(state, 0u, __usada8(gx, 0u, __usada8(gy, 0u, sum)));
    }
    return (int32_t)sum - NCA_INPUTS * NCA_OFFSET;
}

#else
typedef int nca_perceive_arm_dsp_unused; /* ISO C: no empty file */
#endif
