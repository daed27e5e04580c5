/* manifest.json: the dataset's schema, classes and shard list, serialised with jansson.
 * The file carries its own checksum (XXH3-64 of the text with the checksum digits
 * zeroed), so a flipped byte anywhere in it is detected even when the JSON still parses.
 * The parser bounds and cross-checks every value before the reader trusts it. */
#include "storage.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECKSUM_TAG "\"checksum\": \"xxh3:"
#define CHECKSUM_DIGITS 16

static const char *const kind_names[] = {"bytes", "image", "int64", "tensor"};

TP_API const char *tp_field_kind_name(tp_field_kind k)
{
    return (unsigned)k < TP_ARRAY_LEN(kind_names) ? kind_names[k] : "?";
}

static int name_lookup(const char *s, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, names[i]))
            return (int)i;
    return TP_EUSAGE;
}

int tp__field_kind_parse(const char *s, tp_field_kind *k)
{
    int i = name_lookup(s, kind_names, TP_ARRAY_LEN(kind_names));
    TP_TRY(i);
    *k = (tp_field_kind)i;
    return 0;
}

int tp__dtype_parse(const char *s, tp_dtype *t)
{
    for (int i = 1; tp_dtype_size((tp_dtype)i); i++) /* the names live in common/dtype.c */
        if (!strcmp(s, tp_dtype_name((tp_dtype)i))) {
            *t = (tp_dtype)i;
            return 0;
        }
    return TP_EUSAGE;
}

static bool name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > TP_MAX_FIELD_NAME)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789_.-", s[i]))
            return false;
    return true;
}

static int field_check(const tp_field_info *f, tp_error *err)
{
    if (!name_ok(f->name))
        return tp__error_set(err, TP_EUSAGE, "field name '%s' must be 1-%d characters of "
                             "a-z 0-9 _ . -", f->name ? f->name : "", TP_MAX_FIELD_NAME);
    if ((unsigned)f->kind > TP_FIELD_TENSOR || f->zstd_level < 0 || f->zstd_level > 22)
        return tp__error_set(err, TP_EUSAGE, "field '%s': bad kind or zstd level", f->name);
    if (f->kind != TP_FIELD_TENSOR) {
        if (f->dtype != TP_DTYPE_NONE || f->ndim != 0)
            return tp__error_set(err, TP_EUSAGE, "field '%s': only tensors have a dtype "
                                 "and shape", f->name);
        return 0;
    }
    if (tp_dtype_size(f->dtype) == 0 || f->ndim < 1 || f->ndim > TP_MAX_DIMS)
        return tp__error_set(err, TP_EUSAGE, "field '%s': a tensor needs a dtype and 1-%d "
                             "dimensions", f->name, TP_MAX_DIMS);
    uint64_t bytes;
    for (uint32_t d = 0; d < f->ndim; d++)
        if (f->shape[d] < 1 || f->shape[d] > (INT64_C(1) << 31))
            return tp__error_set(err, TP_EUSAGE, "field '%s': dimension %u out of range",
                                 f->name, d);
    if (tp__field_raw_size(f, &bytes) < 0)
        return tp__error_set(err, TP_EUSAGE, "field '%s': tensor larger than 2^48 bytes",
                             f->name);
    return 0;
}

int tp__field_raw_size(const tp_field_info *f, uint64_t *want)
{
    *want = f->kind == TP_FIELD_INT64 ? 8 : 0;
    if (f->kind != TP_FIELD_TENSOR)
        return 0;
    uint64_t size = tp_dtype_size(f->dtype);
    for (uint32_t d = 0; d < f->ndim; d++)
        if (f->shape[d] < 1 || __builtin_mul_overflow(size, (uint64_t)f->shape[d], &size) ||
            size > (UINT64_C(1) << 48))
            return TP_EUSAGE;
    *want = size;
    return 0;
}

int tp__fields_check(const tp_field_info *fields, size_t n, tp_error *err)
{
    if (n < 1 || n > TP_MAX_FIELDS)
        return tp__error_set(err, TP_EUSAGE, "a dataset needs 1-%d fields", TP_MAX_FIELDS);
    for (size_t i = 0; i < n; i++) {
        TP_TRY(field_check(&fields[i], err));
        for (size_t j = 0; j < i; j++)
            if (!strcmp(fields[i].name, fields[j].name))
                return tp__error_set(err, TP_EUSAGE, "field '%s' appears twice",
                                     fields[i].name);
    }
    return 0;
}

/* ------------------------------------------------------------------ dump */

static json_t *field_json(const tp_field_info *f)
{
    json_t *o = json_pack("{s:s, s:s}", "name", f->name, "kind", tp_field_kind_name(f->kind));
    if (o && f->kind == TP_FIELD_TENSOR) {
        json_t *shape = json_array();
        for (uint32_t d = 0; d < f->ndim; d++)
            json_array_append_new(shape, json_integer(f->shape[d]));
        json_object_set_new(o, "dtype", json_string(tp_dtype_name(f->dtype)));
        json_object_set_new(o, "shape", shape);
    }
    char comp[16] = "none";
    if (f->zstd_level > 0)
        snprintf(comp, sizeof(comp), "zstd:%d", f->zstd_level);
    if (o)
        json_object_set_new(o, "compression", json_string(comp));
    return o;
}

static json_t *manifest_json(const tp__manifest *m)
{
    char id[2 * TP_DATASET_ID_BYTES + 1];
    for (int i = 0; i < TP_DATASET_ID_BYTES; i++)
        snprintf(id + 2 * i, 3, "%02x", m->id[i]);
    json_t *fields = json_array(), *classes = json_array(), *shards = json_array();
    for (size_t i = 0; i < m->nfields; i++)
        json_array_append_new(fields, field_json(&m->fields[i]));
    for (size_t i = 0; i < m->nclasses; i++)
        json_array_append_new(classes, json_string(m->classes[i]));
    for (size_t i = 0; i < m->nshards; i++) {
        const tp__manifest_shard *sh = &m->shards[i];
        json_t *o = json_pack("{s:s, s:I, s:I, s:I}", "file", sh->file, "first_sample",
                              (json_int_t)sh->first_sample, "samples",
                              (json_int_t)sh->samples, "bytes", (json_int_t)sh->bytes);
        if (o && sh->has_origin) {
            char oid[2 * TP_DATASET_ID_BYTES + 1];
            for (int k = 0; k < TP_DATASET_ID_BYTES; k++)
                snprintf(oid + 2 * k, 3, "%02x", sh->origin_id[k]);
            json_object_set_new(o, "origin", json_pack("{s:s, s:I, s:I}", "id", oid,
                                                       "shard_index",
                                                       (json_int_t)sh->origin_index,
                                                       "first_sample",
                                                       (json_int_t)sh->origin_first));
        }
        json_array_append_new(shards, o);
    }
    json_t *root = json_pack("{s:s, s:i, s:s, s:s, s:i, s:I, s:I, s:o, s:o, s:s, s:o}",
                             "format", "turbopump-dataset", "version", TP_FORMAT_VERSION, "id",
                             id, "shard_format", m->format == TP_SHARD_LMDB ? "lmdb" : "record",
                             "align", (int)m->align, "samples", (json_int_t)m->samples,
                             "bytes", (json_int_t)m->bytes, "fields", fields, "classes",
                             classes, "source", m->source ? m->source : "", "shards", shards);
    if (root && m->has_dict) {
        char sum[32];
        snprintf(sum, sizeof(sum), "xxh3:%016" PRIx64, m->dict_checksum);
        json_object_set_new(root, "zstd_dict", json_pack("{s:s, s:I, s:s}", "file",
                                                         TP_DICT_FILE, "bytes",
                                                         (json_int_t)m->dict_bytes,
                                                         "checksum", sum));
    }
    if (root) { /* the checksum must stay the last member */
        json_object_set_new(root, "created_by", json_string("turbopump " TP_VERSION_STRING));
        json_object_set_new(root, "checksum", json_string("xxh3:0000000000000000"));
    }
    return root;
}

static char *checksum_digits(char *text)
{
    char *tag = NULL;
    for (char *p = strstr(text, CHECKSUM_TAG); p; p = strstr(p + 1, CHECKSUM_TAG))
        tag = p;
    if (!tag)
        return NULL;
    char *d = tag + strlen(CHECKSUM_TAG);
    for (int i = 0; i < CHECKSUM_DIGITS; i++)
        if (!strchr("0123456789abcdef", d[i]) || !d[i])
            return NULL;
    return d[CHECKSUM_DIGITS] == '"' ? d : NULL;
}

char *tp__manifest_seal(json_t *root)
{
    char *text = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
    char *out = text ? malloc(strlen(text) + 2) : NULL;
    if (out) {
        sprintf(out, "%s\n", text);
        char *d = checksum_digits(out);
        assert(d);
        char hex[CHECKSUM_DIGITS + 1];
        snprintf(hex, sizeof(hex), "%016" PRIx64, tp__hash64(out, strlen(out)));
        memcpy(d, hex, CHECKSUM_DIGITS);
    }
    free(text);
    return out;
}

char *tp__manifest_dump(const tp__manifest *m)
{
    json_t *root = manifest_json(m);
    char *out = tp__manifest_seal(root);
    json_decref(root);
    return out;
}

/* ------------------------------------------------------------------ parse */

int tp__manifest_verify(const char *text, size_t len, tp_error *err)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return tp__error_set(err, -ENOMEM, "out of memory");
    memcpy(copy, text, len);
    copy[len] = '\0';
    int rc = 0;
    char *d = strlen(copy) == len ? checksum_digits(copy) : NULL;
    if (!d) {
        rc = tp__error_set(err, TP_ECORRUPT, "manifest.json: no valid \"checksum\" member");
    } else {
        uint64_t stored = strtoull(d, NULL, 16);
        memset(d, '0', CHECKSUM_DIGITS);
        uint64_t actual = tp__hash64(copy, len);
        if (stored != actual)
            rc = tp__error_set(err, TP_ECORRUPT, "manifest.json: checksum mismatch (stored "
                               "%016" PRIx64 ", computed %016" PRIx64 ")", stored, actual);
    }
    free(copy);
    return rc;
}

static int bad(tp_error *err, const char *what)
{
    return tp__error_set(err, TP_ECORRUPT, "manifest.json: %s", what);
}

static int get_u64(json_t *o, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return TP_ECORRUPT;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static char *dup_string(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

static int parse_compression(const char *s, int *level)
{
    if (!strcmp(s, "none")) {
        *level = 0;
        return 0;
    }
    char *end;
    long l = strncmp(s, "zstd:", 5) ? -1 : strtol(s + 5, &end, 10);
    TP_RETURN_IF(l < 1 || l > 22 || *end, TP_ECORRUPT);
    *level = (int)l;
    return 0;
}

static int parse_field(json_t *o, tp_field_info *f)
{
    json_t *kind = json_object_get(o, "kind"), *comp = json_object_get(o, "compression");
    f->name = dup_string(o, "name");
    if (!f->name || !json_is_string(kind) || tp__field_kind_parse(json_string_value(kind),
                                                                  &f->kind) < 0)
        return TP_ECORRUPT;
    if (!json_is_string(comp) || parse_compression(json_string_value(comp), &f->zstd_level) < 0)
        return TP_ECORRUPT;
    if (f->kind != TP_FIELD_TENSOR)
        return 0;
    json_t *dtype = json_object_get(o, "dtype"), *shape = json_object_get(o, "shape");
    if (!json_is_string(dtype) || tp__dtype_parse(json_string_value(dtype), &f->dtype) < 0 ||
        !json_is_array(shape) || json_array_size(shape) > TP_MAX_DIMS)
        return TP_ECORRUPT;
    f->ndim = (uint32_t)json_array_size(shape);
    for (uint32_t d = 0; d < f->ndim; d++) {
        json_t *v = json_array_get(shape, d);
        TP_RETURN_IF(!json_is_integer(v), TP_ECORRUPT);
        f->shape[d] = json_integer_value(v);
    }
    return 0;
}

static int parse_fields(json_t *root, tp__manifest *m, tp_error *err)
{
    json_t *fields = json_object_get(root, "fields");
    if (!json_is_array(fields) || json_array_size(fields) < 1 ||
        json_array_size(fields) > TP_MAX_FIELDS)
        return bad(err, "\"fields\" must list 1-64 fields");
    m->nfields = json_array_size(fields);
    for (size_t i = 0; i < m->nfields; i++)
        if (parse_field(json_array_get(fields, i), &m->fields[i]) < 0)
            return tp__error_set(err, TP_ECORRUPT, "manifest.json: field %zu is malformed", i);
    tp_error detail;
    if (tp__fields_check(m->fields, m->nfields, &detail) < 0)
        return tp__error_set(err, TP_ECORRUPT, "manifest.json: %s", detail.msg);
    return 0;
}

static int parse_classes(json_t *root, tp__manifest *m, tp_error *err)
{
    json_t *classes = json_object_get(root, "classes");
    if (!json_is_array(classes))
        return bad(err, "\"classes\" must be an array");
    m->classes = calloc(json_array_size(classes) + 1, sizeof(char *));
    if (!m->classes)
        return tp__error_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < json_array_size(classes); i++) {
        json_t *c = json_array_get(classes, i);
        if (!json_is_string(c) || !(m->classes[i] = strdup(json_string_value(c))))
            return bad(err, "a class name is not a string");
        m->nclasses = i + 1;
    }
    return 0;
}

/* A dataset id: 32 lower-case hex digits. @return : 0 or -1. */
int tp__manifest_id(json_t *v, unsigned char *out)
{
    const char *id = json_string_value(v);
    if (!id || strlen(id) != 2 * TP_DATASET_ID_BYTES ||
        strspn(id, "0123456789abcdef") != 2 * TP_DATASET_ID_BYTES)
        return -1;
    for (int i = 0; i < TP_DATASET_ID_BYTES; i++)
        out[i] = (unsigned char)strtoul((char[3]){id[2 * i], id[2 * i + 1], 0}, NULL, 16);
    return 0;
}

bool tp__shard_file_ok(const char *f)
{
    return f && f[0] && f[0] != '.' && strlen(f) < 256 &&
           strspn(f, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
               strlen(f);
}

static int parse_shards(json_t *root, tp__manifest *m, tp_error *err)
{
    json_t *shards = json_object_get(root, "shards");
    if (!json_is_array(shards))
        return bad(err, "\"shards\" must be an array");
    size_t n = json_array_size(shards);
    m->shards = calloc(n + 1, sizeof(*m->shards));
    if (!m->shards)
        return tp__error_set(err, -ENOMEM, "out of memory");
    uint64_t next = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(shards, i);
        tp__manifest_shard *sh = &m->shards[i];
        m->nshards = i + 1;
        sh->file = dup_string(s, "file");
        if (!tp__shard_file_ok(sh->file) || get_u64(s, "first_sample", &sh->first_sample) < 0 ||
            get_u64(s, "samples", &sh->samples) < 0 || get_u64(s, "bytes", &sh->bytes) < 0)
            return tp__error_set(err, TP_ECORRUPT, "manifest.json: shard %zu is malformed", i);
        json_t *origin = json_object_get(s, "origin");
        if (origin && (tp__manifest_id(json_object_get(origin, "id"), sh->origin_id) < 0 ||
                       get_u64(origin, "shard_index", &sh->origin_index) < 0 ||
                       get_u64(origin, "first_sample", &sh->origin_first) < 0))
            return tp__error_set(err, TP_ECORRUPT, "manifest.json: shard %zu has a malformed "
                                 "origin", i);
        sh->has_origin = origin != NULL;
        if (sh->first_sample != next)
            return tp__error_set(err, TP_ECORRUPT, "manifest.json: shard %zu starts at sample "
                                 "%" PRIu64 ", expected %" PRIu64, i, sh->first_sample, next);
        next += sh->samples;
        bytes += sh->bytes;
    }
    if (next != m->samples || bytes != m->bytes)
        return bad(err, "shard sample or byte counts do not add up to the totals");
    return 0;
}

static int parse_header(json_t *root, tp__manifest *m, tp_error *err)
{
    json_t *fmt = json_object_get(root, "format"), *kind = json_object_get(root, "shard_format");
    uint64_t version, align;
    if (json_is_string(fmt) && !strcmp(json_string_value(fmt), TP_TOKENS_FORMAT))
        return tp__error_set(err, TP_EUSAGE, "manifest.json: a token dataset, read as "
                             "windows (seq_len) rather than as samples");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "turbopump-dataset"))
        return bad(err, "not a turbopump dataset manifest");
    if (get_u64(root, "version", &version) < 0)
        return bad(err, "no \"version\"");
    if (version != TP_FORMAT_VERSION)
        return tp__error_set(err, TP_EVERSION, "manifest.json: format version %" PRIu64
                             " (this build reads %d)", version, TP_FORMAT_VERSION);
    const char *k = json_is_string(kind) ? json_string_value(kind) : "";
    m->format = !strcmp(k, "record") ? TP_SHARD_RECORD : !strcmp(k, "lmdb") ? TP_SHARD_LMDB : 0;
    if (!m->format)
        return bad(err, "\"shard_format\" must be \"record\" or \"lmdb\"");
    if (get_u64(root, "align", &align) < 0 || align < 1 || align > 65536 || (align & (align - 1)))
        return bad(err, "\"align\" must be a power of two up to 65536");
    m->align = (uint32_t)align;
    if (m->format == TP_SHARD_LMDB && align != 1)
        return bad(err, "\"align\" must be 1 for LMDB shards");
    if (tp__manifest_id(json_object_get(root, "id"), m->id) < 0)
        return bad(err, "\"id\" must be 32 lower-case hex digits");
    if (get_u64(root, "samples", &m->samples) < 0 || get_u64(root, "bytes", &m->bytes) < 0)
        return bad(err, "\"samples\" and \"bytes\" must be non-negative integers");
    m->source = dup_string(root, "source");
    if (!m->source)
        return bad(err, "\"source\" must be a string");
    json_t *dict = json_object_get(root, "zstd_dict");
    if (!dict)
        return 0;
    const char *file = json_string_value(json_object_get(dict, "file"));
    const char *sum = json_string_value(json_object_get(dict, "checksum"));
    if (!file || strcmp(file, TP_DICT_FILE) || get_u64(dict, "bytes", &m->dict_bytes) < 0 ||
        m->dict_bytes == 0 || m->dict_bytes > TP_DICT_MAX || !sum || strlen(sum) != 21 ||
        strncmp(sum, "xxh3:", 5) || strspn(sum + 5, "0123456789abcdef") != 16)
        return bad(err, "\"zstd_dict\" is malformed");
    m->dict_checksum = strtoull(sum + 5, NULL, 16);
    m->has_dict = true;
    return 0;
}

int tp__manifest_parse(const char *text, size_t len, tp__manifest *m, tp_error *err)
{
    memset(m, 0, sizeof(*m));
    TP_TRY(tp__manifest_verify(text, len, err));
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return tp__error_set(err, TP_ECORRUPT, "manifest.json:%d:%d: %s", jerr.line,
                             jerr.column, jerr.text);
    int rc = json_is_object(root) ? 0 : bad(err, "top level is not an object");
    if (rc == 0)
        rc = parse_header(root, m, err);
    if (rc == 0)
        rc = parse_fields(root, m, err);
    if (rc == 0)
        rc = parse_classes(root, m, err);
    if (rc == 0)
        rc = parse_shards(root, m, err);
    json_decref(root);
    if (rc < 0)
        tp__manifest_free(m);
    return rc;
}

void tp__manifest_free(tp__manifest *m)
{
    for (size_t i = 0; i < m->nfields; i++)
        free((char *)m->fields[i].name);
    for (size_t i = 0; i < m->nclasses; i++)
        free(m->classes[i]);
    for (size_t i = 0; i < m->nshards; i++)
        free(m->shards[i].file);
    free(m->classes);
    free(m->shards);
    free(m->source);
    memset(m, 0, sizeof(*m));
}
