/* JPEG header inspection through libjpeg-turbo's TurboJPEG API, with size limits and a
 * truncation check, for the packer and verifier; decoding is in jpeg_decode.c. */
#include "codecs.h"

#include <turbojpeg.h>

/* In entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so FF D9 near
 * the end can only be the end-of-image marker; writers may append a little padding. */
#define EOI_WINDOW 4096

static bool has_eoi(const unsigned char *p, size_t len)
{
    size_t stop = len > EOI_WINDOW ? len - EOI_WINDOW : 0;
    for (size_t i = len; i >= stop + 2; i--)
        if (p[i - 2] == 0xFF && p[i - 1] == 0xD9)
            return true;
    return false;
}

int tp_jpeg_inspect(const void *data, size_t len, uint64_t max_pixels, tp_jpeg_info *info,
                    tp_error *err)
{
    const unsigned char *p = data;
    if (len < 4 || p[0] != 0xFF || p[1] != 0xD8 || p[2] != 0xFF)
        return tp__error_set(err, TP_EBADIMAGE, "not a JPEG (no start-of-image marker)");
    if (len > (size_t)UINT32_MAX)
        return tp__error_set(err, TP_ETOOBIG, "JPEG of %zu bytes is too large", len);
    tjhandle tj = tjInitDecompress();
    if (!tj)
        return tp__error_set(err, -ENOMEM, "cannot create a JPEG decoder");
    int rc = tjDecompressHeader3(tj, p, (unsigned long)len, &info->width, &info->height,
                                 &info->subsampling, &info->colorspace);
    if (rc < 0)
        rc = tp__error_set(err, TP_EBADIMAGE, "bad JPEG header: %s", tjGetErrorStr2(tj));
    tjDestroy(tj);
    TP_TRY(rc);
    if (info->width < 1 || info->height < 1)
        return tp__error_set(err, TP_EBADIMAGE, "JPEG has no pixels");
    if ((uint64_t)info->width * (uint64_t)info->height > max_pixels)
        return tp__error_set(err, TP_ETOOBIG, "JPEG of %dx%d exceeds the limit of %llu pixels",
                             info->width, info->height, (unsigned long long)max_pixels);
    if (!has_eoi(p, len))
        return tp__error_set(err, TP_EBADIMAGE, "truncated JPEG (no end-of-image marker)");
    return 0;
}
