/*
 * glue.c - the server's only contact with chat/ (prompt rendering, stop tokens, tool-call
 * parsing) and sample/ (the sampler chain), through their include/herd.h sections. Kept in
 * one file so that a change in either API touches one place.
 *
 * OpenAI semantics mapped here: temperature/top_p default to the model's
 * generation_config (then OpenAI's 1.0); presence/frequency penalties apply to the tokens
 * generated so far (penalty window "all"); logit_bias is added before everything else; a
 * request without a seed draws a fresh one so two such requests differ.
 */
#include "server.h"

#include <math.h>  /* INFINITY */
#include <stdio.h> /* snprintf */

/* A forced tool call's opening is part of the assistant's turn: its tokens follow the
 * header, as if the model had written them. */
static herd_status append_prefix(const herd_tokenizer *tok, const char *prefix, int32_t **ids,
                                 size_t *n_ids)
{
    int32_t *more = NULL;
    size_t n_more = 0;
    herd_status s = herd_tokenize(tok, prefix, strlen(prefix), false, false, &more, &n_more);
    if (s != HERD_OK)
        return s;
    int32_t *all = herd_realloc(*ids, (*n_ids + n_more) * sizeof *all);
    if (!all) {
        herd_free(more);
        return herd_fail(HERD_ERR_NOMEM, "cannot allocate the prompt");
    }
    memcpy(all + *n_ids, more, n_more * sizeof *all);
    *ids = all;
    *n_ids += n_more;
    herd_free(more);
    return HERD_OK;
}

bool srv_render_chat(const herd_tokenizer *tok, const herd_model_info *info,
                     const struct srv_params *p, int32_t n_ctx, int32_t **ids, size_t *n_ids,
                     struct srv_error *err)
{
    *ids = NULL;
    *n_ids = 0;
    /* The client's bytes as they came: the renderer reads JSON as Python does, so the
     * prompt is the official template's to the byte. Nothing is edited first: tool_choice
     * "none" (tools left out) is one of the renderer's own OpenAI conventions. */
    herd_chat_options opt = herd_chat_options_for(info); /* template + default system */
    opt.max_tokens = n_ctx > 1 ? (size_t)n_ctx - 1 : 1; /* one position for the answer */
    herd_status s;
    if (herd_guard_is_template(info)) {
        /* a Llama Guard model served itself: its own prompt format (docs/guard.md) */
        herd_guard_options go = herd_guard_default_options();
        go.format = herd_guard_format_for(info);
        s = herd_guard_render_tokens(tok, p->raw, p->raw_len, &go, ids, n_ids);
    } else {
        s = herd_chat_render_tokens(tok, p->raw, p->raw_len, &opt, ids, n_ids);
    }
    if (s == HERD_OK && p->force_prefix)
        s = append_prefix(tok, p->force_prefix, ids, n_ids);
    if (s == HERD_OK)
        return true;
    size_t at_least = *n_ids;
    herd_free(*ids);
    *ids = NULL;
    *n_ids = 0;
    if (s == HERD_ERR_CONTEXT)
        srv_error_set(err, 400, "invalid_request_error", "context_length_exceeded", "messages",
                      "This model's maximum context length is %d tokens. However, your "
                      "messages need at least %zu tokens, leaving no room for a completion.",
                      n_ctx, at_least);
    else if (s == HERD_ERR_FORMAT) /* JSON cJSON took but Python's json would not */
        srv_error_set(err, 400, "invalid_request_error", NULL, NULL,
                      "We could not parse the JSON body of your request: %s",
                      herd_last_error());
    else if (s == HERD_ERR_INVALID)
        srv_error_set(err, 400, "invalid_request_error", NULL, "messages", "%s",
                      herd_last_error());
    else
        srv_error_set(err, 500, "server_error", NULL, NULL, "cannot render the chat: %s",
                      herd_last_error());
    return false;
}

cJSON *srv_parse_tool_calls(const char *text, size_t len, const char *req_id, char **content)
{
    *content = NULL;
    herd_chat_output *out = NULL;
    if (herd_chat_parse_output(text, len, &out) != HERD_OK || !out || out->n_calls == 0) {
        herd_chat_output_free(out);
        return NULL;
    }
    cJSON *calls = cJSON_CreateArray();
    for (size_t i = 0; calls && i < out->n_calls; i++) {
        char id[96];
        snprintf(id, sizeof id, "call_%s_%zu", req_id, i);
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "index", (double)i);
        cJSON_AddStringToObject(c, "id", id);
        cJSON_AddStringToObject(c, "type", "function");
        cJSON *fn = cJSON_AddObjectToObject(c, "function");
        cJSON_AddItemToObject(fn, "name", srv_json_text(out->calls[i].name,
                                                        strlen(out->calls[i].name)));
        cJSON_AddItemToObject(fn, "arguments", srv_json_text(out->calls[i].arguments,
                                                             strlen(out->calls[i].arguments)));
        cJSON_AddItemToArray(calls, c);
    }
    *content = herd_strdup(out->content ? out->content : "");
    herd_chat_output_free(out);
    return calls;
}

bool srv_is_stop_token(const herd_tokenizer *tok, const herd_model_info *info, int32_t id)
{
    for (int32_t i = 0; i < info->n_eos; i++)
        if (info->eos_ids[i] == id)
            return true;
    return tok && herd_chat_stop_kind(tok, id) != HERD_CHAT_STOP_NONE;
}

/* splitmix64 over a clock and a counter: unseeded requests differ from each other. */
static uint64_t fresh_seed(void)
{
    static atomic_uint_fast64_t counter;
    uint64_t z = (uint64_t)(herd_time_s() * 1e9) + 0x9E3779B97F4A7C15ull * (counter++ + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

herd_status srv_sampler_new(const struct srv_params *p, const herd_model_info *info,
                            herd_sampler **out)
{
    herd_sampler_params sp = herd_sampler_default_params();
    sp.temperature = 1.0f;
    sp.top_p = 1.0f;
    herd_sampler_params_from_model(&sp, info);
    if (p->temperature >= 0)
        sp.temperature = p->temperature;
    if (p->top_p >= 0)
        sp.top_p = p->top_p > 0 ? p->top_p : 1e-6f; /* top_p 0: only the top token */
    sp.top_k = 0;
    sp.min_p = 0;
    sp.repeat_penalty = 1.0f;
    sp.presence_penalty = p->presence_penalty;
    sp.frequency_penalty = p->frequency_penalty;
    sp.penalty_last_n = -1;
    sp.seed = p->has_seed ? p->seed : fresh_seed();
    herd_logit_bias *bias = NULL;
    if (p->n_bias) {
        bias = herd_malloc((size_t)p->n_bias * sizeof *bias);
        if (!bias)
            return herd_fail(HERD_ERR_NOMEM, "cannot allocate logit_bias");
        for (int i = 0; i < p->n_bias; i++) {
            bias[i].token = p->bias_ids[i];
            /* OpenAI: -100 bans a token, +100 makes it the only choice */
            bias[i].bias = p->bias_vals[i] <= -100.0f ? -INFINITY : p->bias_vals[i];
        }
    }
    sp.logit_bias = bias;
    sp.n_logit_bias = (size_t)p->n_bias;
    herd_status s = herd_sampler_new(&sp, info->n_vocab, out);
    herd_free(bias);
    return s;
}


herd_status srv_token_classes(const herd_tokenizer *tok, const herd_model_info *info,
                              uint8_t **out)
{
    *out = herd_calloc((size_t)info->n_vocab, 1);
    if (!*out)
        return herd_fail(HERD_ERR_NOMEM, "cannot allocate token classes");
    for (int32_t id = 0; id < info->n_vocab; id++) {
        size_t len = 0;
        const char *b = herd_token_bytes(tok, id, &len);
        char name[128]; /* special token names are short: "<|reserved_special_token_250|>" */
        if (srv_is_stop_token(tok, info, id)) {
            (*out)[id] = SRV_TOK_STOP;
        } else if (!b || len == 0) {
            (*out)[id] = SRV_TOK_SPECIAL;
        } else if (len >= 4 && len < sizeof name && b[0] == '<' && b[1] == '|') {
            memcpy(name, b, len);
            name[len] = '\0';
            if (herd_token_special(tok, name) == id)
                (*out)[id] = SRV_TOK_SPECIAL;
        }
    }
    return HERD_OK;
}

/* Whether id keeps j valid and completable in budget tokens; *cost gets the completion
 * length after it (INT32_MAX when invalid). */
static bool json_token_ok(const herd_tokenizer *tok, const uint8_t *cls,
                          const struct srv_jsonc *j, int32_t id, int32_t budget, int32_t *cost)
{
    *cost = INT32_MAX;
    if (cls[id] == SRV_TOK_STOP) {
        if (!srv_jsonc_done(j))
            return false;
        *cost = 0;
        return true;
    }
    if (cls[id] != SRV_TOK_TEXT)
        return false;
    size_t len = 0;
    const char *b = herd_token_bytes(tok, id, &len);
    struct srv_jsonc t = *j;
    if (!b || !srv_jsonc_feed(&t, b, len))
        return false;
    *cost = srv_jsonc_cost(&t);
    return *cost <= budget;
}

/* Rejection sampling first: the usual draw is kept when valid, which with a real model is
 * nearly always, so sampling stays exact among valid tokens at the price of one draw. Each
 * retry is a full pass of the sampler over the vocabulary (about a millisecond at 128k),
 * so after a few the row is masked once, completely: every invalid token gets -inf and one
 * draw from the rest is again exact. */
#define JSON_MAX_RETRIES 8

herd_status srv_vocab_index_new(const herd_tokenizer *tok, const uint8_t *cls,
                                int32_t n_vocab, struct srv_vocab_index **out)
{
    struct srv_vocab_index *vi = herd_calloc(1, sizeof *vi);
    int32_t n_text = 0, n_stop = 0;
    for (int32_t id = 0; id < n_vocab; id++) {
        n_text += cls[id] == SRV_TOK_TEXT;
        n_stop += cls[id] == SRV_TOK_STOP;
    }
    if (vi) {
        vi->ids = herd_malloc(((size_t)n_text + 1) * sizeof *vi->ids);
        vi->stops = herd_malloc(((size_t)n_stop + 1) * sizeof *vi->stops);
    }
    if (!vi || !vi->ids || !vi->stops) {
        srv_vocab_index_free(vi);
        return herd_fail(HERD_ERR_NOMEM, "cannot allocate the vocabulary index");
    }
    /* counting sort by first byte */
    int32_t count[256] = {0};
    for (int32_t id = 0; id < n_vocab; id++) {
        size_t len = 0;
        const char *b = herd_token_bytes(tok, id, &len);
        if (cls[id] == SRV_TOK_TEXT && b && len)
            count[(unsigned char)b[0]]++;
        else if (cls[id] == SRV_TOK_STOP)
            vi->stops[vi->n_stops++] = id;
    }
    vi->start[0] = 0;
    for (int c = 0; c < 256; c++)
        vi->start[c + 1] = vi->start[c] + count[c];
    int32_t fill[256];
    memcpy(fill, vi->start, sizeof fill);
    for (int32_t id = 0; id < n_vocab; id++) {
        size_t len = 0;
        const char *b = herd_token_bytes(tok, id, &len);
        if (cls[id] == SRV_TOK_TEXT && b && len)
            vi->ids[fill[(unsigned char)b[0]]++] = id;
    }
    *out = vi;
    return HERD_OK;
}

void srv_vocab_index_free(struct srv_vocab_index *vi)
{
    if (!vi)
        return;
    herd_free(vi->ids);
    herd_free(vi->stops);
    herd_free(vi);
}

/* Tries token i for the full scan: a valid one keeps its logit in scratch; the closest
 * over-budget one is remembered in case none fits. */
static void scan_token(const herd_tokenizer *tok, const uint8_t *cls, const float *row,
                       float *scratch, const struct srv_jsonc *j, int32_t budget, int32_t i,
                       int32_t *n_ok, int32_t *best, int32_t *closest, int32_t *closest_cost)
{
    int32_t cost = 0;
    if (json_token_ok(tok, cls, j, i, budget, &cost)) {
        (*n_ok)++;
        if (*best < 0 || row[i] > row[*best])
            *best = i;
        scratch[i] = row[i];
        return;
    }
    if (cost == INT32_MAX)
        return; /* invalid, not just over budget */
    if (*closest < 0 || cost < *closest_cost ||
        (cost == *closest_cost && row[i] > row[*closest])) {
        *closest = i;
        *closest_cost = cost;
    }
}

int32_t srv_sample_json(herd_sampler *smp, const herd_tokenizer *tok, const uint8_t *cls,
                        const struct srv_vocab_index *vi, const float *row, float *scratch,
                        int32_t n_vocab, struct srv_jsonc *j, int32_t budget)
{
    int32_t id = -1, cost = 0;
    const float *cur = row;
    for (int r = 0; r < JSON_MAX_RETRIES; r++) {
        if (herd_sampler_sample(smp, cur, n_vocab, &id) != HERD_OK)
            break;
        if (json_token_ok(tok, cls, j, id, budget, &cost))
            goto take;
        if (cur == row) {
            memcpy(scratch, row, (size_t)n_vocab * sizeof *scratch);
            cur = scratch;
        }
        scratch[id] = -INFINITY;
    }
    /* mask everything invalid; remember the best fallback in case the sampler cannot
     * draw (logit_bias banned every valid token) */
    int32_t n_ok = 0, best = -1, closest = -1, closest_cost = INT32_MAX;
    for (int32_t i = 0; i < n_vocab; i++)
        scratch[i] = -INFINITY;
    if (vi) {
        /* only the groups whose first byte the state takes */
        for (int c = 0; c < 256; c++) {
            struct srv_jsonc t = *j;
            char b = (char)c;
            if (vi->start[c] == vi->start[c + 1] || !srv_jsonc_feed(&t, &b, 1))
                continue;
            for (int32_t k = vi->start[c]; k < vi->start[c + 1]; k++)
                scan_token(tok, cls, row, scratch, j, budget, vi->ids[k], &n_ok, &best,
                           &closest, &closest_cost);
        }
        for (int32_t k = 0; k < vi->n_stops; k++)
            scan_token(tok, cls, row, scratch, j, budget, vi->stops[k], &n_ok, &best,
                       &closest, &closest_cost);
    } else {
        for (int32_t i = 0; i < n_vocab; i++)
            scan_token(tok, cls, row, scratch, j, budget, i, &n_ok, &best, &closest,
                       &closest_cost);
    }
    if (n_ok == 0) {
        id = closest; /* the budget is too small: get as near to a complete object as we can */
        if (id < 0)
            return -1;
        goto take;
    }
    if (herd_sampler_sample(smp, scratch, n_vocab, &id) != HERD_OK ||
        !json_token_ok(tok, cls, j, id, budget, &cost))
        id = best;
take:
    if (cls[id] == SRV_TOK_TEXT) {
        size_t len = 0;
        const char *b = herd_token_bytes(tok, id, &len);
        srv_jsonc_feed(j, b, len);
    }
    return id;
}
