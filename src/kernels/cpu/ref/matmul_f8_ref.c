/*
 * matmul_f8_ref.c - scalar reference of the FP8 e4m3 product (quant/fp8.c has the row
 * layout and the rules): each activation row is quantized per token to e4m3 as fbgemm's
 * quantize_fp8_per_row does (amax clamped to the weight's activation bound), then
 * y[b][r] = (sum_c q_x[c] * q_w[r][c]) * x_scale[b] * w_scale[r], the sum in f32 over
 * chunks of FP8_CHUNK columns (each chunk's sum left to right, then added to y).
 * e4m3 x e4m3 products are exact in f32, so variants differ only by summation order.
 *
 * The activations arrive as F8_E4M3 rows too (act_quantize_f8_ref, once per call before
 * the threads split the weight rows): {token scale, bound, codes}. Each thread decodes the
 * codes of the chunk it needs on its stack, the exact values the quantizer rounded to.
 */
#include "kernels/kernels.h"
#include "quant/quant.h"

/* The bound is the weight's (row 0's header: every row of a weight carries the same). */
void act_quantize_f8_ref(void *dst, const float *x, int64_t n, const void *w)
{
    float ws, ub, inv;
    fp8_row_header(w, &ws, &ub);
    float xs = fp8_act_scale(x, n, ub, &inv);
    uint8_t *codes = (uint8_t *)dst + 8;
    for (int64_t c = 0; c < n; c++)
        codes[c] = fp8_e4m3_from_f32(x[c] * inv);
    memcpy(dst, &xs, 4);
    memcpy((uint8_t *)dst + 4, &ub, 4);
}

void matmul_f8_frame(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                     int64_t n, int64_t n_b, int64_t r0, int64_t r1, fp8_chunk_fn chunk,
                     fp8_block_fn block)
{
    const size_t rb = (size_t)n + 8;
    float q[FP8_NB * FP8_CHUNK] __attribute__((aligned(64)));
    for (int64_t b0 = 0, nt; b0 < n_b; b0 += nt) {
        nt = block && n_b - b0 >= FP8_NB ? FP8_NB : 1;
        for (int64_t t = 0; t < nt; t++)
            for (int64_t r = r0; r < r1; r++)
                y[(b0 + t) * ldy + r] = 0.0f;
        for (int64_t c0 = 0; c0 < n; c0 += FP8_CHUNK) {
            int64_t nc = n - c0 < FP8_CHUNK ? n - c0 : FP8_CHUNK;
            for (int64_t t = 0; t < nt; t++) {
                const uint8_t *xrow = (const uint8_t *)xa + (size_t)(b0 + t) * xrb;
                for (int64_t c = 0; c < nc; c++)
                    q[t * FP8_CHUNK + c] = fp8_e4m3_to_f32(xrow[8 + c0 + c]);
            }
            if (nt == 1)
                chunk(y + b0 * ldy, (const uint8_t *)w + 8 + c0, rb, q, nc, r0, r1);
            else
                block(y + b0 * ldy, ldy, (const uint8_t *)w + 8 + c0, rb, q, nc, r0, r1);
        }
        for (int64_t t = 0; t < nt; t++) {
            float xs, ub;
            fp8_row_header((const uint8_t *)xa + (size_t)(b0 + t) * xrb, &xs, &ub);
            float *yb = y + (b0 + t) * ldy;
            for (int64_t r = r0; r < r1; r++) {
                float ws, ubr;
                fp8_row_header((const uint8_t *)w + (size_t)r * rb, &ws, &ubr);
                yb[r] = yb[r] * xs * ws;
            }
        }
    }
}

/* Each row's sum over the chunk, left to right. */
static void chunk_ref(float *yb, const uint8_t *base, size_t rb, const float *q, int64_t nc,
                      int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *codes = base + (size_t)r * rb;
        float acc = 0.0f;
        for (int64_t c = 0; c < nc; c++)
            acc += fp8_e4m3_to_f32(codes[c]) * q[c];
        yb[r] += acc;
    }
}

void matmul_f8_e4m3_ref(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                        int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_f8_frame(y, ldy, w, xa, xrb, n, n_b, r0, r1, chunk_ref, NULL);
}

void kernels_fill_matmul_f8_ref(struct herd_cpu_kernels *k)
{
    k->mm[HERD_DTYPE_F8_E4M3] = (struct matmul_kernel){HERD_DTYPE_F8_E4M3, NULL, matmul_f8_e4m3_ref};
    k->convert_w[HERD_DTYPE_F8_E4M3] = act_quantize_f8_ref;
}
