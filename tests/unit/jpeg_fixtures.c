/* Test JPEG encoder; see jpeg_fixtures.h. */
#include "jpeg_fixtures.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

static unsigned char pattern(int x, int y, int c)
{
    unsigned v = (unsigned)(x * (3 + c) + y * (5 - c) + ((x * 7919 + y * 104729 + c * 31) % 37));
    return (unsigned char)(((x / 9 + y / 13) % 2 ? v : 255 - v) & 0xff);
}

static void set_sampling(struct jpeg_compress_struct *c, int h, int v)
{
    c->comp_info[0].h_samp_factor = h;
    c->comp_info[0].v_samp_factor = v;
    for (int i = 1; i < c->num_components; i++)
        c->comp_info[i].h_samp_factor = c->comp_info[i].v_samp_factor = 1;
}

void fixture_jpeg(int kind, int w, int h, unsigned char **out, unsigned long *len,
                  unsigned char **cmyk)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    *out = NULL;
    *len = 0;
    jpeg_mem_dest(&c, out, len);
    int comps = kind == FIX_GRAY ? 1 : kind == FIX_CMYK ? 4 : 3;
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 4 ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 85, TRUE);
    if (kind == FIX_422)
        set_sampling(&c, 2, 1);
    else if (kind == FIX_444 || kind == FIX_CMYK)
        set_sampling(&c, 1, 1);
    if (kind == FIX_PROGRESSIVE)
        jpeg_simple_progression(&c);
    if (kind == FIX_RESTART)
        c.restart_in_rows = 1;
    jpeg_start_compress(&c, TRUE);
    if (kind == FIX_EXIF) {
        static const unsigned char exif[] = "Exif\0\0MM\0*\0\0\0\x08\0\0";
        jpeg_write_marker(&c, JPEG_APP0 + 1, exif, sizeof(exif));
    }
    unsigned char *row = malloc((size_t)w * comps), *all = NULL;
    if (kind == FIX_CMYK && cmyk)
        all = *cmyk = malloc((size_t)w * h * 4);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++)
            for (int k = 0; k < comps; k++)
                row[x * comps + k] = pattern(x, y, k);
        if (all)
            memcpy(all + (size_t)y * w * 4, row, (size_t)w * 4);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
}

void fixture_encode(const unsigned char *pixels, int w, int h, int comps, int hs, int vs,
                    int quality, int progressive, unsigned restart, unsigned char **out,
                    unsigned long *len)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    *out = NULL;
    *len = 0;
    jpeg_mem_dest(&c, out, len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = comps == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    set_sampling(&c, hs, vs);
    if (progressive)
        jpeg_simple_progression(&c);
    c.restart_interval = restart;
    jpeg_start_compress(&c, TRUE);
    for (int y = 0; y < h; y++) {
        JSAMPROW r = (JSAMPROW)(pixels + (size_t)y * w * comps);
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
}
