/* For the fuzz targets of ingest/ sources: reads every sample of an open source, calling
 * `check` on each (which aborts on a broken promise), and closes it. No more samples may
 * come than the source counted, and only running out of memory may end it with an error. */
#ifndef TP_FUZZ_SOURCE_DRAIN_H
#define TP_FUZZ_SOURCE_DRAIN_H

#include "source.h"

#include <stdlib.h>

static void drain(tp_source *src, void (*check)(const tp_source *, const tp_source_sample *))
{
    tp_source_sample s;
    tp_source_sample_init(&s);
    tp_error err;
    uint64_t n = 0;
    int rc;
    while ((rc = tp_source_next(src, &s, &err)) == 1) {
        if (!s.key || !s.where || ++n > src->count)
            abort();
        check(src, &s);
    }
    if (rc < 0 && rc != -ENOMEM)
        abort();
    tp_source_sample_free(&s);
    tp_source_close(src);
}

/* A value held in the sample's buffer lies inside it. */
static int in_buffer(const tp_source_sample *s, const tp_source_value *v)
{
    return !v->len || (v->data >= s->buf && v->data + v->len <= s->buf + s->buf_len);
}

#endif
