/* Image transforms for training input: torchvision's RandomResizedCrop and
 * Resize + CenterCrop geometry, horizontal flip, and the resampler they share, fused with
 * JPEG decoding so only the pixels a crop needs are decoded, at the smallest DCT scale
 * that still covers the output. Randomness comes from a generator seeded by
 * (seed, epoch, sample id), so the output does not depend on threads or order. */
#ifndef TP_TRANSFORM_H
#define TP_TRANSFORM_H

#include "codecs.h"
#include "normalize.h"

#include <turbopump/pipeline.h>

#include <turbopump/dataset.h>

/* ---- per-sample randomness */

typedef struct tp_rng {
    uint64_t s[4];
} tp_rng;

void tp_rng_seed(tp_rng *r, uint64_t seed, uint64_t epoch, uint64_t sample);
/* View v's generator; view 0 is tp_rng_seed's. */
void tp_rng_seed_view(tp_rng *r, uint64_t seed, uint64_t epoch, uint64_t sample, uint32_t view);
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
    void *bounds[2], *k[2], *fbounds[2], *fk[2], *w, *tmp, *acc, *row, *zt;
    size_t bounds_cap[2], k_cap[2], fbounds_cap[2], fk_cap[2], w_cap, tmp_cap, acc_cap, row_cap,
        zt_cap;
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
    /* Optional: instead of writing rows to dst, hand each finished output row (dst_w RGB
     * pixels, in a buffer reused for the next) to this, which converts it on the spot. */
    void (*row_out)(void *ctx, int y, const unsigned char *row);
    void *row_ctx;
} tp_resample_job;

/* Antialiased bilinear resampling with Pillow's weights. @return : 0 or -ENOMEM. */
int tp_resample(const tp_resample_job *j, tp_resample_scratch *s);
void tp_resample_scratch_free(tp_resample_scratch *s);

/* For tests: -1 (default) uses SIMD where the CPU has it, 0 forces the plain C path, 1 the
 * SSSE3/SSE2 passes (no AVX2), 2 the AVX2 passes (no AVX-512), 3 the AVX-512 passes
 * without VNNI. */
extern int tp__resample_simd;

/* ---- decode + transform: a compiled pipeline (include/turbopump/pipeline.h) */

typedef enum tp_transform_kind { /* what the pipeline starts with (for tests and tools) */
    TP_TRANSFORM_NONE = 0,       /* no ops: full decode, original size */
    TP_TRANSFORM_RRC = 1,        /* random_resized_crop first */
    TP_TRANSFORM_CENTER = 2,     /* resize(shorter side) | center_crop */
    TP_TRANSFORM_OTHER = 3
} tp_transform_kind;

typedef struct tp_transform {
    tp_pipeline p;                 /* checked */
    tp_pipeline_shape shape;
    tp_transform_kind kind;
    int size;                      /* output height (the side of square outputs); 0: none */
    int out_h, out_w, channels;
    size_t out_bytes;              /* per sample */
    bool exact;                    /* decode at full scale, Pillow's 22-bit resampling */
    unsigned scales;               /* DCT scales allowed (TP_JPEG_SCALES_*); 0: POW2 */
    const struct tp_crop *fixed;   /* the first random_resized_crop takes this crop, and no
                                      random flip happens (validation, tests) */
    /* compiled */
    bool color;                    /* colour ops: the image goes through a uint8 canvas */
    bool direct;                   /* uint8 HWC, 3 channels, no colour: resample into out */
    float lut[3][256];             /* output value of each byte per channel (floats) */
    uint16_t lut16[3][256];        /* the same as float16 or bfloat16 bits */
} tp_transform;

/* Compiles a checked pipeline. @return : 0, or TP_EUSAGE (unchecked or invalid). */
int tp_transform_compile(const tp_pipeline *p, tp_transform *out, tp_error *err);

/* Parses a description or name (tp_pipeline_parse) and compiles it.
 * @return : 0 or TP_EUSAGE with the position and cause in `err` (may be NULL). */
int tp_transform_parse(const char *text, tp_transform *out, tp_error *err);

/* Per-thread state: a JPEG decoder, the decoded image and resampling scratch. */
typedef struct tp_transformer tp_transformer;
int tp_transformer_create(tp_transformer **out);
void tp_transformer_destroy(tp_transformer *t);

/* Decodes an encoded image, JPEG or PNG (told apart by the PNG signature), and applies
 * `t` for sample (seed, epoch, id), view 0, writing t->out_bytes to `out`. For
 * TP_TRANSFORM_NONE, `out` may be NULL and the decoded image is left in the transformer.
 * @return : 0 or a decoding error. */
int tp_transform_image(tp_transformer *tr, const void *data, size_t len, const tp_transform *t,
                       uint64_t seed, uint64_t epoch, uint64_t id, unsigned char *out,
                       tp_error *err);

#define TP_MAX_VIEWS 16

/* Several outputs of one image: view i applies ts[i] with randomness drawn from (seed,
 * epoch, id, views[i]) into outs[i]. The image is decoded once: for a JPEG the union of
 * the views' regions at the finest DCT scale any of them needs, for a PNG all of it. None
 * may be TP_TRANSFORM_NONE. @return : 0 or a decoding error. */
int tp_transform_image_views(tp_transformer *tr, const void *data, size_t len,
                             const tp_transform *const *ts, const uint32_t *views, unsigned n,
                             uint64_t seed, uint64_t epoch, uint64_t id,
                             unsigned char *const *outs, tp_error *err);

/* The last decoded image (after tp_transform_image with TP_TRANSFORM_NONE). */
const tp_image *tp_transformer_image(const tp_transformer *tr);

/* The transformer's JPEG decoder (its counters, the seekable path's switch). */
tp_jpeg_decoder *tp_transformer_decoder(tp_transformer *tr);

#endif
