/*
 * forward.c - the Llama 3.x forward pass over a batch (herd_decode), written once as a
 * sequence of backend operations (kernels/backend.h). As Meta's reference (llama-models,
 * models/llama3/reference_impl):
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
 * dist/ speaks host memory: on a backend without it, rows cross through c->stage.
 *
 * One process, one chunk of n tokens: after step_set, the operations from the embedding to
 * the final norm read only fixed buffers, so a backend that records (graph_*) runs them as
 * one recorded graph per n.
 */
#include "context.h"
#include "dist/dist.h"

/* Rows of backend memory as host memory for dist/ (downloaded when they are not). */
static herd_status to_host(herd_context *c, float *buf, int64_t n, float **host)
{
    *host = buf;
    if (c->b->host_memory)
        return HERD_OK;
    *host = c->stage;
    return c->b->download(c->bc, c->stage, buf, n);
}

static herd_status from_host(herd_context *c, float *buf, const float *host, int64_t n)
{
    return c->b->host_memory ? HERD_OK : c->b->upload(c->bc, buf, host, n);
}

/* Adds a tensor group's partial sums of a projection (n rows of dim) in rank order. */
static herd_status reduce_tp(herd_context *c, float *y, int64_t n, const char *what)
{
    if (c->m->sh.tp == 1)
        return HERD_OK;
    int64_t len = n * c->m->info.dim;
    float *h;
    herd_status s;
    if ((s = to_host(c, y, len, &h)) || (s = dist_get()->allreduce_tp(h, len, c->red, what)))
        return s;
    return from_host(c, y, h, len);
}

/* y (n, ldy) = w x (n, ldx). A weight in column parts (Meta's FP8 w2 of a model-parallel
 * checkpoint, load_meta.c) is computed as Meta's ranks compute it: each part from its own
 * columns of x (so the FP8 activations are quantized per part), the products added in part
 * order in float32, as reduce_tp adds the ranks' partial sums. scratch holds one product
 * (n * ldy floats). */
static void matmul_parts(herd_context *c, float *y, int64_t ldy, const struct weight *w,
                         const float *x, int64_t ldx, int64_t n, float *scratch)
{
    const struct backend_ops *b = c->b;
    if (w->n_parts <= 1) {
        b->matmul(c->bc, y, ldy, w, x, ldx, n);
        return;
    }
    b->matmul(c->bc, y, ldy, &w->parts[0], x, ldx, n);
    for (int k = 1; k < w->n_parts; k++) {
        b->matmul(c->bc, scratch, ldy, &w->parts[k], x + k * w->parts[0].n_cols, ldx, n);
        b->add(c->bc, y, scratch, n * ldy);
    }
}

/* One transformer block on the chunk's n tokens (layer l of the model, cache layer l - l0). */
static herd_status block_forward(herd_context *c, const struct bstep *st, int l)
{
    const herd_model *m = c->m;
    const struct backend_ops *b = c->b;
    struct bctx *bc = c->bc;
    const struct layer *L = &m->layers[l];
    int64_t dim = m->info.dim, q_dim = (int64_t)m->sh.n_h * m->info.head_dim;
    int64_t kvd = c->kv_dim, ff = m->sh.n_ff, n = st->n;
    int cl = l - m->sh.l0;
    herd_status s;
    /* attention */
    b->rmsnorm(bc, c->xb, c->x, L->attn_norm_dev, n, dim);
    b->matmul(bc, c->q, q_dim, &L->wq, c->xb, dim, n);
    b->matmul(bc, c->kv, 2 * kvd, &L->wk, c->xb, dim, n);
    b->matmul(bc, c->kv + kvd, 2 * kvd, &L->wv, c->xb, dim, n);
    b->rope(bc, c->q, q_dim, c->kv, 2 * kvd, st);
    b->kv_store(bc, cl, c->kv, 2 * kvd, c->kv + kvd, 2 * kvd, st);
    b->attention(bc, c->att, c->q, cl, st);
    b->matmul(bc, c->xb, dim, &L->wo, c->att, q_dim, n);
    if ((s = reduce_tp(c, c->xb, n, "the attention all-reduce")))
        return s;
    b->add(bc, c->x, c->xb, n * dim);
    /* feed-forward */
    b->rmsnorm(bc, c->xb, c->x, L->ffn_norm_dev, n, dim);
    b->matmul(bc, c->hb, ff, &L->w_gate, c->xb, dim, n);
    b->matmul(bc, c->hb2, ff, &L->w_up, c->xb, dim, n);
    b->swiglu(bc, c->hb, c->hb, c->hb2, n, ff);
    /* hb2 is free once swiglu has read it; a model in parts has ff >= dim (load_meta.c) */
    matmul_parts(c, c->xb, dim, &L->w_down, c->hb, ff, n, c->hb2);
    if ((s = reduce_tp(c, c->xb, n, "the FFN all-reduce")))
        return s;
    b->add(bc, c->x, c->xb, n * dim);
    return HERD_OK;
}

/* The chunk's residual stream: embeddings on the first stage, else what the previous stage
 * computed, from the rank with the same tensor index (every tensor rank holds a replica). */
static herd_status chunk_input(herd_context *c, const struct bstep *st)
{
    const herd_model *m = c->m;
    if (m->sh.stage == 0)
        return c->b->embed(c->bc, c->x, &m->tok_embd, st);
    int64_t len = st->n * m->info.dim;
    float *h = c->b->host_memory ? c->x : c->stage;
    herd_status s = dist_get()->recv_f32(h, len, m->sh.rank - m->sh.tp,
                                         "receiving the previous stage's activations");
    return s ? s : from_host(c, c->x, h, len);
}

/* Final norm and the vocabulary projection, only for the rows that want logits; the last
 * stage gathers them to the front of x so the projection sees contiguous rows. In a job,
 * the normed rows go to every rank, each projects its vocabulary slice, and rank 0 receives
 * the slices straight into their columns of out. */
static herd_status chunk_logits(herd_context *c, const herd_batch *b, int64_t t0, int64_t n,
                                float *out, int64_t *out_row)
{
    const herd_model *m = c->m;
    const struct shard *sh = &m->sh;
    const struct dist_ops *d = dist_get();
    const struct backend_ops *be = c->b;
    int64_t dim = m->info.dim, n_vocab = m->info.n_vocab, n_out = 0;
    herd_status s;
    for (int64_t t = 0; t < n; t++)
        n_out += b->logits && b->logits[t0 + t];
    if (n_out == 0)
        return HERD_OK;
    if (sh->stage == sh->pp - 1) {
        int64_t row = 0;
        for (int64_t t = 0; t < n; t++)
            if (b->logits[t0 + t])
                be->copy_row(c->bc, c->x, dim, row++, t);
        be->rmsnorm(c->bc, c->xb, c->x, m->out_norm_dev, n_out, dim);
    }
    if (sh->n_ranks > 1) {
        float *h;
        int64_t len = n_out * dim;
        if ((s = to_host(c, c->xb, len, &h)) ||
            (s = d->bcast(h, (size_t)len * sizeof(float), (sh->pp - 1) * sh->tp, 0,
                          "broadcasting the final hidden state")) ||
            (s = from_host(c, c->xb, h, len)))
            return s;
    }
    /* rank 0 on a host-memory backend writes the logits straight into out */
    bool direct = sh->rank == 0 && be->host_memory;
    float *y = direct ? out + *out_row * n_vocab : c->logits;
    be->matmul(c->bc, y, sh->rank == 0 ? n_vocab : sh->n_v, &m->output, c->xb, dim, n_out);
    if (sh->rank == 0 && !direct &&
        (s = be->download(c->bc, out + *out_row * n_vocab, c->logits, n_out * n_vocab)))
        return s;
    if (sh->rank > 0) {
        float *h;
        if ((s = to_host(c, c->logits, n_out * sh->n_v, &h)) ||
            (s = d->send_rows_f32(h, n_out * sh->n_v, 0, "sending logits to rank 0")))
            return s;
    }
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

/* The final norm of the chunk's rows whose hidden state is wanted (hidden[t]), gathered
 * to the front of xb and copied out; x is left as it was, so the logits that follow are
 * computed exactly as without this. One process only (api.c). */
static herd_status chunk_hidden(herd_context *c, const int8_t *hidden, int64_t t0, int64_t n,
                                float *hidden_out, int64_t *hid_row)
{
    const struct backend_ops *be = c->b;
    int64_t dim = c->m->info.dim, row = 0;
    if (!hidden)
        return HERD_OK;
    for (int64_t t = 0; t < n; t++)
        row += hidden[t0 + t] != 0;
    if (row == 0)
        return HERD_OK;
    be->rmsnorm(c->bc, c->xb, c->x, c->m->out_norm_dev, n, dim);
    row = 0;
    for (int64_t t = 0; t < n; t++)
        if (hidden[t0 + t])
            be->copy_row(c->bc, c->xb, dim, row++, t);
    herd_status s = be->download(c->bc, hidden_out + *hid_row * dim, c->xb, row * dim);
    *hid_row += row;
    return s;
}

/* Embedding (or the previous stage's rows) and this rank's blocks, recorded once per n
 * where the backend records and no other rank takes part. */
static herd_status chunk_blocks(herd_context *c, const struct bstep *st)
{
    const struct backend_ops *b = c->b;
    const struct shard *sh = &c->m->sh;
    bool record = b->graph_replay && sh->n_ranks == 1;
    herd_status s;
    if (record && b->graph_replay(c->bc, st->n))
        return HERD_OK;
    if (record && (s = b->graph_begin(c->bc, st->n)))
        return s;
    s = chunk_input(c, st);
    for (int l = sh->l0; l < sh->l1 && s == HERD_OK; l++)
        s = block_forward(c, st, l);
    if (record) {
        herd_status e = b->graph_end(c->bc, st->n);
        if (s == HERD_OK)
            s = e;
    }
    return s;
}

static herd_status forward_chunk(herd_context *c, const herd_batch *b, int64_t t0, int64_t n,
                                 float *out, int64_t *out_row, const int8_t *hidden,
                                 float *hidden_out, int64_t *hid_row)
{
    const struct shard *sh = &c->m->sh;
    const struct bstep *st;
    herd_status s;
    if ((s = c->b->step_set(c->bc, b->tokens + t0, b->pos + t0, b->seq + t0, n, &st)) ||
        (s = chunk_blocks(c, st)))
        return s;
    if (sh->stage < sh->pp - 1) {
        float *h;
        int64_t len = n * c->m->info.dim;
        if ((s = to_host(c, c->x, len, &h)) ||
            (s = dist_get()->send_f32(h, len, sh->rank + sh->tp,
                                      "sending activations to the next stage")))
            return s;
    }
    if ((s = chunk_hidden(c, hidden, t0, n, hidden_out, hid_row)))
        return s;
    return chunk_logits(c, b, t0, n, out, out_row);
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

herd_status decode_run(herd_context *c, const herd_batch *b, float *out)
{
    return decode_run_hidden(c, b, out, NULL, NULL);
}

herd_status decode_run_hidden(herd_context *c, const herd_batch *b, float *out,
                              const int8_t *hidden, float *hidden_out)
{
    int64_t out_row = 0, hid_row = 0;
    herd_status s;
    for (int64_t t0 = 0; t0 < b->n_tokens; t0 += c->n_batch) {
        int64_t n = b->n_tokens - t0 < c->n_batch ? b->n_tokens - t0 : c->n_batch;
        if ((s = forward_chunk(c, b, t0, n, out, &out_row, hidden, hidden_out, &hid_row)))
            return s;
        for (int64_t t = t0; t < t0 + n; t++)
            if (b->pos[t] + 1 > c->seq_len[b->seq[t]])
                c->seq_len[b->seq[t]] = b->pos[t] + 1;
    }
    return HERD_OK;
}
