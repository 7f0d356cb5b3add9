/*
 * merges.c - what GPT-2 style vocabularies (SmolLM2, StarCoder, GPT-2 itself) need beyond
 * Llama 3's: the pre-tokenizer their GGUF names, and BPE by the file's merge list.
 *
 * Hugging Face's BPE model (tokenizers/src/models/bpe/word.rs) starts a word as single
 * characters (bytes, after ByteLevel) and repeatedly applies the merge of lowest rank
 * (its line in the merge list) among adjacent pairs, the leftmost on ties, until no pair is
 * in the list. Unlike tiktoken, a pair merges only when the list has it, a token may be
 * made by more than one merge (SmolLM2 has 48,900 merges for 48,879 merged tokens), and a
 * word that is itself a token is still merged step by step (ignore_merges is false in
 * these files). bpe.c runs that rule when t->merges is set; Llama 3 keeps rank = id.
 *
 * Pre-tokenizers by tokenizer.ggml.pre, as llama.cpp's converter names the tokenizer.json
 * pre_tokenizer it hashed: GPT-2's ByteLevel regex, or Digits(individual_digits) before it
 * (each \p{N} character its own piece). scripts/golden_pretok.py checks both against HF
 * tokenizers on the SmolLM2 vocabulary.
 */
#include "tokenizer/tokenizer.h"

static const struct {
    const char *name;
    int pre;
} pre_names[] = {
    {"llama-bpe", TOK_PRE_LLAMA3}, {"llama3", TOK_PRE_LLAMA3},
    /* tokenizer.json: ByteLevel(add_prefix_space=false, use_regex=true) alone */
    {"gpt-2", TOK_PRE_GPT2}, {"gpt2", TOK_PRE_GPT2}, {"phi-2", TOK_PRE_GPT2},
    {"mpt", TOK_PRE_GPT2}, {"olmo", TOK_PRE_GPT2},
    /* Sequence[Digits(individual_digits=true), ByteLevel(...)] (the StarCoder tokenizer
     * that SmolLM reuses) */
    {"smollm", TOK_PRE_DIGITS_GPT2}, {"starcoder", TOK_PRE_DIGITS_GPT2},
    {"refact", TOK_PRE_DIGITS_GPT2}, {"codeshell", TOK_PRE_DIGITS_GPT2},
};

int tok_pre_from_name(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof pre_names / sizeof pre_names[0]; i++)
        if (strlen(pre_names[i].name) == n && memcmp(pre_names[i].name, name, n) == 0)
            return pre_names[i].pre;
    return -1;
}

/* The id of the regular token whose byte-level text is s[0..n), or -1. */
static int32_t id_of_text(const herd_tokenizer *t, const char *s, size_t n, uint8_t *buf)
{
    long nb = bytelevel_decode(s, n, buf);
    return nb > 0 ? tok_rank(t, buf, (size_t)nb) : -1;
}

herd_status tok_set_merges(herd_tokenizer *t, const struct gguf_str *merges, size_t n)
{
    if (n == 0 || n > (1u << 24))
        return herd_fail(HERD_ERR_FORMAT, "tokenizer: %zu merges; expected 1 .. 16M", n);
    size_t cap = 1024;
    while (cap < n * 2)
        cap *= 2;
    /* a k-byte token is at most 2k bytes of byte-level text (U+0100..U+0143 take two) */
    uint8_t *buf = herd_malloc(t->max_token_len * 4 + 8);
    struct tok_merge *map = herd_malloc(cap * sizeof *map);
    herd_status s = HERD_OK;
    if (!buf || !map) {
        s = herd_fail(HERD_ERR_NOMEM, "tokenizer: out of memory for %zu merges", n);
        goto fail;
    }
    for (size_t i = 0; i < cap; i++)
        map[i].key = UINT64_MAX;
    for (size_t r = 0; r < n; r++) {
        const char *p = merges[r].p;
        size_t len = (size_t)merges[r].n;
        /* the byte-level alphabet has no ' ' (space is 'Ġ'), so the one space splits */
        const char *sp = len > 2 ? memchr(p + 1, ' ', len - 2) : NULL;
        int32_t a = -1, b = -1, ab = -1;
        size_t la = sp ? (size_t)(sp - p) : 0, lb = sp ? len - la - 1 : 0;
        if (sp && la <= t->max_token_len * 2 && lb <= t->max_token_len * 2) {
            a = id_of_text(t, p, la, buf);
            b = id_of_text(t, sp + 1, lb, buf);
        }
        if (a >= 0 && b >= 0) {
            size_t na = t->off[a + 1] - t->off[a], nb = t->off[b + 1] - t->off[b];
            if (na + nb <= t->max_token_len) {
                memcpy(buf, t->bytes + t->off[a], na);
                memcpy(buf + na, t->bytes + t->off[b], nb);
                ab = tok_rank(t, buf, na + nb);
            }
        }
        if (ab < 0) {
            s = herd_fail(HERD_ERR_FORMAT, "tokenizer: merge %zu '%.*s' is not two tokens "
                          "that make a token", r, (int)(len > 40 ? 40 : len), p);
            goto fail;
        }
        uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
        uint64_t i = ((key * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
        while (map[i].key != UINT64_MAX && map[i].key != key)
            i = (i + 1) & (cap - 1);
        /* a repeated line takes the later rank, as HF's HashMap collect() does */
        map[i] = (struct tok_merge){key, (int32_t)r, ab};
    }
    herd_free(buf);
    herd_free(t->merges);
    t->merges = map;
    t->merge_mask = cap - 1;
    return HERD_OK;
fail:
    herd_free(buf);
    herd_free(map);
    return s;
}
