/*
 * load_hf.c - binds a Hugging Face folder as Meta publishes Llama 3.x: config.json,
 * generation_config.json, model.safetensors or shards listed in model.safetensors.index.json,
 * tokenizer.json. Tensor names: model.embed_tokens, model.layers.N.self_attn.{q,k,v,o}_proj,
 * model.layers.N.mlp.{gate,up,down}_proj, model.layers.N.{input,post_attention}_layernorm,
 * model.norm, lm_head (absent when tied). q/k rows are in HF's rotate-half order (ROPE_HALF).
 */
#include "model.h"

#include <cjson/cJSON.h> /* the shard index */
#include <stdio.h>       /* snprintf */

static const struct tensor_info *find_tensor(const herd_model *m, const char *name)
{
    for (int i = 0; i < m->n_st; i++)
        for (size_t j = 0; j < m->st[i]->n_tensors; j++)
            if (strcmp(m->st[i]->tensors[j].name, name) == 0)
                return &m->st[i]->tensors[j];
    return NULL;
}

static herd_status need(const herd_model *m, const char *name, const struct tensor_info **t)
{
    *t = find_tensor(m, name);
    if (!*t)
        return herd_fail(HERD_ERR_FORMAT, "missing tensor %s", name);
    return HERD_OK;
}

static herd_status open_shard(herd_model *m, const char *dir, const char *file)
{
    char *path = herd_path_join(dir, file);
    if (!path)
        return herd_fail(HERD_ERR_NOMEM, "path");
    struct st_file **st = herd_realloc(m->st, (size_t)(m->n_st + 1) * sizeof *st);
    if (!st) {
        herd_free(path);
        return herd_fail(HERD_ERR_NOMEM, "shards");
    }
    m->st = st;
    herd_status s = st_open(path, &m->st[m->n_st]);
    herd_free(path);
    if (s != HERD_OK)
        return s;
    m->n_st++;
    return HERD_OK;
}

/* Opens every shard named in model.safetensors.index.json's weight_map, once each. */
static herd_status open_index(herd_model *m, const char *dir, const char *index_path)
{
    char *text = NULL;
    herd_status s = herd_read_file(index_path, &text, NULL);
    if (s != HERD_OK)
        return s;
    cJSON *root = cJSON_Parse(text);
    herd_free(text);
    cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return herd_fail(HERD_ERR_FORMAT, "%s: expected a JSON object with \"weight_map\"",
                         index_path);
    }
    /* Distinct file names in order of first appearance. */
    const char *seen[256];
    int n_seen = 0;
    for (cJSON *e = map->child; e; e = e->next) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || e->valuestring[0] == '.') {
            s = herd_fail(HERD_ERR_FORMAT, "%s: weight_map entry %s is not a file name in the "
                          "folder", index_path, e->string ? e->string : "?");
            break;
        }
        int dup = 0;
        for (int i = 0; i < n_seen && !dup; i++)
            dup = strcmp(seen[i], e->valuestring) == 0;
        if (dup)
            continue;
        if (n_seen == (int)(sizeof seen / sizeof seen[0])) {
            s = herd_fail(HERD_ERR_UNSUPPORTED, "%s: more than 256 shards", index_path);
            break;
        }
        seen[n_seen++] = e->valuestring;
        if ((s = open_shard(m, dir, e->valuestring)))
            break;
    }
    cJSON_Delete(root);
    return s;
}

static const struct layer_names hf_layer_names = {
    "model.layers.%d.self_attn.q_proj.weight", "model.layers.%d.self_attn.k_proj.weight",
    "model.layers.%d.self_attn.v_proj.weight", "model.layers.%d.self_attn.o_proj.weight",
    "model.layers.%d.mlp.gate_proj.weight",    "model.layers.%d.mlp.up_proj.weight",
    "model.layers.%d.mlp.down_proj.weight",    "model.layers.%d.input_layernorm.weight",
    "model.layers.%d.post_attention_layernorm.weight",
};

static const struct tensor_info *find_in_shards(const void *m, const char *name)
{
    return find_tensor(m, name);
}

static herd_status read_config(herd_model *m, const char *dir)
{
    struct hf_config c;
    herd_status s = hf_config_read(dir, &c);
    if (s != HERD_OK)
        return s;
    if (strcmp(c.model_type, "llama") != 0 && strcmp(c.architecture, "LlamaForCausalLM") != 0)
        return herd_fail(HERD_ERR_UNSUPPORTED, "%s/config.json: model_type '%s' / architecture "
                         "'%s', expected llama / LlamaForCausalLM", dir, c.model_type,
                         c.architecture);
    herd_model_info *in = &m->info;
    struct {
        int32_t *dst;
        int64_t v;
        const char *key;
    } ints[] = {
        {&in->dim, c.hidden_size, "hidden_size"},
        {&in->n_layers, c.num_hidden_layers, "num_hidden_layers"},
        {&in->n_heads, c.num_attention_heads, "num_attention_heads"},
        {&in->n_kv_heads, c.num_key_value_heads ? c.num_key_value_heads : c.num_attention_heads,
         "num_key_value_heads"},
        {&in->hidden_dim, c.intermediate_size, "intermediate_size"},
        {&in->n_vocab, c.vocab_size, "vocab_size"},
        {&in->max_seq_len, c.max_position_embeddings, "max_position_embeddings"},
        {&in->rope_original_max_pos, c.rope_original_max_position_embeddings,
         "rope_scaling.original_max_position_embeddings"},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (ints[i].v < 0 || ints[i].v > INT32_MAX)
            return herd_fail(HERD_ERR_FORMAT, "%s/config.json: %s = %lld is out of range", dir,
                             ints[i].key, (long long)ints[i].v);
        *ints[i].dst = (int32_t)ints[i].v;
    }
    in->head_dim = c.head_dim > 0 ? (int32_t)c.head_dim
                                  : (in->n_heads > 0 ? in->dim / in->n_heads : 0);
    in->norm_eps = (float)c.rms_norm_eps;
    in->rope_theta = (float)c.rope_theta;
    in->rope_scaling = c.has_rope_scaling != 0;
    in->rope_factor = (float)c.rope_factor;
    in->rope_low_freq_factor = (float)c.rope_low_freq_factor;
    in->rope_high_freq_factor = (float)c.rope_high_freq_factor;
    in->tied_embeddings = c.tie_word_embeddings != 0;
    in->bos_id = (int32_t)c.bos_token_id;
    in->n_eos = 0;
    for (int i = 0; i < c.n_eos && i < 8; i++)
        in->eos_ids[in->n_eos++] = (int32_t)c.eos_token_ids[i];
    if (c.has_generation) {
        in->default_temperature = (float)c.temperature;
        in->default_top_p = (float)c.top_p;
    }
    return HERD_OK;
}

static herd_status bind(herd_model *m, const char *dir)
{
    herd_status s = read_config(m, dir);
    if (s != HERD_OK)
        return s;
    char *index = herd_path_join(dir, "model.safetensors.index.json");
    if (!index)
        return herd_fail(HERD_ERR_NOMEM, "path");
    if (herd_file_exists(index))
        s = open_index(m, dir, index);
    else
        s = open_shard(m, dir, "model.safetensors");
    herd_free(index);
    if (s != HERD_OK)
        return s;

    herd_model_info *in = &m->info;
    if ((s = model_finish_hparams(m, NULL)))
        return s;
    const struct tensor_info *t;
    if ((s = need(m, "model.embed_tokens.weight", &t)) ||
        (s = weight_bind(&m->tok_embd, t, in->n_vocab, in->dim)))
        return s;
    const struct tensor_info *head = find_tensor(m, "lm_head.weight");
    if (!in->tied_embeddings && !head)
        return herd_fail(HERD_ERR_FORMAT, "missing tensor lm_head.weight (config.json says "
                         "tie_word_embeddings is false)");
    if (in->tied_embeddings || !head)
        m->output = m->tok_embd;
    else if ((s = weight_bind(&m->output, head, in->n_vocab, in->dim)))
        return s;
    if ((s = need(m, "model.norm.weight", &t)) || (s = norm_load(&m->out_norm, t, in->dim)))
        return s;
    m->layers = herd_calloc((size_t)in->n_layers, sizeof *m->layers);
    if (!m->layers)
        return herd_fail(HERD_ERR_NOMEM, "layers");
    for (int l = 0; l < in->n_layers; l++)
        if ((s = model_bind_layer(m, l, &hf_layer_names, find_in_shards, m)))
            return s;
    char *tok_path = herd_path_join(dir, "tokenizer.json");
    if (!tok_path)
        return herd_fail(HERD_ERR_NOMEM, "path");
    if (herd_file_exists(tok_path))
        s = herd_tokenizer_load(tok_path, &m->tok);
    herd_free(tok_path);
    return s;
}

herd_status model_bind_hf(herd_model *m, const char *dir)
{
    m->info.format = "hf";
    m->rope_style = ROPE_HALF;
    herd_status s = bind(m, dir);
    if (s != HERD_OK) {
        /* Messages from files in the folder already name them. */
        if (!strstr(herd_last_error(), dir))
            herd_fail_prefix(s, "%s", dir);
        return s;
    }
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    const char *base = dir;
    for (size_t i = 0; i < n; i++)
        if (dir[i] == '/' && i + 1 < n)
            base = dir + i + 1;
    m->name = herd_strndup(base, (size_t)(dir + n - base));
    if (!m->name)
        return herd_fail(HERD_ERR_NOMEM, "model name");
    m->info.name = m->name;
    return HERD_OK;
}
