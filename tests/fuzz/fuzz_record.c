/* libFuzzer target: the record parser on arbitrary bytes. Each input is parsed as is and
 * again with a correct checksum patched in, so the fuzzer reaches the structure checks
 * behind the checksum. */
#include "storage.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_record rec;
    tp_error err;
    tp_record_parse(data, size, 0, TP_MAX_FIELDS, &rec, NULL);
    unsigned char *copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    if (size >= 8)
        tp__put64(copy, tp__hash64(copy + 8, size - 8));
    if (tp_record_parse(copy, size, 0, 4, &rec, &err) == 0) {
        uint64_t total = 0;
        for (uint32_t i = 0; i < rec.nfields; i++) {
            const unsigned char *p = rec.fields[i].data;
            /* Every view must lie inside the input. */
            if (p < copy || p + rec.fields[i].size > copy + size)
                abort();
            total += rec.fields[i].size;
        }
        if (total > size)
            abort();
    }
    free(copy);
    return 0;
}
