/*
 * dtype.c - the one table of element types: name, elements per block and bytes per block,
 * as ggml defines them (ggml.c type_traits; ggml-common.h block structs). A row of n
 * elements of a block type takes n / block_size * block_bytes bytes; n must be a whole
 * number of blocks.
 *
 * Q2_K, Q3_K and Q8_1 have sizes here (so a file holding them opens and the error can name
 * the tensor) but no dequantizer: dtype_supported() says no.
 */
#include "quant.h"

struct dtype_traits {
    herd_dtype type;
    const char *name;
    int64_t block_size;
    size_t block_bytes;
    int supported;    /* dequantize_row handles it */
    int can_quantize; /* quantize_row handles it */
};

static const struct dtype_traits traits[] = {
    {HERD_DTYPE_F32, "f32", 1, 4, 1, 1},
    {HERD_DTYPE_F16, "f16", 1, 2, 1, 1},
    {HERD_DTYPE_Q4_0, "q4_0", QK4_0, sizeof(struct block_q4_0), 1, 1},
    {HERD_DTYPE_Q4_1, "q4_1", QK4_1, sizeof(struct block_q4_1), 1, 1},
    {HERD_DTYPE_Q5_0, "q5_0", QK5_0, sizeof(struct block_q5_0), 1, 1},
    {HERD_DTYPE_Q5_1, "q5_1", QK5_1, sizeof(struct block_q5_1), 1, 1},
    {HERD_DTYPE_Q8_0, "q8_0", QK8_0, sizeof(struct block_q8_0), 1, 1},
    /* Q8_1: fp16 d, fp16 s (= d * sum q), 32 int8 */
    {HERD_DTYPE_Q8_1, "q8_1", 32, 36, 0, 0},
    /* Q2_K: scales[16], qs[64], fp16 d, fp16 dmin */
    {HERD_DTYPE_Q2_K, "q2_k", QK_K, 84, 0, 0},
    /* Q3_K: hmask[32], qs[64], scales[12], fp16 d */
    {HERD_DTYPE_Q3_K, "q3_k", QK_K, 110, 0, 0},
    {HERD_DTYPE_Q4_K, "q4_k", QK_K, sizeof(struct block_q4_k), 1, 1},
    {HERD_DTYPE_Q5_K, "q5_k", QK_K, sizeof(struct block_q5_k), 1, 1},
    {HERD_DTYPE_Q6_K, "q6_k", QK_K, sizeof(struct block_q6_k), 1, 1},
    {HERD_DTYPE_Q8_K, "q8_k", QK_K, sizeof(struct block_q8_k), 1, 1},
    {HERD_DTYPE_BF16, "bf16", 1, 2, 1, 1},
    /* FP8 e4m3 with a row header {f32 scale, f32 activation bound}: see dtype_row_bytes */
    {HERD_DTYPE_F8_E4M3, "f8_e4m3", 1, 1, 1, 0},
    /* a checkpoint's bare e4m3 codes, before load pairs them with their row scales */
    {DTYPE_F8_E4M3_RAW, "f8_e4m3 (unscaled)", 1, 1, 0, 0},
};

static const struct dtype_traits *find(herd_dtype t)
{
    for (size_t i = 0; i < sizeof traits / sizeof traits[0]; i++)
        if (traits[i].type == t)
            return &traits[i];
    return NULL;
}

const char *herd_dtype_name(herd_dtype t)
{
    const struct dtype_traits *d = find(t);
    return d ? d->name : NULL;
}

int64_t dtype_block_size(herd_dtype t)
{
    const struct dtype_traits *d = find(t);
    return d ? d->block_size : 0;
}

size_t dtype_block_bytes(herd_dtype t)
{
    const struct dtype_traits *d = find(t);
    return d ? d->block_bytes : 0;
}

int dtype_supported(herd_dtype t)
{
    const struct dtype_traits *d = find(t);
    return d ? d->supported : 0;
}

int dtype_can_quantize(herd_dtype t)
{
    const struct dtype_traits *d = find(t);
    return d ? d->can_quantize : 0;
}

size_t dtype_row_bytes(herd_dtype t, int64_t n)
{
    const struct dtype_traits *d = find(t);
    if (!d || n <= 0 || n % d->block_size != 0)
        return 0;
    if (t == HERD_DTYPE_F8_E4M3) /* one byte per element after the 8-byte row header */
        return (uint64_t)n > SIZE_MAX - 8 ? 0 : (size_t)n + 8;
    uint64_t blocks = (uint64_t)(n / d->block_size);
    if (blocks > SIZE_MAX / d->block_bytes)
        return 0;
    return (size_t)blocks * d->block_bytes;
}
