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
 * from (epoch, batch) continues exactly where a previous run stopped. The position
 * (epoch, consumed) — global positions of the epoch the whole job has read — means the
 * same under any world size: resumed under W' ranks, the rest of the epoch is split over
 * them, every remaining sample or window exactly once (elastic resume).
 *
 * Token datasets (include/turbopump/tokens.h) are read as windows of seq_len ids:
 * input_ids and labels [B, seq_len], and on request position_ids and cu_seqlens; or a
 * mixture of several by weight.
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
    TP_CLIENT_UINT8 = 0,        /* as the pipeline says; uint8 [B, H, W, 3] by default */
    TP_CLIENT_FLOAT32 = 1,      /* ImageNet-normalised float32 [B, 3, H, W] */
    TP_CLIENT_FLOAT16 = 2       /* the same in IEEE half precision */
} tp_client_output;

/* An image output with its own pipeline (include/turbopump/pipeline.h). A view named
 * like an image field sets that field's pipeline; any other name adds an array to each
 * batch, made from `field` with randomness of its own. Views of one field share one
 * decode of the image. When views are given and `fields` is not, an image field that
 * views are made from is delivered only through them. */
typedef struct tp_client_view {
    const char *name;           /* the batch field, 1..31 bytes */
    const char *field;          /* the image field it is made from; NULL: the only one */
    const char *transform;      /* a description or a name; NULL: options.transform */
} tp_client_view;

enum { /* token_outputs: what windows deliver besides int64 input_ids and labels */
    TP_CLIENT_TOKENS_INT32 = 1 << 0,      /* int32 arrays instead of int64 */
    TP_CLIENT_TOKENS_POSITIONS = 1 << 1,  /* position_ids [B, L]: restart at each document */
    TP_CLIENT_TOKENS_CU_SEQLENS = 1 << 2  /* cu_seqlens int32 [B, L + 1]: 0, document starts
                                             in the window, L, then L repeated */
};

/* One dataset of a mixture. */
typedef struct tp_client_source {
    const char *dataset;        /* a token dataset, named as `dataset` is */
    double weight;              /* > 0; normalised over the sources */
} tp_client_source;

/* Zero-initialised options are valid apart from `dataset`: defaults are given per field. */
typedef struct tp_client_options {
    const char *socket;         /* NULL: $TURBOPUMP_SOCKET, else $XDG_RUNTIME_DIR/turbopump.sock,
                                   else /run/turbopump/turbopump.sock */
    const char *dataset;        /* a name under the daemon's root; a path when the client
                                   starts a private daemon (which serves its directory) */
    const char *const *fields;  /* the fields to deliver; NULL: every field that batches */
    size_t nfields;
    const char *transform;      /* image fields' pipeline: a description (TRANSFORMS.md) or
                                   a name: "rrc224" (NULL), "center224", "none" */
    const tp_client_view *views; /* per-field pipelines and extra views, up to 16 */
    size_t nviews;
    tp_client_output output;    /* for pipelines without normalize/to: FLOAT32 and FLOAT16
                                   append ImageNet's normalize and to(float, chw) */
    uint64_t batch_size;        /* 0: 256 */
    bool shuffle;               /* false: dataset order */
    bool drop_last;             /* see the sampler: per rank floor(N/W), full batches only */
    uint64_t seed;
    uint32_t rank, world_size;  /* world_size 0: 1 */
    uint64_t epoch, batch;      /* resume: the first batch to deliver */
    uint64_t consumed;          /* elastic resume: instead of batch, the global positions of
                                   `epoch` already consumed (tp_client_position), under any
                                   world size; 0: batch * batch_size * world_size */
    uint32_t seq_len;           /* token datasets: windows of seq_len ids (required) */
    uint32_t token_outputs;     /* TP_CLIENT_TOKENS_* */
    uint32_t align_documents;   /* 0: windows are the stream's spans of seq_len + 1 ids;
                                   1 (pad): each window starts a document (a document
                                   longer than seq_len + 1 continues in the next), its rest
                                   padded; 2 (pack): whole consecutive documents while they
                                   fit, then padded. Padding: input_ids pad_id, labels -100,
                                   position_ids 0, a cu_seqlens segment of its own */
    int64_t pad_id;
    const tp_client_source *sources; /* a mixture of token datasets (dataset NULL), <= 16 */
    size_t nsources;
    uint64_t mixture_epoch;     /* positions per mixture epoch; 0: all sources' windows */
    uint32_t prefetch;          /* batches the daemon prepares ahead (ring slots); 0: 4 */
    uint64_t max_batches;       /* the most batches the caller will read (the daemon then
                                   prepares no more); 0: no limit */
    uint32_t max_epochs;        /* the same, as that many full epochs' batches (for a
                                   caller that reads N epochs); 0: no limit */
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
    bool image;                 /* decoded from an image field by the session's transform */
} tp_batch_field;

#define TP_CLIENT_MAX_FIELDS 16

typedef struct tp_batch {
    uint64_t epoch;
    uint64_t index;             /* within the epoch */
    uint32_t samples;
    const uint64_t *ids;        /* sample ids, `samples` of them */
    uint64_t skipped;           /* samples the daemon left out (--on-error skip) */
    uint64_t resume_epoch;      /* the position once the job has read this batch */
    uint64_t resume_consumed;
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

/* The elastic resume state: the epoch of the next batch and the global positions of it
 * the whole job has consumed once every rank has read what this one has. Passing it as
 * options.epoch/consumed resumes under any world size. */
TP_API void tp_client_position(const tp_client *c, uint64_t *epoch, uint64_t *consumed);

TP_API uint64_t tp_client_batches_per_epoch(const tp_client *c);
TP_API uint64_t tp_client_samples_per_epoch(const tp_client *c); /* for this rank */
TP_API uint64_t tp_client_dataset_samples(const tp_client *c);

/* ---- batches in GPU memory
 *
 * CUDA is loaded at run time, not linked: tp_client_device loads the GPU plugin
 * (libturbopump_cuda.so: $TURBOPUMP_GPU_PLUGIN, else beside libturbopump, else the
 * library path) and fails with TP_ENODEVICE and a message when it, a driver or the device
 * is missing. Everything else works unchanged without CUDA.
 *
 * Once enabled, tp_client_next_device replaces tp_client_next. The ring is page-locked
 * (cudaHostRegister) so each batch is copied straight from its ring slot into one of
 * `depth` device buffers with cudaMemcpyAsync on the client's own stream; the slot goes
 * back to the daemon when an event says the copy is done, and the copy of the next batches
 * is started before the current one is handed out, so it overlaps the caller's work.
 * uint8 image fields [B, H, W, 3] can be turned into normalised float NCHW on the GPU.
 *
 * Streams are cudaStream_t values passed as void *: NULL is CUDA's legacy default stream,
 * TP_STREAM_NONE says no GPU work used the batch. */
#define TP_STREAM_NONE ((void *)(intptr_t)-1)

typedef struct tp_device_options {
    int device;                 /* CUDA device ordinal */
    uint32_t depth;             /* device buffers, 2..8 and below the ring's slots (prefetch
                                   rounded up to a power of two); 0: 3. Batches held at once (not
                                   released, or with live DLPack tensors) are at most depth,
                                   and only depth - 1 leave room for the next copy */
    tp_client_output output;    /* image fields (uint8 [B, H, W, 3], `image` set): UINT8 stays;
                                   FLOAT32 and FLOAT16 become [B, 3, H, W],
                                   (x / 255 - mean) / std; other fields are copied as sent */
    float mean[3], std[3];      /* all zero: ImageNet's (torchvision's figures) */
} tp_device_options;

typedef struct tp_device_batch {
    uint64_t epoch, index;
    uint32_t samples;
    const uint64_t *ids;        /* host memory, valid until the batch is released */
    uint64_t skipped;
    uint64_t resume_epoch, resume_consumed;
    uint32_t nfields;
    tp_batch_field fields[TP_CLIENT_MAX_FIELDS]; /* data: device pointers */
    void *stream;               /* the client's copy stream */
    void *ready;                /* cudaEvent_t recorded when the batch is in place */
    uint32_t slot;              /* the device buffer (for release and DLPack) */
    uint64_t seq;
} tp_device_batch;

typedef struct tp_device_info {
    const char *plugin;         /* the file loaded */
    const char *runtime;        /* "CUDA runtime 13.0", ... */
    bool pinned_ring;           /* false: cudaHostRegister was refused and batches go
                                   through a page-locked staging copy */
    int dlpack_device;          /* what DLPack calls the memory: 2 (kDLCUDA) */
    uint64_t copies, copy_bytes; /* copies completed */
    double copy_ms;             /* summed copy time, when $TURBOPUMP_GPU_TIMING is set */
} tp_device_info;

/* Loads CUDA and sets up the device path (once per client, before the first batch).
 * @return : 0, TP_ENODEVICE (no plugin, driver or device: the message says which),
 *           TP_EUSAGE (bad options, or batches already read), -ENOMEM. */
TP_API int tp_client_device(tp_client *c, const tp_device_options *o, tp_error *err);

/* Hands out the next batch in device memory. Work on the batch must be ordered after
 * `ready` (tp_device_batch_wait does that for a stream). @return : as tp_client_next, and
 *           TP_EUSAGE when all depth buffers are held, TP_ENODEVICE on a CUDA error. */
TP_API int tp_client_next_device(tp_client *c, tp_device_batch *out, tp_error *err);

/* Makes `stream` wait for the batch to be in place (no host wait). @return : 0,
 * TP_ENODEVICE, or TP_EUSAGE for a batch not held. */
TP_API int tp_device_batch_wait(tp_client *c, const tp_device_batch *b, void *stream);

/* Blocks until the batch is in place (a host wait). @return : 0, TP_ENODEVICE, or
 * TP_EUSAGE for a batch not held. */
TP_API int tp_device_batch_sync(tp_client *c, const tp_device_batch *b);

/* Gives the device buffer back. `stream` is where the caller's work on the batch was
 * queued: the buffer is refilled only after that work. @return : 0 or TP_EUSAGE. */
TP_API int tp_client_release_device(tp_client *c, const tp_device_batch *b, void *stream);

/* One field of a held batch as a DLPack tensor (a DLManagedTensor of DLPack 0.5 and later,
 * device type kDLCUDA), with `stream` ordered after `ready`. The tensor keeps the device
 * buffer (and the device state, even past tp_client_close) until its deleter runs, which
 * may happen on any thread; the buffer is refilled after the work then queued on
 * `stream`. @return : the tensor, or NULL with err set. */
struct DLManagedTensor;
TP_API struct DLManagedTensor *tp_device_batch_dlpack(tp_client *c, const tp_device_batch *b,
                                                      uint32_t field, void *stream,
                                                      tp_error *err);

TP_API void tp_client_device_info(const tp_client *c, tp_device_info *out);

/* Ends the session and frees everything; views die with it. NULL allowed. */
TP_API void tp_client_close(tp_client *c);

#ifdef __cplusplus
}
#endif
#endif
