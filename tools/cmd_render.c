/*
 * cmd_render.c - herd render: an OpenAI chat request on stdin, the exact prompt text of the
 * official Llama Instruct chat template on stdout (as transformers' apply_chat_template
 * renders it). The request may carry "tools", "add_generation_prompt" (default true) and
 * "chat_template_kwargs" (date_string, builtin_tools, tools_in_user_message).
 *
 *   herd render [-m MODEL | --template 3.1|3.2|chatml] [--date "26 Jul 2024" | --today] [--ids]
 *
 * The template is 3.1 unless --template says otherwise or -m names a Llama 3.2 model (its
 * name, or the 1B/3B shape); the choice is reported on stderr. --ids prints the prompt as
 * the engine feeds it (one JSON array of token ids; needs -m or --tokenizer).
 * --template guard-8b|guard-1b, or -m naming a model whose file carries a Llama Guard
 * template, renders the Llama Guard 3 prompt instead (cmd_guard.c).
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int print_ids(const herd_tokenizer *tok, const char *req, size_t len,
                     const herd_chat_options *opt)
{
    int32_t *ids = NULL;
    size_t n = 0;
    herd_status s = herd_chat_render_tokens(tok, req, len, opt, &ids, &n);
    if (s != HERD_OK)
        return cli_fail_status(s);
    printf("[");
    for (size_t i = 0; i < n; i++)
        printf("%s%d", i ? ", " : "", ids[i]);
    printf("]\n");
    herd_free(ids);
    return 0;
}

/* --template guard-8b|guard-1b: the Llama Guard 3 prompt, which `herd guard --render`
 * makes; the other options (-m, --ids, --tokenizer) mean the same there. */
static int render_guard(int argc, char **argv, const char *format)
{
    char **av = malloc(((size_t)argc + 3) * sizeof *av);
    if (!av)
        return cli_fail("out of memory");
    int n = 0;
    av[n++] = "guard";
    av[n++] = "--render";
    av[n++] = "--format";
    av[n++] = (char *)format;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--template")) {
            i++;
            continue;
        }
        av[n++] = argv[i];
    }
    int rc = cmd_guard(n, av);
    free(av);
    return rc;
}

int cmd_render(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--template") &&
            (!strcmp(argv[i + 1], "guard-8b") || !strcmp(argv[i + 1], "guard-1b")))
            return render_guard(argc, argv, argv[i + 1][6] == '8' ? "8b" : "1b");

    const char *model = NULL, *tmpl = NULL, *tokenizer = NULL;
    herd_chat_options opt = herd_chat_default_options();
    int want_ids = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) {
            if (cli_value(argc, argv, &i, &model))
                return 1;
        } else if (strcmp(a, "--template") == 0) {
            if (cli_value(argc, argv, &i, &tmpl))
                return 1;
        } else if (strcmp(a, "--tokenizer") == 0) {
            if (cli_value(argc, argv, &i, &tokenizer))
                return 1;
        } else if (strcmp(a, "--date") == 0) {
            if (cli_value(argc, argv, &i, &opt.date_string))
                return 1;
        } else if (strcmp(a, "--today") == 0) {
            opt.today = true;
        } else if (strcmp(a, "--ids") == 0) {
            want_ids = 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            printf("usage: herd render [-m MODEL | --template 3.1|3.2|chatml] [--date D | --today] "
                   "[--ids [--tokenizer FILE]] < request.json\n"
                   "       herd render --template guard-8b|guard-1b [--ids ...]: the Llama "
                   "Guard 3 prompt (= herd guard --render)\n");
            return 0;
        } else {
            return cli_fail("render: unknown option '%s'", a);
        }
    }
    if (tmpl) {
        if (strcmp(tmpl, "3.1") == 0)
            opt.tmpl = HERD_CHAT_LLAMA31;
        else if (strcmp(tmpl, "3.2") == 0)
            opt.tmpl = HERD_CHAT_LLAMA32;
        else if (strcmp(tmpl, "chatml") == 0)
            opt.tmpl = HERD_CHAT_CHATML;
        else
            return cli_fail("--template: expected 3.1, 3.2 or chatml, got '%s'", tmpl);
    }
    if (want_ids && !model && !tokenizer)
        return cli_fail("render: --ids needs -m MODEL or --tokenizer FILE");

    herd_model *m = NULL;
    herd_tokenizer *own_tok = NULL;
    const herd_tokenizer *tok = NULL;
    char *req = NULL, *prompt = NULL;
    size_t req_len = 0, prompt_len = 0;
    int rc = 1;
    herd_status s;
    if (model) {
        herd_model_params mp = {.n_threads = 0};
        s = herd_model_load(model, &mp, &m);
        if (s != HERD_OK) {
            cli_fail_status(s);
            goto done;
        }
        tok = herd_model_tokenizer(m);
        if (!tmpl && herd_guard_is_template(herd_model_get_info(m))) {
            /* a Llama Guard model: its own format, as herd guard --render gives it */
            const char *f = herd_guard_format_for(herd_model_get_info(m)) ==
                                    HERD_GUARD_FORMAT_1B ? "1b" : "8b";
            herd_model_free(m);
            return render_guard(argc, argv, f);
        }
        if (!tmpl) {
            const herd_model_info *in = herd_model_get_info(m);
            herd_chat_options mo = herd_chat_options_for(in);
            opt.tmpl = mo.tmpl;
            opt.default_system = mo.default_system;
            fprintf(stderr, "herd: render: %s template for %s (%s)\n",
                    cli_template_name(opt.tmpl), in->name ? in->name : model,
                    opt.tmpl == HERD_CHAT_CHATML    ? "the file's chat_template is ChatML"
                    : opt.tmpl == HERD_CHAT_LLAMA32 ? "3.2 name or 1B/3B shape"
                                                    : "not a 3.2 name or shape");
        }
    }
    if (tokenizer) {
        s = herd_tokenizer_load(tokenizer, &own_tok);
        if (s != HERD_OK) {
            cli_fail_status(s);
            goto done;
        }
        tok = own_tok;
    }
    if (cli_read_stdin("render", &req, &req_len))
        goto done;
    if (want_ids) {
        if (!tok) {
            cli_fail("render: %s has no tokenizer", model);
            goto done;
        }
        rc = print_ids(tok, req, req_len, &opt);
        goto done;
    }
    s = herd_chat_render(req, req_len, &opt, &prompt, &prompt_len);
    if (s != HERD_OK) {
        cli_fail_status(s);
        goto done;
    }
    if (fwrite(prompt, 1, prompt_len, stdout) != prompt_len || fflush(stdout) != 0) {
        cli_fail("render: cannot write stdout");
        goto done;
    }
    rc = 0;
done:
    herd_free(prompt);
    free(req);
    herd_tokenizer_free(own_tok);
    herd_model_free(m);
    return rc;
}
