/*
 * cli_model.h - options and steps the model sub-commands share (cli_model.c).
 */
#ifndef HERD_CLI_MODEL_H
#define HERD_CLI_MODEL_H

#include "cli.h"

struct cli_model_opts {
    const char *model, *prompt, *tokens;
    int no_bos;
    struct cli_run_opts run; /* -t, -c, --kv-type */
};

/* Help lines for -m, -p, --tokens, --no-bos and the run options, with their defaults. */
#define CLI_MODEL_HELP                                                                        \
    "  -m, --model M     a GGUF file, a Hugging Face folder or hf://ORG/REPO[:FILE]\n"        \
    "                    (default: $HERD_MODEL, else the embedded SmolLM2-135M-Instruct\n"    \
    "                    that make deps installs)\n"                                          \
    "  -p, --prompt T    prompt text (tokenized with BOS first unless --no-bos)\n"            \
    "  --tokens IDS      the prompt as ids: 1,2,3 or @FILE\n"                                 \
    "  --no-bos          no <|begin_of_text|> before -p text\n"                               \
    CLI_RUN_HELP("min(model, 4096)", "f32 for f32/f16/bf16 weights, else f16")

/* Consumes argv[*i] if it is a common option: 0 taken, 1 not ours, -1 error (printed). */
int cli_model_option(struct cli_model_opts *o, int argc, char **argv, int *i);
/* The KV cache type when --kv-type is not given: the exactness tools (generate, logits,
 * run) keep an f32 cache for unquantized weights so results match float32 references (an
 * f16 cache moves logits by ~1e-3 relative); quantized weights get the f16 cache
 * (docs/internals/model.md). */
herd_dtype cli_default_kv_type(const herd_model_info *in);
/* Loads the model and a one-sequence context; prints the error and returns 1 on failure. */
int cli_model_open(struct cli_model_opts *o, herd_model **m, herd_context **c);
/* The prompt as ids (-p through the tokenizer with BOS unless --no-bos, or --tokens);
 * owned array (free()). Prints the error and returns 1 on failure. */
int cli_model_prompt(const struct cli_model_opts *o, const herd_model *m, int32_t **ids,
                     size_t *n);
/* Feeds ids to sequence 0 from where it ends; logits of the last one into logits. */
herd_status cli_prefill(herd_context *c, const int32_t *ids, size_t n, float *logits);

#endif /* HERD_CLI_MODEL_H */
