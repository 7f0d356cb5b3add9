/*
 * arch.c - the architecture table (arch.h): Meta's Llama 3.x, as llama.cpp's converter
 * (convert_hf_to_gguf.py, LlamaModel; gguf-py tensor_mapping.py) names it in GGUF and as
 * transformers' LlamaForCausalLM names it in a Hugging Face folder.
 *
 * Llama 3.0, 3.1 and 3.3 share one row; 3.2 (1B, 3B) differs only in its default chat
 * template, so it is a row of its own chosen by its name or its two shapes, before the
 * catch-all row.
 */
#include "model/arch.h"

#include <stdio.h> /* snprintf for tensor names */

static const struct arch_tensor llama_global[ARCH_N_GLOBAL] = {
    [ARCH_TOK_EMBD] = {{"token_embd.weight", "model.embed_tokens.weight"}, 0},
    /* the converter's llama3 per-dimension divisors; HF keeps rope_scaling in config.json */
    [ARCH_ROPE_FREQS] = {{"rope_freqs.weight", NULL}, ARCH_OPTIONAL},
    [ARCH_OUTPUT_NORM] = {{"output_norm.weight", "model.norm.weight"}, 0},
    /* absent when tied to the embedding */
    [ARCH_OUTPUT] = {{"output.weight", "lm_head.weight"}, ARCH_OPTIONAL},
};

static const struct arch_tensor llama_layer[ARCH_N_LAYER] = {
    [ARCH_ATTN_NORM] = {{"blk.%d.attn_norm.weight", "model.layers.%d.input_layernorm.weight"},
                        0},
    [ARCH_WQ] = {{"blk.%d.attn_q.weight", "model.layers.%d.self_attn.q_proj.weight"}, 0},
    [ARCH_WK] = {{"blk.%d.attn_k.weight", "model.layers.%d.self_attn.k_proj.weight"}, 0},
    [ARCH_WV] = {{"blk.%d.attn_v.weight", "model.layers.%d.self_attn.v_proj.weight"}, 0},
    [ARCH_WO] = {{"blk.%d.attn_output.weight", "model.layers.%d.self_attn.o_proj.weight"}, 0},
    [ARCH_FFN_NORM] = {{"blk.%d.ffn_norm.weight",
                        "model.layers.%d.post_attention_layernorm.weight"}, 0},
    [ARCH_W_GATE] = {{"blk.%d.ffn_gate.weight", "model.layers.%d.mlp.gate_proj.weight"}, 0},
    [ARCH_W_UP] = {{"blk.%d.ffn_up.weight", "model.layers.%d.mlp.up_proj.weight"}, 0},
    [ARCH_W_DOWN] = {{"blk.%d.ffn_down.weight", "model.layers.%d.mlp.down_proj.weight"}, 0},
    /* LlamaConfig.attention_bias: off in every Llama 3 checkpoint; herd's forward pass has
     * no bias add, so a checkpoint with them is refused instead of run wrong */
    [ARCH_BQ] = {{"blk.%d.attn_q.bias", "model.layers.%d.self_attn.q_proj.bias"},
                 ARCH_OPTIONAL | ARCH_REFUSED},
    [ARCH_BK] = {{"blk.%d.attn_k.bias", "model.layers.%d.self_attn.k_proj.bias"},
                 ARCH_OPTIONAL | ARCH_REFUSED},
    [ARCH_BV] = {{"blk.%d.attn_v.bias", "model.layers.%d.self_attn.v_proj.bias"},
                 ARCH_OPTIONAL | ARCH_REFUSED},
    [ARCH_BO] = {{"blk.%d.attn_output.bias", "model.layers.%d.self_attn.o_proj.bias"},
                 ARCH_OPTIONAL | ARCH_REFUSED},
};

#define LLAMA_COMMON                                                                        \
    .gguf_arch = "llama", .hf_arch = {"LlamaForCausalLM"}, .hf_model_type = "llama",        \
    .global = llama_global, .layer = llama_layer,                                           \
    /* GGUF (and Meta's own files) rotate interleaved pairs; HF stores q/k rotate-half */    \
    .rope = {ROPE_INTERLEAVED, ROPE_HALF},                                                  \
    /* "llama-bpe" is what the converter writes for Llama 3's pre-tokenizer */              \
    .pre_tokenizer = {"llama-bpe", "llama3"},                                               \
    /* llama.cpp's end-of-generation set for Llama 3: base models end with end_of_text,    \
     * instruct turns with eot, tool calls awaiting a result with eom; GPT-2 style          \
     * vocabularies in llama files (SmolLM2) end with <|endoftext|> and ChatML turns with   \
     * <|im_end|> (a Llama 3 vocabulary has neither as a special token) */                 \
    .stop_tokens = {"<|end_of_text|>", "<|eot_id|>", "<|eom_id|>", "<|endoftext|>",         \
                    "<|im_end|>"}

static const struct arch builtin[] = {
    {
        .label = "Llama 3.2",
        LLAMA_COMMON,
        /* 3.2 1B is dim 2048 x 16 layers, 3B dim 3072 x 28: no other Llama 3 has those */
        .match = {.name_has = {"3.2", "3_2"}, .shape = {{2048, 16}, {3072, 28}}},
        .chat_template = HERD_CHAT_LLAMA32,
    },
    {
        .label = "Llama 3.1",
        LLAMA_COMMON,
        .chat_template = HERD_CHAT_LLAMA31,
    },
};

/* Rows added by arch_register; 8 is room for tests, not a format limit. */
static const struct arch *extra[8];
static int n_extra;

static int n_rows(void)
{
    return (int)(sizeof builtin / sizeof builtin[0]) + n_extra;
}

static const struct arch *row_at(int i)
{
    int nb = (int)(sizeof builtin / sizeof builtin[0]);
    return i < nb ? &builtin[i] : extra[i - nb];
}

static bool same(const char *a, const char *b)
{
    return a && b && *a && strcmp(a, b) == 0;
}

static bool row_is(const struct arch *r, enum arch_format fmt, const char *a, const char *b)
{
    if (fmt == ARCH_GGUF)
        return same(r->gguf_arch, a);
    for (size_t i = 0; i < sizeof r->hf_arch / sizeof r->hf_arch[0]; i++)
        if (same(r->hf_arch[i], a))
            return true;
    return same(r->hf_model_type, b);
}

static bool row_matches(const struct arch *r, const char *name, int32_t dim, int32_t n_layers)
{
    const struct arch_match *m = &r->match;
    bool any_rule = false;
    for (size_t i = 0; i < sizeof m->name_has / sizeof m->name_has[0]; i++) {
        if (!m->name_has[i])
            continue;
        any_rule = true;
        if (name && strstr(name, m->name_has[i]))
            return true;
    }
    for (size_t i = 0; i < sizeof m->shape / sizeof m->shape[0]; i++) {
        if (m->shape[i].dim <= 0)
            continue;
        any_rule = true;
        if (m->shape[i].dim == dim && m->shape[i].n_layers == n_layers)
            return true;
    }
    return !any_rule;
}

int arch_known(enum arch_format fmt, const char *a, const char *b)
{
    for (int i = 0; i < n_rows(); i++)
        if (row_is(row_at(i), fmt, a, b))
            return 1;
    return 0;
}

const struct arch *arch_select(enum arch_format fmt, const char *a, const char *b,
                               const char *name, int32_t dim, int32_t n_layers)
{
    const struct arch *first = NULL;
    for (int i = 0; i < n_rows(); i++) {
        const struct arch *r = row_at(i);
        if (!row_is(r, fmt, a, b))
            continue;
        if (!first)
            first = r;
        if (row_matches(r, name, dim, n_layers))
            return r;
    }
    /* every row of the architecture has a rule and none fits: the first is the family's */
    return first;
}

const char *arch_known_names(enum arch_format fmt)
{
    /* the built-in family; registered rows are for tests and not advertised */
    return fmt == ARCH_GGUF ? "'llama' (Llama 3.x)" : "LlamaForCausalLM / llama (Llama 3.x)";
}

herd_status arch_register(const struct arch *row)
{
    if (!row || !row->gguf_arch || !row->global || !row->layer)
        return herd_fail(HERD_ERR_INVALID, "arch_register: a row needs gguf_arch and tensors");
    if (n_extra == (int)(sizeof extra / sizeof extra[0]))
        return herd_fail(HERD_ERR_UNSUPPORTED, "arch_register: the table is full");
    extra[n_extra++] = row;
    return HERD_OK;
}

void arch_unregister_all(void)
{
    n_extra = 0;
}

bool arch_tensor_name(const struct arch_tensor *t, enum arch_format fmt, int layer, char *buf,
                      size_t cap)
{
    const char *pattern = t->name[fmt];
    if (!pattern)
        return false;
    int n = snprintf(buf, cap, pattern, layer);
    return n > 0 && (size_t)n < cap;
}

/* name is pattern with its "%d" replaced by a decimal layer number: *layer gets it. */
static bool match_layer(const char *pattern, const char *name, int *layer)
{
    const char *d = strstr(pattern, "%d");
    if (!d)
        return false;
    size_t pre = (size_t)(d - pattern);
    if (strncmp(name, pattern, pre) != 0)
        return false;
    const char *p = name + pre;
    int64_t v = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 10) {
        v = v * 10 + (*p++ - '0');
        digits++;
    }
    if (digits == 0 || v > INT32_MAX || (digits > 1 && name[pre] == '0'))
        return false;
    if (strcmp(p, d + 2) != 0)
        return false;
    *layer = (int)v;
    return true;
}

bool arch_tensor_role(const struct arch *row, enum arch_format fmt, const char *name,
                      int *global, int *lt, int *layer)
{
    *global = *lt = *layer = -1;
    for (int g = 0; g < ARCH_N_GLOBAL; g++) {
        if (same(row->global[g].name[fmt], name)) {
            *global = g;
            return true;
        }
    }
    for (int k = 0; k < ARCH_N_LAYER; k++) {
        const char *pattern = row->layer[k].name[fmt];
        if (pattern && match_layer(pattern, name, layer)) {
            *lt = k;
            return true;
        }
    }
    *layer = -1;
    return false;
}
