/*
 * fuzz_chat_render.c - fuzz target for the chat renderer: the input is an OpenAI chat
 * request (JSON) for herd_chat_render with the Llama 3.1 and 3.2 templates; any bytes
 * give a prompt or a clean error. Where the text render succeeds, the token render
 * (herd_chat_render_tokens, the engine's path: specials by id, text as plain text) must
 * succeed too and decode to exactly the same prompt. Then the same bytes, cut at NULs into
 * role/content pairs, go through herd_chat_render_messages (the interactive chat's path).
 */
#include "fuzz_main.h"

static void render(const uint8_t *data, size_t size, herd_chat_template tmpl)
{
    herd_chat_options opt = herd_chat_default_options();
    opt.tmpl = tmpl;
    opt.date_string = size & 1 ? "01 Jan 2025" : NULL;
    char *prompt = NULL;
    size_t len = 0;
    if (herd_chat_render((const char *)data, size, &opt, &prompt, &len) != HERD_OK)
        return;
    FUZZ_ASSERT(prompt && prompt[len] == '\0'); /* content may hold NUL (\u0000) */
    const herd_tokenizer *t = fuzz_tokenizer(0);
    int32_t *ids = NULL;
    size_t n = 0;
    herd_status s = herd_chat_render_tokens(t, (const char *)data, size, &opt, &ids, &n);
    FUZZ_ASSERT(s == HERD_OK);
    char *text = NULL;
    size_t tlen = 0;
    FUZZ_ASSERT(herd_detokenize(t, ids, n, &text, &tlen) == HERD_OK);
    FUZZ_ASSERT(tlen == len && memcmp(text, prompt, len) == 0);
    herd_free(text);
    herd_free(ids);
    herd_free(prompt);
}

static void render_messages(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    if (!copy)
        return;
    memcpy(copy, data, size);
    copy[size] = '\0';
    herd_chat_message msgs[8];
    size_t n = 0;
    const char *field[2];
    int k = 0;
    for (size_t at = 0; at <= size && n < 8;) {
        field[k++] = copy + at;
        at += strlen(copy + at) + 1;
        if (k == 2) {
            msgs[n].role = field[0];
            msgs[n].content = field[1];
            n++;
            k = 0;
        }
    }
    herd_chat_options opt = herd_chat_default_options();
    opt.add_generation_prompt = size & 2;
    char *prompt = NULL;
    size_t len = 0;
    if (herd_chat_render_messages(msgs, n, &opt, &prompt, &len) == HERD_OK) {
        int32_t *ids = NULL;
        size_t m = 0;
        FUZZ_ASSERT(herd_chat_render_messages_tokens(fuzz_tokenizer(0), msgs, n, &opt, &ids,
                                                     &m) == HERD_OK);
        herd_free(ids);
        herd_free(prompt);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    render(data, size, HERD_CHAT_LLAMA31);
    render(data, size, HERD_CHAT_LLAMA32);
    render_messages(data, size);
    return 0;
}
