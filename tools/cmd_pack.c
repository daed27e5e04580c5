/* `turbopump pack`: an input (ingest/source.h: an ImageFolder tree, WebDataset tar
 * shards, TFRecords, listings) -> a sharded dataset. Worker threads take samples from the source in order,
 * read and check their values and encode records in parallel; the main thread appends
 * them strictly in input order, so the output is byte-identical for any --jobs. Unusable
 * inputs are skipped with one warning each (or fail the run with --strict); a write
 * error or an interrupt discards the partial output. */
#include "pack.h"

#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "pack"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) { interrupted = sig; }

void tp_usage_pack(FILE *out)
{
    fprintf(out,
            "Usage: turbopump pack SRC DST [OPTIONS]\n"
            "       turbopump pack --tokens INPUT... DST [OPTIONS]\n\n"
            "Convert SRC into a dataset at DST. SRC is one of:\n"
            "  an ImageFolder tree   SRC/<class>/**/*.{jpg,jpeg,png}: fields 'jpg' (or 'png',\n"
            "                        or 'image' for a tree of both) with the file's bytes and\n"
            "                        'cls' (int64 class index; classes are the sorted\n"
            "                        subdirectory names, as torchvision's ImageFolder orders\n"
            "                        them)\n"
            "  WebDataset tar shards a .tar file (or .tar.gz/.zst/.xz/.bz2), a directory of\n"
            "                        them, a glob or a brace list ('shards-{000..127}.tar'):\n"
            "                        members grouped into samples by key as WebDataset does,\n"
            "                        every extension a field (jpg/jpeg/png images, cls int64,\n"
            "                        anything else bytes)\n"
            "  TFRecord files        of tf.train.Example (.tfrecord/.tfrec names, a\n"
            "                        directory of them, globs, brace lists): features are\n"
            "                        fields, by key ('--fields image/encoded:jpg,\n"
            "                        image/class/label:cls'); record CRCs are checked\n"
            "  a listing             a .csv (with a header row) or .jsonl/.ndjson file, one\n"
            "                        sample per row: the path column (path, file, filename,\n"
            "                        image or image_path; relative to the listing) gives\n"
            "                        the image field, the label column (label, cls, class\n"
            "                        or target) cls (class names become indices), other\n"
            "                        columns int64, float64 or bytes fields\n\n"
            "Options:\n"
            "  --input KIND          imagefolder, wds, tfrecord or listing (default: a .csv\n"
            "                        or .jsonl is a listing, a .tfrecord name tfrecord, a\n"
            "                        tar name, glob or brace list wds, a directory of tars\n"
            "                        or TFRecords likewise, a directory an ImageFolder)\n"
            "  --fields LIST         the fields to keep, in order, comma-separated; FROM:TO\n"
            "                        renames (e.g. --fields jpg:image,cls); default: all\n"
            "                        (for shards: the extensions every sample has)\n"
            "  --part I/N            pack only part I (0..N-1) of N: a contiguous run of the\n"
            "                        input's samples; 'turbopump merge' joins the N parts\n"
            "                        into the dataset one pack of everything would hold\n"
            "  --format record|lmdb  shard kind (default record)\n"
            "  --jobs N              worker threads (default: number of CPUs)\n"
            "  --shard-size SIZE     start a new shard past SIZE bytes (default 256M)\n"
            "  --align N             record alignment in record shards, a power of two\n"
            "                        up to 65536: 4096 (default, O_DIRECT-ready) or 1\n"
            "  --jpeg-seek[=COLUMNS] store JPEGs seekable, so that a crop decodes only the\n"
            "                        MCUs it covers: a lossless re-encode (same pixels) with\n"
            "                        a restart marker every COLUMNS MCUs of a row (default\n"
            "                        %d, or the nearest divisor of the row below it);\n"
            "                        CMYK, 12-bit and arithmetic-coded JPEGs stay as they are\n"
            "  --zstd LEVEL          store fields zstd-compressed at LEVEL 1-22 when smaller\n"
            "  --zstd-dict           train a zstd dictionary on a sample of the inputs and\n"
            "                        compress with it (for datasets of small records)\n"
            "  --zstd-dict-size SIZE dictionary size (default 110K)\n"
            "  --strict              fail on the first unusable input instead of skipping it\n"
            "  --force               replace an existing dataset at DST\n"
            "  --quiet               no progress display and no summary\n"
            "  -h, --help            show this help\n\n"
            "Unusable inputs (unreadable, empty, not a JPEG or PNG, truncated, non-UTF-8\n"
            "names, symlink loops, empty classes; tar members without a key, samples missing\n"
            "a field or holding one twice, damaged shards, labels that are not integers) are\n"
            "skipped with one warning each and counted. The dataset appears at DST only when\n"
            "complete; output is byte-identical for any --jobs.\n\n",
            TP_PACK_SEEK_COLUMNS);
    tp_usage_pack_tokens(out);
}

static int parse_fields(pack_options *o, const char *arg)
{
    free(o->fields_arg);
    if (!(o->fields_arg = strdup(arg)))
        return -ENOMEM;
    o->nfields = 0;
    char *save = NULL;
    for (char *f = strtok_r(o->fields_arg, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
        if (o->nfields == TP_SOURCE_MAX_FIELDS) {
            tp_cli_usage_error(CMD, "--fields: at most %d fields", TP_SOURCE_MAX_FIELDS);
            return -1;
        }
        o->fields[o->nfields++] = f;
    }
    if (!o->nfields) {
        tp_cli_usage_error(CMD, "--fields needs at least one field");
        return -1;
    }
    return 0;
}

static int parse_part(pack_options *o, const char *arg)
{
    unsigned long long i, n;
    int used = 0;
    if (sscanf(arg, "%llu/%llu%n", &i, &n, &used) != 2 || arg[used] || !n || i >= n ||
        n > 1000000 || arg[0] == '-' || strchr(arg, '+') || strchr(arg, ' ')) {
        tp_cli_usage_error(CMD, "--part must be I/N with 0 <= I < N <= 1000000, not '%s'",
                           arg);
        return -1;
    }
    o->part = i;
    o->parts = n;
    return 0;
}

static int parse_options(int argc, char **argv, pack_options *o)
{
    static const struct option longopts[] = {
        {"format", required_argument, 0, 'f'}, {"jobs", required_argument, 0, 'j'},
        {"shard-size", required_argument, 0, 's'}, {"align", required_argument, 0, 'a'},
        {"zstd", required_argument, 0, 'z'}, {"strict", no_argument, 0, 'S'},
        {"zstd-dict", no_argument, 0, 'D'}, {"zstd-dict-size", required_argument, 0, 'Z'},
        {"force", no_argument, 0, 'F'}, {"quiet", no_argument, 0, 'q'},
        {"input", required_argument, 0, 'i'}, {"fields", required_argument, 0, 'e'},
        {"part", required_argument, 0, 'p'}, {"jpeg-seek", optional_argument, 0, 'J'},
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
        else if (c == 'i' && strcmp(optarg, "imagefolder") && strcmp(optarg, "wds") &&
                 strcmp(optarg, "tfrecord") && strcmp(optarg, "listing"))
            return tp_cli_usage_error(CMD, "--input must be imagefolder, wds, tfrecord or "
                                      "listing, not '%s'", optarg);
        else if (c == 'i')
            o->input = optarg;
        else if (c == 'e')
            rc = parse_fields(o, optarg);
        else if (c == 'p')
            rc = parse_part(o, optarg);
        else if (c == 'j')
            rc = tp_cli_u64(CMD, "--jobs", optarg, 1, 256, &o->jobs);
        else if (c == 's')
            rc = tp_cli_size(CMD, "--shard-size", optarg, 4096, &o->shard_bytes);
        else if (c == 'a')
            rc = tp_cli_u64(CMD, "--align", optarg, 1, 65536, &o->align);
        else if (c == 'z')
            rc = tp_cli_u64(CMD, "--zstd", optarg, 1, 22, &o->zstd);
        else if (c == 'J')
            rc = optarg ? tp_cli_u64(CMD, "--jpeg-seek", optarg, 1, 4096, &o->jpeg_seek)
                        : (o->jpeg_seek = TP_PACK_SEEK_COLUMNS, 0);
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

static void *worker(void *arg)
{
    pack_job *j = arg;
    tp_zstd *z = NULL;
    if (j->o->zstd && tp_zstd_create(&z) < 0)
        z = NULL; /* stored uncompressed then: still correct, only larger */
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (!j->stop && !j->ended && j->next_claim >= j->next_write + j->window)
            pthread_cond_wait(&j->space, &j->mu);
        if (j->stop || j->ended)
            break;
        /* Samples are taken from the source under the lock, so their order is the
         * source's; reading a value's file and everything after runs unlocked. */
        size_t i = j->next_claim;
        slot *s = &j->slots[i % j->window];
        int rc = tp_source_next(j->src, &s->sample, &j->src_err);
        if (rc != 1) {
            j->ended = true;
            j->total = i;
            j->src_rc = rc;
            pthread_cond_broadcast(&j->ready);
            pthread_cond_broadcast(&j->space);
            break;
        }
        j->next_claim++;
        pthread_mutex_unlock(&j->mu);
        s->rec = NULL; /* `ready` is only touched under the lock */
        s->len = s->checksum = s->src_bytes = s->seek_in = s->seek_out = 0;
        s->seek_done = s->seek_kept = 0;
        s->why[0] = '\0';
        tp__pack_process(j, z, s);
        pthread_mutex_lock(&j->mu);
        s->ready = true;
        pthread_cond_broadcast(&j->ready);
    }
    pthread_mutex_unlock(&j->mu);
    tp_zstd_destroy(z);
    return NULL;
}

/* Waits for sample `i`: its slot, or NULL when the source ended before it. */
static slot *wait_slot(pack_job *j, size_t i)
{
    pthread_mutex_lock(&j->mu);
    slot *s = &j->slots[i % j->window];
    while (!s->ready && !(j->ended && i >= j->total))
        pthread_cond_wait(&j->ready, &j->mu);
    if (!s->ready)
        s = NULL;
    pthread_mutex_unlock(&j->mu);
    return s;
}

/* Frees the slot for the workers after the writer is done with it. */
static void release_slot(pack_job *j, slot *s)
{
    free(s->rec);
    s->rec = NULL;
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

static int warn_input(void *ctx, const char *where, const char *why)
{
    const pack_options *o = ctx;
    if (o->strict) {
        tp_cli_error(CMD, "%s: %s (--strict)", where, why);
        return 1;
    }
    tp_cli_warn(CMD, "skipping %s: %s", where, why);
    return 0;
}

static void note_input(void *ctx, const char *msg)
{
    (void)ctx;
    tp_cli_warn(CMD, "%s", msg);
}

/* The input, or with `whole` all of it whatever --part says (the dictionary is trained
 * on the same samples by every part, so that the parts can be merged). */
static int open_source(const pack_options *o, bool whole, tp_source **src)
{
    tp_source_options so = {.fields = o->fields, .nfields = o->nfields,
                            .warn = whole ? NULL : warn_input, .warn_ctx = (void *)o,
                            .note = whole ? NULL : note_input, .part = whole ? 0 : o->part,
                            .parts = whole ? 0 : o->parts};
    tp_error err = {0};
    int rc = tp_source_open(o->src, o->input, &so, src, &err);
    if (rc < 0 && rc != TP_SOURCE_STOPPED)
        tp_cli_error(CMD, "%s", err.msg);
    return rc;
}

#define DICT_SAMPLES 1000
#define DICT_SAMPLE_BYTES (64u << 20)

/* Trains the dictionary on the byte and image values of up to DICT_SAMPLES samples spread
 * evenly over the input (the same ones for any --jobs, so the output stays
 * byte-identical), read through a second pass of the source. */
static int train_dict(const pack_options *o, pack_job *j)
{
    size_t n = DICT_SAMPLES, used = 0, total = 0, cap = DICT_SAMPLES * TP_SOURCE_MAX_FIELDS;
    unsigned char *all = malloc(DICT_SAMPLE_BYTES);
    size_t *sizes = malloc(cap * sizeof(size_t));
    j->dict_bytes = malloc(o->dict_size);
    tp_source *src = NULL;
    int rc = all && sizes && j->dict_bytes ? open_source(o, true, &src) : -ENOMEM;
    uint64_t count = rc == 0 ? src->count : 0, step = count > n ? count / n : 1;
    tp_source_sample smp;
    tp_source_sample_init(&smp);
    tp_error err = {0};
    for (uint64_t k = 0; rc == 0 && used < cap; k++) {
        int got = tp_source_next(src, &smp, &err);
        if (got != 1) {
            rc = got < 0 ? got : 0;
            break;
        }
        if (k % step)
            continue;
        for (size_t f = 0; f < src->nfields && used < cap; f++) {
            const tp_source_value *v = &smp.v[f];
            if (src->fields[f].kind == TP_FIELD_INT64 || !v->present)
                continue;
            char *data = NULL;
            size_t len = v->len;
            if (v->path && tp__read_file(v->path, MAX_INPUT, &data, &len) < 0)
                continue; /* unusable inputs are reported when they are packed */
            if (total + len <= DICT_SAMPLE_BYTES) {
                memcpy(all + total, v->path ? (unsigned char *)data : v->data, len);
                total += len;
                sizes[used++] = len;
            }
            free(data);
        }
    }
    tp_source_sample_free(&smp);
    tp_source_close(src);
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

static int open_writer(const pack_options *o, const pack_job *j, tp_dataset_writer **w)
{
    tp_field_info fields[TP_SOURCE_MAX_FIELDS];
    const tp_source *src = j->src;
    for (size_t f = 0; f < src->nfields; f++) {
        fields[f] = src->fields[f];
        if (fields[f].kind != TP_FIELD_INT64)
            fields[f].zstd_level = (int)o->zstd;
    }
    /* The id derives from the inputs and options, so equal inputs give equal bytes. */
    char opts[128];
    snprintf(opts, sizeof(opts), "%d %llu %llu %llu %d %llu", (int)o->format,
             (unsigned long long)o->align, (unsigned long long)o->shard_bytes,
             (unsigned long long)o->zstd, (int)o->dict, (unsigned long long)o->dict_size);
    if (o->parts)
        snprintf(opts + strlen(opts), sizeof(opts) - strlen(opts), " part %llu/%llu",
                 (unsigned long long)o->part, (unsigned long long)o->parts);
    char *source = malloc(strlen(src->location) + 48);
    if (!source)
        return -ENOMEM;
    strcpy(source, src->location);
    if (o->parts) /* merge recognises its parts by this ending */
        sprintf(source + strlen(source), " part %llu/%llu", (unsigned long long)o->part,
                (unsigned long long)o->parts);
    uint64_t id[2] = {src->listing_hash, tp__hash64(opts, strlen(opts))};
    for (size_t f = 0; o->nfields && f < src->nfields; f++) { /* the chosen fields */
        uint64_t parts[2] = {id[1], tp__hash64(o->fields[f], strlen(o->fields[f]))};
        id[1] = tp__hash64(parts, sizeof(parts));
    }
    unsigned char idb[TP_DATASET_ID_BYTES];
    tp__put64(idb, id[0]);
    tp__put64(idb + 8, id[1] ^ id[0]);
    tp_dataset_writer_options wo = {
        .format = o->format, .align = (uint32_t)o->align, .shard_bytes = o->shard_bytes,
        .fields = fields, .nfields = src->nfields, .classes = (const char *const *)src->classes,
        .nclasses = src->nclasses, .id = idb, .source = source, .replace = o->force,
        .zstd_dict = j->dict_bytes, .zstd_dict_len = j->dict_len};
    tp_error err;
    int rc = tp_dataset_writer_create(w, o->dst, &wo, &err);
    if (rc < 0)
        tp_cli_error(CMD, "%s", err.msg);
    free(source);
    return rc;
}

typedef struct pack_totals {
    uint64_t samples, src_bytes, skipped;
    uint64_t seek_in, seek_out, seek_done, seek_kept;
} pack_totals;

/* Appends every sample in order. @return : 0, or -1 after printing why it stopped. */
static int write_all(pack_job *j, tp_dataset_writer *w, pack_totals *t)
{
    tp_progress prog;
    if (!j->o->quiet)
        tp_progress_start(&prog, j->src->count, "samples");
    int rc = 0;
    slot *s;
    for (size_t i = 0; rc == 0 && (s = wait_slot(j, i)) != NULL; i++) {
        tp_error err;
        if (interrupted) {
            tp_cli_error(CMD, "interrupted; nothing was written to %s", j->o->dst);
            rc = -1;
        } else if (!s->rec) {
            t->skipped++;
            rc = warn_input((void *)j->o, s->sample.where, s->why) ? -1 : 0;
        } else if (tp__writer_append_record(w, s->rec, s->len, s->checksum, &err) < 0) {
            tp_cli_error(CMD, "%s", err.msg);
            rc = -1;
        } else {
            t->samples++;
            t->src_bytes += s->src_bytes;
            t->seek_in += s->seek_in;
            t->seek_out += s->seek_out;
            t->seek_done += s->seek_done;
            t->seek_kept += s->seek_kept;
        }
        release_slot(j, s);
        if (!j->o->quiet)
            tp_progress_update(&prog, i + 1, t->src_bytes);
    }
    if (!j->o->quiet)
        tp_progress_end(&prog);
    if (rc == 0 && j->src_rc == TP_SOURCE_STOPPED)
        rc = -1; /* --strict: the source said why */
    else if (rc == 0 && j->src_rc < 0) {
        tp_cli_error(CMD, "%s", j->src_err.msg);
        rc = -1;
    } else if (rc == 0 && interrupted) {
        tp_cli_error(CMD, "interrupted; nothing was written to %s", j->o->dst);
        rc = -1;
    }
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
    return rc;
}

static int pack(const pack_options *o, tp_source *src, pack_totals *t)
{
    pack_job j = {.o = o, .src = src, .window = o->jobs * 8};
    tp_dataset_writer *w = NULL;
    j.slots = calloc(j.window, sizeof(slot));
    int rc = j.slots ? 0 : -1;
    if (rc == 0 && o->dict)
        rc = train_dict(o, &j);
    if (rc == 0)
        rc = open_writer(o, &j, &w);
    if (rc == 0) {
        pthread_mutex_init(&j.mu, NULL);
        pthread_cond_init(&j.ready, NULL);
        pthread_cond_init(&j.space, NULL);
        rc = run_workers(&j, w, t);
        pthread_cond_destroy(&j.ready);
        pthread_cond_destroy(&j.space);
        pthread_mutex_destroy(&j.mu);
    }
    tp_error err;
    if (rc == 0 && t->samples == 0 && !o->parts) { /* a part may be empty */
        tp_cli_error(CMD, "no usable samples in %s", o->src);
        rc = -1;
    }
    if (rc == 0 && tp_dataset_writer_finish(w, &err) < 0) {
        tp_cli_error(CMD, "%s", err.msg);
        rc = -1;
    }
    tp_dataset_writer_destroy(w);
    for (size_t i = 0; j.slots && i < j.window; i++) {
        free(j.slots[i].rec); /* slots a stopped run left filled */
        tp_source_sample_free(&j.slots[i].sample);
    }
    free(j.slots);
    tp_zstd_dict_destroy(j.dict);
    free(j.dict_bytes);
    return rc < 0 ? -1 : 0;
}

int tp_cmd_pack(int argc, char **argv)
{
    if (tp_pack_wants_tokens(argc, argv))
        return tp_cmd_pack_tokens(argc, argv);
    pack_options o;
    int rc = parse_options(argc, argv, &o);
    if (rc) {
        free(o.fields_arg);
        return rc;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    double start = tp_cli_now();
    tp_source *src = NULL;
    rc = open_source(&o, false, &src);
    pack_totals t = {0};
    if (rc == 0)
        rc = pack(&o, src, &t);
    double secs = TP_MAX(tp_cli_now() - start, 1e-9);
    if (rc == 0 && !o.quiet) {
        uint64_t skipped = t.skipped + src->skipped;
        char from[96] = "";
        int k = src->nclasses ? snprintf(from, sizeof(from), " from %zu classes", src->nclasses)
                              : 0;
        if (o.parts)
            snprintf(from + k, sizeof(from) - (size_t)k, " (part %llu of %llu)",
                     (unsigned long long)o.part, (unsigned long long)o.parts);
        printf("packed %llu samples (%.1f MB of input)%s into %s in %.2f s: %.0f samples/s, "
               "%.1f MB/s; skipped %llu input%s\n",
               (unsigned long long)t.samples, (double)t.src_bytes / 1e6, from, o.dst, secs,
               (double)t.samples / secs, (double)t.src_bytes / secs / 1e6,
               (unsigned long long)skipped, skipped == 1 ? "" : "s");
        if (o.jpeg_seek)
            printf("jpeg-seek: %llu JPEGs re-encoded with restart markers (%.1f MB -> %.1f MB, "
                   "%.4f of their size), %llu kept as they were\n",
                   (unsigned long long)t.seek_done, (double)t.seek_in / 1e6,
                   (double)t.seek_out / 1e6,
                   t.seek_in ? (double)t.seek_out / (double)t.seek_in : 1.0,
                   (unsigned long long)t.seek_kept);
    }
    tp_source_close(src);
    free(o.fields_arg);
    return rc == 0 ? TP_EXIT_OK : TP_EXIT_FAIL;
}
