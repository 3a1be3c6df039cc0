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

#ifdef __cplusplus
extern "C" {
#endif

#define NCA_CELL_ABI_VERSION 1

#define NCA_CHANNELS      16   /* int8 state values per cell */
#define NCA_ALPHA         3    /* the channel whose value decides life */
#define NCA_INPUTS        48   /* first-layer inputs: state | gradient x | gradient y */
#define NCA_MAILBOX_SLOTS 8    /* one per neighbour, row-major 3x3 without the centre */
#define NCA_RAM_BYTES     256
#define NCA_FLAG_DEAD     0x01u

/* C99 has no _Static_assert; GCC and Clang accept it as an extension, which
 * __extension__ keeps quiet under -pedantic. Elsewhere a negative array size
 * stops the build instead. */
#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define NCA_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#elif defined(__GNUC__)
#define NCA_STATIC_ASSERT(cond, msg) __extension__ _Static_assert(cond, msg)
#else
#define NCA_STATIC_ASSERT_NAME_(line) nca_static_assert_##line
#define NCA_STATIC_ASSERT_LINE_(line) NCA_STATIC_ASSERT_NAME_(line)
#define NCA_STATIC_ASSERT(cond, msg) \
    typedef char NCA_STATIC_ASSERT_LINE_(__LINE__)[(cond) ? 1 : -1]
#endif

/* The cell's RAM, byte for byte the layout of cellsim/intspec/layout.py. The
 * multi-byte fields are little-endian in the simulator's image, which is what
 * a little-endian core (every Cortex-M in practice, x86) stores natively. */
typedef struct nca_cell_ram {
    int8_t   mailbox[NCA_MAILBOX_SLOTS][NCA_CHANNELS]; /*   0: last state of each neighbour */
    int8_t   state[NCA_CHANNELS];                      /* 128: own state */
    int8_t   grad_x[NCA_CHANNELS];                     /* 144: scratch, Sobel x / 8 */
    int8_t   grad_y[NCA_CHANNELS];                     /* 160: scratch, Sobel y / 8 */
    int32_t  acc[NCA_CHANNELS];                        /* 176: scratch, layer-2 accumulators */
    uint32_t rng;                                      /* 240: xorshift32 of the clock model */
    uint32_t clock;                                    /* 244: last wait drawn, in local ticks */
    uint32_t count;                                    /* 248: updates so far, wraps */
    uint8_t  flags;                                    /* 252: NCA_FLAG_DEAD */
    uint8_t  reserved[3];                              /* 253: zero */
} nca_cell_ram_t;

NCA_STATIC_ASSERT(sizeof(nca_cell_ram_t) == NCA_RAM_BYTES, "a cell owns exactly 256 bytes of RAM");
NCA_STATIC_ASSERT(offsetof(nca_cell_ram_t, mailbox) == 0, "mailbox at 0");
NCA_STATIC_ASSERT(offsetof(nca_cell_ram_t, state) == 128, "state at 128");
NCA_STATIC_ASSERT(offsetof(nca_cell_ram_t, grad_x) == 144, "gradient x at 144");
NCA_STATIC_ASSERT(offsetof(nca_cell_ram_t, grad_y) == 160, "gradient y at 160");
NCA_STATIC_ASSERT(offsetof(nca_cell_ram_t, acc) == 176, "accumulators at 176");
NCA_STATIC_ASSERT(offsetof(nca_cell_ram_t, rng) == 240, "rng at 240");
NCA_STATIC_ASSERT(offsetof(nca_cell_ram_t, clock) == 244, "clock at 244");
NCA_STATIC_ASSERT(offsetof(nca_cell_ram_t, count) == 248, "update count at 248");
NCA_STATIC_ASSERT(offsetof(nca_cell_ram_t, flags) == 252, "flags at 252");
NCA_STATIC_ASSERT(offsetof(nca_cell_ram_t, reserved) == 253, "reserved at 253");

/* The genome as the update reads it: pointers into the ROM arrays of a header
 * made by `cellsim header` (its NCA_<NAME>_GENOME_INIT fills this in).
 * Weights are [out][in] as in CMSIS-NN's arm_fully_connected_s8. A
 * requantisation multiplier m and shift s stand for the ratio m * 2^(s - 31).
 * Like every genome file, it must keep |bias| + sum |w| * |input| within
 * INT32_MAX per output (cellsim.genome.check_accumulator_range), which is
 * what lets the update accumulate in int32. */
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

/* The genome format's limit (cellsim.genome.MAX_HIDDEN). */
#define NCA_MAX_HIDDEN 4096u

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
