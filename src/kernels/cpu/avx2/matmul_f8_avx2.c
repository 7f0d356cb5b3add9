/*
 * matmul_f8_avx2.c - the FP8 e4m3 product with AVX2 + FMA: as matmul_f8_avx512.c with 8
 * lanes (codes zero-extended 8 at a time), one weight row per pass for decode; prefill
 * takes FP8_NB (4) tokens times two rows per pass (block_avx2: each row's codes decoded
 * once for all four), each token's sums exactly as alone. Only the summation order
 * differs from the reference (matmul_f8_ref.c).
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

/* The end of a block: each (token, row) sum reduced by hsum8 as chunk_avx2 does, then the
 * scalar tail from column c. acc[t * nr + i]: token t, row i. */
static void block_finish(float *y, int64_t ldy, const __m256 *acc, int nr, const uint8_t *p,
                         size_t rb, const float *q, int64_t c, int64_t nc, int64_t r)
{
    for (int t = 0; t < FP8_NB; t++)
        for (int i = 0; i < nr; i++) {
            float s = hsum8(acc[t * nr + i]);
            for (int64_t k = c; k < nc; k++)
                s += fp8_e4m3_to_f32(p[(size_t)i * rb + k]) * q[t * FP8_CHUNK + k];
            y[t * ldy + r + i] += s;
        }
}

/* Rows r, r + 1 for four tokens: each row's 8 codes decoded once for all four, each (token,
 * row) the same fmadd chain as chunk_avx2's. */
static void block_rows2(float *y, int64_t ldy, const uint8_t *p, size_t rb, const float *q,
                        int64_t nc, int64_t r)
{
    const uint8_t *p1 = p + rb;
    __m256 a[8];
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00;
    __m256 a30 = a00, a31 = a00;
    int64_t c = 0;
    for (; c + 8 <= nc; c += 8) {
        __m256 w0 = decode8(p + c), w1 = decode8(p1 + c);
        __m256 x = _mm256_load_ps(q + c);
        a00 = _mm256_fmadd_ps(w0, x, a00);
        a01 = _mm256_fmadd_ps(w1, x, a01);
        x = _mm256_load_ps(q + FP8_CHUNK + c);
        a10 = _mm256_fmadd_ps(w0, x, a10);
        a11 = _mm256_fmadd_ps(w1, x, a11);
        x = _mm256_load_ps(q + 2 * FP8_CHUNK + c);
        a20 = _mm256_fmadd_ps(w0, x, a20);
        a21 = _mm256_fmadd_ps(w1, x, a21);
        x = _mm256_load_ps(q + 3 * FP8_CHUNK + c);
        a30 = _mm256_fmadd_ps(w0, x, a30);
        a31 = _mm256_fmadd_ps(w1, x, a31);
    }
    a[0] = a00, a[1] = a01, a[2] = a10, a[3] = a11, a[4] = a20, a[5] = a21, a[6] = a30;
    a[7] = a31;
    block_finish(y, ldy, a, 2, p, rb, q, c, nc, r);
}

/* One row for four tokens. */
static void block_row1(float *y, int64_t ldy, const uint8_t *p, size_t rb, const float *q,
                       int64_t nc, int64_t r)
{
    __m256 a[4];
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t c = 0;
    for (; c + 8 <= nc; c += 8) {
        __m256 w0 = decode8(p + c);
        a0 = _mm256_fmadd_ps(w0, _mm256_load_ps(q + c), a0);
        a1 = _mm256_fmadd_ps(w0, _mm256_load_ps(q + FP8_CHUNK + c), a1);
        a2 = _mm256_fmadd_ps(w0, _mm256_load_ps(q + 2 * FP8_CHUNK + c), a2);
        a3 = _mm256_fmadd_ps(w0, _mm256_load_ps(q + 3 * FP8_CHUNK + c), a3);
    }
    a[0] = a0, a[1] = a1, a[2] = a2, a[3] = a3;
    block_finish(y, ldy, a, 1, p, rb, q, c, nc, r);
}

static void block_avx2(float *y, int64_t ldy, const uint8_t *base, size_t rb, const float *q,
                       int64_t nc, int64_t r0, int64_t r1)
{
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2)
        block_rows2(y, ldy, base + (size_t)r * rb, rb, q, nc, r);
    for (; r < r1; r++)
        block_row1(y, ldy, base + (size_t)r * rb, rb, q, nc, r);
}

static void matmul_f8_e4m3_avx2(float *y, int64_t ldy, const void *w, const void *xa,
                                size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    /* decode8 multiplies e4m3 subnormals, f32 subnormals after the shift, by 2^120: pool
     * jobs run with denormals-are-zero (base/threads.c), which would read them as 0 */
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr & ~0x40u);
    matmul_f8_frame(y, ldy, w, xa, xrb, n, n_b, r0, r1, chunk_avx2, block_avx2);
    _mm_setcsr(csr);
}

void kernels_fill_matmul_f8_avx2(struct herd_cpu_kernels *k)
{
    k->mm[HERD_DTYPE_F8_E4M3] = (struct matmul_kernel){HERD_DTYPE_F8_E4M3, NULL,
                                                        matmul_f8_e4m3_avx2};
    k->convert_w[HERD_DTYPE_F8_E4M3] = act_quantize_f8_ref;
}
