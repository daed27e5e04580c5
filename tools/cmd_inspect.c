/* `turbopump inspect`: what a dataset holds (samples, shards, fields, bytes, classes), as
 * text for people or as one JSON object for scripts. */
#include "cli.h"

#include <turbopump/dataset.h>

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>

#define CMD "inspect"

void tp_usage_inspect(FILE *out)
{
    fprintf(out, "Usage: turbopump inspect DS [--json]\n\n"
                 "Describe the dataset at DS: samples, shards, fields, bytes and classes.\n\n"
                 "Options:\n"
                 "  --json      print one JSON object instead of text\n"
                 "  -h, --help  show this help\n");
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

int tp_cmd_inspect(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'j')
            json = true;
        else if (c == 'h') {
            tp_usage_inspect(stdout);
            return TP_EXIT_OK;
        } else
            return tp_cli_usage_error(CMD, "unknown option");
    }
    if (argc - optind != 1)
        return tp_cli_usage_error(CMD, "needs exactly one dataset path");
    tp_dataset *ds;
    tp_error err;
    if (tp_dataset_open(&ds, argv[optind], &err) < 0) {
        tp_cli_error(CMD, "%s", err.msg);
        return TP_EXIT_FAIL;
    }
    if (json)
        print_json(argv[optind], ds);
    else
        print_text(argv[optind], ds);
    tp_dataset_close(ds);
    return TP_EXIT_OK;
}
