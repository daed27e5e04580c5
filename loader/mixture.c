/* Weighted interleaving of datasets (see mixture.h). */
#include "mixture.h"

#include <math.h>

/* Integer shares of P summing to P, each at least 1: exact when some P up to the limit
 * expresses every weight, else the largest-remainder rounding at the limit. */
static void shares(const double *p, uint32_t k, uint32_t *a, uint32_t *period)
{
    for (uint32_t d = k; d <= TP_MIXTURE_PERIOD_MAX; d++) {
        uint32_t sum = 0;
        bool exact = true;
        for (uint32_t i = 0; i < k && exact; i++) {
            double v = p[i] * d, r = nearbyint(v);
            exact = fabs(v - r) <= 1e-9 * d && r >= 1;
            a[i] = (uint32_t)r;
            sum += a[i];
        }
        if (exact && sum == d) {
            *period = d;
            return;
        }
    }
    const uint32_t d = TP_MIXTURE_PERIOD_MAX;
    double rem[TP_MIXTURE_MAX];
    uint32_t sum = 0;
    for (uint32_t i = 0; i < k; i++) {
        double v = p[i] * d;
        a[i] = TP_MAX(1u, (uint32_t)floor(v));
        rem[i] = v - floor(v);
        sum += a[i];
    }
    while (sum < d) { /* hand out what is left, largest remainder first */
        uint32_t best = 0;
        for (uint32_t i = 1; i < k; i++)
            if (rem[i] > rem[best])
                best = i;
        a[best]++;
        rem[best] = -1;
        sum++;
    }
    while (sum > d) { /* only when minimums of 1 overshot: take from the largest */
        uint32_t best = 0;
        for (uint32_t i = 1; i < k; i++)
            if (a[i] > a[best])
                best = i;
        a[best]--;
        sum--;
    }
    *period = d;
}

int tp__mixture_init(tp_mixture *m, const double *weights, const uint64_t *n, uint32_t k,
                     bool shuffle, uint64_t seed, tp_error *err)
{
    memset(m, 0, sizeof(*m));
    if (k == 0 || k > TP_MIXTURE_MAX)
        return tp__error_set(err, TP_EUSAGE, "a mixture of %u sources (1..%u)", k,
                             TP_MIXTURE_MAX);
    double total = 0, p[TP_MIXTURE_MAX];
    for (uint32_t i = 0; i < k; i++) {
        if (!(weights[i] > 0) || !isfinite(weights[i]))
            return tp__error_set(err, TP_EUSAGE, "mixture source %u: weight %g is not above 0",
                                 i, weights[i]);
        if (n[i] == 0)
            return tp__error_set(err, TP_EUSAGE, "mixture source %u has no windows", i);
        total += weights[i];
    }
    for (uint32_t i = 0; i < k; i++)
        p[i] = weights[i] / total;
    m->k = k;
    shares(p, k, m->a, &m->period);
    /* Smooth weighted round-robin over one period. */
    int64_t credit[TP_MIXTURE_MAX] = {0};
    uint32_t seen[TP_MIXTURE_MAX] = {0};
    for (uint32_t t = 0; t < m->period; t++) {
        uint32_t best = 0;
        for (uint32_t i = 0; i < k; i++) {
            credit[i] += m->a[i];
            if (credit[i] > credit[best])
                best = i;
        }
        credit[best] -= m->period;
        m->source[t] = (uint8_t)best;
        m->before[t] = seen[best]++;
    }
    for (uint32_t i = 0; i < k; i++) {
        uint64_t state = seed ^ (0x9E3779B97F4A7C15ull * (i + 1));
        TP_TRY(tp_sampler_init(&m->perm[i], n[i], 1, 0, 1, shuffle, false,
                               tp__splitmix64(&state)));
        m->n[i] = n[i];
    }
    return 0;
}

void tp__mixture_at(const tp_mixture *m, uint64_t g, uint32_t *source, uint64_t *item)
{
    const uint32_t t = (uint32_t)(g % m->period), s = m->source[t];
    const uint64_t j = g / m->period * m->a[s] + m->before[t];
    *source = s;
    *item = tp_sampler_permute(&m->perm[s], j / m->n[s], j % m->n[s]);
}
