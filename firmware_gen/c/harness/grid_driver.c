/* A synchronous grid of nca_cell_ram_t cells driven by the cell firmware, timed.
 * argv: H W steps reps torus grid.bin masks.bin final.bin
 * grid.bin: H*W*16 int8 states; masks.bin: steps*H*W bytes, 1 = the cell fires.
 * A step: every cell's mailbox receives its neighbours' states (the message
 * exchange), the cells that fire run nca_cell_update, then cells with no live
 * cell in their 3x3 neighbourhood before and after the step are zeroed -
 * cellsim.intspec.step_grid_sync. Prints "nanoseconds updates" per repetition;
 * writes the states after the first repetition to final.bin. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nca_cell.h"
#include NCA_GENOME_HEADER

static const nca_genome_t genome = NCA_GENOME_INIT;
static const int DY[NCA_MAILBOX_SLOTS] = {-1, -1, -1, 0, 0, 1, 1, 1};
static const int DX[NCA_MAILBOX_SLOTS] = {-1, 0, 1, -1, 1, -1, 0, 1};

static int read_file(const char *name, void *dst, size_t n)
{
    FILE *f = fopen(name, "rb");
    size_t got;
    if (f == NULL) {
        return 0;
    }
    got = fread(dst, 1, n, f);
    fclose(f);
    return got == n;
}

static int neighbour(int h, int w, int torus, int y, int x, int k)
{
    int ny = y + DY[k], nx = x + DX[k];
    if (torus) {
        ny = (ny + h) % h;
        nx = (nx + w) % w;
    } else if (ny < 0 || ny >= h || nx < 0 || nx >= w) {
        return -1;
    }
    return ny * w + nx;
}

static int any_alive(const nca_cell_ram_t *cells, int h, int w, int torus, int y, int x)
{
    int k, n;
    if (cells[y * w + x].state[NCA_ALPHA] > genome.alive_threshold) {
        return 1;
    }
    for (k = 0; k < NCA_MAILBOX_SLOTS; ++k) {
        /* Beyond the edge is a zero state (the spec's zero padding), alive
         * when a genome's threshold is negative. */
        n = neighbour(h, w, torus, y, x, k);
        if ((n >= 0 ? cells[n].state[NCA_ALPHA] : 0) > genome.alive_threshold) {
            return 1;
        }
    }
    return 0;
}

static long step(nca_cell_ram_t *cells, unsigned char *live, int h, int w, int torus,
                 const unsigned char *fire)
{
    long updates = 0;
    int y, x, k, n, i;
    for (y = 0; y < h; ++y) {
        for (x = 0; x < w; ++x) {
            i = y * w + x;
            for (k = 0; k < NCA_MAILBOX_SLOTS; ++k) {
                n = neighbour(h, w, torus, y, x, k);
                if (n >= 0) {
                    memcpy(cells[i].mailbox[k], cells[n].state, NCA_CHANNELS);
                } else {
                    memset(cells[i].mailbox[k], 0, NCA_CHANNELS);
                }
            }
            live[i] = (unsigned char)any_alive(cells, h, w, torus, y, x);
        }
    }
    for (i = 0; i < h * w; ++i) {
        if (fire[i]) {
            nca_cell_update(&genome, &cells[i]);
            ++updates;
        }
    }
    for (y = 0; y < h; ++y) {
        for (x = 0; x < w; ++x) {
            i = y * w + x;
            live[i] = (unsigned char)(live[i] && any_alive(cells, h, w, torus, y, x));
        }
    }
    for (i = 0; i < h * w; ++i) {
        if (!live[i]) {
            memset(cells[i].state, 0, NCA_CHANNELS);
        }
    }
    return updates;
}

int main(int argc, char **argv)
{
    int h, w, steps, reps, torus, r, s, i;
    size_t cells_n;
    nca_cell_ram_t *cells;
    int8_t *start;
    unsigned char *masks, *live;
    if (argc != 9) {
        fprintf(stderr, "usage: H W steps reps torus grid.bin masks.bin final.bin\n");
        return 1;
    }
    h = atoi(argv[1]);
    w = atoi(argv[2]);
    steps = atoi(argv[3]);
    reps = atoi(argv[4]);
    torus = atoi(argv[5]);
    if (h < 1 || w < 1 || steps < 1 || reps < 1) {
        fprintf(stderr, "bad sizes\n");
        return 1;
    }
    cells_n = (size_t)h * (size_t)w;
    cells = calloc(cells_n, sizeof *cells);
    start = malloc(cells_n * NCA_CHANNELS);
    masks = malloc(cells_n * (size_t)steps);
    live = malloc(cells_n);
    if (!cells || !start || !masks || !live || !read_file(argv[6], start, cells_n * NCA_CHANNELS)
        || !read_file(argv[7], masks, cells_n * (size_t)steps)) {
        fprintf(stderr, "cannot read the inputs\n");
        return 1;
    }
    for (r = 0; r < reps; ++r) {
        struct timespec t0, t1;
        long updates = 0;
        for (i = 0; i < (int)cells_n; ++i) {
            memcpy(cells[i].state, start + (size_t)i * NCA_CHANNELS, NCA_CHANNELS);
        }
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (s = 0; s < steps; ++s) {
            updates += step(cells, live, h, w, torus, masks + (size_t)s * cells_n);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("%lld %ld\n", (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL
               + (long long)(t1.tv_nsec - t0.tv_nsec), updates);
        if (r == 0) {
            FILE *f = fopen(argv[8], "wb");
            if (f == NULL) {
                return 1;
            }
            for (i = 0; i < (int)cells_n; ++i) {
                fwrite(cells[i].state, 1, NCA_CHANNELS, f);
            }
            fclose(f);
        }
    }
    free(cells);
    free(start);
    free(masks);
    free(live);
    return 0;
}
