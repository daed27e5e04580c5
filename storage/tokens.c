/* Token shards (.tpt) and token datasets: the shard header, and the writer, which streams
 * documents into shards block by block, hashing each block as it fills. The reader is
 * tokens_reader.c, the manifest text tokens_manifest.c. */
#include "tokens_internal.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_SHARD_BYTES (256ull << 20)

/* ---- header */

void tp__tpt_header_encode(unsigned char out[TP_TPT_HEADER], const tp__tpt_header *h)
{
    memset(out, 0, TP_TPT_HEADER);
    memcpy(out, TP_TPT_MAGIC, 8);
    tp__put32(out + 8, TP_TOKENS_VERSION);
    tp__put32(out + 12, h->token_bytes);
    tp__put32(out + 16, h->block_tokens);
    tp__put64(out + 24, h->shard_index);
    tp__put64(out + 32, h->first_token);
    tp__put64(out + 40, h->tokens);
    tp__put64(out + 48, h->documents);
    tp__put64(out + 56, TP_TPT_DATA);
    tp__put64(out + 64, h->index_offset);
    tp__put64(out + 72, h->index_checksum);
    memcpy(out + 80, h->id, TP_DATASET_ID_BYTES);
    tp__put64(out + 120, tp__hash64(out, 120));
}

int tp__tpt_header_decode(const unsigned char in[TP_TPT_HEADER], tp__tpt_header *h,
                          tp_error *err, const char *what)
{
    if (memcmp(in, TP_TPT_MAGIC, 8))
        return tp__error_set(err, TP_ECORRUPT, "%s: not a token shard (bad magic)", what);
    if (tp__le32(in + 8) != TP_TOKENS_VERSION)
        return tp__error_set(err, TP_EVERSION, "%s: token shard version %u (this build reads "
                             "%d)", what, tp__le32(in + 8), TP_TOKENS_VERSION);
    if (tp__le64(in + 120) != tp__hash64(in, 120))
        return tp__error_set(err, TP_ECORRUPT, "%s: header checksum mismatch", what);
    *h = (tp__tpt_header){.token_bytes = tp__le32(in + 12), .block_tokens = tp__le32(in + 16),
                          .shard_index = tp__le64(in + 24), .first_token = tp__le64(in + 32),
                          .tokens = tp__le64(in + 40), .documents = tp__le64(in + 48),
                          .index_offset = tp__le64(in + 64),
                          .index_checksum = tp__le64(in + 72)};
    memcpy(h->id, in + 80, TP_DATASET_ID_BYTES);
    if (tp__le64(in + 56) != TP_TPT_DATA)
        return tp__error_set(err, TP_ECORRUPT, "%s: ids do not start at %u", what, TP_TPT_DATA);
    return 0;
}

/* ---- writer */

struct tp_tokens_writer {
    tp__staging st;
    tp__tokens_manifest m;
    uint64_t shard_bytes;
    unsigned token_bytes;
    uint64_t limit;            /* the largest id the dtype holds */
    /* the open shard */
    int fd;
    char *file;
    uint64_t tokens, *starts;  /* ids written; document starts (shard-local) */
    size_t nstarts, starts_cap;
    uint64_t *sums;
    size_t nsums, sums_cap;
    unsigned char *block;      /* the block being filled */
    uint32_t fill;             /* ids in it */
    bool failed, finished;
};

TP_API int tp_tokens_writer_create(tp_tokens_writer **out, const char *path,
                                   const tp_tokens_writer_options *o, tp_error *err)
{
    tp_tokens_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return tp__error_set(err, -ENOMEM, "out of memory");
    w->fd = -1;
    w->st.lock_fd = -1;
    tp__tokens_manifest *m = &w->m;
    m->dtype = o->dtype ? o->dtype : TP_DTYPE_UINT32;
    m->block_tokens = o->block_tokens ? o->block_tokens : TP_TOKENS_BLOCK_DEFAULT;
    w->shard_bytes = o->shard_bytes ? o->shard_bytes : DEFAULT_SHARD_BYTES;
    int rc = 0;
    if (m->dtype != TP_DTYPE_UINT16 && m->dtype != TP_DTYPE_UINT32)
        rc = tp__error_set(err, TP_EUSAGE, "token dtype %s: uint16 or uint32",
                           tp_dtype_name(m->dtype));
    else if (m->block_tokens < TP_TOKENS_BLOCK_MIN || m->block_tokens > TP_TOKENS_BLOCK_MAX)
        rc = tp__error_set(err, TP_EUSAGE, "block of %u ids: %u..%u", m->block_tokens,
                           TP_TOKENS_BLOCK_MIN, TP_TOKENS_BLOCK_MAX);
    w->token_bytes = (unsigned)tp_dtype_size(m->dtype);
    w->limit = m->dtype == TP_DTYPE_UINT16 ? UINT16_MAX : UINT32_MAX;
    if (rc == 0 && (!(m->source = strdup(o->source ? o->source : "")) ||
                    !(w->block = malloc((size_t)m->block_tokens * w->token_bytes))))
        rc = tp__error_set(err, -ENOMEM, "out of memory");
    if (rc == 0 && o->id)
        memcpy(m->id, o->id, TP_DATASET_ID_BYTES);
    else if (rc == 0 && getrandom(m->id, TP_DATASET_ID_BYTES, 0) != TP_DATASET_ID_BYTES)
        rc = tp__error_set(err, -errno, "getrandom: %s", strerror(errno));
    if (rc == 0)
        rc = tp__staging_open(&w->st, path, o->replace, err);
    if (rc < 0) {
        tp_tokens_writer_destroy(w);
        return rc;
    }
    *out = w;
    return 0;
}

static int fail(tp_tokens_writer *w, int rc)
{
    w->failed = true;
    return rc;
}

static int shard_open(tp_tokens_writer *w, tp_error *err)
{
    char name[32];
    snprintf(name, sizeof(name), "shard-%05zu.tpt", w->m.nshards);
    char *path = tp__path_join(w->st.dir, name);
    if (!path || !(w->file = strdup(name))) {
        free(path);
        return tp__error_set(err, -ENOMEM, "out of memory");
    }
    w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    int rc = w->fd < 0 ? -errno : 0;
    /* The header is written last, over these zeros. */
    if (rc == 0 && ftruncate(w->fd, TP_TPT_DATA) < 0)
        rc = -errno;
    if (rc == 0 && lseek(w->fd, TP_TPT_DATA, SEEK_SET) < 0)
        rc = -errno;
    if (rc < 0)
        tp__error_set(err, rc, "%s: %s", path, tp_strerror(rc));
    free(path);
    w->tokens = w->nstarts = w->nsums = w->fill = 0;
    return rc;
}

static int flush_block(tp_tokens_writer *w, tp_error *err)
{
    size_t bytes = (size_t)w->fill * w->token_bytes;
    TP_TRY(tp__grow((void **)&w->sums, &w->sums_cap, (w->nsums + 1) * sizeof(uint64_t)));
    w->sums[w->nsums++] = tp__hash64(w->block, bytes);
    int rc = tp__write_all(w->fd, w->block, bytes);
    if (rc < 0)
        return tp__error_set(err, rc, "writing %s/%s: %s", w->st.dir, w->file, tp_strerror(rc));
    w->fill = 0;
    return 0;
}

/* Writes the index (block checksums, document starts) and the header, then syncs. */
static int shard_close(tp_tokens_writer *w, tp_error *err)
{
    if (w->fill)
        TP_TRY(flush_block(w, err));
    uint64_t data_end = TP_TPT_DATA + w->tokens * w->token_bytes;
    uint64_t index_offset = (data_end + 7) & ~(uint64_t)7;
    size_t n = w->nsums + w->nstarts;
    unsigned char *index = malloc(n * 8 + 8);
    if (!index)
        return tp__error_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < w->nsums; i++)
        tp__put64(index + 8 * i, w->sums[i]);
    for (size_t i = 0; i < w->nstarts; i++)
        tp__put64(index + 8 * (w->nsums + i), w->starts[i]);
    tp__tpt_header h = {.token_bytes = w->token_bytes, .block_tokens = w->m.block_tokens,
                        .shard_index = w->m.nshards, .first_token = w->m.tokens,
                        .tokens = w->tokens, .documents = w->nstarts,
                        .index_offset = index_offset, .index_checksum = tp__hash64(index, n * 8)};
    memcpy(h.id, w->m.id, TP_DATASET_ID_BYTES);
    unsigned char head[TP_TPT_HEADER];
    tp__tpt_header_encode(head, &h);
    static const unsigned char zeros[8];
    int rc = tp__write_all(w->fd, zeros, index_offset - data_end);
    if (rc == 0)
        rc = tp__write_all(w->fd, index, n * 8);
    if (rc == 0)
        rc = tp__pwrite_all(w->fd, head, sizeof(head), 0);
    if (rc == 0 && fsync(w->fd) < 0)
        rc = -errno;
    if (close(w->fd) < 0 && rc == 0)
        rc = -errno;
    w->fd = -1;
    free(index);
    if (rc < 0)
        return tp__error_set(err, rc, "writing %s/%s: %s", w->st.dir, w->file, tp_strerror(rc));
    TP_TRY(tp__staging_upload(&w->st, w->file, NULL, err)); /* s3:// targets */
    tp__tokens_manifest *m = &w->m;
    rc = tp__grow((void **)&m->shards, &(size_t){m->nshards * sizeof(*m->shards)},
                  (m->nshards + 1) * sizeof(*m->shards));
    if (rc < 0)
        return tp__error_set(err, rc, "out of memory");
    m->shards[m->nshards++] = (tp__tokens_manifest_shard){
        .file = w->file, .first_token = m->tokens, .tokens = w->tokens,
        .first_document = m->documents, .documents = w->nstarts,
        .bytes = index_offset + n * 8};
    w->file = NULL;
    m->tokens += w->tokens;
    m->documents += w->nstarts;
    m->bytes += index_offset + n * 8;
    return 0;
}

static uint64_t id_at(const void *ids, tp_dtype src, uint64_t i, bool *negative)
{
    switch (src) {
    case TP_DTYPE_UINT16: return ((const uint16_t *)ids)[i];
    case TP_DTYPE_UINT32: return ((const uint32_t *)ids)[i];
    case TP_DTYPE_INT32: {
        int32_t v = ((const int32_t *)ids)[i];
        *negative = v < 0;
        return (uint64_t)(int64_t)v;
    }
    default: {
        int64_t v = ((const int64_t *)ids)[i];
        *negative = v < 0;
        return (uint64_t)v;
    }
    }
}

/* Checks ids before anything is written, so a refused piece leaves no trace. */
static int check_ids(const tp_tokens_writer *w, const void *ids, tp_dtype src, uint64_t n,
                     uint64_t *max, tp_error *err)
{
    if (w->failed || w->finished)
        return tp__error_set(err, TP_EUSAGE, "%s: writer already failed or finished",
                             w->st.path);
    if (src != TP_DTYPE_UINT16 && src != TP_DTYPE_UINT32 && src != TP_DTYPE_INT32 &&
        src != TP_DTYPE_INT64)
        return tp__error_set(err, TP_EUSAGE, "ids of dtype %s: uint16, uint32, int32 or int64",
                             tp_dtype_name(src));
    if (n == 0)
        return tp__error_set(err, TP_EUSAGE, "an empty document");
    *max = 0;
    for (uint64_t i = 0; i < n; i++) {
        bool negative = false;
        uint64_t v = id_at(ids, src, i, &negative);
        if (negative || v > w->limit)
            return tp__error_set(err, TP_EUSAGE, "token %" PRIu64 " of the document is %" PRId64
                                 ", outside %s's 0..%" PRIu64, i, (int64_t)v,
                                 tp_dtype_name(w->m.dtype), w->limit);
        *max = TP_MAX(*max, v);
    }
    return 0;
}

/* Writes checked ids into the open shard, block by block. */
static int put_ids(tp_tokens_writer *w, const void *ids, tp_dtype src, uint64_t n,
                   uint64_t max, tp_error *err)
{
    int rc;
    for (uint64_t i = 0; i < n; i++) {
        bool negative;
        uint64_t v = id_at(ids, src, i, &negative);
        unsigned char *p = w->block + (size_t)w->fill * w->token_bytes;
        if (w->token_bytes == 2)
            tp__put16(p, (uint16_t)v);
        else
            tp__put32(p, (uint32_t)v);
        if (++w->fill == w->m.block_tokens && (rc = flush_block(w, err)) < 0)
            return fail(w, rc);
    }
    w->tokens += n;
    w->m.max_id = TP_MAX(w->m.max_id, max);
    return 0;
}

TP_API int tp_tokens_writer_append(tp_tokens_writer *w, const void *ids, tp_dtype src,
                                   uint64_t n, tp_error *err)
{
    uint64_t max;
    TP_TRY(check_ids(w, ids, src, n, &max, err));
    int rc = 0;
    if (w->fd >= 0 && w->tokens * w->token_bytes >= w->shard_bytes)
        rc = shard_close(w, err);
    if (rc == 0 && w->fd < 0)
        rc = shard_open(w, err);
    size_t need = (w->nstarts + 1) * sizeof(uint64_t);
    if (rc == 0 && (rc = tp__grow((void **)&w->starts, &w->starts_cap, need)) < 0)
        tp__error_set(err, rc, "out of memory");
    if (rc < 0)
        return fail(w, rc);
    w->starts[w->nstarts++] = w->tokens;
    return put_ids(w, ids, src, n, max, err);
}

TP_API int tp_tokens_writer_extend(tp_tokens_writer *w, const void *ids, tp_dtype src,
                                   uint64_t n, tp_error *err)
{
    uint64_t max;
    TP_TRY(check_ids(w, ids, src, n, &max, err));
    if (w->fd < 0 || w->nstarts == 0)
        return tp__error_set(err, TP_EUSAGE, "%s: no document to extend yet", w->st.path);
    return put_ids(w, ids, src, n, max, err);
}

TP_API uint64_t tp_tokens_writer_tokens(const tp_tokens_writer *w)
{
    return w->m.tokens + (w->fd >= 0 ? w->tokens : 0);
}

TP_API uint64_t tp_tokens_writer_documents(const tp_tokens_writer *w)
{
    return w->m.documents + (w->fd >= 0 ? w->nstarts : 0);
}

TP_API int tp_tokens_writer_finish(tp_tokens_writer *w, tp_error *err)
{
    if (w->failed || w->finished)
        return tp__error_set(err, TP_EUSAGE, "%s: writer already failed or finished",
                             w->st.path);
    int rc = w->fd >= 0 ? shard_close(w, err) : 0;
    if (rc == 0 && w->m.tokens == 0)
        rc = tp__error_set(err, TP_EUSAGE, "%s: no documents to write", w->st.path);
    char *text = rc == 0 ? tp__tokens_manifest_dump(&w->m) : NULL;
    if (rc == 0 && !text)
        rc = tp__error_set(err, -ENOMEM, "out of memory");
    if (rc == 0)
        rc = tp__staging_write(&w->st, "manifest.json", text, strlen(text), err);
    free(text);
    if (rc == 0)
        rc = tp__staging_publish(&w->st, err);
    if (rc < 0)
        return fail(w, rc);
    w->finished = true;
    return 0;
}

TP_API void tp_tokens_writer_destroy(tp_tokens_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    tp__staging_close(&w->st, w->finished);
    tp__tokens_manifest_free(&w->m);
    free(w->file);
    free(w->starts);
    free(w->sums);
    free(w->block);
    free(w);
}
