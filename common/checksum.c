/* The checksum of every on-disk structure: XXH3-64 from libxxhash, inlined so the hot
 * loop is compiled with our flags and verified reads run near memory bandwidth. */
#include "tp_common.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t tp__hash64(const void *data, size_t len) { return XXH3_64bits(data, len); }
