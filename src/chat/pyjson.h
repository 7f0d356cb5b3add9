/*
 * pyjson.h - JSON values as Python's json module sees them, for chat rendering.
 *
 * The official Llama chat templates are Jinja programs run by Hugging Face transformers:
 * message fields reach the prompt through Python's str() and through json.dumps (the
 * template's tojson filter). Matching them byte for byte needs what a generic JSON library
 * throws away: whether a number was written as an int or a float (1 vs 1.0), big integers
 * exactly, object keys in order with Python's dict rule for duplicates (the last value
 * wins, at the first key's place). So chat/ keeps its own small tree:
 *
 *   pj_parse      json.loads (strict strings; NaN/Infinity accepted as Python does)
 *   pj_dump       json.dumps(v, ensure_ascii=False, indent=None|n) with Python's separators
 *   pj_str        str(v) of the Python value (repr of dicts/lists/strings inside)
 *
 * Strings are UTF-8 byte runs (\u escapes decoded, surrogate pairs joined) and may hold NUL.
 */
#ifndef HERD_CHAT_PYJSON_H
#define HERD_CHAT_PYJSON_H

#include "base/base.h" /* herd_status, struct herd_buf */

#include <stdbool.h>
#include <stddef.h>

enum pj_type {
    PJ_NULL = 0,
    PJ_FALSE = 1,
    PJ_TRUE = 2,
    PJ_INT = 3,    /* str: the literal digits (a Python int has no size limit) */
    PJ_FLOAT = 4,  /* num */
    PJ_STRING = 5, /* str, len */
    PJ_ARRAY = 6,  /* items[n] */
    PJ_OBJECT = 7, /* keys[n] (PJ_STRING) and items[n] */
};

struct pj_value {
    enum pj_type type;
    char *str;   /* owned, NUL-terminated; INT and STRING */
    size_t len;  /* bytes of str */
    double num;  /* FLOAT */
    size_t n;    /* ARRAY/OBJECT: number of items */
    size_t cap;
    struct pj_value *items; /* owned array of n values */
    struct pj_value *keys;  /* OBJECT: owned array of n strings */
};

/* Parses len bytes (one JSON document, surrounding whitespace allowed) into *out. On failure
 * *out is reset and the message names the byte offset. */
herd_status pj_parse(const char *text, size_t len, struct pj_value *out);
/* Like pj_parse but parses one value at text[*pos] and advances *pos past it (and trailing
 * whitespace); the rest of the text is not looked at. */
herd_status pj_parse_prefix(const char *text, size_t len, size_t *pos, struct pj_value *out);
void pj_free(struct pj_value *v);

/* Value constructors (the tree owns what they make). */
herd_status pj_set_string(struct pj_value *v, const char *s, size_t len);
/* Appends an empty value to an array (key NULL) or object (key given; a duplicate key is
 * replaced in place as a Python dict does); *slot receives it. */
herd_status pj_append(struct pj_value *obj, const char *key, size_t key_len,
                      struct pj_value **slot);

/* The member of an object called key, or NULL. */
const struct pj_value *pj_get(const struct pj_value *obj, const char *key);
bool pj_is_string(const struct pj_value *v);
/* Python truthiness: None, False, 0, 0.0, "", [] and {} are false. */
bool pj_truthy(const struct pj_value *v);
/* Python ==, for the templates' "x == 'name'" and "x in list" tests on strings. */
bool pj_equals_str(const struct pj_value *v, const char *s);

/* json.dumps(v, ensure_ascii=False, indent=indent) with indent < 0 meaning None. */
herd_status pj_dump(struct herd_buf *b, const struct pj_value *v, int indent);
/* str(v) in Python. */
herd_status pj_str(struct herd_buf *b, const struct pj_value *v);
/* Python's repr() of a float (shortest text that reads back to the same double). */
herd_status pj_float_repr(struct herd_buf *b, double d);

#endif /* HERD_CHAT_PYJSON_H */
