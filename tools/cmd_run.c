/*
 * cmd_run.c - herd run: chat with a model.
 *
 *   herd run -m MODEL [-p TEXT] [--system TEXT] [--ctx N] [-n N] [--temp T] [--top-p P]
 *            [--top-k K] [--min-p P] [--repeat-penalty R] [--seed S] [--template 3.1|3.2|chatml]
 *
 * On a terminal: an interactive chat with line editing and history (libedit when built
 * with it), streamed tokens, multi-line input (end a line with '\' or wrap text in """),
 * /system, /reset, /help, /exit; Ctrl-C stops the current answer, not the program; tokens/s
 * go to stderr after each answer. With -p, or text piped on stdin, it answers once to stdout.
 *
 * Every turn renders the whole conversation with the official chat template as token ids
 * (herd_chat_render_messages_tokens) and feeds only what differs from what the KV cache
 * already holds. A turn stops at <|eot_id|>, <|eom_id|> or <|end_of_text|>. When the
 * conversation no longer fits the context, the oldest turns are dropped (the system prompt
 * stays) and stderr says so.
 */
#include "cli_model.h"
#include "cli_spec.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h> /* isatty */

#ifdef HERD_HAVE_LIBEDIT
#include <editline/readline.h> /* readline, add_history */
#endif

/* Prompt tokens fed per herd_decode call (the context's default n_batch is 512). */
#define RUN_CHUNK 256
/* Room kept free for an answer when deciding whether a conversation still fits. */
#define RUN_ANSWER_ROOM 256

struct run_opts {
    const char *system;
    const char *tmpl;
    int n_predict; /* per answer; 0 = until a stop token or the context is full */
    herd_sampler_params sp;
    int have_temp, have_top_p, have_seed;
    struct cli_spec_opts spec;
};

struct chat {
    herd_model *m;
    herd_context *c;
    const herd_tokenizer *tok;
    const herd_model_info *in;
    herd_chat_options copt;
    herd_sampler *smp;
    float *logits;
    char *system;             /* owned; NULL = none */
    herd_chat_message *msgs;  /* the turns after the system prompt; contents owned */
    size_t n_msgs, cap_msgs;
    int32_t *cached;          /* the ids sequence 0 holds, in order */
    size_t n_cached, cap_cached;
    int n_predict;
    int interactive;
    herd_model *draft;        /* --draft; NULL otherwise */
    herd_spec *spec;          /* speculative decoding; NULL = off */
};

static volatile sig_atomic_t interrupted;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* ---------------------------------------------------------------- conversation */

static int push_msg(struct chat *ch, const char *role, const char *text, size_t len)
{
    if (ch->n_msgs == ch->cap_msgs) {
        size_t cap = ch->cap_msgs ? ch->cap_msgs * 2 : 8;
        herd_chat_message *p = realloc(ch->msgs, cap * sizeof *p);
        if (!p)
            return cli_fail("out of memory");
        ch->msgs = p;
        ch->cap_msgs = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return cli_fail("out of memory");
    memcpy(copy, text, len);
    copy[len] = '\0';
    ch->msgs[ch->n_msgs].role = role;
    ch->msgs[ch->n_msgs].content = copy;
    ch->n_msgs++;
    return 0;
}

static void drop_msgs(struct chat *ch, size_t k)
{
    for (size_t i = 0; i < k && i < ch->n_msgs; i++)
        free((char *)ch->msgs[i].content);
    if (k > ch->n_msgs)
        k = ch->n_msgs;
    memmove(ch->msgs, ch->msgs + k, (ch->n_msgs - k) * sizeof *ch->msgs);
    ch->n_msgs -= k;
}

/* The conversation (system first) as ids, with the assistant header at the end. */
static herd_status render(struct chat *ch, int32_t **ids, size_t *n)
{
    size_t total = ch->n_msgs + (ch->system ? 1 : 0);
    herd_chat_message *all = malloc((total ? total : 1) * sizeof *all);
    if (!all)
        return HERD_ERR_NOMEM;
    size_t k = 0;
    if (ch->system)
        all[k++] = (herd_chat_message){"system", ch->system};
    memcpy(all + k, ch->msgs, ch->n_msgs * sizeof *all);
    herd_status s = herd_chat_render_messages_tokens(ch->tok, all, total, &ch->copt, ids, n);
    free(all);
    return s;
}

static int cache_push(struct chat *ch, const int32_t *ids, size_t n)
{
    if (ch->n_cached + n > ch->cap_cached) {
        size_t cap = ch->cap_cached ? ch->cap_cached : 1024;
        while (cap < ch->n_cached + n)
            cap *= 2;
        int32_t *p = realloc(ch->cached, cap * sizeof *p);
        if (!p)
            return cli_fail("out of memory");
        ch->cached = p;
        ch->cap_cached = cap;
    }
    memcpy(ch->cached + ch->n_cached, ids, n * sizeof *ids);
    ch->n_cached += n;
    return 0;
}

/* Makes the cache hold ids: keeps the common prefix, feeds the rest; logits of the last. */
static herd_status sync_cache(struct chat *ch, const int32_t *ids, size_t n, size_t *fed)
{
    size_t same = 0;
    while (same < n && same < ch->n_cached && ch->cached[same] == ids[same])
        same++;
    if (same == n) /* the last token's logits are needed again: feed it anew */
        same = n - 1;
    herd_status s = herd_seq_truncate(ch->c, 0, (int32_t)same);
    if (s != HERD_OK)
        return s;
    ch->n_cached = same;
    *fed = n - same;
    for (size_t i = same; i < n; i += RUN_CHUNK) {
        size_t k = n - i < RUN_CHUNK ? n - i : RUN_CHUNK;
        s = cli_prefill(ch->c, ids + i, k, ch->logits);
        if (s != HERD_OK)
            return s;
        if (cache_push(ch, ids + i, k))
            return HERD_ERR_NOMEM;
    }
    return HERD_OK;
}

/* Renders the conversation, dropping the oldest turns while it does not fit. */
static int fit_conversation(struct chat *ch, int32_t **ids, size_t *n)
{
    int32_t n_ctx = herd_context_n_ctx(ch->c);
    size_t room = (size_t)n_ctx / 4 < RUN_ANSWER_ROOM ? (size_t)n_ctx / 4 : RUN_ANSWER_ROOM;
    for (;;) {
        herd_status s = render(ch, ids, n);
        if (s != HERD_OK)
            return cli_fail_status(s);
        if (*n + room <= (size_t)n_ctx)
            return 0;
        if (ch->n_msgs <= 1) {
            herd_free(*ids);
            *ids = NULL;
            drop_msgs(ch, ch->n_msgs);
            return cli_fail("the message needs %zu positions; the context holds %d (use --ctx)",
                            *n + room, n_ctx);
        }
        /* Drop the oldest exchange: a user message and the answers up to the next one. */
        size_t k = 1;
        while (k < ch->n_msgs - 1 && strcmp(ch->msgs[k].role, "user") != 0)
            k++;
        fprintf(stderr, "herd: the conversation (%zu tokens) outgrew the context of %d "
                        "positions: dropped the oldest %zu message%s, kept the system prompt\n",
                *n, n_ctx, k, k == 1 ? "" : "s");
        herd_free(*ids);
        *ids = NULL;
        drop_msgs(ch, k);
    }
}

/* One answer to the conversation as it stands; appends it as the assistant's message. */
static int answer(struct chat *ch, FILE *out)
{
    int32_t *ids = NULL;
    size_t n = 0, fed = 0;
    if (fit_conversation(ch, &ids, &n))
        return 1;
    double t0 = now_s();
    herd_status s = sync_cache(ch, ids, n, &fed);
    herd_free(ids);
    if (s != HERD_OK)
        return cli_fail_status(s);
    double t1 = now_s();

    herd_detok_stream *ds = NULL;
    if (herd_detok_stream_new(ch->tok, &ds) != HERD_OK)
        return cli_fail_status(HERD_ERR_NOMEM);
    size_t cap = 1024, len = 0;
    char *text = malloc(cap);
    char piece[512];
    int n_gen = 0, rc = 0;
    const char *why = NULL;
    int32_t n_ctx = herd_context_n_ctx(ch->c);
    interrupted = 0;
    /* With speculative decoding a step gives several tokens at once (already accepted into
     * the sampler), and each emitted token is fed by the next step: cached then runs one
     * token ahead of the cache, which the end of the answer puts right. */
    int32_t pend[64];
    int32_t n_pend = 0, i_pend = 0;
    while (text) {
        if (interrupted) {
            why = "stopped (Ctrl-C)";
            break;
        }
        if (ch->n_predict > 0 && n_gen >= ch->n_predict) {
            why = "stopped at the -n limit";
            break;
        }
        int32_t tok;
        if (i_pend < n_pend) {
            tok = pend[i_pend++];
        } else if (ch->spec && n_gen > 0) {
            if (ch->n_cached >= (size_t)n_ctx) {
                why = "stopped: the context is full";
                break;
            }
            int32_t room = ch->n_predict > 0 ? ch->n_predict - n_gen : 64;
            i_pend = 0;
            s = herd_spec_step(ch->spec, 0, ch->smp, ch->cached, (int32_t)ch->n_cached,
                               room < 64 ? room : 64, pend, &n_pend);
            if (s != HERD_OK) {
                rc = cli_fail_status(s);
                break;
            }
            continue;
        } else {
            s = herd_sampler_sample(ch->smp, ch->logits, ch->in->n_vocab, &tok);
            if (s != HERD_OK) {
                rc = cli_fail_status(s);
                break;
            }
            if (herd_chat_stop_kind(ch->tok, tok) == HERD_CHAT_STOP_NONE)
                herd_sampler_accept(ch->smp, tok);
        }
        if (herd_chat_stop_kind(ch->tok, tok) != HERD_CHAT_STOP_NONE)
            break;
        n_gen++;
        size_t k = 0;
        if (herd_detok_stream_push(ds, tok, piece, sizeof piece, &k) == HERD_OK && k) {
            fwrite(piece, 1, k, out);
            fflush(out);
            if (len + k + 1 > cap) {
                char *p = realloc(text, cap * 2 + k);
                if (!p) {
                    free(text);
                    text = NULL;
                    break;
                }
                text = p;
                cap = cap * 2 + k;
            }
            memcpy(text + len, piece, k);
            len += k;
        }
        if (ch->spec) {
            if (cache_push(ch, &tok, 1)) {
                rc = 1;
                break;
            }
            continue;
        }
        if (ch->n_cached + 1 >= (size_t)n_ctx) {
            why = "stopped: the context is full";
            break;
        }
        s = cli_prefill(ch->c, &tok, 1, ch->logits);
        if (s != HERD_OK) {
            rc = cli_fail_status(s);
            break;
        }
        cache_push(ch, &tok, 1);
    }
    if (ch->spec) { /* cached and the cache agree again: what both hold */
        size_t held = (size_t)herd_seq_len(ch->c, 0);
        if (held < ch->n_cached)
            ch->n_cached = held;
        herd_seq_truncate(ch->c, 0, (int32_t)ch->n_cached);
    }
    size_t k = 0;
    if (herd_detok_stream_push(ds, -1, piece, sizeof piece, &k) == HERD_OK && k && text &&
        len + k + 1 <= cap) {
        fwrite(piece, 1, k, out);
        memcpy(text + len, piece, k);
        len += k;
    }
    herd_detok_stream_free(ds);
    fputc('\n', out);
    fflush(out);
    double t2 = now_s();
    if (!text)
        return cli_fail("out of memory");
    if (why)
        fprintf(stderr, "herd: %s\n", why);
    fprintf(stderr, "[%d tokens, %.1f tokens/s; prompt %zu new tokens, %.1f tokens/s]\n", n_gen,
            t2 > t1 ? n_gen / (t2 - t1) : 0.0, fed, t1 > t0 ? fed / (t1 - t0) : 0.0);
    cli_spec_report(ch->spec);
    if (rc == 0)
        rc = push_msg(ch, "assistant", text, len);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- input */

/* One line without its newline (owned), or NULL at end of input. */
static char *read_line(const char *prompt, int interactive)
{
#ifdef HERD_HAVE_LIBEDIT
    if (interactive) {
        char *line = readline(prompt);
        if (line && *line)
            add_history(line);
        return line;
    }
#endif
    if (interactive) {
        fputs(prompt, stdout);
        fflush(stdout);
    }
    size_t cap = 256, len = 0;
    char *buf = malloc(cap);
    int c;
    while (buf && (c = getchar()) != EOF && c != '\n') {
        if (len + 2 > cap) {
            char *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
            cap *= 2;
        }
        buf[len++] = (char)c;
    }
    if (!buf || (len == 0 && c == EOF)) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

static int append_text(char **acc, size_t *len, const char *s)
{
    size_t n = strlen(s);
    char *p = realloc(*acc, *len + n + 2);
    if (!p)
        return -1;
    memcpy(p + *len, s, n);
    *len += n;
    p[*len] = '\0';
    *acc = p;
    return 0;
}

/* A user message: one line, or lines joined while they end in '\', or a """ block.
 * Returns NULL at end of input; *was_interrupted when Ctrl-C cut the input. */
static char *read_message(int *was_interrupted)
{
    char *acc = NULL;
    size_t len = 0;
    int block = 0;
    *was_interrupted = 0;
    for (;;) {
        interrupted = 0;
        char *line = read_line(acc ? "... " : ">>> ", 1);
        if (!line) {
            *was_interrupted = interrupted != 0;
            free(acc);
            return NULL;
        }
        size_t n = strlen(line);
        int more = 0;
        if (strcmp(line, "\"\"\"") == 0) {
            block = !block;
            free(line);
            if (block) {
                if (!acc)
                    acc = calloc(1, 1);
                continue;
            }
            return acc ? acc : calloc(1, 1);
        }
        if (!block && n > 0 && line[n - 1] == '\\') {
            line[n - 1] = '\0';
            more = 1;
        }
        if ((acc && len > 0 && append_text(&acc, &len, "\n")) || append_text(&acc, &len, line)) {
            free(line);
            free(acc);
            return NULL;
        }
        free(line);
        if (!block && !more)
            return acc;
    }
}

static void help(void)
{
    printf("Type a message and press Enter. End a line with \\ to continue it, or put text\n"
           "between two lines of \"\"\" for a multi-line message.\n"
           "  /system TEXT   set the system prompt (and start over)\n"
           "  /reset         forget the conversation (keeps the system prompt)\n"
           "  /help          this text\n"
           "  /exit          quit (also Ctrl-D)\n"
           "Ctrl-C stops the answer being written.\n");
}

static void reset(struct chat *ch)
{
    drop_msgs(ch, ch->n_msgs);
    herd_sampler_reset(ch->smp);
}

static int interactive_loop(struct chat *ch)
{
    fprintf(stderr, "herd: chatting with %s (%s template, %d positions); /help for help\n",
            ch->in->name ? ch->in->name : "the model",
            cli_template_name(ch->copt.tmpl), herd_context_n_ctx(ch->c));
    for (;;) {
        int was_interrupted;
        char *msg = read_message(&was_interrupted);
        if (!msg) {
            if (was_interrupted) {
                printf("\n");
                continue;
            }
            printf("\n");
            return 0;
        }
        if (strcmp(msg, "/exit") == 0 || strcmp(msg, "/quit") == 0) {
            free(msg);
            return 0;
        }
        if (strcmp(msg, "/help") == 0) {
            help();
        } else if (strcmp(msg, "/reset") == 0) {
            reset(ch);
            printf("(conversation cleared)\n");
        } else if (strncmp(msg, "/system", 7) == 0 && (msg[7] == ' ' || msg[7] == '\0')) {
            const char *t = msg[7] ? msg + 8 : "";
            free(ch->system);
            ch->system = *t ? strdup(t) : NULL;
            reset(ch);
            printf(*t ? "(system prompt set; conversation cleared)\n"
                      : "(system prompt removed; conversation cleared)\n");
        } else if (msg[0] == '/') {
            printf("unknown command %s (try /help)\n", msg);
        } else if (msg[0] != '\0') {
            if (push_msg(ch, "user", msg, strlen(msg)) == 0 && answer(ch, stdout) != 0 &&
                ch->n_msgs && strcmp(ch->msgs[ch->n_msgs - 1].role, "user") == 0) {
                /* The failure was printed; the chat goes on without this turn. */
                ch->n_msgs--;
                free((char *)ch->msgs[ch->n_msgs].content);
            }
        }
        free(msg);
    }
}

/* ---------------------------------------------------------------- options and main */

static int parse_run_option(struct run_opts *r, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v = NULL;
    double d;
    if (strcmp(a, "--system") == 0 || strcmp(a, "-s") == 0) {
        return cli_value(argc, argv, i, &r->system);
    } else if (strcmp(a, "--template") == 0) {
        return cli_value(argc, argv, i, &r->tmpl);
    } else if (strcmp(a, "-n") == 0 || strcmp(a, "--n-predict") == 0) {
        if (cli_value(argc, argv, i, &v) || cli_parse_int(v, 0, INT32_MAX, &r->n_predict))
            return v ? cli_fail("-n: expected a token count >= 0") : 1;
    } else if (strcmp(a, "--temp") == 0) {
        if (cli_value(argc, argv, i, &v) || cli_parse_float(v, 0.0, 100.0, &d))
            return v ? cli_fail("--temp: expected a number from 0 to 100") : 1;
        r->sp.temperature = (float)d;
        r->have_temp = 1;
    } else if (strcmp(a, "--top-p") == 0) {
        if (cli_value(argc, argv, i, &v) || cli_parse_float(v, 0.0, 1.0, &d))
            return v ? cli_fail("--top-p: expected a number from 0 to 1") : 1;
        r->sp.top_p = (float)d;
        r->have_top_p = 1;
    } else if (strcmp(a, "--min-p") == 0) {
        if (cli_value(argc, argv, i, &v) || cli_parse_float(v, 0.0, 1.0, &d))
            return v ? cli_fail("--min-p: expected a number from 0 to 1") : 1;
        r->sp.min_p = (float)d;
    } else if (strcmp(a, "--top-k") == 0) {
        if (cli_value(argc, argv, i, &v) || cli_parse_int(v, 0, INT32_MAX, &r->sp.top_k))
            return v ? cli_fail("--top-k: expected a count >= 0") : 1;
    } else if (strcmp(a, "--repeat-penalty") == 0) {
        if (cli_value(argc, argv, i, &v) || cli_parse_float(v, 0.01, 100.0, &d))
            return v ? cli_fail("--repeat-penalty: expected a number from 0.01 to 100") : 1;
        r->sp.repeat_penalty = (float)d;
    } else if (strcmp(a, "--seed") == 0) {
        int64_t s;
        if (cli_value(argc, argv, i, &v) || cli_parse_i64(v, 0, INT64_MAX, &s))
            return v ? cli_fail("--seed: expected a number >= 0") : 1;
        r->sp.seed = (uint64_t)s;
        r->have_seed = 1;
    } else {
        int rc = cli_spec_option(&r->spec, argc, argv, i);
        if (rc == 1)
            return cli_fail("run: unknown option '%s' (see herd run --help)", a);
        return rc < 0;
    }
    return 0;
}

/* Everything on stdin as one message (piped use). */
static char *read_all_stdin(void)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len - 1, stdin)) > 0) {
        len += got;
        if (len + 1 == cap) {
            char *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
            cap *= 2;
        }
    }
    if (buf)
        buf[len] = '\0';
    return buf;
}

static int setup(struct chat *ch, struct cli_model_opts *o, struct run_opts *r)
{
    if (cli_model_open(o, &ch->m, &ch->c))
        return 1;
    if (cli_spec_open(&r->spec, &o->run, ch->c, &ch->draft, &ch->spec))
        return 1;
    ch->in = herd_model_get_info(ch->m);
    ch->tok = herd_model_tokenizer(ch->m);
    if (!ch->tok)
        return cli_fail("%s has no tokenizer", o->model);
    ch->copt = herd_chat_options_for(ch->in); /* the file's template and system message */
    if (r->tmpl && strcmp(r->tmpl, "3.1") != 0 && strcmp(r->tmpl, "3.2") != 0 &&
        strcmp(r->tmpl, "chatml") != 0)
        return cli_fail("--template: expected 3.1, 3.2 or chatml, got '%s'", r->tmpl);
    if (r->tmpl)
        ch->copt.tmpl = strcmp(r->tmpl, "3.2") == 0      ? HERD_CHAT_LLAMA32
                        : strcmp(r->tmpl, "chatml") == 0 ? HERD_CHAT_CHATML
                                                         : HERD_CHAT_LLAMA31;
    herd_sampler_params sp = r->sp;
    herd_sampler_params from_model = herd_sampler_default_params();
    herd_sampler_params_from_model(&from_model, ch->in);
    if (!r->have_temp)
        sp.temperature = from_model.temperature;
    if (!r->have_top_p)
        sp.top_p = from_model.top_p;
    if (!r->have_seed)
        sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    herd_status s = herd_sampler_new(&sp, ch->in->n_vocab, &ch->smp);
    if (s != HERD_OK)
        return cli_fail_status(s);
    herd_spec_seq_reset(ch->spec, 0, sp.seed);
    ch->logits = malloc((size_t)ch->in->n_vocab * sizeof *ch->logits);
    if (!ch->logits)
        return cli_fail("out of memory");
    ch->system = r->system ? strdup(r->system) : NULL;
    ch->n_predict = r->n_predict;
    return 0;
}

static const char usage[] =
    "usage: herd run -m MODEL [-p TEXT] [--system TEXT] [-n N] [--temp T] [--top-p P]\n"
    "                [--top-k K] [--min-p P] [--repeat-penalty R] [--seed S]\n"
    "                [--template 3.1|3.2|chatml] [-t N] [-c N] [--kv-type T]\n"
    "                [--draft M | --lookup N] [--draft-max K] [--draft-min K]\n"
    "Chat with the model: interactive on a terminal; with -p TEXT or text on stdin it\n"
    "answers once to stdout.\n" CLI_MODEL_HELP
    "  -s, --system T    system prompt\n"
    "  -n, --n-predict N most tokens per answer; 0 = until a stop token (default 0)\n"
    "  --temp, --top-p, --top-k, --min-p, --seed   sampling, as for herd generate\n"
    "  --repeat-penalty R  penalty for recently seen tokens; 1 = off (default 1)\n"
    "  --template V      chat template 3.1, 3.2 or chatml (default: from the model)\n"
    CLI_SPEC_HELP
    "In the chat:\n";

int cmd_run(int argc, char **argv)
{
    struct cli_model_opts o = {0};
    struct run_opts r = {0};
    r.sp = herd_sampler_default_params();
    /* o.run.ctx 0: the library default, min(model maximum, 4096), far less than 128k */
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            cli_help(usage);
            help();
            return 0;
        }
        int rc = cli_model_option(&o, argc, argv, &i);
        if (rc < 0)
            return 1;
        if (rc == 1 && parse_run_option(&r, argc, argv, &i))
            return 1;
    }
    struct chat ch;
    memset(&ch, 0, sizeof ch);
    int rc = setup(&ch, &o, &r);
    if (rc == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigint;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: a read at the prompt returns */
        ch.interactive = !o.prompt && isatty(0);
        if (ch.interactive) {
            rc = interactive_loop(&ch);
        } else {
            char *msg = o.prompt ? strdup(o.prompt) : read_all_stdin();
            if (!msg)
                rc = cli_fail("out of memory");
            else if (!o.prompt && msg[0] == '\0')
                rc = cli_fail("run: no message (use -p TEXT or pipe text on stdin)");
            else
                rc = push_msg(&ch, "user", msg, strlen(msg)) || answer(&ch, stdout);
            free(msg);
        }
    }
    drop_msgs(&ch, ch.n_msgs);
    free(ch.msgs);
    free(ch.system);
    free(ch.cached);
    free(ch.logits);
    herd_sampler_free(ch.smp);
    herd_spec_free(ch.spec);
    herd_model_free(ch.draft);
    herd_context_free(ch.c);
    herd_model_free(ch.m);
    return rc;
}
