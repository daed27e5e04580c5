/* Fault injection for tests: named points in the code ask tp__fault() whether to fail as
 * if the operation there (an allocation, say) had failed. Tests arm a point with
 * tp__fault_arm(); unarmed, a point costs one relaxed atomic load. Nothing outside the
 * test suite arms them: there is no environment variable or option for it. */
#ifndef TP_FAULT_H
#define TP_FAULT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum tp_fault_point {
    TP_FAULT_SESSION_ALLOC, /* a session's own allocations when it opens (ring included) */
    TP_FAULT_GROW,          /* a buffer growing: decode scratch, records, image pixels */
    TP_FAULT_POINTS
} tp_fault_point;

extern _Atomic unsigned tp__faults_armed;

/* From now on, the next `pass` hits of `p` succeed and the `fail` after them fail. */
void tp__fault_arm(tp_fault_point p, uint64_t pass, uint64_t fail);
/* Disarms every point. */
void tp__fault_disarm(void);
/* How many times `p` failed since it was last armed. */
uint64_t tp__fault_fired(tp_fault_point p);

bool tp__fault_hit(tp_fault_point p);

/* @return : true when the caller should fail as if its operation had. */
static inline bool tp__fault(tp_fault_point p)
{
    return atomic_load_explicit(&tp__faults_armed, memory_order_relaxed) && tp__fault_hit(p);
}

#endif
