/* Unit tests of the codecs module: JPEG inspection (limits, truncation, garbage) and
 * decoding, zstd round trips and hostile frames. */
#include "testutil.h"

#include "codecs.h"
#include "jpeg_fixtures.h"

#include <spng.h>
#include <stdio.h>
#include <stdlib.h>
#include <turbojpeg.h>

static unsigned char *encode(int w, int h, int quality, unsigned long *len)
{
    unsigned char *rgb = malloc((size_t)w * h * 3), *jpeg = NULL;
    for (int i = 0; i < w * h * 3; i++)
        rgb[i] = (unsigned char)(i * 7 + i / (w * 3));
    tjhandle tj = tjInitCompress();
    ck_assert_int_eq(tjCompress2(tj, rgb, w, 0, h, TJPF_RGB, &jpeg, len, TJSAMP_420, quality,
                                 0), 0);
    tjDestroy(tj);
    free(rgb);
    return jpeg;
}

START_TEST(test_inspect_ok)
{
    unsigned long len;
    unsigned char *jpeg = encode(64, 48, 90, &len);
    tp_jpeg_info info;
    tp_error err = {0};
    ck_assert_int_eq(tp_jpeg_inspect(jpeg, len, 1u << 20, &info, &err), 0);
    ck_assert_int_eq(info.width, 64);
    ck_assert_int_eq(info.height, 48);
    tp_jpeg_decoder *d;
    ck_assert_int_eq(tp_jpeg_decoder_create(&d), 0);
    tp_image img = {0};
    tp_jpeg_request whole = {0};
    ck_assert_int_eq(tp_jpeg_decode(d, jpeg, len, &whole, &img, &err), 0);
    free(img.pixels);
    tp_jpeg_decoder_destroy(d);
    ck_assert_int_eq(tp_jpeg_inspect(jpeg, len, 64 * 48 - 1, &info, &err), TP_ETOOBIG);
    tjFree(jpeg);
}
END_TEST

START_TEST(test_inspect_bad)
{
    unsigned long len;
    unsigned char *jpeg = encode(64, 48, 90, &len);
    tp_jpeg_info info;
    tp_error err = {0};
    ck_assert_int_eq(tp_jpeg_inspect(jpeg, len / 2, 1u << 20, &info, &err), TP_EBADIMAGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "truncated"));
    ck_assert_int_eq(tp_jpeg_inspect(jpeg, 3, 1u << 20, &info, &err), TP_EBADIMAGE);
    ck_assert_int_eq(tp_jpeg_inspect("GIF89a....", 10, 1u << 20, &info, &err), TP_EBADIMAGE);
    unsigned char garbage[600];
    tp_test_fill(garbage, sizeof(garbage), 1, 2);
    garbage[0] = 0xFF, garbage[1] = 0xD8, garbage[2] = 0xFF;
    ck_assert_int_eq(tp_jpeg_inspect(garbage, sizeof(garbage), 1u << 20, &info, &err),
                     TP_EBADIMAGE);
    /* A cut in the entropy-coded data that leaves the headers intact fails to decode. */
    unsigned char *cut = malloc(len);
    memcpy(cut, jpeg, len);
    memset(cut + len / 2, 0, len / 2 - 2);
    ck_assert_int_eq(tp_jpeg_inspect(cut, len, 1u << 20, &info, &err), 0);
    tp_jpeg_decoder *d;
    ck_assert_int_eq(tp_jpeg_decoder_create(&d), 0);
    tp_image img = {0};
    tp_jpeg_request whole = {0};
    ck_assert_int_eq(tp_jpeg_decode(d, cut, len, &whole, &img, &err), TP_EBADIMAGE);
    free(img.pixels);
    tp_jpeg_decoder_destroy(d);
    free(cut);
    tjFree(jpeg);
}
END_TEST

START_TEST(test_zstd)
{
    unsigned char src[10000], back[10000];
    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (unsigned char)(i % 13);
    unsigned char *z;
    int64_t n = tp_zstd_compress(src, sizeof(src), 3, &z);
    ck_assert_int_gt(n, 0);
    ck_assert_int_lt(n, 1000);
    tp_error err = {0};
    ck_assert_int_eq(tp_zstd_decompress(z, (size_t)n, back, sizeof(back), &err), 0);
    ck_assert_int_eq(memcmp(src, back, sizeof(src)), 0);
    /* A frame that decompresses to more than the record claims is refused. */
    ck_assert_int_eq(tp_zstd_decompress(z, (size_t)n, back, sizeof(back) - 1, &err),
                     TP_ECORRUPT);
    z[n / 2] ^= 0x55;
    ck_assert_int_eq(tp_zstd_decompress(z, (size_t)n, back, sizeof(back), &err), TP_ECORRUPT);
    free(z);
}
END_TEST

/* ---------------------------------------------------------------- decoder */

#define FW 333
#define FH 250

static unsigned char *tj_decode(const unsigned char *jpeg, unsigned long len, int w, int h)
{
    unsigned char *rgb = malloc((size_t)w * h * 3);
    tjhandle tj = tjInitDecompress();
    ck_assert_int_eq(tjDecompress2(tj, jpeg, len, rgb, w, 0, h, TJPF_RGB, 0), 0);
    tjDestroy(tj);
    return rgb;
}

static void decode_ok(tp_jpeg_decoder *d, const unsigned char *jpeg, unsigned long len,
                      const tp_jpeg_request *rq, tp_image *img)
{
    tp_error err = {0};
    ck_assert_msg(tp_jpeg_decode(d, jpeg, len, rq, img, &err) == 0, "%s", err.msg);
}

/* Whole-image decodes are bit-exact with libjpeg-turbo's own (TurboJPEG, same DCT). */
START_TEST(test_full_exact)
{
    if (_i == FIX_CMYK)
        return; /* TurboJPEG has no CMYK -> RGB; see test_cmyk */
    unsigned char *jpeg;
    unsigned long len;
    fixture_jpeg(_i, FW, FH, &jpeg, &len, NULL);
    tp_jpeg_decoder *d;
    ck_assert_int_eq(tp_jpeg_decoder_create(&d), 0);
    tp_image img = {0};
    tp_jpeg_request rq = {0};
    decode_ok(d, jpeg, len, &rq, &img);
    ck_assert_int_eq(img.width, FW);
    ck_assert_int_eq(img.height, FH);
    ck_assert_int_eq(img.scale_num, 8);
    unsigned char *want = tj_decode(jpeg, len, FW, FH);
    ck_assert_int_eq(memcmp(img.pixels, want, (size_t)FW * FH * 3), 0);
    decode_ok(d, jpeg, len, &rq, &img); /* the decoder is reusable */
    ck_assert_int_eq(memcmp(img.pixels, want, (size_t)FW * FH * 3), 0);
    free(want);
    free(img.pixels);
    tp_jpeg_decoder_destroy(d);
    free(jpeg);
}
END_TEST

static unsigned char *read_ppm(const char *path, int *w, int *h)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    int maxval;
    unsigned char *px = NULL;
    if (fscanf(f, "P6 %d %d %d", w, h, &maxval) == 3 && fgetc(f) != EOF) {
        px = malloc((size_t)*w * *h * 3);
        if (fread(px, 1, (size_t)*w * *h * 3, f) != (size_t)*w * *h * 3) {
            free(px);
            px = NULL;
        }
    }
    fclose(f);
    return px;
}

/* Scaled decodes equal `djpeg -scale M/8` (the library's own tool, same defaults). */
START_TEST(test_scaled_djpeg)
{
    int m = _i + 1;
    unsigned char *jpeg;
    unsigned long len;
    fixture_jpeg(FIX_420, FW, FH, &jpeg, &len, NULL);
    char *dir = tp_test_mkdtemp(), *in = tp_test_path(dir, "in.jpg"),
         *out = tp_test_path(dir, "out.ppm"), cmd[8192];
    FILE *f = fopen(in, "wb");
    fwrite(jpeg, 1, len, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "djpeg -scale %d/8 -ppm -outfile %s %s", m, out, in);
    if (system(cmd) != 0) {
        fprintf(stderr, "check_codecs: djpeg unavailable, scale %d/8 not compared\n", m);
    } else {
        int w, h;
        unsigned char *want = read_ppm(out, &w, &h);
        ck_assert_ptr_nonnull(want);
        tp_jpeg_decoder *d;
        ck_assert_int_eq(tp_jpeg_decoder_create(&d), 0);
        tp_image img = {0};
        tp_jpeg_request rq = {.out_width = w, .out_height = h};
        decode_ok(d, jpeg, len, &rq, &img);
        ck_assert_int_eq(img.scale_num, m);
        ck_assert_int_eq(img.width, w);
        ck_assert_int_eq(img.height, h);
        ck_assert_int_eq(memcmp(img.pixels, want, (size_t)w * h * 3), 0);
        free(want);
        free(img.pixels);
        tp_jpeg_decoder_destroy(d);
    }
    free(in);
    free(out);
    tp_test_rmdir(dir);
    free(jpeg);
}
END_TEST

/* A region decode equals the same region of a full decode at the same scale. */
START_TEST(test_region)
{
    static const int kinds[] = {FIX_420, FIX_422, FIX_444, FIX_PROGRESSIVE, FIX_RESTART};
    int kind = kinds[_i % 5], scale_out = _i < 5 ? 0 : 2; /* full scale, then about 1/2 */
    unsigned char *jpeg;
    unsigned long len;
    fixture_jpeg(kind, FW, FH, &jpeg, &len, NULL);
    tp_jpeg_decoder *d;
    ck_assert_int_eq(tp_jpeg_decoder_create(&d), 0);
    tp_image full = {0}, part = {0};
    uint64_t x = 77 + (uint64_t)_i;
    for (int t = 0; t < 40; t++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int rw = 1 + (int)((x >> 33) % FW), rh = 1 + (int)((x >> 13) % FH);
        int rx = (int)((x >> 45) % (uint64_t)(FW - rw + 1));
        int ry = (int)((x >> 5) % (uint64_t)(FH - rh + 1));
        int ow = scale_out ? (rw + 1) / scale_out : 0, oh = scale_out ? (rh + 1) / scale_out : 0;
        tp_jpeg_request rq = {.x = rx, .y = ry, .width = rw, .height = rh, .out_width = ow,
                              .out_height = oh};
        decode_ok(d, jpeg, len, &rq, &part);
        tp_jpeg_request whole = {.out_width = part.scale_num * FW / 8,
                                 .out_height = part.scale_num * FH / 8};
        decode_ok(d, jpeg, len, &whole, &full);
        ck_assert_int_eq(full.scale_num, part.scale_num);
        int m = part.scale_num;
        int sx0 = rx * m / 8, sy0 = ry * m / 8;
        int sx1 = TP_MIN((rx + rw) * m / 8 + 1, full.width), sy1 = TP_MIN((ry + rh) * m / 8 + 1, full.height);
        ck_assert_int_le(part.x0, sx0);
        ck_assert_int_le(part.y0, sy0);
        ck_assert_int_ge(part.x0 + part.width, sx1 - 1);
        for (int y = sy0; y < TP_MIN(sy1, part.y0 + part.height); y++)
            for (int xx = sx0; xx < TP_MIN(sx1, part.x0 + part.width); xx++)
                ck_assert_msg(!memcmp(part.pixels + ((size_t)(y - part.y0) * part.width +
                                                     (size_t)(xx - part.x0)) * 3,
                                      full.pixels + ((size_t)y * full.width + (size_t)xx) * 3, 3),
                              "kind %d region %dx%d+%d+%d scale %d/8: pixel (%d,%d) differs",
                              kind, rw, rh, rx, ry, m, xx, y);
    }
    free(full.pixels);
    free(part.pixels);
    tp_jpeg_decoder_destroy(d);
    free(jpeg);
}
END_TEST

START_TEST(test_cmyk)
{
    unsigned char *jpeg, *cmyk;
    unsigned long len;
    fixture_jpeg(FIX_CMYK, 64, 40, &jpeg, &len, &cmyk);
    tp_jpeg_decoder *d;
    ck_assert_int_eq(tp_jpeg_decoder_create(&d), 0);
    tp_image img = {0};
    tp_jpeg_request rq = {0};
    decode_ok(d, jpeg, len, &rq, &img);
    ck_assert_int_eq(img.width, 64);
    /* An Adobe marker means inverted CMYK: R = C*K/255 of the stored samples. JPEG is
     * lossy, so compare on average. */
    double err = 0;
    for (int i = 0; i < 64 * 40; i++)
        for (int k = 0; k < 3; k++)
            err += abs((int)img.pixels[i * 3 + k] - (int)(cmyk[i * 4 + k] * cmyk[i * 4 + 3] / 255));
    ck_assert_double_lt(err / (64 * 40 * 3), 6.0);
    free(img.pixels);
    free(cmyk);
    tp_jpeg_decoder_destroy(d);
    free(jpeg);
}
END_TEST

START_TEST(test_hostile)
{
    unsigned char *jpeg;
    unsigned long len;
    fixture_jpeg(FIX_420, FW, FH, &jpeg, &len, NULL);
    tp_jpeg_decoder *d;
    ck_assert_int_eq(tp_jpeg_decoder_create(&d), 0);
    tp_image img = {0};
    tp_jpeg_request rq = {0};
    tp_error err = {0};
    ck_assert_int_eq(tp_jpeg_decode(d, jpeg, len * 2 / 3, &rq, &img, &err), TP_EBADIMAGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "JPEG"));
    ck_assert_int_eq(tp_jpeg_decode(d, jpeg, 40, &rq, &img, &err), TP_EBADIMAGE);
    unsigned char junk[4096];
    for (int seed = 0; seed < 50; seed++) {
        tp_test_fill(junk, sizeof(junk), (uint64_t)seed, 5);
        if (seed % 2)
            memcpy(junk, jpeg, 600); /* valid headers, garbage after */
        ck_assert_int_eq(tp_jpeg_decode(d, junk, sizeof(junk), &rq, &img, &err), TP_EBADIMAGE);
    }
    /* Headers claiming 65535 x 65535 (beyond what libjpeg supports) and 65500 x 65500
     * (beyond the pixel limit): refused before any allocation. */
    unsigned char *big = malloc(len);
    memcpy(big, jpeg, len);
    unsigned long sof = 0;
    for (unsigned long i = 0; i + 9 < len && !sof; i++)
        if (big[i] == 0xFF && big[i + 1] == 0xC0)
            sof = i;
    ck_assert_uint_gt(sof, 0);
    big[sof + 5] = big[sof + 6] = big[sof + 7] = big[sof + 8] = 0xFF;
    ck_assert_int_eq(tp_jpeg_decode(d, big, len, &rq, &img, &err), TP_EBADIMAGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "dimension"));
    big[sof + 6] = big[sof + 8] = 0xDC;
    ck_assert_int_eq(tp_jpeg_decode(d, big, len, &rq, &img, &err), TP_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "65500x65500"));
    rq = (tp_jpeg_request){.x = FW - 10, .y = 0, .width = 20, .height = 5};
    ck_assert_int_eq(tp_jpeg_decode(d, jpeg, len, &rq, &img, &err), TP_EUSAGE);
    /* The decoder still works after all that. */
    rq = (tp_jpeg_request){0};
    decode_ok(d, jpeg, len, &rq, &img);
    unsigned char *tiny;
    unsigned long tlen;
    fixture_jpeg(FIX_420, 1, 1, &tiny, &tlen, NULL);
    decode_ok(d, tiny, tlen, &rq, &img);
    ck_assert_int_eq(img.width * img.height, 1);
    free(tiny);
    free(big);
    free(img.pixels);
    tp_jpeg_decoder_destroy(d);
    free(jpeg);
}
END_TEST

/* ---------------------------------------------------------------- PNG */

static unsigned char *encode_png(const unsigned char *px, int w, int h, int color_type,
                                 int channels, size_t *len)
{
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    ck_assert_int_eq(spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1), 0);
    struct spng_ihdr ihdr = {.width = (uint32_t)w, .height = (uint32_t)h, .bit_depth = 8,
                             .color_type = (uint8_t)color_type};
    ck_assert_int_eq(spng_set_ihdr(ctx, &ihdr), 0);
    ck_assert_int_eq(spng_encode_image(ctx, px, (size_t)w * h * channels, SPNG_FMT_PNG,
                                       SPNG_ENCODE_FINALIZE), 0);
    int err;
    unsigned char *png = spng_get_png_buffer(ctx, len, &err);
    ck_assert_ptr_nonnull(png);
    spng_ctx_free(ctx);
    return png;
}

START_TEST(test_png_roundtrip)
{
    enum { W = 37, H = 23 };
    unsigned char rgba[W * H * 4], rgb[W * H * 3];
    tp_test_fill(rgba, sizeof(rgba), 9, 9);
    for (int i = 0; i < W * H; i++)
        memcpy(rgb + i * 3, rgba + i * 4, 3);
    struct { int type, channels; const unsigned char *px; } cases[] = {
        {SPNG_COLOR_TYPE_TRUECOLOR, 3, rgb}, {SPNG_COLOR_TYPE_TRUECOLOR_ALPHA, 4, rgba},
        {SPNG_COLOR_TYPE_GRAYSCALE, 1, rgb}};
    tp_image img = {0};
    tp_error err = {0};
    for (size_t c = 0; c < TP_ARRAY_LEN(cases); c++) {
        size_t len;
        unsigned char *png = encode_png(cases[c].px, W, H, cases[c].type, cases[c].channels, &len);
        ck_assert_msg(tp_png_decode(png, len, 0, &img, &err) == 0, "%s", err.msg);
        ck_assert_int_eq(img.width, W);
        ck_assert_int_eq(img.height, H);
        for (int i = 0; i < W * H; i++)
            for (int k = 0; k < 3; k++) {
                int want = cases[c].channels == 1 ? cases[c].px[i] : cases[c].px[i * cases[c].channels + k];
                ck_assert_int_eq(img.pixels[i * 3 + k], want);
            }
        ck_assert_int_eq(tp_png_decode(png, len, W * H - 1, &img, &err), TP_ETOOBIG);
        ck_assert_int_eq(tp_png_decode(png, len / 2, 0, &img, &err), TP_EBADIMAGE);
        png[len / 2] ^= 0x40; /* the chunk's CRC no longer matches */
        ck_assert_int_eq(tp_png_decode(png, len, 0, &img, &err), TP_EBADIMAGE);
        free(png);
    }
    unsigned char junk[300];
    tp_test_fill(junk, sizeof(junk), 4, 4);
    ck_assert_int_eq(tp_png_decode(junk, sizeof(junk), 0, &img, &err), TP_EBADIMAGE);
    free(img.pixels);
}
END_TEST

/* Small JSON-like records: a trained dictionary must beat plain zstd on them, and only
 * the same dictionary decompresses them. */
START_TEST(test_zstd_dict)
{
    enum { N = 400 };
    char recs[N][160];
    size_t sizes[N], total = 0;
    char *all = malloc(N * 160);
    for (int i = 0; i < N; i++) {
        int n = snprintf(recs[i], sizeof(recs[i]),
                         "{\"id\": %d, \"label\": \"class%04d\", \"caption\": \"a photo of "
                         "item %d on a table\", \"width\": %d, \"height\": %d}",
                         i, i % 37, i * 7919 % 1000, 300 + i % 200, 200 + i % 150);
        sizes[i] = (size_t)n;
        memcpy(all + total, recs[i], sizes[i]);
        total += sizes[i];
    }
    unsigned char dict[4096];
    tp_error err = {0};
    int64_t dlen = tp_zstd_train(all, sizes, N, dict, sizeof(dict), &err);
    ck_assert_msg(dlen > 0, "%s", err.msg);
    tp_zstd *z;
    tp_zstd_dict *d;
    ck_assert_int_eq(tp_zstd_create(&z), 0);
    ck_assert_int_eq(tp_zstd_dict_create(&d, dict, (size_t)dlen, 3, &err), 0);
    size_t plain = 0, with = 0;
    for (int i = 0; i < N; i += 7) {
        unsigned char *a, *b;
        char back[160];
        int64_t na = tp_zstd_compress_with(z, NULL, recs[i], sizes[i], 3, &a);
        int64_t nb = tp_zstd_compress_with(z, d, recs[i], sizes[i], 3, &b);
        ck_assert(na > 0 && nb > 0);
        plain += (size_t)na;
        with += (size_t)nb;
        ck_assert_int_eq(tp_zstd_decompress_with(z, d, b, (size_t)nb, back, sizes[i], &err), 0);
        ck_assert_int_eq(memcmp(back, recs[i], sizes[i]), 0);
        ck_assert_int_eq(tp_zstd_decompress_with(z, NULL, a, (size_t)na, back, sizes[i], &err), 0);
        /* Without its dictionary the frame does not decode. */
        ck_assert_int_eq(tp_zstd_decompress_with(z, NULL, b, (size_t)nb, back, sizes[i], &err),
                         TP_ECORRUPT);
        free(a);
        free(b);
    }
    ck_assert_msg(with * 2 < plain, "dictionary %zu bytes vs plain %zu", with, plain);
    ck_assert_int_eq(tp_zstd_dict_create(&d, "not a dictionary", 16, 3, &err), TP_ECORRUPT);
    tp_zstd_dict_destroy(d);
    tp_zstd_destroy(z);
    free(all);
}
END_TEST

static Suite *codecs_suite(void)
{
    Suite *s = suite_create("codecs");
    TCase *tc = tcase_create("jpeg");
    tcase_add_test(tc, test_inspect_ok);
    tcase_add_test(tc, test_inspect_bad);
    suite_add_tcase(s, tc);
    tc = tcase_create("decoder");
    tcase_add_loop_test(tc, test_full_exact, 0, FIX_COUNT);
    tcase_add_loop_test(tc, test_scaled_djpeg, 0, 8);
    tcase_add_loop_test(tc, test_region, 0, 10);
    tcase_add_test(tc, test_cmyk);
    tcase_add_test(tc, test_hostile);
    suite_add_tcase(s, tc);
    tc = tcase_create("png");
    tcase_add_test(tc, test_png_roundtrip);
    suite_add_tcase(s, tc);
    tc = tcase_create("zstd");
    tcase_add_test(tc, test_zstd);
    tcase_add_test(tc, test_zstd_dict);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tp_test_run(codecs_suite()); }
