/* libFuzzer target: the pipeline description parser on arbitrary text. A description that
 * parses must format to a canonical text that parses back to the same pipeline, and that
 * text must format to itself. */
#include "tp_common.h"

#include <turbopump/pipeline.h>

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    tp_pipeline a, b;
    tp_error err;
    if (tp_pipeline_parse(text, &a, &err) == 0) {
        char one[TP_PIPELINE_TEXT_MAX * 2], two[TP_PIPELINE_TEXT_MAX * 2];
        int n = tp_pipeline_format(&a, one, sizeof(one));
        if (n < 0 || (size_t)n >= sizeof(one))
            abort();
        if (n < TP_PIPELINE_TEXT_MAX) { /* longer canonical forms cannot be sent */
            if (tp_pipeline_parse(one, &b, &err) != 0 || a.nops != b.nops)
                abort();
            for (uint32_t i = 0; i < a.nops; i++)
                if (memcmp(&a.ops[i], &b.ops[i], sizeof(a.ops[i])))
                    abort();
            if (tp_pipeline_format(&b, two, sizeof(two)) != n || strcmp(one, two))
                abort();
        }
        tp_pipeline_shape shape;
        tp_pipeline_shape_of(&a, &shape);
    }
    free(text);
    return 0;
}
