/* Unit tests of the order in which tasks are read and decoded (loader/pipeline.c): the
 * lowest tp_task.ahead first, FIFO among equals, whatever the order of submission. The
 * stage tests' records are in memory (a mapping, as LMDB's values are), so no read goes
 * through the IO engine and the order is the decode queue's alone. The daemon tests check
 * that sessions set it (loader/session.c), through the decode queue and through the reads
 * waiting for the engine: a session that starts while another fills its window is served
 * first, and a session's later batches keep their submission order. */
#include "pattern_fx.h"

#include "pipeline.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

static const unsigned char record[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

enum { MAX_TASKS = 64 };

typedef struct order {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool gate_running, gate_open;
    unsigned ran[MAX_TASKS], n;
    unsigned bad;              /* runs with other bytes or an error, or past MAX_TASKS */
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
    order *o = t->ctx; /* checked by the test's thread: this is a decode thread */
    pthread_mutex_lock(&o->lock);
    if (rc != 0 || data != record || len != sizeof(record) || o->n == MAX_TASKS)
        o->bad++;
    else
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

    ck_assert_uint_le(n, MAX_TASKS);
    tp_task tasks[MAX_TASKS], *ptrs[MAX_TASKS];
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
    while (o.n + o.bad < n)
        pthread_cond_wait(&o.cond, &o.lock);
    pthread_mutex_unlock(&o.lock);
    tp_stages_destroy(p); /* after every task has run: none ran twice */
    ck_assert_uint_eq(o.bad, 0);
    ck_assert_uint_eq(o.n, n);
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

/* Every read waits while the gate is shut, so the test queues what it wants first; the
 * samples whose reads passed it, in order. The fault hook's tag is the read's task (its
 * low bit set for a decode thread's page-cache read). */
typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool open;
    uint64_t ids[4 * N];
    unsigned n;
} gate;

static void gated_read(void *ctx, uint64_t tag, uint64_t offset, int64_t *res)
{
    (void)offset, (void)res;
    gate *g = ctx;
    const tp_task *t = (const tp_task *)(uintptr_t)(tag & ~(uint64_t)1);
    pthread_mutex_lock(&g->lock);
    while (!g->open)
        pthread_cond_wait(&g->cond, &g->lock);
    if (g->n < 4 * N)
        g->ids[g->n++] = t->id;
    pthread_mutex_unlock(&g->lock);
}

/* How many reads passed the gate before the first of batch `b`'s records. */
static unsigned reads_before(gate *g, const tp_batch *b)
{
    pthread_mutex_lock(&g->lock);
    unsigned first = g->n;
    for (uint32_t i = 0; i < b->samples; i++)
        for (unsigned k = 0; k < first; k++)
            if (g->ids[k] == b->ids[i])
                first = k;
    unsigned n = g->n;
    pthread_mutex_unlock(&g->lock);
    ck_assert_msg(first < n, "no read of the batch passed the gate");
    return first;
}

static void gate_set(gate *g, bool open)
{
    pthread_mutex_lock(&g->lock);
    g->open = open;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

/* The batches rank `rank`'s session has published and has in flight (UINT64_MAX when
 * it has no session). */
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

static void wait_in_flight(daemon_fx *f, uint32_t rank, uint64_t want)
{
    uint64_t in_flight = 0;
    for (int waited = 0; rank_batches(f, rank, &in_flight) == UINT64_MAX || in_flight < want;
         waited++) {
        ck_assert_msg(waited < 10000, "rank %u's session did not start %llu batches", rank,
                      (unsigned long long)want);
        usleep(1000);
    }
}

/* A daemon whose reads wait at the gate. engine: every read through the IO engine, 8 in
 * flight (also when the file system refuses reads that must not wait); otherwise the
 * decode threads read from the page cache. @return : engine. */
static bool gated_daemon(daemon_fx *f, gate *g, bool engine)
{
    fx_init(f);
    write_ds(f->root, "t");
    engine = engine || !fx_nowait_works(f->dir);
    fx_io_fault = gated_read;
    fx_io_fault_ctx = g;
    fx_engine_only = engine;
    fx_queue_depth = engine ? 8 : 0;
    fx_start(f, false, 0);
    fx_io_fault = NULL;
    fx_io_fault_ctx = NULL;
    fx_engine_only = false;
    fx_queue_depth = 0;
    return engine;
}

/* Rank 0 opens and reads nothing, so its session fills its 4 slots; rank 1 opens while
 * the reads of all of them wait. Its first batch (0 ahead) must be read before rank 0's
 * later ones (1 to 3 ahead): in submission order it would come after all four.
 * _i 0: the decode threads read the records from the page cache, so the order is the
 * decode queue's: rank 0's first batch, then rank 1's. _i 1: every read through the IO
 * engine, 8 at a time (rank 0's window is 64), so the order is that of the reads waiting
 * for it; rank 0's second batch may have gone to the engine before rank 1's reads
 * reached the IO thread. The IO thread takes rank 0's first batch whole and holds the 8
 * reads the engine has no room for: those count as queued too. */
START_TEST(test_new_session_first)
{
    daemon_fx f;
    gate g = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    bool engine = gated_daemon(&f, &g, _i == 1);
    tp_client_options o = client_options(&f, "t");
    o.batch_size = 16, o.world_size = 2, o.prefetch = 4;
    o.rank = 0;
    tp_client *a = client_open(&o);
    wait_in_flight(&f, 0, 4);
    ck_assert_uint_eq(rank_batches(&f, 0, NULL), 0);
    o.rank = 1;
    tp_client *b = client_open(&o);
    wait_in_flight(&f, 1, 4);
    /* engine: all reads wait but the engine's 8 (once the IO thread has submitted them),
     * whether the IO thread has taken them from its inbox or not */
    uint64_t want = 8 * o.batch_size - 8;
    for (int waited = 0; engine && fx_pipe_stats(&f).io_queued != want; waited++) {
        ck_assert_msg(waited < 5000, "%llu reads queued for the engine, want %llu",
                      (unsigned long long)fx_pipe_stats(&f).io_queued, (unsigned long long)want);
        usleep(1000);
    }
    gate_set(&g, true);
    tp_batch batch;
    tp_error err = {0};
    ck_assert_msg(tp_client_next(b, &batch, &err) == 0, "%s", err.msg);
    unsigned before = reads_before(&g, &batch), most = 2 * o.batch_size;
    ck_assert_msg(before <= most, "rank 1's first batch read after %u reads, want %u at most",
                  before, most);
    tp_stages_stats st = fx_pipe_stats(&f);
    if (engine)
        ck_assert_uint_eq(st.page_cache_reads, 0);
    else
        ck_assert_uint_gt(st.page_cache_reads, 0);
    tp_client_close(b);
    tp_client_close(a);
    fx_done(&f);
}
END_TEST

/* Past its first window a session's batches come in submission order, whatever its
 * prefetch: rank 1 (prefetch 1, so its one batch is always the next it needs) has read its
 * first batch when rank 0 opens; the batch it asks for then is read after rank 0's window,
 * which was queued before it (after its first 3 batches at least, at lower levels; at
 * rank 0's level its reads could be read before them). */
START_TEST(test_later_batches_in_order)
{
    daemon_fx f;
    gate g = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    gated_daemon(&f, &g, _i == 1);
    tp_client_options o = client_options(&f, "t");
    o.batch_size = 16, o.world_size = 2;
    o.rank = 1, o.prefetch = 1, o.hold = 1;
    tp_client *b = client_open(&o);
    gate_set(&g, true);
    tp_batch first, second;
    tp_error err = {0};
    ck_assert_msg(tp_client_next(b, &first, &err) == 0, "%s", err.msg);
    gate_set(&g, false);
    o.rank = 0, o.prefetch = 4, o.hold = 0;
    tp_client *a = client_open(&o);
    wait_in_flight(&f, 0, 4);
    ck_assert_int_eq(tp_client_release(b, &first), 0);
    wait_in_flight(&f, 1, 1);
    gate_set(&g, true);
    ck_assert_msg(tp_client_next(b, &second, &err) == 0, "%s", err.msg);
    unsigned before = reads_before(&g, &second), want = 4 * o.batch_size;
    ck_assert_msg(before >= want, "rank 1's second batch read after %u reads, want %u", before,
                  want);
    ck_assert_int_eq(tp_client_release(b, &second), 0);
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
    tcase_add_loop_test(tc, test_later_batches_in_order, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tp_test_run(stages_suite()); }
