/*
 * matmul_f_avx2.c - matrix products for float weights (F32, F16, BF16) with f32 activations,
 * AVX2 + FMA + F16C. Products are exact f32 multiplies summed in f32, as the reference.
 *
 * Same loop order as the quantized AVX2 products: chunks of K (a whole row below 16
 * activation rows, 512 weights for prefill so each pass's activation chunks stay in L2), then pairs of weight
 * rows, then tiles of up to 4 activation rows: a 2 x 4 register tile where each converted
 * weight vector feeds 4 FMAs and each activation load feeds 2. Decode thus reads every
 * weight row once for all its activation rows.
 */
#include "kernels/kernels.h"

#include <immintrin.h>

enum ftype { FT_F32, FT_F16, FT_BF16 };

static inline size_t elem_bytes(enum ftype t)
{
    return t == FT_F32 ? 4 : 2;
}

/* 8 weights at element k of a row as floats; left < 8 reads through a zeroed copy. */
static inline __attribute__((always_inline)) __m256 load_w(enum ftype t, const uint8_t *row,
                                                           int64_t k, int64_t left)
{
    const uint8_t *p = row + (size_t)k * elem_bytes(t);
    uint8_t tmp[32];
    if (left < 8) {
        memset(tmp, 0, sizeof tmp);
        memcpy(tmp, p, (size_t)left * elem_bytes(t));
        p = tmp;
    }
    if (t == FT_F32)
        return _mm256_loadu_ps((const float *)p);
    __m128i h = _mm_loadu_si128((const void *)p);
    if (t == FT_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static inline __m256 load_x(const float *x, int64_t left)
{
    if (left >= 8)
        return _mm256_loadu_ps(x);
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_maskload_ps(x, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)left), idx));
}

static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#define NBT 4
#define KC_PREFILL 512
/* Below this many activation rows (decode, server slots, a speculative verification) K is
 * one chunk, as for one row, so each row's sums are formed the same way in any such batch
 * (matmul_q_avx2.c's NB_DECODE; tests/unit/test_kernels.c check_invariance). */
#define NB_DECODE 16

/* y[b][r + i] (+)= row i . x[b] over elements [k0, k0 + kn), i < nr, b < nb. */
static inline __attribute__((always_inline)) void
tile(enum ftype t, int nr, int nb, const uint8_t *row, size_t rb, const uint8_t *xa, size_t xrb,
     int64_t k0, int64_t kn, float *y, int64_t ldy, int first)
{
    __m256 acc[2][NBT];
    for (int i = 0; i < nr; i++)
        for (int b = 0; b < nb; b++)
            acc[i][b] = _mm256_setzero_ps();
    for (int64_t k = k0; k < k0 + kn; k += 8) {
        /* a constant 8 in the main loop lets the tail copies fold away */
        const int64_t left = k + 8 <= k0 + kn ? 8 : k0 + kn - k;
        __m256 w[2];
#pragma GCC unroll 2
        for (int i = 0; i < nr; i++)
            w[i] = load_w(t, row + i * rb, k, left);
#pragma GCC unroll 4
        for (int b = 0; b < nb; b++) {
            __m256 xv = load_x((const float *)(xa + (size_t)b * xrb) + k, left);
#pragma GCC unroll 2
            for (int i = 0; i < nr; i++)
                acc[i][b] = _mm256_fmadd_ps(w[i], xv, acc[i][b]);
        }
    }
    for (int i = 0; i < nr; i++)
        for (int b = 0; b < nb; b++) {
            float v = hsum(acc[i][b]);
            y[b * ldy + i] = first ? v : y[b * ldy + i] + v;
        }
}

static inline __attribute__((always_inline)) void
matmul_f(enum ftype t, float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
         int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    const size_t rb = (size_t)n * elem_bytes(t);
    const int64_t kc = n_b < NB_DECODE ? n : KC_PREFILL;
    for (int64_t k0 = 0; k0 < n; k0 += kc) {
        const int64_t kn = n - k0 < kc ? n - k0 : kc;
        for (int64_t r = r0; r < r1; r += 2) {
            const uint8_t *row = (const uint8_t *)w + (size_t)r * rb;
            const int nr = r + 1 < r1 ? 2 : 1;
            for (int64_t b = 0; b < n_b; b += NBT) {
                const uint8_t *x = (const uint8_t *)xa + (size_t)b * xrb;
                float *yb = y + b * ldy + r;
                const int nb = n_b - b < NBT ? (int)(n_b - b) : NBT;
                if (nr == 2 && nb == NBT)
                    tile(t, 2, NBT, row, rb, x, xrb, k0, kn, yb, ldy, k0 == 0);
                else if (nr == 2 && nb == 1)
                    tile(t, 2, 1, row, rb, x, xrb, k0, kn, yb, ldy, k0 == 0);
                else if (nr == 2 && nb == 2)
                    tile(t, 2, 2, row, rb, x, xrb, k0, kn, yb, ldy, k0 == 0);
                else if (nr == 2)
                    tile(t, 2, 3, row, rb, x, xrb, k0, kn, yb, ldy, k0 == 0);
                else
                    tile(t, 1, nb, row, rb, x, xrb, k0, kn, yb, ldy, k0 == 0);
            }
        }
    }
}

static void matmul_f32_avx2(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                            int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_f(FT_F32, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

static void matmul_f16_avx2(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                            int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_f(FT_F16, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

static void matmul_bf16_avx2(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                             int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_f(FT_BF16, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

void kernels_fill_matmul_f_avx2(struct herd_cpu_kernels *k)
{
    k->mm[HERD_DTYPE_F32].matmul = matmul_f32_avx2;
    k->mm[HERD_DTYPE_F16].matmul = matmul_f16_avx2;
    k->mm[HERD_DTYPE_BF16].matmul = matmul_bf16_avx2;
}
