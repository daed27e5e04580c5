/* Antialiased bilinear resampling of an RGB region, with the arithmetic of Pillow's
 * ImagingResample (the resize torchvision's PIL path uses): a triangle filter whose
 * support widens with the reduction factor, weights normalised per output pixel and
 * rounded to 22-bit fixed point, a horizontal pass over only the rows the vertical pass
 * needs, then the vertical pass. Taps are confined to a window, which is how cropping
 * before resizing behaves. The kernel is our own rather than libswscale's: swscale has
 * no fractional source boxes or tap windows, which scaled and region decoding need, and
 * its arithmetic differs from Pillow's. */
#include "transform.h"
#include "resample_fast.h"

#include <math.h>
#include <stdlib.h>

#define PRECISION_BITS (32 - 8 - 2)

typedef struct coeffs {
    int *bounds;   /* per output pixel: first input index, tap count */
    int32_t *k;    /* per output pixel: ksize fixed-point weights */
    int ksize;
} coeffs;

static double triangle(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Weights for mapping input [in0, in1) onto `out` pixels, taps within [lo, hi): the
 * normalised weights in s->w, and with `fixed` their 22-bit table in c->k. */
static int precompute(tp_resample_scratch *s, int which, double in0, double in1, int lo, int hi,
                      int out, bool fixed, coeffs *c)
{
    double scale = (in1 - in0) / out, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = filterscale, ss = 1.0 / filterscale;
    c->ksize = (int)ceil(support) * 2 + 1;
    size_t nk = (size_t)out * (size_t)c->ksize;
    if (tp__grow(&s->bounds[which], &s->bounds_cap[which], (size_t)out * 2 * sizeof(int)) < 0 ||
        tp__grow(&s->k[which], &s->k_cap[which], nk * sizeof(int32_t)) < 0 ||
        tp__grow(&s->w, &s->w_cap, nk * sizeof(double)) < 0)
        return -ENOMEM;
    c->bounds = s->bounds[which];
    c->k = s->k[which];
    for (int xx = 0; xx < out; xx++) {
        double center = in0 + (xx + 0.5) * scale, ww = 0.0;
        double *w = (double *)s->w + (size_t)xx * c->ksize;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        xmin = xmin < lo ? lo : xmin;
        xmax = (xmax > hi ? hi : xmax) - xmin;
        xmax = xmax > c->ksize ? c->ksize : xmax < 0 ? 0 : xmax;
        for (int x = 0; x < xmax; x++)
            ww += w[x] = triangle((x + xmin - center + 0.5) * ss);
        int32_t *k = c->k + (size_t)xx * c->ksize;
        for (int x = 0; x < c->ksize; x++) {
            double v = w[x] = x < xmax && ww != 0.0 ? w[x] / ww : 0.0;
            if (fixed)
                k[x] = (int32_t)(v < 0 ? trunc(-0.5 + v * (1 << PRECISION_BITS))
                                       : trunc(0.5 + v * (1 << PRECISION_BITS)));
        }
        c->bounds[xx * 2] = xmin;
        c->bounds[xx * 2 + 1] = xmax;
    }
    return 0;
}

/* Weights sum to 1 << PRECISION_BITS, so 255 times the sum, plus rounding, fits in
 * 32 bits (as in Pillow); overshoot from negative-free triangle weights cannot occur,
 * but rounding of the weights can leave a sum slightly off, hence the clamp. */
static unsigned char clip8(int32_t v)
{
    v >>= PRECISION_BITS;
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static void horizontal(const unsigned char *src, size_t sstride, int row0, int rows,
                       const coeffs *c, int out, bool mirror, unsigned char *tmp)
{
    for (int y = 0; y < rows; y++) {
        const unsigned char *in = src + (size_t)(row0 + y) * sstride;
        unsigned char *o = tmp + (size_t)y * out * 3;
        for (int xx = 0; xx < out; xx++) {
            int xmin = c->bounds[xx * 2], n = c->bounds[xx * 2 + 1];
            const int32_t *k = c->k + (size_t)xx * c->ksize;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < n; x++) {
                const unsigned char *p = in + (size_t)(x + xmin) * 3;
                s0 += p[0] * k[x];
                s1 += p[1] * k[x];
                s2 += p[2] * k[x];
            }
            unsigned char *d = o + (size_t)(mirror ? out - 1 - xx : xx) * 3;
            d[0] = clip8(s0);
            d[1] = clip8(s1);
            d[2] = clip8(s2);
        }
    }
}

/* Row by row: each tap adds a whole input row to an accumulator row, which the
 * compiler vectorises (summation order per pixel is unchanged, so results are too). */
static void vertical(const unsigned char *tmp, int width, int row0, const coeffs *c, int out,
                     unsigned char *dst, size_t dstride, int32_t *acc, const tp_resample_job *j)
{
    size_t stride = (size_t)width * 3;
    for (int yy = 0; yy < out; yy++) {
        int ymin = c->bounds[yy * 2] - row0, n = c->bounds[yy * 2 + 1];
        const int32_t *k = c->k + (size_t)yy * c->ksize;
        for (size_t x = 0; x < stride; x++)
            acc[x] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < n; y++) {
            const unsigned char *row = tmp + (size_t)(y + ymin) * stride;
            int32_t w = k[y];
            for (size_t x = 0; x < stride; x++)
                acc[x] += row[x] * w;
        }
        unsigned char *o = j->row_out ? dst : dst + (size_t)yy * dstride;
        for (size_t x = 0; x < stride; x++)
            o[x] = clip8(acc[x]);
        if (j->row_out)
            j->row_out(j->row_ctx, yy, o);
    }
}

/* ---- the default path: 14-bit weights, SIMD where the CPU has it
 *
 * Weights rounded to 14 bits fit 16-bit lanes, so two taps of one channel cost one
 * multiply-add instruction (pmaddwd); the sums stay in 32 bits (255 times the weights'
 * sum, about 2^14, is far from overflow). The SIMD and scalar versions compute the same integers in the same
 * way, so output is identical on every CPU. Against the 22-bit path the rounding of the
 * weights moves a pixel by at most one level. */

static int16_t fixed14(double v)
{
    return (int16_t)(v < 0 ? trunc(-0.5 + v * (1 << FAST_BITS))
                           : trunc(0.5 + v * (1 << FAST_BITS)));
}

/* The 14-bit tables for `out` pixels of `pairs` tap pairs, in the scratch. */
static int fast_tables(tp_resample_scratch *s, int which, int out, int pairs, fcoeffs *f)
{
    f->pairs = pairs;
    size_t lanes = (size_t)out * (size_t)pairs * 8;
    if (tp__grow(&s->fbounds[which], &s->fbounds_cap[which], (size_t)out * 4 * sizeof(int)) < 0 ||
        tp__grow(&s->fk[which], &s->fk_cap[which], lanes * sizeof(int16_t)) < 0)
        return -ENOMEM;
    f->bounds = s->fbounds[which];
    f->k = s->fk[which];
    return 0;
}

/* Output pixel xx's entry: its n normalised weights w[0], w[step], ... (taps from input
 * pixel xmin on) rounded to 14 bits and laid out in pairs, and its bounds. */
static void fast_pixel(const fcoeffs *f, int xx, int xmin, int n, const double *w, size_t step,
                       int row_pixels)
{
    int16_t *k = f->k + (size_t)xx * f->pairs * 8;
    memset(k, 0, (size_t)f->pairs * 8 * sizeof(int16_t));
    int taps = 0;
    for (int x = 0; x < n; x++) {
        int16_t v = fixed14(w[x * step]);
        for (int ch = 0; ch < 3; ch++)
            k[(x / 2) * 8 + ch * 2 + (x & 1)] = v;
        taps = v ? x + 1 : taps;
    }
    int np = (taps + 1) / 2, *b = f->bounds + xx * 4;
    b[0] = xmin;
    b[1] = np;
    /* the last 8-byte load starts at pixel xmin + 2(np - 1) */
    b[2] = (xmin + 2 * np) * 3 + 2 <= row_pixels * 3;
    b[3] = taps;
}

/* The 14-bit pair table, from the normalised weights the 22-bit table is made of. */
static int precompute_fast(tp_resample_scratch *s, int which, double in0, double in1, int lo,
                           int hi, int out, int row_pixels, fcoeffs *f)
{
    coeffs c;
    TP_TRY(precompute(s, which, in0, in1, lo, hi, out, false, &c));
    TP_TRY(fast_tables(s, which, out, (c.ksize + 1) / 2, f));
    for (int xx = 0; xx < out; xx++)
        fast_pixel(f, xx, c.bounds[xx * 2], c.bounds[xx * 2 + 1],
                   (const double *)s->w + (size_t)xx * c.ksize, 1, row_pixels);
    return 0;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* precompute_fast for eight output pixels at a time with AVX-512F and VL: each lane does in
 * double precision what the scalar code does for its pixel, operation for operation and
 * in the same order (separate multiplies and adds, the weights summed tap by tap), so the
 * normalised weights are identical; rounding and laying them out stay scalar. */
__attribute__((target("avx512f,avx512vl"))) static int
precompute_fast_avx512(tp_resample_scratch *s, int which, double in0, double in1, int lo,
                       int hi, int out, int row_pixels, fcoeffs *f)
{
    double scale = (in1 - in0) / out, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = filterscale, ss = 1.0 / filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    TP_TRY(fast_tables(s, which, out, (ksize + 1) / 2, f));
    if (tp__grow(&s->w, &s->w_cap, (size_t)ksize * 8 * sizeof(double) + 64) < 0)
        return -ENOMEM;
    double *w = (double *)(((uintptr_t)s->w + 63) & ~(uintptr_t)63); /* ksize x 8 lanes */
    const __m512d half = _mm512_set1_pd(0.5), one = _mm512_set1_pd(1.0), zero = _mm512_setzero_pd();
    const __m512d vscale = _mm512_set1_pd(scale), vsupport = _mm512_set1_pd(support);
    const __m512d vss = _mm512_set1_pd(ss);
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int x0 = 0; x0 < out; x0 += 8) {
        __m512d center = _mm512_add_pd(
            _mm512_set1_pd(in0),
            _mm512_mul_pd(_mm512_add_pd(_mm512_cvtepi32_pd(_mm256_add_epi32(
                                            _mm256_set1_epi32(x0), iota)),
                                        half),
                          vscale));
        __m256i xmin = _mm512_cvttpd_epi32(
            _mm512_add_pd(_mm512_sub_pd(center, vsupport), half));
        __m256i xmax = _mm512_cvttpd_epi32(
            _mm512_add_pd(_mm512_add_pd(center, vsupport), half));
        xmin = _mm256_max_epi32(xmin, _mm256_set1_epi32(lo));
        xmax = _mm256_sub_epi32(_mm256_min_epi32(xmax, _mm256_set1_epi32(hi)), xmin);
        xmax = _mm256_max_epi32(_mm256_min_epi32(xmax, _mm256_set1_epi32(ksize)),
                                _mm256_setzero_si256());
        __m512d ww = zero;
        for (int x = 0; x < ksize; x++) {
            __mmask8 in = _mm256_cmpgt_epi32_mask(xmax, _mm256_set1_epi32(x));
            __m512d arg = _mm512_mul_pd(
                _mm512_add_pd(_mm512_sub_pd(_mm512_cvtepi32_pd(_mm256_add_epi32(
                                                xmin, _mm256_set1_epi32(x))),
                                            center),
                              half),
                vss);
            __m512d t = _mm512_abs_pd(arg);
            __m512d v = _mm512_maskz_sub_pd(in & _mm512_cmp_pd_mask(t, one, _CMP_LT_OQ), one, t);
            ww = _mm512_add_pd(ww, v);
            _mm512_store_pd(w + (size_t)x * 8, v);
        }
        /* taps past a pixel's count are never read; a zero sum leaves zeros */
        __mmask8 nonzero = _mm512_cmp_pd_mask(ww, zero, _CMP_NEQ_UQ);
        for (int x = 0; x < ksize; x++)
            _mm512_store_pd(w + (size_t)x * 8,
                            _mm512_maskz_div_pd(nonzero, _mm512_load_pd(w + (size_t)x * 8), ww));
        int bmin[8], bn[8];
        _mm256_storeu_si256((__m256i *)(void *)bmin, xmin);
        _mm256_storeu_si256((__m256i *)(void *)bn, xmax);
        for (int l = 0; l < 8 && x0 + l < out; l++)
            fast_pixel(f, x0 + l, bmin[l], bn[l], w + l, 8, row_pixels);
    }
    return 0;
}
#endif

static unsigned char clip14(int32_t v)
{
    v >>= FAST_BITS;
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* One output pixel of the horizontal pass, in plain C. */
static void hpixel_scalar(const unsigned char *in, const int *b, const int16_t *k,
                          unsigned char *o)
{
    int32_t s0 = 1 << (FAST_BITS - 1), s1 = s0, s2 = s0;
    const unsigned char *p = in + (size_t)b[0] * 3;
    for (int q = 0; q < b[1]; q++, p += 6, k += 8) {
        s0 += p[0] * k[0] + (k[1] ? p[3] * k[1] : 0);
        s1 += p[1] * k[2] + (k[3] ? p[4] * k[3] : 0);
        s2 += p[2] * k[4] + (k[5] ? p[5] * k[5] : 0);
    }
    o[0] = clip14(s0);
    o[1] = clip14(s1);
    o[2] = clip14(s2);
}

static void horizontal_scalar(const unsigned char *src, size_t sstride, int row0, int rows,
                              const fcoeffs *f, int out, bool mirror, unsigned char *tmp)
{
    for (int y = 0; y < rows; y++) {
        const unsigned char *in = src + (size_t)(row0 + y) * sstride;
        unsigned char *o = tmp + (size_t)y * out * 3;
        for (int xx = 0; xx < out; xx++)
            hpixel_scalar(in, f->bounds + xx * 4, f->k + (size_t)xx * f->pairs * 8,
                          o + (size_t)(mirror ? out - 1 - xx : xx) * 3);
    }
}

static void vertical_scalar(const unsigned char *tmp, int width, int row0, const fcoeffs *f,
                            int out, unsigned char *dst, size_t dstride, int32_t *acc,
                            const tp_resample_job *j)
{
    size_t stride = (size_t)width * 3;
    for (int yy = 0; yy < out; yy++) {
        int ymin = f->bounds[yy * 4] - row0, np = f->bounds[yy * 4 + 1];
        const int16_t *k = f->k + (size_t)yy * f->pairs * 8;
        for (size_t x = 0; x < stride; x++)
            acc[x] = 1 << (FAST_BITS - 1);
        for (int q = 0; q < np; q++)
            for (int h = 0; h < 2; h++) {
                int32_t w = k[q * 8 + h];
                if (!w)
                    continue;
                const unsigned char *row = tmp + (size_t)(ymin + 2 * q + h) * stride;
                for (size_t x = 0; x < stride; x++)
                    acc[x] += row[x] * w;
            }
        unsigned char *o = j->row_out ? dst : dst + (size_t)yy * dstride;
        for (size_t x = 0; x < stride; x++)
            o[x] = clip14(acc[x]);
        if (j->row_out)
            j->row_out(j->row_ctx, yy, o);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* SSSE3: load pixels p, p+1 (8 bytes), spread to {r0 r1 g0 g1 b0 b1 0 0} as 16-bit lanes,
 * one pmaddwd per pair of taps; four rows at a time share each pixel's weights. */
__attribute__((target("ssse3"))) static inline __m128i hsum_ssse3(const unsigned char *p,
                                                                  const int16_t *k, int np)
{
    const __m128i spread = _mm_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1);
    __m128i acc = _mm_set1_epi32(1 << (FAST_BITS - 1));
    for (int q = 0; q < np; q++, p += 6, k += 8) {
        __m128i v = _mm_shuffle_epi8(_mm_loadl_epi64((const __m128i *)p), spread);
        acc = _mm_add_epi32(acc, _mm_madd_epi16(v, _mm_loadu_si128((const __m128i *)k)));
    }
    return _mm_srai_epi32(acc, FAST_BITS);
}

static inline void put3(unsigned char *d, uint32_t px)
{
    d[0] = (unsigned char)px;
    d[1] = (unsigned char)(px >> 8);
    d[2] = (unsigned char)(px >> 16);
}

__attribute__((target("ssse3"))) static void
horizontal_ssse3(const unsigned char *src, size_t sstride, int row0, int rows, const fcoeffs *f,
                 int out, bool mirror, unsigned char *tmp)
{
    size_t ostride = (size_t)out * 3;
    for (int y = 0; y < rows;) {
        int g = rows - y >= 4 ? 4 : 1; /* rows in this group */
        const unsigned char *in = src + (size_t)(row0 + y) * sstride;
        unsigned char *o = tmp + (size_t)y * ostride;
        for (int xx = 0; xx < out; xx++) {
            const int *b = f->bounds + xx * 4;
            const int16_t *k = f->k + (size_t)xx * f->pairs * 8;
            unsigned char *d = o + (size_t)(mirror ? out - 1 - xx : xx) * 3;
            if (!b[2]) {
                for (int r = 0; r < g; r++)
                    hpixel_scalar(in + r * sstride, b, k, d + r * ostride);
                continue;
            }
            const unsigned char *p = in + (size_t)b[0] * 3;
            __m128i a0 = hsum_ssse3(p, k, b[1]), a1 = a0, a2 = a0, a3 = a0;
            if (g == 4) {
                a1 = hsum_ssse3(p + sstride, k, b[1]);
                a2 = hsum_ssse3(p + 2 * sstride, k, b[1]);
                a3 = hsum_ssse3(p + 3 * sstride, k, b[1]);
            }
            __m128i v = _mm_packus_epi16(_mm_packs_epi32(a0, a1), _mm_packs_epi32(a2, a3));
            for (int r = 0; r < g; r++, v = _mm_srli_si128(v, 4))
                put3(d + r * ostride, (uint32_t)_mm_cvtsi128_si32(v));
        }
        y += g;
    }
}

static inline void put4(unsigned char *d, uint32_t px) { memcpy(d, &px, 4); }

/* The AVX2 sums of one output pixel over four rows: rows 0 1 | 2 3 in the lanes of a01 and
 * a23. */
__attribute__((target("avx2"))) static inline void
hsum4_avx2(const unsigned char *p, size_t sstride, int np, const int16_t *k, __m256i spread,
           __m256i *a01, __m256i *a23)
{
    for (int q = 0; q < np; q++, p += 6, k += 8) {
        __m256i w = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)k));
        __m256i v01 = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadl_epi64((const __m128i *)p)),
            _mm_loadl_epi64((const __m128i *)(p + sstride)), 1);
        __m256i v23 = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadl_epi64((const __m128i *)(p + 2 * sstride))),
            _mm_loadl_epi64((const __m128i *)(p + 3 * sstride)), 1);
        *a01 = _mm256_add_epi32(*a01, _mm256_madd_epi16(_mm256_shuffle_epi8(v01, spread), w));
        *a23 = _mm256_add_epi32(*a23, _mm256_madd_epi16(_mm256_shuffle_epi8(v23, spread), w));
    }
}

/* Rows 0 1 | 2 3 -> 16-bit {0 2 | 1 3} -> bytes 0 2 1 3: the pixel of each row as the
 * low three bytes of a 32-bit lane. */
__attribute__((target("avx2"))) static inline __m128i hpack_avx2(__m256i a01, __m256i a23)
{
    __m256i w16 = _mm256_packs_epi32(_mm256_srai_epi32(a01, FAST_BITS),
                                     _mm256_srai_epi32(a23, FAST_BITS));
    return _mm_packus_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
}

/* Stores four rows' pixels (lanes 0 2 1 3 of v8) at d, as four bytes when the byte after a
 * pixel is the next pixel's, which is written after it. */
__attribute__((target("avx2"))) static inline void hstore4(unsigned char *d, size_t ostride,
                                                           __m128i v8, bool wide)
{
    uint32_t p0 = (uint32_t)_mm_cvtsi128_si32(v8), p2 = (uint32_t)_mm_extract_epi32(v8, 1);
    uint32_t p1 = (uint32_t)_mm_extract_epi32(v8, 2), p3 = (uint32_t)_mm_extract_epi32(v8, 3);
    if (wide) {
        put4(d, p0), put4(d + ostride, p1), put4(d + 2 * ostride, p2), put4(d + 3 * ostride, p3);
    } else {
        put3(d, p0), put3(d + ostride, p1), put3(d + 2 * ostride, p2), put3(d + 3 * ostride, p3);
    }
}

__attribute__((target("avx2"))) static inline void
hpixel_avx2(const unsigned char *p, size_t sstride, int np, const int16_t *k, __m256i spread,
            __m256i half, unsigned char *d, size_t ostride, bool wide)
{
    __m256i a01 = half, a23 = half;
    hsum4_avx2(p, sstride, np, k, spread, &a01, &a23);
    hstore4(d, ostride, hpack_avx2(a01, a23), wide);
}

/* Two neighbouring output pixels with the same number of tap pairs: their sums are
 * independent, so interleaving them hides the multiply-add latency. */
__attribute__((target("avx2"))) static inline void
hpair_avx2(const unsigned char *in, size_t sstride, const int *b, const int16_t *k,
           const int *b2, const int16_t *k2, __m256i spread, __m256i half, unsigned char *d,
           size_t ostride)
{
    const unsigned char *p = in + (size_t)b[0] * 3, *p2 = in + (size_t)b2[0] * 3;
    __m256i a01 = half, a23 = half, c01 = half, c23 = half;
    for (int q = 0; q < b[1]; q++, p += 6, k += 8, p2 += 6, k2 += 8) {
        hsum4_avx2(p, sstride, 1, k, spread, &a01, &a23);
        hsum4_avx2(p2, sstride, 1, k2, spread, &c01, &c23);
    }
    /* rows 0 1 of both pixels, rows 2 3 -> bytes {A0 C0 A2 C2 | A1 C1 A3 C3}, four
     * bytes each -> each row's six bytes, stored as eight (the next pixel's two follow) */
    const __m256i six = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, -1, -1, 8, 9, 10, 12, 13, 14, -1,
                                         -1, 0, 1, 2, 4, 5, 6, -1, -1, 8, 9, 10, 12, 13, 14,
                                         -1, -1);
    __m256i w01 = _mm256_packs_epi32(_mm256_srai_epi32(a01, FAST_BITS),
                                     _mm256_srai_epi32(c01, FAST_BITS));
    __m256i w23 = _mm256_packs_epi32(_mm256_srai_epi32(a23, FAST_BITS),
                                     _mm256_srai_epi32(c23, FAST_BITS));
    __m256i v = _mm256_shuffle_epi8(_mm256_packus_epi16(w01, w23), six);
    __m128i r02 = _mm256_castsi256_si128(v), r13 = _mm256_extracti128_si256(v, 1);
    _mm_storel_epi64((__m128i *)d, r02);
    _mm_storel_epi64((__m128i *)(d + ostride), r13);
    _mm_storel_epi64((__m128i *)(d + 2 * ostride), _mm_unpackhi_epi64(r02, r02));
    _mm_storel_epi64((__m128i *)(d + 3 * ostride), _mm_unpackhi_epi64(r13, r13));
}

/* AVX2: two rows per register (one per 128-bit lane, the same spread and weights as the
 * SSSE3 pass), so four rows take two multiply-adds per pair of taps instead of four and
 * load each pair's weights once. The sums are the same integers. Output pixels are made
 * left to right (the source walked backwards for a mirror), so each is stored as four
 * bytes whose fourth the next pixel overwrites; the last of a row as three. */
__attribute__((target("avx2"))) static void
horizontal_avx2(const unsigned char *src, size_t sstride, int row0, int rows, const fcoeffs *f,
                int out, bool mirror, unsigned char *tmp)
{
    size_t ostride = (size_t)out * 3;
    const __m256i spread = _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1,
                                            -1, -1, 0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1,
                                            -1, -1, -1, -1);
    const __m256i half = _mm256_set1_epi32(1 << (FAST_BITS - 1));
    int y = 0;
    for (; y + 4 <= rows; y += 4) {
        const unsigned char *in = src + (size_t)(row0 + y) * sstride;
        unsigned char *d = tmp + (size_t)y * ostride;
        for (int i = 0; i < out; i++, d += 3) {
            int xx = mirror ? out - 1 - i : i;
            const int *b = f->bounds + xx * 4;
            const int16_t *k = f->k + (size_t)xx * f->pairs * 8;
            if (!b[2]) {
                for (int r = 0; r < 4; r++)
                    hpixel_scalar(in + r * sstride, b, k, d + r * ostride);
                continue;
            }
            int x2 = mirror ? xx - 1 : xx + 1; /* the next output pixel's source */
            if (i + 2 < out && f->bounds[x2 * 4 + 2] && f->bounds[x2 * 4 + 1] == b[1]) {
                hpair_avx2(in, sstride, b, k, f->bounds + x2 * 4,
                           f->k + (size_t)x2 * f->pairs * 8, spread, half, d, ostride);
                i++, d += 3;
                continue;
            }
            hpixel_avx2(in + (size_t)b[0] * 3, sstride, b[1], k, spread, half, d, ostride,
                        i + 1 < out);
        }
    }
    if (y < rows)
        horizontal_ssse3(src, sstride, row0 + y, rows - y, f, out, mirror,
                         tmp + (size_t)y * ostride);
}

/* SSE2: one output row of the vertical pass from byte x on: rows a and b interleaved
 * byte-wise, widened to 16 bits, one pmaddwd with {wa wb} per four columns. */
static void vrow_sse2(const unsigned char *tmp, size_t stride, int ymin, int np,
                      const int16_t *k, unsigned char *o, size_t x)
{
    size_t body = stride & ~(size_t)15;
    const __m128i zero = _mm_setzero_si128(), half = _mm_set1_epi32(1 << (FAST_BITS - 1));
    for (; x < body; x += 16) {
        __m128i s0 = half, s1 = half, s2 = half, s3 = half;
        for (int q = 0; q < np; q++) {
            const unsigned char *ra = tmp + (size_t)(ymin + 2 * q) * stride + x;
            const unsigned char *rb = k[q * 8 + 1] ? ra + stride : ra;
            __m128i w = _mm_set1_epi32((int)((uint32_t)(uint16_t)k[q * 8 + 1] << 16 |
                                             (uint16_t)k[q * 8]));
            __m128i a = _mm_loadu_si128((const __m128i *)ra);
            __m128i bb = _mm_loadu_si128((const __m128i *)rb);
            __m128i lo = _mm_unpacklo_epi8(a, bb), hi = _mm_unpackhi_epi8(a, bb);
            s0 = _mm_add_epi32(s0, _mm_madd_epi16(_mm_unpacklo_epi8(lo, zero), w));
            s1 = _mm_add_epi32(s1, _mm_madd_epi16(_mm_unpackhi_epi8(lo, zero), w));
            s2 = _mm_add_epi32(s2, _mm_madd_epi16(_mm_unpacklo_epi8(hi, zero), w));
            s3 = _mm_add_epi32(s3, _mm_madd_epi16(_mm_unpackhi_epi8(hi, zero), w));
        }
        s0 = _mm_srai_epi32(s0, FAST_BITS);
        s1 = _mm_srai_epi32(s1, FAST_BITS);
        s2 = _mm_srai_epi32(s2, FAST_BITS);
        s3 = _mm_srai_epi32(s3, FAST_BITS);
        __m128i v = _mm_packus_epi16(_mm_packs_epi32(s0, s1), _mm_packs_epi32(s2, s3));
        _mm_storeu_si128((__m128i *)(o + x), v);
    }
    for (; x < stride; x++) { /* the tail, as vertical_scalar does it */
        int32_t sum = 1 << (FAST_BITS - 1);
        for (int q = 0; q < np; q++)
            for (int h = 0; h < 2; h++)
                if (k[q * 8 + h])
                    sum += tmp[(size_t)(ymin + 2 * q + h) * stride + x] * k[q * 8 + h];
        o[x] = clip14(sum);
    }
}

static void vertical_sse2(const unsigned char *tmp, int width, int row0, const fcoeffs *f,
                          int out, unsigned char *dst, size_t dstride, const tp_resample_job *j)
{
    size_t stride = (size_t)width * 3;
    for (int yy = 0; yy < out; yy++) {
        unsigned char *o = j->row_out ? dst : dst + (size_t)yy * dstride;
        vrow_sse2(tmp, stride, f->bounds[yy * 4] - row0, f->bounds[yy * 4 + 1],
                  f->k + (size_t)yy * f->pairs * 8, o, 0);
        if (j->row_out)
            j->row_out(j->row_ctx, yy, o);
    }
}

/* AVX2: the SSE2 pass on 32 bytes at a time (the unpacks and packs work within each
 * 128-bit lane, so each lane is the SSE2 computation of its 16 bytes); the rest of a row
 * as SSE2 does it. */
__attribute__((target("avx2"))) static void
vertical_avx2(const unsigned char *tmp, int width, int row0, const fcoeffs *f, int out,
              unsigned char *dst, size_t dstride, const tp_resample_job *j)
{
    size_t stride = (size_t)width * 3, body = stride & ~(size_t)31;
    const __m256i zero = _mm256_setzero_si256(), half = _mm256_set1_epi32(1 << (FAST_BITS - 1));
    for (int yy = 0; yy < out; yy++) {
        int ymin = f->bounds[yy * 4] - row0, np = f->bounds[yy * 4 + 1];
        const int16_t *k = f->k + (size_t)yy * f->pairs * 8;
        unsigned char *o = j->row_out ? dst : dst + (size_t)yy * dstride;
        for (size_t x = 0; x < body; x += 32) {
            __m256i s0 = half, s1 = half, s2 = half, s3 = half;
            for (int q = 0; q < np; q++) {
                const unsigned char *ra = tmp + (size_t)(ymin + 2 * q) * stride + x;
                const unsigned char *rb = k[q * 8 + 1] ? ra + stride : ra;
                __m256i w = _mm256_set1_epi32((int)((uint32_t)(uint16_t)k[q * 8 + 1] << 16 |
                                                    (uint16_t)k[q * 8]));
                __m256i a = _mm256_loadu_si256((const __m256i *)ra);
                __m256i bb = _mm256_loadu_si256((const __m256i *)rb);
                __m256i lo = _mm256_unpacklo_epi8(a, bb), hi = _mm256_unpackhi_epi8(a, bb);
                s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_unpacklo_epi8(lo, zero), w));
                s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(_mm256_unpackhi_epi8(lo, zero), w));
                s2 = _mm256_add_epi32(s2, _mm256_madd_epi16(_mm256_unpacklo_epi8(hi, zero), w));
                s3 = _mm256_add_epi32(s3, _mm256_madd_epi16(_mm256_unpackhi_epi8(hi, zero), w));
            }
            s0 = _mm256_srai_epi32(s0, FAST_BITS);
            s1 = _mm256_srai_epi32(s1, FAST_BITS);
            s2 = _mm256_srai_epi32(s2, FAST_BITS);
            s3 = _mm256_srai_epi32(s3, FAST_BITS);
            __m256i v = _mm256_packus_epi16(_mm256_packs_epi32(s0, s1),
                                            _mm256_packs_epi32(s2, s3));
            _mm256_storeu_si256((__m256i *)(o + x), v);
        }
        vrow_sse2(tmp, stride, ymin, np, k, o, body);
        if (j->row_out)
            j->row_out(j->row_ctx, yy, o);
    }
}
#endif

/* -1: what the CPU has; for tests: 0 plain C, 1 SSSE3/SSE2, 2 AVX2 (no AVX-512), 3 AVX-512
 * without VNNI */
int tp__resample_simd = -1;

/* Read-only here (decode threads call it concurrently); only tests set the override. */
static bool use_simd(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    return tp__resample_simd < 0 ? __builtin_cpu_supports("ssse3") : tp__resample_simd > 0;
#else
    return false;
#endif
}

/* The rows [first, last) of the window that the vertical pass reads. */
static void rows_read(const int *bounds, int fields, int out, int *first, int *last)
{
    *first = bounds[0];
    *last = bounds[0];
    for (int y = 0; y < out; y++) {
        const int *b = bounds + (size_t)y * fields;
        *first = TP_MIN(*first, b[0]);
        *last = TP_MAX(*last, b[0] + b[fields - 1]);
    }
    *last = TP_MAX(*last, *first + 1);
}

int tp_resample(const tp_resample_job *j, tp_resample_scratch *s)
{
    assert(j->win_x0 >= 0 && j->win_x1 <= j->src_w && j->win_x0 < j->win_x1);
    assert(j->win_y0 >= 0 && j->win_y1 <= j->src_h && j->win_y0 < j->win_y1);
    TP_TRY(tp__grow(&s->acc, &s->acc_cap, (size_t)j->dst_w * 3 * sizeof(int32_t)));
    if (j->row_out)
        TP_TRY(tp__grow(&s->row, &s->row_cap, (size_t)j->dst_w * 3 + 16));
    unsigned char *dst = j->row_out ? s->row : j->dst; /* rows land in the row buffer */
    int first, last;
    if (j->exact) {
        coeffs ch, cv;
        TP_TRY(precompute(s, 0, j->box_x0, j->box_x1, j->win_x0, j->win_x1, j->dst_w, true, &ch));
        TP_TRY(precompute(s, 1, j->box_y0, j->box_y1, j->win_y0, j->win_y1, j->dst_h, true, &cv));
        rows_read(cv.bounds, 2, j->dst_h, &first, &last);
        TP_TRY(tp__grow(&s->tmp, &s->tmp_cap, (size_t)(last - first) * j->dst_w * 3));
        horizontal(j->src, j->src_stride, first, last - first, &ch, j->dst_w, j->mirror, s->tmp);
        vertical(s->tmp, j->dst_w, first, &cv, j->dst_h, dst, j->dst_stride, s->acc, j);
        return 0;
    }
    fcoeffs fh, fv;
    int (*weights)(tp_resample_scratch *, int, double, double, int, int, int, int, fcoeffs *) =
        precompute_fast;
#if defined(__x86_64__) && defined(__GNUC__)
    if (use_simd() && (tp__resample_simd < 0 || tp__resample_simd == 3) &&
        __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
        weights = precompute_fast_avx512;
#endif
    TP_TRY(weights(s, 0, j->box_x0, j->box_x1, j->win_x0, j->win_x1, j->dst_w, j->src_w, &fh));
    TP_TRY(weights(s, 1, j->box_y0, j->box_y1, j->win_y0, j->win_y1, j->dst_h, j->src_h, &fv));
    rows_read(fv.bounds, 4, j->dst_h, &first, &last);
    TP_TRY(tp__grow(&s->tmp, &s->tmp_cap, (size_t)(last - first) * j->dst_w * 3));
#if defined(__x86_64__) && defined(__GNUC__)
    if (use_simd()) {
        if (tp__resample_simd != 1 && __builtin_cpu_supports("avx2")) {
            bool avx512 = tp__resample_simd != 2, vnni = tp__resample_simd != 3;
            int rc = avx512 ? tp__horizontal_avx512(j->src, j->src_stride, first, last - first,
                                                    &fh, j->dst_w, j->src_w, j->mirror, s->tmp,
                                                    &s->zt, &s->zt_cap, vnni)
                            : 1;
            if (rc < 0)
                return rc;
            if (rc)
                horizontal_avx2(j->src, j->src_stride, first, last - first, &fh, j->dst_w,
                                j->mirror, s->tmp);
            if (!avx512 || tp__vertical_avx512(s->tmp, j->dst_w, first, &fv, j->dst_h, dst,
                                               j->dst_stride, j->row_out, j->row_ctx, vnni))
                vertical_avx2(s->tmp, j->dst_w, first, &fv, j->dst_h, dst, j->dst_stride, j);
            return 0;
        }
        horizontal_ssse3(j->src, j->src_stride, first, last - first, &fh, j->dst_w, j->mirror,
                         s->tmp);
        vertical_sse2(s->tmp, j->dst_w, first, &fv, j->dst_h, dst, j->dst_stride, j);
        return 0;
    }
#endif
    horizontal_scalar(j->src, j->src_stride, first, last - first, &fh, j->dst_w, j->mirror,
                      s->tmp);
    vertical_scalar(s->tmp, j->dst_w, first, &fv, j->dst_h, dst, j->dst_stride, s->acc, j);
    return 0;
}

void tp_resample_scratch_free(tp_resample_scratch *s)
{
    for (int i = 0; i < 2; i++) {
        free(s->bounds[i]);
        free(s->k[i]);
        free(s->fbounds[i]);
        free(s->fk[i]);
    }
    free(s->w);
    free(s->zt);
    free(s->tmp);
    free(s->acc);
    free(s->row);
    memset(s, 0, sizeof(*s));
}
