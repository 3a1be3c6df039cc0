/* avr_requantize_probe.c - nca_requantize alone on the simulated ATmega2560,
 * for tests: link it with nca_requantize_avr.c and nca_requantize.c (the
 * assembly one, or the reference with -DNCA_PORTABLE). Neither takes the int64
 * shift of the spec, so each is checked against it case by case, at every
 * shift and at the rounding ties and saturation edges, which a few thousand
 * cell updates reach rarely. Run like avr_harness.c (simavr_runner.c): each
 * 256-byte image holds 16 cases of 16 bytes, little-endian:
 *     0: int32 acc   4: int32 m   8: int8 shift   10: int16 lo   12: int16 hi
 * and the result (int32) replaces acc. */
#include <avr/io.h>
#include <string.h>

#include "nca_kernels.h"

#define CASE_BYTES 16

nca_cell_ram_t nca_avr_ram;

/* the runner times a function of this name */
void nca_cell_update(const nca_genome_t *g, nca_cell_ram_t *ram)
{
    unsigned char *cases = (unsigned char *)ram;
    unsigned k;
    (void)g;
    for (k = 0; k < NCA_RAM_BYTES; k += CASE_BYTES) {
        int32_t acc, m, r;
        int16_t lo, hi;
        memcpy(&acc, cases + k, sizeof acc);
        memcpy(&m, cases + k + 4, sizeof m);
        memcpy(&lo, cases + k + 10, sizeof lo);
        memcpy(&hi, cases + k + 12, sizeof hi);
        r = nca_requantize(acc, m, (int8_t)cases[k + 8], lo, hi);
        memcpy(cases + k, &r, sizeof r);
    }
}

int main(void)
{
    for (;;) {
        GPIOR0 = 1;
        __asm__ volatile("" ::: "memory");
        nca_cell_update(NULL, &nca_avr_ram);
    }
}
