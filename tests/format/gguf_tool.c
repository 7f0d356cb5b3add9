/*
 * gguf_tool.c - test helper for the interoperability check with the gguf Python package
 * (tests/format/gguf_py_check.py):
 *   gguf_tool write PATH   writes a sample GGUF with herd's writer
 *   gguf_tool dump PATH    reads a GGUF with herd's reader and prints one line per key and
 *                          tensor: "kv KEY TYPE VALUE" / "tensor NAME TYPE ne0,ne1,.. NBYTES
 *                          SUM", SUM being the sum of the dequantized values (%.9g).
 */
#include "format/format.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>

static int write_sample(const char *path)
{
    static float f32[64 * 3], src[512];
    static uint16_t f16[64 * 2], bf16[32];
    static struct block_q8_0 q8[4];
    static struct block_q4_k q4k[2];
    static struct block_q6_k q6k[2];
    for (int i = 0; i < 64 * 3; i++)
        f32[i] = (float)i * 0.25f - 3.0f;
    for (int i = 0; i < 128; i++)
        f16[i] = f32_to_fp16((float)(i % 17) - 8.0f);
    for (int i = 0; i < 32; i++)
        bf16[i] = f32_to_bf16((float)i / 3.0f);
    for (int i = 0; i < 512; i++)
        src[i] = (float)((i * 7919) % 211) / 100.0f - 1.0f;
    quantize_row(HERD_DTYPE_Q8_0, q8, src, 128);
    quantize_row(HERD_DTYPE_Q4_K, q4k, src, 512);
    quantize_row(HERD_DTYPE_Q6_K, q6k, src, 512);
    struct gguf_str toks[3] = {{"<s>", 3}, {"\xc4\xa0the", 5}, {"x", 1}};
    int32_t types[3] = {3, 1, 1};
    float scores[3] = {0.0f, -1.5f, 2.0f};
    struct gguf_writer *w;
    int64_t ne_a[2] = {64, 3}, ne_b[2] = {64, 2}, ne_c[1] = {32}, ne_d[2] = {32, 4};
    int64_t ne_e[2] = {256, 2};
    herd_status s = gguf_writer_new(&w);
    if (s) goto out;
    if ((s = gguf_writer_set_str(w, "general.architecture", "llama")) ||
        (s = gguf_writer_set_str(w, "general.name", "herd sample")) ||
        (s = gguf_writer_set_u32(w, "llama.block_count", 2)) ||
        (s = gguf_writer_set_i32(w, "herd.test.i32", -123456)) ||
        (s = gguf_writer_set_f32(w, "llama.rope.freq_base", 500000.0f)) ||
        (s = gguf_writer_set_bool(w, "herd.test.bool", 1)) ||
        (s = gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3)) ||
        (s = gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, 3)) ||
        (s = gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", scores, 3)) ||
        (s = gguf_writer_add_tensor(w, "a.f32", HERD_DTYPE_F32, 2, ne_a, f32, sizeof f32)) ||
        (s = gguf_writer_add_tensor(w, "b.f16", HERD_DTYPE_F16, 2, ne_b, f16, sizeof f16)) ||
        (s = gguf_writer_add_tensor(w, "c.bf16", HERD_DTYPE_BF16, 1, ne_c, bf16, sizeof bf16)) ||
        (s = gguf_writer_add_tensor(w, "d.q8_0", HERD_DTYPE_Q8_0, 2, ne_d, q8, sizeof q8)) ||
        (s = gguf_writer_add_tensor(w, "e.q4_k", HERD_DTYPE_Q4_K, 2, ne_e, q4k, sizeof q4k)) ||
        (s = gguf_writer_add_tensor(w, "f.q6_k", HERD_DTYPE_Q6_K, 2, ne_e, q6k, sizeof q6k)))
        goto out;
    s = gguf_writer_write(w, path);
out:
    gguf_writer_free(w);
    if (s)
        fprintf(stderr, "gguf_tool: %s\n", herd_last_error());
    return s ? 1 : 0;
}

static void print_kv(const struct gguf_kv *kv)
{
    printf("kv %.*s %d ", (int)kv->key.n, kv->key.p, (int)kv->type);
    switch (kv->type) {
    case GGUF_STRING: printf("%.*s", (int)kv->str.n, kv->str.p); break;
    case GGUF_FLOAT32: case GGUF_FLOAT64: printf("%.9g", kv->v.f); break;
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64:
        printf("%lld", (long long)kv->v.i);
        break;
    case GGUF_ARRAY: printf("[%d x %llu]", (int)kv->arr_type, (unsigned long long)kv->arr_n);
        break;
    default: printf("%llu", (unsigned long long)kv->v.u); break;
    }
    printf("\n");
}

static int dump(const char *path)
{
    struct gguf_file *f;
    if (gguf_open(path, &f) != HERD_OK) {
        fprintf(stderr, "gguf_tool: %s\n", herd_last_error());
        return 1;
    }
    for (uint64_t i = 0; i < f->n_kv; i++)
        print_kv(&f->kv[i]);
    int rc = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct tensor_info *t = &f->tensors[i];
        int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        float *y = malloc((size_t)n * sizeof *y + 1);
        double sum = 0;
        size_t row = dtype_row_bytes(t->type, t->ne[0]);
        for (int64_t r = 0; y && r < n / t->ne[0]; r++) {
            if (dequantize_row(t->type, y + r * t->ne[0], (const uint8_t *)t->data + r * row,
                               t->ne[0]) != HERD_OK)
                rc = 1;
        }
        for (int64_t k = 0; y && k < n; k++)
            sum += y[k];
        printf("tensor %s %s %lld,%lld,%lld,%lld %zu %.9g\n", t->name, herd_dtype_name(t->type),
               (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
               (long long)t->ne[3], t->nbytes, sum);
        free(y);
    }
    gguf_close(f);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "write") == 0)
        return write_sample(argv[2]);
    if (argc == 3 && strcmp(argv[1], "dump") == 0)
        return dump(argv[2]);
    fprintf(stderr, "usage: gguf_tool write|dump PATH\n");
    return 2;
}
