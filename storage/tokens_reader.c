/* Reading token datasets (include/turbopump/tokens.h): every shard's header and index
 * checked on open, every block a read touches checked on the read, and what serving
 * windows needs (tokens_internal.h). */
#include "s3.h"
#include "tokens_internal.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_MANIFEST (256u << 20)

static uint64_t blocks_of(uint64_t tokens, uint32_t block)
{
    return tokens / block + (tokens % block != 0);
}

/* ---- reader */

typedef struct shard {
    char *path;
    int fd;                    /* -1 for an object */
    tp_s3_object *obj;
    uint64_t *sums;            /* block checksums */
    uint64_t nblocks;
} shard;

struct tp_tokens {
    char *path;
    tp__tokens_manifest m;
    unsigned token_bytes;
    shard *shards;
    uint64_t *starts;          /* documents + 1 global starts */
};

static int read_manifest(const char *path, char **text, size_t *len, tp_error *err)
{
    return tp__location_get(path, "manifest.json", MAX_MANIFEST, text, len, err);
}

/* Reads from a shard's file or object. */
static int shard_read(const shard *s, void *buf, size_t len, uint64_t off, tp_error *err)
{
    if (!s->obj)
        return tp__pread_all(s->fd, buf, len, off);
    struct iovec v = {.iov_base = buf, .iov_len = len};
    return tp_s3_read(s->obj, &v, 1, off, len, err);
}

TP_API bool tp_tokens_is(const char *path)
{
    char *text = NULL;
    size_t len;
    bool yes = false;
    if (read_manifest(path, &text, &len, NULL) == 0)
        yes = strstr(text, "\"format\": \"" TP_TOKENS_FORMAT "\"") != NULL;
    free(text);
    return yes;
}

static int load_manifest(tp_tokens *t, tp_error *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_manifest(t->path, &text, &len, err);
    if (rc == -ENOENT)
        rc = tp__error_set(err, TP_ENODATASET, "%s: not a dataset (no manifest.json)", t->path);
    else if (rc == 0 && (rc = tp__tokens_manifest_parse(text, len, &t->m, err)) < 0 && err) {
        char msg[sizeof(err->msg)];
        memcpy(msg, err->msg, sizeof(msg));
        snprintf(err->msg, sizeof(err->msg), "%.200s/%.300s", t->path, msg);
    }
    free(text);
    return rc;
}

/* Opens shard i and checks its header against the manifest, then reads its index. */
static int open_shard(tp_tokens *t, size_t i, tp_error *err)
{
    const tp__tokens_manifest_shard *ms = &t->m.shards[i];
    shard *s = &t->shards[i];
    if (!(s->path = tp__path_join(t->path, ms->file)))
        return tp__error_set(err, -ENOMEM, "out of memory");
    uint64_t size = 0;
    if (tp_s3_is_url(t->path)) { /* an object: its size, then ranged reads */
        TP_TRY(tp_s3_object_open(&s->obj, s->path, err));
        TP_TRY(tp_s3_head(s->obj, &size, err));
    } else {
        s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
        struct stat sb;
        if (s->fd < 0 || fstat(s->fd, &sb) < 0)
            return tp__error_set(err, -errno, "%s: %s", s->path, strerror(errno));
        if (!S_ISREG(sb.st_mode))
            return tp__error_set(err, TP_ECORRUPT, "%s: not a regular file", s->path);
        size = (uint64_t)sb.st_size;
    }
    if (size != ms->bytes)
        return tp__error_set(err, TP_ECORRUPT, "%s: %" PRIu64 " bytes, the manifest says %"
                             PRIu64, s->path, size, ms->bytes);
    unsigned char head[TP_TPT_HEADER];
    tp__tpt_header h;
    tp_error rerr = {0};
    int rc = ms->bytes < TP_TPT_DATA ? TP_ECORRUPT : shard_read(s, head, sizeof(head), 0, &rerr);
    if (rc < 0)
        return tp__error_set(err, rc, "%s: cannot read the header%s%s", s->path,
                             rerr.code ? ": " : "", rerr.msg);
    TP_TRY(tp__tpt_header_decode(head, &h, err, s->path));
    s->nblocks = blocks_of(ms->tokens, t->m.block_tokens);
    uint64_t data_end = TP_TPT_DATA + ms->tokens * t->token_bytes;
    uint64_t index_bytes = 8 * (s->nblocks + ms->documents);
    if (h.token_bytes != t->token_bytes || h.block_tokens != t->m.block_tokens ||
        h.shard_index != i || h.first_token != ms->first_token || h.tokens != ms->tokens ||
        h.documents != ms->documents || memcmp(h.id, t->m.id, TP_DATASET_ID_BYTES) ||
        h.index_offset != ((data_end + 7) & ~(uint64_t)7) ||
        h.index_offset + index_bytes != ms->bytes)
        return tp__error_set(err, TP_ECORRUPT, "%s: header disagrees with the manifest",
                             s->path);
    unsigned char *index = malloc(index_bytes);
    if (!index)
        return tp__error_set(err, -ENOMEM, "out of memory for the index of %s", s->path);
    rc = shard_read(s, index, index_bytes, h.index_offset, &rerr);
    if (rc == 0 && tp__hash64(index, index_bytes) != h.index_checksum)
        rc = tp__error_set(err, TP_ECORRUPT, "%s: index checksum mismatch", s->path);
    else if (rc < 0)
        rc = tp__error_set(err, rc, "%s: reading the index: %s", s->path, tp_strerror(rc));
    s->sums = rc == 0 ? malloc(s->nblocks * 8) : NULL;
    if (rc == 0 && !s->sums)
        rc = tp__error_set(err, -ENOMEM, "out of memory for the index of %s", s->path);
    for (uint64_t b = 0; rc == 0 && b < s->nblocks; b++)
        s->sums[b] = tp__le64(index + 8 * b);
    /* Document starts: the first at 0, strictly increasing, inside the shard. */
    uint64_t prev = 0;
    for (uint64_t d = 0; rc == 0 && d < ms->documents; d++) {
        uint64_t v = tp__le64(index + 8 * (s->nblocks + d));
        if ((d == 0 && v != 0) || (d > 0 && v <= prev) || v >= ms->tokens)
            rc = tp__error_set(err, TP_ECORRUPT, "%s: document %" PRIu64 " starts at %" PRIu64
                               ", out of order", s->path, d, v);
        t->starts[ms->first_document + d] = ms->first_token + v;
        prev = v;
    }
    free(index);
    return rc;
}

TP_API int tp_tokens_open(tp_tokens **out, const char *path, tp_error *err)
{
    tp_tokens *t = calloc(1, sizeof(*t));
    if (!t || !(t->path = strdup(path))) {
        free(t);
        return tp__error_set(err, -ENOMEM, "out of memory");
    }
    int rc = load_manifest(t, err);
    if (rc == 0) {
        t->token_bytes = (unsigned)tp_dtype_size(t->m.dtype);
        t->shards = calloc(t->m.nshards, sizeof(*t->shards));
        t->starts = malloc((t->m.documents + 1) * sizeof(uint64_t));
        if (!t->shards || !t->starts)
            rc = tp__error_set(err, -ENOMEM, "out of memory for %" PRIu64 " documents",
                               t->m.documents);
        for (size_t i = 0; t->shards && i < t->m.nshards; i++)
            t->shards[i].fd = -1;
    }
    for (size_t i = 0; rc == 0 && i < t->m.nshards; i++)
        rc = open_shard(t, i, err);
    if (rc == 0)
        t->starts[t->m.documents] = t->m.tokens;
    if (rc < 0) {
        tp_tokens_close(t);
        return rc;
    }
    *out = t;
    return 0;
}

TP_API void tp_tokens_close(tp_tokens *t)
{
    if (!t)
        return;
    for (size_t i = 0; t->shards && i < t->m.nshards; i++) {
        if (t->shards[i].fd >= 0)
            close(t->shards[i].fd);
        tp_s3_object_close(t->shards[i].obj);
        free(t->shards[i].path);
        free(t->shards[i].sums);
    }
    free(t->shards);
    free(t->starts);
    tp__tokens_manifest_free(&t->m);
    free(t->path);
    free(t);
}

TP_API uint64_t tp_tokens_count(const tp_tokens *t) { return t->m.tokens; }
TP_API uint64_t tp_tokens_document_count(const tp_tokens *t) { return t->m.documents; }
TP_API tp_dtype tp_tokens_dtype(const tp_tokens *t) { return t->m.dtype; }
TP_API uint32_t tp_tokens_block(const tp_tokens *t) { return t->m.block_tokens; }
TP_API uint64_t tp_tokens_max_id(const tp_tokens *t) { return t->m.max_id; }
TP_API const unsigned char *tp_tokens_id(const tp_tokens *t) { return t->m.id; }
TP_API const char *tp_tokens_source(const tp_tokens *t) { return t->m.source; }
TP_API size_t tp_tokens_shard_count(const tp_tokens *t) { return t->m.nshards; }
const uint64_t *tp__tokens_starts(const tp_tokens *t) { return t->starts; }
const char *tp__tokens_path(const tp_tokens *t) { return t->path; }

TP_API int tp_tokens_shard_info(const tp_tokens *t, size_t i, tp_tokens_shard *out)
{
    if (i >= t->m.nshards)
        return TP_EUSAGE;
    const tp__tokens_manifest_shard *ms = &t->m.shards[i];
    *out = (tp_tokens_shard){.path = t->shards[i].path, .fd = t->shards[i].fd,
                                  .object = t->shards[i].obj,
                                  .first_token = ms->first_token, .tokens = ms->tokens,
                                  .first_document = ms->first_document,
                                  .documents = ms->documents, .bytes = ms->bytes,
                                  .data_offset = TP_TPT_DATA};
    return 0;
}

/* The last index i with v[i] <= x, for v[0] <= x. */
static uint64_t last_at_most(const uint64_t *v, uint64_t n, uint64_t x)
{
    uint64_t lo = 0, hi = n; /* v[lo] <= x < v[hi] (v[n] = +inf) */
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (v[mid] <= x)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static size_t shard_of(const tp_tokens *t, uint64_t token)
{
    size_t lo = 0, hi = t->m.nshards;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->m.shards[mid].first_token <= token)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

TP_API uint64_t tp_tokens_document_start(const tp_tokens *t, uint64_t d)
{
    return t->starts[TP_MIN(d, t->m.documents)];
}

TP_API uint64_t tp_tokens_document_of(const tp_tokens *t, uint64_t token)
{
    return last_at_most(t->starts, t->m.documents, token);
}

void tp__tokens_span_of(const tp_tokens *t, uint64_t first, uint64_t n, tp__tokens_span *out)
{
    size_t s = shard_of(t, first);
    const tp__tokens_manifest_shard *ms = &t->m.shards[s];
    uint64_t local = first - ms->first_token, bt = t->m.block_tokens;
    n = TP_MIN(n, ms->tokens - local);
    uint64_t b0 = local / bt, b1 = (local + n - 1) / bt; /* inclusive */
    uint64_t end = TP_MIN((b1 + 1) * bt, ms->tokens);
    *out = (tp__tokens_span){.shard = (uint32_t)s,
                             .offset = TP_TPT_DATA + b0 * bt * t->token_bytes,
                             .length = (end - b0 * bt) * t->token_bytes,
                             .first_block = b0, .nblocks = (uint32_t)(b1 - b0 + 1),
                             .skip = local - b0 * bt, .n = n};
}

int tp__tokens_check_span(const tp_tokens *t, const tp__tokens_span *sp,
                          const unsigned char *data, tp_error *err)
{
    const shard *s = &t->shards[sp->shard];
    uint64_t block_bytes = (uint64_t)t->m.block_tokens * t->token_bytes, at = 0;
    for (uint32_t i = 0; i < sp->nblocks; i++) {
        uint64_t len = TP_MIN(block_bytes, sp->length - at);
        if (tp__hash64(data + at, len) != s->sums[sp->first_block + i])
            return tp__error_set(err, TP_ECORRUPT, "%s: block %" PRIu64 " (ids %" PRIu64
                                 "..%" PRIu64 " of the dataset): checksum mismatch", s->path,
                                 sp->first_block + i,
                                 t->m.shards[sp->shard].first_token +
                                     (sp->first_block + i) * t->m.block_tokens,
                                 t->m.shards[sp->shard].first_token +
                                     (sp->first_block + i) * t->m.block_tokens + len /
                                     t->token_bytes - 1);
        at += len;
    }
    return 0;
}

void tp__tokens_convert(const unsigned char *src, unsigned token_bytes, uint64_t n, void *dst,
                        tp_dtype to)
{
    /* The hot loop of window delivery: one widening per case, which compilers vectorise.
     * Stored ids are little-endian, as is every host we build for. */
    if (token_bytes == 2) {
        const uint16_t *s = (const uint16_t *)(const void *)src;
        if (to == TP_DTYPE_INT64)
            for (uint64_t i = 0; i < n; i++)
                ((int64_t *)dst)[i] = s[i];
        else if (to == TP_DTYPE_INT32 || to == TP_DTYPE_UINT32)
            for (uint64_t i = 0; i < n; i++)
                ((uint32_t *)dst)[i] = s[i];
        else
            memcpy(dst, s, n * 2);
    } else {
        const uint32_t *s = (const uint32_t *)(const void *)src;
        if (to == TP_DTYPE_INT64)
            for (uint64_t i = 0; i < n; i++)
                ((int64_t *)dst)[i] = s[i];
        else
            memcpy(dst, s, n * 4);
    }
}

TP_API int tp_tokens_read(const tp_tokens *t, uint64_t first, uint64_t n, void *dst,
                          tp_dtype dst_dtype, tp_error *err)
{
    if (first > t->m.tokens || n > t->m.tokens - first)
        return tp__error_set(err, TP_EUSAGE, "ids %" PRIu64 "+%" PRIu64 " past the dataset's %"
                             PRIu64, first, n, t->m.tokens);
    bool ok = dst_dtype == TP_DTYPE_INT64 || dst_dtype == TP_DTYPE_INT32 ||
              dst_dtype == TP_DTYPE_UINT32 ||
              (dst_dtype == TP_DTYPE_UINT16 && t->m.dtype == TP_DTYPE_UINT16);
    if (!ok)
        return tp__error_set(err, TP_EUSAGE, "cannot read %s ids as %s",
                             tp_dtype_name(t->m.dtype), tp_dtype_name(dst_dtype));
    if (dst_dtype == TP_DTYPE_INT32 && t->m.max_id > INT32_MAX)
        return tp__error_set(err, TP_EUSAGE, "ids up to %" PRIu64 " do not fit int32",
                             t->m.max_id);
    unsigned char *buf = NULL;
    size_t cap = 0, out_size = tp_dtype_size(dst_dtype);
    int rc = 0;
    while (n > 0 && rc == 0) {
        tp__tokens_span sp;
        tp__tokens_span_of(t, first, n, &sp);
        if ((rc = tp__grow((void **)&buf, &cap, sp.length)) < 0) {
            rc = tp__error_set(err, rc, "out of memory");
            break;
        }
        tp_error rerr = {0};
        rc = shard_read(&t->shards[sp.shard], buf, sp.length, sp.offset, &rerr);
        if (rc < 0) {
            rc = tp__error_set(err, rc, "%s: %s", t->shards[sp.shard].path,
                               rerr.code ? rerr.msg : tp_strerror(rc));
            break;
        }
        if ((rc = tp__tokens_check_span(t, &sp, buf, err)) < 0)
            break;
        tp__tokens_convert(buf + sp.skip * t->token_bytes, t->token_bytes, sp.n, dst, dst_dtype);
        dst = (unsigned char *)dst + sp.n * out_size;
        first += sp.n;
        n -= sp.n;
    }
    free(buf);
    return rc;
}

TP_API int tp_tokens_verify(const tp_tokens *t, uint64_t *bad, tp_error *err)
{
    uint64_t nbad = 0, step = (uint64_t)t->m.block_tokens * 256;
    unsigned char *buf = NULL;
    size_t cap = 0;
    int first_rc = 0;
    for (uint64_t at = 0; at < t->m.tokens;) {
        tp__tokens_span sp;
        tp__tokens_span_of(t, at, step, &sp);
        if (tp__grow((void **)&buf, &cap, sp.length) < 0) {
            free(buf);
            return tp__error_set(err, -ENOMEM, "out of memory");
        }
        tp_error rerr = {0};
        int rc = shard_read(&t->shards[sp.shard], buf, sp.length, sp.offset, &rerr);
        if (rc < 0) {
            free(buf);
            return tp__error_set(err, rc, "%s: %s", t->shards[sp.shard].path,
                                 rerr.code ? rerr.msg : tp_strerror(rc));
        }
        /* Block by block, so every bad block is counted and the first one named. */
        uint64_t block_bytes = (uint64_t)t->m.block_tokens * t->token_bytes;
        for (uint32_t i = 0; i < sp.nblocks; i++) {
            tp__tokens_span one = sp;
            one.first_block = sp.first_block + i;
            one.nblocks = 1;
            one.length = TP_MIN(block_bytes, sp.length - i * block_bytes);
            tp_error e = {0};
            if (tp__tokens_check_span(t, &one, buf + i * block_bytes, &e) < 0) {
                if (!nbad++ && err)
                    *err = e;
                first_rc = TP_ECORRUPT;
            }
        }
        at += sp.n;
    }
    free(buf);
    if (bad)
        *bad = nbad;
    return first_rc;
}
