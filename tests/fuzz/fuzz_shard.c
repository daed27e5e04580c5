/* libFuzzer target: opening a record shard (.tpr) and reading every record through its
 * index. The input is the shard file. It is opened as is, and again with the header,
 * footer and index checksums recomputed, so the fuzzer reaches the structure checks
 * behind them. What the manifest would say (shard number, first sample, dataset id,
 * record count) is taken from the input itself, the alignment rounded to a power of two
 * as the manifest parser demands. */
#include "storage.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int shard_fd = -1;
static char shard_path[64];

static void manifest_view(const unsigned char *in, size_t size, tp__shard_header *want,
                          uint64_t *records)
{
    memset(want, 0, sizeof(*want));
    want->align = 1;
    *records = 0;
    if (size < TP_SHARD_HEADER + TP_SHARD_FOOTER)
        return;
    uint32_t align = tp__le32(in + 12);
    if (align >= 1 && align <= 65536 && !(align & (align - 1)))
        want->align = align;
    want->shard_index = tp__le64(in + 16);
    want->first_sample = tp__le64(in + 24);
    memcpy(want->id, in + 32, TP_DATASET_ID_BYTES);
    *records = tp__le64(in + size - TP_SHARD_FOOTER + 8);
}

static void patch_checksums(unsigned char *in, size_t size)
{
    if (size < TP_SHARD_HEADER + TP_SHARD_FOOTER)
        return;
    unsigned char *f = in + size - TP_SHARD_FOOTER;
    uint64_t index_off = tp__le64(f);
    if (index_off <= size - TP_SHARD_FOOTER)
        tp__put64(f + 24, tp__hash64(in + index_off, size - TP_SHARD_FOOTER - index_off));
    tp__put64(f + 48, tp__hash64(f, 48));
    tp__put64(in + 56, tp__hash64(in, 56));
}

static void open_and_read(const unsigned char *in, size_t size)
{
    if (ftruncate(shard_fd, 0) < 0 || pwrite(shard_fd, in, size, 0) != (ssize_t)size)
        abort();
    tp__shard_header want;
    uint64_t records;
    manifest_view(in, size, &want, &records);
    tp__shard_reader *r;
    tp_error err;
    if (tp__tpr_reader_open(&r, shard_path, &want, records, &err) < 0)
        return;
    if (r->max_record > size)
        abort();
    unsigned char *buf = malloc(r->max_record + 1);
    for (uint64_t i = 0; buf && i < r->records && i < 256; i++) {
        tp_sample_location loc;
        if (r->ops->locate(r, i, &loc, &err) < 0)
            continue;
        /* A record the index accepted lies inside the file, before the index. */
        if (loc.offset < TP_SHARD_HEADER || loc.length > size || loc.offset > size - loc.length)
            abort();
        size_t len;
        if (r->ops->read(r, i, buf, r->max_record, &len, &err) < 0)
            abort();
        if (len != loc.length || memcmp(buf, in + loc.offset, len) != 0)
            abort();
        tp_record rec;
        tp_record_parse(buf, len, loc.checksum, TP_MAX_FIELDS, &rec, &err);
    }
    free(buf);
    r->ops->close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (shard_fd < 0) {
        shard_fd = memfd_create("fuzz-shard", MFD_CLOEXEC);
        if (shard_fd < 0)
            abort();
        snprintf(shard_path, sizeof(shard_path), "/proc/self/fd/%d", shard_fd);
    }
    open_and_read(data, size);
    unsigned char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    patch_checksums(copy, size);
    open_and_read(copy, size);
    free(copy);
    return 0;
}
