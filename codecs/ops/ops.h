/* Internal interface of the op table (codecs/ops/): the geometry planner, which turns a
 * pipeline's crops, resizes and flips into one source box, tap window and output
 * rectangle per view and the decode request they share; the colour ops on the uint8
 * canvas; and the output conversion, which runs row by row inside the resampler's last
 * pass. The session and the transformer only see transform.h. */
#ifndef TP_OPS_H
#define TP_OPS_H

#include "transform.h"

/* What one view decided once the image's size was known. Coordinates: `box` is in source
 * pixels (fractional), `win` and `region` in whole source pixels, `rect` on the output
 * canvas (out_w x out_h), where the image lands; the rest of the canvas is padding. */
typedef struct tp_view_plan {
    const tp_transform *t;
    tp_rng rng;
    double box[4];             /* x0, y0, x1, y1: the source box mapped onto rect */
    int win[4];                /* taps stay inside (crop-then-resize behaviour) */
    int rect[4];               /* empty (x0 == x1): all padding */
    bool mirror;               /* rect's rows run right to left */
    int region[4];             /* the source pixels this view reads */
    int scale;                 /* the DCT scale M/8 it needs */
    int fill;                  /* the padding's value (the last padding op's fill) */
    /* colour: drawn after the geometry, in the pipeline's order */
    struct tp_color_draw {
        int order[3];          /* brightness, contrast, saturation as torchvision's randperm */
        double factor[3];      /* 0: leave alone */
    } color[TP_PIPELINE_MAX_OPS];
} tp_view_plan;

/* Runs the geometry of v->t on a width x height source with v->rng, then draws the
 * colour parameters. */
void tp__plan_view(tp_view_plan *v, int width, int height);

/* Colour ops in place on a uint8 canvas of `channels` (3) interleaved channels;
 * grayscale(1) leaves one channel in the first third of the buffer.
 * @return : the channels left (3 or 1). */
int tp__color_apply(const tp_transform *t, const tp_view_plan *v, unsigned char *img, int w,
                    int h);

/* ---- output conversion */

/* Fills the compiled tables of `t` (lut, lut16) for its dtype and normalisation. */
void tp__convert_init(tp_transform *t);

/* Writes `n` pixels of canvas row y starting at column x, given as `channels`-channel
 * uint8, into the output buffer of t in its dtype and layout. */
void tp__convert_row(const tp_transform *t, const unsigned char *px, int channels, int y,
                     int x, int n, void *out);

/* Fills the whole output with the padding value (as converted). */
void tp__convert_fill(const tp_transform *t, int fill, void *out);

#endif
