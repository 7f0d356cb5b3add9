/*
 * matmul_ref.c - the scalar reference of every matrix product: activation quantizers (the
 * 'convert' entries: f32 rows to Q8_0 or Q8_K rows) and one row-times-row dot per weight
 * type, wrapped by one generic loop over rows and activation rows.
 *
 * Semantics follow ggml's vec_dot for the same pairs (ggml-quants.c, *_generic): integer
 * sums per (sub-)block, scaled by the fp16 block scales as floats, summed left to right in
 * f32. One deliberate difference: Q4_1 is paired with Q8_0 activations (ggml uses Q8_1,
 * whose s = fp16(d * sum(q))); here the block sum is taken exactly, sum(q) * fp16(d).
 * SIMD variants are tested against these functions and differ only by reassociation.
 */
#include "kernels/kernels.h"
#include "quant/quant.h"

#include <math.h> /* fabsf, roundf, nearbyintf */

/* ---- activation quantizers */

/* Q8_0 as ggml's quantize_row_q8_0_ref: d = amax / 127, q = round(x / d) (half away from 0). */
void act_quantize_q8_0_ref(void *dst, const float *x, int64_t n)
{
    struct block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float *xb = x + i * QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++)
            amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++)
            y[i].qs[j] = (int8_t)roundf(xb[j] * id);
    }
}

/* Q8_K as ggml's quantize_row_q8_K_ref: the element of largest magnitude maps to -127
 * (scale -127/max), ties round to even, +128 clamps to 127; bsums are sums of 16 qs. */
void act_quantize_q8_k_ref(void *dst, const float *x, int64_t n)
{
    struct block_q8_k *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *xb = x + i * QK_K;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            if (fabsf(xb[j]) > amax) {
                amax = fabsf(xb[j]);
                max = xb[j];
            }
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            int v = (int)nearbyintf(iscale * xb[j]);
            y[i].qs[j] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int s = 0;
            for (int l = 0; l < 16; l++)
                s += y[i].qs[j * 16 + l];
            y[i].bsums[j] = (int16_t)s;
        }
        y[i].d = 1.0f / iscale;
    }
}

void act_convert_bf16_ref(void *dst, const float *x, int64_t n)
{
    uint16_t *y = dst;
    for (int64_t i = 0; i < n; i++)
        y[i] = f32_to_bf16(x[i]);
}

/* Per-group factors of a Q8_0 or Q8_K activation row for the SIMD variants (plain C, shared
 * by avx2 and neon): da[g] the scale of 32-weight group g, ds[h] = da * sum(q) over
 * 16-weight half-group h (the offset / min terms of every weight type need only these). */
void act_group_sums(herd_dtype act_type, const void *xa, int64_t n, float *da, float *ds)
{
    const uint8_t *p = xa;
    for (int64_t g = 0; g < n / 32; g++) {
        float d;
        int s0 = 0, s1 = 0;
        if (act_type == HERD_DTYPE_Q8_K) {
            const struct block_q8_k *b = (const void *)(p + (g / 8) * sizeof *b);
            int16_t bs[2];
            memcpy(&d, &b->d, 4);
            memcpy(bs, (const uint8_t *)b + offsetof(struct block_q8_k, bsums) + 4 * (g % 8), 4);
            s0 = bs[0];
            s1 = bs[1];
        } else {
            const struct block_q8_0 *b = (const void *)(p + g * sizeof *b);
            d = fp16_to_f32(b->d);
            for (int l = 0; l < 16; l++) {
                s0 += b->qs[l];
                s1 += b->qs[16 + l];
            }
        }
        da[g] = d;
        ds[2 * g] = d * (float)s0;
        ds[2 * g + 1] = d * (float)s1;
    }
}

/* ---- one weight row times one activation row, per type */

static float dot_f32_row(const void *w, const void *x, int64_t n)
{
    const float *a = w, *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static float dot_f16_row(const void *w, const void *x, int64_t n)
{
    const uint16_t *a = w;
    const float *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += fp16_to_f32(a[i]) * b[i];
    return s;
}

static float dot_bf16_row(const void *w, const void *x, int64_t n)
{
    const uint16_t *a = w;
    const float *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += bf16_to_f32(a[i]) * b[i];
    return s;
}

static float dot_q8_0_row(const void *w, const void *x, int64_t n)
{
    const struct block_q8_0 *a = w;
    const struct block_q8_0 *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_0; j++)
            sumi += a[i].qs[j] * b[i].qs[j];
        s += (float)sumi * (fp16_to_f32(a[i].d) * fp16_to_f32(b[i].d));
    }
    return s;
}

static float dot_q4_0_row(const void *w, const void *x, int64_t n)
{
    const struct block_q4_0 *a = w;
    const struct block_q8_0 *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            sumi += ((a[i].qs[j] & 0x0f) - 8) * b[i].qs[j];
            sumi += ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + QK4_0 / 2];
        }
        s += (float)sumi * (fp16_to_f32(a[i].d) * fp16_to_f32(b[i].d));
    }
    return s;
}

static float dot_q4_1_row(const void *w, const void *x, int64_t n)
{
    const struct block_q4_1 *a = w;
    const struct block_q8_0 *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        int sumi = 0, sumq = 0;
        for (int j = 0; j < QK4_1 / 2; j++) {
            sumi += (a[i].qs[j] & 0x0f) * b[i].qs[j];
            sumi += (a[i].qs[j] >> 4) * b[i].qs[j + QK4_1 / 2];
            sumq += b[i].qs[j] + b[i].qs[j + QK4_1 / 2];
        }
        const float db = fp16_to_f32(b[i].d);
        s += (float)sumi * (fp16_to_f32(a[i].d) * db) +
             fp16_to_f32(a[i].m) * ((float)sumq * db);
    }
    return s;
}

/* The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block: j < 4 sit in
 * the low 6 bits of bytes j and j+4; j >= 4 take 4 bits from byte j+4 and their top two
 * bits from the high bits of bytes j-4 (scale) and j (min). */
void q4k_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q4_K and Q5_K share everything but the fifth bit: hmask selects Q5_K's qh. Weight l of
 * 64-chunk c is the low nibble (l < 32) or high nibble (l >= 32) of qs[32c + l % 32]. */
static float dot_q45k_row(const uint8_t *qs, const uint8_t *qh, const uint8_t *scales, float d,
                          float dmin, const struct block_q8_k *b)
{
    int sumi = 0, summ = 0;
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        q4k_scale_min(j, scales, &sc, &m);
        const int c = j / 2, hi = j % 2;
        int s = 0;
        for (int l = 0; l < 32; l++) {
            int q = hi ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 0x0f;
            if (qh)
                q += ((qh[l] >> j) & 1) << 4;
            s += q * b->qs[32 * j + l];
        }
        sumi += sc * s;
        summ += m * (b->bsums[2 * j] + b->bsums[2 * j + 1]);
    }
    return d * b->d * (float)sumi - dmin * b->d * (float)summ;
}

static float dot_q4_k_row(const void *w, const void *x, int64_t n)
{
    const struct block_q4_k *a = w;
    const struct block_q8_k *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++)
        s += dot_q45k_row(a[i].qs, NULL, a[i].scales, fp16_to_f32(a[i].d),
                          fp16_to_f32(a[i].dmin), &b[i]);
    return s;
}

static float dot_q5_k_row(const void *w, const void *x, int64_t n)
{
    const struct block_q5_k *a = w;
    const struct block_q8_k *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++)
        s += dot_q45k_row(a[i].qs, a[i].qh, a[i].scales, fp16_to_f32(a[i].d),
                          fp16_to_f32(a[i].dmin), &b[i]);
    return s;
}

/* Q6_K weight l (0..127) of half h: low 4 bits from ql[64h + l % 64] (low nibble for
 * l < 64), high 2 bits from qh[32h + l % 32] at bit 2 * (l / 32); minus 32. */
int q6k_value(const struct block_q6_k *a, int i)
{
    const int h = i / 128, l = i % 128;
    const uint8_t qlb = a->ql[64 * h + l % 64];
    const int lo = l < 64 ? qlb & 0x0f : qlb >> 4;
    const int hi2 = (a->qh[32 * h + l % 32] >> (2 * (l / 32))) & 3;
    return (lo | (hi2 << 4)) - 32;
}

static float dot_q6_k_row(const void *w, const void *x, int64_t n)
{
    const struct block_q6_k *a = w;
    const struct block_q8_k *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sumi = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            int sj = 0;
            for (int l = 0; l < 16; l++)
                sj += q6k_value(&a[i], 16 * j + l) * b[i].qs[16 * j + l];
            sumi += a[i].scales[j] * sj;
        }
        s += fp16_to_f32(a[i].d) * b[i].d * (float)sumi;
    }
    return s;
}

/* ---- the generic loop */

typedef float (*row_dot_fn)(const void *w, const void *x, int64_t n);

static void matmul_rows(float *y, int64_t ldy, const void *w, size_t w_row_bytes,
                        const void *xa, size_t xa_row_bytes, int64_t n_cols, int64_t n_b,
                        int64_t r0, int64_t r1, row_dot_fn dot)
{
    for (int64_t b = 0; b < n_b; b++) {
        const uint8_t *x = (const uint8_t *)xa + (size_t)b * xa_row_bytes;
        for (int64_t r = r0; r < r1; r++)
            y[b * ldy + r] = dot((const uint8_t *)w + (size_t)r * w_row_bytes, x, n_cols);
    }
}

#define ROW_BYTES(n, block, bytes) ((size_t)((n) / (block)) * (bytes))

static void matmul_f32_ref(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                           int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_rows(y, ldy, w, (size_t)n * 4, xa, xrb, n, n_b, r0, r1, dot_f32_row);
}

static void matmul_f16_ref(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                           int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_rows(y, ldy, w, (size_t)n * 2, xa, xrb, n, n_b, r0, r1, dot_f16_row);
}

static void matmul_bf16_ref(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                            int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_rows(y, ldy, w, (size_t)n * 2, xa, xrb, n, n_b, r0, r1, dot_bf16_row);
}

static void matmul_q8_0_ref(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                            int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_rows(y, ldy, w, ROW_BYTES(n, QK8_0, sizeof(struct block_q8_0)), xa, xrb, n, n_b, r0,
                r1, dot_q8_0_row);
}

static void matmul_q4_0_ref(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                            int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_rows(y, ldy, w, ROW_BYTES(n, QK4_0, sizeof(struct block_q4_0)), xa, xrb, n, n_b, r0,
                r1, dot_q4_0_row);
}

static void matmul_q4_1_ref(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                            int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_rows(y, ldy, w, ROW_BYTES(n, QK4_1, sizeof(struct block_q4_1)), xa, xrb, n, n_b, r0,
                r1, dot_q4_1_row);
}

static void matmul_q4_k_ref(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                            int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_rows(y, ldy, w, ROW_BYTES(n, QK_K, sizeof(struct block_q4_k)), xa, xrb, n, n_b, r0,
                r1, dot_q4_k_row);
}

static void matmul_q5_k_ref(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                            int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_rows(y, ldy, w, ROW_BYTES(n, QK_K, sizeof(struct block_q5_k)), xa, xrb, n, n_b, r0,
                r1, dot_q5_k_row);
}

static void matmul_q6_k_ref(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                            int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_rows(y, ldy, w, ROW_BYTES(n, QK_K, sizeof(struct block_q6_k)), xa, xrb, n, n_b, r0,
                r1, dot_q6_k_row);
}

/* Types no fast kernel knows (Q5_0, Q5_1: rare in Llama 3 files, llama.cpp's fallback for
 * rows that are not whole K-quant blocks): the weight row is dequantized 256 at a time by
 * quant/'s reference and dotted with f32 activations, so every type herd reads also runs. */
static float dot_dequant_row(herd_dtype t, const void *w, const void *x, int64_t n)
{
    float buf[256];
    const float *a = x;
    const int64_t chunk = 256; /* a multiple of every block size that reaches here (32) */
    const size_t chunk_bytes = dtype_row_bytes(t, chunk);
    float s = 0.0f;
    for (int64_t i = 0; i < n; i += chunk) {
        int64_t m = n - i < chunk ? n - i : chunk;
        dequantize_row(t, buf, (const uint8_t *)w + (size_t)(i / chunk) * chunk_bytes, m);
        for (int64_t j = 0; j < m; j++)
            s += buf[j] * a[i + j];
    }
    return s;
}

static float dot_q5_0_row(const void *w, const void *x, int64_t n)
{
    return dot_dequant_row(HERD_DTYPE_Q5_0, w, x, n);
}

static float dot_q5_1_row(const void *w, const void *x, int64_t n)
{
    return dot_dequant_row(HERD_DTYPE_Q5_1, w, x, n);
}

static void matmul_q5_0_ref(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                            int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_rows(y, ldy, w, dtype_row_bytes(HERD_DTYPE_Q5_0, n), xa, xrb, n, n_b, r0, r1,
                dot_q5_0_row);
}

static void matmul_q5_1_ref(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                            int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_rows(y, ldy, w, dtype_row_bytes(HERD_DTYPE_Q5_1, n), xa, xrb, n, n_b, r0, r1,
                dot_q5_1_row);
}

void kernels_fill_matmul_ref(struct herd_cpu_kernels *k)
{
    k->mm[HERD_DTYPE_Q5_0] = (struct matmul_kernel){HERD_DTYPE_F32, NULL, matmul_q5_0_ref};
    k->mm[HERD_DTYPE_Q5_1] = (struct matmul_kernel){HERD_DTYPE_F32, NULL, matmul_q5_1_ref};
    k->mm[HERD_DTYPE_F32] = (struct matmul_kernel){HERD_DTYPE_F32, NULL, matmul_f32_ref};
    k->mm[HERD_DTYPE_F16] = (struct matmul_kernel){HERD_DTYPE_F32, NULL, matmul_f16_ref};
    k->mm[HERD_DTYPE_BF16] = (struct matmul_kernel){HERD_DTYPE_F32, NULL, matmul_bf16_ref};
    k->mm[HERD_DTYPE_Q8_0] =
        (struct matmul_kernel){HERD_DTYPE_Q8_0, act_quantize_q8_0_ref, matmul_q8_0_ref};
    k->mm[HERD_DTYPE_Q4_0] =
        (struct matmul_kernel){HERD_DTYPE_Q8_0, act_quantize_q8_0_ref, matmul_q4_0_ref};
    k->mm[HERD_DTYPE_Q4_1] =
        (struct matmul_kernel){HERD_DTYPE_Q8_0, act_quantize_q8_0_ref, matmul_q4_1_ref};
    k->mm[HERD_DTYPE_Q4_K] =
        (struct matmul_kernel){HERD_DTYPE_Q8_K, act_quantize_q8_k_ref, matmul_q4_k_ref};
    k->mm[HERD_DTYPE_Q5_K] =
        (struct matmul_kernel){HERD_DTYPE_Q8_K, act_quantize_q8_k_ref, matmul_q5_k_ref};
    k->mm[HERD_DTYPE_Q6_K] =
        (struct matmul_kernel){HERD_DTYPE_Q8_K, act_quantize_q8_k_ref, matmul_q6_k_ref};
}
