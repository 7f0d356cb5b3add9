/*
 * cuda.cuh - what the CUDA backend's files share: the model-level and context-level state
 * behind backend.h's struct backend / struct bctx, error capture, and the op entries each
 * .cu defines. Only the files of src/kernels/cuda include it; nothing outside this folder
 * sees CUDA (the rest of herd reaches the backend through backend_cuda_ops).
 *
 * Errors. Every CUDA or cuBLAS call that can fail goes through HERD_CUDA_TRY /
 * HERD_CUBLAS_TRY, which record file:line, the call and CUDA's message with herd_fail and
 * return the status (llm.c's cudaCheck, returning instead of exiting). Operations that
 * backend.h declares void (rmsnorm, matmul, ...) cannot return one: a failed launch or a
 * bad argument is kept in the context (cuda_ctx_fail, the first one wins) and returned by
 * the next call that can fail (download, sync, graph_end, embed, kv_copy); after it the
 * context does nothing more, since a faulted stream cannot be trusted.
 *
 * Threads: all work of a context goes to its one stream, in order; the host waits only in
 * download(), sync() and when it reuses a pinned step slot.
 */
#ifndef HERD_CUDA_CUH
#define HERD_CUDA_CUH

#include <cublas_v2.h>    /* cuBLAS handle, cublasSgemm */
#include <cuda_runtime.h> /* streams, events, graphs, memory */

/* The herd headers are C11; in C++ their _Static_asserts are spelled static_assert and
 * their functions have C linkage. */
#define _Static_assert static_assert
extern "C" {
#include "kernels/backend.h" /* struct backend_ops, weight, bctx_params, bstep */
#include "kernels/kernels.h" /* kernels_get: the CPU's partner format per weight type */
#include "quant/quant.h"     /* the block layouts (one definition), dtype_row_bytes */
}
#undef _Static_assert

/* ---- errors */

/* Records "CUDA <call> at file:line: <CUDA's message>" and returns the status it maps to. */
herd_status cuda_fail(cudaError_t e, const char *call, const char *file, int line);
herd_status cublas_fail(cublasStatus_t e, const char *call, const char *file, int line);

#define HERD_CUDA_TRY(call)                                                                   \
    do {                                                                                      \
        cudaError_t herd_cuda_e_ = (call);                                                    \
        if (herd_cuda_e_ != cudaSuccess)                                                      \
            return cuda_fail(herd_cuda_e_, #call, __FILE__, __LINE__);                        \
    } while (0)

#define HERD_CUBLAS_TRY(call)                                                                 \
    do {                                                                                      \
        cublasStatus_t herd_cublas_e_ = (call);                                               \
        if (herd_cublas_e_ != CUBLAS_STATUS_SUCCESS)                                          \
            return cublas_fail(herd_cublas_e_, #call, __FILE__, __LINE__);                    \
    } while (0)

/* ---- model level: one device, the weights */

/* A device copy of host bytes; a tied output matrix and the embedding share one. */
struct cuda_copy {
    void *dev;
    const void *host;
    size_t bytes;
    int refs;
};

struct cuda_backend {
    int device;
    struct cuda_copy *copies; /* (n_copies) device copies of weights and norms */
    int n_copies;
    void *pinned;           /* (2, PINNED_HALF) staging for weight uploads, host */
    cudaStream_t upload;    /* the stream weight copies go through */
    cudaEvent_t half_free[2]; /* a staging half's copy has finished */
    int64_t max_weight_elems; /* largest n_rows * n_cols of a non-F32 weight */
};

/* ---- context level */

#define MMV_MAX_ROWS 8    /* activation rows of the decode products (mmv.cu); beyond, GEMM */

#define CUDA_MAX_GRAPHS 32 /* chunk sizes recorded; a server sees a few (1..n_seq, n_batch) */

struct cuda_graph {
    int64_t key;
    cudaGraphExec_t exec;
};

struct cuda_ctx {
    struct bctx base;
    struct cuda_backend *be;
    struct bctx_params p;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_ws;          /* cuBLAS workspace, set once so capture never allocates */
    int64_t kv_dim;         /* n_kv_heads * head_dim */
    size_t kv_row_bytes;    /* one position's kv_dim elements in kv_type */
    size_t kv_head_bytes;   /* one head's head_dim elements */
    uint8_t *k_cache;       /* (n_layers, n_seq, n_ctx, kv_dim) in kv_type, device */
    uint8_t *v_cache;       /* (n_layers, n_seq, n_ctx, kv_dim) */
    /* The step: tokens (n), pos (n), seq (n) int32 then the RoPE table (n, head_dim) as
     * cos/sin pairs, packed at offsets that depend on n only, so a graph recorded for n
     * reads the next step of n tokens at the same addresses. */
    uint8_t *d_step;        /* device */
    uint8_t *h_step[2];     /* pinned host slots, alternating */
    cudaEvent_t step_sent[2]; /* slot's copy to the device has finished */
    int slot;
    size_t step_bytes;
    struct bstep step;      /* device pointers into d_step */
    const float *rope;      /* (n, head_dim) in d_step */
    /* matmul */
    herd_dtype act_type[HERD_N_DTYPES]; /* the CPU's partner format per weight type */
    float *act;             /* (n_batch, max_cols) activations rounded to that format */
    uint16_t *act16;        /* (2, n_batch, max_cols) them in 16 bits for tensor cores */
    float *y2;              /* (y2_elems) a product's hi and lo halves before their sum */
    int64_t y2_elems;
    int8_t *actq;           /* (MMV_MAX_ROWS, max_cols) them quantized for mmv.cu */
    float *actd;            /* (MMV_MAX_ROWS, max_cols / 32) their scales */
    int16_t *acts;          /* (MMV_MAX_ROWS, max_cols / 16) their sums of 16 (Q8_K) */
    /* What actq holds: the input (x, ldx, cols, n) quantized to memo_type, so that q, k
     * and v (and gate and up) quantize their shared input once. Every operation but
     * matmul forgets it (cuda_memo_clear), as does a matmul writing over that input. */
    const float *memo_x;
    int64_t memo_ldx, memo_cols, memo_n;
    herd_dtype memo_type;
    float *wscratch;        /* (wscratch_elems) weight rows dequantized for cuBLAS */
    int64_t wscratch_elems;
    /* attention: positions per split, and the splits' partial results */
    int att_chunk;
    float *att_part;        /* (ATT_TOKENS, n_heads, ATT_MAX_SPLITS, head_dim + 2) */
    /* what alloc handed out */
    void **bufs;
    int n_bufs;
    /* CUDA graphs, one per chunk size; a size is recorded the second time it comes */
    struct cuda_graph graphs[CUDA_MAX_GRAPHS];
    int n_graphs;
    int64_t seen[CUDA_MAX_GRAPHS]; /* sizes run once, not recorded yet */
    int n_seen;
    bool capturing;         /* between graph_begin and graph_end, recording */
    /* the first failure of a void operation (see the top of this file) */
    herd_status err;
    char err_msg[256];
};

static inline struct cuda_ctx *cuda_ctx_of(struct bctx *bc)
{
    return (struct cuda_ctx *)bc;
}

static inline void cuda_memo_clear(struct cuda_ctx *c)
{
    c->memo_x = NULL;
}

/* Keeps the first failure of an operation (status and herd_last_error's message). */
void cuda_ctx_fail(struct cuda_ctx *c, herd_status s);
/* After a launch: records a launch error under what. False when the context has failed. */
bool cuda_launched(struct cuda_ctx *c, const char *what);
/* The context's kept failure, re-recorded as the current error; HERD_OK when none. */
herd_status cuda_ctx_status(struct cuda_ctx *c);

/* Whether the CUDA backend computes with weights of type t (matmul.cu). */
bool cuda_weight_type_ok(herd_dtype t);

/* ---- operations (matmul.cu, ops.cu); backend.h documents each */

herd_status cuda_embed(struct bctx *bc, float *x, const struct weight *emb,
                       const struct bstep *st);
void cuda_matmul(struct bctx *bc, float *y, int64_t ldy, const struct weight *w,
                 const float *x, int64_t ldx, int64_t n);
void cuda_rmsnorm(struct bctx *bc, float *out, const float *x, const float *w, int64_t n,
                  int64_t dim);
void cuda_rope(struct bctx *bc, float *q, int64_t ldq, float *k, int64_t ldk,
               const struct bstep *st);
void cuda_kv_store(struct bctx *bc, int layer, const float *k, int64_t ldk, const float *v,
                   int64_t ldv, const struct bstep *st);
void cuda_attention(struct bctx *bc, float *out, const float *q, int layer,
                    const struct bstep *st);
void cuda_swiglu(struct bctx *bc, float *out, const float *gate, const float *up, int64_t n,
                 int64_t hidden);
void cuda_add(struct bctx *bc, float *x, const float *y, int64_t n);
void cuda_copy_row(struct bctx *bc, float *buf, int64_t cols, int64_t dst, int64_t src);

/* The decode products of mmv.cu: whether one fits this weight and input, and the product. */
bool cuda_mmv_ok(const struct cuda_ctx *c, const struct weight *w, const float *x, int64_t ldx,
                 int64_t n);
void cuda_mmv(struct cuda_ctx *c, float *y, int64_t ldy, const struct weight *w, const float *x,
              int64_t ldx, int64_t n);

/* Largest head_dim attention handles: each lane of a warp keeps 8 elements of a head. */
#define CUDA_MAX_HEAD_DIM 256
/* Attention (ops.cu): at most this many position splits per token, and tokens per launch
 * (the partial results of one launch fill att_part). */
#define ATT_MAX_SPLITS 32
#define ATT_TOKENS 32

/* ---- device helpers shared by the kernels */

static __device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

#endif /* HERD_CUDA_CUH */
