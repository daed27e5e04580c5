/* The daemon's shared work stages: one IO thread driving the IO engine (storage/io.h) for
 * every session, and one pool of decode threads. A session hands over a batch's samples as
 * tasks; each task's record is read (through the engine, from LMDB's map for small values,
 * or with pread when it is larger than the engine's buffers), then a decode thread runs
 * the task's callback with the bytes, which writes the sample straight into its place in a
 * ring slot. Records of local shards that the page cache holds whole skip the IO thread:
 * a decode thread reads them itself with a read that never waits for the disk
 * (preadv2 RWF_NOWAIT), and hands any other to the IO engine. Both the reads waiting for
 * the engine and the decode queue serve lower tp_task.ahead first, FIFO among equals.
 * Sessions give lower values only to the batches of their first window, so a session
 * that starts is not queued behind the batches others prepare ahead, and every later
 * batch is served in submission order. Each session bounds its own share by the ring
 * slots it may fill, so no session can starve another.
 *
 * Thread-safety: tp_stages_submit and tp_stages_add_file may be called from any thread. */
#ifndef TP_PIPELINE_H
#define TP_PIPELINE_H

#include "codecs.h"
#include "io.h"
#include "transform.h"

typedef struct tp_stages tp_stages;

/* The levels of tp_task.ahead that the queues tell apart: a session's prefetch window is
 * TP_MAX_PREFETCH batches at most, and the first few are the ones that matter. */
#define TP_STAGES_LEVELS 4

/* Per decode thread state, reused for every task it runs. */
typedef struct tp_worker {
    tp_transformer *tr;
    tp_zstd *zstd;
    unsigned char *scratch;    /* decompressed fields, float conversion */
    size_t scratch_cap;
    unsigned char *record;     /* records read with pread */
    size_t record_cap;
    unsigned index;
    struct tp_stages *owner;
    _Atomic uint64_t seeks, seek_fallbacks; /* its decoder's seekable-JPEG counters */
} tp_worker;

/* Make sure the worker's scratch or record buffer holds `bytes`. @return : 0, -ENOMEM. */
int tp__worker_scratch(tp_worker *w, size_t bytes);
int tp__worker_record(tp_worker *w, size_t bytes);

typedef struct tp_task tp_task;
struct tp_task {
    /* set by the submitter */
    tp_sample_location loc;
    int file;                  /* the engine's index for loc's shard, or -1: pread it */
    void (*run)(tp_task *t, tp_worker *w, const unsigned char *data, uint64_t len, int rc);
    void *ctx;
    uint64_t id;
    uint32_t index;            /* position in its batch */
    /* how urgent: 0 for a batch its consumer waits for or will wait for next, more for
     * batches further ahead. Lower values are read and decoded first (up to
     * TP_STAGES_LEVELS - 1; higher ones count as that). */
    uint32_t ahead;
    /* optional: read the record into these pieces (a payload straight into its place in
     * a ring slot); `run` then gets data NULL */
    struct iovec iov[TP_IO_MAX_IOV];
    unsigned iovcnt;
    /* used by the pipeline */
    tp_task *next;
    const unsigned char *data;
    uint64_t len;
    int rc;
    unsigned buffer;
    bool engine;               /* data is an engine buffer to release */
    bool cached;               /* try a page-cache read on the decode thread first */
};

/* The tag a decode thread's page-cache read of task `t` hands the engine's fault hook
 * (io.h, tests only), which sees every read: the engine's carry the task's address. */
#define TP_PAGE_CACHE_TAG(t) ((uint64_t)(uintptr_t)(t) | 1u)

typedef struct tp_stages_options {
    unsigned threads;          /* decode threads; 0: the number of CPUs */
    bool engine_only;          /* every read through the engine, also those the page cache
                                * holds (always so with io.direct) */
    tp_io_options io;
} tp_stages_options;

typedef struct tp_stages_stats {
    uint64_t reads, bytes_read, io_queued, io_in_flight, decode_queued, tasks_done;
    /* reads: those a decode thread did from the page cache; records it found not wholly
     * there and handed to the engine */
    uint64_t page_cache_reads, page_cache_misses;
    uint64_t decode_ns;        /* time decode threads spent running tasks, summed */
    uint64_t jpeg_seeks, jpeg_seek_fallbacks; /* codecs.h tp_jpeg_stats, summed */
    uint64_t cache_hits, cache_misses, cache_bytes; /* the object cache (--cache) */
    unsigned threads;
    const char *backend;
} tp_stages_stats;

int tp_stages_create(tp_stages **out, const tp_stages_options *o, tp_error *err);
/* Stops the threads once every submitted task has run. NULL allowed. */
void tp_stages_destroy(tp_stages *p);

/* Registers a shard's descriptor with the IO engine. @return : the file index or a
 * negative code. */
int tp_stages_add_file(tp_stages *p, int fd, tp_error *err);
/* The same for a shard in object storage (tp_shard_info.object). */
int tp_stages_add_object(tp_stages *p, const void *object, tp_error *err);

/* Queues `n` tasks; each one's `run` is called exactly once, on a decode thread, with
 * the record's bytes, or with rc < 0 and no data when the read failed. */
void tp_stages_submit(tp_stages *p, tp_task *const *tasks, size_t n);

void tp_stages_stats_get(tp_stages *p, tp_stages_stats *out);

#endif
