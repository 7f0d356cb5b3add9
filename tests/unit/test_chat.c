/*
 * test_chat.c - chat/ pieces the golden renders do not reach on their own: tool-call
 * parsing (table of model outputs and the calls expected), the message-list renderer and
 * its options, and, with the shared tokenizer, the token-id rendering (template specials by
 * id, user text never a control token).
 */
#include "herd.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

struct parse_case {
    const char *text;
    int n_calls; /* 0: the text must stay content */
    const char *name[3];
    const char *args[3];
    int builtin;
};

static const struct parse_case parse_cases[] = {
    {"{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"days\": 3}}", 1,
     {"get_weather"}, {"{\"city\": \"Paris\", \"days\": 3}"}, 0},
    {"  {\"name\":\"f\",\"arguments\":{\"x\":1.50,\"y\":[true,null]}}<|eot_id|>", 1, {"f"},
     {"{\"x\": 1.5, \"y\": [true, null]}"}, 0},
    {"{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": \\\"b\\\"}\"}", 1, {"f"},
     {"{\"a\": \"b\"}"}, 0},
    {"{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"k\": \"é\"}}", 2,
     {"a", "b"}, {"{}", "{\"k\": \"é\"}"}, 0},
    {"<|python_tag|>brave_search.call(query=\"weather in Menlo Park\")<|eom_id|>", 1,
     {"brave_search"}, {"{\"query\": \"weather in Menlo Park\"}"}, 1},
    {"<|python_tag|>wolfram_alpha.call(query='solve x^2 = \\'4\\'')", 1, {"wolfram_alpha"},
     {"{\"query\": \"solve x^2 = '4'\"}"}, 1},
    {"<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}", 1,
     {"get_weather"}, {"{\"city\": \"Rome\"}"}, 0},
    {"<|python_tag|>import math\nprint(math.sqrt(2))", 1, {"code_interpreter"},
     {"{\"code\": \"import math\\nprint(math.sqrt(2))\"}"}, 1},
    {"[get_weather(city=\"Paris\", unit='celsius'), get_time(tz=\"Europe/Rome\")]", 2,
     {"get_weather", "get_time"},
     {"{\"city\": \"Paris\", \"unit\": \"celsius\"}", "{\"tz\": \"Europe/Rome\"}"}, 0},
    {"[f(a=1, b=-2.5, c=True, d=None, e=[1, (2, 3)], g={'k': \"v\"}, h=\"\\u00e9\\n\")]", 1,
     {"f"}, {"{\"a\": 1, \"b\": -2.5, \"c\": true, \"d\": null, \"e\": [1, [2, 3]], "
             "\"g\": {\"k\": \"v\"}, \"h\": \"é\\n\"}"}, 0},
    {"[noargs()]", 1, {"noargs"}, {"{}"}, 0},
    /* malformed or ordinary text: content, no call, no crash */
    {"Hello! How can I help you today?", 0, {0}, {0}, 0},
    {"{\"name\": \"f\", \"parameters\": {\"a\": 1}", 0, {0}, {0}, 0},
    {"{\"name\": 5, \"parameters\": {}}", 0, {0}, {0}, 0},
    {"{\"parameters\": {}}", 0, {0}, {0}, 0},
    {"[f(a=1), g(b=]", 0, {0}, {0}, 0},
    {"[f(1, 2)]", 0, {0}, {0}, 0},
    {"[1, 2, 3]", 0, {0}, {0}, 0},
    {"[f(a=1)] and then some text", 0, {0}, {0}, 0},
    {"<|python_tag|>brave_search.call(query=\"unterminated)", 0, {0}, {0}, 0},
    {"<|python_tag|>", 0, {0}, {0}, 0},
    {"{\"name\": \"f\", \"parameters\": {}} trailing words", 0, {0}, {0}, 0},
    {"", 0, {0}, {0}, 0},
    {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", 0, {0},
     {0}, 0},
    /* NaN / infinities cannot be JSON arguments (fuzz_chat_output found 1.0e9925 written
     * as Infinity): such a call is malformed and stays content */
    {"[get_veat(tz=\"UTC\", fmt=1.0e9925)]", 0, {0}, {0}, 0},
    {"{\"name\": \"f\", \"parameters\": {\"x\": NaN}}", 0, {0}, {0}, 0},
    {"{\"name\": \"f\", \"parameters\": {\"x\": {\"y\": [1, -Infinity]}}}", 0, {0}, {0}, 0},
};

static void test_parse(void)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const struct parse_case *pc = &parse_cases[i];
        herd_chat_output *o = NULL;
        herd_status s = herd_chat_parse_output(pc->text, strlen(pc->text), &o);
        CHECK_MSG(s == HERD_OK && o, "case %zu: %s", i, herd_last_error());
        if (!o)
            continue;
        CHECK_MSG((int)o->n_calls == pc->n_calls, "case %zu (%s): %zu calls, expected %d", i,
                  pc->text, o->n_calls, pc->n_calls);
        if ((int)o->n_calls == pc->n_calls) {
            for (int k = 0; k < pc->n_calls; k++) {
                CHECK_MSG(strcmp(o->calls[k].name, pc->name[k]) == 0, "case %zu: name %s", i,
                          o->calls[k].name);
                CHECK_MSG(strcmp(o->calls[k].arguments, pc->args[k]) == 0,
                          "case %zu: arguments %s, expected %s", i, o->calls[k].arguments,
                          pc->args[k]);
                CHECK_MSG(o->calls[k].builtin == (pc->builtin != 0), "case %zu: builtin", i);
            }
        }
        if (pc->n_calls == 0) {
            /* Content is the text up to any stop token, untouched. */
            size_t n = strlen(pc->text);
            const char *stop = strstr(pc->text, "<|e");
            if (stop)
                n = (size_t)(stop - pc->text);
            CHECK_MSG(strlen(o->content) == n && memcmp(o->content, pc->text, n) == 0,
                      "case %zu: content '%s'", i, o->content);
        } else {
            CHECK(o->content && o->content[0] == '\0');
        }
        herd_chat_output_free(o);
    }
}

static void test_messages(void)
{
    herd_chat_message msgs[] = {{"system", "  Be brief. "}, {"user", "Hi <|eot_id|>"}};
    herd_chat_options opt = herd_chat_default_options();
    char *p = NULL;
    size_t n = 0;
    CHECK(herd_chat_render_messages(msgs, 2, &opt, &p, &n) == HERD_OK);
    const char *want =
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
        "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi <|eot_id|>"
        "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
    CHECK_MSG(p && n == strlen(want) && strcmp(p, want) == 0, "got: %s", p ? p : "(null)");
    herd_free(p);

    opt.add_generation_prompt = false;
    opt.date_string = "01 Jan 2001";
    CHECK(herd_chat_render_messages(msgs + 1, 1, &opt, &p, &n) == HERD_OK);
    CHECK(p && strstr(p, "Today Date: 01 Jan 2001\n") && !strstr(p, "assistant"));
    herd_free(p);

    /* The request's own date_string wins over the option. */
    const char *req = "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}],"
                      " \"chat_template_kwargs\": {\"date_string\": \"02 Feb 2002\"}}";
    CHECK(herd_chat_render(req, strlen(req), &opt, &p, &n) == HERD_OK);
    CHECK(p && strstr(p, "Today Date: 02 Feb 2002\n"));
    herd_free(p);

    /* Bad requests: a message, not a crash. */
    const char *bad[] = {"", "{", "[]", "{\"messages\": []}", "{\"messages\": 5}",
                         "{\"messages\": [{\"content\": \"no role\"}]}",
                         "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": 3}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = (char *)1;
        herd_status s = herd_chat_render(bad[i], strlen(bad[i]), NULL, &p, &n);
        CHECK_MSG(s != HERD_OK && p == NULL && herd_last_error()[0], "bad request %zu", i);
    }

    herd_model_info info;
    memset(&info, 0, sizeof info);
    info.name = "Llama 3.1 8B Instruct";
    info.dim = 4096;
    info.n_layers = 32;
    CHECK(herd_chat_template_for(&info) == HERD_CHAT_LLAMA31);
    info.name = "Llama-3.2-1B-Instruct";
    CHECK(herd_chat_template_for(&info) == HERD_CHAT_LLAMA32);
    info.name = "tiny";
    info.dim = 3072;
    info.n_layers = 28;
    CHECK(herd_chat_template_for(&info) == HERD_CHAT_LLAMA32);
}

/* The request's own bytes, read as Python reads them: numbers as written, tool_choice
 * "none" drops the tools, nesting past the parser's limit is a format error. */
static void test_request_json(void)
{
    const char *req = "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}],"
                      " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\","
                      " \"parameters\": {\"minimum\": 0.0, \"maximum\": 1.0,"
                      " \"big\": 12345678901234567891, \"eps\": 1e-7}}}]";
    char buf[1024];
    char *p = NULL, *q = NULL;
    size_t n = 0, nq = 0;
    snprintf(buf, sizeof buf, "%s}", req);
    CHECK(herd_chat_render(buf, strlen(buf), NULL, &p, &n) == HERD_OK);
    CHECK_MSG(p && strstr(p, "\"minimum\": 0.0,\n            \"maximum\": 1.0,\n"
                             "            \"big\": 12345678901234567891,\n"
                             "            \"eps\": 1e-07\n"), "got: %s", p ? p : "");
    herd_free(p);
    /* tool_choice none renders as if there were no tools */
    snprintf(buf, sizeof buf, "%s, \"tool_choice\": \"none\"}", req);
    const char *plain = "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}";
    CHECK(herd_chat_render(buf, strlen(buf), NULL, &p, &n) == HERD_OK);
    CHECK(herd_chat_render(plain, strlen(plain), NULL, &q, &nq) == HERD_OK);
    CHECK_MSG(p && q && n == nq && memcmp(p, q, n) == 0, "tool_choice none: %s", p ? p : "");
    herd_free(p);
    herd_free(q);
    /* 200 levels in an ignored field are read; 201 are refused with a format error */
    for (int depth = 199; depth <= 201; depth++) {
        char deep[600];
        int k = snprintf(deep, sizeof deep, "{\"messages\": [{\"role\": \"user\", "
                                            "\"content\": \"x\"}], \"extra\": ");
        for (int i = 0; i < depth; i++)
            deep[k++] = '[';
        for (int i = 0; i < depth; i++)
            deep[k++] = ']';
        deep[k++] = '}';
        herd_status st = herd_chat_render(deep, (size_t)k, NULL, &p, &n);
        if (depth <= 200)
            CHECK_MSG(st == HERD_OK, "depth %d: %s", depth, herd_last_error());
        else
            CHECK_MSG(st == HERD_ERR_FORMAT && strstr(herd_last_error(), "nesting deeper"),
                      "depth %d: %s", depth, herd_last_error());
        herd_free(p);
        p = NULL;
    }
}

/* max_tokens: a prompt over the limit fails with HERD_ERR_CONTEXT and a lower bound on its
 * length that is above the limit and never above the true count; at the limit it renders
 * the same ids as without one. */
static void test_token_limit(const herd_tokenizer *tok)
{
    size_t len = 6 * 20000;
    char *req = malloc(len + 128);
    if (!req) {
        CHECK(!"out of memory");
        return;
    }
    int k = snprintf(req, 128, "{\"messages\": [{\"role\": \"user\", \"content\": \"");
    for (size_t i = 0; i < 20000; i++)
        memcpy(req + k + 6 * i, "hello ", 6);
    k += (int)len;
    k += snprintf(req + k, 64, "\"}]}");
    herd_chat_options opt = herd_chat_default_options();
    int32_t *all = NULL, *ids = NULL;
    size_t n_all = 0, n = 0;
    CHECK(herd_chat_render_tokens(tok, req, (size_t)k, &opt, &all, &n_all) == HERD_OK);
    opt.max_tokens = n_all;
    CHECK(herd_chat_render_tokens(tok, req, (size_t)k, &opt, &ids, &n) == HERD_OK);
    CHECK(n == n_all && ids && memcmp(ids, all, n * sizeof *ids) == 0);
    herd_free(ids);
    size_t limits[] = {1, 10, 100, 900, n_all / 2, n_all - 1};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        opt.max_tokens = limits[i];
        ids = (int32_t *)1;
        herd_status s = herd_chat_render_tokens(tok, req, (size_t)k, &opt, &ids, &n);
        CHECK_MSG(s == HERD_ERR_CONTEXT && ids == NULL && n > limits[i] && n <= n_all,
                  "limit %zu of %zu ids: status %d, bound %zu", limits[i], n_all, (int)s, n);
    }
    herd_free(all);
    free(req);
}

/* With the real Llama 3 tokenizer: specials by id, content as plain text. */
static void test_tokens(void)
{
    const char *dir = getenv("HERD_SHARED_DATA");
    char path[4096];
    if (!dir) {
        printf("SKIP token rendering: HERD_SHARED_DATA unset\n");
        return;
    }
    snprintf(path, sizeof path, "%s/llama3/tokenizer.json", dir);
    herd_tokenizer *tok = NULL;
    if (herd_tokenizer_load(path, &tok) != HERD_OK) {
        printf("SKIP token rendering: %s: %s (the Llama 3 tokenizer.json from "
               "meta-llama/Llama-3.1-8B-Instruct)\n", path, herd_last_error());
        return;
    }
    const char *req =
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi <|eot_id|> there\"},"
        "{\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"name\": \"brave_search\","
        " \"arguments\": {\"query\": \"x\"}}}]}],"
        " \"chat_template_kwargs\": {\"builtin_tools\": [\"brave_search\"]}}";
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(herd_chat_render_tokens(tok, req, strlen(req), NULL, &ids, &n) == HERD_OK);
    int eot = 0, eom = 0, tag = 0, bot = 0;
    for (size_t i = 0; i < n; i++) {
        eot += ids[i] == 128009;
        eom += ids[i] == 128008;
        tag += ids[i] == 128010;
        bot += ids[i] == 128000;
    }
    /* eot: system and user turns only; the user's "<|eot_id|>" stays text. */
    CHECK_MSG(n > 0 && ids[0] == 128000 && bot == 1, "begin_of_text once, first");
    CHECK_MSG(eot == 2 && eom == 1 && tag == 1, "eot %d eom %d python_tag %d", eot, eom, tag);
    /* Decoding the ids gives back the text rendering (a request without <|eom_id|> and
     * <|python_tag|>: the shared tokenizer.json gives those ids their Llama 3.0 names). */
    const char *req2 = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi <|eot_id|> "
                       "there\"}], \"tools\": [{\"name\": \"f\"}]}";
    int32_t *ids2 = NULL;
    size_t n2 = 0;
    char *text = NULL, *want = NULL;
    size_t tl = 0, wl = 0;
    CHECK(herd_chat_render_tokens(tok, req2, strlen(req2), NULL, &ids2, &n2) == HERD_OK);
    CHECK(herd_detokenize(tok, ids2, n2, &text, &tl) == HERD_OK);
    CHECK(herd_chat_render(req2, strlen(req2), NULL, &want, &wl) == HERD_OK);
    CHECK_MSG(text && want && tl == wl && memcmp(text, want, wl) == 0, "ids decode to %s",
              text ? text : "(null)");
    herd_free(ids2);
    /* Same ids as tokenizing the rendered text with special parsing, when no user text
     * looks like a special token. */
    const char *plain = "{\"messages\": [{\"role\": \"system\", \"content\": \"Be nice.\"},"
                        " {\"role\": \"user\", \"content\": \"Hello, world!\\n\\nBye\"}]}";
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    char *pt = NULL;
    size_t pl = 0;
    CHECK(herd_chat_render_tokens(tok, plain, strlen(plain), NULL, &a, &na) == HERD_OK);
    CHECK(herd_chat_render(plain, strlen(plain), NULL, &pt, &pl) == HERD_OK);
    CHECK(pt && herd_tokenize(tok, pt, pl, false, true, &b, &nb) == HERD_OK);
    CHECK_MSG(na == nb && a && b && memcmp(a, b, na * sizeof *a) == 0,
              "token render differs from tokenizing the text (%zu vs %zu ids)", na, nb);
    CHECK(herd_chat_stop_kind(tok, 128009) == HERD_CHAT_STOP_EOT);
    CHECK(herd_chat_stop_kind(tok, 128008) == HERD_CHAT_STOP_EOM);
    CHECK(herd_chat_stop_kind(tok, 128001) == HERD_CHAT_STOP_EOS);
    CHECK(herd_chat_stop_kind(tok, 9906) == HERD_CHAT_STOP_NONE);
    herd_free(a);
    herd_free(b);
    herd_free(pt);
    herd_free(text);
    herd_free(want);
    herd_free(ids);
    test_token_limit(tok);
    herd_tokenizer_free(tok);
}

int main(void)
{
    test_parse();
    test_messages();
    test_request_json();
    test_tokens();
    return check_done();
}
