/*
 * chat.h - chat/'s insides shared by its files: the prompt emitter that lets one renderer
 * produce either text or token ids, and the renderer over a parsed request.
 *
 * The renderer (render.c) walks the official Llama 3.1 / 3.2 Instruct templates by hand and
 * calls emit_text for ordinary text and e->special for a template control token. In text
 * mode a special is just its text; in token mode (chat_tokens.c) the special's place in
 * the text is marked, and once the whole prompt is rendered each text run is tokenized as
 * plain text with the special's id after it, which is what makes user text unable to
 * smuggle in control tokens. Keeping the token mode in its own file means programs that
 * only render text do not link the tokenizer.
 */
#ifndef HERD_CHAT_CHAT_H
#define HERD_CHAT_CHAT_H

#include "pyjson.h" /* struct pj_value, base.h */

struct chat_emitter {
    struct herd_buf text; /* the prompt (text mode) or all its text runs (token mode) */
    herd_status (*special)(struct chat_emitter *e, const char *name);
    void *ctx; /* token mode's state */
};

/* Text mode: specials are appended as text. */
void chat_emitter_init_text(struct chat_emitter *e);

/* Parses a request and applies the OpenAI-server conventions of herd_chat_render
 * (string tool-call arguments parsed, text-part lists joined). */
herd_status chat_request_parse(const char *json, size_t len, struct pj_value *req);
/* Builds the same tree from a plain message list. */
herd_status chat_request_from_messages(const herd_chat_message *msgs, size_t n_msgs,
                                       const herd_chat_options *opt, struct pj_value *req);

/* Renders a prepared request through e. */
herd_status chat_render(struct chat_emitter *e, const struct pj_value *req,
                        const herd_chat_options *opt);

/* Token mode over any renderer (the chat templates, guard.c's Llama Guard format): render
 * emits the prompt through e, then its text runs are tokenized as plain text with each
 * control token placed by id; max_tokens as herd_chat_options.max_tokens (0 = no limit). */
typedef herd_status (*chat_render_fn)(struct chat_emitter *e, const void *arg);
herd_status chat_render_tokens_with(const herd_tokenizer *tok, chat_render_fn render,
                                    const void *arg, size_t max_tokens, int32_t **ids,
                                    size_t *n_ids);

/* Python's str.strip() (Unicode whitespace): the [*lo, *hi) range of s without it. */
void chat_py_strip(const char *s, size_t len, size_t *lo, size_t *hi);

#endif /* HERD_CHAT_CHAT_H */
