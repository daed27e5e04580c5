/* Internal interface of the storage module: record encoding, the shard backends (record
 * shards and LMDB shards, one file each behind one set of function pointers) and the
 * manifest. The on-disk layouts these constants describe are specified in docs/FORMAT.md. */
#ifndef TP_STORAGE_H
#define TP_STORAGE_H

#include <turbopump/dataset.h>

#include "tp_common.h"

#define TP_FORMAT_VERSION 1

/* Record: u64 checksum | u32 magic | u16 nfields | u16 flags | field table | payloads. */
#define TP_RECORD_MAGIC 0x31435254u /* "TRC1" */
#define TP_RECORD_HEADER 16
#define TP_RECORD_ENTRY 24
#define TP_RECORD_PAD 8 /* each payload starts 8-byte aligned within the record */

/* Shard header and footer, 64 bytes each. */
#define TP_SHARD_HEADER 64
#define TP_SHARD_FOOTER 64
#define TP_INDEX_ENTRY 24
#define TP_TPR_MAGIC "TPRSHARD"
#define TP_TPR_FOOTER_MAGIC "TPRFOOT1"
#define TP_LMDB_MAGIC "TPLMDBSH"

/* Fields decoded from a shard header (both shard kinds use the same 64-byte header). */
typedef struct tp__shard_header {
    uint32_t align;
    uint64_t shard_index;
    uint64_t first_sample;
    unsigned char id[TP_DATASET_ID_BYTES];
} tp__shard_header;

void tp__shard_header_encode(unsigned char out[TP_SHARD_HEADER], const char magic[8],
                             const tp__shard_header *h);
/* Checks magic, version and checksum. @return : 0, TP_ECORRUPT or TP_EVERSION. */
int tp__shard_header_decode(const unsigned char in[TP_SHARD_HEADER], const char magic[8],
                            tp__shard_header *h, tp_error *err, const char *what);

/* @return : the encoded size of a record holding `values`. */
uint64_t tp__record_size(const tp_field_value *values, size_t n);
/* Encodes a record into `out` (at least tp__record_size bytes), fields in ascending field
 * order. @return : the record's checksum. */
uint64_t tp__record_encode(unsigned char *out, const tp_field_value *values, size_t n);

/* ---- shard writers */

typedef struct tp__shard_writer tp__shard_writer;
typedef struct tp__shard_writer_ops {
    int (*append)(tp__shard_writer *w, const unsigned char *rec, uint64_t len,
                  uint64_t checksum, tp_error *err);
    /* Writes the trailing structures, fsyncs and closes; *bytes gets the file size. */
    int (*finish)(tp__shard_writer *w, uint64_t *bytes, tp_error *err);
    void (*destroy)(tp__shard_writer *w);
} tp__shard_writer_ops;

struct tp__shard_writer {
    const tp__shard_writer_ops *ops;
    char *path;
    uint64_t bytes;   /* bytes written so far (approximate for LMDB) */
    uint64_t records;
};

int tp__tpr_writer_create(tp__shard_writer **out, const char *path,
                          const tp__shard_header *h, tp_error *err);
int tp__lmdb_writer_create(tp__shard_writer **out, const char *path,
                           const tp__shard_header *h, uint64_t shard_bytes, tp_error *err);

/* ---- shard readers */

typedef struct tp__shard_reader tp__shard_reader;
typedef struct tp__shard_reader_ops {
    int (*locate)(const tp__shard_reader *r, uint64_t local, tp_sample_location *loc,
                  tp_error *err);
    /* Copies record `local` into buf (cap bytes) without verifying it. */
    int (*read)(const tp__shard_reader *r, uint64_t local, void *buf, size_t cap,
                size_t *len, tp_error *err);
    void (*close)(tp__shard_reader *r);
} tp__shard_reader_ops;

struct tp__shard_reader {
    const tp__shard_reader_ops *ops;
    char *path;
    int fd;                     /* -1 for a shard in object storage */
    struct tp_s3_object *obj;   /* that shard, or NULL */
    uint64_t records;
    uint64_t bytes;
    uint64_t max_record;
    tp__shard_header header;
};

/* Opens a shard and checks its structure against what the manifest says. */
int tp__tpr_reader_open(tp__shard_reader **out, const char *path, const tp__shard_header *want,
                        uint64_t records, tp_error *err);
/* A record shard in object storage: `name` under the dataset URL `url`, `bytes` long as
 * the manifest says (checked against the object's size). */
int tp__tpr_reader_open_s3(tp__shard_reader **out, const char *url, const char *name,
                           const tp__shard_header *want, uint64_t records, uint64_t bytes,
                           tp_error *err);
int tp__lmdb_reader_open(tp__shard_reader **out, const char *path,
                         const tp__shard_header *want, uint64_t records, tp_error *err);

/* ---- manifest */

typedef struct tp__manifest_shard {
    char *file;
    uint64_t first_sample;
    uint64_t samples;
    uint64_t bytes;
    /* A shard adopted from another dataset by a merge keeps the header it was written
     * with: the id, position and first sample that header and footer hold. */
    bool has_origin;
    unsigned char origin_id[TP_DATASET_ID_BYTES];
    uint64_t origin_index, origin_first;
} tp__manifest_shard;

typedef struct tp__manifest {
    tp_shard_format format;
    uint32_t align;
    unsigned char id[TP_DATASET_ID_BYTES];
    uint64_t samples;
    uint64_t bytes;
    size_t nfields;
    tp_field_info fields[TP_MAX_FIELDS]; /* names owned by the manifest */
    size_t nclasses;
    char **classes;
    char *source;
    size_t nshards;
    tp__manifest_shard *shards;
    bool has_dict;          /* a zstd dictionary is stored in TP_DICT_FILE */
    uint64_t dict_bytes;
    uint64_t dict_checksum;
} tp__manifest;

#define TP_DICT_FILE "zstd.dict"
#define TP_DICT_MAX (16u << 20)

/* Serialises `m` as manifest.json text with its checksum. @return : malloc'd text or NULL. */
char *tp__manifest_dump(const tp__manifest *m);
/* Parses and checks manifest text. @return : 0, TP_ECORRUPT, TP_EVERSION or -ENOMEM. */
int tp__manifest_parse(const char *text, size_t len, tp__manifest *m, tp_error *err);
void tp__manifest_free(tp__manifest *m);

/* Shared by both manifest kinds (json_t is jansson's). */
struct json_t;
/* `root` as indented JSON text ending in a newline, its last member "checksum" filled in
 * (the caller sets it last, to "xxh3:0000000000000000"). @return : malloc'd text or NULL. */
char *tp__manifest_seal(struct json_t *root);
/* Checks the "checksum" member of manifest text. @return : 0 or TP_ECORRUPT. */
int tp__manifest_verify(const char *text, size_t len, tp_error *err);
/* Parses a dataset id (32 lower-case hex digits). @return : 0 or -1. */
int tp__manifest_id(struct json_t *v, unsigned char *out);
/* Whether a shard file name is acceptable (see docs/FORMAT.md). */
bool tp__shard_file_ok(const char *f);

/* The exact raw size the schema demands of field `f` (8 for int64, shape x dtype for a
 * tensor), or 0 when any size goes. @return : 0, or TP_EUSAGE when it would overflow. */
int tp__field_raw_size(const tp_field_info *f, uint64_t *want);

/* Validates a field schema (names, kinds, shapes). @return : 0 or TP_EUSAGE. */
int tp__fields_check(const tp_field_info *fields, size_t n, tp_error *err);
int tp__field_kind_parse(const char *s, tp_field_kind *k);
int tp__dtype_parse(const char *s, tp_dtype *t);

/* ---- atomic publication (staging.c), shared by the dataset and token writers */

#define TP_TOKENS_FORMAT "turbopump-tokens"

typedef struct tp__staging {
    char *path;            /* the dataset's final path, without trailing slashes */
    char *dir;             /* <path>.partial, locked while we write */
    int lock_fd;
    bool replace_existing; /* path holds a dataset that publish swaps out */
    bool own;              /* the staging directory is ours to remove */
    bool published;
    /* s3:// targets: `dir` is a private temporary directory; each file is uploaded as it
     * is finished and removed here; the manifest, written last, publishes. */
    bool remote;
    char **uploaded;       /* objects written so far (removed again on failure) */
    size_t nuploaded;
} tp__staging;

/* Checks that `path` may be written (missing, empty, or with replace one of our datasets)
 * and creates and locks the staging directory, emptying what a crashed writer left.
 * @return : 0 or a negative code with the reason in `err`; call tp__staging_close after. */
int tp__staging_open(tp__staging *st, const char *path, bool replace, tp_error *err);
/* Writes `name` in the staging directory durably: temp file, fsync, rename, fsync. */
int tp__staging_write(tp__staging *st, const char *name, const void *data, size_t len,
                      tp_error *err);
/* For an s3:// target: uploads the finished file `name` of the staging directory (or,
 * with `from`, that local file or s3:// object) as the object `name` under the target,
 * then removes the local file. A no-op for a local target. */
int tp__staging_upload(tp__staging *st, const char *name, const char *from, tp_error *err);
/* Moves the staging directory to the final path (swapping out a replaced dataset). */
int tp__staging_publish(tp__staging *st, tp_error *err);
/* Unlocks, and removes the staging directory unless it was published. */
void tp__staging_close(tp__staging *st, bool finished);

/* ---- writer internals used by parallel packers */

/* Checks values against the schema (known fields, no duplicates, int64 and tensor sizes).
 * @return : 0 or TP_EUSAGE with the cause in `err`. */
int tp__values_check(const tp_field_info *fields, size_t nfields, const tp_field_value *v,
                     size_t n, tp_error *err);
/* Appends a record already built by tp__record_encode from checked values. */
int tp__writer_append_record(tp_dataset_writer *w, const unsigned char *rec, uint64_t len,
                             uint64_t checksum, tp_error *err);
/* Adds the shard file `path`, described by `sh` in the manifest of the dataset `id` (at
 * position `index` there), as the writer's next shard: hard-linked into the staging
 * directory, its bytes untouched, its header's values kept as the entry's origin. Only
 * before any record is appended. @return : 0, -EXDEV (another file system), -errno. */
int tp__writer_adopt_shard(tp_dataset_writer *w, const char *path, const tp__manifest_shard *sh,
                           const unsigned char *id, uint64_t index, tp_error *err);
/* The manifest of an open dataset. */
const tp__manifest *tp__dataset_manifest(const tp_dataset *ds);

#endif
