/*
 * kernels_avx512.c - the AVX-512 table (F/BW/VL/DQ + VNNI; BF16 dot where the CPU has it):
 * quantized products in matmul_q_avx512.c, float ones in matmul_f_avx512.c, vector ops in
 * ops_avx512.c (attention over a GQA group). Entries not set here keep the avx2 (or ref)
 * function.
 */
#include "kernels/kernels.h"

void kernels_fill_avx512(struct herd_cpu_kernels *k)
{
    kernels_fill_matmul_q_avx512(k);
    kernels_fill_matmul_f_avx512(k);
    kernels_fill_matmul_f8_avx512(k);
    kernels_fill_ops_avx512(k);
}

/* avx512 plus AMX tiles (int8 prefill products); only chosen where herd_cpu_amx_permit() */
void kernels_fill_amx(struct herd_cpu_kernels *k)
{
    kernels_fill_avx512(k);
    kernels_fill_matmul_q_amx(k);
    kernels_fill_matmul_f_amx(k);
}
