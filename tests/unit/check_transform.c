/* Unit tests of the transforms (codecs/transform.h): torchvision's crop geometry, the
 * per-sample generator, the resampler's invariants, and that decode + transform gives
 * the same bytes whatever thread runs it. Pixel-level agreement with Pillow is checked
 * by tests/python/test_transform_pil.py. */
#include "testutil.h"

#include "jpeg_fixtures.h"
#include "transform.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

START_TEST(test_rng)
{
    tp_rng a, b, c;
    tp_rng_seed(&a, 1, 2, 3);
    tp_rng_seed(&b, 1, 2, 3);
    tp_rng_seed(&c, 1, 2, 4);
    uint64_t x = tp_rng_next(&a);
    ck_assert_uint_eq(x, tp_rng_next(&b));
    ck_assert_uint_ne(x, tp_rng_next(&c));
    int hist[6] = {0};
    for (int i = 0; i < 60000; i++) {
        int64_t v = tp_rng_int(&a, 0, 5);
        ck_assert(v >= 0 && v <= 5);
        hist[v]++;
        double u = tp_rng_uniform(&a, 0.08, 1.0);
        ck_assert(u >= 0.08 && u < 1.0);
    }
    for (int i = 0; i < 6; i++)
        ck_assert_int_lt(abs(hist[i] - 10000), 500);
}
END_TEST

START_TEST(test_rrc_geometry)
{
    tp_rng r;
    tp_rng_seed(&r, 7, 0, 0);
    int sizes[][2] = {{500, 375}, {375, 500}, {224, 224}, {1, 1}, {4000, 3000}};
    for (size_t s = 0; s < TP_ARRAY_LEN(sizes); s++)
        for (int i = 0; i < 2000; i++) {
            int W = sizes[s][0], H = sizes[s][1];
            tp_crop c;
            tp_rrc_params(W, H, 0.08, 1.0, 3.0 / 4, 4.0 / 3, &r, &c);
            ck_assert(c.x >= 0 && c.y >= 0 && c.width >= 1 && c.height >= 1);
            ck_assert(c.x + c.width <= W && c.y + c.height <= H);
            if (W >= 224) { /* rounding aside, torchvision's area and ratio bounds hold */
                double area = (double)c.width * c.height / ((double)W * H);
                double ratio = (double)c.width / c.height;
                ck_assert(area > 0.07 && area <= 1.0);
                ck_assert(ratio > 0.70 && ratio < 1.42);
            }
        }
    /* Too elongated for any try: the central crop clamped to the ratio range. */
    tp_crop c;
    tp_rrc_params(1000, 10, 0.08, 1.0, 3.0 / 4, 4.0 / 3, &r, &c);
    ck_assert_int_eq(c.height, 10);
    ck_assert_int_eq(c.width, 13); /* round(10 * 4/3) */
    ck_assert_int_eq(c.x, (1000 - 13) / 2);
    ck_assert_int_eq(c.y, 0);
}
END_TEST

/* Resize(256) + CenterCrop(224) of a 500x375 image, by torchvision's arithmetic:
 * resized to 341x256 (int(256 * 500 / 375)), top = round(16.0) = 16,
 * left = round(58.5) = 58 (half to even). */
START_TEST(test_center_box)
{
    double box[4];
    tp_center_box(500, 375, 256, 224, box);
    ck_assert_double_eq_tol(box[0], 58 * 500.0 / 341, 1e-9);
    ck_assert_double_eq_tol(box[1], 16 * 375.0 / 256, 1e-9);
    ck_assert_double_eq_tol(box[2], 282 * 500.0 / 341, 1e-9);
    ck_assert_double_eq_tol(box[3], 240 * 375.0 / 256, 1e-9);
    tp_center_box(375, 500, 256, 224, box); /* portrait: 256x341 */
    ck_assert_double_eq_tol(box[0], 16 * 375.0 / 256, 1e-9);
    ck_assert_double_eq_tol(box[1], 58 * 500.0 / 341, 1e-9);
}
END_TEST

START_TEST(test_resample_invariants)
{
    enum { W = 64, H = 48 };
    unsigned char src[W * H * 3], dst[W * H * 3];
    tp_test_fill(src, sizeof(src), 3, 3);
    tp_resample_scratch s = {0};
    tp_resample_job j = {.src = src, .src_w = W, .src_h = H, .src_stride = W * 3,
                         .box_x1 = W, .box_y1 = H, .win_x1 = W, .win_y1 = H, .dst = dst,
                         .dst_w = W, .dst_h = H, .dst_stride = W * 3, .exact = _i == 1};
    ck_assert_int_eq(tp_resample(&j, &s), 0); /* same size: identity */
    ck_assert_int_eq(memcmp(src, dst, sizeof(src)), 0);
    memset(src, 77, sizeof(src));
    j.dst_w = 13, j.dst_h = 29, j.dst_stride = 13 * 3; /* any resize of a flat image is flat */
    ck_assert_int_eq(tp_resample(&j, &s), 0);
    for (int i = 0; i < 13 * 29 * 3; i++)
        ck_assert_uint_eq(dst[i], 77);
    j.dst_w = 200, j.dst_h = 150, j.dst_stride = 200 * 3;
    unsigned char *big = malloc(200 * 150 * 3);
    j.dst = big;
    ck_assert_int_eq(tp_resample(&j, &s), 0);
    for (int i = 0; i < 200 * 150 * 3; i++)
        ck_assert_uint_eq(big[i], 77);
    free(big);
    tp_resample_scratch_free(&s);
}
END_TEST

/* The 14-bit weight tables tp_resample left in the scratch: bounds and pairs per output
 * pixel of both axes, copied (n[axis] ints and int16 lanes). */
typedef struct tables {
    int *bounds[2];
    int16_t *k[2];
    size_t nb[2], nk[2];
} tables;

static void tables_take(tables *t, const tp_resample_scratch *s, const tp_resample_job *j)
{
    double box[2][2] = {{j->box_x0, j->box_x1}, {j->box_y0, j->box_y1}};
    int out[2] = {j->dst_w, j->dst_h};
    for (int a = 0; a < 2; a++) {
        double scale = (box[a][1] - box[a][0]) / out[a];
        int ksize = (int)ceil(scale < 1.0 ? 1.0 : scale) * 2 + 1;
        t->nb[a] = (size_t)out[a] * 4;
        t->nk[a] = (size_t)out[a] * (size_t)((ksize + 1) / 2) * 8;
        t->bounds[a] = malloc(t->nb[a] * sizeof(int));
        t->k[a] = malloc(t->nk[a] * sizeof(int16_t));
        ck_assert(t->bounds[a] && t->k[a]);
        memcpy(t->bounds[a], s->fbounds[a], t->nb[a] * sizeof(int));
        memcpy(t->k[a], s->fk[a], t->nk[a] * sizeof(int16_t));
    }
}

static bool tables_same(const tables *t, const tp_resample_scratch *s)
{
    bool same = true;
    for (int a = 0; a < 2; a++)
        same &= !memcmp(t->bounds[a], s->fbounds[a], t->nb[a] * sizeof(int)) &&
                !memcmp(t->k[a], s->fk[a], t->nk[a] * sizeof(int16_t));
    return same;
}

static void tables_free(tables *t)
{
    for (int a = 0; a < 2; a++)
        free(t->bounds[a]), free(t->k[a]);
}

typedef struct rows {
    unsigned char *buf;
    size_t row;
    int seen;
} rows;

static void collect_row(void *ctx, int y, const unsigned char *row)
{
    rows *r = ctx;
    memcpy(r->buf + (size_t)y * r->row, row, r->row);
    r->seen++;
}

/* The default path gives the same bytes with and without SIMD, stays within one level of
 * Pillow's 22-bit arithmetic (rounding the weights to 14 bits moves fewer than 1% of the
 * values, all by one), and mirroring reverses each output row. Random noise, boxes,
 * windows and sizes; the seed is fixed, so the figures are too. */
START_TEST(test_resample_paths)
{
    enum { MAXW = 300, MAXD = 260 };
    unsigned char *e = malloc(MAXD * MAXD * 3);
    unsigned char *a = malloc(MAXD * MAXD * 3), *b = malloc(MAXD * MAXD * 3);
    tp_resample_scratch s = {0};
    tp_rng r;
    tp_rng_seed(&r, 7, 0, 0);
    uint64_t differ = 0, total = 0;
    for (int iter = 0; iter < 300; iter++) {
        int w = (int)tp_rng_int(&r, 1, MAXW), h = (int)tp_rng_int(&r, 1, MAXW);
        unsigned char *src = malloc((size_t)w * h * 3); /* exact size: ASan sees overreads */
        tp_test_fill(src, (size_t)w * h * 3, (uint64_t)iter, 11);
        tp_resample_job j = {.src = src, .src_w = w, .src_h = h, .src_stride = (size_t)w * 3,
                             .dst_w = (int)tp_rng_int(&r, 1, MAXD),
                             .dst_h = (int)tp_rng_int(&r, 1, MAXD)};
        j.dst_stride = (size_t)j.dst_w * 3;
        j.box_x0 = tp_rng_uniform(&r, 0, w * 0.5), j.box_x1 = tp_rng_uniform(&r, j.box_x0 + 0.5, w);
        j.box_y0 = tp_rng_uniform(&r, 0, h * 0.5), j.box_y1 = tp_rng_uniform(&r, j.box_y0 + 0.5, h);
        bool confined = tp_rng_int(&r, 0, 1);
        j.win_x0 = confined ? (int)floor(j.box_x0) : 0;
        j.win_y0 = confined ? (int)floor(j.box_y0) : 0;
        j.win_x1 = confined ? TP_MAX((int)ceil(j.box_x1), j.win_x0 + 1) : w;
        j.win_y1 = confined ? TP_MAX((int)ceil(j.box_y1), j.win_y0 + 1) : h;
        j.win_x1 = TP_MIN(j.win_x1, w), j.win_y1 = TP_MIN(j.win_y1, h);
        size_t n = (size_t)j.dst_w * j.dst_h * 3;
        j.exact = true, j.dst = e;
        ck_assert_int_eq(tp_resample(&j, &s), 0);
        j.exact = false, j.dst = a, tp__resample_simd = -1;
        ck_assert_int_eq(tp_resample(&j, &s), 0);
        j.dst = b, tp__resample_simd = 0;
        ck_assert_int_eq(tp_resample(&j, &s), 0);
        ck_assert_msg(!memcmp(a, b, n), "SIMD and C differ: %dx%d -> %dx%d", w, h, j.dst_w,
                      j.dst_h);
        tables plain;
        tables_take(&plain, &s, &j); /* plain C's weight tables */
#if defined(__x86_64__) && defined(__GNUC__)
        /* the SSSE3/SSE2 passes, the AVX2 ones and AVX-512 without VNNI, where the CPU
         * has better (the default above takes VNNI where there is one) */
        static const char *const names[] = {"", "SSSE3", "AVX2", "AVX-512 without VNNI"};
        for (int level = 1; level <= 3; level++) {
            if (level == 1   ? !__builtin_cpu_supports("ssse3")
                : level == 2 ? !__builtin_cpu_supports("avx2")
                             : !__builtin_cpu_supports("avx512bw"))
                continue;
            tp__resample_simd = level;
            ck_assert_int_eq(tp_resample(&j, &s), 0);
            ck_assert_msg(!memcmp(a, b, n), "%s and C differ: %dx%d -> %dx%d", names[level], w,
                          h, j.dst_w, j.dst_h);
            /* the weights themselves (AVX-512 computes them eight pixels at a time) */
            ck_assert_msg(tables_same(&plain, &s), "%s's weight tables differ from C's: %dx%d "
                          "-> %dx%d", names[level], w, h, j.dst_w, j.dst_h);
        }
        tp__resample_simd = -1;
        ck_assert_int_eq(tp_resample(&j, &s), 0);
        ck_assert_msg(tables_same(&plain, &s), "the default's weight tables differ from C's: "
                      "%dx%d -> %dx%d", w, h, j.dst_w, j.dst_h);
#endif
        /* row by row to a callback (a converting output's path): the same rows */
        for (int level = -1; level <= 3; level++) {
            rows got = {.buf = b, .row = (size_t)j.dst_w * 3};
            tp__resample_simd = level;
            memset(b, 0, n);
            tp_resample_job rj = j;
            rj.dst = NULL, rj.row_out = collect_row, rj.row_ctx = &got;
            ck_assert_int_eq(tp_resample(&rj, &s), 0);
            ck_assert_int_eq(got.seen, j.dst_h);
            ck_assert_msg(!memcmp(a, b, n), "rows to a callback differ (level %d): %dx%d -> %dx%d",
                          level, w, h, j.dst_w, j.dst_h);
        }
        tp__resample_simd = -1;
        int worst = 0;
        for (size_t i = 0; i < n; i++) {
            int d = abs((int)a[i] - (int)e[i]);
            worst = TP_MAX(worst, d);
            differ += d != 0;
        }
        ck_assert_msg(worst <= 1, "%d levels from Pillow's arithmetic", worst);
        total += n;
        /* mirrored: on the default path (and the AVX2 pass for the 14-bit rows) */
        for (int level = -1; level <= 2; level += 3) {
            tp__resample_simd = level;
            j.mirror = true, j.dst = b, j.exact = level < 0 && (iter & 1);
            ck_assert_int_eq(tp_resample(&j, &s), 0);
            const unsigned char *ref = j.exact ? e : a;
            bool mirrored = true;
            for (int y = 0; y < j.dst_h; y++)
                for (int x = 0; x < j.dst_w; x++)
                    mirrored &= !memcmp(b + ((size_t)y * j.dst_w + x) * 3,
                                        ref + ((size_t)y * j.dst_w + j.dst_w - 1 - x) * 3, 3);
            ck_assert_msg(mirrored, "mirrored output is not the reversed rows (level %d)", level);
        }
        tp__resample_simd = -1;
        tables_free(&plain);
        free(src);
    }
    ck_assert_msg(differ * 100 < total, "%llu of %llu values differ from Pillow's arithmetic",
                  (unsigned long long)differ, (unsigned long long)total);
    tp_resample_scratch_free(&s);
    free(e), free(a), free(b);
}
END_TEST

typedef struct job {
    const unsigned char *jpeg;
    unsigned long len;
    const tp_transform *t;
    unsigned first, step;
    unsigned char *out; /* 16 samples x size^2 x 3 */
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    tp_transformer *tr;
    ck_assert_int_eq(tp_transformer_create(&tr), 0);
    size_t one = (size_t)j->t->size * j->t->size * 3;
    for (unsigned id = j->first; id < 16; id += j->step) {
        tp_error err;
        ck_assert_int_eq(tp_transform_image(tr, j->jpeg, j->len, j->t, 42, 1, id,
                                            j->out + id * one, &err), 0);
    }
    tp_transformer_destroy(tr);
    return NULL;
}

/* Output depends only on (seed, epoch, id): two threads interleaving samples produce the
 * bytes one thread does; different ids give different crops. */
START_TEST(test_threads_same_output)
{
    tp_transform t;
    ck_assert_int_eq(tp_transform_parse(_i ? "center224" : "rrc224", &t, NULL), 0);
    unsigned char *jpeg;
    unsigned long len;
    fixture_jpeg(FIX_420, 500, 375, &jpeg, &len, NULL);
    size_t all = 16 * 224 * 224 * 3;
    unsigned char *one = malloc(all), *two = malloc(all);
    job a = {jpeg, len, &t, 0, 1, one};
    run_job(&a);
    job b = {jpeg, len, &t, 0, 2, two}, c = {jpeg, len, &t, 1, 2, two};
    pthread_t tb, tc;
    pthread_create(&tb, NULL, run_job, &b);
    pthread_create(&tc, NULL, run_job, &c);
    pthread_join(tb, NULL);
    pthread_join(tc, NULL);
    ck_assert_int_eq(memcmp(one, two, all), 0);
    size_t img = 224 * 224 * 3;
    if (!_i)
        ck_assert_int_ne(memcmp(one, one + img, img), 0);
    else
        ck_assert_int_eq(memcmp(one, one + img, img), 0); /* center crop is not random */
    free(one);
    free(two);
    free(jpeg);
}
END_TEST

/* Padding shows the op's fill, on the direct path, through the colour canvas and through
 * the float conversion; the image's part is untouched by it. */
START_TEST(test_padding_fill)
{
    static const char *const pipes[] = {
        "resize(40:48) | random_crop(52:58, padding=5:6, fill=7)",
        "resize(40:48) | center_crop(52:58, fill=7)",
        "resize(40:48) | random_crop(52:58, padding=5:6, fill=7) | color_jitter(brightness=1:1)",
        "resize(40:48) | random_crop(52:58, padding=5:6, fill=7) | to(float32, hwc)"};
    unsigned char *jpeg;
    unsigned long len;
    fixture_jpeg(FIX_420, 120, 100, &jpeg, &len, NULL);
    tp_transformer *tr;
    ck_assert_int_eq(tp_transformer_create(&tr), 0);
    for (int k = 0; k < 4; k++) {
        tp_transform t;
        ck_assert_int_eq(tp_transform_parse(pipes[k], &t, NULL), 0);
        ck_assert_int_eq(t.out_h, 52);
        ck_assert_int_eq(t.out_w, 58);
        unsigned char *out = malloc(t.out_bytes);
        tp_error err;
        ck_assert_int_eq(tp_transform_image(tr, jpeg, len, &t, 1, 0, 0, out, &err), 0);
        int inside = 0;
        for (int y = 0; y < 52; y++)
            for (int x = 0; x < 58; x++) {
                bool pad = y < 6 || y >= 46 || x < 5 || x >= 53;
                size_t at = ((size_t)y * 58 + x) * 3;
                float v = k == 3 ? ((float *)out)[at] : out[at];
                float want = k == 3 ? 7.f / 255.f : 7.f;
                if (pad)
                    ck_assert_msg(v == want, "%s: (%d, %d) is %g, not the fill", pipes[k], x,
                                  y, v);
                else
                    inside += v != want;
            }
        ck_assert_int_gt(inside, 40 * 48 / 2); /* the image shows inside */
        free(out);
    }
    tp_transformer_destroy(tr);
    free(jpeg);
}
END_TEST

START_TEST(test_parse)
{
    tp_transform t;
    ck_assert_int_eq(tp_transform_parse("rrc224", &t, NULL), 0);
    ck_assert_int_eq(t.kind, TP_TRANSFORM_RRC);
    ck_assert_int_eq(t.size, 224);
    ck_assert_int_eq(tp_transform_parse("center224", &t, NULL), 0);
    ck_assert_int_eq(t.kind, TP_TRANSFORM_CENTER);
    ck_assert_int_eq(t.p.ops[0].size[0], 256);
    ck_assert_int_eq(tp_transform_parse("none", &t, NULL), 0);
    ck_assert_int_eq(tp_transform_parse("rrc", &t, NULL), TP_EUSAGE);
    ck_assert_int_eq(tp_transform_parse("rrc224x", &t, NULL), TP_EUSAGE);
    ck_assert_int_eq(tp_transform_parse("blur5", &t, NULL), TP_EUSAGE);
}
END_TEST

START_TEST(test_half)
{
    static const struct { float f; uint16_t h; } known[] = {
        {0.0f, 0x0000}, {-0.0f, 0x8000}, {1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff},
        {65520.0f, 0x7c00}, {0x1p-24f, 0x0001}, {0x1p-25f, 0x0000}, {0x1.8p-25f, 0x0001},
        {0x1p-14f, 0x0400}, {1.0f + 0x1p-11f, 0x3c00}, {1.0f + 0x1.8p-11f, 0x3c01}, {1.0f + 0x1.8p-10f, 0x3c02},
        {-2.1179039f, 0xc03c}};
    for (size_t i = 0; i < TP_ARRAY_LEN(known); i++)
        ck_assert_msg(tp_float_to_half(known[i].f) == known[i].h, "%a -> %04x, want %04x",
                      (double)known[i].f, tp_float_to_half(known[i].f), known[i].h);
    ck_assert_uint_eq(tp_float_to_half(INFINITY), 0x7c00);
    ck_assert_uint_eq(tp_float_to_half(NAN) & 0x7c00, 0x7c00);
    ck_assert_uint_ne(tp_float_to_half(NAN) & 0x3ff, 0);
#ifdef __FLT16_MAX__
    /* The compiler's own conversion (round to nearest even) as an independent reference. */
    uint64_t x = 1;
    for (int i = 0; i < 1000000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint32_t bits = (uint32_t)x;
        float f;
        memcpy(&f, &bits, 4);
        if (isnan(f))
            continue;
        _Float16 h = (_Float16)f;
        uint16_t want;
        memcpy(&want, &h, 2);
        ck_assert_msg(tp_float_to_half(f) == want, "%a", (double)f);
    }
#endif
}
END_TEST

START_TEST(test_normalize)
{
    unsigned char hwc[2 * 3 * 3];
    for (int i = 0; i < 18; i++)
        hwc[i] = (unsigned char)(i * 15);
    float f32[18];
    uint16_t f16[18];
    ck_assert_int_eq(tp_normalize_chw(hwc, 2, 3, tp_imagenet_mean, tp_imagenet_std,
                                      TP_DTYPE_FLOAT32, f32), 0);
    ck_assert_int_eq(tp_normalize_chw(hwc, 2, 3, tp_imagenet_mean, tp_imagenet_std,
                                      TP_DTYPE_FLOAT16, f16), 0);
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 6; p++) { /* CHW: plane c, pixel p */
            float want = (hwc[p * 3 + c] / 255.0f - tp_imagenet_mean[c]) / tp_imagenet_std[c];
            ck_assert_float_eq_tol(f32[c * 6 + p], want, 1e-6);
            ck_assert_uint_eq(f16[c * 6 + p], tp_float_to_half(want));
        }
    ck_assert_int_eq(tp_normalize_chw(hwc, 2, 3, tp_imagenet_mean, tp_imagenet_std,
                                      TP_DTYPE_UINT8, f32), TP_EUSAGE);
}
END_TEST

static Suite *transform_suite(void)
{
    Suite *s = suite_create("transform");
    TCase *tc = tcase_create("geometry");
    tcase_add_test(tc, test_rng);
    tcase_add_test(tc, test_rrc_geometry);
    tcase_add_test(tc, test_center_box);
    tcase_add_test(tc, test_parse);
    tcase_add_test(tc, test_padding_fill);
    suite_add_tcase(s, tc);
    tc = tcase_create("pixels");
    tcase_add_loop_test(tc, test_resample_invariants, 0, 2);
    tcase_add_test(tc, test_resample_paths);
    tcase_add_loop_test(tc, test_threads_same_output, 0, 2);
    tcase_add_test(tc, test_half);
    tcase_add_test(tc, test_normalize);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tp_test_run(transform_suite()); }
