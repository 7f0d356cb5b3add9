/*
 * test_toolstream.c - the tool-call stream (toolstream.c) and strict JSON (srv_json_parse)
 * without a model.
 *
 * Every text is fed whole, byte by byte, and in 3-byte pieces. For each, the deltas merged
 * by index (names and arguments concatenated, as OpenAI clients do) must equal
 * srv_parse_tool_calls on the whole text (the non-stream answer), with ids equal too, and the
 * content concatenated must equal its content. Early: a call's name must go out before its
 * text closes, JSON arguments in more than one piece when written in json.dumps form, and
 * plain content before the end.
 */
#include "server/server.h"
#include "check.h"

#include <stdio.h>

struct ts_case {
    const char *text;
    int n_calls;        /* the non-stream answer's calls */
    bool name_early;    /* byte by byte: call 0's name goes out before the text ends */
    bool args_pieces;   /* byte by byte: call 0's arguments in > 1 piece before the end */
    bool content_early; /* byte by byte: content goes out before the end */
    bool exact;         /* stream == non-stream (false only for calls followed by text) */
};

static const struct ts_case ts_cases[] = {
    {"{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"n\": 3, "
     "\"x\": 1.5, \"ok\": true, \"l\": [1, 2], \"o\": {\"k\": null}}}",
     1, true, true, false, true},
    {"{\"name\":\"f\",\"parameters\":{\"a\":1}}", 1, true, true, false, true},
    {"  {\"name\": \"f\", \"parameters\": {\"a\": 1}}; {\"name\": \"g\", \"parameters\": {}}\n",
     2, true, true, false, true},
    {"{\"name\": \"f\", \"parameters\": {\"s\": \"a\\/b\", \"u\": \"\\u00e9\", \"e\": 1e5, "
     "\"z\": 1.50, \"m\": -0, \"q\": \"x\\\"y\\n\"}}",
     1, true, true, false, true},
    {"{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}", 1, true, false, false, true},
    {"{\"parameters\": {\"a\": 1}, \"name\": \"f\"}; {\"name\": \"g\", \"parameters\": {}}",
     2, true, false, false, true},
    {"[get_weather(city=\"Paris\", days=[1, 2]), get_time(tz='UTC')]", 2, true, false, false,
     true},
    {"[ f() ]", 1, true, false, false, true},
    {"<|python_tag|>brave_search.call(query=\"x\")", 1, false, false, false, true},
    {"<|python_tag|>print(1)", 1, false, false, false, true},
    {"Hello world, this is plain text.", 0, false, false, true, true},
    {"  \n", 0, false, false, false, true},
    {"[1] is a citation, not a call.", 0, false, false, true, true},
    {"{\"a\": 1}", 0, false, false, false, true},
    {"{not json at all", 0, false, false, false, true},
    {"<|python", 0, false, false, false, true},
    {"Sure: {\"name\": \"f\", \"parameters\": {}}", 0, false, false, true, true},
    {"{\"name\": \"f\", \"parameters\": {\"a\": 1}} and then text", 0, true, true, false,
     false},
    {"{\"name\": \"f\", \"parameters\": {\"k\": \"caf\xc3\xa9 \xe2\x82\xac\"}}", 1, true, true,
     false, true},
};

struct merged {
    char name[8][64];
    struct herd_buf args[8];
    char id[8][96];
    int n;
    struct herd_buf content;
    int args_pieces0;     /* argument deltas of call 0 */
    bool name0_before_end;
    bool content_before_end;
};

static void merge(struct merged *m, cJSON *deltas, bool at_end)
{
    const cJSON *d;
    cJSON_ArrayForEach(d, deltas) {
        int i = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(d, "index"));
        if (i < 0 || i >= 8)
            continue;
        if (i + 1 > m->n)
            m->n = i + 1;
        const cJSON *fn = cJSON_GetObjectItem(d, "function");
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(fn, "name"));
        const char *args = cJSON_GetStringValue(cJSON_GetObjectItem(fn, "arguments"));
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(d, "id"));
        if (name) {
            snprintf(m->name[i] + strlen(m->name[i]), sizeof m->name[i] - strlen(m->name[i]),
                     "%s", name);
            if (i == 0 && !at_end)
                m->name0_before_end = true;
        }
        if (id)
            snprintf(m->id[i], sizeof m->id[i], "%s", id);
        if (args && args[0]) {
            buf_puts(&m->args[i], args);
            if (i == 0 && !at_end)
                m->args_pieces0++;
        }
    }
    cJSON_Delete(deltas);
}

static void run_case(const struct ts_case *tc, size_t step)
{
    const char *t = tc->text;
    size_t n = strlen(t);
    struct merged m;
    memset(&m, 0, sizeof m);
    for (int i = 0; i < 8; i++)
        buf_init(&m.args[i], 0);
    buf_init(&m.content, 0);
    struct srv_toolstream *ts = NULL;
    CHECK(srv_toolstream_new("chatcmpl-7", &ts) == HERD_OK);
    for (size_t at = 0; ts && at < n; at += step) {
        size_t k = at + step > n ? n - at : step;
        cJSON *deltas = NULL;
        size_t before = m.content.len;
        CHECK(srv_toolstream_feed(ts, t + at, k, &m.content, &deltas) == HERD_OK);
        if (m.content.len > before && at + k < n)
            m.content_before_end = true;
        merge(&m, deltas, at + k >= n);
    }
    cJSON *deltas = NULL;
    bool has_calls = false;
    CHECK(ts && srv_toolstream_finish(ts, &m.content, &deltas, &has_calls) == HERD_OK);
    merge(&m, deltas, true);
    srv_toolstream_free(ts);

    char *content = NULL;
    cJSON *calls = srv_parse_tool_calls(t, n, "chatcmpl-7", &content);
    int want = calls ? cJSON_GetArraySize(calls) : 0;
    CHECK_MSG(want == tc->n_calls, "case %s: the parser gives %d calls", t, want);
    if (tc->exact) {
        bool ok = has_calls == (calls != NULL) && m.n == want;
        for (int i = 0; ok && i < want; i++) {
            const cJSON *c = cJSON_GetArrayItem(calls, i);
            const cJSON *fn = cJSON_GetObjectItem(c, "function");
            ok = !strcmp(m.name[i], cJSON_GetStringValue(cJSON_GetObjectItem(fn, "name"))) &&
                 !strcmp(m.args[i].data ? m.args[i].data : "",
                         cJSON_GetStringValue(cJSON_GetObjectItem(fn, "arguments"))) &&
                 !strcmp(m.id[i], cJSON_GetStringValue(cJSON_GetObjectItem(c, "id")));
        }
        const char *want_content = calls ? "" : t;
        ok = ok && !strcmp(m.content.data ? m.content.data : "", want_content);
        CHECK_MSG(ok, "case %s (step %zu): stream %d calls [%s](%s) content '%s'",
                    t, step, m.n, m.name[0], m.args[0].data ? m.args[0].data : "",
                    m.content.data ? m.content.data : "");
    } else {
        /* calls then text: the calls went out, then everything as content */
        CHECK(!has_calls && m.n == 1 && !strcmp(m.content.data, t));
    }
    if (step == 1) {
        CHECK_MSG(m.name0_before_end == tc->name_early, "case %s: name early %d", t, m.name0_before_end);
        CHECK_MSG((m.args_pieces0 > 1) == tc->args_pieces, "case %s: %d argument pieces before the end", t,
                    m.args_pieces0);
        CHECK_MSG(m.content_before_end == tc->content_early, "case %s: content early %d", t, m.content_before_end);
    }
    cJSON_Delete(calls);
    herd_free(content);
    for (int i = 0; i < 8; i++)
        buf_free(&m.args[i]);
    buf_free(&m.content);
}

static void test_toolstream(void)
{
    for (size_t i = 0; i < sizeof ts_cases / sizeof ts_cases[0]; i++) {
        run_case(&ts_cases[i], (size_t)-1 / 2);
        run_case(&ts_cases[i], 1);
        run_case(&ts_cases[i], 3);
    }
}

static void test_strict_json(void)
{
    struct srv_error e;
    static const char *const bad[] = {"{} x", "{}}", "{} {}", "[]", "1", "{\"a\":1}\n,"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *o = srv_json_parse(bad[i], strlen(bad[i]), NULL, &e);
        CHECK_MSG(!o && e.http == 400, "accepted '%s'", bad[i]);
        cJSON_Delete(o);
    }
    const char *dup = "{\"a\":1,\"b\":{\"x\":1,\"x\":[2],\"x\":3},\"a\":{\"c\":true}} \r\n";
    cJSON *o = srv_json_parse(dup, strlen(dup), NULL, &e);
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    /* Python: {"a": {"c": true}, "b": {"x": 3}}: last value, first place */
    CHECK(s && !strcmp(s, "{\"a\":{\"c\":true},\"b\":{\"x\":3}}"));
    cJSON_free(s);
    cJSON_Delete(o);
    bool nul = false;
    const char *with_nul = "{\"a\":\"x\\u0000y\",\"b\":\"\\\\u0000\"}";
    o = srv_json_parse(with_nul, strlen(with_nul), &nul, &e);
    CHECK(o && nul);
    cJSON_Delete(o);
    const char *escaped = "{\"b\":\"\\\\u0000\"}"; /* a backslash, then the text u0000 */
    o = srv_json_parse(escaped, strlen(escaped), &nul, &e);
    CHECK(o && !nul);
    cJSON_Delete(o);
}

/* JSON Schema held byte by byte (json_schema.c + json_constraint.c): valid documents are
 * accepted and end with cost 0, invalid ones refused at some byte; the cost never claims
 * more bytes than a valid document still has (it is the shortest completion). */
struct schema_case {
    const char *schema;
    const char *doc;
    bool ok;
};

static const struct schema_case schema_cases[] = {
#define S1 "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}," \
           "\"b\":{\"enum\":[\"x\",1,12]}},\"required\":[\"a\"]}"
    {S1, "{\"a\":1}", true},
    {S1, "{\"a\": -3, \"b\": 12}", true},
    {S1, "{\"b\":\"x\",\"a\":0}", true},
    {S1, "{\"b\":1,\"a\":0}", true},
    {S1, "{}", false},
    {S1, "{\"a\":1.5}", false},
    {S1, "{\"a\":\"s\"}", false},
    {S1, "{\"c\":1}", false},
    {S1, "{\"a\":1,\"a\":2}", false},
    {S1, "{\"a\":1,\"b\":13}", false},
    {S1, "{\"a\":1,\"b\":\"y\"}", false},
#define S2 "{\"properties\":{\"l\":{\"type\":\"array\",\"items\":{\"type\":\"boolean\"}," \
           "\"minItems\":1,\"maxItems\":2}},\"required\":[\"l\"]}"
    {S2, "{\"l\":[true]}", true},
    {S2, "{\"l\":[true, false]}", true},
    {S2, "{\"l\":[]}", false},
    {S2, "{\"l\":[true,true,true]}", false},
    {S2, "{\"l\":[1]}", false},
#define S3 "{\"properties\":{\"s\":{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}," \
           "\"d\":{\"type\":\"string\",\"format\":\"date\"}}}"
    {S3, "{\"s\":\"ab\"}", true},
    {S3, "{\"s\":\"\u00e9\u00e9\"}", true},
    {S3, "{\"d\":\"2024-05-17\"}", true},
    {S3, "{}", true},
    {S3, "{\"s\":\"a\"}", false},
    {S3, "{\"s\":\"abcd\"}", false},
    {S3, "{\"d\":\"2024-5-17\"}", false},
    {S3, "{\"d\":\"2024-13-01\"}", false},
#define S4 "{\"properties\":{\"o\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"null\"}]}}}"
    {S4, "{\"o\":null}", true},
    {S4, "{\"o\":\"x\"}", true},
    {S4, "{\"o\":1}", false},
#define S5 "{\"$defs\":{\"N\":{\"type\":\"object\",\"properties\":{\"next\":{\"anyOf\":" \
           "[{\"$ref\":\"#/$defs/N\"},{\"type\":\"null\"}]}},\"required\":[\"next\"]}}," \
           "\"$ref\":\"#/$defs/N\"}"
    {S5, "{\"next\":{\"next\":null}}", true},
    {S5, "{\"next\":{}}", false},
    {S5, "{}", false},
#define S6 "{\"type\":\"object\"}"
    {S6, "{\"any\":[1,{\"x\":null}],\"k\":\"v\"}", true},
    {S6, "[1]", false},
};

static void test_schema(void)
{
    for (size_t i = 0; i < sizeof schema_cases / sizeof schema_cases[0]; i++) {
        const struct schema_case *sc = &schema_cases[i];
        cJSON *js = cJSON_Parse(sc->schema);
        struct srv_schema *s = NULL;
        struct srv_error e;
        bool compiled = js && srv_schema_compile(js, "response_format", &s, &e);
        CHECK_MSG(compiled, "schema %s: %s", sc->schema, compiled ? "" : e.message);
        cJSON_Delete(js);
        if (!compiled)
            continue;
        struct srv_jsonc j;
        srv_jsonc_init(&j);
        srv_jsonc_schema(&j, s);
        size_t n = strlen(sc->doc);
        bool ok = true, cost_ok = true;
        for (size_t k = 0; ok && k < n; k++) {
            ok = srv_jsonc_feed(&j, sc->doc + k, 1);
            if (ok && sc->ok && srv_jsonc_cost(&j) > (int32_t)(n - k - 1) + 0 &&
                strchr(" ", sc->doc[k]) == NULL && !strchr(sc->doc + k + 1, ' '))
                cost_ok = false; /* more than the (blank-free) rest of a valid document */
        }
        ok = ok && srv_jsonc_done(&j) && srv_jsonc_cost(&j) == 0;
        CHECK_MSG(ok == sc->ok, "schema %s doc %s: %s", sc->schema, sc->doc,
                  ok ? "accepted" : "refused");
        CHECK_MSG(cost_ok, "schema %s doc %s: the cost overshoots", sc->schema, sc->doc);
        srv_schema_free(s);
    }
    static const char *const refused[] = {
        "{\"type\":\"object\",\"properties\":{\"a\":{\"pattern\":\"x\"}}}",
        "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":1}}}",
        "{\"type\":\"string\"}",
        "{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#/nowhere\"}}}",
        "{\"type\":\"object\",\"required\":[\"a\"],\"properties\":{\"a\":{\"$ref\":\"#\"}}}",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        cJSON *js = cJSON_Parse(refused[i]);
        struct srv_schema *s = NULL;
        struct srv_error e;
        bool compiled = srv_schema_compile(js, "response_format", &s, &e);
        CHECK_MSG(!compiled && e.http == 400 && !strcmp(e.param, "response_format"),
                  "schema %s compiled", refused[i]);
        srv_schema_free(s);
        cJSON_Delete(js);
    }
}

int main(void)
{
    test_toolstream();
    test_strict_json();
    test_schema();
    return check_done();
}
