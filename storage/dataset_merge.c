/* Merging datasets (tp_dataset_merge): every part is opened and checked as a reader
 * would, then a writer adopts their shard files one by one as hard links, recording in
 * each manifest entry the origin its header was written with, and publishes. Nothing of
 * a part is modified, and nothing appears at the destination unless all of it does. */
#include "storage.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct part {
    const char *path;
    tp_dataset *ds;
    const tp__manifest *m;
    bool numbered;                /* written by pack --part */
    uint64_t index, count;
    size_t prefix;                /* length of its source before " part I/N" */
} part;

/* Recognises the source of a `pack --part I/N` dataset: "<input> part I/N". */
static void part_number(part *p)
{
    const char *src = p->m->source, *at = NULL;
    for (const char *s = strstr(src, " part "); s; s = strstr(s + 1, " part "))
        at = s;
    unsigned long long i, n;
    int used = 0;
    if (at && sscanf(at, " part %llu/%llu%n", &i, &n, &used) == 2 && !at[used] && i < n) {
        p->numbered = true;
        p->index = i;
        p->count = n;
        p->prefix = (size_t)(at - src);
    }
}

static bool same_fields(const tp__manifest *a, const tp__manifest *b)
{
    if (a->nfields != b->nfields)
        return false;
    for (size_t i = 0; i < a->nfields; i++) {
        const tp_field_info *x = &a->fields[i], *y = &b->fields[i];
        if (strcmp(x->name, y->name) || x->kind != y->kind || x->dtype != y->dtype ||
            x->ndim != y->ndim || x->zstd_level != y->zstd_level ||
            memcmp(x->shape, y->shape, x->ndim * sizeof(int64_t)))
            return false;
    }
    return true;
}

static bool same_classes(const tp__manifest *a, const tp__manifest *b)
{
    if (a->nclasses != b->nclasses)
        return false;
    for (size_t i = 0; i < a->nclasses; i++)
        if (strcmp(a->classes[i], b->classes[i]))
            return false;
    return true;
}

static int check_compatible(const part *p, size_t n, tp_error *err)
{
    const tp__manifest *a = p[0].m;
    size_t alen, blen;
    const void *adict = tp_dataset_zstd_dict(p[0].ds, &alen);
    for (size_t k = 1; k < n; k++) {
        const tp__manifest *b = p[k].m;
        const void *bdict = tp_dataset_zstd_dict(p[k].ds, &blen);
        const char *why = a->format != b->format ? "shard format"
                          : a->align != b->align ? "record alignment"
                          : !same_fields(a, b) ? "fields"
                          : !same_classes(a, b) ? "classes"
                          : (!adict != !bdict || (adict && (alen != blen ||
                                                           memcmp(adict, bdict, alen))))
                              ? "zstd dictionary"
                              : NULL;
        if (why)
            return tp__error_set(err, TP_EUSAGE, "%s and %s differ in their %s", p[0].path,
                                 p[k].path, why);
        if (p[k].numbered != p[0].numbered)
            return tp__error_set(err, TP_EUSAGE, "%s is a part of a pack --part and %s is "
                                 "not", p[0].numbered ? p[0].path : p[k].path,
                                 p[0].numbered ? p[k].path : p[0].path);
    }
    return 0;
}

static int by_index(const void *x, const void *y)
{
    const part *a = x, *b = y;
    return (a->index > b->index) - (a->index < b->index);
}

/* Parts of one --part run: one input, all N of them, each once; sorted into part order. */
static int check_numbering(part *p, size_t n, tp_error *err)
{
    for (size_t k = 0; k < n; k++)
        if (p[k].count != p[0].count || p[k].prefix != p[0].prefix ||
            strncmp(p[k].m->source, p[0].m->source, p[0].prefix))
            return tp__error_set(err, TP_EUSAGE, "%s and %s are parts of different inputs "
                                 "or part counts", p[0].path, p[k].path);
    qsort(p, n, sizeof(part), by_index);
    for (size_t k = 0; k < n; k++)
        if (k && p[k].index == p[k - 1].index)
            return tp__error_set(err, TP_EUSAGE, "%s and %s are both part %llu", p[k - 1].path,
                                 p[k].path, (unsigned long long)p[k].index);
    if (n != p[0].count) {
        uint64_t missing = 0;
        while (missing < n && p[missing].index == missing)
            missing++;
        return tp__error_set(err, TP_EUSAGE, "%zu of %llu parts given: part %llu is missing",
                             n, (unsigned long long)p[0].count, (unsigned long long)missing);
    }
    return 0;
}

static int adopt_all(tp_dataset_writer *w, const part *p, size_t n, tp_error *err)
{
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i < p[k].m->nshards; i++) {
            const tp__manifest_shard *sh = &p[k].m->shards[i];
            char *path = tp__path_join(p[k].path, sh->file);
            int rc = path ? tp__writer_adopt_shard(w, path, sh, p[k].m->id, i, err)
                          : tp__error_set(err, -ENOMEM, "out of memory");
            free(path);
            TP_TRY(rc);
        }
    return 0;
}

static int merge(part *p, size_t n, const char *path, bool replace, tp_error *err)
{
    TP_TRY(check_compatible(p, n, err));
    if (p[0].numbered)
        TP_TRY(check_numbering(p, n, err));
    /* The id derives from the parts' ids, in order: the same parts give the same id. */
    uint64_t h[2] = {tp__hash64("merge", 5), (uint64_t)n};
    unsigned char ids[sizeof(h) + TP_DATASET_ID_BYTES];
    for (size_t k = 0; k < n; k++) {
        memcpy(ids, h, sizeof(h));
        memcpy(ids + sizeof(h), p[k].m->id, TP_DATASET_ID_BYTES);
        h[0] = tp__hash64(ids, sizeof(h) + TP_DATASET_ID_BYTES);
        h[1] ^= tp__hash64(p[k].m->id, TP_DATASET_ID_BYTES) + k;
    }
    unsigned char id[TP_DATASET_ID_BYTES];
    tp__put64(id, h[0]);
    tp__put64(id + 8, h[1]);
    char source[1024];
    if (p[0].numbered)
        snprintf(source, sizeof(source), "%.*s", (int)TP_MIN(p[0].prefix, sizeof(source) - 1),
                 p[0].m->source);
    else
        snprintf(source, sizeof(source), "merge of %zu datasets", n);
    const tp__manifest *m = p[0].m;
    size_t dict_len;
    const void *dict = tp_dataset_zstd_dict(p[0].ds, &dict_len);
    tp_dataset_writer_options o = {
        .format = m->format, .align = m->align, .fields = m->fields, .nfields = m->nfields,
        .classes = (const char *const *)m->classes, .nclasses = m->nclasses, .id = id,
        .source = source, .replace = replace, .zstd_dict = dict,
        .zstd_dict_len = dict ? dict_len : 0};
    tp_dataset_writer *w;
    TP_TRY(tp_dataset_writer_create(&w, path, &o, err));
    int rc = adopt_all(w, p, n, err);
    if (rc == 0)
        rc = tp_dataset_writer_finish(w, err);
    tp_dataset_writer_destroy(w);
    return rc;
}

TP_API int tp_dataset_merge(const char *const *parts, size_t n, const char *path, bool replace,
                            tp_error *err)
{
    if (n == 0)
        return tp__error_set(err, TP_EUSAGE, "no datasets to merge");
    part *p = calloc(n, sizeof(part));
    if (!p)
        return tp__error_set(err, -ENOMEM, "out of memory");
    int rc = 0;
    for (size_t k = 0; k < n && rc == 0; k++) {
        p[k].path = parts[k];
        if ((rc = tp_dataset_open(&p[k].ds, parts[k], err)) == 0) {
            p[k].m = tp__dataset_manifest(p[k].ds);
            part_number(&p[k]);
        }
    }
    if (rc == 0)
        rc = merge(p, n, path, replace, err);
    for (size_t k = 0; k < n; k++)
        tp_dataset_close(p[k].ds);
    free(p);
    return rc;
}
