/*
 * load_fp8.c - FP8 checkpoints in Hugging Face form (transformers' fbgemm_fp8, the layout of
 * meta-llama/Llama-3.1-405B-Instruct-FP8): config.json's quantization_config has
 * quant_method "fbgemm_fp8", activation_scale_ub and modules_to_not_convert; each quantized
 * linear stores weight (F8_E4M3 [out, in]), weight_scale (F32 [out, 1]) and optionally
 * input_scale_ub (F32 [1]); modules named in modules_to_not_convert (substring match on the
 * module name, as transformers' replace_with_fbgemm_fp8_linear does) stay BF16.
 *
 * Each F8 weight is repacked once at load into HERD_DTYPE_F8_E4M3 rows (quant/fp8.c:
 * {f32 scale, f32 activation bound, n codes}) in owned memory, and its tensor entry is
 * pointed there, so binding, the kernels and `herd quantize` see one self-contained type.
 * The mapped pages of the file's codes are released after each repack (MADV_DONTNEED).
 */
#include "model.h"
#include "quant/quant.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>

#define FP8_DEFAULT_UB 1200.0 /* transformers' FbgemmFp8Config default */

struct fp8_cfg {
    int on;
    double ub;
    cJSON *skip; /* modules_to_not_convert (array) or NULL; owned by root */
    cJSON *root;
};

static herd_status read_qcfg(const char *dir, struct fp8_cfg *q)
{
    memset(q, 0, sizeof *q);
    q->ub = FP8_DEFAULT_UB;
    char *path = herd_path_join(dir, "config.json"), *text = NULL;
    size_t len = 0;
    if (!path)
        return herd_fail(HERD_ERR_NOMEM, "path");
    herd_status s = herd_read_file(path, &text, &len);
    if (s == HERD_OK) {
        q->root = cJSON_ParseWithLength(text, len);
        const cJSON *qc = cJSON_GetObjectItemCaseSensitive(q->root, "quantization_config");
        const cJSON *qm = cJSON_GetObjectItemCaseSensitive(qc, "quant_method");
        const cJSON *ub = cJSON_GetObjectItemCaseSensitive(qc, "activation_scale_ub");
        q->on = cJSON_IsString(qm) && strcmp(qm->valuestring, "fbgemm_fp8") == 0;
        if (ub && !cJSON_IsNull(ub)) {
            if (!cJSON_IsNumber(ub) || !isfinite(ub->valuedouble) || ub->valuedouble <= 0)
                s = herd_fail(HERD_ERR_FORMAT, "%s: quantization_config.activation_scale_ub: "
                              "expected a positive number", path);
            else
                q->ub = ub->valuedouble;
        }
        q->skip = cJSON_GetObjectItemCaseSensitive(qc, "modules_to_not_convert");
        if (s == HERD_OK && q->skip && !cJSON_IsArray(q->skip) && !cJSON_IsNull(q->skip))
            s = herd_fail(HERD_ERR_FORMAT, "%s: quantization_config.modules_to_not_convert: "
                          "expected a list", path);
    }
    herd_free(text);
    herd_free(path);
    return s;
}

static const struct tensor_info *find_suffix(const herd_model *m, const char *name,
                                             size_t stem, const char *suffix)
{
    char buf[256];
    if (stem + strlen(suffix) >= sizeof buf)
        return NULL;
    memcpy(buf, name, stem);
    memcpy(buf + stem, suffix, strlen(suffix) + 1);
    return model_find(m, buf);
}

/* A scalar or per-row vector of F32/BF16 values, element i. */
static float elem(const struct tensor_info *t, int64_t i)
{
    if (t->type == HERD_DTYPE_F32) {
        float v;
        memcpy(&v, (const uint8_t *)t->data + i * 4, 4);
        return v;
    }
    float v = 0;
    dequantize_row(t->type, &v, (const uint8_t *)t->data + i * 2, 1);
    return v;
}

static herd_status repack(herd_model *m, const struct fp8_cfg *q, struct tensor_info *t)
{
    size_t n = strlen(t->name);
    if (n < 7 || strcmp(t->name + n - 7, ".weight") != 0 || t->n_dims != 2)
        return herd_fail(HERD_ERR_UNSUPPORTED, "tensor %s: F8_E4M3 is read only for the "
                         "weight matrices of fbgemm_fp8 linears", t->name);
    size_t stem = n - 6; /* keeps the '.' */
    cJSON *e;
    cJSON_ArrayForEach(e, q->skip) {
        if (cJSON_IsString(e) && e->valuestring[0] &&
            strstr(t->name, e->valuestring) && strlen(e->valuestring) <= stem)
            return herd_fail(HERD_ERR_FORMAT, "tensor %s is F8_E4M3 but its module is in "
                             "modules_to_not_convert (\"%s\")", t->name, e->valuestring);
    }
    int64_t rows = t->ne[1], cols = t->ne[0];
    const struct tensor_info *sc = find_suffix(m, t->name, stem, "weight_scale");
    if (!sc)
        return herd_fail(HERD_ERR_FORMAT, "tensor %s: F8_E4M3 without its %.*sweight_scale",
                         t->name, (int)stem, t->name);
    if ((sc->type != HERD_DTYPE_F32 && sc->type != HERD_DTYPE_BF16) ||
        sc->ne[0] * sc->ne[1] * sc->ne[2] * sc->ne[3] != rows ||
        sc->nbytes < (size_t)rows * (sc->type == HERD_DTYPE_F32 ? 4 : 2))
        return herd_fail(HERD_ERR_FORMAT, "tensor %s: expected %lld f32 row scales (shape "
                         "[%lld, 1])", sc->name, (long long)rows, (long long)rows);
    float ub = (float)q->ub;
    const struct tensor_info *ut = find_suffix(m, t->name, stem, "input_scale_ub");
    if (ut && (ut->type == HERD_DTYPE_F32 || ut->type == HERD_DTYPE_BF16) && ut->nbytes >= 2)
        ub = elem(ut, 0);
    if (!(ub > 0) || !isfinite(ub))
        return herd_fail(HERD_ERR_FORMAT, "tensor %s: activation bound %g is not a positive "
                         "number", t->name, (double)ub);
    size_t rb = dtype_row_bytes(HERD_DTYPE_F8_E4M3, cols);
    if (rb == 0 || (size_t)rows > SIZE_MAX / rb || t->nbytes < (size_t)rows * (size_t)cols)
        return herd_fail(HERD_ERR_FORMAT, "tensor %s: bad F8 shape or size", t->name);
    uint8_t *buf = herd_malloc_aligned(rows ? rb * (size_t)rows : 1, 64);
    void **grown = buf ? herd_realloc(m->joined, (size_t)(m->n_joined + 1) * sizeof *grown)
                       : NULL;
    if (!grown) {
        herd_free_aligned(buf);
        return herd_fail(HERD_ERR_NOMEM, "tensor %s: cannot allocate the FP8 rows", t->name);
    }
    m->joined = grown;
    m->joined[m->n_joined++] = buf;
    for (int64_t r = 0; r < rows; r++) {
        float s = elem(sc, r);
        if (!isfinite(s))
            return herd_fail(HERD_ERR_FORMAT, "tensor %s: row %lld's scale is not finite",
                             sc->name, (long long)r);
        fp8_pack_row(buf + (size_t)r * rb, (const uint8_t *)t->data + (size_t)r * (size_t)cols,
                     s, ub, cols);
    }
    /* the file's codes were read once: their pages leave the resident set (peak = the
     * repacked copy plus one tensor, not the file and the copy) */
    model_release_pages(t->data, (size_t)rows * (size_t)cols);
    t->type = HERD_DTYPE_F8_E4M3;
    t->data = buf;
    t->nbytes = rb * (size_t)rows;
    return HERD_OK;
}

herd_status model_fp8_repack(herd_model *m, const char *dir)
{
    int any = 0;
    for (int i = 0; i < m->n_st && !any; i++)
        for (size_t k = 0; k < m->st[i]->n_tensors && !any; k++)
            any = m->st[i]->tensors[k].type == DTYPE_F8_E4M3_RAW;
    if (!any)
        return HERD_OK;
    struct fp8_cfg q;
    herd_status s = read_qcfg(dir, &q);
    if (s == HERD_OK && !q.on)
        s = herd_fail(HERD_ERR_UNSUPPORTED, "%s/config.json: F8_E4M3 tensors but no "
                      "quantization_config with quant_method \"fbgemm_fp8\"", dir);
    for (int i = 0; i < m->n_st && s == HERD_OK; i++)
        for (size_t k = 0; k < m->st[i]->n_tensors && s == HERD_OK; k++)
            if (m->st[i]->tensors[k].type == DTYPE_F8_E4M3_RAW)
                s = repack(m, &q, &m->st[i]->tensors[k]);
    cJSON_Delete(q.root);
    return s;
}
