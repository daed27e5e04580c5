/* The client's device path: see gpu.h. */
#include "gpu.h"

#include "dlpack_abi.h"
#include "normalize.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define PLUGIN_FILE "libturbopump_cuda.so"
#define FIELD_ALIGN 256u
#define MAX_WAITS 8u              /* consumer streams one slot's refill can wait for */
#define ALIGN_UP(x, a) (((x) + (a) - 1) / (a) * (a))

/* ---- the plugin, loaded once per process and never unloaded (a CUDA runtime does not
 * survive being unloaded while its context lives) */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static const tp_gpu_ops *g_ops;
static char g_plugin[PATH_MAX], g_load_error[1024];

static void *try_open(const char *path, size_t *used)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        size_t room = sizeof(g_load_error) - *used;
        int n = snprintf(g_load_error + *used, room, "%s%.400s", *used ? "; " : "",
                         e ? e : path);
        *used += n < 0 ? 0 : (size_t)n < room ? (size_t)n : room - 1;
    }
    return h;
}

static void load_plugin(void)
{
    size_t used = 0;
    void *h = NULL;
    const char *env = getenv("TURBOPUMP_GPU_PLUGIN");
    if (env && *env) {
        snprintf(g_plugin, sizeof(g_plugin), "%s", env);
        h = try_open(g_plugin, &used);
    } else {
        Dl_info info; /* beside the library (or program) that holds this code */
        if (dladdr((void *)load_plugin, &info) && info.dli_fname) {
            const char *slash = strrchr(info.dli_fname, '/');
            if (slash) {
                snprintf(g_plugin, sizeof(g_plugin), "%.*s/%s",
                         (int)(slash - info.dli_fname), info.dli_fname, PLUGIN_FILE);
                h = try_open(g_plugin, &used);
            }
        }
        if (!h) {
            snprintf(g_plugin, sizeof(g_plugin), "%s", PLUGIN_FILE);
            h = try_open(g_plugin, &used);
        }
    }
    if (!h)
        return;
    tp_gpu_ops_fn fn;
    *(void **)&fn = dlsym(h, TP_GPU_PLUGIN_SYMBOL);
    const tp_gpu_ops *ops = fn ? fn() : NULL;
    if (!ops || ops->version != TP_GPU_PLUGIN_VERSION) {
        snprintf(g_load_error, sizeof(g_load_error), "%.900s is not a turbopump GPU plugin "
                 "of version %d", g_plugin, TP_GPU_PLUGIN_VERSION);
        return;
    }
    g_ops = ops;
}

/* ---- state */

typedef struct gpu_slot {
    unsigned refs;              /* the batch itself until released, plus DLPack tensors */
    bool pending;               /* its copy is not reaped yet */
    uint32_t host_seq;
    uint64_t order;             /* issue order, for reaping oldest first */
    uint64_t bytes;             /* copied for this batch */
    void *raw, *out, *stage;    /* device bytes as sent, converted output, staging (host) */
    size_t raw_cap, out_cap, stage_cap;
    void *start, *copied, *ready; /* events */
    /* Work the refill must wait for: one event per consumer stream that used the batch,
     * recorded when it let go; the copy stream waits for them just before the next copy
     * into this slot, so a refill waits for this slot's consumers only. */
    struct {
        void *stream, *event;
    } waits[MAX_WAITS];
    uint32_t nwaits;
    void *wait_events[MAX_WAITS]; /* created as needed, kept for reuse */
    tp_device_batch batch;
    int64_t shapes[TP_CLIENT_MAX_FIELDS][TP_RING_MAX_DIMS];
    char names[TP_CLIENT_MAX_FIELDS][TP_MAX_FIELD_NAME + 1];
    uint64_t *ids;
    size_t ids_cap;
} gpu_slot;

struct tp_gpu {
    const tp_gpu_ops *ops;
    pthread_mutex_t lock;       /* slots' refs, events and the copy stream's waits */
    atomic_uint refs;
    tp_gpu_config cfg;
    bool pinned, closed;
    void *stream;
    void *lut;                  /* device: 3 x 256 floats or halves */
    uint64_t issued;
    uint32_t depth;
    gpu_slot slots[TP_GPU_MAX_DEPTH];
    tp_gpu_stats stats;
};

typedef struct gpu_export {
    struct DLManagedTensor m;
    int64_t shape[TP_RING_MAX_DIMS];
    tp_gpu *g;
    uint32_t slot;
    void *stream;
} gpu_export;

static int cuda_fail(const tp_gpu_ops *ops, int code, const char *what, tp_error *err)
{
    return tp__error_set(err, TP_ENODEVICE, "%s failed: %s (CUDA error %d)", what,
                         ops->error(code), code);
}

#define CU(g, call, what)                                                                  \
    do {                                                                                   \
        int cu_rc_ = (call);                                                               \
        if (cu_rc_)                                                                        \
            return cuda_fail((g)->ops, cu_rc_, what, err);                                 \
    } while (0)

static void free_state(tp_gpu *g)
{
    const tp_gpu_ops *o = g->ops;
    if (g->stream)
        o->stream_sync(g->stream);
    for (uint32_t i = 0; i < g->depth; i++) {
        gpu_slot *s = &g->slots[i];
        void *ev[] = {s->start, s->copied, s->ready};
        for (size_t k = 0; k < 3; k++)
            if (ev[k])
                o->event_destroy(ev[k]);
        for (size_t k = 0; k < MAX_WAITS; k++)
            if (s->wait_events[k])
                o->event_destroy(s->wait_events[k]);
        if (s->raw)
            o->dev_free(s->raw);
        if (s->out)
            o->dev_free(s->out);
        if (s->stage)
            o->host_free(s->stage);
        free(s->ids);
    }
    if (g->lut)
        o->dev_free(g->lut);
    if (g->stream)
        o->stream_destroy(g->stream);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

static void unref(tp_gpu *g)
{
    if (atomic_fetch_sub(&g->refs, 1) == 1)
        free_state(g);
}

static int upload_lut(tp_gpu *g, tp_error *err)
{
    float table[3][256];
    uint16_t half[3][256];
    tp_normalize_table(g->cfg.mean, g->cfg.std, table);
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++)
            half[c][v] = tp_float_to_half(table[c][v]);
    bool is_half = g->cfg.convert == TP_DTYPE_FLOAT16;
    size_t bytes = is_half ? sizeof(half) : sizeof(table);
    CU(g, g->ops->dev_alloc(&g->lut, bytes), "cudaMalloc");
    CU(g, g->ops->copy_h2d(g->lut, is_half ? (void *)half : (void *)table, bytes, g->stream),
       "cudaMemcpyAsync");
    CU(g, g->ops->stream_sync(g->stream), "cudaStreamSynchronize");
    return 0;
}

static int setup(tp_gpu *g, tp_error *err)
{
    const tp_gpu_ops *o = g->ops;
    int rc = o->init(g->cfg.device);
    if (rc)
        return tp__error_set(err, TP_ENODEVICE, "no usable CUDA device %d: %s (CUDA error %d, "
                             "plugin %s)", g->cfg.device, o->error(rc), rc, g_plugin);
    CU(g, o->stream_create(&g->stream), "cudaStreamCreate");
    for (uint32_t i = 0; i < g->depth; i++) {
        gpu_slot *s = &g->slots[i];
        CU(g, o->event_create(&s->copied, g->cfg.timing), "cudaEventCreate");
        CU(g, o->event_create(&s->ready, 0), "cudaEventCreate");
        if (g->cfg.timing)
            CU(g, o->event_create(&s->start, 1), "cudaEventCreate");
        CU(g, o->dev_alloc(&s->raw, g->cfg.slot_bytes), "cudaMalloc of a batch buffer");
        s->raw_cap = g->cfg.slot_bytes;
    }
    if (g->cfg.convert != TP_DTYPE_NONE)
        TP_TRY(upload_lut(g, err));
    /* Page-lock the ring so copies run straight from it; some systems refuse (locked-memory
     * limits, unusual mappings): then each batch goes through a page-locked staging copy. */
    g->pinned = o->host_register(g->cfg.pin_base, g->cfg.pin_bytes) == 0;
    if (!g->pinned) {
        for (uint32_t i = 0; i < g->depth; i++) {
            CU(g, o->host_alloc(&g->slots[i].stage, g->cfg.slot_bytes), "cudaHostAlloc");
            g->slots[i].stage_cap = g->cfg.slot_bytes;
        }
    }
    return 0;
}

int tp_gpu_open(tp_gpu **out, const tp_gpu_config *cfg, tp_error *err)
{
    if (cfg->depth < 2 || cfg->depth > TP_GPU_MAX_DEPTH)
        return tp__error_set(err, TP_EUSAGE, "device depth %u is not in 2..%u", cfg->depth,
                             TP_GPU_MAX_DEPTH);
    if (cfg->convert != TP_DTYPE_NONE && cfg->convert != TP_DTYPE_FLOAT32 &&
        cfg->convert != TP_DTYPE_FLOAT16)
        return tp__error_set(err, TP_EUSAGE, "device output must be uint8, float32 or float16");
    for (int c = 0; c < 3; c++)
        if (cfg->convert != TP_DTYPE_NONE && !(cfg->std[c] > 0))
            return tp__error_set(err, TP_EUSAGE, "std[%d] must be positive", c);
    pthread_once(&g_once, load_plugin);
    if (!g_ops)
        return tp__error_set(err, TP_ENODEVICE, "cannot load the GPU plugin (%s): %s; set "
                             "TURBOPUMP_GPU_PLUGIN to its path, or build with CUDA",
                             PLUGIN_FILE, g_load_error);
    tp_gpu *g = calloc(1, sizeof(*g));
    if (!g)
        return tp__error_set(err, -ENOMEM, "out of memory");
    g->ops = g_ops;
    g->cfg = *cfg;
    g->depth = cfg->depth;
    atomic_init(&g->refs, 1);
    pthread_mutex_init(&g->lock, NULL);
    int rc = setup(g, err);
    if (rc < 0) {
        free_state(g);
        return rc;
    }
    g->stats.plugin = g_plugin;
    g->stats.runtime = g_ops->name;
    g->stats.pinned = g->pinned;
    g->stats.dlpack_device = g_ops->dlpack_device_type;
    *out = g;
    return 0;
}

int tp_gpu_acquire(tp_gpu *g)
{
    pthread_mutex_lock(&g->lock);
    int found = -1;
    for (uint32_t i = 0; i < g->depth && found < 0; i++)
        if (g->slots[i].refs == 0 && !g->slots[i].pending)
            found = (int)i;
    if (found >= 0)
        g->slots[found].refs = 1; /* the batch's own reference, dropped on release */
    pthread_mutex_unlock(&g->lock);
    return found;
}

void tp_gpu_counts(tp_gpu *g, uint32_t *free_slots, uint32_t *pending)
{
    pthread_mutex_lock(&g->lock);
    *free_slots = *pending = 0;
    for (uint32_t i = 0; i < g->depth; i++) {
        *free_slots += g->slots[i].refs == 0 && !g->slots[i].pending;
        *pending += g->slots[i].pending;
    }
    pthread_mutex_unlock(&g->lock);
}

bool tp_gpu_holds(tp_gpu *g, uint32_t slot, uint64_t seq)
{
    if (slot >= g->depth)
        return false;
    pthread_mutex_lock(&g->lock);
    bool same = g->slots[slot].refs > 0 && g->slots[slot].batch.seq == seq;
    pthread_mutex_unlock(&g->lock);
    return same;
}

static bool convertible(const tp_gpu *g, const tp_batch_field *f)
{
    return g->cfg.convert != TP_DTYPE_NONE && f->image && f->dtype == TP_DTYPE_UINT8 &&
           f->ndim == 4 && f->shape[3] == 3;
}

/* Grows a device buffer of a free slot; the copy stream is drained first so no queued
 * work still uses the old one. */
static int grow(tp_gpu *g, void **p, size_t *cap, size_t need, tp_error *err)
{
    if (need <= *cap)
        return 0;
    CU(g, g->ops->stream_sync(g->stream), "cudaStreamSynchronize");
    if (*p)
        g->ops->dev_free(*p);
    *p = NULL;
    *cap = 0;
    CU(g, g->ops->dev_alloc(p, need), "cudaMalloc of a batch buffer");
    *cap = need;
    return 0;
}

static int issue_locked(tp_gpu *g, gpu_slot *s, const tp_batch *host, bool *staged,
                        tp_error *err)
{
    const tp_gpu_ops *o = g->ops;
    size_t raw = 0, out = 0, esize = g->cfg.convert == TP_DTYPE_FLOAT16 ? 2 : 4;
    for (uint32_t i = 0; i < host->nfields; i++) {
        raw += ALIGN_UP(host->fields[i].bytes, FIELD_ALIGN);
        if (convertible(g, &host->fields[i]))
            out += ALIGN_UP(host->fields[i].bytes * esize, FIELD_ALIGN);
    }
    /* everything that can fail without a CUDA error comes before anything is queued */
    TP_TRY(grow(g, &s->raw, &s->raw_cap, raw, err));
    TP_TRY(grow(g, &s->out, &s->out_cap, out, err));
    if (!g->pinned && raw > s->stage_cap)
        return tp__error_set(err, TP_EPROTOCOL, "a batch of %zu bytes exceeds its slot", raw);
    if (host->samples > s->ids_cap) {
        uint64_t *ids = realloc(s->ids, host->samples * sizeof(*ids));
        if (!ids)
            return tp__error_set(err, -ENOMEM, "out of memory");
        s->ids = ids;
        s->ids_cap = host->samples;
    }
    if (s->stage) /* the staging buffer's last copy must be done before it is refilled */
        CU(g, o->event_sync(s->copied), "cudaEventSynchronize");
    for (uint32_t i = 0; i < s->nwaits; i++) /* the previous batch's consumers first */
        CU(g, o->stream_wait(g->stream, s->waits[i].event), "cudaStreamWaitEvent");
    s->nwaits = 0;
    if (g->cfg.timing)
        CU(g, o->event_record(s->start, g->stream), "cudaEventRecord");
    tp_device_batch *b = &s->batch;
    memset(b, 0, sizeof(*b));
    s->bytes = 0;
    size_t roff = 0, ooff = 0;
    for (uint32_t i = 0; i < host->nfields; i++) {
        const tp_batch_field *f = &host->fields[i];
        unsigned char *dst = (unsigned char *)s->raw + roff;
        const void *src = f->data;
        if (!g->pinned) {
            memcpy((unsigned char *)s->stage + roff, f->data, f->bytes);
            src = (unsigned char *)s->stage + roff;
        }
        CU(g, o->copy_h2d(dst, src, f->bytes, g->stream), "cudaMemcpyAsync");
        s->bytes += f->bytes;
        memcpy(s->shapes[i], f->shape, f->ndim * sizeof(int64_t));
        snprintf(s->names[i], sizeof(s->names[i]), "%s", f->name);
        b->fields[i] = (tp_batch_field){.name = s->names[i], .dtype = f->dtype,
                                        .ndim = f->ndim, .shape = s->shapes[i],
                                        .data = dst, .bytes = f->bytes, .image = f->image};
        roff += ALIGN_UP(f->bytes, FIELD_ALIGN);
    }
    CU(g, o->event_record(s->copied, g->stream), "cudaEventRecord");
    for (uint32_t i = 0; i < host->nfields; i++) {
        tp_batch_field *f = &b->fields[i];
        if (!convertible(g, &host->fields[i]))
            continue;
        int64_t n = s->shapes[i][0], h = s->shapes[i][1], w = s->shapes[i][2];
        void *dst = (unsigned char *)s->out + ooff;
        CU(g, o->normalize(dst, f->data, (uint64_t)n, (uint32_t)h, (uint32_t)w, g->lut,
                           esize == 2, g->stream), "the normalize kernel");
        int64_t *shape = s->shapes[i];
        shape[1] = 3;
        shape[2] = h;
        shape[3] = w;
        f->dtype = g->cfg.convert;
        f->bytes = f->bytes * esize;
        f->data = dst;
        ooff += ALIGN_UP(f->bytes, FIELD_ALIGN);
    }
    CU(g, o->event_record(s->ready, g->stream), "cudaEventRecord");
    memcpy(s->ids, host->ids, host->samples * sizeof(*s->ids));
    b->epoch = host->epoch;
    b->resume_epoch = host->resume_epoch;
    b->resume_consumed = host->resume_consumed;
    b->index = host->index;
    b->samples = host->samples;
    b->ids = s->ids;
    b->skipped = host->skipped;
    b->nfields = host->nfields;
    b->stream = g->stream;
    b->ready = s->ready;
    b->slot = (uint32_t)(s - g->slots);
    b->seq = g->issued;
    s->order = g->issued++;
    s->host_seq = host->seq;
    s->pending = true;
    *staged = !g->pinned;
    return 0;
}

int tp_gpu_issue(tp_gpu *g, int slot, const tp_batch *host, bool *staged, tp_error *err)
{
    pthread_mutex_lock(&g->lock);
    int rc = issue_locked(g, &g->slots[slot], host, staged, err);
    if (rc < 0)
        g->slots[slot].refs = 0;
    pthread_mutex_unlock(&g->lock);
    return rc;
}

int tp_gpu_reap(tp_gpu *g, bool wait, uint32_t *seq, tp_error *err)
{
    pthread_mutex_lock(&g->lock);
    gpu_slot *oldest = NULL;
    for (uint32_t i = 0; i < g->depth; i++)
        if (g->slots[i].pending && (!oldest || g->slots[i].order < oldest->order))
            oldest = &g->slots[i];
    int rc = 0;
    if (oldest && wait) { /* not under the lock: a DLPack deleter may need it meanwhile */
        pthread_mutex_unlock(&g->lock);
        rc = g->ops->event_sync(oldest->copied);
        pthread_mutex_lock(&g->lock);
    }
    if (oldest) { /* only this client's thread issues and reaps, so oldest is still oldest */
        rc = rc ? rc : g->ops->event_query(oldest->copied);
        if (rc == 0) {
            float ms = 0;
            if (g->cfg.timing && g->ops->event_elapsed(&ms, oldest->start, oldest->copied) == 0)
                g->stats.copy_ms += ms;
            oldest->pending = false;
            g->stats.copies++;
            g->stats.copy_bytes += oldest->bytes;
            *seq = oldest->host_seq;
            rc = 1;
        } else if (rc == TP_GPU_NOT_READY) {
            rc = 0;
        } else {
            rc = cuda_fail(g->ops, rc, "a batch copy", err);
        }
    }
    pthread_mutex_unlock(&g->lock);
    return rc;
}

void tp_gpu_batch(tp_gpu *g, int slot, tp_device_batch *out)
{
    pthread_mutex_lock(&g->lock);
    *out = g->slots[slot].batch;
    pthread_mutex_unlock(&g->lock);
}

int tp_gpu_wait(tp_gpu *g, uint32_t slot, void *stream)
{
    if (slot >= g->depth || stream == TP_STREAM_NONE)
        return slot >= g->depth ? TP_EUSAGE : 0;
    pthread_mutex_lock(&g->lock);
    int rc = g->ops->stream_wait(stream, g->slots[slot].ready);
    pthread_mutex_unlock(&g->lock);
    return rc ? TP_ENODEVICE : 0;
}

int tp_gpu_sync(tp_gpu *g, uint32_t slot)
{
    if (slot >= g->depth)
        return TP_EUSAGE;
    return g->ops->event_sync(g->slots[slot].ready) ? TP_ENODEVICE : 0;
}

/* Remembers that the slot's refill must wait for the work queued on `stream` so far: an
 * event per stream, re-recorded when the same stream lets go again. @return : 0, or -1
 * when that cannot be ordered on the GPU. */
static int order_refill(tp_gpu *g, gpu_slot *s, void *stream)
{
    const tp_gpu_ops *o = g->ops;
    uint32_t i = 0;
    while (i < s->nwaits && s->waits[i].stream != stream)
        i++;
    if (i == MAX_WAITS)
        return -1;
    if (!s->wait_events[i] && o->event_create(&s->wait_events[i], 0))
        return -1;
    if (o->event_record(s->wait_events[i], stream))
        return -1;
    s->waits[i].stream = stream;
    s->waits[i].event = s->wait_events[i];
    if (i == s->nwaits)
        s->nwaits++;
    return 0;
}

/* Drops one reference to a slot; work queued on `stream` so far must finish before the
 * slot is refilled. Called with the lock held. */
static void drop_locked(tp_gpu *g, gpu_slot *s, void *stream)
{
    /* after close nothing refills the slot, so there is nothing to order */
    if (stream != TP_STREAM_NONE && !g->closed && order_refill(g, s, stream) < 0)
        g->ops->stream_sync(stream); /* cannot order it: wait for that work here */
    s->refs--;
}

int tp_gpu_release(tp_gpu *g, uint32_t slot, void *stream)
{
    if (slot >= g->depth)
        return TP_EUSAGE;
    pthread_mutex_lock(&g->lock);
    int rc = g->slots[slot].refs ? 0 : TP_EUSAGE;
    if (rc == 0)
        drop_locked(g, &g->slots[slot], stream);
    pthread_mutex_unlock(&g->lock);
    return rc;
}

static void export_deleter(struct DLManagedTensor *m)
{
    gpu_export *x = m->manager_ctx;
    tp_gpu *g = x->g;
    pthread_mutex_lock(&g->lock);
    drop_locked(g, &g->slots[x->slot], x->stream);
    pthread_mutex_unlock(&g->lock);
    free(x);
    unref(g);
}

static tp_dl_dtype dl_dtype(tp_dtype t)
{
    switch (t) {
    case TP_DTYPE_UINT8: return (tp_dl_dtype){TP_DL_UINT, 8, 1};
    case TP_DTYPE_INT8: return (tp_dl_dtype){TP_DL_INT, 8, 1};
    case TP_DTYPE_UINT16: return (tp_dl_dtype){TP_DL_UINT, 16, 1};
    case TP_DTYPE_INT16: return (tp_dl_dtype){TP_DL_INT, 16, 1};
    case TP_DTYPE_INT32: return (tp_dl_dtype){TP_DL_INT, 32, 1};
    case TP_DTYPE_UINT32: return (tp_dl_dtype){TP_DL_UINT, 32, 1};
    case TP_DTYPE_INT64: return (tp_dl_dtype){TP_DL_INT, 64, 1};
    case TP_DTYPE_FLOAT16: return (tp_dl_dtype){TP_DL_FLOAT, 16, 1};
    case TP_DTYPE_BFLOAT16: return (tp_dl_dtype){TP_DL_BFLOAT, 16, 1};
    case TP_DTYPE_FLOAT32: return (tp_dl_dtype){TP_DL_FLOAT, 32, 1};
    case TP_DTYPE_FLOAT64: return (tp_dl_dtype){TP_DL_FLOAT, 64, 1};
    default: return (tp_dl_dtype){0, 0, 0};
    }
}

struct DLManagedTensor *tp_gpu_dlpack(tp_gpu *g, uint32_t slot, uint32_t field, void *stream,
                                      tp_error *err)
{
    if (slot >= g->depth) {
        tp__error_set(err, TP_EUSAGE, "no device buffer %u", slot);
        return NULL;
    }
    gpu_export *x = calloc(1, sizeof(*x));
    if (!x) {
        tp__error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_lock(&g->lock);
    gpu_slot *s = &g->slots[slot];
    const tp_device_batch *b = &s->batch;
    const char *why = s->refs == 0 ? "is not held" : field >= b->nfields ? "has no such field"
                      : NULL;
    if (!why && stream != TP_STREAM_NONE && g->ops->stream_wait(stream, s->ready))
        why = "cannot be ordered on that stream (CUDA error)";
    if (why) {
        pthread_mutex_unlock(&g->lock);
        free(x);
        tp__error_set(err, why[0] == 'c' ? TP_ENODEVICE : TP_EUSAGE, "device batch %u %s",
                      slot, why);
        return NULL;
    }
    const tp_batch_field *f = &b->fields[field];
    memcpy(x->shape, f->shape, f->ndim * sizeof(int64_t));
    x->m.dl_tensor = (tp_dl_tensor){
        .data = (void *)f->data, .device = {g->ops->dlpack_device_type, g->cfg.device},
        .ndim = (int32_t)f->ndim, .dtype = dl_dtype(f->dtype), .shape = x->shape};
    x->m.manager_ctx = x;
    x->m.deleter = export_deleter;
    x->g = g;
    x->slot = slot;
    x->stream = stream;
    s->refs++;
    atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&g->lock);
    return &x->m;
}

void tp_gpu_stats_get(const tp_gpu *g, tp_gpu_stats *out)
{
    pthread_mutex_lock((pthread_mutex_t *)&g->lock);
    *out = g->stats;
    pthread_mutex_unlock((pthread_mutex_t *)&g->lock);
}

void tp_gpu_close(tp_gpu *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->lock);
    g->ops->stream_sync(g->stream); /* no copy may read the ring once it is unmapped */
    if (g->pinned)
        g->ops->host_unregister(g->cfg.pin_base);
    g->closed = true;
    pthread_mutex_unlock(&g->lock);
    unref(g);
}
