/*
 * fuzz_tokenizer_json.c - fuzz target for the tokenizer.json loader (tok_load_json: the
 * cursor scanner over the top level and model.vocab, cJSON for added_tokens and the
 * pre-tokenizer). Any bytes give HERD_OK or a clean error; a vocabulary that loads must
 * tokenize the input itself and a fixed mixed text with every fuzz_tokenizer.h invariant.
 */
#include "fuzz_tokenizer.h"

static const char sample[] = "Hello world, it's 2024!\n\t  <|eot_id|> caf\xc3\xa9 \xe4\xbd\xa0\xe5"
                             "\xa5\xbd \xf0\x9f\x98\x80 \xff\xc3( 12345 aaaaaaaaaaaaaaaaaaaaaa";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    herd_tokenizer *t = NULL;
    if (tok_load_json(data, size, &t) != HERD_OK)
        return 0;
    fuzz_check_text(t, (const uint8_t *)sample, sizeof sample - 1, false);
    fuzz_check_text(t, (const uint8_t *)sample, sizeof sample - 1, true);
    fuzz_check_text(t, data, size < 4096 ? size : 4096, false);
    herd_tokenizer_free(t);
    return 0;
}
