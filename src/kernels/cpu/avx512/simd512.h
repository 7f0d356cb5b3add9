/*
 * simd512.h - small AVX-512 helpers shared by the kernels of this directory (quantized gemm
 * and gemv). Include after immintrin.h, from files compiled with the avx512 flags.
 */
#ifndef HERD_SIMD512_H
#define HERD_SIMD512_H

#include <immintrin.h>
#include <stdint.h>

/* 16 fp16 values at p, p + stride, ... (the scales of 16 consecutive blocks) as floats. */
static inline __m512 gather_f16(const uint8_t *p, int stride)
{
    const __m512i idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(stride));
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_i32gather_epi32(idx, p, 1)));
}

/* The sum of 32 signed codes (a Q8_0 block's), exactly: one vpsadbw of the codes made
 * unsigned (q + 128), less 32 * 128. The scalar loop it replaces cost ~12 ns a block, paid
 * once per activation block in every call (decode plans, prefill packing). */
static inline int sum_i8x32(const int8_t *q)
{
    const __m256i u = _mm256_xor_si256(_mm256_loadu_si256((const void *)q),
                                       _mm256_set1_epi8((char)0x80));
    const __m256i s = _mm256_sad_epu8(u, _mm256_setzero_si256()); /* 4 x u64 */
    const __m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    return (int)(_mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1)) - 32 * 128;
}

#endif
