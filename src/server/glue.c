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

bool srv_render_chat(const herd_tokenizer *tok, const herd_model_info *info,
                     const struct srv_params *p, int32_t **ids, size_t *n_ids,
                     struct srv_error *err)
{
    *ids = NULL;
    *n_ids = 0;
    char *json = cJSON_PrintUnformatted(p->body);
    if (!json) {
        srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    herd_chat_options opt = herd_chat_default_options();
    opt.tmpl = herd_chat_template_for(info);
    herd_status s = herd_chat_render_tokens(tok, json, strlen(json), &opt, ids, n_ids);
    cJSON_free(json);
    if (s == HERD_OK)
        return true;
    if (s == HERD_ERR_INVALID)
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
