/*
 * kernels_avx512.c - AVX-512 (F/BW/VL + VNNI, BF16 where present) variants.
 */
#include "kernels/kernels.h"

void kernels_fill_avx512(struct herd_cpu_kernels *k)
{
    (void)k;
}
