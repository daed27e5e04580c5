/* The io_uring backend: one ring sized to the queue depth, the engine's files registered
 * (IOSQE_FIXED_FILE) and its buffer pool registered as fixed buffers, so the kernel
 * neither looks up descriptors nor pins pages per read. Registration happens at the first
 * submission: a sparse table of FILE_TABLE entries, so files added later (the daemon opens
 * datasets as clients ask) take a free entry with a files update. Where the kernel
 * refuses, a file is read through its plain descriptor; buffers that cannot be registered
 * (a small RLIMIT_MEMLOCK) fall back to plain reads into the same pool. */
#include "io_internal.h"

#include <liburing.h>
#include <stdlib.h>
#include <sys/uio.h>

#define FILE_TABLE 4096u

typedef struct uring_state {
    struct io_uring ring;
    bool registered;
    unsigned table;         /* registered file table entries (0: none) */
    bool fixed_buffers;
    unsigned queued;
} uring_state;

static int uring_init(tp_io *io, tp_error *err)
{
    uring_state *u = calloc(1, sizeof(*u));
    if (!u)
        return tp__error_set(err, -ENOMEM, "out of memory");
    int rc = io_uring_queue_init(io->o.queue_depth, &u->ring, 0);
    if (rc < 0) {
        free(u);
        return tp__error_set(err, rc, "io_uring: cannot create a ring: %s", tp_strerror(rc));
    }
    io->state = u;
    return 0;
}

static void uring_fini(tp_io *io)
{
    uring_state *u = io->state;
    if (!u)
        return;
    io_uring_queue_exit(&u->ring);
    free(u);
}

static void uring_register(tp_io *io, uring_state *u)
{
    u->registered = true;
    unsigned table = TP_MAX(FILE_TABLE, io->nfiles);
    int *fds = malloc(table * sizeof(int));
    for (unsigned i = 0; fds && i < table; i++)
        fds[i] = i < io->nfiles ? io->fds[i] : -1;
    if (fds && io_uring_register_files(&u->ring, fds, table) == 0)
        u->table = table;
    else if (io->nfiles > 0 && io_uring_register_files(&u->ring, io->fds, io->nfiles) == 0)
        u->table = io->nfiles; /* no sparse tables: later files go unregistered */
    free(fds);
    for (unsigned i = 0; i < io->nfiles; i++)
        io->file_fixed[i] = i < u->table;
    struct iovec *iov = malloc(io->o.queue_depth * sizeof(*iov));
    for (unsigned i = 0; iov && i < io->o.queue_depth; i++)
        iov[i] = (struct iovec){tp__io_buffer(io, i), io->o.buffer_bytes};
    u->fixed_buffers = iov && io_uring_register_buffers(&u->ring, iov, io->o.queue_depth) == 0;
    free(iov);
}

static int uring_start(tp_io *io, unsigned s)
{
    uring_state *u = io->state;
    if (!u->registered)
        uring_register(io, u);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (!sqe) { /* the submission queue is full of reads we have not submitted yet */
        int rc = io_uring_submit(&u->ring);
        if (rc < 0)
            return rc;
        u->queued = 0;
        if (!(sqe = io_uring_get_sqe(&u->ring)))
            return -EBUSY;
    }
    const tp__io_slot *slot = &io->slots[s];
    unsigned char *dst = tp__io_buffer(io, s) + slot->got;
    unsigned len = (unsigned)(slot->len - slot->got);
    uint64_t off = slot->win_off + slot->got;
    bool fixed = io->file_fixed[slot->req.file];
    int file = fixed ? (int)slot->req.file : io->fds[slot->req.file];
    if (slot->req.iovcnt) {
        tp__io_slot *w = &io->slots[s];
        io_uring_prep_readv(sqe, file, w->rest, tp__io_rest(w), off);
    } else if (u->fixed_buffers) {
        io_uring_prep_read_fixed(sqe, file, dst, len, off, (int)s);
    } else {
        io_uring_prep_read(sqe, file, dst, len, off);
    }
    if (fixed)
        sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, s);
    u->queued++;
    return 0;
}

static int uring_flush(tp_io *io)
{
    uring_state *u = io->state;
    while (u->queued > 0) {
        int rc = io_uring_submit(&u->ring);
        if (rc == -EINTR || rc == -EAGAIN)
            continue;
        if (rc < 0)
            return rc;
        u->queued -= TP_MIN((unsigned)rc, u->queued);
    }
    return 0;
}

static int uring_wait(tp_io *io, unsigned *slots, int64_t *results, unsigned max,
                      unsigned min)
{
    uring_state *u = io->state;
    struct io_uring_cqe *cqe;
    if (min > 0) {
        int rc;
        do
            rc = io_uring_wait_cqe_nr(&u->ring, &cqe, min);
        while (rc == -EINTR || rc == -EAGAIN);
        if (rc < 0)
            return rc;
    }
    unsigned n = 0;
    while (n < max && io_uring_peek_cqe(&u->ring, &cqe) == 0) {
        slots[n] = (unsigned)io_uring_cqe_get_data64(cqe);
        results[n] = cqe->res;
        io_uring_cqe_seen(&u->ring, cqe);
        n++;
    }
    return (int)n;
}

/* A file added after registration takes its entry of the sparse table. */
static void uring_add_file(tp_io *io, unsigned i)
{
    uring_state *u = io->state;
    if (u->registered && i < u->table)
        io->file_fixed[i] = io_uring_register_files_update(&u->ring, i, &io->fds[i], 1) == 1;
}

const tp__io_backend tp__io_uring_backend = {
    .name = "io_uring", .init = uring_init, .start = uring_start, .flush = uring_flush,
    .wait = uring_wait, .fini = uring_fini, .add_file = uring_add_file};

bool tp_io_fixed_buffers(const tp_io *io)
{
    if (io->backend != &tp__io_uring_backend)
        return false;
    const uring_state *u = io->state;
    return u->fixed_buffers;
}
