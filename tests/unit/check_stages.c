/* Unit tests of the order in which the decode threads take tasks (loader/pipeline.c): the
 * lowest tp_task.ahead first, FIFO among equals, whatever the order of submission. The
 * stage tests' records are in memory (a mapping, as LMDB's values are), so no read goes
 * through the IO engine and the order is the decode queue's alone. The daemon test checks
 * that sessions set it (loader/session.c): a session that starts while another fills its
 * window is served first. */
#include "pattern_fx.h"

#include "pipeline.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

static const unsigned char record[16] = "0123456789abcdef";

typedef struct order {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool gate_running, gate_open;
    unsigned ran[64], n;
} order;

/* The first task: holds the only decode thread until the test has queued the others. */
static void run_gate(tp_task *t, tp_worker *w, const unsigned char *data, uint64_t len, int rc)
{
    (void)w, (void)data, (void)len, (void)rc;
    order *o = t->ctx;
    pthread_mutex_lock(&o->lock);
    o->gate_running = true;
    pthread_cond_broadcast(&o->cond);
    while (!o->gate_open)
        pthread_cond_wait(&o->cond, &o->lock);
    pthread_mutex_unlock(&o->lock);
}

static void run_record(tp_task *t, tp_worker *w, const unsigned char *data, uint64_t len,
                       int rc)
{
    (void)w;
    order *o = t->ctx;
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_eq(data, record);
    ck_assert_uint_eq(len, sizeof(record));
    pthread_mutex_lock(&o->lock);
    o->ran[o->n++] = t->index;
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->lock);
}

static tp_task task(order *o, uint32_t index, uint32_t ahead)
{
    return (tp_task){.loc = {.mapped = record, .length = sizeof(record), .fd = -1},
                     .file = -1, .run = run_record, .ctx = o, .index = index, .ahead = ahead};
}

/* Submits tasks of the given `ahead` values (their index is their position) while the
 * decode thread is held, one call each or all in one, and checks the order they ran. */
static void check_order(const uint32_t *ahead, unsigned n, const unsigned *want, bool one_call)
{
    order o = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    tp_stages_options so = {.threads = 1};
    tp_stages *p;
    tp_error err = {0};
    ck_assert_msg(tp_stages_create(&p, &so, &err) == 0, "%s", err.msg);
    tp_task gate = task(&o, 99, TP_STAGES_LEVELS - 1);
    gate.run = run_gate;
    tp_task *g = &gate;
    tp_stages_submit(p, &g, 1);
    pthread_mutex_lock(&o.lock);
    while (!o.gate_running)
        pthread_cond_wait(&o.cond, &o.lock);
    pthread_mutex_unlock(&o.lock);

    tp_task tasks[64], *ptrs[64];
    for (unsigned i = 0; i < n; i++) {
        tasks[i] = task(&o, i, ahead[i]);
        ptrs[i] = &tasks[i];
        if (!one_call)
            tp_stages_submit(p, &ptrs[i], 1);
    }
    if (one_call)
        tp_stages_submit(p, ptrs, n);
    tp_stages_stats st;
    tp_stages_stats_get(p, &st);
    ck_assert_uint_eq(st.decode_queued, n);

    pthread_mutex_lock(&o.lock);
    o.gate_open = true;
    pthread_cond_broadcast(&o.cond);
    while (o.n < n)
        pthread_cond_wait(&o.cond, &o.lock);
    pthread_mutex_unlock(&o.lock);
    tp_stages_destroy(p);
    for (unsigned i = 0; i < n; i++)
        ck_assert_msg(o.ran[i] == want[i], "run %u was task %u, want task %u", i, o.ran[i],
                      want[i]);
}

START_TEST(test_lowest_first)
{
    /* a session's window (3 2 1 0 as a client catching up would see them), another's
     * steady-state batches at 3, a value past the last level (it counts as the last),
     * then a starting session's first batches 0 and 1 */
    static const uint32_t ahead[] = {3, 3, 2, 1, 0, 3, 9, 0, 1, 2, 0};
    static const unsigned want[] = {4, 7, 10, 3, 8, 2, 9, 0, 1, 5, 6};
    check_order(ahead, 11, want, _i == 1);
}
END_TEST

START_TEST(test_fifo_among_equals)
{
    uint32_t ahead[40];
    unsigned want[40];
    for (unsigned i = 0; i < 40; i++)
        ahead[i] = 1, want[i] = i;
    check_order(ahead, 40, want, _i == 1);
}
END_TEST

/* Many tasks of every level from one call, counted off as they run: every one runs once,
 * and none of a level runs before all of a lower one that was queued with it. */
START_TEST(test_levels_drain)
{
    uint32_t ahead[64];
    unsigned want[64], k = 0;
    for (unsigned i = 0; i < 64; i++)
        ahead[i] = (i * 7 + 3) % TP_STAGES_LEVELS;
    for (unsigned level = 0; level < TP_STAGES_LEVELS; level++)
        for (unsigned i = 0; i < 64; i++)
            if (ahead[i] == level)
                want[k++] = i;
    ck_assert_uint_eq(k, 64);
    check_order(ahead, 64, want, true);
}
END_TEST

/* Every read takes 30 ms: a batch of 16 then takes 240 ms on the 2 decode threads, and a
 * batch of 8 through the engine (whose completions the IO thread settles one by one)
 * 240 ms too. Rank 1 has about that long to open before rank 0's second batch could be
 * done ahead of its first. */
static void slow_read(void *ctx, uint64_t tag, uint64_t offset, int64_t *res)
{
    (void)ctx, (void)tag, (void)offset, (void)res;
    usleep(30000);
}

static uint64_t rank_batches(daemon_fx *f, uint32_t rank, uint64_t *in_flight)
{
    tp_server_figures fig;
    ck_assert_int_eq(tp_server_figures_get(f->srv, &fig), 0);
    uint64_t n = UINT64_MAX;
    for (size_t i = 0; i < fig.nsessions; i++)
        if (fig.sessions[i].rank == rank) {
            n = fig.sessions[i].c.batches;
            if (in_flight)
                *in_flight = fig.sessions[i].c.in_flight;
        }
    tp_server_figures_free(&fig);
    return n;
}

/* Rank 0 opens and reads nothing, so its daemon session fills its 4 slots; rank 1 opens
 * while the first of those is being read. Its first batch (0 ahead) must come before
 * rank 0's later ones (1 to 3 ahead): in submission order it would come after all four.
 * _i 0: the decode threads read the records from the page cache, so the order is the
 * decode queue's. _i 1: every read through the IO engine, 8 at a time, so the order is
 * that of the reads waiting for it (rank 0's window is 32). */
START_TEST(test_new_session_first)
{
    daemon_fx f;
    fx_init(&f);
    write_ds(f.root, "t");
    fx_io_fault = slow_read;
    fx_engine_only = _i == 1;
    fx_queue_depth = _i == 1 ? 8 : 0;
    fx_start(&f, false, 0);
    fx_io_fault = NULL;
    fx_engine_only = false;
    fx_queue_depth = 0;
    tp_client_options o = client_options(&f, "t");
    o.batch_size = _i == 1 ? 8 : 16, o.world_size = 2, o.prefetch = 4;
    o.rank = 0;
    tp_client *a = client_open(&o);
    uint64_t in_flight = 0;
    for (int waited = 0; rank_batches(&f, 0, &in_flight) == UINT64_MAX || in_flight < 4;
         waited++) {
        ck_assert_msg(waited < 2000, "rank 0's session did not start its window");
        usleep(1000);
    }
    ck_assert_uint_eq(rank_batches(&f, 0, NULL), 0);
    o.rank = 1;
    tp_client *b = client_open(&o);
    tp_batch batch;
    tp_error err = {0};
    ck_assert_msg(tp_client_next(b, &batch, &err) == 0, "%s", err.msg);
    uint64_t done = rank_batches(&f, 0, NULL);
    ck_assert_msg(done <= 1, "rank 0 had %llu of its 4 batches when rank 1 got its first",
                  (unsigned long long)done);
    tp_stages_stats st = fx_pipe_stats(&f);
    if (_i == 1)
        ck_assert_uint_eq(st.page_cache_reads, 0);
    else
        ck_assert_uint_gt(st.page_cache_reads, 0);
    tp_client_close(b);
    tp_client_close(a);
    fx_done(&f);
}
END_TEST

static Suite *stages_suite(void)
{
    Suite *s = suite_create("stages");
    TCase *tc = tcase_create("order");
    tcase_add_loop_test(tc, test_lowest_first, 0, 2);
    tcase_add_loop_test(tc, test_fifo_among_equals, 0, 2);
    tcase_add_test(tc, test_levels_drain);
    suite_add_tcase(s, tc);
    tc = tcase_create("sessions");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_new_session_first, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tp_test_run(stages_suite()); }
