/*
 * load_meta.c - binds a folder as Meta distributes Llama 3.x (the "original" download):
 * params.json, tokenizer.model and consolidated.00.pth ... consolidated.NN.pth, one per
 * model-parallel rank of Meta's fairscale code (format/pth.c reads each).
 *
 * params.json (llama-models ModelArgs): dim, n_layers, n_heads, n_kv_heads (default
 * n_heads), vocab_size, multiple_of, ffn_dim_multiplier, norm_eps, rope_theta,
 * use_scaled_rope, and optionally rope_scaling_factor / rope_high_freq_factor (defaults
 * 8 and 4 with low_freq_factor 1 and an original context of 8192, the Llama 3.1 values).
 * The FFN width is derived as Meta's FeedForward does: h = int(2 * 4 * dim / 3), then
 * int(ffn_dim_multiplier * h) when given, rounded up to a multiple of multiple_of.
 *
 * Meta's names are mapped onto the GGUF names of the architecture table (tok_embeddings ->
 * token_embd, layers.N.attention.wq -> blk.N.attn_q, feed_forward.w1/w3/w2 -> ffn_gate/
 * ffn_up/ffn_down, ...): Meta's q/k rows are in the interleaved RoPE order GGUF uses, so
 * there is no permutation. Model-parallel shards are joined along the dimension fairscale
 * split: ColumnParallelLinear (wq, wk, wv, w1, w3, output) on rows, RowParallelLinear (wo,
 * w2) and ParallelEmbedding (tok_embeddings) on columns; norms are replicated and taken
 * from shard 0. A single shard is read in place from its mapping; a joined tensor is
 * copied once, at load, into owned memory, tensor by tensor, and the mapped pages of its
 * parts are released right after (MADV_DONTNEED): the peak resident set is one copy of the
 * weights plus one tensor's parts, not the shards' pages and the copy together.
 *
 * Meta's FP8 release ("fp8_mixed" in llama-models: models/llama3/quantization/loader.py and
 * quantize_impls.py) is the same folder plus fp8_scales_N.pt, one per shard: torch.save'd
 * dicts of float32 row scales named "<layer>_feed_forward.<w1|w2|w3>_<shard>". The weights
 * they scale are float8_e4m3fn storages (or BF16 ones holding e4m3 values: llama-models
 * loads the state dict into a BF16 model, then casts to float8 with weight.to(float8_e4m3fn));
 * the reference quantizes activations per token with fp8_activation_scale_ub = 1200 (its
 * default; nothing in the folder overrides it), exactly as fbgemm_fp8 does. Such weights are
 * repacked into HERD_DTYPE_F8_E4M3 rows at load. Joining follows what Meta's model-parallel
 * ranks compute (llama-models' swiglu_wrapper: ffn_swiglu on the rank's weights, then
 * reduce_from_model_parallel_region). w1/w3 shards stack their rows with their scales: each
 * rank quantizes the whole activation row, so the stacked rows are exact. A w2 shard holds
 * columns with row scales of its own, and each rank quantizes its own slice of the hidden
 * activations per token before f8f8bf16_rowwise: the joined w2 is a tensor of S column parts
 * (struct weight.n_parts), each multiplied by its slice, quantized on its own, and the S
 * products are added in shard order (forward.c), as the all-reduce adds them. Meta's ranks
 * produce bf16 products and all-reduce them in bf16; herd keeps each part's product and the
 * sum in float32, as it keeps every activation (and as the numpy reference does).
 *
 * params.json is also turned into a struct hf_config, so `herd quantize` writes a GGUF
 * from this folder exactly as from a Hugging Face one.
 */
#include "model.h"
#include "quant/quant.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h> /* snprintf */

#define META_MAX_SHARDS 64
#define META_FP8_UB 1200.0f /* llama-models' fp8_activation_scale_ub default */

/* Meta name -> GGUF name; false when the name is not one of Meta's Llama tensors. *split:
 * 0 rows, 1 columns, -1 replicated. */
static bool meta_name(const char *in, char *out, size_t cap, int *split)
{
    static const struct {
        const char *meta, *gguf;
        int split;
    } globals[] = {
        {"tok_embeddings.weight", "token_embd.weight", 1},
        {"norm.weight", "output_norm.weight", -1},
        {"output.weight", "output.weight", 0},
    }, layer[] = {
        {"attention.wq.weight", "attn_q.weight", 0},
        {"attention.wk.weight", "attn_k.weight", 0},
        {"attention.wv.weight", "attn_v.weight", 0},
        {"attention.wo.weight", "attn_output.weight", 1},
        {"feed_forward.w1.weight", "ffn_gate.weight", 0},
        {"feed_forward.w3.weight", "ffn_up.weight", 0},
        {"feed_forward.w2.weight", "ffn_down.weight", 1},
        {"attention_norm.weight", "attn_norm.weight", -1},
        {"ffn_norm.weight", "ffn_norm.weight", -1},
    };
    for (size_t i = 0; i < sizeof globals / sizeof globals[0]; i++)
        if (strcmp(in, globals[i].meta) == 0) {
            *split = globals[i].split;
            return (size_t)snprintf(out, cap, "%s", globals[i].gguf) < cap;
        }
    if (strncmp(in, "layers.", 7) != 0)
        return false;
    const char *p = in + 7;
    long l = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 6) {
        l = l * 10 + (*p++ - '0');
        digits++;
    }
    if (digits == 0 || *p++ != '.' || (digits > 1 && in[7] == '0'))
        return false;
    for (size_t i = 0; i < sizeof layer / sizeof layer[0]; i++)
        if (strcmp(p, layer[i].meta) == 0) {
            *split = layer[i].split;
            return (size_t)snprintf(out, cap, "blk.%ld.%s", l, layer[i].gguf) < cap;
        }
    return false;
}

/* ---- params.json */

static herd_status pj_num(const char *path, const cJSON *r, const char *key, int required,
                          double *v, int *found)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, key);
    *found = 0;
    if (!e || cJSON_IsNull(e)) {
        if (required)
            return herd_fail(HERD_ERR_FORMAT, "%s: field '%s' is missing", path, key);
        return HERD_OK;
    }
    if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
        return herd_fail(HERD_ERR_FORMAT, "%s: field '%s': expected a finite number", path,
                         key);
    *v = e->valuedouble;
    *found = 1;
    return HERD_OK;
}

static herd_status pj_int(const char *path, const cJSON *r, const char *key, int required,
                          int64_t lo, int64_t *v)
{
    double d = 0;
    int found;
    herd_status s = pj_num(path, r, key, required, &d, &found);
    if (s != HERD_OK || !found)
        return s;
    if (d != floor(d) || d < (double)lo || d > INT32_MAX)
        return herd_fail(HERD_ERR_FORMAT, "%s: field '%s': %g is not an integer in [%lld, %d]",
                         path, key, d, (long long)lo, INT32_MAX);
    *v = (int64_t)d;
    return HERD_OK;
}

/* Meta's FeedForward width: int(2 * 4 * dim / 3), times ffn_dim_multiplier (truncated),
 * rounded up to multiple_of. */
static int64_t ffn_width(int64_t dim, int have_mult, double mult, int64_t multiple_of)
{
    int64_t h = (int64_t)(2.0 * (double)(4 * dim) / 3.0);
    if (have_mult)
        h = (int64_t)(mult * (double)h);
    return multiple_of * ((h + multiple_of - 1) / multiple_of);
}

static herd_status read_params(herd_model *m, const char *dir)
{
    char *path = herd_path_join(dir, "params.json");
    char *text = NULL;
    size_t len = 0;
    cJSON *r = NULL;
    herd_status s;
    if (!path)
        return herd_fail(HERD_ERR_NOMEM, "path");
    if ((s = herd_read_file(path, &text, &len)))
        goto done;
    r = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(r)) {
        s = herd_fail(HERD_ERR_FORMAT, "%s: not a JSON object", path);
        goto done;
    }
    if (!(m->hf = herd_calloc(1, sizeof *m->hf))) {
        s = herd_fail(HERD_ERR_NOMEM, "params");
        goto done;
    }
    struct hf_config *c = m->hf;
    int64_t dim = 0, n_layers = 0, n_heads = 0, n_kv = -1, vocab = 0, multiple_of = 256;
    double mult = 0, eps = 1e-5, theta = 10000, factor = 8, high = 4;
    int have_mult = 0, found;
    const cJSON *scaled = cJSON_GetObjectItemCaseSensitive(r, "use_scaled_rope");
    if ((s = pj_int(path, r, "dim", 1, 1, &dim)) ||
        (s = pj_int(path, r, "n_layers", 1, 1, &n_layers)) ||
        (s = pj_int(path, r, "n_heads", 1, 1, &n_heads)) ||
        (s = pj_int(path, r, "n_kv_heads", 0, 1, &n_kv)) ||
        (s = pj_int(path, r, "vocab_size", 1, 1, &vocab)) ||
        (s = pj_int(path, r, "multiple_of", 0, 1, &multiple_of)) ||
        (s = pj_num(path, r, "ffn_dim_multiplier", 0, &mult, &have_mult)) ||
        (s = pj_num(path, r, "norm_eps", 0, &eps, &found)) ||
        (s = pj_num(path, r, "rope_theta", 0, &theta, &found)) ||
        (s = pj_num(path, r, "rope_scaling_factor", 0, &factor, &found)) ||
        (s = pj_num(path, r, "rope_high_freq_factor", 0, &high, &found)))
        goto done;
    if (scaled && !cJSON_IsBool(scaled) && !cJSON_IsNull(scaled)) {
        s = herd_fail(HERD_ERR_FORMAT, "%s: field 'use_scaled_rope': expected true or false",
                      path);
        goto done;
    }
    if (have_mult && !(mult > 0 && mult < 64)) {
        s = herd_fail(HERD_ERR_FORMAT, "%s: field 'ffn_dim_multiplier': %g is out of range",
                      path, mult);
        goto done;
    }
    memcpy(c->architecture, "LlamaForCausalLM", sizeof "LlamaForCausalLM");
    memcpy(c->model_type, "llama", sizeof "llama");
    c->hidden_size = dim;
    c->num_hidden_layers = n_layers;
    c->num_attention_heads = n_heads;
    c->num_key_value_heads = n_kv > 0 ? n_kv : n_heads;
    c->intermediate_size = ffn_width(dim, have_mult, mult, multiple_of);
    c->vocab_size = vocab;
    c->rms_norm_eps = eps;
    c->rope_theta = theta;
    c->has_rope_scaling = cJSON_IsTrue(scaled);
    c->max_position_embeddings = c->has_rope_scaling ? 131072 : 8192;
    c->rope_factor = factor;
    c->rope_low_freq_factor = 1.0;
    c->rope_high_freq_factor = high;
    c->rope_original_max_position_embeddings = 8192;
    c->bos_token_id = -1;
    c->temperature = c->top_p = -1.0;

    herd_model_info *in = &m->info;
    in->dim = (int32_t)dim;
    in->n_layers = (int32_t)n_layers;
    in->n_heads = (int32_t)n_heads;
    in->n_kv_heads = (int32_t)c->num_key_value_heads;
    in->head_dim = (int32_t)(dim / n_heads);
    if (c->intermediate_size > INT32_MAX) {
        s = herd_fail(HERD_ERR_FORMAT, "%s: the FFN width is out of range", path);
        goto done;
    }
    in->hidden_dim = (int32_t)c->intermediate_size;
    in->n_vocab = (int32_t)vocab;
    in->max_seq_len = (int32_t)c->max_position_embeddings;
    in->norm_eps = (float)eps;
    in->rope_theta = (float)theta;
    in->rope_scaling = c->has_rope_scaling != 0;
    in->rope_factor = (float)factor;
    in->rope_low_freq_factor = 1.0f;
    in->rope_high_freq_factor = (float)high;
    in->rope_original_max_pos = 8192;
    s = HERD_OK;
done:
    cJSON_Delete(r);
    herd_free(text);
    herd_free(path);
    return s;
}

/* ---- shards */

static herd_status open_shards(herd_model *m, const char *dir)
{
    char name[32];
    int n = 0;
    for (; n < META_MAX_SHARDS; n++) {
        snprintf(name, sizeof name, "consolidated.%02d.pth", n);
        char *p = herd_path_join(dir, name);
        if (!p)
            return herd_fail(HERD_ERR_NOMEM, "path");
        int there = herd_file_exists(p);
        herd_free(p);
        if (!there)
            break;
    }
    if (n == 0)
        return herd_fail(HERD_ERR_FORMAT, "%s: no consolidated.00.pth", dir);
    if (!(m->pth = herd_calloc((size_t)n, sizeof *m->pth)))
        return herd_fail(HERD_ERR_NOMEM, "shards");
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "consolidated.%02d.pth", i);
        char *p = herd_path_join(dir, name);
        herd_status s = p ? pth_open(p, &m->pth[i]) : herd_fail(HERD_ERR_NOMEM, "path");
        herd_free(p);
        if (s != HERD_OK)
            return s;
        m->n_pth++;
    }
    /* Meta's FP8 release: one fp8_scales_N.pt per shard */
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "fp8_scales_%d.pt", i);
        char *p = herd_path_join(dir, name);
        if (!p)
            return herd_fail(HERD_ERR_NOMEM, "path");
        int there = herd_file_exists(p);
        herd_status s = HERD_OK;
        if (there && !m->pth_fp8 && !(m->pth_fp8 = herd_calloc((size_t)n, sizeof *m->pth_fp8)))
            s = herd_fail(HERD_ERR_NOMEM, "scales");
        else if (there)
            s = pth_open(p, &m->pth_fp8[i]);
        else if (m->pth_fp8)
            s = herd_fail(HERD_ERR_FORMAT, "%s: missing (fp8_scales_0.pt is there)", p);
        herd_free(p);
        if (s != HERD_OK)
            return s;
    }
    return HERD_OK;
}

/* The rows of one FFN weight of Meta's FP8 release, layer l, shard k: F8_E4M3 rows
 * {scale, bound, codes} into dst. BF16 storages must hold e4m3 values exactly. */
static herd_status fp8_rows(const herd_model *m, const struct tensor_info *part, int l,
                            const char *w, int k, uint8_t *dst)
{
    char key[64];
    snprintf(key, sizeof key, "%d_feed_forward.%s_%d", l, w, k);
    const struct tensor_info *sc = pth_find_tensor(m->pth_fp8[k], key);
    int64_t cols = part->ne[0], rows = part->ne[1];
    if (!sc || sc->type != HERD_DTYPE_F32 || sc->ne[0] * sc->ne[1] * sc->ne[2] * sc->ne[3] != rows)
        return herd_fail(HERD_ERR_FORMAT, "fp8_scales_%d.pt: expected %s, %lld float32 row "
                         "scales of layers.%d.feed_forward.%s", k, key, (long long)rows, l, w);
    uint8_t *codes = herd_malloc((size_t)cols);
    if (!codes)
        return herd_fail(HERD_ERR_NOMEM, "FP8 row");
    size_t rb = dtype_row_bytes(HERD_DTYPE_F8_E4M3, cols);
    herd_status s = HERD_OK;
    for (int64_t r = 0; r < rows && s == HERD_OK; r++) {
        float scale;
        memcpy(&scale, (const uint8_t *)sc->data + (size_t)r * 4, 4);
        const uint8_t *src = (const uint8_t *)part->data + (size_t)r * (size_t)cols *
                             (part->type == DTYPE_F8_E4M3_RAW ? 1 : 2);
        for (int64_t c = 0; c < cols && part->type == HERD_DTYPE_BF16; c++) {
            uint16_t h;
            memcpy(&h, src + 2 * c, 2);
            float v = bf16_to_f32(h);
            codes[c] = fp8_e4m3_from_f32(v);
            if (fp8_e4m3_to_f32(codes[c]) != v && !(v == 0 && codes[c] == 0))
                s = herd_fail(HERD_ERR_FORMAT, "layers.%d.feed_forward.%s.weight (shard %d): "
                              "row %lld holds %g, not an e4m3 value", l, w, k, (long long)r,
                              (double)v);
        }
        if (!isfinite(scale))
            s = herd_fail(HERD_ERR_FORMAT, "fp8_scales_%d.pt: %s row %lld is not finite", k,
                          key, (long long)r);
        fp8_pack_row(dst + (size_t)r * rb, part->type == DTYPE_F8_E4M3_RAW ? src : codes, scale,
                     META_FP8_UB, cols);
    }
    herd_free(codes);
    return s;
}

/* Whether Meta name `name` is an FFN weight with FP8 scales; *l and *w name it. */
static bool fp8_weight(const herd_model *m, const char *name, int *l, const char **w)
{
    static const char *const ws[] = {"w1", "w2", "w3"};
    if (!m->pth_fp8 || strncmp(name, "layers.", 7) != 0)
        return false;
    long v = 0;
    const char *p = name + 7;
    while (*p >= '0' && *p <= '9' && v < 1000000)
        v = v * 10 + (*p++ - '0');
    for (int i = 0; i < 3; i++) {
        char want[40];
        snprintf(want, sizeof want, ".feed_forward.%s.weight", ws[i]);
        if (strcmp(p, want) == 0) {
            char key[64];
            snprintf(key, sizeof key, "%ld_feed_forward.%s_0", v, ws[i]);
            *l = (int)v;
            *w = ws[i];
            return pth_find_tensor(m->pth_fp8[0], key) != NULL;
        }
    }
    return false;
}

/* An owned buffer of n bytes, freed with the model. */
static uint8_t *owned_buf(herd_model *m, size_t n)
{
    uint8_t *buf = herd_malloc_aligned(n ? n : 1, 64);
    void **grown = buf ? herd_realloc(m->joined, (size_t)(m->n_joined + 1) * sizeof *grown)
                       : NULL;
    if (!grown) {
        herd_free_aligned(buf);
        return NULL;
    }
    m->joined = grown;
    m->joined[m->n_joined++] = buf;
    return buf;
}

/* An FFN weight of Meta's FP8 release as F8_E4M3 rows, shard k's matrix after shard k - 1's:
 * for w1/w3 (split on rows) that is the stacked rows; for w2 (split on columns) it is a
 * tensor of n column parts, each with its shard's row scales (struct tensor_info.n_parts),
 * whose products forward.c adds as Meta's all-reduce adds the ranks' partial sums. */
static herd_status join_fp8(herd_model *m, const struct tensor_info *const *parts, int k0,
                            int n, int split, int l, const char *wn, struct tensor_info *t)
{
    const struct tensor_info *t0 = parts[k0];
    if (t0->n_dims != 2 || (t0->type != DTYPE_F8_E4M3_RAW && t0->type != HERD_DTYPE_BF16))
        return herd_fail(HERD_ERR_FORMAT, "tensor %s: expected a float8_e4m3fn or bfloat16 "
                         "matrix beside its FP8 scales", t0->name);
    int64_t cols = t0->ne[0], rows = t0->ne[1];
    /* forward.c keeps one part's product in the FFN's up buffer (n_ff >= dim) */
    if (split == 1 && n > 1 && cols * n < rows)
        return herd_fail(HERD_ERR_UNSUPPORTED, "tensor %s: an FP8 w2 in %d parts needs an FFN "
                         "at least as wide as the model (%lld < %lld)", t0->name, n,
                         (long long)(cols * n), (long long)rows);
    size_t rb = dtype_row_bytes(HERD_DTYPE_F8_E4M3, cols);
    if (rb == 0 || (uint64_t)rows * (uint64_t)n > SIZE_MAX / rb)
        return herd_fail(HERD_ERR_FORMAT, "tensor %s is too large", t0->name);
    uint8_t *buf = owned_buf(m, rb * (size_t)rows * (size_t)n);
    if (!buf)
        return herd_fail(HERD_ERR_NOMEM, "tensor %s: cannot allocate the FP8 rows", t0->name);
    for (int k = k0; k < k0 + n; k++) {
        herd_status s = fp8_rows(m, parts[k], l, wn, k,
                                 buf + (size_t)(k - k0) * (size_t)rows * rb);
        if (s != HERD_OK)
            return s;
        model_release_pages(parts[k]->data, parts[k]->nbytes);
    }
    t->type = HERD_DTYPE_F8_E4M3;
    t->ne[0] = split == 1 ? cols * n : cols;
    t->ne[1] = split == 1 ? rows : rows * n;
    t->n_parts = split == 1 ? n : 1;
    t->data = buf;
    t->nbytes = rb * (size_t)rows * (size_t)n;
    return HERD_OK;
}

/* Joins tensor `name` of every shard along split into *t (owned data in m->joined); on a
 * presliced rank r, a split tensor but the embedding is shard r's alone. */
static herd_status join(herd_model *m, const struct tensor_info *t0, int split, bool embedding,
                        struct tensor_info *t)
{
    int n = m->n_pth;
    const struct tensor_info *parts[META_MAX_SHARDS];
    parts[0] = t0;
    for (int k = 1; k < n; k++) {
        parts[k] = pth_find_tensor(m->pth[k], t0->name);
        if (!parts[k])
            return herd_fail(HERD_ERR_FORMAT, "tensor %s is in consolidated.00.pth but not in "
                             "consolidated.%02d.pth", t0->name, k);
        if (parts[k]->type != t0->type || parts[k]->n_dims != t0->n_dims ||
            memcmp(parts[k]->ne, t0->ne, sizeof t0->ne) != 0)
            return herd_fail(HERD_ERR_FORMAT, "tensor %s: consolidated.%02d.pth's shape or "
                             "dtype differs from consolidated.00.pth's", t0->name, k);
    }
    int l;
    const char *wn;
    int own = m->presliced && split >= 0 && !embedding; /* this rank's shard alone */
    if (fp8_weight(m, t0->name, &l, &wn))
        return join_fp8(m, parts, own ? m->sh.tp_rank : 0, own ? 1 : n, split, l, wn, t);
    if (t0->type == DTYPE_F8_E4M3_RAW)
        return herd_fail(HERD_ERR_FORMAT, "tensor %s is float8_e4m3fn but fp8_scales_0.pt has "
                         "no row scales for it", t0->name);
    if (own) {
        t->data = parts[m->sh.tp_rank]->data;
        return HERD_OK;
    }
    if (split < 0 || n == 1)
        return HERD_OK; /* replicated, or one shard: in place */
    if (t0->n_dims != 2)
        return herd_fail(HERD_ERR_FORMAT, "tensor %s: expected a matrix to join", t0->name);
    size_t es = t0->type == HERD_DTYPE_F32 ? 4 : 2;
    int64_t cols = t0->ne[0], rows = t0->ne[1];
    if (t0->nbytes > SIZE_MAX / (size_t)n)
        return herd_fail(HERD_ERR_FORMAT, "tensor %s is too large", t0->name);
    uint8_t *buf = owned_buf(m, t0->nbytes * (size_t)n);
    if (!buf)
        return herd_fail(HERD_ERR_NOMEM, "tensor %s: cannot allocate the joined copy", t0->name);
    if (split == 0) { /* rows: shard k's rows follow shard k-1's */
        for (int k = 0; k < n; k++)
            memcpy(buf + (size_t)k * t0->nbytes, parts[k]->data, t0->nbytes);
        t->ne[1] = rows * n;
    } else {          /* columns: each row is shard 0's part, shard 1's, ... */
        size_t rb = (size_t)cols * es;
        for (int64_t r = 0; r < rows; r++)
            for (int k = 0; k < n; k++)
                memcpy(buf + ((size_t)r * (size_t)n + (size_t)k) * rb,
                       (const uint8_t *)parts[k]->data + (size_t)r * rb, rb);
        t->ne[0] = cols * n;
    }
    /* The parts' pages leave the resident set as soon as they are copied: loading holds one
     * copy of the model plus one tensor's parts, not two copies. */
    for (int k = 0; k < n; k++)
        model_release_pages(parts[k]->data, parts[k]->nbytes);
    t->data = buf;
    t->nbytes = t0->nbytes * (size_t)n;
    return HERD_OK;
}

/* The model's tensor table: shard 0's tensors under GGUF names, joined across shards. */
static herd_status build_table(herd_model *m)
{
    const struct pth_file *f0 = m->pth[0];
    if (!(m->meta_t = herd_calloc(f0->n_tensors ? f0->n_tensors : 1, sizeof *m->meta_t)))
        return herd_fail(HERD_ERR_NOMEM, "tensors");
    for (size_t i = 0; i < f0->n_tensors; i++) {
        const struct tensor_info *t0 = &f0->tensors[i];
        char name[96];
        int split;
        if (!meta_name(t0->name, name, sizeof name, &split)) {
            if (strcmp(t0->name, "rope.freqs") == 0)
                continue; /* Llama 2's precomputed frequencies: herd computes its own */
            return herd_fail(HERD_ERR_UNSUPPORTED, "tensor %s: not a Llama tensor herd knows "
                             "(expected tok_embeddings, layers.N.attention.wq, ...)", t0->name);
        }
        struct tensor_info *t = &m->meta_t[m->n_meta_t];
        *t = *t0;
        t->name = NULL;
        herd_status s = join(m, t0, split, strcmp(t0->name, "tok_embeddings.weight") == 0, t);
        if (s != HERD_OK)
            return s;
        if (!(t->name = herd_strdup(name)))
            return herd_fail(HERD_ERR_NOMEM, "tensor name");
        m->n_meta_t++;
    }
    return HERD_OK;
}

/* Rank part_rank of part_ranks tensor-parallel ranks, as many as the shards: binds only its
 * shard when fairscale's split of every matrix is the one shard.c computes for the rank
 * (contiguous KV-head groups with their query heads, FFN units and vocabulary rows, each
 * divisible by the rank count, as Meta's model code requires). */
static void take_own_shard(herd_model *m)
{
    const herd_model_info *in = &m->info;
    int n = m->part_ranks, r = m->part_rank;
    if (n < 2 || n != m->n_pth || r < 0 || r >= n || in->n_kv_heads % n != 0 ||
        in->n_heads % n != 0 || in->hidden_dim % n != 0 || in->n_vocab % n != 0)
        return;
    struct shard *sh = &m->sh;
    memset(sh, 0, sizeof *sh);
    sh->n_ranks = sh->tp = n;
    sh->pp = 1;
    sh->rank = sh->tp_rank = r;
    sh->l1 = in->n_layers;
    sh->n_kvh = in->n_kv_heads / n;
    sh->kvh0 = r * sh->n_kvh;
    sh->n_h = in->n_heads / n;
    sh->n_ff = in->hidden_dim / n;
    sh->ff0 = r * sh->n_ff;
    sh->n_v = in->n_vocab / n;
    sh->v0 = r * sh->n_v;
    m->part_sh = *sh;
    m->presliced = true;
}

static herd_status bind(herd_model *m, const char *dir)
{
    herd_status s;
    if ((s = read_params(m, dir)) || (s = open_shards(m, dir)))
        return s;
    take_own_shard(m);
    if ((s = build_table(m)) ||
        (s = model_check_hparams(m)))
        return s;
    m->arch = arch_select(ARCH_GGUF, "llama", NULL, m->name, m->info.dim, m->info.n_layers);
    if (!m->arch)
        return herd_fail(HERD_ERR_INTERNAL, "no llama architecture row");
    if ((s = model_bind_globals(m, false)) || (s = model_bind_layers(m)) ||
        (s = model_init_rope(m, NULL)))
        return s;
    /* Meta ships tokenizer.model; a tokenizer.json beside it works too */
    static const char *const toks[] = {"tokenizer.model", "tokenizer.json"};
    for (int i = 0; i < 2 && !m->tok && s == HERD_OK; i++) {
        char *p = herd_path_join(dir, toks[i]);
        if (!p)
            return herd_fail(HERD_ERR_NOMEM, "path");
        if (herd_file_exists(p))
            s = herd_tokenizer_load(p, &m->tok);
        herd_free(p);
    }
    if (s == HERD_OK && m->tok) {
        m->info.bos_id = herd_token_special(m->tok, "<|begin_of_text|>");
        m->hf->bos_token_id = m->info.bos_id;
        /* what a converted config.json names: <|end_of_text|> (the other stop tokens
         * come from the architecture row) */
        int32_t eos = herd_token_special(m->tok, "<|end_of_text|>");
        if (eos >= 0) {
            m->info.eos_ids[0] = m->hf->eos_token_ids[0] = eos;
            m->info.n_eos = m->hf->n_eos = 1;
        }
    }
    return s;
}

herd_status model_bind_meta(herd_model *m, const char *dir)
{
    m->info.format = "meta";
    m->fmt = ARCH_GGUF; /* names are mapped onto the table's GGUF ones */
    herd_status s = model_bind_dir(m, dir, bind);
    if (s != HERD_OK)
        return s;
    m->rope_style = m->arch->rope[ARCH_GGUF];
    return HERD_OK;
}

bool model_is_meta_dir(const char *dir)
{
    char *p = herd_path_join(dir, "params.json");
    char *q = herd_path_join(dir, "consolidated.00.pth");
    bool yes = p && q && herd_file_exists(p) && herd_file_exists(q);
    herd_free(p);
    herd_free(q);
    return yes;
}
