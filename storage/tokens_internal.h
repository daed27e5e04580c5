/* Token datasets inside the storage module and for the daemon: the manifest (its own
 * format, "turbopump-tokens"), the shard layout, and what serving windows needs beyond the
 * public API (where a run of ids lies on disk, checking blocks read elsewhere, and the
 * conversion of stored ids into output dtypes). Layout in docs/FORMAT.md. */
#ifndef TP_TOKENS_INTERNAL_H
#define TP_TOKENS_INTERNAL_H

#include <turbopump/tokens.h>

#include "storage.h"

#define TP_TOKENS_VERSION 1
#define TP_TPT_MAGIC "TPTOKEN1"
#define TP_TPT_HEADER 128       /* meaningful bytes of the header */
#define TP_TPT_DATA 4096u       /* where the ids start: page aligned */

typedef struct tp__tokens_manifest_shard {
    char *file;
    uint64_t first_token, tokens;
    uint64_t first_document, documents;
    uint64_t bytes;
} tp__tokens_manifest_shard;

typedef struct tp__tokens_manifest {
    unsigned char id[TP_DATASET_ID_BYTES];
    tp_dtype dtype;
    uint32_t block_tokens;
    uint64_t tokens, documents, bytes, max_id;
    char *source;
    size_t nshards;
    tp__tokens_manifest_shard *shards;
} tp__tokens_manifest;

/* @return : malloc'd manifest text with its checksum, or NULL. */
char *tp__tokens_manifest_dump(const tp__tokens_manifest *m);
/* Parses and cross-checks manifest text. @return : 0, TP_ECORRUPT, TP_EVERSION, TP_EUSAGE
 *           (a sample dataset's manifest), -ENOMEM. */
int tp__tokens_manifest_parse(const char *text, size_t len, tp__tokens_manifest *m,
                              tp_error *err);
void tp__tokens_manifest_free(tp__tokens_manifest *m);

/* The header of a .tpt shard, bytes [0, TP_TPT_HEADER). */
typedef struct tp__tpt_header {
    uint32_t token_bytes, block_tokens;
    uint64_t shard_index, first_token, tokens, documents;
    uint64_t index_offset, index_checksum;
    unsigned char id[TP_DATASET_ID_BYTES];
} tp__tpt_header;

void tp__tpt_header_encode(unsigned char out[TP_TPT_HEADER], const tp__tpt_header *h);
/* Checks magic, version and checksum. @return : 0, TP_ECORRUPT, TP_EVERSION. */
int tp__tpt_header_decode(const unsigned char in[TP_TPT_HEADER], tp__tpt_header *h,
                          tp_error *err, const char *what);

/* Where a run of ids of one shard lies: the whole blocks holding it. */
typedef struct tp__tokens_span {
    uint32_t shard;
    uint64_t offset, length;   /* in the shard's file: whole blocks */
    uint64_t first_block;      /* shard-local */
    uint32_t nblocks;
    uint64_t skip;             /* ids of the first block before the run */
    uint64_t n;                /* ids of the run inside this shard */
} tp__tokens_span;

/* The span of [first, first + n) that lies in the shard holding `first` (n clipped at its
 * end: out->n says how many). first < count, n >= 1. */
void tp__tokens_span_of(const tp_tokens *t, uint64_t first, uint64_t n, tp__tokens_span *out);

/* Checks the span's blocks, read into `data` (length bytes). @return : 0 or TP_ECORRUPT
 *           naming the shard and block. */
int tp__tokens_check_span(const tp_tokens *t, const tp__tokens_span *sp,
                          const unsigned char *data, tp_error *err);

/* Converts `n` stored ids (token_bytes 2 or 4, little-endian) to `to` (UINT16, UINT32,
 * INT32, INT64). */
void tp__tokens_convert(const unsigned char *src, unsigned token_bytes, uint64_t n, void *dst,
                        tp_dtype to);

/* The global start of every document, and the token count after the last:
 * document_count + 1 values, strictly increasing. */
const uint64_t *tp__tokens_starts(const tp_tokens *t);
const char *tp__tokens_path(const tp_tokens *t);

#endif
