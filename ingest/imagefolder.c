/* The ImageFolder source. Classes are the sorted names of the root's subdirectories
 * (symlinks followed, as torchvision does); each class's files are found recursively and
 * ordered like torchvision's ImageFolder: by directory, then by file name, byte order.
 * Anything unusable found on the way (non-UTF-8 names, symlink loops, unreadable or empty
 * files, names other than .jpg/.jpeg/.png) gets one warning and is left out. The image
 * field is "jpg" when the tree holds JPEGs only, "png" for PNGs only and "image" for
 * both; the service decodes each value by its content. The packer's workers read the
 * files, in parallel. */
#include "source.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>

typedef struct tp_scan_item {
    char *path;      /* full path of the file */
    uint32_t label;  /* index into classes */
} tp_scan_item;

typedef struct tp_scan {
    char **classes;
    size_t nclasses;
    tp_scan_item *items;
    size_t nitems;
    bool jpeg, png;  /* which kinds of names the tree holds */
    tp_source *src;  /* for warnings */
    uint64_t listing_hash; /* hash of class, relative path and size of each file, in order */
} tp_scan;

typedef struct found {
    char *reldir;
    char *name;
    char *path;
    uint64_t size;
} found;

typedef struct walker {
    tp_scan *scan;
    found *files;
    size_t nfiles, cap;
    dev_t devs[64];
    ino_t inos[64];
    int depth;
} walker;

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF —
 * what the JSON manifest will accept. */
static bool utf8_ok(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s++, n, lo = 0x80, hi = 0xBF;
        if (c < 0x80)
            continue;
        if (c >= 0xC2 && c <= 0xDF)
            n = 1;
        else if (c >= 0xE0 && c <= 0xEF)
            n = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        else if (c >= 0xF0 && c <= 0xF4)
            n = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        else
            return false;
        if (*s < lo || *s > hi)
            return false;
        for (unsigned i = 0; i < n; i++, s++)
            if ((*s & 0xC0) != 0x80)
                return false;
    }
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads a directory's entry names, sorted, without "." and "..". */
static int list_dir(const char *path, char ***out, size_t *n)
{
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    char **names = NULL;
    size_t cap = 0, count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(names, cap * sizeof(char *));
            if (!grown)
                break;
            names = grown;
        }
        if (!(names[count] = strdup(e->d_name)))
            break;
        count++;
    }
    int rc = e ? -ENOMEM : 0;
    closedir(d);
    if (count)
        qsort(names, count, sizeof(char *), cmp_str);
    *out = names;
    *n = count;
    return rc;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static int warn(walker *w, const char *path, const char *why)
{
    return tp__source_warn(w->scan->src, path, "%s", why);
}

/* 1 for a JPEG name, 2 for a PNG name, 0 for anything else. */
static int image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg")))
        return 1;
    return dot && !strcasecmp(dot, ".png") ? 2 : 0;
}

static int add_file(walker *w, const char *reldir, const char *name, const char *path,
                    uint64_t size)
{
    if (w->nfiles == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 256;
        found *grown = realloc(w->files, w->cap * sizeof(found));
        if (!grown)
            return -ENOMEM;
        w->files = grown;
    }
    found *f = &w->files[w->nfiles];
    f->reldir = strdup(reldir);
    f->name = strdup(name);
    f->path = strdup(path);
    f->size = size;
    w->nfiles++;
    return f->reldir && f->name && f->path ? 0 : -ENOMEM;
}

static int walk(walker *w, const char *dir, const char *reldir);

static int visit(walker *w, const char *dir, const char *reldir, const char *name)
{
    char *path = tp__path_join(dir, name);
    if (!path)
        return -ENOMEM;
    struct stat st;
    int rc = 0;
    if (!utf8_ok((const unsigned char *)name))
        rc = warn(w, path, "file name is not valid UTF-8");
    else if (stat(path, &st) < 0)
        rc = warn(w, path, errno == ELOOP ? "symlink loop" : strerror(errno));
    else if (S_ISDIR(st.st_mode)) {
        char *sub = reldir[0] ? tp__path_join(reldir, name) : strdup(name);
        rc = sub ? walk(w, path, sub) : -ENOMEM;
        free(sub);
    } else if (!S_ISREG(st.st_mode))
        rc = warn(w, path, "not a regular file");
    else if (!image_name(name))
        rc = warn(w, path, "not a .jpg/.jpeg/.png file");
    else if (st.st_size == 0)
        rc = warn(w, path, "empty file");
    else if ((rc = add_file(w, reldir, name, path, (uint64_t)st.st_size)) == 0)
        *(image_name(name) == 1 ? &w->scan->jpeg : &w->scan->png) = true;
    free(path);
    return rc;
}

static int walk(walker *w, const char *dir, const char *reldir)
{
    struct stat st;
    if (stat(dir, &st) < 0)
        return warn(w, dir, strerror(errno));
    for (int i = 0; i < w->depth; i++)
        if (w->devs[i] == st.st_dev && w->inos[i] == st.st_ino)
            return warn(w, dir, "symlink loop (directory is its own ancestor)");
    if (w->depth == (int)TP_ARRAY_LEN(w->devs))
        return warn(w, dir, "directories nested too deeply");
    char **names;
    size_t n;
    int rc = list_dir(dir, &names, &n);
    if (rc < 0)
        return rc == -ENOMEM ? rc : warn(w, dir, strerror(-rc));
    w->devs[w->depth] = st.st_dev;
    w->inos[w->depth++] = st.st_ino;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = visit(w, dir, reldir, names[i]);
    w->depth--;
    free_names(names, n);
    return rc;
}

static int cmp_found(const void *a, const void *b)
{
    const found *x = a, *y = b;
    int c = strcmp(x->reldir, y->reldir);
    return c ? c : strcmp(x->name, y->name);
}

/* Moves one class's files, sorted, into the scan's item list. */
static int take_files(walker *w, uint32_t label)
{
    tp_scan *s = w->scan;
    if (w->nfiles)
        qsort(w->files, w->nfiles, sizeof(found), cmp_found);
    tp_scan_item *grown = realloc(s->items, (s->nitems + w->nfiles + 1) * sizeof(*grown));
    if (!grown)
        return -ENOMEM;
    s->items = grown;
    for (size_t i = 0; i < w->nfiles; i++) {
        found *f = &w->files[i];
        /* Relative names only, so the id does not depend on how the root was spelled. */
        char line[64];
        snprintf(line, sizeof(line), "\n%u %llu ", label, (unsigned long long)f->size);
        uint64_t parts[4] = {s->listing_hash, tp__hash64(line, strlen(line)),
                             tp__hash64(f->reldir, strlen(f->reldir)),
                             tp__hash64(f->name, strlen(f->name))};
        s->listing_hash = tp__hash64(parts, sizeof(parts));
        s->items[s->nitems++] = (tp_scan_item){.path = f->path, .label = label};
        free(f->reldir);
        free(f->name);
    }
    w->nfiles = 0;
    return 0;
}

static int scan_classes(const char *root, tp_scan *s, walker *w)
{
    char **names;
    size_t n;
    int rc = list_dir(root, &names, &n);
    TP_TRY(rc);
    s->classes = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n && s->classes && rc == 0; i++) {
        char *path = tp__path_join(root, names[i]);
        struct stat st;
        if (!path)
            rc = -ENOMEM;
        else if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
            ; /* files beside the class directories are not inputs */
        else if (!utf8_ok((const unsigned char *)names[i]))
            rc = warn(w, path, "class directory name is not valid UTF-8");
        else {
            s->classes[s->nclasses++] = names[i];
            names[i] = NULL;
        }
        free(path);
    }
    free_names(names, n);
    return s->classes ? rc : -ENOMEM;
}

static int scan_imagefolder(const char *root, tp_scan *s)
{
    walker w = {.scan = s};
    int rc = scan_classes(root, s, &w);
    for (size_t c = 0; c < s->nclasses && rc == 0; c++) {
        char *dir = tp__path_join(root, s->classes[c]);
        size_t before = s->nitems;
        rc = dir ? walk(&w, dir, "") : -ENOMEM;
        if (rc == 0)
            rc = take_files(&w, (uint32_t)c);
        if (rc == 0 && s->nitems == before)
            rc = warn(&w, dir, "class directory has no usable .jpg/.jpeg/.png files");
        free(dir);
    }
    for (size_t i = 0; i < w.nfiles; i++) {
        free(w.files[i].reldir);
        free(w.files[i].name);
        free(w.files[i].path);
    }
    free(w.files);
    return rc;
}

static void scan_free(tp_scan *s)
{
    for (size_t i = 0; i < s->nclasses; i++)
        free(s->classes[i]);
    for (size_t i = 0; i < s->nitems; i++)
        free(s->items[i].path);
    free(s->classes);
    free(s->items);
    memset(s, 0, sizeof(*s));
}

typedef struct imagefolder {
    tp_source base;
    tp_scan scan;
    size_t next, end, root_len;
    int map[2];
} imagefolder;

static int folder_next(tp_source *base, tp_source_sample *out, tp_error *err)
{
    (void)err;
    imagefolder *f = (imagefolder *)base;
    if (f->next >= f->end)
        return 0;
    const tp_scan_item *it = &f->scan.items[f->next++];
    tp_source_sample_clear(out);
    out->key = strdup(it->path + f->root_len);
    out->where = strdup(it->path);
    if (!out->key || !out->where)
        return -ENOMEM;
    if (f->map[0] >= 0)
        out->v[f->map[0]] = (tp_source_value){.present = true, .path = out->where};
    if (f->map[1] >= 0)
        out->v[f->map[1]] = (tp_source_value){.present = true, .is_int = true,
                                              .i64 = it->label};
    return 1;
}

static void folder_close(tp_source *base)
{
    imagefolder *f = (imagefolder *)base;
    scan_free(&f->scan);
    free(f);
}

static const tp_source_ops folder_ops = {.next = folder_next, .close = folder_close};

int tp__imagefolder_open(const char *root, const tp_source_options *o, tp_source **out,
                         tp_error *err)
{
    struct stat st;
    if (stat(root, &st) < 0)
        return tp__error_set(err, -errno, "%s: %s", root, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return tp__error_set(err, TP_EUSAGE, "%s: not a directory", root);
    imagefolder *f = calloc(1, sizeof(*f));
    if (!f)
        return tp__error_set(err, -ENOMEM, "out of memory");
    f->base = (tp_source){.ops = &folder_ops, .kind = "imagefolder", .warn = o->warn,
                          .warn_ctx = o->warn_ctx};
    f->scan.src = &f->base;
    f->root_len = strlen(root) + (root[strlen(root) - 1] == '/' ? 0 : 1);
    char *abs = realpath(root, NULL);
    f->base.location = malloc(strlen(abs ? abs : root) + 16);
    if (f->base.location)
        sprintf(f->base.location, "imagefolder:%s", abs ? abs : root);
    free(abs);
    int rc = f->base.location ? scan_imagefolder(root, &f->scan) : -ENOMEM;
    if (rc < 0)
        tp__error_set(err, rc, "scanning %s: %s", root, tp_strerror(rc));
    f->base.classes = f->scan.classes;
    f->base.nclasses = f->scan.nclasses;
    f->scan.classes = NULL;
    f->scan.nclasses = 0;
    uint64_t lo, hi;
    tp__source_part(o, f->scan.nitems, &lo, &hi);
    f->next = (size_t)lo;
    f->end = (size_t)hi;
    f->base.count = hi - lo;
    f->base.listing_hash = f->scan.listing_hash;
    char *names[2] = {f->scan.png && !f->scan.jpeg ? "png" : f->scan.png ? "image" : "jpg",
                      "cls"};
    const tp_field_kind kinds[2] = {TP_FIELD_IMAGE, TP_FIELD_INT64};
    if (rc == 0)
        rc = tp__source_select(&f->base, o, names, kinds, 2, f->map, err);
    if (rc != 0) {
        tp_source_close(&f->base);
        return rc > 0 ? TP_SOURCE_STOPPED : rc;
    }
    *out = &f->base;
    return 0;
}
