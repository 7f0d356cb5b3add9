/*
 * mem.c - how much memory this machine has, for the memory plan a context checks before it
 * allocates (model/context.c). Linux's /proc/meminfo MemAvailable is the kernel's own
 * estimate of what can be allocated without swapping (free memory plus reclaimable cache,
 * which includes the page cache of mapped weights); elsewhere the answer is "unknown".
 */
#include "base/base.h"

#include <stdio.h>  /* fopen, fgets */
#include <stdlib.h> /* strtoll */

int64_t herd_mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    char line[256];
    int64_t kib = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "MemAvailable:", 13) == 0) {
            char *end;
            long long v = strtoll(line + 13, &end, 10);
            if (end != line + 13 && v >= 0)
                kib = v;
            break;
        }
    }
    fclose(f);
    return kib < 0 ? -1 : kib * 1024;
}
