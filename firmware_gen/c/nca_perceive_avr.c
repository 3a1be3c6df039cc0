/* nca_perceive_avr.c - the perception (contract in nca_kernels.h) for AVR
 * cores with the hardware multiplier: each channel's two Sobel sums written
 * out in 16-bit int, with no multiply (the reference's table loop takes every
 * weight times every slot through libgcc's 32-bit multiply: some 36,000
 * cycles per update here, this version a tenth of that). The reference kernel
 * (nca_perceive.c) computes the same bytes.
 */
#include "nca_kernels.h"

#if NCA_PERCEIVE_AVR

/* floor((S + 4) / 8) saturated to int8, for S in [-1020, 1020]: S + 1028 is
 * non-negative, so its shift is a floor, and the result lies in [-127, 128]. */
static int8_t nca_avr_gradient(int sobel_sum)
{
    const int g = ((sobel_sum + 4 + 1024) >> 3) - 128;
    return (int8_t)(g > 127 ? 127 : g);
}

int32_t nca_perceive(nca_cell_ram_t *ram, uint8_t xq[NCA_INPUTS])
{
    int sum = 0; /* |sum| <= 48 * 128: 16 bits */
    uint8_t c;
    for (c = 0; c < NCA_CHANNELS; ++c) {
        /* mailbox slots in row-major order: 0 1 2 / 3 . 4 / 5 6 7 */
        const int ul = ram->mailbox[0][c], up = ram->mailbox[1][c], ur = ram->mailbox[2][c];
        const int lf = ram->mailbox[3][c], rt = ram->mailbox[4][c];
        const int dl = ram->mailbox[5][c], dn = ram->mailbox[6][c], dr = ram->mailbox[7][c];
        const int8_t s = ram->state[c];
        const int8_t gx = nca_avr_gradient((ur - ul) + 2 * (rt - lf) + (dr - dl));
        const int8_t gy = nca_avr_gradient((dl - ul) + 2 * (dn - up) + (dr - ur));
        ram->grad_x[c] = gx;
        ram->grad_y[c] = gy;
        xq[c] = (uint8_t)(s + NCA_OFFSET);
        xq[c + NCA_CHANNELS] = (uint8_t)(gx + NCA_OFFSET);
        xq[c + 2 * NCA_CHANNELS] = (uint8_t)(gy + NCA_OFFSET);
        sum += s + gx + gy;
    }
    return sum;
}

#else
typedef int nca_perceive_avr_unused; /* ISO C: no empty file */
#endif
