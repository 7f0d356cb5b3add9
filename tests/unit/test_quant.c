/*
 * test_quant.c - the quant/ layer: the dtype table, golden vectors (scripts/golden_quant.py:
 * dequantize bit-exact against the gguf Python package; quantize byte-exact against
 * gguf-py's quantizers for BF16/Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 and against ggml's C reference
 * quantizers for Q4_K/Q5_K/Q6_K), round-trip error bounds for every type, and argument
 * errors.
 */
#include "check.h"
#include "quant/quant.h"

#include <float.h>  /* FLT_MAX */
#include <math.h>   /* sqrt, NAN, INFINITY */
#include <stdio.h>  /* snprintf */
#include <stdlib.h> /* getenv */

struct size_case {
    herd_dtype t;
    const char *name;
    int64_t block;
    size_t bytes;
};

static void test_table(void)
{
    static const struct size_case cases[] = {
        {HERD_DTYPE_F32, "f32", 1, 4},      {HERD_DTYPE_F16, "f16", 1, 2},
        {HERD_DTYPE_BF16, "bf16", 1, 2},    {HERD_DTYPE_Q4_0, "q4_0", 32, 18},
        {HERD_DTYPE_Q4_1, "q4_1", 32, 20},  {HERD_DTYPE_Q5_0, "q5_0", 32, 22},
        {HERD_DTYPE_Q5_1, "q5_1", 32, 24},  {HERD_DTYPE_Q8_0, "q8_0", 32, 34},
        {HERD_DTYPE_Q8_1, "q8_1", 32, 36},  {HERD_DTYPE_Q2_K, "q2_k", 256, 84},
        {HERD_DTYPE_Q3_K, "q3_k", 256, 110}, {HERD_DTYPE_Q4_K, "q4_k", 256, 144},
        {HERD_DTYPE_Q5_K, "q5_k", 256, 176}, {HERD_DTYPE_Q6_K, "q6_k", 256, 210},
        {HERD_DTYPE_Q8_K, "q8_k", 256, 292},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct size_case *c = &cases[i];
        CHECK_MSG(dtype_block_size(c->t) == c->block, "%s", c->name);
        CHECK_MSG(dtype_block_bytes(c->t) == c->bytes, "%s", c->name);
        CHECK_MSG(herd_dtype_name(c->t) && strcmp(herd_dtype_name(c->t), c->name) == 0, "%s",
                  c->name);
        CHECK(dtype_row_bytes(c->t, c->block * 3) == c->bytes * 3);
        if (c->block > 1)
            CHECK(dtype_row_bytes(c->t, c->block + 1) == 0);
    }
    CHECK(dtype_row_bytes(HERD_DTYPE_Q4_K, 4096) == 16 * 144);
    CHECK(herd_dtype_name((herd_dtype)16) == NULL);
    CHECK(dtype_block_size((herd_dtype)99) == 0);
    CHECK(dtype_row_bytes((herd_dtype)99, 32) == 0);
    CHECK(dtype_supported(HERD_DTYPE_Q6_K) && !dtype_supported(HERD_DTYPE_Q2_K));
    CHECK(dtype_can_quantize(HERD_DTYPE_Q4_K) && !dtype_can_quantize(HERD_DTYPE_Q3_K));
}

/* ---- golden vectors */

static uint32_t rd_u32(const uint8_t **p)
{
    uint32_t v;
    memcpy(&v, *p, 4);
    *p += 4;
    return v;
}

static void test_golden(void)
{
    const char *dir = getenv("HERD_TESTS");
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/quant/gguf_py.bin", dir ? dir : "tests");
    struct herd_map m;
    if (herd_map_file(path, &m) != HERD_OK) {
        printf("FAIL: cannot read %s: %s\n", path, herd_last_error());
        check_fail++;
        return;
    }
    const uint8_t *p = m.data, *end = m.data + m.size;
    CHECK(m.size > 12 && memcmp(p, "HQGD", 4) == 0);
    p += 4;
    CHECK(rd_u32(&p) == 1);
    uint32_t n_rec = rd_u32(&p);
    CHECK(n_rec >= 20);
    int n_quant_checked = 0;
    for (uint32_t r = 0; r < n_rec && p + 12 <= end; r++) {
        herd_dtype t = (herd_dtype)rd_u32(&p);
        int64_t n = rd_u32(&p);
        uint32_t flags = rd_u32(&p);
        size_t rb = dtype_row_bytes(t, n);
        CHECK_MSG(rb > 0, "record %u type %d", r, (int)t);
        if (rb == 0)
            break;
        /* Copies: the file's bytes are not aligned for the block structs. */
        float *in = malloc((size_t)n * 4), *deq = malloc((size_t)n * 4);
        float *got = malloc((size_t)n * 4);
        uint8_t *blocks = malloc(rb), *mine = malloc(rb);
        if (flags & 1) {
            memcpy(in, p, (size_t)n * 4);
            p += n * 4;
        }
        memcpy(blocks, p, rb);
        p += rb;
        memcpy(deq, p, (size_t)n * 4);
        p += n * 4;
        CHECK(dequantize_row(t, got, blocks, n) == HERD_OK);
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++)
            bad += memcmp(&got[i], &deq[i], 4) != 0;
        CHECK_MSG(bad == 0, "dequantize %s record %u: %lld of %lld values differ from gguf-py",
                  herd_dtype_name(t), r, (long long)bad, (long long)n);
        if (flags & 1) {
            CHECK(quantize_row(t, mine, in, n) == HERD_OK);
            size_t diff = 0;
            for (size_t i = 0; i < rb; i++)
                diff += mine[i] != blocks[i];
            CHECK_MSG(diff == 0, "quantize %s record %u: %zu of %zu bytes differ from gguf-py",
                      herd_dtype_name(t), r, diff, rb);
            n_quant_checked++;
        }
        free(in);
        free(deq);
        free(got);
        free(blocks);
        free(mine);
    }
    CHECK(p == end);
    /* 18 from gguf-py's quantizers, 9 K-quant rows from ggml's C reference */
    CHECK(n_quant_checked >= 27);
    herd_unmap(&m);
}

/* ---- round trips */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float randn(void)
{
    /* xorshift64* + Box-Muller: deterministic, no libc rand. */
    float u[2];
    for (int k = 0; k < 2; k++) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        u[k] = (float)((rng_state * 2685821657736338717ull) >> 40) / 16777216.0f;
    }
    return sqrtf(-2.0f * logf(u[0] + 1e-12f)) * cosf(6.2831853f * u[1]);
}

/* Normalised mean squared error of quantize -> dequantize on x. */
static double nmse(herd_dtype t, const float *x, int64_t n)
{
    size_t rb = dtype_row_bytes(t, n);
    void *q = herd_malloc_aligned(rb, 64);
    float *y = malloc((size_t)n * sizeof *y);
    double num = 0, den = 0;
    if (quantize_row(t, q, x, n) == HERD_OK && dequantize_row(t, y, q, n) == HERD_OK) {
        for (int64_t i = 0; i < n; i++) {
            num += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
            den += (double)x[i] * x[i];
        }
    } else {
        num = 1e9;
        den = 1;
    }
    herd_free_aligned(q);
    free(y);
    return num / den;
}

static void test_roundtrip(void)
{
    enum { N = 4096 };
    static float x[N];
    for (int i = 0; i < N; i++)
        x[i] = randn() * 0.03f;
    x[7] = 0.4f; /* an outlier, as real weights have */
    struct { herd_dtype t; double max_nmse; } cases[] = {
        {HERD_DTYPE_F32, 0.0},       {HERD_DTYPE_F16, 1e-6},     {HERD_DTYPE_BF16, 2e-5},
        {HERD_DTYPE_Q8_0, 1e-4},     {HERD_DTYPE_Q8_K, 3e-4},    {HERD_DTYPE_Q6_K, 1e-3},
        {HERD_DTYPE_Q5_0, 5e-3},     {HERD_DTYPE_Q5_1, 5e-3},    {HERD_DTYPE_Q5_K, 3e-3},
        {HERD_DTYPE_Q4_0, 2e-2},     {HERD_DTYPE_Q4_1, 2e-2},    {HERD_DTYPE_Q4_K, 1e-2},
    };
    double e[16] = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        e[i] = nmse(cases[i].t, x, N);
        CHECK_MSG(e[i] <= cases[i].max_nmse, "%s nmse %.3g > %.3g", herd_dtype_name(cases[i].t),
                  e[i], cases[i].max_nmse);
        printf("  %-5s nmse %.3e\n", herd_dtype_name(cases[i].t), e[i]);
    }
    /* The K-quants' scale search must beat plain round-to-nearest of the same width. */
    CHECK(e[11] < e[9]);  /* q4_k < q4_0 */
    CHECK(e[8] < e[6]);   /* q5_k < q5_0 */
    CHECK(e[5] < e[8]);   /* q6_k < q5_k */

    /* All-zero input quantizes to zeros and dequantizes to exact zeros. */
    static float zero[512], out[512];
    static uint8_t q[4096];
    herd_dtype all[] = {HERD_DTYPE_Q4_0, HERD_DTYPE_Q4_1, HERD_DTYPE_Q5_0, HERD_DTYPE_Q5_1,
                        HERD_DTYPE_Q8_0, HERD_DTYPE_Q4_K, HERD_DTYPE_Q5_K, HERD_DTYPE_Q6_K,
                        HERD_DTYPE_Q8_K};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        out[3] = 1.0f;
        CHECK(quantize_row(all[i], q, zero, 512) == HERD_OK);
        CHECK(dequantize_row(all[i], out, q, 512) == HERD_OK);
        int nz = 0;
        for (int j = 0; j < 512; j++)
            nz += out[j] != 0.0f;
        CHECK_MSG(nz == 0, "%s: zeros came back as %d non-zeros", herd_dtype_name(all[i]), nz);
    }
}

static void test_q8k_bsums(void)
{
    float x[QK_K];
    for (int i = 0; i < QK_K; i++)
        x[i] = randn();
    struct block_q8_k b;
    quantize_row_q8_k_ref(&b, x, QK_K);
    int ok = 1;
    for (int j = 0; j < QK_K / 16; j++) {
        int s = 0;
        for (int l = 0; l < 16; l++)
            s += b.qs[16 * j + l];
        ok &= s == b.bsums[j];
    }
    CHECK(ok);
}

static void test_errors(void)
{
    float x[64] = {0};
    uint8_t q[256];
    CHECK(quantize_row(HERD_DTYPE_Q4_0, q, x, 33) == HERD_ERR_INVALID);
    CHECK(strstr(herd_last_error(), "q4_0") != NULL);
    CHECK(dequantize_row(HERD_DTYPE_Q4_K, x, q, 64) == HERD_ERR_INVALID);
    CHECK(dequantize_row(HERD_DTYPE_Q2_K, x, q, 0) == HERD_ERR_UNSUPPORTED);
    CHECK(quantize_row(HERD_DTYPE_Q3_K, q, x, 0) == HERD_ERR_UNSUPPORTED);
    CHECK(dequantize_row((herd_dtype)77, x, q, 32) == HERD_ERR_UNSUPPORTED);
}

/* NaN and infinities: every integer block type refuses the row (naming the element) and
 * writes all-zero blocks; the float types carry them through. The zero-block contract is
 * what keeps callers that ignore the status (the Q8_0 KV cache) defined. */
static void test_nonfinite(void)
{
    static const herd_dtype blocks[] = {HERD_DTYPE_Q4_0, HERD_DTYPE_Q4_1, HERD_DTYPE_Q5_0,
                                        HERD_DTYPE_Q5_1, HERD_DTYPE_Q8_0, HERD_DTYPE_Q4_K,
                                        HERD_DTYPE_Q5_K, HERD_DTYPE_Q6_K, HERD_DTYPE_Q8_K};
    struct case_ {
        float v;
        int at;
        const char *word;
    } cases[] = {{NAN, 0, "NaN"}, {-NAN, 300, "NaN"}, {INFINITY, 511, "infinite"},
                 {-INFINITY, 17, "infinite"}};
    static float x[512], y[512];
    static uint8_t q[4096];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int i = 0; i < 512; i++)
            x[i] = randn();
        x[cases[c].at] = cases[c].v;
        char want[32];
        snprintf(want, sizeof want, "element %d ", cases[c].at);
        for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++) {
            memset(q, 0xAB, sizeof q);
            herd_clear_error();
            herd_status s = quantize_row(blocks[k], q, x, 512);
            CHECK_MSG(s == HERD_ERR_INVALID && strstr(herd_last_error(), want) &&
                      strstr(herd_last_error(), cases[c].word),
                      "%s, %s at %d: status %d, \"%s\"", herd_dtype_name(blocks[k]),
                      cases[c].word, cases[c].at, (int)s, herd_last_error());
            size_t rb = dtype_row_bytes(blocks[k], 512), nz = 0;
            for (size_t i = 0; i < rb; i++)
                nz += q[i] != 0;
            CHECK_MSG(nz == 0 && q[rb] == 0xAB, "%s: %zu non-zero bytes in a refused row",
                      herd_dtype_name(blocks[k]), nz);
        }
        CHECK(quantize_row(HERD_DTYPE_F16, q, x, 512) == HERD_OK);
        CHECK(dequantize_row(HERD_DTYPE_F16, y, q, 512) == HERD_OK);
        CHECK(isnan(cases[c].v) ? isnan(y[cases[c].at]) : y[cases[c].at] == cases[c].v);
        CHECK(quantize_row(HERD_DTYPE_BF16, q, x, 512) == HERD_OK);
    }
    /* Extreme finite rows are accepted and, under UBSan, convert nothing out of range:
     * the largest floats (max - min overflows to inf in the _1 types), and a subnormal
     * block maximum (d = amax / 127 subnormal, 1 / d infinite in Q8_0). */
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < 512; i++)
            x[i] = r == 0 ? ((i & 1) ? FLT_MAX : -FLT_MAX)
                 : r == 1 ? ((i % 3) ? 1e-40f : -3e-39f) : (i == 5 ? 2e-45f : 0.0f);
        for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++)
            CHECK_MSG(quantize_row(blocks[k], q, x, 512) == HERD_OK, "%s, extreme row %d",
                      herd_dtype_name(blocks[k]), r);
    }
}

int main(void)
{
    test_table();
    test_golden();
    test_roundtrip();
    test_q8k_bsums();
    test_errors();
    test_nonfinite();
    return check_done();
}
