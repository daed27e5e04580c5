/* `turbopump pack`: ImageFolder -> sharded dataset with fields jpg and cls.
 * Worker threads read and check the JPEGs and encode records in parallel; the main
 * thread appends them strictly in input order, so the output is byte-identical for any
 * --jobs. Unusable inputs are skipped with one warning each (or fail the run with
 * --strict); a write error or an interrupt discards the partial output. */
#include "cli.h"
#include "codecs.h"
#include "scan.h"
#include "storage.h"

#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "pack"
#define MAX_INPUT (256u << 20)

typedef struct pack_options {
    const char *src, *dst;
    tp_shard_format format;
    uint64_t jobs, shard_bytes, align, zstd, dict_size;
    bool strict, force, quiet, dict;
} pack_options;

/* One input's outcome, produced by a worker and consumed in order by the writer. */
typedef struct slot {
    bool ready;
    unsigned char *rec;  /* encoded record, or NULL when the input is skipped */
    uint64_t len, checksum, src_bytes;
    char why[sizeof(((tp_error *)0)->msg)];
} slot;

typedef struct pack_job {
    const pack_options *o;
    const tp_scan *scan;
    tp_field_info fields[2];
    tp_zstd_dict *dict;      /* trained dictionary (--zstd-dict), shared read-only */
    unsigned char *dict_bytes;
    size_t dict_len;
    slot *slots;
    size_t window;
    size_t next_claim;   /* next input a worker takes */
    size_t next_write;   /* next input the writer appends */
    bool stop;
    pthread_mutex_t mu;
    pthread_cond_t ready, space;
} pack_job;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) { interrupted = sig; }

void tp_usage_pack(FILE *out)
{
    fprintf(out,
            "Usage: turbopump pack SRC DST [OPTIONS]\n\n"
            "Convert an ImageFolder tree (SRC/<class>/**/*.jpg) into a dataset at DST with\n"
            "fields 'jpg' (the JPEG bytes) and 'cls' (int64 class index; classes are the\n"
            "sorted subdirectory names, as torchvision's ImageFolder orders them).\n\n"
            "Options:\n"
            "  --format record|lmdb  shard kind (default record)\n"
            "  --jobs N              worker threads (default: number of CPUs)\n"
            "  --shard-size SIZE     start a new shard past SIZE bytes (default 256M)\n"
            "  --align N             record alignment in record shards, a power of two\n"
            "                        up to 65536: 4096 (default, O_DIRECT-ready) or 1\n"
            "  --zstd LEVEL          store fields zstd-compressed at LEVEL 1-22 when smaller\n"
            "  --zstd-dict           train a zstd dictionary on a sample of the inputs and\n"
            "                        compress with it (for datasets of small records)\n"
            "  --zstd-dict-size SIZE dictionary size (default 110K)\n"
            "  --strict              fail on the first unusable input instead of skipping it\n"
            "  --force               replace an existing dataset at DST\n"
            "  --quiet               no progress display and no summary\n"
            "  -h, --help            show this help\n\n"
            "Unusable inputs (unreadable, empty, not a JPEG, truncated, non-UTF-8 names,\n"
            "symlink loops, empty classes) are skipped with one warning each and counted.\n"
            "The dataset appears at DST only when complete; output is byte-identical for\n"
            "any --jobs.\n");
}

static int parse_options(int argc, char **argv, pack_options *o)
{
    static const struct option longopts[] = {
        {"format", required_argument, 0, 'f'}, {"jobs", required_argument, 0, 'j'},
        {"shard-size", required_argument, 0, 's'}, {"align", required_argument, 0, 'a'},
        {"zstd", required_argument, 0, 'z'}, {"strict", no_argument, 0, 'S'},
        {"zstd-dict", no_argument, 0, 'D'}, {"zstd-dict-size", required_argument, 0, 'Z'},
        {"force", no_argument, 0, 'F'}, {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    *o = (pack_options){.format = TP_SHARD_RECORD, .jobs = tp_cli_cpus(),
                        .shard_bytes = 256ull << 20, .align = 4096, .dict_size = 112640};
    int c;
    while ((c = getopt_long(argc, argv, "hj:", longopts, NULL)) != -1) {
        int rc = 0;
        if (c == 'f' && !strcmp(optarg, "record"))
            o->format = TP_SHARD_RECORD;
        else if (c == 'f' && !strcmp(optarg, "lmdb"))
            o->format = TP_SHARD_LMDB;
        else if (c == 'f')
            return tp_cli_usage_error(CMD, "--format must be 'record' or 'lmdb', not '%s'",
                                      optarg);
        else if (c == 'j')
            rc = tp_cli_u64(CMD, "--jobs", optarg, 1, 256, &o->jobs);
        else if (c == 's')
            rc = tp_cli_size(CMD, "--shard-size", optarg, 4096, &o->shard_bytes);
        else if (c == 'a')
            rc = tp_cli_u64(CMD, "--align", optarg, 1, 65536, &o->align);
        else if (c == 'z')
            rc = tp_cli_u64(CMD, "--zstd", optarg, 1, 22, &o->zstd);
        else if (c == 'Z')
            rc = tp_cli_size(CMD, "--zstd-dict-size", optarg, 1024, &o->dict_size);
        else if (c == 'S' || c == 'F' || c == 'q' || c == 'D')
            *(c == 'S' ? &o->strict : c == 'F' ? &o->force : c == 'q' ? &o->quiet : &o->dict) =
                true;
        else if (c == 'h') {
            tp_usage_pack(stdout);
            exit(TP_EXIT_OK);
        } else
            return tp_cli_usage_error(CMD, "unknown option");
        if (rc < 0)
            return TP_EXIT_USAGE;
    }
    if (o->align & (o->align - 1))
        return tp_cli_usage_error(CMD, "--align must be a power of two, not %llu",
                                  (unsigned long long)o->align);
    if (o->dict && !o->zstd)
        return tp_cli_usage_error(CMD, "--zstd-dict needs --zstd LEVEL");
    if (o->dict_size > TP_DICT_MAX)
        return tp_cli_usage_error(CMD, "--zstd-dict-size is at most 16M");
    if (argc - optind != 2)
        return tp_cli_usage_error(CMD, "needs SRC and DST");
    o->src = argv[optind];
    o->dst = argv[optind + 1];
    return 0;
}

static int read_input(const char *path, unsigned char **buf, size_t *len, char *why,
                      size_t whylen)
{
    char *data;
    int rc = tp__read_file(path, MAX_INPUT, &data, len);
    if (rc == TP_ETOOBIG)
        snprintf(why, whylen, "larger than %u MiB", MAX_INPUT >> 20);
    else if (rc < 0)
        snprintf(why, whylen, "cannot read: %s", tp_strerror(rc));
    else if (*len == 0)
        snprintf(why, whylen, "empty file");
    else {
        *buf = (unsigned char *)data;
        return 0;
    }
    if (rc == 0)
        free(data);
    return -1;
}

/* Reads, checks and encodes input `i` into its slot (rec stays NULL when skipped). */
static void process(const pack_job *j, tp_zstd *z, size_t i, slot *s)
{
    unsigned char *jpeg = NULL, *packed = NULL;
    size_t len;
    if (read_input(j->scan->items[i].path, &jpeg, &len, s->why, sizeof(s->why)) < 0)
        return;
    s->src_bytes = len;
    tp_jpeg_info info;
    tp_error err;
    if (tp_jpeg_inspect(jpeg, len, TP_JPEG_DEFAULT_MAX_PIXELS, &info, &err) < 0) {
        snprintf(s->why, sizeof(s->why), "%s", err.msg);
        free(jpeg);
        return;
    }
    unsigned char label[8];
    tp__put64(label, j->scan->items[i].label);
    tp_field_value v[2] = {{.field = 0, .data = jpeg, .size = len, .raw_size = len},
                           {.field = 1, .data = label, .size = 8, .raw_size = 8}};
    int64_t zlen = j->o->zstd && z ? tp_zstd_compress_with(z, j->dict, jpeg, len,
                                                           (int)j->o->zstd, &packed) : -1;
    if (zlen >= 0 && (uint64_t)zlen < len) {
        v[0].data = packed;
        v[0].size = (uint64_t)zlen;
        v[0].compression = j->dict ? TP_COMPRESS_ZSTD_DICT : TP_COMPRESS_ZSTD;
    }
    s->len = tp__record_size(v, 2);
    s->rec = malloc(s->len);
    if (s->rec)
        s->checksum = tp__record_encode(s->rec, v, 2);
    else
        snprintf(s->why, sizeof(s->why), "out of memory");
    free(packed);
    free(jpeg);
}

static void *worker(void *arg)
{
    pack_job *j = arg;
    tp_zstd *z = NULL;
    if (j->o->zstd && tp_zstd_create(&z) < 0)
        z = NULL; /* stored uncompressed then: still correct, only larger */
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (!j->stop && j->next_claim < j->scan->nitems &&
               j->next_claim >= j->next_write + j->window)
            pthread_cond_wait(&j->space, &j->mu);
        if (j->stop || j->next_claim >= j->scan->nitems)
            break;
        size_t i = j->next_claim++;
        slot *s = &j->slots[i % j->window];
        pthread_mutex_unlock(&j->mu);
        s->rec = NULL; /* `ready` is only touched under the lock */
        s->len = s->checksum = s->src_bytes = 0;
        s->why[0] = '\0';
        process(j, z, i, s);
        pthread_mutex_lock(&j->mu);
        s->ready = true;
        pthread_cond_broadcast(&j->ready);
    }
    pthread_mutex_unlock(&j->mu);
    tp_zstd_destroy(z);
    return NULL;
}

/* Waits for input `i`, then frees its slot for the workers after the caller is done. */
static slot *wait_slot(pack_job *j, size_t i)
{
    pthread_mutex_lock(&j->mu);
    slot *s = &j->slots[i % j->window];
    while (!s->ready)
        pthread_cond_wait(&j->ready, &j->mu);
    pthread_mutex_unlock(&j->mu);
    return s;
}

static void release_slot(pack_job *j, slot *s)
{
    free(s->rec);
    pthread_mutex_lock(&j->mu);
    s->ready = false;
    j->next_write++;
    pthread_cond_broadcast(&j->space);
    pthread_mutex_unlock(&j->mu);
}

static void stop_workers(pack_job *j)
{
    pthread_mutex_lock(&j->mu);
    j->stop = true;
    pthread_cond_broadcast(&j->space);
    pthread_mutex_unlock(&j->mu);
}

static int warn_input(void *ctx, const char *path, const char *why)
{
    const pack_options *o = ctx;
    if (o->strict) {
        tp_cli_error(CMD, "%s: %s (--strict)", path, why);
        return 1;
    }
    tp_cli_warn(CMD, "skipping %s: %s", path, why);
    return 0;
}

#define DICT_SAMPLES 1000
#define DICT_SAMPLE_BYTES (64u << 20)

/* Trains the dictionary on up to DICT_SAMPLES inputs spread evenly over the dataset (the
 * same ones for any --jobs, so the output stays byte-identical). */
static int train_dict(const pack_options *o, const tp_scan *scan, pack_job *j)
{
    size_t n = TP_MIN(scan->nitems, (size_t)DICT_SAMPLES), used = 0, total = 0;
    unsigned char *all = malloc(DICT_SAMPLE_BYTES);
    size_t *sizes = malloc(n * sizeof(size_t));
    j->dict_bytes = malloc(o->dict_size);
    int rc = all && sizes && j->dict_bytes ? 0 : -ENOMEM;
    for (size_t k = 0; rc == 0 && k < n; k++) {
        char *data;
        size_t len;
        if (tp__read_file(scan->items[k * scan->nitems / n].path, MAX_INPUT, &data, &len) < 0)
            continue; /* unusable inputs are reported when they are packed */
        if (total + len <= DICT_SAMPLE_BYTES) {
            memcpy(all + total, data, len);
            total += len;
            sizes[used++] = len;
        }
        free(data);
    }
    tp_error err = {0};
    int64_t got = rc ? rc : tp_zstd_train(all, sizes, (unsigned)used, j->dict_bytes,
                                          (size_t)o->dict_size, &err);
    if (got > 0) {
        j->dict_len = (size_t)got;
        rc = tp_zstd_dict_create(&j->dict, j->dict_bytes, j->dict_len, (int)o->zstd, &err);
    } else {
        rc = got < 0 ? (int)got : TP_EUSAGE;
    }
    if (rc < 0)
        tp_cli_error(CMD, "training a zstd dictionary: %s", err.code ? err.msg : tp_strerror(rc));
    free(all);
    free(sizes);
    return rc;
}

static int open_writer(const pack_options *o, const tp_scan *scan, const pack_job *j,
                       tp_field_info *fields, tp_dataset_writer **w)
{
    fields[0] = (tp_field_info){.name = "jpg", .kind = TP_FIELD_IMAGE, .zstd_level = (int)o->zstd};
    fields[1] = (tp_field_info){.name = "cls", .kind = TP_FIELD_INT64};
    char *abs = realpath(o->src, NULL), *source = malloc(strlen(abs ? abs : o->src) + 16);
    if (source)
        sprintf(source, "imagefolder:%s", abs ? abs : o->src);
    /* The id derives from the inputs and options, so equal inputs give equal bytes. */
    char opts[128];
    snprintf(opts, sizeof(opts), "%d %llu %llu %llu %d %llu", (int)o->format,
             (unsigned long long)o->align, (unsigned long long)o->shard_bytes,
             (unsigned long long)o->zstd, (int)o->dict, (unsigned long long)o->dict_size);
    uint64_t id[2] = {scan->listing_hash, tp__hash64(opts, strlen(opts))};
    unsigned char idb[TP_DATASET_ID_BYTES];
    tp__put64(idb, id[0]);
    tp__put64(idb + 8, id[1] ^ id[0]);
    tp_dataset_writer_options wo = {
        .format = o->format, .align = (uint32_t)o->align, .shard_bytes = o->shard_bytes,
        .fields = fields, .nfields = 2, .classes = (const char *const *)scan->classes,
        .nclasses = scan->nclasses, .id = idb, .source = source, .replace = o->force,
        .zstd_dict = j->dict_bytes, .zstd_dict_len = j->dict_len};
    tp_error err;
    int rc = tp_dataset_writer_create(w, o->dst, &wo, &err);
    if (rc < 0)
        tp_cli_error(CMD, "%s", err.msg);
    free(abs);
    free(source);
    return rc;
}

typedef struct pack_totals {
    uint64_t samples, src_bytes, skipped;
} pack_totals;

/* Appends every input in order. @return : 0, or -1 after printing why it stopped. */
static int write_all(pack_job *j, tp_dataset_writer *w, pack_totals *t)
{
    tp_progress prog;
    if (!j->o->quiet)
        tp_progress_start(&prog, j->scan->nitems, "samples");
    int rc = 0;
    for (size_t i = 0; i < j->scan->nitems && rc == 0; i++) {
        slot *s = wait_slot(j, i);
        tp_error err;
        if (interrupted) {
            tp_cli_error(CMD, "interrupted; nothing was written to %s", j->o->dst);
            rc = -1;
        } else if (!s->rec) {
            t->skipped++;
            rc = warn_input((void *)j->o, j->scan->items[i].path, s->why) ? -1 : 0;
        } else if (tp__writer_append_record(w, s->rec, s->len, s->checksum, &err) < 0) {
            tp_cli_error(CMD, "%s", err.msg);
            rc = -1;
        } else {
            t->samples++;
            t->src_bytes += s->src_bytes;
        }
        release_slot(j, s);
        if (!j->o->quiet)
            tp_progress_update(&prog, i + 1, t->src_bytes);
    }
    if (!j->o->quiet)
        tp_progress_end(&prog);
    return rc;
}

static int run_workers(pack_job *j, tp_dataset_writer *w, pack_totals *t)
{
    pthread_t threads[256];
    size_t started = 0;
    for (; started < j->o->jobs; started++)
        if (pthread_create(&threads[started], NULL, worker, j) != 0)
            break;
    int rc = started ? write_all(j, w, t) : -1;
    if (!started)
        tp_cli_error(CMD, "cannot start worker threads");
    stop_workers(j);
    for (size_t i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    for (size_t i = 0; i < j->window; i++) /* slots a stopped run left filled */
        if (j->slots[i].ready)
            free(j->slots[i].rec);
    return rc;
}

static int pack(const pack_options *o, const tp_scan *scan, pack_totals *t)
{
    pack_job j = {.o = o, .scan = scan, .window = o->jobs * 8};
    tp_dataset_writer *w = NULL;
    j.slots = calloc(j.window, sizeof(slot));
    if (!j.slots || (o->dict && train_dict(o, scan, &j) < 0) ||
        open_writer(o, scan, &j, j.fields, &w) < 0) {
        free(j.slots);
        tp_zstd_dict_destroy(j.dict);
        free(j.dict_bytes);
        return -1;
    }
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.ready, NULL);
    pthread_cond_init(&j.space, NULL);
    int rc = run_workers(&j, w, t);
    tp_error err;
    if (rc == 0 && t->samples == 0) {
        tp_cli_error(CMD, "no usable JPEG files under %s", o->src);
        rc = -1;
    }
    if (rc == 0 && tp_dataset_writer_finish(w, &err) < 0) {
        tp_cli_error(CMD, "%s", err.msg);
        rc = -1;
    }
    tp_dataset_writer_destroy(w);
    pthread_cond_destroy(&j.ready);
    pthread_cond_destroy(&j.space);
    pthread_mutex_destroy(&j.mu);
    free(j.slots);
    tp_zstd_dict_destroy(j.dict);
    free(j.dict_bytes);
    return rc;
}

int tp_cmd_pack(int argc, char **argv)
{
    pack_options o;
    int rc = parse_options(argc, argv, &o);
    if (rc)
        return rc;
    struct stat st;
    const char *bad = stat(o.src, &st) < 0 ? strerror(errno)
                      : !S_ISDIR(st.st_mode) ? "not a directory" : NULL;
    if (bad) {
        tp_cli_error(CMD, "%s: %s", o.src, bad);
        return TP_EXIT_FAIL;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    double start = tp_cli_now();
    tp_scan scan;
    rc = tp_scan_imagefolder(o.src, &scan, warn_input, &o);
    if (rc < 0)
        tp_cli_error(CMD, "scanning %s: %s", o.src, tp_strerror(rc));
    pack_totals t = {.skipped = scan.skipped};
    if (rc == 0)
        rc = pack(&o, &scan, &t);
    double secs = TP_MAX(tp_cli_now() - start, 1e-9);
    if (rc == 0 && !o.quiet)
        printf("packed %llu samples (%.1f MB of JPEG) from %zu classes into %s in %.2f s: "
               "%.0f samples/s, %.1f MB/s; skipped %llu input%s\n",
               (unsigned long long)t.samples, (double)t.src_bytes / 1e6, scan.nclasses, o.dst,
               secs, (double)t.samples / secs, (double)t.src_bytes / secs / 1e6,
               (unsigned long long)t.skipped, t.skipped == 1 ? "" : "s");
    tp_scan_free(&scan);
    return rc == 0 ? TP_EXIT_OK : TP_EXIT_FAIL;
}
