/* Token streams: a run of little-endian ids filling a file (a raw .bin, whose dtype the
 * user names) or the rest of it after a header (.npy, tokens_npy.c). The stream is read
 * in chunks of TP_TOKEN_PIECE_MAX ids, whatever its size, and cut into documents after each
 * separator id; without a separator the whole stream is one document, handed out in
 * pieces. Every id is checked against the largest id as it is widened. */
#include "tokens_source.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct stream {
    tp__token_reader base;
    char *path;
    int fd;
    uint64_t offset, bytes;     /* the ids' range in the file */
    uint64_t done;              /* bytes of it read */
    tp_dtype dtype;
    unsigned itemsize;
    unsigned char *raw;         /* one chunk as read */
    uint32_t *ids;              /* the same, widened */
    size_t have, at;            /* ids in `ids`, and handed out of them */
    bool open_doc;              /* the last piece left its document open */
    bool any;                   /* some id was handed out */
} stream;

static void stream_close(tp__token_reader *r)
{
    stream *s = (stream *)r;
    if (s->fd >= 0)
        close(s->fd);
    free(s->raw);
    free(s->ids);
    free(s->path);
    free(s);
}

static int refill(stream *s, tp_error *err)
{
    uint64_t left = (s->bytes - s->done) / s->itemsize;
    size_t k = (size_t)TP_MIN((uint64_t)TP_TOKEN_PIECE_MAX, left);
    int rc = tp__pread_all(s->fd, s->raw, k * s->itemsize, s->offset + s->done);
    if (rc < 0)
        return tp__error_set(err, rc, "%s: %s", s->path, tp_strerror(rc));
    int64_t bad = 0;
    size_t ok = tp__token_widen(s->raw, s->dtype, k, s->base.o->max_id, s->ids, &bad);
    if (ok < k)
        return tp__token_bad_id(err, s->path, s->done / s->itemsize + ok, bad,
                                s->base.o->max_id);
    s->done += k * s->itemsize;
    s->base.info->bytes_done += k * s->itemsize;
    s->have = k;
    s->at = 0;
    return 0;
}

static int stream_next(tp__token_reader *r, tp_token_piece *out, tp_error *err)
{
    stream *s = (stream *)r;
    const tp_token_source_options *o = r->o;
    if (s->at == s->have) {
        if (s->done == s->bytes) {
            if (!s->any)
                r->info->empty++; /* an empty file: one empty document */
            return 0;
        }
        TP_TRY(refill(s, err));
    }
    size_t end = s->have;
    bool closes = false;
    for (size_t i = s->at; o->has_separator && i < s->have; i++)
        if (s->ids[i] == o->separator) {
            end = i + 1;
            closes = true;
            break;
        }
    *out = (tp_token_piece){.ids = s->ids + s->at, .n = end - s->at, .first = !s->open_doc,
                            .where = s->path};
    s->open_doc = !closes;
    s->at = end;
    s->any = true;
    return 1;
}

int tp__token_stream_open(const char *path, int fd, uint64_t offset, uint64_t bytes,
                          tp_dtype dtype, tp__token_reader **out, tp_error *err)
{
    stream *s = calloc(1, sizeof(*s));
    if (!s) {
        close(fd);
        return tp__error_set(err, -ENOMEM, "out of memory");
    }
    *s = (stream){.base = {.next = stream_next, .close = stream_close}, .fd = fd,
                  .offset = offset, .bytes = bytes, .dtype = dtype,
                  .itemsize = (unsigned)tp_dtype_size(dtype)};
    s->path = strdup(path);
    s->raw = malloc((size_t)TP_TOKEN_PIECE_MAX * s->itemsize);
    s->ids = malloc((size_t)TP_TOKEN_PIECE_MAX * sizeof(uint32_t));
    if (!s->path || !s->raw || !s->ids) {
        stream_close(&s->base);
        return tp__error_set(err, -ENOMEM, "out of memory");
    }
    assert(bytes % s->itemsize == 0);
    s->base.path = s->path;
    /* Read once, front to back: let the kernel read ahead and drop pages behind. */
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    *out = &s->base;
    return 0;
}

int tp__token_bin_open(const char *path, tp_dtype dtype, tp__token_reader **out,
                       tp_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tp__error_set(err, -errno, "%s: %s", path, strerror(errno));
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : TP_EUSAGE;
    if (rc < 0) {
        close(fd);
        return tp__error_set(err, rc, "%s: not a regular file", path);
    }
    unsigned size = (unsigned)tp_dtype_size(dtype);
    if ((uint64_t)st.st_size % size) {
        close(fd);
        return tp__error_set(err, TP_EUSAGE, "%s: %lld bytes, not a whole number of %s ids "
                             "(a wrong --dtype?)", path, (long long)st.st_size,
                             tp_dtype_name(dtype));
    }
    return tp__token_stream_open(path, fd, 0, (uint64_t)st.st_size, dtype, out, err);
}
