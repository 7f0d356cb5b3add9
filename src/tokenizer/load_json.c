/*
 * load_json.c - Hugging Face tokenizer.json (tokenizers' serialization, version 1.0).
 *
 * Read: model.type (must be "BPE"), model.vocab ({"byte-level token": id}), added_tokens
 * ([{id, content, ...}], all taken as special: matched only with parse_special), the
 * pre_tokenizer (Llama 3's Split regex, or GPT-2's ByteLevel alone or after
 * Digits(individual_digits): merges.c) and the normalizer (must be null). model.merges is
 * skipped for Llama 3 (herd merges by token rank, see tokenizer.h) and read for the GPT-2
 * style ones, with model.unk_token.
 *
 * Llama 3's file is 9 MB, mostly merges; building a cJSON tree of it costs ~70 ms, so the
 * top level and model.vocab are walked by a small cursor scanner here, and only the small
 * added_tokens and pre_tokenizer values go through cJSON.
 */
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h> /* cJSON_ParseWithLength for the small sub-values */

struct js {
    const uint8_t *p, *end;
};

static void js_ws(struct js *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static int js_eat(struct js *j, uint8_t c)
{
    js_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}

/* At '"': moves past the closing quote (memchr to the next quote, then counts the
 * backslashes before it: an odd count escapes it). 0 on success. */
static int js_skip_string(struct js *j)
{
    const uint8_t *p = j->p + 1;
    for (;;) {
        const uint8_t *q = memchr(p, '"', (size_t)(j->end - p));
        if (!q)
            return -1;
        const uint8_t *b = q;
        while (b > p && b[-1] == '\\')
            b--;
        p = q + 1;
        if (((q - b) & 1) == 0) {
            j->p = p;
            return 0;
        }
    }
}

static int js_skip_value(struct js *j)
{
    js_ws(j);
    if (j->p >= j->end)
        return -1;
    if (*j->p == '"')
        return js_skip_string(j);
    if (*j->p == '{' || *j->p == '[') {
        int depth = 0;
        while (j->p < j->end) {
            uint8_t c = *j->p;
            if (c == '"') {
                if (js_skip_string(j))
                    return -1;
                continue;
            }
            j->p++;
            if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0)
                return 0;
        }
        return -1;
    }
    while (j->p < j->end && *j->p != ',' && *j->p != '}' && *j->p != ']' && *j->p != ' ' &&
           *j->p != '\n' && *j->p != '\r' && *j->p != '\t')
        j->p++;
    return 0;
}

static int hex4(const uint8_t *p, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        *v = *v * 16 + (uint32_t)d;
    }
    return 0;
}

static size_t put_utf8(uint8_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a JSON string into out (UTF-8, escapes resolved); returns the length or -1 (bad
 * string or longer than cap - 4). */
static long js_string(struct js *j, uint8_t *out, size_t cap)
{
    if (!js_eat(j, '"'))
        return -1;
    size_t k = 0;
    while (j->p < j->end) {
        uint8_t c = *j->p++;
        if (k + 4 > cap)
            return -1;
        if (c == '"')
            return (long)k;
        if (c != '\\') {
            out[k++] = c;
            continue;
        }
        if (j->p >= j->end)
            return -1;
        c = *j->p++;
        switch (c) {
        case 'n': out[k++] = '\n'; break;
        case 't': out[k++] = '\t'; break;
        case 'r': out[k++] = '\r'; break;
        case 'b': out[k++] = '\b'; break;
        case 'f': out[k++] = '\f'; break;
        case '"': case '\\': case '/': out[k++] = c; break;
        case 'u': {
            uint32_t cp, lo;
            if (j->end - j->p < 4 || hex4(j->p, &cp))
                return -1;
            j->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && j->end - j->p >= 6 && j->p[0] == '\\' &&
                j->p[1] == 'u' && !hex4(j->p + 2, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                j->p += 6;
            }
            k += put_utf8(out + k, cp);
            break;
        }
        default:
            return -1;
        }
    }
    return -1;
}

/* Calls fn for each key of the object at the cursor, with the cursor on the value; fn
 * must consume the value. */
typedef herd_status (*js_member_fn)(void *ctx, const char *key, struct js *j);

static herd_status js_object(struct js *j, js_member_fn fn, void *ctx, const char *what)
{
    if (!js_eat(j, '{'))
        return herd_fail(HERD_ERR_FORMAT, "tokenizer.json: %s is not an object", what);
    if (js_eat(j, '}'))
        return HERD_OK;
    for (;;) {
        uint8_t key[2048]; /* a 256-byte token is up to 512 bytes of byte-level text */
        long kl = js_string(j, key, sizeof(key));
        if (kl < 0 || !js_eat(j, ':'))
            return herd_fail(HERD_ERR_FORMAT, "tokenizer.json: bad key in %s", what);
        key[kl] = '\0';
        herd_status s = fn(ctx, (const char *)key, j);
        if (s)
            return s;
        if (js_eat(j, ','))
            continue;
        if (js_eat(j, '}'))
            return HERD_OK;
        return herd_fail(HERD_ERR_FORMAT, "tokenizer.json: expected ',' or '}' in %s", what);
    }
}

struct span {
    const uint8_t *p;
    size_t n;
};

struct vocab_entry {
    uint32_t off, len;
    int32_t id;
};

struct json_ctx {
    struct span model; /* n = 1 once seen */
    struct span vocab, added, pre, normalizer, type, merges, unk;
    int pre_kind;      /* enum tok_pre */
    /* model.vocab decoded */
    struct vocab_entry *ve;
    size_t n_ve, cap_ve;
    uint8_t *vb;
    size_t n_vb, cap_vb;
    int32_t max_id;
};

static herd_status take_span(struct js *j, struct span *sp)
{
    js_ws(j);
    sp->p = j->p;
    if (js_skip_value(j))
        return herd_fail(HERD_ERR_FORMAT, "tokenizer.json: truncated value");
    sp->n = (size_t)(j->p - sp->p);
    return HERD_OK;
}

static herd_status model_member(void *vctx, const char *key, struct js *j);

static herd_status top_member(void *vctx, const char *key, struct js *j)
{
    struct json_ctx *c = vctx;
    struct span dummy;
    if (strcmp(key, "model") == 0) {
        c->model.n = 1;
        return js_object(j, model_member, c, "model");
    }
    if (strcmp(key, "added_tokens") == 0)
        return take_span(j, &c->added);
    if (strcmp(key, "pre_tokenizer") == 0)
        return take_span(j, &c->pre);
    if (strcmp(key, "normalizer") == 0)
        return take_span(j, &c->normalizer);
    return take_span(j, &dummy);
}

static herd_status model_member(void *vctx, const char *key, struct js *j)
{
    struct json_ctx *c = vctx;
    struct span dummy;
    if (strcmp(key, "vocab") == 0)
        return take_span(j, &c->vocab);
    if (strcmp(key, "type") == 0)
        return take_span(j, &c->type);
    if (strcmp(key, "merges") == 0)
        return take_span(j, &c->merges);
    if (strcmp(key, "unk_token") == 0)
        return take_span(j, &c->unk);
    return take_span(j, &dummy);
}

static herd_status vocab_member(void *vctx, const char *key, struct js *j)
{
    struct json_ctx *c = vctx;
    js_ws(j);
    int64_t id = 0;
    int digits = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9' && digits < 9) {
        id = id * 10 + (*j->p++ - '0');
        digits++;
    }
    if (!digits)
        return herd_fail(HERD_ERR_FORMAT, "tokenizer.json: vocab id of \"%s\" is not a "
                         "non-negative integer", key);
    size_t kl = strlen(key);
    if (kl == 0) /* before any use of c->vb, which is still NULL for a first key */
        return herd_fail(HERD_ERR_FORMAT, "tokenizer.json: vocab entry %lld is the empty "
                         "string", (long long)id);
    if (c->n_ve == c->cap_ve) {
        size_t nc = c->cap_ve ? c->cap_ve * 2 : 4096;
        struct vocab_entry *n = herd_realloc(c->ve, nc * sizeof(*n));
        if (!n)
            return herd_fail(HERD_ERR_NOMEM, "tokenizer.json: out of memory for %zu vocab "
                             "entries", nc);
        c->ve = n;
        c->cap_ve = nc;
    }
    if (c->n_vb + kl > c->cap_vb) {
        size_t nc = c->cap_vb * 2 + kl + 65536;
        uint8_t *n = herd_realloc(c->vb, nc);
        if (!n)
            return herd_fail(HERD_ERR_NOMEM, "tokenizer.json: out of memory for %zu vocab "
                             "bytes", nc);
        c->vb = n;
        c->cap_vb = nc;
    }
    long nb = bytelevel_decode(key, kl, c->vb + c->n_vb);
    if (nb <= 0)
        return herd_fail(HERD_ERR_FORMAT, "tokenizer.json: vocab entry %lld is not byte-level "
                         "BPE text", (long long)id);
    c->ve[c->n_ve++] = (struct vocab_entry){(uint32_t)c->n_vb, (uint32_t)nb, (int32_t)id};
    c->n_vb += (size_t)nb;
    if (id > c->max_id)
        c->max_id = (int32_t)id;
    return HERD_OK;
}

/* The pre-tokenizer must be Llama 3's Split regex (alone or in a Sequence with ByteLevel). */
static int find_llama3_regex(const cJSON *n)
{
    if (!n)
        return 0;
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
    const cJSON *re = pat ? cJSON_GetObjectItemCaseSensitive(pat, "Regex") : NULL;
    if (cJSON_IsString(re) && strcmp(re->valuestring, tok_llama3_pattern_text) == 0)
        return 1;
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(n, "pretokenizers");
    const cJSON *it;
    cJSON_ArrayForEach(it, seq)
        if (find_llama3_regex(it))
            return 1;
    return 0;
}

static bool is_type(const cJSON *n, const char *type)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(n, "type");
    return cJSON_IsString(t) && strcmp(t->valuestring, type) == 0;
}

/* ByteLevel as GPT-2 uses it: its regex on, no prefix space. */
static bool is_gpt2_bytelevel(const cJSON *n)
{
    return is_type(n, "ByteLevel") &&
           !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(n, "use_regex")) &&
           !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n, "add_prefix_space"));
}

/* Which pre-tokenizer of tokenizer.h the file's is: Llama 3's Split regex, or GPT-2's
 * ByteLevel alone or after Digits(individual_digits) (merges.c); -1 for anything else. */
static int pre_kind(const cJSON *pre)
{
    if (find_llama3_regex(pre))
        return TOK_PRE_LLAMA3;
    if (is_gpt2_bytelevel(pre))
        return TOK_PRE_GPT2;
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
    if (is_type(pre, "Sequence") && cJSON_GetArraySize(seq) == 2) {
        const cJSON *d = cJSON_GetArrayItem(seq, 0), *b = cJSON_GetArrayItem(seq, 1);
        if (is_type(d, "Digits") &&
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "individual_digits")) &&
            is_gpt2_bytelevel(b))
            return TOK_PRE_DIGITS_GPT2;
    }
    return -1;
}

static herd_status check_pre(struct json_ctx *c)
{
    if (c->normalizer.n && !(c->normalizer.n == 4 && memcmp(c->normalizer.p, "null", 4) == 0))
        return herd_fail(HERD_ERR_UNSUPPORTED, "tokenizer.json: a normalizer is set; herd "
                         "supports byte-level BPE (Llama 3, GPT-2 style), which has none");
    if (!(c->type.n == 5 && memcmp(c->type.p, "\"BPE\"", 5) == 0))
        return herd_fail(HERD_ERR_UNSUPPORTED, "tokenizer.json: model.type is not \"BPE\"");
    cJSON *pre = cJSON_ParseWithLength((const char *)c->pre.p, c->pre.n);
    c->pre_kind = pre_kind(pre);
    cJSON_Delete(pre);
    if (c->pre_kind < 0)
        return herd_fail(HERD_ERR_UNSUPPORTED, "tokenizer.json: pre_tokenizer is neither Llama "
                         "3's Split regex nor GPT-2's ByteLevel (alone or after Digits)");
    if (c->pre_kind != TOK_PRE_LLAMA3 && !c->merges.n)
        return herd_fail(HERD_ERR_FORMAT, "tokenizer.json: a GPT-2 style tokenizer needs "
                         "model.merges");
    return HERD_OK;
}

/* model.merges ("a b" strings, or [a, b] pairs in newer files) into t (merges.c). */
static herd_status read_merges(const struct json_ctx *c, herd_tokenizer *t)
{
    cJSON *m = cJSON_ParseWithLength((const char *)c->merges.p, c->merges.n);
    size_t n = (size_t)cJSON_GetArraySize(m), total = 0;
    herd_status s = HERD_OK;
    struct gguf_str *list = herd_malloc((n ? n : 1) * sizeof *list);
    char *text = NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, m) {
        const cJSON *a = cJSON_GetArrayItem(it, 0), *b = cJSON_GetArrayItem(it, 1);
        total += cJSON_IsString(it) ? strlen(it->valuestring) + 1
                 : cJSON_IsString(a) && cJSON_IsString(b)
                     ? strlen(a->valuestring) + strlen(b->valuestring) + 2 : 0;
    }
    text = herd_malloc(total ? total : 1);
    if (!cJSON_IsArray(m) || !list || !text) {
        s = cJSON_IsArray(m) ? herd_fail(HERD_ERR_NOMEM, "tokenizer.json: out of memory for "
                                         "%zu merges", n)
                             : herd_fail(HERD_ERR_FORMAT, "tokenizer.json: model.merges is "
                                         "not a list");
        goto done;
    }
    size_t k = 0, at = 0;
    cJSON_ArrayForEach(it, m) {
        const cJSON *a = cJSON_GetArrayItem(it, 0), *b = cJSON_GetArrayItem(it, 1);
        char *start = text + at;
        if (cJSON_IsString(it)) {
            size_t l = strlen(it->valuestring);
            memcpy(start, it->valuestring, l);
            at += l;
        } else if (cJSON_IsString(a) && cJSON_IsString(b)) {
            size_t la = strlen(a->valuestring), lb = strlen(b->valuestring);
            memcpy(start, a->valuestring, la);
            start[la] = ' ';
            memcpy(start + la + 1, b->valuestring, lb);
            at += la + 1 + lb;
        } else {
            s = herd_fail(HERD_ERR_FORMAT, "tokenizer.json: merge %zu is not \"a b\" or "
                          "[a, b]", k);
            goto done;
        }
        list[k].p = start;
        list[k].n = (uint64_t)(text + at - start);
        k++;
    }
    s = tok_set_merges(t, list, k);
done:
    herd_free(list);
    herd_free(text);
    cJSON_Delete(m);
    return s;
}

static herd_status build(struct json_ctx *c, cJSON *added, herd_tokenizer **out)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(content) || id->valuedouble < 0 ||
            id->valuedouble > (1 << 24) || !content->valuestring[0])
            return herd_fail(HERD_ERR_FORMAT, "tokenizer.json: added_tokens entry without a "
                             "valid id and content");
        if (id->valueint > c->max_id)
            c->max_id = id->valueint;
    }
    herd_tokenizer *t = NULL;
    herd_status s = tok_new(c->max_id + 1, &t);
    if (s)
        return s;
    t->pre = c->pre_kind;
    /* GPT-2 style files: no BOS by default (their post-processors add none), and the
     * unknown token, when model.unk_token names one, stands in for bytes without a token */
    t->no_bos = c->pre_kind != TOK_PRE_LLAMA3;
    cJSON *unk = c->unk.n ? cJSON_ParseWithLength((const char *)c->unk.p, c->unk.n) : NULL;
    cJSON_ArrayForEach(it, added) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (cJSON_IsString(unk) && strcmp(content->valuestring, unk->valuestring) == 0)
            t->unk_id = cJSON_GetObjectItemCaseSensitive(it, "id")->valueint;
    }
    cJSON_Delete(unk);
    for (size_t i = 0; i < c->n_ve && !s; i++)
        s = tok_set(t, c->ve[i].id, c->vb + c->ve[i].off, c->ve[i].len, 0);
    cJSON_ArrayForEach(it, added) {
        if (s)
            break;
        int32_t id = cJSON_GetObjectItemCaseSensitive(it, "id")->valueint;
        const char *text = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
        if (t->is_set[id]) {
            /* an added token over a vocab entry: the vocab's bytes stand; GPT-2 style files
             * (SmolLM2) list their control tokens in both, and the added one's special flag
             * makes it a control token, as in HF */
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "special");
            if (c->pre_kind != TOK_PRE_LLAMA3 && cJSON_IsTrue(sp) &&
                t->tmp_len[id] == strlen(text) &&
                memcmp(t->bytes + t->off[id], text, strlen(text)) == 0)
                t->is_special[id] = 1;
            continue;
        }
        s = tok_set(t, id, text, strlen(text), 1);
    }
    if (!s)
        s = tok_finish(t);
    if (!s && c->pre_kind != TOK_PRE_LLAMA3)
        s = read_merges(c, t);
    if (s) {
        herd_tokenizer_free(t);
        return s;
    }
    *out = t;
    return HERD_OK;
}

herd_status tok_load_json(const uint8_t *data, size_t len, herd_tokenizer **out)
{
    *out = NULL;
    struct json_ctx c = {.max_id = -1};
    cJSON *added = NULL;
    struct js j = {data, data + len};
    herd_status s = js_object(&j, top_member, &c, "the top level");
    if (s)
        goto done;
    if (!c.model.n || !c.added.n || !c.pre.n) {
        s = herd_fail(HERD_ERR_FORMAT, "tokenizer.json: missing model, added_tokens or "
                      "pre_tokenizer");
        goto done;
    }
    s = check_pre(&c);
    if (s)
        goto done;
    if (!c.vocab.n) {
        s = herd_fail(HERD_ERR_FORMAT, "tokenizer.json: model.vocab missing");
        goto done;
    }
    struct js jv = {c.vocab.p, c.vocab.p + c.vocab.n};
    s = js_object(&jv, vocab_member, &c, "model.vocab");
    if (s)
        goto done;
    added = cJSON_ParseWithLength((const char *)c.added.p, c.added.n);
    if (!cJSON_IsArray(added)) {
        s = herd_fail(HERD_ERR_FORMAT, "tokenizer.json: added_tokens is not an array");
        goto done;
    }
    s = build(&c, added, out);
done:
    cJSON_Delete(added);
    herd_free(c.ve);
    herd_free(c.vb);
    return s;
}
