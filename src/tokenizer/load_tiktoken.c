/*
 * load_tiktoken.c - Meta's tokenizer.model: the tiktoken "BPE ranks" format, one token per
 * line as "<base64 of the token bytes> <rank>\n", ranks 0..N-1 (N = 128,000 for Llama 3).
 * The file holds no special tokens: as Meta's tokenizer.py does, the 256 specials follow
 * as ids N..N+255 with Meta's Llama 3.1 names (tok_meta_special_name).
 */
#include "tokenizer/tokenizer.h"

#include <pthread.h> /* pthread_once */

#define N_META_SPECIAL 256 /* Meta's num_reserved_special_tokens */

/* Base64 digit values, -1 for other bytes, filled once (pthread_once: two models may load
 * their tokenizers on two threads at once). */
static int8_t b64_table[256];
static pthread_once_t b64_once = PTHREAD_ONCE_INIT;

static void b64_init(void)
{
    static const char digits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    memset(b64_table, -1, sizeof(b64_table));
    for (int i = 0; i < 64; i++)
        b64_table[(uint8_t)digits[i]] = (int8_t)i;
}

static inline int b64_value(uint8_t c)
{
    return b64_table[c];
}

/* Decodes standard base64 (with '=' padding) into out; returns the byte count or -1. */
static long b64_decode(const uint8_t *s, size_t n, uint8_t *out)
{
    long k = 0;
    uint32_t acc = 0;
    int bits = 0;
    size_t i = 0;
    for (; i < n && s[i] != '='; i++) {
        int v = b64_value(s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[k++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    for (; i < n; i++)
        if (s[i] != '=')
            return -1;
    return k;
}

herd_status tok_load_tiktoken(const uint8_t *d, size_t len, herd_tokenizer **out)
{
    *out = NULL;
    pthread_once(&b64_once, b64_init);
    if (len == 0) /* an empty file maps to d == NULL, which memchr must not see */
        return herd_fail(HERD_ERR_FORMAT, "tokenizer.model: empty file");
    size_t lines = 0;
    for (const uint8_t *q = d; (q = memchr(q, '\n', (size_t)(d + len - q))) != NULL; q++)
        lines++;
    if (len && d[len - 1] != '\n')
        lines++;
    if (lines < 256 || lines > (1u << 23))
        return herd_fail(HERD_ERR_FORMAT, "tokenizer.model: %zu lines; expected tiktoken "
                         "'base64 rank' lines (at least 256)", lines);
    herd_tokenizer *t = NULL;
    herd_status s = tok_new((int32_t)lines + N_META_SPECIAL, &t);
    if (s)
        return s;
    uint8_t buf[1024];
    size_t i = 0, line = 0, n_tok = 0;
    while (i < len) {
        line++;
        size_t a = i;
        while (i < len && d[i] != ' ' && d[i] != '\n')
            i++;
        size_t b = i;
        if (i >= len || d[i] != ' ' || b == a || b - a > 4 * sizeof(buf) / 3) {
            s = herd_fail(HERD_ERR_FORMAT, "tokenizer.model line %zu: expected 'base64 rank'",
                          line);
            goto fail;
        }
        i++;
        int64_t rank = 0;
        size_t digits = 0;
        for (; i < len && d[i] >= '0' && d[i] <= '9' && digits < 9; i++, digits++)
            rank = rank * 10 + (d[i] - '0');
        if (!digits || (i < len && d[i] != '\n' && d[i] != '\r')) {
            s = herd_fail(HERD_ERR_FORMAT, "tokenizer.model line %zu: bad rank", line);
            goto fail;
        }
        while (i < len && d[i] != '\n')
            i++;
        i++;
        long nb = b64_decode(d + a, b - a, buf);
        if (nb <= 0) {
            s = herd_fail(HERD_ERR_FORMAT, "tokenizer.model line %zu: bad base64", line);
            goto fail;
        }
        if (rank >= (int64_t)lines) {
            s = herd_fail(HERD_ERR_FORMAT, "tokenizer.model line %zu: rank %lld >= %zu tokens",
                          line, (long long)rank, lines);
            goto fail;
        }
        s = tok_set(t, (int32_t)rank, buf, (size_t)nb, 0);
        if (s)
            goto fail;
        n_tok++;
    }
    if (n_tok != lines) {
        s = herd_fail(HERD_ERR_FORMAT, "tokenizer.model: %zu tokens in %zu lines", n_tok, lines);
        goto fail;
    }
    for (int k = 0; k < N_META_SPECIAL; k++) {
        char name[64];
        tok_meta_special_name(k, name, sizeof(name));
        s = tok_set(t, (int32_t)lines + k, name, strlen(name), 1);
        if (s)
            goto fail;
    }
    s = tok_finish(t);
    if (s)
        goto fail;
    *out = t;
    return HERD_OK;
fail:
    herd_tokenizer_free(t);
    return s;
}
