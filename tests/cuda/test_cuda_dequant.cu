/*
 * test_cuda_dequant.cu - the CUDA backend's decoding of every weight layout
 * (src/kernels/cuda/dequant.cuh, dequant_elem) against quant/'s reference dequantizers, bit
 * for bit. dequant_elem is __host__ __device__, so this runs on the host: it needs no GPU
 * and runs wherever the CUDA build does.
 *
 * Rows are random bytes, not quantizer output, so every bit of every field is exercised
 * (the 6-bit K-quant scales' high bits, Q5's fifth bits, negative Q6_K scales); the fp16
 * scale fields are then set to random finite values. Also rows that herd's quantizers wrote
 * from random floats. NaN equals NaN here (both decoders must agree on which elements).
 */
#include "dequant.cuh" /* src/kernels/cuda: dequant_elem */

#include "check.h"

#include <math.h>   /* isnan */
#include <stdlib.h> /* malloc */

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

/* A random finite fp16 of magnitude below 2: sign, exponent 0..15, mantissa. */
static uint16_t rand_f16(void)
{
    uint32_t r = next();
    return (uint16_t)((r & 0x8000) | ((r >> 16) % 16) << 10 | (r & 0x3ff));
}

/* Byte offsets of the fp16 fields of one block of t (-1 ends the list). */
static void f16_fields(herd_dtype t, int off[3])
{
    off[0] = off[1] = off[2] = -1;
    switch (t) {
    case HERD_DTYPE_Q4_0:
    case HERD_DTYPE_Q5_0:
    case HERD_DTYPE_Q8_0:
        off[0] = 0;
        break;
    case HERD_DTYPE_Q4_1:
    case HERD_DTYPE_Q5_1:
    case HERD_DTYPE_Q4_K:
    case HERD_DTYPE_Q5_K:
        off[0] = 0;
        off[1] = 2;
        break;
    case HERD_DTYPE_Q6_K:
        off[0] = (int)offsetof(struct block_q6_k, d);
        break;
    default:
        break;
    }
}

template <herd_dtype T>
static void check_row(const uint8_t *row, int64_t n, const char *how)
{
    float *ref = (float *)malloc((size_t)n * sizeof(float));
    CHECK(dequantize_row(T, ref, row, n) == HERD_OK);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        const float got = dequant_elem<T>(row, i);
        const bool same = memcmp(&got, &ref[i], sizeof got) == 0 ||
                          (isnan(got) && isnan(ref[i]));
        if (!same && bad++ < 4)
            printf("  %s %s [%lld]: ref %.9g cuda %.9g\n", herd_dtype_name(T), how,
                   (long long)i, ref[i], got);
    }
    CHECK_MSG(bad == 0, "%s %s: %d of %lld elements differ", herd_dtype_name(T), how, bad,
              (long long)n);
    free(ref);
}

template <herd_dtype T>
static void check_type(void)
{
    const int64_t n = 1024; /* 4 K-quant super-blocks, 32 small blocks */
    const size_t bytes = dtype_row_bytes(T, n), bb = dtype_block_bytes(T);
    uint8_t *row = (uint8_t *)malloc(bytes);
    for (int round = 0; round < 50; round++) {
        for (size_t i = 0; i < bytes; i++)
            row[i] = (uint8_t)next();
        int off[3];
        f16_fields(T, off);
        for (size_t b = 0; b < bytes / bb; b++) {
            for (int k = 0; k < 3 && off[k] >= 0; k++) {
                uint16_t h = rand_f16();
                memcpy(row + b * bb + (size_t)off[k], &h, 2);
            }
        }
        check_row<T>(row, n, "random bytes");
    }
    float x[1024];
    for (int i = 0; i < 1024; i++)
        x[i] = (float)((int32_t)next()) / 2147483648.0f * (i % 7 == 0 ? 8.0f : 1.0f);
    if (T == HERD_DTYPE_F16 || T == HERD_DTYPE_BF16) {
        for (int i = 0; i < 1024; i++) {
            uint16_t h = T == HERD_DTYPE_F16 ? f32_to_fp16(x[i]) : f32_to_bf16(x[i]);
            memcpy(row + 2 * i, &h, 2);
        }
    } else if (T == HERD_DTYPE_F32) {
        memcpy(row, x, sizeof x);
    } else {
        CHECK(quantize_row(T, row, x, n) == HERD_OK);
    }
    check_row<T>(row, n, "quantized");
    free(row);
}

int main(void)
{
    check_type<HERD_DTYPE_F32>();
    check_type<HERD_DTYPE_F16>();
    check_type<HERD_DTYPE_BF16>();
    check_type<HERD_DTYPE_Q8_0>();
    check_type<HERD_DTYPE_Q4_0>();
    check_type<HERD_DTYPE_Q4_1>();
    check_type<HERD_DTYPE_Q5_0>();
    check_type<HERD_DTYPE_Q5_1>();
    check_type<HERD_DTYPE_Q4_K>();
    check_type<HERD_DTYPE_Q5_K>();
    check_type<HERD_DTYPE_Q6_K>();
    return check_done();
}
