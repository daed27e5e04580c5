/* libFuzzer target: .npy headers. An accepted array has a supported dtype, 1..8 non-empty
 * dimensions, and exactly fills the value after its header. */
#include "source.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_npy a;
    if (tp__npy_parse(data, size, size, &a, NULL) != 0)
        return 0;
    uint64_t n = tp_dtype_size(a.dtype);
    if (!n || a.ndim < 1 || a.ndim > TP_MAX_DIMS || a.offset > size)
        abort();
    for (uint32_t d = 0; d < a.ndim; d++) {
        if (a.shape[d] <= 0)
            abort();
        n *= (uint64_t)a.shape[d];
    }
    if (n != a.bytes || a.offset + a.bytes != size)
        abort();
    return 0;
}
