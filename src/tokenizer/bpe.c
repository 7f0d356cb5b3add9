/*
 * bpe.c - text to ids: special-token split (only with parse_special), UTF-8 validation,
 * the regex pre-tokenizer, then byte-pair merging of each piece.
 *
 * Merging follows tiktoken's definition, which is Meta's: a piece starts as single bytes;
 * repeatedly, among adjacent part pairs whose concatenation is a regular token, merge the
 * one with the lowest rank (= id), the leftmost on ties; stop when no pair is a token. A
 * piece that is itself a token is emitted at once (what tiktoken does first and what HF
 * does with ignore_merges, as Llama 3's tokenizer.json sets).
 *
 * Invalid UTF-8 (documented in docs/internals/tokenizer.md): the text is cut at every
 * byte that is not part of a valid UTF-8 sequence; valid stretches are tokenized as usual
 * (each stretch's ends act as the text's ends for the regex) and each invalid byte
 * becomes its single-byte token, so decode(encode(b)) == b for any bytes.
 */
#include "tokenizer/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h> /* pcre2_jit_match, pcre2_match */

#include <limits.h>

/* Per-call state: the output ids and the BPE scratch arrays (grown on demand). */
struct enc {
    const herd_tokenizer *t;
    int32_t *ids;
    size_t n, cap;
    uint32_t *pos;  /* (scap + 1) part boundaries */
    int32_t *rank;  /* (scap) rank of part i + part i+1, INT32_MAX if no token */
    int32_t *pid;   /* (scap) id of part i */
    size_t scap;
    pcre2_match_data *md;
    herd_status err;
};

static int grow_ids(struct enc *e, size_t more)
{
    if (e->n + more <= e->cap)
        return 1;
    size_t nc = e->cap * 2 + more + 16;
    int32_t *nv = herd_realloc(e->ids, nc * sizeof(int32_t));
    if (!nv) {
        e->err = HERD_ERR_NOMEM;
        return 0;
    }
    e->ids = nv;
    e->cap = nc;
    return 1;
}

static inline void push_id(struct enc *e, int32_t id)
{
    if (grow_ids(e, 1))
        e->ids[e->n++] = id;
}

static int grow_scratch(struct enc *e, size_t n)
{
    if (n <= e->scap)
        return 1;
    size_t nc = n + n / 2 + 64;
    herd_free(e->pos);
    herd_free(e->rank);
    herd_free(e->pid);
    e->pos = herd_malloc((nc + 1) * sizeof(uint32_t));
    e->rank = herd_malloc(nc * sizeof(int32_t));
    e->pid = herd_malloc(nc * sizeof(int32_t));
    e->scap = (e->pos && e->rank && e->pid) ? nc : 0;
    if (!e->scap) {
        e->err = HERD_ERR_NOMEM;
        return 0;
    }
    return 1;
}

static inline int32_t pair_rank(const herd_tokenizer *t, const uint8_t *p, uint32_t a,
                                uint32_t b)
{
    int32_t r = tok_rank(t, p + a, b - a);
    return r < 0 ? INT32_MAX : r;
}

/* Byte-pair merge of one pre-token piece (n >= 1 bytes). */
static void bpe_piece(struct enc *e, const uint8_t *p, size_t n)
{
    const herd_tokenizer *t = e->t;
    if (n == 1) {
        push_id(e, t->byte_id[p[0]]);
        return;
    }
    int32_t whole = tok_rank(t, p, n);
    if (whole >= 0) {
        push_id(e, whole);
        return;
    }
    if (!grow_scratch(e, n))
        return;
    uint32_t *pos = e->pos;
    int32_t *rank = e->rank, *pid = e->pid;
    size_t m = n; /* parts */
    for (size_t i = 0; i <= n; i++)
        pos[i] = (uint32_t)i;
    for (size_t i = 0; i < n; i++)
        pid[i] = t->byte_id[p[i]];
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t r = t->pair2[p[i] | (p[i + 1] << 8)];
        rank[i] = r < 0 ? INT32_MAX : r;
    }
    while (m > 1) {
        size_t best = 0;
        int32_t br = rank[0];
        for (size_t i = 1; i + 1 < m; i++) {
            if (rank[i] < br) {
                br = rank[i];
                best = i;
            }
        }
        if (br == INT32_MAX)
            break;
        /* parts best and best+1 become one part with id br */
        pid[best] = br;
        memmove(pos + best + 1, pos + best + 2, (m - best - 1) * sizeof(uint32_t));
        memmove(pid + best + 1, pid + best + 2, (m - best - 2) * sizeof(int32_t));
        if (best + 2 < m)
            memmove(rank + best + 1, rank + best + 2, (m - best - 3) * sizeof(int32_t));
        m--;
        if (best > 0)
            rank[best - 1] = pair_rank(t, p, pos[best - 1], pos[best + 1]);
        if (best + 1 < m)
            rank[best] = pair_rank(t, p, pos[best], pos[best + 2]);
    }
    if (!grow_ids(e, m))
        return;
    memcpy(e->ids + e->n, pid, m * sizeof(int32_t));
    e->n += m;
}

/* Length of the valid UTF-8 prefix of s[0..n). */
static size_t utf8_valid_len(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t v;
            memcpy(&v, s + i, 8);
            if (!(v & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int k = utf8_step(s + i, n - i);
        if (k <= 0)
            return i;
        i += (size_t)k;
    }
    return n;
}

/* Pre-tokenizes valid UTF-8 s[0..n) and merges each piece. */
static void encode_valid(struct enc *e, const uint8_t *s, size_t n)
{
    const herd_tokenizer *t = e->t;
    pcre2_code *re = (pcre2_code *)t->re;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
    size_t at = 0;
    while (at < n && !e->err) {
        int rc = t->re_jit ? pcre2_jit_match(re, s, n, at, 0, e->md, NULL)
                           : pcre2_match(re, s, n, at, PCRE2_NO_UTF_CHECK, e->md, NULL);
        size_t a = at, b = n;
        if (rc > 0 && ov[1] > ov[0]) {
            if (ov[0] > at) {
                bpe_piece(e, s + at, ov[0] - at); /* unreachable: the pattern covers all */
            }
            a = ov[0];
            b = ov[1];
        } else if (rc != PCRE2_ERROR_NOMATCH && rc < 0) {
            e->err = herd_fail(HERD_ERR_INTERNAL, "tokenizer: regex match failed (%d)", rc);
            return;
        }
        bpe_piece(e, s + a, b - a);
        at = b;
    }
}

/* Any bytes: valid stretches through the pre-tokenizer, invalid bytes one token each. */
static void encode_bytes(struct enc *e, const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n && !e->err) {
        size_t v = utf8_valid_len(s + i, n - i);
        if (v)
            encode_valid(e, s + i, v);
        i += v;
        if (i < n) {
            int k = utf8_step(s + i, n - i);
            size_t bad = k < 0 ? (size_t)-k : n - i; /* k == 0: truncated at the end */
            for (size_t j = 0; j < bad; j++)
                push_id(e, e->t->byte_id[s[i + j]]);
            i += bad;
        }
    }
}

/* The longest special token text at s[0..n), or -1; *len gets its length. */
static int32_t match_special(const herd_tokenizer *t, const uint8_t *s, size_t n, size_t *len)
{
    int32_t id = -1;
    *len = 0;
    for (size_t i = 0; i < t->n_specials; i++) {
        const struct tok_special *sp = &t->specials[i];
        if (sp->len <= n && sp->len > *len && memcmp(sp->text, s, sp->len) == 0) {
            id = sp->id;
            *len = sp->len;
        }
    }
    return id;
}

herd_status herd_tokenize(const herd_tokenizer *t, const char *text, size_t len, bool add_bos,
                          bool parse_special, int32_t **ids, size_t *n_ids)
{
    *ids = NULL;
    *n_ids = 0;
    if (!t || (!text && len))
        return herd_fail(HERD_ERR_INVALID, "herd_tokenize: NULL tokenizer or text");
    struct enc e = {.t = t};
    const uint8_t *s = (const uint8_t *)text;
    e.md = pcre2_match_data_create_from_pattern((pcre2_code *)t->re, NULL);
    if (!e.md || !grow_ids(&e, len / 3 + 16)) {
        e.err = HERD_ERR_NOMEM;
        goto done;
    }
    if (add_bos) {
        if (t->bos_id < 0) {
            e.err = herd_fail(HERD_ERR_INVALID, "tokenizer has no <|begin_of_text|> token");
            goto done;
        }
        push_id(&e, t->bos_id);
    }
    size_t from = 0;
    if (parse_special && t->n_specials) {
        for (size_t i = 0; i < len && !e.err; i++) {
            if (!t->special_first[s[i]])
                continue;
            size_t sl;
            int32_t id = match_special(t, s + i, len - i, &sl);
            if (id < 0)
                continue;
            encode_bytes(&e, s + from, i - from);
            push_id(&e, id);
            from = i + sl;
            i = from - 1;
        }
    }
    if (!e.err)
        encode_bytes(&e, s + from, len - from);
done:
    pcre2_match_data_free(e.md);
    herd_free(e.pos);
    herd_free(e.rank);
    herd_free(e.pid);
    if (e.err) {
        herd_free(e.ids);
        if (e.err == HERD_ERR_NOMEM)
            return herd_fail(HERD_ERR_NOMEM, "herd_tokenize: out of memory (%zu bytes)", len);
        return e.err;
    }
    *ids = e.ids;
    *n_ids = e.n;
    return HERD_OK;
}
