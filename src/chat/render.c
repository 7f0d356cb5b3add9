/*
 * render.c - the official Llama 3.1 and 3.2 Instruct chat templates, walked by hand, and
 * ChatML (render_chatml) for the GPT-2 style models that use it (SmolLM2).
 *
 * Source: the chat_template of Meta's tokenizer_config.json for Llama-3.1-*-Instruct and
 * Llama-3.2-*-Instruct (copies in ../shared/data/templates), as Hugging Face transformers'
 * apply_chat_template runs it: jinja2 sandbox, trim_blocks/lstrip_blocks, bos_token =
 * "<|begin_of_text|>", tojson = json.dumps(ensure_ascii=False), strftime_now = local time.
 * Each block below names the template lines it follows. Python semantics that shape the
 * bytes: "x | trim" is str(x).strip() (Unicode whitespace; a missing field is ""), string
 * tool results are "iterable" and so go through tojson (quoted), other scalars through
 * str() (None, True, 1.5), and "+" on a non-string is an error, which herd reports instead
 * of rendering something the template would not.
 *
 * Invariant: every byte of the prompt passes through emit_text or e->special, so the text
 * and token renderings cannot drift apart.
 */
#include "chat.h"
#include "model/arch.h" /* herd_chat_template_for: the default template per architecture row */

#include <time.h> /* time, localtime_r, strftime for strftime_now("%d %b %Y") */

/* ---------------------------------------------------------------- emitting */

static herd_status special_as_text(struct chat_emitter *e, const char *name)
{
    return buf_puts(&e->text, name);
}

void chat_emitter_init_text(struct chat_emitter *e)
{
    buf_init(&e->text, 0);
    e->special = special_as_text;
    e->ctx = NULL;
}

static herd_status emit(struct chat_emitter *e, const char *s, size_t n)
{
    return buf_append(&e->text, s, n);
}

static herd_status emits(struct chat_emitter *e, const char *s)
{
    return buf_puts(&e->text, s);
}

/* Python's str.isspace() for one code point. */
static bool py_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 ||
           cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* Length in bytes of the whitespace code point starting at s, or 0. */
static size_t space_at(const unsigned char *s, size_t n)
{
    uint32_t cp;
    size_t k;
    if (s[0] < 0x80) {
        cp = s[0];
        k = 1;
    } else if ((s[0] >> 5) == 6 && n >= 2) {
        cp = ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        k = 2;
    } else if ((s[0] >> 4) == 14 && n >= 3) {
        cp = ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        k = 3;
    } else {
        return 0;
    }
    return py_space(cp) ? k : 0;
}

/* str.strip(): the [*lo, *hi) range of s without leading/trailing Unicode whitespace. */
void chat_py_strip(const char *str, size_t len, size_t *lo, size_t *hi)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t a = 0, b = len;
    for (size_t k; a < b && (k = space_at(s + a, b - a)) > 0;)
        a += k;
    while (a < b) {
        /* Step back to the start of the last code point (at most 3 continuation bytes). */
        size_t start = b - 1;
        while (start > a && b - start < 4 && (s[start] & 0xC0) == 0x80)
            start--;
        size_t k = space_at(s + start, b - start);
        if (k == 0 || start + k != b)
            break;
        b = start;
    }
    *lo = a;
    *hi = b;
}

/* {{ x | trim }}: str(x).strip(), "" for a missing value. */
static herd_status emit_trimmed(struct chat_emitter *e, const struct pj_value *v)
{
    if (!v)
        return HERD_OK;
    if (v->type == PJ_STRING) {
        size_t lo, hi;
        chat_py_strip(v->str, v->len, &lo, &hi);
        return emit(e, v->str + lo, hi - lo);
    }
    struct herd_buf b;
    buf_init(&b, 0);
    herd_status s = pj_str(&b, v);
    if (s == HERD_OK) {
        size_t lo, hi;
        chat_py_strip(b.data, b.len, &lo, &hi);
        s = emit(e, b.data + lo, hi - lo);
    }
    buf_free(&b);
    return s;
}

/* {{ x | tojson(indent=n) }}; indent < 0 is no indent. */
static herd_status emit_json(struct chat_emitter *e, const struct pj_value *v, int indent)
{
    struct herd_buf b;
    buf_init(&b, 0);
    herd_status s = pj_dump(&b, v, indent);
    if (s == HERD_OK)
        s = emit(e, b.data, b.len);
    buf_free(&b);
    return s;
}

static herd_status emit_header(struct chat_emitter *e, const char *role, size_t n)
{
    e->special(e, "<|start_header_id|>");
    emit(e, role, n);
    e->special(e, "<|end_header_id|>");
    return emits(e, "\n\n");
}

static herd_status refuse(const char *why)
{
    return herd_fail(HERD_ERR_INVALID, "chat template: %s", why);
}

/* ---------------------------------------------------------------- the template */

struct vars {
    herd_chat_template tmpl;
    const struct pj_value *tools; /* NULL = none */
    const struct pj_value *builtin_tools; /* NULL = undefined (3.1 only) */
    bool tools_in_user_message;
    char date[64];
    const struct pj_value *date_value; /* date_string from the request, if any */
};

/* The template's first lines: custom_tools, tools_in_user_message, date_string, tools. */
static herd_status read_vars(const struct pj_value *req, const herd_chat_options *opt,
                             struct vars *v)
{
    const struct pj_value *kw = pj_get(req, "chat_template_kwargs");
    if (kw && kw->type != PJ_OBJECT && kw->type != PJ_NULL)
        return refuse("chat_template_kwargs must be an object");
    memset(v, 0, sizeof *v);
    v->tmpl = opt->tmpl;
    const struct pj_value *tools = pj_get(req, "tools");
    const struct pj_value *custom = pj_get(kw, "custom_tools");
    if (custom)
        tools = custom;
    v->tools = tools && tools->type != PJ_NULL ? tools : NULL;
    if (v->tools && v->tools->type != PJ_ARRAY)
        return refuse("tools must be a list");
    const struct pj_value *tium = pj_get(kw, "tools_in_user_message");
    v->tools_in_user_message = tium ? pj_truthy(tium) : true;
    if (v->tmpl == HERD_CHAT_LLAMA31) {
        v->builtin_tools = pj_get(kw, "builtin_tools");
        if (v->builtin_tools && v->builtin_tools->type != PJ_ARRAY)
            return refuse("builtin_tools must be a list of tool names");
    }
    v->date_value = pj_get(kw, "date_string");
    if (v->date_value && v->date_value->type != PJ_STRING)
        return refuse("date_string must be a string");
    if (!v->date_value) {
        bool today = v->tmpl == HERD_CHAT_LLAMA32 || opt->today;
        if (opt->date_string) {
            size_t n = strlen(opt->date_string);
            if (n >= sizeof v->date)
                return refuse("date_string is too long");
            memcpy(v->date, opt->date_string, n + 1);
        } else if (today) {
            time_t now = time(NULL);
            struct tm tm;
            if (!localtime_r(&now, &tm) || strftime(v->date, sizeof v->date, "%d %b %Y", &tm) == 0)
                return herd_fail(HERD_ERR_INTERNAL, "cannot format today's date");
        } else {
            memcpy(v->date, "26 Jul 2024", sizeof "26 Jul 2024");
        }
    }
    return HERD_OK;
}

static const char *const tool_instructions =
    "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument "
    "name and its value}.Do not use variables.\n\n";

static herd_status emit_tool_list(struct chat_emitter *e, const struct pj_value *tools)
{
    for (size_t i = 0; i < tools->n; i++) {
        emit_json(e, &tools->items[i], 4);
        emits(e, "\n\n");
    }
    return e->text.err;
}

/* "System message + builtin tools": the system header block. */
static herd_status render_system(struct chat_emitter *e, const struct vars *v,
                                 const struct pj_value *system_content)
{
    emit_header(e, "system", 6);
    if (v->builtin_tools || v->tools)
        emits(e, "Environment: ipython\n");
    if (v->builtin_tools) {
        emits(e, "Tools: ");
        bool first = true;
        for (size_t i = 0; i < v->builtin_tools->n; i++) {
            const struct pj_value *t = &v->builtin_tools->items[i];
            if (pj_equals_str(t, "code_interpreter"))
                continue;
            if (!first)
                emits(e, ", ");
            first = false;
            struct herd_buf b;
            buf_init(&b, 0);
            pj_str(&b, t);
            emit(e, b.data ? b.data : "", b.len);
            buf_free(&b);
        }
        emits(e, "\n\n");
    }
    emits(e, "Cutting Knowledge Date: December 2023\n");
    emits(e, "Today Date: ");
    if (v->date_value)
        emit(e, v->date_value->str, v->date_value->len);
    else
        emits(e, v->date);
    emits(e, "\n\n");
    if (v->tools && !v->tools_in_user_message) {
        emits(e, "You have access to the following functions. To call a function, please "
                 "respond with JSON for a function call.");
        emits(e, tool_instructions);
        emit_tool_list(e, v->tools);
    }
    emit_trimmed(e, system_content);
    e->special(e, "<|eot_id|>");
    return e->text.err;
}

/* "Custom tools are passed in a user message with some extra guidance". */
static herd_status render_tools_user(struct chat_emitter *e, const struct vars *v,
                                     const struct pj_value *first_user)
{
    emit_header(e, "user", 4);
    emits(e, "Given the following functions, please respond with a JSON for a function call ");
    emits(e, "with its proper arguments that best answers the given prompt.\n\n");
    emits(e, tool_instructions);
    emit_tool_list(e, v->tools);
    emit_trimmed(e, pj_get(first_user, "content"));
    e->special(e, "<|eot_id|>");
    return e->text.err;
}

static bool in_list(const struct pj_value *list, const struct pj_value *x)
{
    if (!list || !pj_is_string(x))
        return false;
    for (size_t i = 0; i < list->n; i++) {
        const struct pj_value *t = &list->items[i];
        if (pj_is_string(t) && t->len == x->len && memcmp(t->str, x->str, x->len) == 0)
            return true;
    }
    return false;
}

/* An assistant message with tool_calls: exactly one call, as JSON or (3.1, a built-in
 * tool) as <|python_tag|>name.call(k="v", ...). */
static herd_status render_tool_call(struct chat_emitter *e, const struct vars *v,
                                    const struct pj_value *msg)
{
    const struct pj_value *calls = pj_get(msg, "tool_calls");
    if (!calls || (calls->type != PJ_ARRAY && calls->type != PJ_OBJECT &&
                   calls->type != PJ_STRING))
        return refuse("tool_calls must be a list");
    if (calls->type != PJ_ARRAY || calls->n != 1)
        return refuse("This model only supports single tool-calls at once!");
    const struct pj_value *fn = pj_get(&calls->items[0], "function");
    const struct pj_value *name = pj_get(fn, "name");
    const struct pj_value *args = pj_get(fn, "arguments");
    if (!pj_is_string(name))
        return refuse("a tool call needs a string function name");
    if (v->builtin_tools && in_list(v->builtin_tools, name)) {
        emit_header(e, "assistant", 9);
        e->special(e, "<|python_tag|>");
        emit(e, name->str, name->len);
        emits(e, ".call(");
        if (args && args->type != PJ_OBJECT)
            return refuse("Can only get item pairs from a mapping.");
        for (size_t i = 0; args && i < args->n; i++) {
            if (args->items[i].type != PJ_STRING)
                return refuse("built-in tool call arguments must be strings");
            emit(e, args->keys[i].str, args->keys[i].len);
            emits(e, "=\"");
            emit(e, args->items[i].str, args->items[i].len);
            emits(e, "\"");
            if (i + 1 < args->n)
                emits(e, ", ");
        }
        emits(e, ")");
    } else {
        if (!args)
            return refuse("a tool call needs arguments");
        emit_header(e, "assistant", 9);
        emits(e, "{\"name\": \"");
        emit(e, name->str, name->len);
        emits(e, "\", ");
        emits(e, "\"parameters\": ");
        emit_json(e, args, -1);
        emits(e, "}");
    }
    return e->special(e, v->builtin_tools ? "<|eom_id|>" : "<|eot_id|>");
}

/* A tool/ipython message: strings, lists and objects through tojson, other values str(). */
static herd_status render_tool_result(struct chat_emitter *e, const struct pj_value *msg)
{
    const struct pj_value *content = pj_get(msg, "content");
    if (!content)
        return refuse("Object of type Undefined is not JSON serializable (tool message "
                      "without content)");
    emit_header(e, "ipython", 7);
    if (content->type == PJ_STRING || content->type == PJ_ARRAY ||
        content->type == PJ_OBJECT) {
        emit_json(e, content, -1);
    } else {
        struct herd_buf b;
        buf_init(&b, 0);
        pj_str(&b, content);
        emit(e, b.data ? b.data : "", b.len);
        buf_free(&b);
    }
    return e->special(e, "<|eot_id|>");
}

/* ChatML as SmolLM2's chat_template writes it (tokenizer.chat_template of its GGUF):
 *   {% for message in messages %}
 *     {% if loop.first and messages[0]['role'] != 'system' %}
 *       '<|im_start|>system\n' DEFAULT '<|im_end|>\n'                   (opt->default_system)
 *     {% endif %}
 *     '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'
 *   {% endfor %}
 *   {% if add_generation_prompt %}'<|im_start|>assistant\n'{% endif %}
 * No BOS, content untrimmed; "+" on a content that is not a string is the template's error.
 * Qwen-style templates that write a default system message the same way render alike. */
static herd_status render_chatml(struct chat_emitter *e, const struct pj_value *req,
                                 const herd_chat_options *opt)
{
    const struct pj_value *msgs = pj_get(req, "messages");
    if (!msgs || msgs->type != PJ_ARRAY)
        return refuse("the request needs a \"messages\" list");
    for (size_t i = 0; i < msgs->n; i++) {
        const struct pj_value *m = &msgs->items[i];
        if (m->type != PJ_OBJECT)
            return refuse("every message must be an object");
        const struct pj_value *role = pj_get(m, "role");
        const struct pj_value *content = pj_get(m, "content");
        if (!pj_is_string(role))
            return refuse("every message needs a string \"role\"");
        if (!pj_is_string(content))
            return refuse("ChatML: a message's content must be a string (tool calls and "
                          "tool results are not in this model's template)");
        if (i == 0 && !pj_equals_str(role, "system") && opt->default_system) {
            e->special(e, "<|im_start|>");
            emits(e, "system\n");
            emits(e, opt->default_system);
            e->special(e, "<|im_end|>");
            emits(e, "\n");
        }
        e->special(e, "<|im_start|>");
        emit(e, role->str, role->len);
        emits(e, "\n");
        emit(e, content->str, content->len);
        e->special(e, "<|im_end|>");
        emits(e, "\n");
        if (e->text.err != HERD_OK)
            return e->text.err;
    }
    const struct pj_value *agp = pj_get(req, "add_generation_prompt");
    if (agp ? pj_truthy(agp) : true) {
        e->special(e, "<|im_start|>");
        emits(e, "assistant\n");
    }
    return e->text.err;
}

herd_status chat_render(struct chat_emitter *e, const struct pj_value *req,
                        const herd_chat_options *opt)
{
    if (opt->tmpl == HERD_CHAT_CHATML)
        return render_chatml(e, req, opt);
    struct vars v;
    herd_status s = read_vars(req, opt, &v);
    if (s != HERD_OK)
        return s;
    const struct pj_value *msgs = pj_get(req, "messages");
    if (!msgs || msgs->type != PJ_ARRAY)
        return refuse("the request needs a \"messages\" list");
    if (msgs->n == 0 || msgs->items[0].type != PJ_OBJECT)
        return refuse("'messages' needs at least one message object");
    for (size_t i = 0; i < msgs->n; i++)
        if (msgs->items[i].type != PJ_OBJECT)
            return refuse("every message must be an object");

    e->special(e, "<|begin_of_text|>");
    size_t next = 0;
    const struct pj_value *system_content = NULL;
    if (pj_equals_str(pj_get(&msgs->items[0], "role"), "system")) {
        system_content = pj_get(&msgs->items[0], "content");
        next = 1;
    }
    s = render_system(e, &v, system_content);
    if (s != HERD_OK)
        return s;
    if (v.tools_in_user_message && v.tools) {
        if (next >= msgs->n)
            return refuse("Cannot put tools in the first user message when there's no "
                          "first user message!");
        s = render_tools_user(e, &v, &msgs->items[next++]);
        if (s != HERD_OK)
            return s;
    }
    for (; next < msgs->n; next++) {
        const struct pj_value *m = &msgs->items[next];
        const struct pj_value *role = pj_get(m, "role");
        bool tool_role = pj_equals_str(role, "ipython") || pj_equals_str(role, "tool");
        if (pj_get(m, "tool_calls")) {
            s = render_tool_call(e, &v, m);
        } else if (tool_role) {
            s = render_tool_result(e, m);
        } else {
            if (!pj_is_string(role))
                return refuse("every message needs a string \"role\"");
            emit_header(e, role->str, role->len);
            emit_trimmed(e, pj_get(m, "content"));
            s = e->special(e, "<|eot_id|>");
        }
        if (s != HERD_OK)
            return s;
        if (e->text.err != HERD_OK)
            return e->text.err;
    }
    const struct pj_value *agp = pj_get(req, "add_generation_prompt");
    if (agp ? pj_truthy(agp) : true)
        emit_header(e, "assistant", 9);
    return e->text.err;
}

/* ---------------------------------------------------------------- request preparation */

/* [{"type": "text", "text": "a"}, ...] -> "a\nb"; other lists are left to the template. */
static herd_status join_text_parts(struct pj_value *content)
{
    if (content->type != PJ_ARRAY || content->n == 0)
        return HERD_OK;
    for (size_t i = 0; i < content->n; i++) {
        const struct pj_value *p = &content->items[i];
        if (!pj_equals_str(pj_get(p, "type"), "text") || !pj_is_string(pj_get(p, "text")))
            return HERD_OK;
    }
    struct herd_buf b;
    buf_init(&b, 0);
    for (size_t i = 0; i < content->n; i++) {
        const struct pj_value *t = pj_get(&content->items[i], "text");
        if (i > 0)
            buf_puts(&b, "\n");
        buf_append(&b, t->str, t->len);
    }
    herd_status s = b.err;
    if (s == HERD_OK)
        s = pj_set_string(content, b.data, b.len);
    buf_free(&b);
    return s;
}

/* "arguments": "{\"a\": 1}" -> {"a": 1}, when the string is JSON. */
static herd_status parse_arguments(struct pj_value *msg)
{
    struct pj_value *calls = (struct pj_value *)pj_get(msg, "tool_calls");
    if (!calls || calls->type != PJ_ARRAY)
        return HERD_OK;
    for (size_t i = 0; i < calls->n; i++) {
        struct pj_value *fn = (struct pj_value *)pj_get(&calls->items[i], "function");
        struct pj_value *args = (struct pj_value *)pj_get(fn, "arguments");
        if (!pj_is_string(args))
            continue;
        struct pj_value parsed;
        if (pj_parse(args->str, args->len, &parsed) != HERD_OK) {
            herd_clear_error();
            continue;
        }
        pj_free(args);
        *args = parsed;
    }
    return HERD_OK;
}

herd_status chat_request_parse(const char *json, size_t len, struct pj_value *req)
{
    herd_status s = pj_parse(json, len, req);
    if (s != HERD_OK)
        return herd_fail_prefix(s, "chat request");
    if (req->type != PJ_OBJECT) {
        pj_free(req);
        return herd_fail(HERD_ERR_INVALID, "chat request: expected a JSON object");
    }
    /* tool_choice "none": the model is not told about the tools at all. null is what the
     * templates take for no tools (custom_tools in chat_template_kwargs still count). */
    struct pj_value *tools = (struct pj_value *)pj_get(req, "tools");
    if (tools && pj_equals_str(pj_get(req, "tool_choice"), "none"))
        pj_free(tools); /* a zeroed value is PJ_NULL */
    struct pj_value *msgs = (struct pj_value *)pj_get(req, "messages");
    for (size_t i = 0; msgs && msgs->type == PJ_ARRAY && i < msgs->n; i++) {
        struct pj_value *m = &msgs->items[i];
        struct pj_value *content = (struct pj_value *)pj_get(m, "content");
        if (content)
            s = join_text_parts(content);
        if (s == HERD_OK)
            s = parse_arguments(m);
        if (s != HERD_OK) {
            pj_free(req);
            return s;
        }
    }
    return HERD_OK;
}

herd_status chat_request_from_messages(const herd_chat_message *msgs, size_t n_msgs,
                                       const herd_chat_options *opt, struct pj_value *req)
{
    memset(req, 0, sizeof *req);
    req->type = PJ_OBJECT;
    struct pj_value *list, *slot;
    herd_status s = pj_append(req, "messages", 8, &list);
    if (s != HERD_OK)
        goto fail;
    list->type = PJ_ARRAY;
    for (size_t i = 0; i < n_msgs; i++) {
        struct pj_value *m;
        s = pj_append(list, NULL, 0, &m);
        if (s != HERD_OK)
            goto fail;
        m->type = PJ_OBJECT;
        const char *role = msgs[i].role ? msgs[i].role : "user";
        s = pj_append(m, "role", 4, &slot);
        if (s == HERD_OK)
            s = pj_set_string(slot, role, strlen(role));
        if (s == HERD_OK && msgs[i].content) {
            s = pj_append(m, "content", 7, &slot);
            if (s == HERD_OK)
                s = pj_set_string(slot, msgs[i].content, strlen(msgs[i].content));
        }
        if (s != HERD_OK)
            goto fail;
    }
    s = pj_append(req, "add_generation_prompt", 21, &slot);
    if (s != HERD_OK)
        goto fail;
    slot->type = opt->add_generation_prompt ? PJ_TRUE : PJ_FALSE;
    return HERD_OK;
fail:
    pj_free(req);
    return s;
}

/* ---------------------------------------------------------------- public entry points */

herd_chat_options herd_chat_default_options(void)
{
    herd_chat_options o;
    memset(&o, 0, sizeof o);
    o.tmpl = HERD_CHAT_LLAMA31;
    o.add_generation_prompt = true;
    return o;
}

herd_chat_template herd_chat_template_for(const herd_model_info *info)
{
    if (!info)
        return HERD_CHAT_LLAMA31;
    /* a file that says its format wins; Llama 3's templates never use <|im_start|> */
    if (info->chat_template && strstr(info->chat_template, "<|im_start|>"))
        return HERD_CHAT_CHATML;
    /* the architecture table's row for this model (by its name or shape) says */
    const struct arch *row = arch_select(ARCH_GGUF, info->arch ? info->arch : "llama", NULL,
                                         info->name, info->dim, info->n_layers);
    return row ? row->chat_template : HERD_CHAT_LLAMA31;
}

herd_chat_options herd_chat_options_for(const herd_model_info *info)
{
    herd_chat_options o = herd_chat_default_options();
    o.tmpl = herd_chat_template_for(info);
    if (o.tmpl == HERD_CHAT_CHATML)
        o.default_system = info->chat_system;
    return o;
}

static herd_status finish_text(struct chat_emitter *e, herd_status s, char **prompt,
                               size_t *len)
{
    if (s == HERD_OK && e->text.err != HERD_OK)
        s = e->text.err;
    if (s != HERD_OK) {
        buf_free(&e->text);
        return s;
    }
    if (!e->text.data)
        buf_append(&e->text, "", 0);
    *prompt = buf_take(&e->text, len);
    return *prompt ? HERD_OK : herd_fail(HERD_ERR_NOMEM, "chat: out of memory");
}

herd_status herd_chat_render(const char *request_json, size_t request_len,
                             const herd_chat_options *opt, char **prompt, size_t *len)
{
    *prompt = NULL;
    *len = 0;
    herd_chat_options def = herd_chat_default_options();
    struct pj_value req;
    herd_status s = chat_request_parse(request_json, request_len, &req);
    if (s != HERD_OK)
        return s;
    struct chat_emitter e;
    chat_emitter_init_text(&e);
    s = chat_render(&e, &req, opt ? opt : &def);
    pj_free(&req);
    return finish_text(&e, s, prompt, len);
}

herd_status herd_chat_render_messages(const herd_chat_message *msgs, size_t n_msgs,
                                      const herd_chat_options *opt, char **prompt,
                                      size_t *len)
{
    *prompt = NULL;
    *len = 0;
    herd_chat_options def = herd_chat_default_options();
    if (!opt)
        opt = &def;
    struct pj_value req;
    herd_status s = chat_request_from_messages(msgs, n_msgs, opt, &req);
    if (s != HERD_OK)
        return s;
    struct chat_emitter e;
    chat_emitter_init_text(&e);
    s = chat_render(&e, &req, opt);
    pj_free(&req);
    return finish_text(&e, s, prompt, len);
}
