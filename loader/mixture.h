/* A mixture of datasets by weight: a fixed interleaving of sources whose proportions are
 * exact over every `period` consecutive positions, each source cycling through its own
 * shuffled epochs.
 *
 * Weights become integers a_i with period P = sum a_i: the smallest P <= 4096 for which
 * every weight is a_i / P within 1e-9 of the normalised weight, else P = 4096 with the
 * remainders rounded largest first (every source keeps at least 1). The schedule is one
 * period of smooth weighted round-robin (each step, every source gains a_i credit and the
 * richest, lowest index on ties, is chosen and pays P), so sources are spread evenly
 * across a period, and any P consecutive positions hold exactly a_i of source i.
 *
 * Global position G (epoch * epoch_length + position in epoch) is occurrence
 * j = (G / P) * a_s + (occurrences of s before G % P in the period) of its source s;
 * that source delivers, at its own epoch j / n_s, item perm_s(j mod n_s), perm_s being
 * the sampler's keyed permutation under a seed of its own. Everything is O(1) per
 * position, so a resume needs no replay. Thread-safety: read-only after init. */
#ifndef TP_MIXTURE_H
#define TP_MIXTURE_H

#include "sampler.h"

#define TP_MIXTURE_MAX 16u
#define TP_MIXTURE_PERIOD_MAX 4096u

typedef struct tp_mixture {
    uint32_t k;                        /* sources */
    uint32_t period;
    uint32_t a[TP_MIXTURE_MAX];        /* occurrences per period */
    uint8_t source[TP_MIXTURE_PERIOD_MAX];  /* the schedule */
    uint32_t before[TP_MIXTURE_PERIOD_MAX]; /* occurrences of that source earlier in it */
    tp_sampler perm[TP_MIXTURE_MAX];   /* each source's order */
    uint64_t n[TP_MIXTURE_MAX];
} tp_mixture;

/* @return : 0, or TP_EUSAGE (no source, too many, a weight not above 0, an empty one). */
int tp__mixture_init(tp_mixture *m, const double *weights, const uint64_t *n, uint32_t k,
                     bool shuffle, uint64_t seed, tp_error *err);

/* The source and item at global position g. */
void tp__mixture_at(const tp_mixture *m, uint64_t g, uint32_t *source, uint64_t *item);

#endif
