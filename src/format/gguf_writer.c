/*
 * gguf_writer.c - writes GGUF v3 files (spec: ggml docs/gguf.md) that herd, llama.cpp and
 * the gguf Python package read.
 *
 * Key/values are serialised into one growing buffer as they are set (so a 128k-entry token
 * list is copied once); tensors are recorded by reference and their data is streamed out by
 * gguf_writer_write, each tensor padded to GGUF_ALIGN. The file is written under a
 * temporary name and renamed into place, so a failed write never leaves a truncated file
 * at path.
 *
 * Invariants: keys and tensor names are unique (a second set of the same key fails);
 * every tensor's byte size equals its shape's row bytes times rows.
 */
#include "format/format.h"
#include "quant/quant.h" /* dtype_row_bytes, dtype_block_size */

#include <errno.h> /* errno for messages */
#include <stdio.h> /* FILE, fwrite, rename */

/* general.alignment's default; herd writes no alignment key, so readers use this. */
#define GGUF_ALIGN 32
#define GGUF_MAGIC "GGUF"
#define GGUF_VERSION 3u

struct wtensor {
    char *name;
    herd_dtype type;
    int n_dims;
    int64_t ne[4];
    const void *data;
    size_t nbytes;
};

struct gguf_writer {
    struct herd_buf kv; /* serialised key/values */
    uint64_t n_kv;
    char **keys;        /* (n_kv) for the duplicate check */
    size_t keys_cap;
    struct wtensor *tensors;
    size_t n_tensors, tensors_cap;
};

herd_status gguf_writer_new(struct gguf_writer **out)
{
    *out = herd_calloc(1, sizeof **out);
    if (!*out)
        return herd_fail(HERD_ERR_NOMEM, "gguf writer: cannot allocate");
    buf_init(&(*out)->kv, 0);
    return HERD_OK;
}

void gguf_writer_free(struct gguf_writer *w)
{
    if (!w)
        return;
    buf_free(&w->kv);
    for (uint64_t i = 0; i < w->n_kv; i++)
        herd_free(w->keys[i]);
    herd_free(w->keys);
    for (size_t i = 0; i < w->n_tensors; i++)
        herd_free(w->tensors[i].name);
    herd_free(w->tensors);
    herd_free(w);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static herd_status buf_u32(struct herd_buf *b, uint32_t v)
{
    uint8_t p[4];
    put_u32(p, v);
    return buf_append(b, p, 4);
}

static herd_status buf_u64(struct herd_buf *b, uint64_t v)
{
    uint8_t p[8];
    put_u64(p, v);
    return buf_append(b, p, 8);
}

static herd_status buf_str(struct herd_buf *b, const char *s, size_t n)
{
    herd_status st = buf_u64(b, n);
    if (st == HERD_OK && n)
        st = buf_append(b, s, n);
    return st;
}

/* Starts a key/value: checks the key is new, records it, writes the key and type. On
 * failure the buffer is rolled back by the caller through *mark. */
static herd_status begin_kv(struct gguf_writer *w, const char *key, enum gguf_vtype type,
                            size_t *mark)
{
    *mark = w->kv.len;
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0)
            return herd_fail(HERD_ERR_INVALID, "gguf writer: key '%s' set twice", key);
    if (w->n_kv == w->keys_cap) {
        size_t cap = w->keys_cap ? 2 * w->keys_cap : 32;
        char **k = herd_realloc(w->keys, cap * sizeof *k);
        if (!k)
            return herd_fail(HERD_ERR_NOMEM, "gguf writer: cannot grow the key list");
        w->keys = k;
        w->keys_cap = cap;
    }
    herd_status s = buf_str(&w->kv, key, strlen(key));
    if (s == HERD_OK)
        s = buf_u32(&w->kv, (uint32_t)type);
    return s;
}

/* Finishes a key/value begun at mark: on success the key joins the list, on failure the
 * buffer returns to mark so the writer stays valid. */
static herd_status end_kv(struct gguf_writer *w, const char *key, size_t mark, herd_status s)
{
    char *k = NULL;
    if (s == HERD_OK) {
        k = herd_strdup(key);
        if (!k)
            s = herd_fail(HERD_ERR_NOMEM, "gguf writer: cannot copy key '%s'", key);
    }
    if (s != HERD_OK) {
        w->kv.len = mark;
        w->kv.err = HERD_OK;
        return s;
    }
    w->keys[w->n_kv++] = k;
    return HERD_OK;
}

static herd_status set_scalar(struct gguf_writer *w, const char *key, enum gguf_vtype type,
                              const void *v, size_t n)
{
    size_t mark;
    herd_status s = begin_kv(w, key, type, &mark);
    if (s == HERD_OK)
        s = buf_append(&w->kv, v, n);
    return end_kv(w, key, mark, s);
}

herd_status gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v)
{
    size_t mark;
    herd_status s = begin_kv(w, key, GGUF_STRING, &mark);
    if (s == HERD_OK)
        s = buf_str(&w->kv, v, strlen(v));
    return end_kv(w, key, mark, s);
}

herd_status gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
    uint8_t p[4];
    put_u32(p, v);
    return set_scalar(w, key, GGUF_UINT32, p, 4);
}

herd_status gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v)
{
    uint8_t p[4];
    put_u32(p, (uint32_t)v);
    return set_scalar(w, key, GGUF_INT32, p, 4);
}

herd_status gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    uint8_t p[4];
    put_u32(p, u);
    return set_scalar(w, key, GGUF_FLOAT32, p, 4);
}

herd_status gguf_writer_set_bool(struct gguf_writer *w, const char *key, int v)
{
    uint8_t b = v ? 1 : 0;
    return set_scalar(w, key, GGUF_BOOL, &b, 1);
}

/* Array header: element type and count. */
static herd_status begin_arr(struct gguf_writer *w, const char *key, enum gguf_vtype et,
                             size_t n, size_t *mark)
{
    herd_status s = begin_kv(w, key, GGUF_ARRAY, mark);
    if (s == HERD_OK)
        s = buf_u32(&w->kv, (uint32_t)et);
    if (s == HERD_OK)
        s = buf_u64(&w->kv, n);
    return s;
}

herd_status gguf_writer_set_arr_str(struct gguf_writer *w, const char *key,
                                    const struct gguf_str *v, size_t n)
{
    size_t mark;
    herd_status s = begin_arr(w, key, GGUF_STRING, n, &mark);
    for (size_t i = 0; s == HERD_OK && i < n; i++)
        s = buf_str(&w->kv, v[i].p, (size_t)v[i].n);
    return end_kv(w, key, mark, s);
}

herd_status gguf_writer_set_arr_i32(struct gguf_writer *w, const char *key, const int32_t *v,
                                    size_t n)
{
    size_t mark;
    herd_status s = begin_arr(w, key, GGUF_INT32, n, &mark);
    for (size_t i = 0; s == HERD_OK && i < n; i++)
        s = buf_u32(&w->kv, (uint32_t)v[i]);
    return end_kv(w, key, mark, s);
}

herd_status gguf_writer_set_arr_f32(struct gguf_writer *w, const char *key, const float *v,
                                    size_t n)
{
    size_t mark;
    herd_status s = begin_arr(w, key, GGUF_FLOAT32, n, &mark);
    for (size_t i = 0; s == HERD_OK && i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        s = buf_u32(&w->kv, u);
    }
    return end_kv(w, key, mark, s);
}

herd_status gguf_writer_add_tensor(struct gguf_writer *w, const char *name, herd_dtype type,
                                   int n_dims, const int64_t *ne, const void *data,
                                   size_t nbytes)
{
    if (n_dims < 1 || n_dims > 4)
        return herd_fail(HERD_ERR_INVALID, "gguf writer: tensor '%s': n_dims %d not in 1..4",
                         name, n_dims);
    if (!herd_dtype_name(type))
        return herd_fail(HERD_ERR_INVALID, "gguf writer: tensor '%s': unknown type %d", name,
                         (int)type);
    uint64_t rows = 1;
    for (int d = 1; d < n_dims; d++) {
        if (ne[d] < 0 || (ne[d] && rows > UINT64_MAX / (uint64_t)ne[d]))
            return herd_fail(HERD_ERR_INVALID, "gguf writer: tensor '%s': bad shape", name);
        rows *= (uint64_t)ne[d];
    }
    size_t row = ne[0] > 0 ? dtype_row_bytes(type, ne[0]) : 0;
    if ((ne[0] > 0 && row == 0) || ne[0] < 0)
        return herd_fail(HERD_ERR_INVALID, "gguf writer: tensor '%s': ne[0] = %lld is not a "
                         "whole number of %s blocks", name, (long long)ne[0],
                         herd_dtype_name(type));
    if (row && rows > SIZE_MAX / row)
        return herd_fail(HERD_ERR_INVALID, "gguf writer: tensor '%s': size overflows", name);
    if (row * rows != nbytes)
        return herd_fail(HERD_ERR_INVALID, "gguf writer: tensor '%s': %zu bytes given, the "
                         "shape needs %llu", name, nbytes,
                         (unsigned long long)(row * rows));
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return herd_fail(HERD_ERR_INVALID, "gguf writer: tensor '%s' added twice", name);
    if (w->n_tensors == w->tensors_cap) {
        size_t cap = w->tensors_cap ? 2 * w->tensors_cap : 64;
        struct wtensor *t = herd_realloc(w->tensors, cap * sizeof *t);
        if (!t)
            return herd_fail(HERD_ERR_NOMEM, "gguf writer: cannot grow the tensor list");
        w->tensors = t;
        w->tensors_cap = cap;
    }
    struct wtensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = herd_strdup(name);
    if (!t->name)
        return herd_fail(HERD_ERR_NOMEM, "gguf writer: cannot copy tensor name '%s'", name);
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < 4; d++)
        t->ne[d] = d < n_dims ? ne[d] : 1;
    t->data = data;
    t->nbytes = nbytes;
    w->n_tensors++;
    return HERD_OK;
}

static size_t pad_to(size_t n)
{
    return (GGUF_ALIGN - n % GGUF_ALIGN) % GGUF_ALIGN;
}

/* Header + key/values + tensor infos, in one buffer. */
static herd_status build_header(const struct gguf_writer *w, struct herd_buf *h)
{
    buf_append(h, GGUF_MAGIC, 4);
    buf_u32(h, GGUF_VERSION);
    buf_u64(h, w->n_tensors);
    buf_u64(h, w->n_kv);
    buf_append(h, w->kv.data, w->kv.len);
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const struct wtensor *t = &w->tensors[i];
        buf_str(h, t->name, strlen(t->name));
        buf_u32(h, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++)
            buf_u64(h, (uint64_t)t->ne[d]);
        buf_u32(h, (uint32_t)t->type);
        buf_u64(h, offset);
        offset += t->nbytes + pad_to(t->nbytes);
    }
    static const uint8_t zeros[GGUF_ALIGN];
    buf_append(h, zeros, pad_to(h->len));
    return h->err; /* sticky: the first failure of any append above */
}

static herd_status write_all(FILE *f, const void *p, size_t n, const char *path)
{
    if (n && fwrite(p, 1, n, f) != n)
        return herd_fail(HERD_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return HERD_OK;
}

herd_status gguf_writer_write(struct gguf_writer *w, const char *path)
{
    static const uint8_t zeros[GGUF_ALIGN];
    struct herd_buf h;
    buf_init(&h, 0);
    char *tmp = NULL;
    FILE *f = NULL;
    herd_status s = build_header(w, &h);
    if (s != HERD_OK) {
        s = herd_fail_prefix(s, "%s", path);
        goto fail;
    }
    size_t n = strlen(path);
    tmp = herd_malloc(n + 5);
    if (!tmp) {
        s = herd_fail(HERD_ERR_NOMEM, "%s: cannot allocate a file name", path);
        goto fail;
    }
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    f = fopen(tmp, "wb");
    if (!f) {
        s = herd_fail(HERD_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto fail;
    }
    s = write_all(f, h.data, h.len, tmp);
    for (size_t i = 0; s == HERD_OK && i < w->n_tensors; i++) {
        s = write_all(f, w->tensors[i].data, w->tensors[i].nbytes, tmp);
        if (s == HERD_OK)
            s = write_all(f, zeros, pad_to(w->tensors[i].nbytes), tmp);
    }
    if (fclose(f) != 0 && s == HERD_OK)
        s = herd_fail(HERD_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    f = NULL;
    if (s == HERD_OK && rename(tmp, path) != 0)
        s = herd_fail(HERD_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    if (s != HERD_OK)
        remove(tmp);
fail:
    if (f) {
        fclose(f);
        remove(tmp);
    }
    herd_free(tmp);
    buf_free(&h);
    return s;
}
