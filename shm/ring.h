/* The shared-memory ring between the daemon (producer) and one client session (consumer).
 *
 * One memfd, created by the daemon, sealed against shrinking and growing (so a mapping can
 * never fault on a truncated file), passed to the client over the session's socket with
 * SCM_RIGHTS. Layout, all little-endian (both ends are on the same host):
 *
 *   [0, 4096)                 tp_ring_header: geometry, then the producer counter `head`
 *                             and the consumer counter `tail` on separate cache lines
 *   [4096 + i*slot_bytes, ..) slot i: a tp_batch_desc at its start, then the payload
 *                             (sample ids and one array per field) at the offsets the
 *                             descriptor gives, each 64-byte aligned
 *
 * Counters are free-running 32-bit sequence numbers (they wrap): `head` is the number of
 * slots published, `tail` the number released. Sequence number q lives in slot
 * q % nslots. The producer fills slot q once q - tail < nslots, then publishes it by
 * storing head = q + 1 (release order); the consumer reads slots q < head (acquire order),
 * may hold up to nslots of them at once (a lease, so a GPU copy can overlap the next
 * batch), and releases them in order by storing tail. Both wait with futexes on the other's
 * counter (FUTEX_WAIT on shared memory) in bounded slices, so a dead peer is noticed.
 *
 * Trust. The client can write anything into the mapping. The producer reads only `tail`
 * from it and checks every value against what it published (TP_EPROTOCOL otherwise); it
 * never reads back descriptors or payload. The consumer checks the header when it attaches
 * and every descriptor before use (tp_batch_desc_check), so a buggy daemon cannot make a
 * client read outside the mapping either.
 *
 * Thread-safety: one producer thread per tp_ring and one consumer thread per view. */
#ifndef TP_RING_H
#define TP_RING_H

#include "tp_common.h"

#include <stdatomic.h>
#include <turbopump/dataset.h>

#define TP_RING_MAGIC 0x47525054u  /* "TPRG" */
#define TP_RING_VERSION 3u
#define TP_RING_HEADER_BYTES 4096u
#define TP_RING_MAX_SLOTS 256u
#define TP_RING_MAX_SLOT_BYTES (UINT64_C(1) << 34) /* 16 GiB */
#define TP_RING_MAX_FIELDS 16u     /* fields per batch */
#define TP_RING_MAX_DIMS (TP_MAX_DIMS + 1) /* batch dimension first */
#define TP_BATCH_MAGIC 0x44425054u /* "TPBD" */

typedef struct tp_ring_header {
    uint32_t magic, version;
    uint32_t nslots, reserved;
    uint64_t slot_bytes;           /* multiple of 4096 */
    uint64_t total_bytes;          /* TP_RING_HEADER_BYTES + nslots * slot_bytes */
    unsigned char pad0[32];
    _Alignas(64) _Atomic uint32_t head; /* offset 64: slots published */
    _Alignas(64) _Atomic uint32_t tail; /* offset 128: slots released */
} tp_ring_header;

#define TP_RING_DTYPE_MASK 0xffu
#define TP_RING_FIELD_IMAGE 0x100u /* decoded from an image field (the transform applied) */

/* One array of a batch: `shape[0]` is the number of samples. */
typedef struct tp_ring_field {
    char name[TP_MAX_FIELD_NAME + 1]; /* NUL-terminated */
    uint32_t dtype;                /* tp_dtype in the low 8 bits, and TP_RING_FIELD_IMAGE */
    uint32_t ndim;                 /* 1..TP_RING_MAX_DIMS */
    int64_t shape[TP_RING_MAX_DIMS];
    uint64_t offset;               /* from the start of the slot, 64-byte aligned */
    uint64_t bytes;                /* product of shape times the dtype's size */
} tp_ring_field;

typedef struct tp_batch_desc {
    uint32_t magic;                /* TP_BATCH_MAGIC */
    int32_t status;                /* 0, or a negative code: the session failed (see error) */
    uint64_t epoch;
    uint64_t batch;                /* index of the batch within the epoch, for this rank */
    uint32_t samples;              /* samples in this batch, 0..batch size */
    uint32_t nfields;              /* 0..TP_RING_MAX_FIELDS */
    uint64_t ids_offset;           /* uint64 sample ids[samples], 8-byte aligned */
    uint64_t skipped;              /* samples left out of this batch (--on-error skip) */
    uint64_t resume_epoch;         /* the resume state once the job has read this batch */
    uint64_t resume_consumed;      /* (epoch, positions consumed: the sampler's terms) */
    tp_ring_field fields[TP_RING_MAX_FIELDS];
    char error[512];               /* NUL-terminated; set when status < 0 */
} tp_batch_desc;

/* ---- producer (daemon) */

typedef struct tp_ring tp_ring;

/* Creates and maps a sealed memfd ring. nslots must be a power of two (the 32-bit
 * sequence numbers wrap, and q % nslots must stay continuous across the wrap).
 * @return : 0, TP_EUSAGE (nslots not a power of two in 1..TP_RING_MAX_SLOTS, slot_bytes not a multiple of 4096 or below
 *           sizeof(tp_batch_desc), or above TP_RING_MAX_SLOT_BYTES), or -errno. */
int tp_ring_create(tp_ring **out, uint32_t nslots, uint64_t slot_bytes, tp_error *err);
void tp_ring_destroy(tp_ring *r);  /* NULL allowed; closes the fd and unmaps */
int tp_ring_fd(const tp_ring *r);  /* still owned by the ring */
uint32_t tp_ring_nslots(const tp_ring *r);
uint64_t tp_ring_slot_bytes(const tp_ring *r);
uint64_t tp_ring_total_bytes(const tp_ring *r);

/* Makes a ring whose consumer has gone (its mapping and descriptor closed) new for the
 * next one: the header written again, both counters back at 0. Its slots keep their old
 * bytes, which a consumer never reads before they are published again; its pages stay
 * allocated, so the next session does not fault them in one by one. */
void tp_ring_reset(tp_ring *r);

/* The slot that sequence number `seq` uses (writable by the producer). */
unsigned char *tp_ring_slot(tp_ring *r, uint32_t seq);

/* Waits until slot `seq` may be written: seq - tail < nslots. `seq` must be the next
 * unpublished sequence number or within nslots of it. Waits at most timeout_ms
 * (-1: no limit). @return : 0, -ETIMEDOUT, or TP_EPROTOCOL when the consumer's tail is
 *           out of range (behind the last tail seen, or past head). */
int tp_ring_wait_free(tp_ring *r, uint32_t seq, int timeout_ms);

/* Publishes every slot before `seq + 1` (head = seq + 1) and wakes the consumer. */
void tp_ring_publish(tp_ring *r, uint32_t seq);

/* @return : the consumer's tail as last validated by tp_ring_wait_free. */
uint32_t tp_ring_tail(const tp_ring *r);

/* For tests: moves an idle ring's counters (header and the producer's copies) to `seq`,
 * to exercise the wrap of the 32-bit sequence numbers. */
void tp__ring_rebase(tp_ring *r, uint32_t seq);

/* ---- consumer (client) */

typedef struct tp_ring_view tp_ring_view;

/* Maps the ring in `fd` (the view takes the descriptor over and closes it on detach, or
 * on failure). Checks the memfd is sealed against shrinking, and the header: magic,
 * version, slot count (a power of two), slot size, and that total_bytes equals the file
 * size.
 * @return : 0, TP_EPROTOCOL (bad header or seals), or -errno. */
int tp_ring_attach(tp_ring_view **out, int fd, tp_error *err);
void tp_ring_detach(tp_ring_view *v); /* NULL allowed */
uint32_t tp_ring_view_nslots(const tp_ring_view *v);
uint64_t tp_ring_view_slot_bytes(const tp_ring_view *v);
/* The whole mapping (header and slots), page-aligned: for page-locking it. */
void *tp_ring_view_mapping(const tp_ring_view *v, size_t *bytes);

/* Waits until sequence number `seq` is published (head - seq in 1..nslots), at most
 * timeout_ms (-1: no limit; waits are sliced so callers may poll in between).
 * @return : 0, -ETIMEDOUT, or TP_EPROTOCOL when head is out of range. */
int tp_ring_wait_ready(tp_ring_view *v, uint32_t seq, int timeout_ms);

/* The slot for `seq` (read-only for the consumer) and its descriptor. Call
 * tp_batch_desc_check before trusting any of it. */
const unsigned char *tp_ring_view_slot(const tp_ring_view *v, uint32_t seq);

/* Releases every slot before `upto` (tail = upto) and wakes the producer. */
void tp_ring_release(tp_ring_view *v, uint32_t upto);

/* Checks a descriptor against the slot size: magic, status, counts, NUL-terminated
 * names and error, dtypes and dims, each field's bytes equal to its shape's product times
 * the dtype size, shape[0] == samples, and every array (ids, fields) inside
 * [sizeof(tp_batch_desc), slot_bytes) without overflow. @return : 0 or TP_EPROTOCOL. */
int tp_batch_desc_check(const tp_batch_desc *d, uint64_t slot_bytes, tp_error *err);

#endif
