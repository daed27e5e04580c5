/* Sending and receiving the control protocol's messages (protocol.h): one message per
 * SOCK_SEQPACKET packet, descriptors as SCM_RIGHTS ancillary data, and the checks every
 * received message passes before anyone looks at its fields: magic, version, and a length
 * that matches its type exactly, so a struct is never read past what arrived. */
#include "protocol.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void tp__msg_init(tp_msg_header *h, uint16_t type, size_t length)
{
    memset(h, 0, sizeof(*h));
    h->magic = TP_MSG_MAGIC;
    h->version = TP_PROTOCOL_VERSION;
    h->type = type;
    h->length = (uint32_t)length;
}

int tp__msg_send(int sock, const void *msg, size_t len, int fd)
{
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        memset(&u, 0, sizeof(u));
        mh.msg_control = u.buf;
        mh.msg_controllen = sizeof(u.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EMSGSIZE;
}

/* The exact size of each type; STAT_OK is variable (checked separately). */
static size_t msg_size(uint16_t type)
{
    switch (type) {
    case TP_MSG_HELLO: return sizeof(tp_msg_hello);
    case TP_MSG_HELLO_OK: return sizeof(tp_msg_hello_ok);
    case TP_MSG_OPEN: return sizeof(tp_msg_open);
    case TP_MSG_OPEN_OK: return sizeof(tp_msg_open_ok);
    case TP_MSG_STATE: case TP_MSG_STAT: case TP_MSG_CLOSE: case TP_MSG_DETACHED:
        return sizeof(tp_msg_header);
    case TP_MSG_STATE_OK: return sizeof(tp_msg_state_ok);
    case TP_MSG_ERROR: return sizeof(tp_msg_error);
    default: return 0;
    }
}

/* Takes the first descriptor of the ancillary data and closes any others. */
static int take_fds(struct msghdr *mh, int *fd)
{
    int got = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int f;
            memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (got < 0 && fd)
                got = f;
            else
                close(f);
        }
    }
    if (fd)
        *fd = got;
    return 0;
}

int tp__msg_check(const void *buf, size_t n, tp_error *err)
{
    tp_msg_header h;
    if (n < sizeof(h))
        return tp__error_set(err, TP_EPROTOCOL, "message of %zu bytes is shorter than a "
                             "header", n);
    memcpy(&h, buf, sizeof(h));
    if (h.magic != TP_MSG_MAGIC || h.length != n || h.reserved != 0)
        return tp__error_set(err, TP_EPROTOCOL, "malformed message header (magic %#x, "
                             "length %u of %zu received)", h.magic, h.length, n);
    if (h.version != TP_PROTOCOL_VERSION)
        return tp__error_set(err, TP_EPROTOCOL, "protocol version %u, this side speaks %u",
                             h.version, TP_PROTOCOL_VERSION);
    if (h.type == TP_MSG_STAT_OK) {
        if (n <= sizeof(h) || ((const char *)buf)[n - 1] != '\0')
            return tp__error_set(err, TP_EPROTOCOL, "malformed STAT_OK message");
        return h.type;
    }
    size_t want = msg_size(h.type);
    if (!want)
        return tp__error_set(err, TP_EPROTOCOL, "unknown message type %u", h.type);
    if (n != want)
        return tp__error_set(err, TP_EPROTOCOL, "message type %u of %zu bytes, expected %zu",
                             h.type, n, want);
    return h.type;
}

int tp__msg_recv(int sock, void *buf, size_t cap, int *fd, int timeout_ms, tp_error *err)
{
    assert(cap >= TP_MSG_MAX);
    if (fd)
        *fd = -1;
    struct pollfd p = {.fd = sock, .events = POLLIN};
    int rc;
    do
        rc = poll(&p, 1, timeout_ms);
    while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return tp__error_set(err, -errno, "poll: %s", strerror(errno));
    if (rc == 0)
        return tp__error_set(err, -ETIMEDOUT, "no reply within %d ms", timeout_ms);
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    union {
        char b[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
                        .msg_controllen = sizeof(u.b)};
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return tp__error_set(err, -errno, "recvmsg: %s", strerror(errno));
    take_fds(&mh, fd);
    if (n == 0)
        return 0;
    if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        if (fd && *fd >= 0)
            close(*fd), *fd = -1;
        return tp__error_set(err, TP_EPROTOCOL, "oversized message (more than %zu bytes)",
                             cap);
    }
    rc = tp__msg_check(buf, (size_t)n, err);
    if (rc < 0 && fd && *fd >= 0)
        close(*fd), *fd = -1;
    return rc;
}

int tp__msg_send_error(int sock, int code, const char *message)
{
    tp_msg_error m;
    memset(&m, 0, sizeof(m));
    tp__msg_init(&m.h, TP_MSG_ERROR, sizeof(m));
    m.code = code;
    snprintf(m.message, sizeof(m.message), "%s", message);
    return tp__msg_send(sock, &m, sizeof(m), -1);
}

bool tp__msg_str_ok(const char *s, size_t cap) { return memchr(s, '\0', cap) != NULL; }

void tp__default_socket(char *buf, size_t cap)
{
    const char *env = getenv("TURBOPUMP_SOCKET"), *run = getenv("XDG_RUNTIME_DIR");
    if (env && *env)
        snprintf(buf, cap, "%s", env);
    else if (run && *run)
        snprintf(buf, cap, "%s/turbopump.sock", run);
    else
        snprintf(buf, cap, "/run/turbopump/turbopump.sock");
}

uint64_t tp__msg_open_limit(const tp_msg_open *m, uint64_t epoch_batches)
{
    if (!m->limit_epochs)
        return m->limit;
    uint64_t lim;
    if (__builtin_mul_overflow((uint64_t)m->limit_epochs, epoch_batches, &lim))
        lim = UINT64_MAX;
    return m->limit ? TP_MIN(m->limit, lim) : lim;
}

int tp__msg_check_open(const tp_msg_open *m, tp_error *err)
{
    if (!tp__msg_str_ok(m->dataset, sizeof(m->dataset)) ||
        !tp__msg_str_ok(m->transform, sizeof(m->transform)))
        return tp__error_set(err, TP_EPROTOCOL, "OPEN: unterminated dataset or transform");
    if (m->nviews > TP_OPEN_MAX_VIEWS)
        return tp__error_set(err, TP_EPROTOCOL, "OPEN: bad view count");
    for (uint32_t i = 0; i < m->nviews; i++)
        if (!tp__msg_str_ok(m->views[i].name, sizeof(m->views[i].name)) ||
            !tp__msg_str_ok(m->views[i].field, sizeof(m->views[i].field)) ||
            !tp__msg_str_ok(m->views[i].transform, sizeof(m->views[i].transform)))
            return tp__error_set(err, TP_EPROTOCOL, "OPEN: view %u is not terminated", i);
    if (m->nfields > TP_OPEN_MAX_FIELDS || (m->flags & ~TP_OPEN_FLAGS) ||
        m->output > TP_OUTPUT_FLOAT16)
        return tp__error_set(err, TP_EPROTOCOL, "OPEN: bad field count, flags or output");
    if (m->batch_size < 1 || m->batch_size > TP_MAX_BATCH)
        return tp__error_set(err, TP_EUSAGE, "batch size %llu is not in 1..%u",
                             (unsigned long long)m->batch_size, TP_MAX_BATCH);
    if (m->world < 1 || m->world > TP_MAX_WORLD || m->rank >= m->world)
        return tp__error_set(err, TP_EUSAGE, "rank %u of world size %u", m->rank, m->world);
    if (m->nsources > TP_OPEN_MAX_SOURCES || m->align > TP_ALIGN_PACK ||
        (m->tokens & ~TP_TOKENS_FLAGS))
        return tp__error_set(err, TP_EPROTOCOL, "OPEN: bad source count, alignment or token "
                             "flags");
    for (uint32_t i = 0; i < m->nsources; i++)
        if (!tp__msg_str_ok(m->sources[i].dataset, sizeof(m->sources[i].dataset)) ||
            !(m->sources[i].weight > 0 && m->sources[i].weight < 1e12))
            return tp__error_set(err, TP_EUSAGE, "mixture source %u: a dataset name and a "
                                 "weight above 0", i);
    if ((m->nsources || m->tokens || m->align || m->pad_id) && !m->seq_len)
        return tp__error_set(err, TP_EUSAGE, "mixtures and token options need seq_len");
    if (m->seq_len > TP_MAX_SEQ_LEN)
        return tp__error_set(err, TP_EUSAGE, "seq_len %u is not in 1..%u", m->seq_len,
                             TP_MAX_SEQ_LEN);
    if (m->prefetch < 1 || m->prefetch > TP_MAX_PREFETCH)
        return tp__error_set(err, TP_EUSAGE, "prefetch %u is not in 1..%u", m->prefetch,
                             TP_MAX_PREFETCH);
    return 0;
}

int tp__msg_connect(const char *path, int *out)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(a.sun_path))
        return -ENAMETOOLONG;
    strcpy(a.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    *out = fd;
    return 0;
}

int tp__msg_hello(int sock, void *buf, size_t cap, int timeout_ms, tp_error *err)
{
    tp_msg_hello h;
    memset(&h, 0, sizeof(h));
    tp__msg_init(&h.h, TP_MSG_HELLO, sizeof(h));
    h.min_version = h.max_version = TP_PROTOCOL_VERSION;
    int rc = tp__msg_send(sock, &h, sizeof(h), -1);
    /* A daemon that refuses a connection at once (too many open) says why and closes,
     * maybe before our HELLO arrives (the send fails) or with it unread (the receive
     * reports a reset first): either way its ERROR is still there to read. */
    if (rc < 0) {
        if (tp__msg_recv(sock, buf, cap, NULL, 100, NULL) == TP_MSG_ERROR)
            return TP_MSG_ERROR;
        return tp__error_set(err, rc, "cannot talk to the daemon: %s", strerror(-rc));
    }
    int type = tp__msg_recv(sock, buf, cap, NULL, timeout_ms, err);
    if (type == -ECONNRESET && tp__msg_recv(sock, buf, cap, NULL, 100, NULL) == TP_MSG_ERROR)
        return TP_MSG_ERROR;
    return type;
}
