/*
 * backend_cpu.c - the CPU backend: the kernel table (kernels.h) and a thread pool behind the
 * backend interface (backend.h). Tensors are host memory and the weights stay in the file
 * mapping. Every operation runs to completion before it returns (sync has nothing to wait
 * for) and splits its work over the context's pool:
 *  - matmul converts the activations once into the weight type's partner format, then the
 *    threads split the weight rows;
 *  - per-token operations (norm, RoPE, cache store, SwiGLU) split the tokens;
 *  - attention deals (token, head) pairs round-robin, since a token's cost grows with its
 *    position.
 * The arithmetic is the reference's, in float32 (see docs/internals/model.md); results do
 * not depend on the thread count.
 */
#include "kernels/backend.h"
#include "kernels/kernels.h"
#include "quant/quant.h" /* Q8_0 cache rows, dequantize_row for the embedding */

#include <math.h>    /* expf, sqrtf, cos, sin */
#include <pthread.h> /* the process-wide table of weight copies */
#include <stdio.h>   /* snprintf: the profile table */

/* herd_context_profile: time per operation, and per matrix shape and type for products. */
enum { PR_EMBED, PR_NORM, PR_ROPE, PR_KV, PR_ATTN, PR_SWIGLU, PR_ADD, PR_COPY, PR_CONVERT,
       PR_COUNT };
static const char *const prof_names[PR_COUNT] = {"embed", "rmsnorm", "rope", "kv store",
                                                 "attention", "swiglu", "add", "copy row",
                                                 "act quantize"};
#define PROF_MM 24 /* distinct (rows, cols, type) products a model has: 7 or 8 */

struct cpu_prof {
    bool on;
    double op_s[PR_COUNT];
    int64_t op_calls[PR_COUNT];
    struct {
        int64_t rows, cols, calls, tokens;
        herd_dtype type;
        size_t bytes; /* of the weight, read once per call */
        double s;
    } mm[PROF_MM];
    int n_mm;
};

struct cpu_ctx {
    struct bctx base;
    struct cpu_prof prof;
    const struct herd_cpu_kernels *k;
    struct herd_pool *pool;
    struct bctx_params p;
    int64_t kv_dim;       /* n_kv_heads * head_dim */
    size_t kv_row_bytes;  /* one position's kv_dim elements in kv_type */
    size_t kv_head_bytes; /* one head's head_dim elements in kv_type */
    uint8_t *k_cache;     /* (n_layers, n_seq, n_ctx, kv_dim) */
    uint8_t *v_cache;     /* (n_layers, n_seq, n_ctx, kv_dim) */
    float *rope;          /* (n_batch, head_dim) cos/sin pairs per token of the step */
    float *scores;        /* (n_threads, n_heads / n_kv_heads, n_ctx) */
    void *act;            /* activations in a weight type's partner format */
    /* what act holds: the conversion of x (n rows, stride ldx, cols wide) to type, kept
     * while only products run (q/k/v and gate/up read one input); any other operation
     * forgets it */
    struct {
        const float *x;
        int64_t ldx, n, cols;
        herd_dtype type;
    } memo;
    struct bstep step;
    float **bufs;         /* (n_bufs) what alloc handed out */
    int n_bufs;
};

static struct cpu_ctx *cpu(struct bctx *bc)
{
    return (struct cpu_ctx *)bc;
}

/* Every operation but a product begins here: it may write any buffer, so the converted
 * activations a product left are forgotten. */
static double op_start(struct cpu_ctx *c)
{
    c->memo.x = NULL;
    return c->prof.on ? herd_time_s() : 0.0;
}

static void prof_op(struct cpu_ctx *c, int op, double t0)
{
    if (c->prof.on) {
        c->prof.op_s[op] += herd_time_s() - t0;
        c->prof.op_calls[op]++;
    }
}

static void prof_mm(struct cpu_ctx *c, const struct weight *w, int64_t n, double t0)
{
    struct cpu_prof *p = &c->prof;
    if (!p->on)
        return;
    double dt = herd_time_s() - t0;
    int i = 0;
    while (i < p->n_mm && !(p->mm[i].rows == w->n_rows && p->mm[i].cols == w->n_cols &&
                            p->mm[i].type == w->type))
        i++;
    if (i == p->n_mm) {
        if (i == PROF_MM)
            return;
        p->n_mm++;
        p->mm[i].rows = w->n_rows;
        p->mm[i].cols = w->n_cols;
        p->mm[i].type = w->type;
        p->mm[i].bytes = (size_t)w->n_rows * w->row_bytes;
    }
    p->mm[i].calls++;
    p->mm[i].tokens += n;
    p->mm[i].s += dt;
}

static uint8_t *kv_row(const struct cpu_ctx *c, uint8_t *cache, int l, int32_t seq, int32_t pos)
{
    size_t idx = (((size_t)l * c->p.n_seq + (size_t)seq) * c->p.n_ctx + (size_t)pos);
    return cache + idx * c->kv_row_bytes;
}

/* ---- model level: the weights, in huge pages
 *
 * Decode streams every weight once per token. Read through the file mapping, each 4 KB
 * page of the page cache costs a TLB walk: measured on the 2-vCPU host, 8B Q4_0 decode at
 * 1 thread streamed 9-10 GB/s from the mapping and 13.1 (the read wall) from a copy on
 * transparent huge pages, tg 2.3 -> 3.0 tok/s; Q8_0 1.05 -> 1.34. So each weight the loader
 * left in the file is copied into huge-page memory as it is uploaded, and its pages of the
 * mapping leave the resident set (they stay in the page cache). Not copied: weights a
 * loader built in memory (FP8 repacks, joined shards), a weight that would leave less than
 * COPY_RESERVE of MemAvailable (a model larger than the machine streams from the mapping
 * as before), and every weight with herd_cpu_options.mmap_weights (HERD_MMAP=1). Copies of
 * the same bytes of the same file are shared (copies[] below). */

#define COPY_RESERVE ((int64_t)1 << 30)

/* The copies of every CPU backend in the process, by file and offset, counted by their
 * users: two loads of one file (a model drafting for itself, a second server) share them
 * as they would share the page cache, and a tied output shares the embedding's. */
struct cpu_copy {
    uint64_t file[2];
    size_t off, n;
    void *p;
    int refs;
};
static struct cpu_copy *copies;
static int n_copies, cap_copies;
static pthread_mutex_t copies_lock = PTHREAD_MUTEX_INITIALIZER;

/* A backend's references into copies[] (their p, released at close). */
struct cpu_be {
    void **used;
    int n, cap;
};

static herd_status cpu_open(struct backend *be, const char *device, int32_t n_threads)
{
    (void)n_threads;
    if (strcmp(device, "cpu") != 0)
        return herd_fail(HERD_ERR_INVALID, "device %s: the CPU backend has one device, 'cpu'",
                         device);
    if (!(be->impl = herd_calloc(1, sizeof(struct cpu_be))))
        return herd_fail(HERD_ERR_NOMEM, "CPU backend");
    return HERD_OK;
}

static void cpu_close(struct backend *be)
{
    struct cpu_be *cb = be->impl;
    if (!cb)
        return;
    pthread_mutex_lock(&copies_lock);
    for (int u = 0; u < cb->n; u++)
        for (int i = 0; i < n_copies; i++)
            if (copies[i].p == cb->used[u] && --copies[i].refs == 0) {
                herd_free_huge(copies[i].p, copies[i].n);
                copies[i] = copies[--n_copies];
                break;
            }
    pthread_mutex_unlock(&copies_lock);
    herd_free(cb->used);
    herd_free(cb);
    be->impl = NULL;
}

/* The weight's bytes in huge-page memory (a new copy, or one this file's bytes already
 * have), or NULL: then the mapping serves (never an error: the copy is only faster).
 * Called with copies_lock held. */
static void *weight_copy(struct cpu_be *cb, const struct weight *w)
{
    size_t n = w->row_bytes * (size_t)w->n_rows, off;
    uint64_t file[2];
    if (!cb || !w->data || n == 0 || kernels_options()->mmap_weights ||
        !herd_in_file_map(w->data, n, file, &off))
        return NULL;
    if (cb->n == cb->cap) {
        int cap = cb->cap ? 2 * cb->cap : 64;
        void **u = herd_realloc(cb->used, (size_t)cap * sizeof *u);
        if (!u)
            return NULL;
        cb->used = u;
        cb->cap = cap;
    }
    for (int i = 0; i < n_copies; i++)
        if (copies[i].file[0] == file[0] && copies[i].file[1] == file[1] &&
            copies[i].off == off && copies[i].n >= n) {
            copies[i].refs++;
            return cb->used[cb->n++] = copies[i].p;
        }
    int64_t avail = herd_mem_available();
    if (avail >= 0 && (int64_t)n + COPY_RESERVE > avail)
        return NULL;
    if (n_copies == cap_copies) {
        int cap = cap_copies ? 2 * cap_copies : 256;
        struct cpu_copy *c = herd_realloc(copies, (size_t)cap * sizeof *c);
        if (!c)
            return NULL;
        copies = c;
        cap_copies = cap;
    }
    void *p = herd_alloc_huge(n);
    if (!p)
        return NULL;
    memcpy(p, w->data, n);
    herd_huge_settle(p, n);
    herd_map_release(w->data, n);
    copies[n_copies++] = (struct cpu_copy){.file = {file[0], file[1]}, .off = off, .n = n,
                                           .p = p, .refs = 1};
    return cb->used[cb->n++] = p;
}

static bool cpu_supports(const struct backend *be, herd_dtype t)
{
    (void)be;
    return t >= 0 && t < HERD_N_DTYPES && kernels_get()->mm[t].matmul != NULL;
}

static herd_status cpu_weight_upload(struct backend *be, struct weight *w)
{
    pthread_mutex_lock(&copies_lock);
    const void *c = weight_copy(be->impl, w);
    pthread_mutex_unlock(&copies_lock);
    w->dev = c ? c : w->data;
    return HERD_OK;
}

static herd_status cpu_vector_upload(struct backend *be, const float *src, int64_t n,
                                     const float **dst)
{
    (void)be;
    (void)n;
    *dst = src;
    return HERD_OK;
}

/* ---- context level */

static void cpu_ctx_free(struct bctx *bc)
{
    struct cpu_ctx *c = cpu(bc);
    if (!c)
        return;
    herd_pool_free(c->pool);
    herd_free(c->k_cache);
    herd_free(c->v_cache);
    herd_free(c->rope);
    herd_free(c->scores);
    herd_free_aligned(c->act);
    for (int i = 0; i < c->n_bufs; i++)
        herd_free(c->bufs[i]);
    herd_free(c->bufs);
    herd_free(c);
}

static herd_status cpu_ctx_new(struct backend *be, const struct bctx_params *p,
                               struct bctx **out)
{
    (void)be;
    *out = NULL;
    struct cpu_ctx *c = herd_calloc(1, sizeof *c);
    if (!c)
        return herd_fail(HERD_ERR_NOMEM, "context");
    c->base.ops = &backend_cpu_ops;
    c->base.impl = c;
    c->k = kernels_get();
    c->p = *p;
    c->kv_dim = (int64_t)p->n_kv_heads * p->head_dim;
    c->kv_row_bytes = dtype_row_bytes(p->kv_type, c->kv_dim);
    c->kv_head_bytes = dtype_row_bytes(p->kv_type, p->head_dim);
    int64_t max_cols = p->max_cols;
    herd_status s = herd_pool_share(p->n_threads, &c->pool); /* one per process */
    if (s != HERD_OK)
        goto fail;
    size_t kv_rows = (size_t)p->n_seq * (size_t)p->n_ctx * (size_t)p->n_layers;
    void *kc = NULL, *vc = NULL, *rope = NULL, *sc = NULL;
    size_t B = (size_t)p->n_batch;
    int nth = herd_pool_size(c->pool);
    if ((s = herd_alloc_array(&kc, kv_rows ? kv_rows : 1, c->kv_row_bytes, "KV cache (keys)")))
        goto fail;
    c->k_cache = kc;
    if ((s = herd_alloc_array(&vc, kv_rows ? kv_rows : 1, c->kv_row_bytes,
                              "KV cache (values)")))
        goto fail;
    c->v_cache = vc;
    if ((s = herd_alloc_array(&rope, B * (size_t)p->head_dim, sizeof(float), "RoPE table")))
        goto fail;
    c->rope = rope;
    if ((s = herd_alloc_array(&sc, (size_t)nth * (size_t)(p->n_heads / p->n_kv_heads),
                              (size_t)p->n_ctx * sizeof(float), "attention scores")))
        goto fail;
    c->scores = sc;
    /* Quantized activations are never larger than the f32 rows they come from. */
    c->act = herd_malloc_aligned(B * (size_t)max_cols * sizeof(float) + 64, 64);
    if (!c->act) {
        s = herd_fail(HERD_ERR_NOMEM, "activation buffer");
        goto fail;
    }
    *out = &c->base;
    return HERD_OK;
fail:
    cpu_ctx_free(&c->base);
    return s;
}

static int64_t cpu_kv_bytes(const struct bctx *bc)
{
    const struct cpu_ctx *c = (const struct cpu_ctx *)bc;
    return 2 * (int64_t)c->p.n_layers * c->p.n_seq * c->p.n_ctx * (int64_t)c->kv_row_bytes;
}

static herd_status cpu_alloc(struct bctx *bc, int64_t n, float **out)
{
    struct cpu_ctx *c = cpu(bc);
    *out = NULL;
    void *v = NULL;
    float **grown = herd_realloc(c->bufs, (size_t)(c->n_bufs + 1) * sizeof *grown);
    if (!grown)
        return herd_fail(HERD_ERR_NOMEM, "activation buffers");
    c->bufs = grown;
    herd_status s = herd_alloc_array(&v, n > 0 ? (size_t)n : 1, sizeof(float), "activations");
    if (s != HERD_OK)
        return s;
    c->bufs[c->n_bufs++] = v;
    *out = v;
    return HERD_OK;
}

static herd_status cpu_copy(struct bctx *bc, float *dst, const float *src, int64_t n)
{
    cpu(bc)->memo.x = NULL; /* the caller may write any buffer from here on */
    if (dst != src)
        memcpy(dst, src, (size_t)n * sizeof(float));
    return HERD_OK;
}

static herd_status cpu_sync(struct bctx *bc)
{
    (void)bc;
    return HERD_OK;
}

/* cos/sin of fl32(pos * inv_freq[i]) per token: the angle rounded to float32 first, as the
 * references compute it (torch.outer / matmul of float32 positions and frequencies). */
static herd_status cpu_step_set(struct bctx *bc, const int32_t *tokens, const int32_t *pos,
                                const int32_t *seq, int64_t n, const struct bstep **out)
{
    struct cpu_ctx *c = cpu(bc);
    int half = c->p.head_dim / 2;
    c->memo.x = NULL;
    for (int64_t t = 0; t < n; t++) {
        float *cs = c->rope + t * 2 * half;
        for (int i = 0; i < half; i++) {
            float ang = (float)pos[t] * c->p.inv_freq[i];
            cs[2 * i] = (float)cos((double)ang);
            cs[2 * i + 1] = (float)sin((double)ang);
        }
    }
    c->step = (struct bstep){.n = n, .tokens = tokens, .pos = pos, .seq = seq};
    *out = &c->step;
    return HERD_OK;
}

/* ---- operations */

static herd_status cpu_embed_run(struct bctx *bc, float *x, const struct weight *emb,
                                 const struct bstep *st)
{
    (void)bc;
    herd_status s;
    for (int64_t t = 0; t < st->n; t++) {
        const uint8_t *row = (const uint8_t *)emb->dev + (size_t)st->tokens[t] * emb->row_bytes;
        if ((s = dequantize_row(emb->type, x + t * emb->n_cols, row, emb->n_cols)))
            return s;
    }
    return HERD_OK;
}

/* A job split over n tokens: one token (decode) runs on the calling thread, since the others
 * would have nothing to do but wake up and meet at the barrier. */
static void run_tokens(struct herd_pool *pool, herd_pool_fn fn, void *arg, int64_t n)
{
    if (n == 1)
        herd_pool_run_here(fn, arg);
    else
        herd_pool_run(pool, fn, arg);
}

/* One pool job over the tokens of a step: the arguments of whichever operation runs. */
struct tok_job {
    struct cpu_ctx *c;
    const struct bstep *st;
    int64_t n, dim;
    float *out, *a;
    const float *b, *w;
    int64_t lda, ldb;
    int layer;
};

static void rmsnorm_rows(void *arg, int ith, int nth)
{
    struct tok_job *j = arg;
    int64_t lo, hi;
    herd_split(j->n, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++)
        j->c->k->rmsnorm(j->out + t * j->dim, j->b + t * j->dim, j->w, j->dim, j->c->p.norm_eps);
}

static void cpu_rmsnorm_run(struct bctx *bc, float *out, const float *x, const float *w, int64_t n,
                            int64_t dim)
{
    struct tok_job j = {.c = cpu(bc), .n = n, .dim = dim, .out = out, .b = x, .w = w};
    run_tokens(j.c->pool, rmsnorm_rows, &j, n);
}

struct mm_job {
    const struct matmul_kernel *mk;
    act_convert_w_fn convert_w; /* when the partner format depends on the weight */
    const struct weight *w;
    float *y;
    int64_t ldy;
    const float *x;     /* (n_b, ldx) f32 rows */
    int64_t ldx;
    const void *xa;     /* converted activations */
    size_t xa_row_bytes;
    int64_t n_b;
};

static void convert_rows(void *arg, int ith, int nth)
{
    struct mm_job *j = arg;
    int64_t lo, hi;
    herd_split(j->n_b, ith, nth, &lo, &hi);
    for (int64_t b = lo; b < hi; b++) {
        uint8_t *dst = (uint8_t *)j->xa + (size_t)b * j->xa_row_bytes;
        if (j->convert_w)
            j->convert_w(dst, j->x + b * j->ldx, j->w->n_cols, j->w->dev);
        else
            j->mk->convert(dst, j->x + b * j->ldx, j->w->n_cols);
    }
}

static void matmul_rows(void *arg, int ith, int nth)
{
    struct mm_job *j = arg;
    int64_t lo, hi;
    herd_split(j->w->n_rows, ith, nth, &lo, &hi);
    if (lo < hi)
        j->mk->matmul(j->y, j->ldy, j->w->dev, j->xa, j->xa_row_bytes, j->w->n_cols, j->n_b,
                      lo, hi);
}

static void cpu_matmul(struct bctx *bc, float *y, int64_t ldy, const struct weight *w,
                       const float *x, int64_t ldx, int64_t n)
{
    struct cpu_ctx *c = cpu(bc);
    struct mm_job j = {.mk = &c->k->mm[w->type], .convert_w = c->k->convert_w[w->type],
                       .w = w, .y = y, .ldy = ldy, .x = x, .ldx = ldx, .n_b = n};
    if (j.mk->act_type == HERD_DTYPE_F32) {
        /* f32 partner rows are read in place; they must be contiguous */
        j.xa = x;
        j.xa_row_bytes = (size_t)ldx * sizeof(float);
    } else {
        j.xa = c->act;
        j.xa_row_bytes = dtype_row_bytes(j.mk->act_type, w->n_cols);
        /* a conversion that depends on the weight (FP8: its activation bound) is not kept */
        if (j.convert_w || !(c->memo.x == x && c->memo.ldx == ldx && c->memo.n == n &&
                             c->memo.cols == w->n_cols && c->memo.type == j.mk->act_type)) {
            double t0 = c->prof.on ? herd_time_s() : 0.0;
            run_tokens(c->pool, convert_rows, &j, n);
            prof_op(c, PR_CONVERT, t0);
            c->memo.x = j.convert_w ? NULL : x;
            c->memo.ldx = ldx;
            c->memo.n = n;
            c->memo.cols = w->n_cols;
            c->memo.type = j.mk->act_type;
        }
    }
    double t0 = c->prof.on ? herd_time_s() : 0.0;
    herd_pool_run(c->pool, matmul_rows, &j);
    prof_mm(c, w, n, t0);
    /* a product written over its own input's rows leaves the memo stale */
    if (c->memo.x) {
        uintptr_t m0 = (uintptr_t)c->memo.x;
        uintptr_t m1 = m0 + (uintptr_t)(c->memo.n * c->memo.ldx) * sizeof(float);
        uintptr_t y0 = (uintptr_t)y, y1 = y0 + (uintptr_t)(n * ldy) * sizeof(float);
        if (y0 < m1 && m0 < y1)
            c->memo.x = NULL;
    }
}

/* Rotates each head of v (n_heads heads of head_dim) by the token's angles. */
static void rope_apply(const struct cpu_ctx *c, float *v, int n_heads, const float *cs)
{
    int hd = c->p.head_dim, half = hd / 2;
    bool inter = c->p.rope_style == ROPE_INTERLEAVED;
    for (int h = 0; h < n_heads; h++) {
        float *x = v + (int64_t)h * hd;
        for (int i = 0; i < half; i++) {
            int a = inter ? 2 * i : i;
            int b = inter ? 2 * i + 1 : i + half;
            float x0 = x[a], x1 = x[b], co = cs[2 * i], si = cs[2 * i + 1];
            x[a] = x0 * co - x1 * si;
            x[b] = x0 * si + x1 * co;
        }
    }
}

static void rope_rows(void *arg, int ith, int nth)
{
    struct tok_job *j = arg;
    struct cpu_ctx *c = j->c;
    int64_t lo, hi;
    herd_split(j->n, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        const float *cs = c->rope + t * c->p.head_dim;
        rope_apply(c, j->out + t * j->lda, c->p.n_heads, cs);
        rope_apply(c, j->a + t * j->ldb, c->p.n_kv_heads, cs);
    }
}

static void cpu_rope_run(struct bctx *bc, float *q, int64_t ldq, float *k, int64_t ldk,
                         const struct bstep *st)
{
    struct tok_job j = {.c = cpu(bc), .st = st, .n = st->n, .out = q, .lda = ldq, .a = k,
                        .ldb = ldk};
    run_tokens(j.c->pool, rope_rows, &j, j.n);
}

static void store_row(const struct cpu_ctx *c, uint8_t *dst, const float *src)
{
    if (c->p.kv_type == HERD_DTYPE_F16)
        c->k->f32_to_f16_row((uint16_t *)dst, src, c->kv_dim);
    else if (c->p.kv_type == HERD_DTYPE_Q8_0)
        quantize_row(HERD_DTYPE_Q8_0, dst, src, c->kv_dim);
    else
        memcpy(dst, src, (size_t)c->kv_dim * sizeof(float));
}

static void store_rows(void *arg, int ith, int nth)
{
    struct tok_job *j = arg;
    struct cpu_ctx *c = j->c;
    int64_t lo, hi;
    herd_split(j->n, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        int32_t seq = j->st->seq[t], pos = j->st->pos[t];
        store_row(c, kv_row(c, c->k_cache, j->layer, seq, pos), j->b + t * j->lda);
        store_row(c, kv_row(c, c->v_cache, j->layer, seq, pos), j->w + t * j->ldb);
    }
}

static void cpu_kv_store_run(struct bctx *bc, int layer, const float *k, int64_t ldk,
                             const float *v, int64_t ldv, const struct bstep *st)
{
    struct tok_job j = {.c = cpu(bc), .st = st, .n = st->n, .layer = layer, .b = k, .lda = ldk,
                        .w = v, .ldb = ldv};
    run_tokens(j.c->pool, store_rows, &j, j.n);
}

/* Q8_0 cache rows (--kv-type q8_0): a head is head_dim / 32 whole blocks. */
static float dot_f32_q8_0(const float *q, const struct block_q8_0 *b, int n)
{
    float s = 0.0f;
    for (int i = 0; i < n / QK8_0; i++) {
        float t = 0.0f;
        for (int j = 0; j < QK8_0; j++)
            t += q[i * QK8_0 + j] * (float)b[i].qs[j];
        s += fp16_to_f32(b[i].d) * t;
    }
    return s;
}

static void axpy_q8_0(float *y, float a, const struct block_q8_0 *b, int n)
{
    for (int i = 0; i < n / QK8_0; i++) {
        float ad = a * fp16_to_f32(b[i].d);
        for (int j = 0; j < QK8_0; j++)
            y[i * QK8_0 + j] += ad * (float)b[i].qs[j];
    }
}

/* q . one head of a cache row, and y += a * that head, for the F32 and Q8_0 caches (the
 * F16 cache goes through dots_f16 / wsum_f16 over all positions at once). */
static float kv_dot(const struct cpu_ctx *c, const float *q, const uint8_t *row, int hd)
{
    if (c->p.kv_type == HERD_DTYPE_Q8_0)
        return dot_f32_q8_0(q, (const struct block_q8_0 *)row, hd);
    return c->k->dot_f32(q, (const float *)row, hd);
}

static void kv_axpy(const struct cpu_ctx *c, float *y, float a, const uint8_t *row, int hd)
{
    if (c->p.kv_type == HERD_DTYPE_Q8_0)
        axpy_q8_0(y, a, (const struct block_q8_0 *)row, hd);
    else
        c->k->axpy_f32(y, a, (const float *)row, hd);
}

/* One token and one KV head: for each query head h of its group, softmax(q_h . K /
 * sqrt(head_dim)) . V over positions 0..pos. sc holds group x n_ctx scores. */
static void attend(const struct tok_job *j, int64_t t, int kvh, float *sc)
{
    const struct cpu_ctx *c = j->c;
    const int hd = c->p.head_dim, n_h = c->p.n_heads, group = n_h / c->p.n_kv_heads;
    const int64_t n_ctx = c->p.n_ctx;
    const int32_t seq = j->st->seq[t], pos = j->st->pos[t];
    const int h0 = kvh * group;
    const float *q = j->b + t * (int64_t)n_h * hd + (int64_t)h0 * hd;
    float *out = j->out + t * (int64_t)n_h * hd + (int64_t)h0 * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t off = (size_t)kvh * c->kv_head_bytes;
    if (c->p.kv_type == HERD_DTYPE_F16) {
        /* the default cache: kernels that take every position and the group's heads at
         * once, computing exactly what the per-position dot and axpy below do */
        const int64_t stride = (int64_t)(c->kv_row_bytes / 2);
        const uint16_t *k0 = (const uint16_t *)(kv_row(c, c->k_cache, j->layer, seq, 0) + off);
        const uint16_t *v0 = (const uint16_t *)(kv_row(c, c->v_cache, j->layer, seq, 0) + off);
        c->k->dots_f16(sc, n_ctx, q, group, k0, stride, pos + 1, hd);
        for (int h = 0; h < group; h++)
            c->k->softmax(sc + h * n_ctx, (int64_t)pos + 1, scale);
        c->k->wsum_f16(out, sc, n_ctx, group, v0, stride, pos + 1, hd);
        return;
    }
    for (int h = 0; h < group; h++) {
        float *sh = sc + h * n_ctx, *oh = out + (int64_t)h * hd;
        for (int32_t p = 0; p <= pos; p++)
            sh[p] = kv_dot(c, q + (int64_t)h * hd, kv_row(c, c->k_cache, j->layer, seq, p) + off,
                           hd);
        c->k->softmax(sh, (int64_t)pos + 1, scale);
        memset(oh, 0, (size_t)hd * sizeof(float));
        for (int32_t p = 0; p <= pos; p++)
            kv_axpy(c, oh, sh[p], kv_row(c, c->v_cache, j->layer, seq, p) + off, hd);
    }
}

static void attention_rows(void *arg, int ith, int nth)
{
    struct tok_job *j = arg;
    const int n_kv = j->c->p.n_kv_heads, group = j->c->p.n_heads / n_kv;
    float *sc = j->c->scores + (int64_t)ith * group * j->c->p.n_ctx;
    /* (token, KV head) pairs dealt round-robin: a token's cost grows with its position, so
     * contiguous ranges left the thread with the batch's last tokens doing ~3/4 of a
     * causal prefill's attention */
    for (int64_t u = ith; u < j->n * n_kv; u += nth)
        attend(j, u / n_kv, (int)(u % n_kv), sc);
}

static void cpu_attention_run(struct bctx *bc, float *out, const float *q, int layer,
                              const struct bstep *st)
{
    struct tok_job j = {.c = cpu(bc), .st = st, .n = st->n, .layer = layer, .out = out, .b = q};
    herd_pool_run(j.c->pool, attention_rows, &j);
}

static void swiglu_rows(void *arg, int ith, int nth)
{
    struct tok_job *j = arg;
    int64_t lo, hi;
    herd_split(j->n, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++)
        j->c->k->swiglu(j->out + t * j->dim, j->a + t * j->dim, j->b + t * j->dim, j->dim);
}

static void cpu_swiglu_run(struct bctx *bc, float *out, const float *gate, const float *up,
                           int64_t n, int64_t hidden)
{
    struct tok_job j = {.c = cpu(bc), .n = n, .dim = hidden, .out = out, .a = (float *)gate,
                        .b = up};
    run_tokens(j.c->pool, swiglu_rows, &j, n);
}

static void add_rows(void *arg, int ith, int nth)
{
    struct tok_job *j = arg;
    int64_t lo, hi;
    herd_split(j->n, ith, nth, &lo, &hi);
    float *restrict x = j->a;
    const float *restrict y = j->b;
    for (int64_t i = lo; i < hi; i++)
        x[i] += y[i];
}

/* A prefill's residual adds (512 x 4096 floats each) on one thread were 1.2% of an 8B
 * pp512; the pool takes those, a decode's one row stays here. */
static void cpu_add_run(struct bctx *bc, float *x, const float *y, int64_t n)
{
    struct tok_job j = {.c = cpu(bc), .n = n, .a = x, .b = y};
    run_tokens(j.c->pool, add_rows, &j, n < 65536 ? 1 : n);
}

static void cpu_copy_row_run(struct bctx *bc, float *buf, int64_t cols, int64_t dst, int64_t src)
{
    (void)bc;
    if (dst != src)
        memcpy(buf + dst * cols, buf + src * cols, (size_t)cols * sizeof(float));
}

static herd_status cpu_kv_copy(struct bctx *bc, int32_t dst, int32_t src, int32_t n)
{
    struct cpu_ctx *c = cpu(bc);
    size_t row = c->kv_row_bytes;
    for (int l = 0; l < c->p.n_layers; l++) {
        memcpy(kv_row(c, c->k_cache, l, dst, 0), kv_row(c, c->k_cache, l, src, 0), row * n);
        memcpy(kv_row(c, c->v_cache, l, dst, 0), kv_row(c, c->v_cache, l, src, 0), row * n);
    }
    return HERD_OK;
}


/* ---- the operations as the table has them: timed when profiling */

static herd_status cpu_embed(struct bctx *bc, float *x, const struct weight *emb,
                             const struct bstep *st)
{
    double t0 = op_start(cpu(bc));
    herd_status s = cpu_embed_run(bc, x, emb, st);
    prof_op(cpu(bc), PR_EMBED, t0);
    return s;
}

static void cpu_rmsnorm(struct bctx *bc, float *out, const float *x, const float *w, int64_t n,
                        int64_t dim)
{
    double t0 = op_start(cpu(bc));
    cpu_rmsnorm_run(bc, out, x, w, n, dim);
    prof_op(cpu(bc), PR_NORM, t0);
}

static void cpu_rope(struct bctx *bc, float *q, int64_t ldq, float *k, int64_t ldk,
                     const struct bstep *st)
{
    double t0 = op_start(cpu(bc));
    cpu_rope_run(bc, q, ldq, k, ldk, st);
    prof_op(cpu(bc), PR_ROPE, t0);
}

static void cpu_kv_store(struct bctx *bc, int layer, const float *k, int64_t ldk, const float *v,
                         int64_t ldv, const struct bstep *st)
{
    double t0 = op_start(cpu(bc));
    cpu_kv_store_run(bc, layer, k, ldk, v, ldv, st);
    prof_op(cpu(bc), PR_KV, t0);
}

static void cpu_attention(struct bctx *bc, float *out, const float *q, int layer,
                          const struct bstep *st)
{
    double t0 = op_start(cpu(bc));
    cpu_attention_run(bc, out, q, layer, st);
    prof_op(cpu(bc), PR_ATTN, t0);
}

static void cpu_swiglu(struct bctx *bc, float *out, const float *gate, const float *up, int64_t n,
                       int64_t hidden)
{
    double t0 = op_start(cpu(bc));
    cpu_swiglu_run(bc, out, gate, up, n, hidden);
    prof_op(cpu(bc), PR_SWIGLU, t0);
}

static void cpu_add(struct bctx *bc, float *x, const float *y, int64_t n)
{
    double t0 = op_start(cpu(bc));
    cpu_add_run(bc, x, y, n);
    prof_op(cpu(bc), PR_ADD, t0);
}

static void cpu_copy_row(struct bctx *bc, float *buf, int64_t cols, int64_t dst, int64_t src)
{
    double t0 = op_start(cpu(bc));
    cpu_copy_row_run(bc, buf, cols, dst, src);
    prof_op(cpu(bc), PR_COPY, t0);
}

static herd_status cpu_profile(struct bctx *bc, bool on)
{
    struct cpu_prof *p = &cpu(bc)->prof;
    memset(p, 0, sizeof *p);
    p->on = on;
    return HERD_OK;
}

/* The table herd bench --profile prints: products by shape and type (time, and GB/s of
 * weights streamed: each call reads the whole matrix once), then the other operations. */
static herd_status cpu_profile_text(const struct bctx *bc, char *buf, size_t cap)
{
    const struct cpu_prof *p = &((const struct cpu_ctx *)bc)->prof;
    struct herd_buf b;
    buf_init(&b, 0);
    double total = 0;
    for (int i = 0; i < p->n_mm; i++)
        total += p->mm[i].s;
    for (int i = 0; i < PR_COUNT; i++)
        total += p->op_s[i];
    buf_printf(&b, "%-26s %7s %8s %10s %7s %8s\n", "operation", "calls", "tokens", "ms",
                    "share", "GB/s");
    for (int i = 0; i < p->n_mm; i++) {
        char name[64];
        snprintf(name, sizeof name, "matmul %lldx%lld %s", (long long)p->mm[i].rows,
                 (long long)p->mm[i].cols, herd_dtype_name(p->mm[i].type));
        buf_printf(&b, "%-26s %7lld %8lld %10.2f %6.1f%% %8.1f\n", name,
                        (long long)p->mm[i].calls, (long long)p->mm[i].tokens,
                        p->mm[i].s * 1e3, total > 0 ? 100 * p->mm[i].s / total : 0.0,
                        p->mm[i].s > 0 ? (double)p->mm[i].bytes * (double)p->mm[i].calls /
                                             p->mm[i].s / 1e9 : 0.0);
    }
    for (int i = 0; i < PR_COUNT; i++)
        if (p->op_calls[i])
            buf_printf(&b, "%-26s %7lld %8s %10.2f %6.1f%%\n", prof_names[i],
                            (long long)p->op_calls[i], "", p->op_s[i] * 1e3,
                            total > 0 ? 100 * p->op_s[i] / total : 0.0);
    buf_printf(&b, "%-26s %7s %8s %10.2f\n", "sum of operations", "", "", total * 1e3);
    herd_status s = b.err;
    if (s == HERD_OK && cap > 0) {
        size_t n = b.len < cap - 1 ? b.len : cap - 1;
        memcpy(buf, b.data, n);
        buf[n] = 0;
    }
    buf_free(&b);
    return s;
}

const struct backend_ops backend_cpu_ops = {
    .name = "cpu",
    .host_memory = true,
    .open = cpu_open,
    .close = cpu_close,
    .supports = cpu_supports,
    .weight_upload = cpu_weight_upload,
    .vector_upload = cpu_vector_upload,
    .ctx_new = cpu_ctx_new,
    .ctx_free = cpu_ctx_free,
    .kv_bytes = cpu_kv_bytes,
    .alloc = cpu_alloc,
    .upload = cpu_copy,
    .download = cpu_copy,
    .sync = cpu_sync,
    .step_set = cpu_step_set,
    .embed = cpu_embed,
    .rmsnorm = cpu_rmsnorm,
    .matmul = cpu_matmul,
    .rope = cpu_rope,
    .kv_store = cpu_kv_store,
    .attention = cpu_attention,
    .swiglu = cpu_swiglu,
    .add = cpu_add,
    .copy_row = cpu_copy_row,
    .kv_copy = cpu_kv_copy,
    .profile = cpu_profile,
    .profile_text = cpu_profile_text,
};
