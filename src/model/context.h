/*
 * context.h - the inside of a herd_context (context.c) shared with the forward pass
 * (forward.c). The KV cache, the thread pool or stream and every activation buffer belong
 * to the backend (kernels/backend.h); the context names the buffers and keeps the
 * host-side bookkeeping (how many positions each sequence holds).
 */
#ifndef HERD_CONTEXT_H
#define HERD_CONTEXT_H

#include "model.h"

struct herd_context {
    const herd_model *m;
    struct bctx *bc;     /* the backend's side: pool or stream, KV cache, scratch */
    const struct backend_ops *b;
    int32_t n_ctx, n_seq, n_batch;
    herd_dtype kv_type;
    int64_t kv_dim;      /* n_kv_heads * head_dim of this rank */
    int32_t *seq_len;    /* (n_seq) positions held; host memory */
    int n_layers;        /* layers whose cache this rank holds: its stage's */
    int32_t dist_id;     /* names the context in requests to follower ranks */
    /* activations in backend memory, B = n_batch */
    float *x;            /* (B, dim) residual stream */
    float *xb;           /* (B, max(dim, q_dim, hidden_dim)) normed input / matmul output */
    float *q;            /* (B, q_dim) */
    float *kv;           /* (B, 2 * kv_dim) new keys then new values */
    float *att;          /* (B, q_dim) attention output */
    float *hb, *hb2;     /* (B, hidden_dim) FFN gate and up */
    float *logits;       /* (B, n_v) logits rows; ranks > 0, or a backend without host memory */
    /* host memory for what dist/ exchanges, on backends without host memory */
    float *red;          /* (B, dim) all-reduce scratch; tensor-parallel ranks only */
    float *stage;        /* (B, max(dim, n_v)) rows on their way to or from dist/ */
};

/* The local halves of the public calls (context.c, forward.c); api.c and dispatch.c run them
 * on every rank. decode_run trusts a batch check_batch accepted on rank 0; out is rank 0's. */
herd_status context_new_local(const herd_model *m, const herd_context_params *p,
                              herd_context **out);
void context_free_local(herd_context *c);
herd_status check_batch(const herd_context *c, const herd_batch *b, const float *out);
herd_status decode_run(herd_context *c, const herd_batch *b, float *out);
/* decode_run plus the final normed hidden state of the tokens with hidden[i] != 0 (one
 * process only; api.c checks). */
herd_status decode_run_hidden(herd_context *c, const herd_batch *b, float *out,
                              const int8_t *hidden, float *hidden_out);
herd_status seq_truncate_local(herd_context *c, int32_t seq, int32_t from);
herd_status seq_copy_local(herd_context *c, int32_t dst, int32_t src, int32_t n);

#endif /* HERD_CONTEXT_H */
