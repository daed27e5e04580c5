/* Unit tests of the shared-memory ring (shm/ring.h): geometry and argument checks, the
 * seals and header checks a client relies on when it attaches, batches streamed between
 * two threads and between two processes across the 32-bit counter wrap, timeouts,
 * counters written by a hostile peer, and the descriptor check against a table of
 * corruptions. */
#include "testutil.h"

#include "ring.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { NSLOTS = 4, SLOT = 8192, LEASE = 2, SAMPLES = 8, WIDTH = 16, NBATCH = 100000 };
#define TOTAL (TP_RING_HEADER_BYTES + NSLOTS * SLOT)
#define IDS_OFF ((sizeof(tp_batch_desc) + 63) & ~(size_t)63)
#define DATA_OFF (IDS_OFF + 64)
#define DATA_BYTES (SAMPLES * WIDTH * 4)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool fd_is_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

static void create_pair(tp_ring **r, tp_ring_view **v, uint32_t start)
{
    tp_error err;
    ck_assert_int_eq(tp_ring_create(r, NSLOTS, SLOT, &err), 0);
    tp__ring_rebase(*r, start);
    ck_assert_int_eq(tp_ring_attach(v, dup(tp_ring_fd(*r)), &err), 0);
}

/* A memfd holding a ring header of the test's choosing, for the attach checks. */
static int make_memfd(const tp_ring_header *h, uint64_t file_bytes, unsigned seals)
{
    int fd = memfd_create("check-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)file_bytes), 0);
    ck_assert_int_eq(pwrite(fd, h, sizeof(*h), 0), (ssize_t)sizeof(*h));
    if (seals)
        ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
    return fd;
}

static void valid_header(tp_ring_header *h)
{
    memset(h, 0, sizeof(*h));
    h->magic = TP_RING_MAGIC;
    h->version = TP_RING_VERSION;
    h->nslots = NSLOTS;
    h->slot_bytes = SLOT;
    h->total_bytes = TOTAL;
}

/* ---- geometry */

START_TEST(test_create_attach)
{
    tp_ring *r;
    tp_error err;
    ck_assert_int_eq(tp_ring_create(&r, NSLOTS, SLOT, &err), 0);
    ck_assert_uint_eq(tp_ring_nslots(r), NSLOTS);
    ck_assert_uint_eq(tp_ring_slot_bytes(r), SLOT);
    ck_assert_uint_eq(tp_ring_total_bytes(r), TOTAL);
    int fd = tp_ring_fd(r);
    ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    ck_assert_int_eq(st.st_size, TOTAL);

    tp_ring_header h;
    ck_assert_int_eq(pread(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
    ck_assert_uint_eq(h.magic, TP_RING_MAGIC);
    ck_assert_uint_eq(h.version, TP_RING_VERSION);
    ck_assert_uint_eq(h.nslots, NSLOTS);
    ck_assert_uint_eq(h.slot_bytes, SLOT);
    ck_assert_uint_eq(h.total_bytes, TOTAL);
    ck_assert_uint_eq(atomic_load(&h.head), 0);
    ck_assert_uint_eq(atomic_load(&h.tail), 0);

    int vfd = dup(fd);
    tp_ring_view *v;
    ck_assert_int_eq(tp_ring_attach(&v, vfd, &err), 0);
    ck_assert_uint_eq(tp_ring_view_nslots(v), NSLOTS);
    ck_assert_uint_eq(tp_ring_view_slot_bytes(v), SLOT);

    /* Slot q % nslots, after the header page; two mappings of the same bytes. */
    ck_assert_ptr_eq(tp_ring_slot(r, 5), tp_ring_slot(r, 1));
    ck_assert_int_eq(tp_ring_slot(r, 2) - tp_ring_slot(r, 1), SLOT);
    tp_test_fill(tp_ring_slot(r, 5), SLOT, 5, 0);
    ck_assert_ptr_ne(tp_ring_view_slot(v, 5), tp_ring_slot(r, 5));
    ck_assert_int_eq(memcmp(tp_ring_view_slot(v, 5), tp_ring_slot(r, 5), SLOT), 0);
    tp_ring_slot(r, 0)[0] = 0xa5;
    unsigned char b = 0;
    ck_assert_int_eq(pread(fd, &b, 1, TP_RING_HEADER_BYTES), 1);
    ck_assert_uint_eq(b, 0xa5);

    tp_ring_detach(v);
    ck_assert(!fd_is_open(vfd)); /* the view owned its descriptor */
    ck_assert(fd_is_open(fd));   /* and left the ring's alone */
    tp_ring_destroy(r);
    ck_assert(!fd_is_open(fd));
    tp_ring_destroy(NULL);
    tp_ring_detach(NULL);
}
END_TEST

START_TEST(test_create_bad_args)
{
    static const struct {
        uint32_t nslots;
        uint64_t slot_bytes;
        const char *msg;
    } bad[] = {
        {0, SLOT, "1..256"},
        {TP_RING_MAX_SLOTS + 1, SLOT, "1..256"},
        {3, SLOT, "power of two"},
        {NSLOTS, SLOT + 1, "multiple of 4096"},
        {NSLOTS, 6000, "multiple of 4096"},
        {NSLOTS, 0, "too small"},
        {NSLOTS, TP_RING_MAX_SLOT_BYTES + 4096, "16 GiB"},
    };
    for (size_t i = 0; i < TP_ARRAY_LEN(bad); i++) {
        tp_error err = {0};
        tp_ring *r = (void *)&err; /* must come back NULL */
        ck_assert_int_eq(tp_ring_create(&r, bad[i].nslots, bad[i].slot_bytes, &err), TP_EUSAGE);
        ck_assert_ptr_null(r);
        ck_assert_int_eq(err.code, TP_EUSAGE);
        ck_assert_msg(strstr(err.msg, bad[i].msg), "'%s' lacks '%s'", err.msg, bad[i].msg);
    }
    /* The extremes of what is allowed. */
    tp_ring *r;
    tp_error err;
    ck_assert_int_eq(tp_ring_create(&r, 1, 4096, &err), 0);
    tp_ring_destroy(r);
    ck_assert_int_eq(tp_ring_create(&r, TP_RING_MAX_SLOTS, 4096, &err), 0);
    tp_ring_destroy(r);
}
END_TEST

/* ---- seals and header checks */

START_TEST(test_seals)
{
    tp_ring *r;
    tp_error err;
    ck_assert_int_eq(tp_ring_create(&r, NSLOTS, SLOT, &err), 0);
    int fd = tp_ring_fd(r);
    int seals = fcntl(fd, F_GET_SEALS);
    ck_assert_int_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                     F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    errno = 0;
    ck_assert_int_eq(ftruncate(fd, TOTAL - 4096), -1);
    ck_assert_int_eq(errno, EPERM);
    errno = 0;
    ck_assert_int_eq(ftruncate(fd, TOTAL + 4096), -1);
    ck_assert_int_eq(errno, EPERM);
    errno = 0;
    ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1); /* F_SEAL_SEAL: no more seals */
    ck_assert_int_eq(errno, EPERM);
    tp_ring_destroy(r);
}
END_TEST

enum {
    HC_VALID, HC_ALL_SEALS, HC_MAGIC, HC_VERSION, HC_NSLOTS_0, HC_NSLOTS_HUGE, HC_NSLOTS_3,
    HC_SLOT_ODD, HC_SLOT_SMALL, HC_SLOT_HUGE, HC_TOTAL, HC_FILE_BIGGER, HC_FILE_TINY,
    HC_NO_SEALS, HC_SHRINK_ONLY, HC_GROW_ONLY, HC_COUNT
};

/* What each corruption must be reported as; NULL: the header is valid. */
static const char *const header_msg[HC_COUNT] = {
    [HC_MAGIC] = "magic",          [HC_VERSION] = "version",
    [HC_NSLOTS_0] = "1..256",      [HC_NSLOTS_HUGE] = "1..256",
    [HC_NSLOTS_3] = "power of two", [HC_SLOT_ODD] = "multiple of 4096",
    [HC_SLOT_SMALL] = "too small", [HC_SLOT_HUGE] = "16 GiB",
    [HC_TOTAL] = "total_bytes",    [HC_FILE_BIGGER] = "total_bytes",
    [HC_FILE_TINY] = "file size",  [HC_NO_SEALS] = "not sealed",
    [HC_SHRINK_ONLY] = "not sealed", [HC_GROW_ONLY] = "not sealed",
};

static void corrupt_header(int which, tp_ring_header *h, uint64_t *file, unsigned *seals)
{
    switch (which) {
    case HC_ALL_SEALS: *seals |= F_SEAL_SEAL; break;
    case HC_MAGIC: h->magic ^= 0x100; break;
    case HC_VERSION: h->version = TP_RING_VERSION + 1; break;
    case HC_NSLOTS_0: h->nslots = 0; break;
    case HC_NSLOTS_HUGE: h->nslots = 0x80000000u; break;
    case HC_NSLOTS_3: /* consistent sizes, but slot q % 3 jumps when the counters wrap */
        h->nslots = 3, h->total_bytes = *file = TP_RING_HEADER_BYTES + 3 * SLOT;
        break;
    case HC_SLOT_ODD: h->slot_bytes = SLOT - 512, h->total_bytes = *file = TOTAL - 4 * 512; break;
    case HC_SLOT_SMALL:
        h->slot_bytes = 0, h->total_bytes = *file = TP_RING_HEADER_BYTES + 4096;
        break;
    case HC_SLOT_HUGE: h->slot_bytes = TP_RING_MAX_SLOT_BYTES * 2; break;
    case HC_TOTAL: h->total_bytes += 4096; break;
    case HC_FILE_BIGGER: *file += 4096; break;
    case HC_FILE_TINY: *file = TP_RING_HEADER_BYTES; break;
    case HC_NO_SEALS: *seals = 0; break;
    case HC_SHRINK_ONLY: *seals = F_SEAL_SHRINK; break;
    case HC_GROW_ONLY: *seals = F_SEAL_GROW; break;
    }
}

START_TEST(test_attach_header)
{
    tp_ring_header h;
    valid_header(&h);
    uint64_t file = TOTAL;
    unsigned seals = F_SEAL_SHRINK | F_SEAL_GROW;
    corrupt_header(_i, &h, &file, &seals);
    int fd = make_memfd(&h, file, seals);
    tp_ring_view *v = (void *)&h; /* must come back NULL on failure */
    tp_error err = {0};
    int rc = tp_ring_attach(&v, fd, &err);
    if (!header_msg[_i]) {
        ck_assert_msg(rc == 0, "case %d rejected: %s", _i, err.msg);
        ck_assert_uint_eq(tp_ring_view_nslots(v), NSLOTS);
        tp_ring_detach(v);
    } else {
        ck_assert_msg(rc == TP_EPROTOCOL, "case %d: got %d", _i, rc);
        ck_assert_ptr_null(v);
        ck_assert_int_eq(err.code, TP_EPROTOCOL);
        ck_assert_msg(strstr(err.msg, header_msg[_i]), "case %d: '%s' lacks '%s'", _i, err.msg,
                      header_msg[_i]);
    }
    ck_assert(!fd_is_open(fd)); /* closed on failure and on detach */
}
END_TEST

/* A valid header in a plain file, or no file at all, is not a ring. */
START_TEST(test_attach_not_memfd)
{
    char *dir = tp_test_mkdtemp();
    char *path = tp_test_path(dir, "ring");
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    tp_ring_header h;
    valid_header(&h);
    ck_assert_int_eq(ftruncate(fd, TOTAL), 0);
    ck_assert_int_eq(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
    tp_ring_view *v;
    tp_error err = {0};
    ck_assert_int_eq(tp_ring_attach(&v, fd, &err), TP_EPROTOCOL);
    ck_assert_msg(strstr(err.msg, "memfd"), "'%s'", err.msg);
    ck_assert(!fd_is_open(fd));

    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(tp_ring_attach(&v, p[0], &err), TP_EPROTOCOL);
    ck_assert_msg(strstr(err.msg, "memfd"), "'%s'", err.msg);
    ck_assert(!fd_is_open(p[0]));
    close(p[1]);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

/* ---- streaming batches */

/* Batch i: ids i * SAMPLES + k and an int32 array [SAMPLES, WIDTH] of bytes determined by
 * i; the descriptor's epoch carries the payload's checksum, so a torn slot shows. */
static void fill_batch(unsigned char *slot, uint64_t i)
{
    tp_batch_desc *d = (tp_batch_desc *)slot;
    memset(d, 0, sizeof(*d));
    d->magic = TP_BATCH_MAGIC;
    d->batch = i;
    d->samples = SAMPLES;
    d->nfields = 1;
    d->ids_offset = IDS_OFF;
    tp_ring_field *f = &d->fields[0];
    strcpy(f->name, "x");
    f->dtype = TP_DTYPE_INT32;
    f->ndim = 2;
    f->shape[0] = SAMPLES;
    f->shape[1] = WIDTH;
    f->offset = DATA_OFF;
    f->bytes = DATA_BYTES;
    uint64_t *ids = (uint64_t *)(slot + IDS_OFF);
    for (uint64_t k = 0; k < SAMPLES; k++)
        ids[k] = i * SAMPLES + k;
    tp_test_fill(slot + DATA_OFF, DATA_BYTES, i, 1);
    d->epoch = tp__hash64(slot + DATA_OFF, DATA_BYTES);
}

/* @return : NULL when the slot holds batch i intact, else what is wrong. */
static const char *check_batch(const unsigned char *slot, uint64_t i)
{
    const tp_batch_desc *d = (const tp_batch_desc *)slot;
    if (tp_batch_desc_check(d, SLOT, NULL) < 0)
        return "descriptor rejected";
    if (d->batch != i)
        return "wrong batch: lost, duplicated or overwritten";
    if (d->samples != SAMPLES || d->nfields != 1 || d->fields[0].bytes != DATA_BYTES)
        return "wrong geometry";
    const uint64_t *ids = (const uint64_t *)(slot + d->ids_offset);
    for (uint64_t k = 0; k < SAMPLES; k++)
        if (ids[k] != i * SAMPLES + k)
            return "wrong sample ids";
    const unsigned char *data = slot + d->fields[0].offset;
    if (tp__hash64(data, DATA_BYTES) != d->epoch)
        return "payload checksum mismatch";
    unsigned char want[DATA_BYTES];
    tp_test_fill(want, DATA_BYTES, i, 1);
    return memcmp(want, data, DATA_BYTES) ? "payload is not batch i's" : NULL;
}

/* A stream that works takes seconds (10 under TSan); lost wakes would make each handoff wait out
 * a 50 ms slice, so both ends give up after this long with a message that says so. */
#define STREAM_MS 60000
static const char *const too_slow = "too slow: are futex wakes lost between mappings?";

/* Every third round fills two slots before publishing both with one store. */
static const char *produce(tp_ring *r, uint32_t start, uint64_t n)
{
    int64_t give_up = now_ms() + STREAM_MS;
    for (uint64_t i = 0; i < n;) {
        if (i % 1024 == 0 && now_ms() > give_up)
            return too_slow;
        uint64_t k = i % 3 == 2 && i + 1 < n ? 2 : 1;
        for (uint64_t j = i; j < i + k; j++) {
            if (tp_ring_wait_free(r, start + (uint32_t)j, 10000) != 0)
                return "wait_free failed";
            fill_batch(tp_ring_slot(r, start + (uint32_t)j), j);
        }
        i += k;
        tp_ring_publish(r, start + (uint32_t)(i - 1));
    }
    /* Free again once the consumer let go of everything. */
    if (tp_ring_wait_free(r, start + (uint32_t)n + NSLOTS - 1, 10000) != 0)
        return "the last slots were never released";
    return tp_ring_tail(r) == start + (uint32_t)n ? NULL : "final tail wrong";
}

/* Holds up to LEASE slots, checks the oldest is still intact as it lets it go, and now and
 * then releases everything it holds at once. */
static const char *consume(tp_ring_view *v, uint32_t start, uint64_t n)
{
    uint32_t tail = start;
    int64_t give_up = now_ms() + STREAM_MS;
    for (uint64_t i = 0; i < n; i++) {
        if (i % 1024 == 0 && now_ms() > give_up)
            return too_slow;
        uint32_t seq = start + (uint32_t)i;
        if (tp_ring_wait_ready(v, seq, 10000) != 0)
            return "wait_ready failed";
        const char *bad = check_batch(tp_ring_view_slot(v, seq), i);
        if (bad)
            return bad;
        if ((uint32_t)(seq + 1 - tail) < LEASE)
            continue;
        bad = check_batch(tp_ring_view_slot(v, tail), (uint32_t)(tail - start));
        if (bad)
            return bad;
        tail = i % 5 == 0 ? seq + 1 : tail + 1;
        tp_ring_release(v, tail);
    }
    tp_ring_release(v, start + (uint32_t)n);
    if (tp_ring_wait_ready(v, start + (uint32_t)n, 0) != -ETIMEDOUT)
        return "a batch after the last";
    return NULL;
}

typedef struct consumer_job {
    tp_ring_view *v;
    uint32_t start;
    const char *bad;
} consumer_job;

static void *consumer_thread(void *arg)
{
    consumer_job *j = arg;
    j->bad = consume(j->v, j->start, NBATCH);
    return NULL;
}

/* From 0, and from just below the wrap so that it happens mid-stream. */
static const uint32_t starts[] = {0, UINT32_MAX - NBATCH / 2};

START_TEST(test_threads)
{
    tp_ring *r;
    tp_ring_view *v;
    create_pair(&r, &v, starts[_i]);
    consumer_job j = {v, starts[_i], NULL};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, consumer_thread, &j), 0);
    const char *bad = produce(r, starts[_i], NBATCH);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_msg(!bad, "producer: %s", bad);
    ck_assert_msg(!j.bad, "consumer: %s", j.bad);
    tp_ring_detach(v);
    tp_ring_destroy(r);
}
END_TEST

/* The consumer in another process: were the futexes private, its wakes would be lost
 * (produce and consume then give up as too slow). */
START_TEST(test_processes)
{
    tp_ring *r;
    tp_error err;
    uint32_t start = starts[1];
    ck_assert_int_eq(tp_ring_create(&r, NSLOTS, SLOT, &err), 0);
    tp__ring_rebase(r, start);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        tp_ring_view *v;
        int rc = tp_ring_attach(&v, dup(tp_ring_fd(r)), &err);
        const char *bad = rc < 0 ? err.msg : consume(v, start, NBATCH);
        if (bad)
            fprintf(stderr, "consumer: %s\n", bad);
        _exit(bad ? 1 : 0);
    }
    const char *bad = produce(r, start, NBATCH);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(!bad, "producer: %s", bad);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "consumer failed (%#x)", status);
    tp_ring_destroy(r);
}
END_TEST

/* ---- timeouts */

START_TEST(test_timeouts)
{
    tp_ring *r;
    tp_ring_view *v;
    create_pair(&r, &v, 0);
    int64_t t0 = now_ms();
    ck_assert_int_eq(tp_ring_wait_ready(v, 0, 200), -ETIMEDOUT);
    int64_t ms = now_ms() - t0;
    ck_assert_int_ge(ms, 199);
    ck_assert_int_lt(ms, 2000);
    ck_assert_int_eq(tp_ring_wait_ready(v, 0, 0), -ETIMEDOUT);

    for (uint32_t seq = 0; seq < NSLOTS; seq++) {
        ck_assert_int_eq(tp_ring_wait_free(r, seq, 0), 0);
        tp_ring_publish(r, seq);
    }
    t0 = now_ms();
    ck_assert_int_eq(tp_ring_wait_free(r, NSLOTS, 200), -ETIMEDOUT); /* full */
    ms = now_ms() - t0;
    ck_assert_int_ge(ms, 199);
    ck_assert_int_lt(ms, 2000);
    ck_assert_int_eq(tp_ring_wait_ready(v, NSLOTS - 1, 0), 0);
    ck_assert_int_eq(tp_ring_wait_ready(v, NSLOTS, 0), -ETIMEDOUT);
    tp_ring_release(v, 1);
    ck_assert_int_eq(tp_ring_wait_free(r, NSLOTS, 0), 0);
    ck_assert_uint_eq(tp_ring_tail(r), 1);
    tp_ring_detach(v);
    tp_ring_destroy(r);
}
END_TEST

static void *publish_later(void *arg)
{
    tp_ring *r = arg;
    usleep(100 * 1000);
    if (tp_ring_wait_free(r, 0, 0) == 0)
        tp_ring_publish(r, 0);
    return NULL;
}

/* Timeout -1 waits for as long as it takes, across many slices. */
START_TEST(test_wait_forever)
{
    tp_ring *r;
    tp_ring_view *v;
    create_pair(&r, &v, 0);
    pthread_t t;
    int64_t t0 = now_ms();
    ck_assert_int_eq(pthread_create(&t, NULL, publish_later, r), 0);
    ck_assert_int_eq(tp_ring_wait_ready(v, 0, -1), 0);
    ck_assert_int_ge(now_ms() - t0, 99);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    tp_ring_detach(v);
    tp_ring_destroy(r);
}
END_TEST

/* ---- hostile peers */

/* Tails 0..head were accepted; these are not: one back, one past head, half a wrap away. */
static const uint32_t bad_tails[] = {1, 4, 2 + 0x80000000u};

START_TEST(test_hostile_consumer)
{
    tp_ring *r;
    tp_ring_view *v;
    create_pair(&r, &v, 0);
    for (uint32_t seq = 0; seq < 3; seq++) {
        ck_assert_int_eq(tp_ring_wait_free(r, seq, 0), 0);
        tp_ring_publish(r, seq);
    }
    tp_ring_release(v, 2);
    ck_assert_int_eq(tp_ring_wait_free(r, 3, 0), 0);
    ck_assert_uint_eq(tp_ring_tail(r), 2);
    tp_ring_release(v, bad_tails[_i]);
    ck_assert_int_eq(tp_ring_wait_free(r, 3, 0), TP_EPROTOCOL);
    ck_assert_int_eq(tp_ring_wait_free(r, 3, 100), TP_EPROTOCOL); /* at once, not after 100 ms */
    ck_assert_uint_eq(tp_ring_tail(r), 2);
    tp_ring_release(v, 3); /* a sane tail again is accepted */
    ck_assert_int_eq(tp_ring_wait_free(r, 3, 0), 0);
    ck_assert_uint_eq(tp_ring_tail(r), 3);
    tp_ring_detach(v);
    tp_ring_destroy(r);
}
END_TEST

/* The test plays the daemon and writes head itself. */
START_TEST(test_hostile_producer)
{
    static const struct {
        uint32_t seq, head;
        int want;
    } cases[] = {
        {0, NSLOTS, 0},                      /* ahead by nslots: the consumer's whole lease */
        {0, 1, 0},
        {0, 0, -ETIMEDOUT},                  /* not yet */
        {0, UINT32_MAX - NSLOTS + 2, -ETIMEDOUT}, /* behind by nslots - 1 */
        {0, NSLOTS + 1, TP_EPROTOCOL},       /* past anything published */
        {0, UINT32_MAX - NSLOTS + 1, TP_EPROTOCOL}, /* behind by nslots */
        {0, 0x80000000u, TP_EPROTOCOL},
        {UINT32_MAX - 1, NSLOTS - 2, 0},     /* ahead by nslots across the wrap */
        {UINT32_MAX - 1, NSLOTS - 1, TP_EPROTOCOL},
    };
    tp_ring_header h;
    valid_header(&h);
    int fd = make_memfd(&h, TOTAL, F_SEAL_SHRINK | F_SEAL_GROW);
    tp_ring_view *v;
    tp_error err;
    ck_assert_int_eq(tp_ring_attach(&v, dup(fd), &err), 0);
    for (size_t i = 0; i < TP_ARRAY_LEN(cases); i++) {
        uint32_t head = cases[i].head;
        ck_assert_int_eq(pwrite(fd, &head, 4, offsetof(tp_ring_header, head)), 4);
        ck_assert_msg(tp_ring_wait_ready(v, cases[i].seq, 0) == cases[i].want,
                      "seq %u, head %u: got %d, want %d", cases[i].seq, head,
                      tp_ring_wait_ready(v, cases[i].seq, 0), cases[i].want);
    }
    tp_ring_detach(v);
    close(fd);
}
END_TEST

/* ---- descriptors */

enum {
    DC_VALID, DC_IMAGE_FLAG, DC_EMPTY, DC_AT_END, DC_UNUSED_GARBAGE, DC_ERROR_REPORT, DC_MAGIC, DC_STATUS,
    DC_ERROR_UNTERMINATED, DC_REPORT_UNTERMINATED, DC_NFIELDS, DC_NAME, DC_DTYPE_0,
    DC_DTYPE_99, DC_DTYPE_FLAGS, DC_NDIM_0, DC_NDIM_BIG, DC_SHAPE0, DC_NEGATIVE, DC_SHAPE_OVERFLOW, DC_BYTES,
    DC_MISALIGNED, DC_OVER_DESC, DC_PAST_END, DC_OFFSET_OVERFLOW, DC_SECOND_FIELD, DC_IDS_PAST,
    DC_IDS_MISALIGNED, DC_IDS_OVER_DESC, DC_IDS_OVERFLOW, DC_COUNT
};

static const struct desc_case {
    const char *name;
    const char *msg; /* part of the expected message; NULL: the descriptor is valid */
} desc_cases[DC_COUNT] = {
    [DC_VALID] = {"valid", NULL},
    [DC_IMAGE_FLAG] = {"uint8 marked as decoded from an image", NULL},
    [DC_EMPTY] = {"empty batch", NULL},
    [DC_AT_END] = {"array ending at the slot end", NULL},
    [DC_UNUSED_GARBAGE] = {"garbage past nfields", NULL},
    [DC_ERROR_REPORT] = {"error report with garbage fields", NULL},
    [DC_MAGIC] = {"bad magic", "magic"},
    [DC_STATUS] = {"positive status", "status"},
    [DC_ERROR_UNTERMINATED] = {"unterminated error", "error not NUL"},
    [DC_REPORT_UNTERMINATED] = {"error report, unterminated error", "error not NUL"},
    [DC_NFIELDS] = {"17 fields", "fields, at most"},
    [DC_NAME] = {"unterminated name", "name not NUL"},
    [DC_DTYPE_0] = {"dtype 0", "bad dtype 0"},
    [DC_DTYPE_99] = {"dtype 99", "bad dtype 99"},
    [DC_DTYPE_FLAGS] = {"an unknown dtype flag", "bad dtype 513"},
    [DC_NDIM_0] = {"ndim 0", "ndim 0"},
    [DC_NDIM_BIG] = {"ndim 10", "ndim 10"},
    [DC_SHAPE0] = {"shape[0] != samples", "samples"},
    [DC_NEGATIVE] = {"two negative dims, product still right", "negative"},
    [DC_SHAPE_OVERFLOW] = {"shape product overflows", "shape overflows"},
    [DC_BYTES] = {"bytes != shape product", "shape says"},
    [DC_MISALIGNED] = {"offset not 64-byte aligned", "aligned"},
    [DC_OVER_DESC] = {"array over the descriptor", "outside the slot"},
    [DC_PAST_END] = {"array past the slot end", "outside the slot"},
    [DC_OFFSET_OVERFLOW] = {"offset + bytes overflows", "outside the slot"},
    [DC_SECOND_FIELD] = {"second field bad", "field 1"},
    [DC_IDS_PAST] = {"ids past the slot end", "ids"},
    [DC_IDS_MISALIGNED] = {"ids not 8-byte aligned", "ids"},
    [DC_IDS_OVER_DESC] = {"ids over the descriptor", "ids"},
    [DC_IDS_OVERFLOW] = {"ids offset + size overflows", "ids"},
};

/* Four samples: ids, a uint8 image [4, 8, 8, 3] and an int64 label [4]. */
static void valid_desc(tp_batch_desc *d)
{
    memset(d, 0, sizeof(*d));
    d->magic = TP_BATCH_MAGIC;
    d->samples = 4;
    d->nfields = 2;
    d->ids_offset = IDS_OFF;
    tp_ring_field *f = &d->fields[0];
    strcpy(f->name, "image");
    f->dtype = TP_DTYPE_UINT8;
    f->ndim = 4;
    f->shape[0] = 4, f->shape[1] = 8, f->shape[2] = 8, f->shape[3] = 3;
    f->offset = IDS_OFF + 64;
    f->bytes = 768;
    f = &d->fields[1];
    strcpy(f->name, "label");
    f->dtype = TP_DTYPE_INT64;
    f->ndim = 1;
    f->shape[0] = 4;
    f->offset = IDS_OFF + 64 + 768;
    f->bytes = 32;
}

static void corrupt_desc(tp_batch_desc *d, int which)
{
    tp_ring_field *f = &d->fields[0];
    switch (which) {
    case DC_EMPTY: d->samples = 0, d->nfields = 0; break;
    case DC_AT_END: f->offset = SLOT - 768; break;
    case DC_UNUSED_GARBAGE: memset(&d->fields[2], 0xff, sizeof(d->fields[2])); break;
    case DC_ERROR_REPORT:
        d->status = -5, d->nfields = 99, d->ids_offset = 3, f->dtype = 0;
        strcpy(d->error, "decoding sample 7 failed");
        break;
    case DC_MAGIC: d->magic = TP_RING_MAGIC; break;
    case DC_STATUS: d->status = 1; break;
    case DC_ERROR_UNTERMINATED: memset(d->error, 'x', sizeof(d->error)); break;
    case DC_REPORT_UNTERMINATED: d->status = -5, memset(d->error, 'x', sizeof(d->error)); break;
    case DC_NFIELDS: d->nfields = TP_RING_MAX_FIELDS + 1; break;
    case DC_NAME: memset(f->name, 'a', sizeof(f->name)); break;
    case DC_DTYPE_0: f->dtype = 0; break;
    case DC_DTYPE_99: f->dtype = 99; break;
    case DC_DTYPE_FLAGS: f->dtype = 0x200 | TP_DTYPE_UINT8; break;
    case DC_IMAGE_FLAG: f->dtype = TP_RING_FIELD_IMAGE | TP_DTYPE_UINT8; break;
    case DC_NDIM_0: f->ndim = 0; break;
    case DC_NDIM_BIG: f->ndim = TP_RING_MAX_DIMS + 1; break;
    case DC_SHAPE0: f->shape[0] = 5, f->bytes = 5 * 8 * 8 * 3; break;
    case DC_NEGATIVE: f->shape[1] = -8, f->shape[2] = -8; break;
    case DC_SHAPE_OVERFLOW: f->shape[1] = INT64_C(1) << 31, f->shape[2] = INT64_C(1) << 31; break;
    case DC_BYTES: f->bytes += 1; break;
    case DC_MISALIGNED: f->offset += 8; break;
    case DC_OVER_DESC: f->offset = (sizeof(tp_batch_desc) - 1) & ~(uint64_t)63; break;
    case DC_PAST_END: f->offset = SLOT - 704; break;
    case DC_OFFSET_OVERFLOW: f->offset = UINT64_MAX - 63; break;
    case DC_SECOND_FIELD: d->fields[1].dtype = 0; break;
    case DC_IDS_PAST: d->ids_offset = SLOT - 24; break;
    case DC_IDS_MISALIGNED: d->ids_offset += 4; break;
    case DC_IDS_OVER_DESC: d->ids_offset = sizeof(tp_batch_desc) - 8; break;
    case DC_IDS_OVERFLOW: d->ids_offset = UINT64_MAX - 7; break;
    }
}

START_TEST(test_desc_check)
{
    const struct desc_case *c = &desc_cases[_i];
    tp_batch_desc d;
    valid_desc(&d);
    corrupt_desc(&d, _i);
    tp_error err = {0};
    int rc = tp_batch_desc_check(&d, SLOT, &err);
    if (!c->msg) {
        ck_assert_msg(rc == 0, "%s: rejected: %s", c->name, err.msg);
        return;
    }
    ck_assert_msg(rc == TP_EPROTOCOL, "%s: accepted", c->name);
    ck_assert_int_eq(err.code, TP_EPROTOCOL);
    ck_assert_msg(strstr(err.msg, c->msg), "%s: '%s' lacks '%s'", c->name, err.msg, c->msg);
}
END_TEST

static Suite *ring_suite(void)
{
    Suite *s = suite_create("ring");
    TCase *tc = tcase_create("geometry");
    tcase_add_test(tc, test_create_attach);
    tcase_add_test(tc, test_create_bad_args);
    suite_add_tcase(s, tc);
    tc = tcase_create("attach");
    tcase_add_test(tc, test_seals);
    tcase_add_loop_test(tc, test_attach_header, 0, HC_COUNT);
    tcase_add_test(tc, test_attach_not_memfd);
    suite_add_tcase(s, tc);
    tc = tcase_create("stream");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_threads, 0, TP_ARRAY_LEN(starts));
    tcase_add_test(tc, test_processes);
    suite_add_tcase(s, tc);
    tc = tcase_create("timeouts");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_timeouts);
    tcase_add_test(tc, test_wait_forever);
    suite_add_tcase(s, tc);
    tc = tcase_create("hostile");
    tcase_add_loop_test(tc, test_hostile_consumer, 0, TP_ARRAY_LEN(bad_tails));
    tcase_add_test(tc, test_hostile_producer);
    suite_add_tcase(s, tc);
    tc = tcase_create("descriptor");
    tcase_add_loop_test(tc, test_desc_check, 0, DC_COUNT);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tp_test_run(ring_suite()); }
