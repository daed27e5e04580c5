/* Internal interface of the codecs module: JPEG inspection and decoding through
 * libjpeg-turbo, and zstd compression of stored fields. */
#ifndef TP_CODECS_H
#define TP_CODECS_H

#include "tp_common.h"

#define TP_JPEG_DEFAULT_MAX_PIXELS (64u << 20) /* decompression-bomb guard */

typedef struct tp_jpeg_info {
    int width;
    int height;
    int subsampling;  /* TurboJPEG TJSAMP_* */
    int colorspace;   /* TurboJPEG TJCS_* */
} tp_jpeg_info;

/* Parses a JPEG's headers without decoding: dimensions must be non-zero and at most
 * `max_pixels` in total, and the data must end with an end-of-image marker (trailing
 * zero padding allowed), which catches files cut short.
 * @return : 0, or TP_EBADIMAGE / TP_ETOOBIG with the cause in `err`. Thread-safe. */
int tp_jpeg_inspect(const void *data, size_t len, uint64_t max_pixels, tp_jpeg_info *info,
                    tp_error *err);

/* A decoded RGB image (3 bytes per pixel, rows packed), reused across decodes: the
 * buffer grows as needed and belongs to the caller (free `pixels`). When a decode was
 * scaled or cropped, pixel (0, 0) is pixel (x0, y0) of the source scaled by
 * scale_num/8. */
typedef struct tp_image {
    unsigned char *pixels;
    size_t cap;
    int width, height;
    int x0, y0;
    int scale_num;
    int src_width, src_height;
} tp_image;

/* What to decode: the region (x, y, width, height) of the source, or all of it when
 * width/height are 0, at a resolution that still gives at least out_width x out_height
 * pixels for that region (0: full resolution). */
/* Scale sets for tp_jpeg_request.scales. Full scale is always allowed. The powers of two
 * are the fast ones: libjpeg-turbo has SIMD code for the 8x8 IDCT, and at 3/8, 5/8, 6/8 and
 * 7/8 it widens the chroma IDCTs (to 6x6 ... 14x14) in plain C. */
#define TP_JPEG_SCALES_ALL 0x1FEu
#define TP_JPEG_SCALES_POW2 ((1u << 1) | (1u << 2) | (1u << 4) | (1u << 8))

typedef struct tp_jpeg_request {
    int x, y, width, height;
    int out_width, out_height;
    uint64_t max_pixels; /* 0: TP_JPEG_DEFAULT_MAX_PIXELS */
    unsigned scales;     /* the DCT scales M/8 allowed, bit M set for each; 0: all */
    int scale_num;       /* 1..8: decode at exactly M/8, ignoring out_* and scales */
    /* Optional: called once the header is read, with the image's size, to fill in the
     * region and output size (a random crop needs the size first). */
    void (*plan)(void *ctx, int width, int height, struct tp_jpeg_request *rq);
    void *plan_ctx;
} tp_jpeg_request;

/* The scale tp_jpeg_decode picks for a region of rw x rh source pixels: the smallest M
 * allowed by `scales` (0: all) with ceil(rw*M/8) >= out_w and ceil(rh*M/8) >= out_h;
 * 8 when out_w or out_h is 0 or nothing smaller suffices. */
int tp_jpeg_pick_scale(unsigned scales, int rw, int rh, int out_w, int out_h);

/* A reusable decoder: one per thread. */
typedef struct tp_jpeg_decoder tp_jpeg_decoder;
int tp_jpeg_decoder_create(tp_jpeg_decoder **out);
void tp_jpeg_decoder_destroy(tp_jpeg_decoder *d);

/* Decodes what `rq` asks for into `img`. Whole-image decodes are bit-exact with
 * libjpeg-turbo's own (ISLOW DCT, fancy upsampling); region decodes equal the same region
 * of a full decode at the same scale. Warnings about corrupt data are errors.
 * @return : 0, TP_EBADIMAGE (corrupt, truncated, unsupported), TP_ETOOBIG (more pixels
 *           than allowed), TP_EUSAGE (region outside the image) or -ENOMEM. */
int tp_jpeg_decode(tp_jpeg_decoder *d, const void *data, size_t len, const tp_jpeg_request *rq,
                   tp_image *img, tp_error *err);

/* Counters of a decoder's seekable-JPEG path (jpeg_seek.c): regions decoded from only the
 * segments they touch, and seekable files whose restart markers did not hold up (missing,
 * out of order, or a segment libjpeg rejected), decoded in full instead. */
typedef struct tp_jpeg_stats {
    uint64_t seek_decodes, seek_fallbacks;
} tp_jpeg_stats;
void tp_jpeg_decoder_stats(const tp_jpeg_decoder *d, tp_jpeg_stats *out);

/* Turns the seekable path off (on by default), for comparisons. */
void tp_jpeg_decoder_set_seek(tp_jpeg_decoder *d, bool on);

/* Re-encodes a JPEG losslessly for region decoding: the same DCT coefficients (so the
 * same pixels) as a baseline JPEG with optimised Huffman tables, a restart marker every K
 * MCUs (K the largest divisor of the MCUs in a row up to `columns`) and the original's
 * metadata. Takes 8-bit Huffman-coded YCbCr and grey JPEGs, baseline or complete
 * progressive. @return : 1 with a malloc'd copy in *out (the caller frees it), 0 when
 *           the file is not of a kind it takes (nothing allocated), TP_EBADIMAGE for
 *           corrupt data, TP_EUSAGE or -ENOMEM. Thread-safe. */
int tp_jpeg_make_seekable(const void *data, size_t len, int columns, unsigned char **out,
                          size_t *out_len, tp_error *err);

/* The layout of a seekable JPEG, as the decoder reads it (exposed for the tests and the
 * fuzz target): a baseline frame of 1 or 3 components, one scan of all of them, a
 * restart interval dividing the MCUs of a row. seg holds (start, end) byte offsets of
 * the entropy-coded segments found so far. */
#define TP_JPEG_SEEK_MAX_HEADERS 64
typedef struct tp_jpeg_seek {
    int width, height, ncomp;
    int mcu_w, mcu_h, mcus_x, mcus_y;
    int hmin;                    /* the smallest horizontal sampling factor */
    int interval, groups;        /* MCUs per segment; segments per MCU row */
    uint32_t sof, sos, scan;     /* offsets: frame header, scan header, entropy data */
    uint32_t keep[TP_JPEG_SEEK_MAX_HEADERS][2]; /* header segments to copy: offset, size */
    int nkeep;
    uint32_t *seg;               /* 2 per segment; grows, owned (free it) */
    size_t nseg, seg_cap;
    uint32_t next, pos;          /* scanning state */
    bool ended;
} tp_jpeg_seek;

/* Reads the headers. @return : 1 when the file is seekable, else 0 (never an error: a
 * file that is not seekable is decoded the usual way). Keeps s->seg's buffer. */
int tp_jpeg_seek_parse(const void *data, size_t len, tp_jpeg_seek *s);

/* Finds the first `want` segments (resuming where the last call stopped).
 * @return : 0, TP_EBADIMAGE when the markers do not match the layout, -ENOMEM. */
int tp_jpeg_seek_scan(tp_jpeg_seek *s, const void *data, size_t len, size_t want);
/* Tests only: 0 makes tp_jpeg_seek_scan use its plain scan (memchr) instead of AVX-512. */
extern int tp__jpeg_seek_simd;

/* Writes into *buf (grown as needed) the JPEG of column groups g0..g1-1 of MCU rows
 * r0..r1-1, whose segments must have been scanned, followed by TP_JPEG_SEEK_TAIL zero
 * bytes: handed to libjpeg-turbo with the JPEG, they keep its fast Huffman decoder on to
 * the last MCU (it takes the slow one within 512 bytes per block of an MCU of the end of
 * its input). @return : 0 or -ENOMEM. */
#define TP_JPEG_SEEK_TAIL 5120
int tp_jpeg_seek_build(const tp_jpeg_seek *s, const void *data, int g0, int g1, int r0,
                       int r1, unsigned char **buf, size_t *cap, size_t *out_len);

/* Decodes a whole PNG to 8-bit RGB into `img` (alpha dropped, palette/gray/16-bit
 * converted). @return : 0, TP_EBADIMAGE (corrupt, truncated, CRC error), TP_ETOOBIG
 *           (more than max_pixels, 0 meaning the default limit) or -ENOMEM. */
int tp_png_decode(const void *data, size_t len, uint64_t max_pixels, tp_image *img,
                  tp_error *err);

/* True when `data` starts with the PNG signature. */
bool tp_png_signature(const void *data, size_t len);

/* Reads a PNG's header without decoding: a valid IHDR of at most `max_pixels` (0: the
 * default limit). @return : 0 with the size in *width, *height, or TP_EBADIMAGE /
 * TP_ETOOBIG with the cause in `err`. Thread-safe. */
int tp_png_inspect(const void *data, size_t len, uint64_t max_pixels, int *width, int *height,
                   tp_error *err);

/* Checks an encoded image of either codec, told apart by its signature, as `pack` does
 * before storing it. @return : as tp_jpeg_inspect. */
int tp_image_inspect(const void *data, size_t len, uint64_t max_pixels, tp_error *err);

/* Per-thread zstd contexts, reused for every field a thread handles. */
typedef struct tp_zstd tp_zstd;
int tp_zstd_create(tp_zstd **out);
void tp_zstd_destroy(tp_zstd *z);

/* A dictionary digested once for compression (at `level`; 0 for decompression only) and
 * decompression; read-only, shared by all threads.
 * @return : 0, TP_ECORRUPT (not a zstd dictionary) or -ENOMEM. */
typedef struct tp_zstd_dict tp_zstd_dict;
int tp_zstd_dict_create(tp_zstd_dict **out, const void *dict, size_t len, int level,
                        tp_error *err);
void tp_zstd_dict_destroy(tp_zstd_dict *d);

/* Compresses `len` bytes (with `dict` when not NULL, whose level then applies) into a
 * malloc'd buffer. @return : the compressed size, or a negative code. */
int64_t tp_zstd_compress_with(tp_zstd *z, const tp_zstd_dict *dict, const void *src,
                              size_t len, int level, unsigned char **out);
/* Decompresses exactly `raw_len` bytes into `dst`. @return : 0, TP_ECORRUPT. */
int tp_zstd_decompress_with(tp_zstd *z, const tp_zstd_dict *dict, const void *src, size_t len,
                            void *dst, size_t raw_len, tp_error *err);
/* One-off versions that create a context per call. */
int64_t tp_zstd_compress(const void *src, size_t len, int level, unsigned char **out);
int tp_zstd_decompress(const void *src, size_t len, void *dst, size_t raw_len, tp_error *err);

/* Trains a dictionary of at most `cap` bytes from `n` samples laid end to end.
 * @return : the dictionary's size, or TP_EUSAGE (too few or too uniform samples). */
int64_t tp_zstd_train(const void *samples, const size_t *sizes, unsigned n, void *dict,
                      size_t cap, tp_error *err);

#endif
