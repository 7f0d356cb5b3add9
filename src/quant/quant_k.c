/*
 * quant_k.c - reference (de)quantizers of the K-quants: Q4_K, Q5_K, Q6_K (weights) and
 * Q8_K (activations for K-quant dot products). Super-blocks of QK_K = 256 weights.
 *
 * Layouts and meanings are ggml's (ggml-common.h, ggml-quants.c); dequantization uses the
 * same float operations in the same order, so it is bit-identical. The quantizers follow
 * the algorithm of ggml's quantize_row_*_ref (what llama-quantize runs without an
 * importance matrix), re-derived here:
 *   Q4_K/Q5_K: each 32-weight sub-block gets a scale and a min from a weighted
 *     least-squares search over candidate inverse scales (weights = rms + |x|), the 8
 *     scales and 8 mins are then quantized to 6 bits against the block maxima, and the
 *     weights are re-rounded with the final fp16-rounded scales.
 *   Q6_K: each 16-weight sub-block gets a symmetric scale from a search of 19 candidate
 *     inverse scales around nmax/max, weighted by x^2; scales are then 8-bit quantized.
 * Float contraction would change results, hence the pragma (GCC: -std=c11 turns it off).
 */
#include "quant.h"

#include <math.h> /* fabsf, sqrtf */

#if defined(__clang__) /* GCC has no such pragma; -std=c11 already turns contraction off */
#pragma STDC FP_CONTRACT OFF
#endif

/* Below this a group is treated as all zero (ggml GROUP_MAX_EPS). */
#define GROUP_EPS 1e-15f

/* Round to nearest, ties to even, for |v| < 2^22: adding 1.5 * 2^23 leaves the rounded
 * integer in the low mantissa bits. Matches ggml's nearest_int bit for bit. */
static inline int round_int(float v)
{
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static inline int clamp_int(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* The 6-bit scale and min of sub-block j from the 12 packed bytes: sub-blocks 0..3 use the
 * low 6 bits of bytes j and j+4; 4..7 take 4 bits from byte j+4 and 2 from the top of
 * bytes j-4 (scale) and j (min). */
static inline void k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0x0f) | (q[j - 4] >> 6) << 4);
        *m = (uint8_t)((q[j + 4] >> 4) | (q[j] >> 6) << 4);
    }
}

static void k4_pack_scales(uint8_t q[K_SCALE_SIZE], const uint8_t ls[8], const uint8_t lm[8])
{
    memset(q, 0, K_SCALE_SIZE);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            q[j] = ls[j];
            q[j + 4] = lm[j];
        } else {
            q[j + 4] = (uint8_t)((ls[j] & 0x0f) | (lm[j] & 0x0f) << 4);
            q[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            q[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* ---- dequantizers */

/* One super-block of Q4_K (qh NULL) or Q5_K: 4 pairs of 32-weight sub-blocks, the pair's
 * low nibbles then its high nibbles, w = d * sc * q - dmin * m. Q5_K's fifth bit of
 * sub-block 2j sits in bit 2j of qh[l], of 2j+1 in bit 2j+1. */
static void dequantize_k4_block(float *y, uint16_t d16, uint16_t dmin16,
                                const uint8_t *scales, const uint8_t *q, const uint8_t *qh)
{
    const float d = fp16_to_f32(d16), dmin = fp16_to_f32(dmin16);
    for (int j = 0; j < QK_K / 64; j++, q += 32) {
        const uint8_t u1 = (uint8_t)(1u << (2 * j)), u2 = (uint8_t)(2u << (2 * j));
        uint8_t sc, m;
        k4_scale_min(2 * j, scales, &sc, &m);
        const float d1 = d * sc, m1 = dmin * m;
        k4_scale_min(2 * j + 1, scales, &sc, &m);
        const float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++)
            *y++ = d1 * (float)((q[l] & 0x0f) + (qh && (qh[l] & u1) ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++)
            *y++ = d2 * (float)((q[l] >> 4) + (qh && (qh[l] & u2) ? 16 : 0)) - m2;
    }
}

void dequantize_row_q4_k_ref(float *y, const struct block_q4_k *x, int64_t n)
{
    for (int64_t i = 0; i < n / QK_K; i++)
        dequantize_k4_block(y + i * QK_K, x[i].d, x[i].dmin, x[i].scales, x[i].qs, NULL);
}

void dequantize_row_q5_k_ref(float *y, const struct block_q5_k *x, int64_t n)
{
    for (int64_t i = 0; i < n / QK_K; i++)
        dequantize_k4_block(y + i * QK_K, x[i].d, x[i].dmin, x[i].scales, x[i].qs, x[i].qh);
}

void dequantize_row_q6_k_ref(float *y, const struct block_q6_k *x, int64_t n)
{
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_f32(x[i].d);
        const uint8_t *ql = x[i].ql;
        const uint8_t *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        /* Each half of 128 weights: ql holds 64 bytes of low nibbles (elements l and l+64
         * share byte l, l+32 and l+96 share byte l+32), qh 32 bytes of 2-bit pairs. */
        for (int half = 0; half < QK_K / 128; half++, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4) - 32;
                const int q2 = ((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4) - 32;
                const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

void dequantize_row_q8_k_ref(float *y, const struct block_q8_k *x, int64_t n)
{
    for (int64_t i = 0; i < n / QK_K; i++)
        for (int j = 0; j < QK_K; j++)
            *y++ = x[i].d * (float)x[i].qs[j];
}

/* ---- scale searches */

/* Asymmetric fit of n values to levels 0..nmax: x ~ scale * L - min (min >= 0 returned in
 * *the_min). Starts from the min/max grid, then tries nstep+1 inverse scales
 * (nmax + rmin + rdelta * is) / (max - min), each refined by weighted least squares for
 * scale and offset, and keeps the one with the least weighted squared error. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep)
{
    float min = x[0], max = x[0];
    float sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0)
        min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best_err = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clamp_int(round_int(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * L[i] + min - x[i];
        best_err += w[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clamp_int(round_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        float det = sum_w * sum_l2 - sum_l * sum_l;
        if (det > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                err += w[i] * (diff * diff);
            }
            if (err < best_err) {
                memcpy(L, Laux, (size_t)n);
                best_err = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Symmetric fit of n values to levels -nmax..nmax-1 (stored as L + nmax), weighted by x^2:
 * the scale that maximises (sum w x l)^2 / sum w l^2 over 19 inverse scales
 * -(nmax + 0.1 is) / max, is = -9..9. Returns the scale (signed, like max). */
static float fit_scale_sym(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax < GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clamp_int(round_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = clamp_int(round_int(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + clamp_int(round_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* ---- Q4_K / Q5_K: shared scale selection */

/* Fills scales/d/dmin of one super-block of x and the levels L (0..nmax) of its weights. */
static void k_scales(const float *x, int nmax, float rmin, int nstep, uint16_t *dd,
                     uint16_t *ddmin, uint8_t packed[K_SCALE_SIZE], uint8_t L[QK_K])
{
    float scales[QK_K / 32], mins[QK_K / 32], w[32];
    uint8_t Laux[32], ls[QK_K / 32], lm[QK_K / 32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 32; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += xs[l] * xs[l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            w[l] = av_x + fabsf(xs[l]);
        scales[j] = fit_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f,
                                  nstep);
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    for (int j = 0; j < QK_K / 32; j++) {
        /* ggml stores round_int into a uint8_t before capping; keep that wrap. */
        uint8_t s = (uint8_t)round_int(inv_scale * scales[j]);
        uint8_t m = (uint8_t)round_int(inv_min * mins[j]);
        ls[j] = s < 63 ? s : 63;
        lm[j] = m < 63 ? m : 63;
    }
    k4_pack_scales(packed, ls, lm);
    *dd = f32_to_fp16(max_scale / 63.0f);
    *ddmin = f32_to_fp16(max_min / 63.0f);
    /* Re-round every weight against the scales as stored (fp16 d times 6-bit scale). */
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        k4_scale_min(j, packed, &sc, &m);
        const float d = fp16_to_f32(*dd) * sc;
        if (d == 0.0f)
            continue;
        const float dm = fp16_to_f32(*ddmin) * m;
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)clamp_int(round_int((x[32 * j + l] + dm) / d), 0, nmax);
    }
}

void quantize_row_q4_k_ref(struct block_q4_k *y, const float *x, int64_t n)
{
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        k_scales(x, 15, -1.0f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t *q = y[i].qs;
        for (int j = 0; j < QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; l++)
                q[l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
    }
}

void quantize_row_q5_k_ref(struct block_q5_k *y, const float *x, int64_t n)
{
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        k_scales(x, 31, -0.5f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t *ql = y[i].qs;
        memset(y[i].qh, 0, sizeof y[i].qh);
        uint8_t m1 = 1, m2 = 2;
        for (int j = 0; j < QK_K; j += 64, ql += 32) {
            for (int l = 0; l < 32; l++) {
                int l1 = L[j + l], l2 = L[j + l + 32];
                if (l1 > 15) {
                    l1 -= 16;
                    y[i].qh[l] |= m1;
                }
                if (l2 > 15) {
                    l2 -= 16;
                    y[i].qh[l] |= m2;
                }
                ql[l] = (uint8_t)(l1 | l2 << 4);
            }
            m1 = (uint8_t)(m1 << 2);
            m2 = (uint8_t)(m2 << 2);
        }
    }
}

void quantize_row_q6_k_ref(struct block_q6_k *y, const float *x, int64_t n)
{
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max_scale = 0, max_abs = 0;
        for (int ib = 0; ib < QK_K / 16; ib++) {
            scales[ib] = fit_scale_sym(16, 32, x + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs) {
                max_abs = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        if (max_abs < GROUP_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* -128 / max_scale: the largest scale becomes -128, so sub-block scales fit int8 */
        const float iscale = -128.0f / max_scale;
        y[i].d = f32_to_fp16(1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ib++) {
            int s = round_int(iscale * scales[ib]);
            y[i].scales[ib] = (int8_t)(s < 127 ? s : 127);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = fp16_to_f32(y[i].d) * (float)y[i].scales[j];
            if (d == 0.0f)
                continue;
            for (int l = 0; l < 16; l++) {
                int q = clamp_int(round_int(x[16 * j + l] / d), -32, 31);
                L[16 * j + l] = (int8_t)(q + 32);
            }
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                const uint8_t q1 = L[j + l] & 0x0f, q2 = L[j + l + 32] & 0x0f;
                const uint8_t q3 = L[j + l + 64] & 0x0f, q4 = L[j + l + 96] & 0x0f;
                ql[l] = (uint8_t)(q1 | q3 << 4);
                ql[l + 32] = (uint8_t)(q2 | q4 << 4);
                qh[l] = (uint8_t)((L[j + l] >> 4) | (L[j + l + 32] >> 4) << 2 |
                                  (L[j + l + 64] >> 4) << 4 | (L[j + l + 96] >> 4) << 6);
            }
        }
    }
}

void quantize_row_q8_k_ref(struct block_q8_k *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max = 0, amax = 0;
        for (int j = 0; j < QK_K; j++) {
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* -127 (not -128) keeps every q in -127..127, which the integer dot kernels rely on */
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            int v = round_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += y[i].qs[16 * j + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}
