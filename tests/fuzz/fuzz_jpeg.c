/* libFuzzer target: the JPEG path a sample takes in the daemon, on arbitrary bytes: the
 * header inspection `pack` uses, then decode + transform (scaled and region decoding,
 * the crop geometry, resampling and flip). The first byte picks the transform, the DCT
 * scales, exact decoding and the sample's seed; the rest is the file. Every output byte
 * is written on success, and nothing may crash or read outside the input. */
#include "codecs.h"
#include "transform.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tp_transformer *tr;
    static const char *const names[] = {"rrc32", "center32", "rrc17", "center8"};
    if (size < 2 || (!tr && tp_transformer_create(&tr) < 0))
        return 0;
    uint8_t sel = data[0];
    const uint8_t *jpeg = data + 1;
    size_t len = size - 1;
    tp_jpeg_info info;
    tp_jpeg_inspect(jpeg, len, UINT64_C(1) << 22, &info, NULL);
    tp_transform t;
    if (tp_transform_parse(names[sel & 3], &t, NULL) < 0)
        abort();
    t.scales = (sel & 4) ? TP_JPEG_SCALES_ALL : TP_JPEG_SCALES_POW2;
    t.exact = (sel & 8) != 0;
    unsigned char out[32 * 32 * 3 + 1];
    out[t.size * t.size * 3] = 0xA5; /* a canary just past the output */
    tp_transform_image(tr, jpeg, len, &t, sel >> 4, 0, 1, out, NULL);
    if (out[t.size * t.size * 3] != 0xA5)
        abort();
    return 0;
}
