/* Internal interface of the codecs module: JPEG inspection and decoding through
 * libjpeg-turbo, and zstd compression of stored fields. */
#ifndef TP_CODECS_H
#define TP_CODECS_H

#include "tp_common.h"

#define TP_JPEG_DEFAULT_MAX_PIXELS (64u << 20) /* decompression-bomb guard */

typedef struct tp_jpeg_info {
    int width;
    int height;
    int subsampling;  /* TurboJPEG TJSAMP_* */
    int colorspace;   /* TurboJPEG TJCS_* */
} tp_jpeg_info;

/* Parses a JPEG's headers without decoding: dimensions must be non-zero and at most
 * `max_pixels` in total, and the data must end with an end-of-image marker (trailing
 * zero padding allowed), which catches files cut short.
 * @return : 0, or TP_EBADIMAGE / TP_ETOOBIG with the cause in `err`. Thread-safe. */
int tp_jpeg_inspect(const void *data, size_t len, uint64_t max_pixels, tp_jpeg_info *info,
                    tp_error *err);

/* Decodes a whole JPEG to RGB, 3 bytes per pixel, into `out` (width*height*3 bytes).
 * Corrupt-data warnings from the decoder are errors. @return : 0 or TP_EBADIMAGE. */
int tp_jpeg_decode_rgb(const void *data, size_t len, unsigned char *out,
                       const tp_jpeg_info *info, tp_error *err);

/* Compresses `len` bytes with zstd at `level` into a malloc'd buffer.
 * @return : the compressed size, or a negative code. */
int64_t tp_zstd_compress(const void *src, size_t len, int level, unsigned char **out);
/* Decompresses exactly `raw_len` bytes into `dst`. @return : 0, TP_ECORRUPT, -ENOMEM. */
int tp_zstd_decompress(const void *src, size_t len, void *dst, size_t raw_len, tp_error *err);

#endif
