/* nca_perceive.c - the reference kernel of the perception (contract in
 * nca_kernels.h), portable C99: the Sobel gradients of each channel over the
 * 3x3 neighbourhood, one channel at a time.
 */
#include "nca_kernels.h"

#if !NCA_KERNEL_ARM_DSP

/* The Sobel kernels' weights of the 8 mailbox slots (row-major 3x3 without
 * the centre: 0 1 2 / 3 . 4 / 5 6 7), x then y. One loop over this table is
 * half the flash of the two sums written out, which the 10 KiB cell needs on
 * Cortex-M0+. */
static const int8_t nca_sobel[2][NCA_MAILBOX_SLOTS] = {
    {-1, 0, 1, -2, 2, -1, 0, 1},
    {-1, -2, -1, 0, 0, 1, 2, 1},
};

/* g = floor((S + 4) / 8) for S in [-1020, 1020], round half up, saturated to
 * int8: adding 1024 before the shift keeps it on a non-negative value, so
 * ((S + 4 + 1024) >> 3) - 128 = floor((S + 4) / 8) exactly, in [-127, 128],
 * of which only 128 needs the saturation. */
int32_t nca_perceive(nca_cell_ram_t *ram, uint8_t xq[NCA_INPUTS])
{
    /* the RAM's bytes through a character-type pointer (C99 6.3.2.3p7): the
     * state and the two gradients are adjacent, 16 bytes apart */
    signed char *const bytes = (signed char *)(void *)ram;
    int32_t sum = 0;
    unsigned c, axis, k;
    for (c = 0; c < NCA_CHANNELS; ++c) {
        const int32_t s = ram->state[c];
        xq[c] = (uint8_t)(s + NCA_OFFSET);
        sum += s;
        for (axis = 0; axis < 2; ++axis) {
            const size_t at = offsetof(nca_cell_ram_t, grad_x) + axis * NCA_CHANNELS + c;
            int32_t sobel = 4 + 1024, g;
            for (k = 0; k < NCA_MAILBOX_SLOTS; ++k) {
                sobel += nca_sobel[axis][k] * ram->mailbox[k][c];
            }
            g = (sobel >> 3) - 128;
            g = g > 127 ? 127 : g;
            bytes[at] = (signed char)g;
            xq[at - offsetof(nca_cell_ram_t, state)] = (uint8_t)(g + NCA_OFFSET);
            sum += g;
        }
    }
    return sum;
}

#else
typedef int nca_perceive_reference_unused; /* ISO C: no empty file */
#endif
