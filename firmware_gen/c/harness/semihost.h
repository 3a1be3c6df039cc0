/* semihost.h - the few semihosting calls the MCU test images need: file I/O
 * and exit through the debugger (here QEMU's -semihosting). ARM and RISC-V
 * define the same operations; semihost.c traps with each core's instruction.
 */
#ifndef NCA_SEMIHOST_H
#define NCA_SEMIHOST_H

#include <stddef.h>
#include <stdint.h>

#define SH_MODE_RB 1 /* fopen "rb" */
#define SH_MODE_WB 5 /* fopen "wb" */

int sh_open(const char *name, int mode);         /* handle, or -1 */
int sh_close(int handle);
size_t sh_read(int handle, void *buf, size_t n); /* bytes NOT read: 0 = all */
size_t sh_write(int handle, const void *buf, size_t n); /* bytes NOT written */
void sh_exit(int status) __attribute__((noreturn)); /* 0 = success */

#endif
