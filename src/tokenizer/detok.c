/*
 * detok.c - ids to text. herd_detokenize concatenates token bytes (specials as their text)
 * and returns them as they are, valid UTF-8 or not. The streaming decoder holds back the
 * bytes of an unfinished UTF-8 sequence until a later token completes it, so a caller that
 * prints each chunk never prints half a character; bytes that can never become valid are
 * replaced by U+FFFD, one per maximal invalid subpart (Unicode's recommended practice, the
 * same as Python's bytes.decode(errors="replace")). For ids of valid text the stream's
 * output is exactly the text.
 */
#include "tokenizer/tokenizer.h"

/* UTF-8 well-formed byte sequences (Unicode Table 3-7): lead byte, then the allowed range
 * of the second byte; later bytes are always 80..BF.
 *   00..7F            1 byte
 *   C2..DF  80..BF    2 bytes
 *   E0      A0..BF    3      E1..EC 80..BF 3    ED 80..9F 3    EE..EF 80..BF 3
 *   F0      90..BF    4      F1..F3 80..BF 4    F4 80..8F 4
 *   80..C1, F5..FF    never valid */
int utf8_step(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    if (c < 0x80)
        return 1;
    int need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else {
        return -1;
    }
    for (int k = 1; k < need; k++) {
        if ((size_t)k >= n)
            return 0;
        uint8_t b = s[k];
        uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (b < l || b > h)
            return -k;
    }
    return need;
}

herd_status herd_detokenize(const herd_tokenizer *t, const int32_t *ids, size_t n_ids,
                            char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    if (!t || (!ids && n_ids))
        return herd_fail(HERD_ERR_INVALID, "herd_detokenize: NULL tokenizer or ids");
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return herd_fail(HERD_ERR_INVALID, "herd_detokenize: id %d at %zu outside 0..%d",
                             ids[i], i, t->n_vocab - 1);
        total += t->off[ids[i] + 1] - t->off[ids[i]];
    }
    char *out = herd_malloc(total + 1);
    if (!out)
        return herd_fail(HERD_ERR_NOMEM, "herd_detokenize: %zu bytes", total + 1);
    size_t k = 0;
    for (size_t i = 0; i < n_ids; i++) {
        uint32_t a = t->off[ids[i]], b = t->off[ids[i] + 1];
        memcpy(out + k, t->bytes + a, b - a);
        k += b - a;
    }
    out[k] = '\0';
    *text = out;
    *len = k;
    return HERD_OK;
}

/* ---- streaming */

struct herd_detok_stream {
    const herd_tokenizer *tok;
    uint8_t pend[4]; /* an unfinished UTF-8 sequence (at most 3 bytes) */
    size_t n_pend;
    uint8_t *work;   /* (max_token_len + 4) pending bytes + the new token */
};

herd_status herd_detok_stream_new(const herd_tokenizer *t, herd_detok_stream **out)
{
    *out = NULL;
    if (!t)
        return herd_fail(HERD_ERR_INVALID, "herd_detok_stream_new: NULL tokenizer");
    herd_detok_stream *s = herd_calloc(1, sizeof(*s));
    if (!s)
        return herd_fail(HERD_ERR_NOMEM, "herd_detok_stream_new: out of memory");
    s->tok = t;
    s->work = herd_malloc(t->max_token_len + 4);
    if (!s->work) {
        herd_free(s);
        return herd_fail(HERD_ERR_NOMEM, "herd_detok_stream_new: out of memory");
    }
    *out = s;
    return HERD_OK;
}

void herd_detok_stream_free(herd_detok_stream *s)
{
    if (!s)
        return;
    herd_free(s->work);
    herd_free(s);
}

static const uint8_t replacement[3] = {0xEF, 0xBF, 0xBD}; /* U+FFFD */

/* Walks w[0..n): writes complete sequences (and U+FFFD for invalid subparts) to out when
 * out != NULL, returns the bytes written; *keep gets the length of an unfinished tail
 * (0 when flushing, which replaces that tail too). */
static size_t emit(const uint8_t *w, size_t n, int flush, uint8_t *out, size_t *keep)
{
    size_t i = 0, k = 0;
    *keep = 0;
    while (i < n) {
        int st = utf8_step(w + i, n - i);
        if (st > 0) {
            if (out)
                memcpy(out + k, w + i, (size_t)st);
            k += (size_t)st;
            i += (size_t)st;
        } else if (st == 0 && !flush) {
            *keep = n - i;
            break;
        } else {
            if (out)
                memcpy(out + k, replacement, 3);
            k += 3;
            i += st < 0 ? (size_t)-st : n - i;
        }
    }
    return k;
}

herd_status herd_detok_stream_push(herd_detok_stream *s, int32_t id, char *out, size_t cap,
                                   size_t *n)
{
    *n = 0;
    if (!s || !out || cap == 0)
        return herd_fail(HERD_ERR_INVALID, "herd_detok_stream_push: NULL stream or buffer");
    const herd_tokenizer *t = s->tok;
    if (id >= t->n_vocab)
        return herd_fail(HERD_ERR_INVALID, "herd_detok_stream_push: id %d outside 0..%d", id,
                         t->n_vocab - 1);
    size_t w = s->n_pend;
    memcpy(s->work, s->pend, w);
    if (id >= 0) {
        uint32_t a = t->off[id], b = t->off[id + 1];
        memcpy(s->work + w, t->bytes + a, b - a);
        w += b - a;
    }
    size_t keep;
    size_t need = emit(s->work, w, id < 0, NULL, &keep);
    if (need + 1 > cap)
        return herd_fail(HERD_ERR_INVALID, "herd_detok_stream_push: needs %zu bytes, cap %zu",
                         need + 1, cap);
    emit(s->work, w, id < 0, (uint8_t *)out, &keep);
    out[need] = '\0';
    memcpy(s->pend, s->work + w - keep, keep);
    s->n_pend = keep;
    *n = need;
    return HERD_OK;
}
