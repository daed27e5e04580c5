/* The daemon: a Unix SOCK_SEQPACKET listener, one thread per client session, and the
 * shared pipeline (one IO thread, one decode pool) that every session's batches go
 * through. Datasets are names resolved under one root directory and stay open, shared by
 * the sessions that read them. See docs/PROTOCOL.md for what a session looks like on the
 * wire and docs/ARCHITECTURE.md for the pipeline. */
#ifndef TP_SERVER_H
#define TP_SERVER_H

#include "pipeline.h"
#include "protocol.h"

typedef struct tp_server tp_server;

#define TP_ALLOW_MAX 32 /* entries in each allow list */

typedef struct tp_server_options {
    const char *root;          /* datasets are names under this directory */
    const char *socket;        /* the socket path to create */
    unsigned threads;          /* decode threads; 0: the number of CPUs */
    tp_io_kind io;
    bool direct;               /* O_DIRECT reads */
    uint64_t memory;           /* bytes all rings together may use; 0: 4 GiB */
    uint64_t ring_cache;       /* bytes of idle rings kept for later sessions; 0: 1 GiB */
    bool no_ring_cache;        /* keep none: every session's ring is new */
    bool skip_errors;          /* --on-error skip: leave bad samples out, count them */
    bool private_daemon;       /* exit when the last session ends (a client started us) */
    unsigned socket_mode;      /* 0: 0660, or 0666 with an allow list */
    /* Who may connect besides the daemon's own user and root: with neither list, members
     * of the daemon's group; with lists, exactly these users and members (primary or
     * supplementary) of these groups. */
    uint32_t allow_uid[TP_ALLOW_MAX];
    size_t nallow_uid;
    uint32_t allow_gid[TP_ALLOW_MAX];
    size_t nallow_gid;
    bool quiet;                /* no log lines on stderr */
    unsigned max_connections;  /* open at once, each with a thread; 0: 1024 */
    const char *cache_dir;     /* objects: a local cache of the ranges read (io.h) */
    uint64_t cache_bytes;
    unsigned queue_depth;      /* reads in flight (GETs for objects); 0: 64 */
    bool engine_only;          /* every read through the IO engine (pipeline.h) */
    tp_io_fault_fn io_fault;   /* tests only: the IO engine's fault injection hook */
    void *io_fault_ctx;
} tp_server_options;

/* Opens the root, creates the socket (refusing to replace a live one) and starts the
 * pipeline. @return : 0, or a negative code with `err` naming what failed. */
int tp_server_create(tp_server **out, const tp_server_options *o, tp_error *err);

/* Serves until tp_server_stop (or, for a private daemon, the last session's end).
 * @return : 0, or a negative code when accepting fails. */
int tp_server_run(tp_server *s);

/* Asks tp_server_run to return: no new sessions, running ones are ended. Async-signal
 * safe (it writes one byte to a pipe). */
void tp_server_stop(tp_server *s);

/* What sessions have done: one session's, or every session's since the daemon started. */
typedef struct tp_server_counts {
    uint64_t sessions;         /* sessions that asked for a dataset (in a total only) */
    uint64_t batches, samples, skipped, errors, bytes_read;
    uint64_t starved_us;       /* time clients had nothing to read */
    uint64_t in_flight;        /* batches being filled now */
} tp_server_counts;

/* One running session at one moment. */
typedef struct tp_server_session {
    uint64_t id;
    int pid;
    unsigned uid;
    char dataset[TP_NAME_MAX];
    char transform[128];         /* the pipeline (cut short when longer) */
    uint32_t rank, world;
    uint64_t batch_size, ring_bytes;
    double age_s;              /* since its connection was accepted */
    tp_server_counts c;
} tp_server_session;

/* The daemon's figures at one moment: what `turbopump stat` and the metrics show. */
typedef struct tp_server_figures {
    double uptime_s;
    double start_time;         /* Unix time the daemon started, in seconds */
    uint64_t memory_budget, memory_used; /* used: the idle rings too */
    uint64_t idle_rings, idle_ring_bytes; /* kept for later sessions */
    uint64_t rings_reused;               /* sessions given an idle ring */
    tp_stages_stats pipe;
    tp_server_counts total;    /* every session's, those that ended included */
    tp_server_session *sessions; /* the running sessions that named a dataset */
    size_t nsessions;
} tp_server_figures;

/* Takes the figures; free them with tp_server_figures_free. Any thread.
 * @return : 0 or -ENOMEM. */
int tp_server_figures_get(tp_server *s, tp_server_figures *out);
void tp_server_figures_free(tp_server_figures *f);

/* Ends the sessions, stops the pipeline, removes the socket. NULL allowed. */
void tp_server_destroy(tp_server *s);

#endif
