/* A host-memory stand-in for the GPU plugin (shm/gpu_plugin.h), so the device path's
 * ordering runs in CI without a GPU. "Device" memory is malloc'd; every stream is a thread
 * that runs its queue in order, so copies really are asynchronous, events really complete
 * later, and a wait really holds a stream back. $TP_FAKE_GPU_COPY_US slows each copy down
 * (to make early releases visible); $TP_FAKE_GPU_REFUSE_REGISTER refuses page-locking, as
 * a locked-memory limit would; $TP_FAKE_GPU_FAIL_COPY=N fails the Nth copy. Tests reach the extra functions at the bottom with dlsym. */
#include "gpu_plugin.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
EXPORT long tp_fake_gpu_live(void);
EXPORT long tp_fake_gpu_registered(void);
EXPORT int tp_fake_gpu_check(void *stream, const void *dev, const void *expect, size_t n,
                             int *bad);

enum { OP_COPY, OP_RECORD, OP_WAIT, OP_SLEEP, OP_NORMALIZE, OP_CHECK };
enum { E_INVALID = 1, E_DEVICE = 2, E_REFUSED = 3, E_NOMEM = 4 };

/* Like CUDA's, an event may be destroyed while a record or wait of it is still queued:
 * each queued op holds a reference, and the last one frees it. */
typedef struct fevent {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t recorded, done;
    double t_done;
    unsigned refs;
} fevent;

typedef struct op {
    int kind;
    struct op *next;
    void *dst;
    const void *src;
    size_t n;
    fevent *ev;
    uint64_t ticket;
    uint32_t us, h, w;
    uint64_t images;
    int half;
    int *bad;
} op;

typedef struct fstream {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    op *head, *tail;
    bool stop;
} fstream;

static atomic_long g_live;      /* device buffers, streams and events not yet freed */
static atomic_long g_registered;
static fstream *g_default;
static pthread_once_t g_default_once = PTHREAD_ONCE_INIT;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void event_put(fevent *e)
{
    pthread_mutex_lock(&e->mu);
    bool last = --e->refs == 0;
    pthread_mutex_unlock(&e->mu);
    if (last) {
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
        free(e);
        atomic_fetch_sub(&g_live, 1);
    }
}

static void run_op(op *o)
{
    switch (o->kind) {
    case OP_COPY: {
        const char *us = getenv("TP_FAKE_GPU_COPY_US");
        if (us && *us)
            usleep((useconds_t)atoi(us));
        memcpy(o->dst, o->src, o->n);
        break;
    }
    case OP_RECORD:
        pthread_mutex_lock(&o->ev->mu);
        if (o->ticket > o->ev->done)
            o->ev->done = o->ticket;
        o->ev->t_done = now_s();
        pthread_cond_broadcast(&o->ev->cv);
        pthread_mutex_unlock(&o->ev->mu);
        event_put(o->ev);
        break;
    case OP_WAIT:
        pthread_mutex_lock(&o->ev->mu);
        while (o->ev->done < o->ticket)
            pthread_cond_wait(&o->ev->cv, &o->ev->mu);
        pthread_mutex_unlock(&o->ev->mu);
        event_put(o->ev);
        break;
    case OP_SLEEP:
        usleep(o->us);
        break;
    case OP_NORMALIZE: {
        size_t plane = (size_t)o->h * o->w;
        const unsigned char *px = o->src;
        for (uint64_t p = 0; p < o->images * plane; p++) {
            uint64_t img = p / plane, at = p % plane;
            for (int c = 0; c < 3; c++) {
                size_t to = (size_t)(img * plane * 3 + c * plane + at);
                if (o->half)
                    ((uint16_t *)o->dst)[to] = ((const uint16_t *)o->ev)[c * 256 + px[p * 3 + c]];
                else
                    ((float *)o->dst)[to] = ((const float *)o->ev)[c * 256 + px[p * 3 + c]];
            }
        }
        break;
    }
    case OP_CHECK:
        if (memcmp(o->dst, o->src, o->n))
            (*o->bad)++;
        free((void *)o->src);
        break;
    }
}

static void *stream_main(void *arg)
{
    fstream *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->head)
            break;
        op *o = s->head; /* stays queued while it runs: sync waits for an empty queue */
        pthread_mutex_unlock(&s->mu);
        run_op(o);
        pthread_mutex_lock(&s->mu);
        s->head = o->next;
        if (!s->head)
            s->tail = NULL;
        free(o);
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static fstream *new_stream(void)
{
    fstream *s = calloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_create(&s->th, NULL, stream_main, s);
    return s;
}

static void make_default(void) { g_default = new_stream(); }

static fstream *resolve(void *handle)
{
    if ((uintptr_t)handle <= 2) { /* NULL, legacy or per-thread default */
        pthread_once(&g_default_once, make_default);
        return g_default;
    }
    return handle;
}

static int enqueue(void *stream, op o)
{
    fstream *s = resolve(stream);
    op *p = malloc(sizeof(*p));
    if (!p)
        return E_NOMEM;
    *p = o;
    p->next = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->tail)
        s->tail->next = p;
    else
        s->head = p;
    s->tail = p;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int init(int device) { return device == 0 ? 0 : E_DEVICE; }

static const char *error(int code)
{
    switch (code) {
    case E_INVALID: return "invalid argument (fake)";
    case E_DEVICE: return "no such device (fake)";
    case E_REFUSED: return "page-locking refused (fake)";
    case E_NOMEM: return "out of memory (fake)";
    default: return "unknown error (fake)";
    }
}

static int host_register(void *p, size_t n)
{
    (void)p;
    (void)n;
    const char *refuse = getenv("TP_FAKE_GPU_REFUSE_REGISTER");
    if (refuse && *refuse == '1')
        return E_REFUSED;
    atomic_fetch_add(&g_registered, 1);
    return 0;
}
static int host_unregister(void *p)
{
    (void)p;
    atomic_fetch_sub(&g_registered, 1);
    return 0;
}
static int dev_alloc(void **p, size_t n)
{
    *p = malloc(n ? n : 1);
    if (!*p)
        return E_NOMEM;
    atomic_fetch_add(&g_live, 1);
    return 0;
}
static int dev_free(void *p)
{
    free(p);
    atomic_fetch_sub(&g_live, 1);
    return 0;
}

static int stream_sync(void *stream)
{
    fstream *s = resolve(stream);
    pthread_mutex_lock(&s->mu);
    while (s->head)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return 0;
}
static int stream_create(void **out)
{
    *out = new_stream();
    atomic_fetch_add(&g_live, 1);
    return 0;
}
static int stream_destroy(void *stream)
{
    fstream *s = stream;
    stream_sync(s);
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    free(s);
    atomic_fetch_sub(&g_live, 1);
    return 0;
}
static int event_create(void **out, int timing)
{
    (void)timing;
    fevent *e = calloc(1, sizeof(*e));
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->refs = 1;
    *out = e;
    atomic_fetch_add(&g_live, 1);
    return 0;
}
static int event_destroy(void *e)
{
    event_put(e);
    return 0;
}
static int event_record(void *ev, void *stream)
{
    fevent *e = ev;
    pthread_mutex_lock(&e->mu);
    uint64_t ticket = ++e->recorded;
    e->refs++;
    pthread_mutex_unlock(&e->mu);
    int rc = enqueue(stream, (op){.kind = OP_RECORD, .ev = e, .ticket = ticket});
    if (rc)
        event_put(e);
    return rc;
}
static int event_query(void *ev)
{
    fevent *e = ev;
    pthread_mutex_lock(&e->mu);
    int rc = e->done >= e->recorded ? 0 : TP_GPU_NOT_READY;
    pthread_mutex_unlock(&e->mu);
    return rc;
}
static int event_sync(void *ev)
{
    fevent *e = ev;
    pthread_mutex_lock(&e->mu);
    uint64_t ticket = e->recorded;
    while (e->done < ticket)
        pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    return 0;
}
static int event_elapsed(float *ms, void *a, void *b)
{
    fevent *ea = a, *eb = b;
    pthread_mutex_lock(&ea->mu);
    double ta = ea->t_done;
    pthread_mutex_unlock(&ea->mu);
    pthread_mutex_lock(&eb->mu);
    double tb = eb->t_done;
    pthread_mutex_unlock(&eb->mu);
    *ms = (float)((tb - ta) * 1e3);
    return 0;
}
static int stream_wait(void *stream, void *ev)
{
    fevent *e = ev;
    pthread_mutex_lock(&e->mu);
    uint64_t ticket = e->recorded;
    e->refs++;
    pthread_mutex_unlock(&e->mu);
    int rc = enqueue(stream, (op){.kind = OP_WAIT, .ev = e, .ticket = ticket});
    if (rc)
        event_put(e);
    return rc;
}
static atomic_long g_copies;

static int copy(void *dst, const void *src, size_t n, void *stream)
{
    const char *fail = getenv("TP_FAKE_GPU_FAIL_COPY"); /* fail the Nth copy, counting from 1 */
    if (fail && *fail && atomic_fetch_add(&g_copies, 1) + 1 == atol(fail))
        return E_INVALID;
    return enqueue(stream, (op){.kind = OP_COPY, .dst = dst, .src = src, .n = n});
}
static int normalize(void *dst, const void *src, uint64_t n, uint32_t h, uint32_t w,
                     const void *lut, int half, void *stream)
{
    return enqueue(stream, (op){.kind = OP_NORMALIZE, .dst = dst, .src = src, .images = n,
                                .h = h, .w = w, .ev = (fevent *)lut, .half = half});
}
static int spin(void *stream, uint32_t us)
{
    return enqueue(stream, (op){.kind = OP_SLEEP, .us = us});
}

static int host_alloc(void **p, size_t n)
{
    *p = malloc(n ? n : 1);
    return *p ? 0 : E_NOMEM;
}
static int host_free(void *p)
{
    free(p);
    return 0;
}

static const tp_gpu_ops g_ops = {
    .version = TP_GPU_PLUGIN_VERSION, .dlpack_device_type = 1, .name = "fake GPU",
    .init = init, .error = error, .host_register = host_register,
    .host_unregister = host_unregister, .host_alloc = host_alloc, .host_free = host_free,
    .dev_alloc = dev_alloc, .dev_free = dev_free, .stream_create = stream_create,
    .stream_destroy = stream_destroy, .stream_sync = stream_sync, .event_create = event_create,
    .event_destroy = event_destroy, .event_record = event_record, .event_query = event_query,
    .event_sync = event_sync, .event_elapsed = event_elapsed, .stream_wait = stream_wait,
    .copy_h2d = copy, .copy_d2h = copy, .normalize = normalize, .spin = spin,
};

EXPORT const tp_gpu_ops *tp_gpu_plugin_ops(void) { return &g_ops; }

/* ---- for tests */

long tp_fake_gpu_live(void) { return atomic_load(&g_live); }
long tp_fake_gpu_registered(void) { return atomic_load(&g_registered); }

/* Queues a comparison of `n` device bytes with `expect` (copied now) on `stream`;
 * *bad counts mismatches once it has run. */
int tp_fake_gpu_check(void *stream, const void *dev, const void *expect, size_t n, int *bad)
{
    void *copy_of = malloc(n ? n : 1);
    memcpy(copy_of, expect, n);
    return enqueue(stream, (op){.kind = OP_CHECK, .dst = (void *)dev, .src = copy_of, .n = n,
                                .bad = bad});
}
