/* LMDB shards (.mdb): one LMDB environment per shard file, records under big-endian u64
 * local indices in the "records" database and the 64-byte shard header in "meta". Values
 * use the record encoding of .tpr shards, so one decoder serves both. Serving opens the
 * environment read-only with MDB_NOLOCK|MDB_NOTLS|MDB_NORDAHEAD; a value's pointer into
 * the map gives its file offset, so records can be read with plain file IO as well as
 * from the map. */
#include "storage.h"

#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define COMMIT_EVERY 256

static int lmdb_error(tp_error *err, int rc, const char *path, const char *doing)
{
    /* LMDB returns system errors as positive errno values, its own as negative codes. */
    int code = rc > 0 ? -rc : TP_ELMDB;
    return tp__error_set(err, code, "%s: %s: %s", path, doing, mdb_strerror(rc));
}

static void key_encode(unsigned char k[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        k[i] = (unsigned char)(v >> (56 - 8 * i));
}

typedef struct lmdb_writer {
    tp__shard_writer base;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi records, meta;
    size_t mapsize;
    uint64_t committed;   /* file bytes after the last commit */
    uint64_t pending;     /* estimated bytes added by the open transaction */
    unsigned pending_records;
    tp__shard_header h;
} lmdb_writer;

static int lw_commit(lmdb_writer *w, tp_error *err)
{
    int rc = mdb_txn_commit(w->txn);
    w->txn = NULL;
    if (rc)
        return lmdb_error(err, rc, w->base.path, "commit");
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(w->env, &info);
    mdb_env_stat(w->env, &st);
    w->committed = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
    /* Start writeback now rather than all at the final sync (see shard_tpr.c). */
    int fd;
    if (mdb_env_get_fd(w->env, &fd) == 0)
        sync_file_range(fd, 0, (off_t)w->committed, SYNC_FILE_RANGE_WRITE);
    w->pending = 0;
    w->pending_records = 0;
    return 0;
}

static int lw_begin(lmdb_writer *w, tp_error *err)
{
    int rc = mdb_txn_begin(w->env, NULL, 0, &w->txn);
    if (rc == 0)
        rc = mdb_dbi_open(w->txn, "records", MDB_CREATE, &w->records);
    if (rc == 0)
        rc = mdb_dbi_open(w->txn, "meta", MDB_CREATE, &w->meta);
    return rc ? lmdb_error(err, rc, w->base.path, "begin transaction") : 0;
}

/* Commits early and grows the map before a put could hit MDB_MAP_FULL, which would
 * abort the whole open transaction. Sizes are deterministic, so the file is too. */
static int lw_reserve(lmdb_writer *w, uint64_t len, tp_error *err)
{
    uint64_t need = len + len / 8 + 65536;
    if (w->committed + 2 * (w->pending + need) < w->mapsize &&
        w->pending_records < COMMIT_EVERY)
        return 0;
    TP_TRY(lw_commit(w, err));
    while (w->committed + 2 * need >= w->mapsize)
        w->mapsize *= 2;
    int rc = mdb_env_set_mapsize(w->env, w->mapsize);
    if (rc)
        return lmdb_error(err, rc, w->base.path, "grow map");
    return lw_begin(w, err);
}

static int lmdb_append(tp__shard_writer *base, const unsigned char *rec, uint64_t len,
                       uint64_t checksum, tp_error *err)
{
    lmdb_writer *w = (lmdb_writer *)base;
    TP_TRY(lw_reserve(w, len, err));
    unsigned char k[8];
    key_encode(k, base->records);
    MDB_val key = {sizeof(k), k}, val = {(size_t)len, (void *)rec};
    int rc = mdb_put(w->txn, w->records, &key, &val, MDB_APPEND);
    if (rc)
        return lmdb_error(err, rc, base->path, "put");
    base->records++;
    base->bytes = w->committed + w->pending;
    w->pending += len + 16;
    w->pending_records++;
    return 0;
}

static int lmdb_finish(tp__shard_writer *base, uint64_t *bytes, tp_error *err)
{
    lmdb_writer *w = (lmdb_writer *)base;
    unsigned char hdr[TP_SHARD_HEADER];
    tp__shard_header_encode(hdr, TP_LMDB_MAGIC, &w->h);
    MDB_val key = {6, "header"}, val = {sizeof(hdr), hdr};
    int rc = mdb_put(w->txn, w->meta, &key, &val, 0);
    if (rc)
        return lmdb_error(err, rc, base->path, "put header");
    TP_TRY(lw_commit(w, err));
    rc = mdb_env_sync(w->env, 1);
    if (rc)
        return lmdb_error(err, rc, base->path, "sync");
    mdb_env_close(w->env);
    w->env = NULL;
    struct stat st;
    if (stat(base->path, &st) < 0)
        return tp__error_set(err, -errno, "%s: %s", base->path, strerror(errno));
    *bytes = base->bytes = (uint64_t)st.st_size;
    return 0;
}

static void lmdb_writer_destroy(tp__shard_writer *base)
{
    lmdb_writer *w = (lmdb_writer *)base;
    if (!w)
        return;
    if (w->txn)
        mdb_txn_abort(w->txn);
    if (w->env)
        mdb_env_close(w->env);
    free(base->path);
    free(w);
}

static const tp__shard_writer_ops lmdb_writer_ops = {lmdb_append, lmdb_finish,
                                                     lmdb_writer_destroy};

int tp__lmdb_writer_create(tp__shard_writer **out, const char *path,
                           const tp__shard_header *h, uint64_t shard_bytes, tp_error *err)
{
    lmdb_writer *w = calloc(1, sizeof(*w));
    if (!w || !(w->base.path = strdup(path))) {
        free(w);
        return tp__error_set(err, -ENOMEM, "out of memory");
    }
    w->base.ops = &lmdb_writer_ops;
    w->h = *h;
    w->mapsize = (size_t)(2 * shard_bytes + (64u << 20));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    int rc = fd < 0 ? tp__error_set(err, -errno, "creating %s: %s", path, strerror(errno)) : 0;
    if (fd >= 0)
        close(fd);
    int mrc = rc ? 0 : mdb_env_create(&w->env);
    if (!rc && !mrc)
        mrc = mdb_env_set_maxdbs(w->env, 2);
    if (!rc && !mrc)
        mrc = mdb_env_set_mapsize(w->env, w->mapsize);
    if (!rc && !mrc)
        mrc = mdb_env_open(w->env, path, MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOSYNC, 0644);
    if (mrc)
        rc = lmdb_error(err, mrc, path, "create environment");
    if (rc == 0)
        rc = lw_begin(w, err);
    if (rc < 0) {
        lmdb_writer_destroy(&w->base);
        return rc;
    }
    *out = &w->base;
    return 0;
}

/* ------------------------------------------------------------------ reader */

typedef struct lmdb_reader {
    tp__shard_reader base;
    MDB_env *env;
    MDB_dbi records, meta;
    const unsigned char *map;
} lmdb_reader;

/* Whether a value LMDB returned lies inside the file's map and can hold a record. */
static bool value_in_file(const lmdb_reader *r, const MDB_val *val)
{
    const unsigned char *v = val->mv_data;
    return val->mv_size >= TP_RECORD_HEADER && r->map && v >= r->map &&
           val->mv_size <= r->base.bytes && (uint64_t)(v - r->map) <= r->base.bytes - val->mv_size;
}

/* Looks up record `local` in a fresh read-only transaction and hands its bytes to `fn`. */
static int lr_get(const lmdb_reader *r, uint64_t local, MDB_txn **txn, MDB_val *val,
                  tp_error *err)
{
    unsigned char k[8];
    key_encode(k, local);
    MDB_val key = {sizeof(k), k};
    int rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, txn);
    if (rc)
        return lmdb_error(err, rc, r->base.path, "begin read");
    rc = mdb_get(*txn, r->records, &key, val);
    if (rc == 0 && !value_in_file(r, val)) {
        mdb_txn_abort(*txn);
        return tp__error_set(err, TP_ECORRUPT, "%s: record %llu (%zu bytes) lies outside the "
                             "file or is shorter than a record header", r->base.path,
                             (unsigned long long)local, val->mv_size);
    }
    if (rc) {
        mdb_txn_abort(*txn);
        return rc == MDB_NOTFOUND
                   ? tp__error_set(err, TP_ECORRUPT, "%s: record %llu is missing",
                                   r->base.path, (unsigned long long)local)
                   : lmdb_error(err, rc, r->base.path, "get");
    }
    return 0;
}

static int lmdb_locate(const tp__shard_reader *base, uint64_t local, tp_sample_location *loc,
                       tp_error *err)
{
    const lmdb_reader *r = (const lmdb_reader *)base;
    MDB_txn *txn;
    MDB_val val;
    TP_TRY(lr_get(r, local, &txn, &val, err));
    loc->fd = base->fd;
    loc->offset = (uint64_t)((const unsigned char *)val.mv_data - r->map);
    loc->length = val.mv_size;
    loc->checksum = tp__le64(val.mv_data);
    loc->mapped = val.mv_data;
    mdb_txn_abort(txn);
    return 0;
}

static int lmdb_read(const tp__shard_reader *base, uint64_t local, void *buf, size_t cap,
                     size_t *len, tp_error *err)
{
    const lmdb_reader *r = (const lmdb_reader *)base;
    MDB_txn *txn;
    MDB_val val;
    TP_TRY(lr_get(r, local, &txn, &val, err));
    *len = val.mv_size;
    if (val.mv_size <= cap)
        memcpy(buf, val.mv_data, val.mv_size);
    mdb_txn_abort(txn);
    return *len <= cap ? 0 : -ENOBUFS;
}

static void lmdb_close(tp__shard_reader *base)
{
    lmdb_reader *r = (lmdb_reader *)base;
    if (!r)
        return;
    if (r->env)
        mdb_env_close(r->env);
    free(base->path);
    free(r);
}

static const tp__shard_reader_ops lmdb_reader_ops = {lmdb_locate, lmdb_read, lmdb_close};

/* Walks every key once: they must be exactly 0..records-1, and the largest value sizes
 * the caller's read buffers. */
static int lr_scan(lmdb_reader *r, MDB_txn *txn, uint64_t records, tp_error *err)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, r->records, &cur);
    if (rc)
        return lmdb_error(err, rc, r->base.path, "cursor");
    MDB_val key, val;
    uint64_t n = 0;
    unsigned char want[8];
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT), n++) {
        key_encode(want, n);
        if (n >= records || key.mv_size != 8 || memcmp(key.mv_data, want, 8) != 0)
            break;
        if (!value_in_file(r, &val)) {
            mdb_cursor_close(cur);
            return tp__error_set(err, TP_ECORRUPT, "%s: record %llu (%zu bytes) lies outside "
                                 "the file or is shorter than a record header", r->base.path,
                                 (unsigned long long)n, val.mv_size);
        }
        r->base.max_record = TP_MAX(r->base.max_record, val.mv_size);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND && rc != 0)
        return lmdb_error(err, rc, r->base.path, "scan");
    if (rc == 0 || n != records)
        return tp__error_set(err, TP_ECORRUPT, "%s: keys are not 0..%llu (found %llu "
                             "in order)", r->base.path, (unsigned long long)records - 1,
                             (unsigned long long)n);
    return 0;
}

/* LMDB does not tell where it mapped the file, so the mapping that holds a value is
 * looked up in /proc/self/maps; reading the same bytes back through the descriptor
 * proves the offsets are right before anyone relies on them. */
static int find_map(lmdb_reader *r, const unsigned char *p, tp_error *err)
{
    FILE *f = fopen("/proc/self/maps", "re");
    unsigned long long lo, hi, pgoff;
    char line[512];
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "%llx-%llx %*s %llx", &lo, &hi, &pgoff) == 3 &&
            (uintptr_t)p >= lo && (uintptr_t)p < hi) {
            r->map = (const unsigned char *)(uintptr_t)(lo - pgoff);
            break;
        }
    if (f)
        fclose(f);
    unsigned char check[TP_SHARD_HEADER];
    if (!r->map || tp__pread_all(r->base.fd, check, sizeof(check), (uint64_t)(p - r->map)) < 0 ||
        memcmp(check, p, sizeof(check)) != 0)
        return tp__error_set(err, TP_ELMDB, "%s: cannot find the file offsets of the LMDB map",
                             r->base.path);
    return 0;
}

static int lr_check(lmdb_reader *r, const tp__shard_header *want, uint64_t records,
                    tp_error *err)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "records", 0, &r->records);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "meta", 0, &r->meta);
    MDB_val key = {6, "header"}, val = {0, NULL};
    if (rc == 0)
        rc = mdb_get(txn, r->meta, &key, &val);
    if (rc) {
        if (txn)
            mdb_txn_abort(txn);
        return lmdb_error(err, rc, r->base.path, "open databases");
    }
    rc = val.mv_size == TP_SHARD_HEADER
             ? tp__shard_header_decode(val.mv_data, TP_LMDB_MAGIC, &r->base.header, err,
                                       r->base.path)
             : tp__error_set(err, TP_ECORRUPT, "%s: bad shard header size", r->base.path);
    if (rc == 0)
        rc = find_map(r, val.mv_data, err);
    const tp__shard_header *got = &r->base.header;
    if (rc == 0 && (got->shard_index != want->shard_index || got->align != 1 ||
                    got->first_sample != want->first_sample ||
                    memcmp(got->id, want->id, sizeof(got->id))))
        rc = tp__error_set(err, TP_ECORRUPT, "%s: header does not match the manifest "
                           "(shard number, first sample or dataset id)", r->base.path);
    if (rc == 0)
        rc = lr_scan(r, txn, records, err);
    mdb_txn_commit(txn); /* keeps the database handles for later transactions */
    return rc;
}

static int lr_open(lmdb_reader *r, const tp__shard_header *want, uint64_t records,
                   tp_error *err)
{
    const char *path = r->base.path;
    struct stat st;
    if (stat(path, &st) < 0)
        return tp__error_set(err, -errno, "%s: %s", path, strerror(errno));
    r->base.bytes = (uint64_t)st.st_size;
    int rc = mdb_env_create(&r->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(r->env, 2);
    if (rc == 0)
        rc = mdb_env_open(r->env, path, MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOTLS |
                                        MDB_NORDAHEAD, 0);
    if (rc)
        return lmdb_error(err, rc, path, "open environment");
    /* Pages LMDB believes in but the file lacks would raise SIGBUS when touched. */
    MDB_envinfo info;
    MDB_stat st2;
    mdb_env_info(r->env, &info);
    mdb_env_stat(r->env, &st2);
    if ((uint64_t)(info.me_last_pgno + 1) * st2.ms_psize > r->base.bytes)
        return tp__error_set(err, TP_ECORRUPT, "%s: LMDB uses %llu pages of %u bytes but the "
                             "file has %llu bytes", path,
                             (unsigned long long)info.me_last_pgno + 1, st2.ms_psize,
                             (unsigned long long)r->base.bytes);
    rc = mdb_env_get_fd(r->env, &r->base.fd);
    if (rc)
        return lmdb_error(err, rc, path, "get fd");
    r->base.records = records;
    return lr_check(r, want, records, err);
}

int tp__lmdb_reader_open(tp__shard_reader **out, const char *path,
                         const tp__shard_header *want, uint64_t records, tp_error *err)
{
    lmdb_reader *r = calloc(1, sizeof(*r));
    if (!r || !(r->base.path = strdup(path))) {
        free(r);
        return tp__error_set(err, -ENOMEM, "out of memory");
    }
    r->base.ops = &lmdb_reader_ops;
    r->base.fd = -1;
    int rc = lr_open(r, want, records, err);
    if (rc < 0) {
        lmdb_close(&r->base);
        return rc;
    }
    *out = &r->base;
    return 0;
}
