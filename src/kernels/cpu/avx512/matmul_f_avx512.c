/*
 * matmul_f_avx512.c - matrix products for float weights (F32, F16, BF16) with AVX-512.
 *
 *  - gemv (n_b < 4): each weight row streamed once for all n_b activation rows, two rows
 *    per pass (each activation load feeds two FMAs), two FMA chains per (row, activation);
 *    F16 widened with vcvtph2ps, BF16 by a 16-bit shift; activations f32.
 *  - gemm (n_b >= 4): per chunk of K (KC) and panel of 16 rows, the weights are transposed
 *    into a panel where one vector holds element k of 16 rows; the 16 x 8 register tile
 *    then does one FMA per (k, activation row) with the activation broadcast from memory.
 *    BF16 weights on CPUs with AVX512_BF16 pair with BF16 activations (as ggml does) and
 *    use vdpbf16ps on (k, k+1) pairs: twice the FMA rate, products exact, sums in f32.
 */
#include "kernels/kernels.h"

#include <immintrin.h>
#include <stdlib.h> /* getenv */

enum ftype { FT_F32, FT_F16, FT_BF16, FT_BF16_DP };

static inline size_t elem_bytes(enum ftype t)
{
    return t == FT_F32 ? 4 : 2;
}

/* 16 weights at element k of a row as floats; mask for the tail. */
static inline __attribute__((always_inline)) __m512 load_w(enum ftype t, const uint8_t *row,
                                                           int64_t k, __mmask16 m)
{
    if (t == FT_F32)
        return _mm512_maskz_loadu_ps(m, row + 4 * k);
    __m256i h = _mm256_maskz_loadu_epi16(m, row + 2 * k);
    if (t == FT_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

#define GEMV_MAX_B 3 /* activation rows per pass over the weights (decode) */

/* Rows r, r + 1 (nr = 2) or r alone (nr = 1) times nb activation rows, each row read once:
 * per 16 weights one conversion and nb FMAs, two independent chains per (row, act) so the
 * FMA latency hides behind the loads. out[i * nb + b] = row i . x[b]. */
static inline __attribute__((always_inline)) void rows_dot(enum ftype t, int nr, int nb,
                                                           const uint8_t *row, size_t rb,
                                                           const float *const *x, int64_t n,
                                                           float *out)
{
    __m512 acc[2][GEMV_MAX_B][2];
    for (int i = 0; i < nr; i++)
        for (int b = 0; b < nb; b++)
            acc[i][b][0] = acc[i][b][1] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 32 <= n; k += 32) {
        /* 8 KB ahead, every line of every row (see PREFETCH in gemv_q_avx512.c) */
        for (int i = 0; i < nr; i++)
            for (size_t l = 0; l < 32 * elem_bytes(t); l += 64)
                _mm_prefetch((const char *)(row + i * rb + k * elem_bytes(t) + 8192 + l),
                             _MM_HINT_T0);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m512 w[2];
#pragma GCC unroll 2
            for (int i = 0; i < nr; i++)
                w[i] = load_w(t, row + i * rb, k + 16 * h, 0xffff);
#pragma GCC unroll 3
            for (int b = 0; b < nb; b++) {
                __m512 xv = _mm512_loadu_ps(x[b] + k + 16 * h);
#pragma GCC unroll 2
                for (int i = 0; i < nr; i++)
                    acc[i][b][h] = _mm512_fmadd_ps(w[i], xv, acc[i][b][h]);
            }
        }
    }
    for (; k < n; k += 16) {
        __mmask16 m = n - k >= 16 ? 0xffff : (__mmask16)((1u << (n - k)) - 1);
        for (int i = 0; i < nr; i++) {
            __m512 w = load_w(t, row + i * rb, k, m);
            for (int b = 0; b < nb; b++)
                acc[i][b][0] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m, x[b] + k),
                                               acc[i][b][0]);
        }
    }
    for (int i = 0; i < nr; i++)
        for (int b = 0; b < nb; b++)
            out[i * nb + b] = _mm512_reduce_add_ps(_mm512_add_ps(acc[i][b][0], acc[i][b][1]));
}

/* ---- gemm */

#define KC 256
#define NR 8

/* f32 panel: p[k][16]; bf16 panel: p[k/2][16] pairs, as uint32 words. */
static inline __attribute__((always_inline)) void
repack(enum ftype t, float *p, const uint8_t *w, size_t rb, int64_t r, int64_t nr, int64_t k0,
       int64_t kc)
{
    const __m512i rows = _mm512_mullo_epi32(
        _mm512_min_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32((int)nr - 1)),
        _mm512_set1_epi32((int)rb));
    const uint8_t *base = w + (size_t)r * rb + (size_t)k0 * elem_bytes(t);
    if (t == FT_F32) {
        for (int64_t k = 0; k < kc; k++)
            _mm512_storeu_ps(p + 16 * k, _mm512_i32gather_ps(rows, base + 4 * k, 1));
        return;
    }
    for (int64_t k = 0; k < kc; k += 2) { /* kc is even here */
        __m512i v = _mm512_i32gather_epi32(rows, base + 2 * k, 1);
        if (t == FT_BF16_DP) {
            _mm512_storeu_si512(p + 8 * k, v);
        } else if (t == FT_F16) {
            _mm512_storeu_ps(p + 16 * k, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)));
            _mm512_storeu_ps(p + 16 * k + 16,
                             _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16))));
        } else {
            _mm512_storeu_ps(p + 16 * k, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
            _mm512_storeu_ps(p + 16 * k + 16, _mm512_castsi512_ps(_mm512_andnot_si512(
                                                  _mm512_set1_epi32(0xffff), v)));
        }
    }
}

static inline __attribute__((always_inline)) void
tile(enum ftype t, int nb, const float *p, const uint8_t *x, size_t xrb, int64_t k0,
     int64_t kc, float *y, int64_t ldy, __mmask16 rmask, int first)
{
    __m512 acc[NR];
    #pragma GCC unroll 8
    for (int j = 0; j < nb; j++)
        acc[j] = _mm512_setzero_ps();
    if (t == FT_BF16_DP) {
        for (int64_t k = 0; k < kc; k += 2) {
            __m512bh wv = (__m512bh)_mm512_loadu_si512(p + 8 * k);
            #pragma GCC unroll 8
            for (int j = 0; j < nb; j++) {
                int32_t a2;
                memcpy(&a2, x + (size_t)j * xrb + 2 * (k0 + k), 4);
                acc[j] = _mm512_dpbf16_ps(acc[j], wv, (__m512bh)_mm512_set1_epi32(a2));
            }
        }
    } else {
        for (int64_t k = 0; k < kc; k++) {
            __m512 wv = _mm512_loadu_ps(p + 16 * k);
            /* keep wv in a register: otherwise gcc folds the panel load into every FMA and
             * the tile needs two loads per FMA (load-bound at half the FMA rate) */
            __asm__("" : "+v"(wv));
            #pragma GCC unroll 8
            for (int j = 0; j < nb; j++) {
                const float *xj = (const float *)(x + (size_t)j * xrb);
                acc[j] = _mm512_fmadd_ps(wv, _mm512_set1_ps(xj[k0 + k]), acc[j]);
            }
        }
    }
    #pragma GCC unroll 8
    for (int j = 0; j < nb; j++) {
        float *yj = y + j * ldy;
        __m512 v = first ? acc[j] : _mm512_add_ps(acc[j], _mm512_maskz_loadu_ps(rmask, yj));
        _mm512_mask_storeu_ps(yj, rmask, v);
    }
}

static inline __attribute__((always_inline)) void
gemm(enum ftype t, float *y, int64_t ldy, const uint8_t *w, const uint8_t *xa, size_t xrb,
     int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    float p[KC * 16];
    const size_t rb = (size_t)n * elem_bytes(t == FT_BF16_DP ? FT_BF16 : t);
    for (int64_t k0 = 0; k0 < n; k0 += KC) {
        const int64_t kc = n - k0 < KC ? n - k0 : KC;
        for (int64_t r = r0; r < r1; r += 16) {
            const int64_t nr = r1 - r < 16 ? r1 - r : 16;
            const __mmask16 rmask = (__mmask16)((1u << nr) - 1);
            repack(t, p, w, rb, r, nr, k0, kc);
            for (int64_t b = 0; b < n_b; b += NR) {
                const uint8_t *x = xa + (size_t)b * xrb;
                float *yb = y + b * ldy + r;
                switch (n_b - b < NR ? n_b - b : NR) {
                case 1: tile(t, 1, p, x, xrb, k0, kc, yb, ldy, rmask, k0 == 0); break;
                case 2: tile(t, 2, p, x, xrb, k0, kc, yb, ldy, rmask, k0 == 0); break;
                case 3: tile(t, 3, p, x, xrb, k0, kc, yb, ldy, rmask, k0 == 0); break;
                case 4: tile(t, 4, p, x, xrb, k0, kc, yb, ldy, rmask, k0 == 0); break;
                case 5: tile(t, 5, p, x, xrb, k0, kc, yb, ldy, rmask, k0 == 0); break;
                case 6: tile(t, 6, p, x, xrb, k0, kc, yb, ldy, rmask, k0 == 0); break;
                case 7: tile(t, 7, p, x, xrb, k0, kc, yb, ldy, rmask, k0 == 0); break;
                default: tile(t, 8, p, x, xrb, k0, kc, yb, ldy, rmask, k0 == 0); break;
                }
            }
        }
    }
}

#define GEMM_MIN_NB 4

static inline __attribute__((always_inline)) void
matmul_f(enum ftype t, float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
         int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    if (n_b >= GEMM_MIN_NB && n % 2 == 0) {
        gemm(t, y, ldy, w, xa, xrb, n, n_b, r0, r1);
        return;
    }
    const size_t rb = (size_t)n * elem_bytes(t);
    for (int64_t b0 = 0; b0 < n_b; b0 += GEMV_MAX_B) {
        const int nb = n_b - b0 < GEMV_MAX_B ? (int)(n_b - b0) : GEMV_MAX_B;
        const float *x[GEMV_MAX_B];
        for (int b = 0; b < nb; b++)
            x[b] = (const float *)((const uint8_t *)xa + (size_t)(b0 + b) * xrb);
        for (int64_t r = r0; r < r1; r += 2) {
            const uint8_t *row = (const uint8_t *)w + (size_t)r * rb;
            float o[2 * GEMV_MAX_B];
            const int nr = r + 1 < r1 ? 2 : 1;
            if (nr == 2)
                switch (nb) {
                case 1: rows_dot(t, 2, 1, row, rb, x, n, o); break;
                case 2: rows_dot(t, 2, 2, row, rb, x, n, o); break;
                default: rows_dot(t, 2, 3, row, rb, x, n, o); break;
                }
            else
                rows_dot(t, 1, nb, row, rb, x, n, o);
            for (int i = 0; i < nr; i++)
                for (int b = 0; b < nb; b++)
                    y[(b0 + b) * ldy + r + i] = o[i * nb + b];
        }
    }
}

static void matmul_f32_avx512(float *y, int64_t ldy, const void *w, const void *xa,
                              size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_f(FT_F32, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

static void matmul_f16_avx512(float *y, int64_t ldy, const void *w, const void *xa,
                              size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_f(FT_F16, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

static void matmul_bf16_avx512(float *y, int64_t ldy, const void *w, const void *xa,
                               size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_f(FT_BF16, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

/* Row r of BF16 weights times a BF16 activation row, n even: 32 products per vdpbf16ps. */
__attribute__((target("avx512bf16"))) static inline float row_dot_bf16(const void *w, int64_t r,
                                                                       const uint8_t *x,
                                                                       int64_t n)
{
    const uint8_t *row = (const uint8_t *)w + (size_t)r * (size_t)n * 2;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t k = 0;
    for (; k + 128 <= n; k += 128) {
#define DP(acc, o)                                                                         \
    acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512(row + 2 * (k + (o))),       \
                           (__m512bh)_mm512_loadu_si512(x + 2 * (k + (o))))
        DP(a0, 0);
        DP(a1, 32);
        DP(a2, 64);
        DP(a3, 96);
#undef DP
    }
    for (; k < n; k += 32) {
        __mmask16 m = n - k >= 32 ? 0xffff : (__mmask16)((1u << ((n - k) / 2)) - 1);
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_maskz_loadu_epi32(m, row + 2 * k),
                              (__m512bh)_mm512_maskz_loadu_epi32(m, x + 2 * k));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

/* BF16 weights x BF16 activations (n even: the pairs of vdpbf16ps). */
__attribute__((target("avx512bf16"))) static void
matmul_bf16_bf16_avx512(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                        int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    if (n % 2 == 0 && n_b >= GEMM_MIN_NB) {
        gemm(FT_BF16_DP, y, ldy, w, xa, xrb, n, n_b, r0, r1);
        return;
    }
    if (n % 2 == 0) {
        for (int64_t b = 0; b < n_b; b++) {
            const uint8_t *x = (const uint8_t *)xa + (size_t)b * xrb;
            for (int64_t r = r0; r < r1; r++)
                y[b * ldy + r] = row_dot_bf16(w, r, x, n);
        }
        return;
    }
    /* odd n: widen the activation pairs one row at a time (never in Llama shapes) */
    const uint16_t *wr = w;
    for (int64_t b = 0; b < n_b; b++) {
        const uint16_t *x = (const uint16_t *)((const uint8_t *)xa + (size_t)b * xrb);
        for (int64_t r = r0; r < r1; r++) {
            float s = 0.0f;
            for (int64_t k = 0; k < n; k++)
                s += bf16_to_f32(wr[r * n + k]) * bf16_to_f32(x[k]);
            y[b * ldy + r] = s;
        }
    }
}

void kernels_fill_matmul_f_avx512(struct herd_cpu_kernels *k)
{
    k->mm[HERD_DTYPE_F32].matmul = matmul_f32_avx512;
    k->mm[HERD_DTYPE_F16].matmul = matmul_f16_avx512;
    k->mm[HERD_DTYPE_BF16].matmul = matmul_bf16_avx512;
    /* BF16 x BF16 (vdpbf16ps) rounds the activations to bf16: 1e-2 off float32 references
     * on logits, which herd promises to match. It is used only when asked for. */
    if (herd_cpu_features()->avx512bf16 && getenv("HERD_BF16_ACT"))
        k->mm[HERD_DTYPE_BF16] = (struct matmul_kernel){HERD_DTYPE_BF16, act_convert_bf16_ref,
                                                        matmul_bf16_bf16_avx512};
}
