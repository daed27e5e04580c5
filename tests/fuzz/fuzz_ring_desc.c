/* libFuzzer target: batch descriptors as the client reads them from a ring slot. The
 * input is the start of a slot; a descriptor that passes tp_batch_desc_check must keep
 * every array it names (ids and fields) inside the slot, after the descriptor. */
#include "ring.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { SLOT = 1 << 20 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static _Alignas(4096) unsigned char slot[SLOT];
    memset(slot, 0, sizeof(tp_batch_desc));
    memcpy(slot, data, size < sizeof(slot) ? size : sizeof(slot));
    const tp_batch_desc *d = (const tp_batch_desc *)slot;
    if (tp_batch_desc_check(d, SLOT, NULL) < 0 || d->status < 0)
        return 0;
    uint64_t lo = sizeof(tp_batch_desc);
    if (d->samples && (d->ids_offset < lo || d->ids_offset + 8ull * d->samples > SLOT))
        abort();
    for (uint32_t i = 0; i < d->nfields; i++) {
        const tp_ring_field *f = &d->fields[i];
        if (f->bytes && (f->offset < lo || f->offset > SLOT || f->bytes > SLOT - f->offset))
            abort();
        if (!memchr(f->name, 0, sizeof(f->name)) || f->shape[0] != d->samples)
            abort();
    }
    return 0;
}
