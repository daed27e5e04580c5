/* The shared IO thread and decode pool (pipeline.h). The IO thread owns the IO engine,
 * which is single-threaded: it takes new tasks and files from a locked inbox, submits as
 * many reads as the engine has buffers for, reaps completions into the decode queue, and
 * takes back the buffers decode threads are done with. Records the engine cannot hold
 * (larger than its buffers) and small LMDB values skip the IO thread: a decode thread
 * reads or copies them itself. So do records the page cache holds whole (cached_read). */
#include "pipeline.h"
#include "s3.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

typedef struct queue {
    tp_task *head, *tail;
    size_t len;
} queue;

static void q_push(queue *q, tp_task *t)
{
    t->next = NULL;
    if (q->tail)
        q->tail->next = t;
    else
        q->head = t;
    q->tail = t;
    q->len++;
}

static tp_task *q_pop(queue *q)
{
    tp_task *t = q->head;
    if (t && !(q->head = t->next))
        q->tail = NULL;
    q->len -= t != NULL;
    return t;
}

/* The decode queue and the IO thread's pending reads: a FIFO per level of tp_task.ahead,
 * the lowest served first. */
typedef struct ladder {
    queue level[TP_STAGES_LEVELS];
    size_t len;
} ladder;

static void l_push(ladder *l, tp_task *t)
{
    q_push(&l->level[TP_MIN(t->ahead, TP_STAGES_LEVELS - 1u)], t);
    l->len++;
}

/* The first `n` tasks l_pop would return, in that order, left queued. @return : how many. */
static unsigned l_first(const ladder *l, tp_task **out, unsigned n)
{
    unsigned k = 0;
    for (unsigned i = 0; k < n && i < TP_STAGES_LEVELS; i++)
        for (tp_task *t = l->level[i].head; t && k < n; t = t->next)
            out[k++] = t;
    return k;
}

static tp_task *l_pop(ladder *l)
{
    for (unsigned i = 0; l->len && i < TP_STAGES_LEVELS; i++) {
        tp_task *t = q_pop(&l->level[i]);
        if (t) {
            l->len--;
            return t;
        }
    }
    return NULL;
}

typedef struct file_req {
    int fd, result;
    const void *object;    /* instead of fd */
    bool done;
    tp_error err;
    struct file_req *next;
} file_req;

struct tp_stages {
    tp_stages_options o;
    tp_io *io;
    size_t max_read;           /* the largest record the engine's buffers take */
    pthread_mutex_t lock;
    pthread_cond_t io_wake, decode_wake, file_done;
    queue inbox;               /* under lock */
    ladder decode;             /* under lock */
    unsigned *released;        /* engine buffers to give back, under lock */
    size_t nreleased, release_batch; /* when give_back wakes the IO thread */
    file_req *files;           /* files to add, under lock */
    bool stopping, io_done;
    size_t cached_open;        /* tasks to try from the page cache not yet settled, under lock */
    pthread_t io_thread;
    pthread_t *workers;
    tp_worker *wstate;
    unsigned nworkers;
    _Atomic uint64_t reads, bytes_read, in_flight, done, decode_ns;
    _Atomic uint64_t pending;  /* reads the IO thread has taken and not yet submitted */
    _Atomic uint64_t page_cache_reads, page_cache_misses;
    _Atomic bool no_nowait;    /* the kernel or file system refuses RWF_NOWAIT */
    _Atomic int probe_credit;  /* cached_read's hits and misses (PROBE_CREDIT_MAX) */
    _Atomic bool probe_all;    /* try every task, else one in PROBE_SAMPLE */
    unsigned probe_tick;       /* tasks submitted while not all are tried, under lock */
    _Atomic uint64_t cache_hits, cache_misses, cache_bytes; /* the object cache's, copied */
};

/* Two vDSO clock reads per task: tens of nanoseconds against a decode's microseconds. */
static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int tp__worker_scratch(tp_worker *w, size_t bytes)
{
    return tp__grow((void **)&w->scratch, &w->scratch_cap, bytes);
}

int tp__worker_record(tp_worker *w, size_t bytes)
{
    return tp__grow((void **)&w->record, &w->record_cap, bytes);
}

/* ---- IO thread */

static void take_inbox(tp_stages *p, ladder *pending, tp_io_done *rel, size_t *nrel)
{
    tp_task *t;
    while ((t = q_pop(&p->inbox)))
        l_push(pending, t);
    atomic_store_explicit(&p->pending, pending->len, memory_order_relaxed);
    *nrel = p->nreleased;
    for (size_t i = 0; i < p->nreleased; i++)
        rel[i] = (tp_io_done){.buffer = p->released[i]};
    p->nreleased = 0;
    for (file_req *f = p->files; f; f = f->next) {
        f->result = f->object ? tp_io_add_object(p->io, f->object, &f->err)
                              : tp_io_add_file(p->io, f->fd, &f->err);
        f->done = true;
    }
    if (p->files)
        pthread_cond_broadcast(&p->file_done);
    p->files = NULL;
}

static void reap(tp_stages *p, unsigned min);

/* Submits pending reads in groups of SUBMIT_GROUP (one system call each), handing the
 * completed ones to the decode threads after each group: reads from the page cache
 * complete during submission, and decoding should not wait for a whole batch of them. */
#define SUBMIT_GROUP 8

static void submit_pending(tp_stages *p, ladder *pending)
{
    while (pending->len) {
        tp_io_read r[SUBMIT_GROUP];
        tp_task *group[SUBMIT_GROUP];
        unsigned n = l_first(pending, group, SUBMIT_GROUP);
        for (unsigned i = 0; i < n; i++) {
            const tp_task *t = group[i];
            r[i] = (tp_io_read){.file = (unsigned)t->file, .offset = t->loc.offset,
                                .length = t->loc.length, .tag = (uint64_t)(uintptr_t)t,
                                .iovcnt = t->iovcnt};
            memcpy(r[i].iov, t->iov, sizeof(t->iov));
        }
        tp_error err;
        int got = tp_io_submit(p->io, r, n, &err);
        if (got == 0)
            return; /* every buffer is busy: reap and release first */
        if (got < 0) { /* the first read is one the engine refuses: it fails alone */
            tp_task *t = l_pop(pending);
            atomic_store_explicit(&p->pending, pending->len, memory_order_relaxed);
            t->rc = got;
            pthread_mutex_lock(&p->lock);
            l_push(&p->decode, t);
            pthread_cond_signal(&p->decode_wake);
            pthread_mutex_unlock(&p->lock);
            continue;
        }
        for (int i = 0; i < got; i++) {
            tp_task *t = l_pop(pending);
            assert(t == group[i]); /* the same order as l_first's */
            (void)t;
        }
        atomic_store_explicit(&p->pending, pending->len, memory_order_relaxed);
        atomic_fetch_add(&p->in_flight, (uint64_t)got);
        reap(p, 0);
    }
}

static void reap(tp_stages *p, unsigned min)
{
    tp_io_done done[64];
    int n = tp_io_reap(p->io, done, 64, min);
    if (n <= 0)
        return;
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < n; i++) {
        tp_task *t = (tp_task *)(uintptr_t)done[i].tag;
        t->rc = done[i].result;
        t->data = done[i].data;
        t->len = done[i].length;
        t->buffer = done[i].buffer;
        t->engine = true;
        atomic_fetch_add(&p->bytes_read, done[i].issued);
        l_push(&p->decode, t);
    }
    atomic_fetch_sub(&p->in_flight, (uint64_t)n);
    atomic_fetch_add(&p->reads, (uint64_t)n);
    pthread_cond_broadcast(&p->decode_wake);
    pthread_mutex_unlock(&p->lock);
}

static void *io_main(void *arg)
{
    tp_stages *p = arg;
    ladder pending = {0};
    unsigned qd = tp_io_queue_depth(p->io);
    tp_io_done *rel = malloc(qd * sizeof(*rel));
    for (;;) {
        size_t nrel = 0;
        pthread_mutex_lock(&p->lock);
        /* stopping: tasks a decode thread may still hand over keep it here */
        while ((!p->stopping || p->cached_open) && !p->inbox.head && !p->nreleased &&
               !p->files && tp_io_in_flight(p->io) == 0)
            pthread_cond_wait(&p->io_wake, &p->lock);
        bool stop = p->stopping && !p->inbox.head && !pending.len && !p->cached_open &&
                    tp_io_in_flight(p->io) == 0;
        take_inbox(p, &pending, rel, &nrel);
        pthread_mutex_unlock(&p->lock);
        for (size_t i = 0; i < nrel; i++)
            tp_io_release(p->io, &rel[i]);
        if (stop)
            break;
        /* Submitting stops when every buffer is busy, so after it nothing can move until a
         * read completes or a buffer comes back: block in the engine when reads are in
         * flight (new tasks wait at most one read's time), else on the condition. */
        submit_pending(p, &pending);
        reap(p, tp_io_in_flight(p->io) > 0 ? 1 : 0);
        uint64_t hits, misses, held;
        tp_io_cache_stats(p->io, &hits, &misses, &held);
        atomic_store_explicit(&p->cache_hits, hits, memory_order_relaxed);
        atomic_store_explicit(&p->cache_misses, misses, memory_order_relaxed);
        atomic_store_explicit(&p->cache_bytes, held, memory_order_relaxed);
    }
    free(rel);
    return NULL;
}

/* ---- decode threads */

/* Buffers handed back before the IO thread is woken for them, while the decode threads
 * have more work queued than they can start at once: half of the engine's buffers (at
 * most 32). Once every buffer is busy the IO thread sleeps until enough return; waking
 * it for each one cost a context switch per sample on machines whose cores all decode
 * (about 4% of rrc224 throughput on 2 cores), and every 8 still one per 8 samples. */
#define RELEASE_BATCH_MAX 32

/* Records read in place into a slot (iovecs) from this size on are read by the decode
 * threads with preadv rather than by the IO thread: the kernel's copy out of the page
 * cache is then spread over every decode thread instead of one. */
#define SPREAD_READ ((uint64_t)64 << 10)

static void give_back(tp_stages *p, tp_task *t)
{
    if (!t->engine)
        return;
    pthread_mutex_lock(&p->lock);
    p->released[p->nreleased++] = t->buffer;
    if (p->nreleased >= p->release_batch || p->decode.len <= p->o.threads)
        pthread_cond_signal(&p->io_wake);
    pthread_mutex_unlock(&p->lock);
}

/* A read a decode thread did itself, in the figures the engine's reads go into. */
static void count_read(tp_stages *p, uint64_t bytes)
{
    atomic_fetch_add(&p->reads, 1);
    atomic_fetch_add(&p->bytes_read, bytes);
}

/* A record for caller pieces that does not go through the engine. */
static void read_pieces(tp_stages *p, tp_task *t)
{
    if (t->loc.mapped) {
        const unsigned char *src = t->loc.mapped;
        for (unsigned i = 0; i < t->iovcnt; src += t->iov[i].iov_len, i++)
            memcpy(t->iov[i].iov_base, src, t->iov[i].iov_len);
        return;
    }
    t->rc = tp__location_read(&t->loc, t->iov, t->iovcnt, t->loc.offset, t->loc.length, NULL);
    if (t->rc == 0)
        count_read(p, t->loc.length);
}

/* Records that do not go through the engine: copied from LMDB's map, or read with pread
 * into the worker's own buffer. */
static void read_direct(tp_stages *p, tp_task *t, tp_worker *w)
{
    t->len = t->loc.length;
    if (t->iovcnt) {
        read_pieces(p, t);
        return;
    }
    if (t->loc.mapped) {
        t->data = t->loc.mapped;
        t->len = t->loc.length;
        return;
    }
    if ((t->rc = tp__worker_record(w, t->loc.length)) < 0)
        return;
    struct iovec v = {.iov_base = w->record, .iov_len = t->loc.length};
    t->rc = tp__location_read(&t->loc, &v, 1, t->loc.offset, t->loc.length, NULL);
    t->data = w->record;
    t->len = t->loc.length;
    if (t->rc == 0)
        count_read(p, t->loc.length);
}

/* Trying the page cache pays where it holds most records. A miss costs a failed read
 * and a hand-over to the IO thread, about 15 us on 2 busy cores: with the cache dropped,
 * an epoch of 5,000 photographs (half of them in cache through readahead) took 3% longer
 * than through the engine alone. So every task is tried while a credit (0..64) lasts: a
 * hit adds one, a miss takes four, which holds it above 80% hits. Once it is spent, only
 * one task in PROBE_SAMPLE is tried, each hit then adding four (it stands for sixteen
 * tasks); every task is tried again once the credit is back at PROBE_ON. The mode, not
 * the credit, is read at submission, so a batch of any size is tried whole. */
#define PROBE_CREDIT_MAX 64
#define PROBE_ON 16
#define PROBE_SAMPLE 16

static void probe_settle(tp_stages *p, bool hit)
{
    bool all = atomic_load_explicit(&p->probe_all, memory_order_relaxed);
    int c = atomic_load_explicit(&p->probe_credit, memory_order_relaxed), n;
    do
        n = hit ? TP_MIN(c + (all ? 1 : 4), PROBE_CREDIT_MAX) : TP_MAX(c - 4, 0);
    while (n != c && !atomic_compare_exchange_weak_explicit(&p->probe_credit, &c, n,
                                                            memory_order_relaxed,
                                                            memory_order_relaxed));
    if (n == 0 || n >= PROBE_ON)
        atomic_store_explicit(&p->probe_all, n > 0, memory_order_relaxed);
}

/* Records of local shards go to a decode thread first, which reads them itself when the
 * page cache holds them whole: preadv2 with RWF_NOWAIT copies what is cached and fails
 * rather than wait for the disk. The IO thread's round trip for such a read (a
 * submission, a completion, a hand-over under the lock and the wake-ups between the
 * threads) cost about 1.5% of rrc224 throughput on 2 cores whose threads all decode.
 * Records not wholly cached go to the engine, which keeps reads from the disk in flight
 * while the decode threads work. @return : true when the task is settled (read, or failed
 * for good), false when the engine must read it. */
static bool cached_read(tp_stages *p, tp_task *t, tp_worker *w)
{
    if (atomic_load_explicit(&p->no_nowait, memory_order_relaxed))
        return false;
    struct iovec one, *iov = t->iov;
    unsigned n = t->iovcnt;
    if (!n) {
        if ((t->rc = tp__worker_record(w, t->loc.length)) < 0)
            return true;
        one = (struct iovec){.iov_base = w->record, .iov_len = t->loc.length};
        iov = &one;
        n = 1;
    }
    ssize_t got;
    do
        got = preadv2(t->loc.fd, iov, (int)n, (off_t)t->loc.offset, RWF_NOWAIT);
    while (got < 0 && errno == EINTR);
    int64_t res = got < 0 ? -errno : got;
    if (p->o.io.fault)
        p->o.io.fault(p->o.io.fault_ctx, TP_PAGE_CACHE_TAG(t), t->loc.offset, &res);
    bool refused = res == -EOPNOTSUPP || res == -EINVAL || res == -ENOSYS;
    if (refused)
        atomic_store(&p->no_nowait, true); /* and for every record from now on */
    if (refused || res == -EAGAIN || (res >= 0 && (uint64_t)res < t->loc.length)) {
        atomic_fetch_add_explicit(&p->page_cache_misses, 1, memory_order_relaxed);
        probe_settle(p, false);
        return false; /* a short read too: a page missing, or the file cut (the engine says) */
    }
    probe_settle(p, true);
    t->rc = res < 0 ? (int)res : 0;
    if (t->rc == 0) {
        t->data = t->iovcnt ? NULL : w->record;
        t->len = t->loc.length;
        count_read(p, t->loc.length);
        atomic_fetch_add_explicit(&p->page_cache_reads, 1, memory_order_relaxed);
    }
    return true;
}

static void *worker_main(void *arg)
{
    tp_worker *w = arg;
    tp_stages *p = w->owner;
    bool settled = false; /* a cached task of the last round, counted off under the lock */
    for (;;) {
        pthread_mutex_lock(&p->lock);
        if (settled && --p->cached_open == 0 && p->stopping)
            pthread_cond_signal(&p->io_wake);
        settled = false;
        tp_task *t;
        while (!(t = l_pop(&p->decode)) && !p->io_done)
            pthread_cond_wait(&p->decode_wake, &p->lock);
        pthread_mutex_unlock(&p->lock);
        if (!t)
            break;
        if (t->cached) {
            t->cached = false;
            if (!cached_read(p, t, w)) { /* to the engine, which owns it from here */
                pthread_mutex_lock(&p->lock);
                p->cached_open--;
                q_push(&p->inbox, t);
                pthread_cond_signal(&p->io_wake);
                pthread_mutex_unlock(&p->lock);
                continue;
            }
            settled = true;
        } else if (t->file < 0 && t->rc == 0) {
            read_direct(p, t, w);
        }
        /* The task may be reused as soon as it has run: keep what give_back needs. */
        tp_task held = {.engine = t->engine, .buffer = t->buffer};
        uint64_t t0 = now_ns();
        t->run(t, w, t->rc == 0 ? t->data : NULL, t->rc == 0 ? t->len : 0, t->rc);
        atomic_fetch_add(&p->decode_ns, now_ns() - t0);
        tp_jpeg_stats js;
        tp_jpeg_decoder_stats(tp_transformer_decoder(w->tr), &js);
        atomic_store_explicit(&w->seeks, js.seek_decodes, memory_order_relaxed);
        atomic_store_explicit(&w->seek_fallbacks, js.seek_fallbacks, memory_order_relaxed);
        give_back(p, &held);
        atomic_fetch_add(&p->done, 1);
    }
    return NULL;
}

/* ---- setup and the public calls */

int tp_stages_create(tp_stages **out, const tp_stages_options *o, tp_error *err)
{
    tp_stages *p = calloc(1, sizeof(*p));
    if (!p)
        return tp__error_set(err, -ENOMEM, "out of memory");
    p->o = *o;
    if (!p->o.threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        p->o.threads = n > 0 ? (unsigned)n : 1;
    }
    int rc = tp_io_create(&p->io, &p->o.io, err);
    if (rc < 0) {
        free(p);
        return rc;
    }
    size_t buf = p->o.io.buffer_bytes ? p->o.io.buffer_bytes : (size_t)1 << 20;
    p->max_read = buf - (p->o.io.direct ? 2 * TP_IO_ALIGN : 0);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->io_wake, NULL);
    pthread_cond_init(&p->decode_wake, NULL);
    pthread_cond_init(&p->file_done, NULL);
    p->released = calloc(tp_io_queue_depth(p->io), sizeof(unsigned));
    p->release_batch = TP_MAX(1, TP_MIN(RELEASE_BATCH_MAX, tp_io_queue_depth(p->io) / 2));
    atomic_init(&p->probe_credit, PROBE_CREDIT_MAX);
    atomic_init(&p->probe_all, true);
    p->workers = calloc(p->o.threads, sizeof(pthread_t));
    p->wstate = calloc(p->o.threads, sizeof(tp_worker));
    rc = p->released && p->workers && p->wstate ? 0 : -ENOMEM;
    for (unsigned i = 0; rc == 0 && i < p->o.threads; i++) {
        p->wstate[i] = (tp_worker){.index = i, .owner = p};
        if (tp_transformer_create(&p->wstate[i].tr) < 0 || tp_zstd_create(&p->wstate[i].zstd) < 0)
            rc = -ENOMEM;
    }
    if (rc == 0 && pthread_create(&p->io_thread, NULL, io_main, p) != 0)
        rc = -EAGAIN;
    for (unsigned i = 0; rc == 0 && i < p->o.threads; i++, p->nworkers++)
        if (pthread_create(&p->workers[i], NULL, worker_main, &p->wstate[i]) != 0)
            rc = -EAGAIN;
    if (rc < 0) {
        p->o.threads = p->nworkers; /* what tp_stages_destroy joins */
        tp_stages_destroy(p);
        return tp__error_set(err, rc, "cannot start the decode pool: %s", tp_strerror(rc));
    }
    *out = p;
    return 0;
}

void tp_stages_destroy(tp_stages *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->io_wake);
    pthread_mutex_unlock(&p->lock);
    if (p->workers && (p->nworkers || p->io_thread))
        pthread_join(p->io_thread, NULL);
    pthread_mutex_lock(&p->lock);
    p->io_done = true;
    pthread_cond_broadcast(&p->decode_wake);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->nworkers; i++)
        pthread_join(p->workers[i], NULL);
    for (unsigned i = 0; p->wstate && i < p->o.threads; i++) {
        tp_transformer_destroy(p->wstate[i].tr);
        tp_zstd_destroy(p->wstate[i].zstd);
        free(p->wstate[i].scratch);
        free(p->wstate[i].record);
    }
    tp_io_destroy(p->io);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->io_wake);
    pthread_cond_destroy(&p->decode_wake);
    pthread_cond_destroy(&p->file_done);
    free(p->released);
    free(p->workers);
    free(p->wstate);
    free(p);
}

static int add_file(tp_stages *p, int fd, const void *object, tp_error *err)
{
    file_req f = {.fd = fd, .object = object};
    pthread_mutex_lock(&p->lock);
    f.next = p->files;
    p->files = &f;
    pthread_cond_signal(&p->io_wake);
    while (!f.done)
        pthread_cond_wait(&p->file_done, &p->lock);
    pthread_mutex_unlock(&p->lock);
    if (f.result < 0 && err)
        *err = f.err;
    return f.result;
}

int tp_stages_add_file(tp_stages *p, int fd, tp_error *err) { return add_file(p, fd, NULL, err); }

int tp_stages_add_object(tp_stages *p, const void *object, tp_error *err)
{
    return add_file(p, -1, object, err);
}

void tp_stages_submit(tp_stages *p, tp_task *const *tasks, size_t n)
{
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < n; i++) {
        tp_task *t = tasks[i];
        t->rc = 0;
        t->engine = false;
        t->data = NULL;
        t->len = 0;
        t->cached = false;
        /* objects: every read through the engine, where many GETs are in flight */
        bool direct = t->file < 0 || tp_io_use_map(&t->loc) ||
                      (t->iovcnt ? !t->loc.object &&
                                       (p->o.io.direct || t->loc.length >= SPREAD_READ)
                                 : t->loc.length > p->max_read);
        if (direct)
            t->file = -1;
        else if (!p->o.engine_only && !p->o.io.direct && !t->loc.object && t->loc.fd >= 0 &&
                 !atomic_load_explicit(&p->no_nowait, memory_order_relaxed))
            t->cached = atomic_load_explicit(&p->probe_all, memory_order_relaxed) ||
                        p->probe_tick++ % PROBE_SAMPLE == 0;
        p->cached_open += t->cached;
        if (direct || t->cached)
            l_push(&p->decode, t);
        else
            q_push(&p->inbox, t);
    }
    pthread_cond_signal(&p->io_wake);
    pthread_cond_broadcast(&p->decode_wake);
    pthread_mutex_unlock(&p->lock);
}

void tp_stages_stats_get(tp_stages *p, tp_stages_stats *out)
{
    pthread_mutex_lock(&p->lock);
    *out = (tp_stages_stats){
        .io_queued = p->inbox.len + atomic_load_explicit(&p->pending, memory_order_relaxed),
        .decode_queued = p->decode.len};
    pthread_mutex_unlock(&p->lock);
    out->reads = atomic_load(&p->reads);
    out->bytes_read = atomic_load(&p->bytes_read);
    out->io_in_flight = atomic_load(&p->in_flight);
    out->tasks_done = atomic_load(&p->done);
    out->decode_ns = atomic_load(&p->decode_ns);
    out->page_cache_reads = atomic_load_explicit(&p->page_cache_reads, memory_order_relaxed);
    out->page_cache_misses = atomic_load_explicit(&p->page_cache_misses, memory_order_relaxed);
    for (unsigned i = 0; i < p->o.threads; i++) {
        out->jpeg_seeks += atomic_load_explicit(&p->wstate[i].seeks, memory_order_relaxed);
        out->jpeg_seek_fallbacks +=
            atomic_load_explicit(&p->wstate[i].seek_fallbacks, memory_order_relaxed);
    }
    out->cache_hits = atomic_load_explicit(&p->cache_hits, memory_order_relaxed);
    out->cache_misses = atomic_load_explicit(&p->cache_misses, memory_order_relaxed);
    out->cache_bytes = atomic_load_explicit(&p->cache_bytes, memory_order_relaxed);
    out->threads = p->o.threads;
    out->backend = tp_io_backend(p->io);
}
