/* The checksum of every on-disk structure: XXH3-64 from libxxhash, inlined so the hot
 * loop is compiled with our flags: the SSE2 kernel here, the AVX2 one in checksum_avx2.c
 * for inputs long enough to use it (XXH3 hashes up to 240 bytes without its kernel) on
 * CPUs that have AVX2. Both give the same values. */
#include "tp_common.h"

#include <sys/uio.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define AVX2_BUILT 1
#else
#define AVX2_BUILT 0
#endif

bool tp__hash_simd = true;

/* Long enough for the kernel to matter. */
#define KERNEL_BYTES 1024

#if AVX2_BUILT
static bool avx2(size_t len)
{
    return len >= KERNEL_BYTES && tp__hash_simd && __builtin_cpu_supports("avx2");
}
#endif

uint64_t tp__hash64(const void *data, size_t len)
{
#if AVX2_BUILT
    if (avx2(len))
        return tp__hash64_avx2(data, len);
#endif
    return XXH3_64bits(data, len);
}

uint64_t tp__hash64_pieces(const struct iovec *iov, size_t n)
{
    if (n == 1)
        return tp__hash64(iov[0].iov_base, iov[0].iov_len);
#if AVX2_BUILT
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (avx2(total))
        return tp__hash64_pieces_avx2(iov, n);
#endif
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    for (size_t i = 0; i < n; i++)
        XXH3_64bits_update(&st, iov[i].iov_base, iov[i].iov_len);
    return XXH3_64bits_digest(&st);
}

unsigned tp__iov_skip(const struct iovec *in, unsigned n, uint64_t skip, struct iovec *out)
{
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++) {
        if (skip >= in[i].iov_len) {
            skip -= in[i].iov_len;
            continue;
        }
        out[k++] = (struct iovec){.iov_base = (char *)in[i].iov_base + skip,
                                  .iov_len = in[i].iov_len - skip};
        skip = 0;
    }
    return k;
}
