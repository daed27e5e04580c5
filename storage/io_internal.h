/* What the IO engine's common part (io.c) and its backends (io_uring.c, io_posix.c)
 * share: the engine state, read slots and the backend operations. */
#ifndef TP_IO_INTERNAL_H
#define TP_IO_INTERNAL_H

#include "io.h"

/* One read in flight. Slot i always uses pool buffer i. */
typedef struct tp__io_slot {
    tp_io_read req;
    uint64_t win_off;  /* where the read starts in the file (aligned with O_DIRECT) */
    uint64_t need;     /* bytes from win_off that cover the request */
    uint64_t len;      /* bytes to read: need, rounded up to the alignment with O_DIRECT */
    uint64_t got;      /* bytes read so far */
    bool busy;         /* submitted, or completed and not yet released */
    bool remote;       /* the file is an object: io_s3.c reads it */
    struct iovec rest[TP_IO_MAX_IOV]; /* caller buffers: what is still to read */
    unsigned nrest;
} tp__io_slot;

/* For reads into caller buffers: the iovecs past the `got` bytes already read, in the
 * slot's `rest`. @return : how many. */
unsigned tp__io_rest(tp__io_slot *slot);

typedef struct tp__io_backend {
    const char *name;
    int (*init)(tp_io *io, tp_error *err);
    /* Queues the read of the rest of slot `s`: len - got bytes at win_off + got. */
    int (*start)(tp_io *io, unsigned s);
    /* Hands queued reads to the kernel. */
    int (*flush)(tp_io *io);
    /* Collects raw results: up to `max` (slot, bytes or -errno) pairs, waiting for at
     * least `min`. @return : the number collected or a negative code. */
    int (*wait)(tp_io *io, unsigned *slots, int64_t *results, unsigned max, unsigned min);
    void (*fini)(tp_io *io);
    /* Optional: file `i` was added (after the first read, too). */
    void (*add_file)(tp_io *io, unsigned i);
} tp__io_backend;

struct tp_io {
    tp_io_options o;
    const tp__io_backend *backend;
    void *state;            /* the backend's */
    int *fds;               /* -1 for objects */
    bool *file_fixed;       /* io_uring: the file is in the registered table */
    const struct tp_s3_object **objects; /* per file: the object, or NULL for a file */
    void *s3;               /* io_s3.c's state, made with the first object */
    unsigned s3_in_flight;
    unsigned nfiles, files_cap;
    unsigned char *pool;    /* queue_depth buffers of buffer_bytes, 4 KiB aligned */
    tp__io_slot *slots;
    unsigned *free_slots;
    unsigned nfree;
    unsigned in_flight;
    bool started;           /* the first read was submitted */
    tp_io_done *ready;      /* finished reads not yet handed out by tp_io_reap */
    unsigned nready;
};

static inline unsigned char *tp__io_buffer(const tp_io *io, unsigned s)
{
    return io->pool + (size_t)s * io->o.buffer_bytes;
}

/* io_s3.c: reads of objects, beside the file backend (the same roles as its ops; wait
 * gives up after timeout_ms, -1 meaning when min have finished). */
int tp__io_s3_init(tp_io *io, tp_error *err);
void tp__io_s3_fini(tp_io *io);
int tp__io_s3_start(tp_io *io, unsigned s);
int tp__io_s3_flush(tp_io *io);
int tp__io_s3_wait(tp_io *io, unsigned *slots, int64_t *results, unsigned max, unsigned min,
                   int timeout_ms);

extern const tp__io_backend tp__io_uring_backend;
extern const tp__io_backend tp__io_posix_backend;

#endif
