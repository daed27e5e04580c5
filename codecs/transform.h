/* Image transforms for training input: torchvision's RandomResizedCrop and
 * Resize + CenterCrop geometry, horizontal flip, and the resampler they share, fused with
 * JPEG decoding so only the pixels a crop needs are decoded, at the smallest DCT scale
 * that still covers the output. Randomness comes from a generator seeded by
 * (seed, epoch, sample id), so the output does not depend on threads or order. */
#ifndef TP_TRANSFORM_H
#define TP_TRANSFORM_H

#include "codecs.h"
#include "normalize.h"

#include <turbopump/dataset.h>

/* ---- per-sample randomness */

typedef struct tp_rng {
    uint64_t s[4];
} tp_rng;

void tp_rng_seed(tp_rng *r, uint64_t seed, uint64_t epoch, uint64_t sample);
uint64_t tp_rng_next(tp_rng *r);
double tp_rng_uniform(tp_rng *r, double lo, double hi); /* [lo, hi) */
int64_t tp_rng_int(tp_rng *r, int64_t lo, int64_t hi);  /* [lo, hi], inclusive */

/* ---- crop geometry, in source pixels */

typedef struct tp_crop {
    int x, y, width, height;
} tp_crop;

/* torchvision RandomResizedCrop.get_params: up to 10 tries of a random area fraction in
 * [scale_lo, scale_hi] and log-uniform aspect ratio in [ratio_lo, ratio_hi]; then the
 * central crop clamped to the ratio range. */
void tp_rrc_params(int width, int height, double scale_lo, double scale_hi, double ratio_lo,
                   double ratio_hi, tp_rng *rng, tp_crop *out);

/* Resize(shorter side to `resize`) then CenterCrop(size), as a source-space box:
 * box is (x0, y0, x1, y1) in source pixels, possibly fractional. */
void tp_center_box(int width, int height, int resize, int size, double box[4]);

/* ---- resampling */

typedef struct tp_resample_scratch {
    void *bounds[2], *k[2], *fbounds[2], *fk[2], *w, *tmp, *acc;
    size_t bounds_cap[2], k_cap[2], fbounds_cap[2], fk_cap[2], w_cap, tmp_cap, acc_cap;
} tp_resample_scratch;

typedef struct tp_resample_job {
    const unsigned char *src;  /* RGB */
    int src_w, src_h;
    size_t src_stride;
    double box_x0, box_y0, box_x1, box_y1; /* the source box mapped onto the output */
    int win_x0, win_y0, win_x1, win_y1;    /* taps are confined to this window */
    unsigned char *dst;        /* RGB */
    int dst_w, dst_h;
    size_t dst_stride;
    bool mirror;               /* write each output row right to left (horizontal flip) */
    bool exact;                /* Pillow's 22-bit arithmetic, identical output; otherwise
                                  14-bit weights (within one level of it) and SIMD */
} tp_resample_job;

/* Antialiased bilinear resampling with Pillow's weights. @return : 0 or -ENOMEM. */
int tp_resample(const tp_resample_job *j, tp_resample_scratch *s);
void tp_resample_scratch_free(tp_resample_scratch *s);

/* For tests: -1 (default) uses SIMD where the CPU has it, 0 forces the plain C path. */
extern int tp__resample_simd;

/* ---- decode + transform */

typedef enum tp_transform_kind {
    TP_TRANSFORM_NONE = 0,   /* full decode, original size */
    TP_TRANSFORM_RRC = 1,    /* RandomResizedCrop(size) + RandomHorizontalFlip(flip_p) */
    TP_TRANSFORM_CENTER = 2  /* Resize(resize) + CenterCrop(size) */
} tp_transform_kind;

typedef struct tp_transform {
    tp_transform_kind kind;
    int size;                      /* output is size x size x 3 (RRC, CENTER) */
    int resize;                    /* CENTER: shorter side before the crop (e.g. 256) */
    double scale_lo, scale_hi;     /* RRC: (0.08, 1.0) */
    double ratio_lo, ratio_hi;     /* RRC: (3/4, 4/3) */
    double flip_p;                 /* RRC: 0.5 */
    bool exact;                    /* decode at full scale (no DCT scaling) */
    unsigned scales;               /* DCT scales allowed (TP_JPEG_SCALES_*); 0: POW2 */
    const struct tp_crop *fixed;   /* RRC: use this crop, no flip (validation, tests) */
} tp_transform;

/* The transforms by name: "rrc224", "center224", "none". @return : 0 or TP_EUSAGE. */
int tp_transform_parse(const char *name, tp_transform *out);

/* Per-thread state: a JPEG decoder, the decoded image and resampling scratch. */
typedef struct tp_transformer tp_transformer;
int tp_transformer_create(tp_transformer **out);
void tp_transformer_destroy(tp_transformer *t);

/* Decodes `jpeg` and applies `t` for sample (seed, epoch, id), writing size*size*3 bytes
 * (HWC uint8) to `out`. For TP_TRANSFORM_NONE, `out` may be NULL and the decoded image
 * is left in the transformer. @return : 0 or a decoding error. */
int tp_transform_jpeg(tp_transformer *tr, const void *jpeg, size_t len, const tp_transform *t,
                      uint64_t seed, uint64_t epoch, uint64_t id, unsigned char *out,
                      tp_error *err);

/* ---- output formats */

/* The last decoded image (after tp_transform_jpeg with TP_TRANSFORM_NONE). */
const tp_image *tp_transformer_image(const tp_transformer *tr);

#endif
