/*
 * fp.c - IEEE 754 binary16 and bfloat16 conversions in portable C (round to nearest even,
 * NaN kept quiet, subnormals exact). SIMD kernels use F16C/AVX-512 instead and are tested
 * against these.
 */
#include "base.h"

static inline uint32_t f32_bits(float f)
{
    union { float f; uint32_t u; } v = {f};
    return v.u;
}

static inline float bits_f32(uint32_t u)
{
    union { uint32_t u; float f; } v = {u};
    return v.f;
}

float fp16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) /* inf or NaN */
        return bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        /* Subnormal or zero: value = man * 2^-24, exact in f32. */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t f32_to_fp16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or NaN */
        return sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0);
    if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return sign | 0x7c00;
    if (ax < 0x38800000u) {
        /* Result is subnormal (or zero): scale so the f32 adder rounds to nearest even at
         * the binary16 subnormal step 2^-24. */
        float v = bits_f32(ax) + 0.5f;     /* 0.5 = 2^-1: ulp(0.5) = 2^-24 */
        return sign | (uint16_t)(f32_bits(v) - 0x3f000000u);
    }
    uint32_t mant_odd = (ax >> 13) & 1;
    ax += 0xfffu + mant_odd; /* round to nearest even on the 13 dropped bits */
    return sign | (uint16_t)((ax - 0x38000000u) >> 13);
}

uint16_t f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40); /* keep NaN quiet */
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}
