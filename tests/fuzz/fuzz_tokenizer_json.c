/*
 * fuzz_tokenizer_json.c - fuzz target for the tokenizer.json loader (tok_load_json: the
 * cursor scanner over the top level and model.vocab, cJSON for added_tokens and the
 * pre-tokenizer). Any bytes give HERD_OK or a clean error; a vocabulary that loads must
 * tokenize the input itself and a fixed mixed text with every fuzz_tokenizer.h invariant.
 */
#include "fuzz_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    herd_tokenizer *t = NULL;
    if (tok_load_json(data, size, &t) != HERD_OK)
        return 0;
    fuzz_check_loaded(t, data, size);
    herd_tokenizer_free(t);
    return 0;
}
