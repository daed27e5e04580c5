/* libFuzzer target: PNG decoding to 8-bit RGB on arbitrary bytes, with a pixel limit as the
 * daemon sets one. A decoded image must have the size it reports. */
#include "codecs.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_image img = {0};
    if (tp_png_decode(data, size, UINT64_C(1) << 20, &img, NULL) == 0 &&
        (img.width <= 0 || img.height <= 0 ||
         (size_t)img.width * (size_t)img.height * 3 > img.cap))
        abort();
    free(img.pixels);
    return 0;
}
