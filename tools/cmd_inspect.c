/* `turbopump inspect`: what a dataset holds (samples, shards, fields, bytes, classes), as
 * text for people or as one JSON object for scripts; with --sample, one sample's values
 * (a summary, or one field's bytes as stored before compression). Token datasets are
 * described by inspect_tokens.c. */
#include "cli.h"
#include "codecs.h"

#include <turbopump/tokens.h>

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>

#define CMD "inspect"

void tp_usage_inspect(FILE *out)
{
    fprintf(out, "Usage: turbopump inspect DS [--json]\n"
                 "       turbopump inspect DS --sample ID [--field NAME]\n"
                 "       turbopump inspect TOKENS_DS --tokens FIRST:COUNT [--json]\n\n"
                 "Describe the dataset at DS: samples, shards, fields, bytes and classes.\n"
                 "With --sample, describe sample ID instead as JSON (int64 values, and the\n"
                 "size and xxh3-64 of every other field); with --field too, write that\n"
                 "field's bytes (decompressed) to standard output, an int64 as decimal text.\n"
                 "A token dataset is described by its dtype, tokens, documents, largest id,\n"
                 "shards and block size; --tokens prints COUNT ids from id FIRST, one line\n"
                 "per document they touch ('DOCUMENT FIRST_ID: ids'), or with --json the\n"
                 "ids and each document's start and end.\n\n"
                 "Options:\n"
                 "  --json         print one JSON object instead of text\n"
                 "  --sample ID    one sample (ids count from 0 in dataset order)\n"
                 "  --field NAME   with --sample: that field's bytes only\n"
                 "  --tokens FIRST:COUNT\n"
                 "                 of a token dataset: COUNT ids from id FIRST\n"
                 "  -h, --help     show this help\n");
}

static void field_desc(const tp_field_info *f, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s (%s", f->name, tp_field_kind_name(f->kind));
    if (f->kind == TP_FIELD_TENSOR) {
        n += snprintf(buf + n, len - (size_t)n, " %s [", tp_dtype_name(f->dtype));
        for (uint32_t d = 0; d < f->ndim; d++)
            n += snprintf(buf + n, len - (size_t)n, "%s%lld", d ? "," : "",
                          (long long)f->shape[d]);
        n += snprintf(buf + n, len - (size_t)n, "]");
    }
    if (f->zstd_level)
        n += snprintf(buf + n, len - (size_t)n, ", zstd level %d", f->zstd_level);
    snprintf(buf + n, len - (size_t)n, ")");
}

static uint64_t total_bytes(const tp_dataset *ds)
{
    uint64_t sum = 0;
    tp_shard_info si;
    for (size_t i = 0; tp_dataset_shard_info(ds, i, &si) == 0; i++)
        sum += si.bytes;
    return sum;
}

static void print_text(const char *path, const tp_dataset *ds)
{
    uint64_t n = tp_dataset_sample_count(ds), bytes = total_bytes(ds);
    printf("dataset:  %s\nformat:   %s shards, align %u\nsamples:  %llu\n", path,
           tp_dataset_format(ds) == TP_SHARD_LMDB ? "lmdb" : "record", tp_dataset_align(ds),
           (unsigned long long)n);
    printf("shards:   %zu\nbytes:    %llu (%.1f MB, %.0f bytes/sample)\n",
           tp_dataset_shard_count(ds), (unsigned long long)bytes, (double)bytes / 1e6,
           n ? (double)bytes / (double)n : 0.0);
    for (size_t i = 0; i < tp_dataset_field_count(ds); i++) {
        char desc[160];
        field_desc(tp_dataset_field(ds, i), desc, sizeof(desc));
        printf("%s %s\n", i ? "         " : "fields:  ", desc);
    }
    size_t nc = tp_dataset_class_count(ds);
    printf("classes:  %zu", nc);
    for (size_t i = 0; i < nc && i < 10; i++)
        printf("%s%s", i ? ", " : " (", tp_dataset_class_name(ds, i));
    printf("%s\n", nc > 10 ? ", ...)" : nc ? ")" : "");
    printf("source:   %s\n", tp_dataset_source(ds));
}

static json_t *field_json(const tp_field_info *f)
{
    json_t *o = json_pack("{s:s, s:s, s:i}", "name", f->name, "kind",
                          tp_field_kind_name(f->kind), "zstd_level", f->zstd_level);
    if (f->kind == TP_FIELD_TENSOR) {
        json_t *shape = json_array();
        for (uint32_t d = 0; d < f->ndim; d++)
            json_array_append_new(shape, json_integer(f->shape[d]));
        json_object_set_new(o, "dtype", json_string(tp_dtype_name(f->dtype)));
        json_object_set_new(o, "shape", shape);
    }
    return o;
}

static void print_json(const char *path, const tp_dataset *ds)
{
    json_t *fields = json_array(), *classes = json_array(), *shards = json_array();
    for (size_t i = 0; i < tp_dataset_field_count(ds); i++)
        json_array_append_new(fields, field_json(tp_dataset_field(ds, i)));
    for (size_t i = 0; i < tp_dataset_class_count(ds); i++)
        json_array_append_new(classes, json_string(tp_dataset_class_name(ds, i)));
    tp_shard_info si;
    for (size_t i = 0; tp_dataset_shard_info(ds, i, &si) == 0; i++)
        json_array_append_new(shards, json_pack("{s:s, s:I, s:I, s:I}", "path", si.path,
                                                "first_sample", (json_int_t)si.first_sample,
                                                "samples", (json_int_t)si.samples, "bytes",
                                                (json_int_t)si.bytes));
    char id[2 * TP_DATASET_ID_BYTES + 1];
    for (int i = 0; i < TP_DATASET_ID_BYTES; i++)
        snprintf(id + 2 * i, 3, "%02x", tp_dataset_id(ds)[i]);
    json_t *root = json_pack(
        "{s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:o, s:I, s:o, s:o, s:s}", "path", path, "id", id,
        "format", tp_dataset_format(ds) == TP_SHARD_LMDB ? "lmdb" : "record", "align",
        (int)tp_dataset_align(ds), "samples", (json_int_t)tp_dataset_sample_count(ds),
        "shard_count", (json_int_t)tp_dataset_shard_count(ds), "bytes",
        (json_int_t)total_bytes(ds), "fields", fields, "class_count",
        (json_int_t)tp_dataset_class_count(ds), "classes", classes, "shards", shards,
        "source", tp_dataset_source(ds));
    char *text = json_dumps(root, JSON_INDENT(2));
    puts(text ? text : "{}");
    free(text);
    json_decref(root);
}

/* A field's value with its compression undone, into *raw (malloc'd when it was). */
static int raw_value(const tp_dataset *ds, const tp_field_value *v, const void **data,
                     void **owned, tp_error *err)
{
    *data = v->data;
    *owned = NULL;
    if (v->compression == TP_COMPRESS_NONE)
        return 0;
    size_t dlen = 0;
    const void *dict = tp_dataset_zstd_dict(ds, &dlen);
    tp_zstd_dict *zd = NULL;
    tp_zstd *z = NULL;
    void *out = malloc(v->raw_size ? v->raw_size : 1);
    int rc = out ? 0 : tp__error_set(err, -ENOMEM, "out of memory");
    if (rc == 0 && v->compression == TP_COMPRESS_ZSTD_DICT)
        rc = dict ? tp_zstd_dict_create(&zd, dict, dlen, 0, err)
                  : tp__error_set(err, TP_ECORRUPT, "no zstd dictionary");
    if (rc == 0)
        rc = tp_zstd_create(&z) < 0 ? tp__error_set(err, -ENOMEM, "out of memory") : 0;
    if (rc == 0)
        rc = tp_zstd_decompress_with(z, zd, v->data, v->size, out, v->raw_size, err);
    tp_zstd_destroy(z);
    tp_zstd_dict_destroy(zd);
    if (rc < 0) {
        free(out);
        return rc;
    }
    *data = *owned = out;
    return 0;
}

static int print_sample(const tp_dataset *ds, uint64_t id, const char *field)
{
    tp_error err;
    int want = field ? tp_dataset_field_index(ds, field) : 0;
    if (want < 0) {
        tp_cli_error(CMD, "the dataset has no field '%s'", field);
        return TP_EXIT_FAIL;
    }
    size_t cap = (size_t)tp_dataset_max_record(ds), len;
    void *buf = malloc(cap ? cap : 1);
    tp_record rec;
    int rc = buf ? tp_dataset_read(ds, id, buf, cap, &len, &err)
                 : tp__error_set(&err, -ENOMEM, "out of memory");
    if (rc == 0)
        rc = tp_record_parse(buf, len, 0, (uint32_t)tp_dataset_field_count(ds), &rec, &err);
    json_t *root = json_pack("{s:I}", "id", (json_int_t)id);
    for (uint32_t i = 0; rc == 0 && i < rec.nfields; i++) {
        const tp_field_value *v = &rec.fields[i];
        const tp_field_info *fi = tp_dataset_field(ds, v->field);
        if (field && v->field != (uint32_t)want)
            continue;
        const void *data;
        void *owned;
        if ((rc = raw_value(ds, v, &data, &owned, &err)) < 0)
            break;
        if (fi->kind == TP_FIELD_INT64 && field)
            printf("%lld\n", (long long)tp__le64(data));
        else if (field)
            fwrite(data, 1, (size_t)v->raw_size, stdout);
        else if (fi->kind == TP_FIELD_INT64)
            json_object_set_new(root, fi->name, json_integer((json_int_t)tp__le64(data)));
        else {
            char hash[17];
            snprintf(hash, sizeof(hash), "%016llx",
                     (unsigned long long)tp__hash64(data, (size_t)v->raw_size));
            json_object_set_new(root, fi->name,
                                json_pack("{s:I, s:s}", "bytes", (json_int_t)v->raw_size,
                                          "xxh3", hash));
        }
        free(owned);
    }
    if (rc == 0 && !field) {
        char *text = json_dumps(root, JSON_INDENT(2));
        puts(text ? text : "{}");
        free(text);
    }
    json_decref(root);
    free(buf);
    if (rc < 0) {
        tp_cli_error(CMD, "%s", err.msg);
        return TP_EXIT_FAIL;
    }
    return TP_EXIT_OK;
}

int tp_cmd_inspect(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, 0, 'j'}, {"sample", required_argument, 0, 's'},
        {"field", required_argument, 0, 'f'}, {"tokens", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    bool json = false, one = false;
    uint64_t id = 0;
    const char *field = NULL, *range = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'j')
            json = true;
        else if (c == 's') {
            if (tp_cli_u64(CMD, "--sample", optarg, 0, UINT64_MAX, &id) < 0)
                return TP_EXIT_USAGE;
            one = true;
        } else if (c == 'f')
            field = optarg;
        else if (c == 't')
            range = optarg;
        else if (c == 'h') {
            tp_usage_inspect(stdout);
            return TP_EXIT_OK;
        } else
            return tp_cli_usage_error(CMD, "unknown option");
    }
    if (argc - optind != 1)
        return tp_cli_usage_error(CMD, "needs exactly one dataset path");
    if (field && !one)
        return tp_cli_usage_error(CMD, "--field needs --sample ID");
    bool tokens = tp_tokens_is(argv[optind]);
    if (tokens && one)
        return tp_cli_usage_error(CMD, "%s is a token dataset: --tokens FIRST:COUNT shows "
                                  "its ids", argv[optind]);
    if (range && !tokens)
        return tp_cli_usage_error(CMD, "--tokens: %s is not a token dataset", argv[optind]);
    if (tokens)
        return tp_inspect_tokens(argv[optind], json, range);
    tp_dataset *ds;
    tp_error err;
    if (tp_dataset_open(&ds, argv[optind], &err) < 0) {
        tp_cli_error(CMD, "%s", err.msg);
        return TP_EXIT_FAIL;
    }
    int rc = TP_EXIT_OK;
    if (one)
        rc = print_sample(ds, id, field);
    else if (json)
        print_json(argv[optind], ds);
    else
        print_text(argv[optind], ds);
    tp_dataset_close(ds);
    return rc;
}
