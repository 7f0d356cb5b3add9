/*
 * cmd_generate.c - herd generate: raw completion, no chat template. Feeds the prompt in one
 * batch, then one token per step; stops at an end-of-generation id or after -n tokens.
 * stdout is the generated text only (streamed, never a partial UTF-8 sequence), or with
 * --ids one JSON array of the generated ids.
 */
#include "cli_model.h"
#include "cli_spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>   /* default seed */
#include <unistd.h> /* getpid */

static const char usage[] =
    "usage: herd generate -m MODEL (-p TEXT | --tokens IDS) [-n N] [--temp T] [--top-k K]\n"
    "                     [--top-p P] [--min-p P] [--seed S] [--ids] [-t N] [-c N]\n"
    "                     [--kv-type T] [--no-bos] [--draft M | --lookup N] [--timing]\n"
    "Raw completion, no chat template: stdout is the generated text only.\n" CLI_MODEL_HELP
    "  -n, --n-predict N most tokens to generate (default 128)\n"
    "  --temp T          temperature; 0 = greedy (default: the model's, else 0.6)\n"
    "  --top-k K         keep the K most likely tokens; 0 = off (default 0)\n"
    "  --top-p P         nucleus sampling (default: the model's, else 0.9)\n"
    "  --min-p P         drop tokens below P x the best probability (default 0)\n"
    "  --seed S          sampler seed (default: time and pid)\n"
    "  --ids             print one JSON array of the generated ids instead of text\n"
    "  --timing          one line on stderr: prompt and generation tokens/s\n" CLI_SPEC_HELP;

struct gen_opts {
    int n_predict, ids_out, timing;
    struct cli_spec_opts spec;
    double temp, top_p, min_p; /* < 0: not given */
    int top_k;                 /* < 0: not given */
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

static int parse_gen_option(struct gen_opts *g, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v = NULL;
    if (strcmp(a, "-n") == 0 || strcmp(a, "--n-predict") == 0) {
        if (cli_value(argc, argv, i, &v) || cli_parse_int(v, 0, INT32_MAX, &g->n_predict))
            return v ? cli_fail("-n: expected a token count >= 0") : 1;
    } else if (strcmp(a, "--temp") == 0) {
        if (cli_value(argc, argv, i, &v) || cli_parse_float(v, 0.0, 100.0, &g->temp))
            return v ? cli_fail("--temp: expected a number from 0 to 100") : 1;
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
    } else if (strcmp(a, "--timing") == 0) {
        g->timing = 1;
    } else {
        int r = cli_spec_option(&g->spec, argc, argv, i);
        if (r == 1)
            return cli_fail("generate: unknown option '%s'", a);
        return r < 0;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The next tokens after hist (whose last token the context does not hold yet) into pend:
 * one step of speculative decoding, or one plain decode and draw. */
static herd_status next_tokens(herd_context *c, herd_spec *sp, herd_sampler *smp,
                               const int32_t *hist, int32_t n_hist, int32_t max_out,
                               float *logits, int32_t n_vocab, int32_t *pend, int32_t *n_pend)
{
    if (sp)
        return herd_spec_step(sp, 0, smp, hist, n_hist, max_out, pend, n_pend);
    herd_status s = cli_prefill(c, &hist[n_hist - 1], 1, logits);
    if (s == HERD_OK && (s = herd_sampler_sample(smp, logits, n_vocab, &pend[0])) == HERD_OK)
        herd_sampler_accept(smp, pend[0]);
    *n_pend = s == HERD_OK;
    return s;
}

int cmd_generate(int argc, char **argv)
{
    struct cli_model_opts o = {0};
    struct gen_opts g = {.n_predict = 128, .temp = -1, .top_k = -1, .top_p = -1, .min_p = -1};
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i]))
            return cli_help(usage);
        int r = cli_model_option(&o, argc, argv, &i);
        if (r < 0)
            return 1;
        if (r == 1 && parse_gen_option(&g, argc, argv, &i))
            return 1;
    }
    herd_model *m = NULL, *dm = NULL;
    herd_context *c = NULL;
    herd_spec *sp = NULL;
    if (cli_model_open(&o, &m, &c))
        return 1;
    const herd_model_info *in = herd_model_get_info(m);
    /* Sampling defaults: the model's generation_config.json, else the Llama 3.x Instruct
     * values (temperature 0.6, top_p 0.9); options override. */
    herd_sampler_params smp_p = herd_sampler_default_params();
    herd_sampler_params_from_model(&smp_p, in);
    if (g.temp >= 0)
        smp_p.temperature = (float)g.temp;
    if (g.top_p >= 0)
        smp_p.top_p = (float)g.top_p;
    if (g.min_p >= 0)
        smp_p.min_p = (float)g.min_p;
    if (g.top_k >= 0)
        smp_p.top_k = g.top_k;
    smp_p.seed = g.have_seed ? g.seed : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    herd_sampler *smp = NULL;
    int rc = 1;
    int32_t *ids = NULL, *hist = NULL;
    float *logits = NULL;
    herd_detok_stream *ds = NULL;
    size_t n = 0, n_out = 0;
    if (cli_spec_open(&g.spec, &o.run, c, &dm, &sp))
        goto done;
    if (cli_model_prompt(&o, m, &ids, &n))
        goto done;
    int32_t n_ctx = herd_context_n_ctx(c);
    if (n >= (size_t)n_ctx) {
        cli_fail("the prompt has %zu tokens; the context holds %d (use --ctx)", n, n_ctx);
        goto done;
    }
    if (herd_sampler_new(&smp_p, in->n_vocab, &smp) != HERD_OK) {
        cli_fail_status(HERD_ERR_NOMEM);
        goto done;
    }
    herd_spec_seq_reset(sp, 0, smp_p.seed);
    for (size_t i = 0; i < n; i++)
        herd_sampler_accept(smp, ids[i]);
    logits = malloc((size_t)in->n_vocab * sizeof *logits);
    /* the prompt and what follows it; never more than the context plus the pending token */
    hist = malloc(((size_t)n_ctx + 2) * sizeof *hist);
    if (!logits || !hist) {
        cli_fail("out of memory");
        goto done;
    }
    memcpy(hist, ids, n * sizeof *ids);
    int32_t n_hist = (int32_t)n;
    const herd_tokenizer *tok = herd_model_tokenizer(m);
    if (!g.ids_out && !tok) {
        cli_fail("%s has no tokenizer to print text: use --ids", o.model);
        goto done;
    }
    if (!g.ids_out && herd_detok_stream_new(tok, &ds) != HERD_OK) {
        cli_fail_status(HERD_ERR_NOMEM);
        goto done;
    }
    double t0 = now_s();
    herd_status s = cli_prefill(c, ids, n, logits);
    double t1 = now_s();
    int32_t pend[64];
    int32_t n_pend = 0, i_pend = 0;
    if (s == HERD_OK && (s = herd_sampler_sample(smp, logits, in->n_vocab, &pend[0])) == HERD_OK) {
        herd_sampler_accept(smp, pend[0]);
        n_pend = 1;
    }
    char piece[256];
    while (s == HERD_OK && (int)n_out < g.n_predict) {
        if (i_pend == n_pend) {
            if (n_hist - 1 >= n_ctx) {
                fprintf(stderr, "herd: stopped: the context of %d positions is full\n", n_ctx);
                break;
            }
            i_pend = 0;
            s = next_tokens(c, sp, smp, hist, n_hist, g.n_predict - (int32_t)n_out, logits,
                            in->n_vocab, pend, &n_pend);
            continue;
        }
        int32_t next = pend[i_pend++];
        if (is_eos(in, next))
            break;
        hist[n_hist++] = next;
        n_out++;
        if (ds) {
            size_t len = 0;
            if (herd_detok_stream_push(ds, next, piece, sizeof piece, &len) == HERD_OK && len) {
                fwrite(piece, 1, len, stdout);
                fflush(stdout);
            }
        }
    }
    double t2 = now_s();
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
            printf("%s%d", i ? "," : "", hist[n + i]);
        printf("]\n");
    }
    fflush(stdout);
    if (g.timing)
        fprintf(stderr, "[prompt %zu tokens, %.1f tokens/s; generated %zu tokens, %.2f tokens/s]\n",
                n, t1 > t0 ? (double)n / (t1 - t0) : 0.0, n_out,
                t2 > t1 ? (double)n_out / (t2 - t1) : 0.0);
    cli_spec_report(sp);
    rc = 0;
done:
    herd_sampler_free(smp);
    herd_detok_stream_free(ds);
    free(ids);
    free(hist);
    free(logits);
    herd_spec_free(sp);
    herd_model_free(dm);
    herd_context_free(c);
    herd_model_free(m);
    return rc;
}
