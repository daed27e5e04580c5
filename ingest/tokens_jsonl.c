/* Tokenized documents in JSON Lines, one per line, as tokenizer pipelines write them:
 * {"input_ids": [464, 2068, 7586, ...], ...}. The ids are the integer list in one member
 * (--field); other members are ignored. Each line is parsed by jansson on its own, so a
 * bad line (malformed JSON, no such member, an id that is not an integer in range) is
 * reported with its file and line number and left out, and the lines after it are read
 * as usual. Lines are at most MAX_LINE bytes, so neither a huge file nor a line without
 * an end can take unbounded memory.
 *
 * Parsing JSON is what bounds packing speed here, so the reader cuts the file into
 * batches of whole lines and parses them on `jobs` threads (the reading thread among
 * them) while it reads ahead; batches are handed out strictly in file order, so the
 * output and the warnings do not depend on the number of threads. */
#include "tokens_source.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_LINE (256u << 20)
#define READ_BYTES (1u << 20)
#define BATCH_BYTES (1u << 20)      /* a batch closes at the first line end past this */
#define BATCH_LINES 65536u
#define MAX_THREADS 64

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

static int check_ids(json_t *list, const char *field, uint64_t max_id, uint32_t *ids,
                     char *why, size_t why_len)
{
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *e = json_array_get(list, i);
        if (!json_is_integer(e)) {
            snprintf(why, why_len, "'%.64s'[%zu] is %s, not an integer", field, i,
                     json_is_real(e) ? "a fraction" : json_is_string(e) ? "a string"
                                                                         : "no number");
            return TP_EUSAGE;
        }
        json_int_t v = json_integer_value(e);
        if (v < 0) {
            snprintf(why, why_len, "'%.64s'[%zu] is %lld, negative", field, i, (long long)v);
            return TP_EUSAGE;
        }
        if ((uint64_t)v > max_id) {
            snprintf(why, why_len, "'%.64s'[%zu] is %lld, above the largest id %" PRIu64,
                     field, i, (long long)v, max_id);
            return TP_EUSAGE;
        }
        ids[i] = (uint32_t)v;
    }
    return 0;
}

int tp__token_jsonl_parse(const char *line, size_t len, const char *field, uint64_t max_id,
                          uint32_t **ids, size_t *cap, uint64_t *n, char *why,
                          size_t why_len)
{
    if (blank(line, len))
        return 0;
    json_error_t je;
    json_t *root = json_loadb(line, len, 0, &je);
    json_t *list = json_is_object(root) ? json_object_get(root, field) : NULL;
    int rc = TP_EUSAGE;
    if (!root)
        snprintf(why, why_len, "malformed JSON at column %d: %s", je.column, je.text);
    else if (!json_is_object(root))
        snprintf(why, why_len, "not a JSON object");
    else if (!list)
        snprintf(why, why_len, "no member '%.64s'", field);
    else if (!json_is_array(list))
        snprintf(why, why_len, "'%.64s' is not a list", field);
    else if (tp__grow((void **)ids, cap, TP_MAX(json_array_size(list), 1) * sizeof(uint32_t)))
        rc = -ENOMEM;
    else if ((rc = check_ids(list, field, max_id, *ids, why, why_len)) == 0) {
        *n = json_array_size(list);
        rc = 1;
    }
    json_decref(root);
    return rc;
}

/* ---- batches of lines */

enum { EMPTY, FILLED, TAKEN, PARSED };

typedef struct line {
    size_t off, len;            /* in the batch's text */
    bool too_long;              /* longer than MAX_LINE: its text was dropped */
    int rc;                     /* once parsed: as tp__token_jsonl_parse */
    uint64_t n, at;             /* ids, and where they start in the batch's ids */
    size_t why;                 /* for a bad line: its reason, in the batch's whys */
} line;

typedef struct batch {
    int state;
    uint64_t first_line;        /* the number of its first line in the file */
    char *text;
    size_t len, cap;
    line *lines;
    size_t nlines, lines_cap;
    uint32_t *ids, *scratch;
    size_t ids_cap, scratch_cap;
    uint64_t nids;
    char *whys;
    size_t whys_len, whys_cap;
} batch;

static void batch_free(batch *b)
{
    free(b->text);
    free(b->lines);
    free(b->ids);
    free(b->scratch);
    free(b->whys);
}

static int keep_ids(batch *b, line *l, uint64_t n)
{
    TP_TRY(tp__grow((void **)&b->ids, &b->ids_cap, (size_t)(b->nids + n) * sizeof(uint32_t)));
    memcpy(b->ids + b->nids, b->scratch, (size_t)n * sizeof(uint32_t));
    l->at = b->nids;
    b->nids += n;
    return 0;
}

static int keep_why(batch *b, line *l, const char *why)
{
    size_t n = strlen(why) + 1;
    TP_TRY(tp__grow((void **)&b->whys, &b->whys_cap, b->whys_len + n));
    memcpy(b->whys + b->whys_len, why, n);
    l->why = b->whys_len;
    b->whys_len += n;
    return 0;
}

/* Parses every line of `b`; thread-safe for distinct batches. */
static void parse_batch(batch *b, const tp_token_source_options *o)
{
    b->nids = b->whys_len = 0;
    for (size_t i = 0; i < b->nlines; i++) {
        line *l = &b->lines[i];
        char why[256] = "";
        l->n = 0;
        if (l->too_long) {
            snprintf(why, sizeof(why), "longer than %u MiB", MAX_LINE >> 20);
            l->rc = TP_EUSAGE;
        } else {
            l->rc = tp__token_jsonl_parse(b->text + l->off, l->len, o->field, o->max_id,
                                          &b->scratch, &b->scratch_cap, &l->n, why,
                                          sizeof(why));
        }
        if ((l->rc == 1 && l->n && keep_ids(b, l, l->n) < 0) ||
            (l->rc == TP_EUSAGE && keep_why(b, l, why) < 0))
            l->rc = -ENOMEM;
    }
}

/* ---- the reader */

typedef struct jsonl {
    tp__token_reader base;
    char *path;
    FILE *f;
    unsigned char *buf;         /* READ_BYTES read ahead */
    size_t pos, end;
    bool eof;
    uint64_t lineno;            /* lines put into batches so far */
    batch *slots;               /* a ring: [head, tail) are filled, in file order */
    size_t nslots;
    uint64_t head, tail;        /* under mu, as the slots' states */
    size_t cur;                 /* the head batch's next line */
    uint64_t handed;            /* ids of that line handed out so far */
    pthread_t threads[MAX_THREADS];
    size_t nthreads;
    bool started, stop;
    pthread_mutex_t mu;
    pthread_cond_t filled, parsed;
    char where[4200];
} jsonl;

/* Appends `n` bytes of the current line to the batch, unless the line is too long. */
static int line_bytes(batch *b, line *l, const unsigned char *p, size_t n)
{
    if (l->too_long || n > MAX_LINE - l->len) {
        l->too_long = true;
        return 0;
    }
    TP_TRY(tp__grow((void **)&b->text, &b->cap, b->len + n + 1));
    memcpy(b->text + b->len, p, n);
    b->len += n;
    l->len += n;
    return 0;
}

/* Reads the next line into the batch. @return : 1, 0 at the end of the file, or an
 * error. */
static int read_line(jsonl *j, batch *b, tp_error *err)
{
    if (tp__grow((void **)&b->lines, &b->lines_cap, (b->nlines + 1) * sizeof(line)) < 0)
        return tp__error_set(err, -ENOMEM, "out of memory");
    line *l = &b->lines[b->nlines];
    *l = (line){.off = b->len};
    bool any = false;
    for (;;) {
        if (j->pos == j->end) {
            j->pos = 0;
            j->end = fread(j->buf, 1, READ_BYTES, j->f);
            j->base.info->bytes_done += j->end;
            if (j->end == 0 && ferror(j->f))
                return tp__error_set(err, -EIO, "%s: read error", j->path);
            if (j->end == 0)
                break;
        }
        any = true;
        const unsigned char *nl = memchr(j->buf + j->pos, '\n', j->end - j->pos);
        size_t n = nl ? (size_t)(nl - (j->buf + j->pos)) : j->end - j->pos;
        if (line_bytes(b, l, j->buf + j->pos, n) < 0)
            return tp__error_set(err, -ENOMEM, "out of memory");
        j->pos += n + (nl != NULL);
        if (nl)
            break;
    }
    if (!any)
        return 0;
    if (l->too_long) { /* what was kept of it goes */
        b->len = l->off;
        l->len = 0;
    }
    b->nlines++;
    j->lineno++;
    return 1;
}

/* Reads ahead into every free slot. */
static int refill(jsonl *j, tp_error *err)
{
    while (!j->eof && j->tail - j->head < j->nslots) {
        batch *b = &j->slots[j->tail % j->nslots];
        b->len = b->nlines = 0;
        b->first_line = j->lineno + 1;
        int rc = 1;
        while (rc == 1 && b->len < BATCH_BYTES && b->nlines < BATCH_LINES)
            rc = read_line(j, b, err);
        if (rc < 0)
            return rc;
        j->eof = rc == 0;
        if (b->nlines == 0)
            break;
        pthread_mutex_lock(&j->mu);
        b->state = FILLED;
        j->tail++;
        pthread_cond_signal(&j->filled);
        pthread_mutex_unlock(&j->mu);
    }
    return 0;
}

static void *worker(void *arg)
{
    jsonl *j = arg;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        batch *b = NULL;
        for (uint64_t i = j->head; !b && i < j->tail; i++)
            if (j->slots[i % j->nslots].state == FILLED)
                b = &j->slots[i % j->nslots];
        if (j->stop)
            break;
        if (!b) {
            pthread_cond_wait(&j->filled, &j->mu);
            continue;
        }
        b->state = TAKEN;
        pthread_mutex_unlock(&j->mu);
        parse_batch(b, j->base.o);
        pthread_mutex_lock(&j->mu);
        b->state = PARSED;
        pthread_cond_broadcast(&j->parsed);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

static int start(jsonl *j, tp_error *err)
{
    unsigned jobs = TP_MIN(TP_MAX(j->base.o->jobs, 1u), MAX_THREADS + 1u);
    j->nslots = 2 * (size_t)jobs;
    if (!(j->slots = calloc(j->nslots, sizeof(batch))))
        return tp__error_set(err, -ENOMEM, "out of memory");
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->filled, NULL);
    pthread_cond_init(&j->parsed, NULL);
    j->started = true;
    /* Fewer threads than asked for only make it slower. */
    while (j->nthreads + 1 < jobs &&
           pthread_create(&j->threads[j->nthreads], NULL, worker, j) == 0)
        j->nthreads++;
    return 0;
}

/* The head batch, parsed (here, when no thread has taken it). @return : 1, 0 at the end,
 * or an error. */
static int head_batch(jsonl *j, batch **out, tp_error *err)
{
    TP_TRY(refill(j, err));
    if (j->head == j->tail)
        return 0;
    batch *b = &j->slots[j->head % j->nslots];
    pthread_mutex_lock(&j->mu);
    while (b->state != PARSED) {
        if (b->state == FILLED) {
            b->state = TAKEN;
            pthread_mutex_unlock(&j->mu);
            parse_batch(b, j->base.o);
            pthread_mutex_lock(&j->mu);
            b->state = PARSED;
        } else {
            pthread_cond_wait(&j->parsed, &j->mu);
        }
    }
    pthread_mutex_unlock(&j->mu);
    *out = b;
    return 1;
}

static void release_head(jsonl *j)
{
    pthread_mutex_lock(&j->mu);
    j->slots[j->head % j->nslots].state = EMPTY;
    j->head++;
    pthread_mutex_unlock(&j->mu);
    j->cur = 0;
    j->handed = 0;
}

/* What a line that holds no ids to hand out means: a bad line, an empty document. */
static int account(jsonl *j, const batch *b, const line *l, tp_error *err)
{
    const tp_token_source_options *o = j->base.o;
    if (l->rc == -ENOMEM)
        return tp__error_set(err, -ENOMEM, "out of memory");
    if (l->rc == 1)
        j->base.info->empty++;
    if (l->rc != TP_EUSAGE)
        return 0;
    j->base.info->skipped++;
    snprintf(j->where, sizeof(j->where), "%s line %" PRIu64, j->path,
             b->first_line + (uint64_t)(l - b->lines));
    return o->warn && o->warn(o->warn_ctx, j->where, b->whys + l->why) ? TP_SOURCE_STOPPED : 0;
}

static int jsonl_next(tp__token_reader *r, tp_token_piece *out, tp_error *err)
{
    jsonl *j = (jsonl *)r;
    if (!j->started)
        TP_TRY(start(j, err));
    for (;;) {
        batch *b;
        int rc = head_batch(j, &b, err);
        if (rc <= 0)
            return rc;
        if (j->cur == b->nlines) {
            release_head(j);
            continue;
        }
        const line *l = &b->lines[j->cur];
        if (l->rc == 1 && j->handed < l->n) { /* a long line goes in several pieces */
            uint64_t k = TP_MIN(l->n - j->handed, (uint64_t)TP_TOKEN_PIECE_MAX);
            *out = (tp_token_piece){.ids = b->ids + l->at + j->handed, .n = k,
                                    .first = j->handed == 0, .where = j->path};
            j->handed += k;
            return 1;
        }
        rc = j->handed ? 0 : account(j, b, l, err);
        j->cur++;
        j->handed = 0;
        if (rc < 0)
            return rc;
    }
}

static void jsonl_close(tp__token_reader *r)
{
    jsonl *j = (jsonl *)r;
    if (j->started) {
        pthread_mutex_lock(&j->mu);
        j->stop = true;
        pthread_cond_broadcast(&j->filled);
        pthread_mutex_unlock(&j->mu);
        for (size_t i = 0; i < j->nthreads; i++)
            pthread_join(j->threads[i], NULL);
        pthread_cond_destroy(&j->filled);
        pthread_cond_destroy(&j->parsed);
        pthread_mutex_destroy(&j->mu);
    }
    for (size_t i = 0; j->slots && i < j->nslots; i++)
        batch_free(&j->slots[i]);
    free(j->slots);
    if (j->f)
        fclose(j->f);
    free(j->buf);
    free(j->path);
    free(j);
}

int tp__token_jsonl_open(const char *path, tp__token_reader **out, tp_error *err)
{
    jsonl *j = calloc(1, sizeof(*j));
    if (!j)
        return tp__error_set(err, -ENOMEM, "out of memory");
    j->base = (tp__token_reader){.next = jsonl_next, .close = jsonl_close};
    if (!(j->path = strdup(path)) || !(j->buf = malloc(READ_BYTES))) {
        jsonl_close(&j->base);
        return tp__error_set(err, -ENOMEM, "out of memory");
    }
    if (!(j->f = fopen(path, "rb"))) {
        int rc = -errno;
        jsonl_close(&j->base);
        return tp__error_set(err, rc, "%s: %s", path, tp_strerror(rc));
    }
    j->base.path = j->path;
    *out = &j->base;
    return 0;
}
