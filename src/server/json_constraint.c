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

bool srv_jsonc_feed(struct srv_jsonc *j, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (j->alt_pos >= 0 && !alt_byte(j, c))
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

int32_t srv_jsonc_cost(const struct srv_jsonc *j)
{
    if (j->alt_pos < 0)
        return json_cost(j);
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
            c = (int32_t)(len - pos) + json_cost(&t);
        best = c < best ? c : best;
    }
    return best;
}
