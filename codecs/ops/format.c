/* The canonical text of a pipeline (include/turbopump/pipeline.h): every argument
 * named, numbers in their shortest round-trip form, so it parses back to the same
 * struct. */
#include "lang.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- the canonical text */

typedef struct writer {
    char *buf;
    size_t cap, len;
    bool over;
} writer;

static void put(writer *w, const char *fmt, ...) TP_PRINTF(2, 3);
static void put(writer *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->buf ? w->buf + TP_MIN(w->len, w->cap) : NULL,
                      w->len < w->cap ? w->cap - w->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        w->over = true;
    else
        w->len += (size_t)n;
}

/* The shortest of 15, 16 and 17 digits that reads back as the same double. */
static const char *dbl(char b[32], double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(b, 32, "%.*g", prec, v);
        if (strtod(b, NULL) == v)
            break;
    }
    return b;
}

/* Floats go through the parser's double, so the test is that same conversion. */
static const char *flt(char b[32], float v)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(b, 32, "%.*g", prec, (double)v);
        if ((float)strtod(b, NULL) == v)
            break;
    }
    return b;
}

static void put_size(writer *w, const tp_op *op)
{
    if (op->kind == TP_OP_RESIZE ? op->size[1] == 0 : op->size[0] == op->size[1])
        put(w, "%d", op->size[0]);
    else
        put(w, "%d:%d", op->size[0], op->size[1]);
}

static void put_range(writer *w, const char *name, const double r[2])
{
    char a[32], b[32];
    put(w, "%s=%s:%s", name, dbl(a, r[0]), dbl(b, r[1]));
}

static void put_channels(writer *w, const char *name, const float v[3])
{
    char a[32], b[32], c[32];
    put(w, "%s=%s:%s:%s", name, flt(a, v[0]), flt(b, v[1]), flt(c, v[2]));
}

static void put_op(writer *w, const tp_op *op)
{
    char a[32];
    put(w, "%s(", tp__op_def_of(op->kind)->name);
    switch (op->kind) {
    case TP_OP_RANDOM_RESIZED_CROP:
        put_size(w, op);
        put_range(w, ", scale", op->scale);
        put_range(w, ", ratio", op->ratio);
        break;
    case TP_OP_RESIZE:
        put_size(w, op);
        if (op->max_size)
            put(w, ", max_size=%d", op->max_size);
        break;
    case TP_OP_CENTER_CROP:
        put_size(w, op);
        if (op->fill)
            put(w, ", fill=%d", op->fill);
        break;
    case TP_OP_RANDOM_CROP: {
        const int *q = op->padding;
        put_size(w, op);
        if (q[0] == q[1] && q[1] == q[2] && q[2] == q[3])
            put(w, ", padding=%d", q[0]);
        else if (q[0] == q[2] && q[1] == q[3])
            put(w, ", padding=%d:%d", q[0], q[1]);
        else
            put(w, ", padding=%d:%d:%d:%d", q[0], q[1], q[2], q[3]);
        put(w, ", pad_if_needed=%s, fill=%d", op->pad_if_needed ? "true" : "false", op->fill);
        break;
    }
    case TP_OP_HFLIP:
        put(w, "p=%s", dbl(a, op->p));
        break;
    case TP_OP_COLOR_JITTER:
        put_range(w, "brightness", op->brightness);
        put_range(w, ", contrast", op->contrast);
        put_range(w, ", saturation", op->saturation);
        break;
    case TP_OP_GRAYSCALE:
        put(w, "num_output_channels=%d", op->channels);
        break;
    case TP_OP_NORMALIZE:
        put_channels(w, "mean", op->mean);
        put_channels(w, ", std", op->std);
        break;
    case TP_OP_TO:
        put(w, "dtype=%s, layout=%s", tp__dtype_text(op->dtype),
            op->layout == TP_LAYOUT_CHW ? "chw" : "hwc");
        break;
    default:
        break;
    }
    put(w, ")");
}

TP_API int tp_pipeline_format(const tp_pipeline *p, char *buf, size_t cap)
{
    assert(p);
    tp_pipeline c = *p; /* checked with its defaults filled, as the text will be */
    if (tp_pipeline_check(&c, NULL) < 0)
        return TP_EUSAGE;
    writer w = {.buf = buf, .cap = buf ? cap : 0};
    if (c.nops == 0)
        put(&w, "none");
    for (uint32_t i = 0; i < c.nops; i++) {
        if (i)
            put(&w, " | ");
        put_op(&w, &c.ops[i]);
    }
    if (w.over || w.len >= w.cap || w.len > INT32_MAX)
        return TP_EUSAGE;
    return (int)w.len;
}

