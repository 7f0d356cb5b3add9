/*
 * gemv_q_avx512.c - decode-time (n_b = 1..4 per pass) products of quantized weights with Q8_0 / Q8_K
 * activations, AVX-512 VNNI. Decoding is memory-bound, so these loops are built to spend as
 * few vector instructions per weight byte as possible (about 0.15-0.2 per byte, the two
 * 512-bit ports of an Intel core then keep up with ~30 GB/s at 3 GHz):
 *
 *  - The weights are used in their file layout; the ACTIVATIONS are rearranged once per call
 *    (n bytes per row, reused by every weight row) so that a plain load-and-mask of the
 *    weight nibbles lines up with them. E.g. Q4_0: a vector of the 16-byte nibble fields of
 *    four consecutive blocks gives, masked, [A0-15 B0-15 C0-15 D0-15] and, shifted,
 *    [A16-31 B16-31 ...]; the activation plan stores its codes in that order, so both
 *    vpdpbusd go into one int32 vector whose 128-bit lane k is block k's dot.
 *  - Offsets (Q4_0's -8, Q8_0's +128 for unsigned codes, Q4_1/K mins, Q6_K's -32) never
 *    touch the inner loop: they are sum(a) terms, folded per block or sub-block into one
 *    vector FMA with activation-side factors prepared once.
 *  - Block scales are converted 16 at a time (gather + vcvtph2ps), multiplied by the
 *    activation scales in one vector op, and spread to the lanes of each dot by a permute.
 *  - Every weight row is read once for all n_b activation rows; float accumulators stay
 *    in registers, one horizontal sum per row.
 * Q8_0 with 1..8 activation rows has its own loop further down (gemv_q8_0_r16: 16 rows
 * transposed in registers, one block dot per lane), as fast for one row and much faster
 * for several; its float steps are the prefill gemm's, so a Q8_0 row rounds alike in any
 * batch. The other types' results equal the gemm's (cpu/avx512/matmul_q_avx512.c) up to
 * f32 reassociation, and each activation row's are the same for 1..4 rows.
 * Types: Q8_0, Q4_0 (VBMI sub-variant), Q4_1, Q4_K, Q5_K, Q6_K. Rows must be multiples of
 * 512 weights (all Llama matrices); others go elsewhere.
 */
#include "kernels/kernels.h"
#include "quant/quant.h"

#include <immintrin.h>

#include "simd512.h"

#define GEMV_MAX_N 65536 /* longest row planned on the stack (Llama 3.1 405B FFN: 53248) */
#define GEMV_MAX_B 4     /* activation rows handled in one pass over the weights */
/* Software prefetch of the one-row loops: distance in bytes and target level. The hardware
 * streamer alone leaves the DRAM queue half empty. The best distance moves with the host
 * state, so it is measured, not derived: on 2026-12-04 (bench_matmul 8192 x 4096, one
 * thread, into L1) Q4_0 read 13.3 GB/s at 2 KB ahead, 12-12.8 at 1 KB, 9.5-10 at 8 KB, and
 * Q6_K best at 1 KB. On 2026-12-05, a busier host (bench_matmul 14336 x 4096, 4 interleaved
 * runs of each build, mean GB/s at 1 / 2 threads): into L1 at 2 KB (Q6_K 1 KB) Q4_0 10.8 /
 * 19.5, Q4_K 10.4 / 22.1, Q6_K 9.3 / 18.5; into L2 (prefetcht1) at 4 KB 12.1 / 21.2, 10.9 /
 * 20.4, 12.6 / 21.1; into L1 at 4 KB 10.9 / 20.7, 10.6 / 20.4, 11.0 / 22.3; into L2 at 2 KB
 * 10.2 / 18.5, 10.1 / 18.9, 9.0 / 17.7. A line prefetched to L2 holds no L1 fill buffer while
 * DRAM answers, which leaves those to the demand loads; a bare read loop with 16 vpdpbusd
 * per 256 bytes (a scratch program, not kept) agreed: 10.7 GB/s into L1 at 2 KB, 11.9 into
 * L2 at 4 KB, medians of 5.
 * Prefetching past the end of the matrix is harmless (never faults). */
#define PREFETCH 4096
#define PREFETCH_HINT _MM_HINT_T1
/* Q8_0 16-row groups: 16 streams, each 4 KB ahead (1 KB: 10.5 GB/s, 2 KB: 10.4, 4 KB: 12.0,
 * 8 KB: 11.9, 16 KB: 10.7; one thread) */
#define PREFETCH_R16 4096

/* Per activation row: codes in the order the weight loop consumes them, and per group
 * (block or sub-block) the factors of the integer dot (sa) and of the offset term (so). */
struct act_plan {
    int8_t q[GEMV_MAX_N];
    float sa[GEMV_MAX_N / 16]; /* Q8_0 pairing: da per block; K: see plan_k */
    float so[GEMV_MAX_N / 16]; /* offset factor per block / sub-block */
};

/* ---- Q8_0-paired weights (Q8_0, Q4_0, Q4_1): blocks of 32 */

enum wq { WQ_Q8_0, WQ_Q4_0, WQ_Q4_1 };

static inline int wq_block_bytes(enum wq t)
{
    return t == WQ_Q8_0 ? 34 : t == WQ_Q4_0 ? 18 : 20;
}

/* Q8_0 keeps its 32 codes per block in order; the nibble types interleave groups of 4
 * blocks as [lo halves of A..D][hi halves of A..D]. so = da * sum(q) times the weight-side
 * constant of the offset: -128 (Q8_0 codes made unsigned), -8 (Q4_0), 1 (Q4_1, times m). */
static void plan_q8_0(enum wq t, struct act_plan *p, const uint8_t *xa, int64_t n)
{
    const float off = t == WQ_Q8_0 ? -128.0f : t == WQ_Q4_0 ? -8.0f : 1.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        const struct block_q8_0 *x = (const void *)(xa + b * 34);
        int8_t *dst = p->q + (b / 4) * 128 + (b % 4) * 16;
        if (t == WQ_Q8_0)
            memcpy(p->q + b * 32, x->qs, 32);
        else {
            memcpy(dst, x->qs, 16);
            memcpy(dst + 64, x->qs + 16, 16);
        }
        const int s = sum_i8x32(x->qs);
        const float d = fp16_to_f32(x->d);
        p->sa[b] = d;
        p->so[b] = off * d * (float)s;
    }
}

/* 16 bytes at each of p, p + s, p + 2s, p + 3s in one vector. */
static inline __m512i load_4x16(const uint8_t *p, int s)
{
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const void *)p));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const void *)(p + s)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const void *)(p + 2 * s)), 2);
    return _mm512_inserti32x4(v, _mm_loadu_si128((const void *)(p + 3 * s)), 3);
}

static inline float hsum2(__m512 a, __m512 b)
{
    return _mm512_reduce_add_ps(_mm512_add_ps(a, b));
}

/* One weight row against nb activation plans; n a multiple of 512. */
static inline __attribute__((always_inline)) void
row_q8_0(enum wq t, int nb, const uint8_t *row, const struct act_plan *const *pl, int64_t n,
         float *out)
{
    const int bb = wq_block_bytes(t), qo = t == WQ_Q4_1 ? 4 : 2;
    const __m512i lo4 = _mm512_set1_epi8(0x0f), flip = _mm512_set1_epi8((char)0x80);
    __m512 acc[GEMV_MAX_B][2], accm[GEMV_MAX_B];
    for (int b = 0; b < nb; b++)
        acc[b][0] = acc[b][1] = accm[b] = _mm512_setzero_ps();
    for (int64_t c = 0; c < n / 512; c++) { /* 16 blocks */
        const uint8_t *blk = row + c * 16 * bb;
        for (int l = 0; l < 16 * bb; l += 64)
            _mm_prefetch((const char *)(blk + PREFETCH + l), PREFETCH_HINT);
        const __m512 dw = gather_f16(blk, bb);
        const __m512 ow = t == WQ_Q4_1 ? gather_f16(blk + 2, bb) : dw;
        __m512 s[GEMV_MAX_B];
        #pragma GCC unroll 8
        for (int b = 0; b < nb; b++) {
            s[b] = _mm512_mul_ps(dw, _mm512_loadu_ps(pl[b]->sa + c * 16));
            accm[b] = _mm512_fmadd_ps(ow, _mm512_loadu_ps(pl[b]->so + c * 16), accm[b]);
        }
        if (t == WQ_Q8_0) {
            #pragma GCC unroll 8
            for (int i = 0; i < 8; i++) { /* blocks 2i, 2i + 1 */
                __m256i a = _mm256_loadu_si256((const void *)(blk + 2 * i * bb + 2));
                __m256i h = _mm256_loadu_si256((const void *)(blk + (2 * i + 1) * bb + 2));
                __m512i u = _mm512_xor_si512(
                    _mm512_inserti64x4(_mm512_castsi256_si512(a), h, 1), flip);
                const __m512i idx = _mm512_add_epi32(
                    _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                    _mm512_set1_epi32(2 * i));
                #pragma GCC unroll 8
                for (int b = 0; b < nb; b++) {
                    __m512i d = _mm512_dpbusd_epi32(
                        _mm512_setzero_si512(), u,
                        _mm512_loadu_si512((const void *)(pl[b]->q + c * 512 + 64 * i)));
                    acc[b][i & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d),
                                                    _mm512_permutexvar_ps(idx, s[b]),
                                                    acc[b][i & 1]);
                }
            }
        } else {
            #pragma GCC unroll 8
            for (int g = 0; g < 4; g++) { /* blocks 4g .. 4g + 3 */
                __m512i p = load_4x16(blk + 4 * g * bb + qo, bb);
                __m512i lo = _mm512_and_si512(p, lo4);
                __m512i hi = _mm512_and_si512(_mm512_srli_epi16(p, 4), lo4);
                const __m512i idx = _mm512_add_epi32(
                    _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                    _mm512_set1_epi32(4 * g));
                #pragma GCC unroll 8
                for (int b = 0; b < nb; b++) {
                    const int8_t *q = pl[b]->q + c * 512 + 128 * g;
                    __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo,
                                                    _mm512_loadu_si512((const void *)q));
                    d = _mm512_dpbusd_epi32(d, hi, _mm512_loadu_si512((const void *)(q + 64)));
                    acc[b][g & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d),
                                                    _mm512_permutexvar_ps(idx, s[b]),
                                                    acc[b][g & 1]);
                }
            }
        }
    }
    for (int b = 0; b < nb; b++)
        out[b] = hsum2(_mm512_add_ps(acc[b][0], acc[b][1]), accm[b]);
}

/* ---- K-quants with Q8_K activations: super-blocks of 256 */

enum wk { WK_Q4_K, WK_Q6_K };

/* Q4_K: the codes of sub-blocks (0,2), (1,3), (4,6), (5,7) side by side, the order in which
 * masked / shifted 64-byte halves of qs hold them; sa = da per super-block, so the
 * -da * (bsum of sub-block j) for the mins. Q6_K: codes in order; sa = da, so the
 * -32 * da * bsum of each 16-weight sub-block. */
static void plan_k(enum wk t, struct act_plan *p, const uint8_t *xa, int64_t n)
{
    static const int q4k_order[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    for (int64_t i = 0; i < n / QK_K; i++) {
        const struct block_q8_k *x = (const void *)(xa + i * sizeof *x);
        float d;
        memcpy(&d, &x->d, 4);
        int16_t bs[16];
        memcpy(bs, x->bsums, sizeof bs);
        p->sa[i] = d;
        if (t == WK_Q4_K) {
            for (int j = 0; j < 8; j++) {
                memcpy(p->q + i * QK_K + 32 * j, x->qs + 32 * q4k_order[j], 32);
                p->so[i * 8 + j] = -d * (float)(bs[2 * j] + bs[2 * j + 1]);
            }
        } else {
            memcpy(p->q + i * QK_K, x->qs, QK_K);
            for (int j = 0; j < 16; j++)
                p->so[i * 16 + j] = -32.0f * d * (float)bs[j];
        }
    }
}

/* [sc0..7, m0..7] of a Q4_K super-block as 16 bytes (layout: cpu/ref q4k_scale_min). */
static inline __m128i q4k_scales(const uint8_t *q)
{
    uint32_t w0, w1, w2;
    memcpy(&w0, q, 4);
    memcpy(&w1, q + 4, 4);
    memcpy(&w2, q + 8, 4);
    const uint64_t sc = (w0 & 0x3f3f3f3fu) |
                        (uint64_t)((w2 & 0x0f0f0f0fu) | (((w0 >> 6) & 0x03030303u) << 4)) << 32;
    const uint64_t m = (w1 & 0x3f3f3f3fu) |
                       (uint64_t)(((w2 >> 4) & 0x0f0f0f0fu) | (((w1 >> 6) & 0x03030303u) << 4))
                           << 32;
    return _mm_insert_epi64(_mm_cvtsi64_si128((long long)sc), (long long)m, 1);
}

/* Q4_K, or Q5_K (q5: same fields plus qh, the fifth bit of sub-block j's weight l being bit
 * j of qh[l]). */
static inline __attribute__((always_inline)) void
row_q4k(int q5, int nb, const uint8_t *row, const struct act_plan *const *pl, int64_t n,
        float *out)
{
    const int bb = q5 ? (int)sizeof(struct block_q5_k) : (int)sizeof(struct block_q4_k);
    const int qo = q5 ? 48 : 16;
    const __m512i lo4 = _mm512_set1_epi8(0x0f);
    /* lanes of the dot of codes v (sub-blocks order[2v], order[2v + 1]) -> scale index */
    const __m512i half = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
    __m512 acc[GEMV_MAX_B][2], accm[GEMV_MAX_B];
    for (int b = 0; b < nb; b++)
        acc[b][0] = acc[b][1] = accm[b] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *blk = row + i * bb;
        for (int l = 0; l < bb; l += 64)
            _mm_prefetch((const char *)(blk + PREFETCH + l), PREFETCH_HINT);
        /* f = [d * sc_j, dmin * m_j]: d and dmin are the block's first two fp16 */
        uint32_t dd;
        memcpy(&dd, blk, 4);
        const __m512 dm = _mm512_permutexvar_ps(
            _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
            _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128((int)dd))));
        const __m512 f = _mm512_mul_ps(
            _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q4k_scales(blk + 4))), dm);
        const __m512i p0 = _mm512_loadu_si512((const void *)(blk + qo));
        const __m512i p1 = _mm512_loadu_si512((const void *)(blk + qo + 64));
        __m512i u[4];
        u[0] = _mm512_and_si512(p0, lo4);
        u[1] = _mm512_and_si512(_mm512_srli_epi16(p0, 4), lo4);
        u[2] = _mm512_and_si512(p1, lo4);
        u[3] = _mm512_and_si512(_mm512_srli_epi16(p1, 4), lo4);
        if (q5) {
            const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const void *)(blk + 16)));
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) { /* sub-blocks a (low 32 bytes), a + 2 (high) */
                const int a = (v & 1) + 4 * (v >> 1);
                const __m512i bit = _mm512_mask_blend_epi8(0xffffffff00000000ull,
                                                           _mm512_set1_epi8((char)(1 << a)),
                                                           _mm512_set1_epi8((char)(4 << a)));
                u[v] = _mm512_mask_add_epi8(u[v], _mm512_test_epi8_mask(qh, bit), u[v],
                                            _mm512_set1_epi8(16));
            }
        }
        #pragma GCC unroll 8
        for (int b = 0; b < nb; b++) {
            /* lanes 0..7: d * da * sc_j; lanes 8..15: dmin * m_j * (-da * bsum_j) */
            const __m512 s = _mm512_mul_ps(f, _mm512_set1_ps(pl[b]->sa[i]));
            const __m512 mins = _mm512_zextps256_ps512(_mm256_loadu_ps(pl[b]->so + i * 8));
            accm[b] = _mm512_fmadd_ps(_mm512_shuffle_f32x4(f, f, 0xEE), mins, accm[b]);
            #pragma GCC unroll 8
            for (int v = 0; v < 4; v++) {
                __m512i d = _mm512_dpbusd_epi32(
                    _mm512_setzero_si512(), u[v],
                    _mm512_loadu_si512((const void *)(pl[b]->q + i * QK_K + 64 * v)));
                /* v = 0: sub-blocks 0, 2; 1: 1, 3; 2: 4, 6; 3: 5, 7 */
                const __m512i idx = _mm512_add_epi32(
                    half, _mm512_set1_epi32((v & 1) + 4 * (v >> 1)));
                acc[b][v & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d),
                                                _mm512_permutexvar_ps(idx, s), acc[b][v & 1]);
            }
        }
    }
    for (int b = 0; b < nb; b++) /* accm: lanes 0..7 only (mins is zero above) */
        out[b] = hsum2(_mm512_add_ps(acc[b][0], acc[b][1]), accm[b]);
}

static inline __attribute__((always_inline)) void
row_q6k(int nb, const uint8_t *row, const struct act_plan *const *pl, int64_t n, float *out)
{
    const __m512i m33 = _mm512_set1_epi8(0x33);
    __m512 acc[GEMV_MAX_B][2], accm[GEMV_MAX_B];
    for (int b = 0; b < nb; b++)
        acc[b][0] = acc[b][1] = accm[b] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *blk = row + i * sizeof(struct block_q6_k);
        for (int l = 0; l < (int)sizeof(struct block_q6_k); l += 64)
            _mm_prefetch((const char *)(blk + PREFETCH + l), PREFETCH_HINT);
        uint16_t dh;
        memcpy(&dh, blk + offsetof(struct block_q6_k, d), 2);
        const __m512 f = _mm512_mul_ps(
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                _mm_loadu_si128((const void *)(blk + offsetof(struct block_q6_k, scales))))),
            _mm512_set1_ps(_cvtsh_ss(dh)));
        __m512i u[4];
        #pragma GCC unroll 8
        for (int h = 0; h < 2; h++) {
            const __m512i ql = _mm512_loadu_si512((const void *)(blk + 64 * h));
            /* qh of this half in both 256-bit halves, the upper shifted by 2: bits 0-1 then
             * hold the high bits of codes 0..31 / 32..63, bits 4-5 those of 64..95 / 96..127 */
            __m512i q = _mm512_broadcast_i64x4(
                _mm256_loadu_si256((const void *)(blk + 128 + 32 * h)));
            q = _mm512_and_si512(_mm512_mask_srli_epi16(q, 0xffff0000u, q, 2), m33);
            /* low nibble from the first operand, bits 4-7 from the second (0xca: a ? b : c) */
            u[2 * h] = _mm512_ternarylogic_epi32(_mm512_set1_epi8(0x0f), ql,
                                                 _mm512_slli_epi16(q, 4), 0xca);
            u[2 * h + 1] = _mm512_ternarylogic_epi32(_mm512_set1_epi8(0x0f),
                                                     _mm512_srli_epi16(ql, 4), q, 0xca);
        }
        #pragma GCC unroll 8
        for (int b = 0; b < nb; b++) {
            const __m512 s = _mm512_mul_ps(f, _mm512_set1_ps(pl[b]->sa[i]));
            accm[b] = _mm512_fmadd_ps(f, _mm512_loadu_ps(pl[b]->so + i * 16), accm[b]);
            #pragma GCC unroll 8
            for (int v = 0; v < 4; v++) { /* 128-bit lane L of u[v] is sub-block 4v + L */
                __m512i d = _mm512_dpbusd_epi32(
                    _mm512_setzero_si512(), u[v],
                    _mm512_loadu_si512((const void *)(pl[b]->q + i * QK_K + 64 * v)));
                const __m512i idx = _mm512_add_epi32(
                    _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                    _mm512_set1_epi32(4 * v));
                acc[b][v & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d),
                                                _mm512_permutexvar_ps(idx, s), acc[b][v & 1]);
            }
        }
    }
    for (int b = 0; b < nb; b++)
        out[b] = hsum2(_mm512_add_ps(acc[b][0], acc[b][1]), accm[b]);
}

/* ---- Q4_0 with AVX512_VBMI: one vpermt2b picks the 16-byte nibble fields of 4 blocks out
 * of two 64-byte loads (8 blocks = 144 bytes = 3 loads, 2 permutes) instead of 4 loads and
 * 3 inserts per 4 blocks: ~20% fewer 512-bit uops per byte, the binding resource. */

__attribute__((target("avx512vbmi"), always_inline)) static inline void
row_q4_0_vbmi_nb(int nb, const uint8_t *row, const struct act_plan *const *pl, int64_t n,
                 float *out)
{
    /* byte 16k + j of the fields of blocks 0..3: 18k + 2 + j; of blocks 4..7 (from the loads
     * at 64 and 80): 72 + 18k + 2 + j, as an index into (bytes 64..127, bytes 80..143) */
    uint8_t i0[64], i1[64], id[64] = {0};
    for (int i = 0; i < 64; i++) {
        const int k = i / 16, j = i % 16, s = 72 + 18 * k + 2 + j;
        i0[i] = (uint8_t)(18 * k + 2 + j);
        i1[i] = (uint8_t)(s <= 127 ? s - 64 : 64 + s - 80);
    }
    for (int i = 0; i < 16; i++) /* the fp16 d of blocks 0..7: bytes 18k, 18k + 1 */
        id[i] = (uint8_t)(18 * (i / 2) + i % 2);
    const __m512i idx0 = _mm512_loadu_si512((const void *)i0);
    const __m512i idx1 = _mm512_loadu_si512((const void *)i1);
    const __m512i idxd = _mm512_loadu_si512((const void *)id);
    const __m512i lo4 = _mm512_set1_epi8(0x0f);
    __m512 acc[GEMV_MAX_B][2], accm[GEMV_MAX_B];
    for (int b = 0; b < nb; b++)
        acc[b][0] = acc[b][1] = accm[b] = _mm512_setzero_ps();
    for (int64_t c = 0; c < n / 512; c++) { /* 16 blocks */
        const uint8_t *blk = row + c * 16 * 18;
        for (int l = 0; l < 16 * 18; l += 64)
            _mm_prefetch((const char *)(blk + PREFETCH + l), PREFETCH_HINT);
        /* bytes 0..143 and 144..287 as (0, 64, 80) + 144h: no gather for the scales */
        __m512i v[2][3];
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 3; l++)
                v[h][l] = _mm512_loadu_si512((const void *)(blk + 144 * h + (l ? 48 + 16 * l : 0)));
        const __m512 dw = _mm512_cvtph_ps(_mm256_inserti128_si256(
            _mm256_castsi128_si256(
                _mm512_castsi512_si128(_mm512_permutex2var_epi8(v[0][0], idxd, v[0][1]))),
            _mm512_castsi512_si128(_mm512_permutex2var_epi8(v[1][0], idxd, v[1][1])), 1));
        __m512 s[GEMV_MAX_B];
#pragma GCC unroll 8
        for (int b = 0; b < nb; b++) {
            s[b] = _mm512_mul_ps(dw, _mm512_loadu_ps(pl[b]->sa + c * 16));
            accm[b] = _mm512_fmadd_ps(dw, _mm512_loadu_ps(pl[b]->so + c * 16), accm[b]);
        }
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) { /* blocks 4g .. 4g + 3 */
            const int h = g / 2;
            __m512i p = g % 2 == 0 ? _mm512_permutex2var_epi8(v[h][0], idx0, v[h][1])
                                   : _mm512_permutex2var_epi8(v[h][1], idx1, v[h][2]);
            __m512i lo = _mm512_and_si512(p, lo4);
            __m512i hi = _mm512_and_si512(_mm512_srli_epi16(p, 4), lo4);
            const __m512i idx = _mm512_add_epi32(
                _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                _mm512_set1_epi32(4 * g));
#pragma GCC unroll 8
            for (int b = 0; b < nb; b++) {
                const int8_t *q = pl[b]->q + c * 512 + 128 * g;
                __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo,
                                                _mm512_loadu_si512((const void *)q));
                d = _mm512_dpbusd_epi32(d, hi, _mm512_loadu_si512((const void *)(q + 64)));
                acc[b][g & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d),
                                                _mm512_permutexvar_ps(idx, s[b]), acc[b][g & 1]);
            }
        }
    }
    for (int b = 0; b < nb; b++)
        out[b] = hsum2(_mm512_add_ps(acc[b][0], acc[b][1]), accm[b]);
}

__attribute__((target("avx512vbmi"))) static void
row_q4_0_vbmi(int nb, const uint8_t *row, const struct act_plan *const *pl, int64_t n,
              float *out)
{
    switch (nb) {
    case 1: row_q4_0_vbmi_nb(1, row, pl, n, out); break;
    case 2: row_q4_0_vbmi_nb(2, row, pl, n, out); break;
    case 3: row_q4_0_vbmi_nb(3, row, pl, n, out); break;
    default: row_q4_0_vbmi_nb(4, row, pl, n, out); break;
    }
}

/* ---- Q8_0, 2..8 activation rows: 16 weight rows at a time, lanes = rows
 *
 * With several activation rows the loop above is compute-bound: per 64 weights and
 * activation row it spends a vpdpbusd, a conversion, a scale permute and an FMA, because
 * each vpdpbusd mixes two blocks with different scales. Here a block of 16 rows is
 * transposed in registers (32 shuffles, shared by every activation row) so that vector q
 * holds bytes 4q .. 4q + 3 of the block in each of the 16 rows; a chain of 8 vpdpbusd
 * against broadcasts of the activation's dwords then leaves every lane with one row's whole
 * block dot, and the scales apply once per block: 11 instructions per 512 products and
 * activation row instead of 32. */

#define R16_MAX_B 8

/* Z = 8 vectors [row a | row b] of one block's 32 codes (as 8 dwords each), paired
 * (0|4) (1|5) (2|6) (3|7) (8|12) (9|13) (10|14) (11|15): on return t[q] lane r holds dword
 * q of row r, rows in natural order. */
static inline __attribute__((always_inline)) void transpose_16x8(const __m512i z[8],
                                                                 __m512i t[8])
{
    __m512i a[8], b[8];
    #pragma GCC unroll 8
    for (int i = 0; i < 4; i++) {
        a[2 * i] = _mm512_unpacklo_epi32(z[2 * i], z[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_epi32(z[2 * i], z[2 * i + 1]);
    }
    #pragma GCC unroll 8
    for (int i = 0; i < 2; i++) { /* rows 0-3 (and 4-7) from a[0..3], 8-11 (12-15) from a[4..7] */
        b[4 * i + 0] = _mm512_unpacklo_epi64(a[4 * i], a[4 * i + 2]);
        b[4 * i + 1] = _mm512_unpackhi_epi64(a[4 * i], a[4 * i + 2]);
        b[4 * i + 2] = _mm512_unpacklo_epi64(a[4 * i + 1], a[4 * i + 3]);
        b[4 * i + 3] = _mm512_unpackhi_epi64(a[4 * i + 1], a[4 * i + 3]);
    }
    /* b[q] (q < 4): 128-bit lanes [rows 0-3 dword q | rows 0-3 dword q+4 | rows 4-7 dword q |
     * rows 4-7 dword q+4]; b[4 + q] the same for rows 8-15 */
    #pragma GCC unroll 8
    for (int q = 0; q < 4; q++) {
        t[q] = _mm512_shuffle_i32x4(b[q], b[4 + q], 0x88);
        t[q + 4] = _mm512_shuffle_i32x4(b[q], b[4 + q], 0xdd);
    }
}

#define R16_KB 512 /* blocks per K chunk: a Llama FFN row (14336) in one; the plan of 8 rows: 160 KB */

/* The activation rows of one K chunk, interleaved so one pointer reaches all of them:
 * q[j][b] the codes of block j of row b, s[j][b] = {da, -128 * da * sum(q)}. */
struct r16_plan {
    int8_t q[R16_KB][R16_MAX_B][32];
    float s[R16_KB][R16_MAX_B][2];
};

static void plan_r16(struct r16_plan *p, const uint8_t *xa, size_t xrb, int nb, int64_t j0,
                     int64_t nj)
{
    for (int b = 0; b < nb; b++)
        for (int64_t j = 0; j < nj; j++) {
            const struct block_q8_0 *x = (const void *)(xa + (size_t)b * xrb + (j0 + j) * 34);
            const int sum = sum_i8x32(x->qs);
            memcpy(p->q[j][b], x->qs, 32);
            p->s[j][b][0] = fp16_to_f32(x->d);
            p->s[j][b][1] = -128.0f * p->s[j][b][0] * (float)sum;
        }
}

/* Rows r .. r + nr - 1 (nr <= 16; a short group reads row nr - 1 in the missing lanes and
 * stores only nr outputs) of Q8_0 weights (row bytes rb, w at block j0 of row r) times the
 * nb planned activation rows over nj blocks (a multiple of 16); y[b * ldy + i] (+)= row
 * r + i . x[b].
 * The float steps are the prefill gemm's (matmul_q_avx512.c: group_step, chunks of 16
 * blocks summed from zero and added to y in order): per block s_w * (da * dot + (-128 *
 * da * sum(x))). So a row's result is the same whatever the batch (1 row, 2..8, the gemm's
 * 9 and more, VNNI or AMX) and wherever the thread split puts it, which greedy speculative
 * decoding needs (docs/speculative.md). */
static inline __attribute__((always_inline)) void
rows16_q8_0(int nb, int nr, const uint8_t *w, size_t rb, const struct r16_plan *p, int64_t nj,
            float *y, int64_t ldy, int first)
{
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i rowoff = _mm512_mullo_epi32(_mm512_min_epi32(lane, _mm512_set1_epi32(nr - 1)),
                                              _mm512_set1_epi32((int)rb));
    const __mmask16 keep = (__mmask16)((1u << nr) - 1);
    static const int pair[8][2] = {{0, 4}, {1, 5}, {2, 6}, {3, 7},
                                   {8, 12}, {9, 13}, {10, 14}, {11, 15}};
    size_t off[16];
    #pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        off[i] = (size_t)(i < nr ? i : nr - 1) * rb;
    __m512 acc[R16_MAX_B], tot[R16_MAX_B];
    #pragma GCC unroll 8
    for (int b = 0; b < nb; b++) {
        acc[b] = _mm512_setzero_ps();
        tot[b] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(keep, y + b * ldy);
    }
    for (int64_t j = 0; j < nj; j++) {
        const uint8_t *blk = w + j * 34;
        if ((j & 1) == 0)
            #pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                _mm_prefetch((const char *)(blk + off[i] + PREFETCH_R16), _MM_HINT_T0);
        __m512i z[8], t[8];
        #pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            __m256i lo = _mm256_loadu_si256((const void *)(blk + off[pair[i][0]] + 2));
            __m256i hi = _mm256_loadu_si256((const void *)(blk + off[pair[i][1]] + 2));
            z[i] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1),
                                    flip);
        }
        transpose_16x8(z, t);
        const __m512 dw = _mm512_cvtph_ps(
            _mm512_cvtepi32_epi16(_mm512_i32gather_epi32(rowoff, blk, 1)));
        #pragma GCC unroll 8
        for (int b = 0; b < nb; b++) {
            const int8_t *xq = p->q[j][b];
            /* broadcasts straight from memory (a load-port op); through a general register
             * gcc spent a shuffle-port op per dword */
#define XQ(q) _mm512_broadcastd_epi32(_mm_loadu_si32(xq + 4 * (q)))
            __m512i d0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), t[0], XQ(0));
            __m512i d1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), t[4], XQ(4));
            d0 = _mm512_dpbusd_epi32(d0, t[1], XQ(1));
            d1 = _mm512_dpbusd_epi32(d1, t[5], XQ(5));
            d0 = _mm512_dpbusd_epi32(d0, t[2], XQ(2));
            d1 = _mm512_dpbusd_epi32(d1, t[6], XQ(6));
            d0 = _mm512_dpbusd_epi32(d0, t[3], XQ(3));
            d1 = _mm512_dpbusd_epi32(d1, t[7], XQ(7));
#undef XQ
            __m512 f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(d0, d1)),
                                       _mm512_set1_ps(p->s[j][b][0]),
                                       _mm512_set1_ps(p->s[j][b][1]));
            acc[b] = _mm512_fmadd_ps(f, dw, acc[b]);
        }
        if ((j & 15) == 15) { /* the end of a gemm chunk: y = chunk (first) or y + chunk */
            #pragma GCC unroll 8
            for (int b = 0; b < nb; b++) {
                tot[b] = first && j == 15 ? acc[b] : _mm512_add_ps(tot[b], acc[b]);
                acc[b] = _mm512_setzero_ps();
            }
        }
    }
    #pragma GCC unroll 8
    for (int b = 0; b < nb; b++)
        _mm512_mask_storeu_ps(y + b * ldy, keep, tot[b]);
}

/* All rows of [r0, r1) for nb activation rows: groups of 16, then one short group. */
static inline __attribute__((always_inline)) void
rows_q8_0(int nb, const uint8_t *w, size_t rb, const struct r16_plan *p, int64_t j0, int64_t nj,
          float *y, int64_t ldy, int64_t r0, int64_t r1)
{
    int64_t r = r0;
    for (; r + 16 <= r1; r += 16)
        rows16_q8_0(nb, 16, w + (size_t)r * rb + j0 * 34, rb, p, nj, y + r, ldy, j0 == 0);
    if (r < r1)
        rows16_q8_0(nb, (int)(r1 - r), w + (size_t)r * rb + j0 * 34, rb, p, nj, y + r, ldy,
                    j0 == 0);
}

/* Q8_0 weights x 1..8 Q8_0 activation rows: K chunks of R16_KB blocks, each planned once
 * and run over every group of 16 rows. */
static void gemv_q8_0_r16(float *y, int64_t ldy, const void *wv, const void *xav, size_t xrb,
                          int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    const uint8_t *w = wv, *xa0 = xav;
    const size_t rb = (size_t)(n / 32) * 34;
    struct r16_plan plan;
    for (int64_t j0 = 0; j0 < n / 32 && r1 > r0; j0 += R16_KB) {
        const int64_t nj = n / 32 - j0 < R16_KB ? n / 32 - j0 : R16_KB;
        plan_r16(&plan, xa0, xrb, (int)n_b, j0, nj);
        switch (n_b) {
        case 1: rows_q8_0(1, w, rb, &plan, j0, nj, y, ldy, r0, r1); break;
        case 2: rows_q8_0(2, w, rb, &plan, j0, nj, y, ldy, r0, r1); break;
        case 3: rows_q8_0(3, w, rb, &plan, j0, nj, y, ldy, r0, r1); break;
        case 4: rows_q8_0(4, w, rb, &plan, j0, nj, y, ldy, r0, r1); break;
        case 5: rows_q8_0(5, w, rb, &plan, j0, nj, y, ldy, r0, r1); break;
        case 6: rows_q8_0(6, w, rb, &plan, j0, nj, y, ldy, r0, r1); break;
        case 7: rows_q8_0(7, w, rb, &plan, j0, nj, y, ldy, r0, r1); break;
        default: rows_q8_0(8, w, rb, &plan, j0, nj, y, ldy, r0, r1); break;
        }
    }
}

/* ---- drivers: plan each activation row, then stream the rows once */

enum gt { GT_Q8_0, GT_Q4_0, GT_Q4_1, GT_Q4_K, GT_Q6_K, GT_Q4_0_VBMI, GT_Q5_K };

static inline __attribute__((always_inline)) void
row_any(enum gt t, int nb, const uint8_t *row, const struct act_plan *const *pl, int64_t n,
        float *out)
{
    if (t == GT_Q4_0_VBMI)
        row_q4_0_vbmi(nb, row, pl, n, out);
    else if (t == GT_Q4_K || t == GT_Q5_K)
        row_q4k(t == GT_Q5_K, nb, row, pl, n, out);
    else if (t == GT_Q6_K)
        row_q6k(nb, row, pl, n, out);
    else
        row_q8_0((enum wq)t, nb, row, pl, n, out);
}

static inline __attribute__((always_inline)) void
gemv(enum gt t, float *y, int64_t ldy, const uint8_t *w, const uint8_t *xa, size_t xrb,
     int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    struct act_plan plans[GEMV_MAX_B]; /* ~390 KB of stack: no allocation per token */
    const struct act_plan *pl[GEMV_MAX_B];
    for (int64_t b = 0; b < n_b; b++) {
        if (t == GT_Q4_K || t == GT_Q5_K || t == GT_Q6_K)
            plan_k(t == GT_Q6_K ? WK_Q6_K : WK_Q4_K, &plans[b], xa + (size_t)b * xrb, n);
        else
            plan_q8_0(t == GT_Q4_0_VBMI ? WQ_Q4_0 : (enum wq)t, &plans[b],
                      xa + (size_t)b * xrb, n);
        pl[b] = &plans[b];
    }
    size_t rb = t == GT_Q4_K   ? (size_t)(n / QK_K) * sizeof(struct block_q4_k)
                : t == GT_Q5_K ? (size_t)(n / QK_K) * sizeof(struct block_q5_k)
                : t == GT_Q6_K ? (size_t)(n / QK_K) * sizeof(struct block_q6_k)
                : t == GT_Q4_0_VBMI
                    ? (size_t)(n / 32) * 18
                    : (size_t)(n / 32) * (size_t)wq_block_bytes((enum wq)t);
    for (int64_t r = r0; r < r1; r++) {
        float o[GEMV_MAX_B];
        const uint8_t *row = w + (size_t)r * rb;
        switch (n_b) {
        case 1: row_any(t, 1, row, pl, n, o); break;
        case 2: row_any(t, 2, row, pl, n, o); break;
        case 3: row_any(t, 3, row, pl, n, o); break;
        default: row_any(t, 4, row, pl, n, o); break;
        }
        for (int64_t b = 0; b < n_b; b++)
            y[b * ldy + r] = o[b];
    }
}

static void gemv_q8_0(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                      int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    gemv(GT_Q8_0, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

static void gemv_q4_0(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                      int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    gemv(GT_Q4_0, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

static void gemv_q4_0_vbmi(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                           int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    gemv(GT_Q4_0_VBMI, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

static void gemv_q4_1(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                      int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    gemv(GT_Q4_1, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

static void gemv_q4k(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                     int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    gemv(GT_Q4_K, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

static void gemv_q5k(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                     int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    gemv(GT_Q5_K, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

static void gemv_q6k(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                     int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    gemv(GT_Q6_K, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

/* Set once while the kernel tables are built (kernels.c, under pthread_once). */
static int use_vbmi, no_r16;

void gemv_q_avx512_init(void)
{
    /* no_vbmi: the pre-VBMI Q4_0 loop, for comparison and for its test */
    use_vbmi = __builtin_cpu_supports("avx512vbmi") && !kernels_options()->no_vbmi;
    /* no_r16: Q8_0 through the older one-row loop (passes of up to 4 rows), for comparison;
     * not batch invariant past 8 rows */
    no_r16 = kernels_options()->no_r16;
}

matmul_fn gemv_q_avx512(herd_dtype t, int64_t n, int64_t n_b)
{
    if (n % 512 != 0 || n > GEMV_MAX_N || n_b < 1 || n_b > R16_MAX_B)
        return NULL;
    if (t == HERD_DTYPE_Q8_0 && !no_r16)
        return gemv_q8_0_r16;
    if (n_b > GEMV_MAX_B)
        return NULL;
    switch (t) {
    case HERD_DTYPE_Q8_0: return gemv_q8_0;
    case HERD_DTYPE_Q4_0: return use_vbmi ? gemv_q4_0_vbmi : gemv_q4_0;
    case HERD_DTYPE_Q4_1: return gemv_q4_1;
    case HERD_DTYPE_Q4_K: return gemv_q4k;
    case HERD_DTYPE_Q5_K: return gemv_q5k;
    case HERD_DTYPE_Q6_K: return gemv_q6k;
    default: return NULL;
    }
}
