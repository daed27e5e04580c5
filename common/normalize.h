/* Output conversion shared by the daemon (CPU) and the client's GPU path: both build the
 * same per-channel tables, so a batch converted on either side has the same bits. */
#ifndef TP_NORMALIZE_H
#define TP_NORMALIZE_H

#include "tp_common.h"

#include <turbopump/dataset.h>

/* Converts a uint8 HWC image to normalised NCHW floats, (x / 255 - mean[c]) / std[c], as
 * float32 (TP_DTYPE_FLOAT32) or IEEE half (TP_DTYPE_FLOAT16, round to nearest even),
 * writing h*w*3 elements to `dst`. @return : 0, or TP_EUSAGE for another dtype. */
int tp_normalize_chw(const unsigned char *hwc, int h, int w, const float mean[3],
                     const float std[3], tp_dtype dtype, void *dst);

/* The float32 value of every input byte per channel, as tp_normalize_chw computes it. */
void tp_normalize_table(const float mean[3], const float std[3], float lut[3][256]);

/* IEEE 754 binary32 -> binary16, round to nearest even (infinities, NaN kept). */
uint16_t tp_float_to_half(float f);

/* ImageNet's mean and standard deviation per channel, as torchvision documents them. */
extern const float tp_imagenet_mean[3], tp_imagenet_std[3];

#endif
