/*
 * matmul_q_avx2.c - integer-dot matrix products for the quantized weight types with AVX2
 * (vpmaddubsw + vpmaddwd; no VNNI needed). Same semantics as the scalar reference
 * (cpu/ref/matmul_ref.c) up to f32 reassociation.
 *
 * One loop for every type, one small decoder per type (the AVX-512 code has the same split):
 * a decoder turns a 32-weight group of a row into 32 UNSIGNED codes u, a per-lane scale s
 * (lanes 0-3 hold the first 16 weights' dot, 4-7 the second 16's; they differ only for
 * Q6_K) and offsets m0, m1 per 16 weights, so that w = s * u + m. With activations
 * a = da * q the group contributes s * da * sum(u * q) + m * da * sum(q); the da and
 * da * sum(q) factors come once per call from act_group_sums (cpu/ref). Q8_0 weights are
 * signed: their products use |w| and sign(q, w), as vpmaddubsw needs one unsigned side
 * (|w| <= 128 keeps the pair sums inside int16).
 *
 * Loop order: chunks of K (all of a row for decode, 256 weights for prefill so the
 * activation chunk of every row in the pass stays in L2), then weight rows, then tiles of
 * up to 4 activation rows that reuse each decoded group.
 */
#include "kernels/kernels.h"
#include "quant/quant.h"

#include <immintrin.h>

enum qtype { QT_Q8_0, QT_Q4_0, QT_Q4_1, QT_Q4_K, QT_Q5_K, QT_Q6_K };

struct group {
    __m256i u; /* 32 codes */
    __m256 s;  /* per-lane scale of the 8 int32 partial dots */
    float m0, m1;
};

static inline int k_type(enum qtype t)
{
    return t >= QT_Q4_K;
}

static inline size_t row_bytes(enum qtype t, int64_t n)
{
    static const size_t per32[] = {34, 18, 20};
    static const size_t per256[] = {144, 176, 210};
    return k_type(t) ? (size_t)(n / 256) * per256[t - QT_Q4_K] : (size_t)(n / 32) * per32[t];
}

static inline float f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* K-quant scales of the current super-block, decoded once for its 8 groups: per 16-weight
 * half-group h the scale s[h] and offset m[h] (Q4_K/Q5_K: equal within a group). */
struct ksb {
    int64_t sb; /* super-block these belong to; -1: none yet */
    float s[16], m[16];
};

/* [sc0..7] and [m0..7] of a Q4_K/Q5_K super-block as bytes (layout: cpu/ref q4k_scale_min),
 * on 32-bit words. */
static inline void q4k_scales8(const uint8_t *q, uint64_t *sc, uint64_t *m)
{
    uint32_t w0, w1, w2;
    memcpy(&w0, q, 4);
    memcpy(&w1, q + 4, 4);
    memcpy(&w2, q + 8, 4);
    *sc = (w0 & 0x3f3f3f3fu) |
          (uint64_t)((w2 & 0x0f0f0f0fu) | (((w0 >> 6) & 0x03030303u) << 4)) << 32;
    *m = (w1 & 0x3f3f3f3fu) |
         (uint64_t)(((w2 >> 4) & 0x0f0f0f0fu) | (((w1 >> 6) & 0x03030303u) << 4)) << 32;
}

/* 8 bytes as floats, each repeated twice: one per 16-weight half-group. */
static inline void store_pairs(float *dst, uint64_t bytes, float f)
{
    __m256 v = _mm256_mul_ps(
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)bytes))),
        _mm256_set1_ps(f));
    _mm256_storeu_ps(dst, _mm256_unpacklo_ps(v, v));       /* groups 0,1 | 4,5 */
    _mm256_storeu_ps(dst + 8, _mm256_unpackhi_ps(v, v));   /* groups 2,3 | 6,7 */
}

static inline void ksb_load(enum qtype t, const uint8_t *row, int64_t sb, struct ksb *c)
{
    c->sb = sb;
    if (t == QT_Q6_K) {
        const uint8_t *b = row + sb * 210;
        const __m256 d = _mm256_set1_ps(f16(b + 208));
        for (int h = 0; h < 16; h += 8) {
            __m256 v = _mm256_mul_ps(
                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const void *)(b + 192 + h)))),
                d);
            _mm256_storeu_ps(c->s + h, v);
            _mm256_storeu_ps(c->m + h, _mm256_mul_ps(v, _mm256_set1_ps(-32.0f)));
        }
        return;
    }
    const uint8_t *b = row + sb * (t == QT_Q4_K ? 144 : 176);
    uint64_t sc, mn;
    q4k_scales8(b + 4, &sc, &mn);
    float tmp[16];
    store_pairs(tmp, sc, f16(b));
    /* unpack order within 128-bit lanes: [0,0,1,1 | 4,4,5,5], [2,2,3,3 | 6,6,7,7] */
    static const int ord[16] = {0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15};
    for (int h = 0; h < 16; h++)
        c->s[h] = tmp[ord[h]];
    store_pairs(tmp, mn, -f16(b + 2));
    for (int h = 0; h < 16; h++)
        c->m[h] = tmp[ord[h]];
}

static inline __m256i nibbles(__m128i q) /* low nibbles then high nibbles of 16 bytes */
{
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0f));
}

static inline __attribute__((always_inline)) void decode(enum qtype t, const uint8_t *row,
                                                         int64_t g, int j,
                                                         const struct ksb *c,
                                                         struct group *o)
{
    const __m256i lo4 = _mm256_set1_epi8(0x0f);
    if (t == QT_Q8_0 || t == QT_Q4_0 || t == QT_Q4_1) {
        const uint8_t *b = row + g * (t == QT_Q8_0 ? 34 : t == QT_Q4_0 ? 18 : 20);
        const float d = f16(b);
        o->s = _mm256_set1_ps(d);
        if (t == QT_Q8_0) {
            o->u = _mm256_loadu_si256((const void *)(b + 2)); /* signed: see dot() */
            o->m0 = o->m1 = 0.0f;
        } else if (t == QT_Q4_0) {
            o->u = nibbles(_mm_loadu_si128((const void *)(b + 2)));
            o->m0 = o->m1 = -8.0f * d;
        } else {
            o->u = nibbles(_mm_loadu_si128((const void *)(b + 4)));
            o->m0 = o->m1 = f16(b + 2);
        }
    } else if (t == QT_Q4_K || t == QT_Q5_K) {
        const int bb = t == QT_Q4_K ? 144 : 176, qo = t == QT_Q4_K ? 16 : 48;
        const uint8_t *b = row + (g / 8) * bb;
        __m256i q = _mm256_loadu_si256((const void *)(b + qo + 32 * (j / 2)));
        o->u = _mm256_and_si256(j & 1 ? _mm256_srli_epi16(q, 4) : q, lo4);
        if (t == QT_Q5_K) { /* fifth bit of sub-block j: bit j of qh[l] */
            const __m256i bit = _mm256_set1_epi8((char)(1 << j));
            __m256i hb = _mm256_cmpeq_epi8(
                _mm256_and_si256(_mm256_loadu_si256((const void *)(b + 16)), bit), bit);
            o->u = _mm256_or_si256(o->u, _mm256_and_si256(hb, _mm256_set1_epi8(16)));
        }
        o->s = _mm256_set1_ps(c->s[2 * j]);
        o->m0 = o->m1 = 0.0f; /* mins: per super-block in tile() */
    } else { /* Q6_K: group j of 32 = weights 32k.. of half h (layout: cpu/ref q6k_value) */
        const int h = j / 4, k = j % 4;
        const uint8_t *b = row + (g / 8) * 210;
        __m256i ql = _mm256_loadu_si256((const void *)(b + 64 * h + 32 * (k % 2)));
        __m256i qh = _mm256_loadu_si256((const void *)(b + 128 + 32 * h));
        ql = _mm256_and_si256(k >= 2 ? _mm256_srli_epi16(ql, 4) : ql, lo4);
        qh = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * k)),
                              _mm256_set1_epi8(3));
        o->u = _mm256_or_si256(ql, _mm256_slli_epi16(qh, 4));
        o->s = _mm256_set_m128(_mm_set1_ps(c->s[2 * j + 1]), _mm_set1_ps(c->s[2 * j]));
        o->m0 = o->m1 = 0.0f; /* offsets: per super-block in tile() */
    }
}

/* The 32 activation codes of group g. */
static inline const void *act_codes(enum qtype t, const uint8_t *xa, int64_t g)
{
    if (k_type(t))
        return xa + (g / 8) * sizeof(struct block_q8_k) + 4 + 32 * (g % 8);
    return xa + g * sizeof(struct block_q8_0) + 2;
}

/* 8 int32 partial dots (4 codes each) of a decoded group with activation codes at q. */
static inline __m256i dot(enum qtype t, __m256i u, const void *q)
{
    __m256i a = _mm256_loadu_si256(q), p;
    if (t == QT_Q8_0)
        p = _mm256_maddubs_epi16(_mm256_sign_epi8(u, u), _mm256_sign_epi8(a, u));
    else
        p = _mm256_maddubs_epi16(u, a);
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#define NBT 4        /* activation rows per tile */
#define KC_PREFILL 256 /* weights of K per chunk when n_b >= NB_DECODE */
#define KC_DECODE 8192
/* Below this many activation rows (decode, server slots, a speculative verification of up
 * to 15 drafts) K goes in the same chunks as for one row, so each row's sums are added in
 * the same order whatever n_b is: a batch gives each row what it would get alone. */
#define NB_DECODE 16
#define NB_PASS 128  /* activation rows per pass (stack for their group factors) */
/* 32-groups per pass: max(NB_PASS * 256, (NB_DECODE - 1) * KC_DECODE) / 32 */
#define MAX_G ((NB_DECODE - 1) * KC_DECODE / 32)

/* y[b][r] (+)= row r . activation rows b < nb over groups [g0, g0 + ng). */
static inline __attribute__((always_inline)) void
tile(enum qtype t, int nb, const uint8_t *row, const uint8_t *xa, size_t xrb, int64_t g0,
     int64_t ng, const float *da, const float *ds, int64_t gstride, float *y, int64_t ldy,
     int first)
{
    __m256 acc[NBT], accv[NBT]; /* accv: K-quant offsets, summed once at the end */
    float accm[NBT];
    for (int b = 0; b < nb; b++) {
        acc[b] = accv[b] = _mm256_setzero_ps();
        accm[b] = 0.0f;
    }
    struct ksb c;
    for (int64_t g8 = 0; g8 < ng; g8 += 8) { /* g0 % 8 == 0: j is the group in its super-block */
        if (k_type(t))
            ksb_load(t, row, (g0 + g8) / 8, &c);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            const int64_t g = g8 + j;
            if (g >= ng)
                break;
            struct group o;
            decode(t, row, g0 + g, j, &c, &o);
#pragma GCC unroll 4
            for (int b = 0; b < nb; b++) {
                const float *dab = da + b * gstride, *dsb = ds + 2 * b * gstride;
                __m256i i = dot(t, o.u, act_codes(t, xa + (size_t)b * xrb, g0 + g));
                acc[b] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i),
                                         _mm256_mul_ps(o.s, _mm256_set1_ps(dab[g])), acc[b]);
                if (!k_type(t))
                    accm[b] += o.m0 * dsb[2 * g] + o.m1 * dsb[2 * g + 1];
                else if (j == 0) /* the super-block's 16 offsets at once */
                    accv[b] = _mm256_fmadd_ps(
                        _mm256_loadu_ps(c.m), _mm256_loadu_ps(dsb + 2 * g),
                        _mm256_fmadd_ps(_mm256_loadu_ps(c.m + 8),
                                        _mm256_loadu_ps(dsb + 2 * g + 8), accv[b]));
            }
        }
    }
    for (int b = 0; b < nb; b++) {
        float v = hsum(_mm256_add_ps(acc[b], accv[b])) + accm[b];
        y[b * ldy] = first ? v : y[b * ldy] + v;
    }
}

static inline __attribute__((always_inline)) void
matmul_q(enum qtype t, float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
         int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    float da[MAX_G], ds[2 * MAX_G];
    const herd_dtype at = k_type(t) ? HERD_DTYPE_Q8_K : HERD_DTYPE_Q8_0;
    const size_t rb = row_bytes(t, n);
    const int64_t kc = n_b < NB_DECODE ? KC_DECODE : KC_PREFILL;
    const int64_t nbp = n_b < NB_DECODE ? n_b : NB_PASS;
    for (int64_t b0 = 0; b0 < n_b; b0 += nbp) {
        const int64_t nbc = n_b - b0 < nbp ? n_b - b0 : nbp;
        for (int64_t k0 = 0; k0 < n; k0 += kc) {
            const int64_t kn = n - k0 < kc ? n - k0 : kc, g0 = k0 / 32, ng = kn / 32;
            const size_t xoff = k_type(t) ? (size_t)(k0 / 256) * sizeof(struct block_q8_k)
                                          : (size_t)g0 * sizeof(struct block_q8_0);
            for (int64_t b = 0; b < nbc; b++)
                act_group_sums(at, (const uint8_t *)xa + (size_t)(b0 + b) * xrb + xoff, kn,
                               da + b * ng, ds + 2 * b * ng);
            for (int64_t r = r0; r < r1; r++) {
                const uint8_t *row = (const uint8_t *)w + (size_t)r * rb;
                for (int64_t b = 0; b < nbc; b += NBT) {
                    const uint8_t *x = (const uint8_t *)xa + (size_t)(b0 + b) * xrb;
                    float *yb = y + (b0 + b) * ldy + r;
                    const float *dab = da + b * ng, *dsb = ds + 2 * b * ng;
                    switch (nbc - b < NBT ? nbc - b : NBT) {
                    case 1: tile(t, 1, row, x, xrb, g0, ng, dab, dsb, ng, yb, ldy, k0 == 0); break;
                    case 2: tile(t, 2, row, x, xrb, g0, ng, dab, dsb, ng, yb, ldy, k0 == 0); break;
                    case 3: tile(t, 3, row, x, xrb, g0, ng, dab, dsb, ng, yb, ldy, k0 == 0); break;
                    default: tile(t, 4, row, x, xrb, g0, ng, dab, dsb, ng, yb, ldy, k0 == 0); break;
                    }
                }
            }
        }
    }
}

static void matmul_q8_0_q8_0_avx2(float *y, int64_t ldy, const void *w, const void *xa,
                                  size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_q(QT_Q8_0, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

static void matmul_q4_0_q8_0_avx2(float *y, int64_t ldy, const void *w, const void *xa,
                                  size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_q(QT_Q4_0, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

static void matmul_q4_1_q8_0_avx2(float *y, int64_t ldy, const void *w, const void *xa,
                                  size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_q(QT_Q4_1, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

static void matmul_q4k_q8k_avx2(float *y, int64_t ldy, const void *w, const void *xa,
                                size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_q(QT_Q4_K, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

static void matmul_q5k_q8k_avx2(float *y, int64_t ldy, const void *w, const void *xa,
                                size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_q(QT_Q5_K, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

static void matmul_q6k_q8k_avx2(float *y, int64_t ldy, const void *w, const void *xa,
                                size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_q(QT_Q6_K, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

void kernels_fill_matmul_q_avx2(struct herd_cpu_kernels *k)
{
    /* act_type and convert stay as the reference filled them (Q8_0 / Q8_K rows) */
    k->mm[HERD_DTYPE_Q8_0].matmul = matmul_q8_0_q8_0_avx2;
    k->mm[HERD_DTYPE_Q4_0].matmul = matmul_q4_0_q8_0_avx2;
    k->mm[HERD_DTYPE_Q4_1].matmul = matmul_q4_1_q8_0_avx2;
    k->mm[HERD_DTYPE_Q4_K].matmul = matmul_q4k_q8k_avx2;
    k->mm[HERD_DTYPE_Q5_K].matmul = matmul_q5k_q8k_avx2;
    k->mm[HERD_DTYPE_Q6_K].matmul = matmul_q6k_q8k_avx2;
}
