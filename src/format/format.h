/*
 * format.h - readers (and writers) of the files checkpoints come in. Format code knows
 * byte layouts and key names, not model math: it hands the model layer a table of named
 * tensors pointing into read-only mappings, plus the files' metadata.
 *
 *   GGUF v3 (gguf.c)           spec: ggml docs/gguf.md; little-endian; tensor data aligned
 *                              to general.alignment (default 32) after the header.
 *   safetensors (safetensors.c) spec: huggingface/safetensors README; 8-byte header length,
 *                              JSON header, raw little-endian data.
 *   HF config (hf_config.c)    config.json + generation_config.json of a Hugging Face folder.
 *   checkpoints (checkpoint.c) which files of a folder hold the weights and the tokenizer.
 *
 * Invariants: every count and offset read from a file is checked against the bytes that
 * remain before it is used; tensor data pointers stay valid until the file is closed.
 */
#ifndef HERD_FORMAT_H
#define HERD_FORMAT_H

#include "base/base.h"

/* A tensor as stored. ne[0] is the innermost (contiguous) dimension, as in GGUF; a
 * safetensors shape [rows, cols] becomes ne = {cols, rows}. */
struct tensor_info {
    char *name;
    herd_dtype type;
    int n_dims;
    int64_t ne[4];    /* unused dims are 1 */
    const void *data; /* into a mapping owned by the file object */
    size_t nbytes;
    /* > 1: an F8_E4M3 matrix joined from n_parts model-parallel shards along its columns
     * (Meta's FP8 w2): n_parts matrices of ne[0] / n_parts columns one after the other,
     * each with its own row scales (model/load_meta.c); 0 or 1: one matrix */
    int n_parts;
};

/* Bytes of n elements of type t in their block layout, or 0 if n is not a whole number of
 * blocks or t is unknown. (Defined in quant/, the one place block sizes live.) */
size_t dtype_row_bytes(herd_dtype t, int64_t n);

/* ---- GGUF */

enum gguf_vtype {
    GGUF_UINT8 = 0, GGUF_INT8 = 1, GGUF_UINT16 = 2, GGUF_INT16 = 3, GGUF_UINT32 = 4,
    GGUF_INT32 = 5, GGUF_FLOAT32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9,
    GGUF_UINT64 = 10, GGUF_INT64 = 11, GGUF_FLOAT64 = 12,
};

struct gguf_str {
    const char *p; /* not NUL-terminated; points into the mapping */
    uint64_t n;
};

struct gguf_kv {
    struct gguf_str key;
    enum gguf_vtype type;
    /* scalar value (widened), for non-array, non-string types */
    union { uint64_t u; int64_t i; double f; } v;
    struct gguf_str str;      /* GGUF_STRING */
    enum gguf_vtype arr_type; /* GGUF_ARRAY: element type */
    uint64_t arr_n;           /* GGUF_ARRAY: element count */
    const uint8_t *arr_data;  /* GGUF_ARRAY: first element in the mapping */
};

struct gguf_file {
    struct herd_map map;
    uint32_t version;
    uint64_t n_kv;
    struct gguf_kv *kv;       /* (n_kv) */
    uint64_t n_tensors;
    struct tensor_info *tensors; /* (n_tensors) */
    size_t alignment;
};

herd_status gguf_open(const char *path, struct gguf_file **out);
void gguf_close(struct gguf_file *f);
const struct gguf_kv *gguf_find(const struct gguf_file *f, const char *key);
/* Typed getters: HERD_ERR_FORMAT (naming the key and the expected type) if present with
 * another type; *found = 0 and HERD_OK when absent. Integers of any width convert. */
herd_status gguf_get_int(const struct gguf_file *f, const char *key, int64_t *v, int *found);
herd_status gguf_get_float(const struct gguf_file *f, const char *key, double *v, int *found);
herd_status gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *v,
                         int *found);
/* tokenizer.ggml.token_type values (llama.cpp's llama_token_type). Control and user-defined
 * tokens are special: written as plain text, matched only as specials. */
enum gguf_token_type {
    GGUF_TOKEN_NORMAL = 1, GGUF_TOKEN_UNKNOWN = 2, GGUF_TOKEN_CONTROL = 3,
    GGUF_TOKEN_USER_DEFINED = 4, GGUF_TOKEN_UNUSED = 5, GGUF_TOKEN_BYTE = 6,
};
static inline bool gguf_token_type_special(int32_t type)
{
    return type == GGUF_TOKEN_CONTROL || type == GGUF_TOKEN_USER_DEFINED;
}
/* The file carries a tokenizer (tokenizer.ggml.tokens). */
bool gguf_has_tokenizer(const struct gguf_file *f);
/* Array of strings: element i of kv (arr_type GGUF_STRING). Walks from the start, so
 * callers that need all of them use gguf_str_array_all. */
herd_status gguf_str_array_all(const struct gguf_kv *kv, struct gguf_str **out);
/* Element i of an integer (any width, bool) or float (f32/f64) array, widened;
 * HERD_ERR_FORMAT naming the key if kv is not such an array or i is out of range. */
herd_status gguf_arr_get_int(const struct gguf_kv *kv, uint64_t i, int64_t *v);
herd_status gguf_arr_get_float(const struct gguf_kv *kv, uint64_t i, double *v);
/* The tensor called name, or NULL. */
const struct tensor_info *gguf_find_tensor(const struct gguf_file *f, const char *name);

/* GGUF writer: collects key/values and tensors, then writes the file in one pass. */
struct gguf_writer;
herd_status gguf_writer_new(struct gguf_writer **out);
void gguf_writer_free(struct gguf_writer *w);
herd_status gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v);
herd_status gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v);
herd_status gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v);
herd_status gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v);
herd_status gguf_writer_set_bool(struct gguf_writer *w, const char *key, int v);
herd_status gguf_writer_set_arr_str(struct gguf_writer *w, const char *key,
                                    const struct gguf_str *v, size_t n);
herd_status gguf_writer_set_arr_i32(struct gguf_writer *w, const char *key, const int32_t *v,
                                    size_t n);
herd_status gguf_writer_set_arr_f32(struct gguf_writer *w, const char *key, const float *v,
                                    size_t n);
/* The data is not copied: it must stay valid until gguf_writer_write returns. */
herd_status gguf_writer_add_tensor(struct gguf_writer *w, const char *name, herd_dtype type,
                                   int n_dims, const int64_t *ne, const void *data,
                                   size_t nbytes);
herd_status gguf_writer_write(struct gguf_writer *w, const char *path);

/* ---- safetensors (one file; a sharded checkpoint is several) */

struct st_file {
    struct herd_map map;
    size_t n_tensors;
    struct tensor_info *tensors; /* (n_tensors) */
};
/* Tensors of dtype F32, F16 and BF16; any other dtype is HERD_ERR_UNSUPPORTED naming the
 * tensor. "__metadata__" is skipped. */
herd_status st_open(const char *path, struct st_file **out);
void st_close(struct st_file *f);
/* The tensor called name, or NULL. */
const struct tensor_info *st_find_tensor(const struct st_file *f, const char *name);

/* ---- PyTorch checkpoints (torch.save's zip: data.pkl + data/N), Meta's consolidated.NN.pth */

struct pth_file {
    struct herd_map map;
    size_t n_tensors;
    struct tensor_info *tensors; /* (n_tensors) names as in the state dict */
};
/* Reads the state dict with a restricted unpickler (pth.c): tensors of F32, F16, BF16 and
 * float8_e4m3fn (DTYPE_F8_E4M3_RAW) storages, contiguous, pointing into the mapping;
 * anything else torch.save would not write for a dict of tensors is refused with a
 * one-line error. Nothing is executed. */
herd_status pth_open(const char *path, struct pth_file **out);
void pth_close(struct pth_file *f);
const struct tensor_info *pth_find_tensor(const struct pth_file *f, const char *name);

/* ---- Hugging Face config.json / generation_config.json */

struct hf_config {
    char architecture[64];  /* architectures[0], e.g. "LlamaForCausalLM" */
    char model_type[32];    /* "llama" */
    int64_t hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads;
    int64_t head_dim;       /* 0 when absent (then hidden_size / heads) */
    int64_t intermediate_size, vocab_size, max_position_embeddings;
    double rms_norm_eps, rope_theta;
    int has_rope_scaling;   /* rope_scaling present and rope_type "llama3" */
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int64_t rope_original_max_position_embeddings;
    int tie_word_embeddings;
    char torch_dtype[16];
    int64_t bos_token_id;   /* -1 when absent */
    int64_t eos_token_ids[8];
    int n_eos;
    /* generation_config.json (absent file: has_generation = 0) */
    int has_generation;
    double temperature, top_p; /* < 0 when absent */
};
/* Reads dir/config.json (required) and dir/generation_config.json (optional). */
herd_status hf_config_read(const char *dir, struct hf_config *c);

/* ---- the files of a Hugging Face folder (checkpoint.c) */

/* The safetensors files holding dir's weights (names within dir): weight_map's files of
 * model.safetensors.index.json in order of first appearance, else model.safetensors.
 * Free with hf_shards_free. */
herd_status hf_shards(const char *dir, char ***files, int *n);
void hf_shards_free(char **files, int n);
/* The folder's tokenizer: *tokenizer = dir/tokenizer.json and (config != NULL) *config =
 * dir/tokenizer_config.json, each NULL when absent; owned by the caller. */
herd_status hf_tokenizer_source(const char *dir, char **tokenizer, char **config);

/* What a GGUF tokenizer needs from the folder beside the token table (the table itself
 * comes from the loaded tokenizer): tokenizer.json's merges as "a b" strings, and
 * tokenizer_config.json's bos/eos token texts and chat template (NULL when absent). */
struct hf_tokenizer_extras {
    struct gguf_str *merges;  /* (n_merges) into merge_text */
    size_t n_merges;
    char *merge_text;
    char *bos_token, *eos_token, *chat_template;
};
/* config may be NULL. */
herd_status hf_tokenizer_extras_read(const char *tokenizer, const char *config,
                                     struct hf_tokenizer_extras *x);
void hf_tokenizer_extras_free(struct hf_tokenizer_extras *x);

#endif /* HERD_FORMAT_H */
