/*
 * cli_spec.c - speculative decoding for the commands that generate (generate, run, serve):
 * the options, loading the draft beside the target, and the acceptance report.
 */
#include "cli_spec.h"

#include <stdio.h>
#include <string.h>

int cli_spec_option(struct cli_spec_opts *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v = NULL;
    if (strcmp(a, "--draft") == 0) {
        return cli_value(argc, argv, i, &o->draft) ? -1 : 0;
    } else if (strcmp(a, "--lookup") == 0) {
        if (cli_value(argc, argv, i, &v) || cli_parse_int(v, 1, 64, &o->lookup))
            return v ? -cli_fail("--lookup: expected an n-gram length from 1 to 64") : -1;
    } else if (strcmp(a, "--draft-max") == 0) {
        if (cli_value(argc, argv, i, &v) || cli_parse_int(v, 1, 32, &o->draft_max))
            return v ? -cli_fail("--draft-max: expected a count from 1 to 32") : -1;
    } else if (strcmp(a, "--draft-min") == 0) {
        if (cli_value(argc, argv, i, &v) || cli_parse_int(v, 1, 32, &o->draft_min))
            return v ? -cli_fail("--draft-min: expected a count from 1 to 32") : -1;
    } else {
        return 1;
    }
    return 0;
}

int cli_spec_wanted(const struct cli_spec_opts *o)
{
    return o->draft || o->lookup;
}

int cli_spec_open(const struct cli_spec_opts *o, const struct cli_run_opts *run,
                  herd_context *c, herd_model **dm, herd_spec **sp)
{
    *dm = NULL;
    *sp = NULL;
    if (!cli_spec_wanted(o))
        return 0;
    herd_spec_params p = herd_spec_default_params();
    if (o->draft_max)
        p.draft_max = o->draft_max;
    if (o->draft_min)
        p.draft_min = o->draft_min;
    if (p.draft_min > p.draft_max)
        return cli_fail("--draft-min %d is above --draft-max %d", p.draft_min, p.draft_max);
    int lookup = o->lookup || (o->draft && strcmp(o->draft, "lookup") == 0);
    if (o->lookup) {
        p.lookup_ngram = o->lookup;
        if (p.lookup_min > p.lookup_ngram)
            p.lookup_min = p.lookup_ngram;
    }
    if (lookup && o->draft && strcmp(o->draft, "lookup") != 0)
        return cli_fail("give either --draft MODEL or prompt lookup (--lookup / --draft "
                        "lookup), not both");
    if (!lookup) {
        const char *path = cli_resolve_model(o->draft);
        if (!path)
            return 1;
        herd_model_params mp = {.n_threads = run->threads, .device = run->device};
        if (cli_load_model(path, &mp, dm))
            return 1;
        p.n_threads = run->threads;
    }
    herd_status s = herd_spec_new(c, *dm, &p, sp);
    if (s != HERD_OK) {
        herd_model_free(*dm);
        *dm = NULL;
        return cli_fail_status(s);
    }
    if (*dm)
        fprintf(stderr, "herd: speculative decoding with draft %s, up to %d tokens per step\n",
                herd_model_get_info(*dm)->path, p.draft_max);
    else
        fprintf(stderr, "herd: speculative decoding by prompt lookup (n-grams %d..%d), up to %d "
                        "tokens per step\n", p.lookup_min, p.lookup_ngram, p.draft_max);
    return 0;
}

void cli_spec_report(const herd_spec *sp)
{
    if (!sp)
        return;
    herd_spec_stats st = herd_spec_get_stats(sp);
    fprintf(stderr, "[speculative: %lld tokens in %lld target passes (%.2f per pass); %lld of "
                    "%lld drafted tokens accepted (%.1f%%)]\n",
            (long long)st.n_tokens, (long long)st.n_steps,
            st.n_steps ? (double)st.n_tokens / (double)st.n_steps : 0.0,
            (long long)st.n_accepted, (long long)st.n_drafted,
            st.n_drafted ? 100.0 * (double)st.n_accepted / (double)st.n_drafted : 0.0);
}
