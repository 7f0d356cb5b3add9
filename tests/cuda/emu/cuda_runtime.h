/*
 * cuda_runtime.h (emulator) - the part of CUDA that src/kernels/cuda uses, on the CPU, so
 * that the CUDA backend's own code (kernels, launchers, graphs, glue) runs and is tested
 * on machines without a GPU. tests/cuda/emu/README.md says what is and is not emulated.
 *
 * Kernels run for real: each block's threads are fibers on one OS thread (emu.cpp), with
 * __syncthreads a block barrier and __shfl_xor_sync a warp exchange, so shared memory,
 * warp reductions and divergence behave as on a GPU (and a barrier that not every thread
 * reaches stops the program with a message, where a GPU would hang). Blocks run one after
 * another; a stream runs its work at once, in order, except while it is being captured,
 * when launches, copies and cuBLAS calls are recorded and a graph replays them.
 *
 * No std:: templates here or in emu.cpp: their instantiations have default visibility and
 * would be exported from libherd.so (tests/lib's export check).
 */
#ifndef HERD_CUDA_EMU_RUNTIME_H
#define HERD_CUDA_EMU_RUNTIME_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>


#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __shared__ static

/* ---- types */

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInsufficientDriver = 35,
    cudaErrorNoDevice = 100,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
};

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
};

enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
};

#define cudaStreamNonBlocking 0x01
#define cudaEventDisableTiming 0x02
#define cudaHostAllocDefault 0x00

typedef struct emu_stream *cudaStream_t;
typedef struct emu_event *cudaEvent_t;
typedef struct emu_graph *cudaGraph_t;
typedef struct emu_graph *cudaGraphExec_t;

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int major, minor;
    int multiProcessorCount;
};

/* ---- runtime API (emu.cpp) */

const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b);
cudaError_t cudaMalloc(void **p, size_t n);
cudaError_t cudaFree(void *p);
cudaError_t cudaHostAlloc(void **p, size_t n, unsigned flags);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind k);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k,
                            cudaStream_t s);
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t g, unsigned long long f);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t g);
cudaError_t cudaGraphLaunch(cudaGraphExec_t g, cudaStream_t s);

/* ---- inside kernels */

struct emu_thread_idx {
    unsigned x, y, z;
};

/* A unit of stream work: run it now, or keep it in a graph (reference-counted, since a
 * graph and its instantiations share it). */
struct emu_work {
    int refs;
    void (*run)(emu_work *w);
    void (*drop)(emu_work *w);
};

template <typename F>
struct emu_closure : emu_work {
    F fn;
    explicit emu_closure(const F &f) : emu_work{1, run_it, drop_it}, fn(f) {}
    static void run_it(emu_work *w) { static_cast<emu_closure *>(w)->fn(); }
    static void drop_it(emu_work *w) { delete static_cast<emu_closure *>(w); }
};

namespace emu {
extern const emu_thread_idx *cur_tid; /* the running fiber's threadIdx */
extern dim3 cur_block, cur_block_dim, cur_grid_dim;
void syncthreads();
uint32_t shfl_xor(uint32_t v, int lane_mask);
/* Whether s is being captured: then submit(s, w) keeps w for the graph. */
bool capturing(cudaStream_t s);
void submit(cudaStream_t s, emu_work *w);
/* The grid of blocks of fibers, each calling body(arg); checks the launch configuration. */
void run_grid(dim3 grid, dim3 block, void (*body)(void *), void *arg);
cudaError_t check_config(dim3 grid, dim3 block);
void set_error(cudaError_t e);

/* f() now on s, or recorded while s is captured. */
template <typename F>
static inline void on_stream(cudaStream_t s, const F &f)
{
    if (capturing(s))
        submit(s, new emu_closure<F>(f));
    else
        f();
}
} // namespace emu

#define threadIdx (*emu::cur_tid)
#define blockIdx (emu::cur_block)
#define blockDim (emu::cur_block_dim)
#define gridDim (emu::cur_grid_dim)

static inline void __syncthreads(void)
{
    emu::syncthreads();
}

static inline float __shfl_xor_sync(unsigned mask, float v, int o)
{
    (void)mask;
    uint32_t u;
    memcpy(&u, &v, 4);
    u = emu::shfl_xor(u, o);
    memcpy(&v, &u, 4);
    return v;
}

static inline int __shfl_xor_sync(unsigned mask, int v, int o)
{
    (void)mask;
    return (int)emu::shfl_xor((uint32_t)v, o);
}

/* The vector types the kernels load (16 and 8 bytes at a time). */
struct uint4 {
    unsigned x, y, z, w;
};
struct int4 {
    int x, y, z, w;
};
struct int2 {
    int x, y;
};
struct float4 {
    float x, y, z, w;
};

/* Sum of the four signed byte products of a and b, plus c. */
static inline int __dp4a(int a, int b, int c)
{
    for (int i = 0; i < 4; i++)
        c += (int)(int8_t)(uint8_t)((uint32_t)a >> (8 * i)) *
             (int)(int8_t)(uint8_t)((uint32_t)b >> (8 * i));
    return c;
}

/* Bytewise a - b, each byte modulo 256. */
static inline int __vsub4(int a, int b)
{
    uint32_t r = 0;
    for (int i = 0; i < 4; i++)
        r |= (uint32_t)(uint8_t)(((uint32_t)a >> (8 * i)) - ((uint32_t)b >> (8 * i))) << (8 * i);
    return (int)r;
}

template <typename T>
static inline T __ldg(const T *p)
{
    return *p;
}

static inline float __fmul_rn(float a, float b)
{
    return a * b;
}

static inline float __fadd_rn(float a, float b)
{
    return a + b;
}

static inline float __fsub_rn(float a, float b)
{
    return a - b;
}

static inline float __uint_as_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t __float_as_uint(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* kernel<<<grid, block, smem, stream>>>(args) after translate.py: the arguments are copied
 * (as a launch copies them) and converted to the kernel's parameter types at the call. */
template <typename... P, typename... A>
static inline void emu_launch(dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                              void (*k)(P...), A... args)
{
    (void)smem;
    cudaError_t e = emu::check_config(grid, block);
    if (e != cudaSuccess) {
        emu::set_error(e);
        return;
    }
    auto call = [=]() { k(args...); };
    emu::on_stream(s, [=]() {
        emu::run_grid(grid, block, [](void *p) { (*(decltype(call) *)p)(); }, (void *)&call);
    });
}

#endif /* HERD_CUDA_EMU_RUNTIME_H */
