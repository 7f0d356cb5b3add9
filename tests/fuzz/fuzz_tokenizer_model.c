/*
 * fuzz_tokenizer_model.c - fuzz target for the tokenizer.model loader (tok_load_tiktoken:
 * Meta's "base64 rank" lines, then its 256 specials). Any bytes give HERD_OK or a clean
 * error; a vocabulary that loads must tokenize the input itself and a fixed mixed text
 * with every fuzz_tokenizer.h invariant.
 */
#include "fuzz_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    herd_tokenizer *t = NULL;
    if (tok_load_tiktoken(data, size, &t) != HERD_OK)
        return 0;
    fuzz_check_loaded(t, data, size);
    herd_tokenizer_free(t);
    return 0;
}
