/*
 * bench_cpu.h - CPU seconds of a pool job, for the per-CPU-second rates of bench_matmul and
 * membw: each thread adds herd_thread_cpu_s() around its share into cpu[ith] (the process
 * clock lags for a thread still running on another CPU), and a rate divides by the total.
 */
#ifndef HERD_BENCH_CPU_H
#define HERD_BENCH_CPU_H

static inline double bench_cpu_total(const double *cpu, int nt)
{
    double c = 0.0;
    for (int i = 0; i < nt; i++)
        c += cpu[i];
    return c;
}

#endif
