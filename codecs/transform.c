/* Training transforms fused with decoding; see transform.h. The crop geometry follows
 * torchvision exactly (its sampling rules, Python's round-half-even, integer truncation
 * in Resize); the random numbers come from our own per-sample generator, so the crops
 * have torchvision's distribution but not its values. */
#include "transform.h"

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

int tp_transform_parse(const char *name, tp_transform *out)
{
    if (!strcmp(name, "none")) {
        *out = (tp_transform){.kind = TP_TRANSFORM_NONE};
        return 0;
    }
    int size;
    char extra;
    bool rrc = sscanf(name, "rrc%d%c", &size, &extra) == 1;
    bool center = !rrc && sscanf(name, "center%d%c", &size, &extra) == 1;
    if ((!rrc && !center) || size < 1 || size > 8192)
        return TP_EUSAGE;
    *out = (tp_transform){.kind = rrc ? TP_TRANSFORM_RRC : TP_TRANSFORM_CENTER, .size = size,
                          .resize = size * 8 / 7, .scale_lo = 0.08, .scale_hi = 1.0,
                          .ratio_lo = 3.0 / 4.0, .ratio_hi = 4.0 / 3.0, .flip_p = 0.5};
    return 0;
}

struct tp_transformer {
    tp_jpeg_decoder *dec;
    tp_image img;
    tp_resample_scratch scratch;
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
    tp_resample_scratch_free(&t->scratch);
    free(t);
}

/* What one sample's transform decided once the image size was known. */
typedef struct plan {
    const tp_transform *t;
    tp_rng rng;
    tp_crop crop;      /* RRC: the crop, source pixels */
    double box[4];     /* the source box mapped onto the output */
    bool flip;
} plan;

static void plan_rrc(void *ctx, int width, int height, tp_jpeg_request *rq)
{
    plan *p = ctx;
    const tp_transform *t = p->t;
    if (t->fixed) {
        p->crop = *t->fixed;
    } else {
        tp_rrc_params(width, height, t->scale_lo, t->scale_hi, t->ratio_lo, t->ratio_hi,
                      &p->rng, &p->crop);
        p->flip = tp_rng_uniform(&p->rng, 0, 1) < t->flip_p;
    }
    p->crop.width = TP_MAX(1, TP_MIN(p->crop.width, width - p->crop.x));
    p->crop.height = TP_MAX(1, TP_MIN(p->crop.height, height - p->crop.y));
    p->box[0] = p->crop.x;
    p->box[1] = p->crop.y;
    p->box[2] = p->crop.x + p->crop.width;
    p->box[3] = p->crop.y + p->crop.height;
    *rq = (tp_jpeg_request){.x = p->crop.x, .y = p->crop.y, .width = p->crop.width,
                            .height = p->crop.height, .out_width = t->exact ? 0 : t->size,
                            .out_height = t->exact ? 0 : t->size, .max_pixels = rq->max_pixels,
                            .scales = t->scales ? t->scales : TP_JPEG_SCALES_POW2};
}

/* Resize + CenterCrop reads a little around its box (the filter's reach): decode the box
 * plus that margin, at a scale that keeps at least `size` pixels across the box. */
static void plan_center(void *ctx, int width, int height, tp_jpeg_request *rq)
{
    plan *p = ctx;
    const tp_transform *t = p->t;
    tp_center_box(width, height, t->resize, t->size, p->box);
    double reach_x = ceil(TP_MAX((p->box[2] - p->box[0]) / t->size, 1.0)) + 1;
    double reach_y = ceil(TP_MAX((p->box[3] - p->box[1]) / t->size, 1.0)) + 1;
    int x0 = (int)TP_MAX(floor(p->box[0] - reach_x), 0.0);
    int y0 = (int)TP_MAX(floor(p->box[1] - reach_y), 0.0);
    int x1 = (int)TP_MIN(ceil(p->box[2] + reach_x), (double)width);
    int y1 = (int)TP_MIN(ceil(p->box[3] + reach_y), (double)height);
    double bw = TP_MAX(p->box[2] - p->box[0], 1e-9), bh = TP_MAX(p->box[3] - p->box[1], 1e-9);
    *rq = (tp_jpeg_request){.x = x0, .y = y0, .width = x1 - x0, .height = y1 - y0,
                            .out_width = t->exact ? 0 : (int)ceil(t->size * (x1 - x0) / bw),
                            .out_height = t->exact ? 0 : (int)ceil(t->size * (y1 - y0) / bh),
                            .max_pixels = rq->max_pixels,
                            .scales = t->scales ? t->scales : TP_JPEG_SCALES_POW2};
}

/* Maps the plan's source box into the decoded (scaled, cropped) image and resamples. */
static int resample_plan(tp_transformer *tr, const plan *p, unsigned char *out)
{
    const tp_image *img = &tr->img;
    const tp_transform *t = p->t;
    double f = img->scale_num / 8.0;
    tp_resample_job j = {.src = img->pixels, .src_w = img->width, .src_h = img->height,
                         .src_stride = (size_t)img->width * 3,
                         .box_x0 = p->box[0] * f - img->x0, .box_y0 = p->box[1] * f - img->y0,
                         .box_x1 = p->box[2] * f - img->x0, .box_y1 = p->box[3] * f - img->y0,
                         .win_x0 = 0, .win_y0 = 0, .win_x1 = img->width, .win_y1 = img->height,
                         .dst = out, .dst_w = t->size, .dst_h = t->size,
                         .dst_stride = (size_t)t->size * 3, .mirror = p->flip,
                         .exact = t->exact};
    if (t->kind == TP_TRANSFORM_RRC) { /* the crop's own pixels only, as crop-then-resize */
        j.win_x0 = TP_MAX((int)floor(p->box[0] * f) - img->x0, 0);
        j.win_y0 = TP_MAX((int)floor(p->box[1] * f) - img->y0, 0);
        j.win_x1 = TP_MIN((int)ceil(p->box[2] * f) - img->x0, img->width);
        j.win_y1 = TP_MIN((int)ceil(p->box[3] * f) - img->y0, img->height);
        j.win_x1 = TP_MAX(j.win_x1, j.win_x0 + 1);
        j.win_y1 = TP_MAX(j.win_y1, j.win_y0 + 1);
    }
    return tp_resample(&j, &tr->scratch);
}

int tp_transform_jpeg(tp_transformer *tr, const void *jpeg, size_t len, const tp_transform *t,
                      uint64_t seed, uint64_t epoch, uint64_t id, unsigned char *out,
                      tp_error *err)
{
    plan p = {.t = t};
    tp_rng_seed(&p.rng, seed, epoch, id);
    tp_jpeg_request rq = {.plan_ctx = &p};
    if (t->kind == TP_TRANSFORM_RRC)
        rq.plan = plan_rrc;
    else if (t->kind == TP_TRANSFORM_CENTER)
        rq.plan = plan_center;
    TP_TRY(tp_jpeg_decode(tr->dec, jpeg, len, &rq, &tr->img, err));
    if (t->kind == TP_TRANSFORM_NONE)
        return 0;
    int rc = resample_plan(tr, &p, out);
    return rc < 0 ? tp__error_set(err, rc, "resampling: %s", tp_strerror(rc)) : 0;
}

const tp_image *tp_transformer_image(const tp_transformer *tr) { return &tr->img; }
