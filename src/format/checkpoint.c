/*
 * checkpoint.c - where the parts of a checkpoint are: the safetensors shards of a Hugging
 * Face folder, which file provides its tokenizer, and the tokenizer pieces a GGUF carries
 * beside the token table (merges, bos/eos names, chat template). The model loader and
 * `herd quantize` both go through these, so a folder is read one way.
 *
 * A folder's weights are model.safetensors.index.json's weight_map files (transformers'
 * sharded checkpoints; the distinct file names in order of first appearance) or, without
 * an index, model.safetensors. Its tokenizer is tokenizer.json (tokenizers' serialization),
 * with tokenizer_config.json beside it for bos_token, eos_token and chat_template. A GGUF
 * carries its tokenizer in tokenizer.ggml.* (llama.cpp's convention).
 */
#include "format/format.h"

#include <cjson/cJSON.h> /* the index, tokenizer.json merges, tokenizer_config.json */

void hf_shards_free(char **files, int n)
{
    for (int i = 0; files && i < n; i++)
        herd_free(files[i]);
    herd_free(files);
}

/* Appends a copy of name to *files unless it is there already. */
static herd_status add_file(char ***files, int *n, const char *name)
{
    for (int i = 0; i < *n; i++)
        if (strcmp((*files)[i], name) == 0)
            return HERD_OK;
    char **grown = herd_realloc(*files, (size_t)(*n + 1) * sizeof *grown);
    if (!grown)
        return herd_fail(HERD_ERR_NOMEM, "shard list");
    *files = grown;
    if (!(grown[*n] = herd_strdup(name)))
        return herd_fail(HERD_ERR_NOMEM, "shard list");
    (*n)++;
    return HERD_OK;
}

static herd_status read_index(const char *index_path, char ***files, int *n)
{
    char *text = NULL;
    size_t len = 0;
    herd_status s = herd_read_file(index_path, &text, &len);
    if (s != HERD_OK)
        return s;
    cJSON *root = cJSON_ParseWithLength(text, len);
    herd_free(text);
    cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return herd_fail(HERD_ERR_FORMAT, "%s: expected a JSON object with \"weight_map\"",
                         index_path);
    }
    for (cJSON *e = map->child; e && s == HERD_OK; e = e->next) {
        /* a shard is a file of the folder: no paths, no hidden or parent names */
        if (!cJSON_IsString(e) || !e->valuestring[0] || strchr(e->valuestring, '/') ||
            e->valuestring[0] == '.')
            s = herd_fail(HERD_ERR_FORMAT, "%s: weight_map entry %s is not a file name in the "
                          "folder", index_path, e->string ? e->string : "?");
        else
            s = add_file(files, n, e->valuestring);
    }
    if (s == HERD_OK && *n == 0)
        s = herd_fail(HERD_ERR_FORMAT, "%s: weight_map names no files", index_path);
    cJSON_Delete(root);
    return s;
}

herd_status hf_shards(const char *dir, char ***files, int *n)
{
    *files = NULL;
    *n = 0;
    char *index = herd_path_join(dir, "model.safetensors.index.json");
    if (!index)
        return herd_fail(HERD_ERR_NOMEM, "path");
    herd_status s = herd_file_exists(index) ? read_index(index, files, n)
                                            : add_file(files, n, "model.safetensors");
    herd_free(index);
    if (s != HERD_OK) {
        hf_shards_free(*files, *n);
        *files = NULL;
        *n = 0;
    }
    return s;
}

herd_status hf_tokenizer_source(const char *dir, char **tokenizer, char **config)
{
    *tokenizer = NULL;
    if (config)
        *config = NULL;
    char *t = herd_path_join(dir, "tokenizer.json");
    char *c = config ? herd_path_join(dir, "tokenizer_config.json") : NULL;
    if (!t || (config && !c)) {
        herd_free(t);
        herd_free(c);
        return herd_fail(HERD_ERR_NOMEM, "path");
    }
    if (!herd_file_exists(t)) {
        herd_free(t);
        t = NULL;
    }
    if (c && !herd_file_exists(c)) {
        herd_free(c);
        c = NULL;
    }
    *tokenizer = t;
    if (config)
        *config = c;
    return HERD_OK;
}

bool gguf_has_tokenizer(const struct gguf_file *f)
{
    return gguf_find(f, "tokenizer.ggml.tokens") != NULL;
}

void hf_tokenizer_extras_free(struct hf_tokenizer_extras *x)
{
    herd_free(x->merges);
    herd_free(x->merge_text);
    herd_free(x->bos_token);
    herd_free(x->eos_token);
    herd_free(x->chat_template);
    memset(x, 0, sizeof *x);
}

static cJSON *parse_file(const char *path, herd_status *s)
{
    char *text = NULL;
    size_t len = 0;
    *s = herd_read_file(path, &text, &len);
    if (*s != HERD_OK)
        return NULL;
    cJSON *root = cJSON_ParseWithLength(text, len);
    herd_free(text);
    if (!root)
        *s = herd_fail(HERD_ERR_FORMAT, "%s: not valid JSON", path);
    return root;
}

/* model.merges, each "a b" (the older format) or ["a", "b"] (the newer one), joined into
 * one buffer of NUL-terminated "a b" strings. */
static herd_status read_merges(const char *path, const cJSON *merges,
                               struct hf_tokenizer_extras *x)
{
    size_t total = 0, n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, merges) {
        const cJSON *a = cJSON_GetArrayItem(v, 0), *b = cJSON_GetArrayItem(v, 1);
        if (cJSON_IsString(v))
            total += strlen(v->valuestring) + 1;
        else if (cJSON_IsArray(v) && cJSON_IsString(a) && cJSON_IsString(b))
            total += strlen(a->valuestring) + strlen(b->valuestring) + 2;
        else
            return herd_fail(HERD_ERR_FORMAT, "%s: merge %zu is not a pair", path, n);
        n++;
    }
    herd_status s;
    if ((s = herd_alloc_array((void **)&x->merge_text, total ? total : 1, 1, "merges")) ||
        (s = herd_alloc_array((void **)&x->merges, n ? n : 1, sizeof *x->merges, "merges")))
        return s;
    char *p = x->merge_text;
    cJSON_ArrayForEach(v, merges) {
        size_t len;
        if (cJSON_IsString(v)) {
            len = strlen(v->valuestring);
            memcpy(p, v->valuestring, len + 1);
        } else {
            const char *a = cJSON_GetArrayItem(v, 0)->valuestring;
            const char *b = cJSON_GetArrayItem(v, 1)->valuestring;
            size_t la = strlen(a), lb = strlen(b);
            memcpy(p, a, la);
            p[la] = ' ';
            memcpy(p + la + 1, b, lb + 1);
            len = la + 1 + lb;
        }
        x->merges[x->n_merges++] = (struct gguf_str){p, len};
        p += len + 1;
    }
    return HERD_OK;
}

/* A tokenizer_config.json token: a string or {"content": string}; NULL when absent. */
static herd_status config_token(const cJSON *cfg, const char *key, char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v))
        v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v))
        return HERD_OK;
    if (!(*out = herd_strdup(v->valuestring)))
        return herd_fail(HERD_ERR_NOMEM, "tokenizer_config.json %s", key);
    return HERD_OK;
}

herd_status hf_tokenizer_extras_read(const char *tokenizer, const char *config,
                                     struct hf_tokenizer_extras *x)
{
    memset(x, 0, sizeof *x);
    herd_status s = HERD_OK;
    cJSON *tj = parse_file(tokenizer, &s);
    if (!tj)
        return s;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tj, "model");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(merges))
        s = herd_fail(HERD_ERR_FORMAT, "%s: no BPE model.merges", tokenizer);
    else
        s = read_merges(tokenizer, merges, x);
    cJSON_Delete(tj);
    if (s == HERD_OK && config) {
        cJSON *cfg = parse_file(config, &s);
        const cJSON *tmpl = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "chat_template") : NULL;
        if (s == HERD_OK)
            s = config_token(cfg, "bos_token", &x->bos_token);
        if (s == HERD_OK)
            s = config_token(cfg, "eos_token", &x->eos_token);
        if (s == HERD_OK && cJSON_IsString(tmpl) &&
            !(x->chat_template = herd_strdup(tmpl->valuestring)))
            s = herd_fail(HERD_ERR_NOMEM, "chat template");
        cJSON_Delete(cfg);
    }
    if (s != HERD_OK)
        hf_tokenizer_extras_free(x);
    return s;
}
