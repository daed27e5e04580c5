/* The pipeline description language (include/turbopump/pipeline.h, docs/TRANSFORMS.md):
 * a recursive-descent parser over a NUL-terminated string that never allocates and
 * reports the 1-based position of the token it could not accept; the checks every op
 * must pass, shared by parsed and C-built pipelines so that both refuse the same things;
 * the canonical text, which parses back to the same struct; and the shape a pipeline
 * gives. The parser does the syntax (how many numbers, whole or not, which words), the
 * checks do every range and ordering rule, and the parser maps a failed check back to
 * the position of the argument that caused it. */
#include "tp_common.h"

#include <turbopump/pipeline.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define NAME_MAX_LEN 32   /* longer than any op, argument or value name */
#define NUMBER_MAX_LEN 40 /* more digits than a double can tell apart */
#define LIST_MAX 4        /* l:t:r:b is the longest list */
#define ARGS_MAX 4

/* ---- the ops and their arguments */

typedef struct op_def {
    const char *name;  /* canonical, what tp_pipeline_format writes */
    const char *alias; /* torchvision's class name */
    const char *alias2;
    tp_op_kind kind;
    const char *args[ARGS_MAX]; /* torchvision's order; keywords by the same names */
    int npos;                   /* how many may be given by position */
    unsigned required;          /* bit k: args[k] must be given */
} op_def;

/* Positional counts follow torchvision's signatures: Resize's second parameter is
 * interpolation, so max_size is keyword-only; CenterCrop has no fill (ours pads with it
 * where the image is smaller), so that one is keyword-only too. */
static const op_def defs[] = {
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
static const struct {
    const char *name;
    tp_dtype dtype;
} dtypes[] = {
    {"uint8", TP_DTYPE_UINT8},     {"float32", TP_DTYPE_FLOAT32},
    {"float16", TP_DTYPE_FLOAT16}, {"bfloat16", TP_DTYPE_BFLOAT16},
    {"float", TP_DTYPE_FLOAT32},   {"half", TP_DTYPE_FLOAT16},
};

static const op_def *def_of(tp_op_kind k)
{
    for (size_t i = 0; i < TP_ARRAY_LEN(defs); i++)
        if (defs[i].kind == k)
            return &defs[i];
    return NULL;
}

static const op_def *def_named(const char *name)
{
    for (size_t i = 0; i < TP_ARRAY_LEN(defs); i++) {
        const op_def *d = &defs[i];
        if (!strcmp(name, d->name) || (d->alias && !strcmp(name, d->alias)) ||
            (d->alias2 && !strcmp(name, d->alias2)))
            return d;
    }
    return NULL;
}

static const char *dtype_text(tp_dtype t)
{
    for (size_t i = 0; i < TP_ARRAY_LEN(dtypes); i++)
        if (dtypes[i].dtype == t)
            return dtypes[i].name;
    return NULL;
}

static bool is_geometry(tp_op_kind k) { return k >= TP_OP_RANDOM_RESIZED_CROP && k <= TP_OP_HFLIP; }

/* 0 geometry, 1 colour, 2 normalize, 3 to: a pipeline's stages never go back. */
static int stage_of(tp_op_kind k)
{
    return is_geometry(k) ? 0 : k <= TP_OP_GRAYSCALE ? 1 : k == TP_OP_NORMALIZE ? 2 : 3;
}

/* ---- checks */

/* What a check refused: the op (-1: the pipeline), its argument (-1: the op itself) and
 * which number of that argument, so the parser can point at the token. */
typedef struct problem {
    int op, arg, item;
    char why[200];
} problem;

static bool refuse(problem *pr, int arg, int item, const char *fmt, ...) TP_PRINTF(4, 5);
static bool refuse(problem *pr, int arg, int item, const char *fmt, ...)
{
    pr->arg = arg;
    pr->item = item;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pr->why, sizeof(pr->why), fmt, ap);
    va_end(ap);
    return false;
}

static bool size_ok(int v) { return v >= TP_PIPELINE_MIN_SIZE && v <= TP_PIPELINE_MAX_SIZE; }

static bool sizes_ok(const tp_op *op, bool shorter_ok, problem *pr)
{
    for (int j = 0; j < 2; j++)
        if (!size_ok(op->size[j]) && !(j == 1 && shorter_ok && op->size[1] == 0))
            return refuse(pr, 0, j, "size %d is not in %d..%d", op->size[j],
                          TP_PIPELINE_MIN_SIZE, TP_PIPELINE_MAX_SIZE);
    return true;
}

static bool fill_ok(const tp_op *op, int arg, problem *pr)
{
    return op->fill >= 0 && op->fill <= 255
               ? true
               : refuse(pr, arg, 0, "fill %d is not in 0..255", op->fill);
}

static bool jitter_ok(const tp_op *op, problem *pr)
{
    static const char *const names[3] = {"brightness", "contrast", "saturation"};
    const double *r[3] = {op->brightness, op->contrast, op->saturation};
    for (int k = 0; k < 3; k++)
        if (!(isfinite(r[k][0]) && isfinite(r[k][1]) && r[k][0] >= 0 && r[k][0] <= r[k][1]))
            return refuse(pr, k, 0, "%s must be b >= 0 or lo:hi with 0 <= lo <= hi", names[k]);
    return true;
}

static bool normalize_ok(const tp_op *op, problem *pr)
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
static bool op_ok(const tp_op *op, problem *pr)
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
        if (!dtype_text(op->dtype))
            return refuse(pr, 0, 0, "dtype must be uint8, float32, float16 or bfloat16");
        if (op->layout != TP_LAYOUT_HWC && op->layout != TP_LAYOUT_CHW)
            return refuse(pr, 1, 0, "layout must be hwc or chw");
        return true;
    default:
        return refuse(pr, -1, 0, "unknown op kind %d", (int)op->kind);
    }
}

/* The value an argument takes when it is not given. */
static void apply_default(tp_op *op, int k)
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
        apply_default(op, 1);
    if (op->kind == TP_OP_RANDOM_RESIZED_CROP && op->ratio[0] == 0 && op->ratio[1] == 0)
        apply_default(op, 2);
    if ((op->kind == TP_OP_HFLIP && op->p == 0) ||
        (op->kind == TP_OP_GRAYSCALE && op->channels == 0))
        apply_default(op, 0);
    if (op->kind == TP_OP_TO && op->layout == TP_LAYOUT_DEFAULT)
        apply_default(op, 1);
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
static bool pipeline_ok(tp_pipeline *p, bool fill, problem *pr)
{
    *pr = (problem){.op = -1, .arg = -1};
    if (p->nops > TP_PIPELINE_MAX_OPS)
        return refuse(pr, -1, 0, "a pipeline has at most %d ops, not %u", TP_PIPELINE_MAX_OPS,
                      (unsigned)p->nops);
    int stage = 0, channels = 3;
    uint32_t blame = 0; /* the op that left the size depending on the image */
    bool fixed = false, normalized = false;
    for (uint32_t i = 0; i < p->nops; i++) {
        tp_op *op = &p->ops[i];
        pr->op = (int)i;
        const op_def *d = def_of(op->kind);
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
                          d->name, def_of(p->ops[i - 1].kind)->name);
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
    problem pr;
    if (pipeline_ok(p, true, &pr))
        return 0;
    if (pr.op < 0)
        return tp__error_set(err, TP_EUSAGE, "%s", pr.why);
    const op_def *d = def_of(p->ops[pr.op].kind);
    return tp__error_set(err, TP_EUSAGE, "op %d (%s): %s", pr.op + 1, d ? d->name : "?",
                         pr.why);
}

/* ---- the parser */

/* Where each op and each number of its arguments started (0-based offsets), so that a
 * check failing after the parse still points at its token. */
typedef struct op_pos {
    int op;
    int item[ARGS_MAX][LIST_MAX];
} op_pos;

typedef struct parser {
    const char *s; /* the whole text */
    const char *p; /* the next character */
    tp_error *err;
    op_pos pos[TP_PIPELINE_MAX_OPS];
} parser;

typedef struct num {
    double v;
    const char *at;
    int len;
} num;

typedef struct value {
    const char *at;
    int n; /* numbers; 0 for a word */
    num v[LIST_MAX];
    char word[NAME_MAX_LEN + 1];
} value;

static int fail(const parser *x, const char *at, const char *fmt, ...) TP_PRINTF(3, 4);
static int fail(const parser *x, const char *at, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return tp__error_set(x->err, TP_EUSAGE, "at %d: %s", (int)(at - x->s) + 1, msg);
}

/* "unexpected ')'", "unexpected byte 0x80" or "unexpected end of text". */
static int unexpected(const parser *x, const char *at)
{
    unsigned char c = (unsigned char)*at;
    if (!c)
        return fail(x, at, "unexpected end of text");
    if (c > 0x20 && c < 0x7f)
        return fail(x, at, "unexpected '%c'", c);
    return fail(x, at, "unexpected byte 0x%02x", c);
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }

static void skip(parser *x)
{
    while (is_space(*x->p))
        x->p++;
}

/* A name: [A-Za-z_][A-Za-z0-9_]*. Op aliases are CamelCase; argument and value names
 * are matched against lowercase lists, so upper case elsewhere is simply unknown. */
static int word(parser *x, char out[NAME_MAX_LEN + 1])
{
    skip(x);
    const char *b = x->p;
    if (!is_alpha(*b))
        return unexpected(x, b);
    const char *e = b;
    while (is_alnum(*e))
        e++;
    if (e - b > NAME_MAX_LEN)
        return fail(x, b, "a name is at most %d characters", NAME_MAX_LEN);
    memcpy(out, b, (size_t)(e - b));
    out[e - b] = '\0';
    x->p = e;
    return 0;
}

/* [+-]? (D+ (. D*)? | . D+) ([eE] [+-]? D+)?, exactly: no hex, inf or nan, which strtod
 * alone would take. */
static bool number_syntax(const char *b, const char *e)
{
    const char *q = b;
    if (q < e && (*q == '+' || *q == '-'))
        q++;
    int digits = 0;
    while (q < e && is_digit(*q))
        q++, digits++;
    if (q < e && *q == '.') {
        q++;
        while (q < e && is_digit(*q))
            q++, digits++;
    }
    if (!digits)
        return false;
    if (q < e && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < e && (*q == '+' || *q == '-'))
            q++;
        if (q == e || !is_digit(*q))
            return false;
        while (q < e && is_digit(*q))
            q++;
    }
    return q == e;
}

static int number(parser *x, num *out)
{
    skip(x);
    const char *b = x->p, *e = b;
    if (*e == '+' || *e == '-')
        e++;
    if (!is_digit(*e) && *e != '.')
        return *e && !is_space(*e) ? fail(x, b, "expected a number") : unexpected(x, e);
    /* the whole token, so that "0x10", "1.2.3" and "224px" are refused as one */
    while (is_alnum(*e) || *e == '.' || ((*e == '+' || *e == '-') && (e[-1] == 'e' || e[-1] == 'E')))
        e++;
    int len = (int)(e - b);
    if (len > NUMBER_MAX_LEN)
        return fail(x, b, "a number is at most %d characters", NUMBER_MAX_LEN);
    if (!number_syntax(b, e))
        return fail(x, b, "'%.*s' is not a number", len, b);
    char buf[NUMBER_MAX_LEN + 1];
    memcpy(buf, b, (size_t)len);
    buf[len] = '\0';
    double v = strtod(buf, NULL);
    if (!isfinite(v))
        return fail(x, b, "'%s' is not a finite number", buf);
    *out = (num){.v = v == 0 ? 0.0 : v, .at = b, .len = len}; /* no -0 */
    x->p = e;
    return 0;
}

/* A number, a ':'-joined list of numbers, or a name. */
static int parse_value(parser *x, value *v)
{
    skip(x);
    memset(v, 0, sizeof(*v));
    v->at = x->p;
    if (is_alpha(*x->p))
        return word(x, v->word);
    if (!is_digit(*x->p) && *x->p != '.' && *x->p != '+' && *x->p != '-')
        return unexpected(x, x->p);
    for (;;) {
        if (v->n == LIST_MAX)
            return fail(x, x->p, "a list has at most %d numbers", LIST_MAX);
        TP_TRY(number(x, &v->v[v->n++]));
        skip(x);
        if (*x->p != ':')
            return 0;
        x->p++;
    }
}

static int want_numbers(const parser *x, const value *v, const char *arg, int lo, int hi,
                        const char *shape)
{
    if (v->n == 0)
        return fail(x, v->at, "%s must be %s, not '%s'", arg, shape, v->word);
    if (v->n < lo || v->n > hi)
        return fail(x, v->at, "%s must be %s", arg, shape);
    return 0;
}

static int whole(const parser *x, const num *n, const char *arg, int *out)
{
    if (n->v != floor(n->v))
        return fail(x, n->at, "%s must be a whole number, not %.*s", arg, n->len, n->at);
    if (fabs(n->v) > 1e9)
        return fail(x, n->at, "%s %.*s is out of range", arg, n->len, n->at);
    *out = (int)n->v;
    return 0;
}

/* Lo:hi, or torchvision's ColorJitter(b) = [max(0, 1 - b), 1 + b] with b = 0 leaving the
 * property alone; a negative b gives lo > hi, which the check refuses. */
static int jitter(const parser *x, const value *v, const char *arg, double out[2])
{
    TP_TRY(want_numbers(x, v, arg, 1, 2, "b or lo:hi"));
    if (v->n == 2) {
        out[0] = v->v[0].v;
        out[1] = v->v[1].v;
    } else if (v->v[0].v != 0) {
        out[0] = TP_MAX(0.0, 1 - v->v[0].v);
        out[1] = 1 + v->v[0].v;
    }
    return 0;
}

static int set_padding(const parser *x, tp_op *op, const value *v, int *item)
{
    TP_TRY(want_numbers(x, v, "padding", 1, 4, "P, LR:TB or L:T:R:B"));
    if (v->n == 3)
        return fail(x, v->at, "padding must be P, LR:TB or L:T:R:B");
    /* torchvision's two values are left/right then top/bottom */
    static const int from[3][4] = {{0, 0, 0, 0}, {0, 1, 0, 1}, {0, 1, 2, 3}};
    const int *f = from[v->n == 1 ? 0 : v->n == 2 ? 1 : 2];
    for (int j = 0; j < 4; j++) {
        TP_TRY(whole(x, &v->v[f[j]], "padding", &op->padding[j]));
        item[j] = (int)(v->v[f[j]].at - x->s);
    }
    return 0;
}

static int set_name(const parser *x, const value *v, const char *arg, const char *const *names,
                    int count, const char *list)
{
    if (v->n != 0)
        return fail(x, v->at, "%s must be %s", arg, list);
    for (int i = 0; i < count; i++)
        if (!strcmp(v->word, names[i]))
            return i;
    return fail(x, v->at, "%s must be %s, not '%s'", arg, list, v->word);
}

/* Stores argument k of op from v; every range is left to the check. */
static int set_arg(parser *x, tp_op *op, const op_def *d, int k, const value *v, op_pos *pos)
{
    const char *a = d->args[k];
    int *item = pos->item[k];
    for (int j = 0; j < LIST_MAX; j++)
        item[j] = (int)((j < v->n ? v->v[j].at : v->at) - x->s);
    if (!strcmp(a, "size")) {
        TP_TRY(want_numbers(x, v, a, 1, 2, "N or H:W"));
        TP_TRY(whole(x, &v->v[0], a, &op->size[0]));
        if (v->n == 2)
            return whole(x, &v->v[1], a, &op->size[1]);
        item[1] = item[0];
        op->size[1] = op->kind == TP_OP_RESIZE ? 0 : op->size[0];
        return 0;
    }
    if (!strcmp(a, "scale") || !strcmp(a, "ratio")) {
        double *r = a[0] == 's' ? op->scale : op->ratio;
        TP_TRY(want_numbers(x, v, a, 2, 2, "lo:hi"));
        r[0] = v->v[0].v;
        r[1] = v->v[1].v;
        return 0;
    }
    if (!strcmp(a, "max_size") || !strcmp(a, "fill") || !strcmp(a, "num_output_channels")) {
        int *dst = a[0] == 'm' ? &op->max_size : a[0] == 'f' ? &op->fill : &op->channels;
        TP_TRY(want_numbers(x, v, a, 1, 1, "a whole number"));
        return whole(x, &v->v[0], a, dst);
    }
    if (!strcmp(a, "padding"))
        return set_padding(x, op, v, item);
    if (!strcmp(a, "pad_if_needed")) {
        static const char *const b[] = {"false", "true"};
        int i = set_name(x, v, a, b, 2, "true or false");
        TP_TRY(i);
        op->pad_if_needed = i == 1;
        return 0;
    }
    if (!strcmp(a, "p")) {
        TP_TRY(want_numbers(x, v, a, 1, 1, "a number"));
        op->p = v->v[0].v;
        return 0;
    }
    if (!strcmp(a, "brightness"))
        return jitter(x, v, a, op->brightness);
    if (!strcmp(a, "contrast"))
        return jitter(x, v, a, op->contrast);
    if (!strcmp(a, "saturation"))
        return jitter(x, v, a, op->saturation);
    if (!strcmp(a, "mean") || !strcmp(a, "std")) {
        float *dst = a[0] == 'm' ? op->mean : op->std;
        TP_TRY(want_numbers(x, v, a, 1, 3, "one number or a:b:c"));
        if (v->n == 2)
            return fail(x, v->at, "%s must be one number or a:b:c", a);
        for (int c = 0; c < 3; c++) {
            dst[c] = (float)v->v[v->n == 1 ? 0 : c].v;
            item[c] = item[v->n == 1 ? 0 : c];
        }
        return 0;
    }
    if (!strcmp(a, "dtype")) {
        const char *names[TP_ARRAY_LEN(dtypes)];
        for (size_t i = 0; i < TP_ARRAY_LEN(dtypes); i++)
            names[i] = dtypes[i].name;
        int i = set_name(x, v, a, names, (int)TP_ARRAY_LEN(dtypes),
                         "uint8, float32, float16 or bfloat16");
        TP_TRY(i);
        op->dtype = dtypes[i].dtype;
        return 0;
    }
    assert(!strcmp(a, "layout"));
    static const char *const l[] = {"hwc", "chw"};
    int i = set_name(x, v, a, l, 2, "hwc or chw");
    TP_TRY(i);
    op->layout = i == 0 ? TP_LAYOUT_HWC : TP_LAYOUT_CHW;
    return 0;
}

/* Which argument the next one is: `key=` or the next position. */
static int arg_slot(parser *x, const op_def *d, bool *keywords, int *npos)
{
    skip(x);
    const char *at = x->p, *e = at;
    while (is_alnum(*e))
        e++;
    const char *eq = e;
    while (is_space(*eq))
        eq++;
    if (is_alpha(*at) && *eq == '=') {
        char key[NAME_MAX_LEN + 1];
        TP_TRY(word(x, key));
        x->p = eq + 1;
        *keywords = true;
        for (int k = 0; k < ARGS_MAX && d->args[k]; k++)
            if (!strcmp(key, d->args[k]))
                return k;
        return fail(x, at, "%s takes no argument '%s'", d->name, key);
    }
    if (*keywords)
        return fail(x, at, "a positional argument after a keyword one");
    if (*npos >= d->npos)
        return fail(x, at, "%s takes at most %d positional argument%s", d->name, d->npos,
                    d->npos == 1 ? "" : "s");
    return (*npos)++;
}

static int parse_args(parser *x, const op_def *d, tp_op *op, op_pos *pos, unsigned *seen)
{
    skip(x);
    if (*x->p == ')') {
        x->p++;
        return 0;
    }
    bool keywords = false;
    int npos = 0;
    for (;;) {
        skip(x);
        const char *at = x->p;
        int k = arg_slot(x, d, &keywords, &npos);
        TP_TRY(k);
        if (*seen & (1u << k))
            return fail(x, at, "'%s' given twice", d->args[k]);
        *seen |= 1u << k;
        if (op->kind == TP_OP_COLOR_JITTER && k == 3)
            return fail(x, at, "hue is not supported");
        value v;
        TP_TRY(parse_value(x, &v));
        TP_TRY(set_arg(x, op, d, k, &v, pos));
        skip(x);
        if (*x->p == ')') {
            x->p++;
            return 0;
        }
        if (*x->p != ',')
            return *x->p ? unexpected(x, x->p) : fail(x, x->p, "unterminated arguments: ')' missing");
        x->p++;
    }
}

static int parse_op(parser *x, tp_op *op, op_pos *pos)
{
    skip(x);
    const char *at = x->p;
    char name[NAME_MAX_LEN + 1];
    if (!is_alpha(*at))
        return *at ? unexpected(x, at) : fail(x, at, "expected an op, found the end");
    TP_TRY(word(x, name));
    const op_def *d = def_named(name);
    if (!d)
        return fail(x, at, "unknown op '%s'", name);
    memset(op, 0, sizeof(*op)); /* field by field from here: padding bytes stay zero */
    op->kind = d->kind;
    pos->op = (int)(at - x->s);
    for (int k = 0; k < ARGS_MAX; k++)
        for (int j = 0; j < LIST_MAX; j++)
            pos->item[k][j] = pos->op;
    unsigned seen = 0;
    skip(x);
    if (*x->p == '(') {
        x->p++;
        TP_TRY(parse_args(x, d, op, pos, &seen));
    }
    for (int k = 0; k < ARGS_MAX && d->args[k]; k++) {
        if ((d->required & (1u << k)) && !(seen & (1u << k)))
            return fail(x, at, "%s needs its %s", d->name, d->args[k]);
        if (!(seen & (1u << k)))
            apply_default(op, k);
    }
    return 0;
}

/* "v1:"; any other version is refused by name rather than as a syntax error. */
static int version(parser *x)
{
    skip(x);
    const char *b = x->p, *e = b + 1;
    if (*b != 'v' || !is_digit(*e))
        return 0;
    while (is_digit(*e))
        e++;
    const char *colon = e;
    while (is_space(*colon))
        colon++;
    if (*colon != ':')
        return 0;
    const char *d = b + 1;
    while (*d == '0' && d + 1 < e)
        d++;
    if (e - d != 1 || *d != '0' + TP_PIPELINE_VERSION)
        return fail(x, b, "pipeline version %.*s is not supported (this build reads version %d)",
                    (int)TP_MIN(e - d, 20), d, TP_PIPELINE_VERSION);
    x->p = colon + 1;
    return 0;
}

static void set_all_pos(op_pos *pos, int at)
{
    pos->op = at;
    for (int k = 0; k < ARGS_MAX; k++)
        for (int j = 0; j < LIST_MAX; j++)
            pos->item[k][j] = at;
}

/* "none", "rrcN", "centerN" as the whole text. @return : 1 if it was one, 0 if not, or
 * an error. */
static int named(parser *x, tp_pipeline *out)
{
    skip(x);
    const char *b = x->p, *e = b;
    while (is_alnum(*e))
        e++;
    const char *rest = e;
    while (is_space(*rest))
        rest++;
    if (*rest || e == b)
        return 0;
    size_t len = (size_t)(e - b);
    if (len == 4 && !memcmp(b, "none", 4))
        return 1;
    bool rrc = len > 3 && !memcmp(b, "rrc", 3);
    bool center = len > 6 && !memcmp(b, "center", 6);
    const char *digits = b + (rrc ? 3 : 6);
    if (!rrc && !center)
        return 0;
    for (const char *q = digits; q < e; q++)
        if (!is_digit(*q))
            return 0;
    long n = 0;
    for (const char *q = digits; q < e && n <= TP_PIPELINE_MAX_SIZE; q++)
        n = n * 10 + (*q - '0');
    if (!size_ok((int)TP_MIN(n, (long)INT32_MAX)))
        return fail(x, digits, "size %.*s is not in %d..%d", (int)TP_MIN(e - digits, 20), digits,
                    TP_PIPELINE_MIN_SIZE, TP_PIPELINE_MAX_SIZE);
    int s = (int)n;
    if (center && s * 8 / 7 > TP_PIPELINE_MAX_SIZE)
        return fail(x, digits, "center%d resizes to %d, more than %d", s, s * 8 / 7,
                    TP_PIPELINE_MAX_SIZE);
    tp_op *a = &out->ops[0], *c = &out->ops[1];
    out->nops = 2;
    if (rrc) {
        a->kind = TP_OP_RANDOM_RESIZED_CROP;
        a->size[0] = a->size[1] = s;
        apply_default(a, 1);
        apply_default(a, 2);
        c->kind = TP_OP_HFLIP;
        apply_default(c, 0);
    } else {
        a->kind = TP_OP_RESIZE;
        a->size[0] = s * 8 / 7;
        c->kind = TP_OP_CENTER_CROP;
        c->size[0] = c->size[1] = s;
    }
    set_all_pos(&x->pos[0], (int)(digits - x->s));
    set_all_pos(&x->pos[1], (int)(digits - x->s));
    return 1;
}

static int op_list(parser *x, tp_pipeline *out)
{
    skip(x);
    if (!*x->p)
        return fail(x, x->p, "empty pipeline (\"none\" is the pipeline that does nothing)");
    for (;;) {
        skip(x);
        if (out->nops == TP_PIPELINE_MAX_OPS)
            return fail(x, x->p, "a pipeline has at most %d ops", TP_PIPELINE_MAX_OPS);
        TP_TRY(parse_op(x, &out->ops[out->nops], &x->pos[out->nops]));
        out->nops++;
        skip(x);
        if (!*x->p)
            return 0;
        if (*x->p != '|')
            return unexpected(x, x->p);
        x->p++;
    }
}

TP_API int tp_pipeline_parse(const char *text, tp_pipeline *out, tp_error *err)
{
    assert(out);
    memset(out, 0, sizeof(*out));
    if (!text)
        return tp__error_set(err, TP_EUSAGE, "at 1: no pipeline given");
    size_t len = 0; /* strnlen is POSIX, not C11 */
    while (len < TP_PIPELINE_TEXT_MAX && text[len])
        len++;
    if (len == TP_PIPELINE_TEXT_MAX)
        return tp__error_set(err, TP_EUSAGE, "at %d: a pipeline is at most %d bytes",
                             TP_PIPELINE_TEXT_MAX, TP_PIPELINE_TEXT_MAX - 1);
    parser x = {.s = text, .p = text, .err = err};
    TP_TRY(version(&x));
    int r = named(&x, out);
    TP_TRY(r);
    if (r == 0)
        TP_TRY(op_list(&x, out));
    problem pr;
    if (pipeline_ok(out, false, &pr))
        return 0;
    int at = 0;
    if (pr.op >= 0) {
        const op_pos *pos = &x.pos[pr.op];
        at = pr.arg < 0 ? pos->op : pos->item[pr.arg][TP_MIN(pr.item, LIST_MAX - 1)];
    }
    return tp__error_set(err, TP_EUSAGE, "at %d: %s", at + 1, pr.why);
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
    put(w, "%s(", def_of(op->kind)->name);
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
        put(w, "dtype=%s, layout=%s", dtype_text(op->dtype),
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
