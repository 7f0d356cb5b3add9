/*
 * chat_tokens.c - the prompt as token ids, and which ids end a turn.
 *
 * The renderer's text runs between two control tokens are tokenized as plain text
 * (parse_special = false) and each control token is placed by id. Tokenizing a whole run
 * at once gives the same ids as tokenizing the rendered prompt with special-token parsing,
 * because a special token always splits the text there; the difference is only that a
 * user's "<|eot_id|>" stays text.
 *
 * With a limit (herd_chat_options.max_tokens) a prompt that cannot fit is refused before
 * the tokenizer has seen all of it: first from byte counts alone (no token is longer than
 * the vocabulary's longest, so bytes / longest is a lower bound on ids), then run by run.
 * Byte counts are never used the other way round except to skip the check: an id covers
 * at least one byte, so a prompt of fewer bytes than the limit always fits.
 *
 * Llama 3 fixes the control-token ids (Meta's tokenizer.py); they are the fallback when a
 * tokenizer file names ids 128008/128010 the Llama 3.0 way.
 */
#include "chat.h"

/* Token mode renders the whole prompt first and tokenizes afterwards, so that a prompt
 * too long for max_tokens is refused from byte counts before the tokenizer runs: text
 * holds every text run back to back, and marks[i] says that a control token (id) follows
 * the first at bytes of it. */
struct mark {
    size_t at;
    int32_t id;
};

struct token_state {
    const herd_tokenizer *tok;
    struct mark *marks;
    size_t n_marks, cap_marks;
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

static herd_status special_as_mark(struct chat_emitter *e, const char *name)
{
    struct token_state *ts = e->ctx;
    if (e->text.err != HERD_OK)
        return e->text.err;
    int32_t id = special_id(ts->tok, name);
    if (id < 0)
        return e->text.err = herd_fail(HERD_ERR_UNSUPPORTED,
                                       "chat: the tokenizer has no %s token", name);
    if (ts->n_marks == ts->cap_marks) {
        size_t cap = ts->cap_marks ? ts->cap_marks * 2 : 64;
        struct mark *m = herd_realloc(ts->marks, cap * sizeof *m);
        if (!m)
            return e->text.err = herd_fail(HERD_ERR_NOMEM, "chat: out of memory for %zu "
                                           "control tokens", cap);
        ts->marks = m;
        ts->cap_marks = cap;
    }
    ts->marks[ts->n_marks].at = e->text.len;
    ts->marks[ts->n_marks].id = id;
    ts->n_marks++;
    return HERD_OK;
}

static size_t div_up(size_t a, size_t b)
{
    return a / b + (a % b != 0);
}

static herd_status too_long(size_t at_least, size_t max_tokens, size_t *n_ids)
{
    *n_ids = at_least;
    return herd_fail(HERD_ERR_CONTEXT, "chat: the prompt needs at least %zu tokens, more "
                     "than the %zu allowed", at_least, max_tokens);
}

/* Text run i is text[from, to) with from/to given by the marks around it. */
static void run_bounds(const struct token_state *ts, size_t i, size_t text_len, size_t *from,
                       size_t *to)
{
    *from = i == 0 ? 0 : ts->marks[i - 1].at;
    *to = i < ts->n_marks ? ts->marks[i].at : text_len;
}

/* Tokenizes the runs in order, each followed by its control token. With a limit, bound is
 * kept a lower bound on the final count: the ids so far plus ceil(bytes / longest) for
 * each run not yet tokenized plus the control tokens to come. Every text token covers at
 * most `longest` bytes, so the bound is never above the truth, and the first time it
 * passes max_tokens the prompt is refused without tokenizing the remaining runs. */
static herd_status tokenize_runs(struct token_state *ts, const struct herd_buf *text,
                                 size_t max_tokens, size_t *n_ids)
{
    size_t longest = 0, bound = 0;
    /* Each id covers at least one byte, so text bytes + control tokens can never be
     * exceeded: within the limit there is nothing to check (the common case). */
    if (max_tokens && text->len + ts->n_marks > max_tokens) {
        /* no token of a run covers more than the vocabulary's longest (specials counted
         * too, which only loosens the bound), so a run needs ceil(len / longest) ids */
        longest = herd_tokenizer_max_token_bytes(ts->tok);
        bound = ts->n_marks;
        for (size_t i = 0; i <= ts->n_marks; i++) {
            size_t from, to;
            run_bounds(ts, i, text->len, &from, &to);
            bound += div_up(to - from, longest);
        }
    }
    for (size_t i = 0; i <= ts->n_marks; i++) {
        if (longest && bound > max_tokens)
            return too_long(bound, max_tokens, n_ids);
        size_t from, to;
        run_bounds(ts, i, text->len, &from, &to);
        herd_status s = HERD_OK;
        if (to > from) {
            int32_t *ids = NULL;
            size_t n = 0;
            s = herd_tokenize(ts->tok, text->data + from, to - from, false, false, &ids, &n);
            if (s == HERD_OK)
                s = push_ids(ts, ids, n);
            herd_free(ids);
            if (longest)
                bound = bound - div_up(to - from, longest) + n;
        }
        if (s == HERD_OK && i < ts->n_marks)
            s = push_ids(ts, &ts->marks[i].id, 1);
        if (s != HERD_OK)
            return s;
    }
    if (max_tokens && ts->n > max_tokens)
        return too_long(ts->n, max_tokens, n_ids);
    return HERD_OK;
}

herd_status chat_render_tokens_with(const herd_tokenizer *tok, chat_render_fn render,
                                    const void *arg, size_t max_tokens, int32_t **ids,
                                    size_t *n_ids)
{
    struct token_state ts = {tok, NULL, 0, 0, NULL, 0, 0};
    struct chat_emitter e;
    chat_emitter_init_text(&e);
    e.special = special_as_mark;
    e.ctx = &ts;
    herd_status s = render(&e, arg);
    if (s == HERD_OK)
        s = e.text.err;
    if (s == HERD_OK)
        s = tokenize_runs(&ts, &e.text, max_tokens, n_ids);
    buf_free(&e.text);
    herd_free(ts.marks);
    if (s != HERD_OK) {
        herd_free(ts.ids);
        return s;
    }
    *ids = ts.ids;
    *n_ids = ts.n;
    return HERD_OK;
}

struct chat_job {
    const struct pj_value *req;
    const herd_chat_options *opt;
};

static herd_status render_job(struct chat_emitter *e, const void *arg)
{
    const struct chat_job *job = arg;
    return chat_render(e, job->req, job->opt);
}

static herd_status render_tokens(const herd_tokenizer *tok, const struct pj_value *req,
                                 const herd_chat_options *opt, int32_t **ids, size_t *n_ids)
{
    struct chat_job job = {req, opt};
    return chat_render_tokens_with(tok, render_job, &job, opt->max_tokens, ids, n_ids);
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
    if (id == special_id(tok, "<|eot_id|>") || id == herd_token_special(tok, "<|im_end|>"))
        return HERD_CHAT_STOP_EOT;
    if (id == special_id(tok, "<|eom_id|>"))
        return HERD_CHAT_STOP_EOM;
    if (id == special_id(tok, "<|end_of_text|>") ||
        id == herd_token_special(tok, "<|endoftext|>"))
        return HERD_CHAT_STOP_EOS;
    return HERD_CHAT_STOP_NONE;
}
