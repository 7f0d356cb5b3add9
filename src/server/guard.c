/*
 * guard.c - the server's Llama Guard 3 shield (herd serve --guard; docs/guard.md).
 *
 * Input: before a chat request is queued, its conversation (system and tool messages left
 * out, roles joined so they alternate: herd_guard_options.normalize) is classified for its
 * last user message; "unsafe" answers at once with finish_reason "content_filter" and no
 * generation. Output: the answer is classified as the Agent's last message; a plain
 * response that is flagged loses its content, a stream holds its text back and releases it
 * a sentence at a time once the text so far is checked (and checks the end), so a flagged
 * answer stops before the flagged sentence reaches the client.
 *
 * Policy: only "unsafe" is flagged; an unparseable answer passes (and is counted); a check
 * that cannot run (the conversation does not fit the guard's context, an allocation
 * failure) is flagged with verdict "error": a shield fails closed. A conversation with no
 * user text, or an answer with no text, has nothing to check (verdict "none").
 *
 * Concurrency: the checks run on the HTTP threads, not the scheduler's: the guard model has
 * its own context, and one mutex lets one check at a time use it. The scheduler thread is
 * never blocked by a check (the two models' forward passes take turns on the process's
 * shared worker pool); a request simply waits for its check before it is queued, and a
 * stream's next sentence waits for the check of the text before it.
 */
#include "server.h"

#include <stdio.h> /* snprintf */

/* A stream releases at a sentence end (". ", "! ", "? ", newline); text that runs this
 * long without one is checked anyway, so a missing full stop cannot hold a stream. */
#define GUARD_STREAM_MAX_HOLD 512

struct srv_guard {
    const herd_model *model;
    herd_context *ctx;
    pthread_mutex_t mu; /* one check at a time on ctx */
    herd_guard_options opt;
    char *categories;   /* owned copy of the option */
    int on;             /* SRV_GUARD_INPUT | SRV_GUARD_OUTPUT */
};

herd_status srv_guard_new(const herd_model *m, const char *categories, int on, int32_t n_ctx,
                          int32_t n_threads, struct srv_guard **out)
{
    *out = NULL;
    struct srv_guard *g = herd_calloc(1, sizeof *g);
    if (!g)
        return herd_fail(HERD_ERR_NOMEM, "guard: out of memory");
    const herd_model_info *info = herd_model_get_info(m);
    g->model = m;
    g->on = on ? on : SRV_GUARD_INPUT | SRV_GUARD_OUTPUT;
    g->opt = herd_guard_default_options();
    g->opt.format = herd_guard_format_for(info);
    g->opt.normalize = true;
    if (categories && !(g->categories = herd_strdup(categories))) {
        herd_free(g);
        return herd_fail(HERD_ERR_NOMEM, "guard: out of memory");
    }
    g->opt.categories = g->categories;
    herd_context_params cp = herd_context_default_params();
    /* room for a whole conversation of the serving context plus the guard's instructions
     * (about 250 tokens) and its answer */
    int64_t want = (int64_t)n_ctx + 512;
    cp.n_ctx = info->max_seq_len > 0 && info->max_seq_len < want ? info->max_seq_len
                                                                 : (int32_t)want;
    cp.n_threads = n_threads;
    herd_status s = herd_context_new(m, &cp, &g->ctx);
    if (s != HERD_OK) {
        herd_free(g->categories);
        herd_free(g);
        return herd_fail_prefix(s, "guard model context: ");
    }
    pthread_mutex_init(&g->mu, NULL);
    *out = g;
    return HERD_OK;
}

void srv_guard_free(struct srv_guard *g)
{
    if (!g)
        return;
    herd_context_free(g->ctx);
    pthread_mutex_destroy(&g->mu);
    herd_free(g->categories);
    herd_free(g);
}

bool srv_guard_on(const struct srv_guard *g, int which)
{
    return g && (g->on & which);
}

/* {"messages": [...the request's..., {"role": "assistant", "content": answer}]} */
static char *conversation(const struct srv_req *r, const char *answer, size_t answer_len)
{
    cJSON *o = cJSON_CreateObject();
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(r->p.body, "messages");
    cJSON *copy = msgs ? cJSON_Duplicate(msgs, true) : cJSON_CreateArray();
    if (!o || !copy) {
        cJSON_Delete(o);
        cJSON_Delete(copy);
        return NULL;
    }
    cJSON_AddItemToObject(o, "messages", copy);
    if (answer) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddItemToObject(m, "content", srv_json_text(answer, answer_len));
        cJSON_AddItemToArray(copy, m);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *out = s ? herd_strdup(s) : NULL;
    cJSON_free(s);
    return out;
}

/* The content_filter_results a flagged response carries (docs/guard.md). */
static cJSON *filter_json(const char *check, const char *verdict, const herd_guard_result *res)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddBoolToObject(f, "filtered", true);
    cJSON_AddStringToObject(f, "check", check);
    cJSON_AddStringToObject(f, "verdict", verdict);
    cJSON *cats = cJSON_AddArrayToObject(f, "categories");
    for (size_t i = 0; res && i < res->n_categories; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "code", res->categories[i].code);
        if (res->categories[i].name)
            cJSON_AddStringToObject(c, "name", res->categories[i].name);
        else
            cJSON_AddNullToObject(c, "name");
        cJSON_AddItemToArray(cats, c);
    }
    return f;
}

/* Classifies r's conversation (plus answer for the output check). True when flagged; then
 * r->filter holds the results. Notes the verdict for the access log and the metrics. */
static bool check(struct srv_guard *g, struct srv_metrics *mt, struct srv_req *r,
                  const char *answer, size_t answer_len)
{
    const char *which = answer ? "output" : "input";
    herd_guard_options o = g->opt;
    o.role = answer ? HERD_GUARD_ROLE_AGENT : HERD_GUARD_ROLE_USER;
    herd_guard_result *res = NULL;
    herd_status s = HERD_ERR_NOMEM;
    char *conv = conversation(r, answer ? answer : NULL, answer_len);
    if (conv) {
        pthread_mutex_lock(&g->mu);
        s = herd_guard_classify(g->model, g->ctx, conv, strlen(conv), &o, &res);
        pthread_mutex_unlock(&g->mu);
    }
    herd_free(conv);
    const char *verdict;
    bool flagged;
    if (s == HERD_ERR_INVALID) {
        /* no user message with text, or an answer without text: nothing to check */
        verdict = "none";
        flagged = false;
    } else if (s != HERD_OK) {
        herd_log(HERD_LOG_WARN, "guard: %s check of %s failed (flagged): %s", which, r->id,
                 herd_last_error());
        verdict = "error";
        flagged = true;
    } else {
        verdict = herd_guard_verdict_str(res->verdict);
        flagged = res->verdict == HERD_GUARD_UNSAFE;
    }
    srv_metrics_guard(mt, which, verdict);
    int n = snprintf(r->guard_note, sizeof r->guard_note, "%s:%s", which, verdict);
    for (size_t i = 0; res && i < res->n_categories && n > 0 && (size_t)n < sizeof r->guard_note;
         i++)
        n += snprintf(r->guard_note + n, sizeof r->guard_note - (size_t)n, "%s%s",
                      i ? "," : ":", res->categories[i].code);
    if (flagged) {
        cJSON_Delete(r->filter);
        r->filter = filter_json(which, verdict, res);
    }
    herd_guard_result_free(res);
    return flagged;
}

bool srv_guard_input(struct srv_guard *g, struct srv_metrics *mt, struct srv_req *r)
{
    if (!srv_guard_on(g, SRV_GUARD_INPUT) || r->p.kind != SRV_CHAT || !check(g, mt, r, NULL, 0))
        return false;
    /* answered as if generated: done, nothing generated, the filter as the reason */
    pthread_mutex_lock(&r->mu);
    r->done = true;
    r->finish = SRV_FINISH_FILTER;
    pthread_mutex_unlock(&r->mu);
    return true;
}

bool srv_guard_output(struct srv_guard *g, struct srv_metrics *mt, struct srv_req *r,
                      const char *text, size_t len)
{
    if (!srv_guard_on(g, SRV_GUARD_OUTPUT) || r->p.kind != SRV_CHAT)
        return false;
    return check(g, mt, r, text ? text : "", text ? len : 0);
}

/* ---------------------------------------------------------------- streams */

struct srv_guard_stream {
    struct herd_buf all; /* the answer so far: released, then held */
    size_t released;     /* bytes of it sent to the client */
};

herd_status srv_guard_stream_new(struct srv_guard_stream **out)
{
    *out = herd_calloc(1, sizeof **out);
    if (!*out)
        return herd_fail(HERD_ERR_NOMEM, "guard: out of memory");
    buf_init(&(*out)->all, 0);
    return HERD_OK;
}

void srv_guard_stream_free(struct srv_guard_stream *gs)
{
    if (!gs)
        return;
    buf_free(&gs->all);
    herd_free(gs);
}

/* The end of the last whole sentence in all[from, n), or 0 when none. A '.', '!' or '?'
 * ends one when blank space follows it; a newline always does. */
static size_t sentence_end(const char *s, size_t from, size_t n)
{
    for (size_t i = n; i > from; i--) {
        char c = s[i - 1];
        if (c == '\n')
            return i;
        if ((c == ' ' || c == '\t') && i - 1 > from &&
            (s[i - 2] == '.' || s[i - 2] == '!' || s[i - 2] == '?'))
            return i - 1;
    }
    return 0;
}

herd_status srv_guard_stream_feed(struct srv_guard *g, struct srv_metrics *mt,
                                  struct srv_req *r, struct srv_guard_stream *gs, char **text,
                                  size_t *len, bool *done, enum srv_finish *finish)
{
    if (*len && buf_append(&gs->all, *text, *len) != HERD_OK)
        return gs->all.err;
    herd_free(*text);
    *text = NULL;
    *len = 0;
    if (*done && *finish == SRV_FINISH_ERROR)
        return HERD_OK; /* held text was never checked: it is not sent */
    size_t end = *done ? gs->all.len : sentence_end(gs->all.data, gs->released, gs->all.len);
    if (!end && gs->all.len - gs->released > GUARD_STREAM_MAX_HOLD)
        end = gs->all.len;
    if (!end || end == gs->released) /* nothing new to check */
        return HERD_OK;
    if (srv_guard_output(g, mt, r, gs->all.data, end)) {
        atomic_store(&r->cancelled, true); /* the scheduler stops generating it */
        *done = true;
        *finish = SRV_FINISH_FILTER;
        return HERD_OK;
    }
    if (end > gs->released) {
        *text = herd_strndup(gs->all.data + gs->released, end - gs->released);
        if (!*text)
            return herd_fail(HERD_ERR_NOMEM, "guard: out of memory");
        *len = end - gs->released;
        gs->released = end;
    }
    return HERD_OK;
}
