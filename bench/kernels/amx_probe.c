/*
 * amx_probe.c - what one group of the exact int8 tile gemm costs, taken apart.
 *
 * The quantized AMX gemm (src/kernels/cpu/avx512/matmul_q_avx512.c, tiles_amx) runs, per
 * 32-weight group, one 16 x 16 x 32 TDPBUSD product (two tile loads), a tile store of its
 * 16 x 16 int32 sums, and 16 vectors of float steps (cvt, two FMAs, a broadcast scale)
 * on them, pipelined over two accumulator tiles. This probe runs that loop on L1/L2-
 * resident operands with parts switched off, so the cost of each part and how much they
 * overlap can be read off: ns per group product, and the GOP/s that rate means.
 *
 *   cmake --build BUILD --target amx_probe && BUILD/amx_probe [rounds=2000]
 */
#include "base/base.h"

#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GPC 16 /* groups per 512-weight chunk */
#define NT 16  /* activation tiles (256 rows) per chunk, as a 256-token prefill */

/* REG: the float steps convert 8 vectors kept in registers instead of the stored sums, so
 * none waits on a tile store: what a store still costs beside them is the core resources
 * the two share, not the dependence. */
enum { PRODUCT = 1, STEPS = 2, STORE = 4, REG = 8 };

#define FENCE() __asm__ __volatile__("" ::: "memory")

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A: 16 weight rows x 32 codes (stride 512), B: 8 quads x 16 activation rows, C: 16 x 16 */
__attribute__((target("amx-tile"))) static void configure(void)
{
    _Alignas(64) uint8_t cfg[64] = {0};
    static const uint8_t colsb[6] = {32, 64, 64, 64, 32, 64}, rows[6] = {16, 8, 16, 16, 16, 8};
    cfg[0] = 1;
    for (int i = 0; i < 6; i++) {
        cfg[16 + 2 * i] = colsb[i];
        cfg[48 + i] = rows[i];
    }
    FENCE(); /* the intrinsic reads cfg through an 8-byte operand */
    _tile_loadconfig(cfg);
}

#define PROD(C, A, B, g)                                                                      \
    do {                                                                                      \
        if (parts & PRODUCT) {                                                                \
            _tile_loadd(A, wq + (g) * 32, 512);                                               \
            _tile_loadd(B, xq + (g) * 512, 64);                                               \
            _tile_zero(C);                                                                    \
            _tile_dpbusd(C, A, B);                                                            \
        }                                                                                     \
    } while (0)
#define STORE_C(C, buf)                                                                       \
    do {                                                                                      \
        if (parts & STORE)                                                                    \
            _tile_stored(C, buf, 64);                                                         \
    } while (0)
#define STEPS_OF(buf, g)                                                                      \
    do {                                                                                      \
        if (parts & STEPS) {                                                                  \
            const __m512 dv = _mm512_loadu_ps(da + (g) * 16), sv = _mm512_loadu_ps(ds + (g) * 16); \
            _Pragma("GCC unroll 16") for (int r = 0; r < 16; r++) acc[r] = _mm512_fmadd_ps(  \
                _mm512_fmadd_ps(_mm512_cvtepi32_ps((parts & REG)                              \
                                                       ? it[r % 8]                               \
                                                       : _mm512_load_si512(buf[r])),         \
                                dv, sv),                                                      \
                _mm512_set1_ps(s[(g) * 16 + r]), acc[r]);                                     \
        }                                                                                     \
    } while (0)

/* One chunk (16 groups) of one activation tile, as tiles_amx schedules it. */
__attribute__((target("amx-tile,amx-int8,avx512f"), always_inline)) static inline void
chunk(int parts, const uint8_t *wq, const float *s, const int8_t *xq, const float *da,
      const float *ds, float *y)
{
    _Alignas(64) int32_t c[2][16][16] = {{{0}}};
    __m512 acc[16];
    _Pragma("GCC unroll 16") for (int r = 0; r < 16; r++) acc[r] = _mm512_setzero_ps();
    __m512i it[8]; /* REG's inputs: 8 vectors, live in registers for the whole chunk */
    _Pragma("GCC unroll 8") for (int r = 0; r < 8; r++) it[r] = _mm512_set1_epi32(r - 3);
    FENCE();
    PROD(2, 0, 1, 0);
    _Pragma("GCC unroll 8") for (int g = 0; g < GPC; g += 2)
    {
        STORE_C(2, c[0]);
        PROD(3, 4, 5, g + 1);
        FENCE();
        if (g > 0)
            STEPS_OF(c[1], g - 1);
        STORE_C(3, c[1]);
        if (g + 2 < GPC)
            PROD(2, 0, 1, g + 2);
        FENCE();
        STEPS_OF(c[0], g);
    }
    FENCE();
    STEPS_OF(c[1], GPC - 1);
    for (int r = 0; r < 16; r++)
        _mm512_storeu_ps(y + 16 * r, _mm512_add_ps(acc[r], _mm512_loadu_ps(y + 16 * r)));
}

#define VARIANT(P)                                                                            \
    __attribute__((target("amx-tile,amx-int8,avx512f"), noinline)) static void run_##P(      \
        const uint8_t *wq, const float *s, const int8_t *xq, const float *da, const float *ds, \
        float *y)                                                                             \
    {                                                                                         \
        chunk(P, wq, s, xq, da, ds, y);                                                       \
    }
VARIANT(1)
VARIANT(2)
VARIANT(3)
VARIANT(4)
VARIANT(5)
VARIANT(6)
VARIANT(7)
VARIANT(10)
VARIANT(14)

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 2000;
    if (!herd_cpu_features()->amx_int8 || !herd_cpu_amx_permit()) {
        printf("amx_probe: no AMX int8 tiles for this process here\n");
        return 0;
    }
    uint8_t *wq = aligned_alloc(64, 16 * 512);
    int8_t *xq = aligned_alloc(64, NT * GPC * 512);
    float *s = aligned_alloc(64, GPC * 16 * sizeof(float));
    float *da = aligned_alloc(64, NT * GPC * 16 * sizeof(float));
    float *ds = aligned_alloc(64, NT * GPC * 16 * sizeof(float));
    float *y = aligned_alloc(64, NT * 256 * sizeof(float));
    if (!wq || !xq || !s || !da || !ds || !y)
        return 1;
    for (int i = 0; i < 16 * 512; i++)
        wq[i] = (uint8_t)rand();
    for (int i = 0; i < NT * GPC * 512; i++)
        xq[i] = (int8_t)rand();
    for (int i = 0; i < GPC * 16; i++)
        s[i] = 1e-3f * (float)(1 + i % 7);
    for (int i = 0; i < NT * GPC * 16; i++)
        da[i] = 1e-2f, ds[i] = 1e-3f;
    memset(y, 0, NT * 256 * sizeof(float));
    void (*fn[])(const uint8_t *, const float *, const int8_t *, const float *, const float *,
                 float *) = {NULL, run_1, run_2, run_3, run_4, run_5, run_6, run_7, run_10, run_14};
    static const char *const name[] = {"",
                                        "product (2 tile loads + TDPBUSD)",
                                        "float steps (16 vectors)",
                                        "product + float steps",
                                        "tile store",
                                        "product + tile store",
                                        "float steps + tile store",
                                        "all (the gemm's group loop)",
                                        "float steps on registers",
                                        "float steps on registers + store"};
    configure();
    printf("%-36s %10s %10s\n", "per 16x16x32 group product", "ns", "GOP/s");
    for (int p = 1; p < (int)(sizeof name / sizeof *name); p++) {
        double t0 = now();
        for (long r = 0; r < rounds; r++)
            for (int t = 0; t < NT; t++)
                fn[p](wq, s, xq + t * GPC * 512, da + t * GPC * 16, ds + t * GPC * 16,
                      y + t * 256);
        double ns = (now() - t0) * 1e9 / ((double)rounds * NT * GPC);
        printf("%-36s %10.1f %10.0f\n", name[p], ns, 2.0 * 16 * 16 * 32 / ns);
    }
    _tile_release();
    printf("(checksum %g)\n", (double)y[77]);
    free(wq), free(xq), free(s), free(da), free(ds), free(y);
    return 0;
}
