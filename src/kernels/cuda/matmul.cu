/*
 * matmul.cu - the CUDA backend's products with weight matrices, and the embedding.
 *
 * y (n, ldy) = x (n, ldx) times W transposed, W n_rows rows of n_cols elements in any layout
 * of dequant.cuh. The function computed is the CPU backend's (cpu/ref/matmul_ref.c): there,
 * activations are first converted to the weight type's partner format (kernels.h: Q8_0 for
 * Q4_0/Q4_1/Q8_0, Q8_K for the K-quants, f32 otherwise), and the products are integer sums
 * scaled by the block scales. Here the activations are rounded to the same partner format
 * by the same rules and kept as floats (q * d), and weights are dequantized to floats: the
 * sum of (q_w d_w)(q_x d_x) is the CPU's sum up to float rounding, so the two backends
 * agree to about 1e-6 instead of differing by the partner format's quantization error.
 *
 * Two paths by the number of activation rows:
 *  - n <= MMV_MAX_ROWS (decode): one warp per weight row; the lanes walk the row 32
 *    neighbouring elements at a time, each dequantizing its element and multiplying it
 *    with up to 8 activation rows held in registers; a shuffle sum ends each row.
 *  - larger n (prefill): the weight rows are dequantized to f32 into a scratch buffer,
 *    some rows at a time, and cuBLAS multiplies (SGEMM in full f32: no TF32, so the
 *    result does not depend on the GPU's tensor-core formats). F32 weights go to cuBLAS
 *    directly.
 * Correctness first: the kernels are plain; neither path allocates.
 */
#include "dequant.cuh"

#define GEMV_WARPS 4    /* weight rows per 128-thread block */

/* Calls f.template operator()<T>() for the layout t; false for a type without kernels. */
template <typename F>
static bool with_type(herd_dtype t, F &&f)
{
    switch (t) {
    case HERD_DTYPE_F32:
        f.template operator()<HERD_DTYPE_F32>();
        return true;
    case HERD_DTYPE_F16:
        f.template operator()<HERD_DTYPE_F16>();
        return true;
    case HERD_DTYPE_BF16:
        f.template operator()<HERD_DTYPE_BF16>();
        return true;
    case HERD_DTYPE_F8_E4M3:
        f.template operator()<HERD_DTYPE_F8_E4M3>();
        return true;
    case HERD_DTYPE_Q8_0:
        f.template operator()<HERD_DTYPE_Q8_0>();
        return true;
    case HERD_DTYPE_Q4_0:
        f.template operator()<HERD_DTYPE_Q4_0>();
        return true;
    case HERD_DTYPE_Q4_1:
        f.template operator()<HERD_DTYPE_Q4_1>();
        return true;
    case HERD_DTYPE_Q5_0:
        f.template operator()<HERD_DTYPE_Q5_0>();
        return true;
    case HERD_DTYPE_Q5_1:
        f.template operator()<HERD_DTYPE_Q5_1>();
        return true;
    case HERD_DTYPE_Q4_K:
        f.template operator()<HERD_DTYPE_Q4_K>();
        return true;
    case HERD_DTYPE_Q5_K:
        f.template operator()<HERD_DTYPE_Q5_K>();
        return true;
    case HERD_DTYPE_Q6_K:
        f.template operator()<HERD_DTYPE_Q6_K>();
        return true;
    default:
        return false;
    }
}

/* with_type's answer without doing anything. */
struct type_probe {
    template <herd_dtype T>
    void operator()() const
    {
    }
};

bool cuda_weight_type_ok(herd_dtype t)
{
    return with_type(t, type_probe{});
}

/* ---- kernels */

/* x[t] = row tokens[t] of the embedding; grid (n, dim / 256 rounded up). */
template <herd_dtype T>
static __global__ void embed_kernel(float *x, int64_t dim, const uint8_t *w, size_t row_bytes,
                                    const int32_t *tokens)
{
    const int64_t t = blockIdx.x;
    const int64_t i = (int64_t)blockIdx.y * blockDim.x + threadIdx.x;
    if (i < dim)
        x[t * dim + i] = dequant_elem<T>(w + (size_t)tokens[t] * row_bytes, i);
}

/* Rows [0, rows) of a weight as fp16 pairs for the tensor cores: hi = fp16(w), lo =
 * fp16(w - hi), each (rows, cols); a block per row. */
template <herd_dtype T>
static __global__ void dequant16_kernel(uint16_t *hi, uint16_t *lo, const uint8_t *w,
                                        size_t row_bytes, int64_t cols)
{
    const int64_t r = blockIdx.x;
    const uint8_t *wr = w + (size_t)r * row_bytes;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
        const float v = dequant_elem<T>(wr, i);
        const __half h = __float2half_rn(v);
        hi[r * cols + i] = __half_as_ushort(h);
        lo[r * cols + i] = __half_as_ushort(__float2half_rn(v - __half2float(h)));
    }
}

/* bf16 of f (round to nearest even; NaN kept quiet), as round_bf16_kernel. */
static __device__ __forceinline__ uint16_t bf16_bits(float f)
{
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u | 0x400000u) >> 16);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

static __device__ __forceinline__ float bf16_float(uint16_t h)
{
    return __uint_as_float((uint32_t)h << 16);
}

/* Activations as 16-bit pairs for the tensor cores: hi = x rounded to the weight's 16-bit
 * type, lo = (x - hi) rounded (with_lo): hi + lo carries about twice the mantissa, so that
 * two 16-bit products give what one f32 product gives. (n, cols) rows, compact. */
template <bool BF>
static __global__ void split16_kernel(uint16_t *hi, uint16_t *lo, const float *x, int64_t ldx,
                                      int64_t cols, bool with_lo)
{
    const int64_t r = blockIdx.x;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
        const float v = x[r * ldx + i];
        uint16_t h, l = 0;
        if (BF) {
            h = bf16_bits(v);
            if (with_lo)
                l = bf16_bits(v - bf16_float(h));
        } else {
            h = __half_as_ushort(__float2half_rn(v));
            if (with_lo)
                l = __half_as_ushort(__float2half_rn(v - __half2float(__ushort_as_half(h))));
        }
        hi[r * cols + i] = h;
        if (with_lo)
            lo[r * cols + i] = l;
    }
}

/* One warp per weight row r, n <= NB activation rows. */
template <herd_dtype T, int NB>
static __global__ void gemv_kernel(float *y, int64_t ldy, const uint8_t *w, size_t row_bytes,
                                   int64_t n_rows, int64_t n_cols, const float *x, int64_t ldx,
                                   int n)
{
    const int lane = threadIdx.x % 32;
    const int64_t r = (int64_t)blockIdx.x * GEMV_WARPS + threadIdx.x / 32;
    if (r >= n_rows)
        return; /* the whole warp: r is the same for its lanes */
    const uint8_t *wr = w + (size_t)r * row_bytes;
    float acc[NB];
#pragma unroll
    for (int b = 0; b < NB; b++)
        acc[b] = 0.0f;
#pragma unroll 4
    for (int64_t i = lane; i < n_cols; i += 32) {
        const float wv = dequant_elem<T>(wr, i);
#pragma unroll
        for (int b = 0; b < NB; b++)
            if (b < n)
                acc[b] += wv * __ldg(x + b * ldx + i);
    }
#pragma unroll
    for (int b = 0; b < NB; b++) {
        const float s = warp_sum(acc[b]);
        if (lane == 0 && b < n)
            y[b * ldy + r] = s;
    }
}

/* ---- activation rounding to a partner format, kept as floats (q * d) */

/* Q8_0 as act_quantize_q8_0_ref: per 32 elements d = amax / 127, q = round(x / d) (half
 * away from zero), d stored as fp16. One warp per block, a lane per element. */
static __global__ void round_q8_0_kernel(float *out, const float *x, int64_t ldx, int64_t cols,
                                         int64_t n)
{
    const int64_t nb = cols / QK8_0;
    const int64_t g = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (g >= n * nb)
        return;
    const int64_t r = g / nb, j = (g % nb) * QK8_0 + lane;
    float dh;
    const int q = q8_0_quant(x[r * ldx + j], &dh);
    out[r * cols + j] = (float)q * dh;
}

/* Q8_K as act_quantize_q8_k_ref: per 256 elements the element of largest magnitude (the
 * first on ties) maps to -127, q = nearbyint(x * -127 / max) (ties to even), +128 clamped
 * to 127, d = 1 / scale in f32. One warp per block, 8 elements per lane. */
static __global__ void round_q8_k_kernel(float *out, const float *x, int64_t ldx, int64_t cols,
                                         int64_t n)
{
    const int64_t nb = cols / QK_K;
    const int64_t g = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (g >= n * nb)
        return;
    const int64_t r = g / nb, j0 = (g % nb) * QK_K;
    const float *xb = x + r * ldx + j0;
    float v[8], amax = 0.0f, max = 0.0f;
    int idx = QK_K; /* past the end: no element yet */
#pragma unroll
    for (int k = 0; k < 8; k++) {
        v[k] = xb[lane + 32 * k];
        if (fabsf(v[k]) > amax) {
            amax = fabsf(v[k]);
            max = v[k];
            idx = lane + 32 * k;
        }
    }
    q8_k_pivot(&amax, &max, &idx); /* the same winner on every lane */
    float *ob = out + r * cols + j0;
    if (amax == 0.0f) {
#pragma unroll
        for (int k = 0; k < 8; k++)
            ob[lane + 32 * k] = 0.0f;
        return;
    }
    const float iscale = -127.0f / max;
    const float d = 1.0f / iscale;
#pragma unroll
    for (int k = 0; k < 8; k++)
        ob[lane + 32 * k] = d * fminf(rintf(iscale * v[k]), 127.0f);
}

/* BF16 as act_convert_bf16_ref (round to nearest even, NaN kept quiet). */
static __global__ void round_bf16_kernel(float *out, const float *x, int64_t ldx, int64_t cols,
                                         int64_t n)
{
    const int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n * cols)
        return;
    uint32_t u = __float_as_uint(x[(e / cols) * ldx + e % cols]);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        u |= 0x400000u;
    else
        u += 0x7fffu + ((u >> 16) & 1);
    out[e] = __uint_as_float(u & 0xffff0000u);
}

/* ---- launchers */

/* Blocks of per_block threads for one thread per item (n_items < 2^31 blocks' worth). */
static unsigned blocks_for(int64_t n_items, int per_block)
{
    return (unsigned)((n_items + per_block - 1) / per_block);
}

/* c->act (n, cols) = rows of x rounded to format at. */
static void round_act(struct cuda_ctx *c, herd_dtype at, const float *x, int64_t ldx,
                      int64_t cols, int64_t n)
{
    if (at == HERD_DTYPE_Q8_0)
        round_q8_0_kernel<<<blocks_for(n * cols, 256), 256, 0, c->stream>>>(c->act, x, ldx,
                                                                           cols, n);
    else if (at == HERD_DTYPE_Q8_K)
        round_q8_k_kernel<<<blocks_for(n * (cols / QK_K) * 32, 256), 256, 0, c->stream>>>(
            c->act, x, ldx, cols, n);
    else /* HERD_DTYPE_BF16 (ctx_new admits no other partner format) */
        round_bf16_kernel<<<blocks_for(n * cols, 256), 256, 0, c->stream>>>(c->act, x, ldx,
                                                                           cols, n);
}

template <herd_dtype T, int NB>
static void gemv_launch(struct cuda_ctx *c, float *y, int64_t ldy, const struct weight *w,
                        const float *x, int64_t ldx, int64_t n)
{
    const unsigned grid = (unsigned)((w->n_rows + GEMV_WARPS - 1) / GEMV_WARPS);
    gemv_kernel<T, NB><<<grid, 32 * GEMV_WARPS, 0, c->stream>>>(
        y, ldy, (const uint8_t *)w->dev, w->row_bytes, w->n_rows, w->n_cols, x, ldx, (int)n);
}

/* y (n, ldy) columns [0, m) = x (n, ldx) times a (m rows of k f32) transposed. In cuBLAS's
 * column-major terms: a is k x m (lda k), x is k x n (ldx), y is m x n (ldy), y = a^T x. */
static herd_status sgemm(struct cuda_ctx *c, float *y, int64_t ldy, const float *a, int64_t m,
                         int64_t k, const float *x, int64_t ldx, int64_t n)
{
    const float one = 1.0f, zero = 0.0f;
    HERD_CUBLAS_TRY(cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)m, (int)n, (int)k, &one,
                                a, (int)k, x, (int)ldx, &zero, y, (int)ldy));
    return HERD_OK;
}

/* y (n, ldy) columns [0, m) = x16 (n rows of k, 16-bit type ty) times a (m rows of k,
 * type ty) transposed, on the tensor cores with f32 sums; beta 1 adds to y. */
static herd_status gemm16(struct cuda_ctx *c, float *y, int64_t ldy, const void *a,
                          cudaDataType_t ty, int64_t m, int64_t k, const uint16_t *x16,
                          int64_t n, float beta)
{
    const float one = 1.0f;
    HERD_CUBLAS_TRY(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)m, (int)n, (int)k, &one,
                                 a, ty, (int)k, x16, ty, (int)k, &beta, y, CUDA_R_32F,
                                 (int)ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return HERD_OK;
}

/* y (n, ldy) = a x16_hi^T + a x16_lo^T, where x16 holds the n hi rows then the n lo rows:
 * one product of 2n columns into c->y2 and a sum, so the weights are read once (what
 * counts when n is small and the product is bound by memory), or, where the result does
 * not fit c->y2 (the output matrix), two products. */
static __global__ void add_halves_kernel(float *y, int64_t ldy, const float *y2, int64_t m,
                                         int64_t n)
{
    const int64_t b = blockIdx.y;
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < m;
         r += (int64_t)gridDim.x * blockDim.x)
        y[b * ldy + r] = y2[b * m + r] + y2[(n + b) * m + r];
}

static herd_status gemm16_pair(struct cuda_ctx *c, float *y, int64_t ldy, const void *a,
                               cudaDataType_t ty, int64_t m, int64_t k, const uint16_t *x16,
                               int64_t n)
{
    herd_status s;
    if (2 * n * m > c->y2_elems) {
        if ((s = gemm16(c, y, ldy, a, ty, m, k, x16, n, 0.0f)))
            return s;
        return gemm16(c, y, ldy, a, ty, m, k, x16 + (size_t)n * k, n, 1.0f);
    }
    if ((s = gemm16(c, c->y2, m, a, ty, m, k, x16, 2 * n, 0.0f)))
        return s;
    const dim3 grid((unsigned)((m + 255) / 256 < 64 ? (m + 255) / 256 : 64), (unsigned)n);
    add_halves_kernel<<<grid, 256, 0, c->stream>>>(y, ldy, c->y2, m, n);
    HERD_CUDA_TRY(cudaGetLastError());
    return HERD_OK;
}

/* Prefill (more than MMV_MAX_ROWS rows) on the tensor cores, in 16-bit pairs: a value v is
 * hi + lo with hi = v rounded to 16 bits and lo = (v - hi) rounded, about twice the
 * mantissa, so that the sum of a few 16-bit products is the f32 product's to about 1e-6
 * of sum |w x| (a single fp16 product is off by 2^-12 of each value, which on quantized
 * models moves one token in twenty at a partner-format rounding boundary):
 *  - F16/BF16 weights are exact in their type and used in place; the activations go as a
 *    hi + lo pair of that type: two products. When the CPU's partner format is bf16
 *    (HERD_BF16_ACT) the rounded activations are exact in bf16: one product.
 *  - Quantized weights are dequantized to an fp16 pair, as many rows at a time as the
 *    scratch holds, and meet the partner-rounded activations' fp16 pair: hi hi + hi lo +
 *    lo hi, three products (lo lo is below float rounding).
 *  - F32 weights: SGEMM in full f32. */
static herd_status gemm(struct cuda_ctx *c, float *y, int64_t ldy, const struct weight *w,
                        const float *x, int64_t ldx, int64_t n)
{
    if (w->type == HERD_DTYPE_F32)
        return sgemm(c, y, ldy, (const float *)w->dev, w->n_rows, w->n_cols, x, ldx, n);
    const int64_t k = w->n_cols;
    uint16_t *xh = c->act16, *xl = c->act16 + (size_t)n * k; /* the lo rows follow */
    herd_status s;
    if (w->type == HERD_DTYPE_F16 || w->type == HERD_DTYPE_BF16) {
        const bool bf = w->type == HERD_DTYPE_BF16;
        const bool with_lo = c->act_type[w->type] == HERD_DTYPE_F32;
        const cudaDataType_t ty = bf ? CUDA_R_16BF : CUDA_R_16F;
        if (bf)
            split16_kernel<true><<<(unsigned)n, 256, 0, c->stream>>>(xh, xl, x, ldx, k, with_lo);
        else
            split16_kernel<false><<<(unsigned)n, 256, 0, c->stream>>>(xh, xl, x, ldx, k, with_lo);
        HERD_CUDA_TRY(cudaGetLastError());
        if (!with_lo)
            return gemm16(c, y, ldy, w->dev, ty, w->n_rows, k, xh, n, 0.0f);
        return gemm16_pair(c, y, ldy, w->dev, ty, w->n_rows, k, xh, n);
    }
    split16_kernel<false><<<(unsigned)n, 256, 0, c->stream>>>(xh, xl, x, ldx, k, true);
    HERD_CUDA_TRY(cudaGetLastError());
    /* the scratch's floats hold 2 halves each: hi rows then lo rows */
    const int64_t per = c->wscratch_elems / k;
    if (per < 1)
        return herd_fail(HERD_ERR_INTERNAL, "CUDA matmul: scratch of %lld floats is shorter "
                         "than a row of %lld", (long long)c->wscratch_elems, (long long)k);
    for (int64_t r0 = 0; r0 < w->n_rows; r0 += per) {
        const int64_t rows = w->n_rows - r0 < per ? w->n_rows - r0 : per;
        uint16_t *wh = (uint16_t *)c->wscratch, *wl = wh + (size_t)rows * k;
        const uint8_t *src = (const uint8_t *)w->dev + (size_t)r0 * w->row_bytes;
        with_type(w->type, [&]<herd_dtype T>() {
            dequant16_kernel<T><<<(unsigned)rows, 256, 0, c->stream>>>(wh, wl, src,
                                                                        w->row_bytes, k);
        });
        HERD_CUDA_TRY(cudaGetLastError());
        if ((s = gemm16_pair(c, y + r0, ldy, wh, CUDA_R_16F, rows, k, xh, n)) ||
            (s = gemm16(c, y + r0, ldy, wl, CUDA_R_16F, rows, k, xh, n, 1.0f)))
            return s;
    }
    return HERD_OK;
}

/* ---- op entries */

herd_status cuda_embed(struct bctx *bc, float *x, const struct weight *emb,
                       const struct bstep *st)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    cuda_memo_clear(c);
    herd_status s = cuda_ctx_status(c);
    if (s != HERD_OK)
        return s;
    if (!emb->dev || !cuda_weight_type_ok(emb->type))
        return herd_fail(HERD_ERR_UNSUPPORTED, "CUDA embed: weight type %s has no kernel",
                         herd_dtype_name(emb->type));
    if (st->n <= 0)
        return HERD_OK;
    const dim3 grid((unsigned)st->n, (unsigned)((emb->n_cols + 255) / 256));
    with_type(emb->type, [&]<herd_dtype T>() {
        embed_kernel<T><<<grid, 256, 0, c->stream>>>(x, emb->n_cols, (const uint8_t *)emb->dev,
                                                      emb->row_bytes, st->tokens);
    });
    HERD_CUDA_TRY(cudaGetLastError());
    return HERD_OK;
}

void cuda_matmul(struct bctx *bc, float *y, int64_t ldy, const struct weight *w,
                 const float *x, int64_t ldx, int64_t n)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    if (c->err != HERD_OK || n <= 0)
        return;
    if (!w->dev || !cuda_weight_type_ok(w->type) || n > c->p.n_batch ||
        w->n_cols > c->p.max_cols || ldx < w->n_cols || ldy < w->n_rows) {
        cuda_ctx_fail(c, herd_fail(HERD_ERR_INTERNAL, "CUDA matmul: %s weight %lld x %lld "
                                   "with %lld rows (ldx %lld, ldy %lld) is outside what the "
                                   "context was made for", herd_dtype_name(w->type),
                                   (long long)w->n_rows, (long long)w->n_cols, (long long)n,
                                   (long long)ldx, (long long)ldy));
        return;
    }
    if (c->memo_x) { /* y over the quantized input: forget it */
        const float *m0 = c->memo_x, *m1 = m0 + (c->memo_n - 1) * c->memo_ldx + c->memo_cols;
        if (y < m1 && m0 < y + (n - 1) * ldy + w->n_rows)
            cuda_memo_clear(c);
    }
    const herd_dtype at = c->act_type[w->type];
    const bool mmv = n <= MMV_MAX_ROWS && cuda_mmv_ok(c, w, x, ldx, n);
    /* mmv.cu quantizes the Q8_0 / Q8_K partners itself; bf16 is rounded here for both */
    if (at != HERD_DTYPE_F32 && (!mmv || at == HERD_DTYPE_BF16)) {
        round_act(c, at, x, ldx, w->n_cols, n);
        if (!cuda_launched(c, "matmul (activation rounding)"))
            return;
        x = c->act;
        ldx = w->n_cols;
    }
    if (mmv) {
        cuda_mmv(c, y, ldy, w, x, ldx, n);
        return;
    }
    if (n > MMV_MAX_ROWS) {
        herd_status s = gemm(c, y, ldy, w, x, ldx, n);
        if (s != HERD_OK)
            cuda_ctx_fail(c, s);
        return;
    }
    with_type(w->type, [&]<herd_dtype T>() {
        if (n == 1)
            gemv_launch<T, 1>(c, y, ldy, w, x, ldx, n);
        else if (n == 2)
            gemv_launch<T, 2>(c, y, ldy, w, x, ldx, n);
        else if (n <= 4)
            gemv_launch<T, 4>(c, y, ldy, w, x, ldx, n);
        else
            gemv_launch<T, MMV_MAX_ROWS>(c, y, ldy, w, x, ldx, n);
    });
    cuda_launched(c, "matmul (gemv)");
}
