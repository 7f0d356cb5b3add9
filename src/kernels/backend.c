/*
 * backend.c - the registry of backends this build has. A new backend is a folder beside
 * cpu/ that defines its struct backend_ops, plus one line in the table below.
 */
#include "kernels/backend.h"

#include <stdio.h> /* snprintf for the list of names */

#ifdef HERD_HAVE_CUDA
extern const struct backend_ops backend_cuda_ops; /* cuda/backend_cuda.cu (HERD_CUDA=ON) */
#endif

static const struct backend_ops *const registry[] = {
    &backend_cpu_ops,
#ifdef HERD_HAVE_CUDA
    &backend_cuda_ops,
#endif
};

herd_status backend_open(const char *device, int32_t n_threads, struct backend *out)
{
    memset(out, 0, sizeof *out);
    if (!device || !*device)
        device = registry[0]->name;
    const char *colon = strchr(device, ':');
    size_t len = colon ? (size_t)(colon - device) : strlen(device);
    char names[128] = "";
    size_t used = 0;
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++) {
        if (strlen(registry[i]->name) == len && strncmp(device, registry[i]->name, len) == 0) {
            out->ops = registry[i];
            herd_status s = registry[i]->open(out, device, n_threads);
            if (s != HERD_OK)
                memset(out, 0, sizeof *out);
            return s;
        }
        int k = snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                         registry[i]->name);
        if (k > 0 && (size_t)k < sizeof names - used)
            used += (size_t)k;
    }
    return herd_fail(HERD_ERR_UNSUPPORTED, "device %s: no such backend in this build (it has: "
                     "%s)", device, names);
}

int herd_devices(char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return 0;
    buf[0] = 0;
    size_t used = 0;
    /* AMX: in use, or why not (the isa forced below it, or the OS refused the tiles) */
    const char *isa = herd_cpu_isa(), *amx = "";
    if (herd_cpu_features()->amx_int8)
        amx = strcmp(isa, "amx") == 0 ? " (AMX int8 tiles for prefill)"
              : herd_cpu_amx_permit() ? " (AMX present, not chosen)"
                                      : " (AMX present, the OS refused its tile state)";
    int k = snprintf(buf, cap, "cpu: %s kernels%s, %d cores\n", isa, amx, herd_n_cores());
    used = k > 0 && (size_t)k < cap ? (size_t)k : cap - 1;
    int lines = 1;
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
        if (registry[i]->list_devices)
            lines += registry[i]->list_devices(buf, cap, &used);
    return lines;
}

void backend_close(struct backend *be)
{
    if (be->ops)
        be->ops->close(be);
    memset(be, 0, sizeof *be);
}
