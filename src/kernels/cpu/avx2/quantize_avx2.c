/*
 * quantize_avx2.c - the activation quantizers (f32 rows to Q8_0 / Q8_K, the 'convert'
 * entries of the quantized matmuls) with AVX2. They produce exactly the reference's bytes
 * (cpu/ref/matmul_ref.c, ggml's quantize_row_q8_0/q8_K references): the same scalar scale,
 * the same f32 products, and the same rounding — Q8_0 rounds half away from zero (roundf),
 * Q8_K half to even (nearbyintf) — so the variant never changes a result.
 * The AVX-512 table keeps these: a row is a few thousand floats, already L1-bound here.
 */
#include "kernels/kernels.h"
#include "quant/quant.h"

#include <immintrin.h>

static inline float hmax(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static inline __m256 vabs(__m256 v)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

/* roundf on 8 lanes: truncate, then step away from zero when the dropped part is >= 0.5
 * (v - trunc(v) is exact, so this is exact for every float, unlike adding 0.5). */
static inline __m256i round_away(__m256 v)
{
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 big = _mm256_cmp_ps(vabs(_mm256_sub_ps(v, t)), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    __m256 step = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(1.0f));
    return _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(big, step)));
}

/* 32 int32 lanes (4 vectors) to 32 int8 in order. */
static inline __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d)
{
    __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    __m256i r = _mm256_packs_epi16(ab, cd); /* lanes interleaved by 128-bit halves */
    return _mm256_permutevar8x32_epi32(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static void act_quantize_q8_0_avx2(void *dst, const float *x, int64_t n)
{
    struct block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float *xb = x + i * QK8_0;
        __m256 v[4];
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < 4; j++) {
            v[j] = _mm256_loadu_ps(xb + 8 * j);
            m = _mm256_max_ps(m, vabs(v[j]));
        }
        const float d = hmax(m) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        __m256i q[4];
        for (int j = 0; j < 4; j++)
            q[j] = round_away(_mm256_mul_ps(v[j], _mm256_set1_ps(id)));
        _mm256_storeu_si256((void *)y[i].qs, pack32(q[0], q[1], q[2], q[3]));
    }
}

static void act_quantize_q8_k_avx2(void *dst, const float *x, int64_t n)
{
    struct block_q8_k *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *xb = x + i * QK_K;
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8)
            m = _mm256_max_ps(m, vabs(_mm256_loadu_ps(xb + j)));
        const float amax = hmax(m);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* the reference keeps the FIRST element of largest magnitude (its sign matters) */
        float max = 0.0f;
        for (int j = 0; j < QK_K; j += 8) {
            int hit = _mm256_movemask_ps(
                _mm256_cmp_ps(vabs(_mm256_loadu_ps(xb + j)), _mm256_set1_ps(amax), _CMP_EQ_OQ));
            if (hit) {
                max = xb[j + __builtin_ctz((unsigned)hit)];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 is = _mm256_set1_ps(iscale), top = _mm256_set1_ps(127.0f);
        for (int j = 0; j < QK_K; j += 32) {
            __m256i q[4];
            for (int l = 0; l < 4; l++) {
                __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(xb + j + 8 * l), is),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                q[l] = _mm256_cvttps_epi32(_mm256_min_ps(v, top));
            }
            __m256i p = pack32(q[0], q[1], q[2], q[3]);
            _mm256_storeu_si256((void *)(y[i].qs + j), p);
            /* bsums: sums of 16 codes, via |q| dot 1 with signs restored by vpmaddubsw */
            __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), p);
            __m256i s32 = _mm256_madd_epi16(s16, _mm256_set1_epi16(1)); /* 8 sums of 4 */
            int32_t lanes[8];
            _mm256_storeu_si256((void *)lanes, s32);
            y[i].bsums[j / 16] = (int16_t)(lanes[0] + lanes[1] + lanes[2] + lanes[3]);
            y[i].bsums[j / 16 + 1] = (int16_t)(lanes[4] + lanes[5] + lanes[6] + lanes[7]);
        }
        y[i].d = 1.0f / iscale;
    }
}

void kernels_fill_quantize_avx2(struct herd_cpu_kernels *k)
{
    static const herd_dtype q8_0_types[] = {HERD_DTYPE_Q8_0, HERD_DTYPE_Q4_0, HERD_DTYPE_Q4_1};
    static const herd_dtype q8_k_types[] = {HERD_DTYPE_Q4_K, HERD_DTYPE_Q5_K, HERD_DTYPE_Q6_K};
    for (size_t i = 0; i < 3; i++) {
        k->mm[q8_0_types[i]].convert = act_quantize_q8_0_avx2;
        k->mm[q8_k_types[i]].convert = act_quantize_q8_k_avx2;
    }
}
