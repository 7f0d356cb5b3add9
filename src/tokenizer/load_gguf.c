/*
 * load_gguf.c - the tokenizer stored in GGUF metadata (llama.cpp's convention):
 *   tokenizer.ggml.model       "gpt2" (byte-level BPE)
 *   tokenizer.ggml.pre         "llama-bpe" (Llama 3's pre-tokenizer; absent means it too),
 *                              or a GPT-2 style one of merges.c ("smollm", "gpt-2", ...)
 *   tokenizer.ggml.tokens      [string] token i in GPT-2 byte-level text (as tokenizer.json)
 *   tokenizer.ggml.token_type  [int32] 1 normal, 2 unknown, 3 control, 4 user-defined,
 *                              5 unused, 6 byte; control and user-defined tokens are
 *                              special and stored as plain text
 *   tokenizer.ggml.merges      ["left right"]: read for the GPT-2 style pre-tokenizers
 *                              (merges.c); Llama 3 merges by rank = id (see tokenizer.h)
 *   tokenizer.ggml.add_bos_token  false: herd_tokenize adds no BOS (SmolLM2)
 */
#include "tokenizer/tokenizer.h"

static int key_is(const struct gguf_str *s, const char *want)
{
    size_t n = strlen(want);
    return s->n == n && memcmp(s->p, want, n) == 0;
}

herd_status tokenizer_from_gguf(const struct gguf_file *f, herd_tokenizer **out)
{
    *out = NULL;
    struct gguf_str model, pre;
    int found = 0, has_pre = 0;
    herd_status s = gguf_get_str(f, "tokenizer.ggml.model", &model, &found);
    if (s)
        return s;
    if (!found)
        return herd_fail(HERD_ERR_FORMAT, "GGUF: no tokenizer.ggml.model");
    if (!key_is(&model, "gpt2"))
        return herd_fail(HERD_ERR_UNSUPPORTED, "GGUF: tokenizer.ggml.model is '%.*s'; herd "
                         "supports 'gpt2' (Llama 3 byte-level BPE)",
                         (int)(model.n > 32 ? 32 : model.n), model.p);
    s = gguf_get_str(f, "tokenizer.ggml.pre", &pre, &has_pre);
    if (s)
        return s;
    int kind = has_pre ? tok_pre_from_name(pre.p, (size_t)pre.n) : TOK_PRE_LLAMA3;
    if (kind < 0)
        return herd_fail(HERD_ERR_UNSUPPORTED, "GGUF: tokenizer.ggml.pre is '%.*s'; herd "
                         "supports 'llama-bpe', 'smollm', 'starcoder', 'gpt-2' and the like",
                         (int)(pre.n > 32 ? 32 : pre.n), pre.p);
    const struct gguf_kv *km = gguf_find(f, "tokenizer.ggml.merges");
    if (kind != TOK_PRE_LLAMA3 && (!km || km->type != GGUF_ARRAY ||
                                   km->arr_type != GGUF_STRING))
        return herd_fail(HERD_ERR_FORMAT, "GGUF: tokenizer.ggml.pre '%.*s' needs "
                         "tokenizer.ggml.merges (a string array)", (int)pre.n, pre.p);
    const struct gguf_kv *kt = gguf_find(f, "tokenizer.ggml.tokens");
    const struct gguf_kv *ky = gguf_find(f, "tokenizer.ggml.token_type");
    if (!kt)
        return herd_fail(HERD_ERR_FORMAT, "GGUF: no tokenizer.ggml.tokens");
    if (ky && (ky->type != GGUF_ARRAY || (ky->arr_type != GGUF_INT32 &&
                                          ky->arr_type != GGUF_UINT32) ||
               ky->arr_n != kt->arr_n))
        return herd_fail(HERD_ERR_FORMAT, "GGUF: tokenizer.ggml.token_type is not an int32 "
                         "array as long as tokenizer.ggml.tokens");
    struct gguf_str *toks = NULL, *merges = NULL;
    herd_tokenizer *t = NULL;
    uint8_t *buf = NULL;
    s = gguf_str_array_all(kt, &toks);
    if (s)
        return s;
    if (kt->arr_n > (1u << 24)) {
        s = herd_fail(HERD_ERR_FORMAT, "GGUF: %llu tokens", (unsigned long long)kt->arr_n);
        goto fail;
    }
    s = tok_new((int32_t)kt->arr_n, &t);
    if (s)
        goto fail;
    t->pre = kind;
    const struct gguf_kv *ku = gguf_find(f, "tokenizer.ggml.unknown_token_id");
    if (ku && ku->type != GGUF_ARRAY && ku->type != GGUF_STRING && ku->v.u < kt->arr_n)
        t->unk_id = (int32_t)ku->v.u;
    const struct gguf_kv *kb = gguf_find(f, "tokenizer.ggml.add_bos_token");
    /* Llama 3 files always get their BOS, whatever the key says (unchanged behaviour) */
    t->no_bos = kind != TOK_PRE_LLAMA3 && kb && kb->type == GGUF_BOOL && kb->v.u == 0;
    size_t cap = 256;
    buf = herd_malloc(cap);
    if (!buf) {
        s = herd_fail(HERD_ERR_NOMEM, "GGUF tokenizer: out of memory");
        goto fail;
    }
    for (int32_t i = 0; i < (int32_t)kt->arr_n; i++) {
        int32_t type = GGUF_TOKEN_NORMAL;
        if (ky)
            memcpy(&type, ky->arr_data + 4 * (size_t)i, 4);
        const struct gguf_str *ts = &toks[i];
        if (gguf_token_type_special(type)) {
            s = tok_set(t, i, ts->p, ts->n, 1);
        } else {
            if (ts->n > cap) {
                herd_free(buf);
                cap = ts->n;
                buf = herd_malloc(cap);
                if (!buf) {
                    s = herd_fail(HERD_ERR_NOMEM, "GGUF tokenizer: out of memory");
                    goto fail;
                }
            }
            long nb = bytelevel_decode(ts->p, ts->n, buf);
            if (nb <= 0) {
                s = herd_fail(HERD_ERR_FORMAT, "GGUF: token %d is not byte-level BPE text", i);
                goto fail;
            }
            s = tok_set(t, i, buf, (size_t)nb, 0);
        }
        if (s)
            goto fail;
    }
    s = tok_finish(t);
    if (s)
        goto fail;
    if (kind != TOK_PRE_LLAMA3) {
        if ((s = gguf_str_array_all(km, &merges)) ||
            (s = tok_set_merges(t, merges, (size_t)km->arr_n)))
            goto fail;
    }
    herd_free(buf);
    herd_free(toks);
    herd_free(merges);
    *out = t;
    return HERD_OK;
fail:
    herd_free(buf);
    herd_free(toks);
    herd_free(merges);
    herd_tokenizer_free(t);
    return s;
}
