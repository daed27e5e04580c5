/* turbopump datasets: writing and reading sharded, checksummed sample collections.
 *
 * A dataset is a directory holding manifest.json and shard files. Samples have global ids
 * 0..N-1, contiguous across shards in manifest order. A sample is a set of named fields;
 * the manifest fixes the field list, each sample stores any subset of it. Shards are
 * either record shards (.tpr: aligned records, an index and a footer) or LMDB shards
 * (.mdb: one LMDB environment per shard); both hold the same record encoding, and every
 * record, index, header and the manifest carry an XXH3-64 checksum verified on read.
 * The byte-exact format is in docs/FORMAT.md.
 *
 * Thread-safety: a tp_dataset is immutable after tp_dataset_open() and may be shared by
 * any number of threads. A tp_dataset_writer is used by one thread at a time. */
#ifndef TURBOPUMP_DATASET_H
#define TURBOPUMP_DATASET_H

#include <turbopump/error.h>
#include <turbopump/version.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TP_MAX_FIELDS 64        /* fields per dataset */
#define TP_MAX_FIELD_NAME 31    /* bytes, excluding the NUL */
#define TP_MAX_DIMS 8           /* tensor rank */
#define TP_DATASET_ID_BYTES 16

typedef enum tp_shard_format {
    TP_SHARD_RECORD = 1, /* .tpr record shards */
    TP_SHARD_LMDB = 2    /* .mdb LMDB shards */
} tp_shard_format;

typedef enum tp_field_kind {
    TP_FIELD_BYTES = 0,  /* opaque bytes (text, JSON, anything) */
    TP_FIELD_IMAGE = 1,  /* an encoded image; the field name says which codec (jpg, png) */
    TP_FIELD_INT64 = 2,  /* one little-endian int64 (e.g. a class label) */
    TP_FIELD_TENSOR = 3  /* raw little-endian array; dtype and shape in tp_field_info */
} tp_field_kind;

typedef enum tp_dtype {
    TP_DTYPE_NONE = 0,
    TP_DTYPE_UINT8, TP_DTYPE_INT8, TP_DTYPE_UINT16, TP_DTYPE_INT16,
    TP_DTYPE_INT32, TP_DTYPE_INT64, TP_DTYPE_FLOAT16, TP_DTYPE_FLOAT32, TP_DTYPE_FLOAT64,
    TP_DTYPE_BFLOAT16,          /* the upper half of a float32, rounded to nearest even */
    TP_DTYPE_UINT32             /* token ids of large vocabularies */
} tp_dtype;

/* How a field's bytes are stored in a record. */
typedef enum tp_compression {
    TP_COMPRESS_NONE = 0,
    TP_COMPRESS_ZSTD = 1,      /* a zstd frame */
    TP_COMPRESS_ZSTD_DICT = 2  /* a zstd frame made with the dataset's dictionary */
} tp_compression;

/* A field of the dataset's schema. `name` is 1..TP_MAX_FIELD_NAME bytes of [a-z0-9_.-].
 * For TP_FIELD_TENSOR, dtype and the fixed shape (ndim >= 1) describe every sample's
 * value; other kinds leave dtype NONE and ndim 0. `zstd_level` records the packing policy
 * (0: stored as is); each record still says how each of its fields is stored. */
typedef struct tp_field_info {
    const char *name;
    tp_field_kind kind;
    tp_dtype dtype;
    uint32_t ndim;
    int64_t shape[TP_MAX_DIMS];
    int zstd_level;
} tp_field_info;

/* One field of one sample, as handed to the writer or returned by the reader.
 * `data`/`size` are the stored bytes; when `compression` is not NONE, `raw_size` is the
 * size after decompression (otherwise equal to `size`). */
typedef struct tp_field_value {
    uint32_t field;             /* index into the dataset's field list */
    tp_compression compression;
    const void *data;
    uint64_t size;
    uint64_t raw_size;
} tp_field_value;

/* ---------------------------------------------------------------- writing */

typedef struct tp_dataset_writer tp_dataset_writer;

typedef struct tp_dataset_writer_options {
    tp_shard_format format;     /* default (0): TP_SHARD_RECORD */
    uint32_t align;             /* record shards: power of two 1..65536; 0 means 4096 */
    uint64_t shard_bytes;       /* start a new shard past this size; 0 means 256 MiB */
    const tp_field_info *fields;
    size_t nfields;             /* 1..TP_MAX_FIELDS */
    const char *const *classes; /* optional class names (UTF-8), stored in the manifest */
    size_t nclasses;
    const unsigned char *id;    /* TP_DATASET_ID_BYTES, or NULL for a random id */
    const char *source;         /* optional free text stored in the manifest */
    bool replace;               /* allow replacing an existing dataset at the path */
    const void *zstd_dict;      /* optional zstd dictionary stored with the dataset, for */
    size_t zstd_dict_len;       /* fields stored as TP_COMPRESS_ZSTD_DICT */
} tp_dataset_writer_options;

/* Starts writing a dataset at `path`. Output goes to the staging directory "<path>.partial"
 * and becomes visible at `path` only in tp_dataset_writer_finish(), so an interrupted
 * writer never leaves anything that opens as a dataset.
 * @return : 0 and *out set, or
 *           -EEXIST   `path` exists and is a dataset or non-empty (and `replace` is off);
 *           -ENOTEMPTY `path` is a non-empty directory that is not a dataset (never
 *                      replaced, even with `replace`);
 *           -EBUSY    another writer holds "<path>.partial";
 *           TP_EUSAGE invalid options; -errno on file system errors.
 * The writer owns copies of everything in `o`. Destroy it with tp_dataset_writer_destroy. */
TP_API int tp_dataset_writer_create(tp_dataset_writer **out, const char *path,
                                    const tp_dataset_writer_options *o, tp_error *err);

/* Appends one sample with `n` field values (each field at most once, any order).
 * Values are stored as given: compress beforehand and set `compression` to store
 * compressed bytes (TP_COMPRESS_ZSTD_DICT only with the writer's `zstd_dict`). The
 * sample's id is the number of samples appended before it.
 * @return : 0, TP_EUSAGE (unknown field, duplicate, bad sizes), or -errno from writing
 *           (e.g. -ENOSPC); after a write error the writer can only be destroyed. */
TP_API int tp_dataset_writer_append(tp_dataset_writer *w, const tp_field_value *values,
                                    size_t n, tp_error *err);

/* @return : the number of samples appended so far. */
TP_API uint64_t tp_dataset_writer_count(const tp_dataset_writer *w);

/* Closes the last shard, fsyncs every file, writes manifest.json last and moves the
 * dataset into place (atomically exchanging it with a replaced one).
 * @return : 0 or a negative code; on failure nothing at `path` has changed. */
TP_API int tp_dataset_writer_finish(tp_dataset_writer *w, tp_error *err);

/* Frees the writer. Unless finish succeeded, removes the staging directory: the dataset
 * is discarded. Accepts NULL. */
TP_API void tp_dataset_writer_destroy(tp_dataset_writer *w);

/* Publishes the datasets `parts` as one dataset at `path` without copying shard bytes:
 * their shards are hard-linked into it (the parts stay valid), so all must be on the
 * file system of `path`. The parts must agree on shard format, alignment, fields,
 * classes and zstd dictionary. Parts written by `turbopump pack --part I/N` (their
 * source ends in " part I/N") must be all N of one input, in any order, and are merged
 * in part order; other datasets are concatenated in the order given. Publication is
 * atomic, as for the writer; `replace` as in tp_dataset_writer_options.
 * @return : 0, TP_EUSAGE (incompatible or incomplete parts, with the reason), -EXDEV, or
 *           what opening a part or writing returns; `err` says which part and why. */
TP_API int tp_dataset_merge(const char *const *parts, size_t n, const char *path, bool replace,
                            tp_error *err);

/* ---------------------------------------------------------------- reading */

typedef struct tp_dataset tp_dataset;

typedef struct tp_shard_info {
    const char *path;           /* valid while the dataset is open */
    int fd;                     /* open read-only descriptor, owned by the dataset; -1 for
                                   a shard in object storage */
    const void *object;         /* that shard's object (internal), else NULL */
    tp_shard_format format;
    uint32_t align;
    uint64_t first_sample;
    uint64_t samples;
    uint64_t bytes;             /* file size */
} tp_shard_info;

/* Where a sample's record lies, for reading it with one's own IO: `length` bytes at
 * `offset` of the open descriptor `fd` (owned by the dataset, valid while it is open).
 * `checksum` is the value tp_record_parse() verifies. */
typedef struct tp_sample_location {
    uint32_t shard;
    int fd;                     /* -1 for a shard in object storage (see `object`) */
    uint64_t offset;
    uint64_t length;
    uint64_t checksum;
    /* LMDB shards: the same bytes in LMDB's read-only map (valid while the dataset is
     * open), for records small enough that copying beats a read; NULL for record shards. */
    const void *mapped;
    /* A shard in object storage: its object (internal; read with ranged GETs). */
    const void *object;
} tp_sample_location;

/* Opens the dataset directory `path` (or, for `s3://bucket/prefix`, the dataset under
 * that prefix in S3-compatible object storage, configured by the usual AWS variables:
 * docs/STORAGE.md): parses and checks manifest.json (checksum,
 * version, fields), opens every shard and checks its header, footer and index against
 * the manifest. Records are verified when read. LMDB shards are first opened and every
 * key looked up in a child process (fork), because liblmdb can crash on corrupt pages:
 * a shard that kills the child is reported as TP_ECORRUPT.
 * @return : 0 and *out set, or TP_ENODATASET, TP_ECORRUPT, TP_EVERSION, TP_ETRUNCATED,
 *           TP_ELMDB, -errno; `err` names the file and the cause. */
TP_API int tp_dataset_open(tp_dataset **out, const char *path, tp_error *err);
/* Closes the dataset and its shards. Accepts NULL. */
TP_API void tp_dataset_close(tp_dataset *ds);

TP_API uint64_t tp_dataset_sample_count(const tp_dataset *ds);
TP_API tp_shard_format tp_dataset_format(const tp_dataset *ds);
/* @return : the record alignment of record shards (1 for LMDB shards). */
TP_API uint32_t tp_dataset_align(const tp_dataset *ds);
TP_API const unsigned char *tp_dataset_id(const tp_dataset *ds); /* TP_DATASET_ID_BYTES */
TP_API const char *tp_dataset_source(const tp_dataset *ds);      /* "" when none */
TP_API size_t tp_dataset_field_count(const tp_dataset *ds);
/* @return : field `i` (< field count), valid while the dataset is open. */
TP_API const tp_field_info *tp_dataset_field(const tp_dataset *ds, size_t i);
/* @return : the index of the field called `name`, or TP_ENOFIELD. */
TP_API int tp_dataset_field_index(const tp_dataset *ds, const char *name);
TP_API size_t tp_dataset_class_count(const tp_dataset *ds);
/* @return : class name `i` (< class count), valid while the dataset is open. */
TP_API const char *tp_dataset_class_name(const tp_dataset *ds, size_t i);
TP_API size_t tp_dataset_shard_count(const tp_dataset *ds);
/* @return : 0, or TP_EUSAGE when `i` is out of range. */
TP_API int tp_dataset_shard_info(const tp_dataset *ds, size_t i, tp_shard_info *out);
/* @return : the dataset's zstd dictionary (valid while it is open) and *len, or NULL. */
TP_API const void *tp_dataset_zstd_dict(const tp_dataset *ds, size_t *len);
/* @return : the largest record length in the dataset (a safe read-buffer size). */
TP_API uint64_t tp_dataset_max_record(const tp_dataset *ds);

/* Finds sample `id`. @return : 0, or TP_EUSAGE for an id out of range, TP_ELMDB. */
TP_API int tp_dataset_locate(const tp_dataset *ds, uint64_t id, tp_sample_location *loc,
                             tp_error *err);

/* Reads sample `id`'s record into `buf` (capacity `cap`) and verifies its checksum.
 * @return : 0 and *len set, -ENOBUFS when `cap` is too small (*len says how much is
 *           needed), TP_ECORRUPT / TP_ETRUNCATED / -errno; `err` names the dataset, shard,
 *           sample id and cause. Thread-safe. */
TP_API int tp_dataset_read(const tp_dataset *ds, uint64_t id, void *buf, size_t cap,
                           size_t *len, tp_error *err);

/* A parsed record: views into the buffer that was parsed, in stored field order. */
typedef struct tp_record {
    uint32_t nfields;
    tp_field_value fields[TP_MAX_FIELDS];
} tp_record;

/* Parses and verifies one encoded record (as read via tp_dataset_locate or
 * tp_dataset_read): structure, checksum, and, when `expected_checksum` is not 0, that the
 * record is the one the index names. Field indices must be below `nfields_max`.
 * @return : 0, or TP_ECORRUPT with the cause in `err`. */
TP_API int tp_record_parse(const void *buf, size_t len, uint64_t expected_checksum,
                           uint32_t nfields_max, tp_record *out, tp_error *err);

/* A record read in pieces (with readv, say, so that a large payload lands straight in its
 * destination): the pieces in order make up the record. */
typedef struct tp_piece {
    const void *data;
    size_t len;
} tp_piece;
#define TP_RECORD_MAX_PIECES 4

/* tp_record_parse over 1..TP_RECORD_MAX_PIECES pieces: the same checks, and the values
 * point into the pieces. The header and field table must lie in the first piece and each
 * value inside one piece. @return : 0, TP_ECORRUPT (as tp_record_parse), or TP_EUSAGE
 *           when the record is intact but its layout does not fit the pieces. */
TP_API int tp_record_parse_pieces(const tp_piece *pieces, size_t npieces,
                                  uint64_t expected_checksum, uint32_t nfields_max,
                                  tp_record *out, tp_error *err);

/* Checks a parsed record against the dataset's schema: int64 fields hold 8 bytes and
 * tensors exactly shape x dtype bytes (after decompression). tp_dataset_read does this;
 * call it after parsing records read by other means.
 * @return : 0, or TP_ECORRUPT naming the field. */
TP_API int tp_dataset_check_record(const tp_dataset *ds, const tp_record *rec, tp_error *err);

/* @return : the value of field `field` in `rec`, or NULL when the sample lacks it. */
TP_API const tp_field_value *tp_record_field(const tp_record *rec, uint32_t field);

/* Names for enums, as written in the manifest ("record", "image", "uint8", ...). */
TP_API const char *tp_field_kind_name(tp_field_kind k);
TP_API const char *tp_dtype_name(tp_dtype t);
TP_API size_t tp_dtype_size(tp_dtype t);

#ifdef __cplusplus
}
#endif
#endif
