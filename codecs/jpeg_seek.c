/* Seekable JPEGs: decoding a region by entropy-decoding only the MCUs it touches.
 *
 * A baseline JPEG with a restart marker every K MCUs, K dividing the MCUs of a row, is a
 * grid of independently decodable segments: every MCU row starts a segment (the DC
 * predictors restart with it) and splits into column groups of K MCUs. The segments a
 * region needs, copied behind the file's own headers (the frame size changed, the
 * restart markers renumbered), form a smaller JPEG of just those MCUs that libjpeg-turbo
 * decodes to the same pixels a full decode gives there, given a margin where the image
 * goes on for chroma upsampling (jpeg_decode.c). The markers are the index: they are found by scanning the entropy-coded bytes
 * for 0xFF, which costs microseconds against a decode's milliseconds and adds no bytes
 * to the file.
 *
 * `pack --jpeg-seek` makes such files: tp_jpeg_make_seekable re-encodes a JPEG's DCT
 * coefficients unchanged (libjpeg's transcoding API, as jpegtran does) into a baseline
 * JPEG with Huffman tables optimised for it, a restart interval and the original's
 * metadata segments, so its pixels are those of the original. */
#include "codecs.h"

#include <assert.h>
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

/* ---- reading the layout ---- */

static unsigned be16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }

static bool is_app_or_com(unsigned m) { return (m >= 0xE0 && m <= 0xEF) || m == 0xFE; }

/* The headers a region's own JPEG copies: tables, frame, restart interval, and the JFIF
 * and Adobe segments, which decide the colour space; other metadata does not change the
 * pixels. */
static bool keep_segment(unsigned marker, const unsigned char *body, unsigned len)
{
    if (!is_app_or_com(marker))
        return true;
    return (marker == 0xE0 && len >= 5 && !memcmp(body, "JFIF", 5)) ||
           (marker == 0xEE && len >= 5 && !memcmp(body, "Adobe", 5));
}

static int parse_sof(tp_jpeg_seek *s, const unsigned char *p, unsigned len)
{
    if (len < 8 || p[0] != 8)
        return 0;
    s->height = (int)be16(p + 1);
    s->width = (int)be16(p + 3);
    s->ncomp = p[5];
    if (s->width < 1 || s->height < 1 || (s->ncomp != 1 && s->ncomp != 3) ||
        len != 6u + 3u * (unsigned)s->ncomp)
        return 0;
    int hmax = 1, vmax = 1;
    s->hmin = 4;
    for (int c = 0; c < s->ncomp; c++) {
        int h = p[7 + 3 * c] >> 4, v = p[7 + 3 * c] & 15;
        if (h < 1 || h > 4 || v < 1 || v > 4 || (s->ncomp == 1 && (h != 1 || v != 1)))
            return 0;
        s->hmin = TP_MIN(s->hmin, h);
        hmax = TP_MAX(hmax, h);
        vmax = TP_MAX(vmax, v);
    }
    s->mcu_w = 8 * hmax;
    s->mcu_h = 8 * vmax;
    s->mcus_x = (s->width + s->mcu_w - 1) / s->mcu_w;
    s->mcus_y = (s->height + s->mcu_h - 1) / s->mcu_h;
    return 1;
}

/* A baseline scan of every component at once, the whole spectrum, no successive
 * approximation: the only kind whose segments hold whole MCUs. */
static int parse_sos(const tp_jpeg_seek *s, const unsigned char *p, unsigned len)
{
    if (len < 1 || p[0] != s->ncomp || len != 1u + 2u * p[0] + 3u)
        return 0;
    const unsigned char *t = p + 1 + 2 * p[0];
    return t[0] == 0 && t[1] == 63 && t[2] == 0;
}

int tp_jpeg_seek_parse(const void *data, size_t len, tp_jpeg_seek *s)
{
    const unsigned char *p = data;
    s->nkeep = s->nseg = 0;
    s->interval = 0;
    s->ended = false;
    s->width = 0;
    if (len < 4 || len > UINT32_MAX || p[0] != 0xFF || p[1] != 0xD8)
        return 0;
    for (size_t i = 2;;) {
        if (i + 4 > len || p[i] != 0xFF)
            return 0;
        while (i + 4 < len && p[i + 1] == 0xFF) /* fill bytes before a marker */
            i++;
        unsigned m = p[i + 1], seglen = be16(p + i + 2);
        if (seglen < 2 || i + 2 + seglen > len)
            return 0;
        const unsigned char *body = p + i + 4;
        unsigned blen = seglen - 2;
        if (m == 0xC0 || m == 0xC1) {
            if (s->width || !parse_sof(s, body, blen))
                return 0;
            s->sof = (uint32_t)i;
        } else if (m == 0xDD) {
            if (blen != 2)
                return 0;
            s->interval = (int)be16(body);
        } else if (m == 0xDA) {
            if (!s->width || !s->interval || s->mcus_x % s->interval ||
                !parse_sos(s, body, blen))
                return 0;
            s->sos = (uint32_t)i;
            s->scan = (uint32_t)(i + 2 + seglen);
            s->groups = s->mcus_x / s->interval;
            s->pos = s->next = s->scan;
            return 1;
        } else if (m != 0xC4 && m != 0xDB && !is_app_or_com(m)) {
            return 0; /* progressive, arithmetic, lossless, hierarchical, DNL, unknown */
        }
        if (keep_segment(m, body, blen)) {
            if (s->nkeep == TP_JPEG_SEEK_MAX_HEADERS)
                return 0;
            s->keep[s->nkeep][0] = (uint32_t)i;
            s->keep[s->nkeep][1] = 2 + seglen;
            s->nkeep++;
        }
        i += 2 + seglen;
    }
}

static int grow_segments(tp_jpeg_seek *s, size_t n)
{
    if (n <= s->seg_cap)
        return 0;
    size_t cap = TP_MAX(n, 2 * s->seg_cap);
    uint32_t *seg = realloc(s->seg, cap * 2 * sizeof(*seg));
    if (!seg)
        return -ENOMEM;
    s->seg = seg;
    s->seg_cap = cap;
    return 0;
}

/* The first 0xFF at or after `i` that is not a stuffed data byte (0xFF 0x00): a marker,
 * the first of a run of 0xFF before one, or the last byte; `len` if there is none.
 * Entropy-coded data holds a stuffed 0xFF about every 256 bytes, a restart marker every
 * segment (about every 130 bytes of the photographs at --jpeg-seek=2). */
static size_t next_ff_plain(const unsigned char *p, size_t i, size_t len)
{
    for (;;) {
        const unsigned char *q = i < len ? memchr(p + i, 0xFF, len - i) : NULL;
        if (!q)
            return len;
        size_t at = (size_t)(q - p);
        if (at + 1 >= len || p[at + 1] != 0x00)
            return at;
        i = at + 2;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* The same 64 bytes at a time: a stuffed byte costs nothing, where memchr stops at each.
 * The scan took 1.9% of an rrc224 image from the seekable photographs with memchr, 1.3%
 * with this. */
__attribute__((target("avx512f,avx512bw"))) static size_t
next_ff_avx512(const unsigned char *p, size_t i, size_t len)
{
    const __m512i ff = _mm512_set1_epi8((char)0xFF), zero = _mm512_setzero_si512();
    for (; i < len && len - i > 64; i += 64) { /* p[i + 64] exists: the pair at i + 63 */
        __m512i a = _mm512_loadu_si512(p + i), b = _mm512_loadu_si512(p + i + 1);
        __mmask64 m = _mm512_cmpeq_epi8_mask(a, ff) & _mm512_cmpneq_epi8_mask(b, zero);
        if (m)
            return i + (size_t)__builtin_ctzll(m);
    }
    return next_ff_plain(p, i, len);
}

static size_t (*pick_next_ff(void))(const unsigned char *, size_t, size_t)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
               ? next_ff_avx512 : next_ff_plain;
}
#else
static size_t (*pick_next_ff(void))(const unsigned char *, size_t, size_t)
{
    return next_ff_plain;
}
#endif

/* Tests only: 0 forces the plain scan, -1 (the default) picks by the CPU. */
int tp__jpeg_seek_simd = -1;

int tp_jpeg_seek_scan(tp_jpeg_seek *s, const void *data, size_t len, size_t want)
{
    size_t (*next_ff)(const unsigned char *, size_t, size_t) =
        tp__jpeg_seek_simd != 0 ? pick_next_ff() : next_ff_plain;
    const unsigned char *p = data;
    size_t total = (size_t)s->mcus_y * (size_t)s->groups;
    if (want > total)
        return TP_EUSAGE;
    TP_TRY(grow_segments(s, want));
    size_t i = s->pos;
    while (s->nseg < want) {
        if (s->ended)
            return TP_EBADIMAGE; /* the scan ended before all its segments */
        size_t at = i < len ? next_ff(p, i, len) : len, j = at + 1;
        if (at == len)
            return TP_EBADIMAGE; /* no marker after the entropy-coded data */
        while (j < len && p[j] == 0xFF)
            j++;
        if (j >= len)
            return TP_EBADIMAGE;
        i = j + 1;
        if (p[j] == 0x00) /* 0xFF 0xFF 0x00: next_ff skips a stuffed byte itself */
            return TP_EBADIMAGE;
        bool rst = p[j] >= 0xD0 && p[j] <= 0xD7;
        if (rst && (size_t)(p[j] - 0xD0) != (s->nseg & 7))
            return TP_EBADIMAGE; /* a marker missing or out of order */
        s->seg[2 * s->nseg] = s->next;
        s->seg[2 * s->nseg + 1] = (uint32_t)at;
        s->nseg++;
        s->next = (uint32_t)i;
        if (!rst)
            s->ended = true;
        else if (s->nseg == total)
            return TP_EBADIMAGE; /* more segments than MCUs */
    }
    s->pos = i;
    return 0;
}

int tp_jpeg_seek_build(const tp_jpeg_seek *s, const void *data, int g0, int g1, int r0,
                       int r1, unsigned char **buf, size_t *cap, size_t *out_len)
{
    const unsigned char *p = data;
    assert(0 <= g0 && g0 < g1 && g1 <= s->groups && 0 <= r0 && r0 < r1 && r1 <= s->mcus_y);
    assert((size_t)(r1 - 1) * s->groups + (size_t)g1 <= s->nseg);
    size_t need = 2 + (s->scan - s->sos) + 2;
    for (int k = 0; k < s->nkeep; k++)
        need += s->keep[k][1];
    for (int r = r0; r < r1; r++) {
        const uint32_t *seg = s->seg + 2 * ((size_t)r * s->groups + (size_t)g0);
        need += seg[2 * (g1 - g0) - 1] - seg[0] + 2u * (unsigned)(g1 - g0);
    }
    TP_TRY(tp__grow((void **)buf, cap, need + TP_JPEG_SEEK_TAIL));
    unsigned char *o = *buf;
    *o++ = 0xFF;
    *o++ = 0xD8;
    for (int k = 0; k < s->nkeep; k++) {
        memcpy(o, p + s->keep[k][0], s->keep[k][1]);
        if (s->keep[k][0] == s->sof) { /* the frame is the region's MCUs */
            int w = g1 == s->groups ? s->width - g0 * s->interval * s->mcu_w
                                    : (g1 - g0) * s->interval * s->mcu_w;
            int h = r1 == s->mcus_y ? s->height - r0 * s->mcu_h : (r1 - r0) * s->mcu_h;
            o[5] = (unsigned char)(h >> 8), o[6] = (unsigned char)h;
            o[7] = (unsigned char)(w >> 8), o[8] = (unsigned char)w;
        }
        o += s->keep[k][1];
    }
    memcpy(o, p + s->sos, s->scan - s->sos);
    o += s->scan - s->sos;
    unsigned n = 0;
    for (int r = r0; r < r1; r++)
        for (int g = g0; g < g1; g++) {
            const uint32_t *seg = s->seg + 2 * ((size_t)r * s->groups + (size_t)g);
            if (n) {
                *o++ = 0xFF;
                *o++ = (unsigned char)(0xD0 + ((n - 1) & 7));
            }
            n++;
            /* a segment that continues into the next group keeps its bytes up to the
             * marker; fill bytes before that marker are harmless */
            memcpy(o, p + seg[0], seg[1] - seg[0]);
            o += seg[1] - seg[0];
        }
    *o++ = 0xFF;
    *o++ = 0xD9;
    *out_len = (size_t)(o - *buf);
    assert(*out_len <= need);
    memset(o, 0, TP_JPEG_SEEK_TAIL);
    return 0;
}

/* ---- making a JPEG seekable (pack --jpeg-seek) ---- */

typedef struct seek_error {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} seek_error;

static void seek_on_error(j_common_ptr cinfo)
{
    seek_error *e = (seek_error *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

static void seek_on_message(j_common_ptr cinfo, int level)
{
    if (level < 0) /* corrupt data: never re-encode what libjpeg papered over */
        seek_on_error(cinfo);
}

/* The largest divisor of the MCUs of a row that is at most `columns`. */
static int pick_interval(int mcus_x, int columns)
{
    for (int k = TP_MIN(columns, mcus_x); k > 1; k--)
        if (mcus_x % k == 0)
            return k;
    return 1;
}

/* What the re-encoder takes once the coefficients are read (8-bit Huffman coding is
 * checked before): YCbCr or grey, every coefficient of a progressive file complete (a file whose scans leave some out is decoded with block
 * smoothing, which a baseline copy would not get). */
static bool can_reencode(const struct jpeg_decompress_struct *c)
{
    if (!(c->num_components == 3 && c->jpeg_color_space == JCS_YCbCr) &&
        !(c->num_components == 1 && c->jpeg_color_space == JCS_GRAYSCALE &&
          c->comp_info[0].h_samp_factor == 1 && c->comp_info[0].v_samp_factor == 1))
        return false;
    if (c->progressive_mode)
        for (int ci = 0; ci < c->num_components; ci++)
            for (int k = 0; k < DCTSIZE2; k++)
                if (c->coef_bits[ci][k] != 0)
                    return false;
    return true;
}

/* Copies the original's metadata (EXIF, ICC, comments...), leaving out the JFIF and Adobe
 * segments libjpeg writes itself. */
static void copy_markers(const struct jpeg_decompress_struct *src, j_compress_ptr dst)
{
    for (jpeg_saved_marker_ptr m = src->marker_list; m; m = m->next) {
        if (dst->write_JFIF_header && m->marker == JPEG_APP0 && m->data_length >= 5 &&
            !memcmp(m->data, "JFIF", 5))
            continue;
        if (dst->write_Adobe_marker && m->marker == JPEG_APP0 + 14 && m->data_length >= 5 &&
            !memcmp(m->data, "Adobe", 5))
            continue;
        jpeg_write_marker(dst, m->marker, m->data, m->data_length);
    }
}

typedef struct transcode {
    struct jpeg_decompress_struct in;
    struct jpeg_compress_struct out;
    seek_error in_err, out_err;
    unsigned char *buf;
    unsigned long len;
    bool has_in, has_out;
} transcode;

static int reencode(transcode *t, const void *data, size_t len, int columns)
{
    struct jpeg_decompress_struct *in = &t->in;
    jpeg_create_decompress(in);
    t->has_in = true;
    jpeg_mem_src(in, data, (unsigned long)len);
    jpeg_save_markers(in, JPEG_COM, 0xFFFF);
    for (int m = 0; m < 16; m++)
        jpeg_save_markers(in, JPEG_APP0 + m, 0xFFFF);
    jpeg_read_header(in, TRUE);
    if (in->data_precision != 8 || in->arith_code)
        return 0;
    jvirt_barray_ptr *coefs = jpeg_read_coefficients(in);
    if (!can_reencode(in))
        return 0;
    struct jpeg_compress_struct *out = &t->out;
    out->err = jpeg_std_error(&t->out_err.pub);
    t->out_err.pub.error_exit = seek_on_error;
    jpeg_create_compress(out);
    t->has_out = true;
    jpeg_mem_dest(out, &t->buf, &t->len);
    jpeg_copy_critical_parameters(in, out);
    int hmax = in->max_h_samp_factor, mcus_x = (int)((in->image_width + 8 * hmax - 1) /
                                                      (8 * (unsigned)hmax));
    out->restart_interval = (unsigned)pick_interval(mcus_x, columns);
    out->optimize_coding = TRUE;
    out->write_JFIF_header = in->saw_JFIF_marker;
    out->write_Adobe_marker = in->saw_Adobe_marker;
    jpeg_write_coefficients(out, coefs);
    copy_markers(in, out);
    jpeg_finish_compress(out);
    jpeg_finish_decompress(in);
    return 1;
}

int tp_jpeg_make_seekable(const void *data, size_t len, int columns, unsigned char **out,
                          size_t *out_len, tp_error *err)
{
    if (len < 4 || len > UINT32_MAX || columns < 1)
        return tp__error_set(err, TP_EUSAGE, "JPEG of %zu bytes, %d columns", len, columns);
    transcode *t = calloc(1, sizeof(*t));
    if (!t)
        return tp__error_set(err, -ENOMEM, "out of memory");
    t->in.err = jpeg_std_error(&t->in_err.pub);
    t->in_err.pub.error_exit = seek_on_error;
    t->in_err.pub.emit_message = seek_on_message;
    volatile int rc = 0;
    seek_error *volatile failed = NULL;
    if (setjmp(t->in_err.jump)) {
        failed = &t->in_err;
    } else if (setjmp(t->out_err.jump)) {
        failed = &t->out_err;
    } else {
        rc = reencode(t, data, len, columns);
    }
    if (failed)
        rc = tp__error_set(err, failed->pub.msg_code == JERR_OUT_OF_MEMORY ? -ENOMEM
                                                                           : TP_EBADIMAGE,
                           "JPEG: %s", failed->msg);
    if (t->has_out)
        jpeg_destroy_compress(&t->out);
    if (t->has_in)
        jpeg_destroy_decompress(&t->in);
    if (rc == 1) {
        *out = t->buf;
        *out_len = t->len;
    } else {
        free(t->buf);
    }
    free(t);
    return rc;
}
