/*
 * quantize.c - herd_quantize: any supported checkpoint (GGUF, or a Hugging Face folder of
 * F32/F16/BF16 safetensors) to a GGUF file that herd and llama.cpp both load.
 *
 * What the output holds, and where each rule comes from:
 *  - Tensor names, llama.* keys and tokenizer.ggml.* keys as llama.cpp's converter
 *    (convert_hf_to_gguf.py, LlamaModel) writes them. From an HF folder, q_proj/k_proj rows
 *    go from HF's rotate-half order back to Meta's interleaved order (the converter's
 *    permute(): per head, row 2j+t of the output is row t*head_dim/2+j of the input), the
 *    tokenizer comes from tokenizer.json (tokens by id, token types, merges, bos/eos) and
 *    llama3 RoPE scaling becomes the rope_freqs tensor of per-dimension divisors.
 *    From a GGUF, metadata and order are copied and only the tensor types change.
 *  - Per-tensor types follow llama.cpp's llama_tensor_get_type (src/llama-quant.cpp) for a
 *    dense Llama: 1-D tensors and norms are never quantized; output.weight (or the tied
 *    token_embd) is Q6_K unless the mix is Q8_0; Q4_K_M gives attn_v and ffn_down Q6_K in the
 *    layers use_more_bits() picks; a row length that is not a whole number of blocks falls
 *    back (Q4_K -> Q5_0, Q6_K -> Q8_0, then F16), so files of the same ftype are comparable.
 *  - Quantization is the imatrix-free reference of quant/ (quantize_row), rows split over
 *    threads. Tensors whose type does not change are not copied: the writer reads them
 *    straight from the input mapping.
 *
 * Memory: converted tensors are held until the single-pass writer runs, so peak memory is
 * about the size of the converted part of the output (the input stays mmapped).
 */
#include "model.h"

#include "format/format.h" /* gguf_open, st_open, hf_config_read, gguf_writer_* */
#include "quant/quant.h"   /* quantize_row, dequantize_row, dtype_block_size */

#include <cjson/cJSON.h> /* tokenizer.json, tokenizer_config.json */
#include <dirent.h>      /* the safetensors shards of a folder */
#include <math.h>        /* powf for rope_freqs */
#include <stdio.h>       /* snprintf, rename, remove */
#include <stdlib.h>      /* qsort */
#include <strings.h>     /* strcasecmp */

#define QZ_MAX_SHARDS 64  /* 405B in BF16 ships as 191 shards; far beyond what fits here */
#define QZ_NAME_MAX 96    /* longest GGUF tensor name written: "blk.NNN.attn_output.weight" */

struct qz_tensor {
    char name[QZ_NAME_MAX];
    const struct tensor_info *src; /* NULL for a tensor herd makes (rope_freqs) */
    const float *made;             /* its F32 data when src is NULL */
    int n_dims;
    int64_t ne[4];
    herd_dtype type;               /* output type */
    int perm_heads;                /* > 0: rows HF rotate-half -> Meta interleaved */
    void *owned;                   /* converted data, or NULL when written from src */
    size_t nbytes;
};

struct qz {
    const herd_quantize_params *p;
    struct gguf_file *gguf;
    struct st_file *st[QZ_MAX_SHARDS];
    int n_st;
    struct hf_config cfg;
    int n_layers;
    bool tied;
    struct qz_tensor *t;
    int n_t, cap_t;
    float *rope_freqs;           /* (head_dim / 2) */
    void *keep[16];              /* buffers that must outlive the writer */
    int n_keep;
    cJSON *tok_json, *tok_cfg;
    struct gguf_str *tok_strs;   /* (n_vocab) */
    char **tok_pads;             /* "[PADn]" texts, (n_vocab) entries, mostly NULL */
    int32_t *tok_types;
    struct gguf_str *merges;     /* (n_merges) */
    char **merges_owned;         /* joined ["a", "b"] merges, (n_merges) mostly NULL */
    int n_merges;
    char *chat_template;
};

/* ---------------------------------------------------------------- ftype names */

static const struct {
    herd_ftype f;
    const char *name;
} ftype_names[] = {
    {HERD_FTYPE_F32, "f32"},   {HERD_FTYPE_F16, "f16"},       {HERD_FTYPE_BF16, "bf16"},
    {HERD_FTYPE_Q8_0, "q8_0"}, {HERD_FTYPE_Q4_0, "q4_0"},     {HERD_FTYPE_Q4_K_M, "q4_k_m"},
    {HERD_FTYPE_Q6_K, "q6_k"},
};

const char *herd_ftype_name(herd_ftype f)
{
    for (size_t i = 0; i < sizeof ftype_names / sizeof ftype_names[0]; i++)
        if (ftype_names[i].f == f)
            return ftype_names[i].name;
    return NULL;
}

herd_status herd_ftype_parse(const char *name, herd_ftype *out)
{
    for (size_t i = 0; name && i < sizeof ftype_names / sizeof ftype_names[0]; i++) {
        if (strcasecmp(name, ftype_names[i].name) == 0) {
            *out = ftype_names[i].f;
            return HERD_OK;
        }
    }
    return herd_fail(HERD_ERR_INVALID, "unknown quantization type '%s' (want f32, f16, bf16, "
                     "q8_0, q4_0, q4_k_m or q6_k)", name ? name : "(null)");
}

/* ---------------------------------------------------------------- type choice */

/* llama.cpp's layers that get more bits in the _M mixes: the first and last eighth and
 * every third layer in between. */
static bool use_more_bits(int il, int n_layers)
{
    return il < n_layers / 8 || il >= 7 * n_layers / 8 || (il - n_layers / 8) % 3 == 2;
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && memcmp(s + n - k, tail, k) == 0;
}

/* Layer number of "blk.N.<what>.weight" and whether <what> is kind; -1 when not. */
static int layer_of(const char *name, const char *kind)
{
    if (strncmp(name, "blk.", 4) != 0)
        return -1;
    int il = 0;
    const char *p = name + 4;
    if (*p < '0' || *p > '9')
        return -1;
    while (*p >= '0' && *p <= '9' && il < 100000)
        il = il * 10 + (*p++ - '0');
    size_t k = strlen(kind);
    if (*p != '.' || strncmp(p + 1, kind, k) != 0 || strcmp(p + 1 + k, ".weight") != 0)
        return -1;
    return il;
}

static herd_dtype fallback_type(herd_dtype t, int64_t ne0)
{
    if (ne0 % dtype_block_size(t) == 0)
        return t;
    /* llama.cpp's tensor_type_fallback: a 256-block type goes to a 32-block one */
    herd_dtype f = t == HERD_DTYPE_Q4_K ? HERD_DTYPE_Q5_0
                 : t == HERD_DTYPE_Q5_K ? HERD_DTYPE_Q5_1
                 : t == HERD_DTYPE_Q6_K ? HERD_DTYPE_Q8_0 : t;
    return ne0 % dtype_block_size(f) == 0 ? f : HERD_DTYPE_F16;
}

/* The output type of one tensor, as llama_tensor_get_type picks it; keep is the type the
 * tensor has when it is not to be quantized. */
static herd_dtype choose_type(herd_ftype ft, const char *name, int n_dims, int64_t ne0,
                              int n_layers, bool tied, herd_dtype keep)
{
    if (n_dims < 2 || !ends_with(name, "weight") || strstr(name, "_norm.weight"))
        return keep;
    herd_dtype base;
    switch (ft) {
    case HERD_FTYPE_F32: return HERD_DTYPE_F32;
    case HERD_FTYPE_F16: return HERD_DTYPE_F16;
    case HERD_FTYPE_BF16: return HERD_DTYPE_BF16;
    case HERD_FTYPE_Q8_0: base = HERD_DTYPE_Q8_0; break;
    case HERD_FTYPE_Q4_0: base = HERD_DTYPE_Q4_0; break;
    case HERD_FTYPE_Q4_K_M: base = HERD_DTYPE_Q4_K; break;
    case HERD_FTYPE_Q6_K: base = HERD_DTYPE_Q6_K; break;
    default: return keep;
    }
    herd_dtype t = base;
    bool is_output = strcmp(name, "output.weight") == 0 ||
                     (tied && strcmp(name, "token_embd.weight") == 0);
    if (is_output) {
        if (ne0 % dtype_block_size(base) != 0)
            t = HERD_DTYPE_Q8_0;
        else if (base != HERD_DTYPE_Q8_0)
            t = HERD_DTYPE_Q6_K;
    } else if (ft == HERD_FTYPE_Q4_K_M) {
        int il = layer_of(name, "attn_v");
        if (il < 0)
            il = layer_of(name, "ffn_down");
        if (il >= 0 && use_more_bits(il, n_layers))
            t = HERD_DTYPE_Q6_K;
    }
    return fallback_type(t, ne0);
}

/* ---------------------------------------------------------------- tensor list */

static herd_status add_tensor(struct qz *q, const char *name, const struct tensor_info *src,
                              int perm_heads)
{
    if (q->n_t == q->cap_t) {
        int cap = q->cap_t ? 2 * q->cap_t : 64;
        struct qz_tensor *t = herd_realloc(q->t, (size_t)cap * sizeof *t);
        if (!t)
            return herd_fail(HERD_ERR_NOMEM, "tensor list");
        q->t = t;
        q->cap_t = cap;
    }
    struct qz_tensor *t = &q->t[q->n_t];
    memset(t, 0, sizeof *t);
    if (strlen(name) >= sizeof t->name)
        return herd_fail(HERD_ERR_UNSUPPORTED, "tensor name too long: %s", name);
    memcpy(t->name, name, strlen(name) + 1);
    t->src = src;
    t->perm_heads = perm_heads;
    t->n_dims = src ? src->n_dims : 1;
    for (int i = 0; i < 4; i++)
        t->ne[i] = src ? src->ne[i] : 1;
    q->n_t++;
    return HERD_OK;
}

/* ---------------------------------------------------------------- conversion */

struct conv_job {
    struct qz_tensor *t;
    float *scratch;    /* (nth, ne0) */
    herd_status *status; /* (nth) */
};

static int64_t source_row(const struct qz_tensor *t, int64_t r)
{
    if (t->perm_heads <= 0)
        return r;
    int64_t hd = t->ne[1] / t->perm_heads;
    int64_t h = r / hd, i = r % hd;
    return h * hd + (i % 2) * (hd / 2) + i / 2;
}

static void convert_rows(void *arg, int ith, int nth)
{
    struct conv_job *j = arg;
    struct qz_tensor *t = j->t;
    int64_t ne0 = t->ne[0];
    int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    size_t in_rb = dtype_row_bytes(t->src->type, ne0), out_rb = dtype_row_bytes(t->type, ne0);
    float *row = j->scratch + (size_t)ith * (size_t)ne0;
    int64_t lo, hi;
    herd_split(rows, ith, nth, &lo, &hi);
    herd_status s = HERD_OK;
    for (int64_t r = lo; r < hi && s == HERD_OK; r++) {
        const uint8_t *in = (const uint8_t *)t->src->data + (size_t)source_row(t, r) * in_rb;
        uint8_t *out = (uint8_t *)t->owned + (size_t)r * out_rb;
        if (t->src->type == t->type) {
            memcpy(out, in, out_rb);
            continue;
        }
        s = dequantize_row(t->src->type, row, in, ne0);
        if (s == HERD_OK)
            s = quantize_row(t->type, out, row, ne0);
    }
    j->status[ith] = s;
}

static herd_status convert_tensor(struct qz *q, struct qz_tensor *t, struct herd_pool *pool,
                                  float *scratch, herd_status *status)
{
    if (!t->src) {
        t->nbytes = (size_t)t->ne[0] * sizeof(float);
        return HERD_OK;
    }
    int64_t ne0 = t->ne[0];
    int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    size_t rb = dtype_row_bytes(t->type, ne0);
    if (rb == 0 || dtype_row_bytes(t->src->type, ne0) == 0)
        return herd_fail(HERD_ERR_UNSUPPORTED, "tensor %s: rows of %lld are not whole blocks "
                         "of %s or %s", t->name, (long long)ne0, herd_dtype_name(t->src->type),
                         herd_dtype_name(t->type));
    if (rows > 0 && rb > SIZE_MAX / (size_t)rows)
        return herd_fail(HERD_ERR_FORMAT, "tensor %s: too large", t->name);
    t->nbytes = rb * (size_t)rows;
    if (t->src->type == t->type && t->perm_heads <= 0)
        return HERD_OK; /* written straight from the input mapping */
    if (!dtype_supported(t->src->type))
        return herd_fail(HERD_ERR_UNSUPPORTED, "tensor %s: cannot read type %s", t->name,
                         herd_dtype_name(t->src->type));
    t->owned = herd_malloc(t->nbytes ? t->nbytes : 1);
    if (!t->owned)
        return herd_fail(HERD_ERR_NOMEM, "tensor %s: %zu bytes", t->name, t->nbytes);
    struct conv_job job = {t, scratch, status};
    if (pool)
        herd_pool_run(pool, convert_rows, &job);
    else
        convert_rows(&job, 0, 1);
    int nth = pool ? herd_pool_size(pool) : 1;
    for (int i = 0; i < nth; i++) {
        /* Rows ran on pool threads, whose messages are their own: restate the one failure
         * quantize_row can give for whole-block rows, a NaN or infinite weight. */
        if (status[i] == HERD_ERR_INVALID)
            return herd_fail(status[i], "tensor %s holds NaN or infinite weights; %s cannot "
                             "represent them", t->name, herd_dtype_name(t->type));
        if (status[i] != HERD_OK)
            return herd_fail_prefix(status[i], "tensor %s", t->name);
    }
    (void)q;
    return HERD_OK;
}

/* ---------------------------------------------------------------- HF input */

static const struct {
    const char *hf, *gguf;
} hf_layer_names[] = {
    {"input_layernorm", "attn_norm"},        {"self_attn.q_proj", "attn_q"},
    {"self_attn.k_proj", "attn_k"},          {"self_attn.v_proj", "attn_v"},
    {"self_attn.o_proj", "attn_output"},     {"post_attention_layernorm", "ffn_norm"},
    {"mlp.gate_proj", "ffn_gate"},           {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},
};

static const struct tensor_info *hf_find(const struct qz *q, const char *name)
{
    for (int i = 0; i < q->n_st; i++)
        for (size_t j = 0; j < q->st[i]->n_tensors; j++)
            if (strcmp(q->st[i]->tensors[j].name, name) == 0)
                return &q->st[i]->tensors[j];
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static herd_status hf_open_shards(struct qz *q, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return herd_fail(HERD_ERR_IO, "%s: cannot list the folder", dir);
    char *names[QZ_MAX_SHARDS];
    int n = 0;
    herd_status s = HERD_OK;
    struct dirent *e;
    while ((e = readdir(d)) && s == HERD_OK) {
        if (!ends_with(e->d_name, ".safetensors"))
            continue;
        if (n == QZ_MAX_SHARDS)
            s = herd_fail(HERD_ERR_UNSUPPORTED, "%s: more than %d safetensors files", dir,
                          QZ_MAX_SHARDS);
        else if (!(names[n++] = herd_strdup(e->d_name)))
            s = herd_fail(HERD_ERR_NOMEM, "file name");
    }
    closedir(d);
    if (s == HERD_OK && n == 0)
        s = herd_fail(HERD_ERR_FORMAT, "%s: no .safetensors files", dir);
    if (s == HERD_OK && n > 0)
        qsort(names, (size_t)n, sizeof names[0], cmp_str);
    for (int i = 0; i < n; i++) {
        if (s == HERD_OK && names[i]) {
            char *path = herd_path_join(dir, names[i]);
            s = path ? st_open(path, &q->st[q->n_st]) : herd_fail(HERD_ERR_NOMEM, "path");
            if (s == HERD_OK)
                q->n_st++;
            herd_free(path);
        }
        herd_free(names[i]);
    }
    return s;
}

/* The llama3 per-dimension RoPE divisors, as the HF converter writes rope_freqs. */
static herd_status make_rope_freqs(struct qz *q, int head_dim)
{
    const struct hf_config *c = &q->cfg;
    q->rope_freqs = herd_malloc((size_t)(head_dim / 2) * sizeof(float));
    if (!q->rope_freqs)
        return herd_fail(HERD_ERR_NOMEM, "rope_freqs");
    double old_len = (double)c->rope_original_max_position_embeddings;
    double low_wl = old_len / c->rope_low_freq_factor, high_wl = old_len / c->rope_high_freq_factor;
    for (int i = 0; i < head_dim / 2; i++) {
        /* the converter computes the frequencies in float32 (torch), the rest in double */
        float fr = 1.0f / powf((float)c->rope_theta, (float)(2 * i) / (float)head_dim);
        double freq = fr;
        double wl = 2.0 * M_PI / freq;
        double f;
        if (wl < high_wl) {
            f = 1.0;
        } else if (wl > low_wl) {
            f = c->rope_factor;
        } else {
            double smooth = (old_len / wl - c->rope_low_freq_factor) /
                            (c->rope_high_freq_factor - c->rope_low_freq_factor);
            f = 1.0 / ((1.0 - smooth) / c->rope_factor + smooth);
        }
        q->rope_freqs[i] = (float)f;
    }
    return HERD_OK;
}

static herd_status hf_tensors(struct qz *q)
{
    const struct hf_config *c = &q->cfg;
    herd_status s;
    const struct tensor_info *ti = hf_find(q, "model.embed_tokens.weight");
    if (!ti)
        return herd_fail(HERD_ERR_FORMAT, "missing tensor model.embed_tokens.weight");
    if ((s = add_tensor(q, "token_embd.weight", ti, 0)))
        return s;
    int head_dim = (int)(c->head_dim ? c->head_dim : c->hidden_size / c->num_attention_heads);
    if (c->has_rope_scaling) {
        if ((s = make_rope_freqs(q, head_dim)) || (s = add_tensor(q, "rope_freqs.weight", NULL, 0)))
            return s;
        q->t[q->n_t - 1].ne[0] = head_dim / 2;
        q->t[q->n_t - 1].made = q->rope_freqs;
    }
    char hf[160], gg[QZ_NAME_MAX];
    for (int il = 0; il < q->n_layers; il++) {
        for (size_t k = 0; k < sizeof hf_layer_names / sizeof hf_layer_names[0]; k++) {
            snprintf(hf, sizeof hf, "model.layers.%d.%s.weight", il, hf_layer_names[k].hf);
            snprintf(gg, sizeof gg, "blk.%d.%s.weight", il, hf_layer_names[k].gguf);
            if (!(ti = hf_find(q, hf)))
                return herd_fail(HERD_ERR_FORMAT, "missing tensor %s", hf);
            int perm = k == 1 ? (int)c->num_attention_heads
                     : k == 2 ? (int)c->num_key_value_heads : 0;
            if (perm && (ti->n_dims != 2 || ti->ne[1] != (int64_t)perm * head_dim ||
                         head_dim % 2 != 0))
                return herd_fail(HERD_ERR_FORMAT, "tensor %s: expected %d x %d rows for %d "
                                 "heads", hf, perm, head_dim, perm);
            if ((s = add_tensor(q, gg, ti, perm)))
                return s;
        }
    }
    if (!(ti = hf_find(q, "model.norm.weight")))
        return herd_fail(HERD_ERR_FORMAT, "missing tensor model.norm.weight");
    if ((s = add_tensor(q, "output_norm.weight", ti, 0)))
        return s;
    ti = hf_find(q, "lm_head.weight");
    q->tied = c->tie_word_embeddings || !ti;
    if (!q->tied && (s = add_tensor(q, "output.weight", ti, 0)))
        return s;
    return HERD_OK;
}

/* A token id named by tokenizer_config.json's key (a string or {"content": ...}). */
static int64_t config_token_id(const struct qz *q, const char *key)
{
    const cJSON *v = q->tok_cfg ? cJSON_GetObjectItemCaseSensitive(q->tok_cfg, key) : NULL;
    if (cJSON_IsObject(v))
        v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v))
        return -1;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(q->tok_json, "added_tokens");
    const cJSON *a;
    cJSON_ArrayForEach(a, added) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(a, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (cJSON_IsString(content) && cJSON_IsNumber(id) &&
            strcmp(content->valuestring, v->valuestring) == 0)
            return (int64_t)id->valuedouble;
    }
    return -1;
}

static herd_status read_json(const char *dir, const char *file, int required, cJSON **out)
{
    *out = NULL;
    char *path = herd_path_join(dir, file);
    if (!path)
        return herd_fail(HERD_ERR_NOMEM, "path");
    char *text = NULL;
    herd_status s = HERD_OK;
    if (!herd_file_exists(path)) {
        if (required)
            s = herd_fail(HERD_ERR_FORMAT, "%s: missing (the tokenizer goes into the GGUF)", path);
    } else if ((s = herd_read_file(path, &text, NULL)) == HERD_OK) {
        *out = cJSON_Parse(text);
        if (!*out)
            s = herd_fail(HERD_ERR_FORMAT, "%s: not valid JSON", path);
    }
    herd_free(text);
    herd_free(path);
    return s;
}

/* tokenizer.ggml.* from tokenizer.json, as the converter's _set_vocab_gpt2 builds them:
 * tokens by id ("[PADn]" for unused ids, up to the model's vocab_size), type 1 normal,
 * 3 control (special added tokens), 4 user-defined, 5 unused; merges as "a b". */
static herd_status hf_tokenizer(struct qz *q, const char *dir, struct gguf_writer *w)
{
    herd_status s;
    if ((s = read_json(dir, "tokenizer.json", 1, &q->tok_json)) ||
        (s = read_json(dir, "tokenizer_config.json", 0, &q->tok_cfg)))
        return s;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(q->tok_json, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(q->tok_json, "added_tokens");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        return herd_fail(HERD_ERR_FORMAT, "%s/tokenizer.json: no BPE model.vocab / model.merges",
                         dir);
    int64_t n_vocab = q->cfg.vocab_size;
    if (n_vocab <= 0 || n_vocab > (1 << 24))
        return herd_fail(HERD_ERR_FORMAT, "config.json: vocab_size %lld", (long long)n_vocab);
    if ((s = herd_alloc_array((void **)&q->tok_strs, (size_t)n_vocab, sizeof *q->tok_strs,
                              "tokens")) ||
        (s = herd_alloc_array((void **)&q->tok_types, (size_t)n_vocab, sizeof(int32_t),
                              "token types")) ||
        (s = herd_alloc_array((void **)&q->tok_pads, (size_t)n_vocab, sizeof(char *),
                              "token pads")))
        return s;
    memset(q->tok_strs, 0, (size_t)n_vocab * sizeof *q->tok_strs);
    memset(q->tok_pads, 0, (size_t)n_vocab * sizeof(char *));
    const cJSON *v;
    cJSON_ArrayForEach(v, vocab) {
        int64_t id = cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
        if (id >= 0 && id < n_vocab) {
            q->tok_strs[id] = (struct gguf_str){v->string, strlen(v->string)};
            q->tok_types[id] = 1;
        }
    }
    cJSON_ArrayForEach(v, added) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(v, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(v, "id");
        if (!cJSON_IsString(content) || !cJSON_IsNumber(id))
            continue;
        int64_t i = (int64_t)id->valuedouble;
        if (i < 0 || i >= n_vocab)
            continue;
        q->tok_strs[i] = (struct gguf_str){content->valuestring, strlen(content->valuestring)};
        q->tok_types[i] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "special")) ? 3 : 4;
    }
    char pad[32];
    for (int64_t i = 0; i < n_vocab; i++) {
        if (q->tok_strs[i].p)
            continue;
        snprintf(pad, sizeof pad, "[PAD%lld]", (long long)i);
        if (!(q->tok_pads[i] = herd_strdup(pad)))
            return herd_fail(HERD_ERR_NOMEM, "token text");
        q->tok_strs[i] = (struct gguf_str){q->tok_pads[i], strlen(pad)};
        q->tok_types[i] = 5;
    }
    int n_merges = cJSON_GetArraySize(merges);
    if ((s = herd_alloc_array((void **)&q->merges, n_merges ? (size_t)n_merges : 1,
                              sizeof *q->merges, "merges")) ||
        (s = herd_alloc_array((void **)&q->merges_owned, n_merges ? (size_t)n_merges : 1,
                              sizeof(char *), "merges")))
        return s;
    q->n_merges = n_merges;
    memset(q->merges_owned, 0, (n_merges ? (size_t)n_merges : 1) * sizeof(char *));
    int k = 0;
    cJSON_ArrayForEach(v, merges) {
        if (cJSON_IsString(v)) {
            q->merges[k++] = (struct gguf_str){v->valuestring, strlen(v->valuestring)};
            continue;
        }
        /* the newer format: ["a", "b"], joined into a string of our own */
        const cJSON *a = cJSON_GetArrayItem(v, 0), *b = cJSON_GetArrayItem(v, 1);
        if (!cJSON_IsString(a) || !cJSON_IsString(b))
            return herd_fail(HERD_ERR_FORMAT, "tokenizer.json: merge %d is not a pair", k);
        size_t la = strlen(a->valuestring), lb = strlen(b->valuestring);
        char *m = herd_malloc(la + lb + 2);
        if (!m)
            return herd_fail(HERD_ERR_NOMEM, "merge");
        memcpy(m, a->valuestring, la);
        m[la] = ' ';
        memcpy(m + la + 1, b->valuestring, lb + 1);
        q->merges_owned[k] = m;
        q->merges[k++] = (struct gguf_str){m, la + lb + 1};
    }
    int64_t bos = config_token_id(q, "bos_token"), eos = config_token_id(q, "eos_token");
    if (bos < 0)
        bos = q->cfg.bos_token_id;
    if (eos < 0 && q->cfg.n_eos > 0)
        eos = q->cfg.eos_token_ids[0];
    const cJSON *tmpl = q->tok_cfg ? cJSON_GetObjectItemCaseSensitive(q->tok_cfg, "chat_template")
                                   : NULL;
    if ((s = gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2")) ||
        (s = gguf_writer_set_str(w, "tokenizer.ggml.pre", "llama-bpe")) ||
        (s = gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", q->tok_strs, (size_t)n_vocab)) ||
        (s = gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", q->tok_types,
                                     (size_t)n_vocab)) ||
        (s = gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", q->merges, (size_t)k)))
        return s;
    if (bos >= 0 && (s = gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos)))
        return s;
    if (eos >= 0 && (s = gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos)))
        return s;
    if ((s = gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 1)))
        return s;
    if (cJSON_IsString(tmpl) &&
        (s = gguf_writer_set_str(w, "tokenizer.chat_template", tmpl->valuestring)))
        return s;
    return HERD_OK;
}

static const char *base_name(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    size_t b = n;
    while (b > 0 && path[b - 1] != '/')
        b--;
    return path + b;
}

static herd_status hf_metadata(struct qz *q, const char *dir, struct gguf_writer *w)
{
    const struct hf_config *c = &q->cfg;
    int64_t head_dim = c->head_dim ? c->head_dim : c->hidden_size / c->num_attention_heads;
    char name[128];
    snprintf(name, sizeof name, "%s", base_name(dir));
    char *slash = strchr(name, '/');
    if (slash)
        *slash = 0;
    herd_status s;
    if ((s = gguf_writer_set_str(w, "general.architecture", "llama")) ||
        (s = gguf_writer_set_str(w, "general.type", "model")) ||
        (s = gguf_writer_set_str(w, "general.name", name)) ||
        (s = gguf_writer_set_u32(w, "llama.block_count", (uint32_t)c->num_hidden_layers)) ||
        (s = gguf_writer_set_u32(w, "llama.context_length",
                                 (uint32_t)c->max_position_embeddings)) ||
        (s = gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)c->hidden_size)) ||
        (s = gguf_writer_set_u32(w, "llama.feed_forward_length",
                                 (uint32_t)c->intermediate_size)) ||
        (s = gguf_writer_set_u32(w, "llama.attention.head_count",
                                 (uint32_t)c->num_attention_heads)) ||
        (s = gguf_writer_set_u32(w, "llama.attention.head_count_kv",
                                 (uint32_t)c->num_key_value_heads)) ||
        (s = gguf_writer_set_f32(w, "llama.rope.freq_base", (float)c->rope_theta)) ||
        (s = gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon",
                                 (float)c->rms_norm_eps)))
        return s;
    /* as the converter: key/value_length whenever config.json names head_dim */
    if ((c->head_dim != 0 || head_dim * c->num_attention_heads != c->hidden_size) &&
        ((s = gguf_writer_set_u32(w, "llama.attention.key_length", (uint32_t)head_dim)) ||
         (s = gguf_writer_set_u32(w, "llama.attention.value_length", (uint32_t)head_dim))))
        return s;
    if ((s = gguf_writer_set_u32(w, "general.file_type", (uint32_t)q->p->ftype)) ||
        (s = gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)c->vocab_size)) ||
        (s = gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)head_dim)))
        return s;
    return hf_tokenizer(q, dir, w);
}

static herd_status hf_open(struct qz *q, const char *dir, struct gguf_writer *w)
{
    herd_status s;
    if ((s = hf_config_read(dir, &q->cfg)))
        return s;
    const struct hf_config *c = &q->cfg;
    if (strcmp(c->model_type, "llama") != 0)
        return herd_fail(HERD_ERR_UNSUPPORTED, "%s: model_type '%s' is not llama", dir,
                         c->model_type);
    if (c->num_hidden_layers <= 0 || c->num_attention_heads <= 0 ||
        c->num_key_value_heads <= 0 || c->hidden_size <= 0)
        return herd_fail(HERD_ERR_FORMAT, "%s/config.json: bad sizes", dir);
    q->n_layers = (int)c->num_hidden_layers;
    if ((s = hf_open_shards(q, dir)) || (s = hf_tensors(q)))
        return s;
    return hf_metadata(q, dir, w);
}

/* ---------------------------------------------------------------- GGUF input */

static herd_status keep_buf(struct qz *q, void *p)
{
    if (q->n_keep == (int)(sizeof q->keep / sizeof q->keep[0])) {
        herd_free(p);
        return herd_fail(HERD_ERR_INTERNAL, "too many kept buffers");
    }
    q->keep[q->n_keep++] = p;
    return HERD_OK;
}

/* Copies one key/value; types the writer has no setter for are widened where that keeps
 * the value (u8/u16 -> u32, i8/i16 -> i32, f64 -> f32) and otherwise dropped with a log. */
static herd_status copy_kv(struct qz *q, const struct gguf_kv *kv, const char *key,
                           struct gguf_writer *w)
{
    herd_status s = HERD_OK;
    switch (kv->type) {
    case GGUF_UINT8: case GGUF_UINT16: case GGUF_UINT32:
        return gguf_writer_set_u32(w, key, (uint32_t)kv->v.u);
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32:
        return gguf_writer_set_i32(w, key, (int32_t)kv->v.i);
    case GGUF_UINT64:
        if (kv->v.u <= UINT32_MAX)
            return gguf_writer_set_u32(w, key, (uint32_t)kv->v.u);
        break;
    case GGUF_INT64:
        if (kv->v.i >= INT32_MIN && kv->v.i <= INT32_MAX)
            return gguf_writer_set_i32(w, key, (int32_t)kv->v.i);
        break;
    case GGUF_FLOAT32: case GGUF_FLOAT64:
        return gguf_writer_set_f32(w, key, (float)kv->v.f);
    case GGUF_BOOL:
        return gguf_writer_set_bool(w, key, kv->v.u != 0);
    case GGUF_STRING: {
        char *v = herd_strndup(kv->str.p, (size_t)kv->str.n);
        if (!v)
            return herd_fail(HERD_ERR_NOMEM, "metadata %s", key);
        s = gguf_writer_set_str(w, key, v);
        herd_free(v);
        return s;
    }
    case GGUF_ARRAY:
        if (kv->arr_type == GGUF_STRING) {
            struct gguf_str *a = NULL;
            if ((s = gguf_str_array_all(kv, &a)))
                return s;
            s = gguf_writer_set_arr_str(w, key, a, (size_t)kv->arr_n);
            return s ? (herd_free(a), s) : keep_buf(q, a);
        }
        if (kv->arr_type == GGUF_INT32 || kv->arr_type == GGUF_UINT32 ||
            kv->arr_type == GGUF_FLOAT32) {
            void *a = herd_malloc(kv->arr_n ? (size_t)kv->arr_n * 4 : 4);
            if (!a)
                return herd_fail(HERD_ERR_NOMEM, "metadata %s", key);
            memcpy(a, kv->arr_data, (size_t)kv->arr_n * 4); /* the mapping may be unaligned */
            s = kv->arr_type == GGUF_FLOAT32
                    ? gguf_writer_set_arr_f32(w, key, a, (size_t)kv->arr_n)
                    : gguf_writer_set_arr_i32(w, key, a, (size_t)kv->arr_n);
            return s ? (herd_free(a), s) : keep_buf(q, a);
        }
        break;
    default:
        break;
    }
    herd_log(HERD_LOG_WARN, "quantize: metadata %s (type %d) is not copied", key, kv->type);
    return HERD_OK;
}

static herd_status gguf_input(struct qz *q, const char *path, struct gguf_writer *w)
{
    herd_status s;
    if ((s = gguf_open(path, &q->gguf)))
        return s;
    struct gguf_str arch;
    int found = 0;
    if ((s = gguf_get_str(q->gguf, "general.architecture", &arch, &found)))
        return s;
    if (!found || arch.n != 5 || memcmp(arch.p, "llama", 5) != 0)
        return herd_fail(HERD_ERR_UNSUPPORTED, "%s: general.architecture is not llama", path);
    int64_t nl = 0;
    if ((s = gguf_get_int(q->gguf, "llama.block_count", &nl, &found)))
        return s;
    if (!found || nl <= 0 || nl > 100000)
        return herd_fail(HERD_ERR_FORMAT, "%s: llama.block_count missing or bad", path);
    q->n_layers = (int)nl;
    char key[256];
    for (uint64_t i = 0; i < q->gguf->n_kv; i++) {
        const struct gguf_kv *kv = &q->gguf->kv[i];
        if (kv->key.n >= sizeof key)
            continue;
        memcpy(key, kv->key.p, (size_t)kv->key.n);
        key[kv->key.n] = 0;
        if (strcmp(key, "general.file_type") == 0 ||
            strcmp(key, "general.quantization_version") == 0 ||
            strcmp(key, "general.alignment") == 0)
            continue;
        if ((s = copy_kv(q, kv, key, w)))
            return s;
        if (strcmp(key, "general.architecture") == 0 &&
            (s = gguf_writer_set_u32(w, "general.file_type", (uint32_t)q->p->ftype)))
            return s;
    }
    q->tied = true;
    for (uint64_t i = 0; i < q->gguf->n_tensors; i++)
        if (strcmp(q->gguf->tensors[i].name, "output.weight") == 0)
            q->tied = false;
    for (uint64_t i = 0; i < q->gguf->n_tensors; i++)
        if ((s = add_tensor(q, q->gguf->tensors[i].name, &q->gguf->tensors[i], 0)))
            return s;
    return HERD_OK;
}

/* ---------------------------------------------------------------- the whole run */

static void qz_free(struct qz *q)
{
    for (int i = 0; i < q->n_t; i++)
        herd_free(q->t[i].owned);
    herd_free(q->t);
    for (int i = 0; i < q->n_keep; i++)
        herd_free(q->keep[i]);
    if (q->tok_pads)
        for (int64_t i = 0; i < q->cfg.vocab_size; i++)
            herd_free(q->tok_pads[i]);
    herd_free(q->tok_pads);
    herd_free(q->tok_strs);
    herd_free(q->tok_types);
    herd_free(q->merges);
    for (int i = 0; q->merges_owned && i < q->n_merges; i++)
        herd_free(q->merges_owned[i]);
    herd_free(q->merges_owned);
    herd_free(q->rope_freqs);
    cJSON_Delete(q->tok_json);
    cJSON_Delete(q->tok_cfg);
    for (int i = 0; i < q->n_st; i++)
        st_close(q->st[i]);
    gguf_close(q->gguf);
}

herd_status herd_quantize(const char *in, const char *out, const herd_quantize_params *p)
{
    if (!in || !out || !p || !herd_ftype_name(p->ftype))
        return herd_fail(HERD_ERR_INVALID, "herd_quantize: input, output and a known ftype "
                         "are required");
    struct qz q;
    memset(&q, 0, sizeof q);
    q.p = p;
    struct gguf_writer *w = NULL;
    struct herd_pool *pool = NULL;
    float *scratch = NULL;
    herd_status *status = NULL;
    herd_status s;

    if ((s = gguf_writer_new(&w)))
        goto fail;
    s = herd_is_dir(in) ? hf_open(&q, in, w) : gguf_input(&q, in, w);
    if (s)
        goto fail;
    if ((s = gguf_writer_set_u32(w, "general.quantization_version", 2)))
        goto fail;

    int64_t max_ne0 = 1;
    int64_t total = 0, done = 0;
    for (int i = 0; i < q.n_t; i++) {
        struct qz_tensor *t = &q.t[i];
        herd_dtype keep = t->src && t->src->type != HERD_DTYPE_BF16 &&
                          t->src->type != HERD_DTYPE_F16 ? t->src->type : HERD_DTYPE_F32;
        if (q.gguf && t->src)
            keep = t->src->type; /* llama.cpp leaves what it does not quantize as it is */
        t->type = t->src ? choose_type(p->ftype, t->name, t->n_dims, t->ne[0], q.n_layers,
                                       q.tied, keep)
                         : HERD_DTYPE_F32;
        if (t->ne[0] > max_ne0)
            max_ne0 = t->ne[0];
        total += (int64_t)dtype_row_bytes(t->type, t->ne[0]) * t->ne[1] * t->ne[2] * t->ne[3];
    }
    int nth = herd_n_threads(p->n_threads);
    if (nth > 1 && (s = herd_pool_new(nth, &pool)))
        goto fail;
    nth = pool ? herd_pool_size(pool) : 1;
    if ((s = herd_alloc_array((void **)&scratch, (size_t)nth * (size_t)max_ne0, sizeof(float),
                              "row scratch")) ||
        (s = herd_alloc_array((void **)&status, (size_t)nth, sizeof *status, "status")))
        goto fail;

    for (int i = 0; i < q.n_t; i++) {
        struct qz_tensor *t = &q.t[i];
        if ((s = convert_tensor(&q, t, pool, scratch, status)))
            goto fail;
        const void *data = t->owned ? t->owned : t->src ? t->src->data : (const void *)t->made;
        if ((s = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, data, t->nbytes)))
            goto fail;
        done += (int64_t)t->nbytes;
        if (p->progress && !p->progress(p->progress_user, t->name, t->type, done, total)) {
            s = herd_fail(HERD_ERR_CANCELLED, "quantize: cancelled at %s", t->name);
            goto fail;
        }
    }
    /* the writer writes OUT.tmp and renames it into place when complete */
    s = gguf_writer_write(w, out);
fail:
    herd_free(scratch);
    herd_free(status);
    herd_pool_free(pool);
    gguf_writer_free(w);
    qz_free(&q);
    return s;
}
