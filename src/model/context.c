/*
 * context.c - a herd_context: the KV cache of n_seq sequences of n_ctx positions each, the
 * scratch arena the forward pass works in (sized once here, so forward never allocates),
 * and the thread pool. Sequence operations (truncate, copy) serve slot reuse and prefix
 * caching in the server.
 */
#include "context.h"
#include "quant/quant.h" /* dtype_row_bytes for the memory plan */

#include <stdio.h> /* snprintf for the memory hint */

herd_context_params herd_context_default_params(void)
{
    herd_context_params p = {0};
    p.n_ctx = 0;
    p.n_seq = 1;
    p.n_batch = 512;
    p.n_threads = 0;
    p.kv_type = HERD_DTYPE_F16;
    return p;
}

/* The memory plan: what a context of these sizes will allocate, checked against the limit
 * before anything is allocated, so that a context too large for the machine is refused
 * with a size that fits instead of overcommitting and failing later, under load. The
 * limit is the memory free where the cache lives: the backend's (a GPU's) when it has its
 * own, else the machine's. The weights are not counted: on the CPU they stay in the file
 * mapping, which the kernel pages; a device holds them already when this runs. */
static herd_status check_memory(const herd_model *m, const herd_context_params *p,
                                int64_t kv_dim, int64_t max_cols, int n_layers)
{
    const struct shard *sh = &m->sh;
    const herd_model_info *in = &m->info;
    const double gib = 1024.0 * 1024.0 * 1024.0;
    int64_t q_dim = (int64_t)sh->n_h * in->head_dim;
    int64_t nth = herd_n_threads(p->n_threads);
    /* per position of every sequence: keys and values of each layer */
    int64_t per_pos = 2 * (int64_t)n_layers * p->n_seq * (int64_t)dtype_row_bytes(p->kv_type,
                                                                                     kv_dim);
    int64_t row = in->dim + 2 * max_cols + 2 * q_dim + 2 * kv_dim + 2 * sh->n_ff +
                  in->head_dim + (sh->rank > 0 ? sh->n_v : 0);
    int64_t fixed = (int64_t)p->n_batch * row * 4;
    int64_t scores = nth * 4; /* per position: one attention score per thread */
    int64_t scratch = fixed + scores * p->n_ctx;
    int64_t kv = per_pos * p->n_ctx;
    int64_t limit = p->mem_limit;
    const char *whose = "the limit given";
    if (limit == 0 && m->be.ops->mem_available) {
        limit = m->be.ops->mem_available(&m->be);
        whose = "free on the device";
    } else if (limit == 0) {
        limit = herd_mem_available();
        whose = "available on this machine";
    }
    herd_log(HERD_LOG_INFO, "memory plan: weights %.2f GiB (mapped), KV cache %.2f GiB, "
             "scratch %.1f MiB; %s %.2f GiB", (double)in->weight_bytes / gib, (double)kv / gib,
             (double)scratch / (1024.0 * 1024.0), whose, limit < 0 ? -1.0 : (double)limit / gib);
    if (limit < 0 || kv + scratch <= limit)
        return HERD_OK;
    int64_t fit = limit > fixed ? (limit - fixed) / (per_pos + scores) : 0;
    fit = fit >= 256 ? fit / 256 * 256 : fit; /* a round number to suggest */
    char hint[96];
    if (fit > 0)
        snprintf(hint, sizeof hint, "at most %lld positions fit (or use fewer sequences, or "
                 "a q8_0 KV cache)", (long long)fit);
    else
        snprintf(hint, sizeof hint, "use fewer sequences or a smaller model");
    return herd_fail(HERD_ERR_NOMEM, "a context of %d positions x %d sequence%s needs %.2f GiB "
                     "(KV cache %s %.2f GiB + scratch %.0f MiB) but %.2f GiB is %s: %s",
                     p->n_ctx, p->n_seq, p->n_seq > 1 ? "s" : "", (double)(kv + scratch) / gib,
                     herd_dtype_name(p->kv_type), (double)kv / gib,
                     (double)scratch / (1024.0 * 1024.0), (double)limit / gib, whose, hint);
}

static herd_status alloc_f32(float **p, size_t n, const char *what)
{
    void *v = NULL;
    herd_status s = herd_alloc_array(&v, n ? n : 1, sizeof(float), what);
    *p = v;
    return s;
}

/* The sizes below are this rank's share (m->sh): its stage's layers, its KV heads, query
 * heads and FFN slice; in one process, the whole model. */
herd_status context_new_local(const herd_model *m, const herd_context_params *params,
                              herd_context **out)
{
    *out = NULL;
    herd_context_params p = *params;
    const struct shard *sh = &m->sh;
    const herd_model_info *in = &m->info;
    if (p.n_ctx < 0 || p.n_seq < 0 || p.n_batch < 0 || p.n_threads < 0)
        return herd_fail(HERD_ERR_INVALID, "context sizes must not be negative");
    if (p.n_ctx == 0)
        p.n_ctx = in->max_seq_len < 4096 ? in->max_seq_len : 4096;
    if (p.n_ctx > in->max_seq_len)
        return herd_fail(HERD_ERR_CONTEXT, "context of %d positions exceeds the model's maximum "
                         "of %d", p.n_ctx, in->max_seq_len);
    if (p.n_seq == 0)
        p.n_seq = 1;
    if (p.n_batch == 0)
        p.n_batch = 512;
    if (p.n_threads == 0)
        p.n_threads = m->n_threads;
    if (p.kv_type != HERD_DTYPE_F16 && p.kv_type != HERD_DTYPE_F32 &&
        p.kv_type != HERD_DTYPE_Q8_0)
        return herd_fail(HERD_ERR_UNSUPPORTED, "KV cache type %s: use f16, f32 or q8_0",
                         herd_dtype_name(p.kv_type) ? herd_dtype_name(p.kv_type) : "?");
    /* Q8_0 blocks of 32 must not straddle two heads: each head is read on its own. */
    if (p.kv_type == HERD_DTYPE_Q8_0 && in->head_dim % 32 != 0)
        return herd_fail(HERD_ERR_UNSUPPORTED, "a q8_0 KV cache needs head_dim to be a "
                         "multiple of 32 (this model's is %d): use f16", in->head_dim);

    int64_t kv_dim = (int64_t)sh->n_kvh * in->head_dim;
    int64_t q_dim = (int64_t)sh->n_h * in->head_dim;
    int64_t max_cols = in->dim;
    if (q_dim > max_cols)
        max_cols = q_dim;
    if (sh->n_ff > max_cols)
        max_cols = sh->n_ff;
    herd_status s = check_memory(m, &p, kv_dim, max_cols, sh->l1 - sh->l0);
    if (s != HERD_OK)
        return s;

    herd_context *c = herd_calloc(1, sizeof *c);
    if (!c)
        return herd_fail(HERD_ERR_NOMEM, "context");
    c->m = m;
    c->b = m->be.ops;
    c->n_ctx = p.n_ctx;
    c->n_seq = p.n_seq;
    c->n_batch = p.n_batch;
    c->kv_type = p.kv_type;
    c->n_layers = sh->l1 - sh->l0;
    c->kv_dim = kv_dim;
    const struct bctx_params bp = {
        .n_threads = p.n_threads, .n_ctx = p.n_ctx, .n_seq = p.n_seq, .n_batch = p.n_batch,
        .n_layers = c->n_layers, .n_heads = sh->n_h, .n_kv_heads = sh->n_kvh,
        .head_dim = in->head_dim, .kv_type = p.kv_type, .rope_style = m->rope_style,
        .inv_freq = m->inv_freq, .norm_eps = in->norm_eps, .max_cols = max_cols};
    if ((s = c->b->ctx_new((struct backend *)&m->be, &bp, &c->bc)))
        goto fail;
    void *len = NULL;
    if ((s = herd_alloc_array(&len, (size_t)c->n_seq, sizeof(int32_t), "sequence lengths")))
        goto fail;
    c->seq_len = len;
    memset(c->seq_len, 0, (size_t)c->n_seq * sizeof(int32_t));
    int64_t B = c->n_batch;
    struct bctx *bc = c->bc;
    if ((s = c->b->alloc(bc, B * in->dim, &c->x)) ||
        (s = c->b->alloc(bc, B * max_cols, &c->xb)) ||
        (s = c->b->alloc(bc, B * q_dim, &c->q)) ||
        (s = c->b->alloc(bc, B * c->kv_dim * 2, &c->kv)) ||
        (s = c->b->alloc(bc, B * q_dim, &c->att)) ||
        (s = c->b->alloc(bc, B * sh->n_ff, &c->hb)) ||
        (s = c->b->alloc(bc, B * sh->n_ff, &c->hb2)))
        goto fail;
    if ((sh->rank > 0 || !c->b->host_memory) &&
        (s = c->b->alloc(bc, B * sh->n_v, &c->logits)))
        goto fail;
    if (sh->tp > 1 && (s = alloc_f32(&c->red, (size_t)B * in->dim, "all-reduce scratch")))
        goto fail;
    if (sh->n_ranks > 1 && !c->b->host_memory &&
        (s = alloc_f32(&c->stage, (size_t)B * (sh->n_v > in->dim ? sh->n_v : in->dim),
                       "dist staging")))
        goto fail;
    herd_log(HERD_LOG_INFO, "context: %d positions x %d sequences, KV cache %s %.1f MiB",
             c->n_ctx, c->n_seq, herd_dtype_name(c->kv_type),
             (double)herd_context_kv_bytes(c) / (1024.0 * 1024.0));
    *out = c;
    return HERD_OK;
fail:
    context_free_local(c);
    return s;
}

void context_free_local(herd_context *c)
{
    if (!c)
        return;
    if (c->bc)
        c->b->ctx_free(c->bc);
    herd_free(c->seq_len);
    herd_free(c->red);
    herd_free(c->stage);
    herd_free(c);
}

int32_t herd_context_n_ctx(const herd_context *c)
{
    return c->n_ctx;
}

int64_t herd_context_kv_bytes(const herd_context *c)
{
    return c->b->kv_bytes(c->bc);
}

herd_status herd_context_profile(herd_context *c, bool on)
{
    if (!c->b->profile)
        return herd_fail(HERD_ERR_UNSUPPORTED, "profiling: the %s backend has none", c->b->name);
    return c->b->profile(c->bc, on);
}

herd_status herd_context_profile_text(const herd_context *c, char *buf, size_t cap)
{
    if (!c->b->profile_text)
        return herd_fail(HERD_ERR_UNSUPPORTED, "profiling: the %s backend has none", c->b->name);
    return c->b->profile_text(c->bc, buf, cap);
}

static herd_status check_seq(const herd_context *c, int32_t seq)
{
    if (seq < 0 || seq >= c->n_seq)
        return herd_fail(HERD_ERR_INVALID, "sequence %d out of range [0, %d)", seq, c->n_seq);
    return HERD_OK;
}

herd_status seq_truncate_local(herd_context *c, int32_t seq, int32_t from)
{
    herd_status s = check_seq(c, seq);
    if (s != HERD_OK)
        return s;
    if (from < 0)
        return herd_fail(HERD_ERR_INVALID, "truncate position %d is negative", from);
    if (from < c->seq_len[seq])
        c->seq_len[seq] = from;
    return HERD_OK;
}

herd_status seq_copy_local(herd_context *c, int32_t dst, int32_t src, int32_t n)
{
    herd_status s;
    if ((s = check_seq(c, dst)) || (s = check_seq(c, src)))
        return s;
    if (n < 0 || n > c->seq_len[src])
        return herd_fail(HERD_ERR_INVALID, "cannot copy %d positions: sequence %d holds %d", n,
                         src, c->seq_len[src]);
    if (dst == src) {
        c->seq_len[dst] = n;
        return HERD_OK;
    }
    if ((s = c->b->kv_copy(c->bc, dst, src, n)))
        return s;
    c->seq_len[dst] = n;
    return HERD_OK;
}

int32_t herd_seq_len(const herd_context *c, int32_t seq)
{
    if (seq < 0 || seq >= c->n_seq)
        return -1;
    return c->seq_len[seq];
}
