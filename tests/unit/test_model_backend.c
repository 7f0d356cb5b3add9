/*
 * test_model_backend.c - the backend seam (kernels/backend.h) as a GPU backend will use it.
 *
 * A recording backend wraps the CPU backend the way CUDA graphs behave: between graph_begin
 * and graph_end the operations are only written down, not run; graph_end and every later
 * graph_replay run the written list with the arguments as they were at recording. If the
 * forward pass handed an operation anything that changes from step to step other than
 * through the step buffers (step_set), replayed steps would compute with stale values and
 * the logits would differ. The test decodes a prompt and a run of single-token steps, over
 * several sequences, with the plain CPU backend and with the recorder, and requires
 * identical logits and that replays happened.
 *
 * Also: backend_open refuses an unknown name with the list of backends this build has; the
 * CPU backend's weights are copies of the mapped bytes on their own (huge-page) memory, a
 * tied output sharing the embedding's and a second load of the file sharing the first's
 * (they outlive the first model), or the mapping itself with HERD_MMAP set (a second CTest
 * runs that way).
 *
 * The model comes from HERD_TEST_MODEL (tests/cmake/model.cmake: a tiny generated model).
 */
#include "check.h"
#include "model/context.h"

#include <stdlib.h> /* getenv */

enum op { OP_EMBED, OP_RMSNORM, OP_MATMUL, OP_ROPE, OP_KV_STORE, OP_ATTENTION, OP_SWIGLU,
          OP_ADD };

struct rec {
    enum op op;
    float *f0, *f1;
    const float *c0, *c1;
    const struct weight *w;
    const struct bstep *st;
    int64_t i0, i1, i2;
};

#define MAX_REC 4096 /* a tiny model's chunk is a few dozen operations */
#define MAX_GRAPHS 16

static struct {
    struct rec ops[MAX_REC];
    int n;
    int64_t key;
} graphs[MAX_GRAPHS];
static int n_graphs, recording = -1, n_replays, n_recorded_ops;
static const struct backend_ops *cpu_ops = &backend_cpu_ops;

static void run(struct bctx *bc, const struct rec *r)
{
    switch (r->op) {
    case OP_EMBED:
        CHECK(cpu_ops->embed(bc, r->f0, r->w, r->st) == HERD_OK);
        break;
    case OP_RMSNORM:
        cpu_ops->rmsnorm(bc, r->f0, r->c0, r->c1, r->i0, r->i1);
        break;
    case OP_MATMUL:
        cpu_ops->matmul(bc, r->f0, r->i0, r->w, r->c0, r->i1, r->i2);
        break;
    case OP_ROPE:
        cpu_ops->rope(bc, r->f0, r->i0, r->f1, r->i1, r->st);
        break;
    case OP_KV_STORE:
        cpu_ops->kv_store(bc, (int)r->i2, r->c0, r->i0, r->c1, r->i1, r->st);
        break;
    case OP_ATTENTION:
        cpu_ops->attention(bc, r->f0, r->c0, (int)r->i0, r->st);
        break;
    case OP_SWIGLU:
        cpu_ops->swiglu(bc, r->f0, r->c0, r->c1, r->i0, r->i1);
        break;
    case OP_ADD:
        cpu_ops->add(bc, r->f0, r->c0, r->i0);
        break;
    }
}

/* Records r while a graph is being captured, runs it otherwise. */
static void issue(struct bctx *bc, struct rec r)
{
    if (recording < 0) {
        run(bc, &r);
        return;
    }
    CHECK(graphs[recording].n < MAX_REC);
    if (graphs[recording].n < MAX_REC)
        graphs[recording].ops[graphs[recording].n++] = r;
    n_recorded_ops++;
}

static herd_status rec_embed(struct bctx *bc, float *x, const struct weight *emb,
                             const struct bstep *st)
{
    issue(bc, (struct rec){.op = OP_EMBED, .f0 = x, .w = emb, .st = st});
    return HERD_OK;
}

static void rec_rmsnorm(struct bctx *bc, float *out, const float *x, const float *w, int64_t n,
                        int64_t dim)
{
    issue(bc, (struct rec){.op = OP_RMSNORM, .f0 = out, .c0 = x, .c1 = w, .i0 = n, .i1 = dim});
}

static void rec_matmul(struct bctx *bc, float *y, int64_t ldy, const struct weight *w,
                       const float *x, int64_t ldx, int64_t n)
{
    issue(bc, (struct rec){.op = OP_MATMUL, .f0 = y, .i0 = ldy, .w = w, .c0 = x, .i1 = ldx,
                           .i2 = n});
}

static void rec_rope(struct bctx *bc, float *q, int64_t ldq, float *k, int64_t ldk,
                     const struct bstep *st)
{
    issue(bc, (struct rec){.op = OP_ROPE, .f0 = q, .i0 = ldq, .f1 = k, .i1 = ldk, .st = st});
}

static void rec_kv_store(struct bctx *bc, int layer, const float *k, int64_t ldk,
                         const float *v, int64_t ldv, const struct bstep *st)
{
    issue(bc, (struct rec){.op = OP_KV_STORE, .i2 = layer, .c0 = k, .i0 = ldk, .c1 = v,
                           .i1 = ldv, .st = st});
}

static void rec_attention(struct bctx *bc, float *out, const float *q, int layer,
                          const struct bstep *st)
{
    issue(bc, (struct rec){.op = OP_ATTENTION, .f0 = out, .c0 = q, .i0 = layer, .st = st});
}

static void rec_swiglu(struct bctx *bc, float *out, const float *gate, const float *up,
                       int64_t n, int64_t hidden)
{
    issue(bc, (struct rec){.op = OP_SWIGLU, .f0 = out, .c0 = gate, .c1 = up, .i0 = n,
                           .i1 = hidden});
}

static void rec_add(struct bctx *bc, float *x, const float *y, int64_t n)
{
    issue(bc, (struct rec){.op = OP_ADD, .f0 = x, .c0 = y, .i0 = n});
}

static bool rec_replay(struct bctx *bc, int64_t key)
{
    for (int g = 0; g < n_graphs; g++) {
        if (graphs[g].key != key)
            continue;
        for (int i = 0; i < graphs[g].n; i++)
            run(bc, &graphs[g].ops[i]);
        n_replays++;
        return true;
    }
    return false;
}

static herd_status rec_begin(struct bctx *bc, int64_t key)
{
    (void)bc;
    CHECK(recording < 0 && n_graphs < MAX_GRAPHS);
    recording = n_graphs++;
    graphs[recording].key = key;
    graphs[recording].n = 0;
    return HERD_OK;
}

/* As cudaGraphInstantiate + launch: the captured list runs now for the first time. */
static herd_status rec_end(struct bctx *bc, int64_t key)
{
    int g = recording;
    recording = -1;
    CHECK(g >= 0 && graphs[g].key == key);
    for (int i = 0; g >= 0 && i < graphs[g].n; i++)
        run(bc, &graphs[g].ops[i]);
    return HERD_OK;
}

/* Prompt of n_prompt tokens in each of n_seq sequences (one batch), then n_steps steps of
 * one token per sequence; all logits of every step into out (rows in order). */
static int decode_all(herd_model *m, herd_dtype kv, int n_seq, int n_prompt, int n_steps,
                      float *out)
{
    herd_context_params p = herd_context_default_params();
    p.n_ctx = 64;
    p.n_seq = n_seq;
    p.n_batch = 8; /* the prompt goes in chunks: several keys, a ragged last chunk */
    p.kv_type = kv;
    herd_context *c;
    if (herd_context_new(m, &p, &c) != HERD_OK)
        return -1;
    int32_t n_vocab = m->info.n_vocab, tok[64], pos[64], seq[64];
    int8_t want[64];
    int rows = 0;
    int n = 0;
    for (int s = 0; s < n_seq; s++) {
        for (int i = 0; i < n_prompt; i++, n++) {
            tok[n] = (7 + 13 * i + 31 * s) % n_vocab;
            pos[n] = i;
            seq[n] = s;
            want[n] = i == n_prompt - 1;
        }
    }
    herd_batch b = {.n_tokens = n, .tokens = tok, .pos = pos, .seq = seq, .logits = want};
    herd_status st = herd_decode(c, &b, out);
    rows += n_seq;
    for (int k = 0; k < n_steps && st == HERD_OK; k++) {
        for (int s = 0; s < n_seq; s++) {
            tok[s] = (3 + 11 * k + 5 * s) % n_vocab;
            pos[s] = n_prompt + k;
            seq[s] = s;
            want[s] = 1;
        }
        b.n_tokens = n_seq;
        st = herd_decode(c, &b, out + (size_t)rows * n_vocab);
        rows += n_seq;
    }
    herd_context_free(c);
    return st == HERD_OK ? rows : -1;
}

/* Every weight's dev: a copy equal to the mapped bytes (default) or the mapping (HERD_MMAP). */
static void check_weights(const herd_model *m, bool mapped)
{
    const struct layer *L = &m->layers[0];
    const struct weight *ws[] = {&m->tok_embd, &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate,
                                 &L->w_up, &L->w_down};
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
        size_t n = ws[i]->row_bytes * (size_t)ws[i]->n_rows;
        CHECK(ws[i]->dev != NULL);
        if (mapped)
            CHECK_MSG(ws[i]->dev == ws[i]->data, "weight %zu: not the mapping", i);
        else
            CHECK_MSG(ws[i]->dev != ws[i]->data && memcmp(ws[i]->dev, ws[i]->data, n) == 0,
                      "weight %zu: no equal copy", i);
    }
    if (m->output.data == m->tok_embd.data) /* tied: one copy */
        CHECK(m->output.dev == m->tok_embd.dev);
}

/* Two loads of one file share its copies (default), and the copies live as long as their
 * last user: freeing the first model leaves the second's logits unchanged. */
static void check_shared(const char *path, bool mapped)
{
    herd_model_params mp = {.n_threads = 1};
    herd_model *a = NULL, *b = NULL;
    if (herd_model_load(path, &mp, &a) != HERD_OK || herd_model_load(path, &mp, &b) != HERD_OK) {
        CHECK_MSG(0, "load twice: %s", herd_last_error());
        return;
    }
    if (!mapped)
        CHECK(a->layers[0].w_down.dev == b->layers[0].w_down.dev);
    int32_t n_vocab = b->info.n_vocab;
    size_t n_out = 4 * (size_t)n_vocab;
    float *x = calloc(n_out, sizeof *x), *y = calloc(n_out, sizeof *y);
    CHECK(decode_all(b, HERD_DTYPE_F32, 1, 5, 3, x) == 4);
    herd_model_free(a);
    CHECK(decode_all(b, HERD_DTYPE_F32, 1, 5, 3, y) == 4);
    CHECK(memcmp(x, y, n_out * sizeof *x) == 0);
    herd_model_free(b);
    free(x), free(y);
}

int main(void)
{
    herd_cpu_options o = herd_cpu_default_options();
    o.mmap_weights = getenv("HERD_MMAP") != NULL;
    CHECK(herd_cpu_configure(&o) == HERD_OK);
    struct backend be;
    herd_status s = backend_open("no-such-backend", 1, &be);
    CHECK(s == HERD_ERR_UNSUPPORTED);
    CHECK(strstr(herd_last_error(), "no-such-backend") && strstr(herd_last_error(), "cpu"));

    const char *path = check_test_model();
    if (!path)
        return 77;
    herd_model_params mp = {.n_threads = 2};
    herd_model *plain, *rec;
    if (herd_model_load(path, &mp, &plain) != HERD_OK ||
        herd_model_load(path, &mp, &rec) != HERD_OK) {
        printf("cannot load %s: %s\n", path, herd_last_error());
        return 1;
    }
    check_weights(plain, o.mmap_weights);
    static struct backend_ops rec_ops;
    rec_ops = backend_cpu_ops;
    rec_ops.name = "recorder";
    rec_ops.host_memory = true;
    rec_ops.embed = rec_embed;
    rec_ops.rmsnorm = rec_rmsnorm;
    rec_ops.matmul = rec_matmul;
    rec_ops.rope = rec_rope;
    rec_ops.kv_store = rec_kv_store;
    rec_ops.attention = rec_attention;
    rec_ops.swiglu = rec_swiglu;
    rec_ops.add = rec_add;
    rec_ops.graph_replay = rec_replay;
    rec_ops.graph_begin = rec_begin;
    rec_ops.graph_end = rec_end;
    rec->be.ops = &rec_ops;

    const herd_dtype kvs[] = {HERD_DTYPE_F16, HERD_DTYPE_F32};
    int32_t n_vocab = plain->info.n_vocab;
    for (size_t k = 0; k < sizeof kvs / sizeof kvs[0]; k++) {
        const int n_seq = 3, n_prompt = 19, n_steps = 6;
        size_t n_out = (size_t)n_seq * (1 + n_steps) * (size_t)n_vocab;
        float *a = calloc(n_out, sizeof *a), *b = calloc(n_out, sizeof *b);
        n_graphs = 0;
        n_replays = 0;
        int ra = decode_all(plain, kvs[k], n_seq, n_prompt, n_steps, a);
        int rb = decode_all(rec, kvs[k], n_seq, n_prompt, n_steps, b);
        CHECK_MSG(ra == n_seq * (1 + n_steps) && rb == ra, "rows %d %d: %s", ra, rb,
                  herd_last_error());
        CHECK_MSG(memcmp(a, b, n_out * sizeof *a) == 0, "kv %s: replayed logits differ",
                  herd_dtype_name(kvs[k]));
        /* chunks of 8, 8 and 8+8+8+8+8+1 prompt tokens... every step after the first of a
         * size replays: the steps of 3 tokens replay 5 times */
        CHECK_MSG(n_replays >= n_steps - 1, "kv %s: %d replays", herd_dtype_name(kvs[k]),
                  n_replays);
        free(a);
        free(b);
    }
    CHECK(n_recorded_ops > 0);
    rec->be.ops = &backend_cpu_ops;
    herd_model_free(rec);
    herd_model_free(plain);
    check_shared(path, o.mmap_weights);
    return check_done();
}
