/* libFuzzer target: opening a one-shard LMDB dataset and reading every record. The input
 * is the shard file, written with a manifest into a scratch directory. What the manifest
 * says of the shard (dataset id, record count) is taken from the input: the id from the
 * header record when its magic is found, the count from a first open that walks every key
 * and says how many it found. Opening checks LMDB shards in a child process first, so the
 * crashes of liblmdb on corrupt pages must show here only as errors. */
#include "storage.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[96], shard[128], manifest[128];

static int write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static int write_manifest(const uint8_t *data, size_t size, uint64_t samples)
{
    tp_field_info field = {.name = "x", .kind = TP_FIELD_BYTES};
    tp__manifest_shard sh = {.file = "shard-00000.mdb", .samples = samples, .bytes = size};
    tp__manifest m = {.format = TP_SHARD_LMDB, .align = 1, .samples = samples, .bytes = size,
                      .nfields = 1, .nshards = 1, .shards = &sh};
    m.fields[0] = field;
    for (size_t i = 0; i + TP_SHARD_HEADER <= size; i++)
        if (memcmp(data + i, TP_LMDB_MAGIC, 8) == 0) {
            memcpy(m.id, data + i + 32, TP_DATASET_ID_BYTES);
            break;
        }
    char *text = tp__manifest_dump(&m);
    int rc = text ? write_file(manifest, text, strlen(text)) : -1;
    free(text);
    return rc;
}

static void remove_scratch(void)
{
    unlink(shard);
    unlink(manifest);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "%s/tp-fuzz-lmdb-%d",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
        mkdir(dir, 0700);
        snprintf(shard, sizeof(shard), "%s/shard-00000.mdb", dir);
        snprintf(manifest, sizeof(manifest), "%s/manifest.json", dir);
        atexit(remove_scratch);
    }
    if (write_file(shard, data, size) < 0 || write_manifest(data, size, 1u << 30) < 0)
        abort();
    tp_dataset *ds;
    tp_error err = {0};
    if (tp_dataset_open(&ds, dir, &err) == 0)
        abort(); /* 2^30 records cannot fit in the input */
    const char *found = strstr(err.msg, "(found ");
    unsigned long long n;
    if (!found || sscanf(found, "(found %llu", &n) != 1 || n == 0)
        return 0;
    if (write_manifest(data, size, n) < 0)
        abort();
    if (tp_dataset_open(&ds, dir, &err) < 0)
        return 0;
    size_t cap = tp_dataset_max_record(ds);
    unsigned char *buf = malloc(cap + 1);
    for (uint64_t id = 0; buf && id < n; id++) {
        size_t len;
        tp_dataset_read(ds, id, buf, cap, &len, &err);
    }
    free(buf);
    tp_dataset_close(ds);
    return 0;
}
