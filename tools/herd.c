/*
 * herd.c - the herd command: dispatches to one sub-command (tools/cmd_*.c). The contract of
 * each sub-command is in docs/design.md; logs go to stderr, results to stdout, exit 0 on
 * success and non-zero with a one-line reason on failure. Every sub-command answers
 * -h/--help.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"info", cmd_info, "MODEL: architecture, sizes, dtypes, context, vocab"},
    {"generate", cmd_generate, "-m MODEL (-p TEXT | --tokens IDS): raw completion"},
    {"logits", cmd_logits, "-m MODEL (-p TEXT | --tokens IDS) -o FILE: float32 logits"},
    {"tokenize", cmd_tokenize, "(-m MODEL | --tokenizer FILE): JSON strings to id arrays"},
    {"detokenize", cmd_detokenize, "(-m MODEL | --tokenizer FILE): id arrays to JSON strings"},
    {"render", cmd_render, "[-m MODEL]: OpenAI chat request on stdin to Llama 3.1 prompt"},
    {"guard", cmd_guard, "-m GUARD_MODEL < conversation.json: Llama Guard 3 verdict (JSON)"},
    {"run", cmd_run, "-m MODEL [-p TEXT] [--system TEXT]: chat"},
    {"serve", cmd_serve, "-m MODEL [--host H] [--port P]: OpenAI-compatible server"},
    {"bench", cmd_bench, "-m MODEL [-p 512] [-n 128] [-t N]: prefill and decode tokens/s"},
    {"quantize", cmd_quantize, "IN OUT --type TYPE: write a quantized GGUF"},
    {"pull", cmd_pull, "ORG/REPO[:FILE]: download from the Hugging Face hub"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: herd COMMAND [options]   (herd COMMAND --help for its options)\n"
               "       herd --version\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    int code;
    herd_dist_options dist;
    cli_apply_env(&dist); /* before the MPI followers start: they run kernels too */
    if (herd_dist_init(&argc, &argv, &dist, &code))
        return code; /* an MPI rank > 0: it followed rank 0 until the job ended */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("herd %s\n", herd_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    cli_fail("unknown command '%s' (try herd --help)", argv[1]);
    return 2;
}
