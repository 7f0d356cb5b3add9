/*
 * quant_ref.c - reference (de)quantizers of the plain and 32-element block types: F32,
 * F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, and the dispatch by type.
 *
 * Meanings follow ggml (ggml-common.h, ggml-quants.c) exactly: a dequantized value is
 * computed with the same float operations in the same order, so it is bit-identical to
 * ggml's and to the gguf Python package's. The quantizers are round-to-nearest as ggml's
 * quantize_row_*_ref (scale from the absolute maximum, or from min/max for the _1 types),
 * so herd and llama.cpp write the same bytes for the same input.
 *
 * Non-finite input: the integer block types have no NaN or infinity, and a block scale
 * computed from one turns every element into an out-of-range float-to-int conversion
 * (undefined behaviour). quantize_row refuses such a row for those types: it writes the
 * row as all-zero blocks (which dequantize to 0, so callers that ignore the status, like
 * the Q8_0 KV cache, still get defined bytes) and returns HERD_ERR_INVALID naming the
 * element. F32/F16/BF16 carry NaN and infinity, so conversions to them pass them through.
 * The per-type _ref quantizers assume finite input.
 *
 * Float contraction (FMA) would change results; the build is ISO C (-std=c11, which turns
 * GCC contraction off) and the pragma below asks the same of clang.
 */
#include "quant.h"

#include <float.h> /* FLT_MAX */
#include <math.h>  /* fabsf, roundf */

#if defined(__clang__) /* GCC has no such pragma; -std=c11 already turns contraction off */
#pragma STDC FP_CONTRACT OFF
#endif

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void dequant_f16(float *y, const uint8_t *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = fp16_to_f32(le16(x + 2 * i));
}

static void dequant_bf16(float *y, const uint8_t *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = bf16_to_f32(le16(x + 2 * i));
}

void dequantize_row_q4_0_ref(float *y, const struct block_q4_0 *x, int64_t n)
{
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const float d = fp16_to_f32(x[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const int x0 = (x[i].qs[j] & 0x0f) - 8;
            const int x1 = (x[i].qs[j] >> 4) - 8;
            y[i * QK4_0 + j] = (float)x0 * d;
            y[i * QK4_0 + j + QK4_0 / 2] = (float)x1 * d;
        }
    }
}

void dequantize_row_q4_1_ref(float *y, const struct block_q4_1 *x, int64_t n)
{
    for (int64_t i = 0; i < n / QK4_1; i++) {
        const float d = fp16_to_f32(x[i].d);
        const float m = fp16_to_f32(x[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            y[i * QK4_1 + j] = (float)(x[i].qs[j] & 0x0f) * d + m;
            y[i * QK4_1 + j + QK4_1 / 2] = (float)(x[i].qs[j] >> 4) * d + m;
        }
    }
}

static uint32_t load_qh(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 |
           (uint32_t)qh[3] << 24;
}

/* The 5-bit value of element j (0..31) of a Q5 block. */
static int q5_value(const uint8_t *qs, uint32_t qh, int j)
{
    int lo = j < 16 ? (qs[j] & 0x0f) : (qs[j - 16] >> 4);
    return lo | (int)((qh >> j) & 1) << 4;
}

void dequantize_row_q5_0_ref(float *y, const struct block_q5_0 *x, int64_t n)
{
    for (int64_t i = 0; i < n / QK5_0; i++) {
        const float d = fp16_to_f32(x[i].d);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < QK5_0; j++)
            y[i * QK5_0 + j] = (float)(q5_value(x[i].qs, qh, j) - 16) * d;
    }
}

void dequantize_row_q5_1_ref(float *y, const struct block_q5_1 *x, int64_t n)
{
    for (int64_t i = 0; i < n / QK5_1; i++) {
        const float d = fp16_to_f32(x[i].d);
        const float m = fp16_to_f32(x[i].m);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < QK5_1; j++)
            y[i * QK5_1 + j] = (float)q5_value(x[i].qs, qh, j) * d + m;
    }
}

void dequantize_row_q8_0_ref(float *y, const struct block_q8_0 *x, int64_t n)
{
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float d = fp16_to_f32(x[i].d);
        for (int j = 0; j < QK8_0; j++)
            y[i * QK8_0 + j] = (float)x[i].qs[j] * d;
    }
}

/* ---- quantizers */

/* The value of largest magnitude (the first one on ties), sign kept. */
static float signed_absmax(const float *x, int n)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void min_max(const float *x, int n, float *min, float *max)
{
    *min = FLT_MAX;
    *max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < *min)
            *min = x[j];
        if (x[j] > *max)
            *max = x[j];
    }
}

/* Truncation toward zero of a small non-negative float, then a cap: ggml's
 * MIN(cap, (int8_t)(v)) for v in [0, 128), where finite rows always land. Outside that
 * (a block range that overflows float gives 0 * inf = NaN) ggml's cast is undefined;
 * here NaN and negatives give 0 and large values the cap. */
static uint8_t trunc_cap(float v, int cap)
{
    if (!(v >= 0.0f))
        return 0;
    if (v >= (float)cap)
        return (uint8_t)cap;
    return (uint8_t)(int)v;
}

/* roundf to int8, half away from zero as ggml, saturating at +-127 where ggml's cast is
 * undefined: a block maximum so small that d = amax / 127 is subnormal makes 1 / d
 * infinite. NaN (not reachable through quantize_row) gives 0. */
static int8_t round_i8(float v)
{
    if (!(v == v))
        return 0;
    float r = roundf(v);
    return (int8_t)(r > 127.0f ? 127 : r < -127.0f ? -127 : (int)r);
}

void quantize_row_q4_0_ref(struct block_q4_0 *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n / QK4_0; i++, x += QK4_0) {
        /* d = max / -8 maps the extreme value to q = 0 (-8) exactly. */
        const float d = signed_absmax(x, QK4_0) / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const uint8_t q0 = trunc_cap(x[j] * id + 8.5f, 15);
            const uint8_t q1 = trunc_cap(x[j + QK4_0 / 2] * id + 8.5f, 15);
            y[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

void quantize_row_q4_1_ref(struct block_q4_1 *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n / QK4_1; i++, x += QK4_1) {
        float min, max;
        min_max(x, QK4_1, &min, &max);
        const float d = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        y[i].m = f32_to_fp16(min);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const uint8_t q0 = trunc_cap((x[j] - min) * id + 0.5f, 15);
            const uint8_t q1 = trunc_cap((x[j + QK4_1 / 2] - min) * id + 0.5f, 15);
            y[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

/* Packs 32 5-bit values: low nibbles as Q4 (element j and j+16 share byte j), bit 4 of
 * element j into bit j of qh. */
static void pack_q5(uint8_t qs[16], uint8_t qh[4], const uint8_t q[32])
{
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0f) | (q[j + 16] & 0x0f) << 4);
        h |= (uint32_t)(q[j] >> 4 & 1) << j;
        h |= (uint32_t)(q[j + 16] >> 4 & 1) << (j + 16);
    }
    for (int b = 0; b < 4; b++)
        qh[b] = (uint8_t)(h >> (8 * b));
}

void quantize_row_q5_0_ref(struct block_q5_0 *y, const float *x, int64_t n)
{
    uint8_t q[QK5_0];
    for (int64_t i = 0; i < n / QK5_0; i++, x += QK5_0) {
        const float d = signed_absmax(x, QK5_0) / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        for (int j = 0; j < QK5_0; j++)
            q[j] = trunc_cap(x[j] * id + 16.5f, 31);
        pack_q5(y[i].qs, y[i].qh, q);
    }
}

void quantize_row_q5_1_ref(struct block_q5_1 *y, const float *x, int64_t n)
{
    uint8_t q[QK5_1];
    for (int64_t i = 0; i < n / QK5_1; i++, x += QK5_1) {
        float min, max;
        min_max(x, QK5_1, &min, &max);
        const float d = (max - min) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        y[i].m = f32_to_fp16(min);
        for (int j = 0; j < QK5_1; j++)
            q[j] = trunc_cap((x[j] - min) * id + 0.5f, 31);
        pack_q5(y[i].qs, y[i].qh, q);
    }
}

void quantize_row_q8_0_ref(struct block_q8_0 *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++)
            amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++)
            y[i].qs[j] = round_i8(x[j] * id);
    }
}

/* ---- dispatch */

/* Index of the first NaN or infinity in x[0..n), or -1. The all-ones exponent test is an
 * integer OR over the row that the compiler vectorises; only a bad row is searched. */
static int64_t first_nonfinite(const float *x, int64_t n)
{
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    if (!bad)
        return -1;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return i;
    return -1;
}

static herd_status check_row(herd_dtype t, int64_t n, const char *what)
{
    if (!herd_dtype_name(t))
        return herd_fail(HERD_ERR_UNSUPPORTED, "%s: unknown type %d", what, (int)t);
    int64_t bs = dtype_block_size(t);
    if (n < 0 || n % bs != 0)
        return herd_fail(HERD_ERR_INVALID, "%s: row of %lld %s elements is not a whole number "
                         "of %lld-element blocks", what, (long long)n, herd_dtype_name(t),
                         (long long)bs);
    return HERD_OK;
}

herd_status dequantize_row(herd_dtype t, float *out, const void *in, int64_t n)
{
    herd_status s = check_row(t, n, "dequantize");
    if (s != HERD_OK)
        return s;
    switch (t) {
    case HERD_DTYPE_F32: memcpy(out, in, (size_t)n * sizeof(float)); break;
    case HERD_DTYPE_F16: dequant_f16(out, in, n); break;
    case HERD_DTYPE_BF16: dequant_bf16(out, in, n); break;
    case HERD_DTYPE_F8_E4M3: dequantize_row_f8_e4m3_ref(out, in, n); break;
    case HERD_DTYPE_Q4_0: dequantize_row_q4_0_ref(out, in, n); break;
    case HERD_DTYPE_Q4_1: dequantize_row_q4_1_ref(out, in, n); break;
    case HERD_DTYPE_Q5_0: dequantize_row_q5_0_ref(out, in, n); break;
    case HERD_DTYPE_Q5_1: dequantize_row_q5_1_ref(out, in, n); break;
    case HERD_DTYPE_Q8_0: dequantize_row_q8_0_ref(out, in, n); break;
    case HERD_DTYPE_Q4_K: dequantize_row_q4_k_ref(out, in, n); break;
    case HERD_DTYPE_Q5_K: dequantize_row_q5_k_ref(out, in, n); break;
    case HERD_DTYPE_Q6_K: dequantize_row_q6_k_ref(out, in, n); break;
    case HERD_DTYPE_Q8_K: dequantize_row_q8_k_ref(out, in, n); break;
    default:
        return herd_fail(HERD_ERR_UNSUPPORTED, "dequantize: type %s is not supported",
                         herd_dtype_name(t));
    }
    return HERD_OK;
}

herd_status quantize_row(herd_dtype t, void *out, const float *in, int64_t n)
{
    herd_status s = check_row(t, n, "quantize");
    if (s != HERD_OK)
        return s;
    if (t != HERD_DTYPE_F32 && t != HERD_DTYPE_F16 && t != HERD_DTYPE_BF16 &&
        dtype_can_quantize(t)) {
        int64_t bad = first_nonfinite(in, n);
        if (bad >= 0) {
            memset(out, 0, dtype_row_bytes(t, n));
            return herd_fail(HERD_ERR_INVALID, "quantize: element %lld of the row is %s; %s "
                             "cannot represent NaN or infinity", (long long)bad,
                             isnan(in[bad]) ? "NaN" : "infinite", herd_dtype_name(t));
        }
    }
    uint8_t *o = out;
    switch (t) {
    case HERD_DTYPE_F32: memcpy(out, in, (size_t)n * sizeof(float)); break;
    case HERD_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = f32_to_fp16(in[i]);
            o[2 * i] = (uint8_t)h;
            o[2 * i + 1] = (uint8_t)(h >> 8);
        }
        break;
    case HERD_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = f32_to_bf16(in[i]);
            o[2 * i] = (uint8_t)h;
            o[2 * i + 1] = (uint8_t)(h >> 8);
        }
        break;
    case HERD_DTYPE_Q4_0: quantize_row_q4_0_ref(out, in, n); break;
    case HERD_DTYPE_Q4_1: quantize_row_q4_1_ref(out, in, n); break;
    case HERD_DTYPE_Q5_0: quantize_row_q5_0_ref(out, in, n); break;
    case HERD_DTYPE_Q5_1: quantize_row_q5_1_ref(out, in, n); break;
    case HERD_DTYPE_Q8_0: quantize_row_q8_0_ref(out, in, n); break;
    case HERD_DTYPE_Q4_K: quantize_row_q4_k_ref(out, in, n); break;
    case HERD_DTYPE_Q5_K: quantize_row_q5_k_ref(out, in, n); break;
    case HERD_DTYPE_Q6_K: quantize_row_q6_k_ref(out, in, n); break;
    case HERD_DTYPE_Q8_K: quantize_row_q8_k_ref(out, in, n); break;
    default:
        return herd_fail(HERD_ERR_UNSUPPORTED, "quantize: type %s is not supported",
                         herd_dtype_name(t));
    }
    return HERD_OK;
}
