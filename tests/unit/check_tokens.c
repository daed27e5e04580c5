/* Unit tests of token datasets (storage/tokens.c, tokens_manifest.c): the writer and
 * reader round trip for both dtypes over many shards and blocks, documents written in
 * pieces, document starts and document_of at shard edges, reads across shard boundaries
 * into every output dtype, refusals that leave no trace, detection of flipped bytes in
 * blocks, indexes, headers and manifests, truncation, atomic publication, and the golden
 * dataset that pins the on-disk format. */
#include "testutil.h"

#include "tokens_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* The configurations every round trip runs under. */
typedef struct config {
    const char *name;
    tp_dtype dtype;
    uint64_t limit;       /* the largest id */
} config;

static const config configs[] = {
    {"uint16", TP_DTYPE_UINT16, UINT16_MAX},
    {"uint32", TP_DTYPE_UINT32, UINT32_MAX},
};

#define NDOCS 300
#define SHARD_BYTES 4000
#define BLOCK 256

static const tp_dtype sources[] = {TP_DTYPE_UINT16, TP_DTYPE_UINT32, TP_DTYPE_INT32,
                                   TP_DTYPE_INT64};

/* Document d's length: 1 to 900 ids, some longer than a block or a shard. */
static uint64_t doc_len(uint64_t d) { return d % 37 == 5 ? 2500 : 1 + (d * 7919) % 900; }

/* The largest id document d may hold as its source dtype into the dataset's. */
static uint64_t doc_limit(const config *c, uint64_t d)
{
    tp_dtype src = sources[d % 4];
    uint64_t lim = src == TP_DTYPE_UINT16 ? UINT16_MAX : src == TP_DTYPE_INT32 ? INT32_MAX
                                                                               : UINT32_MAX;
    return TP_MIN(lim, c->limit);
}

static uint32_t id_of(const config *c, uint64_t d, uint64_t i)
{
    uint64_t x = (d + 1) * UINT64_C(0x9e3779b97f4a7c15) + i * UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 29;
    uint64_t lim = doc_limit(c, d);
    return (uint32_t)(lim == UINT32_MAX ? x & UINT32_MAX : x % (lim + 1));
}

/* Document d's ids as its source dtype, into a malloc'd buffer. */
static void *doc_ids(const config *c, uint64_t d)
{
    uint64_t n = doc_len(d);
    tp_dtype src = sources[d % 4];
    void *p = malloc(n * tp_dtype_size(src));
    ck_assert_ptr_nonnull(p);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t v = id_of(c, d, i);
        if (src == TP_DTYPE_UINT16)
            ((uint16_t *)p)[i] = (uint16_t)v;
        else if (src == TP_DTYPE_UINT32)
            ((uint32_t *)p)[i] = v;
        else if (src == TP_DTYPE_INT32)
            ((int32_t *)p)[i] = (int32_t)v;
        else
            ((int64_t *)p)[i] = v;
    }
    return p;
}

/* Writes NDOCS documents; starts[d] gets document d's first id (starts[NDOCS]: the count). */
static void write_tokens(const char *path, const config *c, uint64_t *starts)
{
    tp_tokens_writer_options o = {.dtype = c->dtype, .shard_bytes = SHARD_BYTES,
                                  .block_tokens = BLOCK, .source = "unit test"};
    tp_tokens_writer *w;
    tp_error err = {0};
    ck_assert_msg(tp_tokens_writer_create(&w, path, &o, &err) == 0, "%s", err.msg);
    uint64_t at = 0;
    for (uint64_t d = 0; d < NDOCS; d++) {
        void *ids = doc_ids(c, d);
        starts[d] = at;
        ck_assert_msg(tp_tokens_writer_append(w, ids, sources[d % 4], doc_len(d), &err) == 0,
                      "%s", err.msg);
        at += doc_len(d);
        free(ids);
    }
    starts[NDOCS] = at;
    ck_assert_uint_eq(tp_tokens_writer_tokens(w), at);
    ck_assert_uint_eq(tp_tokens_writer_documents(w), NDOCS);
    ck_assert_msg(tp_tokens_writer_finish(w, &err) == 0, "%s", err.msg);
    tp_tokens_writer_destroy(w);
}

/* Every id in dataset order, as written. */
static uint32_t *all_ids(const config *c, uint64_t total)
{
    uint32_t *want = malloc(total * sizeof(uint32_t));
    ck_assert_ptr_nonnull(want);
    uint64_t at = 0;
    for (uint64_t d = 0; d < NDOCS; d++)
        for (uint64_t i = 0; i < doc_len(d); i++)
            want[at++] = id_of(c, d, i);
    ck_assert_uint_eq(at, total);
    return want;
}

static tp_tokens *open_ok(const char *path)
{
    tp_tokens *t;
    tp_error err = {0};
    ck_assert_msg(tp_tokens_open(&t, path, &err) == 0, "%s", err.msg);
    return t;
}

/* Reads [first, first + n) as `as` and compares with want. */
static void check_read(const tp_tokens *t, const uint32_t *want, uint64_t first, uint64_t n,
                       tp_dtype as)
{
    void *buf = malloc(n * 8 + 8);
    tp_error err = {0};
    ck_assert_msg(tp_tokens_read(t, first, n, buf, as, &err) == 0, "%s", err.msg);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t got = as == TP_DTYPE_INT64    ? (uint64_t)((int64_t *)buf)[i]
                     : as == TP_DTYPE_UINT16 ? ((uint16_t *)buf)[i]
                                             : ((uint32_t *)buf)[i];
        ck_assert_msg(got == want[first + i], "id %llu read as %s: %llu, written %u",
                      (unsigned long long)(first + i), tp_dtype_name(as),
                      (unsigned long long)got, want[first + i]);
    }
    free(buf);
}

START_TEST(test_roundtrip)
{
    const config *c = &configs[_i];
    char *dir = tp_test_mkdtemp(), *path = tp_test_path(dir, "ds");
    uint64_t starts[NDOCS + 1];
    write_tokens(path, c, starts);
    ck_assert(tp_tokens_is(path));
    tp_tokens *t = open_ok(path);
    uint64_t total = starts[NDOCS];
    uint32_t *want = all_ids(c, total);
    ck_assert_uint_eq(tp_tokens_count(t), total);
    ck_assert_uint_eq(tp_tokens_document_count(t), NDOCS);
    ck_assert_int_eq(tp_tokens_dtype(t), c->dtype);
    ck_assert_uint_eq(tp_tokens_block(t), BLOCK);
    ck_assert_str_eq(tp_tokens_source(t), "unit test");
    uint64_t max = 0;
    for (uint64_t i = 0; i < total; i++)
        max = TP_MAX(max, want[i]);
    ck_assert_uint_eq(tp_tokens_max_id(t), max);
    ck_assert_uint_gt(tp_tokens_shard_count(t), 20);
    /* every document's start, and the document of the ids around it */
    for (uint64_t d = 0; d <= NDOCS; d++) {
        ck_assert_uint_eq(tp_tokens_document_start(t, d), starts[d]);
        if (d < NDOCS) {
            ck_assert_uint_eq(tp_tokens_document_of(t, starts[d]), d);
            ck_assert_uint_eq(tp_tokens_document_of(t, starts[d + 1] - 1), d);
        }
    }
    check_read(t, want, 0, total, TP_DTYPE_INT64);
    check_read(t, want, 0, total, TP_DTYPE_UINT32);
    if (c->dtype == TP_DTYPE_UINT16) {
        check_read(t, want, 0, total, TP_DTYPE_UINT16);
        check_read(t, want, 0, total, TP_DTYPE_INT32);
    }
    /* shard edges: documents never span one, and reads run across them */
    uint64_t next_first = 0, next_doc = 0;
    for (size_t i = 0; i < tp_tokens_shard_count(t); i++) {
        tp_tokens_shard si;
        ck_assert_int_eq(tp_tokens_shard_info(t, i, &si), 0);
        ck_assert_uint_eq(si.first_token, next_first);
        ck_assert_uint_eq(si.first_document, next_doc);
        ck_assert_uint_eq(tp_tokens_document_start(t, si.first_document), si.first_token);
        ck_assert_uint_eq(tp_tokens_document_of(t, si.first_token), si.first_document);
        ck_assert_uint_eq(si.data_offset, TP_TPT_DATA);
        ck_assert_uint_eq(si.bytes, tp_test_file_size(si.path));
        if (i > 0) {
            ck_assert_uint_eq(tp_tokens_document_of(t, si.first_token - 1),
                              si.first_document - 1);
            uint64_t from = si.first_token - TP_MIN(si.first_token, 300);
            check_read(t, want, from, TP_MIN(600, total - from), TP_DTYPE_INT64);
            check_read(t, want, si.first_token - 1, 2, TP_DTYPE_UINT32);
        }
        next_first += si.tokens;
        next_doc += si.documents;
    }
    ck_assert_uint_eq(next_first, total);
    ck_assert_int_eq(tp_tokens_shard_info(t, tp_tokens_shard_count(t), &(tp_tokens_shard){0}),
                     TP_EUSAGE);
    /* single ids at block edges, and the refusals of read */
    for (uint64_t at = BLOCK - 1; at < total; at += BLOCK * 7)
        check_read(t, want, at, 2 < total - at ? 2 : total - at, TP_DTYPE_INT64);
    int64_t one;
    tp_error err = {0};
    ck_assert_int_eq(tp_tokens_read(t, total, 1, &one, TP_DTYPE_INT64, &err), TP_EUSAGE);
    ck_assert_int_eq(tp_tokens_read(t, total - 1, 2, &one, TP_DTYPE_INT64, &err), TP_EUSAGE);
    ck_assert_int_eq(tp_tokens_read(t, 0, 1, &one, TP_DTYPE_FLOAT32, &err), TP_EUSAGE);
    if (c->dtype == TP_DTYPE_UINT32) {
        ck_assert_int_eq(tp_tokens_read(t, 0, 1, &one, TP_DTYPE_UINT16, &err), TP_EUSAGE);
        ck_assert_int_eq(tp_tokens_read(t, 0, 1, &one, TP_DTYPE_INT32, &err), TP_EUSAGE);
    }
    uint64_t bad = 1;
    ck_assert_int_eq(tp_tokens_verify(t, &bad, &err), 0);
    ck_assert_uint_eq(bad, 0);
    tp_tokens_close(t);
    free(want);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

START_TEST(test_pieces)
{
    char *dir = tp_test_mkdtemp(), *path = tp_test_path(dir, "ds");
    tp_tokens_writer_options o = {.dtype = TP_DTYPE_UINT16, .shard_bytes = 512,
                                  .block_tokens = BLOCK};
    tp_tokens_writer *w;
    tp_error err = {0};
    ck_assert_int_eq(tp_tokens_writer_create(&w, path, &o, &err), 0);
    uint16_t ids[1000];
    for (int i = 0; i < 1000; i++)
        ids[i] = (uint16_t)(i * 31);
    ck_assert_int_eq(tp_tokens_writer_extend(w, ids, TP_DTYPE_UINT16, 1, &err), TP_EUSAGE);
    /* one document of 1000 ids in three pieces, far past the shard size: one shard */
    ck_assert_int_eq(tp_tokens_writer_append(w, ids, TP_DTYPE_UINT16, 300, &err), 0);
    ck_assert_int_eq(tp_tokens_writer_extend(w, ids + 300, TP_DTYPE_UINT16, 600, &err), 0);
    int64_t bad = 70000;
    ck_assert_int_eq(tp_tokens_writer_extend(w, &bad, TP_DTYPE_INT64, 1, &err), TP_EUSAGE);
    ck_assert_int_eq(tp_tokens_writer_extend(w, ids, TP_DTYPE_UINT16, 0, &err), TP_EUSAGE);
    ck_assert_int_eq(tp_tokens_writer_extend(w, ids + 900, TP_DTYPE_UINT16, 100, &err), 0);
    ck_assert_uint_eq(tp_tokens_writer_documents(w), 1);
    ck_assert_uint_eq(tp_tokens_writer_tokens(w), 1000);
    ck_assert_int_eq(tp_tokens_writer_append(w, ids, TP_DTYPE_UINT16, 5, &err), 0);
    ck_assert_int_eq(tp_tokens_writer_extend(w, ids, TP_DTYPE_UINT16, 5, &err), 0);
    ck_assert_int_eq(tp_tokens_writer_finish(w, &err), 0);
    ck_assert_int_eq(tp_tokens_writer_extend(w, ids, TP_DTYPE_UINT16, 1, &err), TP_EUSAGE);
    tp_tokens_writer_destroy(w);
    tp_tokens *t = open_ok(path);
    ck_assert_uint_eq(tp_tokens_count(t), 1010);
    ck_assert_uint_eq(tp_tokens_document_count(t), 2);
    ck_assert_uint_eq(tp_tokens_shard_count(t), 2);
    ck_assert_uint_eq(tp_tokens_document_start(t, 1), 1000);
    ck_assert_uint_eq(tp_tokens_document_of(t, 999), 0);
    ck_assert_uint_eq(tp_tokens_document_of(t, 1009), 1);
    uint16_t got[1010];
    ck_assert_int_eq(tp_tokens_read(t, 0, 1010, got, TP_DTYPE_UINT16, &err), 0);
    ck_assert_int_eq(memcmp(got, ids, sizeof(ids)), 0);
    ck_assert_int_eq(memcmp(got + 1000, ids, 5 * 2), 0);
    ck_assert_int_eq(memcmp(got + 1005, ids, 5 * 2), 0);
    tp_tokens_close(t);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

START_TEST(test_refusals)
{
    char *dir = tp_test_mkdtemp(), *path = tp_test_path(dir, "ds");
    tp_tokens_writer *w;
    tp_error err = {0};
    tp_tokens_writer_options bad_dtype = {.dtype = TP_DTYPE_INT64};
    ck_assert_int_eq(tp_tokens_writer_create(&w, path, &bad_dtype, &err), TP_EUSAGE);
    tp_tokens_writer_options bad_block = {.block_tokens = TP_TOKENS_BLOCK_MIN - 1};
    ck_assert_int_eq(tp_tokens_writer_create(&w, path, &bad_block, &err), TP_EUSAGE);
    ck_assert_int_eq(access(path, F_OK), -1);
    tp_tokens_writer_options o = {.dtype = TP_DTYPE_UINT16, .block_tokens = BLOCK};
    ck_assert_int_eq(tp_tokens_writer_create(&w, path, &o, &err), 0);
    uint32_t big[3] = {1, 2, 65536};
    int32_t negative[2] = {5, -1};
    float f[1] = {1};
    ck_assert_int_eq(tp_tokens_writer_append(w, big, TP_DTYPE_UINT32, 3, &err), TP_EUSAGE);
    ck_assert_msg(strstr(err.msg, "token 2") && strstr(err.msg, "65536"), "%s", err.msg);
    ck_assert_int_eq(tp_tokens_writer_append(w, negative, TP_DTYPE_INT32, 2, &err), TP_EUSAGE);
    ck_assert_int_eq(tp_tokens_writer_append(w, f, TP_DTYPE_FLOAT32, 1, &err), TP_EUSAGE);
    ck_assert_int_eq(tp_tokens_writer_append(w, big, TP_DTYPE_UINT32, 0, &err), TP_EUSAGE);
    ck_assert_uint_eq(tp_tokens_writer_tokens(w), 0);
    ck_assert_uint_eq(tp_tokens_writer_documents(w), 0);
    /* nothing accepted: nothing to publish */
    ck_assert_int_eq(tp_tokens_writer_finish(w, &err), TP_EUSAGE);
    tp_tokens_writer_destroy(w);
    ck_assert_int_eq(access(path, F_OK), -1);
    /* refused documents leave no trace among accepted ones */
    ck_assert_int_eq(tp_tokens_writer_create(&w, path, &o, &err), 0);
    ck_assert_int_eq(tp_tokens_writer_append(w, big, TP_DTYPE_UINT32, 2, &err), 0);
    ck_assert_int_eq(tp_tokens_writer_append(w, big, TP_DTYPE_UINT32, 3, &err), TP_EUSAGE);
    ck_assert_int_eq(tp_tokens_writer_append(w, negative, TP_DTYPE_INT32, 1, &err), 0);
    ck_assert_int_eq(tp_tokens_writer_finish(w, &err), 0);
    tp_tokens_writer_destroy(w);
    tp_tokens *t = open_ok(path);
    ck_assert_uint_eq(tp_tokens_count(t), 3);
    ck_assert_uint_eq(tp_tokens_document_count(t), 2);
    ck_assert_uint_eq(tp_tokens_max_id(t), 5);
    int64_t got[3];
    ck_assert_int_eq(tp_tokens_read(t, 0, 3, got, TP_DTYPE_INT64, &err), 0);
    ck_assert(got[0] == 1 && got[1] == 2 && got[2] == 5);
    tp_tokens_close(t);
    /* an existing dataset is kept unless replacing is asked for */
    ck_assert_int_lt(tp_tokens_writer_create(&w, path, &o, &err), 0);
    o.replace = true;
    ck_assert_int_eq(tp_tokens_writer_create(&w, path, &o, &err), 0);
    ck_assert_int_eq(tp_tokens_writer_append(w, big, TP_DTYPE_UINT32, 1, &err), 0);
    ck_assert_int_eq(tp_tokens_writer_finish(w, &err), 0);
    tp_tokens_writer_destroy(w);
    t = open_ok(path);
    ck_assert_uint_eq(tp_tokens_count(t), 1);
    tp_tokens_close(t);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

START_TEST(test_atomic)
{
    char *dir = tp_test_mkdtemp(), *path = tp_test_path(dir, "ds");
    char *staging = tp_test_path(dir, "ds.partial");
    tp_tokens_writer_options o = {.dtype = TP_DTYPE_UINT32, .shard_bytes = 1024};
    tp_tokens_writer *w;
    tp_error err = {0};
    uint32_t ids[600] = {0};
    ck_assert_int_eq(tp_tokens_writer_create(&w, path, &o, &err), 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(tp_tokens_writer_append(w, ids, TP_DTYPE_UINT32, 600, &err), 0);
    ck_assert_int_eq(access(staging, F_OK), 0);
    ck_assert_int_eq(access(path, F_OK), -1);
    tp_tokens_writer_destroy(w); /* never finished */
    ck_assert_int_eq(access(staging, F_OK), -1);
    ck_assert_int_eq(access(path, F_OK), -1);
    tp_tokens *t;
    ck_assert_int_eq(tp_tokens_open(&t, path, &err), TP_ENODATASET);
    /* a replacing writer that does not finish leaves the old dataset as it was */
    ck_assert_int_eq(tp_tokens_writer_create(&w, path, &o, &err), 0);
    ck_assert_int_eq(tp_tokens_writer_append(w, ids, TP_DTYPE_UINT32, 7, &err), 0);
    ck_assert_int_eq(tp_tokens_writer_finish(w, &err), 0);
    tp_tokens_writer_destroy(w);
    o.replace = true;
    ck_assert_int_eq(tp_tokens_writer_create(&w, path, &o, &err), 0);
    ck_assert_int_eq(tp_tokens_writer_append(w, ids, TP_DTYPE_UINT32, 600, &err), 0);
    tp_tokens_writer_destroy(w);
    t = open_ok(path);
    ck_assert_uint_eq(tp_tokens_count(t), 7);
    tp_tokens_close(t);
    ck_assert_int_eq(access(staging, F_OK), -1);
    free(staging);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

/* A uint16 dataset of NDOCS documents with its shard 1's path in *shard1. */
static char *small_dataset(char **dir, char **shard1, uint64_t *starts)
{
    *dir = tp_test_mkdtemp();
    char *path = tp_test_path(*dir, "ds");
    write_tokens(path, &configs[0], starts);
    tp_tokens *t = open_ok(path);
    tp_tokens_shard si;
    ck_assert_int_eq(tp_tokens_shard_info(t, 1, &si), 0);
    ck_assert_uint_ge(si.tokens, 4 * BLOCK);
    *shard1 = strdup(si.path);
    tp_tokens_close(t);
    return path;
}

START_TEST(test_flip_block)
{
    char *dir, *shard1;
    uint64_t starts[NDOCS + 1];
    char *path = small_dataset(&dir, &shard1, starts);
    tp_tokens *t = open_ok(path);
    tp_tokens_shard si;
    ck_assert_int_eq(tp_tokens_shard_info(t, 1, &si), 0);
    tp_tokens_close(t);
    /* one bit of block 3 of shard 1: opening still works (blocks are checked on read) */
    tp_test_flip(shard1, TP_TPT_DATA + 3 * BLOCK * 2 + 11, 0x10);
    t = open_ok(path);
    int64_t buf[2 * BLOCK];
    tp_error err = {0};
    uint64_t b3 = si.first_token + 3 * BLOCK;
    ck_assert_int_eq(tp_tokens_read(t, b3 + 5, 1, buf, TP_DTYPE_INT64, &err), TP_ECORRUPT);
    ck_assert_msg(strstr(err.msg, "shard-00001.tpt") && strstr(err.msg, "block 3 "), "%s",
                  err.msg);
    ck_assert_int_eq(tp_tokens_read(t, b3 - 10, 20, buf, TP_DTYPE_INT64, &err), TP_ECORRUPT);
    /* the blocks around it still read */
    ck_assert_int_eq(tp_tokens_read(t, b3 - BLOCK, BLOCK, buf, TP_DTYPE_INT64, &err), 0);
    ck_assert_int_eq(tp_tokens_read(t, b3 + BLOCK, BLOCK, buf, TP_DTYPE_INT64, &err), 0);
    uint64_t bad = 0;
    err = (tp_error){0};
    ck_assert_int_eq(tp_tokens_verify(t, &bad, &err), TP_ECORRUPT);
    ck_assert_uint_eq(bad, 1);
    ck_assert_msg(strstr(err.msg, "shard-00001.tpt") && strstr(err.msg, "block 3 "), "%s",
                  err.msg);
    tp_tokens_close(t);
    /* a second bad block elsewhere: both counted, the first named */
    tp_test_flip(shard1, TP_TPT_DATA + 2, 0x01);
    t = open_ok(path);
    ck_assert_int_eq(tp_tokens_verify(t, &bad, &err), TP_ECORRUPT);
    ck_assert_uint_eq(bad, 2);
    ck_assert_msg(strstr(err.msg, "block 0 "), "%s", err.msg);
    tp_tokens_close(t);
    free(shard1);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

static void open_fails(const char *path, int code, const char *needle)
{
    tp_tokens *t = NULL;
    tp_error err = {0};
    ck_assert_int_eq(tp_tokens_open(&t, path, &err), code);
    ck_assert_ptr_null(t);
    ck_assert_msg(!needle || strstr(err.msg, needle), "'%s' lacks '%s'", err.msg, needle);
}

START_TEST(test_truncated)
{
    char *dir, *shard1;
    uint64_t starts[NDOCS + 1];
    char *path = small_dataset(&dir, &shard1, starts);
    uint64_t size = tp_test_file_size(shard1);
    tp_test_truncate(shard1, size - 8);
    open_fails(path, TP_ECORRUPT, "shard-00001.tpt");
    tp_test_truncate(shard1, 100); /* shorter than the header */
    open_fails(path, TP_ECORRUPT, "shard-00001.tpt");
    ck_assert_int_eq(unlink(shard1), 0);
    open_fails(path, -ENOENT, "shard-00001.tpt");
    free(shard1);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

START_TEST(test_corrupt_index)
{
    char *dir, *shard1;
    uint64_t starts[NDOCS + 1];
    char *path = small_dataset(&dir, &shard1, starts);
    uint64_t size = tp_test_file_size(shard1);
    tp_test_flip(shard1, size - 3, 0x40); /* a document start */
    open_fails(path, TP_ECORRUPT, "index checksum");
    tp_test_flip(shard1, size - 3, 0x40);
    tp_tokens_close(open_ok(path));
    tp_test_flip(shard1, 40, 0x01); /* the header's token count */
    open_fails(path, TP_ECORRUPT, "header checksum");
    tp_test_flip(shard1, 40, 0x01);
    tp_test_flip(shard1, 0, 0x01); /* the magic */
    open_fails(path, TP_ECORRUPT, "not a token shard");
    free(shard1);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

/* Rewrites the dataset's manifest after `edit` changes it, sealed with a valid checksum. */
static void reseal(const char *path, void (*edit)(tp__tokens_manifest *))
{
    char *file = tp_test_path(path, "manifest.json"), *text;
    size_t len;
    ck_assert_int_eq(tp__read_file(file, 1 << 24, &text, &len), 0);
    tp__tokens_manifest m;
    tp_error err = {0};
    ck_assert_msg(tp__tokens_manifest_parse(text, len, &m, &err) == 0, "%s", err.msg);
    edit(&m);
    char *out = tp__tokens_manifest_dump(&m);
    ck_assert_ptr_nonnull(out);
    FILE *f = fopen(file, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(out, 1, strlen(out), f), strlen(out));
    fclose(f);
    tp__tokens_manifest_free(&m);
    free(out);
    free(text);
    free(file);
}

static void shift_shard(tp__tokens_manifest *m) { m->shards[1].first_token++; }
static void fewer_tokens(tp__tokens_manifest *m)
{
    m->shards[m->nshards - 1].tokens--;
    m->tokens--;
}
static void wider(tp__tokens_manifest *m) { m->dtype = TP_DTYPE_UINT32; }
static void same(tp__tokens_manifest *m) { (void)m; }

START_TEST(test_wrong_manifest)
{
    char *dir, *shard1;
    uint64_t starts[NDOCS + 1];
    char *path = small_dataset(&dir, &shard1, starts);
    char *file = tp_test_path(path, "manifest.json");
    uint64_t size = tp_test_file_size(file);
    tp_test_flip(file, size / 2, 0x02);
    open_fails(path, TP_ECORRUPT, "manifest.json");
    tp_test_flip(file, size / 2, 0x02);
    reseal(path, same);
    tp_tokens_close(open_ok(path));
    reseal(path, shift_shard);
    open_fails(path, TP_ECORRUPT, "does not follow");
    free(shard1);
    free(path);
    tp_test_rmdir(dir);

    path = small_dataset(&dir, &shard1, starts);
    reseal(path, fewer_tokens);
    open_fails(path, TP_ECORRUPT, NULL);
    free(shard1);
    free(path);
    tp_test_rmdir(dir);

    path = small_dataset(&dir, &shard1, starts);
    reseal(path, wider);
    open_fails(path, TP_ECORRUPT, "disagrees with the manifest");
    /* no manifest: not a dataset at all */
    free(file);
    file = tp_test_path(path, "manifest.json");
    ck_assert_int_eq(unlink(file), 0);
    open_fails(path, TP_ENODATASET, NULL);
    ck_assert(!tp_tokens_is(path));
    free(shard1);
    free(path);
    free(file);
    tp_test_rmdir(dir);
}
END_TEST

START_TEST(test_other_manifests)
{
    char *dir = tp_test_mkdtemp(), *path = tp_test_path(dir, "ds");
    uint64_t starts[NDOCS + 1];
    write_tokens(path, &configs[0], starts);
    /* a later format version, sealed as a later writer would */
    char *file = tp_test_path(path, "manifest.json"), *text;
    size_t len;
    ck_assert_int_eq(tp__read_file(file, 1 << 24, &text, &len), 0);
    json_t *root = json_loadb(text, len, 0, NULL);
    ck_assert_ptr_nonnull(root);
    json_object_set_new(root, "version", json_integer(TP_TOKENS_VERSION + 1));
    json_object_set_new(root, "checksum", json_string("xxh3:0000000000000000"));
    char *sealed = tp__manifest_seal(root);
    ck_assert_ptr_nonnull(sealed);
    FILE *f = fopen(file, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(sealed, 1, strlen(sealed), f), strlen(sealed));
    fclose(f);
    open_fails(path, TP_EVERSION, "version 2");
    json_decref(root);
    free(sealed);
    free(text);
    /* a sample dataset's manifest is refused with a message that says so */
    tp_error err = {0};
    tp_dataset_writer_options so = {.fields = (tp_field_info[]){{.name = "txt",
                                                                 .kind = TP_FIELD_BYTES}},
                                    .nfields = 1};
    char *samples = tp_test_path(dir, "samples");
    tp_dataset_writer *sw;
    ck_assert_int_eq(tp_dataset_writer_create(&sw, samples, &so, &err), 0);
    tp_field_value val = {.field = 0, .data = "x", .size = 1};
    ck_assert_int_eq(tp_dataset_writer_append(sw, &val, 1, &err), 0);
    ck_assert_int_eq(tp_dataset_writer_finish(sw, &err), 0);
    tp_dataset_writer_destroy(sw);
    ck_assert(!tp_tokens_is(samples));
    open_fails(samples, TP_EUSAGE, "sample dataset");
    free(samples);
    free(file);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

/* ---- golden */

static void write_golden(const char *path)
{
    unsigned char id[TP_DATASET_ID_BYTES];
    for (int i = 0; i < TP_DATASET_ID_BYTES; i++)
        id[i] = (unsigned char)(0xa0 + i);
    tp_tokens_writer_options o = {.dtype = TP_DTYPE_UINT16, .shard_bytes = 600,
                                  .block_tokens = 256, .source = "golden", .id = id};
    tp_tokens_writer *w;
    tp_error err = {0};
    ck_assert_int_eq(tp_tokens_writer_create(&w, path, &o, &err), 0);
    for (uint32_t d = 0; d < 6; d++) {
        uint32_t ids[300];
        uint64_t n = 40 + 50 * d;
        for (uint64_t i = 0; i < n; i++)
            ids[i] = (uint32_t)((d * 1000 + i * 7) % 50257);
        ck_assert_int_eq(tp_tokens_writer_append(w, ids, TP_DTYPE_UINT32, n, &err), 0);
    }
    ck_assert_int_eq(tp_tokens_writer_finish(w, &err), 0);
    tp_tokens_writer_destroy(w);
}

static void compare_or_update(const char *got, const char *golden, const char *name)
{
    char *a = tp_test_path(got, name), *b = tp_test_path(golden, name), *x, *y;
    size_t la, lb;
    ck_assert_int_eq(tp__read_file(a, 1 << 20, &x, &la), 0);
    if (getenv("TP_UPDATE_GOLDEN")) {
        mkdir(golden, 0755);
        FILE *f = fopen(b, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(x, 1, la, f), la);
        fclose(f);
    }
    ck_assert_msg(tp__read_file(b, 1 << 20, &y, &lb) == 0, "missing golden file %s", b);
    ck_assert_msg(la == lb && memcmp(x, y, la) == 0, "%s differs from golden %s: the on-disk "
                  "format changed (rerun with TP_UPDATE_GOLDEN=1 only if that is intended "
                  "and docs/FORMAT.md says so)", a, b);
    free(x);
    free(y);
    free(a);
    free(b);
}

START_TEST(test_golden)
{
    const char *root = getenv("TP_GOLDEN_DIR");
    ck_assert_msg(root != NULL, "TP_GOLDEN_DIR is not set");
    char *golden = tp_test_path(root, "tokens-uint16");
    char *dir = tp_test_mkdtemp(), *path = tp_test_path(dir, "ds");
    write_golden(path);
    compare_or_update(path, golden, "manifest.json");
    tp_tokens *t = open_ok(path);
    ck_assert_uint_ge(tp_tokens_shard_count(t), 2);
    for (size_t i = 0; i < tp_tokens_shard_count(t); i++) {
        tp_tokens_shard si;
        ck_assert_int_eq(tp_tokens_shard_info(t, i, &si), 0);
        compare_or_update(path, golden, strrchr(si.path, '/') + 1);
    }
    tp_tokens_close(t);
    /* the checked-in files must stay readable by every later version of the reader */
    t = open_ok(golden);
    ck_assert_uint_eq(tp_tokens_document_count(t), 6);
    ck_assert_uint_eq(tp_tokens_count(t), 6 * 40 + 50 * 15);
    ck_assert_uint_eq(tp_tokens_document_start(t, 3), 40 + 90 + 140);
    int64_t ids[4];
    tp_error err = {0};
    ck_assert_int_eq(tp_tokens_read(t, tp_tokens_document_start(t, 3), 4, ids, TP_DTYPE_INT64,
                                    &err), 0);
    ck_assert(ids[0] == 3000 && ids[1] == 3007 && ids[2] == 3014 && ids[3] == 3021);
    uint64_t bad = 1;
    ck_assert_int_eq(tp_tokens_verify(t, &bad, &err), 0);
    ck_assert_uint_eq(bad, 0);
    tp_tokens_close(t);
    free(golden);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

static Suite *tokens_suite(void)
{
    Suite *s = suite_create("tokens");
    TCase *tc = tcase_create("roundtrip");
    tcase_add_loop_test(tc, test_roundtrip, 0, (int)TP_ARRAY_LEN(configs));
    tcase_add_test(tc, test_pieces);
    suite_add_tcase(s, tc);
    tc = tcase_create("writer");
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_atomic);
    suite_add_tcase(s, tc);
    tc = tcase_create("corruption");
    tcase_add_test(tc, test_flip_block);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_corrupt_index);
    tcase_add_test(tc, test_wrong_manifest);
    tcase_add_test(tc, test_other_manifests);
    suite_add_tcase(s, tc);
    tc = tcase_create("golden");
    tcase_add_test(tc, test_golden);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tp_test_run(tokens_suite()); }
