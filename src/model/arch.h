/*
 * arch.h - the architectures herd runs, as data. One row per model family (and per variant
 * of a family that needs different defaults, such as Llama 3.2's chat template): the names
 * the files use for it, the names of its tensors in each file format, which tensors may be
 * absent, the RoPE layout each format stores, the pre-tokenizer, the stop tokens and the
 * default chat template. The loaders (load_gguf.c, load_hf.c), `herd quantize` and
 * herd_chat_template_for read this table, so a new llama-architecture family is a new row
 * (and its hyper-parameter keys follow from its GGUF name: "<gguf_arch>.block_count", ...).
 *
 * Rows are chosen by the architecture string of the file (GGUF general.architecture, or
 * config.json architectures[0] / model_type), then by the row's match rule (a name fragment
 * or a (dim, n_layers) shape); among the rows of one architecture the first that matches
 * wins, so specific rows come before the catch-all one. Built-in rows live in arch.c;
 * arch_register adds rows at run time (tests do, to show that a second family loads through
 * the same code).
 */
#ifndef HERD_MODEL_ARCH_H
#define HERD_MODEL_ARCH_H

#include "base/base.h"
#include "kernels/backend.h" /* enum rope_style: how q/k rows are ordered for RoPE */

enum arch_format { ARCH_GGUF = 0, ARCH_HF = 1, ARCH_N_FORMATS };

/* Tensors of the whole model, in the order llama.cpp's converter writes them: the
 * embedding, the llama3 RoPE divisors, then the layers, then the final norm and output. */
enum arch_global { ARCH_TOK_EMBD, ARCH_ROPE_FREQS, ARCH_OUTPUT_NORM, ARCH_OUTPUT, ARCH_N_GLOBAL };

/* Tensors of one layer, in the order the converter writes a layer (quantize keeps it). */
enum arch_layer {
    ARCH_ATTN_NORM, ARCH_WQ, ARCH_WK, ARCH_WV, ARCH_WO,
    ARCH_FFN_NORM, ARCH_W_GATE, ARCH_W_UP, ARCH_W_DOWN,
    ARCH_BQ, ARCH_BK, ARCH_BV, ARCH_BO, /* attention biases: none in Llama 3 */
    ARCH_N_LAYER
};

/* Flags of a tensor in a row. */
enum {
    ARCH_OPTIONAL = 1,    /* may be absent (the tied output, rope_freqs, biases) */
    ARCH_REFUSED = 2,     /* the forward pass has no use for it: a file that has it is refused
                           * as unsupported rather than run without it */
};

struct arch_tensor {
    const char *name[ARCH_N_FORMATS]; /* per format; a layer tensor's name has one "%d" for
                                       * the layer number; NULL: the format has no such
                                       * tensor */
    unsigned flags;
};

/* What picks a row among the rows of one architecture: any name fragment found in the
 * model's name, or any (dim, n_layers) shape. A rule with neither matches every model. */
struct arch_match {
    const char *name_has[4];
    struct {
        int32_t dim, n_layers;
    } shape[4];
};

struct arch {
    const char *label;                     /* "Llama 3.1", for messages */
    const char *gguf_arch;                 /* general.architecture; the GGUF key prefix */
    const char *hf_arch[4];                /* config.json architectures[0] accepted */
    const char *hf_model_type;             /* config.json model_type accepted */
    struct arch_match match;
    const struct arch_tensor *global;      /* (ARCH_N_GLOBAL) indexed by enum arch_global */
    const struct arch_tensor *layer;       /* (ARCH_N_LAYER) indexed by enum arch_layer */
    enum rope_style rope[ARCH_N_FORMATS];  /* the q/k row order each format stores */
    const char *pre_tokenizer[4];          /* GGUF tokenizer.ggml.pre accepted; [0] written */
    const char *stop_tokens[6];            /* special tokens that end generation */
    herd_chat_template chat_template;      /* the default prompt format */
};

/* The rows of this architecture string exist (any match rule). fmt says which names to
 * compare: ARCH_GGUF compares gguf_arch with a; ARCH_HF compares hf_arch with a and
 * hf_model_type with b (either may be NULL or ""). */
int arch_known(enum arch_format fmt, const char *a, const char *b);
/* The first row of that architecture whose match rule fits the model (name may be NULL),
 * or NULL when the architecture is not known. */
const struct arch *arch_select(enum arch_format fmt, const char *a, const char *b,
                               const char *name, int32_t dim, int32_t n_layers);
/* The names herd knows, for messages: "llama" or "LlamaForCausalLM / llama". */
const char *arch_known_names(enum arch_format fmt);

/* Adds a row, searched after the built-in ones. The row must outlive every use of the
 * table; not thread-safe (call before loading models). HERD_ERR_UNSUPPORTED when full. */
herd_status arch_register(const struct arch *row);
/* Forgets the registered rows (tests). */
void arch_unregister_all(void);

/* The name of a tensor in fmt ("blk.3.attn_q.weight"); false when the format has none or
 * buf is too small. */
bool arch_tensor_name(const struct arch_tensor *t, enum arch_format fmt, int layer, char *buf,
                      size_t cap);
/* Which tensor of row a file's name is: *global >= 0 for a model-wide tensor, else *lt >= 0
 * and *layer for a layer tensor; false (both -1) when the row has no tensor of that name. */
bool arch_tensor_role(const struct arch *row, enum arch_format fmt, const char *name,
                      int *global, int *lt, int *layer);

#endif /* HERD_MODEL_ARCH_H */
