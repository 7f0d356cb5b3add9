/*
 * test_kernels_fp8.c - the FP8 e4m3 weight type: code decoding and rounding against their
 * definitions (all 256 codes; ties to even), and the product of every CPU variant (ref,
 * avx2, avx512 where present) against a double-precision evaluation of the fbgemm_fp8
 * rules written out here: per-token amax clamped to [1e-12, ub], inv = 448 / amax,
 * q = e4m3(x * inv), y = (sum q * w) * (1 / inv) * row scale; and prefill's token blocks
 * giving each token the bits it gets alone.
 */
#include "check.h"
#include "kernels/kernels.h"
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float decode_def(uint8_t b)
{
    int e = (b >> 3) & 15, m = b & 7;
    float v = e ? ldexpf(1.0f + m / 8.0f, e - 7) : ldexpf(m / 8.0f, -6);
    return (b & 0x80) ? -v : v;
}

static void test_codes(void)
{
    int bad = 0;
    for (int b = 0; b < 256; b++) {
        if ((b & 0x7f) == 0x7f)
            continue; /* NaN codes */
        float v = decode_def((uint8_t)b);
        bad += fp8_e4m3_to_f32((uint8_t)b) != v;
        bad += fp8_e4m3_round(v) != v;
        bad += v != 0 && fp8_e4m3_from_f32(v) != (uint8_t)b;
    }
    CHECK_MSG(bad == 0, "%d code mismatches", bad);
    /* ties to even: 1 + 1/16 is halfway between 1 and 1.125 -> 1; 1 + 3/16 -> 1.25 */
    CHECK(fp8_e4m3_round(1.0625f) == 1.0f);
    CHECK(fp8_e4m3_round(1.1875f) == 1.25f);
    CHECK(fp8_e4m3_round(1000.0f) == 448.0f && fp8_e4m3_round(-1000.0f) == -448.0f);
    CHECK(fp8_e4m3_round(0x1p-10f) == 0.0f);      /* half of the smallest subnormal: even */
    CHECK(fp8_e4m3_round(0x1.8p-9f) == 0x1p-8f);  /* 1.5 steps -> 2 steps */
}

/* Half the rows on each of two pool threads: pool jobs run with subnormals flushed
 * (base/threads.c), which must not touch e4m3 subnormal codes (m * 2^-9). */
struct pool_mm {
    const struct matmul_kernel *mk;
    float *y;
    const uint8_t *w, *xa;
    size_t xrb;
    int64_t n, nb, rows;
};

static void pool_mm_job(void *arg, int ith, int nth)
{
    struct pool_mm *j = arg;
    int64_t lo, hi;
    herd_split(j->rows, ith, nth, &lo, &hi);
    j->mk->matmul(j->y, j->rows, j->w, j->xa, j->xrb, j->n, j->nb, lo, hi);
}

static void test_matmul(void)
{
    const int64_t n = 1056, rows = 37, nb = 3; /* n: a chunk and a tail, not a multiple of 16 */
    const float ub = 2.5f;
    size_t rb = dtype_row_bytes(HERD_DTYPE_F8_E4M3, n);
    uint8_t *w = malloc(rb * rows), *codes = malloc(n);
    float *x = malloc(sizeof(float) * n * nb), *y = malloc(sizeof(float) * rows * nb);
    double *want = malloc(sizeof(double) * rows * nb);
    srand(7);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < n; c++) {
            uint8_t b = (uint8_t)(rand() & 0xff);
            codes[c] = (b & 0x7f) == 0x7f ? 0x3c : b;
        }
        if (r == 1) /* a row of e4m3 subnormals: m * 2^-9, m = 1..7 */
            for (int64_t c = 0; c < n; c++)
                codes[c] = (uint8_t)((c % 7 + 1) | (c % 2 ? 0x80 : 0));
        fp8_pack_row(w + r * rb, codes, 0.001f * (float)(r + 1), ub, n);
    }
    for (int64_t i = 0; i < n * nb; i++)
        x[i] = ((float)(rand() % 65536) / 65536.0f - 0.5f) * (i < n ? 10.0f : 1.0f); /* row 0 hits ub */
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + b * n;
        float amax = 0;
        for (int64_t c = 0; c < n; c++)
            amax = fmaxf(amax, fabsf(xb[c]));
        amax = fminf(fmaxf(amax, 1e-12f), ub);
        float inv = 448.0f / amax, xs = 1.0f / inv;
        for (int64_t r = 0; r < rows; r++) {
            double acc = 0;
            for (int64_t c = 0; c < n; c++)
                acc += (double)decode_def(w[r * rb + 8 + c]) * fp8_e4m3_round(xb[c] * inv);
            want[b * rows + r] = acc * xs * (0.001f * (float)(r + 1));
        }
    }
    const char *isas[] = {"ref", "avx2", "avx512"};
    size_t xrb = kernels_act_row_bytes(HERD_DTYPE_F8_E4M3, n);
    uint8_t *xa = malloc(xrb * nb);
    float *y2 = malloc(sizeof(float) * rows * nb);
    for (int i = 0; i < 3; i++) {
        const struct herd_cpu_kernels *k = kernels_get_isa(isas[i]);
        const struct matmul_kernel *mk = k ? &k->mm[HERD_DTYPE_F8_E4M3] : NULL;
        if (!mk || !mk->matmul)
            continue;
        /* activations quantized once per call, before the row split */
        CHECK(mk->act_type == HERD_DTYPE_F8_E4M3 && k->convert_w[HERD_DTYPE_F8_E4M3] &&
              xrb == (size_t)n + 8);
        for (int64_t b = 0; b < nb; b++)
            k->convert_w[HERD_DTYPE_F8_E4M3](xa + b * xrb, x + b * n, n, w);
        mk->matmul(y, rows, w, xa, xrb, n, nb, 0, rows);
        double worst = 0;
        for (int64_t j = 0; j < rows * nb; j++) {
            double d = fabs(y[j] - want[j]) / (fabs(want[j]) + 1e-3);
            worst = d > worst ? d : worst;
        }
        CHECK_MSG(worst < 1e-4, "%s: relative error %g", isas[i], worst);
        /* threads taking row ranges [0,5), [5,21), [21,37) give the same bits */
        mk->matmul(y2, rows, w, xa, xrb, n, nb, 0, 5);
        mk->matmul(y2, rows, w, xa, xrb, n, nb, 5, 21);
        mk->matmul(y2, rows, w, xa, xrb, n, nb, 21, rows);
        CHECK_MSG(memcmp(y, y2, sizeof(float) * rows * nb) == 0, "%s: split rows differ",
                  isas[i]);
        struct herd_pool *pool = NULL;
        if (herd_pool_new(2, &pool) == HERD_OK) {
            struct pool_mm j = {mk, y2, w, xa, xrb, n, nb, rows};
            memset(y2, 0, sizeof(float) * rows * nb);
            herd_pool_run(pool, pool_mm_job, &j);
            CHECK_MSG(memcmp(y, y2, sizeof(float) * rows * nb) == 0, "%s: pool jobs differ",
                      isas[i]);
            herd_pool_free(pool);
        }
    }
    /* the partner row: the token's scale, the weight's bound, the rounded codes */
    float xs0, ub0;
    fp8_row_header(xa, &xs0, &ub0);
    CHECK(ub0 == ub && xs0 == 1.0f / (448.0f / ub)); /* row 0 hits the bound */
    CHECK(fp8_e4m3_to_f32(xa[8 + 3]) == fp8_e4m3_round(x[3] * (448.0f / ub)));
    free(xa); free(y2);
    /* dequantize_row reads the same rows */
    float row[1056];
    CHECK(dequantize_row(HERD_DTYPE_F8_E4M3, row, w + rb, n) == HERD_OK);
    CHECK(row[5] == decode_def(w[rb + 8 + 5]) * 0.002f);
    free(w); free(codes); free(x); free(y); free(want);
}

/* Prefill takes tokens in blocks (block() of matmul_f8_frame): every variant must give each
 * token exactly the bits it gets alone, at odd sizes (rows not a multiple of the row
 * groups, tails shorter than a vector, token counts not a multiple of the block). */
static void test_batch_invariance(void)
{
    const int64_t ns[] = {1056, 45, 2100}, rows = 23, nbs[] = {2, 3, 5, 7, 9};
    const char *isas[] = {"ref", "avx2", "avx512"};
    srand(11);
    for (size_t in = 0; in < sizeof ns / sizeof ns[0]; in++) {
        int64_t n = ns[in], nb_max = 9;
        size_t rb = dtype_row_bytes(HERD_DTYPE_F8_E4M3, n), xrb = (size_t)n + 8;
        uint8_t *w = malloc(rb * rows), *codes = malloc((size_t)n), *xa = malloc(xrb * nb_max);
        float *x = malloc(sizeof(float) * (size_t)(n * nb_max));
        float *y = malloc(sizeof(float) * rows * nb_max), *y1 = malloc(sizeof(float) * rows);
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t c = 0; c < n; c++) {
                uint8_t b = (uint8_t)(rand() & 0xff);
                codes[c] = (b & 0x7f) == 0x7f ? 0x3c : b;
            }
            fp8_pack_row(w + r * rb, codes, 0.01f * (float)(r + 1), 1200.0f, n);
        }
        for (int64_t i = 0; i < n * nb_max; i++)
            x[i] = (float)(rand() % 65536) / 65536.0f - 0.5f;
        for (int i = 0; i < 3; i++) {
            const struct herd_cpu_kernels *k = kernels_get_isa(isas[i]);
            const struct matmul_kernel *mk = k ? &k->mm[HERD_DTYPE_F8_E4M3] : NULL;
            if (!mk || !mk->matmul)
                continue;
            for (int64_t b = 0; b < nb_max; b++)
                k->convert_w[HERD_DTYPE_F8_E4M3](xa + b * xrb, x + b * n, n, w);
            for (size_t j = 0; j < sizeof nbs / sizeof nbs[0]; j++) {
                int64_t nb = nbs[j], bad = 0;
                mk->matmul(y, rows, w, xa, xrb, n, nb, 0, rows);
                for (int64_t b = 0; b < nb; b++) {
                    mk->matmul(y1, rows, w, xa + b * xrb, xrb, n, 1, 0, rows);
                    bad += memcmp(y1, y + b * rows, sizeof(float) * rows) != 0;
                }
                CHECK_MSG(bad == 0, "%s n=%lld: %lld of %lld tokens differ from alone", isas[i],
                          (long long)n, (long long)bad, (long long)nb);
                /* a row range that starts off the row groups: the same bits */
                memcpy(y1, y, sizeof(float) * rows);
                mk->matmul(y, rows, w, xa, xrb, n, nb, 3, rows);
                CHECK_MSG(memcmp(y1, y, sizeof(float) * rows) == 0, "%s: rows from 3 differ",
                          isas[i]);
            }
        }
        free(w); free(codes); free(xa); free(x); free(y); free(y1);
    }
}

int main(void)
{
    test_codes();
    test_matmul();
    test_batch_invariance();
    return check_done();
}
