/* nca_kernels.h - the boundary between the portable cell update (nca_cell.c)
 * and its kernels, one operation per file: a portable reference version and,
 * where it pays, one for an architecture, chosen here at compile time
 * (TFLite Micro's reference / CMSIS-NN kernel split). Internal to the firmware.
 */
#ifndef NCA_KERNELS_H
#define NCA_KERNELS_H

#include "nca_cell.h"

/* Every read of the genome goes through NCA_ROM_U8 / NCA_ROM_I8 / NCA_ROM_I32.
 * On AVR the genome's arrays are in flash (PROGMEM, the generated header's
 * NCA_<NAME>_ROM), a separate address space that only LPM reads, so the
 * genome's pointers are flash addresses in the low 64 KiB, read with
 * avr-libc's pgm_read_*. Cores with one address space (Cortex-M, RISC-V, the
 * host) read them as memory. */
#if defined(__AVR__)
#include <avr/pgmspace.h>
#define NCA_ROM_U8(p)  ((uint8_t)pgm_read_byte(p))
#define NCA_ROM_I8(p)  ((int8_t)pgm_read_byte(p))
#define NCA_ROM_I32(p) ((int32_t)pgm_read_dword(p))
#else
#define NCA_ROM_U8(p)  (*(p))
#define NCA_ROM_I8(p)  (*(p))
#define NCA_ROM_I32(p) (*(p))
#endif

/* Kernel selection. Cores with the DSP extension (Cortex-M4, M7, M33 ...)
 * take both layers two MACs per instruction with SMLAD; Armv6-M (Cortex-M0,
 * M0+) has its own layer loop; AVR cores with the hardware multiplier
 * (ATmega; __AVR_HAVE_MUL__ also implies MOVW and LPM Z+) have assembly
 * layers and requantisation, while an ATtiny without MUL builds the reference
 * kernels. NCA_PORTABLE builds the reference kernels everywhere. Every
 * variant computes the same exact integers. */
#if !defined(NCA_PORTABLE) && defined(__ARM_FEATURE_DSP)
#define NCA_KERNEL_ARM_DSP 1
#elif !defined(NCA_PORTABLE) && defined(__ARM_ARCH_6M__)
#define NCA_KERNEL_ARMV6M 1
#elif !defined(NCA_PORTABLE) && defined(__AVR__) && defined(__AVR_HAVE_MUL__)
#define NCA_KERNEL_AVR 1
#else
#define NCA_KERNEL_REFERENCE 1
#endif
#ifndef NCA_KERNEL_ARM_DSP
#define NCA_KERNEL_ARM_DSP 0
#endif
#ifndef NCA_KERNEL_ARMV6M
#define NCA_KERNEL_ARMV6M 0
#endif
#ifndef NCA_KERNEL_AVR
#define NCA_KERNEL_AVR 0
#endif
#ifndef NCA_KERNEL_REFERENCE
#define NCA_KERNEL_REFERENCE 0
#endif

/* The hand-tuned perception kernels write out the Sobel pair with shift 3;
 * taps generated otherwise (NCA_PERCEPTION_IS_SOBEL 0, nca_cell_layout.h)
 * take the reference kernel, which reads the generated taps, on every core. */
#define NCA_PERCEIVE_ARM_DSP (NCA_KERNEL_ARM_DSP && NCA_PERCEPTION_IS_SOBEL)
#define NCA_PERCEIVE_AVR (NCA_KERNEL_AVR && NCA_PERCEPTION_IS_SOBEL)
#define NCA_PERCEIVE_REFERENCE (!NCA_PERCEIVE_ARM_DSP && !NCA_PERCEIVE_AVR)

#if defined(__GNUC__)
#define NCA_NOINLINE __attribute__((noinline))
#else
#define NCA_NOINLINE
#endif



/* Weights and inputs are stored offset-binary: value + NCA_OFFSET. */
#define NCA_OFFSET 128

/* clamp(round(acc * m * 2^(shift - 31)), lo, hi) with a single rounding, ties
 * towards +infinity (TFLM's single-rounding MultiplyByQuantizedMultiplier):
 *     (acc * m + 2^(30 - shift)) >> (31 - shift)        in 64 bits,
 * for m in {0} u [2^30, 2^31), shift in [-31, 30], -2^15 < lo <= 0 <= hi < 2^15
 * (the layers clamp to [0, 255] and [-128, 127]). nca_requantize.c
 * (reference), nca_requantize_avr.c. */
int32_t nca_requantize(int32_t acc, int32_t m, int shift, int32_t lo, int32_t hi);

/* The two gradient filters of every channel over the 3x3 neighbourhood (the
 * generated NCA_PERCEPTION_WEIGHTS; Sobel x and y, whose centre has weight 0),
 * as the float model's filter / 8: g = floor((S + 4) / 8), round half up,
 * saturated to int8 (for Sobel S in [-1020, 1020]). Writes the gradients
 * to the RAM and the 48 first-layer inputs state | gradient x | gradient y,
 * offset-binary (x + 128), to xq; returns the sum of the inputs (not offset).
 * nca_perceive.c (reference, any taps), and for the Sobel pair
 * nca_perceive_arm_dsp.c, nca_perceive_avr.c. */
int32_t nca_perceive(nca_cell_ram_t *ram, uint8_t xq[NCA_INPUTS]);

/* The two fully connected layers, streamed one block of 4 hidden units at a
 * time: adds to acc[c] (the cell RAM's layer-2 accumulators, holding b2) the
 * exact sum over hidden units j of w2[c][j] * h_j, where
 *     h_j = clamp(requantize(b1[j] + sum_d w1[j][d] * x[d], m1[j], shift1[j]),
 *                 0, 127 - hidden_zero_point)
 * is the hidden activation read with input offset -zero point. The inputs
 * come offset-binary, xq[d] = x[d] + 128, with input_sum = sum_d x[d].
 * nca_fully_connected.c (reference), nca_fully_connected_arm_dsp.c,
 * nca_fully_connected_armv6m.c, nca_fully_connected_avr.c. */
void nca_fully_connected(const nca_genome_t *g, const uint8_t xq[NCA_INPUTS],
                         int32_t input_sum, int32_t acc[NCA_CHANNELS]);

/* The residual: state[c] += clamp(requantize(acc[c], m2[c], shift2[c]),
 * -128, 127), saturated to int8. nca_residual.c (reference),
 * nca_residual_arm_dsp.c. */
void nca_residual(const nca_genome_t *g, nca_cell_ram_t *ram);

/* uint32 -> int32 modulo 2^32 without implementation-defined conversion
 * (compiles to nothing on two's complement cores). */
static inline int32_t nca_int32(uint32_t u)
{
    return u <= 0x7FFFFFFFu ? (int32_t)u : (int32_t)(u - 0x80000000u) + INT32_MIN;
}

#endif /* NCA_KERNELS_H */
