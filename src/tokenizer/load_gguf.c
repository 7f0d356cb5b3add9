/*
 * load_gguf.c - the tokenizer stored in GGUF metadata (llama.cpp's convention):
 *   tokenizer.ggml.model       "gpt2" (byte-level BPE)
 *   tokenizer.ggml.pre         "llama-bpe" (Llama 3's pre-tokenizer); absent is accepted
 *   tokenizer.ggml.tokens      [string] token i in GPT-2 byte-level text (as tokenizer.json)
 *   tokenizer.ggml.token_type  [int32] 1 normal, 2 unknown, 3 control, 4 user-defined,
 *                              5 unused, 6 byte; control and user-defined tokens are
 *                              special and stored as plain text
 *   tokenizer.ggml.merges      not read: herd merges by rank = id (see tokenizer.h)
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
    if (has_pre && !key_is(&pre, "llama-bpe") && !key_is(&pre, "llama3"))
        return herd_fail(HERD_ERR_UNSUPPORTED, "GGUF: tokenizer.ggml.pre is '%.*s'; herd "
                         "supports 'llama-bpe'", (int)(pre.n > 32 ? 32 : pre.n), pre.p);
    const struct gguf_kv *kt = gguf_find(f, "tokenizer.ggml.tokens");
    const struct gguf_kv *ky = gguf_find(f, "tokenizer.ggml.token_type");
    if (!kt)
        return herd_fail(HERD_ERR_FORMAT, "GGUF: no tokenizer.ggml.tokens");
    if (ky && (ky->type != GGUF_ARRAY || (ky->arr_type != GGUF_INT32 &&
                                          ky->arr_type != GGUF_UINT32) ||
               ky->arr_n != kt->arr_n))
        return herd_fail(HERD_ERR_FORMAT, "GGUF: tokenizer.ggml.token_type is not an int32 "
                         "array as long as tokenizer.ggml.tokens");
    struct gguf_str *toks = NULL;
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
    herd_free(buf);
    herd_free(toks);
    *out = t;
    return HERD_OK;
fail:
    herd_free(buf);
    herd_free(toks);
    herd_tokenizer_free(t);
    return s;
}
