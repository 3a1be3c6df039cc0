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

/* AVR cores with the hardware multiplier (ATmega; __AVR_HAVE_MUL__ also
 * implies MOVW and LPM Z+): the first layer, the second layer's columns and
 * the requantisation's product in assembly (see the kernels); NCA_PORTABLE
 * builds the plain C there too, as on cores without MUL. */
#if defined(__AVR__) && defined(__AVR_HAVE_MUL__) && !defined(NCA_PORTABLE)
#define NCA_USE_AVR 1
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
#ifndef NCA_USE_AVR
NCA_NOINLINE static int32_t nca_requantize(int32_t acc, int32_t m, int shift,
                                           int32_t lo, int32_t hi)
{
    const int total = 31 - shift; /* 1 .. 62 for shift in [-31, 30] */
    const int64_t x = (int64_t)acc * m + ((int64_t)1 << (total - 1));
    const int64_t r = x < 0 ? ~(~x >> total) : x >> total;
    return r < lo ? lo : r > hi ? hi : (int32_t)r;
}
#else
/* (floor((Q - n) / 2^(t-1)) + 1) / 2 for Q = a * b, t = total_and_sign & 0x7f
 * in [1, 62], n = total_and_sign >> 7, i.e. floor((Q + 2^(t-1) - n) / 2^t);
 * 0xFFFF for a quotient of 2^15 or more. For the AVR requantisation below.
 * The 64-bit product is 16 MULs summed column by column into r2..r9: a column
 * k adds its (at most four) byte products at bytes k, k+1, k+2, and byte k+2
 * is still zero when it starts, so its sum (below 2^16 + 4 * 255^2 < 2^24)
 * cannot carry further. Then Q - n, a move by (t-1) / 8 bytes, (t-1) % 8 bit
 * shifts, the saturation test on bytes 2..7, and (v + 1) >> 1 in 17 bits.
 * avr-gcc's ABI: a in r22..r25, b in r18..r21, total_and_sign in r16 (read
 * only), the result in r24:r25; r2..r9 are saved, r1 is zero again at the
 * end. About 256 cycles per call on the benchmark genome (simavr), where
 * libgcc's widening multiply alone takes 190. */
uint16_t nca_avr_scaled_magnitude(uint32_t a, uint32_t b, uint8_t total_and_sign);
__asm__(
    ".section .text.nca_avr_scaled_magnitude,\"ax\",@progbits\n"
    ".global nca_avr_scaled_magnitude\n"
    ".type nca_avr_scaled_magnitude, @function\n"
    "nca_avr_scaled_magnitude:\n"
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
    /* Q - n: n is bit 7 of r16 */
    "mov r30, r16\n lsl r30\n clr r30\n rol r30\n"
    "sub r2, r30\n sbc r3, r26\n sbc r4, r26\n sbc r5, r26\n"
    "sbc r6, r26\n sbc r7, r26\n sbc r8, r26\n sbc r9, r26\n"
    /* shift right by t - 1: bytes, then bits */
    "mov r27, r16\n andi r27, 0x7f\n dec r27\n"
    "1: cpi r27, 8\n brlo 2f\n"
    "mov r2, r3\n mov r3, r4\n mov r4, r5\n mov r5, r6\n mov r6, r7\n mov r7, r8\n"
    "mov r8, r9\n clr r9\n subi r27, 8\n rjmp 1b\n"
    "2: tst r27\n breq 4f\n"
    "3: lsr r9\n ror r8\n ror r7\n ror r6\n ror r5\n ror r4\n ror r3\n ror r2\n"
    "dec r27\n brne 3b\n"
    /* 0xFFFF if bytes 2..7 are not all zero, else (v + 1) >> 1 of v = r3:r2 */
    "4: mov r30, r4\n or r30, r5\n or r30, r6\n or r30, r7\n or r30, r8\n or r30, r9\n"
    "movw r24, r2\n adiw r24, 1\n ror r25\n ror r24\n"
    "tst r30\n breq 5f\n ldi r24, 0xff\n ldi r25, 0xff\n"
    "5: clr r1\n"
    "pop r9\n pop r8\n pop r7\n pop r6\n pop r5\n pop r4\n pop r3\n pop r2\n"
    "ret\n"
    ".size nca_avr_scaled_magnitude, .-nca_avr_scaled_magnitude\n"
    ".previous\n");

/* The same on AVR, where every int64 shift, addition and comparison is a
 * libgcc call (the formula above takes some 740 cycles per product on
 * simavr): on magnitudes, with Q = |acc| * |m| <= 2^62 and t = total,
 *     acc * m >= 0:  floor((Q + 2^(t-1)) / 2^t)
 *     acc * m <  0:  -floor((Q + 2^(t-1) - 1) / 2^t)
 * (floor(-a / D) = -ceil(a / D) = -floor((a + D - 1) / D), D = 2^t), computed
 * by nca_avr_scaled_magnitude. The clamp bounds lie in [-256, 255] (the
 * layers' activation ranges), so a magnitude above 256 only has to saturate.
 * Exits first where the result is known: a zero product rounds to 0, and a
 * negative one to at most 0, i.e. lo when lo >= 0 (the first layer's ReLU
 * floor: about half of the hidden units). The bounds and the result fit in
 * int16, which spares registers. Inlined into both callers: as a call of its
 * own it cost 130 cycles more per requantisation. */
__attribute__((always_inline)) static inline int16_t
nca_requantize(int32_t acc, int32_t m, int8_t shift, int16_t lo, int16_t hi)
{
    const uint8_t negative = (acc < 0) != (m < 0);
    uint16_t magnitude;
    int16_t r;
    if (acc == 0 || m == 0) {
        return 0 < lo ? lo : 0 > hi ? hi : 0;
    }
    if (negative && lo >= 0) {
        return lo;
    }
    magnitude = nca_avr_scaled_magnitude(acc < 0 ? 0u - (uint32_t)acc : (uint32_t)acc,
                                         m < 0 ? 0u - (uint32_t)m : (uint32_t)m,
                                         (uint8_t)((31 - shift) | negative << 7));
    r = magnitude > 256u ? 256 : (int16_t)magnitude;
    r = negative ? -r : r;
    return r < lo ? lo : r > hi ? hi : r;
}
#endif

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
#elif defined(NCA_USE_AVR)
    /* Each product p = w * x lies in [-16256, 16384]. The loop adds p + 2^15
     * (MULS, then bit 15 flipped: the high byte EORed with 0x80), which is in
     * [16512, 49152], as an unsigned 24-bit sum: 48 of them stay below 2^22,
     * so the sum is exact with no sign extension per MAC, and
     * sum - 48 * 2^15 is the exact dot product. 6 passes of 8 MACs; r1, the
     * compiler's zero register, holds MULS's high byte and is cleared after.
     * The sum's top byte stays zero in the loop and serves as the zero the
     * carry is added with. */
    uint32_t biased;
    uint8_t weight, input, flip, passes;
    (void)d;
    __asm__ volatile(
        "clr %A[sum]\n\tclr %B[sum]\n\tclr %C[sum]\n\tclr %D[sum]\n\t"
        "ldi %[flip], 0x80\n\t"
        "ldi %[passes], %[n]\n"
        "1:\n\t"
        ".rept 8\n\t"
        "lpm %[weight], Z+\n\t"
        "ld %[input], X+\n\t"
        "muls %[weight], %[input]\n\t"
        "eor r1, %[flip]\n\t"
        "add %A[sum], r0\n\t"
        "adc %B[sum], r1\n\t"
        "adc %C[sum], %D[sum]\n\t"
        ".endr\n\t"
        "dec %[passes]\n\t"
        "brne 1b\n\t"
        "clr r1"
        : [sum] "=&r"(biased), [weight] "=&d"(weight), [input] "=&d"(input),
          [flip] "=&d"(flip), [passes] "=&d"(passes), "+z"(w), "+x"(x)
        : [n] "M"(NCA_INPUTS / 8)
        : "r0", "memory");
    acc += (int32_t)biased - (int32_t)NCA_INPUTS * 32768;
#else
    for (d = NCA_INPUTS; d != 0; --d) { /* counting down spares a register */
        acc += (int32_t)NCA_ROM_I8(w++) * *x++;
    }
#endif
    return acc;
}

#ifdef NCA_USE_AVR
/* acc[c] += w[c * stride] * h + w[c * stride + apart] * h2 + 2 * 2^15 for
 * the 16 channels: the columns of two hidden units j and j + apart of the
 * second layer (w points at w2[0][j] in flash, stride is the hidden count)
 * added into the int32 accumulators in RAM, each loaded and stored once per
 * pair: 40 cycles per channel, 20 per MAC. h and h2 are in [0, 255] (ReLU
 * outputs with zero point at most 127), so MULSU (signed weight, unsigned h)
 * gives p in [-32640, 32385] as int16; the high byte EORed with 0x80 adds 2^15
 * and makes it unsigned, which spares the sign extension. The caller removes
 * the 2^15 per term at the end: the bytes wrap modulo 2^32 in between, and
 * the final sums are exact. Z steps by apart to the second weight and by
 * stride - apart to the next channel's first; the accumulators are addressed
 * by displacement from Y. A single column is the pair with h2 = 0. */
NCA_NOINLINE static void nca_avr_add_two_columns(int32_t *acc, const int8_t *w, uint16_t stride,
                                                 uint16_t apart, uint8_t h, uint8_t h2)
{
    const uint16_t step = (uint16_t)(stride - apart);
    uint8_t weight, flip, zero, t0, t1, t2, t3;
    __asm__ volatile(
        "ldi %[flip], 0x80\n\t"
        "clr %[zero]\n\t"
        ".irp off, 0,4,8,12,16,20,24,28,32,36,40,44,48,52,56,60\n\t"
        "lpm %[weight], Z\n\t"
        "add r30, %A[apart]\n\t"
        "adc r31, %B[apart]\n\t"
        "mulsu %[weight], %[h]\n\t"
        "eor r1, %[flip]\n\t"
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
        "mulsu %[weight], %[h2]\n\t"
        "eor r1, %[flip]\n\t"
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
        : [weight] "=&a"(weight), [flip] "=&d"(flip), [zero] "=&r"(zero), [t0] "=&r"(t0),
          [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3), "+z"(w)
        : [acc] "b"(acc), [apart] "r"(apart), [step] "r"(step), [h] "a"(h), [h2] "a"(h2)
        : "r0", "memory");
}

/* The hidden layer streamed into the second layer's accumulators, as in
 * nca_cell_update, on AVR: running pointers through the genome's flash arrays
 * (no index arithmetic per unit), the assembly kernels, and the 2^15 that
 * nca_avr_add_two_columns adds per term taken off once at the end. Inlined
 * into nca_cell_update: as a function of its own it was 2% faster and took
 * 22 more bytes of stack. */
static void nca_avr_hidden_layer(const nca_genome_t *g, int32_t *acc2,
                                 const signed char *x, int32_t top)
{
    const int8_t *w1 = g->w1, *shift1 = g->shift1, *w2 = g->w2;
    const int32_t *b1 = g->b1, *m1 = g->m1;
    const int8_t *waiting = NULL; /* an active column not added yet, to pair */
    const uint16_t hidden = g->hidden;
    const int8_t *const w2_end = w2 + hidden;
    const int16_t h_max = (int16_t)top;
    uint16_t columns = 0; /* at most NCA_MAX_HIDDEN + 1 */
    uint8_t c, waiting_h = 0;
    for (; w2 != w2_end; ++w2, w1 += NCA_INPUTS) {
        const int32_t acc = nca_dot(w1, x, NCA_ROM_I32(b1++));
        /* clamp(r, 0, 127 - zp): see nca_cell_update */
        const int16_t h = nca_requantize(acc, NCA_ROM_I32(m1++), NCA_ROM_I8(shift1++), 0,
                                         h_max);
        if (h != 0) {
            if (waiting != NULL) {
                nca_avr_add_two_columns(acc2, waiting, hidden, (uint16_t)(w2 - waiting),
                                        waiting_h, (uint8_t)h);
                waiting = NULL;
            } else {
                waiting = w2;
                waiting_h = (uint8_t)h;
            }
            ++columns;
        }
    }
    if (waiting != NULL) { /* the odd column, paired with nothing: one more 2^15 */
        nca_avr_add_two_columns(acc2, waiting, hidden, 0, waiting_h, 0);
        ++columns;
    }
    for (c = 0; c < NCA_CHANNELS; ++c) { /* each added column's 2^15, modulo 2^32 */
        acc2[c] = (int32_t)((uint32_t)acc2[c] - (uint32_t)columns * 32768u);
    }
}
#endif

/* A dead cell takes the all-zero state. Copying it from ROM compiles to four
 * word moves on Cortex-M4, where memset would link the C library's 162-byte
 * memset: more than the flash budget's margin. */
static const int8_t nca_dead_state[NCA_CHANNELS];

/* Whether some neighbour's last known alpha exceeds the threshold. */
static int nca_neighbours_alive(const nca_cell_ram_t *ram, int threshold)
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
    const int threshold = g->alive_threshold; /* int: 16 bits on AVR */
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
#ifdef NCA_USE_AVR
    nca_avr_hidden_layer(g, ram->acc, x, 127 - zp);
    (void)j;
    (void)hidden;
#else
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
#endif

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
