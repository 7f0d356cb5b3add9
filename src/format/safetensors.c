/*
 * safetensors.c - bounded reader of one .safetensors file (spec: huggingface/safetensors
 * README).
 *
 * Layout: u64 N (little-endian) | N bytes of UTF-8 JSON | raw little-endian tensor data.
 * The JSON object maps each tensor name to {"dtype": "BF16", "shape": [rows, cols],
 * "data_offsets": [begin, end]}, offsets relative to the first byte after the header; the
 * optional "__metadata__" entry (string to string) is skipped.
 *
 * Invariants: the header length, every shape and every offset pair are checked against the
 * file before use; end - begin equals the element count times the element size; ranges do
 * not overlap; names are unique. Shapes are reversed into ne[] (ne[0] innermost). Only
 * F32, F16 and BF16 are accepted, the dtypes Llama checkpoints use.
 */
#include "format/format.h"
#include "quant/quant.h" /* DTYPE_F8_E4M3_RAW */

#include <cjson/cJSON.h> /* header JSON */
#include <stdlib.h>      /* qsort */

/* The reference implementation refuses headers over 100 MB; so does herd. */
#define ST_MAX_HEADER (100u * 1000u * 1000u)
#define ST_MAX_DIMS 4
/* Offsets and sizes arrive as JSON numbers (doubles): beyond 2^53 they are not exact. */
#define ST_MAX_EXACT 9007199254740992.0

static int cmp_name(const void *a, const void *b)
{
    const struct tensor_info *x = *(const struct tensor_info *const *)a;
    const struct tensor_info *y = *(const struct tensor_info *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_data(const void *a, const void *b)
{
    const struct tensor_info *x = *(const struct tensor_info *const *)a;
    const struct tensor_info *y = *(const struct tensor_info *const *)b;
    const uint8_t *px = x->data, *py = y->data;
    return (px > py) - (px < py);
}

static int json_uint(const cJSON *j, uint64_t *v)
{
    if (!cJSON_IsNumber(j))
        return 0;
    double d = j->valuedouble;
    if (!(d >= 0.0 && d <= ST_MAX_EXACT) || d != (double)(uint64_t)d)
        return 0;
    *v = (uint64_t)d;
    return 1;
}

static herd_status parse_dtype(const char *path, const char *name, const cJSON *j,
                               herd_dtype *t, size_t *elsize)
{
    if (!cJSON_IsString(j))
        return herd_fail(HERD_ERR_FORMAT, "%s: tensor '%s': \"dtype\" missing or not a string",
                         path, name);
    const char *s = j->valuestring;
    if (strcmp(s, "F32") == 0) {
        *t = HERD_DTYPE_F32;
        *elsize = 4;
    } else if (strcmp(s, "F16") == 0) {
        *t = HERD_DTYPE_F16;
        *elsize = 2;
    } else if (strcmp(s, "BF16") == 0) {
        *t = HERD_DTYPE_BF16;
        *elsize = 2;
    } else if (strcmp(s, "F8_E4M3") == 0) { /* fbgemm_fp8 weights: scaled at load */
        *t = DTYPE_F8_E4M3_RAW;
        *elsize = 1;
    } else {
        return herd_fail(HERD_ERR_UNSUPPORTED, "%s: tensor '%s': dtype \"%.32s\" is not "
                         "supported (expected F32, F16, BF16 or F8_E4M3)", path, name, s);
    }
    return HERD_OK;
}

/* Fills t (name already set) from its JSON entry; data_size is the bytes after the header. */
static herd_status parse_tensor(const char *path, const cJSON *e, const uint8_t *data,
                                size_t data_size, struct tensor_info *t)
{
    const char *name = t->name;
    if (!cJSON_IsObject(e))
        return herd_fail(HERD_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", path,
                         name);
    size_t elsize = 0;
    herd_status s = parse_dtype(path, name, cJSON_GetObjectItemCaseSensitive(e, "dtype"),
                                &t->type, &elsize);
    if (s != HERD_OK)
        return s;
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!cJSON_IsArray(shape))
        return herd_fail(HERD_ERR_FORMAT, "%s: tensor '%s': \"shape\" missing or not an array",
                         path, name);
    int rank = cJSON_GetArraySize(shape);
    if (rank > ST_MAX_DIMS)
        return herd_fail(HERD_ERR_UNSUPPORTED, "%s: tensor '%s': rank %d (at most %d)", path,
                         name, rank, ST_MAX_DIMS);
    for (int d = 0; d < ST_MAX_DIMS; d++)
        t->ne[d] = 1;
    t->n_dims = rank ? rank : 1;
    uint64_t n_elems = 1;
    for (int d = 0; d < rank; d++) {
        uint64_t v;
        if (!json_uint(cJSON_GetArrayItem(shape, d), &v))
            return herd_fail(HERD_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a "
                             "non-negative integer", path, name, d);
        if (v && n_elems > (uint64_t)(ST_MAX_EXACT / (double)v))
            return herd_fail(HERD_ERR_FORMAT, "%s: tensor '%s': shape overflows", path, name);
        n_elems *= v;
        t->ne[rank - 1 - d] = (int64_t)v; /* [rows, cols] -> ne = {cols, rows} */
    }
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    uint64_t begin, end;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_uint(cJSON_GetArrayItem(offs, 0), &begin) ||
        !json_uint(cJSON_GetArrayItem(offs, 1), &end) || end < begin)
        return herd_fail(HERD_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" is not "
                         "[begin, end] with 0 <= begin <= end", path, name);
    if (end > data_size)
        return herd_fail(HERD_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] run "
                         "past the %zu data bytes in the file", path, name,
                         (unsigned long long)begin, (unsigned long long)end, data_size);
    if (end - begin != n_elems * elsize)
        return herd_fail(HERD_ERR_FORMAT, "%s: tensor '%s': data_offsets span %llu bytes but "
                         "the shape needs %llu", path, name,
                         (unsigned long long)(end - begin),
                         (unsigned long long)(n_elems * elsize));
    t->data = data + begin;
    t->nbytes = (size_t)(end - begin);
    return HERD_OK;
}

static herd_status check_unique_apart(const char *path, struct st_file *f)
{
    if (f->n_tensors < 2)
        return HERD_OK;
    const struct tensor_info **ix;
    herd_status s = herd_alloc_array((void **)&ix, f->n_tensors, sizeof *ix,
                                     "safetensors index");
    if (s != HERD_OK)
        return herd_fail_prefix(s, "%s", path);
    for (size_t i = 0; i < f->n_tensors; i++)
        ix[i] = &f->tensors[i];
    qsort(ix, f->n_tensors, sizeof *ix, cmp_name);
    for (size_t i = 1; i < f->n_tensors; i++) {
        if (strcmp(ix[i - 1]->name, ix[i]->name) == 0) {
            s = herd_fail(HERD_ERR_FORMAT, "%s: tensor '%s': duplicate name", path,
                          ix[i]->name);
            goto done;
        }
    }
    qsort(ix, f->n_tensors, sizeof *ix, cmp_data);
    for (size_t i = 1; i < f->n_tensors; i++) {
        const uint8_t *end = (const uint8_t *)ix[i - 1]->data + ix[i - 1]->nbytes;
        if ((const uint8_t *)ix[i]->data < end) {
            s = herd_fail(HERD_ERR_FORMAT, "%s: tensor '%s': data overlaps tensor '%s'", path,
                          ix[i]->name, ix[i - 1]->name);
            goto done;
        }
    }
done:
    herd_free(ix);
    return s;
}

static herd_status parse(const char *path, struct st_file *f)
{
    const uint8_t *p = f->map.data;
    size_t size = f->map.size;
    if (size < 8)
        return herd_fail(HERD_ERR_FORMAT, "%s: truncated: %zu bytes, the header length alone "
                         "takes 8", path, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | p[i];
    if (n > ST_MAX_HEADER || n > size - 8)
        return herd_fail(HERD_ERR_FORMAT, "%s: header length %llu exceeds the file (%zu bytes) "
                         "or the 100 MB limit", path, (unsigned long long)n, size);
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)n);
    if (!root)
        return herd_fail(HERD_ERR_FORMAT, "%s: header is not valid JSON", path);
    herd_status s = HERD_OK;
    if (!cJSON_IsObject(root)) {
        s = herd_fail(HERD_ERR_FORMAT, "%s: header is not a JSON object", path);
        goto done;
    }
    size_t count = 0;
    for (const cJSON *e = root->child; e; e = e->next)
        if (strcmp(e->string, "__metadata__") != 0)
            count++;
    s = herd_alloc_array((void **)&f->tensors, count ? count : 1, sizeof *f->tensors,
                         "safetensors tensors");
    if (s != HERD_OK) {
        s = herd_fail_prefix(s, "%s", path);
        goto done;
    }
    memset(f->tensors, 0, (count ? count : 1) * sizeof *f->tensors);
    const uint8_t *data = p + 8 + n;
    size_t data_size = size - 8 - (size_t)n;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0)
            continue;
        struct tensor_info *t = &f->tensors[f->n_tensors];
        t->name = herd_strdup(e->string);
        if (!t->name) {
            s = herd_fail(HERD_ERR_NOMEM, "%s: cannot allocate a tensor name", path);
            goto done;
        }
        f->n_tensors++;
        s = parse_tensor(path, e, data, data_size, t);
        if (s != HERD_OK)
            goto done;
    }
    s = check_unique_apart(path, f);
done:
    cJSON_Delete(root);
    return s;
}

herd_status st_open(const char *path, struct st_file **out)
{
    *out = NULL;
    struct st_file *f = herd_calloc(1, sizeof *f);
    if (!f)
        return herd_fail(HERD_ERR_NOMEM, "%s: cannot allocate the safetensors reader", path);
    herd_status s = herd_map_file(path, &f->map);
    if (s != HERD_OK) {
        herd_free(f);
        return s;
    }
    s = parse(path, f);
    if (s != HERD_OK) {
        st_close(f);
        return s;
    }
    *out = f;
    return HERD_OK;
}

void st_close(struct st_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_tensors; i++)
        herd_free(f->tensors[i].name);
    herd_free(f->tensors);
    herd_unmap(&f->map);
    herd_free(f);
}

const struct tensor_info *st_find_tensor(const struct st_file *f, const char *name)
{
    for (size_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}
