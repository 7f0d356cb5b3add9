/*
 * test_format_gguf.c - the GGUF reader and writer: a writer round trip, every value type
 * from hand-built bytes, one hand-crafted bad file per failure class (status + a message
 * naming the file and field), truncation at every cut point of the header and many in the
 * data, and the allocation-failure loop (every failing allocation gives a clean
 * HERD_ERR_NOMEM). Files live in a fresh directory under /tmp, removed at the end.
 */
#include "check.h"
#include "format/format.h"
#include "quant/quant.h"

#include <stdio.h>  /* snprintf, FILE */
#include <stdlib.h> /* mkdtemp */
#include <unistd.h> /* rmdir, unlink */

static char dir[64];
static char path[256];

static void write_bytes(const char *p, const void *data, size_t n)
{
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n)) {
        printf("FAIL: cannot write %s\n", p);
        check_fail++;
    }
    if (f)
        fclose(f);
}

/* ---- a byte builder for hand-crafted files */

struct bb {
    uint8_t d[8192];
    size_t n;
};

static void bb_raw(struct bb *b, const void *p, size_t n)
{
    if (b->n + n <= sizeof b->d) {
        memcpy(b->d + b->n, p, n);
        b->n += n;
    }
}
static void bb_u8(struct bb *b, uint8_t v) { bb_raw(b, &v, 1); }
static void bb_u16(struct bb *b, uint16_t v) { bb_raw(b, &v, 2); }
static void bb_u32(struct bb *b, uint32_t v) { bb_raw(b, &v, 4); }
static void bb_u64(struct bb *b, uint64_t v) { bb_raw(b, &v, 8); }
static void bb_str(struct bb *b, const char *s)
{
    bb_u64(b, strlen(s));
    bb_raw(b, s, strlen(s));
}
static void bb_head(struct bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    b->n = 0;
    bb_raw(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}
static void bb_tensor(struct bb *b, const char *name, uint32_t n_dims, const uint64_t *ne,
                      uint32_t type, uint64_t offset)
{
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++)
        bb_u64(b, ne[i]);
    bb_u32(b, type);
    bb_u64(b, offset);
}
static void bb_pad(struct bb *b, size_t align)
{
    while (b->n % align)
        bb_u8(b, 0);
}

/* ---- writer round trip */

static void test_roundtrip(void)
{
    float f32[12];
    uint16_t f16[128];
    float src[256];
    struct block_q8_0 q8[2];
    struct block_q4_k q4k[1];
    for (int i = 0; i < 12; i++)
        f32[i] = (float)i - 5.5f;
    for (int i = 0; i < 128; i++)
        f16[i] = f32_to_fp16((float)i / 8);
    for (int i = 0; i < 256; i++)
        src[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    quantize_row(HERD_DTYPE_Q8_0, q8, src, 64);
    quantize_row(HERD_DTYPE_Q4_K, q4k, src, 256);
    struct gguf_str toks[3] = {{"a", 1}, {"bb", 2}, {"", 0}};
    int32_t ids[3] = {-1, 0, 7};
    float fl[2] = {1.5f, -2.25f};

    struct gguf_writer *w = NULL;
    CHECK(gguf_writer_new(&w) == HERD_OK);
    CHECK(gguf_writer_set_str(w, "general.architecture", "llama") == HERD_OK);
    CHECK(gguf_writer_set_u32(w, "llama.block_count", 2) == HERD_OK);
    CHECK(gguf_writer_set_i32(w, "x.i32", -42) == HERD_OK);
    CHECK(gguf_writer_set_f32(w, "llama.rope.freq_base", 500000.0f) == HERD_OK);
    CHECK(gguf_writer_set_bool(w, "x.bool", 1) == HERD_OK);
    CHECK(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3) == HERD_OK);
    CHECK(gguf_writer_set_arr_i32(w, "x.ids", ids, 3) == HERD_OK);
    CHECK(gguf_writer_set_arr_f32(w, "x.f", fl, 2) == HERD_OK);
    CHECK(gguf_writer_set_u32(w, "llama.block_count", 3) == HERD_ERR_INVALID);
    int64_t ne_a[2] = {4, 3}, ne_b[2] = {64, 2}, ne_c[2] = {32, 2}, ne_d[1] = {256};
    CHECK(gguf_writer_add_tensor(w, "a", HERD_DTYPE_F32, 2, ne_a, f32, sizeof f32) == HERD_OK);
    CHECK(gguf_writer_add_tensor(w, "b", HERD_DTYPE_F16, 2, ne_b, f16, sizeof f16) == HERD_OK);
    CHECK(gguf_writer_add_tensor(w, "c", HERD_DTYPE_Q8_0, 2, ne_c, q8, sizeof q8) == HERD_OK);
    CHECK(gguf_writer_add_tensor(w, "d", HERD_DTYPE_Q4_K, 1, ne_d, q4k, sizeof q4k) ==
          HERD_OK);
    CHECK(gguf_writer_add_tensor(w, "a", HERD_DTYPE_F32, 2, ne_a, f32, sizeof f32) ==
          HERD_ERR_INVALID);
    CHECK(gguf_writer_add_tensor(w, "e", HERD_DTYPE_F32, 2, ne_a, f32, 40) == HERD_ERR_INVALID);
    CHECK(gguf_writer_add_tensor(w, "e", HERD_DTYPE_Q8_0, 1, ne_a, q8, 34) == HERD_ERR_INVALID);
    snprintf(path, sizeof path, "%s/rt.gguf", dir);
    CHECK(gguf_writer_write(w, path) == HERD_OK);
    gguf_writer_free(w);

    struct gguf_file *f = NULL;
    CHECK(gguf_open(path, &f) == HERD_OK);
    if (!f)
        return;
    CHECK(f->version == 3 && f->n_kv == 8 && f->n_tensors == 4 && f->alignment == 32);
    int64_t iv;
    double dv;
    struct gguf_str sv;
    int found;
    CHECK(gguf_get_int(f, "llama.block_count", &iv, &found) == HERD_OK && found && iv == 2);
    CHECK(gguf_get_int(f, "x.i32", &iv, &found) == HERD_OK && found && iv == -42);
    CHECK(gguf_get_int(f, "x.bool", &iv, &found) == HERD_OK && found && iv == 1);
    CHECK(gguf_get_float(f, "llama.rope.freq_base", &dv, &found) == HERD_OK && dv == 500000.0);
    CHECK(gguf_get_str(f, "general.architecture", &sv, &found) == HERD_OK && found &&
          sv.n == 5 && memcmp(sv.p, "llama", 5) == 0);
    CHECK(gguf_get_int(f, "missing", &iv, &found) == HERD_OK && !found);
    CHECK(gguf_get_int(f, "general.architecture", &iv, &found) == HERD_ERR_FORMAT);
    CHECK(strstr(herd_last_error(), "general.architecture") != NULL);
    CHECK(gguf_get_str(f, "llama.block_count", &sv, &found) == HERD_ERR_FORMAT);
    const struct gguf_kv *kv = gguf_find(f, "tokenizer.ggml.tokens");
    struct gguf_str *all = NULL;
    CHECK(kv && gguf_str_array_all(kv, &all) == HERD_OK);
    if (all) {
        CHECK(kv->arr_n == 3 && all[1].n == 2 && memcmp(all[1].p, "bb", 2) == 0 &&
              all[2].n == 0);
        herd_free(all);
    }
    kv = gguf_find(f, "x.ids");
    CHECK(kv && gguf_arr_get_int(kv, 0, &iv) == HERD_OK && iv == -1);
    CHECK(kv && gguf_arr_get_int(kv, 2, &iv) == HERD_OK && iv == 7);
    CHECK(kv && gguf_arr_get_int(kv, 3, &iv) == HERD_ERR_FORMAT);
    CHECK(kv && gguf_str_array_all(kv, &all) == HERD_ERR_FORMAT);
    kv = gguf_find(f, "x.f");
    CHECK(kv && gguf_arr_get_float(kv, 1, &dv) == HERD_OK && dv == -2.25);
    const struct tensor_info *t = gguf_find_tensor(f, "a");
    CHECK(t && t->type == HERD_DTYPE_F32 && t->n_dims == 2 && t->ne[0] == 4 && t->ne[1] == 3 &&
          t->ne[2] == 1 && t->nbytes == 48 && memcmp(t->data, f32, 48) == 0);
    t = gguf_find_tensor(f, "b");
    CHECK(t && t->type == HERD_DTYPE_F16 && memcmp(t->data, f16, sizeof f16) == 0);
    t = gguf_find_tensor(f, "c");
    CHECK(t && t->nbytes == 68 && memcmp(t->data, q8, 68) == 0);
    t = gguf_find_tensor(f, "d");
    CHECK(t && t->type == HERD_DTYPE_Q4_K && t->nbytes == 144 && memcmp(t->data, q4k, 144) == 0);
    for (uint64_t i = 0; i < f->n_tensors; i++)
        CHECK(((const uint8_t *)f->tensors[i].data - f->map.data) % 32 == 0);
    CHECK(gguf_find_tensor(f, "zz") == NULL);
    gguf_close(f);
}

/* ---- every value type, from bytes */

static void test_all_types(void)
{
    struct bb b;
    bb_head(&b, 2, 0, 13);
    bb_str(&b, "u8"); bb_u32(&b, GGUF_UINT8); bb_u8(&b, 200);
    bb_str(&b, "i8"); bb_u32(&b, GGUF_INT8); bb_u8(&b, 0xfe);
    bb_str(&b, "u16"); bb_u32(&b, GGUF_UINT16); bb_u16(&b, 60000);
    bb_str(&b, "i16"); bb_u32(&b, GGUF_INT16); bb_u16(&b, 0xfffd);
    bb_str(&b, "u32"); bb_u32(&b, GGUF_UINT32); bb_u32(&b, 4000000000u);
    bb_str(&b, "i32"); bb_u32(&b, GGUF_INT32); bb_u32(&b, (uint32_t)-5);
    float fv = 0.25f;
    bb_str(&b, "f32"); bb_u32(&b, GGUF_FLOAT32); bb_raw(&b, &fv, 4);
    bb_str(&b, "bool"); bb_u32(&b, GGUF_BOOL); bb_u8(&b, 1);
    bb_str(&b, "str"); bb_u32(&b, GGUF_STRING); bb_str(&b, "hi");
    bb_str(&b, "arr"); bb_u32(&b, GGUF_ARRAY); bb_u32(&b, GGUF_UINT16); bb_u64(&b, 3);
    bb_u16(&b, 1); bb_u16(&b, 2); bb_u16(&b, 3);
    bb_str(&b, "u64"); bb_u32(&b, GGUF_UINT64); bb_u64(&b, 1ull << 40);
    bb_str(&b, "i64"); bb_u32(&b, GGUF_INT64); bb_u64(&b, (uint64_t)-7);
    double dv = -1.5;
    bb_str(&b, "f64"); bb_u32(&b, GGUF_FLOAT64); bb_raw(&b, &dv, 8);
    snprintf(path, sizeof path, "%s/types.gguf", dir);
    write_bytes(path, b.d, b.n);
    struct gguf_file *f = NULL;
    CHECK(gguf_open(path, &f) == HERD_OK);
    if (!f) {
        printf("  %s\n", herd_last_error());
        return;
    }
    struct { const char *key; int64_t v; } ints[] = {
        {"u8", 200}, {"i8", -2}, {"u16", 60000}, {"i16", -3}, {"u32", 4000000000ll},
        {"i32", -5}, {"bool", 1}, {"u64", 1ll << 40}, {"i64", -7},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v = 0;
        int found = 0;
        CHECK_MSG(gguf_get_int(f, ints[i].key, &v, &found) == HERD_OK && found &&
                  v == ints[i].v, "%s = %lld", ints[i].key, (long long)v);
    }
    double d;
    int found;
    CHECK(gguf_get_float(f, "f32", &d, &found) == HERD_OK && d == 0.25);
    CHECK(gguf_get_float(f, "f64", &d, &found) == HERD_OK && d == -1.5);
    CHECK(gguf_get_float(f, "u16", &d, &found) == HERD_OK && d == 60000.0);
    const struct gguf_kv *kv = gguf_find(f, "arr");
    int64_t v;
    CHECK(kv && kv->arr_type == GGUF_UINT16 && kv->arr_n == 3 &&
          gguf_arr_get_int(kv, 2, &v) == HERD_OK && v == 3);
    gguf_close(f);
}

/* ---- bad files */

struct bad_case {
    const char *name;
    herd_status expect;
    const char *msg; /* a substring the message must contain */
};

/* Builds bad file number i into b; returns its case description. */
static const struct bad_case *build_bad(int i, struct bb *b)
{
    static const struct bad_case cases[] = {
        {"bad magic", HERD_ERR_FORMAT, "magic"},
        {"version 1", HERD_ERR_UNSUPPORTED, "version 1"},
        {"version 4", HERD_ERR_UNSUPPORTED, "version 4"},
        {"big-endian", HERD_ERR_UNSUPPORTED, "big-endian"},
        {"huge kv count", HERD_ERR_FORMAT, "metadata count"},
        {"huge tensor count", HERD_ERR_FORMAT, "tensor count"},
        {"key length past end", HERD_ERR_FORMAT, "truncated"},
        {"unknown value type", HERD_ERR_FORMAT, "unknown value type 13"},
        {"huge array", HERD_ERR_FORMAT, "array of"},
        {"nested array", HERD_ERR_UNSUPPORTED, "arrays of arrays"},
        {"n_dims 5", HERD_ERR_FORMAT, "n_dims 5"},
        {"unknown tensor type", HERD_ERR_UNSUPPORTED, "type 99"},
        {"ne[0] not whole blocks", HERD_ERR_FORMAT, "block size"},
        {"data past EOF", HERD_ERR_FORMAT, "past the end"},
        {"overlap", HERD_ERR_FORMAT, "overlaps"},
        {"misaligned offset", HERD_ERR_FORMAT, "alignment"},
        {"duplicate tensor", HERD_ERR_FORMAT, "duplicate name"},
        {"duplicate key", HERD_ERR_FORMAT, "duplicate key"},
        {"bad alignment", HERD_ERR_FORMAT, "general.alignment"},
        {"empty file", HERD_ERR_FORMAT, "magic"},
        {"dims overflow", HERD_ERR_FORMAT, "overflow"},
        {"alignment not an integer", HERD_ERR_FORMAT, "expected an integer"},
    };
    if (i >= (int)(sizeof cases / sizeof cases[0]))
        return NULL;
    uint64_t ne2[2] = {32, 2}, ne5[5] = {1, 1, 1, 1, 1}, ne33[1] = {33};
    uint64_t big[2] = {1ull << 40, 1ull << 40};
    switch (i) {
    case 0: bb_head(b, 3, 0, 0); memcpy(b->d, "GGUG", 4); break;
    case 1: bb_head(b, 1, 0, 0); break;
    case 2: bb_head(b, 4, 0, 0); break;
    case 3: bb_head(b, 0x03000000u, 0, 0); break;
    case 4: bb_head(b, 3, 0, 1ull << 60); break;
    case 5: bb_head(b, 3, 1ull << 60, 0); break;
    case 6:
        bb_head(b, 3, 0, 1); bb_u64(b, 1000); bb_raw(b, "abcdefghijklmnopqrstuvwxyz", 26);
        break;
    case 7: bb_head(b, 3, 0, 1); bb_str(b, "k"); bb_u32(b, 13); bb_u32(b, 0); break;
    case 8:
        bb_head(b, 3, 0, 1); bb_str(b, "k"); bb_u32(b, GGUF_ARRAY); bb_u32(b, GGUF_UINT32);
        bb_u64(b, 1ull << 62);
        break;
    case 9:
        bb_head(b, 3, 0, 1); bb_str(b, "k"); bb_u32(b, GGUF_ARRAY); bb_u32(b, GGUF_ARRAY);
        bb_u64(b, 1); bb_u32(b, 0);
        break;
    case 10: bb_head(b, 3, 1, 0); bb_tensor(b, "t", 5, ne5, 0, 0); break;
    case 11: bb_head(b, 3, 1, 0); bb_tensor(b, "t", 2, ne2, 99, 0); break;
    case 12: bb_head(b, 3, 1, 0); bb_tensor(b, "t", 1, ne33, HERD_DTYPE_Q8_0, 0); break;
    case 13:
        bb_head(b, 3, 1, 0); bb_tensor(b, "t", 2, ne2, HERD_DTYPE_F32, 0); bb_pad(b, 32);
        bb_raw(b, ne2, 16); /* 16 of the 256 data bytes */
        break;
    case 14:
        bb_head(b, 3, 2, 0); bb_tensor(b, "t", 2, ne2, HERD_DTYPE_F32, 0);
        bb_tensor(b, "u", 2, ne2, HERD_DTYPE_F32, 128); bb_pad(b, 32);
        for (int k = 0; k < 384; k++)
            bb_u8(b, 0);
        break;
    case 15:
        bb_head(b, 3, 1, 0); bb_tensor(b, "t", 1, ne2, HERD_DTYPE_F32, 4); bb_pad(b, 32);
        for (int k = 0; k < 256; k++)
            bb_u8(b, 0);
        break;
    case 16:
        bb_head(b, 3, 2, 0); bb_tensor(b, "t", 1, ne2, HERD_DTYPE_F32, 0);
        bb_tensor(b, "t", 1, ne2, HERD_DTYPE_F32, 128); bb_pad(b, 32);
        for (int k = 0; k < 256; k++)
            bb_u8(b, 0);
        break;
    case 17:
        bb_head(b, 3, 0, 2); bb_str(b, "k"); bb_u32(b, GGUF_UINT8); bb_u8(b, 1);
        bb_str(b, "k"); bb_u32(b, GGUF_UINT8); bb_u8(b, 2);
        break;
    case 18:
        bb_head(b, 3, 0, 1); bb_str(b, "general.alignment"); bb_u32(b, GGUF_UINT32);
        bb_u32(b, 48);
        break;
    case 19: b->n = 0; break;
    case 20: bb_head(b, 3, 1, 0); bb_tensor(b, "t", 2, big, HERD_DTYPE_F32, 0); break;
    case 21:
        bb_head(b, 3, 0, 1); bb_str(b, "general.alignment"); bb_u32(b, GGUF_STRING);
        bb_str(b, "32");
        break;
    }
    return &cases[i];
}

static void test_bad(void)
{
    struct bb b;
    const struct bad_case *c;
    for (int i = 0; (c = build_bad(i, &b)) != NULL; i++) {
        snprintf(path, sizeof path, "%s/bad%02d.gguf", dir, i);
        write_bytes(path, b.d, b.n);
        struct gguf_file *f = (struct gguf_file *)&b; /* must be reset to NULL */
        herd_status s = gguf_open(path, &f);
        const char *e = herd_last_error();
        CHECK_MSG(s == c->expect, "%s: status %d, expected %d (%s)", c->name, s, c->expect, e);
        CHECK_MSG(strstr(e, c->msg) != NULL, "%s: message '%s' lacks '%s'", c->name, e,
                  c->msg);
        CHECK_MSG(strstr(e, path) != NULL, "%s: message '%s' lacks the path", c->name, e);
        CHECK(f == NULL);
        if (s == HERD_OK)
            gguf_close(f);
        unlink(path);
    }
    struct gguf_file *f;
    CHECK(gguf_open("/nonexistent/x.gguf", &f) == HERD_ERR_IO && f == NULL);
    CHECK(strstr(herd_last_error(), "/nonexistent/x.gguf") != NULL);
}

/* ---- truncation at many cut points */

static void test_truncation(void)
{
    snprintf(path, sizeof path, "%s/rt.gguf", dir);
    struct herd_map m;
    if (herd_map_file(path, &m) != HERD_OK) {
        check_fail++;
        return;
    }
    struct gguf_file *f = NULL;
    CHECK(gguf_open(path, &f) == HERD_OK);
    if (!f) {
        herd_unmap(&m);
        return;
    }
    /* The last byte any tensor needs; cuts at or after it leave a readable file. */
    size_t need = 0;
    size_t header_end = m.size;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        size_t off = (size_t)((const uint8_t *)f->tensors[i].data - f->map.data);
        if (off + f->tensors[i].nbytes > need)
            need = off + f->tensors[i].nbytes;
        if (off < header_end)
            header_end = off;
    }
    gguf_close(f);
    char cut[300];
    snprintf(cut, sizeof cut, "%s/cut.gguf", dir);
    int bad = 0, tried = 0;
    for (size_t n = 0; n < m.size; n += n < header_end + 8 ? 1 : 7) {
        write_bytes(cut, m.data, n);
        herd_status s = gguf_open(cut, &f);
        tried++;
        int ok = n >= need ? s == HERD_OK : s == HERD_ERR_FORMAT && f == NULL &&
                                                strstr(herd_last_error(), cut) != NULL;
        if (!ok && bad++ < 5)
            printf("FAIL cut at %zu of %zu: status %d: %s\n", n, m.size, s, herd_last_error());
        if (s == HERD_OK)
            gguf_close(f);
    }
    CHECK(bad == 0);
    CHECK(tried > 300);
    unlink(cut);
    herd_unmap(&m);
}

/* ---- allocation failures */

static void test_alloc_failures(void)
{
    snprintf(path, sizeof path, "%s/rt.gguf", dir);
    int nomem = 0, other = 0;
    long n;
    for (n = 0; n < 200; n++) {
        struct gguf_file *f = NULL;
        herd_alloc_fail_after(n);
        herd_status s = gguf_open(path, &f);
        herd_alloc_fail_after(-1);
        if (s == HERD_OK) {
            gguf_close(f);
            break;
        }
        if (s == HERD_ERR_NOMEM && f == NULL)
            nomem++;
        else
            other++;
    }
    CHECK_MSG(nomem > 3 && other == 0 && n < 200, "gguf_open: %d nomem, %d other, n %ld",
              nomem, other, n);
    /* The writer: every failure is NOMEM and leaves no file behind. */
    nomem = other = 0;
    char out[300];
    snprintf(out, sizeof out, "%s/w.gguf", dir);
    float x[32] = {0};
    int64_t ne[1] = {32};
    struct gguf_str toks[2] = {{"x", 1}, {"y", 1}};
    for (n = 0; n < 200; n++) {
        struct gguf_writer *w = NULL;
        herd_alloc_fail_after(n);
        herd_status s = gguf_writer_new(&w);
        if (s == HERD_OK)
            s = gguf_writer_set_str(w, "general.architecture", "llama");
        if (s == HERD_OK)
            s = gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 2);
        if (s == HERD_OK)
            s = gguf_writer_add_tensor(w, "t", HERD_DTYPE_F32, 1, ne, x, sizeof x);
        if (s == HERD_OK)
            s = gguf_writer_write(w, out);
        herd_alloc_fail_after(-1);
        gguf_writer_free(w);
        if (s == HERD_OK)
            break;
        if (s == HERD_ERR_NOMEM && !herd_file_exists(out))
            nomem++;
        else
            other++;
    }
    CHECK_MSG(nomem > 3 && other == 0 && n < 200, "writer: %d nomem, %d other", nomem, other);
    unlink(out);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/herd_gguf_XXXXXX");
    if (!mkdtemp(dir)) {
        printf("cannot make a temporary directory\n");
        return 1;
    }
    test_roundtrip();
    test_all_types();
    test_bad();
    test_truncation();
    test_alloc_failures();
    snprintf(path, sizeof path, "%s/rt.gguf", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/types.gguf", dir);
    unlink(path);
    rmdir(dir);
    return check_done();
}
