/*
 * kernels_neon.c - ARM NEON variants (aarch64).
 */
#include "kernels/kernels.h"

void kernels_fill_neon(struct herd_cpu_kernels *k)
{
    (void)k;
}
