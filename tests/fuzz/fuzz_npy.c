/* libFuzzer target: .npy headers. An accepted array has a supported dtype, 1..8 non-empty
 * dimensions, and exactly fills the value after its header. Parsed as a token file too
 * (TP_NPY_TOKENS): uint32 and empty dimensions are then allowed, with no size limit. */
#include "source.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const tp_npy *a, size_t size, bool tokens)
{
    uint64_t n = tp_dtype_size(a->dtype);
    if (!n || a->ndim < 1 || a->ndim > TP_MAX_DIMS || a->offset > size)
        abort();
    if (!tokens && a->dtype == TP_DTYPE_UINT32)
        abort();
    for (uint32_t d = 0; d < a->ndim; d++) {
        if (a->shape[d] < 0 || (a->shape[d] == 0 && !tokens))
            abort();
        n *= (uint64_t)a->shape[d];
    }
    if (n != a->bytes || a->offset + a->bytes != size)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_npy a;
    if (tp__npy_parse(data, size, size, &a, NULL) == 0)
        check(&a, size, false);
    if (tp__npy_parse_as(data, size, size, UINT64_MAX, TP_NPY_TOKENS, &a, NULL) == 0)
        check(&a, size, true);
    return 0;
}
