/*
 * test_tokenizer.c - the tokenizer against hand-made vocabularies (always) and against the
 * golden corpus of scripts/golden_tokenizer.py with the real Llama 3 files (when
 * HERD_SHARED_DATA has them): tokenizer.json, Meta's tokenizer.model, and a GGUF written
 * from tokenizer.json by that script (HERD_TOK_GGUF) must all give the golden ids; every
 * string must round-trip and the streaming decoder must return the exact text in chunks
 * that are each valid UTF-8.
 */
#include "check.h"
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h> /* golden file lines */
#include <stdio.h>
#include <stdlib.h>

/* Writes a tiktoken file: the 256 single bytes then extra tokens, ranks in order. */
static const char *write_tiny_model(const char **extra, int n_extra)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/herd_test_tok_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "w");
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int rank = 0;
    for (int pass = 0; pass < 2; pass++) {
        int n = pass == 0 ? 256 : n_extra;
        for (int i = 0; i < n; i++) {
            unsigned char tok[64];
            size_t len;
            if (pass == 0) {
                tok[0] = (unsigned char)i;
                len = 1;
            } else {
                len = strlen(extra[i]);
                memcpy(tok, extra[i], len);
            }
            for (size_t j = 0; j < len; j += 3) {
                uint32_t v = (uint32_t)tok[j] << 16;
                if (j + 1 < len)
                    v |= (uint32_t)tok[j + 1] << 8;
                if (j + 2 < len)
                    v |= tok[j + 2];
                fputc(b64[v >> 18], f);
                fputc(b64[(v >> 12) & 63], f);
                fputc(j + 1 < len ? b64[(v >> 6) & 63] : '=', f);
                fputc(j + 2 < len ? b64[v & 63] : '=', f);
            }
            fprintf(f, " %d\n", rank++);
        }
    }
    fclose(f);
    return path;
}

static int ids_equal(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof(int32_t)) == 0);
}

/* Streams ids through the detokenizer; checks every chunk is valid UTF-8 and returns the
 * concatenation (owned). */
static char *stream_decode(const herd_tokenizer *t, const int32_t *ids, size_t n, size_t *len)
{
    herd_detok_stream *st = NULL;
    if (herd_detok_stream_new(t, &st))
        return NULL;
    struct herd_buf b;
    buf_init(&b, 0);
    char chunk[4096];
    for (size_t i = 0; i <= n; i++) {
        size_t k = 0;
        herd_status s = herd_detok_stream_push(st, i < n ? ids[i] : -1, chunk, sizeof(chunk), &k);
        CHECK(s == HERD_OK);
        for (size_t j = 0; j < k;) {
            int step = utf8_step((const uint8_t *)chunk + j, k - j);
            CHECK_MSG(step > 0, "chunk of id %zu is not whole UTF-8", i);
            j += step > 0 ? (size_t)step : k;
        }
        buf_append(&b, chunk, k);
    }
    herd_detok_stream_free(st);
    buf_append(&b, "", 0);
    return buf_take(&b, len);
}

static void test_tiny(void)
{
    /* ranks: "ab" 256, "ba" 257, "aba" 258: "aba" merges leftmost on a tie; "xx" 259
     * then "xxx" 260 "xxxx" 261; " x" 262 */
    const char *extra[] = {"ab", "ba", "aba", "xx", "xxx", "xxxx", " x"};
    const char *path = write_tiny_model(extra, 7);
    CHECK(path != NULL);
    herd_tokenizer *t = NULL;
    CHECK(herd_tokenizer_load(path, &t) == HERD_OK);
    remove(path);
    if (!t)
        return;
    CHECK(herd_tokenizer_n_vocab(t) == 256 + 7 + 256);
    CHECK(herd_token_special(t, "<|eot_id|>") == 263 + 9);
    CHECK(herd_token_special(t, "<|python_tag|>") == 263 + 10);
    CHECK(herd_token_special(t, "<|reserved_special_token_3|>") == 263 + 11);
    CHECK(herd_token_special(t, "<|nope|>") == -1);
    struct case_ {
        const char *text;
        size_t len;
        bool bos, special;
        int32_t ids[8];
        size_t n;
    } cases[] = {
        {"abab", 4, 0, 0, {256, 256}, 2},         /* "ab"+"ab": rank 256 twice, leftmost */
        {"bab", 3, 0, 0, {257, 'b'}, 2},          /* "ba" (257) < "ab" (256)? no: ab at 1 wins */
        {"xxxxx", 5, 0, 0, {259, 260}, 2},        /* xx,x,x,x -> xx,xx,x -> xx,xxx */
        {"aba", 3, 0, 0, {258}, 1},               /* whole piece is a token */
        {"", 0, 1, 0, {263}, 1},                  /* BOS only */
        {"\xff", 1, 0, 0, {0xff}, 1},             /* invalid byte: its byte token */
        {"a\xe2\x82", 3, 0, 0, {'a', 0xe2, 0x82}, 3}, /* truncated sequence */
        {"<|eot_id|>", 10, 0, 1, {263 + 9}, 1},
        {"x<|eot_id|>x", 12, 0, 1, {'x', 263 + 9, 'x'}, 3},
    };
    /* "bab": pairs "ba"(257) at 0 and "ab"(256) at 1; lowest rank 256 merges b+ab. */
    cases[1].ids[0] = 'b';
    cases[1].ids[1] = 256;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        herd_status s = herd_tokenize(t, cases[i].text, cases[i].len, cases[i].bos,
                                      cases[i].special, &ids, &n);
        CHECK_MSG(s == HERD_OK && ids_equal(ids, n, cases[i].ids, cases[i].n),
                  "tiny case %zu: %zu ids, first %d", i, n, n ? ids[0] : -1);
        herd_free(ids);
    }
    /* plain text by default: the special's text is ordinary tokens */
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(herd_tokenize(t, "<|eot_id|>", 10, 0, 0, &ids, &n) == HERD_OK && n > 1);
    char *text = NULL;
    size_t len = 0;
    CHECK(herd_detokenize(t, ids, n, &text, &len) == HERD_OK && len == 10 &&
          memcmp(text, "<|eot_id|>", 10) == 0);
    herd_free(text);
    herd_free(ids);
    /* invalid input round-trips byte for byte; the stream replaces bad bytes with U+FFFD */
    const char bad[] = "ok\xc3(\xed\xa0\x80z\xf0\x9f\x98";
    CHECK(herd_tokenize(t, bad, sizeof(bad) - 1, 0, 0, &ids, &n) == HERD_OK);
    CHECK(herd_detokenize(t, ids, n, &text, &len) == HERD_OK && len == sizeof(bad) - 1 &&
          memcmp(text, bad, len) == 0);
    herd_free(text);
    text = stream_decode(t, ids, n, &len);
    const char want[] = "ok\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz\xef\xbf\xbd";
    CHECK_MSG(text && len == sizeof(want) - 1 && memcmp(text, want, len) == 0,
              "stream of invalid input: %zu bytes", len);
    herd_free(text);
    herd_free(ids);
    /* bad ids */
    int32_t badid = herd_tokenizer_n_vocab(t);
    CHECK(herd_detokenize(t, &badid, 1, &text, &len) == HERD_ERR_INVALID && text == NULL);
    CHECK(herd_token_bytes(t, -1, &len) == NULL && len == 0);
    herd_tokenizer_free(t);
}

static void test_bad_files(void)
{
    const char *extra[] = {"ab"};
    const char *path = write_tiny_model(extra, 1);
    CHECK(path != NULL);
    if (!path)
        return;
    FILE *f = fopen(path, "a");
    fputs("!!!! 5\n", f); /* bad base64 */
    fclose(f);
    herd_tokenizer *t = NULL;
    CHECK(herd_tokenizer_load(path, &t) == HERD_ERR_FORMAT && t == NULL);
    f = fopen(path, "w");
    fputs("{\"model\": {\"type\": \"Unigram\", \"vocab\": {}}, \"added_tokens\": [], "
          "\"pre_tokenizer\": null}", f);
    fclose(f);
    CHECK(herd_tokenizer_load(path, &t) != HERD_OK && t == NULL);
    remove(path);
    CHECK(herd_tokenizer_load("/nonexistent/tokenizer.json", &t) == HERD_ERR_IO && t == NULL);
}

/* The golden corpus against one loaded tokenizer; returns cases that passed. */
static int run_golden(const herd_tokenizer *t, const char *name, const char *golden, int *total)
{
    int pass = 0;
    *total = 0;
    const char *p = golden;
    const char *nl = strchr(p, '\n');
    CHECK(nl && strncmp(p, "herd-tokenizer-golden 1", (size_t)(nl - p)) == 0);
    for (p = nl ? nl + 1 : ""; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (!nl)
            break;
        cJSON *j = cJSON_ParseWithLength(p, (size_t)(nl - p));
        const cJSON *jt = cJSON_GetObjectItemCaseSensitive(j, "text");
        const cJSON *ji = cJSON_GetObjectItemCaseSensitive(j, "ids");
        bool special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "parse_special"));
        if (!cJSON_IsString(jt) || !cJSON_IsArray(ji)) {
            CHECK_MSG(0, "%s: bad golden line", name);
            cJSON_Delete(j);
            continue;
        }
        (*total)++;
        size_t nw = (size_t)cJSON_GetArraySize(ji), i = 0;
        int32_t *want = malloc((nw + 1) * sizeof(int32_t));
        const cJSON *it;
        cJSON_ArrayForEach(it, ji)
            want[i++] = (int32_t)it->valueint;
        const char *s = jt->valuestring;
        size_t sl = strlen(s);
        const cJSON *jh = cJSON_GetObjectItemCaseSensitive(j, "hex");
        char raw[4096];
        if (cJSON_IsString(jh) && strlen(jh->valuestring) / 2 < sizeof(raw)) {
            sl = strlen(jh->valuestring) / 2;
            for (size_t h = 0; h < sl; h++) {
                unsigned v = 0;
                for (int d = 0; d < 2; d++) {
                    char c = jh->valuestring[2 * h + (size_t)d];
                    v = v * 16 + (unsigned)(c <= '9' ? c - '0' : c - 'a' + 10);
                }
                raw[h] = (char)v;
            }
            s = raw;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        herd_status st = herd_tokenize(t, s, sl, false, special, &ids, &n);
        int ok = st == HERD_OK && ids_equal(ids, n, want, nw);
        CHECK_MSG(ok, "%s: golden %d (%.40s): got %zu ids, want %zu", name, *total, s, n, nw);
        char *text = NULL;
        size_t len = 0;
        if (!special) {
            CHECK(herd_detokenize(t, ids, n, &text, &len) == HERD_OK && len == sl &&
                  memcmp(text, s, sl) == 0);
            herd_free(text);
            text = stream_decode(t, ids, n, &len);
            CHECK_MSG(text && len == sl && memcmp(text, s, sl) == 0, "%s: stream %d", name,
                      *total);
            herd_free(text);
        }
        pass += ok;
        herd_free(ids);
        free(want);
        cJSON_Delete(j);
    }
    return pass;
}

static void test_real(void)
{
    const char *data = getenv("HERD_SHARED_DATA");
    const char *tests = getenv("HERD_TESTS");
    char json[1024], model[1024], gold[1024];
    snprintf(json, sizeof(json), "%s/llama3/tokenizer.json", data ? data : "");
    snprintf(model, sizeof(model), "%s/llama3/tokenizer.model", data ? data : "");
    snprintf(gold, sizeof(gold), "%s/golden/tokenizer/llama3.golden", tests ? tests : "tests");
    if (!data || !herd_file_exists(json) || !herd_file_exists(model)) {
        printf("SKIP real tokenizers: %s absent (Llama 3 tokenizer.json / tokenizer.model, "
               "see ../shared/data/README.md)\n", json);
        return;
    }
    char *golden = NULL;
    size_t glen = 0;
    CHECK(herd_read_file(gold, &golden, &glen) == HERD_OK);
    const char *gguf = getenv("HERD_TOK_GGUF");
    const char *paths[3] = {json, model, gguf};
    const char *names[3] = {"tokenizer.json", "tokenizer.model", "gguf"};
    for (int k = 0; k < 3 && golden; k++) {
        if (!paths[k] || !*paths[k]) {
            CHECK_MSG(0, "HERD_TOK_GGUF not set: the GGUF fixture did not run");
            continue;
        }
        herd_tokenizer *t = NULL;
        double t0 = herd_time_s();
        herd_status s = herd_tokenizer_load(paths[k], &t);
        double ms = (herd_time_s() - t0) * 1e3;
        CHECK_MSG(s == HERD_OK, "%s: %s", names[k], herd_last_error());
        if (!t)
            continue;
        CHECK(herd_tokenizer_n_vocab(t) == 128256);
        CHECK(herd_token_special(t, "<|begin_of_text|>") == 128000);
        CHECK(herd_token_special(t, "<|eot_id|>") == 128009);
        CHECK(herd_token_special(t, "<|eom_id|>") == 128008);
        CHECK(herd_token_special(t, "<|python_tag|>") == 128010);
        CHECK(herd_token_special(t, "<|finetune_right_pad_id|>") == 128004);
        CHECK(herd_token_special(t, "<|start_header_id|>") == 128006);
        int total = 0;
        int pass = run_golden(t, names[k], golden, &total);
        printf("%s: loaded in %.1f ms, golden %d/%d\n", names[k], ms, pass, total);
        CHECK(total >= 500 && pass == total);
        herd_tokenizer_free(t);
    }
    herd_free(golden);
}

int main(void)
{
    test_tiny();
    test_bad_files();
    test_real();
    return check_done();
}
