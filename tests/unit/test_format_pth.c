/*
 * test_format_pth.c - the PyTorch checkpoint reader (format/pth.c) on a file written by real
 * torch.save (tests/fuzz/corpus/pth/torch_ordereddict.pth: an OrderedDict of f32, bf16 and
 * f16 tensors, two of them views into one shared storage at offsets 4 and 8).
 */
#include "check.h"
#include "format/format.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>

static void test_torch_file(void)
{
    const char *dir = getenv("HERD_TESTS");
    char path[1024];
    snprintf(path, sizeof path, "%s/fuzz/corpus/pth/torch_ordereddict.pth", dir ? dir : "tests");
    struct pth_file *f = NULL;
    herd_status s = pth_open(path, &f);
    CHECK_MSG(s == HERD_OK, "%s", herd_last_error());
    if (s != HERD_OK)
        return;
    CHECK(f->n_tensors == 5);
    const struct tensor_info *e = pth_find_tensor(f, "tok_embeddings.weight");
    CHECK(e && e->type == HERD_DTYPE_F32 && e->n_dims == 2 && e->ne[0] == 4 && e->ne[1] == 6);
    CHECK(e && ((const float *)e->data)[23] == 23.0f);
    const struct tensor_info *n = pth_find_tensor(f, "norm.weight");
    float row[8];
    CHECK(n && n->type == HERD_DTYPE_BF16 && n->ne[0] == 4);
    CHECK(n && dequantize_row(n->type, row, n->data, 4) == HERD_OK && row[3] == 1.0f);
    const struct tensor_info *q = pth_find_tensor(f, "layers.0.attention.wq.weight");
    CHECK(q && q->type == HERD_DTYPE_F16 && q->ne[0] == 4 && q->ne[1] == 2);
    CHECK(q && dequantize_row(q->type, row, q->data, 8) == HERD_OK && row[7] == 7.0f);
    const struct tensor_info *a = pth_find_tensor(f, "view.a"), *b = pth_find_tensor(f, "view.b");
    CHECK(a && a->n_dims == 1 && a->ne[0] == 4 && ((const float *)a->data)[0] == 4.0f);
    CHECK(b && b->ne[0] == 4 && b->ne[1] == 2 && ((const float *)b->data)[7] == 15.0f);
    CHECK(a && b && (const float *)b->data - (const float *)a->data == 4);
    pth_close(f);
}

int main(void)
{
    test_torch_file();
    return check_done();
}
