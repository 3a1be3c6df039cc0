/* nca_fully_connected_arm_dsp.c - the two fully connected layers (contract in
 * nca_kernels.h) for Arm cores with the DSP extension (Cortex-M4, M7, M33...):
 * two MACs per SMLAD on both layers, a block's 4 rows sharing each input
 * pair, and the requantisation's multiply as one SMULL. The reference kernel
 * (nca_fully_connected.c) computes the same integers.
 */
#include "nca_kernels.h"

#if NCA_KERNEL_ARM_DSP

#include <arm_acle.h>
#include <string.h>

/* bytes 0 and 2 (even) or 1 and 3 (odd) of a word, zero-extended into the
 * two 16-bit lanes SMLAD multiplies */
#define NCA_EVEN(w) __uxtb16(w)
#define NCA_ODD(w)  __uxtb16((w) >> 8 | (w) << 24)

/* What the block loop keeps in memory: the inputs as SMLAD pairs (word 2i
 * holds x'[4i] and x'[4i+2], word 2i+1 the odd ones), then the values the
 * assembly reads at fixed offsets from the end of the pairs, where its input
 * pointer stops after a block's dot products. */
typedef struct nca_dsp_frame {
    uint32_t x[NCA_INPUTS / 2];
    int32_t correction;     /* -128 * sum of the inputs */
    int32_t top;            /* 127 - hidden zero point */
    int32_t *acc;           /* the 16 layer-2 accumulators */
    uint32_t h_sum;         /* sum of the hidden activations */
    int32_t sums[NCA_BLOCK_UNITS]; /* a block's first-layer sums, for the slow path */
    const nca_block_t *end; /* the end of the block records */
} nca_dsp_frame_t;

#define NCA_FRAME_X_BYTES 96 /* offsetof(nca_dsp_frame_t, correction), checked below */
NCA_STATIC_ASSERT(offsetof(nca_dsp_frame_t, correction) == NCA_FRAME_X_BYTES, "frame layout");
NCA_STATIC_ASSERT(offsetof(nca_dsp_frame_t, top) == NCA_FRAME_X_BYTES + 4, "frame layout");
NCA_STATIC_ASSERT(offsetof(nca_dsp_frame_t, acc) == NCA_FRAME_X_BYTES + 8, "frame layout");
NCA_STATIC_ASSERT(offsetof(nca_dsp_frame_t, h_sum) == NCA_FRAME_X_BYTES + 12, "frame layout");
NCA_STATIC_ASSERT(offsetof(nca_dsp_frame_t, sums) == NCA_FRAME_X_BYTES + 16, "frame layout");
NCA_STATIC_ASSERT(offsetof(nca_dsp_frame_t, end) == NCA_FRAME_X_BYTES + 32, "frame layout");
NCA_STATIC_ASSERT(offsetof(nca_block_t, m1) == 208 && offsetof(nca_block_t, w2) == 228,
                  "the block loop streams through a block record in field order");

/* acc[c] += the block's 4 activations times its second-layer weights, the
 * activations as SMLAD pairs he = (h0, h2) in r2, ho = (h1, h3) in r3, the
 * weights at r1 (advanced past them), the accumulators at lr: per 4 channels
 * one LDM of the accumulators, one of the weight words, 8 UXTB16, 8 SMLAD and
 * one STM (16 MACs in 19 instructions). */
#define NCA_OUTPUT_LAYER                                        \
        ".rept 4\n\t"                                           \
        "ldmia  lr, {r4, r5, r6, r7}\n\t"                       \
        "ldmia  r1!, {r8, r9, r10, r11}\n\t"                    \
        "uxtb16 r12, r8\n\t"                                    \
        "uxtb16 r8, r8, ror #8\n\t"                             \
        "smlad  r4, r12, r2, r4\n\t"                            \
        "smlad  r4, r8, r3, r4\n\t"                             \
        "uxtb16 r12, r9\n\t"                                    \
        "uxtb16 r9, r9, ror #8\n\t"                             \
        "smlad  r5, r12, r2, r5\n\t"                            \
        "smlad  r5, r9, r3, r5\n\t"                             \
        "uxtb16 r12, r10\n\t"                                   \
        "uxtb16 r10, r10, ror #8\n\t"                           \
        "smlad  r6, r12, r2, r6\n\t"                            \
        "smlad  r6, r10, r3, r6\n\t"                            \
        "uxtb16 r12, r11\n\t"                                   \
        "uxtb16 r11, r11, ror #8\n\t"                           \
        "smlad  r7, r12, r2, r7\n\t"                            \
        "smlad  r7, r11, r3, r7\n\t"                            \
        "stmia  lr!, {r4, r5, r6, r7}\n\t"                      \
        ".endr\n\t"

/* One activation h = clamp(requantize(acc, m, shift), 0, top) in place, for
 * shift <= -2 (t = 31 - shift >= 33, every realistic genome): the low word of
 * acc * m cannot change the result, so with hi = floor(acc * m / 2^32) and
 * s = t - 32 >= 1,
 *     floor((acc * m + 2^(t-1)) / 2^t) = floor((floor(hi / 2^(s-1)) + 1) / 2):
 * SMULL, ASR by s - 1 (a byte of r2), ADD 1, and USAT's ASR #1 with the clamp
 * to [0, 255] (top = 255, zero point -128: the usual case) or to [0, 511]
 * and then to top (r3). */
#define NCA_REQUANT(a, m, lane)                                 \
        "smull  r12, " a ", " a ", " m "\n\t"                   \
        "uxtb   r12, r2, ror #" lane "\n\t"                     \
        "asr    " a ", " a ", r12\n\t"                          \
        "add    " a ", " a ", #1\n\t"
#define NCA_CLAMP_255(a) "usat   " a ", #8, " a ", asr #1\n\t"
#define NCA_CLAMP_TOP(a)                                        \
        "usat   " a ", #9, " a ", asr #1\n\t"                   \
        "cmp    " a ", r3\n\t"                                  \
        "it     gt\n\t"                                         \
        "movgt  " a ", r3\n\t"

/* The block's 4 sums r8..r11 with multipliers r4..r7 into activations. */
#define NCA_REQUANT4(clamp)                                     \
        NCA_REQUANT("r8", "r4", "0") clamp("r8")                \
        NCA_REQUANT("r9", "r5", "8") clamp("r9")                \
        NCA_REQUANT("r10", "r6", "16") clamp("r10")             \
        NCA_REQUANT("r11", "r7", "24") clamp("r11")

/* The blocks from r1 (a block record) to frame->end, r0 = the frame. Returns
 * 0 when done, or 1 when a block has a shift > -2: then that block's
 * first-layer sums are in frame->sums and r1 points at its second-layer
 * weights, for the portable requantisation, and the caller resumes after it.
 *
 * First layer: the 4 biases plus the correction, then per group of 4 inputs
 * one LDRD of the input pairs, one LDM of the 4 rows' weight words, 8 UXTB16
 * and 8 SMLAD (16 MACs in 18 instructions), unrolled 12 times; the sums are
 * modulo 2^32 (SMLAD wraps), which is exact, see nca_fully_connected.c. */
static inline unsigned nca_blocks(nca_dsp_frame_t **frame, const nca_block_t **block)
{
    register nca_dsp_frame_t *r0 __asm__("r0") = *frame;
    register const nca_block_t *r1 __asm__("r1") = *block;
    register unsigned r2 __asm__("r2");
    __asm__ volatile(
        "6:\n\t"
        "ldr    lr, [r0, #96]\n\t"                  /* correction */
        "ldmia  r1!, {r4, r5, r6, r7}\n\t"          /* b1 */
        "add    r8, r4, lr\n\t"
        "add    r9, r5, lr\n\t"
        "add    r10, r6, lr\n\t"
        "add    r11, r7, lr\n\t"
        ".rept 12\n\t"
        "ldrd   r2, r3, [r0], #8\n\t"
        "ldmia  r1!, {r4, r5, r6, r7}\n\t"
        "uxtb16 r12, r4\n\t"
        "uxtb16 r4, r4, ror #8\n\t"
        "smlad  r8, r12, r2, r8\n\t"
        "smlad  r8, r4, r3, r8\n\t"
        "uxtb16 r12, r5\n\t"
        "uxtb16 r5, r5, ror #8\n\t"
        "smlad  r9, r12, r2, r9\n\t"
        "smlad  r9, r5, r3, r9\n\t"
        "uxtb16 r12, r6\n\t"
        "uxtb16 r6, r6, ror #8\n\t"
        "smlad  r10, r12, r2, r10\n\t"
        "smlad  r10, r6, r3, r10\n\t"
        "uxtb16 r12, r7\n\t"
        "uxtb16 r7, r7, ror #8\n\t"
        "smlad  r11, r12, r2, r11\n\t"
        "smlad  r11, r7, r3, r11\n\t"
        ".endr\n\t"
        "sub    r0, r0, #96\n\t"                    /* back to the frame */
        "ldmia  r1!, {r4, r5, r6, r7}\n\t"          /* m1 */
        "ldr    r2, [r1], #4\n\t"                   /* the 4 shifts */
        "mov    r3, #0xFEFEFEFE\n\t"
        "ssub8  r2, r3, r2\n\t"                     /* bytes -2 - shift, in [-32, 29] */
        "tst    r2, #0x80808080\n\t"                /* some shift > -2: slow path */
        "bne    3f\n\t"
        "ldr    r3, [r0, #100]\n\t"                 /* top */
        "cmp    r3, #255\n\t"
        "bne    1f\n\t"
        NCA_REQUANT4(NCA_CLAMP_255)
        "b      2f\n"
        "1:\n\t"
        NCA_REQUANT4(NCA_CLAMP_TOP)
        "2:\n\t"
        "pkhbt  r2, r8, r10, lsl #16\n\t"           /* he = (h0, h2) */
        "pkhbt  r3, r9, r11, lsl #16\n\t"           /* ho = (h1, h3) */
        "orrs   r12, r2, r3\n\t"
        "beq    4f\n\t"                             /* all at the ReLU floor: add nothing */
        "ldr    r12, [r0, #108]\n\t"                /* h_sum += h0 + h1 + h2 + h3 */
        "add    r12, r12, r8\n\t"
        "add    r12, r12, r9\n\t"
        "add    r12, r12, r10\n\t"
        "add    r12, r12, r11\n\t"
        "str    r12, [r0, #108]\n\t"
        "ldr    lr, [r0, #104]\n\t"                 /* acc */
        NCA_OUTPUT_LAYER
        "7:\n\t"
        "ldr    r12, [r0, #128]\n\t"                /* the end of the blocks */
        "cmp    r1, r12\n\t"
        "bne    6b\n\t"
        "movs   r2, #0\n\t"
        "b      5f\n"
        "4:\n\t"
        "add    r1, r1, #64\n\t"                    /* past the unused w2 */
        "b      7b\n"
        "3:\n\t"                                    /* slow path: hand the sums over */
        "add    r3, r0, #112\n\t"
        "stmia  r3, {r8, r9, r10, r11}\n\t"
        "movs   r2, #1\n"
        "5:\n\t"
        : "+r"(r0), "+r"(r1), "=r"(r2)
        :
        : "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "lr", "cc",
          "memory");
    *frame = r0;
    *block = r1;
    return r2;
}

/* The second layer for activations computed in C (the slow path): r1 = the
 * weights (advanced past them). */
static inline void nca_output_layer(nca_dsp_frame_t *frame, const nca_block_t **w2,
                                    const int32_t h[NCA_BLOCK_UNITS])
{
    register const nca_block_t *r1 __asm__("r1") = *w2;
    register uint32_t r2 __asm__("r2") = (uint32_t)h[0] | (uint32_t)h[2] << 16;
    register uint32_t r3 __asm__("r3") = (uint32_t)h[1] | (uint32_t)h[3] << 16;
    register int32_t *lr __asm__("lr") = frame->acc;
    __asm__ volatile(
        NCA_OUTPUT_LAYER
        : "+r"(r1), "+r"(lr)
        : "r"(r2), "r"(r3)
        : "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "memory");
    *w2 = r1;
}

void nca_fully_connected(const nca_genome_t *g, const uint8_t xq[NCA_INPUTS],
                         int32_t input_sum, int32_t acc[NCA_CHANNELS])
{
    const nca_block_t *block = g->blocks;
    const nca_block_t *const end = g->blocks + g->block_count;
    nca_dsp_frame_t frame, *f = &frame;
    unsigned i;

    for (i = 0; i < NCA_INPUTS / 4; ++i) {
        uint32_t word;
        memcpy(&word, xq + 4 * i, sizeof word);
        frame.x[2 * i] = NCA_EVEN(word);
        frame.x[2 * i + 1] = NCA_ODD(word);
    }
    frame.correction = -input_sum * NCA_OFFSET; /* |sum| <= 6144: no overflow */
    frame.top = 127 - g->hidden_zero_point;
    frame.acc = acc;
    frame.h_sum = 0;
    frame.end = end;
    while (block != end) {
        if (nca_blocks(&f, &block) != 0) {
            const nca_block_t *current = (const nca_block_t *)(const void *)(
                (const uint8_t *)block - offsetof(nca_block_t, w2));
            int32_t h[NCA_BLOCK_UNITS];
            unsigned r;
            for (r = 0; r < NCA_BLOCK_UNITS; ++r) {
                h[r] = frame.sums[r] <= 0 ? 0 : nca_requantize(frame.sums[r], current->m1[r],
                                                               current->shift1[r], 0, frame.top);
                frame.h_sum += (uint32_t)h[r];
            }
            nca_output_layer(&frame, &block, h);
        }
    }
    /* sum_j w h = sum_j (w + 128) h - 128 sum_j h */
    for (i = 0; i < NCA_CHANNELS; ++i) {
        acc[i] = nca_int32((uint32_t)acc[i] - frame.h_sum * NCA_OFFSET);
    }
}

#else
typedef int nca_fully_connected_arm_dsp_unused; /* ISO C: no empty file */
#endif
