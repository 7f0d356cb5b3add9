/*
 * spec.c - speculative decoding (herd.h herd_spec_*): a draft proposes up to K tokens, the
 * target scores the sequence's last token and all of them in one herd_decode, and the
 * longest prefix the target agrees with is kept, plus one token of the target's own.
 *
 * Per sequence the target's cache holds hist[0..n-1) (the last token is fed by the step).
 * One step:
 *   1. draft: a draft model first catches up on whatever of hist its cache does not hold
 *      (spec_seq.dtok says what it holds; the longest common prefix is kept), then
 *      proposes d1..dK one token at a time, each drawn from q_i (the sampler's chain on the
 *      draft's logits, no penalties; greedy: its argmax). Prompt lookup instead finds the
 *      latest earlier occurrence of hist's last n-gram (n = lookup_ngram down to
 *      lookup_min) and proposes what followed it (q_i = 1 on d_i).
 *   2. the caller (or herd_spec_step) decodes [hist[n-1], d1..dK] with logits for all K+1.
 *   3. verify, row by row, accepting each kept token into the target's sampler first so
 *      that row i+1 sees the penalties of the tokens before it:
 *        greedy: t_i = herd_sampler_sample(row i); keep d_i while d_i == t_i, else emit t_i
 *                (so the output is token for token the target's alone);
 *        sampled: p_i = sampler_dist(row i); keep d_i with probability min(1, p_i/q_i),
 *                else emit a draw from norm(max(0, p_i - q_i)) (Leviathan et al. 2023,
 *                Chen et al. 2023: the emitted token then follows p_i exactly);
 *        all K kept: emit a draw from row K (greedy: its argmax).
 *   4. both caches are cut back to hist + the kept drafts (herd_seq_truncate); the emitted
 *      token is fed by the next step.
 * K adapts per sequence as transformers' "heuristic" schedule does: +2 when a step keeps
 * every draft, -1 otherwise, within [draft_min, draft_max].
 */
#include "spec/spec.h"
#include "model/context.h" /* the target's n_ctx and n_seq */
#include "sample/sample.h"

#include <math.h> /* fmaxf */

struct spec_seq {
    int32_t *dtok;     /* (n_ctx) the tokens the draft's cache holds for this sequence */
    int32_t n_dtok;
    int32_t n_hist;    /* history length at the last draft */
    int32_t draft[SPEC_MAX_DRAFT];
    int32_t n_draft;   /* pending drafts, -1 when no draft waits for verify */
    float *q;          /* (draft_max, n_vocab) the draft distributions; made when sampling */
    int32_t k;         /* drafts to propose next */
    uint64_t rng[4];
};

struct herd_spec {
    herd_context *target;
    const herd_model *draft;
    herd_context *dctx;
    herd_spec_params p;
    int32_t n_vocab, n_seq, n_ctx, n_dctx;
    struct spec_seq *seqs;
    float *dlogits;  /* (n_vocab) the draft's last row */
    float *pbuf;     /* (n_vocab) p_i, then the residual */
    float *rows;     /* (draft_max + 1, n_vocab) herd_spec_step's verify rows */
    int32_t *btok, *bpos, *bseq; /* (cap) batch scratch */
    int8_t *blog;
    int32_t cap;
    herd_spec_stats st;
    bool test_wrong;
};

herd_spec_params herd_spec_default_params(void)
{
    herd_spec_params p = {0};
    p.draft_max = 7; /* with the last token, 8 rows: one verify call (SPEC_VERIFY_ROWS) */
    p.draft_min = 1;
    p.lookup_ngram = 3;
    p.lookup_min = 2;
    p.kv_type = HERD_DTYPE_F16;
    return p;
}

void spec_test_wrong_residual(herd_spec *s, bool on)
{
    s->test_wrong = on;
}


/* A draw from w (n weights, not necessarily normalised); -1 when they sum to 0. */
static int32_t draw(uint64_t *rng, const float *w, int32_t n)
{
    double total = 0;
    int32_t last = -1;
    for (int32_t i = 0; i < n; i++) {
        total += w[i];
        if (w[i] > 0)
            last = i;
    }
    if (!(total > 0))
        return -1;
    double u = herd_rng_uniform(rng) * total, cum = 0;
    for (int32_t i = 0; i < n; i++) {
        cum += w[i];
        if (w[i] > 0 && u < cum)
            return i;
    }
    return last; /* u rounded up to total */
}

/* ---------------------------------------------------------------- lifetime */

/* The draft must read and write the same ids as the target: same count, same bytes. */
static herd_status check_vocab(const herd_model *t, const herd_model *d)
{
    const herd_model_info *ti = herd_model_get_info(t), *di = herd_model_get_info(d);
    if (ti->n_vocab != di->n_vocab)
        return herd_fail(HERD_ERR_INVALID, "draft %s has %d vocabulary ids, the target %s %d: "
                         "a draft must share the target's tokenizer", di->path, di->n_vocab,
                         ti->path, ti->n_vocab);
    const herd_tokenizer *tt = herd_model_tokenizer(t), *dt = herd_model_tokenizer(d);
    if (!tt != !dt)
        return herd_fail(HERD_ERR_INVALID, "draft %s: only one of draft and target has a "
                         "tokenizer, so their vocabularies cannot be compared", di->path);
    if (!tt)
        return HERD_OK;
    if (herd_tokenizer_n_vocab(tt) != herd_tokenizer_n_vocab(dt))
        return herd_fail(HERD_ERR_INVALID, "draft %s: its tokenizer has %d ids, the target's %d",
                         di->path, herd_tokenizer_n_vocab(dt), herd_tokenizer_n_vocab(tt));
    for (int32_t id = 0; id < herd_tokenizer_n_vocab(tt); id++) {
        size_t la = 0, lb = 0;
        const char *a = herd_token_bytes(tt, id, &la), *b = herd_token_bytes(dt, id, &lb);
        if (!a != !b || la != lb || (a && memcmp(a, b, la) != 0))
            return herd_fail(HERD_ERR_INVALID, "draft %s: token %d differs from the target's "
                             "(a draft must share the target's tokenizer)", di->path, id);
    }
    return HERD_OK;
}

static herd_status grow_batch(herd_spec *s, int32_t n)
{
    if (n <= s->cap)
        return HERD_OK;
    int32_t cap = n < 64 ? 64 : n;
    void *a = herd_realloc(s->btok, (size_t)cap * sizeof *s->btok);
    if (a)
        s->btok = a;
    void *b = herd_realloc(s->bpos, (size_t)cap * sizeof *s->bpos);
    if (b)
        s->bpos = b;
    void *c = herd_realloc(s->bseq, (size_t)cap * sizeof *s->bseq);
    if (c)
        s->bseq = c;
    void *d = herd_realloc(s->blog, (size_t)cap);
    if (d)
        s->blog = d;
    if (!a || !b || !c || !d)
        return herd_fail(HERD_ERR_NOMEM, "speculative decoding: batch of %d tokens", (int)cap);
    s->cap = cap;
    return HERD_OK;
}

herd_status herd_spec_new(herd_context *target, const herd_model *draft,
                          const herd_spec_params *params, herd_spec **out)
{
    *out = NULL;
    herd_clear_error();
    herd_spec_params p = params ? *params : herd_spec_default_params();
    if (!target)
        return herd_fail(HERD_ERR_INVALID, "speculative decoding needs a target context");
    if (p.draft_max < 1 || p.draft_max > SPEC_MAX_DRAFT || p.draft_min < 1 ||
        p.draft_min > p.draft_max)
        return herd_fail(HERD_ERR_INVALID, "draft sizes: need 1 <= draft_min (%d) <= draft_max "
                         "(%d) <= %d", p.draft_min, p.draft_max, SPEC_MAX_DRAFT);
    if (!draft && (p.lookup_min < 1 || p.lookup_ngram < p.lookup_min))
        return herd_fail(HERD_ERR_INVALID, "prompt lookup: need 1 <= lookup_min (%d) <= "
                         "lookup_ngram (%d)", p.lookup_min, p.lookup_ngram);
    const herd_model *tm = target->m;
    herd_status st = HERD_OK;
    if (draft && (st = check_vocab(tm, draft)))
        return st;
    herd_spec *s = herd_calloc(1, sizeof *s);
    if (!s)
        return herd_fail(HERD_ERR_NOMEM, "speculative decoding");
    s->target = target;
    s->draft = draft;
    s->p = p;
    s->n_vocab = herd_model_get_info(tm)->n_vocab;
    s->n_seq = target->n_seq;
    s->n_ctx = target->n_ctx;
    s->n_dctx = s->n_ctx;
    if (draft) {
        const herd_model_info *di = herd_model_get_info(draft);
        herd_context_params cp = herd_context_default_params();
        if (s->n_dctx > di->max_seq_len)
            s->n_dctx = di->max_seq_len;
        cp.n_ctx = s->n_dctx;
        cp.n_seq = s->n_seq;
        cp.n_batch = target->n_batch;
        cp.n_threads = p.n_threads;
        cp.kv_type = p.kv_type;
        if ((st = herd_context_new(draft, &cp, &s->dctx)))
            goto fail;
    }
    s->seqs = herd_calloc((size_t)s->n_seq, sizeof *s->seqs);
    s->dlogits = herd_malloc((size_t)s->n_vocab * sizeof(float));
    s->pbuf = herd_malloc((size_t)s->n_vocab * sizeof(float));
    if (!s->seqs || !s->dlogits || !s->pbuf) {
        st = herd_fail(HERD_ERR_NOMEM, "speculative decoding: per-sequence state");
        goto fail;
    }
    for (int32_t i = 0; i < s->n_seq; i++) {
        struct spec_seq *q = &s->seqs[i];
        q->n_draft = -1;
        if (draft && !(q->dtok = herd_malloc((size_t)s->n_dctx * sizeof *q->dtok))) {
            st = herd_fail(HERD_ERR_NOMEM, "speculative decoding: draft token record");
            goto fail;
        }
        herd_spec_seq_reset(s, i, (uint64_t)i);
    }
    *out = s;
    return HERD_OK;
fail:
    herd_spec_free(s);
    return st;
}

void herd_spec_free(herd_spec *s)
{
    if (!s)
        return;
    for (int32_t i = 0; s->seqs && i < s->n_seq; i++) {
        herd_free(s->seqs[i].dtok);
        herd_free(s->seqs[i].q);
    }
    herd_free(s->seqs);
    herd_context_free(s->dctx);
    herd_free(s->dlogits);
    herd_free(s->pbuf);
    herd_free(s->rows);
    herd_free(s->btok);
    herd_free(s->bpos);
    herd_free(s->bseq);
    herd_free(s->blog);
    herd_free(s);
}

void herd_spec_seq_reset(herd_spec *s, int32_t seq, uint64_t seed)
{
    if (!s || seq < 0 || seq >= s->n_seq)
        return;
    struct spec_seq *q = &s->seqs[seq];
    q->k = s->p.draft_max;
    q->n_draft = -1;
    herd_rng_seed(q->rng, seed ^ 0x5bd1e995a5a5a5a5ull); /* not the sampler's own stream */
}

herd_spec_stats herd_spec_get_stats(const herd_spec *s)
{
    herd_spec_stats z = {0};
    return s ? s->st : z;
}

/* ---------------------------------------------------------------- drafting */

/* Prompt lookup: the continuation of the latest earlier occurrence of hist's last n-gram,
 * longest n first. */
static int32_t lookup(const herd_spec *s, const int32_t *hist, int32_t n_hist, int32_t max,
                      int32_t *draft)
{
    for (int32_t ng = s->p.lookup_ngram; ng >= s->p.lookup_min; ng--) {
        if (ng >= n_hist)
            continue;
        const int32_t *tail = hist + n_hist - ng;
        for (int32_t start = n_hist - ng - 1; start >= 0; start--) {
            if (memcmp(hist + start, tail, (size_t)ng * sizeof *hist) != 0)
                continue;
            int32_t from = start + ng, n = 0;
            while (n < max && from + n < n_hist) {
                draft[n] = hist[from + n];
                n++;
            }
            return n;
        }
    }
    return 0;
}

/* Feeds toks to the draft's sequence at pos onwards; the last one's logits to s->dlogits. */
static herd_status draft_feed(herd_spec *s, int32_t seq, const int32_t *toks, int32_t n,
                              int32_t pos)
{
    herd_status st = grow_batch(s, n);
    if (st != HERD_OK)
        return st;
    for (int32_t i = 0; i < n; i++) {
        s->btok[i] = toks[i];
        s->bpos[i] = pos + i;
        s->bseq[i] = seq;
        s->blog[i] = i == n - 1;
    }
    herd_batch b = {.n_tokens = n, .tokens = s->btok, .pos = s->bpos, .seq = s->bseq,
                    .logits = s->blog};
    return herd_decode(s->dctx, &b, s->dlogits);
}

/* The draft model proposes up to max tokens after hist. */
static herd_status draft_model(herd_spec *s, int32_t seq, herd_sampler *smp,
                               const int32_t *hist, int32_t n_hist, int32_t max)
{
    struct spec_seq *q = &s->seqs[seq];
    bool greedy = sampler_params(smp)->temperature <= 0.0f;
    if (!greedy && !q->q) {
        q->q = herd_malloc((size_t)s->p.draft_max * (size_t)s->n_vocab * sizeof(float));
        if (!q->q)
            return herd_fail(HERD_ERR_NOMEM, "speculative decoding: draft distributions");
    }
    /* Catch up: keep what the draft holds of hist, at most n_hist - 1 so at least one token
     * is fed and its logits are fresh. */
    int32_t keep = 0, lim = q->n_dtok < n_hist - 1 ? q->n_dtok : n_hist - 1;
    while (keep < lim && q->dtok[keep] == hist[keep])
        keep++;
    herd_status st = herd_seq_truncate(s->dctx, seq, keep);
    if (st != HERD_OK)
        return st;
    q->n_dtok = keep;
    if (n_hist + max > s->n_dctx) /* the draft's context may be shorter than the target's */
        max = s->n_dctx - n_hist;
    if (max <= 0)
        return HERD_OK;
    if ((st = draft_feed(s, seq, hist + keep, n_hist - keep, keep)))
        return st;
    memcpy(q->dtok + keep, hist + keep, (size_t)(n_hist - keep) * sizeof *hist);
    q->n_dtok = n_hist;
    for (int32_t i = 0; i < max; i++) {
        int32_t d;
        if (greedy) {
            if ((st = herd_sampler_sample(smp, s->dlogits, s->n_vocab, &d)))
                return st;
        } else {
            float *qi = q->q + (size_t)i * (size_t)s->n_vocab;
            if ((st = sampler_dist(smp, s->dlogits, s->n_vocab, false, qi)))
                return st;
            if ((d = draw(q->rng, qi, s->n_vocab)) < 0)
                return herd_fail(HERD_ERR_INTERNAL, "draft distribution is empty");
        }
        q->draft[q->n_draft++] = d;
        if (i == max - 1)
            break; /* the last draft is not fed: nothing reads what follows it */
        if ((st = draft_feed(s, seq, &d, 1, q->n_dtok)))
            return st;
        q->dtok[q->n_dtok++] = d;
    }
    return HERD_OK;
}

herd_status herd_spec_draft(herd_spec *s, int32_t seq, herd_sampler *smp, const int32_t *hist,
                            int32_t n_hist, int32_t max, int32_t *draft, int32_t *n_draft)
{
    *n_draft = 0;
    if (!s || !smp || !hist || seq < 0 || seq >= s->n_seq || n_hist < 1 || n_hist > s->n_ctx)
        return herd_fail(HERD_ERR_INVALID, "speculative draft: bad sequence %d or history of %d "
                         "tokens", seq, n_hist);
    if (herd_seq_len(s->target, seq) != n_hist - 1)
        return herd_fail(HERD_ERR_INVALID, "speculative draft: the target holds %d positions of "
                         "sequence %d, expected the history less its last token (%d)",
                         herd_seq_len(s->target, seq), seq, n_hist - 1);
    struct spec_seq *q = &s->seqs[seq];
    q->n_draft = 0;
    q->n_hist = n_hist;
    if (max > q->k)
        max = q->k;
    if (max > s->n_ctx - n_hist) /* positions n_hist - 1 + K must exist */
        max = s->n_ctx - n_hist;
    if (max <= 0)
        return HERD_OK;
    herd_status st;
    if (s->draft) {
        if ((st = draft_model(s, seq, smp, hist, n_hist, max))) {
            /* what the draft's cache holds is unknown now: start it over next time */
            q->n_draft = -1;
            q->n_dtok = 0;
            (void)herd_seq_truncate(s->dctx, seq, 0);
            return st;
        }
    } else {
        q->n_draft = lookup(s, hist, n_hist, max, q->draft);
    }
    memcpy(draft, q->draft, (size_t)q->n_draft * sizeof *draft);
    *n_draft = q->n_draft;
    return HERD_OK;
}

/* ---------------------------------------------------------------- verifying */

/* One row of the sampled case: whether d (drawn from qd, NULL for a lookup draft: q = 1 on
 * d) is kept; else the replacement in *t. p is s->pbuf, already p_i. */
static bool accept_sampled(herd_spec *s, struct spec_seq *q, const float *qd, int32_t d,
                           int32_t *t)
{
    float *p = s->pbuf;
    double qv = qd ? qd[d] : 1.0;
    if (herd_rng_uniform(q->rng) * qv < p[d])
        return true;
    if (!s->test_wrong) {
        /* the residual norm(max(0, p - q)) */
        if (qd) {
            for (int32_t v = 0; v < s->n_vocab; v++)
                p[v] = fmaxf(0.0f, p[v] - qd[v]);
        } else {
            p[d] = 0.0f;
        }
    }
    *t = draw(q->rng, p, s->n_vocab);
    return false;
}

herd_status herd_spec_verify(herd_spec *s, int32_t seq, herd_sampler *smp, const float *rows,
                             int32_t *out, int32_t *n_out)
{
    *n_out = 0;
    if (!s || !smp || !rows || seq < 0 || seq >= s->n_seq || s->seqs[seq].n_draft < 0)
        return herd_fail(HERD_ERR_INVALID, "speculative verify: no draft waits on sequence %d",
                         seq);
    struct spec_seq *q = &s->seqs[seq];
    int32_t nd = q->n_draft;
    q->n_draft = -1;
    bool greedy = sampler_params(smp)->temperature <= 0.0f;
    int32_t a = 0, t = -1;
    herd_status st;
    for (int32_t i = 0; i <= nd; i++) {
        const float *row = rows + (size_t)i * (size_t)s->n_vocab;
        if (greedy) {
            if ((st = herd_sampler_sample(smp, row, s->n_vocab, &t)))
                return st;
            if (i < nd && t == q->draft[i]) {
                herd_sampler_accept(smp, t);
                out[a++] = t;
                continue;
            }
            break;
        }
        if ((st = sampler_dist(smp, row, s->n_vocab, true, s->pbuf)))
            return st;
        if (i == nd) {
            t = draw(q->rng, s->pbuf, s->n_vocab);
            break;
        }
        const float *qd = s->draft ? q->q + (size_t)i * (size_t)s->n_vocab : NULL;
        if (accept_sampled(s, q, qd, q->draft[i], &t)) {
            herd_sampler_accept(smp, q->draft[i]);
            out[a++] = q->draft[i];
            continue;
        }
        break;
    }
    if (t < 0) { /* rounding left an empty residual: p itself (a probability-0 event) */
        if ((st = sampler_dist(smp, rows + (size_t)a * (size_t)s->n_vocab, s->n_vocab, true,
                               s->pbuf)))
            return st;
        t = draw(q->rng, s->pbuf, s->n_vocab);
        if (t < 0)
            return herd_fail(HERD_ERR_INTERNAL, "speculative verify: empty distribution");
    }
    herd_sampler_accept(smp, t);
    out[a] = t;
    *n_out = a + 1;
    /* Roll back: the target keeps hist and the kept drafts; t is fed next step. */
    if ((st = herd_seq_truncate(s->target, seq, q->n_hist + a)))
        return st;
    if (s->dctx && q->n_dtok > q->n_hist + a) {
        q->n_dtok = q->n_hist + a;
        if ((st = herd_seq_truncate(s->dctx, seq, q->n_dtok)))
            return st;
    }
    if (nd > 0) {
        if (a == nd)
            q->k = q->k + 2 < s->p.draft_max ? q->k + 2 : s->p.draft_max;
        else
            q->k = q->k - 1 > s->p.draft_min ? q->k - 1 : s->p.draft_min;
    }
    s->st.n_steps++;
    s->st.n_drafted += nd;
    s->st.n_accepted += a;
    s->st.n_tokens += a + 1;
    return HERD_OK;
}

herd_status herd_spec_step(herd_spec *s, int32_t seq, herd_sampler *smp, const int32_t *hist,
                           int32_t n_hist, int32_t max_out, int32_t *out, int32_t *n_out)
{
    *n_out = 0;
    if (max_out < 1)
        return herd_fail(HERD_ERR_INVALID, "speculative step: room for %d tokens", max_out);
    int32_t nd = 0;
    herd_status st = herd_spec_draft(s, seq, smp, hist, n_hist, max_out - 1, out, &nd);
    if (st != HERD_OK)
        return st;
    if (!s->rows) {
        s->rows = herd_malloc((size_t)(s->p.draft_max + 1) * (size_t)s->n_vocab * sizeof(float));
        if (!s->rows)
            return herd_fail(HERD_ERR_NOMEM, "speculative decoding: verify rows");
    }
    if ((st = grow_batch(s, nd + 1)))
        return st;
    for (int32_t i = 0; i <= nd; i++) {
        s->btok[i] = i == 0 ? hist[n_hist - 1] : out[i - 1];
        s->bpos[i] = n_hist - 1 + i;
        s->bseq[i] = seq;
        s->blog[i] = 1;
    }
    /* In calls of at most SPEC_VERIFY_ROWS rows: the CPU kernels give a row the same bits
     * as a one-row decode in batches that small (tests/unit/test_kernels.c), so greedy
     * output stays the target's own, token for token, whatever draft_max is. */
    for (int32_t i0 = 0; i0 <= nd; i0 += SPEC_VERIFY_ROWS) {
        int32_t n = nd + 1 - i0 < SPEC_VERIFY_ROWS ? nd + 1 - i0 : SPEC_VERIFY_ROWS;
        herd_batch b = {.n_tokens = n, .tokens = s->btok + i0, .pos = s->bpos + i0,
                        .seq = s->bseq + i0, .logits = s->blog + i0};
        if ((st = herd_decode(s->target, &b, s->rows + (size_t)i0 * (size_t)s->n_vocab))) {
            s->seqs[seq].n_draft = -1;
            return st;
        }
    }
    return herd_spec_verify(s, seq, smp, s->rows, out, n_out);
}
