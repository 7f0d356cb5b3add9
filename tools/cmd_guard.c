/*
 * cmd_guard.c - herd guard: a conversation (OpenAI messages JSON) on stdin, a Llama Guard 3
 * verdict on stdout as one JSON line:
 *
 *   {"verdict": "safe"|"unsafe"|"unparseable",
 *    "categories": [{"code": "S1", "name": "Violent Crimes"}], "raw": "<the model's text>"}
 *
 *   herd guard -m GUARD_MODEL [--categories S1,..] [--role user|agent] [--format 8b|1b]
 *              [--normalize] [--max-tokens N] [-t N] [-c N] < conversation.json
 *   herd guard --render [--format 8b|1b | -m MODEL] [--ids] ...   (the prompt only)
 *
 * stdin holds {"messages": [...]} (with, optionally, the template's "categories" and
 * "excluded_category_keys") or a bare message list. The format is the model's
 * (herd_guard_format_for) unless --format says. Decoding is greedy (herd_guard_classify).
 * Exit status 0 for every verdict: the verdict is the result, not an error.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: herd guard -m GUARD_MODEL [options] < conversation.json\n"
    "       herd guard --render [--format 8b|1b | -m MODEL] [--ids] < conversation.json\n"
    "Classifies a conversation ({\"messages\": [...]} or a list of messages) with a Llama\n"
    "Guard 3 model and prints {\"verdict\", \"categories\": [{\"code\", \"name\"}], \"raw\"}.\n"
    "  -m, --model M      the Llama Guard 3 model (GGUF file or Hugging Face folder)\n"
    "  --categories LIST  only these default categories, e.g. S1,S9,S10 (others excluded)\n"
    "  --role R           user: check the last user message (later ones are left out);\n"
    "                     agent: check the last message, which must be the assistant's\n"
    "                     (default: the last message, whoever wrote it)\n"
    "  --format F         8b (Llama-Guard-3-8B template) or 1b (Llama-Guard-3-1B template);\n"
    "                     default: the model's\n"
    "  --normalize        leave out system/tool messages, join consecutive messages of one\n"
    "                     role (what herd serve does with a chat request)\n"
    "  --max-tokens N     most tokens the guard generates (default 10)\n"
    "  --render           print the prompt instead of classifying (no model needed)\n"
    "  --ids              with --render: the prompt as token ids (needs -m or --tokenizer)\n"
    "  --tokenizer FILE   tokenizer for --ids without a model\n"
    CLI_RUN_HELP("min(model, 8192)", "f16");

/* A JSON string of bytes (control characters escaped; the bytes are UTF-8 from the
 * detokenizer, which replaces broken sequences). */
static void put_json_string(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            printf("\\n");
        else if (c == '\t')
            printf("\\t");
        else if (c == '\r')
            printf("\\r");
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_result(const herd_guard_result *r)
{
    printf("{\"verdict\": \"%s\", \"categories\": [", herd_guard_verdict_str(r->verdict));
    for (size_t i = 0; i < r->n_categories; i++) {
        printf("%s{\"code\": ", i ? ", " : "");
        put_json_string(r->categories[i].code, strlen(r->categories[i].code));
        printf(", \"name\": ");
        if (r->categories[i].name)
            put_json_string(r->categories[i].name, strlen(r->categories[i].name));
        else
            printf("null");
        printf("}");
    }
    printf("], \"raw\": ");
    put_json_string(r->raw, strlen(r->raw));
    printf("}\n");
}

struct guard_args {
    const char *model, *tokenizer, *format;
    int render, ids;
    herd_guard_options o;
    struct cli_run_opts run;
};

static int parse_args(struct guard_args *a, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = NULL;
        int r = cli_run_option(&a->run, argc, argv, &i);
        if (r < 0)
            return 1;
        if (r == 0)
            continue;
        if (!strcmp(s, "-m") || !strcmp(s, "--model")) {
            if (cli_value(argc, argv, &i, &a->model))
                return 1;
        } else if (!strcmp(s, "--tokenizer")) {
            if (cli_value(argc, argv, &i, &a->tokenizer))
                return 1;
        } else if (!strcmp(s, "--categories")) {
            if (cli_value(argc, argv, &i, &a->o.categories))
                return 1;
        } else if (!strcmp(s, "--format")) {
            if (cli_value(argc, argv, &i, &a->format))
                return 1;
            if (strcmp(a->format, "8b") && strcmp(a->format, "1b"))
                return cli_fail("--format: expected 8b or 1b, got '%s'", a->format);
        } else if (!strcmp(s, "--role")) {
            if (cli_value(argc, argv, &i, &v))
                return 1;
            if (!strcmp(v, "user"))
                a->o.role = HERD_GUARD_ROLE_USER;
            else if (!strcmp(v, "agent"))
                a->o.role = HERD_GUARD_ROLE_AGENT;
            else
                return cli_fail("--role: expected user or agent, got '%s'", v);
        } else if (!strcmp(s, "--max-tokens")) {
            int n;
            if (cli_value(argc, argv, &i, &v) || cli_parse_int(v, 1, 64, &n))
                return v ? cli_fail("--max-tokens: expected 1 to 64") : 1;
            a->o.max_tokens = n;
        } else if (!strcmp(s, "--normalize")) {
            a->o.normalize = true;
        } else if (!strcmp(s, "--render")) {
            a->render = 1;
        } else if (!strcmp(s, "--ids")) {
            a->ids = 1;
        } else {
            return cli_fail("guard: unknown option '%s'", s);
        }
    }
    return 0;
}

static int render_only(struct guard_args *a, const herd_model *m, const char *req, size_t len)
{
    herd_tokenizer *own = NULL;
    const herd_tokenizer *tok = m ? herd_model_tokenizer(m) : NULL;
    int rc = 1;
    if (a->ids && !tok) {
        if (!a->tokenizer)
            return cli_fail("guard: --ids needs -m MODEL or --tokenizer FILE");
        if (herd_tokenizer_load(a->tokenizer, &own) != HERD_OK)
            return cli_fail_status(HERD_ERR_IO);
        tok = own;
    }
    if (a->ids) {
        int32_t *ids = NULL;
        size_t n = 0;
        herd_status s = herd_guard_render_tokens(tok, req, len, &a->o, &ids, &n);
        if (s == HERD_OK) {
            printf("[");
            for (size_t i = 0; i < n; i++)
                printf("%s%d", i ? ", " : "", ids[i]);
            printf("]\n");
            rc = 0;
        } else {
            cli_fail_status(s);
        }
        herd_free(ids);
    } else {
        char *prompt = NULL;
        size_t n = 0;
        herd_status s = herd_guard_render(req, len, &a->o, &prompt, &n);
        if (s == HERD_OK) {
            fwrite(prompt, 1, n, stdout);
            rc = 0;
        } else {
            cli_fail_status(s);
        }
        herd_free(prompt);
    }
    herd_tokenizer_free(own);
    return rc;
}

int cmd_guard(int argc, char **argv)
{
    struct guard_args a;
    memset(&a, 0, sizeof a);
    a.o = herd_guard_default_options();
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i]))
            return cli_help(usage);
    if (parse_args(&a, argc, argv))
        return 1;
    if (!a.render && !a.model)
        return cli_fail("guard: -m GUARD_MODEL is required (or --render for the prompt only)");
    herd_model *m = NULL;
    herd_context *c = NULL;
    herd_guard_result *r = NULL;
    char *req = NULL;
    size_t len = 0;
    int rc = 1;
    if (cli_read_stdin("guard", &req, &len))
        return 1;
    if (a.model) {
        herd_model_params mp = {.n_threads = a.run.threads, .device = a.run.device};
        const char *path = cli_resolve_model(a.model);
        if (!path || cli_load_model(path, &mp, &m))
            goto done;
        a.o.format = herd_guard_format_for(herd_model_get_info(m));
    }
    if (a.format)
        a.o.format = strcmp(a.format, "1b") ? HERD_GUARD_FORMAT_8B : HERD_GUARD_FORMAT_1B;
    if (a.render) {
        rc = render_only(&a, m, req, len);
        goto done;
    }
    herd_context_params cp = herd_context_default_params();
    const herd_model_info *in = herd_model_get_info(m);
    cp.n_ctx = a.run.ctx > 0 ? a.run.ctx
               : in->max_seq_len > 0 && in->max_seq_len < 8192 ? in->max_seq_len : 8192;
    cp.n_threads = a.run.threads;
    if (a.run.kv_set)
        cp.kv_type = a.run.kv_type;
    herd_status s = herd_context_new(m, &cp, &c);
    if (s == HERD_OK)
        s = herd_guard_classify(m, c, req, len, &a.o, &r);
    if (s != HERD_OK) {
        cli_fail_status(s);
        goto done;
    }
    print_result(r);
    rc = 0;
done:
    herd_guard_result_free(r);
    herd_context_free(c);
    herd_model_free(m);
    free(req);
    return rc;
}
