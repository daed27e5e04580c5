/* The token source over all its inputs: expands the specs into files (files.c), tells
 * each file's kind by its name (a .bin with an .idx beside it is Megatron's), sorts them
 * by path so the documents come in one order whatever the order of the specs, reads every
 * header up front (a bad header fails the run before anything is written), then hands the
 * files one after another to their readers. */
#include "tokens_source.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#define MAX_LOCATION 1024

enum { IN_JSONL, IN_NPY, IN_BIN, IN_MEGATRON };

static const char *const kind_names[] = {"jsonl", "npy", "bin", "megatron"};

typedef struct input {
    char *path;                 /* Megatron: the prefix */
    int kind;
    uint64_t bytes;
} input;

struct tp_token_source {
    tp_token_source_options o;
    tp_token_source_info info;
    input *in;
    size_t n, cap, at;
    tp__token_reader *r;
    char *location;
};

static bool ends_with(const char *s, const char *end)
{
    size_t n = strlen(s), k = strlen(end);
    return n >= k && !strcmp(s + n - k, end);
}

static bool token_name(const char *name)
{
    return ends_with(name, ".jsonl") || ends_with(name, ".ndjson") || ends_with(name, ".npy") ||
           ends_with(name, ".bin") || ends_with(name, ".idx");
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static uint64_t size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* `path` with its last `cut` characters replaced by `ext`. */
static char *with_ext(const char *path, size_t cut, const char *ext)
{
    size_t n = strlen(path) - cut;
    char *p = malloc(n + strlen(ext) + 1);
    if (p) {
        memcpy(p, path, n);
        strcpy(p + n, ext);
    }
    return p;
}

static int add_input(tp_token_source *s, char *path, int kind, tp_error *err)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        input *p = realloc(s->in, cap * sizeof(*p));
        if (!p) {
            free(path);
            return tp__error_set(err, -ENOMEM, "out of memory");
        }
        s->in = p;
        s->cap = cap;
    }
    s->in[s->n++] = (input){.path = path, .kind = kind};
    return 0;
}

/* Classifies one file by its name: X.idx is Megatron's (with X.bin), and so is X.bin
 * when X.idx is beside it; another .bin is a raw stream. */
static int add_file(tp_token_source *s, const char *path, tp_error *err)
{
    bool idx = ends_with(path, ".idx"), bin = ends_with(path, ".bin");
    if (idx || bin) {
        char *prefix = with_ext(path, 4, ""), *other = with_ext(path, 4, idx ? ".bin" : ".idx");
        bool pair = other && exists(other);
        free(other);
        if (!prefix)
            return tp__error_set(err, -ENOMEM, "out of memory");
        if (pair)
            return add_input(s, prefix, IN_MEGATRON, err);
        free(prefix);
        if (idx)
            return tp__error_set(err, TP_EUSAGE, "%s: a Megatron index without its .bin",
                                 path);
    }
    int kind = bin ? IN_BIN : ends_with(path, ".npy") ? IN_NPY
             : ends_with(path, ".jsonl") || ends_with(path, ".ndjson") ? IN_JSONL : -1;
    if (kind < 0)
        return tp__error_set(err, TP_EUSAGE, "%s: not a token input (.jsonl, .ndjson, .npy, "
                             ".bin, or a Megatron PREFIX.bin + PREFIX.idx)", path);
    char *p = strdup(path);
    return p ? add_input(s, p, kind, err) : tp__error_set(err, -ENOMEM, "out of memory");
}

static int add_spec(tp_token_source *s, const char *spec, tp_error *err)
{
    /* A Megatron prefix names no file of its own. */
    if (!strpbrk(spec, "*?[{") && !exists(spec)) {
        struct stat st;
        char *idx = with_ext(spec, 0, ".idx");
        bool megatron = idx && stat(spec, &st) < 0 && exists(idx);
        free(idx);
        if (megatron) {
            char *p = strdup(spec);
            return p ? add_input(s, p, IN_MEGATRON, err)
                     : tp__error_set(err, -ENOMEM, "out of memory");
        }
    }
    tp_file_list l = {0};
    int rc = tp__files_expand(&l, spec, token_name, err);
    for (size_t i = 0; rc == 0 && i < l.n; i++)
        rc = add_file(s, l.paths[i], err);
    tp__files_free(&l);
    return rc;
}

static int cmp_input(const void *a, const void *b)
{
    return strcmp(((const input *)a)->path, ((const input *)b)->path);
}

/* Sorts by path and drops repeats (a Megatron pair found by both its files). */
static void sort_inputs(tp_token_source *s)
{
    qsort(s->in, s->n, sizeof(*s->in), cmp_input);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        const input *prev = k ? &s->in[k - 1] : NULL;
        if (prev && !strcmp(prev->path, s->in[i].path) && prev->kind == s->in[i].kind)
            free(s->in[i].path);
        else
            s->in[k++] = s->in[i];
    }
    s->n = k;
}

static tp_dtype width_of(tp_dtype t)
{
    return tp_dtype_size(t) <= 2 ? TP_DTYPE_UINT16 : TP_DTYPE_UINT32;
}

/* Reads each input's header: its dtype, its size, and whether it can be read at all. */
static int probe(tp_token_source *s, input *in, tp_error *err)
{
    tp_dtype t = TP_DTYPE_NONE;
    int rc = 0;
    if (in->kind == IN_JSONL) {
        s->info.has_jsonl = true;
        in->bytes = size_of(in->path);
        return 0;
    }
    if (in->kind == IN_NPY) {
        rc = tp__token_npy_dtype(in->path, &t, err);
        in->bytes = size_of(in->path);
    } else if (in->kind == IN_BIN) {
        if (s->o.bin_dtype == TP_DTYPE_NONE)
            return tp__error_set(err, TP_EUSAGE, "%s: a raw token stream: its dtype must be "
                                 "given (--dtype uint16 or uint32)", in->path);
        t = s->o.bin_dtype;
        in->bytes = size_of(in->path);
    } else {
        rc = tp__token_megatron_dtype(in->path, &t, err);
        char *bin = with_ext(in->path, 0, ".bin");
        in->bytes = bin ? size_of(bin) : 0;
        free(bin);
    }
    if (rc == 0 && (s->info.binary_dtype == TP_DTYPE_NONE || width_of(t) == TP_DTYPE_UINT32))
        s->info.binary_dtype = width_of(t);
    return rc;
}

static int set_location(tp_token_source *s, const char *const *specs, size_t nspecs)
{
    if (!(s->location = malloc(MAX_LOCATION)))
        return -ENOMEM;
    size_t len = (size_t)snprintf(s->location, MAX_LOCATION, "tokens:");
    for (size_t i = 0; i < nspecs && len < MAX_LOCATION; i++)
        len += (size_t)snprintf(s->location + len, MAX_LOCATION - len, "%s%s", i ? " " : "",
                                specs[i]);
    s->info.location = s->location;
    return 0;
}

static void hash_inputs(tp_token_source *s)
{
    uint64_t h = 0;
    for (size_t i = 0; i < s->n; i++) {
        char line[64];
        int k = snprintf(line, sizeof(line), " %s %" PRIu64 "|", kind_names[s->in[i].kind],
                         s->in[i].bytes);
        uint64_t parts[3] = {h, tp__hash64(s->in[i].path, strlen(s->in[i].path)),
                             tp__hash64(line, (size_t)k)};
        h = tp__hash64(parts, sizeof(parts));
    }
    s->info.listing_hash = h;
}

int tp_token_source_open(const char *const *specs, size_t nspecs,
                         const tp_token_source_options *o, tp_token_source **out,
                         tp_error *err)
{
    tp_token_source *s = calloc(1, sizeof(*s));
    if (!s)
        return tp__error_set(err, -ENOMEM, "out of memory");
    s->o = *o;
    if (!s->o.field)
        s->o.field = "input_ids";
    if (!s->o.max_id)
        s->o.max_id = UINT32_MAX;
    int rc = nspecs ? 0 : tp__error_set(err, TP_EUSAGE, "no inputs");
    for (size_t i = 0; rc == 0 && i < nspecs; i++)
        rc = add_spec(s, specs[i], err);
    if (rc == 0)
        sort_inputs(s);
    for (size_t i = 0; rc == 0 && i < s->n; i++) {
        rc = probe(s, &s->in[i], err);
        s->info.bytes_total += s->in[i].bytes;
    }
    if (rc == 0 && set_location(s, specs, nspecs) < 0)
        rc = tp__error_set(err, -ENOMEM, "out of memory");
    if (rc < 0) {
        tp_token_source_close(s);
        return rc;
    }
    s->info.nfiles = s->n;
    hash_inputs(s);
    *out = s;
    return 0;
}

static int open_reader(tp_token_source *s, const input *in, tp_error *err)
{
    int rc;
    if (in->kind == IN_JSONL)
        rc = tp__token_jsonl_open(in->path, &s->r, err);
    else if (in->kind == IN_NPY)
        rc = tp__token_npy_open(in->path, &s->r, err);
    else if (in->kind == IN_BIN)
        rc = tp__token_bin_open(in->path, s->o.bin_dtype, &s->r, err);
    else
        rc = tp__token_megatron_open(in->path, &s->r, err);
    if (rc < 0) {
        s->r = NULL;
        return rc;
    }
    s->r->info = &s->info;
    s->r->o = &s->o;
    return 0;
}

int tp_token_source_next(tp_token_source *s, tp_token_piece *out, tp_error *err)
{
    for (;;) {
        if (!s->r) {
            while (s->at < s->n && s->o.jsonl_only && s->in[s->at].kind != IN_JSONL)
                s->at++;
            if (s->at == s->n)
                return 0;
            TP_TRY(open_reader(s, &s->in[s->at++], err));
        }
        int rc = s->r->next(s->r, out, err);
        if (rc == 1) {
            assert(out->n >= 1 && out->n <= TP_TOKEN_PIECE_MAX);
            return 1;
        }
        s->r->close(s->r);
        s->r = NULL;
        if (rc < 0)
            return rc;
    }
}

const tp_token_source_info *tp_token_source_info_of(const tp_token_source *s)
{
    return &s->info;
}

void tp_token_source_close(tp_token_source *s)
{
    if (!s)
        return;
    if (s->r)
        s->r->close(s->r);
    for (size_t i = 0; i < s->n; i++)
        free(s->in[i].path);
    free(s->in);
    free(s->location);
    free(s);
}

/* ---- for the readers */

size_t tp__token_widen(const unsigned char *src, tp_dtype dtype, size_t n, uint64_t max_id,
                       uint32_t *dst, int64_t *bad)
{
    /* One loop per dtype, each simple enough to vectorise; the check is folded in. */
#define WIDEN(T, LOAD)                                                                    \
    for (size_t i = 0; i < n; i++) {                                                      \
        T v = (T)(LOAD);                                                                  \
        if (v < 0 || (uint64_t)v > max_id) {                                              \
            *bad = (int64_t)v;                                                            \
            return i;                                                                     \
        }                                                                                 \
        dst[i] = (uint32_t)v;                                                             \
    }                                                                                     \
    return n
    switch (dtype) {
    case TP_DTYPE_UINT8: WIDEN(int32_t, src[i]);
    case TP_DTYPE_INT8: WIDEN(int32_t, (int8_t)src[i]);
    case TP_DTYPE_UINT16: WIDEN(int32_t, tp__le16(src + 2 * i));
    case TP_DTYPE_INT16: WIDEN(int32_t, (int16_t)tp__le16(src + 2 * i));
    case TP_DTYPE_UINT32: WIDEN(int64_t, tp__le32(src + 4 * i));
    case TP_DTYPE_INT32: WIDEN(int64_t, (int32_t)tp__le32(src + 4 * i));
    default: assert(dtype == TP_DTYPE_INT64); WIDEN(int64_t, tp__le64(src + 8 * i));
    }
#undef WIDEN
}

int tp__token_bad_id(tp_error *err, const char *path, uint64_t pos, int64_t v,
                     uint64_t max_id)
{
    if (v < 0)
        return tp__error_set(err, TP_EUSAGE, "%s: token %" PRIu64 " is %" PRId64 ", negative "
                             "(a wrong --dtype?)", path, pos, v);
    return tp__error_set(err, TP_EUSAGE, "%s: token %" PRIu64 " is %" PRId64 ", above the "
                         "largest id %" PRIu64 " (a wrong --dtype or --vocab-size?)", path,
                         pos, v, max_id);
}
