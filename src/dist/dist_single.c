/*
 * dist_single.c - the single-rank communicator of builds without MPI: one rank, every
 * collective a copy or nothing, so the forward pass runs the same code with no peers.
 * Point-to-point calls never happen with one rank; they fail loudly if they do.
 */
#include "dist.h"

static herd_status single_init(int *argc, char ***argv, int timeout_s)
{
    return HERD_OK;
}

static void single_finalize(void)
{
}

static int single_rank(void)
{
    return 0;
}

static int single_size(void)
{
    return 1;
}

static herd_status single_set_groups(int tp)
{
    if (tp != 1)
        return herd_fail(HERD_ERR_INVALID, "tensor groups of %d ranks in a one-rank build", tp);
    return HERD_OK;
}

static herd_status single_bcast(void *buf, size_t bytes, int root, int idle, const char *what)
{
    return HERD_OK;
}

static herd_status single_allgather(const void *send, void *recv, size_t bytes,
                                    const char *what)
{
    if (recv != send)
        memmove(recv, send, bytes);
    return HERD_OK;
}

static herd_status single_allreduce(float *buf, int64_t n, float *scratch, const char *what)
{
    return HERD_OK;
}

static herd_status no_peer(const char *what)
{
    return herd_fail(HERD_ERR_INTERNAL, "%s: no other rank in a one-rank build", what);
}

static herd_status single_send(const float *buf, int64_t n, int dst, const char *what)
{
    return no_peer(what);
}

static herd_status single_recv(float *buf, int64_t n, int src, const char *what)
{
    return no_peer(what);
}

static herd_status single_recv_rows(float *buf, int64_t rows, int64_t cols, int64_t ld,
                                    int src, const char *what)
{
    return no_peer(what);
}

static const struct dist_ops single_ops = {
    .name = "single",
    .init = single_init,
    .finalize = single_finalize,
    .rank = single_rank,
    .size = single_size,
    .local_size = single_size,
    .set_groups = single_set_groups,
    .bcast = single_bcast,
    .allgather = single_allgather,
    .allreduce_tp = single_allreduce,
    .send_f32 = single_send,
    .recv_f32 = single_recv,
    .send_rows_f32 = single_send,
    .recv_rows_f32 = single_recv_rows,
    .abort = NULL,
};

const struct dist_ops *dist_get(void)
{
    return &single_ops;
}
