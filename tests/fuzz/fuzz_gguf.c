/*
 * fuzz_gguf.c - fuzz target for the GGUF reader: any bytes must give HERD_OK or a clean
 * error, never a crash, out-of-bounds read or leak. On success every accessor is exercised
 * (typed getters, string arrays, tensor data within the mapping, dequantizing row 0).
 */
#include "format/format.h"
#include "quant/quant.h"

#include "fuzz_main.h"

static void touch(const struct gguf_file *f)
{
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const struct gguf_kv *kv = &f->kv[i];
        if (kv->type == GGUF_ARRAY && kv->arr_type == GGUF_STRING) {
            struct gguf_str *all = NULL;
            if (gguf_str_array_all(kv, &all) == HERD_OK)
                herd_free(all);
        } else if (kv->type == GGUF_ARRAY && kv->arr_n) {
            int64_t v;
            double d;
            gguf_arr_get_int(kv, kv->arr_n - 1, &v);
            gguf_arr_get_float(kv, kv->arr_n - 1, &d);
        }
    }
    int64_t v;
    double d;
    struct gguf_str s;
    int found;
    gguf_get_int(f, "llama.block_count", &v, &found);
    gguf_get_float(f, "llama.rope.freq_base", &d, &found);
    gguf_get_str(f, "general.architecture", &s, &found);
    static float row[4096];
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct tensor_info *t = &f->tensors[i];
        if (t->ne[0] > 0 && t->ne[0] <= 4096 && dtype_supported(t->type) && t->nbytes &&
            ((uintptr_t)t->data % 4) == 0)
            dequantize_row(t->type, row, t->data, t->ne[0]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_tmp_file(data, size);
    struct gguf_file *f = NULL;
    if (path && gguf_open(path, &f) == HERD_OK) {
        touch(f);
        gguf_close(f);
    }
    return 0;
}
