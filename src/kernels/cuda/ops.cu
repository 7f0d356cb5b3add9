/*
 * ops.cu - the CUDA backend's per-token operations: RMSNorm, RoPE, the KV cache store,
 * attention, SwiGLU, the residual add and the logits-row gather. Each is a static kernel,
 * launched on the context's stream by its op entry, which checks the shapes against what
 * the context was made for (bctx_params) and the launch (cuda.cuh, errors).
 *
 * Arithmetic follows the CPU backend (cpu/backend_cpu.c, cpu/ref/ops_ref.c) in float32:
 * the same formulas, with __fmul_rn / __fadd_rn where the reference rounds a product before
 * a sum, so RoPE and the norms match it to the last bit but for the order of long sums.
 * Attention is the one deliberate difference in form: the CPU takes the maximum score
 * first, then the softmax, then the weighted sum of values; here one block per (token,
 * head) walks the positions in tiles of 128 with a running maximum (online softmax), which
 * needs no buffer of n_ctx scores and differs from the CPU only by rounding.
 *
 * Every operation reads the step (tokens, positions, sequences, RoPE table) from device
 * buffers filled by step_set, never from kernel arguments, so a recorded graph replays it.
 */
#include "dequant.cuh"

#define NORM_THREADS 256
#define ATT_THREADS 128 /* a block per (token, head); also the tile of positions */
#define ATT_WARPS (ATT_THREADS / 32)

/* ---- RMSNorm: one block per row */

static __global__ void rmsnorm_kernel(float *out, const float *x, const float *w, int64_t dim,
                                      float eps)
{
    __shared__ float part[NORM_THREADS / 32];
    const float *xr = x + blockIdx.x * dim;
    float *yr = out + blockIdx.x * dim;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += NORM_THREADS)
        ss += xr[i] * xr[i];
    ss = warp_sum(ss);
    if (threadIdx.x % 32 == 0)
        part[threadIdx.x / 32] = ss;
    __syncthreads();
    float total = 0.0f;
    for (int i = 0; i < NORM_THREADS / 32; i++)
        total += part[i];
    const float scale = 1.0f / sqrtf(total / (float)dim + eps);
    for (int64_t i = threadIdx.x; i < dim; i += NORM_THREADS)
        yr[i] = __fmul_rn(__fmul_rn(xr[i], scale), w[i]);
}

void cuda_rmsnorm(struct bctx *bc, float *out, const float *x, const float *w, int64_t n,
                  int64_t dim)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    if (c->err != HERD_OK || n <= 0)
        return;
    rmsnorm_kernel<<<(unsigned)n, NORM_THREADS, 0, c->stream>>>(out, x, w, dim, c->p.norm_eps);
    cuda_launched(c, "rmsnorm");
}

/* ---- RoPE: a thread per rotated pair of every head of q and k */

static __global__ void rope_kernel(float *q, int64_t ldq, float *k, int64_t ldk,
                                   const float *rope, int64_t n, int n_heads, int n_kv_heads,
                                   int hd, int interleaved)
{
    const int half = hd / 2, heads = n_heads + n_kv_heads;
    const int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n * heads * half)
        return;
    const int64_t t = e / ((int64_t)heads * half);
    const int h = (int)(e / half % heads), i = (int)(e % half);
    float *v = h < n_heads ? q + t * ldq + (int64_t)h * hd : k + t * ldk +
                                                               (int64_t)(h - n_heads) * hd;
    const float co = rope[t * hd + 2 * i], si = rope[t * hd + 2 * i + 1];
    const int a = interleaved ? 2 * i : i;
    const int b = interleaved ? 2 * i + 1 : i + half;
    const float x0 = v[a], x1 = v[b];
    v[a] = __fsub_rn(__fmul_rn(x0, co), __fmul_rn(x1, si));
    v[b] = __fadd_rn(__fmul_rn(x0, si), __fmul_rn(x1, co));
}

void cuda_rope(struct bctx *bc, float *q, int64_t ldq, float *k, int64_t ldk,
               const struct bstep *st)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    if (c->err != HERD_OK || st->n <= 0)
        return;
    const struct bctx_params *p = &c->p;
    const int64_t items = st->n * (p->n_heads + p->n_kv_heads) * (p->head_dim / 2);
    rope_kernel<<<(unsigned)((items + 255) / 256), 256, 0, c->stream>>>(
        q, ldq, k, ldk, c->rope, st->n, p->n_heads, p->n_kv_heads, p->head_dim,
        p->rope_style == ROPE_INTERLEAVED);
    cuda_launched(c, "rope");
}

/* ---- the KV cache */

/* Where position pos of sequence seq sits in layer's cache. */
static __device__ __forceinline__ size_t kv_offset(int layer, int32_t seq, int32_t pos,
                                                   int n_seq, int n_ctx, size_t row_bytes)
{
    return (((size_t)layer * n_seq + (size_t)seq) * n_ctx + (size_t)pos) * row_bytes;
}

/* Element d of one head's row in the cache. */
template <herd_dtype KV>
static __device__ __forceinline__ float kv_elem(const uint8_t *head, int d)
{
    if constexpr (KV == HERD_DTYPE_F32) {
        return ((const float *)head)[d];
    } else if constexpr (KV == HERD_DTYPE_F16) {
        return f16_val(((const uint16_t *)head)[d]);
    } else {
        const struct block_q8_0 *b = (const struct block_q8_0 *)head + d / QK8_0;
        return (float)b->qs[d % QK8_0] * f16_val(b->d);
    }
}

/* Token t's keys (blockIdx.y 0) or values (1) into the cache at (seq[t], pos[t]). A Q8_0
 * row is quantized as quantize_row_q8_0_ref does, a warp per block of 32. */
template <herd_dtype KV>
static __global__ void kv_store_kernel(uint8_t *kc, uint8_t *vc, const float *k, int64_t ldk,
                                       const float *v, int64_t ldv, const int32_t *seqs,
                                       const int32_t *poss, int layer, int n_seq, int n_ctx,
                                       int kv_dim, size_t row_bytes)
{
    const int64_t t = blockIdx.x;
    const float *src = blockIdx.y ? v + t * ldv : k + t * ldk;
    uint8_t *row = (blockIdx.y ? vc : kc) +
                   kv_offset(layer, seqs[t], poss[t], n_seq, n_ctx, row_bytes);
    if constexpr (KV == HERD_DTYPE_F32) {
        for (int e = threadIdx.x; e < kv_dim; e += blockDim.x)
            ((float *)row)[e] = src[e];
    } else if constexpr (KV == HERD_DTYPE_F16) {
        for (int e = threadIdx.x; e < kv_dim; e += blockDim.x)
            ((__half *)row)[e] = __float2half_rn(src[e]);
    } else {
        const int lane = threadIdx.x % 32;
        for (int b = threadIdx.x / 32; b < kv_dim / QK8_0; b += blockDim.x / 32) {
            struct block_q8_0 *blk = (struct block_q8_0 *)row + b;
            const float x = src[b * QK8_0 + lane];
            const float amax = warp_max(fabsf(x));
            const float d = amax / 127.0f;
            const float id = d != 0.0f ? 1.0f / d : 0.0f;
            blk->qs[lane] = (int8_t)roundf(x * id);
            if (lane == 0)
                blk->d = __half_as_ushort(__float2half_rn(d));
        }
    }
}

void cuda_kv_store(struct bctx *bc, int layer, const float *k, int64_t ldk, const float *v,
                   int64_t ldv, const struct bstep *st)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    if (c->err != HERD_OK || st->n <= 0)
        return;
    const struct bctx_params *p = &c->p;
    if (layer < 0 || layer >= p->n_layers) {
        cuda_ctx_fail(c, herd_fail(HERD_ERR_INTERNAL, "CUDA kv_store: layer %d of %d", layer,
                                   p->n_layers));
        return;
    }
    const dim3 grid((unsigned)st->n, 2);
    if (p->kv_type == HERD_DTYPE_F32)
        kv_store_kernel<HERD_DTYPE_F32><<<grid, 128, 0, c->stream>>>(
            c->k_cache, c->v_cache, k, ldk, v, ldv, st->seq, st->pos, layer, p->n_seq, p->n_ctx,
            (int)c->kv_dim, c->kv_row_bytes);
    else if (p->kv_type == HERD_DTYPE_F16)
        kv_store_kernel<HERD_DTYPE_F16><<<grid, 128, 0, c->stream>>>(
            c->k_cache, c->v_cache, k, ldk, v, ldv, st->seq, st->pos, layer, p->n_seq, p->n_ctx,
            (int)c->kv_dim, c->kv_row_bytes);
    else
        kv_store_kernel<HERD_DTYPE_Q8_0><<<grid, 128, 0, c->stream>>>(
            c->k_cache, c->v_cache, k, ldk, v, ldv, st->seq, st->pos, layer, p->n_seq, p->n_ctx,
            (int)c->kv_dim, c->kv_row_bytes);
    cuda_launched(c, "kv_store");
}

/* ---- attention */

struct att_args {
    float *out;               /* (n, n_heads * hd) */
    const float *q;           /* (n, n_heads * hd) */
    const uint8_t *kc, *vc;   /* the caches */
    const int32_t *seq, *pos; /* the step, device */
    int layer, n_seq, n_ctx, n_heads, group, hd;
    size_t row_bytes, head_bytes;
    float scale;              /* 1 / sqrt(hd) */
};

/* Block (t, h) = blockIdx.x as t * n_heads + h: softmax(q . K / sqrt(hd)) . V over
 * positions 0..pos[t] of sequence seq[t], KV head h / group. Per tile of ATT_THREADS
 * positions: each warp scores positions (lanes across the head, a shuffle sum), the block
 * takes the tile's maximum, rescales what it has summed so far by exp(m_old - m_new), and
 * each thread adds the tile's weighted values for its output elements. */
template <herd_dtype KV>
static __global__ void __launch_bounds__(ATT_THREADS) attention_kernel(struct att_args a)
{
    __shared__ float s_q[CUDA_MAX_HEAD_DIM];
    __shared__ float s_p[ATT_THREADS];
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int64_t t = blockIdx.x / a.n_heads;
    const int h = (int)(blockIdx.x % a.n_heads);
    const int32_t seq = a.seq[t], pos = a.pos[t];
    const size_t base = kv_offset(a.layer, seq, 0, a.n_seq, a.n_ctx, a.row_bytes) +
                        (size_t)(h / a.group) * a.head_bytes;
    const uint8_t *k0 = a.kc + base, *v0 = a.vc + base;
    const int64_t qo = (t * a.n_heads + h) * a.hd;
    for (int d = tid; d < a.hd; d += ATT_THREADS)
        s_q[d] = a.q[qo + d];
    __syncthreads();
    float m = -INFINITY, l = 0.0f, acc[CUDA_MAX_HEAD_DIM / ATT_THREADS];
#pragma unroll
    for (int j = 0; j < CUDA_MAX_HEAD_DIM / ATT_THREADS; j++)
        acc[j] = 0.0f;
    for (int p0 = 0; p0 <= pos; p0 += ATT_THREADS) {
        const int cnt = pos + 1 - p0 < ATT_THREADS ? pos + 1 - p0 : ATT_THREADS;
        for (int i = warp; i < cnt; i += ATT_WARPS) {
            const uint8_t *kr = k0 + (size_t)(p0 + i) * a.row_bytes;
            float s = 0.0f;
            for (int d = lane; d < a.hd; d += 32)
                s += s_q[d] * kv_elem<KV>(kr, d);
            s = warp_sum(s);
            if (lane == 0)
                s_p[i] = s * a.scale;
        }
        __syncthreads();
        float tmax = -INFINITY;
        for (int i = 0; i < cnt; i++)
            tmax = fmaxf(tmax, s_p[i]);
        const float m_new = fmaxf(m, tmax);
        const float corr = expf(m - m_new); /* 0 on the first tile (m = -inf) */
        __syncthreads(); /* every thread has read the scores */
        if (tid < cnt)
            s_p[tid] = expf(s_p[tid] - m_new);
        __syncthreads();
        float psum = 0.0f;
        for (int i = 0; i < cnt; i++)
            psum += s_p[i];
        l = l * corr + psum;
#pragma unroll
        for (int j = 0; j < CUDA_MAX_HEAD_DIM / ATT_THREADS; j++) {
            const int d = tid + j * ATT_THREADS;
            if (d < a.hd) {
                float acc_d = acc[j] * corr;
                for (int i = 0; i < cnt; i++)
                    acc_d += s_p[i] * kv_elem<KV>(v0 + (size_t)(p0 + i) * a.row_bytes, d);
                acc[j] = acc_d;
            }
        }
        m = m_new;
        __syncthreads(); /* before the next tile's scores overwrite s_p */
    }
#pragma unroll
    for (int j = 0; j < CUDA_MAX_HEAD_DIM / ATT_THREADS; j++) {
        const int d = tid + j * ATT_THREADS;
        if (d < a.hd)
            a.out[qo + d] = acc[j] / l;
    }
}

void cuda_attention(struct bctx *bc, float *out, const float *q, int layer,
                    const struct bstep *st)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    if (c->err != HERD_OK || st->n <= 0)
        return;
    const struct bctx_params *p = &c->p;
    if (layer < 0 || layer >= p->n_layers) {
        cuda_ctx_fail(c, herd_fail(HERD_ERR_INTERNAL, "CUDA attention: layer %d of %d", layer,
                                   p->n_layers));
        return;
    }
    struct att_args a = {out, q, c->k_cache, c->v_cache, st->seq, st->pos, layer, p->n_seq,
                         p->n_ctx, p->n_heads, p->n_heads / p->n_kv_heads, p->head_dim,
                         c->kv_row_bytes, c->kv_head_bytes, 1.0f / sqrtf((float)p->head_dim)};
    const unsigned grid = (unsigned)(st->n * p->n_heads);
    if (p->kv_type == HERD_DTYPE_F32)
        attention_kernel<HERD_DTYPE_F32><<<grid, ATT_THREADS, 0, c->stream>>>(a);
    else if (p->kv_type == HERD_DTYPE_F16)
        attention_kernel<HERD_DTYPE_F16><<<grid, ATT_THREADS, 0, c->stream>>>(a);
    else
        attention_kernel<HERD_DTYPE_Q8_0><<<grid, ATT_THREADS, 0, c->stream>>>(a);
    cuda_launched(c, "attention");
}

/* ---- elementwise */

/* silu(g) * u = g / (1 + exp(-g)) * u, as swiglu_ref. */
static __global__ void swiglu_kernel(float *out, const float *gate, const float *up, int64_t n)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        const float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static __global__ void add_kernel(float *x, const float *y, int64_t n)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        x[i] += y[i];
}

void cuda_swiglu(struct bctx *bc, float *out, const float *gate, const float *up, int64_t n,
                 int64_t hidden)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    const int64_t items = n * hidden;
    if (c->err != HERD_OK || items <= 0)
        return;
    swiglu_kernel<<<(unsigned)((items + 255) / 256), 256, 0, c->stream>>>(out, gate, up, items);
    cuda_launched(c, "swiglu");
}

void cuda_add(struct bctx *bc, float *x, const float *y, int64_t n)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    if (c->err != HERD_OK || n <= 0)
        return;
    add_kernel<<<(unsigned)((n + 255) / 256), 256, 0, c->stream>>>(x, y, n);
    cuda_launched(c, "add");
}

void cuda_copy_row(struct bctx *bc, float *buf, int64_t cols, int64_t dst, int64_t src)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    if (c->err != HERD_OK || dst == src)
        return;
    cudaError_t e = cudaMemcpyAsync(buf + dst * cols, buf + src * cols,
                                    (size_t)cols * sizeof(float), cudaMemcpyDeviceToDevice,
                                    c->stream);
    if (e != cudaSuccess)
        cuda_ctx_fail(c, cuda_fail(e, "cudaMemcpyAsync (copy_row)", __FILE__, __LINE__));
}
