/* Test JPEGs made with the libjpeg compression API, so every variant the decoder must
 * handle can be produced on the spot: chroma subsampling, grayscale, CMYK (Adobe),
 * progressive, restart markers, an EXIF segment. */
#ifndef TP_JPEG_FIXTURES_H
#define TP_JPEG_FIXTURES_H

#include <stddef.h>

enum {
    FIX_420, FIX_422, FIX_444, FIX_GRAY, FIX_CMYK, FIX_PROGRESSIVE, FIX_RESTART, FIX_EXIF,
    FIX_COUNT
};

/* Encodes a w x h photo-like test pattern as variant `kind`. The caller frees *out.
 * For FIX_CMYK, *cmyk (if not NULL) receives the w*h*4 CMYK samples as written. */
void fixture_jpeg(int kind, int w, int h, unsigned char **out, unsigned long *len,
                  unsigned char **cmyk);

/* Encodes w x h pixels of `comps` (1: grey, 3: RGB) channels at `quality`, the first
 * component sampled hs x vs (the others 1x1), progressive or not, with a restart marker
 * every `restart` MCUs (0: none). The caller frees *out. */
void fixture_encode(const unsigned char *pixels, int w, int h, int comps, int hs, int vs,
                    int quality, int progressive, unsigned restart, unsigned char **out,
                    unsigned long *len);

#endif
