/*
 * dist_mpi.c - the MPI communicator (built when CMake finds MPI; see dist.h for the contract).
 *
 * MPI is initialised only when a launcher says the job has more than one rank
 * (OMPI_COMM_WORLD_SIZE, PMIX_SIZE/PMI_SIZE): a plain `herd ...` or `mpirun -np 1 herd ...`
 * never touches MPI and runs exactly the single-process path.
 *
 * Every call is non-blocking plus a polled wait (wait_req): the wait spins briefly (decode
 * all-reduces are microseconds apart), then yields, then sleeps, so oversubscribed ranks
 * and idle followers leave the cores to others; an armed wait that sees no progress for
 * HERD_DIST_TIMEOUT seconds ends the job with a message naming this rank and the wait.
 * Communicators use MPI_ERRORS_RETURN so failures come back as herd_status with file:line.
 *
 * The tensor-group all-reduce sums each element in rank order on exactly one rank:
 * small vectors by all-gather then a local ordered sum on every rank, large ones by an
 * all-to-all (rank j gathers piece j from all), an ordered sum of the piece, and an
 * all-gather of the pieces. Both give the same bits.
 */
#include "dist.h"

#include <mpi.h>
#include <sched.h>  /* sched_yield */
#include <stdio.h>  /* fprintf for the abort message */
#include <stdlib.h> /* getenv, strtol */
#include <time.h>   /* nanosleep */
#include <unistd.h> /* _exit */

/* Small all-reduces (decode: one token of dim floats per rank) use the all-gather path when
 * tp * n floats fit this buffer: 4 MiB holds tp 8 x 32 tokens x dim 4096. */
#define GATHER_FLOATS ((int64_t)1 << 20)

static struct {
    int on;           /* MPI initialised */
    int rank, size, local_size, tp;
    int thread_level;
    MPI_Comm world;   /* dup of MPI_COMM_WORLD with MPI_ERRORS_RETURN */
    MPI_Comm tp_comm; /* this rank's tensor group */
    double timeout;   /* seconds; <= 0: never */
    float *gather;    /* (GATHER_FLOATS) */
} g = {.size = 1, .local_size = 1, .tp = 1, .timeout = 300.0};

#define HERD_MPI_TRY(call, what)                                                       \
    do {                                                                               \
        int rc_ = (call);                                                              \
        if (rc_ != MPI_SUCCESS)                                                        \
            return mpi_fail(rc_, what, __FILE__, __LINE__);                            \
    } while (0)

static herd_status mpi_fail(int rc, const char *what, const char *file, int line)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
        len = 0;
    text[len] = '\0';
    return herd_fail(HERD_ERR_IO, "rank %d: MPI failed in %s: %s (%s:%d)", g.rank, what, text,
                     file, line);
}

static int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end = NULL;
    long x = strtol(v, &end, 10);
    return (end && *end == '\0' && x >= 0 && x < 1 << 30) ? (int)x : dflt;
}

static void die(const char *what, double waited)
{
    fprintf(stderr, "herd: rank %d of %d: no answer from the other ranks for %.0f s in %s; "
            "a rank has died or hangs - ending the job (HERD_DIST_TIMEOUT=%.0f)\n", g.rank,
            g.size, waited, what, g.timeout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 3);
    _exit(3);
}

static void nap(long ns)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = ns};
    nanosleep(&ts, NULL);
}

static herd_status wait_req(MPI_Request *r, int idle, const char *what)
{
    double t0 = herd_time_s(), now = t0;
    for (long it = 0;; it++) {
        int done = 0;
        HERD_MPI_TRY(MPI_Test(r, &done, MPI_STATUS_IGNORE), what);
        if (done)
            return HERD_OK;
        if ((it & 63) == 0)
            now = herd_time_s();
        double waited = now - t0;
        if (!idle && g.timeout > 0 && waited > g.timeout)
            die(what, waited);
        /* 200 us of spinning covers a decode all-reduce between ranks that each own a
         * core; past that the peer is busy or the node oversubscribed, so give the core
         * away. */
        if (waited < 0.0002)
            continue;
        if (waited < 0.05 && !idle)
            sched_yield();
        else
            nap(waited < 1.0 ? 50000 : 1000000);
    }
}

static herd_status mpi_init(int *argc, char ***argv, int timeout_s)
{
    int n = env_int("OMPI_COMM_WORLD_SIZE", -1);
    if (n < 0)
        n = env_int("PMIX_SIZE", -1);
    if (n < 0)
        n = env_int("PMI_SIZE", -1);
    if (n <= 1)
        return HERD_OK;
    g.timeout = timeout_s;
    int provided = 0;
    HERD_MPI_TRY(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided), "MPI_Init");
    g.on = 1;
    g.thread_level = provided;
    HERD_MPI_TRY(MPI_Comm_dup(MPI_COMM_WORLD, &g.world), "MPI_Comm_dup");
    HERD_MPI_TRY(MPI_Comm_set_errhandler(g.world, MPI_ERRORS_RETURN), "errhandler");
    HERD_MPI_TRY(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "errhandler");
    HERD_MPI_TRY(MPI_Comm_rank(g.world, &g.rank), "MPI_Comm_rank");
    HERD_MPI_TRY(MPI_Comm_size(g.world, &g.size), "MPI_Comm_size");
    MPI_Comm node;
    HERD_MPI_TRY(MPI_Comm_split_type(g.world, MPI_COMM_TYPE_SHARED, g.rank, MPI_INFO_NULL,
                                     &node), "node split");
    HERD_MPI_TRY(MPI_Comm_size(node, &g.local_size), "node size");
    MPI_Comm_free(&node);
    g.tp_comm = MPI_COMM_NULL;
    if (provided < MPI_THREAD_SERIALIZED)
        herd_log(HERD_LOG_WARN, "MPI gives thread level %d: only call herd from one thread",
                 provided);
    return HERD_OK;
}

static void mpi_finalize(void)
{
    if (!g.on)
        return;
    if (g.tp_comm != MPI_COMM_NULL)
        MPI_Comm_free(&g.tp_comm);
    MPI_Comm_free(&g.world);
    MPI_Finalize();
    herd_free(g.gather);
    g.gather = NULL;
    g.on = 0;
}

static int mpi_rank(void)
{
    return g.rank;
}

static int mpi_size(void)
{
    return g.size;
}

static int mpi_local_size(void)
{
    return g.local_size;
}

static herd_status mpi_set_groups(int tp)
{
    if (tp < 1 || g.size % tp != 0)
        return herd_fail(HERD_ERR_INVALID, "tensor groups of %d ranks do not divide %d ranks",
                         tp, g.size);
    if (!g.on)
        return tp == 1 ? HERD_OK : herd_fail(HERD_ERR_INVALID, "tensor groups without MPI");
    if (tp == g.tp && g.tp_comm != MPI_COMM_NULL)
        return HERD_OK;
    if (g.tp_comm != MPI_COMM_NULL)
        MPI_Comm_free(&g.tp_comm);
    HERD_MPI_TRY(MPI_Comm_split(g.world, g.rank / tp, g.rank, &g.tp_comm), "tensor group");
    HERD_MPI_TRY(MPI_Comm_set_errhandler(g.tp_comm, MPI_ERRORS_RETURN), "errhandler");
    if (!g.gather) {
        g.gather = herd_malloc((size_t)GATHER_FLOATS * sizeof(float));
        if (!g.gather)
            return herd_fail(HERD_ERR_NOMEM, "all-reduce buffer");
    }
    g.tp = tp;
    return HERD_OK;
}

static herd_status mpi_bcast(void *buf, size_t bytes, int root, int idle, const char *what)
{
    if (!g.on || bytes == 0)
        return HERD_OK;
    if (bytes > INT32_MAX)
        return herd_fail(HERD_ERR_INVALID, "%s: %zu bytes in one broadcast", what, bytes);
    MPI_Request r;
    HERD_MPI_TRY(MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root, g.world, &r), what);
    return wait_req(&r, idle, what);
}

static herd_status mpi_allgather(const void *send, void *recv, size_t bytes, const char *what)
{
    if (!g.on) {
        memmove(recv, send, bytes);
        return HERD_OK;
    }
    MPI_Request r;
    HERD_MPI_TRY(MPI_Iallgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE,
                                g.world, &r), what);
    return wait_req(&r, 0, what);
}

/* Element range [*off, *off + *len) of piece j of n split tp ways. */
static void piece(int64_t n, int j, int tp, int64_t *off, int64_t *len)
{
    int64_t lo, hi;
    herd_split(n, j, tp, &lo, &hi);
    *off = lo;
    *len = hi - lo;
}

static herd_status allreduce_small(float *buf, int64_t n, const char *what)
{
    MPI_Request r;
    HERD_MPI_TRY(MPI_Iallgather(buf, (int)n, MPI_FLOAT, g.gather, (int)n, MPI_FLOAT, g.tp_comm,
                                &r), what);
    herd_status s = wait_req(&r, 0, what);
    if (s != HERD_OK)
        return s;
    memcpy(buf, g.gather, (size_t)n * sizeof(float));
    for (int j = 1; j < g.tp; j++) {
        const float *p = g.gather + (int64_t)j * n;
        for (int64_t e = 0; e < n; e++)
            buf[e] += p[e];
    }
    return HERD_OK;
}

static herd_status allreduce_large(float *buf, int64_t n, float *scratch, const char *what)
{
    int tp = g.tp, me = g.rank % tp;
    int sc[64], sd[64], rc[64], rd[64];
    if (tp > 64)
        return herd_fail(HERD_ERR_UNSUPPORTED, "tensor groups of more than 64 ranks");
    int64_t my_off, my_len;
    piece(n, me, tp, &my_off, &my_len);
    for (int j = 0; j < tp; j++) {
        int64_t off, len;
        piece(n, j, tp, &off, &len);
        sc[j] = (int)len;
        sd[j] = (int)off;
        rc[j] = (int)my_len;
        rd[j] = (int)(j * my_len);
    }
    MPI_Request r;
    HERD_MPI_TRY(MPI_Ialltoallv(buf, sc, sd, MPI_FLOAT, scratch, rc, rd, MPI_FLOAT, g.tp_comm,
                                &r), what);
    herd_status s = wait_req(&r, 0, what);
    if (s != HERD_OK)
        return s;
    float *out = buf + my_off;
    memcpy(out, scratch, (size_t)my_len * sizeof(float));
    for (int j = 1; j < tp; j++) {
        const float *p = scratch + (int64_t)j * my_len;
        for (int64_t e = 0; e < my_len; e++)
            out[e] += p[e];
    }
    HERD_MPI_TRY(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, buf, sc, sd, MPI_FLOAT, g.tp_comm,
                                 &r), what);
    return wait_req(&r, 0, what);
}

static herd_status mpi_allreduce_tp(float *buf, int64_t n, float *scratch, const char *what)
{
    if (!g.on || g.tp == 1)
        return HERD_OK;
    if (n > INT32_MAX)
        return herd_fail(HERD_ERR_INVALID, "%s: %lld floats in one all-reduce", what,
                         (long long)n);
    if ((int64_t)g.tp * n <= GATHER_FLOATS)
        return allreduce_small(buf, n, what);
    return allreduce_large(buf, n, scratch, what);
}

static herd_status mpi_send(const float *buf, int64_t n, int dst, const char *what)
{
    MPI_Request r;
    HERD_MPI_TRY(MPI_Isend(buf, (int)n, MPI_FLOAT, dst, 7, g.world, &r), what);
    return wait_req(&r, 0, what);
}

static herd_status mpi_recv(float *buf, int64_t n, int src, const char *what)
{
    MPI_Request r;
    HERD_MPI_TRY(MPI_Irecv(buf, (int)n, MPI_FLOAT, src, 7, g.world, &r), what);
    return wait_req(&r, 0, what);
}

static herd_status mpi_recv_rows(float *buf, int64_t rows, int64_t cols, int64_t ld, int src,
                                 const char *what)
{
    MPI_Datatype t;
    HERD_MPI_TRY(MPI_Type_vector((int)rows, (int)cols, (int)ld, MPI_FLOAT, &t), what);
    HERD_MPI_TRY(MPI_Type_commit(&t), what);
    MPI_Request r;
    int rc = MPI_Irecv(buf, 1, t, src, 8, g.world, &r);
    herd_status s = rc == MPI_SUCCESS ? wait_req(&r, 0, what)
                                      : mpi_fail(rc, what, __FILE__, __LINE__);
    MPI_Type_free(&t);
    return s;
}

static void mpi_abort(int code)
{
    if (g.on)
        MPI_Abort(MPI_COMM_WORLD, code);
}

/* The logits of a vocabulary slice travel with tag 8 so they never match a pipeline
 * activation (tag 7) in flight between the same pair of ranks. */
static herd_status mpi_send_rows(const float *buf, int64_t n, int dst, const char *what)
{
    MPI_Request r;
    HERD_MPI_TRY(MPI_Isend(buf, (int)n, MPI_FLOAT, dst, 8, g.world, &r), what);
    return wait_req(&r, 0, what);
}

static const struct dist_ops mpi_ops = {
    .name = "mpi",
    .init = mpi_init,
    .finalize = mpi_finalize,
    .rank = mpi_rank,
    .size = mpi_size,
    .local_size = mpi_local_size,
    .set_groups = mpi_set_groups,
    .bcast = mpi_bcast,
    .allgather = mpi_allgather,
    .allreduce_tp = mpi_allreduce_tp,
    .send_f32 = mpi_send,
    .recv_f32 = mpi_recv,
    .send_rows_f32 = mpi_send_rows,
    .recv_rows_f32 = mpi_recv_rows,
    .abort = mpi_abort,
};

const struct dist_ops *dist_get(void)
{
    return &mpi_ops;
}
