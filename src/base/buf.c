/*
 * buf.c - growable, capped byte buffer for text that grows (chat prompts, JSON, HTTP
 * bodies). Errors are sticky so a caller may build a whole text and check once.
 */
#include "base.h"

#include <stdio.h> /* vsnprintf */

void buf_init(struct herd_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->err = HERD_OK;
}

void buf_free(struct herd_buf *b)
{
    herd_free(b->data);
    buf_init(b, b->max);
}

static herd_status reserve(struct herd_buf *b, size_t extra)
{
    if (b->err != HERD_OK)
        return b->err;
    if (extra > SIZE_MAX - b->len - 1 || (b->max && b->len + extra > b->max)) {
        b->err = herd_fail(HERD_ERR_INVALID, "text grows past its limit of %zu bytes", b->max);
        return b->err;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return HERD_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *d = herd_realloc(b->data, cap);
    if (!d) {
        b->err = herd_fail(HERD_ERR_NOMEM, "cannot grow a text buffer to %zu bytes", cap);
        return b->err;
    }
    b->data = d;
    b->cap = cap;
    return HERD_OK;
}

herd_status buf_append(struct herd_buf *b, const void *data, size_t n)
{
    herd_status s = reserve(b, n);
    if (s != HERD_OK)
        return s;
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return HERD_OK;
}

herd_status buf_puts(struct herd_buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

herd_status buf_printf(struct herd_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return b->err = herd_fail(HERD_ERR_INTERNAL, "bad format string");
    herd_status s = reserve(b, (size_t)n);
    if (s != HERD_OK)
        return s;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return HERD_OK;
}

char *buf_take(struct herd_buf *b, size_t *len)
{
    if (!b->data)
        reserve(b, 0);
    char *d = b->data;
    if (d)
        d[b->len] = '\0';
    if (len)
        *len = b->len;
    b->data = NULL;
    buf_init(b, b->max);
    return d;
}
