/*
 * model.h - the Llama 3.x decoder inside herd: hyper-parameters, weights bound from any file
 * format to one internal layout, the KV cache and the forward pass (forward.c), written once
 * against the kernel interface.
 *
 * Weight orientation everywhere: a matrix is n_rows rows of n_cols elements, row r producing
 * output r (GGUF's ne = {n_cols, n_rows}; HF's shape [out, in]).
 *
 * RoPE layout: Meta's checkpoints and GGUF (llama.cpp's converter permutes HF's q/k back)
 * rotate interleaved pairs (x[2i], x[2i+1]); Hugging Face checkpoints store q/k rows
 * permuted so that the pairs are (x[i], x[i + head_dim/2]). Rather than copying q/k to undo
 * the permutation, the model rotates in the layout its file uses: attention scores are dot
 * products of q and k, which a permutation applied to both leaves unchanged.
 */
#ifndef HERD_MODEL_H
#define HERD_MODEL_H

#include "base/base.h"
#include "format/format.h"
#include "kernels/kernels.h"

struct weight {
    const void *data; /* row 0, in the mapping */
    herd_dtype type;
    int64_t n_rows, n_cols;
    size_t row_bytes;
};

struct layer {
    float *attn_norm;         /* (dim) f32 copy */
    float *ffn_norm;          /* (dim) */
    struct weight wq;         /* (n_heads * head_dim, dim) */
    struct weight wk;         /* (n_kv_heads * head_dim, dim) */
    struct weight wv;         /* (n_kv_heads * head_dim, dim) */
    struct weight wo;         /* (dim, n_heads * head_dim) */
    struct weight w_gate;     /* (hidden_dim, dim) */
    struct weight w_up;       /* (hidden_dim, dim) */
    struct weight w_down;     /* (dim, hidden_dim) */
};

enum rope_style { ROPE_INTERLEAVED = 0, ROPE_HALF = 1 };

struct herd_model {
    herd_model_info info;
    char *path;
    char *name;
    enum rope_style rope_style;
    float *inv_freq;          /* (head_dim / 2) rotation frequencies, scaling applied */
    struct weight tok_embd;   /* (n_vocab, dim) */
    struct weight output;     /* (n_vocab, dim); tok_embd when tied */
    float *out_norm;          /* (dim) */
    struct layer *layers;     /* (n_layers) */
    /* what keeps the weights mapped */
    struct gguf_file *gguf;
    struct st_file **st;      /* (n_st) safetensors shards */
    int n_st;
    herd_tokenizer *tok;      /* NULL when the model has none */
    int32_t n_threads;
};

/* Binds a GGUF file / a HF folder into m (load_gguf.c, load_hf.c); m->info.path is set. */
herd_status model_bind_gguf(herd_model *m, const char *path);
herd_status model_bind_hf(herd_model *m, const char *dir);

/* Shared by both binders: checks a tensor's type and shape, fills w. what names the tensor
 * in messages. */
herd_status weight_bind(struct weight *w, const struct tensor_info *t, int64_t n_rows,
                        int64_t n_cols);
/* Copies a norm vector of any float type into an owned f32 array. */
herd_status norm_load(float **out, const struct tensor_info *t, int64_t n);
/* After hyper-parameters are set: checks them and computes inv_freq (llama3 scaling from
 * info, or per-dimension factors from GGUF rope_freqs when factors != NULL). */
herd_status model_finish_hparams(herd_model *m, const float *rope_factors);

/* Dequantizes row r of w into out (n_cols floats). */
herd_status weight_row_f32(const struct weight *w, int64_t r, float *out);

#endif /* HERD_MODEL_H */
