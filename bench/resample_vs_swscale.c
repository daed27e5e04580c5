/* The resampler against libswscale's bilinear RGB24 scaler on the same buffers, for the
 * sizes RandomResizedCrop produces after DCT scaling (the region is 1-2x the output).
 * Built and run by bench/resample_vs_swscale.sh; prints microseconds per 224x224 image for
 * the default path (14-bit weights, SIMD), the Pillow-exact path and swscale. */
#include "transform.h"

#include <libswscale/swscale.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void run(int sw, int sh, int iters)
{
    enum { D = 224 };
    unsigned char *src = malloc((size_t)sw * sh * 3), *dst = malloc(D * D * 3);
    for (size_t i = 0; i < (size_t)sw * sh * 3; i++)
        src[i] = (unsigned char)(i * 7 + i / 977);
    tp_resample_scratch s = {0};
    tp_resample_job j = {.src = src, .src_w = sw, .src_h = sh, .src_stride = (size_t)sw * 3,
                         .box_x1 = sw, .box_y1 = sh, .win_x1 = sw, .win_y1 = sh, .dst = dst,
                         .dst_w = D, .dst_h = D, .dst_stride = D * 3};
    double t0 = now();
    for (int i = 0; i < iters; i++)
        tp_resample(&j, &s);
    double ours = (now() - t0) / iters;
    j.exact = true;
    t0 = now();
    for (int i = 0; i < iters; i++)
        tp_resample(&j, &s);
    double exact = (now() - t0) / iters;
    struct SwsContext *c = sws_getContext(sw, sh, AV_PIX_FMT_RGB24, D, D, AV_PIX_FMT_RGB24,
                                          SWS_BILINEAR, NULL, NULL, NULL);
    const uint8_t *sp[1] = {src};
    int ss[1] = {sw * 3}, ds[1] = {D * 3};
    uint8_t *dp[1] = {dst};
    t0 = now();
    for (int i = 0; i < iters; i++)
        sws_scale(c, sp, ss, 0, sh, dp, ds);
    double sws = (now() - t0) / iters;
    printf("%4dx%-4d -> 224x224   ours %7.1f us   ours exact %7.1f us   swscale %7.1f us   "
           "swscale/ours %.2f   swscale/exact %.2f\n", sw, sh, ours * 1e6, exact * 1e6,
           sws * 1e6, sws / ours, sws / exact);
    sws_freeContext(c);
    tp_resample_scratch_free(&s);
    free(src);
    free(dst);
}

int main(void)
{
    static const int sizes[][2] = {{230, 230}, {300, 300}, {448, 336}, {336, 448}, {120, 90}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        run(sizes[i][0], sizes[i][1], 2000);
    return 0;
}
