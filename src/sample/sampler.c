/*
 * sampler.c - the sampler chain of herd.h: logit bias, penalties, greedy or temperature,
 * top-k, softmax, top-p, min-p, then one seeded draw.
 *
 * Definitions (the tests check each against a direct implementation):
 *  - repetition penalty r (CTRL, Keskar et al. 2019, as llama.cpp and HF apply it): a token
 *    seen in the window has logit l -> l/r when l > 0, else l*r;
 *  - presence / frequency (OpenAI): l -= presence + count * frequency for a seen token;
 *  - order follows Meta's reference generation and HF: temperature scales the logits
 *    before top-k/top-p/min-p look at them, so top_p 0.9 means 90% of the tempered mass;
 *  - ties are broken by the lower token id, so the result does not depend on sort
 *    stability or thread count.
 * Scratch for n_vocab candidates is allocated once in herd_sampler_new; a draw never
 * allocates. The generator is base/rng.c (xoshiro256** seeded through splitmix64).
 */
#include "base/base.h"
#include "sample/sample.h"

#include <math.h>   /* expf, INFINITY */

struct cand {
    float logit;
    float p; /* exp(logit - max) once softmax has run */
    int32_t id;
};

struct herd_sampler {
    herd_sampler_params p;
    herd_logit_bias *bias; /* n_bias entries, owned copy */
    size_t n_bias;
    int32_t n_vocab;
    struct cand *cand;  /* (n_vocab) */
    int32_t *counts;    /* (n_vocab) occurrences of each id in the penalty window */
    int32_t *ring;      /* (penalty_last_n) window of accepted ids, when the window is finite */
    size_t ring_len, ring_head;
    uint64_t rng[4];
};

/* Uniform in [0, 1) with 53 random bits. */
static double uniform(herd_sampler *s)
{
    return herd_rng_uniform(s->rng);
}

/* ---------------------------------------------------------------- lifetime */

herd_sampler_params herd_sampler_default_params(void)
{
    herd_sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 0.6f; /* Llama 3.x Instruct generation_config.json */
    p.top_p = 0.9f;
    p.repeat_penalty = 1.0f;
    p.penalty_last_n = 64; /* long enough to catch loops, short enough to allow topic words */
    return p;
}

void herd_sampler_params_from_model(herd_sampler_params *p, const herd_model_info *info)
{
    if (!p || !info)
        return;
    if (info->default_temperature >= 0)
        p->temperature = info->default_temperature;
    if (info->default_top_p >= 0)
        p->top_p = info->default_top_p;
    if (info->default_top_k >= 0) /* GGUF general.sampling.* */
        p->top_k = info->default_top_k;
    if (info->default_min_p >= 0)
        p->min_p = info->default_min_p;
}

void herd_sampler_reset(herd_sampler *s)
{
    if (!s)
        return;
    memset(s->counts, 0, (size_t)s->n_vocab * sizeof *s->counts);
    s->ring_len = 0;
    s->ring_head = 0;
    herd_rng_seed(s->rng, s->p.seed);
}

void herd_sampler_free(herd_sampler *s)
{
    if (!s)
        return;
    herd_free(s->bias);
    herd_free(s->cand);
    herd_free(s->counts);
    herd_free(s->ring);
    herd_free(s);
}

herd_status herd_sampler_new(const herd_sampler_params *p, int32_t n_vocab, herd_sampler **out)
{
    *out = NULL;
    if (!p || n_vocab <= 0)
        return herd_fail(HERD_ERR_INVALID, "sampler: need params and n_vocab > 0 (got %d)",
                         (int)n_vocab);
    if (!(p->temperature >= 0) || !(p->top_p >= 0 && p->top_p <= 1) ||
        !(p->min_p >= 0 && p->min_p <= 1) || p->top_k < 0 || !(p->repeat_penalty > 0) ||
        p->penalty_last_n < -1)
        return herd_fail(HERD_ERR_INVALID,
                         "sampler: bad parameters (temperature %g >= 0, top_p %g and min_p %g "
                         "in [0,1], top_k %d >= 0, repeat_penalty %g > 0, penalty_last_n %d >= -1)",
                         (double)p->temperature, (double)p->top_p, (double)p->min_p,
                         (int)p->top_k, (double)p->repeat_penalty, (int)p->penalty_last_n);
    for (size_t i = 0; i < p->n_logit_bias; i++)
        if (p->logit_bias[i].token < 0 || p->logit_bias[i].token >= n_vocab)
            return herd_fail(HERD_ERR_INVALID, "sampler: logit_bias token %d outside [0, %d)",
                             (int)p->logit_bias[i].token, (int)n_vocab);
    herd_sampler *s = herd_calloc(1, sizeof *s);
    if (!s)
        return herd_fail(HERD_ERR_NOMEM, "sampler: out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->cand = herd_malloc((size_t)n_vocab * sizeof *s->cand);
    s->counts = herd_calloc((size_t)n_vocab, sizeof *s->counts);
    if (p->penalty_last_n > 0)
        s->ring = herd_malloc((size_t)p->penalty_last_n * sizeof *s->ring);
    if (p->n_logit_bias) {
        s->bias = herd_malloc(p->n_logit_bias * sizeof *s->bias);
        if (s->bias)
            memcpy(s->bias, p->logit_bias, p->n_logit_bias * sizeof *s->bias);
        s->n_bias = p->n_logit_bias;
    }
    s->p.logit_bias = NULL;
    if (!s->cand || !s->counts || (p->penalty_last_n > 0 && !s->ring) ||
        (p->n_logit_bias && !s->bias)) {
        herd_sampler_free(s);
        return herd_fail(HERD_ERR_NOMEM, "sampler: out of memory for %d candidates",
                         (int)n_vocab);
    }
    herd_sampler_reset(s);
    *out = s;
    return HERD_OK;
}

void herd_sampler_accept(herd_sampler *s, int32_t token)
{
    if (!s || token < 0 || token >= s->n_vocab || s->p.penalty_last_n == 0)
        return;
    if (s->p.penalty_last_n < 0) {
        s->counts[token]++;
        return;
    }
    size_t cap = (size_t)s->p.penalty_last_n;
    if (s->ring_len == cap) {
        s->counts[s->ring[s->ring_head]]--;
        s->ring[s->ring_head] = token;
        s->ring_head = (s->ring_head + 1) % cap;
    } else {
        s->ring[(s->ring_head + s->ring_len) % cap] = token;
        s->ring_len++;
    }
    s->counts[token]++;
}

/* ---------------------------------------------------------------- the chain */

/* Higher logit first, then lower id: the one total order every step uses. */
static int cand_before(const struct cand *a, const struct cand *b)
{
    if (a->logit != b->logit)
        return a->logit > b->logit;
    return a->id < b->id;
}

static void swap_cand(struct cand *a, struct cand *b)
{
    struct cand t = *a;
    *a = *b;
    *b = t;
}

/* One quickselect step on c[lo..hi): a median-of-three pivot is moved to its final place,
 * which is returned; the candidates before it (cand_before) end in c[lo..place), and *mass
 * is the sum of their p. */
static size_t partition_step(struct cand *c, size_t lo, size_t hi, double *mass)
{
    size_t mid = lo + (hi - lo) / 2;
    if (cand_before(&c[hi - 1], &c[lo]))
        swap_cand(&c[hi - 1], &c[lo]);
    if (cand_before(&c[mid], &c[lo]))
        swap_cand(&c[mid], &c[lo]);
    if (cand_before(&c[hi - 1], &c[mid]))
        swap_cand(&c[hi - 1], &c[mid]);
    struct cand pivot = c[mid];
    swap_cand(&c[mid], &c[hi - 1]);
    size_t store = lo;
    double sum = 0;
    for (size_t i = lo; i < hi - 1; i++) {
        if (cand_before(&c[i], &pivot)) {
            sum += c[i].p;
            swap_cand(&c[i], &c[store++]);
        }
    }
    swap_cand(&c[store], &c[hi - 1]);
    *mass = sum;
    return store;
}

/* Moves the k first candidates in cand_before order to c[0..k), in no particular order. */
static void select_top(struct cand *c, size_t n, size_t k)
{
    size_t lo = 0, hi = n;
    double unused;
    while (hi - lo > 1) {
        size_t store = partition_step(c, lo, hi, &unused);
        if (store == k || store + 1 == k)
            return;
        if (store > k)
            hi = store;
        else
            lo = store + 1;
    }
}

/* Moves the candidates with p >= t to the front; returns how many. */
static size_t partition_p(struct cand *c, size_t n, float t, double *mass)
{
    size_t m = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i].p >= t) {
            sum += c[i].p;
            swap_cand(&c[i], &c[m++]);
        }
    }
    *mass = sum;
    return m;
}

/* Top-p on n candidates with unnormalised p summing to total: moves the nucleus (the
 * shortest prefix, in cand_before order, whose mass reaches top_p * total) to c[0..k) and
 * returns k. A quickselect guided by mass instead of rank: each partition step keeps the
 * side the boundary lies in, so no sort is needed (expected O(n), which matters when a
 * flat distribution puts most of a 128k vocabulary in the nucleus). Invariant: c[0..lo)
 * precede c[lo..hi), which precede c[hi..n); mass(c[0..lo)) = acc < want <= mass(c[0..hi)). */
static size_t nucleus(struct cand *c, size_t n, double total, double top_p)
{
    double want = top_p * total, acc = 0;
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        double mass;
        size_t store = partition_step(c, lo, hi, &mass);
        if (acc + mass >= want) {
            hi = store;
        } else if (acc + mass + c[store].p >= want) {
            return store + 1;
        } else {
            acc += mass + c[store].p;
            lo = store + 1;
        }
    }
    return hi > lo ? lo + 1 : (lo > 0 ? lo : 1);
}

/* The chain up to the draw: fills s->cand and returns in *n the candidates kept (c[0..n))
 * with unnormalised p summing to *total, or with temperature <= 0 only the argmax in
 * *greedy (*n = 0). penalise_ok false skips the penalties (a draft's distribution,
 * spec/spec.c). */
static herd_status chain(herd_sampler *s, const float *logits, int32_t n_vocab,
                         bool penalise_ok, size_t *n_kept, double *total_out,
                         int32_t *greedy)
{
    if (!s || !logits || n_vocab != s->n_vocab)
        return herd_fail(HERD_ERR_INVALID, "sampler: expected %d logits, got %d",
                         s ? (int)s->n_vocab : -1, (int)n_vocab);
    const herd_sampler_params *p = &s->p;
    struct cand *c = s->cand;
    size_t n = (size_t)n_vocab;
    *n_kept = 0;
    *greedy = -1;
    for (size_t i = 0; i < n; i++) {
        c[i].logit = logits[i];
        c[i].id = (int32_t)i;
    }
    for (size_t i = 0; i < s->n_bias; i++)
        c[s->bias[i].token].logit += s->bias[i].bias;
    bool penalise = penalise_ok && (p->repeat_penalty != 1.0f || p->presence_penalty != 0.0f ||
                                    p->frequency_penalty != 0.0f);
    for (size_t i = 0; penalise && i < n; i++) {
        int32_t cnt = s->counts[i];
        if (cnt == 0)
            continue;
        float l = c[i].logit;
        l = l > 0 ? l / p->repeat_penalty : l * p->repeat_penalty;
        c[i].logit = l - p->presence_penalty - (float)cnt * p->frequency_penalty;
    }
    if (p->temperature <= 0.0f) {
        size_t best = 0;
        for (size_t i = 1; i < n; i++)
            if (c[i].logit > c[best].logit)
                best = i;
        *greedy = c[best].id;
        return HERD_OK;
    }
    for (size_t i = 0; i < n; i++)
        c[i].logit /= p->temperature;
    if (p->top_k > 0 && (size_t)p->top_k < n) {
        select_top(c, n, (size_t)p->top_k);
        n = (size_t)p->top_k;
    }
    float max = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (c[i].logit > max)
            max = c[i].logit;
    if (!(max > -INFINITY))
        return herd_fail(HERD_ERR_INVALID, "sampler: every token is banned or not finite");
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        c[i].p = expf(c[i].logit - max);
        total += c[i].p;
    }
    if (p->top_p < 1.0f) {
        n = nucleus(c, n, total, p->top_p);
        total = 0;
        for (size_t i = 0; i < n; i++)
            total += c[i].p;
    }
    if (p->min_p > 0.0f) {
        /* The most probable token has p = exp(0) = 1 before normalising. */
        double mass;
        n = partition_p(c, n, p->min_p, &mass);
        total = mass;
    }
    *n_kept = n;
    *total_out = total;
    return HERD_OK;
}

herd_status herd_sampler_sample(herd_sampler *s, const float *logits, int32_t n_vocab,
                                int32_t *token)
{
    size_t n;
    double total = 0;
    int32_t greedy;
    if (!token)
        return herd_fail(HERD_ERR_INVALID, "sampler: no place for the token");
    herd_status st = chain(s, logits, n_vocab, true, &n, &total, &greedy);
    if (st != HERD_OK)
        return st;
    if (greedy >= 0) {
        *token = greedy;
        return HERD_OK;
    }
    const struct cand *c = s->cand;
    double u = uniform(s) * total, cum = 0;
    for (size_t i = 0; i < n; i++) {
        cum += c[i].p;
        if (u < cum) {
            *token = c[i].id;
            return HERD_OK;
        }
    }
    *token = c[n - 1].id; /* u rounded up to total */
    return HERD_OK;
}

herd_status sampler_dist(herd_sampler *s, const float *logits, int32_t n_vocab, bool penalise,
                         float *probs)
{
    size_t n;
    double total = 0;
    int32_t greedy;
    herd_status st = chain(s, logits, n_vocab, penalise, &n, &total, &greedy);
    if (st != HERD_OK)
        return st;
    memset(probs, 0, (size_t)n_vocab * sizeof *probs);
    if (greedy >= 0) {
        probs[greedy] = 1.0f;
        return HERD_OK;
    }
    for (size_t i = 0; i < n; i++)
        probs[s->cand[i].id] = (float)(s->cand[i].p / total);
    return HERD_OK;
}

const herd_sampler_params *sampler_params(const herd_sampler *s)
{
    return &s->p;
}
