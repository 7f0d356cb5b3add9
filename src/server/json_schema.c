/*
 * json_schema.c - JSON Schema compiled into the nodes json_constraint.c follows byte by
 * byte, so that constrained output is valid against the schema by construction.
 *
 * Follows JSON Schema 2020-12 (and draft 7's "definitions"), the subset a generator can
 * hold output to cheaply: type (one or a list), properties, required, additionalProperties
 * (true/false: only declared properties are generated either way), enum, const, items,
 * minItems, maxItems, minLength, maxLength, format (date, time, date-time, uuid, as fixed
 * templates that are valid values), anyOf/oneOf whose branches differ in JSON type (the
 * value's first byte picks the branch: Optional[X] is anyOf [X, null]), allOf of one
 * schema, $ref to "#", "#/$defs/..." or "#/definitions/..." (recursion allowed). Annotations
 * (title, description, default, examples, ...) are ignored. Any other keyword, or a form of
 * a supported one that herd cannot enforce, is refused with a 400 that names it: never
 * ignored silently. An object without declared properties takes any keys and values.
 * Node 0 is "any value", node 1 the root; nodes reference each other by index.
 */
#include "server.h"

#include <limits.h> /* INT32_MAX */
#include <stdio.h>  /* snprintf */

#define MAX_NODES 2048 /* a schema past this is refused (int16_t node indices) */
#define MAX_REFS 256
#define COST_INF (1 << 24) /* a value that cannot be completed (unsatisfiable recursion) */

struct compiler {
    const cJSON *root;
    struct srv_schema *s;
    int32_t cap;
    const cJSON *ref_src[MAX_REFS]; /* $ref targets compiled so far, and their nodes */
    int16_t ref_node[MAX_REFS];
    int n_refs;
    const char *param;
    struct srv_error *err;
};

static bool fail(struct compiler *c, const char *fmt, const char *what)
{
    srv_error_set(c->err, 400, "invalid_request_error", NULL, c->param, fmt, what);
    return false;
}

static int16_t new_node(struct compiler *c)
{
    if (c->s->n >= MAX_NODES) {
        fail(c, "the schema is too large (more than %s nodes)", "2048");
        return -1;
    }
    if (c->s->n == c->cap) {
        int32_t cap = c->cap ? c->cap * 2 : 16;
        struct srv_snode *v = herd_realloc(c->s->nodes, (size_t)cap * sizeof *v);
        if (!v) {
            srv_error_set(c->err, 500, "server_error", NULL, NULL, "out of memory");
            return -1;
        }
        c->s->nodes = v;
        c->cap = cap;
    }
    struct srv_snode *n = &c->s->nodes[c->s->n];
    memset(n, 0, sizeof *n);
    n->types = SRV_ST_ANY;
    for (int k = 0; k < 6; k++)
        n->branch[k] = -1;
    n->items = SRV_SCHEMA_ANY;
    n->max_items = INT32_MAX;
    n->max_len = INT32_MAX;
    return (int16_t)c->s->n++;
}

/* The JSON type bits a first-byte class covers. */
static const uint8_t class_types[6] = {SRV_ST_OBJECT, SRV_ST_ARRAY, SRV_ST_STRING,
                                       SRV_ST_NUMBER | SRV_ST_INTEGER, SRV_ST_BOOLEAN,
                                       SRV_ST_NULL};

static bool type_bits(struct compiler *c, const cJSON *t, uint8_t *out)
{
    static const char *const names[] = {"object", "array", "string", "number", "integer",
                                        "boolean", "null"};
    static const uint8_t bits[] = {SRV_ST_OBJECT, SRV_ST_ARRAY, SRV_ST_STRING,
                                   SRV_ST_NUMBER | SRV_ST_INTEGER, SRV_ST_INTEGER,
                                   SRV_ST_BOOLEAN, SRV_ST_NULL};
    const cJSON *one = t;
    bool list = cJSON_IsArray(t);
    *out = 0;
    if (list)
        one = t->child;
    for (; one; one = list ? one->next : NULL) {
        size_t k = 0;
        while (k < 7 && !(cJSON_IsString(one) && !strcmp(one->valuestring, names[k])))
            k++;
        if (k == 7)
            return fail(c, "unknown schema type %s", cJSON_IsString(one) ? one->valuestring
                                                                         : "(not a string)");
        *out |= bits[k];
    }
    return *out ? true : fail(c, "an empty type list%s", "");
}

static bool get_count(struct compiler *c, const cJSON *v, const char *kw, int32_t *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e6 ||
        v->valuedouble != (double)(int32_t)v->valuedouble)
        return fail(c, "schema keyword %s must be a small non-negative integer", kw);
    *out = (int32_t)v->valuedouble;
    return true;
}

/* A printed JSON string without its quotes (owned), and its length. */
static char *escaped_key(const char *key, size_t *len)
{
    cJSON *str = cJSON_CreateString(key);
    char *q = str ? cJSON_PrintUnformatted(str) : NULL;
    cJSON_Delete(str);
    if (!q)
        return NULL;
    *len = strlen(q) - 2;
    char *k = herd_strndup(q + 1, *len);
    cJSON_free(q);
    return k;
}

static int16_t compile(struct compiler *c, const cJSON *sc, int depth);

static int16_t resolve_ref(struct compiler *c, const char *ref, int depth)
{
    const cJSON *t = NULL;
    if (!strcmp(ref, "#")) {
        t = c->root;
    } else if (!strncmp(ref, "#/$defs/", 8) || !strncmp(ref, "#/definitions/", 14)) {
        const char *name = ref[2] == '$' ? ref + 8 : ref + 14;
        t = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(c->root, ref[2] == '$' ? "$defs" : "definitions"),
            name);
    }
    if (!t) {
        fail(c, "$ref %.100s: only '#', '#/$defs/NAME' and '#/definitions/NAME' within the "
                "schema are supported", ref);
        return -1;
    }
    for (int i = 0; i < c->n_refs; i++)
        if (c->ref_src[i] == t)
            return c->ref_node[i];
    if (t == c->root)
        return 1;
    return compile(c, t, depth + 1);
}

static bool compile_anyof(struct compiler *c, struct srv_snode **np, int16_t self,
                          const cJSON *list, const char *kw, int depth)
{
    if (!cJSON_IsArray(list) || !list->child)
        return fail(c, "schema keyword %s must be a non-empty array", kw);
    uint8_t types = 0;
    for (const cJSON *b = list->child; b; b = b->next) {
        int16_t bi = compile(c, b, depth + 1);
        if (bi < 0)
            return false;
        *np = &c->s->nodes[self]; /* the array may have moved */
        uint8_t bt = c->s->nodes[bi].types;
        if (c->s->nodes[bi].n_alts) { /* an enum branch covers its values' types */
            bt = 0;
            for (int32_t a = 0; a < c->s->nodes[bi].n_alts; a++) {
                char f = c->s->nodes[bi].alts[a][0];
                bt |= f == '{' ? SRV_ST_OBJECT : f == '[' ? SRV_ST_ARRAY
                    : f == '"' ? SRV_ST_STRING : f == 't' || f == 'f' ? SRV_ST_BOOLEAN
                    : f == 'n' ? SRV_ST_NULL : SRV_ST_NUMBER | SRV_ST_INTEGER;
            }
        }
        for (int k = 0; k < 6; k++) {
            if (!(bt & class_types[k]))
                continue;
            if ((*np)->branch[k] >= 0 || (types & class_types[k]))
                return fail(c, "%s branches of the same JSON type are not supported (the "
                               "first byte of a value must pick the branch)", kw);
            (*np)->branch[k] = bi;
        }
        types |= bt;
    }
    (*np)->types = types;
    return true;
}

static bool compile_props(struct compiler *c, int16_t self, const cJSON *props,
                          const cJSON *req, int depth)
{
    int n = cJSON_IsObject(props) ? cJSON_GetArraySize(props) : 0;
    if (props && !cJSON_IsObject(props))
        return fail(c, "schema keyword %s must be an object", "properties");
    int extra = 0;
    const cJSON *r;
    if (req && !cJSON_IsArray(req))
        return fail(c, "schema keyword %s must be an array of names", "required");
    cJSON_ArrayForEach(r, req) {
        if (!cJSON_IsString(r))
            return fail(c, "schema keyword %s must be an array of names", "required");
        if (!cJSON_GetObjectItemCaseSensitive(props, r->valuestring))
            extra++; /* required but not described: any value */
    }
    if (n + extra > SRV_SCHEMA_MAX_PROPS)
        return fail(c, "an object schema with more than %s properties is not supported", "64");
    struct srv_snode *np = &c->s->nodes[self];
    int32_t total = n + extra;
    np->keys = herd_calloc((size_t)total + 1, sizeof *np->keys);
    np->key_lens = herd_calloc((size_t)total + 1, sizeof *np->key_lens);
    np->prop_node = herd_calloc((size_t)total + 1, sizeof *np->prop_node);
    if (!np->keys || !np->key_lens || !np->prop_node) {
        srv_error_set(c->err, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    const cJSON *p;
    cJSON_ArrayForEach(p, props) {
        np = &c->s->nodes[self];
        int32_t i = np->n_props;
        np->keys[i] = escaped_key(p->string, &np->key_lens[i]);
        np->n_props++; /* counted before compiling, so a failure frees the key */
        if (!np->keys[i]) {
            srv_error_set(c->err, 500, "server_error", NULL, NULL, "out of memory");
            return false;
        }
        int16_t pn = compile(c, p, depth + 1);
        if (pn < 0)
            return false;
        c->s->nodes[self].prop_node[i] = pn;
    }
    cJSON_ArrayForEach(r, req) {
        np = &c->s->nodes[self];
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(props, r->valuestring);
        int32_t i = 0;
        if (d) {
            for (const cJSON *q = props->child; q != d; q = q->next)
                i++;
        } else {
            i = np->n_props;
            np->keys[i] = escaped_key(r->valuestring, &np->key_lens[i]);
            np->prop_node[i] = SRV_SCHEMA_ANY;
            np->n_props++;
            if (!np->keys[i]) {
                srv_error_set(c->err, 500, "server_error", NULL, NULL, "out of memory");
                return false;
            }
        }
        np->required |= (uint64_t)1 << i;
    }
    return true;
}

/* Keywords that describe and do not constrain: ignored. */
static bool annotation(const char *k)
{
    static const char *const ann[] = {"title", "description", "default", "examples",
                                      "$schema", "$id", "$comment", "deprecated", "readOnly",
                                      "writeOnly", "$defs", "definitions", "strict",
                                      "additionalProperties", "discriminator"};
    for (size_t i = 0; i < sizeof ann / sizeof ann[0]; i++)
        if (!strcmp(k, ann[i]))
            return true;
    return false;
}

static bool compile_keyword(struct compiler *c, int16_t self, const cJSON *kw, int depth)
{
    struct srv_snode *np = &c->s->nodes[self];
    const char *k = kw->string;
    if (!strcmp(k, "type"))
        return type_bits(c, kw, &np->types);
    if (!strcmp(k, "enum") || !strcmp(k, "const")) {
        bool is_enum = k[0] == 'e';
        if (is_enum && (!cJSON_IsArray(kw) || !kw->child))
            return fail(c, "schema keyword %s must be a non-empty array", "enum");
        int n = is_enum ? cJSON_GetArraySize(kw) : 1;
        np->alts = herd_calloc((size_t)n, sizeof *np->alts);
        if (!np->alts)
            goto nomem;
        const cJSON *v = is_enum ? kw->child : kw;
        for (int i = 0; i < n; i++, v = v->next) {
            char *s = cJSON_PrintUnformatted(v);
            np->alts[i] = s ? herd_strdup(s) : NULL;
            cJSON_free(s);
            if (!np->alts[i])
                goto nomem;
            np->n_alts++;
        }
        return true;
    }
    if (!strcmp(k, "properties") || !strcmp(k, "required"))
        return true; /* together, below */
    if (!strcmp(k, "items")) {
        if (!cJSON_IsObject(kw) && !cJSON_IsBool(kw))
            return fail(c, "schema keyword %s must be one schema (tuples are not supported)",
                        "items");
        int16_t it = compile(c, kw, depth + 1);
        if (it < 0)
            return false;
        c->s->nodes[self].items = it;
        return true;
    }
    if (!strcmp(k, "minItems"))
        return get_count(c, kw, k, &np->min_items);
    if (!strcmp(k, "maxItems"))
        return get_count(c, kw, k, &np->max_items);
    if (!strcmp(k, "minLength"))
        return get_count(c, kw, k, &np->min_len);
    if (!strcmp(k, "maxLength"))
        return get_count(c, kw, k, &np->max_len);
    if (!strcmp(k, "format")) {
        static const char *const fmts[] = {"date", "time", "date-time", "uuid"};
        for (int i = 0; i < 4; i++)
            if (cJSON_IsString(kw) && !strcmp(kw->valuestring, fmts[i])) {
                np->format = (uint8_t)(SRV_FMT_DATE + i);
                return true;
            }
        return fail(c, "schema format '%.60s' is not supported (date, time, date-time and uuid "
                       "are)", cJSON_IsString(kw) ? kw->valuestring : "?");
    }
    if (!strcmp(k, "anyOf") || !strcmp(k, "oneOf"))
        return compile_anyof(c, &np, self, kw, k, depth);
    if (!strcmp(k, "allOf")) {
        if (!cJSON_IsArray(kw) || cJSON_GetArraySize(kw) != 1)
            return fail(c, "schema keyword %s is supported with one schema only", "allOf");
        return true; /* compile() follows it */
    }
    if (annotation(k))
        return true;
    return fail(c, "schema keyword '%.60s' is not supported: herd cannot hold the output to it",
                k);
nomem:
    srv_error_set(c->err, 500, "server_error", NULL, NULL, "out of memory");
    return false;
}

static int16_t compile(struct compiler *c, const cJSON *sc, int depth)
{
    if (depth > 64) {
        fail(c, "the schema nests deeper than %s levels", "64");
        return -1;
    }
    if (cJSON_IsTrue(sc))
        return SRV_SCHEMA_ANY;
    if (!cJSON_IsObject(sc)) {
        fail(c, "a schema must be an object%s", "");
        return -1;
    }
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(sc, "$ref");
    if (ref) {
        if (!cJSON_IsString(ref)) {
            fail(c, "$ref must be a string%s", "");
            return -1;
        }
        return resolve_ref(c, ref->valuestring, depth);
    }
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(sc, "allOf");
    int16_t self = sc == c->root ? 1 : new_node(c);
    if (self < 0)
        return -1;
    if (c->n_refs < MAX_REFS) {
        c->ref_src[c->n_refs] = sc;
        c->ref_node[c->n_refs++] = self;
    }
    const cJSON *kw;
    cJSON_ArrayForEach(kw, sc)
        if (!compile_keyword(c, self, kw, depth))
            return -1;
    if (cJSON_IsArray(all) && cJSON_GetArraySize(all) == 1) {
        int16_t one = compile(c, all->child, depth + 1);
        if (one < 0)
            return -1;
        /* allOf [X] plus annotations is X; constraints beside it are not merged */
        for (const cJSON *k2 = sc->child; k2; k2 = k2->next)
            if (strcmp(k2->string, "allOf") && !annotation(k2->string))
                return fail(c, "allOf beside other keywords ('%.60s') is not supported",
                            k2->string), -1;
        if (self == 1) /* the root is allOf [X]: node 1 follows X wherever a value starts */
            for (int k = 0; k < 6; k++)
                c->s->nodes[1].branch[k] = one;
        return self == 1 ? 1 : one; /* self stays an unused node */
    }
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(sc, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(sc, "required");
    if ((props || req) && !compile_props(c, self, props, req, depth))
        return -1;
    struct srv_snode *np = &c->s->nodes[self];
    const cJSON *ap = cJSON_GetObjectItemCaseSensitive(sc, "additionalProperties");
    if (ap && !cJSON_IsBool(ap))
        return fail(c, "additionalProperties with a schema is not supported%s", ""), -1;
    bool typed = cJSON_GetObjectItemCaseSensitive(sc, "type") != NULL;
    if (!typed && !np->n_alts && !cJSON_GetObjectItemCaseSensitive(sc, "anyOf") &&
        !cJSON_GetObjectItemCaseSensitive(sc, "oneOf")) {
        if (props)
            np->types = SRV_ST_OBJECT;
        else if (cJSON_GetObjectItemCaseSensitive(sc, "items"))
            np->types = SRV_ST_ARRAY;
    }
    np->free_keys = !props && !req;
    if (np->min_items > np->max_items || np->min_len > np->max_len)
        return fail(c, "the schema's minimum is above its maximum%s", ""), -1;
    return self;
}

static const int32_t fmt_len[] = {0, 10, 9, 20, 36};

/* Shortest valid value of every node, by iteration to a fixed point (recursion). */
static void min_costs(struct srv_schema *s)
{
    for (int32_t i = 0; i < s->n; i++)
        s->nodes[i].min_cost = COST_INF;
    s->nodes[SRV_SCHEMA_ANY].min_cost = 1;
    for (int iter = 0; iter < 64; iter++) {
        bool changed = false;
        for (int32_t i = 1; i < s->n; i++) {
            struct srv_snode *n = &s->nodes[i];
            int64_t best = COST_INF;
            for (int32_t a = 0; a < n->n_alts; a++)
                best = (int64_t)strlen(n->alts[a]) < best ? (int64_t)strlen(n->alts[a]) : best;
            for (int k = 0; !n->n_alts && k < 6; k++) {
                if (!(n->types & class_types[k]))
                    continue;
                int64_t v;
                if (n->branch[k] >= 0 && n->branch[k] != i) {
                    v = s->nodes[n->branch[k]].min_cost;
                } else if (k == 0) {
                    v = 2;
                    int nreq = 0;
                    for (int32_t p = 0; p < n->n_props; p++)
                        if ((n->required >> p) & 1) {
                            v += (int64_t)n->key_lens[p] + 3 + s->nodes[n->prop_node[p]].min_cost;
                            v += nreq++ ? 1 : 0;
                        }
                } else if (k == 1) {
                    v = 2 + (int64_t)n->min_items * (s->nodes[n->items].min_cost + 1) -
                        (n->min_items > 0); /* no comma before the first item */
                } else if (k == 2) {
                    v = 2 + (n->format ? fmt_len[n->format] : n->min_len);
                } else {
                    v = k == 3 ? 1 : k == 4 ? 4 : 4;
                }
                best = v < best ? v : best;
            }
            if (best > COST_INF)
                best = COST_INF;
            if (best != n->min_cost) {
                n->min_cost = (int32_t)best;
                changed = true;
            }
        }
        if (!changed)
            break;
    }
}

void srv_schema_free(struct srv_schema *s)
{
    if (!s)
        return;
    for (int32_t i = 0; i < s->n; i++) {
        struct srv_snode *n = &s->nodes[i];
        for (int32_t k = 0; n->keys && k < n->n_props; k++)
            herd_free(n->keys[k]);
        for (int32_t k = 0; n->alts && k < n->n_alts; k++)
            herd_free(n->alts[k]);
        herd_free(n->keys);
        herd_free(n->key_lens);
        herd_free(n->prop_node);
        herd_free(n->alts);
    }
    herd_free(s->nodes);
    herd_free(s);
}

bool srv_schema_compile(const cJSON *schema, const char *param, struct srv_schema **out,
                        struct srv_error *err)
{
    *out = NULL;
    struct compiler c = {.root = schema, .param = param, .err = err};
    c.s = herd_calloc(1, sizeof *c.s);
    if (!c.s) {
        srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    /* node 0: any value; node 1: the root */
    int16_t top = -1;
    if (new_node(&c) < 0 || new_node(&c) < 0 || (top = compile(&c, schema, 0)) < 0)
        goto fail;
    if (top != 1) /* the root is a $ref: node 1 follows it wherever a value starts */
        for (int k = 0; k < 6; k++)
            c.s->nodes[1].branch[k] = top;
    c.s->nodes[SRV_SCHEMA_ANY].free_keys = true;
    const struct srv_snode *root = &c.s->nodes[1];
    bool obj = root->n_alts == 0 && (root->types & SRV_ST_OBJECT) &&
               (root->branch[0] < 0 || (c.s->nodes[root->branch[0]].types & SRV_ST_OBJECT));
    if (!obj) {
        fail(&c, "the schema must describe a JSON object at the top level%s", "");
        goto fail;
    }
    min_costs(c.s);
    if (c.s->nodes[1].min_cost >= COST_INF) {
        fail(&c, "the schema has no finite valid value%s", "");
        goto fail;
    }
    *out = c.s;
    return true;
fail:
    srv_schema_free(c.s);
    return false;
}
