/*
 * llamacpp_logits.c - every position's logits of a token sequence as llama.cpp computes
 * them, for comparing herd with llama.cpp on the same GGUF file (compare_llamacpp.py).
 * Built against a llama.cpp build beside the project (its public llama.h / libllama only);
 * not part of herd's build.
 *
 * usage: llamacpp_logits MODEL.gguf IDS OUT.bin [threads]
 *   IDS: token ids separated by commas; OUT: n x n_vocab float32, row-major.
 */
#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: llamacpp_logits MODEL.gguf IDS OUT.bin [threads]\n");
        return 2;
    }
    int n = 0, cap = 1024;
    llama_token *ids = malloc((size_t)cap * sizeof *ids);
    for (char *p = argv[2]; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        if (n == cap)
            ids = realloc(ids, (size_t)(cap *= 2) * sizeof *ids);
        ids[n++] = (llama_token)v;
        p = *end == ',' ? end + 1 : end;
    }
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "llamacpp_logits: cannot load %s\n", argv[1]);
        return 1;
    }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(n + 16);
    cp.n_batch = cp.n_ubatch = (uint32_t)n;
    cp.n_threads = cp.n_threads_batch = argc > 4 ? atoi(argv[4]) : 2;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "llamacpp_logits: no context\n");
        return 1;
    }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = ids[i];
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;
    }
    b.n_tokens = n;
    if (llama_decode(ctx, b) != 0) {
        fprintf(stderr, "llamacpp_logits: llama_decode failed\n");
        return 1;
    }
    FILE *f = fopen(argv[3], "wb");
    if (!f)
        return 1;
    for (int i = 0; i < n; i++)
        fwrite(llama_get_logits_ith(ctx, i), sizeof(float), (size_t)n_vocab, f);
    fclose(f);
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(model);
    free(ids);
    return 0;
}
