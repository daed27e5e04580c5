/* Rings kept between sessions. A session's ring is a memfd of tens of megabytes whose
 * pages the kernel allocates, clears and maps one fault at a time as the first batches
 * are written into it; a short session pays that for every page (2% of the daemon's time
 * at rrc224 for sessions of 5,000 images). A ring whose client has said it unmapped it
 * (TP_MSG_DETACHED) waits here, pages and all, for the next session of the same user
 * and geometry; rings idle for long, or past the byte cap, are destroyed oldest first.
 *
 * Only the same user gets a ring back: a client that lied about detaching can read or
 * write the rings of later sessions, and those are its own user's.
 *
 * Thread-safe. The caller keeps the memory budget: what the pool keeps stays counted,
 * and each call says how many bytes it destroyed. */
#ifndef TP_RING_POOL_H
#define TP_RING_POOL_H

#include "ring.h"

#include <sys/types.h>

typedef struct tp_ring_pool tp_ring_pool;

/* cap_bytes: the most the idle rings may hold together (0: none are kept). */
int tp_ring_pool_create(tp_ring_pool **out, uint64_t cap_bytes, tp_error *err);
void tp_ring_pool_destroy(tp_ring_pool *p); /* NULL allowed; destroys the idle rings */

/* An idle ring of this user and geometry, reset (tp_ring_reset), or NULL. */
tp_ring *tp_ring_pool_take(tp_ring_pool *p, uid_t uid, uint32_t nslots, uint64_t slot_bytes);

/* Keeps `r` (its client has detached), idle since `now` (seconds), destroying the oldest
 * idle rings to stay under the cap, or `r` itself if it is larger than the cap.
 * @return : the bytes destroyed. */
uint64_t tp_ring_pool_give(tp_ring_pool *p, uid_t uid, tp_ring *r, double now);

/* Destroys idle rings, oldest first, until `want` bytes are gone or none is left.
 * @return : the bytes destroyed. */
uint64_t tp_ring_pool_shrink(tp_ring_pool *p, uint64_t want);

/* Destroys the rings idle since before `before` (seconds). @return : the bytes destroyed. */
uint64_t tp_ring_pool_expire(tp_ring_pool *p, double before);

typedef struct tp_ring_pool_stats {
    uint64_t rings, bytes;  /* idle now */
    uint64_t reused;        /* rings handed to a session again */
} tp_ring_pool_stats;
void tp_ring_pool_stats_get(tp_ring_pool *p, tp_ring_pool_stats *st);

#endif
