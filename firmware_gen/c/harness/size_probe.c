/* size_probe.c - the smallest Cortex-M firmware around one cell, built with and
 * without the update so that the difference in flash is what the genome and
 * the update code add to a firmware (benchmarks/firmware_size.py).
 *   -DNCA_PROBE_UPDATE: one nca_cell_update with the genome of
 *       -DNCA_GENOME_HEADER='"nca_x.h"' -DNCA_GENOME_INIT=NCA_X_GENOME_INIT
 *   -DNCA_PROBE_HOOKS: also the message hooks
 */
#include "nca_cell.h"
#include "semihost.h"

#ifdef NCA_PROBE_UPDATE
#include NCA_GENOME_HEADER
static const nca_genome_t genome = NCA_GENOME_INIT;
#endif

nca_cell_ram_t nca_probe_ram;
int8_t nca_probe_message[NCA_CHANNELS];

int main(void)
{
#ifdef NCA_PROBE_UPDATE
    nca_cell_update(&genome, &nca_probe_ram);
#endif
#ifdef NCA_PROBE_HOOKS
    (void)nca_cell_receive(&nca_probe_ram, 0u, nca_probe_message);
    nca_cell_state_to_send(&nca_probe_ram, nca_probe_message);
#endif
    return nca_probe_ram.count == 1u ? 0 : 1;
}
