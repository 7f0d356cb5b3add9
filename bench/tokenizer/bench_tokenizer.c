/*
 * bench_tokenizer.c - herd's tokenizer speed, single thread: vocabulary load time, then
 * encode and decode throughput over a corpus file cut into documents at the separator line
 * "\x1e\n" (what bench/tokenizer/run_bench.py writes; the other encoders get the same
 * documents). Prints one JSON object: load_ms, encode_mbs, decode_mbs, n_tokens, and an
 * FNV-1a hash of all ids so the runner can check herd's ids equal tiktoken's.
 *
 * usage: bench_tokenizer TOKENIZER CORPUS [REPEATS]
 *        bench_tokenizer TOKENIZER CORPUS --long BYTES [REPEATS]
 *
 * --long: pathological single pieces against normal text of the same size, each encoded as
 * one herd_tokenize call (best of REPEATS, default 3): "word" is BYTES random lowercase
 * letters (one \p{L}+ piece for the pre-tokenizer), "same" one letter repeated, "space" a
 * run of spaces, "punct" a run of ASCII punctuation, and "text" the corpus's first BYTES
 * bytes. Prints one JSON object of seconds per case and word/text, the ratio that shows
 * whether BPE stays linear in a piece's length.
 */
#include "herd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); /* CPU time: fair on a busy machine */
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU seconds of the best of `repeats` encodes of text[0..n) as one call; -1 on error. */
static double time_one(const herd_tokenizer *tok, const char *text, size_t n, int repeats,
                       size_t *n_tokens)
{
    double best = 1e9;
    for (int r = 0; r < repeats; r++) {
        int32_t *ids = NULL;
        double t0 = now_s();
        if (herd_tokenize(tok, text, n, false, false, &ids, n_tokens)) {
            fprintf(stderr, "bench_tokenizer: %s\n", herd_last_error());
            return -1;
        }
        double dt = now_s() - t0;
        herd_free(ids);
        if (dt < best)
            best = dt;
    }
    return best;
}

static int bench_long(const herd_tokenizer *tok, const char *corpus, size_t size, size_t n,
                      int repeats)
{
    if (n > size)
        n = size;
    while (n > 0 && ((unsigned char)corpus[n] & 0xC0) == 0x80)
        n--; /* cut the text at a character boundary */
    char *buf = malloc(n + 1);
    if (!buf)
        return 1;
    static const char *names[] = {"word", "same", "space", "punct", "text"};
    static const char punct[] = "!#$%&()*+,-./:;<=>?@[]^_`{|}~";
    double secs[5];
    size_t toks[5];
    uint64_t x = 0x9E3779B97F4A7C15ull; /* xorshift state: the same word every run */
    for (int c = 0; c < 5; c++) {
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = c == 0 ? (char)('a' + x % 26) : c == 1 ? 'a' : c == 2 ? ' '
                   : c == 3 ? punct[x % (sizeof(punct) - 1)] : corpus[i];
        }
        secs[c] = time_one(tok, buf, n, repeats, &toks[c]);
        if (secs[c] < 0)
            return 1;
    }
    printf("{\"bytes\": %zu", n);
    for (int c = 0; c < 5; c++)
        printf(", \"%s_s\": %.4f, \"%s_tokens\": %zu", names[c], secs[c], names[c], toks[c]);
    printf(", \"word_over_text\": %.2f}\n", secs[0] / secs[4]);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_tokenizer TOKENIZER CORPUS [REPEATS]\n");
        return 2;
    }
    int long_mode = argc > 4 && strcmp(argv[3], "--long") == 0;
    size_t long_bytes = long_mode ? (size_t)strtoull(argv[4], NULL, 10) : 0;
    int arg_rep = long_mode ? 5 : 3;
    int repeats = argc > arg_rep ? (int)strtol(argv[arg_rep], NULL, 10) : 3;
    double best_load = 1e9;
    herd_tokenizer *tok = NULL;
    for (int r = 0; r < 3; r++) {
        herd_tokenizer_free(tok);
        double t0 = now_s();
        if (herd_tokenizer_load(argv[1], &tok)) {
            fprintf(stderr, "bench_tokenizer: %s\n", herd_last_error());
            return 1;
        }
        double dt = now_s() - t0;
        if (dt < best_load)
            best_load = dt;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        fprintf(stderr, "bench_tokenizer: cannot open %s\n", argv[2]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    if (!text || fread(text, 1, (size_t)size, f) != (size_t)size)
        return 1;
    fclose(f);
    text[size] = '\0';
    if (long_mode) {
        int rc = bench_long(tok, text, (size_t)size, long_bytes, repeats);
        free(text);
        herd_tokenizer_free(tok);
        return rc;
    }
    /* documents: [start, end) pairs split at "\x1e\n" */
    size_t n_docs = 0, cap = 1024;
    size_t *doc = malloc(cap * 2 * sizeof(size_t));
    size_t at = 0;
    while (at < (size_t)size) {
        char *sep = memmem(text + at, (size_t)size - at, "\x1e\n", 2);
        size_t end = sep ? (size_t)(sep - text) : (size_t)size;
        if (n_docs == cap) {
            cap *= 2;
            doc = realloc(doc, cap * 2 * sizeof(size_t));
        }
        doc[2 * n_docs] = at;
        doc[2 * n_docs + 1] = end;
        n_docs++;
        at = sep ? end + 2 : (size_t)size;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < n_docs; i++)
        bytes += doc[2 * i + 1] - doc[2 * i];
    double best_enc = 1e9, best_dec = 1e9;
    uint64_t hash = 0;
    size_t n_tokens = 0;
    int32_t **ids = calloc(n_docs, sizeof(int32_t *));
    size_t *n_ids = calloc(n_docs, sizeof(size_t));
    for (int r = 0; r < repeats; r++) {
        for (size_t i = 0; i < n_docs; i++)
            herd_free(ids[i]);
        double t0 = now_s();
        for (size_t i = 0; i < n_docs; i++) {
            if (herd_tokenize(tok, text + doc[2 * i], doc[2 * i + 1] - doc[2 * i], false, false,
                              &ids[i], &n_ids[i])) {
                fprintf(stderr, "bench_tokenizer: %s\n", herd_last_error());
                return 1;
            }
        }
        double dt = now_s() - t0;
        if (dt < best_enc)
            best_enc = dt;
        t0 = now_s();
        for (size_t i = 0; i < n_docs; i++) {
            char *out = NULL;
            size_t len = 0;
            if (herd_detokenize(tok, ids[i], n_ids[i], &out, &len) ||
                len != doc[2 * i + 1] - doc[2 * i]) {
                fprintf(stderr, "bench_tokenizer: decode of document %zu differs\n", i);
                return 1;
            }
            herd_free(out);
        }
        dt = now_s() - t0;
        if (dt < best_dec)
            best_dec = dt;
    }
    hash = 1469598103934665603ull;
    for (size_t i = 0; i < n_docs; i++) {
        n_tokens += n_ids[i];
        for (size_t k = 0; k < n_ids[i]; k++) {
            hash ^= (uint64_t)(uint32_t)ids[i][k];
            hash *= 1099511628211ull;
        }
        herd_free(ids[i]);
    }
    printf("{\"load_ms\": %.1f, \"encode_mbs\": %.2f, \"decode_mbs\": %.1f, \"n_docs\": %zu, "
           "\"bytes\": %zu, \"n_tokens\": %zu, \"ids_hash\": \"%016llx\"}\n",
           best_load * 1e3, (double)bytes / best_enc / 1e6, (double)bytes / best_dec / 1e6, n_docs,
           bytes, n_tokens, (unsigned long long)hash);
    free(ids);
    free(n_ids);
    free(doc);
    free(text);
    herd_tokenizer_free(tok);
    return 0;
}
