/* Token ids in a NumPy .npy file: a 1-D array of uint16, uint32, int32 or int64 (what
 * tokenizers and np.save give), parsed by npy.c's header parser and then read as a token
 * stream (tokens_bin.c) from where the header ends. */
#include "tokens_source.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER (65536 + 12)

/* Parses the header of the open file `fd`. */
static int header(const char *path, int fd, tp_npy *h, tp_error *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return tp__error_set(err, -errno, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return tp__error_set(err, TP_EUSAGE, "%s: not a regular file", path);
    unsigned char *head = malloc(MAX_HEADER);
    if (!head)
        return tp__error_set(err, -ENOMEM, "out of memory");
    size_t len = (size_t)TP_MIN((uint64_t)st.st_size, (uint64_t)MAX_HEADER);
    int rc = tp__pread_all(fd, head, len, 0);
    tp_error e = {0};
    if (rc < 0)
        rc = tp__error_set(err, rc, "%s: %s", path, tp_strerror(rc));
    else if (tp__npy_parse_as(head, len, (uint64_t)st.st_size, UINT64_MAX, TP_NPY_TOKENS, h,
                              &e) < 0)
        rc = tp__error_set(err, TP_EUSAGE, "%s: %s", path, e.msg);
    else if (h->ndim != 1 || (h->dtype != TP_DTYPE_UINT16 && h->dtype != TP_DTYPE_UINT32 &&
                              h->dtype != TP_DTYPE_INT32 && h->dtype != TP_DTYPE_INT64))
        rc = tp__error_set(err, TP_EUSAGE, "%s: token ids must be a 1-D array of uint16, "
                           "uint32, int32 or int64, not %u-D %s", path, h->ndim,
                           tp_dtype_name(h->dtype));
    free(head);
    return rc;
}

int tp__token_npy_dtype(const char *path, tp_dtype *out, tp_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tp__error_set(err, -errno, "%s: %s", path, strerror(errno));
    tp_npy h;
    int rc = header(path, fd, &h, err);
    close(fd);
    if (rc == 0)
        *out = h.dtype;
    return rc;
}

int tp__token_npy_open(const char *path, tp__token_reader **out, tp_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tp__error_set(err, -errno, "%s: %s", path, strerror(errno));
    tp_npy h;
    int rc = header(path, fd, &h, err);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return tp__token_stream_open(path, fd, h.offset, h.bytes, h.dtype, out, err);
}
