/*
 * test_cuda_ops.c - every operation of the CUDA backend against the CPU backend's, on the
 * same random inputs, through the backend interface only (kernels/backend.h): what the
 * forward pass sees. Per operation:
 *  - matmul: every weight type the backend takes (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,
 *    Q5_1, Q4_K, Q5_K, Q6_K), 1..24 activation rows (both the warp-per-row kernel and the
 *    SGEMM path), row strides wider than the rows, an odd number of weight rows, and row
 *    lengths that are not a multiple of 32 for the float types; |dev - cpu| <= 2e-5 *
 *    sum |w x| + 1e-6 per output (both backends round activations to the same partner
 *    format, so only the order of the sums differs); outputs past n_rows untouched;
 *  - embed: bit for bit (a dequantized row is exact by design);
 *  - rmsnorm, rope (both styles), swiglu, add, copy_row: to float rounding;
 *  - kv_store + attention for F16, F32 and Q8_0 caches, several sequences in one step, a
 *    sequence filled past 256 positions (attention tiles of 128), kv_copy;
 *  - a CUDA graph recorded for one step and replayed for another (new tokens and
 *    positions reach it only through step_set);
 *  - a bad call's error kept by the context and returned by the next download.
 *
 * HERD_CUDA_TEST_DEVICE names the device under test (default "cuda"); "cpu" runs the same
 * comparisons CPU against CPU, which checks this test itself on a machine without a GPU.
 * Without a usable device the test prints why and exits 77 (skipped).
 */
#include "check.h"
#include "kernels/backend.h"
#include "kernels/kernels.h"
#include "quant/quant.h"

#include <math.h>   /* fabs, powf */
#include <stdlib.h> /* getenv, calloc */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void) /* uniform in [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void fill(float *x, int64_t n, float scale)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = frand() * scale;
}

/* The CPU backend and the device under test, side by side. */
struct env {
    struct backend cb, db;
    struct bctx *cc, *dc;
    bool is_cpu; /* the device under test is the CPU itself */
};

struct buf {
    float *c, *d;
    int64_t n;
};

static struct buf buf_new(struct env *e, int64_t n)
{
    struct buf b = {NULL, NULL, n};
    CHECK(e->cb.ops->alloc(e->cc, n, &b.c) == HERD_OK);
    CHECK(e->db.ops->alloc(e->dc, n, &b.d) == HERD_OK);
    return b;
}

static void buf_set(struct env *e, struct buf b, const float *host)
{
    CHECK(e->cb.ops->upload(e->cc, b.c, host, b.n) == HERD_OK);
    CHECK(e->db.ops->upload(e->dc, b.d, host, b.n) == HERD_OK);
}

static void buf_zero(struct env *e, struct buf b)
{
    float *z = calloc((size_t)b.n, sizeof *z);
    buf_set(e, b, z);
    free(z);
}

/* Downloads both copies; ref and got are (b.n) host arrays. */
static void buf_get(struct env *e, struct buf b, float *ref, float *got)
{
    CHECK(e->cb.ops->download(e->cc, ref, b.c, b.n) == HERD_OK);
    herd_status s = e->db.ops->download(e->dc, got, b.d, b.n);
    CHECK_MSG(s == HERD_OK, "download: %s", herd_last_error());
}

/* Elements where |got - ref| > atol + rtol * |ref|, reported (first few) under what. */
static int compare(const char *what, const float *ref, const float *got, int64_t n,
                   double atol, double rtol)
{
    int bad = 0;
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        if (d > worst)
            worst = d;
        if (!(d <= atol + rtol * fabs((double)ref[i]))) {
            if (bad < 4)
                printf("  %s: [%lld] cpu %.9g dev %.9g\n", what, (long long)i, ref[i], got[i]);
            bad++;
        }
    }
    CHECK_MSG(bad == 0, "%s: %d of %lld elements off (max |diff| %.3g)", what, bad,
              (long long)n, worst);
    return bad;
}

static struct bctx_params ctx_params(herd_dtype kv, enum rope_style rs, int head_dim,
                                     const float *inv_freq)
{
    struct bctx_params p = {0};
    p.n_threads = 2;
    p.n_ctx = 300; /* past two attention tiles of 128 */
    p.n_seq = 3;
    p.n_batch = 24;
    p.n_layers = 2;
    p.n_heads = 8;
    p.n_kv_heads = 2;
    p.head_dim = head_dim;
    p.kv_type = kv;
    p.rope_style = rs;
    p.inv_freq = inv_freq;
    p.norm_eps = 1e-5f;
    p.max_cols = 512;
    return p;
}

static bool ctx_open(struct env *e, const struct bctx_params *p)
{
    herd_status s = e->cb.ops->ctx_new(&e->cb, p, &e->cc);
    CHECK(s == HERD_OK);
    s = e->db.ops->ctx_new(&e->db, p, &e->dc);
    CHECK_MSG(s == HERD_OK, "ctx_new: %s", herd_last_error());
    return e->cc && e->dc;
}

static void ctx_close(struct env *e)
{
    if (e->cc)
        e->cb.ops->ctx_free(e->cc);
    if (e->dc)
        e->db.ops->ctx_free(e->dc);
    e->cc = e->dc = NULL;
}

/* Both contexts take the same step; the device's bstep is returned through *dst. */
static void step(struct env *e, const int32_t *tok, const int32_t *pos, const int32_t *seq,
                 int64_t n, const struct bstep **cst, const struct bstep **dst)
{
    CHECK(e->cb.ops->step_set(e->cc, tok, pos, seq, n, cst) == HERD_OK);
    herd_status s = e->db.ops->step_set(e->dc, tok, pos, seq, n, dst);
    CHECK_MSG(s == HERD_OK, "step_set: %s", herd_last_error());
}

/* ---- weights */

struct wpair {
    struct weight c, d;
    void *host;
    float *deq; /* (n_rows, n_cols) the reference dequantization */
};

static bool weight_make(struct env *e, struct wpair *w, herd_dtype t, int64_t rows, int64_t cols)
{
    memset(w, 0, sizeof *w);
    size_t rb = dtype_row_bytes(t, cols);
    float *src = malloc((size_t)(rows * cols) * sizeof *src);
    w->host = malloc(rb * (size_t)rows);
    w->deq = malloc((size_t)(rows * cols) * sizeof *w->deq);
    fill(src, rows * cols, 1.0f);
    for (int64_t r = 0; r < rows; r++) {
        const float *s = src + r * cols;
        uint8_t *d = (uint8_t *)w->host + (size_t)r * rb;
        if (t == HERD_DTYPE_F32) {
            memcpy(d, s, (size_t)cols * sizeof(float));
        } else if (t == HERD_DTYPE_F16 || t == HERD_DTYPE_BF16) {
            for (int64_t i = 0; i < cols; i++) {
                uint16_t h = t == HERD_DTYPE_F16 ? f32_to_fp16(s[i]) : f32_to_bf16(s[i]);
                memcpy(d + 2 * i, &h, 2);
            }
        } else {
            CHECK(quantize_row(t, d, s, cols) == HERD_OK);
        }
        CHECK(dequantize_row(t, w->deq + r * cols, d, cols) == HERD_OK);
    }
    free(src);
    w->c = (struct weight){.data = w->host, .type = t, .n_rows = rows, .n_cols = cols,
                           .row_bytes = rb};
    w->d = w->c;
    CHECK(e->cb.ops->weight_upload(&e->cb, &w->c) == HERD_OK);
    herd_status s = e->db.ops->weight_upload(&e->db, &w->d);
    CHECK_MSG(s == HERD_OK, "weight_upload %s: %s", herd_dtype_name(t), herd_last_error());
    return s == HERD_OK;
}

/* The host bytes stay allocated until the end: a backend may key its device copies by
 * host address (the CUDA backend shares one copy between a tied embedding and output), and
 * a freed buffer's address can come back for the next weight. */
static void *kept[64];
static int n_kept;

static void weight_free(struct wpair *w)
{
    if (n_kept < 64)
        kept[n_kept++] = w->host;
    else
        CHECK(!"more than 64 test weights");
    free(w->deq);
}

static const herd_dtype wtypes[] = {HERD_DTYPE_F32, HERD_DTYPE_F16, HERD_DTYPE_BF16,
                                    HERD_DTYPE_Q8_0, HERD_DTYPE_Q4_0, HERD_DTYPE_Q4_1,
                                    HERD_DTYPE_Q5_0, HERD_DTYPE_Q5_1, HERD_DTYPE_Q4_K,
                                    HERD_DTYPE_Q5_K, HERD_DTYPE_Q6_K};
#define N_WTYPES (sizeof wtypes / sizeof wtypes[0])
#define ROWS 37 /* odd: the last block of 4 rows is partial */

/* y = x W^T for n rows on both; checks against sum |w x| and the untouched padding. */
static void check_matmul(struct env *e, const struct wpair *w, int64_t n)
{
    const int64_t cols = w->c.n_cols, rows = w->c.n_rows, ldx = cols + 5, ldy = rows + 3;
    char what[96];
    snprintf(what, sizeof what, "matmul %s %lldx%lld n=%lld", herd_dtype_name(w->c.type),
             (long long)rows, (long long)cols, (long long)n);
    float *x = malloc((size_t)(n * ldx) * sizeof *x);
    float *ref = malloc((size_t)(n * ldy) * sizeof *ref), *got = malloc((size_t)(n * ldy) * 4);
    fill(x, n * ldx, 2.0f);
    struct buf bx = buf_new(e, n * ldx), by = buf_new(e, n * ldy);
    buf_set(e, bx, x);
    buf_zero(e, by);
    e->cb.ops->matmul(e->cc, by.c, ldy, &w->c, bx.c, ldx, n);
    e->db.ops->matmul(e->dc, by.d, ldy, &w->d, bx.d, ldx, n);
    buf_get(e, by, ref, got);
    int bad = 0;
    double worst = 0.0;
    for (int64_t b = 0; b < n; b++) {
        for (int64_t r = 0; r < ldy; r++) {
            double lim = 0.0, d = fabs((double)got[b * ldy + r] - (double)ref[b * ldy + r]);
            if (r < rows) {
                for (int64_t i = 0; i < cols; i++)
                    lim += fabs((double)w->deq[r * cols + i] * x[b * ldx + i]);
                lim = 2e-5 * lim + 1e-6;
            }
            if (r < rows && d / lim > worst)
                worst = d / lim;
            if (!(d <= lim)) {
                if (bad < 4)
                    printf("  %s: row %lld out %lld: cpu %.9g dev %.9g (limit %.3g)\n", what,
                           (long long)b, (long long)r, ref[b * ldy + r], got[b * ldy + r],
                           lim);
                bad++;
            }
        }
    }
    CHECK_MSG(bad == 0, "%s: %d outputs off (worst diff / limit %.3g)", what, bad, worst);
    free(x);
    free(ref);
    free(got);
}

static void test_weights(struct env *e, const float *inv_freq)
{
    struct wpair ws[N_WTYPES], wide[3];
    bool ok = true;
    for (size_t t = 0; t < N_WTYPES; t++)
        ok &= weight_make(e, &ws[t], wtypes[t], ROWS, 512);
    for (int t = 0; t < 3; t++) /* float types with rows of 100: no 32-element groups */
        ok &= weight_make(e, &wide[t], wtypes[t], ROWS, 100);
    struct bctx_params p = ctx_params(HERD_DTYPE_F16, ROPE_INTERLEAVED, 64, inv_freq);
    if (ok && ctx_open(e, &p)) {
        const int64_t ns[] = {1, 2, 3, 5, 8, 9, 24};
        for (size_t t = 0; t < N_WTYPES; t++)
            for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
                check_matmul(e, &ws[t], ns[k]);
        for (int t = 0; t < 3; t++) {
            check_matmul(e, &wide[t], 1);
            check_matmul(e, &wide[t], 11);
        }
        /* a weight larger than the context's dequantization scratch (sized by the weights
         * uploaded before it): the SGEMM path takes its rows in several pieces */
        struct wpair big;
        if (weight_make(e, &big, HERD_DTYPE_Q6_K, 300, 512)) {
            check_matmul(e, &big, 13);
            check_matmul(e, &big, 2);
        }
        weight_free(&big);
        /* embed: rows of every type, bit for bit */
        const int32_t tok[7] = {0, 36, 5, 5, 17, 1, 30}, pos[7] = {0, 1, 2, 3, 4, 5, 6};
        const int32_t seq[7] = {0};
        const struct bstep *cs, *ds;
        step(e, tok, pos, seq, 7, &cs, &ds);
        for (size_t t = 0; t < N_WTYPES; t++) {
            struct buf bx = buf_new(e, 7 * 512);
            float ref[7 * 512], got[7 * 512];
            CHECK(e->cb.ops->embed(e->cc, bx.c, &ws[t].c, cs) == HERD_OK);
            herd_status s = e->db.ops->embed(e->dc, bx.d, &ws[t].d, ds);
            CHECK_MSG(s == HERD_OK, "embed: %s", herd_last_error());
            buf_get(e, bx, ref, got);
            CHECK_MSG(memcmp(ref, got, sizeof ref) == 0, "embed %s: not bit-identical",
                      herd_dtype_name(wtypes[t]));
            if (memcmp(ref, got, sizeof ref) != 0)
                compare("embed", ref, got, 7 * 512, 0.0, 0.0);
        }
    }
    ctx_close(e);
    for (size_t t = 0; t < N_WTYPES; t++)
        weight_free(&ws[t]);
    for (int t = 0; t < 3; t++)
        weight_free(&wide[t]);
}

/* ---- per-token operations */

static void test_elementwise(struct env *e, const float *inv_freq)
{
    struct bctx_params p = ctx_params(HERD_DTYPE_F16, ROPE_INTERLEAVED, 64, inv_freq);
    if (!ctx_open(e, &p))
        goto done;
    const int64_t n = 5;
    const int64_t dims[] = {512, 100};
    for (int k = 0; k < 2; k++) {
        const int64_t dim = dims[k];
        float x[5 * 512], w[512], ref[5 * 512], got[5 * 512];
        fill(x, n * dim, 3.0f);
        fill(w, dim, 1.5f);
        struct buf bx = buf_new(e, n * dim), bw = buf_new(e, dim), bo = buf_new(e, n * dim);
        buf_set(e, bx, x);
        buf_set(e, bw, w);
        e->cb.ops->rmsnorm(e->cc, bo.c, bx.c, bw.c, n, dim);
        e->db.ops->rmsnorm(e->dc, bo.d, bx.d, bw.d, n, dim);
        buf_get(e, bo, ref, got);
        compare("rmsnorm", ref, got, n * dim, 1e-6, 1e-5);
    }
    /* swiglu over gates from -30 to 30 (exp overflows on one side), out == gate as in
     * forward.c; add; copy_row */
    const int64_t hidden = 100;
    float g[5 * 100], u[5 * 100], ref[5 * 100], got[5 * 100];
    fill(g, n * hidden, 30.0f);
    fill(u, n * hidden, 2.0f);
    struct buf bg = buf_new(e, n * hidden), bu = buf_new(e, n * hidden);
    buf_set(e, bg, g);
    buf_set(e, bu, u);
    e->cb.ops->swiglu(e->cc, bg.c, bg.c, bu.c, n, hidden);
    e->db.ops->swiglu(e->dc, bg.d, bg.d, bu.d, n, hidden);
    buf_get(e, bg, ref, got);
    compare("swiglu", ref, got, n * hidden, 1e-6, 1e-5);
    buf_set(e, bg, g);
    e->cb.ops->add(e->cc, bg.c, bu.c, n * hidden);
    e->db.ops->add(e->dc, bg.d, bu.d, n * hidden);
    buf_get(e, bg, ref, got);
    compare("add", ref, got, n * hidden, 0.0, 0.0);
    e->cb.ops->copy_row(e->cc, bg.c, hidden, 0, 3);
    e->db.ops->copy_row(e->dc, bg.d, hidden, 0, 3);
    e->cb.ops->copy_row(e->cc, bg.c, hidden, 1, 1);
    e->db.ops->copy_row(e->dc, bg.d, hidden, 1, 1);
    buf_get(e, bg, ref, got);
    compare("copy_row", ref, got, n * hidden, 0.0, 0.0);
    /* rope, both styles, at scattered positions, on strided rows */
    for (int style = 0; style < 2; style++) {
        ctx_close(e);
        p = ctx_params(HERD_DTYPE_F16, (enum rope_style)style, 64, inv_freq);
        if (!ctx_open(e, &p))
            goto done;
        const int32_t tok[6] = {1, 2, 3, 4, 5, 6}, pos[6] = {0, 1, 17, 299, 5, 128};
        const int32_t seq[6] = {0, 1, 2, 0, 1, 2};
        const struct bstep *cs, *ds;
        step(e, tok, pos, seq, 6, &cs, &ds);
        const int64_t ldq = 8 * 64 + 3, ldk = 2 * 64 + 1, nq = 6 * ldq, nk = 6 * ldk;
        float q[6 * (8 * 64 + 3)], kk[6 * (2 * 64 + 1)];
        float rq[6 * (8 * 64 + 3)], gq[6 * (8 * 64 + 3)];
        float rk[6 * (2 * 64 + 1)], gk[6 * (2 * 64 + 1)];
        fill(q, nq, 4.0f);
        fill(kk, nk, 4.0f);
        struct buf bq = buf_new(e, nq), bk = buf_new(e, nk);
        buf_set(e, bq, q);
        buf_set(e, bk, kk);
        e->cb.ops->rope(e->cc, bq.c, ldq, bk.c, ldk, cs);
        e->db.ops->rope(e->dc, bq.d, ldq, bk.d, ldk, ds);
        buf_get(e, bq, rq, gq);
        buf_get(e, bk, rk, gk);
        compare(style ? "rope (half) q" : "rope (interleaved) q", rq, gq, nq, 1e-6, 1e-6);
        compare(style ? "rope (half) k" : "rope (interleaved) k", rk, gk, nk, 1e-6, 1e-6);
    }
done:
    ctx_close(e);
}

/* One step of n tokens: keys/values (n, 2 * kv_dim) as forward.c lays them out, stored in
 * layer 1, then attention of random queries; outputs compared. */
static void attend_step(struct env *e, const struct bctx_params *p, const int32_t *pos,
                        const int32_t *seq, int64_t n, struct buf kvb, struct buf qb,
                        struct buf ob, const char *what)
{
    const int64_t kvd = (int64_t)p->n_kv_heads * p->head_dim;
    const int64_t qd = (int64_t)p->n_heads * p->head_dim;
    int32_t tok[48] = {0};
    const struct bstep *cs, *ds;
    step(e, tok, pos, seq, n, &cs, &ds);
    float *kv = malloc((size_t)(n * 2 * kvd) * sizeof *kv), *q = malloc((size_t)(n * qd) * 4);
    float *ref = malloc((size_t)(n * qd) * 4), *got = malloc((size_t)(n * qd) * 4);
    fill(kv, n * 2 * kvd, 1.0f);
    fill(q, n * qd, 3.0f);
    struct buf kvs = {kvb.c, kvb.d, n * 2 * kvd}, qs = {qb.c, qb.d, n * qd};
    struct buf os = {ob.c, ob.d, n * qd};
    buf_set(e, kvs, kv);
    buf_set(e, qs, q);
    e->cb.ops->kv_store(e->cc, 1, kvb.c, 2 * kvd, kvb.c + kvd, 2 * kvd, cs);
    e->db.ops->kv_store(e->dc, 1, kvb.d, 2 * kvd, kvb.d + kvd, 2 * kvd, ds);
    e->cb.ops->attention(e->cc, ob.c, qb.c, 1, cs);
    e->db.ops->attention(e->dc, ob.d, qb.d, 1, ds);
    buf_get(e, os, ref, got);
    compare(what, ref, got, n * qd, 2e-5, 1e-4);
    free(kv);
    free(q);
    free(ref);
    free(got);
}

static void test_attention(struct env *e, const float *inv_freq, herd_dtype kv, int head_dim)
{
    struct bctx_params p = ctx_params(kv, ROPE_INTERLEAVED, head_dim, inv_freq);
    p.n_batch = 48; /* steps of 40 below: more tokens than one attention launch takes */
    char what[80];
    snprintf(what, sizeof what, "attention kv %s head_dim %d", herd_dtype_name(kv), head_dim);
    if (!ctx_open(e, &p)) {
        ctx_close(e);
        return;
    }
    const int64_t kvd = 2 * (int64_t)head_dim, qd = 8 * (int64_t)head_dim;
    struct buf kvb = buf_new(e, 48 * 2 * kvd), qb = buf_new(e, 48 * qd), ob = buf_new(e, 48 * qd);
    /* sequences 0 and 2 interleaved in one step, then a decode step of all three */
    int32_t pos[48], seq[48];
    for (int i = 0; i < 20; i++) {
        seq[i] = i % 5 < 3 ? 0 : 2;
        pos[i] = seq[i] == 0 ? (i / 5) * 3 + i % 5 : (i / 5) * 2 + i % 5 - 3;
    }
    attend_step(e, &p, pos, seq, 20, kvb, qb, ob, what);
    const int32_t pos2[3] = {12, 0, 8}, seq2[3] = {0, 1, 2};
    attend_step(e, &p, pos2, seq2, 3, kvb, qb, ob, what);
    /* sequence 0's first 10 positions to sequence 1, then sequence 1 continues at 10 */
    CHECK(e->cb.ops->kv_copy(e->cc, 1, 0, 10) == HERD_OK);
    CHECK(e->db.ops->kv_copy(e->dc, 1, 0, 10) == HERD_OK);
    const int32_t pos3[1] = {10}, seq3[1] = {1};
    attend_step(e, &p, pos3, seq3, 1, kvb, qb, ob, what);
    /* sequence 0 on to position 299 in steps of 40 (a prefill's path: more tokens than
     * one launch, one split each), the last of 7 (a decode's: splits of 32 positions and
     * their merge) */
    for (int32_t p0 = 13; p0 < 300; p0 += 40) {
        int64_t n = 300 - p0 < 40 ? 300 - p0 : 40;
        for (int i = 0; i < n; i++) {
            pos[i] = p0 + i;
            seq[i] = 0;
        }
        attend_step(e, &p, pos, seq, n, kvb, qb, ob, what);
    }
    ctx_close(e);
}

/* ---- a graph recorded for one step, replayed for another */

static void test_graph(struct env *e, const float *inv_freq)
{
    const struct backend_ops *d = e->db.ops;
    if (!d->graph_begin) {
        printf("device %s does not record: graph test skipped\n", d->name);
        return;
    }
    struct wpair w;
    if (!weight_make(e, &w, HERD_DTYPE_Q4_K, 256, 256))
        return;
    /* an F32 cache: with F16 a value next to a rounding boundary may go either way after
     * products that differ in their last bits, which is not what this test is about */
    struct bctx_params p = ctx_params(HERD_DTYPE_F32, ROPE_HALF, 64, inv_freq);
    p.n_heads = 2;
    p.n_kv_heads = 2;
    p.max_cols = 256;
    if (!ctx_open(e, &p))
        goto done;
    const int64_t n = 4;
    struct buf x = buf_new(e, n * 256), y = buf_new(e, n * 256), o = buf_new(e, n * 128);
    for (int round = 0; round < 4; round++) {
        const int32_t tok[4][4] = {{1, 2, 3, 4}, {200, 7, 9, 100}, {5, 5, 5, 5}, {9, 8, 7, 6}};
        const int32_t pos[4][4] = {{0, 1, 0, 1}, {2, 3, 2, 3}, {4, 5, 4, 5}, {6, 7, 6, 7}};
        const int32_t seq[4] = {0, 0, 1, 1};
        const struct bstep *cs, *ds;
        step(e, tok[round], pos[round], seq, n, &cs, &ds);
        /* the CPU runs the operations; the device runs them as they come on the first
         * round, records them on the second and replays them on the next */
        const struct backend_ops *c = e->cb.ops;
        CHECK(c->embed(e->cc, x.c, &w.c, cs) == HERD_OK);
        c->matmul(e->cc, y.c, 256, &w.c, x.c, 256, n);
        c->rope(e->cc, y.c, 256, y.c + 128, 256, cs);
        c->kv_store(e->cc, 0, y.c + 128, 256, y.c + 128, 256, cs);
        c->attention(e->cc, o.c, y.c, 0, cs);
        bool replayed = d->graph_replay(e->dc, n);
        CHECK_MSG(replayed == (round > 1), "round %d: replay %d", round, replayed);
        if (!replayed) {
            CHECK(d->graph_begin(e->dc, n) == HERD_OK);
            CHECK(d->embed(e->dc, x.d, &w.d, ds) == HERD_OK);
            d->matmul(e->dc, y.d, 256, &w.d, x.d, 256, n);
            d->rope(e->dc, y.d, 256, y.d + 128, 256, ds);
            d->kv_store(e->dc, 0, y.d + 128, 256, y.d + 128, 256, ds);
            d->attention(e->dc, o.d, y.d, 0, ds);
            herd_status s = d->graph_end(e->dc, n);
            CHECK_MSG(s == HERD_OK, "graph_end: %s", herd_last_error());
        }
        float ref[4 * 128], got[4 * 128];
        buf_get(e, o, ref, got);
        char what[48];
        snprintf(what, sizeof what, "graph round %d", round);
        compare(what, ref, got, n * 128, 2e-5, 1e-4);
    }
done:
    ctx_close(e);
    weight_free(&w);
}

/* A bad call's failure is kept and comes back from download, with its message. */
static void test_sticky_error(struct env *e, const float *inv_freq)
{
    struct wpair w;
    if (!weight_make(e, &w, HERD_DTYPE_Q8_0, 64, 512))
        return;
    struct bctx_params p = ctx_params(HERD_DTYPE_F16, ROPE_HALF, 64, inv_freq);
    if (ctx_open(e, &p)) {
        struct buf x = buf_new(e, 24 * 512), y = buf_new(e, 30 * 64);
        float out[64];
        e->db.ops->matmul(e->dc, y.d, 64, &w.d, x.d, 512, 30); /* 30 rows > n_batch 24 */
        herd_status s = e->db.ops->download(e->dc, out, y.d, 64);
        CHECK_MSG(s != HERD_OK && strstr(herd_last_error(), "matmul"), "status %d: %s", s,
                  herd_last_error());
        CHECK(e->db.ops->sync(e->dc) == s);
    }
    ctx_close(e);
    weight_free(&w);
}

int main(void)
{
    const char *dev = getenv("HERD_CUDA_TEST_DEVICE");
    if (!dev || !*dev)
        dev = "cuda";
    struct env e = {0};
    herd_status s = backend_open(dev, 2, &e.db);
    if (s != HERD_OK) {
        printf("device %s not usable: %s: skipped\n", dev, herd_last_error());
        return 77;
    }
    CHECK(backend_open("cpu", 2, &e.cb) == HERD_OK);
    e.is_cpu = strcmp(e.db.ops->name, "cpu") == 0;
    printf("device under test: %s (%s), CPU kernels %s\n", dev, e.db.ops->name,
           kernels_get()->isa);
    if (!e.is_cpu) {
        struct backend bad;
        CHECK(backend_open("cuda:x", 2, &bad) == HERD_ERR_INVALID);
        CHECK(backend_open("cuda:1000", 2, &bad) == HERD_ERR_INVALID);
    }

    float inv64[32], inv24[12];
    for (int i = 0; i < 32; i++)
        inv64[i] = 1.0f / powf(500000.0f, (float)(2 * i) / 64.0f);
    for (int i = 0; i < 12; i++)
        inv24[i] = 1.0f / powf(10000.0f, (float)(2 * i) / 24.0f);

    test_weights(&e, inv64);
    test_elementwise(&e, inv64);
    const herd_dtype kvs[] = {HERD_DTYPE_F16, HERD_DTYPE_F32, HERD_DTYPE_Q8_0};
    for (int k = 0; k < 3; k++)
        test_attention(&e, inv64, kvs[k], 64);
    test_attention(&e, inv24, HERD_DTYPE_F16, 24);
    test_attention(&e, inv24, HERD_DTYPE_F32, 24);
    test_graph(&e, inv64);
    if (!e.is_cpu)
        test_sticky_error(&e, inv64);

    backend_close(&e.db);
    backend_close(&e.cb);
    for (int i = 0; i < n_kept; i++)
        free(kept[i]);
    return check_done();
}
