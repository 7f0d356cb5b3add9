/*
 * parse.c - tool calls out of generated text (herd_chat_parse_output).
 *
 * What Llama 3.1/3.2 Instruct emit (Meta's prompt-format docs for 3.1 and 3.2):
 *   {"name": "f", "parameters": {...}}              custom tool, JSON (3.1 and 3.2);
 *                                                    several may follow, split by ';'
 *   <|python_tag|>brave_search.call(query="...")    built-in tool, ends with <|eom_id|>
 *   <|python_tag|>import math\nprint(...)            code_interpreter: the code itself
 *   [f(a=1, b="x"), g(c=[1, 2])]                    Llama 3.2 pythonic calls, several at once
 * The whole output (trimmed) must be calls; anything else, including a call that does not
 * parse, stays content and no call is reported. Python literal values (strings with
 * escapes, numbers, True/False/None, lists, tuples, dicts) become JSON values; arguments
 * holding NaN or an infinity (which JSON cannot carry) make the call malformed.
 */
#include "chat.h"

#include <math.h> /* isfinite */

struct cursor {
    const char *s;
    size_t len, pos;
};

static void skip_space(struct cursor *c)
{
    while (c->pos < c->len && (c->s[c->pos] == ' ' || c->s[c->pos] == '\t' ||
                               c->s[c->pos] == '\n' || c->s[c->pos] == '\r'))
        c->pos++;
}

static bool eat(struct cursor *c, char ch)
{
    skip_space(c);
    if (c->pos < c->len && c->s[c->pos] == ch) {
        c->pos++;
        return true;
    }
    return false;
}

static bool ident_char(char ch, bool first)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
           (!first && ch >= '0' && ch <= '9');
}

/* An identifier (dots allowed inside when dotted): [start, end) of c->s. */
static bool read_ident(struct cursor *c, bool dotted, size_t *start, size_t *end)
{
    skip_space(c);
    size_t i = c->pos;
    if (i >= c->len || !ident_char(c->s[i], true))
        return false;
    while (i < c->len && (ident_char(c->s[i], false) ||
                          (dotted && c->s[i] == '.' && i + 1 < c->len &&
                           ident_char(c->s[i + 1], true))))
        i++;
    *start = c->pos;
    *end = i;
    c->pos = i;
    return true;
}

/* ---------------------------------------------------------------- Python literals */

static herd_status py_value(struct cursor *c, struct pj_value *out, int depth);

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static void put_cp(struct herd_buf *b, uint32_t cp)
{
    char u[4];
    size_t n = 0;
    if (cp < 0x80) {
        u[n++] = (char)cp;
    } else if (cp < 0x800) {
        u[n++] = (char)(0xC0 | (cp >> 6));
        u[n++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        u[n++] = (char)(0xE0 | (cp >> 12));
        u[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[n++] = (char)(0x80 | (cp & 0x3F));
    } else {
        u[n++] = (char)(0xF0 | (cp >> 18));
        u[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[n++] = (char)(0x80 | (cp & 0x3F));
    }
    buf_append(b, u, n);
}

static herd_status py_string(struct cursor *c, struct pj_value *out)
{
    char q = c->s[c->pos];
    size_t i = c->pos + 1;
    struct herd_buf b;
    buf_init(&b, 0);
    buf_append(&b, "", 0);
    for (;;) {
        if (i >= c->len || c->s[i] == '\n')
            goto bad;
        char ch = c->s[i];
        if (ch == q)
            break;
        if (ch != '\\') {
            buf_append(&b, &ch, 1);
            i++;
            continue;
        }
        if (i + 1 >= c->len)
            goto bad;
        char e = c->s[i + 1];
        const char *simple = e == 'n' ? "\n" : e == 't' ? "\t" : e == 'r' ? "\r" :
                             e == '\\' ? "\\" : e == '\'' ? "'" : e == '"' ? "\"" :
                             e == '0' ? "" : NULL;
        if (simple) {
            buf_append(&b, simple, e == '0' ? 1 : strlen(simple));
            i += 2;
            continue;
        }
        int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (digits == 0) { /* Python keeps an unknown escape as written */
            buf_append(&b, c->s + i, 2);
            i += 2;
            continue;
        }
        if (i + 2 + (size_t)digits > c->len)
            goto bad;
        uint32_t cp = 0;
        for (int k = 0; k < digits; k++) {
            int h = hexval(c->s[i + 2 + k]);
            if (h < 0)
                goto bad;
            cp = cp * 16 + (uint32_t)h;
        }
        if (cp > 0x10FFFF)
            goto bad;
        put_cp(&b, cp);
        i += 2 + (size_t)digits;
    }
    herd_status s = b.err;
    if (s == HERD_OK)
        s = pj_set_string(out, b.data, b.len);
    buf_free(&b);
    c->pos = i + 1;
    return s;
bad:
    buf_free(&b);
    return herd_fail(HERD_ERR_FORMAT, "tool call: bad string literal");
}

static herd_status py_number(struct cursor *c, struct pj_value *out)
{
    /* Python's int and float literals that are also JSON numbers, which is what models
     * write; anything else (hex, 1_000, .5) is refused as malformed. */
    size_t pos = c->pos;
    herd_status s = pj_parse_prefix(c->s, c->len, &pos, out);
    if (s != HERD_OK || (out->type != PJ_INT && out->type != PJ_FLOAT)) {
        pj_free(out);
        return herd_fail(HERD_ERR_FORMAT, "tool call: bad number");
    }
    c->pos = pos;
    return HERD_OK;
}

static herd_status py_items(struct cursor *c, struct pj_value *out, char close, bool dict,
                            int depth)
{
    out->type = dict ? PJ_OBJECT : PJ_ARRAY;
    c->pos++;
    for (;;) {
        if (eat(c, close))
            return HERD_OK;
        struct pj_value key = {0}, *slot;
        herd_status s;
        if (dict) {
            skip_space(c);
            if (c->pos >= c->len || (c->s[c->pos] != '"' && c->s[c->pos] != '\''))
                return herd_fail(HERD_ERR_FORMAT, "tool call: dict keys must be strings");
            s = py_string(c, &key);
            if (s != HERD_OK)
                return s;
            if (!eat(c, ':')) {
                pj_free(&key);
                return herd_fail(HERD_ERR_FORMAT, "tool call: expected ':'");
            }
            s = pj_append(out, key.str, key.len, &slot);
            pj_free(&key);
        } else {
            s = pj_append(out, NULL, 0, &slot);
        }
        if (s == HERD_OK)
            s = py_value(c, slot, depth + 1);
        if (s != HERD_OK)
            return s;
        if (eat(c, ','))
            continue;
        if (eat(c, close))
            return HERD_OK;
        return herd_fail(HERD_ERR_FORMAT, "tool call: expected ',' or '%c'", close);
    }
}

static herd_status py_value(struct cursor *c, struct pj_value *out, int depth)
{
    memset(out, 0, sizeof *out);
    skip_space(c);
    if (depth > 64 || c->pos >= c->len)
        return herd_fail(HERD_ERR_FORMAT, "tool call: value expected");
    char ch = c->s[c->pos];
    if (ch == '"' || ch == '\'')
        return py_string(c, out);
    if (ch == '[')
        return py_items(c, out, ']', false, depth);
    if (ch == '(')
        return py_items(c, out, ')', false, depth);
    if (ch == '{')
        return py_items(c, out, '}', true, depth);
    if (ch == '-' || (ch >= '0' && ch <= '9'))
        return py_number(c, out);
    size_t a, b;
    if (read_ident(c, false, &a, &b)) {
        size_t n = b - a;
        const char *w = c->s + a;
        if (n == 4 && memcmp(w, "True", 4) == 0) {
            out->type = PJ_TRUE;
            return HERD_OK;
        }
        if (n == 5 && memcmp(w, "False", 5) == 0) {
            out->type = PJ_FALSE;
            return HERD_OK;
        }
        if (n == 4 && memcmp(w, "None", 4) == 0) {
            out->type = PJ_NULL;
            return HERD_OK;
        }
        /* JSON spellings, which models mix in */
        if (n == 4 && memcmp(w, "true", 4) == 0) {
            out->type = PJ_TRUE;
            return HERD_OK;
        }
        if (n == 5 && memcmp(w, "false", 5) == 0) {
            out->type = PJ_FALSE;
            return HERD_OK;
        }
        if (n == 4 && memcmp(w, "null", 4) == 0) {
            out->type = PJ_NULL;
            return HERD_OK;
        }
    }
    return herd_fail(HERD_ERR_FORMAT, "tool call: unsupported value");
}

/* ---------------------------------------------------------------- calls */

struct calls {
    herd_tool_call *v;
    size_t n, cap;
};

static void calls_free(struct calls *cs)
{
    for (size_t i = 0; i < cs->n; i++) {
        herd_free(cs->v[i].name);
        herd_free(cs->v[i].arguments);
    }
    herd_free(cs->v);
    memset(cs, 0, sizeof *cs);
}

/* Whether a value holds NaN or an infinity anywhere (Python's NaN/Infinity literals, or a
 * float literal like 1e999 that overflows). json.dumps would write them as NaN/Infinity,
 * which is not JSON: OpenAI clients parse tool-call arguments as JSON. */
static bool has_nonfinite(const struct pj_value *v)
{
    if (v->type == PJ_FLOAT)
        return !isfinite(v->num);
    for (size_t i = 0; (v->type == PJ_ARRAY || v->type == PJ_OBJECT) && i < v->n; i++)
        if (has_nonfinite(&v->items[i]))
            return true;
    return false;
}

static herd_status calls_add(struct calls *cs, const char *name, size_t name_len,
                             const struct pj_value *args, bool builtin)
{
    if (has_nonfinite(args))
        return herd_fail(HERD_ERR_FORMAT, "tool call: arguments hold NaN or Infinity, "
                         "which JSON cannot carry");
    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? cs->cap * 2 : 4;
        herd_tool_call *v = herd_realloc(cs->v, cap * sizeof *v);
        if (!v)
            return herd_fail(HERD_ERR_NOMEM, "tool call: out of memory");
        cs->v = v;
        cs->cap = cap;
    }
    struct herd_buf b;
    buf_init(&b, 0);
    herd_status s = pj_dump(&b, args, -1);
    herd_tool_call *tc = &cs->v[cs->n];
    tc->name = herd_strndup(name, name_len);
    tc->arguments = s == HERD_OK ? buf_take(&b, NULL) : NULL;
    tc->builtin = builtin;
    buf_free(&b);
    if (!tc->name || !tc->arguments) {
        herd_free(tc->name);
        herd_free(tc->arguments);
        return s != HERD_OK ? s : herd_fail(HERD_ERR_NOMEM, "tool call: out of memory");
    }
    cs->n++;
    return HERD_OK;
}

/* name(k=v, ...) with keyword arguments only; the name may be dotted (x.call). */
static herd_status pythonic_call(struct cursor *c, struct calls *cs, bool builtin)
{
    size_t a, b;
    if (!read_ident(c, true, &a, &b) || !eat(c, '('))
        return herd_fail(HERD_ERR_FORMAT, "tool call: expected name(");
    size_t name_end = b;
    if (builtin) {
        if (b - a < 6 || memcmp(c->s + b - 5, ".call", 5) != 0)
            return herd_fail(HERD_ERR_FORMAT, "tool call: expected tool.call(");
        name_end = b - 5;
    }
    struct pj_value args = {0};
    args.type = PJ_OBJECT;
    herd_status s = HERD_OK;
    while (!eat(c, ')')) {
        size_t ka, kb;
        struct pj_value *slot;
        if (!read_ident(c, false, &ka, &kb) || !eat(c, '=')) {
            s = herd_fail(HERD_ERR_FORMAT, "tool call: expected keyword=value");
            break;
        }
        s = pj_append(&args, c->s + ka, kb - ka, &slot);
        if (s == HERD_OK)
            s = py_value(c, slot, 1);
        if (s != HERD_OK)
            break;
        if (!eat(c, ',') && !(skip_space(c), c->pos < c->len && c->s[c->pos] == ')')) {
            s = herd_fail(HERD_ERR_FORMAT, "tool call: expected ',' or ')'");
            break;
        }
    }
    if (s == HERD_OK)
        s = calls_add(cs, c->s + a, name_end - a, &args, builtin);
    pj_free(&args);
    return s;
}

/* [f(...), g(...)] */
static herd_status pythonic_list(struct cursor *c, struct calls *cs)
{
    if (!eat(c, '['))
        return herd_fail(HERD_ERR_FORMAT, "tool call: expected [");
    for (;;) {
        herd_status s = pythonic_call(c, cs, false);
        if (s != HERD_OK)
            return s;
        if (eat(c, ','))
            continue;
        if (eat(c, ']'))
            return HERD_OK;
        return herd_fail(HERD_ERR_FORMAT, "tool call: expected ',' or ']'");
    }
}

/* {"name": ..., "parameters"|"arguments": {...}} [; {...}]* */
static herd_status json_calls(struct cursor *c, struct calls *cs, bool builtin)
{
    for (;;) {
        struct pj_value v;
        size_t pos = c->pos;
        herd_status s = pj_parse_prefix(c->s, c->len, &pos, &v);
        if (s != HERD_OK)
            return s;
        c->pos = pos;
        const struct pj_value *name = pj_get(&v, "name");
        const struct pj_value *args = pj_get(&v, "parameters");
        if (!args)
            args = pj_get(&v, "arguments");
        struct pj_value parsed = {0};
        if (pj_is_string(args) && pj_parse(args->str, args->len, &parsed) == HERD_OK)
            args = &parsed;
        herd_clear_error();
        if (!pj_is_string(name) || !args || args->type != PJ_OBJECT)
            s = herd_fail(HERD_ERR_FORMAT, "tool call: expected {\"name\": ..., "
                                           "\"parameters\": {...}}");
        else
            s = calls_add(cs, name->str, name->len, args, builtin);
        pj_free(&parsed);
        pj_free(&v);
        if (s != HERD_OK)
            return s;
        while (eat(c, ';'))
            ;
        skip_space(c);
        if (c->pos >= c->len)
            return HERD_OK;
        if (c->s[c->pos] != '{')
            return herd_fail(HERD_ERR_FORMAT, "tool call: text after a call");
    }
}

static const char *const python_tag = "<|python_tag|>";

/* Parses the trimmed text t as calls only; on any failure nothing is added. */
static herd_status find_calls(const char *t, size_t n, struct calls *cs)
{
    struct cursor c = {t, n, 0};
    herd_status s;
    size_t tag = strlen(python_tag);
    if (n >= tag && memcmp(t, python_tag, tag) == 0) {
        c.pos = tag;
        skip_space(&c);
        if (c.pos >= n)
            return herd_fail(HERD_ERR_FORMAT, "tool call: nothing after <|python_tag|>");
        if (t[c.pos] == '{')
            return json_calls(&c, cs, false);
        struct cursor probe = c;
        size_t a, b;
        if (read_ident(&probe, true, &a, &b) && b - a > 5 &&
            memcmp(t + b - 5, ".call", 5) == 0 && eat(&probe, '(')) {
            for (;;) {
                s = pythonic_call(&c, cs, true);
                if (s != HERD_OK)
                    return s;
                while (eat(&c, ';'))
                    ;
                skip_space(&c);
                if (c.pos >= n)
                    return HERD_OK;
            }
        }
        /* Anything else after the tag is code for the code interpreter. */
        struct pj_value args = {0}, *slot;
        args.type = PJ_OBJECT;
        s = pj_append(&args, "code", 4, &slot);
        if (s == HERD_OK)
            s = pj_set_string(slot, t + c.pos, n - c.pos);
        if (s == HERD_OK)
            s = calls_add(cs, "code_interpreter", 16, &args, true);
        pj_free(&args);
        return s;
    }
    if (t[0] == '{')
        return json_calls(&c, cs, false);
    if (t[0] == '[') {
        s = pythonic_list(&c, cs);
        skip_space(&c);
        if (s == HERD_OK && c.pos != n)
            s = herd_fail(HERD_ERR_FORMAT, "tool call: text after the call list");
        return s;
    }
    return herd_fail(HERD_ERR_FORMAT, "not a tool call");
}

void herd_chat_output_free(herd_chat_output *o)
{
    if (!o)
        return;
    struct calls cs = {o->calls, o->n_calls, o->n_calls};
    calls_free(&cs);
    herd_free(o->content);
    herd_free(o);
}

herd_status herd_chat_parse_output(const char *text, size_t len, herd_chat_output **out)
{
    *out = NULL;
    static const char *const stops[] = {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"};
    size_t end = len;
    for (size_t k = 0; k < 3; k++) {
        size_t sl = strlen(stops[k]);
        for (size_t i = 0; i + sl <= end; i++) {
            if (memcmp(text + i, stops[k], sl) == 0) {
                end = i;
                break;
            }
        }
    }
    size_t lo = 0, hi = end;
    while (lo < hi && (text[lo] == ' ' || text[lo] == '\n' || text[lo] == '\t' ||
                       text[lo] == '\r'))
        lo++;
    while (hi > lo && (text[hi - 1] == ' ' || text[hi - 1] == '\n' || text[hi - 1] == '\t' ||
                       text[hi - 1] == '\r'))
        hi--;
    herd_chat_output *o = herd_calloc(1, sizeof *o);
    if (!o)
        return herd_fail(HERD_ERR_NOMEM, "tool call: out of memory");
    struct calls cs = {0};
    if (hi > lo && find_calls(text + lo, hi - lo, &cs) == HERD_OK && cs.n > 0) {
        o->calls = cs.v;
        o->n_calls = cs.n;
        o->content = herd_strdup("");
    } else {
        calls_free(&cs); /* a call list that failed half way is not reported */
        herd_clear_error();
        o->content = herd_strndup(text, end);
    }
    if (!o->content) {
        herd_chat_output_free(o);
        return herd_fail(HERD_ERR_NOMEM, "tool call: out of memory");
    }
    *out = o;
    return HERD_OK;
}
