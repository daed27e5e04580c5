/* `turbopump stat`: asks a running daemon for its figures (STAT in docs/PROTOCOL.md) and
 * prints them: per stage (IO queue and reads in flight, decode queue) and per session
 * (samples/s, batches in flight, errors, skipped samples, how long the client starved).
 * With --watch it asks again every interval, redrawing in place on a terminal, until
 * Ctrl-C or until the daemon goes away. */
#include "cli.h"
#include "protocol.h"

#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define CMD "stat"

void tp_usage_stat(FILE *out)
{
    fprintf(out, "Usage: turbopump stat [--socket PATH] [--json] [--watch [--interval S]]\n\n"
                 "Prints the daemon's live figures: IO and decode queues, reads, and for each\n"
                 "session its dataset, rank, samples/s, batches in flight, errors, skipped\n"
                 "samples and the time its client waited with nothing to read.\n\n"
                 "Options:\n"
                 "  --socket PATH       the daemon's socket (default as for serve)\n"
                 "  --json              print the daemon's JSON as it is (one line each time)\n"
                 "  --watch             print the figures again every interval until Ctrl-C\n"
                 "                      or the daemon's end (exit status 1); on a terminal\n"
                 "                      the table is redrawn in place\n"
                 "  --interval S        seconds between updates with --watch (default 1;\n"
                 "                      0.1 to 3600, fractions allowed)\n"
                 "  -h, --help          show this help\n");
}

static int fetch(const char *path, char **json, tp_error *err)
{
    int fd, rc = tp__msg_connect(path, &fd);
    if (rc < 0)
        return tp__error_set(err, TP_ENODAEMON, "no daemon at %s: %s", path, strerror(-rc));
    static unsigned char buf[TP_MSG_MAX];
    tp_msg_header s;
    tp__msg_init(&s, TP_MSG_STAT, sizeof(s));
    int type = tp__msg_hello(fd, buf, sizeof(buf), 5000, err);
    if (type == TP_MSG_HELLO_OK && tp__msg_send(fd, &s, sizeof(s), -1) == 0)
        type = tp__msg_recv(fd, buf, sizeof(buf), NULL, 5000, err);
    close(fd);
    if (type == TP_MSG_ERROR) { /* refused, with the daemon's reason */
        const tp_msg_error *e = (const tp_msg_error *)buf;
        return tp__error_set(err, e->code < 0 ? e->code : TP_EPROTOCOL, "%.*s",
                             (int)sizeof(e->message), e->message);
    }
    if (type != TP_MSG_STAT_OK)
        return type < 0 ? type : tp__error_set(err, TP_EPROTOCOL, "unexpected reply %d", type);
    *json = strdup((const char *)buf + sizeof(tp_msg_header));
    return *json ? 0 : -ENOMEM;
}

static double num(const json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

static void print_table(const json_t *j)
{
    const json_t *io = json_object_get(j, "io"), *dec = json_object_get(j, "decode");
    printf("daemon pid %.0f, up %.0f s, io %s, %.0f decode threads, rings %.1f of %.1f MiB "
           "(%.0f idle, %.1f MiB, kept for later sessions; %.0f reused)\n",
           num(j, "pid"), num(j, "uptime_s"), json_string_value(json_object_get(j, "io_backend")),
           num(j, "decode_threads"), num(j, "memory_used") / 1048576,
           num(j, "memory_budget") / 1048576, num(j, "idle_rings"),
           num(j, "idle_ring_bytes") / 1048576, num(j, "rings_reused"));
    printf("io: %.0f reads (%.0f from the page cache by decode threads), %.1f MB, %.0f queued, "
           "%.0f in flight; decode: %.0f queued, %.0f done\n",
           num(io, "reads"), num(io, "page_cache_reads"), num(io, "bytes_read") / 1e6,
           num(io, "queued"),
           num(io, "in_flight"), num(dec, "queued"), num(dec, "done"));
    const json_t *ss = json_object_get(j, "sessions");
    printf("%-4s %-7s %-20s %-9s %10s %10s %8s %7s %7s %10s\n", "id", "pid", "dataset", "rank",
           "samples", "samples/s", "inflight", "errors", "skipped", "starved_s");
    size_t i;
    const json_t *x;
    json_array_foreach(ss, i, x) {
        char rank[32];
        snprintf(rank, sizeof(rank), "%.0f/%.0f", num(x, "rank"), num(x, "world"));
        printf("%-4.0f %-7.0f %-20.20s %-9s %10.0f %10.1f %8.0f %7.0f %7.0f %10.3f\n",
               num(x, "id"), num(x, "pid"), json_string_value(json_object_get(x, "dataset")),
               rank, num(x, "samples"), num(x, "samples_per_s"), num(x, "batches_in_flight"),
               num(x, "errors"), num(x, "skipped"), num(x, "client_starved_s"));
    }
}

static void show(const char *text, bool as_json)
{
    json_t *j = as_json ? NULL : json_loads(text, 0, NULL);
    if (j)
        print_table(j);
    else
        printf("%s\n", text);
    json_decref(j);
}

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Sleeps `s` seconds, or less when Ctrl-C comes: the handler is installed without
 * SA_RESTART, so nanosleep returns at once. */
static void pause_for(double s)
{
    struct timespec t = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    if (!interrupted)
        nanosleep(&t, NULL);
}

/* Fetches and shows the figures every `interval` seconds until Ctrl-C (exit 0) or until
 * the daemon stops answering (exit 1, saying so). */
static int watch(const char *path, bool as_json, double interval)
{
    struct sigaction sa = {.sa_handler = on_interrupt};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    bool tty = isatty(STDOUT_FILENO);
    for (unsigned n = 0; !interrupted; n++) {
        char *text = NULL;
        tp_error err = {0};
        if (fetch(path, &text, &err) < 0) {
            if (interrupted)
                break;
            if (n)
                tp_cli_error(CMD, "the daemon went away: %s", err.msg);
            else
                tp_cli_error(CMD, "%s", err.msg);
            return TP_EXIT_FAIL;
        }
        if (tty)
            fputs("\033[H\033[2J", stdout); /* cursor home, clear the screen */
        else if (n && !as_json)
            putchar('\n');
        show(text, as_json);
        free(text);
        fflush(stdout);
        pause_for(interval);
    }
    return TP_EXIT_OK;
}

int tp_cmd_stat(int argc, char **argv)
{
    static const struct option longopts[] = {{"socket", required_argument, 0, 's'},
                                              {"json", no_argument, 0, 'j'},
                                              {"watch", no_argument, 0, 'w'},
                                              {"interval", required_argument, 0, 'i'},
                                              {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    char path[4096];
    tp__default_socket(path, sizeof(path));
    bool as_json = false, watching = false;
    double interval = 1;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 's')
            snprintf(path, sizeof(path), "%s", optarg);
        else if (c == 'j')
            as_json = true;
        else if (c == 'w')
            watching = true;
        else if (c == 'i') {
            interval = strtod(optarg, &end);
            if (end == optarg || *end || !(interval >= 0.1 && interval <= 3600))
                return tp_cli_usage_error(CMD, "--interval: '%s' is not 0.1 to 3600 "
                                          "seconds", optarg);
        } else if (c == 'h') {
            tp_usage_stat(stdout);
            return TP_EXIT_OK;
        } else
            return tp_cli_usage_error(CMD, "bad option (see --help)");
    }
    if (optind != argc)
        return tp_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (watching)
        return watch(path, as_json, interval);
    char *text = NULL;
    tp_error err = {0};
    if (fetch(path, &text, &err) < 0) {
        tp_cli_error(CMD, "%s", err.msg);
        return TP_EXIT_FAIL;
    }
    show(text, as_json);
    free(text);
    return TP_EXIT_OK;
}
