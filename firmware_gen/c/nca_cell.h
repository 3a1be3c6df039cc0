/* nca_cell.h - the cell firmware of cellsim: one neural-cellular-automaton cell
 * update on the cell's own 256 bytes of RAM, in portable integer-only C99.
 * It computes exactly cellsim.intspec.update_ram (docs/integer-spec.md); the
 * genome (weights, biases, requantisation) comes from a header made by
 * `cellsim header`, see docs/firmware.md.
 */
#ifndef NCA_CELL_H
#define NCA_CELL_H

#include <stddef.h>
#include <stdint.h>

/* The RAM layout (nca_cell_ram_t), the dimensions and the ABI and format
 * versions, generated from the simulator's own definitions. */
#include "nca_cell_layout.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The genome as the update reads it: pointers into the ROM arrays of a header
 * made by `cellsim header` (its NCA_<NAME>_GENOME_INIT fills this in). The
 * hidden layer is `block_count` records of NCA_BLOCK_UNITS hidden units in the
 * kernels' layout (nca_block_t, docs/firmware.md "Kernel layout"; the header
 * pads with units whose multiplier is 0). A requantisation multiplier m and
 * shift s stand for the ratio m * 2^(s - 31). Like every genome file, the
 * genome keeps |bias| + sum |w| * |input| within INT32_MAX per output
 * (cellsim.genome.check_accumulator_range), so every final accumulator fits
 * int32; the kernels accumulate modulo 2^32, which is then exact. On AVR the
 * arrays are in flash (the header's PROGMEM) and these pointers are flash
 * addresses, which must lie in the low 64 KiB (LPM); the descriptor itself is
 * an ordinary const. */
typedef struct nca_genome {
    const nca_block_t *blocks;  /* [block_count] */
    const int32_t *b2;          /* [NCA_CHANNELS] second-layer biases */
    const int32_t *m2;          /* [NCA_CHANNELS], 0 or in [2^30, 2^31) */
    const int8_t  *shift2;      /* [NCA_CHANNELS], in [-31, 30] */
    uint16_t block_count;       /* hidden units / NCA_BLOCK_UNITS, at most NCA_MAX_HIDDEN / 4 */
    int8_t   hidden_zero_point; /* ReLU output zero point, usually -128 */
    int8_t   alive_threshold;   /* alive while some alpha in the 3x3 exceeds it */
} nca_genome_t;

/* One update of the cell: reads the mailbox and state, rewrites state, gradients,
 * accumulators and count. A cell with no live cell in its 3x3 neighbourhood only
 * zeroes its state and counts the update. The flags are left to the caller (a
 * dead cell simply is never updated). */
void nca_cell_update(const nca_genome_t *g, nca_cell_ram_t *ram);

/* Message hooks. A neighbour's state arriving from the neighbour at row-major
 * offset index k (0 = up-left ... 7 = down-right, see nca_receiver_slot) goes
 * into mailbox slot k. Returns 0, or -1 for a slot out of range. */
int nca_cell_receive(nca_cell_ram_t *ram, unsigned slot, const int8_t state[NCA_CHANNELS]);

/* The state to send to every neighbour after an update. */
void nca_cell_state_to_send(const nca_cell_ram_t *ram, int8_t out[NCA_CHANNELS]);

/* A cell that sends towards its neighbour at offset index k lands in that
 * neighbour's slot 7 - k (the neighbour sees the sender at the opposite offset). */
#define nca_receiver_slot(sender_offset_index) \
    (NCA_MAILBOX_SLOTS - 1u - (unsigned)(sender_offset_index))

#ifdef __cplusplus
}
#endif

#endif /* NCA_CELL_H */
