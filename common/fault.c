/* Fault injection points (fault.h). */
#include "fault.h"

#include <pthread.h>

_Atomic unsigned tp__faults_armed;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uint64_t pass, fail, fired;
} points[TP_FAULT_POINTS];

void tp__fault_arm(tp_fault_point p, uint64_t pass, uint64_t fail)
{
    pthread_mutex_lock(&lock);
    points[p].pass = pass;
    points[p].fail = fail;
    points[p].fired = 0;
    atomic_fetch_add(&tp__faults_armed, 1);
    pthread_mutex_unlock(&lock);
}

void tp__fault_disarm(void)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < TP_FAULT_POINTS; i++)
        points[i].pass = points[i].fail = 0;
    atomic_store(&tp__faults_armed, 0);
    pthread_mutex_unlock(&lock);
}

uint64_t tp__fault_fired(tp_fault_point p)
{
    pthread_mutex_lock(&lock);
    uint64_t n = points[p].fired;
    pthread_mutex_unlock(&lock);
    return n;
}

bool tp__fault_hit(tp_fault_point p)
{
    pthread_mutex_lock(&lock);
    bool fail = false;
    if (points[p].pass)
        points[p].pass--;
    else if (points[p].fail) {
        points[p].fail--;
        points[p].fired++;
        fail = true;
    }
    pthread_mutex_unlock(&lock);
    return fail;
}
