/* Output conversion: uint8 pixels to the pipeline's dtype and layout. Every result is a
 * function of one byte and its channel, so it is a table lookup: (x / 255 - mean) / std
 * in float32, computed as the client's GPU path computes it (common/normalize.c), then
 * rounded to float16 or bfloat16 (nearest even). The resampler calls tp__convert_row for
 * each output row as it finishes, so no float image is ever written twice. */
#include "ops.h"

static uint16_t float_to_bfloat16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN stays NaN */
        return (uint16_t)(u >> 16 | 0x40);
    u += 0x7fffu + (u >> 16 & 1u);
    return (uint16_t)(u >> 16);
}

void tp__convert_init(tp_transform *t)
{
    float mean[3] = {0, 0, 0}, std[3] = {1, 1, 1};
    for (uint32_t i = 0; i < t->p.nops; i++)
        if (t->p.ops[i].kind == TP_OP_NORMALIZE)
            for (int c = 0; c < 3; c++) {
                mean[c] = t->p.ops[i].mean[c];
                std[c] = t->p.ops[i].std[c];
            }
    tp_normalize_table(mean, std, t->lut);
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++)
            t->lut16[c][v] = t->shape.dtype == TP_DTYPE_BFLOAT16 ? float_to_bfloat16(t->lut[c][v])
                                                                  : tp_float_to_half(t->lut[c][v]);
}

void tp__convert_row(const tp_transform *t, const unsigned char *px, int channels, int y,
                     int x, int n, void *out)
{
    int C = t->channels, W = t->out_w, H = t->out_h;
    bool chw = t->shape.layout == TP_LAYOUT_CHW;
    size_t plane = (size_t)W * H, at = (size_t)y * W + (size_t)x;
    /* channels == 3 while C == 1 cannot happen (grayscale(1) leaves one); C == 3 from
     * one channel replicates it */
    int step = channels;
    switch (t->shape.dtype) {
    case TP_DTYPE_UINT8: {
        unsigned char *o = out;
        if (!chw && channels == C) {
            memcpy(o + at * C, px, (size_t)n * C);
            break;
        }
        for (int c = 0; c < C; c++)
            for (int i = 0; i < n; i++)
                o[chw ? c * plane + at + i : (at + i) * C + c] = px[i * step + (channels == 1 ? 0 : c)];
        break;
    }
    case TP_DTYPE_FLOAT32: {
        float *o = out;
        if (chw) {
            for (int c = 0; c < C; c++) {
                const float *lut = t->lut[c];
                const unsigned char *p = px + (channels == 1 ? 0 : c);
                float *d = o + c * plane + at;
                for (int i = 0; i < n; i++)
                    d[i] = lut[p[i * step]];
            }
        } else {
            for (int i = 0; i < n; i++)
                for (int c = 0; c < C; c++)
                    o[(at + i) * C + c] = t->lut[c][px[i * step + (channels == 1 ? 0 : c)]];
        }
        break;
    }
    default: { /* float16, bfloat16 */
        uint16_t *o = out;
        if (chw) {
            for (int c = 0; c < C; c++) {
                const uint16_t *lut = t->lut16[c];
                const unsigned char *p = px + (channels == 1 ? 0 : c);
                uint16_t *d = o + c * plane + at;
                for (int i = 0; i < n; i++)
                    d[i] = lut[p[i * step]];
            }
        } else {
            for (int i = 0; i < n; i++)
                for (int c = 0; c < C; c++)
                    o[(at + i) * C + c] = t->lut16[c][px[i * step + (channels == 1 ? 0 : c)]];
        }
        break;
    }
    }
}

void tp__convert_fill(const tp_transform *t, int fill, void *out)
{
    unsigned char px[3] = {(unsigned char)fill, (unsigned char)fill, (unsigned char)fill};
    for (int y = 0; y < t->out_h; y++)
        for (int x = 0; x < t->out_w; x++)
            tp__convert_row(t, px, t->channels == 1 ? 1 : 3, y, x, 1, out);
}
