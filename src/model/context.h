/*
 * context.h - the inside of a herd_context (context.c) shared with the forward pass
 * (forward.c).
 */
#ifndef HERD_CONTEXT_H
#define HERD_CONTEXT_H

#include "model.h"

struct herd_context {
    const herd_model *m;
    const struct herd_cpu_kernels *k;
    struct herd_pool *pool;
    int32_t n_ctx, n_seq, n_batch;
    herd_dtype kv_type;
    int64_t kv_dim;      /* n_kv_heads * head_dim */
    size_t kv_elem;      /* bytes per cache element */
    uint8_t *k_cache;    /* (n_layers, n_seq, n_ctx, kv_dim) */
    uint8_t *v_cache;    /* (n_layers, n_seq, n_ctx, kv_dim) */
    int32_t *seq_len;    /* (n_seq) positions held */
    /* scratch, B = n_batch */
    float *x;            /* (B, dim) residual stream */
    float *xb;           /* (B, max(dim, q_dim, hidden_dim)) normed input / matmul output */
    float *q;            /* (B, q_dim) */
    float *kv;           /* (B, 2 * kv_dim) new keys then new values */
    float *att;          /* (B, q_dim) attention output */
    float *hb, *hb2;     /* (B, hidden_dim) FFN gate and up */
    float *rope;         /* (B, head_dim) cos/sin pairs per token */
    float *scores;       /* (n_threads, n_ctx) */
    void *act;           /* activations in a weight type's partner format */
};

static inline uint8_t *kv_row(const herd_context *c, uint8_t *cache, int l, int32_t seq,
                              int32_t pos)
{
    size_t idx = (((size_t)l * c->n_seq + (size_t)seq) * c->n_ctx + (size_t)pos);
    return cache + idx * (size_t)c->kv_dim * c->kv_elem;
}

#endif /* HERD_CONTEXT_H */
