/*
 * kernels.h - the CPU kernel interface: a table of function pointers filled at start-up with
 * the scalar references (cpu/ref/) and then overridden per entry by the best variant the CPU
 * and OS support (cpu/avx2, cpu/avx512, cpu/neon). HERD_CPU_ISA=ref|avx2|avx512|amx|neon forces
 * a variant. Kernels take (out, in..., sizes..., ith, nth) or a row range; the thread pool
 * lives outside.
 *
 * Matrix products: y[b][r] = sum_c W[r][c] * x[b][c], W stored row-major as (n_rows rows of
 * n_cols elements) in its block layout. Activations are first converted to the weight
 * type's partner format (f32 for float weights, Q8_0 for Q4_0/Q4_1/Q8_0, Q8_K for K-quants)
 * once per call, then threads split the rows.
 */
#ifndef HERD_KERNELS_H
#define HERD_KERNELS_H

#include "base/base.h"

/* Converts one activation row of n floats into the partner format of a weight type. */
typedef void (*act_convert_fn)(void *dst, const float *x, int64_t n);

/* Rows [r0, r1) of y = W x for n_b activation rows. y is (n_b, ldy) f32; w points at row 0;
 * xa is (n_b) rows of xa_row_bytes each in the partner format. */
typedef void (*matmul_fn)(float *y, int64_t ldy, const void *w, const void *xa,
                          size_t xa_row_bytes, int64_t n_cols, int64_t n_b, int64_t r0,
                          int64_t r1);

/* As act_convert_fn, for a partner format that depends on the weight w (row 0's address):
 * FP8's per-token quantization takes its upper bound from the weight's row header. */
typedef void (*act_convert_w_fn)(void *dst, const float *x, int64_t n, const void *w);

struct matmul_kernel {
    herd_dtype act_type;   /* partner format (HERD_DTYPE_F32 = plain floats) */
    act_convert_fn convert; /* NULL when act_type is F32 or convert_w[type] is set */
    matmul_fn matmul;      /* NULL: weight type not supported */
};

#define HERD_N_DTYPES 128 /* above the largest herd_dtype value (F8_E4M3 = 100) */

struct herd_cpu_kernels {
    const char *isa; /* "ref", "avx2", "avx512", "amx", "neon" */
    struct matmul_kernel mm[HERD_N_DTYPES];
    /* (optional) per weight type, used instead of mm[t].convert: F8_E4M3 */
    act_convert_w_fn convert_w[HERD_N_DTYPES];
    /* out = x * w / sqrt(mean(x^2) + eps) */
    void (*rmsnorm)(float *out, const float *x, const float *w, int64_t n, float eps);
    /* dot of two f32 vectors (attention scores) */
    float (*dot_f32)(const float *a, const float *b, int64_t n);
    /* y += a * x */
    void (*axpy_f32)(float *y, float a, const float *x, int64_t n);
    /* f32 <-> KV cache element rows */
    void (*f32_to_f16_row)(uint16_t *dst, const float *src, int64_t n);
    void (*f16_to_f32_row)(float *dst, const uint16_t *src, int64_t n);
    /* attention over one KV head's cached positions for its nq query heads (a GQA group):
     * n f16 rows of hd elements, stride elements apart; query head h is q + h * hd, its
     * scores s + h * lds, its weights w + h * ldw, its output out + h * hd:
     * s[h][p] = q_h . row p, and out_h = sum over p of w[h][p] * row p */
    void (*dots_f16)(float *s, int64_t lds, const float *q, int nq, const uint16_t *rows,
                     int64_t stride, int64_t n, int64_t hd);
    void (*wsum_f16)(float *out, const float *w, int64_t ldw, int nq, const uint16_t *rows,
                     int64_t stride, int64_t n, int64_t hd);
    /* out[i] = silu(gate[i]) * up[i] */
    void (*swiglu)(float *out, const float *gate, const float *up, int64_t n);
    /* in place, attention weights from scores: s[i] = exp(scale * s[i] - m) / sum, m the
     * largest scale * s[i], sum over i < n (n >= 1) */
    void (*softmax)(float *s, int64_t n, float scale);
};

/* The table for this CPU (or for HERD_CPU_ISA); never NULL. */
const struct herd_cpu_kernels *kernels_get(void);
/* The table of a named variant, or NULL if this build or CPU lacks it (tests use this to
 * check every variant against ref). */
const struct herd_cpu_kernels *kernels_get_isa(const char *isa);

/* herd_cpu_configure's options (isa, bf16_act, no_vbmi, no_r16), for the fill functions:
 * fixed before the tables are built, never changed afterwards. */
const herd_cpu_options *kernels_options(void);

/* Bytes of one activation row of n elements in format t (F32, BF16, Q8_0, Q8_K). */
size_t kernels_act_row_bytes(herd_dtype t, int64_t n);

/* Fill functions, one per variant; each overrides only what it implements. */
void kernels_fill_ref(struct herd_cpu_kernels *k);
void kernels_fill_matmul_ref(struct herd_cpu_kernels *k);
void kernels_fill_matmul_q_avx512(struct herd_cpu_kernels *k);
/* amx: the avx512 table with the quantized prefill products on AMX tiles */
void kernels_fill_matmul_q_amx(struct herd_cpu_kernels *k);
/* amx: BF16 x bf16 activations (bf16_act) prefill on AMX BF16 tiles */
void kernels_fill_matmul_f_amx(struct herd_cpu_kernels *k);
void kernels_fill_amx(struct herd_cpu_kernels *k);
void kernels_fill_matmul_f_avx512(struct herd_cpu_kernels *k);
void kernels_fill_ops_avx2(struct herd_cpu_kernels *k);
/* AVX-512 decode products (cpu/avx512/gemv_q_avx512.c): the kernel for weight type t,
 * row length n and n_b activation rows (1..4; Q8_0 1..8), or NULL when it does not cover
 * the case. */
matmul_fn gemv_q_avx512(herd_dtype t, int64_t n, int64_t n_b);
void gemv_q_avx512_init(void); /* picks the sub-variants (VBMI) once */

/* Shared by the variants (cpu/ref/matmul_ref.c): the activation quantizers, exactly as
 * ggml's quantize_row_q8_0/q8_K references, and the K-quant field decoders. */
void act_quantize_q8_0_ref(void *dst, const float *x, int64_t n);
void act_quantize_q8_k_ref(void *dst, const float *x, int64_t n);
void act_convert_bf16_ref(void *dst, const float *x, int64_t n);
void q4k_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m);
void act_group_sums(herd_dtype act_type, const void *xa, int64_t n, float *da, float *ds);
void kernels_fill_matmul_q_avx2(struct herd_cpu_kernels *k);
/* FP8 e4m3 with row scales (cpu/{ref,avx2,avx512}/matmul_f8_*.c). The partner format is an
 * F8_E4M3 row too: {token scale, bound, n e4m3 codes}, quantized once per call by
 * act_quantize_f8_ref (convert_w) before the threads split the weight rows. */
#define FP8_CHUNK 1024
void act_quantize_f8_ref(void *dst, const float *x, int64_t n, const void *w);
void matmul_f8_e4m3_ref(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                        int64_t n, int64_t n_b, int64_t r0, int64_t r1);
/* The FP8 product's frame, one for every variant (ref/matmul_f8_ref.c): per activation row
 * the token's scale, per chunk of FP8_CHUNK columns its e4m3 values decoded into q (aligned
 * 64), then chunk() adds each weight row's partial sum over the chunk (codes at base + r *
 * rb) to yb[r0..r1), and the row scales end it. Variants differ only in chunk(). Prefill
 * (n_b >= FP8_NB): block() (optional) takes FP8_NB tokens at once, their chunks in q at a
 * stride of FP8_CHUNK floats and their outputs at y + t * ldy, so each weight row is read
 * and decoded once per block (the last n_b % FP8_NB tokens go through chunk()); each
 * (token, row) sum must be exactly chunk()'s, so a token's result does not depend on the
 * batch it came in. */
#define FP8_NB 4
typedef void (*fp8_chunk_fn)(float *yb, const uint8_t *base, size_t rb, const float *q,
                             int64_t nc, int64_t r0, int64_t r1);
typedef void (*fp8_block_fn)(float *y, int64_t ldy, const uint8_t *base, size_t rb,
                             const float *q, int64_t nc, int64_t r0, int64_t r1);
void matmul_f8_frame(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                     int64_t n, int64_t n_b, int64_t r0, int64_t r1, fp8_chunk_fn chunk,
                     fp8_block_fn block);
void kernels_fill_matmul_f8_ref(struct herd_cpu_kernels *k);
void kernels_fill_matmul_f8_avx2(struct herd_cpu_kernels *k);
void kernels_fill_matmul_f8_avx512(struct herd_cpu_kernels *k);
void kernels_fill_ops_avx512(struct herd_cpu_kernels *k);
void kernels_fill_matmul_f_avx2(struct herd_cpu_kernels *k);
void kernels_fill_matmul_neon(struct herd_cpu_kernels *k);
void kernels_fill_quantize_avx2(struct herd_cpu_kernels *k);
void kernels_fill_avx2(struct herd_cpu_kernels *k);
void kernels_fill_avx512(struct herd_cpu_kernels *k);
void kernels_fill_neon(struct herd_cpu_kernels *k);

#endif /* HERD_KERNELS_H */
