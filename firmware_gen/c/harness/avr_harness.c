/* avr_harness.c - runs nca_cell_update on a simulated ATmega2560 (simavr,
 * driven by simavr_runner.c, which has the I/O that semihosting gives the
 * other targets): at each write of GPIOR0 the runner takes the updated RAM
 * image out of nca_avr_ram and puts the next one in. The genome is the
 * generated header's arrays, in flash (PROGMEM), as on a real cell:
 *   -DNCA_GENOME_HEADER='"nca_x.h"' -DNCA_GENOME_INIT=NCA_X_GENOME_INIT
 */
#include <avr/io.h>

#include "nca_cell.h"

#include NCA_GENOME_HEADER

static const nca_genome_t genome = NCA_GENOME_INIT;
nca_cell_ram_t nca_avr_ram; /* external: the runner finds it by name */

int main(void)
{
    for (;;) {
        GPIOR0 = 1; /* the runner swaps the RAM image here, or ends the run */
        __asm__ volatile("" ::: "memory");
        nca_cell_update(&genome, &nca_avr_ram);
    }
}
