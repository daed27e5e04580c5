/* The local cache of object reads (s3.h, used by io_s3.c): each record range read from an
 * object is kept at the same offset of a sparse file of its own for that object, under
 * the cache directory, with its XXH3 in memory. A read found there is checked against it
 * (a range that no longer matches is dropped and read from the store again); past the
 * bound the least recently used ranges are removed by punching holes, so the directory
 * never holds more than the bound (each range is charged whole pages). The cache lives as
 * long as the engine: its files are removed at start and at the end. */
#include "s3.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096u
#define NONE UINT32_MAX
#define LOCK_NAME "turbopump-cache.lock"

typedef struct entry {
    uint64_t off, len, sum;
    unsigned file;
    uint32_t hnext;        /* next in the hash chain */
    uint32_t prev, next;   /* LRU list: head most recent */
} entry;

struct tp__s3_cache {
    char *dir;
    int lock_fd;
    uint64_t bound, used;
    int *fds;              /* per engine file: its cache file, -1 until first used */
    unsigned nfds;
    entry *e;
    uint32_t n, hw, cap, free_head; /* in use, ever handed out, allocated, first free */
    uint32_t *buckets;
    uint32_t nbuckets;     /* a power of two */
    uint32_t head, tail;
    tp__s3_cache_stats st;
};

static uint64_t charge(uint64_t off, uint64_t len)
{
    uint64_t a = off & ~(uint64_t)(PAGE - 1), b = (off + len + PAGE - 1) & ~(uint64_t)(PAGE - 1);
    return b - a;
}

static uint32_t bucket(const tp__s3_cache *c, unsigned file, uint64_t off)
{
    uint64_t k = off * UINT64_C(0x9e3779b97f4a7c15) ^ (uint64_t)file * UINT64_C(0xc2b2ae3d27d4eb4f);
    return (uint32_t)(k >> 32) & (c->nbuckets - 1);
}

static char *file_path(const tp__s3_cache *c, unsigned file)
{
    char name[64];
    snprintf(name, sizeof(name), "turbopump-cache-%u.bin", file);
    return tp__path_join(c->dir, name);
}

/* Removes the cache files in the directory (ours only, by name): those of an engine that
 * did not end cleanly at start, ours at the end. */
static void remove_ours(const tp__s3_cache *c)
{
    DIR *d = opendir(c->dir);
    if (!d)
        return;
    unsigned i;
    char tail;
    for (struct dirent *e; (e = readdir(d));)
        if (sscanf(e->d_name, "turbopump-cache-%u.bi%c", &i, &tail) == 2 && tail == 'n')
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
}

int tp__s3_cache_open(tp__s3_cache **out, const char *dir, uint64_t bound, tp_error *err)
{
    if (bound < PAGE)
        return tp__error_set(err, TP_EUSAGE, "cache size %llu is below one page",
                             (unsigned long long)bound);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return tp__error_set(err, -errno, "cache %s: %s", dir, strerror(errno));
    tp__s3_cache *c = calloc(1, sizeof(*c));
    if (!c || !(c->dir = strdup(dir))) {
        free(c);
        return tp__error_set(err, -ENOMEM, "out of memory");
    }
    c->bound = bound;
    c->head = c->tail = c->free_head = NONE;
    char *lock = tp__path_join(dir, LOCK_NAME);
    c->lock_fd = lock ? open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644) : -1;
    free(lock);
    int rc = 0;
    if (c->lock_fd < 0)
        rc = tp__error_set(err, -errno, "cache %s: %s", dir, strerror(errno));
    else if (flock(c->lock_fd, LOCK_EX | LOCK_NB) < 0)
        rc = tp__error_set(err, -EBUSY, "cache %s is in use by another daemon", dir);
    c->nbuckets = 1u << 12;
    if (rc == 0 && !(c->buckets = malloc(c->nbuckets * sizeof(uint32_t))))
        rc = tp__error_set(err, -ENOMEM, "out of memory");
    if (rc < 0) {
        if (c->lock_fd >= 0)
            close(c->lock_fd);
        free(c->dir);
        free(c);
        return rc;
    }
    memset(c->buckets, 0xff, c->nbuckets * sizeof(uint32_t));
    remove_ours(c);
    *out = c;
    return 0;
}

void tp__s3_cache_close(tp__s3_cache *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->nfds; i++)
        if (c->fds[i] >= 0)
            close(c->fds[i]);
    remove_ours(c);
    close(c->lock_fd);
    free(c->fds);
    free(c->e);
    free(c->buckets);
    free(c->dir);
    free(c);
}

void tp__s3_cache_stats_get(const tp__s3_cache *c, tp__s3_cache_stats *out)
{
    *out = c->st;
    out->bytes = c->used;
}

static int fd_of(tp__s3_cache *c, unsigned file)
{
    if (file >= c->nfds) {
        unsigned n = TP_MAX(file + 1, 2 * c->nfds);
        int *grown = realloc(c->fds, n * sizeof(int));
        if (!grown)
            return -1;
        for (unsigned i = c->nfds; i < n; i++)
            grown[i] = -1;
        c->fds = grown;
        c->nfds = n;
    }
    if (c->fds[file] < 0) {
        char *p = file_path(c, file);
        c->fds[file] = p ? open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
        free(p);
    }
    return c->fds[file];
}

static uint32_t find(const tp__s3_cache *c, unsigned file, uint64_t off)
{
    for (uint32_t i = c->buckets[bucket(c, file, off)]; i != NONE; i = c->e[i].hnext)
        if (c->e[i].file == file && c->e[i].off == off)
            return i;
    return NONE;
}

static void lru_unlink(tp__s3_cache *c, uint32_t i)
{
    entry *x = &c->e[i];
    if (x->prev != NONE)
        c->e[x->prev].next = x->next;
    else
        c->head = x->next;
    if (x->next != NONE)
        c->e[x->next].prev = x->prev;
    else
        c->tail = x->prev;
}

static void lru_push(tp__s3_cache *c, uint32_t i)
{
    entry *x = &c->e[i];
    x->prev = NONE;
    x->next = c->head;
    if (c->head != NONE)
        c->e[c->head].prev = i;
    c->head = i;
    if (c->tail == NONE)
        c->tail = i;
}

/* Drops entry i: out of the hash chain and the LRU list, its pages given back. */
static void drop(tp__s3_cache *c, uint32_t i)
{
    entry *x = &c->e[i];
    uint32_t *link = &c->buckets[bucket(c, x->file, x->off)];
    while (*link != i)
        link = &c->e[*link].hnext;
    *link = x->hnext;
    lru_unlink(c, i);
    uint64_t a = x->off & ~(uint64_t)(PAGE - 1);
    uint64_t b = (x->off + x->len + PAGE - 1) & ~(uint64_t)(PAGE - 1);
    if (x->file < c->nfds && c->fds[x->file] >= 0)
        fallocate(c->fds[x->file], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)a,
                  (off_t)(b - a));
    c->used -= charge(x->off, x->len);
    x->hnext = c->free_head;
    c->free_head = i;
    c->n--;
}

static uint64_t sum_of(const struct iovec *iov, unsigned n) { return tp__hash64_pieces(iov, n); }

int tp__s3_cache_get(tp__s3_cache *c, unsigned file, uint64_t off, uint64_t len,
                     const struct iovec *iov, unsigned n)
{
    uint32_t i = find(c, file, off);
    if (i == NONE || c->e[i].len != len) {
        c->st.misses++;
        return 0;
    }
    int fd = c->fds[file];
    ssize_t got = preadv(fd, iov, (int)n, (off_t)off);
    if (got != (ssize_t)len || sum_of(iov, n) != c->e[i].sum) {
        c->st.corrupt++; /* changed under us: read from the store again */
        drop(c, i);
        c->st.misses++;
        return 0;
    }
    lru_unlink(c, i);
    lru_push(c, i);
    c->st.hits++;
    return 1;
}

void tp__s3_cache_put(tp__s3_cache *c, unsigned file, uint64_t off, uint64_t len,
                      const struct iovec *iov, unsigned n)
{
    uint64_t need = charge(off, len);
    if (need > c->bound || find(c, file, off) != NONE)
        return;
    while (c->used + need > c->bound && c->tail != NONE) {
        drop(c, c->tail);
        c->st.evictions++;
    }
    int fd = fd_of(c, file);
    if (fd < 0)
        return;
    if (c->free_head == NONE && c->hw == c->cap) {
        uint32_t cap = c->cap ? 2 * c->cap : 1024;
        entry *grown = realloc(c->e, cap * sizeof(entry));
        if (!grown)
            return;
        c->e = grown;
        c->cap = cap;
    }
    if (c->n + 1 > c->nbuckets) { /* rehash into twice the buckets */
        uint32_t *b = malloc(2 * c->nbuckets * sizeof(uint32_t));
        if (b) {
            free(c->buckets);
            c->buckets = b;
            c->nbuckets *= 2;
            memset(b, 0xff, c->nbuckets * sizeof(uint32_t));
            for (uint32_t k = c->head; k != NONE; k = c->e[k].next) {
                uint32_t h = bucket(c, c->e[k].file, c->e[k].off);
                c->e[k].hnext = b[h];
                b[h] = k;
            }
        }
    }
    if (pwritev(fd, iov, (int)n, (off_t)off) != (ssize_t)len)
        return; /* a full disk: not cached, nothing lost */
    uint32_t i;
    if (c->free_head != NONE) {
        i = c->free_head;
        c->free_head = c->e[i].hnext;
    } else {
        i = c->hw++;
    }
    c->e[i] = (entry){.off = off, .len = len, .sum = sum_of(iov, n), .file = file};
    uint32_t h = bucket(c, file, off);
    c->e[i].hnext = c->buckets[h];
    c->buckets[h] = i;
    lru_push(c, i);
    c->used += need;
    c->n++;
    c->st.inserts++;
}
