/* Seekable JPEGs (codecs/jpeg_seek.c): the lossless re-encode pack --jpeg-seek does, and
 * region decoding from only the restart segments a region touches, checked pixel for
 * pixel against a full decode of the original at the same scale, for every geometry
 * class (whole image, top, bottom, each edge, corners, single pixels on MCU boundaries,
 * random boxes), every chroma subsampling and grey, odd and one-MCU sizes, on real
 * photographs ($TP_PHOTOS, from scripts/photos.sh) and on the generated pattern; damaged
 * restart data falls back to the usual decode and is counted. */
#include "codecs.h"
#include "jpeg_fixtures.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct picture {
    unsigned char *px;
    int w, h, comps;
    char name[64];
} picture;

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    unsigned char *p = malloc((size_t)n);
    ck_assert(fread(p, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* A photograph from $TP_PHOTOS as RGB (or its first channel as grey), or the generated
 * pattern (451x300, strong chroma edges everywhere) for file NULL or when the
 * photographs are not there. */
static picture load_picture(const char *file, int comps)
{
    picture pic = {.comps = comps};
    const char *dir = getenv("TP_PHOTOS");
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir ? dir : "", file ? file : "");
    size_t len;
    unsigned char *bytes = dir && file ? read_file(path, &len) : NULL;
    tp_image img = {0};
    tp_error err;
    if (bytes) {
        int rc;
        if (tp_png_signature(bytes, len)) {
            rc = tp_png_decode(bytes, len, 0, &img, &err);
        } else {
            tp_jpeg_decoder *d;
            ck_assert_int_eq(tp_jpeg_decoder_create(&d), 0);
            tp_jpeg_request whole = {0};
            rc = tp_jpeg_decode(d, bytes, len, &whole, &img, &err);
            tp_jpeg_decoder_destroy(d);
        }
        ck_assert_msg(rc == 0, "%s: %s", path, err.msg);
        free(bytes);
        snprintf(pic.name, sizeof(pic.name), "%s", file);
    } else {
        if (file)
            fprintf(stderr, "check_jpeg_seek: %s not found (run scripts/photos.sh); using "
                            "the generated pattern\n", file);
        unsigned char *jpeg;
        unsigned long jl;
        fixture_jpeg(FIX_444, 451, 300, &jpeg, &jl, NULL);
        tp_jpeg_decoder *d;
        ck_assert_int_eq(tp_jpeg_decoder_create(&d), 0);
        tp_jpeg_request whole = {0};
        ck_assert_int_eq(tp_jpeg_decode(d, jpeg, jl, &whole, &img, &err), 0);
        tp_jpeg_decoder_destroy(d);
        free(jpeg);
        snprintf(pic.name, sizeof(pic.name), "pattern");
    }
    pic.w = img.width;
    pic.h = img.height;
    pic.px = malloc((size_t)pic.w * pic.h * comps);
    for (size_t i = 0; i < (size_t)pic.w * pic.h; i++)
        for (int c = 0; c < comps; c++)
            pic.px[i * comps + c] = img.pixels[i * 3 + c];
    free(img.pixels);
    return pic;
}

/* The w x h window at (x, y) of a picture (for odd and one-MCU sizes). */
static picture window(const picture *p, int x, int y, int w, int h)
{
    picture q = {.w = w, .h = h, .comps = p->comps};
    snprintf(q.name, sizeof(q.name), "%.40s %dx%d", p->name, w, h);
    q.px = malloc((size_t)w * h * p->comps);
    for (int r = 0; r < h; r++)
        memcpy(q.px + (size_t)r * w * p->comps,
               p->px + ((size_t)(y + r) * p->w + x) * p->comps, (size_t)w * p->comps);
    return q;
}

static unsigned char *seekable(const unsigned char *jpeg, size_t len, int columns,
                               size_t *out_len)
{
    unsigned char *out;
    tp_error err = {0};
    int rc = tp_jpeg_make_seekable(jpeg, len, columns, &out, out_len, &err);
    ck_assert_msg(rc == 1, "make_seekable: %d %s", rc, err.msg);
    tp_jpeg_seek s = {0};
    ck_assert_int_eq(tp_jpeg_seek_parse(out, *out_len, &s), 1);
    ck_assert_int_eq(s.mcus_x % s.interval, 0);
    ck_assert_int_le(s.interval, columns);
    free(s.seg);
    return out;
}

static void decode_full(tp_jpeg_decoder *d, const unsigned char *jpeg, size_t len, int m,
                        tp_image *img)
{
    tp_jpeg_request rq = {.scale_num = m};
    tp_error err = {0};
    ck_assert_msg(tp_jpeg_decode(d, jpeg, len, &rq, img, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(img->x0, 0);
    ck_assert_int_eq(img->y0, 0);
}

/* Decodes region (x, y, w, h) of `jpeg` at scale m/8 and compares every pixel of the
 * region's scaled box with `ref`, the original's full decode at that scale. */
static void check_region(tp_jpeg_decoder *d, const unsigned char *jpeg, size_t len,
                         const tp_image *ref, int W, int H, int m, int x, int y, int w, int h,
                         const char *what)
{
    tp_jpeg_request rq = {.x = x, .y = y, .width = w, .height = h, .scale_num = m};
    tp_image img = {0};
    tp_error err = {0};
    ck_assert_msg(tp_jpeg_decode(d, jpeg, len, &rq, &img, &err) == 0, "%s: %s", what, err.msg);
    ck_assert_int_eq(img.src_width, W);
    ck_assert_int_eq(img.src_height, H);
    ck_assert_int_eq(img.scale_num, m);
    int x0 = x * m / 8, y0 = y * m / 8;
    int x1 = TP_MIN((x + w) * m / 8 + ((x + w) * m % 8 != 0), ref->width);
    int y1 = TP_MIN((y + h) * m / 8 + ((y + h) * m % 8 != 0), ref->height);
    ck_assert_msg(img.x0 <= x0 && img.y0 <= y0 && img.x0 + img.width >= x1 &&
                      img.y0 + img.height >= y1,
                  "%s: decoded %dx%d+%d+%d misses %d..%d x %d..%d", what, img.width,
                  img.height, img.x0, img.y0, x0, x1, y0, y1);
    for (int r = y0; r < y1; r++) {
        const unsigned char *a = img.pixels + ((size_t)(r - img.y0) * img.width + (x0 - img.x0)) * 3;
        const unsigned char *b = ref->pixels + ((size_t)r * ref->width + x0) * 3;
        ck_assert_msg(!memcmp(a, b, (size_t)(x1 - x0) * 3),
                      "%s: region %dx%d+%d+%d at %d/8 differs in row %d", what, w, h, x, y,
                      m, r);
    }
    free(img.pixels);
}

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* Every geometry class on one picture, subsampling and restart grouping. */
static void check_picture(const picture *p, int hs, int vs, int columns)
{
    unsigned char *orig;
    unsigned long olen;
    fixture_encode(p->px, p->w, p->h, p->comps, hs, vs, 90, 0, 0, &orig, &olen);
    size_t slen;
    unsigned char *seek = seekable(orig, olen, columns, &slen);
    tp_jpeg_decoder *d, *plain;
    ck_assert_int_eq(tp_jpeg_decoder_create(&d), 0);
    ck_assert_int_eq(tp_jpeg_decoder_create(&plain), 0);
    char what[160];
    int W = p->w, H = p->h;
    static const int scales[] = {8, 4, 2, 1, 6, 3, 5, 7};
    for (size_t si = 0; si < TP_ARRAY_LEN(scales); si++) {
        int m = scales[si];
        tp_image ref = {0}, again = {0};
        decode_full(plain, orig, olen, m, &ref);
        decode_full(plain, seek, slen, m, &again); /* the re-encode keeps the pixels */
        ck_assert_int_eq(ref.width, again.width);
        ck_assert_msg(!memcmp(ref.pixels, again.pixels, (size_t)ref.width * ref.height * 3),
                      "%s %dx%d: the seekable copy decodes differently at %d/8", p->name,
                      hs, vs, m);
        free(again.pixels);
        int boxes[][4] = {
            {0, 0, W, H},                                   /* whole */
            {0, 0, W, TP_MAX(1, H / 5)},                    /* top */
            {0, H - TP_MAX(1, H / 5), W, TP_MAX(1, H / 5)}, /* bottom */
            {0, H / 4, TP_MAX(1, W / 3), TP_MAX(1, H / 2)}, /* left edge */
            {W - TP_MAX(1, W / 3), H / 4, TP_MAX(1, W / 3), TP_MAX(1, H / 2)}, /* right */
            {0, 0, TP_MIN(W, 37), TP_MIN(H, 29)},           /* corners */
            {W - TP_MIN(W, 37), H - TP_MIN(H, 29), TP_MIN(W, 37), TP_MIN(H, 29)},
            {W / 3, H / 3, TP_MAX(1, W / 3), TP_MAX(1, H / 3)}, /* centre */
            {TP_MIN(W - 1, 16), TP_MIN(H - 1, 16), 1, 1},   /* single pixels at MCU edges */
            {TP_MIN(W - 1, 15), TP_MIN(H - 1, 15), 1, 1},
            {TP_MIN(W - 1, 31), TP_MIN(H - 1, 8), 1, 1},
            {W - 1, H - 1, 1, 1},
        };
        for (size_t b = 0; b < TP_ARRAY_LEN(boxes); b++) {
            snprintf(what, sizeof(what), "%s %dx%d cols %d box %zu", p->name, hs, vs, columns, b);
            check_region(d, seek, slen, &ref, W, H, m, boxes[b][0], boxes[b][1], boxes[b][2],
                         boxes[b][3], what);
        }
        uint64_t st = (uint64_t)W * 131 + (uint64_t)H * 7 + (uint64_t)m + (uint64_t)hs * 3;
        for (int i = 0; i < 24; i++) {
            int w = 1 + (int)(lcg(&st) % (uint64_t)W), h = 1 + (int)(lcg(&st) % (uint64_t)H);
            int x = (int)(lcg(&st) % (uint64_t)(W - w + 1));
            int y = (int)(lcg(&st) % (uint64_t)(H - h + 1));
            snprintf(what, sizeof(what), "%s %dx%d cols %d random %d", p->name, hs, vs, columns, i);
            check_region(d, seek, slen, &ref, W, H, m, x, y, w, h, what);
        }
        free(ref.pixels);
    }
    tp_jpeg_stats stats;
    tp_jpeg_decoder_stats(d, &stats);
    ck_assert_int_eq(stats.seek_fallbacks, 0);
    /* past one MCU each way, the interior boxes must have taken the seekable path */
    if (W > 64 && H > 64)
        ck_assert_msg(stats.seek_decodes >= TP_ARRAY_LEN(scales) * 8, "%s: %llu seeks",
                      p->name, (unsigned long long)stats.seek_decodes);
    tp_jpeg_decoder_destroy(d);
    tp_jpeg_decoder_destroy(plain);
    free(orig);
    free(seek);
}

static const int sampling[][2] = {{1, 1}, {2, 1}, {2, 2}, {1, 2}, {4, 1}};

/* _i: the subsampling; colour photographs whole and cut to odd and one-MCU sizes, and the
 * generated pattern, whose colour changes at every pixel: its 29 MCUs a row (at 2x1 and
 * 2x2) leave a last column group of 3 pixels, whose region JPEG libjpeg would upsample
 * without its fancy filter, and at K = 1 every group is 2 chroma samples wide at 2/8. */
START_TEST(test_colour)
{
    int hs = sampling[_i][0], vs = sampling[_i][1];
    static const char *const files[] = {"chelsea.png", "coffee.png", "rocket.jpg", NULL};
    for (size_t f = 0; f < TP_ARRAY_LEN(files); f++) {
        picture p = load_picture(files[f], 3);
        check_picture(&p, hs, vs, f == 1 || f == 3 ? 1 : 4);
        if (f == 0) {
            static const int sizes[][2] = {{1, 1}, {7, 9}, {8 * 4, 8 * 2}, {16, 16},
                                           {17, 15}, {33, 47}, {130, 61}};
            for (size_t k = 0; k < TP_ARRAY_LEN(sizes); k++) {
                picture q = window(&p, 101, 77, sizes[k][0], sizes[k][1]);
                check_picture(&q, hs, vs, 2);
                free(q.px);
            }
        }
        free(p.px);
    }
}
END_TEST

START_TEST(test_grey)
{
    picture p = load_picture("camera.png", 1);
    check_picture(&p, 1, 1, 4);
    check_picture(&p, 1, 1, 1);
    picture q = window(&p, 3, 5, 41, 23);
    check_picture(&q, 1, 1, 3);
    free(q.px);
    free(p.px);
}
END_TEST

/* A camera's own JPEG, re-encoded: the photograph's bytes as they came. */
START_TEST(test_camera_file)
{
    const char *dir = getenv("TP_PHOTOS");
    char path[4096];
    snprintf(path, sizeof(path), "%s/rocket.jpg", dir ? dir : "");
    size_t len;
    unsigned char *orig = dir ? read_file(path, &len) : NULL;
    if (!orig)
        return; /* test_colour covers the pattern; the file itself is only there with photos */
    size_t slen;
    unsigned char *seek = seekable(orig, len, 4, &slen);
    fprintf(stderr, "rocket.jpg: %zu bytes, seekable %zu (%.4f)\n", len, slen,
            (double)slen / (double)len);
    tp_jpeg_decoder *d;
    ck_assert_int_eq(tp_jpeg_decoder_create(&d), 0);
    tp_image ref = {0};
    decode_full(d, orig, len, 8, &ref);
    check_region(d, seek, slen, &ref, ref.width, ref.height, 8, 100, 150, 200, 180, "rocket");
    tp_jpeg_stats st;
    tp_jpeg_decoder_stats(d, &st);
    ck_assert_int_eq(st.seek_decodes, 1);
    free(ref.pixels);
    tp_jpeg_decoder_destroy(d);
    free(orig);
    free(seek);
}
END_TEST

/* What the re-encoder takes, leaves alone, keeps and refuses. */
START_TEST(test_make_seekable)
{
    unsigned char *jpeg, *out;
    unsigned long len;
    size_t olen;
    tp_error err;
    /* progressive: a baseline copy with the same pixels */
    fixture_jpeg(FIX_PROGRESSIVE, 333, 250, &jpeg, &len, NULL);
    unsigned char *seek = seekable(jpeg, len, 4, &olen);
    tp_jpeg_decoder *d;
    ck_assert_int_eq(tp_jpeg_decoder_create(&d), 0);
    tp_image a = {0}, b = {0};
    decode_full(d, jpeg, len, 8, &a);
    decode_full(d, seek, olen, 8, &b);
    ck_assert_int_eq(memcmp(a.pixels, b.pixels, (size_t)333 * 250 * 3), 0);
    check_region(d, seek, olen, &a, 333, 250, 8, 120, 90, 50, 40, "progressive");
    /* deterministic */
    size_t again_len;
    unsigned char *again = seekable(jpeg, len, 4, &again_len);
    ck_assert(again_len == olen && !memcmp(again, seek, olen));
    /* 333 wide 4:2:0 has 21 MCUs a row: 4 columns become 3 */
    tp_jpeg_seek s = {0};
    ck_assert_int_eq(tp_jpeg_seek_parse(seek, olen, &s), 1);
    ck_assert_int_eq(s.mcus_x, 21);
    ck_assert_int_eq(s.interval, 3);
    ck_assert_int_eq(s.groups, 7);
    free(again);
    free(seek);
    free(jpeg);
    /* metadata is kept */
    fixture_jpeg(FIX_EXIF, 64, 48, &jpeg, &len, NULL);
    seek = seekable(jpeg, len, 4, &olen);
    ck_assert_ptr_nonnull(memmem(seek, olen, "Exif\0\0MM\0*", 10));
    free(seek);
    free(jpeg);
    /* CMYK is left as it is */
    fixture_jpeg(FIX_CMYK, 64, 48, &jpeg, &len, NULL);
    ck_assert_int_eq(tp_jpeg_make_seekable(jpeg, len, 4, &out, &olen, &err), 0);
    /* truncated and garbage data are refused, never re-encoded */
    ck_assert_int_eq(tp_jpeg_make_seekable(jpeg, len / 2, 4, &out, &olen, &err), TP_EBADIMAGE);
    free(jpeg);
    fixture_jpeg(FIX_420, 200, 100, &jpeg, &len, NULL);
    ck_assert_int_eq(tp_jpeg_make_seekable(jpeg, len * 2 / 3, 4, &out, &olen, &err),
                     TP_EBADIMAGE);
    unsigned char junk[300];
    tp_test_fill(junk, sizeof(junk), 5, 6);
    junk[0] = 0xFF, junk[1] = 0xD8;
    ck_assert_int_eq(tp_jpeg_make_seekable(junk, sizeof(junk), 4, &out, &olen, &err),
                     TP_EBADIMAGE);
    ck_assert_int_eq(tp_jpeg_make_seekable(jpeg, len, 0, &out, &olen, &err), TP_EUSAGE);
    free(jpeg);
    free(a.pixels);
    free(b.pixels);
    free(s.seg);
    tp_jpeg_decoder_destroy(d);
}
END_TEST

/* Restart markers written by other encoders: one every MCU row is seekable as it is; an
 * interval that does not divide the row is decoded the usual way. */
START_TEST(test_foreign_restarts)
{
    picture p = load_picture("chelsea.png", 3);
    for (unsigned interval = 0; interval < 2; interval++) {
        unsigned char *jpeg;
        unsigned long len;
        int mcus_x = (p.w + 15) / 16;
        fixture_encode(p.px, p.w, p.h, 3, 2, 2, 85, 0, interval ? 5 : (unsigned)mcus_x, &jpeg,
                       &len);
        tp_jpeg_seek s = {0};
        ck_assert_int_eq(tp_jpeg_seek_parse(jpeg, len, &s), mcus_x % 5 ? !interval : 1);
        free(s.seg);
        tp_jpeg_decoder *d;
        ck_assert_int_eq(tp_jpeg_decoder_create(&d), 0);
        tp_image ref = {0};
        decode_full(d, jpeg, len, 8, &ref);
        check_region(d, jpeg, len, &ref, p.w, p.h, 8, 50, 120, 100, 60, "foreign restarts");
        free(ref.pixels);
        tp_jpeg_decoder_destroy(d);
        free(jpeg);
    }
    free(p.px);
}
END_TEST

/* The offset of restart marker number `n` (counting from 0) in the scan. */
static size_t nth_restart(const unsigned char *p, size_t len, const tp_jpeg_seek *s, int n)
{
    for (size_t i = s->scan, k = 0; i + 1 < len; i++)
        if (p[i] == 0xFF && p[i + 1] >= 0xD0 && p[i + 1] <= 0xD7 && (int)k++ == n)
            return i;
    ck_abort_msg("no restart marker %d", n);
    return 0;
}

/* Decodes region rq of the damaged `bad` with the seekable path and without: both give
 * the same result code and pixels, and the seekable path counts `fallbacks`. */
static void check_damaged(const unsigned char *bad, size_t len, const tp_jpeg_request *rq,
                          uint64_t fallbacks, const char *what)
{
    tp_jpeg_decoder *d, *plain;
    ck_assert_int_eq(tp_jpeg_decoder_create(&d), 0);
    ck_assert_int_eq(tp_jpeg_decoder_create(&plain), 0);
    tp_jpeg_decoder_set_seek(plain, false);
    tp_image a = {0}, b = {0};
    tp_error ea = {0}, eb = {0};
    int ra = tp_jpeg_decode(d, bad, len, rq, &a, &ea);
    int rb = tp_jpeg_decode(plain, bad, len, rq, &b, &eb);
    ck_assert_msg(ra == rb, "%s: %d (%s) against %d (%s)", what, ra, ea.msg, rb, eb.msg);
    if (ra == 0) {
        ck_assert_int_eq(a.x0 <= b.x0 + b.width, 1);
        int x0 = rq->x, y0 = rq->y; /* scale 8 */
        for (int r = y0; r < y0 + rq->height; r++)
            ck_assert(!memcmp(a.pixels + ((size_t)(r - a.y0) * a.width + (x0 - a.x0)) * 3,
                              b.pixels + ((size_t)(r - b.y0) * b.width + (x0 - b.x0)) * 3,
                              (size_t)rq->width * 3));
    }
    tp_jpeg_stats st;
    tp_jpeg_decoder_stats(d, &st);
    ck_assert_msg(st.seek_fallbacks == fallbacks, "%s: %llu fallbacks", what,
                  (unsigned long long)st.seek_fallbacks);
    free(a.pixels);
    free(b.pixels);
    tp_jpeg_decoder_destroy(d);
    tp_jpeg_decoder_destroy(plain);
}

/* A picture (load_picture) at 4:2:0, quality 90, its seekable copy at `columns` and the
 * copy's layout. */
typedef struct seek_fx {
    picture p;
    unsigned char *seek;
    size_t len;
    tp_jpeg_seek s;
} seek_fx;

static seek_fx seek_fx_make(const char *file, int columns)
{
    seek_fx f = {.p = load_picture(file, 3)};
    unsigned char *orig;
    unsigned long olen;
    fixture_encode(f.p.px, f.p.w, f.p.h, 3, 2, 2, 90, 0, 0, &orig, &olen);
    f.seek = seekable(orig, olen, columns, &f.len);
    free(orig);
    ck_assert_int_eq(tp_jpeg_seek_parse(f.seek, f.len, &f.s), 1);
    return f;
}

static void seek_fx_free(seek_fx *f)
{
    free(f->s.seg);
    free(f->seek);
    free(f->p.px);
}

START_TEST(test_damaged)
{
    seek_fx f = seek_fx_make("coffee.png", 4);
    const picture p = f.p;
    unsigned char *seek = f.seek;
    size_t len = f.len;
    tp_jpeg_seek s = f.s;
    int row = s.mcus_y / 2; /* damage in the middle row */
    size_t at = nth_restart(seek, len, &s, row * s.groups + 1);
    tp_jpeg_request top = {.x = p.w / 3, .y = 0, .width = p.w / 3, .height = 32,
                           .scale_num = 8};
    tp_jpeg_request low = {.x = p.w / 3, .y = p.h - 40, .width = p.w / 3, .height = 40,
                           .scale_num = 8};
    unsigned char *bad = malloc(len);
    /* a restart marker out of order */
    memcpy(bad, seek, len);
    bad[at + 1] = (unsigned char)(0xD0 + ((bad[at + 1] - 0xD0 + 3) & 7));
    check_damaged(bad, len, &top, 0, "renumbered marker, region above it");
    check_damaged(bad, len, &low, 1, "renumbered marker, region below it");
    /* a marker lost (its two bytes made data) */
    memcpy(bad, seek, len);
    bad[at + 1] = 0x00;
    check_damaged(bad, len, &low, 1, "lost marker");
    /* a segment of garbage the region needs: all-ones codes are no Huffman code */
    memcpy(bad, seek, len);
    int g = p.w / 2 / s.mcu_w / s.interval; /* the group under the region's middle */
    size_t seg = nth_restart(seek, len, &s, (s.mcus_y - 2) * s.groups + g - 1) + 2;
    for (size_t i = seg; i + 1 < len && bad[i] != 0xFF; i++)
        bad[i] = 0xFF, bad[++i] = 0x00;
    check_damaged(bad, len, &low, 1, "garbage segment");
    /* cut short: the region below the cut falls back (and fails as a full decode
     * would); above it, only the segments it needs are read */
    check_damaged(seek, at, &low, 1, "truncated");
    check_damaged(seek, at, &top, 0, "truncated, region above the cut");
    free(bad);
    f.s = s; /* its segment table as the scans grew it */
    seek_fx_free(&f);
}
END_TEST

/* The layout reader on damaged headers never reads past the data and says "not
 * seekable" rather than failing. */
START_TEST(test_parse_hostile)
{
    unsigned char *jpeg;
    unsigned long len;
    fixture_jpeg(FIX_RESTART, 160, 64, &jpeg, &len, NULL);
    tp_jpeg_seek s = {0};
    ck_assert_int_eq(tp_jpeg_seek_parse(jpeg, len, &s), 1);
    for (size_t cut = 0; cut < s.scan; cut++)
        ck_assert_int_eq(tp_jpeg_seek_parse(jpeg, cut, &s), 0);
    for (size_t i = 2; i < s.scan; i++) {
        unsigned char *bad = malloc(len);
        memcpy(bad, jpeg, len);
        bad[i] ^= 0x5A;
        if (tp_jpeg_seek_parse(bad, len, &s) == 1) {
            size_t want = (size_t)s.mcus_y * s.groups;
            int rc = tp_jpeg_seek_scan(&s, bad, len, want);
            ck_assert(rc == 0 || rc == TP_EBADIMAGE);
        }
        free(bad);
    }
    ck_assert_int_eq(tp_jpeg_seek_parse("\xFF\xD8", 2, &s), 0);
    free(s.seg);
    free(jpeg);
}
END_TEST

/* Runs the scan with the plain (memchr) and the default (AVX-512 where the CPU has it)
 * search for markers and checks that they agree on the result and every segment. */
static void scan_both(const tp_jpeg_seek *layout, const unsigned char *data, size_t len,
                      const char *what)
{
    tp_jpeg_seek a = *layout, b = *layout;
    a.seg = b.seg = NULL;
    a.seg_cap = b.seg_cap = 0;
    size_t want = (size_t)layout->mcus_y * layout->groups;
    tp__jpeg_seek_simd = 0;
    int ra = tp_jpeg_seek_scan(&a, data, len, want);
    tp__jpeg_seek_simd = -1;
    int rb = tp_jpeg_seek_scan(&b, data, len, want);
    ck_assert_msg(ra == rb && a.nseg == b.nseg && a.pos == b.pos && a.ended == b.ended,
                  "%s: plain %d with %zu segments, default %d with %zu", what, ra, a.nseg, rb,
                  b.nseg);
    ck_assert_msg(!a.nseg || !memcmp(a.seg, b.seg, a.nseg * 2 * sizeof(*a.seg)),
                  "%s: the segments differ", what);
    free(a.seg);
    free(b.seg);
}

/* The two marker searches agree on seekable JPEGs cut at every length of their last
 * 300 bytes (every alignment of the end against a 64-byte block), and with 0xFF, stuffed
 * bytes, fill runs, runs before a stuffed byte and stray markers written into the
 * entropy-coded data at random places. */
START_TEST(test_scan_paths)
{
    seek_fx f = seek_fx_make(NULL, 1);
    unsigned char *seek = f.seek;
    size_t len = f.len;
    const tp_jpeg_seek s = f.s;
    char what[64];
    for (size_t cut = len > 300 ? len - 300 : s.scan; cut <= len; cut++) {
        snprintf(what, sizeof(what), "cut at %zu of %zu", cut, len);
        scan_both(&s, seek, cut, what);
    }
    static const unsigned char pieces[][3] = {{0xFF, 0, 0}, {0xFF, 0x00, 0}, {0xFF, 0xFF, 0x00},
                                              {0xFF, 0xFF, 0xD3}, {0xFF, 0xD9, 0},
                                              {0xFF, 0xD0, 0}, {0xFF, 0xFF, 0xFF}};
    unsigned char *bad = malloc(len);
    uint64_t st = 7;
    for (int round = 0; round < 400; round++) {
        memcpy(bad, seek, len);
        for (int k = 0, n = 1 + (int)(lcg(&st) % 6); k < n; k++) {
            size_t at = s.scan + (size_t)(lcg(&st) % (uint64_t)(len - s.scan - 3));
            memcpy(bad + at, pieces[lcg(&st) % TP_ARRAY_LEN(pieces)], 3);
        }
        snprintf(what, sizeof(what), "round %d", round);
        scan_both(&s, bad, len, what);
    }
    free(bad);
    seek_fx_free(&f);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("jpeg_seek");
    TCase *tc = tcase_create("seek");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_colour, 0, TP_ARRAY_LEN(sampling));
    tcase_add_test(tc, test_grey);
    tcase_add_test(tc, test_scan_paths);
    tcase_add_test(tc, test_camera_file);
    tcase_add_test(tc, test_make_seekable);
    tcase_add_test(tc, test_foreign_restarts);
    tcase_add_test(tc, test_damaged);
    tcase_add_test(tc, test_parse_hostile);
    suite_add_tcase(su, tc);
    return tp_test_run(su);
}
