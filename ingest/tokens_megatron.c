/* Megatron-LM indexed datasets (megatron/core/datasets/indexed_dataset.py): PREFIX.bin
 * holds the ids of every sequence back to back; PREFIX.idx describes them:
 *
 *   "MMIDIDX\0\0"  u64 version (1)  u8 dtype code  u64 sequence count S
 *   u64 document index count D      i32 x S sequence lengths (ids)
 *   i64 x S sequence byte offsets into the .bin
 *   i64 x D document indices: 0, then after each document the number of sequences so
 *           far, so document d is sequences [index[d], index[d+1])
 *   (multimodal datasets: i8 x S sequence modes, ignored here)
 *
 * Dtype codes: 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64, 7 float32,
 * 8 uint16; only the integer ones hold token ids. The index is untrusted: every count is
 * bounded by the file's size and every sequence by the .bin's before anything is read.
 * The index is mapped, not copied (it can be gigabytes); the .bin is read through a
 * window of large reads, since sequences usually follow one another. */
#include "tokens_source.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "MMIDIDX\0\0"
#define HEADER 34

static tp_dtype dtype_of_code(unsigned code)
{
    static const tp_dtype t[] = {TP_DTYPE_NONE, TP_DTYPE_UINT8, TP_DTYPE_INT8,
                                 TP_DTYPE_INT16, TP_DTYPE_INT32, TP_DTYPE_INT64,
                                 TP_DTYPE_NONE, TP_DTYPE_NONE, TP_DTYPE_UINT16};
    return code < TP_ARRAY_LEN(t) ? t[code] : TP_DTYPE_NONE;
}

static int header(const unsigned char *p, size_t len, tp_dtype *t, tp_error *err)
{
    if (len < HEADER || memcmp(p, MAGIC, 9))
        return tp__error_set(err, TP_ECORRUPT, "not a Megatron index (no MMIDIDX header)");
    if (tp__le64(p + 9) != 1)
        return tp__error_set(err, TP_ECORRUPT, "Megatron index version %" PRIu64 " (this "
                             "build reads 1)", tp__le64(p + 9));
    if ((*t = dtype_of_code(p[17])) == TP_DTYPE_NONE)
        return tp__error_set(err, TP_ECORRUPT, "Megatron dtype code %u does not hold token "
                             "ids (integers: 1-5, 8)", p[17]);
    return 0;
}

uint64_t tp__megatron_length(const tp__megatron_index *x, uint64_t i)
{
    return tp__le32(x->lengths + 4 * i);
}

uint64_t tp__megatron_pointer(const tp__megatron_index *x, uint64_t i)
{
    return tp__le64(x->pointers + 8 * i);
}

uint64_t tp__megatron_first(const tp__megatron_index *x, uint64_t d)
{
    return tp__le64(x->doc_index + 8 * d);
}

static int check_sequences(const tp__megatron_index *x, uint64_t bin_bytes, tp_error *err)
{
    for (uint64_t i = 0; i < x->sequences; i++) {
        int32_t n = (int32_t)tp__le32(x->lengths + 4 * i);
        int64_t at = (int64_t)tp__le64(x->pointers + 8 * i);
        if (n < 0 || at < 0 || (uint64_t)at > bin_bytes ||
            (uint64_t)n * x->itemsize > bin_bytes - (uint64_t)at)
            return tp__error_set(err, TP_ECORRUPT, "sequence %" PRIu64 " (%" PRId32 " ids at "
                                 "byte %" PRId64 ") is not inside the .bin of %" PRIu64
                                 " bytes", i, n, at, bin_bytes);
    }
    return 0;
}

static int check_documents(const tp__megatron_index *x, tp_error *err)
{
    uint64_t prev = 0;
    for (uint64_t d = 0; d <= x->documents; d++) {
        uint64_t v = tp__megatron_first(x, d);
        if ((d == 0 && v != 0) || v < prev || v > x->sequences ||
            (d == x->documents && v != x->sequences))
            return tp__error_set(err, TP_ECORRUPT, "document index %" PRIu64 " is %" PRId64
                                 ": they must run from 0 to the sequence count %" PRIu64
                                 " without decreasing", d, (int64_t)v, x->sequences);
        prev = v;
    }
    return 0;
}

int tp__megatron_index_parse(const void *idx, size_t len, uint64_t bin_bytes,
                             tp__megatron_index *out, tp_error *err)
{
    const unsigned char *p = idx;
    tp__megatron_index x = {0};
    TP_TRY(header(p, len, &x.dtype, err));
    x.itemsize = (unsigned)tp_dtype_size(x.dtype);
    x.sequences = tp__le64(p + 18);
    uint64_t nindex = tp__le64(p + 26), rest = len - HEADER;
    if (x.sequences > rest / 12 || nindex > (rest - 12 * x.sequences) / 8)
        return tp__error_set(err, TP_ECORRUPT, "%" PRIu64 " sequences and %" PRIu64 " "
                             "document indices do not fit an index of %zu bytes",
                             x.sequences, nindex, len);
    rest -= 12 * x.sequences + 8 * nindex;
    if (rest != 0 && rest != x.sequences)
        return tp__error_set(err, TP_ECORRUPT, "%" PRIu64 " bytes after the document indices",
                             rest);
    if (nindex == 0)
        return tp__error_set(err, TP_ECORRUPT, "no document indices");
    x.documents = nindex - 1;
    x.lengths = p + HEADER;
    x.pointers = x.lengths + 4 * x.sequences;
    x.doc_index = x.pointers + 8 * x.sequences;
    TP_TRY(check_sequences(&x, bin_bytes, err));
    TP_TRY(check_documents(&x, err));
    *out = x;
    return 0;
}

static char *join(const char *prefix, const char *ext)
{
    char *p = malloc(strlen(prefix) + strlen(ext) + 1);
    if (p)
        strcat(strcpy(p, prefix), ext);
    return p;
}

int tp__token_megatron_dtype(const char *prefix, tp_dtype *out, tp_error *err)
{
    char *path = join(prefix, ".idx");
    if (!path)
        return tp__error_set(err, -ENOMEM, "out of memory");
    unsigned char head[HEADER];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = fd < 0 ? -errno : tp__pread_all(fd, head, sizeof(head), 0);
    tp_error e = {0};
    if (rc == TP_ETRUNCATED)
        rc = tp__error_set(err, TP_ECORRUPT, "%s: not a Megatron index (too short)", path);
    else if (rc < 0)
        rc = tp__error_set(err, rc, "%s: %s", path, tp_strerror(rc));
    else if (header(head, sizeof(head), out, &e) < 0)
        rc = tp__error_set(err, e.code, "%s: %s", path, e.msg);
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}

/* ---- the reader */

typedef struct megatron {
    tp__token_reader base;
    char *bin_path;
    int fd;
    void *map;
    size_t map_len;
    uint64_t bin_bytes;
    tp__megatron_index x;
    uint64_t doc, seq, seq_done;    /* where reading is: document, sequence, ids of it */
    bool in_doc;                    /* a piece of document `doc` was handed out */
    unsigned char *win;             /* the window over the .bin */
    uint64_t win_off, win_len;
    size_t win_cap;
    uint32_t *ids;
} megatron;

static void megatron_close(tp__token_reader *r)
{
    megatron *m = (megatron *)r;
    if (m->map)
        munmap(m->map, m->map_len);
    if (m->fd >= 0)
        close(m->fd);
    free(m->win);
    free(m->ids);
    free(m->bin_path);
    free(m);
}

/* `len` bytes of the .bin at `off` (len <= win_cap) into *p, through the window. */
static int bin_at(megatron *m, uint64_t off, size_t len, const unsigned char **p,
                  tp_error *err)
{
    if (off < m->win_off || off + len > m->win_off + m->win_len) {
        size_t n = (size_t)TP_MIN((uint64_t)m->win_cap, m->bin_bytes - off);
        assert(len <= n);
        m->win_len = 0;
        int rc = tp__pread_all(m->fd, m->win, n, off);
        if (rc < 0)
            return tp__error_set(err, rc, "%s: %s", m->bin_path, tp_strerror(rc));
        m->win_off = off;
        m->win_len = n;
    }
    *p = m->win + (off - m->win_off);
    return 0;
}

/* Widens up to `room` ids of the current sequence into `dst`; *got says how many. */
static int take(megatron *m, uint32_t *dst, uint64_t room, uint64_t *got, tp_error *err)
{
    uint64_t len = tp__megatron_length(&m->x, m->seq);
    uint64_t n = TP_MIN(len - m->seq_done, room);
    uint64_t off = tp__megatron_pointer(&m->x, m->seq) + m->seq_done * m->x.itemsize;
    if (n) {
        const unsigned char *p = NULL;
        TP_TRY(bin_at(m, off, (size_t)n * m->x.itemsize, &p, err));
        int64_t bad = 0;
        size_t ok = tp__token_widen(p, m->x.dtype, (size_t)n, m->base.o->max_id, dst, &bad);
        if (ok < n) {
            char where[64];
            snprintf(where, sizeof(where), "document %" PRIu64 ", sequence %" PRIu64, m->doc,
                     m->seq);
            tp_error e = {0};
            tp__token_bad_id(&e, where, m->seq_done + ok, bad, m->base.o->max_id);
            return tp__error_set(err, TP_EUSAGE, "%s: %s", m->bin_path, e.msg);
        }
    }
    m->seq_done += n;
    m->base.info->bytes_done += n * m->x.itemsize;
    if (m->seq_done == len) {
        m->seq++;
        m->seq_done = 0;
    }
    *got = n;
    return 0;
}

static int megatron_next(tp__token_reader *r, tp_token_piece *out, tp_error *err)
{
    megatron *m = (megatron *)r;
    while (m->doc < m->x.documents) {
        uint64_t end = tp__megatron_first(&m->x, m->doc + 1), n = 0;
        while (m->seq < end && n < TP_TOKEN_PIECE_MAX) {
            uint64_t got;
            TP_TRY(take(m, m->ids + n, TP_TOKEN_PIECE_MAX - n, &got, err));
            n += got;
        }
        if (n) {
            *out = (tp_token_piece){.ids = m->ids, .n = n, .first = !m->in_doc,
                                    .where = m->bin_path};
            m->in_doc = m->seq < end;
            m->doc += !m->in_doc;
            return 1;
        }
        if (!m->in_doc)
            r->info->empty++;
        m->doc++;
        m->in_doc = false;
    }
    return 0;
}

static int map_index(megatron *m, const char *path, tp_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tp__error_set(err, -errno, "%s: %s", path, strerror(errno));
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    if (rc == 0 && (!S_ISREG(st.st_mode) || st.st_size < HEADER))
        rc = tp__error_set(err, TP_ECORRUPT, "%s: not a Megatron index (too short)", path);
    else if (rc < 0)
        tp__error_set(err, rc, "%s: %s", path, tp_strerror(rc));
    if (rc == 0) {
        m->map_len = (size_t)st.st_size;
        m->map = mmap(NULL, m->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m->map == MAP_FAILED) {
            m->map = NULL;
            rc = tp__error_set(err, -errno, "%s: %s", path, strerror(errno));
        }
    }
    close(fd);
    tp_error e = {0};
    if (rc == 0 && tp__megatron_index_parse(m->map, m->map_len, m->bin_bytes, &m->x, &e) < 0)
        rc = tp__error_set(err, e.code, "%s: %s", path, e.msg);
    return rc;
}

static int open_bin(megatron *m, tp_error *err)
{
    m->fd = open(m->bin_path, O_RDONLY | O_CLOEXEC);
    if (m->fd < 0)
        return tp__error_set(err, -errno, "%s: %s", m->bin_path, strerror(errno));
    struct stat st;
    if (fstat(m->fd, &st) < 0)
        return tp__error_set(err, -errno, "%s: %s", m->bin_path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return tp__error_set(err, TP_EUSAGE, "%s: not a regular file", m->bin_path);
    m->bin_bytes = (uint64_t)st.st_size;
    posix_fadvise(m->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return 0;
}

int tp__token_megatron_open(const char *prefix, tp__token_reader **out, tp_error *err)
{
    megatron *m = calloc(1, sizeof(*m));
    char *idx = join(prefix, ".idx");
    if (!m || !idx) {
        free(m);
        free(idx);
        return tp__error_set(err, -ENOMEM, "out of memory");
    }
    *m = (megatron){.base = {.next = megatron_next, .close = megatron_close}, .fd = -1};
    m->bin_path = join(prefix, ".bin");
    int rc = m->bin_path ? open_bin(m, err) : tp__error_set(err, -ENOMEM, "out of memory");
    if (rc == 0)
        rc = map_index(m, idx, err);
    if (rc == 0) {
        m->win_cap = (size_t)TP_TOKEN_PIECE_MAX * m->x.itemsize;
        m->win = malloc(m->win_cap);
        m->ids = malloc((size_t)TP_TOKEN_PIECE_MAX * sizeof(uint32_t));
        if (!m->win || !m->ids)
            rc = tp__error_set(err, -ENOMEM, "out of memory");
    }
    free(idx);
    if (rc < 0) {
        megatron_close(&m->base);
        return rc;
    }
    m->base.path = m->bin_path;
    *out = &m->base;
    return 0;
}
