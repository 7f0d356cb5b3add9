/*
 * bench_matmul.c - matrix-product speed per weight type and kernel variant: decode
 * (n_b = 1, reported as GB/s of weights streamed, the matrix much larger than the caches)
 * and prefill (n_b = 512, reported as GOP/s, 2 ops per multiply-add). Threads split the
 * rows evenly over herd's pool, as the model does. "hot" decode repeats one matrix of about
 * 1 MiB per thread, which stays in L2: its rate per CPU-second is the kernel's own cost per
 * byte, independent of memory and of other processes on a shared host.
 * Usage: bench_matmul [threads=2] [isa=best] [rows=4096] [cols=4096] [types=all] [n_pp=512]
 * (BENCH_HUGE=1 in the environment: weights on transparent huge pages, as in the model)
 * (n_pp 0 skips prefill)
 */
#include "kernels/kernels.h"
#include "quant/quant.h"

#include <stdio.h>
#include <time.h> /* clock_gettime: CPU time, so a busy shared host still gives per-core rates */
#include <stdlib.h>

#include "bench_cpu.h"

#define MAX_THREADS 256

struct job {
    const struct matmul_kernel *k;
    float *y;
    const void *w;
    const void *xa;
    size_t xrb;
    int64_t rows, cols, n_b;
    double cpu[MAX_THREADS]; /* CPU seconds each thread spent in the matmuls */
};

static void run(void *arg, int ith, int nth)
{
    struct job *j = arg;
    int64_t lo, hi;
    herd_split(j->rows / 16, ith, nth, &lo, &hi); /* 16-row panels, as the model should */
    hi = ith == nth - 1 ? j->rows : hi * 16;
    const double c0 = herd_thread_cpu_s();
    j->k->matmul(j->y, j->rows, j->w, j->xa, j->xrb, j->cols, j->n_b, lo * 16, hi);
    j->cpu[ith] += herd_thread_cpu_s() - c0;
}

static size_t wrow_bytes(herd_dtype t, int64_t n)
{
    switch (t) {
    case HERD_DTYPE_F32: return (size_t)n * 4;
    case HERD_DTYPE_F16:
    case HERD_DTYPE_BF16: return (size_t)n * 2;
    case HERD_DTYPE_Q8_0: return (size_t)n / 32 * 34;
    case HERD_DTYPE_Q4_0: return (size_t)n / 32 * 18;
    case HERD_DTYPE_Q4_1: return (size_t)n / 32 * 20;
    case HERD_DTYPE_Q4_K: return (size_t)n / 256 * 144;
    case HERD_DTYPE_Q5_K: return (size_t)n / 256 * 176;
    default: return (size_t)n / 256 * 210;
    }
}

int main(int argc, char **argv)
{
    int nt = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 2;
    nt = nt < 1 ? 1 : nt > MAX_THREADS ? MAX_THREADS : nt;
    herd_cpu_options opt = herd_cpu_default_options();
    opt.bf16_act = getenv("HERD_BF16_ACT") != NULL; /* BF16 x bf16 activations */
    opt.no_r16 = getenv("HERD_GEMV_NO_R16") != NULL; /* Q8_0 decode by the one-row loop */
    herd_cpu_configure(&opt);
    const struct herd_cpu_kernels *k = argc > 2 ? kernels_get_isa(argv[2]) : kernels_get();
    int64_t rows = argc > 3 ? strtol(argv[3], NULL, 10) : 4096;
    int64_t cols = argc > 4 ? strtol(argv[4], NULL, 10) : 4096;
    const char *only = argc > 5 ? argv[5] : NULL;
    if (!k)
        return 1;
    static const struct { herd_dtype t; const char *name; } types[] = {
        {HERD_DTYPE_Q4_0, "q4_0"}, {HERD_DTYPE_Q4_1, "q4_1"}, {HERD_DTYPE_Q8_0, "q8_0"},
        {HERD_DTYPE_Q4_K, "q4_K"}, {HERD_DTYPE_Q5_K, "q5_K"}, {HERD_DTYPE_Q6_K, "q6_K"},
        {HERD_DTYPE_F16, "f16"},   {HERD_DTYPE_BF16, "bf16"}, {HERD_DTYPE_F32, "f32"},
    };
    struct herd_pool *pool;
    if (herd_pool_new(nt, &pool) != HERD_OK)
        return 1;
    const int64_t nb_pp = argc > 6 ? strtol(argv[6], NULL, 10) : 512;
    float *x = malloc(sizeof(float) * cols * (nb_pp + 1));
    float *y = malloc(sizeof(float) * rows * (nb_pp + 1));
    for (int64_t i = 0; i < cols * (nb_pp + 1); i++)
        x[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
    printf("isa=%s threads=%d rows=%lld cols=%lld\n", k->isa, nt, (long long)rows,
           (long long)cols);
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const struct matmul_kernel *mk = &k->mm[types[ti].t];
        if (!mk->matmul || (only && !strstr(only, types[ti].name)))
            continue;
        /* several copies so decode streams from DRAM, not from the 300 MB L3 */
        size_t wb = wrow_bytes(types[ti].t, cols) * (size_t)rows;
        int copies = (int)(1536ull * 1024 * 1024 / wb) + 1;
        /* BENCH_HUGE=1: on transparent huge pages, as the model's weights are (backend_cpu.c) */
        const int huge = getenv("BENCH_HUGE") != NULL;
        uint8_t *w = huge ? herd_alloc_huge(wb * (size_t)copies) : malloc(wb * (size_t)copies);
        for (size_t i = 0; i < wb * (size_t)copies; i++)
            w[i] = (uint8_t)(i * 2654435761u >> 13);
        /* random bits make f32/bf16 denormals (microcode assists): write normal values */
        if (types[ti].t == HERD_DTYPE_F32 || types[ti].t == HERD_DTYPE_BF16) {
            size_t es = types[ti].t == HERD_DTYPE_F32 ? 4 : 2;
            for (size_t i = 0; i < wb * (size_t)copies / es; i++) {
                float f = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
                uint16_t h = f32_to_bf16(f);
                memcpy(w + i * es, es == 4 ? (const void *)&f : (const void *)&h, es);
            }
        }
        /* sane small scales: overwrite every 2-byte word that could be a scale is costly;
         * random bytes are fine for speed, NaN/inf scales only change values */
        size_t xrb = kernels_act_row_bytes(mk->act_type, cols);
        uint8_t *xa = malloc(xrb * (nb_pp + 1));
        for (int64_t b = 0; b < nb_pp + 1; b++) {
            if (mk->convert)
                mk->convert(xa + b * xrb, x + b * cols, cols);
            else
                memcpy(xa + b * xrb, x + b * cols, xrb);
        }
        struct job j = {mk, y, w, xa, xrb, rows, cols, 1, {0}};
        double best = 1e30, bestc = 1e30;
        for (int rep = 0; rep < 3 * copies; rep++) {
            j.w = w + wb * (size_t)(rep % copies);
            double t0 = herd_time_s(), c0 = bench_cpu_total(j.cpu, nt);
            herd_pool_run(pool, run, &j);
            double dt = herd_time_s() - t0, dc = (bench_cpu_total(j.cpu, nt) - c0) / nt;
            best = dt < best ? dt : best;
            bestc = dc < bestc ? dc : bestc;
        }
        /* L2-resident: ~1 MiB of rows per thread, many passes */
        struct job jh = j;
        jh.rows = (int64_t)((size_t)nt * (1u << 20) / wrow_bytes(types[ti].t, cols)) / 16 * 16;
        jh.rows = jh.rows < 16 ? 16 : jh.rows > rows ? rows : jh.rows;
        double hotc = 1e30;
        for (int rep = 0; rep < 5; rep++) {
            double c0 = bench_cpu_total(jh.cpu, nt);
            for (int it = 0; it < 20; it++)
                herd_pool_run(pool, run, &jh);
            double dc = (bench_cpu_total(jh.cpu, nt) - c0) / nt;
            hotc = dc < hotc ? dc : hotc;
        }
        double hotb = 20.0 * (double)wrow_bytes(types[ti].t, cols) * (double)jh.rows;
        j.n_b = nb_pp;
        j.w = w;
        double bestp = 1e30, bestpc = 1e30;
        for (int rep = 0; rep < (nb_pp > 0 ? 2 : 0); rep++) {
            double t0 = herd_time_s(), c0 = bench_cpu_total(j.cpu, nt);
            herd_pool_run(pool, run, &j);
            double dt = herd_time_s() - t0, dc = (bench_cpu_total(j.cpu, nt) - c0) / nt;
            bestp = dt < bestp ? dt : bestp;
            bestpc = dc < bestpc ? dc : bestpc;
        }
        double flop = 2.0 * (double)rows * (double)cols * (double)nb_pp;
        /* wall-clock rates, then per CPU-second of each thread (a busy host) */
        printf("%-5s decode GB/s %6.1f wall %6.1f cpu %6.1f hot-cpu | prefill n_b=%lld GOP/s "
               "%6.1f wall %6.1f cpu\n", types[ti].name, (double)wb / best / 1e9,
               (double)wb / bestc / 1e9, hotb / hotc / 1e9, (long long)nb_pp,
               flop / bestp / 1e9, flop / bestpc / 1e9);
        if (huge)
            herd_free_huge(w, wb * (size_t)copies);
        else
            free(w);
        free(xa);
    }
    herd_pool_free(pool);
    free(x);
    free(y);
    return 0;
}
