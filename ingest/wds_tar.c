/* The WebDataset source: tar shards read with libarchive (plain or compressed), members
 * grouped into samples by WebDataset's rules:
 *
 * - only regular files count; top-level names like __key__ or __meta__ are metadata and
 *   are skipped;
 * - a member's key is its path up to the first dot of its last component and the rest is
 *   its extension, lowercased ("a/b.seg.PNG": key "a/b", extension "seg.png"); a name
 *   with no such dot has no key and is reported;
 * - consecutive members with one key form a sample, which never spans two shards; an
 *   extension seen twice in one sample reports and drops the sample.
 *
 * Every extension is a field unless --fields chooses (and renames) them. A first pass
 * reads only the headers: it finds the fields in order of first appearance, counts the
 * samples and hashes the listing (member names and sizes, shard names) for the dataset
 * id. A sample without one of the fields is reported and left out; so is a shard that
 * cannot be opened or ends early, with the samples read from it before the damage kept. */
#include "source.h"

#include "archive_dl.h"

#include <stdio.h>
#include <stdlib.h>

#define MAX_EXTS 64


typedef struct wds {
    tp_source base;
    const tp__archive_api *la;  /* libarchive */
    tp_file_list shards;
    const void *mem;            /* one in-memory shard instead of files (fuzzing) */
    size_t mem_len;
    char *exts[MAX_EXTS];       /* extensions seen by the first pass, in order */
    uint64_t ext_samples[MAX_EXTS]; /* how many samples have each */
    tp_npy npy[MAX_EXTS];       /* tensor extensions: the first parsable member's array */
    bool npy_ok[MAX_EXTS];
    size_t nexts;
    int map[MAX_EXTS];          /* dataset field of each extension, or -1 */
    /* the reading position */
    size_t shard;               /* next shard to open */
    struct archive *a;          /* the open shard, or NULL */
    const char *shard_name;
    tp_source_sample cur;       /* the sample being gathered */
    bool have_cur, cur_bad;
    bool cur_skip;              /* it lies outside the part: gathered by another */
    uint64_t groups;            /* samples begun so far (the next one's index) */
    uint64_t total;             /* samples in the whole input (the first pass's count) */
    uint64_t lo, hi;            /* the part's range of sample indices */
    bool done;
    uint32_t cur_seen[MAX_EXTS / 32];
} wds;

/* ---- WebDataset's naming rules */

/* Splits a member name into key and extension; false when it has no key. */
static bool split_name(const char *name, size_t *key_len, const char **ext)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strchr(base, '.');
    if (!dot || dot == base || !dot[1])
        return false;
    *key_len = (size_t)(dot - name);
    *ext = dot + 1;
    return true;
}

static bool is_meta(const char *name)
{
    size_t n = strlen(name);
    return !strchr(name, '/') && n >= 4 && !strncmp(name, "__", 2) &&
           !strcmp(name + n - 2, "__");
}

static void lower(char *dst, const char *src, size_t cap)
{
    size_t i = 0;
    for (; src[i] && i + 1 < cap; i++)
        dst[i] = src[i] >= 'A' && src[i] <= 'Z' ? (char)(src[i] + 32) : src[i];
    dst[i] = '\0';
}

/* ---- reading shards */

static struct archive *open_archive(wds *w, size_t i, tp_error *err)
{
    struct archive *a = w->la->read_new();
    if (!a) {
        tp__error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    w->la->read_support_filter_all(a);
    w->la->read_support_format_tar(a);
    int rc = w->mem ? w->la->read_open_memory(a, w->mem, w->mem_len)
                    : w->la->read_open_filename(a, w->shards.paths[i], 1 << 16);
    if (rc != ARCHIVE_OK) {
        tp__error_set(err, TP_EBADIMAGE, "%s", w->la->error_string(a) ? w->la->error_string(a)
                                                                       : "cannot open");
        w->la->read_free(a);
        return NULL;
    }
    return a;
}

static const char *shard_name(const wds *w, size_t i)
{
    return w->mem ? "<memory>" : w->shards.paths[i];
}

static size_t nshards(const wds *w) { return w->mem ? 1 : w->shards.n; }

static int ext_index(const wds *w, const char *ext)
{
    for (size_t i = 0; i < w->nexts; i++)
        if (!strcmp(w->exts[i], ext))
            return (int)i;
    return -1;
}

/* The first pass: fields, sample count and listing hash, from the headers alone. */
static int survey(wds *w, tp_error *err)
{
    uint64_t h = tp__hash64("wds", 3);
    for (size_t i = 0; i < nshards(w); i++) {
        struct archive *a = open_archive(w, i, err);
        if (!a)
            continue; /* reported when the second pass reaches it */
        const char *base = strrchr(shard_name(w, i), '/');
        base = base ? base + 1 : shard_name(w, i);
        uint64_t parts[2] = {h, tp__hash64(base, strlen(base))};
        h = tp__hash64(parts, sizeof(parts));
        char *last = NULL;
        uint64_t seen[MAX_EXTS / 64] = {0};
        struct archive_entry *e;
        int r;
        while ((r = w->la->read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
            const char *name = w->la->entry_pathname(e), *ext;
            size_t klen;
            if (w->la->entry_filetype(e) != AE_IFREG || !name || is_meta(name) ||
                !split_name(name, &klen, &ext))
                continue;
            uint64_t size = (uint64_t)w->la->entry_size(e);
            uint64_t p3[3] = {h, tp__hash64(name, strlen(name)), size};
            h = tp__hash64(p3, sizeof(p3));
            if (!last || strlen(last) != klen || strncmp(last, name, klen)) {
                w->base.count++;
                free(last);
                if (!(last = strndup(name, klen))) {
                    w->la->read_free(a);
                    return tp__error_set(err, -ENOMEM, "out of memory");
                }
                memset(seen, 0, sizeof(seen));
            }
            char lx[128];
            lower(lx, ext, sizeof(lx));
            int x = ext_index(w, lx);
            if (x < 0 && w->nexts < MAX_EXTS) {
                if (!(w->exts[w->nexts] = strdup(lx))) {
                    free(last);
                    w->la->read_free(a);
                    return tp__error_set(err, -ENOMEM, "out of memory");
                }
                x = (int)w->nexts++;
            }
            if (x >= 0 && !(seen[x / 64] >> (x % 64) & 1)) {
                seen[x / 64] |= UINT64_C(1) << (x % 64);
                w->ext_samples[x]++;
            }
            if (x >= 0 && !w->npy_ok[x] && tp__source_kind_of(lx) == TP_FIELD_TENSOR) {
                unsigned char head[4096];
                la_ssize_t got = w->la->read_data(a, head, sizeof(head));
                w->npy_ok[x] = got > 0 && tp__npy_parse(head, (size_t)got, (size_t)size,
                                                        &w->npy[x], NULL) == 0;
            }
        }
        free(last);
        w->la->read_free(a);
    }
    w->base.listing_hash = h;
    return 0;
}

/* Hands the gathered sample to `out` if it is whole. @return : 1 when it did. */
static int finish_sample(wds *w, tp_source_sample *out)
{
    w->have_cur = false;
    if (w->cur_bad || w->cur_skip)
        return 0;
    for (size_t x = 0; x < w->nexts; x++)
        if (w->map[x] >= 0 && !w->cur.v[w->map[x]].present) {
            tp__source_warn(&w->base, w->cur.where, "no '%s' member; sample left out",
                            w->exts[x]);
            return 0;
        }
    tp__source_sample_seal(&w->cur);
    tp_source_sample t = *out;
    *out = w->cur;
    w->cur = t;
    return 1;
}

static int start_sample(wds *w, const char *name, size_t klen)
{
    tp_source_sample_clear(&w->cur);
    w->have_cur = true;
    w->cur_bad = false;
    w->cur_skip = w->groups < w->lo;
    w->groups++;
    memset(w->cur_seen, 0, sizeof(w->cur_seen));
    w->cur.key = strndup(name, klen);
    size_t n = strlen(w->shard_name) + klen + 4;
    if ((w->cur.where = malloc(n)))
        snprintf(w->cur.where, n, "%s: %.*s", w->shard_name, (int)klen, name);
    return w->cur.key && w->cur.where ? 0 : -ENOMEM;
}

/* Reads the current member's data into field `f` of the gathered sample. */
static int take_member(wds *w, int f, const char *name, tp_error *err)
{
    unsigned char chunk[1 << 16];
    size_t start = w->cur.buf_len;
    int rc = tp__source_sample_put(&w->cur, (uint32_t)f, NULL, 0, false);
    for (;;) {
        la_ssize_t got = rc ? 0 : w->la->read_data(w->a, chunk, sizeof(chunk));
        if (got < 0) {
            tp__source_warn(&w->base, w->shard_name, "member '%s': %s; the rest of the shard "
                            "is left out", name, w->la->error_string(w->a));
            w->cur_bad = true;
            return 1; /* the shard ends here */
        }
        if (got == 0)
            break;
        if (w->cur.buf_len - start + (size_t)got > TP_SOURCE_MAX_VALUE) {
            w->la->read_data_skip(w->a);
            w->cur_bad = true;
            tp__source_warn(&w->base, w->cur.where, "member '%s' is larger than %u MiB; "
                            "sample left out", name, TP_SOURCE_MAX_VALUE >> 20);
            return 0;
        }
        rc = tp__source_sample_put(&w->cur, (uint32_t)f, chunk, (size_t)got, true);
    }
    if (rc)
        return tp__error_set(err, rc, "out of memory reading %s", name);
    return 0;
}

/* Problems outside any sample (a damaged shard, a member without a key) are reported
 * by the part whose range holds the next sample. */
static bool mine(const wds *w)
{
    return w->groups >= w->lo && (w->groups < w->hi || w->hi == w->total);
}

static int wds_next(tp_source *base, tp_source_sample *out, tp_error *err)
{
    wds *w = (wds *)base;
    while (!base->stopped && !w->done) {
        if (!w->a) {
            if (w->shard == nshards(w))
                return 0;
            size_t i = w->shard++;
            w->shard_name = shard_name(w, i);
            tp_error e;
            if (!(w->a = open_archive(w, i, &e)) && mine(w))
                tp__source_warn(base, w->shard_name, "cannot read the shard: %s", e.msg);
            continue;
        }
        struct archive_entry *e;
        int r = w->la->read_next_header(w->a, &e);
        if (r == ARCHIVE_WARN)
            r = ARCHIVE_OK;
        if (r != ARCHIVE_OK) {
            if (r != ARCHIVE_EOF && (w->have_cur ? !w->cur_skip : mine(w)))
                tp__source_warn(base, w->shard_name, "%s; the rest of the shard is left out",
                                w->la->error_string(w->a));
            w->la->read_free(w->a);
            w->a = NULL;
            if (w->have_cur && finish_sample(w, out))
                return 1;
            continue;
        }
        const char *name = w->la->entry_pathname(e), *ext;
        size_t klen;
        if (w->la->entry_filetype(e) != AE_IFREG || (name && is_meta(name)))
            continue;
        if (!name || !split_name(name, &klen, &ext)) {
            if (mine(w))
                tp__source_warn(base, w->shard_name, "member '%s' has no key (no "
                                "'KEY.EXTENSION' name); left out", name ? name : "?");
            continue;
        }
        int done = 0;
        if (w->have_cur && (strlen(w->cur.key) != klen || strncmp(w->cur.key, name, klen)))
            done = finish_sample(w, out);
        if (!w->have_cur && w->groups >= w->hi) { /* the part is complete */
            w->done = true;
            return done;
        }
        if (!w->have_cur && start_sample(w, name, klen) < 0)
            return tp__error_set(err, -ENOMEM, "out of memory");
        char lx[128];
        lower(lx, ext, sizeof(lx));
        int x = ext_index(w, lx);
        if (x >= 0 && (w->cur_seen[x / 32] >> (x % 32) & 1)) {
            if (!w->cur_bad && !w->cur_skip)
                tp__source_warn(base, w->cur.where, "two '%s' members in one sample; sample "
                                "left out", lx);
            w->cur_bad = true;
        } else if (x >= 0) {
            w->cur_seen[x / 32] |= 1u << (x % 32);
        }
        if (x >= 0 && w->map[x] >= 0 && !w->cur_bad && !w->cur_skip) {
            int rc = take_member(w, w->map[x], name, err);
            if (rc < 0)
                return rc;
            if (rc > 0) { /* the shard is damaged: drop it from here */
                w->la->read_free(w->a);
                w->a = NULL;
                w->have_cur = false;
            }
        }
        if (done)
            return 1;
    }
    return 0;
}

static void wds_close(tp_source *base)
{
    wds *w = (wds *)base;
    if (w->a)
        w->la->read_free(w->a);
    tp__files_free(&w->shards);
    for (size_t i = 0; i < w->nexts; i++)
        free(w->exts[i]);
    tp_source_sample_free(&w->cur);
    free(w);
}

static const tp_source_ops wds_ops = {.next = wds_next, .close = wds_close};

/* Without --fields, the fields are the extensions every sample has; the others are
 * left out with a note (naming them in --fields keeps them, and leaves out the samples
 * that lack them). */
static int select_fields(wds *w, const tp_source_options *o, tp_error *err)
{
    char *use[MAX_EXTS];
    int idx[MAX_EXTS], m[MAX_EXTS];
    size_t n = 0;
    for (size_t i = 0; i < w->nexts; i++) {
        w->map[i] = -1;
        if (o->nfields || w->ext_samples[i] == w->total) {
            idx[n] = (int)i;
            use[n++] = w->exts[i];
        } else if (o->note && o->part == 0) { /* once, not by every part */
            char msg[256];
            snprintf(msg, sizeof(msg), "'%s' is in %llu of %llu samples, so it is not a field; "
                     "name it in --fields to keep it", w->exts[i],
                     (unsigned long long)w->ext_samples[i], (unsigned long long)w->total);
            o->note(o->warn_ctx, msg);
        }
    }
    if (!n)
        return tp__error_set(err, TP_EUSAGE, "%s: no extension is in every sample; choose "
                             "the fields with --fields", w->base.location);
    TP_TRY(tp__source_select(&w->base, o, use, NULL, n, m, err));
    for (size_t k = 0; k < n; k++) {
        int x = idx[k];
        if ((w->map[x] = m[k]) < 0)
            continue;
        tp_field_info *fi = &w->base.fields[m[k]];
        if (fi->kind == TP_FIELD_TENSOR && !w->npy_ok[x])
            return tp__error_set(err, TP_EUSAGE, "%s: no '%s' member is a valid .npy array, "
                                 "so the field's dtype and shape are unknown",
                                 w->base.location, w->exts[x]);
        if (fi->kind == TP_FIELD_TENSOR) { /* every sample must match the first */
            fi->dtype = w->npy[x].dtype;
            fi->ndim = w->npy[x].ndim;
            memcpy(fi->shape, w->npy[x].shape, sizeof(fi->shape));
        }
    }
    return 0;
}

static int finish_open(wds *w, const tp_source_options *o, tp_source **out, tp_error *err)
{
    int rc = (w->la = tp__archive(err)) ? survey(w, err) : TP_EUSAGE;
    w->total = w->base.count;
    tp__source_part(o, w->total, &w->lo, &w->hi);
    w->base.count = w->hi - w->lo;
    if (rc == 0 && w->nexts == 0)
        rc = tp__error_set(err, TP_EUSAGE, "%s: no samples (no member named KEY.EXTENSION)",
                           w->base.location);
    if (rc == 0)
        rc = select_fields(w, o, err);
    if (rc) {
        tp_source_close(&w->base);
        return rc;
    }
    *out = &w->base;
    return 0;
}

static wds *wds_new(const tp_source_options *o, const char *where)
{
    wds *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->base = (tp_source){.ops = &wds_ops, .kind = "wds", .warn = o->warn,
                          .warn_ctx = o->warn_ctx};
    tp_source_sample_init(&w->cur);
    char *abs = strpbrk(where, "*?[{") ? NULL : realpath(where, NULL);
    if (abs)
        where = abs;
    if (!(w->base.location = malloc(strlen(where) + 8))) {
        free(abs);
        free(w);
        return NULL;
    }
    sprintf(w->base.location, "wds:%s", where);
    free(abs);
    return w;
}

int tp__wds_open(const char *spec, const tp_source_options *o, tp_source **out,
                 tp_error *err)
{
    *out = NULL;
    wds *w = wds_new(o, spec);
    if (!w)
        return tp__error_set(err, -ENOMEM, "out of memory");
    int rc = tp__files_expand(&w->shards, spec, tp__tar_name, err);
    if (rc) {
        tp_source_close(&w->base);
        return rc;
    }
    return finish_open(w, o, out, err);
}

int tp__wds_open_memory(const void *data, size_t len, const tp_source_options *o,
                        tp_source **out, tp_error *err)
{
    *out = NULL;
    wds *w = wds_new(o, "<memory>");
    if (!w)
        return tp__error_set(err, -ENOMEM, "out of memory");
    w->mem = data;
    w->mem_len = len;
    return finish_open(w, o, out, err);
}
