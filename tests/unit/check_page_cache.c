/* Unit tests of the decode threads' page-cache reads (loader/pipeline.c, cached_read):
 * records the page cache holds whole are read by a decode thread itself, any other goes
 * to the IO engine. Every test serves a dataset of tensors whose bytes are a function of
 * the sample id, checks every byte of two epochs, and checks the daemon's counters
 * (what `turbopump stat` and the metrics show) against the path each read took. */
#include "pattern_fx.h"

#include "pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/uio.h>

/* Freshly written, the shards are in the page cache: with the default, decode threads
 * read every record themselves and the engine none, in batches of 8 and of 200 (more
 * tasks submitted at once than the tries' credit); with engine_only (serve
 * --io-engine-only), the engine reads them all. */
START_TEST(test_cached_reads)
{
    bool engine_only = _i == 1;
    daemon_fx f;
    fx_init(&f);
    write_ds(f.root, "ten");
    fx_engine_only = engine_only;
    fx_start(&f, false, 0);
    fx_engine_only = false;
    read_two_epochs(&f, _i == 2 ? 200 : BATCH);
    tp_stages_stats s = fx_pipe_stats(&f);
    ck_assert_uint_ge(s.reads, 2 * N);
    if (engine_only || !fx_nowait_works(f.dir)) {
        ck_assert_uint_eq(s.page_cache_reads, 0);
        ck_assert_uint_le(s.page_cache_misses, 1); /* the read that found it unsupported */
    } else {
        ck_assert_uint_eq(s.page_cache_reads, s.reads);
        ck_assert_uint_eq(s.page_cache_misses, 0);
    }
    fx_done(&f);
}
END_TEST

/* ---- records the page cache does not hold whole: hand-off to the engine */

typedef struct miss_plan {
    bool short_read;           /* a partial read instead of EAGAIN */
    unsigned every;            /* a miss in every `every` tries; 1: all of them */
    uint64_t until;            /* reads (tries and engine reads) after which none misses */
    _Atomic uint64_t cached, engine, injected;
} miss_plan;

/* Decode threads' reads (TP_PAGE_CACHE_TAG) find the record uncached, as the kernel
 * reports it: EAGAIN, or fewer bytes than asked for; the engine's reads pass. */
static void fault_miss(void *ctx, uint64_t tag, uint64_t offset, int64_t *res)
{
    (void)offset;
    miss_plan *p = ctx;
    if (!(tag & 1)) {
        atomic_fetch_add(&p->engine, 1);
        return;
    }
    uint64_t k = atomic_fetch_add(&p->cached, 1);
    if (k % p->every || k + atomic_load(&p->engine) >= p->until)
        return;
    if (!p->short_read)
        *res = -EAGAIN;
    else if (*res > 0)
        *res -= 1;
    else
        return;
    atomic_fetch_add(&p->injected, 1);
}

/* _i 0, 1: every other try misses (EAGAIN, a short read); the missed records come from
 * the engine, and once misses outweigh hits most records go to the engine untried.
 * _i 2: every try misses for the first epoch, none after: few records are tried while
 * they miss, and soon after tries hit again, decode threads read the rest. */
START_TEST(test_cached_miss)
{
    daemon_fx f;
    fx_init(&f);
    if (!fx_nowait_works(f.dir)) {
        fx_done(&f);
        return; /* every read goes through the engine there: test_cached_reads */
    }
    write_ds(f.root, "ten");
    miss_plan plan = {.short_read = _i == 1, .every = _i == 2 ? 1 : 2,
                      .until = _i == 2 ? N : UINT64_MAX};
    fx_io_fault = fault_miss;
    fx_io_fault_ctx = &plan;
    fx_start(&f, false, 0);
    fx_io_fault = NULL;
    read_two_epochs(&f, BATCH);
    tp_stages_stats s = fx_pipe_stats(&f);
    uint64_t injected = atomic_load(&plan.injected), tried = atomic_load(&plan.cached);
    ck_assert_uint_ge(injected, 8);
    ck_assert_uint_eq(s.page_cache_misses, injected);
    ck_assert_uint_eq(s.page_cache_reads, tried - injected);
    ck_assert_uint_eq(s.reads, s.page_cache_reads + atomic_load(&plan.engine));
    if (_i < 2) { /* the credit ran out: most records went to the engine untried */
        ck_assert_uint_lt(tried, s.reads / 3);
    } else { /* 16 misses and those in flight spend the credit, then one in 16 is tried;
              * four hits of those bring every task back */
        ck_assert_uint_le(injected, 16 + 4 * 2 * BATCH + N / 16 + 1);
        ck_assert_uint_ge(s.page_cache_reads, N / 2);
    }
    fx_done(&f);
}
END_TEST

/* Writes the dataset and drops its shards from the page cache (synced, then
 * POSIX_FADV_DONTNEED). @return : whether they are out (mincore shows none of their pages
 * resident but the first, which holds the header) and reads that must not wait work. */
static bool cold_dataset(daemon_fx *f)
{
    write_ds(f->root, "ten");
    char *ds = tp_test_path(f->root, "ten");
    bool dropped = fx_nowait_works(f->dir);
    for (unsigned k = 0;; k++) {
        char name[64];
        snprintf(name, sizeof(name), "shard-%05u.tpr", k);
        char *path = tp_test_path(ds, name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        free(path);
        if (fd < 0)
            break;
        struct stat st;
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(fdatasync(fd), 0);
        ck_assert_int_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        ck_assert(m != MAP_FAILED);
        unsigned char vec[4096];
        size_t pages = ((size_t)st.st_size + 4095) / 4096;
        ck_assert_uint_le(pages, sizeof(vec));
        ck_assert_int_eq(mincore(m, (size_t)st.st_size, vec), 0);
        for (size_t i = 1; i < pages; i++)
            dropped &= !(vec[i] & 1);
        munmap(m, (size_t)st.st_size);
        close(fd);
    }
    free(ds);
    return dropped;
}

/* Shards the kernel has dropped from the page cache: their first reads go to the engine,
 * and once the engine has brought them in, decode threads read nearly all of them from
 * the cache. Where the file system keeps the pages anyway, only the bytes are checked.
 * The kernel's readahead (from the header reads at open, and from each read that found
 * its pages missing) can bring a shard back before a decode thread first tries it; on a
 * slow, loaded machine (ThreadSanitizer beside other tests) it once brought all of them
 * back, and no try missed. So a run in which none missed is tried again with a fresh
 * daemon and dataset, up to three times; a miss must be seen in one of them. */
START_TEST(test_cold_shards)
{
    for (int attempt = 0;; attempt++) {
        daemon_fx f;
        fx_init(&f);
        bool dropped = cold_dataset(&f);
        fx_start(&f, false, 0);
        read_two_epochs(&f, BATCH);
        tp_stages_stats s = fx_pipe_stats(&f);
        fx_done(&f);
        if (dropped && s.page_cache_misses == 0 && attempt < 2)
            continue;
        if (dropped) {
            ck_assert_uint_ge(s.page_cache_misses, 1);
            ck_assert_uint_ge(s.page_cache_reads, N / 2); /* most of the second epoch */
            /* tried and missed, or untried while misses outweighed hits: the engine's */
            ck_assert_uint_le(s.page_cache_reads + s.page_cache_misses, s.reads);
        }
        break;
    }
}
END_TEST

static Suite *page_cache_suite(void)
{
    Suite *s = suite_create("page_cache");
    TCase *tc = tcase_create("reads");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_cached_reads, 0, 3);
    tcase_add_loop_test(tc, test_cached_miss, 0, 3);
    tcase_add_test(tc, test_cold_shards);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tp_test_run(page_cache_suite()); }
