/*
 * cli_model.h - options and steps the model sub-commands share (cli_model.c).
 */
#ifndef HERD_CLI_MODEL_H
#define HERD_CLI_MODEL_H

#include "cli.h"

struct cli_model_opts {
    const char *model, *prompt, *tokens;
    int no_bos, threads, ctx, kv_set;
    herd_dtype kv_type;
};

/* Consumes argv[*i] if it is a common option: 0 taken, 1 not ours, -1 error (printed). */
int cli_model_option(struct cli_model_opts *o, int argc, char **argv, int *i);
/* Loads the model and a one-sequence context; prints the error and returns 1 on failure. */
int cli_model_open(struct cli_model_opts *o, herd_model **m, herd_context **c);
/* The prompt as ids (-p through the tokenizer with BOS unless --no-bos, or --tokens);
 * owned array (free()). Prints the error and returns 1 on failure. */
int cli_model_prompt(const struct cli_model_opts *o, const herd_model *m, int32_t **ids,
                     size_t *n);
/* Feeds ids to sequence 0 from where it ends; logits of the last one into logits. */
herd_status cli_prefill(herd_context *c, const int32_t *ids, size_t n, float *logits);

#endif /* HERD_CLI_MODEL_H */
