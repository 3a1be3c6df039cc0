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
 * made by `cellsim header` (its NCA_<NAME>_GENOME_INIT fills this in).
 * Weights are [out][in] as in CMSIS-NN's arm_fully_connected_s8. A
 * requantisation multiplier m and shift s stand for the ratio m * 2^(s - 31).
 * Like every genome file, it must keep |bias| + sum |w| * |input| within
 * INT32_MAX per output (cellsim.genome.check_accumulator_range), which is
 * what lets the update accumulate in int32. On AVR the arrays are in flash
 * (the header's PROGMEM) and these pointers are flash addresses, which must
 * lie in the low 64 KiB (LPM); the descriptor itself is an ordinary const. */
typedef struct nca_genome {
    const int8_t  *w1;          /* [hidden][NCA_INPUTS] */
    const int32_t *b1;          /* [hidden] */
    const int32_t *m1;          /* [hidden], 0 or in [2^30, 2^31) */
    const int8_t  *shift1;      /* [hidden], in [-31, 30] */
    const int8_t  *w2;          /* [NCA_CHANNELS][hidden] */
    const int32_t *b2;          /* [NCA_CHANNELS] */
    const int32_t *m2;          /* [NCA_CHANNELS] */
    const int8_t  *shift2;      /* [NCA_CHANNELS] */
    uint16_t hidden;            /* hidden units, at most NCA_MAX_HIDDEN */
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
