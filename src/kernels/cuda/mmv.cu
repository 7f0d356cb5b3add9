/*
 * mmv.cu - the decode products (1 to MMV_MAX_ROWS activation rows) at memory speed: each
 * weight byte is read once, with wide loads, and multiplied by integer dot products.
 *
 * The CPU backend rounds activations to a partner format before a quantized product (Q8_0
 * for Q4_0/Q8_0, Q8_K for the K-quants) and sums integer products block by block. Here the
 * activations are quantized by the same rules to int8 with their scales (and, for Q8_K, the
 * sums of 16), and the weight quants meet them in __dp4a: every block's integer sum is the
 * CPU's exactly, and only the float sums over blocks are taken in another order. F16 and
 * BF16 weights are read 8 at a time (16 bytes) and multiplied in f32.
 *
 * A warp owns a weight row. The row is cut into units that one lane reads with few wide
 * loads (half a Q8_0 block, half a Q4_0 block, an eighth of a Q4_K super-block in one
 * 16-byte load, an eighth of a Q6_K super-block, 8 F16/BF16 weights); neighbouring lanes read
 * neighbouring units, so a warp's loads cover contiguous bytes. Each lane keeps one sum per
 * activation row; a shuffle sum ends the row.
 *
 * Types without a kernel here (F32, Q4_1, Q5_0, Q5_1, Q5_K) and rows whose bytes are not
 * aligned for the wide loads take matmul.cu's element-wise kernel.
 */
#include "dequant.cuh"

#define MMV_WARPS 4 /* weight rows per 128-thread block */

/* The activations of one product: floats (F16/BF16 weights) or int8 quants with scales. */
struct mmv_act {
    const float *x;    /* (n, ldx) floats, F16/BF16 weights */
    int64_t ldx;
    const int8_t *q;   /* (n, cols) quants, the quantized types */
    const float *d;    /* (n, cols / block) scales: per 32 (Q8_0) or per 256 (Q8_K) */
    const int16_t *bs; /* (n, cols / 16) sums of 16 quants (Q8_K) */
    int64_t cols;
};

/* Little-endian bytes at a 2-byte aligned address as 32-bit words. */
static __device__ __forceinline__ int load_u16x2(const uint8_t *p)
{
    const uint16_t *h = (const uint16_t *)p;
    return (int)((uint32_t)h[0] | ((uint32_t)h[1] << 16));
}

/* ---- the unit of each layout: units per row and one lane's product with a unit */

template <herd_dtype T>
struct mmv_unit;

/* F16 / BF16: 8 weights, one 16-byte load. */
template <herd_dtype T>
struct mmv_unit16 {
    static constexpr int per_row_div = 8; /* cols / 8 units */
    template <int NB>
    static __device__ __forceinline__ void dot(const uint8_t *wr, int64_t u, const mmv_act &a,
                                               int n, float acc[NB])
    {
        const uint4 raw = __ldg((const uint4 *)(wr + 16 * u));
        const uint32_t wv[4] = {raw.x, raw.y, raw.z, raw.w};
        float w[8];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            if (T == HERD_DTYPE_F16) {
                w[2 * k] = f16_val((uint16_t)(wv[k] & 0xffffu));
                w[2 * k + 1] = f16_val((uint16_t)(wv[k] >> 16));
            } else {
                w[2 * k] = __uint_as_float(wv[k] << 16);
                w[2 * k + 1] = __uint_as_float(wv[k] & 0xffff0000u);
            }
        }
#pragma unroll
        for (int b = 0; b < NB; b++) {
            if (b >= n)
                break;
            const float4 *xp = (const float4 *)(a.x + b * a.ldx + 8 * u);
            const float4 x0 = __ldg(xp), x1 = __ldg(xp + 1);
            acc[b] += w[0] * x0.x + w[1] * x0.y + w[2] * x0.z + w[3] * x0.w + w[4] * x1.x +
                      w[5] * x1.y + w[6] * x1.z + w[7] * x1.w;
        }
    }
};

template <>
struct mmv_unit<HERD_DTYPE_F16> : mmv_unit16<HERD_DTYPE_F16> {
};
template <>
struct mmv_unit<HERD_DTYPE_BF16> : mmv_unit16<HERD_DTYPE_BF16> {
};

/* Q8_0: half a block, 16 quants (8 two-byte loads) against 16 activation quants. */
template <>
struct mmv_unit<HERD_DTYPE_Q8_0> {
    static constexpr int per_row_div = 16;
    template <int NB>
    static __device__ __forceinline__ void dot(const uint8_t *wr, int64_t u, const mmv_act &a,
                                               int n, float acc[NB])
    {
        const int64_t i = u / 2;
        const uint8_t *blk = wr + (size_t)i * sizeof(struct block_q8_0);
        const float dw = f16_val(*(const uint16_t *)blk);
        const uint8_t *qs = blk + 2 + 16 * (u % 2);
        const int w0 = load_u16x2(qs), w1 = load_u16x2(qs + 4), w2 = load_u16x2(qs + 8),
                  w3 = load_u16x2(qs + 12);
#pragma unroll
        for (int b = 0; b < NB; b++) {
            if (b >= n)
                break;
            const int4 x = __ldg((const int4 *)(a.q + b * a.cols + 16 * u));
            const int s = __dp4a(w3, x.w, __dp4a(w2, x.z, __dp4a(w1, x.y, __dp4a(w0, x.x, 0))));
            acc[b] += (float)s * (dw * __ldg(a.d + b * (a.cols / QK8_0) + i));
        }
    }
};

/* Q4_0: half a block: 8 bytes give elements 8h..8h+7 (low nibbles) and 16+8h..16+8h+7. */
template <>
struct mmv_unit<HERD_DTYPE_Q4_0> {
    static constexpr int per_row_div = 16;
    template <int NB>
    static __device__ __forceinline__ void dot(const uint8_t *wr, int64_t u, const mmv_act &a,
                                               int n, float acc[NB])
    {
        const int64_t i = u / 2;
        const int h = (int)(u % 2);
        const uint8_t *blk = wr + (size_t)i * sizeof(struct block_q4_0);
        const float dw = f16_val(*(const uint16_t *)blk);
        const int v0 = load_u16x2(blk + 2 + 8 * h), v1 = load_u16x2(blk + 6 + 8 * h);
        const int l0 = __vsub4(v0 & 0x0f0f0f0f, 0x08080808);
        const int l1 = __vsub4(v1 & 0x0f0f0f0f, 0x08080808);
        const int h0 = __vsub4((v0 >> 4) & 0x0f0f0f0f, 0x08080808);
        const int h1 = __vsub4((v1 >> 4) & 0x0f0f0f0f, 0x08080808);
#pragma unroll
        for (int b = 0; b < NB; b++) {
            if (b >= n)
                break;
            const int8_t *xq = a.q + b * a.cols + 32 * i + 8 * h;
            const int2 xl = __ldg((const int2 *)xq), xh = __ldg((const int2 *)(xq + 16));
            int s = __dp4a(l0, xl.x, 0);
            s = __dp4a(l1, xl.y, s);
            s = __dp4a(h0, xh.x, s);
            s = __dp4a(h1, xh.y, s);
            acc[b] += (float)s * (dw * __ldg(a.d + b * (a.cols / QK4_0) + i));
        }
    }
};

/* Q4_K: unit k (0..7) of a super-block is 16 bytes of qs, 32c + 16h with c = k / 2,
 * h = k % 2: low nibbles are elements 64c + 16h + (0..15) of sub-block 2c, high nibbles
 * 64c + 32 + 16h + (0..15) of sub-block 2c + 1. (Units of 32 bytes, two loads per lane,
 * measured slower on the H200: 35% of the bandwidth on the output matrix instead of 55%,
 * half as many loads in flight per row.) */
template <>
struct mmv_unit<HERD_DTYPE_Q4_K> {
    static constexpr int per_row_div = 32;
    template <int NB>
    static __device__ __forceinline__ void dot(const uint8_t *wr, int64_t u, const mmv_act &a,
                                               int n, float acc[NB])
    {
        const int64_t sb = u / 8;
        const int k = (int)(u % 8), c = k / 2, h = k % 2;
        const uint8_t *blk = wr + (size_t)sb * sizeof(struct block_q4_k);
        const uint4 q = __ldg((const uint4 *)(blk + 16 + 32 * c + 16 * h));
        const uint32_t dd = __ldg((const uint32_t *)blk);
        const float d = f16_val((uint16_t)(dd & 0xffffu)), dmin = f16_val((uint16_t)(dd >> 16));
        int sc0, m0, sc1, m1;
        k4_scale_min(2 * c, blk + 4, &sc0, &m0);
        k4_scale_min(2 * c + 1, blk + 4, &sc1, &m1);
        const int lo[4] = {(int)(q.x & 0x0f0f0f0fu), (int)(q.y & 0x0f0f0f0fu),
                           (int)(q.z & 0x0f0f0f0fu), (int)(q.w & 0x0f0f0f0fu)};
        const int hi[4] = {(int)((q.x >> 4) & 0x0f0f0f0fu), (int)((q.y >> 4) & 0x0f0f0f0fu),
                           (int)((q.z >> 4) & 0x0f0f0f0fu), (int)((q.w >> 4) & 0x0f0f0f0fu)};
#pragma unroll
        for (int b = 0; b < NB; b++) {
            if (b >= n)
                break;
            const int8_t *xq = a.q + b * a.cols + sb * QK_K + 64 * c + 16 * h;
            const int4 xl = __ldg((const int4 *)xq), xh = __ldg((const int4 *)(xq + 32));
            int sl = __dp4a(lo[0], xl.x, 0);
            sl = __dp4a(lo[1], xl.y, sl);
            sl = __dp4a(lo[2], xl.z, sl);
            sl = __dp4a(lo[3], xl.w, sl);
            int sh = __dp4a(hi[0], xh.x, 0);
            sh = __dp4a(hi[1], xh.y, sh);
            sh = __dp4a(hi[2], xh.z, sh);
            sh = __dp4a(hi[3], xh.w, sh);
            const int16_t *bs = a.bs + b * (a.cols / 16) + sb * 16 + 4 * c + h;
            const int sumi = sc0 * sl + sc1 * sh;
            const int summ = m0 * __ldg(bs) + m1 * __ldg(bs + 2);
            const float dx = __ldg(a.d + b * (a.cols / QK_K) + sb);
            acc[b] += d * dx * (float)sumi - dmin * dx * (float)summ;
        }
    }
};

/* Q6_K: unit k (0..7) of a super-block is half g = k / 4 and lanes l0 = 8 (k % 4) .. +7:
 * weights 128g + 32j + l for j = 0..3 take their low 4 bits from ql[64g + l] (j = 0, 2: low
 * and high nibble) or ql[64g + 32 + l] (j = 1, 3) and bits 2j..2j+1 of qh[32g + l]. */
template <>
struct mmv_unit<HERD_DTYPE_Q6_K> {
    static constexpr int per_row_div = 32;
    template <int NB>
    static __device__ __forceinline__ void dot(const uint8_t *wr, int64_t u, const mmv_act &a,
                                               int n, float acc[NB])
    {
        const int64_t sb = u / 8;
        const int k = (int)(u % 8), g = k / 4, l0 = 8 * (k % 4);
        const uint8_t *blk = wr + (size_t)sb * sizeof(struct block_q6_k);
        const uint8_t *ql = blk + 64 * g + l0, *qh = blk + 128 + 32 * g + l0;
        const int a0 = load_u16x2(ql), a1 = load_u16x2(ql + 4);
        const int b0 = load_u16x2(ql + 32), b1 = load_u16x2(ql + 36);
        const int h0 = load_u16x2(qh), h1 = load_u16x2(qh + 4);
        const float d = f16_val(*(const uint16_t *)(blk + 208));
        const int8_t *scales = (const int8_t *)(blk + 192);
        int w[4][2];
        w[0][0] = (a0 & 0x0f0f0f0f) | ((h0 << 4) & 0x30303030);
        w[0][1] = (a1 & 0x0f0f0f0f) | ((h1 << 4) & 0x30303030);
        w[1][0] = (b0 & 0x0f0f0f0f) | ((h0 << 2) & 0x30303030);
        w[1][1] = (b1 & 0x0f0f0f0f) | ((h1 << 2) & 0x30303030);
        w[2][0] = ((a0 >> 4) & 0x0f0f0f0f) | (h0 & 0x30303030);
        w[2][1] = ((a1 >> 4) & 0x0f0f0f0f) | (h1 & 0x30303030);
        w[3][0] = ((b0 >> 4) & 0x0f0f0f0f) | ((h0 >> 2) & 0x30303030);
        w[3][1] = ((b1 >> 4) & 0x0f0f0f0f) | ((h1 >> 2) & 0x30303030);
        int sc[4];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            w[j][0] = __vsub4(w[j][0], 0x20202020);
            w[j][1] = __vsub4(w[j][1], 0x20202020);
            sc[j] = scales[(128 * g + 32 * j + l0) / 16];
        }
#pragma unroll
        for (int b = 0; b < NB; b++) {
            if (b >= n)
                break;
            const int8_t *xq = a.q + b * a.cols + sb * QK_K + 128 * g + l0;
            int sumi = 0;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int2 x = __ldg((const int2 *)(xq + 32 * j));
                sumi += sc[j] * __dp4a(w[j][1], x.y, __dp4a(w[j][0], x.x, 0));
            }
            acc[b] += d * __ldg(a.d + b * (a.cols / QK_K) + sb) * (float)sumi;
        }
    }
};

/* ---- the kernel: a warp per weight row */

template <herd_dtype T, int NB>
static __global__ void __launch_bounds__(32 * MMV_WARPS)
    mmv_kernel(float *__restrict__ y, int64_t ldy, const uint8_t *__restrict__ w,
               size_t row_bytes, int64_t n_rows, int64_t units, mmv_act a, int n)
{
    const int lane = threadIdx.x % 32;
    const int64_t r = (int64_t)blockIdx.x * MMV_WARPS + threadIdx.x / 32;
    if (r >= n_rows)
        return; /* the whole warp */
    const uint8_t *wr = w + (size_t)r * row_bytes;
    float acc[NB];
#pragma unroll
    for (int b = 0; b < NB; b++)
        acc[b] = 0.0f;
#pragma unroll 4
    for (int64_t u = lane; u < units; u += 32)
        mmv_unit<T>::template dot<NB>(wr, u, a, n, acc);
#pragma unroll
    for (int b = 0; b < NB; b++) {
        const float s = warp_sum(acc[b]);
        if (lane == 0 && b < n)
            y[b * ldy + r] = s;
    }
}

/* ---- activation quantization, the CPU's rules (matmul_ref.c), to int8 and scales */

/* Q8_0: a warp per 32 elements: d = amax / 127, q = round(x / d) half away from zero, the
 * scale stored through fp16. */
static __global__ void quant_q8_0_kernel(int8_t *q, float *dq, const float *x, int64_t ldx,
                                         int64_t cols, int64_t n)
{
    const int64_t nb = cols / QK8_0;
    const int64_t g = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (g >= n * nb)
        return;
    const int64_t r = g / nb, blk = g % nb, j = blk * QK8_0 + lane;
    float dh;
    q[r * cols + j] = (int8_t)q8_0_quant(x[r * ldx + j], &dh);
    if (lane == 0)
        dq[r * nb + blk] = dh;
}

/* Q8_K: a warp per 256 elements, 8 neighbouring ones per lane: the first element of largest
 * magnitude maps to -127, q = nearbyint(x * -127 / max) (ties to even) clamped to 127,
 * d = 1 / scale; the sums of 16 quants come from lane pairs. */
static __global__ void quant_q8_k_kernel(int8_t *q, float *dq, int16_t *bs, const float *x,
                                         int64_t ldx, int64_t cols, int64_t n)
{
    const int64_t nb = cols / QK_K;
    const int64_t g = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (g >= n * nb)
        return;
    const int64_t r = g / nb, blk = g % nb;
    const float *xb = x + r * ldx + blk * QK_K + 8 * lane;
    float v[8], amax = 0.0f, max = 0.0f;
    int idx = QK_K; /* past the end: no element yet */
#pragma unroll
    for (int k = 0; k < 8; k++) {
        v[k] = xb[k];
        if (fabsf(v[k]) > amax) {
            amax = fabsf(v[k]);
            max = v[k];
            idx = 8 * lane + k;
        }
    }
    q8_k_pivot(&amax, &max, &idx);
    int8_t *qb = q + r * cols + blk * QK_K + 8 * lane;
    int sum = 0;
    if (amax == 0.0f) {
#pragma unroll
        for (int k = 0; k < 8; k++)
            qb[k] = 0;
    } else {
        const float iscale = -127.0f / max;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const int qv = (int)fminf(rintf(iscale * v[k]), 127.0f);
            qb[k] = (int8_t)qv;
            sum += qv;
        }
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    if (lane % 2 == 0)
        bs[r * (cols / 16) + blk * 16 + lane / 2] = (int16_t)sum;
    if (lane == 0)
        dq[r * nb + blk] = amax == 0.0f ? 0.0f : 1.0f / (-127.0f / max);
}

/* ---- entry */

template <herd_dtype T, int NB>
static void mmv_launch_nb(struct cuda_ctx *c, float *y, int64_t ldy, const struct weight *w,
                          const mmv_act &a, int64_t n)
{
    const unsigned grid = (unsigned)((w->n_rows + MMV_WARPS - 1) / MMV_WARPS);
    const int64_t units = w->n_cols / mmv_unit<T>::per_row_div;
    mmv_kernel<T, NB><<<grid, 32 * MMV_WARPS, 0, c->stream>>>(
        y, ldy, (const uint8_t *)w->dev, w->row_bytes, w->n_rows, units, a, (int)n);
}

template <herd_dtype T>
static void mmv_launch_t(struct cuda_ctx *c, float *y, int64_t ldy, const struct weight *w,
                         const mmv_act &a, int64_t n)
{
    if (n == 1)
        mmv_launch_nb<T, 1>(c, y, ldy, w, a, n);
    else if (n == 2)
        mmv_launch_nb<T, 2>(c, y, ldy, w, a, n);
    else if (n <= 4)
        mmv_launch_nb<T, 4>(c, y, ldy, w, a, n);
    else
        mmv_launch_nb<T, MMV_MAX_ROWS>(c, y, ldy, w, a, n);
}

/* Whether this file has a kernel for the product: the layout, the partner format the CPU
 * uses for it, and alignment for the wide loads. */
bool cuda_mmv_ok(const struct cuda_ctx *c, const struct weight *w, const float *x, int64_t ldx,
                 int64_t n)
{
    if (n < 1 || n > MMV_MAX_ROWS || ((uintptr_t)w->dev % 16) != 0)
        return false;
    const herd_dtype at = c->act_type[w->type];
    switch (w->type) {
    case HERD_DTYPE_F16:
    case HERD_DTYPE_BF16:
        /* f32 activations, or bf16-rounded ones (they go through c->act, cols wide) */
        return w->n_cols % 8 == 0 && w->row_bytes % 16 == 0 &&
               (at != HERD_DTYPE_F32 || (((uintptr_t)x % 16) == 0 && ldx % 4 == 0));
    case HERD_DTYPE_Q8_0:
    case HERD_DTYPE_Q4_0:
        return at == HERD_DTYPE_Q8_0 && w->n_cols % QK8_0 == 0 && w->row_bytes % 2 == 0;
    case HERD_DTYPE_Q4_K:
        return at == HERD_DTYPE_Q8_K && w->n_cols % QK_K == 0 && w->row_bytes % 16 == 0;
    case HERD_DTYPE_Q6_K:
        return at == HERD_DTYPE_Q8_K && w->n_cols % QK_K == 0 && w->row_bytes % 2 == 0;
    default:
        return false;
    }
}

/* y = x W^T for n <= MMV_MAX_ROWS rows, after cuda_mmv_ok said yes. x is the product's
 * input as given (floats); for the bf16 partner format it is already rounded into c->act. */
void cuda_mmv(struct cuda_ctx *c, float *y, int64_t ldy, const struct weight *w, const float *x,
              int64_t ldx, int64_t n)
{
    const int64_t cols = w->n_cols;
    mmv_act a = {x, ldx, c->actq, c->actd, c->acts, cols};
    const herd_dtype at = c->act_type[w->type];
    const bool have = c->memo_x == x && c->memo_ldx == ldx && c->memo_cols == cols &&
                      c->memo_n == n && c->memo_type == at;
    if (have || (at != HERD_DTYPE_Q8_0 && at != HERD_DTYPE_Q8_K)) {
        /* quantized already, or floats */
    } else if (at == HERD_DTYPE_Q8_0) {
        const int64_t warps = n * (cols / QK8_0);
        quant_q8_0_kernel<<<(unsigned)((warps * 32 + 255) / 256), 256, 0, c->stream>>>(
            c->actq, c->actd, x, ldx, cols, n);
    } else if (at == HERD_DTYPE_Q8_K) {
        const int64_t warps = n * (cols / QK_K);
        quant_q8_k_kernel<<<(unsigned)((warps * 32 + 255) / 256), 256, 0, c->stream>>>(
            c->actq, c->actd, c->acts, x, ldx, cols, n);
    }
    if (!cuda_launched(c, "matmul (activation quantization)"))
        return;
    if (at == HERD_DTYPE_Q8_0 || at == HERD_DTYPE_Q8_K) {
        c->memo_x = x;
        c->memo_ldx = ldx;
        c->memo_cols = cols;
        c->memo_n = n;
        c->memo_type = at;
    }
    switch (w->type) {
    case HERD_DTYPE_F16:
        mmv_launch_t<HERD_DTYPE_F16>(c, y, ldy, w, a, n);
        break;
    case HERD_DTYPE_BF16:
        mmv_launch_t<HERD_DTYPE_BF16>(c, y, ldy, w, a, n);
        break;
    case HERD_DTYPE_Q8_0:
        mmv_launch_t<HERD_DTYPE_Q8_0>(c, y, ldy, w, a, n);
        break;
    case HERD_DTYPE_Q4_0:
        mmv_launch_t<HERD_DTYPE_Q4_0>(c, y, ldy, w, a, n);
        break;
    case HERD_DTYPE_Q4_K:
        mmv_launch_t<HERD_DTYPE_Q4_K>(c, y, ldy, w, a, n);
        break;
    case HERD_DTYPE_Q6_K:
        mmv_launch_t<HERD_DTYPE_Q6_K>(c, y, ldy, w, a, n);
        break;
    default:
        break;
    }
    cuda_launched(c, "matmul (mmv)");
}
