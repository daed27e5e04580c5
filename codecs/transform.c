/* Training transforms fused with decoding; see transform.h. A pipeline is compiled once
 * per session; for each sample the planner (ops/plan.c) turns its geometry into one
 * region decode at one DCT scale, shared by every view of the image, then each view is
 * resampled once, straight into its output or through the colour ops, and converted to
 * its dtype row by row (ops/convert.c). The random numbers come from our own per-sample
 * generator, so crops have torchvision's distribution but not its values. */
#include "ops/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tp_rng_seed(tp_rng *r, uint64_t seed, uint64_t epoch, uint64_t sample)
{
    uint64_t x = seed;
    x = tp__splitmix64(&x) ^ epoch;
    x = tp__splitmix64(&x) ^ sample;
    for (int i = 0; i < 4; i++)
        r->s[i] = tp__splitmix64(&x);
}

void tp_rng_seed_view(tp_rng *r, uint64_t seed, uint64_t epoch, uint64_t sample, uint32_t view)
{
    tp_rng_seed(r, seed, epoch, sample);
    if (view == 0)
        return;
    uint64_t x = r->s[0] ^ r->s[3] ^ ((uint64_t)view << 32 | view);
    for (int i = 0; i < 4; i++)
        r->s[i] = tp__splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t tp_rng_next(tp_rng *r) /* xoshiro256** */
{
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double tp_rng_uniform(tp_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * (double)(tp_rng_next(r) >> 11) * 0x1.0p-53;
}

int64_t tp_rng_int(tp_rng *r, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)(hi - lo) + 1, limit = UINT64_MAX - UINT64_MAX % span, v;
    do /* rejection keeps every value equally likely */
        v = tp_rng_next(r);
    while (v >= limit);
    return lo + (int64_t)(v % span);
}

/* Python's round(): halves go to the even neighbour. */
static int round_even(double x) { return (int)nearbyint(x); }

void tp_rrc_params(int width, int height, double scale_lo, double scale_hi, double ratio_lo,
                   double ratio_hi, tp_rng *rng, tp_crop *out)
{
    double area = (double)width * height, lr0 = log(ratio_lo), lr1 = log(ratio_hi);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * tp_rng_uniform(rng, scale_lo, scale_hi);
        double aspect = exp(tp_rng_uniform(rng, lr0, lr1));
        int w = round_even(sqrt(target * aspect)), h = round_even(sqrt(target / aspect));
        if (w > 0 && w <= width && h > 0 && h <= height) {
            out->y = (int)tp_rng_int(rng, 0, height - h);
            out->x = (int)tp_rng_int(rng, 0, width - w);
            out->width = w;
            out->height = h;
            return;
        }
    }
    double in_ratio = (double)width / height;
    int w = width, h = height;
    if (in_ratio < ratio_lo)
        h = round_even(w / ratio_lo);
    else if (in_ratio > ratio_hi)
        w = round_even(h * ratio_hi);
    *out = (tp_crop){.x = (width - w) / 2, .y = (height - h) / 2, .width = w, .height = h};
}

void tp_center_box(int width, int height, int resize, int size, double box[4])
{
    int rw = resize, rh = resize;
    if (width <= height)
        rh = (int)((int64_t)resize * height / width);
    else
        rw = (int)((int64_t)resize * width / height);
    int top = round_even((rh - size) / 2.0), left = round_even((rw - size) / 2.0);
    double sx = (double)width / rw, sy = (double)height / rh;
    box[0] = left * sx;
    box[1] = top * sy;
    box[2] = (left + size) * sx;
    box[3] = (top + size) * sy;
}

int tp_transform_compile(const tp_pipeline *p, tp_transform *out, tp_error *err)
{
    tp_transform t = {.p = *p};
    TP_TRY(tp_pipeline_check(&t.p, err));
    tp_pipeline_shape_of(&t.p, &t.shape);
    if (t.p.nops == 0) {
        *out = t;
        return 0;
    }
    const tp_op *first = &t.p.ops[0];
    t.kind = first->kind == TP_OP_RANDOM_RESIZED_CROP ? TP_TRANSFORM_RRC
             : first->kind == TP_OP_RESIZE && first->size[1] == 0 && t.p.nops > 1 &&
                     t.p.ops[1].kind == TP_OP_CENTER_CROP
                 ? TP_TRANSFORM_CENTER
                 : TP_TRANSFORM_OTHER;
    bool chw = t.shape.layout == TP_LAYOUT_CHW;
    t.channels = (int)(chw ? t.shape.shape[0] : t.shape.shape[2]);
    t.out_h = (int)(chw ? t.shape.shape[1] : t.shape.shape[0]);
    t.out_w = (int)(chw ? t.shape.shape[2] : t.shape.shape[1]);
    t.size = t.out_h;
    t.out_bytes = (size_t)t.out_h * t.out_w * t.channels * tp_dtype_size(t.shape.dtype);
    for (uint32_t i = 0; i < t.p.nops; i++)
        t.color |= t.p.ops[i].kind == TP_OP_COLOR_JITTER || t.p.ops[i].kind == TP_OP_GRAYSCALE;
    t.direct = !t.color && t.shape.dtype == TP_DTYPE_UINT8 && !chw && t.channels == 3;
    tp__convert_init(&t);
    *out = t;
    return 0;
}

int tp_transform_parse(const char *text, tp_transform *out, tp_error *err)
{
    tp_pipeline p;
    TP_TRY(tp_pipeline_parse(text, &p, err));
    return tp_transform_compile(&p, out, err);
}

struct tp_transformer {
    tp_jpeg_decoder *dec;
    tp_image img;
    tp_resample_scratch scratch;
    unsigned char *canvas;     /* uint8 canvas for colour ops */
    size_t canvas_cap;
    tp_view_plan views[TP_MAX_VIEWS];
};

int tp_transformer_create(tp_transformer **out)
{
    tp_transformer *t = calloc(1, sizeof(*t));
    if (!t || tp_jpeg_decoder_create(&t->dec) < 0) {
        free(t);
        return -ENOMEM;
    }
    *out = t;
    return 0;
}

void tp_transformer_destroy(tp_transformer *t)
{
    if (!t)
        return;
    tp_jpeg_decoder_destroy(t->dec);
    free(t->img.pixels);
    free(t->canvas);
    tp_resample_scratch_free(&t->scratch);
    free(t);
}

typedef struct plan_set {
    tp_view_plan *v;
    unsigned n;
} plan_set;

/* Once the header is read: every view's geometry, and one request covering them all at
 * the finest scale any needs. */
static void plan_views(void *ctx, int width, int height, tp_jpeg_request *rq)
{
    plan_set *ps = ctx;
    int u[4] = {INT32_MAX, INT32_MAX, 0, 0}, m = 1;
    for (unsigned i = 0; i < ps->n; i++) {
        tp_view_plan *v = &ps->v[i];
        tp__plan_view(v, width, height);
        u[0] = TP_MIN(u[0], v->region[0]);
        u[1] = TP_MIN(u[1], v->region[1]);
        u[2] = TP_MAX(u[2], v->region[2]);
        u[3] = TP_MAX(u[3], v->region[3]);
        m = TP_MAX(m, v->scale);
    }
    *rq = (tp_jpeg_request){.x = u[0], .y = u[1], .width = u[2] - u[0], .height = u[3] - u[1],
                            .max_pixels = rq->max_pixels, .scale_num = m};
}

typedef struct row_sink {
    const tp_transform *t;
    void *out;
    int x0, y0, n;
} row_sink;

static void sink_row(void *ctx, int y, const unsigned char *row)
{
    const row_sink *r = ctx;
    tp__convert_row(r->t, row, 3, r->y0 + y, r->x0, r->n, r->out);
}

/* Maps the view's source box into the decoded (scaled, cropped) image and resamples it
 * into the output: straight into uint8 HWC, through the uint8 canvas when colour ops
 * follow, or converting each row as it is finished. */
static int render_view(tp_transformer *tr, const tp_view_plan *v, unsigned char *out)
{
    const tp_image *img = &tr->img;
    const tp_transform *t = v->t;
    const int *r = v->rect;
    bool empty = r[0] >= r[2] || r[1] >= r[3];
    bool padded = empty || r[0] > 0 || r[1] > 0 || r[2] < t->out_w || r[3] < t->out_h;
    unsigned char *canvas = out;
    size_t cstride = (size_t)t->out_w * 3;
    if (t->color) {
        TP_TRY(tp__grow((void **)&tr->canvas, &tr->canvas_cap, cstride * t->out_h));
        canvas = tr->canvas;
        if (padded)
            memset(canvas, v->fill, cstride * t->out_h);
    } else if (padded) {
        tp__convert_fill(t, v->fill, out);
    }
    if (!empty) {
        double f = img->scale_num / 8.0;
        tp_resample_job j = {.src = img->pixels, .src_w = img->width, .src_h = img->height,
                             .src_stride = (size_t)img->width * 3,
                             .box_x0 = v->box[0] * f - img->x0, .box_y0 = v->box[1] * f - img->y0,
                             .box_x1 = v->box[2] * f - img->x0, .box_y1 = v->box[3] * f - img->y0,
                             .dst_w = r[2] - r[0], .dst_h = r[3] - r[1], .mirror = v->mirror,
                             .exact = t->exact};
        j.win_x0 = TP_MAX((int)floor(v->win[0] * f) - img->x0, 0);
        j.win_y0 = TP_MAX((int)floor(v->win[1] * f) - img->y0, 0);
        j.win_x1 = TP_MIN((int)ceil(v->win[2] * f) - img->x0, img->width);
        j.win_y1 = TP_MIN((int)ceil(v->win[3] * f) - img->y0, img->height);
        j.win_x1 = TP_MAX(j.win_x1, TP_MIN(j.win_x0 + 1, img->width));
        j.win_y1 = TP_MAX(j.win_y1, TP_MIN(j.win_y0 + 1, img->height));
        j.win_x0 = TP_MIN(j.win_x0, j.win_x1 - 1);
        j.win_y0 = TP_MIN(j.win_y0, j.win_y1 - 1);
        row_sink sink = {.t = t, .out = out, .x0 = r[0], .y0 = r[1], .n = r[2] - r[0]};
        if (t->direct || t->color) {
            j.dst = canvas + (size_t)r[1] * cstride + (size_t)r[0] * 3;
            j.dst_stride = cstride;
        } else {
            j.row_out = sink_row;
            j.row_ctx = &sink;
        }
        TP_TRY(tp_resample(&j, &tr->scratch));
    }
    if (t->color) {
        int channels = tp__color_apply(t, v, canvas, t->out_w, t->out_h);
        size_t row = (size_t)t->out_w * channels;
        for (int y = 0; y < t->out_h; y++)
            tp__convert_row(t, canvas + (size_t)y * row, channels, y, 0, t->out_w, out);
    }
    return 0;
}

/* A JPEG decodes what the plan asks for; a PNG decodes whole (at full scale, from
 * (0, 0)), and the plan then places the views in it. */
static int decode(tp_transformer *tr, const void *data, size_t len, tp_jpeg_request *rq,
                  tp_error *err)
{
    if (!tp_png_signature(data, len))
        return tp_jpeg_decode(tr->dec, data, len, rq, &tr->img, err);
    TP_TRY(tp_png_decode(data, len, rq->max_pixels, &tr->img, err));
    if (rq->plan)
        rq->plan(rq->plan_ctx, tr->img.width, tr->img.height, rq);
    return 0;
}

int tp_transform_image_views(tp_transformer *tr, const void *data, size_t len,
                             const tp_transform *const *ts, const uint32_t *views, unsigned n,
                             uint64_t seed, uint64_t epoch, uint64_t id,
                             unsigned char *const *outs, tp_error *err)
{
    if (n < 1 || n > TP_MAX_VIEWS)
        return tp__error_set(err, TP_EUSAGE, "%u views (1..%u)", n, TP_MAX_VIEWS);
    for (unsigned i = 0; i < n; i++) {
        if (ts[i]->kind == TP_TRANSFORM_NONE)
            return tp__error_set(err, TP_EUSAGE, "view %u has no fixed size", i);
        tr->views[i] = (tp_view_plan){.t = ts[i]};
        tp_rng_seed_view(&tr->views[i].rng, seed, epoch, id, views ? views[i] : i);
    }
    plan_set ps = {.v = tr->views, .n = n};
    tp_jpeg_request rq = {.plan = plan_views, .plan_ctx = &ps};
    TP_TRY(decode(tr, data, len, &rq, err));
    for (unsigned i = 0; i < n; i++) {
        int rc = render_view(tr, &tr->views[i], outs[i]);
        if (rc < 0)
            return tp__error_set(err, rc, "resampling: %s", tp_strerror(rc));
    }
    return 0;
}

int tp_transform_image(tp_transformer *tr, const void *data, size_t len, const tp_transform *t,
                       uint64_t seed, uint64_t epoch, uint64_t id, unsigned char *out,
                       tp_error *err)
{
    if (t->kind == TP_TRANSFORM_NONE) {
        tp_jpeg_request rq = {0};
        return decode(tr, data, len, &rq, err);
    }
    const uint32_t view = 0;
    return tp_transform_image_views(tr, data, len, &t, &view, 1, seed, epoch, id, &out, err);
}

const tp_image *tp_transformer_image(const tp_transformer *tr) { return &tr->img; }

tp_jpeg_decoder *tp_transformer_decoder(tp_transformer *tr) { return tr->dec; }
