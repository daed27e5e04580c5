/* The idle rings (ring_pool.h): a list, oldest first, under one lock. It holds a few
 * entries (the cap over a ring's size), so walking it is cheap. Rings leave the list under
 * the lock and are destroyed after it (an unmap and the freeing of its pages take
 * milliseconds). */
#include "ring_pool.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct idle_ring {
    tp_ring *ring;
    uid_t uid;
    double since;
    struct idle_ring *next;
} idle_ring;

struct tp_ring_pool {
    pthread_mutex_t lock;
    uint64_t cap, bytes, reused, rings;
    idle_ring *oldest; /* then ->next, newer */
};

int tp_ring_pool_create(tp_ring_pool **out, uint64_t cap_bytes, tp_error *err)
{
    *out = calloc(1, sizeof(**out));
    if (!*out)
        return tp__error_set(err, -ENOMEM, "ring pool: out of memory");
    pthread_mutex_init(&(*out)->lock, NULL);
    (*out)->cap = cap_bytes;
    return 0;
}

/* Unlinks the entry *at (under the lock). @return : it. */
static idle_ring *unlink_at(tp_ring_pool *p, idle_ring **at)
{
    idle_ring *e = *at;
    *at = e->next;
    p->bytes -= tp_ring_total_bytes(e->ring);
    p->rings--;
    return e;
}

/* Unlinks the oldest entry onto *doomed (under the lock). @return : its bytes. */
static uint64_t unlink_oldest(tp_ring_pool *p, idle_ring **doomed)
{
    idle_ring *e = unlink_at(p, &p->oldest);
    e->next = *doomed;
    *doomed = e;
    return tp_ring_total_bytes(e->ring);
}

static void destroy_all(idle_ring *e)
{
    for (idle_ring *next; e; e = next) {
        next = e->next;
        tp_ring_destroy(e->ring);
        free(e);
    }
}

void tp_ring_pool_destroy(tp_ring_pool *p)
{
    if (!p)
        return;
    destroy_all(p->oldest);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

tp_ring *tp_ring_pool_take(tp_ring_pool *p, uid_t uid, uint32_t nslots, uint64_t slot_bytes)
{
    idle_ring **at = NULL; /* the link to the newest match: its pages are likeliest cached */
    pthread_mutex_lock(&p->lock);
    for (idle_ring **l = &p->oldest; *l; l = &(*l)->next)
        if ((*l)->uid == uid && tp_ring_nslots((*l)->ring) == nslots &&
            tp_ring_slot_bytes((*l)->ring) == slot_bytes)
            at = l;
    idle_ring *e = at ? unlink_at(p, at) : NULL;
    p->reused += e != NULL;
    pthread_mutex_unlock(&p->lock);
    if (!e)
        return NULL;
    tp_ring *r = e->ring;
    free(e);
    tp_ring_reset(r);
    return r;
}

uint64_t tp_ring_pool_give(tp_ring_pool *p, uid_t uid, tp_ring *r, double now)
{
    uint64_t b = tp_ring_total_bytes(r), freed = 0;
    idle_ring *e = b <= p->cap ? malloc(sizeof(*e)) : NULL, *doomed = NULL;
    if (!e) {
        tp_ring_destroy(r);
        return b;
    }
    *e = (idle_ring){.ring = r, .uid = uid, .since = now};
    pthread_mutex_lock(&p->lock);
    while (p->oldest && p->bytes + b > p->cap)
        freed += unlink_oldest(p, &doomed);
    idle_ring **l = &p->oldest;
    while (*l)
        l = &(*l)->next;
    *l = e;
    p->bytes += b;
    p->rings++;
    pthread_mutex_unlock(&p->lock);
    destroy_all(doomed);
    return freed;
}

/* Destroys the oldest idle rings while fewer than `want` bytes are gone or the oldest has
 * been idle since before `before`. @return : the bytes destroyed. */
static uint64_t evict(tp_ring_pool *p, uint64_t want, double before)
{
    uint64_t freed = 0;
    idle_ring *doomed = NULL;
    pthread_mutex_lock(&p->lock);
    while (p->oldest && (freed < want || p->oldest->since < before))
        freed += unlink_oldest(p, &doomed);
    pthread_mutex_unlock(&p->lock);
    destroy_all(doomed);
    return freed;
}

uint64_t tp_ring_pool_shrink(tp_ring_pool *p, uint64_t want) { return evict(p, want, -1e300); }

uint64_t tp_ring_pool_expire(tp_ring_pool *p, double before) { return evict(p, 0, before); }

void tp_ring_pool_stats_get(tp_ring_pool *p, tp_ring_pool_stats *st)
{
    pthread_mutex_lock(&p->lock);
    *st = (tp_ring_pool_stats){.rings = p->rings, .bytes = p->bytes, .reused = p->reused};
    pthread_mutex_unlock(&p->lock);
}
