/* The daemon's front: the listening socket, peer checks, session threads, the datasets
 * open for serving, the memory budget and the figures `turbopump stat` shows. Sessions run
 * in session.c; the shared IO thread and decode pool in pipeline.c. */
#include "server_internal.h"
#include "s3.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

double tp__now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

void tp__server_log(const tp_server *s, const char *fmt, ...)
{
    if (s->o.quiet)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "turbopump serve: %s\n", line);
}

/* ---- datasets */

/* A dataset name is a relative path of plain components: no "..", ".", empty or absolute
 * parts. Symlinks are resolved and the result must still be under the root. */
static int resolve(const tp_server *s, const char *name, char **out, tp_error *err)
{
    size_t n = strlen(name);
    bool ok = n > 0 && n < TP_NAME_MAX && name[0] != '/';
    for (const char *p = name; ok && *p;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        ok = len > 0 && !(len == 1 && p[0] == '.') && !(len == 2 && p[0] == '.' && p[1] == '.');
        p += len + (e != NULL);
        ok = ok && !(e && !*p); /* no trailing slash */
    }
    if (!ok)
        return tp__error_set(err, TP_EUSAGE, "dataset name '%s' is not a plain relative path "
                             "under the root", name);
    char joined[PATH_MAX], real[PATH_MAX];
    if (snprintf(joined, sizeof(joined), "%s/%s", s->root, name) >= (int)sizeof(joined))
        return tp__error_set(err, TP_EUSAGE, "dataset name '%s' is too long", name);
    if (tp_s3_is_url(s->root)) /* no links in object storage: the name is the key */
        return (*out = strdup(joined)) ? 0 : -ENOMEM;
    if (!realpath(joined, real))
        return tp__error_set(err, errno == ENOENT ? TP_ENODATASET : -errno,
                             "dataset '%s': %s", name, strerror(errno));
    size_t rl = strlen(s->root);
    if (strncmp(real, s->root, rl) || (real[rl] != '/' && !(rl == 1 && s->root[0] == '/')))
        return tp__error_set(err, TP_EUSAGE, "dataset '%s' resolves outside the root", name);
    *out = strdup(real);
    return *out ? 0 : -ENOMEM;
}

static int serve_dataset(tp_server *s, tp_served *d, tp_error *err)
{
    size_t shards = d->tok ? tp_tokens_shard_count(d->tok) : tp_dataset_shard_count(d->ds);
    d->files = calloc(shards ? shards : 1, sizeof(int));
    if (!d->files)
        return -ENOMEM;
    for (size_t i = 0; i < shards; i++) {
        tp_shard_info si = {0};
        tp_tokens_shard ti = {0};
        TP_TRY(d->tok ? tp_tokens_shard_info(d->tok, i, &ti) : tp_dataset_shard_info(d->ds, i, &si));
        const void *obj = d->tok ? ti.object : si.object;
        int f = obj ? tp_stages_add_object(s->pipe, obj, err)
                    : tp_stages_add_file(s->pipe, d->tok ? ti.fd : si.fd, err);
        if (f < 0 && obj)
            return f; /* objects have no pread to fall back on: say why */
        d->files[i] = f < 0 ? -1 : f; /* -1: read with pread instead */
    }
    if (d->tok)
        return 0;
    size_t len;
    const void *dict = tp_dataset_zstd_dict(d->ds, &len);
    return dict ? tp_zstd_dict_create(&d->dict, dict, len, 0, err) : 0;
}

static void served_free(tp_served *d)
{
    if (!d)
        return;
    tp_zstd_dict_destroy(d->dict);
    tp_dataset_close(d->ds);
    tp_tokens_close(d->tok);
    free(d->files);
    free(d->name);
    free(d->path);
    free(d);
}

static tp_served *find_served(tp_server *s, const char *path)
{
    tp_served *d = s->datasets;
    while (d && strcmp(d->path, path))
        d = d->next;
    return d;
}

int tp__server_dataset(tp_server *s, const char *name, tp_served **out, tp_error *err)
{
    char *path;
    TP_TRY(resolve(s, name, &path, err));
    pthread_mutex_lock(&s->lock);
    tp_served *d = find_served(s, path);
    pthread_mutex_unlock(&s->lock);
    int rc = 0;
    if (!d) {
        /* Opened without the lock: opening checks every shard (an LMDB one in a child
         * that looks up every key), which can take a while, and other sessions, new
         * connections and STAT must not wait for it. */
        tp_dataset *ds = NULL;
        tp_tokens *tok = NULL;
        rc = tp_tokens_is(path) ? tp_tokens_open(&tok, path, err) : tp_dataset_open(&ds, path, err);
        pthread_mutex_lock(&s->lock);
        if (rc == 0 && (d = find_served(s, path))) {
            tp_dataset_close(ds); /* another session opened it meanwhile */
            tp_tokens_close(tok);
        } else if (rc == 0) {
            d = calloc(1, sizeof(*d));
            rc = d ? 0 : -ENOMEM;
            if (rc == 0 && (!(d->name = strdup(name)) || !(d->path = strdup(path))))
                rc = -ENOMEM;
            if (rc == 0) {
                d->ds = ds;
                d->tok = tok;
                ds = NULL;
                tok = NULL;
                rc = serve_dataset(s, d, err);
            }
            if (rc == 0) {
                d->next = s->datasets;
                s->datasets = d;
            } else {
                tp_dataset_close(ds);
                tp_tokens_close(tok);
                served_free(d);
                d = NULL;
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    free(path);
    if (rc == -ENOMEM)
        tp__error_set(err, rc, "out of memory opening dataset '%s'", name);
    *out = d;
    return rc;
}

int tp__server_memory(tp_server *s, int64_t bytes, tp_error *err)
{
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    if (bytes > 0 && s->memory_used + (uint64_t)bytes > s->o.memory)
        rc = tp__error_set(err, TP_ETOOBIG, "the daemon's memory budget of %llu bytes has "
                           "%llu left; this session's ring needs %llu (lower the batch size "
                           "or prefetch, or raise --memory)", (unsigned long long)s->o.memory,
                           (unsigned long long)(s->o.memory - s->memory_used),
                           (unsigned long long)bytes);
    else
        s->memory_used += (uint64_t)bytes;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

uint64_t tp__server_memory_short(tp_server *s, uint64_t bytes)
{
    pthread_mutex_lock(&s->lock);
    uint64_t over = s->memory_used + bytes > s->o.memory ? s->memory_used + bytes - s->o.memory
                                                          : 0;
    pthread_mutex_unlock(&s->lock);
    return over;
}

/* ---- figures */

static void json_str(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, cap - o, "\\%c", c);
        else if (c < 0x20)
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
}

#define APPEND(...)                                                         \
    do {                                                                    \
        int n_ = snprintf(buf + o, o < cap ? cap - o : 0, __VA_ARGS__);     \
        o += n_ > 0 ? (size_t)n_ : 0;                                       \
    } while (0)

static void counts_read(const tp_session *x, tp_server_counts *c)
{
    *c = (tp_server_counts){.sessions = x->dataset[0] != '\0',
                            .batches = atomic_load(&x->st.batches),
                            .samples = atomic_load(&x->st.samples),
                            .skipped = atomic_load(&x->st.skipped),
                            .errors = atomic_load(&x->st.errors),
                            .bytes_read = atomic_load(&x->st.bytes_read),
                            .starved_us = atomic_load(&x->st.starved_us),
                            .in_flight = atomic_load(&x->st.in_flight)};
}

static void counts_add(tp_server_counts *to, const tp_server_counts *c)
{
    to->sessions += c->sessions;
    to->batches += c->batches;
    to->samples += c->samples;
    to->skipped += c->skipped;
    to->errors += c->errors;
    to->bytes_read += c->bytes_read;
    to->starved_us += c->starved_us;
    to->in_flight += c->in_flight;
}

static void session_figures(const tp_session *x, double now, const tp_server_counts *c,
                            tp_server_session *out)
{
    *out = (tp_server_session){.id = x->id, .pid = (int)x->pid, .uid = (unsigned)x->uid,
                               .rank = x->rank, .world = x->world,
                               .batch_size = x->batch_size,
                               .ring_bytes = atomic_load(&x->ring_bytes),
                               .age_s = now - x->started, .c = *c};
    out->c.sessions = 0;
    snprintf(out->dataset, sizeof(out->dataset), "%s", x->dataset);
    snprintf(out->transform, sizeof(out->transform), "%s", x->transform);
}

/* The totals are the reaped sessions' figures plus those still listed, all read under
 * the lock that reaping takes, so no session is counted twice or missed and a total
 * never goes down when a session ends. */
int tp_server_figures_get(tp_server *s, tp_server_figures *out)
{
    *out = (tp_server_figures){0};
    tp_stages_stats_get(s->pipe, &out->pipe);
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    double now = tp__now();
    pthread_mutex_lock(&s->lock);
    size_t n = 0;
    for (const tp_session *x = s->sessions; x; x = x->next)
        n++;
    out->sessions = calloc(n ? n : 1, sizeof(*out->sessions));
    if (!out->sessions) {
        pthread_mutex_unlock(&s->lock);
        return -ENOMEM;
    }
    out->total = s->ended;
    for (const tp_session *x = s->sessions; x; x = x->next) {
        tp_server_counts c;
        counts_read(x, &c);
        counts_add(&out->total, &c);
        if (!atomic_load(&x->done) && x->dataset[0])
            session_figures(x, now, &c, &out->sessions[out->nsessions++]);
    }
    out->memory_budget = s->o.memory;
    out->memory_used = s->memory_used;
    pthread_mutex_unlock(&s->lock);
    tp_ring_pool_stats rs = {0};
    if (s->rings)
        tp_ring_pool_stats_get(s->rings, &rs);
    out->idle_rings = rs.rings, out->idle_ring_bytes = rs.bytes, out->rings_reused = rs.reused;
    out->uptime_s = now - s->started;
    out->start_time = (double)wall.tv_sec + (double)wall.tv_nsec * 1e-9 - out->uptime_s;
    return 0;
}

void tp_server_figures_free(tp_server_figures *f)
{
    if (f)
        free(f->sessions);
}

static void stat_session_json(const tp_server_session *x, char *buf, size_t cap)
{
    char name[2 * TP_NAME_MAX], tf[2 * 128];
    json_str(name, sizeof(name), x->dataset);
    json_str(tf, sizeof(tf), x->transform);
    snprintf(buf, cap, "{\"id\": %llu, \"pid\": %d, \"uid\": %u, \"dataset\": \"%s\", "
             "\"transform\": \"%s\", \"rank\": %u, \"world\": %u, \"batch_size\": %llu, "
             "\"ring_bytes\": %llu, \"batches\": %llu, \"samples\": %llu, \"samples_per_s\": "
             "%.1f, \"batches_in_flight\": %llu, \"skipped\": %llu, \"errors\": %llu, "
             "\"bytes_read\": %llu, \"client_starved_s\": %.3f}", (unsigned long long)x->id,
             x->pid, x->uid, name, tf, x->rank, x->world, (unsigned long long)x->batch_size,
             (unsigned long long)x->ring_bytes, (unsigned long long)x->c.batches,
             (unsigned long long)x->c.samples, x->c.samples / TP_MAX(x->age_s, 1e-3),
             (unsigned long long)x->c.in_flight, (unsigned long long)x->c.skipped,
             (unsigned long long)x->c.errors, (unsigned long long)x->c.bytes_read,
             x->c.starved_us / 1e6);
}

void tp__server_stat_json(tp_server *s, char *buf, size_t cap)
{
    tp_server_figures f;
    if (tp_server_figures_get(s, &f) < 0) {
        snprintf(buf, cap, "{\"error\": \"out of memory\"}");
        return;
    }
    const tp_stages_stats *ps = &f.pipe;
    size_t o = 0;
    APPEND("{\"pid\": %d, \"uptime_s\": %.1f, \"io_backend\": \"%s\", \"decode_threads\": %u, "
           "\"memory_budget\": %llu, \"memory_used\": %llu, \"idle_rings\": %llu, "
           "\"idle_ring_bytes\": %llu, \"rings_reused\": %llu, \"io\": {\"reads\": %llu, "
           "\"bytes_read\": %llu, \"page_cache_reads\": %llu, \"page_cache_misses\": %llu, "
           "\"queued\": %llu, \"in_flight\": %llu}, \"decode\": "
           "{\"queued\": %llu, \"done\": %llu}, \"sessions\": [", (int)getpid(), f.uptime_s,
           ps->backend, ps->threads, (unsigned long long)f.memory_budget,
           (unsigned long long)f.memory_used, (unsigned long long)f.idle_rings,
           (unsigned long long)f.idle_ring_bytes, (unsigned long long)f.rings_reused,
           (unsigned long long)ps->reads,
           (unsigned long long)ps->bytes_read, (unsigned long long)ps->page_cache_reads,
           (unsigned long long)ps->page_cache_misses, (unsigned long long)ps->io_queued,
           (unsigned long long)ps->io_in_flight, (unsigned long long)ps->decode_queued,
           (unsigned long long)ps->tasks_done);
    for (size_t i = 0; i < f.nsessions; i++) {
        char one[1536];
        stat_session_json(&f.sessions[i], one, sizeof(one));
        APPEND("%s%s", i ? ", " : "", one);
    }
    tp_server_figures_free(&f);
    APPEND("]}");
    if (o >= cap) /* cut short: still valid JSON */
        snprintf(buf, cap, "{\"error\": \"too many sessions to list\"}");
}

/* ---- the socket */

static int make_socket(tp_server *s, tp_error *err)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(s->o.socket) >= sizeof(a.sun_path))
        return tp__error_set(err, TP_EUSAGE, "socket path %s is longer than %zu bytes",
                             s->o.socket, sizeof(a.sun_path) - 1);
    strcpy(a.sun_path, s->o.socket);
    struct stat st;
    if (lstat(s->o.socket, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return tp__error_set(err, -EEXIST, "%s exists and is not a socket", s->o.socket);
        int probe;
        bool live = tp__msg_connect(s->o.socket, &probe) == 0;
        if (live)
            close(probe);
        if (live)
            return tp__error_set(err, -EADDRINUSE, "a daemon already serves at %s",
                                 s->o.socket);
        unlink(s->o.socket); /* stale, from a daemon that died */
    }
    s->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0)
        return tp__error_set(err, -errno, "socket: %s", strerror(errno));
    /* Bound and listening under a temporary name first, then renamed into place, so the
     * socket appears only once it accepts: a client that sees the file never gets
     * ECONNREFUSED from the moment between bind and listen. */
    struct sockaddr_un t = a;
    int n = snprintf(t.sun_path, sizeof(t.sun_path), "%s.%d.new", s->o.socket, (int)getpid());
    bool staged = n > 0 && (size_t)n < sizeof(t.sun_path);
    const char *bound = staged ? t.sun_path : s->o.socket;
    if (staged)
        unlink(t.sun_path);
    mode_t old = umask(0177);
    int rc = bind(s->listen_fd, (struct sockaddr *)(staged ? &t : &a), sizeof(a));
    umask(old);
    if (rc < 0)
        return tp__error_set(err, -errno, "cannot bind %s: %s", bound, strerror(errno));
    if (chmod(bound, s->o.socket_mode) < 0 || listen(s->listen_fd, 128) < 0 ||
        (staged && renameat2(AT_FDCWD, bound, AT_FDCWD, s->o.socket, RENAME_NOREPLACE) < 0)) {
        rc = -errno;
        unlink(bound);
        if (rc == -EEXIST) /* another daemon got there between our check and now */
            return tp__error_set(err, -EADDRINUSE, "a daemon already serves at %s",
                                 s->o.socket);
        return tp__error_set(err, rc, "cannot listen on %s: %s", s->o.socket, strerror(-rc));
    }
    s->socket_path = strdup(s->o.socket);
    if (!s->socket_path) {
        unlink(s->o.socket);
        return tp__error_set(err, -ENOMEM, "out of memory");
    }
    return 0;
}

int tp_server_create(tp_server **out, const tp_server_options *o, tp_error *err)
{
    tp_server *s = calloc(1, sizeof(*s));
    if (!s)
        return tp__error_set(err, -ENOMEM, "out of memory");
    s->o = *o;
    s->o.memory = o->memory ? o->memory : (uint64_t)4 << 30;
    s->o.socket_mode = o->socket_mode ? o->socket_mode
                       : o->nallow_uid || o->nallow_gid ? 0666 : 0660;
    s->o.max_connections = o->max_connections ? o->max_connections : 1024;
    s->o.nallow_uid = TP_MIN(o->nallow_uid, (size_t)TP_ALLOW_MAX);
    s->o.nallow_gid = TP_MIN(o->nallow_gid, (size_t)TP_ALLOW_MAX);
    s->listen_fd = s->stop_pipe[0] = s->stop_pipe[1] = -1;
    s->started = tp__now();
    pthread_mutex_init(&s->lock, NULL);
    char real[PATH_MAX];
    struct stat st;
    int rc = 0;
    if (tp_s3_is_url(o->root)) { /* datasets under a prefix in object storage */
        if (!(s->root = strdup(o->root)))
            rc = -ENOMEM;
        for (size_t n = rc ? 0 : strlen(s->root); n > 5 && s->root[n - 1] == '/'; n--)
            s->root[n - 1] = 0;
    } else if (!realpath(o->root, real) || stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
        rc = tp__error_set(err, errno ? -errno : -ENOTDIR, "root %s: %s", o->root,
                           errno ? strerror(errno) : "not a directory");
    } else if (!(s->root = strdup(real))) {
        rc = -ENOMEM;
    }
    if (rc == 0 && !o->no_ring_cache)
        rc = tp_ring_pool_create(&s->rings, o->ring_cache ? o->ring_cache : (uint64_t)1 << 30,
                                 err);
    if (rc == 0 && pipe2(s->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        rc = tp__error_set(err, -errno, "pipe: %s", strerror(errno));
    tp_stages_options po = {.threads = o->threads, .engine_only = o->engine_only,
                              .io = {.kind = o->io, .direct = o->direct,
                                     .queue_depth = o->queue_depth ? o->queue_depth : 64,
                                     .cache_dir = o->cache_dir, .cache_bytes = o->cache_bytes,
                                     .fault = o->io_fault, .fault_ctx = o->io_fault_ctx}};
    if (rc == 0)
        rc = tp_stages_create(&s->pipe, &po, err);
    if (rc == 0)
        rc = make_socket(s, err);
    if (rc < 0) {
        tp_server_destroy(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* Joins and frees the sessions whose threads have finished. @return : sessions left. */
static size_t reap_sessions(tp_server *s)
{
    size_t live = 0;
    pthread_mutex_lock(&s->lock);
    for (tp_session **pp = &s->sessions; *pp;) {
        tp_session *x = *pp;
        if (!atomic_load(&x->done)) {
            live++;
            pp = &x->next;
            continue;
        }
        *pp = x->next;
        tp_server_counts c;
        counts_read(x, &c);
        c.in_flight = 0;
        counts_add(&s->ended, &c);
        pthread_join(x->thread, NULL);
        close(x->sock);
        free(x);
    }
    pthread_mutex_unlock(&s->lock);
    return live;
}

static bool listed(const uint32_t *list, size_t n, uint32_t v)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == v)
            return true;
    return false;
}

/* Whether the peer's groups (primary and, through SO_PEERGROUPS, supplementary) include
 * one in `list`. */
static bool peer_in_group(int fd, gid_t primary, const uint32_t *list, size_t n)
{
    if (listed(list, n, primary))
        return true;
    gid_t groups[256];
    socklen_t len = sizeof(groups);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
        return false; /* more than 256 groups, or an old kernel: the primary group only */
    for (size_t i = 0; i < len / sizeof(gid_t); i++)
        if (listed(list, n, groups[i]))
            return true;
    return false;
}

/* The peer must run as our user or root, or be allowed by the lists (without lists: be
 * in our group, as the socket's 0660 mode says). A refused peer is logged here and told
 * why by its session thread, once it has read the peer's HELLO: closing a socket with
 * the HELLO unread would reset the connection before the peer could read the reason. */
static void peer_check(tp_server *s, int fd, tp_session *x)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
        snprintf(x->refusal, sizeof(x->refusal), "the daemon cannot read the peer's "
                 "credentials: %s", strerror(errno));
        return;
    }
    x->pid = cr.pid;
    x->uid = cr.uid;
    const tp_server_options *o = &s->o;
    bool lists = o->nallow_uid || o->nallow_gid;
    uint32_t own_group = getegid();
    bool ok = cr.uid == geteuid() || cr.uid == 0 ||
              (lists ? listed(o->allow_uid, o->nallow_uid, cr.uid) ||
                           peer_in_group(fd, cr.gid, o->allow_gid, o->nallow_gid)
                     : peer_in_group(fd, cr.gid, &own_group, 1));
    if (!ok) {
        tp__server_log(s, "refused a client: pid %d, uid %u, gid %u", (int)cr.pid,
                       (unsigned)cr.uid, (unsigned)cr.gid);
        snprintf(x->refusal, sizeof(x->refusal), "user %u is not allowed by this daemon (%s)",
                 (unsigned)cr.uid, lists ? "not in its --allow-user or --allow-group lists"
                                         : "not its user or group; see serve --allow-user");
    }
}

/* Closes a connection refused before its HELLO was read, reading whatever it sent
 * first: closing with messages unread resets the connection. */
static void close_drained(int fd)
{
    char buf[256];
    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
    close(fd);
}

/* live: the connections open now. Each has a thread, so there is a cap on them. */
static void accept_one(tp_server *s, size_t live)
{
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (live >= s->o.max_connections) {
        tp__server_log(s, "refused a connection: %u open already", s->o.max_connections);
        tp__msg_send_error(fd, -EAGAIN, "the daemon has too many connections open");
        close_drained(fd);
        return;
    }
    tp_session *x = calloc(1, sizeof(*x));
    if (!x) {
        close(fd);
        return;
    }
    peer_check(s, fd, x);
    x->srv = s;
    x->sock = fd;
    x->started = tp__now();
    pthread_mutex_lock(&s->lock);
    x->id = ++s->next_id;
    if (pthread_create(&x->thread, NULL, tp__session_main, x) != 0) {
        pthread_mutex_unlock(&s->lock);
        tp__msg_send_error(fd, -EAGAIN, "the daemon cannot start a session thread");
        close_drained(fd);
        free(x);
        return;
    }
    x->next = s->sessions;
    s->sessions = x;
    pthread_mutex_unlock(&s->lock);
}

int tp_server_run(tp_server *s)
{
    bool served = false;
    size_t live = 0;
    while (!atomic_load(&s->stopping)) {
        struct pollfd p[2] = {{.fd = s->listen_fd, .events = POLLIN},
                              {.fd = s->stop_pipe[0], .events = POLLIN}};
        int n = poll(p, 2, 1000);
        if (n < 0 && errno != EINTR)
            return -errno;
        char c;
        while (read(s->stop_pipe[0], &c, 1) == 1)
            if (c == 'S')
                atomic_store(&s->stopping, true);
        if (!atomic_load(&s->stopping) && n > 0 && (p[0].revents & POLLIN)) {
            accept_one(s, live);
            served = true;
        }
        live = reap_sessions(s);
        tp__server_rings_expire(s);
        bool idle_private = s->o.private_daemon &&
                            (served ? live == 0 : tp__now() - s->started > 30);
        if (idle_private)
            break;
    }
    return 0;
}

void tp_server_stop(tp_server *s)
{
    char c = 'S';
    ssize_t rc = write(s->stop_pipe[1], &c, 1);
    (void)rc;
}

void tp__server_wake(tp_server *s)
{
    char c = 'W';
    ssize_t rc = write(s->stop_pipe[1], &c, 1);
    (void)rc;
}

void tp_server_destroy(tp_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stopping, true);
    pthread_mutex_lock(&s->lock);
    for (tp_session *x = s->sessions; x; x = x->next)
        shutdown(x->sock, SHUT_RDWR); /* sessions notice and end */
    pthread_mutex_unlock(&s->lock);
    while (s->sessions) {
        reap_sessions(s);
        if (s->sessions)
            usleep(1000);
    }
    tp_stages_destroy(s->pipe);
    tp_ring_pool_destroy(s->rings);
    for (tp_served *d = s->datasets, *next; d; d = next) {
        next = d->next;
        served_free(d);
    }
    if (s->socket_path)
        unlink(s->socket_path);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    for (int i = 0; i < 2; i++)
        if (s->stop_pipe[i] >= 0)
            close(s->stop_pipe[i]);
    pthread_mutex_destroy(&s->lock);
    free(s->socket_path);
    free(s->root);
    free(s);
}
