/*
 * fuzz_tokenize.c - fuzz target for encoding text: any bytes through herd_tokenize with
 * Llama 3's vocabulary ($HERD_SHARED_DATA/llama3/tokenizer.model; a tiny generated one
 * when absent). The first byte picks parse_special (bit 0) and forces every piece through
 * one merge loop (bit 1: the heap, bit 2: the rescanning one) before the fuzz_tokenizer.h
 * checks, which compare it with the other loop; the rest is the text. A second check reads
 * the text as a run of letters (each byte mapped to a-z), one pre-tokenizer piece as long
 * as the input, so long words reach the heap path with realistic merges.
 */
#include "fuzz_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    herd_tokenizer *t = fuzz_tokenizer(1);
    uint8_t flags = data[0];
    t->bpe_scan_max = (flags & 2) ? 0 : (flags & 4) ? SIZE_MAX : BPE_SCAN_MAX;
    fuzz_check_text(t, data + 1, size - 1, flags & 1);
    uint8_t *word = malloc(size);
    if (word) {
        for (size_t i = 0; i + 1 < size; i++)
            word[i] = (uint8_t)('a' + data[i + 1] % 26);
        fuzz_check_text(t, word, size - 1, false);
        free(word);
    }
    t->bpe_scan_max = BPE_SCAN_MAX;
    return 0;
}
