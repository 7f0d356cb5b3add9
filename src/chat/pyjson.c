/*
 * pyjson.c - a JSON tree with Python's json.loads / json.dumps / str() semantics (see
 * pyjson.h for why chat/ does not use a generic JSON library here).
 *
 * Parser: recursive descent over a byte range with a depth limit; the cursor only moves on
 * success. Serializer: CPython's json encoder with ensure_ascii=False escapes only '"', '\\'
 * and bytes below 0x20 (as \n, \r, \t, \b, \f or \u00XX); floats use repr(); with an indent
 * the item separator is "," and every item goes on its own line, otherwise ", " and ": ".
 */
#include "pyjson.h"

#include <math.h>   /* isnan, isinf */
#include <stdio.h>  /* snprintf into a bounded local array for number digits */
#include <stdlib.h> /* strtod */

/* Deeper documents than this are refused instead of exhausting the stack; requests nest a
 * handful of levels. */
#define PJ_MAX_DEPTH 200

struct parser {
    const char *s;
    size_t len;
    size_t pos;
};

static herd_status perr(const struct parser *p, const char *what)
{
    return herd_fail(HERD_ERR_FORMAT, "JSON: %s at byte %zu", what, p->pos);
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

void pj_free(struct pj_value *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        pj_free(&v->items[i]);
        if (v->keys)
            pj_free(&v->keys[i]);
    }
    herd_free(v->items);
    herd_free(v->keys);
    herd_free(v->str);
    memset(v, 0, sizeof *v);
}

herd_status pj_set_string(struct pj_value *v, const char *s, size_t len)
{
    pj_free(v);
    v->str = herd_malloc(len + 1);
    if (!v->str)
        return herd_fail(HERD_ERR_NOMEM, "JSON: out of memory for a %zu-byte string", len);
    if (len)
        memcpy(v->str, s, len);
    v->str[len] = '\0';
    v->len = len;
    v->type = PJ_STRING;
    return HERD_OK;
}

static herd_status grow(struct pj_value *v)
{
    if (v->n < v->cap)
        return HERD_OK;
    size_t cap = v->cap ? v->cap * 2 : 4;
    struct pj_value *items = herd_realloc(v->items, cap * sizeof *items);
    if (!items)
        return herd_fail(HERD_ERR_NOMEM, "JSON: out of memory for %zu items", cap);
    v->items = items;
    if (v->type == PJ_OBJECT) {
        struct pj_value *keys = herd_realloc(v->keys, cap * sizeof *keys);
        if (!keys)
            return herd_fail(HERD_ERR_NOMEM, "JSON: out of memory for %zu keys", cap);
        v->keys = keys;
    }
    v->cap = cap;
    return HERD_OK;
}

herd_status pj_append(struct pj_value *obj, const char *key, size_t key_len,
                      struct pj_value **slot)
{
    if (obj->type == PJ_OBJECT) {
        for (size_t i = 0; i < obj->n; i++) {
            if (obj->keys[i].len == key_len && memcmp(obj->keys[i].str, key, key_len) == 0) {
                pj_free(&obj->items[i]);
                *slot = &obj->items[i];
                return HERD_OK;
            }
        }
    }
    herd_status s = grow(obj);
    if (s != HERD_OK)
        return s;
    memset(&obj->items[obj->n], 0, sizeof obj->items[0]);
    if (obj->type == PJ_OBJECT) {
        memset(&obj->keys[obj->n], 0, sizeof obj->keys[0]);
        s = pj_set_string(&obj->keys[obj->n], key, key_len);
        if (s != HERD_OK)
            return s;
    }
    *slot = &obj->items[obj->n++];
    return HERD_OK;
}

/* ---------------------------------------------------------------- parsing */

static herd_status parse_value(struct parser *p, struct pj_value *out, int depth);

static int hex4(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static herd_status put_utf8(struct herd_buf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return buf_append(b, u, n);
}

/* A JSON string at p->pos (the opening quote) into out. Python's strict mode: raw control
 * characters are errors. A lone surrogate escape is kept as its 3-byte form. */
static herd_status parse_string(struct parser *p, struct pj_value *out)
{
    struct herd_buf b;
    buf_init(&b, 0);
    size_t i = p->pos + 1;
    herd_status s;
    for (;;) {
        if (i >= p->len) {
            p->pos = i;
            s = perr(p, "unterminated string");
            goto fail;
        }
        unsigned char c = (unsigned char)p->s[i];
        if (c == '"')
            break;
        if (c < 0x20) {
            p->pos = i;
            s = perr(p, "control character in a string");
            goto fail;
        }
        if (c != '\\') {
            size_t j = i;
            while (j < p->len && p->s[j] != '"' && p->s[j] != '\\' &&
                   (unsigned char)p->s[j] >= 0x20)
                j++;
            buf_append(&b, p->s + i, j - i);
            i = j;
            continue;
        }
        if (i + 1 >= p->len) {
            p->pos = i;
            s = perr(p, "unterminated escape");
            goto fail;
        }
        char e = p->s[i + 1];
        const char *simple = NULL;
        switch (e) {
        case '"': simple = "\""; break;
        case '\\': simple = "\\"; break;
        case '/': simple = "/"; break;
        case 'b': simple = "\b"; break;
        case 'f': simple = "\f"; break;
        case 'n': simple = "\n"; break;
        case 'r': simple = "\r"; break;
        case 't': simple = "\t"; break;
        default: break;
        }
        if (simple) {
            buf_append(&b, simple, 1);
            i += 2;
            continue;
        }
        uint32_t cp;
        if (e != 'u' || i + 6 > p->len || hex4(p->s + i + 2, &cp) != 0) {
            p->pos = i;
            s = perr(p, "bad escape in a string");
            goto fail;
        }
        i += 6;
        uint32_t lo;
        if (cp >= 0xD800 && cp < 0xDC00 && i + 6 <= p->len && p->s[i] == '\\' &&
            p->s[i + 1] == 'u' && hex4(p->s + i + 2, &lo) == 0 && lo >= 0xDC00 &&
            lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
        }
        put_utf8(&b, cp);
    }
    if (b.err != HERD_OK) {
        s = b.err;
        goto fail;
    }
    s = pj_set_string(out, b.data ? b.data : "", b.len);
    if (s != HERD_OK)
        goto fail;
    buf_free(&b);
    p->pos = i + 1;
    return HERD_OK;
fail:
    buf_free(&b);
    return s;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Python's NUMBER_RE: -?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?; an int unless it has a
 * fraction or an exponent. */
static herd_status parse_number(struct parser *p, struct pj_value *out)
{
    size_t i = p->pos;
    bool is_float = false;
    if (i < p->len && p->s[i] == '-')
        i++;
    if (i >= p->len || !is_digit(p->s[i]))
        return perr(p, "bad number");
    if (p->s[i] == '0')
        i++;
    else
        while (i < p->len && is_digit(p->s[i]))
            i++;
    if (i + 1 < p->len && p->s[i] == '.' && is_digit(p->s[i + 1])) {
        is_float = true;
        i++;
        while (i < p->len && is_digit(p->s[i]))
            i++;
    }
    if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
        size_t j = i + 1;
        if (j < p->len && (p->s[j] == '+' || p->s[j] == '-'))
            j++;
        if (j < p->len && is_digit(p->s[j])) {
            is_float = true;
            i = j;
            while (i < p->len && is_digit(p->s[i]))
                i++;
        }
    }
    const char *lit = p->s + p->pos;
    size_t n = i - p->pos;
    herd_status s;
    if (is_float) {
        char *tmp = herd_strndup(lit, n);
        if (!tmp)
            return herd_fail(HERD_ERR_NOMEM, "JSON: out of memory");
        out->num = strtod(tmp, NULL);
        herd_free(tmp);
        out->type = PJ_FLOAT;
    } else {
        /* Python's int("-0") is 0. */
        if (n == 2 && lit[0] == '-' && lit[1] == '0') {
            lit++;
            n--;
        }
        s = pj_set_string(out, lit, n);
        if (s != HERD_OK)
            return s;
        out->type = PJ_INT;
    }
    p->pos = i;
    return HERD_OK;
}

static bool match_word(struct parser *p, const char *w)
{
    size_t n = strlen(w);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, w, n) != 0)
        return false;
    p->pos += n;
    return true;
}

static herd_status parse_container(struct parser *p, struct pj_value *out, int depth)
{
    bool is_obj = p->s[p->pos] == '{';
    char close = is_obj ? '}' : ']';
    out->type = is_obj ? PJ_OBJECT : PJ_ARRAY;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return HERD_OK;
    }
    struct pj_value key = {0};
    for (;;) {
        herd_status s;
        struct pj_value *slot;
        if (is_obj) {
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return perr(p, "expected a string key");
            s = parse_string(p, &key);
            if (s != HERD_OK)
                return s;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                pj_free(&key);
                return perr(p, "expected ':'");
            }
            p->pos++;
            skip_ws(p);
            s = pj_append(out, key.str, key.len, &slot);
            pj_free(&key);
        } else {
            s = pj_append(out, NULL, 0, &slot);
        }
        if (s != HERD_OK)
            return s;
        s = parse_value(p, slot, depth + 1);
        if (s != HERD_OK)
            return s;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            skip_ws(p);
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            return HERD_OK;
        }
        return perr(p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static herd_status parse_value(struct parser *p, struct pj_value *out, int depth)
{
    if (depth > PJ_MAX_DEPTH)
        return herd_fail(HERD_ERR_FORMAT, "JSON: nesting deeper than %d levels at byte %zu",
                         PJ_MAX_DEPTH, p->pos);
    if (p->pos >= p->len)
        return perr(p, "unexpected end");
    char c = p->s[p->pos];
    if (c == '{' || c == '[')
        return parse_container(p, out, depth);
    if (c == '"')
        return parse_string(p, out);
    if (c == '-' || is_digit(c)) {
        if (match_word(p, "-Infinity")) {
            out->type = PJ_FLOAT;
            out->num = -INFINITY;
            return HERD_OK;
        }
        return parse_number(p, out);
    }
    if (match_word(p, "null")) {
        out->type = PJ_NULL;
        return HERD_OK;
    }
    if (match_word(p, "true")) {
        out->type = PJ_TRUE;
        return HERD_OK;
    }
    if (match_word(p, "false")) {
        out->type = PJ_FALSE;
        return HERD_OK;
    }
    if (match_word(p, "NaN") || match_word(p, "Infinity")) {
        out->type = PJ_FLOAT;
        out->num = p->s[p->pos - 1] == 'N' ? NAN : INFINITY;
        return HERD_OK;
    }
    return perr(p, "unexpected character");
}

herd_status pj_parse_prefix(const char *text, size_t len, size_t *pos, struct pj_value *out)
{
    struct parser p = {text, len, *pos};
    memset(out, 0, sizeof *out);
    skip_ws(&p);
    herd_status s = parse_value(&p, out, 0);
    if (s != HERD_OK) {
        pj_free(out);
        return s;
    }
    skip_ws(&p);
    *pos = p.pos;
    return HERD_OK;
}

herd_status pj_parse(const char *text, size_t len, struct pj_value *out)
{
    size_t pos = 0;
    herd_status s = pj_parse_prefix(text, len, &pos, out);
    if (s != HERD_OK)
        return s;
    if (pos != len) {
        pj_free(out);
        return herd_fail(HERD_ERR_FORMAT, "JSON: extra data at byte %zu", pos);
    }
    return HERD_OK;
}

/* ---------------------------------------------------------------- queries */

const struct pj_value *pj_get(const struct pj_value *obj, const char *key)
{
    if (!obj || obj->type != PJ_OBJECT)
        return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < obj->n; i++)
        if (obj->keys[i].len == n && memcmp(obj->keys[i].str, key, n) == 0)
            return &obj->items[i];
    return NULL;
}

bool pj_is_string(const struct pj_value *v)
{
    return v && v->type == PJ_STRING;
}

bool pj_truthy(const struct pj_value *v)
{
    if (!v)
        return false;
    switch (v->type) {
    case PJ_NULL:
    case PJ_FALSE:
        return false;
    case PJ_TRUE:
        return true;
    case PJ_INT:
        return !(v->len == 1 && v->str[0] == '0');
    case PJ_FLOAT:
        return v->num != 0.0;
    case PJ_STRING:
        return v->len > 0;
    case PJ_ARRAY:
    case PJ_OBJECT:
        return v->n > 0;
    }
    return false;
}

bool pj_equals_str(const struct pj_value *v, const char *s)
{
    return pj_is_string(v) && v->len == strlen(s) && memcmp(v->str, s, v->len) == 0;
}

/* ---------------------------------------------------------------- output */

herd_status pj_float_repr(struct herd_buf *b, double d)
{
    if (isnan(d))
        return buf_puts(b, "NaN");
    if (isinf(d))
        return buf_puts(b, d < 0 ? "-Infinity" : "Infinity");
    /* Shortest round-tripping digits, as Python's repr finds them (David Gay's mode 0):
     * try 1..17 significant digits in %e form. */
    char e[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, d);
        if (strtod(e, NULL) == d)
            break;
    }
    /* e = [-]D[.DDD]e(+|-)XX: split into sign, digits and decimal exponent. */
    const char *q = e;
    bool neg = *q == '-';
    if (neg)
        q++;
    char digits[24];
    size_t nd = 0;
    for (; *q && *q != 'e'; q++)
        if (*q != '.' && nd < sizeof digits - 1)
            digits[nd++] = *q;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    long exp10 = *q == 'e' ? strtol(q + 1, NULL, 10) : 0;
    if (neg)
        buf_puts(b, "-");
    /* repr switches to exponent form when the exponent is < -4 or >= 16. */
    if (exp10 < -4 || exp10 >= 16) {
        buf_append(b, digits, 1);
        if (nd > 1) {
            buf_puts(b, ".");
            buf_append(b, digits + 1, nd - 1);
        }
        return buf_printf(b, "e%c%02ld", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
    if (exp10 < 0) {
        buf_puts(b, "0.");
        for (long i = -1; i > exp10; i--)
            buf_puts(b, "0");
        return buf_append(b, digits, nd);
    }
    size_t int_digits = (size_t)exp10 + 1;
    for (size_t i = 0; i < int_digits; i++)
        buf_append(b, i < nd ? &digits[i] : "0", 1);
    buf_puts(b, ".");
    if (nd > int_digits)
        return buf_append(b, digits + int_digits, nd - int_digits);
    return buf_puts(b, "0");
}

static herd_status dump_string(struct herd_buf *b, const char *s, size_t len)
{
    buf_puts(b, "\"");
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[8];
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c == '\b')
            esc = "\\b";
        else if (c == '\f')
            esc = "\\f";
        else if (c < 0x20) {
            snprintf(u, sizeof u, "\\u%04x", c);
            esc = u;
        }
        if (!esc)
            continue;
        buf_append(b, s + run, i - run);
        buf_puts(b, esc);
        run = i + 1;
    }
    buf_append(b, s + run, len - run);
    return buf_puts(b, "\"");
}

static herd_status dump_newline(struct herd_buf *b, int indent, int level)
{
    buf_puts(b, "\n");
    for (int i = 0; i < indent * level; i++)
        buf_puts(b, " ");
    return b->err;
}

static herd_status dump(struct herd_buf *b, const struct pj_value *v, int indent, int level)
{
    switch (v->type) {
    case PJ_NULL:
        return buf_puts(b, "null");
    case PJ_FALSE:
        return buf_puts(b, "false");
    case PJ_TRUE:
        return buf_puts(b, "true");
    case PJ_INT:
        return buf_append(b, v->str, v->len);
    case PJ_FLOAT:
        return pj_float_repr(b, v->num);
    case PJ_STRING:
        return dump_string(b, v->str, v->len);
    case PJ_ARRAY:
    case PJ_OBJECT:
        break;
    }
    bool obj = v->type == PJ_OBJECT;
    if (v->n == 0)
        return buf_puts(b, obj ? "{}" : "[]");
    buf_puts(b, obj ? "{" : "[");
    for (size_t i = 0; i < v->n; i++) {
        if (i > 0)
            buf_puts(b, indent >= 0 ? "," : ", ");
        if (indent >= 0)
            dump_newline(b, indent, level + 1);
        if (obj) {
            dump_string(b, v->keys[i].str, v->keys[i].len);
            buf_puts(b, ": ");
        }
        dump(b, &v->items[i], indent, level + 1);
    }
    if (indent >= 0)
        dump_newline(b, indent, level);
    return buf_puts(b, obj ? "}" : "]");
}

herd_status pj_dump(struct herd_buf *b, const struct pj_value *v, int indent)
{
    dump(b, v, indent, 0);
    return b->err;
}

/* Decodes one UTF-8 sequence at s (len > 0); invalid bytes come back as themselves with
 * *n = 1 and cp = 0xFFFFFFFF. */
static uint32_t utf8_next(const unsigned char *s, size_t len, size_t *n)
{
    unsigned char c = s[0];
    size_t want = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (want == 0 || want > len) {
        *n = 1;
        return c < 0x80 ? c : 0xFFFFFFFFu;
    }
    uint32_t cp = want == 1 ? c : want == 2 ? (c & 0x1Fu) : want == 3 ? (c & 0x0Fu) : (c & 7u);
    for (size_t i = 1; i < want; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *n = 1;
            return 0xFFFFFFFFu;
        }
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    *n = want;
    return cp;
}

/* Whether Python's str.isprintable() is false for cp, for the code points requests carry:
 * controls, the Latin-1 block's NBSP and soft hyphen, Unicode spaces other than ' ', line
 * and paragraph separators, zero-width and bidi format characters, surrogates, the BOM. */
static bool py_unprintable(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) ||
           (cp >= 0x205F && cp <= 0x2064) || (cp >= 0x2066 && cp <= 0x206F) ||
           cp == 0x3000 || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFEFF ||
           (cp >= 0xFFF9 && cp <= 0xFFFB);
}

/* repr() of a str: single quotes unless the text has ' and no ". */
static herd_status repr_string(struct herd_buf *b, const char *s, size_t len)
{
    char q = memchr(s, '\'', len) && !memchr(s, '"', len) ? '"' : '\'';
    buf_append(b, &q, 1);
    for (size_t i = 0; i < len;) {
        size_t n;
        uint32_t cp = utf8_next((const unsigned char *)s + i, len - i, &n);
        if (cp == (uint32_t)q || cp == '\\') {
            buf_puts(b, "\\");
            buf_append(b, s + i, 1);
        } else if (cp == '\n') {
            buf_puts(b, "\\n");
        } else if (cp == '\r') {
            buf_puts(b, "\\r");
        } else if (cp == '\t') {
            buf_puts(b, "\\t");
        } else if (cp == 0xFFFFFFFFu) {
            buf_printf(b, "\\x%02x", (unsigned char)s[i]);
        } else if (py_unprintable(cp)) {
            if (cp <= 0xFF)
                buf_printf(b, "\\x%02x", (unsigned)cp);
            else
                buf_printf(b, "\\u%04x", (unsigned)cp);
        } else {
            buf_append(b, s + i, n);
        }
        i += n;
    }
    return buf_append(b, &q, 1);
}

static herd_status repr(struct herd_buf *b, const struct pj_value *v)
{
    switch (v->type) {
    case PJ_NULL:
        return buf_puts(b, "None");
    case PJ_FALSE:
        return buf_puts(b, "False");
    case PJ_TRUE:
        return buf_puts(b, "True");
    case PJ_INT:
        return buf_append(b, v->str, v->len);
    case PJ_FLOAT:
        if (isnan(v->num))
            return buf_puts(b, "nan");
        if (isinf(v->num))
            return buf_puts(b, v->num < 0 ? "-inf" : "inf");
        return pj_float_repr(b, v->num);
    case PJ_STRING:
        return repr_string(b, v->str, v->len);
    case PJ_ARRAY:
    case PJ_OBJECT:
        break;
    }
    bool obj = v->type == PJ_OBJECT;
    buf_puts(b, obj ? "{" : "[");
    for (size_t i = 0; i < v->n; i++) {
        if (i > 0)
            buf_puts(b, ", ");
        if (obj) {
            repr_string(b, v->keys[i].str, v->keys[i].len);
            buf_puts(b, ": ");
        }
        repr(b, &v->items[i]);
    }
    return buf_puts(b, obj ? "}" : "]");
}

herd_status pj_str(struct herd_buf *b, const struct pj_value *v)
{
    if (v->type == PJ_STRING)
        return buf_append(b, v->str, v->len);
    repr(b, v);
    return b->err;
}
