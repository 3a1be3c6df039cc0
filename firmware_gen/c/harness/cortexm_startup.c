/* cortexm_startup.c - the reset code of the Cortex-M test images: vector
 * table, .data/.bss set-up, main, exit through semihosting.
 */
#include "semihost.h"

#include <string.h>

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
