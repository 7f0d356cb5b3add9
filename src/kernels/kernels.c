/*
 * kernels.c - picks the CPU kernel table: every entry starts as the scalar reference
 * (cpu/ref/), then the best variant this build, CPU and OS support overrides what it
 * implements: avx512 needs AVX-512 F/BW/VL + VNNI (BF16 optional, checked inside), avx2
 * needs AVX2 + FMA + F16C, neon aarch64. HERD_CPU_ISA=ref|avx2|avx512|neon forces one
 * (falling back to the best available with a warning when the CPU lacks it).
 * Tables are built once, on first use, and never change afterwards.
 */
#include "kernels/kernels.h"

#include <pthread.h> /* pthread_once */
#include <stdlib.h>  /* getenv */

enum { ISA_REF, ISA_AVX2, ISA_AVX512, ISA_NEON, ISA_COUNT };
static const char *const isa_names[ISA_COUNT] = {"ref", "avx2", "avx512", "neon"};

static struct herd_cpu_kernels tables[ISA_COUNT];
static int table_ok[ISA_COUNT];
static int chosen = ISA_REF;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int isa_supported(int isa)
{
    const struct herd_cpu_features *f = herd_cpu_features();
    switch (isa) {
    case ISA_REF:
        return 1;
#ifdef HERD_HAVE_X86_KERNELS
    case ISA_AVX2:
        return f->avx2 && f->fma && f->f16c;
    case ISA_AVX512:
        return f->avx2 && f->fma && f->f16c && f->avx512f && f->avx512bw && f->avx512vl &&
               f->avx512vnni;
#endif
#ifdef HERD_HAVE_NEON_KERNELS
    case ISA_NEON:
        return f->neon;
#endif
    default:
        return 0;
    }
}

static void fill(int isa, struct herd_cpu_kernels *k)
{
    kernels_fill_ref(k);
#ifdef HERD_HAVE_X86_KERNELS
    if (isa == ISA_AVX2 || isa == ISA_AVX512)
        kernels_fill_avx2(k); /* avx512 falls back to avx2 for what it lacks */
    if (isa == ISA_AVX512)
        kernels_fill_avx512(k);
#endif
#ifdef HERD_HAVE_NEON_KERNELS
    if (isa == ISA_NEON)
        kernels_fill_neon(k);
#endif
    k->isa = isa_names[isa];
}

static void init_tables(void)
{
    for (int i = 0; i < ISA_COUNT; i++) {
        table_ok[i] = isa_supported(i);
        if (table_ok[i]) {
            fill(i, &tables[i]);
            chosen = i; /* names are ordered worst to best within an architecture */
        }
    }
    const char *want = getenv("HERD_CPU_ISA");
    if (!want || !*want)
        return;
    for (int i = 0; i < ISA_COUNT; i++) {
        if (strcmp(want, isa_names[i]) == 0) {
            if (table_ok[i])
                chosen = i;
            else
                herd_log(HERD_LOG_WARN, "HERD_CPU_ISA=%s: not available on this CPU/build, "
                         "using %s", want, isa_names[chosen]);
            return;
        }
    }
    herd_log(HERD_LOG_WARN, "HERD_CPU_ISA=%s: unknown (ref|avx2|avx512|neon), using %s", want,
             isa_names[chosen]);
}

const struct herd_cpu_kernels *kernels_get(void)
{
    pthread_once(&once, init_tables);
    return &tables[chosen];
}

const struct herd_cpu_kernels *kernels_get_isa(const char *isa)
{
    pthread_once(&once, init_tables);
    for (int i = 0; i < ISA_COUNT; i++) {
        if (isa && strcmp(isa, isa_names[i]) == 0)
            return table_ok[i] ? &tables[i] : NULL;
    }
    return NULL;
}

const char *herd_cpu_isa(void)
{
    return kernels_get()->isa;
}

size_t kernels_act_row_bytes(herd_dtype t, int64_t n)
{
    switch (t) {
    case HERD_DTYPE_F32:
        return (size_t)n * 4;
    case HERD_DTYPE_BF16:
    case HERD_DTYPE_F16:
        return (size_t)n * 2;
    case HERD_DTYPE_Q8_0:
        return (size_t)(n / 32) * 34;
    case HERD_DTYPE_Q8_K:
        return (size_t)(n / 256) * 292;
    default:
        return 0;
    }
}
