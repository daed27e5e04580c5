/* The daemon's figures for Prometheus: the text exposition format (version 0.0.4) made
 * from tp_server_figures by a pure function, and a small HTTP server (libmicrohttpd, on
 * its own thread) that answers GET /metrics with it. The server only reads figures; it
 * never takes part in serving batches, so a slow or hostile scraper cannot stall a
 * session. It listens on a loopback address unless told otherwise: the metrics name
 * datasets and show the load, which is nobody else's business. Metric names and labels
 * are documented in docs/METRICS.md. */
#ifndef TP_METRICS_HTTP_H
#define TP_METRICS_HTTP_H

#include "server.h"

#include <sys/socket.h>

#define TP_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* What the process itself uses, read beside the daemon's figures. */
typedef struct tp_metrics_process {
    uint64_t resident_bytes, virtual_bytes;
    double cpu_seconds;
} tp_metrics_process;

/* Reads the process's figures (/proc/self/statm, the process CPU clock). Fields it
 * cannot read are left 0. */
void tp_metrics_process_get(tp_metrics_process *out);

/* The exposition text of `f` and `p` in a malloc'd, NUL-terminated buffer the caller
 * frees, its length (NUL excluded) in *len. Pure: the same figures give the same text.
 * @return : 0 or -ENOMEM. */
int tp_metrics_format(const tp_server_figures *f, const tp_metrics_process *p, char **out,
                      size_t *len);

/* Parses a listen address, "HOST:PORT", "[IPV6]:PORT", ":PORT" or "PORT" (the last two on
 * 127.0.0.1), HOST a name or a numeric address. A non-loopback address is refused unless
 * `public_ok`. @return : 0, or TP_EUSAGE with `err` saying why. */
int tp_metrics_address(const char *spec, bool public_ok, struct sockaddr_storage *out,
                       tp_error *err);

typedef struct tp_metrics_http tp_metrics_http;

typedef struct tp_metrics_http_options {
    const char *listen;        /* as tp_metrics_address takes it */
    bool public_ok;            /* may listen on a non-loopback address */
} tp_metrics_http_options;

/* Starts serving `s`'s figures at http://ADDRESS/metrics. `s` must outlive the server.
 * @return : 0, or a negative code with `err` naming what failed (a refused address, a
 * port in use). */
int tp_metrics_http_start(tp_metrics_http **out, tp_server *s,
                          const tp_metrics_http_options *o, tp_error *err);

/* The port it listens on (the one the kernel chose for port 0). */
unsigned tp_metrics_http_port(const tp_metrics_http *m);

/* Stops the HTTP thread, waiting for requests being answered. NULL allowed. */
void tp_metrics_http_stop(tp_metrics_http *m);

#endif
