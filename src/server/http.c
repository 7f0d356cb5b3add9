/*
 * http.c - the HTTP front of herd serve, on libmicrohttpd (no hand-written HTTP parsing).
 *
 * MHD runs one thread per connection, so a handler may block while its request waits for
 * tokens. Routes: GET /health (no auth), GET /v1/models[/id], GET /metrics,
 * POST /v1/chat/completions, POST /v1/completions (also without the /v1 prefix). Every
 * error answers in OpenAI's {"error":{...}} shape with its HTTP status.
 *
 * Disconnects: a streaming response is an MHD callback response; when the client goes
 * away MHD destroys it and the free callback marks the request cancelled, which the
 * scheduler honours in its next step. While a handler waits (queued, prefill, or a
 * non-streaming request) it polls its socket for a hang-up every WAIT_MS, so those are
 * cancelled too.
 *
 * Abuse: MHD accepts CONN_RESERVE connections past --max-conns, and a connection over the
 * total or its client's limit (counted per address bucket) is answered 503 + Retry-After
 * and closed (GET /health is still answered), with a short idle timeout, so a flood of
 * half-sent headers delays nothing by more than that timeout. Bodies over --max-body are
 * read to their end (up to DISCARD_MAX) and then answered 413, so the client sees the
 * answer, not a broken pipe.
 *
 * Per connection (struct sock, MHD's socket context) the server keeps what every reply
 * needs: the request id (X-Request-Id echoed or made), the allowed CORS origin and the
 * access-log fields, written as one line when MHD completes the request.
 */
#include "server.h"

#include <math.h>       /* floor */
#include <microhttpd.h> /* MHD_* */
#include <netdb.h>      /* getaddrinfo */
#include <netinet/in.h> /* sockaddr_in/in6: the client address bucket */
#include <stdarg.h>     /* va_list: MHD's log callback */
#include <poll.h>       /* poll, POLLRDHUP */
#include <signal.h>     /* pthread_sigmask: the server's threads take no signals */
#include <stdio.h>      /* snprintf, fprintf */
#include <stdlib.h>     /* strtoull */
#include <time.h>       /* time, clock_gettime, nanosleep */
#include <unistd.h>     /* close: the listening socket after quiesce */

#define WAIT_MS 100 /* how often a waiting handler looks at its socket */
/* How long herd_server_stop lets ended requests finish sending (the final events of a
 * stream) before it closes their connections: enough for any client that reads. */
#define STOP_DRAIN_MS 5000
/* Connections MHD accepts past --max-conns only to answer them 503: without them a full
 * server stops accepting and new clients wait unanswered in the kernel's backlog. */
#define CONN_RESERVE 64
/* Idle seconds allowed to a connection accepted over a limit: it is answered at once when
 * its header arrives; one that sends nothing must not hold its place for long. */
#define OVER_TIMEOUT_S 2u
/* How much of a body past --max-body is read (and dropped) so that the 413 reaches the
 * client; a larger upload is answered at once and its connection closed. */
#define DISCARD_MAX ((size_t)64 << 20)
#define IP_BUCKETS 4096 /* per-address connection counters; a collision only shares a limit */

struct server {
    struct srv_sched *sched;
    struct srv_metrics *metrics;
    const herd_model_info *info;
    const herd_tokenizer *tok;
    char *model_name;
    const char *api_key;
    size_t max_body;
    int64_t started;
    atomic_uint_fast64_t next_id;
    atomic_int active; /* requests from their first callback to MHD's completed one */
    int32_t max_conns, max_per_client;
    unsigned timeout_s; /* idle limit of a connection that is not being answered */
    const char *cors;  /* allowed origins ("*" or a comma list), NULL when CORS is off */
    int32_t access_log; /* 0 off, 1 text, 2 JSON lines */
    enum srv_pooling pooling; /* embeddings' default (--pooling) */
    int32_t max_choices;      /* n x prompts per request (--max-choices) */
    atomic_int n_conns;
    atomic_int ip_conns[IP_BUCKETS];
    atomic_bool stopping; /* herd_server_stop began: new requests get 503 */
    struct srv_guard *guard; /* --guard: the Llama Guard shield (guard.c), or NULL */
};

/* Per TCP connection (MHD's socket context), reset for each request on it. */
struct sock {
    uint32_t bucket;   /* index into ip_conns */
    bool over;         /* accepted over a connection limit: answer 503 and close */
    char remote[48];   /* client address, for the access log */
    /* the current request */
    char req_id[72];
    char method[12];
    char path[128];
    const char *origin; /* the allowed Origin to echo (borrowed from MHD), or NULL */
    double t0;
    int status;
    int32_t n_prompt, n_completion;
    char guard[64];    /* the guard's verdict ("input:unsafe:S1"), "" when none */
    bool logged;
};

/* Per request (MHD calls the completed callback after each). */
struct conn {
    struct herd_buf body;
    size_t discarded;  /* body bytes dropped past the limit */
    bool too_large;
    bool answered;
};

static struct sock *sock_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* ---------------------------------------------------------------- replies */

/* Headers every response carries: the request id, CORS when the origin is allowed, and
 * Connection: close for a connection accepted over a limit. Records the status. */
static void common_headers(struct MHD_Connection *c, struct MHD_Response *resp, int http)
{
    struct sock *so = sock_of(c);
    if (!so) /* no state could be allocated: the connection is treated as over a limit */
        return (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    so->status = http;
    if (so->req_id[0])
        MHD_add_response_header(resp, "X-Request-Id", so->req_id);
    if (so->origin) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, so->origin);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
        MHD_add_response_header(resp, "Access-Control-Expose-Headers", "X-Request-Id");
    }
    if (so->over)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
}

static enum MHD_Result reply(struct MHD_Connection *c, int http, const char *ctype,
                             const char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (http == 503)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (http == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    common_headers(c, resp, http);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)http, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result reply_json(struct server *sv, const char *ep, struct MHD_Connection *c,
                                  int http, char *owned_json)
{
    srv_metrics_request(sv->metrics, ep, http);
    static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":"
                              "\"server_error\",\"param\":null,\"code\":null}}";
    if (!owned_json)
        return reply(c, 500, "application/json", oom, sizeof oom - 1);
    enum MHD_Result ret = reply(c, http, "application/json", owned_json, strlen(owned_json));
    herd_free(owned_json);
    return ret;
}

static enum MHD_Result reply_error(struct server *sv, const char *ep, struct MHD_Connection *c,
                                   const struct srv_error *e)
{
    return reply_json(sv, ep, c, e->http, srv_error_json(e));
}

static enum MHD_Result reply_err(struct server *sv, const char *ep, struct MHD_Connection *c,
                                 int http, const char *type, const char *code, const char *msg)
{
    struct srv_error e;
    srv_error_set(&e, http, type, code, NULL, "%s", msg);
    return reply_error(sv, ep, c, &e);
}

static bool model_known(struct server *sv, struct srv_params *p, struct srv_error *e);

/* ---------------------------------------------------------------- waiting */

/* Whether the peer closed the connection (only a hang-up counts: pipelined bytes do not). */
static bool client_gone(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return false;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* One choice of a request as the HTTP side follows it (n > 1 and prompt lists have several,
 * all sharing the first one's lock: srv_req_mu). */
struct choice {
    struct srv_req *r;
    char *echo;                /* completions echo: the prompt text, or NULL */
    struct srv_toolstream *ts; /* a stream with tools: content and calls as text decides */
    struct srv_guard_stream *gs; /* --guard output: text held until checked */
    bool tool_calls;           /* the answer was tool calls */
    bool ended;                /* its end was taken */
    int32_t n_completion;
};

/* Under the group's lock: some choice has news (text, logprobs, an end not yet taken), or
 * with until_done every choice is done. */
static bool has_news(const struct choice *ch, int n, bool until_done)
{
    bool all = true;
    for (int i = 0; i < n; i++) {
        const struct srv_req *r = ch[i].r;
        all = all && r->done;
        if (!until_done && ((r->done && !ch[i].ended) || r->text.len || r->lp))
            return true;
    }
    return all;
}

static void cancel_all(struct choice *ch, int n)
{
    for (int i = 0; i < n; i++)
        atomic_store(&ch[i].r->cancelled, true);
}

/* Waits until the choices have news (any, or only the end of all when until_done). False:
 * the client is gone (every choice is then cancelled). */
static bool wait_choices(struct choice *ch, int n, struct MHD_Connection *c, bool until_done)
{
    pthread_mutex_t *mu = srv_req_mu(ch[0].r);
    pthread_mutex_lock(mu);
    while (!has_news(ch, n, until_done)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += WAIT_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (pthread_cond_timedwait(srv_req_cv(ch[0].r), mu, &ts) != 0 &&
            !has_news(ch, n, until_done)) {
            pthread_mutex_unlock(mu);
            if (client_gone(c)) {
                cancel_all(ch, n);
                return false;
            }
            pthread_mutex_lock(mu);
        }
    }
    pthread_mutex_unlock(mu);
    return true;
}

/* Waits until r has news (any, or only the end when until_done). False: client gone. */
static bool wait_req(struct srv_req *r, struct MHD_Connection *c, bool until_done)
{
    struct choice one = {.r = r};
    return wait_choices(&one, 1, c, until_done);
}

/* Takes what the scheduler produced so far. */
struct taken {
    char *text;
    size_t len;
    cJSON *lp;
    bool done;
    enum srv_finish finish;
    int32_t n_completion;
    char errmsg[256];
};

static void take(struct srv_req *r, struct taken *t)
{
    pthread_mutex_lock(srv_req_mu(r));
    t->len = r->text.len;
    t->text = r->text.len ? buf_take(&r->text, NULL) : NULL;
    t->lp = r->lp;
    r->lp = NULL;
    t->done = r->done;
    t->finish = r->finish;
    t->n_completion = r->n_completion;
    memcpy(t->errmsg, r->errmsg, sizeof t->errmsg);
    pthread_mutex_unlock(srv_req_mu(r));
}

/* Non-streaming tool_calls carry no "index" (that is a stream delta field). */
static void drop_index(cJSON *calls)
{
    cJSON *it;
    cJSON_ArrayForEach(it, calls)
        cJSON_DeleteItemFromObjectCaseSensitive(it, "index");
}

/* Usage over the choices: each prompt counted once (its first choice), completions summed. */
static void usage_totals(const struct choice *ch, int n, int32_t *prompt, int32_t *cached)
{
    *prompt = 0;
    *cached = 0;
    for (int i = 0; i < n; i++)
        if (!ch[i].r->leader) {
            *prompt += ch[i].r->n_prompt;
            *cached += ch[i].r->n_cached;
        }
}

static void choices_free(struct choice *ch, int n)
{
    for (int i = 0; ch && i < n; i++) {
        herd_free(ch[i].echo);
        srv_toolstream_free(ch[i].ts);
        srv_guard_stream_free(ch[i].gs);
        srv_req_unref(ch[i].r);
    }
    herd_free(ch);
}

/* ---------------------------------------------------------------- streaming */

struct stream {
    struct server *sv;
    struct choice *ch;     /* n choices, owned */
    int n;
    struct MHD_Connection *c;
    struct herd_buf out;   /* bytes formatted, not yet handed to MHD */
    size_t out_pos;
    int n_ended;
    bool started, finished;
};

/* With tools: passes new text through the tool-call stream and sends what it lets out
 * (content, tool-call deltas), with the logprob entries of this round on the first chunk. */
static void stream_tools(struct stream *st, struct choice *ch, struct taken *t)
{
    struct srv_req *r = ch->r;
    struct herd_buf content;
    buf_init(&content, 0);
    cJSON *deltas = NULL, *lp = t->lp;
    t->lp = NULL;
    if (t->len)
        srv_toolstream_feed(ch->ts, t->text, t->len, &content, &deltas);
    if (t->done && t->finish != SRV_FINISH_ERROR)
        srv_toolstream_finish(ch->ts, &content, &deltas, &ch->tool_calls);
    if (content.len) {
        srv_chunk_sse(&st->out, r, content.data, content.len, NULL, lp, false,
                      SRV_FINISH_NONE);
        lp = NULL;
    }
    if (deltas || lp)
        srv_chunk_sse(&st->out, r, NULL, 0, deltas, lp, false, SRV_FINISH_NONE);
    buf_free(&content);
}

/* The end of the stream: usage when asked for, [DONE], the access log's counts. */
static void stream_done(struct stream *st, bool failed)
{
    int32_t prompt, cached, completion = 0;
    usage_totals(st->ch, st->n, &prompt, &cached);
    for (int i = 0; i < st->n; i++)
        completion += st->ch[i].n_completion;
    if (st->ch[0].r->p.include_usage && !failed)
        srv_usage_sse_totals(&st->out, st->ch[0].r, prompt, completion, cached);
    buf_puts(&st->out, "data: [DONE]\n\n");
    st->finished = true;
    struct sock *so = sock_of(st->c);
    if (so) {
        so->n_prompt = prompt;
        so->n_completion = completion;
        snprintf(so->guard, sizeof so->guard, "%s", st->ch[0].r->guard_note);
    }
}

/* A choice ended: its finish chunk; an error ends the whole stream (error event, [DONE]). */
static void stream_finish(struct stream *st, struct choice *ch, struct taken *t)
{
    ch->ended = true;
    ch->n_completion = t->n_completion;
    st->n_ended++;
    if (t->finish == SRV_FINISH_ERROR) {
        struct srv_error e;
        srv_error_set(&e, 500, "server_error", NULL, NULL, "generation failed: %s",
                      t->errmsg[0] ? t->errmsg : "unknown error");
        char *ej = srv_error_json(&e);
        if (ej) {
            buf_puts(&st->out, "data: ");
            buf_puts(&st->out, ej);
            buf_puts(&st->out, "\n\n");
            herd_free(ej);
        }
        cancel_all(st->ch, st->n);
        stream_done(st, true);
        return;
    }
    srv_chunk_sse(&st->out, ch->r, NULL, 0, NULL, NULL, false,
                  ch->tool_calls && t->finish != SRV_FINISH_FILTER ? SRV_FINISH_TOOLS
                                                                  : t->finish);
    if (st->n_ended == st->n)
        stream_done(st, false);
}

/* Formats the next events into st->out. False: the client is gone. */
static bool stream_fill(struct stream *st)
{
    if (!st->started) {
        st->started = true;
        for (int i = 0; i < st->n; i++) {
            struct choice *ch = &st->ch[i];
            if (ch->r->p.kind == SRV_CHAT)
                srv_chunk_sse(&st->out, ch->r, NULL, 0, NULL, NULL, true, SRV_FINISH_NONE);
            if (ch->echo)
                srv_chunk_sse(&st->out, ch->r, ch->echo, strlen(ch->echo), NULL, NULL, false,
                              SRV_FINISH_NONE);
        }
        if (st->out.len)
            return true;
    }
    if (!wait_choices(st->ch, st->n, st->c, false))
        return false;
    for (int i = 0; i < st->n && !st->finished; i++) {
        struct choice *ch = &st->ch[i];
        if (ch->ended)
            continue;
        struct taken t;
        take(ch->r, &t);
        if (ch->gs && srv_guard_stream_feed(st->sv->guard, st->sv->metrics, ch->r, ch->gs,
                                            &t.text, &t.len, &t.done, &t.finish) != HERD_OK) {
            t.done = true; /* out of memory: end the stream rather than send unchecked text */
            t.finish = SRV_FINISH_ERROR;
            snprintf(t.errmsg, sizeof t.errmsg, "guard: %s", herd_last_error());
        }
        if (ch->ts) {
            stream_tools(st, ch, &t);
        } else if (t.len || t.lp) {
            srv_chunk_sse(&st->out, ch->r, t.text, t.len, NULL, t.lp, false, SRV_FINISH_NONE);
            t.lp = NULL;
        }
        cJSON_Delete(t.lp);
        herd_free(t.text);
        if (t.done)
            stream_finish(st, ch, &t);
    }
    return st->out.err == HERD_OK;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *st = cls;
    (void)pos;
    while (st->out_pos == st->out.len) {
        if (st->finished)
            return MHD_CONTENT_READER_END_OF_STREAM;
        st->out.len = 0;
        st->out_pos = 0;
        if (!stream_fill(st))
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = st->out.len - st->out_pos;
    if (n > max)
        n = max;
    memcpy(buf, st->out.data + st->out_pos, n);
    st->out_pos += n;
    return (ssize_t)n;
}

/* MHD is done with the response: finished, or the client went away. */
static void stream_free(void *cls)
{
    struct stream *st = cls;
    if (!st->finished) {
        cancel_all(st->ch, st->n);
        srv_metrics_cancelled(st->sv->metrics);
    }
    choices_free(st->ch, st->n);
    buf_free(&st->out);
    herd_free(st);
}

/* Streams the choices (ownership passes in). */
static enum MHD_Result start_stream(struct server *sv, const char *ep, struct MHD_Connection *c,
                                    struct choice *ch, int n)
{
    struct stream *st = herd_calloc(1, sizeof *st);
    if (!st) {
        choices_free(ch, n);
        return reply_err(sv, ep, c, 500, "server_error", NULL, "out of memory");
    }
    st->sv = sv;
    st->ch = ch;
    st->n = n;
    st->c = c;
    buf_init(&st->out, 0);
    for (int i = 0; i < n; i++)
        if ((ch[i].r->p.tools_active && srv_toolstream_new(ch[i].r->id, &ch[i].ts) != HERD_OK) ||
            (ch[i].r->p.kind == SRV_CHAT && srv_guard_on(sv->guard, SRV_GUARD_OUTPUT) &&
             srv_guard_stream_new(&ch[i].gs) != HERD_OK)) {
            stream_free(st);
            return reply_err(sv, ep, c, 500, "server_error", NULL, "out of memory");
        }
    /* 16 KiB blocks: MHD's buffer per call to stream_read */
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
                                                                  stream_read, st, stream_free);
    if (!resp) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    common_headers(c, resp, 200);
    srv_metrics_request(sv->metrics, ep, 200);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---------------------------------------------------------------- completions */

/* The prompts of a completions request: a string, token ids, or a list of either. */
static int prompt_count(const cJSON *pr)
{
    if (!cJSON_IsArray(pr) || cJSON_IsNumber(cJSON_GetArrayItem(pr, 0)))
        return 1;
    return cJSON_GetArraySize(pr);
}

static const cJSON *prompt_item(const cJSON *pr, int i)
{
    if (!cJSON_IsArray(pr) || cJSON_IsNumber(cJSON_GetArrayItem(pr, 0)))
        return pr;
    return cJSON_GetArrayItem(pr, i);
}

static bool completion_prompt(struct server *sv, struct srv_req *r, int which,
                              struct srv_error *e)
{
    const cJSON *pr = prompt_item(cJSON_GetObjectItemCaseSensitive(r->p.body, "prompt"), which);
    if (cJSON_IsArray(pr)) {
        int n = cJSON_GetArraySize(pr);
        r->prompt = herd_malloc((size_t)n * sizeof *r->prompt);
        if (!r->prompt) {
            srv_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
            return false;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, pr)
            r->prompt[r->n_prompt++] = (int32_t)it->valuedouble;
        return true;
    }
    const char *text = pr->valuestring;
    size_t len = strlen(text), n = 0;
    /* Refused before the tokenizer runs when it cannot fit: no token covers more than the
     * longest token's bytes (special-token text included), so BOS + ceil(len / longest) ids
     * is a lower bound; it must leave one position for the answer, as check_context asks.
     * (len itself bounds ids from above only, so it cannot be used to refuse.) */
    size_t longest = srv_sched_longest_token(sv->sched);
    size_t at_least = 1 + len / longest + (len % longest != 0);
    int32_t n_ctx = srv_sched_n_ctx(sv->sched);
    if (at_least >= (size_t)n_ctx) {
        srv_error_set(e, 400, "invalid_request_error", "context_length_exceeded", "prompt",
                      "This model's maximum context length is %d tokens. However, your "
                      "prompt needs at least %zu tokens, leaving no room for a completion.",
                      n_ctx, at_least);
        return false;
    }
    /* like a raw prompt to `herd generate`: BOS first, special-token text is markup */
    if (herd_tokenize(sv->tok, text, len, true, true, &r->prompt, &n) != HERD_OK) {
        srv_error_set(e, 400, "invalid_request_error", NULL, "prompt", "cannot tokenize: %s",
                      herd_last_error());
        return false;
    }
    r->n_prompt = (int32_t)n;
    return true;
}

/* Context limits as OpenAI words them (code context_length_exceeded). */
static bool check_context(struct server *sv, struct srv_req *r, struct srv_error *e)
{
    int32_t n_ctx = srv_sched_n_ctx(sv->sched);
    const char *param = r->p.kind == SRV_CHAT ? "messages" : "prompt";
    if (r->n_prompt == 0) {
        srv_error_set(e, 400, "invalid_request_error", NULL, param, "the prompt is empty");
        return false;
    }
    if (r->n_prompt >= n_ctx) {
        srv_error_set(e, 400, "invalid_request_error", "context_length_exceeded", param,
                      "This model's maximum context length is %d tokens. However, your "
                      "prompt has %d tokens, leaving no room for a completion.",
                      n_ctx, r->n_prompt);
        return false;
    }
    if (r->p.max_tokens > 0 && (int64_t)r->n_prompt + r->p.max_tokens > n_ctx) {
        srv_error_set(e, 400, "invalid_request_error", "context_length_exceeded",
                      "max_tokens",
                      "This model's maximum context length is %d tokens. However, you "
                      "requested %lld tokens (%d in the prompt, %d for the completion).",
                      n_ctx, (long long)r->n_prompt + r->p.max_tokens, r->n_prompt,
                      r->p.max_tokens);
        return false;
    }
    return true;
}

/* A non-streaming answer: every choice's text (with tool calls parsed), in index order. */
static enum MHD_Result finish_plain(struct server *sv, const char *ep, struct MHD_Connection *c,
                                    struct choice *ch, int n)
{
    if (!wait_choices(ch, n, c, true)) {
        srv_metrics_cancelled(sv->metrics);
        srv_metrics_request(sv->metrics, ep, 499); /* nginx's "client closed request" */
        choices_free(ch, n);
        return MHD_NO;
    }
    int32_t prompt, cached, completion = 0;
    usage_totals(ch, n, &prompt, &cached);
    cJSON *choices = cJSON_CreateArray();
    struct srv_error e;
    bool failed = false;
    for (int i = 0; i < n && !failed; i++) {
        struct srv_req *r = ch[i].r;
        struct taken t;
        take(r, &t);
        if (t.finish != SRV_FINISH_ERROR && t.finish != SRV_FINISH_FILTER &&
            srv_guard_output(sv->guard, sv->metrics, r, t.text, t.len)) {
            t.len = 0; /* the flagged answer is cut */
            t.finish = SRV_FINISH_FILTER;
        }
        completion += t.n_completion;
        if (t.finish == SRV_FINISH_ERROR) {
            srv_error_set(&e, 500, "server_error", NULL, NULL, "generation failed: %s",
                          t.errmsg[0] ? t.errmsg : "unknown error");
            failed = true;
        } else {
            struct herd_buf text;
            buf_init(&text, 0);
            buf_puts(&text, ch[i].echo ? ch[i].echo : "");
            buf_append(&text, t.text ? t.text : "", t.len);
            char *content = NULL;
            cJSON *calls = NULL;
            if (r->p.tools_active)
                calls = srv_parse_tool_calls(text.data, text.len, r->id, &content);
            drop_index(calls);
            enum srv_finish f = calls && t.finish != SRV_FINISH_FILTER ? SRV_FINISH_TOOLS
                                                                      : t.finish;
            cJSON_AddItemToArray(choices, srv_choice_json(r, calls ? content : text.data,
                                                          calls, t.lp, f));
            t.lp = NULL;
            herd_free(content);
            buf_free(&text);
        }
        cJSON_Delete(t.lp);
        herd_free(t.text);
    }
    struct sock *so = sock_of(c);
    if (so) {
        so->n_prompt = prompt;
        so->n_completion = completion;
        snprintf(so->guard, sizeof so->guard, "%s", ch[0].r->guard_note);
    }
    enum MHD_Result ret;
    if (failed) {
        cJSON_Delete(choices);
        ret = reply_error(sv, ep, c, &e);
    } else {
        ret = reply_json(sv, ep, c, 200,
                         srv_response_choices(ch[0].r, choices, prompt, completion, cached));
    }
    choices_free(ch, n);
    return ret;
}

/* Choice i > 0 of head: the head's params (borrowed, a reference held), its own seed
 * (seed + i when seeded), and the prompt of its leader when it is not one itself. */
static struct srv_req *choice_new(struct srv_req *head, int32_t i, struct srv_req *leader)
{
    struct srv_req *r = srv_req_new();
    if (!r)
        return NULL;
    r->p = head->p;
    r->head = head;
    atomic_fetch_add(&head->refs, 1);
    r->index = i;
    if (r->p.has_seed)
        r->p.seed = head->p.seed + (uint64_t)i;
    memcpy(r->id, head->id, sizeof r->id);
    if (leader) {
        r->leader = leader;
        atomic_fetch_add(&leader->refs, 1);
        r->prompt = herd_malloc((size_t)leader->n_prompt * sizeof *r->prompt);
        if (!r->prompt) {
            srv_req_unref(r);
            return NULL;
        }
        memcpy(r->prompt, leader->prompt, (size_t)leader->n_prompt * sizeof *r->prompt);
        r->n_prompt = leader->n_prompt;
    }
    return r;
}

/* The prompt ids of choice ch (chat: rendered; completions: its prompt), checked against the
 * context, with the echo text. */
static bool choice_prompt(struct server *sv, struct choice *ch, int which, struct srv_error *e)
{
    struct srv_req *r = ch->r;
    if (!r->leader && r->p.kind == SRV_CHAT) {
        size_t n = 0;
        if (!srv_render_chat(sv->tok, sv->info, &r->p, srv_sched_n_ctx(sv->sched), &r->prompt,
                             &n, e))
            return false;
        r->n_prompt = (int32_t)n;
    } else if (!r->leader && !completion_prompt(sv, r, which, e)) {
        return false;
    }
    if (!check_context(sv, r, e))
        return false;
    if (r->p.echo) {
        size_t len = 0;
        /* skip BOS: echo gives the prompt text as the user wrote it */
        int32_t skip = r->n_prompt > 0 && r->prompt[0] == sv->info->bos_id ? 1 : 0;
        if (herd_detokenize(sv->tok, r->prompt + skip, (size_t)(r->n_prompt - skip), &ch->echo,
                            &len) != HERD_OK)
            ch->echo = NULL;
        r->text_base = ch->echo ? (int64_t)len : 0;
    }
    return true;
}

static enum MHD_Result handle_generate(struct server *sv, const char *ep,
                                       struct MHD_Connection *c, enum srv_kind kind,
                                       struct conn *cs)
{
    struct srv_error e;
    struct srv_req *r = srv_req_new();
    struct choice *ch = NULL;
    struct srv_req **list = NULL;
    int n_ch = 0;
    if (!r)
        return reply_err(sv, ep, c, 500, "server_error", NULL, "out of memory");
    if (!srv_parse_request(kind, cs->body.data ? cs->body.data : "", cs->body.len,
                           sv->info->n_vocab, &r->p, &e) ||
        !model_known(sv, &r->p, &e))
        goto fail;
    int n_prompts = kind == SRV_COMPLETION
                        ? prompt_count(cJSON_GetObjectItemCaseSensitive(r->p.body, "prompt"))
                        : 1;
    int64_t total = (int64_t)n_prompts * r->p.n;
    if (total > sv->max_choices) {
        srv_error_set(&e, 400, "invalid_request_error", NULL, n_prompts > 1 ? "prompt" : "n",
                      "%d prompt%s x n = %d gives %lld choices; this server allows at most "
                      "%d per request (--max-choices)", n_prompts, n_prompts > 1 ? "s" : "",
                      (int)r->p.n, (long long)total, (int)sv->max_choices);
        goto fail;
    }
    uint64_t seq = atomic_fetch_add(&sv->next_id, 1);
    snprintf(r->id, sizeof r->id, "%s-%llx%06llx", kind == SRV_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)sv->started, (unsigned long long)seq);
    r->created = (int64_t)time(NULL);
    r->t_arrival = herd_time_s();
    ch = herd_calloc((size_t)total, sizeof *ch);
    list = herd_calloc((size_t)total, sizeof *list);
    if (!ch || !list) {
        srv_error_set(&e, 500, "server_error", NULL, NULL, "out of memory");
        goto fail;
    }
    ch[0].r = r;
    n_ch = 1;
    r = NULL; /* owned by ch now */
    for (int i = 0; i < (int)total; i++) {
        struct srv_req *lead = i % ch[0].r->p.n ? ch[i - i % ch[0].r->p.n].r : NULL;
        if (i > 0) {
            if (!(ch[i].r = choice_new(ch[0].r, i, lead))) {
                srv_error_set(&e, 500, "server_error", NULL, NULL, "out of memory");
                goto fail;
            }
            ch[i].r->created = ch[0].r->created;
            ch[i].r->t_arrival = ch[0].r->t_arrival;
            n_ch++;
        }
        if (!choice_prompt(sv, &ch[i], i / ch[0].r->p.n, &e))
            goto fail;
        list[i] = ch[i].r;
    }
    /* MHD counts the time a handler blocks as idle: a request that waits in the queue or
     * in a long prefill longer than --timeout would be cut. No limit while it is answered;
     * on_completed restores it for the keep-alive wait. */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    /* --guard input: a flagged request is answered (content_filter) without generating;
     * every choice carries the verdict */
    bool flagged = srv_guard_input(sv->guard, sv->metrics, ch[0].r);
    for (int i = 1; flagged && i < n_ch; i++) {
        ch[i].r->done = true;
        ch[i].r->finish = SRV_FINISH_FILTER;
        ch[i].r->filter = cJSON_Duplicate(ch[0].r->filter, true);
    }
    if (!flagged && !srv_sched_submit_n(sv->sched, list, n_ch)) {
        srv_error_set(&e, 503, "server_error", "server_overloaded", NULL,
                      "The server is busy: too many requests are waiting. Retry shortly.");
        goto fail;
    }
    herd_free(list);
    if (ch[0].r->p.stream)
        return start_stream(sv, ep, c, ch, n_ch);
    return finish_plain(sv, ep, c, ch, n_ch);
fail:
    herd_free(list);
    choices_free(ch, n_ch);
    srv_req_unref(r);
    return reply_error(sv, ep, c, &e);
}

/* ---------------------------------------------------------------- embeddings */

/* The model name check of every model endpoint: the served name, the model's own, or none. */
static bool model_known(struct server *sv, struct srv_params *p, struct srv_error *e)
{
    if (p->model && strcmp(p->model, sv->model_name) != 0 &&
        !(sv->info->name && !strcmp(p->model, sv->info->name))) {
        srv_error_set(e, 404, "invalid_request_error", "model_not_found", "model",
                      "The model '%.100s' does not exist; this server serves '%.100s'",
                      p->model, sv->model_name);
        return false;
    }
    if (!p->model && !(p->model = herd_strdup(sv->model_name))) {
        srv_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    return true;
}

static enum MHD_Result handle_embeddings(struct server *sv, struct MHD_Connection *c,
                                         struct conn *cs)
{
    static const char ep[] = "/v1/embeddings";
    struct srv_error e;
    struct srv_req *r = srv_req_new();
    if (!r)
        return reply_err(sv, ep, c, 500, "server_error", NULL, "out of memory");
    int32_t dim = sv->info->dim;
    if (!srv_parse_embed(cs->body.data ? cs->body.data : "", cs->body.len, sv->info->n_vocab,
                         dim, sv->pooling, &r->p, &e) ||
        !model_known(sv, &r->p, &e) ||
        !srv_embed_inputs(sv->tok, srv_sched_n_ctx(sv->sched),
                          srv_sched_longest_token(sv->sched), r, &e))
        goto fail;
    r->embd = herd_calloc((size_t)r->n_inputs * (size_t)dim, sizeof *r->embd);
    if (!r->embd) {
        srv_error_set(&e, 500, "server_error", NULL, NULL, "out of memory");
        goto fail;
    }
    r->t_arrival = herd_time_s();
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    if (!srv_sched_submit(sv->sched, r)) {
        srv_error_set(&e, 503, "server_error", "server_overloaded", NULL,
                      "The server is busy: too many requests are waiting. Retry shortly.");
        goto fail;
    }
    if (!wait_req(r, c, true)) {
        srv_metrics_cancelled(sv->metrics);
        srv_metrics_request(sv->metrics, ep, 499);
        srv_req_unref(r);
        return MHD_NO;
    }
    struct taken t;
    take(r, &t);
    herd_free(t.text);
    cJSON_Delete(t.lp);
    struct sock *so = sock_of(c);
    if (so)
        so->n_prompt = r->n_prompt;
    enum MHD_Result ret;
    if (t.finish == SRV_FINISH_ERROR) {
        srv_error_set(&e, 500, "server_error", NULL, NULL, "embedding failed: %s",
                      t.errmsg[0] ? t.errmsg : "unknown error");
        ret = reply_error(sv, ep, c, &e);
    } else {
        ret = reply_json(sv, ep, c, 200, srv_embed_response(r, dim));
    }
    srv_req_unref(r);
    return ret;
fail:
    srv_req_unref(r);
    return reply_error(sv, ep, c, &e);
}

/* ---------------------------------------------------------------- small endpoints */

static cJSON *model_object(struct server *sv)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", sv->model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)sv->started);
    cJSON_AddStringToObject(m, "owned_by", "herd");
    cJSON_AddNumberToObject(m, "context_length", srv_sched_n_ctx(sv->sched));
    return m;
}

static char *print_owned(cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *out = s ? herd_strdup(s) : NULL;
    cJSON_free(s);
    return out;
}

static enum MHD_Result handle_models(struct server *sv, struct MHD_Connection *c,
                                     const char *url)
{
    const char *ep = "/v1/models";
    if (!strcmp(url, "/v1/models") || !strcmp(url, "/models")) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "object", "list");
        cJSON *data = cJSON_AddArrayToObject(o, "data");
        cJSON_AddItemToArray(data, model_object(sv));
        return reply_json(sv, ep, c, 200, print_owned(o));
    }
    const char *id = strrchr(url, '/') + 1;
    if (!strcmp(id, sv->model_name))
        return reply_json(sv, ep, c, 200, print_owned(model_object(sv)));
    struct srv_error e;
    srv_error_set(&e, 404, "invalid_request_error", "model_not_found", "model",
                  "The model '%.100s' does not exist", id);
    return reply_error(sv, ep, c, &e);
}

static enum MHD_Result handle_health(struct server *sv, struct MHD_Connection *c)
{
    int32_t active = 0, queued = 0;
    srv_sched_load(sv->sched, &active, &queued);
    bool stopping = atomic_load(&sv->stopping);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", stopping ? "stopping" : "ok");
    cJSON_AddNumberToObject(o, "slots_processing", active);
    cJSON_AddNumberToObject(o, "queue", queued);
    /* 503 while stopping, so a load balancer sends new work elsewhere */
    return reply_json(sv, "/health", c, stopping ? 503 : 200, print_owned(o));
}

static enum MHD_Result handle_metrics(struct server *sv, struct MHD_Connection *c)
{
    int32_t active = 0, queued = 0;
    srv_sched_load(sv->sched, &active, &queued);
    srv_metrics_gauges(sv->metrics, queued, active);
    srv_metrics_request(sv->metrics, "/metrics", 200);
    char *text = srv_metrics_text(sv->metrics);
    if (!text)
        return reply_err(sv, "/metrics", c, 500, "server_error", NULL, "out of memory");
    enum MHD_Result ret = reply(c, 200, "text/plain; version=0.0.4", text, strlen(text));
    herd_free(text);
    return ret;
}

/* Constant-time comparison of the bearer token, so timing does not reveal the key. */
static bool authorized(struct server *sv, struct MHD_Connection *c)
{
    if (!sv->api_key || !sv->api_key[0])
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    const char *k = h + 7;
    size_t kl = strlen(k), al = strlen(sv->api_key);
    unsigned diff = (unsigned)(kl ^ al);
    for (size_t i = 0; i < al; i++)
        diff |= (unsigned)(unsigned char)sv->api_key[i] ^ (unsigned)(unsigned char)(i < kl ? k[i] : 0);
    return diff == 0;
}

/* ---------------------------------------------------------------- tokenize */

/* POST /tokenize {"content", "add_special" (BOS, default false), "parse_special" (special
 * token text is markup, default true), "with_pieces"} -> {"tokens": [ids] or [{id, piece}]},
 * as llama-server answers. */
static enum MHD_Result handle_tokenize(struct server *sv, struct MHD_Connection *c,
                                       struct conn *cs)
{
    const char *ep = "/tokenize";
    struct srv_error e;
    bool has_nul = false;
    cJSON *o = srv_json_parse(cs->body.data ? cs->body.data : "", cs->body.len, &has_nul, &e);
    if (!o)
        return reply_error(sv, ep, c, &e);
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(o, "content");
    const cJSON *add = cJSON_GetObjectItemCaseSensitive(o, "add_special");
    const cJSON *parse = cJSON_GetObjectItemCaseSensitive(o, "parse_special");
    const cJSON *pieces = cJSON_GetObjectItemCaseSensitive(o, "with_pieces");
    if (!cJSON_IsString(content) || has_nul || (add && !cJSON_IsBool(add)) ||
        (parse && !cJSON_IsBool(parse)) || (pieces && !cJSON_IsBool(pieces))) {
        cJSON_Delete(o);
        return reply_err(sv, ep, c, 400, "invalid_request_error", NULL,
                         "expected {\"content\": string without NUL, \"add_special\", "
                         "\"parse_special\", \"with_pieces\": booleans}");
    }
    int32_t *ids = NULL;
    size_t n = 0;
    herd_status st = herd_tokenize(sv->tok, content->valuestring, strlen(content->valuestring),
                                   cJSON_IsTrue(add), !parse || cJSON_IsTrue(parse), &ids, &n);
    bool with_pieces = cJSON_IsTrue(pieces);
    cJSON_Delete(o);
    if (st != HERD_OK)
        return reply_err(sv, ep, c, 500, "server_error", NULL, herd_last_error());
    cJSON *out = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(out, "tokens");
    for (size_t i = 0; arr && i < n; i++) {
        if (!with_pieces) {
            cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
            continue;
        }
        size_t len = 0;
        const char *b = herd_token_bytes(sv->tok, ids[i], &len);
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "id", ids[i]);
        /* a piece that is not whole UTF-8 is given as its bytes, as llama-server does */
        if (b && srv_utf8_valid_prefix(b, len) == len) {
            cJSON_AddItemToObject(t, "piece", srv_json_text(b, len));
        } else {
            cJSON *bytes = cJSON_AddArrayToObject(t, "piece");
            for (size_t k = 0; bytes && b && k < len; k++)
                cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)b[k]));
        }
        cJSON_AddItemToArray(arr, t);
    }
    herd_free(ids);
    return reply_json(sv, ep, c, 200, print_owned(out));
}

/* POST /detokenize {"tokens": [ids]} -> {"content": text}. */
static enum MHD_Result handle_detokenize(struct server *sv, struct MHD_Connection *c,
                                         struct conn *cs)
{
    const char *ep = "/detokenize";
    struct srv_error e;
    cJSON *o = srv_json_parse(cs->body.data ? cs->body.data : "", cs->body.len, NULL, &e);
    if (!o)
        return reply_error(sv, ep, c, &e);
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(o, "tokens");
    int n = cJSON_IsArray(toks) ? cJSON_GetArraySize(toks) : -1;
    int32_t *ids = n > 0 ? herd_malloc((size_t)n * sizeof *ids) : NULL;
    bool ok = n >= 0 && (n == 0 || ids);
    int k = 0;
    const cJSON *it;
    const cJSON *list = ok ? toks : NULL;
    cJSON_ArrayForEach(it, list) {
        double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (!cJSON_IsNumber(it) || v != floor(v) || v < 0 || v >= sv->info->n_vocab) {
            ok = false;
            break;
        }
        ids[k++] = (int32_t)v;
    }
    cJSON_Delete(o);
    if (!ok) {
        herd_free(ids);
        return reply_err(sv, ep, c, 400, "invalid_request_error", NULL,
                         "expected {\"tokens\": [token ids of this model]}");
    }
    char *text = NULL;
    size_t len = 0;
    herd_status st = k ? herd_detokenize(sv->tok, ids, (size_t)k, &text, &len) : HERD_OK;
    herd_free(ids);
    if (st != HERD_OK)
        return reply_err(sv, ep, c, 500, "server_error", NULL, herd_last_error());
    cJSON *out = cJSON_CreateObject();
    cJSON_AddItemToObject(out, "content", srv_json_text(text ? text : "", len));
    herd_free(text);
    return reply_json(sv, ep, c, 200, print_owned(out));
}

/* ---------------------------------------------------------------- routing */

/* A CORS preflight (OPTIONS with CORS on): the methods and headers a browser may use. */
static enum MHD_Result preflight(struct server *sv, struct MHD_Connection *c)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"",
                                                                MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    const char *want = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                   "Access-Control-Request-Headers");
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            want && want[0] ? want
                                            : "Authorization, Content-Type, X-Request-Id");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    common_headers(c, resp, 204);
    srv_metrics_request(sv->metrics, "other", 204);
    enum MHD_Result ret = MHD_queue_response(c, 204, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result route(struct server *sv, struct MHD_Connection *c, const char *url,
                             const char *method, struct conn *cs)
{
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    bool post = !strcmp(method, "POST");
    const char *path = !strncmp(url, "/v1/", 4) ? url + 3 : url;
    if (sv->cors && !strcmp(method, "OPTIONS"))
        return preflight(sv, c);
    if (!strcmp(path, "/health"))
        return get ? handle_health(sv, c)
                   : reply_err(sv, "/health", c, 405, "invalid_request_error", NULL,
                               "use GET for /health");
    struct sock *so = sock_of(c);
    if (!so || so->over)
        return reply_err(sv, "other", c, 503, "server_error", "server_overloaded",
                         "Too many connections (from this client or in all). Retry shortly.");
    if (atomic_load(&sv->stopping))
        return reply_err(sv, "other", c, 503, "server_error", "server_shutting_down",
                         "The server is shutting down.");
    /* the chat page (web/index.html compiled in by web/embed.cmake; it holds no secret and
     * asks for the API key itself, so it is served before the key check) */
    extern const char srv_web_index[];
    extern const size_t srv_web_index_len;
    if (get && (!strcmp(url, "/") || !strcmp(url, "/index.html")))
        return reply(c, 200, "text/html; charset=utf-8", srv_web_index, srv_web_index_len);
    if (!authorized(sv, c))
        return reply_err(sv, "auth", c, 401, "invalid_request_error", "invalid_api_key",
                         "Incorrect or missing API key: send 'Authorization: Bearer <key>'.");
    if (cs->too_large)
        return reply_err(sv, "other", c, 413, "invalid_request_error", "request_too_large",
                         "The request body is larger than the server's limit.");
    bool chat = !strcmp(path, "/chat/completions");
    if (chat || !strcmp(path, "/completions")) {
        const char *ep = chat ? "/v1/chat/completions" : "/v1/completions";
        if (!post)
            return reply_err(sv, ep, c, 405, "invalid_request_error", NULL,
                             "use POST for this endpoint");
        return handle_generate(sv, ep, c, chat ? SRV_CHAT : SRV_COMPLETION, cs);
    }
    if (!strcmp(path, "/embeddings"))
        return post ? handle_embeddings(sv, c, cs)
                    : reply_err(sv, "/v1/embeddings", c, 405, "invalid_request_error", NULL,
                                "use POST for this endpoint");
    bool tokenize = !strcmp(path, "/tokenize");
    if (tokenize || !strcmp(path, "/detokenize")) {
        if (!post)
            return reply_err(sv, "other", c, 405, "invalid_request_error", NULL,
                             "use POST for this endpoint");
        return tokenize ? handle_tokenize(sv, c, cs) : handle_detokenize(sv, c, cs);
    }
    if (!strcmp(path, "/models") || !strncmp(path, "/models/", 8))
        return get ? handle_models(sv, c, url)
                   : reply_err(sv, "/v1/models", c, 405, "invalid_request_error", NULL,
                               "use GET for /v1/models");
    if (!strcmp(url, "/metrics"))
        return get ? handle_metrics(sv, c)
                   : reply_err(sv, "/metrics", c, 405, "invalid_request_error", NULL,
                               "use GET for /metrics");
    struct srv_error e;
    srv_error_set(&e, 404, "invalid_request_error", "unknown_url", NULL,
                  "Unknown request URL: %.8s %.200s", method, url);
    return reply_error(sv, "other", c, &e);
}

/* Whether origin is one of the allowed (comma-separated, exact match). */
static bool origin_allowed(const char *list, const char *origin)
{
    size_t ol = strlen(origin);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m > 0 && p[m - 1] == ' ')
            m--;
        if (m && m == ol && !memcmp(p, origin, m))
            return true;
        p += n;
    }
    return false;
}

/* X-Request-Id: the client's when it is short printable ASCII (it is echoed in a header
 * and a log line), else one made here. */
static void request_id(struct server *sv, struct MHD_Connection *c, struct sock *so)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
    size_t n = h ? strlen(h) : 0;
    bool ok = n > 0 && n < sizeof so->req_id;
    for (size_t i = 0; ok && i < n; i++)
        ok = h[i] > 0x20 && h[i] < 0x7F && h[i] != '"' && h[i] != '\\';
    if (ok) {
        memcpy(so->req_id, h, n + 1);
        return;
    }
    uint64_t seq = atomic_fetch_add(&sv->next_id, 1);
    snprintf(so->req_id, sizeof so->req_id, "req-%llx%06llx", (unsigned long long)sv->started,
             (unsigned long long)seq);
}

/* The first callback of a request: its id, CORS origin and log fields. */
static void request_begin(struct server *sv, struct MHD_Connection *c, struct sock *so,
                          const char *url, const char *method)
{
    request_id(sv, c, so);
    snprintf(so->method, sizeof so->method, "%s", method);
    snprintf(so->path, sizeof so->path, "%s", url);
    so->t0 = herd_time_s();
    so->status = 0;
    so->n_prompt = so->n_completion = 0;
    so->guard[0] = '\0';
    so->logged = false;
    so->origin = NULL;
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_ORIGIN);
    if (sv->cors && origin) {
        if (!strcmp(sv->cors, "*"))
            so->origin = "*";
        else if (origin_allowed(sv->cors, origin))
            so->origin = origin;
    }
}

/* The access log: one line per request, written with one call so that lines from
 * concurrent connections never interleave. It is the output --access-log asks for, not a
 * diagnostic, so it does not go through herd_log's level filter. */
static void access_log(struct server *sv, struct sock *so)
{
    double ms = (herd_time_s() - so->t0) * 1000.0;
    struct herd_buf b;
    buf_init(&b, 0);
    if (sv->access_log == 2) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "time", (double)time(NULL));
        cJSON_AddStringToObject(o, "remote", so->remote);
        cJSON_AddItemToObject(o, "method", srv_json_text(so->method, strlen(so->method)));
        cJSON_AddItemToObject(o, "path", srv_json_text(so->path, strlen(so->path)));
        cJSON_AddNumberToObject(o, "status", so->status);
        cJSON_AddNumberToObject(o, "prompt_tokens", so->n_prompt);
        cJSON_AddNumberToObject(o, "completion_tokens", so->n_completion);
        cJSON_AddNumberToObject(o, "latency_ms", floor(ms * 1000.0) / 1000.0);
        cJSON_AddStringToObject(o, "request_id", so->req_id);
        if (so->guard[0])
            cJSON_AddStringToObject(o, "guard", so->guard);
        char *s = print_owned(o);
        buf_puts(&b, s ? s : "{}");
        herd_free(s);
    } else {
        buf_printf(&b, "herd: %s \"%s %s\" %d prompt=%d completion=%d %.1fms id=%s%s%s",
                   so->remote, so->method, so->path, so->status, (int)so->n_prompt,
                   (int)so->n_completion, ms, so->req_id, so->guard[0] ? " guard=" : "",
                   so->guard);
    }
    buf_puts(&b, "\n");
    if (b.err == HERD_OK)
        fwrite(b.data, 1, b.len, stderr);
    buf_free(&b);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
    struct server *sv = cls;
    struct conn *cs = *con_cls;
    (void)version;
    if (!cs) {
        cs = herd_calloc(1, sizeof *cs);
        if (!cs)
            return MHD_NO;
        buf_init(&cs->body, sv->max_body);
        *con_cls = cs;
        atomic_fetch_add(&sv->active, 1);
        struct sock *so = sock_of(c);
        if (so)
            request_begin(sv, c, so, url, method);
        if ((!so || so->over) && strcmp(url, "/health") != 0) {
            /* answered before its body is read: the connection closes after it */
            cs->answered = true;
            return route(sv, c, url, method, cs);
        }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_EXPECT);
        char *end = NULL;
        unsigned long long n = cl ? strtoull(cl, &end, 10) : 0;
        if (cl && n > sv->max_body) {
            cs->too_large = true;
            /* a client that waits for 100-continue, or one about to send far too much, is
             * answered before the body; others are read to the end first, or they would
             * see a broken pipe instead of the answer */
            if (expect || n - sv->max_body > DISCARD_MAX) {
                cs->answered = true;
                return reply_err(sv, "other", c, 413, "invalid_request_error",
                                 "request_too_large",
                                 "The request body is larger than the server's limit.");
            }
        }
        return MHD_YES;
    }
    if (cs->answered) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (!cs->too_large && buf_append(&cs->body, upload, n) != HERD_OK) {
            if (cs->body.err == HERD_ERR_NOMEM) {
                cs->answered = true;
                return reply_err(sv, "other", c, 500, "server_error", NULL, "out of memory");
            }
            cs->too_large = true;
        }
        if (cs->too_large) {
            cs->discarded += n;
            if (cs->discarded > DISCARD_MAX) {
                cs->answered = true;
                return reply_err(sv, "other", c, 413, "invalid_request_error",
                                 "request_too_large",
                                 "The request body is larger than the server's limit.");
            }
        }
        return MHD_YES;
    }
    cs->answered = true;
    return route(sv, c, url, method, cs);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct conn *cs = *con_cls;
    struct server *sv = cls;
    if (!cs)
        return;
    struct sock *so = sock_of(c);
    if (so && sv->access_log && !so->logged) {
        if (so->status == 0) /* no answer was queued: the client went away */
            so->status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? 200 : 499;
        so->logged = true;
        access_log(sv, so);
    }
    if (so && !so->over)
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, sv->timeout_s);
    atomic_fetch_sub(&sv->active, 1);
    buf_free(&cs->body);
    herd_free(cs);
    *con_cls = NULL;
}

/* A bucket for the client's address (IPv4 or IPv6 bytes, FNV-1a). */
static uint32_t addr_bucket(const struct sockaddr *a, char *text, size_t text_size)
{
    const unsigned char *p = NULL;
    size_t n = 0;
    if (a && a->sa_family == AF_INET) {
        p = (const unsigned char *)&((const struct sockaddr_in *)(const void *)a)->sin_addr;
        n = 4;
    } else if (a && a->sa_family == AF_INET6) {
        p = (const unsigned char *)&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr;
        n = 16;
    }
    snprintf(text, text_size, "-");
    if (a && getnameinfo(a, a->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                     : sizeof(struct sockaddr_in),
                         text, (socklen_t)text_size, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(text, text_size, "-");
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h % IP_BUCKETS;
}

/* Counts connections in all and per client address; one over a limit is marked (its
 * requests get 503 and it closes) and given a short idle timeout. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct server *sv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        struct sock *so = herd_calloc(1, sizeof *so);
        *socket_context = so;
        int total = atomic_fetch_add(&sv->n_conns, 1) + 1;
        if (!so) {
            MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, OVER_TIMEOUT_S);
            return;
        }
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        so->bucket = addr_bucket(ci ? ci->client_addr : NULL, so->remote, sizeof so->remote);
        int mine = atomic_fetch_add(&sv->ip_conns[so->bucket], 1) + 1;
        so->over = total > sv->max_conns || mine > sv->max_per_client;
        if (so->over)
            MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, OVER_TIMEOUT_S);
        return;
    }
    struct sock *so = *socket_context;
    atomic_fetch_sub(&sv->n_conns, 1);
    if (so)
        atomic_fetch_sub(&sv->ip_conns[so->bucket], 1);
    herd_free(so);
    *socket_context = NULL;
}

/* libmicrohttpd's own messages (a client hanging up mid-send, ...) are diagnostics: debug
 * level, so the default log stays quiet. */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt,
                                                         va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    herd_log(HERD_LOG_DEBUG, "server: libmicrohttpd: %s", msg);
}

/* ---------------------------------------------------------------- run */

herd_server_options herd_server_default_options(void)
{
    herd_server_options o;
    memset(&o, 0, sizeof o);
    o.host = "127.0.0.1";
    o.port = 8080;
    o.n_parallel = 4;
    o.max_queue = 256;
    o.max_body = 8 << 20;
    o.max_conns = 512;
    o.kv_type = HERD_DTYPE_F16;
    o.timeout_s = 10;
    return o;
}

static struct MHD_Daemon *start_daemon(struct server *sv, const herd_server_options *o,
                                       int32_t *port)
{
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", (int)o->port);
    int rc = getaddrinfo(o->host && o->host[0] ? o->host : "127.0.0.1", port_s, &hints, &ai);
    if (rc != 0) {
        herd_fail(HERD_ERR_INVALID, "cannot resolve host '%s': %s", o->host, gai_strerror(rc));
        return NULL;
    }
    /* ITC: herd_server_stop quiesces the daemon (stops accepting) before draining */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* the logger first, so MHD's messages at start go through it too */
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)o->port, NULL, NULL, on_request, sv, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, sv, MHD_OPTION_NOTIFY_CONNECTION, on_connection, sv,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(sv->max_conns + CONN_RESERVE),
        /* a connection silent this long while sending its request, or idle between
           keep-alive requests, is closed; a stream is never silent (a chunk per token), and
           a handler waiting for tokens is not timed */
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(o->timeout_s > 0 ? o->timeout_s : 10),
        MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d) {
        herd_fail(HERD_ERR_IO, "cannot listen on %s:%d (address in use or not permitted)",
                  o->host, (int)o->port);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *port = di ? di->port : o->port;
    return d;
}

/* The handle: the server state the handlers see (first, so &h->sv is stable) and the daemon. */
struct herd_server {
    struct server sv;
    struct MHD_Daemon *d;
    char *api_key; /* owned copy of options.api_key */
    char *cors;    /* owned copy of options.cors_origins */
    int32_t grace_s;
    herd_server_info info;
};

static void server_free(herd_server *h)
{
    if (!h)
        return;
    srv_sched_free(h->sv.sched);
    srv_guard_free(h->sv.guard);
    srv_metrics_free(h->sv.metrics);
    herd_free(h->sv.model_name);
    herd_free(h->api_key);
    herd_free(h->cors);
    herd_free(h);
}

/* The server's threads (scheduler, pool, HTTP) take no asynchronous signals: those are the
 * program's, handled in its own threads; and a write to a closed socket must be an error
 * code, not SIGPIPE ending the process. A thread inherits the mask of its creator, so the
 * mask is set around everything that starts threads and restored for the caller. Faults
 * (SIGSEGV, ...) stay unblocked. */
static void block_async_signals(sigset_t *old)
{
    sigset_t set;
    sigfillset(&set);
    static const int sync_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT};
    for (size_t i = 0; i < sizeof sync_signals / sizeof sync_signals[0]; i++)
        sigdelset(&set, sync_signals[i]);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

herd_status herd_server_start(const herd_model *m, const herd_server_options *opt,
                              herd_server **out)
{
    if (!out)
        return herd_fail(HERD_ERR_INVALID, "herd_server_start: no out pointer");
    *out = NULL;
    if (!m)
        return herd_fail(HERD_ERR_INVALID, "herd_server_start: no model");
    herd_server_options o = opt ? *opt : herd_server_default_options();
    if (!o.host || !o.host[0])
        o.host = "127.0.0.1";
    if (o.n_parallel < 1 || o.n_parallel > 256)
        return herd_fail(HERD_ERR_INVALID, "--parallel must be 1 to 256, not %d",
                         (int)o.n_parallel);
    herd_server *h = herd_calloc(1, sizeof *h);
    if (!h)
        return herd_fail(HERD_ERR_NOMEM, "out of memory");
    struct server *sv = &h->sv;
    sv->info = herd_model_get_info(m);
    sv->tok = herd_model_tokenizer(m);
    sv->max_body = o.max_body > 0 ? (size_t)o.max_body : (size_t)8 << 20;
    sv->started = (int64_t)time(NULL);
    const char *name = o.model_name ? o.model_name
                       : sv->info->name && sv->info->name[0] ? sv->info->name : "herd";
    sv->model_name = herd_strdup(name);
    h->api_key = o.api_key ? herd_strdup(o.api_key) : NULL;
    sv->api_key = h->api_key;
    bool cors = o.cors_origins && o.cors_origins[0];
    h->cors = cors ? herd_strdup(o.cors_origins) : NULL;
    sv->cors = h->cors;
    sv->max_conns = o.max_conns > 0 ? o.max_conns : 512;
    sv->max_per_client = o.max_conns_per_client > 0 ? o.max_conns_per_client
                                                    : (sv->max_conns + 1) / 2;
    sv->access_log = o.access_log;
    sv->pooling = o.pooling == 1 ? SRV_POOL_LAST : SRV_POOL_MEAN;
    sv->max_choices = o.max_choices > 0 ? o.max_choices : 16;
    sv->timeout_s = (unsigned)(o.timeout_s > 0 ? o.timeout_s : 10);
    h->grace_s = o.grace_s > 0 ? o.grace_s : 0;
    if (!sv->model_name || (o.api_key && !h->api_key) || (cors && !h->cors)) {
        server_free(h);
        return herd_fail(HERD_ERR_NOMEM, "out of memory");
    }

    sigset_t old;
    block_async_signals(&old);
    herd_status st = srv_metrics_new(&sv->metrics);
    if (st != HERD_OK)
        goto fail;
    int32_t n_ctx = o.n_ctx;
    if (n_ctx <= 0)
        n_ctx = sv->info->max_seq_len > 0 && sv->info->max_seq_len < 8192 ? sv->info->max_seq_len
                                                                           : 8192;
    struct srv_sched_params sp = {o.n_parallel, n_ctx,     o.n_batch,     o.n_threads,
                                  o.max_queue,  o.kv_type, o.test_step_ms, o.draft,
                                  o.lookup,     o.draft_max, o.draft_min};
    st = srv_sched_new(m, &sp, sv->metrics, &sv->sched);
    if (st == HERD_OK && o.guard_model)
        st = srv_guard_new(o.guard_model, o.guard_categories, o.guard_on,
                           srv_sched_n_ctx(sv->sched), o.n_threads, &sv->guard);
    if (st != HERD_OK)
        goto fail;
    int32_t port = 0;
    h->d = start_daemon(sv, &o, &port);
    if (!h->d) {
        st = HERD_ERR_IO;
        goto fail;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    h->info = (herd_server_info){.port = port,
                                 .n_parallel = o.n_parallel,
                                 .n_ctx = srv_sched_n_ctx(sv->sched),
                                 .kv_type = o.kv_type,
                                 .kv_bytes = srv_sched_kv_bytes(sv->sched),
                                 .model_name = sv->model_name};
    *out = h;
    return HERD_OK;
fail:
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    server_free(h);
    return st;
}

const herd_server_info *herd_server_get_info(const herd_server *h)
{
    return h ? &h->info : NULL;
}

void herd_server_stop(herd_server *h)
{
    if (!h)
        return;
    /* No new connections, and a request arriving on an open keep-alive connection gets
     * 503; requests running or queued get grace_s to finish; then those left end (an error
     * event and [DONE] on each stream, an error body for a plain request) and are given
     * time to be sent, because MHD_stop_daemon shuts every connection's socket down at
     * once, unsent bytes included. */
    atomic_store(&h->sv.stopping, true);
    MHD_socket ls = MHD_quiesce_daemon(h->d);
    if (ls != MHD_INVALID_SOCKET)
        close(ls);
    double until = herd_time_s() + h->grace_s;
    for (;;) {
        int32_t active = 0, queued = 0;
        srv_sched_load(h->sv.sched, &active, &queued);
        if ((active == 0 && queued == 0) || herd_time_s() >= until)
            break;
        nanosleep(&(struct timespec){0, 10000000L}, NULL);
    }
    srv_sched_stop(h->sv.sched);
    for (int ms = 0; ms < STOP_DRAIN_MS && atomic_load(&h->sv.active) > 0; ms += 5)
        nanosleep(&(struct timespec){0, 5000000L}, NULL);
    MHD_stop_daemon(h->d);
    server_free(h);
}
