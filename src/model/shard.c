/*
 * shard.c - how a model is divided among the ranks of an MPI job (Megatron-LM's tensor
 * parallelism inside pipeline stages; Shoeybi et al. 2019, Narayanan et al. 2021).
 *
 * Tensor parallelism (tp ranks of one stage): attention is cut by groups of KV heads, so a
 * rank's query heads only ever read its own keys and values: rows of wq, wk, wv (a slice is
 * a pointer offset into the mapping) and the matching columns of wo. The FFN is cut by its
 * hidden units: rows of gate/up, columns of down. wo and down each leave a partial sum of
 * the full dim per rank, added up by one deterministic all-reduce each (dist.h).
 * Column slices are not contiguous in the file: each rank copies its columns once at load,
 * whole quantisation blocks at a time, so a slice must start and end on a block boundary
 * (head_dim * heads-per-rank and the FFN slice are multiples of the block size: 32 for
 * Q8_0/Q4_0, 256 for the K-quants, 1 for float types). The mapped pages the copy read are
 * released (MADV_DONTNEED), so a rank's resident memory holds only its share.
 *
 * Pipeline parallelism (pp stages): consecutive layers per stage, evenly; the residual
 * stream goes from stage s to stage s + 1 rank by rank (each tensor rank holds a replica).
 * It lets the job use more ranks than there are KV heads, and rank counts with odd factors.
 *
 * The output projection is cut by vocabulary rows over all ranks of the job; the logits
 * come together on rank 0.
 *
 * A Meta folder of as many consolidated.NN.pth shards as the job's ranks (tensor parallel
 * only) is not cut here: fairscale split every matrix as this plan does (contiguous KV-head
 * groups, FFN units and vocabulary rows), so rank r binds shard r as its share at load
 * (load_meta.c, m->presliced) and shard_plan must agree with it.
 */
#include "model.h"
#include "quant/quant.h"

#include <stdio.h>    /* fprintf for the split line */
#include <sys/mman.h> /* madvise */
#include <unistd.h>   /* sysconf */

void shard_full(const herd_model *m, struct shard *sh)
{
    const herd_model_info *in = &m->info;
    memset(sh, 0, sizeof *sh);
    sh->n_ranks = 1;
    sh->tp = 1;
    sh->pp = 1;
    sh->l1 = in->n_layers;
    sh->n_kvh = in->n_kv_heads;
    sh->n_h = in->n_heads;
    sh->n_ff = in->hidden_dim;
    sh->n_v = in->n_vocab;
}

/* The largest block size among a kind of weight over all layers (block sizes are 1, 32 or
 * 256, so the largest is a multiple of the others). */
static int64_t max_block(const herd_model *m, int which_down)
{
    int64_t bs = 1;
    for (int l = 0; l < m->info.n_layers; l++) {
        const struct weight *w = which_down ? &m->layers[l].w_down : &m->layers[l].wo;
        int64_t b = dtype_block_size(w->type);
        if (b > bs)
            bs = b;
    }
    return bs;
}

/* Why tp tensor ranks cannot split m, or NULL when they can; detail gets the numbers. */
static const char *tp_problem(const herd_model *m, int tp, char *detail, size_t cap)
{
    const herd_model_info *in = &m->info;
    for (int l = 0; l < in->n_layers && tp > 1; l++)
        if (m->layers[l].w_down.n_parts > 1) {
            snprintf(detail, cap, "layer %d's FP8 ffn_down is %d column parts with row scales "
                     "of their own (a model-parallel Meta FP8 checkpoint): it splits only as "
                     "its shards, given to as many ranks as there are shards", l,
                     m->layers[l].w_down.n_parts);
            return detail;
        }
    if (in->n_kv_heads % tp != 0) {
        snprintf(detail, cap, "%d KV heads do not divide into %d groups", in->n_kv_heads, tp);
        return detail;
    }
    int64_t cols = (int64_t)(in->n_kv_heads / tp) * (in->n_heads / in->n_kv_heads) *
                   in->head_dim;
    int64_t bo = max_block(m, 0);
    if (cols % bo != 0) {
        snprintf(detail, cap, "each rank's attn_output slice of %lld columns is not a whole "
                 "number of %lld-element quantisation blocks", (long long)cols, (long long)bo);
        return detail;
    }
    int64_t bd = max_block(m, 1);
    if (in->hidden_dim % bd != 0 || in->hidden_dim / bd < tp) {
        snprintf(detail, cap, "the FFN's %d hidden units make fewer than %d slices of "
                 "%lld-element quantisation blocks", in->hidden_dim, tp, (long long)bd);
        return detail;
    }
    return NULL;
}

herd_status shard_plan(const herd_model *m, int n_ranks, int rank, int force_tp, int force_pp,
                       struct shard *sh)
{
    const herd_model_info *in = &m->info;
    char detail[320];
    int tp = 0;
    if (force_tp > 0 || force_pp > 0) {
        tp = force_tp > 0 ? force_tp : (n_ranks % force_pp == 0 ? n_ranks / force_pp : 0);
        if (tp <= 0 || n_ranks % tp != 0 || (force_pp > 0 && tp * force_pp != n_ranks))
            return herd_fail(HERD_ERR_INVALID, "HERD_TP=%d x HERD_PP=%d does not make the "
                             "job's %d ranks", force_tp, force_pp, n_ranks);
        if (tp_problem(m, tp, detail, sizeof detail))
            return herd_fail(HERD_ERR_UNSUPPORTED, "%s: cannot split tensors over %d ranks: "
                             "%s", in->path, tp, detail);
    } else {
        /* Widest tensor groups first: they divide the per-token work; stages only divide
         * memory (one batch at a time flows through them). */
        for (int t = n_ranks < in->n_kv_heads ? n_ranks : in->n_kv_heads; t >= 1 && !tp; t--)
            if (n_ranks % t == 0 && n_ranks / t <= in->n_layers &&
                !tp_problem(m, t, detail, sizeof detail))
                tp = t;
        if (!tp)
            return herd_fail(HERD_ERR_UNSUPPORTED, "%s: %d ranks cannot be split into tensor "
                             "groups x pipeline stages (%d layers, %d KV heads)", in->path,
                             n_ranks, in->n_layers, in->n_kv_heads);
    }
    int pp = n_ranks / tp;
    if (pp > in->n_layers)
        return herd_fail(HERD_ERR_UNSUPPORTED, "%s: %d pipeline stages but only %d layers",
                         in->path, pp, in->n_layers);
    memset(sh, 0, sizeof *sh);
    sh->n_ranks = n_ranks;
    sh->rank = rank;
    sh->tp = tp;
    sh->pp = pp;
    sh->tp_rank = rank % tp;
    sh->stage = rank / tp;
    int64_t lo, hi;
    herd_split(in->n_layers, sh->stage, pp, &lo, &hi);
    sh->l0 = (int)lo;
    sh->l1 = (int)hi;
    sh->n_kvh = in->n_kv_heads / tp;
    sh->kvh0 = sh->tp_rank * sh->n_kvh;
    sh->n_h = sh->n_kvh * (in->n_heads / in->n_kv_heads);
    int64_t bd = max_block(m, 1);
    herd_split(in->hidden_dim / bd, sh->tp_rank, tp, &lo, &hi);
    sh->ff0 = lo * bd;
    sh->n_ff = (hi - lo) * bd;
    herd_split(in->n_vocab, rank, n_ranks, &lo, &hi);
    sh->v0 = lo;
    sh->n_v = hi - lo;
    return HERD_OK;
}

static void slice_rows(struct weight *w, int64_t r0, int64_t n)
{
    w->data = (const uint8_t *)w->data + (size_t)r0 * w->row_bytes;
    w->n_rows = n;
}

/* Tells the kernel this process no longer needs the mapped pages under [p, p + n): they
 * leave its resident set (the file stays in the page cache for whoever reads it next; a
 * page shared with a neighbour still in use is simply read again from the file). */
void model_release_pages(const void *p, size_t n)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || n == 0)
        return;
    uintptr_t a = (uintptr_t)p & ~((uintptr_t)page - 1);
    uintptr_t e = (uintptr_t)p + n;
    (void)madvise((void *)a, e - a, MADV_DONTNEED);
}

/* Keeps columns [c0, c0 + nc) of w in a copy owned by m. */
static herd_status slice_cols(herd_model *m, struct weight *w, int64_t c0, int64_t nc,
                              const char *what, int l)
{
    int64_t bs = dtype_block_size(w->type);
    if (bs <= 0 || c0 % bs != 0 || nc % bs != 0)
        return herd_fail(HERD_ERR_INTERNAL, "layer %d %s: column slice [%lld, %lld) is not on "
                         "%lld-element blocks", l, what, (long long)c0, (long long)(c0 + nc),
                         (long long)bs);
    size_t off = c0 > 0 ? dtype_row_bytes(w->type, c0) : 0;
    size_t rb = dtype_row_bytes(w->type, nc);
    void **owned = herd_realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *owned);
    if (!owned)
        return herd_fail(HERD_ERR_NOMEM, "layer %d %s: slice table", l, what);
    m->owned = owned;
    uint8_t *dst = herd_malloc_aligned(rb * (size_t)w->n_rows + 64, 64);
    if (!dst)
        return herd_fail(HERD_ERR_NOMEM, "layer %d %s: cannot allocate a %zu-byte column slice",
                         l, what, rb * (size_t)w->n_rows);
    m->owned[m->n_owned++] = dst;
    const uint8_t *src = w->data;
    for (int64_t r = 0; r < w->n_rows; r++)
        memcpy(dst + (size_t)r * rb, src + (size_t)r * w->row_bytes + off, rb);
    model_release_pages(src, w->row_bytes * (size_t)w->n_rows);
    w->data = dst;
    w->n_cols = nc;
    w->row_bytes = rb;
    return HERD_OK;
}

herd_status shard_apply(herd_model *m)
{
    const herd_model_info *in = &m->info;
    const struct shard *sh = &m->sh;
    int64_t hd = in->head_dim, g = in->n_heads / in->n_kv_heads;
    const struct shard *own = &m->part_sh;
    herd_status s;
    if (m->presliced && (sh->tp != own->tp || sh->pp != 1 || sh->kvh0 != own->kvh0 ||
                         sh->n_kvh != own->n_kvh || sh->ff0 != own->ff0 ||
                         sh->n_ff != own->n_ff || sh->v0 != own->v0 || sh->n_v != own->n_v))
        return herd_fail(HERD_ERR_INTERNAL, "rank %d: the split (%d x %d) is not the Meta "
                         "shard the rank bound", sh->rank, sh->tp, sh->pp);
    /* a presliced rank bound its own Meta shard: its layers and output are its share */
    for (int l = sh->l0; l < sh->l1 && sh->tp > 1 && !m->presliced; l++) {
        struct layer *L = &m->layers[l];
        slice_rows(&L->wq, sh->kvh0 * g * hd, sh->n_h * hd);
        slice_rows(&L->wk, sh->kvh0 * hd, sh->n_kvh * hd);
        slice_rows(&L->wv, sh->kvh0 * hd, sh->n_kvh * hd);
        slice_rows(&L->w_gate, sh->ff0, sh->n_ff);
        slice_rows(&L->w_up, sh->ff0, sh->n_ff);
        if ((s = slice_cols(m, &L->wo, sh->kvh0 * g * hd, sh->n_h * hd, "attn_output", l)) ||
            (s = slice_cols(m, &L->w_down, sh->ff0, sh->n_ff, "ffn_down", l)))
            return s;
    }
    if (sh->n_ranks > 1 && m->output.n_rows == in->n_vocab) /* (presliced: only if tied) */
        slice_rows(&m->output, sh->v0, sh->n_v);
    return model_upload(m); /* the backend's copies follow the narrowed share */
}

void shard_describe(const herd_model *m)
{
    const struct shard *sh = &m->sh;
    const herd_model_info *in = &m->info;
    fprintf(stderr, "herd: %d ranks = %d pipeline stage%s x %d tensor-parallel rank%s "
            "(HERD_PP / HERD_TP); per rank %d of %d KV heads, ~%lld of %d FFN units, ~%lld of "
            "%d vocabulary rows; stages:", sh->n_ranks, sh->pp, sh->pp > 1 ? "s" : "", sh->tp,
            sh->tp > 1 ? "s" : "", sh->n_kvh, in->n_kv_heads, (long long)sh->n_ff,
            in->hidden_dim, (long long)sh->n_v, in->n_vocab);
    for (int s = 0; s < sh->pp; s++) {
        int64_t lo, hi;
        herd_split(in->n_layers, s, sh->pp, &lo, &hi);
        fprintf(stderr, " %s%lld-%lld", s ? "| " : "", (long long)lo, (long long)hi - 1);
    }
    fprintf(stderr, "\n");
    if (m->presliced)
        fprintf(stderr, "herd: Meta shards handed to their ranks: rank r maps "
                "consolidated.r.pth (and the embedding's columns of every shard)\n");
}
