/*
 * membw.c - the machine's limits that herd's kernels are measured against: read bandwidth
 * (STREAM-like sum over a buffer much larger than the caches, AVX-512 loads, 1..N threads)
 * and peak arithmetic of one core and of N cores (fp32 FMA, bf16 dot vdpbf16ps, int8 VNNI
 * vpdpbusd, 512-bit, many independent accumulators), and where the CPU has AMX and Linux
 * grants it, the tile unit's peak (TDPBSSD int8, TDPBF16PS bf16: four independent 16 x 16
 * accumulator tiles, operands resident in tiles, so nothing but the multiply runs).
 * Usage: membw [MiB=1024] [threads=2]
 */
#include "base/base.h"

#include <immintrin.h>
#include <stdio.h>
#include <time.h> /* clock_gettime: CPU time, so a busy shared host still gives per-core rates */
#include <stdlib.h>

#include "bench_cpu.h"

struct job {
    const float *buf;
    size_t n;
    int kind; /* 0 read, 1 fma, 2 bf16, 3 vnni, 4 read with prefetch, 5 amx int8,
                 6 amx bf16 */
    double sink[64];
    double cpu[64]; /* CPU seconds each thread spent in its share */
};

/* Plain streaming sum; with pf, every line is also prefetched 8 KB ahead, as herd's decode
 * kernels do (on this host that reads ~10-20% faster than the hardware streamer alone, so
 * it is the fair bandwidth limit for them). */
__attribute__((target("avx512f"))) static float read_sum(const float *p, size_t n, int pf)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 64 <= n; i += 64) {
        if (pf)
            for (int l = 0; l < 4; l++)
                _mm_prefetch((const char *)(p + i + 2048 + 16 * l), _MM_HINT_T0);
        a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
        a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

#define ITERS 20000000L /* per chain; 12 chains (CHAINS) */

/* 12 independent chains of one instruction, each in place (inline asm) and each in its own
 * named register variable: with an array (or intrinsics) gcc kept the chains in memory or
 * copied them every round, and the probe read 1.4-4x under the real peak. */
#define CHAINS(op, T, init)                                                                \
    do {                                                                                   \
        T a0 = init, a1 = init, a2 = init, a3 = init, a4 = init, a5 = init;                \
        T a6 = init, a7 = init, a8 = init, a9 = init, a10 = init, a11 = init;              \
        for (long it = 0; it < ITERS; it++) {                                              \
            __asm__ volatile(op : "+v"(a0) : "v"(x), "v"(y));                                     \
            __asm__ volatile(op : "+v"(a1) : "v"(x), "v"(y));                                     \
            __asm__ volatile(op : "+v"(a2) : "v"(x), "v"(y));                                     \
            __asm__ volatile(op : "+v"(a3) : "v"(x), "v"(y));                                     \
            __asm__ volatile(op : "+v"(a4) : "v"(x), "v"(y));                                     \
            __asm__ volatile(op : "+v"(a5) : "v"(x), "v"(y));                                     \
            __asm__ volatile(op : "+v"(a6) : "v"(x), "v"(y));                                     \
            __asm__ volatile(op : "+v"(a7) : "v"(x), "v"(y));                                     \
            __asm__ volatile(op : "+v"(a8) : "v"(x), "v"(y));                                     \
            __asm__ volatile(op : "+v"(a9) : "v"(x), "v"(y));                                     \
            __asm__ volatile(op : "+v"(a10) : "v"(x), "v"(y));                                    \
            __asm__ volatile(op : "+v"(a11) : "v"(x), "v"(y));                                    \
        }                                                                                  \
        T all[12] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11};                   \
        memcpy(&sink, &all[it_pick], sizeof sink);                                         \
    } while (0)

__attribute__((target("avx512f,avx512bf16,avx512vnni,avx512bw"))) static double peak(int kind)
{
    float sink[16];
    const int it_pick = kind % 12;
    const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-9f);
    if (kind == 1) {
        CHAINS("vfmadd213ps %2, %1, %0", __m512, _mm512_set1_ps(1e-6f));
    } else if (kind == 2) {
        CHAINS("vdpbf16ps %2, %1, %0", __m512, _mm512_set1_ps(1e-6f));
    } else {
        CHAINS("vpdpbusd %2, %1, %0", __m512i, _mm512_set1_epi32(1));
    }
    return sink[0];
}

#define AMX_ITERS 2000000L /* rounds of four tile products */

/* Four accumulators (tmm0-3) over two A (tmm4, 5) and two B (tmm6, 7) tiles, all 16 rows x
 * 64 bytes: each product is 16 x 16 x 64 int8 or 16 x 16 x 32 bf16 multiply-adds. */
__attribute__((target("amx-tile,amx-int8,amx-bf16"))) static double amx_peak(int bf16)
{
    _Alignas(64) uint8_t cfg[64] = {0}, data[16 * 64] = {0};
    cfg[0] = 1;
    for (int i = 0; i < 8; i++) {
        cfg[16 + 2 * i] = 64;
        cfg[48 + i] = 16;
    }
    __asm__ __volatile__("" ::: "memory"); /* the intrinsic's asm names only 8 bytes of cfg */
    _tile_loadconfig(cfg);
    for (int i = 0; i < 4; i++) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    _tile_loadd(4, data, 64);
    _tile_loadd(5, data, 64);
    _tile_loadd(6, data, 64);
    _tile_loadd(7, data, 64);
    for (long it = 0; it < AMX_ITERS; it++) {
        if (bf16) {
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        } else {
            _tile_dpbssd(0, 4, 6);
            _tile_dpbssd(1, 4, 7);
            _tile_dpbssd(2, 5, 6);
            _tile_dpbssd(3, 5, 7);
        }
    }
    _tile_stored(0, data, 64);
    _tile_release();
    return data[0];
}

static void run(void *arg, int ith, int nth)
{
    struct job *j = arg;
    const double c0 = herd_thread_cpu_s();
    if (j->kind == 0 || j->kind == 4) {
        int64_t lo, hi;
        herd_split((int64_t)(j->n / 64), ith, nth, &lo, &hi);
        j->sink[ith] = read_sum(j->buf + lo * 64, (size_t)(hi - lo) * 64, j->kind == 4);
    } else if (j->kind >= 5) {
        j->sink[ith] = amx_peak(j->kind == 6);
    } else {
        j->sink[ith] = peak(j->kind);
    }
    j->cpu[ith] += herd_thread_cpu_s() - c0;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
    int max_t = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 2;
    max_t = max_t < 1 ? 1 : max_t > 64 ? 64 : max_t; /* sink[] and cpu[] hold 64 */
    size_t n = mib * 1024 * 1024 / sizeof(float);
    float *buf = herd_malloc_aligned(n * sizeof(float), 64);
    if (!buf)
        return 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = (float)(i & 1023);
    static const char *const names[] = {"read", "fp32 fma", "bf16 dot", "int8 vnni",
                                        "read+pf", "amx int8", "amx bf16"};
    /* per instruction, per 512-bit vector: FMA 16 x 2 flop, dpbf16 32 x 2, dpbusd 64 x 2;
     * per tile product: 16 x 16 x 64 x 2 int8 ops, 16 x 16 x 32 x 2 bf16 flop */
    static const double ops[] = {0, 32, 64, 128, 0, 32768, 16384};
    const int amx = herd_cpu_features()->amx_int8 && herd_cpu_amx_permit();
    if (!amx)
        printf("amx: not on this CPU, or the OS refused the tile state: probes skipped\n");
    for (int t = 1; t <= max_t; t++) {
        struct herd_pool *pool;
        if (herd_pool_new(t, &pool) != HERD_OK)
            return 1;
        for (int kind = 0; kind < (amx ? 7 : 5); kind++) {
            struct job j = {buf, n, kind, {0}, {0}};
            double best = 1e30, bestc = 1e30;
            for (int rep = 0; rep < 5; rep++) {
                double t0 = herd_time_s(), c0 = bench_cpu_total(j.cpu, t);
                herd_pool_run(pool, run, &j);
                double dt = herd_time_s() - t0, dc = (bench_cpu_total(j.cpu, t) - c0) / t;
                best = dt < best ? dt : best;
                bestc = dc < bestc ? dc : bestc;
            }
            /* wall-clock rate, and the rate per CPU-second of each thread (what the same
             * threads would reach on cores of their own) */
            double work = kind == 0 || kind == 4 ? (double)(n * sizeof(float))
                 : kind >= 5 ? ops[kind] * 4.0 * (double)AMX_ITERS * t
                             : ops[kind] * 12.0 * (double)ITERS * t;
            printf("%-10s threads=%d  %8.1f %s (wall)  %8.1f (per cpu-time)\n", names[kind],
                   t, work / best / 1e9, kind % 4 == 0 ? "GB/s" : "G(FL)OP/s", work / bestc / 1e9);
        }
        herd_pool_free(pool);
    }
    herd_free_aligned(buf);
    return 0;
}
