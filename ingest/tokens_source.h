/* Pre-tokenized inputs that `turbopump pack --tokens` reads, behind one small interface: a
 * token source is a deterministic iterator of documents, each a run of token ids, over
 * the input files in sorted path order. A document comes as one or more pieces (a token
 * stream without separators can be one document of gigabytes, and nothing here holds a
 * whole file); every id of a piece is already checked against the source's largest id.
 *
 *   tokens_jsonl.c     JSON Lines, one document per line: a list of integer ids in one
 *                      member, parsed on several threads; a bad line is reported through
 *                      the warn callback and left out
 *   tokens_bin.c       raw little-endian uint16/uint32 streams (.bin), read in large
 *                      chunks; documents end at a separator id (kept), or each file is one
 *   tokens_npy.c       1-D .npy arrays of uint16, uint32, int32 or int64 ids: streams as
 *                      above
 *   tokens_megatron.c  Megatron-LM indexed datasets (PREFIX.bin + PREFIX.idx, "MMIDIDX"):
 *                      documents as the index groups its sequences
 *
 * Ids that do not fit (negative, or above the largest id) are bad lines in JSON Lines and
 * errors for the input as a whole in the binary formats, where they mean a wrong
 * --dtype or vocabulary. Empty documents are counted and left out. */
#ifndef TP_INGEST_TOKENS_SOURCE_H
#define TP_INGEST_TOKENS_SOURCE_H

#include "source.h"

#define TP_TOKEN_PIECE_MAX (4u << 20)   /* ids per piece at most */

typedef struct tp_token_source_options {
    const char *field;          /* the JSON Lines member of the ids; NULL: "input_ids" */
    bool has_separator;         /* streams: documents end at `separator` (kept in them) */
    uint32_t separator;
    tp_dtype bin_dtype;         /* raw .bin streams: UINT16 or UINT32; NONE: not given */
    uint64_t max_id;            /* ids above are errors (0: UINT32_MAX) */
    bool jsonl_only;            /* read only the JSON Lines inputs (the largest-id pass) */
    unsigned jobs;              /* threads parsing JSON Lines (0: 1) */
    tp_source_warn warn;        /* told of each bad line; NULL: left out silently */
    void *warn_ctx;
} tp_token_source_options;

/* One piece of a document: `n` >= 1 ids, valid until the next call. */
typedef struct tp_token_piece {
    const uint32_t *ids;
    uint64_t n;
    bool first;                 /* begins a document (else continues the last one) */
    const char *where;          /* the input file, for messages */
} tp_token_piece;

typedef struct tp_token_source tp_token_source;

/* What a source found out about its input, for choices and the summary. */
typedef struct tp_token_source_info {
    size_t nfiles;              /* inputs: a Megatron pair counts once */
    bool has_jsonl;
    /* the widest dtype of the binary inputs: UINT16 (8- and 16-bit inputs), UINT32
     * (32- and 64-bit ones), NONE (no binary input) */
    tp_dtype binary_dtype;
    uint64_t bytes_total;       /* input bytes (for progress) */
    uint64_t bytes_done;        /* of them, consumed so far */
    uint64_t empty;             /* empty documents left out */
    uint64_t skipped;           /* bad lines left out */
    uint64_t listing_hash;      /* digest of the inputs' paths, kinds and sizes */
    const char *location;       /* what a manifest records as the source */
} tp_token_source_info;

/* Opens the inputs named by `specs`: files, directories (their .jsonl, .ndjson, .npy,
 * .bin and .idx files), globs and brace lists as tp__files_expand takes them; a Megatron
 * dataset by PREFIX, PREFIX.idx or PREFIX.bin (a .bin with an .idx beside it). Reads
 * every header (.npy, Megatron index) before returning. @return : 0 or an error
 * (TP_EUSAGE: an input of no known kind, a raw .bin without bin_dtype, a bad header). */
int tp_token_source_open(const char *const *specs, size_t nspecs,
                         const tp_token_source_options *o, tp_token_source **out,
                         tp_error *err);
/* The next piece. @return : 1, 0 at the end, TP_SOURCE_STOPPED once the warn callback
 * asked to stop, or an error for the input as a whole (`err` names file and position). */
int tp_token_source_next(tp_token_source *s, tp_token_piece *out, tp_error *err);
const tp_token_source_info *tp_token_source_info_of(const tp_token_source *s);
void tp_token_source_close(tp_token_source *s); /* NULL allowed */

/* ---- for the readers */

/* One input file being read; `next` as tp_token_source_next, for this file. */
typedef struct tp__token_reader tp__token_reader;
struct tp__token_reader {
    int (*next)(tp__token_reader *r, tp_token_piece *out, tp_error *err);
    void (*close)(tp__token_reader *r);
    const char *path;
    tp_token_source_info *info;     /* the source's: bytes_done, empty, skipped */
    const tp_token_source_options *o;
};

/* Converts `n` little-endian ids of `dtype` (UINT8, INT8, UINT16, INT16, UINT32, INT32,
 * INT64) to uint32, checking each against `max_id`. @return : n, or the index of the
 * first id that does not fit (its value in *bad). */
size_t tp__token_widen(const unsigned char *src, tp_dtype dtype, size_t n, uint64_t max_id,
                       uint32_t *dst, int64_t *bad);
/* The error for an id that does not fit: names the file, the id's position in it and
 * the limit. @return : TP_EUSAGE. */
int tp__token_bad_id(tp_error *err, const char *path, uint64_t pos, int64_t v,
                     uint64_t max_id);

/* A stream of `bytes` bytes of ids of `dtype` (UINT16, UINT32, INT32, INT64) at `offset` of
 * the open file `fd` (owned by the reader from now on, closed by it even on failure). */
int tp__token_stream_open(const char *path, int fd, uint64_t offset, uint64_t bytes,
                          tp_dtype dtype, tp__token_reader **out, tp_error *err);
int tp__token_npy_open(const char *path, tp__token_reader **out, tp_error *err);
/* The dtype of a token .npy (its header only, checked). @return : 0 or TP_EUSAGE. */
int tp__token_npy_dtype(const char *path, tp_dtype *out, tp_error *err);
int tp__token_bin_open(const char *path, tp_dtype dtype, tp__token_reader **out,
                       tp_error *err);
int tp__token_jsonl_open(const char *path, tp__token_reader **out, tp_error *err);
/* `prefix`.idx and `prefix`.bin. */
int tp__token_megatron_open(const char *prefix, tp__token_reader **out, tp_error *err);
/* The input dtype of a Megatron index (its header only), for tp_token_source_info.
 * @return : 0 or TP_ECORRUPT. */
int tp__token_megatron_dtype(const char *prefix, tp_dtype *out, tp_error *err);

/* ---- the parsers of untrusted bytes, also the fuzz targets' entries */

/* Parses one JSON Lines line: the integer list in member `field`, each id in
 * 0..max_id, into *ids (a buffer of *cap bytes, grown as needed). @return : 1 with *n ids
 * (0 for an empty list), 0 for a blank line, TP_EUSAGE with the cause in `why` (without
 * the file and line), or -ENOMEM. */
int tp__token_jsonl_parse(const char *line, size_t len, const char *field, uint64_t max_id,
                          uint32_t **ids, size_t *cap, uint64_t *n, char *why,
                          size_t why_len);

/* A checked Megatron index over the .idx bytes (borrowed, mapped or in memory). */
typedef struct tp__megatron_index {
    tp_dtype dtype;             /* of the .bin's ids */
    unsigned itemsize;
    uint64_t sequences, documents;  /* documents: the index has documents + 1 entries */
    const unsigned char *lengths;   /* int32 x sequences */
    const unsigned char *pointers;  /* int64 x sequences, byte offsets into the .bin */
    const unsigned char *doc_index; /* int64 x (documents + 1): first sequence of each */
} tp__megatron_index;

/* Parses and bounds an .idx of `len` bytes for a .bin of `bin_bytes`: magic, version 1,
 * an integer dtype, counts that fit the file, every sequence inside the .bin, document
 * indices from 0 to the sequence count, never decreasing. @return : 0 or TP_ECORRUPT. */
int tp__megatron_index_parse(const void *idx, size_t len, uint64_t bin_bytes,
                             tp__megatron_index *out, tp_error *err);
/* Sequence `i`'s length (ids) and byte offset; document `d`'s first sequence. */
uint64_t tp__megatron_length(const tp__megatron_index *x, uint64_t i);
uint64_t tp__megatron_pointer(const tp__megatron_index *x, uint64_t i);
uint64_t tp__megatron_first(const tp__megatron_index *x, uint64_t d);

#endif
