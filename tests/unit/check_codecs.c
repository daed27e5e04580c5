/* Unit tests of the codecs module: JPEG inspection (limits, truncation, garbage) and
 * decoding, zstd round trips and hostile frames. */
#include "testutil.h"

#include "codecs.h"

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
    unsigned char *rgb = malloc(64 * 48 * 3);
    ck_assert_int_eq(tp_jpeg_decode_rgb(jpeg, len, rgb, &info, &err), 0);
    free(rgb);
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
    unsigned char *rgb = malloc(64 * 48 * 3);
    ck_assert_int_eq(tp_jpeg_decode_rgb(cut, len, rgb, &info, &err), TP_EBADIMAGE);
    free(rgb);
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

static Suite *codecs_suite(void)
{
    Suite *s = suite_create("codecs");
    TCase *tc = tcase_create("jpeg");
    tcase_add_test(tc, test_inspect_ok);
    tcase_add_test(tc, test_inspect_bad);
    suite_add_tcase(s, tc);
    tc = tcase_create("zstd");
    tcase_add_test(tc, test_zstd);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tp_test_run(codecs_suite()); }
