/* Prometheus metrics (metrics_http.h): the exposition text, built from one snapshot of the
 * daemon's figures per scrape, and the libmicrohttpd server that answers /metrics. The
 * HTTP server runs MHD's internal polling thread with a cap on connections, a timeout and
 * a per-connection memory limit, so that a scraper holding connections open or sending
 * megabytes of headers costs the daemon a bounded amount and gets an error status. */
#include "metrics_http.h"

#include <turbopump/version.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* ---- the text */

typedef struct text {
    char *p;
    size_t len, cap;
    bool failed;               /* out of memory: the text is incomplete */
} text;

static void put(text *t, const char *fmt, ...) TP_PRINTF(2, 3);

static void put(text *t, const char *fmt, ...)
{
    for (int tries = 0; !t->failed && tries < 2; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = TP_MAX(2 * t->cap, t->len + (size_t)TP_MAX(n, 0) + 1);
        char *p = n < 0 ? NULL : realloc(t->p, cap);
        if (!p)
            t->failed = true;
        else
            t->p = p, t->cap = cap;
    }
}

/* Length of the valid UTF-8 sequence at `s` (1 to 4), or 0 when it is not one: no
 * overlong forms, surrogates or code points past U+10FFFF. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0) ||
        (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
        return 0;
    return n;
}

/* A label value as the format wants it: backslash, double quote and newline escaped.
 * Bytes that are not UTF-8 become U+FFFD, because one bad byte makes Prometheus reject
 * the whole scrape, and dataset names are whatever bytes a client sent. */
static void put_label(text *t, const char *v)
{
    for (const unsigned char *s = (const unsigned char *)v; *s;) {
        size_t n = utf8_len(s);
        if (*s == '\\' || *s == '"')
            put(t, "\\%c", *s);
        else if (*s == '\n')
            put(t, "\\n");
        else if (n == 0)
            put(t, "\xef\xbf\xbd");
        else
            put(t, "%.*s", (int)n, (const char *)s);
        s += n ? n : 1;
    }
}

static void family(text *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* %.16g keeps every integer below 2^53 exact, and decimal fractions short. */
static void one(text *t, const char *name, const char *type, const char *help, double v)
{
    family(t, name, type, help);
    put(t, "%s %.16g\n", name, v);
}

typedef struct daemon_metric {
    const char *name, *type, *help;
    double v;
} daemon_metric;

static void daemon_metrics(text *t, const tp_server_figures *f, const tp_metrics_process *p)
{
    const tp_server_counts *c = &f->total;
    const tp_stages_stats *ps = &f->pipe;
    const daemon_metric m[] = {
        {"turbopump_sessions_total", "counter", "Sessions that asked for a dataset, ended "
         "ones included.", (double)c->sessions},
        {"turbopump_sessions", "gauge", "Sessions running now.", (double)f->nsessions},
        {"turbopump_samples_total", "counter", "Samples in the batches published to "
         "clients by every session, ended ones included.", (double)c->samples},
        {"turbopump_batches_total", "counter", "Batches published by every session.",
         (double)c->batches},
        {"turbopump_skipped_samples_total", "counter", "Samples left out of their batch "
         "under --on-error skip, every session.", (double)c->skipped},
        {"turbopump_errors_total", "counter", "Samples that failed to read or decode, "
         "every session.", (double)c->errors},
        {"turbopump_client_starved_seconds_total", "counter", "Time clients waited with "
         "nothing to read, summed over every session.", (double)c->starved_us / 1e6},
        {"turbopump_batches_in_flight", "gauge", "Batches being filled now, all sessions.",
         (double)c->in_flight},
        {"turbopump_io_queued_reads", "gauge", "Reads waiting for the IO engine.",
         (double)ps->io_queued},
        {"turbopump_io_in_flight_reads", "gauge", "Reads submitted to the IO engine and "
         "not yet complete.", (double)ps->io_in_flight},
        {"turbopump_io_reads_total", "counter", "Records read.", (double)ps->reads},
        {"turbopump_io_read_bytes_total", "counter", "Bytes read from shards.",
         (double)ps->bytes_read},
        {"turbopump_io_page_cache_reads_total", "counter", "Records a decode thread read "
         "itself because the page cache held them whole (counted in reads too).",
         (double)ps->page_cache_reads},
        {"turbopump_io_page_cache_misses_total", "counter", "Records a decode thread found "
         "not wholly in the page cache and handed to the IO engine.",
         (double)ps->page_cache_misses},
        {"turbopump_decode_queued_tasks", "gauge", "Samples waiting for a decode thread.",
         (double)ps->decode_queued},
        {"turbopump_decode_tasks_total", "counter", "Samples decode threads have processed.",
         (double)ps->tasks_done},
        {"turbopump_decode_seconds_total", "counter", "Time decode threads spent on "
         "samples, summed over threads.", (double)ps->decode_ns / 1e9},
        {"turbopump_jpeg_seek_decodes_total", "counter", "JPEG regions decoded from only "
         "the restart segments they touch (pack --jpeg-seek).", (double)ps->jpeg_seeks},
        {"turbopump_jpeg_seek_fallbacks_total", "counter", "Seekable JPEGs whose restart "
         "markers did not match their layout, decoded in full instead.",
         (double)ps->jpeg_seek_fallbacks},
        {"turbopump_s3_cache_hits_total", "counter", "Object reads served from the local "
         "cache (--cache).", (double)ps->cache_hits},
        {"turbopump_s3_cache_misses_total", "counter", "Object reads the local cache did "
         "not hold (read from the store).", (double)ps->cache_misses},
        {"turbopump_s3_cache_bytes", "gauge", "Bytes the local object cache holds on disk "
         "(whole pages).", (double)ps->cache_bytes},
        {"turbopump_decode_threads", "gauge", "Threads in the decode pool.",
         (double)ps->threads},
        {"turbopump_ring_memory_used_bytes", "gauge", "Shared memory the sessions' rings "
         "use.", (double)f->memory_used},
        {"turbopump_ring_memory_budget_bytes", "gauge", "Shared memory all rings together "
         "may use (--memory).", (double)f->memory_budget},
        {"turbopump_idle_rings", "gauge", "Rings kept for later sessions after theirs "
         "ended (--ring-cache).", (double)f->idle_rings},
        {"turbopump_idle_ring_bytes", "gauge", "Shared memory the idle rings hold (counted "
         "in turbopump_ring_memory_used_bytes).", (double)f->idle_ring_bytes},
        {"turbopump_rings_reused_total", "counter", "Sessions given an idle ring instead of "
         "a new one.", (double)f->rings_reused},
        {"turbopump_uptime_seconds", "gauge", "Time since the daemon started.", f->uptime_s},
        {"process_start_time_seconds", "gauge", "Start time of the process since the Unix "
         "epoch in seconds.", f->start_time},
        {"process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
         (double)p->resident_bytes},
        {"process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
         (double)p->virtual_bytes},
        {"process_cpu_seconds_total", "counter", "Total user and system CPU time spent in "
         "seconds.", p->cpu_seconds},
    };
    for (size_t i = 0; i < TP_ARRAY_LEN(m); i++)
        one(t, m[i].name, m[i].type, m[i].help, m[i].v);
    family(t, "turbopump_info", "gauge", "The daemon's version and IO backend (always 1).");
    put(t, "turbopump_info{version=\"");
    put_label(t, TP_VERSION_STRING);
    put(t, "\",io_backend=\"");
    put_label(t, ps->backend ? ps->backend : "");
    put(t, "\"} 1\n");
}

/* The per-session figures, each a uint64 of tp_server_session scaled into base units. */
typedef struct session_metric {
    const char *name, *type, *help;
    size_t offset;
    double scale;
} session_metric;

#define AT(field) offsetof(tp_server_session, field)

static const session_metric session_metrics[] = {
    {"turbopump_session_samples_total", "counter", "Samples in the batches published to "
     "this session.", AT(c.samples), 1},
    {"turbopump_session_batches_total", "counter", "Batches published to this session.",
     AT(c.batches), 1},
    {"turbopump_session_skipped_samples_total", "counter", "Samples left out of this "
     "session's batches under --on-error skip.", AT(c.skipped), 1},
    {"turbopump_session_errors_total", "counter", "This session's samples that failed to "
     "read or decode.", AT(c.errors), 1},
    {"turbopump_session_read_bytes_total", "counter", "Bytes read for this session.",
     AT(c.bytes_read), 1},
    {"turbopump_session_client_starved_seconds_total", "counter", "Time this session's "
     "client waited with nothing to read.", AT(c.starved_us), 1e-6},
    {"turbopump_session_batches_in_flight", "gauge", "This session's batches being filled.",
     AT(c.in_flight), 1},
    {"turbopump_session_ring_bytes", "gauge", "Size of this session's shared-memory ring.",
     AT(ring_bytes), 1},
};

static void session_labels(text *t, const tp_server_session *x)
{
    put(t, "{session=\"%llu\",dataset=\"", (unsigned long long)x->id);
    put_label(t, x->dataset);
    put(t, "\",rank=\"%u\",world=\"%u\"}", x->rank, x->world);
}

static void session_family(text *t, const tp_server_figures *f, const session_metric *m)
{
    family(t, m->name, m->type, m->help);
    for (size_t i = 0; i < f->nsessions; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&f->sessions[i] + m->offset, sizeof(v));
        put(t, "%s", m->name);
        session_labels(t, &f->sessions[i]);
        put(t, " %.16g\n", (double)v * m->scale);
    }
}

int tp_metrics_format(const tp_server_figures *f, const tp_metrics_process *p, char **out,
                      size_t *len)
{
    text t = {0};
    daemon_metrics(&t, f, p);
    for (size_t i = 0; i < TP_ARRAY_LEN(session_metrics); i++)
        session_family(&t, f, &session_metrics[i]);
    family(&t, "turbopump_session_samples_per_second", "gauge", "Samples delivered to this "
           "session per second, averaged since it started.");
    for (size_t i = 0; i < f->nsessions; i++) {
        const tp_server_session *x = &f->sessions[i];
        put(&t, "turbopump_session_samples_per_second");
        session_labels(&t, x);
        put(&t, " %.16g\n", (double)x->c.samples / TP_MAX(x->age_s, 1e-3));
    }
    if (t.failed) {
        free(t.p);
        return -ENOMEM;
    }
    *out = t.p;
    *len = t.len;
    return 0;
}

void tp_metrics_process_get(tp_metrics_process *out)
{
    *out = (tp_metrics_process){0};
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long long size, resident;
    long page = sysconf(_SC_PAGESIZE);
    if (f && fscanf(f, "%llu %llu", &size, &resident) == 2 && page > 0) {
        out->virtual_bytes = size * (uint64_t)page;
        out->resident_bytes = resident * (uint64_t)page;
    }
    if (f)
        fclose(f);
    struct timespec cpu;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu) == 0)
        out->cpu_seconds = (double)cpu.tv_sec + (double)cpu.tv_nsec * 1e-9;
}

/* ---- the address */

static bool loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24 == 127;
    const struct in6_addr *v6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(v6) || (IN6_IS_ADDR_V4MAPPED(v6) && v6->s6_addr[12] == 127);
}

/* Splits "HOST:PORT", "[HOST]:PORT", ":PORT" or "PORT" into host (default 127.0.0.1) and
 * port. @return : false when it is none of those. */
static bool split_address(const char *spec, char *host, size_t cap, const char **port)
{
    const char *colon = strrchr(spec, ':');
    const char *h = spec, *he = colon;
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || close[1] != ':')
            return false;
        h = spec + 1, he = close, colon = close + 1;
    }
    *port = colon ? colon + 1 : spec;
    if (!colon || he == h)
        h = "127.0.0.1", he = h + strlen(h);
    if ((size_t)(he - h) >= cap)
        return false;
    memcpy(host, h, (size_t)(he - h));
    host[he - h] = '\0';
    size_t digits = strspn(*port, "0123456789");
    return digits > 0 && digits <= 5 && !(*port)[digits] && atoi(*port) <= 65535;
}

int tp_metrics_address(const char *spec, bool public_ok, struct sockaddr_storage *out,
                       tp_error *err)
{
    char host[256];
    const char *port;
    if (!split_address(spec, host, sizeof(host), &port))
        return tp__error_set(err, TP_EUSAGE, "metrics address '%s' is not HOST:PORT, "
                             "[IPV6]:PORT or PORT", spec);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0)
        return tp__error_set(err, TP_EUSAGE, "metrics address '%s': %s", spec,
                             gai_strerror(rc));
    memset(out, 0, sizeof(*out));
    memcpy(out, ai->ai_addr, TP_MIN((size_t)ai->ai_addrlen, sizeof(*out)));
    freeaddrinfo(ai);
    if (!public_ok && !loopback(out))
        return tp__error_set(err, TP_EUSAGE, "metrics address '%s' is not a loopback "
                             "address: other machines could read the metrics (dataset "
                             "names, load); give --metrics-public to serve them there", spec);
    return 0;
}

/* ---- the HTTP server */

struct tp_metrics_http {
    struct MHD_Daemon *d;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body,
                                                             MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply_metrics(struct MHD_Connection *c, tp_server *s)
{
    tp_server_figures f;
    tp_metrics_process p;
    char *body = NULL;
    size_t len = 0;
    tp_metrics_process_get(&p);
    int rc = tp_server_figures_get(s, &f);
    if (rc == 0) {
        rc = tp_metrics_format(&f, &p, &body, &len);
        tp_server_figures_free(&f);
    }
    if (rc < 0)
        return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, TP_METRICS_CONTENT_TYPE);
    enum MHD_Result res = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return res;
}

/* Answers at once, on the first call for a request: a request with a body gets its
 * answer without the body being read, and MHD closes that connection afterwards. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **state)
{
    (void)version, (void)upload, (void)upload_size, (void)state;
    if (strcmp(url, "/metrics"))
        return reply(c, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n");
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD are allowed\n");
    return reply_metrics(c, cls);
}

int tp_metrics_http_start(tp_metrics_http **out, tp_server *s,
                          const tp_metrics_http_options *o, tp_error *err)
{
    struct sockaddr_storage a;
    TP_TRY(tp_metrics_address(o->listen, o->public_ok, &a, err));
    tp_metrics_http *m = calloc(1, sizeof(*m));
    if (!m)
        return tp__error_set(err, -ENOMEM, "out of memory");
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | (a.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    /* A scrape is one small request: 64 KiB of request per connection is plenty, and
     * more (megabytes of headers) is answered with an error instead of being buffered. */
    m->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a,
                            MHD_OPTION_CONNECTION_LIMIT, 32u,
                            MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 << 10,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 16u, MHD_OPTION_END);
    if (!m->d) {
        int e = errno ? errno : EADDRINUSE;
        free(m);
        return tp__error_set(err, -e, "cannot serve metrics on %s: %s", o->listen,
                             strerror(e));
    }
    *out = m;
    return 0;
}

unsigned tp_metrics_http_port(const tp_metrics_http *m)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
    return i ? i->port : 0;
}

void tp_metrics_http_stop(tp_metrics_http *m)
{
    if (!m)
        return;
    MHD_stop_daemon(m->d);
    free(m);
}
