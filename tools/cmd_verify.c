/* `turbopump verify`: reads every record of a dataset and checks every checksum and
 * structure (opening the dataset already checks the manifest, shard headers, footers and
 * indexes); --decode also decodes every image. Records are read in large sequential spans,
 * so verifying runs at the speed of reading the files. Each problem is reported with the
 * shard, sample id and cause; the exit status is 1 if there was any. Token datasets are
 * checked block by block by inspect_tokens.c. */
#include "cli.h"
#include "codecs.h"
#include "s3.h"

#include <turbopump/tokens.h>

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define CMD "verify"
/* Records are read in spans of up to SPAN bytes: small enough that the hash reads them
 * back from the CPU cache, large enough that small records cost few system calls. */
#define SPAN (256u << 10)
#define MAX_REPORTED 100
#define CHUNK 64 /* samples per task: shards are split so --jobs helps within one */

typedef struct verify_job {
    const tp_dataset *ds;
    bool decode;
    tp_zstd_dict *dict; /* the dataset's zstd dictionary, if it has one */
    atomic_size_t next_task;
    atomic_uint_fast64_t errors, samples;
    pthread_mutex_t print_mu;
} verify_job;

void tp_usage_verify(FILE *out)
{
    fprintf(out, "Usage: turbopump verify DS [--decode] [--jobs N]\n\n"
                 "Check every checksum of the dataset at DS: manifest, shard headers,\n"
                 "footers, indexes and records. Exits 1 naming the shard, sample id and\n"
                 "cause of each problem. A token dataset's shards are checked block by\n"
                 "block; the first bad block is named and all are counted.\n\n"
                 "Options:\n"
                 "  --decode    also decode every image field (JPEG or PNG)\n"
                 "  --jobs N    shards verified in parallel (default 1)\n"
                 "  -h, --help  show this help\n");
}

static void report(verify_job *j, const char *fmt, const char *a, uint64_t id, const char *b)
{
    uint64_t n = atomic_fetch_add(&j->errors, 1);
    if (n >= MAX_REPORTED)
        return;
    pthread_mutex_lock(&j->print_mu);
    fprintf(stderr, "turbopump verify: ");
    fprintf(stderr, fmt, a, (unsigned long long)id, b);
    fputc('\n', stderr);
    if (n + 1 == MAX_REPORTED)
        fprintf(stderr, "turbopump verify: (further problems are counted, not shown)\n");
    pthread_mutex_unlock(&j->print_mu);
}

/* What each verifying thread keeps between records: the read span, and for --decode a
 * zstd context, a JPEG decoder and their buffers, so nothing is set up per sample. */
typedef struct worker {
    unsigned char *p;      /* the read span, page-aligned */
    size_t cap;
    tp_zstd *z;
    tp_jpeg_decoder *dec;
    tp_image img;
    unsigned char *raw;    /* a decompressed field */
    size_t raw_cap;
} worker;

static int grow_raw(worker *w, uint64_t need, tp_error *err)
{
    if (need > (256u << 20))
        return tp__error_set(err, TP_ETOOBIG, "field too large to decompress");
    if (need <= w->raw_cap)
        return 0;
    unsigned char *p = realloc(w->raw, (size_t)need);
    if (!p)
        return tp__error_set(err, -ENOMEM, "out of memory");
    w->raw = p;
    w->raw_cap = (size_t)need;
    return 0;
}

/* Decodes one image field (decompressing first when stored compressed). */
static int decode_field(const verify_job *j, worker *w, const tp_field_value *v, tp_error *err)
{
    const void *data = v->data;
    if (v->compression != TP_COMPRESS_NONE) {
        TP_TRY(grow_raw(w, v->raw_size, err));
        TP_TRY(tp_zstd_decompress_with(w->z, v->compression == TP_COMPRESS_ZSTD_DICT ? j->dict
                                                                                    : NULL,
                                       v->data, v->size, w->raw, v->raw_size, err));
        data = w->raw;
    }
    /* header and end checks, as pack applies them */
    TP_TRY(tp_image_inspect(data, v->raw_size, TP_JPEG_DEFAULT_MAX_PIXELS, err));
    if (tp_png_signature(data, v->raw_size))
        return tp_png_decode(data, v->raw_size, 0, &w->img, err);
    tp_jpeg_request whole = {0};
    return tp_jpeg_decode(w->dec, data, v->raw_size, &whole, &w->img, err);
}

static void check_record(verify_job *j, worker *w, const char *shard, uint64_t id,
                         const unsigned char *buf, const tp_sample_location *loc)
{
    tp_record rec;
    tp_error err;
    uint32_t nfields = (uint32_t)tp_dataset_field_count(j->ds);
    if (tp_record_parse(buf, loc->length, loc->checksum, nfields, &rec, &err) < 0 ||
        tp_dataset_check_record(j->ds, &rec, &err) < 0) {
        report(j, "%s: sample %llu: %s", shard, id, err.msg);
        return;
    }
    for (uint32_t i = 0; j->decode && i < rec.nfields; i++)
        if (tp_dataset_field(j->ds, rec.fields[i].field)->kind == TP_FIELD_IMAGE &&
            decode_field(j, w, &rec.fields[i], &err) < 0)
            report(j, "%s: sample %llu: %s", shard, id, err.msg);
}

/* Reads records [first, end) of one shard in spans of up to SPAN bytes. */
static void verify_range(verify_job *j, const tp_shard_info *si, worker *buf,
                         uint64_t first, uint64_t end)
{
    tp_sample_location locs[4096];
    while (first < end) {
        size_t n = 0, skip = 0;
        uint64_t span_start = 0, span_end = 0;
        tp_error err;
        for (; first + n < end && n < TP_ARRAY_LEN(locs); n++) {
            tp_sample_location *l = &locs[n];
            if (tp_dataset_locate(j->ds, first + n, l, &err) < 0) {
                report(j, "%s: sample %llu: %s", si->path, first + n, err.msg);
                skip = 1; /* reported once; go on after it */
                break;
            }
            if (n == 0)
                span_start = l->offset;
            else if (l->offset < span_end || l->offset + l->length - span_start > SPAN)
                break;
            span_end = l->offset + l->length;
        }
        if (n == 0) {
            first += skip;
            continue;
        }
        size_t span = (size_t)(span_end - span_start);
        if (span > buf->cap) { /* one record larger than any before */
            unsigned char *grown = aligned_alloc(4096, (span + 4095) & ~(size_t)4095);
            if (grown) {
                free(buf->p);
                buf->p = grown;
                buf->cap = span;
            }
        }
        unsigned char *p = buf->p;
        struct iovec v = {.iov_base = p, .iov_len = span};
        tp_error rerr = {0};
        int rc = span <= buf->cap ? tp__location_read(&locs[0], &v, 1, span_start, span, &rerr)
                                  : -ENOMEM;
        for (size_t i = 0; i < n; i++) {
            if (rc < 0)
                report(j, "%s: sample %llu: %s", si->path, first + i,
                       rerr.code ? rerr.msg : tp_strerror(rc));
            else
                check_record(j, buf, si->path, first + i, p + (locs[i].offset - span_start),
                             &locs[i]);
        }
        atomic_fetch_add(&j->samples, n);
        first += n + skip;
    }
}

/* Claims the next chunk of at most CHUNK samples, never crossing a shard boundary. */
static bool next_task(verify_job *j, tp_shard_info *si, uint64_t *first, uint64_t *end)
{
    size_t t = atomic_fetch_add(&j->next_task, 1);
    for (size_t i = 0; tp_dataset_shard_info(j->ds, i, si) == 0; i++) {
        size_t chunks = (size_t)((si->samples + CHUNK - 1) / CHUNK);
        if (t < chunks) {
            *first = si->first_sample + (uint64_t)t * CHUNK;
            *end = TP_MIN(*first + CHUNK, si->first_sample + si->samples);
            return true;
        }
        t -= chunks;
    }
    return false;
}

static void *verify_worker(void *arg)
{
    verify_job *j = arg;
    uint64_t first, end;
    /* Page-aligned like the page cache it is copied from: the kernel's copy runs
     * several times slower into a buffer that is not (measured on AMD EPYC). */
    worker w = {.p = aligned_alloc(4096, SPAN), .cap = SPAN};
    bool ok = w.p && (!j->decode || (tp_zstd_create(&w.z) == 0 &&
                                     tp_jpeg_decoder_create(&w.dec) == 0));
    tp_shard_info si;
    while (ok && next_task(j, &si, &first, &end))
        verify_range(j, &si, &w, first, end);
    if (!ok)
        report(j, "%s%llu%s", "out of memory", 0, "");
    free(w.p);
    free(w.raw);
    free(w.img.pixels);
    tp_zstd_destroy(w.z);
    tp_jpeg_decoder_destroy(w.dec);
    return NULL;
}

int tp_cmd_verify(int argc, char **argv)
{
    static const struct option longopts[] = {{"decode", no_argument, 0, 'd'},
                                             {"jobs", required_argument, 0, 'j'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    bool decode = false;
    uint64_t jobs = 1;
    int c;
    while ((c = getopt_long(argc, argv, "hj:", longopts, NULL)) != -1) {
        if (c == 'd')
            decode = true;
        else if (c == 'j') {
            if (tp_cli_u64(CMD, "--jobs", optarg, 1, 256, &jobs) < 0)
                return TP_EXIT_USAGE;
        } else if (c == 'h') {
            tp_usage_verify(stdout);
            return TP_EXIT_OK;
        } else
            return tp_cli_usage_error(CMD, "unknown option");
    }
    if (argc - optind != 1)
        return tp_cli_usage_error(CMD, "needs exactly one dataset path");
    const char *path = argv[optind];
    if (tp_tokens_is(path))
        return tp_verify_tokens(path);
    double start = tp_cli_now();
    tp_dataset *ds;
    tp_error err;
    if (tp_dataset_open(&ds, path, &err) < 0) {
        tp_cli_error(CMD, "%s", err.msg);
        return TP_EXIT_FAIL;
    }
    verify_job j = {.ds = ds, .decode = decode};
    size_t dict_len;
    const void *dict = tp_dataset_zstd_dict(ds, &dict_len);
    if (dict && tp_zstd_dict_create(&j.dict, dict, dict_len, 0, &err) < 0) {
        tp_cli_error(CMD, "%s/zstd.dict: %s", path, err.msg);
        tp_dataset_close(ds);
        return TP_EXIT_FAIL;
    }
    pthread_mutex_init(&j.print_mu, NULL);
    pthread_t threads[256];
    size_t started = 0;
    while (started < jobs && pthread_create(&threads[started], NULL, verify_worker, &j) == 0)
        started++;
    if (started == 0)
        verify_worker(&j);
    for (size_t i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    double secs = TP_MAX(tp_cli_now() - start, 1e-9);
    uint64_t errors = atomic_load(&j.errors), bytes = 0;
    tp_shard_info si;
    for (size_t i = 0; tp_dataset_shard_info(ds, i, &si) == 0; i++)
        bytes += si.bytes;
    printf("%s: %llu samples in %zu shards (%.1f MB) verified in %.3f s (%.1f MB/s)%s: %llu "
           "problem%s\n", path, (unsigned long long)atomic_load(&j.samples),
           tp_dataset_shard_count(ds), (double)bytes / 1e6, secs, (double)bytes / secs / 1e6,
           decode ? ", images decoded" : "", (unsigned long long)errors, errors == 1 ? "" : "s");
    pthread_mutex_destroy(&j.print_mu);
    tp_zstd_dict_destroy(j.dict);
    tp_dataset_close(ds);
    return errors ? TP_EXIT_FAIL : TP_EXIT_OK;
}
