/*
 * cli_spec.h - the speculative decoding options of generate, run and serve (cli_spec.c):
 * --draft MODEL | --draft lookup, --lookup N, --draft-max K, --draft-min K.
 */
#ifndef HERD_CLI_SPEC_H
#define HERD_CLI_SPEC_H

#include "cli.h"

struct cli_spec_opts {
    const char *draft;  /* a model path, or "lookup"; NULL = off */
    int lookup;         /* --lookup N: prompt lookup with n-grams up to N; 0 = not given */
    int draft_max, draft_min; /* 0 = the library's defaults */
};

#define CLI_SPEC_HELP                                                                         \
    "  --draft M         speculative decoding with draft model M (same tokenizer as -m);\n"  \
    "                    --draft lookup: prompt lookup (n-grams of the text so far)\n"       \
    "  --lookup N        prompt lookup matching n-grams of up to N tokens (default 3)\n"     \
    "  --draft-max K     most tokens drafted per step (default 8; adapts to acceptance)\n"   \
    "  --draft-min K     fewest tokens drafted per step once adapted (default 1)\n"

/* Consumes argv[*i] if it is one of the options above: 0 taken, 1 not ours, -1 error. */
int cli_spec_option(struct cli_spec_opts *o, int argc, char **argv, int *i);
/* Whether speculative decoding was asked for. */
int cli_spec_wanted(const struct cli_spec_opts *o);
/* Loads the draft model (same -t and --device as the target) and makes the herd_spec for
 * the sequences of c. *dm stays NULL for prompt lookup. Prints the error and returns 1 on
 * failure. */
int cli_spec_open(const struct cli_spec_opts *o, const struct cli_run_opts *run,
                  herd_context *c, herd_model **dm, herd_spec **sp);
/* One line on stderr: steps, tokens per target pass, acceptance. */
void cli_spec_report(const herd_spec *sp);

#endif /* HERD_CLI_SPEC_H */
