/* The GPU plugin's interface: the handful of CUDA runtime calls and the one kernel the
 * client's device path needs, behind a table of functions.
 *
 * libturbopump never links CUDA. When a caller asks for device batches, shm/gpu.c loads a
 * plugin with dlopen and asks it for this table through its one exported symbol,
 * tp_gpu_plugin_ops. The real plugin (shm/cuda/plugin.cu, libturbopump_cuda.so) is built
 * by nvcc with the CUDA runtime linked in statically, so it needs nothing of CUDA's on the
 * machine but the driver. Tests load a host-memory stand-in (tests/unit/fake_gpu.c) through
 * the same door, which is how the ordering logic runs in CI without a GPU.
 *
 * Every function returns 0 or the plugin's error code, which error() explains. Streams and
 * events are opaque handles; a stream handle may be one the caller got from another CUDA
 * user in the same process (PyTorch's current stream, say), or TP_GPU_STREAM_LEGACY. */
#ifndef TP_GPU_PLUGIN_H
#define TP_GPU_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define TP_GPU_PLUGIN_VERSION 2
#define TP_GPU_NOT_READY (-1)  /* event_query: recorded work still runs */
#define TP_GPU_PLUGIN_SYMBOL "tp_gpu_plugin_ops"
#define TP_GPU_STREAM_LEGACY ((void *)(uintptr_t)1)   /* CUDA's legacy default stream */
#define TP_GPU_STREAM_PER_THREAD ((void *)(uintptr_t)2)

typedef struct tp_gpu_ops {
    uint32_t version;         /* TP_GPU_PLUGIN_VERSION */
    int dlpack_device_type;   /* what DLPack calls this memory: 2 (CUDA); the stand-in says 1 */
    const char *name;         /* for messages: "CUDA 13.0", ... */

    /* Selects the device and creates its context. @return : 0, or a code when there is no
     * such device, no driver, or the driver is too old (error() says which). */
    int (*init)(int device);
    const char *(*error)(int code);

    int (*host_register)(void *p, size_t bytes);   /* page-lock memory the caller mapped */
    int (*host_unregister)(void *p);
    int (*host_alloc)(void **p, size_t bytes);     /* page-locked memory */
    int (*host_free)(void *p);
    int (*dev_alloc)(void **p, size_t bytes);
    int (*dev_free)(void *p);

    int (*stream_create)(void **s);                /* a non-blocking stream */
    int (*stream_destroy)(void *s);
    int (*stream_sync)(void *s);
    int (*event_create)(void **e, int timing);     /* timing 0: no timestamps (cheaper) */
    int (*event_destroy)(void *e);
    int (*event_record)(void *e, void *stream);
    int (*event_query)(void *e);                   /* 0 done, TP_GPU_NOT_READY, or an error */
    int (*event_sync)(void *e);
    int (*event_elapsed)(float *ms, void *start, void *end);
    int (*stream_wait)(void *stream, void *e);     /* later work on stream waits for e */

    int (*copy_h2d)(void *dst, const void *src, size_t bytes, void *stream);
    int (*copy_d2h)(void *dst, const void *src, size_t bytes, void *stream);

    /* uint8 [n, h, w, 3] to [n, 3, h, w] through per-channel tables: lut is 3 x 256 floats
     * (half 0) or 3 x 256 halves as uint16 (half 1), in device memory. */
    int (*normalize)(void *dst, const void *src, uint64_t n, uint32_t h, uint32_t w,
                     const void *lut, int half, void *stream);
    /* Busy work on a stream for about `us` microseconds: a stand-in for a training step in
     * tests and benchmarks. */
    int (*spin)(void *stream, uint32_t us);
} tp_gpu_ops;

typedef const tp_gpu_ops *(*tp_gpu_ops_fn)(void);

/* What a plugin exports, under TP_GPU_PLUGIN_SYMBOL. */
const tp_gpu_ops *tp_gpu_plugin_ops(void);

#endif
