/* Internal helpers shared by every module: error macros that keep happy paths straight,
 * the error-detail formatter, the checksum, little-endian accessors and file helpers.
 * Nothing here is public API. */
#ifndef TP_COMMON_H
#define TP_COMMON_H

#include <turbopump/error.h>

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TP_RETURN_IF(cond, err) \
    do {                        \
        if (cond)               \
            return (err);       \
    } while (0)

#define TP_TRY(expr)              \
    do {                          \
        int tp__rc_ = (expr);     \
        if (tp__rc_ < 0)          \
            return tp__rc_;       \
    } while (0)

#define TP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TP_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TP_MAX(a, b) ((a) > (b) ? (a) : (b))

#if defined(__GNUC__)
#define TP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TP_PRINTF(f, a)
#endif

/* Fills `err` (may be NULL) with `code` and a formatted message. @return : code. */
int tp__error_set(tp_error *err, int code, const char *fmt, ...) TP_PRINTF(3, 4);

/* XXH3-64 of `len` bytes: the checksum of every on-disk structure. */
uint64_t tp__hash64(const void *data, size_t len);

/* The same hash of the concatenation of n pieces (the same value as one buffer). */
struct iovec;
uint64_t tp__hash64_pieces(const struct iovec *iov, size_t n);
/* Tests only: false makes both use the SSE2 kernel on any CPU (default true). */
extern bool tp__hash_simd;
/* The same two with XXH3's AVX2 kernel (checksum_avx2.c, built by GCC for x86-64 only),
 * for checksum.c to call on CPUs that have AVX2. */
uint64_t tp__hash64_avx2(const void *data, size_t len);
uint64_t tp__hash64_pieces_avx2(const struct iovec *iov, size_t n);
/* The part of `n` iovecs past their first `skip` bytes, into `out` (n entries at most).
 * @return : how many iovecs that is. */
unsigned tp__iov_skip(const struct iovec *in, unsigned n, uint64_t skip, struct iovec *out);

/* Little-endian loads and stores; the on-disk formats are little-endian everywhere. */
static inline uint16_t tp__le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t tp__le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t tp__le64(const unsigned char *p)
{
    return (uint64_t)tp__le32(p) | (uint64_t)tp__le32(p + 4) << 32;
}
static inline void tp__put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static inline void tp__put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static inline void tp__put64(unsigned char *p, uint64_t v)
{
    tp__put32(p, (uint32_t)v);
    tp__put32(p + 4, (uint32_t)(v >> 32));
}

/* splitmix64: the seeding step of every generator here (xoshiro states, synthetic data). */
static inline uint64_t tp__splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* File helpers. All return 0 or -errno and retry on EINTR / short transfers. */
int tp__write_all(int fd, const void *buf, size_t len);
int tp__pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* Reads exactly `len` bytes at `off`; a file that ends first gives TP_ETRUNCATED. */
int tp__pread_all(int fd, void *buf, size_t len, uint64_t off);

/* Grows a reusable buffer *p of *cap bytes to hold at least `bytes` (contents kept).
 * @return : 0 or -ENOMEM (the buffer is then unchanged). */
int tp__grow(void **p, size_t *cap, size_t bytes);
/* Reads a whole (small) file into a NUL-terminated malloc'd buffer, at most `max` bytes. */
int tp__read_file(const char *path, size_t max, char **out, size_t *len);
int tp__fsync_path(const char *path);
int tp__fsync_parent(const char *path);
/* Removes a directory tree without following symlinks. Missing is not an error. */
int tp__remove_tree(const char *path);
/* @return : 1 if the directory holds nothing, 0 if it holds something, or -errno. */
int tp__dir_is_empty(const char *path);
/* Empties a directory, keeping the directory itself. */
int tp__remove_contents(const char *path);
/* Joins two path parts into a malloc'd string. @return : NULL when out of memory. */
char *tp__path_join(const char *a, const char *b);

/* Parses "123", "64K", "256M", "2G", "1T" (binary units, optional "iB"/"B").
 * @return : 0, or TP_EUSAGE on anything else or on overflow. */
int tp__parse_size(const char *s, uint64_t *out);
/* Parses a decimal unsigned integer in [min, max]. @return : 0 or TP_EUSAGE. */
int tp__parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
