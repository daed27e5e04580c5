/* libFuzzer target: Megatron-LM .idx files (ingest/tokens_megatron.c). The input is the
 * size of the .bin, 8 bytes little-endian, then the .idx bytes. An accepted index keeps
 * every sequence inside the .bin and every count inside the file, and its document
 * indices run from 0 to the sequence count without decreasing. */
#include "tokens_source.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t bin = tp__le64(data);
    tp__megatron_index x;
    tp_error err;
    if (tp__megatron_index_parse(data + 8, size - 8, bin, &x, &err) != 0) {
        if (err.code != TP_ECORRUPT || !memchr(err.msg, '\0', sizeof(err.msg)))
            abort();
        return 0;
    }
    if (!x.itemsize || 34 + 12 * x.sequences + 8 * (x.documents + 1) > size - 8)
        abort();
    uint64_t ids = 0;
    for (uint64_t i = 0; i < x.sequences; i++) {
        uint64_t n = tp__megatron_length(&x, i), at = tp__megatron_pointer(&x, i);
        if (at > bin || n * x.itemsize > bin - at)
            abort();
        ids += n;
    }
    if (tp__megatron_first(&x, 0) != 0 || tp__megatron_first(&x, x.documents) != x.sequences)
        abort();
    for (uint64_t d = 0; d < x.documents; d++)
        if (tp__megatron_first(&x, d) > tp__megatron_first(&x, d + 1))
            abort();
    (void)ids;
    return 0;
}
