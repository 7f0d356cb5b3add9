/*
 * threads.c - a fixed thread pool for data-parallel kernels. The caller runs as thread 0;
 * workers wait on a condition variable between jobs (an idle pool uses no CPU) and a
 * generation counter tells them a new job is posted. Jobs are short (one matmul), so a
 * brief spin before sleeping keeps per-token latency low without burning a core idle.
 *
 * Jobs run with subnormal floats flushed to zero (x86 MXCSR FTZ + DAZ, ARM FPCR FZ): an
 * arithmetic result or operand below 1.2e-38 takes a microcode assist of ~100 cycles on
 * x86, and real weights make them. Q4_K / Q6_K scales of down projections are often fp16
 * subnormals (~1.5e-5), and the products of their kernels then ran ffn_down at a third of
 * the speed of the other matrices (8B Q4_K_M decode 2.9 -> 4.9-5.1 tok/s with the flush). The
 * caller's own mode is restored after each job, so code outside the pool is unchanged.
 *
 * Pools from herd_pool_share are the process's, one per thread count, counted by their
 * users: each context of each model takes one, so a draft model beside its target (or a
 * guard model beside a server's) adds no threads. A pool may so be shared by callers on
 * several threads (two servers, a server and a guard): run_mu makes their jobs take turns.
 *
 * herd_n_threads is the one definition of a thread count: n > 0 means n, 0 means every
 * online core, shared evenly among the ranks of an MPI job on this machine.
 */
#include "base.h"

#include <pthread.h>   /* pthread_* */
#include <stdatomic.h> /* job counters */
#include <time.h>      /* clock_gettime */
#include <unistd.h>    /* sysconf */
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h> /* _mm_getcsr, _mm_setcsr */
#endif

/* Sets flush-to-zero for this thread; returns the mode to give back to fp_restore. */
static unsigned long fp_flush_subnormals(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned old = _mm_getcsr();
    _mm_setcsr(old | 0x8040u); /* FTZ (bit 15), DAZ (bit 6) */
    return old;
#elif defined(__aarch64__)
    unsigned long old;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(old));
    __asm__ __volatile__("msr fpcr, %0" ::"r"(old | (1ul << 24))); /* FZ */
    return old;
#else
    return 0;
#endif
}

static void fp_restore(unsigned long old)
{
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr((unsigned)old);
#elif defined(__aarch64__)
    __asm__ __volatile__("msr fpcr, %0" ::"r"(old));
#else
    (void)old;
#endif
}

struct herd_pool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_cond_t done_cv;
    atomic_uint gen;       /* bumped once per posted job */
    atomic_int remaining;  /* workers still running the current job */
    herd_pool_fn fn;
    void *arg;
    int stop;
    struct worker_arg *args; /* (n) one per worker; [0] unused */
    pthread_mutex_t run_mu;  /* held by the caller while its job runs */
    int refs;                /* users of a shared pool (shared_mu); 0 = not shared */
};

/* The shared pools, at most one per thread count. */
#define N_SHARED 16
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
static struct herd_pool *shared[N_SHARED];

struct worker_arg {
    struct herd_pool *p;
    int ith;
};

static void *worker(void *v)
{
    struct herd_pool *p = ((struct worker_arg *)v)->p;
    int ith = ((struct worker_arg *)v)->ith;
    unsigned seen = 0;
    (void)fp_flush_subnormals(); /* for the thread's life: it only runs jobs */
    for (;;) {
        /* Spin briefly: between the matmuls of one token the next job comes within
         * microseconds, and a futex wake costs more than that. */
        for (int spin = 0; spin < 20000 && atomic_load(&p->gen) == seen; spin++)
            __asm__ __volatile__("" ::: "memory");
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->gen) == seen && !p->stop)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = atomic_load(&p->gen);
        herd_pool_fn fn = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->mu);
        fn(arg, ith, p->n);
        if (atomic_fetch_sub(&p->remaining, 1) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

herd_status herd_pool_new(int n_threads, struct herd_pool **out)
{
    *out = NULL;
    n_threads = herd_n_threads(n_threads);
    struct herd_pool *p = herd_calloc(1, sizeof *p);
    if (!p)
        return herd_fail(HERD_ERR_NOMEM, "thread pool");
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    pthread_mutex_init(&p->run_mu, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->remaining, 0);
    if (n_threads > 1) {
        p->threads = herd_calloc((size_t)n_threads, sizeof *p->threads);
        p->args = herd_calloc((size_t)n_threads, sizeof *p->args);
        if (!p->threads || !p->args) {
            herd_free(p->args);
            herd_free(p->threads);
            herd_free(p);
            return herd_fail(HERD_ERR_NOMEM, "thread pool");
        }
        for (int i = 1; i < n_threads; i++) {
            p->args[i].p = p;
            p->args[i].ith = i;
            if (pthread_create(&p->threads[i], NULL, worker, &p->args[i]) != 0) {
                p->n = i; /* the ones started are joined by free */
                herd_pool_free(p);
                return herd_fail(HERD_ERR_INTERNAL, "cannot start thread %d", i);
            }
        }
    }
    *out = p;
    return HERD_OK;
}

herd_status herd_pool_share(int n_threads, struct herd_pool **out)
{
    *out = NULL;
    n_threads = herd_n_threads(n_threads);
    pthread_mutex_lock(&shared_mu);
    int free_slot = -1;
    for (int i = 0; i < N_SHARED; i++) {
        if (shared[i] && shared[i]->n == n_threads) {
            shared[i]->refs++;
            *out = shared[i];
            pthread_mutex_unlock(&shared_mu);
            return HERD_OK;
        }
        if (!shared[i] && free_slot < 0)
            free_slot = i;
    }
    herd_status s = herd_pool_new(n_threads, out);
    if (s == HERD_OK && free_slot >= 0) { /* past 16 thread counts a pool is not shared */
        (*out)->refs = 1;
        shared[free_slot] = *out;
    }
    pthread_mutex_unlock(&shared_mu);
    return s;
}

void herd_pool_free(struct herd_pool *p)
{
    if (!p)
        return;
    if (p->refs > 0) {
        pthread_mutex_lock(&shared_mu);
        int left = --p->refs;
        if (left == 0)
            for (int i = 0; i < N_SHARED; i++)
                if (shared[i] == p)
                    shared[i] = NULL;
        pthread_mutex_unlock(&shared_mu);
        if (left > 0)
            return;
    }
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->threads[i], NULL);
    herd_free(p->args);
    herd_free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done_cv);
    pthread_mutex_destroy(&p->run_mu);
    herd_free(p);
}

int herd_pool_size(const struct herd_pool *p)
{
    return p ? p->n : 1;
}

void herd_pool_run_here(herd_pool_fn fn, void *arg)
{
    unsigned long fp = fp_flush_subnormals();
    fn(arg, 0, 1);
    fp_restore(fp);
}

void herd_pool_run(struct herd_pool *p, herd_pool_fn fn, void *arg)
{
    unsigned long fp = fp_flush_subnormals();
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        fp_restore(fp);
        return;
    }
    pthread_mutex_lock(&p->run_mu);
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->remaining, p->n - 1);
    atomic_fetch_add(&p->gen, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    fp_restore(fp);
    /* Spin first for the same reason as the workers, then sleep. */
    for (int spin = 0; spin < 200000 && atomic_load(&p->remaining) > 0; spin++)
        __asm__ __volatile__("" ::: "memory");
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->remaining) > 0)
        pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->run_mu);
}

int herd_n_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Ranks of one job on this machine; set once by herd_dist_init before any model exists. */
static atomic_int local_ranks = 1;

void herd_threads_set_local_ranks(int n)
{
    atomic_store(&local_ranks, n > 1 ? n : 1);
}

/* The one place where "0 threads" gets its meaning (docs/internals/model.md). */
int32_t herd_n_threads(int32_t requested)
{
    if (requested > 0)
        return requested;
    int n = herd_n_cores() / atomic_load(&local_ranks);
    return n > 0 ? n : 1;
}

double herd_time_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The thread's own clock: the process clock lags for threads still running on another
 * CPU (their time is added at their next tick), so per-thread rates read it around each
 * thread's share (bench/kernels). */
double herd_thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
