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
#include "kernels/backend.h" /* struct weight, enum rope_style, the backend the model runs on */
#include "model/arch.h"     /* the architecture table */

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
    const float *attn_norm_dev, *ffn_norm_dev; /* the norms in backend memory */
};

/* This rank's share of the model (shard.c), Megatron-style: ranks form pp pipeline stages of
 * tp tensor-parallel ranks (world rank = stage * tp + tp_rank). A stage owns the layers
 * [l0, l1); within it, a rank owns the KV heads [kvh0, kvh0 + n_kvh) with their query heads
 * (rows of wq/wk/wv, columns of wo) and the FFN slice [ff0, ff0 + n_ff) (rows of gate/up,
 * columns of down); every rank of the job owns the vocabulary rows [v0, v0 + n_v) of the
 * output projection. A single process owns everything (tp = pp = 1). */
struct shard {
    int n_ranks, rank;
    int tp, pp, tp_rank, stage;
    int l0, l1;
    int kvh0, n_kvh;
    int n_h;            /* query heads: n_kvh * n_heads / n_kv_heads */
    int64_t ff0, n_ff;
    int64_t v0, n_v;
};

struct herd_model {
    herd_model_info info;
    char *path;
    char *name;
    const struct arch *arch;  /* the table row the model was loaded by */
    enum arch_format fmt;     /* which of the row's tensor names the files use */
    enum rope_style rope_style;
    float *inv_freq;          /* (head_dim / 2) rotation frequencies, scaling applied */
    struct weight tok_embd;   /* (n_vocab, dim) */
    struct weight output;     /* (n_vocab, dim); tok_embd when tied */
    float *out_norm;          /* (dim) */
    const float *out_norm_dev; /* (dim) in backend memory */
    struct layer *layers;     /* (n_layers) */
    /* what keeps the weights mapped */
    struct gguf_file *gguf;
    struct st_file **st;      /* (n_st) safetensors shards */
    int n_st;
    struct pth_file **pth;    /* (n_pth) Meta's consolidated.NN.pth shards (load_meta.c) */
    int n_pth;
    struct pth_file **pth_fp8; /* (n_pth or NULL) Meta FP8 release: fp8_scales_N.pt */
    struct tensor_info *meta_t; /* (n_meta_t) their tensors under GGUF names, joined */
    size_t n_meta_t;
    void **joined;            /* (n_joined) owned data of tensors joined across shards */
    int n_joined;
    char dtypes[160];         /* info.dtypes */
    struct hf_config *hf;     /* config.json as read (HF folders; NULL for GGUF): quantize
                               * writes the converter's metadata from it */
    herd_tokenizer *tok;      /* NULL when the model has none */
    char *chat_template;      /* tokenizer.chat_template (GGUF), or NULL; info points here */
    char *chat_system;        /* the template's default system message, or NULL */
    int32_t n_threads;
    struct shard sh;          /* what this rank computes; all of it in one process */
    void **owned;             /* (n_owned) column slices repacked at load (shard.c) */
    int n_owned;
    int32_t dist_id;          /* names the model in requests to follower ranks */
    char *device;             /* the backend device asked for; NULL = the default (cpu) */
    struct backend be;        /* where the forward pass runs (upload.c) */
    bool be_open;
    /* A Meta folder of as many shards as the job's tensor-parallel ranks: rank r bound only
     * consolidated.r.pth's slices (and the whole embedding), sh was set from the shard
     * before binding, and shard_apply has nothing to cut (load_meta.c). part_rank and
     * part_ranks are what the loader was offered (part_ranks 0: load the whole model). */
    bool presliced;
    int part_rank, part_ranks;
    struct shard part_sh;     /* the share a presliced rank bound (shard_apply checks it) */
};

/* Keeps the model's chat template (GGUF tokenizer.chat_template, or tokenizer_config.json's)
 * and the default system message a ChatML one writes (load.c); info points at both. */
herd_status model_set_chat_template(herd_model *m, const char *text, size_t n);

/* Binds a GGUF file / a HF folder into m (load_gguf.c, load_hf.c); m->info.path is set. */
herd_status model_bind_gguf(herd_model *m, const char *path);
herd_status model_bind_hf(herd_model *m, const char *dir);
/* A Meta original folder (params.json + consolidated.NN.pth), load_meta.c. */
herd_status model_bind_meta(herd_model *m, const char *dir);
bool model_is_meta_dir(const char *dir);
/* fbgemm_fp8 folders (load_fp8.c): pairs each F8_E4M3 weight with its row scales and the
 * activation bound into HERD_DTYPE_F8_E4M3 rows (owned, in m->joined). */
herd_status model_fp8_repack(herd_model *m, const char *dir);

/* A folder's model (HF, Meta): its name is the folder's last component (it picks a table
 * row's variant, so it comes first), then bind(m, dir); an error that does not name the
 * folder gets it as a prefix (load.c). */
herd_status model_bind_dir(herd_model *m, const char *dir,
                           herd_status (*bind)(herd_model *m, const char *dir));

/* Shared by both binders (load.c), called in this order so that nothing is sized from a
 * hyper-parameter before the tensors have confirmed it. */
/* Ranges of the hyper-parameters read so far (n_vocab included), without allocating; an
 * absent context length becomes 8192. */
herd_status model_check_hparams(herd_model *m);
/* The model's tensor called name in its files (the GGUF, or the safetensors shards). */
const struct tensor_info *model_find(const herd_model *m, const char *name);
/* The tensor of table entry at (layer l for layer tensors) in m's format: *t is NULL
 * when absent, name gets its file name. */
herd_status model_tensor(const herd_model *m, const struct arch_tensor *at, int l, char *name,
                         size_t cap, const struct tensor_info **t);
/* Checks a tensor's type and shape, fills w. */
herd_status weight_bind(struct weight *w, const struct tensor_info *t, int64_t n_rows,
                        int64_t n_cols);
/* Copies a norm vector of any float type into an owned f32 array. */
herd_status norm_load(float **out, const struct tensor_info *t, int64_t n);
/* Binds the embedding, the final norm and (unless tied) the output projection. n_vocab is
 * known; require_output: the file says the output is untied, so it must be there. */
herd_status model_bind_globals(herd_model *m, bool require_output);
/* Walks every tensor of the files once: a tensor the row refuses (biases) is unsupported,
 * and the layer tensors present must be exactly layers 0 .. n_layers - 1; then allocates
 * and binds the layers, checking each tensor's presence, type and shape. */
herd_status model_bind_layers(herd_model *m);
/* After the layers are bound (so head_dim is confirmed by wq): computes inv_freq (llama3
 * scaling from info, or per-dimension divisors from GGUF rope_freqs when factors != NULL). */
herd_status model_init_rope(herd_model *m, const float *factors);

/* upload.c: opens the model's backend (once) and gives every weight and norm of this
 * rank's share its copy in backend memory; again after shard_apply narrows the share. */
herd_status model_upload(herd_model *m);
void model_backend_close(herd_model *m);

/* Dequantizes row r of w into out (n_cols floats). */
herd_status weight_row_f32(const struct weight *w, int64_t r, float *out);

/* Maps and binds a model on this rank alone (load.c); the whole model, sh = all of it. */
herd_status model_load_local(const char *path, const herd_model_params *p, herd_model **out);
/* As model_load_local for rank `rank` of a tensor-parallel group of n_ranks: a Meta folder
 * of exactly n_ranks shards whose split fits binds only the rank's own shard (presliced,
 * sh = that share); anything else loads whole. */
herd_status model_load_rank(const char *path, const herd_model_params *p, int rank,
                            int n_ranks, herd_model **out);
/* The same without the backend: the weights bound in the mapping, nothing uploaded (herd
 * quantize reads them from there). Freed with model_free_local. */
herd_status model_open(const char *path, const herd_model_params *p, herd_model **out);
void model_free_local(herd_model *m);

/* shard.c. The whole model as one rank's share. */
void shard_full(const herd_model *m, struct shard *sh);
/* Chooses tp x pp for n_ranks (force_tp / force_pp > 0 impose a factor; HERD_TP / HERD_PP)
 * and fills rank's share. Fails with the reason when the shapes cannot be split so. */
herd_status shard_plan(const herd_model *m, int n_ranks, int rank, int force_tp, int force_pp,
                       struct shard *sh);
/* Narrows the weights of m to m->sh: row slices point into the mapping, column slices (wo,
 * ffn_down) are copied once into owned memory and their mapped pages released. */
/* Drops the mapped file pages under [p, p + n) from the resident set (shard.c). */
void model_release_pages(const void *p, size_t n);
herd_status shard_apply(herd_model *m);
/* One line on stderr describing the split (rank 0). */
void shard_describe(const herd_model *m);

#endif /* HERD_MODEL_H */
