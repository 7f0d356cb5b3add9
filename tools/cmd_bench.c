/*
 * cmd_bench.c - `herd bench`: prefill and decode speed, measured as llama-bench does so
 * that the two can be run back to back on the same file and compared row by row.
 *
 *   pp<p>  prefill: p random tokens decoded in batches of -b (logits for the last only),
 *          starting from an empty cache; tokens/s = p / seconds.
 *   tg<n>  decode: n tokens one at a time from an empty cache, each asking for logits;
 *          tokens/s = n / seconds.
 *   tg<n>x<P>  with --parallel P: P sequences decoded together, one token of each per
 *          step (a batch of P, every row's logits returned, as a server's continuous
 *          batching does); tokens/s = P n / seconds, the aggregate.
 *
 * Each test runs -r times after one warm-up (llama-bench warms up the same way: a batch of
 * prefill and one decode step), and reports the mean and sample standard deviation of the
 * per-run tokens/s. --json prints an array of objects with llama-bench's field names.
 * Besides speed it reports what a user waits for and pays for: load time, time to first
 * token (load + the cold first prefill of the prompt), KV-cache bytes and resident memory
 * (VmRSS / VmHWM from /proc/self/status) against file size + KV.
 *
 * Only include/herd.h is used: bench is a client of the public API like any other.
 */
#include "cli.h"

#include <dirent.h>   /* model folder sizes */
#include <math.h>     /* sqrt, isfinite */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h> /* file size */
#include <time.h>     /* clock_gettime */

struct bench_opts {
    const char *model;
    int n_prompt, n_gen, reps, n_batch, n_par;
    struct cli_run_opts run; /* -t, -c, --kv-type */
    int json;
    int profile;
};

static const char usage[] =
    "usage: herd bench -m MODEL [-p 512] [-n 128] [-r 3] [-b 512] [-t N] [-c N]\n"
    "                  [--parallel P] [--kv-type f16|q8_0|f32] [--json] [--profile]\n"
    "Prefill (pp) and decode (tg) tokens/s, measured as llama-bench measures them.\n"
    "  -m, --model M     a GGUF file or a Hugging Face folder\n"
    "  -p, --n-prompt N  prefill test length in tokens; 0 = none (default 512)\n"
    "  -n, --n-gen N     decode test length in tokens; 0 = none (default 128)\n"
    "  -r, --repetitions N  runs of each test after one warm-up (default 3)\n"
    "  -b, --batch-size N   tokens per forward call in prefill (default 512)\n"
    "  -P, --parallel P  decode P sequences together; tg reports their aggregate (default 1)\n"
    CLI_RUN_HELP("max(-p, -n)", "f16")
    "  --json            llama-bench's JSON fields instead of the table\n"
    "  --profile         then time each operation of one prefill (-p) and of decode (-n,\n"
    "                    up to 32 tokens): per weight shape and type the time and GB/s of\n"
    "                    weights streamed, the other operations, and the time between them\n";

struct bench_result {
    int n_prompt, n_gen;
    double *samples_ts; /* (reps) tokens/s of each run */
    double *samples_ns; /* (reps) wall time of each run */
    int n;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* kB value of a "Key:   123 kB" line of /proc/self/status, or -1 where there is none. */
static int64_t proc_status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    size_t klen = strlen(key);
    int64_t kb = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            kb = strtoll(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

/* Bytes on disk of a model: the GGUF file, or the files of a Hugging Face folder. */
static int64_t model_file_bytes(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode))
        return (int64_t)st.st_size;
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int64_t total = 0;
    struct dirent *e;
    char full[4096];
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors") != 0)
            continue;
        if (snprintf(full, sizeof full, "%s/%s", path, e->d_name) >= (int)sizeof full)
            continue;
        if (stat(full, &st) == 0)
            total += (int64_t)st.st_size;
    }
    closedir(d);
    return total;
}

static void mean_sd(const double *v, int n, double *mean, double *sd)
{
    double s = 0.0, ss = 0.0;
    for (int i = 0; i < n; i++)
        s += v[i];
    *mean = n > 0 ? s / n : 0.0;
    for (int i = 0; i < n; i++)
        ss += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
}

/* Deterministic pseudo-random token ids (an LCG): same stream for every run and engine. */
static void fill_tokens(int32_t *tok, int n, int32_t n_vocab, uint64_t *state)
{
    for (int i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
        tok[i] = (int32_t)((*state >> 33) % (uint64_t)n_vocab);
    }
}

struct bench_buf {
    int32_t *tok, *pos, *seq;
    int8_t *want;
    float *logits;
};

/* Prefill of n tokens from position 0 in batches of n_batch; logits of the last only. */
static herd_status run_prompt(herd_context *c, struct bench_buf *b, int n, int n_batch,
                              int32_t n_vocab, uint64_t *rng)
{
    herd_status s = herd_seq_truncate(c, 0, 0);
    if (s)
        return s;
    for (int done = 0; done < n;) {
        int k = n - done < n_batch ? n - done : n_batch;
        fill_tokens(b->tok, k, n_vocab, rng);
        for (int i = 0; i < k; i++) {
            b->pos[i] = done + i;
            b->seq[i] = 0;
            b->want[i] = done + i == n - 1;
        }
        herd_batch batch = {k, b->tok, b->pos, b->seq, b->want};
        s = herd_decode(c, &batch, b->logits);
        if (s)
            return s;
        done += k;
    }
    return HERD_OK;
}

/* Decode of n tokens one at a time from position 0 in each of n_par sequences, every
 * token asking for its logits. */
static herd_status run_gen(herd_context *c, struct bench_buf *b, int n, int n_par,
                           int32_t n_vocab, uint64_t *rng)
{
    herd_status s = HERD_OK;
    for (int j = 0; j < n_par && !s; j++)
        s = herd_seq_truncate(c, j, 0);
    for (int i = 0; i < n && !s; i++) {
        fill_tokens(b->tok, n_par, n_vocab, rng);
        for (int j = 0; j < n_par; j++) {
            b->pos[j] = i;
            b->seq[j] = j;
            b->want[j] = 1;
        }
        herd_batch batch = {n_par, b->tok, b->pos, b->seq, b->want};
        s = herd_decode(c, &batch, b->logits);
    }
    return s;
}

static int parse_args(int argc, char **argv, struct bench_opts *o)
{
    *o = (struct bench_opts){.n_prompt = 512, .n_gen = 128, .reps = 3, .n_batch = 512,
                             .n_par = 1};
    o->run.kv_type = HERD_DTYPE_F16; /* llama-bench's default cache, for like-for-like rows */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
            continue;
        }
        if (strcmp(a, "--profile") == 0) {
            o->profile = 1;
            continue;
        }
        if (cli_is_help(a))
            exit(cli_help(usage));
        int r = cli_run_option(&o->run, argc, argv, &i);
        if (r < 0)
            return 1;
        if (r == 0)
            continue;
        if (cli_value(argc, argv, &i, &v))
            return 1;
        if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0)
            o->model = v;
        else if (strcmp(a, "-p") == 0 || strcmp(a, "--n-prompt") == 0) {
            if (cli_parse_int(v, 0, 1 << 20, &o->n_prompt))
                return cli_fail("-p wants a token count >= 0, got '%s'", v);
        } else if (strcmp(a, "-n") == 0 || strcmp(a, "--n-gen") == 0) {
            if (cli_parse_int(v, 0, 1 << 20, &o->n_gen))
                return cli_fail("-n wants a token count >= 0, got '%s'", v);
        } else if (strcmp(a, "-r") == 0 || strcmp(a, "--repetitions") == 0) {
            if (cli_parse_int(v, 1, 1000, &o->reps))
                return cli_fail("-r wants a repetition count >= 1, got '%s'", v);
        } else if (strcmp(a, "-P") == 0 || strcmp(a, "--parallel") == 0) {
            if (cli_parse_int(v, 1, 4096, &o->n_par))
                return cli_fail("--parallel wants a sequence count >= 1, got '%s'", v);
        } else if (strcmp(a, "-b") == 0 || strcmp(a, "--batch-size") == 0) {
            if (cli_parse_int(v, 1, 1 << 16, &o->n_batch))
                return cli_fail("-b wants a batch size >= 1, got '%s'", v);
        } else {
            return cli_fail("bench: unknown option '%s' (see herd bench --help)", a);
        }
    }
    if (!o->model)
        return cli_fail("bench: -m MODEL is required");
    if (o->n_prompt == 0 && o->n_gen == 0)
        return cli_fail("bench: -p 0 and -n 0 leave nothing to measure");
    return 0;
}

/* "llama 8B Q4_0", in the spirit of llama-bench's model_type. */
static void model_type_str(const herd_model_info *info, char *out, size_t cap)
{
    double b = (double)info->n_params / 1e9;
    const char *dt = herd_dtype_name(info->weight_dtype);
    char up[16] = "?";
    if (dt) {
        size_t i = 0;
        for (; dt[i] && i + 1 < sizeof up; i++)
            up[i] = (char)(dt[i] >= 'a' && dt[i] <= 'z' ? dt[i] - 32 : dt[i]);
        up[i] = 0;
    }
    if (b >= 1.5)
        snprintf(out, cap, "llama %.0fB %s", b, up);
    else if (b >= 0.95)
        snprintf(out, cap, "llama 1B %s", up);
    else if (b >= 0.001)
        snprintf(out, cap, "llama %.0fM %s", b * 1000.0, up);
    else
        snprintf(out, cap, "llama %.0fK %s", b * 1e6, up);
}

/* What ran the model: the CPU kernel variant, or the device named by --device. */
static const char *engine_label(const struct bench_opts *o)
{
    const char *d = o->run.device;
    return d && *d && strcmp(d, "cpu") != 0 ? d : herd_cpu_isa();
}

/* --profile: one prefill and up to 32 decode steps with the backend's operation timing on;
 * the table, and how much of the wall time fell between operations (the thread pool's
 * wake-ups, the forward pass's own bookkeeping). */
static herd_status run_profile(herd_context *c, struct bench_buf *b, const struct bench_opts *o,
                               int32_t n_vocab)
{
    uint64_t rng = 11;
    char *text = malloc(16384);
    herd_status s = text ? HERD_OK : HERD_ERR_NOMEM;
    for (int pass = 0; pass < 2 && !s; pass++) {
        int n = pass == 0 ? o->n_prompt : (o->n_gen < 32 ? o->n_gen : 32);
        if (n == 0)
            continue;
        if (pass == 1) /* decode after a short prompt, as tg measures it */
            s = run_gen(c, b, 1, o->n_par, n_vocab, &rng);
        if (!s)
            s = herd_context_profile(c, true);
        double t0 = now_s();
        if (!s)
            s = pass == 0 ? run_prompt(c, b, n, o->n_batch, n_vocab, &rng)
                          : run_gen(c, b, n, o->n_par, n_vocab, &rng);
        double wall = now_s() - t0;
        if (!s)
            s = herd_context_profile_text(c, text, 16384);
        herd_context_profile(c, false);
        if (s)
            break;
        printf("\nprofile: %s of %d tokens%s, wall %.2f ms (%.2f ms per %s)\n%s",
               pass == 0 ? "prefill" : "decode", n, pass == 1 && o->n_par > 1 ? " x parallel" : "",
               wall * 1e3, wall * 1e3 / (pass == 0 ? 1 : n), pass == 0 ? "prefill" : "token",
               text);
    }
    free(text);
    return s;
}

static void print_json_row(const struct bench_opts *o, const herd_model_info *info,
                           const char *type, const struct bench_result *r, int n_threads,
                           double load_s, double ttft_s, int64_t kv, int64_t rss, int last)
{
    double ts, sd, ns, nsd;
    mean_sd(r->samples_ts, r->n, &ts, &sd);
    mean_sd(r->samples_ns, r->n, &ns, &nsd);
    printf("  {\"engine\": \"herd\", \"cpu_isa\": \"%s\", \"device\": \"%s\", "
           "\"model_filename\": \"", herd_cpu_isa(),
           o->run.device && *o->run.device ? o->run.device : "cpu");
    for (const char *p = o->model; *p; p++) {
        if (*p == '"' || *p == '\\')
            putchar('\\');
        putchar(*p);
    }
    printf("\", \"model_type\": \"%s\", \"model_size\": %lld, \"model_n_params\": %lld, "
           "\"n_batch\": %d, \"n_threads\": %d, \"type_k\": \"%s\", \"n_prompt\": %d, "
           "\"n_gen\": %d, \"n_parallel\": %d, \"avg_ns\": %.0f, \"stddev_ns\": %.0f, \"avg_ts\": %.6f, "
           "\"stddev_ts\": %.6f, \"samples_ts\": [",
           type, (long long)info->weight_bytes, (long long)info->n_params, o->n_batch,
           n_threads, herd_dtype_name(o->run.kv_type), r->n_prompt, r->n_gen, o->n_par, ns, nsd,
           ts, sd);
    for (int i = 0; i < r->n; i++)
        printf("%s%.6f", i ? ", " : "", r->samples_ts[i]);
    printf("], \"load_s\": %.4f, \"ttft_s\": %.4f, \"kv_bytes\": %lld, \"rss_bytes\": %lld}%s\n",
           load_s, ttft_s, (long long)kv, (long long)rss, last ? "" : ",");
}

static int run_test(herd_context *c, struct bench_buf *b, const struct bench_opts *o,
                    int32_t n_vocab, struct bench_result *r)
{
    uint64_t rng = 42;
    for (int k = 0; k < o->reps; k++) {
        double t0 = now_s();
        herd_status s = r->n_prompt ? run_prompt(c, b, r->n_prompt, o->n_batch, n_vocab, &rng)
                                    : run_gen(c, b, r->n_gen, o->n_par, n_vocab, &rng);
        double dt = now_s() - t0;
        if (s)
            return cli_fail_status(s);
        int ntok = r->n_prompt ? r->n_prompt : r->n_gen * o->n_par;
        r->samples_ns[k] = dt * 1e9;
        r->samples_ts[k] = dt > 0 ? ntok / dt : 0.0;
        r->n = k + 1;
    }
    if (!isfinite(b->logits[0]))
        fprintf(stderr, "herd bench: warning: the logits are not finite\n");
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    struct bench_opts o;
    if (parse_args(argc, argv, &o))
        return 1;

    int rc = 1;
    herd_model *m = NULL;
    herd_context *c = NULL;
    struct bench_buf b = {0};
    struct bench_result res[2] = {{0}};
    herd_status s;

    double t0 = now_s();
    herd_model_params mp = {.n_threads = o.run.threads, .device = o.run.device};
    if ((s = herd_model_load(o.model, &mp, &m)))
        return cli_fail_status(s);
    double load_s = now_s() - t0;
    const herd_model_info *info = herd_model_get_info(m);

    herd_context_params cp = herd_context_default_params();
    cp.n_ctx = o.n_prompt > o.n_gen ? o.n_prompt : o.n_gen;
    if (cp.n_ctx < 1)
        cp.n_ctx = 1;
    if (o.run.ctx > 0)
        cp.n_ctx = o.run.ctx;
    cp.n_seq = o.n_par;
    cp.n_batch = o.n_batch > o.n_par ? o.n_batch : o.n_par;
    cp.n_threads = o.run.threads;
    cp.kv_type = o.run.kv_type;
    if ((s = herd_context_new(m, &cp, &c))) {
        rc = cli_fail_status(s);
        goto done;
    }
    int64_t kv_bytes = herd_context_kv_bytes(c);
    int bmax = cp.n_batch;
    b.tok = calloc((size_t)bmax, sizeof *b.tok);
    b.pos = calloc((size_t)bmax, sizeof *b.pos);
    b.seq = calloc((size_t)bmax, sizeof *b.seq);
    b.want = calloc((size_t)bmax, sizeof *b.want);
    b.logits = calloc((size_t)info->n_vocab * (size_t)o.n_par, sizeof *b.logits);
    for (int i = 0; i < 2; i++) {
        res[i].samples_ts = calloc((size_t)o.reps, sizeof(double));
        res[i].samples_ns = calloc((size_t)o.reps, sizeof(double));
    }
    if (!b.tok || !b.pos || !b.seq || !b.want || !b.logits || !res[0].samples_ts ||
        !res[0].samples_ns || !res[1].samples_ts || !res[1].samples_ns) {
        rc = cli_fail("bench: out of memory");
        goto done;
    }

    /* Warm-up, as llama-bench: the cold first prefill of the prompt is also what a user
     * waits for before the first token, so it gives the time to first token. */
    uint64_t rng = 7;
    double t1 = now_s();
    s = o.n_prompt ? run_prompt(c, &b, o.n_prompt, o.n_batch, info->n_vocab, &rng)
                   : run_gen(c, &b, 1, o.n_par, info->n_vocab, &rng);
    double ttft_s = load_s + (now_s() - t1);
    if (!s && o.n_gen)
        s = run_gen(c, &b, 1, o.n_par, info->n_vocab, &rng);
    if (s) {
        rc = cli_fail_status(s);
        goto done;
    }

    int n_res = 0;
    if (o.n_prompt) {
        res[n_res].n_prompt = o.n_prompt;
        if (run_test(c, &b, &o, info->n_vocab, &res[n_res]))
            goto done;
        n_res++;
    }
    if (o.n_gen) {
        res[n_res].n_gen = o.n_gen;
        if (run_test(c, &b, &o, info->n_vocab, &res[n_res]))
            goto done;
        n_res++;
    }

    int64_t rss = proc_status_kb("VmRSS") * 1024;
    int64_t hwm = proc_status_kb("VmHWM") * 1024;
    int64_t file = model_file_bytes(o.model);
    char type[64];
    model_type_str(info, type, sizeof type);
    int nt = herd_n_threads(o.run.threads);

    fprintf(stderr, "herd bench: %s, %s kernels, load %.2f s, time to first token %.2f s "
            "(load + cold pp%d)\n", type, engine_label(&o), load_s, ttft_s, o.n_prompt);
    fprintf(stderr, "herd bench: KV cache %.1f MiB (%s, %d positions); resident %.2f GB, "
            "peak %.2f GB; file %.2f GB + KV = %.2f GB (peak %.0f%% of it)\n",
            kv_bytes / 1048576.0, herd_dtype_name(o.run.kv_type), cp.n_ctx, rss / 1e9, hwm / 1e9,
            file / 1e9, (file + kv_bytes) / 1e9,
            file > 0 ? 100.0 * (double)hwm / (double)(file + kv_bytes) : 0.0);

    if (o.json) {
        printf("[\n");
        for (int i = 0; i < n_res; i++)
            print_json_row(&o, info, type, &res[i], nt, load_s, ttft_s, kv_bytes, rss,
                           i == n_res - 1);
        printf("]\n");
    } else {
        printf("| model | size | params | backend | threads | test | t/s |\n");
        printf("| --- | ---: | ---: | --- | ---: | ---: | ---: |\n");
        for (int i = 0; i < n_res; i++) {
            double ts, sd;
            mean_sd(res[i].samples_ts, res[i].n, &ts, &sd);
            char test[32];
            if (res[i].n_prompt)
                snprintf(test, sizeof test, "pp%d", res[i].n_prompt);
            else if (o.n_par > 1)
                snprintf(test, sizeof test, "tg%dx%d", res[i].n_gen, o.n_par);
            else
                snprintf(test, sizeof test, "tg%d", res[i].n_gen);
            printf("| %s | %.2f GiB | %.2f B | herd %s | %d | %s | %.2f ± %.2f |\n", type,
                   info->weight_bytes / 1073741824.0, info->n_params / 1e9, engine_label(&o),
                   nt, test, ts, sd);
        }
    }
    if (o.profile && (s = run_profile(c, &b, &o, info->n_vocab))) {
        rc = cli_fail_status(s);
        goto done;
    }
    fflush(stdout);
    rc = 0;
done:
    for (int i = 0; i < 2; i++) {
        free(res[i].samples_ts);
        free(res[i].samples_ns);
    }
    free(b.tok);
    free(b.pos);
    free(b.seq);
    free(b.want);
    free(b.logits);
    herd_context_free(c);
    herd_model_free(m);
    return rc;
}
