/*
 * log.c - leveled logging to stderr. Results go to stdout elsewhere; logs never do.
 * The level comes from HERD_LOG (error|warn|info|debug) once, unless set in code.
 */
#include "base.h"

#include <stdio.h>  /* vfprintf */
#include <stdlib.h> /* getenv */

static int level = -1;

void herd_log_set_level(enum herd_log_level l)
{
    level = (int)l;
}

static int current_level(void)
{
    if (level < 0) {
        const char *e = getenv("HERD_LOG");
        level = HERD_LOG_WARN;
        if (e && strcmp(e, "error") == 0)
            level = HERD_LOG_ERROR;
        else if (e && strcmp(e, "info") == 0)
            level = HERD_LOG_INFO;
        else if (e && strcmp(e, "debug") == 0)
            level = HERD_LOG_DEBUG;
    }
    return level;
}

void herd_log(enum herd_log_level l, const char *fmt, ...)
{
    if ((int)l > current_level())
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("herd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
