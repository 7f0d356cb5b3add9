/*
 * cpu.c - CPU feature detection with OS support checks (XGETBV for the AVX and AVX-512
 * register state), so a kernel variant is only chosen where it can run.
 */
#include "base.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h> /* __get_cpuid_count */

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect(struct herd_cpu_features *f)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(1, 0, &a, &b, &c, &d))
        return;
    int osxsave = (c >> 27) & 1;
    int avx = (c >> 28) & 1;
    f->fma = (c >> 12) & 1;
    f->f16c = (c >> 29) & 1;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    int os_avx = (xcr0 & 0x6) == 0x6;
    int os_avx512 = (xcr0 & 0xe6) == 0xe6;
    if (!avx || !os_avx) {
        f->fma = f->f16c = 0;
        return;
    }
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return;
    f->avx2 = (b >> 5) & 1;
    if (os_avx512) {
        f->avx512f = (b >> 16) & 1;
        f->avx512bw = (b >> 30) & 1;
        f->avx512vl = (b >> 31) & 1;
        f->avx512vnni = (c >> 11) & 1;
    }
    /* AMX: leaf 7 EDX bits 22 (bf16), 24 (tile), 25 (int8); XCR0 bits 17-18 the tile
     * config and data state */
    if ((xcr0 & 0x60000) == 0x60000) {
        f->amx_bf16 = (d >> 22) & 1;
        f->amx_tile = (d >> 24) & 1;
        f->amx_int8 = (d >> 25) & 1;
    }
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
        f->avxvnni = (a >> 4) & 1;
        if (os_avx512)
            f->avx512bf16 = (a >> 5) & 1;
    }
}
#else
static void detect(struct herd_cpu_features *f)
{
#if defined(__aarch64__)
    f->neon = 1;
#else
    (void)f;
#endif
}
#endif

#if defined(__linux__) && defined(__x86_64__)
#include <pthread.h>
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

static bool amx_ok;

static void amx_request(void)
{
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    const struct herd_cpu_features *f = herd_cpu_features();
    if (!f->amx_tile)
        return;
    /* Linux 5.16+ keeps the 8 KB tile state off until a process asks; older kernels (or a
     * seccomp filter) refuse, and the VNNI kernels run instead. */
    amx_ok = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
    if (!amx_ok)
        herd_log(HERD_LOG_DEBUG, "AMX: the kernel refused the tile state (%s); not used",
                 strerror(errno));
}

bool herd_cpu_amx_permit(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, amx_request);
    return amx_ok;
}
#else
bool herd_cpu_amx_permit(void)
{
    return false;
}
#endif

const struct herd_cpu_features *herd_cpu_features(void)
{
    static struct herd_cpu_features f;
    static int done;
    if (!done) {
        detect(&f);
        done = 1;
    }
    return &f;
}
