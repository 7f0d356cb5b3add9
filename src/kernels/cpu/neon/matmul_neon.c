/*
 * matmul_neon.c - matrix products on ARM NEON (baseline ARMv8-A: no dotprod extension
 * needed): F32 and F16 weights with f32 activations, Q8_0 and Q4_0 with Q8_0 activations,
 * Q4_K with Q8_K. Same semantics as cpu/ref/matmul_ref.c up to f32 reassociation.
 *
 * Integer dots use vmull_s8 / vmlal_high_s8 (pairs of int8 products stay inside int16:
 * |w| <= 128, |q| <= 127) and a pairwise widening add into int32. Each weight row is read
 * once and dotted with every activation row while it sits in L1.
 * Compile-tested (and run under qemu-aarch64 when present) by tests/cmake/kernels.cmake.
 */
#include "kernels/kernels.h"
#include "quant/quant.h"

#include <arm_neon.h>

/* sum over 32 int8 products, as 4 int32 lanes */
static inline int32x4_t dot32(int8x16_t w0, int8x16_t w1, const int8_t *a)
{
    int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16);
    int16x8_t p0 = vmull_s8(vget_low_s8(w0), vget_low_s8(a0));
    int16x8_t p1 = vmull_s8(vget_low_s8(w1), vget_low_s8(a1));
    p0 = vmlal_high_s8(p0, w0, a0);
    p1 = vmlal_high_s8(p1, w1, a1);
    return vpadalq_s16(vpaddlq_s16(p0), p1);
}

static float row_q8_0(const uint8_t *row, const uint8_t *x, int64_t n)
{
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n / 32; i++) {
        const struct block_q8_0 *w = (const void *)(row + i * 34);
        const struct block_q8_0 *a = (const void *)(x + i * 34);
        int32x4_t s = dot32(vld1q_s8(w->qs), vld1q_s8(w->qs + 16), a->qs);
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), fp16_to_f32(w->d) * fp16_to_f32(a->d));
    }
    return vaddvq_f32(acc);
}

static float row_q4_0(const uint8_t *row, const uint8_t *x, int64_t n)
{
    float32x4_t acc = vdupq_n_f32(0.0f);
    const uint8x16_t lo4 = vdupq_n_u8(0x0f), eight = vdupq_n_u8(8);
    for (int64_t i = 0; i < n / 32; i++) {
        const struct block_q4_0 *w = (const void *)(row + i * 18);
        const struct block_q8_0 *a = (const void *)(x + i * 34);
        uint8x16_t q = vld1q_u8(w->qs);
        int8x16_t w0 = vreinterpretq_s8_u8(vsubq_u8(vandq_u8(q, lo4), eight));
        int8x16_t w1 = vreinterpretq_s8_u8(vsubq_u8(vshrq_n_u8(q, 4), eight));
        int32x4_t s = dot32(w0, w1, a->qs);
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), fp16_to_f32(w->d) * fp16_to_f32(a->d));
    }
    return vaddvq_f32(acc);
}

static float row_q4_k(const uint8_t *row, const uint8_t *x, int64_t n)
{
    const uint8x16_t lo4 = vdupq_n_u8(0x0f);
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const struct block_q4_k *w = (const void *)(row + i * sizeof *w);
        const struct block_q8_k *a = (const void *)(x + i * sizeof *a);
        int32_t sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            q4k_scale_min(j, w->scales, &sc, &m);
            const uint8_t *q = w->qs + 32 * (j / 2);
            uint8x16_t q0 = vld1q_u8(q), q1 = vld1q_u8(q + 16);
            if (j & 1) {
                q0 = vshrq_n_u8(q0, 4);
                q1 = vshrq_n_u8(q1, 4);
            } else {
                q0 = vandq_u8(q0, lo4);
                q1 = vandq_u8(q1, lo4);
            }
            int32x4_t d = dot32(vreinterpretq_s8_u8(q0), vreinterpretq_s8_u8(q1),
                                a->qs + 32 * j);
            sumi += sc * vaddvq_s32(d);
            summ += m * (a->bsums[2 * j] + a->bsums[2 * j + 1]);
        }
        s += fp16_to_f32(w->d) * a->d * (float)sumi - fp16_to_f32(w->dmin) * a->d * (float)summ;
    }
    return s;
}

static float row_f32(const uint8_t *row, const uint8_t *x, int64_t n)
{
    const float *w = (const float *)row, *a = (const float *)x;
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0;
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        s0 = vfmaq_f32(s0, vld1q_f32(w + k), vld1q_f32(a + k));
        s1 = vfmaq_f32(s1, vld1q_f32(w + k + 4), vld1q_f32(a + k + 4));
    }
    float s = vaddvq_f32(vaddq_f32(s0, s1));
    for (; k < n; k++)
        s += w[k] * a[k];
    return s;
}

static float row_f16(const uint8_t *row, const uint8_t *x, int64_t n)
{
    const uint16_t *w = (const uint16_t *)row;
    const float *a = (const float *)x;
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0;
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(w + k));
        s0 = vfmaq_f32(s0, vcvt_f32_f16(vget_low_f16(h)), vld1q_f32(a + k));
        s1 = vfmaq_f32(s1, vcvt_high_f32_f16(h), vld1q_f32(a + k + 4));
    }
    float s = vaddvq_f32(vaddq_f32(s0, s1));
    for (; k < n; k++)
        s += fp16_to_f32(w[k]) * a[k];
    return s;
}

typedef float (*row_fn)(const uint8_t *row, const uint8_t *x, int64_t n);

/* Each weight row once, against every activation row. */
static void matmul_rows(float *y, int64_t ldy, const void *w, size_t rb, const void *xa,
                        size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1, row_fn f)
{
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * rb;
        for (int64_t b = 0; b < n_b; b++)
            y[b * ldy + r] = f(row, (const uint8_t *)xa + (size_t)b * xrb, n);
    }
}

static void matmul_f32_neon(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                            int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_rows(y, ldy, w, (size_t)n * 4, xa, xrb, n, n_b, r0, r1, row_f32);
}

static void matmul_f16_neon(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                            int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_rows(y, ldy, w, (size_t)n * 2, xa, xrb, n, n_b, r0, r1, row_f16);
}

static void matmul_q8_0_q8_0_neon(float *y, int64_t ldy, const void *w, const void *xa,
                                  size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_rows(y, ldy, w, (size_t)(n / 32) * 34, xa, xrb, n, n_b, r0, r1, row_q8_0);
}

static void matmul_q4_0_q8_0_neon(float *y, int64_t ldy, const void *w, const void *xa,
                                  size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_rows(y, ldy, w, (size_t)(n / 32) * 18, xa, xrb, n, n_b, r0, r1, row_q4_0);
}

static void matmul_q4k_q8k_neon(float *y, int64_t ldy, const void *w, const void *xa,
                                size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_rows(y, ldy, w, (size_t)(n / QK_K) * sizeof(struct block_q4_k), xa, xrb, n, n_b,
                r0, r1, row_q4_k);
}

void kernels_fill_matmul_neon(struct herd_cpu_kernels *k)
{
    /* act_type and convert stay as the reference filled them */
    k->mm[HERD_DTYPE_F32].matmul = matmul_f32_neon;
    k->mm[HERD_DTYPE_F16].matmul = matmul_f16_neon;
    k->mm[HERD_DTYPE_Q8_0].matmul = matmul_q8_0_q8_0_neon;
    k->mm[HERD_DTYPE_Q4_0].matmul = matmul_q4_0_q8_0_neon;
    k->mm[HERD_DTYPE_Q4_K].matmul = matmul_q4k_q8k_neon;
}
