/*
 * server.h - the parts of herd's OpenAI-compatible server and how they meet.
 *
 *   http.c     libmicrohttpd front: routing, auth, body limit, SSE, waiting for results
 *   openai.c   OpenAI JSON in (parse + validate into struct srv_params) and out (responses,
 *              stream chunks, error bodies); no model, no HTTP, so it is unit-tested alone
 *   glue.c     the only file that calls chat/ and sample/ (render a chat request to prompt
 *              ids, parse tool calls, the sampler), so their API can change in one place
 *   sched.c    one scheduler thread owns the herd_context: admits requests into slots,
 *              reuses cached prefixes, and runs one herd_decode per step for all slots
 *   metrics.c  counters and histograms, rendered in Prometheus text format
 *
 * A request (struct srv_req) is shared by exactly two owners, the HTTP thread that made it
 * and the scheduler, and is freed by whichever drops it last (refs). Everything the
 * scheduler produces for it goes through req->mu: text appended to req->text, logprob
 * entries to req->lp, and finally done/finish/usage. The HTTP side only reads and sets
 * req->cancelled, which the scheduler honours at the start of its next step.
 */
#ifndef HERD_SERVER_H
#define HERD_SERVER_H

#include "base/base.h"

#include <cjson/cJSON.h> /* cJSON: request/response JSON */
#include <pthread.h>     /* request locks, scheduler thread */
#include <stdatomic.h>   /* cancelled flag, refcount */
#include <stdbool.h>
#include <stdint.h>

#define SRV_MAX_STOP 4        /* OpenAI accepts up to 4 stop sequences */
#define SRV_MAX_TOP_LOGPROBS 20 /* OpenAI's limit for top_logprobs */

enum srv_kind { SRV_CHAT = 0, SRV_COMPLETION = 1, SRV_EMBED = 2 };
enum srv_pooling { SRV_POOL_MEAN = 0, SRV_POOL_LAST = 1 };

/* A validated request, as the scheduler and the response writers need it. */
struct srv_params {
    enum srv_kind kind;
    char *model;              /* echoed back in responses */
    bool stream;
    bool include_usage;       /* stream_options.include_usage */
    int32_t max_tokens;       /* -1: until the context is full */
    float temperature;        /* 0 = greedy; < 0 when not given (model default) */
    float top_p;              /* < 0 when not given */
    float presence_penalty;
    float frequency_penalty;
    bool has_seed;
    uint64_t seed;
    char *stop[SRV_MAX_STOP];
    int n_stop;
    int32_t *bias_ids;        /* logit_bias, n_bias entries */
    float *bias_vals;
    int n_bias;
    bool logprobs;
    int top_logprobs;         /* 0..20 */
    bool echo;                /* completions: prompt text first */
    int32_t n;                /* choices per prompt (1..128) */
    bool json_object;         /* response_format {"type":"json_object"} */
    /* response_format json_schema, or a named tool_choice's call with the tool's
     * parameters schema: the output is held to it (owned), NULL when not */
    struct srv_schema *schema;
    bool tools_active;        /* tools given and tool_choice is not "none" */
    /* A forced tool call (tool_choice "required" or named): the output starts with
     * force_prefix (fed into the prompt for a named function, shown as output) and then
     * spells one of force_alts (a tool name and what follows it); the rest is constrained
     * to JSON that closes the call object. NULL / 0 when not forced. */
    char *force_prefix;
    char **force_alts;
    int n_force_alts;
    cJSON *body;              /* the parsed request (owned), for validation and prompts */
    /* Chat: the request's own bytes (owned copy). The chat renderer reads these, never a
     * re-print of body: cJSON keeps numbers as doubles (1.0 prints as 1, big integers
     * lose digits), and the prompt must show them as the client wrote them. */
    char *raw;
    size_t raw_len;
    /* embeddings: encoding_format "base64", and the pooling of this request */
    bool base64;
    enum srv_pooling pooling;
};

void srv_params_free(struct srv_params *p);

/* An HTTP-facing error: status code, OpenAI error type/code, param, message. */
struct srv_error {
    int http;                 /* 400, 401, 404, 413, 500, 503, ... */
    const char *type;         /* "invalid_request_error", "server_error", ... */
    const char *code;         /* NULL or "context_length_exceeded", ... */
    char param[64];           /* "" when none */
    char message[512];
};

void srv_error_set(struct srv_error *e, int http, const char *type, const char *code,
                   const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* {"error":{"message","type","param","code"}} as an owned string (herd_free), or NULL. */
char *srv_error_json(const struct srv_error *e);
/* The request parsers' two helpers: a 400 invalid_request_error naming param (returns
 * false, so `return srv_bad(...)` ends a check), and a present, non-null field of o. */
bool srv_bad(struct srv_error *e, const char *param, const char *msg);
const cJSON *srv_field(const cJSON *o, const char *name);

/* Parses a request body as strict JSON: one object and nothing after it but blanks;
 * repeated keys resolved as Python's json.loads does (the last value wins). has_nul (may be
 * NULL) tells whether a string holds \u0000. NULL with err set (400, or 500 out of memory)
 * on failure; the caller owns the result. */
cJSON *srv_json_parse(const char *body, size_t len, bool *has_nul, struct srv_error *err);

/* Parses and validates a body for kind; logit_bias ids must be below n_vocab. On failure
 * returns false, fills err (400) and leaves p empty. */
bool srv_parse_request(enum srv_kind kind, const char *body, size_t len, int32_t n_vocab,
                       struct srv_params *p, struct srv_error *err);

/* ---- the shared request */

/* TOOLS is never set by the scheduler: the response writers use it when the text held
 * tool calls. */
enum srv_finish {
    SRV_FINISH_NONE = 0,
    SRV_FINISH_STOP = 1,
    SRV_FINISH_LENGTH = 2,
    SRV_FINISH_ERROR = 3,
    SRV_FINISH_TOOLS = 4,
    SRV_FINISH_FILTER = 5, /* the guard flagged the request or the answer (guard.c) */
};

struct srv_req {
    struct srv_params p;
    int32_t *prompt;          /* owned; n_prompt ids */
    int32_t n_prompt;
    char id[48];              /* "chatcmpl-..." / "cmpl-..." */
    int64_t created;          /* unix seconds */
    double t_arrival;         /* herd_time_s() when the request was accepted */
    int64_t text_base;        /* bytes before the generated text (echo), for text_offset */
    atomic_int refs;
    atomic_bool cancelled;

    pthread_mutex_t mu;       /* guards everything below */
    pthread_cond_t cv;        /* signalled on every append and at the end */
    struct herd_buf text;     /* visible text not yet taken by the HTTP side */
    cJSON *lp;                /* logprob entries not yet taken (array) or NULL */
    bool done;
    enum srv_finish finish;
    int32_t n_completion;     /* tokens generated so far */
    int32_t n_cached;         /* prompt tokens served from the prefix cache */
    char errmsg[256];         /* when finish == SRV_FINISH_ERROR */
    /* guard.c, HTTP side only: content_filter_results of a flagged request or answer
     * (owned, NULL when none) and the last verdict for the access log ("" when none) */
    cJSON *filter;
    char guard_note[64];
    /* Embeddings (SRV_EMBED): prompt holds the inputs one after another, input i at
     * [in_off[i], in_off[i + 1]). Each input runs in a slot of its own (a request may use
     * several); the scheduler writes input i's vector (dim floats) to embd before done. */
    int32_t n_inputs;
    int32_t *in_off;          /* owned; n_inputs + 1 */
    float *embd;              /* owned; n_inputs * dim */
    int32_t next_input;       /* scheduler only: the next input to start */
    int32_t n_embd_done;      /* scheduler only: inputs pooled */
    /* n > 1 and prompt lists: one request per choice, the first being the group's head.
     * The others borrow the head's params (p is a shallow copy; each holds a reference on
     * the head), and every choice's result fields are guarded by the head's mu and
     * signalled on its cv (srv_req_mu / srv_req_cv), so one wait sees them all. */
    struct srv_req *head;     /* NULL for a head or a single request */
    int32_t index;            /* choice index: prompt * n + j */
    /* the first choice of the same prompt (a reference is held), whose prompt KV this
     * choice copies when it is admitted during that prefill; NULL when none */
    struct srv_req *leader;
};

static inline pthread_mutex_t *srv_req_mu(struct srv_req *r)
{
    return r->head ? &r->head->mu : &r->mu;
}

static inline pthread_cond_t *srv_req_cv(struct srv_req *r)
{
    return r->head ? &r->head->cv : &r->cv;
}

struct srv_req *srv_req_new(void);
void srv_req_unref(struct srv_req *r);

/* ---- response writers (openai.c) */

/* The text a client sees as finish_reason. */
const char *srv_finish_str(enum srv_finish f);
/* A whole non-streaming response. text is the full generation; tool_calls NULL or an
 * array (ownership passes in); lp NULL or the logprob entries (ownership passes in). */
char *srv_response_json(const struct srv_req *r, const char *text, cJSON *tool_calls,
                        cJSON *lp, enum srv_finish finish, int32_t n_completion);
/* One SSE event "data: {...}\n\n" appended to out. delta_text may be NULL; finish NONE
 * for a content chunk; role_chunk for the first chat chunk. */
herd_status srv_chunk_sse(struct herd_buf *out, const struct srv_req *r, const char *text,
                          size_t text_len, cJSON *tool_calls, cJSON *lp, bool role_chunk,
                          enum srv_finish finish);
/* The include_usage chunk (choices: []). */
herd_status srv_usage_sse(struct herd_buf *out, const struct srv_req *r, int32_t n_completion);
/* Several choices: one choice object (index r->index) for srv_response_choices; tool_calls
 * and lp pass in as in srv_response_json. */
cJSON *srv_choice_json(const struct srv_req *r, const char *text, cJSON *tool_calls,
                       cJSON *lp, enum srv_finish finish);
/* A whole response with these choices (an array, ownership passes in) and usage totals. */
char *srv_response_choices(const struct srv_req *r, cJSON *choices, int32_t n_prompt,
                           int32_t n_completion, int32_t n_cached);
/* The include_usage chunk with usage totals. */
herd_status srv_usage_sse_totals(struct herd_buf *out, const struct srv_req *r,
                                 int32_t n_prompt, int32_t n_completion, int32_t n_cached);
/* A logprob entry for one token: chosen id with its logprob and the top alternatives. */
cJSON *srv_logprob_entry(const char *tok_bytes, size_t tok_len, float logprob,
                         const float *top_lps, const char *const *top_bytes,
                         const size_t *top_lens, int n_top, int64_t text_offset);
/* A JSON string value for bytes that may hold broken UTF-8 (replaced by U+FFFD). */
cJSON *srv_json_text(const char *s, size_t n);
/* Length of valid UTF-8 prefix; used so a JSON string never carries a broken sequence. */
size_t srv_utf8_valid_prefix(const char *s, size_t n);

/* ---- embed.c: /v1/embeddings */

#define SRV_MAX_EMBED_INPUTS 2048 /* OpenAI's limit of inputs per request */

/* Parses and validates an embeddings body (input, model, encoding_format, dimensions against
 * dim, the "pooling" extension; default_pool when absent). False with err (400) on failure,
 * p left empty. */
bool srv_parse_embed(const char *body, size_t len, int32_t n_vocab, int32_t dim,
                     enum srv_pooling default_pool, struct srv_params *p,
                     struct srv_error *err);
/* Fills r->prompt / in_off / n_inputs from r->p.body: strings are tokenized (BOS first,
 * special-token text as plain text), token arrays taken as given. An empty input or one
 * longer than n_ctx is a 400 naming its index. longest: the tokenizer's longest token in
 * bytes (a string that cannot fit is refused before it is tokenized). */
bool srv_embed_inputs(const herd_tokenizer *tok, int32_t n_ctx, size_t longest,
                      struct srv_req *r, struct srv_error *err);
/* The response object, {"object":"list","data":[...],"model","usage"}, owned (herd_free);
 * NULL when out of memory. */
char *srv_embed_response(const struct srv_req *r, int32_t dim);
/* L2-normalises a pooled vector (sum of n rows) into out: mean (divides by n) then unit
 * length; a zero vector stays zero. */
void srv_embed_finish(const double *sum, int32_t n, int32_t dim, float *out);

/* ---- stop strings (openai.c): text is withheld while it may still become a stop */

/* Given the held text h (len n), finds the first stop string. Returns its offset or -1.
 * *safe gets how many leading bytes cannot be part of a stop string that is still
 * completing (and so may be emitted now). */
long srv_stop_scan(const char *h, size_t n, char *const *stop, int n_stop, size_t *safe);

/* ---- json_constraint.c: an incremental JSON validator for constrained decoding */

#define SRV_JSONC_MAX_DEPTH 64 /* nesting limit: the container stack is one uint64_t */

/* ---- json_schema.c: JSON Schema compiled for constrained decoding */

enum {
    SRV_ST_OBJECT = 1,
    SRV_ST_ARRAY = 2,
    SRV_ST_STRING = 4,
    SRV_ST_NUMBER = 8,  /* any number */
    SRV_ST_INTEGER = 16, /* a number without fraction or exponent */
    SRV_ST_BOOLEAN = 32,
    SRV_ST_NULL = 64,
    SRV_ST_ANY = 127,
};
enum { SRV_FMT_NONE = 0, SRV_FMT_DATE, SRV_FMT_TIME, SRV_FMT_DATETIME, SRV_FMT_UUID };
#define SRV_SCHEMA_ANY 0         /* node 0: any JSON value; node 1 is the root */
#define SRV_SCHEMA_MAX_DEPTH 16  /* containers the constrained state tracks */
#define SRV_SCHEMA_MAX_PROPS 64  /* properties per object (a bit mask) */

/* One schema node. anyOf/oneOf become one node whose branch[k] names the node that a value
 * starting with class k follows (branches must differ in JSON type). */
struct srv_snode {
    uint8_t types;           /* SRV_ST_* a value may have */
    int16_t branch[6];       /* per first-byte class (object, array, string, number,
                              * boolean, null): the node to follow (-1: this one) */
    int32_t n_props;         /* object: properties, in schema order */
    char **keys;             /* their names as written inside JSON quotes (escaped) */
    size_t *key_lens;
    int16_t *prop_node;
    uint64_t required;       /* bit i: keys[i] is required */
    bool free_keys;          /* no properties declared: any key, any value */
    int16_t items;           /* array: the items' node */
    int32_t min_items, max_items;
    int32_t min_len, max_len; /* string, in characters */
    uint8_t format;          /* SRV_FMT_* */
    char **alts;             /* enum/const: the allowed values, printed compactly */
    int32_t n_alts;
    int32_t min_cost;        /* bytes of the shortest valid value */
};

struct srv_schema {
    struct srv_snode *nodes;
    int32_t n;
};

/* Compiles a JSON Schema (an object; its root must describe an object). On a keyword or
 * form herd cannot enforce, fails with err (400) naming it. param names the request field
 * for the error. */
bool srv_schema_compile(const cJSON *schema, const char *param, struct srv_schema **out,
                        struct srv_error *err);
void srv_schema_free(struct srv_schema *s);

/* A prefix of a JSON document whose top level is an object. Plain value: copy it to try
 * bytes without committing them. */
struct srv_sframe {
    int16_t node;
    uint16_t count;          /* array items so far */
    uint64_t used;           /* object: properties present */
};

struct srv_jsonc {
    uint64_t arrays;          /* bit d: the container at depth d is an array */
    int32_t depth;            /* open containers */
    uint8_t mode;             /* where in the grammar (json_constraint.c) */
    uint8_t sub;              /* string: 1 for a key; literal: which one */
    uint8_t aux;              /* hex digits / UTF-8 bytes left; literal bytes matched */
    uint8_t lo, hi;           /* range of the next UTF-8 continuation byte */
    uint8_t n_ws;             /* consecutive whitespace bytes */
    char *const *alts;        /* forced alternatives (borrowed), or NULL */
    int32_t n_alts;
    int32_t alt_ref;          /* a live alternative */
    int32_t alt_pos;          /* bytes of it matched; -1 when none is being forced */
    /* schema (srv_jsonc_schema): NULL for any JSON object */
    const struct srv_schema *schema;
    struct srv_sframe fr[SRV_SCHEMA_MAX_DEPTH]; /* one per open container */
    int16_t val_node;         /* the node of the value that starts next */
    int16_t cur_node;         /* the node of the string or number being read */
    int16_t key_ref;          /* a key being read: a live property, -1 any key */
    uint16_t key_pos;
    uint16_t s_chars;         /* characters of the string value so far */
    int16_t ealt_ref;         /* enum/const: a live value, -1 none */
    uint16_t ealt_pos;
    uint8_t s_prev;           /* a formatted string's previous byte */
    uint8_t ealt_depth;       /* containers open where the enum value started */
};

void srv_jsonc_init(struct srv_jsonc *j);
/* Holds the document to schema (borrowed; call right after init). */
void srv_jsonc_schema(struct srv_jsonc *j, const struct srv_schema *schema);
/* From here on the bytes must first spell one of alts (borrowed; none may be empty). */
void srv_jsonc_expect(struct srv_jsonc *j, char *const *alts, int32_t n_alts);
/* Feeds bytes; false when they make the prefix invalid (j is then undefined). */
bool srv_jsonc_feed(struct srv_jsonc *j, const char *s, size_t n);
/* The top-level object is complete. */
bool srv_jsonc_done(const struct srv_jsonc *j);
/* Bytes in the shortest valid completion (0 when done). */
int32_t srv_jsonc_cost(const struct srv_jsonc *j);

/* ---- glue.c: chat/ and sample/ */

/* Renders a chat request (p->raw) to prompt ids. A prompt that cannot leave room for one
 * generated token in n_ctx is refused as soon as that is certain (see
 * herd_chat_options.max_tokens). On failure fills err (400 for text that is not JSON the
 * renderer reads, a conversation the template refuses, or a prompt past the context; 500
 * otherwise) and returns false. */
bool srv_render_chat(const herd_tokenizer *tok, const herd_model_info *info,
                     const struct srv_params *p, int32_t n_ctx, int32_t **ids, size_t *n_ids,
                     struct srv_error *err);
/* Splits generated text into content (owned, *content) and OpenAI's tool_calls array
 * (NULL when the text holds no call). */
cJSON *srv_parse_tool_calls(const char *text, size_t len, const char *req_id, char **content);
/* Whether id ends generation (end of turn, end of message, end of text, model eos ids). */
bool srv_is_stop_token(const herd_tokenizer *tok, const herd_model_info *info, int32_t id);
/* Token classes for constrained decoding: SRV_TOK_TEXT (bytes), SRV_TOK_STOP (ends
 * generation), SRV_TOK_SPECIAL (other control tokens, never valid JSON). Owned array of
 * n_vocab, made once per server. */
enum { SRV_TOK_TEXT = 0, SRV_TOK_STOP = 1, SRV_TOK_SPECIAL = 2 };
herd_status srv_token_classes(const herd_tokenizer *tok, const herd_model_info *info,
                              uint8_t **out);
/* The vocabulary grouped by first byte, made once per server: the full scan of a
 * constrained step tries only tokens whose first byte the state accepts. ids holds the
 * text tokens, those starting with byte b at [start[b], start[b + 1]); stops the stop
 * tokens. */
struct srv_vocab_index {
    int32_t start[257];
    int32_t *ids;
    int32_t *stops;
    int32_t n_stops;
};
herd_status srv_vocab_index_new(const herd_tokenizer *tok, const uint8_t *cls,
                                int32_t n_vocab, struct srv_vocab_index **out);
void srv_vocab_index_free(struct srv_vocab_index *vi);

/* Samples a token whose bytes keep j a valid prefix, and feeds them to j. budget: tokens
 * that may follow this one; a token is refused when its shortest completion would not
 * fit (when none fits, the one closest to done wins). scratch: n_vocab floats. row is not
 * modified. vi may be NULL (every token is tried). Returns -1 when no token is valid at
 * all. Never allocates. */
int32_t srv_sample_json(herd_sampler *smp, const herd_tokenizer *tok, const uint8_t *cls,
                        const struct srv_vocab_index *vi, const float *row, float *scratch,
                        int32_t n_vocab, struct srv_jsonc *j, int32_t budget);

/* A sampler for the request: its temperature/top_p or else the model's defaults, its
 * penalties, logit_bias and seed (a fresh random seed when none). */
herd_status srv_sampler_new(const struct srv_params *p, const herd_model_info *info,
                            herd_sampler **out);

/* ---- toolstream.c: a chat stream when tools are offered */

/* Content streams as it comes; tool calls go out as delta.tool_calls (name first, then
 * arguments in pieces) as soon as the text decides them, and the finished calls equal
 * srv_parse_tool_calls on the whole text (the non-stream answer). req_id is borrowed. */
struct srv_toolstream;
herd_status srv_toolstream_new(const char *req_id, struct srv_toolstream **out);
void srv_toolstream_free(struct srv_toolstream *ts);
/* New generated text: content to send is appended to content, tool-call deltas to *deltas
 * (an array made when NULL). */
herd_status srv_toolstream_feed(struct srv_toolstream *ts, const char *s, size_t n,
                                struct herd_buf *content, cJSON **deltas);
/* The text ended: what is still held goes out; *has_calls tells the finish reason. */
herd_status srv_toolstream_finish(struct srv_toolstream *ts, struct herd_buf *content,
                                  cJSON **deltas, bool *has_calls);

/* ---- metrics.c */

struct srv_metrics;
herd_status srv_metrics_new(struct srv_metrics **out);
void srv_metrics_free(struct srv_metrics *m);
void srv_metrics_request(struct srv_metrics *m, const char *endpoint, int http);
void srv_metrics_tokens(struct srv_metrics *m, int64_t prompt, int64_t generated,
                        int64_t cached);
void srv_metrics_ttft(struct srv_metrics *m, double seconds);
void srv_metrics_token_latency(struct srv_metrics *m, double seconds);
void srv_metrics_gauges(struct srv_metrics *m, int64_t queue_depth, int64_t active_slots);
void srv_metrics_cancelled(struct srv_metrics *m);
/* A guard verdict: check "input"/"output", verdict "safe", "unsafe", "unparseable", "error"
 * or "none" (nothing to check). */
void srv_metrics_guard(struct srv_metrics *m, const char *check, const char *verdict);
/* The Prometheus text exposition; owned (herd_free). */
char *srv_metrics_text(struct srv_metrics *m);

/* ---- guard.c: the Llama Guard 3 shield (herd serve --guard) */

enum { SRV_GUARD_INPUT = 1, SRV_GUARD_OUTPUT = 2 };
struct srv_guard;
/* A guard on model m with its own context (room for n_ctx conversation tokens). on: a mix of
 * SRV_GUARD_*, 0 = both. categories: "S1,S10" or NULL (all). */
herd_status srv_guard_new(const herd_model *m, const char *categories, int on, int32_t n_ctx,
                          int32_t n_threads, struct srv_guard **out);
void srv_guard_free(struct srv_guard *g);
bool srv_guard_on(const struct srv_guard *g, int which);
/* Input check of a chat request (g may be NULL). True: flagged, and r is marked done with
 * SRV_FINISH_FILTER (nothing is to be generated) and r->filter set. */
bool srv_guard_input(struct srv_guard *g, struct srv_metrics *mt, struct srv_req *r);
/* Output check of a chat answer. True: flagged (r->filter set); the caller drops the text. */
bool srv_guard_output(struct srv_guard *g, struct srv_metrics *mt, struct srv_req *r,
                      const char *text, size_t len);
/* A stream's output check: text taken from the scheduler goes in (*text, owned) and what may
 * be sent comes out in its place, a sentence at a time once checked; flagged: no text,
 * *done, *finish = SRV_FINISH_FILTER, and r is cancelled. */
struct srv_guard_stream;
herd_status srv_guard_stream_new(struct srv_guard_stream **out);
void srv_guard_stream_free(struct srv_guard_stream *gs);
herd_status srv_guard_stream_feed(struct srv_guard *g, struct srv_metrics *mt,
                                  struct srv_req *r, struct srv_guard_stream *gs, char **text,
                                  size_t *len, bool *done, enum srv_finish *finish);

/* ---- sched.c */

struct srv_sched;
struct srv_sched_params {
    int32_t n_slots;
    int32_t n_ctx;
    int32_t n_batch;
    int32_t n_threads;
    int32_t max_queue;
    herd_dtype kv_type;
    int32_t test_step_ms; /* sleep before each decode step (herd_server_options) */
    /* speculative decoding (herd_server_options.draft, lookup, draft_max, draft_min) */
    const herd_model *draft;
    int32_t lookup, draft_max, draft_min;
};
herd_status srv_sched_new(const herd_model *m, const struct srv_sched_params *sp,
                          struct srv_metrics *metrics, struct srv_sched **out);
/* Stops the thread; queued and running requests finish with an error, later submits fail.
 * The HTTP side may still read its requests. */
void srv_sched_stop(struct srv_sched *s);
/* Stops (if needed) and frees. */
void srv_sched_free(struct srv_sched *s);
int32_t srv_sched_n_ctx(const struct srv_sched *s);
int64_t srv_sched_kv_bytes(const struct srv_sched *s); /* all slots' KV cache */
/* Queues r (taking one reference). False when the queue is full or stopping. */
bool srv_sched_submit(struct srv_sched *s, struct srv_req *r);
/* Queues the n requests of a group in order, all or none. */
bool srv_sched_submit_n(struct srv_sched *s, struct srv_req *const *r, int32_t n);
/* Slots in use and requests waiting, for /health and tests. */
void srv_sched_load(struct srv_sched *s, int32_t *active, int32_t *queued);
/* The model's tokenizer and facts, for the HTTP side's validation. */
const herd_tokenizer *srv_sched_tokenizer(const struct srv_sched *s);
const herd_model_info *srv_sched_info(const struct srv_sched *s);
/* herd_tokenizer_max_token_bytes of the model's tokenizer (1 without one). */
size_t srv_sched_longest_token(const struct srv_sched *s);

#endif /* HERD_SERVER_H */
