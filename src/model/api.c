/*
 * api.c - the public calls that create, change or free model state: herd_model_load/free,
 * herd_context_new/free, herd_decode, herd_seq_truncate/copy. Each checks its arguments and
 * fills defaults here, once, on the calling rank, then goes through the active
 * struct model_ops (dispatch.h): the local functions in one process, the leader table on
 * rank 0 of a multi-rank job. Everything after this point is the same code on every rank.
 */
#include "context.h" /* the *_local functions and check_batch */
#include "dispatch.h"

const struct model_ops model_ops_local = {
    .name = "local",
    .load = model_load_local,
    .free = model_free_local,
    .context_new = context_new_local,
    .context_free = context_free_local,
    .decode = decode_run,
    .seq_truncate = seq_truncate_local,
    .seq_copy = seq_copy_local,
};

static const struct model_ops *ops = &model_ops_local;

void model_ops_use(const struct model_ops *o)
{
    ops = o ? o : &model_ops_local;
}

herd_status herd_model_load(const char *path, const herd_model_params *params,
                            herd_model **out)
{
    *out = NULL;
    herd_clear_error();
    if (!path || !*path)
        return herd_fail(HERD_ERR_INVALID, "no model path given");
    herd_model_params p = {0};
    if (params)
        p = *params;
    if (p.n_threads < 0)
        p.n_threads = 0;
    return ops->load(path, &p, out);
}

void herd_model_free(herd_model *m)
{
    if (m)
        ops->free(m);
}

herd_status herd_context_new(const herd_model *m, const herd_context_params *params,
                             herd_context **out)
{
    *out = NULL;
    herd_clear_error();
    herd_context_params p = params ? *params : herd_context_default_params();
    return ops->context_new(m, &p, out);
}

void herd_context_free(herd_context *c)
{
    if (c)
        ops->context_free(c);
}

herd_status herd_decode(herd_context *c, const herd_batch *b, float *out)
{
    herd_clear_error();
    herd_status s = check_batch(c, b, out);
    if (s != HERD_OK)
        return s;
    return ops->decode(c, b, out);
}

herd_status herd_decode_hidden(herd_context *c, const herd_batch *b, float *out,
                               const int8_t *hidden, float *hidden_out)
{
    herd_clear_error();
    herd_status s = check_batch(c, b, out);
    if (s != HERD_OK)
        return s;
    int32_t n_hidden = 0;
    for (int32_t i = 0; hidden && i < b->n_tokens; i++)
        n_hidden += hidden[i] != 0;
    if (n_hidden == 0)
        return ops->decode(c, b, out);
    if (!hidden_out)
        return herd_fail(HERD_ERR_INVALID, "batch wants hidden states but no buffer given");
    /* the followers of a job have no part in it yet: their ops table sends decode only */
    if (ops != &model_ops_local || c->m->sh.n_ranks > 1)
        return herd_fail(HERD_ERR_UNSUPPORTED, "hidden states (embeddings) are not available "
                         "in a multi-rank job yet");
    return decode_run_hidden(c, b, out, hidden, hidden_out);
}

herd_status herd_seq_truncate(herd_context *c, int32_t seq, int32_t from)
{
    return ops->seq_truncate(c, seq, from);
}

herd_status herd_seq_copy(herd_context *c, int32_t dst, int32_t src, int32_t n)
{
    return ops->seq_copy(c, dst, src, n);
}
