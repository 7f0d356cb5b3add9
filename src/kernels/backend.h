/*
 * backend.h - the seam between the forward pass and the hardware it runs on.
 *
 * A backend is a table of operations on tensors the backend owns (struct backend_ops), in the
 * manner of ggml's backend_i and curl's Curl_ssl: the forward pass (model/forward.c) is
 * written once as a sequence of these operations and never touches the numbers itself. The
 * CPU backend (cpu/backend_cpu.c) is the kernel table and the thread pool behind this
 * interface; a GPU backend is one more folder beside cpu/ plus one line in the registry
 * (backend.c).
 *
 * Two levels of state:
 *  - struct backend, one per loaded model: the device and the weights. weight_upload gives a
 *    bound weight its copy in backend memory (w->dev); the CPU backend uses the mapping as
 *    it is (w->dev = w->data), so nothing is copied.
 *  - struct bctx, one per herd_context: the execution resources (CPU: a thread pool; GPU: a
 *    stream), the KV cache of n_seq sequences of n_ctx positions, and scratch. Every buffer
 *    the forward pass names (residual stream, queries, ...) is allocated here with
 *    alloc(); the pointers are backend memory, read by the caller only through download()
 *    unless the backend says host_memory.
 *
 * A step. step_set() takes one chunk of a batch (tokens, positions, sequence ids) from the
 * host into the context's step buffers and prepares the chunk's RoPE angles. Every
 * operation after it reads those buffers and fixed pointers only, so the operations of a
 * chunk of n tokens are the same calls with the same arguments every time: a backend may
 * record them once and replay them (CUDA graphs) through the optional graph_* entries,
 * keyed by n. Operations are asynchronous with respect to the host on a backend that can
 * be; download() and sync() wait.
 *
 * Shapes: a matrix is n_rows rows of n_cols elements, row r producing output r; activation
 * buffers are n token rows with a row stride (ld, in elements). The KV cache holds, per
 * layer and sequence, n_ctx positions of kv_dim = n_kv_heads * head_dim elements in kv_type
 * (F16, F32 or Q8_0); attention of token t (sequence seq[t], position pos[t]) reads
 * positions 0..pos[t] of its sequence, which holds the chunk's own keys once kv_store ran:
 * the causal mask.
 */
#ifndef HERD_BACKEND_H
#define HERD_BACKEND_H

#include "base/base.h"

struct backend_ops;

/* A weight matrix: n_rows rows of n_cols elements in its block layout, row r producing
 * output r (GGUF's ne = {n_cols, n_rows}; HF's shape [out, in]). */
struct weight {
    const void *data; /* row 0, in the file mapping (host memory) */
    const void *dev;  /* row 0 in backend memory, set by weight_upload (CPU: data) */
    herd_dtype type;
    int64_t n_rows, n_cols;
    size_t row_bytes;
    /* > 1: the matrix is n_parts column parts, each a weight of its own (parts[k]: n_rows
     * rows of n_cols / n_parts columns, part k's data after part k - 1's) whose products
     * are added in part order: Meta's FP8 w2 of a model-parallel checkpoint, where each
     * rank quantizes its own slice of the activations (model/forward.c). row_bytes is then
     * the bytes of all parts' rows r together. */
    int32_t n_parts;
    struct weight *parts;
};

enum rope_style { ROPE_INTERLEAVED = 0, ROPE_HALF = 1 };

struct backend {
    const struct backend_ops *ops;
    void *impl; /* the backend's own state */
};

struct bctx {
    const struct backend_ops *ops;
    void *impl;
};

/* What a context's backend state is sized and shaped for (this rank's share). */
struct bctx_params {
    int32_t n_threads;          /* CPU workers; ignored by devices */
    int32_t n_ctx, n_seq, n_batch;
    int32_t n_layers;           /* layers whose cache this context holds */
    int32_t n_heads, n_kv_heads; /* query and KV heads of this rank */
    int32_t head_dim;
    herd_dtype kv_type;
    enum rope_style rope_style;
    const float *inv_freq;      /* (head_dim / 2) rotation frequencies, host memory */
    float norm_eps;
    int64_t max_cols;           /* the widest activation row a matmul reads */
};

/* One chunk of a batch in backend memory, filled by step_set; n tokens. */
struct bstep {
    int64_t n;
    const int32_t *tokens; /* (n) */
    const int32_t *pos;    /* (n) */
    const int32_t *seq;    /* (n) */
};

struct backend_ops {
    const char *name; /* "cpu", "cuda" */
    /* Tensors are plain host memory: the caller may read and write them directly. */
    bool host_memory;

    /* ---- model level */
    /* device is the name the caller gave ("cpu", "cuda", "cuda:1"): its part after ':'
     * picks one of several devices. */
    herd_status (*open)(struct backend *be, const char *device, int32_t n_threads);
    void (*close)(struct backend *be);
    /* Bytes the backend's memory can take now, for a context's memory plan (optional; NULL:
     * the backend allocates host memory, and the machine's available memory applies). */
    int64_t (*mem_available)(const struct backend *be);
    /* Whether matmul handles weights of type t. */
    bool (*supports)(const struct backend *be, herd_dtype t);
    /* Sets w->dev to the weight's copy in backend memory (what matmul and embed read). */
    herd_status (*weight_upload)(struct backend *be, struct weight *w);
    /* A copy of n host floats (norm weights) in backend memory. */
    herd_status (*vector_upload)(struct backend *be, const float *src, int64_t n,
                                 const float **dst);

    /* ---- context level */
    herd_status (*ctx_new)(struct backend *be, const struct bctx_params *p, struct bctx **out);
    void (*ctx_free)(struct bctx *bc);
    /* Bytes of KV cache the context holds. */
    int64_t (*kv_bytes)(const struct bctx *bc);
    /* Backend memory for n floats (n > 0), released by ctx_free. */
    herd_status (*alloc)(struct bctx *bc, int64_t n, float **out);
    /* Host <-> backend copies of n floats; download waits for what came before. */
    herd_status (*upload)(struct bctx *bc, float *dst, const float *src, int64_t n);
    herd_status (*download)(struct bctx *bc, float *dst, const float *src, int64_t n);
    /* Waits until every operation issued so far has finished. */
    herd_status (*sync)(struct bctx *bc);
    /* Takes tokens [0, n) of these host arrays as the current step (see above). */
    herd_status (*step_set)(struct bctx *bc, const int32_t *tokens, const int32_t *pos,
                            const int32_t *seq, int64_t n, const struct bstep **out);

    /* ---- operations of a step */
    /* x (n, dim) = rows tokens[t] of the embedding, dequantized. */
    herd_status (*embed)(struct bctx *bc, float *x, const struct weight *emb,
                         const struct bstep *st);
    /* out (n, dim) = rmsnorm of each row of x (n, dim) times w (dim). */
    void (*rmsnorm)(struct bctx *bc, float *out, const float *x, const float *w, int64_t n,
                    int64_t dim);
    /* y (n, ldy) = x (n, ldx) times w transposed: y[t][r] = sum_c w[r][c] x[t][c]. */
    void (*matmul)(struct bctx *bc, float *y, int64_t ldy, const struct weight *w,
                   const float *x, int64_t ldx, int64_t n);
    /* RoPE at each token's position on q (n, n_heads * head_dim, stride ldq) and k (n,
     * n_kv_heads * head_dim, stride ldk), in the context's rope_style. */
    void (*rope)(struct bctx *bc, float *q, int64_t ldq, float *k, int64_t ldk,
                 const struct bstep *st);
    /* Keys and values (n, kv_dim, strides ldk / ldv) into layer's cache at (seq, pos). */
    void (*kv_store)(struct bctx *bc, int layer, const float *k, int64_t ldk, const float *v,
                     int64_t ldv, const struct bstep *st);
    /* out (n, n_heads * head_dim) = causal attention of q (n, n_heads * head_dim) over
     * layer's cache: softmax(q . K / sqrt(head_dim)) . V, query head h reading KV head
     * h / (n_heads / n_kv_heads). */
    void (*attention)(struct bctx *bc, float *out, const float *q, int layer,
                      const struct bstep *st);
    /* out (n, hidden) = silu(gate) * up, elementwise; out may be gate. */
    void (*swiglu)(struct bctx *bc, float *out, const float *gate, const float *up, int64_t n,
                   int64_t hidden);
    /* x (n) += y (n) */
    void (*add)(struct bctx *bc, float *x, const float *y, int64_t n);
    /* Row dst of a (rows, cols) buffer = row src (the rows that want logits, gathered). */
    void (*copy_row)(struct bctx *bc, float *buf, int64_t cols, int64_t dst, int64_t src);
    /* Positions [0, n) of sequence src's cache, every layer, to sequence dst. */
    herd_status (*kv_copy)(struct bctx *bc, int32_t dst, int32_t src, int32_t n);

    /* ---- recording (optional; NULL on backends that gain nothing from it) */
    /* Replays the operations recorded under key; false when none are. */
    bool (*graph_replay)(struct bctx *bc, int64_t key);
    /* Starts recording the operations that follow under key, until graph_end. */
    herd_status (*graph_begin)(struct bctx *bc, int64_t key);
    herd_status (*graph_end)(struct bctx *bc, int64_t key);

    /* ---- profiling (optional; herd_context_profile) */
    /* Starts (on) or stops timing the operations that follow, from zero. */
    herd_status (*profile)(struct bctx *bc, bool on);
    /* The table of what was timed, NUL-terminated into buf of cap bytes. */
    herd_status (*profile_text)(const struct bctx *bc, char *buf, size_t cap);

    /* ---- discovery (optional) */
    /* Appends one line per device this backend sees (or one saying why none) to buf of
     * cap bytes at *used; returns the lines added. */
    int (*list_devices)(char *buf, size_t cap, size_t *used);
};

/* The backend a device name asks for ("cpu" when NULL or ""; "cuda" or "cuda:N" picks the
 * backend named before the ':'), opened for a model; fails with the list of backends this
 * build has when it lacks the name. */
herd_status backend_open(const char *device, int32_t n_threads, struct backend *out);
void backend_close(struct backend *be);

/* The registered backends. */
extern const struct backend_ops backend_cpu_ops;

#endif /* HERD_BACKEND_H */
