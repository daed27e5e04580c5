/* libFuzzer target: CSV and JSON Lines listings (the first byte picks which). Every
 * sample has its path and all its fields, bytes inside the sample's buffer; labels that
 * are class names index the classes. */
#include "source_drain.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const tp_source *src, const tp_source_sample *s)
{
    for (size_t f = 0; f < src->nfields; f++) {
        const tp_source_value *v = &s->v[f];
        bool cls = v->is_int && src->nclasses && !strcmp(src->fields[f].name, "cls");
        if (!v->present || (v->is_int && src->fields[f].kind != TP_FIELD_INT64) ||
            (cls && (v->i64 < 0 || (uint64_t)v->i64 >= src->nclasses)) ||
            (!v->path && !v->is_int && !in_buffer(s, v)))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_source_options o = {0};
    tp_source *src;
    tp_error err;
    if (size >= 1 && tp__listing_open_memory((const char *)data + 1, size - 1, data[0] & 1,
                                             "fuzz", "/d", &o, &src, &err) == 0)
        drain(src, check);
    return 0;
}
