/*
 * fuzz_hf_model.c - fuzz target for loading a Hugging Face model folder and running it.
 * The input is up to seven files cut at FUZZ_SEP, written into a temporary folder under
 * the names below (config.json, model.safetensors, tokenizer.json, generation_config.json,
 * and an index with two shards); any bytes give HERD_OK or a clean error, and a model that
 * loads runs a 2-token forward pass (fuzz_model.h).
 */
#include "fuzz_model.h"

static const char *const names[] = {
    "config.json", "model.safetensors", "tokenizer.json", "generation_config.json",
    "model.safetensors.index.json", "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
};
#define N_FILES ((int)(sizeof names / sizeof names[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[N_FILES] = {0};
    size_t len[N_FILES] = {0};
    fuzz_split(data, size, part, len, N_FILES);
    const char *dir = fuzz_tmp_dir(N_FILES, names, part, len);
    if (dir)
        fuzz_run_model(dir);
    fuzz_tmp_dir_remove(N_FILES, names);
    return 0;
}
