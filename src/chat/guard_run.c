/*
 * guard_run.c - herd_guard_classify: a Llama Guard model's verdict on a conversation.
 *
 * The prompt (guard.c) is decoded on sequence 0 of the caller's context, cleared first, and
 * the answer generated greedily: "safe" or "unsafe\nS1,S10" is a handful of tokens, so
 * max_tokens (default 10) only bounds a model that does not stop. Greedy because Meta's
 * reference use of the classifier is argmax decoding (its model card scores the first
 * token's probability); sampling would make the same conversation flip between verdicts.
 * The context belongs to the caller, which is what lets a server keep one guard context
 * and serialize the checks that use it.
 */
#include "chat.h"

#define GUARD_MAX_TOKENS 10 /* "unsafe\nS1,S2,S3" is about 8 Llama 3 tokens */

static bool is_end(const herd_tokenizer *tok, const herd_model_info *info, int32_t id)
{
    if (herd_chat_stop_kind(tok, id) != HERD_CHAT_STOP_NONE)
        return true;
    for (int32_t i = 0; i < info->n_eos; i++)
        if (info->eos_ids[i] == id)
            return true;
    return false;
}

static int32_t argmax(const float *row, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (row[i] > row[best])
            best = i;
    return best;
}

/* Feeds ids to sequence 0 at positions pos.., the last one's logits into row. */
static herd_status feed(herd_context *ctx, const int32_t *ids, size_t n, int32_t pos,
                        float *row)
{
    int32_t *p = herd_malloc(n * sizeof *p);
    int32_t *seq = herd_calloc(n, sizeof *seq);
    int8_t *want = herd_calloc(n, 1);
    herd_status s = HERD_OK;
    if (!p || !seq || !want) {
        s = herd_fail(HERD_ERR_NOMEM, "guard: out of memory for a batch of %zu", n);
    } else {
        for (size_t i = 0; i < n; i++)
            p[i] = pos + (int32_t)i;
        want[n - 1] = 1;
        herd_batch b = {.n_tokens = (int32_t)n, .tokens = ids, .pos = p, .seq = seq,
                        .logits = want};
        s = herd_decode(ctx, &b, row);
    }
    herd_free(p);
    herd_free(seq);
    herd_free(want);
    return s;
}

herd_status herd_guard_classify(const herd_model *m, herd_context *ctx, const char *request,
                                size_t len, const herd_guard_options *o,
                                herd_guard_result **out)
{
    if (!out)
        return herd_fail(HERD_ERR_INVALID, "herd_guard_classify: no out pointer");
    *out = NULL;
    if (!m || !ctx)
        return herd_fail(HERD_ERR_INVALID, "herd_guard_classify: no model or context");
    herd_guard_options def = herd_guard_default_options();
    if (!o)
        o = &def;
    const herd_tokenizer *tok = herd_model_tokenizer(m);
    const herd_model_info *info = herd_model_get_info(m);
    if (!tok)
        return herd_fail(HERD_ERR_INVALID, "guard: the guard model has no tokenizer");
    int32_t max_new = o->max_tokens > 0 ? o->max_tokens : GUARD_MAX_TOKENS;
    int32_t n_ctx = herd_context_n_ctx(ctx);
    int32_t *ids = NULL, gen[64];
    size_t n = 0;
    float *row = NULL;
    char *text = NULL;
    size_t text_len = 0;
    if (max_new > (int32_t)(sizeof gen / sizeof gen[0]))
        max_new = (int32_t)(sizeof gen / sizeof gen[0]);
    herd_status s = herd_guard_render_tokens(tok, request, len, o, &ids, &n);
    if (s != HERD_OK)
        return s;
    if (n + 1 > (size_t)n_ctx) {
        s = herd_fail(HERD_ERR_CONTEXT, "guard: the prompt has %zu tokens; the guard's context "
                      "holds %d", n, (int)n_ctx);
        goto done;
    }
    row = herd_malloc((size_t)info->n_vocab * sizeof *row);
    if (!row) {
        s = herd_fail(HERD_ERR_NOMEM, "guard: out of memory for logits");
        goto done;
    }
    if ((s = herd_seq_truncate(ctx, 0, 0)) != HERD_OK ||
        (s = feed(ctx, ids, n, 0, row)) != HERD_OK)
        goto done;
    int32_t n_gen = 0, pos = (int32_t)n;
    for (;;) {
        int32_t next = argmax(row, info->n_vocab);
        if (is_end(tok, info, next))
            break;
        gen[n_gen++] = next;
        if (n_gen == max_new || pos + 1 >= n_ctx)
            break;
        if ((s = feed(ctx, &next, 1, pos++, row)) != HERD_OK)
            goto done;
    }
    if ((s = herd_detokenize(tok, gen, (size_t)n_gen, &text, &text_len)) != HERD_OK)
        goto done;
    s = herd_guard_parse(text, text_len, request, len, o, out);
done:
    herd_seq_truncate(ctx, 0, 0);
    herd_free(ids);
    herd_free(row);
    herd_free(text);
    return s;
}
