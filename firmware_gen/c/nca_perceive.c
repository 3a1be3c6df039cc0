/* nca_perceive.c - the reference kernel of the perception (contract in
 * nca_kernels.h), portable C99: the Sobel gradients of each channel over the
 * 3x3 neighbourhood, one channel at a time.
 */
#include "nca_kernels.h"

#if !NCA_KERNEL_ARM_DSP

/* Sobel x and y of every channel over the 3x3 neighbourhood (the centre has
 * weight 0 in both), as the float model's Sobel / 8: g = (S + 4) >> 3, round
 * half up, saturated to int8. The sums S lie in [-1020, 1020]; adding 1024
 * before the shift keeps it on a non-negative value, so
 * ((S + 4 + 1024) >> 3) - 128 = floor((S + 4) / 8) exactly, in [-127, 128],
 * of which only 128 needs the saturation. */
static int8_t nca_gradient(int32_t sobel_sum)
{
    const int32_t g = ((sobel_sum + 4 + 1024) >> 3) - 128;
    return (int8_t)(g > 127 ? 127 : g);
}

int32_t nca_perceive(nca_cell_ram_t *ram, uint8_t xq[NCA_INPUTS])
{
    int32_t sum = 0;
    unsigned c;
    for (c = 0; c < NCA_CHANNELS; ++c) {
        /* mailbox slots in row-major order: 0 1 2 / 3 . 4 / 5 6 7 */
        const int32_t ul = ram->mailbox[0][c], up = ram->mailbox[1][c], ur = ram->mailbox[2][c];
        const int32_t lf = ram->mailbox[3][c], rt = ram->mailbox[4][c];
        const int32_t dl = ram->mailbox[5][c], dn = ram->mailbox[6][c], dr = ram->mailbox[7][c];
        const int32_t s = ram->state[c];
        const int8_t gx = nca_gradient((ur - ul) + 2 * (rt - lf) + (dr - dl));
        const int8_t gy = nca_gradient((dl - ul) + 2 * (dn - up) + (dr - ur));
        ram->grad_x[c] = gx;
        ram->grad_y[c] = gy;
        xq[c] = (uint8_t)(s + NCA_OFFSET);
        xq[NCA_CHANNELS + c] = (uint8_t)(gx + NCA_OFFSET);
        xq[2 * NCA_CHANNELS + c] = (uint8_t)(gy + NCA_OFFSET);
        sum += s + gx + gy;
    }
    return sum;
}

#else
typedef int nca_perceive_reference_unused; /* ISO C: no empty file */
#endif
