/*
 * allreduce.c - latency of the per-layer all-reduce of tensor parallelism: one token's
 * partial sums of dim floats (4096 for 8B, 8192 for 70B, 16384 for 405B), and 32-token
 * batches. Compares MPI_Allreduce (order implementation-defined) with herd's ordered
 * all-reduce (dist.h: every element summed in rank order, identical on all ranks).
 *
 * Build and run (bench/mpi/run.sh does this):
 *   mpicc -O2 -Iinclude -Isrc bench/mpi/allreduce.c BUILD/src/libherd_dist.a \
 *         BUILD/src/libherd_base.a -lm -lpthread -o allreduce
 *   mpirun -np 4 ./allreduce [iterations=2000]
 * Prints one line per size on rank 0: median and mean microseconds of each.
 */
#include "dist/dist.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const struct dist_ops *d = dist_get();
    if (d->init(&argc, &argv) != HERD_OK || d->size() < 2) {
        fprintf(stderr, "allreduce: run under mpirun with at least 2 ranks (%s)\n",
                herd_last_error());
        return 1;
    }
    int iters = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 2000;
    if (iters < 10)
        iters = 10;
    if (d->set_groups(d->size()) != HERD_OK) {
        fprintf(stderr, "allreduce: %s\n", herd_last_error());
        return 1;
    }
    const int64_t sizes[] = {4096, 8192, 16384, 32 * 4096, 32 * 16384};
    float *buf = malloc(32 * 16384 * sizeof(float));
    float *scratch = malloc(32 * 16384 * sizeof(float));
    double *t_mpi = malloc((size_t)iters * sizeof(double));
    double *t_herd = malloc((size_t)iters * sizeof(double));
    if (!buf || !scratch || !t_mpi || !t_herd)
        return 1;
    if (d->rank() == 0)
        printf("ranks %d, %d iterations\n%-10s %-10s %14s %14s %14s %14s\n", d->size(), iters,
               "floats", "bytes", "MPI med us", "MPI mean us", "herd med us", "herd mean us");
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int64_t n = sizes[k];
        double sum_m = 0, sum_h = 0;
        for (int it = 0; it < iters; it++) {
            for (int64_t i = 0; i < n; i++)
                buf[i] = (float)((i + it + d->rank()) % 7) * 0.25f;
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            double t1 = MPI_Wtime();
            MPI_Barrier(MPI_COMM_WORLD);
            double t2 = MPI_Wtime();
            if (d->allreduce_tp(buf, n, scratch, "bench") != HERD_OK) {
                fprintf(stderr, "allreduce: %s\n", herd_last_error());
                return 1;
            }
            double t3 = MPI_Wtime();
            t_mpi[it] = (t1 - t0) * 1e6;
            t_herd[it] = (t3 - t2) * 1e6;
            sum_m += t_mpi[it];
            sum_h += t_herd[it];
        }
        qsort(t_mpi, (size_t)iters, sizeof(double), cmp_double);
        qsort(t_herd, (size_t)iters, sizeof(double), cmp_double);
        if (d->rank() == 0)
            printf("%-10lld %-10lld %14.1f %14.1f %14.1f %14.1f\n", (long long)n,
                   (long long)n * 4, t_mpi[iters / 2], sum_m / iters, t_herd[iters / 2],
                   sum_h / iters);
    }
    fflush(stdout);
    free(buf);
    free(scratch);
    free(t_mpi);
    free(t_herd);
    d->finalize();
    return 0;
}
