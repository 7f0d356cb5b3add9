/*
 * follow.c - one program on every rank: rank 0 leads, the others follow.
 *
 * `mpirun -np N herd generate -m MODEL ...` starts the same command N times. herd_dist_init
 * (first thing in main) lets rank 0 go on into the sub-command, which owns the tokenizer,
 * sampling, I/O and the server; ranks > 0 never run the sub-command but wait here, in the
 * follower loop, for requests. Every public call that touches model state on rank 0
 * (herd_model_load/free, herd_context_new/free, herd_decode, herd_seq_truncate/copy) first
 * broadcasts a small request (struct op_msg: the call, the object's id, its arguments and,
 * for decode, the batch), then runs its local half on rank 0's shard while the followers
 * run the same local half on theirs; the forward pass meets in dist/'s collectives.
 * When rank 0 exits (atexit), it sends OP_EXIT and the followers free everything and return
 * from herd_dist_init, which tells main to exit.
 *
 * Calls that can fail differently on different ranks (loading a file that is missing on one
 * node, allocating the KV cache) end with agree(): every rank's status and message are
 * gathered, and all ranks return the first failure, named by its rank. A failure after a
 * forward pass started cannot be agreed on (peers are inside collectives), so it ends the
 * job with a message instead of hanging it. A mutex serialises requests on rank 0 (the
 * server decodes from its scheduler thread).
 */
#include "context.h"
#include "dist/dist.h"

#include <pthread.h>
#include <signal.h> /* raise: the HERD_DIST_TEST_KILL test hook */
#include <stdio.h>  /* fprintf: follower errors and the memory report go to stderr */
#include <stdlib.h> /* atexit, getenv, strtol */

enum op {
    OP_EXIT = 1,
    OP_MODEL_LOAD = 2,
    OP_MODEL_FREE = 3,
    OP_CTX_NEW = 4,
    OP_CTX_FREE = 5,
    OP_DECODE = 6,
    OP_SEQ_TRUNCATE = 7,
    OP_SEQ_COPY = 8,
};

/* A decode of up to 73 tokens (13 bytes each) fits in the message; longer batches and
 * paths go in a second broadcast. */
#define INLINE_BYTES 960
#define MSG_BYTES 256 /* an error message carried to rank 0 */
#define MAX_OBJECTS 64

struct op_msg {
    int32_t op;
    int32_t id;        /* the model or context */
    int32_t arg[8];
    int32_t n_payload; /* bytes of payload */
    char data[INLINE_BYTES];
};

static struct {
    int leading;   /* rank 0 of a job of several ranks */
    int exited;
    int32_t next_id;
    pthread_mutex_t lock;
    /* follower side: ids to objects */
    int32_t model_id[MAX_OBJECTS], ctx_id[MAX_OBJECTS];
    herd_model *models[MAX_OBJECTS];
    herd_context *ctxs[MAX_OBJECTS];
} F = {.lock = PTHREAD_MUTEX_INITIALIZER};

int follow_leading(void)
{
    return F.leading;
}

static int env_int(const char *name)
{
    const char *v = getenv(name);
    char *end = NULL;
    long x = v && *v ? strtol(v, &end, 10) : 0;
    return end && *end == '\0' && x > 0 && x < 1 << 20 ? (int)x : 0;
}

/* Ends the job: peers may be inside a collective that will never complete. */
static void fatal(const char *what)
{
    const struct dist_ops *d = dist_get();
    fprintf(stderr, "herd: rank %d: %s: %s - ending the job\n", d->rank(), what,
            herd_last_error());
    fflush(stderr);
    if (d->abort)
        d->abort(1);
    exit(1);
}

/* Every rank's status; all return the first failure, prefixed with its rank when it is
 * another rank's. */
static herd_status agree(herd_status s)
{
    const struct dist_ops *d = dist_get();
    int n = d->size(), me = d->rank();
    char mine[MSG_BYTES + 4];
    int32_t st = (int32_t)s;
    memcpy(mine, &st, 4);
    snprintf(mine + 4, MSG_BYTES, "%s", s != HERD_OK ? herd_last_error() : "");
    char *all = herd_malloc((size_t)n * sizeof mine);
    if (!all)
        return herd_fail(HERD_ERR_NOMEM, "gathering the ranks' results");
    herd_status g = d->allgather(mine, all, sizeof mine, "gathering the ranks' results");
    for (int r = 0; r < n && g == HERD_OK; r++) {
        const char *e = all + (size_t)r * sizeof mine;
        memcpy(&st, e, 4);
        if (st == HERD_OK)
            continue;
        g = r == me ? s : herd_fail((herd_status)st, "rank %d: %s", r, e + 4);
        break;
    }
    herd_free(all);
    return g;
}

/* /proc/self/status lines VmRSS and VmHWM on stderr when HERD_DIST_REPORT is set. */
static void report_memory(const char *when)
{
    if (!getenv("HERD_DIST_REPORT"))
        return;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return;
    static const char *keys[] = {"VmRSS:", "VmHWM:", "RssAnon:", "RssFile:", "RssShmem:"};
    char line[256], val[5][64] = {"?", "?", "?", "?", "?"};
    while (fgets(line, sizeof line, f)) {
        for (int k = 0; k < 5; k++) {
            size_t n = strlen(keys[k]);
            if (strncmp(line, keys[k], n) != 0)
                continue;
            const char *v = line + n;
            while (*v == ' ' || *v == '\t')
                v++;
            snprintf(val[k], sizeof val[k], "%.*s", (int)strcspn(v, "\n"), v);
        }
    }
    fclose(f);
    fprintf(stderr, "herd: rank %d: VmRSS %s, VmHWM %s (anon %s, file %s, shmem %s; %s)\n",
            dist_get()->rank(), val[0], val[1], val[2], val[3], val[4], when);
}

/* ---- requests */

static herd_status send_op(struct op_msg *msg, const void *payload, size_t bytes)
{
    const struct dist_ops *d = dist_get();
    if (bytes > INT32_MAX)
        return herd_fail(HERD_ERR_INVALID, "request of %zu bytes", bytes);
    msg->n_payload = (int32_t)bytes;
    if (bytes <= INLINE_BYTES && bytes)
        memcpy(msg->data, payload, bytes);
    herd_status s = d->bcast(msg, sizeof *msg, 0, 0, "sending a request to the other ranks");
    if (s == HERD_OK && bytes > INLINE_BYTES)
        s = d->bcast((void *)payload, bytes, 0, 0, "sending a request to the other ranks");
    return s;
}

/* Loads path on this rank, checks every rank holds the same model, and keeps this rank's
 * share of it. The same steps on every rank, so collectives match. */
static herd_status load_shard(const char *path, int32_t n_threads, int tp, int pp, int32_t id,
                              herd_model **out)
{
    const struct dist_ops *d = dist_get();
    *out = NULL;
    herd_model *m = NULL;
    herd_status s = agree(model_load_local(path, n_threads, &m));
    if (s != HERD_OK)
        goto fail;
    /* The shape every rank found; the split is computed from it on each rank. */
    int64_t fp[8] = {m->info.dim, m->info.n_layers, m->info.n_heads, m->info.n_kv_heads,
                     m->info.head_dim, m->info.hidden_dim, m->info.n_vocab,
                     m->info.weight_bytes};
    int n = d->size();
    int64_t *all = herd_malloc((size_t)n * sizeof fp);
    if (!all) {
        s = agree(herd_fail(HERD_ERR_NOMEM, "model fingerprints"));
        goto fail;
    }
    s = d->allgather(fp, all, sizeof fp, "comparing the ranks' models");
    for (int r = 1; r < n && s == HERD_OK; r++)
        if (memcmp(all, all + 8 * r, sizeof fp) != 0)
            s = herd_fail(HERD_ERR_FORMAT, "rank %d: %s is not the model rank 0 loaded (dim %lld,"
                          " %lld layers, %lld bytes of weights vs %lld, %lld, %lld)", r, path,
                          (long long)all[8 * r], (long long)all[8 * r + 1],
                          (long long)all[8 * r + 7], (long long)all[0], (long long)all[1],
                          (long long)all[7]);
    herd_free(all);
    struct shard sh;
    if (s == HERD_OK)
        s = shard_plan(m, n, d->rank(), tp, pp, &sh);
    if (s == HERD_OK)
        s = d->set_groups(sh.tp);
    if (s == HERD_OK) {
        m->sh = sh;
        s = shard_apply(m);
    }
    if ((s = agree(s)) != HERD_OK)
        goto fail;
    m->dist_id = id;
    if (d->rank() == 0)
        shard_describe(m);
    *out = m;
    return HERD_OK;
fail:
    model_free_local(m);
    return s;
}

static herd_status new_context(const herd_model *m, const int32_t *a, int32_t id,
                               herd_context **out)
{
    herd_context_params p = herd_context_default_params();
    p.n_ctx = a[0];
    p.n_seq = a[1];
    p.n_batch = a[2];
    p.n_threads = a[3];
    p.kv_type = (herd_dtype)a[4];
    herd_status s = agree(context_new_local(m, &p, out));
    if (s == HERD_OK)
        (*out)->dist_id = id;
    else if (*out) {
        context_free_local(*out);
        *out = NULL;
    }
    return s;
}

/* ---- rank 0 */

herd_status follow_model_load(const char *path, int32_t n_threads, herd_model **out)
{
    pthread_mutex_lock(&F.lock);
    struct op_msg msg = {.op = OP_MODEL_LOAD, .id = ++F.next_id};
    int tp = env_int("HERD_TP"), pp = env_int("HERD_PP");
    msg.arg[0] = n_threads;
    msg.arg[1] = tp;
    msg.arg[2] = pp;
    herd_status s = send_op(&msg, path, strlen(path) + 1);
    if (s == HERD_OK)
        s = load_shard(path, n_threads, tp, pp, msg.id, out);
    pthread_mutex_unlock(&F.lock);
    return s;
}

void follow_model_free(herd_model *m)
{
    pthread_mutex_lock(&F.lock);
    report_memory("model loaded, before freeing it");
    struct op_msg msg = {.op = OP_MODEL_FREE, .id = m->dist_id};
    if (send_op(&msg, NULL, 0) != HERD_OK)
        fatal("freeing a model");
    pthread_mutex_unlock(&F.lock);
}

herd_status follow_context_new(const herd_model *m, const herd_context_params *p,
                               herd_context **out)
{
    pthread_mutex_lock(&F.lock);
    struct op_msg msg = {.op = OP_CTX_NEW, .id = ++F.next_id};
    int32_t a[8] = {p->n_ctx, p->n_seq, p->n_batch, p->n_threads, (int32_t)p->kv_type,
                    m->dist_id};
    memcpy(msg.arg, a, sizeof a);
    herd_status s = send_op(&msg, NULL, 0);
    if (s == HERD_OK)
        s = new_context(m, a, msg.id, out);
    pthread_mutex_unlock(&F.lock);
    return s;
}

void follow_context_free(herd_context *c)
{
    pthread_mutex_lock(&F.lock);
    struct op_msg msg = {.op = OP_CTX_FREE, .id = c->dist_id};
    if (send_op(&msg, NULL, 0) != HERD_OK)
        fatal("freeing a context");
    pthread_mutex_unlock(&F.lock);
}

herd_status follow_decode(herd_context *c, const herd_batch *b, float *out)
{
    size_t n = (size_t)b->n_tokens, bytes = n * 13;
    uint8_t inline_buf[INLINE_BYTES];
    uint8_t *p = bytes <= INLINE_BYTES ? inline_buf : herd_malloc(bytes);
    if (!p)
        return herd_fail(HERD_ERR_NOMEM, "batch of %zu tokens for the other ranks", n);
    memcpy(p, b->tokens, n * 4);
    memcpy(p + n * 4, b->pos, n * 4);
    memcpy(p + n * 8, b->seq, n * 4);
    if (b->logits)
        memcpy(p + n * 12, b->logits, n);
    else
        memset(p + n * 12, 0, n);
    pthread_mutex_lock(&F.lock);
    struct op_msg msg = {.op = OP_DECODE, .id = c->dist_id};
    msg.arg[0] = b->n_tokens;
    herd_status s = send_op(&msg, p, bytes);
    if (p != inline_buf)
        herd_free(p);
    if (s == HERD_OK)
        s = decode_run(c, b, out);
    if (s != HERD_OK)
        fatal("decoding");
    pthread_mutex_unlock(&F.lock);
    return s;
}

static herd_status seq_op(herd_context *c, int op, int32_t x, int32_t y, int32_t z)
{
    pthread_mutex_lock(&F.lock);
    /* Checked here first: the followers' copies then succeed the same way. */
    herd_status s = op == OP_SEQ_TRUNCATE ? seq_truncate_local(c, x, y)
                                          : seq_copy_local(c, x, y, z);
    if (s == HERD_OK) {
        struct op_msg msg = {.op = op, .id = c->dist_id, .arg = {x, y, z}};
        if (send_op(&msg, NULL, 0) != HERD_OK)
            fatal("sending a sequence operation");
    }
    pthread_mutex_unlock(&F.lock);
    return s;
}

herd_status follow_seq_truncate(herd_context *c, int32_t seq, int32_t from)
{
    return seq_op(c, OP_SEQ_TRUNCATE, seq, from, 0);
}

herd_status follow_seq_copy(herd_context *c, int32_t dst, int32_t src, int32_t n)
{
    return seq_op(c, OP_SEQ_COPY, dst, src, n);
}

static void leader_exit(void)
{
    if (F.exited || !F.leading)
        return;
    F.exited = 1;
    if (pthread_mutex_trylock(&F.lock) != 0) {
        herd_fail(HERD_ERR_INTERNAL, "exit while a request is running");
        fatal("exiting");
    }
    struct op_msg msg = {.op = OP_EXIT};
    if (send_op(&msg, NULL, 0) != HERD_OK)
        fatal("telling the other ranks to exit");
    F.leading = 0;
    pthread_mutex_unlock(&F.lock);
    dist_get()->finalize();
}

/* ---- ranks > 0 */

static int slot_of(const int32_t *ids, int32_t id)
{
    for (int i = 0; i < MAX_OBJECTS; i++)
        if (ids[i] == id)
            return i;
    return -1;
}

static herd_context *ctx_of(int32_t id)
{
    int i = slot_of(F.ctx_id, id);
    if (i < 0)
        fatal("a request names an unknown context");
    return F.ctxs[i];
}

static void run_decode(const struct op_msg *msg, const uint8_t *p)
{
    size_t n = (size_t)msg->arg[0];
    herd_batch b = {.n_tokens = msg->arg[0]};
    int32_t *arrays = herd_malloc(n * 12 + 4);
    if (!arrays) {
        herd_fail(HERD_ERR_NOMEM, "batch of %zu tokens", n);
        fatal("receiving a batch");
    }
    memcpy(arrays, p, n * 12); /* aligned copies of tokens, pos, seq */
    b.tokens = arrays;
    b.pos = arrays + n;
    b.seq = arrays + 2 * n;
    b.logits = (const int8_t *)(p + n * 12);
    /* Test hook for the failure tests: this rank dies as a crashed node would. */
    if (env_int("HERD_DIST_TEST_KILL") == dist_get()->rank())
        raise(SIGKILL);
    if (decode_run(ctx_of(msg->id), &b, NULL) != HERD_OK)
        fatal("decoding");
    herd_free(arrays);
}

static void follow_one(const struct op_msg *msg, const uint8_t *p)
{
    const int32_t *a = msg->arg;
    int i;
    switch (msg->op) {
    case OP_MODEL_LOAD: {
        herd_model *m = NULL;
        if (load_shard((const char *)p, a[0], a[1], a[2], msg->id, &m) != HERD_OK)
            break;
        if ((i = slot_of(F.model_id, 0)) < 0)
            fatal("more than 64 models");
        F.model_id[i] = msg->id;
        F.models[i] = m;
        break;
    }
    case OP_MODEL_FREE:
        if ((i = slot_of(F.model_id, msg->id)) < 0)
            fatal("a request names an unknown model");
        report_memory("model loaded, before freeing it");
        model_free_local(F.models[i]);
        F.model_id[i] = 0;
        break;
    case OP_CTX_NEW: {
        herd_context *c = NULL;
        if ((i = slot_of(F.model_id, a[5])) < 0)
            fatal("a request names an unknown model");
        if (new_context(F.models[i], a, msg->id, &c) != HERD_OK)
            break;
        if ((i = slot_of(F.ctx_id, 0)) < 0)
            fatal("more than 64 contexts");
        F.ctx_id[i] = msg->id;
        F.ctxs[i] = c;
        break;
    }
    case OP_CTX_FREE:
        context_free_local(ctx_of(msg->id));
        F.ctx_id[slot_of(F.ctx_id, msg->id)] = 0;
        break;
    case OP_DECODE:
        run_decode(msg, p);
        break;
    case OP_SEQ_TRUNCATE:
        if (seq_truncate_local(ctx_of(msg->id), a[0], a[1]) != HERD_OK)
            fatal("truncating a sequence");
        break;
    case OP_SEQ_COPY:
        if (seq_copy_local(ctx_of(msg->id), a[0], a[1], a[2]) != HERD_OK)
            fatal("copying a sequence");
        break;
    default:
        herd_fail(HERD_ERR_INTERNAL, "request %d", msg->op);
        fatal("an unknown request");
    }
}

static int follow_loop(void)
{
    const struct dist_ops *d = dist_get();
    for (;;) {
        struct op_msg msg;
        if (d->bcast(&msg, sizeof msg, 0, 1, "waiting for rank 0") != HERD_OK)
            fatal("waiting for rank 0");
        if (msg.op == OP_EXIT)
            break;
        uint8_t *p = (uint8_t *)msg.data;
        if (msg.n_payload > INLINE_BYTES) {
            p = herd_malloc((size_t)msg.n_payload);
            if (!p) {
                herd_fail(HERD_ERR_NOMEM, "request of %d bytes", msg.n_payload);
                fatal("receiving a request");
            }
            if (d->bcast(p, (size_t)msg.n_payload, 0, 0, "receiving a request") != HERD_OK)
                fatal("receiving a request");
        }
        follow_one(&msg, p);
        if (p != (uint8_t *)msg.data)
            herd_free(p);
    }
    for (int i = 0; i < MAX_OBJECTS; i++) {
        if (F.ctx_id[i])
            context_free_local(F.ctxs[i]);
        if (F.model_id[i])
            model_free_local(F.models[i]);
    }
    return 0;
}

bool herd_dist_init(int *argc, char ***argv, int *exit_code)
{
    const struct dist_ops *d = dist_get();
    *exit_code = 0;
    if (d->init(argc, argv) != HERD_OK) {
        fprintf(stderr, "herd: %s\n", herd_last_error());
        *exit_code = 1;
        return true;
    }
    herd_threads_set_local_ranks(d->local_size()); /* "all cores" is shared on a node */
    if (d->size() <= 1)
        return false;
    if (d->rank() == 0) {
        F.leading = 1;
        atexit(leader_exit);
        return false;
    }
    *exit_code = follow_loop();
    d->finalize();
    return true;
}

int herd_dist_rank(void)
{
    return dist_get()->rank();
}

int herd_dist_size(void)
{
    return dist_get()->size();
}
