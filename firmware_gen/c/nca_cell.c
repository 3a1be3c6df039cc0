/* nca_cell.c - one cell update in integers, bit for bit cellsim.intspec.update_ram.
 * Perception (Sobel), a 48 -> hidden -> 16 network streamed one hidden unit at
 * a time into 16 int32 accumulators in the cell's RAM, the residual add and the
 * alive test. Every rounding is written out; no float, no malloc.
 *
 * Precondition: the genome passed cellsim.genome.check_accumulator_range (every
 * genome file and header does), so |bias| + sum |w| * |input| <= INT32_MAX for
 * both layers: no accumulator, partial or final, can overflow int32.
 */
#include "nca_cell.h"

#include <string.h>

/* Every read of the genome goes through NCA_ROM_I8 / NCA_ROM_I32. On AVR the
 * genome's arrays are in flash (PROGMEM, the generated header's NCA_<NAME>_ROM),
 * a separate address space that only LPM reads, so the genome's pointers are
 * flash addresses in the low 64 KiB, read with avr-libc's pgm_read_*. Cores
 * with one address space (Cortex-M, RISC-V, the host) read them as memory. */
#if defined(__AVR__)
#include <avr/pgmspace.h>
#define NCA_ROM_I8(p)  ((int8_t)pgm_read_byte(p))
#define NCA_ROM_I32(p) ((int32_t)pgm_read_dword(p))
#else
#define NCA_ROM_I8(p)  (*(p))
#define NCA_ROM_I32(p) (*(p))
#endif

/* Cores with the DSP extension (Cortex-M4, M7, M33 ...) take the first layer
 * two MACs per instruction with SMLAD, as CMSIS-NN does; define NCA_PORTABLE
 * to build the plain C loop there too. Both compute the same exact sums. */
#if defined(__ARM_FEATURE_DSP) && !defined(NCA_PORTABLE)
#include <arm_acle.h>
#define NCA_USE_SMLAD 1
#endif

/* One shared copy of the 64-bit requantisation, called hidden + 16 times per
 * update, is about 100 bytes smaller on Cortex-M4 than inlining it into both
 * layers, and the flash budget (genome plus code within 10 KiB) needs them. */
#if defined(__GNUC__)
#define NCA_NOINLINE __attribute__((noinline))
#else
#define NCA_NOINLINE
#endif

/* clamp(round(acc * m * 2^(shift - 31)), lo, hi) with a single rounding, ties
 * towards +infinity (TFLM's single-rounding MultiplyByQuantizedMultiplier):
 *     (acc * m + 2^(30 - shift)) >> (31 - shift)        in int64,
 * then the clamp to the layer's activation range. |acc * m| < 2^62 and the
 * rounding term is at most 2^61, so the sum cannot overflow.
 * C99 leaves >> of a negative value implementation-defined, so the flooring
 * shift is never applied to one: int64_t is two's complement by definition,
 * hence ~x = -x - 1 >= 0 for x < 0 and floor(x / 2^t) = ~(~x >> t). GCC and
 * Clang compile the pair into one arithmetic shift. */
NCA_NOINLINE static int32_t nca_requantize(int32_t acc, int32_t m, int shift,
                                           int32_t lo, int32_t hi)
{
    const int total = 31 - shift; /* 1 .. 62 for shift in [-31, 30] */
    const int64_t x = (int64_t)acc * m + ((int64_t)1 << (total - 1));
    const int64_t r = x < 0 ? ~(~x >> total) : x >> total;
    return r < lo ? lo : r > hi ? hi : (int32_t)r;
}

/* acc + sum of w[d] * x[d] for d < NCA_INPUTS (a multiple of 4). */
static int32_t nca_dot(const int8_t *w, const signed char *x, int32_t acc)
{
    unsigned d;
#ifdef NCA_USE_SMLAD
    /* Four int8 per word; SXTB16 sign-extends bytes 0 and 2 into two int16
     * lanes, and on the word rotated by 8 bytes 1 and 3; SMLAD adds both lane
     * products. memcpy is the defined way to load the words (one LDR). */
    for (d = 0; d < NCA_INPUTS; d += 4) {
        uint32_t wv, xv;
        memcpy(&wv, w + d, sizeof wv);
        memcpy(&xv, x + d, sizeof xv);
        acc = __smlad(__sxtb16(wv), __sxtb16(xv), acc);
        acc = __smlad(__sxtb16(wv >> 8 | wv << 24), __sxtb16(xv >> 8 | xv << 24), acc);
    }
#else
    for (d = NCA_INPUTS; d != 0; --d) { /* counting down spares a register */
        acc += (int32_t)NCA_ROM_I8(w++) * *x++;
    }
#endif
    return acc;
}

/* A dead cell takes the all-zero state. Copying it from ROM compiles to four
 * word moves on Cortex-M4, where memset would link the C library's 162-byte
 * memset: more than the flash budget's margin. */
static const int8_t nca_dead_state[NCA_CHANNELS];

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

/* Sobel x and y of every channel over the 3x3 neighbourhood (the centre has
 * weight 0 in both), as the float model's Sobel / 8: g = (S + 4) >> 3, round
 * half up, saturated to int8. The sums S lie in [-1020, 1020]; adding 1024
 * before the shift keeps it on a non-negative value, so
 * ((S + 4 + 1024) >> 3) - 128 = floor((S + 4) / 8) exactly, in [-127, 128],
 * of which only 128 needs the saturation. */
static int8_t nca_gradient(int32_t sobel_sum)
{
    const int32_t g = ((sobel_sum + 4 + 1024) >> 3) - 128;
    return (int8_t)(g > 127 ? 127 : g);
}

static void nca_perceive(nca_cell_ram_t *ram)
{
    unsigned c;
    for (c = 0; c < NCA_CHANNELS; ++c) {
        /* mailbox slots in row-major order: 0 1 2 / 3 . 4 / 5 6 7 */
        const int32_t ul = ram->mailbox[0][c], up = ram->mailbox[1][c], ur = ram->mailbox[2][c];
        const int32_t lf = ram->mailbox[3][c], rt = ram->mailbox[4][c];
        const int32_t dl = ram->mailbox[5][c], dn = ram->mailbox[6][c], dr = ram->mailbox[7][c];
        const int32_t sx = (ur - ul) + 2 * (rt - lf) + (dr - dl);
        const int32_t sy = (dl - ul) + 2 * (dn - up) + (dr - ur);
        ram->grad_x[c] = nca_gradient(sx);
        ram->grad_y[c] = nca_gradient(sy);
    }
}

void nca_cell_update(const nca_genome_t *g, nca_cell_ram_t *ram)
{
    const int32_t zp = g->hidden_zero_point;
    const int32_t threshold = g->alive_threshold;
    const unsigned hidden = g->hidden;
    const signed char *x;
    int neighbours_alive;
    unsigned j, c;

    ram->count += 1u; /* uint32_t arithmetic wraps modulo 2^32 */
    neighbours_alive = nca_neighbours_alive(ram, threshold);
    if (!neighbours_alive && ram->state[NCA_ALPHA] <= threshold) {
        /* nothing alive around: the state dies, the scratch keeps its bytes */
        memcpy(ram->state, nca_dead_state, sizeof ram->state);
        return;
    }
    nca_perceive(ram);
    /* The 48 first-layer inputs are state | gradient x | gradient y, adjacent
     * in the RAM (offsets 128, 144, 160: asserted in nca_cell.h) and in the
     * weight rows' column order. Reading them through a character-type
     * pointer to the RAM object is defined behaviour in C99 (6.3.2.3p7),
     * which indexing past the end of ram->state would not be. */
    x = (const signed char *)(const void *)ram + offsetof(nca_cell_ram_t, state);

    /* Second-layer accumulators start at the bias; each hidden unit adds its
     * column as soon as it is known (exact integers: any order is the same). */
    for (c = 0; c < NCA_CHANNELS; ++c) {
        ram->acc[c] = NCA_ROM_I32(&g->b2[c]);
    }
    for (j = 0; j < hidden; ++j) {
        const int32_t acc = nca_dot(g->w1 + (size_t)j * NCA_INPUTS, x,
                                    NCA_ROM_I32(&g->b1[j]));
        int32_t h;
        /* The spec's hidden activation is clamp(r + zp, zp, 127) (ReLU at the
         * zero point), which the second layer reads with input offset -zp:
         * together clamp(r, 0, 127 - zp). */
        h = nca_requantize(acc, NCA_ROM_I32(&g->m1[j]), NCA_ROM_I8(&g->shift1[j]), 0,
                           127 - zp);
        if (h == 0) {
            continue; /* a unit at its ReLU floor adds nothing */
        }
        for (c = 0; c < NCA_CHANNELS; ++c) {
            ram->acc[c] += (int32_t)NCA_ROM_I8(&g->w2[(size_t)c * hidden + j]) * h;
        }
    }

    /* residual: state + requantised delta, each saturated to int8 */
    for (c = 0; c < NCA_CHANNELS; ++c) {
        const int32_t s = ram->state[c] + nca_requantize(ram->acc[c], NCA_ROM_I32(&g->m2[c]),
                                                         NCA_ROM_I8(&g->shift2[c]), -128, 127);
        ram->state[c] = (int8_t)(s < -128 ? -128 : s > 127 ? 127 : s);
    }
    /* alive before (known) and after: the neighbours are unchanged, only the
     * own alpha is new */
    if (!neighbours_alive && ram->state[NCA_ALPHA] <= threshold) {
        memcpy(ram->state, nca_dead_state, sizeof ram->state);
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
