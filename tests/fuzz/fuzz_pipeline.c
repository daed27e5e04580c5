/* libFuzzer target: the pipeline description parser on arbitrary text. A description that
 * parses must format to a canonical text that parses back to the same pipeline, and that
 * text must format to itself; one that does not parse must say where ("at C: ...", with C
 * inside the text or just past its end). */
#include "tp_common.h"

#include <turbopump/pipeline.h>

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Sixteen ops of at most a few hundred characters each: the longest canonical text of
 * any pipeline fits, so a format that fails here is a bug. */
#define FORMAT_CAP (16 * TP_PIPELINE_TEXT_MAX)

static void check_refusal(const char *text, const tp_error *err)
{
    int at = 0;
    if (err->code != TP_EUSAGE || sscanf(err->msg, "at %d: ", &at) != 1)
        abort();
    size_t len = strlen(text);
    if (at < 1 || (size_t)at > TP_MIN(len, (size_t)TP_PIPELINE_TEXT_MAX - 1) + 1)
        abort();
}

static void check_accepted(tp_pipeline *a)
{
    static char one[FORMAT_CAP], two[FORMAT_CAP];
    tp_pipeline again = *a, b;
    tp_error err;
    /* a parsed pipeline is already checked: check changes nothing */
    if (tp_pipeline_check(&again, &err) != 0 || memcmp(&again, a, sizeof(*a)))
        abort();
    int n = tp_pipeline_format(a, one, sizeof(one));
    if (n < 0 || (size_t)n != strlen(one))
        abort();
    if (n < TP_PIPELINE_TEXT_MAX) { /* longer canonical forms cannot be parsed or sent */
        if (tp_pipeline_parse(one, &b, &err) != 0 || tp_pipeline_check(&b, &err) != 0)
            abort();
        if (memcmp(a, &b, sizeof(b)))
            abort();
        if (tp_pipeline_format(&b, two, sizeof(two)) != n || strcmp(one, two))
            abort();
    }
    tp_pipeline_shape shape;
    tp_pipeline_shape_of(a, &shape);
    if ((shape.ndim == 0) != (a->nops == 0))
        abort();
    for (uint32_t i = 0; i < shape.ndim; i++)
        if (shape.shape[i] < 1 || shape.shape[i] > TP_PIPELINE_MAX_SIZE)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    tp_pipeline a;
    tp_error err = {0};
    if (tp_pipeline_parse(text, &a, &err) == 0)
        check_accepted(&a);
    else
        check_refusal(text, &err);
    free(text);
    return 0;
}
