/*
 * test_model_memplan.c - the memory plan a context checks before it allocates
 * (model/context.c check_memory): a context larger than the limit is refused with a
 * one-line reason and the largest context that fits, and that suggestion does fit; the
 * machine's own available memory is the default limit, so an absurd request (a hundred
 * thousand sequences of the model's whole context) is refused instead of overcommitted.
 * The model comes from HERD_TEST_MODEL (tests/cmake/model.cmake).
 */
#include "check.h"
#include "model/context.h"

#include <stdlib.h> /* getenv, strtoll */

static herd_status make(herd_model *m, int32_t n_ctx, int32_t n_seq, int64_t limit)
{
    herd_context_params p = herd_context_default_params();
    p.n_ctx = n_ctx;
    p.n_seq = n_seq;
    p.mem_limit = limit;
    herd_context *c = NULL;
    herd_status s = herd_context_new(m, &p, &c);
    CHECK((s == HERD_OK) == (c != NULL));
    herd_context_free(c);
    return s;
}

int main(void)
{
    const char *path = check_test_model();
    if (!path)
        return 77;
    herd_model_params mp = {.n_threads = 1};
    herd_model *m;
    if (herd_model_load(path, &mp, &m) != HERD_OK) {
        printf("cannot load %s: %s\n", path, herd_last_error());
        return 1;
    }
    int32_t max_ctx = m->info.max_seq_len;
    CHECK(max_ctx >= 512);

    /* a small limit: refused, naming the sizes and the context that fits */
    const int64_t limit = 4 << 20;
    herd_status s = make(m, max_ctx, 4, limit);
    CHECK(s == HERD_ERR_NOMEM);
    const char *e = herd_last_error();
    const char *fit = strstr(e, "at most ");
    CHECK_MSG(fit && strstr(e, "KV cache") && strstr(e, "4 sequences"), "%s", e);
    long long n = fit ? strtoll(fit + 8, NULL, 10) : 0;
    CHECK_MSG(n > 0 && n < max_ctx, "suggested %lld of %d", n, max_ctx);
    /* the suggestion fits, and the next round size does not */
    if (n > 0 && n < max_ctx) {
        CHECK_MSG(make(m, (int32_t)n, 4, limit) == HERD_OK, "%s", herd_last_error());
        CHECK(make(m, (int32_t)n + 256 <= max_ctx ? (int32_t)n + 256 : max_ctx, 4, limit) ==
              HERD_ERR_NOMEM);
    }
    /* no check */
    CHECK(make(m, max_ctx, 4, -1) == HERD_OK);
    /* the machine's available memory by default: an ordinary context fits, an absurd one is
     * refused before anything is allocated */
    CHECK_MSG(make(m, 256, 1, 0) == HERD_OK, "%s", herd_last_error());
    if (herd_mem_available() > 0) {
        CHECK(make(m, max_ctx, 100000, 0) == HERD_ERR_NOMEM);
        CHECK_MSG(strstr(herd_last_error(), "available on this machine"), "%s",
                  herd_last_error());
    }
    herd_model_free(m);
    return check_done();
}
