/* `turbopump serve`: the daemon. Parses options into tp_server_options, turns SIGTERM and
 * SIGINT into a clean shutdown (sessions ended, socket removed), and runs the server. */
#include "cli.h"
#include "metrics_http.h"
#include "protocol.h"
#include "server.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#define CMD "serve"

void tp_usage_serve(FILE *out)
{
    fprintf(out,
            "Usage: turbopump serve --root DIR [--socket PATH] [--threads N]\n"
            "                       [--io auto|uring|posix] [--direct] [--io-engine-only]\n"
            "                       [--memory SIZE] [--ring-cache SIZE]\n"
            "                       [--on-error fail|skip] [--allow-user U,...]\n"
            "                       [--allow-group G,...] [--socket-mode MODE]\n"
            "                       [--metrics HOST:PORT [--metrics-public]]\n"
            "                       [--cache DIR [--cache-size SIZE]] [--gets N] [--quiet]\n\n"
            "Serves the datasets under DIR to training processes on this machine: each\n"
            "client session gets batches decoded and transformed by a shared pool of N\n"
            "threads (default: the number of CPUs) and read through one IO engine, handed\n"
            "over in a shared-memory ring. Clients name datasets relative to DIR; names\n"
            "that leave it (.., absolute paths, symlinks out) are refused.\n\n"
            "Options:\n"
            "  --root DIR          the directory datasets are served from (required), or\n"
            "                      s3://bucket/prefix in S3-compatible object storage\n"
            "                      (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...: docs/STORAGE.md)\n"
            "  --cache DIR         objects: keep the record ranges read in DIR on local disk\n"
            "                      (emptied at start and at exit), checked on every reuse\n"
            "  --cache-size SIZE   the cache's bound (default: half the free space of DIR)\n"
            "  --gets N            reads in flight at once, GETs for objects (default 64)\n"
            "  --socket PATH       Unix socket to listen on (default: $TURBOPUMP_SOCKET, else\n"
            "                      $XDG_RUNTIME_DIR/turbopump.sock, else\n"
            "                      /run/turbopump/turbopump.sock); mode 0660\n"
            "  --threads N         decode threads (default: CPUs)\n"
            "  --io B              IO backend: auto (io_uring, else pread), uring, posix\n"
            "  --direct            O_DIRECT reads (bypass the page cache)\n"
            "  --io-engine-only    every read through the IO engine's thread (by default a\n"
            "                      decode thread reads a record itself when the page cache\n"
            "                      holds all of it, saving a hand-over between threads)\n"
            "  --memory SIZE       bytes all sessions' rings may use together (default 4G)\n"
            "  --ring-cache SIZE   bytes of rings kept, once their sessions end, for the next\n"
            "                      session of the same user and ring size, which then skips\n"
            "                      faulting a new ring in (default 1G, within --memory;\n"
            "                      idle rings go after a minute; 0 keeps none)\n"
            "  --on-error P        a sample that fails to read or decode: fail ends the\n"
            "                      session with a message naming it (default); skip leaves\n"
            "                      it out of its batch and counts it\n"
            "  --allow-user U,...  users (names or uids) who may connect, besides this\n"
            "                      daemon's own user and root; repeatable\n"
            "  --allow-group G,... groups (names or gids) whose members may connect;\n"
            "                      repeatable. Without either list, members of the\n"
            "                      daemon's group may; with them, only those listed\n"
            "  --socket-mode MODE  octal mode of the socket (default 0660, or 0666 with an\n"
            "                      allow list: the daemon checks each client itself)\n"
            "  --metrics HOST:PORT serve Prometheus metrics at http://HOST:PORT/metrics\n"
            "                      (default: off; PORT alone means 127.0.0.1:PORT; names and\n"
            "                      [IPv6] addresses work). Loopback addresses only, unless\n"
            "  --metrics-public    is given too: other machines may then read them\n"
            "  --private           exit when the last client leaves (started by a client)\n"
            "  --quiet             no log lines\n"
            "  -h, --help          show this help\n\n"
            "SIGTERM or SIGINT ends the sessions and removes the socket.\n");
}

static tp_server *volatile running;

static void on_signal(int sig)
{
    (void)sig;
    if (running)
        tp_server_stop(running);
}

/* Appends the users (groups: `group`) named in a comma-separated list, as names or
 * numbers. @return : 0, or TP_EXIT_USAGE after a message. */
static int parse_ids(const char *opt, const char *arg, bool group, uint32_t *ids, size_t *n)
{
    char buf[1024];
    if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf))
        return tp_cli_usage_error(CMD, "%s: list too long", opt);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(t, &end, 10);
        bool number = *t >= '0' && *t <= '9' && !*end && !errno && v < UINT32_MAX;
        if (!number) {
            struct passwd *pw = group ? NULL : getpwnam(t);
            struct group *gr = group ? getgrnam(t) : NULL;
            if (!pw && !gr)
                return tp_cli_usage_error(CMD, "%s: no %s named '%s'", opt,
                                          group ? "group" : "user", t);
            v = group ? gr->gr_gid : pw->pw_uid;
        }
        if (*n >= TP_ALLOW_MAX)
            return tp_cli_usage_error(CMD, "%s: at most %d entries", opt, TP_ALLOW_MAX);
        ids[(*n)++] = (uint32_t)v;
    }
    return 0;
}

static int parse(int argc, char **argv, tp_server_options *o, tp_metrics_http_options *mo,
                 char *sock, size_t cap)
{
    static const struct option longopts[] = {
        {"root", required_argument, 0, 'r'}, {"socket", required_argument, 0, 's'},
        {"threads", required_argument, 0, 't'}, {"io", required_argument, 0, 'i'},
        {"direct", no_argument, 0, 'd'}, {"memory", required_argument, 0, 'm'},
        {"on-error", required_argument, 0, 'e'}, {"private", no_argument, 0, 'p'},
        {"allow-user", required_argument, 0, 'U'}, {"allow-group", required_argument, 0, 'G'},
        {"socket-mode", required_argument, 0, 'M'}, {"quiet", no_argument, 0, 'q'},
        {"metrics", required_argument, 0, 'x'}, {"metrics-public", no_argument, 0, 'X'},
        {"cache", required_argument, 0, 'c'}, {"cache-size", required_argument, 0, 'C'},
        {"gets", required_argument, 0, 'g'}, {"io-engine-only", no_argument, 0, 'E'},
        {"ring-cache", required_argument, 0, 'R'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    *o = (tp_server_options){0};
    *mo = (tp_metrics_http_options){0};
    tp__default_socket(sock, cap);
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'r')
            o->root = optarg;
        else if (c == 's')
            snprintf(sock, cap, "%s", optarg);
        else if (c == 't') {
            if (tp_cli_u64(CMD, "--threads", optarg, 1, 1024, &v) < 0)
                return TP_EXIT_USAGE;
            o->threads = (unsigned)v;
        }
        else if (c == 'i' && !strcmp(optarg, "auto"))
            o->io = TP_IO_AUTO;
        else if (c == 'i' && (!strcmp(optarg, "uring") || !strcmp(optarg, "posix")))
            o->io = optarg[0] == 'u' ? TP_IO_URING : TP_IO_POSIX;
        else if (c == 'd')
            o->direct = true;
        else if (c == 'E')
            o->engine_only = true;
        else if (c == 'm') {
            if (tp_cli_size(CMD, "--memory", optarg, 1 << 20, &o->memory) < 0)
                return TP_EXIT_USAGE;
        }
        else if (c == 'R') {
            if (tp_cli_size(CMD, "--ring-cache", optarg, 0, &o->ring_cache) < 0)
                return TP_EXIT_USAGE;
            o->no_ring_cache = o->ring_cache == 0;
        }
        else if (c == 'e' && (!strcmp(optarg, "fail") || !strcmp(optarg, "skip")))
            o->skip_errors = optarg[0] == 's';
        else if (c == 'p')
            o->private_daemon = true;
        else if (c == 'U') {
            if (parse_ids("--allow-user", optarg, false, o->allow_uid, &o->nallow_uid))
                return TP_EXIT_USAGE;
        } else if (c == 'G') {
            if (parse_ids("--allow-group", optarg, true, o->allow_gid, &o->nallow_gid))
                return TP_EXIT_USAGE;
        } else if (c == 'M') {
            char *end;
            unsigned long m = strtoul(optarg, &end, 8);
            if (!*optarg || *end || m == 0 || m > 0777)
                return tp_cli_usage_error(CMD, "--socket-mode: '%s' is not an octal mode "
                                          "like 0660", optarg);
            o->socket_mode = (unsigned)m;
        }
        else if (c == 'c')
            o->cache_dir = optarg;
        else if (c == 'C') {
            if (tp_cli_size(CMD, "--cache-size", optarg, 1 << 20, &o->cache_bytes) < 0)
                return TP_EXIT_USAGE;
        } else if (c == 'g') {
            if (tp_cli_u64(CMD, "--gets", optarg, 1, 4096, &v) < 0)
                return TP_EXIT_USAGE;
            o->queue_depth = (unsigned)v;
        }
        else if (c == 'q')
            o->quiet = true;
        else if (c == 'x')
            mo->listen = optarg;
        else if (c == 'X')
            mo->public_ok = true;
        else if (c == 'h') {
            tp_usage_serve(stdout);
            exit(TP_EXIT_OK);
        } else
            return tp_cli_usage_error(CMD, "bad option or value (see --help)");
    }
    if (optind != argc)
        return tp_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!o->root)
        return tp_cli_usage_error(CMD, "--root DIR is required");
    if (o->cache_bytes && !o->cache_dir)
        return tp_cli_usage_error(CMD, "--cache-size needs --cache DIR");
    if (o->cache_dir && !o->cache_bytes) { /* half the free space, at least 64 MiB */
        struct statvfs fs;
        if (mkdir(o->cache_dir, 0755) < 0 && errno != EEXIST)
            return tp_cli_usage_error(CMD, "--cache %s: %s", o->cache_dir, strerror(errno));
        if (statvfs(o->cache_dir, &fs) < 0)
            return tp_cli_usage_error(CMD, "--cache %s: %s", o->cache_dir, strerror(errno));
        o->cache_bytes = TP_MAX((uint64_t)fs.f_bavail * fs.f_frsize / 2, (uint64_t)64 << 20);
    }
    if (mo->public_ok && !mo->listen)
        return tp_cli_usage_error(CMD, "--metrics-public needs --metrics HOST:PORT");
    struct sockaddr_storage a;
    tp_error err = {0};
    if (mo->listen && tp_metrics_address(mo->listen, mo->public_ok, &a, &err) < 0)
        return tp_cli_usage_error(CMD, "%s", err.msg); /* before the socket is made */
    o->socket = sock;
    return 0;
}

/* The metrics server, when asked for, started once the daemon's socket is there. */
static int start_metrics(tp_server *s, const tp_metrics_http_options *mo, bool quiet,
                         tp_metrics_http **out)
{
    *out = NULL;
    if (!mo->listen)
        return 0;
    tp_error err = {0};
    if (tp_metrics_http_start(out, s, mo, &err) < 0) {
        tp_cli_error(CMD, "%s", err.msg);
        return -1;
    }
    if (!quiet)
        fprintf(stderr, "turbopump serve: metrics on %s (port %u), path /metrics\n",
                mo->listen, tp_metrics_http_port(*out));
    return 0;
}

int tp_cmd_serve(int argc, char **argv)
{
    tp_server_options o;
    tp_metrics_http_options mo;
    char sock[4096];
    int rc = parse(argc, argv, &o, &mo, sock, sizeof(sock));
    if (rc)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    tp_server *s;
    tp_metrics_http *m;
    tp_error err = {0};
    if (tp_server_create(&s, &o, &err) < 0) {
        tp_cli_error(CMD, "%s", err.msg);
        return TP_EXIT_FAIL;
    }
    if (start_metrics(s, &mo, o.quiet, &m) < 0) {
        tp_server_destroy(s);
        return TP_EXIT_FAIL;
    }
    running = s;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (!o.quiet)
        fprintf(stderr, "turbopump serve: serving %s on %s\n", o.root, o.socket);
    rc = tp_server_run(s);
    running = NULL;
    tp_metrics_http_stop(m); /* it reads the server's figures: first */
    tp_server_destroy(s);
    if (!o.quiet)
        fprintf(stderr, "turbopump serve: stopped\n");
    return rc < 0 ? TP_EXIT_FAIL : TP_EXIT_OK;
}
