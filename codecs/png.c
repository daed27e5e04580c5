/* PNG decoding through libspng to 8-bit RGB (palette, grayscale, 16-bit and alpha are
 * converted; alpha is dropped). Dimensions are checked against the pixel limit before
 * anything is decoded, chunk sizes are bounded, and CRC errors are errors. */
#include "codecs.h"

#include <spng.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHUNK (16u << 20)

static int spng_fail(tp_error *err, int rc)
{
    return tp__error_set(err, rc == SPNG_EMEM ? -ENOMEM : TP_EBADIMAGE, "PNG: %s",
                         spng_strerror(rc));
}

/* Reads the header into `ihdr` and checks the size against `limit`. */
static int png_header(spng_ctx *ctx, const void *data, size_t len, uint64_t limit,
                      struct spng_ihdr *ihdr, tp_error *err)
{
    int rc = spng_set_png_buffer(ctx, data, len);
    if (!rc)
        rc = spng_set_chunk_limits(ctx, MAX_CHUNK, MAX_CHUNK);
    if (!rc)
        rc = spng_get_ihdr(ctx, ihdr);
    if (rc)
        return spng_fail(err, rc);
    if ((uint64_t)ihdr->width * ihdr->height > limit)
        return tp__error_set(err, TP_ETOOBIG, "PNG of %ux%u exceeds the limit of %llu pixels",
                             ihdr->width, ihdr->height, (unsigned long long)limit);
    return 0;
}

static int png_decode(spng_ctx *ctx, const void *data, size_t len, uint64_t limit,
                      tp_image *img, tp_error *err)
{
    struct spng_ihdr ihdr;
    int rc;
    TP_TRY(png_header(ctx, data, len, limit, &ihdr, err));
    size_t size;
    if ((rc = spng_decoded_image_size(ctx, SPNG_FMT_RGB8, &size)))
        return spng_fail(err, rc);
    if (tp__grow((void **)&img->pixels, &img->cap, size) < 0)
        return tp__error_set(err, -ENOMEM, "out of memory for a %ux%u PNG", ihdr.width,
                             ihdr.height);
    if ((rc = spng_decode_image(ctx, img->pixels, size, SPNG_FMT_RGB8, 0)))
        return spng_fail(err, rc);
    *img = (tp_image){.pixels = img->pixels, .cap = img->cap, .width = (int)ihdr.width,
                      .height = (int)ihdr.height, .scale_num = 8,
                      .src_width = (int)ihdr.width, .src_height = (int)ihdr.height};
    return 0;
}

int tp_png_decode(const void *data, size_t len, uint64_t max_pixels, tp_image *img,
                  tp_error *err)
{
    spng_ctx *ctx = spng_ctx_new(0);
    if (!ctx)
        return tp__error_set(err, -ENOMEM, "cannot create a PNG decoder");
    int rc = png_decode(ctx, data, len, max_pixels ? max_pixels : TP_JPEG_DEFAULT_MAX_PIXELS,
                        img, err);
    spng_ctx_free(ctx);
    return rc;
}

bool tp_png_signature(const void *data, size_t len)
{
    return len >= 8 && !memcmp(data, "\x89PNG\r\n\x1a\n", 8);
}

int tp_png_inspect(const void *data, size_t len, uint64_t max_pixels, int *width, int *height,
                   tp_error *err)
{
    spng_ctx *ctx = spng_ctx_new(0);
    if (!ctx)
        return tp__error_set(err, -ENOMEM, "cannot create a PNG decoder");
    struct spng_ihdr ihdr;
    int rc = png_header(ctx, data, len, max_pixels ? max_pixels : TP_JPEG_DEFAULT_MAX_PIXELS,
                        &ihdr, err);
    spng_ctx_free(ctx);
    TP_TRY(rc);
    /* A file cut short loses its IEND chunk: the last 12 bytes must be it. */
    static const unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
    if (len < 12 + 8 || memcmp((const unsigned char *)data + len - 12, iend, 12))
        return tp__error_set(err, TP_EBADIMAGE, "PNG: truncated (no IEND chunk at the end)");
    *width = (int)ihdr.width;
    *height = (int)ihdr.height;
    return 0;
}

int tp_image_inspect(const void *data, size_t len, uint64_t max_pixels, tp_error *err)
{
    int w, h;
    tp_jpeg_info info;
    const unsigned char *b = data;
    if (tp_png_signature(data, len))
        return tp_png_inspect(data, len, max_pixels, &w, &h, err);
    if (len < 2 || b[0] != 0xFF || b[1] != 0xD8)
        return tp__error_set(err, TP_EBADIMAGE, "not a JPEG or PNG image (neither a "
                             "start-of-image marker nor the PNG signature)");
    return tp_jpeg_inspect(data, len, max_pixels, &info, err);
}
