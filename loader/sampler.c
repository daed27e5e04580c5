/* The sampler (see sampler.h): every rank computes which sample it reads at any position of
 * any epoch from (seed, epoch, rank, world, N) alone, so ranks agree on one global order
 * without talking to each other and a resumed job jumps straight to its batch. The shuffle
 * is a keyed Feistel permutation evaluated one position at a time, which keeps memory O(1)
 * even for datasets far larger than RAM could index. */
#include "sampler.h"

/* Six rounds: a balanced Feistel network needs at least four to look like a random
 * permutation (Luby-Rackoff); the extra two cost little and smooth small domains. */
#define TP_FEISTEL_ROUNDS 6

/* GCC and Clang's 128-bit integer; __extension__ keeps it quiet under strict C11. */
__extension__ typedef unsigned __int128 u128;

/* Width in bits of the largest position, n - 1 (0 for n == 1). */
static unsigned position_bits(uint64_t n)
{
    const uint64_t top = n - 1;
    unsigned bits = 0;
    while (bits < 64 && top >> bits)
        bits++;
    return bits;
}

int tp_sampler_init(tp_sampler *s, uint64_t n, uint64_t batch_size, uint32_t rank,
                    uint32_t world, bool shuffle, bool drop_last, uint64_t seed)
{
    assert(s);
    TP_RETURN_IF(n == 0 || batch_size == 0 || world == 0, TP_EUSAGE);
    TP_RETURN_IF(rank >= world, TP_EUSAGE);
    TP_RETURN_IF(drop_last && n < world, TP_EUSAGE);
    /* Written as quotient plus remainder test rather than (n + world - 1) / world, which
     * would wrap for n near 2^64. */
    const uint64_t per_rank = n / world + (!drop_last && n % world != 0);
    /* With drop_last a rank holding fewer samples than one batch gets zero batches: empty
     * epochs are legal (every rank agrees on them), so this is not an error. */
    const uint64_t batches = per_rank / batch_size + (!drop_last && per_rank % batch_size != 0);
    /* The network splits its block into two equal halves, so the block width is rounded up
     * to an even number of bits, and to at least 2 so that each half has a bit. Cycle
     * walking then costs at most four encryptions per position on average. */
    const unsigned half_bits = TP_MAX(1u, (position_bits(n) + 1) / 2);
    *s = (tp_sampler){.n = n, .batch_size = batch_size, .seed = seed, .rank = rank,
                      .world = world, .shuffle = shuffle, .drop_last = drop_last,
                      .per_rank = per_rank, .batches = batches, .half_bits = half_bits,
                      .resume_epoch = UINT64_MAX};
    return 0;
}

/* The round keys of one epoch. Chaining splitmix64 from the seed and then the epoch makes
 * every (seed, epoch) pair an unrelated key, even for neighbouring seeds or epochs. */
static void round_keys(uint64_t seed, uint64_t epoch, uint64_t keys[TP_FEISTEL_ROUNDS])
{
    uint64_t state = seed;
    state = tp__splitmix64(&state) ^ epoch;
    for (int i = 0; i < TP_FEISTEL_ROUNDS; i++)
        keys[i] = tp__splitmix64(&state);
}

/* One pass of the network over a block of 2 * half_bits bits. Any round function gives a
 * bijection; a good one (splitmix64's finaliser over key and half) gives a good shuffle. */
static uint64_t feistel(const uint64_t keys[TP_FEISTEL_ROUNDS], unsigned half_bits,
                        uint64_t x)
{
    const uint64_t mask = (UINT64_C(1) << half_bits) - 1;
    uint64_t left = x >> half_bits, right = x & mask;
    for (int i = 0; i < TP_FEISTEL_ROUNDS; i++) {
        uint64_t state = keys[i] ^ right;
        const uint64_t next = left ^ (tp__splitmix64(&state) & mask);
        left = right;
        right = next;
    }
    return left << half_bits | right;
}

uint64_t tp_sampler_permute(const tp_sampler *s, uint64_t epoch, uint64_t p)
{
    assert(p < s->n);
    if (!s->shuffle)
        return p;
    uint64_t keys[TP_FEISTEL_ROUNDS];
    round_keys(s->seed, epoch, keys);
    /* Cycle walking: the network permutes the whole block, so following the cycle from p
     * must come back below n (at p itself at the latest), and doing so for every p
     * restricts the bijection to 0..n-1. */
    uint64_t x = p;
    do
        x = feistel(keys, s->half_bits, x);
    while (x >= s->n);
    return x;
}

uint64_t tp_sampler_batch_len(const tp_sampler *s, uint64_t b)
{
    assert(b < s->batches);
    /* Only the last batch can be short, and only without drop_last; with it, the samples
     * past the last full batch are dropped, so the minimum also caps that batch. */
    return TP_MIN(s->batch_size, s->per_rank - b * s->batch_size);
}

void tp_sampler_resume(tp_sampler *s, uint64_t epoch, uint64_t consumed)
{
    s->resume_epoch = epoch;
    s->resume_at = TP_MIN(consumed, s->n);
}

uint64_t tp_sampler_start(const tp_sampler *s, uint64_t epoch)
{
    return epoch == s->resume_epoch ? s->resume_at : 0;
}

/* The epoch's samples and batches for this rank: init's rules over what is left. */
static void segment(const tp_sampler *s, uint64_t epoch, uint64_t *per_rank, uint64_t *batches)
{
    const uint64_t m = s->n - tp_sampler_start(s, epoch);
    *per_rank = m / s->world + (!s->drop_last && m % s->world != 0);
    *batches = *per_rank / s->batch_size + (!s->drop_last && *per_rank % s->batch_size != 0);
}

uint64_t tp_sampler_epoch_batches(const tp_sampler *s, uint64_t epoch)
{
    uint64_t per_rank, batches;
    segment(s, epoch, &per_rank, &batches);
    return batches;
}

uint64_t tp_sampler_epoch_batch_len(const tp_sampler *s, uint64_t epoch, uint64_t b)
{
    uint64_t per_rank, batches;
    segment(s, epoch, &per_rank, &batches);
    assert(b < batches);
    return TP_MIN(s->batch_size, per_rank - b * s->batch_size);
}

uint64_t tp_sampler_consumed_after(const tp_sampler *s, uint64_t epoch, uint64_t b)
{
    if (b + 1 >= tp_sampler_epoch_batches(s, epoch))
        return s->n;
    /* Not the last batch, so every rank's batches so far were full and lie below n. */
    return tp_sampler_start(s, epoch) + (b + 1) * s->batch_size * s->world;
}

uint64_t tp_sampler_sample(const tp_sampler *s, uint64_t epoch, uint64_t b, uint64_t j)
{
    assert(j < tp_sampler_epoch_batch_len(s, epoch, b));
    /* k < per_rank <= n, but the global position start + r + k * W reaches n + W - 2,
     * past 2^64 for n near it, so it is formed in 128 bits before wrapping onto the
     * order's start. */
    const uint64_t k = b * s->batch_size + j;
    const u128 g = (u128)tp_sampler_start(s, epoch) + (u128)k * s->world + s->rank;
    return tp_sampler_permute(s, epoch, (uint64_t)(g % s->n));
}
