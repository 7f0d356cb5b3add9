/*
 * bench_cuda_ops.c - what each operation of a backend costs on Llama 3.1 8B's shapes, so a
 * decode step's time can be taken apart: every product (the layer's 4096 x 4096, 1024 x
 * 4096, 14336 x 4096 and 4096 x 14336 weights and the 128256 x 4096 output) for each
 * weight type at 1, 8 and 512 activation rows, and the small operations of a layer.
 *
 * Each operation is repeated REPS times inside one recorded graph (the backend's
 * graph_begin/graph_end, as the forward pass records a step), the graph replayed a few
 * times and timed on the host around sync(): the per-operation time includes what a
 * kernel costs inside a graph (its launch and tail), which is what a decode step pays.
 * Products print GB/s of weight bytes (the share of the HBM limit given with --hbm) and,
 * at 512 rows, TFLOP/s.
 *
 * Usage: bench_cuda_ops [--device cuda] [--hbm 4240] [--small]
 * Weights are random bytes (timing only; values are not looked at). --small uses shapes
 * 16 times smaller, for the CPU emulator.
 */
#include "kernels/backend.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPS 20

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;

static void fill_bytes(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        memcpy(p + i, &rng, n - i < 8 ? n - i : 8);
    }
}

static int fail(const char *what)
{
    fprintf(stderr, "bench_cuda_ops: %s: %s\n", what, herd_last_error());
    return 1;
}

/* Seconds per repetition of what record() issues, from a graph replayed 5 times. */
struct timed {
    struct bctx *bc;
    const struct backend_ops *ops;
    int64_t key;
};

typedef void (*issue_fn)(void *arg);

static double time_ops(struct timed *t, issue_fn issue, void *arg)
{
    const int64_t key = ++t->key;
    for (int round = 0; round < 2; round++) { /* the first runs as it comes, the second records */
        if (t->ops->graph_begin && t->ops->graph_begin(t->bc, key) != HERD_OK)
            return -1.0;
        for (int r = 0; r < REPS; r++)
            issue(arg);
        if (t->ops->graph_end && t->ops->graph_end(t->bc, key) != HERD_OK)
            return -1.0;
    }
    if (t->ops->sync(t->bc) != HERD_OK)
        return -1.0;
    const int replays = 5;
    double t0 = now_s();
    for (int k = 0; k < replays; k++) {
        if (!t->ops->graph_replay || !t->ops->graph_replay(t->bc, key)) {
            for (int r = 0; r < REPS; r++)
                issue(arg);
        }
    }
    if (t->ops->sync(t->bc) != HERD_OK)
        return -1.0;
    return (now_s() - t0) / (replays * REPS);
}

struct mm_arg {
    struct timed *t;
    float *y, *x;
    const struct weight *w;
    int64_t n;
};

static void issue_matmul(void *p)
{
    struct mm_arg *a = p;
    a->t->ops->matmul(a->t->bc, a->y, a->w->n_rows, a->w, a->x, a->w->n_cols, a->n);
}

struct small_arg {
    struct timed *t;
    int what;
    float *a, *b, *c;
    const float *norm;
    const struct bstep *st;
    int64_t n, dim, hidden;
};

static void issue_small(void *p)
{
    struct small_arg *a = p;
    const struct backend_ops *o = a->t->ops;
    struct bctx *bc = a->t->bc;
    switch (a->what) {
    case 0:
        o->rmsnorm(bc, a->b, a->a, a->norm, a->n, a->dim);
        break;
    case 1:
        o->add(bc, a->a, a->b, a->n * a->dim);
        break;
    case 2:
        o->swiglu(bc, a->a, a->a, a->b, a->n, a->hidden);
        break;
    case 3:
        o->rope(bc, a->a, a->dim, a->b, a->dim / 4, a->st);
        break;
    case 4:
        o->kv_store(bc, 0, a->b, a->dim / 4, a->b, a->dim / 4, a->st);
        break;
    case 5:
        o->attention(bc, a->c, a->a, 0, a->st);
        break;
    }
}

int main(int argc, char **argv)
{
    const char *dev = "cuda";
    double hbm = 4240.0; /* GB/s: the H200's measured read bandwidth */
    int small = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            dev = argv[++i];
        else if (strcmp(argv[i], "--hbm") == 0 && i + 1 < argc)
            hbm = strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "--small") == 0)
            small = 1;
        else {
            fprintf(stderr, "usage: bench_cuda_ops [--device D] [--hbm GB/s] [--small]\n");
            return 2;
        }
    }
    const int64_t dim = small ? 512 : 4096, kvd = dim / 4, ff = small ? 896 : 14336;
    const int64_t vocab = small ? 8016 : 128256;
    struct backend be;
    if (backend_open(dev, 1, &be) != HERD_OK)
        return fail(dev);

    float inv_freq[64];
    for (int i = 0; i < 64; i++)
        inv_freq[i] = 1.0f / (float)(i + 1);
    struct bctx_params p = {0};
    p.n_threads = 1;
    p.n_ctx = 1100;
    p.n_seq = 1;
    p.n_batch = 512;
    p.n_layers = 1;
    p.n_heads = (int32_t)(dim / 128);
    p.n_kv_heads = (int32_t)(kvd / 128);
    p.head_dim = 128;
    p.kv_type = HERD_DTYPE_F16;
    p.rope_style = ROPE_HALF;
    p.inv_freq = inv_freq;
    p.norm_eps = 1e-5f;
    p.max_cols = ff;

    const herd_dtype types[] = {HERD_DTYPE_BF16, HERD_DTYPE_F16, HERD_DTYPE_Q8_0,
                                HERD_DTYPE_Q4_0, HERD_DTYPE_Q4_K, HERD_DTYPE_Q6_K};
    const struct {
        const char *name;
        int64_t rows, cols;
    } shapes[] = {{"wq/wo", dim, dim}, {"wk/wv", kvd, dim}, {"gate/up", ff, dim},
                  {"down", dim, ff}, {"output", vocab, dim}};
    const int64_t ns[] = {1, 8, 512};
    printf("| op | weight | rows | us | GB/s | %% of %.0f GB/s | TFLOP/s |\n", hbm);
    printf("| --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        struct bctx *bc;
        if (be.ops->ctx_new(&be, &p, &bc) != HERD_OK)
            return fail("ctx_new");
        struct timed t = {bc, be.ops, 0};
        float *x, *y;
        if (be.ops->alloc(bc, 512 * ff, &x) != HERD_OK || be.ops->alloc(bc, 512 * vocab, &y))
            return fail("alloc");
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            struct weight w = {0};
            w.type = types[ti];
            w.n_rows = shapes[si].rows;
            w.n_cols = shapes[si].cols;
            w.row_bytes = dtype_row_bytes(w.type, w.n_cols);
            const size_t bytes = w.row_bytes * (size_t)w.n_rows;
            uint8_t *host = malloc(bytes);
            if (!host)
                return fail("malloc");
            fill_bytes(host, bytes);
            w.data = host;
            if (be.ops->weight_upload(&be, &w) != HERD_OK)
                return fail("weight_upload");
            for (size_t ni = 0; ni < 3; ni++) {
                if (ns[ni] == 512 && si == 4)
                    continue; /* the output product takes the last row only */
                struct mm_arg a = {&t, y, x, &w, ns[ni]};
                double s = time_ops(&t, issue_matmul, &a);
                if (s < 0)
                    return fail("matmul");
                double gbs = (double)bytes / s / 1e9;
                double tf = 2.0 * (double)w.n_rows * (double)w.n_cols * (double)ns[ni] / s / 1e12;
                printf("| matmul %s | %s | %lld | %.1f | %.0f | %.0f | %.1f |\n",
                       shapes[si].name, herd_dtype_name(w.type), (long long)ns[ni], s * 1e6,
                       gbs, 100.0 * gbs / hbm, tf);
                fflush(stdout);
            }
            /* host stays allocated: the backend keys its copies by host address (a tied
             * output shares the embedding's), and a freed address can come back */
        }
        be.ops->ctx_free(bc);
    }

    /* the small operations of a layer, at 1 row (decode) and at positions 128 / 1024 */
    struct bctx *bc;
    if (be.ops->ctx_new(&be, &p, &bc) != HERD_OK)
        return fail("ctx_new");
    struct timed t = {bc, be.ops, 100};
    float *a, *b, *c;
    const float *norm;
    float *ones = malloc((size_t)ff * sizeof *ones);
    for (int64_t i = 0; i < ff; i++)
        ones[i] = 1.0f;
    if (be.ops->alloc(bc, ff * 8, &a) || be.ops->alloc(bc, ff * 8, &b) ||
        be.ops->alloc(bc, ff * 8, &c) || be.ops->vector_upload(&be, ones, dim, &norm))
        return fail("alloc");
    static const char *names[] = {"rmsnorm", "add", "swiglu", "rope", "kv_store", "attention"};
    const int32_t positions[] = {128, 1024};
    for (int pi = 0; pi < 2; pi++) {
        /* fill the cache up to the position: one step of 512 and more */
        const struct bstep *st;
        int32_t tok[512], pos[512], seq[512];
        for (int32_t p0 = 0; p0 < positions[pi]; p0 += 512) {
            int32_t k = positions[pi] - p0 < 512 ? positions[pi] - p0 : 512;
            for (int i = 0; i < k; i++) {
                tok[i] = 1;
                pos[i] = p0 + i;
                seq[i] = 0;
            }
            if (be.ops->step_set(bc, tok, pos, seq, k, &st) != HERD_OK)
                return fail("step_set");
            be.ops->kv_store(bc, 0, b, 0, b, 0, st); /* ldk 0: the same row for all */
        }
        tok[0] = 1;
        pos[0] = positions[pi];
        seq[0] = 0;
        if (be.ops->step_set(bc, tok, pos, seq, 1, &st) != HERD_OK)
            return fail("step_set");
        for (int what = pi == 0 ? 0 : 5; what < 6; what++) {
            struct small_arg s = {&t, what, a, b, c, norm, st, 1, dim, ff};
            double sec = time_ops(&t, issue_small, &s);
            if (sec < 0)
                return fail(names[what]);
            printf("| %s | pos %d | 1 | %.1f | | | |\n", names[what], positions[pi], sec * 1e6);
        }
    }
    free(ones);
    be.ops->ctx_free(bc);
    backend_close(&be);
    return 0;
}
