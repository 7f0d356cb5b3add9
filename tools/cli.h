/*
 * cli.h - what the herd sub-commands share: the command table, one-line error exits and
 * strict number parsing (no atoi: a malformed number is an error, not a zero).
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

/* Fetches the value of option argv[*i] into *val (advancing *i); prints an error when the
 * value is missing. Returns 0 on success. */
int cli_value(int argc, char **argv, int *i, const char **val);

#endif /* HERD_CLI_H */
