/* Output conversion for models that take normalised floats: uint8 HWC to NCHW float32 or
 * float16, (x / 255 - mean) / std per channel. The half conversion is done in software
 * (round to nearest even) so it needs no F16C instructions and gives the same bits on
 * every machine. */
#include "normalize.h"

const float tp_imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
const float tp_imagenet_std[3] = {0.229f, 0.224f, 0.225f};

uint16_t tp_float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof(x));
    uint32_t sign = (x >> 16) & 0x8000, exp = (x >> 23) & 0xff, man = x & 0x7fffff;
    if (exp == 0xff) /* infinity or NaN (kept quiet) */
        return (uint16_t)(sign | 0x7c00 | (man ? 0x200 | (man >> 13) : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00);
    if (e <= 0) { /* subnormal half, or zero */
        if (e < -10)
            return (uint16_t)sign;
        man |= 0x800000;
        unsigned shift = (unsigned)(14 - e);
        uint32_t half = man >> shift, rest = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rest > mid || (rest == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | (uint32_t)e << 10 | man >> 13, rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1)))
        half++; /* may carry into the exponent, which is still correct */
    return (uint16_t)half;
}

void tp_normalize_table(const float mean[3], const float std[3], float lut[3][256])
{
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++)
            lut[c][v] = ((float)v / 255.0f - mean[c]) / std[c];
}

int tp_normalize_chw(const unsigned char *hwc, int h, int w, const float mean[3],
                     const float std[3], tp_dtype dtype, void *dst)
{
    if (dtype != TP_DTYPE_FLOAT32 && dtype != TP_DTYPE_FLOAT16)
        return TP_EUSAGE;
    size_t plane = (size_t)h * w;
    float table[3][256];
    tp_normalize_table(mean, std, table);
    for (int c = 0; c < 3; c++) {
        const float *lut = table[c];
        if (dtype == TP_DTYPE_FLOAT32) {
            float *out = (float *)dst + c * plane;
            for (size_t i = 0; i < plane; i++)
                out[i] = lut[hwc[i * 3 + c]];
        } else {
            uint16_t hl[256], *out = (uint16_t *)dst + c * plane;
            for (int v = 0; v < 256; v++)
                hl[v] = tp_float_to_half(lut[v]);
            for (size_t i = 0; i < plane; i++)
                out[i] = hl[hwc[i * 3 + c]];
        }
    }
    return 0;
}
