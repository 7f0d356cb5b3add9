/*
 * json_constraint.c - an incremental JSON validator over bytes, for constrained decoding
 * (response_format json_object, forced tool calls).
 *
 * The language is RFC 8259 JSON restricted to an object at the top level: objects, arrays,
 * strings (escapes \" \\ \/ \b \f \n \r \t \uXXXX, a \u escape of a UTF-16 high
 * surrogate only when a low-surrogate escape follows it, never a lone low one: RFC 8259
 * leaves lone surrogates to the receiver and strict parsers, cJSON among them, refuse
 * them; raw bytes must be well-formed UTF-8 as in RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF; no control bytes),
 * numbers (-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?), true/false/null and whitespace. The
 * state is a small value (containers are a bit stack), so callers test a token by copying
 * the state and feeding the token's bytes; nothing allocates.
 *
 * Invariants: a fed prefix is valid iff it is the prefix of some complete document;
 * srv_jsonc_cost is the exact length of the shortest completion, so a generator that
 * keeps cost <= remaining single-byte steps can always finish. Optional "alternatives"
 * force the next bytes to spell one of a few literal strings (a tool name and what follows
 * it); they are fed to the JSON validator too.
 *
 * With a schema (srv_jsonc_schema, json_schema.c) every byte is also checked against the
 * schema node of the value it belongs to, before the JSON check: a value's first byte must
 * be of an allowed type (and picks the anyOf branch), keys must spell an unused declared
 * property, '}' needs every required one, arrays keep to minItems/maxItems, strings to
 * minLength/maxLength and their format template, integers take no '.' or exponent, and
 * enum/const values must spell one of the allowed values. One frame per open container
 * (node, items so far, properties present) lives in the state, which stays a plain value.
 * The cost adds what the schema still needs (required properties, minimum items and
 * lengths, the shortest valid value of a pending one): an upper bound, so a generator
 * that keeps within it can always finish.
 */
#include "server.h"

#include <string.h> /* strlen, memcmp */

enum {
    J_START,     /* before the top-level '{' */
    J_VALUE,     /* a value is required (after ':' or an array's ',') */
    J_ARR_FIRST, /* after '[': a value or ']' */
    J_OBJ_FIRST, /* after '{': a key or '}' */
    J_KEY,       /* after an object's ',': a key */
    J_COLON,     /* after a key */
    J_AFTER,     /* after a value in a container: ',' or the closer */
    J_STR,       /* in a string; sub = 1 for a key */
    J_ESC,       /* after a backslash */
    J_HEX,       /* in \uXXXX; aux = hex digits left, lo = the first two digits' value,
                    hi = 1 when this must be a low surrogate, 2 after a high one */
    J_LOW_ESC,   /* after a high-surrogate escape: '\\' of its low half must follow */
    J_LOW_U,     /* then 'u' */
    J_UTF8,      /* in a multi-byte sequence; aux = bytes left, lo..hi = next byte's range */
    J_NUM_MINUS, /* "-": a digit must follow */
    J_NUM_ZERO,  /* a leading 0: '.', 'e' or the end */
    J_NUM_INT,   /* integer digits */
    J_NUM_DOT,   /* "." : a digit must follow */
    J_NUM_FRAC,  /* fraction digits */
    J_NUM_E,     /* "e": a sign or digit must follow */
    J_NUM_ESIGN, /* "e+" : a digit must follow */
    J_NUM_EXP,   /* exponent digits */
    J_LIT,       /* in true/false/null; sub = which, aux = bytes matched */
    J_DONE,      /* the top-level object is closed */
};

/* Consecutive whitespace allowed between tokens: enough for pretty-printing 16 levels
 * deep, but a model cannot stall in an endless run of blanks. Before the object a
 * newline or two is plenty. */
#define J_MAX_WS 40
#define J_MAX_LEADING_WS 4

static const char *const literals[3] = {"true", "false", "null"};

void srv_jsonc_init(struct srv_jsonc *j)
{
    memset(j, 0, sizeof *j);
    j->mode = J_START;
    j->alt_pos = -1;
    j->key_ref = -1;
    j->ealt_ref = -1;
}

void srv_jsonc_schema(struct srv_jsonc *j, const struct srv_schema *schema)
{
    j->schema = schema;
    j->val_node = 1; /* the root */
}

void srv_jsonc_expect(struct srv_jsonc *j, char *const *alts, int32_t n_alts)
{
    j->alts = alts;
    j->n_alts = n_alts;
    j->alt_ref = 0;
    j->alt_pos = n_alts > 0 ? 0 : -1;
}

bool srv_jsonc_done(const struct srv_jsonc *j)
{
    return j->mode == J_DONE;
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int hex_value(unsigned char c)
{
    return is_digit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
         : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
}

/* One hex digit of a \u escape. The first two decide the surrogate class: D8..DB (high)
 * must be followed by a low escape, DC..DF (low) only right after a high one. A digit is
 * refused as soon as no completion can be valid, so accepted prefixes stay completable. */
static bool hex_byte(struct srv_jsonc *j, unsigned char c)
{
    int v = hex_value(c);
    if (v < 0)
        return false;
    bool need_low = j->hi == 1;
    if (j->aux == 4) {
        if (need_low && v != 0xD)
            return false;
        j->lo = (uint8_t)v;
    } else if (j->aux == 3) {
        int top = j->lo * 16 + v;
        bool low = top >= 0xDC && top <= 0xDF, high = top >= 0xD8 && top <= 0xDB;
        if (need_low != low)
            return false;
        j->hi = high ? 2 : 0;
    }
    if (--j->aux == 0)
        j->mode = j->hi == 2 ? J_LOW_ESC : J_STR;
    return true;
}

static bool top_is_array(const struct srv_jsonc *j)
{
    return (j->arrays >> (j->depth - 1)) & 1u;
}

/* A value ended: back to the enclosing container. */
static void value_done(struct srv_jsonc *j)
{
    j->mode = j->depth == 0 ? J_DONE : J_AFTER;
}

static bool open_container(struct srv_jsonc *j, bool array)
{
    if (j->depth >= SRV_JSONC_MAX_DEPTH)
        return false;
    if (array)
        j->arrays |= (uint64_t)1 << j->depth;
    else
        j->arrays &= ~((uint64_t)1 << j->depth);
    j->depth++;
    j->mode = array ? J_ARR_FIRST : J_OBJ_FIRST;
    return true;
}

static bool close_container(struct srv_jsonc *j, bool array)
{
    if (j->depth == 0 || top_is_array(j) != array)
        return false;
    j->depth--;
    value_done(j);
    return true;
}

/* The first byte of a value (mode J_VALUE or J_ARR_FIRST). */
static bool value_start(struct srv_jsonc *j, unsigned char c)
{
    switch (c) {
    case '{':
        return open_container(j, false);
    case '[':
        return open_container(j, true);
    case '"':
        j->mode = J_STR;
        j->sub = 0;
        return true;
    case '-':
        j->mode = J_NUM_MINUS;
        return true;
    case '0':
        j->mode = J_NUM_ZERO;
        return true;
    case 't':
    case 'f':
    case 'n':
        j->mode = J_LIT;
        j->sub = c == 't' ? 0 : c == 'f' ? 1 : 2;
        j->aux = 1;
        return true;
    default:
        if (c >= '1' && c <= '9') {
            j->mode = J_NUM_INT;
            return true;
        }
        return false;
    }
}

/* A raw byte inside a string (RFC 3629 well-formed sequences only). */
static bool string_byte(struct srv_jsonc *j, unsigned char c)
{
    if (c == '"') {
        if (j->sub) {
            j->mode = J_COLON;
        } else {
            value_done(j);
        }
        return true;
    }
    if (c == '\\') {
        j->mode = J_ESC;
        return true;
    }
    if (c < 0x20)
        return false;
    if (c < 0x80)
        return true;
    /* lead byte -> continuation count and the range allowed for the first continuation */
    j->lo = 0x80;
    j->hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        j->aux = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        j->aux = 2;
        if (c == 0xE0)
            j->lo = 0xA0; /* no overlong 3-byte forms */
        if (c == 0xED)
            j->hi = 0x9F; /* no UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        j->aux = 3;
        if (c == 0xF0)
            j->lo = 0x90; /* no overlong 4-byte forms */
        if (c == 0xF4)
            j->hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        return false; /* a stray continuation, C0/C1 overlongs, F5..FF */
    }
    j->mode = J_UTF8;
    return true;
}

/* Number states: a byte that cannot continue the number ends it (if it may end here) and
 * is then read as what follows the value. */
static bool number_byte(struct srv_jsonc *j, unsigned char c, bool *reread)
{
    bool digit = is_digit(c);
    switch (j->mode) {
    case J_NUM_MINUS:
        if (!digit)
            return false;
        j->mode = c == '0' ? J_NUM_ZERO : J_NUM_INT;
        return true;
    case J_NUM_DOT:
    case J_NUM_ESIGN:
        if (!digit)
            return false;
        j->mode = j->mode == J_NUM_DOT ? J_NUM_FRAC : J_NUM_EXP;
        return true;
    case J_NUM_E:
        if (digit)
            j->mode = J_NUM_EXP;
        else if (c == '+' || c == '-')
            j->mode = J_NUM_ESIGN;
        else
            return false;
        return true;
    default:
        break;
    }
    if (digit && j->mode != J_NUM_ZERO)
        return true;
    if (c == '.' && (j->mode == J_NUM_ZERO || j->mode == J_NUM_INT)) {
        j->mode = J_NUM_DOT;
        return true;
    }
    if ((c == 'e' || c == 'E') && j->mode != J_NUM_EXP) {
        j->mode = J_NUM_E;
        return true;
    }
    value_done(j);
    *reread = true;
    return true;
}

/* Whitespace and the structural bytes between tokens. */
static bool between_byte(struct srv_jsonc *j, unsigned char c)
{
    if (is_ws(c)) {
        if (j->n_ws >= (j->mode == J_START ? J_MAX_LEADING_WS : J_MAX_WS))
            return false;
        j->n_ws++;
        return true;
    }
    j->n_ws = 0;
    switch (j->mode) {
    case J_START:
        return c == '{' && open_container(j, false);
    case J_VALUE:
        return value_start(j, c);
    case J_ARR_FIRST:
        return c == ']' ? close_container(j, true) : value_start(j, c);
    case J_OBJ_FIRST:
    case J_KEY:
        if (c == '}' && j->mode == J_OBJ_FIRST)
            return close_container(j, false);
        if (c != '"')
            return false;
        j->mode = J_STR;
        j->sub = 1;
        return true;
    case J_COLON:
        if (c != ':')
            return false;
        j->mode = J_VALUE;
        return true;
    case J_AFTER:
        if (c == ',') {
            j->mode = top_is_array(j) ? J_VALUE : J_KEY;
            return true;
        }
        if (c == '}' || c == ']')
            return close_container(j, c == ']');
        return false;
    default:
        return false; /* J_DONE: only whitespace */
    }
}

static bool json_byte(struct srv_jsonc *j, unsigned char c)
{
    switch (j->mode) {
    case J_STR:
        return string_byte(j, c);
    case J_ESC:
        if (c == 'u') {
            j->mode = J_HEX;
            j->aux = 4;
            j->hi = 0;
            return true;
        }
        if (c == 0 || !strchr("\"\\/bfnrt", c))
            return false;
        j->mode = J_STR;
        return true;
    case J_HEX:
        return hex_byte(j, c);
    case J_LOW_ESC:
        if (c != '\\')
            return false;
        j->mode = J_LOW_U;
        return true;
    case J_LOW_U:
        if (c != 'u')
            return false;
        j->mode = J_HEX;
        j->aux = 4;
        j->hi = 1;
        return true;
    case J_UTF8:
        if (c < j->lo || c > j->hi)
            return false;
        j->lo = 0x80;
        j->hi = 0xBF;
        if (--j->aux == 0)
            j->mode = J_STR;
        return true;
    case J_LIT: {
        const char *lit = literals[j->sub];
        if ((unsigned char)lit[j->aux] != c)
            return false;
        if (lit[++j->aux] == '\0')
            value_done(j);
        return true;
    }
    case J_NUM_MINUS:
    case J_NUM_ZERO:
    case J_NUM_INT:
    case J_NUM_DOT:
    case J_NUM_FRAC:
    case J_NUM_E:
    case J_NUM_ESIGN:
    case J_NUM_EXP: {
        bool reread = false;
        if (!number_byte(j, c, &reread))
            return false;
        return !reread || between_byte(j, c);
    }
    default:
        return between_byte(j, c);
    }
}

/* Forced alternatives: the byte must continue one of the literal strings that agree with
 * everything matched so far (all live ones share alt_pos bytes with alts[alt_ref]). */
static bool alt_byte(struct srv_jsonc *j, unsigned char c)
{
    const char *ref = j->alts[j->alt_ref];
    size_t pos = (size_t)j->alt_pos;
    for (int32_t k = 0; k < j->n_alts; k++) {
        const char *a = j->alts[k];
        if (strlen(a) > pos && (unsigned char)a[pos] == c && !memcmp(a, ref, pos)) {
            j->alt_ref = k;
            j->alt_pos++;
            if (a[pos + 1] == '\0')
                j->alt_pos = -1; /* spelled out: plain JSON from here */
            return true;
        }
    }
    return false;
}

/* ---------------------------------------------------------------- schema */

static const uint8_t class_types[6] = {SRV_ST_OBJECT, SRV_ST_ARRAY, SRV_ST_STRING,
                                       SRV_ST_NUMBER | SRV_ST_INTEGER, SRV_ST_BOOLEAN,
                                       SRV_ST_NULL};
static const int32_t fmt_len[] = {0, 10, 9, 20, 36};

static const struct srv_snode *node_at(const struct srv_jsonc *j, int16_t i)
{
    return &j->schema->nodes[i];
}

/* The class of a value's first byte (the index of class_types), -1 for none. */
static int value_class(unsigned char c)
{
    if (c == '{' || c == '[' || c == '"')
        return c == '{' ? 0 : c == '[' ? 1 : 2;
    if (c == '-' || is_digit(c))
        return 3;
    if (c == 't' || c == 'f')
        return 4;
    return c == 'n' ? 5 : -1;
}

static bool string_mode(int m)
{
    return m == J_STR || m == J_ESC || m == J_HEX || m == J_LOW_ESC || m == J_LOW_U ||
           m == J_UTF8;
}

static bool number_mode(int m)
{
    return m >= J_NUM_MINUS && m <= J_NUM_EXP;
}

static bool number_char(unsigned char c)
{
    return is_digit(c) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
}

static bool push_frame(struct srv_jsonc *j, int16_t node)
{
    if (j->depth >= SRV_SCHEMA_MAX_DEPTH)
        return false;
    j->fr[j->depth] = (struct srv_sframe){node, 0, 0};
    return true;
}

/* enum/const: c must continue a live allowed value. A number value may be followed by
 * a longer one ([1, 12]), so it ends only when a byte that cannot continue it comes
 * (*ended: the caller then reads c as what follows the value). */
static bool enum_byte(struct srv_jsonc *j, unsigned char c, bool *ended)
{
    const struct srv_snode *n = node_at(j, j->cur_node);
    const char *ref = n->alts[j->ealt_ref];
    size_t pos = j->ealt_pos;
    *ended = false;
    for (int32_t k = 0; k < n->n_alts; k++) {
        const char *a = n->alts[k];
        if (strlen(a) <= pos || (unsigned char)a[pos] != c || memcmp(a, ref, pos) != 0)
            continue;
        j->ealt_ref = (int16_t)k;
        j->ealt_pos++;
        if (a[pos + 1] == '\0' && value_class((unsigned char)a[0]) != 3)
            j->ealt_ref = -1; /* complete; only numbers can be prefixes of others */
        return true;
    }
    for (int32_t k = 0; k < n->n_alts; k++) {
        const char *a = n->alts[k];
        if (strlen(a) == pos && !memcmp(a, ref, pos) && !number_char(c)) {
            j->ealt_ref = -1;
            *ended = true;
            return true;
        }
    }
    return false;
}

static bool schema_value_start(struct srv_jsonc *j, int16_t ni, unsigned char c)
{
    int k = value_class(c);
    if (k < 0)
        return true; /* the JSON check refuses it */
    const struct srv_snode *n = node_at(j, ni);
    if (n->branch[k] >= 0) {
        ni = n->branch[k];
        n = node_at(j, ni);
    }
    j->cur_node = ni;
    if (n->n_alts) {
        j->ealt_ref = 0;
        j->ealt_pos = 0;
        j->ealt_depth = (uint8_t)j->depth;
        bool ended = false;
        if (!enum_byte(j, c, &ended) || ended)
            return false;
        return k > 1 || push_frame(j, SRV_SCHEMA_ANY);
    }
    if (!(n->types & class_types[k]))
        return false;
    if (k <= 1)
        return push_frame(j, ni);
    if (k == 2) {
        j->s_chars = 0;
        j->s_prev = 0;
    }
    return true;
}

static bool has_unused(const struct srv_snode *n, const struct srv_sframe *f)
{
    uint64_t all = n->n_props >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << n->n_props) - 1;
    return (f->used & all) != all;
}

/* A key byte: the key must spell an unused declared property (any key when free). */
static bool key_byte(struct srv_jsonc *j, unsigned char c, int mode)
{
    struct srv_sframe *f = &j->fr[j->depth - 1];
    const struct srv_snode *fn = node_at(j, f->node);
    if (j->key_ref == -1) {
        if (mode == J_STR && c == '"')
            j->val_node = SRV_SCHEMA_ANY;
        return true;
    }
    const char *ref = j->key_ref >= 0 ? fn->keys[j->key_ref] : "";
    size_t pos = j->key_pos;
    for (int32_t i = 0; i < fn->n_props; i++) {
        if ((f->used >> i) & 1 || memcmp(fn->keys[i], ref, pos < fn->key_lens[i] ? pos
                                                                   : fn->key_lens[i]) != 0)
            continue;
        if (mode == J_STR && c == '"') {
            if (fn->key_lens[i] != pos)
                continue;
            f->used |= (uint64_t)1 << i;
            j->val_node = fn->prop_node[i];
            return true;
        }
        if (fn->key_lens[i] > pos && (unsigned char)fn->keys[i][pos] == c) {
            j->key_ref = (int16_t)i;
            j->key_pos++;
            return true;
        }
    }
    return false;
}

static bool date_ok(int pos, unsigned char c, unsigned char prev)
{
    switch (pos) {
    case 0:
        return c >= '1' && c <= '9'; /* year 0 is not a date */
    case 4:
    case 7:
        return c == '-';
    case 5:
        return c == '0' || c == '1';
    case 6:
        return prev == '0' ? c >= '1' && c <= '9' : c >= '0' && c <= '2';
    case 8:
        return c >= '0' && c <= '2'; /* days 01..29 exist in every month */
    case 9:
        return prev == '0' ? c >= '1' && c <= '9' : is_digit(c);
    default:
        return is_digit(c);
    }
}

static bool time_ok(int pos, unsigned char c)
{
    switch (pos) {
    case 0:
        return c == '0' || c == '1'; /* hours 00..19 */
    case 2:
    case 5:
        return c == ':';
    case 3:
    case 6:
        return c >= '0' && c <= '5';
    case 8:
        return c == 'Z';
    default:
        return is_digit(c);
    }
}

/* The byte at pos of a formatted string (a fixed template of valid values). */
static bool format_ok(int f, int pos, unsigned char c, unsigned char prev)
{
    if (f == SRV_FMT_UUID) {
        if (pos == 8 || pos == 13 || pos == 18 || pos == 23)
            return c == '-';
        return is_digit(c) || (c >= 'a' && c <= 'f');
    }
    if (f == SRV_FMT_TIME)
        return time_ok(pos, c);
    if (pos < 10)
        return date_ok(pos, c, prev);
    return pos == 10 ? c == 'T' : time_ok(pos - 11, c);
}

static bool string_value_byte(struct srv_jsonc *j, unsigned char c, int mode)
{
    const struct srv_snode *n = node_at(j, j->cur_node);
    if (mode != J_STR)
        return !n->format; /* inside an escape or a UTF-8 sequence */
    if (c == '"')
        return j->s_chars >= n->min_len && (!n->format || j->s_chars == fmt_len[n->format]);
    if (j->s_chars >= n->max_len || (n->format && j->s_chars >= fmt_len[n->format]))
        return false;
    if (n->format) {
        if (!format_ok(n->format, j->s_chars, c, j->s_prev))
            return false;
        j->s_prev = c;
    }
    if (j->s_chars < UINT16_MAX)
        j->s_chars++;
    return true;
}

/* Checks c against the schema and updates the schema state; the JSON state (j->mode, depth)
 * is the one before c, and the JSON check runs after this. */
static bool schema_byte(struct srv_jsonc *j, unsigned char c)
{
    int mode = j->mode;
    if (j->ealt_ref >= 0) {
        bool ended = false;
        if (!enum_byte(j, c, &ended))
            return false;
        if (!ended) {
            if (!string_mode(mode) && (c == '{' || c == '['))
                return push_frame(j, SRV_SCHEMA_ANY);
            return true;
        }
    }
    if (string_mode(mode))
        return j->sub ? key_byte(j, c, mode) : string_value_byte(j, c, mode);
    if (number_mode(mode)) {
        const struct srv_snode *n = node_at(j, j->cur_node);
        bool int_only = !(n->types & SRV_ST_NUMBER) && j->ealt_ref < 0;
        if (int_only && (c == '.' || c == 'e' || c == 'E'))
            return false;
        if (number_char(c))
            return true;
        mode = J_AFTER; /* c ends the number and is read after it */
    }
    if (mode == J_LIT || is_ws(c))
        return true;
    struct srv_sframe *f = j->depth > 0 ? &j->fr[j->depth - 1] : NULL;
    const struct srv_snode *fn = f ? node_at(j, f->node) : NULL;
    bool in_array = f && top_is_array(j);
    switch (mode) {
    case J_START:
        return c != '{' || schema_value_start(j, 1, c);
    case J_VALUE:
        if (!in_array)
            return schema_value_start(j, j->val_node, c);
        if (f->count >= fn->max_items)
            return false;
        f->count++;
        return schema_value_start(j, fn->items, c);
    case J_ARR_FIRST:
        if (c == ']')
            return fn->min_items == 0;
        if (fn->max_items == 0)
            return false;
        f->count = 1;
        return schema_value_start(j, fn->items, c);
    case J_OBJ_FIRST:
    case J_KEY:
        if (c == '}')
            return mode == J_KEY || (fn->required & ~f->used) == 0;
        if (c != '"')
            return true;
        if (fn->free_keys) {
            j->key_ref = -1;
            return true;
        }
        j->key_ref = -2; /* no property matched yet */
        j->key_pos = 0;
        return has_unused(fn, f);
    case J_AFTER:
        if (c == ',')
            return in_array ? f->count < fn->max_items : fn->free_keys || has_unused(fn, f);
        if (c == '}')
            return in_array || (fn->required & ~f->used) == 0;
        if (c == ']')
            return !in_array || f->count >= fn->min_items;
        return true;
    default:
        return true;
    }
}

/* Cheapest unused property of fn as key, quotes, colon and value, less skip bytes. */
static int64_t cheapest_key(const struct srv_jsonc *j, const struct srv_snode *fn,
                            const struct srv_sframe *f, int64_t skip)
{
    if (fn->free_keys)
        return 4 - skip; /* "":0 */
    int64_t best = INT32_MAX;
    for (int32_t i = 0; i < fn->n_props; i++) {
        if ((f->used >> i) & 1)
            continue;
        int64_t v = (int64_t)fn->key_lens[i] + 3 + node_at(j, fn->prop_node[i])->min_cost;
        best = v < best ? v : best;
    }
    return best - skip;
}

/* What frame d still needs beyond its closer. innermost: d holds the byte position, whose
 * JSON mode (mode) may have paid part of it already (json_cost's own guesses: "0" for a
 * pending value, "":0 for a pending key). */
static int64_t frame_need(const struct srv_jsonc *j, int32_t d, bool innermost, int mode)
{
    const struct srv_sframe *f = &j->fr[d];
    const struct srv_snode *n = node_at(j, f->node);
    if ((j->arrays >> d) & 1u) {
        int64_t m = node_at(j, n->items)->min_cost;
        int64_t missing = (int64_t)n->min_items - f->count;
        if (innermost && mode == J_ARR_FIRST)
            return missing > 0 ? missing * (m + 1) - 1 : 0;
        if (innermost && mode == J_VALUE) /* after ',': the pending item is not counted */
            return (missing > 1 ? (missing - 1) * (m + 1) : 0) + m - 1;
        return missing > 0 ? missing * (m + 1) : 0;
    }
    uint64_t r = n->required & ~f->used;
    int64_t sum = 0;
    for (int32_t i = 0; i < n->n_props; i++)
        if ((r >> i) & 1)
            sum += (int64_t)n->key_lens[i] + 4 + node_at(j, n->prop_node[i])->min_cost;
    if (!innermost)
        return sum;
    switch (mode) {
    case J_OBJ_FIRST:
        return r ? sum - 1 : 0; /* the first property needs no comma */
    case J_KEY:
        return r ? sum - 5 : cheapest_key(j, n, f, 4);
    case J_VALUE:
    case J_COLON:
        return sum + node_at(j, j->val_node)->min_cost - 1;
    default:
        break;
    }
    if (!string_mode(mode) || !j->sub || j->key_ref == -1 || j->ealt_ref >= 0)
        return sum;
    if (j->key_ref == -2) /* the opening quote is typed; json_cost counts `":0` */
        return r ? sum - 5 : cheapest_key(j, n, f, 4);
    int32_t k = j->key_ref;
    int64_t own = (int64_t)n->key_lens[k] + 4 + node_at(j, n->prop_node[k])->min_cost;
    int64_t rest = (int64_t)n->key_lens[k] - j->key_pos + 2 +
                   node_at(j, n->prop_node[k])->min_cost - 3;
    return ((r >> k) & 1 ? sum - own : sum) + rest;
}

/* The shortest completion under the schema: the JSON cost (the current token, json_cost's
 * guesses, the closers) corrected by what each open frame and the current value need. */
static int64_t schema_cost(const struct srv_jsonc *j, int64_t json)
{
    if (j->mode == J_START)
        return node_at(j, 1)->min_cost;
    if (j->ealt_ref >= 0) { /* the rest of the value, then the frames outside it */
        const char *a = node_at(j, j->cur_node)->alts[j->ealt_ref];
        int64_t x = (int64_t)strlen(a) - j->ealt_pos + j->ealt_depth;
        for (int32_t d = 0; d < j->ealt_depth; d++)
            x += frame_need(j, d, false, J_AFTER);
        return x;
    }
    int64_t x = json;
    if (string_mode(j->mode) && !j->sub) {
        const struct srv_snode *n = node_at(j, j->cur_node);
        int64_t need = n->format ? fmt_len[n->format] : n->min_len;
        x += need > j->s_chars ? need - j->s_chars : 0;
    }
    int32_t depth = j->depth < SRV_SCHEMA_MAX_DEPTH ? j->depth : SRV_SCHEMA_MAX_DEPTH;
    for (int32_t d = 0; d < depth; d++)
        x += frame_need(j, d, d == depth - 1, j->mode);
    return x;
}

bool srv_jsonc_feed(struct srv_jsonc *j, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (j->alt_pos >= 0 && !alt_byte(j, c))
            return false;
        if (j->schema && !schema_byte(j, c))
            return false;
        if (!json_byte(j, c))
            return false;
    }
    return true;
}

/* Shortest completion of the JSON state alone: the current token's rest, then one closer
 * per open container. A key needs ":0" after its quote, an empty value slot needs "0". */
static int32_t json_cost(const struct srv_jsonc *j)
{
    int32_t d = j->depth;
    int32_t str = 1 + (j->sub ? 2 : 0); /* closing quote (+ ":0" for a key) */
    switch (j->mode) {
    case J_START:
        return 2;
    case J_VALUE:
    case J_NUM_MINUS:
    case J_NUM_DOT:
    case J_NUM_E:
    case J_NUM_ESIGN:
        return 1 + d;
    case J_KEY:
        return 4 + d; /* "":0 */
    case J_COLON:
        return 2 + d;
    case J_STR:
        return str + d;
    case J_ESC:
        return 1 + str + d;
    case J_HEX: /* after a high surrogate's digits its low escape "\uDC00" must follow */
        return j->aux + (j->aux <= 2 && j->hi == 2 ? 6 : 0) + str + d;
    case J_LOW_ESC:
        return 6 + str + d;
    case J_LOW_U:
        return 5 + str + d;
    case J_UTF8:
        return j->aux + str + d;
    case J_LIT:
        return (int32_t)strlen(literals[j->sub]) - j->aux + d;
    case J_DONE:
        return 0;
    default:
        return d; /* J_ARR_FIRST, J_OBJ_FIRST, J_AFTER, complete numbers */
    }
}

/* The JSON cost plus the schema's, kept within int32_t. */
static int32_t full_cost(const struct srv_jsonc *j)
{
    int64_t c = json_cost(j);
    if (j->schema && c > 0)
        c = schema_cost(j, c);
    return c > INT32_MAX / 2 ? INT32_MAX / 2 : (int32_t)c;
}

int32_t srv_jsonc_cost(const struct srv_jsonc *j)
{
    if (j->alt_pos < 0)
        return full_cost(j);
    /* spell out the cheapest live alternative, then complete the JSON */
    const char *ref = j->alts[j->alt_ref];
    size_t pos = (size_t)j->alt_pos;
    int32_t best = INT32_MAX;
    for (int32_t k = 0; k < j->n_alts; k++) {
        const char *a = j->alts[k];
        size_t len = strlen(a);
        if (len <= pos || memcmp(a, ref, pos) != 0)
            continue;
        struct srv_jsonc t = *j;
        t.alt_pos = -1;
        int32_t c = INT32_MAX;
        if (srv_jsonc_feed(&t, a + pos, len - pos))
            c = (int32_t)(len - pos) + full_cost(&t);
        best = c < best ? c : best;
    }
    return best;
}
