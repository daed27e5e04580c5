/* Helpers shared by the unit tests: scratch directories that clean up after themselves,
 * file byte surgery for corruption tests, and a deterministic byte generator. */
#ifndef TP_TESTUTIL_H
#define TP_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* Creates a fresh directory under $TMPDIR (or /tmp); the caller frees the string and
 * removes the tree with tp_test_rmdir. */
char *tp_test_mkdtemp(void);
void tp_test_rmdir(char *dir);
/* Joins dir and name into a static-lifetime-free malloc'd path. */
char *tp_test_path(const char *dir, const char *name);
/* XORs `mask` into the byte at `off` of `path`. */
void tp_test_flip(const char *path, uint64_t off, unsigned char mask);
uint64_t tp_test_file_size(const char *path);
void tp_test_truncate(const char *path, uint64_t size);
/* Overwrites `len` bytes of the file at `off`. */
void tp_test_write_at(const char *path, uint64_t off, const void *data, size_t len);
/* Fills `p` with bytes determined by (a, b). */
void tp_test_fill(void *p, size_t n, uint64_t a, uint64_t b);
/* Runs `s` with CK_FORK, printing results. @return : process exit status. */
int tp_test_run(Suite *s);

#endif
