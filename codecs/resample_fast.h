/* The resampler's 14-bit path (resample.c), shared with its AVX-512 passes
 * (resample_avx512.c). */
#ifndef TP_RESAMPLE_FAST_H
#define TP_RESAMPLE_FAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FAST_BITS 14

typedef struct fcoeffs {
    int *bounds;   /* per output pixel: first input index, tap pairs, tap pairs whose
                      8-byte loads stay in the row, taps up to the last non-zero weight */
    int16_t *k;    /* per output pixel: pairs x 8 lanes {k0 k1 k0 k1 k0 k1 0 0} */
    int pairs;     /* tap pairs per output pixel (odd tap counts padded with a zero) */
} fcoeffs;

/* The horizontal pass with AVX-512 VBMI byte permutes, where the CPU has them: rows
 * [row0, row0 + rows) of src (row_pixels RGB pixels each) into tmp (out pixels a row),
 * mirrored or not, with its tables in *table. @return : 0 when done, 1 when the CPU or the
 * geometry (a pixel's taps wider than 21 source pixels) leaves it to the AVX2 pass,
 * -ENOMEM. `vnni` allows AVX-512 VNNI multiply-adds where the CPU has them (the same
 * sums). */
int tp__horizontal_avx512(const unsigned char *src, size_t sstride, int row0, int rows,
                          const fcoeffs *f, int out, int row_pixels, bool mirror,
                          unsigned char *tmp, void **table, size_t *table_cap, bool vnni);

/* A finished output row, for a job that takes its rows one at a time (tp_resample_job). */
typedef void (*tp_row_fn)(void *ctx, int y, const unsigned char *row);

/* The vertical pass with AVX-512BW, where the CPU has it: tmp's rows (first row `row0` of
 * the window, `width` pixels each) into `out` rows of dst, or each into dst and then to
 * row_out when that is set. `vnni` allows AVX-512 VNNI multiply-adds (the same sums).
 * @return : 0 when done, 1 when the CPU leaves it to the AVX2 pass. */
int tp__vertical_avx512(const unsigned char *tmp, int width, int row0, const fcoeffs *f,
                        int out, unsigned char *dst, size_t dstride, tp_row_fn row_out,
                        void *row_ctx, bool vnni);

#endif
