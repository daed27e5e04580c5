/* The TFRecord source: files of framed records, each a tf.train.Example decoded with
 * protobuf-c. A frame is a little-endian uint64 length, the masked CRC-32C of those 8
 * bytes, the data and the masked CRC-32C of the data. A wrong length checksum or a file
 * that ends inside a frame makes the rest of the file unreadable: one warning, and the
 * next file goes on. A wrong data checksum, or data that is not an Example, loses that
 * record only.
 *
 * Fields are the features of the first valid Example, by key in byte order (or those
 * --fields names, e.g. "image/encoded:jpg,image/class/label:cls"). A feature with one
 * bytes value is bytes, or an image when its field's name says so (jpg, png); one int64
 * is int64; more int64s, or floats, are a tensor (int64 or float32) whose length the
 * first Example fixes. Without --fields, keys become field names with characters other
 * than [a-z0-9_.-] as '_' ("image/encoded" is image_encoded). */
#include "source.h"
#include "tf_example.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#define MAX_RECORD (1ull << 30)
#define MAX_FEATURES 64

typedef struct feature {
    char *key;
    Tensorflow__Feature__KindCase kind;
    size_t n;                   /* values in the first Example */
} feature;

typedef struct tfr {
    tp_source base;
    tp_file_list files;
    const void *mem;            /* one in-memory file instead (fuzzing) */
    size_t mem_len;
    feature feats[MAX_FEATURES];
    size_t nfeats;
    int map[MAX_FEATURES];
    uint64_t lo, hi, total, index; /* the part's records; the next record's index */
    size_t file;                /* next file to open */
    FILE *f;
    const char *fname;
    uint64_t rec;               /* record number in the file, for messages */
    unsigned char *buf;
    size_t cap;
} tfr;

static uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

static bool tfrecord_name(const char *name)
{
    return strstr(name, ".tfrecord") || strstr(name, ".tfrec");
}

static size_t nfiles(const tfr *t) { return t->mem ? 1 : t->files.n; }

static FILE *open_file(const tfr *t, size_t i)
{
    return t->mem ? fmemopen((void *)t->mem, t->mem_len, "r") : fopen(t->files.paths[i], "rb");
}

static const char *file_name(const tfr *t, size_t i)
{
    return t->mem ? "<memory>" : t->files.paths[i];
}

/* Reads the next frame of `f` into t->buf. @return : 1 with *len set, 0 at the end of the
 * file, -1 when the rest of the file is unreadable (why set), -2 when only this record's
 * data is damaged, -ENOMEM. */
static int read_frame(tfr *t, FILE *f, size_t *len, const char **why)
{
    unsigned char head[12], tail[4];
    size_t got = fread(head, 1, sizeof(head), f);
    if (got == 0 && feof(f))
        return 0;
    if (got != sizeof(head)) {
        *why = "the file ends inside a record's header";
        return -1;
    }
    if (tp__le32(head + 8) != masked(tp__crc32c(head, 8))) {
        *why = "a record's length fails its checksum";
        return -1;
    }
    uint64_t n = tp__le64(head);
    if (n > MAX_RECORD) {
        *why = "a record is larger than 1 GiB";
        return -1;
    }
    if (tp__grow((void **)&t->buf, &t->cap, (size_t)n + 1) < 0)
        return -ENOMEM;
    if (fread(t->buf, 1, (size_t)n, f) != n || fread(tail, 1, 4, f) != 4) {
        *why = "the file ends inside a record";
        return -1;
    }
    *len = (size_t)n;
    if (tp__le32(tail) != masked(tp__crc32c(t->buf, (size_t)n))) {
        *why = "data fails its checksum";
        return -2;
    }
    return 1;
}

/* The first pass's read_frame: the header checked, the data skipped unread (fseek), so
 * the data is read and checksummed once, by the second pass. The same frames count:
 * those with a valid length that the file holds whole. @return : as read_frame, never -2. */
static int skip_frame(const tfr *t, FILE *f, size_t *len)
{
    unsigned char head[12];
    size_t got = fread(head, 1, sizeof(head), f);
    if (got == 0 && feof(f))
        return 0;
    if (got != sizeof(head) || tp__le32(head + 8) != masked(tp__crc32c(head, 8)))
        return -1;
    uint64_t n = tp__le64(head);
    struct stat st;
    off_t at = ftello(f);
    uint64_t size = t->mem ? t->mem_len : fstat(fileno(f), &st) == 0 ? (uint64_t)st.st_size : 0;
    if (n > MAX_RECORD || at < 0 || (uint64_t)at + n + 4 > size ||
        fseeko(f, (off_t)(n + 4), SEEK_CUR) != 0)
        return -1;
    *len = (size_t)n;
    return 1;
}

static int by_key(const void *a, const void *b)
{
    return strcmp(((const feature *)a)->key, ((const feature *)b)->key);
}

static size_t value_count(const Tensorflow__Feature *f)
{
    switch (f->kind_case) {
    case TENSORFLOW__FEATURE__KIND_BYTES_LIST:
        return f->bytes_list ? f->bytes_list->n_value : 0;
    case TENSORFLOW__FEATURE__KIND_FLOAT_LIST:
        return f->float_list ? f->float_list->n_value : 0;
    case TENSORFLOW__FEATURE__KIND_INT64_LIST:
        return f->int64_list ? f->int64_list->n_value : 0;
    default:
        return 0;
    }
}

/* The schema from one Example. */
static int take_schema(tfr *t, const Tensorflow__Example *ex)
{
    const Tensorflow__Features *fs = ex->features;
    for (size_t i = 0; fs && i < fs->n_feature && t->nfeats < MAX_FEATURES; i++) {
        const Tensorflow__Features__FeatureEntry *e = fs->feature[i];
        if (!e->value || e->value->kind_case == TENSORFLOW__FEATURE__KIND__NOT_SET)
            continue;
        feature *f = &t->feats[t->nfeats];
        if (!(f->key = strdup(e->key)))
            return -ENOMEM;
        f->kind = e->value->kind_case;
        f->n = value_count(e->value);
        t->nfeats++;
    }
    if (t->nfeats)
        qsort(t->feats, t->nfeats, sizeof(feature), by_key);
    return 0;
}

/* The first pass: records per file (frames only, data skipped once the schema is known)
 * and the first valid Example's schema; the listing hash covers the record sizes. */
static int survey(tfr *t, tp_error *err)
{
    uint64_t h = tp__hash64("tfrecord", 8);
    for (size_t i = 0; i < nfiles(t); i++) {
        FILE *f = open_file(t, i);
        if (!f)
            continue; /* reported by the second pass */
        size_t len;
        const char *why;
        int rc;
        while ((rc = t->nfeats ? skip_frame(t, f, &len) : read_frame(t, f, &len, &why)) != 0 &&
               rc != -1) {
            if (rc == -ENOMEM) {
                fclose(f);
                return tp__error_set(err, rc, "out of memory");
            }
            t->total++;
            uint64_t p[2] = {h, len};
            h = tp__hash64(p, sizeof(p));
            Tensorflow__Example *ex = rc == 1 && !t->nfeats
                                          ? tensorflow__example__unpack(NULL, len, t->buf)
                                          : NULL;
            if (ex) {
                int r = take_schema(t, ex);
                tensorflow__example__free_unpacked(ex, NULL);
                if (r < 0) {
                    fclose(f);
                    return tp__error_set(err, r, "out of memory");
                }
            }
        }
        fclose(f);
    }
    t->base.listing_hash = h;
    return 0;
}

static const Tensorflow__Feature *lookup(const Tensorflow__Example *ex, const char *key)
{
    const Tensorflow__Features *fs = ex->features;
    for (size_t i = 0; fs && i < fs->n_feature; i++)
        if (!strcmp(fs->feature[i]->key, key))
            return fs->feature[i]->value;
    return NULL;
}

/* Puts feature `k` of `ex` into the sample. @return : 0, or 1 after a warning. */
static int take_value(tfr *t, const Tensorflow__Example *ex, size_t k, tp_source_sample *out)
{
    const feature *fe = &t->feats[k];
    const Tensorflow__Feature *v = lookup(ex, fe->key);
    uint32_t f = (uint32_t)t->map[k];
    const tp_field_info *fi = &t->base.fields[f];
    if (!v || v->kind_case != fe->kind) {
        tp__source_warn(&t->base, out->where, "feature '%s' %s; record left out", fe->key,
                        v ? "is of another type than in the first record" : "is missing");
        return 1;
    }
    size_t n = value_count(v);
    bool list = fi->kind == TP_FIELD_TENSOR;
    if (n != (list ? (size_t)fi->shape[0] : 1)) {
        tp__source_warn(&t->base, out->where, "feature '%s' has %zu values, not %zu; record "
                        "left out", fe->key, n, list ? (size_t)fi->shape[0] : (size_t)1);
        return 1;
    }
    int rc = 0;
    if (v->kind_case == TENSORFLOW__FEATURE__KIND_BYTES_LIST)
        rc = tp__source_sample_put(out, f, v->bytes_list->value[0].data,
                                   v->bytes_list->value[0].len, false);
    else if (v->kind_case == TENSORFLOW__FEATURE__KIND_INT64_LIST && !list)
        out->v[f] = (tp_source_value){.present = true, .is_int = true,
                                      .i64 = v->int64_list->value[0]};
    else {
        for (size_t i = 0; i < n && rc == 0; i++) { /* little-endian, as tensors are */
            unsigned char b[8];
            uint32_t bits;
            if (v->kind_case == TENSORFLOW__FEATURE__KIND_INT64_LIST) {
                tp__put64(b, (uint64_t)v->int64_list->value[i]);
            } else {
                memcpy(&bits, &v->float_list->value[i], 4);
                tp__put32(b, bits);
            }
            rc = tp__source_sample_put(out, f, b, fi->dtype == TP_DTYPE_FLOAT32 ? 4 : 8, i > 0);
        }
        out->v[f].raw = true;
    }
    return rc < 0 ? rc : 0;
}

static int tfr_next(tp_source *base, tp_source_sample *out, tp_error *err)
{
    tfr *t = (tfr *)base;
    /* the last part reads on past its last record, to report damage after it */
    while (!base->stopped && (t->index < t->hi || t->hi == t->total)) {
        if (!t->f) {
            if (t->file == nfiles(t))
                return 0;
            t->fname = file_name(t, t->file);
            t->rec = 0;
            if (!(t->f = open_file(t, t->file++)) && t->index >= t->lo)
                tp__source_warn(base, t->fname, "cannot open: %s", strerror(errno));
            continue;
        }
        size_t len;
        const char *why;
        int rc = read_frame(t, t->f, &len, &why);
        if (rc == -ENOMEM)
            return tp__error_set(err, rc, "out of memory");
        if (rc == 0 || rc == -1) {
            if (rc == -1 && t->index >= t->lo)
                tp__source_warn(base, t->fname, "record %llu: %s; the rest of the file is "
                                "left out", (unsigned long long)t->rec, why);
            fclose(t->f);
            t->f = NULL;
            continue;
        }
        uint64_t index = t->index++, rec = t->rec++;
        if (index < t->lo || index >= t->hi)
            continue;
        tp_source_sample_clear(out);
        char where[64];
        snprintf(where, sizeof(where), "record %llu", (unsigned long long)rec);
        size_t wl = strlen(t->fname) + sizeof(where) + 4;
        out->key = strdup(where);
        if ((out->where = malloc(wl)))
            snprintf(out->where, wl, "%s: %s", t->fname, where);
        if (!out->key || !out->where)
            return tp__error_set(err, -ENOMEM, "out of memory");
        if (rc == -2) {
            tp__source_warn(base, out->where, "%s; record left out", why);
            continue;
        }
        Tensorflow__Example *ex = tensorflow__example__unpack(NULL, len, t->buf);
        if (!ex) {
            tp__source_warn(base, out->where, "not a tf.train.Example (the protobuf is "
                            "malformed); record left out");
            continue;
        }
        int bad = 0;
        for (size_t k = 0; k < t->nfeats && bad == 0; k++)
            if (t->map[k] >= 0)
                bad = take_value(t, ex, k, out);
        tensorflow__example__free_unpacked(ex, NULL);
        if (bad < 0)
            return tp__error_set(err, bad, "out of memory");
        if (bad)
            continue;
        tp__source_sample_seal(out);
        return 1;
    }
    return 0;
}

static void tfr_close(tp_source *base)
{
    tfr *t = (tfr *)base;
    if (t->f)
        fclose(t->f);
    for (size_t i = 0; i < t->nfeats; i++)
        free(t->feats[i].key);
    tp__files_free(&t->files);
    free(t->buf);
    free(t);
}

static const tp_source_ops tfr_ops = {.next = tfr_next, .close = tfr_close};

/* Field names and kinds from the features, then the --fields selection. */
static int select_fields(tfr *t, const tp_source_options *o, tp_error *err)
{
    char *names[MAX_FEATURES], *owned[MAX_FEATURES];
    tp_field_kind kinds[MAX_FEATURES];
    for (size_t k = 0; k < t->nfeats; k++) {
        const feature *fe = &t->feats[k];
        owned[k] = strdup(fe->key);
        if (!owned[k]) {
            for (size_t j = 0; j < k; j++)
                free(owned[j]);
            return tp__error_set(err, -ENOMEM, "out of memory");
        }
        if (!o->nfields) /* keys as field names */
            tp__field_name(owned[k]);
        names[k] = owned[k];
        kinds[k] = fe->kind == TENSORFLOW__FEATURE__KIND_BYTES_LIST ? TP_FIELD_BYTES
                   : fe->kind == TENSORFLOW__FEATURE__KIND_INT64_LIST && fe->n == 1
                       ? TP_FIELD_INT64
                       : TP_FIELD_TENSOR;
    }
    int rc = tp__source_select(&t->base, o, names, kinds, t->nfeats, t->map, err);
    for (size_t k = 0; k < t->nfeats; k++)
        free(owned[k]);
    TP_TRY(rc);
    for (size_t k = 0; k < t->nfeats; k++) {
        if (t->map[k] < 0)
            continue;
        tp_field_info *fi = &t->base.fields[t->map[k]];
        if (fi->kind == TP_FIELD_BYTES && tp__source_kind_of(fi->name) == TP_FIELD_IMAGE)
            fi->kind = TP_FIELD_IMAGE; /* image/encoded:jpg */
        if (fi->kind == TP_FIELD_TENSOR) {
            if (!t->feats[k].n)
                return tp__error_set(err, TP_EUSAGE, "feature '%s' has no values in the "
                                     "first record, so its length is unknown",
                                     t->feats[k].key);
            fi->dtype = t->feats[k].kind == TENSORFLOW__FEATURE__KIND_FLOAT_LIST
                            ? TP_DTYPE_FLOAT32 : TP_DTYPE_INT64;
            fi->ndim = 1;
            fi->shape[0] = (int64_t)t->feats[k].n;
        }
    }
    return 0;
}

static int finish_open(tfr *t, const tp_source_options *o, tp_source **out, tp_error *err)
{
    int rc = survey(t, err);
    if (rc == 0 && !t->nfeats)
        rc = tp__error_set(err, TP_EUSAGE, "%s: no valid tf.train.Example with features",
                           t->base.location);
    if (rc == 0)
        rc = select_fields(t, o, err);
    if (rc) {
        tp_source_close(&t->base);
        return rc;
    }
    tp__source_part(o, t->total, &t->lo, &t->hi);
    t->base.count = t->hi - t->lo;
    *out = &t->base;
    return 0;
}

static tfr *tfr_new(const tp_source_options *o, const char *where)
{
    tfr *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->base = (tp_source){.ops = &tfr_ops, .kind = "tfrecord", .warn = o->warn,
                          .warn_ctx = o->warn_ctx};
    char *abs = strpbrk(where, "*?[{") ? NULL : realpath(where, NULL);
    if ((t->base.location = malloc(strlen(abs ? abs : where) + 16)))
        sprintf(t->base.location, "tfrecord:%s", abs ? abs : where);
    free(abs);
    if (!t->base.location) {
        free(t);
        return NULL;
    }
    return t;
}

int tp__tfrecord_open(const char *spec, const tp_source_options *o, tp_source **out,
                      tp_error *err)
{
    *out = NULL;
    tfr *t = tfr_new(o, spec);
    if (!t)
        return tp__error_set(err, -ENOMEM, "out of memory");
    int rc = tp__files_expand(&t->files, spec, tfrecord_name, err);
    if (rc) {
        tp_source_close(&t->base);
        return rc;
    }
    return finish_open(t, o, out, err);
}

int tp__tfrecord_open_memory(const void *data, size_t len, const tp_source_options *o,
                             tp_source **out, tp_error *err)
{
    *out = NULL;
    tfr *t = tfr_new(o, "<memory>");
    if (!t)
        return tp__error_set(err, -ENOMEM, "out of memory");
    t->mem = len ? data : "";
    t->mem_len = len;
    return finish_open(t, o, out, err);
}
