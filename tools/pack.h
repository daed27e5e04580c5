/* What `turbopump pack` (cmd_pack.c) shares with pack_values.c: its options, the slots
 * samples pass through and the job the workers share. */
#ifndef TP_TOOLS_PACK_H
#define TP_TOOLS_PACK_H

#include "cli.h"
#include "codecs.h"
#include "source.h"
#include "storage.h"

#include <pthread.h>

#define MAX_INPUT TP_SOURCE_MAX_VALUE
#define TP_PACK_SEEK_COLUMNS 2 /* --jpeg-seek's default MCUs per restart segment */

typedef struct pack_options {
    const char *src, *dst, *input;
    const char *fields[TP_SOURCE_MAX_FIELDS];
    size_t nfields;
    char *fields_arg;
    tp_shard_format format;
    uint64_t jobs, shard_bytes, align, zstd, dict_size;
    uint64_t part, parts;    /* --part I/N; parts 0: the whole input */
    uint64_t jpeg_seek;      /* --jpeg-seek: MCUs per restart segment; 0: off */
    bool strict, force, quiet, dict;
} pack_options;

/* One sample's outcome, produced by a worker and consumed in order by the writer. */
typedef struct slot {
    bool ready;
    tp_source_sample sample;
    unsigned char *rec;  /* encoded record, or NULL when the sample is skipped */
    uint64_t len, checksum, src_bytes;
    uint64_t seek_in, seek_out;  /* --jpeg-seek: bytes of the JPEGs re-encoded, before/after */
    uint32_t seek_done, seek_kept; /* JPEGs re-encoded; JPEGs kept as they were */
    char why[sizeof(((tp_error *)0)->msg)];
} slot;

typedef struct pack_job {
    const pack_options *o;
    tp_source *src;
    tp_zstd_dict *dict;      /* trained dictionary (--zstd-dict), shared read-only */
    unsigned char *dict_bytes;
    size_t dict_len;
    slot *slots;
    size_t window;
    size_t next_claim;   /* index of the next sample a worker takes */
    size_t next_write;   /* next sample the writer appends */
    bool stop, ended;    /* ended: the source has no more; `total` samples came */
    size_t total;
    int src_rc;          /* the source's failure, if it failed */
    tp_error src_err;
    pthread_mutex_t mu;
    pthread_cond_t ready, space;
} pack_job;

/* Reads, checks and encodes one sample's values into its slot's record (rec stays NULL
 * and `why` says why when the sample is left out). Thread-safe. */
void tp__pack_process(const pack_job *j, tp_zstd *z, slot *s);

#endif
