/* turbopump token datasets: tokenized documents for language-model training.
 *
 * A token dataset is a directory holding manifest.json (format "turbopump-tokens") and
 * token shards (.tpt). Its documents are concatenated into one stream of token ids,
 * 0..T-1 across shards in manifest order; a document never spans two shards. Each shard
 * holds one contiguous little-endian array of uint16 or uint32 ids (the dataset's dtype,
 * chosen from the vocabulary), an XXH3-64 checksum per block of `block_tokens` ids, and
 * the start of each document. Every read is checked against its blocks' checksums. The
 * byte-exact format is in docs/FORMAT.md ("Token datasets").
 *
 * Training reads such a dataset as windows (loader: seq_len), not as samples.
 *
 * Thread-safety: a tp_tokens is immutable after tp_tokens_open() and may be shared by any
 * number of threads. A tp_tokens_writer is used by one thread at a time. */
#ifndef TURBOPUMP_TOKENS_H
#define TURBOPUMP_TOKENS_H

#include <turbopump/dataset.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TP_TOKENS_BLOCK_DEFAULT 2048u
#define TP_TOKENS_BLOCK_MIN 256u
#define TP_TOKENS_BLOCK_MAX (1u << 20)

typedef struct tp_tokens_writer tp_tokens_writer;

typedef struct tp_tokens_writer_options {
    tp_dtype dtype;             /* TP_DTYPE_UINT16 or TP_DTYPE_UINT32 (0: UINT32) */
    uint64_t shard_bytes;       /* token bytes per shard; a shard closes at the first
                                   document boundary past it. 0: 256 MiB */
    uint32_t block_tokens;      /* ids per checksummed block, TP_TOKENS_BLOCK_MIN..MAX;
                                   0: TP_TOKENS_BLOCK_DEFAULT */
    const char *source;         /* free text for the manifest; NULL: "" */
    const unsigned char *id;    /* TP_DATASET_ID_BYTES, NULL: random */
    bool replace;               /* replace an existing dataset at path */
} tp_tokens_writer_options;

/* Starts writing a token dataset at `path` (published atomically by finish, as
 * tp_dataset_writer does). @return : 0, TP_EUSAGE (bad options), -EEXIST, -ENOTEMPTY,
 *           -EBUSY (another writer), -errno. */
TP_API int tp_tokens_writer_create(tp_tokens_writer **out, const char *path,
                                   const tp_tokens_writer_options *o, tp_error *err);

/* Appends one document of `n` >= 1 ids, given as an array of `src` (UINT16, UINT32,
 * INT32 or INT64). Every id must fit the dataset's dtype. @return : 0, TP_EUSAGE (an
 * empty document, an id out of range: the message gives its position), -errno. */
TP_API int tp_tokens_writer_append(tp_tokens_writer *w, const void *ids, tp_dtype src,
                                   uint64_t n, tp_error *err);

/* Appends `n` >= 1 more ids to the document appended last, for documents that come in
 * pieces (a token stream too long to hold at once). The document stays in the shard it
 * began in, however long it grows. Checks as tp_tokens_writer_append; a refused piece
 * leaves no trace, earlier pieces stay. @return : 0, TP_EUSAGE (no document yet, an empty
 * piece, an id out of range), -errno. */
TP_API int tp_tokens_writer_extend(tp_tokens_writer *w, const void *ids, tp_dtype src,
                                   uint64_t n, tp_error *err);

TP_API uint64_t tp_tokens_writer_tokens(const tp_tokens_writer *w);
TP_API uint64_t tp_tokens_writer_documents(const tp_tokens_writer *w);

/* Writes the last shard, the manifest, and publishes. @return : 0 or a negative code
 *           (nothing is published then). */
TP_API int tp_tokens_writer_finish(tp_tokens_writer *w, tp_error *err);

/* Frees the writer; an unfinished dataset is removed. NULL allowed. */
TP_API void tp_tokens_writer_destroy(tp_tokens_writer *w);

typedef struct tp_tokens tp_tokens;

typedef struct tp_tokens_shard_info {
    const char *path;
    int fd;                     /* open, read-only, owned by the dataset; -1 for a shard
                                   in object storage */
    const void *object;         /* that shard's object (internal), else NULL */
    uint64_t first_token, tokens;
    uint64_t first_document, documents;
    uint64_t bytes;             /* file size */
    uint64_t data_offset;       /* where id 0 of the shard is in the file */
} tp_tokens_shard;

/* Opens a token dataset: the manifest, every shard's header and index (checked against
 * the manifest and their checksums). @return : 0, TP_ENODATASET, TP_ECORRUPT,
 *           TP_EVERSION, TP_EUSAGE (a sample dataset: the message says so), -errno. */
TP_API int tp_tokens_open(tp_tokens **out, const char *path, tp_error *err);
TP_API void tp_tokens_close(tp_tokens *t); /* NULL allowed */

/* @return : whether `path` holds a token dataset (its manifest says so; not checked). */
TP_API bool tp_tokens_is(const char *path);

TP_API uint64_t tp_tokens_count(const tp_tokens *t);
TP_API uint64_t tp_tokens_document_count(const tp_tokens *t);
TP_API tp_dtype tp_tokens_dtype(const tp_tokens *t);
TP_API uint32_t tp_tokens_block(const tp_tokens *t);
TP_API uint64_t tp_tokens_max_id(const tp_tokens *t);   /* the largest id stored */
TP_API const unsigned char *tp_tokens_id(const tp_tokens *t);
TP_API const char *tp_tokens_source(const tp_tokens *t);
TP_API size_t tp_tokens_shard_count(const tp_tokens *t);
TP_API int tp_tokens_shard_info(const tp_tokens *t, size_t i, tp_tokens_shard *out);

/* Reads ids [first, first + n) into `dst` as `dst_dtype` (UINT16 only for uint16
 * datasets; UINT32, INT32, INT64), checking every block it touches. @return : 0,
 *           TP_EUSAGE (a range past the end), TP_ECORRUPT (the message names the shard
 *           and block), -errno. */
TP_API int tp_tokens_read(const tp_tokens *t, uint64_t first, uint64_t n, void *dst,
                          tp_dtype dst_dtype, tp_error *err);

/* The first id of document `d` (d == document count: the token count). */
TP_API uint64_t tp_tokens_document_start(const tp_tokens *t, uint64_t d);
/* The document holding id `token` (< the token count). O(log documents). */
TP_API uint64_t tp_tokens_document_of(const tp_tokens *t, uint64_t token);

/* Checks every block of every shard. @return : 0 or TP_ECORRUPT naming the first bad one;
 * *bad gets the number of bad blocks. */
TP_API int tp_tokens_verify(const tp_tokens *t, uint64_t *bad, tp_error *err);

#ifdef __cplusplus
}
#endif

#endif
