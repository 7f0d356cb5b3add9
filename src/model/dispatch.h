/*
 * dispatch.h - the one place where herd's model calls part ways between one process and a
 * job of several MPI ranks. api.c holds the public entry points (herd_model_load/free,
 * herd_context_new/free, herd_decode, herd_seq_truncate/copy): each checks its arguments and
 * fills defaults, then calls the active struct model_ops. That is model_ops_local (the
 * *_local functions of load.c, context.c and forward.c) unless herd_dist_init (dispatch.c)
 * found this process to be rank 0 of several: then it installs the leader table, whose
 * entries send the call to the follower ranks (wire.h) and run it on rank 0's shard. The
 * followers run the same local functions from their request loop; local code never asks
 * which case it is in.
 */
#ifndef HERD_DISPATCH_H
#define HERD_DISPATCH_H

#include "model.h" /* herd_model, herd_context, the params and batch types */

struct model_ops {
    const char *name; /* "local" or "leader" */
    herd_status (*load)(const char *path, const herd_model_params *p, herd_model **out);
    void (*free)(herd_model *m);
    herd_status (*context_new)(const herd_model *m, const herd_context_params *p,
                               herd_context **out);
    void (*context_free)(herd_context *c);
    /* b has passed check_batch; out is NULL when nothing wants logits */
    herd_status (*decode)(herd_context *c, const herd_batch *b, float *out);
    herd_status (*seq_truncate)(herd_context *c, int32_t seq, int32_t from);
    herd_status (*seq_copy)(herd_context *c, int32_t dst, int32_t src, int32_t n);
};

/* api.c: one process's table, and the switch herd_dist_init throws once on rank 0 (and
 * back to local when rank 0 exits). NULL selects the local table. Not thread-safe: call
 * before any model exists. */
extern const struct model_ops model_ops_local;
void model_ops_use(const struct model_ops *ops);

#endif /* HERD_DISPATCH_H */
