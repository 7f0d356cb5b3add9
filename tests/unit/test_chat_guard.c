/*
 * test_chat_guard.c - Llama Guard 3 answers into verdicts (herd_guard_parse), the format
 * choice, and the render API's error and option paths (the prompt bytes themselves are
 * checked against the official templates by tests/guard/check_golden.py).
 */
#include "check.h"
#include "herd.h"
#include "base/base.h" /* herd_alloc_fail_after, the test hook of the allocation seam */

#include <string.h>

struct case_parse {
    const char *text;
    herd_guard_verdict verdict;
    const char *codes; /* "S1,S10" as parsed, "" when none */
};

static const struct case_parse parse_cases[] = {
    {"safe", HERD_GUARD_SAFE, ""},
    {"\n\nsafe", HERD_GUARD_SAFE, ""},
    {"  Safe  \n", HERD_GUARD_SAFE, ""},
    {"SAFE<|eot_id|>", HERD_GUARD_SAFE, ""},
    {"safe\nS1", HERD_GUARD_SAFE, ""},
    {"unsafe\nS1", HERD_GUARD_UNSAFE, "S1"},
    {"\n\nunsafe\nS1,S10", HERD_GUARD_UNSAFE, "S1,S10"},
    {"unsafe\nS10, S2 ,s3", HERD_GUARD_UNSAFE, "S10,S2,S3"},
    {"unsafe\nS1,S1,S2", HERD_GUARD_UNSAFE, "S1,S2"},
    {"unsafe", HERD_GUARD_UNSAFE, ""},
    {"unsafe\n", HERD_GUARD_UNSAFE, ""},
    {"Unsafe S9.", HERD_GUARD_UNSAFE, "S9"},
    {"unsafe\nS1<|eot_id|>\nS2", HERD_GUARD_UNSAFE, "S1"},
    {"unsafe\nS14;S0,S,Sx,S12345,banana,S13", HERD_GUARD_UNSAFE, "S14,S13"},
    {"", HERD_GUARD_UNPARSEABLE, ""},
    {"   \n ", HERD_GUARD_UNPARSEABLE, ""},
    {"safely", HERD_GUARD_UNPARSEABLE, ""},
    {"unsafeS1", HERD_GUARD_UNPARSEABLE, ""},
    {"I cannot help with that.", HERD_GUARD_UNPARSEABLE, ""},
    {"<|eot_id|>safe", HERD_GUARD_UNPARSEABLE, ""},
    {"\xff\xfe garbage", HERD_GUARD_UNPARSEABLE, ""},
};

static void codes_of(const herd_guard_result *r, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < r->n_categories; i++) {
        if (i)
            strncat(out, ",", cap - strlen(out) - 1);
        strncat(out, r->categories[i].code, cap - strlen(out) - 1);
    }
}

static void test_parse(void)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const struct case_parse *c = &parse_cases[i];
        herd_guard_result *r = NULL;
        herd_status s = herd_guard_parse(c->text, strlen(c->text), NULL, 0, NULL, &r);
        CHECK_MSG(s == HERD_OK && r, "case %zu", i);
        if (!r)
            continue;
        char codes[128];
        codes_of(r, codes, sizeof codes);
        CHECK_MSG(r->verdict == c->verdict, "case %zu '%s': verdict %s", i, c->text,
                  herd_guard_verdict_str(r->verdict));
        CHECK_MSG(!strcmp(codes, c->codes), "case %zu '%s': codes '%s', want '%s'", i, c->text,
                  codes, c->codes);
        CHECK(!strcmp(r->raw, c->text));
        herd_guard_result_free(r);
    }
}

static void test_names(void)
{
    herd_guard_result *r = NULL;
    const char *out = "unsafe\nS1,S14,S11,S99";
    CHECK(herd_guard_parse(out, strlen(out), NULL, 0, NULL, &r) == HERD_OK);
    CHECK(r->n_categories == 4);
    CHECK(!strcmp(r->categories[0].name, "Violent Crimes"));
    CHECK(!strcmp(r->categories[1].name, "Code Interpreter Abuse"));
    CHECK(!strcmp(r->categories[2].name, "Self-Harm"));
    CHECK(r->categories[3].name == NULL);
    herd_guard_result_free(r);
    /* custom categories name the codes: the description's first line without its '.' */
    const char *req = "{\"messages\": [], \"categories\": {\"S1\": \"  My custom category.\\n"
                      "Should not\\n- x\", \"S2\": \"Pizza\"}}";
    out = "unsafe\nS2,S1,S3";
    CHECK(herd_guard_parse(out, strlen(out), req, strlen(req), NULL, &r) == HERD_OK);
    CHECK(r->n_categories == 3);
    CHECK(!strcmp(r->categories[0].name, "Pizza"));
    CHECK(!strcmp(r->categories[1].name, "My custom category"));
    CHECK(r->categories[2].name == NULL);
    herd_guard_result_free(r);
    CHECK(herd_guard_parse("safe", 4, "{", 1, NULL, &r) != HERD_OK && r == NULL);
}

static void test_format_for(void)
{
    herd_model_info in;
    memset(&in, 0, sizeof in);
    CHECK(herd_guard_format_for(NULL) == HERD_GUARD_FORMAT_8B);
    in.dim = 4096;
    in.n_layers = 32;
    CHECK(herd_guard_format_for(&in) == HERD_GUARD_FORMAT_8B);
    in.dim = 2048;
    in.n_layers = 12;
    CHECK(herd_guard_format_for(&in) == HERD_GUARD_FORMAT_1B);
    in.dim = 64;
    in.name = "Llama Guard 3 1B";
    CHECK(herd_guard_format_for(&in) == HERD_GUARD_FORMAT_1B);
    in.name = NULL;
    in.chat_template = "... S14: Code Interpreter Abuse. ...";
    CHECK(herd_guard_format_for(&in) == HERD_GUARD_FORMAT_8B);
    in.chat_template = "{%- if key not in excluded_category_keys -%}";
    CHECK(herd_guard_format_for(&in) == HERD_GUARD_FORMAT_1B);
}

static void test_render_paths(void)
{
    herd_guard_options o = herd_guard_default_options();
    char *p = NULL;
    size_t n = 0;
    const char *ok = "[{\"role\": \"user\", \"content\": \"hi\"}]";
    CHECK(herd_guard_render(ok, strlen(ok), NULL, &p, &n) == HERD_OK && p && n == strlen(p));
    CHECK(p && p[0] == ' ' && strstr(p, "S14: Code Interpreter Abuse.\n"));
    herd_free(p);
    static const char *const bad[] = {
        "", "nope", "{\"messages\": 1}", "{}", "[1]",
        "{\"messages\": [], \"categories\": [\"S1\"]}",
        "{\"messages\": [], \"categories\": {\"S1\": 1}}",
        "{\"messages\": [], \"excluded_category_keys\": \"S1\"}",
        "[{\"role\": \"assistant\", \"content\": \"x\"}]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = (char *)1;
        CHECK_MSG(herd_guard_render(bad[i], strlen(bad[i]), &o, &p, &n) != HERD_OK && !p,
                  "bad case %zu", i);
        CHECK(herd_last_error()[0] != '\0');
    }
    /* role options */
    o.role = HERD_GUARD_ROLE_AGENT;
    CHECK(herd_guard_render(ok, strlen(ok), &o, &p, &n) != HERD_OK);
    o.role = HERD_GUARD_ROLE_USER;
    const char *none = "[{\"role\": \"system\", \"content\": \"x\"}]";
    CHECK(herd_guard_render(none, strlen(none), &o, &p, &n) != HERD_OK);
    /* 1B: image parts are refused (text models only) */
    o = herd_guard_default_options();
    o.format = HERD_GUARD_FORMAT_1B;
    const char *img = "[{\"role\": \"user\", \"content\": [{\"type\": \"image\"}]}]";
    CHECK(herd_guard_render(img, strlen(img), &o, &p, &n) == HERD_ERR_UNSUPPORTED);
    /* categories option: only those codes are listed */
    o.categories = "S2,S10";
    CHECK(herd_guard_render(ok, strlen(ok), &o, &p, &n) == HERD_OK);
    CHECK(p && strstr(p, "<BEGIN UNSAFE CONTENT CATEGORIES>\nS2: Non-Violent Crimes.\nS10: "
                         "Hate.\n<END UNSAFE CONTENT CATEGORIES>"));
    herd_free(p);
    /* allocation failures anywhere leave no result behind */
    for (long k = 1; k < 200; k++) {
        herd_alloc_fail_after(k);
        p = NULL;
        herd_status s = herd_guard_render(ok, strlen(ok), &o, &p, &n);
        herd_alloc_fail_after(-1);
        CHECK(s == HERD_OK ? p != NULL : p == NULL);
        herd_free(p);
        herd_guard_result *r = NULL;
        herd_alloc_fail_after(k);
        s = herd_guard_parse("unsafe\nS1,S2", 12, NULL, 0, NULL, &r);
        herd_alloc_fail_after(-1);
        CHECK(s == HERD_OK ? r != NULL : r == NULL);
        herd_guard_result_free(r);
    }
}

int main(void)
{
    test_parse();
    test_names();
    test_format_for();
    test_render_paths();
    return check_done();
}
