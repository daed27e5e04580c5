/* The checksum of every on-disk structure: XXH3-64 from libxxhash, inlined so the hot
 * loop is compiled with our flags and verified reads run near memory bandwidth. */
#include "tp_common.h"

#include <sys/uio.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t tp__hash64(const void *data, size_t len) { return XXH3_64bits(data, len); }

uint64_t tp__hash64_pieces(const struct iovec *iov, size_t n)
{
    if (n == 1)
        return XXH3_64bits(iov[0].iov_base, iov[0].iov_len);
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
