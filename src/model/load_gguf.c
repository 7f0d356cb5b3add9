/*
 * load_gguf.c - binds a GGUF file as written by llama.cpp's converter: general.architecture
 * names a row of the architecture table (arch.c; "llama" for Llama 3.x), hyper-parameters
 * are under "<arch>.*" (gguf-py constants.py Keys.LLM / Keys.Attention / Keys.Rope), the
 * tensors have the row's GGUF names, and rope_freqs (when present) holds the llama3
 * per-dimension divisors. The converter stores q/k rows in Meta's interleaved RoPE order.
 *
 * Every key is read with its type checked (an integer key refuses a bool, a float or a
 * string) and its range checked, naming the key; sizes are then confirmed by the tensors
 * before anything is allocated from them (load.c).
 */
#include "model.h"
#include "tokenizer/tokenizer.h"

#include <math.h>  /* isfinite */
#include <stdio.h> /* snprintf for keys */

/* "<arch>.<what>" */
static const char *key_of(char *buf, size_t cap, const struct arch *row, const char *what)
{
    snprintf(buf, cap, "%s.%s", row->gguf_arch, what);
    return buf;
}

/* An integer key in [0, INT32_MAX]; absent keeps *v unless required. */
static herd_status get_i32(const struct gguf_file *f, const char *key, int32_t *v, int required)
{
    const struct gguf_kv *kv = gguf_find(f, key);
    if (!kv) {
        if (required)
            return herd_fail(HERD_ERR_FORMAT, "missing key %s", key);
        return HERD_OK;
    }
    /* gguf_get_int widens bools; a size or an id that is a bool is a broken file */
    if (kv->type == GGUF_BOOL)
        return herd_fail(HERD_ERR_FORMAT, "key %s: a bool, expected an integer", key);
    int64_t x = 0;
    int found = 0;
    herd_status s = gguf_get_int(f, key, &x, &found);
    if (s != HERD_OK)
        return s;
    if (x < 0 || x > INT32_MAX)
        return herd_fail(HERD_ERR_FORMAT, "key %s: value %lld out of range [0, %d]", key,
                         (long long)x, INT32_MAX);
    *v = (int32_t)x;
    return HERD_OK;
}

/* A finite number (f32, f64 or an integer); absent keeps *v. */
static herd_status get_f32(const struct gguf_file *f, const char *key, float *v)
{
    double x = 0;
    int found = 0;
    herd_status s = gguf_get_float(f, key, &x, &found);
    if (s != HERD_OK)
        return s;
    if (found && !isfinite((float)x))
        return herd_fail(HERD_ERR_FORMAT, "key %s: %g is not a finite float", key, x);
    if (found)
        *v = (float)x;
    return HERD_OK;
}

static bool str_is(const struct gguf_str *s, const char *want)
{
    size_t n = strlen(want);
    return s->n == n && memcmp(s->p, want, n) == 0;
}

/* general.architecture: a row of the table, or unsupported. */
static herd_status read_arch(herd_model *m, const struct gguf_file *f)
{
    struct gguf_str arch;
    int found = 0;
    herd_status s = gguf_get_str(f, "general.architecture", &arch, &found);
    if (s != HERD_OK)
        return s;
    if (!found)
        return herd_fail(HERD_ERR_FORMAT, "missing key general.architecture");
    char a[64];
    if (arch.n >= sizeof a || memchr(arch.p, 0, (size_t)arch.n))
        return herd_fail(HERD_ERR_UNSUPPORTED, "general.architecture '%.*s...' is not %s",
                         32, arch.p, arch_known_names(ARCH_GGUF));
    memcpy(a, arch.p, (size_t)arch.n);
    a[arch.n] = 0;
    if (!arch_known(ARCH_GGUF, a, NULL))
        return herd_fail(HERD_ERR_UNSUPPORTED, "general.architecture is '%s', expected %s", a,
                         arch_known_names(ARCH_GGUF));
    /* the family's first row for now: its keys; read_hparams picks the variant */
    m->arch = arch_select(ARCH_GGUF, a, NULL, NULL, 0, 0);
    return HERD_OK;
}

static herd_status read_ids(herd_model *m, const struct gguf_file *f)
{
    herd_model_info *in = &m->info;
    int32_t bos = -1;
    herd_status s = get_i32(f, "tokenizer.ggml.bos_token_id", &bos, 0);
    if (s != HERD_OK)
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

static herd_status read_hparams(herd_model *m, const struct gguf_file *f)
{
    herd_model_info *in = &m->info;
    herd_status s = read_arch(m, f);
    if (s != HERD_OK)
        return s;
    const struct arch *row = m->arch;
    char k[128];
    if ((s = get_i32(f, key_of(k, sizeof k, row, "embedding_length"), &in->dim, 1)) ||
        (s = get_i32(f, key_of(k, sizeof k, row, "block_count"), &in->n_layers, 1)) ||
        (s = get_i32(f, key_of(k, sizeof k, row, "attention.head_count"), &in->n_heads, 1)) ||
        (s = get_i32(f, key_of(k, sizeof k, row, "feed_forward_length"), &in->hidden_dim, 1)) ||
        (s = get_i32(f, key_of(k, sizeof k, row, "context_length"), &in->max_seq_len, 0)))
        return s;
    in->n_kv_heads = in->n_heads;
    if ((s = get_i32(f, key_of(k, sizeof k, row, "attention.head_count_kv"), &in->n_kv_heads,
                     0)))
        return s;
    in->head_dim = in->n_heads > 0 ? in->dim / in->n_heads : 0;
    if ((s = get_i32(f, key_of(k, sizeof k, row, "attention.key_length"), &in->head_dim, 0)))
        return s;
    int32_t vlen = in->head_dim;
    if ((s = get_i32(f, key_of(k, sizeof k, row, "attention.value_length"), &vlen, 0)))
        return s;
    if (vlen != in->head_dim)
        return herd_fail(HERD_ERR_UNSUPPORTED, "%s.attention.value_length %d differs from "
                         "key_length %d", row->gguf_arch, vlen, in->head_dim);
    in->norm_eps = 1e-5f;
    in->rope_theta = 10000.0f;
    if ((s = get_f32(f, key_of(k, sizeof k, row, "attention.layer_norm_rms_epsilon"),
                     &in->norm_eps)) ||
        (s = get_f32(f, key_of(k, sizeof k, row, "rope.freq_base"), &in->rope_theta)))
        return s;
    int32_t rope_dim = in->head_dim;
    if ((s = get_i32(f, key_of(k, sizeof k, row, "rope.dimension_count"), &rope_dim, 0)))
        return s;
    if (rope_dim != in->head_dim)
        return herd_fail(HERD_ERR_UNSUPPORTED, "%s.rope.dimension_count %d: partial RoPE "
                         "is not %s (head_dim %d)", row->gguf_arch, rope_dim, row->label,
                         in->head_dim);
    /* Linear or YaRN scaling is not Llama 3's; say so instead of computing wrong numbers. */
    struct gguf_str stype;
    int found = 0;
    if (gguf_get_str(f, key_of(k, sizeof k, row, "rope.scaling.type"), &stype, &found) ==
            HERD_OK && found && !str_is(&stype, "none"))
        return herd_fail(HERD_ERR_UNSUPPORTED, "%s '%.*s' is not supported (Llama 3 uses "
                         "rope_freqs)", k, (int)(stype.n > 32 ? 32 : stype.n), stype.p);
    if ((s = read_ids(m, f)))
        return s;
    m->arch = arch_select(ARCH_GGUF, row->gguf_arch, NULL, m->name, in->dim, in->n_layers);
    return HERD_OK;
}

/* The vocabulary is the embedding's rows; <arch>.vocab_size, when present, must agree. */
static herd_status read_vocab(herd_model *m, const struct gguf_file *f)
{
    herd_model_info *in = &m->info;
    char name[128], k[128];
    const struct tensor_info *t;
    herd_status s = model_tensor(m, &m->arch->global[ARCH_TOK_EMBD], 0, name, sizeof name, &t);
    if (s != HERD_OK)
        return s;
    if (!t)
        return herd_fail(HERD_ERR_FORMAT, "missing tensor %s", name);
    if (t->n_dims != 2 || t->ne[1] <= 0 || t->ne[1] > INT32_MAX)
        return herd_fail(HERD_ERR_FORMAT, "tensor %s: expected 2 dimensions and 1 to %d rows",
                         name, INT32_MAX);
    in->n_vocab = (int32_t)t->ne[1];
    int32_t vocab = in->n_vocab;
    if ((s = get_i32(f, key_of(k, sizeof k, m->arch, "vocab_size"), &vocab, 0)))
        return s;
    if (vocab != in->n_vocab)
        return herd_fail(HERD_ERR_FORMAT, "%s %d but %s has %d rows", k, vocab, name,
                         in->n_vocab);
    return HERD_OK;
}

/* tokenizer.ggml.pre must be one the row names or one the tokenizer can run (a GPT-2 style
 * vocabulary such as SmolLM2's "smollm" in a llama-architecture file). */
static herd_status load_tokenizer(herd_model *m, const struct gguf_file *f)
{
    if (!gguf_has_tokenizer(f))
        return HERD_OK;
    struct gguf_str pre;
    int found = 0;
    herd_status s = gguf_get_str(f, "tokenizer.ggml.pre", &pre, &found);
    if (s != HERD_OK)
        return s;
    bool known = !found || tok_pre_from_name(pre.p, (size_t)pre.n) >= 0;
    const size_t n_pre = sizeof m->arch->pre_tokenizer / sizeof m->arch->pre_tokenizer[0];
    for (size_t i = 0; i < n_pre && !known && m->arch->pre_tokenizer[i]; i++)
        known = str_is(&pre, m->arch->pre_tokenizer[i]);
    if (!known)
        return herd_fail(HERD_ERR_UNSUPPORTED, "tokenizer.ggml.pre is '%.*s'; %s uses '%s' "
                         "(herd also runs 'smollm', 'starcoder', 'gpt-2' and the like)",
                         (int)(pre.n > 32 ? 32 : pre.n), pre.p, m->arch->label,
                         m->arch->pre_tokenizer[0]);
    return tokenizer_from_gguf(f, &m->tok);
}

/* tokenizer.chat_template (and its default system message) and the general.sampling.*
 * defaults of newer converters. */
static herd_status read_chat_meta(herd_model *m, const struct gguf_file *f)
{
    herd_model_info *in = &m->info;
    struct gguf_str t;
    int found = 0;
    herd_status s = gguf_get_str(f, "tokenizer.chat_template", &t, &found);
    if (s != HERD_OK)
        return s;
    if (found && (s = model_set_chat_template(m, t.p, (size_t)t.n)))
        return s;
    double v;
    int64_t k;
    if ((s = gguf_get_float(f, "general.sampling.temp", &v, &found)))
        return s;
    if (found && v >= 0 && v < 100)
        in->default_temperature = (float)v;
    if ((s = gguf_get_float(f, "general.sampling.top_p", &v, &found)))
        return s;
    if (found && v >= 0 && v <= 1)
        in->default_top_p = (float)v;
    if ((s = gguf_get_float(f, "general.sampling.min_p", &v, &found)))
        return s;
    if (found && v >= 0 && v <= 1)
        in->default_min_p = (float)v;
    if ((s = gguf_get_int(f, "general.sampling.top_k", &k, &found)))
        return s;
    if (found && k >= 0 && k <= INT32_MAX)
        in->default_top_k = (int32_t)k;
    return HERD_OK;
}

static herd_status bind(herd_model *m, const struct gguf_file *f)
{
    herd_model_info *in = &m->info;
    herd_status s;
    if ((s = read_hparams(m, f)) || (s = read_vocab(m, f)) || (s = model_check_hparams(m)))
        return s;
    in->tied_embeddings = false; /* tied exactly when the file has no output tensor */
    if ((s = model_bind_globals(m, false)) || (s = model_bind_layers(m)))
        return s;
    char name[128];
    const struct tensor_info *rf;
    float *factors = NULL;
    if ((s = model_tensor(m, &m->arch->global[ARCH_ROPE_FREQS], 0, name, sizeof name, &rf)))
        return s;
    /* head_dim is confirmed by wq's rows by now, so the vector's length is sane */
    if (rf) {
        if ((s = norm_load(&factors, rf, in->head_dim / 2)))
            return s;
        in->rope_scaling = true;
        for (int i = 0; i < in->head_dim / 2; i++) {
            if (!(factors[i] > 0.0f) || !isfinite(factors[i])) {
                s = herd_fail(HERD_ERR_FORMAT, "tensor %s: divisor %d is %g, expected a "
                              "finite number > 0", name, i, (double)factors[i]);
                herd_free(factors);
                return s;
            }
        }
    }
    s = model_init_rope(m, factors);
    herd_free(factors);
    if (s != HERD_OK)
        return s;
    if ((s = read_chat_meta(m, f)))
        return s;
    return load_tokenizer(m, f);
}

herd_status model_bind_gguf(herd_model *m, const char *path)
{
    m->info.format = "gguf";
    m->fmt = ARCH_GGUF;
    herd_status s = gguf_open(path, &m->gguf);
    if (s != HERD_OK)
        return s; /* gguf_open names the file */
    /* The name picks a row's variant: general.name, else the file name. */
    struct gguf_str name;
    int found = 0;
    if (gguf_get_str(m->gguf, "general.name", &name, &found) == HERD_OK && found) {
        m->name = herd_strndup(name.p, name.n);
    } else {
        const char *slash = strrchr(path, '/');
        m->name = herd_strdup(slash ? slash + 1 : path);
    }
    if (!m->name)
        return herd_fail(HERD_ERR_NOMEM, "model name");
    m->info.name = m->name;
    s = bind(m, m->gguf);
    if (s != HERD_OK) {
        if (!strstr(herd_last_error(), path))
            herd_fail_prefix(s, "%s", path);
        return s;
    }
    m->rope_style = m->arch->rope[ARCH_GGUF];
    return HERD_OK;
}
