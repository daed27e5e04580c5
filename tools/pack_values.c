/* The values of one sample for `turbopump pack`: files read, images checked (JPEG or
 * PNG header and end), labels parsed, .npy arrays checked against their field, zstd
 * applied, and the record encoded. Runs in the workers, in parallel. */
#include "pack.h"

#include <stdlib.h>

static int read_input(const char *path, unsigned char **buf, size_t *len, char *why,
                      size_t whylen)
{
    char *data;
    int rc = tp__read_file(path, MAX_INPUT, &data, len);
    if (rc == TP_ETOOBIG)
        snprintf(why, whylen, "larger than %u MiB", MAX_INPUT >> 20);
    else if (rc < 0)
        snprintf(why, whylen, "cannot read: %s", tp_strerror(rc));
    else if (*len == 0)
        snprintf(why, whylen, "empty file");
    else {
        *buf = (unsigned char *)data;
        return 0;
    }
    if (rc == 0)
        free(data);
    return -1;
}

/* An int64 field's value from decimal text (WebDataset's .cls: "7", "-1\n"). */
static bool parse_int(const unsigned char *p, size_t n, int64_t *out)
{
    while (n && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    while (n && (*p == ' ' || *p == '\t'))
        p++, n--;
    char text[24];
    if (!n || n >= sizeof(text))
        return false;
    memcpy(text, p, n);
    text[n] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || end == text || text[0] == '+' || (text[0] == '-' && !text[1]))
        return false;
    *out = v;
    return true;
}

typedef struct shape_str {
    char s[TP_MAX_DIMS * 21 + 3];
} shape_str;

static shape_str shape_text(const int64_t *shape, uint32_t ndim)
{
    shape_str t;
    int n = snprintf(t.s, sizeof(t.s), "(");
    for (uint32_t d = 0; d < ndim; d++)
        n += snprintf(t.s + n, sizeof(t.s) - (size_t)n, "%s%lld", d ? ", " : "",
                      (long long)shape[d]);
    snprintf(t.s + n, sizeof(t.s) - (size_t)n, ")");
    return t;
}

/* --jpeg-seek: the JPEG re-encoded with restart markers (codecs/jpeg_seek.c), or kept as
 * it is when it is of a kind the re-encoder leaves alone (CMYK, 12-bit, arithmetic-coded,
 * a progressive file whose scans leave coefficients out) or has corrupt data, which it
 * never papers over. @return : 0, or -1 (out of memory, said in `why`). */
static int make_seekable(const pack_job *j, slot *s, const unsigned char **data, size_t *len,
                         unsigned char **owned, char *why, size_t wl)
{
    tp_error err;
    size_t out_len;
    int rc = tp_jpeg_make_seekable(*data, *len, (int)j->o->jpeg_seek, owned, &out_len, &err);
    if (rc == -ENOMEM) {
        snprintf(why, wl, "%s", err.msg);
        return -1;
    }
    if (rc != 1) {
        s->seek_kept++;
        return 0;
    }
    s->seek_done++;
    s->seek_in += *len;
    s->seek_out += out_len;
    *data = *owned;
    *len = out_len;
    return 0;
}

/* Reads, checks and encodes one sample into its slot (rec stays NULL when skipped). */
void tp__pack_process(const pack_job *j, tp_zstd *z, slot *s)
{
    const tp_source *src = j->src;
    unsigned char *owned[TP_SOURCE_MAX_FIELDS] = {0}, *packed[TP_SOURCE_MAX_FIELDS] = {0};
    unsigned char *seekable[TP_SOURCE_MAX_FIELDS] = {0};
    unsigned char ints[TP_SOURCE_MAX_FIELDS][8];
    tp_field_value v[TP_SOURCE_MAX_FIELDS];
    size_t n = src->nfields;
    for (size_t f = 0; f < n; f++) {
        const tp_source_value *in = &s->sample.v[f];
        const tp_field_info *fi = &src->fields[f];
        const unsigned char *data = in->data;
        size_t len = in->len;
        char *why = s->why;
        size_t wl = sizeof(s->why);
        if (!in->path) { /* name the field: the message names the sample, not a file */
            int k = snprintf(why, wl, "%s: ", fi->name);
            why += k;
            wl -= (size_t)k;
        }
        if (in->path && read_input(in->path, &owned[f], &len, s->why, sizeof(s->why)) < 0)
            goto fail;
        if (in->path)
            data = owned[f];
        s->src_bytes += in->is_int ? 0 : len;
        v[f] = (tp_field_value){.field = (uint32_t)f, .data = data, .size = len, .raw_size = len};
        tp_error err;
        if (fi->kind == TP_FIELD_INT64) {
            int64_t x = in->i64;
            if (!in->is_int && !parse_int(data, len, &x)) {
                snprintf(why, wl, "not an integer: '%.*s'", (int)TP_MIN(len, 24), data);
                goto fail;
            }
            tp__put64(ints[f], (uint64_t)x);
            v[f] = (tp_field_value){.field = (uint32_t)f, .data = ints[f], .size = 8,
                                    .raw_size = 8};
            continue;
        }
        if (fi->kind == TP_FIELD_IMAGE &&
            tp_image_inspect(data, len, TP_JPEG_DEFAULT_MAX_PIXELS, &err) < 0) {
            snprintf(why, wl, "%s", err.msg);
            goto fail;
        }
        if (fi->kind == TP_FIELD_IMAGE && j->o->jpeg_seek && !tp_png_signature(data, len)) {
            if (make_seekable(j, s, &data, &len, &seekable[f], why, wl) < 0)
                goto fail;
            v[f].data = data;
            v[f].size = v[f].raw_size = len;
        }
        if (fi->kind == TP_FIELD_TENSOR && !in->raw) { /* a .npy: its array's bytes */
            tp_npy a;
            if (tp__npy_parse(data, len, len, &a, &err) < 0) {
                snprintf(why, wl, "%s", err.msg);
                goto fail;
            }
            if (a.dtype != fi->dtype || a.ndim != fi->ndim ||
                memcmp(a.shape, fi->shape, a.ndim * sizeof(int64_t))) {
                snprintf(why, wl, "array of %s %s, not %s %s like the first sample",
                         tp_dtype_name(a.dtype), shape_text(a.shape, a.ndim).s,
                         tp_dtype_name(fi->dtype), shape_text(fi->shape, fi->ndim).s);
                goto fail;
            }
            data += a.offset;
            len = (size_t)a.bytes;
            v[f].data = data;
            v[f].size = v[f].raw_size = len;
        }
        int64_t zlen = j->o->zstd && z ? tp_zstd_compress_with(z, j->dict, data, len,
                                                               (int)j->o->zstd, &packed[f])
                                       : -1;
        if (zlen >= 0 && (uint64_t)zlen < len) {
            v[f].data = packed[f];
            v[f].size = (uint64_t)zlen;
            v[f].compression = j->dict ? TP_COMPRESS_ZSTD_DICT : TP_COMPRESS_ZSTD;
        }
    }
    s->why[0] = '\0';
    s->len = tp__record_size(v, n);
    s->rec = malloc(s->len);
    if (s->rec)
        s->checksum = tp__record_encode(s->rec, v, n);
    else
        snprintf(s->why, sizeof(s->why), "out of memory");
fail:
    for (size_t f = 0; f < n; f++) {
        free(owned[f]);
        free(packed[f]);
        free(seekable[f]);
    }
}

