/*
 * cuda_fp16.h (emulator) - binary16 as the CUDA backend uses it, converted by herd's own
 * round-to-nearest-even functions (base/fp.c), which are what CUDA's __float2half_rn and
 * __half2float compute.
 */
#ifndef HERD_CUDA_EMU_FP16_H
#define HERD_CUDA_EMU_FP16_H

#include <stdint.h>

extern "C" float fp16_to_f32(uint16_t h);
extern "C" uint16_t f32_to_fp16(float f);

struct __half {
    uint16_t bits;
};

static inline float __half2float(__half h)
{
    return fp16_to_f32(h.bits);
}

static inline __half __float2half_rn(float f)
{
    return __half{f32_to_fp16(f)};
}

static inline __half __ushort_as_half(unsigned short u)
{
    return __half{(uint16_t)u};
}

static inline unsigned short __half_as_ushort(__half h)
{
    return h.bits;
}

#endif /* HERD_CUDA_EMU_FP16_H */
