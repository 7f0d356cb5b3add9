/*
 * kernels.c - picks the CPU kernel table: every entry starts as the scalar reference
 * (cpu/ref/), then the best variant this build, CPU and OS support overrides what it
 * implements: avx512 needs AVX-512 F/BW/VL + VNNI (BF16 optional, checked inside), avx2
 * needs AVX2 + FMA + F16C, neon aarch64. herd_cpu_configure's isa forces one (falling back
 * to the best available with a warning when the CPU lacks it) and carries the sub-variant
 * switches the fill functions read (kernels_options).
 * Tables are built once, on first use, and never change afterwards: herd_cpu_configure is
 * refused once they exist.
 */
#include "kernels/kernels.h"

#include <pthread.h> /* pthread_once, the options lock */

enum { ISA_REF, ISA_AVX2, ISA_AVX512, ISA_AMX, ISA_NEON, ISA_COUNT };
static const char *const isa_names[ISA_COUNT] = {"ref", "avx2", "avx512", "amx", "neon"};

static struct herd_cpu_kernels tables[ISA_COUNT];
static int table_ok[ISA_COUNT];
static int chosen = ISA_REF;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* herd_cpu_configure's options; read by init_tables under the lock, then frozen. */
static pthread_mutex_t opts_mu = PTHREAD_MUTEX_INITIALIZER;
static herd_cpu_options opts;
static int frozen;

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
    case ISA_AMX: /* asks the OS for the tile state here, once */
        return isa_supported(ISA_AVX512) && f->amx_tile && f->amx_int8 &&
               herd_cpu_amx_permit();
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
    if (isa == ISA_AVX2 || isa == ISA_AVX512 || isa == ISA_AMX)
        kernels_fill_avx2(k); /* avx512 falls back to avx2 for what it lacks */
    if (isa == ISA_AVX512)
        kernels_fill_avx512(k);
    if (isa == ISA_AMX)
        kernels_fill_amx(k); /* avx512 with the prefill products on tiles */
#endif
#ifdef HERD_HAVE_NEON_KERNELS
    if (isa == ISA_NEON)
        kernels_fill_neon(k);
#endif
    k->isa = isa_names[isa];
}

static int isa_index(const char *name)
{
    for (int i = 0; i < ISA_COUNT; i++)
        if (name && strcmp(name, isa_names[i]) == 0)
            return i;
    return -1;
}

herd_cpu_options herd_cpu_default_options(void)
{
    herd_cpu_options o;
    memset(&o, 0, sizeof o);
    return o;
}

static int same_options(const herd_cpu_options *a, const herd_cpu_options *b)
{
    const char *ia = a->isa && *a->isa ? a->isa : "", *ib = b->isa && *b->isa ? b->isa : "";
    return strcmp(ia, ib) == 0 && a->bf16_act == b->bf16_act && a->no_vbmi == b->no_vbmi &&
           a->no_r16 == b->no_r16 && a->mmap_weights == b->mmap_weights;
}

herd_status herd_cpu_configure(const herd_cpu_options *o)
{
    if (!o)
        return herd_fail(HERD_ERR_INVALID, "herd_cpu_configure: no options");
    int isa = o->isa && *o->isa ? isa_index(o->isa) : -2;
    if (isa == -1)
        return herd_fail(HERD_ERR_INVALID, "CPU kernel variant '%s': expected ref, avx2, "
                         "avx512, amx or neon", o->isa);
    herd_status s = HERD_OK;
    pthread_mutex_lock(&opts_mu);
    if (!frozen) {
        opts = *o;
        opts.isa = isa >= 0 ? isa_names[isa] : NULL; /* a static name, not the caller's */
    } else if (!same_options(&opts, o)) {
        s = herd_fail(HERD_ERR_INVALID, "herd_cpu_configure: the CPU kernels are already in "
                      "use; configure them before the first model load");
    }
    pthread_mutex_unlock(&opts_mu);
    return s;
}

const herd_cpu_options *kernels_options(void)
{
    return &opts;
}

static void init_tables(void)
{
    pthread_mutex_lock(&opts_mu);
    frozen = 1; /* from here on opts never changes, so the fill functions read it freely */
    pthread_mutex_unlock(&opts_mu);
    for (int i = 0; i < ISA_COUNT; i++) {
        table_ok[i] = isa_supported(i);
        if (table_ok[i]) {
            fill(i, &tables[i]);
            chosen = i; /* names are ordered worst to best within an architecture */
        }
    }
    int want = isa_index(opts.isa);
    if (want < 0)
        return;
    if (table_ok[want])
        chosen = want;
    else
        herd_log(HERD_LOG_WARN, "CPU kernels %s: not available on this CPU/build, using %s",
                 opts.isa, isa_names[chosen]);
}

const struct herd_cpu_kernels *kernels_get(void)
{
    pthread_once(&once, init_tables);
    return &tables[chosen];
}

const struct herd_cpu_kernels *kernels_get_isa(const char *isa)
{
    pthread_once(&once, init_tables);
    int i = isa_index(isa);
    return i >= 0 && table_ok[i] ? &tables[i] : NULL;
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
    case HERD_DTYPE_F8_E4M3:
        return (size_t)n + 8;
    default:
        return 0;
    }
}
