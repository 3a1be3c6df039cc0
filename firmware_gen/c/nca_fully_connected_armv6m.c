/* nca_fully_connected_armv6m.c - the two fully connected layers (contract in
 * nca_kernels.h) for Armv6-M (Cortex-M0, M0+). */
#include "nca_kernels.h"

#if NCA_KERNEL_ARMV6M
#error "not yet"
#else
typedef int nca_fully_connected_armv6m_unused; /* ISO C: no empty file */
#endif
