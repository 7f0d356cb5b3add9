/*
 * fuzz_server_request.c - fuzz target for what the server does with a request body before
 * any model work, as http.c calls it (no sockets): srv_parse_request for
 * /v1/chat/completions or /v1/completions (the first byte's bit 0, bit 1 a Llama 3.2 model
 * name, bit 2 a 24-position context; the rest is the body),
 * the error body on failure; on success, for chat, srv_render_chat with a tiny tokenizer
 * (the prompt the scheduler would get), the JSON constraint set up as sched.c does for
 * response_format / forced tool calls and fed the body's own bytes, and the stop-string
 * scanner and response writers over the body as if the model had generated it.
 */
#include "fuzz_main.h"
#include "server/server.h"

static void as_generated(const struct srv_params *p, const char *s, size_t n)
{
    /* the first stop string occurrence, or none and a held tail that could begin one */
    size_t safe = 0;
    long at = srv_stop_scan(s, n, p->stop, p->n_stop, &safe);
    FUZZ_ASSERT(at < (long)n && safe <= n && (at < 0 || (size_t)at == safe));
    for (int i = 0; i < p->n_stop; i++) {
        size_t sl = strlen(p->stop[i]);
        const char *hit = sl ? memmem(s, n, p->stop[i], sl) : NULL;
        FUZZ_ASSERT(!hit || (at >= 0 && hit - s >= at));
    }
    size_t v = srv_utf8_valid_prefix(s, n);
    FUZZ_ASSERT(v <= n && fuzz_utf8_valid((const uint8_t *)s, v));
    cJSON *j = srv_json_text(s, n);
    FUZZ_ASSERT(j && cJSON_IsString(j) &&
                fuzz_utf8_valid((const uint8_t *)j->valuestring, strlen(j->valuestring)));
    cJSON_Delete(j);
}

static void constrain(const struct srv_params *p, const char *s, size_t n)
{
    if (!p->json_object && !p->force_prefix)
        return;
    struct srv_jsonc j;
    srv_jsonc_init(&j);
    if (p->force_prefix)
        srv_jsonc_feed(&j, p->force_prefix, strlen(p->force_prefix));
    if (p->n_force_alts)
        srv_jsonc_expect(&j, p->force_alts, p->n_force_alts);
    FUZZ_ASSERT(srv_jsonc_cost(&j) >= 0);
    for (size_t i = 0; i < n; i++) {
        struct srv_jsonc t = j;
        if (!srv_jsonc_feed(&t, s + i, 1))
            continue;
        j = t;
        FUZZ_ASSERT(srv_jsonc_cost(&j) >= 0 && (srv_jsonc_cost(&j) == 0) == srv_jsonc_done(&j));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum srv_kind kind = (data[0] & 1) ? SRV_COMPLETION : SRV_CHAT;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    const herd_tokenizer *tok = fuzz_tokenizer(0);
    struct srv_params p;
    struct srv_error err;
    memset(&err, 0, sizeof err);
    if (!srv_parse_request(kind, body, len, herd_tokenizer_n_vocab(tok), &p, &err)) {
        FUZZ_ASSERT(err.http >= 400 && err.message[0]);
        char *e = srv_error_json(&err);
        FUZZ_ASSERT(e);
        herd_free(e);
        srv_params_free(&p);
        return 0;
    }
    if (kind == SRV_CHAT) {
        herd_model_info info;
        memset(&info, 0, sizeof info);
        info.name = (data[0] & 2) ? "Llama-3.2-tiny" : "tiny";
        info.n_vocab = herd_tokenizer_n_vocab(tok);
        int32_t *ids = NULL;
        size_t n = 0;
        struct srv_error rerr;
        memset(&rerr, 0, sizeof rerr);
        int32_t n_ctx = (data[0] & 4) ? 24 : 4096; /* bit 2: a context the prompt overflows */
        if (srv_render_chat(tok, &info, &p, n_ctx, &ids, &n, &rerr))
            FUZZ_ASSERT(n > 0);
        else
            FUZZ_ASSERT(rerr.http >= 400 && rerr.message[0]);
        herd_free(ids);
    }
    constrain(&p, body, len);
    as_generated(&p, body, len);
    srv_params_free(&p);
    return 0;
}
