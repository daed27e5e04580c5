/* libFuzzer target: seekable JPEGs on arbitrary bytes. The layout reader and the restart
 * marker scan (codecs/jpeg_seek.c) on the file, a region decode through the seekable path
 * (which builds the region's own JPEG from the segments and decodes it, or falls back),
 * and the lossless re-encode `pack --jpeg-seek` runs on its inputs, whose output must be
 * seekable and decode. The first 4 bytes pick the region (fractions of the image) and the
 * scale; the rest is the file. Nothing may crash or read outside the input. */
#include "codecs.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode_region(tp_jpeg_decoder *d, const uint8_t *sel, const uint8_t *jpeg,
                          size_t len)
{
    tp_jpeg_seek s = {0};
    if (tp_jpeg_seek_parse(jpeg, len, &s) != 1 || (uint64_t)s.width * s.height > (1u << 22)) {
        free(s.seg);
        return;
    }
    int x = sel[0] * (s.width - 1) / 255, y = sel[1] * (s.height - 1) / 255;
    int w = 1 + sel[2] * (s.width - x - 1) / 255, h = 1 + sel[3] * (s.height - y - 1) / 255;
    tp_jpeg_request rq = {.x = x, .y = y, .width = w, .height = h,
                          .scale_num = 1 + (sel[0] & 7), .max_pixels = 1u << 22};
    tp_image img = {0};
    tp_jpeg_decode(d, jpeg, len, &rq, &img, NULL);
    free(img.pixels);
    free(s.seg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tp_jpeg_decoder *d;
    if (size < 5 || (!d && tp_jpeg_decoder_create(&d) < 0))
        return 0;
    const uint8_t *jpeg = data + 4;
    size_t len = size - 4;
    decode_region(d, data, jpeg, len);
    tp_jpeg_info info;
    if (tp_jpeg_inspect(jpeg, len, 1u << 22, &info, NULL) < 0)
        return 0; /* pack re-encodes only what passed its inspection */
    unsigned char *out;
    size_t out_len;
    if (tp_jpeg_make_seekable(jpeg, len, 1 + (data[1] & 7), &out, &out_len, NULL) == 1) {
        tp_jpeg_seek s = {0};
        if (tp_jpeg_seek_parse(out, out_len, &s) != 1)
            abort(); /* what the re-encoder writes must be seekable */
        free(s.seg);
        decode_region(d, data, out, out_len);
        free(out);
    }
    return 0;
}
