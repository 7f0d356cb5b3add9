/*
 * kernels_avx2.c - AVX2 + FMA + F16C variants (filled in below as they land).
 */
#include "kernels/kernels.h"

void kernels_fill_avx2(struct herd_cpu_kernels *k)
{
    (void)k;
}
