/*
 * kernels_avx2.c - the AVX2 + FMA + F16C table: the vector kernels (ops_avx2.c). Matrix
 * products keep the scalar reference here for now (issue 5: AVX2 matmul not written yet);
 * CPUs with AVX-512 VNNI get cpu/avx512.
 */
#include "kernels/kernels.h"

void kernels_fill_avx2(struct herd_cpu_kernels *k)
{
    kernels_fill_ops_avx2(k);
}
