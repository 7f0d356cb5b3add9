/*
 * cmd_quantize.c - `herd quantize IN OUT --type q8_0|q4_0|q4_k_m|q6_k|f16|bf16|f32 [-t N]`:
 * any supported input (GGUF, or a Hugging Face folder) to a GGUF file that herd and
 * llama.cpp load. The per-tensor types of each mix are llama.cpp's (see src/model/quantize.c);
 * progress goes to stderr, one line per tensor on a terminal, every ~10% otherwise.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <time.h>   /* clock_gettime */
#include <unistd.h> /* isatty */

struct progress {
    int tty;
    int last_decile;
    double t0;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool on_progress(void *user, const char *tensor, herd_dtype type, int64_t done,
                        int64_t total)
{
    struct progress *p = user;
    double pct = total > 0 ? 100.0 * (double)done / (double)total : 100.0;
    if (p->tty) {
        fprintf(stderr, "\r[%5.1f%%] %-32s %-5s %8.1f s", pct, tensor, herd_dtype_name(type),
                now_s() - p->t0);
        fflush(stderr);
    } else if ((int)(pct / 10.0) > p->last_decile) {
        p->last_decile = (int)(pct / 10.0);
        fprintf(stderr, "herd quantize: %3.0f%% (%s) %.1f s\n", pct, tensor, now_s() - p->t0);
    }
    return true;
}

static const char usage[] =
    "usage: herd quantize IN OUT --type q8_0|q4_0|q4_k_m|q6_k|f16|bf16|f32 [-t N]\n"
    "  IN: a GGUF file or a Hugging Face folder; OUT: a GGUF file\n"
    "  -t, --threads N   worker threads; 0 = all cores (default 0)\n";

int cmd_quantize(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *type = NULL;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (cli_is_help(a))
            return cli_help(usage);
        if (a[0] == '-' && a[1]) {
            if (cli_value(argc, argv, &i, &v))
                return 1;
            if (strcmp(a, "--type") == 0 || strcmp(a, "--ftype") == 0)
                type = v;
            else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
                if (cli_parse_threads(v, &threads))
                    return 1;
            } else
                return cli_fail("quantize: unknown option '%s' (see herd quantize --help)", a);
        } else if (!in) {
            in = a;
        } else if (!out) {
            out = a;
        } else {
            return cli_fail("quantize: unexpected argument '%s'", a);
        }
    }
    if (!in || !out)
        return cli_fail("quantize: usage: herd quantize IN OUT --type q8_0|q4_0|q4_k_m|q6_k");
    if (!type)
        return cli_fail("quantize: --type is required (q8_0, q4_0, q4_k_m, q6_k, f16, bf16, "
                        "f32)");
    herd_quantize_params qp = {0};
    herd_status s = herd_ftype_parse(type, &qp.ftype);
    if (s)
        return cli_fail_status(s);
    struct progress pr = {isatty(2), 0, now_s()};
    qp.n_threads = threads;
    qp.progress = on_progress;
    qp.progress_user = &pr;
    s = herd_quantize(in, out, &qp);
    if (pr.tty)
        fputc('\n', stderr);
    if (s)
        return cli_fail_status(s);
    fprintf(stderr, "herd quantize: wrote %s (%s) in %.1f s\n", out, herd_ftype_name(qp.ftype),
            now_s() - pr.t0);
    return 0;
}
