/* semihost.c - the semihosting calls of the MCU test images (see semihost.h).
 * ARM and RISC-V share the operations and their argument blocks; only the
 * instruction that traps to the debugger differs.
 */
#include "semihost.h"

#include <string.h>

#define SYS_OPEN  0x01
#define SYS_CLOSE 0x02
#define SYS_WRITE 0x05
#define SYS_READ  0x06
#define SYS_EXIT  0x18
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define ADP_STOPPED_RUN_TIME_ERROR   0x20023

#if defined(__riscv)
/* RISC-V: the operation in a0, the argument block in a1; the trap is an ebreak
 * between two no-op shifts, uncompressed, that the debugger recognises. */
static uintptr_t sh_call(uintptr_t op, const void *args)
{
    register uintptr_t a0 __asm__("a0") = op;
    register const void *a1 __asm__("a1") = args;
    __asm__ volatile(".option push\n.option norvc\n.balign 16\n"
                     "slli zero, zero, 0x1f\nebreak\nsrai zero, zero, 7\n.option pop"
                     : "+r"(a0) : "r"(a1) : "memory");
    return a0;
}
#else
/* ARMv6-M and ARMv7-M: bkpt 0xab with the operation in r0 and the argument
 * block in r1. */
static uintptr_t sh_call(uintptr_t op, const void *args)
{
    register uintptr_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = args;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
#endif

int sh_open(const char *name, int mode)
{
    const uintptr_t args[3] = {(uintptr_t)name, (uintptr_t)mode, strlen(name)};
    return (int)sh_call(SYS_OPEN, args);
}

int sh_close(int handle)
{
    const uintptr_t args[1] = {(uintptr_t)handle};
    return (int)sh_call(SYS_CLOSE, args);
}

size_t sh_read(int handle, void *buf, size_t n)
{
    const uintptr_t args[3] = {(uintptr_t)handle, (uintptr_t)buf, n};
    return sh_call(SYS_READ, args);
}

size_t sh_write(int handle, const void *buf, size_t n)
{
    const uintptr_t args[3] = {(uintptr_t)handle, (uintptr_t)buf, n};
    return sh_call(SYS_WRITE, args);
}

void sh_exit(int status)
{
    /* On 32-bit cores SYS_EXIT takes the reason itself as its argument; QEMU
     * exits 0 for "application exit" and 1 for anything else */
    sh_call(SYS_EXIT, (const void *)(uintptr_t)(status == 0 ? ADP_STOPPED_APPLICATION_EXIT
                                                            : ADP_STOPPED_RUN_TIME_ERROR));
    for (;;) {
    }
}
