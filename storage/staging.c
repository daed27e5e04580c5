/* Publishing a directory atomically, for every dataset writer: everything is written into
 * a locked staging directory "<path>.partial", the manifest last (temp file, fsync,
 * rename), and only then is the directory moved into place, so neither a crash nor a full
 * disk can leave something at <path> that opens as a dataset. */
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

int tp__staging_open(tp__staging *st, const char *path, bool replace, tp_error *err)
{
    *st = (tp__staging){.lock_fd = -1};
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
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    free(st->path);
    free(st->dir);
    *st = (tp__staging){.lock_fd = -1};
}
