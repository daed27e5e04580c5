/* Record shards (.tpr): a 64-byte header, records each starting at an `align` boundary,
 * an index of (offset, length, checksum) per record and a 64-byte footer that locates and
 * checksums the index. The writer buffers small records into large sequential writes;
 * the reader validates the whole structure on open and keeps the index in memory, so
 * locating a record is an array lookup. */
#include "s3.h"
#include "storage.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define WRITE_BUFFER (1u << 20)
#define WRITEBACK_STEP (8u << 20)

typedef struct tpr_writer {
    tp__shard_writer base;
    int fd;
    uint32_t align;
    unsigned char *buf;
    size_t fill;
    unsigned char *index;
    size_t index_cap;
    uint64_t kicked; /* file offset up to which writeback has been started */
    tp__shard_header h;
} tpr_writer;

/* Starts writeback of what has been written since the last call, without waiting, so
 * the disk works while we keep filling the page cache and the fsync at the end of the
 * shard has little left to do. Without it nothing is written before that fsync (the
 * kernel's dirty thresholds are gigabytes), and packing alternates between CPU and disk. */
static void wr_kick(tpr_writer *w)
{
    uint64_t end = w->base.bytes - w->fill;
    if (end - w->kicked >= WRITEBACK_STEP) {
        sync_file_range(w->fd, (off_t)w->kicked, (off_t)(end - w->kicked),
                        SYNC_FILE_RANGE_WRITE);
        w->kicked = end;
    }
}

static int wr_flush(tpr_writer *w)
{
    int rc = tp__write_all(w->fd, w->buf, w->fill);
    w->fill = 0;
    if (rc == 0)
        wr_kick(w);
    return rc;
}

/* Appends bytes (or zeros when `src` is NULL) at the end of the shard. */
static int wr_put(tpr_writer *w, const void *src, uint64_t len)
{
    if (w->fill + len > WRITE_BUFFER) {
        TP_TRY(wr_flush(w));
        if (src && len >= WRITE_BUFFER) {
            TP_TRY(tp__write_all(w->fd, src, len));
            w->base.bytes += len;
            wr_kick(w);
            return 0;
        }
    }
    while (len > 0) { /* only zero padding can exceed the buffer here */
        size_t n = (size_t)TP_MIN(len, WRITE_BUFFER - w->fill);
        if (src)
            memcpy(w->buf + w->fill, src, n);
        else
            memset(w->buf + w->fill, 0, n);
        w->fill += n;
        w->base.bytes += n;
        len -= n;
        if (w->fill == WRITE_BUFFER)
            TP_TRY(wr_flush(w));
    }
    return 0;
}

static int wr_pad(tpr_writer *w, uint64_t align)
{
    uint64_t rem = w->base.bytes % align;
    return rem ? wr_put(w, NULL, align - rem) : 0;
}

static int tpr_append(tp__shard_writer *base, const unsigned char *rec, uint64_t len,
                      uint64_t checksum, tp_error *err)
{
    tpr_writer *w = (tpr_writer *)base;
    size_t need = (size_t)(w->base.records + 1) * TP_INDEX_ENTRY;
    if (need > w->index_cap) {
        size_t cap = TP_MAX(need, w->index_cap * 2);
        unsigned char *p = realloc(w->index, cap);
        if (!p)
            return tp__error_set(err, -ENOMEM, "%s: out of memory for the index", base->path);
        w->index = p;
        w->index_cap = cap;
    }
    int rc = wr_pad(w, w->align);
    unsigned char *e = w->index + w->base.records * TP_INDEX_ENTRY;
    tp__put64(e, w->base.bytes);
    tp__put64(e + 8, len);
    tp__put64(e + 16, checksum);
    if (rc == 0)
        rc = wr_put(w, rec, len);
    if (rc < 0)
        return tp__error_set(err, rc, "writing %s: %s", base->path, tp_strerror(rc));
    w->base.records++;
    return 0;
}

static int tpr_finish(tp__shard_writer *base, uint64_t *bytes, tp_error *err)
{
    tpr_writer *w = (tpr_writer *)base;
    int rc = wr_pad(w, 8);
    uint64_t index_off = w->base.bytes, index_len = w->base.records * TP_INDEX_ENTRY;
    unsigned char f[TP_SHARD_FOOTER] = {0};
    tp__put64(f, index_off);
    tp__put64(f + 8, w->base.records);
    tp__put64(f + 16, w->h.first_sample);
    tp__put64(f + 24, tp__hash64(w->index, index_len));
    memcpy(f + 32, w->h.id, TP_DATASET_ID_BYTES);
    tp__put64(f + 48, tp__hash64(f, 48));
    memcpy(f + 56, TP_TPR_FOOTER_MAGIC, 8);
    if (rc == 0)
        rc = wr_put(w, w->index, index_len);
    if (rc == 0)
        rc = wr_put(w, f, sizeof(f));
    if (rc == 0)
        rc = wr_flush(w);
    if (rc == 0 && fsync(w->fd) < 0)
        rc = -errno;
    if (close(w->fd) < 0 && rc == 0)
        rc = -errno;
    w->fd = -1;
    if (rc < 0)
        return tp__error_set(err, rc, "writing %s: %s", base->path, tp_strerror(rc));
    *bytes = w->base.bytes;
    return 0;
}

static void tpr_writer_destroy(tp__shard_writer *base)
{
    tpr_writer *w = (tpr_writer *)base;
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    free(w->buf);
    free(w->index);
    free(w->base.path);
    free(w);
}

static const tp__shard_writer_ops tpr_writer_ops = {tpr_append, tpr_finish, tpr_writer_destroy};

int tp__tpr_writer_create(tp__shard_writer **out, const char *path,
                          const tp__shard_header *h, tp_error *err)
{
    tpr_writer *w = calloc(1, sizeof(*w));
    if (!w || !(w->buf = malloc(WRITE_BUFFER)) || !(w->base.path = strdup(path))) {
        if (w)
            free(w->buf);
        free(w);
        return tp__error_set(err, -ENOMEM, "out of memory");
    }
    w->base.ops = &tpr_writer_ops;
    w->align = h->align;
    w->h = *h;
    w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int rc = -errno;
        tpr_writer_destroy(&w->base);
        return tp__error_set(err, rc, "creating %s: %s", path, tp_strerror(rc));
    }
    unsigned char hdr[TP_SHARD_HEADER];
    tp__shard_header_encode(hdr, TP_TPR_MAGIC, h);
    int rc = wr_put(w, hdr, sizeof(hdr));
    assert(rc == 0); /* the buffer is empty, nothing is written yet */
    *out = &w->base;
    return rc;
}

/* ------------------------------------------------------------------ reader */

typedef struct tpr_reader {
    tp__shard_reader base;
    unsigned char *index;
} tpr_reader;

/* Reads from the shard's file or object. */
static int shard_pread(const tp__shard_reader *r, void *buf, size_t len, uint64_t off,
                       tp_error *err)
{
    if (!r->obj)
        return tp__pread_all(r->fd, buf, len, off);
    struct iovec v = {.iov_base = buf, .iov_len = len};
    return tp_s3_read(r->obj, &v, 1, off, len, err);
}

static int tpr_locate(const tp__shard_reader *base, uint64_t local, tp_sample_location *loc,
                      tp_error *err)
{
    const tpr_reader *r = (const tpr_reader *)base;
    assert(local < base->records);
    const unsigned char *e = r->index + local * TP_INDEX_ENTRY;
    loc->fd = base->fd;
    loc->object = base->obj;
    loc->offset = tp__le64(e);
    loc->length = tp__le64(e + 8);
    loc->checksum = tp__le64(e + 16);
    loc->mapped = NULL;
    return 0;
}

static int tpr_read(const tp__shard_reader *base, uint64_t local, void *buf, size_t cap,
                    size_t *len, tp_error *err)
{
    tp_sample_location loc;
    TP_TRY(tpr_locate(base, local, &loc, err));
    *len = (size_t)loc.length;
    if (loc.length > cap)
        return -ENOBUFS;
    tp_error detail;
    int rc = shard_pread(base, buf, (size_t)loc.length, loc.offset, &detail);
    if (rc < 0)
        return tp__error_set(err, rc, "%s: reading record %llu at offset %llu: %s",
                             base->path, (unsigned long long)local,
                             (unsigned long long)loc.offset,
                             base->obj ? detail.msg : tp_strerror(rc));
    return 0;
}

static void tpr_close(tp__shard_reader *base)
{
    tpr_reader *r = (tpr_reader *)base;
    if (!r)
        return;
    if (base->fd >= 0)
        close(base->fd);
    tp_s3_object_close(base->obj);
    free(r->index);
    free(base->path);
    free(r);
}

static const tp__shard_reader_ops tpr_reader_ops = {tpr_locate, tpr_read, tpr_close};

static int check_footer(tpr_reader *r, const unsigned char *f, const tp__shard_header *want,
                        uint64_t records, uint64_t *index_off, tp_error *err)
{
    const char *p = r->base.path;
    if (memcmp(f + 56, TP_TPR_FOOTER_MAGIC, 8) != 0)
        return tp__error_set(err, TP_ECORRUPT, "%s: bad footer magic (truncated or not a "
                             "shard)", p);
    if (tp__le64(f + 48) != tp__hash64(f, 48))
        return tp__error_set(err, TP_ECORRUPT, "%s: footer checksum mismatch", p);
    *index_off = tp__le64(f);
    uint64_t count = tp__le64(f + 8);
    if (*index_off > r->base.bytes - TP_SHARD_FOOTER)
        return tp__error_set(err, TP_ECORRUPT, "%s: index offset %llu beyond the file end",
                             p, (unsigned long long)*index_off);
    if (count != records || tp__le64(f + 16) != want->first_sample ||
        memcmp(f + 32, want->id, TP_DATASET_ID_BYTES) != 0)
        return tp__error_set(err, TP_ECORRUPT, "%s: footer (%llu records from sample %llu) "
                             "does not match the manifest (%llu from %llu) or dataset id", p,
                             (unsigned long long)count, (unsigned long long)tp__le64(f + 16),
                             (unsigned long long)records, (unsigned long long)want->first_sample);
    if (*index_off < TP_SHARD_HEADER || *index_off % 8 ||
        (r->base.bytes - TP_SHARD_FOOTER - *index_off) / TP_INDEX_ENTRY != count ||
        (r->base.bytes - TP_SHARD_FOOTER - *index_off) % TP_INDEX_ENTRY)
        return tp__error_set(err, TP_ECORRUPT, "%s: index offset %llu inconsistent with "
                             "file size %llu", p, (unsigned long long)*index_off,
                             (unsigned long long)r->base.bytes);
    return 0;
}

static int check_index(tpr_reader *r, uint64_t index_off, uint64_t sum, tp_error *err)
{
    uint64_t prev_end = TP_SHARD_HEADER, align = r->base.header.align;
    if (tp__hash64(r->index, r->base.records * TP_INDEX_ENTRY) != sum)
        return tp__error_set(err, TP_ECORRUPT, "%s: index checksum mismatch", r->base.path);
    for (uint64_t i = 0; i < r->base.records; i++) {
        const unsigned char *e = r->index + i * TP_INDEX_ENTRY;
        uint64_t off = tp__le64(e), len = tp__le64(e + 8);
        if (off < prev_end || off % align || len < TP_RECORD_HEADER || len > index_off ||
            off > index_off - len)
            return tp__error_set(err, TP_ECORRUPT, "%s: index entry %llu (offset %llu, "
                                 "length %llu) is out of bounds", r->base.path,
                                 (unsigned long long)i, (unsigned long long)off,
                                 (unsigned long long)len);
        prev_end = off + len;
        r->base.max_record = TP_MAX(r->base.max_record, len);
    }
    return 0;
}

static int tpr_load(tpr_reader *r, const tp__shard_header *want, uint64_t records,
                    tp_error *err)
{
    const char *p = r->base.path;
    struct stat st;
    if (!r->base.obj && fstat(r->base.fd, &st) < 0)
        return tp__error_set(err, -errno, "%s: %s", p, strerror(errno));
    if (!r->base.obj)
        r->base.bytes = (uint64_t)st.st_size;
    if (!r->base.obj && !S_ISREG(st.st_mode))
        return tp__error_set(err, TP_ECORRUPT, "%s: not a regular file", p);
    if (r->base.bytes < TP_SHARD_HEADER + TP_SHARD_FOOTER)
        return tp__error_set(err, TP_ETRUNCATED, "%s: %llu bytes is too short for a shard", p,
                             (unsigned long long)r->base.bytes);
    unsigned char h[TP_SHARD_HEADER], f[TP_SHARD_FOOTER];
    TP_TRY(shard_pread(&r->base, h, sizeof(h), 0, err));
    TP_TRY(shard_pread(&r->base, f, sizeof(f), r->base.bytes - TP_SHARD_FOOTER, err));
    TP_TRY(tp__shard_header_decode(h, TP_TPR_MAGIC, &r->base.header, err, p));
    const tp__shard_header *got = &r->base.header;
    if (got->align != want->align || got->shard_index != want->shard_index ||
        got->first_sample != want->first_sample || memcmp(got->id, want->id, sizeof(got->id)))
        return tp__error_set(err, TP_ECORRUPT, "%s: header does not match the manifest "
                             "(align, shard number, first sample or dataset id)", p);
    uint64_t index_off = 0;
    TP_TRY(check_footer(r, f, want, records, &index_off, err));
    r->base.records = records;
    r->index = malloc(records * TP_INDEX_ENTRY + 1);
    if (!r->index)
        return tp__error_set(err, -ENOMEM, "%s: out of memory for the index", p);
    tp_error detail;
    int rc = shard_pread(&r->base, r->index, records * TP_INDEX_ENTRY, index_off, &detail);
    if (rc < 0)
        return tp__error_set(err, rc, "%s: reading the index: %s", p,
                             r->base.obj ? detail.msg : tp_strerror(rc));
    return check_index(r, index_off, tp__le64(f + 24), err);
}

int tp__tpr_reader_open(tp__shard_reader **out, const char *path, const tp__shard_header *want,
                        uint64_t records, tp_error *err)
{
    tpr_reader *r = calloc(1, sizeof(*r));
    if (!r || !(r->base.path = strdup(path))) {
        free(r);
        return tp__error_set(err, -ENOMEM, "out of memory");
    }
    r->base.ops = &tpr_reader_ops;
    if (err)
        err->code = 0;
    r->base.fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    int rc = r->base.fd < 0 ? tp__error_set(err, -errno, "%s: %s", path, strerror(errno))
                            : tpr_load(r, want, records, err);
    if (rc < 0) {
        if (err && err->code != rc) /* a bare code from a helper: name the file */
            tp__error_set(err, rc, "%s: %s", path, tp_strerror(rc));
        tpr_close(&r->base);
        return rc;
    }
    *out = &r->base;
    return 0;
}

int tp__tpr_reader_open_s3(tp__shard_reader **out, const char *url, const char *name,
                           const tp__shard_header *want, uint64_t records, uint64_t bytes,
                           tp_error *err)
{
    tpr_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return tp__error_set(err, -ENOMEM, "out of memory");
    r->base.ops = &tpr_reader_ops;
    r->base.fd = -1;
    int rc = tp_s3_object_open_at(&r->base.obj, url, name, err);
    if (rc == 0 && !(r->base.path = strdup(tp_s3_object_name(r->base.obj))))
        rc = tp__error_set(err, -ENOMEM, "out of memory");
    uint64_t size = 0;
    if (rc == 0)
        rc = tp_s3_head(r->base.obj, &size, err);
    if (rc == 0 && size != bytes)
        rc = tp__error_set(err, size < bytes ? TP_ETRUNCATED : TP_ECORRUPT,
                           "%s: %llu bytes, the manifest says %llu", r->base.path,
                           (unsigned long long)size, (unsigned long long)bytes);
    if (rc == 0) {
        r->base.bytes = bytes;
        rc = tpr_load(r, want, records, err);
    }
    if (rc < 0) {
        tpr_close(&r->base);
        return rc;
    }
    *out = &r->base;
    return 0;
}
