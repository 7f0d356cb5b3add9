/*
 * dequant.cuh - element i of a weight row, for every layout the CUDA backend reads: the
 * block structs of quant/quant.h (one definition) decoded as its reference dequantizers
 * (quant_ref.c, quant_k.c) decode them, one element at a time, so that a warp's 32 lanes
 * read 32 neighbouring elements: the scales of a block are the same address for every
 * lane (one broadcast load) and the quants are neighbouring bytes.
 *
 * The arithmetic is the reference's, in its order, with mul_rn / add_rn / sub_rn where the
 * reference rounds between a product and a sum (nvcc would otherwise fuse them into one
 * FMA): the embedding, which is a dequantized row, matches the CPU's bit for bit. The
 * functions are __host__ too: tests/cuda/test_cuda_dequant.cu checks every layout against
 * the reference dequantizers on any machine, with or without a GPU.
 */
#ifndef HERD_CUDA_DEQUANT_CUH
#define HERD_CUDA_DEQUANT_CUH

#include "cuda.cuh"

#include <cuda_fp16.h> /* __half2float */

/* Products and sums rounded one at a time (never fused), on the device and, for
 * tests/cuda/test_cuda_dequant.cu, on the host (compiled there with -ffp-contract=off). */
static __host__ __device__ __forceinline__ float mul_rn(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

static __host__ __device__ __forceinline__ float add_rn(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}

static __host__ __device__ __forceinline__ float sub_rn(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}

static __host__ __device__ __forceinline__ float f16_val(uint16_t h)
{
    return __half2float(__ushort_as_half(h));
}

static __host__ __device__ __forceinline__ float bf16_val(uint16_t h)
{
#ifdef __CUDA_ARCH__
    return __uint_as_float((uint32_t)h << 16);
#else
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

/* An FP8 e4m3 code: (b & 0x7f) << 20 as f32 bits is its magnitude times 2^-120 (subnormals
 * included); quant/fp8.c has the row layout {f32 scale, f32 activation bound, codes}. */
static __host__ __device__ __forceinline__ float f8_e4m3_val(uint8_t b)
{
    const uint32_t u = (uint32_t)(b & 0x7f) << 20;
#ifdef __CUDA_ARCH__
    const float f = __uint_as_float(u) * 0x1p120f;
#else
    float f;
    memcpy(&f, &u, sizeof f);
    f *= 0x1p120f;
#endif
    return (b & 0x80) ? -f : f;
}

/* The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K super-block: j < 4 sit in
 * the low 6 bits of bytes j and j+4; j >= 4 take 4 bits from byte j+4 and their top two
 * bits from the high bits of bytes j-4 (scale) and j (min). */
static __host__ __device__ __forceinline__ void k4_scale_min(int j, const uint8_t *q, int *sc, int *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Element j (0..31) of a 32-weight block whose low nibbles are elements 0..15 and high
 * nibbles 16..31 (Q4_0, Q4_1, and the low 4 bits of Q5_0 / Q5_1). */
static __host__ __device__ __forceinline__ int nibble32(const uint8_t *qs, int j)
{
    return j < 16 ? (qs[j] & 0x0f) : (qs[j - 16] >> 4);
}

/* Element i of a row of type T. */
template <herd_dtype T>
static __host__ __device__ __forceinline__ float dequant_elem(const uint8_t *row, int64_t i)
{
    if constexpr (T == HERD_DTYPE_F32) {
        return ((const float *)row)[i];
    } else if constexpr (T == HERD_DTYPE_F16) {
        return f16_val(((const uint16_t *)row)[i]);
    } else if constexpr (T == HERD_DTYPE_BF16) {
        return bf16_val(((const uint16_t *)row)[i]);
    } else if constexpr (T == HERD_DTYPE_F8_E4M3) {
        /* weight-only here: the generic paths keep f32 activations (the CPU kernels quantize
         * them per token as fbgemm_fp8 does) */
        float sc;
        memcpy(&sc, row, sizeof sc);
        return f8_e4m3_val(row[8 + i]) * sc;
    } else if constexpr (T == HERD_DTYPE_Q8_0) {
        const struct block_q8_0 *b = (const struct block_q8_0 *)row + i / QK8_0;
        return (float)b->qs[i % QK8_0] * f16_val(b->d);
    } else if constexpr (T == HERD_DTYPE_Q4_0) {
        const struct block_q4_0 *b = (const struct block_q4_0 *)row + i / QK4_0;
        return (float)(nibble32(b->qs, (int)(i % QK4_0)) - 8) * f16_val(b->d);
    } else if constexpr (T == HERD_DTYPE_Q4_1) {
        const struct block_q4_1 *b = (const struct block_q4_1 *)row + i / QK4_1;
        const float q = (float)nibble32(b->qs, (int)(i % QK4_1));
        return add_rn(mul_rn(q, f16_val(b->d)), f16_val(b->m));
    } else if constexpr (T == HERD_DTYPE_Q5_0) {
        /* the fifth bit of element j is bit j of qh, a little-endian uint32 */
        const struct block_q5_0 *b = (const struct block_q5_0 *)row + i / QK5_0;
        const int j = (int)(i % QK5_0);
        const int q = nibble32(b->qs, j) | ((b->qh[j / 8] >> (j % 8)) & 1) << 4;
        return (float)(q - 16) * f16_val(b->d);
    } else if constexpr (T == HERD_DTYPE_Q5_1) {
        const struct block_q5_1 *b = (const struct block_q5_1 *)row + i / QK5_1;
        const int j = (int)(i % QK5_1);
        const int q = nibble32(b->qs, j) | ((b->qh[j / 8] >> (j % 8)) & 1) << 4;
        return add_rn(mul_rn((float)q, f16_val(b->d)), f16_val(b->m));
    } else if constexpr (T == HERD_DTYPE_Q4_K || T == HERD_DTYPE_Q5_K) {
        /* Four 64-weight chunks c; weight e is the low (sub-block 2c) or high (2c + 1)
         * nibble of qs[32c + e % 32]; Q5_K's fifth bit of sub-block s is bit s of
         * qh[e % 32]. w = (d * sc) * q - dmin * m. */
        const int e = (int)(i % QK_K);
        const int c = e / 64, l = e % 32, s = e / 32, hi = s & 1;
        const uint8_t *qs, *scales, *qh = NULL;
        uint16_t d16, dmin16;
        if constexpr (T == HERD_DTYPE_Q4_K) {
            const struct block_q4_k *b = (const struct block_q4_k *)row + i / QK_K;
            qs = b->qs;
            scales = b->scales;
            d16 = b->d;
            dmin16 = b->dmin;
        } else {
            const struct block_q5_k *b = (const struct block_q5_k *)row + i / QK_K;
            qs = b->qs;
            qh = b->qh;
            scales = b->scales;
            d16 = b->d;
            dmin16 = b->dmin;
        }
        const uint8_t byte = qs[32 * c + l];
        int q = hi ? byte >> 4 : byte & 0x0f;
        if (qh)
            q += ((qh[l] >> s) & 1) << 4;
        int sc, m;
        k4_scale_min(s, scales, &sc, &m);
        const float d1 = mul_rn(f16_val(d16), (float)sc);
        const float m1 = mul_rn(f16_val(dmin16), (float)m);
        return sub_rn(mul_rn(d1, (float)q), m1);
    } else if constexpr (T == HERD_DTYPE_Q6_K) {
        /* Two halves of 128; in a half, quarter k (32 weights) takes its low 4 bits from
         * ql[64h + 32(k & 1) + l] (low nibble for k < 2, high for k >= 2) and its top 2
         * bits from qh[32h + l] at bit 2k; scale e / 16; w = (d * scale) * (q - 32). */
        const struct block_q6_k *b = (const struct block_q6_k *)row + i / QK_K;
        const int e = (int)(i % QK_K);
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        const uint8_t qlb = b->ql[64 * h + 32 * (k & 1) + l];
        const int lo = k >= 2 ? qlb >> 4 : qlb & 0x0f;
        const int hi2 = (b->qh[32 * h + l] >> (2 * k)) & 3;
        const float ds = mul_rn(f16_val(b->d), (float)b->scales[e / 16]);
        return mul_rn(ds, (float)((lo | hi2 << 4) - 32));
    } else {
        static_assert(T == HERD_DTYPE_F32, "dequant_elem: no layout for this type");
        return 0.0f;
    }
}


/* ---- activation quantization, warp-wide, by the CPU's rules (cpu/ref/matmul_ref.c) */

/* Q8_0 of one block, a lane per element v: d = amax / 127, q = round(v / d) half away from
 * zero; *dh is d through fp16, as the block stores it. */
static __device__ __forceinline__ int q8_0_quant(float v, float *dh)
{
    const float amax = warp_max(fabsf(v));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    *dh = __half2float(__float2half_rn(d));
    return (int)roundf(v * id);
}

/* Q8_K's pivot across the warp: each lane brings its largest magnitude (amax), that
 * element's value (max) and index (idx); every lane leaves with the block's, the first
 * element on ties. */
static __device__ __forceinline__ void q8_k_pivot(float *amax, float *max, int *idx)
{
    for (int o = 16; o > 0; o >>= 1) {
        const float oa = __shfl_xor_sync(0xffffffffu, *amax, o);
        const float om = __shfl_xor_sync(0xffffffffu, *max, o);
        const int oi = __shfl_xor_sync(0xffffffffu, *idx, o);
        if (oa > *amax || (oa == *amax && oi < *idx)) {
            *amax = oa;
            *max = om;
            *idx = oi;
        }
    }
}

#endif /* HERD_CUDA_DEQUANT_CUH */
