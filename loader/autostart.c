/* Reaching a daemon for the client (autostart.h): the one at the socket, or a private
 * daemon started for this process, serving the dataset's directory (or, for an s3://
 * dataset, the prefix above it). */
#include "autostart.h"

#include "protocol.h"

#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct daemon_link {
    int *sock;
    pid_t *daemon;
    char *private_socket;
    size_t cap;
} daemon_link;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}


static int start_daemon(daemon_link *c, const tp_client_options *o, const char *root,
                        tp_error *err)
{
    const char *run = getenv("XDG_RUNTIME_DIR");
    static _Atomic unsigned counter;
    snprintf(c->private_socket, c->cap, "%s/turbopump-%d-%u.sock",
             run && *run ? run : "/tmp", (int)getpid(), atomic_fetch_add(&counter, 1));
    const char *bin = o->daemon_path ? o->daemon_path : getenv("TURBOPUMP_BIN");
    bin = bin && *bin ? bin : "turbopump";
    pid_t parent = getpid(), pid = fork();
    if (pid < 0)
        return tp__error_set(err, -errno, "cannot start a daemon: fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the client */
        if (getppid() != parent)
            _exit(1);
        execlp(bin, "turbopump", "serve", "--root", root, "--socket", c->private_socket,
               "--private", "--quiet", (char *)NULL);
        _exit(127);
    }
    *c->daemon = pid;
    return 0;
}

/* Waits for the private daemon's socket to accept. */
static int await_daemon(daemon_link *c, const char *bin_hint, tp_error *err)
{
    double deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        if (tp__msg_connect(c->private_socket, c->sock) == 0)
            return 0;
        int status;
        if (waitpid(*c->daemon, &status, WNOHANG) == *c->daemon) {
            *c->daemon = 0;
            return tp__error_set(err, TP_ENODAEMON, "the private daemon (%s serve) exited "
                                 "with status %d%s", bin_hint,
                                 WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                                 WIFEXITED(status) && WEXITSTATUS(status) == 127
                                     ? ": executable not found (set TURBOPUMP_BIN)" : "");
        }
        usleep(5000);
    }
    return tp__error_set(err, TP_ENODAEMON, "the private daemon did not answer within 10 s");
}

int tp__client_connect(const tp_client_options *o, char *dataset, size_t cap,
                       char (*sources)[TP_NAME_MAX], int *sock, pid_t *daemon,
                       char *private_socket, size_t psize, tp_error *err)
{
    daemon_link link_ = {.sock = sock, .daemon = daemon, .private_socket = private_socket,
                         .cap = psize};
    daemon_link *c = &link_;
    char path[PATH_MAX];
    if (o->socket)
        snprintf(path, sizeof(path), "%s", o->socket);
    else
        tp__default_socket(path, sizeof(path));
    snprintf(dataset, cap, "%s", o->dataset ? o->dataset : "");
    for (size_t i = 0; i < o->nsources && i < TP_OPEN_MAX_SOURCES; i++)
        snprintf(sources[i], TP_NAME_MAX, "%s", o->sources[i].dataset);
    int rc = tp__msg_connect(path, c->sock);
    if (rc == 0)
        return 0;
    if (o->no_autostart || (rc != -ENOENT && rc != -ECONNREFUSED))
        return tp__error_set(err, TP_ENODAEMON, "no daemon at %s: %s", path, strerror(-rc));
    /* Serve the dataset's directory privately: root = its parent, name = its last part.
     * A mixture's root is the deepest directory holding every source; each source is
     * named by its path below it. */
    char real[PATH_MAX], root[PATH_MAX];
    if (!o->nsources && o->dataset && !strncmp(o->dataset, "s3://", 5)) {
        /* object storage: root = the URL up to its last '/', name = the rest */
        snprintf(root, sizeof(root), "%s", o->dataset);
        size_t len = strlen(root);
        while (len > 5 && root[len - 1] == '/')
            root[--len] = 0;
        char *slash = strrchr(root + 5, '/');
        if (!slash || !slash[1])
            return tp__error_set(err, TP_EUSAGE, "%s: name a dataset under a bucket "
                                 "(s3://bucket/prefix/dataset)", o->dataset);
        snprintf(dataset, cap, "%s", slash + 1);
        *slash = 0;
        TP_TRY(start_daemon(c, o, root, err));
        const char *bin = o->daemon_path ? o->daemon_path : getenv("TURBOPUMP_BIN");
        return await_daemon(c, bin && *bin ? bin : "turbopump", err);
    }
    size_t n = o->nsources ? TP_MIN(o->nsources, TP_OPEN_MAX_SOURCES) : 1;
    char reals[TP_OPEN_MAX_SOURCES][PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        const char *name = o->nsources ? o->sources[i].dataset : o->dataset;
        if (!name || !realpath(name, reals[i]))
            return tp__error_set(err, TP_ENODATASET, "no daemon at %s, and dataset %s: %s",
                                 path, name ? name : "(none)", strerror(errno));
    }
    snprintf(real, sizeof(real), "%s", reals[0]);
    snprintf(root, sizeof(root), "%s", dirname(real));
    for (size_t i = 1; i < n; i++) /* shorten root until it holds reals[i] */
        while (strcmp(root, "/") && (strncmp(reals[i], root, strlen(root)) ||
                                     reals[i][strlen(root)] != '/'))
            snprintf(root, sizeof(root), "%s", dirname(strcpy(real, root)));
    size_t skip = strlen(root) + (strcmp(root, "/") != 0);
    if (o->nsources)
        for (size_t i = 0; i < n; i++)
            snprintf(sources[i], TP_NAME_MAX, "%s", reals[i] + skip);
    else
        snprintf(dataset, cap, "%s", reals[0] + skip);
    TP_TRY(start_daemon(c, o, root, err));
    const char *bin = o->daemon_path ? o->daemon_path : getenv("TURBOPUMP_BIN");
    return await_daemon(c, bin && *bin ? bin : "turbopump", err);
}

