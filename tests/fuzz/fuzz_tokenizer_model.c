/*
 * fuzz_tokenizer_model.c - fuzz target for the tokenizer.model loader (tok_load_tiktoken:
 * Meta's "base64 rank" lines, then its 256 specials). Any bytes give HERD_OK or a clean
 * error; a vocabulary that loads must tokenize the input itself and a fixed mixed text
 * with every fuzz_tokenizer.h invariant.
 */
#include "fuzz_tokenizer.h"

static const char sample[] = "Hello world, it's 2024!\n\t  <|eot_id|> caf\xc3\xa9 \xe4\xbd\xa0\xe5"
                             "\xa5\xbd \xf0\x9f\x98\x80 \xff\xc3( 12345 aaaaaaaaaaaaaaaaaaaaaa";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    herd_tokenizer *t = NULL;
    if (tok_load_tiktoken(data, size, &t) != HERD_OK)
        return 0;
    fuzz_check_text(t, (const uint8_t *)sample, sizeof sample - 1, false);
    fuzz_check_text(t, (const uint8_t *)sample, sizeof sample - 1, true);
    fuzz_check_text(t, data, size < 4096 ? size : 4096, false);
    herd_tokenizer_free(t);
    return 0;
}
