/*
 * fuzz_gguf_model.c - fuzz target for loading a whole model from a GGUF file (reader,
 * hyper-parameters, tensor binding and shape checks, repacking, the tokenizer in the
 * file) and running it: any bytes give HERD_OK or a clean error, and a model that loads
 * runs a 2-token forward pass (fuzz_model.h).
 */
#include "fuzz_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_tmp_file(data, size);
    if (path)
        fuzz_run_model(path);
    return 0;
}
