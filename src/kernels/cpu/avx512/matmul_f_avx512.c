/*
 * matmul_f_avx512.c - matrix products for float weights (F32, F16, BF16) with AVX-512.
 *
 *  - gemv (n_b < 9): each weight row streamed once for all n_b activation rows, two rows
 *    at a time for up to 3 activation rows (each activation load feeds two FMAs), two FMA
 *    chains per (row, activation);
 *    F16 widened with vcvtph2ps, BF16 by a 16-bit shift; activations f32.
 *  - gemm (n_b >= 9): per chunk of K (KC) and panel of 32 rows, the weights are transposed
 *    into a panel where two vectors hold element k of 32 rows; the 32 x 12 register tile
 *    then does two FMAs per (k, activation row) on one broadcast of the activation.
 *    BF16 weights on CPUs with AVX512_BF16 pair with BF16 activations (as ggml does) and
 *    use vdpbf16ps on (k, k+1) pairs: twice the FMA rate, products exact, sums in f32.
 */
#include "kernels/kernels.h"

#include <immintrin.h>

enum ftype { FT_F32, FT_F16, FT_BF16, FT_BF16_DP };

static inline size_t elem_bytes(enum ftype t)
{
    return t == FT_F32 ? 4 : 2;
}

/* 16 weights at element k of a row as floats; mask for the tail. */
static inline __attribute__((always_inline)) __m512 load_w(enum ftype t, const uint8_t *row,
                                                           int64_t k, __mmask16 m)
{
    if (t == FT_F32)
        return _mm512_maskz_loadu_ps(m, row + 4 * k);
    __m256i h = _mm256_maskz_loadu_epi16(m, row + 2 * k);
    if (t == FT_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

#define GEMV_MAX_B 8 /* activation rows per pass over the weights (decode, a few slots) */

/* Rows r, r + 1 (nr = 2, nb <= 3) or r alone (nr = 1) times nb activation rows, each row
 * read once: per 16 weights one conversion and nb FMAs, two independent chains per (row,
 * act) so the FMA latency hides behind the loads. out[i * nb + b] = row i . x[b]. Each
 * (row, act) pair has its own chains, so its result does not depend on nr or nb. */
static inline __attribute__((always_inline)) void rows_dot(enum ftype t, int nr, int nb,
                                                           const uint8_t *row, size_t rb,
                                                           const float *const *x, int64_t n,
                                                           float *out)
{
    __m512 acc[2][GEMV_MAX_B][2];
    for (int i = 0; i < nr; i++)
        for (int b = 0; b < nb; b++)
            acc[i][b][0] = acc[i][b][1] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 32 <= n; k += 32) {
        /* 8 KB ahead, every line of every row (see PREFETCH in gemv_q_avx512.c) */
        for (int i = 0; i < nr; i++)
            for (size_t l = 0; l < 32 * elem_bytes(t); l += 64)
                _mm_prefetch((const char *)(row + i * rb + k * elem_bytes(t) + 8192 + l),
                             _MM_HINT_T0);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m512 w[2];
#pragma GCC unroll 2
            for (int i = 0; i < nr; i++)
                w[i] = load_w(t, row + i * rb, k + 16 * h, 0xffff);
#pragma GCC unroll 8
            for (int b = 0; b < nb; b++) {
                __m512 xv = _mm512_loadu_ps(x[b] + k + 16 * h);
#pragma GCC unroll 2
                for (int i = 0; i < nr; i++)
                    acc[i][b][h] = _mm512_fmadd_ps(w[i], xv, acc[i][b][h]);
            }
        }
    }
    for (; k < n; k += 16) {
        __mmask16 m = n - k >= 16 ? 0xffff : (__mmask16)((1u << (n - k)) - 1);
        for (int i = 0; i < nr; i++) {
            __m512 w = load_w(t, row + i * rb, k, m);
            for (int b = 0; b < nb; b++)
                acc[i][b][0] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m, x[b] + k),
                                               acc[i][b][0]);
        }
    }
    for (int i = 0; i < nr; i++)
        for (int b = 0; b < nb; b++)
            out[i * nb + b] = _mm512_reduce_add_ps(_mm512_add_ps(acc[i][b][0], acc[i][b][1]));
}

/* ---- gemm */

#define KC 128 /* weights of a row per panel: 32 rows x 128 x 4 bytes = 16 KB, in L1 */
#define MR 32  /* rows per panel: two vectors per k */
#define NR 12  /* activation rows per tile: 24 accumulators + 2 weight vectors + 1 broadcast */

/* Rows r .. r + nr - 1 (nr <= 32; missing rows repeat the last), elements k0 .. k0 + kc - 1,
 * into p: f32 panel p[k][32]; bf16 pair panel p[k/2][32] as uint32 words. */
static inline __attribute__((always_inline)) void
repack(enum ftype t, float *p, const uint8_t *w, size_t rb, int64_t r, int64_t nr, int64_t k0,
       int64_t kc)
{
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i last = _mm512_set1_epi32((int)nr - 1), rbv = _mm512_set1_epi32((int)rb);
    const __m512i rows[2] = {
        _mm512_mullo_epi32(_mm512_min_epi32(iota, last), rbv),
        _mm512_mullo_epi32(_mm512_min_epi32(_mm512_add_epi32(iota, _mm512_set1_epi32(16)),
                                            last),
                           rbv)};
    const uint8_t *base = w + (size_t)r * rb + (size_t)k0 * elem_bytes(t);
    for (int h = 0; h < 2; h++) {
        if (t == FT_F32) {
            for (int64_t k = 0; k < kc; k++)
                _mm512_storeu_ps(p + MR * k + 16 * h,
                                 _mm512_i32gather_ps(rows[h], base + 4 * k, 1));
            continue;
        }
        for (int64_t k = 0; k < kc; k += 2) { /* kc is even here */
            __m512i v = _mm512_i32gather_epi32(rows[h], base + 2 * k, 1);
            float *d = p + MR * k + 16 * h;
            if (t == FT_BF16_DP) {
                _mm512_storeu_si512(p + MR * (k / 2) + 16 * h, v);
            } else if (t == FT_F16) {
                _mm512_storeu_ps(d, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)));
                _mm512_storeu_ps(d + MR,
                                 _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16))));
            } else {
                _mm512_storeu_ps(d, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
                _mm512_storeu_ps(d + MR, _mm512_castsi512_ps(_mm512_andnot_si512(
                                             _mm512_set1_epi32(0xffff), v)));
            }
        }
    }
}

/* y[j][0..31] (+)= panel . x[j] over the chunk, for nb <= NR activation rows; xp holds the
 * chunk's activations as 32-bit words k-major, NR per k (see pack_x). Per k: two panel
 * loads, one broadcast per activation row, two FMAs per broadcast, so 2 + nb loads feed
 * 2 nb FMAs and the FMA ports, not the load ports, set the pace. */
static inline __attribute__((always_inline)) void
tile(enum ftype t, int nb, const float *p, const uint32_t *xp, int64_t kc, float *y,
     int64_t ldy, __mmask16 m0, __mmask16 m1, int first)
{
    __m512 a0[NR], a1[NR];
    #pragma GCC unroll 12
    for (int j = 0; j < nb; j++)
        a0[j] = a1[j] = _mm512_setzero_ps();
    const int64_t nk = t == FT_BF16_DP ? kc / 2 : kc;
    for (int64_t k = 0; k < nk; k++) {
        __m512 w0 = _mm512_loadu_ps(p + MR * k), w1 = _mm512_loadu_ps(p + MR * k + 16);
        /* keep the panel vectors and each broadcast in registers: otherwise gcc folds the
         * loads into every FMA and the tile issues two loads per FMA (load-bound) */
        __asm__("" : "+v"(w0), "+v"(w1));
        #pragma GCC unroll 12
        for (int j = 0; j < nb; j++) {
            __m512i xb = _mm512_set1_epi32((int)xp[NR * k + j]);
            __asm__("" : "+v"(xb));
            if (t == FT_BF16_DP) {
                a0[j] = _mm512_dpbf16_ps(a0[j], (__m512bh)w0, (__m512bh)xb);
                a1[j] = _mm512_dpbf16_ps(a1[j], (__m512bh)w1, (__m512bh)xb);
            } else {
                a0[j] = _mm512_fmadd_ps(w0, _mm512_castsi512_ps(xb), a0[j]);
                a1[j] = _mm512_fmadd_ps(w1, _mm512_castsi512_ps(xb), a1[j]);
            }
        }
    }
    #pragma GCC unroll 12
    for (int j = 0; j < nb; j++) {
        float *yj = y + j * ldy;
        __m512 v0 = first ? a0[j] : _mm512_add_ps(a0[j], _mm512_maskz_loadu_ps(m0, yj));
        __m512 v1 = first ? a1[j] : _mm512_add_ps(a1[j], _mm512_maskz_loadu_ps(m1, yj + 16));
        _mm512_mask_storeu_ps(yj, m0, v0);
        _mm512_mask_storeu_ps(yj + 16, m1, v1);
    }
}

/* Activation rows b0 .. b0 + nb - 1, elements k0 .. k0 + kc - 1, as tiles of NR rows, each
 * k-major: xp[(tile * nk + k) * NR + j] (nk = kc, or kc / 2 bf16 pairs). The rows of x lie
 * a multiple of 4 KB apart in every Llama shape, so the tile's NR broadcasts of one k would
 * all fall in one L1 set and miss; packed, they share one or two cache lines. */
static inline __attribute__((always_inline)) void
pack_x(enum ftype t, uint32_t *xp, const uint8_t *xa, size_t xrb, int64_t b0, int64_t nb,
       int64_t k0, int64_t kc)
{
    const int64_t nk = t == FT_BF16_DP ? kc / 2 : kc;
    for (int64_t b = 0; b < nb; b++) {
        /* bf16 rows may start 2 bytes off a 4-byte boundary: words copied, not loaded */
        const uint8_t *x = xa + (size_t)(b0 + b) * xrb + 4 * (t == FT_BF16_DP ? k0 / 2 : k0);
        uint32_t *d = xp + (b / NR) * nk * NR + b % NR;
        for (int64_t k = 0; k < nk; k++)
            memcpy(&d[k * NR], x + 4 * k, 4);
    }
}

#define XB 240 /* activation rows per packed block: 240 x 128 x 4 bytes = 120 KB, in L2 */

/* ---- AMX BF16 (the amx table, with bf16 activations): TDPBF16PS takes the bf16 pair panel
 * as it is (16 pairs x 16 rows of 4 bytes per tile row) and the activations as 16 rows x 32
 * bf16 tiles; the products are exact in f32 and sum in f32 inside the tile, so a chunk's
 * 32 x 16 outputs leave the tile unit once. */

/* Activation rows b0 .. b0 + nb - 1, bf16 elements k0 .. k0 + kc - 1, as tiles of 16 rows x
 * KC elements (rows past nb zero): xt[tile][16][KC]. */
static void pack_amx_bf16(uint16_t *xt, const uint8_t *xa, size_t xrb, int64_t b0, int64_t nb,
                          int64_t k0, int64_t kc)
{
    for (int64_t b = 0; b < (nb + 15) / 16 * 16; b++) {
        uint16_t *d = xt + b * KC;
        if (b < nb)
            memcpy(d, (const uint16_t *)(xa + (size_t)(b0 + b) * xrb) + k0, (size_t)kc * 2);
        else
            memset(d, 0, (size_t)kc * 2);
    }
}

#define AMX_FENCE() __asm__ __volatile__("" ::: "memory") /* tile asm has no memory clobber */

/* y[j][0..31] (+)= panel . activation row j over the chunk (kc a multiple of 32), j < nb. */
__attribute__((target("amx-tile,amx-bf16"))) static inline void
tile_amx_bf16(const float *p, const uint16_t *xt, int64_t kc, float *y, int64_t ldy, int nb,
              __mmask16 m0, __mmask16 m1, int first)
{
    _Alignas(64) float c[16][32];
    AMX_FENCE();
    _tile_zero(3);
    _tile_zero(4);
    for (int64_t s = 0; s < kc / 32; s++) {
        const float *ps = p + s * 16 * MR; /* pairs 16 s .. 16 s + 15, 32 rows each */
        _tile_loadd(0, xt + 32 * s, KC * 2);
        _tile_loadd(1, ps, MR * 4);
        _tile_loadd(2, ps + 16, MR * 4);
        _tile_dpbf16ps(3, 0, 1);
        _tile_dpbf16ps(4, 0, 2);
    }
    _tile_stored(3, &c[0][0], sizeof c[0]);
    _tile_stored(4, &c[0][16], sizeof c[0]);
    AMX_FENCE();
    for (int j = 0; j < nb; j++) {
        float *yj = y + j * ldy;
        __m512 v0 = _mm512_load_ps(&c[j][0]), v1 = _mm512_load_ps(&c[j][16]);
        if (!first) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, yj));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, yj + 16));
        }
        _mm512_mask_storeu_ps(yj, m0, v0);
        _mm512_mask_storeu_ps(yj + 16, m1, v1);
    }
}

/* Tiles: activations in tmm0, the panel's rows 0-15 and 16-31 in tmm1/2, sums in tmm3/4;
 * all 16 rows x 64 bytes. Per call (the configuration is per thread), released after. */
__attribute__((target("amx-tile"))) static void amx_configure_bf16(void)
{
    _Alignas(64) uint8_t cfg[64] = {0};
    cfg[0] = 1;
    for (int i = 0; i < 5; i++) {
        cfg[16 + 2 * i] = 64;
        cfg[48 + i] = 16;
    }
    __asm__ __volatile__("" ::: "memory"); /* the intrinsic's asm names only 8 bytes of cfg */
    _tile_loadconfig(cfg);
}

#define TILE(nb) tile(t, nb, p, xp + (b / NR) * nk * NR, kc, yb, ldy, m0, m1, k0 == 0)

static inline __attribute__((always_inline)) void
gemm(enum ftype t, int amx, float *y, int64_t ldy, const uint8_t *w, const uint8_t *xa,
     size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    float p[KC * MR] __attribute__((aligned(64)));
    uint32_t xp[XB * KC] __attribute__((aligned(64))); /* or, on AMX, XB x KC bf16 tiles */
    const size_t eb = elem_bytes(t == FT_BF16_DP ? FT_BF16 : t), rb = (size_t)n * eb;
    amx = amx && t == FT_BF16_DP;
    if (amx)
        amx_configure_bf16();
    /* bf16 tiles take half the packed bytes: twice the rows per block, so each repacked
     * panel (its gathers now the larger cost) serves twice the activation rows */
    const int64_t xb = amx ? 2 * XB : XB;
    for (int64_t b0 = 0; b0 < n_b; b0 += xb) {
        const int64_t nbb = n_b - b0 < xb ? n_b - b0 : xb;
        for (int64_t k0 = 0; k0 < n; k0 += KC) {
            const int64_t kc = n - k0 < KC ? n - k0 : KC;
            const int64_t nk = t == FT_BF16_DP ? kc / 2 : kc;
            const int tiles = amx && kc % 32 == 0; /* a ragged last chunk: vdpbf16ps */
            if (tiles)
                pack_amx_bf16((uint16_t *)xp, xa, xrb, b0, nbb, k0, kc);
            else
                pack_x(t, xp, xa, xrb, b0, nbb, k0, kc);
            for (int64_t r = r0; r < r1; r += MR) {
                const int64_t nr = r1 - r < MR ? r1 - r : MR;
                const __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
                const __mmask16 m1 = nr >= 32  ? 0xffff
                                     : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1)
                                               : 0;
                repack(t, p, w, rb, r, nr, k0, kc);
                /* the next panel's rows, while this one computes: its 32 short row pieces
                 * are too many streams for the hardware prefetcher, and the gathers of
                 * repack stalled on DRAM */
                if (r + MR < r1) {
                    const uint8_t *nx = w + (size_t)(r + MR) * rb + (size_t)k0 * eb;
                    const int64_t nnr = r1 - r - MR < MR ? r1 - r - MR : MR;
                    for (int64_t i = 0; i < nnr; i++)
                        for (int64_t l = 0; l < kc * (int64_t)eb; l += 64)
                            _mm_prefetch((const char *)(nx + (size_t)i * rb + l), _MM_HINT_T1);
                }
                for (int64_t b = 0; tiles && b < nbb; b += 16)
                    tile_amx_bf16(p, (const uint16_t *)xp + b * KC, kc, y + (b0 + b) * ldy + r,
                                  ldy, nbb - b < 16 ? (int)(nbb - b) : 16, m0, m1, k0 == 0);
                for (int64_t b = 0; !tiles && b < nbb; b += NR) {
                    float *yb = y + (b0 + b) * ldy + r;
                    switch (nbb - b < NR ? nbb - b : NR) {
                    case 1: TILE(1); break;
                    case 2: TILE(2); break;
                    case 3: TILE(3); break;
                    case 4: TILE(4); break;
                    case 5: TILE(5); break;
                    case 6: TILE(6); break;
                    case 7: TILE(7); break;
                    case 8: TILE(8); break;
                    case 9: TILE(9); break;
                    case 10: TILE(10); break;
                    case 11: TILE(11); break;
                    default: TILE(12); break;
                    }
                }
            }
        }
    }
    if (amx)
        _tile_release();
}

#undef TILE

/* At or above: the gemm. Below, one pass of the streamed rows: as fast for 4..8 rows
 * (memory-bound; measured bf16 4096 x 4096, 8 rows, 2 threads: gemm 78 GOP/s, see
 * bench/kernels/README.md), and each activation row gets its one-row arithmetic, so a
 * server's few slots or a speculative verify of up to 8 rows round as decode does. */
#define GEMM_MIN_NB 9

static inline __attribute__((always_inline)) void
matmul_f(enum ftype t, float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
         int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    if (n_b >= GEMM_MIN_NB && n % 2 == 0) {
        gemm(t, 0, y, ldy, w, xa, xrb, n, n_b, r0, r1);
        return;
    }
    const size_t rb = (size_t)n * elem_bytes(t);
    for (int64_t b0 = 0; b0 < n_b; b0 += GEMV_MAX_B) {
        const int nb = n_b - b0 < GEMV_MAX_B ? (int)(n_b - b0) : GEMV_MAX_B;
        const float *x[GEMV_MAX_B];
        for (int b = 0; b < nb; b++)
            x[b] = (const float *)((const uint8_t *)xa + (size_t)(b0 + b) * xrb);
        for (int64_t r = r0; r < r1;) {
            const uint8_t *row = (const uint8_t *)w + (size_t)r * rb;
            float o[2 * GEMV_MAX_B];
            const int nr = r + 1 < r1 && nb <= 3 ? 2 : 1;
            if (nr == 2)
                switch (nb) {
                case 1: rows_dot(t, 2, 1, row, rb, x, n, o); break;
                case 2: rows_dot(t, 2, 2, row, rb, x, n, o); break;
                default: rows_dot(t, 2, 3, row, rb, x, n, o); break;
                }
            else
                switch (nb) { /* 16 accumulators at most */
                case 1: rows_dot(t, 1, 1, row, rb, x, n, o); break;
                case 2: rows_dot(t, 1, 2, row, rb, x, n, o); break;
                case 3: rows_dot(t, 1, 3, row, rb, x, n, o); break;
                case 4: rows_dot(t, 1, 4, row, rb, x, n, o); break;
                case 5: rows_dot(t, 1, 5, row, rb, x, n, o); break;
                case 6: rows_dot(t, 1, 6, row, rb, x, n, o); break;
                case 7: rows_dot(t, 1, 7, row, rb, x, n, o); break;
                default: rows_dot(t, 1, 8, row, rb, x, n, o); break;
                }
            for (int i = 0; i < nr; i++)
                for (int b = 0; b < nb; b++)
                    y[(b0 + b) * ldy + r + i] = o[i * nb + b];
            r += nr;
        }
    }
}

static void matmul_f32_avx512(float *y, int64_t ldy, const void *w, const void *xa,
                              size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_f(FT_F32, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

static void matmul_f16_avx512(float *y, int64_t ldy, const void *w, const void *xa,
                              size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_f(FT_F16, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

static void matmul_bf16_avx512(float *y, int64_t ldy, const void *w, const void *xa,
                               size_t xrb, int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_f(FT_BF16, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

/* Row r of BF16 weights times a BF16 activation row, n even: 32 products per vdpbf16ps. */
__attribute__((target("avx512bf16"))) static inline float row_dot_bf16(const void *w, int64_t r,
                                                                       const uint8_t *x,
                                                                       int64_t n)
{
    const uint8_t *row = (const uint8_t *)w + (size_t)r * (size_t)n * 2;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t k = 0;
    for (; k + 128 <= n; k += 128) {
#define DP(acc, o)                                                                         \
    acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512(row + 2 * (k + (o))),       \
                           (__m512bh)_mm512_loadu_si512(x + 2 * (k + (o))))
        DP(a0, 0);
        DP(a1, 32);
        DP(a2, 64);
        DP(a3, 96);
#undef DP
    }
    for (; k < n; k += 32) {
        __mmask16 m = n - k >= 32 ? 0xffff : (__mmask16)((1u << ((n - k) / 2)) - 1);
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_maskz_loadu_epi32(m, row + 2 * k),
                              (__m512bh)_mm512_maskz_loadu_epi32(m, x + 2 * k));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

/* bf16 activations (opt-in, HERD_BF16_ACT) stream the weights once per activation row
 * below the gemm, so it starts at 4 rows there (not batch invariant past 3 rows). */
#define GEMM_MIN_NB_DP 4

/* BF16 weights x BF16 activations (n even: the pairs of vdpbf16ps; with amx, the prefill
 * products on tiles). */
__attribute__((target("avx512bf16"))) static inline __attribute__((always_inline)) void
matmul_bf16_bf16(int amx, float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                 int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    if (n % 2 == 0 && n_b >= GEMM_MIN_NB_DP) {
        gemm(FT_BF16_DP, amx, y, ldy, w, xa, xrb, n, n_b, r0, r1);
        return;
    }
    if (n % 2 == 0) {
        for (int64_t b = 0; b < n_b; b++) {
            const uint8_t *x = (const uint8_t *)xa + (size_t)b * xrb;
            for (int64_t r = r0; r < r1; r++)
                y[b * ldy + r] = row_dot_bf16(w, r, x, n);
        }
        return;
    }
    /* odd n: widen the activation pairs one row at a time (never in Llama shapes) */
    const uint16_t *wr = w;
    for (int64_t b = 0; b < n_b; b++) {
        const uint16_t *x = (const uint16_t *)((const uint8_t *)xa + (size_t)b * xrb);
        for (int64_t r = r0; r < r1; r++) {
            float s = 0.0f;
            for (int64_t k = 0; k < n; k++)
                s += bf16_to_f32(wr[r * n + k]) * bf16_to_f32(x[k]);
            y[b * ldy + r] = s;
        }
    }
}

__attribute__((target("avx512bf16"))) static void
matmul_bf16_bf16_avx512(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                        int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_bf16_bf16(0, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

__attribute__((target("avx512bf16"))) static void
matmul_bf16_bf16_amx(float *y, int64_t ldy, const void *w, const void *xa, size_t xrb,
                     int64_t n, int64_t n_b, int64_t r0, int64_t r1)
{
    matmul_bf16_bf16(1, y, ldy, w, xa, xrb, n, n_b, r0, r1);
}

/* The amx table: BF16 weights with bf16 activations (when asked for, as on avx512) run
 * their prefill on AMX BF16 tiles where the CPU has them. */
void kernels_fill_matmul_f_amx(struct herd_cpu_kernels *k)
{
    if (herd_cpu_features()->amx_bf16 && k->mm[HERD_DTYPE_BF16].act_type == HERD_DTYPE_BF16)
        k->mm[HERD_DTYPE_BF16].matmul = matmul_bf16_bf16_amx;
}

void kernels_fill_matmul_f_avx512(struct herd_cpu_kernels *k)
{
    k->mm[HERD_DTYPE_F32].matmul = matmul_f32_avx512;
    k->mm[HERD_DTYPE_F16].matmul = matmul_f16_avx512;
    k->mm[HERD_DTYPE_BF16].matmul = matmul_bf16_avx512;
    /* BF16 x BF16 (vdpbf16ps) rounds the activations to bf16: 1e-2 off float32 references
     * on logits, which herd promises to match. It is used only when asked for. */
    if (herd_cpu_features()->avx512bf16 && kernels_options()->bf16_act)
        k->mm[HERD_DTYPE_BF16] = (struct matmul_kernel){HERD_DTYPE_BF16, act_convert_bf16_ref,
                                                        matmul_bf16_bf16_avx512};
}
