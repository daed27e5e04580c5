/* One client's session in the daemon: the handshake, then a loop that keeps the client's
 * ring full. For each free slot it writes the batch descriptor and the sample ids, then
 * hands the batch's samples to the shared pipeline, whose decode threads write each
 * sample straight into its place in the slot; batches are published strictly in order.
 * The loop watches three things: completions (an eventfd the decode threads write when a
 * batch is complete), the client's tail (futex), and the socket (STATE, CLOSE, hang-up);
 * it sleeps in poll() on the first and last, and looks at the tail on a short timeout
 * only while the client holds the slots it would fill next. Whatever the client sends or
 * writes is checked; a violation ends this session only. */
#include "fault.h"
#include "outputs.h"
#include "ring.h"
#include "sampler.h"
#include "server_internal.h"
#include "storage.h"
#include "windows.h"

#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct batch_work {
    struct session *s;
    uint32_t seq;
    uint64_t epoch, batch;
    uint32_t n;
    _Atomic uint32_t pending;
    unsigned char *slot;
    tp_task *tasks;
    tp_task **ptrs;
    unsigned char *bad;        /* per sample: failed (skip policy) */
    unsigned char *edges;      /* per sample: 2 x TP_DIRECT_EDGE bytes around a direct payload */
    int err_code;              /* the first failure, under the session lock; the first */
    char err_msg[512];         /* one the daemon caused if any (out of memory) */
} batch_work;

typedef struct session {
    tp_session *pub;
    tp_server *srv;
    tp_served *ds;
    tp_sampler sampler;
    tp_windows *win;           /* a token dataset or mixture: its windows; NULL: samples */
    uint64_t positions;        /* of an epoch: samples, or windows */
    uint64_t raw_offset, raw_bytes; /* windows: where each one's blocks are read to */
    tp_outputs *out;           /* the batch's arrays and their pipelines */
    tp_out_field *f;           /* = out->f */
    uint32_t nf;
    uint64_t ids_offset, slot_bytes;
    uint32_t nslots;
    /* Records of fixed-size fields have a predictable layout; the largest selected
     * tensor of such records is read straight into its place in the slot. */
    int direct;                /* index into f[], or -1 */
    uint64_t direct_at, direct_total; /* its offset in the record; the record's length */
    tp_ring *ring;
    batch_work *work;
    uint64_t epoch, batch;     /* the next batch to start */
    uint64_t started, limit;   /* batches started; the client's limit (0: none) */
    uint64_t published, released;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    int wake_fd;               /* eventfd written when a batch completes */
    bool failed;
    bool detached;             /* the client said it unmapped the ring (TP_MSG_DETACHED) */
} session;

/* ---- filling one sample (decode threads) */

/* The field's raw bytes: as stored, or decompressed into the worker's scratch. */
static int raw_value(const session *s, tp_worker *w, const tp_field_value *v, size_t reserve,
                     const unsigned char **data, uint64_t *len, tp_error *err)
{
    if (v->compression == TP_COMPRESS_NONE) {
        *data = v->data;
        *len = v->size;
        return 0;
    }
    if (v->compression == TP_COMPRESS_ZSTD_DICT && !s->ds->dict)
        return tp__error_set(err, TP_ECORRUPT, "field compressed with a dictionary the "
                             "dataset lacks");
    if (v->raw_size > ((uint64_t)1 << 32) ||
        tp__worker_scratch(w, reserve + (size_t)v->raw_size) < 0)
        return tp__error_set(err, -ENOMEM, "no memory for %llu decompressed bytes",
                             (unsigned long long)v->raw_size);
    const tp_zstd_dict *dict = v->compression == TP_COMPRESS_ZSTD_DICT ? s->ds->dict : NULL;
    TP_TRY(tp_zstd_decompress_with(w->zstd, dict, v->data, v->size, w->scratch + reserve,
                                   v->raw_size, err));
    *data = w->scratch + reserve;
    *len = v->raw_size;
    return 0;
}

/* Writes the record's selected fields into the slot; a field whose bytes are already in
 * place (read there directly) is left alone. */
static int fill_fields(const session *s, tp_worker *w, const batch_work *bw, const tp_task *t,
                       const tp_record *rec, tp_error *err)
{
    TP_TRY(tp_dataset_check_record(s->ds->ds, rec, err));
    for (uint32_t i = 0; i < s->nf; i++) {
        const tp_out_field *f = &s->f[i];
        if (f->kind == TP_FIELD_IMAGE && f->lead != (int)i)
            continue; /* written with its group's first */
        const tp_field_value *v = tp_record_field(rec, f->index);
        if (!v)
            return tp__error_set(err, TP_ECORRUPT, "no '%s' field", f->name);
        unsigned char *dst = bw->slot + f->offset + (uint64_t)t->index * f->sample_bytes;
        if (v->data == dst && v->compression == TP_COMPRESS_NONE && v->size == f->sample_bytes)
            continue;
        const unsigned char *raw = NULL;
        uint64_t n = 0;
        TP_TRY(raw_value(s, w, v, 0, &raw, &n, err));
        if (f->kind == TP_FIELD_IMAGE) {
            int rc = tp__outputs_fill_image(s->out, i, w, bw->slot, t->index, raw, n,
                                            s->sampler.seed, bw->epoch, t->id, err);
            if (rc < 0)
                return tp__error_set(err, rc, "field '%s': %s", tp_dataset_field(s->ds->ds,
                                     f->index)->name, err->msg);
        } else if (n != f->sample_bytes) {
            return tp__error_set(err, TP_ECORRUPT, "field '%s' holds %llu bytes, expected "
                                 "%llu", f->name, (unsigned long long)n,
                                 (unsigned long long)f->sample_bytes);
        } else {
            memcpy(dst, raw, n);
        }
    }
    return 0;
}

static int fill_sample(const session *s, tp_worker *w, const batch_work *bw, const tp_task *t,
                       const unsigned char *data, uint64_t len, tp_error *err)
{
    tp_record rec;
    uint32_t nfields = (uint32_t)tp_dataset_field_count(s->ds->ds);
    if (!t->iovcnt) {
        TP_TRY(tp_record_parse(data, len, t->loc.checksum, nfields, &rec, err));
        return fill_fields(s, w, bw, t, &rec, err);
    }
    /* Read in pieces, the large payload straight into the slot. A record laid out other
     * than predicted (compressed, say) is intact but elsewhere: read it again whole. */
    tp_piece p[TP_IO_MAX_IOV];
    for (unsigned i = 0; i < t->iovcnt; i++)
        p[i] = (tp_piece){.data = t->iov[i].iov_base, .len = t->iov[i].iov_len};
    int rc = tp_record_parse_pieces(p, t->iovcnt, t->loc.checksum, nfields, &rec, err);
    if (rc != TP_EUSAGE)
        return rc < 0 ? rc : fill_fields(s, w, bw, t, &rec, err);
    if (tp__worker_record(w, t->loc.length) < 0)
        return tp__error_set(err, -ENOMEM, "no memory for a record");
    size_t got;
    TP_TRY(tp_dataset_read(s->ds->ds, t->id, w->record, w->record_cap, &got, err));
    TP_TRY(tp_record_parse(w->record, got, t->loc.checksum, nfields, &rec, err));
    return fill_fields(s, w, bw, t, &rec, err);
}

/* A failure of the daemon's, not of the sample's bytes: --on-error skip does not leave
 * a sample out for it, since that would drop good data for a passing condition. */
static bool daemon_fault(int rc)
{
    return rc == -ENOMEM;
}

static void run_sample(tp_task *t, tp_worker *w, const unsigned char *data, uint64_t len,
                       int rc)
{
    batch_work *bw = t->ctx;
    session *s = bw->s;
    tp_error err = {0};
    if (rc < 0)
        tp__error_set(&err, rc, "read failed: %s", tp_strerror(rc));
    else if (s->win)
        rc = tp__windows_fill(s->win, s->out, w, bw->slot, t->index, t->id,
                              t->iovcnt ? t->iov[0].iov_base : data,
                              t->iovcnt ? t->iov[0].iov_len : len, &err);
    else
        rc = fill_sample(s, w, bw, t, data, len, &err);
    atomic_fetch_add(&s->pub->st.bytes_read, rc < 0 ? 0 : len);
    if (rc < 0) {
        tp_shard_info si = {0};
        if (!s->win)
            tp_dataset_shard_info(s->ds->ds, t->loc.shard, &si);
        pthread_mutex_lock(&s->lock);
        bw->bad[t->index] = 1;
        if (!bw->err_code || (daemon_fault(rc) && !daemon_fault(bw->err_code))) {
            bw->err_code = rc;
            if (s->win) /* the message names the shard and block */
                snprintf(bw->err_msg, sizeof(bw->err_msg), "dataset %.100s, window %llu: "
                         "%.360s", tp__windows_source(s->win, t->id), (unsigned long long)t->id,
                         err.msg);
            else
                snprintf(bw->err_msg, sizeof(bw->err_msg), "dataset %.100s, shard %.120s, "
                         "sample %llu: %.240s", s->pub->dataset, si.path ? si.path : "?",
                         (unsigned long long)t->id, err.msg);
        }
        pthread_mutex_unlock(&s->lock);
        atomic_fetch_add(&s->pub->st.errors, 1);
    }
    /* The last touch of the session: under its lock, so once the session sees the batch
     * complete (under the same lock) no decode thread still uses it. */
    pthread_mutex_lock(&s->lock);
    if (atomic_fetch_sub(&bw->pending, 1) == 1) {
        pthread_cond_signal(&s->cv); /* drain() */
        if (write(s->wake_fd, &(uint64_t){1}, 8) < 0) {
            /* the counter cannot overflow: the session reads it on every wake-up */
        }
    }
    pthread_mutex_unlock(&s->lock);
}

/* ---- opening: options, outputs, ring layout */

_Static_assert(TP_MAX_PREFETCH == TP_RING_MAX_SLOTS, "prefetch is bounded by the ring");

static void plan_direct(session *s)
{
    s->direct = s->srv->o.direct /* O_DIRECT reads need the engine's aligned buffers */
                    ? -1 : tp__outputs_plan_direct(s->out, s->ds->ds, &s->direct_at,
                                                   &s->direct_total);
}

static int layout(session *s, tp_error *err)
{
    return tp__outputs_layout(s->out, s->sampler.batch_size, sizeof(tp_batch_desc),
                              &s->ids_offset, &s->slot_bytes, err);
}

static void *session_calloc(size_t n, size_t size)
{
    return tp__fault(TP_FAULT_SESSION_ALLOC) ? NULL : calloc(n, size);
}

static int open_session(session *s, const tp_msg_open *m, tp_error *err)
{
    TP_TRY(tp__msg_check_open(m, err));
    if (!m->nsources)
        TP_TRY(tp__server_dataset(s->srv, m->dataset, &s->ds, err));
    if (!(s->out = calloc(1, sizeof(*s->out))))
        return tp__error_set(err, -ENOMEM, "out of memory for a session");
    bool shuffle = m->flags & TP_OPEN_SHUFFLE;
    const char *what = "samples";
    if (m->nsources || s->ds->tok || m->seq_len) {
        TP_TRY(tp__windows_open(&s->win, s->srv, s->ds, m, s->out, &s->positions, &shuffle,
                                err));
        if (m->nsources) /* messages name the first source's shards */
            TP_TRY(tp__server_dataset(s->srv, m->sources[0].dataset, &s->ds, err));
        what = m->nsources ? "positions" : "windows";
    } else {
        s->positions = tp_dataset_sample_count(s->ds->ds);
    }
    uint64_t n = s->positions;
    if (tp_sampler_init(&s->sampler, n, m->batch_size, m->rank, m->world, shuffle,
                        m->flags & TP_OPEN_DROP_LAST, m->seed) < 0)
        return tp__error_set(err, TP_EUSAGE, "dataset %s has %llu %s: too few for %u "
                             "ranks with drop_last", m->dataset, (unsigned long long)n, what,
                             m->world);
    if (s->sampler.batches == 0)
        return tp__error_set(err, TP_EUSAGE, "with drop_last, a batch of %llu is more than "
                             "this rank's %llu %s", (unsigned long long)m->batch_size,
                             (unsigned long long)s->sampler.per_rank, what);
    if (m->consumed > n)
        return tp__error_set(err, TP_EUSAGE, "resume position %llu is past the epoch's %llu "
                             "%s", (unsigned long long)m->consumed, (unsigned long long)n, what);
    /* The resumed epoch starts part-way; one with nothing left is over. */
    tp_sampler_resume(&s->sampler, m->epoch, m->consumed);
    s->epoch = m->epoch;
    s->batch = 0;
    if (tp_sampler_epoch_batches(&s->sampler, s->epoch) == 0)
        s->epoch++;
    s->limit = tp__msg_open_limit(m, s->sampler.batches);
    if (!s->win)
        TP_TRY(tp__outputs_pick(s->out, s->ds->ds, m->dataset, m, err));
    s->f = s->out->f;
    s->nf = s->out->nf;
    TP_TRY(layout(s, err));
    if (s->win) { /* the raw area after the arrays: every window's blocks */
        s->raw_bytes = tp__windows_raw_bytes(s->win);
        s->raw_offset = s->slot_bytes;
        uint64_t raw;
        if (__builtin_mul_overflow(s->raw_bytes, m->batch_size, &raw) ||
            raw > TP_RING_MAX_SLOT_BYTES - s->slot_bytes)
            return tp__error_set(err, TP_ETOOBIG, "a batch of %llu windows of %u ids exceeds "
                                 "the slot limit", (unsigned long long)m->batch_size,
                                 m->seq_len);
        s->slot_bytes += (raw + 4095) & ~(uint64_t)4095;
    }
    if (!s->win)
        plan_direct(s);
    else
        s->direct = -1;
    s->nslots = 1; /* the ring needs a power of two */
    while (s->nslots < m->prefetch)
        s->nslots *= 2;
    TP_TRY(tp__server_ring(s->srv, s->pub->uid, s->nslots, s->slot_bytes, &s->ring, err));
    s->pub->ring_bytes = tp_ring_total_bytes(s->ring);
    int rc = 0;
    s->work = session_calloc(s->nslots, sizeof(*s->work));
    for (uint32_t i = 0; rc == 0 && s->work && i < s->nslots; i++) {
        batch_work *bw = &s->work[i];
        bw->s = s;
        bw->tasks = session_calloc(m->batch_size, sizeof(tp_task));
        bw->ptrs = session_calloc(m->batch_size, sizeof(tp_task *));
        bw->bad = session_calloc(m->batch_size, 1);
        bw->edges = s->direct >= 0 ? session_calloc(m->batch_size * 2, TP_DIRECT_EDGE) : NULL;
        if (!bw->tasks || !bw->ptrs || !bw->bad || (s->direct >= 0 && !bw->edges))
            rc = tp__error_set(err, -ENOMEM, "out of memory for a session");
    }
    if (rc == 0 && !s->work)
        rc = tp__error_set(err, -ENOMEM, "out of memory for a session");
    return rc;
}

/* ---- batches */

static void describe(session *s, batch_work *bw, tp_batch_desc *d)
{
    memset(d, 0, sizeof(*d));
    d->magic = TP_BATCH_MAGIC;
    d->epoch = bw->epoch;
    /* Counted from the epoch's start: a resumed epoch's first batch is the one that many
     * positions would be under this world size (exact when the world is unchanged). */
    uint64_t per_batch = s->sampler.batch_size * s->sampler.world;
    d->batch = tp_sampler_start(&s->sampler, bw->epoch) / per_batch + bw->batch;
    uint64_t after = tp_sampler_consumed_after(&s->sampler, bw->epoch, bw->batch);
    d->resume_epoch = after >= s->sampler.n ? bw->epoch + 1 : bw->epoch;
    d->resume_consumed = after >= s->sampler.n ? 0 : after;
    d->samples = bw->n;
    d->nfields = s->nf;
    d->ids_offset = s->ids_offset;
    for (uint32_t i = 0; i < s->nf; i++) {
        const tp_out_field *f = &s->f[i];
        tp_ring_field *o = &d->fields[i];
        snprintf(o->name, sizeof(o->name), "%s", f->name);
        o->dtype = f->dtype | (f->kind == TP_FIELD_IMAGE ? TP_RING_FIELD_IMAGE : 0);
        o->ndim = f->ndim + 1;
        o->shape[0] = bw->n;
        memcpy(o->shape + 1, f->shape, f->ndim * sizeof(int64_t));
        o->offset = f->offset;
        o->bytes = f->sample_bytes * bw->n;
    }
}

/* The record in three pieces: what comes before the payload and after it into the
 * sample's edge buffers, the payload into its place in the slot. */
static void direct_pieces(const session *s, batch_work *bw, tp_task *t)
{
    const tp_out_field *f = &s->f[s->direct];
    unsigned char *edge = bw->edges + (size_t)t->index * 2 * TP_DIRECT_EDGE;
    uint64_t after = s->direct_total - s->direct_at - f->sample_bytes;
    t->iov[0] = (struct iovec){edge, s->direct_at};
    t->iov[1] = (struct iovec){bw->slot + f->offset + (uint64_t)t->index * f->sample_bytes,
                               f->sample_bytes};
    t->iov[2] = (struct iovec){edge + TP_DIRECT_EDGE, after};
    t->iovcnt = after ? 3 : 2;
}

static int start_batch(session *s, uint32_t seq, tp_error *err)
{
    batch_work *bw = &s->work[seq % s->nslots];
    bw->seq = seq;
    bw->epoch = s->epoch;
    bw->batch = s->batch;
    bw->n = (uint32_t)tp_sampler_epoch_batch_len(&s->sampler, s->epoch, s->batch);
    bw->slot = tp_ring_slot(s->ring, seq);
    bw->err_code = 0;
    memset(bw->bad, 0, bw->n);
    uint64_t *ids = (uint64_t *)(bw->slot + s->ids_offset);
    /* How urgent: only a session's first window is ordered by how soon its client needs
     * each batch; after it, every batch comes at the last level, in submission order
     * with every other session's (pipeline.h). */
    uint32_t ahead = s->started < s->nslots ? seq - tp_ring_tail(s->ring)
                                            : TP_STAGES_LEVELS - 1;
    for (uint32_t j = 0; j < bw->n; j++) {
        tp_task *t = &bw->tasks[j];
        ids[j] = tp_sampler_sample(&s->sampler, bw->epoch, bw->batch, j);
        *t = (tp_task){.index = j, .ctx = bw, .run = run_sample, .ahead = ahead};
        if (s->win) {
            ids[j] = tp__windows_id(s->win, s->positions, bw->epoch, ids[j]);
            t->id = ids[j];
            tp__windows_task(s->win, ids[j], t,
                             bw->slot + s->raw_offset + (uint64_t)j * s->raw_bytes);
            bw->ptrs[j] = t;
            continue;
        }
        t->id = ids[j];
        TP_TRY(tp_dataset_locate(s->ds->ds, ids[j], &t->loc, err));
        t->file = s->ds->files[t->loc.shard];
        if (s->direct >= 0 && t->loc.length == s->direct_total)
            direct_pieces(s, bw, t);
        bw->ptrs[j] = t;
    }
    describe(s, bw, (tp_batch_desc *)bw->slot);
    if (++s->batch == tp_sampler_epoch_batches(&s->sampler, s->epoch)) {
        s->batch = 0;
        s->epoch++;
    }
    atomic_store(&bw->pending, bw->n);
    atomic_fetch_add(&s->pub->st.in_flight, 1);
    tp_stages_submit(s->srv->pipe, bw->ptrs, bw->n);
    return 0;
}

/* Drops the failed samples from a finished batch, moving the later ones down. */
static void compact(session *s, batch_work *bw, tp_batch_desc *d)
{
    uint64_t *ids = (uint64_t *)(bw->slot + s->ids_offset);
    uint32_t k = 0;
    for (uint32_t j = 0; j < bw->n; j++) {
        if (bw->bad[j])
            continue;
        ids[k] = ids[j];
        for (uint32_t i = 0; i < s->nf; i++) {
            unsigned char *a = bw->slot + s->f[i].offset;
            uint64_t sb = s->f[i].sample_bytes;
            if (k != j)
                memmove(a + k * sb, a + j * sb, sb);
        }
        k++;
    }
    d->skipped = bw->n - k;
    atomic_fetch_add(&s->pub->st.skipped, d->skipped);
    bw->n = k;
    d->samples = k;
    for (uint32_t i = 0; i < s->nf; i++) {
        d->fields[i].shape[0] = k;
        d->fields[i].bytes = s->f[i].sample_bytes * k;
    }
}

/* Publishes the oldest batch once all its samples are in. @return : false when the session
 * failed with it (--on-error fail). */
static bool finish_batch(session *s, batch_work *bw)
{
    tp_batch_desc *d = (tp_batch_desc *)bw->slot;
    atomic_fetch_sub(&s->pub->st.in_flight, 1);
    if (bw->err_code && (!s->srv->o.skip_errors || daemon_fault(bw->err_code))) {
        d->status = bw->err_code < 0 ? bw->err_code : TP_ECORRUPT;
        memcpy(d->error, bw->err_msg, sizeof(d->error));
        tp__server_log(s->srv, "session %llu failed: %s", (unsigned long long)s->pub->id,
                       bw->err_msg);
        s->failed = true;
    } else if (bw->err_code) {
        compact(s, bw, d);
    }
    tp_ring_publish(s->ring, bw->seq);
    s->published++;
    atomic_fetch_add(&s->pub->st.batches, 1);
    atomic_fetch_add(&s->pub->st.samples, d->samples);
    return !s->failed;
}

/* ---- the session loop */

typedef enum sock_event { SOCK_QUIET, SOCK_CLOSE, SOCK_BAD } sock_event;

static sock_event poll_socket(session *s, int timeout_ms)
{
    static _Thread_local unsigned char buf[TP_MSG_MAX];
    tp_error err = {0};
    int type = tp__msg_recv(s->pub->sock, buf, sizeof(buf), NULL, timeout_ms, &err);
    if (type == -ETIMEDOUT)
        return SOCK_QUIET;
    if (type == TP_MSG_DETACHED)
        s->detached = true;
    if (type == 0 || type == TP_MSG_CLOSE || type == TP_MSG_DETACHED)
        return SOCK_CLOSE;
    if (type == TP_MSG_STATE) {
        tp_msg_state_ok r;
        memset(&r, 0, sizeof(r));
        tp__msg_init(&r.h, TP_MSG_STATE_OK, sizeof(r));
        r.published = s->published;
        r.released = s->published - (uint32_t)(s->published - tp_ring_tail(s->ring));
        r.samples = atomic_load(&s->pub->st.samples);
        r.skipped = atomic_load(&s->pub->st.skipped);
        r.errors = atomic_load(&s->pub->st.errors);
        r.bytes_read = atomic_load(&s->pub->st.bytes_read);
        return tp__msg_send(s->pub->sock, &r, sizeof(r), -1) < 0 ? SOCK_CLOSE : SOCK_QUIET;
    }
    if (type > 0)
        tp__error_set(&err, TP_EPROTOCOL, "unexpected message type %d in a session", type);
    tp__server_log(s->srv, "session %llu: %s", (unsigned long long)s->pub->id, err.msg);
    tp__msg_send_error(s->pub->sock, err.code ? err.code : TP_EPROTOCOL, err.msg);
    return SOCK_BAD;
}

/* Waits for the oldest in-flight batch to complete, a message from the client, or `ms`. */
static void wait_completion(session *s, const batch_work *bw, int ms)
{
    struct pollfd p[2] = {{.fd = s->wake_fd, .events = POLLIN},
                          {.fd = s->pub->sock, .events = POLLIN}};
    if (atomic_load(&bw->pending) > 0 && poll(p, 2, ms) > 0 && (p[0].revents & POLLIN)) {
        uint64_t n;
        if (read(s->wake_fd, &n, sizeof(n)) < 0) {
            /* EAGAIN: another look found it read already */
        }
    }
}

/* How long the loop sleeps waiting for a completion while the client holds the slot it
 * would fill next (its release is a futex, which poll() cannot watch), and otherwise
 * (a completion or a message wakes it; the daemon's stopping is seen within it). Waking
 * every millisecond while all slots were being filled cost two context switches per
 * wake-up, about one per sample at rrc224 on 2 cores. */
#define WAIT_RING_MS 1
#define WAIT_IDLE_MS 20

/* Keeps the ring full until the client leaves, misbehaves, or the daemon stops. */
static void serve(session *s)
{
    uint32_t next = 0, oldest = 0; /* next sequence number to start; oldest unpublished */
    double starved_since = tp__now(); /* when the client was first seen with nothing to read */
    while (!s->failed && !atomic_load(&s->srv->stopping)) {
        bool ring_full = false;
        while (next - oldest < s->nslots && (!s->limit || s->started < s->limit)) {
            int rc = tp_ring_wait_free(s->ring, next, 0);
            if (rc == -ETIMEDOUT) {
                ring_full = true;
                break;
            }
            tp_error err = {0};
            if (rc == 0)
                rc = start_batch(s, next, &err);
            else
                tp__error_set(&err, rc, "the client wrote an impossible ring counter");
            if (rc < 0) {
                tp__server_log(s->srv, "session %llu: %s", (unsigned long long)s->pub->id,
                               err.msg);
                tp__msg_send_error(s->pub->sock, rc, err.msg);
                s->failed = true;
                return;
            }
            next++;
            s->started++;
        }
        while (oldest != next && atomic_load(&s->work[oldest % s->nslots].pending) == 0) {
            if (starved_since > 0)
                atomic_fetch_add(&s->pub->st.starved_us,
                                 (uint64_t)((tp__now() - starved_since) * 1e6));
            starved_since = 0;
            if (!finish_batch(s, &s->work[oldest % s->nslots]))
                return;
            oldest++;
        }
        /* The client has released everything published: it is waiting for us. */
        if (starved_since == 0 && tp_ring_tail(s->ring) == oldest)
            starved_since = tp__now();
        if (oldest != next) {
            wait_completion(s, &s->work[oldest % s->nslots],
                            ring_full ? WAIT_RING_MS : WAIT_IDLE_MS);
        } else if (tp_ring_wait_free(s->ring, next, 20) == TP_EPROTOCOL) {
            const char *msg = "the client wrote an impossible ring counter";
            tp__server_log(s->srv, "session %llu: %s", (unsigned long long)s->pub->id, msg);
            tp__msg_send_error(s->pub->sock, TP_EPROTOCOL, msg);
            s->failed = true;
            return;
        }
        sock_event ev = poll_socket(s, 0);
        if (ev != SOCK_QUIET)
            return;
    }
}

/* Waits for the pipeline to finish this session's batches: they write into the ring. */
static void drain(session *s)
{
    for (uint32_t i = 0; s->work && i < s->nslots; i++) {
        pthread_mutex_lock(&s->lock);
        while (atomic_load(&s->work[i].pending) > 0)
            pthread_cond_wait(&s->cv, &s->lock);
        pthread_mutex_unlock(&s->lock);
    }
}

static int handshake(session *s, tp_msg_open *open, tp_error *err)
{
    static _Thread_local unsigned char buf[TP_MSG_MAX];
    /* A refused peer holds a thread and a connection only briefly. */
    int wait_ms = s->pub->refusal[0] ? 1000 : 10000;
    int type = tp__msg_recv(s->pub->sock, buf, sizeof(buf), NULL, wait_ms, err);
    if (type != TP_MSG_HELLO)
        return type < 0 ? type : tp__error_set(err, TP_EPROTOCOL, "expected HELLO");
    if (s->pub->refusal[0])
        return tp__error_set(err, -EACCES, "%s", s->pub->refusal);
    const tp_msg_hello *h = (const tp_msg_hello *)buf;
    if (h->min_version > TP_PROTOCOL_VERSION || h->max_version < TP_PROTOCOL_VERSION)
        return tp__error_set(err, TP_EPROTOCOL, "client speaks versions %u..%u, daemon %u",
                             h->min_version, h->max_version, TP_PROTOCOL_VERSION);
    tp_msg_hello_ok ok;
    memset(&ok, 0, sizeof(ok));
    tp__msg_init(&ok.h, TP_MSG_HELLO_OK, sizeof(ok));
    ok.version = TP_PROTOCOL_VERSION;
    ok.daemon_pid = (uint32_t)getpid();
    TP_TRY(tp__msg_send(s->pub->sock, &ok, sizeof(ok), -1));
    type = tp__msg_recv(s->pub->sock, buf, sizeof(buf), NULL, 10000, err);
    if (type == TP_MSG_STAT) {
        tp_msg_stat_ok *r = malloc(sizeof(*r));
        if (!r)
            return -ENOMEM;
        tp__server_stat_json(s->srv, r->json, sizeof(r->json));
        size_t len = offsetof(tp_msg_stat_ok, json) + strlen(r->json) + 1;
        tp__msg_init(&r->h, TP_MSG_STAT_OK, len);
        tp__msg_send(s->pub->sock, r, len, -1);
        free(r);
        return 1;
    }
    if (type != TP_MSG_OPEN)
        return type < 0 ? type : tp__error_set(err, TP_EPROTOCOL, "expected OPEN or STAT");
    memcpy(open, buf, sizeof(*open));
    return 0;
}

static int reply_open(session *s)
{
    tp_msg_open_ok r;
    memset(&r, 0, sizeof(r));
    tp__msg_init(&r.h, TP_MSG_OPEN_OK, sizeof(r));
    r.samples = s->sampler.n;
    r.batches = s->sampler.batches;
    r.per_rank = s->sampler.per_rank;
    r.nslots = s->nslots;
    r.slot_bytes = s->slot_bytes;
    return tp__msg_send(s->pub->sock, &r, sizeof(r), tp_ring_fd(s->ring));
}

static void cleanup(session *s)
{
    drain(s);
    for (uint32_t i = 0; s->work && i < s->nslots; i++) {
        free(s->work[i].tasks);
        free(s->work[i].ptrs);
        free(s->work[i].bad);
        free(s->work[i].edges);
    }
    free(s->work);
    free(s->out);
    tp__windows_close(s->win);
    tp__server_ring_end(s->srv, s->pub->uid, s->ring, s->detached);
    atomic_store(&s->pub->ring_bytes, 0); /* STAT: idle now, or gone */
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cv);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
}

void *tp__session_main(void *arg)
{
    tp_session *pub = arg;
    session s = {.pub = pub, .srv = pub->srv};
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.cv, NULL);
    s.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int wake_rc = s.wake_fd < 0 ? -errno : 0;
    tp_msg_open open;
    tp_error err = {0};
    int rc = handshake(&s, &open, &err);
    if (rc == 0 && wake_rc < 0)
        rc = tp__error_set(&err, wake_rc, "cannot create the session's eventfd: %s",
                           tp_strerror(wake_rc));
    if (rc == 0)
        rc = tp__msg_check_open(&open, &err); /* before anything reads its strings */
    if (rc == 0) {
        pthread_mutex_lock(&s.srv->lock); /* STAT reads these */
        snprintf(pub->dataset, sizeof(pub->dataset), "%s", open.dataset);
        for (uint32_t i = 0; i < open.nsources; i++) { /* a mixture: its sources' names */
            size_t at = i ? strlen(pub->dataset) : 0;
            snprintf(pub->dataset + at, sizeof(pub->dataset) - at, "%s%s", i ? "+" : "",
                     open.sources[i].dataset);
        }
        size_t n = strnlen(open.transform, sizeof(pub->transform) - 1); /* cut short */
        memcpy(pub->transform, open.transform, n);
        pub->transform[n] = '\0';
        pub->rank = open.rank, pub->world = open.world, pub->batch_size = open.batch_size;
        pthread_mutex_unlock(&s.srv->lock);
        rc = open_session(&s, &open, &err);
        if (rc == 0)
            rc = reply_open(&s);
    }
    if (rc == 0) {
        tp__server_log(s.srv, "session %llu: %s, rank %u of %u, batch %llu, %u slots of %llu "
                       "bytes", (unsigned long long)pub->id, open.dataset, open.rank,
                       open.world, (unsigned long long)open.batch_size, s.nslots,
                       (unsigned long long)s.slot_bytes);
        serve(&s);
    } else if (rc < 0) {
        tp__server_log(s.srv, "session %llu refused: %s", (unsigned long long)pub->id, err.msg);
        tp__msg_send_error(pub->sock, rc, err.msg[0] ? err.msg : tp_strerror(rc));
    }
    cleanup(&s);
    shutdown(pub->sock, SHUT_RDWR);
    atomic_store(&pub->done, true);
    tp__server_wake(pub->srv);
    return NULL;
}
