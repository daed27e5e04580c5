/* JPEG decoding that does only the work the output needs, through the libjpeg API of
 * libjpeg-turbo (TurboJPEG has no interface for partial decoding): DCT-domain scaling by
 * the smallest M/8 that still covers the requested output size, and region decoding that
 * skips the rows above the region (jpeg_skip_scanlines), stops after the rows below it,
 * and decodes only the iMCU columns across it (jpeg_crop_scanline). Grayscale, CMYK and
 * YCCK inputs come out as RGB. The library's warnings about corrupt data are errors here,
 * so a damaged file never turns into a silently grey image. */
#include "codecs.h"

#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

#include <jerror.h>
#include <jpeglib.h>

/* The crop is widened by this many scaled pixels on each side where the image goes on:
 * libjpeg's "fancy" chroma upsampling treats a partial row's first and last pixels as
 * image edges, so pixels there may differ from a full decode; one iMCU further out
 * they do not. */
#define CROP_MARGIN 16

typedef struct error_mgr {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} error_mgr;

struct tp_jpeg_decoder {
    struct jpeg_decompress_struct cinfo;
    error_mgr jerr;
    unsigned char *row;     /* one scanline of CMYK before conversion */
    size_t row_cap;
};

static void on_error(j_common_ptr cinfo)
{
    error_mgr *e = (error_mgr *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level)
{
    if (level < 0) /* a warning: corrupt data that libjpeg would paper over */
        on_error(cinfo);
}

int tp_jpeg_decoder_create(tp_jpeg_decoder **out)
{
    tp_jpeg_decoder *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->cinfo.err = jpeg_std_error(&d->jerr.pub);
    d->jerr.pub.error_exit = on_error;
    d->jerr.pub.emit_message = on_message;
    if (setjmp(d->jerr.jump)) {
        free(d);
        return -ENOMEM;
    }
    jpeg_create_decompress(&d->cinfo);
    *out = d;
    return 0;
}

void tp_jpeg_decoder_destroy(tp_jpeg_decoder *d)
{
    if (!d)
        return;
    jpeg_destroy_decompress(&d->cinfo);
    free(d->row);
    free(d);
}

/* The smallest allowed M in 1..8 such that the region scaled by M/8 still has at least
 * the requested output size in both directions. */
int tp_jpeg_pick_scale(unsigned scales, int rw, int rh, int out_w, int out_h)
{
    if (out_w <= 0 || out_h <= 0)
        return 8;
    unsigned allowed = scales ? scales : TP_JPEG_SCALES_ALL;
    for (int m = 1; m < 8; m++)
        if ((allowed >> m & 1) && ((int64_t)rw * m + 7) / 8 >= out_w &&
            ((int64_t)rh * m + 7) / 8 >= out_h)
            return m;
    return 8;
}

static int reserve(tp_image *img, size_t bytes)
{
    return tp__grow((void **)&img->pixels, &img->cap, bytes);
}

/* Adobe writes CMYK inverted (0 = full ink), which is what nearly every CMYK JPEG is. */
static void cmyk_to_rgb(const unsigned char *in, unsigned char *out, unsigned w, bool adobe)
{
    for (unsigned x = 0; x < w; x++, in += 4, out += 3) {
        unsigned c = in[0], m = in[1], y = in[2], k = in[3];
        if (!adobe) {
            c = 255 - c, m = 255 - m, y = 255 - y, k = 255 - k;
        }
        out[0] = (unsigned char)((c * k + 127) / 255);
        out[1] = (unsigned char)((m * k + 127) / 255);
        out[2] = (unsigned char)((y * k + 127) / 255);
    }
}

/* RGB rows are read straight into the image, up to 16 per call as libjpeg produces them
 * (a whole iMCU row at once); CMYK rows go through a one-row buffer for conversion. */
static void read_rows(tp_jpeg_decoder *d, tp_image *img, bool cmyk)
{
    struct jpeg_decompress_struct *c = &d->cinfo;
    size_t stride = (size_t)img->width * 3;
    for (int y = 0; y < img->height;) {
        JSAMPROW rows[16];
        int want = cmyk ? 1 : TP_MIN(16, img->height - y);
        for (int i = 0; i < want; i++)
            rows[i] = cmyk ? d->row : img->pixels + (size_t)(y + i) * stride;
        JDIMENSION got = jpeg_read_scanlines(c, rows, (JDIMENSION)want);
        if (got == 0)
            ERREXIT(c, JERR_INPUT_EOF);
        if (cmyk)
            cmyk_to_rgb(d->row, img->pixels + (size_t)y * stride, c->output_width,
                        c->saw_Adobe_marker);
        y += (int)got;
    }
}

/* Maps the requested region to scaled-image coordinates, widened by the crop margin.
 * @return : 0, or TP_EUSAGE for a region outside the image. */
static int plan_region(const struct jpeg_decompress_struct *c, const tp_jpeg_request *rq,
                       int m, int *x0, int *x1, int *y0, int *y1)
{
    int64_t W = c->image_width, H = c->image_height;
    int64_t rx = rq->width ? rq->x : 0, ry = rq->height ? rq->y : 0;
    int64_t rw = rq->width ? rq->width : W, rh = rq->height ? rq->height : H;
    if (rx < 0 || ry < 0 || rw < 1 || rh < 1 || rx + rw > W || ry + rh > H)
        return TP_EUSAGE;
    *x0 = (int)(rx * m / 8);
    *x1 = (int)TP_MIN(((rx + rw) * m + 7) / 8, (int64_t)c->output_width);
    *y0 = (int)(ry * m / 8);
    *y1 = (int)TP_MIN(((ry + rh) * m + 7) / 8, (int64_t)c->output_height);
    return 0;
}

static int decode(tp_jpeg_decoder *d, const tp_jpeg_request *req, tp_image *img, tp_error *err)
{
    struct jpeg_decompress_struct *c = &d->cinfo;
    jpeg_read_header(c, TRUE);
    uint64_t limit = req->max_pixels ? req->max_pixels : TP_JPEG_DEFAULT_MAX_PIXELS;
    img->src_width = (int)c->image_width;
    img->src_height = (int)c->image_height;
    if ((uint64_t)c->image_width * c->image_height > limit)
        return tp__error_set(err, TP_ETOOBIG, "JPEG of %ux%u exceeds the limit of %llu "
                             "pixels", c->image_width, c->image_height,
                             (unsigned long long)limit);
    tp_jpeg_request planned = *req;
    if (req->plan)
        req->plan(req->plan_ctx, img->src_width, img->src_height, &planned);
    const tp_jpeg_request *rq = &planned;
    int rw = rq->width ? rq->width : (int)c->image_width;
    int rh = rq->height ? rq->height : (int)c->image_height;
    int m = rq->scale_num >= 1 && rq->scale_num <= 8
                ? rq->scale_num
                : tp_jpeg_pick_scale(rq->scales, rw, rh, rq->out_width, rq->out_height);
    bool cmyk = c->jpeg_color_space == JCS_CMYK || c->jpeg_color_space == JCS_YCCK;
    c->scale_num = (unsigned)m;
    c->scale_denom = 8;
    c->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(c);
    int x0, x1, y0, y1;
    if (plan_region(c, rq, m, &x0, &x1, &y0, &y1) < 0)
        return tp__error_set(err, TP_EUSAGE, "region %dx%d+%d+%d outside the %ux%u image",
                             rq->width, rq->height, rq->x, rq->y, c->image_width,
                             c->image_height);
    JDIMENSION cx = (JDIMENSION)TP_MAX(0, x0 - CROP_MARGIN);
    JDIMENSION cw = (JDIMENSION)TP_MIN((int)c->output_width, x1 + CROP_MARGIN) - cx;
    if (cw < c->output_width)
        jpeg_crop_scanline(c, &cx, &cw);
    if (y0 > 0 && jpeg_skip_scanlines(c, (JDIMENSION)y0) != (JDIMENSION)y0)
        ERREXIT(c, JERR_INPUT_EOF);
    img->scale_num = m;
    img->x0 = (int)cx;
    img->y0 = y0;
    img->width = (int)c->output_width;
    img->height = y1 - y0;
    size_t row = (size_t)img->width * (cmyk ? 4 : 3);
    if (reserve(img, (size_t)img->width * img->height * 3) < 0 ||
        (cmyk && tp__grow((void **)&d->row, &d->row_cap, row) < 0))
        return tp__error_set(err, -ENOMEM, "out of memory for a %dx%d image", img->width,
                             img->height);
    read_rows(d, img, cmyk);
    /* Reading on to the end checks the rest of the data (and catches truncation) when
     * the whole image was asked for; for a region the rest is not needed. */
    if (!rq->width && !rq->height && rq->out_width <= 0)
        jpeg_finish_decompress(c);
    return 0;
}

int tp_jpeg_decode(tp_jpeg_decoder *d, const void *data, size_t len, const tp_jpeg_request *rq,
                   tp_image *img, tp_error *err)
{
    struct jpeg_decompress_struct *c = &d->cinfo;
    if (len < 2 || len > ULONG_MAX)
        return tp__error_set(err, TP_EBADIMAGE, "JPEG of %zu bytes", len);
    volatile int rc = 0;
    if (setjmp(d->jerr.jump)) {
        jpeg_abort_decompress(c);
        /* Out of memory is the decoder's trouble, not the image's. */
        return tp__error_set(err, c->err->msg_code == JERR_OUT_OF_MEMORY ? -ENOMEM
                                                                         : TP_EBADIMAGE,
                             "JPEG: %s", d->jerr.msg);
    }
    jpeg_mem_src(c, data, (unsigned long)len);
    rc = decode(d, rq, img, err);
    jpeg_abort_decompress(c);
    return rc;
}
