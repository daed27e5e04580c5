/* The horizontal pass of the 14-bit resampler on AVX-512 VBMI.
 *
 * The AVX2 pass makes one output pixel at a time, two rows to a register, a shuffle and a
 * multiply-add per pair of taps. Here a 64-byte load of one row holds the taps of up to
 * five neighbouring output pixels (21 source pixels), and one byte permute per pair of
 * taps (vpermb, zero-extending into 16-bit lanes) lays out for all fifteen of their
 * values what a multiply-add with that pair's weights needs: so a row of five output
 * pixels costs a load, per pair of taps a permute, a multiply-add and an add, and a
 * narrowing masked store. The permute indices and weights depend only on the geometry:
 * they are laid out once per image in a table (a group per five pixels, a 64-byte index
 * and 64-byte weight vector per pair of taps), and the pass walks it for each row. The
 * sums are the integers the scalar pass computes (exact 16 x 16-bit products, added in
 * 32 bits), so the bytes are the same on every path. */
#include "resample_fast.h"

#include "tp_common.h"

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define GROUP_PIXELS 5 /* 15 of a register's 16 sums */

typedef struct group {
    uint64_t load_mask;        /* the bytes of the row from base on */
    int base;                  /* byte offset of the first source byte in a row */
    int out;                   /* byte offset of the group's first output byte */
    uint16_t store_mask;       /* 3 bytes per pixel */
    int pairs;                 /* tap pairs */
    size_t at;                 /* first of its 2 x pairs vectors in the table */
} group;

/* The group starting at output pixel xx: *g pixels (up to five, whose taps lie in 64
 * bytes of the row; 0 when the first one's do not) and *q tap pairs (at least 1).
 * @return : its first source pixel. */
static int extent(const fcoeffs *f, int out, int xx, int *g, int *q)
{
    int base = f->bounds[xx * 4];
    *g = 0, *q = 1;
    for (; *g < GROUP_PIXELS && xx + *g < out; ++*g) {
        const int *b = f->bounds + (xx + *g) * 4;
        if (b[0] < base || (b[0] + TP_MAX(b[3], 1) - base) * 3 > 64)
            break;
        *q = TP_MAX(*q, b[1]);
    }
    return base;
}

/* Lays out the groups and their vectors. @return : 0, 1 (a geometry it does not take),
 * -ENOMEM. */
static int build(const fcoeffs *f, int out, int row_pixels, bool mirror, void **table,
                 size_t *cap, group **groups, size_t *ngroups, const __m512i **vec)
{
    size_t ng = 0, nv = 0;
    for (int xx = 0, g, q; xx < out; xx += g) { /* sizes first */
        extent(f, out, xx, &g, &q);
        if (g == 0)
            return 1;
        ng++, nv += 2 * (size_t)q;
    }
    size_t head = (ng * sizeof(group) + 63) & ~(size_t)63;
    TP_TRY(tp__grow(table, cap, head + nv * 64 + 64));
    /* the vectors 64-byte aligned inside the buffer */
    unsigned char *p = *table;
    unsigned char *aligned = (unsigned char *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
    group *gs = (group *)(void *)aligned;
    int16_t *v = (int16_t *)(void *)(aligned + head);
    memset(v, 0, nv * 64);
    size_t gi = 0, at = 0;
    for (int xx = 0, g, q; xx < out; gi++, xx += g) {
        int base = extent(f, out, xx, &g, &q);
        int bytes = (row_pixels - base) * 3;
        gs[gi] = (group){.load_mask = bytes >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << bytes) - 1,
                         .base = base * 3, .out = (mirror ? out - xx - g : xx) * 3,
                         .store_mask = (uint16_t)((1u << (3 * g)) - 1), .pairs = q, .at = at};
        for (int pq = 0; pq < q; pq++) {
            unsigned char *idx = (unsigned char *)(v + (at + 2 * (size_t)pq) * 32);
            int16_t *w = v + (at + 2 * (size_t)pq + 1) * 32;
            for (int m = 0; m < g; m++) {
                const int *b = f->bounds + (xx + m) * 4;
                const int16_t *k = f->k + (size_t)(xx + m) * f->pairs * 8 + pq * 8;
                int lane = 3 * (mirror ? g - 1 - m : m);
                for (int c = 0; c < 3; c++)
                    for (int h = 0; h < 2; h++) {
                        int16_t wt = pq < b[1] ? k[c * 2 + h] : 0;
                        if (!wt)
                            continue;
                        idx[4 * (lane + c) + 2 * h] =
                            (unsigned char)((b[0] - base + 2 * pq + h) * 3 + c);
                        w[2 * (lane + c) + h] = wt;
                    }
            }
        }
        at += 2 * (size_t)q;
    }
    *groups = gs;
    *ngroups = ng;
    *vec = (const __m512i *)(void *)v;
    return 0;
}

/* One row block of groups: MADD(acc, a, b) adds the pairs' products of a and b to acc,
 * one instruction with VNNI (vpdpwssd), a multiply-add and an add without. */
#define RUN_BODY(MADD)                                                                        \
    const __m512i half = _mm512_set1_epi32(1 << (FAST_BITS - 1)), zero = _mm512_setzero_si512(); \
    const __mmask64 even = 0x5555555555555555ull;                                             \
    for (int y0 = 0; y0 < rows; y0 += 16) { /* a block of rows stays in L1 for all groups */   \
        int y1 = TP_MIN(rows, y0 + 16);                                                       \
        for (size_t gi = 0; gi < ng; gi++) {                                                  \
            const group *g = &gs[gi];                                                         \
            const __m512i *t = vec + g->at;                                                   \
            const unsigned char *in = src + (size_t)(row0 + y0) * sstride + g->base;          \
            unsigned char *o = tmp + (size_t)y0 * ostride + g->out;                           \
            for (int y = y0; y < y1; y++, in += sstride, o += ostride) {                      \
                __m512i row = _mm512_maskz_loadu_epi8(g->load_mask, in), acc = half;          \
                for (int q = 0; q < g->pairs; q++)                                            \
                    acc = MADD(acc, _mm512_maskz_permutexvar_epi8(even, t[2 * q], row),       \
                               t[2 * q + 1]);                                                 \
                acc = _mm512_max_epi32(_mm512_srai_epi32(acc, FAST_BITS), zero);              \
                _mm_mask_storeu_epi8(o, g->store_mask, _mm512_cvtusepi32_epi8(acc));          \
            }                                                                                 \
        }                                                                                     \
    }

#define MADD_ADD(acc, a, b) _mm512_add_epi32(acc, _mm512_madd_epi16(a, b))
#define MADD_VNNI(acc, a, b) _mm512_dpwssd_epi32(acc, a, b)

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi"))) static void
run(const unsigned char *src, size_t sstride, int row0, int rows, const group *gs, size_t ng,
    const __m512i *vec, size_t ostride, unsigned char *tmp)
{
    RUN_BODY(MADD_ADD)
}

/* The same sums: vpdpwssd adds both 32-bit products to the accumulator without
 * saturation, as pmaddwd and paddd do (a pair's sum cannot overflow: bytes are unsigned). */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni"))) static void
run_vnni(const unsigned char *src, size_t sstride, int row0, int rows, const group *gs,
         size_t ng, const __m512i *vec, size_t ostride, unsigned char *tmp)
{
    RUN_BODY(MADD_VNNI)
}

int tp__horizontal_avx512(const unsigned char *src, size_t sstride, int row0, int rows,
                          const fcoeffs *f, int out, int row_pixels, bool mirror,
                          unsigned char *tmp, void **table, size_t *table_cap, bool vnni)
{
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512vbmi"))
        return 1;
    group *gs;
    size_t ng;
    const __m512i *vec;
    int rc = build(f, out, row_pixels, mirror, table, table_cap, &gs, &ng, &vec);
    if (rc)
        return rc;
    if (vnni && __builtin_cpu_supports("avx512vnni"))
        run_vnni(src, sstride, row0, rows, gs, ng, vec, (size_t)out * 3, tmp);
    else
        run(src, sstride, row0, rows, gs, ng, vec, (size_t)out * 3, tmp);
    return 0;
}

/* The vertical pass: as the AVX2 one (resample.c), 64 bytes of a row at a time, the last
 * block of a row masked. Unpacks and packs work within 128-bit lanes, so each lane is the
 * SSE2 computation of its 16 bytes. */
#define VERTICAL_BODY(MADD)                                                                   \
    size_t stride = (size_t)width * 3;                                                        \
    const __m512i zero = _mm512_setzero_si512(), half = _mm512_set1_epi32(1 << (FAST_BITS - 1)); \
    for (int yy = 0; yy < out; yy++) {                                                        \
        int ymin = f->bounds[yy * 4] - row0, np = f->bounds[yy * 4 + 1];                      \
        const int16_t *k = f->k + (size_t)yy * f->pairs * 8;                                  \
        unsigned char *o = row_out ? dst : dst + (size_t)yy * dstride;                        \
        for (size_t x = 0; x < stride; x += 64) {                                             \
            __mmask64 m = stride - x >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << (stride - x)) - 1; \
            __m512i s0 = half, s1 = half, s2 = half, s3 = half;                               \
            for (int q = 0; q < np; q++) {                                                    \
                const unsigned char *ra = tmp + (size_t)(ymin + 2 * q) * stride + x;          \
                const unsigned char *rb = k[q * 8 + 1] ? ra + stride : ra;                    \
                __m512i w = _mm512_set1_epi32((int)((uint32_t)(uint16_t)k[q * 8 + 1] << 16 |   \
                                                    (uint16_t)k[q * 8]));                     \
                __m512i a = _mm512_maskz_loadu_epi8(m, ra), b = _mm512_maskz_loadu_epi8(m, rb); \
                __m512i lo = _mm512_unpacklo_epi8(a, b), hi = _mm512_unpackhi_epi8(a, b);     \
                s0 = MADD(s0, _mm512_unpacklo_epi8(lo, zero), w);                             \
                s1 = MADD(s1, _mm512_unpackhi_epi8(lo, zero), w);                             \
                s2 = MADD(s2, _mm512_unpacklo_epi8(hi, zero), w);                             \
                s3 = MADD(s3, _mm512_unpackhi_epi8(hi, zero), w);                             \
            }                                                                                 \
            s0 = _mm512_srai_epi32(s0, FAST_BITS);                                            \
            s1 = _mm512_srai_epi32(s1, FAST_BITS);                                            \
            s2 = _mm512_srai_epi32(s2, FAST_BITS);                                            \
            s3 = _mm512_srai_epi32(s3, FAST_BITS);                                            \
            __m512i v = _mm512_packus_epi16(_mm512_packs_epi32(s0, s1),                       \
                                            _mm512_packs_epi32(s2, s3));                      \
            _mm512_mask_storeu_epi8(o + x, m, v);                                             \
        }                                                                                     \
        if (row_out)                                                                          \
            row_out(row_ctx, yy, o);                                                          \
    }

__attribute__((target("avx512f,avx512bw"))) static void
vertical(const unsigned char *tmp, int width, int row0, const fcoeffs *f, int out,
         unsigned char *dst, size_t dstride, tp_row_fn row_out, void *row_ctx)
{
    VERTICAL_BODY(MADD_ADD)
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void
vertical_vnni(const unsigned char *tmp, int width, int row0, const fcoeffs *f, int out,
              unsigned char *dst, size_t dstride, tp_row_fn row_out, void *row_ctx)
{
    VERTICAL_BODY(MADD_VNNI)
}

int tp__vertical_avx512(const unsigned char *tmp, int width, int row0, const fcoeffs *f,
                        int out, unsigned char *dst, size_t dstride, tp_row_fn row_out,
                        void *row_ctx, bool vnni)
{
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw"))
        return 1;
    if (vnni && __builtin_cpu_supports("avx512vnni"))
        vertical_vnni(tmp, width, row0, f, out, dst, dstride, row_out, row_ctx);
    else
        vertical(tmp, width, row0, f, out, dst, dstride, row_out, row_ctx);
    return 0;
}

#else

int tp__horizontal_avx512(const unsigned char *src, size_t sstride, int row0, int rows,
                          const fcoeffs *f, int out, int row_pixels, bool mirror,
                          unsigned char *tmp, void **table, size_t *table_cap, bool vnni)
{
    (void)src, (void)sstride, (void)row0, (void)rows, (void)f, (void)out, (void)row_pixels;
    (void)mirror, (void)tmp, (void)table, (void)table_cap, (void)vnni;
    return 1;
}

int tp__vertical_avx512(const unsigned char *tmp, int width, int row0, const fcoeffs *f,
                        int out, unsigned char *dst, size_t dstride, tp_row_fn row_out,
                        void *row_ctx, bool vnni)
{
    (void)tmp, (void)width, (void)row0, (void)f, (void)out, (void)dst, (void)dstride;
    (void)row_out, (void)row_ctx, (void)vnni;
    return 1;
}

#endif
