/* zstd for stored fields: one reusable compression and decompression context per thread
 * (creating them per field costs more than compressing a small one), dictionaries
 * digested once and shared read-only by every thread, and dictionary training for
 * datasets of small records. Decompression is bounded by the raw size the record
 * declares, so a hostile frame cannot write past the caller's buffer; frames carry their
 * content checksum. */
#include "codecs.h"

#include <stdlib.h>
#include <zdict.h>
#include <zstd.h>

struct tp_zstd {
    ZSTD_CCtx *c;
    ZSTD_DCtx *d;
};

struct tp_zstd_dict {
    ZSTD_CDict *c;
    ZSTD_DDict *d;
    unsigned id;
};

int tp_zstd_create(tp_zstd **out)
{
    tp_zstd *z = calloc(1, sizeof(*z));
    if (!z || !(z->c = ZSTD_createCCtx()) || !(z->d = ZSTD_createDCtx())) {
        tp_zstd_destroy(z);
        return -ENOMEM;
    }
    *out = z;
    return 0;
}

void tp_zstd_destroy(tp_zstd *z)
{
    if (!z)
        return;
    ZSTD_freeCCtx(z->c);
    ZSTD_freeDCtx(z->d);
    free(z);
}

int tp_zstd_dict_create(tp_zstd_dict **out, const void *dict, size_t len, int level,
                        tp_error *err)
{
    tp_zstd_dict *d = calloc(1, sizeof(*d));
    if (!d)
        return tp__error_set(err, -ENOMEM, "out of memory");
    d->id = ZDICT_getDictID(dict, len);
    d->d = ZSTD_createDDict(dict, len);
    d->c = level > 0 ? ZSTD_createCDict(dict, len, level) : NULL;
    if (!d->d || (level > 0 && !d->c) || d->id == 0) {
        tp_zstd_dict_destroy(d);
        return tp__error_set(err, TP_ECORRUPT, "zstd: not a valid dictionary (%zu bytes)", len);
    }
    *out = d;
    return 0;
}

void tp_zstd_dict_destroy(tp_zstd_dict *d)
{
    if (!d)
        return;
    ZSTD_freeCDict(d->c);
    ZSTD_freeDDict(d->d);
    free(d);
}

int64_t tp_zstd_compress_with(tp_zstd *z, const tp_zstd_dict *dict, const void *src, size_t len,
                              int level, unsigned char **out)
{
    size_t cap = ZSTD_compressBound(len);
    unsigned char *buf = malloc(cap ? cap : 1);
    if (!buf)
        return -ENOMEM;
    ZSTD_CCtx_reset(z->c, ZSTD_reset_session_and_parameters);
    size_t n = ZSTD_CCtx_setParameter(z->c, ZSTD_c_checksumFlag, 1);
    if (!ZSTD_isError(n))
        n = dict ? ZSTD_CCtx_refCDict(z->c, dict->c)
                 : ZSTD_CCtx_setParameter(z->c, ZSTD_c_compressionLevel, level);
    if (!ZSTD_isError(n))
        n = ZSTD_compress2(z->c, buf, cap, src, len);
    if (ZSTD_isError(n)) {
        free(buf);
        return TP_EUSAGE;
    }
    *out = buf;
    return (int64_t)n;
}

int tp_zstd_decompress_with(tp_zstd *z, const tp_zstd_dict *dict, const void *src, size_t len,
                            void *dst, size_t raw_len, tp_error *err)
{
    size_t n = dict ? ZSTD_decompress_usingDDict(z->d, dst, raw_len, src, len, dict->d)
                    : ZSTD_decompressDCtx(z->d, dst, raw_len, src, len);
    if (ZSTD_isError(n))
        return tp__error_set(err, TP_ECORRUPT, "zstd: %s", ZSTD_getErrorName(n));
    if (n != raw_len)
        return tp__error_set(err, TP_ECORRUPT, "zstd: %zu bytes decompressed, record says %zu",
                             n, raw_len);
    return 0;
}

int64_t tp_zstd_compress(const void *src, size_t len, int level, unsigned char **out)
{
    tp_zstd *z;
    TP_TRY(tp_zstd_create(&z));
    int64_t n = tp_zstd_compress_with(z, NULL, src, len, level, out);
    tp_zstd_destroy(z);
    return n;
}

int tp_zstd_decompress(const void *src, size_t len, void *dst, size_t raw_len, tp_error *err)
{
    tp_zstd *z;
    if (tp_zstd_create(&z) < 0)
        return tp__error_set(err, -ENOMEM, "out of memory");
    int rc = tp_zstd_decompress_with(z, NULL, src, len, dst, raw_len, err);
    tp_zstd_destroy(z);
    return rc;
}

int64_t tp_zstd_train(const void *samples, const size_t *sizes, unsigned n, void *dict,
                      size_t cap, tp_error *err)
{
    size_t got = ZDICT_trainFromBuffer(dict, cap, samples, sizes, n);
    if (ZDICT_isError(got))
        return tp__error_set(err, TP_EUSAGE, "zstd dictionary training: %s (%u samples)",
                             ZDICT_getErrorName(got), n);
    return (int64_t)got;
}
