/* Unit tests of the pipeline description language (include/turbopump/pipeline.h): every op
 * and alias parses to the struct it names, the named forms, the canonical text parsing
 * back to the same struct (hand-picked pipelines and random ones from a seeded
 * generator), the position and cause of every refusal, the rules tp_pipeline_check
 * enforces on C-built pipelines, and the shape each pipeline gives. */
#include "testutil.h"

#include "tp_common.h"

#include <turbopump/pipeline.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Field by field, so padding bytes of compound literals do not matter; NaN never occurs
 * in a checked pipeline, so == is exact equality here. */
static bool op_eq(const tp_op *a, const tp_op *b, char *why, size_t cap)
{
#define SAME(f)                                                                       \
    do {                                                                              \
        if (memcmp(&a->f, &b->f, sizeof(a->f))) {                                     \
            snprintf(why, cap, "field %s differs", #f);                               \
            return false;                                                             \
        }                                                                             \
    } while (0)
    SAME(kind);
    SAME(size);
    SAME(max_size);
    SAME(scale);
    SAME(ratio);
    SAME(p);
    SAME(padding);
    SAME(pad_if_needed);
    SAME(fill);
    SAME(brightness);
    SAME(contrast);
    SAME(saturation);
    SAME(channels);
    SAME(mean);
    SAME(std);
    SAME(dtype);
    SAME(layout);
#undef SAME
    return true;
}

static void assert_same(const tp_pipeline *a, const tp_pipeline *b, const char *what)
{
    ck_assert_msg(a->nops == b->nops, "%s: %u ops, want %u", what, a->nops, b->nops);
    for (uint32_t i = 0; i < a->nops; i++) {
        char why[64];
        ck_assert_msg(op_eq(&a->ops[i], &b->ops[i], why, sizeof(why)), "%s: op %u: %s", what,
                      i + 1, why);
    }
}

static void assert_parses(const char *text, const tp_op *want, uint32_t n)
{
    tp_pipeline exp = {.nops = n}, got;
    for (uint32_t i = 0; i < n; i++)
        exp.ops[i] = want[i];
    tp_error err = {0};
    ck_assert_msg(tp_pipeline_check(&exp, &err) == 0, "expected pipeline of '%s': %s", text,
                  err.msg);
    ck_assert_msg(tp_pipeline_parse(text, &got, &err) == 0, "'%s': %s", text, err.msg);
    assert_same(&got, &exp, text);
}

#define OPS(...) ((const tp_op[]){__VA_ARGS__}), (uint32_t)(sizeof((tp_op[]){__VA_ARGS__}) / sizeof(tp_op))
#define CC32 {.kind = TP_OP_CENTER_CROP, .size = {32, 32}}

START_TEST(test_ops)
{
    const tp_op rrc = {.kind = TP_OP_RANDOM_RESIZED_CROP, .size = {224, 224}};
    assert_parses("random_resized_crop(224)", OPS(rrc));
    assert_parses("RandomResizedCrop(224)", OPS(rrc));
    assert_parses(" random_resized_crop ( 224 , scale = 0.08:1 , ratio = 0.75 : 1.3333333333333333 ) ",
                  OPS(rrc));
    assert_parses("random_resized_crop(176:160, scale=0.35:1, ratio=0.5:2)",
                  OPS({.kind = TP_OP_RANDOM_RESIZED_CROP, .size = {176, 160}, .scale = {0.35, 1},
                       .ratio = {0.5, 2}}));
    assert_parses("random_resized_crop(96, 0.05:0.4)",
                  OPS({.kind = TP_OP_RANDOM_RESIZED_CROP, .size = {96, 96}, .scale = {0.05, 0.4}}));
    assert_parses("random_resized_crop(ratio=1:1, size=64)",
                  OPS({.kind = TP_OP_RANDOM_RESIZED_CROP, .size = {64, 64}, .ratio = {1, 1}}));
    assert_parses("resize(256:320)", OPS({.kind = TP_OP_RESIZE, .size = {256, 320}}));
    assert_parses("Resize(8:4096)", OPS({.kind = TP_OP_RESIZE, .size = {8, 4096}}));
    assert_parses("resize(256, max_size=400) | center_crop(224)",
                  OPS({.kind = TP_OP_RESIZE, .size = {256, 0}, .max_size = 400},
                      {.kind = TP_OP_CENTER_CROP, .size = {224, 224}}));
    assert_parses("center_crop(32)", OPS(CC32));
    assert_parses("CenterCrop(size=48:32, fill=7)",
                  OPS({.kind = TP_OP_CENTER_CROP, .size = {48, 32}, .fill = 7}));
    assert_parses("random_crop(32)", OPS({.kind = TP_OP_RANDOM_CROP, .size = {32, 32}}));
    assert_parses("RandomCrop(32, 4, true, 128)",
                  OPS({.kind = TP_OP_RANDOM_CROP, .size = {32, 32}, .padding = {4, 4, 4, 4},
                       .pad_if_needed = true, .fill = 128}));
    assert_parses("random_crop(32, padding=1:2)", /* torchvision: left/right, top/bottom */
                  OPS({.kind = TP_OP_RANDOM_CROP, .size = {32, 32}, .padding = {1, 2, 1, 2}}));
    assert_parses("random_crop(32, padding=1:2:3:4, pad_if_needed=false, fill=255)",
                  OPS({.kind = TP_OP_RANDOM_CROP, .size = {32, 32}, .padding = {1, 2, 3, 4},
                       .fill = 255}));
    const tp_op flip = {.kind = TP_OP_HFLIP, .p = 0.5};
    assert_parses("center_crop(32) | hflip", OPS(CC32, flip));
    assert_parses("center_crop(32) | hflip()", OPS(CC32, flip));
    assert_parses("center_crop(32) | hflip(0.5)", OPS(CC32, flip));
    assert_parses("center_crop(32) | RandomHorizontalFlip(p=0.25)",
                  OPS(CC32, {.kind = TP_OP_HFLIP, .p = 0.25}));
    assert_parses("hflip(1) | center_crop(32)", OPS({.kind = TP_OP_HFLIP, .p = 1}, CC32));
    assert_parses("center_crop(32) | random_horizontal_flip(p=1e-3)",
                  OPS(CC32, {.kind = TP_OP_HFLIP, .p = 1e-3}));
    assert_parses("center_crop(32) | color_jitter(0.4, 0.4, 0.4)",
                  OPS(CC32, {.kind = TP_OP_COLOR_JITTER, .brightness = {0.6, 1.4},
                             .contrast = {0.6, 1.4}, .saturation = {0.6, 1.4}}));
    assert_parses("center_crop(32) | ColorJitter(brightness=2, saturation=0.5:1.5)",
                  OPS(CC32, {.kind = TP_OP_COLOR_JITTER, .brightness = {0, 3},
                             .saturation = {0.5, 1.5}}));
    assert_parses("center_crop(32) | color_jitter(contrast=0)", /* 0: leave alone */
                  OPS(CC32, {.kind = TP_OP_COLOR_JITTER}));
    assert_parses("center_crop(32) | color_jitter", OPS(CC32, {.kind = TP_OP_COLOR_JITTER}));
    assert_parses("center_crop(32) | grayscale", OPS(CC32, {.kind = TP_OP_GRAYSCALE, .channels = 1}));
    assert_parses("center_crop(32) | Grayscale(3)", OPS(CC32, {.kind = TP_OP_GRAYSCALE, .channels = 3}));
    assert_parses("center_crop(32) | grayscale(num_output_channels=3)",
                  OPS(CC32, {.kind = TP_OP_GRAYSCALE, .channels = 3}));
    assert_parses("center_crop(32) | normalize(mean=0.485:0.456:0.406, std=0.229:0.224:0.225)",
                  OPS(CC32, {.kind = TP_OP_NORMALIZE, .mean = {0.485f, 0.456f, 0.406f},
                             .std = {0.229f, 0.224f, 0.225f}}));
    assert_parses("center_crop(32) | Normalize(0.5, 0.25)",
                  OPS(CC32, {.kind = TP_OP_NORMALIZE, .mean = {0.5f, 0.5f, 0.5f},
                             .std = {0.25f, 0.25f, 0.25f}}));
    assert_parses("center_crop(32) | normalize(std=2, mean=-1)",
                  OPS(CC32, {.kind = TP_OP_NORMALIZE, .mean = {-1, -1, -1}, .std = {2, 2, 2}}));
    static const struct {
        const char *text;
        tp_dtype dtype;
        tp_layout layout;
    } to[] = {
        {"to(uint8)", TP_DTYPE_UINT8, TP_LAYOUT_HWC},
        {"to(uint8, chw)", TP_DTYPE_UINT8, TP_LAYOUT_CHW},
        {"to(float32)", TP_DTYPE_FLOAT32, TP_LAYOUT_CHW},
        {"to(float)", TP_DTYPE_FLOAT32, TP_LAYOUT_CHW},
        {"to(float16, hwc)", TP_DTYPE_FLOAT16, TP_LAYOUT_HWC},
        {"to(half)", TP_DTYPE_FLOAT16, TP_LAYOUT_CHW},
        {"to(bfloat16)", TP_DTYPE_BFLOAT16, TP_LAYOUT_CHW},
        {"to(layout=hwc, dtype=bfloat16)", TP_DTYPE_BFLOAT16, TP_LAYOUT_HWC},
    };
    for (size_t i = 0; i < TP_ARRAY_LEN(to); i++) {
        char text[128];
        snprintf(text, sizeof(text), "center_crop(32) | %s", to[i].text);
        assert_parses(text, OPS(CC32, {.kind = TP_OP_TO, .dtype = to[i].dtype,
                                       .layout = to[i].layout}));
    }
    assert_parses("v1: center_crop(32)", OPS(CC32));
    assert_parses(" \t\nv1 :\ncenter_crop(32)\r\n", OPS(CC32));
    assert_parses("center_crop(32)|hflip|color_jitter(0.1)|grayscale(3)|normalize(0.5,0.5)|to(half)",
                  OPS(CC32, flip, {.kind = TP_OP_COLOR_JITTER, .brightness = {0.9, 1.1}},
                      {.kind = TP_OP_GRAYSCALE, .channels = 3},
                      {.kind = TP_OP_NORMALIZE, .mean = {0.5f, 0.5f, 0.5f}, .std = {0.5f, 0.5f, 0.5f}},
                      {.kind = TP_OP_TO, .dtype = TP_DTYPE_FLOAT16, .layout = TP_LAYOUT_CHW}));
    /* the explicit defaults are the exact doubles 3/4 and 4/3 */
    tp_pipeline p;
    ck_assert_int_eq(tp_pipeline_parse("random_resized_crop(224)", &p, NULL), 0);
    ck_assert(p.ops[0].scale[0] == 0.08 && p.ops[0].scale[1] == 1.0);
    ck_assert(p.ops[0].ratio[0] == 3.0 / 4.0 && p.ops[0].ratio[1] == 4.0 / 3.0);
}
END_TEST

START_TEST(test_named)
{
    const tp_op flip = {.kind = TP_OP_HFLIP, .p = 0.5};
    assert_parses("rrc224", OPS({.kind = TP_OP_RANDOM_RESIZED_CROP, .size = {224, 224},
                                 .scale = {0.08, 1}, .ratio = {3.0 / 4, 4.0 / 3}}, flip));
    assert_parses("random_resized_crop(224) | hflip(0.5)",
                  OPS({.kind = TP_OP_RANDOM_RESIZED_CROP, .size = {224, 224}}, flip));
    assert_parses("center224", OPS({.kind = TP_OP_RESIZE, .size = {256, 0}},
                                   {.kind = TP_OP_CENTER_CROP, .size = {224, 224}}));
    assert_parses(" v1: center100 ", OPS({.kind = TP_OP_RESIZE, .size = {114, 0}},
                                         {.kind = TP_OP_CENTER_CROP, .size = {100, 100}}));
    assert_parses("rrc8", OPS({.kind = TP_OP_RANDOM_RESIZED_CROP, .size = {8, 8}}, flip));
    assert_parses("rrc4096", OPS({.kind = TP_OP_RANDOM_RESIZED_CROP, .size = {4096, 4096}}, flip));
    assert_parses("center3584", OPS({.kind = TP_OP_RESIZE, .size = {4096, 0}},
                                    {.kind = TP_OP_CENTER_CROP, .size = {3584, 3584}}));
    tp_pipeline p;
    memset(&p, 0xa5, sizeof(p));
    ck_assert_int_eq(tp_pipeline_parse("none", &p, NULL), 0);
    ck_assert_uint_eq(p.nops, 0);
    ck_assert_int_eq(tp_pipeline_parse("v1:none", &p, NULL), 0);
    ck_assert_uint_eq(p.nops, 0);
    ck_assert_int_eq(tp_pipeline_parse("v01 : none", &p, NULL), 0);
    ck_assert_int_eq(tp_pipeline_parse("rrc", &p, NULL), TP_EUSAGE);
    ck_assert_int_eq(tp_pipeline_parse("rrc224x", &p, NULL), TP_EUSAGE);
    ck_assert_int_eq(tp_pipeline_parse("rrc8192", &p, NULL), TP_EUSAGE);
    ck_assert_int_eq(tp_pipeline_parse("rrc99999999999999999999", &p, NULL), TP_EUSAGE);
    ck_assert_int_eq(tp_pipeline_parse("None", &p, NULL), TP_EUSAGE);
    ck_assert_int_eq(tp_pipeline_parse(NULL, &p, NULL), TP_EUSAGE);
}
END_TEST

/* Parses text, formats it, parses the text again: the same struct and the same text. */
static void assert_round_trip(const tp_pipeline *p0, const char *what)
{
    tp_pipeline a = *p0, b;
    tp_error err = {0};
    ck_assert_msg(tp_pipeline_check(&a, &err) == 0, "%s: %s", what, err.msg);
    char t1[TP_PIPELINE_TEXT_MAX], t2[TP_PIPELINE_TEXT_MAX];
    int n = tp_pipeline_format(&a, t1, sizeof(t1));
    ck_assert_msg(n > 0 && (size_t)n == strlen(t1), "%s: format gave %d", what, n);
    ck_assert_msg(tp_pipeline_parse(t1, &b, &err) == 0, "%s: '%s': %s", what, t1, err.msg);
    assert_same(&b, &a, t1);
    ck_assert_int_eq(tp_pipeline_format(&b, t2, sizeof(t2)), n);
    ck_assert_str_eq(t1, t2);
}

START_TEST(test_round_trip)
{
    static const char *const texts[] = {
        "none", "rrc224", "center224", "rrc8", "center3584",
        "random_resized_crop(176, scale=0.35:1, ratio=0.75:1.3333) | hflip(0.5)"
        " | normalize(mean=0.485:0.456:0.406, std=0.229:0.224:0.225) | to(float16, chw)",
        "resize(224:224) | hflip",
        "resize(300, max_size=301) | random_crop(256:128, padding=1:2:3:4, pad_if_needed=true)",
        "random_crop(32, padding=4, fill=9) | hflip(1)",
        "random_crop(32, padding=4:0)",
        "center_crop(40:30, fill=255) | grayscale(3) | color_jitter(0.2, 0.3:0.30000000000000004, 0.1)",
        "center_crop(4096) | color_jitter(1e300) | grayscale",
        "random_resized_crop(8, scale=1e-300:1e-300, ratio=1e-300:1e300)",
        "center_crop(32) | normalize(mean=1e-45:-3.4028235e38:0, std=1e-45:3.4028235e38:0.1)",
        "center_crop(32) | to(uint8, chw)",
        "center_crop(32) | to(bfloat16, hwc)",
        "hflip(0.1) | resize(64) | random_resized_crop(9:4095) | resize(17:33) | hflip",
    };
    for (size_t i = 0; i < TP_ARRAY_LEN(texts); i++) {
        tp_pipeline p;
        tp_error err = {0};
        ck_assert_msg(tp_pipeline_parse(texts[i], &p, &err) == 0, "'%s': %s", texts[i], err.msg);
        assert_round_trip(&p, texts[i]);
    }
}
END_TEST

static double uniform(uint64_t *s) { return (double)(tp__splitmix64(s) >> 11) * 0x1p-53; }
static int pick(uint64_t *s, int lo, int hi) { return lo + (int)(tp__splitmix64(s) % (uint64_t)(hi - lo + 1)); }
static void size_of(uint64_t *s, tp_op *op)
{
    op->size[0] = pick(s, 8, 4096);
    op->size[1] = pick(s, 0, 1) ? op->size[0] : pick(s, 8, 4096);
}

/* A valid pipeline by construction, with full-precision random doubles and floats, some
 * fields left zero for check() to fill. */
static void random_pipeline(uint64_t *s, tp_pipeline *p)
{
    memset(p, 0, sizeof(*p));
    int ngeo = pick(s, 1, 5);
    for (int i = 0; i < ngeo; i++) {
        tp_op *op = &p->ops[p->nops++];
        op->kind = (tp_op_kind)pick(s, TP_OP_RANDOM_RESIZED_CROP, TP_OP_HFLIP);
        switch (op->kind) {
        case TP_OP_RANDOM_RESIZED_CROP:
            size_of(s, op);
            if (pick(s, 0, 2)) {
                op->scale[0] = 1e-3 + uniform(s) * 0.99;
                op->scale[1] = op->scale[0] + uniform(s) * (1 - op->scale[0]);
                op->ratio[0] = 0.01 + uniform(s) * 3;
                op->ratio[1] = op->ratio[0] * (1 + uniform(s) * 10);
            }
            break;
        case TP_OP_RESIZE:
            size_of(s, op);
            if (pick(s, 0, 1)) {
                op->size[1] = 0;
                if (pick(s, 0, 1))
                    op->max_size = op->size[0] + pick(s, 1, 100000);
            }
            break;
        case TP_OP_CENTER_CROP:
            size_of(s, op);
            op->fill = pick(s, 0, 1) ? pick(s, 0, 255) : 0;
            break;
        case TP_OP_RANDOM_CROP:
            size_of(s, op);
            for (int j = 0; j < 4; j++)
                op->padding[j] = pick(s, 0, 3) ? pick(s, 0, 4096) : 0;
            if (pick(s, 0, 1)) /* the one- and two-value forms */
                op->padding[2] = op->padding[0], op->padding[3] = op->padding[1];
            op->pad_if_needed = pick(s, 0, 1);
            op->fill = pick(s, 0, 255);
            break;
        default:
            op->p = pick(s, 0, 1) ? 1 - uniform(s) : 0;
            break;
        }
    }
    /* end the geometry with a fixed size */
    tp_op *fix = &p->ops[p->nops++];
    fix->kind = TP_OP_CENTER_CROP;
    size_of(s, fix);
    int channels = 3, ncolour = pick(s, 0, 3);
    for (int i = 0; i < ncolour; i++) {
        tp_op *op = &p->ops[p->nops++];
        if (pick(s, 0, 1)) {
            op->kind = TP_OP_GRAYSCALE;
            op->channels = pick(s, 0, 1) ? 3 : pick(s, 0, 1);
            channels = op->channels == 3 ? 3 : 1;
            continue;
        }
        op->kind = TP_OP_COLOR_JITTER;
        double *r[3] = {op->brightness, op->contrast, op->saturation};
        for (int k = 0; k < (channels == 1 ? 2 : 3); k++)
            if (pick(s, 0, 2)) {
                r[k][0] = uniform(s) * 2;
                r[k][1] = r[k][0] + uniform(s) * 2;
            }
    }
    bool normalized = pick(s, 0, 1);
    if (normalized) {
        tp_op *op = &p->ops[p->nops++];
        op->kind = TP_OP_NORMALIZE;
        for (int c = 0; c < 3; c++) {
            op->mean[c] = (float)(uniform(s) * 2 - 1);
            op->std[c] = (float)(1e-3 + uniform(s));
        }
    }
    if (pick(s, 0, 1)) {
        static const tp_dtype dt[] = {TP_DTYPE_UINT8, TP_DTYPE_FLOAT32, TP_DTYPE_FLOAT16,
                                      TP_DTYPE_BFLOAT16};
        tp_op *op = &p->ops[p->nops++];
        op->kind = TP_OP_TO;
        op->dtype = dt[pick(s, normalized ? 1 : 0, 3)];
        op->layout = (tp_layout)pick(s, 0, 2);
    }
}

START_TEST(test_round_trip_random)
{
    uint64_t s = 20261206;
    for (int i = 0; i < 3000; i++) {
        tp_pipeline p;
        random_pipeline(&s, &p);
        char what[32];
        snprintf(what, sizeof(what), "random pipeline %d", i);
        assert_round_trip(&p, what);
    }
}
END_TEST

static const struct {
    const char *text;
    int at;
    const char *cause;
} bad[] = {
    {"rezise(256) | center_crop(224)", 1, "unknown op 'rezise'"},
    {"random_resized_crop(5000)", 21, "size 5000 is not in 8..4096"},
    {"random_resized_crop(224:7)", 25, "size 7 is not in 8..4096"},
    {"random_resized_crop(224, foo=1)", 26, "random_resized_crop takes no argument 'foo'"},
    {"random_resized_crop(224, scale=0:1)", 32, "scale must be lo:hi with 0 < lo <= hi <= 1"},
    {"random_resized_crop(224, scale=0.5:0.2)", 32, "scale must be lo:hi"},
    {"random_resized_crop(224, scale=0.5:1.5)", 32, "scale must be lo:hi"},
    {"random_resized_crop(224, ratio=0:1)", 32, "ratio must be lo:hi with 0 < lo <= hi"},
    {"random_resized_crop(224, ratio=2:1)", 32, "ratio must be lo:hi"},
    {"random_resized_crop(224, scale=0.5)", 32, "scale must be lo:hi"},
    {"random_resized_crop(224, 0.08:1, 0.75:1.33, 4)", 45, "takes at most 3 positional arguments"},
    {"random_resized_crop(scale=0.08:1)", 1, "random_resized_crop needs its size"},
    {"random_resized_crop(224, size=224)", 26, "'size' given twice"},
    {"random_resized_crop(size=224, 0.5:1)", 31, "positional argument after a keyword"},
    {"random_resized_crop(224.5)", 21, "size must be a whole number, not 224.5"},
    {"random_resized_crop(1e309)", 21, "'1e309' is not a finite number"},
    {"random_resized_crop(0x100)", 21, "'0x100' is not a number"},
    {"random_resized_crop(inf)", 21, "size must be N or H:W, not 'inf'"},
    {"random_resized_crop(nan)", 21, "size must be N or H:W, not 'nan'"},
    {"random_resized_crop(224", 24, "')' missing"},
    {"random_resized_crop(224))", 25, "unexpected ')'"},
    {"random_resized_crop(224,)", 25, "unexpected ')'"},
    {"random_resized_crop(224:224:224:224:224)", 37, "a list has at most 4 numbers"},
    {"random_resized_crop(224:224:224)", 21, "size must be N or H:W"},
    {"resize(256)", 1, "the output size depends on the image"},
    {"resize(256, max_size=200) | center_crop(224)", 22, "max_size 200 must be greater than size 256"},
    {"resize(256:256, max_size=300) | center_crop(224)", 26, "max_size needs a single size"},
    {"resize(256, 300) | center_crop(224)", 13, "resize takes at most 1 positional argument"},
    {"resize(4097) | center_crop(224)", 8, "size 4097 is not in 8..4096"},
    {"center_crop(224) | resize(256)", 20, "the output size depends on the image: end the geometry with a crop or resize(h:w)"},
    {"random_crop(32, padding=1:2:3)", 25, "padding must be P, LR:TB or L:T:R:B"},
    {"random_crop(32, padding=5000)", 25, "padding 5000 is not in 0..4096"},
    {"random_crop(32, padding=4:-1)", 27, "padding -1 is not in 0..4096"},
    {"random_crop(32, pad_if_needed=yes)", 31, "pad_if_needed must be true or false, not 'yes'"},
    {"random_crop(32, fill=256)", 22, "fill 256 is not in 0..255"},
    {"center_crop(32) | hflip(0)", 25, "p 0 is not in (0, 1]"},
    {"center_crop(32) | hflip(1.5)", 25, "p 1.5 is not in (0, 1]"},
    {"hflip", 1, "the output size depends on the image"},
    {"center_crop(32) | color_jitter(hue=0.1)", 32, "hue is not supported"},
    {"center_crop(32) | color_jitter(0.4, 0.4, 0.4, 0.1)", 47, "hue is not supported"},
    {"center_crop(32) | color_jitter(brightness=-0.5)", 43, "brightness must be b >= 0 or lo:hi"},
    {"center_crop(32) | color_jitter(contrast=2:1)", 41, "contrast must be b >= 0 or lo:hi"},
    {"center_crop(32) | grayscale(2)", 29, "num_output_channels must be 1 or 3, not 2"},
    {"center_crop(32) | grayscale | color_jitter(saturation=0.4)", 55, "saturation needs colour"},
    {"center_crop(32) | normalize(mean=0.5)", 19, "normalize needs its std"},
    {"center_crop(32) | normalize(mean=0.5, std=0)", 43, "std must be finite and > 0"},
    {"center_crop(32) | normalize(mean=0.5, std=1:2)", 43, "std must be one number or a:b:c"},
    {"center_crop(32) | normalize(mean=0:1e39:0, std=1)", 36, "mean must be finite"},
    {"center_crop(32) | to(int8)", 22, "dtype must be uint8, float32, float16 or bfloat16, not 'int8'"},
    {"center_crop(32) | to(float32, nhwc)", 31, "layout must be hwc or chw, not 'nhwc'"},
    {"center_crop(32) | normalize(mean=0.5, std=0.5) | to(uint8)", 53, "normalize gives floats: to(uint8) after it"},
    {"center_crop(32) | to(uint8) | hflip", 31, "to() must be the last op"},
    {"center_crop(32) | to(uint8) | to(float32)", 31, "to() given twice"},
    {"center_crop(32) | normalize(0.5, 0.5) | normalize(0.5, 0.5)", 41, "normalize given twice"},
    {"center_crop(32) | grayscale | hflip", 31, "hflip after grayscale"},
    {"center_crop(32) | to()", 19, "to needs its dtype"},
    {"v2: rrc224", 1, "pipeline version 2 is not supported (this build reads version 1)"},
    {"  v10 : rrc224", 3, "pipeline version 10 is not supported"},
    {"rrc5", 4, "size 5 is not in 8..4096"},
    {"center4000", 7, "center4000 resizes to 4571"},
    {"center_crop(32) |", 18, "expected an op, found the end"},
    {"", 1, "empty pipeline"},
    {"v1:", 4, "empty pipeline"},
    {"rrc224 rrc224", 1, "unknown op 'rrc224'"},
    {"center_crop(32) || hflip", 18, "unexpected '|'"},
    {"center_crop(32) | hflip(p=0.5", 30, "')' missing"},
    {"center_crop(32) | HFlip", 19, "unknown op 'HFlip'"},
    {"center_crop(32) | hflip(p=true)", 27, "p must be a number, not 'true'"},
    {"center_crop(32) \x01", 17, "unexpected byte 0x01"},
    {"center_crop(32, fill=1.5)", 22, "fill must be a whole number, not 1.5"},
    {"center_crop(32, 5)", 17, "center_crop takes at most 1 positional argument"},
    {"normalize(mean=0.5, std=0.5)", 1, "the output size depends on the image"},
    {"center_crop(32) | color_jitter(brightness=1e400)", 43, "'1e400' is not a finite number"},
    {"center_crop(( 32))", 13, "unexpected '('"},
    {"center_crop(-32)", 13, "size -32 is not in 8..4096"},
    {"center_crop(1e10)", 13, "size 1e10 is out of range"},
    {"center_crop(32) | grayscale(num_output_channels=1, num_output_channels=1)", 52, "'num_output_channels' given twice"},
    {"center_crop(32) | to(dtype=float16, layout=chw, extra=1)", 49, "to takes no argument 'extra'"},
    {"center_crop(32) | to(float16, hwc, chw)", 36, "to takes at most 2 positional arguments"},
    {"random_crop(32:32:32)", 13, "size must be N or H:W"},
    {"center_crop(32) | Normalize(mean=0.5:0.5, std=1)", 34, "mean must be one number or a:b:c"},
    {"center_crop(32)   |   RandomHorizontalFlip(p=-1)", 46, "p -1 is not in (0, 1]"},
    {"center_crop(32) | to(float16) extra", 31, "unexpected 'e'"},
    {"center_crop(3\t2)", 15, "unexpected '2'"},
    {"center_crop(32 .5)", 16, "unexpected '.'"},
};

static void assert_refused(const char *text, int at, const char *cause)
{
    tp_pipeline p;
    tp_error err = {0};
    ck_assert_msg(tp_pipeline_parse(text, &p, &err) == TP_EUSAGE, "'%s' was accepted", text);
    ck_assert_int_eq(err.code, TP_EUSAGE);
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "at %d: ", at);
    ck_assert_msg(!strncmp(err.msg, prefix, strlen(prefix)), "'%s': '%s', want '%s...'", text,
                  err.msg, prefix);
    ck_assert_msg(strstr(err.msg, cause), "'%s': '%s', want '%s'", text, err.msg, cause);
}

START_TEST(test_refused)
{
    ck_assert_int_ge(TP_ARRAY_LEN(bad), 40);
    for (size_t i = 0; i < TP_ARRAY_LEN(bad); i++)
        assert_refused(bad[i].text, bad[i].at, bad[i].cause);
    char text[TP_PIPELINE_TEXT_MAX + 8];
    /* a name past 32 characters */
    snprintf(text, sizeof(text), "center_crop(32) | %s", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_refused(text, 19, "a name is at most 32 characters");
    /* a number past 40 characters */
    snprintf(text, sizeof(text), "center_crop(%s)", "00000000000000000000000000000000000000000032");
    assert_refused(text, 13, "a number is at most 40 characters");
    /* 17 ops: the 17th is refused where it starts */
    strcpy(text, "center_crop(32)");
    for (int i = 0; i < 16; i++)
        strcat(text, "|hflip");
    assert_refused(text, 15 + 16 * 6 - 4, "a pipeline has at most 16 ops");
    /* 1023 bytes is the limit: one more is refused before anything is read */
    memset(text, ' ', sizeof(text));
    memcpy(text, "rrc224", 6);
    text[TP_PIPELINE_TEXT_MAX - 1] = '\0';
    tp_pipeline p;
    ck_assert_int_eq(tp_pipeline_parse(text, &p, NULL), 0);
    text[TP_PIPELINE_TEXT_MAX - 1] = ' ';
    text[TP_PIPELINE_TEXT_MAX] = '\0';
    assert_refused(text, TP_PIPELINE_TEXT_MAX, "at most 1023 bytes");
    /* the error is optional */
    ck_assert_int_eq(tp_pipeline_parse("rezise(3)", &p, NULL), TP_EUSAGE);
}
END_TEST

static void assert_check_fails(tp_pipeline *p, const char *want)
{
    tp_error err = {0};
    ck_assert_int_eq(tp_pipeline_check(p, &err), TP_EUSAGE);
    ck_assert_msg(!strncmp(err.msg, want, strlen(want)), "'%s', want '%s...'", err.msg, want);
    char buf[TP_PIPELINE_TEXT_MAX];
    ck_assert_int_eq(tp_pipeline_format(p, buf, sizeof(buf)), TP_EUSAGE);
}

#define PIPE(...) ((tp_pipeline){.nops = sizeof((tp_op[]){__VA_ARGS__}) / sizeof(tp_op), .ops = {__VA_ARGS__}})

START_TEST(test_check_defaults)
{
    tp_pipeline p = PIPE({.kind = TP_OP_RANDOM_RESIZED_CROP, .size = {224, 224}}, {.kind = TP_OP_HFLIP},
                         {.kind = TP_OP_GRAYSCALE}, {.kind = TP_OP_TO, .dtype = TP_DTYPE_UINT8});
    ck_assert_int_eq(tp_pipeline_check(&p, NULL), 0);
    ck_assert(p.ops[0].scale[0] == 0.08 && p.ops[0].scale[1] == 1);
    ck_assert(p.ops[0].ratio[0] == 0.75 && p.ops[0].ratio[1] == 4.0 / 3);
    ck_assert(p.ops[1].p == 0.5);
    ck_assert_int_eq(p.ops[2].channels, 1);
    ck_assert_int_eq(p.ops[3].layout, TP_LAYOUT_HWC);
    tp_pipeline again = p;
    ck_assert_int_eq(tp_pipeline_check(&again, NULL), 0); /* idempotent */
    assert_same(&again, &p, "check twice");
    /* only a pair that is all zero is a default: half of one is refused */
    p = PIPE({.kind = TP_OP_RANDOM_RESIZED_CROP, .size = {224, 224}, .scale = {0, 0.5}});
    assert_check_fails(&p, "op 1 (random_resized_crop): scale must be lo:hi");
    p = PIPE({.kind = TP_OP_CENTER_CROP, .size = {32, 32}},
             {.kind = TP_OP_TO, .dtype = TP_DTYPE_FLOAT16});
    ck_assert_int_eq(tp_pipeline_check(&p, NULL), 0);
    ck_assert_int_eq(p.ops[1].layout, TP_LAYOUT_CHW);
    /* -0 becomes 0, so the canonical text (no "-0") reads back the same bits */
    p = PIPE({.kind = TP_OP_CENTER_CROP, .size = {32, 32}},
             {.kind = TP_OP_COLOR_JITTER, .brightness = {-0.0, 1}},
             {.kind = TP_OP_NORMALIZE, .mean = {-0.0f, 0, 0}, .std = {1, 1, 1}});
    ck_assert_int_eq(tp_pipeline_check(&p, NULL), 0);
    ck_assert(!signbit(p.ops[1].brightness[0]));
    ck_assert(!signbit(p.ops[2].mean[0]));
    assert_round_trip(&p, "negative zeros");
}
END_TEST

START_TEST(test_check_rules)
{
    tp_pipeline p = PIPE({.kind = TP_OP_CENTER_CROP, .size = {32, 32}},
                         {.kind = TP_OP_COLOR_JITTER, .brightness = {0.5, 1.5}},
                         {.kind = TP_OP_RESIZE, .size = {16, 16}});
    assert_check_fails(&p, "op 3 (resize): resize after color_jitter");
    p = PIPE({.kind = TP_OP_CENTER_CROP, .size = {32, 32}},
             {.kind = TP_OP_NORMALIZE, .mean = {0, 0, 0}, .std = {1, 1, 1}},
             {.kind = TP_OP_GRAYSCALE});
    assert_check_fails(&p, "op 3 (grayscale): grayscale after normalize");
    p = PIPE({.kind = TP_OP_CENTER_CROP, .size = {32, 32}},
             {.kind = TP_OP_NORMALIZE, .mean = {0, 0, 0}, .std = {1, 1, 1}},
             {.kind = TP_OP_TO, .dtype = TP_DTYPE_UINT8});
    assert_check_fails(&p, "op 3 (to): normalize gives floats: to(uint8) after it");
    p = PIPE({.kind = TP_OP_CENTER_CROP, .size = {32, 32}},
             {.kind = TP_OP_TO, .dtype = TP_DTYPE_FLOAT32},
             {.kind = TP_OP_NORMALIZE, .mean = {0, 0, 0}, .std = {1, 1, 1}});
    assert_check_fails(&p, "op 3 (normalize): to() must be the last op");
    p = PIPE({.kind = TP_OP_CENTER_CROP, .size = {32, 32}},
             {.kind = TP_OP_NORMALIZE, .mean = {0, 0, 0}, .std = {1, 1, 1}},
             {.kind = TP_OP_NORMALIZE, .mean = {0, 0, 0}, .std = {1, 1, 1}});
    assert_check_fails(&p, "op 3 (normalize): normalize given twice");
    /* the size must not depend on the image */
    p = PIPE({.kind = TP_OP_GRAYSCALE}, {.kind = TP_OP_TO, .dtype = TP_DTYPE_FLOAT32});
    assert_check_fails(&p, "op 1 (grayscale): the output size depends on the image");
    p = PIPE({.kind = TP_OP_CENTER_CROP, .size = {32, 32}}, {.kind = TP_OP_RESIZE, .size = {64, 0}},
             {.kind = TP_OP_HFLIP});
    assert_check_fails(&p, "op 2 (resize): the output size depends on the image");
    p = PIPE({.kind = TP_OP_RESIZE, .size = {64, 0}}, {.kind = TP_OP_RESIZE, .size = {64, 48}});
    ck_assert_int_eq(tp_pipeline_check(&p, NULL), 0);
    /* grayscale(1) then saturation: there is no colour left to saturate */
    p = PIPE({.kind = TP_OP_CENTER_CROP, .size = {32, 32}}, {.kind = TP_OP_GRAYSCALE},
             {.kind = TP_OP_COLOR_JITTER, .saturation = {0.5, 1.5}});
    assert_check_fails(&p, "op 3 (color_jitter): saturation needs colour");
    p.ops[1].channels = 3;
    ck_assert_int_eq(tp_pipeline_check(&p, NULL), 0);
    p = PIPE({.kind = TP_OP_CENTER_CROP, .size = {32, 32}},
             {.kind = TP_OP_COLOR_JITTER, .saturation = {0.5, 1.5}}, {.kind = TP_OP_GRAYSCALE});
    ck_assert_int_eq(tp_pipeline_check(&p, NULL), 0);
    /* fields an op does not take, kinds that do not exist, ranges */
    p = PIPE({.kind = TP_OP_RESIZE, .size = {32, 32}, .p = 0.5});
    assert_check_fails(&p, "op 1 (resize): p is set, but resize does not take it");
    p = PIPE({.kind = TP_OP_CENTER_CROP, .size = {32, 32}, .padding = {1, 0, 0, 0}});
    assert_check_fails(&p, "op 1 (center_crop): padding is set");
    p = PIPE({.kind = (tp_op_kind)42});
    assert_check_fails(&p, "op 1 (?): unknown op kind 42");
    p = PIPE({.kind = TP_OP_NONE});
    assert_check_fails(&p, "op 1 (?): unknown op kind 0");
    p = PIPE({.kind = TP_OP_CENTER_CROP, .size = {32, 0}});
    assert_check_fails(&p, "op 1 (center_crop): size 0 is not in 8..4096");
    p = PIPE({.kind = TP_OP_RESIZE, .size = {32, 0}, .max_size = -1}, {.kind = TP_OP_CENTER_CROP, .size = {8, 8}});
    assert_check_fails(&p, "op 1 (resize): max_size -1 must be greater than size 32");
    p = PIPE({.kind = TP_OP_RANDOM_RESIZED_CROP, .size = {32, 32}, .scale = {NAN, 1}});
    assert_check_fails(&p, "op 1 (random_resized_crop): scale must be");
    p = PIPE({.kind = TP_OP_RANDOM_RESIZED_CROP, .size = {32, 32}, .ratio = {1, INFINITY}});
    assert_check_fails(&p, "op 1 (random_resized_crop): ratio must be");
    p = PIPE({.kind = TP_OP_CENTER_CROP, .size = {32, 32}}, {.kind = TP_OP_HFLIP, .p = 1.5});
    assert_check_fails(&p, "op 2 (hflip): p 1.5 is not in (0, 1]");
    p = PIPE({.kind = TP_OP_CENTER_CROP, .size = {32, 32}},
             {.kind = TP_OP_NORMALIZE, .mean = {0, NAN, 0}, .std = {1, 1, 1}});
    assert_check_fails(&p, "op 2 (normalize): mean must be finite");
    p = PIPE({.kind = TP_OP_CENTER_CROP, .size = {32, 32}},
             {.kind = TP_OP_NORMALIZE, .mean = {0, 0, 0}, .std = {1, 1, -1}});
    assert_check_fails(&p, "op 2 (normalize): std must be finite and > 0");
    p = PIPE({.kind = TP_OP_CENTER_CROP, .size = {32, 32}}, {.kind = TP_OP_TO, .dtype = TP_DTYPE_INT16});
    assert_check_fails(&p, "op 2 (to): dtype must be");
    p = PIPE({.kind = TP_OP_CENTER_CROP, .size = {32, 32}},
             {.kind = TP_OP_TO, .dtype = TP_DTYPE_FLOAT32, .layout = (tp_layout)3});
    assert_check_fails(&p, "op 2 (to): layout must be hwc or chw");
    p = PIPE({.kind = TP_OP_RANDOM_CROP, .size = {32, 32}, .fill = -1});
    assert_check_fails(&p, "op 1 (random_crop): fill -1 is not in 0..255");
    p.nops = TP_PIPELINE_MAX_OPS + 1;
    assert_check_fails(&p, "a pipeline has at most 16 ops");
    p.nops = 0;
    ck_assert_int_eq(tp_pipeline_check(&p, NULL), 0);
}
END_TEST

static void assert_shape(const char *text, tp_dtype dtype, tp_layout layout, uint32_t ndim,
                         int64_t a, int64_t b, int64_t c)
{
    tp_pipeline p;
    tp_error err = {0};
    ck_assert_msg(tp_pipeline_parse(text, &p, &err) == 0, "'%s': %s", text, err.msg);
    tp_pipeline_shape sh;
    memset(&sh, 0x5a, sizeof(sh));
    tp_pipeline_shape_of(&p, &sh);
    ck_assert_msg(sh.dtype == dtype && sh.layout == layout && sh.ndim == ndim, "'%s': %d %d %u",
                  text, sh.dtype, sh.layout, sh.ndim);
    if (ndim)
        ck_assert_msg(sh.shape[0] == a && sh.shape[1] == b && sh.shape[2] == c,
                      "'%s': %lld %lld %lld", text, (long long)sh.shape[0],
                      (long long)sh.shape[1], (long long)sh.shape[2]);
}

START_TEST(test_shape)
{
    const tp_dtype U8 = TP_DTYPE_UINT8, F32 = TP_DTYPE_FLOAT32;
    const tp_layout HWC = TP_LAYOUT_HWC, CHW = TP_LAYOUT_CHW;
    assert_shape("none", U8, HWC, 0, 0, 0, 0);
    assert_shape("rrc224", U8, HWC, 3, 224, 224, 3);
    assert_shape("center176", U8, HWC, 3, 176, 176, 3);
    assert_shape("random_resized_crop(160:128) | grayscale", U8, HWC, 3, 160, 128, 1);
    assert_shape("random_resized_crop(160:128) | grayscale(3)", U8, HWC, 3, 160, 128, 3);
    assert_shape("center_crop(32:48) | normalize(0.5, 0.5)", F32, CHW, 3, 3, 32, 48);
    assert_shape("center_crop(32:48) | normalize(0.5, 0.5) | to(float16, hwc)",
                 TP_DTYPE_FLOAT16, HWC, 3, 32, 48, 3);
    assert_shape("center_crop(32:48) | grayscale | to(bfloat16)", TP_DTYPE_BFLOAT16, CHW, 3, 1, 32, 48);
    assert_shape("center_crop(32:48) | to(uint8, chw)", U8, CHW, 3, 3, 32, 48);
    assert_shape("center_crop(32:48) | to(float)", F32, CHW, 3, 3, 32, 48);
    assert_shape("random_crop(32, padding=4)", U8, HWC, 3, 32, 32, 3);
    assert_shape("resize(100:200) | hflip", U8, HWC, 3, 100, 200, 3);
    assert_shape("random_crop(64) | resize(100:50)", U8, HWC, 3, 100, 50, 3);
    assert_shape("resize(100:50) | random_crop(32:16)", U8, HWC, 3, 32, 16, 3);
    assert_shape("resize(100) | center_crop(40:20) | hflip", U8, HWC, 3, 40, 20, 3);
    /* a C-built pipeline before check: the defaults as check would fill them */
    tp_pipeline p = PIPE({.kind = TP_OP_CENTER_CROP, .size = {8, 8}}, {.kind = TP_OP_GRAYSCALE},
                         {.kind = TP_OP_TO, .dtype = TP_DTYPE_FLOAT16});
    tp_pipeline_shape sh;
    tp_pipeline_shape_of(&p, &sh);
    ck_assert_int_eq(sh.layout, CHW);
    ck_assert_int_eq(sh.shape[0], 1);
}
END_TEST

static void assert_format(const char *text, const char *want)
{
    tp_pipeline p;
    tp_error err = {0};
    ck_assert_msg(tp_pipeline_parse(text, &p, &err) == 0, "'%s': %s", text, err.msg);
    char buf[TP_PIPELINE_TEXT_MAX];
    int n = tp_pipeline_format(&p, buf, sizeof(buf));
    ck_assert_int_eq(n, (int)strlen(want));
    ck_assert_str_eq(buf, want);
}

START_TEST(test_format)
{
    assert_format("none", "none");
    assert_format("rrc224", "random_resized_crop(224, scale=0.08:1, ratio=0.75:1.3333333333333333)"
                            " | hflip(p=0.5)");
    assert_format("center224", "resize(256) | center_crop(224)");
    /* a square h:w resize is not the one-number (shorter side) form */
    assert_format("resize(224:224)", "resize(224:224)");
    assert_format("Resize(256, max_size=512) | CenterCrop(224:200, fill=3)",
                  "resize(256, max_size=512) | center_crop(224:200, fill=3)");
    assert_format("random_crop(32)", "random_crop(32, padding=0, pad_if_needed=false, fill=0)");
    assert_format("random_crop(32, 4:2, true)", "random_crop(32, padding=4:2, pad_if_needed=true, fill=0)");
    assert_format("random_crop(32, padding=1:2:3:4)",
                  "random_crop(32, padding=1:2:3:4, pad_if_needed=false, fill=0)");
    assert_format("center_crop(32) | color_jitter(0.4, saturation=0.1:0.2) | grayscale | to(half)",
                  "center_crop(32) | color_jitter(brightness=0.6:1.4, contrast=0:0, "
                  "saturation=0.1:0.2) | grayscale(num_output_channels=1) | "
                  "to(dtype=float16, layout=chw)");
    assert_format("center_crop(32) | normalize(mean=0.485:0.456:0.406, std=0.229:0.224:0.225)",
                  "center_crop(32) | normalize(mean=0.485:0.456:0.406, std=0.229:0.224:0.225)");
    assert_format("center_crop(32) | normalize(mean=0.1, std=3) | to(bfloat16, hwc)",
                  "center_crop(32) | normalize(mean=0.1:0.1:0.1, std=3:3:3) | "
                  "to(dtype=bfloat16, layout=hwc)");
    assert_format("center_crop(32) | to(uint8)", "center_crop(32) | to(dtype=uint8, layout=hwc)");
    /* the buffer: exactly the text and its NUL, or TP_EUSAGE */
    tp_pipeline p;
    ck_assert_int_eq(tp_pipeline_parse("center224", &p, NULL), 0);
    char buf[64];
    int n = (int)strlen("resize(256) | center_crop(224)");
    ck_assert_int_eq(tp_pipeline_format(&p, buf, (size_t)n + 1), n);
    ck_assert_int_eq(tp_pipeline_format(&p, buf, (size_t)n), TP_EUSAGE);
    ck_assert_int_eq(tp_pipeline_format(&p, NULL, 0), TP_EUSAGE);
    /* the canonical text of 16 ops may not fit a description's limit; a larger buffer holds it */
    p.nops = TP_PIPELINE_MAX_OPS;
    for (int i = 0; i < TP_PIPELINE_MAX_OPS; i++) {
        memset(&p.ops[i], 0, sizeof(p.ops[i]));
        p.ops[i].kind = TP_OP_RANDOM_CROP;
        p.ops[i].size[0] = p.ops[i].size[1] = 4096;
        for (int j = 0; j < 4; j++)
            p.ops[i].padding[j] = j;
    }
    char big[4 * TP_PIPELINE_TEXT_MAX];
    ck_assert_int_eq(tp_pipeline_format(&p, big, TP_PIPELINE_TEXT_MAX), TP_EUSAGE);
    n = tp_pipeline_format(&p, big, sizeof(big));
    ck_assert_int_gt(n, TP_PIPELINE_TEXT_MAX);
    ck_assert_int_eq(tp_pipeline_parse(big, &p, NULL), TP_EUSAGE);
}
END_TEST

static Suite *pipeline_suite(void)
{
    Suite *s = suite_create("pipeline");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_ops);
    tcase_add_test(tc, test_named);
    tcase_add_test(tc, test_refused);
    suite_add_tcase(s, tc);
    tc = tcase_create("format");
    tcase_add_test(tc, test_format);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_round_trip_random);
    suite_add_tcase(s, tc);
    tc = tcase_create("check");
    tcase_add_test(tc, test_check_defaults);
    tcase_add_test(tc, test_check_rules);
    tcase_add_test(tc, test_shape);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tp_test_run(pipeline_suite()); }
