/* Colour ops on the uint8 canvas, with torchvision.transforms.v2's arithmetic on uint8
 * tensors: float32 products, clamped to 0..255 and truncated back to uint8.
 *
 *   grayscale         l = 0.2989 r + 0.587 g + 0.114 b, truncated
 *   brightness f      x f
 *   contrast f        x f + m (1 - f), m the mean of floor(l) over the image
 *   saturation f      x f + floor(l) (1 - f)
 *
 * As torchvision's _blend, f is rounded to float32 and (1 - f) is computed in double and
 * then rounded, so the products are the same floats.
 *
 * ColorJitter applies brightness, contrast and saturation in a random order (its
 * randperm), each with a factor drawn from its range; both were drawn by the planner. */
#include "ops.h"

#include <math.h>

static inline float gray(const unsigned char *p)
{
    float l = (float)p[0] * 0.2989f;
    l += (float)p[1] * 0.587f;
    l += (float)p[2] * 0.114f;
    return l;
}

static inline unsigned char blend(float x, float f, float other_term)
{
    float v = x * f + other_term;
    v = v < 0.f ? 0.f : v > 255.f ? 255.f : v;
    return (unsigned char)v; /* truncates, as Tensor.to(torch.uint8) */
}

static void brightness(unsigned char *img, size_t n, float f)
{
    for (size_t i = 0; i < n; i++)
        img[i] = blend(img[i], f, 0.f);
}

static void contrast(unsigned char *img, size_t pixels, int channels, double factor)
{
    double sum = 0;
    for (size_t i = 0; i < pixels; i++)
        sum += channels == 3 ? floorf(gray(img + 3 * i)) : img[i];
    float f = (float)factor, mean = (float)(sum / (double)pixels),
          term = mean * (float)(1.0 - factor);
    for (size_t i = 0; i < pixels * (size_t)channels; i++)
        img[i] = blend(img[i], f, term);
}

static void saturation(unsigned char *img, size_t pixels, int channels, double factor)
{
    if (channels != 3) /* as torchvision: nothing to desaturate */
        return;
    float f = (float)factor, g = (float)(1.0 - factor);
    for (size_t i = 0; i < pixels; i++, img += 3) {
        float term = floorf(gray(img)) * g;
        img[0] = blend(img[0], f, term);
        img[1] = blend(img[1], f, term);
        img[2] = blend(img[2], f, term);
    }
}

int tp__color_apply(const tp_transform *t, const tp_view_plan *v, unsigned char *img, int w,
                    int h)
{
    size_t pixels = (size_t)w * h;
    int channels = 3;
    for (uint32_t i = 0; i < t->p.nops; i++) {
        const tp_op *op = &t->p.ops[i];
        if (op->kind == TP_OP_GRAYSCALE) {
            if (channels == 3) /* in place: pixel i is read before byte i is written */
                for (size_t k = 0; k < pixels; k++)
                    img[k] = (unsigned char)gray(img + 3 * k);
            channels = 1;
            if (op->channels == 3) {
                for (size_t k = pixels; k-- > 0;)
                    img[3 * k] = img[3 * k + 1] = img[3 * k + 2] = img[k];
                channels = 3;
            }
        } else if (op->kind == TP_OP_COLOR_JITTER) {
            const struct tp_color_draw *d = &v->color[i];
            for (int k = 0; k < 3; k++) {
                int which = d->order[k];
                double f = d->factor[which];
                if (f < 0)
                    continue;
                if (which == 0)
                    brightness(img, pixels * (size_t)channels, (float)f);
                else if (which == 1)
                    contrast(img, pixels, channels, f);
                else
                    saturation(img, pixels, channels, f);
            }
        }
    }
    return channels;
}
