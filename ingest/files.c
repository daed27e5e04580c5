/* The files of a source given as a path, a directory, a glob or a brace list, as
 * WebDataset names its shards: "{a,b,c}" or a zero-padded numeric range "{000..127}". */
#include "source.h"

#include <dirent.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#define MAX_FILES (1u << 20)


static int add_file(tp_file_list *l, const char *path)
{
    if (l->n == MAX_FILES)
        return TP_ETOOBIG;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **p = realloc(l->paths, cap * sizeof(char *));
        if (!p)
            return -ENOMEM;
        l->paths = p;
        l->cap = cap;
    }
    return (l->paths[l->n] = strdup(path)) ? (l->n++, 0) : -ENOMEM;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

bool tp__tar_name(const char *name)
{
    static const char *const ends[] = {".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.xz",
                                       ".tar.bz2", ".tar.lz4"};
    size_t n = strlen(name);
    for (size_t i = 0; i < TP_ARRAY_LEN(ends); i++) {
        size_t k = strlen(ends[i]);
        if (n > k && !strcmp(name + n - k, ends[i]))
            return true;
    }
    return false;
}

/* A directory stands for the files in it that `want` accepts, by name in byte order. */
static int add_dir(tp_file_list *l, const char *dir, bool (*want)(const char *),
                   tp_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return tp__error_set(err, -errno, "%s: %s", dir, strerror(errno));
    size_t first = l->n;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL)
        if (want(e->d_name)) {
            char *p = tp__path_join(dir, e->d_name);
            rc = p ? add_file(l, p) : -ENOMEM;
            free(p);
        }
    closedir(d);
    if (rc < 0)
        return tp__error_set(err, rc, "listing %s: %s", dir, tp_strerror(rc));
    if (l->n == first)
        return tp__error_set(err, TP_EUSAGE, "%s: no input files in this directory", dir);
    qsort(l->paths + first, l->n - first, sizeof(char *), cmp_str);
    return 0;
}

static int add_pattern(tp_file_list *l, const char *pat, bool (*want)(const char *),
                       tp_error *err)
{
    struct stat st;
    if (!strpbrk(pat, "*?[")) {
        if (stat(pat, &st) < 0)
            return tp__error_set(err, -errno, "%s: %s", pat, strerror(errno));
        if (S_ISDIR(st.st_mode))
            return add_dir(l, pat, want, err);
        int rc = add_file(l, pat);
        return rc ? tp__error_set(err, rc, "%s", tp_strerror(rc)) : 0;
    }
    glob_t g;
    int rc = glob(pat, 0, NULL, &g);
    if (rc == GLOB_NOMATCH)
        return tp__error_set(err, -ENOENT, "%s: no file matches", pat);
    if (rc)
        return tp__error_set(err, rc == GLOB_NOSPACE ? -ENOMEM : -EIO, "%s: cannot list", pat);
    int r = 0;
    for (size_t i = 0; i < g.gl_pathc && r == 0; i++) /* glob sorts its matches */
        r = add_file(l, g.gl_pathv[i]);
    globfree(&g);
    return r ? tp__error_set(err, r, "%s", tp_strerror(r)) : 0;
}

/* Expands the first brace group of `spec` as WebDataset's shard names do — "{a,b,c}" or
 * a numeric range "{000..127}" (zero-padded like its bounds) — then the rest. */
static int expand(tp_file_list *l, const char *spec, int depth, bool (*want)(const char *),
                  tp_error *err)
{
    const char *open = strchr(spec, '{'), *close = open ? strchr(open, '}') : NULL;
    if (!open)
        return add_pattern(l, spec, want, err);
    if (!close || depth > 8)
        return tp__error_set(err, TP_EUSAGE, "'%s': unbalanced or too deeply nested braces",
                             spec);
    size_t head = (size_t)(open - spec), body = (size_t)(close - open - 1);
    char inner[256];
    if (body >= sizeof(inner))
        return tp__error_set(err, TP_EUSAGE, "'%s': brace group too long", spec);
    memcpy(inner, open + 1, body);
    inner[body] = '\0';
    size_t len = strlen(spec) + 32;
    char *out = malloc(len);
    if (!out)
        return tp__error_set(err, -ENOMEM, "out of memory");
    int rc = 0;
    char *dots = strstr(inner, "..");
    unsigned long long lo, hi;
    char tail[8];
    if (dots && sscanf(inner, "%llu..%llu%1s", &lo, &hi, tail) == 2) {
        int width = (int)(dots - inner);
        if (hi < lo || hi - lo >= MAX_FILES)
            rc = tp__error_set(err, TP_EUSAGE, "'%s': range {%s} is empty or too long", spec,
                               inner);
        for (unsigned long long k = lo; rc == 0 && k <= hi; k++) {
            snprintf(out, len, "%.*s%0*llu%s", (int)head, spec, width, k, close + 1);
            rc = expand(l, out, depth + 1, want, err);
        }
    } else {
        char *save = NULL;
        for (char *alt = strtok_r(inner, ",", &save); alt && rc == 0;
             alt = strtok_r(NULL, ",", &save)) {
            snprintf(out, len, "%.*s%s%s", (int)head, spec, alt, close + 1);
            rc = expand(l, out, depth + 1, want, err);
        }
    }
    free(out);
    return rc;
}

int tp__files_expand(tp_file_list *l, const char *spec, bool (*want)(const char *),
                     tp_error *err)
{
    return expand(l, spec, 0, want, err);
}

void tp__files_free(tp_file_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->paths[i]);
    free(l->paths);
    memset(l, 0, sizeof(*l));
}
