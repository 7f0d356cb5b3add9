/*
 * ops_ref.c - scalar references of the vector kernels: RMSNorm, dot and axpy (attention),
 * f16 KV-row conversions, SwiGLU and the attention softmax. Plain left-to-right sums and
 * libm's expf: SIMD variants are tested against these and differ by reassociation rounding
 * and, for SwiGLU and the softmax, by their polynomial exp's rounding.
 */
#include "kernels/kernels.h"

#include <math.h> /* sqrtf, expf */

static void rmsnorm_ref(float *out, const float *x, const float *w, int64_t n, float eps)
{
    float ss = 0.0f;
    for (int64_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    const float scale = 1.0f / sqrtf(ss / (float)n + eps);
    for (int64_t i = 0; i < n; i++)
        out[i] = x[i] * scale * w[i];
}

static float dot_f32_ref(const float *a, const float *b, int64_t n)
{
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static void axpy_f32_ref(float *y, float a, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

static void f32_to_f16_row_ref(uint16_t *dst, const float *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = f32_to_fp16(src[i]);
}

static void f16_to_f32_row_ref(float *dst, const uint16_t *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = fp16_to_f32(src[i]);
}

static float dot_f32_f16_ref(const float *a, const uint16_t *b, int64_t n)
{
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * fp16_to_f32(b[i]);
    return s;
}

static void axpy_f16_ref(float *y, float a, const uint16_t *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += a * fp16_to_f32(x[i]);
}

static void dots_f16_ref(float *s, int64_t lds, const float *q, int nq, const uint16_t *rows,
                         int64_t stride, int64_t n, int64_t hd)
{
    for (int h = 0; h < nq; h++)
        for (int64_t p = 0; p < n; p++)
            s[h * lds + p] = dot_f32_f16_ref(q + h * hd, rows + p * stride, hd);
}

static void wsum_f16_ref(float *out, const float *w, int64_t ldw, int nq, const uint16_t *rows,
                         int64_t stride, int64_t n, int64_t hd)
{
    for (int h = 0; h < nq; h++) {
        memset(out + h * hd, 0, sizeof(float) * (size_t)hd);
        for (int64_t p = 0; p < n; p++)
            axpy_f16_ref(out + h * hd, w[h * ldw + p], rows + p * stride, hd);
    }
}

/* silu(g) = g / (1 + exp(-g)); exp overflows to inf for very negative g, giving -0. */
static void swiglu_ref(float *out, const float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* libm's expf and one left-to-right sum. */
static void softmax_ref(float *s, int64_t n, float scale)
{
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        s[i] *= scale;
        if (s[i] > mx)
            mx = s[i];
    }
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        s[i] = expf(s[i] - mx);
        sum += s[i];
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; i++)
        s[i] *= inv;
}

void kernels_fill_ref(struct herd_cpu_kernels *k)
{
    k->isa = "ref";
    kernels_fill_matmul_ref(k);
    kernels_fill_matmul_f8_ref(k);
    k->rmsnorm = rmsnorm_ref;
    k->dot_f32 = dot_f32_ref;
    k->axpy_f32 = axpy_f32_ref;
    k->f32_to_f16_row = f32_to_f16_row_ref;
    k->f16_to_f32_row = f16_to_f32_row_ref;
    k->dots_f16 = dots_f16_ref;
    k->wsum_f16 = wsum_f16_ref;
    k->swiglu = swiglu_ref;
    k->softmax = softmax_ref;
}
