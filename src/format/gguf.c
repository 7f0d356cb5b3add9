/*
 * gguf.c - bounded reader of GGUF v2/v3 files (spec: ggml docs/gguf.md).
 *
 * Layout, all little-endian:
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x { string key | u32 type | value }        string = u64 length + bytes (no NUL)
 *                                                   array  = u32 elem type + u64 n + elems
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
 *   padding to general.alignment (default 32)
 *   tensor data; each offset is relative to the start of this section and aligned.
 * Version 1 used u32 counts and is refused; v2 and v3 share the layout (v3 only added
 * big-endian files, which herd refuses with a message).
 *
 * Invariants: every length, count and offset is checked against the bytes that remain
 * before it is used, so a corrupt file gives a one-line HERD_ERR_FORMAT naming the file and
 * field, never a read out of bounds. Keys, strings and arrays point into the mapping.
 * Tensor data ranges lie inside the file, are aligned and do not overlap; names and keys
 * are unique.
 */
#include "format/format.h"
#include "quant/quant.h" /* dtype_block_size, dtype_row_bytes */

#include <stdio.h>  /* vsnprintf for field descriptions */
#include <stdlib.h> /* qsort */

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as a little-endian u32 */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4

struct reader {
    const uint8_t *p;
    size_t size;
    size_t pos;
    const char *path;
};

/* Records "path: message" and returns s. */
static herd_status bad(const struct reader *r, herd_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static herd_status bad(const struct reader *r, herd_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    herd_vfail(s, fmt, ap);
    va_end(ap);
    return herd_fail_prefix(s, "%s", r->path);
}

static herd_status need(const struct reader *r, uint64_t n, const char *what)
{
    if (r->size - r->pos < n)
        return bad(r, HERD_ERR_FORMAT,
                   "truncated: %s needs %llu bytes at offset %zu but the file has %zu",
                   what, (unsigned long long)n, r->pos, r->size);
    return HERD_OK;
}

static uint32_t load_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t load_u64(const uint8_t *p)
{
    return (uint64_t)load_u32(p) | (uint64_t)load_u32(p + 4) << 32;
}

static herd_status read_u32(struct reader *r, uint32_t *v, const char *what)
{
    herd_status s = need(r, 4, what);
    if (s != HERD_OK)
        return s;
    *v = load_u32(r->p + r->pos);
    r->pos += 4;
    return HERD_OK;
}

static herd_status read_u64(struct reader *r, uint64_t *v, const char *what)
{
    herd_status s = need(r, 8, what);
    if (s != HERD_OK)
        return s;
    *v = load_u64(r->p + r->pos);
    r->pos += 8;
    return HERD_OK;
}

static herd_status read_str(struct reader *r, struct gguf_str *str, const char *what)
{
    uint64_t n;
    herd_status s = read_u64(r, &n, what);
    if (s != HERD_OK)
        return s;
    s = need(r, n, what);
    if (s != HERD_OK)
        return s;
    str->p = (const char *)r->p + r->pos;
    str->n = n;
    r->pos += (size_t)n;
    return HERD_OK;
}

/* Bytes of one scalar value of type t; 0 for string, array and unknown types. */
static size_t vtype_size(uint32_t t)
{
    switch (t) {
    case GGUF_UINT8: case GGUF_INT8: case GGUF_BOOL: return 1;
    case GGUF_UINT16: case GGUF_INT16: return 2;
    case GGUF_UINT32: case GGUF_INT32: case GGUF_FLOAT32: return 4;
    case GGUF_UINT64: case GGUF_INT64: case GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static const char *vtype_name(uint32_t t)
{
    static const char *names[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32",
                                  "float32", "bool", "string", "array", "uint64", "int64",
                                  "float64"};
    return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

/* Widens the scalar at p (of type t, vtype_size(t) bytes) into kv->v. */
static void load_scalar(struct gguf_kv *kv, uint32_t t, const uint8_t *p)
{
    uint32_t u32 = 0;
    uint64_t u64 = 0;
    float f32;
    switch (t) {
    case GGUF_UINT8: case GGUF_BOOL: kv->v.u = p[0]; break;
    case GGUF_INT8: kv->v.i = (int8_t)p[0]; break;
    case GGUF_UINT16: kv->v.u = (uint16_t)(p[0] | p[1] << 8); break;
    case GGUF_INT16: kv->v.i = (int16_t)(uint16_t)(p[0] | p[1] << 8); break;
    case GGUF_UINT32: kv->v.u = load_u32(p); break;
    case GGUF_INT32: kv->v.i = (int32_t)load_u32(p); break;
    case GGUF_FLOAT32:
        u32 = load_u32(p);
        memcpy(&f32, &u32, 4);
        kv->v.f = f32;
        break;
    case GGUF_UINT64: kv->v.u = load_u64(p); break;
    case GGUF_INT64: kv->v.i = (int64_t)load_u64(p); break;
    case GGUF_FLOAT64:
        u64 = load_u64(p);
        memcpy(&kv->v.f, &u64, 8);
        break;
    default: break;
    }
}

/* Reads the value of kv (its type already read); what names the key for messages. */
static herd_status read_value(struct reader *r, struct gguf_kv *kv, const char *what)
{
    herd_status s;
    if (kv->type == GGUF_STRING)
        return read_str(r, &kv->str, what);
    if (kv->type != GGUF_ARRAY) {
        size_t n = vtype_size(kv->type);
        s = need(r, n, what);
        if (s != HERD_OK)
            return s;
        load_scalar(kv, kv->type, r->p + r->pos);
        r->pos += n;
        return HERD_OK;
    }
    uint32_t at;
    s = read_u32(r, &at, what);
    if (s == HERD_OK)
        s = read_u64(r, &kv->arr_n, what);
    if (s != HERD_OK)
        return s;
    kv->arr_type = (enum gguf_vtype)at;
    if (at == GGUF_ARRAY)
        return bad(r, HERD_ERR_UNSUPPORTED, "%s: arrays of arrays are not supported", what);
    if (at != GGUF_STRING && vtype_size(at) == 0)
        return bad(r, HERD_ERR_FORMAT, "%s: unknown array element type %u", what, at);
    size_t left = r->size - r->pos;
    /* A string element takes at least its 8-byte length, a scalar its size. */
    size_t min_elem = at == GGUF_STRING ? 8 : vtype_size(at);
    if (kv->arr_n > left / min_elem)
        return bad(r, HERD_ERR_FORMAT,
                   "%s: array of %llu %s elements cannot fit in the %zu bytes left", what,
                   (unsigned long long)kv->arr_n, vtype_name(at), left);
    kv->arr_data = r->p + r->pos;
    if (at != GGUF_STRING) {
        r->pos += (size_t)kv->arr_n * min_elem;
        return HERD_OK;
    }
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        struct gguf_str str;
        s = read_str(r, &str, what);
        if (s != HERD_OK)
            return s;
    }
    return HERD_OK;
}

static int str_eq(struct gguf_str a, const char *b)
{
    size_t n = strlen(b);
    return a.n == n && memcmp(a.p, b, n) == 0;
}

static int cmp_kv_key(const void *a, const void *b)
{
    const struct gguf_kv *x = *(const struct gguf_kv *const *)a;
    const struct gguf_kv *y = *(const struct gguf_kv *const *)b;
    size_t n = x->key.n < y->key.n ? (size_t)x->key.n : (size_t)y->key.n;
    int c = memcmp(x->key.p, y->key.p, n);
    if (c)
        return c;
    return (x->key.n > y->key.n) - (x->key.n < y->key.n);
}

static int cmp_tensor_name(const void *a, const void *b)
{
    const struct tensor_info *x = *(const struct tensor_info *const *)a;
    const struct tensor_info *y = *(const struct tensor_info *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_tensor_data(const void *a, const void *b)
{
    const struct tensor_info *x = *(const struct tensor_info *const *)a;
    const struct tensor_info *y = *(const struct tensor_info *const *)b;
    const uint8_t *px = x->data, *py = y->data;
    return (px > py) - (px < py);
}

/* Pointers to the n elements of base (elem bytes each), sorted by cmp, into *out (owned). */
static herd_status sorted_index(struct reader *r, const void *base, size_t n, size_t elem,
                                int (*cmp)(const void *, const void *), const char *what,
                                const void ***out)
{
    const void **ix;
    herd_status s = herd_alloc_array((void **)&ix, n, sizeof *ix, what);
    if (s != HERD_OK)
        return herd_fail_prefix(s, "%s", r->path);
    for (size_t i = 0; i < n; i++)
        ix[i] = (const uint8_t *)base + i * elem;
    qsort(ix, n, sizeof *ix, cmp);
    *out = ix;
    return HERD_OK;
}

static herd_status read_kvs(struct reader *r, struct gguf_file *f)
{
    char what[160];
    /* Each entry takes at least a key length, a type and one value byte. */
    size_t left = r->size - r->pos;
    if (f->n_kv > left / 13)
        return bad(r, HERD_ERR_FORMAT, "header: metadata count %llu cannot fit in %zu bytes",
                   (unsigned long long)f->n_kv, left);
    herd_status s = herd_alloc_array((void **)&f->kv, (size_t)f->n_kv ? (size_t)f->n_kv : 1,
                                     sizeof *f->kv, "gguf metadata");
    if (s != HERD_OK)
        return herd_fail_prefix(s, "%s", r->path);
    memset(f->kv, 0, (size_t)f->n_kv * sizeof *f->kv);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        struct gguf_kv *kv = &f->kv[i];
        snprintf(what, sizeof what, "key of metadata entry %llu", (unsigned long long)i);
        s = read_str(r, &kv->key, what);
        if (s != HERD_OK)
            return s;
        snprintf(what, sizeof what, "metadata '%.*s'", (int)(kv->key.n > 96 ? 96 : kv->key.n),
                 kv->key.p);
        uint32_t t;
        s = read_u32(r, &t, what);
        if (s != HERD_OK)
            return s;
        if (t != GGUF_STRING && t != GGUF_ARRAY && vtype_size(t) == 0)
            return bad(r, HERD_ERR_FORMAT, "%s: unknown value type %u", what, t);
        kv->type = (enum gguf_vtype)t;
        s = read_value(r, kv, what);
        if (s != HERD_OK)
            return s;
    }
    return HERD_OK;
}

static herd_status check_unique_keys(struct reader *r, struct gguf_file *f)
{
    if (f->n_kv < 2)
        return HERD_OK;
    const struct gguf_kv **by_key = NULL;
    herd_status s = sorted_index(r, f->kv, (size_t)f->n_kv, sizeof *f->kv, cmp_kv_key,
                                 "gguf key index", (const void ***)&by_key);
    if (s != HERD_OK)
        return s;
    for (uint64_t i = 1; i < f->n_kv; i++) {
        if (cmp_kv_key(&by_key[i - 1], &by_key[i]) == 0) {
            const struct gguf_kv *kv = by_key[i];
            herd_free(by_key);
            return bad(r, HERD_ERR_FORMAT, "metadata '%.*s': duplicate key",
                       (int)(kv->key.n > 96 ? 96 : kv->key.n), kv->key.p);
        }
    }
    herd_free(by_key);
    return HERD_OK;
}

static herd_status read_alignment(struct reader *r, struct gguf_file *f)
{
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const struct gguf_kv *kv = gguf_find(f, "general.alignment");
    if (!kv)
        return HERD_OK;
    int64_t a = 0;
    int found = 0;
    herd_status s = gguf_get_int(f, "general.alignment", &a, &found);
    if (s != HERD_OK)
        return herd_fail_prefix(s, "%s", r->path);
    /* 1 GiB bounds the padding a reader must skip: a larger value is corruption. */
    if (a <= 0 || a > (1 << 30) || (a & (a - 1)) != 0)
        return bad(r, HERD_ERR_FORMAT,
                   "metadata 'general.alignment': %lld is not a power of two up to 2^30",
                   (long long)a);
    f->alignment = (size_t)a;
    return HERD_OK;
}

/* Reads one tensor info; *offset gets its data offset (relative to the data section). */
static herd_status read_tensor_info(struct reader *r, uint64_t i, struct tensor_info *t,
                                    uint64_t *offset)
{
    char what[160];
    struct gguf_str name;
    snprintf(what, sizeof what, "name of tensor %llu", (unsigned long long)i);
    herd_status s = read_str(r, &name, what);
    if (s != HERD_OK)
        return s;
    if (memchr(name.p, 0, (size_t)name.n))
        return bad(r, HERD_ERR_FORMAT, "tensor %llu: name contains a NUL byte",
                   (unsigned long long)i);
    t->name = herd_strndup(name.p, (size_t)name.n);
    if (!t->name)
        return bad(r, HERD_ERR_NOMEM, "tensor %llu: cannot allocate its name",
                   (unsigned long long)i);
    snprintf(what, sizeof what, "tensor '%.96s'", t->name);
    uint32_t n_dims;
    s = read_u32(r, &n_dims, what);
    if (s != HERD_OK)
        return s;
    if (n_dims == 0 || n_dims > GGUF_MAX_DIMS)
        return bad(r, HERD_ERR_FORMAT, "%s: n_dims %u is not in 1..%d", what, n_dims,
                   GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    int64_t n_elems = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if (d < (int)n_dims) {
            s = read_u64(r, &ne, what);
            if (s != HERD_OK)
                return s;
        }
        if (ne > (uint64_t)INT64_MAX || (ne && (uint64_t)n_elems > (uint64_t)INT64_MAX / ne))
            return bad(r, HERD_ERR_FORMAT, "%s: dimension %d (%llu) makes the element count "
                       "overflow", what, d, (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
        n_elems *= (int64_t)ne;
    }
    uint32_t type;
    s = read_u32(r, &type, what);
    if (s == HERD_OK)
        s = read_u64(r, offset, what);
    if (s != HERD_OK)
        return s;
    t->type = (herd_dtype)type;
    int64_t bs = dtype_block_size(t->type);
    if (bs == 0)
        return bad(r, HERD_ERR_UNSUPPORTED, "%s: tensor type %u is not a type herd knows",
                   what, type);
    if (t->ne[0] % bs != 0)
        return bad(r, HERD_ERR_FORMAT, "%s: ne[0] = %lld is not a multiple of the %s block "
                   "size %lld", what, (long long)t->ne[0], herd_dtype_name(t->type),
                   (long long)bs);
    size_t row = t->ne[0] ? dtype_row_bytes(t->type, t->ne[0]) : 0;
    uint64_t rows = t->ne[0] ? (uint64_t)(n_elems / t->ne[0]) : 0;
    if (row && rows > SIZE_MAX / row)
        return bad(r, HERD_ERR_FORMAT, "%s: byte size overflows", what);
    t->nbytes = row * (size_t)rows;
    return HERD_OK;
}

/* Points each tensor at its data and checks the ranges: aligned, inside the file, apart. */
static herd_status place_tensors(struct reader *r, struct gguf_file *f, const uint64_t *offs)
{
    size_t a = f->alignment;
    size_t data_start = r->pos + (a - r->pos % a) % a;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        struct tensor_info *t = &f->tensors[i];
        if (offs[i] % a != 0)
            return bad(r, HERD_ERR_FORMAT, "tensor '%.96s': data offset %llu is not a "
                       "multiple of the alignment %zu", t->name,
                       (unsigned long long)offs[i], a);
        if (data_start > r->size || offs[i] > r->size - data_start ||
            t->nbytes > r->size - data_start - offs[i])
            return bad(r, HERD_ERR_FORMAT, "tensor '%.96s': data [%llu, +%zu) at file offset "
                       "%zu runs past the end of the file (%zu bytes)", t->name,
                       (unsigned long long)offs[i], t->nbytes, data_start, r->size);
        t->data = r->p + data_start + offs[i];
    }
    if (f->n_tensors < 2)
        return HERD_OK;
    const struct tensor_info **ix = NULL;
    herd_status s = sorted_index(r, f->tensors, (size_t)f->n_tensors, sizeof *f->tensors,
                                 cmp_tensor_name, "gguf tensor index", (const void ***)&ix);
    if (s != HERD_OK)
        return s;
    for (uint64_t i = 1; i < f->n_tensors; i++) {
        if (strcmp(ix[i - 1]->name, ix[i]->name) == 0) {
            s = bad(r, HERD_ERR_FORMAT, "tensor '%.96s': duplicate name", ix[i]->name);
            goto done;
        }
    }
    qsort(ix, (size_t)f->n_tensors, sizeof *ix, cmp_tensor_data);
    for (uint64_t i = 1; i < f->n_tensors; i++) {
        const uint8_t *end = (const uint8_t *)ix[i - 1]->data + ix[i - 1]->nbytes;
        if ((const uint8_t *)ix[i]->data < end) {
            s = bad(r, HERD_ERR_FORMAT, "tensor '%.96s': data overlaps tensor '%.96s'",
                    ix[i]->name, ix[i - 1]->name);
            goto done;
        }
    }
done:
    herd_free(ix);
    return s;
}

static herd_status read_header(struct reader *r, struct gguf_file *f)
{
    uint32_t magic;
    herd_status s = read_u32(r, &magic, "magic");
    if (s != HERD_OK)
        return s;
    if (magic != GGUF_MAGIC)
        return bad(r, HERD_ERR_FORMAT, "bad magic %02x %02x %02x %02x: not a GGUF file "
                   "(expected \"GGUF\")", r->p[0], r->p[1], r->p[2], r->p[3]);
    s = read_u32(r, &f->version, "version");
    if (s != HERD_OK)
        return s;
    if (f->version == 0x02000000u || f->version == 0x03000000u)
        return bad(r, HERD_ERR_UNSUPPORTED, "version: big-endian GGUF is not supported");
    if (f->version != 2 && f->version != 3)
        return bad(r, HERD_ERR_UNSUPPORTED, "version %u is not supported (expected 2 or 3)",
                   f->version);
    s = read_u64(r, &f->n_tensors, "tensor count");
    if (s == HERD_OK)
        s = read_u64(r, &f->n_kv, "metadata count");
    return s;
}

static herd_status parse(struct reader *r, struct gguf_file *f)
{
    uint64_t *offs = NULL;
    herd_status s = read_header(r, f);
    if (s == HERD_OK)
        s = read_kvs(r, f);
    if (s == HERD_OK)
        s = check_unique_keys(r, f);
    if (s == HERD_OK)
        s = read_alignment(r, f);
    if (s != HERD_OK)
        return s;
    /* Each tensor info takes at least name length, n_dims, one dim, type and offset. */
    size_t left = r->size - r->pos;
    uint64_t n = f->n_tensors;
    if (n > left / 32)
        return bad(r, HERD_ERR_FORMAT, "header: tensor count %llu cannot fit in %zu bytes",
                   (unsigned long long)n, left);
    s = herd_alloc_array((void **)&f->tensors, n ? (size_t)n : 1, sizeof *f->tensors,
                         "gguf tensors");
    if (s == HERD_OK) {
        memset(f->tensors, 0, (size_t)n * sizeof *f->tensors); /* gguf_close frees names */
        s = herd_alloc_array((void **)&offs, n ? (size_t)n : 1, sizeof *offs, "gguf offsets");
    }
    if (s != HERD_OK) {
        s = herd_fail_prefix(s, "%s", r->path);
        goto done;
    }
    for (uint64_t i = 0; i < n; i++) {
        s = read_tensor_info(r, i, &f->tensors[i], &offs[i]);
        if (s != HERD_OK)
            goto done;
    }
    s = place_tensors(r, f, offs);
done:
    herd_free(offs);
    return s;
}

herd_status gguf_open(const char *path, struct gguf_file **out)
{
    *out = NULL;
    struct gguf_file *f = herd_calloc(1, sizeof *f);
    if (!f)
        return herd_fail(HERD_ERR_NOMEM, "%s: cannot allocate the GGUF reader", path);
    herd_status s = herd_map_file(path, &f->map);
    if (s != HERD_OK) {
        herd_free(f);
        return s;
    }
    struct reader r = {f->map.data, f->map.size, 0, path};
    s = parse(&r, f);
    if (s != HERD_OK) {
        gguf_close(f);
        return s;
    }
    *out = f;
    return HERD_OK;
}

void gguf_close(struct gguf_file *f)
{
    if (!f)
        return;
    if (f->tensors)
        for (uint64_t i = 0; i < f->n_tensors; i++)
            herd_free(f->tensors[i].name);
    herd_free(f->tensors);
    herd_free(f->kv);
    herd_unmap(&f->map);
    herd_free(f);
}

const struct gguf_kv *gguf_find(const struct gguf_file *f, const char *key)
{
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (str_eq(f->kv[i].key, key))
            return &f->kv[i];
    return NULL;
}

const struct tensor_info *gguf_find_tensor(const struct gguf_file *f, const char *name)
{
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

static int vtype_is_int(enum gguf_vtype t)
{
    return t == GGUF_UINT8 || t == GGUF_INT8 || t == GGUF_UINT16 || t == GGUF_INT16 ||
           t == GGUF_UINT32 || t == GGUF_INT32 || t == GGUF_UINT64 || t == GGUF_INT64 ||
           t == GGUF_BOOL;
}

static int vtype_is_signed(enum gguf_vtype t)
{
    return t == GGUF_INT8 || t == GGUF_INT16 || t == GGUF_INT32 || t == GGUF_INT64;
}

herd_status gguf_get_int(const struct gguf_file *f, const char *key, int64_t *v, int *found)
{
    *found = 0;
    const struct gguf_kv *kv = gguf_find(f, key);
    if (!kv)
        return HERD_OK;
    if (!vtype_is_int(kv->type))
        return herd_fail(HERD_ERR_FORMAT, "metadata '%s': expected an integer, found %s", key,
                         vtype_name(kv->type));
    if (!vtype_is_signed(kv->type) && kv->v.u > (uint64_t)INT64_MAX)
        return herd_fail(HERD_ERR_FORMAT, "metadata '%s': value %llu is out of range", key,
                         (unsigned long long)kv->v.u);
    *v = vtype_is_signed(kv->type) ? kv->v.i : (int64_t)kv->v.u;
    *found = 1;
    return HERD_OK;
}

herd_status gguf_get_float(const struct gguf_file *f, const char *key, double *v, int *found)
{
    *found = 0;
    const struct gguf_kv *kv = gguf_find(f, key);
    if (!kv)
        return HERD_OK;
    if (kv->type == GGUF_FLOAT32 || kv->type == GGUF_FLOAT64) {
        *v = kv->v.f;
    } else if (vtype_is_int(kv->type) && kv->type != GGUF_BOOL) {
        *v = vtype_is_signed(kv->type) ? (double)kv->v.i : (double)kv->v.u;
    } else {
        return herd_fail(HERD_ERR_FORMAT, "metadata '%s': expected a number, found %s", key,
                         vtype_name(kv->type));
    }
    *found = 1;
    return HERD_OK;
}

herd_status gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *v,
                         int *found)
{
    *found = 0;
    const struct gguf_kv *kv = gguf_find(f, key);
    if (!kv)
        return HERD_OK;
    if (kv->type != GGUF_STRING)
        return herd_fail(HERD_ERR_FORMAT, "metadata '%s': expected a string, found %s", key,
                         vtype_name(kv->type));
    *v = kv->str;
    *found = 1;
    return HERD_OK;
}

herd_status gguf_str_array_all(const struct gguf_kv *kv, struct gguf_str **out)
{
    *out = NULL;
    if (kv->type != GGUF_ARRAY || kv->arr_type != GGUF_STRING)
        return herd_fail(HERD_ERR_FORMAT, "metadata '%.*s': expected an array of strings",
                         (int)(kv->key.n > 96 ? 96 : kv->key.n), kv->key.p);
    struct gguf_str *a;
    herd_status s = herd_alloc_array((void **)&a, kv->arr_n ? (size_t)kv->arr_n : 1,
                                     sizeof *a, "gguf string array");
    if (s != HERD_OK)
        return s;
    /* Bounds were checked when the file was opened. */
    const uint8_t *p = kv->arr_data;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        a[i].n = load_u64(p);
        a[i].p = (const char *)p + 8;
        p += 8 + a[i].n;
    }
    *out = a;
    return HERD_OK;
}

herd_status gguf_arr_get_int(const struct gguf_kv *kv, uint64_t i, int64_t *v)
{
    if (kv->type != GGUF_ARRAY || !vtype_is_int(kv->arr_type) || i >= kv->arr_n)
        return herd_fail(HERD_ERR_FORMAT, "metadata '%.*s': no integer element %llu",
                         (int)(kv->key.n > 96 ? 96 : kv->key.n), kv->key.p,
                         (unsigned long long)i);
    struct gguf_kv tmp;
    size_t n = vtype_size(kv->arr_type);
    load_scalar(&tmp, kv->arr_type, kv->arr_data + i * n);
    *v = vtype_is_signed(kv->arr_type) ? tmp.v.i : (int64_t)tmp.v.u;
    return HERD_OK;
}

herd_status gguf_arr_get_float(const struct gguf_kv *kv, uint64_t i, double *v)
{
    if (kv->type != GGUF_ARRAY ||
        (kv->arr_type != GGUF_FLOAT32 && kv->arr_type != GGUF_FLOAT64) || i >= kv->arr_n)
        return herd_fail(HERD_ERR_FORMAT, "metadata '%.*s': no float element %llu",
                         (int)(kv->key.n > 96 ? 96 : kv->key.n), kv->key.p,
                         (unsigned long long)i);
    struct gguf_kv tmp;
    size_t n = vtype_size(kv->arr_type);
    load_scalar(&tmp, kv->arr_type, kv->arr_data + i * n);
    *v = tmp.v.f;
    return HERD_OK;
}
