/*
 * ggml_quant_harness.c - NOT part of herd's build. A tiny driver that runs ggml's own
 * reference quantizers so scripts/golden_quant.py can record their bytes as golden vectors
 * (herd's quantizers must reproduce them). Build it against a ggml checkout kept outside
 * this repository, e.g.:
 *   git clone https://github.com/ggml-org/ggml /tmp/ggml
 *   cc -O2 -std=c11 -I/tmp/ggml/include -I/tmp/ggml/src \
 *      -c /tmp/ggml/src/ggml-quants.c -o /tmp/q.o
 *   cc -O2 -std=c11 -I/tmp/ggml/include -I/tmp/ggml/src \
 *      scripts/ggml_quant_harness.c /tmp/q.o -lm -o /tmp/ggml_quant_harness
 * Usage: ggml_quant_harness TYPE N IN.f32 OUT.bin   (TYPE: ggml type id 2, 8, 12..15)
 */
#include "ggml-quants.h" /* defines GGML_COMMON_DECL_C, then brings in the block structs */

#include <stdio.h>
#include <stdlib.h>

/* ggml-quants.o refers to these for paths the harness never takes. */
void ggml_abort(const char *file, int line, const char *fmt, ...)
{
    (void)file;
    (void)line;
    (void)fmt;
    abort();
}
size_t ggml_row_size(enum ggml_type t, int64_t n)
{
    (void)t;
    (void)n;
    abort();
}
const char *ggml_type_name(enum ggml_type t)
{
    (void)t;
    return "?";
}
size_t ggml_type_size(enum ggml_type t)
{
    (void)t;
    abort();
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return 2;
    int type = (int)strtol(argv[1], NULL, 10);
    long n = strtol(argv[2], NULL, 10);
    float *x = malloc((size_t)n * sizeof *x);
    void *y = malloc((size_t)n * 2 + 1024);
    FILE *f = fopen(argv[3], "rb");
    if (!x || !y || !f || fread(x, sizeof *x, (size_t)n, f) != (size_t)n)
        return 1;
    fclose(f);
    size_t size = 0;
    switch (type) {
    case 2: quantize_row_q4_0_ref(x, y, n); size = (size_t)n / 32 * 18; break;
    case 8: quantize_row_q8_0_ref(x, y, n); size = (size_t)n / 32 * 34; break;
    case 12: quantize_row_q4_K_ref(x, y, n); size = (size_t)n / 256 * 144; break;
    case 13: quantize_row_q5_K_ref(x, y, n); size = (size_t)n / 256 * 176; break;
    case 14: quantize_row_q6_K_ref(x, y, n); size = (size_t)n / 256 * 210; break;
    case 15: quantize_row_q8_K_ref(x, y, n); size = (size_t)n / 256 * 292; break;
    default: return 2;
    }
    f = fopen(argv[4], "wb");
    if (!f || fwrite(y, 1, size, f) != size)
        return 1;
    fclose(f);
    return 0;
}
