/* The IO engine's common part: backend selection, the aligned buffer pool, read slots,
 * and what happens to every raw result whatever the backend: fault injection (tests),
 * retry on EINTR/EAGAIN, continuation of short reads, end-of-file detection and handing
 * finished reads back as slices of their buffers. Backends only start reads and report
 * raw results. */
#include "io_internal.h"
#include "s3.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define DEFAULT_QD 64
#define DEFAULT_BUFFER (1u << 20)

static uint64_t align_down(uint64_t x) { return x & ~(uint64_t)(TP_IO_ALIGN - 1); }
static uint64_t align_up(uint64_t x) { return align_down(x + TP_IO_ALIGN - 1); }

static int check_options(tp_io_options *o, tp_error *err)
{
    if (!o->queue_depth)
        o->queue_depth = DEFAULT_QD;
    if (!o->buffer_bytes)
        o->buffer_bytes = DEFAULT_BUFFER;
    if (!o->threads)
        o->threads = TP_MIN(o->queue_depth, 8);
    o->buffer_bytes = align_up(o->buffer_bytes);
    if (o->cache_dir && !o->cache_bytes)
        return tp__error_set(err, TP_EUSAGE, "io: a cache needs a size");
    if (o->queue_depth > 4096 || o->threads > 256 || (uint64_t)o->buffer_bytes > (1u << 30) ||
        (unsigned)o->kind > TP_IO_POSIX)
        return tp__error_set(err, TP_EUSAGE, "io: queue depth 1-4096, threads 1-256, "
                             "buffers up to 1 GiB");
    return 0;
}

static int alloc_pool(tp_io *io, tp_error *err)
{
    unsigned qd = io->o.queue_depth;
    io->pool = aligned_alloc(TP_IO_ALIGN, (size_t)qd * io->o.buffer_bytes);
    io->slots = calloc(qd, sizeof(*io->slots));
    io->free_slots = malloc(qd * sizeof(unsigned));
    io->ready = malloc(qd * sizeof(*io->ready));
    if (!io->pool || !io->slots || !io->free_slots || !io->ready)
        return tp__error_set(err, -ENOMEM, "io: cannot allocate %u buffers of %zu bytes", qd,
                             io->o.buffer_bytes);
    for (unsigned i = 0; i < qd; i++)
        io->free_slots[i] = qd - 1 - i;
    io->nfree = qd;
    return 0;
}

/* Chooses the backend: a forced one must work; auto falls back to posix only when
 * io_uring is refused (no kernel support, or forbidden by a seccomp policy). */
static int pick_backend(tp_io *io, tp_error *err)
{
    const char *env = getenv("TP_IO");
    tp_io_kind kind = io->o.kind;
    if (kind == TP_IO_AUTO && env && *env) {
        if (strcmp(env, "uring") && strcmp(env, "posix"))
            return tp__error_set(err, TP_EUSAGE, "TP_IO must be 'uring' or 'posix', not "
                                 "'%s'", env);
        kind = env[0] == 'u' ? TP_IO_URING : TP_IO_POSIX;
    }
    if (kind != TP_IO_POSIX) {
        io->backend = &tp__io_uring_backend;
        tp_error uerr = {0};
        int rc = io->backend->init(io, &uerr);
        if (rc == 0)
            return 0;
        bool refused = rc == -ENOSYS || rc == -EPERM || rc == -EACCES || rc == -EOPNOTSUPP;
        if (kind == TP_IO_URING || !refused) {
            if (err)
                *err = uerr;
            return rc;
        }
    }
    io->backend = &tp__io_posix_backend;
    return io->backend->init(io, err);
}

int tp_io_create(tp_io **out, const tp_io_options *o, tp_error *err)
{
    tp_io *io = calloc(1, sizeof(*io));
    if (!io)
        return tp__error_set(err, -ENOMEM, "out of memory");
    io->o = o ? *o : (tp_io_options){0};
    int rc = check_options(&io->o, err);
    if (rc == 0)
        rc = alloc_pool(io, err);
    if (rc == 0)
        rc = pick_backend(io, err);
    if (rc < 0) {
        io->backend = NULL; /* a backend that failed init has nothing to undo */
        tp_io_destroy(io);
        return rc;
    }
    *out = io;
    return 0;
}

void tp_io_destroy(tp_io *io)
{
    if (!io)
        return;
    /* Reads still in flight write into the pool: let them land before it is freed. */
    tp_io_done done[64];
    int n;
    while (io->backend && io->in_flight > 0 && (n = tp_io_reap(io, done, 64, 1)) >= 0)
        for (int i = 0; i < n; i++)
            tp_io_release(io, &done[i]);
    if (io->backend)
        io->backend->fini(io);
    tp__io_s3_fini(io);
    for (unsigned i = 0; i < io->nfiles; i++) {
        if (io->fds[i] >= 0)
            close(io->fds[i]);
        tp_s3_object_close((tp_s3_object *)io->objects[i]);
    }
    free(io->fds);
    free(io->objects);
    free(io->pool);
    free(io->file_fixed);
    free(io->slots);
    free(io->free_slots);
    free(io->ready);
    free(io);
}

const char *tp_io_backend(const tp_io *io) { return io->backend->name; }
unsigned tp_io_queue_depth(const tp_io *io) { return io->o.queue_depth; }
unsigned tp_io_in_flight(const tp_io *io) { return io->in_flight; }

static int grow_files(tp_io *io, tp_error *err)
{
    if (io->nfiles < io->files_cap)
        return 0;
    unsigned cap = io->files_cap ? 2 * io->files_cap : 16;
    int *grown = realloc(io->fds, cap * sizeof(int));
    if (grown)
        io->fds = grown;
    bool *fixed = grown ? realloc(io->file_fixed, cap * sizeof(bool)) : NULL;
    if (fixed)
        io->file_fixed = fixed;
    const struct tp_s3_object **objs =
        fixed ? realloc(io->objects, cap * sizeof(*io->objects)) : NULL;
    if (!objs)
        return tp__error_set(err, -ENOMEM, "out of memory");
    io->objects = objs;
    io->files_cap = cap;
    return 0;
}

int tp_io_add_object(tp_io *io, const void *object, tp_error *err)
{
    if (io->o.direct)
        return tp__error_set(err, TP_EUSAGE, "io: objects cannot be read with O_DIRECT");
    TP_TRY(grow_files(io, err));
    if (!io->s3)
        TP_TRY(tp__io_s3_init(io, err));
    /* the engine's own handle: the caller's may go before the engine does */
    tp_s3_object *own;
    TP_TRY(tp_s3_object_open(&own, tp_s3_object_name(object), err));
    io->fds[io->nfiles] = -1;
    io->file_fixed[io->nfiles] = false;
    io->objects[io->nfiles] = own;
    return (int)io->nfiles++;
}

int tp_io_add_file(tp_io *io, int fd, tp_error *err)
{
    TP_TRY(grow_files(io, err));
    /* Our own open file, so what we set on it leaves the caller's alone: O_DIRECT, or for
     * buffered reads no readahead. The engine reads whole records, and in a shuffled
     * order the kernel's readahead past them is wasted disk time (with a cold page
     * cache it halved the emulated accelerators a disk could feed; docs/BENCHMARKS.md). */
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    int own = open(path, O_RDONLY | O_CLOEXEC | (io->o.direct ? O_DIRECT : 0));
    if (own < 0 && !io->o.direct)
        own = fcntl(fd, F_DUPFD_CLOEXEC, 0); /* no /proc: share the caller's */
    if (own < 0)
        return tp__error_set(err, -errno, "io: %s descriptor %d: %s",
                             io->o.direct ? "cannot open with O_DIRECT" : "cannot reopen",
                             fd, strerror(errno));
    if (!io->o.direct)
        posix_fadvise(own, 0, 0, POSIX_FADV_RANDOM);
    io->fds[io->nfiles] = own;
    io->file_fixed[io->nfiles] = false;
    io->objects[io->nfiles] = NULL;
    if (io->backend->add_file)
        io->backend->add_file(io, io->nfiles);
    return (int)io->nfiles++;
}

static int prepare(tp_io *io, const tp_io_read *r, unsigned s, tp_error *err)
{
    tp__io_slot *slot = &io->slots[s];
    slot->req = *r;
    slot->remote = r->file < io->nfiles && io->objects[r->file];
    if (r->iovcnt) {
        uint64_t sum = 0;
        for (unsigned i = 0; i < r->iovcnt && i < TP_IO_MAX_IOV; i++)
            sum += r->iov[i].iov_len;
        if (io->o.direct || r->iovcnt > TP_IO_MAX_IOV || sum != r->length || !sum ||
            r->file >= io->nfiles)
            return tp__error_set(err, TP_EUSAGE, "io: a read into %u caller buffers of %llu "
                                 "bytes for %llu (not with O_DIRECT)", r->iovcnt,
                                 (unsigned long long)sum, (unsigned long long)r->length);
        slot->win_off = r->offset;
        slot->need = slot->len = r->length;
        slot->got = 0;
        return 0;
    }
    slot->win_off = io->o.direct ? align_down(r->offset) : r->offset;
    slot->need = r->offset + r->length - slot->win_off;
    slot->len = io->o.direct ? align_up(slot->need) : slot->need;
    slot->got = 0;
    if (r->file >= io->nfiles || r->length == 0 || slot->len > io->o.buffer_bytes ||
        r->offset + r->length < r->offset)
        return tp__error_set(err, TP_EUSAGE, "io: read of %llu bytes at %llu in file %u does "
                             "not fit (%u files, %zu-byte buffers)",
                             (unsigned long long)r->length, (unsigned long long)r->offset,
                             r->file, io->nfiles, io->o.buffer_bytes);
    return 0;
}

static int start(tp_io *io, unsigned s)
{
    return io->slots[s].remote ? tp__io_s3_start(io, s) : io->backend->start(io, s);
}

static int flush(tp_io *io)
{
    int rc = io->in_flight > io->s3_in_flight ? io->backend->flush(io) : 0;
    int rc2 = io->s3_in_flight ? tp__io_s3_flush(io) : 0;
    return rc < 0 ? rc : rc2;
}

/* Raw results from whichever backends have reads in flight: with both busy, each is
 * polled in turn (objects for up to a millisecond) until something comes back. */
static int wait_any(tp_io *io, unsigned *slots, int64_t *results, unsigned max, unsigned min)
{
    unsigned remote = io->s3_in_flight, local = io->in_flight - remote;
    if (!remote)
        return io->backend->wait(io, slots, results, max, min);
    if (!local)
        return tp__io_s3_wait(io, slots, results, max, min, -1);
    int n = io->backend->wait(io, slots, results, max, 0);
    if (n < 0 || (unsigned)n >= TP_MAX(min, 1u) || (unsigned)n == max)
        return n;
    int m = tp__io_s3_wait(io, slots + n, results + n, max - (unsigned)n, 0, min ? 1 : 0);
    return m < 0 ? m : n + m;
}

int tp_io_submit(tp_io *io, const tp_io_read *reads, unsigned n, tp_error *err)
{
    io->started = true;
    unsigned done = 0;
    int rc = 0;
    for (; done < n && io->nfree > 0; done++) {
        unsigned s = io->free_slots[io->nfree - 1];
        if ((rc = prepare(io, &reads[done], s, err)) < 0)
            break;
        if ((rc = start(io, s)) < 0)
            break;
        io->nfree--;
        io->slots[s].busy = true;
        io->in_flight++;
        io->s3_in_flight += io->slots[s].remote;
    }
    int frc = done ? flush(io) : 0;
    if (rc < 0 && done == 0)
        return rc;
    return frc < 0 ? tp__error_set(err, frc, "io: submit: %s", tp_strerror(frc)) : (int)done;
}

static void finish(tp_io *io, unsigned s, int result)
{
    tp__io_slot *slot = &io->slots[s];
    uint64_t skip = slot->req.offset - slot->win_off;
    io->ready[io->nready++] = (tp_io_done){
        .tag = slot->req.tag, .result = result,
        .data = slot->req.iovcnt ? NULL : tp__io_buffer(io, s) + skip,
        .length = result == 0 ? slot->req.length : 0, .issued = slot->len, .buffer = s};
    io->in_flight--;
    io->s3_in_flight -= slot->remote;
}

unsigned tp_io_iov_skip(const struct iovec *in, unsigned n, uint64_t skip, struct iovec *out)
{
    return tp__iov_skip(in, n, skip, out);
}

unsigned tp__io_rest(tp__io_slot *slot)
{
    return slot->nrest = tp_io_iov_skip(slot->req.iov, slot->req.iovcnt, slot->got, slot->rest);
}

/* Acts on one raw result. @return : 1 when the read must be started again. */
static int settle(tp_io *io, unsigned s, int64_t res)
{
    tp__io_slot *slot = &io->slots[s];
    if (io->o.fault)
        io->o.fault(io->o.fault_ctx, slot->req.tag, slot->win_off + slot->got, &res);
    if (res == -EINTR || res == -EAGAIN)
        return 1;
    if (res < 0) {
        finish(io, s, (int)res);
        return 0;
    }
    slot->got += (uint64_t)res;
    if (slot->got >= slot->need) {
        finish(io, s, 0);
        return 0;
    }
    /* Nothing more, or (with O_DIRECT, where only the end of the file gives a read that
     * stops short of the alignment) the end of the file before the end of the request. */
    if (res == 0 || (io->o.direct && slot->got % TP_IO_ALIGN != 0)) {
        finish(io, s, TP_ETRUNCATED);
        return 0;
    }
    return 1;
}

int tp_io_reap(tp_io *io, tp_io_done *out, unsigned max, unsigned min)
{
    unsigned slots[256];
    int64_t results[256];
    min = TP_MIN(min, max);
    while (io->in_flight > 0) {
        unsigned short_by = io->nready >= min ? 0 : min - io->nready;
        int n = wait_any(io, slots, results, TP_MIN(io->in_flight, 256u),
                         TP_MIN(TP_MIN(short_by, io->in_flight), 256u));
        TP_TRY(n);
        bool restarted = false;
        for (int i = 0; i < n; i++)
            if (settle(io, slots[i], results[i])) {
                TP_TRY(start(io, slots[i]));
                restarted = true;
            }
        if (restarted)
            TP_TRY(flush(io));
        if (short_by == 0 || io->nready >= min)
            break; /* polled once, or have enough */
    }
    unsigned n = TP_MIN(io->nready, max);
    memcpy(out, io->ready, n * sizeof(*out));
    memmove(io->ready, io->ready + n, (io->nready - n) * sizeof(*out));
    io->nready -= n;
    return (int)n;
}

void tp_io_release(tp_io *io, const tp_io_done *d)
{
    assert(d->buffer < io->o.queue_depth && io->slots[d->buffer].busy);
    io->slots[d->buffer].busy = false;
    io->free_slots[io->nfree++] = d->buffer;
}
