/* The resampler's 14-bit path (resample.c), shared with its AVX-512 horizontal pass
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
 * -ENOMEM. */
int tp__horizontal_avx512(const unsigned char *src, size_t sstride, int row0, int rows,
                          const fcoeffs *f, int out, int row_pixels, bool mirror,
                          unsigned char *tmp, void **table, size_t *table_cap);

#endif
