/* Publishing a directory atomically, for every dataset writer: everything is written into
 * a locked staging directory "<path>.partial", the manifest last (temp file, fsync,
 * rename), and only then is the directory moved into place, so neither a crash nor a full
 * disk can leave something at <path> that opens as a dataset. */
#include "s3.h"
#include "storage.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* A directory is one of our datasets if its manifest.json says so; a directory that
 * merely holds some other manifest.json (a web app's, say) is not, and is never replaced. */
static bool is_our_dataset(const char *path)
{
    char *file = tp__path_join(path, "manifest.json"), *text = NULL;
    size_t len;
    bool ours = false;
    if (file && tp__read_file(file, 64u << 20, &text, &len) == 0) {
        json_t *root = json_loadb(text, len, 0, NULL);
        const char *fmt = json_string_value(json_object_get(root, "format"));
        ours = fmt && (!strcmp(fmt, "turbopump-dataset") || !strcmp(fmt, TP_TOKENS_FORMAT));
        json_decref(root);
    }
    free(text);
    free(file);
    return ours;
}

/* Decides whether `path` may be written: missing, an empty directory, or (with replace)
 * an existing dataset. Anything else is refused. */
static int check_target(tp__staging *st, bool replace, tp_error *err)
{
    struct stat sb;
    if (lstat(st->path, &sb) < 0)
        return errno == ENOENT ? 0 : tp__error_set(err, -errno, "%s: %s", st->path,
                                                   strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return tp__error_set(err, -ENOTDIR, "%s exists and is not a directory", st->path);
    bool is_dataset = is_our_dataset(st->path);
    if (is_dataset && !replace)
        return tp__error_set(err, -EEXIST, "%s is already a dataset (replace it with --force)",
                             st->path);
    if (is_dataset) {
        st->replace_existing = true;
        return 0;
    }
    if (tp__dir_is_empty(st->path) != 1)
        return tp__error_set(err, -ENOTEMPTY, "%s is a non-empty directory that is not a "
                             "dataset; refusing to replace it", st->path);
    return 0;
}

static int lock_staging(tp__staging *st, tp_error *err)
{
    if (mkdir(st->dir, 0755) < 0 && errno != EEXIST)
        return tp__error_set(err, -errno, "creating %s: %s", st->dir, strerror(errno));
    st->lock_fd = open(st->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (st->lock_fd < 0)
        return tp__error_set(err, -errno, "%s: %s", st->dir, strerror(errno));
    if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0)
        return tp__error_set(err, -EBUSY, "%s is locked by another writer", st->dir);
    st->own = true;
    /* A staging directory left by an interrupted writer is stale: empty it. */
    int rc = tp__remove_contents(st->dir);
    if (rc < 0)
        return tp__error_set(err, rc, "cleaning %s: %s", st->dir, tp_strerror(rc));
    return 0;
}

/* ---- s3:// targets */

#define UPLOAD_PART ((size_t)64 << 20)

static int remote_open(tp__staging *st, const char *path, bool replace, tp_error *err)
{
    st->remote = true;
    size_t n = strlen(path);
    while (n > 5 && path[n - 1] == '/')
        n--;
    if (!(st->path = strndup(path, n)))
        return tp__error_set(err, -ENOMEM, "out of memory");
    tp_s3_object *m;
    TP_TRY(tp_s3_object_open_at(&m, st->path, "manifest.json", err));
    uint64_t size;
    tp_error herr;
    int rc = tp_s3_head(m, &size, &herr);
    tp_s3_object_close(m);
    if (rc == 0 && !replace)
        return tp__error_set(err, -EEXIST, "%s is already a dataset (replace it with --force)",
                             st->path);
    if (rc < 0 && rc != -ENOENT) {
        if (err)
            *err = herr;
        return rc;
    }
    st->replace_existing = rc == 0;
    const char *tmp = getenv("TMPDIR");
    char *dir = tp__path_join(tmp && *tmp ? tmp : "/tmp", "turbopump-upload-XXXXXX");
    if (!dir)
        return tp__error_set(err, -ENOMEM, "out of memory");
    if (!mkdtemp(dir)) {
        rc = tp__error_set(err, -errno, "creating a local staging directory %s: %s", dir,
                           strerror(errno));
        free(dir);
        return rc;
    }
    st->dir = dir;
    st->own = true;
    return 0;
}

/* Writes `len` bytes from fd (or memory) to the object: one PUT up to UPLOAD_PART, a
 * multipart upload beyond. */
static int put_object(const tp_s3_object *o, int fd, const void *data, uint64_t len,
                      tp_error *err)
{
    if (fd < 0 && len <= UPLOAD_PART)
        return tp_s3_put(o, data, (size_t)len, err);
    unsigned char *buf = fd >= 0 ? malloc(TP_MIN((uint64_t)UPLOAD_PART, TP_MAX(len, 1))) : NULL;
    if (fd >= 0 && !buf)
        return tp__error_set(err, -ENOMEM, "out of memory for an upload buffer");
    int rc = 0;
    if (len <= UPLOAD_PART) { /* fd >= 0 here */
        rc = tp__pread_all(fd, buf, (size_t)len, 0);
        rc = rc < 0 ? tp__error_set(err, rc, "reading for %s: %s", tp_s3_object_name(o),
                                    tp_strerror(rc))
                    : tp_s3_put(o, buf, (size_t)len, err);
        free(buf);
        return rc;
    }
    tp_s3_upload *u;
    if ((rc = tp_s3_upload_begin(o, &u, err)) < 0) {
        free(buf);
        return rc;
    }
    for (uint64_t at = 0; rc == 0 && at < len; at += UPLOAD_PART) {
        size_t k = (size_t)TP_MIN((uint64_t)UPLOAD_PART, len - at);
        const void *part = (const unsigned char *)data + at;
        if (fd >= 0) {
            rc = tp__pread_all(fd, buf, k, at);
            if (rc < 0)
                rc = tp__error_set(err, rc, "reading for %s: %s", tp_s3_object_name(o),
                                   tp_strerror(rc));
            part = buf;
        }
        if (rc == 0)
            rc = tp_s3_upload_part(u, part, k, err);
    }
    free(buf);
    if (rc < 0) {
        tp_s3_upload_abort(u);
        return rc;
    }
    return tp_s3_upload_finish(u, err);
}

/* A replaced dataset goes first: its manifest is removed before anything of the new one
 * is written, so that the old one never opens with new shards under it. */
static int remove_replaced(tp__staging *st, tp_error *err)
{
    if (!st->replace_existing)
        return 0;
    tp_s3_object *m;
    TP_TRY(tp_s3_object_open_at(&m, st->path, "manifest.json", err));
    int rc = tp_s3_delete(m, err);
    tp_s3_object_close(m);
    if (rc == 0)
        st->replace_existing = false;
    return rc;
}

static int note_upload(tp__staging *st, const char *name, tp_error *err)
{
    char **grown = realloc(st->uploaded, (st->nuploaded + 1) * sizeof(char *));
    if (!grown || !(grown[st->nuploaded] = strdup(name))) {
        if (grown)
            st->uploaded = grown;
        return tp__error_set(err, -ENOMEM, "out of memory");
    }
    st->uploaded = grown;
    st->nuploaded++;
    return 0;
}

int tp__staging_upload(tp__staging *st, const char *name, const char *from, tp_error *err)
{
    if (!st->remote)
        return 0;
    TP_TRY(remove_replaced(st, err));
    tp_s3_object *o;
    TP_TRY(tp_s3_object_open_at(&o, st->path, name, err));
    int rc = 0;
    if (from && tp_s3_is_url(from)) {
        tp_s3_object *src;
        if ((rc = tp_s3_object_open(&src, from, err)) == 0) {
            rc = tp_s3_copy(src, o, err);
            tp_s3_object_close(src);
        }
    } else {
        char *local = from ? strdup(from) : tp__path_join(st->dir, name);
        int fd = local ? open(local, O_RDONLY | O_CLOEXEC) : -1;
        struct stat sb;
        rc = !local ? -ENOMEM : fd < 0 || fstat(fd, &sb) < 0 ? -errno : 0;
        if (rc < 0)
            rc = tp__error_set(err, rc, "%s: %s", local ? local : name, tp_strerror(rc));
        else
            rc = put_object(o, fd, NULL, (uint64_t)sb.st_size, err);
        if (fd >= 0)
            close(fd);
        if (rc == 0 && !from)
            unlink(local);
        free(local);
    }
    tp_s3_object_close(o);
    return rc < 0 ? rc : note_upload(st, name, err);
}

int tp__staging_open(tp__staging *st, const char *path, bool replace, tp_error *err)
{
    *st = (tp__staging){.lock_fd = -1};
    if (tp_s3_is_url(path))
        return remote_open(st, path, replace, err);
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    st->path = strndup(path, n);
    st->dir = malloc(n + sizeof(".partial"));
    if (!st->path || !st->dir)
        return tp__error_set(err, -ENOMEM, "out of memory");
    sprintf(st->dir, "%s.partial", st->path);
    TP_TRY(check_target(st, replace, err));
    return lock_staging(st, err);
}

int tp__staging_write(tp__staging *st, const char *name, const void *data, size_t len,
                      tp_error *err)
{
    if (st->remote) { /* the manifest: written last, it publishes the dataset */
        TP_TRY(remove_replaced(st, err));
        tp_s3_object *o;
        TP_TRY(tp_s3_object_open_at(&o, st->path, name, err));
        int rc = put_object(o, -1, data, len, err);
        tp_s3_object_close(o);
        return rc;
    }
    char tmpname[128];
    snprintf(tmpname, sizeof(tmpname), "%s.tmp", name);
    char *tmp = tp__path_join(st->dir, tmpname);
    char *final = tp__path_join(st->dir, name);
    int rc = tmp && final ? 0 : -ENOMEM;
    int fd = rc ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (rc == 0 && fd < 0)
        rc = -errno;
    if (rc == 0)
        rc = tp__write_all(fd, data, len);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, final) < 0)
        rc = -errno;
    if (rc == 0)
        rc = tp__fsync_path(st->dir);
    free(tmp);
    free(final);
    return rc ? tp__error_set(err, rc, "writing %s/%s: %s", st->dir, name, tp_strerror(rc))
              : 0;
}

/* An existing dataset is swapped out atomically with RENAME_EXCHANGE and then removed. */
int tp__staging_publish(tp__staging *st, tp_error *err)
{
    if (st->remote) { /* the manifest's upload was the publication */
        st->published = true;
        return 0;
    }
    if (!st->replace_existing) {
        if (rename(st->dir, st->path) < 0)
            return tp__error_set(err, -errno, "renaming %s to %s: %s", st->dir, st->path,
                                 strerror(errno));
    } else if (renameat2(AT_FDCWD, st->dir, AT_FDCWD, st->path, RENAME_EXCHANGE) == 0) {
        tp__remove_tree(st->dir); /* now holds the replaced dataset */
    } else {
        /* No RENAME_EXCHANGE on this file system: a short window without a dataset. */
        char *old = malloc(strlen(st->path) + 32);
        if (!old)
            return tp__error_set(err, -ENOMEM, "out of memory");
        sprintf(old, "%s.old-%d", st->path, (int)getpid());
        int rc = rename(st->path, old) < 0 ? -errno : 0;
        if (rc == 0 && rename(st->dir, st->path) < 0) {
            rc = -errno;
            rename(old, st->path); /* put the old dataset back */
        }
        if (rc == 0)
            tp__remove_tree(old);
        free(old);
        if (rc < 0)
            return tp__error_set(err, rc, "replacing %s: %s", st->path, tp_strerror(rc));
    }
    st->published = true;
    (void)tp__fsync_parent(st->path); /* best effort: the rename itself is done */
    return 0;
}

void tp__staging_close(tp__staging *st, bool finished)
{
    if (st->own && !finished && !st->published)
        tp__remove_tree(st->dir);
    if (st->remote && st->own)
        tp__remove_tree(st->dir); /* uploaded already, or abandoned */
    for (size_t i = 0; i < st->nuploaded; i++) {
        tp_s3_object *o;
        /* an unpublished dataset's shards are not left behind (best effort) */
        if (!finished && !st->published &&
            tp_s3_object_open_at(&o, st->path, st->uploaded[i], NULL) == 0) {
            tp_s3_delete(o, NULL);
            tp_s3_object_close(o);
        }
        free(st->uploaded[i]);
    }
    free(st->uploaded);
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    free(st->path);
    free(st->dir);
    *st = (tp__staging){.lock_fd = -1};
}
