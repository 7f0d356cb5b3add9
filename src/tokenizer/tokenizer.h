/*
 * tokenizer.h - internals of the Llama 3 byte-level BPE tokenizer (include/herd.h has the
 * public API).
 *
 * A tokenizer is a table of n_vocab tokens, each a byte string. Regular tokens take part in
 * BPE; their id is their merge rank (tiktoken semantics: two adjacent parts merge when their
 * concatenation is a token, lowest id first, leftmost on ties). Special tokens
 * (<|eot_id|>, ...) never come out of BPE; they are matched as text only when the caller
 * asks for it (parse_special).
 *
 * Sources (one loader each, all ending in tok_finish):
 *   load_tiktoken.c  Meta's tokenizer.model: "base64 rank" lines + Meta's 256 specials.
 *   load_json.c      Hugging Face tokenizer.json: model.vocab (byte-level strings) and
 *                    added_tokens. merges are not read: for vocabularies converted from
 *                    tiktoken (Llama 3) the merge order is the id order (checked by
 *                    scripts/golden_tokenizer.py and the tests).
 *   load_gguf.c      GGUF tokenizer.ggml.{model=gpt2,pre=llama-bpe,tokens,token_type}.
 *
 * Invariants after tok_finish: every single byte is a regular token (byte_id), the rank map
 * holds every regular token, the pre-tokenizer regex is compiled (with JIT when available).
 * A finished tokenizer is read-only and may be shared by threads (match data is per call).
 */
#ifndef HERD_TOKENIZER_H
#define HERD_TOKENIZER_H

#include "base/base.h"
#include "format/format.h" /* struct gguf_file for tokenizer_from_gguf */

#include <stdint.h>
#include <string.h> /* memcpy in tok_key8 */

/* One special token name: its text and id. Aliases (Llama 3.1 names for ids a Llama 3.0
 * tokenizer.json calls reserved) are extra entries with the same id. */
struct tok_special {
    char *text;
    size_t len;
    int32_t id;
};

/* A rank-map slot, 16 bytes so a probe touches one cache line. meta = hash's top 32 bits
 * << 32 | min(len, 255) << 24 | (id + 1), 0 = empty; key8 = the token's first 8 bytes,
 * zero-padded, so tokens up to 8 bytes are matched without reading the token table. */
struct tok_slot {
    uint64_t meta;
    uint64_t key8;
};

/* First min(n, 8) bytes of p as a little-endian word, zero-padded. */
static inline uint64_t tok_key8(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    memcpy(&v, p, n < 8 ? n : 8);
    return v;
}

/* Hash of p[0..n) given its key8: murmur3's 64-bit finalizer over 8-byte words. */
static inline uint64_t tok_hash(uint64_t k8, const uint8_t *p, size_t n)
{
    uint64_t h = k8 ^ ((uint64_t)n * 0x9E3779B97F4A7C15ull);
    for (size_t i = 8; i < n; i += 8) {
        uint64_t v = 0;
        memcpy(&v, p + i, n - i < 8 ? n - i : 8);
        h = (h ^ (h >> 33)) * 0xff51afd7ed558ccdull ^ v;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

struct herd_tokenizer {
    int32_t n_vocab;
    size_t max_token_bytes; /* the longest token's bytes (specials included), from tok_finish */
    uint32_t *off;       /* (n_vocab + 1) token i is bytes[off[i] .. off[i+1]) */
    uint8_t *bytes;      /* all token bytes, back to back */
    size_t bytes_len, bytes_cap;
    uint8_t *is_special; /* (n_vocab) */
    uint8_t *is_set;     /* (n_vocab) loaders set each id once */
    uint32_t *tmp_len;   /* (n_vocab) token lengths while loading; NULL after tok_finish */
    /* rank map: open addressing (linear probing) over regular tokens, power-of-two size,
     * load <= 1/2 */
    struct tok_slot *slots;
    uint64_t mask;
    int32_t byte_id[256];
    int32_t *pair2;      /* (65536) id of the two-byte token b0 | b1 << 8, or -1: BPE's
                          * first round looks up every byte pair, and this 256 KB table
                          * stays in cache where the rank map would not */
    struct tok_special *specials; /* (n_specials) names, aliases included */
    size_t n_specials;
    size_t special_max_len;
    uint8_t special_first[256];   /* first bytes of special texts, for parse_special scans */
    int32_t bos_id;          /* <|begin_of_text|> or -1 */
    size_t max_token_len;    /* longest token in bytes (sizes the streaming decoder) */
    size_t bpe_scan_max;     /* pieces up to this many bytes merge by rescanning, longer
                              * ones through the heap (bpe.c); tok_finish sets
                              * BPE_SCAN_MAX, tests set 0 or SIZE_MAX to compare the two */
    void *re;                /* pcre2_code * of the pre-tokenizer */
    int re_jit;              /* JIT compiled */
    /* Non-Llama-3 vocabularies (merges.c). pre says which pre-tokenizer runs; with merges
     * (GPT-2 style files) BPE merges by the file's merge list instead of rank = id. */
    int pre;                 /* enum tok_pre; TOK_PRE_LLAMA3 (0) unless a loader says */
    void *re_digit;          /* pcre2_code * of \p{N}: TOK_PRE_DIGITS_GPT2's first split */
    int re_digit_jit;
    struct tok_merge *merges; /* open addressing over (left id, right id); NULL: rank = id */
    uint64_t merge_mask;
    uint8_t no_bos;          /* the file says no BOS (tokenizer.ggml.add_bos_token false) */
    int32_t unk_id;          /* GPT-2 style: the id a byte without a token becomes; -1 =
                              * such a byte is dropped (HF's BPE without unk_token) */
};

/* The pre-tokenizers herd runs, by what llama.cpp's converter writes in tokenizer.ggml.pre
 * (tokenizer.json's pre_tokenizer, checked against HF tokenizers by
 * scripts/golden_pretok.py). */
enum tok_pre {
    TOK_PRE_LLAMA3 = 0,      /* "llama-bpe", "llama3": Llama 3's Split regex */
    TOK_PRE_GPT2 = 1,        /* "gpt-2", ...: ByteLevel(use_regex) = GPT-2's regex */
    TOK_PRE_DIGITS_GPT2 = 2, /* "smollm", "starcoder", ...: Digits(individual) + ByteLevel */
};

/* A merge-map slot: key = left id << 32 | right id (UINT64_MAX empty), the merge's rank
 * (its line in the merge list) and the id of the merged token. */
struct tok_merge {
    uint64_t key;
    int32_t rank, id;
};

/* The enum tok_pre for a tokenizer.ggml.pre name, or -1 when herd has no such
 * pre-tokenizer. */
int tok_pre_from_name(const char *name, size_t n);
/* Reads a merge list ("left right" byte-level strings, rank = index) into t->merges; after
 * tok_finish (it looks tokens up by bytes). Every merge's parts and result must be
 * regular tokens. */
herd_status tok_set_merges(herd_tokenizer *t, const struct gguf_str *merges, size_t n);
/* The merge of ids (a, b): its rank, with the merged id in *id; INT32_MAX when none. */
static inline int32_t tok_merge_rank(const herd_tokenizer *t, int32_t a, int32_t b,
                                     int32_t *id)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    for (uint64_t i = (h >> 20) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        const struct tok_merge *m = &t->merges[i];
        if (m->key == key) {
            *id = m->id;
            return m->rank;
        }
        if (m->key == UINT64_MAX)
            return INT32_MAX;
    }
}

/* Longest piece merged by the rescanning loop of bpe.c; measured crossover with the heap
 * (docs/internals/tokenizer.md). */
#define BPE_SCAN_MAX 128

/* ---- building (vocab.c) */

/* Empty tokenizer of n_vocab ids, none set yet. */
herd_status tok_new(int32_t n_vocab, herd_tokenizer **out);
/* Sets id's bytes. Each id once; special ids are matched by text only. */
herd_status tok_set(herd_tokenizer *t, int32_t id, const void *bytes, size_t len, int special);
/* Checks every id is set and every byte has a token, builds the rank map, the special
 * list (plus the Llama 3.1 aliases) and the pre-tokenizer. */
herd_status tok_finish(herd_tokenizer *t);

/* Llama 3's pre-tokenizer regex as Meta and tokenizer.json write it. */
extern const char tok_llama3_pattern_text[];

/* Rank (= id) of a regular token with these bytes, or -1. */
int32_t tok_rank(const herd_tokenizer *t, const uint8_t *p, size_t n);

/* GPT-2 byte-level alphabet: a code point of a tokenizer.json / GGUF token string to the
 * byte it stands for, or -1. */
int bytelevel_byte(uint32_t cp);
/* Decodes a byte-level token string (UTF-8 of mapped code points) into raw bytes; out must
 * hold n bytes. Returns the byte count or -1 if a code point is not in the alphabet. */
long bytelevel_decode(const char *s, size_t n, uint8_t *out);

/* ---- UTF-8 (detok.c): one step of a decoder following the Unicode "maximal subpart"
 * rule (as WHATWG and Python's errors="replace"). At s[0..n): returns k > 0 when a whole
 * valid sequence of k bytes starts there; -k when the first k bytes are an invalid maximal
 * subpart (one U+FFFD); 0 when the bytes are a valid but incomplete prefix (need more). */
int utf8_step(const uint8_t *s, size_t n);

/* ---- loaders */

herd_status tok_load_tiktoken(const uint8_t *data, size_t len, herd_tokenizer **out);
herd_status tok_load_json(const uint8_t *data, size_t len, herd_tokenizer **out);
/* From an open GGUF file (the model loader's); the tokenizer copies what it needs. */
herd_status tokenizer_from_gguf(const struct gguf_file *f, herd_tokenizer **out);

/* Meta's special token names for Llama 3.1, id n_regular + i for i < 256. */
void tok_meta_special_name(int i, char *buf, size_t cap);

#endif /* HERD_TOKENIZER_H */
