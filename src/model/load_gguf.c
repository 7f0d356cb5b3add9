/*
 * load_gguf.c - binds a GGUF file as written by llama.cpp's converter for Llama 3.x:
 * general.architecture = "llama", hyper-parameters under llama.*, tensors token_embd,
 * blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_output,ffn_norm,ffn_gate,ffn_up,ffn_down},
 * output_norm, output (absent when tied) and rope_freqs (llama3 per-dimension divisors).
 * The converter stores q/k rows in Meta's interleaved RoPE order.
 */
#include "model.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h> /* snprintf for tensor names */

static const struct tensor_info *find_tensor(const struct gguf_file *f, const char *name)
{
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

static herd_status need_tensor(const struct gguf_file *f, const char *name,
                               const struct tensor_info **t)
{
    *t = find_tensor(f, name);
    if (!*t)
        return herd_fail(HERD_ERR_FORMAT, "missing tensor %s", name);
    return HERD_OK;
}

/* Reads an integer key into *v; absent keys keep *v unless required. */
static herd_status get_i32(const struct gguf_file *f, const char *key, int32_t *v, int required)
{
    int64_t x = 0;
    int found = 0;
    herd_status s = gguf_get_int(f, key, &x, &found);
    if (s != HERD_OK)
        return s;
    if (!found) {
        if (required)
            return herd_fail(HERD_ERR_FORMAT, "missing key %s", key);
        return HERD_OK;
    }
    if (x < 0 || x > INT32_MAX)
        return herd_fail(HERD_ERR_FORMAT, "key %s: value %lld out of range", key, (long long)x);
    *v = (int32_t)x;
    return HERD_OK;
}

static herd_status get_f32(const struct gguf_file *f, const char *key, float *v, int required)
{
    double x = 0;
    int found = 0;
    herd_status s = gguf_get_float(f, key, &x, &found);
    if (s != HERD_OK)
        return s;
    if (!found && required)
        return herd_fail(HERD_ERR_FORMAT, "missing key %s", key);
    if (found)
        *v = (float)x;
    return HERD_OK;
}

static herd_status read_hparams(herd_model *m, const struct gguf_file *f)
{
    herd_model_info *in = &m->info;
    struct gguf_str arch;
    int found = 0;
    herd_status s = gguf_get_str(f, "general.architecture", &arch, &found);
    if (s != HERD_OK)
        return s;
    if (!found)
        return herd_fail(HERD_ERR_FORMAT, "missing key general.architecture");
    if (arch.n != 5 || memcmp(arch.p, "llama", 5) != 0)
        return herd_fail(HERD_ERR_UNSUPPORTED,
                         "general.architecture is '%.*s', expected 'llama' (Llama 3.x)",
                         (int)(arch.n > 64 ? 64 : arch.n), arch.p);
    struct gguf_str name;
    if (gguf_get_str(f, "general.name", &name, &found) == HERD_OK && found) {
        m->name = herd_strndup(name.p, name.n);
        if (!m->name)
            return herd_fail(HERD_ERR_NOMEM, "model name");
    }
    if ((s = get_i32(f, "llama.embedding_length", &in->dim, 1)) ||
        (s = get_i32(f, "llama.block_count", &in->n_layers, 1)) ||
        (s = get_i32(f, "llama.attention.head_count", &in->n_heads, 1)) ||
        (s = get_i32(f, "llama.feed_forward_length", &in->hidden_dim, 1)) ||
        (s = get_i32(f, "llama.context_length", &in->max_seq_len, 0)))
        return s;
    in->n_kv_heads = in->n_heads;
    if ((s = get_i32(f, "llama.attention.head_count_kv", &in->n_kv_heads, 0)))
        return s;
    in->head_dim = in->n_heads > 0 ? in->dim / in->n_heads : 0;
    if ((s = get_i32(f, "llama.attention.key_length", &in->head_dim, 0)))
        return s;
    int32_t vlen = in->head_dim;
    if ((s = get_i32(f, "llama.attention.value_length", &vlen, 0)))
        return s;
    if (vlen != in->head_dim)
        return herd_fail(HERD_ERR_UNSUPPORTED, "llama.attention.value_length %d differs from "
                         "key_length %d", vlen, in->head_dim);
    in->norm_eps = 1e-5f;
    in->rope_theta = 10000.0f;
    if ((s = get_f32(f, "llama.attention.layer_norm_rms_epsilon", &in->norm_eps, 0)) ||
        (s = get_f32(f, "llama.rope.freq_base", &in->rope_theta, 0)))
        return s;
    int32_t rope_dim = in->head_dim;
    if ((s = get_i32(f, "llama.rope.dimension_count", &rope_dim, 0)))
        return s;
    if (rope_dim != in->head_dim)
        return herd_fail(HERD_ERR_UNSUPPORTED, "llama.rope.dimension_count %d: partial RoPE "
                         "is not Llama 3 (head_dim %d)", rope_dim, in->head_dim);
    /* Linear or YaRN scaling is not Llama 3's; say so instead of computing wrong numbers. */
    struct gguf_str stype;
    if (gguf_get_str(f, "llama.rope.scaling.type", &stype, &found) == HERD_OK && found &&
        !(stype.n == 4 && memcmp(stype.p, "none", 4) == 0))
        return herd_fail(HERD_ERR_UNSUPPORTED, "llama.rope.scaling.type '%.*s' is not "
                         "supported (Llama 3 uses rope_freqs)", (int)(stype.n > 32 ? 32 : stype.n),
                         stype.p);
    int32_t bos = -1;
    if ((s = get_i32(f, "tokenizer.ggml.bos_token_id", &bos, 0)))
        return s;
    in->bos_id = bos;
    int32_t ids[3] = {-1, -1, -1};
    if ((s = get_i32(f, "tokenizer.ggml.eos_token_id", &ids[0], 0)) ||
        (s = get_i32(f, "tokenizer.ggml.eot_token_id", &ids[1], 0)) ||
        (s = get_i32(f, "tokenizer.ggml.eom_token_id", &ids[2], 0)))
        return s;
    for (int i = 0; i < 3; i++) {
        int dup = ids[i] < 0;
        for (int j = 0; j < in->n_eos; j++)
            dup |= in->eos_ids[j] == ids[i];
        if (!dup)
            in->eos_ids[in->n_eos++] = ids[i];
    }
    return HERD_OK;
}

static const struct layer_names gguf_layer_names = {
    "blk.%d.attn_q.weight",   "blk.%d.attn_k.weight",    "blk.%d.attn_v.weight",
    "blk.%d.attn_output.weight", "blk.%d.ffn_gate.weight", "blk.%d.ffn_up.weight",
    "blk.%d.ffn_down.weight", "blk.%d.attn_norm.weight", "blk.%d.ffn_norm.weight",
};

static const struct tensor_info *find_in_gguf(const void *f, const char *name)
{
    return find_tensor(f, name);
}

static herd_status bind(herd_model *m, const struct gguf_file *f)
{
    herd_model_info *in = &m->info;
    herd_status s = read_hparams(m, f);
    if (s != HERD_OK)
        return s;
    const struct tensor_info *t;
    if ((s = need_tensor(f, "token_embd.weight", &t)))
        return s;
    if (t->n_dims != 2)
        return herd_fail(HERD_ERR_FORMAT, "tensor token_embd.weight: expected 2 dimensions");
    in->n_vocab = (int32_t)t->ne[1];
    int32_t vocab = in->n_vocab;
    if ((s = get_i32(f, "llama.vocab_size", &vocab, 0)))
        return s;
    if (vocab != in->n_vocab)
        return herd_fail(HERD_ERR_FORMAT, "llama.vocab_size %d but token_embd.weight has %d rows",
                         vocab, in->n_vocab);
    if ((s = weight_bind(&m->tok_embd, t, in->n_vocab, in->dim)))
        return s;
    const struct tensor_info *out = find_tensor(f, "output.weight");
    in->tied_embeddings = out == NULL;
    if (out && (s = weight_bind(&m->output, out, in->n_vocab, in->dim)))
        return s;
    if (!out)
        m->output = m->tok_embd;
    if ((s = need_tensor(f, "output_norm.weight", &t)) || (s = norm_load(&m->out_norm, t, in->dim)))
        return s;

    float *factors = NULL;
    const struct tensor_info *rf = find_tensor(f, "rope_freqs.weight");
    if (rf) {
        if ((s = norm_load(&factors, rf, in->head_dim / 2)))
            return s;
        in->rope_scaling = true;
    }
    s = model_finish_hparams(m, factors);
    herd_free(factors);
    if (s != HERD_OK)
        return s;
    m->layers = herd_calloc((size_t)in->n_layers, sizeof *m->layers);
    if (!m->layers)
        return herd_fail(HERD_ERR_NOMEM, "layers");
    for (int l = 0; l < in->n_layers; l++)
        if ((s = model_bind_layer(m, l, &gguf_layer_names, find_in_gguf, f)))
            return s;
    if (gguf_find(f, "tokenizer.ggml.tokens")) {
        if ((s = tokenizer_from_gguf(f, &m->tok)))
            return s;
    }
    return HERD_OK;
}

herd_status model_bind_gguf(herd_model *m, const char *path)
{
    m->info.format = "gguf";
    m->rope_style = ROPE_INTERLEAVED;
    herd_status s = gguf_open(path, &m->gguf);
    if (s != HERD_OK)
        return s; /* gguf_open names the file */
    s = bind(m, m->gguf);
    if (s != HERD_OK) {
        if (!strstr(herd_last_error(), path))
            herd_fail_prefix(s, "%s", path);
        return s;
    }
    if (!m->name) {
        const char *slash = strrchr(path, '/');
        m->name = herd_strdup(slash ? slash + 1 : path);
        if (!m->name)
            return herd_fail(HERD_ERR_NOMEM, "model name");
    }
    m->info.name = m->name;
    return HERD_OK;
}
