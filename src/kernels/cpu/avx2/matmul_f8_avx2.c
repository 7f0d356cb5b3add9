/*
 * matmul_f8_avx2.c - the FP8 e4m3 product with AVX2 + FMA: as matmul_f8_avx512.c with 8
 * lanes (codes zero-extended 8 at a time), two weight rows per pass. Only the summation
 * order differs from the reference (matmul_f8_ref.c).
 */
#include "kernels/kernels.h"
#include "quant/quant.h"

#include <immintrin.h>

static inline __m256 decode8(const uint8_t *p)
{
    __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
    __m256i mag = _mm256_slli_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x7f)), 20);
    __m256i sign = _mm256_slli_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x80)), 24);
    __m256 f = _mm256_mul_ps(_mm256_castsi256_ps(mag), _mm256_set1_ps(0x1p120f));
    return _mm256_castsi256_ps(_mm256_or_si256(_mm256_castps_si256(f), sign));
}

static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static void matmul_f8_e4m3_avx2(float *y, int64_t ldy, const void *w, const void *xa,
                                size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    const size_t rb = (size_t)n + 8;
    float ws0, ub;
    fp8_row_header(w, &ws0, &ub);
    float q[FP8_CHUNK] __attribute__((aligned(32)));
    for (int64_t b = 0; b < n_b; b++) {
        const float *x = (const float *)((const uint8_t *)xa + (size_t)b * xrb);
        float inv, xs = fp8_act_scale(x, n, ub, &inv);
        float *yb = y + b * ldy;
        for (int64_t r = r0; r < r1; r++)
            yb[r] = 0.0f;
        for (int64_t c0 = 0; c0 < n; c0 += FP8_CHUNK) {
            int64_t nc = n - c0 < FP8_CHUNK ? n - c0 : FP8_CHUNK;
            for (int64_t c = 0; c < nc; c++)
                q[c] = fp8_e4m3_round(x[c0 + c] * inv);
            const uint8_t *base = (const uint8_t *)w + 8 + c0;
            for (int64_t r = r0; r < r1; r++) {
                const uint8_t *p = base + (size_t)r * rb;
                __m256 a = _mm256_setzero_ps();
                int64_t c = 0;
                for (; c + 8 <= nc; c += 8)
                    a = _mm256_fmadd_ps(decode8(p + c), _mm256_load_ps(q + c), a);
                float s = hsum8(a);
                for (; c < nc; c++)
                    s += fp8_e4m3_to_f32(p[c]) * q[c];
                yb[r] += s;
            }
        }
        for (int64_t r = r0; r < r1; r++) {
            float ws, ubr;
            fp8_row_header((const uint8_t *)w + (size_t)r * rb, &ws, &ubr);
            yb[r] = yb[r] * xs * ws;
        }
    }
}

void kernels_fill_matmul_f8_avx2(struct herd_cpu_kernels *k)
{
    k->mm[HERD_DTYPE_F8_E4M3] = (struct matmul_kernel){HERD_DTYPE_F32, NULL, matmul_f8_e4m3_avx2};
}
