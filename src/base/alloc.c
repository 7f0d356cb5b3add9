/*
 * alloc.c - the allocation seam. All of libherd allocates here so that a test can make the
 * Nth allocation fail and check that every caller cleans up and reports HERD_ERR_NOMEM.
 */
#include "base.h"

#include <stdatomic.h> /* the fail counter is shared by threads */
#include <sys/mman.h>  /* huge allocations */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h> /* sysconf */

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

/* 2 MB: the transparent huge page of x86-64 (and of arm64 with 4 KB pages) */
#define HUGE_ALIGN ((size_t)2 << 20)

void *herd_alloc_huge(size_t n)
{
    if (should_fail() || n == 0)
        return NULL;
    /* Over-allocated, then trimmed to start on a 2 MB boundary: a huge page backs only a
     * 2 MB-aligned range, and an unaligned region left its head and tail in 4 KB pages. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE), len = (n + page - 1) / page * page;
    uint8_t *m = mmap(NULL, len + HUGE_ALIGN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    uint8_t *p = (uint8_t *)(((uintptr_t)m + HUGE_ALIGN - 1) & ~(uintptr_t)(HUGE_ALIGN - 1));
    if (p > m)
        munmap(m, (size_t)(p - m));
    munmap(p + len, (size_t)(m + HUGE_ALIGN - p)); /* the tail: p - m < HUGE_ALIGN */
#ifdef MADV_HUGEPAGE
    (void)madvise(p, len, MADV_HUGEPAGE); /* a hint: without THP the pages are 4 KB */
#endif
    return p;
}

void herd_huge_settle(void *p, size_t n)
{
#ifdef MADV_COLLAPSE
    (void)madvise(p, n, MADV_COLLAPSE); /* best effort: kernels before 6.1 say EINVAL */
#else
    (void)p;
    (void)n;
#endif
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
