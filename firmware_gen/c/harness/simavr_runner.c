/* simavr_runner.c - the AVR test bench: a host program on libsimavr that runs
 * an avr_harness.c image on a simulated ATmega2560 and feeds it RAM images.
 * simavr has no semihosting, so the runner does the I/O itself: each time the
 * image writes GPIOR0 it copies the updated cell RAM out of the simulated SRAM
 * to stdout and the next 256-byte image from stdin in. It also counts, per
 * update, the cycles from the first instruction of nca_cell_update to the
 * return into main (simavr's instruction timings), and the stack the update
 * takes, return address included, from the lowest stack pointer it reaches.
 *
 *   simavr_runner IMAGE.elf MCU HZ RAM ENTRY RETURN STATS [PROFILE] < rams > rams
 * RAM: the SRAM address of the harness's cell RAM; ENTRY, RETURN: byte
 * addresses of nca_cell_update and of the instruction after main's call of it
 * (all hexadecimal); STATS: a file that gets "cycles stack_bytes" per update;
 * PROFILE: a file that gets "address cycles" for every instruction address
 * that ran inside the updates (all updates summed), for a cycle profile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sim_avr.h>
#include <sim_elf.h>
#include <sim_io.h>

#define RAM_BYTES 256
#define GPIOR0_DATA_ADDRESS 0x3e /* I/O 0x1e: a general-purpose register */
#define CALL_RETURN_BYTES 3      /* a CALL on a 256 KiB part pushes a 22-bit PC */
/* An image that stops signalling (a crash that loops) fails the run instead
 * of spinning until the caller's timeout: no update of up to 4,096 hidden
 * units takes a sixth of this, even in plain C. */
#define MAX_CYCLES_BETWEEN_SIGNALS 200000000ull

typedef struct {
    avr_cycle_count_t signalled; /* cycle of the last signal */
    uint16_t ram;
    int loaded; /* an image is in the simulated RAM, to be updated */
    int done;   /* stdin is exhausted */
    int failed;
} bench_t;

static uint16_t stack_pointer(const avr_t *avr)
{
    return (uint16_t)(avr->data[R_SPL] | avr->data[R_SPH] << 8);
}

/* The image's signal on GPIOR0: the previous image is updated, swap it. */
static void on_signal(avr_t *avr, avr_io_addr_t addr, uint8_t v, void *param)
{
    bench_t *bench = param;
    uint8_t image[RAM_BYTES];
    size_t got;
    (void)addr;
    (void)v;
    bench->signalled = avr->cycle;
    if (bench->loaded && fwrite(avr->data + bench->ram, 1, RAM_BYTES, stdout) != RAM_BYTES) {
        bench->failed = 1;
    }
    got = fread(image, 1, RAM_BYTES, stdin);
    if (got == RAM_BYTES) {
        memcpy(avr->data + bench->ram, image, RAM_BYTES);
        bench->loaded = 1;
    } else {
        bench->failed |= got != 0; /* a partial image */
        bench->done = 1;
    }
}

static void quiet(avr_t *avr, const int level, const char *format, va_list ap)
{
    (void)avr;
    if (level <= LOG_ERROR) {
        vfprintf(stderr, format, ap);
    }
}

int main(int argc, char **argv)
{
    elf_firmware_t firmware;
    avr_t *avr;
    bench_t bench = {0, 0, 0, 0, 0};
    unsigned long entry, ret;
    unsigned long long start = 0;
    uint16_t entry_sp = 0, lowest_sp = 0;
    int inside = 0;
    FILE *stats;
    unsigned long long *profile = NULL; /* cycles per flash word */
    unsigned long word;

    if (argc != 8 && argc != 9) {
        fprintf(stderr, "usage: %s IMAGE.elf MCU HZ RAM ENTRY RETURN STATS [PROFILE]\n",
                argv[0]);
        return 2;
    }
    bench.ram = (uint16_t)strtoul(argv[4], NULL, 16);
    entry = strtoul(argv[5], NULL, 16);
    ret = strtoul(argv[6], NULL, 16);
    avr_global_logger_set(quiet);
    memset(&firmware, 0, sizeof firmware);
    if (elf_read_firmware(argv[1], &firmware) != 0) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    avr = avr_make_mcu_by_name(argv[2]);
    if (avr == NULL) {
        fprintf(stderr, "simavr has no core %s\n", argv[2]);
        return 1;
    }
    avr_init(avr);
    firmware.frequency = (uint32_t)strtoul(argv[3], NULL, 10);
    avr_load_firmware(avr, &firmware);
    if ((uint32_t)bench.ram + RAM_BYTES > (uint32_t)avr->ramend + 1u) {
        fprintf(stderr, "RAM address 0x%x outside the SRAM\n", bench.ram);
        return 1;
    }
    avr_register_io_write(avr, GPIOR0_DATA_ADDRESS, on_signal, &bench);
    stats = fopen(argv[7], "w");
    if (stats == NULL) {
        perror(argv[7]);
        return 1;
    }
    if (argc == 9 && (profile = calloc(avr->flashend / 2 + 1, sizeof *profile)) == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }

    while (!bench.done && !bench.failed) {
        const avr_flashaddr_t pc = avr->pc; /* of the instruction avr_run executes */
        const avr_cycle_count_t before = avr->cycle;
        const int state = avr_run(avr);
        if (profile != NULL && inside) {
            profile[pc / 2] += avr->cycle - before;
        }
        if (state == cpu_Done || state == cpu_Crashed) {
            fprintf(stderr, "the AVR stopped (state %d) at pc 0x%x\n", state, avr->pc);
            return 1;
        }
        if (avr->cycle - bench.signalled > MAX_CYCLES_BETWEEN_SIGNALS) {
            fprintf(stderr, "no signal from the image for %llu cycles (pc 0x%x)\n",
                    MAX_CYCLES_BETWEEN_SIGNALS, avr->pc);
            return 1;
        }
        if (avr->pc == entry) {
            inside = 1;
            start = avr->cycle;
            entry_sp = lowest_sp = stack_pointer(avr);
        } else if (inside && avr->pc == ret) {
            inside = 0;
            fprintf(stats, "%llu %u\n", (unsigned long long)(avr->cycle - start),
                    (unsigned)(entry_sp + CALL_RETURN_BYTES - lowest_sp));
        } else if (inside && stack_pointer(avr) < lowest_sp) {
            lowest_sp = stack_pointer(avr);
        }
    }
    avr_terminate(avr);
    if (profile != NULL) {
        FILE *out = fopen(argv[8], "w");
        if (out == NULL) {
            perror(argv[8]);
            return 1;
        }
        for (word = 0; word <= avr->flashend / 2; ++word) {
            if (profile[word] != 0) {
                fprintf(out, "%lx %llu\n", word * 2, profile[word]);
            }
        }
        if (fclose(out) != 0) {
            bench.failed = 1;
        }
        free(profile);
    }
    if (fclose(stats) != 0 || fflush(stdout) != 0 || bench.failed) {
        fprintf(stderr, "I/O error or partial RAM image\n");
        return 1;
    }
    return 0;
}
