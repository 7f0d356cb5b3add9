/*
 * kernels_avx2.c - the AVX2 + FMA + F16C table: vector kernels (ops_avx2.c), quantized
 * products (matmul_q_avx2.c), float ones (matmul_f_avx2.c) and the activation quantizers
 * (quantize_avx2.c). CPUs with AVX-512 VNNI get
 * cpu/avx512 on top, which keeps these for what it does not replace.
 */
#include "kernels/kernels.h"

void kernels_fill_avx2(struct herd_cpu_kernels *k)
{
    kernels_fill_ops_avx2(k);
    kernels_fill_matmul_q_avx2(k);
    kernels_fill_matmul_f_avx2(k);
    kernels_fill_quantize_avx2(k);
    kernels_fill_matmul_f8_avx2(k);
}
