/*
 * matmul_q_avx512.c - integer-dot matrix products for the quantized weight types with
 * AVX-512 VNNI (vpdpbusd: unsigned 8-bit weights x signed 8-bit activations).
 *
 * One generic structure, one small decoder per type. A decoder turns a 512-weight chunk of
 * one row into eight 64-byte vectors of UNSIGNED codes u plus, per group of G weights
 * (G = 32, or 16 for Q6_K), a scale s and an offset term m, so that
 *     w = s * u + m            (Q4_0: s = d, m = -8d; Q8_0: u = q + 128, m = -128d;
 *                               Q4_1: m = min; K-quants: s = d * sc, m = -dmin * mn)
 * With activations a = da * q (per group), the product over one group is
 *     s * da * sum(u * q) + m * da * sum(q)
 * so the activation side needs, per group, da and DS = da * sum(q), prepared once per call.
 *
 * Two paths share the decoders:
 *  - gemv (n_b < 4, decode): each row is streamed once, decoded and dotted with each
 *    activation row; threads own contiguous row ranges, so the weights stream at memory
 *    bandwidth.
 *  - gemm (n_b >= 4, prefill): for each block of RB rows, each chunk of K and each panel
 *    of 16 rows, the decoded codes are repacked so one 64-byte vector holds 4 consecutive
 *    codes of 16 rows; the micro-kernel then does vpdpbusd(panel quad, broadcast of 4
 *    activation bytes) for up to 8 activation rows at once, so each decoded weight is
 *    reused by every activation row from L1 (a 16 x 8 register tile), and the block's
 *    outputs stay in L2 across the chunks.
 *  - gemm on AMX (the "amx" table, where the CPU has tiles and Linux grants them): TDPBUSD
 *    with 16 decoded weight rows as the first operand (codes as the decoder leaves them)
 *    and 16 activation rows' signed codes, packed once per call as quads, as the second;
 *    a product is a 16 weight row x 16 activation row block of the same exact int32 group
 *    sums vpdpbusd forms. Those go through the same float steps in the same order, so the
 *    AMX products equal the VNNI ones bit for bit; only the integer multiply-adds moved
 *    into the tile unit (see tiles_amx).
 */
#include "kernels/kernels.h"
#include "quant/quant.h"

#include <immintrin.h>

#include "simd512.h"

#define CHUNK 512 /* weights per decoder call: eight 64-byte vectors */

/* What the types differ in: block geometry and the activation format they pair with. */
enum qtype { QT_Q8_0, QT_Q4_0, QT_Q4_1, QT_Q4_K, QT_Q5_K, QT_Q6_K };

struct chunk {
    __m512i u[8];  /* codes, 64 per vector, weight order */
    __m512 s[2];   /* per-group scales: groups 0..15 in s[0], 16..31 in s[1] (G = 16) */
    __m512 m[2];   /* per-group offsets, same layout */
};

static inline int group_size(enum qtype t)
{
    return t == QT_Q6_K ? 16 : 32;
}

static inline int k_act(enum qtype t) /* activations are Q8_K rows (else Q8_0) */
{
    return t >= QT_Q4_K;
}

static inline size_t row_bytes(enum qtype t, int64_t n)
{
    switch (t) {
    case QT_Q8_0: return (size_t)(n / 32) * sizeof(struct block_q8_0);
    case QT_Q4_0: return (size_t)(n / 32) * sizeof(struct block_q4_0);
    case QT_Q4_1: return (size_t)(n / 32) * sizeof(struct block_q4_1);
    case QT_Q4_K: return (size_t)(n / 256) * sizeof(struct block_q4_k);
    case QT_Q5_K: return (size_t)(n / 256) * sizeof(struct block_q5_k);
    default: return (size_t)(n / 256) * sizeof(struct block_q6_k);
    }
}

/* Nibbles of 16 bytes q0 (block 2i) and q1 (block 2i+1) in weight order: for each block,
 * the low nibbles are its elements 0..15 and the high nibbles 16..31. */
static inline __m512i nibbles_2x16(__m128i q0, __m128i q1)
{
    __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(q0)),
                                   _mm256_broadcastsi128_si256(q1), 1);
    z = _mm512_mask_blend_epi8(0xFFFF0000FFFF0000ull, z, _mm512_srli_epi16(z, 4));
    return _mm512_and_si512(z, _mm512_set1_epi8(0x0f));
}

/* The 8 6-bit scales and mins of a Q4_K/Q5_K super-block as 16 bytes [sc0..7, m0..7]
 * (layout in cpu/ref/matmul_ref.c q4k_scale_min), done on 32-bit words. */
static inline __m128i k_scales(const uint8_t *q)
{
    uint32_t w0, w1, w2;
    memcpy(&w0, q, 4);
    memcpy(&w1, q + 4, 4);
    memcpy(&w2, q + 8, 4);
    uint32_t sc_lo = w0 & 0x3f3f3f3fu, m_lo = w1 & 0x3f3f3f3fu;
    uint32_t sc_hi = (w2 & 0x0f0f0f0fu) | (((w0 >> 6) & 0x03030303u) << 4);
    uint32_t m_hi = ((w2 >> 4) & 0x0f0f0f0fu) | (((w1 >> 6) & 0x03030303u) << 4);
    return _mm_setr_epi32((int)sc_lo, (int)sc_hi, (int)m_lo, (int)m_hi);
}

/* Scales [d*sc0..7, -dmin*m0..7] of one K super-block. */
static inline __m512 k_scale_vec(const uint8_t *blk)
{
    uint16_t d, dmin;
    memcpy(&d, blk, 2);
    memcpy(&dmin, blk + 2, 2);
    __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(k_scales(blk + 4)));
    __m512 f = _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(_cvtsh_ss(d)),
                                    _mm512_set1_ps(-_cvtsh_ss(dmin)));
    return _mm512_mul_ps(v, f);
}

static inline __attribute__((always_inline)) void decode(enum qtype t, const uint8_t *row,
                                                         int64_t c, struct chunk *o)
{
    if (t == QT_Q8_0) {
        const uint8_t *b = row + c * 16 * 34;
        for (int i = 0; i < 8; i++) {
            __m256i lo = _mm256_loadu_si256((const void *)(b + 2 * i * 34 + 2));
            __m256i hi = _mm256_loadu_si256((const void *)(b + (2 * i + 1) * 34 + 2));
            o->u[i] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1),
                                       _mm512_set1_epi8((char)0x80));
        }
        o->s[0] = gather_f16(b, 34);
        o->m[0] = _mm512_mul_ps(o->s[0], _mm512_set1_ps(-128.0f));
    } else if (t == QT_Q4_0 || t == QT_Q4_1) {
        const int bb = t == QT_Q4_0 ? 18 : 20, qo = t == QT_Q4_0 ? 2 : 4;
        const uint8_t *b = row + c * 16 * bb;
        for (int i = 0; i < 8; i++)
            o->u[i] = nibbles_2x16(_mm_loadu_si128((const void *)(b + 2 * i * bb + qo)),
                                   _mm_loadu_si128((const void *)(b + (2 * i + 1) * bb + qo)));
        o->s[0] = gather_f16(b, bb);
        o->m[0] = t == QT_Q4_0 ? _mm512_mul_ps(o->s[0], _mm512_set1_ps(-8.0f))
                               : gather_f16(b + 2, bb);
    } else if (t == QT_Q4_K || t == QT_Q5_K) {
        const int bb = t == QT_Q4_K ? 144 : 176, qo = t == QT_Q4_K ? 16 : 48;
        for (int h = 0; h < 2; h++) {
            const uint8_t *b = row + (c * 2 + h) * bb;
            __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const void *)(b + 16)));
            for (int i = 0; i < 4; i++) {
                __m512i z = _mm512_broadcast_i64x4(
                    _mm256_loadu_si256((const void *)(b + qo + 32 * i)));
                z = _mm512_mask_blend_epi8(0xFFFFFFFF00000000ull, z, _mm512_srli_epi16(z, 4));
                z = _mm512_and_si512(z, _mm512_set1_epi8(0x0f));
                if (t == QT_Q5_K) {
                    /* fifth bit of sub-block j is bit j of qh[l] */
                    __m512i bits = _mm512_mask_blend_epi8(0xFFFFFFFF00000000ull,
                                                          _mm512_set1_epi8((char)(1 << (2 * i))),
                                                          _mm512_set1_epi8((char)(2 << (2 * i))));
                    __mmask64 hb = _mm512_test_epi8_mask(qh, bits);
                    z = _mm512_mask_add_epi8(z, hb, z, _mm512_set1_epi8(16));
                }
                o->u[4 * h + i] = z;
            }
        }
        __m512 v0 = k_scale_vec(row + c * 2 * bb), v1 = k_scale_vec(row + (c * 2 + 1) * bb);
        o->s[0] = _mm512_shuffle_f32x4(v0, v1, 0x44);
        o->m[0] = _mm512_shuffle_f32x4(v0, v1, 0xEE);
    } else { /* Q6_K */
        for (int h = 0; h < 2; h++) {
            const uint8_t *b = row + (c * 2 + h) * 210;
            for (int half = 0; half < 2; half++) {
                __m512i ql = _mm512_loadu_si512((const void *)(b + 64 * half));
                __m512i qh = _mm512_broadcast_i64x4(
                    _mm256_loadu_si256((const void *)(b + 128 + 32 * half)));
                for (int k = 0; k < 2; k++) {
                    __m512i lo = k ? _mm512_srli_epi16(ql, 4) : ql;
                    lo = _mm512_and_si512(lo, _mm512_set1_epi8(0x0f));
                    /* elements 0..31 take qh bits 4k..4k+1, 32..63 bits 4k+2..4k+3 */
                    __m512i hi = _mm512_mask_blend_epi8(0xFFFFFFFF00000000ull,
                                                        _mm512_srli_epi16(qh, 4 * k),
                                                        _mm512_srli_epi16(qh, 4 * k + 2));
                    hi = _mm512_slli_epi16(_mm512_and_si512(hi, _mm512_set1_epi8(3)), 4);
                    o->u[4 * h + 2 * half + k] = _mm512_or_si512(lo, hi);
                }
            }
            uint16_t d;
            memcpy(&d, b + 208, 2);
            __m512 s = _mm512_mul_ps(
                _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const void *)(b + 192)))),
                _mm512_set1_ps(_cvtsh_ss(d)));
            o->s[h] = s;
            o->m[h] = _mm512_mul_ps(s, _mm512_set1_ps(-32.0f));
        }
    }
}

/* ---- activation side: per group da and DS = da * sum(q); the int8 codes stay in xa */

static inline const int8_t *act_codes(enum qtype t, const uint8_t *xa, int64_t k)
{
    if (k_act(t))
        return (const int8_t *)(xa + (k / QK_K) * sizeof(struct block_q8_k) + 4 + k % QK_K);
    return (const int8_t *)(xa + (k / 32) * 34 + 2 + k % 32);
}

static void act_prepare(enum qtype t, const uint8_t *xa, int64_t g0, int64_t ng, float *da,
                        float *ds)
{
    const int G = group_size(t);
    for (int64_t g = 0; g < ng; g++) {
        int64_t k = (g0 + g) * G;
        float d;
        int s = 0;
        if (k_act(t)) {
            const struct block_q8_k *b = (const void *)(xa + (k / QK_K) * sizeof *b);
            memcpy(&d, &b->d, 4);
            int j = (int)(k % QK_K) / 16;
            int16_t bs[2] = {0, 0};
            memcpy(bs, (const uint8_t *)b + offsetof(struct block_q8_k, bsums) + 2 * j,
                   (size_t)(G / 8)); /* one int16 per 16 weights */
            s = bs[0] + bs[1];
        } else {
            const struct block_q8_0 *b = (const void *)(xa + (k / 32) * 34);
            uint16_t h;
            memcpy(&h, &b->d, 2);
            d = _cvtsh_ss(h);
            s = sum_i8x32(b->qs);
        }
        da[g] = d;
        ds[g] = d * (float)s;
    }
}

/* 64 activation codes for vector i of chunk c. */
static inline __m512i act_vec(enum qtype t, const uint8_t *xa, int64_t c, int i)
{
    const int8_t *p = act_codes(t, xa, c * CHUNK + 64 * i);
    if (k_act(t))
        return _mm512_loadu_si512((const void *)p);
    __m256i lo = _mm256_loadu_si256((const void *)p);
    __m256i hi = _mm256_loadu_si256((const void *)(p + 34));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* ---- gemv: one row at a time, streamed */

static inline __attribute__((always_inline)) float row_dot(enum qtype t, const uint8_t *row,
                                                           const uint8_t *xa, const float *da,
                                                           const float *ds, int64_t n)
{
    const int G = group_size(t), gpc = CHUNK / G; /* groups per chunk */
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), accm = _mm512_setzero_ps();
    const __m512i half = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m512i quarter = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    for (int64_t c = 0; c < n / CHUNK; c++) {
        struct chunk ch;
        decode(t, row, c, &ch);
        __m512 sv[2];
        for (int h = 0; h < gpc / 16; h++) {
            sv[h] = _mm512_mul_ps(ch.s[h], _mm512_loadu_ps(da + c * gpc + 16 * h));
            accm = _mm512_fmadd_ps(ch.m[h], _mm512_loadu_ps(ds + c * gpc + 16 * h), accm);
        }
        for (int i = 0; i < 8; i++) {
            __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ch.u[i],
                                              act_vec(t, xa, c, i));
            __m512 scale;
            if (G == 32)
                scale = _mm512_permutexvar_ps(_mm512_add_epi32(half, _mm512_set1_epi32(2 * i)),
                                              sv[0]);
            else
                scale = _mm512_permutexvar_ps(
                    _mm512_add_epi32(quarter, _mm512_set1_epi32(4 * (i % 4))), sv[i / 4]);
            if (i % 2)
                acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc1);
            else
                acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc0);
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), accm));
}

/* Activation groups per pass of act_prepare on the stack: up to 64 Ki weights per row. */
#define MAX_GROUPS 4096

static inline __attribute__((always_inline)) void gemv(enum qtype t, float *y, int64_t ldy,
                                                       const uint8_t *w, const uint8_t *xa,
                                                       size_t xrb, int64_t n, int64_t n_b,
                                                       int64_t r0, int64_t r1)
{
    float da[MAX_GROUPS], ds[MAX_GROUPS];
    const size_t rb = row_bytes(t, n);
    for (int64_t b = 0; b < n_b; b++) {
        const uint8_t *x = xa + (size_t)b * xrb;
        act_prepare(t, x, 0, n / group_size(t), da, ds);
        for (int64_t r = r0; r < r1; r++) {
            _mm_prefetch((const char *)(w + (size_t)(r + 2) * rb), _MM_HINT_T0);
            y[b * ldy + r] = row_dot(t, w + (size_t)r * rb, x, da, ds, n);
        }
    }
}

/* ---- gemm: repacked 16-row panels, 16 x NR register tiles */

#define KC 512 /* weights of K per repacked panel (one chunk) */
#define NB_MAX 256 /* activation rows per pass (stack for their group factors) */
#define NR 8 /* activation rows per register tile */

struct panel {
    uint8_t q[KC / 4][16][4]; /* quad k/4 of rows 0..15: 64 bytes */
    float s[32][16];          /* per group, per row */
    float m[32][16];
};

static inline __attribute__((always_inline)) void repack(enum qtype t, struct panel *p,
                                                         const uint8_t *w, size_t rb,
                                                         int64_t r, int64_t nr, int64_t c)
{
    uint8_t codes[16][KC];
    float s[16][32], m[16][32];
    const int gpc = CHUNK / group_size(t);
    for (int i = 0; i < 16; i++) {
        struct chunk ch;
        decode(t, w + (size_t)(r + (i < nr ? i : nr - 1)) * rb, c, &ch);
        for (int v = 0; v < 8; v++)
            _mm512_storeu_si512((void *)&codes[i][64 * v], ch.u[v]);
        for (int h = 0; h < gpc / 16; h++) {
            _mm512_storeu_ps(&s[i][16 * h], ch.s[h]);
            _mm512_storeu_ps(&m[i][16 * h], ch.m[h]);
        }
    }
    const __m512i idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(KC));
    for (int q = 0; q < KC / 4; q++)
        _mm512_storeu_si512((void *)p->q[q],
                            _mm512_i32gather_epi32(idx, (const void *)&codes[0][4 * q], 1));
    const __m512i gidx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(32));
    for (int g = 0; g < gpc; g++) {
        _mm512_storeu_ps(p->s[g], _mm512_i32gather_ps(gidx, &s[0][g], 4));
        _mm512_storeu_ps(p->m[g], _mm512_i32gather_ps(gidx, &m[0][g], 4));
    }
}

/* The chunk's activation codes for tiles of NR rows: xq[tile][quad][NR] as 4-byte words, so
 * a tile's broadcasts walk one pointer (computing each row's block address per vpdpbusd
 * cost scalar ops on the vector ports). */
static inline __attribute__((always_inline)) void
pack_codes(enum qtype t, int32_t *xq, const uint8_t *xa, size_t xrb, int64_t nb, int64_t c)
{
    for (int64_t j = 0; j < nb; j++) {
        int32_t *d = xq + (j / NR) * (KC / 4) * NR + j % NR;
        const uint8_t *x = xa + (size_t)j * xrb;
        for (int64_t k = 0; k < KC; k += 32) /* 32 codes lie together in either format */
            for (int q = 0; q < 8; q++)
                memcpy(&d[(k / 4 + q) * NR], act_codes(t, x, c * KC + k + 4 * q), 4);
    }
}

/* m / s where the offset is a fixed multiple of the scale (Q8_0's -128 for unsigned codes,
 * Q4_0's -8, Q6_K's -32), else 0 (Q4_1 and Q4_K/Q5_K mins are free). */
static inline float offset_ratio(enum qtype t)
{
    return t == QT_Q8_0 ? -128.0f : t == QT_Q4_0 ? -8.0f : t == QT_Q6_K ? -32.0f : 0.0f;
}

/* One group's float steps: it = int32 sums of u * q, da and ds the activation factors, s and m
 * the weight rows' scales and offsets, each as a vector over what the sums span (the VNNI
 * tile: 16 weight rows of one activation row, da and ds broadcast; the AMX tile: 16
 * activation rows of one weight row, s and m broadcast). Offset types (m = ratio * s):
 * s * (da * it + ratio * DS) in two FMAs, ds holding ratio * DS (gemm scales it once per
 * pass); else da * it * s + m * DS. Every element sees the same operations on the same
 * operands either way, so VNNI and AMX round alike. */
static inline __attribute__((always_inline)) __m512 group_step(enum qtype t, __m512i it,
                                                               __m512 da, __m512 ds, __m512 s,
                                                               __m512 m, __m512 acc)
{
    if (offset_ratio(t) != 0.0f)
        return _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_cvtepi32_ps(it), da, ds), s, acc);
    acc = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(it), da), s, acc);
    return _mm512_fmadd_ps(m, ds, acc);
}

/* The panel's offsets of group g where group_step reads them (offset types: unused) */
static inline __attribute__((always_inline)) __m512 m_of(enum qtype t, const struct panel *p,
                                                         int g, __m512 s)
{
    return offset_ratio(t) != 0.0f ? s : _mm512_loadu_ps(p->m[g]);
}

/* y[b][r..r+16) (+)= panel . activation rows b0..b0+nb; nb <= NR, known at compile time. */
static inline __attribute__((always_inline)) void
tile(enum qtype t, int nb, const struct panel *p, const int32_t *xq, const float *da,
     const float *ds, int gpc, float *y, int64_t ldy, __mmask16 rmask, int first)
{
    const int G = group_size(t);
    __m512 acc[NR];
    #pragma GCC unroll 8
    for (int j = 0; j < nb; j++)
        acc[j] = _mm512_setzero_ps();
    for (int g = 0; g < gpc; g++) {
        __m512i it[NR];
        #pragma GCC unroll 8
        for (int j = 0; j < nb; j++)
            it[j] = _mm512_setzero_si512();
        #pragma GCC unroll 8
        for (int q = 0; q < G / 4; q++) {
            __m512i wq = _mm512_loadu_si512((const void *)p->q[g * G / 4 + q]);
            const int32_t *aq = xq + (g * G / 4 + q) * NR;
            #pragma GCC unroll 8
            for (int j = 0; j < nb; j++)
                it[j] = _mm512_dpbusd_epi32(it[j], wq,
                                            _mm512_broadcastd_epi32(_mm_loadu_si32(aq + j)));
        }
        __m512 s = _mm512_loadu_ps(p->s[g]), m = m_of(t, p, g, s);
        #pragma GCC unroll 8
        for (int j = 0; j < nb; j++)
            acc[j] = group_step(t, it[j], _mm512_set1_ps(da[j * gpc + g]),
                                _mm512_set1_ps(ds[j * gpc + g]), s, m, acc[j]);
    }
    #pragma GCC unroll 8
    for (int j = 0; j < nb; j++) {
        float *yj = y + j * ldy;
        __m512 v = first ? acc[j] : _mm512_add_ps(acc[j], _mm512_maskz_loadu_ps(rmask, yj));
        _mm512_mask_storeu_ps(yj, rmask, v);
    }
}

/* ---- gemm on AMX: the weights are the tile product's first operand.
 *
 * TDPBUSD (unsigned x signed bytes, int32 sums) multiplies A (16 rows x G codes) by B (G/4
 * quads x 16 columns of 4 bytes). A is 16 weight rows of decoded codes as decode() leaves
 * them, so a panel is the rows' codes one after another (no transpose); B is 16 activation
 * rows' codes in quads, packed once per call. C = 16 weight rows x 16 activation rows of
 * the same exact group sums vpdpbusd forms. Its float steps run per C row (one weight row,
 * a vector over the activation rows): the row's s and m broadcast, the activation rows' da
 * and ds loaded as vectors, so the AMX results equal the VNNI ones bit for bit.
 * A chunk's 16 x 16 results are transposed against y; they are added up in yt, a block of
 * RB weight rows x NB_MAX activation rows kept in that layout, and written to y once the
 * last chunk has added to it (the same additions in the same order as y += chunk). */

struct panel_amx {
    uint8_t q[16][KC]; /* row i's codes */
    float s[16][32];   /* row i's scale of group g */
    float m[16][32];
};

static inline __attribute__((always_inline)) void repack_amx(enum qtype t, struct panel_amx *p,
                                                             const uint8_t *w, size_t rb,
                                                             int64_t r, int64_t nr, int64_t c)
{
    const int gpc = CHUNK / group_size(t);
    for (int i = 0; i < 16; i++) {
        struct chunk ch;
        decode(t, w + (size_t)(r + (i < nr ? i : nr - 1)) * rb, c, &ch);
        for (int v = 0; v < 8; v++)
            _mm512_storeu_si512((void *)&p->q[i][64 * v], ch.u[v]);
        for (int h = 0; h < gpc / 16; h++) {
            _mm512_storeu_ps(&p->s[i][16 * h], ch.s[h]);
            if (offset_ratio(t) == 0.0f)
                _mm512_storeu_ps(&p->m[i][16 * h], ch.m[h]);
        }
    }
}

/* Activation rows 0 .. nb - 1 of xa, chunk c, as B tiles: xb[tile][group][G/4 quads][16
 * rows][4 bytes], and their factors as vectors over a tile's rows, daT/dsT[tile][group][16]
 * (ds scaled by the offset ratio). Rows past nb are zero. */
static inline __attribute__((always_inline)) void
pack_amx(enum qtype t, uint8_t *xb, float *daT, float *dsT, const uint8_t *xa, size_t xrb,
         int64_t nb, int64_t c)
{
    const int G = group_size(t), gpc = CHUNK / G;
    const __m512i rows = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32((int)xrb));
    const float ratio = offset_ratio(t) != 0.0f ? offset_ratio(t) : 1.0f; /* as gemm's ds */
    float da[32], ds[32];
    for (int64_t j0 = 0; j0 < nb; j0 += 16) {
        const int64_t jt = j0 / 16, n16 = nb - j0 < 16 ? nb - j0 : 16;
        const __mmask16 live = (__mmask16)((1u << n16) - 1);
        const uint8_t *x0 = xa + (size_t)j0 * xrb;
        for (int g = 0; g < gpc; g++) {
            /* byte offset of the group's codes within a row: the same for every row */
            const size_t off = (size_t)(act_codes(t, x0, c * KC + g * G) - (const int8_t *)x0);
            uint8_t *d = xb + ((size_t)(jt * gpc + g) * (G / 4)) * 64;
            for (int q = 0; q < G / 4; q++)
                _mm512_storeu_si512((void *)(d + q * 64),
                                    _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, rows,
                                                                (const void *)(x0 + off + 4 * q),
                                                                1));
        }
        float *dT = daT + jt * gpc * 16, *sT = dsT + jt * gpc * 16;
        for (int j = 0; j < 16; j++) {
            if (j < n16)
                act_prepare(t, x0 + (size_t)j * xrb, c * gpc, gpc, da, ds);
            for (int g = 0; g < gpc; g++) {
                dT[g * 16 + j] = j < n16 ? da[g] : 0.0f;
                sT[g * 16 + j] = j < n16 ? ds[g] * ratio : 0.0f;
            }
        }
    }
}

/* Group g's float steps for the 16 x 16 int32 sums c[weight row][activation row]; da16 and
 * ds16 are the 16 activation rows' factors of that group. */
static inline __attribute__((always_inline)) void
amx_epilogue(enum qtype t, const struct panel_amx *p, const int32_t (*c)[16], const float *da16,
             const float *ds16, int g, __m512 *acc)
{
    const __m512 da = _mm512_loadu_ps(da16), ds = _mm512_loadu_ps(ds16);
    #pragma GCC unroll 16
    for (int i = 0; i < 16; i++) {
        __m512 s = _mm512_set1_ps(p->s[i][g]);
        __m512 m = offset_ratio(t) != 0.0f ? s : _mm512_set1_ps(p->m[i][g]);
        acc[i] = group_step(t, _mm512_load_si512(c[i]), da, ds, s, m, acc[i]);
    }
}

/* GCC's tile intrinsics are asm without a memory clobber: this orders the tile loads after
 * the stores that packed their operands, and the epilogue's loads after the tile stores. */
#define AMX_FENCE() __asm__ __volatile__("" ::: "memory")

/* yt[tile][16 weight rows][16 activation rows] (+)= one chunk of the panel . ntile B tile
 * columns (xb), as one stream of steps: step s is group s % gpc of tile s / gpc, whose B
 * tile and factors lie at s in xb, daT and dsT. Step s's product goes to tmm2 (s even) or
 * tmm3 (s odd), is stored to c[s % 2], and its float steps run one step later: each tile
 * store then waits on a product issued an epilogue earlier, and each epilogue reads sums
 * stored an epilogue earlier (a tile store does not forward to loads; it commits only once
 * the products issued before it retire), so the tile unit and the vector units overlap,
 * across the tiles too (the next tile's first product is issued before this tile's last
 * float steps). */
#define AMX_PRODUCT(C, A, B, s)                                                               \
    do {                                                                                      \
        _tile_loadd(A, p->q[0] + ((s) % gpc) * G, KC);                                        \
        _tile_loadd(B, xb + (size_t)(s) * G * 16, 64);                                        \
        _tile_zero(C);                                                                        \
        _tile_dpbusd(C, A, B);                                                                \
    } while (0)
#define AMX_STEPS(buf, s)                                                                     \
    amx_epilogue(t, p, (const int32_t(*)[16])(buf), daT + (s) * 16, dsT + (s) * 16,          \
                 (int)((s) % gpc), acc)

/* A tile's chunk sum into yt, and its accumulators zeroed for the next tile. */
static inline __attribute__((always_inline)) void amx_finish(float *yt, __m512 *acc, int first)
{
    #pragma GCC unroll 16
    for (int i = 0; i < 16; i++) {
        _mm512_store_ps(yt + 16 * i,
                        first ? acc[i] : _mm512_add_ps(acc[i], _mm512_load_ps(yt + 16 * i)));
        acc[i] = _mm512_setzero_ps();
    }
}

static inline __attribute__((always_inline)) void
tiles_amx(enum qtype t, const struct panel_amx *p, const uint8_t *xb, const float *daT,
          const float *dsT, int64_t ntile, float *yt, int first)
{
    const int G = group_size(t), gpc = CHUNK / G; /* gpc is even: 16 or 32 */
    const int64_t n = ntile * gpc;
    _Alignas(64) int32_t c[2][16][16];
    __m512 acc[16];
    #pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        acc[i] = _mm512_setzero_ps();
    AMX_FENCE();
    AMX_PRODUCT(2, 0, 1, 0);
    for (int64_t s = 0; s < n; s += 2) {
        _tile_stored(2, c[0], 64);
        AMX_PRODUCT(3, 4, 5, s + 1);
        AMX_FENCE();
        if (s > 0) {
            AMX_STEPS(c[1], s - 1);
            if ((s - 1) % gpc == gpc - 1)
                amx_finish(yt + (s - 1) / gpc * 256, acc, first);
        }
        _tile_stored(3, c[1], 64);
        if (s + 2 < n)
            AMX_PRODUCT(2, 0, 1, s + 2);
        AMX_FENCE();
        AMX_STEPS(c[0], s);
    }
    AMX_FENCE();
    AMX_STEPS(c[1], n - 1);
    amx_finish(yt + (n - 1) / gpc * 256, acc, first);
}
#undef AMX_STEPS
#undef AMX_PRODUCT

/* y rows b .. b + nb - 1 (nb <= 16), columns r .. r + 16 under rmask, from yt[column][row]. */
static void amx_store(float *y, int64_t ldy, const float *yt, int64_t nb, __mmask16 rmask)
{
    const __m512i col = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(16));
    for (int64_t j = 0; j < nb; j++)
        _mm512_mask_storeu_ps(y + j * ldy, rmask, _mm512_i32gather_ps(col, yt + j, 4));
}

/* The tile shapes for group size G: A (16 weight rows x G codes) in tmm0/4, B (G/4 quads x
 * 16 activation rows) in tmm1/5, the int32 sums in tmm2/3. Loaded per call: the
 * configuration is per thread, and released after so the thread's context switches save no
 * tile state. */
static void amx_configure(int G)
{
    _Alignas(64) uint8_t cfg[64] = {0};
    cfg[0] = 1; /* palette 1 */
    static const int rows_of[6] = {16, 0, 16, 16, 16, 0};
    for (int i = 0; i < 6; i++) {
        int rows = i == 1 || i == 5 ? G / 4 : rows_of[i];
        int colsb = i == 0 || i == 4 ? G : 64;
        cfg[16 + 2 * i] = (uint8_t)colsb;
        cfg[48 + i] = (uint8_t)rows;
    }
    AMX_FENCE(); /* the intrinsic's asm names only 8 bytes of cfg as its operand */
    _tile_loadconfig(cfg);
}

/* The next panel's 16 row pieces (cb bytes each, row stride rb), while panel r of chunk c
 * computes: too many short streams for the hardware prefetcher, and decoding them stalled
 * on DRAM. Next: the block's (rows rb0 .. rb1) next panel, or its first at chunk c + 1, or
 * the next block's first at chunk 0. */
static inline __attribute__((always_inline)) void
prefetch_next_panel(const uint8_t *w, size_t rb, size_t cb, int64_t r, int64_t c, int64_t rb0,
                    int64_t rb1, int64_t r1, int64_t nch)
{
    int64_t pr = r + 16, pc = c;
    if (pr >= rb1) {
        pr = c + 1 < nch ? rb0 : rb1;
        pc = c + 1 < nch ? c + 1 : 0;
    }
    for (int64_t i = pr; i < pr + 16 && i < r1; i++)
        for (size_t l = 0; l < cb; l += 64)
            _mm_prefetch((const char *)(w + (size_t)i * rb + (size_t)pc * cb + l), _MM_HINT_T0);
}

/* Output rows per block. A block's n_b x RB outputs stay in L2 while every chunk of K
 * adds to them; over all of a thread's rows at once (7168 rows x 256 activation rows is
 * 7 MB) each chunk re-read and re-wrote y from L3, a fifth of the Q4_K gemm's time. */
#define RB 128

static inline __attribute__((always_inline)) void
gemm(enum qtype t, float *y, int64_t ldy, const uint8_t *w, const uint8_t *xa,
     size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    struct panel p;
    float da1[NB_MAX * 32], ds1[NB_MAX * 32];
    int32_t xq1[NB_MAX * KC / 4];
    const int gpc = CHUNK / group_size(t);
    const int64_t nch = n / KC;
    const size_t rb = row_bytes(t, n), cb = rb / (size_t)nch; /* bytes of a row chunk */
    /* Blocks of RB rows need every chunk's packed activations at once (packed while the
     * first block runs). Without that memory, or with rows for one block only: one block
     * of all rows, one chunk packed at a time on the stack. */
    const size_t xq_bytes = sizeof xq1, f_bytes = sizeof da1;
    uint8_t *all = r1 - r0 > RB ? herd_malloc((size_t)nch * (xq_bytes + 2 * f_bytes)) : NULL;
    for (int64_t b0 = 0; b0 < n_b; b0 += NB_MAX) {
        const int64_t nbp = n_b - b0 < NB_MAX ? n_b - b0 : NB_MAX;
        for (int64_t rb0 = r0; rb0 < r1; rb0 += all ? RB : r1 - r0) {
            const int64_t rb1 = all && r1 - rb0 > RB ? rb0 + RB : r1;
            for (int64_t c = 0; c < nch; c++) {
                uint8_t *slot = all ? all + (size_t)c * (xq_bytes + 2 * f_bytes) : NULL;
                int32_t *xq = slot ? (int32_t *)(void *)slot : xq1;
                float *da = slot ? (float *)(void *)(slot + xq_bytes) : da1;
                float *ds = slot ? (float *)(void *)(slot + xq_bytes + f_bytes) : ds1;
                if (rb0 == r0) {
                    for (int64_t j = 0; j < nbp; j++)
                        act_prepare(t, xa + (size_t)(b0 + j) * xrb, c * gpc, gpc,
                                    da + j * gpc, ds + j * gpc);
                    if (offset_ratio(t) != 0.0f)
                        for (int64_t i = 0; i < nbp * gpc; i++)
                            ds[i] *= offset_ratio(t);
                    pack_codes(t, xq, xa + (size_t)b0 * xrb, xrb, nbp, c);
                }
                for (int64_t r = rb0; r < rb1; r += 16) {
                    const int64_t nr = rb1 - r < 16 ? rb1 - r : 16;
                    const __mmask16 rmask = (__mmask16)((1u << nr) - 1);
                    repack(t, &p, w, rb, r, nr, c);
                    prefetch_next_panel(w, rb, cb, r, c, rb0, rb1, r1, nch);
                    for (int64_t j = 0; j < nbp; j += NR) {
                        float *yb = y + (b0 + j) * ldy + r;
                        const int32_t *xqj = xq + (j / NR) * (KC / 4) * NR;
                        const float *daj = da + j * gpc, *dsj = ds + j * gpc;
#define TILE(nb) tile(t, nb, &p, xqj, daj, dsj, gpc, yb, ldy, rmask, c == 0)
                        switch (nbp - j < NR ? nbp - j : NR) {
                        case 1: TILE(1); break;
                        case 2: TILE(2); break;
                        case 3: TILE(3); break;
                        case 4: TILE(4); break;
                        case 5: TILE(5); break;
                        case 6: TILE(6); break;
                        case 7: TILE(7); break;
                        default: TILE(8); break;
                        }
#undef TILE
                    }
                }
            }
        }
    }
    herd_free(all);
}

/* gemm() on AMX tiles (see tiles_amx): the same blocks of RB rows, each chunk's activations
 * packed while the first block runs, the block's sums in yt until its last chunk. Without
 * the memory for that, the VNNI gemm. */
static inline __attribute__((always_inline)) void
gemm_amx(enum qtype t, float *y, int64_t ldy, const uint8_t *w, const uint8_t *xa, size_t xrb,
         int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    const int64_t nch = n / KC;
    const size_t rb = row_bytes(t, n), cb = rb / (size_t)nch;
    const size_t xb_bytes = (size_t)NB_MAX * KC, f_bytes = (size_t)NB_MAX * 32 * sizeof(float);
    const size_t slot_bytes = xb_bytes + 2 * f_bytes, yt_bytes = (size_t)RB * NB_MAX * sizeof(float);
    uint8_t *all = herd_malloc_aligned((size_t)nch * slot_bytes + yt_bytes, 64);
    if (!all) {
        gemm(t, y, ldy, w, xa, xrb, n, n_b, r0, r1);
        return;
    }
    float *yt = (float *)(void *)(all + (size_t)nch * slot_bytes); /* 64-byte aligned */
    struct panel_amx p;
    amx_configure(group_size(t));
    for (int64_t b0 = 0; b0 < n_b; b0 += NB_MAX) {
        const int64_t nbp = n_b - b0 < NB_MAX ? n_b - b0 : NB_MAX, ntile = (nbp + 15) / 16;
        for (int64_t rb0 = r0; rb0 < r1; rb0 += RB) {
            const int64_t rb1 = r1 - rb0 > RB ? rb0 + RB : r1;
            for (int64_t c = 0; c < nch; c++) {
                uint8_t *xb = all + (size_t)c * slot_bytes;
                float *daT = (float *)(void *)(xb + xb_bytes), *dsT = daT + NB_MAX * 32;
                if (rb0 == r0)
                    pack_amx(t, xb, daT, dsT, xa + (size_t)b0 * xrb, xrb, nbp, c);
                for (int64_t r = rb0; r < rb1; r += 16) {
                    repack_amx(t, &p, w, rb, r, rb1 - r < 16 ? rb1 - r : 16, c);
                    prefetch_next_panel(w, rb, cb, r, c, rb0, rb1, r1, nch);
                    tiles_amx(t, &p, xb, daT, dsT, ntile,
                              yt + (r - rb0) / 16 * (NB_MAX / 16) * 256, c == 0);
                }
            }
            for (int64_t r = rb0; r < rb1; r += 16) {
                const int64_t nr = rb1 - r < 16 ? rb1 - r : 16;
                const float *ytp = yt + (r - rb0) / 16 * (NB_MAX / 16) * 256;
                for (int64_t jt = 0; jt < ntile; jt++)
                    amx_store(y + (b0 + jt * 16) * ldy + r, ldy, ytp + jt * 256,
                              nbp - jt * 16 < 16 ? nbp - jt * 16 : 16,
                              (__mmask16)((1u << nr) - 1));
            }
        }
    }
    _tile_release();
    herd_free_aligned(all);
}

/* n_b below this streams rows (decode); at or above, repacked panels (prefill). */
#define GEMM_MIN_NB 9 /* below: gemv passes (measured: 8 rows in 2 passes < one gemm) */

/* Rows whose length is not a multiple of 512 (no Llama weight) go to the table entry this
 * variant replaced (avx2 or ref). */
static matmul_fn fallback[HERD_N_DTYPES];

static inline __attribute__((always_inline)) void
matmul_q(enum qtype t, int amx, herd_dtype dt, float *y, int64_t ldy, const void *w, const void *xa,
         size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_fn whole = n_b < GEMM_MIN_NB ? gemv_q_avx512(dt, n, n_b) : NULL;
    matmul_fn fast = n_b < GEMM_MIN_NB ? gemv_q_avx512(dt, n, 1) : NULL;
    if (whole) {
        whole(y, ldy, w, xa, xrb, n, n_b, r0, r1);
    } else if (fast) {
        /* Small batches (decode, a few server slots): passes of up to 4 activation rows
         * over the streamed weights beat repacking them into gemm panels. */
        for (int64_t b0 = 0; b0 < n_b; b0 += 4) {
            int64_t nb = n_b - b0 < 4 ? n_b - b0 : 4;
            fast(y + b0 * ldy, ldy, w, (const uint8_t *)xa + (size_t)b0 * xrb, xrb, n, nb,
                 r0, r1);
        }
    }
    else if (n % CHUNK != 0 || n / group_size(t) > MAX_GROUPS)
        fallback[dt](y, ldy, w, xa, xrb, n, n_b, r0, r1);
    else if (n_b >= GEMM_MIN_NB)
        if (amx)
            gemm_amx(t, y, ldy, w, xa, xrb, n, n_b, r0, r1);
        else
            gemm(t, y, ldy, w, xa, xrb, n, n_b, r0, r1);
    else
        gemv(t, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

/* The table entries: one per weight type, with VNNI or AMX for the gemm path. */
#define MATMUL_Q(name, qt, dt)                                                                \
    static void matmul_##name##_avx512(float *y, int64_t ldy, const void *w, const void *xa, \
                                       size_t xrb, int64_t n, int64_t n_b, int64_t r0,       \
                                       int64_t r1)                                           \
    {                                                                                         \
        matmul_q(qt, 0, dt, y, ldy, w, xa, xrb, n, n_b, r0, r1);                              \
    }                                                                                         \
    static void matmul_##name##_amx(float *y, int64_t ldy, const void *w, const void *xa,    \
                                    size_t xrb, int64_t n, int64_t n_b, int64_t r0,          \
                                    int64_t r1)                                              \
    {                                                                                         \
        matmul_q(qt, 1, dt, y, ldy, w, xa, xrb, n, n_b, r0, r1);                              \
    }
MATMUL_Q(q8_0_q8_0, QT_Q8_0, HERD_DTYPE_Q8_0)
MATMUL_Q(q4_0_q8_0, QT_Q4_0, HERD_DTYPE_Q4_0)
MATMUL_Q(q4_1_q8_0, QT_Q4_1, HERD_DTYPE_Q4_1)
MATMUL_Q(q4k_q8k, QT_Q4_K, HERD_DTYPE_Q4_K)
MATMUL_Q(q5k_q8k, QT_Q5_K, HERD_DTYPE_Q5_K)
MATMUL_Q(q6k_q8k, QT_Q6_K, HERD_DTYPE_Q6_K)
#undef MATMUL_Q

void kernels_fill_matmul_q_avx512(struct herd_cpu_kernels *k)
{
    gemv_q_avx512_init();
    static const struct {
        herd_dtype t;
        matmul_fn fn;
    } fns[] = {
        {HERD_DTYPE_Q8_0, matmul_q8_0_q8_0_avx512}, {HERD_DTYPE_Q4_0, matmul_q4_0_q8_0_avx512},
        {HERD_DTYPE_Q4_1, matmul_q4_1_q8_0_avx512}, {HERD_DTYPE_Q4_K, matmul_q4k_q8k_avx512},
        {HERD_DTYPE_Q5_K, matmul_q5k_q8k_avx512},   {HERD_DTYPE_Q6_K, matmul_q6k_q8k_avx512},
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        /* act_type and convert stay as filled before: the same Q8_0 / Q8_K rows */
        if (k->mm[fns[i].t].matmul != fns[i].fn)
            fallback[fns[i].t] = k->mm[fns[i].t].matmul;
        k->mm[fns[i].t].matmul = fns[i].fn;
    }
}

/* The amx table: the avx512 one (filled first, so fallback[] already holds what avx2 had)
 * with the gemm path on tiles. */
void kernels_fill_matmul_q_amx(struct herd_cpu_kernels *k)
{
    static const struct {
        herd_dtype t;
        matmul_fn fn;
    } fns[] = {
        {HERD_DTYPE_Q8_0, matmul_q8_0_q8_0_amx}, {HERD_DTYPE_Q4_0, matmul_q4_0_q8_0_amx},
        {HERD_DTYPE_Q4_1, matmul_q4_1_q8_0_amx}, {HERD_DTYPE_Q4_K, matmul_q4k_q8k_amx},
        {HERD_DTYPE_Q5_K, matmul_q5k_q8k_amx},   {HERD_DTYPE_Q6_K, matmul_q6k_q8k_amx},
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        k->mm[fns[i].t].matmul = fns[i].fn;
}
