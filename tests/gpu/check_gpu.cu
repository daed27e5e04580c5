// GPU checks of the device path, run by tests/gpu/run.sh on a machine with a GPU, against a
// running daemon: (a) device batches equal host batches byte for byte (as sent, and
// converted to float32/float16 on the GPU against the daemon's CPU conversion), (b) batch
// H2D bandwidth against cudaMemcpyAsync from cudaMallocHost memory in the same run, and
// (c) overlap: a stand-in training step on the consumer's stream, timed with events, and
// how long that stream waited for data. Prints figures; exits 1 when a check fails.
//
//   check_gpu SOCKET IMAGE_DATASET TENSOR_DATASET
#include <turbopump/client.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <vector>

static int failures;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                    \
            printf(__VA_ARGS__);                                                           \
            printf("\n");                                                                  \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

#define CU(call)                                                                           \
    do {                                                                                   \
        cudaError_t e_ = (call);                                                           \
        if (e_ != cudaSuccess) {                                                           \
            printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

__global__ void spin_kernel(unsigned long long ns)
{
    unsigned long long start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while (now - start < ns);
}

static tp_client *open_client(const char *sock, const char *dataset, tp_client_output out,
                              uint64_t batch, uint32_t prefetch, const char *transform)
{
    tp_client_options o = {};
    o.socket = sock;
    o.dataset = dataset;
    o.transform = transform;
    o.output = out;
    o.batch_size = batch;
    o.shuffle = true;
    o.seed = 9;
    o.prefetch = prefetch;
    o.no_autostart = true;
    tp_client *c = NULL;
    tp_error err = {};
    int rc = tp_client_open(&c, &o, &err);
    if (rc) {
        printf("FAIL open %s: %s\n", dataset, err.msg);
        exit(1);
    }
    return c;
}

static void device_on(tp_client *c, tp_client_output out, uint32_t depth)
{
    tp_device_options d = {};
    d.depth = depth;
    d.output = out;
    tp_error err = {};
    int rc = tp_client_device(c, &d, &err);
    if (rc) {
        printf("FAIL tp_client_device: %s\n", err.msg);
        exit(1);
    }
}

static tp_device_batch next_device(tp_client *c)
{
    tp_device_batch b;
    tp_error err = {};
    int rc = tp_client_next_device(c, &b, &err);
    if (rc) {
        printf("FAIL tp_client_next_device: %s\n", err.msg);
        exit(1);
    }
    return b;
}

// (a) every batch of two epochs, every field, byte for byte.
static void check_bytes(const char *sock, const char *ds, tp_client_output out, bool images)
{
    const char *tf = images ? "rrc224" : NULL;
    tp_client *host = open_client(sock, ds, images ? out : TP_CLIENT_UINT8, 32, 4, tf);
    tp_client *dev = open_client(sock, ds, TP_CLIENT_UINT8, 32, 4, tf);
    device_on(dev, out, 3);
    cudaStream_t s;
    CU(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    uint64_t n = 2 * tp_client_batches_per_epoch(dev), bytes = 0;
    std::vector<unsigned char> got;
    for (uint64_t k = 0; k < n; k++) {
        tp_batch hb;
        tp_error err = {};
        if (tp_client_next(host, &hb, &err)) {
            printf("FAIL host batch: %s\n", err.msg);
            exit(1);
        }
        tp_device_batch db = next_device(dev);
        CHECK(tp_device_batch_wait(dev, &db, s) == 0, "wait");
        CHECK(db.epoch == hb.epoch && db.index == hb.index && db.samples == hb.samples &&
              !memcmp(db.ids, hb.ids, hb.samples * 8), "batch %llu: ids differ",
              (unsigned long long)k);
        for (uint32_t i = 0; i < hb.nfields; i++) {
            const tp_batch_field *a = &db.fields[i], *b = &hb.fields[i];
            CHECK(a->dtype == b->dtype && a->ndim == b->ndim && a->bytes == b->bytes &&
                  !memcmp(a->shape, b->shape, b->ndim * 8), "batch %llu field %s: layout",
                  (unsigned long long)k, b->name);
            got.resize(b->bytes);
            CU(cudaMemcpyAsync(got.data(), a->data, b->bytes, cudaMemcpyDeviceToHost, s));
            CU(cudaStreamSynchronize(s));
            CHECK(!memcmp(got.data(), b->data, b->bytes), "batch %llu field %s: bytes differ",
                  (unsigned long long)k, b->name);
            bytes += b->bytes;
        }
        tp_client_release_device(dev, &db, s);
    }
    tp_device_info info;
    tp_client_device_info(dev, &info);
    printf("(a) %-8s %-7s %llu batches, %.1f MB compared, pinned ring %s: %s\n", ds,
           out == TP_CLIENT_UINT8 ? "uint8" : out == TP_CLIENT_FLOAT32 ? "float32" : "float16",
           (unsigned long long)n, bytes / 1e6, info.pinned_ring ? "yes" : "no",
           failures ? "FAIL" : "ok");
    CHECK(info.pinned_ring, "the ring was not page-locked");
    tp_client_close(dev);
    tp_client_close(host);
    CU(cudaStreamDestroy(s));
}

static double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// cudaMemcpyAsync from cudaMallocHost memory, the same size as a batch: the reference.
static double pinned_gbps(size_t bytes)
{
    void *h, *d;
    CU(cudaMallocHost(&h, bytes));
    CU(cudaMalloc(&d, bytes));
    memset(h, 1, bytes);
    cudaStream_t s;
    cudaEvent_t a, b;
    CU(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CU(cudaEventCreate(&a));
    CU(cudaEventCreate(&b));
    std::vector<double> runs;
    for (int i = 0; i < 12; i++) {
        CU(cudaEventRecord(a, s));
        CU(cudaMemcpyAsync(d, h, bytes, cudaMemcpyHostToDevice, s));
        CU(cudaEventRecord(b, s));
        CU(cudaEventSynchronize(b));
        float ms;
        CU(cudaEventElapsedTime(&ms, a, b));
        if (i >= 2)
            runs.push_back(bytes / (ms * 1e6));
    }
    CU(cudaFreeHost(h));
    CU(cudaFree(d));
    CU(cudaStreamDestroy(s));
    return median(runs);
}

static double host_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

// (c): steps of `step_ms` on the consumer stream, each waiting only for its own batch. If
// copies ran serialised with the steps, the stream would be busy step / (step + copy) of
// the time; overlapped, all of it but the first copy. Times come from events: when each
// step started and ended, and when each batch was in place (seen from a stream that
// waits for nothing else).
static void overlap(const char *sock, const char *ds, uint32_t depth, double step_ms,
                    double copy_ms, bool timeline)
{
    enum { PREFETCH = 16, N = 15 };
    tp_client *c = open_client(sock, ds, TP_CLIENT_UINT8, 256, PREFETCH, NULL);
    device_on(c, TP_CLIENT_UINT8, depth);
    sleep(3); // the daemon fills the ring: its speed is not what is measured here
    cudaStream_t s, probe;
    CU(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CU(cudaStreamCreateWithFlags(&probe, cudaStreamNonBlocking));
    cudaEvent_t start[N], end[N], ready_at[N];
    double host[N];
    for (int k = 0; k < N; k++) {
        CU(cudaEventCreate(&start[k]));
        CU(cudaEventCreate(&end[k]));
        CU(cudaEventCreate(&ready_at[k]));
    }
    double h0 = host_ms();
    for (int k = 0; k < N; k++) {
        tp_device_batch b = next_device(c);
        host[k] = host_ms() - h0;
        CU(cudaStreamWaitEvent(probe, (cudaEvent_t)b.ready, 0));
        CU(cudaEventRecord(ready_at[k], probe));
        tp_device_batch_wait(c, &b, s);
        CU(cudaEventRecord(start[k], s));
        spin_kernel<<<1, 1, 0, s>>>((unsigned long long)(step_ms * 1e6));
        CU(cudaEventRecord(end[k], s));
        tp_client_release_device(c, &b, s);
    }
    CU(cudaStreamSynchronize(s));
    CU(cudaStreamSynchronize(probe));
    float total, stalled = 0, stepped = 0;
    int ready_before = 0;
    CU(cudaEventElapsedTime(&total, start[0], end[N - 1]));
    for (int k = 0; k < N; k++) {
        float a, b, r, d;
        CU(cudaEventElapsedTime(&a, start[0], start[k]));
        CU(cudaEventElapsedTime(&b, start[0], end[k]));
        CU(cudaEventElapsedTime(&r, start[0], ready_at[k]));
        stepped += b - a;
        if (k > 0) {
            CU(cudaEventElapsedTime(&d, end[k - 1], start[k]));
            stalled += d > 0 ? d : 0;
            CU(cudaEventElapsedTime(&d, end[k - 1], ready_at[k]));
            ready_before += d <= 0;
        }
        if (timeline)
            printf("    batch %2d: host got it at %7.2f ms; in place %7.2f, step %7.2f .. %7.2f\n",
                   k, host[k], r, a, b);
    }
    double busy = stepped / total, serial = step_ms / (step_ms + copy_ms);
    printf("(c) depth %u, %d steps of %.2f ms, copies %.2f ms: stream busy %.3f of the time "
           "(serialised copies: %.3f), stalled %.2f ms in all, next batch in place before the "
           "step ended %d of %d times\n", depth, N, step_ms, copy_ms, busy, serial, stalled,
           ready_before, N - 1);
    CHECK(busy >= 0.95, "the stream was busy only %.3f of the time", busy);
    tp_client_close(c);
    CU(cudaStreamDestroy(s));
    CU(cudaStreamDestroy(probe));
}

// (b) and (c) on the raw tensor dataset, with the ring filled before the clock starts so
// the daemon's speed is not what is measured.
static void check_bandwidth_overlap(const char *sock, const char *ds)
{
    enum { PREFETCH = 16, N = 15 };
    tp_client *c = open_client(sock, ds, TP_CLIENT_UINT8, 256, PREFETCH, NULL);
    device_on(c, TP_CLIENT_UINT8, 3);
    sleep(4);
    cudaStream_t s;
    CU(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    // (b): batches taken as fast as they come; the library times each copy with events
    uint64_t batch_bytes = 0;
    for (int k = 0; k < N; k++) {
        tp_device_batch b = next_device(c);
        batch_bytes = 0;
        for (uint32_t i = 0; i < b.nfields; i++)
            batch_bytes += b.fields[i].bytes;
        tp_device_batch_wait(c, &b, s);
        tp_client_release_device(c, &b, s);
    }
    CU(cudaStreamSynchronize(s));
    tp_device_info info;
    tp_client_device_info(c, &info);
    double ours = info.copy_ms > 0 ? info.copy_bytes / (info.copy_ms * 1e6) : 0;
    double ref = pinned_gbps(batch_bytes);
    printf("(b) batch H2D %.2f GB/s (%llu copies, %.1f MB per batch) / cudaMemcpyAsync from "
           "cudaMallocHost %.2f GB/s = %.3f (target >= 0.9)\n", ours,
           (unsigned long long)info.copies, batch_bytes / 1e6, ref, ours / ref);
    CHECK(ours / ref >= 0.9, "bandwidth ratio %.3f below 0.9", ours / ref);
    tp_client_close(c);

    double copy_ms = batch_bytes / (ours * 1e6);
    overlap(sock, ds, 3, 2 * copy_ms, copy_ms, true);
    overlap(sock, ds, 4, 2 * copy_ms, copy_ms, false);
    overlap(sock, ds, 3, 8 * copy_ms, copy_ms, false);
    CU(cudaStreamDestroy(s));
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: check_gpu SOCKET IMAGE_DATASET TENSOR_DATASET\n");
        return 2;
    }
    int n = 0;
    CU(cudaGetDeviceCount(&n));
    cudaDeviceProp p;
    CU(cudaGetDeviceProperties(&p, 0));
    printf("device: %s, %d GPU(s)\n", p.name, n);
    check_bytes(argv[1], argv[2], TP_CLIENT_UINT8, true);
    check_bytes(argv[1], argv[2], TP_CLIENT_FLOAT32, true);
    check_bytes(argv[1], argv[2], TP_CLIENT_FLOAT16, true);
    check_bytes(argv[1], argv[3], TP_CLIENT_UINT8, false);
    setenv("TURBOPUMP_GPU_TIMING", "1", 1);
    check_bandwidth_overlap(argv[1], argv[3]);
    printf("%s\n", failures ? "GPU CHECKS FAILED" : "GPU CHECKS PASSED");
    return failures ? 1 : 0;
}
