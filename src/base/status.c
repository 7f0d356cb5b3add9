/*
 * status.c - status names and the per-thread error message behind herd_last_error(), and
 * the library's version string.
 * The message is written once at the failure site; callers may prefix context.
 */
#include "base.h"

#include <stdio.h>  /* vsnprintf */
#include <stdlib.h> /* free */

static _Thread_local char last_error[1024];

const char *herd_version(void)
{
    return HERD_VERSION_STRING;
}

const char *herd_status_str(herd_status s)
{
    switch (s) {
    case HERD_OK: return "ok";
    case HERD_ERR_IO: return "i/o error";
    case HERD_ERR_FORMAT: return "format error";
    case HERD_ERR_UNSUPPORTED: return "unsupported";
    case HERD_ERR_NOMEM: return "out of memory";
    case HERD_ERR_INVALID: return "invalid argument";
    case HERD_ERR_CONTEXT: return "context length exceeded";
    case HERD_ERR_INTERNAL: return "internal error";
    case HERD_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}

const char *herd_last_error(void)
{
    return last_error;
}

void herd_clear_error(void)
{
    last_error[0] = '\0';
}

herd_status herd_vfail(herd_status s, const char *fmt, va_list ap)
{
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    /* One line: a message is shown as "herd: <message>", so newlines would break it. */
    for (char *p = last_error; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return s;
}

herd_status herd_fail(herd_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    herd_vfail(s, fmt, ap);
    va_end(ap);
    return s;
}

herd_status herd_fail_prefix(herd_status s, const char *fmt, ...)
{
    char prefix[512], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof last_error - 3)
        n = sizeof last_error - 3;
    memcpy(last_error, prefix, n);
    memcpy(last_error + n, ": ", 2);
    size_t room = sizeof last_error - n - 3;
    size_t m = strnlen(old, room);
    memcpy(last_error + n + 2, old, m);
    last_error[n + 2 + m] = 0;
    return s;
}

void herd_free(void *p)
{
    free(p);
}
