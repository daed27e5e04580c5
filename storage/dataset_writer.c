/* The dataset writer: validates samples against the schema, encodes records, rolls shards
 * over by size and publishes the dataset atomically. Everything is written into a locked
 * staging directory "<path>.partial"; finish fsyncs the shards, writes manifest.json last
 * (temp file, fsync, rename) and only then moves the directory into place, so neither a
 * crash nor a full disk can leave something at <path> that opens as a dataset. */
#include "s3.h"
#include "storage.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_SHARD_BYTES (256ull << 20)

struct tp_dataset_writer {
    tp__staging st;
    tp__manifest m;
    uint64_t shard_bytes;
    tp__shard_writer *cur;
    unsigned char *buf;
    size_t cap;
    bool failed;
    bool finished;
    unsigned char *dict; /* the zstd dictionary to store, if any */
};

static int copy_options(tp_dataset_writer *w, const tp_dataset_writer_options *o, tp_error *err)
{
    tp__manifest *m = &w->m;
    m->format = o->format ? o->format : TP_SHARD_RECORD;
    m->align = m->format == TP_SHARD_LMDB ? 1 : o->align ? o->align : 4096;
    w->shard_bytes = o->shard_bytes ? o->shard_bytes : DEFAULT_SHARD_BYTES;
    if (m->format != TP_SHARD_RECORD && m->format != TP_SHARD_LMDB)
        return tp__error_set(err, TP_EUSAGE, "unknown shard format %d", (int)m->format);
    if (m->align > 65536 || (m->align & (m->align - 1)))
        return tp__error_set(err, TP_EUSAGE, "align %u is not a power of two up to 65536",
                             m->align);
    TP_TRY(tp__fields_check(o->fields, o->nfields, err));
    m->nfields = o->nfields;
    for (size_t i = 0; i < o->nfields; i++) {
        m->fields[i] = o->fields[i];
        if (!(m->fields[i].name = strdup(o->fields[i].name)))
            return tp__error_set(err, -ENOMEM, "out of memory");
    }
    m->classes = calloc(o->nclasses + 1, sizeof(char *));
    m->source = strdup(o->source ? o->source : "");
    if (!m->classes || !m->source)
        return tp__error_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < o->nclasses; i++) {
        json_t *probe = json_string(o->classes[i]); /* NULL unless valid UTF-8 */
        json_decref(probe);
        if (!probe)
            return tp__error_set(err, TP_EUSAGE, "class name %zu is not valid UTF-8", i);
        if (!(m->classes[i] = strdup(o->classes[i])))
            return tp__error_set(err, -ENOMEM, "out of memory");
        m->nclasses = i + 1;
    }
    if (o->zstd_dict_len) {
        if (o->zstd_dict_len > TP_DICT_MAX || !o->zstd_dict)
            return tp__error_set(err, TP_EUSAGE, "zstd dictionary of %zu bytes (at most %u)",
                                 o->zstd_dict_len, TP_DICT_MAX);
        if (!(w->dict = malloc(o->zstd_dict_len)))
            return tp__error_set(err, -ENOMEM, "out of memory");
        memcpy(w->dict, o->zstd_dict, o->zstd_dict_len);
        m->has_dict = true;
        m->dict_bytes = o->zstd_dict_len;
        m->dict_checksum = tp__hash64(w->dict, o->zstd_dict_len);
    }
    if (o->id)
        memcpy(m->id, o->id, TP_DATASET_ID_BYTES);
    else if (getrandom(m->id, TP_DATASET_ID_BYTES, 0) != TP_DATASET_ID_BYTES)
        return tp__error_set(err, -errno, "getrandom: %s", strerror(errno));
    return 0;
}

TP_API int tp_dataset_writer_create(tp_dataset_writer **out, const char *path,
                                    const tp_dataset_writer_options *o, tp_error *err)
{
    tp_dataset_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return tp__error_set(err, -ENOMEM, "out of memory");
    int rc = copy_options(w, o, err);
    if (rc == 0 && tp_s3_is_url(path) && w->m.format == TP_SHARD_LMDB)
        rc = tp__error_set(err, TP_EUSAGE, "%s: LMDB shards cannot be written to object "
                           "storage (use the record format)", path);
    if (rc == 0)
        rc = tp__staging_open(&w->st, path, o->replace, err);
    if (rc < 0) {
        tp_dataset_writer_destroy(w);
        return rc;
    }
    *out = w;
    return 0;
}

int tp__values_check(const tp_field_info *fields, size_t nfields, const tp_field_value *v,
                     size_t n, tp_error *err)
{
    uint64_t seen = 0;
    if (n > nfields)
        return tp__error_set(err, TP_EUSAGE, "%zu values for %zu fields", n, nfields);
    for (size_t i = 0; i < n; i++) {
        if (v[i].field >= nfields || (seen >> v[i].field & 1))
            return tp__error_set(err, TP_EUSAGE, "value %zu: field %u unknown or repeated", i,
                                 v[i].field);
        seen |= UINT64_C(1) << v[i].field;
        const tp_field_info *f = &fields[v[i].field];
        bool plain = v[i].compression == TP_COMPRESS_NONE;
        uint64_t raw = plain ? v[i].size : v[i].raw_size;
        if ((unsigned)v[i].compression > TP_COMPRESS_ZSTD_DICT || (v[i].size && !v[i].data))
            return tp__error_set(err, TP_EUSAGE, "field '%s': bad compression or data",
                                 f->name);
        uint64_t want;
        TP_TRY(tp__field_raw_size(f, &want)); /* schemas were checked at create */
        if (want && raw != want)
            return tp__error_set(err, TP_EUSAGE, "field '%s' must hold %llu bytes, not %llu",
                                 f->name, (unsigned long long)want, (unsigned long long)raw);
    }
    return 0;
}

/* Names the next shard and makes room for its manifest entry. */
static int next_shard(tp_dataset_writer *w, char *name, size_t cap, tp_error *err)
{
    tp__manifest *m = &w->m;
    snprintf(name, cap, "shard-%05zu.%s", m->nshards,
             m->format == TP_SHARD_LMDB ? "mdb" : "tpr");
    tp__manifest_shard *grown = realloc(m->shards, (m->nshards + 1) * sizeof(*grown));
    if (!grown)
        return tp__error_set(err, -ENOMEM, "out of memory");
    m->shards = grown;
    return 0;
}

static int shard_open(tp_dataset_writer *w, tp_error *err)
{
    tp__manifest *m = &w->m;
    char name[32];
    TP_TRY(next_shard(w, name, sizeof(name), err));
    tp__manifest_shard *sh = &m->shards[m->nshards];
    char *path = tp__path_join(w->st.dir, name);
    *sh = (tp__manifest_shard){.file = strdup(name), .first_sample = m->samples};
    if (!path || !sh->file) {
        free(path);
        free(sh->file);
        return tp__error_set(err, -ENOMEM, "out of memory");
    }
    m->nshards++;
    tp__shard_header h = {.align = m->align, .shard_index = m->nshards - 1,
                          .first_sample = m->samples};
    memcpy(h.id, m->id, sizeof(h.id));
    int rc = m->format == TP_SHARD_LMDB
                 ? tp__lmdb_writer_create(&w->cur, path, &h, w->shard_bytes, err)
                 : tp__tpr_writer_create(&w->cur, path, &h, err);
    free(path);
    return rc;
}

static int shard_close(tp_dataset_writer *w, tp_error *err)
{
    tp__manifest_shard *sh = &w->m.shards[w->m.nshards - 1];
    int rc = w->cur->ops->finish(w->cur, &sh->bytes, err);
    sh->samples = w->cur->records;
    w->m.bytes += sh->bytes;
    w->cur->ops->destroy(w->cur);
    w->cur = NULL;
    return rc < 0 ? rc : tp__staging_upload(&w->st, sh->file, NULL, err);
}

int tp__writer_append_record(tp_dataset_writer *w, const unsigned char *rec, uint64_t len,
                             uint64_t checksum, tp_error *err)
{
    if (w->failed || w->finished)
        return tp__error_set(err, TP_EUSAGE, "%s: writer is closed after an earlier error",
                             w->st.path);
    int rc = 0;
    if (w->cur && w->cur->records > 0 && w->cur->bytes + len > w->shard_bytes)
        rc = shard_close(w, err);
    if (rc == 0 && !w->cur)
        rc = shard_open(w, err);
    if (rc == 0)
        rc = w->cur->ops->append(w->cur, rec, len, checksum, err);
    if (rc < 0) {
        w->failed = true;
        return rc;
    }
    w->m.samples++;
    return 0;
}

TP_API int tp_dataset_writer_append(tp_dataset_writer *w, const tp_field_value *values,
                                    size_t n, tp_error *err)
{
    TP_TRY(tp__values_check(w->m.fields, w->m.nfields, values, n, err));
    for (size_t i = 0; i < n; i++)
        if (values[i].compression == TP_COMPRESS_ZSTD_DICT && !w->m.has_dict)
            return tp__error_set(err, TP_EUSAGE, "field %u uses a zstd dictionary, and the "
                                 "writer has none", values[i].field);
    uint64_t len = tp__record_size(values, n);
    if (len > w->cap) {
        size_t cap = (size_t)TP_MAX(len, 2 * (uint64_t)w->cap);
        unsigned char *p = realloc(w->buf, cap);
        if (!p)
            return tp__error_set(err, -ENOMEM, "out of memory for a %llu-byte record",
                                 (unsigned long long)len);
        w->buf = p;
        w->cap = cap;
    }
    uint64_t sum = tp__record_encode(w->buf, values, n);
    return tp__writer_append_record(w, w->buf, len, sum, err);
}

TP_API uint64_t tp_dataset_writer_count(const tp_dataset_writer *w) { return w->m.samples; }

int tp__writer_adopt_shard(tp_dataset_writer *w, const char *path, const tp__manifest_shard *sh,
                           const unsigned char *id, uint64_t index, tp_error *err)
{
    tp__manifest *m = &w->m;
    if (w->cur || w->failed || w->finished)
        return tp__error_set(err, TP_EUSAGE, "shards are adopted before records are written");
    char name[32];
    TP_TRY(next_shard(w, name, sizeof(name), err));
    char *to = tp__path_join(w->st.dir, name), *file = strdup(name);
    int rc = to && file ? 0 : -ENOMEM;
    if (rc == 0 && w->st.remote) { /* uploaded (or copied inside the store) */
        rc = tp__staging_upload(&w->st, name, path, err);
        free(to);
        if (rc < 0) {
            free(file);
            w->failed = true;
            return rc;
        }
        to = NULL;
    } else if (rc == 0 && tp_s3_is_url(path)) {
        rc = tp__error_set(err, TP_EUSAGE, "%s: parts in object storage can only be merged "
                           "into object storage", path);
        free(to);
        free(file);
        w->failed = true;
        return rc;
    } else if (rc == 0 && link(path, to) < 0) {
        rc = -errno;
    }
    free(to);
    if (rc < 0) {
        free(file);
        w->failed = true;
        return tp__error_set(err, rc, "linking %s into %s: %s%s", path, w->st.dir,
                             tp_strerror(rc), rc == -EXDEV ? " (the parts must be on the "
                             "destination's file system)" : "");
    }
    tp__manifest_shard *e = &m->shards[m->nshards++];
    *e = (tp__manifest_shard){.file = file, .first_sample = m->samples, .samples = sh->samples,
                              .bytes = sh->bytes, .has_origin = true,
                              .origin_index = sh->has_origin ? sh->origin_index : index,
                              .origin_first = sh->has_origin ? sh->origin_first
                                                             : sh->first_sample};
    memcpy(e->origin_id, sh->has_origin ? sh->origin_id : id, TP_DATASET_ID_BYTES);
    m->samples += sh->samples;
    m->bytes += sh->bytes;
    return 0;
}

static int write_dict(tp_dataset_writer *w, tp_error *err)
{
    if (!w->m.has_dict)
        return 0;
    char *path = tp__path_join(w->st.dir, TP_DICT_FILE);
    int fd = path ? open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644) : -1;
    int rc = !path ? -ENOMEM : fd < 0 ? -errno : 0;
    if (rc == 0)
        rc = tp__write_all(fd, w->dict, (size_t)w->m.dict_bytes);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc < 0)
        tp__error_set(err, rc, "writing %s: %s", path ? path : TP_DICT_FILE, tp_strerror(rc));
    free(path);
    return rc < 0 ? rc : tp__staging_upload(&w->st, TP_DICT_FILE, NULL, err);
}

static int write_manifest(tp_dataset_writer *w, tp_error *err)
{
    char *text = tp__manifest_dump(&w->m);
    if (!text)
        return tp__error_set(err, -ENOMEM, "out of memory");
    int rc = tp__staging_write(&w->st, "manifest.json", text, strlen(text), err);
    free(text);
    return rc;
}

TP_API int tp_dataset_writer_finish(tp_dataset_writer *w, tp_error *err)
{
    if (w->failed || w->finished)
        return tp__error_set(err, TP_EUSAGE, "%s: writer already failed or finished",
                             w->st.path);
    int rc = w->cur ? shard_close(w, err) : 0;
    if (rc == 0)
        rc = write_dict(w, err);
    if (rc == 0)
        rc = write_manifest(w, err);
    if (rc == 0)
        rc = tp__staging_publish(&w->st, err);
    if (rc < 0) {
        w->failed = true;
        return rc;
    }
    w->finished = true;
    return 0;
}

TP_API void tp_dataset_writer_destroy(tp_dataset_writer *w)
{
    if (!w)
        return;
    if (w->cur)
        w->cur->ops->destroy(w->cur);
    tp__staging_close(&w->st, w->finished);
    tp__manifest_free(&w->m);
    free(w->dict);
    free(w->buf);
    free(w);
}
