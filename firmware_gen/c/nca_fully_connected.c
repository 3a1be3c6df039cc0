/* nca_fully_connected.c - the reference kernel of the two fully connected
 * layers (contract in nca_kernels.h), portable C99: one block of 4 hidden
 * units at a time, its 4 dot products sharing each input, requantised, then
 * its column block of the second layer added into the 16 accumulators.
 */
#include "nca_kernels.h"

#if NCA_KERNEL_REFERENCE

/* The 4 hidden activations of a block (see nca_kernels.h). The stored weights
 * and inputs are offset-binary, u = w + 128 and x' = x + 128, so
 *     sum_d w x = sum_d u x' - 128 sum_d u - 128 sum_d x
 * and the header folded -128 sum_d u into b1: the dot product is the bias,
 * the update's correction and the unsigned products, summed modulo 2^32
 * (exact, as the true sum fits int32). */
static void nca_hidden_block(const nca_block_t *block, const uint8_t *xq, uint32_t correction,
                             int32_t top, int32_t h[NCA_BLOCK_UNITS])
{
    const uint8_t *w = &block->w1[0][0][0];
    /* the 4 row sums stay in registers; one input feeds the 4 rows, whose
     * weights for it are 4 bytes apart in the input's group of 16 */
    uint32_t s0 = (uint32_t)NCA_ROM_I32(&block->b1[0]) + correction;
    uint32_t s1 = (uint32_t)NCA_ROM_I32(&block->b1[1]) + correction;
    uint32_t s2 = (uint32_t)NCA_ROM_I32(&block->b1[2]) + correction;
    uint32_t s3 = (uint32_t)NCA_ROM_I32(&block->b1[3]) + correction;
    unsigned d, r;

    for (d = 0; d < NCA_INPUTS; ++d, ++w) {
        const uint32_t x = xq[d];
        s0 += NCA_ROM_U8(w) * x;
        s1 += NCA_ROM_U8(w + 4) * x;
        s2 += NCA_ROM_U8(w + 8) * x;
        s3 += NCA_ROM_U8(w + 12) * x;
        if (d % 4 == 3) {
            w += 12; /* the next group */
        }
    }
    h[0] = nca_int32(s0);
    h[1] = nca_int32(s1);
    h[2] = nca_int32(s2);
    h[3] = nca_int32(s3);
    for (r = 0; r < NCA_BLOCK_UNITS; ++r) {
        /* m1 >= 0, so a sum <= 0 requantises to at most 0: the ReLU floor */
        h[r] = h[r] <= 0 ? 0 : nca_requantize(h[r], NCA_ROM_I32(&block->m1[r]),
                                              NCA_ROM_I8(&block->shift1[r]), 0, top);
    }
}

void nca_fully_connected(const nca_genome_t *g, const uint8_t xq[NCA_INPUTS],
                         int32_t input_sum, int32_t acc[NCA_CHANNELS])
{
    /* The spec's hidden activation is clamp(r + zp, zp, 127) (ReLU at the
     * zero point), which the second layer reads with input offset -zp:
     * together clamp(r, 0, 127 - zp). */
    const int32_t top = 127 - g->hidden_zero_point;
    const uint32_t correction = 0u - (uint32_t)input_sum * NCA_OFFSET;
    const nca_block_t *block = g->blocks, *const end = g->blocks + g->block_count;
    uint32_t *out = (uint32_t *)(void *)acc; /* int32 read as uint32: wraps, defined */
    uint32_t h_sum = 0;
    unsigned c;

    for (; block != end; ++block) {
        int32_t h[NCA_BLOCK_UNITS];
        nca_hidden_block(block, xq, correction, top, h);
        if ((h[0] | h[1] | h[2] | h[3]) == 0) {
            continue; /* units at their ReLU floor add nothing */
        }
        h_sum += (uint32_t)(h[0] + h[1] + h[2] + h[3]);
        for (c = 0; c < NCA_CHANNELS; ++c) {
            const uint8_t *w = &block->w2[c][0];
            out[c] += NCA_ROM_U8(w) * (uint32_t)h[0] + NCA_ROM_U8(w + 1) * (uint32_t)h[1]
                      + NCA_ROM_U8(w + 2) * (uint32_t)h[2] + NCA_ROM_U8(w + 3) * (uint32_t)h[3];
        }
    }
    /* sum_j w h = sum_j u h - 128 sum_j h */
    for (c = 0; c < NCA_CHANNELS; ++c) {
        out[c] -= h_sum * NCA_OFFSET;
    }
}

#else
typedef int nca_fully_connected_reference_unused; /* ISO C: no empty file */
#endif
