/* nca_fully_connected_armv6m.c - the two fully connected layers (contract in
 * nca_kernels.h) for Armv6-M (Cortex-M0, M0+): no DSP extension, a 32-bit
 * MULS, eight low registers. The layers' loops are written in Thumb so the
 * four row sums (and on the second layer the four activations) stay in
 * registers, each MAC a byte load with an immediate offset (the stored
 * weights are unsigned), a MULS and an ADDS. The reference kernel
 * (nca_fully_connected.c) computes the same integers.
 */
#include "nca_kernels.h"

#if NCA_KERNEL_ARMV6M

/* GCC emits Thumb-1 code in the divided syntax; these loops are written in
 * the unified one. */
#define NCA_UNIFIED ".syntax unified\n\t"
#define NCA_DIVIDED ".syntax divided\n\t"

/* What the block loop keeps in memory (offsets used by the assembly). */
typedef struct nca_v6m_frame {
    const uint8_t *xq;          /*  0: the inputs x' */
    int32_t correction;         /*  4: -128 * sum of the inputs */
    int32_t top;                /*  8: 127 - hidden zero point */
    int32_t *acc;               /* 12: the 16 layer-2 accumulators */
    uint32_t h_sum;             /* 16: sum of the hidden activations */
    const nca_block_t *end;     /* 20: the end of the block records */
    int32_t h[NCA_BLOCK_UNITS]; /* 24: a block's sums, then its activations */
} nca_v6m_frame_t;

NCA_STATIC_ASSERT(offsetof(nca_v6m_frame_t, h) == 24, "frame layout");
NCA_STATIC_ASSERT(offsetof(nca_block_t, m1) == 208 && offsetof(nca_block_t, shift1) == 224
                  && offsetof(nca_block_t, w2) == 228, "a block record in field order");

/* The block loop, r0 = the frame, r1 = the first block (r11 and r10 keep them).
 * - first layer: the 4 biases plus the correction, then one input per pass:
 *   its load and 4 (LDRB, MULS, ADDS) at the rows' offsets 0, 4, 8, 12 of the
 *   input's group; the group's 4 inputs are consecutive bytes, so the weight
 *   pointer's low 2 bits (records are word-aligned) count them;
 * - the 4 activations: nca_requantize for a positive sum (m1 >= 0, so a sum
 *   <= 0 requantises to at most 0: the ReLU floor), else 0;
 * - second layer: one channel per pass, the activations in r4..r7.
 * Small rather than fast: the 10 KiB cell leaves about 700 bytes for all of the
 * update's code on Cortex-M0+. */
#define NCA_MAC(x, off, acc) \
        "ldrb   r7, [r0, #" off "]\n\t" "muls   r7, " x ", r7\n\t" "adds   " acc ", " acc ", r7\n\t"
#define NCA_MAC2(off, h) \
        "ldrb   r3, [r0, #" off "]\n\t" "muls   r3, " h ", r3\n\t" "adds   r2, r2, r3\n\t"
static void nca_blocks(nca_v6m_frame_t *frame, const nca_block_t *block)
{
    register nca_v6m_frame_t *r0 __asm__("r0") = frame;
    register const nca_block_t *r1 __asm__("r1") = block;
    __asm__ volatile(
        NCA_UNIFIED
        "mov    r11, r0\n\t"
        "mov    r10, r1\n"
        "1:\n\t"                                    /* a block */
        "ldmia  r0!, {r1, r2}\n\t"                  /* xq, correction */
        "mov    r8, r2\n\t"
        "movs   r2, r1\n\t"
        "adds   r2, #48\n\t"
        "mov    r9, r2\n\t"                         /* the end of the inputs */
        "mov    r0, r10\n\t"
        "ldmia  r0!, {r2, r3, r4, r5}\n\t"          /* b1 */
        "add    r2, r8\n\t"
        "add    r3, r8\n\t"
        "add    r4, r8\n\t"
        "add    r5, r8\n"
        "2:\n\t"                                    /* an input */
        "ldrb   r6, [r1]\n\t"
        NCA_MAC("r6", "0", "r2") NCA_MAC("r6", "4", "r3")
        NCA_MAC("r6", "8", "r4") NCA_MAC("r6", "12", "r5")
        "adds   r1, #1\n\t"
        "adds   r0, #1\n\t"
        "lsls   r7, r0, #30\n\t"                    /* within the group */
        "bne    2b\n\t"
        "adds   r0, #12\n\t"                        /* the next group */
        "cmp    r1, r9\n\t"
        "bne    2b\n\t"
        "mov    r10, r0\n\t"                        /* the block's m1 */
        "mov    r6, r11\n\t"
        "adds   r6, #24\n\t"
        "stmia  r6!, {r2, r3, r4, r5}\n\t"          /* the sums into frame->h */
        "movs   r4, #0\n"                           /* 4 * unit */
        "3:\n\t"
        "mov    r5, r11\n\t"
        "adds   r5, r5, r4\n\t"
        "ldr    r0, [r5, #24]\n\t"                  /* the unit's sum */
        "cmp    r0, #0\n\t"
        "ble    4f\n\t"
        "mov    r7, r10\n\t"
        "ldr    r1, [r7, r4]\n\t"                   /* m1 */
        "lsrs   r2, r4, #2\n\t"
        "adds   r2, #16\n\t"
        "ldrsb  r2, [r7, r2]\n\t"                   /* shift1 */
        "movs   r3, #0\n\t"                         /* lo */
        "mov    r6, r11\n\t"
        "ldr    r6, [r6, #8]\n\t"
        "sub    sp, #8\n\t"
        "str    r6, [sp]\n\t"                       /* hi = top */
        "bl     nca_requantize\n\t"
        "add    sp, #8\n\t"
        "b      5f\n"
        "4:\n\t"
        "movs   r0, #0\n"
        "5:\n\t"
        "str    r0, [r5, #24]\n\t"                  /* the activation */
        "mov    r6, r11\n\t"
        "ldr    r7, [r6, #16]\n\t"
        "adds   r7, r7, r0\n\t"
        "str    r7, [r6, #16]\n\t"                  /* h_sum */
        "adds   r4, #4\n\t"
        "cmp    r4, #16\n\t"
        "bne    3b\n\t"
        "mov    r0, r10\n\t"
        "adds   r0, #20\n\t"                        /* the block's w2 */
        "mov    r6, r11\n\t"
        "ldr    r1, [r6, #12]\n\t"                  /* acc */
        "movs   r2, r1\n\t"
        "adds   r2, #64\n\t"
        "mov    r8, r2\n\t"
        "adds   r6, #24\n\t"
        "ldmia  r6, {r4, r5, r6, r7}\n"             /* the activations */
        "6:\n\t"                                    /* a channel */
        "ldr    r2, [r1]\n\t"
        NCA_MAC2("0", "r4") NCA_MAC2("1", "r5") NCA_MAC2("2", "r6") NCA_MAC2("3", "r7")
        "stmia  r1!, {r2}\n\t"
        "adds   r0, #4\n\t"
        "cmp    r1, r8\n\t"
        "bne    6b\n\t"
        "mov    r10, r0\n\t"                        /* the next block */
        "mov    r1, r11\n\t"
        "ldr    r1, [r1, #20]\n\t"
        "cmp    r0, r1\n\t"
        "mov    r0, r11\n\t"
        "bne    1b\n\t"
        NCA_DIVIDED
        : "+l"(r0), "+l"(r1)
        :
        : "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "lr", "cc",
          "memory");
}
#undef NCA_MAC
#undef NCA_MAC2

void nca_fully_connected(const nca_genome_t *g, const uint8_t xq[NCA_INPUTS],
                         int32_t input_sum, int32_t acc[NCA_CHANNELS])
{
    nca_v6m_frame_t frame;
    unsigned c;
    frame.xq = xq;
    frame.correction = -input_sum * NCA_OFFSET; /* |sum| <= 6144: no overflow */
    frame.top = 127 - g->hidden_zero_point;
    frame.acc = acc;
    frame.h_sum = 0;
    frame.end = g->blocks + g->block_count;
    nca_blocks(&frame, g->blocks);
    /* sum_j w h = sum_j (w + 128) h - 128 sum_j h */
    for (c = 0; c < NCA_CHANNELS; ++c) {
        acc[c] = nca_int32((uint32_t)acc[c] - frame.h_sum * NCA_OFFSET);
    }
}

#else
typedef int nca_fully_connected_armv6m_unused; /* ISO C: no empty file */
#endif
