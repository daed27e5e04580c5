/* Unit tests of the storage module: record encoding, both shard kinds and alignments
 * (loop tests over the configurations), the writer's atomic publication and refusals,
 * detection of flipped bytes and truncation, and the golden dataset that pins the
 * on-disk format. */
#include "testutil.h"

#include "storage.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* The configurations every format test runs under. */
typedef struct config {
    const char *name;
    tp_shard_format format;
    uint32_t align;
} config;

static const config configs[] = {
    {"record-4096", TP_SHARD_RECORD, 4096},
    {"record-1", TP_SHARD_RECORD, 1},
    {"lmdb", TP_SHARD_LMDB, 1},
};

static const tp_field_info schema[] = {
    {.name = "jpg", .kind = TP_FIELD_IMAGE},
    {.name = "cls", .kind = TP_FIELD_INT64},
    {.name = "txt", .kind = TP_FIELD_BYTES},
    {.name = "emb", .kind = TP_FIELD_TENSOR, .dtype = TP_DTYPE_FLOAT32, .ndim = 2,
     .shape = {3, 4}},
};

/* Sample k's fields: which are present and how big, all derived from k. */
static uint64_t field_size(uint64_t k, uint32_t f)
{
    if (f == 1)
        return 8;
    if (f == 3)
        return 48;
    if (k == 7 && f == 0)
        return 3u << 20; /* one multi-MiB field */
    return (k * 7919 + f * 104729) % (f == 0 ? 9000 : 300); /* includes empty fields */
}

static bool field_present(uint64_t k, uint32_t f) { return f == 0 || (k + f) % 3 != 0; }

static size_t make_sample(uint64_t k, tp_field_value *v, unsigned char **bufs)
{
    size_t n = 0;
    for (uint32_t f = 0; f < TP_ARRAY_LEN(schema); f++) {
        if (!field_present(k, f))
            continue;
        uint64_t size = field_size(k, f);
        bufs[n] = malloc(size + 1);
        tp_test_fill(bufs[n], size, k, f);
        v[n] = (tp_field_value){.field = f, .data = bufs[n], .size = size, .raw_size = size};
        n++;
    }
    return n;
}

static void write_dataset(const char *path, const config *c, uint64_t n, uint64_t shard_bytes)
{
    tp_dataset_writer_options o = {.format = c->format, .align = c->align,
                                   .shard_bytes = shard_bytes, .fields = schema,
                                   .nfields = TP_ARRAY_LEN(schema),
                                   .classes = (const char *const[]){"cat", "dog", "\xc3\xa9t\xc3\xa9"},
                                   .nclasses = 3, .source = "unit test"};
    tp_dataset_writer *w;
    tp_error err = {0};
    ck_assert_msg(tp_dataset_writer_create(&w, path, &o, &err) == 0, "%s", err.msg);
    for (uint64_t k = 0; k < n; k++) {
        tp_field_value v[TP_MAX_FIELDS];
        unsigned char *bufs[TP_MAX_FIELDS];
        size_t nv = make_sample(k, v, bufs);
        ck_assert_msg(tp_dataset_writer_append(w, v, nv, &err) == 0, "%s", err.msg);
        for (size_t i = 0; i < nv; i++)
            free(bufs[i]);
    }
    ck_assert_uint_eq(tp_dataset_writer_count(w), n);
    ck_assert_msg(tp_dataset_writer_finish(w, &err) == 0, "%s", err.msg);
    tp_dataset_writer_destroy(w);
}

static void check_sample(const tp_dataset *ds, uint64_t k, unsigned char *buf, size_t cap)
{
    size_t len;
    tp_error err = {0};
    ck_assert_msg(tp_dataset_read(ds, k, buf, cap, &len, &err) == 0, "%s", err.msg);
    tp_record rec;
    ck_assert_int_eq(tp_record_parse(buf, len, 0, 4, &rec, &err), 0);
    tp_field_value v[TP_MAX_FIELDS];
    unsigned char *bufs[TP_MAX_FIELDS];
    size_t nv = make_sample(k, v, bufs);
    ck_assert_uint_eq(rec.nfields, nv);
    for (size_t i = 0; i < nv; i++) {
        const tp_field_value *got = tp_record_field(&rec, v[i].field);
        ck_assert_ptr_nonnull(got);
        ck_assert_uint_eq(got->size, v[i].size);
        ck_assert_int_eq(got->compression, TP_COMPRESS_NONE);
        ck_assert_int_eq(memcmp(got->data, v[i].data, v[i].size), 0);
        ck_assert_uint_eq((uintptr_t)got->data % 8, (uintptr_t)buf % 8);
        free(bufs[i]);
    }
    for (uint32_t f = 0; f < 4; f++)
        ck_assert_int_eq(tp_record_field(&rec, f) != NULL, field_present(k, f));
}

START_TEST(test_roundtrip)
{
    const config *c = &configs[_i];
    char *dir = tp_test_mkdtemp(), *path = tp_test_path(dir, "ds");
    write_dataset(path, c, 300, 64 << 10);
    tp_dataset *ds;
    tp_error err = {0};
    ck_assert_msg(tp_dataset_open(&ds, path, &err) == 0, "%s: %s", c->name, err.msg);
    ck_assert_uint_eq(tp_dataset_sample_count(ds), 300);
    ck_assert_int_eq(tp_dataset_format(ds), c->format);
    ck_assert_uint_eq(tp_dataset_field_count(ds), 4);
    ck_assert_str_eq(tp_dataset_field(ds, 3)->name, "emb");
    ck_assert_int_eq(tp_dataset_field(ds, 3)->dtype, TP_DTYPE_FLOAT32);
    ck_assert_int_eq(tp_dataset_field(ds, 3)->shape[1], 4);
    ck_assert_int_eq(tp_dataset_field_index(ds, "txt"), 2);
    ck_assert_int_eq(tp_dataset_field_index(ds, "nope"), TP_ENOFIELD);
    ck_assert_uint_eq(tp_dataset_class_count(ds), 3);
    ck_assert_str_eq(tp_dataset_class_name(ds, 2), "\xc3\xa9t\xc3\xa9");
    ck_assert_str_eq(tp_dataset_source(ds), "unit test");
    ck_assert_uint_gt(tp_dataset_shard_count(ds), 10); /* rolled over by size */
    ck_assert_uint_ge(tp_dataset_max_record(ds), 3u << 20);
    size_t cap = (size_t)tp_dataset_max_record(ds);
    unsigned char *buf = aligned_alloc(8, (cap + 7) / 8 * 8);
    for (uint64_t k = 0; k < 300; k++)
        check_sample(ds, k, buf, cap);
    size_t len;
    ck_assert_int_eq(tp_dataset_read(ds, 7, buf, 100, &len, &err), -ENOBUFS);
    ck_assert_uint_gt(len, 3u << 20);
    ck_assert_int_eq(tp_dataset_read(ds, 300, buf, cap, &len, &err), TP_EUSAGE);
    free(buf);
    tp_dataset_close(ds);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

/* A record read with one's own IO at the located offset equals tp_dataset_read's. */
START_TEST(test_locate)
{
    const config *c = &configs[_i];
    char *dir = tp_test_mkdtemp(), *path = tp_test_path(dir, "ds");
    write_dataset(path, c, 40, 16 << 10);
    tp_dataset *ds;
    tp_error err = {0};
    ck_assert_int_eq(tp_dataset_open(&ds, path, &err), 0);
    size_t cap = (size_t)tp_dataset_max_record(ds);
    unsigned char *a = malloc(cap), *b = malloc(cap);
    uint64_t prev_shard = 0;
    for (uint64_t k = 0; k < 40; k++) {
        tp_sample_location loc;
        size_t len;
        ck_assert_int_eq(tp_dataset_locate(ds, k, &loc, &err), 0);
        ck_assert_uint_ge(loc.shard, prev_shard);
        prev_shard = loc.shard;
        if (c->format == TP_SHARD_RECORD)
            ck_assert_uint_eq(loc.offset % c->align, 0);
        ck_assert_int_eq(tp_dataset_read(ds, k, a, cap, &len, &err), 0);
        ck_assert_uint_eq(len, loc.length);
        ck_assert_int_eq(tp__pread_all(loc.fd, b, len, loc.offset), 0);
        ck_assert_int_eq(memcmp(a, b, len), 0);
        tp_record rec;
        ck_assert_int_eq(tp_record_parse(b, len, loc.checksum, 4, &rec, &err), 0);
    }
    free(a);
    free(b);
    tp_dataset_close(ds);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

START_TEST(test_many_fields)
{
    const config *c = &configs[_i];
    tp_field_info fields[TP_MAX_FIELDS];
    char names[TP_MAX_FIELDS][8];
    for (int i = 0; i < TP_MAX_FIELDS; i++) {
        snprintf(names[i], sizeof(names[i]), "f%02d", i);
        fields[i] = (tp_field_info){.name = names[i], .kind = TP_FIELD_BYTES};
    }
    char *dir = tp_test_mkdtemp(), *path = tp_test_path(dir, "ds");
    tp_dataset_writer_options o = {.format = c->format, .align = c->align,
                                   .fields = fields, .nfields = TP_MAX_FIELDS};
    tp_dataset_writer *w;
    tp_error err = {0};
    ck_assert_int_eq(tp_dataset_writer_create(&w, path, &o, &err), 0);
    tp_field_value v[TP_MAX_FIELDS];
    unsigned char data[TP_MAX_FIELDS][16];
    for (int k = 0; k < 5; k++) {
        for (int i = 0; i < TP_MAX_FIELDS; i++) { /* reverse order: the writer sorts */
            tp_test_fill(data[i], (size_t)(i % 16), (uint64_t)k, (uint64_t)i);
            v[TP_MAX_FIELDS - 1 - i] = (tp_field_value){.field = (uint32_t)i, .data = data[i],
                                                        .size = (uint64_t)(i % 16)};
        }
        ck_assert_int_eq(tp_dataset_writer_append(w, v, TP_MAX_FIELDS, &err), 0);
    }
    ck_assert_int_eq(tp_dataset_writer_append(w, NULL, 0, &err), 0); /* no fields at all */
    ck_assert_int_eq(tp_dataset_writer_finish(w, &err), 0);
    tp_dataset_writer_destroy(w);
    tp_dataset *ds;
    ck_assert_int_eq(tp_dataset_open(&ds, path, &err), 0);
    unsigned char buf[8192];
    size_t len;
    tp_record rec;
    ck_assert_msg(tp_dataset_read(ds, 3, buf, sizeof(buf), &len, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(tp_record_parse(buf, len, 0, TP_MAX_FIELDS, &rec, &err), 0);
    ck_assert_uint_eq(rec.nfields, TP_MAX_FIELDS);
    for (int i = 0; i < TP_MAX_FIELDS; i++) {
        unsigned char want[16];
        tp_test_fill(want, (size_t)(i % 16), 3, (uint64_t)i);
        ck_assert_uint_eq(rec.fields[i].field, (uint32_t)i);
        ck_assert_int_eq(memcmp(rec.fields[i].data, want, (size_t)(i % 16)), 0);
    }
    ck_assert_int_eq(tp_dataset_read(ds, 5, buf, sizeof(buf), &len, &err), 0);
    ck_assert_int_eq(tp_record_parse(buf, len, 0, TP_MAX_FIELDS, &rec, &err), 0);
    ck_assert_uint_eq(rec.nfields, 0);
    tp_dataset_close(ds);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

START_TEST(test_writer_refusals)
{
    char *dir = tp_test_mkdtemp(), *path = tp_test_path(dir, "ds");
    char *staging = tp_test_path(dir, "ds.partial");
    write_dataset(path, &configs[0], 3, 0);
    tp_dataset_writer_options o = {.fields = schema, .nfields = 4};
    tp_dataset_writer *w = NULL;
    tp_error err = {0};
    ck_assert_int_eq(tp_dataset_writer_create(&w, path, &o, &err), -EEXIST);
    ck_assert_ptr_nonnull(strstr(err.msg, "--force"));
    ck_assert_int_eq(access(staging, F_OK), -1);
    /* A non-empty directory that is not a dataset is never replaced, even when it holds
     * somebody else's manifest.json. */
    char *other = tp_test_path(dir, "other"), *file = tp_test_path(other, "keep.txt");
    ck_assert_int_eq(mkdir(other, 0755), 0);
    fclose(fopen(file, "w"));
    o.replace = true;
    ck_assert_int_eq(tp_dataset_writer_create(&w, other, &o, &err), -ENOTEMPTY);
    ck_assert_int_eq(access(file, F_OK), 0);
    char *foreign = tp_test_path(other, "manifest.json");
    FILE *mf = fopen(foreign, "w");
    fputs("{\"name\": \"my web app\"}\n", mf);
    fclose(mf);
    ck_assert_int_eq(tp_dataset_writer_create(&w, other, &o, &err), -ENOTEMPTY);
    ck_assert_int_eq(access(file, F_OK), 0);
    free(foreign);
    /* Replacing: the old dataset stays intact until finish. */
    ck_assert_int_eq(tp_dataset_writer_create(&w, path, &o, &err), 0);
    tp_dataset_writer *w2;
    ck_assert_int_eq(tp_dataset_writer_create(&w2, path, &o, &err), -EBUSY);
    unsigned char label[8] = {1};
    tp_field_value v = {.field = 1, .data = label, .size = 8};
    ck_assert_int_eq(tp_dataset_writer_append(w, &v, 1, &err), 0);
    tp_dataset *ds;
    ck_assert_int_eq(tp_dataset_open(&ds, path, &err), 0);
    ck_assert_uint_eq(tp_dataset_sample_count(ds), 3);
    tp_dataset_close(ds);
    ck_assert_int_eq(tp_dataset_writer_finish(w, &err), 0);
    tp_dataset_writer_destroy(w);
    ck_assert_int_eq(tp_dataset_open(&ds, path, &err), 0);
    ck_assert_uint_eq(tp_dataset_sample_count(ds), 1);
    tp_dataset_close(ds);
    ck_assert_int_eq(access(staging, F_OK), -1);
    free(other);
    free(file);
    free(staging);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

START_TEST(test_writer_discard)
{
    char *dir = tp_test_mkdtemp(), *path = tp_test_path(dir, "ds");
    char *staging = tp_test_path(dir, "ds.partial");
    tp_dataset_writer_options o = {.fields = schema, .nfields = 4, .shard_bytes = 4096};
    tp_dataset_writer *w;
    tp_error err = {0};
    ck_assert_int_eq(tp_dataset_writer_create(&w, path, &o, &err), 0);
    unsigned char data[5000] = {0};
    tp_field_value v = {.field = 2, .data = data, .size = sizeof(data)};
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(tp_dataset_writer_append(w, &v, 1, &err), 0);
    ck_assert_int_eq(access(staging, F_OK), 0);
    tp_dataset_writer_destroy(w); /* never finished */
    ck_assert_int_eq(access(staging, F_OK), -1);
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_int_eq(tp_dataset_open((tp_dataset **)&w, path, &err), TP_ENODATASET);
    free(staging);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

START_TEST(test_writer_validation)
{
    char *dir = tp_test_mkdtemp(), *path = tp_test_path(dir, "ds");
    tp_dataset_writer_options o = {.fields = schema, .nfields = 4};
    tp_dataset_writer *w;
    tp_error err = {0};
    ck_assert_int_eq(tp_dataset_writer_create(&w, path, &o, &err), 0);
    unsigned char b[64] = {0};
    tp_field_value bad[][2] = {
        {{.field = 4, .data = b, .size = 1}},                               /* unknown */
        {{.field = 2, .data = b, .size = 1}, {.field = 2, .data = b, .size = 1}}, /* twice */
        {{.field = 1, .data = b, .size = 4}},                               /* int64 size */
        {{.field = 3, .data = b, .size = 47}},                              /* tensor size */
        {{.field = 2, .data = NULL, .size = 3}},                            /* no data */
        {{.field = 2, .data = b, .size = 3, .compression = (tp_compression)9}},
    };
    size_t counts[] = {1, 2, 1, 1, 1, 1};
    for (size_t i = 0; i < TP_ARRAY_LEN(counts); i++)
        ck_assert_msg(tp_dataset_writer_append(w, bad[i], counts[i], &err) == TP_EUSAGE,
                      "case %zu accepted", i);
    ck_assert_uint_eq(tp_dataset_writer_count(w), 0);
    tp_dataset_writer_destroy(w);
    tp_field_info dup[2] = {{.name = "a"}, {.name = "a"}};
    tp_field_info badname[1] = {{.name = "Bad/Name"}};
    tp_field_info badtensor[1] = {{.name = "t", .kind = TP_FIELD_TENSOR}};
    const tp_field_info *schemas[] = {dup, badname, badtensor};
    size_t sizes[] = {2, 1, 1};
    for (size_t i = 0; i < 3; i++) {
        o.fields = schemas[i];
        o.nfields = sizes[i];
        ck_assert_int_eq(tp_dataset_writer_create(&w, path, &o, &err), TP_EUSAGE);
    }
    o = (tp_dataset_writer_options){.fields = schema, .nfields = 4, .align = 3000};
    ck_assert_int_eq(tp_dataset_writer_create(&w, path, &o, &err), TP_EUSAGE);
    o.align = 0;
    o.classes = (const char *const[]){"ok", "\xff\xfe"};
    o.nclasses = 2;
    ck_assert_int_eq(tp_dataset_writer_create(&w, path, &o, &err), TP_EUSAGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "UTF-8"));
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

/* ---------------------------------------------------------------- corruption */

static char *corrupt_fixture(char **dir, const config *c)
{
    *dir = tp_test_mkdtemp();
    char *path = tp_test_path(*dir, "ds");
    write_dataset(path, c, 20, 0);
    return path;
}

static const char *shard_name(const config *c)
{
    return c->format == TP_SHARD_LMDB ? "shard-00000.mdb" : "shard-00000.tpr";
}

static void expect_open_error(const char *path, const char *needle)
{
    tp_dataset *ds = NULL;
    tp_error err = {0};
    int rc = tp_dataset_open(&ds, path, &err);
    ck_assert_msg(rc < 0, "opened a corrupt dataset (expected '%s')", needle);
    ck_assert_ptr_null(ds);
    ck_assert_int_eq(err.code, rc);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "'%s' lacks '%s'", err.msg, needle);
}

/* Every byte of every record is covered: flip one in the middle, at the start and at
 * the end of a record; only that sample fails, naming the shard and the sample id. */
/* A record parsed in pieces (as a payload read straight into its destination arrives)
 * gives the same values as parsed whole, at every split into two or three pieces; a split
 * through a value or the header is TP_EUSAGE (intact, but not this layout), and a
 * flipped byte is TP_ECORRUPT wherever the pieces are cut. */
START_TEST(test_record_pieces)
{
    unsigned char a[13], b[40], rec[256];
    tp_test_fill(a, sizeof(a), 1, 2);
    tp_test_fill(b, sizeof(b), 3, 4);
    tp_field_value v[2] = {{.field = 0, .data = a, .size = sizeof(a)},
                           {.field = 1, .data = b, .size = sizeof(b)}};
    size_t len = (size_t)tp__record_size(v, 2);
    ck_assert_uint_le(len, sizeof(rec));
    uint64_t sum = tp__record_encode(rec, v, 2);
    tp_record whole, part;
    ck_assert_int_eq(tp_record_parse(rec, len, sum, 2, &whole, NULL), 0);
    unsigned ok = 0, layout = 0, wrong = 0;
    for (size_t i = 1; i < len; i++)
        for (size_t j = i; j < len; j++) {
            tp_piece p[3] = {{rec, i}, {rec + i, j - i}, {rec + j, len - j}};
            int rc = tp_record_parse_pieces(p, 3, sum, 2, &part, NULL);
            if (rc == TP_EUSAGE) {
                layout++;
                continue;
            }
            bool same = rc == 0 && part.nfields == 2;
            for (int k = 0; same && k < 2; k++)
                same = part.fields[k].size == whole.fields[k].size &&
                       part.fields[k].data == whole.fields[k].data; /* same bytes, in place */
            ok += same;
            wrong += !same;
        }
    ck_assert_uint_eq(wrong, 0);
    ck_assert_uint_gt(ok, 0);
    ck_assert_uint_gt(layout, 0);
    /* payload b alone in the middle piece: the layout a direct read uses */
    size_t at = (size_t)((const unsigned char *)whole.fields[1].data - rec);
    tp_piece direct[3] = {{rec, at}, {rec + at, sizeof(b)},
                          {rec + at + sizeof(b), len - at - sizeof(b)}};
    ck_assert_int_eq(tp_record_parse_pieces(direct, 3, sum, 2, &part, NULL), 0);
    ck_assert_ptr_eq(part.fields[1].data, rec + at);
    unsigned corrupt = 0;
    for (size_t k = 0; k < len; k++) {
        rec[k] ^= 0x40;
        corrupt += tp_record_parse_pieces(direct, 3, sum, 2, &part, NULL) == TP_ECORRUPT;
        rec[k] ^= 0x40;
    }
    ck_assert_uint_eq(corrupt, len);
}
END_TEST

START_TEST(test_flip_record)
{
    const config *c = &configs[_i];
    char *dir, *path = corrupt_fixture(&dir, c);
    char *shard = tp_test_path(path, shard_name(c));
    tp_dataset *ds;
    tp_error err = {0};
    ck_assert_int_eq(tp_dataset_open(&ds, path, &err), 0);
    tp_sample_location loc;
    ck_assert_int_eq(tp_dataset_locate(ds, 5, &loc, &err), 0);
    tp_dataset_close(ds);
    uint64_t where[] = {loc.offset, loc.offset + 9, loc.offset + loc.length / 2,
                        loc.offset + loc.length - 1};
    unsigned char buf[1 << 16];
    size_t len;
    for (size_t i = 0; i < TP_ARRAY_LEN(where); i++) {
        tp_test_flip(shard, where[i], 0x10);
        ck_assert_int_eq(tp_dataset_open(&ds, path, &err), 0);
        ck_assert_int_eq(tp_dataset_read(ds, 5, buf, sizeof(buf), &len, &err), TP_ECORRUPT);
        ck_assert_ptr_nonnull(strstr(err.msg, shard_name(c)));
        ck_assert_ptr_nonnull(strstr(err.msg, "sample 5"));
        ck_assert_int_eq(tp_dataset_read(ds, 4, buf, sizeof(buf), &len, &err), 0);
        ck_assert_int_eq(tp_dataset_read(ds, 6, buf, sizeof(buf), &len, &err), 0);
        tp_dataset_close(ds);
        tp_test_flip(shard, where[i], 0x10);
    }
    free(shard);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

START_TEST(test_flip_structure)
{
    char *dir, *path = corrupt_fixture(&dir, &configs[_i]);
    char *shard = tp_test_path(path, "shard-00000.tpr");
    uint64_t size = tp_test_file_size(shard);
    unsigned char footer[TP_SHARD_FOOTER];
    FILE *f = fopen(shard, "rb");
    fseek(f, (long)(size - TP_SHARD_FOOTER), SEEK_SET);
    ck_assert_uint_eq(fread(footer, 1, sizeof(footer), f), sizeof(footer));
    fclose(f);
    uint64_t index_off = tp__le64(footer);
    struct { uint64_t off; const char *needle; } cases[] = {
        {3, "magic"}, {20, "header checksum"}, {60, "header checksum"},
        {index_off, "index checksum"}, {index_off + 20 * TP_INDEX_ENTRY - 1, "index checksum"},
        {size - TP_SHARD_FOOTER, "footer checksum"}, {size - 20, "footer checksum"},
        {size - 1, "footer magic"},
    };
    for (size_t i = 0; i < TP_ARRAY_LEN(cases); i++) {
        tp_test_flip(shard, cases[i].off, 0x01);
        expect_open_error(path, cases[i].needle);
        expect_open_error(path, "shard-00000.tpr");
        tp_test_flip(shard, cases[i].off, 0x01);
    }
    free(shard);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

START_TEST(test_flip_manifest)
{
    char *dir, *path = corrupt_fixture(&dir, &configs[_i]);
    char *manifest = tp_test_path(path, "manifest.json");
    uint64_t size = tp_test_file_size(manifest);
    for (uint64_t off = 0; off < size; off += 7) {
        tp_test_flip(manifest, off, 0x01);
        expect_open_error(path, "manifest.json");
        tp_test_flip(manifest, off, 0x01);
    }
    tp_dataset *ds;
    tp_error err;
    ck_assert_int_eq(tp_dataset_open(&ds, path, &err), 0);
    tp_dataset_close(ds);
    free(manifest);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

/* A shard header whose checksum holds but whose alignment is not a power of two up to
 * 65536 is refused by the header check itself, not only by comparison with a manifest. */
START_TEST(test_header_alignment)
{
    static const uint32_t bad[] = {0, 3, 96, 131072, 0xffffffffu};
    for (size_t i = 0; i < TP_ARRAY_LEN(bad); i++) {
        tp__shard_header h = {.align = 4096, .shard_index = 2, .first_sample = 7}, got;
        unsigned char raw[TP_SHARD_HEADER];
        tp__shard_header_encode(raw, TP_TPR_MAGIC, &h);
        ck_assert_int_eq(tp__shard_header_decode(raw, TP_TPR_MAGIC, &got, NULL, "x"), 0);
        tp__put32(raw + 12, bad[i]);
        tp__put64(raw + 56, tp__hash64(raw, 56));
        tp_error err = {0};
        ck_assert_int_eq(tp__shard_header_decode(raw, TP_TPR_MAGIC, &got, &err, "x"),
                         TP_ECORRUPT);
        ck_assert_msg(strstr(err.msg, "alignment"), "%s", err.msg);
    }
}
END_TEST

START_TEST(test_truncated)
{
    const config *c = &configs[_i];
    char *dir, *path = corrupt_fixture(&dir, c);
    char *shard = tp_test_path(path, shard_name(c));
    uint64_t size = tp_test_file_size(shard);
    uint64_t cuts[] = {size - 1, size / 2, 100, 0};
    for (size_t i = 0; i < TP_ARRAY_LEN(cuts); i++) {
        tp_test_truncate(shard, cuts[i]);
        expect_open_error(path, shard_name(c));
    }
    char *missing = tp_test_path(path, "manifest.json");
    unlink(shard);
    expect_open_error(path, shard_name(c));
    unlink(missing);
    expect_open_error(path, "no manifest.json");
    free(missing);
    free(shard);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

/* A record whose structure and checksum are fine but whose int64 field is 3 bytes: the
 * schema check refuses it on read. */
START_TEST(test_schema_sizes_on_read)
{
    char *dir = tp_test_mkdtemp(), *path = tp_test_path(dir, "ds");
    tp_dataset_writer_options o = {.fields = schema, .nfields = 4};
    tp_dataset_writer *w;
    tp_error err = {0};
    ck_assert_int_eq(tp_dataset_writer_create(&w, path, &o, &err), 0);
    unsigned char b[64] = {0}, rec[256];
    tp_field_value bad[2] = {{.field = 1, .data = b, .size = 3, .raw_size = 3},
                             {.field = 3, .data = b, .size = 4, .raw_size = 4}};
    for (int i = 0; i < 2; i++) {
        uint64_t len = tp__record_size(&bad[i], 1), sum = tp__record_encode(rec, &bad[i], 1);
        ck_assert_int_eq(tp__writer_append_record(w, rec, len, sum, &err), 0);
    }
    ck_assert_int_eq(tp_dataset_writer_finish(w, &err), 0);
    tp_dataset_writer_destroy(w);
    tp_dataset *ds;
    ck_assert_int_eq(tp_dataset_open(&ds, path, &err), 0);
    size_t len;
    unsigned char buf[4096];
    ck_assert_int_eq(tp_dataset_read(ds, 0, buf, sizeof(buf), &len, &err), TP_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "'cls' holds 3 bytes"));
    ck_assert_int_eq(tp_dataset_read(ds, 1, buf, sizeof(buf), &len, &err), TP_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "'emb' holds 4 bytes"));
    tp_dataset_close(ds);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

/* Rewrites a dataset's manifest with a new shard size, checksum recomputed: what a
 * hostile (or buggy) writer could produce. */
static void set_shard_bytes(const char *path, uint64_t bytes)
{
    char *file = tp_test_path(path, "manifest.json"), *text;
    size_t len;
    ck_assert_int_eq(tp__read_file(file, 1 << 20, &text, &len), 0);
    tp__manifest m;
    ck_assert_int_eq(tp__manifest_parse(text, len, &m, NULL), 0);
    m.bytes -= m.shards[0].bytes - bytes;
    m.shards[0].bytes = bytes;
    char *out = tp__manifest_dump(&m);
    FILE *f = fopen(file, "w");
    fputs(out, f);
    fclose(f);
    free(out);
    free(text);
    tp__manifest_free(&m);
    free(file);
}

/* An LMDB file cut short by a page, with a manifest that agrees with the cut: refused
 * at open, without touching the missing page (which would raise SIGBUS). */
START_TEST(test_lmdb_short_file)
{
    char *dir, *path = corrupt_fixture(&dir, &configs[2]);
    char *shard = tp_test_path(path, "shard-00000.mdb");
    uint64_t size = tp_test_file_size(shard) - 4096;
    tp_test_truncate(shard, size);
    set_shard_bytes(path, size);
    expect_open_error(path, "LMDB uses");
    free(shard);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

/* liblmdb divides by the page size its meta pages state: with that zeroed it would kill
 * the process. The open checks LMDB shards in a child, so it reports the shard instead,
 * and this process lives to say so. */
START_TEST(test_lmdb_killing_pages)
{
    char *dir, *path = corrupt_fixture(&dir, &configs[2]);
    char *shard = tp_test_path(path, "shard-00000.mdb");
    static const unsigned char zero[4];
    for (uint64_t meta = 0; meta < 2; meta++) /* both meta pages: mm_dbs[0].md_pad */
        tp_test_write_at(shard, meta * 4096 + 40, zero, sizeof(zero));
    expect_open_error(path, "shard-00000.mdb: corrupt LMDB shard: reading its pages killed "
                            "the checking process (Floating point exception)");
    /* With SIGCHLD ignored the child cannot be waited for: not finishing still fails. */
    signal(SIGCHLD, SIG_IGN);
    expect_open_error(path, "shard-00000.mdb: corrupt LMDB shard: the checking process "
                            "ended without finishing");
    signal(SIGCHLD, SIG_DFL);
    free(shard);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

/* A FIFO where the manifest or a shard should be must not hang the reader. */
START_TEST(test_not_regular_files)
{
    const config *c = &configs[_i];
    char *dir, *path = corrupt_fixture(&dir, c);
    char *shard = tp_test_path(path, shard_name(c));
    unlink(shard);
    ck_assert_int_eq(mkfifo(shard, 0644), 0);
    set_shard_bytes(path, 0);
    expect_open_error(path, "not a regular file");
    char *manifest = tp_test_path(path, "manifest.json");
    unlink(manifest);
    ck_assert_int_eq(mkfifo(manifest, 0644), 0);
    tp_dataset *ds;
    tp_error err;
    ck_assert_int_lt(tp_dataset_open(&ds, path, &err), 0);
    free(manifest);
    free(shard);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

/* A dataset's zstd dictionary is stored beside the shards, checked on open, and required
 * by records that say they use it. */
START_TEST(test_zstd_dict_file)
{
    char *dir = tp_test_mkdtemp(), *path = tp_test_path(dir, "ds");
    unsigned char dict[300];
    tp_test_fill(dict, sizeof(dict), 8, 8);
    tp_dataset_writer_options o = {.fields = schema, .nfields = 4, .zstd_dict = dict,
                                   .zstd_dict_len = sizeof(dict)};
    tp_dataset_writer *w;
    tp_error err = {0};
    ck_assert_int_eq(tp_dataset_writer_create(&w, path, &o, &err), 0);
    unsigned char b[16] = {1, 2, 3};
    tp_field_value v = {.field = 2, .data = b, .size = 16, .raw_size = 40,
                        .compression = TP_COMPRESS_ZSTD_DICT};
    ck_assert_int_eq(tp_dataset_writer_append(w, &v, 1, &err), 0);
    ck_assert_int_eq(tp_dataset_writer_finish(w, &err), 0);
    tp_dataset_writer_destroy(w);
    tp_dataset *ds;
    ck_assert_int_eq(tp_dataset_open(&ds, path, &err), 0);
    size_t len;
    const void *got = tp_dataset_zstd_dict(ds, &len);
    ck_assert_uint_eq(len, sizeof(dict));
    ck_assert_int_eq(memcmp(got, dict, len), 0);
    unsigned char buf[4096];
    ck_assert_int_eq(tp_dataset_read(ds, 0, buf, sizeof(buf), &len, &err), 0);
    tp_dataset_close(ds);
    char *file = tp_test_path(path, "zstd.dict");
    tp_test_flip(file, 100, 0x04);
    expect_open_error(path, "zstd.dict");
    unlink(file);
    expect_open_error(path, "zstd.dict");
    free(file);
    /* Without a dictionary, a record that needs one is refused on read. */
    char *path2 = tp_test_path(dir, "nodict");
    o.zstd_dict = NULL;
    o.zstd_dict_len = 0;
    ck_assert_int_eq(tp_dataset_writer_create(&w, path2, &o, &err), 0);
    ck_assert_int_eq(tp_dataset_writer_append(w, &v, 1, &err), TP_EUSAGE);
    unsigned char rec[256]; /* bypass the writer's check, as a hostile file would */
    uint64_t rlen = tp__record_size(&v, 1), sum = tp__record_encode(rec, &v, 1);
    ck_assert_int_eq(tp__writer_append_record(w, rec, rlen, sum, &err), 0);
    ck_assert_int_eq(tp_dataset_writer_finish(w, &err), 0);
    tp_dataset_writer_destroy(w);
    ck_assert_int_eq(tp_dataset_open(&ds, path2, &err), 0);
    ck_assert_int_eq(tp_dataset_read(ds, 0, buf, sizeof(buf), &len, &err), TP_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "dictionary"));
    tp_dataset_close(ds);
    free(path2);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

/* ---------------------------------------------------------------- golden files */

static const unsigned char golden_id[TP_DATASET_ID_BYTES] = {
    0x74, 0x75, 0x72, 0x62, 0x6f, 0x70, 0x75, 0x6d, 0x70, 0x2d, 0x67, 0x6f, 0x6c, 0x64, 0x65, 0x6e};

static void write_golden(const char *path, const config *c)
{
    tp_dataset_writer_options o = {.format = c->format, .align = c->align, .shard_bytes = 200,
                                   .fields = schema, .nfields = 4, .id = golden_id,
                                   .classes = (const char *const[]){"a", "b"}, .nclasses = 2,
                                   .source = "golden"};
    tp_dataset_writer *w;
    tp_error err = {0};
    ck_assert_int_eq(tp_dataset_writer_create(&w, path, &o, &err), 0);
    for (uint64_t k = 0; k < 5; k++) {
        char text[32];
        unsigned char label[8], emb[48];
        snprintf(text, sizeof(text), "sample %llu", (unsigned long long)k);
        tp__put64(label, k % 2);
        for (int i = 0; i < 48; i++)
            emb[i] = (unsigned char)(k * 48 + (uint64_t)i);
        tp_field_value v[3] = {{.field = 2, .data = text, .size = strlen(text)},
                               {.field = 1, .data = label, .size = 8},
                               {.field = 3, .data = emb, .size = 48}};
        ck_assert_int_eq(tp_dataset_writer_append(w, v, k == 4 ? 1 : 3, &err), 0);
    }
    ck_assert_int_eq(tp_dataset_writer_finish(w, &err), 0);
    tp_dataset_writer_destroy(w);
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
    const config *c = &configs[_i];
    const char *root = getenv("TP_GOLDEN_DIR");
    ck_assert_msg(root != NULL, "TP_GOLDEN_DIR is not set");
    char *golden = tp_test_path(root, c->name);
    char *dir = tp_test_mkdtemp(), *path = tp_test_path(dir, "ds");
    write_golden(path, c);
    compare_or_update(path, golden, "manifest.json");
    tp_dataset *ds;
    tp_error err = {0};
    ck_assert_int_eq(tp_dataset_open(&ds, path, &err), 0);
    for (size_t i = 0; i < tp_dataset_shard_count(ds); i++) {
        tp_shard_info si;
        ck_assert_int_eq(tp_dataset_shard_info(ds, i, &si), 0);
        compare_or_update(path, golden, strrchr(si.path, '/') + 1);
    }
    tp_dataset_close(ds);
    /* The checked-in files must stay readable by every later version of the reader. */
    ck_assert_msg(tp_dataset_open(&ds, golden, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(tp_dataset_sample_count(ds), 5);
    unsigned char buf[4096];
    size_t len;
    tp_record rec;
    ck_assert_int_eq(tp_dataset_read(ds, 3, buf, sizeof(buf), &len, &err), 0);
    ck_assert_int_eq(tp_record_parse(buf, len, 0, 4, &rec, &err), 0);
    ck_assert_uint_eq(rec.nfields, 3);
    ck_assert_int_eq(memcmp(tp_record_field(&rec, 2)->data, "sample 3", 8), 0);
    ck_assert_uint_eq(tp__le64(tp_record_field(&rec, 1)->data), 1);
    tp_dataset_close(ds);
    free(golden);
    free(path);
    tp_test_rmdir(dir);
}
END_TEST

static Suite *storage_suite(void)
{
    Suite *s = suite_create("storage");
    int n = (int)TP_ARRAY_LEN(configs);
    TCase *tc = tcase_create("roundtrip");
    tcase_add_loop_test(tc, test_roundtrip, 0, n);
    tcase_add_loop_test(tc, test_locate, 0, n);
    tcase_add_loop_test(tc, test_many_fields, 0, n);
    suite_add_tcase(s, tc);
    tc = tcase_create("writer");
    tcase_add_test(tc, test_writer_refusals);
    tcase_add_test(tc, test_writer_discard);
    tcase_add_test(tc, test_writer_validation);
    tcase_add_test(tc, test_zstd_dict_file);
    suite_add_tcase(s, tc);
    tc = tcase_create("corruption");
    tcase_add_loop_test(tc, test_flip_record, 0, n);
    tcase_add_test(tc, test_record_pieces);
    tcase_add_loop_test(tc, test_flip_structure, 0, 2); /* .tpr structures */
    tcase_add_loop_test(tc, test_flip_manifest, 0, n);
    tcase_add_test(tc, test_header_alignment);
    tcase_add_loop_test(tc, test_truncated, 0, n);
    tcase_add_test(tc, test_schema_sizes_on_read);
    tcase_add_test(tc, test_lmdb_short_file);
    tcase_add_test(tc, test_lmdb_killing_pages);
    tcase_add_loop_test(tc, test_not_regular_files, 0, n);
    suite_add_tcase(s, tc);
    tc = tcase_create("golden");
    tcase_add_loop_test(tc, test_golden, 0, n);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tp_test_run(storage_suite()); }
