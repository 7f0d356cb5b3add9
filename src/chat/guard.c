/*
 * guard.c - the Llama Guard 3 prompt format and its answer: herd_guard_render(_tokens),
 * herd_guard_parse.
 *
 * Source: the chat_template of Meta's tokenizer_config.json for Llama-Guard-3-8B (one Jinja
 * line, 1412 characters) and Llama-Guard-3-1B (the same as Llama-Guard-3-11B-Vision's), kept
 * byte for byte in tests/guard/templates/, rendered as transformers' apply_chat_template
 * runs them (jinja2 sandbox, trim_blocks/lstrip_blocks). tests/guard/make_golden.py renders
 * conversations with those files and `herd guard --render` must give the same bytes.
 *
 * Both templates (what the bytes depend on):
 *   role = 'Agent' when the number of messages is even, else 'User' (a set inside the loop
 *   does not leak out of it, so the last line uses this parity rule too);
 *   message i must be a user message exactly when i is even, else raise_exception;
 *   each message prints "User: " / "Agent: " + stripped text + "\n\n" (a role that is
 *   neither user nor assistant, possible at odd places, prints the parity role).
 * 8B: " <|begin_of_text|>" (a space first), S1-S14 fixed, content.strip() on a string
 * (herd joins a list of text parts with "\n" first, the chat renderer's convention), and
 * "categories.<|eot_id|>" at the end. 1B: no space, the category lines come from the
 * "categories" argument (default S1-S13) minus "excluded_category_keys", each text part of
 * a message is a line of its own, "categories. <|eot_id|>" (a space) at the end. For the
 * 8B format herd also takes "categories"/"excluded_category_keys" (the official template
 * ignores them) and renders them into its list the 1B way.
 */
#include "chat.h"

#include <ctype.h> /* tolower, isdigit, for the answer parser */
#include <stdio.h> /* snprintf */

/* The template's default category lines: "S1: Violent Crimes.". 1B stops at S13. */
static const char *const default_codes[] = {"S1", "S2",  "S3",  "S4",  "S5",  "S6",  "S7",
                                            "S8", "S9", "S10", "S11", "S12", "S13", "S14"};
static const char *const default_names[] = {
    "Violent Crimes.",      "Non-Violent Crimes.",     "Sex Crimes.",
    "Child Exploitation.",  "Defamation.",             "Specialized Advice.",
    "Privacy.",             "Intellectual Property.",  "Indiscriminate Weapons.",
    "Hate.",                "Self-Harm.",              "Sexual Content.",
    "Elections.",           "Code Interpreter Abuse.",
};

static size_t n_defaults(herd_guard_format f)
{
    return f == HERD_GUARD_FORMAT_1B ? 13 : 14;
}

herd_guard_options herd_guard_default_options(void)
{
    herd_guard_options o;
    memset(&o, 0, sizeof o);
    o.format = HERD_GUARD_FORMAT_8B;
    o.role = HERD_GUARD_ROLE_AUTO;
    o.max_tokens = 10;
    return o;
}

bool herd_guard_is_template(const herd_model_info *info)
{
    return info && info->chat_template &&
           strstr(info->chat_template, "<BEGIN UNSAFE CONTENT CATEGORIES>");
}

herd_guard_format herd_guard_format_for(const herd_model_info *info)
{
    if (!info)
        return HERD_GUARD_FORMAT_8B;
    /* the file's own template says which one it is */
    if (info->chat_template && strstr(info->chat_template, "excluded_category_keys"))
        return HERD_GUARD_FORMAT_1B;
    if (info->chat_template && strstr(info->chat_template, "S14: Code Interpreter Abuse"))
        return HERD_GUARD_FORMAT_8B;
    /* Llama Guard 3 1B is Llama 3.2 1B pruned to 12 layers: dim 2048 */
    if (info->dim == 2048 || (info->name && strstr(info->name, "1B")))
        return HERD_GUARD_FORMAT_1B;
    return HERD_GUARD_FORMAT_8B;
}

const char *herd_guard_verdict_str(herd_guard_verdict v)
{
    switch (v) {
    case HERD_GUARD_SAFE:
        return "safe";
    case HERD_GUARD_UNSAFE:
        return "unsafe";
    default:
        return "unparseable";
    }
}

/* ---------------------------------------------------------------- the conversation */

/* One category line: code and description, borrowed from the request or the defaults. */
struct gcat {
    const char *code, *desc;
    size_t code_len, desc_len;
};

/* What the template sees, after herd's conventions (role cut, normalizing). */
struct gconv {
    herd_guard_format format;
    struct pj_value req;       /* the parsed request (owned) */
    const struct pj_value *msgs; /* its message array */
    size_t n_msgs;             /* messages used (role USER may cut the tail) */
    struct pj_value norm;      /* normalize: the rebuilt message array (owned) */
    struct gcat *cats;         /* the category lines to print (owned array) */
    size_t n_cats;
};

static void gconv_free(struct gconv *g)
{
    pj_free(&g->req);
    pj_free(&g->norm);
    herd_free(g->cats);
    memset(g, 0, sizeof *g);
}

static bool is_role(const struct pj_value *m, const char *role)
{
    return m && m->type == PJ_OBJECT && pj_equals_str(pj_get(m, "role"), role);
}

/* A text part: {"type": "text", ...}. */
static bool text_part(const struct pj_value *p)
{
    return p && p->type == PJ_OBJECT && pj_equals_str(pj_get(p, "type"), "text");
}

/* The message's text for normalizing: a string, or its text parts joined with "\n". */
static herd_status message_text(const struct pj_value *m, struct herd_buf *b)
{
    const struct pj_value *c = pj_get(m, "content");
    if (c && c->type == PJ_STRING)
        return buf_append(b, c->str, c->len);
    if (c && c->type == PJ_ARRAY) {
        bool first = true;
        for (size_t i = 0; i < c->n; i++) {
            const struct pj_value *t = pj_get(&c->items[i], "text");
            if (!text_part(&c->items[i]) || !pj_is_string(t))
                continue;
            if (!first)
                buf_puts(b, "\n");
            buf_append(b, t->str, t->len);
            first = false;
        }
    }
    return b->err;
}

static herd_status add_message(struct pj_value *arr, const char *role, const char *text,
                               size_t len)
{
    struct pj_value *m, *f;
    herd_status s = pj_append(arr, NULL, 0, &m);
    if (s == HERD_OK) {
        m->type = PJ_OBJECT;
        s = pj_append(m, "role", 4, &f);
    }
    if (s == HERD_OK)
        s = pj_set_string(f, role, strlen(role));
    if (s == HERD_OK)
        s = pj_append(m, "content", 7, &f);
    if (s == HERD_OK)
        s = pj_set_string(f, text, len);
    return s;
}

/* The server's view of a chat request: user and assistant messages with text, one role at
 * a time (consecutive ones joined by a blank line), starting with the user. */
static herd_status normalize(struct gconv *g)
{
    struct herd_buf cur;
    buf_init(&cur, 0);
    const char *cur_role = NULL;
    herd_status s = HERD_OK;
    g->norm.type = PJ_ARRAY;
    for (size_t i = 0; i < g->n_msgs && s == HERD_OK; i++) {
        const struct pj_value *m = &g->msgs->items[i];
        const char *role = is_role(m, "user") ? "user" : is_role(m, "assistant") ? "assistant"
                                                                                   : NULL;
        if (!role || (!cur_role && !strcmp(role, "assistant")))
            continue;
        struct herd_buf t;
        buf_init(&t, 0);
        s = message_text(m, &t);
        size_t lo = 0, hi = 0;
        if (s == HERD_OK && t.len)
            chat_py_strip(t.data, t.len, &lo, &hi);
        if (s == HERD_OK && hi > lo) {
            if (cur_role && strcmp(cur_role, role) != 0) {
                s = add_message(&g->norm, cur_role, cur.data, cur.len);
                cur.len = 0;
            }
            if (cur.len)
                buf_puts(&cur, "\n\n");
            buf_append(&cur, t.data + lo, hi - lo);
            cur_role = role;
            if (s == HERD_OK)
                s = cur.err;
        }
        buf_free(&t);
    }
    if (s == HERD_OK && cur_role)
        s = add_message(&g->norm, cur_role, cur.data, cur.len);
    buf_free(&cur);
    if (s != HERD_OK)
        return s;
    g->msgs = &g->norm;
    g->n_msgs = g->norm.n;
    return HERD_OK;
}

/* A template argument: a member of the request, or of its "chat_template_kwargs" (how
 * OpenAI-style servers pass them). */
static const struct pj_value *template_arg(const struct pj_value *req, const char *name)
{
    if (req->type != PJ_OBJECT)
        return NULL;
    const struct pj_value *v = pj_get(req, name);
    const struct pj_value *kw = pj_get(req, "chat_template_kwargs");
    if (!v && kw && kw->type == PJ_OBJECT)
        v = pj_get(kw, name);
    return v;
}

static bool code_listed(const char *list, const char *code, size_t code_len)
{
    for (const char *p = list; *p;) {
        while (*p == ',' || *p == ' ')
            p++;
        const char *q = p;
        while (*q && *q != ',' && *q != ' ')
            q++;
        if ((size_t)(q - p) == code_len && !strncmp(p, code, code_len))
            return true;
        p = q;
    }
    return false;
}

/* The category lines: "categories" (an object of strings) or the defaults, less
 * "excluded_category_keys" (a list of strings) and, with o->categories, less the codes it
 * does not name. */
static herd_status pick_categories(struct gconv *g, const herd_guard_options *o)
{
    const struct pj_value *cats = template_arg(&g->req, "categories");
    const struct pj_value *excl = template_arg(&g->req, "excluded_category_keys");
    if (cats && cats->type != PJ_OBJECT)
        return herd_fail(HERD_ERR_INVALID, "guard: \"categories\" must be an object of "
                         "\"S1\": \"description\" pairs");
    if (excl && excl->type != PJ_ARRAY && excl->type != PJ_NULL)
        return herd_fail(HERD_ERR_INVALID, "guard: \"excluded_category_keys\" must be a list");
    size_t n = cats ? cats->n : n_defaults(g->format);
    g->cats = herd_calloc(n ? n : 1, sizeof *g->cats);
    if (!g->cats)
        return herd_fail(HERD_ERR_NOMEM, "guard: out of memory");
    for (size_t i = 0; i < n; i++) {
        struct gcat c;
        if (cats) {
            const struct pj_value *v = &cats->items[i];
            if (v->type != PJ_STRING)
                return herd_fail(HERD_ERR_INVALID, "guard: category \"%s\": the description "
                                 "must be a string", cats->keys[i].str);
            c = (struct gcat){cats->keys[i].str, v->str, cats->keys[i].len, v->len};
        } else {
            c = (struct gcat){default_codes[i], default_names[i], strlen(default_codes[i]),
                              strlen(default_names[i])};
        }
        bool out = false;
        for (size_t k = 0; excl && excl->type == PJ_ARRAY && k < excl->n; k++) {
            const struct pj_value *x = &excl->items[k];
            if (x->type == PJ_STRING && x->len == c.code_len && !memcmp(x->str, c.code, x->len))
                out = true;
        }
        if (o->categories && !code_listed(o->categories, c.code, c.code_len))
            out = true;
        if (!out)
            g->cats[g->n_cats++] = c;
    }
    return HERD_OK;
}

/* Parses the request and applies herd's conventions: normalizing, the role to check. */
static herd_status gconv_prepare(struct gconv *g, const char *request, size_t len,
                                 const herd_guard_options *o)
{
    memset(g, 0, sizeof *g);
    g->format = o->format;
    herd_status s = pj_parse(request ? request : "", request ? len : 0, &g->req);
    if (s != HERD_OK)
        return herd_fail_prefix(s, "guard: the request is not JSON: ");
    if (g->req.type == PJ_ARRAY)
        g->msgs = &g->req;
    else if (g->req.type == PJ_OBJECT)
        g->msgs = pj_get(&g->req, "messages");
    if (!g->msgs || g->msgs->type != PJ_ARRAY)
        return herd_fail(HERD_ERR_INVALID, "guard: expected {\"messages\": [...]} or a list of "
                         "messages");
    g->n_msgs = g->msgs->n;
    if (o->normalize && (s = normalize(g)) != HERD_OK)
        return s;
    if (o->role == HERD_GUARD_ROLE_USER) {
        size_t k = g->n_msgs;
        while (k > 0 && !is_role(&g->msgs->items[k - 1], "user"))
            k--;
        if (k == 0)
            return herd_fail(HERD_ERR_INVALID, "guard: --role user: the conversation has no "
                             "user message");
        g->n_msgs = k;
    } else if (o->role == HERD_GUARD_ROLE_AGENT) {
        if (g->n_msgs == 0 || !is_role(&g->msgs->items[g->n_msgs - 1], "assistant"))
            return herd_fail(HERD_ERR_INVALID, "guard: --role agent: the last message must be "
                             "the assistant's");
    }
    return pick_categories(g, o);
}

/* ---------------------------------------------------------------- rendering */

static herd_status emits(struct chat_emitter *e, const char *s)
{
    return buf_puts(&e->text, s);
}

/* {{ x | trim }} / x.strip(): str(x) without surrounding Unicode whitespace; "" when missing. */
static herd_status emit_stripped(struct chat_emitter *e, const struct pj_value *v)
{
    if (!v)
        return HERD_OK;
    struct herd_buf b;
    buf_init(&b, 0);
    herd_status s = v->type == PJ_STRING ? buf_append(&b, v->str, v->len) : pj_str(&b, v);
    if (s == HERD_OK && b.len) {
        size_t lo, hi;
        chat_py_strip(b.data, b.len, &lo, &hi);
        s = buf_append(&e->text, b.data + lo, hi - lo);
    }
    buf_free(&b);
    return s;
}

/* 8B: role + ': ' + content.strip() + '\n\n'. content is a string (or, herd's convention,
 * a list of text parts joined with "\n"); anything else has no strip() and the template
 * fails. */
static herd_status render_message_8b(struct chat_emitter *e, const struct pj_value *m,
                                     const char *role, size_t i)
{
    const struct pj_value *c = pj_get(m, "content");
    struct pj_value joined = {0};
    if (c && c->type == PJ_ARRAY) {
        struct herd_buf b;
        buf_init(&b, 0);
        for (size_t k = 0; k < c->n; k++) {
            const struct pj_value *t = pj_get(&c->items[k], "text");
            if (!text_part(&c->items[k]) || !pj_is_string(t)) {
                buf_free(&b);
                return herd_fail(HERD_ERR_INVALID, "guard: message %zu: content parts must be "
                                 "{\"type\": \"text\", \"text\": \"...\"}", i);
            }
            if (k)
                buf_puts(&b, "\n");
            buf_append(&b, t->str, t->len);
        }
        herd_status s = b.err;
        if (s == HERD_OK)
            s = pj_set_string(&joined, b.data ? b.data : "", b.len);
        buf_free(&b);
        if (s != HERD_OK)
            return s;
        c = &joined;
    } else if (!c || c->type != PJ_STRING) {
        return herd_fail(HERD_ERR_INVALID, "guard: message %zu: the content must be a string "
                         "(the template calls content.strip())", i);
    }
    emits(e, role);
    emits(e, ": ");
    herd_status s = emit_stripped(e, c);
    emits(e, "\n\n");
    pj_free(&joined);
    return s;
}

/* 1B: for each {"type": "text"} part: role + ': ' + part['text'] | trim + '\n\n'. A string
 * content is one such part (herd's convention; the template itself would print nothing). */
static herd_status render_message_1b(struct chat_emitter *e, const struct pj_value *m,
                                     const char *role, size_t i)
{
    const struct pj_value *c = pj_get(m, "content");
    /* selectattr yields nothing for a false value (undefined, None, 0, False, "") or a dict
     * (its keys have no 'type'); it iterates anything else, which fails for a number */
    if (c && c->type == PJ_STRING) {
        emits(e, role);
        emits(e, ": ");
        herd_status s = emit_stripped(e, c);
        emits(e, "\n\n");
        return s;
    }
    if (!c || !pj_truthy(c) || c->type == PJ_OBJECT)
        return HERD_OK;
    if (c->type != PJ_ARRAY)
        return herd_fail(HERD_ERR_INVALID, "guard: message %zu: the content must be a string "
                         "or a list of parts", i);
    for (size_t k = 0; k < c->n; k++) {
        if (!text_part(&c->items[k]))
            continue;
        emits(e, role);
        emits(e, ": ");
        herd_status s = emit_stripped(e, pj_get(&c->items[k], "text"));
        emits(e, "\n\n");
        if (s != HERD_OK)
            return s;
    }
    return HERD_OK;
}

static bool has_image(const struct pj_value *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct pj_value *c = pj_get(&msgs->items[i], "content");
        for (size_t k = 0; c && c->type == PJ_ARRAY && k < c->n; k++)
            if (c->items[k].type == PJ_OBJECT && pj_equals_str(pj_get(&c->items[k], "type"),
                                                               "image"))
                return true;
    }
    return false;
}

static herd_status render_guard(struct chat_emitter *e, const void *arg)
{
    const struct gconv *g = arg;
    bool b8 = g->format == HERD_GUARD_FORMAT_8B;
    const char *role = g->n_msgs % 2 == 0 ? "Agent" : "User";
    herd_status s = HERD_OK;
    if (!b8 && has_image(g->msgs, g->n_msgs))
        return herd_fail(HERD_ERR_UNSUPPORTED, "guard: image content is not supported (text "
                         "models only)");
    if (b8)
        emits(e, " ");
    if ((s = e->special(e, "<|begin_of_text|>")) != HERD_OK ||
        (s = e->special(e, "<|start_header_id|>")) != HERD_OK)
        return s;
    emits(e, "user");
    if ((s = e->special(e, "<|end_header_id|>")) != HERD_OK)
        return s;
    emits(e, "\n\nTask: Check if there is unsafe content in '");
    emits(e, role);
    emits(e, "' messages in conversations according our safety policy with the below "
             "categories.\n\n<BEGIN UNSAFE CONTENT CATEGORIES>\n");
    for (size_t i = 0; i < g->n_cats; i++) {
        buf_append(&e->text, g->cats[i].code, g->cats[i].code_len);
        emits(e, ": ");
        buf_append(&e->text, g->cats[i].desc, g->cats[i].desc_len);
        emits(e, "\n");
    }
    emits(e, "<END UNSAFE CONTENT CATEGORIES>\n\n<BEGIN CONVERSATION>\n\n");
    for (size_t i = 0; i < g->n_msgs && s == HERD_OK; i++) {
        const struct pj_value *m = &g->msgs->items[i];
        if (m->type != PJ_OBJECT)
            return herd_fail(HERD_ERR_INVALID, "guard: message %zu is not an object", i);
        bool user = is_role(m, "user");
        if (user != (i % 2 == 0))
            return herd_fail(HERD_ERR_INVALID, "guard: Conversation roles must alternate "
                             "user/assistant/user/assistant/... (message %zu)", i);
        const char *mrole = user ? "User" : is_role(m, "assistant") ? "Agent" : role;
        s = b8 ? render_message_8b(e, m, mrole, i) : render_message_1b(e, m, mrole, i);
    }
    if (s != HERD_OK)
        return s;
    emits(e, "<END CONVERSATION>\n\nProvide your safety assessment for ONLY THE LAST ");
    emits(e, role);
    emits(e, " message in the above conversation:\n - First line must read 'safe' or "
             "'unsafe'.\n - If unsafe, a second line must include a comma-separated list of "
             "violated categories.");
    if (!b8)
        emits(e, " ");
    if ((s = e->special(e, "<|eot_id|>")) != HERD_OK ||
        (s = e->special(e, "<|start_header_id|>")) != HERD_OK)
        return s;
    emits(e, "assistant");
    if ((s = e->special(e, "<|end_header_id|>")) != HERD_OK)
        return s;
    return e->text.err;
}

static const herd_guard_options *opts_or_default(const herd_guard_options *o,
                                                 herd_guard_options *def)
{
    *def = herd_guard_default_options();
    return o ? o : def;
}

herd_status herd_guard_render(const char *request, size_t len, const herd_guard_options *o,
                              char **prompt, size_t *prompt_len)
{
    if (!prompt)
        return herd_fail(HERD_ERR_INVALID, "herd_guard_render: no out pointer");
    *prompt = NULL;
    if (prompt_len)
        *prompt_len = 0;
    herd_guard_options def;
    o = opts_or_default(o, &def);
    struct gconv g;
    herd_status s = gconv_prepare(&g, request, len, o);
    struct chat_emitter e;
    chat_emitter_init_text(&e);
    if (s == HERD_OK)
        s = render_guard(&e, &g);
    if (s == HERD_OK)
        s = e.text.err;
    if (s == HERD_OK) {
        size_t n = e.text.len;
        *prompt = e.text.len ? buf_take(&e.text, NULL) : herd_strdup("");
        if (!*prompt)
            s = herd_fail(HERD_ERR_NOMEM, "guard: out of memory");
        else if (prompt_len)
            *prompt_len = n;
    }
    buf_free(&e.text);
    gconv_free(&g);
    return s;
}

herd_status herd_guard_render_tokens(const herd_tokenizer *tok, const char *request,
                                     size_t len, const herd_guard_options *o, int32_t **ids,
                                     size_t *n_ids)
{
    if (!ids || !n_ids)
        return herd_fail(HERD_ERR_INVALID, "herd_guard_render_tokens: no out pointer");
    *ids = NULL;
    *n_ids = 0;
    if (!tok)
        return herd_fail(HERD_ERR_INVALID, "guard: no tokenizer");
    herd_guard_options def;
    o = opts_or_default(o, &def);
    struct gconv g;
    herd_status s = gconv_prepare(&g, request, len, o);
    if (s == HERD_OK)
        s = chat_render_tokens_with(tok, render_guard, &g, 0, ids, n_ids);
    gconv_free(&g);
    return s;
}

/* ---------------------------------------------------------------- the answer */

/* A category's name: the description's first line, stripped, without one final '.'. */
static char *category_name(const char *desc, size_t len)
{
    const char *nl = memchr(desc, '\n', len);
    if (nl)
        len = (size_t)(nl - desc);
    size_t lo, hi;
    chat_py_strip(desc, len, &lo, &hi);
    if (hi > lo && desc[hi - 1] == '.')
        hi--;
    return herd_strndup(desc + lo, hi - lo);
}

/* The name for code: from the request's "categories", else the defaults (all 14). */
static char *lookup_name(const struct pj_value *cats, const char *code)
{
    if (cats && cats->type == PJ_OBJECT) {
        for (size_t i = cats->n; i-- > 0;)
            if (!strcmp(cats->keys[i].str, code) && cats->items[i].type == PJ_STRING)
                return category_name(cats->items[i].str, cats->items[i].len);
        return NULL;
    }
    for (size_t i = 0; i < 14; i++)
        if (!strcmp(default_codes[i], code))
            return category_name(default_names[i], strlen(default_names[i]));
    return NULL;
}

void herd_guard_result_free(herd_guard_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_categories; i++) {
        herd_free(r->categories[i].code);
        herd_free(r->categories[i].name);
    }
    herd_free(r->categories);
    herd_free(r->raw);
    herd_free(r);
}

/* Codes in the text after "unsafe": words S<digits> separated by commas, blanks or ';'
 * (other words are skipped), in order, without repeats. */
static herd_status collect_codes(herd_guard_result *r, const char *t, size_t n,
                                 const struct pj_value *cats)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (t[i] == ',' || t[i] == ';' || isspace((unsigned char)t[i])))
            i++;
        size_t w = i;
        while (i < n && !(t[i] == ',' || t[i] == ';' || isspace((unsigned char)t[i])))
            i++;
        size_t wl = i - w;
        while (wl > 0 && t[w + wl - 1] == '.') /* "S1." */
            wl--;
        bool code = wl >= 2 && wl <= 4 && (t[w] == 'S' || t[w] == 's');
        for (size_t k = 1; code && k < wl; k++)
            code = isdigit((unsigned char)t[w + k]) != 0;
        if (!code || t[w + 1] == '0')
            continue;
        char c[8];
        snprintf(c, sizeof c, "S%.*s", (int)(wl - 1), t + w + 1);
        bool seen = false;
        for (size_t k = 0; k < r->n_categories; k++)
            seen = seen || !strcmp(r->categories[k].code, c);
        if (seen)
            continue;
        herd_guard_category *p = herd_realloc(r->categories,
                                              (r->n_categories + 1) * sizeof *p);
        if (!p)
            return herd_fail(HERD_ERR_NOMEM, "guard: out of memory");
        r->categories = p;
        p[r->n_categories].code = herd_strdup(c);
        p[r->n_categories].name = lookup_name(cats, c);
        if (!p[r->n_categories++].code)
            return herd_fail(HERD_ERR_NOMEM, "guard: out of memory");
    }
    return HERD_OK;
}

/* "safe"/"unsafe" as the first word (any case), ended by the text's end or a non-letter. */
static bool starts_word(const char *t, size_t n, const char *w)
{
    size_t k = strlen(w);
    if (n < k)
        return false;
    for (size_t i = 0; i < k; i++)
        if (tolower((unsigned char)t[i]) != w[i])
            return false;
    return n == k || !isalpha((unsigned char)t[k]);
}

herd_status herd_guard_parse(const char *text, size_t len, const char *request,
                             size_t request_len, const herd_guard_options *o,
                             herd_guard_result **out)
{
    (void)o;
    if (!out)
        return herd_fail(HERD_ERR_INVALID, "herd_guard_parse: no out pointer");
    *out = NULL;
    struct pj_value req = {0};
    if (request) {
        herd_status s = pj_parse(request, request_len, &req);
        if (s != HERD_OK)
            return herd_fail_prefix(s, "guard: the request is not JSON: ");
    }
    const struct pj_value *cats = template_arg(&req, "categories");
    herd_guard_result *r = herd_calloc(1, sizeof *r);
    herd_status s = HERD_OK;
    if (!r || !(r->raw = herd_strndup(text ? text : "", text ? len : 0))) {
        s = herd_fail(HERD_ERR_NOMEM, "guard: out of memory");
        goto done;
    }
    /* the answer ends at the first control token */
    size_t n = len;
    static const char *const ends[] = {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"};
    for (size_t k = 0; k < 3; k++) {
        const char *p = strstr(r->raw, ends[k]);
        if (p && (size_t)(p - r->raw) < n)
            n = (size_t)(p - r->raw);
    }
    size_t lo, hi;
    chat_py_strip(r->raw, n, &lo, &hi);
    const char *t = r->raw + lo;
    n = hi - lo;
    if (starts_word(t, n, "safe")) {
        r->verdict = HERD_GUARD_SAFE;
    } else if (starts_word(t, n, "unsafe")) {
        r->verdict = HERD_GUARD_UNSAFE;
        s = collect_codes(r, t + 6, n - 6, cats);
    } else {
        r->verdict = HERD_GUARD_UNPARSEABLE;
    }
done:
    pj_free(&req);
    if (s != HERD_OK) {
        herd_guard_result_free(r);
        return s;
    }
    *out = r;
    return HERD_OK;
}
