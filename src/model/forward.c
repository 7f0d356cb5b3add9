/*
 * forward.c - the Llama 3.x forward pass over a batch (herd_decode), written once against
 * the kernel table. As Meta's reference (llama-models, models/llama3/reference_impl):
 *
 *   h = embed(token)
 *   for each layer:  h += Wo attn(rope(Wq n), rope(Wk n), Wv n)   with n = rmsnorm(h)
 *                    h += Wdown (silu(Wgate n) * Wup n)           with n = rmsnorm(h)
 *   logits = Wout rmsnorm(h)
 *
 * in float32, attention grouped by KV heads (n_heads / n_kv_heads query heads share one).
 * A batch may mix sequences; each token attends to positions 0..pos of its own sequence in
 * the KV cache, which holds this batch's keys before attention runs — that is the causal
 * mask, in one pass. Long batches are cut into chunks of n_batch tokens.
 *
 * Every size below is this rank's share (model.h struct shard, shard.c): in one process the
 * whole model, so the code runs exactly as it would without dist/. In an MPI job a rank runs
 * its stage's layers on its heads and FFN slice; the partial sums of wo and ffn_down are
 * added by an ordered all-reduce over the tensor group, the residual stream moves between
 * stages by point-to-point messages, and the vocabulary slices of the logits meet on rank 0.
 */
#include "context.h"
#include "quant/quant.h" /* Q8_0 cache rows */
#include "dist/dist.h"

#include <math.h> /* expf, cos, sin */

/* ---- matrix products: convert activations once, then threads split the weight rows */

struct mm_job {
    const struct matmul_kernel *mk;
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
    for (int64_t b = lo; b < hi; b++)
        j->mk->convert((uint8_t *)j->xa + (size_t)b * j->xa_row_bytes, j->x + b * j->ldx,
                       j->w->n_cols);
}

static void matmul_rows(void *arg, int ith, int nth)
{
    struct mm_job *j = arg;
    int64_t lo, hi;
    herd_split(j->w->n_rows, ith, nth, &lo, &hi);
    if (lo < hi)
        j->mk->matmul(j->y, j->ldy, j->w->data, j->xa, j->xa_row_bytes, j->w->n_cols, j->n_b,
                      lo, hi);
}

/* y (n_b, ldy) = x (n_b, ldx) times w transposed. */
static void matmul(herd_context *c, float *y, int64_t ldy, const struct weight *w,
                   const float *x, int64_t ldx, int64_t n_b)
{
    struct mm_job j = {.mk = &c->k->mm[w->type], .w = w, .y = y, .ldy = ldy, .x = x,
                       .ldx = ldx, .n_b = n_b};
    if (j.mk->act_type == HERD_DTYPE_F32) {
        /* f32 partner rows are read in place; they must be contiguous */
        j.xa = x;
        j.xa_row_bytes = (size_t)ldx * sizeof(float);
    } else {
        j.xa = c->act;
        j.xa_row_bytes = dtype_row_bytes(j.mk->act_type, w->n_cols);
        herd_pool_run(c->pool, convert_rows, &j);
    }
    herd_pool_run(c->pool, matmul_rows, &j);
}

/* ---- per-token pieces */

struct tok_job {
    herd_context *c;
    const herd_batch *b;
    int64_t t0, n;      /* tokens [t0, t0 + n) of the batch */
    int layer;
    const float *norm_w;
};

static void rmsnorm_rows(void *arg, int ith, int nth)
{
    struct tok_job *j = arg;
    herd_context *c = j->c;
    int64_t dim = c->m->info.dim, lo, hi;
    herd_split(j->n, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++)
        c->k->rmsnorm(c->xb + t * dim, c->x + t * dim, j->norm_w, dim, c->m->info.norm_eps);
}

/* Rotates each head of v (n_heads heads of head_dim) by the token's angles. */
static void rope_apply(const herd_context *c, float *v, int n_heads, const float *cs)
{
    int hd = c->m->info.head_dim, half = hd / 2;
    for (int h = 0; h < n_heads; h++) {
        float *x = v + (int64_t)h * hd;
        for (int i = 0; i < half; i++) {
            int a = c->m->rope_style == ROPE_INTERLEAVED ? 2 * i : i;
            int b = c->m->rope_style == ROPE_INTERLEAVED ? 2 * i + 1 : i + half;
            float x0 = x[a], x1 = x[b], co = cs[2 * i], si = cs[2 * i + 1];
            x[a] = x0 * co - x1 * si;
            x[b] = x0 * si + x1 * co;
        }
    }
}

static void store_kv(herd_context *c, uint8_t *dst, const float *src)
{
    if (c->kv_type == HERD_DTYPE_F16)
        c->k->f32_to_f16_row((uint16_t *)dst, src, c->kv_dim);
    else if (c->kv_type == HERD_DTYPE_Q8_0)
        quantize_row(HERD_DTYPE_Q8_0, dst, src, c->kv_dim);
    else
        memcpy(dst, src, (size_t)c->kv_dim * sizeof(float));
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
static float kv_dot(const herd_context *c, const float *q, const uint8_t *row, int hd)
{
    if (c->kv_type == HERD_DTYPE_Q8_0)
        return dot_f32_q8_0(q, (const struct block_q8_0 *)row, hd);
    return c->k->dot_f32(q, (const float *)row, hd);
}

static void kv_axpy(const herd_context *c, float *y, float a, const uint8_t *row, int hd)
{
    if (c->kv_type == HERD_DTYPE_Q8_0)
        axpy_q8_0(y, a, (const struct block_q8_0 *)row, hd);
    else
        c->k->axpy_f32(y, a, (const float *)row, hd);
}

/* RoPE on the new queries and keys, then the keys and values into the cache. */
static void rope_store_rows(void *arg, int ith, int nth)
{
    struct tok_job *j = arg;
    herd_context *c = j->c;
    const herd_model_info *in = &c->m->info;
    const struct shard *sh = &c->m->sh;
    int64_t q_dim = (int64_t)sh->n_h * in->head_dim, lo, hi;
    herd_split(j->n, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        const float *cs = c->rope + t * in->head_dim;
        float *k = c->kv + t * 2 * c->kv_dim;
        rope_apply(c, c->q + t * q_dim, sh->n_h, cs);
        rope_apply(c, k, sh->n_kvh, cs);
        int32_t seq = j->b->seq[j->t0 + t], pos = j->b->pos[j->t0 + t];
        store_kv(c, kv_row(c, c->k_cache, j->layer, seq, pos), k);
        store_kv(c, kv_row(c, c->v_cache, j->layer, seq, pos), k + c->kv_dim);
    }
}

/* One (token, head) pair: softmax(q . K / sqrt(head_dim)) . V over positions 0..pos. */
static void attend(herd_context *c, const struct tok_job *j, int64_t t, int h, float *sc)
{
    const herd_model_info *in = &c->m->info;
    int hd = in->head_dim, n_h = c->m->sh.n_h;
    int kvh = h / (in->n_heads / in->n_kv_heads);
    int32_t seq = j->b->seq[j->t0 + t], pos = j->b->pos[j->t0 + t];
    const float *q = c->q + t * (int64_t)n_h * hd + (int64_t)h * hd;
    float *out = c->att + t * (int64_t)n_h * hd + (int64_t)h * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    size_t off = (size_t)kvh * c->kv_head_bytes;
    /* an F16 cache (the default) goes through the kernels that walk all positions at once;
     * they compute exactly what the per-position dot and axpy below do */
    const bool f16 = c->kv_type == HERD_DTYPE_F16;
    const int64_t stride = (int64_t)(c->kv_row_bytes / 2);
    const uint8_t *k0 = kv_row(c, c->k_cache, j->layer, seq, 0) + off;
    const uint8_t *v0 = kv_row(c, c->v_cache, j->layer, seq, 0) + off;
    if (f16)
        c->k->dots_f16(sc, q, (const uint16_t *)k0, stride, pos + 1, hd);
    float mx = -INFINITY;
    for (int32_t p = 0; p <= pos; p++) {
        float s = (f16 ? sc[p] : kv_dot(c, q, kv_row(c, c->k_cache, j->layer, seq, p) + off, hd)) *
                  scale;
        sc[p] = s;
        if (s > mx)
            mx = s;
    }
    float sum = 0.0f;
    for (int32_t p = 0; p <= pos; p++) {
        sc[p] = expf(sc[p] - mx);
        sum += sc[p];
    }
    const float inv = 1.0f / sum;
    for (int32_t p = 0; p <= pos; p++)
        sc[p] *= inv;
    if (f16) {
        c->k->wsum_f16(out, sc, (const uint16_t *)v0, stride, pos + 1, hd);
        return;
    }
    memset(out, 0, (size_t)hd * sizeof(float));
    for (int32_t p = 0; p <= pos; p++) {
        const uint8_t *vr = kv_row(c, c->v_cache, j->layer, seq, p) + off;
        kv_axpy(c, out, sc[p], vr, hd);
    }
}

static void attention_rows(void *arg, int ith, int nth)
{
    struct tok_job *j = arg;
    herd_context *c = j->c;
    int n_heads = c->m->sh.n_h;
    float *sc = c->scores + (int64_t)ith * c->n_ctx;
    /* (token, head) pairs dealt round-robin: a token's cost grows with its position, so
     * contiguous ranges left the thread with the batch's last tokens doing ~3/4 of a
     * causal prefill's attention */
    for (int64_t u = ith; u < j->n * n_heads; u += nth)
        attend(c, j, u / n_heads, (int)(u % n_heads), sc);
}

static void swiglu_rows(void *arg, int ith, int nth)
{
    struct tok_job *j = arg;
    herd_context *c = j->c;
    int64_t hd = c->m->sh.n_ff, lo, hi;
    herd_split(j->n, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++)
        c->k->swiglu(c->hb + t * hd, c->hb + t * hd, c->hb2 + t * hd, hd);
}

static void add_rows(float *x, const float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] += y[i];
}

/* cos/sin of fl32(pos * inv_freq[i]) per token: the angle rounded to float32 first, as the
 * references compute it (torch.outer / matmul of float32 positions and frequencies). */
static void rope_table(herd_context *c, const herd_batch *b, int64_t t0, int64_t n)
{
    int half = c->m->info.head_dim / 2;
    for (int64_t t = 0; t < n; t++) {
        float *cs = c->rope + t * 2 * half;
        for (int i = 0; i < half; i++) {
            float ang = (float)b->pos[t0 + t] * c->m->inv_freq[i];
            cs[2 * i] = (float)cos((double)ang);
            cs[2 * i + 1] = (float)sin((double)ang);
        }
    }
}

/* The chunk's residual stream: embeddings on the first stage, else what the previous stage
 * computed, from the rank with the same tensor index (every tensor rank holds a replica). */
static herd_status chunk_input(herd_context *c, const herd_batch *b, int64_t t0, int64_t n)
{
    const herd_model *m = c->m;
    int64_t dim = m->info.dim;
    if (m->sh.stage > 0)
        return dist_get()->recv_f32(c->x, n * dim, m->sh.rank - m->sh.tp,
                                    "receiving the previous stage's activations");
    herd_status s;
    for (int64_t t = 0; t < n; t++)
        if ((s = weight_row_f32(&m->tok_embd, b->tokens[t0 + t], c->x + t * dim)))
            return s;
    return HERD_OK;
}

/* Adds a tensor group's partial sums of a projection (n rows of dim) in rank order. */
static herd_status reduce_tp(herd_context *c, float *y, int64_t n, const char *what)
{
    if (c->m->sh.tp == 1)
        return HERD_OK;
    return dist_get()->allreduce_tp(y, n * c->m->info.dim, c->red, what);
}

static herd_status layer_forward(herd_context *c, struct tok_job *j, int l)
{
    const herd_model *m = c->m;
    const herd_model_info *in = &m->info;
    const struct layer *L = &m->layers[l];
    int64_t dim = in->dim, q_dim = (int64_t)m->sh.n_h * in->head_dim, kvd = c->kv_dim;
    int64_t n = j->n;
    herd_status s;
    j->layer = l - m->sh.l0;
    j->norm_w = L->attn_norm;
    herd_pool_run(c->pool, rmsnorm_rows, j);
    matmul(c, c->q, q_dim, &L->wq, c->xb, dim, n);
    matmul(c, c->kv, 2 * kvd, &L->wk, c->xb, dim, n);
    matmul(c, c->kv + kvd, 2 * kvd, &L->wv, c->xb, dim, n);
    herd_pool_run(c->pool, rope_store_rows, j);
    herd_pool_run(c->pool, attention_rows, j);
    matmul(c, c->xb, dim, &L->wo, c->att, q_dim, n);
    if ((s = reduce_tp(c, c->xb, n, "the attention all-reduce")))
        return s;
    add_rows(c->x, c->xb, n * dim);
    j->norm_w = L->ffn_norm;
    herd_pool_run(c->pool, rmsnorm_rows, j);
    matmul(c, c->hb, m->sh.n_ff, &L->w_gate, c->xb, dim, n);
    matmul(c, c->hb2, m->sh.n_ff, &L->w_up, c->xb, dim, n);
    herd_pool_run(c->pool, swiglu_rows, j);
    matmul(c, c->xb, dim, &L->w_down, c->hb, m->sh.n_ff, n);
    if ((s = reduce_tp(c, c->xb, n, "the FFN all-reduce")))
        return s;
    add_rows(c->x, c->xb, n * dim);
    return HERD_OK;
}

/* Final norm and the vocabulary projection, only for the rows that want logits; the last
 * stage gathers them to the front of x so the projection sees contiguous rows. In a job,
 * the normed rows go to every rank, each projects its vocabulary slice, and rank 0 receives
 * the slices straight into their columns of out. */
static herd_status chunk_logits(herd_context *c, struct tok_job *j, float *out,
                                int64_t *out_row)
{
    const herd_model *m = c->m;
    const struct shard *sh = &m->sh;
    const struct dist_ops *d = dist_get();
    int64_t dim = m->info.dim, n_vocab = m->info.n_vocab, n_out = 0;
    herd_status s;
    for (int64_t t = 0; t < j->n; t++)
        n_out += j->b->logits && j->b->logits[j->t0 + t];
    if (n_out == 0)
        return HERD_OK;
    if (sh->stage == sh->pp - 1) {
        int64_t row = 0;
        for (int64_t t = 0; t < j->n; t++) {
            if (!j->b->logits[j->t0 + t])
                continue;
            if (row != t)
                memcpy(c->x + row * dim, c->x + t * dim, (size_t)dim * sizeof(float));
            row++;
        }
        j->norm_w = m->out_norm;
        j->n = n_out;
        herd_pool_run(c->pool, rmsnorm_rows, j);
    }
    if (sh->n_ranks > 1 &&
        (s = d->bcast(c->xb, (size_t)(n_out * dim) * sizeof(float), (sh->pp - 1) * sh->tp, 0,
                      "broadcasting the final hidden state")))
        return s;
    float *y = sh->rank == 0 ? out + *out_row * n_vocab : c->logits;
    matmul(c, y, sh->rank == 0 ? n_vocab : sh->n_v, &m->output, c->xb, dim, n_out);
    if (sh->rank > 0 && (s = d->send_rows_f32(c->logits, n_out * sh->n_v, 0,
                                              "sending logits to rank 0")))
        return s;
    for (int r = 1; r < sh->n_ranks && sh->rank == 0; r++) {
        int64_t v0, v1;
        herd_split(n_vocab, r, sh->n_ranks, &v0, &v1);
        if ((s = d->recv_rows_f32(out + *out_row * n_vocab + v0, n_out, v1 - v0, n_vocab, r,
                                  "gathering logits")))
            return s;
    }
    *out_row += n_out;
    return HERD_OK;
}

static herd_status forward_chunk(herd_context *c, const herd_batch *b, int64_t t0, int64_t n,
                                 float *out, int64_t *out_row)
{
    const struct shard *sh = &c->m->sh;
    herd_status s = chunk_input(c, b, t0, n);
    if (s != HERD_OK)
        return s;
    rope_table(c, b, t0, n);
    struct tok_job j = {.c = c, .b = b, .t0 = t0, .n = n};
    for (int l = sh->l0; l < sh->l1; l++)
        if ((s = layer_forward(c, &j, l)))
            return s;
    if (sh->stage < sh->pp - 1 &&
        (s = dist_get()->send_f32(c->x, n * c->m->info.dim, sh->rank + sh->tp,
                                  "sending activations to the next stage")))
        return s;
    return chunk_logits(c, &j, out, out_row);
}

/* Checks every token before any state changes: ids in the vocabulary, sequences in range,
 * and each sequence's positions continuing exactly where its cache ends. */
herd_status check_batch(const herd_context *c, const herd_batch *b, const float *out)
{
    if (!b || b->n_tokens < 0 || (b->n_tokens > 0 && (!b->tokens || !b->pos || !b->seq)))
        return herd_fail(HERD_ERR_INVALID, "malformed batch");
    for (int32_t i = 0; i < b->n_tokens; i++)
        if (b->logits && b->logits[i] && !out)
            return herd_fail(HERD_ERR_INVALID, "batch wants logits but no output buffer given");
    int32_t *next = herd_malloc((size_t)c->n_seq * sizeof *next);
    if (!next)
        return herd_fail(HERD_ERR_NOMEM, "batch check");
    memcpy(next, c->seq_len, (size_t)c->n_seq * sizeof *next);
    herd_status s = HERD_OK;
    for (int32_t i = 0; i < b->n_tokens && s == HERD_OK; i++) {
        int32_t tok = b->tokens[i], seq = b->seq[i], pos = b->pos[i];
        if (tok < 0 || tok >= c->m->info.n_vocab)
            s = herd_fail(HERD_ERR_INVALID, "token id %d at batch index %d is outside the "
                          "vocabulary [0, %d)", tok, i, c->m->info.n_vocab);
        else if (seq < 0 || seq >= c->n_seq)
            s = herd_fail(HERD_ERR_INVALID, "sequence %d at batch index %d out of range "
                          "[0, %d)", seq, i, c->n_seq);
        else if (pos >= c->n_ctx)
            s = herd_fail(HERD_ERR_CONTEXT, "position %d of sequence %d is past the context "
                          "length of %d", pos, seq, c->n_ctx);
        else if (pos != next[seq])
            s = herd_fail(HERD_ERR_INVALID, "sequence %d: position %d given where %d comes "
                          "next", seq, pos, next[seq]);
        else
            next[seq]++;
    }
    herd_free(next);
    return s;
}

herd_status herd_decode(herd_context *c, const herd_batch *b, float *out)
{
    herd_clear_error();
    herd_status s = check_batch(c, b, out);
    if (s != HERD_OK)
        return s;
    if (follow_leading())
        return follow_decode(c, b, out);
    return decode_run(c, b, out);
}

herd_status decode_run(herd_context *c, const herd_batch *b, float *out)
{
    int64_t out_row = 0;
    herd_status s;
    for (int64_t t0 = 0; t0 < b->n_tokens; t0 += c->n_batch) {
        int64_t n = b->n_tokens - t0 < c->n_batch ? b->n_tokens - t0 : c->n_batch;
        if ((s = forward_chunk(c, b, t0, n, out, &out_row)))
            return s;
        for (int64_t t = t0; t < t0 + n; t++)
            if (b->pos[t] + 1 > c->seq_len[b->seq[t]])
                c->seq_len[b->seq[t]] = b->pos[t] + 1;
    }
    return HERD_OK;
}
