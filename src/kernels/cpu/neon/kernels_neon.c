/*
 * kernels_neon.c - ARM NEON (aarch64) variants: f32 dot, axpy and RMSNorm here; matrix
 * products for F32/F16/Q8_0/Q4_0/Q4_K in matmul_neon.c (other weight types keep the
 * scalar reference). Compile-tested on x86-64 hosts with
 * the aarch64 cross compiler (tests/cmake/kernels.cmake).
 */
#include "kernels/kernels.h"

#include <arm_neon.h>
#include <math.h> /* sqrtf */

static float dot_f32_neon(const float *a, const float *b, int64_t n)
{
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(s0, s1));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static void axpy_f32_neon(float *y, float a, const float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
    for (; i < n; i++)
        y[i] += a * x[i];
}

static void rmsnorm_neon(float *out, const float *x, const float *w, int64_t n, float eps)
{
    const float scale = 1.0f / sqrtf(dot_f32_neon(x, x, n) / (float)n + eps);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(out + i, vmulq_f32(vmulq_n_f32(vld1q_f32(x + i), scale), vld1q_f32(w + i)));
    for (; i < n; i++)
        out[i] = x[i] * scale * w[i];
}

void kernels_fill_neon(struct herd_cpu_kernels *k)
{
    k->dot_f32 = dot_f32_neon;
    k->axpy_f32 = axpy_f32_neon;
    k->rmsnorm = rmsnorm_neon;
    kernels_fill_matmul_neon(k);
}
