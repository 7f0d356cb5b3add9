/*
 * chat_tokens.c - the prompt as token ids, and which ids end a turn.
 *
 * The renderer's text runs between two control tokens are tokenized as plain text
 * (parse_special = false) and each control token is placed by id. Tokenizing a whole run
 * at once gives the same ids as tokenizing the rendered prompt with special-token parsing,
 * because a special token always splits the text there; the difference is only that a
 * user's "<|eot_id|>" stays text.
 *
 * Llama 3 fixes the control-token ids (Meta's tokenizer.py); they are the fallback when a
 * tokenizer file names ids 128008/128010 the Llama 3.0 way.
 */
#include "chat.h"

struct token_state {
    const herd_tokenizer *tok;
    int32_t *ids;
    size_t n, cap;
};

static const struct {
    const char *name;
    int32_t id;
} llama3_specials[] = {
    {"<|begin_of_text|>", 128000}, {"<|end_of_text|>", 128001},
    {"<|start_header_id|>", 128006}, {"<|end_header_id|>", 128007},
    {"<|eom_id|>", 128008}, {"<|eot_id|>", 128009}, {"<|python_tag|>", 128010},
};

static int32_t special_id(const herd_tokenizer *tok, const char *name)
{
    int32_t id = herd_token_special(tok, name);
    if (id >= 0)
        return id;
    if (herd_tokenizer_n_vocab(tok) < 128256)
        return -1;
    for (size_t i = 0; i < sizeof llama3_specials / sizeof llama3_specials[0]; i++)
        if (strcmp(llama3_specials[i].name, name) == 0)
            return llama3_specials[i].id;
    return -1;
}

static herd_status push_ids(struct token_state *ts, const int32_t *ids, size_t n)
{
    if (ts->n + n > ts->cap) {
        size_t cap = ts->cap ? ts->cap : 256;
        while (cap < ts->n + n)
            cap *= 2;
        int32_t *p = herd_realloc(ts->ids, cap * sizeof *p);
        if (!p)
            return herd_fail(HERD_ERR_NOMEM, "chat: out of memory for %zu tokens", cap);
        ts->ids = p;
        ts->cap = cap;
    }
    memcpy(ts->ids + ts->n, ids, n * sizeof *ids);
    ts->n += n;
    return HERD_OK;
}

static herd_status flush_text(struct chat_emitter *e)
{
    struct token_state *ts = e->ctx;
    if (e->text.err != HERD_OK)
        return e->text.err;
    if (e->text.len == 0)
        return HERD_OK;
    int32_t *ids = NULL;
    size_t n = 0;
    herd_status s = herd_tokenize(ts->tok, e->text.data, e->text.len, false, false, &ids, &n);
    if (s == HERD_OK)
        s = push_ids(ts, ids, n);
    herd_free(ids);
    e->text.len = 0;
    return s;
}

static herd_status special_as_id(struct chat_emitter *e, const char *name)
{
    struct token_state *ts = e->ctx;
    herd_status s = flush_text(e);
    if (s != HERD_OK)
        return e->text.err = s;
    int32_t id = special_id(ts->tok, name);
    if (id < 0)
        return e->text.err = herd_fail(HERD_ERR_UNSUPPORTED,
                                       "chat: the tokenizer has no %s token", name);
    s = push_ids(ts, &id, 1);
    if (s != HERD_OK)
        e->text.err = s;
    return s;
}

static herd_status render_tokens(const herd_tokenizer *tok, const struct pj_value *req,
                                 const herd_chat_options *opt, int32_t **ids, size_t *n_ids)
{
    struct token_state ts = {tok, NULL, 0, 0};
    struct chat_emitter e;
    chat_emitter_init_text(&e);
    e.special = special_as_id;
    e.ctx = &ts;
    herd_status s = chat_render(&e, req, opt);
    if (s == HERD_OK)
        s = flush_text(&e);
    buf_free(&e.text);
    if (s != HERD_OK) {
        herd_free(ts.ids);
        return s;
    }
    *ids = ts.ids;
    *n_ids = ts.n;
    return HERD_OK;
}

herd_status herd_chat_render_tokens(const herd_tokenizer *tok, const char *request_json,
                                    size_t request_len, const herd_chat_options *opt,
                                    int32_t **ids, size_t *n_ids)
{
    *ids = NULL;
    *n_ids = 0;
    if (!tok)
        return herd_fail(HERD_ERR_INVALID, "chat: no tokenizer");
    herd_chat_options def = herd_chat_default_options();
    struct pj_value req;
    herd_status s = chat_request_parse(request_json, request_len, &req);
    if (s != HERD_OK)
        return s;
    s = render_tokens(tok, &req, opt ? opt : &def, ids, n_ids);
    pj_free(&req);
    return s;
}

herd_status herd_chat_render_messages_tokens(const herd_tokenizer *tok,
                                             const herd_chat_message *msgs, size_t n_msgs,
                                             const herd_chat_options *opt, int32_t **ids,
                                             size_t *n_ids)
{
    *ids = NULL;
    *n_ids = 0;
    if (!tok)
        return herd_fail(HERD_ERR_INVALID, "chat: no tokenizer");
    herd_chat_options def = herd_chat_default_options();
    if (!opt)
        opt = &def;
    struct pj_value req;
    herd_status s = chat_request_from_messages(msgs, n_msgs, opt, &req);
    if (s != HERD_OK)
        return s;
    s = render_tokens(tok, &req, opt, ids, n_ids);
    pj_free(&req);
    return s;
}

herd_chat_stop herd_chat_stop_kind(const herd_tokenizer *tok, int32_t id)
{
    if (id < 0 || !tok)
        return HERD_CHAT_STOP_NONE;
    if (id == special_id(tok, "<|eot_id|>"))
        return HERD_CHAT_STOP_EOT;
    if (id == special_id(tok, "<|eom_id|>"))
        return HERD_CHAT_STOP_EOM;
    if (id == special_id(tok, "<|end_of_text|>"))
        return HERD_CHAT_STOP_EOS;
    return HERD_CHAT_STOP_NONE;
}
