/* The posix backend: a small pool of threads, each doing one pread at a time from a
 * shared queue of slots, for kernels or sandboxes without io_uring. Results go back
 * through a completion queue; the engine's common part handles short reads and retries
 * exactly as for io_uring. */
#include "io_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct posix_state {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    unsigned *queue;        /* slots to read, FIFO of capacity queue_depth */
    unsigned qhead, qlen;
    unsigned *out_slots;    /* finished reads, FIFO of capacity queue_depth */
    int64_t *out_res;
    unsigned ohead, olen;
    bool stop;
    pthread_t *threads;
    unsigned nthreads;
} posix_state;

static int64_t read_slot(tp_io *io, unsigned s)
{
    tp__io_slot *slot = &io->slots[s];
    int fd = io->fds[slot->req.file];
    off_t off = (off_t)(slot->win_off + slot->got);
    ssize_t n = slot->req.iovcnt
                    ? preadv(fd, slot->rest, (int)tp__io_rest(slot), off)
                    : pread(fd, tp__io_buffer(io, s) + slot->got,
                            (size_t)(slot->len - slot->got), off);
    return n < 0 ? -errno : n;
}

static void *worker(void *arg)
{
    tp_io *io = arg;
    posix_state *p = io->state;
    unsigned qd = io->o.queue_depth;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->qlen == 0)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->stop)
            break;
        unsigned s = p->queue[p->qhead];
        p->qhead = (p->qhead + 1) % qd;
        p->qlen--;
        pthread_mutex_unlock(&p->mu);
        int64_t res = read_slot(io, s);
        pthread_mutex_lock(&p->mu);
        unsigned tail = (p->ohead + p->olen) % qd;
        p->out_slots[tail] = s;
        p->out_res[tail] = res;
        p->olen++;
        pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void posix_fini(tp_io *io)
{
    posix_state *p = io->state;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p->queue);
    free(p->out_slots);
    free(p->out_res);
    free(p);
    io->state = NULL;
}

static int posix_init(tp_io *io, tp_error *err)
{
    unsigned qd = io->o.queue_depth;
    posix_state *p = calloc(1, sizeof(*p));
    if (!p)
        return tp__error_set(err, -ENOMEM, "out of memory");
    io->state = p;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    p->queue = malloc(qd * sizeof(unsigned));
    p->out_slots = malloc(qd * sizeof(unsigned));
    p->out_res = malloc(qd * sizeof(int64_t));
    p->threads = malloc(io->o.threads * sizeof(pthread_t));
    if (!p->queue || !p->out_slots || !p->out_res || !p->threads) {
        posix_fini(io);
        return tp__error_set(err, -ENOMEM, "out of memory");
    }
    for (; p->nthreads < io->o.threads; p->nthreads++)
        if (pthread_create(&p->threads[p->nthreads], NULL, worker, io) != 0)
            break;
    if (p->nthreads == 0) {
        posix_fini(io);
        return tp__error_set(err, -EAGAIN, "io: cannot start reader threads");
    }
    return 0;
}

static int posix_start(tp_io *io, unsigned s)
{
    posix_state *p = io->state;
    pthread_mutex_lock(&p->mu);
    p->queue[(p->qhead + p->qlen) % io->o.queue_depth] = s;
    p->qlen++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static int posix_flush(tp_io *io) { return 0; }

static int posix_wait(tp_io *io, unsigned *slots, int64_t *results, unsigned max,
                      unsigned min)
{
    posix_state *p = io->state;
    pthread_mutex_lock(&p->mu);
    while (p->olen < min)
        pthread_cond_wait(&p->done, &p->mu);
    unsigned n = TP_MIN(p->olen, max);
    for (unsigned i = 0; i < n; i++) {
        slots[i] = p->out_slots[p->ohead];
        results[i] = p->out_res[p->ohead];
        p->ohead = (p->ohead + 1) % io->o.queue_depth;
    }
    p->olen -= n;
    pthread_mutex_unlock(&p->mu);
    return (int)n;
}

const tp__io_backend tp__io_posix_backend = {
    .name = "posix", .init = posix_init, .start = posix_start, .flush = posix_flush,
    .wait = posix_wait, .fini = posix_fini};
