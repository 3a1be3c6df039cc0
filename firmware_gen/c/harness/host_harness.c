/* host_harness.c - runs nca_cell_update over cell RAM images on the host, for
 * the bit-for-bit tests against cellsim.intspec.update_ram.
 *   stdin:  the genome as a blob (firmware_gen.toolchain.genome_blob) unless
 *           built with -DNCA_GENOME_HEADER='"nca_x.h"' -DNCA_GENOME_INIT=NCA_X_GENOME_INIT,
 *           then 256-byte RAM images until end of input;
 *   stdout: each image after one update.  Exit status 1 on malformed input.
 */
#include <stdio.h>
#include <string.h>

#include "nca_cell.h"

#ifdef NCA_GENOME_HEADER
#include NCA_GENOME_HEADER
static const nca_genome_t genome = NCA_GENOME_INIT;

static const nca_genome_t *load_genome(FILE *in)
{
    (void)in;
    return &genome;
}
#else
static nca_block_t blocks[NCA_MAX_HIDDEN / NCA_BLOCK_UNITS];
static int8_t shift2[NCA_CHANNELS];
static int32_t b2[NCA_CHANNELS], m2[NCA_CHANNELS];
static nca_genome_t genome;

static int read_bytes(FILE *in, void *dst, size_t n)
{
    return fread(dst, 1, n, in) == n;
}

/* int32 arrays travel little-endian; assembled bytewise so the host's own
 * byte order does not matter */
static int read_i32(FILE *in, int32_t *dst, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        unsigned char b[4];
        uint32_t u;
        if (!read_bytes(in, b, 4)) {
            return 0;
        }
        u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        dst[i] = u <= 0x7FFFFFFFu ? (int32_t)u : (int32_t)(u - 0x80000000u) + INT32_MIN;
    }
    return 1;
}

/* blob: "NCAG", block count (uint16 LE), zero point, alive threshold (int8),
 * the block records (nca_block_t, little-endian: main refuses other hosts),
 * b2, m2, shift2 (firmware_gen/kernel_layout.py) */
static const nca_genome_t *load_genome(FILE *in)
{
    unsigned char head[8];
    unsigned count;
    if (!read_bytes(in, head, sizeof head) || memcmp(head, "NCAG", 4) != 0) {
        return NULL;
    }
    count = head[4] | (unsigned)head[5] << 8;
    if (count == 0 || count > NCA_MAX_HIDDEN / NCA_BLOCK_UNITS) {
        return NULL;
    }
    if (!read_bytes(in, blocks, count * sizeof blocks[0]) || !read_i32(in, b2, NCA_CHANNELS)
        || !read_i32(in, m2, NCA_CHANNELS) || !read_bytes(in, shift2, NCA_CHANNELS)) {
        return NULL;
    }
    genome.blocks = blocks;
    genome.b2 = b2;
    genome.m2 = m2;
    genome.shift2 = shift2;
    genome.block_count = (uint16_t)count;
    genome.hidden_zero_point = (int8_t)(head[6] <= 127 ? (int)head[6] : (int)head[6] - 256);
    genome.alive_threshold = (int8_t)(head[7] <= 127 ? (int)head[7] : (int)head[7] - 256);
    return &genome;
}
#endif

int main(void)
{
    static const uint16_t probe = 1;
    const nca_genome_t *g;
    nca_cell_ram_t ram;
    size_t got;

    /* the RAM images are the simulator's little-endian bytes */
    if (*(const unsigned char *)&probe != 1) {
        fputs("host_harness: big-endian host, images would not match\n", stderr);
        return 1;
    }
    g = load_genome(stdin);
    if (g == NULL) {
        fputs("host_harness: malformed genome blob\n", stderr);
        return 1;
    }
    while ((got = fread(&ram, 1, sizeof ram, stdin)) == sizeof ram) {
        nca_cell_update(g, &ram);
        if (fwrite(&ram, 1, sizeof ram, stdout) != sizeof ram) {
            return 1;
        }
    }
    if (got != 0) {
        fputs("host_harness: input ends inside a RAM image\n", stderr);
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
