/*
 * cli.c - shared helpers of the herd sub-commands (see cli.h).
 */
#include "cli.h"

#include <errno.h>  /* strtol range errors */
#include <math.h>   /* isfinite */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A whole number from the environment, or dflt when unset or not one. */
static int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    int64_t x;
    return v && *v && cli_parse_i64(v, 0, INT32_MAX, &x) == 0 ? (int)x : dflt;
}

void cli_apply_env(herd_dist_options *dist)
{
    *dist = herd_dist_default_options();
    dist->tp = env_int("HERD_TP", 0);
    dist->pp = env_int("HERD_PP", 0);
    dist->timeout_s = env_int("HERD_DIST_TIMEOUT", dist->timeout_s);
    dist->report = getenv("HERD_DIST_REPORT") != NULL;
    dist->test_kill_rank = env_int("HERD_DIST_TEST_KILL", 0);
    dist->test_version_rank = env_int("HERD_DIST_TEST_VERSION", 0);
    const char *log = getenv("HERD_LOG");
    if (log && strcmp(log, "error") == 0)
        herd_log_set_level(HERD_LOG_ERROR);
    else if (log && strcmp(log, "info") == 0)
        herd_log_set_level(HERD_LOG_INFO);
    else if (log && strcmp(log, "debug") == 0)
        herd_log_set_level(HERD_LOG_DEBUG);
    herd_cpu_options o = herd_cpu_default_options();
    o.isa = getenv("HERD_CPU_ISA");
    o.bf16_act = getenv("HERD_BF16_ACT") != NULL;
    o.no_vbmi = getenv("HERD_GEMV_NO_VBMI") != NULL;
    o.no_r16 = getenv("HERD_GEMV_NO_R16") != NULL;
    o.mmap_weights = getenv("HERD_MMAP") != NULL;
    if (herd_cpu_configure(&o) != HERD_OK) {
        fprintf(stderr, "herd: HERD_CPU_ISA=%s: unknown (ref|avx2|avx512|amx|neon), using the "
                        "best available\n", o.isa);
        o.isa = NULL;
        herd_cpu_configure(&o);
    }
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("herd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_fail_status(herd_status s)
{
    const char *msg = herd_last_error();
    return cli_fail("%s", msg && *msg ? msg : herd_status_str(s));
}

int cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_int(const char *s, int lo, int hi, int *out)
{
    int64_t v;
    if (cli_parse_i64(s, lo, hi, &v))
        return -1;
    *out = (int)v;
    return 0;
}

int cli_parse_float(const char *s, double lo, double hi, double *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_ids(const char *s, int32_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    int32_t *v = malloc(cap * sizeof *v);
    if (!v)
        return -1;
    size_t k = 0;
    const char *p = s;
    while (*p) {
        char *end = NULL;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT32_MAX || (*end && *end != ',')) {
            free(v);
            return -1;
        }
        v[k++] = (int32_t)x;
        p = *end ? end + 1 : end;
    }
    if (k == 0) {
        free(v);
        return -1;
    }
    *ids = v;
    *n = k;
    return 0;
}

int cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

int cli_help(const char *usage)
{
    fputs(usage, stdout);
    return 0;
}

int cli_parse_threads(const char *v, int *out)
{
    if (cli_parse_int(v, 0, 4096, out) == 0)
        return 0;
    cli_fail("-t: expected a thread count from 0 (all cores) to 4096, got '%s'", v);
    return -1;
}

int cli_run_option(struct cli_run_opts *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v = NULL;
    if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
        if (cli_value(argc, argv, i, &v) || cli_parse_threads(v, &o->threads))
            return -1;
    } else if (strcmp(a, "-c") == 0 || strcmp(a, "--ctx") == 0) {
        if (cli_value(argc, argv, i, &v))
            return -1;
        if (cli_parse_int(v, 1, INT32_MAX, &o->ctx)) {
            cli_fail("--ctx: expected a positive number of positions, got '%s'", v);
            return -1;
        }
    } else if (strcmp(a, "--kv-type") == 0) {
        if (cli_value(argc, argv, i, &v))
            return -1;
        if (strcmp(v, "f16") == 0)
            o->kv_type = HERD_DTYPE_F16;
        else if (strcmp(v, "f32") == 0)
            o->kv_type = HERD_DTYPE_F32;
        else if (strcmp(v, "q8_0") == 0)
            o->kv_type = HERD_DTYPE_Q8_0;
        else {
            cli_fail("--kv-type: expected f16, f32 or q8_0, got '%s'", v);
            return -1;
        }
        o->kv_set = 1;
    } else if (strcmp(a, "--device") == 0) {
        if (cli_value(argc, argv, i, &o->device))
            return -1;
    } else {
        return 1;
    }
    return 0;
}

int cli_value(int argc, char **argv, int *i, const char **val)
{
    if (*i + 1 >= argc) {
        cli_fail("option %s needs a value", argv[*i]);
        return -1;
    }
    *i += 1;
    *val = argv[*i];
    return 0;
}

const char *cli_template_name(herd_chat_template t)
{
    return t == HERD_CHAT_CHATML ? "ChatML" : t == HERD_CHAT_LLAMA32 ? "Llama 3.2" : "Llama 3.1";
}

/* Requests on stdin are small; this only stops a runaway pipe from eating memory. */
#define CLI_MAX_STDIN (64u << 20)

int cli_read_stdin(const char *cmd, char **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return cli_fail("out of memory");
    for (;;) {
        if (n == cap) {
            if (cap >= CLI_MAX_STDIN) {
                free(buf);
                return cli_fail("%s: the request is larger than %u bytes", cmd,
                                CLI_MAX_STDIN);
            }
            char *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                return cli_fail("out of memory");
            }
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(stdin)) {
        free(buf);
        return cli_fail("%s: cannot read stdin", cmd);
    }
    *out = buf;
    *len = n;
    return 0;
}

