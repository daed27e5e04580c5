/* The shared-memory batch ring (see ring.h for the layout and the trust model): creating
 * and sealing the memfd on the daemon's side, attaching and checking it on the client's,
 * the two futex waits, and the descriptor check that keeps a client inside its mapping
 * whatever the daemon wrote. Each side keeps its own copy of the geometry, because the
 * peer can rewrite the header at any time; only the two counters are read from shared
 * memory after setup, and each reader checks them against what it knows. */
#include "ring.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Static_assert(offsetof(tp_ring_header, head) == 64, "head on its own cache line at 64");
_Static_assert(offsetof(tp_ring_header, tail) == 128, "tail on its own cache line at 128");
_Static_assert(sizeof(tp_ring_header) <= TP_RING_HEADER_BYTES, "header fits its page");
_Static_assert(sizeof(tp_batch_desc) <= 4096, "a descriptor fits the smallest slot");
/* A lock-based atomic would put its lock in this process, not in the shared mapping. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
/* Slot offsets and the mapping length are size_t; a ring may span terabytes. */
_Static_assert(sizeof(size_t) == 8, "the ring needs a 64-bit address space");

/* Longest single FUTEX_WAIT: a peer that died without waking us is noticed this often. */
#define SLICE_NS (50 * INT64_C(1000000))
#define FOREVER INT64_MAX

struct tp_ring {
    int fd;
    tp_ring_header *hdr; /* the mapping starts with the header */
    uint32_t nslots;
    uint64_t slot_bytes, total_bytes;
    uint32_t head; /* the last value stored to hdr->head */
    uint32_t tail; /* the last consumer tail accepted by tp_ring_wait_free */
};

struct tp_ring_view {
    int fd;
    tp_ring_header *hdr;
    uint32_t nslots;
    uint64_t slot_bytes;
    uint64_t map_bytes; /* the file size, as mapped */
};

/* Test hook, not part of ring.h: restarts an idle ring's counters at `seq` (both in the
 * header and in the producer's copies), so tests can cross the 32-bit wrap without
 * pushing four billion batches. Call it before the consumer attaches. */
void tp__ring_rebase(tp_ring *r, uint32_t seq);

/* ---- shared helpers */

static int sys_error(tp_error *err, const char *call)
{
    int e = errno;
    return tp__error_set(err, -e, "ring: %s: %s", call, strerror(e));
}

/* @return : NULL when the geometry is usable, else what is wrong with it. The slot count
 *           must divide 2^32: slot q % nslots must not jump when the counters wrap. */
static const char *bad_geometry(uint32_t nslots, uint64_t slot_bytes)
{
    if (nslots < 1 || nslots > TP_RING_MAX_SLOTS)
        return "slot count not in 1..256";
    if (nslots & (nslots - 1))
        return "slot count not a power of two";
    if (slot_bytes % 4096)
        return "slot size not a multiple of 4096";
    if (slot_bytes < sizeof(tp_batch_desc))
        return "slot size too small for a batch descriptor";
    if (slot_bytes > TP_RING_MAX_SLOT_BYTES)
        return "slot size above 16 GiB";
    return NULL;
}

static unsigned char *slot_at(tp_ring_header *hdr, uint32_t nslots, uint64_t slot_bytes,
                              uint32_t seq)
{
    return (unsigned char *)hdr + TP_RING_HEADER_BYTES + (uint64_t)(seq % nslots) * slot_bytes;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t deadline_after(int timeout_ms)
{
    assert(timeout_ms >= -1);
    return timeout_ms < 0 ? FOREVER : now_ns() + (int64_t)timeout_ms * 1000000;
}

/* Sleeps while `*word` still holds `seen`, for at most one slice and never past the
 * deadline. The futex is not private: the word lives in memory shared with another
 * process. @return : 0 (look again), -ETIMEDOUT, or -errno. */
static int wait_slice(_Atomic uint32_t *word, uint32_t seen, int64_t deadline)
{
    int64_t left = deadline == FOREVER ? SLICE_NS : deadline - now_ns();
    if (left <= 0)
        return -ETIMEDOUT;
    left = TP_MIN(left, SLICE_NS);
    struct timespec ts = {.tv_sec = (time_t)(left / 1000000000),
                          .tv_nsec = (long)(left % 1000000000)};
    if (syscall(SYS_futex, (void *)word, FUTEX_WAIT, seen, &ts, NULL, 0) == 0)
        return 0;
    /* EAGAIN: the word changed before we slept; ETIMEDOUT: the slice ended. */
    if (errno == EAGAIN || errno == EINTR || errno == ETIMEDOUT)
        return 0;
    return -errno;
}

static void store_and_wake(_Atomic uint32_t *word, uint32_t value)
{
    atomic_store_explicit(word, value, memory_order_release);
    syscall(SYS_futex, (void *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* ---- producer */

static void write_header(tp_ring *r)
{
    tp_ring_header *h = r->hdr;
    h->magic = TP_RING_MAGIC;
    h->version = TP_RING_VERSION;
    h->nslots = r->nslots;
    h->reserved = 0;
    h->slot_bytes = r->slot_bytes;
    h->total_bytes = r->total_bytes;
    atomic_store_explicit(&h->head, 0, memory_order_relaxed);
    atomic_store_explicit(&h->tail, 0, memory_order_relaxed);
}

/* Seals last: the header is written through the mapping, which the seals do not stop,
 * but F_SEAL_SEAL makes the size seals permanent before the fd can leave this process. */
static int map_new(tp_ring *r, tp_error *err)
{
    r->fd = memfd_create("turbopump-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (r->fd < 0)
        return sys_error(err, "memfd_create");
    if (ftruncate(r->fd, (off_t)r->total_bytes) < 0)
        return sys_error(err, "ftruncate");
    void *p = mmap(NULL, r->total_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
    if (p == MAP_FAILED)
        return sys_error(err, "mmap");
    r->hdr = p;
    write_header(r);
    if (fcntl(r->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        return sys_error(err, "fcntl(F_ADD_SEALS)");
    return 0;
}

int tp_ring_create(tp_ring **out, uint32_t nslots, uint64_t slot_bytes, tp_error *err)
{
    *out = NULL;
    const char *bad = bad_geometry(nslots, slot_bytes);
    if (bad)
        return tp__error_set(err, TP_EUSAGE, "ring: %s (%u slots of %llu bytes)", bad, nslots,
                             (unsigned long long)slot_bytes);
    tp_ring *r = calloc(1, sizeof(*r));
    if (!r)
        return tp__error_set(err, -ENOMEM, "ring: out of memory");
    r->fd = -1;
    r->nslots = nslots;
    r->slot_bytes = slot_bytes;
    r->total_bytes = TP_RING_HEADER_BYTES + (uint64_t)nslots * slot_bytes;
    int rc = map_new(r, err);
    if (rc < 0) {
        tp_ring_destroy(r);
        return rc;
    }
    *out = r;
    return 0;
}

void tp_ring_destroy(tp_ring *r)
{
    if (!r)
        return;
    if (r->hdr)
        munmap(r->hdr, r->total_bytes);
    if (r->fd >= 0)
        close(r->fd);
    free(r);
}

int tp_ring_fd(const tp_ring *r) { return r->fd; }
uint32_t tp_ring_nslots(const tp_ring *r) { return r->nslots; }
uint64_t tp_ring_slot_bytes(const tp_ring *r) { return r->slot_bytes; }
uint64_t tp_ring_total_bytes(const tp_ring *r) { return r->total_bytes; }
uint32_t tp_ring_tail(const tp_ring *r) { return r->tail; }

unsigned char *tp_ring_slot(tp_ring *r, uint32_t seq)
{
    return slot_at(r->hdr, r->nslots, r->slot_bytes, seq);
}

/* A released count can only move forward, and only over slots we published: measured
 * from the last accepted tail, the new one may not pass head. */
static int accept_tail(tp_ring *r, uint32_t tail)
{
    if ((uint32_t)(tail - r->tail) > (uint32_t)(r->head - r->tail))
        return TP_EPROTOCOL;
    r->tail = tail;
    return 0;
}

int tp_ring_wait_free(tp_ring *r, uint32_t seq, int timeout_ms)
{
    /* seq == head + nslots could only be freed by releasing unpublished slots. */
    assert((uint32_t)(seq - r->head) < r->nslots);
    int64_t deadline = deadline_after(timeout_ms);
    for (;;) {
        uint32_t tail = atomic_load_explicit(&r->hdr->tail, memory_order_acquire);
        TP_TRY(accept_tail(r, tail));
        if ((uint32_t)(seq - tail) < r->nslots)
            return 0;
        TP_TRY(wait_slice(&r->hdr->tail, tail, deadline));
    }
}

void tp_ring_publish(tp_ring *r, uint32_t seq)
{
    assert((uint32_t)(seq - r->head) < r->nslots); /* forward, never past the ring */
    assert((uint32_t)(seq - r->tail) < r->nslots); /* tp_ring_wait_free saw it free */
    r->head = seq + 1;
    store_and_wake(&r->hdr->head, r->head);
}

void tp_ring_reset(tp_ring *r)
{
    r->head = r->tail = 0;
    write_header(r);
}

void tp__ring_rebase(tp_ring *r, uint32_t seq)
{
    assert(r->head == r->tail);
    r->head = r->tail = seq;
    atomic_store_explicit(&r->hdr->head, seq, memory_order_release);
    atomic_store_explicit(&r->hdr->tail, seq, memory_order_release);
}

/* ---- consumer */

static int check_file(int fd, uint64_t *size, tp_error *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return sys_error(err, "fstat");
    if (!S_ISREG(st.st_mode))
        return tp__error_set(err, TP_EPROTOCOL, "ring: the descriptor is not a memfd");
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 && errno == EINVAL)
        return tp__error_set(err, TP_EPROTOCOL, "ring: the descriptor is not a sealable memfd");
    if (seals < 0)
        return sys_error(err, "fcntl(F_GET_SEALS)");
    /* Without these seals the daemon could shrink the file under our mapping: SIGBUS. */
    if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
        return tp__error_set(err, TP_EPROTOCOL,
                             "ring: memfd not sealed against shrinking and growing (seals %#x)",
                             (unsigned)seals);
    uint64_t most = TP_RING_HEADER_BYTES + TP_RING_MAX_SLOTS * TP_RING_MAX_SLOT_BYTES;
    if (st.st_size < TP_RING_HEADER_BYTES + 4096 || (uint64_t)st.st_size > most)
        return tp__error_set(err, TP_EPROTOCOL, "ring: file size %lld out of range",
                             (long long)st.st_size);
    *size = (uint64_t)st.st_size;
    return 0;
}

/* Reads the geometry once through a volatile pointer, so the values checked are the
 * values kept even if the daemon rewrites the header meanwhile. */
static int check_header(tp_ring_view *v, tp_error *err)
{
    const volatile tp_ring_header *h = v->hdr;
    uint32_t magic = h->magic, version = h->version, nslots = h->nslots;
    uint64_t slot_bytes = h->slot_bytes, total = h->total_bytes;
    if (magic != TP_RING_MAGIC)
        return tp__error_set(err, TP_EPROTOCOL, "ring header: bad magic %#x", magic);
    if (version != TP_RING_VERSION)
        return tp__error_set(err, TP_EPROTOCOL, "ring header: version %u, expected %u",
                             version, TP_RING_VERSION);
    const char *bad = bad_geometry(nslots, slot_bytes);
    if (bad)
        return tp__error_set(err, TP_EPROTOCOL, "ring header: %s (%u slots of %llu bytes)", bad,
                             nslots, (unsigned long long)slot_bytes);
    uint64_t want;
    if (__builtin_mul_overflow((uint64_t)nslots, slot_bytes, &want) ||
        __builtin_add_overflow(want, TP_RING_HEADER_BYTES, &want) || want != total ||
        total != v->map_bytes)
        return tp__error_set(err, TP_EPROTOCOL,
                             "ring header: total_bytes %llu does not match %u slots of %llu "
                             "bytes and a file of %llu bytes", (unsigned long long)total,
                             nslots, (unsigned long long)slot_bytes,
                             (unsigned long long)v->map_bytes);
    v->nslots = nslots;
    v->slot_bytes = slot_bytes;
    return 0;
}

/* Writable: the consumer stores tail into the header. */
static int map_existing(tp_ring_view *v, tp_error *err)
{
    uint64_t size = 0;
    TP_TRY(check_file(v->fd, &size, err));
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (p == MAP_FAILED)
        return sys_error(err, "mmap");
    v->hdr = p;
    v->map_bytes = size;
    return check_header(v, err);
}

void *tp_ring_view_mapping(const tp_ring_view *v, size_t *bytes)
{
    *bytes = (size_t)v->map_bytes;
    return v->hdr;
}

int tp_ring_attach(tp_ring_view **out, int fd, tp_error *err)
{
    *out = NULL;
    tp_ring_view *v = calloc(1, sizeof(*v));
    if (!v) {
        close(fd);
        return tp__error_set(err, -ENOMEM, "ring: out of memory");
    }
    v->fd = fd;
    int rc = map_existing(v, err);
    if (rc < 0) {
        tp_ring_detach(v);
        return rc;
    }
    *out = v;
    return 0;
}

void tp_ring_detach(tp_ring_view *v)
{
    if (!v)
        return;
    if (v->hdr)
        munmap(v->hdr, v->map_bytes);
    close(v->fd);
    free(v);
}

uint32_t tp_ring_view_nslots(const tp_ring_view *v) { return v->nslots; }
uint64_t tp_ring_view_slot_bytes(const tp_ring_view *v) { return v->slot_bytes; }

const unsigned char *tp_ring_view_slot(const tp_ring_view *v, uint32_t seq)
{
    return slot_at(v->hdr, v->nslots, v->slot_bytes, seq);
}

/* The consumer asks for at most nslots past its tail, and a sane head lies between that
 * tail and tail + nslots. So head is either ahead of seq by 1..nslots (ready) or behind
 * it by less than nslots (not yet); anything else was never a valid head. */
int tp_ring_wait_ready(tp_ring_view *v, uint32_t seq, int timeout_ms)
{
    int64_t deadline = deadline_after(timeout_ms);
    for (;;) {
        uint32_t head = atomic_load_explicit(&v->hdr->head, memory_order_acquire);
        if ((uint32_t)(head - seq - 1) < v->nslots)
            return 0;
        if ((uint32_t)(seq - head) >= v->nslots)
            return TP_EPROTOCOL;
        TP_TRY(wait_slice(&v->hdr->head, head, deadline));
    }
}

void tp_ring_release(tp_ring_view *v, uint32_t upto)
{
    store_and_wake(&v->hdr->tail, upto);
}

/* ---- descriptors */

/* An array of `bytes` at `offset` lies after the descriptor and ends inside the slot. */
static bool array_fits(uint64_t offset, uint64_t bytes, uint64_t slot_bytes)
{
    uint64_t end;
    return offset >= sizeof(tp_batch_desc) && !__builtin_add_overflow(offset, bytes, &end) &&
           end <= slot_bytes;
}

static int check_field(const tp_batch_desc *d, uint32_t i, uint64_t slot_bytes, tp_error *err)
{
    const tp_ring_field *f = &d->fields[i];
    if (!memchr(f->name, 0, sizeof(f->name)))
        return tp__error_set(err, TP_EPROTOCOL, "batch field %u: name not NUL-terminated", i);
    uint32_t dtype = f->dtype & TP_RING_DTYPE_MASK;
    if (tp_dtype_size((tp_dtype)dtype) == 0 ||
        (f->dtype & ~(TP_RING_DTYPE_MASK | TP_RING_FIELD_IMAGE)))
        return tp__error_set(err, TP_EPROTOCOL, "batch field %u (%s): bad dtype %u", i, f->name,
                             f->dtype);
    if (f->ndim < 1 || f->ndim > TP_RING_MAX_DIMS)
        return tp__error_set(err, TP_EPROTOCOL, "batch field %u (%s): ndim %u not in 1..%u", i,
                             f->name, f->ndim, (unsigned)TP_RING_MAX_DIMS);
    if (f->shape[0] != (int64_t)d->samples)
        return tp__error_set(err, TP_EPROTOCOL, "batch field %u (%s): shape[0] %lld != %u samples",
                             i, f->name, (long long)f->shape[0], d->samples);
    uint64_t bytes = tp_dtype_size((tp_dtype)dtype);
    for (uint32_t k = 0; k < f->ndim; k++) {
        if (f->shape[k] < 0)
            return tp__error_set(err, TP_EPROTOCOL, "batch field %u (%s): negative dimension %u",
                                 i, f->name, k);
        if (__builtin_mul_overflow(bytes, (uint64_t)f->shape[k], &bytes))
            return tp__error_set(err, TP_EPROTOCOL, "batch field %u (%s): shape overflows", i,
                                 f->name);
    }
    if (bytes != f->bytes)
        return tp__error_set(err, TP_EPROTOCOL, "batch field %u (%s): %llu bytes, shape says %llu",
                             i, f->name, (unsigned long long)f->bytes, (unsigned long long)bytes);
    if (f->offset % 64)
        return tp__error_set(err, TP_EPROTOCOL, "batch field %u (%s): offset %llu not 64-byte "
                             "aligned", i, f->name, (unsigned long long)f->offset);
    if (!array_fits(f->offset, f->bytes, slot_bytes))
        return tp__error_set(err, TP_EPROTOCOL, "batch field %u (%s): %llu bytes at %llu outside "
                             "the slot", i, f->name, (unsigned long long)f->bytes,
                             (unsigned long long)f->offset);
    return 0;
}

int tp_batch_desc_check(const tp_batch_desc *d, uint64_t slot_bytes, tp_error *err)
{
    assert(slot_bytes >= sizeof(tp_batch_desc));
    if (d->magic != TP_BATCH_MAGIC)
        return tp__error_set(err, TP_EPROTOCOL, "batch descriptor: bad magic %#x", d->magic);
    if (d->status > 0)
        return tp__error_set(err, TP_EPROTOCOL, "batch descriptor: positive status %d", d->status);
    if (!memchr(d->error, 0, sizeof(d->error)))
        return tp__error_set(err, TP_EPROTOCOL, "batch descriptor: error not NUL-terminated");
    if (d->status < 0) /* an error report: nothing else is meant to be read */
        return 0;
    if (d->nfields > TP_RING_MAX_FIELDS)
        return tp__error_set(err, TP_EPROTOCOL, "batch descriptor: %u fields, at most %u",
                             d->nfields, TP_RING_MAX_FIELDS);
    if (d->ids_offset % 8 || !array_fits(d->ids_offset, (uint64_t)d->samples * 8, slot_bytes))
        return tp__error_set(err, TP_EPROTOCOL, "batch descriptor: ids of %u samples at %llu "
                             "misaligned or outside the slot", d->samples,
                             (unsigned long long)d->ids_offset);
    for (uint32_t i = 0; i < d->nfields; i++)
        TP_TRY(check_field(d, i, slot_bytes, err));
    return 0;
}
