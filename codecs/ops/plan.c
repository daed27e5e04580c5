/* The geometry planner: walks a pipeline's crops, resizes and flips on a virtual image
 * and ends with where the source lands in the output, so one resampling pass does what
 * torchvision does in several. The state is the virtual image's size, the rectangle of
 * it that shows the source (the rest is padding), the source box that rectangle maps,
 * the window the filter's taps may reach, and whether the rectangle is mirrored.
 *
 * - A crop narrows the rectangle and the box, and, before any resize, the tap window too:
 *   cropping then resizing reads only the crop's pixels, while resizing then cropping
 *   lets the filter reach across the crop's edge (as center224 does). Crops that reach
 *   past the image (center_crop larger than it, random_crop's padding) leave padding.
 * - A resize changes only the virtual size. Two resizes in one pipeline are fused into
 *   one resampling from the source (torchvision resamples twice); docs/TRANSFORMS.md
 *   gives the difference.
 * - The crop geometry follows torchvision exactly (its sampling rules, Python's
 *   round-half-even, integer truncation in Resize); the random numbers come from the
 *   per-sample generator, drawn in the pipeline's order. */
#include "ops.h"

#include <math.h>

typedef struct geo {
    int vw, vh;                /* virtual image */
    int rect[4];               /* where the source shows, in virtual pixels */
    double box[4];             /* the source box behind rect */
    int win[4];
    bool mirror, resized;
    int fill;
} geo;

static int round_even(double x) { return (int)nearbyint(x); }

static bool rect_empty(const int r[4]) { return r[0] >= r[2] || r[1] >= r[3]; }

/* Keeps the part of the image inside the virtual box (x, y, w, h), which becomes the new
 * virtual image; the box may reach outside it (padding). */
static void crop(geo *g, int x, int y, int w, int h)
{
    int k[4] = {TP_MAX(g->rect[0], x), TP_MAX(g->rect[1], y), TP_MIN(g->rect[2], x + w),
                TP_MIN(g->rect[3], y + h)};
    if (rect_empty(g->rect) || rect_empty(k)) {
        g->rect[0] = g->rect[1] = g->rect[2] = g->rect[3] = 0;
    } else {
        /* source pixels per virtual pixel: exactly 1 before any resize, so crops of the
         * source stay whole pixels */
        double sx = (g->box[2] - g->box[0]) / (g->rect[2] - g->rect[0]);
        double sy = (g->box[3] - g->box[1]) / (g->rect[3] - g->rect[1]);
        double b[4];
        if (g->mirror) { /* the rectangle runs right to left over the box */
            b[0] = g->box[0] + (g->rect[2] - k[2]) * sx;
            b[2] = g->box[0] + (g->rect[2] - k[0]) * sx;
        } else {
            b[0] = g->box[0] + (k[0] - g->rect[0]) * sx;
            b[2] = g->box[0] + (k[2] - g->rect[0]) * sx;
        }
        b[1] = g->box[1] + (k[1] - g->rect[1]) * sy;
        b[3] = g->box[1] + (k[3] - g->rect[1]) * sy;
        memcpy(g->box, b, sizeof(b));
        if (!g->resized) { /* crop before resize: taps stay inside */
            g->win[0] = TP_MAX(g->win[0], (int)floor(b[0]));
            g->win[1] = TP_MAX(g->win[1], (int)floor(b[1]));
            g->win[2] = TP_MIN(g->win[2], (int)ceil(b[2]));
            g->win[3] = TP_MIN(g->win[3], (int)ceil(b[3]));
            g->win[2] = TP_MAX(g->win[2], g->win[0] + 1);
            g->win[3] = TP_MAX(g->win[3], g->win[1] + 1);
        }
        g->rect[0] = k[0] - x;
        g->rect[1] = k[1] - y;
        g->rect[2] = k[2] - x;
        g->rect[3] = k[3] - y;
    }
    g->vw = w;
    g->vh = h;
}

static void resize(geo *g, int w, int h)
{
    if (w == g->vw && h == g->vh)
        return;
    double sx = (double)w / g->vw, sy = (double)h / g->vh;
    /* padding then resize: the padding's edge moves to the nearest pixel (torchvision
     * would blend it with the image over one filter width) */
    g->rect[0] = round_even(g->rect[0] * sx);
    g->rect[1] = round_even(g->rect[1] * sy);
    g->rect[2] = round_even(g->rect[2] * sx);
    g->rect[3] = round_even(g->rect[3] * sy);
    g->vw = w;
    g->vh = h;
    g->resized = true;
}

static void flip(geo *g)
{
    int x0 = g->vw - g->rect[2], x1 = g->vw - g->rect[0];
    g->rect[0] = x0;
    g->rect[2] = x1;
    g->mirror = !g->mirror;
}

/* torchvision's Resize size rule: the shorter side becomes `s`, the longer
 * int(s * long / short), both capped by max_size on the longer side. */
static void resize_shorter(geo *g, int s, int max_size)
{
    bool wide = g->vw > g->vh;
    int64_t shorter = wide ? g->vh : g->vw, longer = wide ? g->vw : g->vh;
    int64_t ns = s, nl = (int64_t)s * longer / shorter;
    if (max_size > 0 && nl > max_size) {
        ns = (int64_t)max_size * ns / nl;
        nl = max_size;
    }
    ns = TP_MAX(ns, 1);
    resize(g, (int)(wide ? nl : ns), (int)(wide ? ns : nl));
}

/* CenterCrop: pads (zeros, split as torchvision does) where the crop is larger. */
static int center_offset(int size, int crop)
{
    return crop > size ? -((crop - size) / 2) : round_even((size - crop) / 2.0);
}

static void random_crop(geo *g, const tp_op *op, tp_rng *rng)
{
    int h = op->size[0], w = op->size[1];
    /* padding first (left, top, right, bottom), then pad_if_needed on both sides */
    int left = op->padding[0], top = op->padding[1];
    int W = g->vw + op->padding[0] + op->padding[2], H = g->vh + op->padding[1] + op->padding[3];
    if (op->pad_if_needed && W < w) {
        left += w - W;
        W += 2 * (w - W);
    }
    if (op->pad_if_needed && H < h) {
        top += h - H;
        H += 2 * (h - H);
    }
    int y = 0, x = 0;
    if (H >= h && W >= w) { /* torchvision raises otherwise; we centre the padding */
        y = (int)tp_rng_int(rng, 0, H - h);
        x = (int)tp_rng_int(rng, 0, W - w);
    } else {
        y = -((h - TP_MIN(H, h)) / 2);
        x = -((w - TP_MIN(W, w)) / 2);
    }
    g->fill = op->fill;
    crop(g, x - left, y - top, w, h);
}

static void draw_color(const tp_op *op, tp_rng *rng, struct tp_color_draw *d)
{
    for (int i = 0; i < 3; i++)
        d->order[i] = i;
    for (int i = 2; i > 0; i--) { /* a uniform permutation, as randperm */
        int j = (int)tp_rng_int(rng, 0, i), t = d->order[i];
        d->order[i] = d->order[j];
        d->order[j] = t;
    }
    const double *r[3] = {op->brightness, op->contrast, op->saturation};
    for (int i = 0; i < 3; i++)
        d->factor[i] = r[i][1] > 0 ? tp_rng_uniform(rng, r[i][0], r[i][1]) : -1;
}

void tp__plan_view(tp_view_plan *v, int width, int height)
{
    const tp_transform *t = v->t;
    geo g = {.vw = width, .vh = height, .rect = {0, 0, width, height},
             .box = {0, 0, width, height}, .win = {0, 0, width, height}, .fill = 0};
    bool fixed_used = false;
    for (uint32_t i = 0; i < t->p.nops; i++) {
        const tp_op *op = &t->p.ops[i];
        switch (op->kind) {
        case TP_OP_RANDOM_RESIZED_CROP: {
            tp_crop c;
            if (t->fixed && !fixed_used) {
                c = *t->fixed;
                fixed_used = true;
            } else {
                tp_rrc_params(g.vw, g.vh, op->scale[0], op->scale[1], op->ratio[0],
                              op->ratio[1], &v->rng, &c);
            }
            c.width = TP_MAX(1, TP_MIN(c.width, g.vw - c.x));
            c.height = TP_MAX(1, TP_MIN(c.height, g.vh - c.y));
            crop(&g, c.x, c.y, c.width, c.height);
            resize(&g, op->size[1], op->size[0]);
            break;
        }
        case TP_OP_RESIZE:
            if (op->size[1] > 0)
                resize(&g, op->size[1], op->size[0]);
            else
                resize_shorter(&g, op->size[0], op->max_size);
            break;
        case TP_OP_CENTER_CROP:
            g.fill = op->fill;
            crop(&g, center_offset(g.vw, op->size[1]), center_offset(g.vh, op->size[0]),
                 op->size[1], op->size[0]);
            break;
        case TP_OP_RANDOM_CROP:
            random_crop(&g, op, &v->rng);
            break;
        case TP_OP_HFLIP:
            if (!t->fixed && tp_rng_uniform(&v->rng, 0, 1) < op->p)
                flip(&g);
            break;
        case TP_OP_COLOR_JITTER:
            draw_color(op, &v->rng, &v->color[i]);
            break;
        default:
            break;
        }
    }
    memcpy(v->box, g.box, sizeof(g.box));
    memcpy(v->win, g.win, sizeof(g.win));
    memcpy(v->rect, g.rect, sizeof(g.rect));
    v->mirror = g.mirror;
    v->fill = g.fill;
    if (rect_empty(g.rect)) { /* all padding: decode as little as possible */
        v->region[0] = v->region[1] = 0;
        v->region[2] = v->region[3] = 1;
        v->scale = 1;
        return;
    }
    /* The source the filter reads: the box plus its reach, inside the window. */
    double bw = TP_MAX(g.box[2] - g.box[0], 1e-9), bh = TP_MAX(g.box[3] - g.box[1], 1e-9);
    int rw = g.rect[2] - g.rect[0], rh = g.rect[3] - g.rect[1];
    double reach_x = ceil(TP_MAX(bw / rw, 1.0)) + 1, reach_y = ceil(TP_MAX(bh / rh, 1.0)) + 1;
    v->region[0] = TP_MAX((int)floor(g.box[0] - reach_x), g.win[0]);
    v->region[1] = TP_MAX((int)floor(g.box[1] - reach_y), g.win[1]);
    v->region[2] = TP_MIN((int)ceil(g.box[2] + reach_x), g.win[2]);
    v->region[3] = TP_MIN((int)ceil(g.box[3] + reach_y), g.win[3]);
    v->region[2] = TP_MAX(v->region[2], v->region[0] + 1);
    v->region[3] = TP_MAX(v->region[3], v->region[1] + 1);
    int gw = v->region[2] - v->region[0], gh = v->region[3] - v->region[1];
    /* at least rw pixels across the box, so nothing is upsampled that could be decoded */
    v->scale = t->exact ? 8
                        : tp_jpeg_pick_scale(t->scales ? t->scales : TP_JPEG_SCALES_POW2, gw, gh,
                                             (int)ceil(rw * gw / bw), (int)ceil(rh * gh / bh));
}
