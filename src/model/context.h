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
    size_t kv_row_bytes; /* bytes of one position's kv_dim elements in kv_type */
    size_t kv_head_bytes; /* bytes of one head's head_dim elements in kv_type */
    uint8_t *k_cache;    /* (n_layers, n_seq, n_ctx, kv_dim) */
    uint8_t *v_cache;    /* (n_layers, n_seq, n_ctx, kv_dim) */
    int32_t *seq_len;    /* (n_seq) positions held */
    int n_layers;        /* layers whose cache this rank holds: its stage's */
    int32_t dist_id;     /* names the context in requests to follower ranks */
    /* scratch, B = n_batch */
    float *x;            /* (B, dim) residual stream */
    float *xb;           /* (B, max(dim, q_dim, hidden_dim)) normed input / matmul output */
    float *q;            /* (B, q_dim) */
    float *kv;           /* (B, 2 * kv_dim) new keys then new values */
    float *att;          /* (B, q_dim) attention output */
    float *hb, *hb2;     /* (B, hidden_dim) FFN gate and up */
    float *rope;         /* (B, head_dim) cos/sin pairs per token */
    float *scores;       /* (n_threads, n_ctx) */
    float *red;          /* (B, dim) all-reduce scratch; tensor-parallel ranks only */
    float *logits;       /* (B, n_v) this rank's vocabulary slice; ranks > 0 only */
    void *act;           /* activations in a weight type's partner format */
};

static inline uint8_t *kv_row(const herd_context *c, uint8_t *cache, int l, int32_t seq,
                              int32_t pos)
{
    size_t idx = (((size_t)l * c->n_seq + (size_t)seq) * c->n_ctx + (size_t)pos);
    return cache + idx * c->kv_row_bytes;
}

/* The local halves of the public calls (context.c, forward.c); follow.c runs them on every
 * rank. decode_run trusts a batch check_batch accepted on rank 0; out is rank 0's. */
herd_status context_new_local(const herd_model *m, const herd_context_params *p,
                              herd_context **out);
void context_free_local(herd_context *c);
herd_status check_batch(const herd_context *c, const herd_batch *b, const float *out);
herd_status decode_run(herd_context *c, const herd_batch *b, float *out);
herd_status seq_truncate_local(herd_context *c, int32_t seq, int32_t from);
herd_status seq_copy_local(herd_context *c, int32_t dst, int32_t src, int32_t n);

/* follow.c, rank 0 of a multi-rank job */
herd_status follow_context_new(const herd_model *m, const herd_context_params *p,
                               herd_context **out);
void follow_context_free(herd_context *c);
herd_status follow_decode(herd_context *c, const herd_batch *b, float *out);
herd_status follow_seq_truncate(herd_context *c, int32_t seq, int32_t from);
herd_status follow_seq_copy(herd_context *c, int32_t dst, int32_t src, int32_t n);

#endif /* HERD_CONTEXT_H */
