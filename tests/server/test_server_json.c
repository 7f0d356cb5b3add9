/*
 * test_server_json.c - the server's OpenAI JSON layer without a model: request validation
 * (every refusal names its param and is a 400), error bodies, response and stream-chunk
 * shapes, stop-string hold-back, UTF-8 sanitising and the Prometheus text.
 */
#include "server/server.h"
#include "check.h"

#include <stdio.h>

struct parse_case {
    enum srv_kind kind;
    const char *body;
    bool ok;
    const char *param; /* expected param on failure ("" = none) */
};

static const struct parse_case parse_cases[] = {
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", true, ""},
    {SRV_CHAT, "{\"model\":\"x\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
               "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"}]}],"
               "\"temperature\":0,\"top_p\":0.5,\"seed\":-3,\"stop\":[\"a\",\"b\"],"
               "\"max_completion_tokens\":5,\"logprobs\":true,\"top_logprobs\":3,"
               "\"presence_penalty\":1,\"frequency_penalty\":-1,\"logit_bias\":{\"5\":-100},"
               "\"stream\":true,\"stream_options\":{\"include_usage\":true},"
               "\"response_format\":{\"type\":\"json_object\"},\"user\":\"ignored\"}", true, ""},
    {SRV_CHAT, "", false, ""},
    {SRV_CHAT, "{", false, ""},
    {SRV_CHAT, "[1,2]", false, ""},
    {SRV_CHAT, "{}", false, "messages"},
    {SRV_CHAT, "{\"messages\":[]}", false, "messages"},
    {SRV_CHAT, "{\"messages\":{}}", false, "messages"},
    {SRV_CHAT, "{\"messages\":[1]}", false, "messages"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", false, "messages"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":7}]}", false, "messages"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\"}]}", false, "messages"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
     false, "messages"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":"
               "[{\"id\":\"a\",\"type\":\"function\",\"function\":{\"name\":\"f\","
               "\"arguments\":\"{}\"}}]}]}", true, ""},
    {SRV_CHAT, "{\"model\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", false,
     "model"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":3}", false,
     "temperature"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}",
     false, "temperature"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_p\":1.5}", false,
     "top_p"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}", false,
     "max_tokens"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":2.5}", false,
     "max_tokens"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":1e300}",
     false, "max_tokens"},
    /* n > 1 and prompt lists are served since issue 16 (they were refused before) */
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}", true, ""},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":129}", false,
     "n"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":0}", false, "n"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"a\",\"b\","
               "\"c\",\"d\",\"e\"]}", false, "stop"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[1]}", false,
     "stop"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logit_bias\":"
               "{\"abc\":1}}", false, "logit_bias"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logit_bias\":"
               "{\"1000\":1}}", false, "logit_bias"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logit_bias\":"
               "{\"5\":101}}", false, "logit_bias"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2}",
     false, "top_logprobs"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,"
               "\"top_logprobs\":21}", false, "top_logprobs"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":\"yes\"}",
     false, "stream"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream_options\":"
               "{\"include_usage\":true}}", false, "stream_options"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":"
               "\"required\"}", false, "tool_choice"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
               "\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":{\"type\":"
               "\"function\",\"function\":{\"name\":\"g\"}}}", false, "tool_choice"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
               "\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":{\"type\":"
               "\"function\",\"function\":{\"name\":\"f\"}}}", true, ""},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
               "\"retrieval\"}]}", false, "tools"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":"
               "{\"type\":\"xml\"}}", false, "response_format"},
    {SRV_COMPLETION, "{\"prompt\":\"hello\"}", true, ""},
    {SRV_COMPLETION, "{\"prompt\":[1,2,3],\"logprobs\":2,\"echo\":true}", true, ""},
    {SRV_COMPLETION, "{\"prompt\":[\"one\"]}", true, ""},
    {SRV_COMPLETION, "{}", false, "prompt"},
    {SRV_COMPLETION, "{\"prompt\":[]}", false, "prompt"},
    {SRV_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", true, ""},
    {SRV_COMPLETION, "{\"prompt\":[[1,2],[3]]}", true, ""},
    {SRV_COMPLETION, "{\"prompt\":[\"a\",[1]]}", false, "prompt"},
    {SRV_COMPLETION, "{\"prompt\":[[1],\"a\"]}", false, "prompt"},
    {SRV_COMPLETION, "{\"prompt\":[[1],[]]}", false, "prompt"},
    {SRV_COMPLETION, "{\"prompt\":[[1],[99999]]}", false, "prompt"},
    {SRV_COMPLETION, "{\"prompt\":[1,99999]}", false, "prompt"},
    {SRV_COMPLETION, "{\"prompt\":[1,-1]}", false, "prompt"},
    {SRV_COMPLETION, "{\"prompt\":[1,1.5]}", false, "prompt"},
    {SRV_COMPLETION, "{\"prompt\":{}}", false, "prompt"},
    {SRV_COMPLETION, "{\"prompt\":\"x\",\"logprobs\":6}", false, "logprobs"},
    {SRV_COMPLETION, "{\"prompt\":\"x\",\"best_of\":3}", false, "best_of"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"functions\":"
               "[{\"name\":\"f\",\"parameters\":{}}]}", false, "functions"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"function_call\":"
               "\"auto\"}", false, "function_call"},
};

static void test_parse(void)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const struct parse_case *c = &parse_cases[i];
        struct srv_params p;
        struct srv_error e;
        memset(&e, 0, sizeof e);
        bool ok = srv_parse_request(c->kind, c->body, strlen(c->body), 1000, &p, &e);
        CHECK_MSG(ok == c->ok, "case %zu: %s (%s)", i, c->body, e.message);
        if (!ok) {
            CHECK_MSG(e.http == 400, "case %zu: http %d", i, e.http);
            CHECK_MSG(!strcmp(e.param, c->param), "case %zu: param '%s' want '%s'", i,
                      e.param, c->param);
            CHECK(e.message[0] != '\0');
            CHECK(p.body == NULL && p.raw == NULL && p.n_stop == 0 && p.bias_ids == NULL);
        }
        srv_params_free(&p);
    }
}

static void test_parse_values(void)
{
    const char *body = parse_cases[1].body;
    struct srv_params p;
    struct srv_error e;
    CHECK(srv_parse_request(SRV_CHAT, body, strlen(body), 1000, &p, &e));
    CHECK(p.temperature == 0.0f && p.top_p == 0.5f);
    CHECK(p.has_seed && (int64_t)p.seed == -3);
    CHECK(p.n_stop == 2 && !strcmp(p.stop[1], "b"));
    CHECK(p.max_tokens == 5);
    CHECK(p.logprobs && p.top_logprobs == 3);
    CHECK(p.n_bias == 1 && p.bias_ids[0] == 5 && p.bias_vals[0] == -100.0f);
    CHECK(p.stream && p.include_usage && p.json_object && !p.tools_active);
    CHECK(p.presence_penalty == 1.0f && p.frequency_penalty == -1.0f);
    CHECK(!strcmp(p.model, "x"));
    /* the chat renderer gets the client's bytes, not a re-print */
    CHECK(p.raw && p.raw_len == strlen(body) && !memcmp(p.raw, body, p.raw_len));
    srv_params_free(&p);

    const char *plain = parse_cases[0].body;
    CHECK(srv_parse_request(SRV_CHAT, plain, strlen(plain), 1000, &p, &e));
    CHECK(p.temperature < 0 && p.top_p < 0 && p.max_tokens == -1 && !p.has_seed);
    CHECK(p.model == NULL && !p.stream);
    srv_params_free(&p);

    const char *tools = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":"
                        "[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}";
    CHECK(srv_parse_request(SRV_CHAT, tools, strlen(tools), 1000, &p, &e));
    CHECK(p.tools_active);
    srv_params_free(&p);
    const char *none = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":"
                       "[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
                       "\"tool_choice\":\"none\"}";
    CHECK(srv_parse_request(SRV_CHAT, none, strlen(none), 1000, &p, &e));
    CHECK(!p.tools_active);
    srv_params_free(&p);

    const char *legacy = "{\"prompt\":[1,2,3],\"logprobs\":2,\"echo\":true}";
    CHECK(srv_parse_request(SRV_COMPLETION, legacy, strlen(legacy), 1000, &p, &e));
    CHECK(p.logprobs && p.top_logprobs == 2 && p.echo);
    srv_params_free(&p);
}

static void test_error_json(void)
{
    struct srv_error e;
    srv_error_set(&e, 400, "invalid_request_error", "context_length_exceeded", "messages",
                  "too long: %d", 5);
    char *s = srv_error_json(&e);
    cJSON *o = cJSON_Parse(s);
    cJSON *err = cJSON_GetObjectItem(o, "error");
    CHECK(cJSON_IsObject(err));
    CHECK(!strcmp(cJSON_GetObjectItem(err, "message")->valuestring, "too long: 5"));
    CHECK(!strcmp(cJSON_GetObjectItem(err, "type")->valuestring, "invalid_request_error"));
    CHECK(!strcmp(cJSON_GetObjectItem(err, "param")->valuestring, "messages"));
    CHECK(!strcmp(cJSON_GetObjectItem(err, "code")->valuestring, "context_length_exceeded"));
    cJSON_Delete(o);
    herd_free(s);
    srv_error_set(&e, 500, "server_error", NULL, NULL, "x");
    s = srv_error_json(&e);
    o = cJSON_Parse(s);
    err = cJSON_GetObjectItem(o, "error");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(err, "param")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(err, "code")));
    cJSON_Delete(o);
    herd_free(s);
}

struct stop_case {
    const char *held;
    const char *stops[2];
    long at;
    size_t safe;
};

static void test_stop_scan(void)
{
    static const struct stop_case cases[] = {
        {"hello world", {"wor", NULL}, 6, 6},
        {"hello wo", {"world", NULL}, -1, 6},   /* "wo" may still become "world" */
        {"hello w", {"xyz", NULL}, -1, 7},
        {"abcSTOP", {"STOP", "bc"}, 1, 1},      /* the earliest match wins */
        {"ab", {"abc", "b"}, 1, 1},
        {"", {"a", NULL}, -1, 0},
        {"aaa", {"aab", NULL}, -1, 1},          /* longest tail that starts a stop */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct stop_case *c = &cases[i];
        char *stops[2] = {(char *)c->stops[0], (char *)c->stops[1]};
        size_t safe = 99;
        long at = srv_stop_scan(c->held, strlen(c->held), stops, c->stops[1] ? 2 : 1, &safe);
        CHECK_MSG(at == c->at && safe == c->safe, "case %zu: at %ld safe %zu", i, at, safe);
    }
}

static void test_utf8(void)
{
    CHECK(srv_utf8_valid_prefix("abc", 3) == 3);
    CHECK(srv_utf8_valid_prefix("a\xC3\xA9", 3) == 3);
    CHECK(srv_utf8_valid_prefix("a\xC3", 2) == 1);          /* cut sequence */
    CHECK(srv_utf8_valid_prefix("\xE2\x82\xAC\xF0\x9F", 5) == 3);
    CHECK(srv_utf8_valid_prefix("\xED\xA0\x80", 3) == 0);   /* a surrogate */
    CHECK(srv_utf8_valid_prefix("\xC0\xAF", 2) == 0);       /* overlong */
    cJSON *s = srv_json_text("a\xFF" "b\xC3", 4);
    CHECK(s && !strcmp(s->valuestring, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD"));
    cJSON_Delete(s);
}

static struct srv_req *fake_req(enum srv_kind kind, bool usage)
{
    struct srv_req *r = srv_req_new();
    r->p.kind = kind;
    r->p.model = herd_strdup("tiny");
    r->p.include_usage = usage;
    r->n_prompt = 7;
    r->n_cached = 3;
    r->created = 1700000000;
    snprintf(r->id, sizeof r->id, "chatcmpl-1");
    return r;
}

static void test_responses(void)
{
    struct srv_req *r = fake_req(SRV_CHAT, false);
    const char *top_b[1] = {"Hi"};
    size_t top_l[1] = {2};
    float top_lp[1] = {-0.1f};
    cJSON *lp = cJSON_CreateArray();
    cJSON_AddItemToArray(lp, srv_logprob_entry("Hi", 2, -0.1f, top_lp, top_b, top_l, 1, 0));
    char *s = srv_response_json(r, "Hi", NULL, lp, SRV_FINISH_LENGTH, 4);
    cJSON *o = cJSON_Parse(s);
    CHECK(!strcmp(cJSON_GetObjectItem(o, "object")->valuestring, "chat.completion"));
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
    cJSON *msg = cJSON_GetObjectItem(c0, "message");
    CHECK(!strcmp(cJSON_GetObjectItem(msg, "role")->valuestring, "assistant"));
    CHECK(!strcmp(cJSON_GetObjectItem(msg, "content")->valuestring, "Hi"));
    CHECK(!strcmp(cJSON_GetObjectItem(c0, "finish_reason")->valuestring, "length"));
    cJSON *content = cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "logprobs"), "content");
    CHECK(cJSON_GetArraySize(content) == 1);
    CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(content, 0), "text_offset") == NULL);
    cJSON *u = cJSON_GetObjectItem(o, "usage");
    CHECK(cJSON_GetObjectItem(u, "prompt_tokens")->valueint == 7);
    CHECK(cJSON_GetObjectItem(u, "completion_tokens")->valueint == 4);
    CHECK(cJSON_GetObjectItem(u, "total_tokens")->valueint == 11);
    cJSON_Delete(o);
    herd_free(s);

    cJSON *calls = cJSON_Parse("[{\"id\":\"c\",\"type\":\"function\",\"function\":"
                               "{\"name\":\"f\",\"arguments\":\"{}\"}}]");
    s = srv_response_json(r, "", calls, NULL, SRV_FINISH_TOOLS, 4);
    o = cJSON_Parse(s);
    c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
    msg = cJSON_GetObjectItem(c0, "message");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(msg, "content")));
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(msg, "tool_calls")) == 1);
    CHECK(!strcmp(cJSON_GetObjectItem(c0, "finish_reason")->valuestring, "tool_calls"));
    cJSON_Delete(o);
    herd_free(s);
    srv_req_unref(r);

    /* stream chunks: "data: {json}\n\n", usage: null on every chunk with include_usage */
    r = fake_req(SRV_CHAT, true);
    struct herd_buf b;
    buf_init(&b, 0);
    CHECK(srv_chunk_sse(&b, r, "\xC3\xA9", 2, NULL, NULL, false, SRV_FINISH_NONE) == HERD_OK);
    CHECK(!strncmp(b.data, "data: {", 7) && !strcmp(b.data + b.len - 2, "\n\n"));
    o = cJSON_Parse(b.data + 6);
    CHECK(!strcmp(cJSON_GetObjectItem(o, "object")->valuestring, "chat.completion.chunk"));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "usage")));
    c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
    CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "delta"), "content")->valuestring,
                  "\xC3\xA9"));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(c0, "finish_reason")));
    cJSON_Delete(o);
    b.len = 0;
    CHECK(srv_usage_sse(&b, r, 9) == HERD_OK);
    o = cJSON_Parse(b.data + 6);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(o, "choices")) == 0);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "usage"), "completion_tokens")->valueint
          == 9);
    cJSON_Delete(o);
    buf_free(&b);
    srv_req_unref(r);

    /* legacy completions logprobs: parallel arrays */
    r = fake_req(SRV_COMPLETION, false);
    lp = cJSON_CreateArray();
    cJSON_AddItemToArray(lp, srv_logprob_entry("a", 1, -1.0f, top_lp, top_b, top_l, 1, 0));
    cJSON_AddItemToArray(lp, srv_logprob_entry("b", 1, -2.0f, top_lp, top_b, top_l, 1, 1));
    s = srv_response_json(r, "ab", NULL, lp, SRV_FINISH_STOP, 2);
    o = cJSON_Parse(s);
    c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
    CHECK(!strcmp(cJSON_GetObjectItem(c0, "text")->valuestring, "ab"));
    cJSON *l = cJSON_GetObjectItem(c0, "logprobs");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(l, "tokens")) == 2);
    CHECK(cJSON_GetArrayItem(cJSON_GetObjectItem(l, "text_offset"), 1)->valueint == 1);
    CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(l, "top_logprobs"), 0),
                              "Hi") != NULL);
    cJSON_Delete(o);
    herd_free(s);
    srv_req_unref(r);
}

static void test_metrics(void)
{
    struct srv_metrics *m = NULL;
    CHECK(srv_metrics_new(&m) == HERD_OK);
    srv_metrics_request(m, "/v1/chat/completions", 200);
    srv_metrics_request(m, "/v1/chat/completions", 200);
    srv_metrics_request(m, "/v1/chat/completions", 400);
    srv_metrics_tokens(m, 10, 5, 2);
    srv_metrics_ttft(m, 0.03);
    srv_metrics_ttft(m, 100);
    srv_metrics_gauges(m, 3, 2);
    char *t = srv_metrics_text(m);
    CHECK(strstr(t, "herd_requests_total{endpoint=\"/v1/chat/completions\",code=\"200\"} 2\n"));
    CHECK(strstr(t, "code=\"400\"} 1\n"));
    CHECK(strstr(t, "herd_prompt_tokens_total 10\n"));
    CHECK(strstr(t, "herd_generated_tokens_total 5\n"));
    CHECK(strstr(t, "herd_queue_depth 3\n"));
    CHECK(strstr(t, "herd_active_slots 2\n"));
    CHECK(strstr(t, "# TYPE herd_time_to_first_token_seconds histogram\n"));
    CHECK(strstr(t, "herd_time_to_first_token_seconds_bucket{le=\"0.025\"} 0\n"));
    CHECK(strstr(t, "herd_time_to_first_token_seconds_bucket{le=\"0.05\"} 1\n"));
    CHECK(strstr(t, "herd_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n"));
    CHECK(strstr(t, "herd_time_to_first_token_seconds_count 2\n"));
    herd_free(t);
    srv_metrics_free(m);
}

static void test_tool_calls(void)
{
    const char *t = "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}";
    char *content = NULL;
    cJSON *calls = srv_parse_tool_calls(t, strlen(t), "chatcmpl-9", &content);
    CHECK(cJSON_GetArraySize(calls) == 1);
    cJSON *c0 = cJSON_GetArrayItem(calls, 0);
    cJSON *fn = cJSON_GetObjectItem(c0, "function");
    CHECK(!strcmp(cJSON_GetObjectItem(c0, "type")->valuestring, "function"));
    CHECK(!strcmp(cJSON_GetObjectItem(c0, "id")->valuestring, "call_chatcmpl-9_0"));
    CHECK(!strcmp(cJSON_GetObjectItem(fn, "name")->valuestring, "get_weather"));
    cJSON *args = cJSON_Parse(cJSON_GetObjectItem(fn, "arguments")->valuestring);
    CHECK(!strcmp(cJSON_GetObjectItem(args, "city")->valuestring, "Paris"));
    CHECK(content && content[0] == '\0');
    cJSON_Delete(args);
    cJSON_Delete(calls);
    herd_free(content);
    const char *plain = "The weather is fine.";
    CHECK(srv_parse_tool_calls(plain, strlen(plain), "x", &content) == NULL);
    herd_free(content);
}

int main(void)
{
    test_tool_calls();
    test_parse();
    test_parse_values();
    test_error_json();
    test_stop_scan();
    test_utf8();
    test_responses();
    test_metrics();
    return check_done();
}
