/* nca_fully_connected_avr.c - the two fully connected layers (contract in
 * nca_kernels.h) for AVR cores with the hardware multiplier (ATmega): a
 * block's four first-layer rows in assembly, sharing each input load, and the
 * second layer two active hidden units at a time, skipping every unit at its
 * ReLU floor. The genome is in flash (LPM). The reference kernel
 * (nca_fully_connected.c) computes the same integers.
 */
#include "nca_kernels.h"

#if NCA_KERNEL_AVR

NCA_STATIC_ASSERT(NCA_INPUTS == 48 && offsetof(nca_block_t, b1) == 0
                  && offsetof(nca_block_t, w1) == 16 && offsetof(nca_block_t, m1) == 208,
                  "nca_avr_block_sums: the biases, then 12 groups of 4 inputs, rows interleaved");

/* sums[r] = b1[r] + correction + sum_d w1[r][d] * xq[d] (modulo 2^32) for
 * the block's 4 rows. Weights and inputs are offset-binary (nca_kernels.h),
 * so each product is an unsigned MUL below 2^16 and a row's 48 of them stay
 * below 2^22: a 24-bit sum, exact with no sign handling. One pass per group
 * of 4 inputs: the inputs into r14, r15, r24, r25, then the group's 16
 * weights in storage order ([row][input], LPM Z+), each MUL added into its
 * row's sum in r2..r13 (8 cycles per MAC, the input loads shared by the 4
 * rows); then Z goes back 208 bytes to the biases, added with the correction.
 * avr-gcc's ABI: block (flash) in r24:r25, xq in r22:r23, sums in r20:r21,
 * correction in r16..r19 (read only); r2..r15 and r28 are saved, r1 is zero
 * again at the end. */
void nca_avr_block_sums(const nca_block_t *block, const uint8_t *xq,
                        int32_t sums[NCA_BLOCK_UNITS], uint32_t correction);
__asm__(
    ".section .text.nca_avr_block_sums,\"ax\",@progbits\n"
    ".global nca_avr_block_sums\n"
    ".type nca_avr_block_sums, @function\n"
    "nca_avr_block_sums:\n"
    ".irp reg, r2,r3,r4,r5,r6,r7,r8,r9,r10,r11,r12,r13,r14,r15,r28\n push \\reg\n .endr\n"
    "movw r30, r24\n adiw r30, 16\n"                /* w1 */
    "movw r26, r22\n"
    "ldi r28, 12\n"                                 /* groups */
    "clr r23\n"                                     /* zero, for the carries */
    "clr r2\n clr r3\n movw r4, r2\n movw r6, r2\n movw r8, r2\n movw r10, r2\n movw r12, r2\n"
    "1: ld r14, X+\n ld r15, X+\n ld r24, X+\n ld r25, X+\n"
    /* row sums r2:r3:r4, r5:r6:r7, r8:r9:r10, r11:r12:r13 */
    ".macro nca_avr_row_macs b0, b1, b2\n"
    ".irp input, r14,r15,r24,r25\n"
    "lpm r22, Z+\n mul r22, \\input\n add \\b0, r0\n adc \\b1, r1\n adc \\b2, r23\n"
    ".endr\n .endm\n"
    "nca_avr_row_macs r2, r3, r4\n nca_avr_row_macs r5, r6, r7\n"
    "nca_avr_row_macs r8, r9, r10\n nca_avr_row_macs r11, r12, r13\n"
    ".purgem nca_avr_row_macs\n"
    "dec r28\n breq 2f\n rjmp 1b\n"                /* beyond BRNE's reach */
    "2: subi r30, 208\n sbci r31, 0\n"             /* b1 */
    "movw r26, r20\n"
    /* LPM leaves the flags alone: the carries run through it */
    ".macro nca_avr_row_out b0, b1, b2\n"
    "clr r22\n add \\b0, r16\n adc \\b1, r17\n adc \\b2, r18\n adc r22, r19\n"
    "lpm r24, Z+\n add \\b0, r24\n lpm r24, Z+\n adc \\b1, r24\n"
    "lpm r24, Z+\n adc \\b2, r24\n lpm r24, Z+\n adc r22, r24\n"
    "st X+, \\b0\n st X+, \\b1\n st X+, \\b2\n st X+, r22\n"
    ".endm\n"
    "nca_avr_row_out r2, r3, r4\n nca_avr_row_out r5, r6, r7\n"
    "nca_avr_row_out r8, r9, r10\n nca_avr_row_out r11, r12, r13\n"
    ".purgem nca_avr_row_out\n"
    "clr r1\n"
    ".irp reg, r28,r15,r14,r13,r12,r11,r10,r9,r8,r7,r6,r5,r4,r3,r2\n pop \\reg\n .endr\n"
    "ret\n"
    ".size nca_avr_block_sums, .-nca_avr_block_sums\n"
    ".previous\n");

/* acc[c] += w[4c] * h + w[4c + apart] * h2 for the 16 channels: the stored
 * second-layer columns of two hidden units (w points at the first's weight
 * for channel 0 in flash; a block's w2 is [channel][unit], so a column steps
 * by 4 bytes per channel) added into the int32 accumulators in RAM, each
 * loaded and stored once per pair: 38 cycles per channel, 19 per MAC. Stored
 * weights and h are in [0, 255], so each product is an unsigned MUL below
 * 2^16. Z steps by apart to the second weight and by 4 - apart to the next
 * channel's first (modulo 2^16, as the flash addresses); the accumulators are
 * addressed by displacement from Y. One column alone is the pair with
 * h2 = 0 and apart = 0. */
NCA_NOINLINE static void nca_avr_add_two_columns(int32_t *acc, const uint8_t *w, uint16_t apart,
                                                 uint8_t h, uint8_t h2)
{
    const uint16_t step = (uint16_t)(NCA_BLOCK_UNITS - apart);
    uint8_t weight, zero, t0, t1, t2, t3;
    __asm__ volatile(
        "clr %[zero]\n\t"
        ".irp off, 0,4,8,12,16,20,24,28,32,36,40,44,48,52,56,60\n\t"
        "lpm %[weight], Z\n\t"
        "add r30, %A[apart]\n\t"
        "adc r31, %B[apart]\n\t"
        "mul %[weight], %[h]\n\t"
        "ldd %[t0], %a[acc]+\\off\n\t"
        "ldd %[t1], %a[acc]+\\off+1\n\t"
        "ldd %[t2], %a[acc]+\\off+2\n\t"
        "ldd %[t3], %a[acc]+\\off+3\n\t"
        "add %[t0], r0\n\t"
        "adc %[t1], r1\n\t"
        "adc %[t2], %[zero]\n\t"
        "adc %[t3], %[zero]\n\t"
        "lpm %[weight], Z\n\t"
        "add r30, %A[step]\n\t"
        "adc r31, %B[step]\n\t"
        "mul %[weight], %[h2]\n\t"
        "add %[t0], r0\n\t"
        "adc %[t1], r1\n\t"
        "adc %[t2], %[zero]\n\t"
        "adc %[t3], %[zero]\n\t"
        "std %a[acc]+\\off, %[t0]\n\t"
        "std %a[acc]+\\off+1, %[t1]\n\t"
        "std %a[acc]+\\off+2, %[t2]\n\t"
        "std %a[acc]+\\off+3, %[t3]\n\t"
        ".endr\n\t"
        "clr r1"
        : [weight] "=&r"(weight), [zero] "=&r"(zero), [t0] "=&r"(t0), [t1] "=&r"(t1),
          [t2] "=&r"(t2), [t3] "=&r"(t3), "+z"(w)
        : [acc] "b"(acc), [apart] "r"(apart), [step] "r"(step), [h] "r"(h), [h2] "r"(h2)
        : "r0", "memory");
}

/* The block loop: a block's 4 first-layer sums from nca_avr_block_sums (its
 * biases hold -128 * the rows' stored weights, the correction is
 * -128 * sum_d x: exact modulo 2^32, see nca_fully_connected.c); a positive
 * sum requantised (m1 >= 0, so a sum <= 0 gives at most 0: the ReLU floor);
 * each active unit's column waits for the next one to make a pair for
 * nca_avr_add_two_columns. The stored weights are w + 128, so the second
 * layer takes 128 * the sum of the activations off at the end. */
void nca_fully_connected(const nca_genome_t *g, const uint8_t xq[NCA_INPUTS],
                         int32_t input_sum, int32_t acc[NCA_CHANNELS])
{
    const int16_t top = (int16_t)(127 - g->hidden_zero_point);
    const uint32_t correction = 0u - (uint32_t)input_sum * NCA_OFFSET;
    const nca_block_t *block = g->blocks, *const end = g->blocks + g->block_count;
    const uint8_t *waiting = NULL; /* an active unit's column not added yet, to pair */
    uint8_t waiting_h = 0;
    uint32_t h_sum = 0;
    uint32_t *out = (uint32_t *)(void *)acc; /* int32 read as uint32: wraps, defined */
    uint8_t r, c;

    for (; block != end; ++block) {
        int32_t sums[NCA_BLOCK_UNITS];
        nca_avr_block_sums(block, xq, sums, correction);
        for (r = 0; r < NCA_BLOCK_UNITS; ++r) {
            const uint8_t *column = &block->w2[0][r];
            uint8_t h;
            if (sums[r] <= 0) {
                continue;
            }
            h = (uint8_t)nca_requantize(sums[r], NCA_ROM_I32(&block->m1[r]),
                                        NCA_ROM_I8(&block->shift1[r]), 0, top);
            if (h == 0) {
                continue;
            }
            h_sum += h;
            if (waiting == NULL) {
                waiting = column;
                waiting_h = h;
            } else {
                /* flash addresses are 16 bits (LPM): their difference too */
                nca_avr_add_two_columns(acc, waiting,
                                        (uint16_t)((uintptr_t)column - (uintptr_t)waiting),
                                        waiting_h, h);
                waiting = NULL;
            }
        }
    }
    if (waiting != NULL) { /* the odd one out, paired with nothing */
        nca_avr_add_two_columns(acc, waiting, 0, waiting_h, 0);
    }
    /* sum_j w h = sum_j u h - 128 sum_j h */
    for (c = 0; c < NCA_CHANNELS; ++c) {
        out[c] -= h_sum * NCA_OFFSET;
    }
}

#else
typedef int nca_fully_connected_avr_unused; /* ISO C: no empty file */
#endif
