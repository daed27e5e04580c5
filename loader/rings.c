/* Sessions' rings against the daemon's memory budget, and the idle rings kept between
 * sessions (shm/ring_pool.h). An idle ring stays counted in the budget; a session that
 * does not fit makes the oldest idle rings go first. */
#include "server_internal.h"

#include "fault.h"

/* Idle longer than this, a ring is destroyed (the accept loop checks once a second). */
#define RING_IDLE_S 60.0

int tp__server_ring(tp_server *s, uid_t uid, uint32_t nslots, uint64_t slot_bytes,
                    tp_ring **out, tp_error *err)
{
    *out = s->rings ? tp_ring_pool_take(s->rings, uid, nslots, slot_bytes) : NULL;
    if (*out)
        return 0; /* its bytes were counted while it waited */
    uint64_t bytes = TP_RING_HEADER_BYTES + (uint64_t)nslots * slot_bytes;
    int rc = tp__server_memory(s, (int64_t)bytes, s->rings ? NULL : err);
    if (rc < 0 && s->rings) { /* idle rings make room, oldest first, if they can */
        uint64_t need = tp__server_memory_short(s, bytes);
        tp_ring_pool_stats st;
        tp_ring_pool_stats_get(s->rings, &st);
        if (need && need <= st.bytes)
            tp__server_memory(s, -(int64_t)tp_ring_pool_shrink(s->rings, need), NULL);
        rc = tp__server_memory(s, (int64_t)bytes, err);
    }
    if (rc < 0)
        return rc;
    rc = tp__fault(TP_FAULT_SESSION_ALLOC)
             ? tp__error_set(err, -ENOMEM, "cannot create a ring: out of memory")
             : tp_ring_create(out, nslots, slot_bytes, err);
    if (rc < 0)
        tp__server_memory(s, -(int64_t)bytes, NULL);
    return rc;
}

void tp__server_ring_end(tp_server *s, uid_t uid, tp_ring *r, bool detached)
{
    if (!r)
        return;
    uint64_t freed;
    if (detached && s->rings && !atomic_load(&s->stopping)) {
        freed = tp_ring_pool_give(s->rings, uid, r, tp__now());
    } else {
        freed = tp_ring_total_bytes(r);
        tp_ring_destroy(r);
    }
    tp__server_memory(s, -(int64_t)freed, NULL);
}

void tp__server_rings_expire(tp_server *s)
{
    if (s->rings)
        tp__server_memory(s, -(int64_t)tp_ring_pool_expire(s->rings, tp__now() - RING_IDLE_S),
                          NULL);
}
