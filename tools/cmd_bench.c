/* `turbopump bench`: measurements of turbopump's own stages. `bench io` issues random (or
 * sequential) whole-record reads over a dataset through the IO engine, keeping a fixed
 * number in flight, and reports IOPS, bandwidth and latency percentiles. `bench decode`
 * loads a dataset's JPEGs into memory and measures decoding plus a training transform
 * on T threads. */
#include "bench_paired.h"
#include "cli.h"
#include "io.h"
#include "storage.h"
#include "codecs.h"
#include "transform.h"

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define CMD "bench"

void tp_usage_bench(FILE *out)
{
    fprintf(out,
            "Usage: turbopump bench io DS [--direct] [--qd N] [--threads T] [--seconds S]\n"
            "                      [--pattern random|sequential] [--backend uring|posix]\n"
            "                      [--json]\n\n"
            "io: whole-record reads over the dataset at DS (a directory, or s3://... for\n"
            "ranged GETs in flight against object storage) through the IO engine, N in\n"
            "flight, for S seconds; prints IOPS, MB/s, bytes per read as issued (after\n"
            "alignment) and latency percentiles (submission to completion).\n\n"
            "Options:\n"
            "  --direct            O_DIRECT reads (bypass the page cache)\n"
            "  --qd N              reads in flight (default 64)\n"
            "  --threads T         posix backend threads (default min(N, 8))\n"
            "  --seconds S         duration (default 10)\n"
            "  --pattern P         random (default) or sequential record order\n"
            "  --backend B         uring or posix (default: io_uring, else posix)\n"
            "  --json              print one JSON object\n"
            "  -h, --help          show this help\n\n"
            "Usage: turbopump bench decode DS [--threads T] [--transform PIPELINE]\n"
            "                      [--view PIPELINE ... [--separate]] [--samples N]\n"
            "                      [--seconds S] [--exact | --scales SET] [--no-seek]\n"
            "                      [--normalize f32|f16] [--versus-tjbench[=REF]] [--json]\n\n"
            "decode: loads the 'jpg' field of the first N samples (default 500) into memory,\n"
            "then decodes and transforms them on T threads (default 1) for S seconds\n"
            "(default 5) with a pipeline (docs/TRANSFORMS.md): rrc224 (RandomResizedCrop\n"
            "224 + flip, the default), center224 (Resize 256 + CenterCrop 224), none (full\n"
            "decode) or a description such as 'random_resized_crop(160) | hflip'. Each\n"
            "--view adds an output made from the same decode (multi-crop); --separate\n"
            "decodes the image once per view instead. Prints images/s.\n"
            "--exact decodes at full scale (Pillow-identical pixels) instead of the\n"
            "smallest DCT scale that covers the output; --scales pow2 (default: 1/8, 1/4,\n"
            "1/2, 1) or all (every M/8) sets the scales to choose from; --normalize\n"
            "f32|f16 adds ImageNet's normalize and to(float32|float16, chw); --no-seek\n"
            "decodes seekable JPEGs (pack --jpeg-seek) the usual way. Also prints how\n"
            "many decodes read only the segments their crop needs (seek_decodes).\n"
            "--versus-tjbench times the pipeline on one thread in rounds of 0.25 s that\n"
            "alternate with TurboJPEG's full decode to RGB (what tjbench times) of the\n"
            "images of REF (default DS: the same images) and prints the median ratio of\n"
            "the rounds, which a machine whose speed drifts cannot skew.\n");
}

typedef struct bench_options {
    const char *what, *path, *transform, *normalize, *versus;
    const char *views[TP_MAX_VIEWS];
    unsigned nviews;
    uint64_t qd, threads, seconds, samples;
    bool direct, sequential, json, exact, separate, no_seek;
    unsigned scales;
    tp_io_kind kind;
} bench_options;

static int parse_bench(int argc, char **argv, bench_options *o)
{
    static const struct option longopts[] = {
        {"direct", no_argument, 0, 'd'}, {"qd", required_argument, 0, 'q'},
        {"threads", required_argument, 0, 't'}, {"seconds", required_argument, 0, 's'},
        {"pattern", required_argument, 0, 'p'}, {"backend", required_argument, 0, 'b'},
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'},
        {"transform", required_argument, 0, 'T'}, {"samples", required_argument, 0, 'n'},
        {"exact", no_argument, 0, 'x'}, {"normalize", required_argument, 0, 'N'},
        {"scales", required_argument, 0, 'S'}, {"view", required_argument, 0, 'V'},
        {"separate", no_argument, 0, 'P'}, {"no-seek", no_argument, 0, 'K'},
        {"versus-tjbench", optional_argument, 0, 'R'}, {0, 0, 0, 0}};
    *o = (bench_options){.qd = 64, .seconds = 0, .transform = "rrc224", .samples = 500};
    int c, rc = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'd' || c == 'j')
            *(c == 'd' ? &o->direct : &o->json) = true;
        else if (c == 'q')
            rc = tp_cli_u64(CMD, "--qd", optarg, 1, 4096, &o->qd);
        else if (c == 't')
            rc = tp_cli_u64(CMD, "--threads", optarg, 1, 256, &o->threads);
        else if (c == 's')
            rc = tp_cli_u64(CMD, "--seconds", optarg, 1, 86400, &o->seconds);
        else if (c == 'p' && (!strcmp(optarg, "random") || !strcmp(optarg, "sequential")))
            o->sequential = optarg[0] == 's';
        else if (c == 'T')
            o->transform = optarg;
        else if (c == 'x')
            o->exact = true;
        else if (c == 'P')
            o->separate = true;
        else if (c == 'K')
            o->no_seek = true;
        else if (c == 'R')
            o->versus = optarg ? optarg : "";
        else if (c == 'V' && o->nviews < TP_MAX_VIEWS)
            o->views[o->nviews++] = optarg;
        else if (c == 'S' && (!strcmp(optarg, "pow2") || !strcmp(optarg, "all")))
            o->scales = optarg[0] == 'p' ? TP_JPEG_SCALES_POW2 : TP_JPEG_SCALES_ALL;
        else if (c == 'N' && (!strcmp(optarg, "f32") || !strcmp(optarg, "f16")))
            o->normalize = optarg;
        else if (c == 'n')
            rc = tp_cli_u64(CMD, "--samples", optarg, 1, UINT64_C(1) << 32, &o->samples);
        else if (c == 'b' && (!strcmp(optarg, "uring") || !strcmp(optarg, "posix")))
            o->kind = optarg[0] == 'u' ? TP_IO_URING : TP_IO_POSIX;
        else if (c == 'h') {
            tp_usage_bench(stdout);
            exit(TP_EXIT_OK);
        } else
            return tp_cli_usage_error(CMD, "bad option or value (see --help)");
    }
    if (rc < 0)
        return TP_EXIT_USAGE;
    if (argc - optind != 2 || (strcmp(argv[optind], "io") && strcmp(argv[optind], "decode")))
        return tp_cli_usage_error(CMD, "usage: turbopump bench io|decode DS [OPTIONS]");
    if (o->separate && !o->nviews)
        return tp_cli_usage_error(CMD, "--separate needs views (--view)");
    if (o->exact && o->scales)
        return tp_cli_usage_error(CMD, "--exact decodes at full scale; it takes no --scales");
    o->what = argv[optind];
    o->path = argv[optind + 1];
    if (o->versus && (o->nviews || o->threads > 1 || o->what[0] != 'd'))
        return tp_cli_usage_error(CMD, "--versus-tjbench times one pipeline on one thread");
    if (o->versus && !o->versus[0])
        o->versus = o->path;
    if (!o->seconds)
        o->seconds = o->what[0] == 'i' ? 10 : 5;
    if (!o->threads && o->what[0] == 'd')
        o->threads = 1;
    return 0;
}

typedef struct io_run {
    const bench_options *o;
    const tp_dataset *ds;
    tp_io *io;
    int files[4096];
    uint64_t rng, next_seq;
    double *submitted;   /* submission time per engine buffer */
    double *lat;         /* latencies in microseconds */
    size_t nlat, cap;
    uint64_t reads, errors, issued, record_bytes;
} io_run;

static uint64_t next_id(io_run *r)
{
    uint64_t n = tp_dataset_sample_count(r->ds);
    if (r->o->sequential)
        return r->next_seq++ % n;
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return r->rng % n;
}

static int open_run(io_run *r, tp_error *err)
{
    uint64_t slack = r->o->direct ? 2 * TP_IO_ALIGN : 0;
    tp_io_options io = {.kind = r->o->kind, .queue_depth = (unsigned)r->o->qd,
                        .threads = (unsigned)r->o->threads, .direct = r->o->direct,
                        .buffer_bytes = (size_t)(tp_dataset_max_record(r->ds) + slack)};
    TP_TRY(tp_io_create(&r->io, &io, err));
    size_t nshards = tp_dataset_shard_count(r->ds);
    if (nshards > TP_ARRAY_LEN(r->files))
        return tp__error_set(err, TP_EUSAGE, "more than %zu shards", TP_ARRAY_LEN(r->files));
    for (size_t s = 0; s < nshards; s++) {
        tp_shard_info si;
        tp_dataset_shard_info(r->ds, s, &si);
        TP_TRY(r->files[s] = si.object ? tp_io_add_object(r->io, si.object, err)
                                       : tp_io_add_file(r->io, si.fd, err));
    }
    r->submitted = calloc(r->o->qd, sizeof(double));
    r->cap = 1 << 20;
    r->lat = malloc(r->cap * sizeof(double));
    return r->submitted && r->lat ? 0 : tp__error_set(err, -ENOMEM, "out of memory");
}

/* Submits reads for every free timing slot; tags are slot numbers. */
static int fill(io_run *r, unsigned *free_slots, unsigned *nfree, double now, tp_error *err)
{
    tp_io_read batch[64];
    unsigned n = 0;
    for (; n < TP_ARRAY_LEN(batch) && n < *nfree; n++) {
        tp_sample_location loc;
        TP_TRY(tp_dataset_locate(r->ds, next_id(r), &loc, err));
        unsigned slot = free_slots[*nfree - 1 - n];
        r->submitted[slot] = now;
        batch[n] = (tp_io_read){.file = (unsigned)r->files[loc.shard], .offset = loc.offset,
                                .length = loc.length, .tag = slot};
    }
    int done = n ? tp_io_submit(r->io, batch, n, err) : 0;
    TP_TRY(done);
    /* Accepted reads took the top `done` slots; the rest stay free. */
    for (unsigned i = 0; i < (unsigned)done; i++)
        free_slots[*nfree - 1 - i] = free_slots[*nfree - n + ((unsigned)done - 1 - i)];
    *nfree -= (unsigned)done;
    return 0;
}

static void collect(io_run *r, const tp_io_done *d, double now)
{
    if (d->result < 0)
        r->errors++;
    r->reads++;
    r->issued += d->issued;
    r->record_bytes += d->length;
    if (r->nlat == r->cap) {
        double *grown = realloc(r->lat, 2 * r->cap * sizeof(double));
        if (!grown)
            return;
        r->lat = grown;
        r->cap *= 2;
    }
    r->lat[r->nlat++] = (now - r->submitted[d->tag]) * 1e6;
}

static int run_reads(io_run *r, double *elapsed, tp_error *err)
{
    unsigned qd = (unsigned)r->o->qd, nfree = qd, *free_slots = malloc(qd * sizeof(unsigned));
    if (!free_slots)
        return tp__error_set(err, -ENOMEM, "out of memory");
    for (unsigned i = 0; i < qd; i++)
        free_slots[i] = i;
    double start = tp_cli_now(), deadline = start + (double)r->o->seconds, now = start;
    int rc = 0;
    while (rc == 0 && (now < deadline || tp_io_in_flight(r->io) > 0)) {
        if (now < deadline)
            rc = fill(r, free_slots, &nfree, now, err);
        tp_io_done done[64];
        int n = rc ? 0 : tp_io_reap(r->io, done, TP_ARRAY_LEN(done), 1);
        if (n < 0)
            rc = tp__error_set(err, n, "io: %s", tp_strerror(n));
        now = tp_cli_now();
        for (int i = 0; i < n; i++) {
            collect(r, &done[i], now);
            free_slots[nfree++] = (unsigned)done[i].tag;
            tp_io_release(r->io, &done[i]);
        }
    }
    *elapsed = now - start;
    free(free_slots);
    return rc;
}

static double percentile(const io_run *r, double p)
{
    if (!r->nlat)
        return 0;
    size_t i = (size_t)(p * (double)(r->nlat - 1) + 0.5);
    return r->lat[i];
}

static void report(const io_run *r, double secs)
{
    qsort(r->lat, r->nlat, sizeof(double), tp_cli_cmp_double);
    double iops = (double)r->reads / secs, mbps = (double)r->issued / secs / 1e6;
    double per_read = r->reads ? (double)r->issued / (double)r->reads : 0;
    const bench_options *o = r->o;
    if (o->json)
        printf("{\"backend\": \"%s\", \"fixed_buffers\": %s, \"qd\": %llu, \"direct\": %s, "
               "\"pattern\": \"%s\", \"seconds\": %.3f, \"reads\": %llu, \"errors\": %llu, "
               "\"iops\": %.1f, \"mb_per_s\": %.2f, \"read_bytes\": %.1f, "
               "\"record_bytes\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f}\n",
               tp_io_backend(r->io), tp_io_fixed_buffers(r->io) ? "true" : "false",
               (unsigned long long)o->qd, o->direct ? "true" : "false",
               o->sequential ? "sequential" : "random", secs, (unsigned long long)r->reads,
               (unsigned long long)r->errors, iops, mbps, per_read,
               r->reads ? (double)r->record_bytes / (double)r->reads : 0,
               percentile(r, 0.50), percentile(r, 0.99));
    else
        printf("%s: %s%s, qd %llu, %s%s reads for %.1f s: %.0f IOPS, %.1f MB/s, %.0f bytes "
               "per read, latency p50 %.0f us, p99 %.0f us, %llu errors\n", o->path,
               tp_io_backend(r->io), tp_io_fixed_buffers(r->io) ? " (fixed buffers)" : "",
               (unsigned long long)o->qd, o->sequential ? "sequential" : "random",
               o->direct ? " O_DIRECT" : "", secs, iops, mbps, per_read, percentile(r, 0.50),
               percentile(r, 0.99), (unsigned long long)r->errors);
}

/* ---------------------------------------------------------------- decode */

typedef tp_bench_blob blob;

typedef struct decode_run {
    const bench_options *o;
    tp_transform t[TP_MAX_VIEWS];  /* the pipeline, or each view's */
    unsigned nt;
    size_t out_bytes;              /* all views' outputs together */
    blob *images;
    size_t n;
    double deadline;
    atomic_uint_fast64_t next, done, failed, seeks, seek_fallbacks;
} decode_run;

/* One zstd context, and the dataset's dictionary digested once, for the whole load. */
static int open_zstd(const tp_dataset *ds, tp_zstd **z, tp_zstd_dict **dict, tp_error *err)
{
    size_t len;
    const void *bytes = tp_dataset_zstd_dict(ds, &len);
    if (tp_zstd_create(z) < 0)
        return tp__error_set(err, -ENOMEM, "out of memory");
    return bytes ? tp_zstd_dict_create(dict, bytes, len, 0, err) : 0;
}

/* Loads the 'jpg' field of the first samples into memory, decompressing zstd. */
static int load_images(decode_run *d, const tp_dataset *ds, tp_error *err)
{
    int field = tp_dataset_field_index(ds, "jpg");
    if (field < 0)
        return tp__error_set(err, TP_ENOFIELD, "%s has no 'jpg' field", d->o->path);
    d->n = (size_t)TP_MIN(d->o->samples, tp_dataset_sample_count(ds));
    d->images = calloc(d->n + 1, sizeof(blob));
    unsigned char *rec = malloc((size_t)tp_dataset_max_record(ds) + 1);
    tp_zstd *z = NULL;
    tp_zstd_dict *dict = NULL;
    int rc = d->images && rec ? open_zstd(ds, &z, &dict, err)
                              : tp__error_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < d->n; i++) {
        size_t len;
        tp_record r;
        rc = tp_dataset_read(ds, i, rec, tp_dataset_max_record(ds), &len, err);
        if (rc == 0)
            rc = tp_record_parse(rec, len, 0, (uint32_t)tp_dataset_field_count(ds), &r, err);
        const tp_field_value *v = rc == 0 ? tp_record_field(&r, (uint32_t)field) : NULL;
        if (rc == 0 && !v)
            rc = tp__error_set(err, TP_ENOFIELD, "sample %zu has no 'jpg'", i);
        if (rc == 0 && !(d->images[i].data = malloc(v->raw_size + 1)))
            rc = tp__error_set(err, -ENOMEM, "out of memory");
        if (rc == 0 && v->compression != TP_COMPRESS_NONE)
            rc = tp_zstd_decompress_with(z, v->compression == TP_COMPRESS_ZSTD_DICT ? dict : NULL,
                                         v->data, v->size, d->images[i].data, v->raw_size, err);
        else if (rc == 0)
            memcpy(d->images[i].data, v->data, v->size);
        if (rc == 0)
            d->images[i].len = v->raw_size;
    }
    tp_zstd_dict_destroy(dict);
    tp_zstd_destroy(z);
    free(rec);
    return rc;
}

static void *decode_worker(void *arg)
{
    decode_run *d = arg;
    tp_transformer *tr;
    unsigned char *out = malloc(TP_MAX(d->out_bytes, 1)), *outs[TP_MAX_VIEWS];
    const tp_transform *ts[TP_MAX_VIEWS];
    for (unsigned i = 0, at = 0; out && i < d->nt; at += (unsigned)d->t[i].out_bytes, i++) {
        outs[i] = out + at;
        ts[i] = &d->t[i];
    }
    if (!out || tp_transformer_create(&tr) < 0) {
        free(out);
        atomic_fetch_add(&d->failed, 1);
        return NULL;
    }
    bool views = d->o->nviews > 0;
    tp_jpeg_decoder_set_seek(tp_transformer_decoder(tr), !d->o->no_seek);
    for (unsigned mine = 0;; mine++) {
        uint64_t k = atomic_fetch_add(&d->next, 1);
        /* Every image at least once, then until the deadline (checked every 16 of this
         * thread's images: reading the clock per image would cost more than it tells). */
        if (k >= d->n && mine % 16 == 0 && tp_cli_now() > d->deadline)
            break;
        const blob *b = &d->images[k % d->n];
        tp_error err;
        int rc = 0;
        if (!views)
            rc = tp_transform_image(tr, b->data, b->len, &d->t[0], 1, k / d->n, k % d->n, out,
                                    &err);
        else if (!d->o->separate)
            rc = tp_transform_image_views(tr, b->data, b->len, ts, NULL, d->nt, 1, k / d->n,
                                          k % d->n, outs, &err);
        else
            for (uint32_t v = 0; v < d->nt && rc == 0; v++)
                rc = tp_transform_image_views(tr, b->data, b->len, &ts[v], &v, 1, 1, k / d->n,
                                              k % d->n, &outs[v], &err);
        if (rc < 0)
            atomic_fetch_add(&d->failed, 1);
        atomic_fetch_add(&d->done, 1);
    }
    tp_jpeg_stats st;
    tp_jpeg_decoder_stats(tp_transformer_decoder(tr), &st);
    atomic_fetch_add(&d->seeks, st.seek_decodes);
    atomic_fetch_add(&d->seek_fallbacks, st.seek_fallbacks);
    tp_transformer_destroy(tr);
    free(out);
    return NULL;
}

static void free_images(decode_run *d)
{
    for (size_t i = 0; d->images && i < d->n; i++)
        free(d->images[i].data);
    free(d->images);
    d->images = NULL;
}

/* --versus-tjbench: the reference's images loaded, then the paired rounds. */
static int bench_versus(const bench_options *o, decode_run *d)
{
    bench_options ro = *o;
    ro.path = o->versus;
    decode_run r = {.o = &ro};
    tp_dataset *ds = NULL;
    tp_error err = {0};
    tp_bench_paired p;
    int rc = tp_dataset_open(&ds, ro.path, &err);
    if (rc == 0)
        rc = load_images(&r, ds, &err);
    if (rc == 0 && r.n == 0)
        rc = tp__error_set(&err, TP_EUSAGE, "%s has no samples", ro.path);
    if (rc == 0)
        rc = tp_bench_paired_run(&d->t[0], !o->no_seek, d->images, d->n, r.images, r.n,
                                 (double)o->seconds, 0.25, &p, &err);
    free_images(&r);
    tp_dataset_close(ds);
    if (rc < 0) {
        tp_cli_error(CMD, "%s", err.msg);
        return TP_EXIT_FAIL;
    }
    if (o->json)
        printf("{\"transform\": \"%s\", \"threads\": 1, \"rounds\": %u, \"images\": %llu, "
               "\"errors\": %llu, \"images_per_s\": %.1f, \"tjbench_frames_per_s\": %.1f, "
               "\"tjbench_frames\": %llu, \"ratio\": %.4f}\n", o->transform, p.rounds,
               (unsigned long long)p.ours, (unsigned long long)p.errors, p.ours_per_s,
               p.tj_per_s, (unsigned long long)p.tj, p.ratio);
    else
        printf("%s: %s on 1 thread against TurboJPEG's full decode of %s, %u rounds of "
               "0.25 s each way: %.1f images/s against %.1f frames/s (medians), median "
               "ratio %.3f; %llu errors\n", o->path, o->transform, ro.path, p.rounds,
               p.ours_per_s, p.tj_per_s, p.ratio, (unsigned long long)p.errors);
    return p.errors ? TP_EXIT_FAIL : TP_EXIT_OK;
}

/* A pipeline for the benchmark: parsed, with --normalize's ops added, --exact and
 * --scales applied. */
static int bench_pipeline(const bench_options *o, const char *text, tp_transform *t,
                          tp_error *err)
{
    tp_pipeline p;
    TP_TRY(tp_pipeline_parse(text, &p, err));
    if (o->normalize && p.nops > 0 && p.nops + 2 <= TP_PIPELINE_MAX_OPS) {
        tp_op *n = &p.ops[p.nops++];
        *n = (tp_op){.kind = TP_OP_NORMALIZE};
        memcpy(n->mean, tp_imagenet_mean, sizeof(n->mean));
        memcpy(n->std, tp_imagenet_std, sizeof(n->std));
        p.ops[p.nops++] = (tp_op){.kind = TP_OP_TO, .layout = TP_LAYOUT_CHW,
                                  .dtype = !strcmp(o->normalize, "f16") ? TP_DTYPE_FLOAT16
                                                                        : TP_DTYPE_FLOAT32};
    }
    TP_TRY(tp_transform_compile(&p, t, err));
    t->exact = o->exact;
    t->scales = o->scales;
    return 0;
}

static int bench_decode(const bench_options *o)
{
    decode_run d = {.o = o};
    tp_dataset *ds = NULL;
    tp_error err = {0};
    int rc = 0;
    d.nt = o->nviews ? o->nviews : 1;
    for (unsigned i = 0; rc == 0 && i < d.nt; i++) {
        const char *text = o->nviews ? o->views[i] : o->transform;
        tp_error perr = {0};
        rc = bench_pipeline(o, text, &d.t[i], &perr);
        if (rc < 0)
            rc = tp__error_set(&err, TP_EUSAGE, "pipeline '%s': %s", text, perr.msg);
        else if (o->nviews && d.t[i].kind == TP_TRANSFORM_NONE)
            rc = tp__error_set(&err, TP_EUSAGE, "a view needs a pipeline that fixes its size");
        d.out_bytes += d.t[i].out_bytes;
    }
    if (rc == 0)
        rc = tp_dataset_open(&ds, o->path, &err);
    if (rc == 0)
        rc = load_images(&d, ds, &err);
    if (rc == 0 && d.n == 0)
        rc = tp__error_set(&err, TP_EUSAGE, "%s has no samples", o->path);
    if (o->versus) {
        int code = rc == 0 ? bench_versus(o, &d) : TP_EXIT_FAIL;
        if (rc < 0)
            tp_cli_error(CMD, "%s", err.msg);
        free_images(&d);
        tp_dataset_close(ds);
        return code;
    }
    pthread_t threads[256];
    size_t started = 0;
    double start = tp_cli_now(), secs = 0;
    d.deadline = start + (double)o->seconds;
    while (rc == 0 && started < o->threads &&
           pthread_create(&threads[started], NULL, decode_worker, &d) == 0)
        started++;
    for (size_t i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    secs = tp_cli_now() - start;
    uint64_t done = atomic_load(&d.done), failed = atomic_load(&d.failed);
    char what[TP_PIPELINE_TEXT_MAX + 64];
    if (o->nviews)
        snprintf(what, sizeof(what), "%u views%s", o->nviews,
                 o->separate ? ", decoded separately" : "");
    else
        snprintf(what, sizeof(what), "%s", o->transform);
    char json_what[2 * sizeof(what)];
    size_t j = 0;
    for (const char *c = what; *c && j + 2 < sizeof(json_what); c++) {
        if (*c == '"' || *c == '\\')
            json_what[j++] = '\\';
        json_what[j++] = *c;
    }
    json_what[j] = '\0';
    if (rc < 0)
        tp_cli_error(CMD, "%s", err.msg);
    else if (o->json)
        printf("{\"transform\": \"%s\", \"views\": %u, \"separate\": %s, \"exact\": %s, "
               "\"scales\": \"%s\", \"threads\": %llu, "
               "\"images\": %llu, \"errors\": %llu, \"seconds\": %.3f, \"images_per_s\": %.1f, "
               "\"images_per_s_per_thread\": %.1f, \"distinct_images\": %zu, "
               "\"seek_decodes\": %llu, \"seek_fallbacks\": %llu}\n", json_what,
               d.nt, o->separate ? "true" : "false",
               o->exact ? "true" : "false", o->scales == TP_JPEG_SCALES_ALL ? "all" : "pow2",
               (unsigned long long)o->threads, (unsigned long long)done,
               (unsigned long long)failed, secs, (double)done / secs,
               (double)done / secs / (double)o->threads, d.n,
               (unsigned long long)atomic_load(&d.seeks),
               (unsigned long long)atomic_load(&d.seek_fallbacks));
    else
        printf("%s: %s on %llu thread%s: %.0f images/s (%.0f per thread) over %llu images "
               "(%zu distinct) in %.1f s, %llu errors; %llu seekable decodes (%llu fell back)\n",
               o->path, what, (unsigned long long)o->threads, o->threads == 1 ? "" : "s",
               (double)done / secs, (double)done / secs / (double)o->threads,
               (unsigned long long)done, d.n, secs, (unsigned long long)failed,
               (unsigned long long)atomic_load(&d.seeks),
               (unsigned long long)atomic_load(&d.seek_fallbacks));
    free_images(&d);
    tp_dataset_close(ds);
    return rc == 0 && failed == 0 ? TP_EXIT_OK : TP_EXIT_FAIL;
}

static int bench_io(const bench_options *op)
{
    const bench_options o = *op;
    io_run r = {.o = op, .rng = 0x9e3779b97f4a7c15ull};
    tp_dataset *ds = NULL;
    tp_error err = {0};
    double secs = 0;
    int rc = tp_dataset_open(&ds, o.path, &err);
    r.ds = ds;
    if (rc == 0 && tp_dataset_sample_count(ds) == 0)
        rc = tp__error_set(&err, TP_EUSAGE, "%s has no samples", o.path);
    if (rc == 0)
        rc = open_run(&r, &err);
    if (rc == 0)
        rc = run_reads(&r, &secs, &err);
    if (rc == 0)
        report(&r, secs);
    else
        tp_cli_error(CMD, "%s", err.msg);
    tp_io_destroy(r.io);
    tp_dataset_close(ds);
    free(r.submitted);
    free(r.lat);
    return rc == 0 && r.errors == 0 ? TP_EXIT_OK : TP_EXIT_FAIL;
}

int tp_cmd_bench(int argc, char **argv)
{
    bench_options o;
    int rc = parse_bench(argc, argv, &o);
    if (rc)
        return rc;
    return o.what[0] == 'i' ? bench_io(&o) : bench_decode(&o);
}
