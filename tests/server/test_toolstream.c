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

int main(void)
{
    test_toolstream();
    test_strict_json();
    return check_done();
}
