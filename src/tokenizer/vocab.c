/*
 * vocab.c - the token table shared by every loader: token bytes, the rank map (a flat
 * open-addressing hash from bytes to id), special-token names, the GPT-2 byte-level
 * alphabet, and herd_tokenizer_load, which picks a loader from the file's first bytes
 * ("GGUF" magic, a JSON object, or tiktoken "base64 rank" lines).
 *
 * The pre-tokenizer is PCRE2 (UTF + UCP, JIT) running Llama 3's pattern with \s spelled out
 * as the Unicode White_Space set: PCRE2's own \s also matches U+180E, which tiktoken's and
 * HF's regex engines (Unicode White_Space) do not.
 */
#include "tokenizer/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h> /* pcre2_compile, pcre2_jit_compile */
#include <pthread.h> /* pthread_once */

#include <stdio.h>  /* snprintf */
#include <string.h>

/* Unicode White_Space (PropList.txt): the \s of tiktoken's and HF's regex engines. */
#define WS "\\t\\n\\x0B\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}" \
           "\\x{202F}\\x{205F}\\x{3000}"

/* Llama 3's pre-tokenizer (Meta's tokenizer.py, tokenizer.json's Split regex). */
static const char llama3_pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
    "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+";

/* The same pattern as tokenizer.json spells it (loaders check the file's is this one). */
const char tok_llama3_pattern_text[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

int32_t tok_rank(const herd_tokenizer *t, const uint8_t *p, size_t n)
{
    uint64_t k8 = tok_key8(p, n);
    uint64_t h = tok_hash(k8, p, n);
    uint64_t want = (h & 0xFFFFFFFF00000000ull) | ((uint64_t)(n < 255 ? n : 255) << 24);
    for (uint64_t i = h & t->mask;; i = (i + 1) & t->mask) {
        const struct tok_slot *sl = &t->slots[i];
        if (!sl->meta)
            return -1;
        if ((sl->meta & 0xFFFFFFFFFF000000ull) == want && sl->key8 == k8) {
            int32_t id = (int32_t)(sl->meta & 0xFFFFFF) - 1;
            if (n <= 8)
                return id;
            uint32_t a = t->off[id];
            if (t->off[id + 1] - a == n && memcmp(t->bytes + a + 8, p + 8, n - 8) == 0)
                return id;
        }
    }
}

herd_status tok_new(int32_t n_vocab, herd_tokenizer **out)
{
    *out = NULL;
    if (n_vocab <= 256 || n_vocab >= (1 << 24)) /* ids + 1 fit the slots' 24 bits */
        return herd_fail(HERD_ERR_FORMAT, "tokenizer: %d tokens; expected 257 .. 16M", n_vocab);
    herd_tokenizer *t = herd_calloc(1, sizeof(*t));
    if (!t)
        return herd_fail(HERD_ERR_NOMEM, "tokenizer: out of memory");
    t->n_vocab = n_vocab;
    t->bos_id = -1;
    t->unk_id = -1;
    t->off = herd_calloc((size_t)n_vocab + 1, sizeof(uint32_t));
    t->is_special = herd_calloc((size_t)n_vocab, 1);
    t->is_set = herd_calloc((size_t)n_vocab, 1);
    t->tmp_len = herd_calloc((size_t)n_vocab, sizeof(uint32_t));
    t->bytes_cap = (size_t)n_vocab * 8;
    t->bytes = herd_malloc(t->bytes_cap);
    if (!t->off || !t->is_special || !t->is_set || !t->tmp_len || !t->bytes) {
        herd_tokenizer_free(t);
        return herd_fail(HERD_ERR_NOMEM, "tokenizer: out of memory for %d tokens", n_vocab);
    }
    *out = t;
    return HERD_OK;
}

/* Tokens arrive in any order: until tok_finish, off[id] is the start in bytes[] and
 * tmp_len[id] the length; pack_tokens then lays them out in id order. */
herd_status tok_set(herd_tokenizer *t, int32_t id, const void *bytes, size_t len, int special)
{
    if (id < 0 || id >= t->n_vocab)
        return herd_fail(HERD_ERR_FORMAT, "tokenizer: id %d outside 0..%d", id, t->n_vocab - 1);
    if (t->is_set[id])
        return herd_fail(HERD_ERR_FORMAT, "tokenizer: id %d defined twice", id);
    if (len == 0 || len > 65536)
        return herd_fail(HERD_ERR_FORMAT, "tokenizer: id %d has %zu bytes; expected 1..65536",
                         id, len);
    if (t->bytes_len + len > t->bytes_cap) {
        size_t cap = t->bytes_cap * 2 + len;
        if (cap > UINT32_MAX)
            return herd_fail(HERD_ERR_FORMAT, "tokenizer: token bytes exceed 4 GiB");
        uint8_t *nb = herd_realloc(t->bytes, cap);
        if (!nb)
            return herd_fail(HERD_ERR_NOMEM, "tokenizer: out of memory for %zu token bytes",
                             cap);
        t->bytes = nb;
        t->bytes_cap = cap;
    }
    memcpy(t->bytes + t->bytes_len, bytes, len);
    t->off[id] = (uint32_t)t->bytes_len;
    t->bytes_len += len;
    t->is_set[id] = 1;
    t->is_special[id] = special ? 1 : 0;
    t->tmp_len[id] = (uint32_t)len;
    return HERD_OK;
}

/* Makes off[] a prefix-sum layout (token i at bytes[off[i] .. off[i+1])) by copying the
 * tokens into a fresh buffer in id order. */
static herd_status pack_tokens(herd_tokenizer *t)
{
    uint8_t *nb = herd_malloc(t->bytes_len ? t->bytes_len : 1);
    if (!nb)
        return herd_fail(HERD_ERR_NOMEM, "tokenizer: out of memory for %zu token bytes",
                         t->bytes_len);
    size_t pos = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        size_t len = t->tmp_len[i];
        memcpy(nb + pos, t->bytes + t->off[i], len);
        t->off[i] = (uint32_t)pos;
        pos += len;
        if (len > t->max_token_len)
            t->max_token_len = len;
    }
    t->off[t->n_vocab] = (uint32_t)pos;
    herd_free(t->bytes);
    t->bytes = nb;
    t->bytes_cap = t->bytes_len;
    herd_free(t->tmp_len);
    t->tmp_len = NULL;
    return HERD_OK;
}

static herd_status build_rank_map(herd_tokenizer *t)
{
    size_t n = 1024;
    while (n < (size_t)t->n_vocab * 2)
        n *= 2;
    t->slots = herd_calloc(n, sizeof(struct tok_slot));
    if (!t->slots)
        return herd_fail(HERD_ERR_NOMEM, "tokenizer: out of memory for the rank map");
    t->mask = n - 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (t->is_special[id])
            continue;
        const uint8_t *p = t->bytes + t->off[id];
        size_t len = t->off[id + 1] - t->off[id];
        int32_t other = tok_rank(t, p, len);
        if (other >= 0)
            return herd_fail(HERD_ERR_FORMAT, "tokenizer: id %d repeats the bytes of id %d",
                             id, other);
        uint64_t k8 = tok_key8(p, len);
        uint64_t h = tok_hash(k8, p, len);
        uint64_t i = h & t->mask;
        while (t->slots[i].meta)
            i = (i + 1) & t->mask;
        t->slots[i].meta = (h & 0xFFFFFFFF00000000ull) |
                           ((uint64_t)(len < 255 ? len : 255) << 24) | (uint64_t)(id + 1);
        t->slots[i].key8 = k8;
    }
    t->pair2 = herd_malloc(65536 * sizeof(int32_t));
    if (!t->pair2)
        return herd_fail(HERD_ERR_NOMEM, "tokenizer: out of memory for the pair table");
    for (int k = 0; k < 65536; k++) {
        uint8_t two[2] = {(uint8_t)(k & 0xFF), (uint8_t)(k >> 8)};
        t->pair2[k] = tok_rank(t, two, 2);
    }
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        t->byte_id[b] = tok_rank(t, &c, 1);
        /* GPT-2 style vocabularies may lack bytes no text of theirs had (SmolLM2: 0xC0,
         * 0xF5.., some controls): HF's BPE gives such a character its unknown token */
        if (t->byte_id[b] < 0 && t->pre != TOK_PRE_LLAMA3)
            t->byte_id[b] = t->unk_id;
        else if (t->byte_id[b] < 0)
            return herd_fail(HERD_ERR_FORMAT, "tokenizer: no token for byte 0x%02x", b);
    }
    return HERD_OK;
}

static herd_status add_special(herd_tokenizer *t, size_t *cap, const char *text, size_t len,
                               int32_t id)
{
    if (t->n_specials == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        struct tok_special *ns = herd_realloc(t->specials, nc * sizeof(*ns));
        if (!ns)
            return herd_fail(HERD_ERR_NOMEM, "tokenizer: out of memory for special tokens");
        t->specials = ns;
        *cap = nc;
    }
    char *s = herd_strndup(text, len);
    if (!s)
        return herd_fail(HERD_ERR_NOMEM, "tokenizer: out of memory for special tokens");
    t->specials[t->n_specials++] = (struct tok_special){s, len, id};
    t->special_first[(uint8_t)text[0]] = 1;
    if (len > t->special_max_len)
        t->special_max_len = len;
    return HERD_OK;
}

/* Llama 3.1 renamed three reserved ids; a Llama 3.0 tokenizer.json still has the old names.
 * herd keeps the file's names and also answers to Meta's 3.1 names for those ids. */
static herd_status add_llama31_aliases(herd_tokenizer *t, size_t *cap)
{
    static const struct { int32_t id; const char *name; } alias[] = {
        {128004, "<|finetune_right_pad_id|>"}, {128008, "<|eom_id|>"}, {128010, "<|python_tag|>"},
    };
    int32_t eot = herd_token_special(t, "<|eot_id|>");
    if (eot != 128009)
        return HERD_OK; /* not a Llama 3 vocabulary */
    for (size_t i = 0; i < sizeof(alias) / sizeof(alias[0]); i++) {
        if (alias[i].id >= t->n_vocab || !t->is_special[alias[i].id])
            continue;
        if (herd_token_special(t, alias[i].name) >= 0)
            continue;
        herd_status s = add_special(t, cap, alias[i].name, strlen(alias[i].name), alias[i].id);
        if (s)
            return s;
    }
    return HERD_OK;
}

/* GPT-2's pre-tokenizer (HF ByteLevel with use_regex; llama.cpp's "gpt-2"), \s spelled
 * out as above. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+"
    "|[" WS "]+(?![^" WS "])|[" WS "]+";

static herd_status compile_one(const char *pattern, void **re, int *jit)
{
    int err = 0;
    PCRE2_SIZE at = 0;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                  PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &at, NULL);
    if (!c) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof(msg));
        return herd_fail(HERD_ERR_INTERNAL, "tokenizer: pre-tokenizer regex at %zu: %s",
                         (size_t)at, (const char *)msg);
    }
    *re = c;
    *jit = pcre2_jit_compile(c, PCRE2_JIT_COMPLETE) == 0;
    if (!*jit)
        herd_log(HERD_LOG_INFO, "tokenizer: PCRE2 JIT unavailable, using the interpreter");
    return HERD_OK;
}

static herd_status compile_pretokenizer(herd_tokenizer *t)
{
    if (t->pre == TOK_PRE_LLAMA3)
        return compile_one(llama3_pattern, &t->re, &t->re_jit);
    herd_status s = compile_one(gpt2_pattern, &t->re, &t->re_jit);
    if (s == HERD_OK && t->pre == TOK_PRE_DIGITS_GPT2)
        s = compile_one("\\p{N}", &t->re_digit, &t->re_digit_jit);
    return s;
}

herd_status tok_finish(herd_tokenizer *t)
{
    herd_status s;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (!t->is_set[i])
            return herd_fail(HERD_ERR_FORMAT, "tokenizer: id %d has no token", i);
    s = pack_tokens(t);
    if (s)
        return s;
    s = build_rank_map(t);
    if (s)
        return s;
    size_t cap = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!t->is_special[id])
            continue;
        s = add_special(t, &cap, (const char *)t->bytes + t->off[id],
                        t->off[id + 1] - t->off[id], id);
        if (s)
            return s;
    }
    s = add_llama31_aliases(t, &cap);
    if (s)
        return s;
    t->bos_id = herd_token_special(t, "<|begin_of_text|>");
    t->bpe_scan_max = BPE_SCAN_MAX;
    t->max_token_bytes = 1;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->off[id + 1] - t->off[id] > t->max_token_bytes)
            t->max_token_bytes = t->off[id + 1] - t->off[id];
    return compile_pretokenizer(t);
}

void tok_meta_special_name(int i, char *buf, size_t cap)
{
    static const char *const named[] = {
        "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
        "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>",
        "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
        "<|eom_id|>", "<|eot_id|>", "<|python_tag|>",
    };
    const int n_named = (int)(sizeof(named) / sizeof(named[0]));
    if (i < n_named)
        snprintf(buf, cap, "%s", named[i]);
    else
        snprintf(buf, cap, "<|reserved_special_token_%d|>", 3 + i - n_named);
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves; the other 68
 * bytes (0-32, 127-160, 173) map, in order, to U+0100 onwards. */
static int printable_byte(int b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

/* The 68 non-printable bytes in order, filled once (pthread_once: tokenizers of two models
 * may load on two threads at once). */
static int16_t bytelevel_inv[68];
static pthread_once_t bytelevel_once = PTHREAD_ONCE_INIT;

static void bytelevel_init(void)
{
    int n = 0;
    for (int b = 0; b < 256; b++)
        if (!printable_byte(b))
            bytelevel_inv[n++] = (int16_t)b;
}

int bytelevel_byte(uint32_t cp)
{
    pthread_once(&bytelevel_once, bytelevel_init);
    if (cp < 256)
        return printable_byte((int)cp) ? (int)cp : -1;
    if (cp < 256 + 68)
        return bytelevel_inv[cp - 256];
    return -1;
}

long bytelevel_decode(const char *s, size_t n, uint8_t *out)
{
    const uint8_t *p = (const uint8_t *)s;
    long k = 0;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        if (p[i] < 0x80) {
            cp = p[i++];
        } else if ((p[i] & 0xE0) == 0xC0 && i + 1 < n) {
            cp = ((uint32_t)(p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F);
            i += 2;
        } else {
            return -1; /* the alphabet stops at U+0143: never 3-byte sequences */
        }
        int b = bytelevel_byte(cp);
        if (b < 0)
            return -1;
        out[k++] = (uint8_t)b;
    }
    return k;
}

/* ---- public */

herd_status herd_tokenizer_load(const char *path, herd_tokenizer **out)
{
    *out = NULL;
    if (herd_is_dir(path)) {
        char *p = NULL;
        herd_status s = hf_tokenizer_source(path, &p, NULL);
        if (s == HERD_OK)
            s = p ? herd_tokenizer_load(p, out)
                  : herd_fail(HERD_ERR_IO, "%s: no tokenizer.json", path);
        herd_free(p);
        return s;
    }
    struct herd_map m;
    herd_status s = herd_map_file(path, &m);
    if (s)
        return s;
    size_t i = 0;
    while (i < m.size && (m.data[i] == ' ' || m.data[i] == '\n' || m.data[i] == '\r' ||
                          m.data[i] == '\t'))
        i++;
    if (m.size >= 4 && memcmp(m.data, "GGUF", 4) == 0) {
        herd_unmap(&m);
        struct gguf_file *f = NULL;
        s = gguf_open(path, &f); /* its messages name the file already */
        if (!s)
            s = tokenizer_from_gguf(f, out);
        gguf_close(f);
        return s;
    } else if (i < m.size && m.data[i] == '{') {
        s = tok_load_json(m.data, m.size, out);
        herd_unmap(&m);
    } else {
        s = tok_load_tiktoken(m.data, m.size, out);
        herd_unmap(&m);
    }
    if (s)
        return herd_fail_prefix(s, "%s", path);
    return HERD_OK;
}

void herd_tokenizer_free(herd_tokenizer *t)
{
    if (!t)
        return;
    herd_free(t->off);
    herd_free(t->bytes);
    herd_free(t->is_special);
    herd_free(t->is_set);
    herd_free(t->tmp_len);
    herd_free(t->slots);
    herd_free(t->pair2);
    for (size_t i = 0; i < t->n_specials; i++)
        herd_free(t->specials[i].text);
    herd_free(t->specials);
    if (t->re)
        pcre2_code_free((pcre2_code *)t->re);
    if (t->re_digit)
        pcre2_code_free((pcre2_code *)t->re_digit);
    herd_free(t->merges);
    herd_free(t);
}

int32_t herd_tokenizer_n_vocab(const herd_tokenizer *t)
{
    return t ? t->n_vocab : 0;
}

size_t herd_tokenizer_max_token_bytes(const herd_tokenizer *t)
{
    return t ? t->max_token_bytes : 0;
}

const char *herd_token_bytes(const herd_tokenizer *t, int32_t id, size_t *len)
{
    if (!t || id < 0 || id >= t->n_vocab) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = t->off[id + 1] - t->off[id];
    return (const char *)t->bytes + t->off[id];
}

int32_t herd_token_special(const herd_tokenizer *t, const char *text)
{
    if (!t || !text)
        return -1;
    size_t n = strlen(text);
    for (size_t i = 0; i < t->n_specials; i++)
        if (t->specials[i].len == n && memcmp(t->specials[i].text, text, n) == 0)
            return t->specials[i].id;
    return -1;
}
