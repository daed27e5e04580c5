/* The client's device path (see include/turbopump/client.h, "batches in GPU memory"): the
 * GPU plugin loaded with dlopen, the page-locked ring, `depth` device buffers ("slots")
 * with their events, and DLPack export.
 *
 * A slot is free when nothing references it (refs == 0) and its copy has been reaped. The
 * client issues a batch into a free slot (one async copy per field on the copy stream,
 * then the conversion kernel), hands it out later, and gives its ring slot back once
 * tp_gpu_reap says the copy event completed. A release or a DLPack deleter that names a
 * stream records an event there, and the next copy into that slot waits for it (and only
 * for its own slot's consumers), so a refill never overtakes the consumer's work and the
 * copies of the next batches still run during it. The state is reference-counted: the client holds one
 * reference, every DLPack tensor another, so tensors outlive tp_client_close safely. */
#ifndef TP_GPU_H
#define TP_GPU_H

#include "gpu_plugin.h"
#include "ring.h"
#include "tp_common.h"

#include <turbopump/client.h>

#define TP_GPU_MAX_DEPTH 8u

typedef struct tp_gpu tp_gpu;

typedef struct tp_gpu_config {
    int device;
    uint32_t depth;             /* 2..TP_GPU_MAX_DEPTH */
    tp_dtype convert;           /* TP_DTYPE_NONE, FLOAT32 or FLOAT16 */
    float mean[3], std[3];
    bool timing;                /* time every copy (tp_gpu_stats) */
    void *pin_base;             /* the ring mapping, page-locked while the client lives */
    size_t pin_bytes;
    uint64_t slot_bytes;        /* the most bytes one batch's fields can take */
} tp_gpu_config;

typedef struct tp_gpu_stats {
    const char *plugin, *runtime;
    bool pinned;
    int dlpack_device;
    uint64_t copies, copy_bytes;
    double copy_ms;             /* summed copy time (with timing), else 0 */
} tp_gpu_stats;

/* Loads the plugin (once per process) and sets up the device. @return : 0, TP_ENODEVICE,
 * TP_EUSAGE, -ENOMEM. */
int tp_gpu_open(tp_gpu **out, const tp_gpu_config *cfg, tp_error *err);

/* A free slot, or -1. */
int tp_gpu_acquire(tp_gpu *g);

/* How many slots are free, and how many copies are not reaped yet. */
void tp_gpu_counts(tp_gpu *g, uint32_t *free_slots, uint32_t *pending);

/* Whether `slot` is referenced and holds the batch issued as `seq` (not a later one). */
bool tp_gpu_holds(tp_gpu *g, uint32_t slot, uint64_t seq);

/* Starts copying `host` (views into the ring) into `slot`. When the ring is not
 * page-locked the bytes are first copied into a staging buffer, and *staged says the ring
 * slot may be released at once. @return : 0 or TP_ENODEVICE. */
int tp_gpu_issue(tp_gpu *g, int slot, const tp_batch *host, bool *staged, tp_error *err);

/* The ring sequence of the oldest issued copy that completed: 1 (and *seq), 0 when none
 * has, or TP_ENODEVICE. With wait, blocks for the oldest pending copy (0 when none). */
int tp_gpu_reap(tp_gpu *g, bool wait, uint32_t *seq, tp_error *err);

void tp_gpu_batch(tp_gpu *g, int slot, tp_device_batch *out);
int tp_gpu_wait(tp_gpu *g, uint32_t slot, void *stream);
int tp_gpu_sync(tp_gpu *g, uint32_t slot);
int tp_gpu_release(tp_gpu *g, uint32_t slot, void *stream);
struct DLManagedTensor *tp_gpu_dlpack(tp_gpu *g, uint32_t slot, uint32_t field, void *stream,
                                      tp_error *err);
void tp_gpu_stats_get(const tp_gpu *g, tp_gpu_stats *out);

/* Waits for every copy, unlocks the ring and drops the client's reference. NULL allowed. */
void tp_gpu_close(tp_gpu *g);

#endif
