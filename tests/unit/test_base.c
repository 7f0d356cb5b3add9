/*
 * test_base.c - the base layer: half-precision conversion against exact values, the
 * growable buffer's cap and sticky error, the allocation-failure hook, the thread pool's
 * even split, and error messages.
 */
#include "base/base.h"
#include "check.h"

#include <math.h>

static void test_fp16(void)
{
    struct { float f; uint16_t h; } cases[] = {
        {0.0f, 0x0000}, {1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff},
        {5.9604645e-08f, 0x0001}, /* smallest subnormal */
        {6.1035156e-05f, 0x0400}, /* smallest normal */
        {1.0009766f, 0x3c01}, {INFINITY, 0x7c00}, {70000.0f, 0x7c00},
        {1.00048828125f, 0x3c00}, /* halfway: rounds to even */
        {1.00146484375f, 0x3c02}, /* halfway above odd: rounds up to even */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_MSG(f32_to_fp16(cases[i].f) == cases[i].h, "case %zu: %04x", i,
                  f32_to_fp16(cases[i].f));
    }
    /* Every finite half round-trips exactly. */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00)
            continue;
        if (f32_to_fp16(fp16_to_f32((uint16_t)h)) != h)
            bad++;
    }
    CHECK(bad == 0);
    CHECK(isnan(fp16_to_f32(f32_to_fp16(NAN))));
    CHECK(f32_to_bf16(1.0f) == 0x3f80);
    CHECK(f32_to_bf16(1.00390625f) == 0x3f80); /* halfway: even */
    CHECK(f32_to_bf16(1.01171875f) == 0x3f82); /* halfway above odd: up */
    CHECK(bf16_to_f32(0x4049) == 3.140625f);
}

static void test_buf(void)
{
    struct herd_buf b;
    buf_init(&b, 10);
    CHECK(buf_puts(&b, "hello") == HERD_OK);
    CHECK(buf_printf(&b, "%d", 1234) == HERD_OK);
    CHECK(b.len == 9 && strcmp(b.data, "hello1234") == 0);
    CHECK(buf_puts(&b, "xy") == HERD_ERR_INVALID);
    CHECK(buf_puts(&b, "") == HERD_ERR_INVALID); /* sticky */
    buf_free(&b);
}

static void test_alloc_hook(void)
{
    herd_alloc_fail_after(1);
    void *a = herd_malloc(8);
    void *b = herd_malloc(8);
    herd_alloc_fail_after(-1);
    CHECK(a != NULL && b == NULL);
    herd_free(a);
    void *c = NULL;
    CHECK(herd_alloc_array(&c, SIZE_MAX / 2, 4, "big") == HERD_ERR_NOMEM);
    CHECK(strstr(herd_last_error(), "big") != NULL);
}

struct sum_job {
    int64_t n;
    int64_t part[8];
};

static void sum_range(void *arg, int ith, int nth)
{
    struct sum_job *j = arg;
    int64_t lo, hi;
    herd_split(j->n, ith, nth, &lo, &hi);
    j->part[ith] = hi - lo;
}

static void test_pool(void)
{
    struct herd_pool *p = NULL;
    CHECK(herd_pool_new(3, &p) == HERD_OK);
    for (int rep = 0; rep < 100; rep++) {
        struct sum_job j = {.n = 1000 + rep};
        herd_pool_run(p, sum_range, &j);
        CHECK(j.part[0] + j.part[1] + j.part[2] == j.n);
        CHECK(j.part[0] - j.part[2] <= 1);
    }
    herd_pool_free(p);
}

/* Each thread's product of two normal floats whose exact value is subnormal (2^-130). */
struct tiny_job {
    volatile float a, b;
    float out[3];
};

static void tiny_product(void *arg, int ith, int nth)
{
    struct tiny_job *j = arg;
    (void)nth;
    j->out[ith] = j->a * j->b;
}

/* Pool jobs flush subnormals to zero on every thread (the kernels' speed on real scales
 * depends on it); the caller's own mode comes back after the job. */
static void test_pool_flushes_subnormals(void)
{
    struct tiny_job j = {.a = 0x1p-65f, .b = 0x1p-65f, .out = {1, 1, 1}};
    struct herd_pool *p = NULL;
    CHECK(herd_pool_new(3, &p) == HERD_OK);
    for (int rep = 0; rep < 2; rep++) { /* a worker's first job and a later one */
        herd_pool_run(p, tiny_product, &j);
        for (int i = 0; i < 3; i++)
            CHECK(j.out[i] == 0.0f);
    }
    herd_pool_free(p);
    herd_pool_run(NULL, tiny_product, &j); /* no pool: the caller alone, flushed too */
    CHECK(j.out[0] == 0.0f);
    float outside = j.a * j.b;
    CHECK(outside == 0x1p-130f);
}

static void test_errors(void)
{
    herd_fail(HERD_ERR_FORMAT, "tensor %s: expected %d\nrows", "blk.0.attn_q", 4);
    herd_fail_prefix(HERD_ERR_FORMAT, "%s", "model.gguf");
    CHECK(strcmp(herd_last_error(), "model.gguf: tensor blk.0.attn_q: expected 4 rows") == 0);
    CHECK(strcmp(herd_status_str(HERD_ERR_CONTEXT), "context length exceeded") == 0);
}

int main(void)
{
    test_fp16();
    test_buf();
    test_alloc_hook();
    test_pool();
    test_pool_flushes_subnormals();
    test_errors();
    return check_done();
}
