/* libFuzzer target: decompressing a zstd-stored field. The first two bytes give the raw
 * size the record declares (little-endian); the rest is the frame. Decompression must
 * either fill exactly that many bytes or fail, never write past them. */
#include "codecs.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t raw = (size_t)data[0] | (size_t)data[1] << 8;
    unsigned char *dst = malloc(raw + 1);
    if (!dst)
        return 0;
    dst[raw] = 0x5A;
    tp_zstd_decompress(data + 2, size - 2, dst, raw, NULL);
    if (dst[raw] != 0x5A)
        abort();
    free(dst);
    return 0;
}
