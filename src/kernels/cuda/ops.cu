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
 * first, then the softmax, then the weighted sum of values; here blocks take slices of the
 * positions with a running maximum (online softmax) and their results are merged, which
 * needs no buffer of n_ctx scores and differs from the CPU only by rounding.
 *
 * Every operation reads the step (tokens, positions, sequences, RoPE table) from device
 * buffers filled by step_set, never from kernel arguments, so a recorded graph replays it.
 */
#include "dequant.cuh"

#define NORM_THREADS 1024
#define ATT_THREADS 128 /* 4 warps per attention block */
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
    cuda_memo_clear(c);
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
    cuda_memo_clear(c);
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
            float dh;
            blk->qs[lane] = (int8_t)q8_0_quant(src[b * QK8_0 + lane], &dh);
            if (lane == 0)
                blk->d = __half_as_ushort(__float2half_rn(dh)); /* dh is an fp16 value */
        }
    }
}

void cuda_kv_store(struct bctx *bc, int layer, const float *k, int64_t ldk, const float *v,
                   int64_t ldv, const struct bstep *st)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    cuda_memo_clear(c);
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

/* ---- attention: split over positions (flash-decoding), then combined
 *
 * Block (t, g, c) x split s: token t, KV head g, query heads c * ATT_HG .. of the group that
 * reads g, positions [s * chunk, (s + 1) * chunk) up to pos[t]. Each warp walks every
 * ATT_WARPS-th position: its lanes hold the head's elements d = lane + 32 j, one load of
 * the key row serves every query head of the block (GQA), a shuffle sum gives each score,
 * and a running maximum rescales what was summed (online softmax). The warps' results are
 * merged in shared memory; a token whose positions fit one split writes its output there,
 * the others leave (max, sum, weighted values) per split for attention_combine_kernel.
 * Splits make a long cache many blocks (a decode step at position 4096 reads 64 blocks'
 * worth per KV head instead of one block walking 4096 positions). */

#define ATT_HG 4                            /* query heads per block */
#define ATT_DPL (CUDA_MAX_HEAD_DIM / 32)    /* head elements per lane */

struct att_args {
    float *out;               /* (n, n_heads * hd) */
    const float *q;           /* (n, n_heads * hd) */
    const uint8_t *kc, *vc;   /* the caches */
    const int32_t *seq, *pos; /* the step, device */
    float *part;              /* (ATT_TOKENS, n_heads, ATT_MAX_SPLITS, hd + 2) */
    int64_t t0;               /* first token of this launch */
    int layer, n_seq, n_ctx, n_heads, n_kv_heads, group, hd, chunk, hchunks;
    size_t row_bytes, head_bytes;
    float scale;              /* 1 / sqrt(hd) */
};

template <herd_dtype KV>
static __global__ void __launch_bounds__(ATT_THREADS) attention_kernel(struct att_args a)
{
    __shared__ float s_m[ATT_WARPS][ATT_HG], s_l[ATT_WARPS][ATT_HG];
    __shared__ float s_acc[ATT_WARPS][ATT_HG][CUDA_MAX_HEAD_DIM];
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int hc = (int)(blockIdx.x % a.hchunks);
    const int g = (int)(blockIdx.x / a.hchunks % a.n_kv_heads);
    const int64_t tl = blockIdx.x / a.hchunks / a.n_kv_heads, t = a.t0 + tl;
    const int split = blockIdx.y;
    const int32_t seq = a.seq[t], pos = a.pos[t];
    const int p_begin = split * a.chunk;
    if (p_begin > pos)
        return; /* the whole block: nothing of this token here */
    const int p_end = p_begin + a.chunk < pos + 1 ? p_begin + a.chunk : pos + 1;
    const int h0 = g * a.group + hc * ATT_HG;
    const int nh = a.group - hc * ATT_HG < ATT_HG ? a.group - hc * ATT_HG : ATT_HG;
    const size_t base = (((size_t)a.layer * a.n_seq + (size_t)seq) * a.n_ctx) * a.row_bytes +
                        (size_t)g * a.head_bytes;

    float q[ATT_HG][ATT_DPL], acc[ATT_HG][ATT_DPL], m[ATT_HG], l[ATT_HG];
#pragma unroll
    for (int hh = 0; hh < ATT_HG; hh++) {
        m[hh] = -INFINITY;
        l[hh] = 0.0f;
#pragma unroll
        for (int j = 0; j < ATT_DPL; j++) {
            const int d = lane + 32 * j;
            acc[hh][j] = 0.0f;
            q[hh][j] = hh < nh && d < a.hd ? a.q[(t * a.n_heads + h0 + hh) * a.hd + d] : 0.0f;
        }
    }
    /* two positions per pass, their loads issued together: a warp's positions are few
     * (a split's chunk over ATT_WARPS warps) and each would otherwise wait out the
     * memory's latency alone */
    const auto score = [&](const float *k, const float *v) {
#pragma unroll
        for (int hh = 0; hh < ATT_HG; hh++) {
            if (hh >= nh)
                break;
            float sc = 0.0f;
#pragma unroll
            for (int j = 0; j < ATT_DPL; j++)
                sc += q[hh][j] * k[j];
            sc = warp_sum(sc) * a.scale;
            const float m_new = fmaxf(m[hh], sc);
            const float corr = expf(m[hh] - m_new); /* 0 at the first position */
            const float pe = expf(sc - m_new);
            l[hh] = l[hh] * corr + pe;
#pragma unroll
            for (int j = 0; j < ATT_DPL; j++)
                acc[hh][j] = acc[hh][j] * corr + pe * v[j];
            m[hh] = m_new;
        }
    };
    for (int p = p_begin + warp; p < p_end; p += 2 * ATT_WARPS) {
        const int p2 = p + ATT_WARPS;
        const bool two = p2 < p_end; /* the same on every lane */
        const uint8_t *kr = a.kc + base + (size_t)p * a.row_bytes;
        const uint8_t *vr = a.vc + base + (size_t)p * a.row_bytes;
        const uint8_t *kr2 = a.kc + base + (size_t)(two ? p2 : p) * a.row_bytes;
        const uint8_t *vr2 = a.vc + base + (size_t)(two ? p2 : p) * a.row_bytes;
        float k[ATT_DPL], v[ATT_DPL], k2[ATT_DPL], v2[ATT_DPL];
#pragma unroll
        for (int j = 0; j < ATT_DPL; j++) {
            const int d = lane + 32 * j;
            const bool in = d < a.hd;
            k[j] = in ? kv_elem<KV>(kr, d) : 0.0f;
            v[j] = in ? kv_elem<KV>(vr, d) : 0.0f;
            k2[j] = in ? kv_elem<KV>(kr2, d) : 0.0f;
            v2[j] = in ? kv_elem<KV>(vr2, d) : 0.0f;
        }
        score(k, v);
        if (two)
            score(k2, v2);
    }
    /* merge the warps */
#pragma unroll
    for (int hh = 0; hh < ATT_HG; hh++) {
        if (lane == 0) {
            s_m[warp][hh] = m[hh];
            s_l[warp][hh] = l[hh];
        }
#pragma unroll
        for (int j = 0; j < ATT_DPL; j++)
            s_acc[warp][hh][lane + 32 * j] = acc[hh][j];
    }
    __syncthreads();
    const bool single = pos < a.chunk; /* one split holds every position */
    for (int e = tid; e < nh * a.hd; e += ATT_THREADS) {
        const int hh = e / a.hd, d = e % a.hd;
        float mx = -INFINITY;
        for (int w = 0; w < ATT_WARPS; w++)
            mx = fmaxf(mx, s_m[w][hh]);
        float sum = 0.0f, val = 0.0f;
        for (int w = 0; w < ATT_WARPS; w++) {
            const float f = s_m[w][hh] == -INFINITY ? 0.0f : expf(s_m[w][hh] - mx);
            sum += s_l[w][hh] * f;
            val += s_acc[w][hh][d] * f;
        }
        const int h = h0 + hh;
        if (single) {
            a.out[(t * a.n_heads + h) * a.hd + d] = val / sum;
        } else {
            float *pp = a.part + ((tl * a.n_heads + h) * ATT_MAX_SPLITS + split) * (a.hd + 2);
            pp[2 + d] = val;
            if (d == 0) {
                pp[0] = mx;
                pp[1] = sum;
            }
        }
    }
}

/* Block (t, h): the splits of a token whose positions took more than one, merged. */
static __global__ void __launch_bounds__(ATT_THREADS) attention_combine_kernel(struct att_args a)
{
    const int64_t tl = blockIdx.x / a.n_heads, t = a.t0 + tl;
    const int h = (int)(blockIdx.x % a.n_heads);
    const int32_t pos = a.pos[t];
    if (pos < a.chunk)
        return; /* written by attention_kernel */
    const int ns = pos / a.chunk + 1;
    const float *pp = a.part + (tl * a.n_heads + h) * ATT_MAX_SPLITS * (a.hd + 2);
    float mx = -INFINITY;
    for (int s = 0; s < ns; s++)
        mx = fmaxf(mx, pp[s * (a.hd + 2)]);
    for (int d = threadIdx.x; d < a.hd; d += ATT_THREADS) {
        float sum = 0.0f, val = 0.0f;
        for (int s = 0; s < ns; s++) {
            const float f = expf(pp[s * (a.hd + 2)] - mx);
            sum += pp[s * (a.hd + 2) + 1] * f;
            val += pp[s * (a.hd + 2) + 2 + d] * f;
        }
        a.out[(t * a.n_heads + h) * a.hd + d] = val / sum;
    }
}

void cuda_attention(struct bctx *bc, float *out, const float *q, int layer,
                    const struct bstep *st)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    cuda_memo_clear(c);
    if (c->err != HERD_OK || st->n <= 0)
        return;
    const struct bctx_params *p = &c->p;
    if (layer < 0 || layer >= p->n_layers) {
        cuda_ctx_fail(c, herd_fail(HERD_ERR_INTERNAL, "CUDA attention: layer %d of %d", layer,
                                   p->n_layers));
        return;
    }
    const int group = p->n_heads / p->n_kv_heads;
    struct att_args a = {out, q, c->k_cache, c->v_cache, st->seq, st->pos, c->att_part, 0,
                         layer, p->n_seq, p->n_ctx, p->n_heads, p->n_kv_heads, group,
                         p->head_dim, c->att_chunk, (group + ATT_HG - 1) / ATT_HG,
                         c->kv_row_bytes, c->kv_head_bytes, 1.0f / sqrtf((float)p->head_dim)};
    /* Splits serve a step of few tokens (decode), whose blocks would otherwise be few; a
     * prefill chunk has blocks enough, and one split per token spares the partial results
     * and the merge. */
    if (st->n > ATT_TOKENS)
        a.chunk = p->n_ctx;
    const unsigned splits = (unsigned)((p->n_ctx + a.chunk - 1) / a.chunk);
    for (int64_t t0 = 0; t0 < st->n; t0 += ATT_TOKENS) {
        const int64_t nt = st->n - t0 < ATT_TOKENS ? st->n - t0 : ATT_TOKENS;
        a.t0 = t0;
        const dim3 grid((unsigned)(nt * p->n_kv_heads * a.hchunks), splits);
        if (p->kv_type == HERD_DTYPE_F32)
            attention_kernel<HERD_DTYPE_F32><<<grid, ATT_THREADS, 0, c->stream>>>(a);
        else if (p->kv_type == HERD_DTYPE_F16)
            attention_kernel<HERD_DTYPE_F16><<<grid, ATT_THREADS, 0, c->stream>>>(a);
        else
            attention_kernel<HERD_DTYPE_Q8_0><<<grid, ATT_THREADS, 0, c->stream>>>(a);
        if (splits > 1)
            attention_combine_kernel<<<(unsigned)(nt * p->n_heads), ATT_THREADS, 0,
                                       c->stream>>>(a);
        if (!cuda_launched(c, "attention"))
            return;
    }
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
    cuda_memo_clear(c);
    const int64_t items = n * hidden;
    if (c->err != HERD_OK || items <= 0)
        return;
    swiglu_kernel<<<(unsigned)((items + 255) / 256), 256, 0, c->stream>>>(out, gate, up, items);
    cuda_launched(c, "swiglu");
}

void cuda_add(struct bctx *bc, float *x, const float *y, int64_t n)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    cuda_memo_clear(c);
    if (c->err != HERD_OK || n <= 0)
        return;
    add_kernel<<<(unsigned)((n + 255) / 256), 256, 0, c->stream>>>(x, y, n);
    cuda_launched(c, "add");
}

void cuda_copy_row(struct bctx *bc, float *buf, int64_t cols, int64_t dst, int64_t src)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    cuda_memo_clear(c);
    if (c->err != HERD_OK || dst == src)
        return;
    cudaError_t e = cudaMemcpyAsync(buf + dst * cols, buf + src * cols,
                                    (size_t)cols * sizeof(float), cudaMemcpyDeviceToDevice,
                                    c->stream);
    if (e != cudaSuccess)
        cuda_ctx_fail(c, cuda_fail(e, "cudaMemcpyAsync (copy_row)", __FILE__, __LINE__));
}
