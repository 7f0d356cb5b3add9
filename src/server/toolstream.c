/*
 * toolstream.c - streaming a chat answer when tools are offered: content flows as it comes,
 * tool calls go out as OpenAI's delta.tool_calls as soon as the text decides them.
 *
 * The non-stream answer comes from one parse of the whole text (srv_parse_tool_calls: all of
 * the trimmed text must be calls, else it is all content). The stream makes the same call:
 *   - the first non-blank byte decides: '{' (Llama 3.1 JSON call), '[' (3.2 pythonic list)
 *     or <|python_tag|> may start calls and are held; anything else is content, streamed;
 *   - a JSON call {"name": "f", "parameters": {...}} gives its name as soon as the name
 *     string is complete (delta with id, type, name, arguments ""), then the arguments
 *     object's raw bytes while they are exactly what the final answer will say (json.dumps
 *     spacing ", " and ": ", plain escapes, numbers in repr form): the rest when the call
 *     closes. A pythonic call gives its name at '(' and its arguments when it closes;
 *     <|python_tag|> built-ins and code are given at the end;
 *   - when held text turns out not to be calls (before any call went out) it is streamed as
 *     content from its first byte, so the concatenated content equals the non-stream one;
 *   - at the end the whole text is parsed as the non-stream answer is, and whatever of its
 *     calls has not gone out does (ids call_<request id>_<i>, as non-stream).
 * Invariant: what went out for call i (name, arguments prefix) is a prefix of the final
 * call i. The one case the stream cannot take back is text after calls that makes the whole
 * not calls (the non-stream answer is then content only): the stream has sent the calls and
 * then sends the text as content.
 */
#include "server.h"

#include <stdio.h>  /* snprintf */
#include <stdlib.h> /* strtod */

enum { TS_UNDECIDED, TS_CONTENT, TS_CALLS, TS_FAILED };
enum { TS_JSON, TS_PYLIST, TS_TAG };

#define TS_MAX_CALLS 64 /* calls streamed early; past it the rest go out at the end */

struct ts_call {
    bool named;          /* the name delta went out */
    bool closed;         /* its text is complete and the arguments all went out */
    size_t args_sent;    /* bytes of arguments sent */
};

struct srv_toolstream {
    const char *req_id;
    struct herd_buf all; /* every byte generated */
    size_t sent;         /* content: bytes of all streamed; calls: scan position */
    int mode, fmt;
    size_t call_start;   /* where the current call's text starts */
    int n_calls;         /* calls started (the current one included) */
    struct ts_call calls[TS_MAX_CALLS];
    /* the current call's scan */
    size_t scan;         /* next byte to look at */
    int depth;
    bool in_str, esc;
    char quote;
    bool after_list;     /* pythonic: the list closed */
    /* JSON arguments streamed raw: [args_start, ...) of all; -1 when not (yet) located */
    long args_start;
    size_t args_scan;
    int args_depth;
    bool args_str, args_esc, args_stop;
    size_t num_start;    /* a number being read (0 when none: args_start > 0 always) */
    char prev;           /* the last significant byte outside strings */
};

herd_status srv_toolstream_new(const char *req_id, struct srv_toolstream **out)
{
    struct srv_toolstream *ts = herd_calloc(1, sizeof *ts);
    *out = ts;
    if (!ts)
        return herd_fail(HERD_ERR_NOMEM, "cannot allocate the tool-call stream");
    ts->req_id = req_id;
    buf_init(&ts->all, 0);
    ts->args_start = -1;
    return HERD_OK;
}

void srv_toolstream_free(struct srv_toolstream *ts)
{
    if (!ts)
        return;
    buf_free(&ts->all);
    herd_free(ts);
}

static bool blank(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

static const char python_tag[] = "<|python_tag|>";

/* A delta for call i: the head (index, id, type, name) when name is given, and arguments. */
static void add_delta(cJSON **deltas, const char *req_id, int i, const char *name,
                      const char *args, size_t args_len)
{
    if (!*deltas)
        *deltas = cJSON_CreateArray();
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", i);
    if (name) {
        char id[96];
        snprintf(id, sizeof id, "call_%s_%d", req_id, i);
        cJSON_AddStringToObject(c, "id", id);
        cJSON_AddStringToObject(c, "type", "function");
    }
    cJSON *fn = cJSON_AddObjectToObject(c, "function");
    if (name)
        cJSON_AddItemToObject(fn, "name", srv_json_text(name, strlen(name)));
    cJSON_AddItemToObject(fn, "arguments", srv_json_text(args ? args : "", args ? args_len : 0));
    if (*deltas)
        cJSON_AddItemToArray(*deltas, c);
    else
        cJSON_Delete(c);
}

/* ---------------------------------------------------------------- JSON arguments, raw */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Whether a complete JSON number is written as Python's repr writes it (json.dumps). */
static bool canonical_number(const char *s, size_t n)
{
    size_t i = s[0] == '-';
    if (i >= n || !is_digit(s[i]) || (s[i] == '0' && i + 1 < n && is_digit(s[i + 1])))
        return false;
    size_t dot = 0, digits = 0;
    for (size_t k = i; k < n; k++) {
        if (s[k] == '.' && !dot)
            dot = k;
        else if (!is_digit(s[k]))
            return false; /* an exponent: repr's choice of form is not worth guessing */
        else
            digits++;
    }
    if (!dot) /* an int: Python keeps its digits, but -0 is 0 */
        return digits <= 15 && !(i == 1 && s[1] == '0');
    /* a float: repr is the shortest round trip, which for <= 15 significant digits is the
     * text itself without trailing zeros (one kept after '.'), between 1e-4 and 1e16 */
    if (digits > 15 || dot + 1 >= n || (s[n - 1] == '0' && n - dot > 2))
        return false;
    double v = strtod(s, NULL);
    v = v < 0 ? -v : v;
    return v == 0 ? n - i == 3 && s[i] == '0' : v >= 1e-4 && v < 1e16;
}

/* Advances the raw scan of the arguments object; returns how many bytes from args_start
 * are certainly the final arguments' own bytes. Stops for good at the first doubt. */
static size_t args_safe(struct srv_toolstream *ts)
{
    const char *s = ts->all.data;
    size_t end = ts->all.len, start = (size_t)ts->args_start;
    while (!ts->args_stop && ts->args_scan < end) {
        size_t i = ts->args_scan;
        char c = s[i];
        if (ts->num_start) {
            if (is_digit(c) || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E') {
                ts->args_scan++;
                continue;
            }
            if (!canonical_number(s + ts->num_start, i - ts->num_start)) {
                ts->args_stop = true;
                ts->args_scan = ts->num_start;
                break;
            }
            ts->num_start = 0;
            ts->prev = '0';
            continue; /* c is looked at as a byte after the number */
        }
        if (ts->args_str) {
            if (ts->args_esc) {
                ts->args_esc = false;
                /* json.dumps writes these escapes; \/ and \uXXXX it writes otherwise */
                if (!strchr("\"\\nrtbf", c)) {
                    ts->args_stop = true;
                    ts->args_scan = i - 1;
                    break;
                }
            } else if (c == '\\') {
                ts->args_esc = true;
            } else if (c == '"') {
                ts->args_str = false;
                ts->prev = '"';
            }
            ts->args_scan++;
            continue;
        }
        if (c == ' ') {
            /* json.dumps puts exactly one space after ':' and ',', nowhere else */
            if ((ts->prev != ':' && ts->prev != ',') || (i > 0 && s[i - 1] == ' ')) {
                ts->args_stop = true;
                break;
            }
            ts->args_scan++;
            continue;
        }
        if (blank(c) || ((ts->prev == ':' || ts->prev == ',') && s[i - 1] != ' ')) {
            ts->args_stop = true;
            break;
        }
        if (c == '"') {
            ts->args_str = true;
        } else if (c == '-' || is_digit(c)) {
            ts->num_start = i;
        } else if (c == '{' || c == '[') {
            ts->args_depth++;
        } else if (c == '}' || c == ']') {
            ts->args_depth--;
        }
        ts->prev = c;
        ts->args_scan++;
        if (ts->args_depth == 0) {
            ts->args_stop = true; /* the object closed: the call's end gives the rest */
            break;
        }
    }
    size_t upto = ts->num_start ? ts->num_start : ts->args_scan;
    if (ts->args_esc)
        upto--; /* a backslash goes out with the byte it escapes */
    if (upto <= start)
        return 0;
    /* whole UTF-8 characters only: each piece is a JSON string of its own */
    return srv_utf8_valid_prefix(s + start, upto - start);
}

/* After the name string: , "parameters": { — locates the arguments object. */
static void find_args(struct srv_toolstream *ts, size_t from)
{
    const char *s = ts->all.data;
    size_t n = ts->all.len, i = from;
    while (i < n && blank(s[i]))
        i++;
    if (i >= n || s[i] != ',')
        return;
    i++;
    while (i < n && blank(s[i]))
        i++;
    static const char *const keys[] = {"\"parameters\"", "\"arguments\""};
    for (int k = 0; k < 2; k++) {
        size_t kl = strlen(keys[k]);
        if (i + kl > n || memcmp(s + i, keys[k], kl) != 0)
            continue;
        size_t j = i + kl;
        while (j < n && blank(s[j]))
            j++;
        if (j >= n || s[j] != ':')
            return;
        j++;
        while (j < n && blank(s[j]))
            j++;
        if (j < n && s[j] == '{') {
            ts->args_start = (long)j;
            ts->args_scan = j;
        }
        return;
    }
}

/* {"name": "<string>" at the call's start: the decoded name (owned) and where it ends. */
static char *json_name(struct srv_toolstream *ts, size_t *after)
{
    const char *s = ts->all.data;
    size_t n = ts->all.len, i = ts->call_start + 1;
    while (i < n && blank(s[i]))
        i++;
    if (i + 6 > n || memcmp(s + i, "\"name\"", 6) != 0)
        return NULL;
    i += 6;
    while (i < n && blank(s[i]))
        i++;
    if (i >= n || s[i] != ':')
        return NULL;
    i++;
    while (i < n && blank(s[i]))
        i++;
    if (i >= n || s[i] != '"')
        return NULL;
    size_t q = i + 1;
    while (q < n && s[q] != '"')
        q += s[q] == '\\' ? 2 : 1;
    if (q >= n)
        return NULL;
    cJSON *str = cJSON_ParseWithLength(s + i, q + 1 - i);
    char *name = cJSON_IsString(str) && str->valuestring[0] ? herd_strdup(str->valuestring)
                                                            : NULL;
    cJSON_Delete(str);
    *after = q + 1;
    return name;
}

/* ---------------------------------------------------------------- calls */

/* The final form of one complete call's text (wrapped for a pythonic call), or NULL. */
static cJSON *parse_one(struct srv_toolstream *ts, size_t from, size_t to)
{
    struct herd_buf b;
    buf_init(&b, 0);
    if (ts->fmt == TS_PYLIST)
        buf_puts(&b, "[");
    buf_append(&b, ts->all.data + from, to - from);
    if (ts->fmt == TS_PYLIST)
        buf_puts(&b, "]");
    char *content = NULL;
    cJSON *calls = b.err == HERD_OK ? srv_parse_tool_calls(b.data, b.len, ts->req_id,
                                                           &content)
                                    : NULL;
    herd_free(content);
    buf_free(&b);
    if (calls && cJSON_GetArraySize(calls) != 1) {
        cJSON_Delete(calls);
        calls = NULL;
    }
    return calls;
}

/* The current call's text closed at end: send what of it has not gone out. */
static bool close_call(struct srv_toolstream *ts, size_t end, cJSON **deltas)
{
    cJSON *calls = parse_one(ts, ts->call_start, end);
    if (!calls)
        return false;
    int i = ts->n_calls - 1;
    struct ts_call *tc = &ts->calls[i];
    const cJSON *fn = cJSON_GetObjectItem(cJSON_GetArrayItem(calls, 0), "function");
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(fn, "name"));
    const char *args = cJSON_GetStringValue(cJSON_GetObjectItem(fn, "arguments"));
    size_t al = args ? strlen(args) : 0;
    if (tc->args_sent > al)
        tc->args_sent = al; /* cannot happen when the raw scan is right; keeps it in range */
    add_delta(deltas, ts->req_id, i, tc->named ? NULL : name, args ? args + tc->args_sent : "",
              al - tc->args_sent);
    tc->named = true;
    tc->args_sent = al;
    tc->closed = true;
    cJSON_Delete(calls);
    return true;
}

static void start_call(struct srv_toolstream *ts, size_t at)
{
    ts->call_start = at;
    ts->scan = at;
    ts->depth = 0;
    ts->in_str = ts->esc = false;
    ts->args_start = -1;
    ts->args_depth = 0;
    ts->args_str = ts->args_esc = ts->args_stop = false;
    ts->num_start = 0;
    ts->prev = 0;
    if (ts->n_calls < TS_MAX_CALLS)
        memset(&ts->calls[ts->n_calls], 0, sizeof ts->calls[0]);
    ts->n_calls++;
}

/* Scans the current call's text for its end (strings and brackets); returns the end
 * offset or 0 while it is open. Python strings may use either quote. */
static size_t call_end(struct srv_toolstream *ts)
{
    const char *s = ts->all.data;
    for (; ts->scan < ts->all.len; ts->scan++) {
        char c = s[ts->scan];
        if (ts->in_str) {
            if (ts->esc)
                ts->esc = false;
            else if (c == '\\')
                ts->esc = true;
            else if (c == ts->quote)
                ts->in_str = false;
            continue;
        }
        if (c == '"' || (c == '\'' && ts->fmt == TS_PYLIST)) {
            ts->in_str = true;
            ts->quote = c;
        } else if (c == '{' || c == '[' || c == '(') {
            ts->depth++;
        } else if (c == '}' || c == ']' || c == ')') {
            if (--ts->depth == 0)
                return ++ts->scan;
        }
    }
    return 0;
}

/* The pythonic call's name: identifier (dots allowed) then '('. 1: got it, 0: not yet,
 * -1: not a call. */
static int py_name(struct srv_toolstream *ts, char **name)
{
    const char *s = ts->all.data;
    size_t n = ts->all.len, i = ts->call_start;
    size_t a = i;
    while (i < n && (is_digit(s[i]) || s[i] == '_' || s[i] == '.' ||
                     (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
        i++;
    if (i == a && i < n)
        return -1;
    if (i < n && is_digit(s[a]))
        return -1;
    size_t b = i;
    while (i < n && blank(s[i]))
        i++;
    if (i >= n)
        return 0;
    if (s[i] != '(' || b == a)
        return -1;
    *name = herd_strndup(s + a, b - a);
    return *name ? 1 : -1;
}

/* Advances through held call text; false when it cannot be calls after all. */
static bool calls_step(struct srv_toolstream *ts, cJSON **deltas)
{
    const char *s = ts->all.data;
    size_t n = ts->all.len;
    for (;;) {
        if (ts->fmt == TS_TAG)
            return true; /* built-ins and code: at the end */
        int i = ts->n_calls - 1;
        struct ts_call *tc = i >= 0 && i < TS_MAX_CALLS ? &ts->calls[i] : NULL;
        if (tc && !tc->closed) {
            if (!tc->named) {
                char *name = NULL;
                size_t after = 0;
                if (ts->fmt == TS_JSON) {
                    name = json_name(ts, &after);
                } else {
                    int r = py_name(ts, &name);
                    if (r < 0)
                        return false;
                }
                if (name) {
                    add_delta(deltas, ts->req_id, i, name, "", 0);
                    tc->named = true;
                    herd_free(name);
                    if (ts->fmt == TS_JSON)
                        find_args(ts, after);
                    if (ts->fmt == TS_PYLIST)
                        ts->scan = ts->call_start;
                }
            } else if (ts->fmt == TS_JSON && ts->args_start < 0) {
                size_t after = 0;
                char *name = json_name(ts, &after);
                herd_free(name);
                find_args(ts, after);
            }
            if (tc->named && ts->args_start >= 0) {
                size_t safe = args_safe(ts);
                if (safe > tc->args_sent) {
                    add_delta(deltas, ts->req_id, i, NULL,
                              s + ts->args_start + tc->args_sent, safe - tc->args_sent);
                    tc->args_sent = safe;
                }
            }
            size_t end = call_end(ts);
            if (!end)
                return true;
            if (!close_call(ts, end, deltas))
                return false;
            ts->sent = end;
            continue;
        }
        /* between calls: JSON calls split by ';', a pythonic list by ',' up to ']' */
        size_t j = tc || i >= TS_MAX_CALLS ? ts->sent : ts->call_start;
        while (j < n && (blank(s[j]) || (ts->fmt == TS_JSON && s[j] == ';')))
            j++;
        if (j >= n)
            return true;
        if (i >= TS_MAX_CALLS)
            return true; /* the rest goes out at the end */
        if (ts->fmt == TS_JSON) {
            if (s[j] != '{')
                return false;
            start_call(ts, j);
            continue;
        }
        if (ts->after_list)
            return false; /* text after the list */
        if (s[j] == ']') {
            ts->after_list = true;
            ts->sent = j + 1;
            continue;
        }
        if (s[j] != ',')
            return false;
        size_t k = j + 1;
        while (k < n && blank(s[k]))
            k++;
        if (k >= n)
            return true;
        start_call(ts, k);
    }
}

herd_status srv_toolstream_feed(struct srv_toolstream *ts, const char *s, size_t n,
                                struct herd_buf *content, cJSON **deltas)
{
    if (buf_append(&ts->all, s, n) != HERD_OK)
        return ts->all.err;
    const char *a = ts->all.data;
    size_t len = ts->all.len;
    if (ts->mode == TS_UNDECIDED) {
        size_t i = 0;
        while (i < len && blank(a[i]))
            i++;
        if (i == len)
            return HERD_OK;
        size_t tl = sizeof python_tag - 1;
        if (a[i] == '{' || a[i] == '[') {
            ts->mode = TS_CALLS;
            ts->fmt = a[i] == '{' ? TS_JSON : TS_PYLIST;
            ts->sent = 0;
            if (ts->fmt == TS_JSON) {
                start_call(ts, i);
            } else {
                size_t k = i + 1;
                while (k < len && blank(a[k]))
                    k++;
                if (k >= len) {
                    ts->mode = TS_UNDECIDED; /* '[' and blanks: wait for the next byte */
                    return HERD_OK;
                }
                start_call(ts, k);
            }
        } else if (len - i < tl && !memcmp(a + i, python_tag, len - i)) {
            return HERD_OK; /* maybe the tag, still arriving */
        } else if (len - i >= tl && !memcmp(a + i, python_tag, tl)) {
            ts->mode = TS_CALLS;
            ts->fmt = TS_TAG;
        } else {
            ts->mode = TS_CONTENT;
        }
    }
    if (ts->mode == TS_CALLS && !calls_step(ts, deltas)) {
        /* not calls after all: from its first byte it is content, unless a call went out */
        ts->mode = ts->n_calls > 0 && ts->calls[0].named ? TS_FAILED : TS_CONTENT;
        ts->sent = 0;
    }
    if (ts->mode == TS_CONTENT) {
        buf_append(content, a + ts->sent, len - ts->sent);
        ts->sent = len;
    }
    return content->err;
}

herd_status srv_toolstream_finish(struct srv_toolstream *ts, struct herd_buf *content,
                                  cJSON **deltas, bool *has_calls)
{
    *has_calls = false;
    if (ts->mode == TS_CONTENT)
        return HERD_OK;
    char *rest = NULL;
    cJSON *calls = srv_parse_tool_calls(ts->all.data ? ts->all.data : "", ts->all.len,
                                        ts->req_id, &rest);
    herd_free(rest);
    if (!calls) {
        /* all content (held blanks, text that looked like a call, or calls with text after
         * them: see the file comment) */
        buf_append(content, ts->all.data ? ts->all.data : "", ts->all.len);
        return content->err;
    }
    *has_calls = true;
    int i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, calls) {
        const cJSON *fn = cJSON_GetObjectItem(c, "function");
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(fn, "name"));
        const char *args = cJSON_GetStringValue(cJSON_GetObjectItem(fn, "arguments"));
        size_t al = args ? strlen(args) : 0;
        struct ts_call *tc = i < TS_MAX_CALLS && i < ts->n_calls ? &ts->calls[i] : NULL;
        if (!tc || !tc->named) {
            add_delta(deltas, ts->req_id, i, name, args, al);
        } else if (!tc->closed && tc->args_sent <= al) {
            if (tc->args_sent < al)
                add_delta(deltas, ts->req_id, i, NULL, args + tc->args_sent,
                          al - tc->args_sent);
        }
        i++;
    }
    cJSON_Delete(calls);
    return HERD_OK;
}
