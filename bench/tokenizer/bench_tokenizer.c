/*
 * bench_tokenizer.c - herd's tokenizer speed, single thread: vocabulary load time, then
 * encode and decode throughput over a corpus file cut into documents at the separator line
 * "\x1e\n" (what bench/tokenizer/run_bench.py writes; the other encoders get the same
 * documents). Prints one JSON object: load_ms, encode_mbs, decode_mbs, n_tokens, and an
 * FNV-1a hash of all ids so the runner can check herd's ids equal tiktoken's.
 *
 * usage: bench_tokenizer TOKENIZER CORPUS [REPEATS]
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

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_tokenizer TOKENIZER CORPUS [REPEATS]\n");
        return 2;
    }
    int repeats = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 3;
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
