/* libFuzzer target: WebDataset grouping of one tar shard held in memory (libarchive reads
 * it, plain or compressed), with every extension a field. Samples must be whole: every
 * field present with its bytes inside the sample's buffer; warnings are counted, never
 * fatal; the source must end. */
#include "source.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count(void *ctx, const char *where, const char *why)
{
    (void)where;
    (void)why;
    ++*(size_t *)ctx;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t warned = 0;
    tp_source_options o = {.warn = count, .warn_ctx = &warned};
    tp_source *src;
    tp_error err;
    if (tp__wds_open_memory(data, size, &o, &src, &err) != 0)
        return 0;
    tp_source_sample s;
    tp_source_sample_init(&s);
    uint64_t n = 0;
    int rc;
    while ((rc = tp_source_next(src, &s, &err)) == 1) {
        if (!s.key || !s.where || ++n > src->count)
            abort();
        for (size_t f = 0; f < src->nfields; f++) {
            const tp_source_value *v = &s.v[f];
            if (!v->present || v->path || v->is_int || v->len > s.buf_len ||
                (v->len && (v->data < s.buf || v->data + v->len > s.buf + s.buf_len)))
                abort();
        }
    }
    if (rc < 0 && rc != -ENOMEM)
        abort();
    tp_source_sample_free(&s);
    tp_source_close(src);
    return 0;
}
