/* imagesynth.c generates photo-like test images and encodes them as JPEG. The
 * data-loading benchmarks need an ImageNet-sized corpus whose decode cost and
 * file sizes resemble real photographs (about 500x375, roughly 110 KiB at
 * quality 90), and the smoke-training runs need labels a small CNN can learn,
 * yet the corpus must be reproducible from a seed and cheap to regenerate on
 * any machine. Each image is a sky/ground backdrop lit by low-frequency
 * fractal noise, a scatter of hard- and soft-edged shapes, fractal texture
 * and grain over most of the frame (photographs only reach such sizes
 * through dense fine detail), and sensor noise; the class picks the hue
 * family, the preferred shape and the preferred texture. Everything is drawn
 * from a private xoshiro256** stream keyed by (seed, class, index), and no
 * libm result feeds a pixel, so output is identical across runs, threads and
 * compilers. */
#include "imagesynth.h"
#include "transform.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

/* Pixel count of a 500x375 image. Larger images get less fine detail per
 * pixel, as real photographs of the same scene would, which keeps file sizes
 * in band across the range of dimensions. */
#define SYNTH_REF_PIXELS 187500.0f
#define SYNTH_MIN_SHAPES 4
#define SYNTH_MAX_SHAPES 12
#define SYNTH_MAX_VERTS 7
#define SYNTH_MAX_OCTAVES 6

enum { SHAPE_ELLIPSE, SHAPE_RECT, SHAPE_POLY, SHAPE_KINDS };
enum { TEX_SMOOTH, TEX_STRIPES, TEX_GRAIN, TEX_KINDS };

/* xoshiro256**, the same generator the transforms use. */
typedef tp_rng synth_rng;

/* What the class contributes: the learnable part of every image. */
typedef struct {
    float hue; /* centre of the hue family, 0..1 around the wheel */
    float sat;
    int shape;
    int texture;
} synth_style;

/* Per-image amplitudes, drawn once so that images within a class differ. */
typedef struct {
    float detail;  /* scales every fine-detail amplitude */
    float sensor;  /* sensor noise deviation, in 8-bit levels */
    float texture; /* backdrop texture amplitude, in 8-bit levels */
    float grain;   /* fine grain deviation in textured areas, in 8-bit levels */
    float light;   /* depth of the low-frequency brightness variation */
} synth_look;

/* A lattice of noise values; node spacing is implied by how it is sampled. */
typedef struct {
    float *v;
    int w, h;
} synth_grid;

typedef struct {
    int w, h;
    float *rgb;         /* w*h*3 working colour on a 0..255 scale */
    float *lowf;        /* w*h low-frequency noise, zero mean, deviation about 1 */
    float *hif;         /* w*h fine noise, zero mean, deviation about 1 */
    float *rough;       /* w*h deviation of per-pixel grain, in 8-bit levels */
    float *lattice[2];     /* ping-pong buffers for the noise pyramid */
    size_t lattice_cap[2]; /* nodes in each lattice buffer */
    float *rows;        /* horizontally interpolated lattice rows */
    size_t rows_cap;
    float *col_w; /* per-column interpolation weights, four per column */
    int *col_cell;
    size_t cols_cap;
} synth_canvas;

/* Sky above a tilted, softly blurred horizon and ground below. */
typedef struct {
    float sky_top[3], sky_low[3], ground_near[3], ground_far[3];
    float tint[3];  /* colour of the texture, so it is not grey */
    float sky_busy; /* how much texture the upper part gets: foliage vs clear sky */
    float horizon, slope, inv_width;
} synth_backdrop;

typedef struct {
    int kind, texture;
    float cx, cy, a, b; /* centre and half extents before rotation */
    float cs, sn;       /* rotation */
    float edge;         /* coverage gain: 1 / edge width in pixels */
    float opacity;
    float rgb[3];
    float shade_u, shade_v; /* lighting gradient across the shape */
    float stripe_amp, stripe_freq;
    float mottle_amp;
    float rough; /* per-pixel grain on the surface */
    size_t tex_shift; /* decorrelates the grain from the backdrop's */
    int nvert;
    float nx[SYNTH_MAX_VERTS], ny[SYNTH_MAX_VERTS], nd[SYNTH_MAX_VERTS];
} synth_shape;

/* Each key part passes through splitmix64 before the next is folded in, so
 * neighbouring indices or classes still get unrelated streams. */
static void rng_seed(synth_rng *r, uint64_t seed, uint64_t class_id, uint64_t index)
{
    uint64_t st = seed;
    st = tp__splitmix64(&st) ^ (class_id * 0xd1b54a32d192ed03ull);
    st = tp__splitmix64(&st) ^ index;
    for (int i = 0; i < 4; i++)
        r->s[i] = tp__splitmix64(&st);
}

static float rng_unit(synth_rng *r)
{
    return (float)(tp_rng_next(r) >> 40) * 0x1p-24f;
}

static float rng_range(synth_rng *r, float lo, float hi)
{
    return lo + (hi - lo) * rng_unit(r);
}

static uint32_t rng_below(synth_rng *r, uint32_t n)
{
    return (uint32_t)(((tp_rng_next(r) >> 32) * n) >> 32);
}

static int rng_chance(synth_rng *r, float p)
{
    return rng_unit(r) < p;
}

static float clampf(float v, float lo, float hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* Cosine and sine of `t` turns (t in 0..1), from Taylor polynomials on a
 * quarter turn. libm's results may differ in the last bit between library
 * versions, which would change the images; only IEEE-exact operations
 * (arithmetic and sqrtf) are used anywhere an image value depends on. */
static void turn_to_unit(float t, float *c, float *s)
{
    int quadrant = (int)(t * 4.0f);
    float x = (t * 4.0f - (float)quadrant) * 1.5707963f, x2 = x * x;
    float sx = x * (1.0f - x2 / 6.0f * (1.0f - x2 / 20.0f * (1.0f - x2 / 42.0f * (1.0f - x2 / 72.0f))));
    float cx = 1.0f - x2 / 2.0f * (1.0f - x2 / 12.0f * (1.0f - x2 / 30.0f * (1.0f - x2 / 56.0f * (1.0f - x2 / 90.0f))));
    const float cs[4][2] = {{cx, sx}, {-sx, cx}, {-cx, -sx}, {sx, -cx}};
    *c = cs[quadrant & 3][0];
    *s = cs[quadrant & 3][1];
}

static void hsv_to_rgb(float h, float s, float v, float out[3])
{
    float hh = (h - (float)(int)(h + 16.0f) + 16.0f) * 6.0f; /* wrapped to 0..6 */
    int sector = (int)hh % 6;
    float f = hh - (float)(int)hh;
    float p = v * (1.0f - s), q = v * (1.0f - s * f), t = v * (1.0f - s * (1.0f - f));
    const float table[6][3] = {{v, t, p}, {q, v, p}, {p, v, t}, {p, q, v}, {t, p, v}, {v, p, q}};
    for (int c = 0; c < 3; c++)
        out[c] = 255.0f * table[sector][c];
}

/* The style depends only on the class, so a model trained on one seed is
 * evaluated against the same visual definition of each class on another. */
static void style_for_class(uint32_t class_id, uint32_t nclasses, synth_style *st)
{
    uint64_t h = class_id;
    uint64_t bits = tp__splitmix64(&h);
    st->hue = ((float)class_id + 0.5f) / (float)nclasses;
    st->sat = 0.45f + 0.4f * (float)(bits & 0xff) / 255.0f;
    st->shape = (int)(class_id % SHAPE_KINDS);
    st->texture = (int)((class_id / SHAPE_KINDS) % TEX_KINDS);
}

/* Most colours come from the class hue family; the rest are muted random
 * hues, so the class is a strong tendency rather than a single colour. */
static void pick_color(synth_rng *r, const synth_style *st, float sat_scale, float vlo, float vhi,
                       float out[3])
{
    /* One draw per statement: argument evaluation order is unspecified, and
     * compilers differ, which would change the image. */
    float v = rng_range(r, vlo, vhi), hue, sat;
    if (rng_chance(r, 0.7f)) {
        sat = clampf(st->sat * sat_scale * rng_range(r, 0.7f, 1.15f), 0.0f, 1.0f);
        hue = st->hue + rng_range(r, -0.04f, 0.04f);
    } else {
        hue = rng_unit(r);
        sat = rng_range(r, 0.05f, 0.45f);
    }
    hsv_to_rgb(hue, sat, v, out);
}

static void pick_dimensions(synth_rng *r, int *w, int *h)
{
    static const float aspects[4] = {4.0f / 3.0f, 1.5f, 1.0f, 1.25f};
    static const float cumulative[4] = {0.55f, 0.8f, 0.9f, 1.0f};
    float u = rng_unit(r);
    int k = 0;
    while (k < 3 && u >= cumulative[k])
        k++;
    int long_side = 400 + (int)rng_below(r, 161);
    int short_side = (int)((float)long_side / aspects[k] + 0.5f);
    int portrait = rng_chance(r, 0.25f);
    *w = portrait ? short_side : long_side;
    *h = portrait ? long_side : short_side;
}

/* Byte counts grow with pixel count much faster than with detail amplitude,
 * hence the steep exponent; the clamp keeps the smallest images from
 * turning into pure texture. */
static void pick_look(synth_rng *r, int w, int h, synth_look *lk)
{
    float ratio = SYNTH_REF_PIXELS / (float)(w * h);
    float size = clampf(ratio * sqrtf(ratio), 0.6f, 1.5f);
    lk->detail = size * rng_range(r, 0.8f, 1.25f);
    lk->sensor = 8.5f * lk->detail;
    lk->texture = rng_range(r, 36.0f, 72.0f) * lk->detail;
    lk->grain = rng_range(r, 10.0f, 29.0f) * lk->detail;
    lk->light = rng_range(r, 0.1f, 0.25f);
}

static void canvas_free(synth_canvas *cv)
{
    free(cv->rgb);
    free(cv->col_cell);
}

/* One float block holds every plane; only the column indices are ints. The
 * finest lattice may have a node per pixel, plus a border for the four-tap
 * footprint and the random phase. Pyramid levels alternate buffers, so the
 * second buffer never holds more than the half-resolution level, and the
 * row buffer never more than that level's rows at full width. */
static int canvas_init(synth_canvas *cv, int w, int h)
{
    size_t n = (size_t)w * (size_t)h;
    size_t lat0 = (size_t)(w + 5) * (size_t)(h + 5);
    size_t lat1 = (size_t)(w / 2 + 6) * (size_t)(h / 2 + 6);
    size_t rows = (size_t)(h / 2 + 6) * (size_t)(w + 5);
    size_t cols = (size_t)w + 5;
    cv->w = w;
    cv->h = h;
    cv->rgb = malloc((n * 6 + lat0 + lat1 + rows + cols * 4) * sizeof(float));
    cv->col_cell = malloc(cols * sizeof(int));
    if (!cv->rgb || !cv->col_cell) {
        canvas_free(cv);
        return -ENOMEM;
    }
    cv->lowf = cv->rgb + n * 3;
    cv->hif = cv->lowf + n;
    cv->rough = cv->hif + n;
    cv->lattice[0] = cv->rough + n;
    cv->lattice[1] = cv->lattice[0] + lat0;
    cv->lattice_cap[0] = lat0;
    cv->lattice_cap[1] = lat1;
    cv->rows = cv->lattice[1] + lat1;
    cv->rows_cap = rows;
    cv->col_w = cv->rows + rows;
    cv->cols_cap = cols;
    return 0;
}

/* Uniform cubic B-spline weights for a sample a fraction t past the second
 * of four taps. The B-spline is smooth to the second derivative, so neither
 * creases nor flat spots reveal the lattice, unlike bilinear or smoothstep
 * interpolation. */
static void bspline_weights(float t, float wt[4])
{
    float t2 = t * t, t3 = t2 * t;
    wt[0] = (1.0f - 3.0f * t + 3.0f * t2 - t3) * (1.0f / 6.0f);
    wt[1] = (4.0f - 6.0f * t2 + 3.0f * t3) * (1.0f / 6.0f);
    wt[2] = (1.0f + 3.0f * t + 3.0f * t2 - 3.0f * t3) * (1.0f / 6.0f);
    wt[3] = t3 * (1.0f / 6.0f);
}

/* Interpolates every lattice row to the destination width, so that the
 * vertical pass below is four multiply-adds per output sample. */
static void upsample_rows(synth_canvas *cv, const synth_grid *src, int dst_w, int factor, int ox)
{
    float inv = 1.0f / (float)factor;
    for (int x = 0; x < dst_w; x++) {
        cv->col_cell[x] = (x + ox) / factor;
        bspline_weights((float)((x + ox) % factor) * inv, cv->col_w + 4 * x);
    }
    for (int y = 0; y < src->h; y++) {
        const float *s = src->v + (size_t)y * (size_t)src->w;
        float *d = cv->rows + (size_t)y * (size_t)dst_w;
        for (int x = 0; x < dst_w; x++) {
            const float *tap = s + cv->col_cell[x], *wt = cv->col_w + 4 * x;
            d[x] = wt[0] * tap[0] + wt[1] * tap[1] + wt[2] * tap[2] + wt[3] * tap[3];
        }
    }
}

/* At factor one the lattice nodes are the pixels themselves; copying them
 * rather than smoothing keeps the finest octave crisp, and is cheaper. The
 * one-node offset matches the four-tap footprint of the smooth path. */
static void grid_copy(const synth_grid *src, const synth_grid *dst)
{
    assert(dst->w + 2 < src->w && dst->h + 2 < src->h);
    for (int y = 0; y < dst->h; y++)
        memcpy(dst->v + (size_t)y * (size_t)dst->w, src->v + (size_t)(y + 1) * (size_t)src->w + 1,
               (size_t)dst->w * sizeof(float));
}

/* Resamples `src` onto `dst`, whose nodes are `factor` times denser and
 * shifted by (ox, oy) of its own nodes. */
static void grid_upsample(synth_canvas *cv, const synth_grid *src, const synth_grid *dst, int factor, int ox,
                          int oy)
{
    if (factor == 1) {
        grid_copy(src, dst);
        return;
    }
    assert((dst->w - 1 + ox) / factor + 3 < src->w && (dst->h - 1 + oy) / factor + 3 < src->h);
    assert((size_t)src->h * (size_t)dst->w <= cv->rows_cap && (size_t)dst->w <= cv->cols_cap);
    upsample_rows(cv, src, dst->w, factor, ox);
    float inv = 1.0f / (float)factor;
    size_t stride = (size_t)dst->w;
    for (int y = 0; y < dst->h; y++) {
        float wt[4];
        bspline_weights((float)((y + oy) % factor) * inv, wt);
        const float *r0 = cv->rows + (size_t)((y + oy) / factor) * stride;
        const float *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
        float *d = dst->v + (size_t)y * stride;
        for (size_t x = 0; x < stride; x++)
            d[x] = wt[0] * r0[x] + wt[1] * r1[x] + wt[2] * r2[x] + wt[3] * r3[x];
    }
}

/* Two 24-bit uniforms come out of each 64-bit draw, since the finest
 * lattice has as many nodes as the image has pixels. */
static void grid_add_noise(const synth_grid *g, synth_rng *r, float amp, int first)
{
    const float k = amp * 0x1p-24f;
    int n = g->w * g->h;
    for (int i = 0; i < n; i += 2) {
        uint64_t bits = tp_rng_next(r);
        float u[2] = {k * (float)(bits >> 40) - 0.5f * amp, k * (float)((bits >> 8) & 0xffffff) - 0.5f * amp};
        for (int j = 0; j < 2 && i + j < n; j++)
            g->v[i + j] = (first ? 0.0f : g->v[i + j]) + u[j];
    }
}

/* Fractal noise built as a pyramid: each octave is the coarser one upsampled
 * by two plus fresh random values, and only the finest lattice, `cell`
 * pixels apart, is interpolated to pixels, so an image pays for one
 * full-size pass however many octaves it has. */
static void noise_fbm(synth_canvas *cv, synth_rng *r, float *field, int cell, int octaves, float gain, float amp)
{
    synth_grid level[SYNTH_MAX_OCTAVES];
    int phase[SYNTH_MAX_OCTAVES][2];
    assert(octaves >= 1 && octaves <= SYNTH_MAX_OCTAVES && cell >= 1);
    int fx = (int)rng_below(r, (uint32_t)cell), fy = (int)rng_below(r, (uint32_t)cell);
    level[octaves - 1].w = (cv->w - 1 + fx) / cell + 4;
    level[octaves - 1].h = (cv->h - 1 + fy) / cell + 4;
    for (int k = octaves - 1; k > 0; k--) {
        phase[k][0] = (int)rng_below(r, 2);
        phase[k][1] = (int)rng_below(r, 2);
        level[k - 1].w = (level[k].w - 1 + phase[k][0]) / 2 + 4;
        level[k - 1].h = (level[k].h - 1 + phase[k][1]) / 2 + 4;
    }
    for (int k = 0; k < octaves; k++, amp *= gain) {
        int buf = (octaves - 1 - k) & 1;
        level[k].v = cv->lattice[buf];
        assert((size_t)level[k].w * (size_t)level[k].h <= cv->lattice_cap[buf]);
        if (k > 0)
            grid_upsample(cv, &level[k - 1], &level[k], 2, phase[k][0], phase[k][1]);
        grid_add_noise(&level[k], r, amp, k == 0);
    }
    synth_grid out = {field, cv->w, cv->h};
    grid_upsample(cv, &level[octaves - 1], &out, cell, fx, fy);
}

static void lerp3(const float a[3], const float b[3], float t, float out[3])
{
    for (int c = 0; c < 3; c++)
        out[c] = a[c] + (b[c] - a[c]) * t;
}

/* Skies are muted and bright, grounds darker; both lean to the class hue. */
static void pick_backdrop(synth_rng *r, const synth_style *st, int h, synth_backdrop *bd)
{
    pick_color(r, st, 0.5f, 0.55f, 0.95f, bd->sky_top);
    pick_color(r, st, 0.35f, 0.7f, 1.0f, bd->sky_low);
    pick_color(r, st, 0.8f, 0.25f, 0.7f, bd->ground_near);
    pick_color(r, st, 0.8f, 0.1f, 0.5f, bd->ground_far);
    for (int c = 0; c < 3; c++)
        bd->tint[c] = rng_range(r, 0.5f, 1.5f);
    bd->sky_busy = rng_chance(r, 0.8f) ? rng_range(r, 0.4f, 1.0f) : rng_range(r, 0.05f, 0.3f);
    bd->horizon = (float)h * rng_range(r, 0.15f, 0.7f);
    bd->slope = rng_range(r, -0.2f, 0.2f);
    bd->inv_width = 1.0f / rng_range(r, 1.0f, 30.0f);
}

/* Texture (grass, gravel, leaves) is strongest on the ground; how much of it
 * reaches the upper part varies per image, from clear sky to a wall of
 * foliage. The low-frequency field modulates it so that it comes in patches
 * rather than as a uniform film. */
static float texture_gate(const synth_backdrop *bd, float g, float low)
{
    float patch = clampf(0.5f * low + 0.6f, 0.0f, 1.0f);
    return (bd->sky_busy + (1.0f - bd->sky_busy) * g) * (0.5f + 0.5f * patch);
}

static void paint_backdrop(synth_canvas *cv, const synth_backdrop *bd, const synth_look *lk)
{
    float inv_h = 1.0f / (float)cv->h, dg = -bd->slope * bd->inv_width;
    for (int y = 0; y < cv->h; y++) {
        float sky[3], ground[3], t = (float)y * inv_h;
        lerp3(bd->sky_top, bd->sky_low, t, sky);
        lerp3(bd->ground_near, bd->ground_far, t, ground);
        /* Ground weight is linear along a row before clamping. */
        float g0 = ((float)y - bd->horizon + bd->slope * 0.5f * (float)cv->w) * bd->inv_width + 0.5f;
        size_t row = (size_t)y * (size_t)cv->w;
        for (int x = 0; x < cv->w; x++) {
            size_t p = row + (size_t)x;
            float g = clampf(g0 + dg * (float)x, 0.0f, 1.0f);
            float low = cv->lowf[p], gate = texture_gate(bd, g, low);
            float light = 1.0f + lk->light * low;
            float tex = lk->texture * gate * cv->hif[p];
            float *px = cv->rgb + p * 3;
            for (int c = 0; c < 3; c++)
                px[c] = (sky[c] + (ground[c] - sky[c]) * g) * light + tex * bd->tint[c];
            cv->rough[p] = lk->grain * gate;
        }
    }
}

/* Polygons are inscribed in the shape's ellipse at increasing angles, which
 * keeps them convex so that coverage is the minimum over edge half-planes. */
static void build_polygon(synth_rng *r, synth_shape *s)
{
    float angle[SYNTH_MAX_VERTS], px[SYNTH_MAX_VERTS], py[SYNTH_MAX_VERTS], sum = 0.0f;
    s->nvert = 3 + (int)rng_below(r, SYNTH_MAX_VERTS - 2);
    for (int i = 0; i < s->nvert; i++) {
        angle[i] = sum;
        sum += rng_range(r, 0.5f, 1.0f);
    }
    for (int i = 0; i < s->nvert; i++) {
        float c, sn;
        turn_to_unit(angle[i] / sum, &c, &sn);
        px[i] = s->a * c;
        py[i] = s->b * sn;
    }
    for (int i = 0; i < s->nvert; i++) {
        int j = (i + 1) % s->nvert;
        float ex = px[j] - px[i], ey = py[j] - py[i];
        float len = sqrtf(ex * ex + ey * ey);
        s->nx[i] = ey / len;
        s->ny[i] = -ex / len;
        s->nd[i] = s->nx[i] * px[i] + s->ny[i] * py[i];
    }
}

/* Shapes are drawn back to front and shrink as they go, like a scene with
 * large objects behind small clutter; a few are thin bars (poles, twigs). */
static void pick_shape_geometry(synth_rng *r, int w, int h, float depth, synth_shape *s)
{
    float min_dim = (float)(w < h ? w : h);
    s->cx = rng_range(r, -0.05f, 1.05f) * (float)w;
    s->cy = rng_range(r, -0.05f, 1.05f) * (float)h;
    s->a = min_dim * rng_range(r, 0.05f, 0.32f) * (1.0f - 0.6f * depth);
    s->b = s->a * (rng_chance(r, 0.15f) ? rng_range(r, 0.04f, 0.15f) : rng_range(r, 0.35f, 1.0f));
    turn_to_unit(rng_range(r, 0.0f, 0.5f), &s->cs, &s->sn);
    float width = rng_chance(r, 0.6f) ? rng_range(r, 0.6f, 1.3f) : rng_range(r, 2.0f, 2.0f + 0.4f * s->b);
    s->edge = 1.0f / width;
    if (s->kind == SHAPE_POLY)
        build_polygon(r, s);
}

/* Every surface carries some mottling, since nothing in a photograph is
 * perfectly flat; the texture kind decides how much, and adds stripes. */
static void pick_surface(synth_rng *r, const synth_look *lk, const synth_canvas *cv, synth_shape *s)
{
    int grain = s->texture == TEX_GRAIN;
    s->stripe_amp = s->texture == TEX_STRIPES ? rng_range(r, 20.0f, 50.0f) * lk->detail : 0.0f;
    s->stripe_freq = 1.0f / rng_range(r, 3.0f, 18.0f);
    s->mottle_amp = lk->texture * (grain ? rng_range(r, 0.7f, 1.3f) : rng_range(r, 0.1f, 0.4f));
    s->rough = lk->grain * (grain ? rng_range(r, 0.6f, 1.4f) : rng_range(r, 0.0f, 0.3f));
    s->tex_shift = (size_t)rng_below(r, (uint32_t)(cv->w * cv->h));
}

static void pick_shape(synth_rng *r, const synth_style *st, const synth_look *lk, const synth_canvas *cv,
                       float depth, synth_shape *s)
{
    s->kind = rng_chance(r, 0.65f) ? st->shape : (int)rng_below(r, SHAPE_KINDS);
    s->texture = rng_chance(r, 0.6f) ? st->texture : (int)rng_below(r, TEX_KINDS);
    pick_shape_geometry(r, cv->w, cv->h, depth, s);
    pick_color(r, st, 1.0f, 0.2f, 0.95f, s->rgb);
    s->opacity = rng_chance(r, 0.8f) ? 1.0f : rng_range(r, 0.5f, 0.9f);
    s->shade_u = rng_range(r, -0.3f, 0.3f) / s->a;
    s->shade_v = rng_range(r, -0.3f, 0.3f) / s->b;
    pick_surface(r, lk, cv, s);
}

/* Coverage ramps from 0 to 1 across the edge width, which antialiases hard
 * edges and blurs soft ones with the same arithmetic. For ellipses the ramp
 * uses an approximate distance, exact on the minor axis. */
static float shape_coverage(const synth_shape *s, float u, float v)
{
    float d;
    if (s->kind == SHAPE_ELLIPSE) {
        float q = u * u / (s->a * s->a) + v * v / (s->b * s->b);
        d = (1.0f - q) * 0.5f * s->b;
    } else if (s->kind == SHAPE_RECT) {
        float du = s->a - fabsf(u), dv = s->b - fabsf(v);
        d = du < dv ? du : dv;
    } else {
        d = s->nd[0] - s->nx[0] * u - s->ny[0] * v;
        for (int i = 1; i < s->nvert; i++) {
            float di = s->nd[i] - s->nx[i] * u - s->ny[i] * v;
            d = di < d ? di : d;
        }
    }
    return clampf(d * s->edge + 0.5f, 0.0f, 1.0f);
}

static float shape_texture(const synth_shape *s, float u, float fine)
{
    float tex = s->mottle_amp * fine;
    if (s->texture == TEX_STRIPES) {
        float t = u * s->stripe_freq + 4096.0f; /* positive, so truncation is floor */
        tex += s->stripe_amp * (fabsf(2.0f * (t - (float)(int)t) - 1.0f) - 0.5f);
    }
    return tex;
}

/* Axis-aligned bounds of the rotated shape, widened by its edge ramp.
 * Rectangles fill their rotated a-by-b box; ellipses and the polygons
 * inscribed in them fit the tighter bounds of the ellipse. */
static void shape_bounds(const synth_shape *s, int w, int h, int box[4])
{
    float ac = s->a * s->cs, as = s->a * s->sn, bc = s->b * s->cs, bs = s->b * s->sn;
    float ex, ey;
    if (s->kind == SHAPE_RECT) {
        ex = fabsf(ac) + fabsf(bs);
        ey = fabsf(as) + fabsf(bc);
    } else {
        ex = sqrtf(ac * ac + bs * bs);
        ey = sqrtf(as * as + bc * bc);
    }
    float margin = 1.0f / s->edge + 1.0f;
    box[0] = (int)clampf(s->cx - ex - margin, 0.0f, (float)w);
    box[1] = (int)clampf(s->cy - ey - margin, 0.0f, (float)h);
    box[2] = (int)clampf(s->cx + ex + margin, 0.0f, (float)w);
    box[3] = (int)clampf(s->cy + ey + margin, 0.0f, (float)h);
}

static void paint_shape(synth_canvas *cv, const synth_shape *s)
{
    size_t n = (size_t)cv->w * (size_t)cv->h;
    int box[4];
    shape_bounds(s, cv->w, cv->h, box);
    for (int y = box[1]; y < box[3]; y++) {
        float dy = (float)y + 0.5f - s->cy;
        for (int x = box[0]; x < box[2]; x++) {
            float dx = (float)x + 0.5f - s->cx;
            float u = dx * s->cs + dy * s->sn, v = dy * s->cs - dx * s->sn;
            float cov = shape_coverage(s, u, v) * s->opacity;
            if (cov <= 0.0f)
                continue;
            size_t p = (size_t)y * (size_t)cv->w + (size_t)x, q = p + s->tex_shift;
            float shade = 1.0f + s->shade_u * u + s->shade_v * v;
            float tex = shape_texture(s, u, cv->hif[q < n ? q : q - n]);
            float *px = cv->rgb + p * 3;
            for (int c = 0; c < 3; c++)
                px[c] += cov * (s->rgb[c] * shade + tex - px[c]);
            cv->rough[p] += cov * (s->rough - cv->rough[p]);
        }
    }
}

/* Noise is triangular (sum of two uniform bytes, scaled to unit deviation)
 * and shared by the three channels, like the luma noise of a demosaiced
 * sensor; chroma noise would mostly vanish in 4:2:0 subsampling anyway. One
 * 64-bit draw covers four pixels, and drawing a row first keeps the
 * generator's dependency chain out of the pixel loop. */
static void noise_row(synth_rng *r, int w, float *noise)
{
    const float k = 1.0f / 104.1f; /* deviation of the byte sum */
    for (int x = 0; x < w; x += 4) {
        uint64_t bits = tp_rng_next(r);
        for (int i = 0; i < 4; i++, bits >>= 16)
            noise[x + i] = k * (float)((int)(bits & 0xff) + (int)((bits >> 8) & 0xff) - 255);
    }
}

/* The final 8-bit image: the rendered scene plus sensor noise everywhere and
 * grain wherever the roughness plane asks for it. `noise` holds a row of
 * samples rounded up to a multiple of four. */
static void develop(const synth_canvas *cv, synth_rng *r, float sensor, float *noise, unsigned char *out)
{
    for (int y = 0; y < cv->h; y++) {
        size_t row = (size_t)y * (size_t)cv->w;
        noise_row(r, cv->w, noise);
        for (int x = 0; x < cv->w; x++) {
            size_t p = row + (size_t)x;
            const float *src = cv->rgb + p * 3;
            unsigned char *dst = out + p * 3;
            float n = (sensor + cv->rough[p]) * noise[x] + 0.5f;
            for (int c = 0; c < 3; c++)
                dst[c] = (unsigned char)(int)clampf(src[c] + n, 0.0f, 255.0f);
        }
    }
}

static void synthesize(synth_canvas *cv, synth_rng *r, const synth_style *st, const synth_look *lk)
{
    synth_backdrop bd;
    pick_backdrop(r, st, cv->h, &bd);
    /* The amplitudes give both fields a deviation close to one. */
    noise_fbm(cv, r, cv->lowf, 8 + (int)rng_below(r, 12), 4, 0.5f, 8.0f);
    noise_fbm(cv, r, cv->hif, 1, 3, 1.0f, 2.9f);
    paint_backdrop(cv, &bd, lk);
    int nshapes = SYNTH_MIN_SHAPES + (int)rng_below(r, SYNTH_MAX_SHAPES - SYNTH_MIN_SHAPES + 1);
    for (int i = 0; i < nshapes; i++) {
        synth_shape s;
        pick_shape(r, st, lk, cv, (float)i / (float)nshapes, &s);
        paint_shape(cv, &s);
    }
}

static int encode(const unsigned char *rgb, int w, int h, int quality, unsigned char **out, size_t *out_len)
{
    tjhandle tj = tjInitCompress();
    if (!tj)
        return -ENOMEM;
    unsigned char *jpeg = NULL;
    unsigned long len = 0;
    int rc = tjCompress2(tj, rgb, w, 0, h, TJPF_RGB, &jpeg, &len, TJSAMP_420, quality, 0);
    tjDestroy(tj);
    if (rc != 0) {
        tjFree(jpeg);
        return -EIO;
    }
    *out = jpeg;
    *out_len = (size_t)len;
    return 0;
}

int tp__synth_jpeg(uint64_t seed, uint32_t class_id, uint32_t nclasses, uint64_t index,
                   int quality, unsigned char **out, size_t *out_len)
{
    if (!out || !out_len || quality < 1 || quality > 100 || nclasses == 0 || class_id >= nclasses)
        return -EINVAL;
    synth_rng r;
    synth_style st;
    synth_look lk;
    synth_canvas cv;
    int w, h;
    rng_seed(&r, seed, class_id, index);
    style_for_class(class_id, nclasses, &st);
    pick_dimensions(&r, &w, &h);
    pick_look(&r, w, h, &lk);
    int rc = canvas_init(&cv, w, h);
    if (rc != 0)
        return rc;
    unsigned char *pixels = malloc((size_t)w * (size_t)h * 3);
    if (!pixels) {
        canvas_free(&cv);
        return -ENOMEM;
    }
    synthesize(&cv, &r, &st, &lk);
    develop(&cv, &r, lk.sensor, cv.lowf, pixels); /* lowf is spent by now */
    canvas_free(&cv);
    rc = encode(pixels, w, h, quality, out, out_len);
    free(pixels);
    return rc;
}

void tp__synth_free(unsigned char *buf)
{
    if (buf)
        tjFree(buf);
}
