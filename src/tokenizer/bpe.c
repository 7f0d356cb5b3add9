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
 * Two implementations of that one rule. Short pieces (almost all: pieces are words) rescan
 * an array of pair ranks per merge, quadratic in the piece but the faster one up to about
 * a hundred bytes (BPE_SCAN_MAX). Longer pieces (the pre-tokenizer does not bound \p{L}+,
 * whitespace or punctuation runs) keep the parts in a linked list and the candidate pairs
 * in a min-heap keyed by (rank, start offset), so each merge costs O(log n): a 1 MB word
 * takes ~0.3 s instead of minutes. The heap's order is exactly the scan's: lowest rank,
 * then the leftmost pair; tests compare the two on the golden corpus and random words.
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
    /* scan path (pieces up to t->bpe_scan_max bytes) */
    uint32_t *pos;  /* (scap + 1) part boundaries */
    int32_t *rank;  /* (scap) rank of part i + part i+1, INT32_MAX if no token */
    int32_t *pid;   /* (scap) id of part i */
    size_t scap;
    /* heap path: parts are named by their first byte offset */
    uint32_t *end;   /* (hcap) end of the part starting at i; 0 = i is inside a part */
    uint32_t *prev;  /* (hcap) start of the part before the one at i, UINT32_MAX none */
    int32_t *hid;    /* (hcap) token id of the part starting at i */
    int32_t *right;  /* (hcap) rank of the part at i + the next part, -1 if no token */
    uint64_t *heap;  /* (2 * hcap) min-heap of candidate merges, rank << 32 | start */
    size_t hcap;
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

/* id < 0: a byte the vocabulary has no token for (and no unknown token): dropped. */
static inline void push_id(struct enc *e, int32_t id)
{
    if (id >= 0 && grow_ids(e, 1))
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

static int grow_heap_scratch(struct enc *e, size_t n)
{
    if (n <= e->hcap)
        return 1;
    herd_free(e->end);
    herd_free(e->prev);
    herd_free(e->hid);
    herd_free(e->right);
    herd_free(e->heap);
    e->end = herd_malloc(n * sizeof(uint32_t));
    e->prev = herd_malloc(n * sizeof(uint32_t));
    e->hid = herd_malloc(n * sizeof(int32_t));
    e->right = herd_malloc(n * sizeof(int32_t));
    e->heap = herd_malloc(2 * n * sizeof(uint64_t));
    e->hcap = (e->end && e->prev && e->hid && e->right && e->heap) ? n : 0;
    if (!e->hcap) {
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

/* ---- heap path */

static void heap_down(uint64_t *h, size_t n, size_t i)
{
    uint64_t x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && h[c + 1] < h[c])
            c++;
        if (h[c] >= x)
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static void heap_push(uint64_t *h, size_t *n, uint64_t x)
{
    size_t i = (*n)++;
    while (i > 0 && x < h[(i - 1) / 2]) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = x;
}

/* The pair (part at a, the part after it ending at right_end): records its rank in
 * right[a] and pushes it when it is a token. */
static inline void set_pair(const herd_tokenizer *t, const uint8_t *p, struct enc *e,
                            size_t *hn, uint32_t a, uint32_t right_end)
{
    int32_t r = right_end - a > t->max_token_len ? -1 : tok_rank(t, p + a, right_end - a);
    e->right[a] = r;
    if (r >= 0)
        heap_push(e->heap, hn, (uint64_t)r << 32 | a);
}

/* The merge loop for a long piece (2 <= n < UINT32_MAX). The heap holds candidate merges
 * keyed rank << 32 | start, so popping the minimum is the scan's choice: lowest rank, then
 * leftmost. Entries are not removed when a merge changes their pair; instead right[a]
 * always holds the rank of a's current pair, and a popped entry whose rank differs (or
 * whose part is gone, right = -1) is stale and skipped. A changed pair is a different byte
 * string, so it cannot have the stale entry's rank. At most n - 1 entries to begin with and
 * one more per merge (two pushes, one pop): the heap holds < 2n. */
static void bpe_heap(struct enc *e, const uint8_t *p, size_t n)
{
    const herd_tokenizer *t = e->t;
    if (!grow_heap_scratch(e, n))
        return;
    uint32_t *end = e->end, *prev = e->prev;
    int32_t *id = e->hid, *right = e->right;
    uint64_t *h = e->heap;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        end[i] = (uint32_t)i + 1;
        prev[i] = (uint32_t)i - 1; /* UINT32_MAX for i = 0 */
        id[i] = t->byte_id[p[i]];
        right[i] = i + 1 < n ? t->pair2[p[i] | (p[i + 1] << 8)] : -1;
        if (right[i] >= 0)
            h[hn++] = (uint64_t)right[i] << 32 | i;
    }
    for (size_t i = hn / 2; i-- > 0;)
        heap_down(h, hn, i);
    while (hn) {
        uint64_t top = h[0];
        h[0] = h[--hn];
        heap_down(h, hn, 0);
        uint32_t a = (uint32_t)top;
        int32_t r = (int32_t)(top >> 32);
        if (right[a] != r)
            continue; /* stale */
        /* the part at a and the part after it, b, become one part with id r */
        uint32_t b = end[a];
        id[a] = r;
        end[a] = end[b];
        right[b] = -1;
        if (end[a] < n) {
            prev[end[a]] = a;
            set_pair(t, p, e, &hn, a, end[end[a]]);
        } else {
            right[a] = -1;
        }
        if (prev[a] != UINT32_MAX)
            set_pair(t, p, e, &hn, prev[a], end[a]);
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i = end[i])
        m++;
    if (!grow_ids(e, m))
        return;
    for (size_t i = 0; i < n; i = end[i])
        e->ids[e->n++] = id[i];
}

/* The merge of the part at a with the part at b (its right neighbour) by the merge list:
 * its rank in right[a] (-1 when the list has none), the merged id in pid[a]. */
static inline void set_merge(const herd_tokenizer *t, struct enc *e, size_t *hn, uint32_t a,
                             uint32_t b)
{
    int32_t nid = -1;
    int32_t r = e->hid[a] < 0 || e->hid[b] < 0 ? INT32_MAX
                                               : tok_merge_rank(t, e->hid[a], e->hid[b], &nid);
    e->right[a] = r == INT32_MAX ? -1 : r;
    e->pid[a] = nid;
    if (r != INT32_MAX)
        heap_push(e->heap, hn, (uint64_t)r << 32 | a);
}

/* BPE by a merge list (merges.c) for a piece of n >= 2 bytes: bpe_heap's loop with ranks of
 * id pairs. A popped entry is stale when right[a] no longer holds its rank: a changed pair
 * has a longer part on one side, so different ids and a different rank. */
static void bpe_merges(struct enc *e, const uint8_t *p, size_t n)
{
    const herd_tokenizer *t = e->t;
    if (n >= UINT32_MAX) {
        e->err = herd_fail(HERD_ERR_INVALID, "tokenizer: a %zu-byte piece (word or "
                           "whitespace run); at most 4 GiB", n);
        return;
    }
    if (!grow_heap_scratch(e, n) || !grow_scratch(e, n))
        return;
    uint32_t *end = e->end, *prev = e->prev;
    int32_t *id = e->hid, *right = e->right;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        end[i] = (uint32_t)i + 1;
        prev[i] = (uint32_t)i - 1; /* UINT32_MAX for i = 0 */
        id[i] = t->byte_id[p[i]];
    }
    right[n - 1] = -1;
    for (size_t i = 0; i + 1 < n; i++)
        set_merge(t, e, &hn, (uint32_t)i, (uint32_t)i + 1);
    while (hn) {
        uint64_t top = e->heap[0];
        e->heap[0] = e->heap[--hn];
        heap_down(e->heap, hn, 0);
        uint32_t a = (uint32_t)top;
        if (right[a] != (int32_t)(top >> 32))
            continue; /* stale */
        uint32_t b = end[a];
        id[a] = e->pid[a];
        end[a] = end[b];
        right[b] = -1;
        if (end[a] < n) {
            prev[end[a]] = a;
            set_merge(t, e, &hn, a, end[a]);
        } else {
            right[a] = -1;
        }
        if (prev[a] != UINT32_MAX)
            set_merge(t, e, &hn, prev[a], a);
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i = end[i])
        m++;
    if (!grow_ids(e, m))
        return;
    for (size_t i = 0; i < n; i = end[i])
        if (id[i] >= 0)
            e->ids[e->n++] = id[i];
}

/* Byte-pair merge of one pre-token piece (n >= 1 bytes). */
static void bpe_piece(struct enc *e, const uint8_t *p, size_t n)
{
    const herd_tokenizer *t = e->t;
    if (n == 1) {
        push_id(e, t->byte_id[p[0]]);
        return;
    }
    if (t->merges) {
        bpe_merges(e, p, n);
        return;
    }
    int32_t whole = tok_rank(t, p, n);
    if (whole >= 0) {
        push_id(e, whole);
        return;
    }
    if (n > t->bpe_scan_max) {
        if (n >= UINT32_MAX) {
            e->err = herd_fail(HERD_ERR_INVALID, "tokenizer: a %zu-byte piece (word or "
                               "whitespace run); at most 4 GiB", n);
            return;
        }
        bpe_heap(e, p, n);
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

/* Runs the pre-tokenizer regex over valid UTF-8 s[0..n) and merges each piece. */
static void encode_regex(struct enc *e, const uint8_t *s, size_t n)
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

/* Pre-tokenizes valid UTF-8 s[0..n) and merges each piece. TOK_PRE_DIGITS_GPT2 first
 * isolates every \p{N} character (HF's Digits pre-tokenizer, individual_digits): the
 * stretches between them meet the regex as texts of their own (their ends are text ends
 * for its lookahead), as HF runs the next pre-tokenizer on each split. */
static void encode_valid(struct enc *e, const uint8_t *s, size_t n)
{
    const herd_tokenizer *t = e->t;
    if (!t->re_digit) {
        encode_regex(e, s, n);
        return;
    }
    pcre2_code *re = (pcre2_code *)t->re_digit;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
    size_t at = 0;
    while (at < n && !e->err) {
        int rc = t->re_digit_jit ? pcre2_jit_match(re, s, n, at, 0, e->md, NULL)
                                 : pcre2_match(re, s, n, at, PCRE2_NO_UTF_CHECK, e->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) {
            encode_regex(e, s + at, n - at);
            return;
        }
        if (rc < 0 || ov[1] <= ov[0]) {
            e->err = herd_fail(HERD_ERR_INTERNAL, "tokenizer: regex match failed (%d)", rc);
            return;
        }
        size_t d0 = ov[0], d1 = ov[1];
        if (d0 > at)
            encode_regex(e, s + at, d0 - at);
        bpe_piece(e, s + d0, d1 - d0);
        at = d1;
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
    if (add_bos && !t->no_bos) { /* no_bos: the model's file says it takes none */
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
    herd_free(e.end);
    herd_free(e.prev);
    herd_free(e.hid);
    herd_free(e.right);
    herd_free(e.heap);
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
