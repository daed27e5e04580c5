/* The record encoding shared by both shard kinds: a checksummed header, a table of
 * (field, compression, size, raw size) entries and the payloads, each zero-padded to a
 * multiple of 8 bytes so every payload is 8-byte aligned and raw tensors can be used in
 * place; the padding does not depend on field order. Parsing trusts nothing: the checksum is verified first,
 * then every size and offset is bounded by the buffer. */
#include "storage.h"

#include <stdlib.h>
#include <sys/uio.h>

static uint64_t pad8(uint64_t x) { return (x + (TP_RECORD_PAD - 1)) & ~(uint64_t)(TP_RECORD_PAD - 1); }

uint64_t tp__record_size(const tp_field_value *values, size_t n)
{
    uint64_t off = TP_RECORD_HEADER + (uint64_t)n * TP_RECORD_ENTRY;
    for (size_t i = 0; i < n; i++)
        off += pad8(values[i].size);
    return off;
}

static int by_field(const void *a, const void *b)
{
    const tp_field_value *x = *(const tp_field_value *const *)a;
    const tp_field_value *y = *(const tp_field_value *const *)b;
    return (x->field > y->field) - (x->field < y->field);
}

uint64_t tp__record_encode(unsigned char *out, const tp_field_value *values, size_t n)
{
    assert(n <= TP_MAX_FIELDS);
    const tp_field_value *sorted[TP_MAX_FIELDS];
    for (size_t i = 0; i < n; i++)
        sorted[i] = &values[i];
    qsort(sorted, n, sizeof(sorted[0]), by_field);

    tp__put32(out + 8, TP_RECORD_MAGIC);
    tp__put16(out + 12, (uint16_t)n);
    tp__put16(out + 14, 0);
    uint64_t off = TP_RECORD_HEADER + (uint64_t)n * TP_RECORD_ENTRY;
    for (size_t i = 0; i < n; i++) {
        const tp_field_value *v = sorted[i];
        unsigned char *e = out + TP_RECORD_HEADER + i * TP_RECORD_ENTRY;
        memset(e, 0, TP_RECORD_ENTRY);
        tp__put16(e, (uint16_t)v->field);
        e[2] = (unsigned char)v->compression;
        tp__put64(e + 8, v->size);
        tp__put64(e + 16, v->compression == TP_COMPRESS_NONE ? v->size : v->raw_size);
        if (v->size)
            memcpy(out + off, v->data, v->size);
        memset(out + off + v->size, 0, pad8(v->size) - v->size);
        off += pad8(v->size);
    }
    uint64_t sum = tp__hash64(out + 8, off - 8);
    tp__put64(out, sum);
    return sum;
}

/* Where logical offset `off` of a record read in pieces lies, if [off, off + size) is
 * inside one piece. */
static const unsigned char *locate(const tp_piece *p, size_t n, uint64_t off, uint64_t size)
{
    for (size_t i = 0; i < n; off -= p[i].len, i++)
        if (off < p[i].len || (size == 0 && off == p[i].len))
            return size <= p[i].len - off ? (const unsigned char *)p[i].data + off : NULL;
    return NULL;
}

static int parse_entry(const tp_piece *p, size_t np, uint64_t len, size_t i, uint64_t *off,
                       uint32_t prev, uint32_t nfields_max, tp_field_value *v, tp_error *err)
{
    const unsigned char *e = (const unsigned char *)p[0].data + TP_RECORD_HEADER +
                             i * TP_RECORD_ENTRY;
    v->field = tp__le16(e);
    v->compression = (tp_compression)e[2];
    v->size = tp__le64(e + 8);
    v->raw_size = tp__le64(e + 16);
    static const unsigned char zero[5];
    if ((i > 0 && v->field <= prev) || v->field >= nfields_max)
        return tp__error_set(err, TP_ECORRUPT, "field entry %zu: field index %u out of order "
                             "or unknown", i, v->field);
    if (e[2] > TP_COMPRESS_ZSTD_DICT || memcmp(e + 3, zero, 5) != 0)
        return tp__error_set(err, TP_ECORRUPT, "field entry %zu: bad compression or flags", i);
    if (v->compression == TP_COMPRESS_NONE && v->raw_size != v->size)
        return tp__error_set(err, TP_ECORRUPT, "field entry %zu: raw size differs", i);
    uint64_t start = *off;
    if (v->size > len - start || pad8(v->size) > len - start)
        return tp__error_set(err, TP_ECORRUPT, "field entry %zu: %llu bytes overrun the "
                             "%llu-byte record", i, (unsigned long long)v->size,
                             (unsigned long long)len);
    if (!(v->data = locate(p, np, start, v->size)))
        return tp__error_set(err, TP_EUSAGE, "field entry %zu lies across two pieces", i);
    *off = start + pad8(v->size);
    return 0;
}

TP_API int tp_record_parse(const void *data, size_t len, uint64_t expected_checksum,
                           uint32_t nfields_max, tp_record *out, tp_error *err)
{
    tp_piece whole = {.data = data, .len = len};
    return tp_record_parse_pieces(&whole, 1, expected_checksum, nfields_max, out, err);
}

TP_API int tp_record_parse_pieces(const tp_piece *pieces, size_t npieces,
                                  uint64_t expected_checksum, uint32_t nfields_max,
                                  tp_record *out, tp_error *err)
{
    assert(npieces >= 1 && npieces <= TP_RECORD_MAX_PIECES);
    const unsigned char *buf = pieces[0].data;
    uint64_t len = 0;
    struct iovec iov[TP_RECORD_MAX_PIECES];
    for (size_t i = 0; i < npieces; i++) {
        len += pieces[i].len;
        iov[i] = (struct iovec){.iov_base = (void *)pieces[i].data, .iov_len = pieces[i].len};
    }
    if (len < TP_RECORD_HEADER)
        return tp__error_set(err, TP_ECORRUPT, "record of %llu bytes is shorter than its "
                             "header", (unsigned long long)len);
    if (pieces[0].len < TP_RECORD_HEADER)
        return tp__error_set(err, TP_EUSAGE, "the record's header lies across pieces");
    iov[0].iov_base = (void *)(buf + 8);
    iov[0].iov_len -= 8;
    uint64_t stored = tp__le64(buf), actual = tp__hash64_pieces(iov, npieces);
    if (stored != actual)
        return tp__error_set(err, TP_ECORRUPT, "record checksum mismatch (stored %016llx, "
                             "computed %016llx)", (unsigned long long)stored,
                             (unsigned long long)actual);
    if (expected_checksum && stored != expected_checksum)
        return tp__error_set(err, TP_ECORRUPT, "record is not the one the index names "
                             "(checksum %016llx, index says %016llx)",
                             (unsigned long long)stored, (unsigned long long)expected_checksum);
    uint32_t n = tp__le16(buf + 12);
    if (tp__le32(buf + 8) != TP_RECORD_MAGIC || tp__le16(buf + 14) != 0 || n > TP_MAX_FIELDS ||
        TP_RECORD_HEADER + (uint64_t)n * TP_RECORD_ENTRY > len)
        return tp__error_set(err, TP_ECORRUPT, "bad record header (magic, flags or %u "
                             "fields)", n);
    uint64_t off = TP_RECORD_HEADER + (uint64_t)n * TP_RECORD_ENTRY;
    if (off > pieces[0].len)
        return tp__error_set(err, TP_EUSAGE, "the record's field table lies across pieces");
    for (uint32_t i = 0; i < n; i++)
        TP_TRY(parse_entry(pieces, npieces, len, i, &off, i ? out->fields[i - 1].field : 0,
                           nfields_max, &out->fields[i], err));
    if (off != len)
        return tp__error_set(err, TP_ECORRUPT, "record has %llu trailing bytes",
                             (unsigned long long)(len - off));
    out->nfields = n;
    return 0;
}

TP_API const tp_field_value *tp_record_field(const tp_record *rec, uint32_t field)
{
    for (uint32_t i = 0; i < rec->nfields; i++)
        if (rec->fields[i].field == field)
            return &rec->fields[i];
    return NULL;
}

void tp__shard_header_encode(unsigned char out[TP_SHARD_HEADER], const char magic[8],
                             const tp__shard_header *h)
{
    memset(out, 0, TP_SHARD_HEADER);
    memcpy(out, magic, 8);
    tp__put16(out + 8, TP_FORMAT_VERSION);
    tp__put16(out + 10, TP_SHARD_HEADER);
    tp__put32(out + 12, h->align);
    tp__put64(out + 16, h->shard_index);
    tp__put64(out + 24, h->first_sample);
    memcpy(out + 32, h->id, TP_DATASET_ID_BYTES);
    tp__put64(out + 56, tp__hash64(out, 56));
}

int tp__shard_header_decode(const unsigned char in[TP_SHARD_HEADER], const char magic[8],
                            tp__shard_header *h, tp_error *err, const char *what)
{
    if (memcmp(in, magic, 8) != 0)
        return tp__error_set(err, TP_ECORRUPT, "%s: bad shard magic", what);
    if (tp__le64(in + 56) != tp__hash64(in, 56))
        return tp__error_set(err, TP_ECORRUPT, "%s: shard header checksum mismatch", what);
    if (tp__le16(in + 8) != TP_FORMAT_VERSION)
        return tp__error_set(err, TP_EVERSION, "%s: shard format version %u (this build "
                             "reads %u)", what, tp__le16(in + 8), TP_FORMAT_VERSION);
    if (tp__le16(in + 10) != TP_SHARD_HEADER || tp__le64(in + 48) != 0)
        return tp__error_set(err, TP_ECORRUPT, "%s: bad shard header size or flags", what);
    h->align = tp__le32(in + 12);
    if (h->align < 1 || h->align > 65536 || (h->align & (h->align - 1)))
        return tp__error_set(err, TP_ECORRUPT, "%s: shard alignment %u is not a power of "
                             "two up to 65536", what, h->align);
    h->shard_index = tp__le64(in + 16);
    h->first_sample = tp__le64(in + 24);
    memcpy(h->id, in + 32, TP_DATASET_ID_BYTES);
    return 0;
}
