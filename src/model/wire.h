/*
 * wire.h - the requests rank 0 of a multi-rank job sends its followers (dispatch.c): one
 * struct per call, fixed-width fields, layout pinned at compile time below.
 *
 * A request is one broadcast of exactly WIRE_MSG_BYTES (struct wire_msg): a header, the
 * call's arguments (a union of the per-call structs) and up to WIRE_INLINE_BYTES of payload
 * (the model path, or a decode's tokens as struct wire_token). A longer payload follows in
 * a second broadcast of header.n_payload bytes. Followers check every header (magic, then
 * version, then op and payload size) before reading anything else.
 *
 * Compatibility rule: the header's first 8 bytes (magic, version) and WIRE_MSG_BYTES never
 * change, so a follower of any version receives a request whole and can refuse it with a
 * message instead of a truncated-receive error. Any other change to these structs, to the
 * ops or to what a field means bumps WIRE_VERSION. All ranks must be the same herd build
 * (herd_dist_init also compares versions once at start); the magic's byte order catches a
 * node of the other endianness, which MPI_BYTE broadcasts would not convert.
 */
#ifndef HERD_WIRE_H
#define HERD_WIRE_H

#include "herd.h" /* herd_status, herd_batch, herd_context_params */

#include <stddef.h> /* offsetof for the layout checks */
#include <stdint.h>

#define WIRE_MAGIC 0x64726568u /* "herd" in memory on a little-endian rank */
#define WIRE_VERSION 2 /* 2: the device a model loads on */
#define WIRE_MSG_BYTES 1024 /* frozen (see above); 60 decode tokens fit inline */
#define WIRE_HEADER_BYTES 16
#define WIRE_ARGS_BYTES 48 /* the largest per-call struct (32), with room to grow */
#define WIRE_INLINE_BYTES (WIRE_MSG_BYTES - WIRE_HEADER_BYTES - WIRE_ARGS_BYTES)

/* Append-only; values are on the wire. */
enum wire_op {
    WIRE_EXIT = 1, /* rank 0 is exiting: followers free everything and return */
    WIRE_MODEL_LOAD = 2,
    WIRE_MODEL_FREE = 3,
    WIRE_CONTEXT_NEW = 4,
    WIRE_CONTEXT_FREE = 5,
    WIRE_DECODE = 6,
    WIRE_SEQ_TRUNCATE = 7,
    WIRE_SEQ_COPY = 8,
};

struct wire_header {
    uint32_t magic;     /* WIRE_MAGIC */
    uint16_t version;   /* WIRE_VERSION of the sender */
    uint16_t op;        /* enum wire_op */
    int32_t id;         /* the model or context the call creates or acts on; 0 for exit */
    uint32_t n_payload; /* payload bytes: inline when <= WIRE_INLINE_BYTES, else sent next */
};

/* payload: the path as rank 0 was given it, NUL-terminated (each rank opens it relative to
 * its own working folder) */
struct wire_model_load {
    int32_t n_threads; /* 0 = each rank's default */
    int32_t tp, pp;    /* HERD_TP / HERD_PP as read on rank 0; 0 = automatic */
    char device[32];   /* the backend device, NUL-terminated; "" = the default (cpu) */
};

struct wire_context_new {
    int32_t model_id;
    int32_t n_ctx, n_seq, n_batch, n_threads;
    int32_t kv_type;   /* herd_dtype */
    int64_t mem_limit; /* each rank checks its own memory when 0 */
};

/* payload: n_tokens struct wire_token */
struct wire_decode {
    int32_t n_tokens;
};

struct wire_token {
    int32_t token, pos, seq;
    int8_t logits; /* the batch's logits flag; 0 when the batch has none */
    uint8_t pad[3];
};

struct wire_seq_truncate {
    int32_t seq, from;
};

struct wire_seq_copy {
    int32_t dst, src, n;
};

struct wire_msg {
    struct wire_header h;
    union {
        struct wire_model_load load;
        struct wire_context_new context;
        struct wire_decode decode;
        struct wire_seq_truncate truncate;
        struct wire_seq_copy copy;
        uint8_t bytes[WIRE_ARGS_BYTES];
    } args;
    uint8_t data[WIRE_INLINE_BYTES]; /* the payload when it fits */
};

/* The layout is the protocol: a compiler or an edit that moves a field fails the build. */
_Static_assert(sizeof(struct wire_header) == WIRE_HEADER_BYTES, "wire_header size");
_Static_assert(offsetof(struct wire_header, magic) == 0, "wire_header.magic");
_Static_assert(offsetof(struct wire_header, version) == 4, "wire_header.version");
_Static_assert(offsetof(struct wire_header, op) == 6, "wire_header.op");
_Static_assert(offsetof(struct wire_header, id) == 8, "wire_header.id");
_Static_assert(offsetof(struct wire_header, n_payload) == 12, "wire_header.n_payload");
_Static_assert(sizeof(struct wire_model_load) == 44, "wire_model_load size");
_Static_assert(offsetof(struct wire_model_load, device) == 12, "wire_model_load.device");
_Static_assert(offsetof(struct wire_model_load, pp) == 8, "wire_model_load.pp");
_Static_assert(sizeof(struct wire_context_new) == 32, "wire_context_new size");
_Static_assert(offsetof(struct wire_context_new, kv_type) == 20, "wire_context_new.kv_type");
_Static_assert(offsetof(struct wire_context_new, mem_limit) == 24, "wire_context_new.mem_limit");
_Static_assert(sizeof(struct wire_decode) == 4, "wire_decode size");
_Static_assert(sizeof(struct wire_token) == 16, "wire_token size");
_Static_assert(offsetof(struct wire_token, logits) == 12, "wire_token.logits");
_Static_assert(sizeof(struct wire_seq_truncate) == 8, "wire_seq_truncate size");
_Static_assert(sizeof(struct wire_seq_copy) == 12, "wire_seq_copy size");
_Static_assert(offsetof(struct wire_seq_copy, n) == 8, "wire_seq_copy.n");
_Static_assert(offsetof(struct wire_msg, args) == WIRE_HEADER_BYTES, "wire_msg.args");
_Static_assert(offsetof(struct wire_msg, data) == WIRE_HEADER_BYTES + WIRE_ARGS_BYTES,
               "wire_msg.data");
_Static_assert(sizeof(struct wire_msg) == WIRE_MSG_BYTES, "wire_msg size");

/* A request being built on rank 0 or received on a follower. payload points at msg.data
 * when the payload fits there, else at a herd_malloc'd block (wire_request_free). */
struct wire_request {
    struct wire_msg msg;
    uint8_t *payload;
};

/* ---- rank 0: each fills r from zero (no uninitialised byte goes out). Fail only on a
 * payload that cannot be allocated or sized. */
void wire_encode(struct wire_request *r, enum wire_op op, int32_t id); /* calls without args */
herd_status wire_encode_model_load(struct wire_request *r, int32_t id, const char *path,
                                   int32_t n_threads, const char *device, int32_t tp,
                                   int32_t pp);
void wire_encode_context_new(struct wire_request *r, int32_t id, int32_t model_id,
                             const herd_context_params *p);
herd_status wire_encode_decode(struct wire_request *r, int32_t ctx_id, const herd_batch *b);
void wire_encode_seq_truncate(struct wire_request *r, int32_t ctx_id, int32_t seq,
                              int32_t from);
void wire_encode_seq_copy(struct wire_request *r, int32_t ctx_id, int32_t dst, int32_t src,
                          int32_t n);
void wire_request_free(struct wire_request *r);

/* ---- followers */

/* Checks a received header: magic (and so byte order), version, a known op, and a payload
 * size that op allows. A failure's message says what differs, in one line. */
herd_status wire_check(const struct wire_msg *msg);
/* After wire_check: points r->payload at the inline bytes, or allocates n_payload bytes
 * for the second broadcast to fill. */
herd_status wire_payload_alloc(struct wire_request *r);
/* The arguments of a checked request whose payload has arrived. path is borrowed from r. */
herd_status wire_decode_model_load(const struct wire_request *r, const char **path,
                                   int32_t *n_threads, const char **device, int32_t *tp,
                                   int32_t *pp);
void wire_decode_context_new(const struct wire_request *r, int32_t *model_id,
                             herd_context_params *p);
/* Fills b with arrays in one allocation; release with wire_batch_free. */
herd_status wire_decode_decode(const struct wire_request *r, herd_batch *b);
void wire_batch_free(herd_batch *b);

#endif /* HERD_WIRE_H */
