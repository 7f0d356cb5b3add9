/*
 * test_spec.c - speculative decoding and several models in one process, on the tiny random
 * models of tests/models/make_model.py (HERD_TEST_MODELS = their folder):
 *  - greedy identity: spec_step output equals the target's own greedy tokens, token for
 *    token, for a different draft, the same model as draft, and prompt lookup, with several
 *    K and prompts, also with a repetition penalty (the sampler's window moves mid-step);
 *  - rollback: after steps with rejections, both caches hold exactly the accepted history
 *    (the target's logits and the draft's proposals equal those of fresh contexts);
 *  - sampling: chi-square of many seeded draws of the first two tokens of a step against
 *    the target's distribution computed here directly (temperature, top-k / top-p, min-p),
 *    for a model draft and for lookup; and the same test rejecting a deliberately wrong
 *    scheme (on rejection drawing from p instead of the residual);
 *  - a vocabulary mismatch is refused;
 *  - two models in one process: interleaved decodes give the logits of each model alone,
 *    bit for bit, and the second model's context starts no thread of its own.
 */
#include "check.h"
#include "herd.h"
#include "spec/spec.h"

#include <dirent.h>   /* counting /proc/self/task */
#include <sys/stat.h> /* mkdir */
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *models;
static char pathbuf[4][1024];

static const char *model_path(int slot, const char *cfg)
{
    snprintf(pathbuf[slot], sizeof pathbuf[slot], "%s/%s/model.gguf", models, cfg);
    return pathbuf[slot];
}

static herd_model *load(int slot, const char *cfg, int threads)
{
    herd_model *m = NULL;
    herd_model_params mp = {.n_threads = threads};
    herd_status s = herd_model_load(model_path(slot, cfg), &mp, &m);
    CHECK_MSG(s == HERD_OK, "load %s: %s", cfg, herd_last_error());
    return m;
}

static herd_context *ctx_for(const herd_model *m, int32_t n_ctx)
{
    herd_context_params cp = herd_context_default_params();
    cp.n_ctx = n_ctx;
    cp.kv_type = HERD_DTYPE_F32;
    herd_context *c = NULL;
    herd_status s = herd_context_new(m, &cp, &c);
    CHECK_MSG(s == HERD_OK, "context: %s", herd_last_error());
    return c;
}

/* Feeds toks at the end of sequence 0; logits of the last into out (may be NULL). */
static herd_status feed(herd_context *c, const int32_t *toks, int32_t n, float *out,
                        int32_t n_vocab)
{
    int32_t pos[512], seq[512];
    int8_t want[512];
    int32_t start = herd_seq_len(c, 0);
    for (int32_t i = 0; i < n; i++) {
        pos[i] = start + i;
        seq[i] = 0;
        want[i] = out && i == n - 1;
    }
    (void)n_vocab;
    herd_batch b = {.n_tokens = n, .tokens = toks, .pos = pos, .seq = seq, .logits = want};
    return herd_decode(c, &b, out);
}

/* ---------------------------------------------------------------- greedy identity */

/* The target's own tokens: prefill, then one token per step, sampler as given. */
static void plain_run(herd_model *m, const int32_t *prompt, int32_t n, int32_t n_gen,
                      const herd_sampler_params *sp, int32_t *out)
{
    int32_t nv = herd_model_get_info(m)->n_vocab;
    herd_context *c = ctx_for(m, 256);
    herd_sampler *smp = NULL;
    herd_sampler_new(sp, nv, &smp);
    for (int32_t i = 0; i < n; i++)
        herd_sampler_accept(smp, prompt[i]);
    float *lg = malloc((size_t)nv * sizeof *lg);
    herd_status s = feed(c, prompt, n, lg, nv);
    for (int32_t i = 0; i < n_gen && s == HERD_OK; i++) {
        herd_sampler_sample(smp, lg, nv, &out[i]);
        herd_sampler_accept(smp, out[i]);
        s = feed(c, &out[i], 1, lg, nv);
    }
    CHECK(s == HERD_OK);
    free(lg);
    herd_sampler_free(smp);
    herd_context_free(c);
}

/* The same with speculative decoding: hist grows by each step's tokens. */
static void spec_run(herd_model *m, herd_model *draft, const herd_spec_params *p,
                     const int32_t *prompt, int32_t n, int32_t n_gen,
                     const herd_sampler_params *sp, int32_t *out, herd_spec_stats *st)
{
    int32_t nv = herd_model_get_info(m)->n_vocab;
    herd_context *c = ctx_for(m, 256);
    herd_spec *spec = NULL;
    herd_status s = herd_spec_new(c, draft, p, &spec);
    CHECK_MSG(s == HERD_OK, "spec_new: %s", herd_last_error());
    herd_sampler *smp = NULL;
    herd_sampler_new(sp, nv, &smp);
    for (int32_t i = 0; i < n; i++)
        herd_sampler_accept(smp, prompt[i]);
    float *lg = malloc((size_t)nv * sizeof *lg);
    int32_t hist[400];
    memcpy(hist, prompt, (size_t)n * sizeof *hist);
    int32_t nh = n, got = 0;
    s = feed(c, prompt, n, lg, nv);
    herd_sampler_sample(smp, lg, nv, &hist[nh]);
    herd_sampler_accept(smp, hist[nh]);
    out[got++] = hist[nh++];
    while (s == HERD_OK && got < n_gen) {
        int32_t step[SPEC_MAX_DRAFT + 1], ns = 0;
        s = herd_spec_step(spec, 0, smp, hist, nh, n_gen - got, step, &ns);
        CHECK_MSG(s == HERD_OK, "step: %s", herd_last_error());
        CHECK(ns >= 1 && ns <= n_gen - got);
        for (int32_t i = 0; i < ns && got < n_gen; i++) {
            out[got++] = step[i];
            hist[nh++] = step[i];
        }
        CHECK(herd_seq_len(c, 0) == nh - 1);
    }
    if (st)
        *st = herd_spec_get_stats(spec);
    free(lg);
    herd_sampler_free(smp);
    herd_spec_free(spec);
    herd_context_free(c);
}

static void test_greedy(void)
{
    static const char *targets[] = {"gqa2_untied_f32", "gqa8_untied_f16", "llama30_noscale_f32"};
    static const int32_t prompts[3][8] = {{1, 2, 3, 4, 5}, {200, 17, 300, 42, 9, 9, 9, 100},
                                          {7, 8, 7, 8, 7, 8, 7, 8}};
    static const int32_t n_prompt[3] = {5, 8, 8};
    herd_model *other = load(1, "gqa1_tied_f32", 1);
    for (int t = 0; t < 3; t++) {
        herd_model *m = load(0, targets[t], 1);
        for (int pr = 0; pr < 3; pr++) {
            for (int variant = 0; variant < 4; variant++) {
                herd_sampler_params sp = herd_sampler_default_params();
                sp.temperature = 0;
                if (variant == 3)
                    sp.repeat_penalty = 1.3f;
                herd_spec_params p = herd_spec_default_params();
                p.draft_max = variant == 1 ? 1 : variant == 2 ? 4 : 8;
                p.kv_type = HERD_DTYPE_F32; /* as the target's, so a self-draft agrees */
                int32_t want[60], got[60];
                plain_run(m, prompts[pr], n_prompt[pr], 60, &sp, want);
                herd_spec_stats st;
                /* a different model, the same model, prompt lookup */
                herd_model *drafts[3] = {other, m, NULL};
                for (int d = 0; d < 3; d++) {
                    memset(got, 0xff, sizeof got);
                    spec_run(m, drafts[d], &p, prompts[pr], n_prompt[pr], 60, &sp, got, &st);
                    CHECK_MSG(memcmp(want, got, sizeof want) == 0,
                              "greedy differs: target %s prompt %d variant %d draft %d",
                              targets[t], pr, variant, d);
                    /* the model drafting for itself keeps every draft (not with a penalty:
                     * drafts do not see the penalties of the drafts before them) */
                    if (d == 1 && variant != 3)
                        CHECK_MSG(st.n_accepted == st.n_drafted && st.n_drafted > 0,
                                  "self-draft accepted %lld of %lld (variant %d)",
                                  (long long)st.n_accepted, (long long)st.n_drafted, variant);
                }
            }
        }
        herd_model_free(m);
    }
    herd_model_free(other);
}

/* ---------------------------------------------------------------- rollback */

static void test_rollback(void)
{
    herd_model *m = load(0, "gqa2_untied_f32", 1), *d = load(1, "gqa1_tied_f32", 1);
    int32_t nv = herd_model_get_info(m)->n_vocab;
    herd_context *c = ctx_for(m, 256);
    herd_spec_params p = herd_spec_default_params();
    p.draft_max = 6;
    p.draft_min = 6; /* always 6 drafts: mostly rejected by this unrelated draft */
    herd_spec *spec = NULL;
    CHECK(herd_spec_new(c, d, &p, &spec) == HERD_OK);
    herd_sampler_params sp = herd_sampler_default_params();
    sp.temperature = 0;
    herd_sampler *smp = NULL;
    herd_sampler_new(&sp, nv, &smp);
    float *lg = malloc((size_t)nv * sizeof *lg), *lg2 = malloc((size_t)nv * sizeof *lg2);
    int32_t hist[300] = {5, 6, 7};
    int32_t nh = 3;
    feed(c, hist, 3, lg, nv);
    herd_sampler_sample(smp, lg, nv, &hist[nh++]);
    for (int step = 0; step < 12; step++) {
        int32_t out[8], n_out = 0;
        CHECK(herd_spec_step(spec, 0, smp, hist, nh, 8, out, &n_out) == HERD_OK);
        memcpy(hist + nh, out, (size_t)n_out * sizeof *out);
        nh += n_out;
    }
    herd_spec_stats st = herd_spec_get_stats(spec);
    CHECK(st.n_accepted < st.n_drafted); /* rejections happened */
    /* The target's cache: feeding the last token gives the logits of a fresh context. */
    CHECK(herd_seq_len(c, 0) == nh - 1);
    herd_context *fresh = ctx_for(m, 256);
    CHECK(feed(fresh, hist, nh, lg2, nv) == HERD_OK);
    herd_context *probe = c;
    int32_t last = hist[nh - 1];
    CHECK(feed(probe, &last, 1, lg, nv) == HERD_OK);
    /* Not bit for bit: the fresh context computed the history in one batch, and herd's
     * batched matmuls round differently from one-row ones (~1e-6). A cache that kept a
     * rejected token, or lost an accepted one, moves logits by O(1). */
    double md = 0;
    for (int32_t v = 0; v < nv; v++)
        md = fmax(md, fabs((double)lg[v] - (double)lg2[v]));
    printf("  target cache after %lld rejections: logits within %g of a fresh context's\n",
           (long long)(st.n_drafted - st.n_accepted), md);
    CHECK_MSG(md < 1e-4, "target cache after rollback: logits differ by %g", md);
    herd_seq_truncate(c, 0, nh - 1);
    /* The draft's cache: its proposals equal the draft model's own greedy continuation. */
    int32_t dr[8], nd = 0;
    CHECK(herd_spec_draft(spec, 0, smp, hist, nh, 6, dr, &nd) == HERD_OK);
    CHECK(nd == 6);
    herd_context *dfresh = ctx_for(d, 256);
    feed(dfresh, hist, nh, lg2, nv);
    for (int i = 0; i < nd; i++) {
        int32_t t = 0;
        for (int32_t v = 1; v < nv; v++)
            if (lg2[v] > lg2[t])
                t = v;
        CHECK_MSG(t == dr[i], "draft %d: %d, fresh draft model %d", i, dr[i], t);
        feed(dfresh, &t, 1, lg2, nv);
    }
    herd_context_free(dfresh);
    herd_context_free(fresh);
    free(lg);
    free(lg2);
    herd_sampler_free(smp);
    herd_spec_free(spec);
    herd_context_free(c);
    herd_model_free(d);
    herd_model_free(m);
}

/* ---------------------------------------------------------------- sampling */

struct cfg {
    float temp, top_p, min_p;
    int32_t top_k;
};

/* The target's distribution, straight from the definitions in herd.h. */
static void expected(const float *logits, int32_t nv, const struct cfg *c, double *p)
{
    double *l = malloc((size_t)nv * sizeof *l);
    int32_t *ord = malloc((size_t)nv * sizeof *ord);
    for (int32_t i = 0; i < nv; i++) {
        l[i] = (double)(logits[i] / c->temp);
        ord[i] = i;
    }
    /* order by logit, ties to the lower id (insertion sort: nv is small) */
    for (int32_t i = 1; i < nv; i++) {
        int32_t x = ord[i], j = i;
        while (j > 0 && (l[ord[j - 1]] < l[x] || (l[ord[j - 1]] == l[x] && ord[j - 1] > x))) {
            ord[j] = ord[j - 1];
            j--;
        }
        ord[j] = x;
    }
    int32_t n = c->top_k > 0 && c->top_k < nv ? c->top_k : nv;
    double total = 0;
    for (int32_t i = 0; i < nv; i++)
        p[i] = 0;
    for (int32_t i = 0; i < n; i++)
        total += (p[ord[i]] = exp(l[ord[i]] - l[ord[0]]));
    if (c->top_p < 1) {
        double acc = 0;
        int32_t k = 0;
        while (k < n && acc < c->top_p * total)
            acc += p[ord[k++]];
        for (int32_t i = k; i < n; i++)
            p[ord[i]] = 0;
        n = k;
    }
    if (c->min_p > 0)
        for (int32_t i = 0; i < n; i++)
            if (p[ord[i]] < c->min_p)
                p[ord[i]] = 0;
    total = 0;
    for (int32_t i = 0; i < nv; i++)
        total += p[i];
    for (int32_t i = 0; i < nv; i++)
        p[i] /= total;
    free(l);
    free(ord);
}

/* Pearson's statistic over the bins with expected count > 0 (bins under 5 pooled), and
 * whether it passes at significance 1e-4 (Wilson-Hilferty quantile). A count in a bin of
 * probability 0 fails outright. */
static int chi2_ok(const int64_t *count, const double *p, int32_t nv, int64_t n, double *stat)
{
    double x2 = 0, pool_e = 0, pool_o = 0;
    int df = -1;
    for (int32_t i = 0; i < nv; i++) {
        double e = p[i] * (double)n;
        if (p[i] == 0) {
            if (count[i])
                return *stat = INFINITY, 0;
            continue;
        }
        if (e < 5) {
            pool_e += e;
            pool_o += (double)count[i];
            continue;
        }
        x2 += ((double)count[i] - e) * ((double)count[i] - e) / e;
        df++;
    }
    if (pool_e > 0) {
        x2 += (pool_o - pool_e) * (pool_o - pool_e) / pool_e;
        df++;
    }
    if (df < 1)
        df = 1;
    double z = 3.719; /* the 1 - 1e-4 normal quantile */
    double k = df, h = 2.0 / (9.0 * k);
    double crit = k * pow(1 - h + z * sqrt(h), 3);
    *stat = x2;
    printf("  chi2 %.1f, df %d, critical %.1f\n", x2, df, crit);
    return x2 <= crit;
}

/* n seeded steps from the same history; the first two tokens of each. Returns whether both
 * chi-square tests (the first token against p(.|hist), the second, given the commonest
 * first, against p(.|hist, first)) pass. */
static int sample_test(herd_model *m, herd_model *draft, const int32_t *hist, int32_t nh,
                       const struct cfg *cf, int wrong, int64_t n, double *accept_rate)
{
    int32_t nv = herd_model_get_info(m)->n_vocab;
    herd_context *c = ctx_for(m, 256);
    herd_spec_params p = herd_spec_default_params();
    p.draft_max = 4;
    p.draft_min = 4;
    p.lookup_min = 1;
    herd_spec *spec = NULL;
    CHECK(herd_spec_new(c, draft, &p, &spec) == HERD_OK);
    spec_test_wrong_residual(spec, wrong);
    herd_sampler_params sp = herd_sampler_default_params();
    sp.temperature = cf->temp;
    sp.top_k = cf->top_k;
    sp.top_p = cf->top_p;
    sp.min_p = cf->min_p;
    int64_t *c1 = calloc((size_t)nv, sizeof *c1), *c2 = calloc((size_t)nv * nv, sizeof *c2);
    float *lg = malloc((size_t)nv * sizeof *lg);
    double *p1 = malloc((size_t)nv * sizeof *p1), *p2 = malloc((size_t)nv * sizeof *p2);
    feed(c, hist, nh - 1, NULL, nv);
    for (int64_t i = 0; i < n; i++) {
        herd_sampler *smp = NULL;
        sp.seed = (uint64_t)i;
        herd_sampler_new(&sp, nv, &smp);
        herd_spec_seq_reset(spec, 0, (uint64_t)i * 7919u + 1);
        int32_t out[3], n_out = 0;
        herd_status s = herd_spec_step(spec, 0, smp, hist, nh, 3, out, &n_out);
        herd_sampler_free(smp);
        if (s != HERD_OK || n_out < 1) {
            CHECK_MSG(0, "step: %s", herd_last_error());
            break;
        }
        c1[out[0]]++;
        if (n_out >= 2)
            c2[(size_t)out[0] * nv + out[1]]++;
        herd_seq_truncate(c, 0, nh - 1);
    }
    herd_spec_stats st = herd_spec_get_stats(spec);
    *accept_rate = st.n_drafted ? (double)st.n_accepted / (double)st.n_drafted : 0;
    printf("  %s draft, %s scheme: acceptance %.3f\n", draft ? "model" : "lookup",
           wrong ? "WRONG" : "right", *accept_rate);
    /* first token */
    herd_context *f = ctx_for(m, 256);
    feed(f, hist, nh, lg, nv);
    expected(lg, nv, cf, p1);
    double x;
    int ok = chi2_ok(c1, p1, nv, n, &x);
    /* second token given the commonest first among steps that produced two */
    int32_t best = 0;
    int64_t best_n = -1;
    for (int32_t a = 0; a < nv; a++) {
        int64_t k = 0;
        for (int32_t b = 0; b < nv; b++)
            k += c2[(size_t)a * nv + b];
        if (k > best_n) {
            best_n = k;
            best = a;
        }
    }
    if (best_n >= 2000) {
        feed(f, &best, 1, lg, nv);
        expected(lg, nv, cf, p2);
        ok = chi2_ok(c2 + (size_t)best * nv, p2, nv, best_n, &x) && ok;
    }
    herd_context_free(f);
    free(c1);
    free(c2);
    free(lg);
    free(p1);
    free(p2);
    herd_spec_free(spec);
    herd_context_free(c);
    return ok;
}

static void test_sampling(void)
{
    /* The draft: the target's own weights in Q4_0 (herd_quantize), close to it but not
     * equal, so drafts are kept often and rejected often; an unrelated random model would
     * share almost none of the target's top tokens. */
    herd_model *m = load(0, "gqa2_untied_f32", 1), *d = NULL;
    char q4[1100];
    const char *work = getenv("HERD_TEST_WORK");
    if (work && *work)
        mkdir(work, 0755);
    snprintf(q4, sizeof q4, "%s/spec_draft_q4_0.gguf", work && *work ? work : ".");
    herd_quantize_params qp = {.ftype = HERD_FTYPE_Q4_0, .n_threads = 1};
    herd_status qs = herd_quantize(model_path(1, "gqa2_untied_f32"), q4, &qp);
    CHECK_MSG(qs == HERD_OK, "quantize: %s", herd_last_error());
    herd_model_params mp1 = {.n_threads = 1};
    CHECK(herd_model_load(q4, &mp1, &d) == HERD_OK);
    static const struct cfg cfgs[] = {{1.5f, 1.0f, 0.0f, 12}, {1.0f, 0.9f, 0.02f, 0}};
    int32_t hist[] = {1, 2, 3, 4, 5};
    int32_t nv = herd_model_get_info(m)->n_vocab;
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        double acc;
        printf("config %zu\n", i);
        /* For lookup: the history ends with token 1 seen before, followed by v, v + 1: v is
         * proposed. Pick the v the target finds likeliest there, so drafts are often kept. */
        int32_t lhist[] = {1, 0, 0, 4, 5, 6, 1};
        float *lg = malloc((size_t)nv * sizeof *lg);
        double *pv = malloc((size_t)nv * sizeof *pv), best_p = -1;
        int32_t best_v = 0;
        herd_context *c = ctx_for(m, 64);
        for (int32_t v = 0; v < nv; v++) {
            lhist[1] = v;
            lhist[2] = (v + 1) % nv;
            herd_seq_truncate(c, 0, 0);
            feed(c, lhist, 7, lg, nv);
            expected(lg, nv, &cfgs[i], pv);
            if (pv[v] > best_p) {
                best_p = pv[v];
                best_v = v;
            }
        }
        herd_context_free(c);
        free(lg);
        free(pv);
        lhist[1] = best_v;
        lhist[2] = (best_v + 1) % nv;
        printf("  lookup proposes %d (p %.3f)\n", best_v, best_p);
        CHECK_MSG(sample_test(m, d, hist, 5, &cfgs[i], 0, 30000, &acc), "model draft, cfg %zu",
                  i);
        CHECK_MSG(acc > 0.05 && acc < 0.95, "acceptance %.3f: both paths must be exercised", acc);
        CHECK_MSG(!sample_test(m, d, hist, 5, &cfgs[i], 1, 30000, &acc),
                  "the wrong scheme passed, cfg %zu", i);
        CHECK_MSG(sample_test(m, NULL, lhist, 7, &cfgs[i], 0, 30000, &acc), "lookup, cfg %zu",
                  i);
        CHECK_MSG(!sample_test(m, NULL, lhist, 7, &cfgs[i], 1, 30000, &acc),
                  "the wrong scheme passed (lookup), cfg %zu", i);
    }
    herd_model_free(d);
    herd_model_free(m);
}

/* ---------------------------------------------------------------- refusals */

static void test_vocab_mismatch(void)
{
    herd_model *m = load(0, "gqa2_untied_f32", 1), *d = NULL;
    if (herd_model_load(model_path(1, "realvocab_tied_bf16"), NULL, &d) != HERD_OK) {
        printf("realvocab model missing (no Llama 3 tokenizer): mismatch test skipped\n");
        herd_model_free(m);
        return;
    }
    herd_context *c = ctx_for(m, 64);
    herd_spec *spec = NULL;
    herd_status s = herd_spec_new(c, d, NULL, &spec);
    CHECK(s == HERD_ERR_INVALID && spec == NULL);
    CHECK_MSG(strstr(herd_last_error(), "tokenizer") != NULL, "message: %s", herd_last_error());
    printf("  refused: %s\n", herd_last_error());
    herd_spec_params p = herd_spec_default_params();
    p.draft_max = 40;
    CHECK(herd_spec_new(c, NULL, &p, &spec) == HERD_ERR_INVALID);
    herd_context_free(c);
    herd_model_free(d);
    herd_model_free(m);
}

/* ---------------------------------------------------------------- two models */

static int n_threads_now(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Logits of steps: the prompt, then tokens one by one; rows into out (n_steps, nv). */
static void run_steps(herd_context *c, int32_t nv, const int32_t *toks, int n, float *out)
{
    CHECK(feed(c, toks, 4, out, nv) == HERD_OK);
    for (int i = 4; i < n; i++)
        CHECK(feed(c, &toks[i], 1, out + (size_t)(i - 3) * nv, nv) == HERD_OK);
}

static void test_two_models(void)
{
    const int n = 12;
    int32_t ta[12] = {1, 2, 3, 4, 10, 20, 30, 40, 50, 60, 70, 80};
    int32_t tb[12] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 100, 200};
    herd_model *a = load(0, "gqa2_untied_f32", 2);
    int32_t nv = herd_model_get_info(a)->n_vocab;
    size_t rows = (size_t)(n - 3) * nv;
    float *ra = malloc(rows * sizeof(float)), *rb = malloc(rows * sizeof(float));
    float *xa = malloc(rows * sizeof(float)), *xb = malloc(rows * sizeof(float));
    herd_context *ca = ctx_for(a, 64);
    run_steps(ca, nv, ta, n, ra); /* a alone */
    herd_context_free(ca);
    herd_model_free(a);
    herd_model *b = load(1, "gqa4_tied_bf16", 2);
    herd_context *cb = ctx_for(b, 64);
    run_steps(cb, nv, tb, n, rb); /* b alone */
    herd_context_free(cb);
    herd_model_free(b);

    a = load(0, "gqa2_untied_f32", 2);
    ca = ctx_for(a, 64);
    int threads_one = n_threads_now();
    b = load(1, "gqa4_tied_bf16", 2);
    cb = ctx_for(b, 64);
    int threads_two = n_threads_now();
    printf("  threads: %d with one model's context, %d with two\n", threads_one, threads_two);
    CHECK_MSG(threads_two == threads_one, "the second context started %d threads",
              threads_two - threads_one);
    /* interleaved: a's prompt, b's prompt, then one token of each in turn */
    CHECK(feed(ca, ta, 4, xa, nv) == HERD_OK);
    CHECK(feed(cb, tb, 4, xb, nv) == HERD_OK);
    for (int i = 4; i < n; i++) {
        CHECK(feed(ca, &ta[i], 1, xa + (size_t)(i - 3) * nv, nv) == HERD_OK);
        CHECK(feed(cb, &tb[i], 1, xb + (size_t)(i - 3) * nv, nv) == HERD_OK);
    }
    CHECK_MSG(memcmp(ra, xa, rows * sizeof(float)) == 0, "model a interleaved differs");
    CHECK_MSG(memcmp(rb, xb, rows * sizeof(float)) == 0, "model b interleaved differs");
    /* the same file twice: two handles, each its own context, same logits */
    herd_model *a2 = load(2, "gqa2_untied_f32", 2);
    herd_context *ca2 = ctx_for(a2, 64);
    run_steps(ca2, nv, ta, n, xa);
    CHECK_MSG(memcmp(ra, xa, rows * sizeof(float)) == 0, "second copy of a differs");
    herd_context_free(ca2);
    herd_model_free(a2);
    herd_context_free(cb);
    herd_model_free(b);
    herd_context_free(ca);
    herd_model_free(a);
    free(ra);
    free(rb);
    free(xa);
    free(xb);
}

int main(int argc, char **argv)
{
    models = getenv("HERD_TEST_MODELS");
    if (!models || !*models) {
        printf("HERD_TEST_MODELS not set: skipped\n");
        return 77;
    }
    const char *only = argc > 1 ? argv[1] : "";
    if (!*only || strcmp(only, "two") == 0)
        test_two_models();
    if (!*only || strcmp(only, "greedy") == 0)
        test_greedy();
    if (!*only || strcmp(only, "rollback") == 0)
        test_rollback();
    if (!*only || strcmp(only, "vocab") == 0)
        test_vocab_mismatch();
    if (!*only || strcmp(only, "sampling") == 0)
        test_sampling();
    return check_done();
}
