/*
 * cmd_logits.c - herd logits: float32 little-endian logits, row-major [positions x vocab],
 * of the last position or (--all) of every position, written to -o FILE.
 */
#include "cli_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: herd logits -m MODEL (-p TEXT | --tokens IDS) [--all] -o FILE [-t N] [-c N]\n"
    "                   [--kv-type T] [--no-bos]\n"
    "float32 little-endian logits, row-major [positions x vocab], to FILE.\n" CLI_MODEL_HELP
    "  --all             every position's logits (default: the last position's only)\n"
    "  -o FILE           where to write them\n";

int cmd_logits(int argc, char **argv)
{
    struct cli_model_opts o = {0};
    const char *out_path = NULL;
    int all = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i]))
            return cli_help(usage);
        int r = cli_model_option(&o, argc, argv, &i);
        if (r < 0)
            return 1;
        if (r == 0)
            continue;
        if (strcmp(argv[i], "--all") == 0)
            all = 1;
        else if (strcmp(argv[i], "-o") == 0) {
            if (cli_value(argc, argv, &i, &out_path))
                return 1;
        } else
            return cli_fail("logits: unknown option '%s'", argv[i]);
    }
    if (!out_path)
        return cli_fail("logits: no output file given (-o FILE)");
    herd_model *m = NULL;
    herd_context *c = NULL;
    if (cli_model_open(&o, &m, &c))
        return 1;
    int rc = 1;
    int32_t *ids = NULL, *pos = NULL, *seq = NULL;
    int8_t *want = NULL;
    float *logits = NULL;
    FILE *f = NULL;
    size_t n = 0;
    if (cli_model_prompt(&o, m, &ids, &n))
        goto done;
    if (n > (size_t)herd_context_n_ctx(c)) {
        cli_fail("the prompt has %zu tokens, more than the context of %d (use --ctx)", n,
                 herd_context_n_ctx(c));
        goto done;
    }
    size_t vocab = (size_t)herd_model_get_info(m)->n_vocab;
    size_t rows = all ? n : 1;
    pos = malloc(n * sizeof *pos);
    seq = calloc(n, sizeof *seq);
    want = calloc(n, 1);
    logits = malloc(rows * vocab * sizeof *logits);
    if (!pos || !seq || !want || !logits) {
        cli_fail("out of memory for %zu x %zu logits", rows, vocab);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        pos[i] = (int32_t)i;
        want[i] = all || i == n - 1;
    }
    herd_batch b = {.n_tokens = (int32_t)n, .tokens = ids, .pos = pos, .seq = seq, .logits = want};
    herd_status s = herd_decode(c, &b, logits);
    if (s != HERD_OK) {
        cli_fail_status(s);
        goto done;
    }
    f = fopen(out_path, "wb");
    if (!f) {
        cli_fail("%s: cannot open for writing", out_path);
        goto done;
    }
    if (fwrite(logits, sizeof *logits, rows * vocab, f) != rows * vocab || fclose(f) != 0) {
        f = NULL;
        cli_fail("%s: write failed", out_path);
        goto done;
    }
    f = NULL;
    rc = 0;
done:
    if (f)
        fclose(f);
    free(ids);
    free(pos);
    free(seq);
    free(want);
    free(logits);
    herd_context_free(c);
    herd_model_free(m);
    return rc;
}
