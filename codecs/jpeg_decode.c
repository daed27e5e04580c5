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
 * libjpeg's "fancy" chroma upsampling treats a cropped row's first and last pixels as
 * image edges, so those two may differ from a full decode, and callers read one pixel
 * past the region (the resampler's last tap). jpeg_crop_scanline then moves the start
 * down to an iMCU boundary; unit.check_codecs fails with a margin of 1. */
#define CROP_MARGIN 2

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
    tp_jpeg_seek seek;      /* the seekable path: layout of the last file */
    unsigned char *sub;     /* the region's own JPEG */
    size_t sub_cap;
    tp_jpeg_stats stats;
    bool no_seek;
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
    free(d->seek.seg);
    free(d->sub);
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

static int decode_mem(tp_jpeg_decoder *d, const void *data, size_t len,
                      const tp_jpeg_request *rq, tp_image *img, tp_error *err)
{
    struct jpeg_decompress_struct *c = &d->cinfo;
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

#define DECLINED 1

/* libjpeg-turbo upsamples a component of two samples a row or fewer without its fancy
 * filter (jdsample.c), so a region's JPEG that narrow decodes to other pixels than the
 * image: its last column group alone can be a few pixels wide, and one MCU at K = 1 is
 * two chroma samples at 2/8. Whether the JPEG of column groups g0..g1-1 has more than two
 * samples a row in each component at scale m/8 (counted at m/8; libjpeg decodes some
 * components at a larger scale, which only adds samples). */
static bool fancy_kept(const tp_jpeg_seek *s, int g0, int g1, int m)
{
    int64_t w = g1 == s->groups ? s->width - (int64_t)g0 * s->interval * s->mcu_w
                                : (int64_t)(g1 - g0) * s->interval * s->mcu_w;
    /* no fancy upsampling at 1/8, nor in a frame without subsampled columns */
    return m == 1 || s->hmin * 8 == s->mcu_w || w * s->hmin * m > 2 * (int64_t)s->mcu_w;
}

/* The seekable path (jpeg_seek.c): the region's MCUs, with a margin where the image goes
 * on, widened to whole column groups, decoded from a JPEG of their own.
 * @return : as tp_jpeg_decode, or DECLINED with *planned the request to decode the usual
 *           way (the plan, if any, has been applied: it may draw random numbers, so it
 *           must run once). */
static int seek_decode(tp_jpeg_decoder *d, const void *data, size_t len,
                       const tp_jpeg_request *rq, tp_jpeg_request *planned, tp_image *img,
                       tp_error *err)
{
    tp_jpeg_seek *s = &d->seek;
    *planned = *rq;
    uint64_t limit = rq->max_pixels ? rq->max_pixels : TP_JPEG_DEFAULT_MAX_PIXELS;
    if (tp_jpeg_seek_parse(data, len, s) != 1 || (uint64_t)s->width * s->height > limit)
        return DECLINED;
    if (rq->plan) {
        rq->plan(rq->plan_ctx, s->width, s->height, planned);
        planned->plan = NULL;
    }
    int rx = planned->width ? planned->x : 0, ry = planned->height ? planned->y : 0;
    int rw = planned->width ? planned->width : s->width;
    int rh = planned->height ? planned->height : s->height;
    if (rx < 0 || ry < 0 || rw < 1 || rh < 1 || rx > s->width - rw || ry > s->height - rh)
        return DECLINED; /* the usual path names the error */
    int m = planned->scale_num >= 1 && planned->scale_num <= 8
                ? planned->scale_num
                : tp_jpeg_pick_scale(planned->scales, rw, rh, planned->out_width,
                                     planned->out_height);
    /* Fancy upsampling makes a pixel from the chroma samples beside it: two output
     * pixels of margin where the image goes on keep the region's pixels as a full
     * decode has them (a chroma sample spans two pixels, its neighbour is next). */
    int k = s->interval, pad = (16 + m - 1) / m;
    int mx0 = TP_MAX(0, rx - pad) / s->mcu_w;
    int mx1 = TP_MIN(s->mcus_x, (rx + rw + pad + s->mcu_w - 1) / s->mcu_w);
    int g0 = mx0 / k, g1 = (mx1 + k - 1) / k;
    int r0 = TP_MAX(0, ry - pad) / s->mcu_h;
    int r1 = TP_MIN(s->mcus_y, (ry + rh + pad + s->mcu_h - 1) / s->mcu_h);
    while (!fancy_kept(s, g0, g1, m) && (g0 > 0 || g1 < s->groups)) {
        if (g0 > 0)
            g0--; /* the group to the left first: the narrow one is the last */
        else
            g1++;
    }
    if (g0 == 0 && g1 == s->groups && r0 == 0)
        return DECLINED; /* the usual path decodes no more than this */
    size_t sub_len;
    int rc = tp_jpeg_seek_scan(s, data, len, (size_t)(r1 - 1) * s->groups + (size_t)g1);
    if (rc == -ENOMEM ||
        (!rc && (rc = tp_jpeg_seek_build(s, data, g0, g1, r0, r1, &d->sub, &d->sub_cap,
                                         &sub_len)) < 0))
        return tp__error_set(err, -ENOMEM, "out of memory for a seekable JPEG's region");
    if (!rc) {
        tp_jpeg_request sub = {.x = rx - g0 * k * s->mcu_w, .y = ry - r0 * s->mcu_h,
                               .width = rw, .height = rh, .scale_num = m,
                               .max_pixels = planned->max_pixels};
        rc = decode_mem(d, d->sub, sub_len + TP_JPEG_SEEK_TAIL, &sub, img, err);
        if (rc < 0 && rc != TP_EBADIMAGE)
            return rc;
    }
    if (rc < 0) { /* markers that do not match the layout, or a segment libjpeg refused */
        d->stats.seek_fallbacks++;
        return DECLINED;
    }
    img->x0 += g0 * k * (s->mcu_w / 8) * m;
    img->y0 += r0 * (s->mcu_h / 8) * m;
    img->src_width = s->width;
    img->src_height = s->height;
    d->stats.seek_decodes++;
    return 0;
}

int tp_jpeg_decode(tp_jpeg_decoder *d, const void *data, size_t len, const tp_jpeg_request *rq,
                   tp_image *img, tp_error *err)
{
    if (len < 2 || len > ULONG_MAX)
        return tp__error_set(err, TP_EBADIMAGE, "JPEG of %zu bytes", len);
    tp_jpeg_request planned;
    if (!d->no_seek && (rq->plan || rq->width || rq->height)) {
        int rc = seek_decode(d, data, len, rq, &planned, img, err);
        if (rc != DECLINED)
            return rc;
        rq = &planned;
    }
    return decode_mem(d, data, len, rq, img, err);
}

void tp_jpeg_decoder_stats(const tp_jpeg_decoder *d, tp_jpeg_stats *out) { *out = d->stats; }

void tp_jpeg_decoder_set_seek(tp_jpeg_decoder *d, bool on) { d->no_seek = !on; }
