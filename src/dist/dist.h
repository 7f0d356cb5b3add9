/*
 * dist.h - the communicator herd's tensor- and pipeline-parallel forward pass talks through:
 * a function table with one implementation picked at build time, MPI (dist_mpi.c, when CMake
 * finds MPI) or a single-rank no-op (dist_single.c). Nothing here knows about models beyond
 * "rows of floats".
 *
 * Ranks: the world is every process mpirun started; rank 0 leads (tokenizer, sampling, I/O)
 * and the others follow its operations (model/dispatch.c). A tensor-parallel group is tp
 * consecutive world ranks (set_groups); its all-reduce is deterministic: every element is
 * summed in rank order 0, 1, ..., tp-1 by one rank and the sum is copied to the others, so
 * the replicas of the residual stream stay bit-identical and reruns give the same bits
 * (MPI_Allreduce's order is implementation-defined).
 *
 * Failure: every blocking wait is a polled non-blocking request. Waits inside an operation
 * are armed: after herd_dist_options.timeout_s seconds (HERD_DIST_TIMEOUT in the command;
 * default 300; 0 = never) the rank prints which wait found no peer and aborts the whole job,
 * so a vanished rank never hangs the others.
 * Idle waits (a follower waiting for rank 0's next request) are not armed but sleep.
 */
#ifndef HERD_DIST_H
#define HERD_DIST_H

#include "base/base.h"

struct dist_ops {
    const char *name; /* "mpi" or "single" */
    /* Starts the communicator. Under a launcher with several ranks it initialises MPI;
     * otherwise (no launcher, or one rank) it does nothing and the world has one rank. */
    herd_status (*init)(int *argc, char ***argv, int timeout_s);
    void (*finalize)(void);
    int (*rank)(void);
    int (*size)(void);
    int (*local_size)(void); /* ranks on this node, for the default thread count */
    /* Tensor groups of tp consecutive world ranks (size() % tp == 0). */
    herd_status (*set_groups)(int tp);
    /* bytes from world rank root to every rank. idle: an unarmed, sleeping wait. */
    herd_status (*bcast)(void *buf, size_t bytes, int root, int idle, const char *what);
    /* Every rank's bytes, in rank order, into recv (size() * bytes). */
    herd_status (*allgather)(const void *send, void *recv, size_t bytes, const char *what);
    /* Deterministic sum of buf (n floats) over the tensor group, result on every member.
     * scratch holds at least n floats. */
    herd_status (*allreduce_tp)(float *buf, int64_t n, float *scratch, const char *what);
    herd_status (*send_f32)(const float *buf, int64_t n, int dst, const char *what);
    herd_status (*recv_f32)(float *buf, int64_t n, int src, const char *what);
    /* A block of logits (tag apart from send_f32) for recv_rows_f32 on dst. */
    herd_status (*send_rows_f32)(const float *buf, int64_t n, int dst, const char *what);
    /* rows x cols floats sent contiguously by src land in buf with row stride ld. */
    herd_status (*recv_rows_f32)(float *buf, int64_t rows, int64_t cols, int64_t ld, int src,
                                 const char *what);
    /* Ends every rank of the job now (after a message on stderr). (optional) */
    void (*abort)(int code);
};

/* The table this build was made with. */
const struct dist_ops *dist_get(void);

#endif /* HERD_DIST_H */
