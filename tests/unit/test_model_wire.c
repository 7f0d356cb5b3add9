/*
 * test_model_wire.c - the requests rank 0 sends its MPI followers (src/model/wire.h), without
 * MPI: every call is encoded, carried as a follower would receive it (the fixed-size message
 * copied, a long payload through a second buffer), checked and decoded, and must come back
 * field for field. Headers a follower must refuse (another protocol version, the other byte
 * order, no magic, an unknown call, a payload size its call does not allow, a path that is
 * not one string) are refused with a one-line message.
 */
#include "model/wire.h"
#include "check.h"

#include <string.h>

/* What a follower sees: the message bytes, then the payload when it did not fit inline. */
static herd_status carry(const struct wire_request *sent, struct wire_request *got)
{
    memcpy(&got->msg, &sent->msg, sizeof got->msg);
    got->payload = NULL;
    herd_status s = wire_check(&got->msg);
    if (s == HERD_OK)
        s = wire_payload_alloc(got);
    if (s == HERD_OK && got->msg.h.n_payload > WIRE_INLINE_BYTES)
        memcpy(got->payload, sent->payload, got->msg.h.n_payload);
    return s;
}

static void test_simple_ops(void)
{
    static const struct {
        enum wire_op op;
        int32_t id;
    } cases[] = {{WIRE_EXIT, 0}, {WIRE_MODEL_FREE, 3}, {WIRE_CONTEXT_FREE, 7}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct wire_request r, g;
        wire_encode(&r, cases[i].op, cases[i].id);
        CHECK(carry(&r, &g) == HERD_OK);
        CHECK(g.msg.h.op == cases[i].op && g.msg.h.id == cases[i].id);
        CHECK(g.msg.h.version == WIRE_VERSION && g.msg.h.n_payload == 0);
        wire_request_free(&g);
    }
}

static void test_model_load(void)
{
    static char long_path[3000];
    memset(long_path, 'a', sizeof long_path - 1);
    const char *paths[] = {"m.gguf", "/models/Llama-3.1-8B-Instruct", long_path};
    const char *devices[] = {NULL, "cuda:1", "cpu"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct wire_request r, g;
        CHECK(wire_encode_model_load(&r, 5, paths[i], 4, devices[i], 2, 3) == HERD_OK);
        CHECK((r.payload == r.msg.data) == (strlen(paths[i]) < WIRE_INLINE_BYTES));
        CHECK(carry(&r, &g) == HERD_OK);
        const char *path = NULL, *dev = NULL;
        int32_t n_threads = 0, tp = 0, pp = 0;
        CHECK(wire_decode_model_load(&g, &path, &n_threads, &dev, &tp, &pp) == HERD_OK);
        CHECK(path && strcmp(path, paths[i]) == 0);
        CHECK(dev && strcmp(dev, devices[i] ? devices[i] : "") == 0);
        CHECK(g.msg.h.id == 5 && n_threads == 4 && tp == 2 && pp == 3);
        wire_request_free(&r);
        wire_request_free(&g);
    }
}

static void test_context_new(void)
{
    herd_context_params p = herd_context_default_params(), q;
    p.n_ctx = 8192;
    p.n_seq = 4;
    p.n_batch = 64;
    p.n_threads = 3;
    p.kv_type = HERD_DTYPE_Q8_0;
    p.mem_limit = (int64_t)3 << 40;
    struct wire_request r, g;
    wire_encode_context_new(&r, 9, 2, &p);
    CHECK(carry(&r, &g) == HERD_OK);
    int32_t model_id = 0;
    wire_decode_context_new(&g, &model_id, &q);
    CHECK(g.msg.h.id == 9 && model_id == 2);
    CHECK(q.n_ctx == 8192 && q.n_seq == 4 && q.n_batch == 64 && q.n_threads == 3);
    CHECK(q.kv_type == HERD_DTYPE_Q8_0 && q.mem_limit == (int64_t)3 << 40);
}

/* Batch sizes around the inline limit, with and without logits flags. */
#define FIT ((int32_t)(WIRE_INLINE_BYTES / sizeof(struct wire_token))) /* tokens inline */
static void test_decode(void)
{
    static const struct {
        int32_t n;
        int flags;
    } cases[] = {{0, 0}, {1, 1}, {FIT, 1}, {FIT + 1, 0}, {FIT + 1, 1}, {300, 1}};
    static int32_t tok[300], pos[300], seq[300];
    static int8_t want[300];
    for (int i = 0; i < 300; i++) {
        tok[i] = 128000 + i * 7;
        pos[i] = i / 3;
        seq[i] = i % 3;
        want[i] = (int8_t)(i % 5 == 0);
    }
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int32_t n = cases[c].n;
        herd_batch b = {n, tok, pos, seq, cases[c].flags ? want : NULL}, d;
        struct wire_request r, g;
        CHECK(wire_encode_decode(&r, 11, &b) == HERD_OK);
        CHECK(r.msg.h.n_payload == (uint32_t)n * sizeof(struct wire_token));
        CHECK((r.payload == r.msg.data) == (n <= FIT));
        CHECK(carry(&r, &g) == HERD_OK);
        CHECK(wire_decode_decode(&g, &d) == HERD_OK);
        int same = d.n_tokens == n && g.msg.h.id == 11;
        for (int32_t i = 0; i < n && same; i++)
            same = d.tokens[i] == tok[i] && d.pos[i] == pos[i] && d.seq[i] == seq[i] &&
                   d.logits[i] == (cases[c].flags ? want[i] : 0);
        CHECK_MSG(same, "batch of %d tokens, flags %d", n, cases[c].flags);
        wire_batch_free(&d);
        wire_request_free(&r);
        wire_request_free(&g);
    }
}

static void test_seq_ops(void)
{
    struct wire_request r, g;
    wire_encode_seq_truncate(&r, 4, 2, 17);
    CHECK(carry(&r, &g) == HERD_OK);
    CHECK(g.msg.h.op == WIRE_SEQ_TRUNCATE && g.msg.h.id == 4);
    CHECK(g.msg.args.truncate.seq == 2 && g.msg.args.truncate.from == 17);
    wire_encode_seq_copy(&r, 4, 1, 0, 33);
    CHECK(carry(&r, &g) == HERD_OK);
    CHECK(g.msg.h.op == WIRE_SEQ_COPY && g.msg.args.copy.dst == 1);
    CHECK(g.msg.args.copy.src == 0 && g.msg.args.copy.n == 33);
}

/* The same call encodes to the same bytes: nothing uninitialised goes on the wire. */
static void test_deterministic(void)
{
    static struct wire_request a, b;
    memset(&a, 0xAA, sizeof a);
    memset(&b, 0x55, sizeof b);
    herd_context_params p = herd_context_default_params();
    wire_encode_context_new(&a, 1, 1, &p);
    wire_encode_context_new(&b, 1, 1, &p);
    CHECK(memcmp(&a.msg, &b.msg, sizeof a.msg) == 0);
}

static uint32_t swap32(uint32_t x)
{
    return (x >> 24) | ((x >> 8) & 0xff00u) | ((x << 8) & 0xff0000u) | (x << 24);
}

/* Headers a follower must refuse, each with its one-line reason. */
static void test_refused(void)
{
    struct case_ {
        const char *name;
        int field; /* 0 version, 1 magic, 2 op, 3 n_payload, 4 n_tokens */
        uint32_t value;
        herd_status expect;
        const char *message;
    };
    static const struct case_ cases[] = {
        {"newer version", 0, WIRE_VERSION + 1, HERD_ERR_UNSUPPORTED, "wire protocol version"},
        {"older version", 0, 0, HERD_ERR_UNSUPPORTED, "same herd build"},
        {"other byte order", 1, 0, HERD_ERR_UNSUPPORTED, "byte order"},
        {"no magic", 1, 0x12345678u, HERD_ERR_INTERNAL, "magic"},
        {"unknown call", 2, 99, HERD_ERR_INTERNAL, "unknown request 99"},
        {"payload on a free", 3, 16, HERD_ERR_INTERNAL, "payload of 16 bytes"},
        {"payload size off", 4, 2, HERD_ERR_INTERNAL, "payload of 16 bytes"},
    };
    static const int32_t one[1] = {1};
    const herd_batch b = {1, one, one, one, NULL};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct case_ *c = &cases[i];
        struct wire_request r, g;
        if (c->field == 3)
            wire_encode(&r, WIRE_MODEL_FREE, 1);
        else
            CHECK(wire_encode_decode(&r, 1, &b) == HERD_OK);
        if (c->field == 0)
            r.msg.h.version = (uint16_t)c->value;
        else if (c->field == 1)
            r.msg.h.magic = c->value ? c->value : swap32(WIRE_MAGIC);
        else if (c->field == 2)
            r.msg.h.op = (uint16_t)c->value;
        else if (c->field == 3)
            r.msg.h.n_payload = c->value;
        else
            r.msg.args.decode.n_tokens = (int32_t)c->value;
        herd_status s = carry(&r, &g);
        const char *e = herd_last_error();
        CHECK_MSG(s == c->expect, "%s: status %d", c->name, (int)s);
        CHECK_MSG(strstr(e, c->message) && !strchr(e, '\n'), "%s: \"%s\"", c->name, e);
        wire_request_free(&r);
    }
    /* A device name longer than its field is refused, not cut. */
    struct wire_request r, g;
    CHECK(wire_encode_model_load(&r, 1, "m", 0, "cuda:0123456789012345678901234567890", 0, 0) ==
          HERD_ERR_INVALID);
    wire_request_free(&r);
    /* A model path whose payload is not one NUL-terminated string. */
    const char *path = NULL, *dev = NULL;
    int32_t t, tp, pp;
    CHECK(wire_encode_model_load(&r, 1, "ab", 0, NULL, 0, 0) == HERD_OK);
    r.msg.data[2] = 'c';
    CHECK(carry(&r, &g) == HERD_OK);
    CHECK(wire_decode_model_load(&g, &path, &t, &dev, &tp, &pp) == HERD_ERR_INTERNAL && !path);
    r.msg.data[1] = '\0';
    r.msg.data[2] = '\0';
    CHECK(carry(&r, &g) == HERD_OK);
    CHECK(wire_decode_model_load(&g, &path, &t, &dev, &tp, &pp) == HERD_ERR_INTERNAL && !path);
}

int main(void)
{
    test_simple_ops();
    test_model_load();
    test_context_new();
    test_decode();
    test_seq_ops();
    test_deterministic();
    test_refused();
    return check_done();
}
