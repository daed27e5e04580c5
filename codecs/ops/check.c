/* The pipeline description language's op table and checks (include/turbopump/pipeline.h,
 * docs/TRANSFORMS.md): what each op takes, in torchvision's order; the range and ordering
 * rules every pipeline must pass, shared by parsed and C-built pipelines so that both
 * refuse the same things; the defaults; and the shape a pipeline gives. */
#include "lang.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

/* ---- the ops and their arguments */


/* Positional counts follow torchvision's signatures: Resize's second parameter is
 * interpolation, so max_size is keyword-only; CenterCrop has no fill (ours pads with it
 * where the image is smaller), so that one is keyword-only too. */
static const tp__op_def defs[] = {
    {"random_resized_crop", "RandomResizedCrop", NULL, TP_OP_RANDOM_RESIZED_CROP,
     {"size", "scale", "ratio"}, 3, 1u},
    {"resize", "Resize", NULL, TP_OP_RESIZE, {"size", "max_size"}, 1, 1u},
    {"center_crop", "CenterCrop", NULL, TP_OP_CENTER_CROP, {"size", "fill"}, 1, 1u},
    {"random_crop", "RandomCrop", NULL, TP_OP_RANDOM_CROP,
     {"size", "padding", "pad_if_needed", "fill"}, 4, 1u},
    {"hflip", "RandomHorizontalFlip", "random_horizontal_flip", TP_OP_HFLIP, {"p"}, 1, 0u},
    {"color_jitter", "ColorJitter", NULL, TP_OP_COLOR_JITTER,
     {"brightness", "contrast", "saturation", "hue"}, 4, 0u},
    {"grayscale", "Grayscale", NULL, TP_OP_GRAYSCALE, {"num_output_channels"}, 1, 0u},
    {"normalize", "Normalize", NULL, TP_OP_NORMALIZE, {"mean", "std"}, 2, 3u},
    {"to", NULL, NULL, TP_OP_TO, {"dtype", "layout"}, 2, 1u},
};

/* The first name of each dtype is the canonical one. */
const tp__dtype_name tp__dtype_names[] = {
    {"uint8", TP_DTYPE_UINT8},     {"float32", TP_DTYPE_FLOAT32},
    {"float16", TP_DTYPE_FLOAT16}, {"bfloat16", TP_DTYPE_BFLOAT16},
    {"float", TP_DTYPE_FLOAT32},   {"half", TP_DTYPE_FLOAT16},
};
const size_t tp__ndtype_names = TP_ARRAY_LEN(tp__dtype_names);

const tp__op_def *tp__op_def_of(tp_op_kind k)
{
    for (size_t i = 0; i < TP_ARRAY_LEN(defs); i++)
        if (defs[i].kind == k)
            return &defs[i];
    return NULL;
}

const tp__op_def *tp__op_def_named(const char *name)
{
    for (size_t i = 0; i < TP_ARRAY_LEN(defs); i++) {
        const tp__op_def *d = &defs[i];
        if (!strcmp(name, d->name) || (d->alias && !strcmp(name, d->alias)) ||
            (d->alias2 && !strcmp(name, d->alias2)))
            return d;
    }
    return NULL;
}

const char *tp__dtype_text(tp_dtype t)
{
    for (size_t i = 0; i < tp__ndtype_names; i++)
        if (tp__dtype_names[i].dtype == t)
            return tp__dtype_names[i].name;
    return NULL;
}

static bool is_geometry(tp_op_kind k) { return k >= TP_OP_RANDOM_RESIZED_CROP && k <= TP_OP_HFLIP; }

/* 0 geometry, 1 colour, 2 normalize, 3 to: a pipeline's stages never go back. */
static int stage_of(tp_op_kind k)
{
    return is_geometry(k) ? 0 : k <= TP_OP_GRAYSCALE ? 1 : k == TP_OP_NORMALIZE ? 2 : 3;
}


/* ---- checks */

static bool refuse(tp__problem *pr, int arg, int item, const char *fmt, ...) TP_PRINTF(4, 5);
static bool refuse(tp__problem *pr, int arg, int item, const char *fmt, ...)
{
    pr->arg = arg;
    pr->item = item;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pr->why, sizeof(pr->why), fmt, ap);
    va_end(ap);
    return false;
}

bool tp__size_ok(int v) { return v >= TP_PIPELINE_MIN_SIZE && v <= TP_PIPELINE_MAX_SIZE; }

static bool sizes_ok(const tp_op *op, bool shorter_ok, tp__problem *pr)
{
    for (int j = 0; j < 2; j++)
        if (!tp__size_ok(op->size[j]) && !(j == 1 && shorter_ok && op->size[1] == 0))
            return refuse(pr, 0, j, "size %d is not in %d..%d", op->size[j],
                          TP_PIPELINE_MIN_SIZE, TP_PIPELINE_MAX_SIZE);
    return true;
}

static bool fill_ok(const tp_op *op, int arg, tp__problem *pr)
{
    return op->fill >= 0 && op->fill <= 255
               ? true
               : refuse(pr, arg, 0, "fill %d is not in 0..255", op->fill);
}

static bool jitter_ok(const tp_op *op, tp__problem *pr)
{
    static const char *const names[3] = {"brightness", "contrast", "saturation"};
    const double *r[3] = {op->brightness, op->contrast, op->saturation};
    for (int k = 0; k < 3; k++)
        if (!(isfinite(r[k][0]) && isfinite(r[k][1]) && r[k][0] >= 0 && r[k][0] <= r[k][1]))
            return refuse(pr, k, 0, "%s must be b >= 0 or lo:hi with 0 <= lo <= hi", names[k]);
    return true;
}

static bool normalize_ok(const tp_op *op, tp__problem *pr)
{
    for (int c = 0; c < 3; c++) {
        if (!isfinite(op->mean[c]))
            return refuse(pr, 0, c, "mean must be finite");
        if (!isfinite(op->std[c]) || !(op->std[c] > 0))
            return refuse(pr, 1, c, "std must be finite and > 0");
    }
    return true;
}

/* One op's arguments, defaults already in place. */
static bool op_ok(const tp_op *op, tp__problem *pr)
{
    switch (op->kind) {
    case TP_OP_RANDOM_RESIZED_CROP:
        if (!sizes_ok(op, false, pr))
            return false;
        if (!(op->scale[0] > 0 && op->scale[0] <= op->scale[1] && op->scale[1] <= 1))
            return refuse(pr, 1, 0, "scale must be lo:hi with 0 < lo <= hi <= 1");
        if (!(op->ratio[0] > 0 && op->ratio[0] <= op->ratio[1] && isfinite(op->ratio[1])))
            return refuse(pr, 2, 0, "ratio must be lo:hi with 0 < lo <= hi");
        return true;
    case TP_OP_RESIZE:
        if (!sizes_ok(op, true, pr))
            return false;
        if (op->max_size != 0 && op->size[1] != 0)
            return refuse(pr, 1, 0, "max_size needs a single size (the shorter side)");
        if (op->max_size != 0 && op->max_size <= op->size[0])
            return refuse(pr, 1, 0, "max_size %d must be greater than size %d", op->max_size,
                          op->size[0]);
        return true;
    case TP_OP_CENTER_CROP:
        return sizes_ok(op, false, pr) && fill_ok(op, 1, pr);
    case TP_OP_RANDOM_CROP:
        if (!sizes_ok(op, false, pr))
            return false;
        for (int j = 0; j < 4; j++)
            if (op->padding[j] < 0 || op->padding[j] > TP_PIPELINE_MAX_SIZE)
                return refuse(pr, 1, j, "padding %d is not in 0..%d", op->padding[j],
                              TP_PIPELINE_MAX_SIZE);
        return fill_ok(op, 3, pr);
    case TP_OP_HFLIP:
        return op->p > 0 && op->p <= 1 ? true : refuse(pr, 0, 0, "p %g is not in (0, 1]", op->p);
    case TP_OP_COLOR_JITTER:
        return jitter_ok(op, pr);
    case TP_OP_GRAYSCALE:
        return op->channels == 1 || op->channels == 3
                   ? true
                   : refuse(pr, 0, 0, "num_output_channels must be 1 or 3, not %d", op->channels);
    case TP_OP_NORMALIZE:
        return normalize_ok(op, pr);
    case TP_OP_TO:
        if (!tp__dtype_text(op->dtype))
            return refuse(pr, 0, 0, "dtype must be uint8, float32, float16 or bfloat16");
        if (op->layout != TP_LAYOUT_HWC && op->layout != TP_LAYOUT_CHW)
            return refuse(pr, 1, 0, "layout must be hwc or chw");
        return true;
    default:
        return refuse(pr, -1, 0, "unknown op kind %d", (int)op->kind);
    }
}

/* The value an argument takes when it is not given. */
void tp__op_default(tp_op *op, int k)
{
    switch (op->kind) {
    case TP_OP_RANDOM_RESIZED_CROP:
        if (k == 1) {
            op->scale[0] = 0.08;
            op->scale[1] = 1.0;
        } else if (k == 2) {
            op->ratio[0] = 3.0 / 4.0;
            op->ratio[1] = 4.0 / 3.0;
        }
        break;
    case TP_OP_HFLIP:
        op->p = 0.5;
        break;
    case TP_OP_GRAYSCALE:
        op->channels = 1;
        break;
    case TP_OP_TO:
        if (k == 1)
            op->layout = op->dtype == TP_DTYPE_UINT8 ? TP_LAYOUT_HWC : TP_LAYOUT_CHW;
        break;
    default:
        break;
    }
}

/* For C-built ops: zero fields mean "the default". Negative zeros become positive so
 * that the canonical text, which has no "-0", parses back to the same bits. */
static void fill_defaults(tp_op *op)
{
    if (op->kind == TP_OP_RANDOM_RESIZED_CROP && op->scale[0] == 0 && op->scale[1] == 0)
        tp__op_default(op, 1);
    if (op->kind == TP_OP_RANDOM_RESIZED_CROP && op->ratio[0] == 0 && op->ratio[1] == 0)
        tp__op_default(op, 2);
    if ((op->kind == TP_OP_HFLIP && op->p == 0) ||
        (op->kind == TP_OP_GRAYSCALE && op->channels == 0))
        tp__op_default(op, 0);
    if (op->kind == TP_OP_TO && op->layout == TP_LAYOUT_DEFAULT)
        tp__op_default(op, 1);
    for (int j = 0; j < 2; j++) {
        op->brightness[j] += 0.0;
        op->contrast[j] += 0.0;
        op->saturation[j] += 0.0;
    }
    for (int c = 0; c < 3; c++) {
        op->mean[c] += 0.0f;
        op->std[c] += 0.0f;
    }
}

#define KIND(k) (1u << (k))
#define GEO_SIZED                                                                  \
    (KIND(TP_OP_RANDOM_RESIZED_CROP) | KIND(TP_OP_RESIZE) | KIND(TP_OP_CENTER_CROP) | \
     KIND(TP_OP_RANDOM_CROP))

/* Which kinds use which fields: a field set on an op that ignores it is a caller's
 * mistake, and the canonical text could not carry it. */
static const struct {
    const char *name;
    size_t off, len;
    unsigned kinds;
} fields[] = {
#define FIELD(f, kinds) {#f, offsetof(tp_op, f), sizeof(((tp_op *)0)->f), kinds}
    FIELD(size, GEO_SIZED),
    FIELD(max_size, KIND(TP_OP_RESIZE)),
    FIELD(scale, KIND(TP_OP_RANDOM_RESIZED_CROP)),
    FIELD(ratio, KIND(TP_OP_RANDOM_RESIZED_CROP)),
    FIELD(p, KIND(TP_OP_HFLIP)),
    FIELD(padding, KIND(TP_OP_RANDOM_CROP)),
    FIELD(pad_if_needed, KIND(TP_OP_RANDOM_CROP)),
    FIELD(fill, KIND(TP_OP_RANDOM_CROP) | KIND(TP_OP_CENTER_CROP)),
    FIELD(brightness, KIND(TP_OP_COLOR_JITTER)),
    FIELD(contrast, KIND(TP_OP_COLOR_JITTER)),
    FIELD(saturation, KIND(TP_OP_COLOR_JITTER)),
    FIELD(channels, KIND(TP_OP_GRAYSCALE)),
    FIELD(mean, KIND(TP_OP_NORMALIZE)),
    FIELD(std, KIND(TP_OP_NORMALIZE)),
    FIELD(dtype, KIND(TP_OP_TO)),
    FIELD(layout, KIND(TP_OP_TO)),
#undef FIELD
};

static const char *stray_field(const tp_op *op)
{
    for (size_t i = 0; i < TP_ARRAY_LEN(fields); i++) {
        if (fields[i].kinds & KIND(op->kind))
            continue;
        const unsigned char *b = (const unsigned char *)op + fields[i].off;
        for (size_t j = 0; j < fields[i].len; j++)
            if (b[j])
                return fields[i].name;
    }
    return NULL;
}

/* Every op's arguments, then the rules between ops: stage order, a fixed output size,
 * normalize's floats and grayscale's single channel. */
bool tp__pipeline_ok(tp_pipeline *p, bool fill, tp__problem *pr)
{
    *pr = (tp__problem){.op = -1, .arg = -1};
    if (p->nops > TP_PIPELINE_MAX_OPS)
        return refuse(pr, -1, 0, "a pipeline has at most %d ops, not %u", TP_PIPELINE_MAX_OPS,
                      (unsigned)p->nops);
    int stage = 0, channels = 3;
    uint32_t blame = 0; /* the op that left the size depending on the image */
    bool fixed = false, normalized = false;
    for (uint32_t i = 0; i < p->nops; i++) {
        tp_op *op = &p->ops[i];
        pr->op = (int)i;
        const tp__op_def *d = tp__op_def_of(op->kind);
        if (!d)
            return refuse(pr, -1, 0, "unknown op kind %d", (int)op->kind);
        if (fill)
            fill_defaults(op);
        const char *stray = stray_field(op);
        if (stray)
            return refuse(pr, -1, 0, "%s is set, but %s does not take it", stray, d->name);
        if (!op_ok(op, pr))
            return false;
        int st = stage_of(op->kind);
        if (stage == 3)
            return refuse(pr, -1, 0, op->kind == TP_OP_TO ? "to() given twice"
                                                          : "to() must be the last op");
        if (st < stage)
            return refuse(pr, -1, 0, "%s after %s: the order is geometry, colour, normalize, to()",
                          d->name, tp__op_def_of(p->ops[i - 1].kind)->name);
        if (st == 2 && normalized)
            return refuse(pr, -1, 0, "normalize given twice");
        stage = st;
        switch (op->kind) {
        case TP_OP_RANDOM_RESIZED_CROP:
        case TP_OP_CENTER_CROP:
        case TP_OP_RANDOM_CROP:
            fixed = true;
            break;
        case TP_OP_RESIZE:
            fixed = op->size[1] != 0;
            if (!fixed)
                blame = i;
            break;
        case TP_OP_GRAYSCALE:
            channels = op->channels;
            break;
        case TP_OP_COLOR_JITTER:
            if (op->saturation[1] != 0 && channels == 1)
                return refuse(pr, 2, 0, "saturation needs colour, and grayscale(1) is before it");
            break;
        case TP_OP_NORMALIZE:
            normalized = true;
            break;
        case TP_OP_TO:
            if (normalized && op->dtype == TP_DTYPE_UINT8)
                return refuse(pr, 0, 0, "normalize gives floats: to(uint8) after it");
            break;
        default:
            break;
        }
    }
    if (p->nops > 0 && !fixed) {
        pr->op = (int)blame;
        return refuse(pr, -1, 0, "the output size depends on the image: end the geometry "
                                 "with a crop or resize(h:w)");
    }
    return true;
}

TP_API int tp_pipeline_check(tp_pipeline *p, tp_error *err)
{
    assert(p);
    tp__problem pr;
    if (tp__pipeline_ok(p, true, &pr))
        return 0;
    if (pr.op < 0)
        return tp__error_set(err, TP_EUSAGE, "%s", pr.why);
    const tp__op_def *d = tp__op_def_of(p->ops[pr.op].kind);
    return tp__error_set(err, TP_EUSAGE, "op %d (%s): %s", pr.op + 1, d ? d->name : "?",
                         pr.why);
}

/* ---- the result */

TP_API void tp_pipeline_shape_of(const tp_pipeline *p, tp_pipeline_shape *out)
{
    assert(p && out);
    memset(out, 0, sizeof(*out));
    out->dtype = TP_DTYPE_UINT8;
    out->layout = TP_LAYOUT_HWC;
    if (p->nops == 0)
        return;
    int64_t h = 0, w = 0, c = 3;
    for (uint32_t i = 0; i < p->nops && i < TP_PIPELINE_MAX_OPS; i++) {
        const tp_op *op = &p->ops[i];
        if (op->kind >= TP_OP_RANDOM_RESIZED_CROP && op->kind <= TP_OP_RANDOM_CROP) {
            h = op->size[0];
            w = op->size[1];
        } else if (op->kind == TP_OP_GRAYSCALE) {
            c = op->channels == 3 ? 3 : 1;
        } else if (op->kind == TP_OP_NORMALIZE) {
            out->dtype = TP_DTYPE_FLOAT32;
            out->layout = TP_LAYOUT_CHW;
        } else if (op->kind == TP_OP_TO) {
            out->dtype = op->dtype;
            out->layout = op->layout != TP_LAYOUT_DEFAULT ? op->layout
                          : op->dtype == TP_DTYPE_UINT8   ? TP_LAYOUT_HWC
                                                          : TP_LAYOUT_CHW;
        }
    }
    out->ndim = 3;
    bool chw = out->layout == TP_LAYOUT_CHW;
    out->shape[0] = chw ? c : h;
    out->shape[1] = chw ? h : w;
    out->shape[2] = chw ? w : c;
}
