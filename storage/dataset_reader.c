/* The dataset reader: opens manifest.json and every shard, cross-checks them, and maps a
 * global sample id to its shard and record. Everything a shard says is checked against
 * the manifest before it is used; records are verified on every read. */
#include "s3.h"
#include "storage.h"

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_MANIFEST (64u << 20)

struct tp_dataset {
    char *path;
    bool remote;               /* s3://: shards read through object storage */
    tp__manifest m;
    char *dict;
    size_t dict_len;
    tp__shard_reader **shards;
    uint64_t max_record;
};

/* Opens shard i after checking the file against the manifest. */
static int open_shard(const tp_dataset *ds, size_t i, tp__shard_reader **out, tp_error *err)
{
    const tp__manifest *m = &ds->m;
    const tp__manifest_shard *sh = &m->shards[i];
    tp__shard_header want = {.align = m->align, .shard_index = i,
                             .first_sample = sh->first_sample};
    memcpy(want.id, m->id, sizeof(want.id));
    if (sh->has_origin) { /* adopted by a merge: its header says where it was written */
        want.shard_index = sh->origin_index;
        want.first_sample = sh->origin_first;
        memcpy(want.id, sh->origin_id, sizeof(want.id));
    }
    if (ds->remote)
        return m->format == TP_SHARD_LMDB
                   ? tp__error_set(err, TP_EUSAGE, "%s: LMDB shards cannot be read from "
                                   "object storage (pack it with --format tpr)", ds->path)
                   : tp__tpr_reader_open_s3(out, ds->path, sh->file, &want, sh->samples,
                                            sh->bytes, err);
    char *path = tp__path_join(ds->path, sh->file);
    if (!path)
        return tp__error_set(err, -ENOMEM, "out of memory");
    /* Checked before anything maps the file: touching a mapping past the end of a
     * truncated file would raise SIGBUS. */
    struct stat st;
    int rc = stat(path, &st) < 0 ? -errno : !S_ISREG(st.st_mode) ? -EINVAL
             : (uint64_t)st.st_size != sh->bytes ? 1 : 0;
    if (rc == -EINVAL) {
        free(path);
        return tp__error_set(err, TP_ECORRUPT, "%s/%s: not a regular file", ds->path,
                             sh->file);
    }
    if (rc != 0) {
        rc = rc < 0 ? tp__error_set(err, rc, "%s: %s", path, tp_strerror(rc))
                    : tp__error_set(err, (uint64_t)st.st_size < sh->bytes ? TP_ETRUNCATED
                                                                           : TP_ECORRUPT,
                                    "%s: %llu bytes, the manifest says %llu", path,
                                    (unsigned long long)st.st_size,
                                    (unsigned long long)sh->bytes);
        free(path);
        return rc;
    }
    rc = m->format == TP_SHARD_LMDB
                 ? tp__lmdb_reader_open(out, path, &want, sh->samples, err)
                 : tp__tpr_reader_open(out, path, &want, sh->samples, err);
    free(path);
    return rc;
}

static int open_shards(tp_dataset *ds, tp_error *err)
{
    const tp__manifest *m = &ds->m;
    ds->shards = calloc(m->nshards + 1, sizeof(*ds->shards));
    if (!ds->shards)
        return tp__error_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < m->nshards; i++) {
        TP_TRY(open_shard(ds, i, &ds->shards[i], err));
        ds->max_record = TP_MAX(ds->max_record, ds->shards[i]->max_record);
    }
    return 0;
}

#define WALK_DONE UINT32_MAX /* the child's last word: every shard walked */
#define WALK_SECONDS 600

/* Leaves the child of check_lmdb only the descriptor `keep` (as 3) and 0-2, so it holds
 * none of the parent's sockets, pipes or files open after the parent is gone. */
static void keep_only(int keep)
{
    if (keep != 3 && dup2(keep, 3) < 0)
        _exit(2);
    if (syscall(SYS_close_range, 4u, ~0u, 0u) < 0) {
        long max = sysconf(_SC_OPEN_MAX);
        for (long fd = 4; fd < (max > 0 ? max : 4096); fd++)
            close((int)fd);
    }
}

/* The child of check_lmdb: opens every shard and looks up every record as the reader
 * will, telling the parent which shard it is at, and at the end that it finished. */
static void lmdb_walk(const tp_dataset *ds, int progress, pid_t parent)
{
    /* Die of a crash rather than through a handler the parent installed, leave no core
     * behind, and go with the parent. */
    static const int defaults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTERM,
                                   SIGINT, SIGHUP, SIGPIPE, SIGALRM};
    for (size_t i = 0; i < TP_ARRAY_LEN(defaults); i++)
        signal(defaults[i], SIG_DFL);
    setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0});
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(2);
    keep_only(progress);
    alarm(WALK_SECONDS);
    for (uint32_t i = 0; i < ds->m.nshards; i++) {
        if (write(3, &i, sizeof(i)) != (ssize_t)sizeof(i))
            _exit(2);
        tp__shard_reader *r;
        if (open_shard(ds, i, &r, NULL) < 0)
            continue; /* the parent finds and reports it */
        for (uint64_t k = 0; k < r->records; k++) {
            tp_sample_location loc;
            r->ops->locate(r, k, &loc, NULL);
        }
        r->ops->close(r);
    }
    uint32_t done = WALK_DONE;
    _exit(write(3, &done, sizeof(done)) == (ssize_t)sizeof(done) ? 0 : 2);
}

/* liblmdb trusts the pages of a file it opens: a corrupt LMDB shard can make it divide
 * by zero or read past its map, killing the process. So LMDB shards are first opened
 * and walked, every key looked up, in a child process. The walk passes only when the
 * child says it finished; a shard that kills the child is reported as corrupt. This
 * process then opens shards the child got through, making the same lookups on the same
 * bytes. */
static int check_lmdb(const tp_dataset *ds, tp_error *err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return tp__error_set(err, -errno, "%s: pipe: %s", ds->path, strerror(errno));
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return tp__error_set(err, -e, "%s: cannot start the LMDB check: %s", ds->path,
                             strerror(e));
    }
    if (pid == 0) {
        close(p[0]);
        lmdb_walk(ds, p[1], parent);
    }
    close(p[1]);
    uint32_t at = 0, i;
    bool done = false;
    ssize_t n;
    while ((n = read(p[0], &i, sizeof(i))) == (ssize_t)sizeof(i) || (n < 0 && errno == EINTR))
        if (n > 0 && i == WALK_DONE)
            done = true;
        else if (n > 0)
            at = i;
    close(p[0]);
    int status = 0;
    pid_t w;
    while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (done) /* its last act: whatever waitpid says (it fails if SIGCHLD is ignored) */
        return 0;
    const char *file = at < ds->m.nshards ? ds->m.shards[at].file : "?";
    if (w == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        return tp__error_set(err, -ETIMEDOUT, "%s/%s: the LMDB check did not finish in %d s",
                             ds->path, file, WALK_SECONDS);
    if (w == pid && WIFSIGNALED(status))
        return tp__error_set(err, TP_ECORRUPT, "%s/%s: corrupt LMDB shard: reading its "
                             "pages killed the checking process (%s)", ds->path, file,
                             strsignal(WTERMSIG(status)));
    char how[64];
    if (w == pid)
        snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(status));
    else
        snprintf(how, sizeof(how), "%s", strerror(errno));
    return tp__error_set(err, TP_ECORRUPT, "%s/%s: corrupt LMDB shard: the checking process "
                         "ended without finishing (%s)", ds->path, file, how);
}

static int load_manifest(tp_dataset *ds, tp_error *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = tp__location_get(ds->path, "manifest.json", MAX_MANIFEST, &text, &len, err);
    if (rc == -ENOENT)
        rc = tp__error_set(err, TP_ENODATASET, "%s: not a dataset (no manifest.json)",
                           ds->path);
    else if (rc == 0) {
        rc = tp__manifest_parse(text, len, &ds->m, err);
        if (rc < 0 && err) { /* prefix the dataset path to the parser's message */
            size_t cap = sizeof(err->msg) - 1, mlen = strlen(err->msg);
            size_t p = TP_MIN(strlen(ds->path) + 1, cap), keep = TP_MIN(mlen, cap - p);
            memmove(err->msg + p, err->msg, keep);
            err->msg[p + keep] = '\0';
            memcpy(err->msg, ds->path, p - 1);
            err->msg[p - 1] = '/';
        }
    }
    free(text);
    return rc;
}

static int load_dict(tp_dataset *ds, tp_error *err)
{
    if (!ds->m.has_dict)
        return 0;
    char *file = tp__path_join(ds->path, TP_DICT_FILE);
    int rc = !file ? -ENOMEM
             : tp__location_get(ds->path, TP_DICT_FILE, TP_DICT_MAX, &ds->dict, &ds->dict_len,
                                err);
    if (rc == -ENOENT || rc == -ENOMEM)
        rc = tp__error_set(err, rc, "%s: %s", file ? file : TP_DICT_FILE, tp_strerror(rc));
    else if (rc == 0 && (ds->dict_len != ds->m.dict_bytes ||
             tp__hash64(ds->dict, ds->dict_len) != ds->m.dict_checksum))
        rc = tp__error_set(err, TP_ECORRUPT, "%s: size or checksum differs from the manifest",
                           file);
    free(file);
    return rc;
}

TP_API const void *tp_dataset_zstd_dict(const tp_dataset *ds, size_t *len)
{
    *len = ds->dict_len;
    return ds->dict;
}

TP_API int tp_dataset_open(tp_dataset **out, const char *path, tp_error *err)
{
    tp_dataset *ds = calloc(1, sizeof(*ds));
    if (!ds || !(ds->path = strdup(path))) {
        free(ds);
        return tp__error_set(err, -ENOMEM, "out of memory");
    }
    ds->remote = tp_s3_is_url(path);
    for (size_t n = strlen(ds->path); ds->remote && n > 5 && ds->path[n - 1] == '/'; n--)
        ds->path[n - 1] = 0;
    int rc = load_manifest(ds, err);
    if (rc == 0)
        rc = load_dict(ds, err);
    if (rc == 0 && ds->m.format == TP_SHARD_LMDB && !ds->remote)
        rc = check_lmdb(ds, err);
    if (rc == 0)
        rc = open_shards(ds, err);
    if (rc < 0) {
        tp_dataset_close(ds);
        return rc;
    }
    *out = ds;
    return 0;
}

TP_API void tp_dataset_close(tp_dataset *ds)
{
    if (!ds)
        return;
    for (size_t i = 0; ds->shards && i < ds->m.nshards; i++)
        if (ds->shards[i])
            ds->shards[i]->ops->close(ds->shards[i]);
    free(ds->shards);
    tp__manifest_free(&ds->m);
    free(ds->dict);
    free(ds->path);
    free(ds);
}

TP_API uint64_t tp_dataset_sample_count(const tp_dataset *ds) { return ds->m.samples; }
TP_API tp_shard_format tp_dataset_format(const tp_dataset *ds) { return ds->m.format; }
TP_API uint32_t tp_dataset_align(const tp_dataset *ds) { return ds->m.align; }
TP_API const unsigned char *tp_dataset_id(const tp_dataset *ds) { return ds->m.id; }
TP_API const char *tp_dataset_source(const tp_dataset *ds) { return ds->m.source; }

const tp__manifest *tp__dataset_manifest(const tp_dataset *ds) { return &ds->m; }
TP_API size_t tp_dataset_field_count(const tp_dataset *ds) { return ds->m.nfields; }
TP_API size_t tp_dataset_class_count(const tp_dataset *ds) { return ds->m.nclasses; }
TP_API size_t tp_dataset_shard_count(const tp_dataset *ds) { return ds->m.nshards; }
TP_API uint64_t tp_dataset_max_record(const tp_dataset *ds) { return ds->max_record; }

TP_API const tp_field_info *tp_dataset_field(const tp_dataset *ds, size_t i)
{
    return i < ds->m.nfields ? &ds->m.fields[i] : NULL;
}

TP_API int tp_dataset_field_index(const tp_dataset *ds, const char *name)
{
    for (size_t i = 0; i < ds->m.nfields; i++)
        if (!strcmp(ds->m.fields[i].name, name))
            return (int)i;
    return TP_ENOFIELD;
}

TP_API const char *tp_dataset_class_name(const tp_dataset *ds, size_t i)
{
    return i < ds->m.nclasses ? ds->m.classes[i] : NULL;
}

TP_API int tp_dataset_shard_info(const tp_dataset *ds, size_t i, tp_shard_info *out)
{
    TP_RETURN_IF(i >= ds->m.nshards, TP_EUSAGE);
    const tp__shard_reader *r = ds->shards[i];
    *out = (tp_shard_info){.path = r->path, .fd = r->fd, .object = r->obj,
                           .format = ds->m.format,
                           .align = ds->m.align,
                           .first_sample = ds->m.shards[i].first_sample,
                           .samples = r->records, .bytes = r->bytes};
    return 0;
}

/* Binary search for the shard holding global sample `id`. */
static size_t find_shard(const tp_dataset *ds, uint64_t id)
{
    size_t lo = 0, hi = ds->m.nshards;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (ds->m.shards[mid].first_sample <= id)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

TP_API int tp_dataset_locate(const tp_dataset *ds, uint64_t id, tp_sample_location *loc,
                             tp_error *err)
{
    if (id >= ds->m.samples)
        return tp__error_set(err, TP_EUSAGE, "%s: sample %" PRIu64 " out of range (%" PRIu64
                             " samples)", ds->path, id, ds->m.samples);
    size_t s = find_shard(ds, id);
    const tp__shard_reader *r = ds->shards[s];
    loc->shard = (uint32_t)s;
    return r->ops->locate(r, id - ds->m.shards[s].first_sample, loc, err);
}

TP_API int tp_dataset_check_record(const tp_dataset *ds, const tp_record *rec, tp_error *err)
{
    for (uint32_t i = 0; i < rec->nfields; i++) {
        const tp_field_info *f = &ds->m.fields[rec->fields[i].field];
        uint64_t want;
        if (rec->fields[i].compression == TP_COMPRESS_ZSTD_DICT && !ds->dict)
            return tp__error_set(err, TP_ECORRUPT, "field '%s' needs the dataset's zstd "
                                 "dictionary, and the dataset has none", f->name);
        if (tp__field_raw_size(f, &want) < 0 || (want && rec->fields[i].raw_size != want))
            return tp__error_set(err, TP_ECORRUPT, "field '%s' holds %llu bytes, its %s kind "
                                 "needs %llu", f->name,
                                 (unsigned long long)rec->fields[i].raw_size,
                                 tp_field_kind_name(f->kind), (unsigned long long)want);
    }
    return 0;
}

TP_API int tp_dataset_read(const tp_dataset *ds, uint64_t id, void *buf, size_t cap,
                           size_t *len, tp_error *err)
{
    tp_sample_location loc;
    TP_TRY(tp_dataset_locate(ds, id, &loc, err));
    const tp__shard_reader *r = ds->shards[loc.shard];
    uint64_t local = id - ds->m.shards[loc.shard].first_sample;
    TP_TRY(r->ops->read(r, local, buf, cap, len, err));
    tp_record rec;
    tp_error detail;
    int rc = tp_record_parse(buf, *len, loc.checksum, (uint32_t)ds->m.nfields, &rec, &detail);
    if (rc == 0)
        rc = tp_dataset_check_record(ds, &rec, &detail);
    if (rc < 0)
        return tp__error_set(err, rc, "%s: sample %" PRIu64 " (record %" PRIu64 " at offset %"
                             PRIu64 "): %s", r->path, id, local, loc.offset, detail.msg);
    return 0;
}
