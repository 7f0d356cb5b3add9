/*
 * dispatch.c - one program on every rank: rank 0 leads, the others follow.
 *
 * `mpirun -np N herd generate -m MODEL ...` starts the same command N times. herd_dist_init
 * (first thing in main) lets rank 0 go on into the sub-command, which owns the tokenizer,
 * sampling, I/O and the server; ranks > 0 never run the sub-command but wait here, in the
 * follower loop, for requests. On rank 0 herd_dist_init installs leader_ops (dispatch.h) as
 * the table the public calls go through: each entry sends the call as one request
 * (wire.h: a fixed-layout struct with a protocol version the followers check), then runs
 * the local half on rank 0's shard while the followers run the same local half on theirs;
 * the forward pass meets in dist/'s collectives. When rank 0 exits (atexit), it sends
 * WIRE_EXIT and the followers free everything and return from herd_dist_init, which tells
 * main to exit.
 *
 * Calls that can fail differently on different ranks (loading a file that is missing on one
 * node, allocating the KV cache) end with agree(): every rank's status and message are
 * gathered, and all ranks return the first failure, named by its rank. A failure after a
 * forward pass started cannot be agreed on (peers are inside collectives), so it ends the
 * job with a message instead of hanging it. A mutex serialises requests on rank 0 (the
 * server decodes from its scheduler thread).
 */
#include "context.h"
#include "dispatch.h"
#include "wire.h"
#include "dist/dist.h"

#include <pthread.h>
#include <signal.h> /* raise: the HERD_DIST_TEST_KILL test hook */
#include <stdio.h>  /* fprintf: follower errors and the memory report go to stderr */
#include <stdlib.h> /* atexit */

#define MSG_BYTES 256 /* an error message carried to rank 0 */
#define MAX_OBJECTS 64

static struct {
    int leading; /* rank 0 of a job of several ranks, until it exits */
    int exited;
    int32_t next_id;
    pthread_mutex_t lock;
    /* follower side: ids to objects */
    int32_t model_id[MAX_OBJECTS], ctx_id[MAX_OBJECTS];
    herd_model *models[MAX_OBJECTS];
    herd_context *ctxs[MAX_OBJECTS];
} F = {.lock = PTHREAD_MUTEX_INITIALIZER};

static herd_dist_options opts; /* as herd_dist_init was given them; the same on every rank */

herd_dist_options herd_dist_default_options(void)
{
    herd_dist_options o = {0};
    o.timeout_s = 300; /* a vanished rank ends the job in five minutes, not never */
    return o;
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
    if (!opts.report)
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

/* One request to every follower: the fixed-size message, then a payload too long for it. */
static herd_status send_request(const struct wire_request *r)
{
    const struct dist_ops *d = dist_get();
    const char *what = "sending a request to the other ranks";
    herd_status s = d->bcast((void *)&r->msg, sizeof r->msg, 0, 0, what);
    if (s == HERD_OK && r->msg.h.n_payload > WIRE_INLINE_BYTES)
        s = d->bcast(r->payload, r->msg.h.n_payload, 0, 0, what);
    return s;
}

/* Loads path on this rank, checks every rank holds the same model, and keeps this rank's
 * share of it. The same steps on every rank, so collectives match. */
static herd_status load_shard(const char *path, const herd_model_params *p, int tp, int pp,
                              int32_t id, herd_model **out)
{
    const struct dist_ops *d = dist_get();
    *out = NULL;
    herd_model *m = NULL;
    /* pure tensor parallelism: a Meta folder of as many shards as ranks gives each rank its
     * shard (load_meta.c) instead of every rank joining the whole model */
    int n_tp = (tp <= 0 || tp == d->size()) && pp <= 1 ? d->size() : 0;
    herd_status s = agree(model_load_rank(path, p, d->rank(), n_tp, &m));
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

static herd_status new_context(const herd_model *m, const herd_context_params *p, int32_t id,
                               herd_context **out)
{
    herd_status s = agree(context_new_local(m, p, out));
    if (s == HERD_OK)
        (*out)->dist_id = id;
    else if (*out) {
        context_free_local(*out);
        *out = NULL;
    }
    return s;
}

/* ---- rank 0: the leader table. Each entry sends its request, then runs the local half. */

static herd_status leader_load(const char *path, const herd_model_params *p, herd_model **out)
{
    *out = NULL;
    pthread_mutex_lock(&F.lock);
    struct wire_request r;
    int32_t id = ++F.next_id;
    int tp = opts.tp, pp = opts.pp;
    herd_status s = wire_encode_model_load(&r, id, path, p->n_threads, p->device, tp, pp);
    if (s == HERD_OK)
        s = send_request(&r);
    wire_request_free(&r);
    if (s == HERD_OK)
        s = load_shard(path, p, tp, pp, id, out);
    pthread_mutex_unlock(&F.lock);
    return s;
}

static void leader_free(herd_model *m)
{
    pthread_mutex_lock(&F.lock);
    report_memory("model loaded, before freeing it");
    struct wire_request r;
    wire_encode(&r, WIRE_MODEL_FREE, m->dist_id);
    if (send_request(&r) != HERD_OK)
        fatal("freeing a model");
    model_free_local(m);
    pthread_mutex_unlock(&F.lock);
}

static herd_status leader_context_new(const herd_model *m, const herd_context_params *p,
                                      herd_context **out)
{
    *out = NULL;
    pthread_mutex_lock(&F.lock);
    struct wire_request r;
    int32_t id = ++F.next_id;
    wire_encode_context_new(&r, id, m->dist_id, p);
    herd_status s = send_request(&r);
    if (s == HERD_OK)
        s = new_context(m, p, id, out);
    pthread_mutex_unlock(&F.lock);
    return s;
}

static void leader_context_free(herd_context *c)
{
    pthread_mutex_lock(&F.lock);
    struct wire_request r;
    wire_encode(&r, WIRE_CONTEXT_FREE, c->dist_id);
    if (send_request(&r) != HERD_OK)
        fatal("freeing a context");
    context_free_local(c);
    pthread_mutex_unlock(&F.lock);
}

static herd_status leader_decode(herd_context *c, const herd_batch *b, float *out)
{
    struct wire_request r;
    herd_status s = wire_encode_decode(&r, c->dist_id, b);
    if (s != HERD_OK) {
        wire_request_free(&r);
        return s; /* nothing was sent: the ranks are still in step */
    }
    pthread_mutex_lock(&F.lock);
    s = send_request(&r);
    wire_request_free(&r);
    if (s == HERD_OK)
        s = decode_run(c, b, out);
    if (s != HERD_OK)
        fatal("decoding");
    pthread_mutex_unlock(&F.lock);
    return s;
}

/* Sequence operations run here first: a call that fails its checks is not sent, and one
 * that passes succeeds the same way on every follower. */
static herd_status leader_seq_truncate(herd_context *c, int32_t seq, int32_t from)
{
    pthread_mutex_lock(&F.lock);
    herd_status s = seq_truncate_local(c, seq, from);
    if (s == HERD_OK) {
        struct wire_request r;
        wire_encode_seq_truncate(&r, c->dist_id, seq, from);
        if (send_request(&r) != HERD_OK)
            fatal("sending a sequence operation");
    }
    pthread_mutex_unlock(&F.lock);
    return s;
}

static herd_status leader_seq_copy(herd_context *c, int32_t dst, int32_t src, int32_t n)
{
    pthread_mutex_lock(&F.lock);
    herd_status s = seq_copy_local(c, dst, src, n);
    if (s == HERD_OK) {
        struct wire_request r;
        wire_encode_seq_copy(&r, c->dist_id, dst, src, n);
        if (send_request(&r) != HERD_OK)
            fatal("sending a sequence operation");
    }
    pthread_mutex_unlock(&F.lock);
    return s;
}

static const struct model_ops leader_ops = {
    .name = "leader",
    .load = leader_load,
    .free = leader_free,
    .context_new = leader_context_new,
    .context_free = leader_context_free,
    .decode = leader_decode,
    .seq_truncate = leader_seq_truncate,
    .seq_copy = leader_seq_copy,
};

static void leader_exit(void)
{
    if (F.exited || !F.leading)
        return;
    F.exited = 1;
    if (pthread_mutex_trylock(&F.lock) != 0) {
        herd_fail(HERD_ERR_INTERNAL, "exit while a request is running");
        fatal("exiting");
    }
    struct wire_request r;
    wire_encode(&r, WIRE_EXIT, 0);
    if (send_request(&r) != HERD_OK)
        fatal("telling the other ranks to exit");
    F.leading = 0;
    model_ops_use(NULL); /* anything freed later is rank 0's alone */
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

static herd_model *model_of(int32_t id)
{
    int i = slot_of(F.model_id, id);
    if (i < 0)
        fatal("a request names an unknown model");
    return F.models[i];
}

static herd_context *ctx_of(int32_t id)
{
    int i = slot_of(F.ctx_id, id);
    if (i < 0)
        fatal("a request names an unknown context");
    return F.ctxs[i];
}

static void run_load(const struct wire_request *r)
{
    const char *path = NULL, *device = NULL;
    int32_t n_threads, tp, pp;
    herd_model *m = NULL;
    int i;
    if (wire_decode_model_load(r, &path, &n_threads, &device, &tp, &pp) != HERD_OK)
        fatal("reading a request");
    const herd_model_params p = {.n_threads = n_threads, .device = device};
    if (load_shard(path, &p, tp, pp, r->msg.h.id, &m) != HERD_OK)
        return; /* agreed: rank 0 reports it */
    if ((i = slot_of(F.model_id, 0)) < 0)
        fatal("more than 64 models");
    F.model_id[i] = r->msg.h.id;
    F.models[i] = m;
}

static void run_context_new(const struct wire_request *r)
{
    int32_t model_id;
    herd_context_params p;
    herd_context *c = NULL;
    int i;
    wire_decode_context_new(r, &model_id, &p);
    if (new_context(model_of(model_id), &p, r->msg.h.id, &c) != HERD_OK)
        return;
    if ((i = slot_of(F.ctx_id, 0)) < 0)
        fatal("more than 64 contexts");
    F.ctx_id[i] = r->msg.h.id;
    F.ctxs[i] = c;
}

static void run_decode(const struct wire_request *r)
{
    herd_batch b;
    if (wire_decode_decode(r, &b) != HERD_OK)
        fatal("receiving a batch");
    /* Test hook for the failure tests: this rank dies as a crashed node would. */
    if (opts.test_kill_rank > 0 && opts.test_kill_rank == dist_get()->rank())
        raise(SIGKILL);
    if (decode_run(ctx_of(r->msg.h.id), &b, NULL) != HERD_OK)
        fatal("decoding");
    wire_batch_free(&b);
}

static void follow_one(const struct wire_request *r)
{
    const struct wire_msg *msg = &r->msg;
    int32_t id = msg->h.id;
    switch (msg->h.op) {
    case WIRE_MODEL_LOAD:
        run_load(r);
        break;
    case WIRE_MODEL_FREE:
        report_memory("model loaded, before freeing it");
        model_free_local(model_of(id));
        F.model_id[slot_of(F.model_id, id)] = 0;
        break;
    case WIRE_CONTEXT_NEW:
        run_context_new(r);
        break;
    case WIRE_CONTEXT_FREE:
        context_free_local(ctx_of(id));
        F.ctx_id[slot_of(F.ctx_id, id)] = 0;
        break;
    case WIRE_DECODE:
        run_decode(r);
        break;
    case WIRE_SEQ_TRUNCATE:
        if (seq_truncate_local(ctx_of(id), msg->args.truncate.seq,
                               msg->args.truncate.from) != HERD_OK)
            fatal("truncating a sequence");
        break;
    case WIRE_SEQ_COPY:
        if (seq_copy_local(ctx_of(id), msg->args.copy.dst, msg->args.copy.src,
                           msg->args.copy.n) != HERD_OK)
            fatal("copying a sequence");
        break;
    default: /* wire_check let an op through that this switch does not know */
        herd_fail(HERD_ERR_INTERNAL, "request %u", (unsigned)msg->h.op);
        fatal("an unknown request");
    }
}

static int follow_loop(void)
{
    const struct dist_ops *d = dist_get();
    for (;;) {
        struct wire_request r;
        if (d->bcast(&r.msg, sizeof r.msg, 0, 1, "waiting for rank 0") != HERD_OK)
            fatal("waiting for rank 0");
        if (wire_check(&r.msg) != HERD_OK)
            fatal("reading a request");
        if (r.msg.h.op == WIRE_EXIT)
            break;
        if (wire_payload_alloc(&r) != HERD_OK)
            fatal("receiving a request");
        if (r.msg.h.n_payload > WIRE_INLINE_BYTES &&
            d->bcast(r.payload, r.msg.h.n_payload, 0, 0, "receiving a request") != HERD_OK)
            fatal("receiving a request");
        follow_one(&r);
        wire_request_free(&r);
    }
    for (int i = 0; i < MAX_OBJECTS; i++) {
        if (F.ctx_id[i])
            context_free_local(F.ctxs[i]);
        if (F.model_id[i])
            model_free_local(F.models[i]);
    }
    return 0;
}

/* Every rank's (magic, version), compared once before the first request, so that ranks of
 * different herd builds stop together: rank 0 prints one line and every rank exits with 1,
 * no MPI_Abort. These 8 bytes never change size, like the request header's first 8.
 * HERD_DIST_TEST_VERSION=r (r > 0) is a test hook: rank r claims the next version. */
static int versions_agree(void)
{
    const struct dist_ops *d = dist_get();
    int n = d->size(), me = d->rank(), hook = opts.test_version_rank;
    uint32_t mine[2] = {WIRE_MAGIC, WIRE_VERSION + (hook > 0 && hook == me)};
    uint32_t *all = herd_malloc((size_t)n * sizeof mine);
    herd_status s = all ? d->allgather(mine, all, sizeof mine, "comparing the ranks' herd")
                        : herd_fail(HERD_ERR_NOMEM, "comparing the ranks' herd");
    int bad = s != HERD_OK;
    for (int r = 1; r < n && !bad; r++) {
        if (all[2 * r] == all[0] && all[2 * r + 1] == all[1])
            continue;
        bad = 1;
        if (me == 0 && all[2 * r] != all[0])
            herd_fail(HERD_ERR_UNSUPPORTED, "rank %d is a machine of another byte order than "
                      "rank 0; every rank must be the same kind of machine", r);
        else if (me == 0)
            herd_fail(HERD_ERR_UNSUPPORTED, "rank %d speaks herd wire protocol version %u, "
                      "rank 0 version %u: run the same herd build on every node", r,
                      (unsigned)all[2 * r + 1], (unsigned)all[1]);
    }
    if (bad && (me == 0 || s != HERD_OK))
        fprintf(stderr, "herd: %s\n", herd_last_error());
    herd_free(all);
    return !bad;
}

bool herd_dist_init(int *argc, char ***argv, const herd_dist_options *o, int *exit_code)
{
    const struct dist_ops *d = dist_get();
    *exit_code = 0;
    opts = o ? *o : herd_dist_default_options();
    if (d->init(argc, argv, opts.timeout_s) != HERD_OK) {
        fprintf(stderr, "herd: %s\n", herd_last_error());
        *exit_code = 1;
        return true;
    }
    herd_threads_set_local_ranks(d->local_size()); /* "all cores" is shared on a node */
    if (d->size() <= 1)
        return false;
    if (!versions_agree()) {
        d->finalize();
        *exit_code = 1;
        return true;
    }
    if (d->rank() == 0) {
        F.leading = 1;
        model_ops_use(&leader_ops);
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
