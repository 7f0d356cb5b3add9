/*
 * sched.c - continuous batching: one thread owns the herd_context and runs the decode loop.
 *
 * The context holds n_slots sequences (seq id = slot index). Each step:
 *   1. admit queued requests into idle slots, choosing the slot whose cached tokens share
 *      the longest prefix with the new prompt (or copying that prefix from any slot with
 *      herd_seq_copy), so a shared system prompt or earlier turns are not recomputed;
 *   2. drop requests whose client went away (req->cancelled), freeing their slot;
 *   3. build ONE batch: the last sampled token of every decoding slot, then prefill chunks
 *      of admitted prompts up to n_batch tokens in all, and run herd_decode once;
 *   4. sample every slot that got logits, stream its text to the request, finish it on a
 *      stop token, stop string, max_tokens or a full context.
 * Invariant: slot->cache[0..n_cache) are exactly the tokens whose KV sequence slot->id
 * holds (herd_seq_len == n_cache), whether or not the slot serves a request. A slot keeps
 * its cache after a request ends; that is the prefix cache.
 *
 * Embeddings go through the same steps: an input is a prompt prefilled in a slot (from
 * position 0: mean pooling needs every token's row) whose tokens ask herd_decode_hidden for
 * their final hidden state instead of logits; the rows are summed in the slot and pooled
 * when the input ends. A request with several inputs runs them one slot each, and takes
 * idle slots for more while no other request waits for one.
 */
#include "server.h"

#include <math.h>  /* exp, log */
#include <stdio.h> /* snprintf */
#include <time.h>   /* nanosleep: the HERD_SERVER_TEST_STEP_MS test hook */

struct slot {
    int32_t id;
    struct srv_req *req;      /* NULL when idle */
    int32_t *cache;           /* (n_ctx) tokens in the KV of this sequence */
    int32_t n_cache;
    int32_t n_fed;            /* prompt tokens in the cache for req */
    int32_t next_tok;         /* sampled, not yet fed (decoding) */
    int32_t n_gen;
    int32_t max_gen;
    int32_t n_new;            /* tokens of this slot in the current batch */
    int32_t logit_row;        /* row of logits for this slot this step, -1 none */
    int32_t sampled;          /* this step's sampled id (-1: the sampler failed) */
    cJSON *sampled_lp;        /* its logprob entry, when asked for */
    herd_sampler *smp;
    herd_detok_stream *detok;
    int32_t n_draft;          /* speculative: drafts after next_tok in this batch, -1 none */
    bool spec_out;            /* on_sampled's token was accepted into smp by herd_spec */
    struct herd_buf held;     /* text withheld while it may be the start of a stop string */
    bool constrained;         /* json_object or a forced tool call: output must be JSON */
    struct srv_jsonc jc;      /* what the output so far is, as a JSON prefix */
    float *scratch;           /* (n_vocab) masked logits; made on first constrained use */
    int64_t text_off;         /* bytes of generated token text, for text_offset */
    int32_t input;            /* embeddings: the input being run */
    double *acc;              /* embeddings: (dim) sum of its pooled rows */
    int32_t n_pooled;         /* rows in acc */
    int32_t hid_row, n_hid;   /* this step's hidden rows of the slot */
    int32_t follow;           /* n > 1: the slot whose prefill of the same prompt this one
                               * waits for, to copy its KV and logits; -1 none */
    uint64_t last_used;
    double t_last;
};

struct srv_sched {
    const herd_model_info *info;
    const herd_tokenizer *tok;
    herd_context *ctx;
    struct srv_metrics *metrics;
    int32_t n_slots, n_ctx, n_batch, n_vocab, max_queue;
    struct slot *slots;
    int32_t *b_tok, *b_pos, *b_seq; /* (n_batch) */
    int8_t *b_logits;               /* (n_batch) */
    int8_t *b_hidden;               /* (n_batch) tokens whose hidden state is wanted */
    float *hidden;                  /* (n_batch, dim) those hidden states */
    int32_t dim;
    float *logits;                  /* (n_slots, n_vocab) */
    uint8_t *tok_class;             /* (n_vocab) SRV_TOK_*, for constrained decoding */
    struct srv_vocab_index *vocab;  /* the vocabulary by first byte, for the same */
    size_t longest_token;           /* bytes, for the HTTP side's early context refusal */
    struct herd_pool *pool;         /* samples slots in parallel after each forward */
    herd_spec *spec;                /* speculative decoding per slot, or NULL */
    int32_t draft_max;
    uint64_t tick;
    int32_t rr;                     /* rotating start of prefill, for fairness */
    int32_t test_step_ms;           /* herd_server_options.test_step_ms: sleep after each
                                     * step, so tests can hold a slot busy on a tiny model */

    pthread_t thread;
    bool started;
    pthread_mutex_t mu;             /* guards the queue, stopping, n_active */
    pthread_cond_t cv;
    struct srv_req **queue;         /* ring of max_queue */
    int32_t q_head, q_len;
    int32_t n_active;
    bool stopping;
};

/* ---------------------------------------------------------------- requests */

/* Hands text / a logprob entry to the HTTP side. */
static void req_emit(struct srv_req *r, const char *text, size_t n, cJSON *lp, int32_t n_gen)
{
    pthread_mutex_lock(srv_req_mu(r));
    if (n)
        buf_append(&r->text, text, n);
    if (lp) {
        if (!r->lp)
            r->lp = cJSON_CreateArray();
        if (r->lp)
            cJSON_AddItemToArray(r->lp, lp);
        else
            cJSON_Delete(lp);
    }
    r->n_completion = n_gen;
    pthread_cond_broadcast(srv_req_cv(r));
    pthread_mutex_unlock(srv_req_mu(r));
}

static void req_finish(struct srv_req *r, enum srv_finish f, const char *errmsg)
{
    pthread_mutex_lock(srv_req_mu(r));
    r->done = true;
    r->finish = f;
    if (errmsg)
        snprintf(r->errmsg, sizeof r->errmsg, "%s", errmsg);
    pthread_cond_broadcast(srv_req_cv(r));
    pthread_mutex_unlock(srv_req_mu(r));
}

/* ---------------------------------------------------------------- slots */

static int32_t common_prefix(const int32_t *a, int32_t na, const int32_t *b, int32_t nb)
{
    int32_t n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* Empties a slot's KV when the cache bookkeeping cannot be trusted (a failed decode). */
static void slot_forget(struct srv_sched *s, struct slot *sl)
{
    herd_seq_truncate(s->ctx, sl->id, 0);
    sl->n_cache = 0;
}

static void slot_release(struct srv_sched *s, struct slot *sl)
{
    struct srv_req *r = sl->req;
    herd_sampler_free(sl->smp);
    herd_detok_stream_free(sl->detok);
    sl->smp = NULL;
    sl->detok = NULL;
    buf_free(&sl->held);
    sl->req = NULL;
    sl->last_used = ++s->tick;
    srv_metrics_tokens(s->metrics, sl->n_fed, sl->n_gen, r ? r->n_cached : 0);
    srv_req_unref(r);
    pthread_mutex_lock(&s->mu);
    s->n_active--;
    pthread_mutex_unlock(&s->mu);
}

/* JSON output (response_format json_object, or a forced tool call whose opening is
 * already in the prompt and is shown as the first output). */
static bool slot_constrain(struct srv_sched *s, struct slot *sl, const struct srv_params *p)
{
    sl->constrained = p->json_object || p->force_prefix || p->schema;
    if (!sl->constrained)
        return true;
    if (!sl->scratch) {
        sl->scratch = herd_malloc((size_t)s->n_vocab * sizeof *sl->scratch);
        if (!sl->scratch) {
            herd_fail(HERD_ERR_NOMEM, "cannot allocate the constrained-decoding row");
            return false;
        }
    }
    srv_jsonc_init(&sl->jc);
    if (p->schema)
        srv_jsonc_schema(&sl->jc, p->schema);
    if (p->force_prefix) {
        size_t n = strlen(p->force_prefix);
        srv_jsonc_feed(&sl->jc, p->force_prefix, n);
        buf_append(&sl->held, p->force_prefix, n);
    }
    if (p->n_force_alts)
        srv_jsonc_expect(&sl->jc, p->force_alts, p->n_force_alts);
    return true;
}

/* Places r in an idle slot, reusing the longest cached prefix. Returns false (and finishes
 * r with an error) when its per-request state cannot be made. */
static struct slot *idle_lru(struct srv_sched *s);

/* The slot where r's leader (the first choice of the same prompt) is still prefilling. */
static struct slot *leader_prefilling(struct srv_sched *s, const struct srv_req *r)
{
    for (int32_t i = 0; r->leader && i < s->n_slots; i++) {
        struct slot *sl = &s->slots[i];
        if (sl->req == r->leader && sl->follow < 0 && sl->n_fed < sl->req->n_prompt)
            return sl;
    }
    return NULL;
}

static bool slot_assign(struct srv_sched *s, struct srv_req *r)
{
    struct slot *target = NULL;
    int32_t own = -1;
    struct slot *lead = leader_prefilling(s, r);
    for (int32_t i = 0; i < s->n_slots && !lead; i++) {
        struct slot *sl = &s->slots[i];
        if (sl->req)
            continue;
        int32_t l = common_prefix(sl->cache, sl->n_cache, r->prompt, r->n_prompt);
        if (!target || l > own || (l == own && sl->last_used < target->last_used)) {
            target = sl;
            own = l;
        }
    }
    struct slot *donor = NULL;
    int32_t best = own;
    if (lead) { /* no prefill of its own: the leader's is copied when it ends (step) */
        target = idle_lru(s);
        own = 0;
    }
    for (int32_t i = 0; i < s->n_slots && !lead; i++) {
        struct slot *sl = &s->slots[i];
        int32_t l = sl == target ? -1 : common_prefix(sl->cache, sl->n_cache, r->prompt,
                                                      r->n_prompt);
        if (l > best) {
            donor = sl;
            best = l;
        }
    }
    /* at least the last prompt token is fed again, so its logits exist */
    int32_t keep = (donor ? best : own);
    if (keep > r->n_prompt - 1)
        keep = r->n_prompt - 1;
    target->follow = lead ? lead->id : -1;
    if (lead) {
        keep = 0;
        slot_forget(s, target);
    } else if (donor) {
        herd_seq_truncate(s->ctx, target->id, 0);
        if (keep > 0 && herd_seq_copy(s->ctx, target->id, donor->id, keep) != HERD_OK) {
            herd_log(HERD_LOG_WARN, "server: prefix copy failed (%s); recomputing",
                     herd_last_error());
            keep = 0;
            herd_seq_truncate(s->ctx, target->id, 0);
        }
        memcpy(target->cache, donor->cache, (size_t)keep * sizeof *target->cache);
    } else if (herd_seq_truncate(s->ctx, target->id, keep) != HERD_OK) {
        keep = 0;
        herd_seq_truncate(s->ctx, target->id, 0);
    }
    target->n_cache = keep;
    target->n_fed = keep;
    target->n_gen = 0;
    target->text_off = r->text_base;
    target->max_gen = r->p.max_tokens > 0 ? r->p.max_tokens : s->n_ctx - r->n_prompt;
    buf_init(&target->held, 0);
    r->n_cached = keep;
    if (!slot_constrain(s, target, &r->p)) {
        req_finish(r, SRV_FINISH_ERROR, herd_last_error());
        srv_req_unref(r);
        return false;
    }
    if (srv_sampler_new(&r->p, s->info, &target->smp) != HERD_OK ||
        herd_detok_stream_new(s->tok, &target->detok) != HERD_OK) {
        req_finish(r, SRV_FINISH_ERROR, herd_last_error());
        herd_sampler_free(target->smp);
        target->smp = NULL;
        srv_req_unref(r);
        return false;
    }
    herd_spec_seq_reset(s->spec, target->id, r->p.has_seed ? r->p.seed : s->tick);
    target->req = r;
    pthread_mutex_lock(&s->mu);
    s->n_active++;
    pthread_mutex_unlock(&s->mu);
    return true;
}

/* The tokens a slot feeds: its request's prompt, or an embedding request's current input. */
static const int32_t *slot_prompt(const struct slot *sl, int32_t *n)
{
    const struct srv_req *r = sl->req;
    if (r->p.kind != SRV_EMBED) {
        *n = r->n_prompt;
        return r->prompt;
    }
    *n = r->in_off[sl->input + 1] - r->in_off[sl->input];
    return r->prompt + r->in_off[sl->input];
}

/* The idle slot used longest ago (embeddings need no prefix: keep the recent caches). */
static struct slot *idle_lru(struct srv_sched *s)
{
    struct slot *best = NULL;
    for (int32_t i = 0; i < s->n_slots; i++) {
        struct slot *sl = &s->slots[i];
        if (!sl->req && (!best || sl->last_used < best->last_used))
            best = sl;
    }
    return best;
}

/* Starts r's next input in sl, from position 0. */
static void embed_start(struct srv_sched *s, struct slot *sl, struct srv_req *r)
{
    sl->input = r->next_input++;
    slot_forget(s, sl);
    sl->n_fed = 0;
    sl->n_gen = 0;
    sl->n_pooled = 0;
    memset(sl->acc, 0, (size_t)s->dim * sizeof *sl->acc);
}

/* Gives sl (idle) to r, which holds one more reference for it. */
static void embed_take(struct srv_sched *s, struct slot *sl, struct srv_req *r)
{
    sl->req = r;
    sl->follow = -1;
    pthread_mutex_lock(&s->mu);
    s->n_active++;
    pthread_mutex_unlock(&s->mu);
    embed_start(s, sl, r);
}

/* While no request waits for a slot, idle slots take more inputs of running embedding
 * requests, so one request's inputs run side by side. */
static void embed_spread(struct srv_sched *s)
{
    pthread_mutex_lock(&s->mu);
    bool waiting = s->q_len > 0;
    pthread_mutex_unlock(&s->mu);
    for (int32_t i = 0; i < s->n_slots && !waiting; i++) {
        struct srv_req *r = s->slots[i].req;
        struct slot *idle;
        while (r && r->p.kind == SRV_EMBED && r->next_input < r->n_inputs &&
               (idle = idle_lru(s))) {
            atomic_fetch_add(&r->refs, 1);
            embed_take(s, idle, r);
        }
    }
}

/* After a step: adds the slot's hidden rows to its sum; when its input is complete, pools
 * it into the request and goes on with the next input, or lets the slot go (to a waiting
 * request first, unless this is the request's last slot). */
static void embed_step(struct srv_sched *s, struct slot *sl)
{
    struct srv_req *r = sl->req;
    for (int32_t k = 0; k < sl->n_hid; k++) {
        const float *h = s->hidden + (size_t)(sl->hid_row + k) * (size_t)s->dim;
        for (int32_t d = 0; d < s->dim; d++)
            sl->acc[d] += h[d];
    }
    sl->n_pooled += sl->n_hid;
    int32_t n = 0;
    slot_prompt(sl, &n);
    if (sl->n_fed < n)
        return;
    srv_embed_finish(sl->acc, sl->n_pooled, s->dim, r->embd + (size_t)sl->input * s->dim);
    if (++r->n_embd_done == r->n_inputs) {
        req_finish(r, SRV_FINISH_STOP, NULL);
        slot_release(s, sl);
        return;
    }
    int32_t mine = 0;
    for (int32_t i = 0; i < s->n_slots; i++)
        mine += s->slots[i].req == r;
    pthread_mutex_lock(&s->mu);
    bool waiting = s->q_len > 0;
    pthread_mutex_unlock(&s->mu);
    if (r->next_input < r->n_inputs && (!waiting || mine == 1))
        embed_start(s, sl, r);
    else
        slot_release(s, sl);
}

/* ---------------------------------------------------------------- one token */

/* logprob of the chosen id and the top alternatives, from the raw logits row. */
static cJSON *logprob_entry(struct srv_sched *s, struct slot *sl, const float *row, int32_t id)
{
    float mx = row[0];
    for (int32_t i = 1; i < s->n_vocab; i++)
        mx = row[i] > mx ? row[i] : mx;
    double sum = 0;
    for (int32_t i = 0; i < s->n_vocab; i++)
        sum += exp((double)row[i] - mx);
    float lse = mx + (float)log(sum);
    int k = sl->req->p.top_logprobs;
    int32_t top[SRV_MAX_TOP_LOGPROBS];
    int n = 0;
    for (int32_t i = 0; i < s->n_vocab && k > 0; i++) {
        if (n == k && row[i] <= row[top[n - 1]])
            continue;
        int j = n < k ? n++ : k - 1;
        while (j > 0 && row[top[j - 1]] < row[i]) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = i;
    }
    float lps[SRV_MAX_TOP_LOGPROBS];
    const char *bytes[SRV_MAX_TOP_LOGPROBS];
    size_t lens[SRV_MAX_TOP_LOGPROBS];
    for (int i = 0; i < n; i++) {
        lps[i] = row[top[i]] - lse;
        bytes[i] = herd_token_bytes(s->tok, top[i], &lens[i]);
        if (!bytes[i]) {
            bytes[i] = "";
            lens[i] = 0;
        }
    }
    size_t len = 0;
    const char *b = herd_token_bytes(s->tok, id, &len);
    if (!b) {
        b = "";
        len = 0;
    }
    cJSON *e = srv_logprob_entry(b, len, row[id] - lse, lps, bytes, lens, n, sl->text_off);
    sl->text_off += (int64_t)len;
    return e;
}

/* Passes on what of held cannot start a stop string; true when a stop string matched. */
static bool release_text(struct slot *sl, cJSON *lp, bool final)
{
    struct srv_req *r = sl->req;
    size_t safe = 0;
    long at = srv_stop_scan(sl->held.data ? sl->held.data : "", sl->held.len, r->p.stop,
                            r->p.n_stop, &safe);
    if (final && at < 0)
        safe = sl->held.len;
    req_emit(r, sl->held.data, safe, lp, sl->n_gen);
    if (at >= 0) {
        sl->held.len = 0;
        return true;
    }
    memmove(sl->held.data, sl->held.data + safe, sl->held.len - safe);
    sl->held.len -= safe;
    if (sl->held.data)
        sl->held.data[sl->held.len] = '\0';
    return false;
}

static void finish_slot(struct srv_sched *s, struct slot *sl, enum srv_finish f)
{
    req_finish(sl->req, f, NULL);
    slot_release(s, sl);
}

/* Samples every slot that got logits, spread over the pool: samplers are per slot and the
 * tokenizer is read-only, and after the forward pass the cores are otherwise idle (with
 * Llama 3's 128k vocabulary, sampling one row costs about as much as a tiny model's step). */
static void sample_rows(void *arg, int ith, int nth)
{
    struct srv_sched *s = arg;
    for (int32_t i = ith; i < s->n_slots; i += nth) {
        struct slot *sl = &s->slots[i];
        if (!sl->req || sl->logit_row < 0 || sl->n_draft >= 0)
            continue;
        const float *row = s->logits + (size_t)sl->logit_row * (size_t)s->n_vocab;
        int32_t id = -1;
        if (sl->constrained) {
            /* tokens that may follow this one, by max_tokens and by the context */
            int32_t budget = sl->max_gen - sl->n_gen - 1;
            if (budget > s->n_ctx - sl->n_cache - 1)
                budget = s->n_ctx - sl->n_cache - 1;
            id = srv_sample_json(sl->smp, s->tok, s->tok_class, s->vocab, row, sl->scratch,
                                 s->n_vocab, &sl->jc, budget);
        } else if (herd_sampler_sample(sl->smp, row, s->n_vocab, &id) != HERD_OK) {
            id = -1;
        }
        sl->sampled = id;
        sl->sampled_lp = id >= 0 && sl->req->p.logprobs ? logprob_entry(s, sl, row, id) : NULL;
    }
}

static void on_sampled(struct srv_sched *s, struct slot *sl)
{
    struct srv_req *r = sl->req;
    double now = herd_time_s();
    int32_t id = sl->sampled;
    cJSON *lp = sl->sampled_lp;
    sl->sampled_lp = NULL;
    if (id < 0) {
        req_finish(r, SRV_FINISH_ERROR, "sampling failed");
        slot_release(s, sl);
        return;
    }
    if (!sl->spec_out)
        herd_sampler_accept(sl->smp, id);
    sl->n_gen++;
    if (sl->n_gen == 1)
        srv_metrics_ttft(s->metrics, now - r->t_arrival);
    else
        srv_metrics_token_latency(s->metrics, now - sl->t_last);
    sl->t_last = now;

    bool stop_tok = srv_is_stop_token(s->tok, s->info, id);
    if (stop_tok && lp) {
        cJSON_Delete(lp); /* the end-of-turn marker is not part of the answer */
        lp = NULL;
    }
    bool length = !stop_tok && (sl->n_gen >= sl->max_gen || sl->n_cache >= s->n_ctx);
    /* a complete JSON answer ends the turn; nothing but blanks could follow it */
    bool json_done = !stop_tok && sl->constrained && srv_jsonc_done(&sl->jc);
    if (json_done)
        length = false;
    char piece[1024]; /* a token's bytes plus a held partial UTF-8 sequence; tokens are short */
    size_t n = 0;
    if (!stop_tok && herd_detok_stream_push(sl->detok, id, piece, sizeof piece, &n) == HERD_OK)
        buf_append(&sl->held, piece, n);
    if (stop_tok || length || json_done) {
        /* what the stream still holds (a cut UTF-8 sequence) comes out as U+FFFD */
        if (herd_detok_stream_push(sl->detok, -1, piece, sizeof piece, &n) == HERD_OK)
            buf_append(&sl->held, piece, n);
    }
    if (release_text(sl, lp, stop_tok || length || json_done)) {
        finish_slot(s, sl, SRV_FINISH_STOP);
        return;
    }
    if (stop_tok || length || json_done) {
        finish_slot(s, sl, length ? SRV_FINISH_LENGTH : SRV_FINISH_STOP);
        return;
    }
    sl->next_tok = id;
}

/* ---------------------------------------------------------------- speculative decoding */

static void add_token(struct srv_sched *s, int32_t *n, struct slot *sl, int32_t tok,
                      bool want_logits);

/* After a decoding slot's token: its drafts (herd_spec_draft on the slot's cache plus that
 * token), each with logits, so the one forward scores them all. Not for logprobs or
 * constrained output, which read their rows token by token; room leaves one batch place
 * for each slot after this one. */
static void spec_add_drafts(struct srv_sched *s, int32_t *n, int32_t *rows, struct slot *sl,
                            int32_t i)
{
    sl->n_draft = -1;
    if (!s->spec || sl->constrained || sl->req->p.logprobs || sl->n_cache + 1 >= s->n_ctx)
        return;
    int32_t max = s->n_batch - *n - (s->n_slots - 1 - i);
    if (max > sl->max_gen - sl->n_gen - 1)
        max = sl->max_gen - sl->n_gen - 1;
    int32_t draft[64], nd = 0;
    sl->cache[sl->n_cache] = sl->next_tok; /* the history: the cache and the pending token */
    if (max > 0 && herd_spec_draft(s->spec, sl->id, sl->smp, sl->cache, sl->n_cache + 1,
                                   max < 64 ? max : 64, draft, &nd) != HERD_OK) {
        herd_log(HERD_LOG_WARN, "server: draft failed (%s); decoding without", herd_last_error());
        return;
    }
    for (int32_t j = 0; j < nd; j++)
        add_token(s, n, sl, draft[j], true);
    *rows += nd;
    sl->n_draft = max > 0 ? nd : -1;
}

/* Verifies a slot's drafts on its rows and hands each kept token and the target's own to
 * on_sampled in order; the cache gets the kept drafts, and the KV cache is cut back to the
 * cache when the request ends part way. */
static void spec_verify_slot(struct srv_sched *s, struct slot *sl)
{
    int32_t out[65], n_out = 0;
    const float *rows = s->logits + (size_t)sl->logit_row * (size_t)s->n_vocab;
    sl->n_draft = -1;
    if (herd_spec_verify(s->spec, sl->id, sl->smp, rows, out, &n_out) != HERD_OK) {
        herd_seq_truncate(s->ctx, sl->id, sl->n_cache);
        sl->sampled = -1;
        on_sampled(s, sl);
        return;
    }
    herd_log(HERD_LOG_DEBUG, "server: slot %d kept %d drafted tokens", (int)sl->id,
             (int)n_out - 1);
    sl->spec_out = true;
    for (int32_t j = 0; j < n_out && sl->req; j++) {
        if (j > 0)
            sl->cache[sl->n_cache++] = out[j - 1]; /* a kept draft: in the KV cache */
        sl->sampled = out[j];
        sl->sampled_lp = NULL;
        on_sampled(s, sl);
    }
    sl->spec_out = false;
    herd_seq_truncate(s->ctx, sl->id, sl->n_cache);
}

/* ---------------------------------------------------------------- the loop */

static void add_token(struct srv_sched *s, int32_t *n, struct slot *sl, int32_t tok,
                      bool want_logits)
{
    s->b_tok[*n] = tok;
    s->b_pos[*n] = sl->n_cache + sl->n_new;
    s->b_seq[*n] = sl->id;
    s->b_logits[*n] = want_logits ? 1 : 0;
    s->b_hidden[*n] = 0;
    sl->n_new++;
    (*n)++;
}

/* Builds the batch: decode tokens first, then prefill chunks. Returns its size. */
static int32_t build_batch(struct srv_sched *s, int32_t *rows)
{
    int32_t n = 0;
    *rows = 0;
    for (int32_t i = 0; i < s->n_slots; i++) {
        struct slot *sl = &s->slots[i];
        sl->n_new = 0;
        sl->logit_row = -1;
        sl->n_draft = -1;
        if (sl->req && atomic_load(&sl->req->cancelled)) {
            finish_slot(s, sl, SRV_FINISH_ERROR); /* the HTTP side counted it */
            continue;
        }
        if (sl->req && sl->req->p.kind != SRV_EMBED && sl->n_fed == sl->req->n_prompt) {
            add_token(s, &n, sl, sl->next_tok, true);
            sl->logit_row = (*rows)++;
            spec_add_drafts(s, &n, rows, sl, i);
        }
    }
    int32_t n_hidden = 0;
    for (int32_t k = 0; k < s->n_slots && n < s->n_batch; k++) {
        struct slot *sl = &s->slots[(s->rr + k) % s->n_slots];
        struct srv_req *r = sl->req;
        int32_t n_p = 0;
        const int32_t *pr = r ? slot_prompt(sl, &n_p) : NULL;
        if (!r || sl->n_fed == n_p || sl->follow >= 0)
            continue;
        int32_t chunk = n_p - sl->n_fed;
        if (chunk > s->n_batch - n)
            chunk = s->n_batch - n;
        bool embed = r->p.kind == SRV_EMBED, mean = r->p.pooling == SRV_POOL_MEAN;
        sl->hid_row = n_hidden;
        for (int32_t j = 0; j < chunk; j++) {
            bool last = sl->n_fed + j == n_p - 1;
            add_token(s, &n, sl, pr[sl->n_fed + j], !embed && last);
            s->b_hidden[n - 1] = embed && (mean || last);
            n_hidden += s->b_hidden[n - 1];
        }
        sl->n_hid = n_hidden - sl->hid_row;
        if (!embed && sl->n_fed + chunk == n_p)
            sl->logit_row = (*rows)++;
    }
    s->rr = (s->rr + 1) % s->n_slots;
    return n;
}

/* Choices waiting for their leader's prefill: once it is in (this step), they copy its KV
 * and its logits row and are sampled in this same step; the prompt is computed once. When
 * the leader is gone (failed, cancelled) the follower prefills on its own. */
static void follow_leaders(struct srv_sched *s, int32_t *rows)
{
    for (int32_t i = 0; i < s->n_slots; i++) {
        struct slot *sl = &s->slots[i];
        if (!sl->req || sl->follow < 0)
            continue;
        struct slot *lead = &s->slots[sl->follow];
        struct srv_req *r = sl->req;
        if (lead->req != r->leader || lead->follow >= 0) {
            sl->follow = -1;
            continue;
        }
        if (lead->n_fed < r->n_prompt || lead->logit_row < 0)
            continue;
        sl->follow = -1;
        if (herd_seq_copy(s->ctx, sl->id, lead->id, r->n_prompt) != HERD_OK) {
            herd_log(HERD_LOG_WARN, "server: choice copy failed (%s); recomputing",
                     herd_last_error());
            slot_forget(s, sl);
            continue;
        }
        memcpy(sl->cache, r->prompt, (size_t)r->n_prompt * sizeof *sl->cache);
        sl->n_cache = sl->n_fed = r->n_prompt;
        r->n_cached = r->n_prompt;
        sl->logit_row = (*rows)++;
        memcpy(s->logits + (size_t)sl->logit_row * (size_t)s->n_vocab,
               s->logits + (size_t)lead->logit_row * (size_t)s->n_vocab,
               (size_t)s->n_vocab * sizeof *s->logits);
    }
}

static void step(struct srv_sched *s)
{
    int32_t rows = 0;
    int32_t n = build_batch(s, &rows);
    if (n == 0)
        return;
    herd_batch b = {n, s->b_tok, s->b_pos, s->b_seq, s->b_logits};
    herd_status st = herd_decode_hidden(s->ctx, &b, s->logits, s->b_hidden, s->hidden);
    for (int32_t i = 0; i < s->n_slots; i++) {
        struct slot *sl = &s->slots[i];
        if (!sl->n_new)
            continue;
        if (st != HERD_OK) {
            req_finish(sl->req, SRV_FINISH_ERROR, herd_last_error());
            slot_release(s, sl);
            slot_forget(s, sl);
            continue;
        }
        int32_t n_p = 0;
        const int32_t *pr = slot_prompt(sl, &n_p);
        if (sl->n_fed == n_p) { /* decoding */
            sl->cache[sl->n_cache++] = sl->next_tok;
        } else {
            memcpy(sl->cache + sl->n_cache, pr + sl->n_fed,
                   (size_t)sl->n_new * sizeof *sl->cache);
            sl->n_cache += sl->n_new;
            sl->n_fed += sl->n_new;
            if (sl->req->p.kind == SRV_EMBED)
                embed_step(s, sl);
        }
    }
    if (st != HERD_OK) {
        herd_log(HERD_LOG_ERROR, "server: decode failed: %s", herd_last_error());
        return;
    }
    follow_leaders(s, &rows);
    herd_pool_run(s->pool, sample_rows, s);
    for (int32_t i = 0; i < s->n_slots; i++) {
        struct slot *sl = &s->slots[i];
        if (sl->req && sl->logit_row >= 0 && sl->n_draft >= 0)
            spec_verify_slot(s, sl);
        else if (sl->req && sl->logit_row >= 0)
            on_sampled(s, sl);
    }
}

static void *sched_main(void *arg)
{
    struct srv_sched *s = arg;
    struct srv_req *admit[256];
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stopping && s->q_len == 0 && s->n_active == 0)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stopping) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        int32_t n_admit = 0;
        int32_t free_slots = s->n_slots - s->n_active;
        while (s->q_len > 0 && n_admit < free_slots && n_admit < 256) {
            admit[n_admit++] = s->queue[s->q_head];
            s->q_head = (s->q_head + 1) % s->max_queue;
            s->q_len--;
        }
        pthread_mutex_unlock(&s->mu);
        for (int32_t i = 0; i < n_admit; i++) {
            if (atomic_load(&admit[i]->cancelled)) {
                req_finish(admit[i], SRV_FINISH_ERROR, "cancelled");
                srv_req_unref(admit[i]);
                continue;
            }
            if (admit[i]->p.kind == SRV_EMBED)
                embed_take(s, idle_lru(s), admit[i]);
            else
                slot_assign(s, admit[i]);
        }
        embed_spread(s);
        int32_t active = 0, queued = 0;
        srv_sched_load(s, &active, &queued);
        srv_metrics_gauges(s->metrics, queued, active);
        step(s);
        if (s->test_step_ms > 0)
            nanosleep(&(struct timespec){s->test_step_ms / 1000,
                                         (long)(s->test_step_ms % 1000) * 1000000L},
                      NULL);
    }
    return NULL;
}

/* ---------------------------------------------------------------- public */

/* Speculative decoding for every slot (herd_server_options.draft / lookup). */
static herd_status sched_spec_new(struct srv_sched *s, const struct srv_sched_params *sp)
{
    herd_spec_params p = herd_spec_default_params();
    if (sp->draft_max > 0)
        p.draft_max = sp->draft_max;
    if (sp->draft_min > 0)
        p.draft_min = sp->draft_min;
    if (!sp->draft && sp->lookup > 0) {
        p.lookup_ngram = sp->lookup;
        if (p.lookup_min > p.lookup_ngram)
            p.lookup_min = p.lookup_ngram;
    }
    p.n_threads = sp->n_threads;
    s->draft_max = p.draft_max;
    return herd_spec_new(s->ctx, sp->draft, &p, &s->spec);
}

herd_status srv_sched_new(const herd_model *m, const struct srv_sched_params *sp,
                          struct srv_metrics *metrics, struct srv_sched **out)
{
    *out = NULL;
    struct srv_sched *s = herd_calloc(1, sizeof *s);
    if (!s)
        return herd_fail(HERD_ERR_NOMEM, "cannot allocate the scheduler");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->info = herd_model_get_info(m);
    s->tok = herd_model_tokenizer(m);
    s->test_step_ms = sp->test_step_ms > 0 ? sp->test_step_ms : 0;
    s->metrics = metrics;
    s->n_slots = sp->n_slots > 0 ? sp->n_slots : 1;
    s->n_batch = sp->n_batch > 0 ? sp->n_batch : 512;
    if (s->n_batch < s->n_slots)
        s->n_batch = s->n_slots; /* every decoding slot needs its token in each step */
    s->max_queue = sp->max_queue > 0 ? sp->max_queue : 256;
    s->n_vocab = s->info->n_vocab;
    s->dim = s->info->dim;
    herd_status st = HERD_OK;
    if (!s->tok) {
        st = herd_fail(HERD_ERR_INVALID, "the model has no tokenizer; the server needs one");
        goto fail;
    }
    herd_context_params cp = herd_context_default_params();
    cp.n_ctx = sp->n_ctx;
    cp.n_seq = s->n_slots;
    cp.n_batch = s->n_batch;
    cp.n_threads = sp->n_threads;
    cp.kv_type = sp->kv_type;
    st = herd_context_new(m, &cp, &s->ctx);
    if (st != HERD_OK)
        goto fail;
    s->n_ctx = herd_context_n_ctx(s->ctx);
    s->slots = herd_calloc((size_t)s->n_slots, sizeof *s->slots);
    s->b_tok = herd_calloc((size_t)s->n_batch, sizeof *s->b_tok);
    s->b_pos = herd_calloc((size_t)s->n_batch, sizeof *s->b_pos);
    s->b_seq = herd_calloc((size_t)s->n_batch, sizeof *s->b_seq);
    s->b_logits = herd_calloc((size_t)s->n_batch, sizeof *s->b_logits);
    s->b_hidden = herd_calloc((size_t)s->n_batch, sizeof *s->b_hidden);
    s->hidden = herd_calloc((size_t)s->n_batch * (size_t)s->dim, sizeof *s->hidden);
    if ((sp->draft || sp->lookup > 0) && (st = sched_spec_new(s, sp)) != HERD_OK)
        goto fail;
    /* with drafts a slot has up to 1 + draft_max rows */
    s->logits = herd_calloc((size_t)s->n_slots * (size_t)(1 + s->draft_max) * (size_t)s->n_vocab,
                            sizeof *s->logits);
    s->queue = herd_calloc((size_t)s->max_queue, sizeof *s->queue);
    if (!s->slots || !s->b_tok || !s->b_pos || !s->b_seq || !s->b_logits || !s->logits ||
        !s->queue || !s->b_hidden || !s->hidden) {
        st = herd_fail(HERD_ERR_NOMEM, "cannot allocate the scheduler's buffers");
        goto fail;
    }
    for (int32_t i = 0; i < s->n_slots; i++) {
        s->slots[i].id = i;
        s->slots[i].follow = -1;
        s->slots[i].cache = herd_calloc((size_t)s->n_ctx, sizeof(int32_t));
        s->slots[i].acc = herd_calloc((size_t)s->dim, sizeof(double));
        if (!s->slots[i].cache || !s->slots[i].acc) {
            st = herd_fail(HERD_ERR_NOMEM, "cannot allocate slot caches");
            goto fail;
        }
    }
    st = srv_token_classes(s->tok, s->info, &s->tok_class);
    if (st != HERD_OK)
        goto fail;
    st = srv_vocab_index_new(s->tok, s->tok_class, s->n_vocab, &s->vocab);
    if (st != HERD_OK)
        goto fail;
    s->longest_token = s->tok ? herd_tokenizer_max_token_bytes(s->tok) : 1;
    int n_pool = herd_n_threads(sp->n_threads);
    st = herd_pool_new(n_pool < s->n_slots ? n_pool : s->n_slots, &s->pool);
    if (st != HERD_OK)
        goto fail;
    if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
        st = herd_fail(HERD_ERR_INTERNAL, "cannot start the scheduler thread");
        goto fail;
    }
    s->started = true;
    *out = s;
    return HERD_OK;
fail:
    srv_sched_free(s);
    return st;
}

void srv_sched_stop(struct srv_sched *s)
{
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->started)
        pthread_join(s->thread, NULL);
    s->started = false;
    for (int32_t i = 0; s->queue && i < s->q_len; i++) {
        struct srv_req *r = s->queue[(s->q_head + i) % s->max_queue];
        req_finish(r, SRV_FINISH_ERROR, "the server is shutting down");
        srv_req_unref(r);
    }
    s->q_len = 0;
    for (int32_t i = 0; s->slots && i < s->n_slots; i++) {
        struct slot *sl = &s->slots[i];
        if (sl->req) {
            req_finish(sl->req, SRV_FINISH_ERROR, "the server is shutting down");
            slot_release(s, sl);
        }
    }
}

void srv_sched_free(struct srv_sched *s)
{
    if (!s)
        return;
    srv_sched_stop(s);
    for (int32_t i = 0; s->slots && i < s->n_slots; i++) {
        herd_free(s->slots[i].cache);
        herd_free(s->slots[i].scratch);
        herd_free(s->slots[i].acc);
    }
    herd_free(s->tok_class);
    srv_vocab_index_free(s->vocab);
    herd_spec_free(s->spec);
    herd_context_free(s->ctx);
    herd_pool_free(s->pool);
    herd_free(s->slots);
    herd_free(s->b_tok);
    herd_free(s->b_pos);
    herd_free(s->b_seq);
    herd_free(s->b_logits);
    herd_free(s->b_hidden);
    herd_free(s->hidden);
    herd_free(s->logits);
    herd_free(s->queue);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    herd_free(s);
}

int32_t srv_sched_n_ctx(const struct srv_sched *s)
{
    return s->n_ctx;
}

int64_t srv_sched_kv_bytes(const struct srv_sched *s)
{
    return herd_context_kv_bytes(s->ctx);
}

const herd_tokenizer *srv_sched_tokenizer(const struct srv_sched *s)
{
    return s->tok;
}

const herd_model_info *srv_sched_info(const struct srv_sched *s)
{
    return s->info;
}

size_t srv_sched_longest_token(const struct srv_sched *s)
{
    return s->longest_token;
}

bool srv_sched_submit(struct srv_sched *s, struct srv_req *r)
{
    return srv_sched_submit_n(s, &r, 1);
}

bool srv_sched_submit_n(struct srv_sched *s, struct srv_req *const *r, int32_t n)
{
    pthread_mutex_lock(&s->mu);
    bool ok = !s->stopping && s->q_len + n <= s->max_queue;
    for (int32_t i = 0; ok && i < n; i++) {
        atomic_fetch_add(&r[i]->refs, 1);
        s->queue[(s->q_head + s->q_len) % s->max_queue] = r[i];
        s->q_len++;
    }
    if (ok)
        pthread_cond_signal(&s->cv);
    int32_t queued = s->q_len, active = s->n_active;
    pthread_mutex_unlock(&s->mu);
    srv_metrics_gauges(s->metrics, queued, active);
    return ok;
}

void srv_sched_load(struct srv_sched *s, int32_t *active, int32_t *queued)
{
    pthread_mutex_lock(&s->mu);
    *active = s->n_active;
    *queued = s->q_len;
    pthread_mutex_unlock(&s->mu);
}
