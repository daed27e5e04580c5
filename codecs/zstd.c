/* zstd compression of stored fields. Decompression is bounded by the raw size the record
 * declares, so a hostile frame cannot make it write past the caller's buffer. */
#include "codecs.h"

#include <stdlib.h>
#include <zstd.h>

int64_t tp_zstd_compress(const void *src, size_t len, int level, unsigned char **out)
{
    size_t cap = ZSTD_compressBound(len);
    unsigned char *buf = malloc(cap ? cap : 1);
    if (!buf)
        return -ENOMEM;
    /* The frame checksum makes a damaged frame fail even where a record checksum is not
     * checked, at 4 bytes per field. */
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    size_t n = cctx ? ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level) : 0;
    if (cctx && !ZSTD_isError(n))
        n = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    if (cctx && !ZSTD_isError(n))
        n = ZSTD_compress2(cctx, buf, cap, src, len);
    ZSTD_freeCCtx(cctx);
    if (!cctx || ZSTD_isError(n)) {
        free(buf);
        return TP_EUSAGE;
    }
    *out = buf;
    return (int64_t)n;
}

int tp_zstd_decompress(const void *src, size_t len, void *dst, size_t raw_len, tp_error *err)
{
    size_t n = ZSTD_decompress(dst, raw_len, src, len);
    if (ZSTD_isError(n))
        return tp__error_set(err, TP_ECORRUPT, "zstd: %s", ZSTD_getErrorName(n));
    if (n != raw_len)
        return tp__error_set(err, TP_ECORRUPT, "zstd: %zu bytes decompressed, record says %zu",
                             n, raw_len);
    return 0;
}
