/* Antialiased bilinear resampling of an RGB region, with the arithmetic of Pillow's
 * ImagingResample (the resize torchvision's PIL path uses): a triangle filter whose
 * support widens with the reduction factor, weights normalised per output pixel and
 * rounded to 22-bit fixed point, a horizontal pass over only the rows the vertical pass
 * needs, then the vertical pass. Taps are confined to a window, which is how cropping
 * before resizing behaves. The kernel is our own rather than libswscale's: swscale has
 * no fractional source boxes or tap windows, which scaled and region decoding need, and
 * its arithmetic differs from Pillow's. */
#include "transform.h"

#include <math.h>
#include <stdlib.h>

#define PRECISION_BITS (32 - 8 - 2)

typedef struct coeffs {
    int *bounds;   /* per output pixel: first input index, tap count */
    int32_t *k;    /* per output pixel: ksize fixed-point weights */
    int ksize;
} coeffs;

static int grow(void **p, size_t *cap, size_t bytes)
{
    if (bytes <= *cap)
        return 0;
    void *q = realloc(*p, bytes);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = bytes;
    return 0;
}

static double triangle(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Weights for mapping input [in0, in1) onto `out` pixels, taps within [lo, hi). */
static int precompute(tp_resample_scratch *s, int which, double in0, double in1, int lo, int hi,
                      int out, coeffs *c)
{
    double scale = (in1 - in0) / out, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = filterscale, ss = 1.0 / filterscale;
    c->ksize = (int)ceil(support) * 2 + 1;
    size_t nk = (size_t)out * (size_t)c->ksize;
    if (grow(&s->bounds[which], &s->bounds_cap[which], (size_t)out * 2 * sizeof(int)) < 0 ||
        grow(&s->k[which], &s->k_cap[which], nk * sizeof(int32_t)) < 0 ||
        grow(&s->w, &s->w_cap, (size_t)c->ksize * sizeof(double)) < 0)
        return -ENOMEM;
    c->bounds = s->bounds[which];
    c->k = s->k[which];
    double *w = s->w;
    for (int xx = 0; xx < out; xx++) {
        double center = in0 + (xx + 0.5) * scale, ww = 0.0;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        xmin = xmin < lo ? lo : xmin;
        xmax = (xmax > hi ? hi : xmax) - xmin;
        xmax = xmax > c->ksize ? c->ksize : xmax < 0 ? 0 : xmax;
        for (int x = 0; x < xmax; x++)
            ww += w[x] = triangle((x + xmin - center + 0.5) * ss);
        int32_t *k = c->k + (size_t)xx * c->ksize;
        for (int x = 0; x < c->ksize; x++) {
            double v = x < xmax && ww != 0.0 ? w[x] / ww : 0.0;
            k[x] = (int32_t)(v < 0 ? trunc(-0.5 + v * (1 << PRECISION_BITS))
                                   : trunc(0.5 + v * (1 << PRECISION_BITS)));
        }
        c->bounds[xx * 2] = xmin;
        c->bounds[xx * 2 + 1] = xmax;
    }
    return 0;
}

/* Weights sum to 1 << PRECISION_BITS, so 255 times the sum, plus rounding, fits in
 * 32 bits (as in Pillow); overshoot from negative-free triangle weights cannot occur,
 * but rounding of the weights can leave a sum slightly off, hence the clamp. */
static unsigned char clip8(int32_t v)
{
    v >>= PRECISION_BITS;
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static void horizontal(const unsigned char *src, size_t sstride, int row0, int rows,
                       const coeffs *c, int out, unsigned char *tmp)
{
    for (int y = 0; y < rows; y++) {
        const unsigned char *in = src + (size_t)(row0 + y) * sstride;
        unsigned char *o = tmp + (size_t)y * out * 3;
        for (int xx = 0; xx < out; xx++) {
            int xmin = c->bounds[xx * 2], n = c->bounds[xx * 2 + 1];
            const int32_t *k = c->k + (size_t)xx * c->ksize;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < n; x++) {
                const unsigned char *p = in + (size_t)(x + xmin) * 3;
                s0 += p[0] * k[x];
                s1 += p[1] * k[x];
                s2 += p[2] * k[x];
            }
            o[xx * 3] = clip8(s0);
            o[xx * 3 + 1] = clip8(s1);
            o[xx * 3 + 2] = clip8(s2);
        }
    }
}

/* Row by row: each tap adds a whole input row to an accumulator row, which the
 * compiler vectorises (summation order per pixel is unchanged, so results are too). */
static void vertical(const unsigned char *tmp, int width, int row0, const coeffs *c, int out,
                     unsigned char *dst, size_t dstride, int32_t *acc)
{
    size_t stride = (size_t)width * 3;
    for (int yy = 0; yy < out; yy++) {
        int ymin = c->bounds[yy * 2] - row0, n = c->bounds[yy * 2 + 1];
        const int32_t *k = c->k + (size_t)yy * c->ksize;
        for (size_t x = 0; x < stride; x++)
            acc[x] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < n; y++) {
            const unsigned char *row = tmp + (size_t)(y + ymin) * stride;
            int32_t w = k[y];
            for (size_t x = 0; x < stride; x++)
                acc[x] += row[x] * w;
        }
        unsigned char *o = dst + (size_t)yy * dstride;
        for (size_t x = 0; x < stride; x++)
            o[x] = clip8(acc[x]);
    }
}

int tp_resample(const tp_resample_job *j, tp_resample_scratch *s)
{
    assert(j->win_x0 >= 0 && j->win_x1 <= j->src_w && j->win_x0 < j->win_x1);
    assert(j->win_y0 >= 0 && j->win_y1 <= j->src_h && j->win_y0 < j->win_y1);
    coeffs ch, cv;
    TP_TRY(precompute(s, 0, j->box_x0, j->box_x1, j->win_x0, j->win_x1, j->dst_w, &ch));
    TP_TRY(precompute(s, 1, j->box_y0, j->box_y1, j->win_y0, j->win_y1, j->dst_h, &cv));
    int first = cv.bounds[0], last = first; /* the rows the vertical pass reads */
    for (int y = 0; y < j->dst_h; y++) {
        first = TP_MIN(first, cv.bounds[y * 2]);
        last = TP_MAX(last, cv.bounds[y * 2] + cv.bounds[y * 2 + 1]);
    }
    int rows = TP_MAX(last - first, 1);
    TP_TRY(grow(&s->tmp, &s->tmp_cap, (size_t)rows * j->dst_w * 3));
    TP_TRY(grow(&s->acc, &s->acc_cap, (size_t)j->dst_w * 3 * sizeof(int32_t)));
    horizontal(j->src, j->src_stride, first, last - first, &ch, j->dst_w, s->tmp);
    vertical(s->tmp, j->dst_w, first, &cv, j->dst_h, j->dst, j->dst_stride, s->acc);
    return 0;
}

void tp_resample_scratch_free(tp_resample_scratch *s)
{
    for (int i = 0; i < 2; i++) {
        free(s->bounds[i]);
        free(s->k[i]);
    }
    free(s->w);
    free(s->tmp);
    free(s->acc);
    memset(s, 0, sizeof(*s));
}
