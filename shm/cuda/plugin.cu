// libturbopump_cuda.so: the GPU plugin (see shm/gpu_plugin.h), built by nvcc with the CUDA
// runtime linked statically, so loading it needs only the driver. It holds the one kernel
// of the device path: uint8 NHWC images to normalised float NCHW through per-channel tables,
// which gives the same bits as the daemon's CPU conversion (codecs/normalize.c).
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>

extern "C" {
#include "../gpu_plugin.h"
}

static int g_device;

// Every call runs on the plugin's device and leaves the calling thread's current device as
// it found it (a DLPack deleter may run on a thread that PyTorch set to another device).
struct DeviceGuard {
    int prev = -1;
    cudaError_t rc = cudaSuccess;
    DeviceGuard()
    {
        if (cudaGetDevice(&prev) != cudaSuccess || prev != g_device)
            rc = cudaSetDevice(g_device);
        else
            prev = -1;
    }
    ~DeviceGuard()
    {
        if (prev >= 0 && prev != g_device)
            cudaSetDevice(prev);
    }
};

#define ON_DEVICE()                                                                        \
    DeviceGuard guard_;                                                                    \
    if (guard_.rc != cudaSuccess)                                                          \
    return (int)guard_.rc

static int init(int device)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess)
        return (int)e;
    if (device < 0 || device >= n)
        return (int)cudaErrorInvalidDevice;
    g_device = device;
    ON_DEVICE();
    return (int)cudaFree(0); // creates the primary context, shared with every CUDA user
}

static const char *error(int code) { return cudaGetErrorString((cudaError_t)code); }

static int host_register(void *p, size_t n)
{
    ON_DEVICE();
    return (int)cudaHostRegister(p, n, cudaHostRegisterPortable);
}
static int host_unregister(void *p)
{
    ON_DEVICE();
    return (int)cudaHostUnregister(p);
}
static int host_alloc(void **p, size_t n)
{
    ON_DEVICE();
    return (int)cudaHostAlloc(p, n, cudaHostAllocPortable);
}
static int host_free(void *p)
{
    ON_DEVICE();
    return (int)cudaFreeHost(p);
}
static int dev_alloc(void **p, size_t n)
{
    ON_DEVICE();
    return (int)cudaMalloc(p, n);
}
static int dev_free(void *p)
{
    ON_DEVICE();
    return (int)cudaFree(p);
}

static int stream_create(void **s)
{
    ON_DEVICE();
    return (int)cudaStreamCreateWithFlags((cudaStream_t *)s, cudaStreamNonBlocking);
}
static int stream_destroy(void *s)
{
    ON_DEVICE();
    return (int)cudaStreamDestroy((cudaStream_t)s);
}
static int stream_sync(void *s)
{
    ON_DEVICE();
    return (int)cudaStreamSynchronize((cudaStream_t)s);
}
static int event_create(void **e, int timing)
{
    ON_DEVICE();
    return (int)cudaEventCreateWithFlags((cudaEvent_t *)e,
                                         timing ? cudaEventDefault : cudaEventDisableTiming);
}
static int event_destroy(void *e)
{
    ON_DEVICE();
    return (int)cudaEventDestroy((cudaEvent_t)e);
}
static int event_record(void *e, void *s)
{
    ON_DEVICE();
    return (int)cudaEventRecord((cudaEvent_t)e, (cudaStream_t)s);
}
static int event_query(void *e)
{
    cudaError_t r = cudaEventQuery((cudaEvent_t)e);
    return r == cudaSuccess ? 0 : r == cudaErrorNotReady ? TP_GPU_NOT_READY : (int)r;
}
static int event_sync(void *e) { return (int)cudaEventSynchronize((cudaEvent_t)e); }
static int event_elapsed(float *ms, void *a, void *b)
{
    return (int)cudaEventElapsedTime(ms, (cudaEvent_t)a, (cudaEvent_t)b);
}
static int stream_wait(void *s, void *e)
{
    ON_DEVICE();
    return (int)cudaStreamWaitEvent((cudaStream_t)s, (cudaEvent_t)e, 0);
}
static int copy_h2d(void *dst, const void *src, size_t n, void *s)
{
    ON_DEVICE();
    return (int)cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, (cudaStream_t)s);
}
static int copy_d2h(void *dst, const void *src, size_t n, void *s)
{
    ON_DEVICE();
    return (int)cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, (cudaStream_t)s);
}

// One thread per pixel: three table lookups, one store per channel plane (coalesced).
template <typename T>
__global__ void normalize_kernel(T *__restrict__ dst, const uint8_t *__restrict__ src,
                                 uint64_t pixels, uint64_t plane, const T *__restrict__ lut)
{
    __shared__ T table[3 * 256];
    for (int i = threadIdx.x; i < 3 * 256; i += blockDim.x)
        table[i] = lut[i];
    __syncthreads();
    for (uint64_t p = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; p < pixels;
         p += (uint64_t)gridDim.x * blockDim.x) {
        uint64_t img = p / plane, at = p - img * plane;
        const uint8_t *px = src + p * 3;
        T *out = dst + img * plane * 3 + at;
        out[0] = table[px[0]];
        out[plane] = table[256 + px[1]];
        out[2 * plane] = table[512 + px[2]];
    }
}

static int normalize(void *dst, const void *src, uint64_t n, uint32_t h, uint32_t w,
                     const void *lut, int half, void *s)
{
    uint64_t plane = (uint64_t)h * w, pixels = n * plane;
    if (pixels == 0)
        return 0;
    ON_DEVICE();
    uint64_t blocks = (pixels + 255) / 256;
    unsigned grid = blocks > 65535 ? 65535u : (unsigned)blocks;
    if (half)
        normalize_kernel<uint16_t><<<grid, 256, 0, (cudaStream_t)s>>>(
            (uint16_t *)dst, (const uint8_t *)src, pixels, plane, (const uint16_t *)lut);
    else
        normalize_kernel<float><<<grid, 256, 0, (cudaStream_t)s>>>(
            (float *)dst, (const uint8_t *)src, pixels, plane, (const float *)lut);
    return (int)cudaGetLastError();
}

__global__ void spin_kernel(uint64_t ns)
{
    uint64_t start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while (now - start < ns);
}

static int spin(void *s, uint32_t us)
{
    ON_DEVICE();
    spin_kernel<<<1, 1, 0, (cudaStream_t)s>>>((uint64_t)us * 1000);
    return (int)cudaGetLastError();
}

static char g_name[32];

static tp_gpu_ops g_ops = {
    TP_GPU_PLUGIN_VERSION, 2, g_name, init, error, host_register, host_unregister,
    host_alloc, host_free, dev_alloc, dev_free, stream_create, stream_destroy, stream_sync,
    event_create, event_destroy, event_record, event_query, event_sync, event_elapsed,
    stream_wait, copy_h2d, copy_d2h, normalize, spin,
};

extern "C" __attribute__((visibility("default"))) const tp_gpu_ops *tp_gpu_plugin_ops(void)
{
    int v = CUDART_VERSION;
    snprintf(g_name, sizeof(g_name), "CUDA runtime %d.%d", v / 1000, v % 1000 / 10);
    return &g_ops;
}
