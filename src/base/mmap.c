/*
 * mmap.c - read-only mapping of weight files, the registry of those mappings (the CPU
 * backend copies mapped weights into huge pages, kernels/cpu/backend_cpu.c), and small
 * whole-file reads for JSON and text files.
 */
#include "base.h"

#include <errno.h>    /* errno for messages */
#include <pthread.h>  /* the registry of mappings is shared by threads */
#include <fcntl.h>    /* open */
#include <stdio.h>    /* snprintf */
#include <sys/mman.h> /* mmap */
#include <sys/stat.h> /* fstat */
#include <unistd.h>   /* close, read */

/* The live file mappings, so the CPU backend can tell a weight in a file (which it copies
 * into huge pages) from one a loader already built in memory (which it keeps). Mappings
 * past the table's size are simply not known: their weights stay mapped. */
#define MAX_MAPS 256
static struct {
    const uint8_t *p;
    size_t n;
    uint64_t file[2]; /* st_dev, st_ino */
} maps[MAX_MAPS];
static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;

static void maps_set(const uint8_t *p, size_t n, const struct stat *st, const uint8_t *old)
{
    pthread_mutex_lock(&maps_lock);
    for (int i = 0; i < MAX_MAPS; i++)
        if (maps[i].p == old) {
            maps[i].p = p;
            maps[i].n = n;
            maps[i].file[0] = st ? (uint64_t)st->st_dev : 0;
            maps[i].file[1] = st ? (uint64_t)st->st_ino : 0;
            break;
        }
    pthread_mutex_unlock(&maps_lock);
}

bool herd_in_file_map(const void *p, size_t n, uint64_t file[2], size_t *off)
{
    const uint8_t *b = p;
    bool in = false;
    pthread_mutex_lock(&maps_lock);
    for (int i = 0; i < MAX_MAPS && !in; i++) {
        in = maps[i].p && b >= maps[i].p && n <= maps[i].n &&
             (size_t)(b - maps[i].p) <= maps[i].n - n;
        if (in) {
            file[0] = maps[i].file[0];
            file[1] = maps[i].file[1];
            *off = (size_t)(b - maps[i].p);
        }
    }
    pthread_mutex_unlock(&maps_lock);
    return in;
}

void herd_map_release(const void *p, size_t n)
{
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + pg - 1) & ~(pg - 1), e = ((uintptr_t)p + n) & ~(pg - 1);
    if (e > a)
        (void)madvise((void *)a, e - a, MADV_DONTNEED);
}

herd_status herd_map_file(const char *path, struct herd_map *m)
{
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return herd_fail(HERD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return herd_fail(HERD_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return HERD_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return herd_fail(HERD_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    m->data = p;
    m->size = (size_t)st.st_size;
    maps_set(p, m->size, &st, NULL);
    return HERD_OK;
}

void herd_unmap(struct herd_map *m)
{
    if (m->data) {
        maps_set(NULL, 0, NULL, m->data);
        munmap((void *)m->data, m->size);
    }
    m->data = NULL;
    m->size = 0;
}

herd_status herd_read_file(const char *path, char **out, size_t *len)
{
    *out = NULL;
    if (len)
        *len = 0;
    struct herd_map m;
    herd_status s = herd_map_file(path, &m);
    if (s != HERD_OK)
        return s;
    char *d = herd_malloc(m.size + 1);
    if (!d) {
        herd_unmap(&m);
        return herd_fail(HERD_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, m.size);
    }
    if (m.size)
        memcpy(d, m.data, m.size);
    d[m.size] = '\0';
    if (len)
        *len = m.size;
    herd_unmap(&m);
    *out = d;
    return HERD_OK;
}

int herd_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int herd_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *herd_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = herd_malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}
