/* libturbopump: the client side of the turbopump daemon, for training loops.
 *
 * A client opens a session with the daemon over its Unix socket, naming a dataset, the
 * fields it wants, a transform and a batch size, and its place in the job (rank, world
 * size, seed, resume position). The daemon fills a shared-memory ring with batches; the
 * client hands them out as zero-copy views: pointers into the ring, valid until the batch
 * is released. When no daemon answers, the client starts a private one for itself (unless
 * told not to), so a single-process user needs no setup.
 *
 * Order: rank r of W receives, for each epoch, the batches the sampler gives it (see
 * docs/PROTOCOL.md and DESIGN): the same for any thread count and any daemon, so resuming
 * from (epoch, batch) continues exactly where a previous run stopped.
 *
 * Thread-safety: a tp_client is used by one thread at a time. Separate clients are
 * independent. All functions return 0 or a negative code (tp_strerror explains it) and
 * fill the optional tp_error with the daemon's or the library's message. */
#ifndef TURBOPUMP_CLIENT_H
#define TURBOPUMP_CLIENT_H

#include <turbopump/dataset.h>
#include <turbopump/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_client tp_client;

typedef enum tp_client_output { /* what image fields become */
    TP_CLIENT_UINT8 = 0,        /* uint8 [B, H, W, 3] */
    TP_CLIENT_FLOAT32 = 1,      /* ImageNet-normalised float32 [B, 3, H, W] */
    TP_CLIENT_FLOAT16 = 2       /* the same in IEEE half precision */
} tp_client_output;

/* Zero-initialised options are valid apart from `dataset`: defaults are given per field. */
typedef struct tp_client_options {
    const char *socket;         /* NULL: $TURBOPUMP_SOCKET, else $XDG_RUNTIME_DIR/turbopump.sock,
                                   else /run/turbopump/turbopump.sock */
    const char *dataset;        /* a name under the daemon's root; a path when the client
                                   starts a private daemon (which serves its directory) */
    const char *const *fields;  /* the fields to deliver; NULL: every field that batches */
    size_t nfields;
    const char *transform;      /* for image fields: "rrc224" (NULL), "center224", ... */
    tp_client_output output;
    uint64_t batch_size;        /* 0: 256 */
    bool shuffle;               /* false: dataset order */
    bool drop_last;             /* see the sampler: per rank floor(N/W), full batches only */
    uint64_t seed;
    uint32_t rank, world_size;  /* world_size 0: 1 */
    uint64_t epoch, batch;      /* resume: the first batch to deliver */
    uint32_t prefetch;          /* batches the daemon prepares ahead (ring slots); 0: 4 */
    uint64_t max_batches;       /* the most batches the caller will read (the daemon then
                                   prepares no more); 0: no limit */
    uint32_t hold;              /* 0: each tp_client_next releases the previous batch;
                                   N: the caller releases, holding up to N (<= prefetch) */
    int timeout_ms;             /* how long to wait for a batch or a reply; 0: 60000 */
    bool no_autostart;          /* fail with TP_ENODAEMON instead of starting a daemon */
    const char *daemon_path;    /* the turbopump executable to start; NULL: $TURBOPUMP_BIN,
                                   else "turbopump" on PATH */
} tp_client_options;

typedef struct tp_batch_field {
    const char *name;
    tp_dtype dtype;
    uint32_t ndim;              /* shape[0] is the number of samples */
    const int64_t *shape;
    const void *data;           /* C-contiguous, valid until the batch is released */
    uint64_t bytes;
} tp_batch_field;

#define TP_CLIENT_MAX_FIELDS 16

typedef struct tp_batch {
    uint64_t epoch;
    uint64_t index;             /* within the epoch */
    uint32_t samples;
    const uint64_t *ids;        /* sample ids, `samples` of them */
    uint64_t skipped;           /* samples the daemon left out (--on-error skip) */
    uint32_t nfields;
    tp_batch_field fields[TP_CLIENT_MAX_FIELDS];
    uint32_t seq;               /* the ring position (for tp_client_release) */
} tp_batch;

/* Connects (starting a private daemon when none answers and that is allowed) and opens
 * the session. @return : 0, TP_ENODAEMON, TP_ENODATASET, TP_ENOFIELD, TP_EUSAGE (bad
 *           options, or refused by the daemon's limits), TP_ETOOBIG (memory budget),
 *           TP_EPROTOCOL, -ETIMEDOUT or -errno. */
TP_API int tp_client_open(tp_client **out, const tp_client_options *o, tp_error *err);

/* Waits for the next batch and fills `out` with views into the ring. With hold == 0 the
 * previous batch is released first. @return : 0; TP_EUSAGE past max_batches;
 *           TP_ESESSION when the daemon ended the
 *           session (a sample failed with --on-error fail: the message names the dataset,
 *           shard and sample) or went away; -ETIMEDOUT; TP_EUSAGE when already holding
 *           `hold` batches; TP_EPROTOCOL for a malformed ring. */
TP_API int tp_client_next(tp_client *c, tp_batch *out, tp_error *err);

/* Waits at most timeout_ms for the next batch to be ready, without taking it (so a caller
 * can wait in slices and handle signals in between). @return : 0 (tp_client_next will not
 *           block), -ETIMEDOUT, or what tp_client_next would fail with. */
TP_API int tp_client_wait(tp_client *c, int timeout_ms, tp_error *err);

/* Gives a batch's slot back to the daemon. Batches may be released in any order; slots
 * return in order. @return : 0, or TP_EUSAGE for a batch not held. */
TP_API int tp_client_release(tp_client *c, const tp_batch *b);

/* The resume state: the epoch and batch index of the next batch tp_client_next delivers.
 * Saving it with the seed and passing it as options.epoch/batch resumes exactly. */
TP_API void tp_client_state(const tp_client *c, uint64_t *epoch, uint64_t *batch);

TP_API uint64_t tp_client_batches_per_epoch(const tp_client *c);
TP_API uint64_t tp_client_samples_per_epoch(const tp_client *c); /* for this rank */
TP_API uint64_t tp_client_dataset_samples(const tp_client *c);

/* Ends the session and frees everything; views die with it. NULL allowed. */
TP_API void tp_client_close(tp_client *c);

#ifdef __cplusplus
}
#endif
#endif
