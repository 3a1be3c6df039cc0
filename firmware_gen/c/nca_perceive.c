/* nca_perceive.c - the reference kernel of the perception (contract in
 * nca_kernels.h), portable C99: the Sobel gradients of each channel over the
 * 3x3 neighbourhood, one channel at a time.
 */
#include "nca_kernels.h"

#if !NCA_KERNEL_ARM_DSP && !NCA_KERNEL_AVR

/* The first-layer inputs as one weighted sum each over 9 slots of the RAM,
 * 16 bytes apart: the 8 mailbox slots (row-major 3x3 without the centre:
 * 0 1 2 / 3 . 4 / 5 6 7) and the state, which follows them. An input is
 * floor((S + 4) / 8) saturated to int8 with S = sum_k weight[k] * slot[k]:
 * the state with weight 8 (S = 8 s gives s), then Sobel x and Sobel y. One
 * loop over this table is a third of the flash of the sums written out,
 * which the 10 KiB cell needs on Cortex-M0+. */
static const int8_t nca_input_weights[3][NCA_MAILBOX_SLOTS + 1] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 8},
    {-1, 0, 1, -2, 2, -1, 0, 1, 0},
    {-1, -2, -1, 0, 0, 1, 2, 1, 0},
};

/* S lies in [-1020, 1020]: adding 1024 before the shift keeps it on a
 * non-negative value, so ((S + 4 + 1024) >> 3) - 128 = floor((S + 4) / 8)
 * exactly, in [-127, 128], of which only 128 needs the saturation. */
int32_t nca_perceive(nca_cell_ram_t *ram, uint8_t xq[NCA_INPUTS])
{
    /* the RAM's bytes through a character-type pointer (C99 6.3.2.3p7): the
     * state and the two gradients are adjacent, as are their inputs in xq */
    signed char *const bytes = (signed char *)(void *)ram;
    int32_t sum = 0;
    unsigned i, k;
    NCA_STATIC_ASSERT(offsetof(nca_cell_ram_t, state) == NCA_MAILBOX_SLOTS * NCA_CHANNELS
                      && offsetof(nca_cell_ram_t, grad_x) == offsetof(nca_cell_ram_t, state)
                      + NCA_CHANNELS, "state and gradients follow the mailbox");
    for (i = 0; i < NCA_INPUTS; ++i) {
        const signed char *slot = bytes + i % NCA_CHANNELS;
        int32_t s = 4 + 1024, v;
        for (k = 0; k <= NCA_MAILBOX_SLOTS; ++k, slot += NCA_CHANNELS) {
            s += nca_input_weights[i / NCA_CHANNELS][k] * *slot;
        }
        v = (s >> 3) - 128;
        v = v > 127 ? 127 : v;
        bytes[offsetof(nca_cell_ram_t, state) + i] = (signed char)v; /* the state: unchanged */
        xq[i] = (uint8_t)(v + NCA_OFFSET);
        sum += v;
    }
    return sum;
}

#else
typedef int nca_perceive_reference_unused; /* ISO C: no empty file */
#endif
