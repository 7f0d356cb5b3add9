/*
 * test_sample.c - the sampler chain against its definitions: each configuration's draw
 * frequencies over many seeded draws are compared with the exact distribution computed
 * here from the definition in herd.h (a chi-square test, and no token outside the support),
 * plus greedy, determinism under a seed, the penalty window, defaults and bad parameters.
 */
#include "herd.h"
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NV 24         /* synthetic vocabulary */
#define DRAWS 40000   /* per configuration: expected counts >= ~40 for tokens kept */

struct ref_item {
    double l;
    int id;
};

static int cmp_ref(const void *x, const void *y)
{
    const struct ref_item *a = x, *b = y;
    if (a->l != b->l)
        return a->l > b->l ? -1 : 1;
    return a->id - b->id;
}

/* The distribution herd.h defines, straight from the words, in double precision. */
static void reference(const float *logits, const herd_sampler_params *p, const int *counts,
                      double *prob)
{
    struct ref_item it[NV];
    for (int i = 0; i < NV; i++) {
        double l = logits[i];
        for (size_t b = 0; b < p->n_logit_bias; b++)
            if (p->logit_bias[b].token == i)
                l += p->logit_bias[b].bias;
        if (counts[i] > 0) {
            l = l > 0 ? l / p->repeat_penalty : l * p->repeat_penalty;
            l -= p->presence_penalty + counts[i] * p->frequency_penalty;
        }
        it[i].l = l / p->temperature;
        it[i].id = i;
    }
    qsort(it, NV, sizeof it[0], cmp_ref);
    int n = p->top_k > 0 && p->top_k < NV ? p->top_k : NV;
    double e[NV], total = 0;
    for (int i = 0; i < n; i++) {
        e[i] = exp(it[i].l - it[0].l);
        total += e[i];
    }
    if (p->top_p < 1) {
        double cum = 0;
        int m = n;
        for (int i = 0; i < n; i++) {
            cum += e[i];
            if (cum >= p->top_p * total) {
                m = i + 1;
                break;
            }
        }
        n = m;
    }
    memset(prob, 0, NV * sizeof *prob);
    double kept = 0;
    for (int i = 0; i < n; i++)
        if (e[i] >= p->min_p * e[0])
            kept += e[i];
    for (int i = 0; i < n; i++)
        if (e[i] >= p->min_p * e[0])
            prob[it[i].id] = e[i] / kept;
}

/* Upper 0.1% point of chi-square with k degrees of freedom (Wilson-Hilferty). */
static double chi2_crit(int k)
{
    double z = 3.09;
    double a = 2.0 / (9.0 * k);
    double t = 1 - a + z * sqrt(a);
    return k * t * t * t;
}

struct config {
    const char *name;
    herd_sampler_params p;
    int history[8]; /* accepted tokens before drawing; -1 ends */
};

static void check_config(const struct config *cf, const float *logits)
{
    herd_sampler *s = NULL;
    herd_status st = herd_sampler_new(&cf->p, NV, &s);
    CHECK_MSG(st == HERD_OK, "%s: %s", cf->name, herd_last_error());
    if (st != HERD_OK)
        return;
    int counts[NV] = {0};
    for (int i = 0; i < 8 && cf->history[i] >= 0; i++) {
        herd_sampler_accept(s, cf->history[i]);
        counts[cf->history[i]]++;
    }
    double prob[NV];
    reference(logits, &cf->p, counts, prob);
    long seen[NV] = {0};
    int bad = 0;
    for (int d = 0; d < DRAWS; d++) {
        int32_t tok = -1;
        if (herd_sampler_sample(s, logits, NV, &tok) != HERD_OK || tok < 0 || tok >= NV) {
            bad++;
            continue;
        }
        seen[tok]++;
    }
    double chi2 = 0;
    int df = -1, outside = 0;
    for (int i = 0; i < NV; i++) {
        if (prob[i] == 0) {
            outside += seen[i] > 0;
            continue;
        }
        double expct = prob[i] * DRAWS;
        chi2 += (seen[i] - expct) * (seen[i] - expct) / expct;
        df++;
    }
    CHECK_MSG(bad == 0, "%s: %d draws failed", cf->name, bad);
    CHECK_MSG(outside == 0, "%s: drew %d tokens the definition excludes", cf->name, outside);
    if (df > 0)
        CHECK_MSG(chi2 < chi2_crit(df), "%s: chi2 %.1f over %d dof (limit %.1f)", cf->name,
                  chi2, df, chi2_crit(df));
    else
        CHECK_MSG(df == 0, "%s: empty support", cf->name);
    herd_sampler_free(s);
}

static herd_sampler_params base(float temp)
{
    herd_sampler_params p = herd_sampler_default_params();
    p.temperature = temp;
    p.top_p = 1.0f;
    p.seed = 1234;
    return p;
}

static void test_distributions(void)
{
    float logits[NV];
    /* Spread-out values, none tied, a few negative (the repetition penalty's other side). */
    for (int i = 0; i < NV; i++)
        logits[i] = 2.5f * sinf(1.7f * (float)i + 0.3f) + 0.05f * (float)i;
    static herd_logit_bias bias[] = {{3, -INFINITY}, {5, 2.0f}, {7, -1.5f}};
    struct config cfs[16];
    int n = 0;
    cfs[n] = (struct config){"temperature 1", base(1.0f), {-1}};
    n++;
    cfs[n] = (struct config){"temperature 0.6", base(0.6f), {-1}};
    n++;
    cfs[n] = (struct config){"temperature 1.7", base(1.7f), {-1}};
    n++;
    cfs[n] = (struct config){"top-k 5", base(1.0f), {-1}};
    cfs[n].p.top_k = 5;
    n++;
    cfs[n] = (struct config){"top-p 0.9 at T 0.6 (Instruct defaults)", base(0.6f), {-1}};
    cfs[n].p.top_p = 0.9f;
    n++;
    cfs[n] = (struct config){"top-p 0.5", base(1.2f), {-1}};
    cfs[n].p.top_p = 0.5f;
    n++;
    cfs[n] = (struct config){"min-p 0.1", base(1.0f), {-1}};
    cfs[n].p.min_p = 0.1f;
    n++;
    cfs[n] = (struct config){"top-k 10 + top-p 0.8 + min-p 0.05", base(0.8f), {-1}};
    cfs[n].p.top_k = 10;
    cfs[n].p.top_p = 0.8f;
    cfs[n].p.min_p = 0.05f;
    n++;
    cfs[n] = (struct config){"repetition 1.3", base(1.0f), {1, 2, 4, 9, 9, -1}};
    cfs[n].p.repeat_penalty = 1.3f;
    n++;
    cfs[n] = (struct config){"presence 0.7 + frequency 0.4", base(1.0f), {1, 1, 1, 4, 9, 9, -1}};
    cfs[n].p.presence_penalty = 0.7f;
    cfs[n].p.frequency_penalty = 0.4f;
    n++;
    cfs[n] = (struct config){"logit bias", base(1.0f), {-1}};
    cfs[n].p.logit_bias = bias;
    cfs[n].p.n_logit_bias = 3;
    n++;
    cfs[n] = (struct config){"everything", base(0.9f), {0, 1, 2, 2, -1}};
    cfs[n].p.top_k = 12;
    cfs[n].p.top_p = 0.95f;
    cfs[n].p.min_p = 0.02f;
    cfs[n].p.repeat_penalty = 1.1f;
    cfs[n].p.presence_penalty = 0.2f;
    cfs[n].p.frequency_penalty = 0.1f;
    cfs[n].p.logit_bias = bias;
    cfs[n].p.n_logit_bias = 3;
    n++;
    for (int i = 0; i < n; i++)
        check_config(&cfs[i], logits);

    /* The check can fail: a sampler at T 1 judged against T 0.6 must be rejected. */
    struct config wrong = {"(deliberately wrong)", base(1.0f), {-1}};
    herd_sampler *s = NULL;
    herd_sampler_new(&wrong.p, NV, &s);
    int counts[NV] = {0};
    double prob[NV];
    herd_sampler_params p06 = base(0.6f);
    reference(logits, &p06, counts, prob);
    long seen[NV] = {0};
    for (int d = 0; d < DRAWS; d++) {
        int32_t t = 0;
        herd_sampler_sample(s, logits, NV, &t);
        seen[t]++;
    }
    double chi2 = 0;
    for (int i = 0; i < NV; i++)
        if (prob[i] > 0)
            chi2 += (seen[i] - prob[i] * DRAWS) * (seen[i] - prob[i] * DRAWS) / (prob[i] * DRAWS);
    CHECK_MSG(chi2 > chi2_crit(NV - 1), "a wrong temperature went unnoticed (chi2 %.1f)", chi2);
    herd_sampler_free(s);
}

static void test_greedy(void)
{
    float l[6] = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f, 0.0f};
    herd_sampler_params p = base(0.0f);
    herd_sampler *s = NULL;
    CHECK(herd_sampler_new(&p, 6, &s) == HERD_OK);
    int32_t t = -1;
    CHECK(herd_sampler_sample(s, l, 6, &t) == HERD_OK && t == 1); /* tie: lower id */
    herd_sampler_free(s);
    /* Greedy still sees the penalties: token 1 and 3 repeated fall below 4. */
    p.repeat_penalty = 1.2f;
    CHECK(herd_sampler_new(&p, 6, &s) == HERD_OK);
    herd_sampler_accept(s, 1);
    herd_sampler_accept(s, 3);
    CHECK(herd_sampler_sample(s, l, 6, &t) == HERD_OK && t == 4);
    herd_sampler_free(s);
}

static void test_determinism_and_window(void)
{
    float l[NV];
    for (int i = 0; i < NV; i++)
        l[i] = (float)(i % 7) * 0.3f;
    herd_sampler_params p = base(1.0f);
    p.seed = 42;
    herd_sampler *a = NULL, *b = NULL, *c = NULL;
    CHECK(herd_sampler_new(&p, NV, &a) == HERD_OK);
    CHECK(herd_sampler_new(&p, NV, &b) == HERD_OK);
    p.seed = 43;
    CHECK(herd_sampler_new(&p, NV, &c) == HERD_OK);
    int same = 1, differ = 0;
    int32_t first[64];
    for (int i = 0; i < 64; i++) {
        int32_t x, y, z;
        herd_sampler_sample(a, l, NV, &x);
        herd_sampler_sample(b, l, NV, &y);
        herd_sampler_sample(c, l, NV, &z);
        first[i] = x;
        same &= x == y;
        differ += x != z;
    }
    CHECK_MSG(same, "two samplers with one seed disagree");
    CHECK_MSG(differ > 10, "seeds 42 and 43 agree on %d of 64 draws", 64 - differ);
    herd_sampler_reset(a);
    int again = 1;
    for (int i = 0; i < 64; i++) {
        int32_t x;
        herd_sampler_sample(a, l, NV, &x);
        again &= x == first[i];
    }
    CHECK_MSG(again, "reset does not restart the seeded sequence");
    herd_sampler_free(a);
    herd_sampler_free(b);
    herd_sampler_free(c);

    /* Window of 2: a token accepted three tokens ago is no longer penalised. */
    float g[3] = {1.0f, 0.9f, 0.0f};
    herd_sampler_params w = base(0.0f);
    w.presence_penalty = 5.0f;
    w.penalty_last_n = 2;
    CHECK(herd_sampler_new(&w, 3, &a) == HERD_OK);
    int32_t t;
    herd_sampler_accept(a, 0);
    herd_sampler_sample(a, g, 3, &t);
    CHECK(t == 1);
    herd_sampler_accept(a, 2);
    herd_sampler_accept(a, 2);
    herd_sampler_sample(a, g, 3, &t);
    CHECK_MSG(t == 0, "token 0 left the window of 2 but is still penalised (got %d)", t);
    herd_sampler_free(a);
}

static void test_params(void)
{
    herd_sampler_params d = herd_sampler_default_params();
    CHECK(fabsf(d.temperature - 0.6f) < 1e-6f && fabsf(d.top_p - 0.9f) < 1e-6f);
    CHECK(d.top_k == 0 && d.min_p == 0 && d.repeat_penalty == 1.0f);
    herd_model_info info;
    memset(&info, 0, sizeof info);
    info.default_temperature = 0.7f;
    info.default_top_p = -1.0f; /* absent */
    herd_sampler_params_from_model(&d, &info);
    CHECK(fabsf(d.temperature - 0.7f) < 1e-6f && fabsf(d.top_p - 0.9f) < 1e-6f);

    herd_sampler *s = (herd_sampler *)1;
    herd_sampler_params bad = base(1.0f);
    bad.top_p = 1.5f;
    CHECK(herd_sampler_new(&bad, 10, &s) == HERD_ERR_INVALID && s == NULL);
    bad = base(-1.0f);
    CHECK(herd_sampler_new(&bad, 10, &s) == HERD_ERR_INVALID);
    herd_logit_bias lb = {10, 1.0f};
    bad = base(1.0f);
    bad.logit_bias = &lb;
    bad.n_logit_bias = 1;
    CHECK(herd_sampler_new(&bad, 10, &s) == HERD_ERR_INVALID);
    bad = base(1.0f);
    CHECK(herd_sampler_new(&bad, 10, &s) == HERD_OK);
    float l[10] = {0};
    int32_t t;
    CHECK(herd_sampler_sample(s, l, 9, &t) == HERD_ERR_INVALID);
    herd_sampler_free(s);
    /* Every token banned: an error, not a crash. */
    herd_logit_bias ban[2] = {{0, -INFINITY}, {1, -INFINITY}};
    bad.logit_bias = ban;
    bad.n_logit_bias = 2;
    CHECK(herd_sampler_new(&bad, 2, &s) == HERD_OK);
    CHECK(herd_sampler_sample(s, l, 2, &t) == HERD_ERR_INVALID);
    herd_sampler_free(s);
}

/* A Llama-sized vocabulary at the Instruct defaults: correct support and a timing note. */
static void test_full_vocab(void)
{
    enum { V = 128256 };
    float *l = malloc(V * sizeof *l);
    uint64_t x = 99;
    for (int i = 0; i < V; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        l[i] = (float)((x >> 40) & 0xFFFF) / 4096.0f; /* logits in [0, 16) */
    }
    herd_sampler_params p = herd_sampler_default_params();
    herd_sampler *s = NULL;
    CHECK(herd_sampler_new(&p, V, &s) == HERD_OK);
    double t0 = (double)clock() / CLOCKS_PER_SEC;
    int ok = 1;
    for (int i = 0; i < 50; i++) {
        int32_t t;
        ok &= herd_sampler_sample(s, l, V, &t) == HERD_OK && l[t] > 10.0f;
    }
    double dt = ((double)clock() / CLOCKS_PER_SEC - t0) / 50;
    CHECK_MSG(ok, "a draw at T 0.6 / top-p 0.9 picked an implausible token");
    printf("full vocabulary draw: %.2f ms\n", dt * 1e3);
    herd_sampler_free(s);
    free(l);
}

int main(void)
{
    test_params();
    test_greedy();
    test_determinism_and_window();
    test_distributions();
    test_full_vocab();
    return check_done();
}
