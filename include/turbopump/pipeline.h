/* turbopump pipelines: what happens to an image between its stored bytes and the array in
 * a batch, as one description shared by C, the command line and Python.
 *
 * The text form (version 1, specified in docs/TRANSFORMS.md) is a list of ops joined by
 * '|', each a name and optional arguments in torchvision's order and names:
 *
 *   random_resized_crop(176, scale=0.35:1, ratio=0.75:1.3333) | hflip(0.5)
 *     | normalize(mean=0.485:0.456:0.406, std=0.229:0.224:0.225) | to(float16, chw)
 *
 * Sizes are one number (square) or h:w, 8..4096. Ranges and per-channel lists are
 * numbers joined by ':'. A whole description may also be one of the names "rrc224",
 * "center224" (any size: rrcN, centerN) and "none", and may start with "v1:" to name the
 * version. Geometric ops come first, then colour ops, normalize and to() last; the
 * geometry must end in a size that does not depend on the image (a crop, or a resize to
 * h:w) unless the pipeline is "none".
 *
 * C callers may build a tp_pipeline directly (zero-initialised fields take the defaults
 * below) and turn it into text with tp_pipeline_format; the daemon parses the text once
 * per session. Randomness is drawn per sample from (seed, epoch, sample id, view), so the
 * same sample gets the same output whatever thread decodes it. */
#ifndef TURBOPUMP_PIPELINE_H
#define TURBOPUMP_PIPELINE_H

#include <turbopump/dataset.h>
#include <turbopump/error.h>

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TP_PIPELINE_VERSION 1
#define TP_PIPELINE_MAX_OPS 16
#define TP_PIPELINE_TEXT_MAX 1024   /* bytes of a description, NUL included */
#define TP_PIPELINE_MIN_SIZE 8
#define TP_PIPELINE_MAX_SIZE 4096

typedef enum tp_op_kind {
    TP_OP_NONE = 0,
    /* geometry */
    TP_OP_RANDOM_RESIZED_CROP = 1, /* size; scale (0.08:1), ratio (3/4:4/3) */
    TP_OP_RESIZE = 2,              /* size: h:w, or one number for the shorter side;
                                      max_size (0: none) caps the longer side */
    TP_OP_CENTER_CROP = 3,         /* size; zero padding where the image is smaller */
    TP_OP_RANDOM_CROP = 4,         /* size; padding (one value or l:t:r:b), pad_if_needed,
                                      fill (constant 0..255) */
    TP_OP_HFLIP = 5,               /* p (0.5): RandomHorizontalFlip */
    /* colour, on the uint8 image */
    TP_OP_COLOR_JITTER = 6,        /* brightness, contrast, saturation: factor ranges */
    TP_OP_GRAYSCALE = 7,           /* num_output_channels 1 or 3 (1) */
    /* output */
    TP_OP_NORMALIZE = 8,           /* (x / 255 - mean[c]) / std[c] */
    TP_OP_TO = 9                   /* dtype and layout of the result */
} tp_op_kind;

typedef enum tp_layout {
    TP_LAYOUT_DEFAULT = 0,         /* HWC for uint8, CHW for floats */
    TP_LAYOUT_HWC = 1,
    TP_LAYOUT_CHW = 2
} tp_layout;

typedef struct tp_op {
    tp_op_kind kind;
    int size[2];                   /* h, w; RESIZE with size[1] == 0: the shorter side */
    int max_size;                  /* RESIZE */
    double scale[2], ratio[2];     /* RANDOM_RESIZED_CROP; all zero: the defaults */
    double p;                      /* HFLIP: the flip probability in (0, 1]; 0 is the
                                      default 0.5 (to never flip, leave the op out) */
    int padding[4];                /* RANDOM_CROP: left, top, right, bottom */
    bool pad_if_needed;            /* RANDOM_CROP */
    int fill;                      /* RANDOM_CROP, CENTER_CROP: the padding value */
    /* COLOR_JITTER: factor ranges [lo, hi]; lo == hi == 0 leaves that property alone.
     * torchvision's ColorJitter(b) is the range [max(0, 1 - b), 1 + b]. */
    double brightness[2], contrast[2], saturation[2];
    int channels;                  /* GRAYSCALE: 1 or 3 (0: 1) */
    float mean[3], std[3];         /* NORMALIZE: one value per channel */
    tp_dtype dtype;                /* TO: UINT8, FLOAT32, FLOAT16, BFLOAT16 */
    tp_layout layout;              /* TO */
} tp_op;

typedef struct tp_pipeline {
    uint32_t nops;
    tp_op ops[TP_PIPELINE_MAX_OPS];
} tp_pipeline;

/* What a pipeline gives per sample: dtype, and shape as (H, W, C) for HWC or (C, H, W)
 * for CHW. A pipeline with no geometry ("none") has no fixed shape: ndim 0. */
typedef struct tp_pipeline_shape {
    tp_dtype dtype;
    tp_layout layout;
    uint32_t ndim;
    int64_t shape[3];
} tp_pipeline_shape;

/* Parses a description (or a name) into `out` and checks it (tp_pipeline_check).
 * @return : 0, or TP_EUSAGE with the position (1-based character) and cause in `err`,
 *           e.g. "at 23: scale must be lo:hi with 0 < lo <= hi". */
TP_API int tp_pipeline_parse(const char *text, tp_pipeline *out, tp_error *err);

/* Checks every op's arguments and their order, filling defaults in place (zeroed
 * ranges, p, channels, layout). @return : 0, or TP_EUSAGE naming the op (1-based) and the cause. */
TP_API int tp_pipeline_check(tp_pipeline *p, tp_error *err);

/* The canonical text of a pipeline, which parses back to the same pipeline.
 * @return : the length written (NUL excluded), or TP_EUSAGE when it does not fit in
 *           `cap` bytes or the pipeline is invalid. */
TP_API int tp_pipeline_format(const tp_pipeline *p, char *buf, size_t cap);

/* The per-sample result of a checked pipeline. */
TP_API void tp_pipeline_shape_of(const tp_pipeline *p, tp_pipeline_shape *out);

#ifdef __cplusplus
}
#endif

#endif
