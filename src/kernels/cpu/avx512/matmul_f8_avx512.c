/*
 * matmul_f8_avx512.c - the FP8 e4m3 product with AVX-512F: the same quantized activations
 * and per-chunk sums as matmul_f8_ref.c, e4m3 codes widened 16 at a time (zero-extend,
 * (b & 0x7f) << 20 as f32 bits times 2^120, sign bit moved to bit 31) and multiplied into
 * 16 f32 lanes, four weight rows per pass over the quantized chunk. Prefill takes FP8_NB
 * (4) tokens per pass over the weights (block_avx512: 4 rows x 4 tokens, each row's codes
 * decoded once for all of them), with each token's sums exactly as alone. Only the summation order differs
 * from the reference.
 */
#include "kernels/kernels.h"
#include "quant/quant.h"

#include <immintrin.h>

static inline __m512 decode16(const uint8_t *p)
{
    __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
    __m512i mag = _mm512_slli_epi32(_mm512_and_si512(b, _mm512_set1_epi32(0x7f)), 20);
    __m512i sign = _mm512_slli_epi32(_mm512_and_si512(b, _mm512_set1_epi32(0x80)), 24);
    __m512 f = _mm512_mul_ps(_mm512_castsi512_ps(mag), _mm512_set1_ps(0x1p120f));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(f), sign));
}

static float dot_chunk(const uint8_t *codes, const float *q, int64_t nc)
{
    __m512 acc = _mm512_setzero_ps();
    int64_t c = 0;
    for (; c + 16 <= nc; c += 16)
        acc = _mm512_fmadd_ps(decode16(codes + c), _mm512_loadu_ps(q + c), acc);
    float s = _mm512_reduce_add_ps(acc);
    for (; c < nc; c++)
        s += fp8_e4m3_to_f32(codes[c]) * q[c];
    return s;
}

/* Four weight rows per pass over the quantized chunk, then the rest one at a time. */
static void chunk_avx512(float *yb, const uint8_t *base, size_t rb, const float *q,
                         int64_t nc, int64_t r0, int64_t r1)
{
    int64_t r = r0;
    for (; r + 4 <= r1 && nc % 16 == 0; r += 4) {
        const uint8_t *p0 = base + (size_t)r * rb, *p1 = p0 + rb, *p2 = p1 + rb, *p3 = p2 + rb;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t c = 0; c < nc; c += 16) {
            __m512 qv = _mm512_load_ps(q + c);
            a0 = _mm512_fmadd_ps(decode16(p0 + c), qv, a0);
            a1 = _mm512_fmadd_ps(decode16(p1 + c), qv, a1);
            a2 = _mm512_fmadd_ps(decode16(p2 + c), qv, a2);
            a3 = _mm512_fmadd_ps(decode16(p3 + c), qv, a3);
        }
        yb[r] += _mm512_reduce_add_ps(a0);
        yb[r + 1] += _mm512_reduce_add_ps(a1);
        yb[r + 2] += _mm512_reduce_add_ps(a2);
        yb[r + 3] += _mm512_reduce_add_ps(a3);
    }
    for (; r < r1; r++)
        yb[r] += dot_chunk(base + (size_t)r * rb, q, nc);
}

/* The end of a block: each (token, row) sum reduced as chunk_avx512 reduces it, then the
 * scalar tail from column c as dot_chunk adds it. acc[t * nr + i]: token t, row i. */
static void block_finish(float *y, int64_t ldy, const __m512 *acc, int nr, const uint8_t *p,
                         size_t rb, const float *q, int64_t c, int64_t nc, int64_t r)
{
    for (int t = 0; t < FP8_NB; t++)
        for (int i = 0; i < nr; i++) {
            float s = _mm512_reduce_add_ps(acc[t * nr + i]);
            for (int64_t k = c; k < nc; k++)
                s += fp8_e4m3_to_f32(p[(size_t)i * rb + k]) * q[t * FP8_CHUNK + k];
            y[t * ldy + r + i] += s;
        }
}

/* Rows r .. r + 3 for four tokens: each row's 16 codes decoded once for all four, each
 * (token, row) the same fmadd chain over 16-column steps as chunk_avx512's. */
static void block_rows4(float *y, int64_t ldy, const uint8_t *p, size_t rb, const float *q,
                        int64_t nc, int64_t r)
{
    const uint8_t *p1 = p + rb, *p2 = p1 + rb, *p3 = p2 + rb;
    __m512 a[16];
    __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00;
    __m512 a12 = a00, a13 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00;
    __m512 a31 = a00, a32 = a00, a33 = a00;
    int64_t c = 0;
    for (; c + 16 <= nc; c += 16) {
        __m512 w0 = decode16(p + c), w1 = decode16(p1 + c), w2 = decode16(p2 + c);
        __m512 w3 = decode16(p3 + c);
        __m512 x = _mm512_load_ps(q + c);
        a00 = _mm512_fmadd_ps(w0, x, a00);
        a01 = _mm512_fmadd_ps(w1, x, a01);
        a02 = _mm512_fmadd_ps(w2, x, a02);
        a03 = _mm512_fmadd_ps(w3, x, a03);
        x = _mm512_load_ps(q + FP8_CHUNK + c);
        a10 = _mm512_fmadd_ps(w0, x, a10);
        a11 = _mm512_fmadd_ps(w1, x, a11);
        a12 = _mm512_fmadd_ps(w2, x, a12);
        a13 = _mm512_fmadd_ps(w3, x, a13);
        x = _mm512_load_ps(q + 2 * FP8_CHUNK + c);
        a20 = _mm512_fmadd_ps(w0, x, a20);
        a21 = _mm512_fmadd_ps(w1, x, a21);
        a22 = _mm512_fmadd_ps(w2, x, a22);
        a23 = _mm512_fmadd_ps(w3, x, a23);
        x = _mm512_load_ps(q + 3 * FP8_CHUNK + c);
        a30 = _mm512_fmadd_ps(w0, x, a30);
        a31 = _mm512_fmadd_ps(w1, x, a31);
        a32 = _mm512_fmadd_ps(w2, x, a32);
        a33 = _mm512_fmadd_ps(w3, x, a33);
    }
    a[0] = a00, a[1] = a01, a[2] = a02, a[3] = a03, a[4] = a10, a[5] = a11, a[6] = a12;
    a[7] = a13, a[8] = a20, a[9] = a21, a[10] = a22, a[11] = a23, a[12] = a30, a[13] = a31;
    a[14] = a32, a[15] = a33;
    block_finish(y, ldy, a, 4, p, rb, q, c, nc, r);
}

/* One row for four tokens. */
static void block_row1(float *y, int64_t ldy, const uint8_t *p, size_t rb, const float *q,
                       int64_t nc, int64_t r)
{
    __m512 a[4];
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t c = 0;
    for (; c + 16 <= nc; c += 16) {
        __m512 w0 = decode16(p + c);
        a0 = _mm512_fmadd_ps(w0, _mm512_load_ps(q + c), a0);
        a1 = _mm512_fmadd_ps(w0, _mm512_load_ps(q + FP8_CHUNK + c), a1);
        a2 = _mm512_fmadd_ps(w0, _mm512_load_ps(q + 2 * FP8_CHUNK + c), a2);
        a3 = _mm512_fmadd_ps(w0, _mm512_load_ps(q + 3 * FP8_CHUNK + c), a3);
    }
    a[0] = a0, a[1] = a1, a[2] = a2, a[3] = a3;
    block_finish(y, ldy, a, 1, p, rb, q, c, nc, r);
}

static void block_avx512(float *y, int64_t ldy, const uint8_t *base, size_t rb,
                         const float *q, int64_t nc, int64_t r0, int64_t r1)
{
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4)
        block_rows4(y, ldy, base + (size_t)r * rb, rb, q, nc, r);
    for (; r < r1; r++)
        block_row1(y, ldy, base + (size_t)r * rb, rb, q, nc, r);
}

static void matmul_f8_e4m3_avx512(float *y, int64_t ldy, const void *w, const void *xa,
                                  size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    /* decode16 multiplies e4m3 subnormals, f32 subnormals after the shift, by 2^120: pool
     * jobs run with denormals-are-zero (base/threads.c), which would read them as 0 */
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr & ~0x40u);
    matmul_f8_frame(y, ldy, w, xa, xrb, n, n_b, r0, r1, chunk_avx512, block_avx512);
    _mm_setcsr(csr);
}

void kernels_fill_matmul_f8_avx512(struct herd_cpu_kernels *k)
{
    k->mm[HERD_DTYPE_F8_E4M3] =
        (struct matmul_kernel){HERD_DTYPE_F8_E4M3, NULL, matmul_f8_e4m3_avx512};
    k->convert_w[HERD_DTYPE_F8_E4M3] = act_quantize_f8_ref;
}
