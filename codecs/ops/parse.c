/* The pipeline description language (include/turbopump/pipeline.h): a small
 * recursive-descent parser over a NUL-terminated string, with no allocation, that
 * reports the 1-based position of what it could not accept; the checks every op's
 * arguments must pass (shared by parsed and C-built pipelines); and the canonical text. */
#include "tp_common.h"

#include <turbopump/pipeline.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct lexer {
    const char *s, *p;
    tp_error *err;
} lexer;

#define MAXV 4

typedef struct value {
    double v[MAXV];
    int n;             /* numbers; 0 for an identifier */
    char id[24];
    int at;            /* position, 1-based */
} value;

static int fail(lexer *x, const char *at, const char *fmt, const char *what)
{
    char msg[200];
    snprintf(msg, sizeof(msg), fmt, what);
    return tp__error_set(x->err, TP_EUSAGE, "at %d: %s", (int)(at - x->s) + 1, msg);
}

static void skip(lexer *x)
{
    while (*x->p == ' ' || *x->p == '\t' || *x->p == '\n')
        x->p++;
}

static bool ident_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

static int ident(lexer *x, char *out, size_t cap)
{
    skip(x);
    const char *b = x->p;
    if (!ident_char(*x->p, true))
        return fail(x, b, "expected a name%s", "");
    while (ident_char(*x->p, false))
        x->p++;
    size_t n = (size_t)(x->p - b);
    if (n >= cap)
        return fail(x, b, "name too long%s", "");
    memcpy(out, b, n);
    out[n] = '\0';
    return 0;
}

static int number(lexer *x, double *out)
{
    skip(x);
    const char *b = x->p;
    if (!((*b >= '0' && *b <= '9') || *b == '.' || *b == '-' || *b == '+'))
        return fail(x, b, "expected a number%s", "");
    const char *e = b + 1;
    while ((*e >= '0' && *e <= '9') || *e == '.' || *e == 'e' || *e == 'E' ||
           ((*e == '-' || *e == '+') && (e[-1] == 'e' || e[-1] == 'E')))
        e++;
    char buf[64];
    if ((size_t)(e - b) >= sizeof(buf))
        return fail(x, b, "number too long%s", "");
    memcpy(buf, b, (size_t)(e - b));
    buf[e - b] = '\0';
    char *end;
    double v = strtod(buf, &end);
    if (*end || !isfinite(v))
        return fail(x, b, "'%s' is not a finite number", buf);
    *out = v;
    x->p = e;
    return 0;
}

static int parse_value(lexer *x, value *v)
{
    skip(x);
    *v = (value){.at = (int)(x->p - x->s) + 1};
    if (ident_char(*x->p, true))
        return ident(x, v->id, sizeof(v->id));
    for (;;) {
        if (v->n == MAXV)
            return fail(x, x->p, "more than 4 values in a list%s", "");
        TP_TRY(number(x, &v->v[v->n++]));
        skip(x);
        if (*x->p != ':')
            return 0;
        x->p++;
    }
}

/* ---- ops by name and their arguments */

typedef struct op_def {
    const char *name, *alias;
    tp_op_kind kind;
    const char *args[5];  /* positional order; keywords by the same names */
} op_def;

static const op_def defs[] = {
    {"random_resized_crop", "RandomResizedCrop", TP_OP_RANDOM_RESIZED_CROP,
     {"size", "scale", "ratio"}},
    {"resize", "Resize", TP_OP_RESIZE, {"size", "max_size"}},
    {"center_crop", "CenterCrop", TP_OP_CENTER_CROP, {"size"}},
    {"random_crop", "RandomCrop", TP_OP_RANDOM_CROP,
     {"size", "padding", "pad_if_needed", "fill"}},
    {"hflip", "RandomHorizontalFlip", TP_OP_HFLIP, {"p"}},
    {"color_jitter", "ColorJitter", TP_OP_COLOR_JITTER,
     {"brightness", "contrast", "saturation", "hue"}},
    {"grayscale", "Grayscale", TP_OP_GRAYSCALE, {"num_output_channels"}},
    {"normalize", "Normalize", TP_OP_NORMALIZE, {"mean", "std"}},
    {"to", "ToDtype", TP_OP_TO, {"dtype", "layout"}},
};

static const op_def *def_of(tp_op_kind k)
{
    for (size_t i = 0; i < TP_ARRAY_LEN(defs); i++)
        if (defs[i].kind == k)
            return &defs[i];
    return NULL;
}

static bool integral(double v) { return v == floor(v) && fabs(v) < 1e9; }

static int set_size(lexer *x, const value *v, int out[2], bool shorter_ok)
{
    const char *at = x->s + v->at - 1;
    if (v->n < 1 || v->n > 2 || !integral(v->v[0]) || (v->n == 2 && !integral(v->v[1])))
        return fail(x, at, "size must be N or H:W in whole pixels%s", "");
    out[0] = (int)v->v[0];
    out[1] = v->n == 2 ? (int)v->v[1] : shorter_ok ? 0 : out[0];
    return 0;
}

static int set_range(lexer *x, const value *v, double out[2], bool jitter)
{
    const char *at = x->s + v->at - 1;
    if (v->n == 1 && jitter) { /* torchvision's ColorJitter(b) */
        if (v->v[0] < 0)
            return fail(x, at, "a jitter amount must be >= 0%s", "");
        out[0] = v->v[0] > 0 ? TP_MAX(0.0, 1 - v->v[0]) : 0;
        out[1] = v->v[0] > 0 ? 1 + v->v[0] : 0;
        return 0;
    }
    if (v->n != 2)
        return fail(x, at, "expected a range lo:hi%s", "");
    out[0] = v->v[0];
    out[1] = v->v[1];
    return 0;
}

static int set_arg(lexer *x, tp_op *op, const char *name, const value *v)
{
    const char *at = x->s + v->at - 1;
    bool num = v->n > 0;
    if (!strcmp(name, "size"))
        return num ? set_size(x, v, op->size, op->kind == TP_OP_RESIZE)
                   : fail(x, at, "size must be a number%s", "");
    if (!strcmp(name, "scale"))
        return set_range(x, v, op->scale, false);
    if (!strcmp(name, "ratio"))
        return set_range(x, v, op->ratio, false);
    if (!strcmp(name, "brightness"))
        return set_range(x, v, op->brightness, true);
    if (!strcmp(name, "contrast"))
        return set_range(x, v, op->contrast, true);
    if (!strcmp(name, "saturation"))
        return set_range(x, v, op->saturation, true);
    if (!strcmp(name, "hue"))
        return num && v->n == 1 && v->v[0] == 0 ? 0 : fail(x, at, "hue is not supported%s", "");
    if (!strcmp(name, "max_size") || !strcmp(name, "fill") ||
        !strcmp(name, "num_output_channels")) {
        if (v->n != 1 || !integral(v->v[0]))
            return fail(x, at, "%s must be a whole number", name);
        int i = (int)v->v[0];
        *(name[0] == 'm' ? &op->max_size : name[0] == 'f' ? &op->fill : &op->channels) = i;
        return 0;
    }
    if (!strcmp(name, "p")) {
        if (v->n != 1)
            return fail(x, at, "p must be a number%s", "");
        op->p = v->v[0];
        return op->p > 0 ? 0 : fail(x, at, "p must be in (0, 1]%s", "");
    }
    if (!strcmp(name, "padding")) {
        int n = v->n;
        for (int i = 0; i < n; i++)
            if (!integral(v->v[i]))
                return fail(x, at, "padding must be whole pixels%s", "");
        if (n == 1)
            op->padding[0] = op->padding[1] = op->padding[2] = op->padding[3] = (int)v->v[0];
        else if (n == 2) {
            op->padding[0] = op->padding[2] = (int)v->v[0];
            op->padding[1] = op->padding[3] = (int)v->v[1];
        } else if (n == 4) {
            for (int i = 0; i < 4; i++)
                op->padding[i] = (int)v->v[i];
        } else {
            return fail(x, at, "padding is P, LR:TB or L:T:R:B%s", "");
        }
        return 0;
    }
    if (!strcmp(name, "pad_if_needed")) {
        if (!strcmp(v->id, "true") || !strcmp(v->id, "True") || (num && v->v[0] == 1))
            op->pad_if_needed = true;
        else if (!strcmp(v->id, "false") || !strcmp(v->id, "False") || (num && v->v[0] == 0))
            op->pad_if_needed = false;
        else
            return fail(x, at, "pad_if_needed must be true or false%s", "");
        return 0;
    }
    if (!strcmp(name, "mean") || !strcmp(name, "std")) {
        float *d = name[0] == 'm' ? op->mean : op->std;
        if (v->n != 1 && v->n != 3)
            return fail(x, at, "%s takes one value or three (a:b:c)", name);
        for (int c = 0; c < 3; c++)
            d[c] = (float)v->v[v->n == 1 ? 0 : c];
        return 0;
    }
    if (!strcmp(name, "dtype")) {
        static const struct { const char *n; tp_dtype t; } dt[] = {
            {"uint8", TP_DTYPE_UINT8}, {"float32", TP_DTYPE_FLOAT32}, {"float", TP_DTYPE_FLOAT32},
            {"float16", TP_DTYPE_FLOAT16}, {"half", TP_DTYPE_FLOAT16},
            {"bfloat16", TP_DTYPE_BFLOAT16}};
        for (size_t i = 0; i < TP_ARRAY_LEN(dt); i++)
            if (!strcmp(v->id, dt[i].n)) {
                op->dtype = dt[i].t;
                return 0;
            }
        return fail(x, at, "dtype must be uint8, float32, float16 or bfloat16%s", "");
    }
    if (!strcmp(name, "layout")) {
        if (!strcmp(v->id, "hwc") || !strcmp(v->id, "chw")) {
            op->layout = v->id[0] == 'h' ? TP_LAYOUT_HWC : TP_LAYOUT_CHW;
            return 0;
        }
        return fail(x, at, "layout must be hwc or chw%s", "");
    }
    return fail(x, at, "unknown argument '%s'", name);
}

static int parse_op(lexer *x, tp_op *op)
{
    skip(x);
    const char *at = x->p;
    char name[32];
    TP_TRY(ident(x, name, sizeof(name)));
    const op_def *d = NULL;
    for (size_t i = 0; i < TP_ARRAY_LEN(defs) && !d; i++)
        if (!strcmp(name, defs[i].name) || !strcmp(name, defs[i].alias) ||
            (defs[i].kind == TP_OP_HFLIP && !strcmp(name, "random_horizontal_flip")))
            d = &defs[i];
    if (!d)
        return fail(x, at, "unknown op '%s'", name);
    *op = (tp_op){.kind = d->kind};
    skip(x);
    if (*x->p != '(')
        return 0;
    x->p++;
    unsigned seen = 0, pos = 0;
    skip(x);
    if (*x->p == ')') {
        x->p++;
        return 0;
    }
    for (;;) {
        skip(x);
        const char *arg_at = x->p;
        const char *key = NULL;
        char kbuf[32];
        const char *save = x->p;
        if (ident_char(*x->p, true)) { /* a keyword, or an identifier value */
            TP_TRY(ident(x, kbuf, sizeof(kbuf)));
            skip(x);
            if (*x->p == '=') {
                x->p++;
                key = kbuf;
            } else {
                x->p = save;
            }
        }
        int k = -1;
        if (key) {
            for (int i = 0; i < 5 && d->args[i]; i++)
                if (!strcmp(d->args[i], key))
                    k = i;
            if (k < 0) {
                char m[96];
                snprintf(m, sizeof(m), "%s takes no argument '%s'", d->name, key);
                return fail(x, arg_at, "%s", m);
            }
        } else {
            if (seen & ~((1u << pos) - 1))
                return fail(x, arg_at, "positional argument after a keyword%s", "");
            if (pos >= 5 || !d->args[pos])
                return fail(x, arg_at, "too many arguments%s", "");
            k = (int)pos++;
        }
        if (seen & (1u << k))
            return fail(x, arg_at, "'%s' given twice", d->args[k]);
        seen |= 1u << k;
        value v;
        TP_TRY(parse_value(x, &v));
        TP_TRY(set_arg(x, op, d->args[k], &v));
        skip(x);
        if (*x->p == ',') {
            x->p++;
            continue;
        }
        if (*x->p == ')') {
            x->p++;
            break;
        }
        return fail(x, x->p, *x->p ? "expected ',' or ')'%s" : "unterminated arguments%s", "");
    }
    bool needs_size = d->kind == TP_OP_RANDOM_RESIZED_CROP || d->kind == TP_OP_RESIZE ||
                      d->kind == TP_OP_CENTER_CROP || d->kind == TP_OP_RANDOM_CROP;
    if (needs_size && !(seen & 1u))
        return fail(x, at, "%s needs a size", d->name);
    if (d->kind == TP_OP_NORMALIZE && seen != 3u)
        return fail(x, at, "normalize needs mean and std%s", "");
    if (d->kind == TP_OP_TO && !(seen & 1u))
        return fail(x, at, "to needs a dtype%s", "");
    return 0;
}

static int named(const char *t, tp_pipeline *out, tp_error *err)
{
    int n;
    char extra;
    if (!strcmp(t, "none")) {
        out->nops = 0;
        return 1;
    }
    bool rrc = sscanf(t, "rrc%d%c", &n, &extra) == 1, center = !rrc && sscanf(t, "center%d%c", &n, &extra) == 1;
    if (!rrc && !center)
        return 0;
    if (n < TP_PIPELINE_MIN_SIZE || n > TP_PIPELINE_MAX_SIZE)
        return tp__error_set(err, TP_EUSAGE, "at 1: size %d is not in %d..%d", n,
                             TP_PIPELINE_MIN_SIZE, TP_PIPELINE_MAX_SIZE);
    out->nops = 2;
    if (rrc) {
        out->ops[0] = (tp_op){.kind = TP_OP_RANDOM_RESIZED_CROP, .size = {n, n}};
        out->ops[1] = (tp_op){.kind = TP_OP_HFLIP, .p = 0.5};
    } else {
        out->ops[0] = (tp_op){.kind = TP_OP_RESIZE, .size = {n * 8 / 7, 0}};
        out->ops[1] = (tp_op){.kind = TP_OP_CENTER_CROP, .size = {n, n}};
    }
    return 1;
}

TP_API int tp_pipeline_parse(const char *text, tp_pipeline *out, tp_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!text || strnlen(text, TP_PIPELINE_TEXT_MAX) >= TP_PIPELINE_TEXT_MAX)
        return tp__error_set(err, TP_EUSAGE, "a pipeline is at most %d bytes",
                             TP_PIPELINE_TEXT_MAX - 1);
    lexer x = {.s = text, .p = text, .err = err};
    skip(&x);
    if (*x.p == 'v' && x.p[1] >= '0' && x.p[1] <= '9') {
        char *end;
        long ver = strtol(x.p + 1, &end, 10);
        const char *e = end;
        while (*e == ' ')
            e++;
        if (*e == ':') {
            if (ver != TP_PIPELINE_VERSION)
                return tp__error_set(err, TP_EUSAGE, "at %d: pipeline version %ld is not "
                                     "supported (this build reads version %d)",
                                     (int)(x.p - text) + 1, ver, TP_PIPELINE_VERSION);
            x.p = e + 1;
            skip(&x);
        }
    }
    char word[24];
    size_t n = strcspn(x.p, " \t\n");
    if (n < sizeof(word) && !x.p[n + strspn(x.p + n, " \t\n")]) {
        memcpy(word, x.p, n);
        word[n] = '\0';
        int r = named(word, out, err);
        if (r < 0)
            return r;
        if (r > 0)
            return tp_pipeline_check(out, err);
    }
    if (!*x.p)
        return fail(&x, x.p, "empty pipeline%s", "");
    for (;;) {
        if (out->nops == TP_PIPELINE_MAX_OPS)
            return fail(&x, x.p, "more than 16 ops%s", "");
        TP_TRY(parse_op(&x, &out->ops[out->nops++]));
        skip(&x);
        if (*x.p == '|') {
            x.p++;
            continue;
        }
        if (!*x.p)
            break;
        return fail(&x, x.p, "unexpected '%.1s'", x.p);
    }
    return tp_pipeline_check(out, err);
}

/* ---- checks */

static int bad(tp_error *err, uint32_t i, const tp_op *op, const char *why)
{
    const op_def *d = def_of(op->kind);
    return tp__error_set(err, TP_EUSAGE, "op %u (%s): %s", i + 1, d ? d->name : "?", why);
}

static bool size_ok(int v) { return v >= TP_PIPELINE_MIN_SIZE && v <= TP_PIPELINE_MAX_SIZE; }

static int family(tp_op_kind k)
{
    return k <= TP_OP_HFLIP ? 0 : k <= TP_OP_GRAYSCALE ? 1 : k == TP_OP_NORMALIZE ? 2 : 3;
}

TP_API int tp_pipeline_check(tp_pipeline *p, tp_error *err)
{
    if (p->nops > TP_PIPELINE_MAX_OPS)
        return tp__error_set(err, TP_EUSAGE, "more than %d ops", TP_PIPELINE_MAX_OPS);
    bool fixed = false, any_geo = false;
    int last_family = 0, channels = 3;
    tp_dtype dtype = TP_DTYPE_UINT8;
    bool normalized = false;
    for (uint32_t i = 0; i < p->nops; i++) {
        tp_op *op = &p->ops[i];
        if (op->kind < TP_OP_RANDOM_RESIZED_CROP || op->kind > TP_OP_TO)
            return tp__error_set(err, TP_EUSAGE, "op %u: unknown kind %d", i + 1, (int)op->kind);
        int fam = family(op->kind);
        if (fam < last_family)
            return bad(err, i, op, "ops go geometry, then colour, then normalize, then to()");
        if (fam >= 2 && fam == last_family)
            return bad(err, i, op, "given twice");
        last_family = fam;
        bool crop = op->kind == TP_OP_RANDOM_RESIZED_CROP || op->kind == TP_OP_CENTER_CROP ||
                    op->kind == TP_OP_RANDOM_CROP;
        if (crop || op->kind == TP_OP_RESIZE) {
            any_geo = true;
            bool shorter = op->kind == TP_OP_RESIZE && op->size[1] == 0;
            if (!size_ok(op->size[0]) || (!shorter && !size_ok(op->size[1])))
                return bad(err, i, op, "sizes must be in 8..4096");
            fixed = crop || !shorter;
        }
        switch (op->kind) {
        case TP_OP_RANDOM_RESIZED_CROP:
            if (op->scale[0] == 0 && op->scale[1] == 0)
                op->scale[0] = 0.08, op->scale[1] = 1.0;
            if (op->ratio[0] == 0 && op->ratio[1] == 0)
                op->ratio[0] = 3.0 / 4.0, op->ratio[1] = 4.0 / 3.0;
            if (!(op->scale[0] > 0 && op->scale[0] <= op->scale[1] && op->scale[1] <= 1))
                return bad(err, i, op, "scale must be lo:hi with 0 < lo <= hi <= 1");
            if (!(op->ratio[0] > 0 && op->ratio[0] <= op->ratio[1] && isfinite(op->ratio[1])))
                return bad(err, i, op, "ratio must be lo:hi with 0 < lo <= hi");
            break;
        case TP_OP_RESIZE:
            if (op->max_size && (op->size[1] != 0 || op->max_size <= op->size[0] ||
                                 op->max_size > TP_PIPELINE_MAX_SIZE * 4))
                return bad(err, i, op, "max_size needs a single size and must exceed it");
            break;
        case TP_OP_RANDOM_CROP:
        case TP_OP_CENTER_CROP:
            for (int k = 0; k < 4; k++)
                if (op->padding[k] < 0 || op->padding[k] > TP_PIPELINE_MAX_SIZE)
                    return bad(err, i, op, "padding must be in 0..4096");
            if (op->fill < 0 || op->fill > 255)
                return bad(err, i, op, "fill must be in 0..255");
            break;
        case TP_OP_HFLIP:
            if (op->p == 0)
                op->p = 0.5;
            if (!(op->p > 0 && op->p <= 1))
                return bad(err, i, op, "p must be in (0, 1]");
            break;
        case TP_OP_COLOR_JITTER: {
            double *r[3] = {op->brightness, op->contrast, op->saturation};
            for (int k = 0; k < 3; k++)
                if (!(r[k][0] >= 0 && r[k][0] <= r[k][1] && r[k][1] < 1e6))
                    return bad(err, i, op, "jitter ranges must be lo:hi with 0 <= lo <= hi");
            break;
        }
        case TP_OP_GRAYSCALE:
            if (op->channels == 0)
                op->channels = 1;
            if (op->channels != 1 && op->channels != 3)
                return bad(err, i, op, "num_output_channels must be 1 or 3");
            channels = op->channels;
            break;
        case TP_OP_NORMALIZE:
            for (int c = 0; c < 3; c++)
                if (!isfinite(op->mean[c]) || !isfinite(op->std[c]) || !(op->std[c] > 0))
                    return bad(err, i, op, "mean must be finite and std > 0");
            normalized = true;
            dtype = TP_DTYPE_FLOAT32;
            break;
        case TP_OP_TO:
            if (op->dtype != TP_DTYPE_UINT8 && op->dtype != TP_DTYPE_FLOAT32 &&
                op->dtype != TP_DTYPE_FLOAT16 && op->dtype != TP_DTYPE_BFLOAT16)
                return bad(err, i, op, "dtype must be uint8, float32, float16 or bfloat16");
            if (normalized && op->dtype == TP_DTYPE_UINT8)
                return bad(err, i, op, "normalize gives floats: to(uint8) after it");
            if (op->layout == TP_LAYOUT_DEFAULT)
                op->layout = op->dtype == TP_DTYPE_UINT8 ? TP_LAYOUT_HWC : TP_LAYOUT_CHW;
            if (op->layout != TP_LAYOUT_HWC && op->layout != TP_LAYOUT_CHW)
                return bad(err, i, op, "layout must be hwc or chw");
            dtype = op->dtype;
            break;
        default:
            break;
        }
    }
    (void)channels;
    (void)dtype;
    if (p->nops > 0 && (!any_geo || !fixed))
        return tp__error_set(err, TP_EUSAGE, "the output size depends on the image: end the "
                             "geometry with a crop or resize(h:w)");
    return 0;
}

TP_API void tp_pipeline_shape_of(const tp_pipeline *p, tp_pipeline_shape *out)
{
    *out = (tp_pipeline_shape){.dtype = TP_DTYPE_UINT8, .layout = TP_LAYOUT_HWC};
    if (p->nops == 0)
        return;
    int h = 0, w = 0, c = 3;
    for (uint32_t i = 0; i < p->nops; i++) {
        const tp_op *op = &p->ops[i];
        if (op->kind <= TP_OP_RANDOM_CROP && op->kind != TP_OP_NONE) {
            h = op->size[0];
            w = op->size[1];
        } else if (op->kind == TP_OP_GRAYSCALE) {
            c = op->channels ? op->channels : 1;
        } else if (op->kind == TP_OP_NORMALIZE) {
            out->dtype = TP_DTYPE_FLOAT32;
            out->layout = TP_LAYOUT_CHW;
        } else if (op->kind == TP_OP_TO) {
            out->dtype = op->dtype;
            out->layout = op->layout ? op->layout
                          : op->dtype == TP_DTYPE_UINT8 ? TP_LAYOUT_HWC : TP_LAYOUT_CHW;
        }
    }
    out->ndim = 3;
    bool chw = out->layout == TP_LAYOUT_CHW;
    int64_t s[3] = {chw ? c : h, chw ? h : w, chw ? w : c};
    memcpy(out->shape, s, sizeof(s));
}

/* ---- canonical text */

static void num(char *b, size_t cap, double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(b, cap, "%.*g", prec, v);
        if (strtod(b, NULL) == v)
            return;
    }
}

TP_API int tp_pipeline_format(const tp_pipeline *p, char *buf, size_t cap)
{
    tp_pipeline c = *p;
    if (tp_pipeline_check(&c, NULL) < 0)
        return TP_EUSAGE;
    if (c.nops == 0)
        return snprintf(buf, cap, "none") < (int)cap ? 4 : TP_EUSAGE;
    size_t at = 0;
    char a[64], b[64], t[64];
#define PUT(...)                                                                 \
    do {                                                                         \
        int k_ = snprintf(buf + at, at < cap ? cap - at : 0, __VA_ARGS__);      \
        if (k_ < 0 || at + (size_t)k_ >= cap)                                    \
            return TP_EUSAGE;                                                    \
        at += (size_t)k_;                                                        \
    } while (0)
    for (uint32_t i = 0; i < c.nops; i++) {
        const tp_op *op = &c.ops[i];
        const op_def *d = def_of(op->kind);
        PUT("%s%s(", i ? " | " : "", d->name);
        if (op->kind <= TP_OP_RANDOM_CROP) {
            if (op->size[1] == 0)
                PUT("%d", op->size[0]);
            else if (op->size[0] == op->size[1])
                PUT("%d", op->size[0]);
            else
                PUT("%d:%d", op->size[0], op->size[1]);
        }
        switch (op->kind) {
        case TP_OP_RANDOM_RESIZED_CROP:
            num(a, sizeof(a), op->scale[0]);
            num(b, sizeof(b), op->scale[1]);
            PUT(", scale=%s:%s", a, b);
            num(a, sizeof(a), op->ratio[0]);
            num(b, sizeof(b), op->ratio[1]);
            PUT(", ratio=%s:%s", a, b);
            break;
        case TP_OP_RESIZE:
            if (op->max_size)
                PUT(", max_size=%d", op->max_size);
            break;
        case TP_OP_RANDOM_CROP:
            PUT(", padding=%d:%d:%d:%d, pad_if_needed=%s, fill=%d", op->padding[0],
                op->padding[1], op->padding[2], op->padding[3],
                op->pad_if_needed ? "true" : "false", op->fill);
            break;
        case TP_OP_HFLIP:
            num(a, sizeof(a), op->p);
            PUT("p=%s", a);
            break;
        case TP_OP_COLOR_JITTER: {
            const double *r[3] = {op->brightness, op->contrast, op->saturation};
            static const char *names[3] = {"brightness", "contrast", "saturation"};
            bool first = true;
            for (int k = 0; k < 3; k++) {
                if (r[k][1] == 0)
                    continue;
                num(a, sizeof(a), r[k][0]);
                num(b, sizeof(b), r[k][1]);
                PUT("%s%s=%s:%s", first ? "" : ", ", names[k], a, b);
                first = false;
            }
            break;
        }
        case TP_OP_GRAYSCALE:
            PUT("%d", op->channels);
            break;
        case TP_OP_NORMALIZE:
            PUT("mean=%.9g:%.9g:%.9g, std=%.9g:%.9g:%.9g", op->mean[0], op->mean[1],
                op->mean[2], op->std[0], op->std[1], op->std[2]);
            break;
        case TP_OP_TO:
            snprintf(t, sizeof(t), "%s", tp_dtype_name(op->dtype));
            PUT("%s, %s", t, op->layout == TP_LAYOUT_CHW ? "chw" : "hwc");
            break;
        default:
            break;
        }
        PUT(")");
    }
#undef PUT
    return (int)at;
}
