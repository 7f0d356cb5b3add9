/*
 * fuzz_model.h - what the whole-model fuzz targets do with a model that loads: read its
 * info, make a small context (16 positions, one thread) and run a 2-token forward pass,
 * checking that the call succeeds (a loaded model must be runnable) and writes n_vocab
 * logits. Values are not checked: fuzzed weights may well be NaN.
 */
#ifndef HERD_FUZZ_MODEL_H
#define HERD_FUZZ_MODEL_H

#include "fuzz_main.h"

static inline void fuzz_run_model(const char *path)
{
    herd_model_params mp = {.n_threads = 1};
    herd_model *m = NULL;
    if (herd_model_load(path, &mp, &m) != HERD_OK)
        return;
    const herd_model_info *info = herd_model_get_info(m);
    FUZZ_ASSERT(info && info->n_vocab > 0 && info->dim > 0 && info->n_layers > 0);
    herd_context_params cp = herd_context_default_params();
    cp.n_ctx = 16;
    cp.n_batch = 4;
    cp.n_threads = 1;
    herd_context *c = NULL;
    if (herd_context_new(m, &cp, &c) == HERD_OK) {
        int32_t tokens[2] = {info->bos_id >= 0 && info->bos_id < info->n_vocab ? info->bos_id
                                                                                : 0,
                             info->n_vocab - 1};
        int32_t pos[2] = {0, 1}, seq[2] = {0, 0};
        int8_t want[2] = {0, 1};
        herd_batch b = {2, tokens, pos, seq, want};
        float *logits = malloc((size_t)info->n_vocab * sizeof(float));
        if (logits) {
            logits[info->n_vocab - 1] = 0.5f;
            herd_status s = herd_decode(c, &b, logits);
            if (s != HERD_OK)
                fprintf(stderr, "fuzz: decode failed on a loaded model: %s\n",
                        herd_last_error());
            FUZZ_ASSERT(s == HERD_OK);
            free(logits);
        }
        herd_context_free(c);
    }
    herd_model_free(m);
}

#endif /* HERD_FUZZ_MODEL_H */
