/*
 * quant.h - the block layouts of GGUF's quantized types, one definition each, shared by
 * the loader, the quantizer and the kernels. Layouts are byte-identical to ggml's
 * (ggml-common.h): a row of n weights is n / block_size blocks stored back to back.
 *
 * Every layout has a reference dequantizer (exact: what the format means) and a reference
 * quantizer (what herd quantize writes). SIMD kernels never change these meanings.
 */
#ifndef HERD_QUANT_H
#define HERD_QUANT_H

#include "base/base.h"

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK_K 256 /* super-block of the K-quants */
#define K_SCALE_SIZE 12

/* Q4_0: w = d * (q - 8), q in 0..15; low nibbles are elements 0..15, high 16..31. */
struct block_q4_0 {
    uint16_t d; /* fp16 scale */
    uint8_t qs[QK4_0 / 2];
};

/* Q4_1: w = d * q + m. */
struct block_q4_1 {
    uint16_t d, m; /* fp16 */
    uint8_t qs[QK4_1 / 2];
};

/* Q5_0: w = d * (q - 16), q 5 bits: low 4 in qs as Q4_0, bit 4 of element j in bit j of qh
 * (a little-endian uint32). */
struct block_q5_0 {
    uint16_t d; /* fp16 */
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
};

/* Q5_1: w = d * q + m, q 5 bits packed as Q5_0. */
struct block_q5_1 {
    uint16_t d, m; /* fp16 */
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
};

/* Q8_0: w = d * q, q int8. */
struct block_q8_0 {
    uint16_t d; /* fp16 */
    int8_t qs[QK8_0];
};

/* Q4_K: 8 sub-blocks of 32; w = d * sc[j] * q - dmin * m[j]; 6-bit sc/m packed in scales. */
struct block_q4_k {
    uint16_t d, dmin; /* fp16 */
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2];
};

/* Q5_K: as Q4_K with a fifth bit per weight in qh. */
struct block_q5_k {
    uint16_t d, dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};

/* Q6_K: 16 sub-blocks of 16; w = d * scales[j] * (q - 32), q 6 bits (4 in ql, 2 in qh). */
struct block_q6_k {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d; /* fp16 */
};

/* Q8_K: activations for K-quant dot products; d is f32, bsums are sums of 16 qs. */
struct block_q8_k {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
};

_Static_assert(sizeof(struct block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(struct block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(struct block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(struct block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(struct block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(struct block_q4_k) == 144, "q4_k layout");
_Static_assert(sizeof(struct block_q5_k) == 176, "q5_k layout");
_Static_assert(sizeof(struct block_q6_k) == 210, "q6_k layout");
_Static_assert(sizeof(struct block_q8_k) == 292, "q8_k layout");

/* Elements per block and bytes per block of t; 0 for an unknown type. Types herd cannot
 * dequantize (Q2_K, Q3_K, Q8_1) still have sizes, so a file holding them can be opened and
 * the tensor named in the error. */
int64_t dtype_block_size(herd_dtype t);
size_t dtype_block_bytes(herd_dtype t);
/* Whether herd can read (dequantize) tensors of type t. */
int dtype_supported(herd_dtype t);
/* Whether quantize_row implements t. */
int dtype_can_quantize(herd_dtype t);
/* Bytes of a row of n elements; 0 if n is not a whole number of blocks or t is unknown
 * (also declared in format/format.h). */
size_t dtype_row_bytes(herd_dtype t, int64_t n);

/* Reference dequantization of one row of n elements (n a multiple of the block size). */
herd_status dequantize_row(herd_dtype t, float *out, const void *in, int64_t n);
/* Reference quantization of one row; imatrix-free, as llama.cpp's default. A row holding
 * NaN or infinity is refused for the integer block types: HERD_ERR_INVALID (the message
 * names the element) and the output row all zero bytes. F32/F16/BF16 pass them through. */
herd_status quantize_row(herd_dtype t, void *out, const float *in, int64_t n);

/* Per-type reference functions behind dequantize_row / quantize_row (n a multiple of the
 * block size; blocks aligned as their struct). SIMD kernels are tested against these. */
void dequantize_row_q4_0_ref(float *y, const struct block_q4_0 *x, int64_t n);
void dequantize_row_q4_1_ref(float *y, const struct block_q4_1 *x, int64_t n);
void dequantize_row_q5_0_ref(float *y, const struct block_q5_0 *x, int64_t n);
void dequantize_row_q5_1_ref(float *y, const struct block_q5_1 *x, int64_t n);
void dequantize_row_q8_0_ref(float *y, const struct block_q8_0 *x, int64_t n);
void dequantize_row_q4_k_ref(float *y, const struct block_q4_k *x, int64_t n);
void dequantize_row_q5_k_ref(float *y, const struct block_q5_k *x, int64_t n);
void dequantize_row_q6_k_ref(float *y, const struct block_q6_k *x, int64_t n);
void dequantize_row_q8_k_ref(float *y, const struct block_q8_k *x, int64_t n);
void quantize_row_q4_0_ref(struct block_q4_0 *y, const float *x, int64_t n);
void quantize_row_q4_1_ref(struct block_q4_1 *y, const float *x, int64_t n);
void quantize_row_q5_0_ref(struct block_q5_0 *y, const float *x, int64_t n);
void quantize_row_q5_1_ref(struct block_q5_1 *y, const float *x, int64_t n);
void quantize_row_q8_0_ref(struct block_q8_0 *y, const float *x, int64_t n);
void quantize_row_q4_k_ref(struct block_q4_k *y, const float *x, int64_t n);
void quantize_row_q5_k_ref(struct block_q5_k *y, const float *x, int64_t n);
void quantize_row_q6_k_ref(struct block_q6_k *y, const float *x, int64_t n);
/* Q8_K for activations: d = max/-127 style scale, bsums filled (zero block: all zero). */
void quantize_row_q8_k_ref(struct block_q8_k *y, const float *x, int64_t n);

/* ---- FP8 e4m3 with row scales (fp8.c); HERD_DTYPE_F8_E4M3 rows are {f32 scale, f32
 * activation bound, n codes}. DTYPE_F8_E4M3_RAW: bare codes as a checkpoint stores them
 * (readable only once paired with their scales at load). */
#define DTYPE_F8_E4M3_RAW ((herd_dtype)101)
#define FP8_E4M3_MAX 448.0f
float fp8_e4m3_to_f32(uint8_t b);
/* v rounded to the nearest e4m3 value (ties to even), clamped to +-448. */
float fp8_e4m3_round(float v);
uint8_t fp8_e4m3_from_f32(float v);
/* Per-token activation scaling as fbgemm's quantize_fp8_per_row: amax clamped to
 * [1e-12, ub] (ub <= 0: no bound); *inv = 448 / amax; returns the token scale 1 / *inv. */
float fp8_act_scale(const float *x, int64_t n, float ub, float *inv);
void fp8_row_header(const void *row, float *scale, float *ub);
void fp8_pack_row(void *dst, const uint8_t *codes, float scale, float ub, int64_t n);
void dequantize_row_f8_e4m3_ref(float *y, const void *row, int64_t n);

#endif /* HERD_QUANT_H */
