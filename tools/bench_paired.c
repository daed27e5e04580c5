/* Paired measurement of a transform against TurboJPEG's full decode. Shared machines change
 * speed from one second to the next, so two figures taken minutes apart compare badly;
 * rounds of a fraction of a second, alternating on one thread, see the same machine, and
 * the median of their ratios is what a per-core comparison needs. The reference is the
 * work tjbench times for decompression: tjDecompress2 of each file to RGB with its
 * default flags. */
#include "bench_paired.h"

#include "cli.h"
#include "codecs.h"

#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof(*v), tp_cli_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int tp_bench_paired_run(const tp_transform *t, bool seek, const tp_bench_blob *img, size_t n,
                        const tp_bench_blob *ref, size_t nref, double seconds, double round_s,
                        tp_bench_paired *out, tp_error *err)
{
    *out = (tp_bench_paired){0};
    unsigned max_rounds = (unsigned)(seconds / (2 * round_s)) + 1;
    tjhandle tj = tjInitDecompress();
    tp_transformer *tr = NULL;
    size_t rgb_bytes = 0;
    int rc = 0;
    for (size_t i = 0; i < nref && rc == 0; i++) {
        int w, h, sub, cs;
        if (!tj || tjDecompressHeader3(tj, ref[i].data, ref[i].len, &w, &h, &sub, &cs) < 0)
            rc = tp__error_set(err, TP_EBADIMAGE, "reference image %zu: %s", i,
                               tj ? tjGetErrorStr2(tj) : "no TurboJPEG handle");
        else
            rgb_bytes = TP_MAX(rgb_bytes, (size_t)w * (size_t)h * 3);
    }
    unsigned char *rgb = malloc(TP_MAX(rgb_bytes, 1)), *dst = malloc(TP_MAX(t->out_bytes, 1));
    double *ours = calloc(max_rounds, sizeof(double)), *ref_rate = calloc(max_rounds, sizeof(double));
    double *ratio = calloc(max_rounds, sizeof(double));
    if (rc == 0 && (!rgb || !dst || !ours || !ref_rate || !ratio ||
                    tp_transformer_create(&tr) < 0))
        rc = tp__error_set(err, -ENOMEM, "out of memory");
    if (rc == 0)
        tp_jpeg_decoder_set_seek(tp_transformer_decoder(tr), seek);
    size_t ki = 0, kr = 0;
    double end = tp_cli_now() + seconds;
    while (rc == 0 && out->rounds < max_rounds && tp_cli_now() < end) {
        double t0 = tp_cli_now(), t1 = t0;
        uint64_t a = 0, b = 0;
        do { /* the clock per image: tens of nanoseconds against hundreds of microseconds */
            const tp_bench_blob *r = &ref[kr++ % nref];
            int w, h, sub, cs;
            if (tjDecompressHeader3(tj, r->data, r->len, &w, &h, &sub, &cs) < 0 ||
                tjDecompress2(tj, r->data, r->len, rgb, w, 0, h, TJPF_RGB, 0) < 0)
                rc = tp__error_set(err, TP_EBADIMAGE, "reference image %zu: %s",
                                   (kr - 1) % nref, tjGetErrorStr2(tj));
            a++;
        } while (rc == 0 && (t1 = tp_cli_now()) - t0 < round_s);
        double t2 = tp_cli_now(), t3 = t2;
        do {
            size_t k = ki++;
            tp_error e;
            if (tp_transform_image(tr, img[k % n].data, img[k % n].len, t, 1, k / n, k % n,
                                   dst, &e) < 0)
                out->errors++;
            b++;
        } while ((t3 = tp_cli_now()) - t2 < round_s);
        if (rc == 0) {
            ref_rate[out->rounds] = (double)a / (t1 - t0);
            ours[out->rounds] = (double)b / (t3 - t2);
            ratio[out->rounds] = ours[out->rounds] / ref_rate[out->rounds];
            out->rounds++;
            out->tj += a;
            out->ours += b;
        }
    }
    if (rc == 0 && out->rounds) {
        out->tj_per_s = median(ref_rate, out->rounds);
        out->ours_per_s = median(ours, out->rounds);
        out->ratio = median(ratio, out->rounds);
    }
    tp_transformer_destroy(tr);
    if (tj)
        tjDestroy(tj);
    free(rgb);
    free(dst);
    free(ours);
    free(ref_rate);
    free(ratio);
    return rc;
}
