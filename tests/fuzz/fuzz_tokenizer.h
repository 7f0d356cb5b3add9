/*
 * fuzz_tokenizer.h - what the tokenizer fuzz targets check on any tokenizer they have
 * (a fuzzed vocabulary or the real one) and any text: encoding never fails on valid
 * arguments; decode(encode(b)) == b for any bytes, with and without parse_special; the
 * rescanning and the heap merge loops give the same ids (bpe.c); the streaming decoder's
 * output is valid UTF-8 and, for valid UTF-8 text, the text itself.
 */
#ifndef HERD_FUZZ_TOKENIZER_H
#define HERD_FUZZ_TOKENIZER_H

#include "tokenizer/tokenizer.h"

#include "fuzz_main.h"

static inline void fuzz_check_text(herd_tokenizer *t, const uint8_t *s, size_t n, bool special)
{
    int32_t *ids = NULL, *ids2 = NULL;
    size_t k = 0, k2 = 0;
    herd_status st = herd_tokenize(t, (const char *)s, n, false, special, &ids, &k);
    FUZZ_ASSERT(st == HERD_OK);
    /* the other merge loop for every piece: same ids */
    size_t keep = t->bpe_scan_max;
    t->bpe_scan_max = keep ? 0 : SIZE_MAX;
    st = herd_tokenize(t, (const char *)s, n, false, special, &ids2, &k2);
    t->bpe_scan_max = keep;
    FUZZ_ASSERT(st == HERD_OK && k2 == k && (k == 0 || !memcmp(ids, ids2, k * sizeof *ids)));
    herd_free(ids2);
    char *back = NULL;
    size_t blen = 0;
    st = herd_detokenize(t, ids, k, &back, &blen);
    FUZZ_ASSERT(st == HERD_OK && blen == n && (n == 0 || !memcmp(back, s, n)));
    herd_free(back);
    herd_detok_stream *ds = NULL;
    if (herd_detok_stream_new(t, &ds) == HERD_OK) {
        struct herd_buf out;
        buf_init(&out, 0);
        size_t cap = t->max_token_len * 3 + 16;
        char *piece = malloc(cap);
        for (size_t i = 0; piece && i < k; i++) {
            size_t m = 0;
            FUZZ_ASSERT(herd_detok_stream_push(ds, ids[i], piece, cap, &m) == HERD_OK);
            FUZZ_ASSERT(fuzz_utf8_valid((const uint8_t *)piece, m));
            buf_append(&out, piece, m);
        }
        size_t m = 0;
        if (piece && herd_detok_stream_push(ds, -1, piece, cap, &m) == HERD_OK)
            buf_append(&out, piece, m);
        if (piece && fuzz_utf8_valid(s, n) && !special)
            FUZZ_ASSERT(out.len == n && (n == 0 || !memcmp(out.data, s, n)));
        free(piece);
        buf_free(&out);
        herd_detok_stream_free(ds);
    }
    herd_free(ids);
}

/* What both loader targets check on a vocabulary that loaded from the fuzzed bytes: a fixed
 * mixed text (with and without specials) and the bytes themselves keep every invariant. */
static inline void fuzz_check_loaded(herd_tokenizer *t, const uint8_t *data, size_t size)
{
    static const char sample[] = "Hello world, it's 2024!\n\t  <|eot_id|> caf\xc3\xa9 "
                                 "\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 \xff\xc3( 12345 "
                                 "aaaaaaaaaaaaaaaaaaaaaa";
    fuzz_check_text(t, (const uint8_t *)sample, sizeof sample - 1, false);
    fuzz_check_text(t, (const uint8_t *)sample, sizeof sample - 1, true);
    fuzz_check_text(t, data, size < 4096 ? size : 4096, false);
}

#endif /* HERD_FUZZ_TOKENIZER_H */
