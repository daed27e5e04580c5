/* The slot layout of a session's outputs, and the direct-read plan of records whose
 * layout is predictable (outputs.h). */
#include "outputs.h"

#define DIRECT_MIN 16384  /* smaller payloads are cheaper to copy than to split a read */

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

static uint64_t pad8(uint64_t x)
{
    return (x + TP_RECORD_PAD - 1) & ~(uint64_t)(TP_RECORD_PAD - 1);
}

/* Bytes of every value of a fixed-size field (int64, tensor); 0 for the others, or when
 * the size does not fit 64 bits. */
static uint64_t fixed_bytes(const tp_field_info *fi)
{
    if (fi->kind != TP_FIELD_INT64 && fi->kind != TP_FIELD_TENSOR)
        return 0;
    uint64_t n = tp_dtype_size(fi->kind == TP_FIELD_INT64 ? TP_DTYPE_INT64 : fi->dtype);
    for (uint32_t d = 0; fi->kind == TP_FIELD_TENSOR && d < fi->ndim; d++)
        if (__builtin_mul_overflow(n, (uint64_t)fi->shape[d], &n))
            return 0;
    return n;
}

int tp__outputs_plan_direct(const tp_outputs *o, const tp_dataset *ds, uint64_t *at_out,
                            uint64_t *total)
{
    size_t n = tp_dataset_field_count(ds);
    uint64_t off = TP_RECORD_HEADER + n * TP_RECORD_ENTRY;
    uint64_t at[TP_MAX_FIELDS], size[TP_MAX_FIELDS];
    for (size_t i = 0; i < n; i++) {
        if (!(size[i] = fixed_bytes(tp_dataset_field(ds, i))))
            return -1;
        at[i] = off;
        off += pad8(size[i]);
    }
    int direct = -1;
    for (uint32_t i = 0; i < o->nf; i++) {
        const tp_out_field *f = &o->f[i];
        if (f->kind == TP_FIELD_TENSOR && f->sample_bytes >= DIRECT_MIN &&
            (direct < 0 || f->sample_bytes > o->f[direct].sample_bytes))
            direct = (int)i;
    }
    if (direct < 0)
        return -1;
    uint32_t k = o->f[direct].index;
    *at_out = at[k];
    *total = off;
    if (at[k] > TP_DIRECT_EDGE || off - at[k] - size[k] > TP_DIRECT_EDGE)
        return -1;
    return direct;
}

int tp__outputs_layout(tp_outputs *o, uint64_t batch, uint64_t desc_bytes, uint64_t *ids_offset,
                       uint64_t *slot_bytes, tp_error *err)
{
    uint64_t off = align_up(desc_bytes, 4096);
    *ids_offset = off;
    off = align_up(off + 8 * batch, 4096);
    for (uint32_t i = 0; i < o->nf; i++) {
        uint64_t bytes;
        if (__builtin_mul_overflow(o->f[i].sample_bytes, batch, &bytes) ||
            bytes > TP_RING_MAX_SLOT_BYTES)
            return tp__error_set(err, TP_ETOOBIG, "a batch of field '%s' exceeds %llu bytes",
                                 o->f[i].name, (unsigned long long)TP_RING_MAX_SLOT_BYTES);
        o->f[i].offset = off;
        off = align_up(off + bytes, 4096);
    }
    if (off > TP_RING_MAX_SLOT_BYTES)
        return tp__error_set(err, TP_ETOOBIG, "a batch of %llu bytes exceeds the %llu-byte "
                             "slot limit", (unsigned long long)off,
                             (unsigned long long)TP_RING_MAX_SLOT_BYTES);
    *slot_bytes = off;
    return 0;
}
