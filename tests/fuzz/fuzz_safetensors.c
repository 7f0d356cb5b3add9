/*
 * fuzz_safetensors.c - fuzz target for the safetensors reader: any bytes give HERD_OK or a
 * clean error; on success every tensor's first row is read.
 */
#include "format/format.h"
#include "quant/quant.h"

#include "fuzz_main.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_tmp_file(data, size);
    struct st_file *f = NULL;
    if (path && st_open(path, &f) == HERD_OK) {
        static float row[4096];
        for (size_t i = 0; i < f->n_tensors; i++) {
            const struct tensor_info *t = &f->tensors[i];
            if (t->ne[0] > 0 && t->ne[0] <= 4096 && t->nbytes &&
                ((uintptr_t)t->data % 4) == 0)
                dequantize_row(t->type, row, t->data, t->ne[0]);
        }
        st_close(f);
    }
    return 0;
}
