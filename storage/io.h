/* The IO engine: many reads in flight against a set of files, with results returned in
 * buffers from an aligned pool. Two backends sit behind this one interface, one file
 * each: io_uring (io_uring.c: registered files and buffers, batched submission) and
 * posix (io_posix.c: a small pool of threads doing pread). Auto selection prefers
 * io_uring and falls back to posix when the kernel or a seccomp policy refuses it.
 *
 * A read names a registered file, an offset and a length. The engine reads it into one of
 * its buffers; with O_DIRECT it reads the enclosing 4 KiB-aligned window and hands back a
 * slice, so records of `--align 1` shards need no special handling. Short reads are
 * continued, EINTR/EAGAIN retried; an error fails only its own read. Every completion
 * holds its buffer until tp_io_release().
 *
 * Files may also be objects in S3-compatible storage (tp_io_add_object): their reads are
 * ranged GETs in flight together through libcurl (io_s3.c), beside the file backend.
 *
 * Thread-safety: one thread submits, reaps and releases (the pipeline's read stage). */
#ifndef TP_IO_H
#define TP_IO_H

#include "tp_common.h"

#include <sys/uio.h>
#include <turbopump/dataset.h>

typedef struct tp_io tp_io;

typedef enum tp_io_kind {
    TP_IO_AUTO = 0, /* $TP_IO ("uring" or "posix") if set, else io_uring, else posix */
    TP_IO_URING = 1,
    TP_IO_POSIX = 2
} tp_io_kind;

#define TP_IO_ALIGN 4096u /* O_DIRECT alignment of offsets, lengths and buffers */

/* LMDB keeps values up to about half a page inside its B-tree leaves and larger ones in
 * overflow pages. Small values are copied from the map (a read would fetch a whole page
 * for them anyway); large ones are read through the engine rather than faulted in. */
#define TP_IO_MAP_COPY_MAX 2048u

/* @return : whether the record at `loc` should be copied from LMDB's map instead of read. */
static inline bool tp_io_use_map(const tp_sample_location *loc)
{
    return loc->mapped && loc->length <= TP_IO_MAP_COPY_MAX;
}

/* Test-only fault injection, called with every completed read before the engine acts on
 * it: it may replace *result (bytes read, or -errno) to inject an error or a short read.
 * NULL in production. */
typedef void (*tp_io_fault_fn)(void *ctx, uint64_t tag, uint64_t offset, int64_t *result);

typedef struct tp_io_options {
    tp_io_kind kind;
    unsigned queue_depth;  /* reads in flight, 1..4096; 0 means 64 */
    unsigned threads;      /* posix backend threads, 1..256; 0 means min(queue depth, 8) */
    bool direct;           /* O_DIRECT: bypass the page cache */
    size_t buffer_bytes;   /* bytes per pool buffer (the largest read); 0 means 1 MiB */
    /* Objects only: a local cache of the record ranges read (io_s3.c), in this directory
     * (created if missing, emptied at start), at most cache_bytes on disk. */
    const char *cache_dir;
    uint64_t cache_bytes;
    tp_io_fault_fn fault;  /* tests only */
    void *fault_ctx;
} tp_io_options;

#define TP_IO_MAX_IOV 4

typedef struct tp_io_read {
    unsigned file;         /* index returned by tp_io_add_file */
    uint64_t offset;
    uint64_t length;       /* 1..buffer_bytes (minus alignment slack with direct) */
    uint64_t tag;          /* returned with the completion */
    /* Optional, not with direct: read into these caller buffers (lengths summing to
     * `length`, any size) instead of an engine buffer; the completion's data is NULL. */
    struct iovec iov[TP_IO_MAX_IOV];
    unsigned iovcnt;
} tp_io_read;

typedef struct tp_io_done {
    uint64_t tag;
    int result;            /* 0, or a negative code: -EIO, TP_ETRUNCATED, ... */
    const unsigned char *data; /* `length` bytes of the file at the requested offset */
    uint64_t length;
    uint64_t issued;       /* bytes actually read from the device (aligned window) */
    unsigned buffer;       /* for tp_io_release */
} tp_io_done;

/* The part of `n` iovecs past their first `skip` bytes, into `out` (n entries at most).
 * @return : how many iovecs that is. */
unsigned tp_io_iov_skip(const struct iovec *in, unsigned n, uint64_t skip, struct iovec *out);

/* Creates an engine. @return : 0, TP_EUSAGE, -ENOMEM, or for a forced backend the
 *           reason it cannot run (e.g. -ENOSYS, -EPERM for io_uring). */
int tp_io_create(tp_io **out, const tp_io_options *o, tp_error *err);
void tp_io_destroy(tp_io *io);

/* @return : "io_uring" or "posix". */
const char *tp_io_backend(const tp_io *io);
/* @return : whether io_uring uses registered buffers (false for posix). */
bool tp_io_fixed_buffers(const tp_io *io);
unsigned tp_io_queue_depth(const tp_io *io);

/* Adds a file that reads may name, given an open descriptor (not taken over: the engine
 * opens its own, with O_DIRECT when asked). Files may be added at any time.
 * @return : the file's index, or a negative code (-EINVAL when O_DIRECT is unsupported). */
int tp_io_add_file(tp_io *io, int fd, tp_error *err);

/* Adds an object in S3-compatible storage (a shard's tp_shard_info.object; the engine
 * keeps its own handle) that reads may name like a file: they become ranged GETs, all in
 * flight at once through libcurl (io_s3.c). Not with O_DIRECT.
 * @return : the file's index, or a negative code. */
int tp_io_add_object(tp_io *io, const void *object, tp_error *err);

/* The object cache's hits, misses and bytes held (zeros without one). */
void tp_io_cache_stats(const tp_io *io, uint64_t *hits, uint64_t *misses, uint64_t *bytes);

/* Queues up to `n` reads. @return : how many were accepted (0 when all buffers are in
 * use: reap and release first), or TP_EUSAGE for a malformed read. */
int tp_io_submit(tp_io *io, const tp_io_read *reads, unsigned n, tp_error *err);

/* Collects up to `max` completions, waiting for at least `min` of them (min <= reads in
 * flight). @return : the number collected, or a negative code for an engine failure. */
int tp_io_reap(tp_io *io, tp_io_done *out, unsigned max, unsigned min);

/* Returns a completion's buffer to the pool. */
void tp_io_release(tp_io *io, const tp_io_done *d);

/* @return : reads submitted and not yet reaped. */
unsigned tp_io_in_flight(const tp_io *io);

#endif
