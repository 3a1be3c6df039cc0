/* mcu_harness.c - runs nca_cell_update on an emulated MCU (any target with
 * semihosting) over the RAM images in the host file "vectors.in" (256 bytes
 * each) and writes each image after one update to "vectors.out". The genome is
 * the generated header's ROM arrays, as on a real cell:
 *   -DNCA_GENOME_HEADER='"nca_x.h"' -DNCA_GENOME_INIT=NCA_X_GENOME_INIT
 */
#include "nca_cell.h"
#include "semihost.h"

#include NCA_GENOME_HEADER

static const nca_genome_t genome = NCA_GENOME_INIT;
static nca_cell_ram_t ram;

int main(void)
{
    const int in = sh_open("vectors.in", SH_MODE_RB);
    const int out = sh_open("vectors.out", SH_MODE_WB);
    if (in < 0 || out < 0) {
        return 1;
    }
    while (sh_read(in, &ram, sizeof ram) == 0) {
        nca_cell_update(&genome, &ram);
        if (sh_write(out, &ram, sizeof ram) != 0) {
            return 1;
        }
    }
    sh_close(in);
    sh_close(out);
    return 0;
}
