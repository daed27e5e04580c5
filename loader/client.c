/* libturbopump's client (include/turbopump/client.h): connects to the daemon, or starts a
 * private one, opens a session, maps the ring the daemon sends, and hands out batches as
 * views after checking each descriptor. While it waits for a batch it also watches the
 * socket, so a daemon that ends the session or dies turns into an error within one wait
 * slice (100 ms), never a hang. */
#include <turbopump/client.h>

#include "autostart.h"
#include "gpu.h"
#include "normalize.h"
#include "protocol.h"
#include "ring.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct tp_client {
    int sock;
    pid_t daemon;              /* a private daemon we started, or 0 */
    tp_ring_view *ring;
    uint32_t nslots, hold;
    uint64_t slot_bytes;
    int timeout_ms;
    uint64_t samples, batches, per_rank;
    uint32_t next;             /* sequence number tp_client_next delivers next */
    uint64_t delivered, limit; /* batches handed out; max_batches (0: none) */
    uint32_t tail;             /* slots before this are released */
    uint64_t released_mask;    /* bit i: sequence tail + i released (out of order) */
    uint64_t epoch, batch;     /* of the next batch delivered */
    uint64_t consumed;         /* positions of `epoch` the job has read before it */
    uint64_t per_batch;        /* batch size x world size */
    bool gone;                 /* the daemon closed the session */
    char gone_msg[512];
    int gone_code;
    char private_socket[PATH_MAX];
    /* the device path (tp_client_device) */
    tp_gpu *gpu;
    uint32_t depth;
    uint32_t queue[TP_GPU_MAX_DEPTH]; /* issued slots not yet handed out, oldest first */
    uint32_t queue_head, queued;
    bool handed[TP_GPU_MAX_DEPTH];   /* handed out and not released */
    uint32_t nhanded;
    int dev_failed;                  /* a CUDA error ended the device path: its code */
    char dev_msg[512];
    uint64_t dev_epoch, dev_batch;   /* of the next device batch handed out */
    uint64_t dev_consumed;
};

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

/* ---- the session */

static int fail_reply(int type, const void *buf, const char *what, tp_error *err)
{
    if (type == TP_MSG_ERROR) {
        const tp_msg_error *e = buf;
        int code = e->code < 0 && e->code > -100000 ? e->code : TP_EPROTOCOL;
        char msg[sizeof(e->message)];
        memcpy(msg, e->message, sizeof(msg));
        msg[sizeof(msg) - 1] = '\0';
        return tp__error_set(err, code, "%s", msg);
    }
    if (type == 0)
        return tp__error_set(err, TP_ESESSION, "the daemon closed the connection during %s",
                             what);
    if (type < 0)
        return type;
    return tp__error_set(err, TP_EPROTOCOL, "unexpected reply type %d to %s", type, what);
}

static int fill_open(tp_msg_open *m, const tp_client_options *o, const char *dataset,
                     const char (*sources)[TP_NAME_MAX],
                     tp_error *err)
{
    memset(m, 0, sizeof(*m));
    tp__msg_init(&m->h, TP_MSG_OPEN, sizeof(*m));
    const char *tf = o->transform ? o->transform : "rrc224";
    if (strlen(dataset) >= sizeof(m->dataset) || strlen(tf) >= sizeof(m->transform) ||
        o->nfields > TP_OPEN_MAX_FIELDS)
        return tp__error_set(err, TP_EUSAGE, "dataset name, transform or field list too long");
    strcpy(m->dataset, dataset);
    strcpy(m->transform, tf);
    for (size_t i = 0; i < o->nfields; i++) {
        if (!o->fields[i] || strlen(o->fields[i]) >= sizeof(m->fields[i]))
            return tp__error_set(err, TP_EUSAGE, "field name %zu is missing or too long", i);
        strcpy(m->fields[i], o->fields[i]);
    }
    m->nfields = (uint32_t)o->nfields;
    if (o->nviews > TP_OPEN_MAX_VIEWS || (o->nviews && !o->views))
        return tp__error_set(err, TP_EUSAGE, "%zu views (at most %u)", o->nviews,
                             TP_OPEN_MAX_VIEWS);
    for (size_t i = 0; i < o->nviews; i++) {
        const tp_client_view *v = &o->views[i];
        tp_msg_view *d = &m->views[i];
        const char *vt = v->transform ? v->transform : tf;
        if (!v->name || !*v->name || strlen(v->name) >= sizeof(d->name) ||
            (v->field && strlen(v->field) >= sizeof(d->field)) ||
            strlen(vt) >= sizeof(d->transform))
            return tp__error_set(err, TP_EUSAGE, "view %zu: name missing or too long, or "
                                 "field or pipeline too long", i);
        strcpy(d->name, v->name);
        strcpy(d->field, v->field ? v->field : "");
        strcpy(d->transform, vt);
    }
    m->nviews = (uint32_t)o->nviews;
    m->flags = (o->shuffle ? TP_OPEN_SHUFFLE : 0) | (o->drop_last ? TP_OPEN_DROP_LAST : 0);
    m->batch_size = o->batch_size ? o->batch_size : 256;
    m->seed = o->seed;
    m->rank = o->rank;
    m->world = o->world_size ? o->world_size : 1;
    m->epoch = o->epoch;
    m->consumed = o->consumed ? o->consumed : o->batch * m->batch_size * m->world;
    m->seq_len = o->seq_len;
    m->tokens = ((o->token_outputs & TP_CLIENT_TOKENS_INT32) ? TP_TOKENS_INT32 : 0) |
                ((o->token_outputs & TP_CLIENT_TOKENS_POSITIONS) ? TP_TOKENS_POSITIONS : 0) |
                ((o->token_outputs & TP_CLIENT_TOKENS_CU_SEQLENS) ? TP_TOKENS_CU_SEQLENS : 0);
    if (o->nsources > TP_OPEN_MAX_SOURCES || (o->nsources && !o->sources))
        return tp__error_set(err, TP_EUSAGE, "%zu mixture sources (at most %u)", o->nsources,
                             TP_OPEN_MAX_SOURCES);
    for (size_t i = 0; i < o->nsources; i++) {
        if (!o->sources[i].dataset || strlen(sources[i]) >= TP_NAME_MAX - 1)
            return tp__error_set(err, TP_EUSAGE, "mixture source %zu: no name, or too long", i);
        strcpy(m->sources[i].dataset, sources[i]);
        m->sources[i].weight = o->sources[i].weight;
    }
    m->nsources = (uint32_t)o->nsources;
    m->mixture_epoch = o->mixture_epoch;
    m->align = o->align_documents;
    m->pad_id = o->pad_id;
    m->prefetch = o->prefetch ? o->prefetch : 4;
    m->output = (uint32_t)o->output;
    m->limit = o->max_batches;
    m->limit_epochs = o->max_epochs;
    return 0;
}

static int handshake(tp_client *c, const tp_msg_open *open, tp_error *err)
{
    static _Thread_local unsigned char buf[TP_MSG_MAX];
    int rc, type = tp__msg_hello(c->sock, buf, sizeof(buf), c->timeout_ms, err);
    if (type != TP_MSG_HELLO_OK)
        return fail_reply(type, buf, "HELLO", err);
    if ((rc = tp__msg_send(c->sock, open, sizeof(*open), -1)) < 0)
        return tp__error_set(err, rc, "cannot talk to the daemon: %s", strerror(-rc));
    int fd = -1;
    type = tp__msg_recv(c->sock, buf, sizeof(buf), &fd, c->timeout_ms, err);
    if (type != TP_MSG_OPEN_OK || fd < 0) {
        if (fd >= 0)
            close(fd);
        return type == TP_MSG_OPEN_OK ? tp__error_set(err, TP_EPROTOCOL, "OPEN_OK without a "
                                                      "ring") : fail_reply(type, buf, "OPEN", err);
    }
    const tp_msg_open_ok *ok = (const tp_msg_open_ok *)buf;
    c->samples = ok->samples;
    c->batches = ok->batches;
    c->limit = tp__msg_open_limit(open, c->batches); /* what the daemon prepares */
    c->per_rank = ok->per_rank;
    TP_TRY(tp_ring_attach(&c->ring, fd, err));
    c->nslots = tp_ring_view_nslots(c->ring);
    c->slot_bytes = tp_ring_view_slot_bytes(c->ring);
    if (c->nslots != ok->nslots || c->slot_bytes != ok->slot_bytes || c->batches == 0)
        return tp__error_set(err, TP_EPROTOCOL, "the ring does not match OPEN_OK");
    return 0;
}

int tp_client_open(tp_client **out, const tp_client_options *o, tp_error *err)
{
    if (!o || (!o->dataset && !o->nsources))
        return tp__error_set(err, TP_EUSAGE, "no dataset given");
    uint32_t prefetch = o->prefetch ? o->prefetch : 4;
    if (o->hold > prefetch || o->hold > 64)
        return tp__error_set(err, TP_EUSAGE, "hold %u exceeds prefetch %u (and 64)", o->hold,
                             prefetch);
    tp_client *c = calloc(1, sizeof(*c));
    if (!c)
        return tp__error_set(err, -ENOMEM, "out of memory");
    c->sock = -1;
    c->hold = o->hold;
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 60000;
    c->epoch = o->epoch;
    char dataset[TP_NAME_MAX], sources[TP_OPEN_MAX_SOURCES][TP_NAME_MAX];
    tp_msg_open *m = calloc(1, sizeof(*m));
    int rc = m ? tp__client_connect(o, dataset, sizeof(dataset), sources, &c->sock, &c->daemon,
                                    c->private_socket, sizeof(c->private_socket), err)
               : tp__error_set(err, -ENOMEM, "out of memory");
    if (rc == 0)
        rc = fill_open(m, o, dataset, (const char (*)[TP_NAME_MAX])sources, err);
    if (rc == 0) {
        c->per_batch = m->batch_size * m->world;
        c->consumed = m->consumed;
        c->batch = m->consumed / c->per_batch;
    }
    if (rc == 0)
        rc = handshake(c, m, err);
    free(m);
    if (rc < 0) {
        tp_client_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* Looks at the socket without blocking: an ERROR or hang-up ends the session. */
static void watch_socket(tp_client *c)
{
    static _Thread_local unsigned char buf[TP_MSG_MAX];
    if (c->gone)
        return;
    tp_error e = {0};
    int type = tp__msg_recv(c->sock, buf, sizeof(buf), NULL, 0, &e);
    if (type == -ETIMEDOUT || type == TP_MSG_STATE_OK)
        return;
    c->gone = true;
    c->gone_code = TP_ESESSION;
    if (type == TP_MSG_ERROR) {
        tp_error fe;
        c->gone_code = fail_reply(type, buf, "", &fe);
        snprintf(c->gone_msg, sizeof(c->gone_msg), "%s", fe.msg);
    } else if (type == 0) {
        snprintf(c->gone_msg, sizeof(c->gone_msg), "the daemon ended the session (it stopped "
                 "or died)");
    } else {
        snprintf(c->gone_msg, sizeof(c->gone_msg), "connection to the daemon failed: %.400s",
                 e.msg);
    }
}

static uint32_t held(const tp_client *c) { return c->next - c->tail; }

static int wait_batch(tp_client *c, int timeout_ms, tp_error *err)
{
    double deadline = now_ms() + timeout_ms;
    for (;;) {
        int rc = tp_ring_wait_ready(c->ring, c->next, TP_MIN(100, TP_MAX(timeout_ms, 0)));
        if (rc == 0)
            return 0;
        if (rc != -ETIMEDOUT)
            return tp__error_set(err, rc, "the daemon wrote an impossible ring counter");
        watch_socket(c);
        if (c->gone) /* one more look: the daemon may have published, then left */
            return tp_ring_wait_ready(c->ring, c->next, 0) == 0
                       ? 0 : tp__error_set(err, c->gone_code, "%s", c->gone_msg);
        if (now_ms() > deadline)
            return tp__error_set(err, -ETIMEDOUT, "no batch within %d ms", timeout_ms);
    }
}

static int view(tp_client *c, const unsigned char *slot, tp_batch *out, tp_error *err)
{
    const tp_batch_desc *d = (const tp_batch_desc *)slot;
    TP_TRY(tp_batch_desc_check(d, c->slot_bytes, err));
    if (d->status < 0) {
        c->gone = true;
        return tp__error_set(err, TP_ESESSION, "%s", d->error);
    }
    memset(out, 0, sizeof(*out));
    out->epoch = d->epoch;
    out->index = d->batch;
    out->samples = d->samples;
    out->ids = (const uint64_t *)(slot + d->ids_offset);
    out->skipped = d->skipped;
    out->resume_epoch = d->resume_epoch;
    out->resume_consumed = d->resume_consumed;
    out->nfields = d->nfields;
    for (uint32_t i = 0; i < d->nfields; i++) {
        const tp_ring_field *f = &d->fields[i];
        out->fields[i] = (tp_batch_field){.name = f->name,
                                          .dtype = (tp_dtype)(f->dtype & TP_RING_DTYPE_MASK),
                                          .image = (f->dtype & TP_RING_FIELD_IMAGE) != 0,
                                          .ndim = f->ndim, .shape = f->shape,
                                          .data = slot + f->offset, .bytes = f->bytes};
    }
    return 0;
}

static int next_host(tp_client *c, tp_batch *out, tp_error *err)
{
    if (c->hold == 0 && held(c) > 0) {
        c->tail = c->next;
        c->released_mask = 0;
        tp_ring_release(c->ring, c->tail);
    }
    if (c->limit && c->delivered == c->limit)
        return tp__error_set(err, TP_EUSAGE, "all %llu batches asked for (max_batches or "
                             "max_epochs) were read", (unsigned long long)c->limit);
    uint32_t limit = c->hold ? c->hold : 1;
    if (held(c) >= limit)
        return tp__error_set(err, TP_EUSAGE, "already holding %u batches; release one first",
                             held(c));
    TP_TRY(wait_batch(c, c->timeout_ms, err));
    TP_TRY(view(c, tp_ring_view_slot(c->ring, c->next), out, err));
    out->seq = c->next++;
    c->delivered++;
    c->epoch = out->resume_epoch;
    c->consumed = out->resume_consumed;
    c->batch = c->consumed / c->per_batch;
    return 0;
}

int tp_client_next(tp_client *c, tp_batch *out, tp_error *err)
{
    if (c->gpu)
        return tp__error_set(err, TP_EUSAGE, "device batches are on: use tp_client_next_device");
    return next_host(c, out, err);
}

/* The device path's wait: until tp_client_next_device would not block, which is when a
 * batch is queued, or a buffer is free and the ring has the next batch, or the call would
 * fail at once. */
static int reap(tp_client *c, bool wait, tp_error *err);

static int wait_device(tp_client *c, int timeout_ms, tp_error *err)
{
    double deadline = now_ms() + timeout_ms;
    for (;;) {
        if (c->queued || c->dev_failed || c->nhanded >= c->depth)
            return 0;
        int rc = reap(c, false, err);
        if (rc < 0)
            return rc;
        uint32_t free_slots, pending;
        tp_gpu_counts(c->gpu, &free_slots, &pending);
        if (free_slots) {
            if (c->limit && c->delivered == c->limit)
                return tp__error_set(err, TP_EUSAGE, "all %llu batches asked for "
                                     "(max_batches or max_epochs) were read",
                                     (unsigned long long)c->limit);
            return wait_batch(c, TP_MAX(0, (int)(deadline - now_ms())), err);
        }
        if (!pending)
            return 0; /* every buffer is held: tp_client_next_device says so at once */
        if (now_ms() >= deadline)
            return tp__error_set(err, -ETIMEDOUT, "no device buffer came free within %d ms",
                                 timeout_ms);
        usleep(200); /* a copy in flight: it completes within its transfer time */
    }
}

int tp_client_wait(tp_client *c, int timeout_ms, tp_error *err)
{
    if (c->gpu)
        return wait_device(c, timeout_ms, err);
    if (c->limit && c->delivered == c->limit)
        return tp__error_set(err, TP_EUSAGE, "all %llu batches asked for (max_batches or "
                             "max_epochs) were read", (unsigned long long)c->limit);
    return wait_batch(c, timeout_ms, err);
}

int tp_client_release(tp_client *c, const tp_batch *b)
{
    uint32_t i = b->seq - c->tail;
    if (i >= held(c) || (c->released_mask >> i & 1))
        return TP_EUSAGE;
    c->released_mask |= UINT64_C(1) << i;
    uint32_t moved = 0;
    while (c->released_mask & 1) {
        c->released_mask >>= 1;
        moved++;
    }
    if (moved) {
        c->tail += moved;
        tp_ring_release(c->ring, c->tail);
    }
    return 0;
}

void tp_client_state(const tp_client *c, uint64_t *epoch, uint64_t *batch)
{
    *epoch = c->gpu ? c->dev_epoch : c->epoch;
    *batch = c->gpu ? c->dev_batch : c->batch;
}

void tp_client_position(const tp_client *c, uint64_t *epoch, uint64_t *consumed)
{
    *epoch = c->gpu ? c->dev_epoch : c->epoch;
    *consumed = c->gpu ? c->dev_consumed : c->consumed;
}

/* ---- the device path */

int tp_client_device(tp_client *c, const tp_device_options *o, tp_error *err)
{
    if (c->gpu)
        return tp__error_set(err, TP_EUSAGE, "device batches are already on");
    if (c->delivered)
        return tp__error_set(err, TP_EUSAGE, "turn device batches on before the first batch");
    uint32_t depth = o->depth ? o->depth : 3;
    if (depth < 2 || depth > TP_GPU_MAX_DEPTH || depth >= c->nslots)
        return tp__error_set(err, TP_EUSAGE, "device depth %u is not in 2..%u, or not below "
                             "the ring's %u slots (raise prefetch)", depth, TP_GPU_MAX_DEPTH,
                             c->nslots);
    tp_gpu_config cfg = {.device = o->device, .depth = depth, .slot_bytes = c->slot_bytes,
                         .timing = getenv("TURBOPUMP_GPU_TIMING") != NULL};
    switch (o->output) {
    case TP_CLIENT_UINT8: cfg.convert = TP_DTYPE_NONE; break;
    case TP_CLIENT_FLOAT32: cfg.convert = TP_DTYPE_FLOAT32; break;
    case TP_CLIENT_FLOAT16: cfg.convert = TP_DTYPE_FLOAT16; break;
    default: return tp__error_set(err, TP_EUSAGE, "unknown device output %d", (int)o->output);
    }
    bool given = false;
    for (int i = 0; i < 3; i++)
        given |= o->mean[i] != 0 || o->std[i] != 0;
    memcpy(cfg.mean, given ? o->mean : tp_imagenet_mean, sizeof(cfg.mean));
    memcpy(cfg.std, given ? o->std : tp_imagenet_std, sizeof(cfg.std));
    cfg.pin_base = tp_ring_view_mapping(c->ring, &cfg.pin_bytes);
    TP_TRY(tp_gpu_open(&c->gpu, &cfg, err));
    c->depth = depth;
    c->hold = depth; /* ring slots stay held until their copies complete */
    c->dev_epoch = c->epoch;
    c->dev_batch = c->batch;
    c->dev_consumed = c->consumed;
    return 0;
}

/* Gives back the ring slots whose copies completed; with wait, when none has, waits for
 * the oldest (only: later copies may wait for steps the caller has not even queued).
 * @return : how many, or TP_ENODEVICE. */
static int reap(tp_client *c, bool wait, tp_error *err)
{
    uint32_t seq;
    int rc, n = 0;
    while ((rc = tp_gpu_reap(c->gpu, wait && n == 0, &seq, err)) == 1) {
        tp_client_release(c, &(tp_batch){.seq = seq});
        n++;
    }
    return rc < 0 ? rc : n;
}

/* Takes the next batch from the ring and starts its copy into a free device buffer.
 * @return : 1 issued, 0 no free buffer, or an error of tp_client_next. */
static int issue_next(tp_client *c, tp_error *err)
{
    int slot = tp_gpu_acquire(c->gpu);
    if (slot < 0)
        return 0;
    tp_batch hb;
    bool staged = false;
    int rc = next_host(c, &hb, err);
    if (rc < 0) {
        tp_gpu_release(c->gpu, (uint32_t)slot, TP_STREAM_NONE);
        return rc;
    }
    if ((rc = tp_gpu_issue(c->gpu, slot, &hb, &staged, err)) < 0) {
        /* The batch is taken from the ring but will never be handed out: the device path
         * ends here, and every later call says why (skipping it would lose a batch). */
        tp_client_release(c, &hb);
        c->dev_failed = rc;
        snprintf(c->dev_msg, sizeof(c->dev_msg), "the device path failed at epoch %llu batch "
                 "%llu: %.400s", (unsigned long long)hb.epoch, (unsigned long long)hb.index,
                 err ? err->msg : "");
        return tp__error_set(err, rc, "%s", c->dev_msg);
    }
    if (staged)
        tp_client_release(c, &hb);
    c->queue[(c->queue_head + c->queued++) % TP_GPU_MAX_DEPTH] = (uint32_t)slot;
    return 1;
}

int tp_client_next_device(tp_client *c, tp_device_batch *out, tp_error *err)
{
    if (!c->gpu)
        return tp__error_set(err, TP_EUSAGE, "device batches are off: call tp_client_device");
    if (c->dev_failed)
        return tp__error_set(err, c->dev_failed, "%s", c->dev_msg);
    if (c->nhanded >= c->depth)
        return tp__error_set(err, TP_EUSAGE, "already holding %u device batches (depth %u); "
                             "release one first", c->nhanded, c->depth);
    int rc = reap(c, false, err);
    if (rc < 0)
        return rc;
    while (c->queued == 0) {
        rc = issue_next(c, err);
        if (rc < 0)
            return rc;
        if (rc == 0) { /* no free buffer: one may only wait for its copy to be reaped */
            if ((rc = reap(c, true, err)) < 0)
                return rc;
            if (rc == 0)
                return tp__error_set(err, TP_EUSAGE, "all %u device buffers are in use "
                                     "(batches or DLPack tensors still alive); release one "
                                     "first", c->depth);
        }
    }
    uint32_t slot = c->queue[c->queue_head];
    c->queue_head = (c->queue_head + 1) % TP_GPU_MAX_DEPTH;
    c->queued--;
    c->handed[slot] = true;
    c->nhanded++;
    tp_gpu_batch(c->gpu, (int)slot, out);
    c->dev_epoch = out->resume_epoch;
    c->dev_consumed = out->resume_consumed;
    c->dev_batch = c->dev_consumed / c->per_batch;
    /* start the next copies now, so they overlap the caller's work on this batch */
    tp_error ignored;
    while (c->queued + c->nhanded < c->depth && !(c->limit && c->delivered == c->limit) &&
           wait_batch(c, 0, &ignored) == 0 && issue_next(c, &ignored) == 1)
        ;
    return 0;
}

/* A batch the caller still holds, not an old copy of one whose buffer was refilled. */
static bool held_batch(tp_client *c, const tp_device_batch *b)
{
    return c->gpu && b->slot < c->depth && tp_gpu_holds(c->gpu, b->slot, b->seq);
}

int tp_device_batch_wait(tp_client *c, const tp_device_batch *b, void *stream)
{
    return held_batch(c, b) ? tp_gpu_wait(c->gpu, b->slot, stream) : TP_EUSAGE;
}

int tp_device_batch_sync(tp_client *c, const tp_device_batch *b)
{
    return held_batch(c, b) ? tp_gpu_sync(c->gpu, b->slot) : TP_EUSAGE;
}

int tp_client_release_device(tp_client *c, const tp_device_batch *b, void *stream)
{
    if (!held_batch(c, b) || !c->handed[b->slot])
        return TP_EUSAGE;
    c->handed[b->slot] = false;
    c->nhanded--;
    tp_gpu_release(c->gpu, b->slot, stream);
    tp_error ignored;
    reap(c, false, &ignored);
    return 0;
}

struct DLManagedTensor *tp_device_batch_dlpack(tp_client *c, const tp_device_batch *b,
                                               uint32_t field, void *stream, tp_error *err)
{
    if (!held_batch(c, b) || !c->handed[b->slot]) {
        tp__error_set(err, TP_EUSAGE, "not a held device batch");
        return NULL;
    }
    return tp_gpu_dlpack(c->gpu, b->slot, field, stream, err);
}

void tp_client_device_info(const tp_client *c, tp_device_info *out)
{
    memset(out, 0, sizeof(*out));
    if (!c->gpu)
        return;
    tp_gpu_stats s;
    tp_gpu_stats_get(c->gpu, &s);
    *out = (tp_device_info){.plugin = s.plugin, .runtime = s.runtime, .pinned_ring = s.pinned,
                            .dlpack_device = s.dlpack_device,
                            .copies = s.copies, .copy_bytes = s.copy_bytes,
                            .copy_ms = s.copy_ms};
}

uint64_t tp_client_batches_per_epoch(const tp_client *c) { return c->batches; }
uint64_t tp_client_samples_per_epoch(const tp_client *c) { return c->per_rank; }
uint64_t tp_client_dataset_samples(const tp_client *c) { return c->samples; }

void tp_client_close(tp_client *c)
{
    if (!c)
        return;
    tp_gpu_close(c->gpu); /* before the ring it copies from is unmapped */
    tp_ring_detach(c->ring);
    if (c->sock >= 0) { /* after the unmapping: the daemon may give the ring to another */
        tp_msg_header h;
        tp__msg_init(&h, TP_MSG_DETACHED, sizeof(h));
        tp__msg_send(c->sock, &h, sizeof(h), -1);
        close(c->sock);
    }
    if (c->daemon > 0) { /* a private daemon exits after its last session */
        double deadline = now_ms() + 2000;
        while (waitpid(c->daemon, NULL, WNOHANG) == 0) {
            if (now_ms() > deadline) {
                kill(c->daemon, SIGTERM);
                waitpid(c->daemon, NULL, 0);
                break;
            }
            usleep(2000);
        }
    }
    free(c);
}
