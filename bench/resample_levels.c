/* The default resampler's SIMD levels side by side, in one process: for each source size
 * (to 224x224, random pixels, a fractional box as RandomResizedCrop makes), rounds that
 * time every level in turn, keeping each level's fastest resample, so a machine whose
 * speed drifts moves all levels alike. Prints microseconds per level, each against the
 * AVX2 passes, and checks every level's output bytes against plain C.
 *   bench/resample_levels.sh   (builds this against the codecs library and runs it) */
#include "transform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 30, per_round = 100;
    static const int sizes[][2] = {{230, 230}, {260, 240}, {350, 320}, {440, 440}, {336, 448}};
    static const struct {
        int level;
        const char *name;
    } levels[] = {{0, "C"},     {1, "SSSE3"}, {2, "AVX2"},
                  {3, "AVX-512"}, {-1, "default"}};
    enum { NL = sizeof(levels) / sizeof(levels[0]), OUT = 224 };
    tp_resample_scratch s = {0};
    unsigned char *ref = malloc(OUT * OUT * 3), *dst = malloc(OUT * OUT * 3);
    if (!ref || !dst)
        return 1;
    printf("source -> %dx%d: best of %d rounds x %d resamples, microseconds (AVX2 / level)\n",
           OUT, OUT, rounds, per_round);
    for (size_t c = 0; c < sizeof(sizes) / sizeof(sizes[0]); c++) {
        int w = sizes[c][0], h = sizes[c][1];
        unsigned char *src = malloc((size_t)w * h * 3);
        if (!src)
            return 1;
        srand(1);
        for (size_t i = 0; i < (size_t)w * h * 3; i++)
            src[i] = (unsigned char)rand();
        tp_resample_job j = {.src = src, .src_w = w, .src_h = h, .src_stride = (size_t)w * 3,
                             .box_x0 = 0.3, .box_y0 = 0.7, .box_x1 = w - 0.2, .box_y1 = h - 0.4,
                             .win_x1 = w, .win_y1 = h, .dst_w = OUT, .dst_h = OUT,
                             .dst_stride = OUT * 3};
        tp__resample_simd = 0;
        j.dst = ref;
        if (tp_resample(&j, &s) < 0)
            return 1;
        j.dst = dst;
        double best[NL];
        for (int l = 0; l < NL; l++)
            best[l] = 1e30;
        for (int r = 0; r < rounds; r++)
            for (int l = 0; l < NL; l++) {
                tp__resample_simd = levels[l].level;
                for (int i = 0; i < per_round; i++) {
                    double t0 = now_us();
                    if (tp_resample(&j, &s) < 0)
                        return 1;
                    double t = now_us() - t0;
                    best[l] = t < best[l] ? t : best[l];
                }
                if (memcmp(dst, ref, OUT * OUT * 3)) {
                    fprintf(stderr, "%s and C differ for %dx%d\n", levels[l].name, w, h);
                    return 1;
                }
            }
        printf("%4dx%-4d", w, h);
        for (int l = 0; l < NL; l++)
            printf("  %s %6.1f (%.2f)", levels[l].name, best[l], best[2] / best[l]);
        printf("\n");
        free(src);
    }
    tp__resample_simd = -1;
    tp_resample_scratch_free(&s);
    free(ref), free(dst);
    return 0;
}
