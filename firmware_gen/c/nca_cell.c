/* nca_cell.c - one cell update in integers, bit for bit cellsim.intspec.update_ram.
 * The alive test, perception (Sobel), the residual add; the two fully connected
 * layers are a kernel (nca_kernels.h: a portable reference and versions for
 * Cortex-M cores, chosen at compile time). Every rounding is written out; no
 * float, no malloc.
 *
 * Precondition: the genome passed cellsim.genome.check_accumulator_range (every
 * genome file and header does), so |bias| + sum |w| * |input| <= INT32_MAX for
 * both layers: no final accumulator can overflow int32.
 */
#include "nca_kernels.h"

#include <string.h>

/* Whether some alpha in the 3x3 neighbourhood exceeds the threshold: the 8
 * neighbours' last known alphas and the own one. The state follows the
 * mailbox in the RAM, so the own alpha is a ninth slot, read through a
 * character-type pointer to the RAM (C99 6.3.2.3p7). */
NCA_NOINLINE static int nca_alive(const nca_cell_ram_t *ram, int threshold)
{
    const signed char *alpha = (const signed char *)(const void *)ram + NCA_ALPHA;
    unsigned k;
    NCA_STATIC_ASSERT(offsetof(nca_cell_ram_t, state) == NCA_MAILBOX_SLOTS * NCA_CHANNELS,
                      "the state follows the mailbox");
    for (k = 0; k <= NCA_MAILBOX_SLOTS; ++k, alpha += NCA_CHANNELS) {
        if (*alpha > threshold) {
            return 1;
        }
    }
    return 0;
}

void nca_cell_update(const nca_genome_t *g, nca_cell_ram_t *ram)
{
    volatile int8_t *state = ram->state;
    unsigned c;

    ram->count += 1u; /* uint32_t arithmetic wraps modulo 2^32 */
    if (nca_alive(ram, g->alive_threshold)) {
        uint8_t xq[NCA_INPUTS];
        const int32_t input_sum = nca_perceive(ram, xq);
        /* Second-layer accumulators start at the bias; the kernel adds each
         * block of hidden units as soon as it is known (exact integers: any
         * order). */
        for (c = 0; c < NCA_CHANNELS; ++c) {
            ram->acc[c] = NCA_ROM_I32(&g->b2[c]);
        }
        nca_fully_connected(g, xq, input_sum, ram->acc);
        nca_residual(g, ram);
        /* alive after the update too (the neighbours are unchanged, the own
         * alpha is new)? */
        if (nca_alive(ram, g->alive_threshold)) {
            return;
        }
    }
    /* Nothing alive around: the state dies; the scratch keeps its bytes. A
     * plain loop (volatile: not turned into a call of the C library's
     * memset, 162 bytes on Cortex-M, more than the flash budget spares). */
    for (c = 0; c < NCA_CHANNELS; ++c) {
        state[c] = 0;
    }
}

int nca_cell_receive(nca_cell_ram_t *ram, unsigned slot, const int8_t state[NCA_CHANNELS])
{
    if (slot >= NCA_MAILBOX_SLOTS) {
        return -1;
    }
    memcpy(ram->mailbox[slot], state, NCA_CHANNELS);
    return 0;
}

void nca_cell_state_to_send(const nca_cell_ram_t *ram, int8_t out[NCA_CHANNELS])
{
    memcpy(out, ram->state, NCA_CHANNELS);
}
