/*
 * alloc.c - the allocation seam. All of libherd allocates here so that a test can make the
 * Nth allocation fail and check that every caller cleans up and reports HERD_ERR_NOMEM.
 */
#include "base.h"

#include <stdatomic.h> /* the fail counter is shared by threads */
#include <sys/mman.h>  /* huge allocations */
#include <stdint.h>
#include <stdlib.h>

static atomic_long fail_after = -1;

void herd_alloc_fail_after(long n)
{
    atomic_store(&fail_after, n);
}

static int should_fail(void)
{
    long n = atomic_load(&fail_after);
    if (n < 0)
        return 0;
    if (n == 0)
        return 1;
    atomic_fetch_sub(&fail_after, 1);
    return 0;
}

void *herd_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *herd_calloc(size_t count, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *herd_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void *herd_malloc_aligned(size_t n, size_t align)
{
    if (should_fail())
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align, n ? n : 1) != 0)
        return NULL;
    return p;
}

void herd_free_aligned(void *p)
{
    free(p);
}

void *herd_alloc_huge(size_t n)
{
    if (should_fail() || n == 0)
        return NULL;
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, n, MADV_HUGEPAGE); /* a hint: without THP the pages are 4 KB */
#endif
    return p;
}

void herd_free_huge(void *p, size_t n)
{
    if (p)
        munmap(p, n);
}

char *herd_strndup(const char *s, size_t n)
{
    char *d = herd_malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *herd_strdup(const char *s)
{
    return herd_strndup(s, strlen(s));
}

herd_status herd_alloc_array(void **out, size_t count, size_t size, const char *what)
{
    *out = NULL;
    if (size && count > SIZE_MAX / size)
        return herd_fail(HERD_ERR_NOMEM, "%s: %zu x %zu bytes overflows", what, count, size);
    *out = herd_malloc(count * size);
    if (!*out)
        return herd_fail(HERD_ERR_NOMEM, "%s: cannot allocate %zu bytes", what, count * size);
    return HERD_OK;
}
