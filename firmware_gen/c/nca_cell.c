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

/* A dead cell takes the all-zero state. Written as a plain loop that the
 * compiler must not turn into a call of the C library's memset (162 bytes
 * on Cortex-M, more than the flash budget's margin). */
NCA_NOINLINE static void nca_kill(nca_cell_ram_t *ram)
{
    volatile int8_t *state = ram->state;
    unsigned c;
    for (c = 0; c < NCA_CHANNELS; ++c) {
        state[c] = 0;
    }
}

/* Whether some neighbour's last known alpha exceeds the threshold. */
static int nca_neighbours_alive(const nca_cell_ram_t *ram, int32_t threshold)
{
    unsigned k;
    for (k = 0; k < NCA_MAILBOX_SLOTS; ++k) {
        if (ram->mailbox[k][NCA_ALPHA] > threshold) {
            return 1;
        }
    }
    return 0;
}

void nca_cell_update(const nca_genome_t *g, nca_cell_ram_t *ram)
{
    const int32_t threshold = g->alive_threshold;
    uint8_t xq[NCA_INPUTS];
    int32_t input_sum;
    int neighbours_alive;
    unsigned c;

    ram->count += 1u; /* uint32_t arithmetic wraps modulo 2^32 */
    neighbours_alive = nca_neighbours_alive(ram, threshold);
    if (!neighbours_alive && ram->state[NCA_ALPHA] <= threshold) {
        /* nothing alive around: the state dies, the scratch keeps its bytes */
        nca_kill(ram);
        return;
    }
    input_sum = nca_perceive(ram, xq);
    /* Second-layer accumulators start at the bias; the kernel adds each block
     * of hidden units as soon as it is known (exact integers: any order). */
    for (c = 0; c < NCA_CHANNELS; ++c) {
        ram->acc[c] = NCA_ROM_I32(&g->b2[c]);
    }
    nca_fully_connected(g, xq, input_sum, ram->acc);

    nca_residual(g, ram);
    /* alive before (known) and after: the neighbours are unchanged, only the
     * own alpha is new */
    if (!neighbours_alive && ram->state[NCA_ALPHA] <= threshold) {
        nca_kill(ram);
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
