/* Unit tests of the idle rings kept between sessions: the pool itself (shm/ring_pool.c),
 * then the daemon's use of it (loader/rings.c): a session whose client detached leaves
 * its ring to the next session of the same user and geometry, which reads every byte
 * right; a client that vanished leaves nothing; idle rings give way to a session the
 * memory budget could not hold otherwise, and never pass their cap. */
#include "pattern_fx.h"

#include "ring_pool.h"

#include <sys/mman.h>
#include <sys/wait.h>

/* ---- the pool */

static tp_ring *new_ring(uint32_t nslots, uint64_t slot_bytes)
{
    tp_ring *r;
    tp_error err = {0};
    ck_assert_msg(tp_ring_create(&r, nslots, slot_bytes, &err) == 0, "%s", err.msg);
    return r;
}

static tp_ring_pool *new_pool(uint64_t cap)
{
    tp_ring_pool *p;
    tp_error err = {0};
    ck_assert_msg(tp_ring_pool_create(&p, cap, &err) == 0, "%s", err.msg);
    return p;
}

static tp_ring_pool_stats stats(tp_ring_pool *p)
{
    tp_ring_pool_stats st;
    tp_ring_pool_stats_get(p, &st);
    return st;
}

/* The header as a new consumer maps it. */
static void check_fresh_header(tp_ring *r)
{
    size_t bytes = (size_t)tp_ring_total_bytes(r);
    tp_ring_header *h = mmap(NULL, bytes, PROT_READ, MAP_SHARED, tp_ring_fd(r), 0);
    ck_assert_ptr_ne(h, MAP_FAILED);
    ck_assert_uint_eq(h->magic, TP_RING_MAGIC);
    ck_assert_uint_eq(h->nslots, tp_ring_nslots(r));
    ck_assert_uint_eq(h->slot_bytes, tp_ring_slot_bytes(r));
    ck_assert_uint_eq(h->total_bytes, bytes);
    ck_assert_uint_eq(atomic_load(&h->head), 0);
    ck_assert_uint_eq(atomic_load(&h->tail), 0);
    munmap(h, bytes);
}

/* A ring comes back only to its user and geometry, reset (header and the producer's
 * counters: every slot can be filled again), its slots' bytes kept. */
START_TEST(test_pool_take)
{
    tp_ring_pool *p = new_pool(UINT64_C(1) << 30);
    ck_assert_ptr_null(tp_ring_pool_take(p, 1, 4, 8192));
    tp_ring *r = new_ring(4, 8192);
    for (uint32_t q = 0; q < 3; q++) { /* counters moved on, as a session leaves them */
        ck_assert_int_eq(tp_ring_wait_free(r, q, 0), 0);
        memset(tp_ring_slot(r, q), 0x5a, 8192);
        tp_ring_publish(r, q);
    }
    ck_assert_uint_eq(tp_ring_pool_give(p, 1, r, 10.0), 0);
    ck_assert_uint_eq(stats(p).rings, 1);
    ck_assert_uint_eq(stats(p).bytes, tp_ring_total_bytes(r));
    ck_assert_ptr_null(tp_ring_pool_take(p, 2, 4, 8192));  /* another user */
    ck_assert_ptr_null(tp_ring_pool_take(p, 1, 8, 8192));  /* more slots */
    ck_assert_ptr_null(tp_ring_pool_take(p, 1, 4, 12288)); /* larger slots */
    ck_assert_uint_eq(stats(p).reused, 0);
    tp_ring *got = tp_ring_pool_take(p, 1, 4, 8192);
    ck_assert_ptr_eq(got, r);
    ck_assert_uint_eq(stats(p).rings, 0);
    ck_assert_uint_eq(stats(p).bytes, 0);
    ck_assert_uint_eq(stats(p).reused, 1);
    check_fresh_header(got);
    /* Nothing published yet: a consumer that claims to have released a slot is refused
     * (the producer's counters were reset too, not only the header's). */
    size_t bytes = (size_t)tp_ring_total_bytes(got);
    tp_ring_header *h = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                             tp_ring_fd(got), 0);
    ck_assert_ptr_ne(h, MAP_FAILED);
    atomic_store(&h->tail, 2);
    ck_assert_int_eq(tp_ring_wait_free(got, 0, 0), TP_EPROTOCOL);
    atomic_store(&h->tail, 0);
    munmap(h, bytes);
    for (uint32_t q = 0; q < 4; q++) { /* from 0 again: all four slots free */
        ck_assert_int_eq(tp_ring_wait_free(got, q, 0), 0);
        tp_ring_publish(got, q);
    }
    ck_assert_int_eq(tp_ring_wait_free(got, 4, 0), -ETIMEDOUT);
    ck_assert_uint_eq(tp_ring_slot(got, 0)[100], 0x5a);
    tp_ring_destroy(got);
    tp_ring_pool_destroy(p);
}
END_TEST

/* Of two matching rings the newer comes back first. */
START_TEST(test_pool_newest)
{
    tp_ring_pool *p = new_pool(UINT64_C(1) << 30);
    tp_ring *a = new_ring(2, 4096), *b = new_ring(2, 4096);
    tp_ring_pool_give(p, 7, a, 1.0);
    tp_ring_pool_give(p, 7, b, 2.0);
    ck_assert_ptr_eq(tp_ring_pool_take(p, 7, 2, 4096), b);
    ck_assert_ptr_eq(tp_ring_pool_take(p, 7, 2, 4096), a);
    ck_assert_ptr_null(tp_ring_pool_take(p, 7, 2, 4096));
    tp_ring_destroy(a);
    tp_ring_destroy(b);
    tp_ring_pool_destroy(p);
}
END_TEST

/* The cap: the oldest rings go to make room, a ring larger than the cap is not kept, and
 * every call says what it destroyed. */
START_TEST(test_pool_cap)
{
    tp_ring *r[4];
    for (int i = 0; i < 3; i++)
        r[i] = new_ring(1, 4096 * (uint64_t)(i + 1));
    uint64_t b0 = tp_ring_total_bytes(r[0]), b1 = tp_ring_total_bytes(r[1]),
             b2 = tp_ring_total_bytes(r[2]);
    tp_ring_pool *p = new_pool(b1 + b2);
    ck_assert_uint_eq(tp_ring_pool_give(p, 0, r[0], 1.0), 0);
    ck_assert_uint_eq(tp_ring_pool_give(p, 0, r[1], 2.0), 0);
    ck_assert_uint_eq(tp_ring_pool_give(p, 0, r[2], 3.0), b0); /* r[0] made room */
    ck_assert_uint_eq(stats(p).rings, 2);
    ck_assert_uint_eq(stats(p).bytes, b1 + b2);
    ck_assert_ptr_null(tp_ring_pool_take(p, 0, 1, 4096));
    r[3] = new_ring(1, b1 + b2); /* larger than the cap on its own */
    uint64_t b3 = tp_ring_total_bytes(r[3]);
    ck_assert_uint_eq(tp_ring_pool_give(p, 0, r[3], 4.0), b3);
    ck_assert_uint_eq(stats(p).rings, 2);
    ck_assert_uint_eq(stats(p).bytes, b1 + b2);
    tp_ring_pool_destroy(p);

    tp_ring_pool *none = new_pool(0); /* --ring-cache 0 keeps nothing */
    tp_ring *z = new_ring(1, 4096);
    ck_assert_uint_eq(tp_ring_pool_give(none, 0, z, 1.0), b0);
    ck_assert_uint_eq(stats(none).rings, 0);
    tp_ring_pool_destroy(none);
}
END_TEST

/* Shrinking destroys the oldest first until enough is gone; expiring, those idle since
 * before the time given. */
START_TEST(test_pool_shrink_expire)
{
    tp_ring_pool *p = new_pool(UINT64_C(1) << 30);
    tp_ring *r[4];
    for (int i = 0; i < 4; i++) {
        r[i] = new_ring(1, 4096);
        tp_ring_pool_give(p, 0, r[i], 10.0 * (i + 1));
    }
    uint64_t b = tp_ring_total_bytes(r[0]);
    ck_assert_uint_eq(tp_ring_pool_shrink(p, 1), b);         /* r[0] */
    ck_assert_uint_eq(tp_ring_pool_expire(p, 30.0), b);      /* r[1], idle since 20 */
    ck_assert_uint_eq(tp_ring_pool_expire(p, 30.0), 0);
    ck_assert_uint_eq(stats(p).rings, 2);
    ck_assert_ptr_eq(tp_ring_pool_take(p, 0, 1, 4096), r[3]);
    ck_assert_uint_eq(tp_ring_pool_shrink(p, UINT64_MAX), b); /* r[2]: all there is */
    ck_assert_uint_eq(stats(p).rings, 0);
    tp_ring_destroy(r[3]);
    tp_ring_pool_destroy(p);
}
END_TEST

/* ---- the daemon */

static tp_server_figures figures(daemon_fx *f)
{
    tp_server_figures fig;
    ck_assert_int_eq(tp_server_figures_get(f->srv, &fig), 0);
    tp_server_figures_free(&fig);
    fig.sessions = NULL;
    return fig;
}

/* A daemon serving the pattern dataset "ten" within `memory` (0: the default). */
static void start(daemon_fx *f, uint64_t memory)
{
    fx_init(f);
    write_ds(f->root, "ten");
    fx_start(f, false, memory);
}

/* Sessions one after another: the second and third get the first's ring (reused, and
 * counted once in the budget) and read every byte of two epochs in another order; a
 * session of another geometry gets a new ring, and both are kept. */
START_TEST(test_daemon_reuse)
{
    daemon_fx f;
    start(&f, 0);
    read_epochs_seeded(&f, 8, 1);
    tp_server_figures a = figures(&f);
    ck_assert_uint_eq(a.idle_rings, 1);
    ck_assert_uint_gt(a.idle_ring_bytes, 0);
    ck_assert_uint_eq(a.memory_used, a.idle_ring_bytes);
    ck_assert_uint_eq(a.rings_reused, 0);
    read_epochs_seeded(&f, 8, 2);
    read_epochs_seeded(&f, 8, 3);
    tp_server_figures b = figures(&f);
    ck_assert_uint_eq(b.rings_reused, 2);
    ck_assert_uint_eq(b.idle_rings, 1);
    ck_assert_uint_eq(b.memory_used, a.memory_used);
    read_epochs_seeded(&f, 32, 4);
    tp_server_figures c = figures(&f);
    ck_assert_uint_eq(c.rings_reused, 2);
    ck_assert_uint_eq(c.idle_rings, 2);
    ck_assert_uint_gt(c.idle_ring_bytes, a.idle_ring_bytes);
    ck_assert_uint_eq(c.memory_used, c.idle_ring_bytes);
    fx_done(&f);
}
END_TEST

/* A client that exits without closing its session never said it unmapped the ring: the
 * ring is destroyed, not kept, and the next session gets a new one. */
START_TEST(test_daemon_vanished_client)
{
    daemon_fx f;
    start(&f, 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        tp_client_options o = client_options(&f, "ten");
        tp_client *c;
        tp_batch b;
        if (tp_client_open(&c, &o, NULL) < 0 || tp_client_next(c, &b, NULL) < 0)
            _exit(3);
        _exit(0); /* the socket and the mapping just vanish */
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert(wait_idle(f.srv, 10000));
    tp_server_figures a = figures(&f);
    ck_assert_uint_eq(a.idle_rings, 0);
    ck_assert_uint_eq(a.memory_used, 0);
    read_epochs_seeded(&f, 4, 5);
    tp_server_figures b = figures(&f);
    ck_assert_uint_eq(b.rings_reused, 0);
    ck_assert_uint_eq(b.idle_rings, 1);
    fx_done(&f);
}
END_TEST

/* A budget that holds one ring of each of two geometries but not both: the idle ring of
 * the first gives way to a session of the second, which opens. */
START_TEST(test_daemon_budget)
{
    daemon_fx f;
    start(&f, 0); /* the rings' sizes, measured */
    read_epochs_seeded(&f, 8, 1);
    uint64_t small = figures(&f).idle_ring_bytes;
    read_epochs_seeded(&f, 32, 1);
    uint64_t large = figures(&f).idle_ring_bytes - small;
    ck_assert_uint_gt(large, small);
    fx_done(&f);

    start(&f, large + small / 2);
    read_epochs_seeded(&f, 8, 1);
    ck_assert_uint_eq(figures(&f).idle_ring_bytes, small);
    read_epochs_seeded(&f, 32, 2); /* refused, were the idle ring kept */
    tp_server_figures a = figures(&f);
    ck_assert_uint_eq(a.idle_rings, 1);
    ck_assert_uint_eq(a.idle_ring_bytes, large);
    ck_assert_uint_eq(a.memory_used, large);
    fx_done(&f);
}
END_TEST

/* The cap (serve --ring-cache): with room for one small ring, the newest idle ring is
 * kept and a larger one is not; with none (--ring-cache 0), no ring is kept. */
START_TEST(test_daemon_cap)
{
    daemon_fx f;
    start(&f, 0);
    read_epochs_seeded(&f, 8, 1);
    uint64_t small = figures(&f).idle_ring_bytes;
    fx_done(&f);

    fx_ring_cache = small;
    start(&f, 0);
    fx_ring_cache = 0;
    read_epochs_seeded(&f, 4, 1);
    read_epochs_seeded(&f, 8, 1);
    tp_server_figures a = figures(&f);
    ck_assert_uint_eq(a.idle_rings, 1);
    ck_assert_uint_eq(a.idle_ring_bytes, small);
    read_epochs_seeded(&f, 32, 1);
    tp_server_figures b = figures(&f);
    ck_assert_uint_eq(b.idle_rings, 1); /* the larger one did not fit */
    ck_assert_uint_eq(b.idle_ring_bytes, small);
    ck_assert_uint_eq(b.memory_used, small);
    fx_done(&f);

    fx_no_ring_cache = true;
    start(&f, 0);
    fx_no_ring_cache = false;
    read_epochs_seeded(&f, 8, 1);
    read_epochs_seeded(&f, 8, 2);
    tp_server_figures c = figures(&f);
    ck_assert_uint_eq(c.idle_rings, 0);
    ck_assert_uint_eq(c.rings_reused, 0);
    ck_assert_uint_eq(c.memory_used, 0);
    fx_done(&f);
}
END_TEST

static Suite *ring_pool_suite(void)
{
    Suite *s = suite_create("ring_pool");
    TCase *tc = tcase_create("pool");
    tcase_add_test(tc, test_pool_take);
    tcase_add_test(tc, test_pool_newest);
    tcase_add_test(tc, test_pool_cap);
    tcase_add_test(tc, test_pool_shrink_expire);
    suite_add_tcase(s, tc);
    TCase *td = tcase_create("daemon");
    tcase_set_timeout(td, 60);
    tcase_add_test(td, test_daemon_reuse);
    tcase_add_test(td, test_daemon_vanished_client);
    tcase_add_test(td, test_daemon_budget);
    tcase_add_test(td, test_daemon_cap);
    suite_add_tcase(s, td);
    return s;
}

int main(void) { return tp_test_run(ring_pool_suite()); }
