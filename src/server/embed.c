/*
 * embed.c - POST /v1/embeddings in OpenAI's shape: the request (input as a string, a list of
 * strings, a token array or a list of token arrays; encoding_format float or base64;
 * dimensions; herd's "pooling" extension), the inputs as token ids, and the response
 * {"object":"list","data":[{"object":"embedding","index","embedding"}],"model","usage"}.
 *
 * The vectors themselves are made by the scheduler (sched.c): each input is run through the
 * model in a slot, like a prompt, with herd_decode_hidden asking for the final hidden state
 * (after the final RMSNorm, before the output projection) of its tokens, and pooled: the
 * mean of every token's row (default) or the last token's row, then L2-normalised
 * (srv_embed_finish). No model here beyond the tokenizer.
 */
#include "server.h"

#include <math.h> /* floor, sqrt */


/* A token array: non-empty, integers in the vocabulary. */
static bool check_ids(const cJSON *a, int32_t n_vocab, int idx, struct srv_error *e)
{
    if (cJSON_GetArraySize(a) == 0) {
        srv_error_set(e, 400, "invalid_request_error", NULL, "input",
                      "input %d is empty: every input needs at least one token", idx);
        return false;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, a) {
        double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (!cJSON_IsNumber(it) || floor(v) != v || v < 0 || v >= n_vocab) {
            srv_error_set(e, 400, "invalid_request_error", NULL, "input",
                          "input %d: token ids must be integers in [0, %d)", idx, n_vocab);
            return false;
        }
    }
    return true;
}

/* The shape of input: 0 a string, 1 a list of strings, 2 one token array, 3 a list of token
 * arrays; -1 (err set) when it is none of them or holds an empty input. */
static int input_shape(const cJSON *in, int32_t n_vocab, struct srv_error *e)
{
    static const char shapes[] = "'input' must be a string, an array of strings, an array of "
                                 "token ids or an array of token-id arrays";
    if (!in)
        return srv_bad(e, "input", "'input' is required"), -1;
    if (cJSON_IsString(in)) {
        if (!in->valuestring[0])
            return srv_bad(e, "input", "input 0 is empty: an empty string has no embedding"), -1;
        return 0;
    }
    if (!cJSON_IsArray(in))
        return srv_bad(e, "input", shapes), -1;
    int n = cJSON_GetArraySize(in);
    if (n == 0)
        return srv_bad(e, "input", "'input' is an empty array"), -1;
    const cJSON *first = cJSON_GetArrayItem(in, 0);
    if (cJSON_IsNumber(first))
        return check_ids(in, n_vocab, 0, e) ? 2 : -1;
    if (n > SRV_MAX_EMBED_INPUTS) {
        srv_error_set(e, 400, "invalid_request_error", NULL, "input",
                      "'input' has %d items; at most %d per request", n, SRV_MAX_EMBED_INPUTS);
        return -1;
    }
    int shape = cJSON_IsString(first) ? 1 : cJSON_IsArray(first) ? 3 : -1;
    if (shape < 0)
        return srv_bad(e, "input", shapes), -1;
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, in) {
        if (shape == 1 && !cJSON_IsString(it))
            return srv_bad(e, "input", "a list of strings must hold only strings"), -1;
        if (shape == 3 && !cJSON_IsArray(it))
            return srv_bad(e, "input", "a list of token arrays must hold only arrays"), -1;
        if (shape == 1 && !it->valuestring[0]) {
            srv_error_set(e, 400, "invalid_request_error", NULL, "input",
                          "input %d is empty: an empty string has no embedding", i);
            return -1;
        }
        if (shape == 3 && !check_ids(it, n_vocab, i, e))
            return -1;
        i++;
    }
    return shape;
}

bool srv_parse_embed(const char *body, size_t len, int32_t n_vocab, int32_t dim,
                     enum srv_pooling default_pool, struct srv_params *p,
                     struct srv_error *e)
{
    memset(p, 0, sizeof *p);
    p->kind = SRV_EMBED;
    p->pooling = default_pool;
    bool has_nul = false;
    p->body = srv_json_parse(body, len, &has_nul, e);
    if (!p->body)
        return false;
    const cJSON *o = p->body, *f;
    if (has_nul) { /* cJSON's strings end at a NUL: the text would be cut */
        srv_bad(e, "input", "NUL characters (\\u0000) are not accepted in embeddings input");
        goto fail;
    }
    if (input_shape(srv_field(o, "input"), n_vocab, e) < 0)
        goto fail;
    if ((f = srv_field(o, "model"))) {
        if (!cJSON_IsString(f)) {
            srv_bad(e, "model", "'model' must be a string");
            goto fail;
        }
        if (!(p->model = herd_strdup(f->valuestring))) {
            srv_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
            goto fail;
        }
    }
    if ((f = srv_field(o, "encoding_format"))) {
        if (!cJSON_IsString(f) || (strcmp(f->valuestring, "float") != 0 &&
                                   strcmp(f->valuestring, "base64") != 0)) {
            srv_bad(e, "encoding_format", "encoding_format must be \"float\" or \"base64\"");
            goto fail;
        }
        p->base64 = !strcmp(f->valuestring, "base64");
    }
    if ((f = srv_field(o, "dimensions"))) {
        /* Llama's hidden state is not trained for truncation (as Matryoshka embeddings are),
         * so only the model's own size is accepted */
        if (!cJSON_IsNumber(f) || f->valuedouble != dim) {
            srv_error_set(e, 400, "invalid_request_error", NULL, "dimensions",
                          "this model's embeddings have %d dimensions; 'dimensions' must be "
                          "%d or left out", dim, dim);
            goto fail;
        }
    }
    if ((f = srv_field(o, "pooling"))) {
        if (!cJSON_IsString(f) || (strcmp(f->valuestring, "mean") != 0 &&
                                   strcmp(f->valuestring, "last") != 0)) {
            srv_bad(e, "pooling", "pooling must be \"mean\" or \"last\"");
            goto fail;
        }
        p->pooling = !strcmp(f->valuestring, "last") ? SRV_POOL_LAST : SRV_POOL_MEAN;
    }
    return true;
fail:
    srv_params_free(p);
    p->kind = SRV_EMBED;
    return false;
}

/* Appends one input's ids to r->prompt (grown by doubling) and closes it in in_off. */
static bool add_input(struct srv_req *r, const int32_t *ids, size_t n, size_t *cap,
                      struct srv_error *e)
{
    size_t have = (size_t)r->in_off[r->n_inputs];
    if (have + n > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < have + n)
            c *= 2;
        int32_t *p = herd_realloc(r->prompt, c * sizeof *p);
        if (!p) {
            srv_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
            return false;
        }
        r->prompt = p;
        *cap = c;
    }
    memcpy(r->prompt + have, ids, n * sizeof *ids);
    r->n_inputs++;
    r->in_off[r->n_inputs] = (int32_t)(have + n);
    return true;
}

static bool too_long(int idx, size_t n, int32_t n_ctx, bool at_least, struct srv_error *e)
{
    srv_error_set(e, 400, "invalid_request_error", "context_length_exceeded", "input",
                  "This model's maximum context length is %d tokens. However, input %d has "
                  "%s%zu tokens. Shorten it or split it: inputs are never truncated.",
                  n_ctx, idx, at_least ? "at least " : "", n);
    return false;
}

bool srv_embed_inputs(const herd_tokenizer *tok, int32_t n_ctx, size_t longest,
                      struct srv_req *r, struct srv_error *e)
{
    const cJSON *in = srv_field(r->p.body, "input");
    int n = cJSON_IsArray(in) && !cJSON_IsNumber(cJSON_GetArrayItem(in, 0))
                ? cJSON_GetArraySize(in) : 1;
    r->in_off = herd_calloc((size_t)n + 1, sizeof *r->in_off);
    if (!r->in_off) {
        srv_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    size_t cap = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *it = cJSON_IsString(in) ? in
                          : cJSON_IsNumber(cJSON_GetArrayItem(in, 0)) ? in
                          : cJSON_GetArrayItem(in, i);
        if (cJSON_IsString(it)) {
            size_t len = strlen(it->valuestring);
            size_t at_least = 1 + len / longest + (len % longest != 0);
            if (at_least > (size_t)n_ctx) /* refused before the tokenizer works on it */
                return too_long(i, at_least, n_ctx, true, e);
            int32_t *ids = NULL;
            size_t n_ids = 0;
            if (herd_tokenize(tok, it->valuestring, len, true, false, &ids, &n_ids) != HERD_OK) {
                srv_error_set(e, 400, "invalid_request_error", NULL, "input",
                              "cannot tokenize input %d: %s", i, herd_last_error());
                return false;
            }
            bool ok = n_ids <= (size_t)n_ctx ? add_input(r, ids, n_ids, &cap, e)
                                             : too_long(i, n_ids, n_ctx, false, e);
            herd_free(ids);
            if (!ok)
                return false;
            continue;
        }
        size_t n_ids = (size_t)cJSON_GetArraySize(it);
        if (n_ids > (size_t)n_ctx)
            return too_long(i, n_ids, n_ctx, false, e);
        int32_t *ids = herd_malloc(n_ids * sizeof *ids);
        if (!ids) {
            srv_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
            return false;
        }
        size_t k = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, it)
            ids[k++] = (int32_t)t->valuedouble;
        bool ok = add_input(r, ids, n_ids, &cap, e);
        herd_free(ids);
        if (!ok)
            return false;
    }
    r->n_prompt = r->in_off[r->n_inputs];
    return true;
}

void srv_embed_finish(const double *sum, int32_t n, int32_t dim, float *out)
{
    double ss = 0;
    for (int32_t d = 0; d < dim; d++) {
        double v = sum[d] / (n > 0 ? n : 1);
        ss += v * v;
    }
    double inv = ss > 0 ? 1.0 / sqrt(ss) : 0.0;
    for (int32_t d = 0; d < dim; d++)
        out[d] = (float)(sum[d] / (n > 0 ? n : 1) * inv);
}

/* The float32 values as little-endian bytes in base64, as the openai client decodes them
 * (numpy.frombuffer(base64.b64decode(s), dtype="float32")). */
static uint8_t le_byte(const float *v, size_t at)
{
    uint32_t bits;
    memcpy(&bits, v + at / 4, sizeof bits);
    return (uint8_t)(bits >> (8 * (at % 4)));
}

static void put_base64(struct herd_buf *b, const float *v, int32_t n)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t len = (size_t)n * 4;
    for (size_t i = 0; i < len; i += 3) {
        size_t k = len - i < 3 ? len - i : 3;
        uint8_t in[3] = {0, 0, 0};
        for (size_t j = 0; j < k; j++)
            in[j] = le_byte(v, i + j);
        char quad[4] = {al[in[0] >> 2], al[((in[0] & 3) << 4) | (in[1] >> 4)],
                        k > 1 ? al[((in[1] & 15) << 2) | (in[2] >> 6)] : '=',
                        k > 2 ? al[in[2] & 63] : '='};
        buf_append(b, quad, 4);
    }
}

char *srv_embed_response(const struct srv_req *r, int32_t dim)
{
    struct herd_buf b;
    buf_init(&b, 0);
    buf_puts(&b, "{\"object\":\"list\",\"data\":[");
    for (int32_t i = 0; i < r->n_inputs; i++) {
        const float *v = r->embd + (size_t)i * (size_t)dim;
        buf_printf(&b, "%s{\"object\":\"embedding\",\"index\":%d,\"embedding\":", i ? "," : "",
                   (int)i);
        if (r->p.base64) {
            buf_puts(&b, "\"");
            put_base64(&b, v, dim);
            buf_puts(&b, "\"}");
            continue;
        }
        buf_puts(&b, "[");
        /* %.9g: every float32 reads back exactly */
        for (int32_t d = 0; d < dim; d++)
            buf_printf(&b, "%s%.9g", d ? "," : "", (double)v[d]);
        buf_puts(&b, "]}");
    }
    cJSON *model = cJSON_CreateString(r->p.model ? r->p.model : "");
    char *m = model ? cJSON_PrintUnformatted(model) : NULL;
    cJSON_Delete(model);
    buf_printf(&b, "],\"model\":%s,\"usage\":{\"prompt_tokens\":%d,\"total_tokens\":%d}}",
               m ? m : "\"\"", (int)r->n_prompt, (int)r->n_prompt);
    cJSON_free(m);
    if (b.err != HERD_OK) {
        buf_free(&b);
        return NULL;
    }
    return buf_take(&b, NULL);
}
