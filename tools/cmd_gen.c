/* `turbopump gen`: synthetic data for demos, tests and benchmarks, the same bytes for the
 * same seed. `gen imagefolder` writes an ImageFolder tree of photo-like JPEGs whose sizes
 * and decode cost resemble ImageNet's; `gen tensors` writes a packed dataset of fixed-size
 * raw records with labels, for IO-bound benchmarks. */
#include "cli.h"
#include "imagesynth.h"
#include "storage.h"

#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "gen"
#define CLS_BYTES 8
#define TENSOR_OVERHEAD (TP_RECORD_HEADER + 2 * TP_RECORD_ENTRY + CLS_BYTES)

void tp_usage_gen(FILE *out)
{
    fprintf(out,
            "Usage: turbopump gen imagefolder DIR --samples N [--classes C] [--seed S]\n"
            "                     [--quality Q] [--jobs J] [--force]\n"
            "       turbopump gen tensors DST --samples N (--record-bytes B | --shape HxWxC)\n"
            "                     [--classes C] [--seed S] [--format record|lmdb]\n"
            "                     [--align N] [--shard-size SIZE] [--force]\n\n"
            "imagefolder: write N photo-like JPEGs as DIR/classNNNN/NNNNNNN.jpg, sample k in\n"
            "  class k mod C; sizes vary around 500x375 (about 80-150 KiB at quality 90).\n"
            "tensors: write a dataset of N records with fields 'cls' (int64, k mod C) and\n"
            "  'raw' (uint8 tensor of random bytes). --record-bytes gives the size of each\n"
            "  encoded record (a multiple of 8, at least %d), so records fill aligned\n"
            "  blocks exactly;\n"
            "  --shape gives the tensor's shape instead.\n\n"
            "Options:\n"
            "  --samples N   number of samples (required)\n"
            "  --classes C   number of classes (default 10)\n"
            "  --seed S      generator seed (default 0); same seed, same bytes\n"
            "  --quality Q   JPEG quality 1-100 (default 90)\n"
            "  --jobs J      threads (default: number of CPUs)\n"
            "  --force       write into a non-empty DIR / replace an existing dataset\n"
            "  -h, --help    show this help\n", TENSOR_OVERHEAD + 8);
}

typedef struct gen_options {
    const char *what, *dst;
    uint64_t samples, classes, seed, quality, jobs, record_bytes, align, shard_bytes;
    int64_t shape[3];
    uint32_t ndim;
    tp_shard_format format;
    bool force;
} gen_options;

static int parse_shape(const char *s, gen_options *o)
{
    char *end;
    o->ndim = 0;
    for (const char *p = s; *p && o->ndim < 3; p = end + (*end == 'x')) {
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 1 || v > (1 << 20) || (*end && *end != 'x'))
            return -1;
        o->shape[o->ndim++] = v;
        if (!*end)
            return 0;
    }
    return -1;
}

static int gen_option(int c, gen_options *o)
{
    switch (c) {
    case 'n': return tp_cli_u64(CMD, "--samples", optarg, 1, UINT64_C(1) << 40, &o->samples);
    case 'c': return tp_cli_u64(CMD, "--classes", optarg, 1, 1u << 20, &o->classes);
    case 's': return tp_cli_u64(CMD, "--seed", optarg, 0, UINT64_MAX, &o->seed);
    case 'q': return tp_cli_u64(CMD, "--quality", optarg, 1, 100, &o->quality);
    case 'j': return tp_cli_u64(CMD, "--jobs", optarg, 1, 256, &o->jobs);
    case 'b': return tp_cli_u64(CMD, "--record-bytes", optarg, TENSOR_OVERHEAD + 8,
                                UINT64_C(1) << 31, &o->record_bytes);
    case 'a': return tp_cli_u64(CMD, "--align", optarg, 1, 65536, &o->align);
    case 'z': return tp_cli_size(CMD, "--shard-size", optarg, 4096, &o->shard_bytes);
    case 'F': o->force = true; return 0;
    case 'S':
        if (parse_shape(optarg, o) == 0)
            return 0;
        tp_cli_usage_error(CMD, "--shape needs up to 3 dimensions like 224x224x3");
        return -1;
    case 'f':
        if (!strcmp(optarg, "record") || !strcmp(optarg, "lmdb")) {
            o->format = optarg[0] == 'l' ? TP_SHARD_LMDB : TP_SHARD_RECORD;
            return 0;
        }
        tp_cli_usage_error(CMD, "--format must be 'record' or 'lmdb'");
        return -1;
    default: tp_cli_usage_error(CMD, "unknown option"); return -1;
    }
}

static int parse_gen(int argc, char **argv, gen_options *o)
{
    static const struct option longopts[] = {
        {"samples", required_argument, 0, 'n'}, {"classes", required_argument, 0, 'c'},
        {"seed", required_argument, 0, 's'}, {"quality", required_argument, 0, 'q'},
        {"jobs", required_argument, 0, 'j'}, {"record-bytes", required_argument, 0, 'b'},
        {"shape", required_argument, 0, 'S'}, {"format", required_argument, 0, 'f'},
        {"align", required_argument, 0, 'a'}, {"shard-size", required_argument, 0, 'z'},
        {"force", no_argument, 0, 'F'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    *o = (gen_options){.classes = 10, .quality = 90, .jobs = tp_cli_cpus(), .align = 4096,
                       .shard_bytes = 256ull << 20, .format = TP_SHARD_RECORD};
    int c;
    while ((c = getopt_long(argc, argv, "hj:", longopts, NULL)) != -1) {
        if (c == 'h') {
            tp_usage_gen(stdout);
            exit(TP_EXIT_OK);
        }
        if (gen_option(c, o) < 0)
            return TP_EXIT_USAGE;
    }
    if (argc - optind != 2)
        return tp_cli_usage_error(CMD, "needs a kind (imagefolder or tensors) and a path");
    o->what = argv[optind];
    o->dst = argv[optind + 1];
    if (!o->samples)
        return tp_cli_usage_error(CMD, "--samples is required");
    if (o->align & (o->align - 1))
        return tp_cli_usage_error(CMD, "--align must be a power of two");
    if (o->record_bytes % 8)
        return tp_cli_usage_error(CMD, "--record-bytes must be a multiple of 8 (records are "
                                       "padded to 8 bytes)");
    return 0;
}

/* ---------------------------------------------------------------- imagefolder */

typedef struct image_job {
    const gen_options *o;
    atomic_uint_fast64_t next, done, bytes;
    atomic_int failed;
    pthread_mutex_t mu;
} image_job;

static int write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = tp__write_all(fd, data, len);
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

static int make_image(image_job *j, uint64_t k)
{
    const gen_options *o = j->o;
    uint32_t cls = (uint32_t)(k % o->classes);
    unsigned char *jpeg;
    size_t len;
    int rc = tp__synth_jpeg(o->seed, cls, (uint32_t)o->classes, k, (int)o->quality, &jpeg,
                            &len);
    char path[4096];
    snprintf(path, sizeof(path), "%s/class%04u/%07llu.jpg", o->dst, cls, (unsigned long long)k);
    if (rc == 0) {
        rc = write_file(path, jpeg, len);
        tp__synth_free(jpeg);
    }
    if (rc < 0) {
        pthread_mutex_lock(&j->mu);
        if (!atomic_exchange(&j->failed, 1))
            tp_cli_error(CMD, "writing %s: %s", path, tp_strerror(rc));
        pthread_mutex_unlock(&j->mu);
        return rc;
    }
    atomic_fetch_add(&j->bytes, len);
    atomic_fetch_add(&j->done, 1);
    return 0;
}

static void *image_worker(void *arg)
{
    image_job *j = arg;
    for (uint64_t k; !atomic_load(&j->failed) && (k = atomic_fetch_add(&j->next, 1)) <
                                                     j->o->samples;)
        if (make_image(j, k) < 0)
            break;
    return NULL;
}

static int make_dirs(const gen_options *o)
{
    if (mkdir(o->dst, 0755) < 0 && errno != EEXIST) {
        tp_cli_error(CMD, "creating %s: %s", o->dst, strerror(errno));
        return -1;
    }
    int empty = tp__dir_is_empty(o->dst);
    if (empty < 0 || (!empty && !o->force)) {
        tp_cli_error(CMD, "%s: %s", o->dst, empty < 0 ? tp_strerror(empty)
                                            : "directory is not empty (use --force to write "
                                              "into it)");
        return -1;
    }
    for (uint64_t c = 0; c < o->classes; c++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/class%04u", o->dst, (unsigned)c);
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
            tp_cli_error(CMD, "creating %s: %s", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int gen_imagefolder(const gen_options *o)
{
    if (make_dirs(o) < 0)
        return TP_EXIT_FAIL;
    image_job j = {.o = o};
    pthread_mutex_init(&j.mu, NULL);
    pthread_t threads[256];
    size_t started = 0;
    double start = tp_cli_now();
    while (started < o->jobs && pthread_create(&threads[started], NULL, image_worker, &j) == 0)
        started++;
    tp_progress prog;
    tp_progress_start(&prog, o->samples, "images");
    while (started && atomic_load(&j.done) < o->samples && !atomic_load(&j.failed)) {
        usleep(100000);
        tp_progress_update(&prog, atomic_load(&j.done), atomic_load(&j.bytes));
    }
    for (size_t i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    tp_progress_end(&prog);
    pthread_mutex_destroy(&j.mu);
    if (!started || atomic_load(&j.failed))
        return TP_EXIT_FAIL;
    double secs = TP_MAX(tp_cli_now() - start, 1e-9);
    uint64_t bytes = atomic_load(&j.bytes);
    printf("generated %llu JPEGs (%.1f MB, mean %.1f KiB) in %llu classes at %s in %.2f s "
           "(%.0f images/s)\n", (unsigned long long)o->samples, (double)bytes / 1e6,
           (double)bytes / (double)o->samples / 1024, (unsigned long long)o->classes, o->dst,
           secs, (double)o->samples / secs);
    return TP_EXIT_OK;
}

/* ---------------------------------------------------------------- tensors */

static void fill_random(unsigned char *p, size_t n, uint64_t seed, uint64_t k)
{
    uint64_t state = seed ^ (k * UINT64_C(0xd1b54a32d192ed03));
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        tp__put64(p + i, tp__splitmix64(&state));
    for (uint64_t v = tp__splitmix64(&state); i < n; i++, v >>= 8)
        p[i] = (unsigned char)v;
}

static char **class_names(uint64_t n)
{
    char **names = calloc(n + 1, sizeof(char *));
    for (uint64_t i = 0; names && i < n; i++)
        if (!(names[i] = malloc(16)) || snprintf(names[i], 16, "class%04u", (unsigned)i) < 0)
            return names;
    return names;
}

static void free_names(char **names, uint64_t n)
{
    for (uint64_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

static int open_tensor_writer(const gen_options *o, const tp_field_info *fields, char **names,
                              tp_dataset_writer **w)
{
    char params[160];
    snprintf(params, sizeof(params), "tensors %llu %llu %lld %lld %lld %d %llu %llu",
             (unsigned long long)o->samples, (unsigned long long)o->classes,
             (long long)fields[1].shape[0], (long long)o->shape[1], (long long)o->shape[2],
             (int)o->format, (unsigned long long)o->align, (unsigned long long)o->shard_bytes);
    unsigned char id[TP_DATASET_ID_BYTES];
    tp__put64(id, tp__hash64(params, strlen(params)) ^ o->seed);
    tp__put64(id + 8, tp__hash64(id, 8));
    char source[64];
    snprintf(source, sizeof(source), "gen tensors seed %llu", (unsigned long long)o->seed);
    tp_dataset_writer_options wo = {
        .format = o->format, .align = (uint32_t)o->align, .shard_bytes = o->shard_bytes,
        .fields = fields, .nfields = 2, .classes = (const char *const *)names,
        .nclasses = o->classes, .id = id, .source = source, .replace = o->force};
    tp_error err;
    if (tp_dataset_writer_create(w, o->dst, &wo, &err) < 0) {
        tp_cli_error(CMD, "%s", err.msg);
        return -1;
    }
    return 0;
}

static int write_tensors(const gen_options *o, tp_dataset_writer *w, uint64_t raw_bytes)
{
    unsigned char *raw = malloc(raw_bytes), label[CLS_BYTES];
    if (!raw) {
        tp_cli_error(CMD, "out of memory");
        return -1;
    }
    tp_progress prog;
    tp_progress_start(&prog, o->samples, "samples");
    int rc = 0;
    for (uint64_t k = 0; k < o->samples && rc == 0; k++) {
        fill_random(raw, raw_bytes, o->seed, k);
        tp__put64(label, k % o->classes);
        tp_field_value v[2] = {{.field = 0, .data = label, .size = CLS_BYTES},
                               {.field = 1, .data = raw, .size = raw_bytes}};
        tp_error err;
        if ((rc = tp_dataset_writer_append(w, v, 2, &err)) < 0)
            tp_cli_error(CMD, "%s", err.msg);
        tp_progress_update(&prog, k + 1, (k + 1) * (raw_bytes + TENSOR_OVERHEAD));
    }
    tp_progress_end(&prog);
    tp_error err;
    if (rc == 0 && (rc = tp_dataset_writer_finish(w, &err)) < 0)
        tp_cli_error(CMD, "%s", err.msg);
    free(raw);
    return rc;
}

static int gen_tensors(const gen_options *o)
{
    tp_field_info fields[2] = {{.name = "cls", .kind = TP_FIELD_INT64},
                               {.name = "raw", .kind = TP_FIELD_TENSOR, .dtype = TP_DTYPE_UINT8}};
    if (!o->record_bytes == !o->ndim)
        return tp_cli_usage_error(CMD, "tensors needs exactly one of --record-bytes and "
                                       "--shape");
    uint64_t raw_bytes = o->record_bytes ? o->record_bytes - TENSOR_OVERHEAD : 1;
    fields[1].ndim = o->ndim ? o->ndim : 1;
    for (uint32_t d = 0; d < o->ndim; d++)
        raw_bytes *= (uint64_t)o->shape[d];
    memcpy(fields[1].shape, o->shape, sizeof(o->shape));
    if (!o->ndim)
        fields[1].shape[0] = (int64_t)raw_bytes;
    char **names = class_names(o->classes);
    tp_dataset_writer *w = NULL;
    double start = tp_cli_now();
    int rc = names ? open_tensor_writer(o, fields, names, &w) : -1;
    if (rc == 0)
        rc = write_tensors(o, w, raw_bytes);
    tp_dataset_writer_destroy(w);
    free_names(names, o->classes);
    if (rc < 0)
        return TP_EXIT_FAIL;
    double secs = TP_MAX(tp_cli_now() - start, 1e-9), total = (double)o->samples *
                                                               (double)(raw_bytes + TENSOR_OVERHEAD);
    printf("generated %llu records of %llu bytes (%.1f MB) at %s in %.2f s (%.1f MB/s)\n",
           (unsigned long long)o->samples, (unsigned long long)(raw_bytes + TENSOR_OVERHEAD),
           total / 1e6, o->dst, secs, total / secs / 1e6);
    return TP_EXIT_OK;
}

int tp_cmd_gen(int argc, char **argv)
{
    gen_options o;
    int rc = parse_gen(argc, argv, &o);
    if (rc)
        return rc;
    if (!strcmp(o.what, "imagefolder"))
        return gen_imagefolder(&o);
    if (!strcmp(o.what, "tensors"))
        return gen_tensors(&o);
    return tp_cli_usage_error(CMD, "unknown kind '%s' (imagefolder or tensors)", o.what);
}
