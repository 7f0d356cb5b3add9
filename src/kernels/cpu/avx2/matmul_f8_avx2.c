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

static void chunk_avx2(float *yb, const uint8_t *base, size_t rb, const float *q, int64_t nc,
                       int64_t r0, int64_t r1)
{
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

static void matmul_f8_e4m3_avx2(float *y, int64_t ldy, const void *w, const void *xa,
                                size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    /* decode8 multiplies e4m3 subnormals, f32 subnormals after the shift, by 2^120: pool
     * jobs run with denormals-are-zero (base/threads.c), which would read them as 0 */
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr & ~0x40u);
    matmul_f8_frame(y, ldy, w, xa, xrb, n, n_b, r0, r1, chunk_avx2);
    _mm_setcsr(csr);
}

void kernels_fill_matmul_f8_avx2(struct herd_cpu_kernels *k)
{
    k->mm[HERD_DTYPE_F8_E4M3] = (struct matmul_kernel){HERD_DTYPE_F8_E4M3, NULL,
                                                        matmul_f8_e4m3_avx2};
    k->convert_w[HERD_DTYPE_F8_E4M3] = act_quantize_f8_ref;
}
