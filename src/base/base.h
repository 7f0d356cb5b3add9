/*
 * base.h - the bottom layer every module stands on: error recording, the allocation seam,
 * read-only file mapping, half-precision conversion, a growable text buffer, a thread pool
 * and CPU feature detection. Nothing here knows about models or files' meaning.
 *
 * Error convention: a failing function calls herd_fail(status, fmt, ...) once, at the
 * place that knows what went wrong, and returns its result; callers pass the status up
 * unchanged (they may prefix context with herd_fail_prefix).
 */
#ifndef HERD_BASE_H
#define HERD_BASE_H

#include "herd.h"

#include <stdarg.h>  /* va_list for herd_vfail */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- errors (status.c) */

/* Records a printf-style message for herd_last_error() and returns s. */
herd_status herd_fail(herd_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
herd_status herd_vfail(herd_status s, const char *fmt, va_list ap);
/* Puts "prefix: " before the current message (e.g. the file name) and returns s. */
herd_status herd_fail_prefix(herd_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void herd_clear_error(void);

/* ---- logging (log.c): to stderr; the level is herd_log_set_level's (herd.h), default warn */

void herd_log(enum herd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- allocation (alloc.c). Every allocation in libherd goes through these so that tests
 * can make the Nth one fail (herd_alloc_fail_after). Sizes are checked for overflow. */

void *herd_malloc(size_t n);
void *herd_calloc(size_t count, size_t size);
void *herd_realloc(void *p, size_t n);
void *herd_malloc_aligned(size_t n, size_t align); /* free with herd_free_aligned */
void herd_free_aligned(void *p);
char *herd_strdup(const char *s);
char *herd_strndup(const char *s, size_t n);
/* n bytes of anonymous memory, zeroed, asking the kernel for transparent huge pages (2 MB
 * pages: a matrix streamed at decode costs no TLB walks); free with herd_free_huge(p, n). */
void *herd_alloc_huge(size_t n);
/* After filling memory from herd_alloc_huge: ask the kernel to back it with huge pages
 * now (MADV_COLLAPSE), where a fault found none free (the page cache had the memory) and
 * left 4 KB pages. Best effort; nothing changes where the kernel cannot. */
void herd_huge_settle(void *p, size_t n);
void herd_free_huge(void *p, size_t n);
/* Test hook: the (n+1)th allocation from now fails; n < 0 disables. */
void herd_alloc_fail_after(long n);

/* Allocates count*size bytes with an overflow check; records HERD_ERR_NOMEM on failure. */
herd_status herd_alloc_array(void **out, size_t count, size_t size, const char *what);

/* ---- files (mmap.c) */

struct herd_map {
    const uint8_t *data;
    size_t size;
};
/* Maps a whole file read-only. An empty file maps to data == NULL, size 0. */
herd_status herd_map_file(const char *path, struct herd_map *m);
void herd_unmap(struct herd_map *m);
/* Whether [p, p + n) lies inside one file mapping made by herd_map_file and not unmapped;
 * then *file names the file (device and inode: two mappings of one file give the same) and
 * *off is p's offset in it. */
bool herd_in_file_map(const void *p, size_t n, uint64_t file[2], size_t *off);
/* Drops the whole pages of [p, p + n), inside a file mapping, from this process's resident
 * set (MADV_DONTNEED; they stay in the page cache and fault back in if read). */
void herd_map_release(const void *p, size_t n);
/* Reads a whole (small) file into a NUL-terminated owned buffer. */
herd_status herd_read_file(const char *path, char **out, size_t *len);
/* Whether path names a directory / an existing file. */
int herd_is_dir(const char *path);
int herd_file_exists(const char *path);
/* dir + "/" + name into an owned string. */
char *herd_path_join(const char *dir, const char *name);

/* ---- growable text (buf.c): capped, never a fixed array */

struct herd_buf {
    char *data; /* NUL-terminated when len > 0 or after any append */
    size_t len;
    size_t cap;
    size_t max; /* 0 = no cap; appends past it fail with HERD_ERR_INVALID */
    herd_status err; /* sticky: the first failure, so callers may check once at the end */
};
void buf_init(struct herd_buf *b, size_t max);
void buf_free(struct herd_buf *b);
herd_status buf_append(struct herd_buf *b, const void *data, size_t n);
herd_status buf_puts(struct herd_buf *b, const char *s);
herd_status buf_printf(struct herd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the bytes over (caller frees with herd_free) and resets b. */
char *buf_take(struct herd_buf *b, size_t *len);

/* ---- memory (mem.c): bytes this machine can allocate now without swapping, -1 if unknown */
int64_t herd_mem_available(void);

/* ---- half precision (fp.c). IEEE binary16 and bfloat16, round-to-nearest-even. */

float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);
static inline float bf16_to_f32(uint16_t h)
{
    union { uint32_t u; float f; } v;
    v.u = (uint32_t)h << 16;
    return v.f;
}
uint16_t f32_to_bf16(float f);

/* ---- threads (threads.c): a fixed pool; workers sleep on a condition variable between
 * jobs, so an idle pool burns no core. */

struct herd_pool;
/* fn(arg, ith, nth) runs on nth threads (the caller is thread 0). */
typedef void (*herd_pool_fn)(void *arg, int ith, int nth);
herd_status herd_pool_new(int n_threads, struct herd_pool **out);
/* The process's one pool of that many threads, made on first use and counted: every
 * context (of every model) with the same thread count shares its workers instead of
 * starting its own, so two models in one process never run twice the threads. Jobs from
 * several caller threads take turns (herd_pool_run holds the pool while a job runs).
 * Released by herd_pool_free like any pool. */
herd_status herd_pool_share(int n_threads, struct herd_pool **out);
void herd_pool_free(struct herd_pool *p);
int herd_pool_size(const struct herd_pool *p);
void herd_pool_run(struct herd_pool *p, herd_pool_fn fn, void *arg);
/* fn(arg, 0, 1) on the calling thread alone, in the floating-point mode of pool jobs (for
 * work too small to wake the pool for). */
void herd_pool_run_here(herd_pool_fn fn, void *arg);
/* Splits [0, n) evenly: thread ith gets [*lo, *hi). */
static inline void herd_split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi)
{
    int64_t per = n / nth, rem = n % nth;
    *lo = ith * per + (ith < rem ? ith : rem);
    *hi = *lo + per + (ith < rem ? 1 : 0);
}
int herd_n_cores(void);
/* herd_n_threads(0) divides the cores among n ranks of one job on this machine (dist). */
void herd_threads_set_local_ranks(int n);

/* ---- cpu features (cpu.c) */

struct herd_cpu_features {
    int avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16, avxvnni, neon;
    /* AMX: the CPU has the tiles and the OS enabled their state (XCR0 bits 17, 18); the
     * kernel's per-process permission is asked for separately (herd_cpu_amx_permit) */
    int amx_tile, amx_int8, amx_bf16;
};
const struct herd_cpu_features *herd_cpu_features(void);
/* Asks Linux for the AMX tile state once per process (arch_prctl ARCH_REQ_XCOMP_PERM,
 * XFEATURE_XTILEDATA); true when granted. False without AMX or where the kernel refuses. */
bool herd_cpu_amx_permit(void);

/* ---- random numbers (rng.c): xoshiro256** seeded through splitmix64 */
void herd_rng_seed(uint64_t s[4], uint64_t seed);
double herd_rng_uniform(uint64_t s[4]); /* in [0, 1), 53 random bits */

/* ---- time */
double herd_time_s(void); /* monotonic seconds */
double herd_thread_cpu_s(void); /* CPU seconds of the calling thread */

#endif /* HERD_BASE_H */
