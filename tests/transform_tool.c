/* Test helper: decodes and transforms one JPEG and writes the RGB bytes to stdout, so a
 * Python test can compare them with Pillow's. Usage:
 *   transform_tool FILE rrc SIZE X Y W H exact|scaled|allscales
 *   transform_tool FILE center SIZE exact|scaled|allscales
 * (scaled: the default DCT scales, 1/8, 1/4, 1/2 and 1; allscales: every M/8)
 *   transform_tool FILE none  (prints "W H" then the pixels)
 *   transform_tool FILE pipe PIPELINE exact|scaled|allscales [SEED EPOCH ID [VIEW]]
 *     (prints "dtype d0 d1 d2" then the output's bytes) */
#include "transform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pipe_main(int argc, char **argv, char *data, size_t len)
{
    if (argc != 5 && argc != 8 && argc != 9)
        return 2;
    tp_transform t;
    tp_error err = {0};
    if (tp_transform_parse(argv[3], &t, &err) < 0 || t.kind == TP_TRANSFORM_NONE) {
        fprintf(stderr, "transform_tool: %s\n", err.msg[0] ? err.msg : "no ops");
        return 2;
    }
    t.exact = !strcmp(argv[4], "exact");
    t.scales = !strcmp(argv[4], "allscales") ? TP_JPEG_SCALES_ALL : 0;
    uint64_t seed = argc > 5 ? strtoull(argv[5], NULL, 10) : 0,
             epoch = argc > 6 ? strtoull(argv[6], NULL, 10) : 0,
             id = argc > 7 ? strtoull(argv[7], NULL, 10) : 0;
    uint32_t view = argc > 8 ? (uint32_t)strtoul(argv[8], NULL, 10) : 0;
    tp_transformer *tr;
    unsigned char *out = malloc(t.out_bytes);
    const tp_transform *ts[1] = {&t};
    unsigned char *outs[1] = {out};
    if (!out || tp_transformer_create(&tr) < 0)
        return 1;
    if (tp_transform_image_views(tr, data, len, ts, &view, 1, seed, epoch, id, outs, &err) < 0) {
        fprintf(stderr, "transform_tool: %s\n", err.msg);
        return 1;
    }
    printf("%s %lld %lld %lld\n", tp_dtype_name(t.shape.dtype), (long long)t.shape.shape[0],
           (long long)t.shape.shape[1], (long long)t.shape.shape[2]);
    fwrite(out, 1, t.out_bytes, stdout);
    tp_transformer_destroy(tr);
    free(out);
    free(data);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    char *data;
    size_t len;
    if (tp__read_file(argv[1], 1 << 28, &data, &len) < 0)
        return 1;
    if (!strcmp(argv[2], "pipe"))
        return pipe_main(argc, argv, data, len);
    tp_transform t = {0};
    tp_crop crop;
    char name[32];
    snprintf(name, sizeof(name), "%s%s", argv[2], argc > 3 ? argv[3] : "");
    if (tp_transform_parse(strcmp(argv[2], "none") ? name : "none", &t, NULL) < 0)
        return 2;
    if (t.kind == TP_TRANSFORM_RRC && argc == 9) {
        crop = (tp_crop){atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atoi(argv[7])};
        t.fixed = &crop;
    }
    t.exact = !strcmp(argv[argc - 1], "exact");
    t.scales = !strcmp(argv[argc - 1], "allscales") ? TP_JPEG_SCALES_ALL : 0;
    tp_transformer *tr;
    tp_error err;
    unsigned char *out = malloc((size_t)(t.size ? t.size : 1) * (t.size ? t.size : 1) * 3);
    if (tp_transformer_create(&tr) < 0 ||
        tp_transform_image(tr, data, len, &t, 0, 0, 0, out, &err) < 0) {
        fprintf(stderr, "transform_tool: %s\n", err.msg);
        return 1;
    }
    if (t.kind == TP_TRANSFORM_NONE) {
        const tp_image *img = tp_transformer_image(tr);
        printf("%d %d\n", img->width, img->height);
        fwrite(img->pixels, 1, (size_t)img->width * img->height * 3, stdout);
    } else {
        fwrite(out, 1, (size_t)t.size * t.size * 3, stdout);
    }
    tp_transformer_destroy(tr);
    free(out);
    free(data);
    return 0;
}
