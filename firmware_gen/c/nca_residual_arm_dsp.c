/* nca_residual_arm_dsp.c - the residual update (contract in nca_kernels.h)
 * for Arm cores with the DSP extension: the requantisation's multiply as one
 * SMULL and the saturations as SSAT. The reference kernel (nca_residual.c)
 * computes the same bytes.
 */
#include "nca_kernels.h"

#if NCA_KERNEL_ARM_DSP

#include <arm_acle.h>

void nca_residual(const nca_genome_t *g, nca_cell_ram_t *ram)
{
    unsigned c;
    for (c = 0; c < NCA_CHANNELS; ++c) {
        const int shift = g->shift2[c];
        int32_t delta;
        if (shift <= -2) {
            /* as nca_requantize.c for t = 31 - shift >= 33: with
             * hi = floor(acc * m / 2^32) (SMULL's high word), the delta is
             * floor((floor(hi / 2^(-2 - shift)) + 1) / 2); GCC's >> of a
             * negative int is arithmetic, as documented for this target */
            const int32_t hi = (int32_t)(((int64_t)ram->acc[c] * g->m2[c]) >> 32);
            delta = __ssat(((hi >> (-2 - shift)) + 1) >> 1, 8);
        } else {
            delta = nca_requantize(ram->acc[c], g->m2[c], shift, -128, 127);
        }
        ram->state[c] = (int8_t)__ssat(ram->state[c] + delta, 8);
    }
}

#else
typedef int nca_residual_arm_dsp_unused; /* ISO C: no empty file */
#endif
