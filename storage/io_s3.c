/* The object-storage backend: ranged GETs through libcurl's multi interface, one per read
 * slot, all in flight at once, for files that are objects (tp_io_add_object). It works
 * beside the engine's file backend: io.c routes each read by its file. Bytes land in the
 * slot's buffer (or the caller's iovecs) as they arrive.
 *
 * A transfer that fails for a transient reason (5xx, 429, reset, timeout) is started again
 * after a backoff (s3.h), up to AWS_MAX_ATTEMPTS tries without progress, then fails with
 * TP_EUNAVAILABLE; one that ends early after some bytes is reported as a short read, and
 * the engine's common part asks for the rest, as it does for files. */
#include "io_internal.h"
#include "s3.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct s3_slot {
    CURL *h;
    tp_s3_range r;
    unsigned attempts;  /* tries in a row without progress */
    uint64_t retry_at;  /* ms clock; 0: not waiting */
    bool active;        /* in the multi handle */
} s3_slot;

typedef struct s3_state {
    CURLM *multi;
    s3_slot *slots;
    unsigned *out_slots; /* finished, not yet collected */
    int64_t *out_res;
    unsigned nout;
    unsigned waiting;    /* slots in backoff */
    int running;
    tp__s3_cache *cache; /* --cache, or NULL */
} s3_state;

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

int tp__io_s3_init(tp_io *io, tp_error *err)
{
    s3_state *st = calloc(1, sizeof(*st));
    unsigned qd = io->o.queue_depth;
    if (!st || !(st->slots = calloc(qd, sizeof(*st->slots))) ||
        !(st->out_slots = calloc(qd, sizeof(unsigned))) ||
        !(st->out_res = calloc(qd, sizeof(int64_t))) || !(st->multi = curl_multi_init())) {
        if (st) {
            free(st->slots), free(st->out_slots), free(st->out_res);
            free(st);
        }
        return tp__error_set(err, -ENOMEM, "io: out of memory for object storage reads");
    }
    io->s3 = st;
    if (io->o.cache_dir) {
        int rc = tp__s3_cache_open(&st->cache, io->o.cache_dir, io->o.cache_bytes, err);
        if (rc < 0) {
            tp__io_s3_fini(io);
            return rc;
        }
    }
    return 0;
}

void tp__io_s3_fini(tp_io *io)
{
    s3_state *st = io->s3;
    if (!st)
        return;
    for (unsigned i = 0; i < io->o.queue_depth; i++)
        if (st->slots[i].h) {
            if (st->slots[i].active)
                curl_multi_remove_handle(st->multi, st->slots[i].h);
            curl_easy_cleanup(st->slots[i].h);
        }
    curl_multi_cleanup(st->multi);
    tp__s3_cache_close(st->cache);
    free(st->slots);
    free(st->out_slots);
    free(st->out_res);
    free(st);
    io->s3 = NULL;
}

/* Adds the transfer for what slot s still needs. */
static int launch(tp_io *io, unsigned s)
{
    s3_state *st = io->s3;
    s3_slot *q = &st->slots[s];
    tp__io_slot *slot = &io->slots[s];
    if (!q->h && !(q->h = curl_easy_init()))
        return -ENOMEM;
    q->r = (tp_s3_range){.want = slot->len - slot->got};
    if (slot->req.iovcnt) {
        q->r.iovcnt = tp__io_rest(slot);
        memcpy(q->r.iov, slot->rest, q->r.iovcnt * sizeof(struct iovec));
    } else {
        q->r.iov[0] = (struct iovec){.iov_base = tp__io_buffer(io, s) + slot->got,
                                     .iov_len = slot->len - slot->got};
        q->r.iovcnt = 1;
    }
    TP_TRY(tp_s3_range_setup(io->objects[slot->req.file], q->h, slot->win_off + slot->got,
                             &q->r));
    if (curl_multi_add_handle(st->multi, q->h) != CURLM_OK)
        return -ENOMEM;
    q->active = true;
    return 0;
}

/* The whole of slot s's request as iovecs. */
static unsigned whole(tp_io *io, unsigned s, struct iovec *v)
{
    tp__io_slot *slot = &io->slots[s];
    if (slot->req.iovcnt) {
        memcpy(v, slot->req.iov, slot->req.iovcnt * sizeof(struct iovec));
        return slot->req.iovcnt;
    }
    v[0] = (struct iovec){.iov_base = tp__io_buffer(io, s), .iov_len = slot->len};
    return 1;
}

static void complete(s3_state *st, unsigned s, int64_t res)
{
    st->out_slots[st->nout] = s;
    st->out_res[st->nout++] = res;
}

int tp__io_s3_start(tp_io *io, unsigned s)
{
    s3_state *st = io->s3;
    st->slots[s].attempts = 0;
    st->slots[s].retry_at = 0;
    tp__io_slot *slot = &io->slots[s];
    struct iovec v[TP_IO_MAX_IOV];
    if (st->cache && slot->got == 0 &&
        tp__s3_cache_get(st->cache, slot->req.file, slot->win_off, slot->len, v,
                         whole(io, s, v))) {
        complete(st, s, (int64_t)slot->len);
        return 0;
    }
    return launch(io, s);
}

int tp__io_s3_flush(tp_io *io)
{
    s3_state *st = io->s3;
    return curl_multi_perform(st->multi, &st->running) == CURLM_OK ? 0 : -EIO;
}

/* Handles the transfers curl has finished. */
static void collect(tp_io *io)
{
    s3_state *st = io->s3;
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(st->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *h = m->easy_handle;
        CURLcode code = m->data.result;
        unsigned s = 0;
        while (s < io->o.queue_depth && st->slots[s].h != h)
            s++;
        assert(s < io->o.queue_depth);
        s3_slot *q = &st->slots[s];
        curl_multi_remove_handle(st->multi, h);
        q->active = false;
        tp__io_slot *slot = &io->slots[s];
        tp_error err;
        int rc = tp_s3_range_result(io->objects[slot->req.file], h, (int)code, &q->r, &err);
        if (rc == 0 && st->cache && slot->got == 0 && q->r.got == slot->len) {
            struct iovec v[TP_IO_MAX_IOV];
            tp__s3_cache_put(st->cache, slot->req.file, slot->win_off, slot->len, v,
                             whole(io, s, v));
        }
        if (rc < 0) {
            complete(st, s, rc);
        } else if (q->r.got > 0) {
            complete(st, s, (int64_t)q->r.got); /* all, or a short read to continue */
        } else if (rc == 1 && ++q->attempts < tp_s3_max_attempts()) {
            q->retry_at = now_ms() + tp_s3_backoff_ms(q->attempts);
            st->waiting++;
        } else {
            complete(st, s, rc == 1 ? TP_EUNAVAILABLE : TP_ETRUNCATED);
        }
    }
}

/* Starts the transfers whose backoff is over. @return : ms until the next, or -1. */
static long relaunch(tp_io *io)
{
    s3_state *st = io->s3;
    long next = -1;
    if (!st->waiting)
        return -1;
    uint64_t now = now_ms();
    for (unsigned s = 0; s < io->o.queue_depth; s++) {
        s3_slot *q = &st->slots[s];
        if (!q->retry_at)
            continue;
        if (q->retry_at <= now) {
            q->retry_at = 0;
            st->waiting--;
            if (launch(io, s) < 0)
                complete(st, s, -ENOMEM);
        } else if (next < 0 || (long)(q->retry_at - now) < next) {
            next = (long)(q->retry_at - now);
        }
    }
    return next;
}

void tp_io_cache_stats(const tp_io *io, uint64_t *hits, uint64_t *misses, uint64_t *bytes)
{
    const s3_state *st = io->s3;
    tp__s3_cache_stats cs = {0};
    if (st && st->cache)
        tp__s3_cache_stats_get(st->cache, &cs);
    *hits = cs.hits, *misses = cs.misses, *bytes = cs.bytes;
}

int tp__io_s3_wait(tp_io *io, unsigned *slots, int64_t *results, unsigned max, unsigned min,
                   int timeout_ms)
{
    s3_state *st = io->s3;
    uint64_t deadline = timeout_ms >= 0 ? now_ms() + (uint64_t)timeout_ms : 0;
    for (;;) {
        if (curl_multi_perform(st->multi, &st->running) != CURLM_OK)
            return -EIO;
        collect(io);
        long next = relaunch(io);
        if (st->nout >= TP_MAX(min, 1u) || (min == 0 && timeout_ms == 0))
            break;
        if (timeout_ms >= 0 && now_ms() >= deadline)
            break;
        if (!st->running && !st->waiting)
            break;
        long wait = 1000;
        if (next >= 0)
            wait = TP_MIN(wait, next);
        if (timeout_ms >= 0)
            wait = TP_MIN(wait, (long)(deadline - TP_MIN(deadline, now_ms())));
        if (curl_multi_poll(st->multi, NULL, 0, (int)wait, NULL) != CURLM_OK)
            return -EIO;
    }
    unsigned n = TP_MIN(st->nout, max);
    memcpy(slots, st->out_slots, n * sizeof(unsigned));
    memcpy(results, st->out_res, n * sizeof(int64_t));
    memmove(st->out_slots, st->out_slots + n, (st->nout - n) * sizeof(unsigned));
    memmove(st->out_res, st->out_res + n, (st->nout - n) * sizeof(int64_t));
    st->nout -= n;
    return (int)n;
}
