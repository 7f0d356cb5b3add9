/*
 * herd.h - the one public header of libherd.
 *
 * herd runs Meta's Llama 3.x text models (3.1 8B/70B/405B, 3.2 1B/3B) from GGUF files and
 * Hugging Face folders. Everything a user touches (the herd command, the server, bindings)
 * is a client of this header alone.
 *
 * Conventions:
 *  - Every fallible call returns herd_status. On failure a one-line message saying what
 *    failed (file, tensor, field) and what was expected is kept per thread; read it with
 *    herd_last_error().
 *  - Objects are made with herd_x_new/herd_x_load and released with herd_x_free (NULL-safe).
 *    On failure the out-pointer is set to NULL.
 *  - A returned const char * is borrowed until its owner is freed; memory returned as owned
 *    is released with herd_free().
 *  - Enums are append-only with explicit values.
 *  - Thread-safety: a herd_model is read-only after load and may be shared by threads; a
 *    herd_context (KV cache + scratch) is used by one thread at a time.
 */
#ifndef HERD_H
#define HERD_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the library's exported functions. libherd is built with hidden visibility and
 * HERD_BUILDING_LIBRARY, so only these leave the shared library; a program sees them as
 * plain declarations. */
#if defined(HERD_BUILDING_LIBRARY) && defined(__GNUC__)
#define HERD_API __attribute__((visibility("default")))
#else
#define HERD_API
#endif

/* ---------------------------------------------------------------- version */

/* The version of this header. herd_version() gives the library's, which may be newer when
 * a program runs against a shared libherd it was not compiled with. The major number
 * changes when the API or ABI breaks, the minor when something is added. */
#define HERD_VERSION_MAJOR 0
#define HERD_VERSION_MINOR 1
#define HERD_VERSION_PATCH 0
#define HERD_VERSION_STRING "0.1.0"
/* One comparable number: 0xMMmmpp (HERD_VERSION_NUMBER >= 0x000100 for 0.1.0 and later). */
#define HERD_VERSION_NUMBER \
    ((HERD_VERSION_MAJOR << 16) | (HERD_VERSION_MINOR << 8) | HERD_VERSION_PATCH)

/* The library's version string ("0.1.0"); static. */
HERD_API const char *herd_version(void);

/* ---------------------------------------------------------------- status and errors */

typedef enum herd_status {
    HERD_OK = 0,
    HERD_ERR_IO = 1,          /* a file could not be opened, read or mapped */
    HERD_ERR_FORMAT = 2,      /* a file is corrupt, truncated or not what it claims */
    HERD_ERR_UNSUPPORTED = 3, /* valid input herd does not handle (architecture, dtype) */
    HERD_ERR_NOMEM = 4,       /* an allocation failed */
    HERD_ERR_INVALID = 5,     /* a caller passed a bad argument (token id, position, option) */
    HERD_ERR_CONTEXT = 6,     /* a request does not fit the context length */
    HERD_ERR_INTERNAL = 7,    /* a broken invariant: a bug in herd */
    HERD_ERR_CANCELLED = 8,   /* the caller asked to stop */
} herd_status;

/* A static name for a status code ("format error", ...). */
HERD_API const char *herd_status_str(herd_status s);

/* The message left by the last failed call on this thread ("" if none). Borrowed until the
 * next herd call on this thread. */
HERD_API const char *herd_last_error(void);

/* Releases memory that herd returned as owned. NULL-safe. */
HERD_API void herd_free(void *p);

/* ---------------------------------------------------------------- logging */

/* The library's own "herd: ..." lines on stderr (results never go there): errors, warnings
 * (a forced CPU variant this machine lacks, ...), info (progress), debug. */
typedef enum herd_log_level {
    HERD_LOG_ERROR = 0,
    HERD_LOG_WARN = 1,
    HERD_LOG_INFO = 2,
    HERD_LOG_DEBUG = 3,
} herd_log_level;

/* Lines above this level are dropped; default HERD_LOG_WARN. Process-wide, thread-safe. The
 * herd command sets it from HERD_LOG=error|warn|info|debug. */
HERD_API void herd_log_set_level(herd_log_level level);

/* ---------------------------------------------------------------- threads */

/* What a thread count means everywhere in herd (model, context, server, quantize): n > 0
 * is n threads; 0 (or less) is every online core, shared evenly among the ranks of an MPI
 * job on this machine; never less than 1. */
HERD_API int32_t herd_n_threads(int32_t requested);

/* ---------------------------------------------------------------- tensor types */

/* Weight and cache element types. The values are GGUF's ggml_type ids so that a GGUF file's
 * type field maps one to one. */
typedef enum herd_dtype {
    HERD_DTYPE_F32 = 0,
    HERD_DTYPE_F16 = 1,
    HERD_DTYPE_Q4_0 = 2,
    HERD_DTYPE_Q4_1 = 3,
    HERD_DTYPE_Q5_0 = 6,
    HERD_DTYPE_Q5_1 = 7,
    HERD_DTYPE_Q8_0 = 8,
    HERD_DTYPE_Q8_1 = 9,
    HERD_DTYPE_Q2_K = 10,
    HERD_DTYPE_Q3_K = 11,
    HERD_DTYPE_Q4_K = 12,
    HERD_DTYPE_Q5_K = 13,
    HERD_DTYPE_Q6_K = 14,
    HERD_DTYPE_Q8_K = 15,
    HERD_DTYPE_BF16 = 30,
    /* herd's own, not a GGUF type: FP8 e4m3 weights with one f32 scale per row (Meta's /
     * fbgemm_fp8 checkpoints), each row stored as {f32 scale, f32 activation bound, n e4m3
     * bytes} (quant/fp8.c) */
    HERD_DTYPE_F8_E4M3 = 100,
} herd_dtype;

/* "f32", "q4_k", ... or NULL for an unknown value. */
HERD_API const char *herd_dtype_name(herd_dtype t);

/* ---------------------------------------------------------------- tokenizer */

typedef struct herd_tokenizer herd_tokenizer;

/* Loads a tokenizer from a Hugging Face tokenizer.json, a Meta tokenizer.model (tiktoken
 * format; Meta's 256 special tokens are added as Llama 3.1 names them), a GGUF file's
 * tokenizer.ggml.* metadata, or a folder holding tokenizer.json. The kind is detected from
 * the content. A loaded tokenizer is read-only: share it between threads freely. */
HERD_API herd_status herd_tokenizer_load(const char *path, herd_tokenizer **out);
HERD_API void herd_tokenizer_free(herd_tokenizer *tok);

/* Number of ids (regular + special). */
HERD_API int32_t herd_tokenizer_n_vocab(const herd_tokenizer *tok);

/* Bytes of the longest token (specials as their text; at least 1). No id covers more, so a
 * text of n bytes needs at least ceil(n / this) ids: a cheap lower bound for refusing a
 * prompt that cannot fit a context before tokenizing it. */
HERD_API size_t herd_tokenizer_max_token_bytes(const herd_tokenizer *tok);

/* Encodes len bytes of text. Special-token text is plain text unless parse_special. With
 * add_bos, <|begin_of_text|> comes first, except for a model whose file says it takes no
 * BOS (GGUF tokenizer.ggml.add_bos_token false, as SmolLM2's): then nothing is added. On
 * success *ids is owned by the caller (herd_free) and holds *n_ids ids. Text need not be valid UTF-8: each byte outside a valid
 * sequence becomes its own single-byte token, so decoding gives back the same bytes. */
HERD_API herd_status herd_tokenize(const herd_tokenizer *tok, const char *text, size_t len,
                                   bool add_bos, bool parse_special, int32_t **ids,
                                   size_t *n_ids);

/* Decodes ids to bytes (specials as their text). *text is NUL-terminated, owned by the
 * caller (herd_free), *len excludes the NUL. */
HERD_API herd_status herd_detokenize(const herd_tokenizer *tok, const int32_t *ids,
                                     size_t n_ids, char **text, size_t *len);

/* Bytes of one token (specials as their text); borrowed; NULL for a bad id. */
HERD_API const char *herd_token_bytes(const herd_tokenizer *tok, int32_t id, size_t *len);

/* The id of a special token by its text ("<|eot_id|>"), or -1. Llama 3.1's names
 * <|finetune_right_pad_id|>, <|eom_id|>, <|python_tag|> are found even when a Llama 3.0
 * tokenizer.json names those ids <|reserved_special_token_N|>. */
HERD_API int32_t herd_token_special(const herd_tokenizer *tok, const char *text);

/* Streaming decoder: feed ids one at a time, get only complete UTF-8 sequences out. */
typedef struct herd_detok_stream herd_detok_stream;
HERD_API herd_status herd_detok_stream_new(const herd_tokenizer *tok, herd_detok_stream **out);
HERD_API void herd_detok_stream_free(herd_detok_stream *s);
/* Writes the text that became complete with id to out (at most cap bytes incl. NUL;
 * 4096 is always enough for Llama 3) and its byte count to *n. Bytes that can never form
 * valid UTF-8 come out as U+FFFD; a flush (id < 0) emits what is pending the same way. */
HERD_API herd_status herd_detok_stream_push(herd_detok_stream *s, int32_t id, char *out,
                                            size_t cap, size_t *n);

/* ---------------------------------------------------------------- model */

typedef struct herd_model herd_model;

typedef struct herd_model_params {
    int32_t n_threads; /* worker threads for load-time repacking and forward;
                          0 = herd_n_threads(0) */
    const char *device; /* where the forward pass runs: NULL or "cpu" (the default); "cuda"
                           or "cuda:N" in a build with that backend */
} herd_model_params;

/* Hyper-parameters and facts of a loaded model. Names follow Meta's params.json / HF's
 * config.json. */
typedef struct herd_model_info {
    const char *path;
    const char *format;       /* "gguf", "hf" or "meta" (params.json + consolidated.NN.pth) */
    const char *name;         /* general.name or the folder name */
    int32_t dim;              /* hidden size */
    int32_t n_layers;
    int32_t n_heads;
    int32_t n_kv_heads;
    int32_t head_dim;
    int32_t hidden_dim;       /* FFN inner size */
    int32_t n_vocab;
    int32_t max_seq_len;      /* context the model was trained for */
    float norm_eps;
    float rope_theta;
    bool rope_scaling;        /* llama3 frequency scaling on */
    float rope_factor;
    float rope_low_freq_factor;
    float rope_high_freq_factor;
    int32_t rope_original_max_pos;
    bool tied_embeddings;
    herd_dtype weight_dtype;  /* dtype of most layer weights */
    int64_t n_params;
    int64_t weight_bytes;     /* bytes of all weights as stored */
    int32_t bos_id;           /* -1 if unknown */
    int32_t eos_ids[8];       /* end-of-generation ids (generation_config eos_token_id) */
    int32_t n_eos;
    float default_temperature; /* from generation_config.json; <0 when absent */
    float default_top_p;
    const char *arch;         /* the architecture as GGUF names it ("llama"); NULL: llama */
    /* Appended for models beyond Llama 3 (issue 13). */
    const char *chat_template; /* the file's tokenizer.chat_template (Jinja text), or NULL */
    const char *chat_system;   /* the default system message that template writes when a
                                  conversation has none (SmolLM2's), or NULL */
    int32_t default_top_k;     /* GGUF general.sampling.top_k; < 0 when absent */
    float default_min_p;       /* GGUF general.sampling.min_p; < 0 when absent */
    /* Appended for Meta's original checkpoints and FP8 (issue 14). */
    int32_t n_shards;          /* files holding the weights: safetensors shards, Meta's
                                  consolidated.NN.pth (model-parallel ranks); 1 for GGUF */
    const char *dtypes;        /* the matrices' dtypes with counts, "bf16 x 7, f8_e4m3 x 14" */
    int32_t n_fp8;             /* matrices stored as FP8 e4m3 with row scales */
} herd_model_info;

HERD_API herd_status herd_model_load(const char *path, const herd_model_params *params,
                                     herd_model **out);
HERD_API void herd_model_free(herd_model *m);
HERD_API const herd_model_info *herd_model_get_info(const herd_model *m);
/* The tokenizer that came with the model (GGUF metadata or tokenizer.json beside the HF
 * files), or NULL when the model has none. Borrowed. */
HERD_API const herd_tokenizer *herd_model_tokenizer(const herd_model *m);

/* ---------------------------------------------------------------- context and batches */

typedef struct herd_context herd_context;

typedef struct herd_context_params {
    int32_t n_ctx;     /* positions per sequence; 0 = min(model's max_seq_len, 4096); more
                          than the model's maximum is an error, never silently reduced */
    int32_t n_seq;     /* sequences that can be live at once (server slots); 0 = 1 */
    int32_t n_batch;   /* tokens per forward chunk (longer batches are cut); 0 = 512 */
    int32_t n_threads; /* 0 = the model's */
    herd_dtype kv_type; /* KV cache element type: F16 (default), F32 or Q8_0 */
    int64_t mem_limit;  /* bytes the KV cache and scratch may take: 0 = the memory free now
                           where they live (this machine's available memory, or the GPU's
                           free memory), < 0 = no check. Over it, creation fails with the
                           largest n_ctx that fits */
} herd_context_params;

/* Defaults: n_ctx 0, n_seq 1, n_batch 512, kv F16. Start from these. */
HERD_API herd_context_params herd_context_default_params(void);

HERD_API herd_status herd_context_new(const herd_model *m, const herd_context_params *p,
                                      herd_context **out);
HERD_API void herd_context_free(herd_context *c);
HERD_API int32_t herd_context_n_ctx(const herd_context *c);
HERD_API int64_t herd_context_kv_bytes(const herd_context *c);

/* Operation timing (herd bench --profile): on = true starts timing what this process's
 * share of the context runs, from zero; herd_context_profile_text writes the table (matrix
 * products per shape and type with the GB/s of weights they streamed, then the other
 * operations) into buf. HERD_ERR_UNSUPPORTED on backends without it (the CPU has it). */
HERD_API herd_status herd_context_profile(herd_context *c, bool on);
HERD_API herd_status herd_context_profile_text(const herd_context *c, char *buf, size_t cap);

/* A batch: n_tokens tokens, token i belongs to sequence seq[i] at position pos[i] and
 * wants its logits when logits[i] != 0. Tokens of one sequence must come in increasing
 * position order and directly follow what that sequence holds in the cache. */
typedef struct herd_batch {
    int32_t n_tokens;
    const int32_t *tokens;
    const int32_t *pos;
    const int32_t *seq;
    const int8_t *logits;
} herd_batch;

/* Runs the model over the batch, appending to each sequence's KV cache. Writes one row of
 * n_vocab floats to out for every token with logits[i] != 0, in batch order. */
HERD_API herd_status herd_decode(herd_context *c, const herd_batch *b, float *out);
/* herd_decode that also writes the model's final hidden state (after the final RMSNorm,
 * before the output projection: what embeddings are pooled from) of every token with
 * hidden[i] != 0: one row of info.dim floats to hidden_out per such token, in batch order.
 * A token may want logits, its hidden state, both or neither; logits are herd_decode's, bit
 * for bit. hidden NULL: exactly herd_decode. HERD_ERR_UNSUPPORTED in a multi-rank job. */
HERD_API herd_status herd_decode_hidden(herd_context *c, const herd_batch *b, float *out,
                                        const int8_t *hidden, float *hidden_out);

/* Forgets positions >= from of sequence seq (from = 0 clears it). */
HERD_API herd_status herd_seq_truncate(herd_context *c, int32_t seq, int32_t from);
/* Copies the first n positions of the cache of src into dst (prefix reuse). */
HERD_API herd_status herd_seq_copy(herd_context *c, int32_t dst, int32_t src, int32_t n);
/* Positions held for seq. */
HERD_API int32_t herd_seq_len(const herd_context *c, int32_t seq);

/* ---------------------------------------------------------------- server */

/* Options of the OpenAI-compatible HTTP server (herd serve). Start from
 * herd_server_default_options(). */
typedef struct herd_server_options {
    const char *host;       /* address to bind; default "127.0.0.1" */
    int32_t port;           /* default 8080; 0 = any free port (printed on stderr) */
    int32_t n_parallel;     /* sequences decoded together (slots); default 4 */
    int32_t n_ctx;          /* positions per slot; 0 = min(model max_seq_len, 8192) */
    int32_t n_batch;        /* most tokens per forward step; 0 = 512 */
    int32_t n_threads;      /* 0 = the model's */
    const char *api_key;    /* when set, every endpoint but /health wants "Bearer <key>" */
    const char *model_name; /* id shown by /v1/models; NULL = the model's name */
    int32_t max_queue;      /* requests waiting for a slot before 503; default 256 */
    int64_t max_body;       /* request body limit in bytes; default 8 MiB */
    int32_t max_conns;      /* concurrent HTTP connections; default 512 */
    herd_dtype kv_type;     /* KV cache element type: F16 (default), F32 or Q8_0 */
    /* A test and diagnostic knob, 0 in production: the scheduler sleeps this many ms after
     * every decode step, so a test can hang up or fill the queue mid-request on a tiny fast
     * model. The herd command sets it from HERD_SERVER_TEST_STEP_MS. */
    int32_t test_step_ms;
    /* Connections one client address may hold (HTTP keep-alive and streams); 0 = half of
     * max_conns. Past either limit a request is answered 503 with Retry-After (GET /health
     * still 200) and the connection closed, instead of waiting unaccepted. */
    int32_t max_conns_per_client;
    /* Seconds a connection may stay silent while sending its request (header or body) or
     * between keep-alive requests before it is closed; 0 = 10. Streams never count as
     * silent: the server writes them. */
    int32_t timeout_s;
    /* herd_server_stop: seconds running requests get to finish before each remaining one
     * ends with an error (a stream: an error event and [DONE]); 0 = end them at once. */
    int32_t grace_s;
    /* CORS: NULL or "" = no CORS headers (and OPTIONS answers 405); "*" = any origin; else a
     * comma-separated list of allowed origins ("https://a.example,http://localhost:3000"). */
    const char *cors_origins;
    /* One access log line per request on stderr (method, path, status, tokens, latency,
     * request id): 0 = off, 1 = text, 2 = JSON lines. */
    int32_t access_log;
    /* Llama Guard 3 shield (docs/guard.md): a second model that classifies chat requests
     * before generation and answers as they are made; a flagged one ends with
     * finish_reason "content_filter". NULL = off. Borrowed: must outlive the server. */
    const herd_model *guard_model;
    const char *guard_categories; /* "S1,S10": only these default categories; NULL = all */
    int32_t guard_on;             /* 1 = input, 2 = output, 3 or 0 = both */
    /* /v1/embeddings: how a text's token rows (final hidden states, after the final norm)
     * become one vector before L2 normalisation: 0 = mean of all tokens, 1 = the last
     * token's. A request may choose with "pooling": "mean" | "last". */
    int32_t pooling;
    /* Most choices one request may ask for (n, times the prompts of a /v1/completions prompt
     * list); more is a 400. 0 = 16. Choices beyond the free slots wait in the queue. */
    int32_t max_choices;
    /* Speculative decoding in every slot (herd_spec, docs/speculative.md): draft, a model
     * with the same tokenizer (borrowed: must outlive the server), or with draft NULL and
     * lookup > 0 prompt lookup with n-grams of up to lookup tokens; draft_max/draft_min as
     * in herd_spec_params (0 = its defaults). Requests asking for logprobs or constrained
     * output (JSON, forced tool calls) decode one token a step as without it. */
    const herd_model *draft;
    int32_t lookup;
    int32_t draft_max, draft_min;
} herd_server_options;

HERD_API herd_server_options herd_server_default_options(void);

typedef struct herd_server herd_server;

/* Starts serving m over HTTP on threads of its own and returns once the address is bound
 * and the context is made (fails when either cannot be done). The server never touches the
 * program's signal handling: its threads block asynchronous signals (SIGPIPE included, so
 * a client hanging up is an error code), and stopping is the program's call, e.g. from a
 * thread that waits for SIGINT/SIGTERM as `herd serve` does. Options are copied; m stays
 * owned by the caller and must outlive the server. Several servers may run at once. */
HERD_API herd_status herd_server_start(const herd_model *m, const herd_server_options *o,
                                       herd_server **out);

/* What a started server listens on and holds; borrowed until herd_server_stop. */
typedef struct herd_server_info {
    int32_t port;           /* the bound port (the one picked when options.port was 0) */
    int32_t n_parallel;     /* slots */
    int32_t n_ctx;          /* positions per slot */
    herd_dtype kv_type;
    int64_t kv_bytes;       /* the KV cache of all slots */
    const char *model_name; /* the id /v1/models shows */
} herd_server_info;

HERD_API const herd_server_info *herd_server_get_info(const herd_server *s);

/* Stops s and frees it (NULL-safe): no new requests are taken (503), running ones get
 * options.grace_s to finish, then those left end cleanly with an error saying the
 * server is shutting down (a stream gets an error event and then [DONE]), their
 * connections close, and the port is released before it returns. Not for a signal
 * handler: call it from an ordinary thread. */
HERD_API void herd_server_stop(herd_server *s);

/* ---------------------------------------------------------------- chat */

/* The official Llama Instruct chat templates herd renders natively (no Jinja engine). */
typedef enum herd_chat_template {
    HERD_CHAT_LLAMA31 = 0, /* Llama 3.1 Instruct: built-in tools, <|python_tag|>, <|eom_id|> */
    HERD_CHAT_LLAMA32 = 1, /* Llama 3.2 Instruct: today's date by default, no built-in tools */
    HERD_CHAT_CHATML = 2,  /* ChatML: <|im_start|>role\ncontent<|im_end|>\n per message, a
                              turn ends at <|im_end|> (SmolLM2, chosen from the file's
                              tokenizer.chat_template); no tools */
} herd_chat_template;

typedef struct herd_chat_options {
    herd_chat_template tmpl;
    /* The "Today Date" when the request's chat_template_kwargs has no date_string; NULL =
     * the template's default ("26 Jul 2024" for 3.1, today's date for 3.2). */
    const char *date_string;
    bool today; /* 3.1 without any date_string: today's date ("%d %b %Y", local time) */
    /* Only for herd_chat_render_messages; a JSON request carries its own
     * "add_generation_prompt" (default true). */
    bool add_generation_prompt;
    /* Token rendering only: the most ids the prompt may have; 0 = no limit. A longer
     * prompt fails with HERD_ERR_CONTEXT as soon as that is certain, before the rest of
     * its text is tokenized (see herd_chat_render_tokens). */
    size_t max_tokens;
    /* ChatML: the system message written when the conversation starts without one (the
     * model's default, herd_model_info.chat_system); NULL = none. Borrowed. */
    const char *default_system;
} herd_chat_options;

/* Defaults: Llama 3.1, the template's date, add_generation_prompt true, no token limit. */
HERD_API herd_chat_options herd_chat_default_options(void);

/* The template for a model: ChatML when the file's chat_template uses <|im_start|>; else
 * 3.2 when its name says 3.2 or it has the 1B/3B shape (dim 2048 or 3072 with 16 or 28
 * layers), else 3.1. */
HERD_API herd_chat_template herd_chat_template_for(const herd_model_info *info);
/* herd_chat_default_options() for a model: its template (ChatML when its file's
 * chat_template is one, else as herd_chat_template_for) and its default system message. */
HERD_API herd_chat_options herd_chat_options_for(const herd_model_info *info);

/* Renders an OpenAI chat request (JSON text: "messages", "tools", "add_generation_prompt",
 * "chat_template_kwargs": {date_string, builtin_tools, tools_in_user_message, custom_tools};
 * other fields are ignored) into the exact prompt text of the official template as Hugging
 * Face transformers' apply_chat_template renders it, starting with <|begin_of_text|>.
 * Before rendering, as OpenAI-compatible servers do: tool-call "arguments" given as a JSON
 * string are parsed into their value, content given as a list of {"type": "text"} parts
 * is joined with "\n", and "tool_choice": "none" leaves "tools" out of the prompt. The
 * request is read as Python's json.loads reads it (1.0 stays 1.0, integers of any size
 * stay exact), so pass the client's own bytes, not a re-printed document. Text that is not
 * such JSON fails with HERD_ERR_FORMAT (nesting deeper than 200 levels included). A
 * conversation the template refuses (two tool calls in one message, tools without a user
 * message, ...) fails with HERD_ERR_INVALID and the template's reason. *prompt is owned by
 * the caller (herd_free), NUL-terminated, *len bytes. */
HERD_API herd_status herd_chat_render(const char *request_json, size_t request_len,
                                      const herd_chat_options *opt, char **prompt,
                                      size_t *len);

/* The same prompt as token ids, built as the engine feeds it: template special tokens by
 * id, all other text (message content included) tokenized as plain text, so text a user
 * types can never become a control token. *ids is owned by the caller (herd_free).
 * With opt->max_tokens > 0, a prompt of more ids fails with HERD_ERR_CONTEXT, *ids NULL and
 * *n_ids a proven lower bound on its length (> max_tokens); the bound comes from byte
 * lengths (no token is longer than the vocabulary's longest) before anything is
 * tokenized, then from the ids of each text run as it is tokenized. */
HERD_API herd_status herd_chat_render_tokens(const herd_tokenizer *tok,
                                             const char *request_json, size_t request_len,
                                             const herd_chat_options *opt, int32_t **ids,
                                             size_t *n_ids);

/* A plain conversation (no tools) without JSON, for interactive chat. */
typedef struct herd_chat_message {
    const char *role;    /* "system", "user", "assistant", "ipython" */
    const char *content; /* UTF-8 text */
} herd_chat_message;

HERD_API herd_status herd_chat_render_messages(const herd_chat_message *msgs, size_t n_msgs,
                                               const herd_chat_options *opt, char **prompt,
                                               size_t *len);
HERD_API herd_status herd_chat_render_messages_tokens(const herd_tokenizer *tok,
                                                      const herd_chat_message *msgs,
                                                      size_t n_msgs,
                                                      const herd_chat_options *opt,
                                                      int32_t **ids, size_t *n_ids);

/* Why generation stops at a token. */
typedef enum herd_chat_stop {
    HERD_CHAT_STOP_NONE = 0, /* not a stop token */
    HERD_CHAT_STOP_EOT = 1,  /* <|eot_id|> (ChatML: <|im_end|>): the turn is over */
    HERD_CHAT_STOP_EOM = 2,  /* <|eom_id|>: a tool call waits for its result */
    HERD_CHAT_STOP_EOS = 3,  /* <|end_of_text|> (GPT-2 style: <|endoftext|>) */
} herd_chat_stop;

HERD_API herd_chat_stop herd_chat_stop_kind(const herd_tokenizer *tok, int32_t id);

/* One tool call found in model output. */
typedef struct herd_tool_call {
    char *name;      /* function name */
    char *arguments; /* a JSON object, json.dumps style: {"a": 1, "b": "x"} */
    bool builtin;    /* a <|python_tag|> built-in call (brave_search, wolfram_alpha,
                        code_interpreter) */
} herd_tool_call;

typedef struct herd_chat_output {
    char *content;          /* the text that is not a tool call ("" when all are calls) */
    herd_tool_call *calls;  /* n_calls calls in order */
    size_t n_calls;
} herd_chat_output;

/* Splits generated text (decoded with special tokens as text; anything from a stop token on
 * is ignored) into content and tool calls. Recognised: {"name": ..., "parameters"|
 * "arguments": {...}} (several may be separated by ';'), <|python_tag|> followed by such
 * JSON or by name.call(k="v", ...) (built-in tools) or by code (code_interpreter), and Llama
 * 3.2's pythonic list [f(a=1), g(b="x")]. Text that is not a well-formed call stays content.
 * *out is owned by the caller (herd_chat_output_free). */
HERD_API herd_status herd_chat_parse_output(const char *text, size_t len,
                                            herd_chat_output **out);
HERD_API void herd_chat_output_free(herd_chat_output *o);

/* ---------------------------------------------------------------- guard (Llama Guard 3) */

/* The official Llama Guard 3 prompt formats (the chat_template of Meta's tokenizer_config.json;
 * copies in tests/guard/templates), rendered as transformers' apply_chat_template does. */
typedef enum herd_guard_format {
    /* Llama-Guard-3-8B (and -8B-INT8): categories S1-S14 fixed in the template, message
     * content a string, a space before <|begin_of_text|>. herd extension: "categories" /
     * "excluded_category_keys" given with it replace the list the same way as in 1B. */
    HERD_GUARD_FORMAT_8B = 0,
    /* Llama-Guard-3-1B (and 11B-Vision, text only): "categories" (default S1-S13) and
     * "excluded_category_keys" template arguments, content as [{"type": "text"}] parts (a
     * string content is taken as one part). */
    HERD_GUARD_FORMAT_1B = 1,
} herd_guard_format;

/* The format of a model: its file's chat template when that is a Llama Guard one, else 1B
 * for the pruned 1B shape (dim 2048) or a name containing "1B", else 8B. */
HERD_API herd_guard_format herd_guard_format_for(const herd_model_info *info);
/* Whether the model's file carries a Llama Guard chat template (herd render and herd serve
 * then use the guard format for its chat prompts). */
HERD_API bool herd_guard_is_template(const herd_model_info *info);

/* Which message the check is about. */
typedef enum herd_guard_role {
    HERD_GUARD_ROLE_AUTO = 0,  /* the last message's (the template's own rule) */
    HERD_GUARD_ROLE_USER = 1,  /* the last user message: messages after it are left out */
    HERD_GUARD_ROLE_AGENT = 2, /* the last message, which must be the assistant's */
} herd_guard_role;

typedef struct herd_guard_options {
    herd_guard_format format;
    herd_guard_role role;
    /* Only these default categories ("S1,S10"): the others are excluded, as
     * excluded_category_keys does; NULL = all. */
    const char *categories;
    /* Server conventions for a chat request: system/tool messages and messages without text
     * are left out, consecutive messages of one role joined with "\n\n", leading assistant
     * messages dropped, so that the roles alternate as the template demands. */
    bool normalize;
    int32_t max_tokens; /* classify: most tokens generated; 0 = 10 */
} herd_guard_options;

/* format 8B, role AUTO, all categories, no normalizing, max_tokens 10. */
HERD_API herd_guard_options herd_guard_default_options(void);

/* Renders a conversation to the classifier's prompt. request: {"messages": [...],
 * "categories": {"S1": "Violent Crimes.", ...}, "excluded_category_keys": ["S6"]} (the
 * template's arguments, also read from "chat_template_kwargs") or a bare message array. A conversation the template refuses (roles
 * that do not alternate user/assistant, non-text content) fails with its reason. Owned
 * results (herd_free). */
HERD_API herd_status herd_guard_render(const char *request, size_t len,
                                       const herd_guard_options *o, char **prompt,
                                       size_t *prompt_len);
/* The same prompt as token ids, control tokens placed by id (user text stays text). */
HERD_API herd_status herd_guard_render_tokens(const herd_tokenizer *tok, const char *request,
                                              size_t len, const herd_guard_options *o,
                                              int32_t **ids, size_t *n_ids);

typedef enum herd_guard_verdict {
    HERD_GUARD_SAFE = 0,
    HERD_GUARD_UNSAFE = 1,
    HERD_GUARD_UNPARSEABLE = 2, /* the output is neither "safe" nor "unsafe" */
} herd_guard_verdict;

typedef struct herd_guard_category {
    char *code; /* "S1" */
    char *name; /* "Violent Crimes" (the prompt's description, first line, no final '.'), or
                   NULL for a code the prompt did not list */
} herd_guard_category;

typedef struct herd_guard_result {
    herd_guard_verdict verdict;
    herd_guard_category *categories; /* unsafe: the violated categories, in order, no repeats */
    size_t n_categories;
    char *raw; /* the model's output as parsed */
} herd_guard_result;

/* Parses a Llama Guard answer ("safe", "unsafe\nS1,S10"; surrounding whitespace, case,
 * "<|eot_id|>" and anything after it ignored). Names come from the categories the request
 * (may be NULL: the format's defaults) put in the prompt. Owned by the caller. */
HERD_API herd_status herd_guard_parse(const char *text, size_t len, const char *request,
                                      size_t request_len, const herd_guard_options *o,
                                      herd_guard_result **out);
HERD_API void herd_guard_result_free(herd_guard_result *r);
/* "safe", "unsafe", "unparseable". */
HERD_API const char *herd_guard_verdict_str(herd_guard_verdict v);

/* Classifies a conversation with a Llama Guard model: renders it, decodes greedily on
 * sequence 0 of ctx (cleared first) until an end token or o->max_tokens, and parses the
 * answer. ctx must be a context of model m; one thread at a time, as for herd_decode. */
HERD_API herd_status herd_guard_classify(const herd_model *m, herd_context *ctx,
                                         const char *request, size_t len,
                                         const herd_guard_options *o, herd_guard_result **out);

/* ---------------------------------------------------------------- sampler */

typedef struct herd_sampler herd_sampler;

typedef struct herd_logit_bias {
    int32_t token;
    float bias; /* added to the token's logit; -INFINITY bans it */
} herd_logit_bias;

/* The chain, in this order: logit bias; penalties over the last penalty_last_n accepted
 * tokens (repetition: a seen token's logit l becomes l/r if l > 0 else l*r; then
 * l -= presence + count*frequency, as OpenAI defines them); temperature <= 0: argmax
 * (lowest id on ties); else l/T; top-k; softmax; top-p (the smallest set of most probable
 * tokens whose probability reaches top_p); min-p (keep p >= min_p * p_max); draw from the
 * renormalised rest with a seeded generator. */
typedef struct herd_sampler_params {
    float temperature;       /* 0 = greedy */
    int32_t top_k;           /* 0 = off */
    float top_p;             /* 1 = off */
    float min_p;             /* 0 = off */
    float repeat_penalty;    /* 1 = off */
    float presence_penalty;  /* 0 = off */
    float frequency_penalty; /* 0 = off */
    int32_t penalty_last_n;  /* window of accepted tokens the penalties see; -1 = all */
    uint64_t seed;
    const herd_logit_bias *logit_bias; /* copied by herd_sampler_new */
    size_t n_logit_bias;
} herd_sampler_params;

/* Defaults: temperature 0.6, top_p 0.9 (Llama 3.x Instruct generation_config.json), top_k 0,
 * min_p 0, no penalties, window 64, seed 0. */
HERD_API herd_sampler_params herd_sampler_default_params(void);
/* Takes temperature and top_p from the model's generation_config (or GGUF
 * general.sampling.*) and top_k and min_p from GGUF general.sampling.*, where present. */
HERD_API void herd_sampler_params_from_model(herd_sampler_params *p,
                                             const herd_model_info *info);

/* Scratch for n_vocab candidates is allocated here; sampling never allocates. */
HERD_API herd_status herd_sampler_new(const herd_sampler_params *p, int32_t n_vocab,
                                      herd_sampler **out);
HERD_API void herd_sampler_free(herd_sampler *s);
/* Picks a token from one row of logits (not modified). Does not accept it. */
HERD_API herd_status herd_sampler_sample(herd_sampler *s, const float *logits,
                                         int32_t n_vocab, int32_t *token);
/* Records a token (prompt or generated) in the penalty window. */
HERD_API void herd_sampler_accept(herd_sampler *s, int32_t token);
/* Forgets the accepted tokens and restarts the generator from the seed. */
HERD_API void herd_sampler_reset(herd_sampler *s);

/* ---------------------------------------------------------------- speculative decoding */

/* A draft proposes tokens after a sequence's history and the target checks them in one
 * batched herd_decode (docs/speculative.md). The draft is a second, smaller model with the
 * same tokenizer, or prompt lookup (no model: the continuation of the latest earlier
 * occurrence of the history's last n-gram). Greedy output (temperature 0) is exactly the
 * target's alone; with sampling, each drafted token d is kept with probability
 * min(1, p(d)/q(d)) and a rejection draws from norm(max(0, p - q)), so every token still
 * follows p. p and q are the distributions the sampler draws from (logit bias, penalties,
 * temperature, top-k, top-p, min-p, renormalised) of the target and of the draft (its
 * logits through the same chain without the penalties); lookup drafts have q = 1 on d. */
typedef struct herd_spec herd_spec;

typedef struct herd_spec_params {
    int32_t draft_max;    /* most tokens drafted per step (K); default 7 */
    int32_t draft_min;    /* the fewest K adapts down to; default 1. K starts at draft_max,
                             grows by 2 when a step keeps every drafted token and shrinks by
                             1 when one is rejected (transformers' "heuristic" schedule) */
    int32_t lookup_ngram; /* prompt lookup: the longest n-gram matched; default 3 */
    int32_t lookup_min;   /* prompt lookup: the shortest; default 2 */
    int32_t n_threads;    /* the draft's context; 0 = the draft model's */
    herd_dtype kv_type;   /* the draft's KV cache; default F16 */
} herd_spec_params;

HERD_API herd_spec_params herd_spec_default_params(void);

/* Speculative decoding for the sequences of target with draft as the proposer (NULL:
 * prompt lookup). The draft gets its own context of target's n_ctx x n_seq. Fails with
 * HERD_ERR_INVALID when the two vocabularies differ (count or any token's bytes). target
 * and draft are borrowed and must outlive s. One thread at a time, like the context. */
HERD_API herd_status herd_spec_new(herd_context *target, const herd_model *draft,
                                   const herd_spec_params *p, herd_spec **out);
HERD_API void herd_spec_free(herd_spec *s);

/* Starts a new generation on seq: K back to draft_max, the draw generator seeded. The
 * draft's cache is kept; what of it matches the next history is reused. */
HERD_API void herd_spec_seq_reset(herd_spec *s, int32_t seq, uint64_t seed);

/* One step on seq. hist holds the sequence's n_hist tokens; the target's cache holds the
 * first n_hist - 1 (the last token is fed now). Drafts at most min(K, max_out - 1) tokens,
 * runs the target once over the last token and the drafts, keeps the longest accepted
 * prefix plus one token of the target's, and rolls both caches back past it. Writes 1 to
 * max_out tokens to out; each is already accepted into smp (do not accept them again). */
HERD_API herd_status herd_spec_step(herd_spec *s, int32_t seq, herd_sampler *smp,
                                    const int32_t *hist, int32_t n_hist, int32_t max_out,
                                    int32_t *out, int32_t *n_out);

/* herd_spec_step in two halves for a caller that batches several sequences (the server):
 * draft writes up to max tokens to draft (*n_draft may be 0); the caller decodes hist's
 * last token and the drafts at positions n_hist - 1 ... with logits for each, and verify
 * takes those *n_draft + 1 rows. */
HERD_API herd_status herd_spec_draft(herd_spec *s, int32_t seq, herd_sampler *smp,
                                     const int32_t *hist, int32_t n_hist, int32_t max,
                                     int32_t *draft, int32_t *n_draft);
HERD_API herd_status herd_spec_verify(herd_spec *s, int32_t seq, herd_sampler *smp,
                                      const float *rows, int32_t *out, int32_t *n_out);

typedef struct herd_spec_stats {
    int64_t n_steps;    /* verify passes */
    int64_t n_drafted;  /* tokens proposed */
    int64_t n_accepted; /* of those, kept */
    int64_t n_tokens;   /* tokens produced (accepted + one per step) */
} herd_spec_stats;

/* Totals since herd_spec_new over all sequences. */
HERD_API herd_spec_stats herd_spec_get_stats(const herd_spec *s);

/* ---------------------------------------------------------------- dist (MPI) */

/* How a multi-rank job runs. Every rank passes the same options (the herd command fills
 * them from HERD_TP, HERD_PP, HERD_DIST_TIMEOUT, HERD_DIST_REPORT and the two test knobs'
 * HERD_DIST_TEST_KILL / HERD_DIST_TEST_VERSION). */
typedef struct herd_dist_options {
    int32_t tp, pp;       /* force the tensor-parallel width / pipeline depth; 0 = chosen from
                             the model's shapes and the number of ranks */
    int32_t timeout_s;    /* a rank waiting longer than this for a peer inside an operation
                             ends the job with a message; 0 = never; default 300 */
    bool report;          /* each rank prints its memory use around model loads and frees */
    int32_t test_kill_rank;    /* test knob: that rank (> 0) dies at its first decode */
    int32_t test_version_rank; /* test knob: that rank (> 0) claims another wire version */
} herd_dist_options;

/* Defaults: automatic split, 300 s timeout, no report, no test knobs. */
HERD_API herd_dist_options herd_dist_default_options(void);

/* Call first in main, with main's argc/argv. Under mpirun with more than one rank (an MPI
 * build), rank 0 returns false and goes on to be the program: every herd_model/context/
 * decode call it makes is carried out by all ranks on their share of the model (tensor
 * parallel within pipeline stages; o->tp / o->pp force the split). Ranks > 0 serve rank 0
 * inside this call and return true when it exits: main then returns *exit_code. Without
 * MPI, or with one rank, it returns false and changes nothing. o may be NULL (defaults).
 * Not thread-safe. */
HERD_API bool herd_dist_init(int *argc, char ***argv, const herd_dist_options *o,
                             int *exit_code);
/* This process's rank and the number of ranks (0 and 1 without MPI). */
HERD_API int herd_dist_rank(void);
HERD_API int herd_dist_size(void);

/* ---------------------------------------------------------------- CPU kernels */

/* Process-wide choices of CPU kernels. The library reads no environment variables; the herd
 * command fills these from HERD_CPU_ISA, HERD_BF16_ACT, HERD_GEMV_NO_VBMI and
 * HERD_GEMV_NO_R16 (docs/internals/library.md). Start from herd_cpu_default_options(). */
typedef struct herd_cpu_options {
    /* "ref", "avx2", "avx512", "amx" (avx512 with AMX tiles) or "neon" forces that variant (tests run every variant on one
     * machine); NULL or "" = the best this CPU and build run. One the CPU lacks falls back
     * to the best available with a warning. */
    const char *isa;
    /* BF16 weights multiply activations rounded to bf16 (AVX-512 BF16 dot products):
     * faster, but logits move ~1e-2 from float32 references. Off by default. */
    bool bf16_act;
    /* Diagnostics, for comparison and the kernel tests: AVX-512 Q4_0 decode without its
     * VBMI loop, and Q8_0 batches of 2..8 rows through the one-row loop. */
    bool no_vbmi;
    bool no_r16;
    /* Keep weights in the file mapping. By default the CPU backend copies each mapped weight
     * into anonymous memory on transparent huge pages (while the machine has room), since
     * 4 KB pages of the page cache cost decode ~25-40% of its bandwidth in TLB walks; with
     * this set, two loads of one file share its pages and loading copies nothing. */
    bool mmap_weights;
} herd_cpu_options;

/* Defaults: best variant, float32 activations for BF16 weights, no diagnostics. */
HERD_API herd_cpu_options herd_cpu_default_options(void);

/* Sets the CPU kernel choices for the whole process. The kernel tables are built once, at
 * the first model load or kernel use, and never change afterwards: call this before that.
 * Fails with HERD_ERR_INVALID for an unknown isa name, or when the tables are already built
 * with other options (calling it again with the same options is fine). Thread-safe. */
HERD_API herd_status herd_cpu_configure(const herd_cpu_options *o);

/* Name of the CPU kernel variant in use ("ref", "avx2", "avx512", "amx", "neon"). Builds the
 * kernel tables if nothing has yet. */
HERD_API const char *herd_cpu_isa(void);

/* The devices this build can run a model on, one line each ("cpu: avx512 kernels, 16
 * cores", "cuda:0: NVIDIA H200, 139.7 GiB, compute 9.0, 132 SMs", or why a backend sees
 * none), into buf (cap bytes, NUL-terminated, cut short if it does not fit). Returns the
 * number of lines. A name before the first ": " is what --device takes. */
HERD_API int herd_devices(char *buf, size_t cap);

/* ---------------------------------------------------------------- quantize */

/* What a whole file is converted to. Values are llama.cpp's llama_ftype (general.file_type),
 * so a file's general.file_type names its mix. Layer norms and rope_freqs stay F32. */
typedef enum herd_ftype {
    HERD_FTYPE_F32 = 0,
    HERD_FTYPE_F16 = 1,
    HERD_FTYPE_Q4_0 = 2,
    HERD_FTYPE_Q8_0 = 7,
    HERD_FTYPE_Q4_K_M = 15, /* Q4_K, with Q6_K where llama.cpp's Q4_K_M puts it */
    HERD_FTYPE_Q6_K = 18,
    HERD_FTYPE_BF16 = 32,
} herd_ftype;

/* "q4_k_m", ... or NULL for an unknown value. */
HERD_API const char *herd_ftype_name(herd_ftype f);
/* Parses "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m", "q6_k" (any case). */
HERD_API herd_status herd_ftype_parse(const char *name, herd_ftype *out);

/* Called after each tensor is written into the output image; return false to cancel
 * (herd_quantize then returns HERD_ERR_CANCELLED and leaves no output file). */
typedef bool (*herd_quantize_progress)(void *user, const char *tensor, herd_dtype type,
                                       int64_t done_bytes, int64_t total_bytes);

typedef struct herd_quantize_params {
    herd_ftype ftype;
    int32_t n_threads;               /* 0 = herd_n_threads(0) */
    herd_quantize_progress progress; /* optional */
    void *progress_user;
} herd_quantize_params;

/* Converts a model (a GGUF file, or a Hugging Face folder of BF16/F16/F32 safetensors with
 * config.json and tokenizer.json) to a GGUF file at out that herd and llama.cpp both load:
 * llama.* hyper-parameters, tokenizer.ggml.* (copied from a GGUF, or built from
 * tokenizer.json), q/k rows in Meta's interleaved RoPE order, rope_freqs for llama3 scaling,
 * and per-tensor types chosen as llama.cpp's quantizer chooses them for the same ftype.
 * The output is written to a temporary name and renamed when complete. Not thread-safe
 * with respect to the same out path. */
HERD_API herd_status herd_quantize(const char *in, const char *out,
                                   const herd_quantize_params *params);

#ifdef __cplusplus
}
#endif

#endif /* HERD_H */
