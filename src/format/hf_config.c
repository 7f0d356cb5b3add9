/*
 * hf_config.c - config.json and generation_config.json of a Hugging Face Llama folder
 * (transformers LlamaConfig / GenerationConfig).
 *
 * Required: hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
 * vocab_size. Defaults follow LlamaConfig: num_key_value_heads = num_attention_heads,
 * rms_norm_eps 1e-6, rope_theta 10000, max_position_embeddings 2048, tie_word_embeddings
 * false, head_dim absent (0). rope_scaling may be null, {"rope_type": "llama3", ...} or the
 * older spelling {"type": "llama3", ...}; other scaling kinds are refused rather than
 * silently ignored. eos_token_id may be an int or a list, in either file;
 * generation_config.json's value wins, as transformers' generate() uses it.
 *
 * Every field with a wrong type (a bool for an integer, a fraction, an infinite number) is a
 * one-line HERD_ERR_FORMAT naming the file and field; ranges beyond sign are the model
 * loader's (load_hf.c), which knows what each field sizes.
 */
#include "format/format.h"

#include <cjson/cJSON.h> /* the JSON */
#include <math.h>        /* floor, isfinite */

struct jfile {
    const char *path;
    const cJSON *root;
    const char *prefix; /* "" or "rope_scaling." for messages */
};

/* 2^53: integers beyond it are not exact in a JSON double. */
#define JSON_MAX_INT 9007199254740992.0

/* *v from an integer field; *found 0 when absent or null. */
static herd_status get_int(const struct jfile *j, const cJSON *obj, const char *key,
                           int64_t *v, int *found)
{
    *found = 0;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!e || cJSON_IsNull(e))
        return HERD_OK;
    if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) ||
        fabs(e->valuedouble) > JSON_MAX_INT)
        return herd_fail(HERD_ERR_FORMAT, "%s: field '%s%s': expected an integer", j->path,
                         j->prefix, key);
    *v = (int64_t)e->valuedouble;
    *found = 1;
    return HERD_OK;
}

static herd_status get_num(const struct jfile *j, const cJSON *obj, const char *key,
                           double *v, int *found)
{
    *found = 0;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!e || cJSON_IsNull(e))
        return HERD_OK;
    if (!cJSON_IsNumber(e))
        return herd_fail(HERD_ERR_FORMAT, "%s: field '%s%s': expected a number", j->path,
                         j->prefix, key);
    /* cJSON reads 1e999 as infinity; no hyper-parameter means anything infinite */
    if (!isfinite(e->valuedouble))
        return herd_fail(HERD_ERR_FORMAT, "%s: field '%s%s': %g is not a finite number",
                         j->path, j->prefix, key, e->valuedouble);
    *v = e->valuedouble;
    *found = 1;
    return HERD_OK;
}

/* Copies a string field into dst (cap bytes with the NUL); absent leaves dst as is. */
static herd_status get_str(const struct jfile *j, const cJSON *obj, const char *key, char *dst,
                           size_t cap)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!e || cJSON_IsNull(e))
        return HERD_OK;
    if (!cJSON_IsString(e))
        return herd_fail(HERD_ERR_FORMAT, "%s: field '%s': expected a string", j->path, key);
    size_t n = strlen(e->valuestring);
    if (n >= cap)
        return herd_fail(HERD_ERR_FORMAT, "%s: field '%s': \"%.40s...\" is longer than %zu "
                         "bytes", j->path, key, e->valuestring, cap - 1);
    memcpy(dst, e->valuestring, n + 1);
    return HERD_OK;
}

static herd_status require_pos(const struct jfile *j, const cJSON *obj, const char *key,
                               int64_t *v)
{
    int found;
    herd_status s = get_int(j, obj, key, v, &found);
    if (s != HERD_OK)
        return s;
    if (!found)
        return herd_fail(HERD_ERR_FORMAT, "%s: field '%s' is missing", j->path, key);
    if (*v <= 0)
        return herd_fail(HERD_ERR_FORMAT, "%s: field '%s': %lld is not positive", j->path,
                         key, (long long)*v);
    return HERD_OK;
}

/* eos_token_id: an int or a list of ints. Absent leaves c unchanged. */
static herd_status get_eos(const struct jfile *j, struct hf_config *c)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j->root, "eos_token_id");
    if (!e || cJSON_IsNull(e))
        return HERD_OK;
    int64_t ids[8];
    int n = 0;
    if (cJSON_IsArray(e)) {
        int size = cJSON_GetArraySize(e);
        if (size > 8)
            return herd_fail(HERD_ERR_UNSUPPORTED, "%s: field 'eos_token_id': %d ids (at most "
                             "8)", j->path, size);
        for (const cJSON *x = e->child; x; x = x->next) {
            if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) ||
                x->valuedouble < 0 || x->valuedouble > JSON_MAX_INT)
                return herd_fail(HERD_ERR_FORMAT, "%s: field 'eos_token_id': expected "
                                 "non-negative integers", j->path);
            ids[n++] = (int64_t)x->valuedouble;
        }
    } else {
        int found;
        herd_status s = get_int(j, j->root, "eos_token_id", &ids[0], &found);
        if (s != HERD_OK)
            return s;
        if (ids[0] < 0)
            return herd_fail(HERD_ERR_FORMAT, "%s: field 'eos_token_id': negative id",
                             j->path);
        n = 1;
    }
    memcpy(c->eos_token_ids, ids, (size_t)n * sizeof ids[0]);
    c->n_eos = n;
    return HERD_OK;
}

static herd_status get_bos(const struct jfile *j, struct hf_config *c)
{
    int found;
    int64_t v;
    herd_status s = get_int(j, j->root, "bos_token_id", &v, &found);
    if (s == HERD_OK && found)
        c->bos_token_id = v;
    return s;
}

static herd_status get_rope_scaling(const struct jfile *j, struct hf_config *c)
{
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j->root, "rope_scaling");
    if (!rs || cJSON_IsNull(rs))
        return HERD_OK;
    if (!cJSON_IsObject(rs))
        return herd_fail(HERD_ERR_FORMAT, "%s: field 'rope_scaling': expected an object or "
                         "null", j->path);
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!kind)
        kind = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(kind))
        return herd_fail(HERD_ERR_FORMAT, "%s: field 'rope_scaling.rope_type': expected a "
                         "string", j->path);
    if (strcmp(kind->valuestring, "default") == 0)
        return HERD_OK;
    if (strcmp(kind->valuestring, "llama3") != 0)
        return herd_fail(HERD_ERR_UNSUPPORTED, "%s: field 'rope_scaling.rope_type': \"%.32s\" "
                         "is not supported (expected \"llama3\")", j->path, kind->valuestring);
    struct jfile sub = {j->path, rs, "rope_scaling."};
    static const char *keys[] = {"factor", "low_freq_factor", "high_freq_factor"};
    double *dst[] = {&c->rope_factor, &c->rope_low_freq_factor, &c->rope_high_freq_factor};
    for (int i = 0; i < 3; i++) {
        int found;
        herd_status s = get_num(&sub, rs, keys[i], dst[i], &found);
        if (s != HERD_OK)
            return s;
        if (!found || !(*dst[i] > 0))
            return herd_fail(HERD_ERR_FORMAT, "%s: field 'rope_scaling.%s': missing or not "
                             "positive", j->path, keys[i]);
    }
    int found;
    herd_status s = get_int(&sub, rs, "original_max_position_embeddings",
                            &c->rope_original_max_position_embeddings, &found);
    if (s != HERD_OK)
        return s;
    if (!found || c->rope_original_max_position_embeddings <= 0)
        return herd_fail(HERD_ERR_FORMAT, "%s: field 'rope_scaling.original_max_position_"
                         "embeddings': missing or not positive", j->path);
    c->has_rope_scaling = 1;
    return HERD_OK;
}

static herd_status get_tie(const struct jfile *j, struct hf_config *c)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j->root, "tie_word_embeddings");
    if (!e || cJSON_IsNull(e))
        return HERD_OK;
    if (!cJSON_IsBool(e))
        return herd_fail(HERD_ERR_FORMAT, "%s: field 'tie_word_embeddings': expected true or "
                         "false", j->path);
    c->tie_word_embeddings = cJSON_IsTrue(e);
    return HERD_OK;
}

static herd_status read_config(const struct jfile *j, struct hf_config *c)
{
    const cJSON *r = j->root;
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(r, "architectures");
    if (arch && !cJSON_IsNull(arch)) {
        if (!cJSON_IsArray(arch) || !cJSON_IsString(arch->child))
            return herd_fail(HERD_ERR_FORMAT, "%s: field 'architectures': expected a list of "
                             "strings", j->path);
        size_t n = strlen(arch->child->valuestring);
        if (n >= sizeof c->architecture)
            return herd_fail(HERD_ERR_FORMAT, "%s: field 'architectures': name too long",
                             j->path);
        memcpy(c->architecture, arch->child->valuestring, n + 1);
    }
    herd_status s = get_str(j, r, "model_type", c->model_type, sizeof c->model_type);
    if (s == HERD_OK)
        s = get_str(j, r, "torch_dtype", c->torch_dtype, sizeof c->torch_dtype);
    if (s == HERD_OK)
        s = require_pos(j, r, "hidden_size", &c->hidden_size);
    if (s == HERD_OK)
        s = require_pos(j, r, "num_hidden_layers", &c->num_hidden_layers);
    if (s == HERD_OK)
        s = require_pos(j, r, "num_attention_heads", &c->num_attention_heads);
    if (s == HERD_OK)
        s = require_pos(j, r, "intermediate_size", &c->intermediate_size);
    if (s == HERD_OK)
        s = require_pos(j, r, "vocab_size", &c->vocab_size);
    if (s != HERD_OK)
        return s;
    int found;
    c->num_key_value_heads = c->num_attention_heads;
    s = get_int(j, r, "num_key_value_heads", &c->num_key_value_heads, &found);
    if (s == HERD_OK && c->num_key_value_heads <= 0)
        s = herd_fail(HERD_ERR_FORMAT, "%s: field 'num_key_value_heads': not positive",
                      j->path);
    if (s == HERD_OK)
        s = get_int(j, r, "head_dim", &c->head_dim, &found);
    if (s == HERD_OK && c->head_dim < 0)
        s = herd_fail(HERD_ERR_FORMAT, "%s: field 'head_dim': negative", j->path);
    if (s == HERD_OK)
        s = get_int(j, r, "max_position_embeddings", &c->max_position_embeddings, &found);
    if (s == HERD_OK)
        s = get_num(j, r, "rms_norm_eps", &c->rms_norm_eps, &found);
    if (s == HERD_OK)
        s = get_num(j, r, "rope_theta", &c->rope_theta, &found);
    if (s == HERD_OK)
        s = get_rope_scaling(j, c);
    if (s == HERD_OK)
        s = get_tie(j, c);
    if (s == HERD_OK)
        s = get_bos(j, c);
    if (s == HERD_OK)
        s = get_eos(j, c);
    return s;
}

static herd_status read_generation(const struct jfile *j, struct hf_config *c)
{
    int found;
    c->has_generation = 1;
    herd_status s = get_num(j, j->root, "temperature", &c->temperature, &found);
    if (s == HERD_OK)
        s = get_num(j, j->root, "top_p", &c->top_p, &found);
    if (s == HERD_OK)
        s = get_bos(j, c);
    if (s == HERD_OK)
        s = get_eos(j, c);
    return s;
}

/* Parses dir/name and runs fn on it; optional allows an absent file. */
static herd_status with_json(const char *dir, const char *name, int optional,
                             herd_status (*fn)(const struct jfile *, struct hf_config *),
                             struct hf_config *c)
{
    char *path = herd_path_join(dir, name);
    if (!path)
        return herd_fail(HERD_ERR_NOMEM, "%s/%s: cannot allocate the path", dir, name);
    char *text = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    herd_status s = HERD_OK;
    if (optional && !herd_file_exists(path))
        goto done;
    s = herd_read_file(path, &text, &len);
    if (s != HERD_OK)
        goto done;
    root = cJSON_ParseWithLength(text, len);
    if (!root) {
        s = herd_fail(HERD_ERR_FORMAT, "%s: not valid JSON", path);
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        s = herd_fail(HERD_ERR_FORMAT, "%s: not a JSON object", path);
        goto done;
    }
    struct jfile j = {path, root, ""};
    s = fn(&j, c);
done:
    cJSON_Delete(root);
    herd_free(text);
    herd_free(path);
    return s;
}

herd_status hf_config_read(const char *dir, struct hf_config *c)
{
    memset(c, 0, sizeof *c);
    c->rms_norm_eps = 1e-6;
    c->rope_theta = 10000.0;
    c->max_position_embeddings = 2048;
    c->bos_token_id = -1;
    c->temperature = -1.0;
    c->top_p = -1.0;
    herd_status s = with_json(dir, "config.json", 0, read_config, c);
    if (s == HERD_OK)
        s = with_json(dir, "generation_config.json", 1, read_generation, c);
    if (s != HERD_OK) {
        memset(c, 0, sizeof *c);
        c->bos_token_id = -1;
    }
    return s;
}
