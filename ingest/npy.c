/* NumPy's .npy format (versions 1.0, 2.0 and 3.0): the magic, a little-endian header
 * length and a header that is a Python dict literal of three keys, e.g.
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces to an alignment and ended by a newline; the array follows. The
 * header is parsed strictly: exactly those keys, each once, a little-endian (or
 * single-byte) dtype of a kind datasets store, C order, at most TP_MAX_DIMS dimensions,
 * and a payload of exactly shape x itemsize bytes. Token arrays (TP_NPY_TOKENS) may also be
 * uint32, empty, and as large as a file goes. */
#include "source.h"

#include <stdlib.h>

typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_space(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n'))
        c->p++;
}

static bool eat(cursor *c, char ch)
{
    skip_space(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* A quoted string ('...' or "...") without escapes, into buf. */
static bool string(cursor *c, char *buf, size_t cap)
{
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return false;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= cap)
            return false;
        buf[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return false;
    c->p++;
    buf[n] = '\0';
    return true;
}

static bool word(cursor *c, const char *w)
{
    skip_space(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n))
        return false;
    c->p += n;
    return true;
}

static bool shape(cursor *c, tp_npy *out)
{
    if (!eat(c, '('))
        return false;
    out->ndim = 0;
    for (;;) {
        skip_space(c);
        if (eat(c, ')'))
            return true;
        if (out->ndim == TP_MAX_DIMS || c->p >= c->end || *c->p < '0' || *c->p > '9')
            return false;
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - 9) / 10)
                return false;
            v = v * 10 + (*c->p++ - '0');
        }
        out->shape[out->ndim++] = v;
        if (!eat(c, ',')) /* the last element may omit its comma, unless it is the only one */
            return eat(c, ')') && out->ndim > 1 ? true : false;
    }
}

static tp_dtype dtype_of(const char *d, unsigned flags)
{
    if ((flags & TP_NPY_TOKENS) && !strcmp(d, "<u4"))
        return TP_DTYPE_UINT32;
    static const struct {
        const char *descr;
        tp_dtype t;
    } k[] = {{"|u1", TP_DTYPE_UINT8}, {"<u1", TP_DTYPE_UINT8}, {"|b1", TP_DTYPE_UINT8},
             {"|i1", TP_DTYPE_INT8},  {"<i1", TP_DTYPE_INT8},  {"<u2", TP_DTYPE_UINT16},
             {"<i2", TP_DTYPE_INT16}, {"<i4", TP_DTYPE_INT32}, {"<i8", TP_DTYPE_INT64},
             {"<f2", TP_DTYPE_FLOAT16}, {"<f4", TP_DTYPE_FLOAT32}, {"<f8", TP_DTYPE_FLOAT64}};
    for (size_t i = 0; i < TP_ARRAY_LEN(k); i++)
        if (!strcmp(d, k[i].descr))
            return k[i].t;
    return TP_DTYPE_NONE;
}

int tp__npy_parse(const void *data, size_t len, size_t total, tp_npy *out, tp_error *err)
{
    return tp__npy_parse_as(data, len, total, TP_SOURCE_MAX_VALUE, 0, out, err);
}

int tp__npy_parse_as(const void *data, size_t len, uint64_t total, uint64_t max_bytes,
                     unsigned flags, tp_npy *out, tp_error *err)
{
    const unsigned char *b = data;
    if (len < 10 || memcmp(b, "\x93NUMPY", 6))
        return tp__error_set(err, TP_EBADIMAGE, ".npy: no NumPy magic");
    unsigned major = b[6];
    size_t hlen, start;
    if (major == 1) {
        hlen = tp__le16(b + 8);
        start = 10;
    } else if ((major == 2 || major == 3) && len >= 12) {
        hlen = tp__le32(b + 8);
        start = 12;
    } else {
        return tp__error_set(err, TP_EBADIMAGE, ".npy: version %u.%u is not supported", major,
                             b[7]);
    }
    if (hlen > len - start || hlen > 65536)
        return tp__error_set(err, TP_EBADIMAGE, ".npy: header of %zu bytes runs past the end",
                             hlen);
    cursor c = {(const char *)b + start, (const char *)b + start + hlen};
    char descr[16] = "";
    bool have[3] = {false, false, false}, fortran = false;
    if (!eat(&c, '{'))
        return tp__error_set(err, TP_EBADIMAGE, ".npy: header is not a dict");
    for (;;) {
        char key[16];
        if (eat(&c, '}'))
            break;
        if (!string(&c, key, sizeof(key)) || !eat(&c, ':'))
            return tp__error_set(err, TP_EBADIMAGE, ".npy: malformed header");
        int k = !strcmp(key, "descr") ? 0 : !strcmp(key, "fortran_order") ? 1
              : !strcmp(key, "shape") ? 2 : -1;
        if (k < 0 || have[k])
            return tp__error_set(err, TP_EBADIMAGE, ".npy: unexpected or repeated key '%s'",
                                 key);
        have[k] = true;
        bool ok = k == 0 ? string(&c, descr, sizeof(descr))
                : k == 1 ? (word(&c, "False") || (fortran = word(&c, "True")))
                         : shape(&c, out);
        if (!ok)
            return tp__error_set(err, TP_EBADIMAGE, ".npy: bad value for '%s'", key);
        if (!eat(&c, ',')) {
            if (!eat(&c, '}'))
                return tp__error_set(err, TP_EBADIMAGE, ".npy: malformed header");
            break;
        }
    }
    skip_space(&c);
    if (c.p != c.end || !have[0] || !have[1] || !have[2])
        return tp__error_set(err, TP_EBADIMAGE, ".npy: header lacks descr, fortran_order "
                             "or shape, or has trailing bytes");
    if (fortran)
        return tp__error_set(err, TP_EBADIMAGE, ".npy: Fortran-order arrays are not "
                             "supported (save with np.ascontiguousarray)");
    if ((out->dtype = dtype_of(descr, flags)) == TP_DTYPE_NONE)
        return tp__error_set(err, TP_EBADIMAGE, ".npy: dtype '%s' is not supported "
                             "(little-endian integers and floats only)", descr);
    if (out->ndim == 0) { /* a scalar: one element */
        out->ndim = 1;
        out->shape[0] = 1;
    }
    uint64_t n = tp_dtype_size(out->dtype);
    for (uint32_t d = 0; d < out->ndim; d++) {
        bool empty = out->shape[d] == 0, empty_ok = (flags & TP_NPY_TOKENS) != 0;
        if ((empty && !empty_ok) || (n && (uint64_t)out->shape[d] > max_bytes / n))
            return tp__error_set(err, TP_EBADIMAGE, ".npy: dimension %u of %lld is empty or "
                                 "too large", d, (long long)out->shape[d]);
        n *= (uint64_t)out->shape[d];
    }
    out->offset = start + hlen;
    out->bytes = n;
    if (total < out->offset || n != total - out->offset)
        return tp__error_set(err, TP_EBADIMAGE, ".npy: %lld bytes of data where the header "
                             "says %llu", (long long)total - (long long)out->offset,
                             (unsigned long long)n);
    return 0;
}
