/*
 * ops_avx512.c - attention over an f16 KV cache for a whole GQA group at once: the query
 * heads that share a KV head (4 in Llama 3 8B/70B/1B) read each cached row once, converted
 * once, instead of once per head. A prefill's attention re-reads every earlier row for
 * every token, so the conversions and loads of those rows were most of its cost.
 *
 * Bits: per (head, position) a score is the avx2 kernel's two 8-wide chains (here the two
 * halves of one 16-wide accumulator) added and reduced in its order; an output element is
 * the same fused multiply-adds over the positions in order from zero. So the scores and
 * outputs equal the avx2 (and hence every earlier) ones bit for bit; test_kernels checks.
 */
#include "kernels/kernels.h"

#include <immintrin.h>

static void (*dots_fallback)(float *, int64_t, const float *, int, const uint16_t *, int64_t,
                             int64_t, int64_t);
static void (*wsum_fallback)(float *, const float *, int64_t, int, const uint16_t *, int64_t,
                             int64_t, int64_t);

/* the avx2 kernel's final sum of its two chains */
static inline float chains_sum(__m512 a)
{
    __m256 v = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m512 row16(const uint16_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const void *)p));
}

/* Scores of NH heads (from q) against NP rows (from r); NH, NP <= 4 known at compile time. */
static inline __attribute__((always_inline)) void dots_block(float *s, int64_t lds,
                                                              const float *q, const uint16_t *r,
                                                              int64_t stride, int64_t hd, int NH,
                                                              int NP)
{
    __m512 a[4][4];
    #pragma GCC unroll 4
    for (int h = 0; h < NH; h++)
        #pragma GCC unroll 4
        for (int j = 0; j < NP; j++)
            a[h][j] = _mm512_setzero_ps();
    for (int64_t i = 0; i < hd; i += 16) {
        __m512 k[4];
        #pragma GCC unroll 4
        for (int j = 0; j < NP; j++)
            k[j] = row16(r + j * stride + i);
        #pragma GCC unroll 4
        for (int h = 0; h < NH; h++) {
            const __m512 qv = _mm512_loadu_ps(q + h * hd + i);
            #pragma GCC unroll 4
            for (int j = 0; j < NP; j++)
                a[h][j] = _mm512_fmadd_ps(qv, k[j], a[h][j]);
        }
    }
    #pragma GCC unroll 4
    for (int h = 0; h < NH; h++)
        #pragma GCC unroll 4
        for (int j = 0; j < NP; j++)
            s[h * lds + j] = chains_sum(a[h][j]);
}

static inline __attribute__((always_inline)) void dots_heads(float *s, int64_t lds,
                                                              const float *q,
                                                              const uint16_t *rows,
                                                              int64_t stride, int64_t n,
                                                              int64_t hd, int NH)
{
    int64_t p = 0;
    for (; p + 4 <= n; p += 4)
        dots_block(s + p, lds, q, rows + p * stride, stride, hd, NH, 4);
    for (; p < n; p++)
        dots_block(s + p, lds, q, rows + p * stride, stride, hd, NH, 1);
}

static void dots_f16_avx512(float *s, int64_t lds, const float *q, int nq, const uint16_t *rows,
                            int64_t stride, int64_t n, int64_t hd)
{
    if (hd % 16 != 0) {
        dots_fallback(s, lds, q, nq, rows, stride, n, hd);
        return;
    }
    for (int h = 0; h < nq; h += 4) {
        float *sh = s + h * lds;
        const float *qh = q + h * hd;
        switch (nq - h < 4 ? nq - h : 4) {
        case 1: dots_heads(sh, lds, qh, rows, stride, n, hd, 1); break;
        case 2: dots_heads(sh, lds, qh, rows, stride, n, hd, 2); break;
        case 3: dots_heads(sh, lds, qh, rows, stride, n, hd, 3); break;
        default: dots_heads(sh, lds, qh, rows, stride, n, hd, 4); break;
        }
    }
}

/* Elements d .. d + 64 of NH heads' outputs over all n rows. */
static inline __attribute__((always_inline)) void wsum_block(float *out, const float *w,
                                                              int64_t ldw, const uint16_t *rows,
                                                              int64_t stride, int64_t n,
                                                              int64_t hd, int NH)
{
    __m512 a[4][4];
    #pragma GCC unroll 4
    for (int h = 0; h < NH; h++)
        #pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            a[h][i] = _mm512_setzero_ps();
    for (int64_t p = 0; p < n; p++) {
        const uint16_t *r = rows + p * stride;
        __m512 v[4];
        #pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            v[i] = row16(r + 16 * i);
        #pragma GCC unroll 4
        for (int h = 0; h < NH; h++) {
            const __m512 wp = _mm512_set1_ps(w[h * ldw + p]);
            #pragma GCC unroll 4
            for (int i = 0; i < 4; i++)
                a[h][i] = _mm512_fmadd_ps(wp, v[i], a[h][i]);
        }
    }
    #pragma GCC unroll 4
    for (int h = 0; h < NH; h++)
        #pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            _mm512_storeu_ps(out + h * hd + 16 * i, a[h][i]);
}

static void wsum_f16_avx512(float *out, const float *w, int64_t ldw, int nq, const uint16_t *rows,
                            int64_t stride, int64_t n, int64_t hd)
{
    if (hd % 64 != 0) {
        wsum_fallback(out, w, ldw, nq, rows, stride, n, hd);
        return;
    }
    for (int h = 0; h < nq; h += 4) {
        const int nh = nq - h < 4 ? nq - h : 4;
        for (int64_t d = 0; d < hd; d += 64) {
            float *o = out + h * hd + d;
            const float *wh = w + h * ldw;
            const uint16_t *r = rows + d;
            switch (nh) {
            case 1: wsum_block(o, wh, ldw, r, stride, n, hd, 1); break;
            case 2: wsum_block(o, wh, ldw, r, stride, n, hd, 2); break;
            case 3: wsum_block(o, wh, ldw, r, stride, n, hd, 3); break;
            default: wsum_block(o, wh, ldw, r, stride, n, hd, 4); break;
            }
        }
    }
}

void kernels_fill_ops_avx512(struct herd_cpu_kernels *k)
{
    /* the avx2 entries (filled before) take the shapes these do not */
    if (k->dots_f16 != dots_f16_avx512)
        dots_fallback = k->dots_f16;
    if (k->wsum_f16 != wsum_f16_avx512)
        wsum_fallback = k->wsum_f16;
    k->dots_f16 = dots_f16_avx512;
    k->wsum_f16 = wsum_f16_avx512;
}
