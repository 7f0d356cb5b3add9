/*
 * quantize.c - herd_quantize: a model loaded by the normal loader (a GGUF, or a Hugging Face
 * folder of F32/F16/BF16 safetensors) written out as a GGUF file that herd and llama.cpp
 * both load. The input is whatever model_open binds, so the checkpoint is read one way:
 * the architecture table (arch.c) names the tensors, hf_config / checkpoint.c read the
 * folder, the tokenizer is the loaded one.
 *
 * What the output holds, and where each rule comes from:
 *  - Tensor names, "<arch>.*" keys and tokenizer.ggml.* keys as llama.cpp's converter
 *    (convert_hf_to_gguf.py, LlamaModel) writes them; names and the key prefix come from the
 *    model's row of the architecture table. From an HF folder, tensors go in the
 *    converter's order (embedding, rope_freqs, per layer norm / q / k / v / o / norm / gate /
 *    up / down, final norm, output), q/k rows go from HF's rotate-half order back to Meta's
 *    interleaved order (the converter's permute(): per head, row 2j+t of the output is row
 *    t*head_dim/2+j of the input), norms are F32, llama3 RoPE scaling becomes the
 *    rope_freqs tensor of per-dimension divisors, and the tokenizer is the loaded one (tokens
 *    by id in GPT-2 byte-level text, type normal or control, "[PADn]" unused ids up to the
 *    vocabulary) with tokenizer.json's merges and tokenizer_config.json's bos / eos / chat
 *    template. From a GGUF, metadata and order are copied and only the tensor types change.
 *  - Per-tensor types follow llama.cpp's llama_tensor_get_type (src/llama-quant.cpp) for a
 *    dense Llama: 1-D tensors and norms are never quantized; the output projection (or the
 *    tied embedding) is Q6_K unless the mix is Q8_0; Q4_K_M gives attn_v and ffn_down Q6_K
 *    in the layers use_more_bits() picks; a row length that is not a whole number of blocks
 *    falls back (Q4_K -> Q5_0, Q6_K -> Q8_0, then F16), so files of the same ftype are
 *    comparable. Which tensor is which comes from the table, not from its name.
 *  - Quantization is the imatrix-free reference of quant/ (quantize_row), rows split over
 *    threads. Tensors whose type does not change are not copied: the writer reads them
 *    straight from the input mapping.
 *
 * Memory: converted tensors are held until the single-pass writer runs, so peak memory is
 * about the size of the converted part of the output (the input stays mmapped).
 */
#include "model.h"

#include "format/format.h"       /* gguf_writer_*, hf_tokenizer_* */
#include "quant/quant.h"         /* quantize_row, dequantize_row, dtype_block_size */
#include "tokenizer/tokenizer.h" /* the loaded tokenizer's tokens, bytelevel_byte */

#include <math.h>    /* powf for rope_freqs */
#include <stdio.h>   /* snprintf */
#include <strings.h> /* strcasecmp */

#define QZ_NAME_MAX 96 /* longest GGUF tensor name written: "blk.NNN.attn_output.weight" */

struct qz_tensor {
    char name[QZ_NAME_MAX];
    int global, lt, layer;   /* the table's role (arch_tensor_role); -1 when none */
    const void *data;        /* the input rows (the mapping, or a vector herd holds) */
    herd_dtype src_type;
    int n_dims;
    int64_t ne[4];
    herd_dtype type;         /* output type */
    int perm_heads;          /* > 0: rows HF rotate-half -> Meta interleaved */
    const struct weight *parts; /* a weight in column parts: rows read through it */
    void *owned;             /* converted data, or NULL when written from data */
    size_t nbytes;
};

struct qz {
    const herd_quantize_params *p;
    const herd_model *m;
    struct qz_tensor *t;
    int n_t, cap_t;
    float *rope_freqs;           /* (head_dim / 2) */
    void *keep[16];              /* buffers that must outlive the writer */
    int n_keep;
    struct gguf_str *tok_strs;   /* (n_vocab) into tok_text */
    int32_t *tok_types;          /* (n_vocab) */
    char *tok_text;
    struct hf_tokenizer_extras extras;
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

/* A matrix llama.cpp would quantize: 2-D or more, and a weight, not a norm. A tensor the
 * table knows is judged by its role; one it does not (an extra in a GGUF) by llama.cpp's
 * name rule. */
static bool quantizable(const struct qz_tensor *t)
{
    if (t->n_dims < 2)
        return false;
    if (t->global >= 0)
        return t->global == ARCH_TOK_EMBD || t->global == ARCH_OUTPUT;
    if (t->lt >= 0)
        return t->lt != ARCH_ATTN_NORM && t->lt != ARCH_FFN_NORM;
    return ends_with(t->name, "weight") && !strstr(t->name, "_norm.weight");
}

/* The output type of one tensor, as llama_tensor_get_type picks it; keep is the type the
 * tensor has when it is not to be quantized. */
static herd_dtype choose_type(herd_ftype ft, const struct qz_tensor *t, int n_layers, bool tied,
                              herd_dtype keep)
{
    if (!quantizable(t))
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
    herd_dtype type = base;
    int64_t ne0 = t->ne[0];
    bool is_output = t->global == ARCH_OUTPUT || (tied && t->global == ARCH_TOK_EMBD);
    if (is_output) {
        if (ne0 % dtype_block_size(base) != 0)
            type = HERD_DTYPE_Q8_0;
        else if (base != HERD_DTYPE_Q8_0)
            type = HERD_DTYPE_Q6_K;
    } else if (ft == HERD_FTYPE_Q4_K_M && (t->lt == ARCH_WV || t->lt == ARCH_W_DOWN) &&
               use_more_bits(t->layer, n_layers)) {
        type = HERD_DTYPE_Q6_K;
    }
    return fallback_type(type, ne0);
}

/* ---------------------------------------------------------------- tensor list */

static struct qz_tensor *add_tensor(struct qz *q, const char *name, herd_status *s)
{
    if (q->n_t == q->cap_t) {
        int cap = q->cap_t ? 2 * q->cap_t : 64;
        struct qz_tensor *t = herd_realloc(q->t, (size_t)cap * sizeof *t);
        if (!t) {
            *s = herd_fail(HERD_ERR_NOMEM, "tensor list");
            return NULL;
        }
        q->t = t;
        q->cap_t = cap;
    }
    struct qz_tensor *t = &q->t[q->n_t];
    memset(t, 0, sizeof *t);
    if (strlen(name) >= sizeof t->name) {
        *s = herd_fail(HERD_ERR_UNSUPPORTED, "tensor name too long: %s", name);
        return NULL;
    }
    memcpy(t->name, name, strlen(name) + 1);
    arch_tensor_role(q->m->arch, ARCH_GGUF, name, &t->global, &t->lt, &t->layer);
    t->n_dims = 1;
    for (int i = 0; i < 4; i++)
        t->ne[i] = 1;
    q->n_t++;
    *s = HERD_OK;
    return t;
}

/* A new tensor named by its table entry (layer l) in GGUF; NULL with *s set on failure. */
static struct qz_tensor *add_named(struct qz *q, const struct arch_tensor *at, int l,
                                   herd_status *s)
{
    char name[QZ_NAME_MAX];
    if (!arch_tensor_name(at, ARCH_GGUF, l, name, sizeof name)) {
        *s = herd_fail(HERD_ERR_UNSUPPORTED, "%s has no GGUF name for a tensor",
                       q->m->arch->label);
        return NULL;
    }
    return add_tensor(q, name, s);
}

/* A bound weight (rows x cols), named by its table entry in GGUF. */
static herd_status add_weight(struct qz *q, const struct arch_tensor *at, int l,
                              const struct weight *w, int perm_heads)
{
    herd_status s;
    struct qz_tensor *t = add_named(q, at, l, &s);
    if (!t)
        return s;
    t->data = w->data;
    t->src_type = w->type;
    t->n_dims = 2;
    t->ne[0] = w->n_cols;
    t->ne[1] = w->n_rows;
    t->perm_heads = perm_heads;
    t->parts = w->n_parts > 1 ? w : NULL;
    return HERD_OK;
}

/* An F32 vector herd holds (a norm's copy, rope_freqs). */
static herd_status add_vector(struct qz *q, const struct arch_tensor *at, int l, const float *v,
                              int64_t n)
{
    herd_status s;
    struct qz_tensor *t = add_named(q, at, l, &s);
    if (!t)
        return s;
    t->data = v;
    t->src_type = HERD_DTYPE_F32;
    t->ne[0] = n;
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
    size_t in_rb = dtype_row_bytes(t->src_type, ne0), out_rb = dtype_row_bytes(t->type, ne0);
    float *row = j->scratch + (size_t)ith * (size_t)ne0;
    int64_t lo, hi;
    herd_split(rows, ith, nth, &lo, &hi);
    herd_status s = HERD_OK;
    for (int64_t r = lo; r < hi && s == HERD_OK; r++) {
        const uint8_t *in = (const uint8_t *)t->data + (size_t)source_row(t, r) * in_rb;
        uint8_t *out = (uint8_t *)t->owned + (size_t)r * out_rb;
        if (t->src_type == t->type && !t->parts) {
            memcpy(out, in, out_rb);
            continue;
        }
        s = t->parts ? weight_row_f32(t->parts, source_row(t, r), row)
                     : dequantize_row(t->src_type, row, in, ne0);
        if (s == HERD_OK)
            s = quantize_row(t->type, out, row, ne0);
    }
    j->status[ith] = s;
}

static herd_status convert_tensor(struct qz_tensor *t, struct herd_pool *pool, float *scratch,
                                  herd_status *status)
{
    int64_t ne0 = t->ne[0];
    int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    size_t rb = dtype_row_bytes(t->type, ne0);
    if (rb == 0 || dtype_row_bytes(t->src_type, ne0) == 0)
        return herd_fail(HERD_ERR_UNSUPPORTED, "tensor %s: rows of %lld are not whole blocks "
                         "of %s or %s", t->name, (long long)ne0, herd_dtype_name(t->src_type),
                         herd_dtype_name(t->type));
    if (rows > 0 && rb > SIZE_MAX / (size_t)rows)
        return herd_fail(HERD_ERR_FORMAT, "tensor %s: too large", t->name);
    t->nbytes = rb * (size_t)rows;
    if (t->src_type == t->type && t->perm_heads <= 0 && !t->parts)
        return HERD_OK; /* written straight from the input mapping */
    if (!dtype_supported(t->src_type))
        return herd_fail(HERD_ERR_UNSUPPORTED, "tensor %s: cannot read type %s", t->name,
                         herd_dtype_name(t->src_type));
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
    return HERD_OK;
}

/* ---------------------------------------------------------------- from an HF folder */

/* The llama3 per-dimension RoPE divisors, as the HF converter writes rope_freqs. This is
 * the converter's arithmetic (double after float32 frequencies), not the loader's
 * (llama3_scale in load.c, transformers' float32): each matches its own reference. */
static herd_status make_rope_freqs(struct qz *q)
{
    const struct hf_config *c = q->m->hf;
    int head_dim = q->m->info.head_dim;
    q->rope_freqs = herd_malloc((size_t)(head_dim / 2) * sizeof(float));
    if (!q->rope_freqs)
        return herd_fail(HERD_ERR_NOMEM, "rope_freqs");
    double old_len = (double)c->rope_original_max_position_embeddings;
    double low_wl = old_len / c->rope_low_freq_factor, high_wl = old_len / c->rope_high_freq_factor;
    for (int i = 0; i < head_dim / 2; i++) {
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

/* The bound model in the converter's order. */
static herd_status hf_tensors(struct qz *q)
{
    const herd_model *m = q->m;
    const herd_model_info *in = &m->info;
    const struct arch_tensor *g = m->arch->global, *lt = m->arch->layer;
    herd_status s;
    if ((s = add_weight(q, &g[ARCH_TOK_EMBD], 0, &m->tok_embd, 0)))
        return s;
    if (in->rope_scaling &&
        ((s = make_rope_freqs(q)) ||
         (s = add_vector(q, &g[ARCH_ROPE_FREQS], 0, q->rope_freqs, in->head_dim / 2))))
        return s;
    /* q/k go back to interleaved pairs only when the file stored them rotate-half */
    bool perm = m->rope_style == ROPE_HALF;
    for (int l = 0; l < in->n_layers; l++) {
        const struct layer *L = &m->layers[l];
        if ((s = add_vector(q, &lt[ARCH_ATTN_NORM], l, L->attn_norm, in->dim)) ||
            (s = add_weight(q, &lt[ARCH_WQ], l, &L->wq, perm ? in->n_heads : 0)) ||
            (s = add_weight(q, &lt[ARCH_WK], l, &L->wk, perm ? in->n_kv_heads : 0)) ||
            (s = add_weight(q, &lt[ARCH_WV], l, &L->wv, 0)) ||
            (s = add_weight(q, &lt[ARCH_WO], l, &L->wo, 0)) ||
            (s = add_vector(q, &lt[ARCH_FFN_NORM], l, L->ffn_norm, in->dim)) ||
            (s = add_weight(q, &lt[ARCH_W_GATE], l, &L->w_gate, 0)) ||
            (s = add_weight(q, &lt[ARCH_W_UP], l, &L->w_up, 0)) ||
            (s = add_weight(q, &lt[ARCH_W_DOWN], l, &L->w_down, 0)))
            return s;
    }
    if ((s = add_vector(q, &g[ARCH_OUTPUT_NORM], 0, m->out_norm, in->dim)))
        return s;
    if (!in->tied_embeddings && (s = add_weight(q, &g[ARCH_OUTPUT], 0, &m->output, 0)))
        return s;
    return HERD_OK;
}

/* GPT-2's byte-level text of raw token bytes (the inverse of bytelevel_byte), into out
 * (2 bytes per byte at most); returns the length. */
static size_t bytelevel_encode(const uint8_t *b, size_t n, char *out)
{
    static uint16_t cp_of[256];
    static int ready;
    if (!ready) {
        for (uint32_t cp = 0; cp < 256 + 68; cp++) {
            int byte = bytelevel_byte(cp);
            if (byte >= 0)
                cp_of[byte] = (uint16_t)cp;
        }
        ready = 1; /* idempotent: racing threads write the same values */
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t cp = cp_of[b[i]];
        if (cp < 0x80) {
            out[k++] = (char)cp;
        } else {
            out[k++] = (char)(0xC0 | (cp >> 6));
            out[k++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    return k;
}

/* tokenizer.ggml.tokens and token_type from the loaded tokenizer, as the converter's
 * _set_vocab_gpt2 writes them: regular tokens in byte-level text (GGUF_TOKEN_NORMAL),
 * special ones as their text (GGUF_TOKEN_CONTROL: herd's tokenizer.json reader takes every
 * added token as special), "[PADn]" (GGUF_TOKEN_UNUSED) for ids past the tokenizer up to
 * the model's vocabulary. */
static herd_status token_table(struct qz *q)
{
    const herd_tokenizer *tok = q->m->tok;
    int32_t n_vocab = q->m->info.n_vocab;
    size_t text = 0;
    herd_status s;
    for (int32_t i = 0; i < n_vocab; i++) {
        size_t len = i < tok->n_vocab ? tok->off[i + 1] - tok->off[i] : 0;
        text += i < tok->n_vocab ? 2 * len + 1 : 24;
    }
    if ((s = herd_alloc_array((void **)&q->tok_text, text, 1, "token text")) ||
        (s = herd_alloc_array((void **)&q->tok_strs, (size_t)n_vocab, sizeof *q->tok_strs,
                              "tokens")) ||
        (s = herd_alloc_array((void **)&q->tok_types, (size_t)n_vocab, sizeof *q->tok_types,
                              "token types")))
        return s;
    char *p = q->tok_text;
    for (int32_t i = 0; i < n_vocab; i++) {
        size_t len;
        if (i >= tok->n_vocab) {
            len = (size_t)snprintf(p, 24, "[PAD%d]", i);
            q->tok_types[i] = GGUF_TOKEN_UNUSED;
        } else if (tok->is_special[i]) {
            len = tok->off[i + 1] - tok->off[i];
            memcpy(p, tok->bytes + tok->off[i], len);
            q->tok_types[i] = GGUF_TOKEN_CONTROL;
        } else {
            len = bytelevel_encode(tok->bytes + tok->off[i], tok->off[i + 1] - tok->off[i], p);
            q->tok_types[i] = GGUF_TOKEN_NORMAL;
        }
        q->tok_strs[i] = (struct gguf_str){p, len};
        p += len + 1;
    }
    return HERD_OK;
}

/* tokenizer.ggml.* for a folder's model. */
static herd_status hf_tokenizer(struct qz *q, struct gguf_writer *w)
{
    const herd_model *m = q->m;
    char *tok_path = NULL, *cfg_path = NULL;
    herd_status s = hf_tokenizer_source(m->path, &tok_path, &cfg_path);
    if (s == HERD_OK && (!tok_path || !m->tok))
        s = herd_fail(HERD_ERR_FORMAT, "%s/tokenizer.json: missing (the tokenizer goes into "
                      "the GGUF)", m->path);
    if (s == HERD_OK)
        s = hf_tokenizer_extras_read(tok_path, cfg_path, &q->extras);
    herd_free(tok_path);
    herd_free(cfg_path);
    if (s != HERD_OK || (s = token_table(q)) != HERD_OK)
        return s;
    const struct hf_tokenizer_extras *x = &q->extras;
    /* tokenizer_config.json's token names, else config.json's ids */
    int64_t bos = x->bos_token ? herd_token_special(m->tok, x->bos_token) : -1;
    int64_t eos = x->eos_token ? herd_token_special(m->tok, x->eos_token) : -1;
    if (bos < 0)
        bos = m->hf->bos_token_id;
    if (eos < 0 && m->hf->n_eos > 0)
        eos = m->hf->eos_token_ids[0];
    size_t n_vocab = (size_t)m->info.n_vocab;
    if ((s = gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2")) ||
        (s = gguf_writer_set_str(w, "tokenizer.ggml.pre", m->arch->pre_tokenizer[0])) ||
        (s = gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", q->tok_strs, n_vocab)) ||
        (s = gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", q->tok_types, n_vocab)) ||
        (s = gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", x->merges, x->n_merges)))
        return s;
    if (bos >= 0 && (s = gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos)))
        return s;
    if (eos >= 0 && (s = gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos)))
        return s;
    if ((s = gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 1)))
        return s;
    if (x->chat_template &&
        (s = gguf_writer_set_str(w, "tokenizer.chat_template", x->chat_template)))
        return s;
    return HERD_OK;
}

/* general.* and "<arch>.*" in the converter's order, then the tokenizer. */
static herd_status hf_metadata(struct qz *q, struct gguf_writer *w)
{
    const herd_model *m = q->m;
    const herd_model_info *in = &m->info;
    const char *a = m->arch->gguf_arch;
    char k[128];
    const struct {
        const char *key;
        uint32_t v;
    } sizes[] = {
        {"block_count", (uint32_t)in->n_layers},
        {"context_length", (uint32_t)in->max_seq_len},
        {"embedding_length", (uint32_t)in->dim},
        {"feed_forward_length", (uint32_t)in->hidden_dim},
        {"attention.head_count", (uint32_t)in->n_heads},
        {"attention.head_count_kv", (uint32_t)in->n_kv_heads},
    };
    herd_status s;
    if ((s = gguf_writer_set_str(w, "general.architecture", a)) ||
        (s = gguf_writer_set_str(w, "general.type", "model")) ||
        (s = gguf_writer_set_str(w, "general.name", m->name)))
        return s;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        snprintf(k, sizeof k, "%s.%s", a, sizes[i].key);
        if ((s = gguf_writer_set_u32(w, k, sizes[i].v)))
            return s;
    }
    snprintf(k, sizeof k, "%s.rope.freq_base", a);
    if ((s = gguf_writer_set_f32(w, k, in->rope_theta)))
        return s;
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", a);
    if ((s = gguf_writer_set_f32(w, k, in->norm_eps)))
        return s;
    /* as the converter: key/value_length whenever config.json names head_dim */
    if (m->hf->head_dim != 0 || (int64_t)in->head_dim * in->n_heads != in->dim) {
        snprintf(k, sizeof k, "%s.attention.key_length", a);
        if ((s = gguf_writer_set_u32(w, k, (uint32_t)in->head_dim)))
            return s;
        snprintf(k, sizeof k, "%s.attention.value_length", a);
        if ((s = gguf_writer_set_u32(w, k, (uint32_t)in->head_dim)))
            return s;
    }
    if ((s = gguf_writer_set_u32(w, "general.file_type", (uint32_t)q->p->ftype)))
        return s;
    snprintf(k, sizeof k, "%s.vocab_size", a);
    if ((s = gguf_writer_set_u32(w, k, (uint32_t)in->n_vocab)))
        return s;
    snprintf(k, sizeof k, "%s.rope.dimension_count", a);
    if ((s = gguf_writer_set_u32(w, k, (uint32_t)in->head_dim)))
        return s;
    return hf_tokenizer(q, w);
}

/* ---------------------------------------------------------------- from a GGUF */

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

/* Every key/value of the input but the file type, which follows general.architecture; every
 * tensor in file order, read from the mapping the model is bound to. */
static herd_status gguf_input(struct qz *q, struct gguf_writer *w)
{
    const struct gguf_file *f = q->m->gguf;
    herd_status s;
    char key[256];
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const struct gguf_kv *kv = &f->kv[i];
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
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct tensor_info *ti = &f->tensors[i];
        struct qz_tensor *t = add_tensor(q, ti->name, &s);
        if (!t)
            return s;
        t->data = ti->data;
        t->src_type = ti->type;
        t->n_dims = ti->n_dims;
        memcpy(t->ne, ti->ne, sizeof t->ne);
    }
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
    herd_free(q->tok_strs);
    herd_free(q->tok_types);
    herd_free(q->tok_text);
    hf_tokenizer_extras_free(&q->extras);
    herd_free(q->rope_freqs);
}

herd_status herd_quantize(const char *in, const char *out, const herd_quantize_params *p)
{
    if (!in || !out || !p || !herd_ftype_name(p->ftype))
        return herd_fail(HERD_ERR_INVALID, "herd_quantize: input, output and a known ftype "
                         "are required");
    struct qz q;
    memset(&q, 0, sizeof q);
    q.p = p;
    herd_model *m = NULL;
    struct gguf_writer *w = NULL;
    struct herd_pool *pool = NULL;
    float *scratch = NULL;
    herd_status *status = NULL;
    herd_status s;

    herd_model_params mp = {.n_threads = p->n_threads};
    if ((s = model_open(in, &mp, &m)))
        goto fail;
    q.m = m;
    if ((s = gguf_writer_new(&w)))
        goto fail;
    if (m->gguf)
        s = gguf_input(&q, w);
    else if ((s = hf_tensors(&q)) == HERD_OK)
        s = hf_metadata(&q, w);
    if (s)
        goto fail;
    if ((s = gguf_writer_set_u32(w, "general.quantization_version", 2)))
        goto fail;

    int64_t max_ne0 = 1;
    int64_t total = 0, done = 0;
    for (int i = 0; i < q.n_t; i++) {
        struct qz_tensor *t = &q.t[i];
        /* what is not quantized stays as it is in a GGUF (as llama.cpp leaves it), and
         * becomes F32 from a folder's 16-bit floats (as the converter writes norms) */
        herd_dtype keep = m->gguf || (t->src_type != HERD_DTYPE_BF16 &&
                                      t->src_type != HERD_DTYPE_F16)
                              ? t->src_type
                              : HERD_DTYPE_F32;
        t->type = choose_type(p->ftype, t, m->info.n_layers, m->info.tied_embeddings, keep);
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
        if ((s = convert_tensor(t, pool, scratch, status)))
            goto fail;
        const void *data = t->owned ? t->owned : t->data;
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
    model_free_local(m);
    return s;
}
