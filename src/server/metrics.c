/*
 * metrics.c - the server's counters, gauges and histograms, exposed at /metrics in the
 * Prometheus text exposition format (version 0.0.4): "# HELP", "# TYPE", then one
 * "name{labels} value" line per series; histograms as cumulative _bucket{le=...} lines
 * plus _sum and _count. One mutex guards everything: updates are a few per token, far
 * below what would make the lock matter next to a forward pass.
 */
#include "server.h"

#include <stdio.h> /* snprintf */

/* Seconds; TTFT spans queueing + prefill, per-token latency one decode step. */
static const double ttft_bounds[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
static const double tok_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
#define N_TTFT (sizeof ttft_bounds / sizeof ttft_bounds[0])
#define N_TOK (sizeof tok_bounds / sizeof tok_bounds[0])
#define MAX_SERIES 64 /* distinct (endpoint, status) pairs; more fold into "other" */

/* The verdicts of the Llama Guard shield (guard.c), one series each per check. */
static const char *const guard_verdicts[] = {"safe", "unsafe", "unparseable", "error", "none"};
#define N_VERDICTS (sizeof guard_verdicts / sizeof guard_verdicts[0])

struct hist {
    uint64_t bucket[16]; /* per bound, not cumulative; the last is +Inf */
    double sum;
    uint64_t count;
};

struct series {
    char endpoint[40];
    int http;
    uint64_t n;
};

struct srv_metrics {
    pthread_mutex_t mu;
    struct series req[MAX_SERIES];
    int n_req;
    uint64_t prompt_tokens, generated_tokens, cached_tokens, cancelled;
    int64_t queue_depth, active_slots;
    struct hist ttft, tok;
    uint64_t guard[2][N_VERDICTS]; /* guard verdicts: [input, output][guard_verdicts] */
};

herd_status srv_metrics_new(struct srv_metrics **out)
{
    struct srv_metrics *m = herd_calloc(1, sizeof *m);
    *out = NULL;
    if (!m)
        return herd_fail(HERD_ERR_NOMEM, "cannot allocate server metrics");
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    return HERD_OK;
}

void srv_metrics_free(struct srv_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    herd_free(m);
}

void srv_metrics_request(struct srv_metrics *m, const char *endpoint, int http)
{
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < m->n_req && (m->req[i].http != http || strcmp(m->req[i].endpoint, endpoint)))
        i++;
    if (i == m->n_req) {
        if (m->n_req == MAX_SERIES) {
            i = MAX_SERIES - 1;
            snprintf(m->req[i].endpoint, sizeof m->req[i].endpoint, "other");
            m->req[i].http = 0;
        } else {
            snprintf(m->req[i].endpoint, sizeof m->req[i].endpoint, "%s", endpoint);
            m->req[i].http = http;
            m->n_req++;
        }
    }
    m->req[i].n++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_tokens(struct srv_metrics *m, int64_t prompt, int64_t generated, int64_t cached)
{
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += (uint64_t)prompt;
    m->generated_tokens += (uint64_t)generated;
    m->cached_tokens += (uint64_t)cached;
    pthread_mutex_unlock(&m->mu);
}

static void observe(struct hist *h, const double *bounds, size_t n, double v)
{
    size_t i = 0;
    while (i < n && v > bounds[i])
        i++;
    h->bucket[i]++;
    h->sum += v;
    h->count++;
}

void srv_metrics_ttft(struct srv_metrics *m, double s)
{
    pthread_mutex_lock(&m->mu);
    observe(&m->ttft, ttft_bounds, N_TTFT, s);
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_token_latency(struct srv_metrics *m, double s)
{
    pthread_mutex_lock(&m->mu);
    observe(&m->tok, tok_bounds, N_TOK, s);
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_gauges(struct srv_metrics *m, int64_t queue_depth, int64_t active_slots)
{
    pthread_mutex_lock(&m->mu);
    m->queue_depth = queue_depth;
    m->active_slots = active_slots;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_cancelled(struct srv_metrics *m)
{
    pthread_mutex_lock(&m->mu);
    m->cancelled++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_guard(struct srv_metrics *m, const char *check, const char *verdict)
{
    size_t v = 0;
    while (v < N_VERDICTS && strcmp(guard_verdicts[v], verdict))
        v++;
    if (v == N_VERDICTS)
        return;
    pthread_mutex_lock(&m->mu);
    m->guard[strcmp(check, "input") ? 1 : 0][v]++;
    pthread_mutex_unlock(&m->mu);
}

static void put_hist(struct herd_buf *b, const char *name, const char *help,
                     const struct hist *h, const double *bounds, size_t n)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (size_t i = 0; i < n; i++) {
        cum += h->bucket[i];
        buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
    }
    cum += h->bucket[n];
    buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    buf_printf(b, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name,
               (unsigned long long)h->count);
}

static void put_counter(struct herd_buf *b, const char *name, const char *help, uint64_t v)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
               (unsigned long long)v);
}

static void put_gauge(struct herd_buf *b, const char *name, const char *help, int64_t v)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name, name,
               (long long)v);
}

char *srv_metrics_text(struct srv_metrics *m)
{
    struct herd_buf b;
    buf_init(&b, 0);
    pthread_mutex_lock(&m->mu);
    buf_puts(&b, "# HELP herd_requests_total HTTP requests by endpoint and status code.\n"
                 "# TYPE herd_requests_total counter\n");
    for (int i = 0; i < m->n_req; i++)
        buf_printf(&b, "herd_requests_total{endpoint=\"%s\",code=\"%d\"} %llu\n",
                   m->req[i].endpoint, m->req[i].http, (unsigned long long)m->req[i].n);
    put_counter(&b, "herd_prompt_tokens_total", "Prompt tokens of finished requests.",
                m->prompt_tokens);
    put_counter(&b, "herd_generated_tokens_total", "Tokens generated.", m->generated_tokens);
    put_counter(&b, "herd_prompt_cached_tokens_total",
                "Prompt tokens served from the prefix cache.", m->cached_tokens);
    put_counter(&b, "herd_requests_cancelled_total",
                "Requests whose client went away before the end.", m->cancelled);
    put_gauge(&b, "herd_queue_depth", "Requests waiting for a slot.", m->queue_depth);
    put_gauge(&b, "herd_active_slots", "Slots serving a request.", m->active_slots);
    put_hist(&b, "herd_time_to_first_token_seconds",
             "From request arrival to the first generated token.", &m->ttft, ttft_bounds,
             N_TTFT);
    put_hist(&b, "herd_time_per_output_token_seconds", "Time between generated tokens.",
             &m->tok, tok_bounds, N_TOK);
    buf_puts(&b, "# HELP herd_guard_verdicts_total Llama Guard verdicts by check (input, "
                 "output) and verdict.\n# TYPE herd_guard_verdicts_total counter\n");
    for (int c = 0; c < 2; c++)
        for (size_t v = 0; v < N_VERDICTS; v++)
            buf_printf(&b, "herd_guard_verdicts_total{check=\"%s\",verdict=\"%s\"} %llu\n",
                       c ? "output" : "input", guard_verdicts[v],
                       (unsigned long long)m->guard[c][v]);
    pthread_mutex_unlock(&m->mu);
    if (b.err != HERD_OK) {
        buf_free(&b);
        return NULL;
    }
    return buf_take(&b, NULL);
}
