/*
 * test_server_jsonc.c - the incremental JSON validator behind constrained decoding
 * (src/server/json_constraint.c): table-driven prefixes that must stay valid or be refused
 * (structure, strings with escapes and UTF-8, numbers, literals, nesting, whitespace),
 * whether each is a complete document, the shortest-completion cost, that the cost can
 * always be realised one byte at a time, and forced alternatives (tool names).
 */
#include "check.h"
#include "server/server.h"

#include <string.h> /* strlen */

struct prefix_case {
    const char *in;
    bool valid; /* every byte accepted */
    bool done;  /* a complete top-level object (when valid) */
    int cost;   /* shortest completion when valid; -1: not checked */
};

static const struct prefix_case cases[] = {
    /* top level: only an object */
    {"", true, false, 2},
    {"{", true, false, 1},
    {"{}", true, true, 0},
    {"  \n{ }\n", true, true, 0},
    {"[", false, false, -1},
    {"\"x\"", false, false, -1},
    {"1", false, false, -1},
    {"{}}", false, false, -1},
    {"{},", false, false, -1},
    {"{} x", false, false, -1},
    /* keys, colons, commas */
    {"{\"", true, false, 4},
    {"{\"a", true, false, 4},
    {"{\"a\"", true, false, 3},
    {"{\"a\":", true, false, 2},
    {"{\"a\": 1", true, false, 1},
    {"{\"a\": 1,", true, false, 5},
    {"{\"a\": 1, \"b\": [1, 2.5, -3e+2, 0.0E1]}", true, true, 0},
    {"{a", false, false, -1},
    {"{\"a\" 1", false, false, -1},
    {"{\"a\": 1,}", false, false, -1},
    {"{\"a\": 1 2", false, false, -1},
    {"{,", false, false, -1},
    {"{\"a\":1}", true, true, 0},
    /* arrays and nesting */
    {"{\"a\": [", true, false, 2},
    {"{\"a\": []}", true, true, 0},
    {"{\"a\": [[{}], {\"b\": [null]}]}", true, true, 0},
    {"{\"a\": [1,]", false, false, -1},
    {"{\"a\": [,", false, false, -1},
    {"{\"a\": [}", false, false, -1},
    {"{\"a\": {]", false, false, -1},
    {"{\"a\": [1}", false, false, -1},
    {"{\"a\": {\"b\": {\"c\": [", true, false, 4},
    /* literals */
    {"{\"a\": true, \"b\": false, \"c\": null}", true, true, 0},
    {"{\"a\": tr", true, false, 3},
    {"{\"a\": nul", true, false, 2},
    {"{\"a\": tru}", false, false, -1},
    {"{\"a\": True", false, false, -1},
    {"{\"a\": nulll", false, false, -1},
    /* numbers */
    {"{\"a\": -", true, false, 2},
    {"{\"a\": -0", true, false, 1},
    {"{\"a\": 0.", true, false, 2},
    {"{\"a\": 1e", true, false, 2},
    {"{\"a\": 1e-", true, false, 2},
    {"{\"a\": 12.50e10}", true, true, 0},
    {"{\"a\": 01", false, false, -1},
    {"{\"a\": -a", false, false, -1},
    {"{\"a\": 1.}", false, false, -1},
    {"{\"a\": .5", false, false, -1},
    {"{\"a\": +1", false, false, -1},
    {"{\"a\": 1e}", false, false, -1},
    {"{\"a\": 1.2.3", false, false, -1},
    {"{\"a\": 1e5e", false, false, -1},
    {"{\"a\": 0x1", false, false, -1},
    /* strings: escapes */
    {"{\"a\": \"x\\n\\t\\\"\\\\\\/\\b\\f\\r\"}", true, true, 0},
    {"{\"a\": \"\\", true, false, 3},
    {"{\"a\": \"\\u00e9\"}", true, true, 0},
    {"{\"a\": \"\\u00", true, false, 4},
    {"{\"\\u12", true, false, 6},
    {"{\"a\": \"\\x\"", false, false, -1},
    {"{\"a\": \"\\u12g", false, false, -1},
    {"{\"a\": \"\\U1234", false, false, -1},
    {"{\"a\": \"line\nbreak\"", false, false, -1},
    {"{\"a\": \"tab\there\"", false, false, -1},
    /* strings: \u surrogates in pairs only (fuzz_json_constraint found lone ones, which
     * cJSON and other strict parsers refuse) */
    {"{\"a\": \"\\ud83d\\ude00\"}", true, true, 0},
    {"{\"a\": \"\\uD83D\\uDE00\\uDBFF\\uDFFF\"}", true, true, 0},
    {"{\"a\": \"\\ud83d", true, false, 6 + 2},
    {"{\"a\": \"\\ud8", true, false, 2 + 6 + 2},
    {"{\"a\": \"\\ud83d\\", true, false, 5 + 2},
    {"{\"a\": \"\\ud83d\\u", true, false, 4 + 2},
    {"{\"a\": \"\\ud83d\\ud", true, false, 3 + 2},
    {"{\"\\ud", true, false, 3 + 3 + 1}, /* 3 digits, the quote, ":0", "}" */
    {"{\"a\": \"\\ud83d\"", false, false, -1},        /* lone high */
    {"{\"a\": \"\\ud83dx", false, false, -1},
    {"{\"a\": \"\\ud83d\\n", false, false, -1},
    {"{\"a\": \"\\ud83d\\u0", false, false, -1},
    {"{\"a\": \"\\ud83d\\ud8", false, false, -1},      /* high after high */
    {"{\"a\": \"\\ude", false, false, -1},             /* lone low */
    {"{\"a\": \"x\\uDC00", false, false, -1},
    /* strings: UTF-8 */
    {"{\"caf\xc3\xa9\": \"\xe2\x82\xac \xf0\x9f\x98\x80\"}", true, true, 0},
    {"{\"a\": \"\xe2\x82", true, false, 3},
    {"{\"a\": \"\xf0\x9f", true, false, 4},
    {"{\"a\": \"\x80", false, false, -1},        /* stray continuation */
    {"{\"a\": \"\xc0\xaf", false, false, -1},    /* overlong '/' */
    {"{\"a\": \"\xc3\"", false, false, -1},      /* cut sequence */
    {"{\"a\": \"\xe0\x80\x80", false, false, -1}, /* overlong 3-byte */
    {"{\"a\": \"\xed\xa0\x80", false, false, -1}, /* UTF-16 surrogate */
    {"{\"a\": \"\xf4\x90\x80\x80", false, false, -1}, /* above U+10FFFF */
    {"{\"a\": \"\xf5", false, false, -1},
    {"{\"a\": \"\xff", false, false, -1},
    {"{\"\xed\x9f\xbf\xf4\x8f\xbf\xbf\"", true, false, 3}, /* U+D7FF, U+10FFFF */
    /* whitespace between tokens, but not without end */
    {"{ \"a\" :\t1 ,\r\n \"b\" : [ ] }", true, true, 0},
    {"{\"a\": 1  }  ", true, true, 0},
    {"\r\n\t {}", true, true, 0},
    {"     {", false, false, -1}, /* at most 4 blanks before the object */
};

static bool feed_str(struct srv_jsonc *j, const char *s)
{
    return srv_jsonc_feed(j, s, strlen(s));
}

/* From j, one byte at a time, always a byte that lowers the cost by one: the document
 * must be complete after exactly cost bytes. */
static bool completes_in_cost(struct srv_jsonc j)
{
    int32_t cost = srv_jsonc_cost(&j);
    for (int32_t step = 0; step < cost; step++) {
        bool moved = false;
        for (int c = 1; c < 256 && !moved; c++) {
            struct srv_jsonc t = j;
            char b = (char)c;
            if (srv_jsonc_feed(&t, &b, 1) && srv_jsonc_cost(&t) == cost - step - 1) {
                j = t;
                moved = true;
            }
        }
        if (!moved)
            return false;
    }
    return srv_jsonc_done(&j);
}

static void test_prefixes(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct prefix_case *k = &cases[i];
        struct srv_jsonc j;
        srv_jsonc_init(&j);
        bool ok = feed_str(&j, k->in);
        CHECK_MSG(ok == k->valid, "case %zu '%s': valid %d\n", i, k->in, ok);
        if (!ok || !k->valid)
            continue;
        CHECK_MSG(srv_jsonc_done(&j) == k->done, "case %zu '%s': done\n", i, k->in);
        if (k->cost >= 0)
            CHECK_MSG(srv_jsonc_cost(&j) == k->cost, "case %zu '%s': cost %d, want %d\n", i,
                      k->in, (int)srv_jsonc_cost(&j), k->cost);
        CHECK_MSG(completes_in_cost(j), "case %zu '%s': completes in its cost\n", i, k->in);
    }
}

/* Every prefix of a valid document is valid, byte by byte and in token-sized pieces. */
static void test_every_prefix(void)
{
    const char *doc = "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Z\\u00fcrich\","
                      " \"days\": [1, 2, 3], \"units\": null, \"t\": -1.5e-3, \"ok\": true,"
                      " \"nested\": {\"x\": [{\"y\": \"\xe2\x98\x83\"}]}}}";
    size_t n = strlen(doc);
    for (size_t cut = 0; cut <= n; cut++) {
        struct srv_jsonc j;
        srv_jsonc_init(&j);
        CHECK_MSG(srv_jsonc_feed(&j, doc, cut), "prefix of %zu bytes\n", cut);
        CHECK(srv_jsonc_done(&j) == (cut == n));
        CHECK(srv_jsonc_cost(&j) <= 32);
    }
    struct srv_jsonc j;
    srv_jsonc_init(&j);
    for (size_t at = 0; at < n; at += 3)
        CHECK(srv_jsonc_feed(&j, doc + at, n - at < 3 ? n - at : 3));
    CHECK(srv_jsonc_done(&j));
}

static void test_limits(void)
{
    /* nesting up to the stack size, then refused */
    struct srv_jsonc j;
    srv_jsonc_init(&j);
    bool ok = feed_str(&j, "{\"a\":");
    for (int d = 1; d < SRV_JSONC_MAX_DEPTH; d++)
        ok = ok && feed_str(&j, "[");
    CHECK(ok);
    CHECK(srv_jsonc_cost(&j) == SRV_JSONC_MAX_DEPTH);
    struct srv_jsonc t = j;
    CHECK(!feed_str(&t, "["));
    CHECK(completes_in_cost(j));
    /* a long run of blanks is refused; a comma resets the count */
    srv_jsonc_init(&j);
    ok = feed_str(&j, "{\"a\": 1");
    for (int i = 0; i < 40; i++)
        ok = ok && feed_str(&j, " ");
    CHECK(ok);
    t = j;
    CHECK(!feed_str(&t, " "));
    CHECK(feed_str(&j, ", "));
    /* the state is a value: a refused try leaves the original untouched */
    srv_jsonc_init(&j);
    CHECK(feed_str(&j, "{\"a\": "));
    t = j;
    CHECK(!feed_str(&t, "}"));
    CHECK(feed_str(&j, "2}"));
    CHECK(srv_jsonc_done(&j));
}

/* Forced alternatives: a tool name among several, then the arguments object. */
static void test_alternatives(void)
{
    static char a0[] = "get_weather\", \"parameters\": {";
    static char a1[] = "get_time\", \"parameters\": {";
    static char a2[] = "get\", \"parameters\": {";
    char *const alts[] = {a0, a1, a2};
    struct srv_jsonc j;
    srv_jsonc_init(&j);
    CHECK(feed_str(&j, "{\"name\": \""));
    srv_jsonc_expect(&j, alts, 3);
    /* cheapest: "get" then the rest then "}}" */
    CHECK(srv_jsonc_cost(&j) == (int32_t)strlen(a2) + 2);
    struct srv_jsonc t = j;
    CHECK(!feed_str(&t, "x"));
    t = j;
    CHECK(!feed_str(&t, "getx"));
    t = j;
    CHECK(feed_str(&t, "get_t"));
    CHECK(srv_jsonc_cost(&t) == (int32_t)strlen(a1) - 5 + 2);
    CHECK(!feed_str(&t, "w"));
    t = j;
    CHECK(feed_str(&t, "get_weather\", \"param"));
    t = j;
    CHECK(!feed_str(&t, "get_weather\", \"args\""));
    t = j;
    CHECK(feed_str(&t, "get\", \"parameters\": {\"q\": 1}}"));
    CHECK(srv_jsonc_done(&t));
    t = j;
    CHECK(feed_str(&t, "get_time\", \"parameters\": {}"));
    CHECK(srv_jsonc_cost(&t) == 1);
    CHECK(completes_in_cost(t));
    CHECK(completes_in_cost(j));
}

int main(void)
{
    test_prefixes();
    test_every_prefix();
    test_limits();
    test_alternatives();
    return check_done();
}
