/*
 * log.c - leveled logging to stderr. Results go to stdout elsewhere; logs never do.
 * The level is the program's choice (herd_log_set_level), default warn; the library reads
 * no environment variable for it (the herd command maps HERD_LOG onto the call).
 */
#include "base.h"

#include <stdatomic.h> /* the level may be set while other threads log */
#include <stdio.h>     /* vfprintf */

static atomic_int level = HERD_LOG_WARN;

void herd_log_set_level(herd_log_level l)
{
    atomic_store(&level, (int)l);
}

void herd_log(enum herd_log_level l, const char *fmt, ...)
{
    if ((int)l > atomic_load(&level))
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("herd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
