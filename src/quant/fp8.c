/*
 * fp8.c - FP8 e4m3 ("float8_e4m3fn": 1 sign, 4 exponent bits with bias 7, 3 mantissa bits,
 * no infinities, 0x7f/0xff NaN, largest finite 448) weights with one f32 scale per output
 * row, as Meta's Llama 3.1 FP8 release and transformers' fbgemm_fp8 quantizer store them
 * (weight float8_e4m3fn [out, in], weight_scale f32 [out, 1]: w = scale[r] * e4m3[r][c]).
 *
 * herd repacks such a weight once at load into HERD_DTYPE_F8_E4M3 rows of n + 8 bytes:
 * {f32 row scale, f32 activation upper bound (quantization_config.activation_scale_ub;
 * 0 = none), n e4m3 codes}, so one row pointer carries everything its product needs.
 *
 * Activations are quantized per token as fbgemm's quantize_fp8_per_row does before
 * f8f8bf16_rowwise: amax = max |x|, clamped to [1e-12, ub], inv = 448 / amax, q =
 * e4m3(clamp(x * inv, -448, 448)) rounded to nearest even, and the token's scale 1 / inv;
 * the product is (sum q_x * q_w) * (1 / inv) * w_scale.
 */
#include "quant/quant.h"

#include <math.h> /* nearbyintf, fabsf */

float fp8_e4m3_to_f32(uint8_t b)
{
    /* Normal codes: exponent and mantissa in an f32's fields 4 bits lower, the exponent
     * rebased from bias 7 to 127 by an integer add. Subnormal codes (exponent 0) are m * 2^-9,
     * converted from the integer: no f32 subnormal is ever formed, so the value is exact
     * even in pool jobs, which run with denormals-are-zero (base/threads.c). */
    uint32_t mag = b & 0x7fu;
    float f;
    if (mag < 8) {
        f = (float)mag * 0x1p-9f;
    } else {
        uint32_t bits = (mag << 20) + (120u << 23);
        memcpy(&f, &bits, sizeof f);
    }
    return (b & 0x80) ? -f : f;
}

float fp8_e4m3_round(float v)
{
    float a = fabsf(v);
    if (a > 448.0f)
        return v < 0 ? -448.0f : 448.0f;
    if (a < 0x1p-6f) /* subnormal range: steps of 2^-9 */
        return nearbyintf(v * 512.0f) / 512.0f;
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    bits = (bits + 0x7ffffu + ((bits >> 20) & 1u)) & 0xfff00000u; /* 3 mantissa bits, RNE */
    memcpy(&v, &bits, sizeof v);
    return v;
}

uint8_t fp8_e4m3_from_f32(float v)
{
    float r = fp8_e4m3_round(v);
    uint8_t s = r < 0 || (r == 0 && signbit(r)) ? 0x80 : 0;
    float a = fabsf(r);
    if (a < 0x1p-6f)
        return (uint8_t)(s | (uint8_t)nearbyintf(a * 512.0f));
    uint32_t bits;
    memcpy(&bits, &a, sizeof bits);
    uint32_t e = (bits >> 23) - 120, m = (bits >> 20) & 7;
    return (uint8_t)(s | e << 3 | m);
}

float fp8_act_scale(const float *x, int64_t n, float ub, float *inv)
{
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++)
        amax = fmaxf(amax, fabsf(x[i]));
    if (amax < 1e-12f)
        amax = 1e-12f;
    if (ub > 0.0f && amax > ub)
        amax = ub;
    *inv = 448.0f / amax;
    return 1.0f / *inv;
}

void fp8_row_header(const void *row, float *scale, float *ub)
{
    memcpy(scale, row, 4);
    memcpy(ub, (const uint8_t *)row + 4, 4);
}

void dequantize_row_f8_e4m3_ref(float *y, const void *row, int64_t n)
{
    float scale, ub;
    fp8_row_header(row, &scale, &ub);
    const uint8_t *q = (const uint8_t *)row + 8;
    for (int64_t i = 0; i < n; i++)
        y[i] = fp8_e4m3_to_f32(q[i]) * scale;
}

void fp8_pack_row(void *dst, const uint8_t *codes, float scale, float ub, int64_t n)
{
    memcpy(dst, &scale, 4);
    memcpy((uint8_t *)dst + 4, &ub, 4);
    memcpy((uint8_t *)dst + 8, codes, (size_t)n);
}
