/* The listing source: a CSV file with a header row (libcsv) or JSON Lines (jansson), one
 * sample per row. Columns by name:
 *
 * - the path column ("path", "file", "filename", "image", "image_path"): the image file,
 *   relative to the listing's directory unless absolute; the field is jpg, png or image
 *   as for an ImageFolder, read by the packer's workers;
 * - the label column ("label", "cls", "class", "target"): field cls, an int64 — the
 *   value itself when every label is an integer, else the index of the label among the
 *   sorted distinct labels, which become the dataset's classes;
 * - every other column: an int64 field when every value is an integer, a float64 tensor
 *   of shape (1) when every value is a number, else bytes (the text).
 *
 * Column names become field names lowercased, other characters than [a-z0-9_.-] as '_'.
 * An empty CSV cell or a missing JSON key is a missing value: the row is reported and left
 * out when its sample needs it. */
#include "source.h"

#include <csv.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define MAX_COLS 64
#define MAX_LISTING (1ull << 31)

enum { COL_INT, COL_FLOAT, COL_TEXT };

typedef struct cell {
    size_t off;       /* into the arena; SIZE_MAX when missing */
    size_t len;
} cell;

typedef struct listing {
    tp_source base;
    char *dir;                  /* paths are relative to this */
    const char *name;           /* the listing's file name, for messages */
    char *arena;                /* every cell's text, NUL-terminated */
    size_t arena_len, arena_cap;
    cell *cells;                /* rows x ncols */
    size_t nrows, rows_cap, ncols;
    size_t *line;               /* each row's line in the file */
    char *cols[MAX_COLS];
    int type[MAX_COLS];
    int path_col, label_col;
    int map[MAX_COLS];          /* dataset field of each column, or -1 */
    bool label_names;           /* labels are class names */
    size_t next, end;
    /* parsing state */
    size_t row_fill;            /* cells of the current row so far */
    bool header_done;
    int failed;
} listing;

static int arena_put(listing *l, const void *s, size_t n, cell *c)
{
    if (n + 1 > l->arena_cap - l->arena_len) {
        size_t cap = TP_MAX(l->arena_cap * 2, l->arena_len + n + 4096);
        char *a = realloc(l->arena, cap);
        if (!a)
            return -ENOMEM;
        l->arena = a;
        l->arena_cap = cap;
    }
    memcpy(l->arena + l->arena_len, s, n);
    l->arena[l->arena_len + n] = '\0';
    *c = (cell){.off = l->arena_len, .len = n};
    l->arena_len += n + 1;
    return 0;
}

static const char *text_of(const listing *l, const cell *c) { return l->arena + c->off; }

static int new_row(listing *l, size_t line)
{
    if (l->nrows == l->rows_cap) {
        size_t cap = l->rows_cap ? 2 * l->rows_cap : 256;
        cell *c = realloc(l->cells, cap * MAX_COLS * sizeof(cell));
        size_t *ln = c ? realloc(l->line, cap * sizeof(size_t)) : NULL;
        if (c)
            l->cells = c;
        if (!ln)
            return -ENOMEM;
        l->line = ln;
        l->rows_cap = cap;
    }
    for (size_t i = 0; i < MAX_COLS; i++)
        l->cells[l->nrows * MAX_COLS + i] = (cell){.off = SIZE_MAX};
    l->line[l->nrows++] = line;
    return 0;
}

/* A column name as a field name (tp__field_name). */
static char *field_name(const char *name, size_t n)
{
    char *c = strndup(name, n);
    if (c)
        tp__field_name(c);
    return c;
}

/* Adds a column named `name` as it is (JSON keys, renamed once all rows are read) or as
 * a field name (CSV headers). */
static int add_col(listing *l, const char *name, size_t n, bool as_field)
{
    if (l->ncols == MAX_COLS)
        return TP_ETOOBIG;
    char *c = as_field ? field_name(name, n) : strndup(name, n);
    if (!c)
        return -ENOMEM;
    l->cols[l->ncols++] = c;
    return 0;
}

/* ---- CSV */

static void csv_cell(void *s, size_t n, void *ctx)
{
    listing *l = ctx;
    if (l->failed)
        return;
    if (!l->header_done) {
        l->failed = add_col(l, s, n, true);
        return;
    }
    if (l->row_fill == 0 && (l->failed = new_row(l, l->nrows + 2)))
        return;
    if (l->row_fill < l->ncols && n > 0)
        l->failed = arena_put(l, s, n, &l->cells[(l->nrows - 1) * MAX_COLS + l->row_fill]);
    l->row_fill++;
}

static void csv_row(int c, void *ctx)
{
    (void)c;
    listing *l = ctx;
    l->header_done = true;
    l->row_fill = 0;
}

static int parse_csv(listing *l, const char *data, size_t len, tp_error *err)
{
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0)
        return tp__error_set(err, -ENOMEM, "out of memory");
    size_t done = csv_parse(&p, data, len, csv_cell, csv_row, l);
    int rc = 0;
    if (done != len || csv_fini(&p, csv_cell, csv_row, l) != 0)
        rc = tp__error_set(err, TP_EUSAGE, "%s: %s", l->name, csv_strerror(csv_error(&p)));
    csv_free(&p);
    if (rc == 0 && l->failed)
        rc = tp__error_set(err, l->failed, "%s: %s", l->name,
                           l->failed == TP_ETOOBIG ? "more than 64 columns"
                                                   : tp_strerror(l->failed));
    return rc;
}

/* ---- JSON Lines */

static int json_cell(listing *l, const char *key, json_t *v, cell *out)
{
    int k = -1;
    for (size_t i = 0; i < l->ncols; i++)
        if (!strcmp(l->cols[i], key))
            k = (int)i;
    if (k < 0) {
        TP_TRY(add_col(l, key, strlen(key), false));
        k = (int)l->ncols - 1;
    }
    char num[64];
    const char *s = NULL;
    size_t n = 0;
    if (json_is_string(v)) {
        s = json_string_value(v);
        n = json_string_length(v);
    } else if (json_is_integer(v)) {
        n = (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = num;
    } else if (json_is_real(v)) {
        n = (size_t)snprintf(num, sizeof(num), "%.17g", json_real_value(v));
        s = num;
    } else if (json_is_boolean(v)) {
        s = json_is_true(v) ? "1" : "0";
        n = 1;
    } else if (!json_is_null(v)) {
        char *dump = json_dumps(v, JSON_COMPACT); /* nested values stay JSON text */
        int rc = dump ? arena_put(l, dump, strlen(dump), &out[k]) : -ENOMEM;
        free(dump);
        return rc;
    }
    return s && n ? arena_put(l, s, n, &out[k]) : 0;
}

static int parse_jsonl(listing *l, const char *data, size_t len, tp_error *err)
{
    size_t line = 0;
    for (const char *p = data, *end = data + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        line++;
        size_t n = (size_t)(stop - p);
        size_t sp = 0; /* the buffer need not end in a NUL: no str* functions here */
        while (sp < n && (p[sp] == ' ' || p[sp] == '\t' || p[sp] == '\r'))
            sp++;
        bool blank = sp == n;
        if (!blank) {
            json_error_t je;
            json_t *o = json_loadb(p, n, JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK, &je);
            int rc = 0;
            if (!json_is_object(o))
                rc = tp__error_set(err, TP_EUSAGE, "%s:%zu: %s", l->name, line,
                                   o ? "not a JSON object" : je.text);
            if (rc == 0 && (rc = new_row(l, line)) < 0)
                tp__error_set(err, rc, "out of memory");
            const char *key;
            json_t *v;
            cell *row = rc ? NULL : &l->cells[(l->nrows - 1) * MAX_COLS];
            json_object_foreach(rc ? NULL : o, key, v) {
                if ((rc = json_cell(l, key, v, row)) < 0) {
                    tp__error_set(err, rc, "%s:%zu: %s", l->name, line,
                                  rc == TP_ETOOBIG ? "more than 64 keys" : tp_strerror(rc));
                    break;
                }
            }
            json_decref(o);
            TP_TRY(rc);
        }
        p = stop + 1;
    }
    for (size_t i = 0; i < l->ncols; i++) { /* keys to field names, now that rows are read */
        char *name = field_name(l->cols[i], strlen(l->cols[i]));
        if (!name)
            return tp__error_set(err, -ENOMEM, "out of memory");
        free(l->cols[i]);
        l->cols[i] = name;
    }
    return 0;
}

/* ---- columns */

static bool int_text(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || *s == '+' || *s == ' ')
        return false;
    *out = v;
    return true;
}

static bool float_text(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || *s == ' ' || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static int find_col(const listing *l, const char *const *names, size_t n)
{
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i < l->ncols; i++)
            if (!strcmp(l->cols[i], names[k]))
                return (int)i;
    return -1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Class names: the sorted distinct labels. */
static int label_classes(listing *l)
{
    char **names = malloc((l->nrows + 1) * sizeof(char *));
    if (!names)
        return -ENOMEM;
    size_t n = 0;
    for (size_t r = 0; r < l->nrows; r++) {
        const cell *c = &l->cells[r * MAX_COLS + l->label_col];
        if (c->off != SIZE_MAX)
            names[n++] = l->arena + c->off;
    }
    if (n)
        qsort(names, n, sizeof(char *), cmp_str);
    l->base.classes = calloc(n + 1, sizeof(char *));
    int rc = l->base.classes ? 0 : -ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (!l->base.nclasses || strcmp(l->base.classes[l->base.nclasses - 1], names[i]))
            rc = (l->base.classes[l->base.nclasses] = strdup(names[i])) ? (l->base.nclasses++, 0)
                                                                        : -ENOMEM;
    free(names);
    return rc;
}

static int64_t class_index(const listing *l, const char *name)
{
    size_t lo = 0, hi = l->base.nclasses;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(l->base.classes[mid], name);
        if (c == 0)
            return (int64_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Types, roles and names of the columns, then the --fields selection. */
static int setup_fields(listing *l, const tp_source_options *o, tp_error *err)
{
    static const char *const paths[] = {"path", "file", "filename", "image", "image_path"};
    static const char *const labels[] = {"label", "cls", "class", "target"};
    l->path_col = find_col(l, paths, TP_ARRAY_LEN(paths));
    l->label_col = find_col(l, labels, TP_ARRAY_LEN(labels));
    if (l->path_col < 0)
        return tp__error_set(err, TP_EUSAGE, "%s: no path column (one named path, file, "
                             "filename, image or image_path)", l->name);
    bool jpeg = false, png = false;
    for (size_t i = 0; i < l->ncols; i++) {
        bool ints = true, floats = true;
        for (size_t r = 0; r < l->nrows; r++) {
            const cell *c = &l->cells[r * MAX_COLS + i];
            if (c->off == SIZE_MAX)
                continue;
            int64_t iv;
            double fv;
            const char *t = text_of(l, c);
            ints &= int_text(t, &iv);
            floats &= float_text(t, &fv);
            if ((int)i == l->path_col) {
                const char *dot = strrchr(t, '.');
                bool p = dot && !strcasecmp(dot, ".png");
                png |= p;
                jpeg |= !p;
            }
        }
        l->type[i] = ints ? COL_INT : floats ? COL_FLOAT : COL_TEXT;
    }
    l->label_names = l->label_col >= 0 && l->type[l->label_col] != COL_INT;
    if (l->label_names)
        TP_TRY(label_classes(l) < 0 ? tp__error_set(err, -ENOMEM, "out of memory") : 0);
    char *names[MAX_COLS];
    tp_field_kind kinds[MAX_COLS];
    for (size_t i = 0; i < l->ncols; i++) {
        names[i] = l->cols[i];
        kinds[i] = l->type[i] == COL_INT ? TP_FIELD_INT64
                   : l->type[i] == COL_FLOAT ? TP_FIELD_TENSOR : TP_FIELD_BYTES;
        if ((int)i == l->path_col) {
            names[i] = png && !jpeg ? "png" : png ? "image" : "jpg";
            kinds[i] = TP_FIELD_IMAGE;
        } else if ((int)i == l->label_col) {
            names[i] = "cls";
            kinds[i] = TP_FIELD_INT64;
        }
    }
    TP_TRY(tp__source_select(&l->base, o, names, kinds, l->ncols, l->map, err));
    for (size_t f = 0; f < l->base.nfields; f++)
        if (l->base.fields[f].kind == TP_FIELD_TENSOR) { /* a number: float64, shape (1) */
            l->base.fields[f].dtype = TP_DTYPE_FLOAT64;
            l->base.fields[f].ndim = 1;
            l->base.fields[f].shape[0] = 1;
        }
    return 0;
}

/* ---- samples */

static int listing_next(tp_source *base, tp_source_sample *out, tp_error *err)
{
    listing *l = (listing *)base;
    while (l->next < l->end) {
        size_t r = l->next++;
        const cell *row = &l->cells[r * MAX_COLS];
        tp_source_sample_clear(out);
        char where[512];
        snprintf(where, sizeof(where), "%s:%zu", l->name, l->line[r]);
        const char *missing = NULL;
        for (size_t i = 0; i < l->ncols && !missing; i++)
            if (l->map[i] >= 0 && row[i].off == SIZE_MAX)
                missing = l->cols[i];
        if (missing) {
            tp__source_warn(base, where, "no value for '%s'; row left out", missing);
            continue;
        }
        const char *path = text_of(l, &row[l->path_col]);
        out->key = path[0] == '/' ? strdup(path) : tp__path_join(l->dir, path);
        size_t wl = strlen(where) + strlen(path) + 4;
        if ((out->where = malloc(wl)))
            snprintf(out->where, wl, "%s: %s", where, path);
        if (!out->key || !out->where)
            return tp__error_set(err, -ENOMEM, "out of memory");
        for (size_t i = 0; i < l->ncols; i++) {
            int f = l->map[i];
            if (f < 0)
                continue;
            const char *t = text_of(l, &row[i]);
            tp_source_value *v = &out->v[f];
            int64_t iv = 0;
            double d;
            unsigned char b[8];
            if ((int)i == l->path_col) {
                *v = (tp_source_value){.present = true, .path = out->key};
            } else if ((int)i == l->label_col && l->label_names) {
                *v = (tp_source_value){.present = true, .is_int = true,
                                       .i64 = class_index(l, t)};
            } else if (l->type[i] == COL_INT && int_text(t, &iv)) {
                *v = (tp_source_value){.present = true, .is_int = true, .i64 = iv};
            } else if (l->type[i] == COL_FLOAT && float_text(t, &d)) {
                uint64_t bits;
                memcpy(&bits, &d, 8);
                tp__put64(b, bits);
                if (tp__source_sample_put(out, (uint32_t)f, b, 8, false) < 0)
                    return tp__error_set(err, -ENOMEM, "out of memory");
                out->v[f].raw = true;
            } else if (tp__source_sample_put(out, (uint32_t)f, t, row[i].len, false) < 0) {
                return tp__error_set(err, -ENOMEM, "out of memory");
            }
        }
        tp__source_sample_seal(out);
        return 1;
    }
    return 0;
}

static void listing_close(tp_source *base)
{
    listing *l = (listing *)base;
    for (size_t i = 0; i < l->ncols; i++)
        free(l->cols[i]);
    free(l->arena);
    free(l->cells);
    free(l->line);
    free(l->dir);
    free(l);
}

static const tp_source_ops listing_ops = {.next = listing_next, .close = listing_close};

int tp__listing_open_memory(const char *data, size_t len, bool jsonl, const char *name,
                            const char *dir, const tp_source_options *o, tp_source **out,
                            tp_error *err)
{
    *out = NULL;
    listing *l = calloc(1, sizeof(*l));
    if (!l)
        return tp__error_set(err, -ENOMEM, "out of memory");
    l->base = (tp_source){.ops = &listing_ops, .kind = "listing", .warn = o->warn,
                          .warn_ctx = o->warn_ctx};
    l->dir = strdup(dir);
    l->base.location = malloc(strlen(name) + 16);
    int rc = l->dir && l->base.location ? 0 : tp__error_set(err, -ENOMEM, "out of memory");
    if (rc == 0) {
        sprintf(l->base.location, "listing:%s", name);
        l->name = l->base.location + strlen("listing:");
        rc = jsonl ? parse_jsonl(l, data, len, err) : parse_csv(l, data, len, err);
    }
    if (rc == 0 && l->nrows == 0)
        rc = tp__error_set(err, TP_EUSAGE, "%s: no rows", name);
    if (rc == 0)
        rc = setup_fields(l, o, err);
    if (rc) {
        tp_source_close(&l->base);
        return rc;
    }
    uint64_t lo, hi;
    tp__source_part(o, l->nrows, &lo, &hi);
    l->next = (size_t)lo;
    l->end = (size_t)hi;
    l->base.count = hi - lo;
    l->base.listing_hash = tp__hash64(data, len);
    *out = &l->base;
    return 0;
}

int tp__listing_open(const char *path, const tp_source_options *o, tp_source **out,
                     tp_error *err)
{
    char *data, *abs = realpath(path, NULL);
    size_t len;
    int rc = abs ? tp__read_file(abs, MAX_LISTING, &data, &len) : -errno;
    if (rc < 0) {
        free(abs);
        return tp__error_set(err, rc, "%s: %s", path, tp_strerror(rc));
    }
    char *slash = strrchr(abs, '/');
    const char *ext = strrchr(path, '.');
    bool jsonl = ext && (!strcmp(ext, ".jsonl") || !strcmp(ext, ".ndjson"));
    char *dir = strndup(abs, slash && slash != abs ? (size_t)(slash - abs) : 1);
    rc = dir ? tp__listing_open_memory(data, len, jsonl, abs, dir, o, out, err)
             : tp__error_set(err, -ENOMEM, "out of memory");
    free(dir);
    free(data);
    free(abs);
    return rc;
}
