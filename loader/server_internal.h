/* What server.c (listener, datasets, statistics) and session.c (one client's session)
 * share. */
#ifndef TP_SERVER_INTERNAL_H
#define TP_SERVER_INTERNAL_H

#include "protocol.h"
#include "ring_pool.h"
#include "server.h"

#include <turbopump/tokens.h>

#include <pthread.h>
#include <stdatomic.h>

/* A dataset opened for serving: its shards registered with the IO engine, its zstd
 * dictionary digested once. Open until the daemon exits. */
typedef struct tp_served {
    char *name;                /* as the client named it */
    char *path;                /* resolved under the root */
    tp_dataset *ds;            /* a sample dataset, or */
    tp_tokens *tok;            /* a token dataset (read as windows) */
    int *files;                /* engine file index per shard */
    tp_zstd_dict *dict;        /* NULL without a dictionary */
    struct tp_served *next;
} tp_served;

typedef struct tp_session tp_session;

/* Per-session figures, read by STAT while the session runs. */
typedef struct tp_session_stats {
    _Atomic uint64_t batches, samples, skipped, errors, bytes_read;
    _Atomic uint64_t starved_us;      /* time the client had nothing to read */
    _Atomic uint64_t in_flight;       /* batches being filled */
} tp_session_stats;

struct tp_session {
    tp_server *srv;
    int sock;
    pid_t pid;
    uid_t uid;
    char refusal[160];                /* why the peer may not use the daemon; "" if it may */
    uint64_t id;
    pthread_t thread;
    _Atomic bool done;                /* the thread finished; the server may join it */
    double started;
    char dataset[TP_NAME_MAX];
    char transform[128];
    uint32_t rank, world;
    uint64_t batch_size;
    _Atomic uint64_t ring_bytes;       /* read by STAT while the session runs */
    tp_session_stats st;
    tp_session *next;
};

struct tp_server {
    tp_server_options o;
    char *root;                /* realpath of the root */
    char *socket_path;
    int listen_fd;
    int stop_pipe[2];
    tp_stages *pipe;
    pthread_mutex_t lock;      /* sessions, datasets, memory */
    tp_session *sessions;
    tp_served *datasets;
    uint64_t memory_used;      /* the sessions' rings and the idle ones */
    tp_ring_pool *rings;       /* idle rings; NULL with --ring-cache 0 */
    uint64_t next_id;
    tp_server_counts ended;    /* the sessions reaped so far, under lock */
    _Atomic bool stopping;
    double started;
};

/* Runs one session on its own thread (started by the server). */
void *tp__session_main(void *arg);

/* Resolves `name` under the root and opens it, or returns the open one.
 * @return : 0, TP_EUSAGE (a name that leaves the root), or the open error. */
int tp__server_dataset(tp_server *s, const char *name, tp_served **out, tp_error *err);

/* Reserves (bytes > 0) or returns (bytes < 0) ring memory against the budget.
 * @return : 0 or TP_ETOOBIG. */
int tp__server_memory(tp_server *s, int64_t bytes, tp_error *err);

/* How far a reservation of `bytes` would pass the budget now (0: it fits). */
uint64_t tp__server_memory_short(tp_server *s, uint64_t bytes);

/* A ring for a session of user `uid` (rings.c): an idle one of this geometry that a
 * client of the same user detached from, or a new one reserved against the budget (idle
 * rings destroyed, oldest first, to make room).
 * @return : 0, TP_ETOOBIG (the budget), or the creation's error. */
int tp__server_ring(tp_server *s, uid_t uid, uint32_t nslots, uint64_t slot_bytes,
                    tp_ring **out, tp_error *err);

/* The session's end: `r` kept for a later session if its client said it detached
 * (TP_MSG_DETACHED), destroyed otherwise; the budget gets back what was destroyed. */
void tp__server_ring_end(tp_server *s, uid_t uid, tp_ring *r, bool detached);

/* Destroys the rings idle for a minute (the accept loop, once a second). */
void tp__server_rings_expire(tp_server *s);

/* The daemon-wide figures as JSON into `buf`. */
void tp__server_stat_json(tp_server *s, char *buf, size_t cap);

/* Wakes the accept loop to collect finished sessions (a private daemon may exit). */
void tp__server_wake(tp_server *s);

/* A log line on stderr (unless quiet). */
void tp__server_log(const tp_server *s, const char *fmt, ...) TP_PRINTF(2, 3);

double tp__now(void);

#endif
