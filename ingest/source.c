/* What every source shares: opening by kind, samples and their buffers, warnings,
 * field kinds from names and the --fields selection. */
#include "source.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static bool looks_like_tar(const char *src)
{
    return strpbrk(src, "*?{[") || tp__tar_name(src);
}

/* A directory of input files and no subdirectories holds shards, not classes: tar
 * shards, or with `tfrecord` TFRecord files. */
static bool files_dir(const char *path, bool tfrecord)
{
    DIR *d = opendir(path);
    if (!d)
        return false;
    bool tars = false, dirs = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && !dirs) {
        if (e->d_name[0] == '.')
            continue;
        char *p = tp__path_join(path, e->d_name);
        struct stat st;
        if (p && stat(p, &st) == 0)
            dirs |= S_ISDIR(st.st_mode);
        tars |= tfrecord ? strstr(e->d_name, ".tfrec") != NULL : tp__tar_name(e->d_name);
        free(p);
    }
    closedir(d);
    return tars && !dirs;
}

static bool shard_dir(const char *path) { return files_dir(path, false); }
static bool tfrecord_dir(const char *path) { return files_dir(path, true); }

int tp_source_open(const char *src, const char *kind, const tp_source_options *o,
                   tp_source **out, tp_error *err)
{
    *out = NULL;
    if (!kind) {
        struct stat st;
        bool is_dir = stat(src, &st) == 0 && S_ISDIR(st.st_mode);
        kind = has_suffix(src, ".csv") || has_suffix(src, ".jsonl") ||
                       has_suffix(src, ".ndjson")
                   ? "listing"
               : strstr(src, ".tfrec") || tfrecord_dir(src) ? "tfrecord"
               : looks_like_tar(src) || (!is_dir && access(src, F_OK) == 0) || shard_dir(src)
                   ? "wds"
                   : "imagefolder";
    }
    if (!strcmp(kind, "listing"))
        return tp__listing_open(src, o, out, err);
    if (!strcmp(kind, "tfrecord"))
        return tp__tfrecord_open(src, o, out, err);
    if (!strcmp(kind, "imagefolder"))
        return tp__imagefolder_open(src, o, out, err);
    if (!strcmp(kind, "wds"))
        return tp__wds_open(src, o, out, err);
    return tp__error_set(err, TP_EUSAGE, "unknown input kind '%s' (imagefolder, wds, "
                         "tfrecord or listing)", kind);
}

void tp_source_close(tp_source *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nfields; i++)
        free(s->field_names[i]);
    for (size_t i = 0; i < s->nclasses; i++)
        free(s->classes[i]);
    free(s->classes);
    free(s->location);
    s->ops->close(s);
}

void tp_source_sample_init(tp_source_sample *s) { memset(s, 0, sizeof(*s)); }

void tp_source_sample_clear(tp_source_sample *s)
{
    free(s->key);
    free(s->where);
    s->key = s->where = NULL;
    memset(s->v, 0, sizeof(s->v));
    s->buf_len = 0;
}

void tp_source_sample_free(tp_source_sample *s)
{
    tp_source_sample_clear(s);
    free(s->buf);
    s->buf = NULL;
    s->buf_cap = 0;
}

/* Values record their offsets while the buffer may still move, and become pointers when
 * the sample is sealed. */
int tp__source_sample_put(tp_source_sample *s, uint32_t field, const void *data, size_t len,
                          bool append)
{
    if (len > s->buf_cap - s->buf_len) {
        size_t cap = TP_MAX(s->buf_cap * 2, s->buf_len + len + 4096);
        unsigned char *b = realloc(s->buf, cap);
        if (!b)
            return -ENOMEM;
        s->buf = b;
        s->buf_cap = cap;
    }
    if (len)
        memcpy(s->buf + s->buf_len, data, len);
    tp_source_value *v = &s->v[field];
    if (append && v->present && v->offset + v->len == s->buf_len)
        v->len += len;
    else
        *v = (tp_source_value){.present = true, .offset = s->buf_len, .len = len};
    s->buf_len += len;
    return 0;
}

void tp__source_sample_seal(tp_source_sample *s)
{
    for (size_t i = 0; i < TP_SOURCE_MAX_FIELDS; i++)
        if (s->v[i].present && !s->v[i].path && !s->v[i].is_int)
            s->v[i].data = s->buf + s->v[i].offset;
}

int tp__source_warn(tp_source *s, const char *where, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    s->skipped++;
    if (s->warn && s->warn(s->warn_ctx, where, why))
        s->stopped = true;
    return s->stopped;
}

void tp__field_name(char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' ||
              *s == '-'))
            *s = *s >= 'A' && *s <= 'Z' ? (char)(*s + 32) : '_';
}

void tp__source_part(const tp_source_options *o, uint64_t count, uint64_t *lo, uint64_t *hi)
{
    *lo = 0;
    *hi = count;
    if (o->parts > 1) { /* count * part < 2^64 for any count of samples that can exist */
        *lo = (uint64_t)((unsigned __int128)count * o->part / o->parts);
        *hi = (uint64_t)((unsigned __int128)count * (o->part + 1) / o->parts);
    }
}

tp_field_kind tp__source_kind_of(const char *ext)
{
    static const char *const images[] = {"jpg", "jpeg", "png"};
    static const char *const ints[] = {"cls", "cls2", "index", "id"};
    const char *last = strrchr(ext, '.');
    const char *tail = last ? last + 1 : ext; /* "seg.png" is a png */
    for (size_t i = 0; i < TP_ARRAY_LEN(images); i++)
        if (!strcmp(tail, images[i]))
            return TP_FIELD_IMAGE;
    for (size_t i = 0; i < TP_ARRAY_LEN(ints); i++)
        if (!strcmp(tail, ints[i]))
            return TP_FIELD_INT64;
    return !strcmp(tail, "npy") ? TP_FIELD_TENSOR : TP_FIELD_BYTES;
}

int tp__source_select(tp_source *s, const tp_source_options *o, char *const *names,
                      const tp_field_kind *kinds, size_t n, int *map, tp_error *err)
{
    for (size_t i = 0; i < n; i++)
        map[i] = -1;
    size_t want = o && o->nfields ? o->nfields : n;
    if (want > TP_SOURCE_MAX_FIELDS)
        return tp__error_set(err, TP_EUSAGE, "%zu fields: at most %d", want,
                             TP_SOURCE_MAX_FIELDS);
    for (size_t k = 0; k < want; k++) {
        char from[128], to[128];
        if (o && o->nfields) {
            const char *spec = o->fields[k], *colon = strchr(spec, ':');
            size_t fl = colon ? (size_t)(colon - spec) : strlen(spec);
            const char *t = colon ? colon + 1 : spec;
            if (!fl || fl >= sizeof(from) || !*t || strlen(t) >= sizeof(to))
                return tp__error_set(err, TP_EUSAGE, "--fields: '%s' is not NAME or FROM:TO",
                                     spec);
            memcpy(from, spec, fl);
            from[fl] = '\0';
            snprintf(to, sizeof(to), "%s", t);
            if (!colon) /* a kept name made a field name */
                tp__field_name(to);
        } else {
            snprintf(from, sizeof(from), "%s", names[k]);
            snprintf(to, sizeof(to), "%s", names[k]);
        }
        size_t i = 0;
        while (i < n && strcmp(names[i], from))
            i++;
        if (i == n)
            return tp__error_set(err, TP_EUSAGE, "--fields: the input has no field '%s'", from);
        if (map[i] >= 0)
            return tp__error_set(err, TP_EUSAGE, "--fields: '%s' named twice", from);
        for (size_t j = 0; j < k; j++)
            if (!strcmp(s->field_names[j], to))
                return tp__error_set(err, TP_EUSAGE, "--fields: two fields named '%s'", to);
        map[i] = (int)k;
        if (!(s->field_names[k] = strdup(to)))
            return -ENOMEM;
        s->fields[k] = (tp_field_info){.name = s->field_names[k],
                                       .kind = kinds ? kinds[i] : tp__source_kind_of(from)};
        s->nfields = k + 1;
    }
    return 0;
}
