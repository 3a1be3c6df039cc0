/* nca_perceive.c - the reference kernel of the perception (contract in
 * nca_kernels.h), portable C99: the gradient filters of each channel over the
 * 3x3 neighbourhood, one channel at a time, from the taps that
 * nca_cell_layout.h carries (generated from cellsim/intspec/perceive.py).
 */
#include "nca_kernels.h"

#if NCA_PERCEIVE_REFERENCE

/* The first-layer inputs as one weighted sum each over 9 slots of the RAM,
 * 16 bytes apart: the 8 mailbox slots (row-major 3x3 without the centre:
 * 0 1 2 / 3 . 4 / 5 6 7) and the state, which follows them. An input is
 * floor((S + rounding) / 2^shift) saturated to int8 with
 * S = sum_k weight[k] * slot[k]: the state with weight 2^shift (S = 2^shift s
 * gives s), then the gradient filters (NCA_PERCEPTION_WEIGHTS). One loop over
 * this table is a third of the flash of the sums written out, which the
 * 10 KiB cell needs on Cortex-M0+. */
static const int8_t nca_input_weights[NCA_INPUTS / NCA_CHANNELS][NCA_MAILBOX_SLOTS + 1] =
    NCA_PERCEPTION_WEIGHTS;

/* Adding NCA_GRADIENT_BIAS (a multiple of 2^shift) before the shift keeps S on a
 * non-negative value, so ((S + rounding + bias) >> shift) - (bias >> shift) =
 * floor((S + rounding) / 2^shift) exactly, in [NCA_GRADIENT_MIN,
 * NCA_GRADIENT_MAX]; a saturation is compiled on the sides that range crosses
 * (for Sobel, S in [-1020, 1020], only +128 needs it). */
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
        int32_t s = NCA_GRADIENT_ROUNDING + NCA_GRADIENT_BIAS, v;
        for (k = 0; k <= NCA_MAILBOX_SLOTS; ++k, slot += NCA_CHANNELS) {
            s += nca_input_weights[i / NCA_CHANNELS][k] * *slot;
        }
        v = (s >> NCA_GRADIENT_SHIFT) - (NCA_GRADIENT_BIAS >> NCA_GRADIENT_SHIFT);
#if NCA_GRADIENT_MAX > 127
        v = v > 127 ? 127 : v;
#endif
#if NCA_GRADIENT_MIN < -128
        v = v < -128 ? -128 : v;
#endif
        bytes[offsetof(nca_cell_ram_t, state) + i] = (signed char)v; /* the state: unchanged */
        xq[i] = (uint8_t)(v + NCA_OFFSET);
        sum += v;
    }
    return sum;
}

#else
typedef int nca_perceive_reference_unused; /* ISO C: no empty file */
#endif
