/*
 * test_kernels.c - every CPU kernel variant this machine can run (avx2, avx512, amx, neon)
 * against the scalar reference: matrix products of every weight type on random shapes
 * (odd row counts, n_b = 1, 3, 17 and a prefill-sized batch, a row sub-range, ldy > rows,
 * unaligned pointers), and the vector kernels on odd lengths. Float paths use
 * abs + |ref| * eps; quantized paths (and any variant whose activation format differs from
 * ref's, e.g. bf16 activations) use the normalised mean squared error.
 * Batch invariance: which batch sizes give an activation row other bits than a one-row call
 * (printed per variant and type, and held to the promises in docs/speculative.md).
 * It also checks the ref matrix products themselves against plain float dot products of
 * independently decoded weights, so a wrong reference cannot hide.
 */
#include "kernels/kernels.h"
#include "quant/quant.h"
#include "check.h"

#include <math.h>
#include <stdlib.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static float rndf(void) /* uniform in [-1, 1) */
{
    return (float)(rnd() & 0xffffff) / 8388608.0f - 1.0f;
}

static int64_t block_elems(herd_dtype t)
{
    switch (t) {
    case HERD_DTYPE_F32:
    case HERD_DTYPE_F16:
    case HERD_DTYPE_BF16:
        return 1;
    case HERD_DTYPE_Q4_K:
    case HERD_DTYPE_Q5_K:
    case HERD_DTYPE_Q6_K:
        return QK_K;
    default:
        return 32;
    }
}

static size_t block_size_bytes(herd_dtype t)
{
    switch (t) {
    case HERD_DTYPE_F32: return 4;
    case HERD_DTYPE_F16:
    case HERD_DTYPE_BF16: return 2;
    case HERD_DTYPE_Q8_0: return sizeof(struct block_q8_0);
    case HERD_DTYPE_Q4_0: return sizeof(struct block_q4_0);
    case HERD_DTYPE_Q4_1: return sizeof(struct block_q4_1);
    case HERD_DTYPE_Q4_K: return sizeof(struct block_q4_k);
    case HERD_DTYPE_Q5_K: return sizeof(struct block_q5_k);
    case HERD_DTYPE_Q6_K: return sizeof(struct block_q6_k);
    default: return 0;
    }
}

/* Random weights: random quant bytes everywhere, then sane scales (small positive fp16). */
static void fill_weights(herd_dtype t, uint8_t *w, size_t n_blocks)
{
    size_t bs = block_size_bytes(t);
    for (size_t i = 0; i < n_blocks * bs; i++)
        w[i] = (uint8_t)rnd();
    for (size_t b = 0; b < n_blocks; b++) {
        uint8_t *blk = w + b * bs;
        uint16_t d = f32_to_fp16(0.002f + 0.01f * fabsf(rndf()));
        uint16_t m = f32_to_fp16(0.01f * rndf());
        switch (t) {
        case HERD_DTYPE_F32: {
            float f = rndf();
            memcpy(blk, &f, 4);
            break;
        }
        case HERD_DTYPE_F16: {
            uint16_t h = f32_to_fp16(rndf());
            memcpy(blk, &h, 2);
            break;
        }
        case HERD_DTYPE_BF16: {
            uint16_t h = f32_to_bf16(rndf());
            memcpy(blk, &h, 2);
            break;
        }
        case HERD_DTYPE_Q4_1:
        case HERD_DTYPE_Q4_K:
        case HERD_DTYPE_Q5_K:
            memcpy(blk, &d, 2);
            memcpy(blk + 2, &m, 2);
            break;
        case HERD_DTYPE_Q6_K:
            memcpy(blk + offsetof(struct block_q6_k, d), &d, 2);
            break;
        default:
            memcpy(blk, &d, 2);
            break;
        }
    }
}

/* Independent decoding of weight j of a row (straight from the layout comments in
 * quant.h / ggml-common.h), used to check the reference products. */
static float weight_at(herd_dtype t, const uint8_t *row, int64_t j)
{
    uint16_t h;
    switch (t) {
    case HERD_DTYPE_F32: {
        float f;
        memcpy(&f, row + 4 * j, 4);
        return f;
    }
    case HERD_DTYPE_F16:
        memcpy(&h, row + 2 * j, 2);
        return fp16_to_f32(h);
    case HERD_DTYPE_BF16:
        memcpy(&h, row + 2 * j, 2);
        return bf16_to_f32(h);
    case HERD_DTYPE_Q8_0: {
        const struct block_q8_0 *b = (const struct block_q8_0 *)row + j / 32;
        return fp16_to_f32(b->d) * b->qs[j % 32];
    }
    case HERD_DTYPE_Q4_0: {
        const struct block_q4_0 *b = (const struct block_q4_0 *)row + j / 32;
        int l = j % 32;
        int q = l < 16 ? b->qs[l] & 15 : b->qs[l - 16] >> 4;
        return fp16_to_f32(b->d) * (q - 8);
    }
    case HERD_DTYPE_Q4_1: {
        const struct block_q4_1 *b = (const struct block_q4_1 *)row + j / 32;
        int l = j % 32;
        int q = l < 16 ? b->qs[l] & 15 : b->qs[l - 16] >> 4;
        return fp16_to_f32(b->d) * q + fp16_to_f32(b->m);
    }
    case HERD_DTYPE_Q4_K:
    case HERD_DTYPE_Q5_K: {
        int l = j % 256, sub = l / 32, chunk = l / 64;
        const uint8_t *qs, *scales, *qh = NULL;
        uint16_t dd, dm;
        if (t == HERD_DTYPE_Q4_K) {
            const struct block_q4_k *b = (const struct block_q4_k *)row + j / 256;
            qs = b->qs, scales = b->scales, dd = b->d, dm = b->dmin;
        } else {
            const struct block_q5_k *b = (const struct block_q5_k *)row + j / 256;
            qs = b->qs, scales = b->scales, dd = b->d, dm = b->dmin, qh = b->qh;
        }
        uint8_t sc, m;
        q4k_scale_min(sub, scales, &sc, &m);
        int q = (sub % 2) ? qs[chunk * 32 + l % 32] >> 4 : qs[chunk * 32 + l % 32] & 15;
        if (qh && (qh[l % 32] & (1 << sub)))
            q += 16;
        return fp16_to_f32(dd) * sc * q - fp16_to_f32(dm) * m;
    }
    case HERD_DTYPE_Q6_K: {
        const struct block_q6_k *b = (const struct block_q6_k *)row + j / 256;
        int l = j % 256, half = l / 128, i = l % 128;
        int lo = i < 64 ? b->ql[64 * half + i % 64] & 15 : b->ql[64 * half + i % 64] >> 4;
        int hi = (b->qh[32 * half + i % 32] >> (2 * (i / 32))) & 3;
        return fp16_to_f32(b->d) * b->scales[l / 16] * ((lo | (hi << 4)) - 32);
    }
    default:
        return 0.0f;
    }
}

struct mm_case {
    herd_dtype t;
    int64_t n_cols; /* multiple of the block size */
};

/* Llama rows are multiples of 512; other lengths exercise the variants' fallbacks. */
static const struct mm_case mm_cases[] = {
    {HERD_DTYPE_F32, 37},    {HERD_DTYPE_F32, 512},   {HERD_DTYPE_F16, 77},
    {HERD_DTYPE_F16, 1024},  {HERD_DTYPE_BF16, 45},   {HERD_DTYPE_BF16, 1536},
    {HERD_DTYPE_Q8_0, 32},   {HERD_DTYPE_Q8_0, 1024}, {HERD_DTYPE_Q4_0, 96},
    {HERD_DTYPE_Q4_0, 1536}, {HERD_DTYPE_Q4_1, 160},  {HERD_DTYPE_Q4_1, 512},
    {HERD_DTYPE_Q4_K, 768},  {HERD_DTYPE_Q4_K, 1024}, {HERD_DTYPE_Q5_K, 512},
    {HERD_DTYPE_Q5_K, 2560}, {HERD_DTYPE_Q6_K, 1280}, {HERD_DTYPE_Q6_K, 1536},
};

static const char *type_name(herd_dtype t)
{
    switch (t) {
    case HERD_DTYPE_F32: return "f32";
    case HERD_DTYPE_F16: return "f16";
    case HERD_DTYPE_BF16: return "bf16";
    case HERD_DTYPE_Q8_0: return "q8_0";
    case HERD_DTYPE_Q4_0: return "q4_0";
    case HERD_DTYPE_Q4_1: return "q4_1";
    case HERD_DTYPE_Q4_K: return "q4_K";
    case HERD_DTYPE_Q5_K: return "q5_K";
    case HERD_DTYPE_Q6_K: return "q6_K";
    default: return "?";
    }
}

static double nmse(const float *a, const float *ref, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? num / den : num;
}

/* The smallest shift that keeps a row of type t valid C (its scalars naturally aligned)
 * while breaking every SIMD alignment: 4 bytes for f32 data and Q8_K (float d), 2 for the
 * rest (fp16 scales). Files give no more than that: GGUF aligns tensors to 32 and blocks are
 * 18, 34, 144... bytes; safetensors offsets are multiples of the element size. */
static size_t misalign(herd_dtype t)
{
    return t == HERD_DTYPE_F32 || t == HERD_DTYPE_Q8_K ? 4 : 2;
}

/* y (n_b, ldy) for rows [r0, r1) with kernel k; x (n_b, n_cols) f32. Pointers are shifted
 * off any alignment the allocator gives (misalign). */
static void run_mm(const struct herd_cpu_kernels *k, herd_dtype t, const uint8_t *w,
                   const float *x, int64_t n_cols, int64_t n_b, int64_t r0, int64_t r1,
                   float *y, int64_t ldy)
{
    const struct matmul_kernel *mk = &k->mm[t];
    size_t xrb = kernels_act_row_bytes(mk->act_type, n_cols);
    uint8_t *xa_buf = malloc(xrb * (size_t)n_b + 64);
    uint8_t *xa = xa_buf + misalign(mk->act_type);
    if (mk->convert) {
        for (int64_t b = 0; b < n_b; b++)
            mk->convert(xa + (size_t)b * xrb, x + b * n_cols, n_cols);
    } else {
        memcpy(xa, x, xrb * (size_t)n_b);
    }
    mk->matmul(y, ldy, w, xa, xrb, n_cols, n_b, r0, r1);
    free(xa_buf);
}

/* The reference itself against plain float dots of decoded weights and original x. */
static void check_ref_semantics(const struct mm_case *c)
{
    const struct herd_cpu_kernels *ref = kernels_get_isa("ref");
    const int64_t n_rows = 5, n_b = 3, n = c->n_cols;
    size_t rb = (size_t)(n / block_elems(c->t)) * block_size_bytes(c->t);
    uint8_t *w = malloc(rb * n_rows);
    float *x = malloc(sizeof(float) * n * n_b);
    float *y = calloc(n_rows * n_b, sizeof(float)), *yf = calloc(n_rows * n_b, sizeof(float));
    fill_weights(c->t, w, (size_t)(n / block_elems(c->t)) * n_rows);
    for (int64_t i = 0; i < n * n_b; i++)
        x[i] = rndf();
    run_mm(ref, c->t, w, x, n, n_b, 0, n_rows, y, n_rows);
    for (int64_t b = 0; b < n_b; b++) {
        for (int64_t r = 0; r < n_rows; r++) {
            double s = 0;
            for (int64_t j = 0; j < n; j++)
                s += (double)weight_at(c->t, w + r * rb, j) * x[b * n + j];
            yf[b * n_rows + r] = (float)s;
        }
    }
    /* Q8 activations carry ~0.4% relative noise per element: NMSE ~1e-5. */
    double e = nmse(y, yf, n_rows * n_b);
    double tol = block_elems(c->t) == 1 ? 1e-10 : 1e-3;
    CHECK_MSG(e < tol, "ref %s n=%lld: nmse %g vs float", type_name(c->t),
              (long long)n, e);
    free(w), free(x), free(y), free(yf);
}

static void check_mm_variant(const struct herd_cpu_kernels *k, const struct mm_case *c,
                             int64_t n_rows, int64_t n_b)
{
    const struct herd_cpu_kernels *ref = kernels_get_isa("ref");
    if (!k->mm[c->t].matmul)
        return;
    const int64_t n = c->n_cols, ldy = n_rows + 3;
    const int64_t r0 = n_rows > 4 ? 1 : 0, r1 = n_rows > 6 ? n_rows - 1 : n_rows;
    size_t rb = (size_t)(n / block_elems(c->t)) * block_size_bytes(c->t);
    uint8_t *w_buf = malloc(rb * n_rows + 64);
    uint8_t *w = w_buf + misalign(c->t); /* off SIMD alignment on purpose */
    float *x = malloc(sizeof(float) * n * n_b);
    float *y_buf = malloc(sizeof(float) * (ldy * n_b + 1));
    float *y = y_buf + 1, *yr = malloc(sizeof(float) * ldy * n_b);
    fill_weights(c->t, w, (size_t)(n / block_elems(c->t)) * n_rows);
    for (int64_t i = 0; i < n * n_b; i++)
        x[i] = rndf() + 0.25f; /* a non-zero mean, so offset/min terms weigh in */
    for (int64_t i = 0; i < ldy * n_b; i++)
        y[i] = yr[i] = 12345.0f; /* rows outside [r0, r1) must stay untouched */
    run_mm(ref, c->t, w, x, n, n_b, r0, r1, yr, ldy);
    run_mm(k, c->t, w, x, n, n_b, r0, r1, y, ldy);
    /* AMX int8 tiles form the same int32 group sums as VNNI and the float steps keep their
     * order: the quantized amx products equal avx512's bit for bit, prefill included. BF16
     * tiles (bf16 activations) sum the same exact products in another order. */
    const struct herd_cpu_kernels *vnni = kernels_get_isa("avx512");
    if (strcmp(k->isa, "amx") == 0 && vnni && k->mm[c->t].matmul != vnni->mm[c->t].matmul) {
        float *yv = malloc(sizeof(float) * ldy * n_b);
        for (int64_t i = 0; i < ldy * n_b; i++)
            yv[i] = 12345.0f;
        run_mm(vnni, c->t, w, x, n, n_b, r0, r1, yv, ldy);
        if (block_elems(c->t) > 1)
            CHECK_MSG(memcmp(yv, y, sizeof(float) * ldy * n_b) == 0,
                      "amx %s rows=%lld n_b=%lld: not bit-identical to avx512", type_name(c->t),
                      (long long)n_rows, (long long)n_b);
        else
            CHECK_MSG(nmse(y, yv, ldy * n_b) < 1e-10,
                      "amx %s rows=%lld n_b=%lld: nmse %g against avx512", type_name(c->t),
                      (long long)n_rows, (long long)n_b, nmse(y, yv, ldy * n_b));
        free(yv);
    }
    int same_act = k->mm[c->t].act_type == ref->mm[c->t].act_type;
    int bad = 0;
    double rms = 0;
    for (int64_t i = 0; i < ldy * n_b; i++)
        rms += yr[i] != 12345.0f ? (double)yr[i] * yr[i] : 0;
    rms = sqrt(rms / (double)(n_b * (r1 - r0)));
    for (int64_t b = 0; b < n_b; b++) {
        for (int64_t r = 0; r < ldy; r++) {
            float a = y[b * ldy + r], e = yr[b * ldy + r];
            if (r < r0 || r >= r1) {
                bad += a != 12345.0f;
                continue;
            }
            if (!isfinite(e))
                continue;
            /* f32 sums of n products (|w| <= 1, |x| <= 1.25) in another order: error grows
             * with sqrt(n) times the products' size, however small one result happens to be
             * (the floor keeps a lone near-zero output from failing on reassociation) */
            if (block_elems(c->t) == 1 && same_act &&
                !(fabsf(a - e) <= 1e-5f * (float)rms * sqrtf((float)n) / 4 + 1e-5f * fabsf(e) +
                                      2e-6f * sqrtf((float)n))) {
                if (bad++ == 0)
                    printf("  %s %s row %lld: %.9g, ref %.9g\n", k->isa, type_name(c->t),
                           (long long)r, a, e);
            }
        }
    }
    double err = nmse(y, yr, ldy * n_b);
    double tol = same_act ? 1e-11 : 1e-4;
    CHECK_MSG(bad == 0 && err < tol, "%s %s n=%lld rows=%lld n_b=%lld: %d bad, nmse %g",
              k->isa, type_name(c->t), (long long)n, (long long)n_rows, (long long)n_b,
              bad, err);
    free(w_buf), free(x), free(y_buf), free(yr);
}

/* Batch invariance: activation row b's outputs are the same bits in a batch of n_b rows,
 * over any row sub-range (a thread's share), as in a one-row call over all rows. Greedy
 * speculative decoding (docs/speculative.md) and the server's "same logits whatever else
 * is in the batch" rest on it. Returns the smallest n_b that breaks it (0: none), so the
 * caller can say which paths are invariant up to where. */
static int64_t first_variant_nb(const struct herd_cpu_kernels *k, herd_dtype t, int64_t n)
{
    const int64_t n_rows = 37, max_b = 20;
    size_t rb = (size_t)(n / block_elems(t)) * block_size_bytes(t);
    uint8_t *w = malloc(rb * n_rows);
    float *x = malloc(sizeof(float) * n * max_b), *one = malloc(sizeof(float) * n_rows * max_b);
    float *y = malloc(sizeof(float) * n_rows * max_b);
    fill_weights(t, w, (size_t)(n / block_elems(t)) * n_rows);
    for (int64_t i = 0; i < n * max_b; i++)
        x[i] = rndf() + 0.25f;
    for (int64_t b = 0; b < max_b; b++)
        run_mm(k, t, w, x + b * n, n, 1, 0, n_rows, one + b * n_rows, n_rows);
    int64_t broke = 0;
    for (int64_t nb = 1; nb <= max_b && !broke; nb++) {
        /* splits as herd_split gives threads: [0, 37), [0, 19) + [19, 37), [0, 5) + [5, 37) */
        static const int64_t cut[] = {37, 19, 5};
        for (int c = 0; c < 3 && !broke; c++) {
            run_mm(k, t, w, x, n, nb, 0, cut[c], y, n_rows);
            if (cut[c] < n_rows)
                run_mm(k, t, w, x, n, nb, cut[c], n_rows, y, n_rows);
            if (memcmp(y, one, sizeof(float) * (size_t)(n_rows * nb)) != 0)
                broke = nb;
        }
    }
    free(w), free(x), free(one), free(y);
    return broke;
}

static void check_invariance(const struct herd_cpu_kernels *k)
{
    for (size_t c = 0; c < sizeof mm_cases / sizeof mm_cases[0]; c++) {
        herd_dtype t = mm_cases[c].t;
        if (!k->mm[t].matmul)
            continue;
        int64_t broke = first_variant_nb(k, t, mm_cases[c].n_cols);
        printf("  %s %s n=%lld: batch invariant %s%lld\n", k->isa, type_name(t),
               (long long)mm_cases[c].n_cols, broke ? "below n_b=" : "up to n_b=",
               (long long)(broke ? broke : 20));
        /* Every path up to 8 rows (a speculative verification of up to 7 drafts, a few
         * server slots), except bf16 activations (opt-in: from 4); Q8_0 on Llama shapes
         * (rows a multiple of 512) on AVX-512 / AMX at any batch, the gemm included. */
        int bf16_act = t == HERD_DTYPE_BF16 && k->mm[t].act_type == HERD_DTYPE_BF16;
        CHECK_MSG(broke == 0 || broke > (bf16_act ? 3 : 8),
                  "%s %s n=%lld: row results change at n_b=%lld", k->isa, type_name(t),
                  (long long)mm_cases[c].n_cols, (long long)broke);
        if (t == HERD_DTYPE_Q8_0 && mm_cases[c].n_cols % 512 == 0 &&
            (strcmp(k->isa, "avx512") == 0 || strcmp(k->isa, "amx") == 0) &&
            !getenv("HERD_GEMV_NO_R16")) /* the older one-row loop, kept to compare */
            CHECK_MSG(broke == 0, "%s q8_0 n=%lld: row results change at n_b=%lld", k->isa,
                      (long long)mm_cases[c].n_cols, (long long)broke);
    }
}

static void check_ops(const struct herd_cpu_kernels *k)
{
    const struct herd_cpu_kernels *ref = kernels_get_isa("ref");
    static const int64_t lens[] = {1, 7, 16, 33, 64, 100, 128, 4097};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        int64_t n = lens[li];
        float *a = malloc(sizeof(float) * (n + 1)), *b = malloc(sizeof(float) * (n + 1));
        float *o1 = malloc(sizeof(float) * (n + 1)), *o2 = malloc(sizeof(float) * (n + 1));
        uint16_t *h1 = malloc(2 * (n + 1)), *h2 = malloc(2 * (n + 1));
        float *x = a + 1, *w = b + 1, *out = o1 + 1; /* unaligned */
        for (int64_t i = 0; i < n; i++) {
            x[i] = 4 * rndf();
            w[i] = rndf();
        }
        int bad = 0;
        k->rmsnorm(out, x, w, n, 1e-5f);
        ref->rmsnorm(o2, x, w, n, 1e-5f);
        for (int64_t i = 0; i < n; i++)
            bad += !(fabsf(out[i] - o2[i]) <= 1e-5f + 1e-5f * fabsf(o2[i]));
        CHECK_MSG(bad == 0, "%s rmsnorm n=%lld", k->isa, (long long)n);

        float d1 = k->dot_f32(x, w, n), d2 = ref->dot_f32(x, w, n);
        CHECK_MSG(fabsf(d1 - d2) <= 1e-5f * (float)n + 1e-5f * fabsf(d2), "%s dot n=%lld",
                  k->isa, (long long)n);

        memcpy(out, x, sizeof(float) * n);
        memcpy(o2, x, sizeof(float) * n);
        k->axpy_f32(out, 0.37f, w, n);
        ref->axpy_f32(o2, 0.37f, w, n);
        bad = 0;
        for (int64_t i = 0; i < n; i++)
            bad += !(fabsf(out[i] - o2[i]) <= 1e-6f + 1e-6f * fabsf(o2[i]));
        CHECK_MSG(bad == 0, "%s axpy_f32 n=%lld", k->isa, (long long)n);

        k->f32_to_f16_row(h1 + 1, x, n);
        ref->f32_to_f16_row(h2, x, n);
        CHECK_MSG(memcmp(h1 + 1, h2, 2 * n) == 0, "%s f32_to_f16 n=%lld", k->isa,
                  (long long)n);
        k->f16_to_f32_row(out, h2, n);
        ref->f16_to_f32_row(o2, h2, n);
        CHECK_MSG(memcmp(out, o2, 4 * n) == 0, "%s f16_to_f32 n=%lld", k->isa, (long long)n);

        /* attention over NP cached positions, rows stride elements apart (off alignment),
         * for GQA groups of 1 to 5 query heads: every variant against ref, and avx512's
         * grouped kernels against avx2's bit for bit (the scores and outputs decode and
         * prefill had before them) */
        enum { NP = 7, NQ = 5 };
        const int64_t stride = n + 3;
        uint16_t *kv = malloc(2 * (size_t)(NP * stride + 1));
        float *qs = malloc(sizeof(float) * (size_t)(NQ * n));
        float *o3 = malloc(sizeof(float) * (size_t)(NQ * n)), *o4 = malloc(sizeof(float) * (size_t)(NQ * n));
        float sk[NQ][NP + 2], sr[NQ][NP + 2], pw[NQ][NP + 2];
        for (int64_t i = 0; i < NP * stride; i++)
            kv[1 + i] = f32_to_fp16(rndf());
        for (int64_t i = 0; i < NQ * n; i++)
            qs[i] = rndf();
        for (int h = 0; h < NQ; h++)
            for (int p = 0; p < NP; p++)
                pw[h][p] = rndf();
        const struct herd_cpu_kernels *avx2 = kernels_get_isa("avx2");
        for (int nq = 1; nq <= NQ; nq += 2) {
            k->dots_f16(sk[0], NP + 2, qs, nq, kv + 1, stride, NP, n);
            ref->dots_f16(sr[0], NP + 2, qs, nq, kv + 1, stride, NP, n);
            bad = 0;
            for (int h = 0; h < nq; h++)
                for (int p = 0; p < NP; p++)
                    bad += !(fabsf(sk[h][p] - sr[h][p]) <= 1e-5f * (float)n + 1e-5f * fabsf(sr[h][p]));
            CHECK_MSG(bad == 0, "%s dots_f16 n=%lld nq=%d", k->isa, (long long)n, nq);
            k->wsum_f16(o3, pw[0], NP + 2, nq, kv + 1, stride, NP, n);
            ref->wsum_f16(o4, pw[0], NP + 2, nq, kv + 1, stride, NP, n);
            bad = 0;
            for (int64_t i = 0; i < nq * n; i++)
                bad += !(fabsf(o3[i] - o4[i]) <= 1e-5f * NP + 1e-6f * fabsf(o4[i]));
            CHECK_MSG(bad == 0, "%s wsum_f16 n=%lld nq=%d", k->isa, (long long)n, nq);
            if (avx2 && k != avx2 && (strcmp(k->isa, "avx512") == 0 || strcmp(k->isa, "amx") == 0)) {
                avx2->dots_f16(sr[0], NP + 2, qs, nq, kv + 1, stride, NP, n);
                bad = 0;
                for (int h = 0; h < nq; h++)
                    bad += memcmp(sk[h], sr[h], sizeof(float) * NP) != 0;
                CHECK_MSG(bad == 0, "%s dots_f16 n=%lld nq=%d: not avx2's bits", k->isa,
                          (long long)n, nq);
                avx2->wsum_f16(o4, pw[0], NP + 2, nq, kv + 1, stride, NP, n);
                CHECK_MSG(memcmp(o3, o4, sizeof(float) * (size_t)(nq * n)) == 0,
                          "%s wsum_f16 n=%lld nq=%d: not avx2's bits", k->isa, (long long)n, nq);
            }
        }
        free(kv), free(qs), free(o3), free(o4);

        for (int64_t i = 0; i < n; i++)
            x[i] = 30 * rndf(); /* reaches exp's saturation in both directions */
        k->swiglu(out, x, w, n);
        ref->swiglu(o2, x, w, n);
        bad = 0;
        for (int64_t i = 0; i < n; i++)
            bad += !(fabsf(out[i] - o2[i]) <= 1e-6f + 1e-5f * fabsf(o2[i]));
        CHECK_MSG(bad == 0, "%s swiglu n=%lld", k->isa, (long long)n);

        /* attention softmax: scores of either sign and wide range (exp's clamp reached),
         * a scale as 1/sqrt(128); every weight against ref's expf, and their sum is 1 */
        for (int64_t i = 0; i < n; i++)
            x[i] = 900 * rndf() * rndf();
        memcpy(out, x, sizeof(float) * n);
        memcpy(o2, x, sizeof(float) * n);
        k->softmax(out, n, 0.0883883f);
        ref->softmax(o2, n, 0.0883883f);
        bad = 0;
        double tot = 0;
        for (int64_t i = 0; i < n; i++) {
            bad += !(fabsf(out[i] - o2[i]) <= 1e-30f + 2e-6f * fabsf(o2[i]));
            tot += out[i];
        }
        CHECK_MSG(bad == 0 && fabs(tot - 1.0) < 1e-5, "%s softmax n=%lld: %d off, sum %.9f",
                  k->isa, (long long)n, bad, tot);
        free(a), free(b), free(o1), free(o2), free(h1), free(h2);
    }
}

/* A variant's activation quantizers must write exactly the reference's bytes (matmul
 * results then differ only by the products' reassociation): random rows, rows with exact
 * .5 ties after scaling, all-zero blocks and a largest magnitude that appears with both
 * signs (Q8_K keeps the first one's sign). */
static void check_convert(const struct herd_cpu_kernels *k)
{
    const struct herd_cpu_kernels *ref = kernels_get_isa("ref");
    static const herd_dtype types[] = {HERD_DTYPE_Q8_0, HERD_DTYPE_Q4_K};
    const int64_t n = 1024;
    float *x = malloc(sizeof(float) * n);
    uint8_t *a = malloc(n * 2), *b = malloc(n * 2);
    for (int pattern = 0; pattern < 4; pattern++) {
        for (int64_t i = 0; i < n; i++) {
            x[i] = 3 * rndf();
            if (pattern == 1) /* scale exactly 1 (127 in every block), codes at .5 ties */
                x[i] = i % 32 == 0 ? 127.0f : (float)(int)(rndf() * 125) + 0.5f;
            if (pattern == 2 && i < 300)
                x[i] = 0.0f;
            if (pattern == 3 && i % 256 == 7)
                x[i] = 5.0f, x[i + 3] = -5.0f;
        }
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            const struct matmul_kernel *mk = &k->mm[types[t]], *mr = &ref->mm[types[t]];
            if (!mk->convert || mk->act_type != mr->act_type)
                continue;
            size_t bytes = kernels_act_row_bytes(mk->act_type, n);
            memset(a, 0x55, bytes);
            memset(b, 0xaa, bytes);
            mk->convert(a, x, n);
            mr->convert(b, x, n);
            CHECK_MSG(memcmp(a, b, bytes) == 0, "%s convert to %s, pattern %d: bytes differ",
                      k->isa, mk->act_type == HERD_DTYPE_Q8_K ? "q8_K" : "q8_0", pattern);
        }
    }
    free(x), free(a), free(b);
}

/* The kernel choices of this run, as the herd command takes them (tests/cmake/kernels.cmake
 * sets the variables): herd_cpu_configure before any kernel is used. */
static herd_cpu_options configure_from_env(void)
{
    herd_cpu_options o = herd_cpu_default_options();
    o.isa = getenv("HERD_CPU_ISA");
    o.no_vbmi = getenv("HERD_GEMV_NO_VBMI") != NULL;
    o.no_r16 = getenv("HERD_GEMV_NO_R16") != NULL;
    o.bf16_act = getenv("HERD_BF16_ACT") != NULL;
    herd_cpu_options bad = o;
    bad.isa = "no-such-isa";
    CHECK(herd_cpu_configure(&bad) == HERD_ERR_INVALID);
    CHECK(herd_cpu_configure(&o) == HERD_OK);
    return o;
}

static void check_dispatch(const herd_cpu_options *configured)
{
    const struct herd_cpu_kernels *k = kernels_get();
    /* The tables exist now: the same options are accepted, others refused. */
    CHECK(herd_cpu_configure(configured) == HERD_OK);
    herd_cpu_options other = *configured;
    other.no_r16 = !other.no_r16;
    CHECK(herd_cpu_configure(&other) == HERD_ERR_INVALID);
    CHECK(k != NULL);
    CHECK(kernels_get_isa("ref") != NULL);
    CHECK(kernels_get_isa("no-such-isa") == NULL);
    CHECK(strcmp(herd_cpu_isa(), k->isa) == 0);
    const char *want = getenv("HERD_CPU_ISA");
    if (want && kernels_get_isa(want))
        CHECK_MSG(strcmp(k->isa, want) == 0, "HERD_CPU_ISA=%s gave %s", want, k->isa);
    printf("kernel variant in use: %s\n", k->isa);
}

int main(void)
{
    static const char *const isas[] = {"avx2", "avx512", "amx", "neon"};
    static const int64_t rows[] = {1, 7, 33, 67};
    static const int64_t nbs[] = {1, 2, 3, 4, 8, 13, 17, 64};
    herd_cpu_options configured = configure_from_env();
    check_dispatch(&configured);
    for (size_t c = 0; c < sizeof mm_cases / sizeof mm_cases[0]; c++)
        check_ref_semantics(&mm_cases[c]);
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        const struct herd_cpu_kernels *k = kernels_get_isa(isas[i]);
        if (!k) {
            printf("variant %s: not available here, skipped\n", isas[i]);
            continue;
        }
        for (size_t c = 0; c < sizeof mm_cases / sizeof mm_cases[0]; c++)
            for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
                for (size_t b = 0; b < sizeof nbs / sizeof nbs[0]; b++)
                    check_mm_variant(k, &mm_cases[c], rows[r], nbs[b]);
        /* prefill of quantized types: rows in several 128-row blocks (the last ragged),
         * with the scratch for every chunk's packed activations and without it */
        for (size_t c = 0; c < sizeof mm_cases / sizeof mm_cases[0]; c++) {
            if (block_elems(mm_cases[c].t) == 1) {
                /* float prefill past one block of packed activation rows (240, or 480 for
                 * AMX bf16 tiles) */
                check_mm_variant(k, &mm_cases[c], 7, 500);
                continue;
            }
            check_mm_variant(k, &mm_cases[c], 300, 17);
            /* more activation rows than one pass takes (256), the last tile ragged */
            check_mm_variant(k, &mm_cases[c], 40, 300);
            herd_alloc_fail_after(0);
            check_mm_variant(k, &mm_cases[c], 300, 17);
            herd_alloc_fail_after(-1);
        }
        check_invariance(k);
        check_ops(k);
        check_convert(k);
    }
    return check_done();
}
