/* The sampler: which samples rank `rank` of `world` reads in each batch of each epoch, as a
 * pure function of (seed, epoch, rank, world, N) that needs no coordination between ranks
 * or nodes and O(1) memory.
 *
 * Order. With shuffle, position p of epoch e holds sample perm_{seed,e}(p), where perm is a
 * keyed pseudo-random permutation of 0..N-1 computed per position: a balanced Feistel
 * network over the smallest even number of bits (at least 2) that holds N - 1, with cycle
 * walking (values >= N are encrypted again until they fall below N). Without shuffle perm
 * is the identity. The order is our own, not torch.randperm's; only the partition below
 * follows torch.
 *
 * Partition, as torch.utils.data.DistributedSampler: rank r takes global positions
 * r, r+W, r+2W, ... With drop_last each rank gets floor(N/W) samples (the tail of the
 * order is dropped); without it, ceil(N/W), the order being padded by wrapping round to
 * its start (position g >= N reads position g mod N), so a few samples repeat.
 *
 * Batches. A rank's samples are cut into batches of batch_size in order. One drop_last
 * flag does what torch splits between DistributedSampler and the DataLoader: with it the
 * last incomplete batch is dropped too (so a rank reads batches * batch_size samples, and
 * batches may be 0 when per_rank < batch_size), otherwise the last batch is shorter. Every rank gets the same
 * number of batches, so no rank waits at a collective for another one.
 *
 * Resume. The state (seed, epoch, batches consumed) restores in O(1): batch b of epoch e is
 * computed directly.
 *
 * Elastic resume. After b batches of an epoch under W ranks, the job has consumed exactly
 * the global positions 0..C-1 of the epoch's order, C = b * batch_size * W, whatever each
 * rank did. So the state (seed, epoch, C) means the same under any world size: resumed
 * with W' ranks, the epoch's remaining positions C..n-1 are partitioned as a fresh epoch
 * would be (rank r takes C + r, C + r + W', ..., per rank ceil or floor of (n - C) / W',
 * batches as above, padding wrapping round to the epoch's start), and the following
 * epochs are whole. With W' == W this is exactly the batches b, b+1, ... of the
 * uninterrupted run. Sample ids, and so augmentation randomness, depend on (seed, epoch,
 * position) only. Thread-safety: a tp_sampler is read-only after init and resume. */
#ifndef TP_SAMPLER_H
#define TP_SAMPLER_H

#include "tp_common.h"

typedef struct tp_sampler {
    uint64_t n;            /* samples in the dataset, >= 1 */
    uint64_t batch_size;   /* >= 1 */
    uint64_t seed;
    uint32_t rank, world;  /* 0 <= rank < world */
    bool shuffle, drop_last;
    uint64_t resume_epoch;   /* the epoch that starts part-way (tp_sampler_resume) */
    uint64_t resume_at;      /* its first position, <= n */
    /* derived by tp_sampler_init, for whole epochs */
    uint64_t per_rank;     /* samples per rank per epoch */
    uint64_t batches;      /* batches per rank per epoch */
    unsigned half_bits;    /* Feistel half width */
} tp_sampler;

/* Fills `s`. @return : 0, or TP_EUSAGE for n == 0, batch_size == 0, world == 0,
 *           rank >= world, or drop_last with fewer samples than ranks (every rank would
 *           get nothing). */
int tp_sampler_init(tp_sampler *s, uint64_t n, uint64_t batch_size, uint32_t rank,
                    uint32_t world, bool shuffle, bool drop_last, uint64_t seed);

/* Starts epoch `epoch` at global position `consumed` (clamped to n), the positions before
 * it having been delivered by some earlier run of any world size. */
void tp_sampler_resume(tp_sampler *s, uint64_t epoch, uint64_t consumed);

/* The first position of `epoch`'s order this sampler delivers (0 but for the resumed one). */
uint64_t tp_sampler_start(const tp_sampler *s, uint64_t epoch);

/* Batches of `epoch` for this rank (those left after its start; may be 0). */
uint64_t tp_sampler_epoch_batches(const tp_sampler *s, uint64_t epoch);

/* The number of samples in batch `b` of `epoch` (b < tp_sampler_epoch_batches). */
uint64_t tp_sampler_epoch_batch_len(const tp_sampler *s, uint64_t epoch, uint64_t b);

/* Global positions of `epoch` the whole job has consumed once every rank has read its
 * batch `b`: n after the epoch's last batch. The resume state after b is (epoch, this),
 * or (epoch + 1, 0) when it is n. */
uint64_t tp_sampler_consumed_after(const tp_sampler *s, uint64_t epoch, uint64_t b);

/* The sample at position `p` (0 <= p < n) of the epoch's global order. */
uint64_t tp_sampler_permute(const tp_sampler *s, uint64_t epoch, uint64_t p);

/* The number of samples in batch `b` (0 <= b < s->batches). */
uint64_t tp_sampler_batch_len(const tp_sampler *s, uint64_t b);

/* The id of sample `j` of batch `b` of `epoch` for this rank (j < epoch_batch_len). The
 * batches are counted from the epoch's start (tp_sampler_start). */
uint64_t tp_sampler_sample(const tp_sampler *s, uint64_t epoch, uint64_t b, uint64_t j);

#endif
