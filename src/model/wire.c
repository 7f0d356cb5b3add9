/*
 * wire.c - encoding and checking the requests of wire.h. Pure functions over memory: no
 * communication happens here (dispatch.c broadcasts), so the unit test runs them without
 * MPI. Encoders start from a zeroed message, so padding and unused argument bytes go out
 * as zeros; followers check a header before trusting any size in it.
 */
#include "wire.h"
#include "base/base.h" /* herd_fail, herd_malloc */

#include <string.h>

/* Every field of the public params crosses the wire: one added to herd.h fails here until it
 * is carried (struct wire_model_load / wire_context_new) and WIRE_VERSION is bumped. */
_Static_assert(sizeof(herd_model_params) == 2 * sizeof(void *), "carry the new herd_model_params "
               "field"); /* n_threads, device */
_Static_assert(sizeof(herd_context_params) == 32, "carry the new herd_context_params field");

/* A model path longer than this is not a path: a corrupt header. */
#define MAX_PATH_BYTES (1u << 16)

static void begin(struct wire_request *r, enum wire_op op, int32_t id)
{
    memset(&r->msg, 0, sizeof r->msg);
    r->msg.h.magic = WIRE_MAGIC;
    r->msg.h.version = WIRE_VERSION;
    r->msg.h.op = (uint16_t)op;
    r->msg.h.id = id;
    r->payload = NULL;
}

/* Points r->payload at room for bytes: the inline area when they fit. */
static herd_status reserve(struct wire_request *r, size_t bytes, const char *what)
{
    if (bytes > UINT32_MAX)
        return herd_fail(HERD_ERR_INVALID, "%s: %zu bytes do not fit a request", what, bytes);
    r->msg.h.n_payload = (uint32_t)bytes;
    r->payload = bytes <= WIRE_INLINE_BYTES ? r->msg.data : herd_malloc(bytes);
    if (!r->payload)
        return herd_fail(HERD_ERR_NOMEM, "%s: %zu bytes for the other ranks", what, bytes);
    return HERD_OK;
}

void wire_encode(struct wire_request *r, enum wire_op op, int32_t id)
{
    begin(r, op, id);
}

herd_status wire_encode_model_load(struct wire_request *r, int32_t id, const char *path,
                                   int32_t n_threads, const char *device, int32_t tp,
                                   int32_t pp)
{
    begin(r, WIRE_MODEL_LOAD, id);
    if (!device)
        device = "";
    if (strlen(device) >= sizeof r->msg.args.load.device)
        return herd_fail(HERD_ERR_INVALID, "device name '%s' is too long", device);
    memcpy(r->msg.args.load.device, device, strlen(device) + 1);
    r->msg.args.load.n_threads = n_threads;
    r->msg.args.load.tp = tp;
    r->msg.args.load.pp = pp;
    size_t n = strlen(path) + 1;
    if (n > MAX_PATH_BYTES)
        return herd_fail(HERD_ERR_INVALID, "model path of %zu bytes is too long", n);
    herd_status s = reserve(r, n, "model path");
    if (s == HERD_OK)
        memcpy(r->payload, path, n);
    return s;
}

void wire_encode_context_new(struct wire_request *r, int32_t id, int32_t model_id,
                             const herd_context_params *p)
{
    begin(r, WIRE_CONTEXT_NEW, id);
    struct wire_context_new *a = &r->msg.args.context;
    a->model_id = model_id;
    a->n_ctx = p->n_ctx;
    a->n_seq = p->n_seq;
    a->n_batch = p->n_batch;
    a->n_threads = p->n_threads;
    a->kv_type = (int32_t)p->kv_type;
    a->mem_limit = p->mem_limit;
}

herd_status wire_encode_decode(struct wire_request *r, int32_t ctx_id, const herd_batch *b)
{
    begin(r, WIRE_DECODE, ctx_id);
    size_t n = (size_t)b->n_tokens;
    r->msg.args.decode.n_tokens = b->n_tokens;
    herd_status s = reserve(r, n * sizeof(struct wire_token), "batch");
    for (size_t i = 0; i < n && s == HERD_OK; i++) {
        struct wire_token t = {.token = b->tokens[i], .pos = b->pos[i], .seq = b->seq[i]};
        t.logits = b->logits ? b->logits[i] : 0;
        memcpy(r->payload + i * sizeof t, &t, sizeof t); /* payload bytes are unaligned */
    }
    return s;
}

void wire_encode_seq_truncate(struct wire_request *r, int32_t ctx_id, int32_t seq,
                              int32_t from)
{
    begin(r, WIRE_SEQ_TRUNCATE, ctx_id);
    r->msg.args.truncate.seq = seq;
    r->msg.args.truncate.from = from;
}

void wire_encode_seq_copy(struct wire_request *r, int32_t ctx_id, int32_t dst, int32_t src,
                          int32_t n)
{
    begin(r, WIRE_SEQ_COPY, ctx_id);
    r->msg.args.copy.dst = dst;
    r->msg.args.copy.src = src;
    r->msg.args.copy.n = n;
}

void wire_request_free(struct wire_request *r)
{
    if (r->payload && r->payload != r->msg.data)
        herd_free(r->payload);
    r->payload = NULL;
}

static uint32_t swap32(uint32_t x)
{
    return (x >> 24) | ((x >> 8) & 0xff00u) | ((x << 8) & 0xff0000u) | (x << 24);
}

herd_status wire_check(const struct wire_msg *msg)
{
    const struct wire_header *h = &msg->h;
    if (h->magic == swap32(WIRE_MAGIC))
        return herd_fail(HERD_ERR_UNSUPPORTED, "rank 0 has the other byte order; every rank "
                         "must be the same kind of machine");
    if (h->magic != WIRE_MAGIC)
        return herd_fail(HERD_ERR_INTERNAL, "a request from rank 0 without the herd magic "
                         "(0x%08x)", (unsigned)h->magic);
    if (h->version != WIRE_VERSION)
        return herd_fail(HERD_ERR_UNSUPPORTED, "rank 0 speaks herd wire protocol version %u, "
                         "this build version %u: run the same herd build on every node",
                         (unsigned)h->version, (unsigned)WIRE_VERSION);
    uint32_t n = h->n_payload;
    int ok;
    switch (h->op) {
    case WIRE_MODEL_LOAD:
        ok = n >= 1 && n <= MAX_PATH_BYTES;
        break;
    case WIRE_DECODE:
        ok = msg->args.decode.n_tokens >= 0 &&
             (uint64_t)n == (uint64_t)msg->args.decode.n_tokens * sizeof(struct wire_token);
        break;
    case WIRE_EXIT:
    case WIRE_MODEL_FREE:
    case WIRE_CONTEXT_NEW:
    case WIRE_CONTEXT_FREE:
    case WIRE_SEQ_TRUNCATE:
    case WIRE_SEQ_COPY:
        ok = n == 0;
        break;
    default:
        return herd_fail(HERD_ERR_INTERNAL, "unknown request %u from rank 0", (unsigned)h->op);
    }
    if (!ok)
        return herd_fail(HERD_ERR_INTERNAL, "request %u from rank 0 with a payload of %u bytes",
                         (unsigned)h->op, (unsigned)n);
    return HERD_OK;
}

herd_status wire_payload_alloc(struct wire_request *r)
{
    r->payload = NULL;
    return reserve(r, r->msg.h.n_payload, "request");
}

herd_status wire_decode_model_load(const struct wire_request *r, const char **path,
                                   int32_t *n_threads, const char **device, int32_t *tp,
                                   int32_t *pp)
{
    const char *dev = r->msg.args.load.device;
    if (!memchr(dev, '\0', sizeof r->msg.args.load.device))
        return herd_fail(HERD_ERR_INTERNAL, "device name from rank 0 is not one string");
    uint32_t n = r->msg.h.n_payload;
    if (n == 0 || r->payload[n - 1] != '\0' || memchr(r->payload, '\0', n) != r->payload + n - 1)
        return herd_fail(HERD_ERR_INTERNAL, "model path from rank 0 is not one string");
    *path = (const char *)r->payload;
    *n_threads = r->msg.args.load.n_threads;
    *device = dev;
    *tp = r->msg.args.load.tp;
    *pp = r->msg.args.load.pp;
    return HERD_OK;
}

void wire_decode_context_new(const struct wire_request *r, int32_t *model_id,
                             herd_context_params *p)
{
    const struct wire_context_new *a = &r->msg.args.context;
    *model_id = a->model_id;
    *p = herd_context_default_params();
    p->n_ctx = a->n_ctx;
    p->n_seq = a->n_seq;
    p->n_batch = a->n_batch;
    p->n_threads = a->n_threads;
    p->kv_type = (herd_dtype)a->kv_type;
    p->mem_limit = a->mem_limit;
}

herd_status wire_decode_decode(const struct wire_request *r, herd_batch *b)
{
    size_t n = (size_t)r->msg.args.decode.n_tokens;
    memset(b, 0, sizeof *b);
    /* tokens, pos, seq as int32 arrays, then the logits flags; +1 for an empty batch */
    int32_t *arrays = herd_malloc(n * (3 * sizeof(int32_t) + 1) + 1);
    if (!arrays)
        return herd_fail(HERD_ERR_NOMEM, "batch of %zu tokens", n);
    int8_t *flags = (int8_t *)(arrays + 3 * n);
    for (size_t i = 0; i < n; i++) {
        struct wire_token t;
        memcpy(&t, r->payload + i * sizeof t, sizeof t);
        arrays[i] = t.token;
        arrays[n + i] = t.pos;
        arrays[2 * n + i] = t.seq;
        flags[i] = t.logits;
    }
    b->n_tokens = (int32_t)n;
    b->tokens = arrays;
    b->pos = arrays + n;
    b->seq = arrays + 2 * n;
    b->logits = flags;
    return HERD_OK;
}

void wire_batch_free(herd_batch *b)
{
    herd_free((void *)b->tokens);
    memset(b, 0, sizeof *b);
}
