/*
 * load_hf.c - binds a Hugging Face folder as Meta publishes Llama 3.x: config.json and
 * generation_config.json (format/hf_config.c), the safetensors shards and tokenizer.json
 * (format/checkpoint.c finds them). config.json's architectures[0] / model_type name a row
 * of the architecture table (arch.c), whose HF tensor names are bound; q/k rows are in HF's
 * rotate-half order (the row's HF rope style).
 *
 * config.json's integers arrive as int64 and are range-checked here, by name, before they
 * become the model's int32 sizes and ids; sizes are then confirmed by the tensors before
 * anything is allocated from them (load.c).
 */
#include "model.h"

#include <cjson/cJSON.h> /* tokenizer_config.json chat_template */

static herd_status open_shards(herd_model *m, const char *dir)
{
    char **files = NULL;
    int n = 0;
    herd_status s = hf_shards(dir, &files, &n);
    if (s != HERD_OK)
        return s;
    if (!(m->st = herd_calloc((size_t)n, sizeof *m->st)))
        s = herd_fail(HERD_ERR_NOMEM, "shards");
    for (int i = 0; i < n && s == HERD_OK; i++) {
        char *path = herd_path_join(dir, files[i]);
        s = path ? st_open(path, &m->st[i]) : herd_fail(HERD_ERR_NOMEM, "path");
        herd_free(path);
        if (s == HERD_OK)
            m->n_st++;
    }
    hf_shards_free(files, n);
    return s;
}

/* An int64 from config.json into an int32 field, range-checked by name. */
static herd_status to_i32(const char *dir, const char *key, int64_t v, int64_t lo, int32_t *dst)
{
    if (v < lo || v > INT32_MAX)
        return herd_fail(HERD_ERR_FORMAT, "%s/config.json: %s = %lld is out of range [%lld, "
                         "%d]", dir, key, (long long)v, (long long)lo, INT32_MAX);
    *dst = (int32_t)v;
    return HERD_OK;
}

static herd_status read_config(herd_model *m, const char *dir)
{
    if (!(m->hf = herd_malloc(sizeof *m->hf)))
        return herd_fail(HERD_ERR_NOMEM, "config");
    const struct hf_config *c = m->hf;
    herd_status s = hf_config_read(dir, m->hf);
    if (s != HERD_OK)
        return s;
    if (!arch_known(ARCH_HF, c->architecture, c->model_type))
        return herd_fail(HERD_ERR_UNSUPPORTED, "%s/config.json: model_type '%s' / architecture "
                         "'%s', expected %s", dir, c->model_type, c->architecture,
                         arch_known_names(ARCH_HF));
    herd_model_info *in = &m->info;
    int64_t n_kv = c->num_key_value_heads ? c->num_key_value_heads : c->num_attention_heads;
    const struct {
        int32_t *dst;
        int64_t v, lo;
        const char *key;
    } ints[] = {
        {&in->dim, c->hidden_size, 0, "hidden_size"},
        {&in->n_layers, c->num_hidden_layers, 0, "num_hidden_layers"},
        {&in->n_heads, c->num_attention_heads, 0, "num_attention_heads"},
        {&in->n_kv_heads, n_kv, 0, "num_key_value_heads"},
        {&in->head_dim, c->head_dim, 0, "head_dim"},
        {&in->hidden_dim, c->intermediate_size, 0, "intermediate_size"},
        {&in->n_vocab, c->vocab_size, 0, "vocab_size"},
        {&in->max_seq_len, c->max_position_embeddings, 0, "max_position_embeddings"},
        {&in->rope_original_max_pos, c->rope_original_max_position_embeddings, 0,
         "rope_scaling.original_max_position_embeddings"},
        {&in->bos_id, c->bos_token_id, -1, "bos_token_id"},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if ((s = to_i32(dir, ints[i].key, ints[i].v, ints[i].lo, ints[i].dst)))
            return s;
    in->n_eos = 0;
    for (int i = 0; i < c->n_eos && i < 8; i++)
        if ((s = to_i32(dir, "eos_token_id", c->eos_token_ids[i], 0, &in->eos_ids[in->n_eos++])))
            return s;
    if (in->head_dim == 0) /* absent: LlamaConfig's hidden_size / num_attention_heads */
        in->head_dim = in->n_heads > 0 ? in->dim / in->n_heads : 0;
    in->norm_eps = (float)c->rms_norm_eps;
    in->rope_theta = (float)c->rope_theta;
    in->rope_scaling = c->has_rope_scaling != 0;
    in->rope_factor = (float)c->rope_factor;
    in->rope_low_freq_factor = (float)c->rope_low_freq_factor;
    in->rope_high_freq_factor = (float)c->rope_high_freq_factor;
    in->tied_embeddings = c->tie_word_embeddings != 0;
    if (c->has_generation) {
        in->default_temperature = (float)c->temperature;
        in->default_top_p = (float)c->top_p;
    }
    m->arch = arch_select(ARCH_HF, c->architecture, c->model_type, m->name, in->dim,
                          in->n_layers);
    return HERD_OK;
}

/* tokenizer_config.json's chat_template (a string; the list form of some repos is left
 * out), for the ChatML choice (herd_chat_template_for). */
static herd_status read_chat_template(herd_model *m, const char *path)
{
    struct herd_map map;
    herd_status s = herd_map_file(path, &map);
    if (s != HERD_OK)
        return s;
    cJSON *j = cJSON_ParseWithLength((const char *)map.data, map.size);
    herd_unmap(&map);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "chat_template");
    if (cJSON_IsString(t))
        s = model_set_chat_template(m, t->valuestring, strlen(t->valuestring));
    cJSON_Delete(j);
    return s;
}

static herd_status bind(herd_model *m, const char *dir)
{
    herd_status s;
    if ((s = read_config(m, dir)) || (s = open_shards(m, dir)) ||
        (s = model_fp8_repack(m, dir)) || (s = model_check_hparams(m)))
        return s;
    bool tied = m->info.tied_embeddings;
    if ((s = model_bind_globals(m, !tied)) || (s = model_bind_layers(m)) ||
        (s = model_init_rope(m, NULL)))
        return s;
    char *tok_path = NULL, *cfg_path = NULL;
    if ((s = hf_tokenizer_source(dir, &tok_path, &cfg_path)))
        return s;
    if (tok_path)
        s = herd_tokenizer_load(tok_path, &m->tok);
    if (s == HERD_OK && cfg_path)
        s = read_chat_template(m, cfg_path);
    herd_free(tok_path);
    herd_free(cfg_path);
    return s;
}

herd_status model_bind_hf(herd_model *m, const char *dir)
{
    m->info.format = "hf";
    m->fmt = ARCH_HF;
    herd_status s = model_bind_dir(m, dir, bind);
    if (s != HERD_OK)
        return s;
    m->rope_style = m->arch->rope[ARCH_HF];
    return HERD_OK;
}
