/* Unit tests of the common module: error strings, version, size parsing, file helpers. */
#include "testutil.h"

#include "tp_common.h"

#include <turbopump/version.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

START_TEST(test_version)
{
    ck_assert_uint_eq(tp_version(), TP_VERSION_NUMBER);
    ck_assert_str_eq(tp_version_string(), TP_VERSION_STRING);
    char expect[32];
    snprintf(expect, sizeof(expect), "%d.%d.%d", TP_VERSION_MAJOR, TP_VERSION_MINOR,
             TP_VERSION_PATCH);
    ck_assert_str_eq(tp_version_string(), expect);
}
END_TEST

START_TEST(test_strerror)
{
    ck_assert_str_eq(tp_strerror(0), "success");
    ck_assert_str_eq(tp_strerror(-ENOENT), "No such file or directory");
    ck_assert_str_eq(tp_strerror(TP_ECORRUPT),
                     "corrupt data (checksum mismatch or malformed structure)");
    for (int c = TP_ECORRUPT; c > TP_ELAST; c--) {
        ck_assert_ptr_nonnull(tp_strerror(c));
        ck_assert_str_ne(tp_strerror(c), "unknown error");
    }
    ck_assert_str_eq(tp_strerror(TP_ELAST), "unknown error");
    ck_assert_str_eq(tp_strerror(-100000), "unknown error");
}
END_TEST

START_TEST(test_error_set)
{
    tp_error e = {0};
    ck_assert_int_eq(tp__error_set(&e, TP_ECORRUPT, "shard %d sample %d", 3, 42), TP_ECORRUPT);
    ck_assert_int_eq(e.code, TP_ECORRUPT);
    ck_assert_str_eq(e.msg, "shard 3 sample 42");
    ck_assert_int_eq(tp__error_set(NULL, -EIO, "ignored"), -EIO);
}
END_TEST

START_TEST(test_parse_size)
{
    uint64_t v;
    ck_assert_int_eq(tp__parse_size("4096", &v), 0);
    ck_assert_uint_eq(v, 4096);
    ck_assert_int_eq(tp__parse_size("64K", &v), 0);
    ck_assert_uint_eq(v, 65536);
    ck_assert_int_eq(tp__parse_size("256M", &v), 0);
    ck_assert_uint_eq(v, 256ull << 20);
    ck_assert_int_eq(tp__parse_size("2GiB", &v), 0);
    ck_assert_uint_eq(v, 2ull << 30);
    ck_assert_int_eq(tp__parse_size("1t", &v), 0);
    ck_assert_uint_eq(v, 1ull << 40);
    ck_assert_int_eq(tp__parse_size("", &v), TP_EUSAGE);
    ck_assert_int_eq(tp__parse_size("-1", &v), TP_EUSAGE);
    ck_assert_int_eq(tp__parse_size("12X", &v), TP_EUSAGE);
    ck_assert_int_eq(tp__parse_size("99999999999T", &v), TP_EUSAGE);
    ck_assert_int_eq(tp__parse_size("1.5G", &v), TP_EUSAGE);
}
END_TEST

START_TEST(test_parse_u64)
{
    uint64_t v;
    ck_assert_int_eq(tp__parse_u64("17", 1, 100, &v), 0);
    ck_assert_uint_eq(v, 17);
    ck_assert_int_eq(tp__parse_u64("0", 1, 100, &v), TP_EUSAGE);
    ck_assert_int_eq(tp__parse_u64("101", 1, 100, &v), TP_EUSAGE);
    ck_assert_int_eq(tp__parse_u64("1e3", 1, 10000, &v), TP_EUSAGE);
    ck_assert_int_eq(tp__parse_u64(" 5", 1, 10, &v), TP_EUSAGE);
    ck_assert_int_eq(tp__parse_u64("18446744073709551616", 0, UINT64_MAX, &v), TP_EUSAGE);
}
END_TEST

START_TEST(test_le)
{
    unsigned char b[8];
    tp__put64(b, UINT64_C(0x0102030405060708));
    ck_assert_uint_eq(b[0], 0x08);
    ck_assert_uint_eq(b[7], 0x01);
    ck_assert_uint_eq(tp__le64(b), UINT64_C(0x0102030405060708));
    ck_assert_uint_eq(tp__le32(b), 0x05060708u);
    ck_assert_uint_eq(tp__le16(b), 0x0708u);
}
END_TEST

START_TEST(test_hash)
{
    /* XXH3-64 of the empty input and of "abc" are published reference values. */
    ck_assert_uint_eq(tp__hash64("", 0), UINT64_C(0x2d06800538d394c2));
    ck_assert_uint_eq(tp__hash64("abc", 3), UINT64_C(0x78af5f94892f3950));
}
END_TEST

/* The AVX2 kernel (checksum_avx2.c) gives the SSE2 kernel's values, whole and in pieces,
 * at every length around its threshold and its 64-byte stripes and 1 KiB blocks, and on
 * records of photograph and tensor sizes, from aligned and unaligned starts. */
START_TEST(test_hash_kernels)
{
    enum { CAP = 160000 };
    unsigned char *b = malloc(CAP + 8);
    ck_assert_ptr_nonnull(b);
    uint64_t x = 88172645463325252u;
    for (size_t i = 0; i < CAP + 8; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b[i] = (unsigned char)x;
    }
    static const size_t lens[] = {0, 1, 17, 240, 241, 1000, 1023, 1024, 1025, 1087, 1088,
                                  2048, 4095, 4096, 4097, 45017, 65536, 150528, CAP};
    for (size_t k = 0; k < TP_ARRAY_LEN(lens); k++)
        for (size_t off = 0; off < 8; off += 3) {
            const unsigned char *p = b + off;
            size_t n = lens[k];
            tp__hash_simd = false;
            uint64_t want = tp__hash64(p, n);
            tp__hash_simd = true;
            ck_assert_msg(tp__hash64(p, n) == want, "%zu bytes at +%zu", n, off);
            size_t cut = n / 3, cut2 = n - n / 5;
            struct iovec v[3] = {{(void *)p, cut}, {(void *)(p + cut), cut2 - cut},
                                 {(void *)(p + cut2), n - cut2}};
            ck_assert_msg(tp__hash64_pieces(v, 3) == want, "%zu bytes in pieces", n);
            tp__hash_simd = false;
            ck_assert_msg(tp__hash64_pieces(v, 3) == want, "%zu bytes in pieces, SSE2", n);
            tp__hash_simd = true;
        }
    free(b);
}
END_TEST

START_TEST(test_files)
{
    char *dir = tp_test_mkdtemp();
    char *sub = tp_test_path(dir, "a/b");
    char *a = tp_test_path(dir, "a");
    ck_assert_int_eq(mkdir(a, 0755), 0);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    char *f = tp_test_path(sub, "file");
    FILE *fp = fopen(f, "w");
    fputs("hello", fp);
    fclose(fp);
    char *text;
    size_t len;
    ck_assert_int_eq(tp__read_file(f, 100, &text, &len), 0);
    ck_assert_str_eq(text, "hello");
    ck_assert_uint_eq(len, 5);
    free(text);
    ck_assert_int_eq(tp__read_file(f, 4, &text, &len), TP_ETOOBIG);
    ck_assert_int_eq(tp__read_file(sub, 100, &text, &len), -EINVAL);
    char *link = tp_test_path(dir, "link");
    ck_assert_int_eq(symlink(a, link), 0);
    ck_assert_int_eq(tp__remove_tree(link), 0); /* removes the link, not its target */
    ck_assert_int_eq(access(f, F_OK), 0);
    ck_assert_int_eq(tp__dir_is_empty(a), 0);
    ck_assert_int_eq(tp__dir_is_empty(f), -ENOTDIR);
    ck_assert_int_eq(tp__remove_contents(a), 0);
    ck_assert_int_eq(tp__dir_is_empty(a), 1);
    ck_assert_int_eq(access(sub, F_OK), -1);
    ck_assert_int_eq(access(a, F_OK), 0);
    ck_assert_int_eq(tp__remove_tree(a), 0);
    ck_assert_int_eq(access(a, F_OK), -1);
    ck_assert_int_eq(tp__remove_tree(a), 0); /* missing is fine */
    free(link);
    free(f);
    free(a);
    free(sub);
    tp_test_rmdir(dir);
}
END_TEST

static Suite *common_suite(void)
{
    Suite *s = suite_create("common");
    TCase *tc = tcase_create("errors");
    tcase_add_test(tc, test_version);
    tcase_add_test(tc, test_strerror);
    tcase_add_test(tc, test_error_set);
    suite_add_tcase(s, tc);
    tc = tcase_create("parsing");
    tcase_add_test(tc, test_parse_size);
    tcase_add_test(tc, test_parse_u64);
    tcase_add_test(tc, test_le);
    tcase_add_test(tc, test_hash);
    tcase_add_test(tc, test_hash_kernels);
    suite_add_tcase(s, tc);
    tc = tcase_create("files");
    tcase_add_test(tc, test_files);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tp_test_run(common_suite()); }
