/* Input formats `turbopump pack` reads, behind one interface: a source is a deterministic
 * iterator of samples, each a key and values for the source's fields (names and kinds as
 * the dataset will store them). Sources never stop on a bad input: each unusable one is
 * reported once through the warn callback (which may stop the run, as --strict does)
 * and left out; only failures of the input as a whole are errors.
 *
 *   imagefolder.c  SRC/CLASS/.../NAME.{jpg,jpeg,png}: fields jpg, png or image (a tree
 *                  of both) and cls
 *   wds_tar.c      WebDataset tar shards (libarchive): members grouped by key, every
 *                  extension a field
 *   tfrecord.c     TFRecord files of tf.train.Example (protobuf-c, CRC-32C checked)
 *   listing.c      a CSV (libcsv) or JSON Lines listing of paths, labels and other
 *                  columns
 *   npy.c          .npy headers, for tensor fields
 *
 * The pre-tokenized inputs of `pack --tokens` are documents of ids, not samples: they
 * have an interface of their own, tokens_source.h. */
#ifndef TP_INGEST_SOURCE_H
#define TP_INGEST_SOURCE_H

#include "tp_common.h"

#include <turbopump/dataset.h>

#define TP_SOURCE_MAX_FIELDS 16
#define TP_SOURCE_MAX_VALUE (256u << 20) /* bytes of one value */
#define TP_SOURCE_STOPPED (-ECANCELED)   /* the warn callback asked to stop */

/* One value of a sample: bytes held in memory, or a file the packer's workers read (so
 * reading runs in parallel where the source allows it). INT64 values come as their
 * decimal text (WebDataset's .cls) or as `i64` when `is_int` is set. */
typedef struct tp_source_value {
    bool present;
    const unsigned char *data; /* into the sample's buffer */
    size_t len;
    const char *path;          /* instead of data: read this file */
    bool is_int;
    int64_t i64;
    bool raw;                  /* a tensor's bytes as they are (not a .npy) */
    size_t offset;             /* for the sources: where `data` starts in the buffer
                                  until the sample is sealed */
} tp_source_value;

typedef struct tp_source_sample {
    char *key;                 /* the sample's key (a tar key, a relative path) */
    char *where;               /* where it came from, for messages */
    tp_source_value v[TP_SOURCE_MAX_FIELDS]; /* by field index */
    unsigned char *buf;        /* owns every value's bytes */
    size_t buf_len, buf_cap;
} tp_source_sample;

typedef int (*tp_source_warn)(void *ctx, const char *where, const char *why);

typedef struct tp_source_options {
    /* "name" or "from:to" (keep field `from` as `to`), in the order the dataset lists
     * them; none: every field the input has */
    const char *const *fields;
    size_t nfields;
    tp_source_warn warn;
    void *warn_ctx;
    /* optional: told of choices made for the user (fields left out), with warn_ctx */
    void (*note)(void *ctx, const char *msg);
    /* part `part` of `parts` (0: the whole input): the samples [count*part/parts,
     * count*(part+1)/parts) of the input's order, counting every sample the input holds
     * before checks, so the parts of all I are the whole, in order */
    uint64_t part, parts;
} tp_source_options;

typedef struct tp_source tp_source;

typedef struct tp_source_ops {
    /* @return : 1 with `out` filled, 0 at the end, or an error for the input as a whole */
    int (*next)(tp_source *s, tp_source_sample *out, tp_error *err);
    void (*close)(tp_source *s);
} tp_source_ops;

struct tp_source {
    const tp_source_ops *ops;
    const char *kind;          /* "imagefolder", "wds" */
    char *location;            /* what the manifest records as the source */
    tp_field_info fields[TP_SOURCE_MAX_FIELDS];
    char *field_names[TP_SOURCE_MAX_FIELDS]; /* own the names above */
    size_t nfields;
    char **classes;            /* label names, when the input has them */
    size_t nclasses;
    uint64_t count;            /* samples before checks in this part, when known (else 0) */
    uint64_t listing_hash;     /* digest of the input's listing: names, sizes, order */
    uint64_t skipped;          /* inputs warned about and left out */
    bool stopped;              /* the warn callback asked to stop */
    tp_source_warn warn;
    void *warn_ctx;
};

/* Opens `src`: a directory (ImageFolder), or tar shards — a .tar file (compressed ones
 * too), a directory of them (--input wds), a glob or a brace list ("shard-{000..009}.tar").
 * a CSV or JSON Lines listing (.csv, .jsonl, .ndjson).
 * TFRecord files (a name with .tfrecord or .tfrec in it, globs and lists as for shards).
 * `kind` is NULL (guess from `src`), "imagefolder", "wds", "tfrecord" or "listing".
 * @return : 0, TP_SOURCE_STOPPED, or an error. */
int tp_source_open(const char *src, const char *kind, const tp_source_options *o,
                   tp_source **out, tp_error *err);
/* The next sample into `out` (its previous contents are dropped).
 * @return : 1, 0 at the end, TP_SOURCE_STOPPED once the warn callback asked to stop,
 *           or an error for the input as a whole. */
static inline int tp_source_next(tp_source *s, tp_source_sample *out, tp_error *err)
{
    int rc = s->stopped ? 0 : s->ops->next(s, out, err);
    return s->stopped ? TP_SOURCE_STOPPED : rc;
}
void tp_source_close(tp_source *s);

void tp_source_sample_init(tp_source_sample *s);
void tp_source_sample_clear(tp_source_sample *s); /* keeps the buffer for reuse */
void tp_source_sample_free(tp_source_sample *s);

/* ---- for the sources */

int tp__source_warn(tp_source *s, const char *where, const char *fmt, ...) TP_PRINTF(3, 4);
/* Makes `s` a field name in place: lowercased, characters other than [a-z0-9_.-] as '_'. */
void tp__field_name(char *s);
/* The range of sample indices [*lo, *hi) of the part `o` asks for, of `count`. */
void tp__source_part(const tp_source_options *o, uint64_t count, uint64_t *lo, uint64_t *hi);
/* Appends `len` bytes to the sample's buffer and makes them the value of `field` (or
 * extends its value, when `append` and the value ends where the buffer does); `data`
 * points at them once the buffer stops moving (tp__source_sample_seal).
 * @return : 0 or -ENOMEM. */
int tp__source_sample_put(tp_source_sample *s, uint32_t field, const void *data, size_t len,
                          bool append);
void tp__source_sample_seal(tp_source_sample *s);
/* A field's kind from its name, WebDataset's way: jpg/jpeg/png images, cls/cls2/index/id
 * (and *.cls, ...) int64 as decimal text, npy tensors, anything else bytes. */
tp_field_kind tp__source_kind_of(const char *ext);
/* Applies options->fields to the input's field names (in input order) and kinds (NULL:
 * tp__source_kind_of each name), filling s->fields; map[i] is the dataset field of input
 * field i, or -1 (dropped). @return : 0 or TP_EUSAGE naming a field the input lacks. */
int tp__source_select(tp_source *s, const tp_source_options *o, char *const *names,
                      const tp_field_kind *kinds, size_t n, int *map, tp_error *err);

/* Input files (files.c): a path, a directory (the files in it that `want` accepts, by
 * name), a glob or a brace list ("shard-{000..127}.tar", "{a,b}.tar"), in that order. */
typedef struct tp_file_list {
    char **paths;
    size_t n, cap;
} tp_file_list;
int tp__files_expand(tp_file_list *l, const char *spec, bool (*want)(const char *),
                     tp_error *err);
void tp__files_free(tp_file_list *l);
/* A tar shard's name: .tar, .tar.gz, .tgz, .tar.zst, .tar.xz, .tar.bz2, .tar.lz4. */
bool tp__tar_name(const char *name);

/* CRC-32C of `len` bytes (crc32c.c). */
uint32_t tp__crc32c(const void *data, size_t len);

/* A parsed .npy header (npy.c). */
typedef struct tp_npy {
    tp_dtype dtype;
    uint32_t ndim;             /* >= 1: a scalar is shape (1) */
    int64_t shape[TP_MAX_DIMS];
    size_t offset;             /* where the array starts */
    uint64_t bytes;            /* its size: shape x itemsize */
} tp_npy;

/* Parses the header of a .npy value of `total` bytes from its first `len` bytes (all of
 * it, or at least the header) and checks that the array fills the rest exactly.
 * @return : 0, or TP_EBADIMAGE with the cause in `err`. */
int tp__npy_parse(const void *data, size_t len, size_t total, tp_npy *out, tp_error *err);
/* The same with a limit of `max_bytes` on the array; TP_NPY_TOKENS also admits uint32 and
 * empty arrays (token files). */
#define TP_NPY_TOKENS 1u
int tp__npy_parse_as(const void *data, size_t len, uint64_t total, uint64_t max_bytes,
                     unsigned flags, tp_npy *out, tp_error *err);

int tp__imagefolder_open(const char *root, const tp_source_options *o, tp_source **out,
                         tp_error *err);
int tp__wds_open(const char *spec, const tp_source_options *o, tp_source **out,
                 tp_error *err);
int tp__tfrecord_open(const char *spec, const tp_source_options *o, tp_source **out,
                      tp_error *err);
/* One TFRecord file held in memory (the fuzz target's entry). */
int tp__tfrecord_open_memory(const void *data, size_t len, const tp_source_options *o,
                             tp_source **out, tp_error *err);
int tp__listing_open(const char *path, const tp_source_options *o, tp_source **out,
                     tp_error *err);
/* A listing held in memory (the fuzz target's entry): paths resolve against `dir`. */
int tp__listing_open_memory(const char *data, size_t len, bool jsonl, const char *name,
                            const char *dir, const tp_source_options *o, tp_source **out,
                            tp_error *err);
/* One tar shard held in memory (the fuzz target's entry). */
int tp__wds_open_memory(const void *data, size_t len, const tp_source_options *o,
                        tp_source **out, tp_error *err);

#endif
