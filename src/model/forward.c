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
 */
#include "context.h"

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
    else
        memcpy(dst, src, (size_t)c->kv_dim * sizeof(float));
}

/* RoPE on the new queries and keys, then the keys and values into the cache. */
static void rope_store_rows(void *arg, int ith, int nth)
{
    struct tok_job *j = arg;
    herd_context *c = j->c;
    const herd_model_info *in = &c->m->info;
    int64_t q_dim = (int64_t)in->n_heads * in->head_dim, lo, hi;
    herd_split(j->n, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        const float *cs = c->rope + t * in->head_dim;
        float *k = c->kv + t * 2 * c->kv_dim;
        rope_apply(c, c->q + t * q_dim, in->n_heads, cs);
        rope_apply(c, k, in->n_kv_heads, cs);
        int32_t seq = j->b->seq[j->t0 + t], pos = j->b->pos[j->t0 + t];
        store_kv(c, kv_row(c, c->k_cache, j->layer, seq, pos), k);
        store_kv(c, kv_row(c, c->v_cache, j->layer, seq, pos), k + c->kv_dim);
    }
}

/* One (token, head) pair: softmax(q . K / sqrt(head_dim)) . V over positions 0..pos. */
static void attend(herd_context *c, const struct tok_job *j, int64_t t, int h, float *sc)
{
    const herd_model_info *in = &c->m->info;
    int hd = in->head_dim;
    int kvh = h / (in->n_heads / in->n_kv_heads);
    int32_t seq = j->b->seq[j->t0 + t], pos = j->b->pos[j->t0 + t];
    const float *q = c->q + t * (int64_t)in->n_heads * hd + (int64_t)h * hd;
    float *out = c->att + t * (int64_t)in->n_heads * hd + (int64_t)h * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    size_t off = (size_t)kvh * hd * c->kv_elem;
    int f16 = c->kv_type == HERD_DTYPE_F16;
    float mx = -INFINITY;
    for (int32_t p = 0; p <= pos; p++) {
        const uint8_t *kr = kv_row(c, c->k_cache, j->layer, seq, p) + off;
        float s = f16 ? c->k->dot_f32_f16(q, (const uint16_t *)kr, hd)
                      : c->k->dot_f32(q, (const float *)kr, hd);
        s *= scale;
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
    memset(out, 0, (size_t)hd * sizeof(float));
    for (int32_t p = 0; p <= pos; p++) {
        const uint8_t *vr = kv_row(c, c->v_cache, j->layer, seq, p) + off;
        if (f16)
            c->k->axpy_f16(out, sc[p] * inv, (const uint16_t *)vr, hd);
        else
            c->k->axpy_f32(out, sc[p] * inv, (const float *)vr, hd);
    }
}

static void attention_rows(void *arg, int ith, int nth)
{
    struct tok_job *j = arg;
    herd_context *c = j->c;
    int n_heads = c->m->info.n_heads;
    int64_t lo, hi;
    herd_split(j->n * n_heads, ith, nth, &lo, &hi);
    float *sc = c->scores + (int64_t)ith * c->n_ctx;
    for (int64_t u = lo; u < hi; u++)
        attend(c, j, u / n_heads, (int)(u % n_heads), sc);
}

static void swiglu_rows(void *arg, int ith, int nth)
{
    struct tok_job *j = arg;
    herd_context *c = j->c;
    int64_t hd = c->m->info.hidden_dim, lo, hi;
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

static herd_status forward_chunk(herd_context *c, const herd_batch *b, int64_t t0, int64_t n,
                                 float *out, int64_t *out_row)
{
    const herd_model *m = c->m;
    const herd_model_info *in = &m->info;
    int64_t dim = in->dim, q_dim = (int64_t)in->n_heads * in->head_dim, kvd = c->kv_dim;
    herd_status s;
    for (int64_t t = 0; t < n; t++)
        if ((s = weight_row_f32(&m->tok_embd, b->tokens[t0 + t], c->x + t * dim)))
            return s;
    rope_table(c, b, t0, n);
    struct tok_job j = {.c = c, .b = b, .t0 = t0, .n = n};
    for (int l = 0; l < in->n_layers; l++) {
        const struct layer *L = &m->layers[l];
        j.layer = l;
        j.norm_w = L->attn_norm;
        herd_pool_run(c->pool, rmsnorm_rows, &j);
        matmul(c, c->q, q_dim, &L->wq, c->xb, dim, n);
        matmul(c, c->kv, 2 * kvd, &L->wk, c->xb, dim, n);
        matmul(c, c->kv + kvd, 2 * kvd, &L->wv, c->xb, dim, n);
        herd_pool_run(c->pool, rope_store_rows, &j);
        herd_pool_run(c->pool, attention_rows, &j);
        matmul(c, c->xb, dim, &L->wo, c->att, q_dim, n);
        add_rows(c->x, c->xb, n * dim);
        j.norm_w = L->ffn_norm;
        herd_pool_run(c->pool, rmsnorm_rows, &j);
        matmul(c, c->hb, in->hidden_dim, &L->w_gate, c->xb, dim, n);
        matmul(c, c->hb2, in->hidden_dim, &L->w_up, c->xb, dim, n);
        herd_pool_run(c->pool, swiglu_rows, &j);
        matmul(c, c->xb, dim, &L->w_down, c->hb, in->hidden_dim, n);
        add_rows(c->x, c->xb, n * dim);
    }
    /* Final norm and the vocabulary projection, only for the rows that want logits; they
     * are gathered to the front of x so the projection sees contiguous rows. */
    int64_t n_out = 0;
    for (int64_t t = 0; t < n; t++) {
        if (!b->logits || !b->logits[t0 + t])
            continue;
        if (n_out != t)
            memcpy(c->x + n_out * dim, c->x + t * dim, (size_t)dim * sizeof(float));
        n_out++;
    }
    if (n_out == 0)
        return HERD_OK;
    j.norm_w = m->out_norm;
    j.n = n_out;
    herd_pool_run(c->pool, rmsnorm_rows, &j);
    matmul(c, out + *out_row * in->n_vocab, in->n_vocab, &m->output, c->xb, dim, n_out);
    *out_row += n_out;
    return HERD_OK;
}

/* Checks every token before any state changes: ids in the vocabulary, sequences in range,
 * and each sequence's positions continuing exactly where its cache ends. */
static herd_status check_batch(const herd_context *c, const herd_batch *b, const float *out)
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
    int64_t out_row = 0;
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
