/*
 * load.c - model_load_local: picks the binder by what the path is (a folder is a Hugging
 * Face checkpoint, a file a GGUF). The binders read hyper-parameters their own way and then
 * share the steps here, which go by the architecture table (arch.h): check the
 * hyper-parameters' ranges, bind the embedding / output / final norm, bind the layers, and
 * only then precompute the RoPE frequencies. Nothing is allocated from a hyper-parameter
 * before a tensor has confirmed it: the layer array waits until the files are seen to hold
 * exactly that many layers, the RoPE table until wq's rows have confirmed head_dim.
 */
#include "model.h"
#include "quant/quant.h"
#include "tokenizer/tokenizer.h"

#include <math.h>   /* powf, M_PI */
#include <stdio.h>  /* snprintf for tensor names */
#include <stdlib.h>

herd_status weight_bind(struct weight *w, const struct tensor_info *t, int64_t n_rows,
                        int64_t n_cols)
{
    if (!dtype_supported(t->type))
        return herd_fail(HERD_ERR_UNSUPPORTED, "tensor %s: unsupported dtype %d (%s)", t->name,
                         (int)t->type, herd_dtype_name(t->type) ? herd_dtype_name(t->type) : "?");
    if (!kernels_get()->mm[t->type].matmul)
        return herd_fail(HERD_ERR_UNSUPPORTED, "tensor %s: no matrix kernel for dtype %s",
                         t->name, herd_dtype_name(t->type));
    if (t->n_dims != 2 || t->ne[0] != n_cols || t->ne[1] != n_rows)
        return herd_fail(HERD_ERR_FORMAT,
                         "tensor %s: shape [%lld, %lld] (rows, cols), expected [%lld, %lld]",
                         t->name, (long long)(t->n_dims == 2 ? t->ne[1] : t->ne[0]),
                         (long long)(t->n_dims == 2 ? t->ne[0] : 1), (long long)n_rows,
                         (long long)n_cols);
    int parts = t->n_parts > 1 ? t->n_parts : 1;
    if (parts > 1 && (t->type != HERD_DTYPE_F8_E4M3 || n_cols % parts != 0))
        return herd_fail(HERD_ERR_INTERNAL, "tensor %s: %d column parts of %lld columns", t->name,
                         parts, (long long)n_cols);
    size_t rb = dtype_row_bytes(t->type, n_cols / parts);
    if (rb == 0)
        return herd_fail(HERD_ERR_FORMAT, "tensor %s: %lld columns is not a whole number of "
                         "%s blocks", t->name, (long long)n_cols, herd_dtype_name(t->type));
    if (t->nbytes / (size_t)parts < rb * (size_t)n_rows)
        return herd_fail(HERD_ERR_FORMAT, "tensor %s: %zu bytes of data, expected %zu", t->name,
                         t->nbytes, rb * (size_t)n_rows * (size_t)parts);
    memset(w, 0, sizeof *w);
    if (parts > 1) {
        if (!(w->parts = herd_calloc((size_t)parts, sizeof *w->parts)))
            return herd_fail(HERD_ERR_NOMEM, "tensor %s: parts", t->name);
        for (int k = 0; k < parts; k++)
            w->parts[k] = (struct weight){.data = (const uint8_t *)t->data + (size_t)k *
                                                  rb * (size_t)n_rows,
                                          .type = t->type, .n_rows = n_rows,
                                          .n_cols = n_cols / parts, .row_bytes = rb};
        w->n_parts = parts;
    }
    w->data = t->data;
    w->type = t->type;
    w->n_rows = n_rows;
    w->n_cols = n_cols;
    w->row_bytes = rb * (size_t)parts;
    return HERD_OK;
}

herd_status weight_row_f32(const struct weight *w, int64_t r, float *out)
{
    if (w->n_parts > 1) { /* each part's columns in turn */
        herd_status s = HERD_OK;
        for (int k = 0; k < w->n_parts && s == HERD_OK; k++)
            s = weight_row_f32(&w->parts[k], r, out + k * w->parts[0].n_cols);
        return s;
    }
    return dequantize_row(w->type, out, (const uint8_t *)w->data + (size_t)r * w->row_bytes,
                          w->n_cols);
}

herd_status norm_load(float **out, const struct tensor_info *t, int64_t n)
{
    *out = NULL;
    if (t->n_dims != 1 || t->ne[0] != n)
        return herd_fail(HERD_ERR_FORMAT, "tensor %s: expected a vector of %lld elements",
                         t->name, (long long)n);
    if (t->type != HERD_DTYPE_F32 && t->type != HERD_DTYPE_F16 && t->type != HERD_DTYPE_BF16)
        return herd_fail(HERD_ERR_UNSUPPORTED, "tensor %s: norm weights must be f32, f16 or "
                         "bf16", t->name);
    if (t->nbytes < dtype_row_bytes(t->type, n))
        return herd_fail(HERD_ERR_FORMAT, "tensor %s: data too short", t->name);
    float *v = herd_malloc((size_t)n * sizeof *v);
    if (!v)
        return herd_fail(HERD_ERR_NOMEM, "tensor %s: cannot allocate", t->name);
    herd_status s = dequantize_row(t->type, v, t->data, n);
    if (s != HERD_OK) {
        herd_free(v);
        return s;
    }
    *out = v;
    return HERD_OK;
}

/* Llama 3 frequency scaling (Meta's apply_scaling, as transformers computes it in float32):
 * wavelengths shorter than original_max/high_freq_factor keep their frequency, longer than
 * original_max/low_freq_factor are divided by factor, and those between blend smoothly. */
static float llama3_scale(float freq, const herd_model_info *in)
{
    const float two_pi = 2.0f * (float)M_PI;
    float old_len = (float)in->rope_original_max_pos;
    float low_wavelen = old_len / in->rope_low_freq_factor;
    float high_wavelen = old_len / in->rope_high_freq_factor;
    float wavelen = two_pi / freq;
    if (wavelen < high_wavelen)
        return freq;
    if (wavelen > low_wavelen)
        return freq / in->rope_factor;
    float smooth = (old_len / wavelen - in->rope_low_freq_factor) /
                   (in->rope_high_freq_factor - in->rope_low_freq_factor);
    return (1.0f - smooth) * freq / in->rope_factor + smooth * freq;
}

herd_status model_bind_dir(herd_model *m, const char *dir,
                           herd_status (*bind)(herd_model *m, const char *dir))
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    const char *base = dir;
    for (size_t i = 0; i < n; i++)
        if (dir[i] == '/' && i + 1 < n)
            base = dir + i + 1;
    if (!(m->name = herd_strndup(base, (size_t)(dir + n - base))))
        return herd_fail(HERD_ERR_NOMEM, "model name");
    m->info.name = m->name;
    herd_status s = bind(m, dir);
    /* messages from files in the folder already name them */
    if (s != HERD_OK && !strstr(herd_last_error(), dir))
        herd_fail_prefix(s, "%s", dir);
    return s;
}

herd_status model_check_hparams(herd_model *m)
{
    herd_model_info *in = &m->info;
    const char *bad = NULL;
    if (in->dim <= 0)
        bad = "dim (hidden size) must be > 0";
    else if (in->n_layers <= 0)
        bad = "n_layers must be > 0";
    else if (in->n_heads <= 0 || in->n_kv_heads <= 0 || in->n_heads % in->n_kv_heads != 0)
        bad = "n_heads must be a positive multiple of n_kv_heads";
    else if (in->head_dim <= 0 || in->head_dim % 2 != 0)
        bad = "head_dim must be positive and even";
    else if (in->hidden_dim <= 0)
        bad = "hidden_dim (FFN size) must be > 0";
    else if (in->n_vocab <= 0)
        bad = "n_vocab must be > 0";
    else if (!(in->norm_eps > 0.0f) || !isfinite(in->norm_eps))
        bad = "rms_norm_eps must be finite and > 0";
    else if (!(in->rope_theta > 0.0f) || !isfinite(in->rope_theta))
        bad = "rope_theta must be finite and > 0";
    else if (in->rope_scaling &&
             !(in->rope_factor > 0.0f && isfinite(in->rope_factor) &&
               in->rope_original_max_pos > 0 && isfinite(in->rope_high_freq_factor) &&
               in->rope_high_freq_factor > in->rope_low_freq_factor &&
               in->rope_low_freq_factor > 0.0f))
        bad = "rope_scaling needs a finite factor > 0, original_max_position_embeddings > 0 "
              "and finite high_freq_factor > low_freq_factor > 0";
    if (bad)
        return herd_fail(HERD_ERR_FORMAT, "bad hyper-parameters: %s", bad);
    if (in->max_seq_len <= 0)
        in->max_seq_len = 8192;
    return HERD_OK;
}

/* Tensor i of the model's files, i < n_tensors(m). */
static size_t n_tensors(const herd_model *m)
{
    size_t n = m->gguf ? (size_t)m->gguf->n_tensors : m->n_meta_t;
    for (int i = 0; i < m->n_st; i++)
        n += m->st[i]->n_tensors;
    return n;
}

static const struct tensor_info *tensor_at(const herd_model *m, size_t i)
{
    if (m->gguf) {
        if (i < m->gguf->n_tensors)
            return &m->gguf->tensors[i];
        i -= (size_t)m->gguf->n_tensors;
    }
    if (i < m->n_meta_t)
        return &m->meta_t[i];
    i -= m->n_meta_t;
    for (int k = 0; k < m->n_st; i -= m->st[k]->n_tensors, k++)
        if (i < m->st[k]->n_tensors)
            return &m->st[k]->tensors[i];
    return NULL;
}

const struct tensor_info *model_find(const herd_model *m, const char *name)
{
    if (m->gguf)
        return gguf_find_tensor(m->gguf, name);
    for (size_t i = 0; i < m->n_meta_t; i++)
        if (strcmp(m->meta_t[i].name, name) == 0)
            return &m->meta_t[i];
    for (int i = 0; i < m->n_st; i++) {
        const struct tensor_info *t = st_find_tensor(m->st[i], name);
        if (t)
            return t;
    }
    return NULL;
}

herd_status model_tensor(const herd_model *m, const struct arch_tensor *at, int l, char *name,
                         size_t cap, const struct tensor_info **t)
{
    *t = NULL;
    if (!arch_tensor_name(at, m->fmt, l, name, cap)) {
        if (cap)
            name[0] = 0;
        return at->name[m->fmt] ? herd_fail(HERD_ERR_INTERNAL, "tensor name too long") : HERD_OK;
    }
    *t = model_find(m, name);
    return HERD_OK;
}

herd_status model_bind_globals(herd_model *m, bool require_output)
{
    herd_model_info *in = &m->info;
    const struct arch_tensor *g = m->arch->global;
    char name[128];
    const struct tensor_info *t;
    herd_status s = model_tensor(m, &g[ARCH_TOK_EMBD], 0, name, sizeof name, &t);
    if (s == HERD_OK && !t)
        s = herd_fail(HERD_ERR_FORMAT, "missing tensor %s", name);
    if (s != HERD_OK || (s = weight_bind(&m->tok_embd, t, in->n_vocab, in->dim)))
        return s;
    if ((s = model_tensor(m, &g[ARCH_OUTPUT], 0, name, sizeof name, &t)))
        return s;
    if (!t && require_output)
        return herd_fail(HERD_ERR_FORMAT, "missing tensor %s (the output projection is not "
                         "tied to the embedding)", name);
    if (in->tied_embeddings || !t) {
        in->tied_embeddings = true;
        m->output = m->tok_embd;
    } else if ((s = weight_bind(&m->output, t, m->presliced ? m->sh.n_v : in->n_vocab,
                                in->dim))) {
        return s;
    }
    if ((s = model_tensor(m, &g[ARCH_OUTPUT_NORM], 0, name, sizeof name, &t)))
        return s;
    if (!t)
        return herd_fail(HERD_ERR_FORMAT, "missing tensor %s", name);
    return norm_load(&m->out_norm, t, in->dim);
}

/* The key that declares the layer count, for messages. */
static const char *layers_key(const herd_model *m, char *buf, size_t cap)
{
    if (m->fmt == ARCH_HF)
        return "config.json num_hidden_layers";
    snprintf(buf, cap, "%s.block_count", m->arch->gguf_arch);
    return buf;
}

/* One pass over the files' tensors: refused ones are unsupported, and the layer numbers
 * present must be 0 .. n_layers - 1, checked before the layer array is sized from it. */
static herd_status check_layer_tensors(const herd_model *m)
{
    const struct arch *row = m->arch;
    int n_layers = m->info.n_layers;
    int max_layer = -1;
    const char *last = NULL;
    char key[96];
    size_t n = n_tensors(m);
    for (size_t i = 0; i < n; i++) {
        const struct tensor_info *t = tensor_at(m, i);
        int g, k, l;
        if (!arch_tensor_role(row, m->fmt, t->name, &g, &k, &l))
            continue;
        unsigned flags = g >= 0 ? row->global[g].flags : row->layer[k].flags;
        if (flags & ARCH_REFUSED)
            return herd_fail(HERD_ERR_UNSUPPORTED, "tensor %s: not supported (%s checkpoints "
                             "with this tensor need a forward pass herd does not have)",
                             t->name, row->label);
        if (k >= 0 && l >= n_layers)
            return herd_fail(HERD_ERR_FORMAT, "tensor %s is past the %d layers %s declares",
                             t->name, n_layers, layers_key(m, key, sizeof key));
        if (k >= 0 && l > max_layer) {
            max_layer = l;
            last = t->name;
        }
    }
    if (max_layer + 1 < n_layers)
        return herd_fail(HERD_ERR_FORMAT, "%s is %d, but the files hold tensors for %d layers "
                         "(last: %s)", layers_key(m, key, sizeof key), n_layers, max_layer + 1,
                         last ? last : "none");
    return HERD_OK;
}

static herd_status bind_layer(herd_model *m, int l)
{
    const herd_model_info *in = &m->info;
    struct layer *L = &m->layers[l];
    /* a presliced rank's files hold its share only (sh, set by load_meta.c) */
    const struct shard *sh = &m->sh;
    int64_t q_dim = (int64_t)(m->presliced ? sh->n_h : in->n_heads) * in->head_dim;
    int64_t kv_dim = (int64_t)(m->presliced ? sh->n_kvh : in->n_kv_heads) * in->head_dim;
    int64_t ff = m->presliced ? sh->n_ff : in->hidden_dim;
    const struct {
        enum arch_layer k;
        struct weight *w;
        int64_t rows, cols;
    } mats[] = {
        {ARCH_WQ, &L->wq, q_dim, in->dim},
        {ARCH_WK, &L->wk, kv_dim, in->dim},
        {ARCH_WV, &L->wv, kv_dim, in->dim},
        {ARCH_WO, &L->wo, in->dim, q_dim},
        {ARCH_W_GATE, &L->w_gate, ff, in->dim},
        {ARCH_W_UP, &L->w_up, ff, in->dim},
        {ARCH_W_DOWN, &L->w_down, in->dim, ff},
    };
    const struct {
        enum arch_layer k;
        float **v;
    } norms[] = {{ARCH_ATTN_NORM, &L->attn_norm}, {ARCH_FFN_NORM, &L->ffn_norm}};
    const size_t n_mats = sizeof mats / sizeof mats[0];
    char name[128];
    const struct tensor_info *t;
    herd_status s;
    for (size_t i = 0; i < n_mats + sizeof norms / sizeof norms[0]; i++) {
        enum arch_layer k = i < n_mats ? mats[i].k : norms[i - n_mats].k;
        if ((s = model_tensor(m, &m->arch->layer[k], l, name, sizeof name, &t)))
            return s;
        if (!t)
            return herd_fail(HERD_ERR_FORMAT, "missing tensor %s", name);
        s = i < n_mats ? weight_bind(mats[i].w, t, mats[i].rows, mats[i].cols)
                       : norm_load(norms[i - n_mats].v, t, in->dim);
        if (s != HERD_OK)
            return s;
    }
    return HERD_OK;
}

herd_status model_bind_layers(herd_model *m)
{
    herd_status s = check_layer_tensors(m);
    if (s != HERD_OK)
        return s;
    m->layers = herd_calloc((size_t)m->info.n_layers, sizeof *m->layers);
    if (!m->layers)
        return herd_fail(HERD_ERR_NOMEM, "layers");
    for (int l = 0; l < m->info.n_layers; l++)
        if ((s = bind_layer(m, l)))
            return s;
    return HERD_OK;
}

herd_status model_init_rope(herd_model *m, const float *factors)
{
    const herd_model_info *in = &m->info;
    int half = in->head_dim / 2;
    m->inv_freq = herd_malloc((size_t)half * sizeof *m->inv_freq);
    if (!m->inv_freq)
        return herd_fail(HERD_ERR_NOMEM, "rope frequencies");
    for (int i = 0; i < half; i++) {
        /* float32 as the references compute it: 1 / theta^(2i / head_dim) */
        float f = 1.0f / powf(in->rope_theta, (float)(2 * i) / (float)in->head_dim);
        if (factors)
            f = f / factors[i];
        else if (in->rope_scaling)
            f = llama3_scale(f, in);
        m->inv_freq[i] = f;
    }
    return HERD_OK;
}

/* The tokenizer's ids and the named bos/eos ids must all have an embedding row. A
 * tokenizer with fewer ids than rows is fine (vocabularies padded to a round size); Meta's
 * Llama 3 files have exactly 128256 of each. */
static herd_status check_vocab(const herd_model *m)
{
    const herd_model_info *in = &m->info;
    int32_t nt = herd_tokenizer_n_vocab(m->tok);
    if (nt > in->n_vocab)
        return herd_fail(HERD_ERR_FORMAT, "the tokenizer has %d ids but the embedding only %d "
                         "rows", nt, in->n_vocab);
    if (in->bos_id >= in->n_vocab)
        return herd_fail(HERD_ERR_FORMAT, "bos token id %d is past the vocabulary (%d ids)",
                         in->bos_id, in->n_vocab);
    for (int i = 0; i < in->n_eos; i++)
        if (in->eos_ids[i] < 0 || in->eos_ids[i] >= in->n_vocab)
            return herd_fail(HERD_ERR_FORMAT, "eos token id %d is past the vocabulary (%d "
                             "ids)", in->eos_ids[i], in->n_vocab);
    return HERD_OK;
}

static void count_params(herd_model *m)
{
    herd_model_info *in = &m->info;
    int64_t n = 0, bytes = 0;
    /* a presliced rank holds 1/tp of every matrix but the embedding: count the model's */
    const int64_t k = m->presliced ? m->sh.tp : 1;
    const struct weight *ws[] = {&m->tok_embd, &m->output};
    for (int i = 0; i < 2; i++) {
        if (i == 1 && in->tied_embeddings)
            break;
        n += (i ? k : 1) * ws[i]->n_rows * ws[i]->n_cols;
        bytes += (i ? k : 1) * (int64_t)ws[i]->row_bytes * ws[i]->n_rows;
    }
    for (int l = 0; l < in->n_layers; l++) {
        const struct layer *L = &m->layers[l];
        const struct weight *lw[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up,
                                     &L->w_down};
        for (int i = 0; i < 7; i++) {
            n += k * lw[i]->n_rows * lw[i]->n_cols;
            bytes += k * (int64_t)lw[i]->row_bytes * lw[i]->n_rows;
        }
        n += 2 * in->dim;
        bytes += 2 * in->dim * 4;
    }
    n += in->dim;
    in->n_params = n;
    /* the matrices' dtypes, counted, for herd info */
    int counts[128] = {0};
    for (int l = 0; l < in->n_layers; l++) {
        const struct layer *L = &m->layers[l];
        const struct weight *lw[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up,
                                     &L->w_down};
        for (int i = 0; i < 7; i++)
            counts[(unsigned)lw[i]->type % 128]++;
    }
    counts[(unsigned)m->tok_embd.type % 128]++;
    if (!in->tied_embeddings)
        counts[(unsigned)m->output.type % 128]++;
    size_t at = 0;
    m->dtypes[0] = 0;
    for (int t = 0; t < 128; t++) {
        const char *nm = herd_dtype_name((herd_dtype)t);
        if (!counts[t] || !nm || at >= sizeof m->dtypes)
            continue;
        int w = snprintf(m->dtypes + at, sizeof m->dtypes - at, "%s%s x %d", at ? ", " : "",
                         nm, counts[t]);
        if (w > 0)
            at += (size_t)w;
    }
    in->dtypes = m->dtypes;
    in->n_fp8 = counts[HERD_DTYPE_F8_E4M3 % 128];
    in->n_shards = m->gguf ? 1 : m->n_pth ? m->n_pth : m->n_st;
    in->weight_bytes = bytes;
    in->weight_dtype = m->layers[0].wq.type;
}

/* The system message a ChatML template writes when a conversation has none: the constant
 * string after '<|im_start|>system\n' (a Jinja string literal, so "\n" may be the two
 * characters) up to <|im_end|>. NULL when the template builds it from variables. */
static char *default_system(const char *tmpl)
{
    static const char *const heads[] = {"<|im_start|>system\\n", "<|im_start|>system\n"};
    const char *p = NULL;
    for (size_t i = 0; i < 2 && !p; i++) {
        p = strstr(tmpl, heads[i]);
        if (p)
            p += strlen(heads[i]);
    }
    const char *end = p ? strstr(p, "<|im_end|>") : NULL;
    if (!end)
        return NULL;
    char *out = herd_malloc((size_t)(end - p) + 1);
    size_t n = 0;
    for (; out && p < end; p++) {
        if (*p == '\'' || *p == '"' || *p == '{' || *p == '}') {
            herd_free(out); /* the literal ends or an expression starts: not a constant */
            return NULL;
        }
        if (*p == '\\' && p + 1 < end) {
            p++;
            out[n++] = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
        } else {
            out[n++] = *p;
        }
    }
    if (out)
        out[n] = 0;
    return out;
}

herd_status model_set_chat_template(herd_model *m, const char *text, size_t n)
{
    herd_free(m->chat_template);
    herd_free(m->chat_system);
    m->chat_system = NULL;
    m->chat_template = herd_strndup(text, n);
    if (!m->chat_template)
        return herd_fail(HERD_ERR_NOMEM, "chat template");
    m->info.chat_template = m->chat_template;
    if (strstr(m->chat_template, "<|im_start|>"))
        m->chat_system = default_system(m->chat_template);
    m->info.chat_system = m->chat_system;
    return HERD_OK;
}

/* Generation ends at any of the row's stop tokens the tokenizer has, beside the ids the file
 * names (a GGUF often names only one; a base model's generation_config only
 * <|end_of_text|>), as llama.cpp's end-of-generation set does. */
static void add_end_tokens(herd_model *m)
{
    herd_model_info *in = &m->info;
    const size_t n_stop = sizeof m->arch->stop_tokens / sizeof m->arch->stop_tokens[0];
    if (!m->tok)
        return;
    for (size_t i = 0; i < n_stop && m->arch->stop_tokens[i]; i++) {
        int32_t id = herd_token_special(m->tok, m->arch->stop_tokens[i]);
        int dup = id < 0 || id >= in->n_vocab;
        for (int j = 0; j < in->n_eos && !dup; j++)
            dup = in->eos_ids[j] == id;
        if (!dup && in->n_eos < (int)(sizeof in->eos_ids / sizeof in->eos_ids[0]))
            in->eos_ids[in->n_eos++] = id;
    }
}

static herd_status open_rank(const char *path, const herd_model_params *p, int rank,
                             int n_ranks, herd_model **out)
{
    *out = NULL;
    herd_model *m = herd_calloc(1, sizeof *m);
    if (!m)
        return herd_fail(HERD_ERR_NOMEM, "model");
    m->part_rank = rank;
    m->part_ranks = n_ranks;
    m->info.bos_id = -1;
    m->info.default_temperature = -1.0f;
    m->info.default_top_p = -1.0f;
    m->info.default_top_k = -1;
    m->info.default_min_p = -1.0f;
    m->n_threads = herd_n_threads(p->n_threads);
    m->path = herd_strdup(path);
    m->device = p->device && *p->device ? herd_strdup(p->device) : NULL;
    herd_status s = HERD_OK;
    if (!m->path || (p->device && *p->device && !m->device)) {
        s = herd_fail(HERD_ERR_NOMEM, "model");
        goto fail;
    }
    m->info.path = m->path;
    if (herd_is_dir(path) && model_is_meta_dir(path))
        s = model_bind_meta(m, path);
    else if (herd_is_dir(path))
        s = model_bind_hf(m, path);
    else if (herd_file_exists(path))
        s = model_bind_gguf(m, path);
    else
        s = herd_fail(HERD_ERR_IO, "%s: no such file or folder (-m takes a GGUF file, a "
                      "Hugging Face folder or hf://ORG/REPO[:FILE])", path);
    if (s == HERD_OK && (s = check_vocab(m)) != HERD_OK)
        herd_fail_prefix(s, "%s", path);
    if (s != HERD_OK)
        goto fail;
    m->info.arch = m->arch->gguf_arch;
    add_end_tokens(m);
    count_params(m);
    if (!m->presliced)
        shard_full(m, &m->sh);
    *out = m;
    return HERD_OK;
fail:
    model_free_local(m);
    return s;
}

herd_status model_open(const char *path, const herd_model_params *p, herd_model **out)
{
    return open_rank(path, p, 0, 0, out);
}

herd_status model_load_rank(const char *path, const herd_model_params *p, int rank,
                            int n_ranks, herd_model **out)
{
    herd_model *m = NULL;
    herd_status s = open_rank(path, p, rank, n_ranks, &m);
    if (s == HERD_OK && (s = model_upload(m)) != HERD_OK) {
        model_free_local(m);
        m = NULL;
    }
    *out = m;
    return s;
}

herd_status model_load_local(const char *path, const herd_model_params *p, herd_model **out)
{
    return model_load_rank(path, p, 0, 0, out);
}

void model_free_local(herd_model *m)
{
    if (!m)
        return;
    model_backend_close(m);
    for (int i = 0; i < m->n_owned; i++)
        herd_free_aligned(m->owned[i]);
    herd_free(m->owned);
    if (m->layers) {
        for (int l = 0; l < m->info.n_layers; l++) {
            herd_free(m->layers[l].attn_norm);
            herd_free(m->layers[l].ffn_norm);
            struct layer *L = &m->layers[l];
            struct weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up,
                                   &L->w_down};
            for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
                herd_free(ws[i]->parts);
        }
    }
    herd_free(m->layers);
    herd_free(m->out_norm);
    herd_free(m->inv_freq);
    herd_tokenizer_free(m->tok);
    gguf_close(m->gguf);
    for (int i = 0; i < m->n_st; i++)
        st_close(m->st[i]);
    herd_free(m->st);
    for (size_t i = 0; i < m->n_meta_t; i++)
        herd_free(m->meta_t[i].name);
    herd_free(m->meta_t);
    for (int i = 0; i < m->n_joined; i++)
        herd_free_aligned(m->joined[i]);
    herd_free(m->joined);
    for (int i = 0; i < m->n_pth; i++) {
        pth_close(m->pth[i]);
        pth_close(m->pth_fp8 ? m->pth_fp8[i] : NULL);
    }
    herd_free(m->pth);
    herd_free(m->pth_fp8);
    herd_free(m->hf);
    herd_free(m->name);
    herd_free(m->chat_template);
    herd_free(m->chat_system);
    herd_free(m->path);
    herd_free(m->device);
    herd_free(m);
}

const herd_model_info *herd_model_get_info(const herd_model *m)
{
    return &m->info;
}

const herd_tokenizer *herd_model_tokenizer(const herd_model *m)
{
    return m->tok;
}
