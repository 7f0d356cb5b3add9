/*
 * openai.c - OpenAI's HTTP API as JSON: requests in, responses and stream chunks out.
 *
 * Follows the public API reference for /v1/chat/completions and /v1/completions (request
 * fields, the chat.completion / chat.completion.chunk / text_completion objects, the
 * {"error":{message,type,param,code}} shape). Validation is strict about types and ranges
 * of the fields herd uses and ignores fields it does not know (clients send many), so a
 * request either maps exactly onto herd's behaviour or is refused with a 400 that names
 * the field (param). Nothing here touches the model or HTTP: it is tested on its own.
 */
#include "server.h"

#include <math.h>   /* isfinite, floor */
#include <stdio.h>  /* vsnprintf */
#include <stdlib.h> /* strtol */

/* ---------------------------------------------------------------- errors */

void srv_error_set(struct srv_error *e, int http, const char *type, const char *code,
                   const char *param, const char *fmt, ...)
{
    e->http = http;
    e->type = type;
    e->code = code;
    e->param[0] = '\0';
    if (param)
        snprintf(e->param, sizeof e->param, "%s", param);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

char *srv_error_json(const struct srv_error *e)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(root, "error");
    char *out = NULL;
    if (!err)
        goto done;
    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_AddStringToObject(err, "type", e->type ? e->type : "server_error");
    if (e->param[0])
        cJSON_AddStringToObject(err, "param", e->param);
    else
        cJSON_AddNullToObject(err, "param");
    if (e->code)
        cJSON_AddStringToObject(err, "code", e->code);
    else
        cJSON_AddNullToObject(err, "code");
    char *s = cJSON_PrintUnformatted(root);
    if (s) {
        out = herd_strdup(s);
        cJSON_free(s);
    }
done:
    cJSON_Delete(root);
    return out;
}

/* ---------------------------------------------------------------- strict JSON */

/* Whether s (n bytes) holds a \u0000 escape inside a JSON string: cJSON's strings end at
 * a NUL, so such a string would be cut short where cJSON's text is used. */
static bool has_nul_escape(const char *s, size_t n)
{
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        if (!in_str) {
            in_str = s[i] == '"';
            continue;
        }
        if (s[i] == '"') {
            in_str = false;
        } else if (s[i] == '\\' && i + 1 < n) {
            if (s[i + 1] == 'u' && i + 5 < n && !memcmp(s + i + 2, "0000", 4))
                return true;
            i++; /* the escaped character, so \\ and \" do not confuse the scan */
        }
    }
    return false;
}

struct keyed {
    cJSON *item;
    size_t pos;
};

static int keyed_cmp(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    int c = strcmp(x->item->string ? x->item->string : "", y->item->string ? y->item->string : "");
    if (c)
        return c;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Python's json.loads keeps the LAST value of a repeated key, at the place the key first
 * appeared; cJSON keeps every pair and finds the first. Objects are rewritten to Python's
 * view (sorting the keys, so a body with a million keys costs n log n, not n^2). */
static herd_status dedupe_keys(cJSON *node)
{
    if (!cJSON_IsObject(node) && !cJSON_IsArray(node))
        return HERD_OK;
    size_t n = 0;
    for (cJSON *it = node->child; it; it = it->next) {
        herd_status st = dedupe_keys(it);
        if (st != HERD_OK)
            return st;
        n++;
    }
    if (!cJSON_IsObject(node) || n < 2)
        return HERD_OK;
    struct keyed *k = herd_malloc(n * sizeof *k);
    if (!k)
        return herd_fail(HERD_ERR_NOMEM, "cannot check the body's keys");
    size_t i = 0;
    for (cJSON *it = node->child; it; it = it->next, i++)
        k[i] = (struct keyed){it, i};
    qsort(k, n, sizeof *k, keyed_cmp);
    for (size_t a = 0; a < n;) {
        size_t b = a + 1;
        while (b < n && !keyed_cmp(&(struct keyed){k[a].item, 0}, &(struct keyed){k[b].item, 0}))
            b++;
        if (b - a > 1) {
            /* k[a] is the first place, k[b - 1] the last value */
            cJSON *last = cJSON_DetachItemViaPointer(node, k[b - 1].item);
            for (size_t m = a + 1; m + 1 < b; m++)
                cJSON_Delete(cJSON_DetachItemViaPointer(node, k[m].item));
            cJSON_ReplaceItemViaPointer(node, k[a].item, last);
        }
        a = b;
    }
    herd_free(k);
    return HERD_OK;
}

cJSON *srv_json_parse(const char *body, size_t len, bool *has_nul, struct srv_error *e)
{
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (!o) {
        srv_error_set(e, 400, "invalid_request_error", NULL, NULL,
                      "We could not parse the JSON body of your request: expected a JSON "
                      "object.");
        return NULL;
    }
    size_t at = end ? (size_t)(end - body) : len;
    while (at < len && (body[at] == ' ' || body[at] == '\t' || body[at] == '\n' ||
                        body[at] == '\r'))
        at++;
    if (at < len || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        srv_error_set(e, 400, "invalid_request_error", NULL, NULL,
                      at < len ? "We could not parse the JSON body of your request: extra "
                                 "data after the JSON object (at byte %zu)."
                               : "We could not parse the JSON body of your request: expected "
                                 "a JSON object.",
                      at);
        return NULL;
    }
    if (dedupe_keys(o) != HERD_OK) {
        cJSON_Delete(o);
        srv_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    if (has_nul)
        *has_nul = has_nul_escape(body, len);
    return o;
}

/* ---------------------------------------------------------------- request parsing */

void srv_params_free(struct srv_params *p)
{
    herd_free(p->model);
    for (int i = 0; i < p->n_stop; i++)
        herd_free(p->stop[i]);
    herd_free(p->bias_ids);
    herd_free(p->bias_vals);
    herd_free(p->force_prefix);
    for (int i = 0; i < p->n_force_alts; i++)
        herd_free(p->force_alts[i]);
    herd_free(p->force_alts);
    cJSON_Delete(p->body);
    herd_free(p->raw);
    srv_schema_free(p->schema);
    memset(p, 0, sizeof *p);
}

bool srv_bad(struct srv_error *e, const char *param, const char *msg)
{
    srv_error_set(e, 400, "invalid_request_error", NULL, param, "%s", msg);
    return false;
}

const cJSON *srv_field(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return f && !cJSON_IsNull(f) ? f : NULL;
}

static bool get_bool(const cJSON *o, const char *name, bool *out, struct srv_error *e)
{
    const cJSON *f = srv_field(o, name);
    if (!f)
        return true;
    if (!cJSON_IsBool(f))
        return srv_bad(e, name, "expected a boolean");
    *out = cJSON_IsTrue(f);
    return true;
}

static bool get_num(const cJSON *o, const char *name, double lo, double hi, float *out,
                    struct srv_error *e)
{
    const cJSON *f = srv_field(o, name);
    if (!f)
        return true;
    if (!cJSON_IsNumber(f) || !isfinite(f->valuedouble))
        return srv_bad(e, name, "expected a number");
    if (f->valuedouble < lo || f->valuedouble > hi) {
        srv_error_set(e, 400, "invalid_request_error", NULL, name,
                      "%g is out of range: expected %g to %g", f->valuedouble, lo, hi);
        return false;
    }
    *out = (float)f->valuedouble;
    return true;
}

/* Integers arrive as JSON numbers (doubles); refuse fractions and values past 2^53. */
static bool get_int(const cJSON *o, const char *name, double lo, double hi, int64_t *out,
                    bool *present, struct srv_error *e)
{
    const cJSON *f = srv_field(o, name);
    if (!f)
        return true;
    if (!cJSON_IsNumber(f) || !isfinite(f->valuedouble) ||
        floor(f->valuedouble) != f->valuedouble)
        return srv_bad(e, name, "expected an integer");
    if (f->valuedouble < lo || f->valuedouble > hi) {
        srv_error_set(e, 400, "invalid_request_error", NULL, name,
                      "%.0f is out of range: expected %.0f to %.0f", f->valuedouble, lo, hi);
        return false;
    }
    *out = (int64_t)f->valuedouble;
    if (present)
        *present = true;
    return true;
}

static bool parse_stop(const cJSON *o, struct srv_params *p, struct srv_error *e)
{
    const cJSON *f = srv_field(o, "stop");
    if (!f)
        return true;
    if (cJSON_IsString(f)) {
        if (!f->valuestring[0])
            return true;
        p->stop[0] = herd_strdup(f->valuestring);
        p->n_stop = p->stop[0] ? 1 : 0;
        return p->stop[0] ? true : srv_bad(e, "stop", "out of memory");
    }
    if (!cJSON_IsArray(f))
        return srv_bad(e, "stop", "expected a string or an array of strings");
    if (cJSON_GetArraySize(f) > SRV_MAX_STOP)
        return srv_bad(e, "stop", "at most 4 stop sequences are allowed");
    const cJSON *it;
    cJSON_ArrayForEach(it, f) {
        if (!cJSON_IsString(it))
            return srv_bad(e, "stop", "expected a string or an array of strings");
        if (!it->valuestring[0])
            continue;
        p->stop[p->n_stop] = herd_strdup(it->valuestring);
        if (!p->stop[p->n_stop])
            return srv_bad(e, "stop", "out of memory");
        p->n_stop++;
    }
    return true;
}

static bool parse_logit_bias(const cJSON *o, int32_t n_vocab, struct srv_params *p,
                             struct srv_error *e)
{
    const cJSON *f = srv_field(o, "logit_bias");
    if (!f)
        return true;
    if (!cJSON_IsObject(f))
        return srv_bad(e, "logit_bias", "expected an object mapping token ids to numbers");
    int n = cJSON_GetArraySize(f);
    if (n == 0)
        return true;
    if (n > 1024) /* OpenAI's own cap; also bounds the work per sampled token */
        return srv_bad(e, "logit_bias", "at most 1024 entries are allowed");
    p->bias_ids = herd_malloc((size_t)n * sizeof *p->bias_ids);
    p->bias_vals = herd_malloc((size_t)n * sizeof *p->bias_vals);
    if (!p->bias_ids || !p->bias_vals)
        return srv_bad(e, "logit_bias", "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, f) {
        char *end = NULL;
        long id = strtol(it->string, &end, 10);
        if (!it->string[0] || *end || id < 0 || (n_vocab > 0 && id >= n_vocab)) {
            srv_error_set(e, 400, "invalid_request_error", NULL, "logit_bias",
                          "'%.40s' is not a token id of this model (0 to %d)", it->string,
                          n_vocab - 1);
            return false;
        }
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble < -100 ||
            it->valuedouble > 100)
            return srv_bad(e, "logit_bias", "bias values must be numbers from -100 to 100");
        p->bias_ids[p->n_bias] = (int32_t)id;
        p->bias_vals[p->n_bias] = (float)it->valuedouble;
        p->n_bias++;
    }
    return true;
}

static bool valid_role(const char *r)
{
    static const char *const roles[] = {"system", "developer", "user", "assistant", "tool",
                                        "ipython"};
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (!strcmp(r, roles[i]))
            return true;
    return false;
}

/* Content is a string, an array of {"type":"text","text":...} parts, or (assistant with
 * tool_calls only) null. */
static bool check_content(const cJSON *m, const char *role, struct srv_error *e)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (!c || cJSON_IsNull(c)) {
        if (!strcmp(role, "assistant") && srv_field(m, "tool_calls"))
            return true;
        return srv_bad(e, "messages", "each message needs a content");
    }
    if (cJSON_IsString(c))
        return true;
    if (!cJSON_IsArray(c))
        return srv_bad(e, "messages", "content must be a string or an array of parts");
    const cJSON *part;
    cJSON_ArrayForEach(part, c) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type))
            return srv_bad(e, "messages", "each content part needs a type");
        if (strcmp(type->valuestring, "text") != 0)
            return srv_bad(e, "messages", "only text content parts are supported");
        if (!cJSON_IsString(text))
            return srv_bad(e, "messages", "a text part needs a string text");
    }
    return true;
}

static bool check_tool_calls(const cJSON *m, struct srv_error *e)
{
    const cJSON *tc = srv_field(m, "tool_calls");
    if (!tc)
        return true;
    if (!cJSON_IsArray(tc))
        return srv_bad(e, "messages", "tool_calls must be an array");
    const cJSON *it;
    cJSON_ArrayForEach(it, tc) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(it, "function");
        const cJSON *name = fn ? cJSON_GetObjectItemCaseSensitive(fn, "name") : NULL;
        const cJSON *args = fn ? cJSON_GetObjectItemCaseSensitive(fn, "arguments") : NULL;
        if (!cJSON_IsObject(it) || !cJSON_IsString(name) ||
            (args && !cJSON_IsString(args) && !cJSON_IsObject(args)))
            return srv_bad(e, "messages",
                       "each tool call needs function.name and string function.arguments");
    }
    return true;
}

static bool parse_messages(const cJSON *o, struct srv_error *e)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(o, "messages");
    if (!msgs)
        return srv_bad(e, "messages", "'messages' is required");
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
        return srv_bad(e, "messages", "'messages' must be a non-empty array");
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role))
            return srv_bad(e, "messages", "each message must be an object with a string role");
        if (!valid_role(role->valuestring)) {
            srv_error_set(e, 400, "invalid_request_error", NULL, "messages",
                          "unknown role '%.40s'", role->valuestring);
            return false;
        }
        if (!check_content(m, role->valuestring, e) || !check_tool_calls(m, e))
            return false;
    }
    return true;
}

/* name as a JSON string body (escaped, no quotes), followed by tail; owned or NULL. */
static char *quoted_name(const char *name, const char *head, const char *tail)
{
    cJSON *str = cJSON_CreateString(name);
    char *q = str ? cJSON_PrintUnformatted(str) : NULL;
    cJSON_Delete(str);
    if (!q)
        return NULL;
    struct herd_buf b;
    buf_init(&b, 0);
    buf_puts(&b, head);
    buf_append(&b, q + 1, strlen(q) - 2); /* without the quotes */
    buf_puts(&b, tail);
    cJSON_free(q);
    if (b.err != HERD_OK) {
        buf_free(&b);
        return NULL;
    }
    return buf_take(&b, NULL);
}

/* Llama 3.1's JSON tool call is {"name": "<fn>", "parameters": {...}}. A named
 * tool_choice fixes everything up to the arguments' '{'; "required" fixes the opening and
 * lets the model pick the name among the tools' (force_alts). */
#define CALL_HEAD "{\"name\": \""
#define CALL_TAIL "\", \"parameters\": {"

/* A named call's schema: {"name": const, "parameters": the tool's parameters schema}, with
 * the tool schema's $defs/definitions lifted to the top so its $refs resolve. */
static bool call_schema(const cJSON *tool_params, const char *name, struct srv_params *p,
                        struct srv_error *e)
{
    cJSON *w = cJSON_CreateObject();
    cJSON *props = cJSON_AddObjectToObject(w, "properties");
    cJSON *nm = cJSON_AddObjectToObject(props, "name");
    cJSON_AddStringToObject(nm, "const", name);
    cJSON *pa = tool_params ? cJSON_Duplicate(tool_params, true) : cJSON_CreateObject();
    cJSON_AddItemToObject(props, "parameters", pa);
    if (pa && !tool_params)
        cJSON_AddStringToObject(pa, "type", "object");
    static const char *const defs[] = {"$defs", "definitions"};
    for (int i = 0; pa && i < 2; i++) {
        cJSON *d = cJSON_DetachItemFromObjectCaseSensitive(pa, defs[i]);
        if (d)
            cJSON_AddItemToObject(w, defs[i], d);
    }
    cJSON *req = cJSON_AddArrayToObject(w, "required");
    cJSON_AddItemToArray(req, cJSON_CreateString("name"));
    cJSON_AddItemToArray(req, cJSON_CreateString("parameters"));
    cJSON_AddStringToObject(w, "type", "object");
    bool ok = false;
    if (!pa || !req)
        srv_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    else
        ok = srv_schema_compile(w, "tools", &p->schema, e);
    cJSON_Delete(w);
    return ok;
}

static bool force_call(const cJSON *tools, const char *name, struct srv_params *p,
                       struct srv_error *e)
{
    if (name) {
        const cJSON *t;
        cJSON_ArrayForEach(t, tools) {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
            const cJSON *tn = cJSON_GetObjectItemCaseSensitive(fn, "name");
            if (cJSON_IsString(tn) && !strcmp(tn->valuestring, name)) {
                if (!call_schema(srv_field(fn, "parameters"), name, p, e))
                    return false;
                break;
            }
        }
        p->force_prefix = quoted_name(name, CALL_HEAD, CALL_TAIL);
        if (!p->force_prefix)
            goto nomem;
        return true;
    }
    p->force_prefix = herd_strdup(CALL_HEAD);
    int n = cJSON_GetArraySize(tools);
    p->force_alts = herd_calloc((size_t)n, sizeof *p->force_alts);
    if (!p->force_prefix || !p->force_alts)
        goto nomem;
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        const cJSON *tn = cJSON_GetObjectItemCaseSensitive(fn, "name");
        p->force_alts[p->n_force_alts] = quoted_name(tn->valuestring, "", CALL_TAIL);
        if (!p->force_alts[p->n_force_alts])
            goto nomem;
        p->n_force_alts++;
    }
    return true;
nomem:
    srv_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    return false;
}

static bool parse_tools(const cJSON *o, struct srv_params *p, struct srv_error *e)
{
    const cJSON *tools = srv_field(o, "tools");
    const cJSON *choice = srv_field(o, "tool_choice");
    if (tools) {
        if (!cJSON_IsArray(tools))
            return srv_bad(e, "tools", "'tools' must be an array");
        const cJSON *t;
        cJSON_ArrayForEach(t, tools) {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "type");
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
            const cJSON *name = fn ? cJSON_GetObjectItemCaseSensitive(fn, "name") : NULL;
            const cJSON *params = fn ? srv_field(fn, "parameters") : NULL;
            if (!cJSON_IsObject(t) || !cJSON_IsString(type) ||
                strcmp(type->valuestring, "function") != 0 || !cJSON_IsObject(fn) ||
                !cJSON_IsString(name) || !name->valuestring[0])
                return srv_bad(e, "tools", "each tool must be {\"type\":\"function\","
                                       "\"function\":{\"name\":...}}");
            if (params && !cJSON_IsObject(params))
                return srv_bad(e, "tools", "function.parameters must be a JSON schema object");
        }
    }
    bool have_tools = tools && cJSON_GetArraySize(tools) > 0;
    p->tools_active = have_tools;
    if (!choice)
        return true;
    if (cJSON_IsString(choice)) {
        const char *c = choice->valuestring;
        if (!strcmp(c, "none")) {
            p->tools_active = false;
            return true;
        }
        if (strcmp(c, "auto") != 0 && strcmp(c, "required") != 0)
            return srv_bad(e, "tool_choice", "expected none, auto, required or a named function");
        if (!strcmp(c, "auto"))
            return true;
        if (!have_tools)
            return srv_bad(e, "tool_choice", "tool_choice 'required' needs tools");
        return force_call(tools, NULL, p, e);
    }
    const cJSON *fn = cJSON_IsObject(choice) ? srv_field(choice, "function") : NULL;
    const cJSON *name = fn ? cJSON_GetObjectItemCaseSensitive(fn, "name") : NULL;
    if (!cJSON_IsString(name))
        return srv_bad(e, "tool_choice", "expected none, auto, required or a named function");
    if (!have_tools)
        return srv_bad(e, "tool_choice", "a named tool_choice needs tools");
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
        const cJSON *tn = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(t, "function"), "name");
        if (cJSON_IsString(tn) && !strcmp(tn->valuestring, name->valuestring))
            return force_call(tools, name->valuestring, p, e);
    }
    srv_error_set(e, 400, "invalid_request_error", NULL, "tool_choice",
                  "tool_choice names '%.60s', which is not in tools", name->valuestring);
    return false;
}

static bool check_prompt_ids(const cJSON *a, int32_t n_vocab, struct srv_error *e)
{
    if (cJSON_GetArraySize(a) == 0)
        return srv_bad(e, "prompt", "a token-id prompt must not be empty");
    const cJSON *it;
    cJSON_ArrayForEach(it, a) {
        double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (!cJSON_IsNumber(it) || floor(v) != v || v < 0 || (n_vocab > 0 && v >= n_vocab))
            return srv_bad(e, "prompt", "token ids in 'prompt' must be integers below the "
                                    "vocabulary size");
    }
    return true;
}

/* A string, an array of token ids, or a list of either strings or token-id arrays (one
 * choice per prompt, times n). */
static bool parse_prompt(const cJSON *o, int32_t n_vocab, struct srv_error *e)
{
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(o, "prompt");
    if (!pr)
        return srv_bad(e, "prompt", "'prompt' is required");
    if (cJSON_IsString(pr))
        return true;
    if (!cJSON_IsArray(pr) || cJSON_GetArraySize(pr) == 0)
        return srv_bad(e, "prompt", "'prompt' must be a string, an array of token ids, an array "
                                "of strings or an array of token-id arrays");
    const cJSON *first = cJSON_GetArrayItem(pr, 0);
    if (cJSON_IsNumber(first))
        return check_prompt_ids(pr, n_vocab, e);
    bool strings = cJSON_IsString(first);
    const cJSON *it;
    cJSON_ArrayForEach(it, pr) {
        if (strings && !cJSON_IsString(it))
            return srv_bad(e, "prompt", "a list of prompts must hold only strings or only "
                                    "token-id arrays");
        if (!strings && (!cJSON_IsArray(it) || !check_prompt_ids(it, n_vocab, e)))
            return cJSON_IsArray(it) ? false
                                     : srv_bad(e, "prompt", "a list of prompts must hold only "
                                                        "strings or only token-id arrays");
    }
    return true;
}

static bool parse_format(const cJSON *o, struct srv_params *p, struct srv_error *e)
{
    const cJSON *rf = srv_field(o, "response_format");
    if (!rf)
        return true;
    const cJSON *type = cJSON_IsObject(rf) ? cJSON_GetObjectItemCaseSensitive(rf, "type") : NULL;
    if (!cJSON_IsString(type))
        return srv_bad(e, "response_format", "expected {\"type\": \"text\" | \"json_object\" | "
                                         "\"json_schema\"}");
    if (!strcmp(type->valuestring, "json_object")) {
        p->json_object = true;
        return true;
    }
    if (!strcmp(type->valuestring, "json_schema")) {
        const cJSON *js = srv_field(rf, "json_schema");
        const cJSON *sc = js ? srv_field(js, "schema") : NULL;
        if (!cJSON_IsObject(js))
            return srv_bad(e, "response_format", "json_schema needs {\"json_schema\": {\"name\": "
                                             "..., \"schema\": {...}}}");
        if (!sc) { /* no schema: any JSON object */
            p->json_object = true;
            return true;
        }
        return srv_schema_compile(sc, "response_format", &p->schema, e);
    }
    if (strcmp(type->valuestring, "text") != 0)
        return srv_bad(e, "response_format", "supported types are text, json_object and "
                                         "json_schema");
    return true;
}

static bool parse_logprobs(const cJSON *o, struct srv_params *p, struct srv_error *e)
{
    int64_t v = 0;
    if (p->kind == SRV_COMPLETION) {
        /* legacy: logprobs is the number of alternatives (0..5) */
        bool present = false;
        if (!get_int(o, "logprobs", 0, 5, &v, &present, e))
            return false;
        p->logprobs = present;
        p->top_logprobs = (int)v;
        return true;
    }
    if (!get_bool(o, "logprobs", &p->logprobs, e))
        return false;
    bool present = false;
    if (!get_int(o, "top_logprobs", 0, SRV_MAX_TOP_LOGPROBS, &v, &present, e))
        return false;
    if (present && !p->logprobs && v > 0)
        return srv_bad(e, "top_logprobs", "top_logprobs needs logprobs set to true");
    p->top_logprobs = (int)v;
    return true;
}

static bool parse_sampling(const cJSON *o, struct srv_params *p, struct srv_error *e)
{
    p->temperature = -1.0f;
    p->top_p = -1.0f;
    if (!get_num(o, "temperature", 0, 2, &p->temperature, e) ||
        !get_num(o, "top_p", 0, 1, &p->top_p, e) ||
        !get_num(o, "presence_penalty", -2, 2, &p->presence_penalty, e) ||
        !get_num(o, "frequency_penalty", -2, 2, &p->frequency_penalty, e))
        return false;
    int64_t seed = 0;
    /* 2^53: the largest integer a JSON number carries exactly */
    if (!get_int(o, "seed", -9007199254740992.0, 9007199254740992.0, &seed, &p->has_seed, e))
        return false;
    p->seed = (uint64_t)seed;
    int64_t n = 1;
    if (!get_int(o, "n", 1, 128, &n, NULL, e))
        return false;
    p->n = (int32_t)n;
    int64_t best_of = 1;
    if (!get_int(o, "best_of", 1, 128, &best_of, NULL, e))
        return false;
    if (best_of != 1)
        return srv_bad(e, "best_of", "only best_of = 1 is supported");
    return true;
}

static bool parse_limits(const cJSON *o, struct srv_params *p, struct srv_error *e)
{
    int64_t mt = -1;
    bool present = false;
    /* 1 << 30: far past any context, so the context check names the real limit */
    if (!get_int(o, "max_tokens", 1, 1 << 30, &mt, &present, e))
        return false;
    if (p->kind == SRV_CHAT && !get_int(o, "max_completion_tokens", 1, 1 << 30, &mt,
                                        &present, e))
        return false;
    p->max_tokens = present ? (int32_t)mt : -1;
    if (!get_bool(o, "stream", &p->stream, e))
        return false;
    const cJSON *so = srv_field(o, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so))
            return srv_bad(e, "stream_options", "expected an object");
        if (!p->stream)
            return srv_bad(e, "stream_options", "stream_options is only allowed with stream");
        if (!get_bool(so, "include_usage", &p->include_usage, e))
            return false;
    }
    return true;
}

bool srv_parse_request(enum srv_kind kind, const char *body, size_t len, int32_t n_vocab,
                       struct srv_params *p, struct srv_error *e)
{
    memset(p, 0, sizeof *p);
    p->kind = kind;
    bool has_nul = false;
    p->body = srv_json_parse(body, len, &has_nul, e);
    if (!p->body) {
        p->kind = kind;
        return false;
    }
    const cJSON *o = p->body;
    /* chat text is read from the raw bytes (NUL kept, as Python has it); a completion
     * prompt or a stop string comes through cJSON, which would cut it at the NUL */
    if (has_nul && (kind == SRV_COMPLETION || srv_field(o, "stop"))) {
        srv_bad(e, kind == SRV_COMPLETION ? "prompt" : "stop",
            "NUL characters (\\u0000) are not accepted in a completion prompt or a stop "
            "string");
        goto fail;
    }
    const cJSON *model = srv_field(o, "model");
    if (model && !cJSON_IsString(model)) {
        srv_bad(e, "model", "'model' must be a string");
        goto fail;
    }
    if (model) {
        p->model = herd_strdup(model->valuestring);
        if (!p->model) {
            srv_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
            goto fail;
        }
    }
    if (kind == SRV_CHAT) {
        /* The deprecated functions/function_call would be silently ignored (the model would
         * not see the functions): refused, naming the replacement. */
        static const char *const legacy[] = {"functions", "function_call"};
        for (int i = 0; i < 2; i++)
            if (srv_field(o, legacy[i])) {
                srv_error_set(e, 400, "invalid_request_error", NULL, legacy[i],
                              "'%s' is deprecated and not supported: send the functions as "
                              "'tools' ({\"type\": \"function\", \"function\": {...}}) and "
                              "the choice as 'tool_choice'", legacy[i]);
                goto fail;
            }
        if (!parse_messages(o, e) || !parse_tools(o, p, e) || !parse_format(o, p, e))
            goto fail;
        p->raw = herd_malloc(len + 1);
        if (!p->raw) {
            srv_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
            goto fail;
        }
        memcpy(p->raw, body, len);
        p->raw[len] = '\0';
        p->raw_len = len;
    } else {
        if (!parse_prompt(o, n_vocab, e) || !get_bool(o, "echo", &p->echo, e))
            goto fail;
        if (srv_field(o, "suffix")) {
            srv_bad(e, "suffix", "suffix is not supported");
            goto fail;
        }
    }
    if (!parse_limits(o, p, e) || !parse_sampling(o, p, e) || !parse_stop(o, p, e) ||
        !parse_logit_bias(o, n_vocab, p, e) || !parse_logprobs(o, p, e))
        goto fail;
    return true;
fail:
    srv_params_free(p);
    p->kind = kind;
    return false;
}

/* ---------------------------------------------------------------- UTF-8 and logprobs */

/* Length of the UTF-8 sequence starting at s (n bytes left), 0 when not valid there. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    unsigned cp = c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

size_t srv_utf8_valid_prefix(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t l = utf8_seq((const unsigned char *)s + i, n - i);
        if (!l)
            break;
        i += l;
    }
    return i;
}

cJSON *srv_json_text(const char *s, size_t n)
{
    struct herd_buf b;
    buf_init(&b, 0);
    size_t i = 0;
    while (i < n) {
        size_t l = utf8_seq((const unsigned char *)s + i, n - i);
        if (l && !(l == 1 && s[i] == '\0')) {
            buf_append(&b, s + i, l);
            i += l;
        } else {
            buf_puts(&b, l ? "" : "\xEF\xBF\xBD"); /* U+FFFD; a NUL byte is dropped */
            i += l ? l : 1;
        }
    }
    cJSON *out = b.err == HERD_OK ? cJSON_CreateString(b.data ? b.data : "") : NULL;
    buf_free(&b);
    return out;
}

static cJSON *bytes_array(const char *s, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((unsigned char)s[i]));
    return a;
}

cJSON *srv_logprob_entry(const char *tok_bytes, size_t tok_len, float logprob,
                         const float *top_lps, const char *const *top_bytes,
                         const size_t *top_lens, int n_top, int64_t text_offset)
{
    cJSON *e = cJSON_CreateObject();
    if (!e)
        return NULL;
    cJSON_AddItemToObject(e, "token", srv_json_text(tok_bytes, tok_len));
    cJSON_AddNumberToObject(e, "logprob", logprob);
    cJSON_AddItemToObject(e, "bytes", bytes_array(tok_bytes, tok_len));
    cJSON *top = cJSON_AddArrayToObject(e, "top_logprobs");
    for (int i = 0; top && i < n_top; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddItemToObject(t, "token", srv_json_text(top_bytes[i], top_lens[i]));
        cJSON_AddNumberToObject(t, "logprob", top_lps[i]);
        cJSON_AddItemToObject(t, "bytes", bytes_array(top_bytes[i], top_lens[i]));
        cJSON_AddItemToArray(top, t);
    }
    cJSON_AddNumberToObject(e, "text_offset", (double)text_offset);
    return e;
}

/* Chat form: {"content":[entries]}, without herd's text_offset. */
static cJSON *chat_logprobs(cJSON *lp)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *it;
    cJSON_ArrayForEach(it, lp)
        cJSON_DeleteItemFromObjectCaseSensitive(it, "text_offset");
    cJSON_AddItemToObject(o, "content", lp);
    cJSON_AddNullToObject(o, "refusal");
    return o;
}

/* The legacy completions form: parallel arrays and one {token: logprob} map per token. */
static cJSON *completion_logprobs(cJSON *lp)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens");
    cJSON *lps = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs");
    cJSON *offs = cJSON_AddArrayToObject(o, "text_offset");
    cJSON *it;
    cJSON_ArrayForEach(it, lp) {
        cJSON_AddItemToArray(tokens, cJSON_Duplicate(cJSON_GetObjectItem(it, "token"), 1));
        cJSON_AddItemToArray(lps, cJSON_Duplicate(cJSON_GetObjectItem(it, "logprob"), 1));
        cJSON_AddItemToArray(offs, cJSON_Duplicate(cJSON_GetObjectItem(it, "text_offset"), 1));
        cJSON *map = cJSON_CreateObject();
        cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(it, "top_logprobs")) {
            const cJSON *tok = cJSON_GetObjectItem(t, "token");
            const cJSON *v = cJSON_GetObjectItem(t, "logprob");
            if (cJSON_IsString(tok) && !cJSON_GetObjectItem(map, tok->valuestring))
                cJSON_AddNumberToObject(map, tok->valuestring, v ? v->valuedouble : 0);
        }
        cJSON_AddItemToArray(tops, map);
    }
    cJSON_Delete(lp);
    return o;
}

/* ---------------------------------------------------------------- responses */

const char *srv_finish_str(enum srv_finish f)
{
    switch (f) {
    case SRV_FINISH_TOOLS: return "tool_calls";
    case SRV_FINISH_LENGTH: return "length";
    case SRV_FINISH_ERROR: return "error";
    case SRV_FINISH_FILTER: return "content_filter";
    default: return "stop";
    }
}

static cJSON *usage_json(int32_t n_prompt, int32_t n_completion, int32_t n_cached)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", n_completion);
    cJSON_AddNumberToObject(u, "total_tokens", (double)n_prompt + n_completion);
    cJSON *pd = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(pd, "cached_tokens", n_cached);
    return u;
}

static cJSON *envelope(const struct srv_req *r, const char *object)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)r->created);
    cJSON_AddStringToObject(o, "model", r->p.model ? r->p.model : "");
    cJSON_AddStringToObject(o, "system_fingerprint", "herd");
    return o;
}

static char *print_owned(cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s)
        return NULL;
    char *out = herd_strdup(s);
    cJSON_free(s);
    return out;
}

cJSON *srv_choice_json(const struct srv_req *r, const char *text, cJSON *tool_calls,
                       cJSON *lp, enum srv_finish finish)
{
    bool chat = r->p.kind == SRV_CHAT;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", r->index);
    if (chat) {
        cJSON *msg = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        if (tool_calls) {
            if (text[0])
                cJSON_AddItemToObject(msg, "content", srv_json_text(text, strlen(text)));
            else
                cJSON_AddNullToObject(msg, "content");
            cJSON_AddItemToObject(msg, "tool_calls", tool_calls);
        } else {
            cJSON_AddItemToObject(msg, "content", srv_json_text(text, strlen(text)));
        }
        cJSON_AddNullToObject(msg, "refusal");
    } else {
        cJSON_AddItemToObject(c, "text", srv_json_text(text, strlen(text)));
    }
    if (lp)
        cJSON_AddItemToObject(c, "logprobs", chat ? chat_logprobs(lp) : completion_logprobs(lp));
    else
        cJSON_AddNullToObject(c, "logprobs");
    cJSON_AddStringToObject(c, "finish_reason", srv_finish_str(finish));
    if (finish == SRV_FINISH_FILTER && r->filter) /* guard.c: why the answer was cut */
        cJSON_AddItemToObject(c, "content_filter_results", cJSON_Duplicate(r->filter, true));
    return c;
}

char *srv_response_choices(const struct srv_req *r, cJSON *choices, int32_t n_prompt,
                           int32_t n_completion, int32_t n_cached)
{
    cJSON *o = envelope(r, r->p.kind == SRV_CHAT ? "chat.completion" : "text_completion");
    cJSON_AddItemToObject(o, "choices", choices);
    cJSON_AddItemToObject(o, "usage", usage_json(n_prompt, n_completion, n_cached));
    return print_owned(o);
}

char *srv_response_json(const struct srv_req *r, const char *text, cJSON *tool_calls,
                        cJSON *lp, enum srv_finish finish, int32_t n_completion)
{
    cJSON *choices = cJSON_CreateArray();
    cJSON_AddItemToArray(choices, srv_choice_json(r, text, tool_calls, lp, finish));
    return srv_response_choices(r, choices, r->n_prompt, n_completion, r->n_cached);
}

static herd_status sse_event(struct herd_buf *out, cJSON *o)
{
    char *s = print_owned(o);
    if (!s)
        return herd_fail(HERD_ERR_NOMEM, "cannot print a stream chunk");
    buf_puts(out, "data: ");
    buf_puts(out, s);
    herd_status st = buf_puts(out, "\n\n");
    herd_free(s);
    return st;
}

herd_status srv_chunk_sse(struct herd_buf *out, const struct srv_req *r, const char *text,
                          size_t text_len, cJSON *tool_calls, cJSON *lp, bool role_chunk,
                          enum srv_finish finish)
{
    bool chat = r->p.kind == SRV_CHAT;
    cJSON *o = envelope(r, chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, c);
    cJSON_AddNumberToObject(c, "index", r->index);
    if (chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (role_chunk) {
            cJSON_AddStringToObject(d, "role", "assistant");
            if (!tool_calls)
                cJSON_AddStringToObject(d, "content", "");
        }
        if (text && text_len)
            cJSON_AddItemToObject(d, "content", srv_json_text(text, text_len));
        if (tool_calls)
            cJSON_AddItemToObject(d, "tool_calls", tool_calls);
    } else {
        cJSON_AddItemToObject(c, "text", srv_json_text(text ? text : "", text ? text_len : 0));
    }
    if (lp)
        cJSON_AddItemToObject(c, "logprobs", chat ? chat_logprobs(lp) : completion_logprobs(lp));
    else
        cJSON_AddNullToObject(c, "logprobs");
    if (finish == SRV_FINISH_NONE)
        cJSON_AddNullToObject(c, "finish_reason");
    else
        cJSON_AddStringToObject(c, "finish_reason", srv_finish_str(finish));
    if (finish == SRV_FINISH_FILTER && r->filter)
        cJSON_AddItemToObject(c, "content_filter_results", cJSON_Duplicate(r->filter, true));
    if (r->p.include_usage)
        cJSON_AddNullToObject(o, "usage");
    return sse_event(out, o);
}

herd_status srv_usage_sse_totals(struct herd_buf *out, const struct srv_req *r,
                                 int32_t n_prompt, int32_t n_completion, int32_t n_cached)
{
    cJSON *o = envelope(r, r->p.kind == SRV_CHAT ? "chat.completion.chunk" : "text_completion");
    cJSON_AddArrayToObject(o, "choices");
    cJSON_AddItemToObject(o, "usage", usage_json(n_prompt, n_completion, n_cached));
    return sse_event(out, o);
}

herd_status srv_usage_sse(struct herd_buf *out, const struct srv_req *r, int32_t n_completion)
{
    return srv_usage_sse_totals(out, r, r->n_prompt, n_completion, r->n_cached);
}

/* ---------------------------------------------------------------- stop strings */

long srv_stop_scan(const char *h, size_t n, char *const *stop, int n_stop, size_t *safe)
{
    long first = -1;
    for (int i = 0; i < n_stop; i++) {
        size_t sl = strlen(stop[i]);
        for (size_t at = 0; sl && at + sl <= n; at++) {
            if (first >= 0 && (long)at >= first)
                break;
            if (!memcmp(h + at, stop[i], sl)) {
                first = (long)at;
                break;
            }
        }
    }
    if (first >= 0) {
        *safe = (size_t)first;
        return first;
    }
    /* hold back the longest tail that is a proper prefix of some stop string */
    size_t hold = 0;
    for (int i = 0; i < n_stop; i++) {
        size_t sl = strlen(stop[i]);
        for (size_t k = sl ? sl - 1 : 0; k > hold; k--) {
            if (k <= n && !memcmp(h + n - k, stop[i], k)) {
                hold = k;
                break;
            }
        }
    }
    *safe = n - hold;
    return -1;
}
