/* nca_residual.c - the reference kernel of the residual update (contract in
 * nca_kernels.h), portable C99: each channel's delta requantised from its
 * layer-2 accumulator and added to the state, both saturated to int8.
 */
#include "nca_kernels.h"

#if !NCA_KERNEL_ARM_DSP

void nca_residual(const nca_genome_t *g, nca_cell_ram_t *ram)
{
    unsigned c;
    for (c = 0; c < NCA_CHANNELS; ++c) {
        const int32_t s = ram->state[c] + nca_requantize(ram->acc[c], NCA_ROM_I32(&g->m2[c]),
                                                         NCA_ROM_I8(&g->shift2[c]), -128, 127);
        ram->state[c] = (int8_t)(s < -128 ? -128 : s > 127 ? 127 : s);
    }
}

#else
typedef int nca_residual_reference_unused; /* ISO C: no empty file */
#endif
