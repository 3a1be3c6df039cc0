/* semihost.c - ARM semihosting calls (see semihost.h) and the reset code of
 * the Cortex-M test images: vector table, .data/.bss set-up, main, exit.
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

static uintptr_t sh_call(uintptr_t op, const void *args)
{
    register uintptr_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = args;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

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
    /* AArch32 SYS_EXIT takes the reason itself in r1; QEMU exits 0 for
     * "application exit" and 1 for anything else */
    sh_call(SYS_EXIT, (const void *)(uintptr_t)(status == 0 ? ADP_STOPPED_APPLICATION_EXIT
                                                            : ADP_STOPPED_RUN_TIME_ERROR));
    for (;;) {
    }
}

/* --- reset --------------------------------------------------------------- */

extern int main(void);
extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[], _estack[];

void nca_reset_handler(void) __attribute__((noreturn));
void nca_reset_handler(void)
{
    memcpy(_sdata, _sidata, (size_t)((char *)_edata - (char *)_sdata));
    memset(_sbss, 0, (size_t)((char *)_ebss - (char *)_sbss));
    sh_exit(main());
}

/* Any fault ends the run with a failure status instead of hanging. */
static void nca_fault_handler(void)
{
    sh_exit(3);
}

/* Cortex-M vector table: initial stack pointer, then reset, NMI, hard fault
 * (and, on ARMv7-M, memory-management, bus and usage faults). */
struct nca_vectors {
    void *initial_sp;
    void (*handlers[6])(void);
};

__attribute__((section(".isr_vector"), used))
static const struct nca_vectors nca_vectors = {
    _estack,
    {nca_reset_handler, nca_fault_handler, nca_fault_handler, nca_fault_handler,
     nca_fault_handler, nca_fault_handler},
};
