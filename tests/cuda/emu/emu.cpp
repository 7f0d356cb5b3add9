/*
 * emu.cpp - the CUDA emulator's runtime (cuda_runtime.h, cublas_v2.h): fibers for the
 * threads of a block, streams that run work at once or record it into a graph, memory from
 * malloc, SGEMM as a loop. x86-64 only (the fiber switch below).
 *
 * A block runs as blockDim fibers on the calling thread. The scheduler resumes every fiber
 * that can run until each has finished or waits: at __syncthreads (released when every
 * thread of the block waits there) or at a warp shuffle (released when the warp's 32 lanes
 * all wait at one; each lane then gets its partner's value). Anything else is a kernel bug
 * that hangs or is undefined on a GPU (a barrier some threads skip, a shuffle with lanes
 * gone): the emulator prints which and aborts.
 *
 * Device memory is filled with 0xff bytes when allocated (NaN as floats), so a kernel that
 * reads what nothing wrote shows it in its results. Launch configurations, capture misuse
 * (a synchronisation while capturing) and cuBLAS arguments are checked as CUDA checks them.
 */
#include "cublas_v2.h"
#include "cuda_runtime.h"
#include "cuda_fp16.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- fibers: callee-saved registers on the fiber's own stack, System V x86-64 */

extern "C" void emu_switch(void **save_sp, void *new_sp);
asm(R"(
    .text
    .globl emu_switch
    .hidden emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
    .section .note.GNU-stack,"",@progbits
    .text
)");

namespace emu {

enum fstate { F_RUN, F_BLOCK, F_WARP, F_DONE };

struct fiber {
    void *sp;
    emu_thread_idx tid;
    int lin; /* linear thread index in the block */
    fstate state;
    uint32_t shfl_val, shfl_res;
    int shfl_src;
};

static const size_t STACK_BYTES = 256 << 10;
static const int MAX_THREADS = 1024;
static fiber fibers[MAX_THREADS];
static char *stacks[MAX_THREADS];
static void *sched_sp;
static fiber *cur;
static void (*cur_body)(void *);
static void *cur_arg;

const emu_thread_idx *cur_tid;
dim3 cur_block, cur_block_dim, cur_grid_dim;

static void die(const char *what)
{
    fprintf(stderr, "CUDA emulator: %s (block %u,%u,%u thread %u,%u,%u)\n", what, cur_block.x,
            cur_block.y, cur_block.z, cur ? cur->tid.x : 0, cur ? cur->tid.y : 0,
            cur ? cur->tid.z : 0);
    abort();
}

static void fiber_main()
{
    cur_body(cur_arg);
    cur->state = F_DONE;
    emu_switch(&cur->sp, sched_sp);
    die("a finished fiber was resumed");
}

static void yield(fstate s)
{
    cur->state = s;
    emu_switch(&cur->sp, sched_sp);
}

void syncthreads()
{
    yield(F_BLOCK);
}

uint32_t shfl_xor(uint32_t v, int lane_mask)
{
    cur->shfl_val = v;
    cur->shfl_src = (cur->lin % 32) ^ lane_mask;
    yield(F_WARP);
    return cur->shfl_res;
}

static void run_block(int n)
{
    for (int i = 0; i < n; i++)
        if (!stacks[i] && !(stacks[i] = (char *)malloc(STACK_BYTES)))
            die("no memory for fiber stacks");
    const dim3 b = cur_block_dim;
    for (int i = 0; i < n; i++) {
        fiber &f = fibers[(size_t)i];
        f.lin = i;
        f.tid = {(unsigned)i % b.x, (unsigned)i / b.x % b.y, (unsigned)i / (b.x * b.y)};
        f.state = F_RUN;
        /* the return address fiber_main at a 16-aligned slot, 6 registers below it */
        uintptr_t top = ((uintptr_t)stacks[(size_t)i] + STACK_BYTES) & ~(uintptr_t)15;
        void **sp = (void **)(top - 16);
        sp[0] = (void *)fiber_main;
        for (int r = 1; r <= 6; r++)
            sp[-r] = NULL;
        f.sp = sp - 6;
    }
    for (;;) {
        for (int i = 0; i < n; i++) {
            if (fibers[(size_t)i].state != F_RUN)
                continue;
            cur = &fibers[(size_t)i];
            cur_tid = &cur->tid;
            emu_switch(&sched_sp, cur->sp);
        }
        cur = NULL;
        int done = 0, at_block = 0, at_warp = 0;
        for (int i = 0; i < n; i++) {
            done += fibers[(size_t)i].state == F_DONE;
            at_block += fibers[(size_t)i].state == F_BLOCK;
            at_warp += fibers[(size_t)i].state == F_WARP;
        }
        if (done == n)
            return;
        bool released = false;
        for (int w = 0; w * 32 < n; w++) {
            const int l0 = w * 32, cnt = n - l0 < 32 ? n - l0 : 32;
            int waiting = 0;
            for (int l = 0; l < cnt; l++)
                waiting += fibers[(size_t)(l0 + l)].state == F_WARP;
            if (waiting == 0)
                continue;
            if (waiting != cnt)
                die("a warp shuffle that not every lane of the warp reached");
            for (int l = 0; l < cnt; l++) {
                fiber &f = fibers[(size_t)(l0 + l)];
                if (f.shfl_src >= cnt)
                    die("a warp shuffle from a lane the warp does not have");
                f.shfl_res = fibers[(size_t)(l0 + f.shfl_src)].shfl_val;
            }
            for (int l = 0; l < cnt; l++)
                fibers[(size_t)(l0 + l)].state = F_RUN;
            released = true;
        }
        if (released)
            continue;
        if (at_warp == 0 && at_block > 0) {
            if (at_block + done != n || done > 0)
                die("__syncthreads that not every thread of the block reached");
            for (int i = 0; i < n; i++)
                fibers[(size_t)i].state = F_RUN;
            continue;
        }
        die("deadlock");
    }
}

void run_grid(dim3 grid, dim3 block, void (*body)(void *), void *arg)
{
    cur_body = body;
    cur_arg = arg;
    cur_grid_dim = grid;
    cur_block_dim = block;
    const int n = (int)(block.x * block.y * block.z);
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                cur_block = dim3(x, y, z);
                run_block(n);
            }
}

static cudaError_t last_error = cudaSuccess;

void set_error(cudaError_t e)
{
    if (last_error == cudaSuccess)
        last_error = e;
}

cudaError_t check_config(dim3 grid, dim3 block)
{
    const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 ||
        grid.z > 65535 || threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 ||
        block.z > 64)
        return cudaErrorInvalidConfiguration;
    return cudaSuccess;
}

} // namespace emu

/* ---- streams and graphs */

struct emu_graph {
    emu_work **work; /* (n) */
    int n;
};

struct emu_stream {
    emu_graph *capture; /* non-NULL while capturing */
    bool invalid;       /* the capture broke a rule */
};

struct emu_event {
    int unused;
};

static void graph_free(emu_graph *g)
{
    for (int i = 0; g && i < g->n; i++)
        if (--g->work[i]->refs == 0)
            g->work[i]->drop(g->work[i]);
    if (g)
        free(g->work);
    delete g;
}

bool emu::capturing(cudaStream_t s)
{
    if (!s)
        die("work on the legacy default stream (the backend uses its own streams)");
    return s->capture != NULL;
}

void emu::submit(cudaStream_t s, emu_work *w)
{
    emu_graph *g = s->capture;
    emu_work **grown = (emu_work **)realloc(g->work, (size_t)(g->n + 1) * sizeof *grown);
    if (!grown)
        die("no memory for a graph");
    g->work = grown;
    g->work[g->n++] = w;
}

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess:
        return "no error";
    case cudaErrorInvalidValue:
        return "invalid argument";
    case cudaErrorMemoryAllocation:
        return "out of memory";
    case cudaErrorInvalidConfiguration:
        return "invalid configuration argument";
    case cudaErrorInsufficientDriver:
        return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice:
        return "no CUDA-capable device is detected";
    case cudaErrorStreamCaptureUnsupported:
        return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
        return "operation failed due to a previous error during capture";
    }
    return "unknown error";
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = emu::last_error;
    emu::last_error = cudaSuccess;
    return e;
}

cudaError_t cudaGetDeviceCount(int *n)
{
    const char *e = getenv("HERD_CUDA_EMU_DEVICES");
    *n = e && *e ? (int)strtol(e, NULL, 10) : 1;
    return *n > 0 ? cudaSuccess : cudaErrorNoDevice;
}

cudaError_t cudaSetDevice(int d)
{
    int n;
    cudaGetDeviceCount(&n);
    return d >= 0 && d < n ? cudaSuccess : cudaErrorInvalidValue;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "herd CUDA emulator %d", d);
    p->totalGlobalMem = (size_t)8 << 30;
    p->major = 9;
    p->multiProcessorCount = 1;
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b)
{
    *free_b = *total_b = (size_t)8 << 30;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t n)
{
    *p = malloc(n ? n : 1);
    if (!*p)
        return cudaErrorMemoryAllocation;
    memset(*p, 0xff, n);
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    free(p);
    return cudaSuccess;
}

cudaError_t cudaHostAlloc(void **p, size_t n, unsigned flags)
{
    (void)flags;
    *p = malloc(n ? n : 1);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaFreeHost(void *p)
{
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind k)
{
    (void)k;
    memcpy(dst, src, n);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k,
                            cudaStream_t s)
{
    (void)k;
    emu::on_stream(s, [=]() { memmove(dst, src, n); });
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s)
{
    emu::on_stream(s, [=]() { memset(p, v, n); });
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
    (void)flags;
    *s = new emu_stream{NULL, false};
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    if (s)
        graph_free(s->capture);
    delete s;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    if (s && s->capture) {
        s->invalid = true;
        return cudaErrorStreamCaptureUnsupported;
    }
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags)
{
    (void)flags;
    *e = new emu_event{0};
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    delete e;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    (void)e;
    (void)s;
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    (void)e;
    return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode)
{
    (void)mode;
    if (!s || s->capture)
        return cudaErrorInvalidValue;
    s->capture = new emu_graph{NULL, 0};
    s->invalid = false;
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g)
{
    *g = NULL;
    if (!s || !s->capture)
        return cudaErrorInvalidValue;
    emu_graph *graph = s->capture;
    s->capture = NULL;
    if (s->invalid) {
        graph_free(graph);
        return cudaErrorStreamCaptureInvalidated;
    }
    *g = graph;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t g, unsigned long long f)
{
    (void)f;
    emu_graph *e = new emu_graph{(emu_work **)malloc((size_t)(g->n + 1) * sizeof(emu_work *)),
                                 g->n};
    if (!e->work)
        return cudaErrorMemoryAllocation;
    for (int i = 0; i < g->n; i++) {
        e->work[i] = g->work[i];
        e->work[i]->refs++;
    }
    *exec = e;
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t g)
{
    graph_free(g);
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t g)
{
    graph_free(g);
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t g, cudaStream_t s)
{
    emu::on_stream(s, [g]() {
        for (int i = 0; i < g->n; i++)
            g->work[i]->run(g->work[i]);
    });
    return cudaSuccess;
}

/* ---- cuBLAS */

struct emu_blas {
    cudaStream_t stream;
};

cublasStatus_t cublasCreate(cublasHandle_t *h)
{
    *h = new emu_blas{NULL};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t h)
{
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s)
{
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m)
{
    (void)h;
    (void)m;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *ws, size_t bytes)
{
    (void)h;
    (void)ws;
    (void)bytes;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t s)
{
    return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_INVALID_VALUE";
}

/* C (m x n, ldc) = alpha op(A) op(B) + beta C, column-major; beta 0: C is not read. */
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                           int n, int k, const float *alpha, const float *a, int lda,
                           const float *b, int ldb, const float *beta, float *c, int ldc)
{
    if (m < 0 || n < 0 || k < 0 || lda < (ta == CUBLAS_OP_N ? m : k) || lda < 1 ||
        ldb < (tb == CUBLAS_OP_N ? k : n) || ldb < 1 || ldc < m || ldc < 1)
        return CUBLAS_STATUS_INVALID_VALUE;
    const float al = *alpha, be = *beta;
    emu::on_stream(h->stream, [=]() {
        for (int j = 0; j < n; j++) {
            for (int i = 0; i < m; i++) {
                float s = 0.0f;
                for (int l = 0; l < k; l++) {
                    const float x = ta == CUBLAS_OP_N ? a[i + (size_t)l * lda]
                                                      : a[l + (size_t)i * lda];
                    const float y = tb == CUBLAS_OP_N ? b[l + (size_t)j * ldb]
                                                      : b[j + (size_t)l * ldb];
                    s += x * y;
                }
                float *o = c + i + (size_t)j * ldc;
                *o = be == 0.0f ? al * s : al * s + be * *o;
            }
        }
    });
    return CUBLAS_STATUS_SUCCESS;
}

/* An element of a 16-bit matrix as a float. */
static float emu_elem16(const void *p, cudaDataType_t t, size_t i)
{
    const uint16_t h = ((const uint16_t *)p)[i];
    if (t == CUDA_R_16F)
        return fp16_to_f32(h);
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void *alpha, const void *a, cudaDataType_t at,
                            int lda, const void *b, cudaDataType_t bt, int ldb,
                            const void *beta, void *c, cudaDataType_t ct, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t algo)
{
    (void)algo;
    const bool t16 = (at == CUDA_R_16F || at == CUDA_R_16BF) && bt == at;
    if (!t16 || ct != CUDA_R_32F || compute != CUBLAS_COMPUTE_32F || m < 0 || n < 0 || k < 0 ||
        lda < (ta == CUBLAS_OP_N ? m : k) || lda < 1 || ldb < (tb == CUBLAS_OP_N ? k : n) ||
        ldb < 1 || ldc < m || ldc < 1)
        return CUBLAS_STATUS_INVALID_VALUE;
    const float al = *(const float *)alpha, be = *(const float *)beta;
    float *cf = (float *)c;
    emu::on_stream(h->stream, [=]() {
        for (int j = 0; j < n; j++) {
            for (int i = 0; i < m; i++) {
                float s = 0.0f;
                for (int l = 0; l < k; l++) {
                    const float x = emu_elem16(a, at, ta == CUBLAS_OP_N ? i + (size_t)l * lda
                                                                        : l + (size_t)i * lda);
                    const float y = emu_elem16(b, bt, tb == CUBLAS_OP_N ? l + (size_t)j * ldb
                                                                        : j + (size_t)l * ldb);
                    s += x * y;
                }
                float *o = cf + i + (size_t)j * ldc;
                *o = be == 0.0f ? al * s : al * s + be * *o;
            }
        }
    });
    return CUBLAS_STATUS_SUCCESS;
}
