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

NCA_STATIC_ASSERT(offsetof(nca_genome_t, blocks) == 0 && offsetof(nca_genome_t, block_count) == 16
                  && offsetof(nca_genome_t, hidden_zero_point) == 18, "the genome's layout");
NCA_STATIC_ASSERT(offsetof(nca_block_t, m1) == 208 && offsetof(nca_block_t, shift1) == 224
                  && offsetof(nca_block_t, w2) == 228 && sizeof(nca_block_t) == 292,
                  "a block record in field order");

/* The whole kernel in Thumb (a naked function: the flash of a C frame is what
 * the 10 KiB cell cannot spare): r0 = g, r1 = xq, r2 = input_sum, r3 = acc.
 * Stack, from sp: xq, correction = -128 * input_sum, acc, top = 127 - zp, the
 * blocks left, the block, then the block's 4 sums / activations (h).
 * - first layer: the 4 biases plus the correction, then one input per pass:
 *   its load and 4 (LDRB, MULS, ADDS) at the rows' offsets 0, 4, 8, 12 of the
 *   input's group (the group's 4 inputs are consecutive bytes, so the weight
 *   pointer's low 2 bits count them: records are word-aligned); sums modulo
 *   2^32, exact, see nca_fully_connected.c;
 * - the activations: nca_requantize for a positive sum (m1 >= 0, so a sum
 *   <= 0 requantises to at most 0: the ReLU floor), else 0;
 * - second layer: one channel per pass, the activations in r4..r7, each
 *   stored weight less 128 (the signed weight) times its activation. */
#define NCA_MAC(off, acc) \
        "ldrb   r7, [r0, #" off "]\n\t" "muls   r7, r6, r7\n\t" "adds   " acc ", " acc ", r7\n\t"
#define NCA_MAC2(off, h) \
        "ldrb   r3, [r0, #" off "]\n\t" "subs   r3, #128\n\t" "muls   r3, " h ", r3\n\t" \
        "adds   r2, r2, r3\n\t"
#define NCA_IN_REGISTER __attribute__((unused)) /* read by the assembly from r0..r3 */
__attribute__((naked)) void nca_fully_connected(const nca_genome_t *g NCA_IN_REGISTER,
                                                const uint8_t xq[NCA_INPUTS] NCA_IN_REGISTER,
                                                int32_t input_sum NCA_IN_REGISTER,
                                                int32_t acc[NCA_CHANNELS] NCA_IN_REGISTER)
{
    __asm__(
        NCA_UNIFIED
        "push   {r4, r5, r6, r7, lr}\n\t"
        "mov    r4, r8\n\t"
        "mov    r5, r9\n\t"
        "push   {r4, r5}\n\t"
        "sub    sp, #20\n\t"                        /* h, and 4 bytes to keep sp 8-aligned */
        "lsls   r2, r2, #7\n\t"
        "negs   r2, r2\n\t"                         /* correction */
        "movs   r4, #18\n\t"
        "ldrsb  r4, [r0, r4]\n\t"
        "movs   r5, #127\n\t"
        "subs   r5, r5, r4\n\t"                     /* top */
        "ldrh   r6, [r0, #16]\n\t"                  /* the blocks left */
        "ldr    r7, [r0]\n\t"                       /* the block */
        "push   {r1, r2, r3, r5, r6, r7}\n"
        "1:\n\t"
        "ldr    r1, [sp, #0]\n\t"
        "ldr    r2, [sp, #4]\n\t"
        "mov    r8, r2\n\t"
        "movs   r2, r1\n\t"
        "adds   r2, #48\n\t"
        "mov    r9, r2\n\t"                         /* the end of the inputs */
        "ldr    r0, [sp, #20]\n\t"
        "ldmia  r0!, {r2, r3, r4, r5}\n\t"          /* b1 */
        "add    r2, r8\n\t"
        "add    r3, r8\n\t"
        "add    r4, r8\n\t"
        "add    r5, r8\n"
        "2:\n\t"                                    /* an input */
        "ldrb   r6, [r1]\n\t"
        NCA_MAC("0", "r2") NCA_MAC("4", "r3") NCA_MAC("8", "r4") NCA_MAC("12", "r5")
        "adds   r1, #1\n\t"
        "adds   r0, #1\n\t"
        "lsls   r7, r0, #30\n\t"                    /* within the group */
        "bne    2b\n\t"
        "adds   r0, #12\n\t"                        /* the next group */
        "cmp    r1, r9\n\t"
        "bne    2b\n\t"
        "str    r0, [sp, #20]\n\t"                  /* the block's m1 */
        "add    r6, sp, #24\n\t"
        "stmia  r6!, {r2, r3, r4, r5}\n\t"          /* the sums into h */
        "movs   r4, #0\n"                           /* 4 * unit */
        "3:\n\t"
        "add    r5, sp, #24\n\t"
        "adds   r5, r5, r4\n\t"
        "ldr    r0, [r5]\n\t"                       /* the unit's sum */
        "cmp    r0, #0\n\t"
        "ble    4f\n\t"
        "ldr    r7, [sp, #20]\n\t"
        "ldr    r1, [r7, r4]\n\t"                   /* m1 */
        "lsrs   r2, r4, #2\n\t"
        "adds   r2, #16\n\t"
        "ldrsb  r2, [r7, r2]\n\t"                   /* shift1 */
        "movs   r3, #0\n\t"                         /* lo */
        "ldr    r6, [sp, #12]\n\t"
        "sub    sp, #8\n\t"
        "str    r6, [sp]\n\t"                       /* hi = top */
        "bl     nca_requantize\n\t"
        "add    sp, #8\n\t"
        "b      5f\n"
        "4:\n\t"
        "movs   r0, #0\n"
        "5:\n\t"
        "str    r0, [r5]\n\t"                       /* the activation */
        "adds   r4, #4\n\t"
        "cmp    r4, #16\n\t"
        "bne    3b\n\t"
        "ldr    r0, [sp, #20]\n\t"
        "adds   r0, #20\n\t"                        /* the block's w2 */
        "ldr    r1, [sp, #8]\n\t"                   /* acc */
        "movs   r2, r1\n\t"
        "adds   r2, #64\n\t"
        "mov    r8, r2\n\t"
        "add    r3, sp, #24\n\t"
        "ldmia  r3!, {r4, r5, r6, r7}\n"            /* the activations */
        "6:\n\t"                                    /* a channel */
        "ldr    r2, [r1]\n\t"
        NCA_MAC2("0", "r4") NCA_MAC2("1", "r5") NCA_MAC2("2", "r6") NCA_MAC2("3", "r7")
        "stmia  r1!, {r2}\n\t"
        "adds   r0, #4\n\t"
        "cmp    r1, r8\n\t"
        "bne    6b\n\t"
        "str    r0, [sp, #20]\n\t"                  /* the next block */
        "ldr    r1, [sp, #16]\n\t"
        "subs   r1, #1\n\t"
        "str    r1, [sp, #16]\n\t"
        "bne    1b\n\t"
        "add    sp, #44\n\t"
        "pop    {r4, r5}\n\t"
        "mov    r8, r4\n\t"
        "mov    r9, r5\n\t"
        "pop    {r4, r5, r6, r7, pc}\n\t"
        NCA_DIVIDED);
}
#undef NCA_MAC
#undef NCA_MAC2

#else
typedef int nca_fully_connected_armv6m_unused; /* ISO C: no empty file */
#endif
