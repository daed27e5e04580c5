/* `bench decode --versus-tjbench`: the transform and TurboJPEG's full decode measured in
 * alternating rounds on one thread (bench_paired.c). */
#ifndef TP_BENCH_PAIRED_H
#define TP_BENCH_PAIRED_H

#include "transform.h"

typedef struct tp_bench_blob {
    unsigned char *data;
    size_t len;
} tp_bench_blob;

typedef struct tp_bench_paired {
    unsigned rounds;
    double ours_per_s, tj_per_s; /* medians over the rounds */
    double ratio;                /* the median of the rounds' ours ÷ tj */
    uint64_t ours, tj, errors;   /* images done each way; transform failures */
} tp_bench_paired;

/* Alternates rounds of `round_s` seconds: TurboJPEG (tjDecompress2 to RGB, accurate IDCT,
 * fancy upsampling: what tjbench times) over `ref`, then the transform `t` over `img`, for
 * about `seconds` in all. @return : 0, or an error (a reference that does not decode). */
int tp_bench_paired_run(const tp_transform *t, bool seek, const tp_bench_blob *img, size_t n,
                        const tp_bench_blob *ref, size_t nref, double seconds, double round_s,
                        tp_bench_paired *out, tp_error *err);

#endif
