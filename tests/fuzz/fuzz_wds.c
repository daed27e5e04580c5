/* libFuzzer target: WebDataset grouping of one tar shard held in memory (libarchive reads
 * it, plain or compressed), with every extension a field. Samples must be whole: every
 * field present with its bytes inside the sample's buffer; warnings are counted, never
 * fatal; the source must end. */
#include "source_drain.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count(void *ctx, const char *where, const char *why)
{
    (void)where;
    (void)why;
    ++*(size_t *)ctx;
    return 0;
}

static void check(const tp_source *src, const tp_source_sample *s)
{
    for (size_t f = 0; f < src->nfields; f++) {
        const tp_source_value *v = &s->v[f];
        if (!v->present || v->path || v->is_int || !in_buffer(s, v))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t warned = 0;
    tp_source_options o = {.warn = count, .warn_ctx = &warned};
    tp_source *src;
    tp_error err;
    if (tp__wds_open_memory(data, size, &o, &src, &err) == 0)
        drain(src, check);
    return 0;
}
