/* riscv_startup.c - the reset code of the RISC-V test images on QEMU's virt
 * machine: stack pointer, .bss cleared (the image is loaded into RAM whole, so
 * .data needs no copy), main, exit through semihosting. Any trap ends the run
 * with a failure status instead of hanging.
 */
#include "semihost.h"

#include <string.h>

extern int main(void);
extern char _sbss[], _ebss[];

void nca_riscv_main(void) __attribute__((noreturn, used));
void nca_riscv_main(void)
{
    memset(_sbss, 0, (size_t)(_ebss - _sbss));
    sh_exit(main());
}

void nca_riscv_trap(void) __attribute__((noreturn, used, aligned(4)));
void nca_riscv_trap(void)
{
    sh_exit(3);
}

/* The entry: no C before the stack pointer (and the global pointer that
 * linker relaxation may use) are set. */
__asm__(".section .text.start, \"ax\"\n"
        ".globl _start\n"
        "_start:\n"
        ".option push\n"
        ".option norelax\n"
        "    la gp, __global_pointer$\n"
        ".option pop\n"
        "    la sp, _estack\n"
        "    la t0, nca_riscv_trap\n"
        "    csrw mtvec, t0\n"
        "    j nca_riscv_main\n");
