/* libFuzzer target: one TFRecord file in memory, framing (lengths, CRC-32C) and the
 * tf.train.Example inside each record, with every feature a field. Samples must be whole,
 * tensors exactly their shape's bytes; the source must end. */
#include "source_drain.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const tp_source *src, const tp_source_sample *s)
{
    for (size_t f = 0; f < src->nfields; f++) {
        const tp_source_value *v = &s->v[f];
        const tp_field_info *fi = &src->fields[f];
        if (!v->present || v->path || (v->is_int && fi->kind != TP_FIELD_INT64) ||
            (!v->is_int && !in_buffer(s, v)) ||
            (fi->kind == TP_FIELD_TENSOR &&
             v->len != (size_t)fi->shape[0] * tp_dtype_size(fi->dtype)))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_source_options o = {0};
    tp_source *src;
    tp_error err;
    if (tp__tfrecord_open_memory(data, size, &o, &src, &err) == 0)
        drain(src, check);
    return 0;
}
