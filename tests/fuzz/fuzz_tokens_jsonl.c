/* libFuzzer target: one JSON Lines line of token ids (ingest/tokens_jsonl.c). The first
 * byte picks the largest id and the member; the rest is the line. An accepted line gives
 * ids within range, no more of them than the line has bytes; a refused one says why. */
#include "tokens_source.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t limits[] = {0, 1, 50256, UINT16_MAX, UINT32_MAX};
    if (size < 1)
        return 0;
    uint64_t max_id = limits[(data[0] & 0x7f) % TP_ARRAY_LEN(limits)];
    const char *field = data[0] & 0x80 ? "ids" : "input_ids";
    uint32_t *ids = NULL;
    size_t cap = 0;
    uint64_t n = 0;
    char why[256] = "";
    int rc = tp__token_jsonl_parse((const char *)data + 1, size - 1, field, max_id, &ids, &cap,
                                   &n, why, sizeof(why));
    if (rc == 1) {
        if (n > size || (n && cap < n * sizeof(uint32_t)))
            abort();
        for (uint64_t i = 0; i < n; i++)
            if (ids[i] > max_id)
                abort();
    } else if (rc == TP_EUSAGE) {
        if (!why[0] || !memchr(why, '\0', sizeof(why)))
            abort();
    } else if (rc != 0 && rc != -ENOMEM) {
        abort();
    }
    free(ids);
    return 0;
}
