/*
 * matmul_f8_avx512.c - the FP8 e4m3 product with AVX-512F: the same quantized activations
 * and per-chunk sums as matmul_f8_ref.c, e4m3 codes widened 16 at a time (zero-extend,
 * (b & 0x7f) << 20 as f32 bits times 2^120, sign bit moved to bit 31) and multiplied into
 * 16 f32 lanes, four weight rows per pass over the quantized chunk. Only the summation
 * order differs from the reference.
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

static void matmul_f8_e4m3_avx512(float *y, int64_t ldy, const void *w, const void *xa,
                                  size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    /* decode16 multiplies e4m3 subnormals, f32 subnormals after the shift, by 2^120: pool
     * jobs run with denormals-are-zero (base/threads.c), which would read them as 0 */
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr & ~0x40u);
    matmul_f8_frame(y, ldy, w, xa, xrb, n, n_b, r0, r1, chunk_avx512);
    _mm_setcsr(csr);
}

void kernels_fill_matmul_f8_avx512(struct herd_cpu_kernels *k)
{
    k->mm[HERD_DTYPE_F8_E4M3] =
        (struct matmul_kernel){HERD_DTYPE_F8_E4M3, NULL, matmul_f8_e4m3_avx512};
    k->convert_w[HERD_DTYPE_F8_E4M3] = act_quantize_f8_ref;
}
