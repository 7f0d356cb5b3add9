/*
 * backend_cuda.cu - the CUDA backend (backend.h) on one NVIDIA GPU: "cuda" is device 0,
 * "cuda:N" device N. The operations themselves are in matmul.cu and ops.cu; this file holds
 * the model and context state, the copies, the step and CUDA graphs, and the ops table.
 *
 * Model level: every weight matrix is copied once from the file mapping to device memory
 * (weight_upload), through two pinned staging halves so that reading the file and the DMA
 * overlap; norms likewise (vector_upload). Nothing is repacked: the kernels read the GGUF
 * block layouts as they are (quant/quant.h).
 *
 * Context level: a stream and a cuBLAS handle (with its own workspace, so that recording a
 * graph never allocates), the KV cache in device memory with the CPU backend's layout
 * (layer, sequence, position, kv_dim) in F16, F32 or Q8_0, the activation buffers handed
 * out by alloc(), and the step buffers. step_set computes the RoPE table on the host
 * exactly as the CPU backend does (cos/sin in double of the float32 angle pos * inv_freq),
 * so both backends rotate by the same numbers, and sends it with the tokens, positions and
 * sequence ids in one copy.
 *
 * Graphs: forward.c brackets a chunk's embedding and blocks with graph_begin/graph_end
 * keyed by the chunk's size n; the first chunk of a size runs as it comes, the second is
 * captured from the stream (cudaStreamBeginCapture) and instantiated, later ones replay. This is valid because
 * every operation reads its per-step data from the step buffers, whose addresses depend
 * on n only (tests/unit/test_model_backend.c checks the forward pass keeps to that).
 * host_memory is false: forward.c moves logits (and dist/'s rows) through download/upload.
 */
#include "cuda.cuh"

#include <math.h>   /* cos, sin for the RoPE table */
#include <stdio.h>  /* snprintf for the kept error */
#include <stdlib.h> /* strtol for the device number */

#define PINNED_HALF ((size_t)32 << 20) /* bytes per staging half: large DMAs, little pinning */
#define BLAS_WORKSPACE ((size_t)32 << 20) /* cuBLAS's advice for Hopper */
#define SCRATCH_MAX_ELEMS ((int64_t)32 << 20) /* 128 MiB of dequantized weight rows */

extern "C" const struct backend_ops backend_cuda_ops;

/* ---- errors */

herd_status cuda_fail(cudaError_t e, const char *call, const char *file, int line)
{
    herd_status s = HERD_ERR_INTERNAL;
    if (e == cudaErrorMemoryAllocation)
        s = HERD_ERR_NOMEM;
    else if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver)
        s = HERD_ERR_UNSUPPORTED;
    const char *base = strrchr(file, '/');
    return herd_fail(s, "CUDA: %s at %s:%d: %s", call, base ? base + 1 : file, line,
                     cudaGetErrorString(e));
}

herd_status cublas_fail(cublasStatus_t e, const char *call, const char *file, int line)
{
    herd_status s = e == CUBLAS_STATUS_ALLOC_FAILED ? HERD_ERR_NOMEM : HERD_ERR_INTERNAL;
    const char *base = strrchr(file, '/');
    return herd_fail(s, "cuBLAS: %s at %s:%d: %s", call, base ? base + 1 : file, line,
                     cublasGetStatusString(e));
}

void cuda_ctx_fail(struct cuda_ctx *c, herd_status s)
{
    if (c->err != HERD_OK || s == HERD_OK)
        return;
    c->err = s;
    snprintf(c->err_msg, sizeof c->err_msg, "%s", herd_last_error());
}

bool cuda_launched(struct cuda_ctx *c, const char *what)
{
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        cuda_ctx_fail(c, herd_fail(HERD_ERR_INTERNAL, "CUDA: launching %s: %s", what,
                                   cudaGetErrorString(e)));
    return c->err == HERD_OK;
}

herd_status cuda_ctx_status(struct cuda_ctx *c)
{
    if (c->err == HERD_OK)
        return HERD_OK;
    return herd_fail(c->err, "%s", c->err_msg);
}

/* As HERD_CUDA_TRY, and the context keeps the failure: after a failed copy or wait the
 * stream's state is unknown. */
#define CTX_TRY(c, call)                                                                      \
    do {                                                                                      \
        cudaError_t ctx_e_ = (call);                                                          \
        if (ctx_e_ != cudaSuccess) {                                                          \
            herd_status ctx_s_ = cuda_fail(ctx_e_, #call, __FILE__, __LINE__);                \
            cuda_ctx_fail((c), ctx_s_);                                                       \
            return ctx_s_;                                                                    \
        }                                                                                     \
    } while (0)

static herd_status dev_alloc(void **p, size_t bytes, const char *what)
{
    *p = NULL;
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        *p = NULL;
        cudaGetLastError(); /* an allocation failure is not sticky: clear it */
        return herd_fail(e == cudaErrorMemoryAllocation ? HERD_ERR_NOMEM : HERD_ERR_INTERNAL,
                         "CUDA: cannot allocate %.1f MiB of device memory for %s: %s",
                         (double)bytes / (1024.0 * 1024.0), what, cudaGetErrorString(e));
    }
    return HERD_OK;
}

/* ---- model level */

static struct cuda_backend *cuda_be(const struct backend *be)
{
    return (struct cuda_backend *)be->impl;
}

/* "cuda" -> 0, "cuda:N" -> N; -1 when the part after ':' is not a device number. */
static int device_index(const char *device)
{
    const char *colon = strchr(device, ':');
    if (!colon)
        return 0;
    char *end = NULL;
    long v = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || v < 0 || v > 1024)
        return -1;
    return (int)v;
}

static void cuda_close(struct backend *be)
{
    struct cuda_backend *b = cuda_be(be);
    if (!b)
        return;
    cudaSetDevice(b->device);
    for (int i = 0; i < b->n_copies; i++)
        cudaFree(b->copies[i].dev);
    herd_free(b->copies);
    if (b->pinned)
        cudaFreeHost(b->pinned);
    for (int i = 0; i < 2; i++)
        if (b->half_free[i])
            cudaEventDestroy(b->half_free[i]);
    if (b->upload)
        cudaStreamDestroy(b->upload);
    herd_free(b);
    be->impl = NULL;
}

/* Appends s to buf (cap bytes) at *used, cut short where it does not fit. */
static void put(char *buf, size_t cap, size_t *used, const char *s)
{
    int k = snprintf(buf + *used, cap - *used, "%s", s);
    *used += k < 0 ? 0 : ((size_t)k < cap - *used ? (size_t)k : cap - *used - 1);
}

static int cuda_list_devices(char *buf, size_t cap, size_t *used)
{
    int count = 0;
    char line[400]; /* a device name is at most 256 bytes */
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        cudaGetLastError();
        snprintf(line, sizeof line, "cuda: no device (%s)\n",
                 e != cudaSuccess ? cudaGetErrorString(e) : "none found");
        put(buf, cap, used, line);
        return 1;
    }
    for (int i = 0; i < count; i++) {
        cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
            cudaGetLastError();
            snprintf(line, sizeof line, "cuda:%d: (properties unreadable)\n", i);
        } else {
            snprintf(line, sizeof line, "cuda:%d: %s, %.1f GiB, compute %d.%d, %d SMs\n", i,
                     p.name, (double)p.totalGlobalMem / 1073741824.0, p.major, p.minor,
                     p.multiProcessorCount);
        }
        put(buf, cap, used, line);
    }
    return count;
}

static herd_status cuda_open(struct backend *be, const char *device, int32_t n_threads)
{
    (void)n_threads;
    be->impl = NULL;
    const int idx = device_index(device);
    if (idx < 0)
        return herd_fail(HERD_ERR_INVALID, "device %s: expected cuda or cuda:N (N a device "
                         "number)", device);
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        cudaGetLastError();
        return herd_fail(HERD_ERR_UNSUPPORTED, "device %s: no CUDA device is usable here (%s)",
                         device, e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    }
    if (idx >= count)
        return herd_fail(HERD_ERR_INVALID, "device %s: this machine has %d CUDA device%s "
                         "(cuda:0..cuda:%d)", device, count, count > 1 ? "s" : "", count - 1);
    struct cuda_backend *b = (struct cuda_backend *)herd_calloc(1, sizeof *b);
    if (!b)
        return herd_fail(HERD_ERR_NOMEM, "CUDA backend");
    b->device = idx;
    be->impl = b;
    herd_status s = HERD_OK;
    cudaDeviceProp prop;
    if ((e = cudaSetDevice(idx)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&b->upload, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&b->half_free[0], cudaEventDisableTiming)) !=
            cudaSuccess ||
        (e = cudaEventCreateWithFlags(&b->half_free[1], cudaEventDisableTiming)) !=
            cudaSuccess ||
        (e = cudaGetDeviceProperties(&prop, idx)) != cudaSuccess) {
        s = cuda_fail(e, "opening the device", __FILE__, __LINE__);
        cuda_close(be);
        return s;
    }
    herd_log(HERD_LOG_INFO, "CUDA device %d: %s, compute capability %d.%d, %.1f GiB", idx,
             prop.name, prop.major, prop.minor,
             (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return HERD_OK;
}

static bool cuda_supports(const struct backend *be, herd_dtype t)
{
    (void)be;
    return cuda_weight_type_ok(t);
}

/* Drops a reference to the copy at dev, if dev is one of this backend's (a weight uploaded
 * again after sharding); the last one frees it. */
static void forget(struct cuda_backend *b, const void *dev)
{
    for (int i = 0; dev && i < b->n_copies; i++) {
        if (b->copies[i].dev == dev) {
            if (--b->copies[i].refs == 0) {
                cudaFree(b->copies[i].dev);
                b->copies[i] = b->copies[--b->n_copies];
            }
            return;
        }
    }
}

static herd_status copy_in(struct cuda_backend *b, void *dst, const void *src, size_t bytes);

/* The device copy of bytes at host: an existing one (one more reference) or a new one. */
static herd_status copy_of(struct cuda_backend *b, const void *host, size_t bytes,
                           const char *what, void **out)
{
    *out = NULL;
    for (int i = 0; i < b->n_copies; i++) {
        if (b->copies[i].host == host && b->copies[i].bytes == bytes) {
            b->copies[i].refs++;
            *out = b->copies[i].dev;
            return HERD_OK;
        }
    }
    struct cuda_copy *grown = (struct cuda_copy *)herd_realloc(
        b->copies, (size_t)(b->n_copies + 1) * sizeof *grown);
    if (!grown)
        return herd_fail(HERD_ERR_NOMEM, "CUDA weight list");
    b->copies = grown;
    void *d;
    herd_status s = dev_alloc(&d, bytes, what);
    if (s != HERD_OK)
        return s;
    if ((s = copy_in(b, d, host, bytes)) != HERD_OK) {
        cudaFree(d);
        return s;
    }
    b->copies[b->n_copies++] = (struct cuda_copy){d, host, bytes, 1};
    *out = d;
    return HERD_OK;
}

/* bytes from host src (the mapping) to device dst, 2 x PINNED_HALF at a time: while one
 * half's DMA runs, the other is filled. */
static herd_status copy_in(struct cuda_backend *b, void *dst, const void *src, size_t bytes)
{
    if (!b->pinned && cudaHostAlloc(&b->pinned, 2 * PINNED_HALF, cudaHostAllocDefault) !=
                          cudaSuccess) {
        b->pinned = NULL;
        cudaGetLastError();
        return herd_fail(HERD_ERR_NOMEM, "CUDA: cannot pin %zu MiB of host memory for "
                         "uploads", (size_t)(2 * PINNED_HALF) >> 20);
    }
    int h = 0;
    for (size_t off = 0; off < bytes; off += PINNED_HALF, h ^= 1) {
        const size_t n = bytes - off < PINNED_HALF ? bytes - off : PINNED_HALF;
        uint8_t *half = (uint8_t *)b->pinned + (size_t)h * PINNED_HALF;
        HERD_CUDA_TRY(cudaEventSynchronize(b->half_free[h]));
        memcpy(half, (const uint8_t *)src + off, n);
        HERD_CUDA_TRY(cudaMemcpyAsync((uint8_t *)dst + off, half, n, cudaMemcpyHostToDevice,
                                      b->upload));
        HERD_CUDA_TRY(cudaEventRecord(b->half_free[h], b->upload));
    }
    HERD_CUDA_TRY(cudaStreamSynchronize(b->upload));
    return HERD_OK;
}

static herd_status cuda_weight_upload(struct backend *be, struct weight *w)
{
    struct cuda_backend *b = cuda_be(be);
    if (!cuda_weight_type_ok(w->type))
        return herd_fail(HERD_ERR_UNSUPPORTED, "a weight of type %s: the CUDA backend has no "
                         "kernel for it", herd_dtype_name(w->type) ? herd_dtype_name(w->type)
                                                                   : "?");
    if (w->n_rows <= 0 || w->row_bytes == 0 || (size_t)w->n_rows > SIZE_MAX / w->row_bytes)
        return herd_fail(HERD_ERR_INTERNAL, "CUDA weight upload: bad shape");
    HERD_CUDA_TRY(cudaSetDevice(b->device));
    forget(b, w->dev);
    w->dev = NULL;
    void *d;
    herd_status s = copy_of(b, w->data, (size_t)w->n_rows * w->row_bytes, "weights", &d);
    if (s != HERD_OK)
        return s;
    w->dev = d;
    if (w->type != HERD_DTYPE_F32 && w->n_rows * w->n_cols > b->max_weight_elems)
        b->max_weight_elems = w->n_rows * w->n_cols;
    return HERD_OK;
}

static herd_status cuda_vector_upload(struct backend *be, const float *src, int64_t n,
                                      const float **dst)
{
    struct cuda_backend *b = cuda_be(be);
    HERD_CUDA_TRY(cudaSetDevice(b->device));
    forget(b, *dst);
    *dst = NULL;
    void *d;
    herd_status s = copy_of(b, src, (size_t)n * sizeof(float), "norm weights", &d);
    if (s == HERD_OK)
        *dst = (const float *)d;
    return s;
}

/* ---- context level */

/* Byte offsets of the step's parts for a chunk of n tokens: tokens, pos, seq, RoPE table. */
static size_t step_rope_offset(int64_t n)
{
    return ((size_t)n * 3 * sizeof(int32_t) + 15) / 16 * 16;
}

static void cuda_ctx_free(struct bctx *bc)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    if (!c)
        return;
    cudaSetDevice(c->be->device);
    if (c->capturing) {
        cudaGraph_t g = NULL;
        if (cudaStreamEndCapture(c->stream, &g) == cudaSuccess && g)
            cudaGraphDestroy(g);
        cudaGetLastError();
    }
    if (c->stream)
        cudaStreamSynchronize(c->stream);
    for (int i = 0; i < c->n_graphs; i++)
        cudaGraphExecDestroy(c->graphs[i].exec);
    for (int i = 0; i < c->n_bufs; i++)
        cudaFree(c->bufs[i]);
    herd_free(c->bufs);
    cudaFree(c->k_cache);
    cudaFree(c->v_cache);
    cudaFree(c->d_step);
    cudaFree(c->act);
    cudaFree(c->act16);
    cudaFree(c->y2);
    cudaFree(c->att_part);
    cudaFree(c->actq);
    cudaFree(c->actd);
    cudaFree(c->acts);
    cudaFree(c->wscratch);
    cudaFree(c->blas_ws);
    for (int i = 0; i < 2; i++) {
        if (c->h_step[i])
            cudaFreeHost(c->h_step[i]);
        if (c->step_sent[i])
            cudaEventDestroy(c->step_sent[i]);
    }
    if (c->blas)
        cublasDestroy(c->blas);
    if (c->stream)
        cudaStreamDestroy(c->stream);
    herd_free(c);
}

static herd_status check_params(const struct bctx_params *p)
{
    if (p->head_dim <= 0 || p->head_dim % 2 || p->head_dim > CUDA_MAX_HEAD_DIM)
        return herd_fail(HERD_ERR_UNSUPPORTED, "the CUDA backend handles an even head_dim up "
                         "to %d (this model's is %d)", CUDA_MAX_HEAD_DIM, p->head_dim);
    if (p->n_kv_heads <= 0 || p->n_heads % p->n_kv_heads)
        return herd_fail(HERD_ERR_INTERNAL, "CUDA context: %d query heads over %d KV heads",
                         p->n_heads, p->n_kv_heads);
    if (p->kv_type != HERD_DTYPE_F16 && p->kv_type != HERD_DTYPE_F32 &&
        p->kv_type != HERD_DTYPE_Q8_0)
        return herd_fail(HERD_ERR_UNSUPPORTED, "CUDA KV cache type %s: use f16, f32 or q8_0",
                         herd_dtype_name(p->kv_type) ? herd_dtype_name(p->kv_type) : "?");
    if (p->kv_type == HERD_DTYPE_Q8_0 && p->head_dim % QK8_0)
        return herd_fail(HERD_ERR_UNSUPPORTED, "a q8_0 KV cache needs head_dim to be a "
                         "multiple of 32");
    if (p->n_batch <= 0 || p->n_ctx <= 0 || p->n_seq <= 0 || p->max_cols <= 0)
        return herd_fail(HERD_ERR_INTERNAL, "CUDA context: empty sizes");
    return HERD_OK;
}

/* The partner format the CPU's kernels round activations to for each weight type: the
 * CUDA matmul rounds the same way, so both backends compute one function. */
static void take_act_types(struct cuda_ctx *c)
{
    const struct herd_cpu_kernels *k = kernels_get();
    for (int t = 0; t < HERD_N_DTYPES; t++) {
        herd_dtype at = k->mm[t].act_type;
        bool known = at == HERD_DTYPE_Q8_0 || at == HERD_DTYPE_Q8_K || at == HERD_DTYPE_BF16;
        c->act_type[t] = k->mm[t].matmul && known ? at : HERD_DTYPE_F32;
    }
}

static herd_status ctx_resources(struct cuda_ctx *c)
{
    const struct bctx_params *p = &c->p;
    herd_status s;
    HERD_CUDA_TRY(cudaSetDevice(c->be->device));
    HERD_CUDA_TRY(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    HERD_CUBLAS_TRY(cublasCreate(&c->blas));
    HERD_CUBLAS_TRY(cublasSetStream(c->blas, c->stream));
    HERD_CUBLAS_TRY(cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH)); /* f32: no TF32 */
    if ((s = dev_alloc(&c->blas_ws, BLAS_WORKSPACE, "the cuBLAS workspace")))
        return s;
    HERD_CUBLAS_TRY(cublasSetWorkspace(c->blas, c->blas_ws, BLAS_WORKSPACE));
    const size_t kv = (size_t)p->n_layers * p->n_seq * p->n_ctx * c->kv_row_bytes;
    void *v;
    if ((s = dev_alloc(&v, kv, "the KV cache (keys)")))
        return s;
    c->k_cache = (uint8_t *)v;
    if ((s = dev_alloc(&v, kv, "the KV cache (values)")))
        return s;
    c->v_cache = (uint8_t *)v;
    HERD_CUDA_TRY(cudaMemsetAsync(c->k_cache, 0, kv, c->stream));
    HERD_CUDA_TRY(cudaMemsetAsync(c->v_cache, 0, kv, c->stream));
    c->step_bytes = step_rope_offset(p->n_batch) + (size_t)p->n_batch * p->head_dim * 4;
    if ((s = dev_alloc(&v, c->step_bytes, "the step buffers")))
        return s;
    c->d_step = (uint8_t *)v;
    for (int i = 0; i < 2; i++) {
        HERD_CUDA_TRY(cudaHostAlloc(&v, c->step_bytes, cudaHostAllocDefault));
        c->h_step[i] = (uint8_t *)v;
        HERD_CUDA_TRY(cudaEventCreateWithFlags(&c->step_sent[i], cudaEventDisableTiming));
    }
    if ((s = dev_alloc(&v, (size_t)p->n_batch * p->max_cols * sizeof(float),
                       "rounded activations")))
        return s;
    c->act = (float *)v;
    if ((s = dev_alloc(&v, (size_t)2 * p->n_batch * p->max_cols * sizeof(uint16_t),
                       "16-bit activations")))
        return s;
    c->act16 = (uint16_t *)v;
    c->y2_elems = (int64_t)2 * p->n_batch * p->max_cols;
    if ((s = dev_alloc(&v, (size_t)c->y2_elems * sizeof(float), "product halves")))
        return s;
    c->y2 = (float *)v;
    if ((s = dev_alloc(&v, (size_t)MMV_MAX_ROWS * p->max_cols, "quantized activations")))
        return s;
    c->actq = (int8_t *)v;
    if ((s = dev_alloc(&v, (size_t)MMV_MAX_ROWS * (p->max_cols / 32 + 1) * sizeof(float),
                       "activation scales")))
        return s;
    c->actd = (float *)v;
    if ((s = dev_alloc(&v, (size_t)MMV_MAX_ROWS * (p->max_cols / 16 + 1) * sizeof(int16_t),
                       "activation sums")))
        return s;
    c->acts = (int16_t *)v;
    /* attention splits of 32 positions or more (8 per warp), at most ATT_MAX_SPLITS */
    c->att_chunk = (p->n_ctx + ATT_MAX_SPLITS - 1) / ATT_MAX_SPLITS;
    if (c->att_chunk < 32)
        c->att_chunk = 32;
    if ((s = dev_alloc(&v, (size_t)ATT_TOKENS * p->n_heads * ATT_MAX_SPLITS *
                               (p->head_dim + 2) * sizeof(float), "attention partials")))
        return s;
    c->att_part = (float *)v;
    int64_t ws = c->be->max_weight_elems < SCRATCH_MAX_ELEMS ? c->be->max_weight_elems
                                                             : SCRATCH_MAX_ELEMS;
    c->wscratch_elems = ws > p->max_cols ? ws : p->max_cols;
    if ((s = dev_alloc(&v, (size_t)c->wscratch_elems * sizeof(float), "dequantized weights")))
        return s;
    c->wscratch = (float *)v;
    HERD_CUDA_TRY(cudaStreamSynchronize(c->stream));
    return HERD_OK;
}

static herd_status cuda_ctx_new(struct backend *be, const struct bctx_params *p,
                                struct bctx **out)
{
    *out = NULL;
    herd_status s = check_params(p);
    if (s != HERD_OK)
        return s;
    struct cuda_ctx *c = (struct cuda_ctx *)herd_calloc(1, sizeof *c);
    if (!c)
        return herd_fail(HERD_ERR_NOMEM, "CUDA context");
    c->base.ops = &backend_cuda_ops;
    c->base.impl = c;
    c->be = cuda_be(be);
    c->p = *p;
    c->kv_dim = (int64_t)p->n_kv_heads * p->head_dim;
    c->kv_row_bytes = dtype_row_bytes(p->kv_type, c->kv_dim);
    c->kv_head_bytes = dtype_row_bytes(p->kv_type, p->head_dim);
    take_act_types(c);
    if ((s = ctx_resources(c)) != HERD_OK) {
        cuda_ctx_free(&c->base);
        return s;
    }
    *out = &c->base;
    return HERD_OK;
}

static int64_t cuda_kv_bytes(const struct bctx *bc)
{
    const struct cuda_ctx *c = (const struct cuda_ctx *)bc;
    return 2 * (int64_t)c->p.n_layers * c->p.n_seq * c->p.n_ctx * (int64_t)c->kv_row_bytes;
}

static herd_status cuda_alloc(struct bctx *bc, int64_t n, float **out)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    cuda_memo_clear(c);
    *out = NULL;
    void **grown = (void **)herd_realloc(c->bufs, (size_t)(c->n_bufs + 1) * sizeof *grown);
    if (!grown)
        return herd_fail(HERD_ERR_NOMEM, "CUDA activation buffers");
    c->bufs = grown;
    void *v;
    herd_status s = dev_alloc(&v, (size_t)(n > 0 ? n : 1) * sizeof(float), "activations");
    if (s != HERD_OK)
        return s;
    c->bufs[c->n_bufs++] = v;
    /* zeroed, so that a row no operation wrote reads as 0, as on every run */
    CTX_TRY(c, cudaMemsetAsync(v, 0, (size_t)(n > 0 ? n : 1) * sizeof(float), c->stream));
    *out = (float *)v;
    return HERD_OK;
}

static herd_status cuda_upload(struct bctx *bc, float *dst, const float *src, int64_t n)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    cuda_memo_clear(c);
    herd_status s = cuda_ctx_status(c);
    if (s != HERD_OK || n <= 0)
        return s;
    /* from pageable memory: the call returns once src is staged, so the caller may reuse it */
    CTX_TRY(c, cudaMemcpyAsync(dst, src, (size_t)n * sizeof(float), cudaMemcpyHostToDevice,
                               c->stream));
    return HERD_OK;
}

static herd_status cuda_download(struct bctx *bc, float *dst, const float *src, int64_t n)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    herd_status s = cuda_ctx_status(c);
    if (s != HERD_OK)
        return s;
    if (n > 0)
        CTX_TRY(c, cudaMemcpyAsync(dst, src, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost,
                                   c->stream));
    CTX_TRY(c, cudaStreamSynchronize(c->stream));
    return cuda_ctx_status(c);
}

static herd_status cuda_sync(struct bctx *bc)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    herd_status s = cuda_ctx_status(c);
    if (s != HERD_OK)
        return s;
    CTX_TRY(c, cudaStreamSynchronize(c->stream));
    return cuda_ctx_status(c);
}

/* The chunk into a pinned slot (the RoPE table as backend_cpu.c's cpu_step_set computes
 * it), then one copy to the device buffers; the two slots alternate so that filling one
 * waits only for the copy before the previous step's. */
static herd_status cuda_step_set(struct bctx *bc, const int32_t *tokens, const int32_t *pos,
                                 const int32_t *seq, int64_t n, const struct bstep **out)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    cuda_memo_clear(c);
    *out = NULL;
    herd_status s = cuda_ctx_status(c);
    if (s != HERD_OK)
        return s;
    if (n < 0 || n > c->p.n_batch)
        return herd_fail(HERD_ERR_INTERNAL, "CUDA step of %lld tokens in a context of batch "
                         "%d", (long long)n, c->p.n_batch);
    CTX_TRY(c, cudaSetDevice(c->be->device));
    const int slot = c->slot;
    CTX_TRY(c, cudaEventSynchronize(c->step_sent[slot]));
    uint8_t *h = c->h_step[slot];
    const size_t ro = step_rope_offset(n);
    memcpy(h, tokens, (size_t)n * sizeof(int32_t));
    memcpy(h + (size_t)n * 4, pos, (size_t)n * sizeof(int32_t));
    memcpy(h + (size_t)n * 8, seq, (size_t)n * sizeof(int32_t));
    const int hd = c->p.head_dim, half = hd / 2;
    float *rope = (float *)(h + ro);
    for (int64_t t = 0; t < n; t++) {
        float *cs = rope + t * hd;
        for (int i = 0; i < half; i++) {
            float ang = (float)pos[t] * c->p.inv_freq[i];
            cs[2 * i] = (float)cos((double)ang);
            cs[2 * i + 1] = (float)sin((double)ang);
        }
    }
    if (n > 0) {
        CTX_TRY(c, cudaMemcpyAsync(c->d_step, h, ro + (size_t)n * hd * sizeof(float),
                                   cudaMemcpyHostToDevice, c->stream));
        CTX_TRY(c, cudaEventRecord(c->step_sent[slot], c->stream));
    }
    c->slot ^= 1;
    c->step.n = n;
    c->step.tokens = (const int32_t *)c->d_step;
    c->step.pos = (const int32_t *)(c->d_step + (size_t)n * 4);
    c->step.seq = (const int32_t *)(c->d_step + (size_t)n * 8);
    c->rope = (const float *)(c->d_step + ro);
    *out = &c->step;
    return HERD_OK;
}

static herd_status cuda_kv_copy(struct bctx *bc, int32_t dst, int32_t src, int32_t n)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    cuda_memo_clear(c);
    herd_status s = cuda_ctx_status(c);
    if (s != HERD_OK || n <= 0)
        return s;
    const struct bctx_params *p = &c->p;
    const size_t bytes = (size_t)n * c->kv_row_bytes;
    for (int l = 0; l < p->n_layers; l++) {
        const size_t d = (((size_t)l * p->n_seq + (size_t)dst) * p->n_ctx) * c->kv_row_bytes;
        const size_t o = (((size_t)l * p->n_seq + (size_t)src) * p->n_ctx) * c->kv_row_bytes;
        CTX_TRY(c, cudaMemcpyAsync(c->k_cache + d, c->k_cache + o, bytes,
                                   cudaMemcpyDeviceToDevice, c->stream));
        CTX_TRY(c, cudaMemcpyAsync(c->v_cache + d, c->v_cache + o, bytes,
                                   cudaMemcpyDeviceToDevice, c->stream));
    }
    return HERD_OK;
}

/* ---- CUDA graphs, one per chunk size */

static bool cuda_graph_replay(struct bctx *bc, int64_t key)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    cuda_memo_clear(c);
    if (c->err != HERD_OK)
        return false; /* graph_begin reports it */
    for (int i = 0; i < c->n_graphs; i++) {
        if (c->graphs[i].key != key)
            continue;
        cudaError_t e = cudaGraphLaunch(c->graphs[i].exec, c->stream);
        if (e != cudaSuccess)
            cuda_ctx_fail(c, cuda_fail(e, "cudaGraphLaunch", __FILE__, __LINE__));
        return true;
    }
    return false;
}

/* A size is recorded the second time it comes: a prompt's ragged last chunk, seen once,
 * costs no instantiation, and every kernel and cuBLAS routine has run (and been loaded)
 * once before any capture. */
static herd_status cuda_graph_begin(struct bctx *bc, int64_t key)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    cuda_memo_clear(c);
    herd_status s = cuda_ctx_status(c);
    if (s != HERD_OK)
        return s;
    c->capturing = false;
    if (c->n_graphs == CUDA_MAX_GRAPHS)
        return HERD_OK; /* the operations run as they come */
    int i = 0;
    while (i < c->n_seen && c->seen[i] != key)
        i++;
    if (i == c->n_seen) {
        if (c->n_seen < CUDA_MAX_GRAPHS)
            c->seen[c->n_seen++] = key;
        return HERD_OK;
    }
    c->seen[i] = c->seen[--c->n_seen];
    /* thread-local: another thread's context may allocate meanwhile */
    CTX_TRY(c, cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
    c->capturing = true;
    return HERD_OK;
}

static herd_status cuda_graph_end(struct bctx *bc, int64_t key)
{
    struct cuda_ctx *c = cuda_ctx_of(bc);
    cuda_memo_clear(c);
    if (!c->capturing)
        return cuda_ctx_status(c);
    c->capturing = false;
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &g);
    if (c->err != HERD_OK || e != cudaSuccess) {
        if (g)
            cudaGraphDestroy(g);
        if (c->err == HERD_OK)
            cuda_ctx_fail(c, cuda_fail(e, "cudaStreamEndCapture", __FILE__, __LINE__));
        return cuda_ctx_status(c);
    }
    cudaGraphExec_t exec = NULL;
    e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
        cuda_ctx_fail(c, cuda_fail(e, "cudaGraphInstantiate", __FILE__, __LINE__));
        return cuda_ctx_status(c);
    }
    c->graphs[c->n_graphs].key = key;
    c->graphs[c->n_graphs].exec = exec;
    c->n_graphs++;
    /* captured work did not run: this is its first run */
    CTX_TRY(c, cudaGraphLaunch(exec, c->stream));
    return HERD_OK;
}

/* The device's free memory: the KV cache and activations of a context live there. */
static int64_t cuda_mem_available(const struct backend *be)
{
    const struct cuda_backend *b = (const struct cuda_backend *)be->impl;
    size_t free_b = 0, total_b = 0;
    if (!b || cudaSetDevice(b->device) != cudaSuccess ||
        cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    return (int64_t)free_b;
}

extern "C" const struct backend_ops backend_cuda_ops = {
    .name = "cuda",
    .host_memory = false,
    .open = cuda_open,
    .close = cuda_close,
    .mem_available = cuda_mem_available,
    .supports = cuda_supports,
    .weight_upload = cuda_weight_upload,
    .vector_upload = cuda_vector_upload,
    .ctx_new = cuda_ctx_new,
    .ctx_free = cuda_ctx_free,
    .kv_bytes = cuda_kv_bytes,
    .alloc = cuda_alloc,
    .upload = cuda_upload,
    .download = cuda_download,
    .sync = cuda_sync,
    .step_set = cuda_step_set,
    .embed = cuda_embed,
    .rmsnorm = cuda_rmsnorm,
    .matmul = cuda_matmul,
    .rope = cuda_rope,
    .kv_store = cuda_kv_store,
    .attention = cuda_attention,
    .swiglu = cuda_swiglu,
    .add = cuda_add,
    .copy_row = cuda_copy_row,
    .kv_copy = cuda_kv_copy,
    .graph_replay = cuda_graph_replay,
    .graph_begin = cuda_graph_begin,
    .graph_end = cuda_graph_end,
    .profile = nullptr, /* herd_context_profile: CPU only (the kernels run asynchronously) */
    .profile_text = nullptr,
    .list_devices = cuda_list_devices,
};
