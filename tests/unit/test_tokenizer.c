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
#include <stdint.h>        /* SIZE_MAX */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>          /* clock: CPU time of the long-word check */

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

/* Encodes text twice, with every piece merged by the rescanning loop and with every piece
 * through the heap; the two implementations of BPE must agree id for id. */
static int paths_agree(herd_tokenizer *t, const char *text, size_t len)
{
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    t->bpe_scan_max = SIZE_MAX;
    herd_status sa = herd_tokenize(t, text, len, false, false, &a, &na);
    t->bpe_scan_max = 0;
    herd_status sb = herd_tokenize(t, text, len, false, false, &b, &nb);
    t->bpe_scan_max = BPE_SCAN_MAX;
    int ok = sa == HERD_OK && sb == HERD_OK && ids_equal(a, na, b, nb);
    herd_free(a);
    herd_free(b);
    return ok;
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
    /* the heap path gives the same ids on the tie cases, and on long runs of them */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (!cases[i].special)
            CHECK_MSG(paths_agree(t, cases[i].text, cases[i].len), "tiny case %zu", i);
    char runs[600];
    for (size_t i = 0; i < sizeof(runs); i++)
        runs[i] = "abaxxxxbabx"[(i * 7 + i / 5) % 11];
    for (size_t n = 2; n <= sizeof(runs); n += 37)
        CHECK_MSG(paths_agree(t, runs, n), "tiny run of %zu", n);
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

/* Appends s to f as a JSON string body (quotes and backslashes escaped). */
static void json_put(FILE *f, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            fputc('\\', f);
        fputc(s[i], f);
    }
}

/* Writes a minimal tokenizer.json (the 256 byte tokens as GPT-2 byte-level strings, one
 * added token, Llama 3's Split regex); first_key, when not NULL, is an extra vocab entry
 * written first with id 256 (the added token then takes 257). */
static const char *write_tiny_json(const char *first_key)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/herd_test_tokjson_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "w");
    fputs("{\"version\": \"1.0\", \"normalizer\": null, \"model\": {\"type\": \"BPE\", "
          "\"vocab\": {", f);
    if (first_key) {
        fputc('"', f);
        json_put(f, first_key, strlen(first_key));
        fputs("\": 256, ", f);
    }
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        unsigned cp = printable ? (unsigned)b : 256u + (unsigned)extra++;
        char u[3];
        size_t n = cp < 0x80 ? 1 : 2;
        if (n == 1) {
            u[0] = (char)cp;
        } else {
            u[0] = (char)(0xC0 | (cp >> 6));
            u[1] = (char)(0x80 | (cp & 0x3F));
        }
        fputs(b ? ", \"" : "\"", f);
        json_put(f, u, n);
        fprintf(f, "\": %d", b);
    }
    fprintf(f, "}, \"merges\": []}, \"added_tokens\": [{\"id\": %d, \"content\": "
            "\"<|eot_id|>\"}], \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": "
            "{\"Regex\": \"", first_key ? 257 : 256);
    json_put(f, tok_llama3_pattern_text, strlen(tok_llama3_pattern_text));
    fputs("\"}}}\n", f);
    fclose(f);
    return path;
}

/* Every allocation failure while loading (and using) a tokenizer gives HERD_ERR_NOMEM with
 * a message saying so, never a bare status (herd_tokenizer_load would then report only the
 * path): fail the 1st, 2nd, ... allocation until the calls pass. */
static void test_nomem_messages(const char *path, const char *name)
{
    int failures = 0, silent = 0;
    for (long k = 0; k < 10000; k++) {
        herd_tokenizer *t = NULL;
        herd_clear_error();
        herd_alloc_fail_after(k);
        herd_status s = herd_tokenizer_load(path, &t);
        int32_t *ids = NULL;
        size_t n = 0;
        herd_detok_stream *ds = NULL;
        if (s == HERD_OK)
            s = herd_tokenize(t, "hello world", 11, false, false, &ids, &n);
        if (s == HERD_OK)
            s = herd_detok_stream_new(t, &ds);
        herd_alloc_fail_after(-1);
        herd_detok_stream_free(ds);
        herd_free(ids);
        herd_tokenizer_free(t);
        if (s == HERD_OK)
            break;
        failures++;
        if (s != HERD_ERR_NOMEM || !strstr(herd_last_error(), "memory")) {
            silent++;
            CHECK_MSG(0, "%s: allocation %ld failing gives status %d, message \"%s\"", name,
                      k, (int)s, herd_last_error());
        }
    }
    printf("%s: %d allocation failures, each with a message (%d without)\n", name, failures,
           silent);
    CHECK(failures > 5);
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
    remove(path);
    /* an empty file (mapped as NULL, 0: memchr must not see it) */
    FILE *e = fopen(path, "w");
    if (e)
        fclose(e);
    CHECK(herd_tokenizer_load(path, &t) == HERD_ERR_FORMAT && t == NULL);
    CHECK_MSG(strstr(herd_last_error(), "empty") != NULL, "%s", herd_last_error());
    remove(path);
    /* tokenizer.json: the minimal file loads; an empty first vocab key is refused (it used
     * to offset the still-NULL byte buffer) */
    const char *js = write_tiny_json(NULL);
    CHECK(js != NULL);
    CHECK_MSG(js && herd_tokenizer_load(js, &t) == HERD_OK, "%s", herd_last_error());
    CHECK(herd_tokenizer_n_vocab(t) == 257 && herd_token_special(t, "<|eot_id|>") == 256);
    herd_tokenizer_free(t);
    t = NULL;
    if (js)
        remove(js);
    js = write_tiny_json("");
    CHECK(js && herd_tokenizer_load(js, &t) == HERD_ERR_FORMAT && t == NULL);
    CHECK_MSG(strstr(herd_last_error(), "empty") != NULL, "%s", herd_last_error());
    if (js)
        remove(js);
    /* out of memory anywhere: a message every time */
    const char *extra2[] = {"ab", "ba"};
    path = write_tiny_model(extra2, 2);
    if (path) {
        test_nomem_messages(path, "tokenizer.model");
        remove(path);
    }
    js = write_tiny_json(NULL);
    if (js) {
        test_nomem_messages(js, "tokenizer.json");
        remove(js);
    }
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

/* Long single pieces (the heap path) against the rescanning loop: random words over small
 * alphabets, where merges cascade and ties are frequent, runs of one byte, whitespace and
 * punctuation runs; then a 256 KB word must encode in well under the quadratic loop's time
 * (about 10 s of CPU here before the heap; the bound leaves room for sanitizer builds). */
static void test_long_pieces(herd_tokenizer *t, const char *name)
{
    static const char *alphabets[] = {"ab", "abc", "aeinrst", "abcdefghijklmnopqrstuvwxyz",
                                      "Aa", " ", " \n", "!-=.", ("\xc3\xa9" "e")};
    uint64_t x = 12345;
    char *buf = malloc(300000);
    if (!buf)
        return;
    int agree = 0, cases = 0;
    for (size_t k = 0; k < sizeof(alphabets) / sizeof(alphabets[0]); k++) {
        size_t na = strlen(alphabets[k]);
        for (size_t len = 1; len <= 3000; len = len * 3 / 2 + 1) {
            for (size_t i = 0; i < len; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf[i] = alphabets[k][x % na];
            }
            size_t n = len;
            if (alphabets[k][0] == '\xc3') /* keep it valid UTF-8: é as whole pairs */
                for (size_t i = 0; i + 1 < n; i++)
                    if (buf[i] == '\xc3')
                        buf[++i] = '\xa9';
            cases++;
            int ok = paths_agree(t, buf, n);
            agree += ok;
            CHECK_MSG(ok, "%s: heap and scan differ on a %zu-byte run of \"%s\"", name, n,
                      alphabets[k]);
            memset(buf, alphabets[k][0], n);
            cases++;
            ok = paths_agree(t, buf, n);
            agree += ok;
            CHECK_MSG(ok, "%s: heap and scan differ on %zu x '%c'", name, n, alphabets[k][0]);
        }
    }
    printf("%s: heap == scan on %d/%d long pieces\n", name, agree, cases);
    const size_t big = 256 * 1024;
    for (size_t i = 0; i < big; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (char)('a' + x % 26);
    }
    int32_t *ids = NULL;
    size_t n = 0;
    clock_t c0 = clock();
    CHECK(herd_tokenize(t, buf, big, false, false, &ids, &n) == HERD_OK && n > 0);
    double secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
    printf("%s: a %zu-byte word in %.3f s CPU (%zu ids)\n", name, big, secs, n);
    CHECK_MSG(secs < 3.0, "%s: a 256 KB word took %.2f s: BPE is not linear", name, secs);
    char *text = NULL;
    size_t len = 0;
    CHECK(herd_detokenize(t, ids, n, &text, &len) == HERD_OK && len == big &&
          memcmp(text, buf, big) == 0);
    herd_free(text);
    herd_free(ids);
    free(buf);
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
        /* the longest token: 128 bytes in Meta's tokenizer.model (its longest base64 rank
         * decodes to 128 bytes; tiktoken agrees), and the maximum over every id's bytes */
        size_t longest = 1;
        for (int32_t id = 0; id < herd_tokenizer_n_vocab(t); id++) {
            size_t len = 0;
            if (herd_token_bytes(t, id, &len) && len > longest)
                longest = len;
        }
        CHECK_MSG(herd_tokenizer_max_token_bytes(t) == 128 && longest == 128, "%s: %zu, %zu",
                  names[k], herd_tokenizer_max_token_bytes(t), longest);
        int total = 0;
        int pass = run_golden(t, names[k], golden, &total);
        printf("%s: loaded in %.1f ms, golden %d/%d\n", names[k], ms, pass, total);
        CHECK(total >= 500 && pass == total);
        /* the same corpus with every piece through the heap, then through the scan */
        size_t modes[2] = {0, SIZE_MAX};
        for (int m = 0; m < 2; m++) {
            t->bpe_scan_max = modes[m];
            pass = run_golden(t, names[k], golden, &total);
            CHECK_MSG(pass == total, "%s: golden with bpe_scan_max %zu: %d/%d", names[k],
                      modes[m], pass, total);
        }
        t->bpe_scan_max = BPE_SCAN_MAX;
        if (k == 0)
            test_long_pieces(t, names[k]);
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
