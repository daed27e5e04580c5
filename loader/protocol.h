/* The control protocol between the client library and the daemon: fixed-layout binary
 * messages over a Unix SOCK_SEQPACKET socket (one message per packet, so framing comes
 * from the kernel). Both ends are on the same host, so structs travel as they are in
 * memory; every message starts with tp_msg_header, whose length must equal the size of
 * the struct its type names. The full specification is docs/PROTOCOL.md.
 *
 *   client                          daemon
 *   HELLO (versions)         ->
 *                            <-     HELLO_OK (version) | ERROR
 *   OPEN (dataset, options)  ->
 *                            <-     OPEN_OK + ring memfd (SCM_RIGHTS) | ERROR
 *   STATE                    ->
 *                            <-     STATE_OK (session counters)
 *   STAT                     ->     (instead of OPEN: daemon-wide figures)
 *                            <-     STAT_OK (JSON text)
 *   CLOSE or hang-up         ->     the session ends; the daemon closes its side */
#ifndef TP_PROTOCOL_H
#define TP_PROTOCOL_H

#include "tp_common.h"

#include <sys/types.h>

#define TP_MSG_MAGIC 0x534D5054u /* "TPMS" */
#define TP_PROTOCOL_VERSION 5u  /* 2: pipelines and views in OPEN; 3: windows, mixtures,
                                   resume by positions consumed; 4: a limit in epochs;
                                   5: DETACHED */
#define TP_MSG_MAX 65536u        /* the largest message either side sends */
#define TP_OPEN_MAX_FIELDS 16u
#define TP_NAME_MAX 256u         /* dataset names, NUL included */
#define TP_OPEN_MAX_VIEWS 16u
#define TP_OPEN_TEXT 1024u       /* = TP_PIPELINE_TEXT_MAX */
#define TP_OPEN_MAX_SOURCES 16u  /* datasets of a mixture */
#define TP_MAX_SEQ_LEN (1u << 20)

enum tp_msg_type {
    TP_MSG_HELLO = 1,
    TP_MSG_HELLO_OK = 2,
    TP_MSG_OPEN = 3,
    TP_MSG_OPEN_OK = 4,
    TP_MSG_STATE = 5,
    TP_MSG_STATE_OK = 6,
    TP_MSG_STAT = 7,
    TP_MSG_STAT_OK = 8,
    TP_MSG_CLOSE = 9,
    TP_MSG_ERROR = 10,
    /* The session's end, sent instead of CLOSE once the client has unmapped the ring and
     * closed its descriptor: the daemon may give the ring to a later session of the same
     * user. */
    TP_MSG_DETACHED = 11
};

typedef struct tp_msg_header {
    uint32_t magic;
    uint16_t version;
    uint16_t type;
    uint32_t length;             /* of the whole message */
    uint32_t reserved;           /* 0 */
} tp_msg_header;

typedef struct tp_msg_hello {
    tp_msg_header h;
    uint32_t min_version, max_version;
} tp_msg_hello;

typedef struct tp_msg_hello_ok {
    tp_msg_header h;
    uint32_t version;
    uint32_t daemon_pid;
} tp_msg_hello_ok;

enum {
    TP_OPEN_SHUFFLE = 1u << 0,
    TP_OPEN_DROP_LAST = 1u << 1,
    TP_OPEN_FLAGS = 3u
};

enum { /* what windows of token datasets deliver, besides input_ids and labels */
    TP_TOKENS_INT32 = 1u << 0,      /* int32 arrays instead of int64 */
    TP_TOKENS_POSITIONS = 1u << 1,  /* position_ids, restarting at each document */
    TP_TOKENS_CU_SEQLENS = 1u << 2, /* cu_seqlens: document boundaries in the window */
    TP_TOKENS_FLAGS = 7u
};

enum tp_align { /* windows of token datasets */
    TP_ALIGN_NONE = 0,  /* the stream's spans of seq_len + 1 ids, across documents */
    TP_ALIGN_PAD = 1,   /* each starts a document (or continues a long one), padded */
    TP_ALIGN_PACK = 2   /* whole consecutive documents while they fit, then padded */
};

/* One source of a mixture: a token dataset and its weight. */
typedef struct tp_msg_source {
    char dataset[TP_NAME_MAX];
    double weight;               /* > 0; weights are normalised */
} tp_msg_source;

enum tp_output { /* what image fields become */
    TP_OUTPUT_UINT8 = 0,   /* uint8 NHWC */
    TP_OUTPUT_FLOAT32 = 1, /* ImageNet-normalised float32 NCHW */
    TP_OUTPUT_FLOAT16 = 2  /* the same as IEEE half */
};

/* An output made from an image field by its own pipeline. Named like its field, it
 * sets that field's pipeline; otherwise it is one more array in each batch. */
typedef struct tp_msg_view {
    char name[32];               /* the batch field */
    char field[32];              /* the image field it is made from; "": the only one */
    char transform[TP_OPEN_TEXT];/* a pipeline description or name (TRANSFORMS.md) */
} tp_msg_view;

typedef struct tp_msg_open {
    tp_msg_header h;
    char dataset[TP_NAME_MAX];   /* a name under the daemon's root, NUL-terminated */
    char transform[TP_OPEN_TEXT];/* image fields' pipeline, a description or a name */
    char fields[TP_OPEN_MAX_FIELDS][32]; /* the fields to deliver; none: every batchable */
    uint32_t nfields;
    uint32_t flags;              /* TP_OPEN_* */
    uint64_t batch_size;         /* 1..TP_MAX_BATCH */
    uint64_t seed;
    uint32_t rank, world;        /* rank < world <= TP_MAX_WORLD */
    uint64_t epoch;              /* where to start (resume state): the epoch, and the */
    uint64_t consumed;           /* global positions of it the job consumed (any world) */
    uint32_t prefetch;           /* ring slots, 1..TP_RING_MAX_SLOTS */
    uint32_t output;             /* enum tp_output */
    uint64_t limit;              /* batches to prepare in all; 0: no limit */
    uint32_t nviews;             /* 0..TP_OPEN_MAX_VIEWS */
    uint32_t limit_epochs;       /* at most this many epochs' batches; 0: no limit */
    tp_msg_view views[TP_OPEN_MAX_VIEWS];
    /* token datasets: windows of seq_len + 1 ids (0: a sample dataset) */
    uint32_t seq_len;            /* 1..TP_MAX_SEQ_LEN */
    uint32_t tokens;             /* TP_TOKENS_* */
    uint32_t nsources;           /* a mixture of token datasets instead of `dataset` */
    uint32_t align;              /* enum tp_align */
    int64_t pad_id;              /* input_ids past an aligned window's ids */
    uint64_t mixture_epoch;      /* positions per mixture epoch; 0: the sources' windows */
    tp_msg_source sources[TP_OPEN_MAX_SOURCES];
} tp_msg_open;

typedef struct tp_msg_open_ok {
    tp_msg_header h;
    uint64_t samples;            /* in the dataset */
    uint64_t batches;            /* per epoch for this rank */
    uint64_t per_rank;           /* samples per epoch for this rank */
    uint32_t nslots;
    uint32_t reserved;
    uint64_t slot_bytes;
} tp_msg_open_ok;

typedef struct tp_msg_state_ok {
    tp_msg_header h;
    uint64_t published;          /* batches published since OPEN */
    uint64_t released;           /* batches the client released */
    uint64_t samples, skipped, errors;
    uint64_t bytes_read;
} tp_msg_state_ok;

typedef struct tp_msg_error {
    tp_msg_header h;
    int32_t code;
    uint32_t reserved;
    char message[512];           /* NUL-terminated */
} tp_msg_error;

typedef struct tp_msg_stat_ok {
    tp_msg_header h;
    char json[TP_MSG_MAX - sizeof(tp_msg_header)]; /* NUL-terminated, length says how much */
} tp_msg_stat_ok;

#define TP_MAX_BATCH 65536u
#define TP_MAX_WORLD 65536u
#define TP_MAX_PREFETCH 256u      /* = TP_RING_MAX_SLOTS */

/* Fills a header. */
void tp__msg_init(tp_msg_header *h, uint16_t type, size_t length);

/* Sends one message, with `fd` attached (SCM_RIGHTS) when fd >= 0. @return : 0 or -errno. */
int tp__msg_send(int sock, const void *msg, size_t len, int fd);

/* Receives one message into `buf` (cap bytes, at least TP_MSG_MAX) and, when `fd` is not
 * NULL, a descriptor passed with it (-1 if none; any other descriptors are closed).
 * Checks magic, version and that the length fits the message's type exactly (STAT_OK:
 * at least the header and a NUL-terminated text). Waits at most timeout_ms (-1: no
 * limit). @return : the message type, 0 on orderly hang-up, -ETIMEDOUT, TP_EPROTOCOL
 *           (malformed, truncated or oversized), or -errno. */
int tp__msg_recv(int sock, void *buf, size_t cap, int *fd, int timeout_ms, tp_error *err);

/* Checks one received message's header and length: magic, version, reserved bytes, a
 * known type and exactly its size. @return : the type, or TP_EPROTOCOL. */
int tp__msg_check(const void *buf, size_t n, tp_error *err);

/* Checks every field of an OPEN before anything uses it: terminated strings, known flags
 * and output, and every number within its bounds. @return : 0, TP_EPROTOCOL (malformed)
 *           or TP_EUSAGE (out of bounds; the message says which). */
int tp__msg_check_open(const tp_msg_open *m, tp_error *err);

/* The batches an OPEN allows in all, given its dataset's batches per epoch: `limit`, and
 * `limit_epochs` full epochs, whichever is smaller (saturating); 0: no limit. Both sides
 * count the same way. */
uint64_t tp__msg_open_limit(const tp_msg_open *m, uint64_t epoch_batches);

/* Connects a SOCK_SEQPACKET socket to `path`. @return : 0 and *fd, or -errno. */
int tp__msg_connect(const char *path, int *fd);

/* The client's first step: sends HELLO (this version only) and receives the reply into
 * `buf` (cap >= TP_MSG_MAX). @return : what tp__msg_recv returns (TP_MSG_HELLO_OK when
 *           the daemon accepts), or the send error. */
int tp__msg_hello(int sock, void *buf, size_t cap, int timeout_ms, tp_error *err);

/* An ERROR message with `code` and a message. @return : what tp__msg_send returns. */
int tp__msg_send_error(int sock, int code, const char *message);

/* The socket path when none is given: $TURBOPUMP_SOCKET, else
 * $XDG_RUNTIME_DIR/turbopump.sock, else /run/turbopump/turbopump.sock. */
void tp__default_socket(char *buf, size_t cap);

/* @return : whether the NUL-terminated string fits in `cap` bytes. */
bool tp__msg_str_ok(const char *s, size_t cap);

#endif
