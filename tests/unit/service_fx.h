/* The daemon fixture of the service tests (check_service.c, check_windows.c): a daemon
 * started in-process on a socket in a fresh directory, serving dir/root, and small client
 * helpers. */
#ifndef TP_SERVICE_FX_H
#define TP_SERVICE_FX_H

#include "testutil.h"

#include "server.h"

#include <turbopump/client.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/uio.h>

/* ---- the daemon under test */

typedef struct daemon_fx {
    char *dir;                 /* the test's scratch directory */
    char *root;                /* dir/root: the datasets the daemon serves */
    char *sock;                /* dir/tp.sock */
    tp_server *srv;
    pthread_t thread;
    bool running;
    int run_rc;
} daemon_fx;

static inline void fx_init(daemon_fx *f)
{
    memset(f, 0, sizeof(*f));
    f->dir = tp_test_mkdtemp();
    f->root = tp_test_path(f->dir, "root");
    f->sock = tp_test_path(f->dir, "tp.sock");
    ck_assert_int_eq(mkdir(f->root, 0755), 0);
}

static inline void *server_main(void *arg)
{
    daemon_fx *f = arg;
    f->run_rc = tp_server_run(f->srv);
    return NULL;
}

/* The IO engine's fault hook for the next fx_start (NULL: none). */
static tp_io_fault_fn fx_io_fault;
static void *fx_io_fault_ctx;

/* memory: the rings' budget; 0 for the default (4 GiB). */
static unsigned fx_max_connections; /* likewise; 0: the default */
static bool fx_engine_only;         /* likewise: every read through the IO engine */
static uint64_t fx_ring_cache;      /* likewise: the idle rings' cap; 0: the default */
static bool fx_no_ring_cache;       /* likewise: no ring kept between sessions */
static unsigned fx_queue_depth;     /* likewise: the IO engine's reads in flight; 0: 64 */

static inline void fx_start(daemon_fx *f, bool skip_errors, uint64_t memory)
{
    tp_server_options o = {.root = f->root, .socket = f->sock, .threads = 2,
                           .memory = memory, .skip_errors = skip_errors, .quiet = true,
                           .io_fault = fx_io_fault, .io_fault_ctx = fx_io_fault_ctx,
                           .max_connections = fx_max_connections,
                           .engine_only = fx_engine_only, .ring_cache = fx_ring_cache,
                           .no_ring_cache = fx_no_ring_cache, .queue_depth = fx_queue_depth};
    tp_error err = {0};
    ck_assert_msg(tp_server_create(&f->srv, &o, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(pthread_create(&f->thread, NULL, server_main, f), 0);
    f->running = true;
}

/* Stops the accept loop and joins it; the sessions end on their own. */
static inline void fx_stop(daemon_fx *f)
{
    if (!f->running)
        return;
    tp_server_stop(f->srv);
    ck_assert_int_eq(pthread_join(f->thread, NULL), 0);
    f->running = false;
    ck_assert_int_eq(f->run_rc, 0);
}

static inline void fx_done(daemon_fx *f)
{
    fx_stop(f);
    tp_server_destroy(f->srv);
    ck_assert_int_ne(access(f->sock, F_OK), 0); /* destroy removes the socket */
    free(f->root);
    free(f->sock);
    tp_test_rmdir(f->dir);
}

/* ---- clients */

/* Whether a read that must not wait works on files in `dir` (it does not on every file
 * system); the daemon then reads every record through the engine. */
static inline bool fx_nowait_works(const char *dir)
{
    char *path = tp_test_path(dir, "probe");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "x", 1), 1);
    char b;
    struct iovec v = {.iov_base = &b, .iov_len = 1};
    bool ok = preadv2(fd, &v, 1, 0, RWF_NOWAIT) == 1;
    close(fd);
    unlink(path);
    free(path);
    return ok;
}

/* The daemon's pipeline figures now. */
static inline tp_stages_stats fx_pipe_stats(daemon_fx *f)
{
    tp_server_figures fig;
    ck_assert_int_eq(tp_server_figures_get(f->srv, &fig), 0);
    tp_stages_stats s = fig.pipe;
    tp_server_figures_free(&fig);
    return s;
}

static inline tp_client_options client_options(const daemon_fx *f, const char *dataset)
{
    return (tp_client_options){.socket = f->sock, .dataset = dataset, .batch_size = 4,
                               .no_autostart = true, .timeout_ms = 20000};
}

static inline tp_client *client_open(const tp_client_options *o)
{
    tp_client *c = NULL;
    tp_error err = {0};
    int rc = tp_client_open(&c, o, &err);
    ck_assert_msg(rc == 0, "open %s: %s (%s)", o->dataset, tp_strerror(rc), err.msg);
    return c;
}

static inline const tp_batch_field *batch_field(const tp_batch *b, const char *name)
{
    for (uint32_t i = 0; i < b->nfields; i++)
        if (!strcmp(b->fields[i].name, name))
            return &b->fields[i];
    ck_abort_msg("batch has no field '%s'", name);
    return NULL;
}

/* Reads `n` batches and appends their ids to ids[] (cap entries). @return : ids read. */
static inline size_t read_ids(tp_client *c, uint64_t n, uint64_t *ids, size_t cap)
{
    size_t k = 0;
    for (uint64_t i = 0; i < n; i++) {
        tp_batch b;
        tp_error err = {0};
        int rc = tp_client_next(c, &b, &err);
        ck_assert_msg(rc == 0, "batch %llu: %s (%s)", (unsigned long long)i, tp_strerror(rc),
                      err.msg);
        ck_assert_uint_le(k + b.samples, cap);
        memcpy(ids + k, b.ids, b.samples * sizeof(uint64_t));
        k += b.samples;
    }
    return k;
}

#endif
