/*
 * fuzz_pth.c - fuzz target for the PyTorch checkpoint reader (format/pth.c: the zip
 * directory and the restricted unpickler): any bytes give HERD_OK or a clean error; on
 * success every tensor lies inside the mapping and its first row is read.
 */
#include "format/format.h"
#include "quant/quant.h"

#include "fuzz_main.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_tmp_file(data, size);
    struct pth_file *f = NULL;
    if (path && pth_open(path, &f) == HERD_OK) {
        static float row[4096];
        for (size_t i = 0; i < f->n_tensors; i++) {
            const struct tensor_info *t = &f->tensors[i];
            const uint8_t *p = t->data, *b = f->map.data;
            FUZZ_ASSERT(t->nbytes == 0 || (p >= b && t->nbytes <= f->map.size &&
                                           (size_t)(p - b) <= f->map.size - t->nbytes));
            FUZZ_ASSERT(pth_find_tensor(f, t->name) != NULL);
            size_t es = t->type == HERD_DTYPE_F32 ? 4 : 2;
            if (t->ne[0] > 0 && t->ne[0] <= 4096 && t->nbytes >= (size_t)t->ne[0] * es &&
                ((uintptr_t)t->data % es) == 0)
                dequantize_row(t->type, row, t->data, t->ne[0]);
        }
        pth_close(f);
    }
    return 0;
}
