/*
 * ops_avx2.c - the vector kernels with AVX2 + FMA + F16C: RMSNorm, dot/axpy on f32 and on
 * f16 KV rows (attention), f16 row conversions (round to nearest even, as fp.c), SwiGLU
 * and the attention softmax with a polynomial exp. The AVX-512 table keeps these: they run
 * over rows of a few thousand elements that sit in L1/L2, where 256-bit loads already keep
 * up.
 * Tails (n % 8) use masked loads/stores, so no element is read outside the rows.
 */
#include "kernels/kernels.h"

#include <immintrin.h>
#include <math.h> /* sqrtf */

static inline __m256i tail_mask(int64_t left) /* first min(left, 8) lanes */
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left < 8 ? left : 8)), idx);
}

static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 8 f16 values at p as floats; tails read through a zero-padded copy. */
static inline __m256 load_f16(const uint16_t *p, int64_t left)
{
    if (left >= 8)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    uint16_t tmp[8] = {0};
    memcpy(tmp, p, (size_t)left * 2);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)tmp));
}

static float dot_f32_avx2(const float *a, const float *b, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i < n; i += 8) {
        __m256i m = tail_mask(n - i);
        s0 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s0);
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

static void rmsnorm_avx2(float *out, const float *x, const float *w, int64_t n, float eps)
{
    const float ss = dot_f32_avx2(x, x, n);
    const __m256 scale = _mm256_set1_ps(1.0f / sqrtf(ss / (float)n + eps));
    for (int64_t i = 0; i < n; i += 8) {
        __m256i m = tail_mask(n - i);
        __m256 v = _mm256_mul_ps(_mm256_mul_ps(_mm256_maskload_ps(x + i, m), scale),
                                 _mm256_maskload_ps(w + i, m));
        _mm256_maskstore_ps(out + i, m, v);
    }
}

static void axpy_f32_avx2(float *y, float a, const float *x, int64_t n)
{
    const __m256 av = _mm256_set1_ps(a);
    for (int64_t i = 0; i < n; i += 8) {
        __m256i m = tail_mask(n - i);
        __m256 v = _mm256_fmadd_ps(av, _mm256_maskload_ps(x + i, m), _mm256_maskload_ps(y + i, m));
        _mm256_maskstore_ps(y + i, m, v);
    }
}

static void f32_to_f16_row_avx2(uint16_t *dst, const float *src, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        dst[i] = f32_to_fp16(src[i]);
}

static void f16_to_f32_row_avx2(float *dst, const uint16_t *src, int64_t n)
{
    for (int64_t i = 0; i < n; i += 8)
        _mm256_maskstore_ps(dst + i, tail_mask(n - i), load_f16(src + i, n - i));
}

static float dot_f32_f16_avx2(const float *a, const uint16_t *b, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load_f16(b + i, 8), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), load_f16(b + i + 8, 8), s1);
    }
    for (; i < n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, tail_mask(n - i)), load_f16(b + i, n - i),
                             s0);
    return hsum(_mm256_add_ps(s0, s1));
}

static void axpy_f16_avx2(float *y, float a, const uint16_t *x, int64_t n)
{
    const __m256 av = _mm256_set1_ps(a);
    for (int64_t i = 0; i < n; i += 8) {
        __m256i m = tail_mask(n - i);
        __m256 v = _mm256_fmadd_ps(av, load_f16(x + i, n - i), _mm256_maskload_ps(y + i, m));
        _mm256_maskstore_ps(y + i, m, v);
    }
}

/* Four positions at a time so each load of q serves four rows; per row the same two
 * chains and final sum as dot_f32_f16_avx2, so the scores are bit for bit the same. */
static void dots_f16_one(float *s, const float *q, const uint16_t *rows, int64_t stride,
                         int64_t n, int64_t hd)
{
    int64_t p = 0;
    if (hd % 16 == 0)
        for (; p + 4 <= n; p += 4) {
            const uint16_t *r = rows + p * stride;
            __m256 a[4][2];
            for (int j = 0; j < 4; j++)
                a[j][0] = a[j][1] = _mm256_setzero_ps();
            for (int64_t i = 0; i < hd; i += 16) {
                __m256 q0 = _mm256_loadu_ps(q + i), q1 = _mm256_loadu_ps(q + i + 8);
                for (int j = 0; j < 4; j++) {
                    a[j][0] = _mm256_fmadd_ps(q0, load_f16(r + j * stride + i, 8), a[j][0]);
                    a[j][1] = _mm256_fmadd_ps(q1, load_f16(r + j * stride + i + 8, 8), a[j][1]);
                }
            }
            for (int j = 0; j < 4; j++)
                s[p + j] = hsum(_mm256_add_ps(a[j][0], a[j][1]));
        }
    for (; p < n; p++)
        s[p] = dot_f32_f16_avx2(q, rows + p * stride, hd);
}

/* 64 elements of out at a time in eight registers across all positions (axpy_f16 per
 * position loaded and stored out once per row); the same fused multiply-adds in the same
 * order as axpy_f16_avx2 from a zeroed out, so the result is bit for bit the same. */
static void wsum_f16_one(float *out, const float *w, const uint16_t *rows, int64_t stride,
                         int64_t n, int64_t hd)
{
    int64_t d = 0;
    for (; d + 64 <= hd; d += 64) {
        __m256 a[8];
        for (int i = 0; i < 8; i++)
            a[i] = _mm256_setzero_ps();
        for (int64_t p = 0; p < n; p++) {
            const __m256 wp = _mm256_broadcast_ss(w + p);
            const uint16_t *r = rows + p * stride + d;
            for (int i = 0; i < 8; i++)
                a[i] = _mm256_fmadd_ps(wp, load_f16(r + 8 * i, 8), a[i]);
        }
        for (int i = 0; i < 8; i++)
            _mm256_storeu_ps(out + d + 8 * i, a[i]);
    }
    if (d < hd) {
        memset(out + d, 0, sizeof(float) * (size_t)(hd - d));
        for (int64_t p = 0; p < n; p++)
            axpy_f16_avx2(out + d, w[p], rows + p * stride + d, hd - d);
    }
}

/* A GQA group: each query head on its own (the rows are re-read per head, from L1/L2). */
static void dots_f16_avx2(float *s, int64_t lds, const float *q, int nq, const uint16_t *rows,
                          int64_t stride, int64_t n, int64_t hd)
{
    for (int h = 0; h < nq; h++)
        dots_f16_one(s + h * lds, q + h * hd, rows, stride, n, hd);
}

static void wsum_f16_avx2(float *out, const float *w, int64_t ldw, int nq, const uint16_t *rows,
                          int64_t stride, int64_t n, int64_t hd)
{
    for (int h = 0; h < nq; h++)
        wsum_f16_one(out + h * hd, w + h * ldw, rows, stride, n, hd);
}

/* exp(x) for x in [-87, 88]: x = k ln2 + r, |r| <= ln2/2, exp(r) by a degree-6 polynomial
 * (Taylor coefficients; relative error < 2e-7 on the interval), times 2^k built in the
 * exponent bits. */
static inline __m256 exp_avx2(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    /* ln2 split in a high part exact in f32 and a low correction */
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693145752f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(1.42860677e-6f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static void swiglu_avx2(float *out, const float *gate, const float *up, int64_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 8) {
        __m256i m = tail_mask(n - i);
        __m256 g = _mm256_maskload_ps(gate + i, m);
        __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), g))));
        _mm256_maskstore_ps(out + i, m, _mm256_mul_ps(s, _mm256_maskload_ps(up + i, m)));
    }
}

/* exp_avx2 over 8 scores at a time; the sum is 8 lane sums (lane l: positions l, l + 8, ...
 * in order), then hsum's tree. A prefill's attention computes one exp per (token, head,
 * earlier position): with libm's expf this loop was ~10 ns a score, the largest part of a
 * 512-token prefill's attention. */
static void softmax_avx2(float *s, int64_t n, float scale)
{
    const __m256 vs = _mm256_set1_ps(scale), ninf = _mm256_set1_ps(-INFINITY);
    __m256 mx = ninf;
    for (int64_t i = 0; i < n; i += 8) {
        __m256i m = tail_mask(n - i);
        __m256 v = _mm256_mul_ps(_mm256_maskload_ps(s + i, m), vs);
        _mm256_maskstore_ps(s + i, m, v);
        mx = _mm256_max_ps(mx, _mm256_blendv_ps(ninf, v, _mm256_castsi256_ps(m)));
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const __m256 vmx = _mm256_set1_ps(_mm_cvtss_f32(h));
    __m256 sum = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8) {
        __m256i m = tail_mask(n - i);
        __m256 e = _mm256_and_ps(exp_avx2(_mm256_sub_ps(_mm256_maskload_ps(s + i, m), vmx)),
                                 _mm256_castsi256_ps(m));
        _mm256_maskstore_ps(s + i, m, e);
        sum = _mm256_add_ps(sum, e);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / hsum(sum));
    for (int64_t i = 0; i < n; i += 8) {
        __m256i m = tail_mask(n - i);
        _mm256_maskstore_ps(s + i, m, _mm256_mul_ps(_mm256_maskload_ps(s + i, m), inv));
    }
}

void kernels_fill_ops_avx2(struct herd_cpu_kernels *k)
{
    k->rmsnorm = rmsnorm_avx2;
    k->dot_f32 = dot_f32_avx2;
    k->axpy_f32 = axpy_f32_avx2;
    k->f32_to_f16_row = f32_to_f16_row_avx2;
    k->f16_to_f32_row = f16_to_f32_row_avx2;
    k->dots_f16 = dots_f16_avx2;
    k->wsum_f16 = wsum_f16_avx2;
    k->swiglu = swiglu_avx2;
    k->softmax = softmax_avx2;
}
