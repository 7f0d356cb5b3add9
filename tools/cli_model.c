/*
 * cli_model.c - what the model sub-commands (generate, logits, run) share: the common
 * options (-m, -p, --tokens, --no-bos, and cli_run_option's -t, --ctx, --kv-type), loading,
 * and turning the prompt into ids.
 */
#include "cli_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads "@FILE" (comma-separated ids, whitespace allowed) or the ids themselves. */
static int parse_tokens_arg(const char *arg, int32_t **ids, size_t *n)
{
    if (arg[0] != '@')
        return cli_parse_ids(arg, ids, n);
    FILE *f = fopen(arg + 1, "rb");
    if (!f)
        return cli_fail("--tokens %s: cannot open the file", arg);
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    int c;
    while (text && (c = fgetc(f)) != EOF) {
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (len + 1 >= cap) {
            char *t = realloc(text, cap * 2);
            if (!t) {
                free(text);
                text = NULL;
                break;
            }
            text = t;
            cap *= 2;
        }
        text[len++] = (char)c;
    }
    fclose(f);
    if (!text)
        return cli_fail("--tokens %s: out of memory", arg);
    text[len] = '\0';
    int r = cli_parse_ids(text, ids, n);
    free(text);
    return r ? cli_fail("--tokens %s: expected comma-separated token ids", arg) : 0;
}

int cli_model_option(struct cli_model_opts *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    int r = cli_run_option(&o->run, argc, argv, i);
    if (r != 1)
        return r;
    if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) {
        if (cli_value(argc, argv, i, &o->model))
            return -1;
    } else if (strcmp(a, "-p") == 0 || strcmp(a, "--prompt") == 0) {
        if (cli_value(argc, argv, i, &o->prompt))
            return -1;
    } else if (strcmp(a, "--tokens") == 0) {
        if (cli_value(argc, argv, i, &o->tokens))
            return -1;
    } else if (strcmp(a, "--no-bos") == 0) {
        o->no_bos = 1;
    } else {
        return 1;
    }
    return 0;
}

herd_dtype cli_default_kv_type(const herd_model_info *in)
{
    herd_dtype wt = in->weight_dtype;
    int float_weights = wt == HERD_DTYPE_F32 || wt == HERD_DTYPE_F16 || wt == HERD_DTYPE_BF16;
    return float_weights ? HERD_DTYPE_F32 : HERD_DTYPE_F16;
}

int cli_model_open(struct cli_model_opts *o, herd_model **m, herd_context **c)
{
    *m = NULL;
    *c = NULL;
    if (!o->model && !(o->model = cli_default_model()))
        return 1;
    if (!(o->model = cli_resolve_model(o->model)))
        return 1;
    herd_model_params mp = {.n_threads = o->run.threads, .device = o->run.device};
    if (cli_load_model(o->model, &mp, m))
        return 1;
    herd_status s;
    const herd_model_info *in = herd_model_get_info(*m);
    herd_context_params cp = herd_context_default_params();
    cp.n_ctx = o->run.ctx;
    cp.n_threads = o->run.threads;
    cp.kv_type = o->run.kv_set ? o->run.kv_type : cli_default_kv_type(in);
    s = herd_context_new(*m, &cp, c);
    if (s != HERD_OK) {
        int r = cli_fail_status(s);
        herd_model_free(*m);
        *m = NULL;
        return r;
    }
    fprintf(stderr, "herd: context %d positions, KV cache %s %.1f MiB\n",
            herd_context_n_ctx(*c), herd_dtype_name(cp.kv_type),
            (double)herd_context_kv_bytes(*c) / (1024.0 * 1024.0));
    return 0;
}

int cli_model_prompt(const struct cli_model_opts *o, const herd_model *m, int32_t **ids,
                     size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (!!o->prompt == !!o->tokens)
        return cli_fail("give exactly one of -p TEXT and --tokens IDS");
    if (o->tokens) {
        if (parse_tokens_arg(o->tokens, ids, n))
            return o->tokens[0] == '@' ? 1 : cli_fail("--tokens: expected comma-separated ids");
        return 0;
    }
    const herd_tokenizer *tok = herd_model_tokenizer(m);
    if (!tok)
        return cli_fail("%s has no tokenizer: use --tokens", o->model);
    herd_status s = herd_tokenize(tok, o->prompt, strlen(o->prompt), !o->no_bos, false, ids, n);
    if (s != HERD_OK)
        return cli_fail_status(s);
    if (*n == 0)
        return cli_fail("the prompt is empty");
    return 0;
}

herd_status cli_prefill(herd_context *c, const int32_t *ids, size_t n, float *logits)
{
    int32_t *pos = malloc(n * sizeof *pos), *seq = calloc(n, sizeof *seq);
    int8_t *want = calloc(n, 1);
    if (!pos || !seq || !want) {
        free(pos);
        free(seq);
        free(want);
        return HERD_ERR_NOMEM;
    }
    int32_t start = herd_seq_len(c, 0);
    for (size_t i = 0; i < n; i++)
        pos[i] = start + (int32_t)i;
    want[n - 1] = 1;
    herd_batch b = {.n_tokens = (int32_t)n, .tokens = ids, .pos = pos, .seq = seq, .logits = want};
    herd_status s = herd_decode(c, &b, logits);
    free(pos);
    free(seq);
    free(want);
    return s;
}
