/*
 * cmd_generate.c - herd generate: raw completion, no chat template. Feeds the prompt in one
 * batch, then one token per step; stops at an end-of-generation id or after -n tokens.
 * stdout is the generated text only (streamed, never a partial UTF-8 sequence), or with
 * --ids one JSON array of the generated ids.
 */
#include "cli_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gen_opts {
    int n_predict, ids_out, have_temp;
    double temp, top_p, min_p;
    int top_k;
    uint64_t seed;
    int have_seed;
};

static int is_eos(const herd_model_info *in, int32_t id)
{
    for (int i = 0; i < in->n_eos; i++)
        if (in->eos_ids[i] == id)
            return 1;
    return 0;
}

static int32_t argmax(const float *v, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

static int parse_gen_option(struct gen_opts *g, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v = NULL;
    if (strcmp(a, "-n") == 0 || strcmp(a, "--n-predict") == 0) {
        if (cli_value(argc, argv, i, &v) || cli_parse_int(v, 0, INT32_MAX, &g->n_predict))
            return v ? cli_fail("-n: expected a token count >= 0") : 1;
    } else if (strcmp(a, "--temp") == 0) {
        if (cli_value(argc, argv, i, &v) || cli_parse_float(v, 0.0, 100.0, &g->temp))
            return v ? cli_fail("--temp: expected a number from 0 to 100") : 1;
        g->have_temp = 1;
    } else if (strcmp(a, "--top-p") == 0) {
        if (cli_value(argc, argv, i, &v) || cli_parse_float(v, 0.0, 1.0, &g->top_p))
            return v ? cli_fail("--top-p: expected a number from 0 to 1") : 1;
    } else if (strcmp(a, "--min-p") == 0) {
        if (cli_value(argc, argv, i, &v) || cli_parse_float(v, 0.0, 1.0, &g->min_p))
            return v ? cli_fail("--min-p: expected a number from 0 to 1") : 1;
    } else if (strcmp(a, "--top-k") == 0) {
        if (cli_value(argc, argv, i, &v) || cli_parse_int(v, 0, INT32_MAX, &g->top_k))
            return v ? cli_fail("--top-k: expected a count >= 0") : 1;
    } else if (strcmp(a, "--seed") == 0) {
        int64_t s;
        if (cli_value(argc, argv, i, &v) || cli_parse_i64(v, 0, INT64_MAX, &s))
            return v ? cli_fail("--seed: expected a number >= 0") : 1;
        g->seed = (uint64_t)s;
        g->have_seed = 1;
    } else if (strcmp(a, "--ids") == 0) {
        g->ids_out = 1;
    } else {
        return cli_fail("generate: unknown option '%s'", a);
    }
    return 0;
}

int cmd_generate(int argc, char **argv)
{
    struct cli_model_opts o = {0};
    struct gen_opts g = {.n_predict = 128, .top_k = 40, .top_p = -1.0, .min_p = 0.05};
    for (int i = 1; i < argc; i++) {
        int r = cli_model_option(&o, argc, argv, &i);
        if (r < 0)
            return 1;
        if (r == 1 && parse_gen_option(&g, argc, argv, &i))
            return 1;
    }
    herd_model *m = NULL;
    herd_context *c = NULL;
    if (cli_model_open(&o, &m, &c))
        return 1;
    const herd_model_info *in = herd_model_get_info(m);
    if (!g.have_temp)
        g.temp = in->default_temperature >= 0 ? in->default_temperature : 0.8;
    if (g.top_p < 0)
        g.top_p = in->default_top_p >= 0 ? in->default_top_p : 0.95;
    int rc = 1;
    int32_t *ids = NULL, *out_ids = NULL;
    float *logits = NULL;
    herd_detok_stream *ds = NULL;
    size_t n = 0, n_out = 0;
    if (cli_model_prompt(&o, m, &ids, &n))
        goto done;
    int32_t n_ctx = herd_context_n_ctx(c);
    if (n >= (size_t)n_ctx) {
        cli_fail("the prompt has %zu tokens; the context holds %d (use --ctx)", n, n_ctx);
        goto done;
    }
    if (g.temp > 0) {
        cli_fail("sampling with --temp > 0 needs the sampler chain (not built yet); use --temp 0");
        goto done;
    }
    logits = malloc((size_t)in->n_vocab * sizeof *logits);
    out_ids = malloc(((size_t)g.n_predict + 1) * sizeof *out_ids);
    if (!logits || !out_ids) {
        cli_fail("out of memory");
        goto done;
    }
    const herd_tokenizer *tok = herd_model_tokenizer(m);
    if (!g.ids_out && !tok) {
        cli_fail("%s has no tokenizer to print text: use --ids", o.model);
        goto done;
    }
    if (!g.ids_out && herd_detok_stream_new(tok, &ds) != HERD_OK) {
        cli_fail_status(HERD_ERR_NOMEM);
        goto done;
    }
    herd_status s = cli_prefill(c, ids, n, logits);
    int32_t pos = (int32_t)n;
    char piece[256];
    while (s == HERD_OK && (int)n_out < g.n_predict) {
        int32_t next = argmax(logits, in->n_vocab);
        if (is_eos(in, next))
            break;
        out_ids[n_out++] = next;
        if (ds) {
            size_t len = 0;
            if (herd_detok_stream_push(ds, next, piece, sizeof piece, &len) == HERD_OK && len) {
                fwrite(piece, 1, len, stdout);
                fflush(stdout);
            }
        }
        if ((int)n_out == g.n_predict)
            break;
        if (pos >= n_ctx) {
            fprintf(stderr, "herd: stopped: the context of %d positions is full\n", n_ctx);
            break;
        }
        s = cli_prefill(c, &next, 1, logits);
        pos++;
    }
    if (s != HERD_OK) {
        cli_fail_status(s);
        goto done;
    }
    if (ds) {
        size_t len = 0;
        if (herd_detok_stream_push(ds, -1, piece, sizeof piece, &len) == HERD_OK && len)
            fwrite(piece, 1, len, stdout);
        fputc('\n', stdout);
    } else {
        printf("[");
        for (size_t i = 0; i < n_out; i++)
            printf("%s%d", i ? "," : "", out_ids[i]);
        printf("]\n");
    }
    rc = 0;
done:
    herd_detok_stream_free(ds);
    free(ids);
    free(out_ids);
    free(logits);
    herd_context_free(c);
    herd_model_free(m);
    return rc;
}
