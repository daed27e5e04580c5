/* Helpers shared by the unit tests; see testutil.h. */
#include "testutil.h"

#include "tp_common.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

char *tp_test_mkdtemp(void)
{
    const char *tmp = getenv("TMPDIR");
    char *dir = tp__path_join(tmp && *tmp ? tmp : "/tmp", "tp-test-XXXXXX");
    ck_assert_ptr_nonnull(dir);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    return dir;
}

void tp_test_rmdir(char *dir)
{
    if (dir)
        ck_assert_int_eq(tp__remove_tree(dir), 0);
    free(dir);
}

char *tp_test_path(const char *dir, const char *name)
{
    char *p = tp__path_join(dir, name);
    ck_assert_ptr_nonnull(p);
    return p;
}

void tp_test_flip(const char *path, uint64_t off, unsigned char mask)
{
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    unsigned char b;
    ck_assert_int_eq(pread(fd, &b, 1, (off_t)off), 1);
    b ^= mask;
    ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

void tp_test_write_at(const char *path, uint64_t off, const void *data, size_t len)
{
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, data, len, (off_t)off), (ssize_t)len);
    close(fd);
}

uint64_t tp_test_file_size(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

void tp_test_truncate(const char *path, uint64_t size)
{
    ck_assert_int_eq(truncate(path, (off_t)size), 0);
}

void tp_test_fill(void *p, size_t n, uint64_t a, uint64_t b)
{
    uint64_t x = a * UINT64_C(0x9e3779b97f4a7c15) ^ (b + 1) * UINT64_C(0xbf58476d1ce4e5b9);
    unsigned char *q = p;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        q[i] = (unsigned char)x;
    }
}

int tp_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
