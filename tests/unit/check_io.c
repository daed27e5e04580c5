/* Unit tests of the IO engine (storage/io.h). The same suite runs for every backend,
 * with and without O_DIRECT, over record shards of both alignments and LMDB shards (loop
 * tests): bytes must equal the dataset reader's. Faults are injected through the
 * engine's test hook: errors fail only their own read, short reads and EINTR/EAGAIN are
 * completed. A seccomp filter that refuses io_uring checks the fallback. */
#include "testutil.h"

#include "io.h"
#include "storage.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SAMPLES 300
#define READS 2000

typedef struct io_config {
    tp_io_kind kind;
    bool direct;
    tp_shard_format format;
    uint32_t align;
} io_config;

/* backend x direct x shard kind: 12 configurations. */
static io_config config_of(int i)
{
    static const struct { tp_shard_format f; uint32_t a; } kinds[] = {
        {TP_SHARD_RECORD, 4096}, {TP_SHARD_RECORD, 1}, {TP_SHARD_LMDB, 1}};
    return (io_config){.kind = i / 6 ? TP_IO_POSIX : TP_IO_URING, .direct = (i / 3) % 2,
                       .format = kinds[i % 3].f, .align = kinds[i % 3].a};
}

static const tp_field_info schema[] = {{.name = "raw", .kind = TP_FIELD_BYTES}};

static char *make_dataset(char **dir, tp_shard_format f, uint32_t align)
{
    *dir = tp_test_mkdtemp();
    char *path = tp_test_path(*dir, "ds");
    tp_dataset_writer_options o = {.format = f, .align = align, .shard_bytes = 1 << 20,
                                   .fields = schema, .nfields = 1};
    tp_dataset_writer *w;
    tp_error err = {0};
    ck_assert_int_eq(tp_dataset_writer_create(&w, path, &o, &err), 0);
    unsigned char *buf = malloc(20000);
    for (uint64_t k = 0; k < SAMPLES; k++) {
        size_t n = (size_t)(1 + (k * 2654435761u) % 19999);
        tp_test_fill(buf, n, k, 99);
        tp_field_value v = {.field = 0, .data = buf, .size = n};
        ck_assert_int_eq(tp_dataset_writer_append(w, &v, 1, &err), 0);
    }
    free(buf);
    ck_assert_int_eq(tp_dataset_writer_finish(w, &err), 0);
    tp_dataset_writer_destroy(w);
    return path;
}

/* Creates an engine over every shard; *files maps shard index -> engine file index.
 * @return : 0, or -EINVAL when the file system refuses O_DIRECT. */
static int open_engine(tp_io **io, const tp_dataset *ds, const tp_io_options *o, int *files)
{
    tp_error err = {0};
    ck_assert_msg(tp_io_create(io, o, &err) == 0, "%s", err.msg);
    for (size_t s = 0; s < tp_dataset_shard_count(ds); s++) {
        tp_shard_info si;
        ck_assert_int_eq(tp_dataset_shard_info(ds, s, &si), 0);
        files[s] = tp_io_add_file(*io, si.fd, &err);
        if (files[s] == -EINVAL && o->direct) {
            tp_io_destroy(*io);
            return -EINVAL;
        }
        ck_assert_msg(files[s] >= 0, "%s", err.msg);
    }
    return 0;
}

typedef struct run_stats {
    unsigned ok, failed;
    int failed_code[READS];
} run_stats;

/* Reads into caller buffers (three pieces of a malloc'd record) instead of the engine's;
 * set by the tests that use them, for buffered configurations. */
static bool into_pieces;

/* Splits read `r` into three caller buffers covering one allocation. */
static unsigned char *pieces_for(tp_io_read *r)
{
    unsigned char *mem = malloc(r->length);
    uint64_t a = r->length / 3, b = 2 * r->length / 3;
    r->iov[0] = (struct iovec){mem, a};
    r->iov[1] = (struct iovec){mem + a, b - a};
    r->iov[2] = (struct iovec){mem + b, r->length - b};
    r->iovcnt = 3;
    return mem;
}

/* Issues READS random whole-record reads and checks each against tp_dataset_read. */
static void run_reads(tp_io *io, const tp_dataset *ds, const int *files, run_stats *st)
{
    static unsigned char *mem[READS];
    size_t cap = (size_t)tp_dataset_max_record(ds);
    unsigned char *want = malloc(cap);
    unsigned next = 0, reaped = 0;
    uint64_t x = 12345;
    memset(st, 0, sizeof(*st));
    while (reaped < READS) {
        tp_io_read batch[16];
        unsigned nb = 0;
        for (; nb < 16 && next + nb < READS; nb++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            uint64_t id = (x >> 33) % SAMPLES;
            tp_sample_location loc;
            tp_error err;
            ck_assert_int_eq(tp_dataset_locate(ds, id, &loc, &err), 0);
            batch[nb] = (tp_io_read){.file = (unsigned)files[loc.shard], .offset = loc.offset,
                                     .length = loc.length, .tag = (uint64_t)(next + nb) << 32 | id};
            mem[next + nb] = into_pieces ? pieces_for(&batch[nb]) : NULL;
        }
        int n = nb ? tp_io_submit(io, batch, nb, NULL) : 0;
        ck_assert_int_ge(n, 0);
        for (unsigned k = (unsigned)n; k < nb; k++) /* not taken: made again next round */
            free(mem[next + k]);
        next += (unsigned)n;
        tp_io_done done[64];
        int got = tp_io_reap(io, done, 64, n == 0 || next == READS ? 1 : 0);
        ck_assert_int_ge(got, 0);
        for (int i = 0; i < got; i++) {
            uint64_t id = done[i].tag & 0xffffffffu;
            if (done[i].result < 0) {
                st->failed_code[done[i].tag >> 32] = done[i].result;
                st->failed++;
            } else {
                size_t len;
                tp_error err;
                ck_assert_int_eq(tp_dataset_read(ds, id, want, cap, &len, &err), 0);
                ck_assert_uint_eq(done[i].length, len);
                const unsigned char *bytes = into_pieces ? mem[done[i].tag >> 32] : done[i].data;
                ck_assert(into_pieces == (done[i].data == NULL));
                ck_assert_int_eq(memcmp(bytes, want, len), 0);
                ck_assert_uint_ge(done[i].issued, len);
                st->ok++;
            }
            tp_io_release(io, &done[i]);
            free(mem[done[i].tag >> 32]);
        }
        reaped += (unsigned)got;
    }
    ck_assert_uint_eq(tp_io_in_flight(io), 0);
    free(want);
}

START_TEST(test_same_bytes)
{
    io_config c = config_of(_i);
    char *dir, *path = make_dataset(&dir, c.format, c.align);
    tp_dataset *ds;
    tp_error err;
    ck_assert_int_eq(tp_dataset_open(&ds, path, &err), 0);
    tp_io *io;
    int files[64];
    tp_io_options o = {.kind = c.kind, .direct = c.direct, .queue_depth = 32,
                       .buffer_bytes = 64 << 10};
    if (open_engine(&io, ds, &o, files) == 0) {
        ck_assert_str_eq(tp_io_backend(io), c.kind == TP_IO_URING ? "io_uring" : "posix");
        run_stats st;
        run_reads(io, ds, files, &st);
        ck_assert_uint_eq(st.ok, READS);
        tp_io_destroy(io);
    } else {
        fprintf(stderr, "check_io: O_DIRECT unsupported under %s, config %d skipped\n", dir, _i);
    }
    tp_dataset_close(ds);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

/* ---------------------------------------------------------------- faults */

typedef struct fault_plan {
    bool direct; /* short reads must then end on the alignment, as real ones do */
    unsigned calls;
    unsigned shortened;
    bool retried[READS];
} fault_plan;

static void fault_short(void *ctx, uint64_t tag, uint64_t offset, int64_t *res)
{
    fault_plan *p = ctx;
    int64_t shorter = p->direct ? (*res / 2) & ~(int64_t)(TP_IO_ALIGN - 1) : *res / 2;
    if (p->calls++ % 2 == 0 && shorter > 0) {
        *res = shorter;
        p->shortened++;
    }
}

static void fault_errors(void *ctx, uint64_t tag, uint64_t offset, int64_t *res)
{
    fault_plan *p = ctx;
    unsigned i = (unsigned)(tag >> 32);
    if (i % 7 == 3)
        *res = -EIO;
    else if (i == 5)
        *res = -EBADF;
    else if (i % 5 == 0 && !p->retried[i]) {
        p->retried[i] = true;
        *res = i % 2 ? -EINTR : -EAGAIN;
    }
}

static void run_faulty(int config, tp_io_fault_fn fn, fault_plan *plan, run_stats *st)
{
    io_config c = config_of(config);
    plan->direct = c.direct;
    char *dir, *path = make_dataset(&dir, c.format, c.align);
    tp_dataset *ds;
    tp_error err;
    ck_assert_int_eq(tp_dataset_open(&ds, path, &err), 0);
    tp_io *io;
    int files[64];
    tp_io_options o = {.kind = c.kind, .direct = c.direct, .queue_depth = 16,
                       .buffer_bytes = 64 << 10, .fault = fn, .fault_ctx = plan};
    if (open_engine(&io, ds, &o, files) == 0) {
        run_reads(io, ds, files, st);
        tp_io_destroy(io);
    } else {
        st->ok = READS; /* O_DIRECT unsupported here: nothing to check */
        plan->shortened = 1;
    }
    tp_dataset_close(ds);
    free(path);
    tp_test_rmdir(dir);
}

START_TEST(test_short_reads)
{
    fault_plan *plan = calloc(1, sizeof(*plan));
    run_stats *st = malloc(sizeof(*st));
    run_faulty(_i, fault_short, plan, st);
    ck_assert_uint_eq(st->ok, READS);
    ck_assert_uint_gt(plan->shortened, READS / 8);
    free(plan);
    free(st);
}
END_TEST

/* Reads into caller buffers, with short reads injected: the engine continues them across
 * the pieces. O_DIRECT refuses them (TP_EUSAGE). */
START_TEST(test_short_reads_pieces)
{
    io_config c = config_of(_i);
    if (c.direct) {
        tp_io *io;
        tp_io_options o = {.kind = c.kind, .direct = true};
        ck_assert_int_eq(tp_io_create(&io, &o, NULL), 0);
        int fd = open("/proc/self/exe", O_RDONLY);
        int f = tp_io_add_file(io, fd, NULL);
        unsigned char b[4096];
        tp_io_read r = {.file = (unsigned)f, .length = 4096, .iov = {{b, 4096}}, .iovcnt = 1};
        if (f >= 0)
            ck_assert_int_eq(tp_io_submit(io, &r, 1, NULL), TP_EUSAGE);
        tp_io_destroy(io);
        close(fd);
        return;
    }
    into_pieces = true;
    fault_plan *plan = calloc(1, sizeof(*plan));
    run_stats *st = malloc(sizeof(*st));
    run_faulty(_i, fault_short, plan, st);
    ck_assert_uint_eq(st->ok, READS);
    ck_assert_uint_gt(plan->shortened, READS / 8);
    into_pieces = false;
    free(plan);
    free(st);
}
END_TEST

START_TEST(test_injected_errors)
{
    fault_plan *plan = calloc(1, sizeof(*plan));
    run_stats *st = malloc(sizeof(*st));
    run_faulty(_i, fault_errors, plan, st);
    if (plan->calls) {
        unsigned expect_failed = 0;
        for (unsigned i = 0; i < READS; i++) {
            int want = i % 7 == 3 ? -EIO : i == 5 ? -EBADF : 0;
            expect_failed += want != 0;
            ck_assert_msg(st->failed_code[i] == want, "read %u: got %d, want %d", i,
                          st->failed_code[i], want);
        }
        ck_assert_uint_eq(st->failed, expect_failed);
        ck_assert_uint_eq(st->ok, READS - expect_failed);
    }
    free(plan);
    free(st);
}
END_TEST

/* A read past the end of the file fails with TP_ETRUNCATED; the engine lives on. */
START_TEST(test_past_eof)
{
    io_config c = config_of(_i);
    char *dir = tp_test_mkdtemp(), *path = tp_test_path(dir, "f");
    FILE *f = fopen(path, "wb");
    unsigned char data[10000];
    tp_test_fill(data, sizeof(data), 1, 1);
    fwrite(data, 1, sizeof(data), f);
    fclose(f);
    int fd = open(path, O_RDONLY);
    tp_io *io;
    tp_io_options o = {.kind = c.kind, .direct = c.direct, .queue_depth = 4,
                       .buffer_bytes = 1 << 16};
    tp_error err;
    ck_assert_int_eq(tp_io_create(&io, &o, &err), 0);
    int file = tp_io_add_file(io, fd, &err);
    if (file >= 0) {
        tp_io_read r[2] = {{.file = (unsigned)file, .offset = 9000, .length = 2000, .tag = 1},
                           {.file = (unsigned)file, .offset = 100, .length = 9900, .tag = 2}};
        ck_assert_int_eq(tp_io_submit(io, r, 2, &err), 2);
        tp_io_done d[2];
        ck_assert_int_eq(tp_io_reap(io, d, 2, 2), 2);
        for (int i = 0; i < 2; i++) {
            if (d[i].tag == 1)
                ck_assert_int_eq(d[i].result, TP_ETRUNCATED);
            else {
                ck_assert_int_eq(d[i].result, 0);
                ck_assert_int_eq(memcmp(d[i].data, data + 100, 9900), 0);
            }
            tp_io_release(io, &d[i]);
        }
        tp_io_read bad = {.file = 7, .offset = 0, .length = 1};
        ck_assert_int_eq(tp_io_submit(io, &bad, 1, &err), TP_EUSAGE);
        bad = (tp_io_read){.file = (unsigned)file, .offset = 0, .length = 1 << 20};
        ck_assert_int_eq(tp_io_submit(io, &bad, 1, &err), TP_EUSAGE);
    }
    tp_io_destroy(io);
    close(fd);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

/* Files added after reads have started (the daemon opens datasets as clients ask for
 * them) are read like the first ones, on both backends, buffered and direct. */
START_TEST(test_late_file)
{
    io_config c = config_of(_i);
    char *dir = tp_test_mkdtemp();
    unsigned char data[2][8192];
    int fds[2];
    for (int k = 0; k < 2; k++) {
        char name[8];
        snprintf(name, sizeof(name), "f%d", k);
        char *path = tp_test_path(dir, name);
        tp_test_fill(data[k], sizeof(data[k]), (uint64_t)k, 5);
        FILE *f = fopen(path, "wb");
        fwrite(data[k], 1, sizeof(data[k]), f);
        fclose(f);
        fds[k] = open(path, O_RDONLY);
        free(path);
    }
    tp_io *io;
    tp_io_options o = {.kind = c.kind, .direct = c.direct, .queue_depth = 4,
                       .buffer_bytes = 1 << 16};
    tp_error err;
    ck_assert_int_eq(tp_io_create(&io, &o, &err), 0);
    int files[2] = {tp_io_add_file(io, fds[0], &err), -1};
    for (int k = 0; files[0] >= 0 && k < 2; k++) {
        if (k == 1) /* after the first read: the engine has started */
            ck_assert_msg((files[1] = tp_io_add_file(io, fds[1], &err)) == 1, "%s", err.msg);
        tp_io_read r = {.file = (unsigned)files[k], .offset = 100, .length = 5000, .tag = 7};
        ck_assert_int_eq(tp_io_submit(io, &r, 1, &err), 1);
        tp_io_done d;
        ck_assert_int_eq(tp_io_reap(io, &d, 1, 1), 1);
        ck_assert_int_eq(d.result, 0);
        ck_assert_int_eq(memcmp(d.data, data[k] + 100, 5000), 0);
        tp_io_release(io, &d);
    }
    tp_io_destroy(io);
    close(fds[0]);
    close(fds[1]);
    tp_test_rmdir(dir);
}
END_TEST

/* LMDB records small enough to copy from the map give the same bytes as reads through
 * the engine (which run_reads checks for every record); record shards have no map. */
START_TEST(test_lmdb_map)
{
    char *dir, *path = make_dataset(&dir, _i ? TP_SHARD_LMDB : TP_SHARD_RECORD, _i ? 1 : 4096);
    tp_dataset *ds;
    tp_error err;
    ck_assert_int_eq(tp_dataset_open(&ds, path, &err), 0);
    unsigned char *want = malloc((size_t)tp_dataset_max_record(ds));
    unsigned small = 0, large = 0;
    for (uint64_t id = 0; id < SAMPLES; id++) {
        tp_sample_location loc;
        size_t len;
        ck_assert_int_eq(tp_dataset_locate(ds, id, &loc, &err), 0);
        ck_assert_int_eq(loc.mapped != NULL, _i);
        if (!loc.mapped)
            continue;
        ck_assert_int_eq(tp_dataset_read(ds, id, want, tp_dataset_max_record(ds), &len, &err), 0);
        ck_assert_int_eq(memcmp(loc.mapped, want, len), 0);
        ck_assert_int_eq(pread(loc.fd, want, len, (off_t)loc.offset), (ssize_t)len);
        ck_assert_int_eq(memcmp(loc.mapped, want, len), 0);
        *(tp_io_use_map(&loc) ? &small : &large) += 1;
    }
    if (_i)
        ck_assert(small > 0 && large > 0);
    free(want);
    tp_dataset_close(ds);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

/* ---------------------------------------------------------------- selection */

START_TEST(test_select_env)
{
    tp_io *io;
    tp_error err;
    setenv("TP_IO", "posix", 1);
    ck_assert_int_eq(tp_io_create(&io, NULL, &err), 0);
    ck_assert_str_eq(tp_io_backend(io), "posix");
    ck_assert(!tp_io_fixed_buffers(io));
    tp_io_destroy(io);
    setenv("TP_IO", "uring", 1);
    ck_assert_int_eq(tp_io_create(&io, NULL, &err), 0);
    ck_assert_str_eq(tp_io_backend(io), "io_uring");
    tp_io_destroy(io);
    setenv("TP_IO", "bogus", 1);
    ck_assert_int_eq(tp_io_create(&io, NULL, &err), TP_EUSAGE);
    unsetenv("TP_IO");
    tp_io_options o = {.queue_depth = 5000};
    ck_assert_int_eq(tp_io_create(&io, &o, &err), TP_EUSAGE);
}
END_TEST

/* Makes io_uring_setup fail with EPERM, as a container's seccomp policy does. */
static void refuse_io_uring(void)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = TP_ARRAY_LEN(filter), .filter = filter};
    ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    ck_assert_int_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

START_TEST(test_fallback)
{
    refuse_io_uring(); /* this test runs in its own forked process */
    tp_io *io;
    tp_error err = {0};
    tp_io_options o = {.kind = TP_IO_URING};
    ck_assert_int_eq(tp_io_create(&io, &o, &err), -EPERM);
    ck_assert_ptr_nonnull(strstr(err.msg, "io_uring"));
    o.kind = TP_IO_AUTO;
    ck_assert_int_eq(tp_io_create(&io, &o, &err), 0);
    ck_assert_str_eq(tp_io_backend(io), "posix");
    tp_io_destroy(io);
}
END_TEST

static Suite *io_suite(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("reads");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_same_bytes, 0, 12);
    tcase_add_loop_test(tc, test_past_eof, 0, 12);
    tcase_add_loop_test(tc, test_late_file, 0, 12);
    tcase_add_loop_test(tc, test_lmdb_map, 0, 2);
    suite_add_tcase(s, tc);
    tc = tcase_create("faults");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_short_reads, 0, 12);
    tcase_add_loop_test(tc, test_short_reads_pieces, 0, 12);
    tcase_add_loop_test(tc, test_injected_errors, 0, 12);
    suite_add_tcase(s, tc);
    tc = tcase_create("selection");
    tcase_add_test(tc, test_select_env);
    tcase_add_test(tc, test_fallback);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tp_test_run(io_suite()); }
