/*
 * test_oom_sweep.c - the allocation-failure sweep (curl's torture test, sqlite's OOM test)
 * over everything one request does: load a model (weights, tokenizer), create a context,
 * render a chat request with tools to token ids, decode the prompt, sample a token and
 * decode it, free everything; where the server is built, the request also goes the
 * server's way first (srv_parse_request, srv_render_chat: what http.c does with a body). Run again with the n-th allocation through the seam
 * (herd_alloc_fail_after) failing, for every n until a run needs no more: each run must end
 * in success or in a clean HERD_ERR_NOMEM with a message, never a crash or another status;
 * under the ASan build (make asan, detect_leaks=1) a leak on any of those paths fails it.
 * The model comes from HERD_TEST_MODEL (tests/cmake/model.cmake).
 */
#include "check.h"
#include "base/base.h" /* herd_alloc_fail_after, the test hook of the allocation seam */
#ifdef HERD_TEST_SERVER
#include "server/server.h" /* srv_parse_request, srv_render_chat */
#endif

#include <stdlib.h> /* getenv */
#include <string.h> /* strlen */

static const char request[] =
    "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
    "{\"role\":\"user\",\"content\":\"Weather in Paris? \\u00e9t\\u00e9 1.0\"}],"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
    "\"description\":\"Current weather\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"city\":{\"type\":\"string\"},\"days\":{\"type\":\"integer\","
    "\"minimum\":0.0}},\"required\":[\"city\"]}}}]}";

/* One request from nothing to freed; the first failure's status. */
static herd_status one_request(const char *path)
{
    herd_model *m = NULL;
    herd_context *c = NULL;
    herd_sampler *smp = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    size_t n_ids = 0;
    herd_model_params mp = {.n_threads = 1};
    herd_status s = herd_model_load(path, &mp, &m);
    if (s != HERD_OK)
        goto done;
    herd_context_params cp = herd_context_default_params();
    cp.n_ctx = 256;
    cp.n_threads = 1;
    if ((s = herd_context_new(m, &cp, &c)))
        goto done;
#ifdef HERD_TEST_SERVER
    /* The server's path: a 500 is how it reports an allocation failure; a 400 would be a
     * failure reported as the client's fault. */
    struct srv_params sp0;
    struct srv_error err;
    memset(&err, 0, sizeof err);
    if (!srv_parse_request(SRV_CHAT, request, strlen(request),
                           herd_tokenizer_n_vocab(herd_model_tokenizer(m)), &sp0, &err)) {
        s = err.http == 500 ? herd_fail(HERD_ERR_NOMEM, "server parse: %s", err.message)
                            : herd_fail(HERD_ERR_INVALID, "server parse: %d %s", err.http,
                                        err.message);
        srv_params_free(&sp0);
        goto done;
    }
    int32_t *sids = NULL;
    size_t n_sids = 0;
    bool ok = srv_render_chat(herd_model_tokenizer(m), herd_model_get_info(m), &sp0, 4096,
                              &sids, &n_sids, &err);
    srv_params_free(&sp0);
    herd_free(sids);
    if (!ok) {
        s = err.http == 500 ? herd_fail(HERD_ERR_NOMEM, "server render: %s", err.message)
                            : herd_fail(HERD_ERR_INVALID, "server render: %d %s", err.http,
                                        err.message);
        goto done;
    }
#endif
    herd_chat_options opt = herd_chat_default_options();
    if ((s = herd_chat_render_tokens(herd_model_tokenizer(m), request, strlen(request), &opt,
                                     &ids, &n_ids)))
        goto done;
    const herd_model_info *in = herd_model_get_info(m);
    logits = malloc((size_t)in->n_vocab * sizeof *logits);
    herd_sampler_params sp = herd_sampler_default_params();
    if ((s = herd_sampler_new(&sp, in->n_vocab, &smp)))
        goto done;
    int32_t pos[256], seq[256] = {0};
    int8_t want[256] = {0};
    for (size_t i = 0; i < n_ids && i < 256; i++)
        pos[i] = (int32_t)i;
    size_t n = n_ids < 255 ? n_ids : 255;
    want[n - 1] = 1;
    herd_batch b = {.n_tokens = (int32_t)n, .tokens = ids, .pos = pos, .seq = seq,
                    .logits = want};
    if ((s = herd_decode(c, &b, logits)))
        goto done;
    int32_t tok;
    if ((s = herd_sampler_sample(smp, logits, in->n_vocab, &tok)))
        goto done;
    herd_sampler_accept(smp, tok);
    int32_t p1 = (int32_t)n, s0 = 0;
    int8_t w1 = 1;
    herd_batch b1 = {.n_tokens = 1, .tokens = &tok, .pos = &p1, .seq = &s0, .logits = &w1};
    s = herd_decode(c, &b1, logits);
done:
    free(logits);
    herd_free(ids);
    herd_sampler_free(smp);
    herd_context_free(c);
    herd_model_free(m);
    return s;
}

int main(void)
{
    const char *path = check_test_model();
    if (!path)
        return 77;
    /* the request must work at all, or the sweep proves nothing */
    herd_status s = one_request(path);
    CHECK_MSG(s == HERD_OK, "%s", herd_last_error());
    long n;
    for (n = 0; n < 100000 && s == HERD_OK; n++) {
        herd_alloc_fail_after(n);
        s = one_request(path);
        herd_alloc_fail_after(-1);
        if (s == HERD_OK)
            break; /* the request needs no more than n allocations */
        CHECK_MSG(s == HERD_ERR_NOMEM && herd_last_error()[0], "allocation %ld failing: "
                  "status %d (%s) '%s'", n, (int)s, herd_status_str(s), herd_last_error());
        s = HERD_OK;
    }
    printf("allocation-failure sweep: %ld runs, each failing one more allocation\n", n);
    CHECK(n > 10);
    return check_done();
}
