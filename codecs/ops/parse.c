/* The pipeline description language's parser (include/turbopump/pipeline.h,
 * docs/TRANSFORMS.md): recursive descent over a NUL-terminated string that never
 * allocates and reports the 1-based position of the token it could not accept. The
 * parser does the syntax (how many numbers, whole or not, which words), the checks
 * (check.c) every range and ordering rule, and the parser maps a failed check back to
 * the position of the argument that caused it. */
#include "lang.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define NAME_MAX_LEN 32   /* longer than any op, argument or value name */
#define NUMBER_MAX_LEN 40 /* more digits than a double can tell apart */
#define LIST_MAX 4        /* l:t:r:b is the longest list */

/* ---- the parser */

/* Where each op and each number of its arguments started (0-based offsets), so that a
 * check failing after the parse still points at its token. */
typedef struct op_pos {
    int op;
    int item[TP__OP_ARGS_MAX][LIST_MAX];
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
static int set_arg(parser *x, tp_op *op, const tp__op_def *d, int k, const value *v, op_pos *pos)
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
        const char *names[tp__ndtype_names];
        for (size_t i = 0; i < tp__ndtype_names; i++)
            names[i] = tp__dtype_names[i].name;
        int i = set_name(x, v, a, names, (int)tp__ndtype_names,
                         "uint8, float32, float16 or bfloat16");
        TP_TRY(i);
        op->dtype = tp__dtype_names[i].dtype;
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
static int arg_slot(parser *x, const tp__op_def *d, bool *keywords, int *npos)
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
        for (int k = 0; k < TP__OP_ARGS_MAX && d->args[k]; k++)
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

static int parse_args(parser *x, const tp__op_def *d, tp_op *op, op_pos *pos, unsigned *seen)
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
    const tp__op_def *d = tp__op_def_named(name);
    if (!d)
        return fail(x, at, "unknown op '%s'", name);
    memset(op, 0, sizeof(*op)); /* field by field from here: padding bytes stay zero */
    op->kind = d->kind;
    pos->op = (int)(at - x->s);
    for (int k = 0; k < TP__OP_ARGS_MAX; k++)
        for (int j = 0; j < LIST_MAX; j++)
            pos->item[k][j] = pos->op;
    unsigned seen = 0;
    skip(x);
    if (*x->p == '(') {
        x->p++;
        TP_TRY(parse_args(x, d, op, pos, &seen));
    }
    for (int k = 0; k < TP__OP_ARGS_MAX && d->args[k]; k++) {
        if ((d->required & (1u << k)) && !(seen & (1u << k)))
            return fail(x, at, "%s needs its %s", d->name, d->args[k]);
        if (!(seen & (1u << k)))
            tp__op_default(op, k);
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
    for (int k = 0; k < TP__OP_ARGS_MAX; k++)
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
    if (!tp__size_ok((int)TP_MIN(n, (long)INT32_MAX)))
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
        tp__op_default(a, 1);
        tp__op_default(a, 2);
        c->kind = TP_OP_HFLIP;
        tp__op_default(c, 0);
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
    tp__problem pr;
    if (tp__pipeline_ok(out, false, &pr))
        return 0;
    int at = 0;
    if (pr.op >= 0) {
        const op_pos *pos = &x.pos[pr.op];
        at = pr.arg < 0 ? pos->op : pos->item[pr.arg][TP_MIN(pr.item, LIST_MAX - 1)];
    }
    return tp__error_set(err, TP_EUSAGE, "at %d: %s", at + 1, pr.why);
}
