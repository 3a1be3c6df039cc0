/* nca_requantize_avr.c - the requantisation of both layers (contract in
 * nca_kernels.h) for AVR cores with the hardware multiplier, in assembly: the
 * 64-bit product by 16 MULs, the rounding shift by byte moves, on magnitudes,
 * with exits where the result is known. The reference (nca_requantize.c)
 * computes the same integers.
 */
#include "nca_kernels.h"

#if NCA_KERNEL_AVR

/* Every int64 shift, addition and comparison is a libgcc call on AVR (the
 * spec's formula takes some 740 cycles per product on simavr), and a C
 * function around an assembly product keeps a dozen registers pushed; so the
 * whole function is assembly (about 230 cycles for a typical shift). With
 * m >= 0, Q = |acc| * m <= 2^62 and t = 31 - shift in [1, 62],
 *     acc >= 0:  floor((Q + 2^(t-1)) / 2^t)     = (floor(Q / 2^(t-1)) + 1) / 2
 *     acc <  0:  -floor((Q + 2^(t-1) - 1) / 2^t) = -((floor((Q - 1) / 2^(t-1)) + 1) / 2)
 * (floor(-a / D) = -ceil(a / D) = -floor((a + D - 1) / D), D = 2^t), halved
 * in 17 bits. The bounds lie within (-2^15, 2^15), so a magnitude of 2^15 or
 * more only has to saturate, and the result fits 16 bits until its sign
 * extension. Exits first: a zero product rounds to 0, and a negative one to
 * at most 0, i.e. to lo when lo = 0 (the first layer's ReLU floor); 0 lies in
 * [lo, hi].
 * avr-gcc's ABI: acc in r22..r25, m in r18..r21, shift in r16 (int, read
 * only), lo in r12:r13, hi in r8:r9 (their upper halves are sign bits), the
 * result in r22..r25; the sign stays in the T flag; r2..r9 are saved, r1 is
 * zero again at the end.
 * The product is summed column by column into r2..r9: a column k adds its (at
 * most four) byte products at bytes k, k+1, k+2, and byte k+2 is still zero
 * when it starts, so its sum (below 2^16 + 4 * 255^2 < 2^24) cannot carry
 * further. */
__asm__(
    ".section .text.nca_requantize,\"ax\",@progbits\n"
    ".global nca_requantize\n"
    ".type nca_requantize, @function\n"
    "nca_requantize:\n"
    "mov r30, r22\n or r30, r23\n or r30, r24\n or r30, r25\n brne 11f\n" /* acc = 0 */
    "9: clr r22\n clr r23\n movw r24, r22\n ret\n"
    "11: mov r30, r18\n or r30, r19\n or r30, r20\n or r30, r21\n breq 9b\n" /* m = 0 */
    "bst r25, 7\n brtc 1f\n"
    "mov r30, r12\n or r30, r13\n breq 9b\n"               /* negative, lo = 0 */
    "com r25\n com r24\n com r23\n neg r22\n sbci r23, 0xff\n sbci r24, 0xff\n sbci r25, 0xff\n"
    "1: ldi r31, 31\n sub r31, r16\n"                       /* t */
    "push r2\n push r3\n push r4\n push r5\n push r6\n push r7\n push r8\n push r9\n"
    "clr r26\n clr r2\n clr r3\n movw r4, r2\n movw r6, r2\n movw r8, r2\n"
    /* column 0 */
    "mul r22, r18\n add r2, r0\n adc r3, r1\n adc r4, r26\n"
    /* column 1 */
    "mul r22, r19\n add r3, r0\n adc r4, r1\n adc r5, r26\n"
    "mul r23, r18\n add r3, r0\n adc r4, r1\n adc r5, r26\n"
    /* column 2 */
    "mul r22, r20\n add r4, r0\n adc r5, r1\n adc r6, r26\n"
    "mul r23, r19\n add r4, r0\n adc r5, r1\n adc r6, r26\n"
    "mul r24, r18\n add r4, r0\n adc r5, r1\n adc r6, r26\n"
    /* column 3 */
    "mul r22, r21\n add r5, r0\n adc r6, r1\n adc r7, r26\n"
    "mul r23, r20\n add r5, r0\n adc r6, r1\n adc r7, r26\n"
    "mul r24, r19\n add r5, r0\n adc r6, r1\n adc r7, r26\n"
    "mul r25, r18\n add r5, r0\n adc r6, r1\n adc r7, r26\n"
    /* column 4 */
    "mul r23, r21\n add r6, r0\n adc r7, r1\n adc r8, r26\n"
    "mul r24, r20\n add r6, r0\n adc r7, r1\n adc r8, r26\n"
    "mul r25, r19\n add r6, r0\n adc r7, r1\n adc r8, r26\n"
    /* column 5 */
    "mul r24, r21\n add r7, r0\n adc r8, r1\n adc r9, r26\n"
    "mul r25, r20\n add r7, r0\n adc r8, r1\n adc r9, r26\n"
    /* column 6 */
    "mul r25, r21\n add r8, r0\n adc r9, r1\n"
    /* Q - 1 when negative */
    "clr r30\n bld r30, 0\n"
    "sub r2, r30\n sbc r3, r26\n sbc r4, r26\n sbc r5, r26\n"
    "sbc r6, r26\n sbc r7, r26\n sbc r8, r26\n sbc r9, r26\n"
    /* shift right by t - 1: bytes, then bits */
    "mov r27, r31\n dec r27\n"
    "2: cpi r27, 8\n brlo 3f\n"
    "mov r2, r3\n mov r3, r4\n mov r4, r5\n mov r5, r6\n mov r6, r7\n mov r7, r8\n"
    "mov r8, r9\n clr r9\n subi r27, 8\n rjmp 2b\n"
    /* under 8 bit shifts left: a value from 2^24 (bytes 3..7) stays at
     * 2^17 or more, so it saturates, and only bytes 0..2 need shifting */
    "3: mov r30, r5\n or r30, r6\n or r30, r7\n or r30, r8\n or r30, r9\n brne 13f\n"
    "tst r27\n breq 5f\n"
    "4: lsr r4\n ror r3\n ror r2\n dec r27\n brne 4b\n"
    /* 2^15 - 1 if v = r4:r3:r2 reaches 2^16 or (v + 1) >> 1 (in 17 bits,
     * through the carry) reaches 2^15, else that */
    "5: tst r4\n brne 13f\n"
    "movw r24, r2\n adiw r24, 1\n ror r25\n ror r24\n"
    "sbrs r25, 7\n rjmp 6f\n"
    "13: ldi r24, 0xff\n ldi r25, 0x7f\n"
    "6: clr r1\n"
    "pop r9\n pop r8\n pop r7\n pop r6\n pop r5\n pop r4\n pop r3\n pop r2\n"
    /* the sign, then clamp(r, lo, hi) in 16 bits, sign-extended */
    "brtc 7f\n com r25\n neg r24\n sbci r25, 0xff\n"
    "7: cp r24, r12\n cpc r25, r13\n brge 8f\n movw r24, r12\n"
    "8: cp r8, r24\n cpc r9, r25\n brge 10f\n movw r24, r8\n"
    "10: movw r22, r24\n clr r24\n sbrc r23, 7\n com r24\n mov r25, r24\n ret\n"
    ".size nca_requantize, .-nca_requantize\n"
    ".previous\n");

#else
typedef int nca_requantize_avr_unused; /* ISO C: no empty file */
#endif
