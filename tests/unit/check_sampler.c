/* Unit tests of the sampler (loader/sampler.h): that the keyed permutation is a bijection
 * for every size, that it depends on seed and epoch and on nothing else, that ranks and
 * batches match torch's DistributedSampler + BatchSampler index for index (checked against
 * a literal transcription of torch's code), that arithmetic holds near 2^64, and that the
 * shuffle spreads samples evenly. Loops over millions of positions fold their checks into
 * one flag, because in fork mode every ck_assert costs a write to Check's pipe. */
#include "testutil.h"

#include "sampler.h"

#include <signal.h>
#include <stdlib.h>

static tp_sampler make(uint64_t n, uint64_t batch_size, uint32_t rank, uint32_t world,
                       bool shuffle, bool drop_last, uint64_t seed)
{
    tp_sampler s;
    ck_assert_int_eq(tp_sampler_init(&s, n, batch_size, rank, world, shuffle, drop_last,
                                     seed), 0);
    return s;
}

/* The epoch's whole global order, malloc'd. */
static uint64_t *order_of(const tp_sampler *s, uint64_t epoch)
{
    uint64_t *o = malloc(s->n * sizeof(*o));
    ck_assert_ptr_nonnull(o);
    for (uint64_t p = 0; p < s->n; p++)
        o[p] = tp_sampler_permute(s, epoch, p);
    return o;
}

static int cmp_u64(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* True when all `len` values are below n and no two are equal (sorts `v`). */
static bool distinct_below(uint64_t *v, size_t len, uint64_t n)
{
    qsort(v, len, sizeof(*v), cmp_u64);
    bool ok = len == 0 || v[len - 1] < n;
    for (size_t i = 1; i < len; i++)
        ok &= v[i - 1] != v[i];
    return ok;
}

static const uint64_t seeds[] = {0, 1, UINT64_C(0xdeadbeefcafef00d)};
static const uint64_t epochs[] = {0, 1, 7, UINT64_MAX};

START_TEST(test_init)
{
    tp_sampler s;
    ck_assert_int_eq(tp_sampler_init(&s, 0, 1, 0, 1, true, false, 0), TP_EUSAGE);
    ck_assert_int_eq(tp_sampler_init(&s, 10, 0, 0, 1, true, false, 0), TP_EUSAGE);
    ck_assert_int_eq(tp_sampler_init(&s, 10, 1, 0, 0, true, false, 0), TP_EUSAGE);
    ck_assert_int_eq(tp_sampler_init(&s, 10, 1, 4, 4, true, false, 0), TP_EUSAGE);
    ck_assert_int_eq(tp_sampler_init(&s, 3, 1, 0, 4, true, true, 0), TP_EUSAGE);
    ck_assert_int_eq(tp_sampler_init(&s, 3, 1, 3, 4, true, false, 0), 0); /* padded instead */
    ck_assert_int_eq(tp_sampler_init(&s, 4, 1, 3, 4, true, true, 0), 0);
    /* The Feistel block: the smallest even width covering n - 1, at least 2 bits. */
    static const struct { uint64_t n; unsigned half; } widths[] = {
        {1, 1}, {2, 1}, {4, 1}, {5, 2}, {16, 2}, {17, 3}, {1000003, 10},
        {UINT64_C(1) << 62, 31}, {(UINT64_C(1) << 62) + 1, 32}, {UINT64_MAX, 32}};
    for (size_t i = 0; i < TP_ARRAY_LEN(widths); i++) {
        s = make(widths[i].n, 1, 0, 1, true, false, 0);
        ck_assert_msg(s.half_bits == widths[i].half, "n=%llu: half_bits %u, want %u",
                      (unsigned long long)widths[i].n, s.half_bits, widths[i].half);
    }
}
END_TEST

/* Every n from 1 to 300, exhaustively, for several keys; and the shuffle actually moves
 * things once there is room for it. */
START_TEST(test_bijection_small)
{
    enum { MAXN = 300 };
    bool seen[MAXN];
    int identities = 0;
    for (uint64_t n = 1; n <= MAXN; n++)
        for (size_t si = 0; si < TP_ARRAY_LEN(seeds); si++)
            for (size_t ei = 0; ei < TP_ARRAY_LEN(epochs); ei++) {
                const tp_sampler s = make(n, 1, 0, 1, true, false, seeds[si]);
                memset(seen, 0, sizeof(seen));
                bool ok = true, identity = true;
                for (uint64_t p = 0; p < n; p++) {
                    const uint64_t v = tp_sampler_permute(&s, epochs[ei], p);
                    ok &= v < n && !seen[v];
                    if (v < n)
                        seen[v] = true;
                    identity &= v == p;
                }
                ck_assert_msg(ok, "not a bijection: n=%llu seed=%zu epoch=%zu",
                              (unsigned long long)n, si, ei);
                identities += n >= 10 && identity;
            }
    ck_assert_int_eq(identities, 0);
}
END_TEST

/* Larger sizes, each side of a power of two, checked with a bitmap. */
START_TEST(test_bijection_large)
{
    static const uint64_t sizes[] = {1000003, 1 << 20, (1 << 20) + 1, (1 << 21) - 1};
    const uint64_t n = sizes[_i];
    uint64_t *bits = calloc((n + 63) / 64, sizeof(*bits));
    ck_assert_ptr_nonnull(bits);
    const tp_sampler s = make(n, 1, 0, 1, true, false, 42);
    bool ok = true;
    uint64_t fixed = 0;
    for (uint64_t p = 0; p < n; p++) {
        const uint64_t v = tp_sampler_permute(&s, 3, p);
        ok &= v < n && !(bits[v / 64] >> (v % 64) & 1);
        if (v < n)
            bits[v / 64] |= UINT64_C(1) << (v % 64);
        fixed += v == p;
    }
    ck_assert_msg(ok, "not a bijection of 0..%llu", (unsigned long long)n - 1);
    /* A random permutation has about one fixed point; a broken shuffle has many. */
    ck_assert_uint_lt(fixed, 20);
    free(bits);
}
END_TEST

/* Sizes too large to enumerate, up to 2^64 - 1: a few thousand positions at both ends and
 * in the middle land in range and never collide. */
START_TEST(test_bijection_huge)
{
    static const uint64_t sizes[] = {UINT64_C(1) << 40, UINT64_C(1) << 62,
                                     (UINT64_C(1) << 62) + 1, UINT64_MAX};
    enum { K = 3000 };
    uint64_t v[K];
    for (size_t i = 0; i < TP_ARRAY_LEN(sizes); i++) {
        const uint64_t n = sizes[i];
        const tp_sampler s = make(n, 1, 0, 1, true, false, 9);
        uint64_t moved = 0;
        for (uint64_t k = 0; k < K / 3; k++) {
            const uint64_t ps[3] = {k, n / 2 + k, n - 1 - k};
            for (int t = 0; t < 3; t++) {
                v[k * 3 + t] = tp_sampler_permute(&s, 0, ps[t]);
                moved += v[k * 3 + t] != ps[t];
            }
        }
        ck_assert_uint_eq(moved, K);
        ck_assert_msg(distinct_below(v, K, n), "n=%llu", (unsigned long long)n);
    }
}
END_TEST

START_TEST(test_determinism)
{
    enum { N = 1000 };
    const tp_sampler a = make(N, 1, 0, 1, true, false, 5);
    const tp_sampler b = make(N, 1, 0, 1, true, false, 5);
    uint64_t *o = order_of(&a, 3), *same = order_of(&b, 3);
    ck_assert_int_eq(memcmp(o, same, N * sizeof(*o)), 0);
    /* Neighbouring epochs and seeds, and seed and epoch swapped, all give other orders. */
    for (uint64_t e = 0; e < 50; e++) {
        uint64_t *x = order_of(&a, e), *y = order_of(&a, e + 1);
        ck_assert_msg(memcmp(x, y, N * sizeof(*x)), "epochs %llu and %llu agree",
                      (unsigned long long)e, (unsigned long long)e + 1);
        free(x), free(y);
    }
    const tp_sampler c = make(N, 1, 0, 1, true, false, 6);
    uint64_t *other_seed = order_of(&c, 3);
    ck_assert_int_ne(memcmp(o, other_seed, N * sizeof(*o)), 0);
    const tp_sampler s1 = make(N, 1, 0, 1, true, false, 1);
    const tp_sampler s2 = make(N, 1, 0, 1, true, false, 2);
    uint64_t *x = order_of(&s1, 2), *y = order_of(&s2, 1);
    ck_assert_int_ne(memcmp(x, y, N * sizeof(*x)), 0);
    /* Without shuffle the order is the identity whatever the seed and epoch. */
    const tp_sampler plain = make(N, 1, 0, 1, false, false, 5);
    bool identity = true;
    for (uint64_t p = 0; p < N; p++)
        identity &= tp_sampler_permute(&plain, 3, p) == p &&
                    tp_sampler_permute(&plain, 9, p) == p;
    ck_assert(identity);
    free(o), free(same), free(other_seed), free(x), free(y);
}
END_TEST

/* torch.utils.data.DistributedSampler.__iter__ followed by BatchSampler, transcribed
 * literally (including its two padding branches), over the order tp_sampler_permute gives.
 * Fills ref[b * bs + j] and lens[b]; @return : the number of batches. */
static uint64_t torch_reference(const uint64_t *order, uint64_t n, uint64_t bs, uint32_t rank,
                                uint32_t world, bool drop_last, uint64_t *ref, uint64_t *lens)
{
    const uint64_t num_samples = drop_last && n % world ? (n - world + world - 1) / world
                                                        : (n + world - 1) / world;
    const uint64_t total = num_samples * world;
    uint64_t *idx = malloc(TP_MAX(total, n) * sizeof(*idx));
    ck_assert_ptr_nonnull(idx);
    memcpy(idx, order, n * sizeof(*idx));
    if (!drop_last) {
        const uint64_t pad = total - n;
        if (pad <= n) /* indices += indices[:padding_size] */
            memcpy(idx + n, order, pad * sizeof(*idx));
        else /* indices += (indices * math.ceil(padding_size / len(indices)))[:padding_size] */
            for (uint64_t i = 0; i < pad; i++)
                idx[n + i] = order[i % n];
    } /* else indices = indices[:total_size]: only the first `total` are read below */
    uint64_t mine = 0, batches = 0, len = 0; /* indices[rank:total_size:num_replicas] */
    for (uint64_t g = rank; g < total; g += world) {
        ref[mine++] = idx[g];
        if (++len == bs)
            lens[batches++] = len, len = 0;
    }
    if (len && !drop_last)
        lens[batches++] = len;
    free(idx);
    return batches;
}

/* Ranks and batches against the torch reference, and the union over ranks: each sample
 * exactly once plus padding that repeats the start of the order (no drop_last), or each at
 * most once and W * batches * batch_size in all (drop_last). _i: bit 0 drop_last, bit 1
 * shuffle. */
START_TEST(test_partition)
{
    const bool drop_last = _i & 1, shuffle = _i & 2;
    static const uint64_t sizes[] = {1, 7, 100, 1001}, bss[] = {1, 3, 16, 2000};
    for (size_t ni = 0; ni < TP_ARRAY_LEN(sizes); ni++)
        for (uint32_t w = 1; w <= 8; w++)
            for (size_t bi = 0; bi < TP_ARRAY_LEN(bss); bi++) {
                const uint64_t n = sizes[ni], bs = bss[bi];
                tp_sampler s;
                if (drop_last && n < w) {
                    ck_assert_int_eq(tp_sampler_init(&s, n, bs, 0, w, shuffle, true, 4),
                                     TP_EUSAGE);
                    continue;
                }
                s = make(n, bs, 0, w, shuffle, drop_last, 4);
                uint64_t *order = order_of(&s, 2);
                uint64_t *count = calloc(n, sizeof(*count));
                uint64_t *ref = malloc((n / w + 1) * sizeof(*ref));
                uint64_t *lens = malloc((n / w + 1) * sizeof(*lens));
                bool match = true;
                uint64_t total = 0;
                for (uint32_t r = 0; r < w; r++) {
                    s = make(n, bs, r, w, shuffle, drop_last, 4);
                    const uint64_t want = torch_reference(order, n, bs, r, w, drop_last, ref,
                                                          lens);
                    ck_assert_msg(s.batches == want,
                                  "n=%llu w=%u r=%u bs=%llu: %llu batches, torch has %llu",
                                  (unsigned long long)n, w, r, (unsigned long long)bs,
                                  (unsigned long long)s.batches, (unsigned long long)want);
                    for (uint64_t b = 0; b < s.batches; b++) {
                        const uint64_t len = tp_sampler_batch_len(&s, b);
                        match &= len == lens[b];
                        for (uint64_t j = 0; j < len && len == lens[b]; j++) {
                            const uint64_t id = tp_sampler_sample(&s, 2, b, j);
                            match &= id == ref[b * bs + j];
                            count[id < n ? id : 0]++; /* a wild id already failed match */
                            total++;
                        }
                    }
                }
                ck_assert_msg(match, "n=%llu w=%u bs=%llu differs from torch",
                              (unsigned long long)n, w, (unsigned long long)bs);
                const uint64_t per_rank = drop_last ? n / w : (n + w - 1) / w;
                bool cover = true;
                if (drop_last) {
                    for (uint64_t i = 0; i < n; i++)
                        cover &= count[i] <= 1;
                    ck_assert_uint_eq(total, w * (per_rank / bs) * bs);
                } else {
                    /* The padding wraps round: position p < pad % n is read once more
                     * than the rest, and every position at least once. */
                    const uint64_t pad = w * per_rank - n;
                    for (uint64_t p = 0; p < n; p++)
                        cover &= count[order[p]] == 1 + pad / n + (p < pad % n);
                    ck_assert_uint_eq(total, w * per_rank);
                }
                ck_assert_msg(cover, "n=%llu w=%u bs=%llu: wrong coverage",
                              (unsigned long long)n, w, (unsigned long long)bs);
                free(order), free(count), free(ref), free(lens);
            }
}
END_TEST

/* Resuming at batch b of an epoch gives what iterating from the start gave, computed by a
 * second sampler that never saw the first batches, in reverse order, after other epochs. */
START_TEST(test_resume)
{
    enum { N = 1001, BS = 16 };
    const tp_sampler first = make(N, BS, 2, 3, true, _i, 77);
    uint64_t all[N / 3 + 1];
    for (uint64_t epoch = 0; epoch < 3; epoch++) {
        uint64_t k = 0;
        for (uint64_t b = 0; b < first.batches; b++)
            for (uint64_t j = 0; j < tp_sampler_batch_len(&first, b); j++)
                all[k++] = tp_sampler_sample(&first, epoch, b, j);
        ck_assert_uint_eq(k, first.per_rank - (_i ? first.per_rank % BS : 0));
        const tp_sampler later = make(N, BS, 2, 3, true, _i, 77);
        (void)tp_sampler_sample(&later, epoch + 5, 1, 0);
        bool same = true;
        for (uint64_t b = later.batches; b-- > later.batches / 2;)
            for (uint64_t j = 0; j < tp_sampler_batch_len(&later, b); j++)
                same &= tp_sampler_sample(&later, epoch, b, j) == all[b * BS + j];
        ck_assert_msg(same, "epoch %llu resumed differently", (unsigned long long)epoch);
    }
}
END_TEST

START_TEST(test_edges)
{
    /* Fewer samples than a batch: one short batch, or none with drop_last. */
    tp_sampler s = make(3, 8, 0, 1, true, false, 1);
    ck_assert_uint_eq(s.batches, 1);
    ck_assert_uint_eq(tp_sampler_batch_len(&s, 0), 3);
    s = make(3, 8, 0, 1, true, true, 1);
    ck_assert_uint_eq(s.per_rank, 3);
    ck_assert_uint_eq(s.batches, 0);
    /* drop_last with a remainder: full batches only, the last one too. */
    s = make(1001, 16, 0, 2, true, true, 1);
    ck_assert_uint_eq(s.per_rank, 500);
    ck_assert_uint_eq(s.batches, 31);
    ck_assert_uint_eq(tp_sampler_batch_len(&s, 30), 16);
    s = make(1001, 16, 0, 2, true, false, 1);
    ck_assert_uint_eq(s.per_rank, 501);
    ck_assert_uint_eq(s.batches, 32);
    ck_assert_uint_eq(tp_sampler_batch_len(&s, 30), 16);
    ck_assert_uint_eq(tp_sampler_batch_len(&s, 31), 5);
    /* As many samples as ranks: one each, all different; with drop_last that is a whole
     * batch only when batches are of one. */
    uint64_t got[8];
    for (uint32_t r = 0; r < 8; r++) {
        s = make(8, 4, r, 8, true, true, 1);
        ck_assert_uint_eq(s.batches, 0);
        s = make(8, 1, r, 8, true, true, 1);
        ck_assert_uint_eq(s.batches, 1);
        got[r] = tp_sampler_sample(&s, 0, 0, 0);
        s = make(8, 4, r, 8, true, false, 1);
        ck_assert_uint_eq(s.batches, 1);
        ck_assert_uint_eq(tp_sampler_batch_len(&s, 0), 1);
        ck_assert_uint_eq(tp_sampler_sample(&s, 0, 0, 0), got[r]);
    }
    ck_assert(distinct_below(got, 8, 8));
    /* More ranks than samples: every rank reads one, wrapping round the order. */
    for (uint32_t r = 0; r < 8; r++) {
        s = make(3, 4, r, 8, true, false, 1);
        ck_assert_uint_eq(s.batches, 1);
        ck_assert_uint_eq(tp_sampler_sample(&s, 6, 0, 0), tp_sampler_permute(&s, 6, r % 3));
    }
}
END_TEST

/* 2^40 samples on 8 ranks: positions follow r + k * W exactly without shuffle, and land
 * in range and distinct with it. */
START_TEST(test_large_n)
{
    const uint64_t n = UINT64_C(1) << 40, bs = 256;
    enum { W = 8 };
    uint64_t v[W * 4 * 2];
    size_t k = 0;
    for (uint32_t r = 0; r < W; r++) {
        const tp_sampler plain = make(n, bs, r, W, false, _i, 3);
        const tp_sampler s = make(n, bs, r, W, true, _i, 3);
        ck_assert_uint_eq(s.per_rank, n / W);
        ck_assert_uint_eq(s.batches, n / W / bs);
        const uint64_t bs_at[4] = {0, 1, s.batches / 2, s.batches - 1};
        for (int i = 0; i < 4; i++)
            for (uint64_t j = 0; j < bs; j += bs - 1) {
                const uint64_t pos = r + (bs_at[i] * bs + j) * W;
                ck_assert_uint_eq(tp_sampler_sample(&plain, 1, bs_at[i], j), pos);
                v[k++] = tp_sampler_sample(&s, 1, bs_at[i], j);
            }
    }
    ck_assert(distinct_below(v, k, n));
}
END_TEST

/* n = 2^64 - 1 on 7 ranks: the last global position of rank 6 is n + 5, past 2^64, and
 * must wrap to position 5 rather than to the 64-bit remainder 4. */
START_TEST(test_overflow)
{
    const tp_sampler s = make(UINT64_MAX, 1, 6, 7, false, false, 0);
    ck_assert_uint_eq(s.per_rank, UINT64_MAX / 7 + 1);
    ck_assert_uint_eq(s.batches, s.per_rank);
    ck_assert_uint_eq(tp_sampler_sample(&s, 0, s.batches - 1, 0), 5);
    ck_assert_uint_eq(tp_sampler_sample(&s, 0, s.batches - 2, 0), UINT64_MAX - 2);
    const tp_sampler one = make(UINT64_MAX, UINT64_MAX, 0, 1, true, false, 0);
    ck_assert_uint_eq(one.batches, 1);
    ck_assert_uint_eq(tp_sampler_batch_len(&one, 0), UINT64_MAX);
    ck_assert_uint_ne(tp_sampler_sample(&one, 0, 0, UINT64_MAX - 1), UINT64_MAX - 1);
}
END_TEST

/* Over 1000 epochs the positions of the first and the last sample fall in each tenth of
 * the order 5% to 15% of the time (a fair shuffle puts 10% +- 1% there). */
START_TEST(test_spread)
{
    enum { N = 1000, EPOCHS = 1000 };
    const tp_sampler s = make(N, 1, 0, 1, true, false, 11);
    int first[10] = {0}, last[10] = {0};
    for (uint64_t e = 0; e < EPOCHS; e++)
        for (uint64_t p = 0; p < N; p++) {
            const uint64_t v = tp_sampler_permute(&s, e, p);
            if (v == 0)
                first[p / (N / 10)]++;
            else if (v == N - 1)
                last[p / (N / 10)]++;
        }
    for (int d = 0; d < 10; d++) {
        ck_assert_msg(first[d] >= EPOCHS / 20 && first[d] <= EPOCHS * 3 / 20,
                      "sample 0 in tenth %d %d times of %d", d, first[d], EPOCHS);
        ck_assert_msg(last[d] >= EPOCHS / 20 && last[d] <= EPOCHS * 3 / 20,
                      "sample %d in tenth %d %d times of %d", N - 1, d, last[d], EPOCHS);
    }
}
END_TEST

/* Avalanche over a block that needs no cycle walking (n = 2^20): flipping any one bit of
 * the position changes about half the bits of the sample, as a random permutation would.
 * Too few rounds fail this: after two, a flip in the high half moves one bit of it. */
START_TEST(test_avalanche)
{
    enum { BITS = 20, TRIES = 2000 };
    const tp_sampler s = make(UINT64_C(1) << BITS, 1, 0, 1, true, false, 13);
    uint64_t x = UINT64_C(88172645463325252); /* Marsaglia's xorshift64 example seed */
    for (int bit = 0; bit < BITS; bit++) {
        uint64_t flipped = 0;
        for (int t = 0; t < TRIES; t++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            const uint64_t p = x & ((UINT64_C(1) << BITS) - 1);
            const uint64_t a = tp_sampler_permute(&s, 0, p);
            const uint64_t b = tp_sampler_permute(&s, 0, p ^ UINT64_C(1) << bit);
            flipped += (uint64_t)__builtin_popcountll(a ^ b);
        }
        const double mean = (double)flipped / TRIES;
        ck_assert_msg(mean > 9.0 && mean < 11.0, "input bit %d flips %.2f of %d output bits",
                      bit, mean, BITS);
    }
}
END_TEST

/* Elastic resume, exhaustively over small cases: after k batches of every rank under W,
 * the position is k * B * W; resumed under W2 (any batch size B2), the rest of the epoch
 * holds every remaining position once, plus padding from the epoch's start (none with
 * drop_last, which may drop a tail); resumed under W itself, the batches are exactly those
 * of the uninterrupted run. */
START_TEST(test_elastic)
{
    const bool drop = _i;
    uint64_t cases = 0;
    for (uint64_t n = 1; n <= 41; n += 4)
        for (uint32_t w = 1; w <= 5; w++)
            for (uint32_t w2 = 1; w2 <= 5; w2++)
                for (uint64_t bs = 1; bs <= 4; bs++) {
                    tp_sampler a, b;
                    if (tp_sampler_init(&a, n, bs, 0, w, true, drop, 9) < 0 || a.batches < 2)
                        continue;
                    const uint64_t k = a.batches / 2, consumed = k * bs * w;
                    ck_assert_uint_eq(tp_sampler_consumed_after(&a, 3, k - 1), consumed);
                    unsigned count[41] = {0};
                    for (uint32_t r = 0; r < w; r++) {
                        ck_assert_int_eq(tp_sampler_init(&a, n, bs, r, w, true, drop, 9), 0);
                        for (uint64_t q = 0; q < k; q++)
                            for (uint64_t j = 0; j < tp_sampler_batch_len(&a, q); j++)
                                count[tp_sampler_sample(&a, 3, q, j)]++;
                    }
                    const uint64_t bs2 = 1 + (n + w2) % 3;
                    uint64_t extra = 0, total = consumed;
                    for (uint32_t r = 0; r < w2; r++) {
                        if (tp_sampler_init(&b, n, bs2, r, w2, true, drop, 9) < 0)
                            goto next; /* drop_last with fewer samples than ranks */
                        tp_sampler_resume(&b, 3, consumed);
                        ck_assert_uint_eq(tp_sampler_start(&b, 3), consumed);
                        ck_assert_uint_eq(tp_sampler_start(&b, 4), 0);
                        const uint64_t nb = tp_sampler_epoch_batches(&b, 3);
                        for (uint64_t q = 0; q < nb; q++) {
                            uint64_t len = tp_sampler_epoch_batch_len(&b, 3, q);
                            for (uint64_t j = 0; j < len; j++)
                                count[tp_sampler_sample(&b, 3, q, j)]++;
                            total += len;
                        }
                        if (nb)
                            ck_assert_uint_eq(tp_sampler_consumed_after(&b, 3, nb - 1), n);
                        /* under the same world and batch size: the same batches */
                        if (w2 == w && bs2 == bs) {
                            ck_assert_int_eq(tp_sampler_init(&a, n, bs, r, w, true, drop, 9), 0);
                            ck_assert_uint_eq(nb, a.batches - k);
                            for (uint64_t q = 0; q < nb; q++)
                                for (uint64_t j = 0; j < tp_sampler_epoch_batch_len(&b, 3, q); j++)
                                    ck_assert_uint_eq(tp_sampler_sample(&b, 3, q, j),
                                                      tp_sampler_sample(&a, 3, q + k, j));
                        }
                    }
                    for (uint64_t id = 0; id < n; id++) {
                        if (!drop)
                            ck_assert_msg(count[id] >= 1, "n %llu w %u w2 %u: %llu missing",
                                          (unsigned long long)n, w, w2, (unsigned long long)id);
                        ck_assert_uint_le(count[id], drop ? 1 : 2);
                        extra += count[id] > 1 ? count[id] - 1 : 0;
                    }
                    if (!drop)
                        ck_assert_uint_eq(total - extra, n);
                    cases++;
                next:;
                }
    ck_assert_uint_gt(cases, 100);
}
END_TEST

#ifndef NDEBUG
/* Positions and batches out of range are the caller's bug and stop the process. */
START_TEST(test_contract)
{
    const tp_sampler s = make(10, 4, 0, 1, true, false, 0); /* batches of 4, 4, 2 */
    switch (_i) {
    case 0: (void)tp_sampler_permute(&s, 0, 10); break;
    case 1: (void)tp_sampler_batch_len(&s, 3); break;
    case 2: (void)tp_sampler_sample(&s, 0, 2, 2); break;
    }
}
END_TEST
#endif

static Suite *sampler_suite(void)
{
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("permutation");
    tcase_add_test(tc, test_init);
    tcase_add_test(tc, test_bijection_small);
    tcase_add_loop_test(tc, test_bijection_large, 0, 4);
    tcase_add_test(tc, test_bijection_huge);
    tcase_add_test(tc, test_determinism);
    tcase_add_test(tc, test_spread);
    tcase_add_test(tc, test_avalanche);
    suite_add_tcase(s, tc);
    tc = tcase_create("partition");
    tcase_add_loop_test(tc, test_partition, 0, 4);
    tcase_add_test(tc, test_edges);
    suite_add_tcase(s, tc);
    tc = tcase_create("resume");
    tcase_add_loop_test(tc, test_resume, 0, 2);
    tcase_add_loop_test(tc, test_elastic, 0, 2);
    suite_add_tcase(s, tc);
    tc = tcase_create("range");
    tcase_add_loop_test(tc, test_large_n, 0, 2);
    tcase_add_test(tc, test_overflow);
#ifndef NDEBUG
    tcase_add_loop_test_raise_signal(tc, test_contract, SIGABRT, 0, 3);
#endif
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tp_test_run(sampler_suite()); }
