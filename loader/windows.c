/* Windows of token datasets (windows.h): from a window id to its blocks on disk, and from
 * those blocks to input_ids, labels, position_ids and cu_seqlens in a ring slot. */
#include "windows.h"
#include "s3.h"

#include "tokens_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct wsource {
    tp_served *ds;
    const tp_tokens *tok;
    unsigned token_bytes;
    uint64_t windows, first_id;
    uint64_t *starts;            /* aligned windows: windows + 1 stream positions */
} wsource;

enum { OUT_INPUT, OUT_LABELS, OUT_POSITIONS, OUT_CU, OUT_KINDS };
static const char *const out_names[OUT_KINDS] = {"input_ids", "labels", "position_ids",
                                                 "cu_seqlens"};

struct tp_windows {
    uint32_t L;
    uint32_t align;              /* enum tp_align */
    int64_t pad_id;
    tp_dtype dtype;              /* of input_ids, labels and position_ids */
    uint32_t k;
    wsource src[TP_OPEN_MAX_SOURCES];
    bool mixed;
    tp_mixture mix;
    int out[OUT_KINDS];          /* the output index of each array, -1 when not asked */
};

static int add_output(tp_windows *w, tp_outputs *o, int kind)
{
    if (w->out[kind] >= 0)
        return 0;
    tp_out_field *f = &o->f[o->nf];
    memset(f, 0, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", out_names[kind]);
    f->kind = TP_FIELD_TENSOR;
    f->dtype = kind == OUT_CU ? TP_DTYPE_INT32 : w->dtype;
    f->ndim = 1;
    f->shape[0] = kind == OUT_CU ? (int64_t)w->L + 1 : (int64_t)w->L;
    f->sample_bytes = (uint64_t)f->shape[0] * tp_dtype_size(f->dtype);
    f->lead = -1;
    w->out[kind] = (int)o->nf++;
    return 0;
}

static int pick_outputs(tp_windows *w, const tp_msg_open *m, tp_outputs *o, tp_error *err)
{
    memset(o, 0, sizeof(*o));
    for (int i = 0; i < OUT_KINDS; i++)
        w->out[i] = -1;
    if (m->nviews || m->output != TP_OUTPUT_UINT8)
        return tp__error_set(err, TP_EUSAGE, "token datasets have no images: no views or "
                             "image outputs");
    if (m->nfields == 0) {
        add_output(w, o, OUT_INPUT);
        add_output(w, o, OUT_LABELS);
    }
    for (uint32_t i = 0; i < m->nfields; i++) {
        int kind = 0;
        while (kind < OUT_KINDS && strcmp(m->fields[i], out_names[kind]))
            kind++;
        if (kind == OUT_KINDS)
            return tp__error_set(err, TP_ENOFIELD, "windows have no field '%.32s' (input_ids, "
                                 "labels, position_ids, cu_seqlens)", m->fields[i]);
        add_output(w, o, kind);
    }
    if (m->tokens & TP_TOKENS_POSITIONS)
        add_output(w, o, OUT_POSITIONS);
    if (m->tokens & TP_TOKENS_CU_SEQLENS)
        add_output(w, o, OUT_CU);
    return 0;
}

/* Aligned windows tile the stream: window i is [starts[i], starts[i + 1]), at most L + 1
 * ids, never starting inside a document unless that document is longer than L + 1 (it is
 * cut into pieces of L + 1). PAD: one document (piece) per window. PACK: as many whole
 * consecutive documents as fit. O(documents) once per session. */
static int aligned_starts(const tp_windows *w, wsource *s, tp_error *err)
{
    const uint64_t *doc = tp__tokens_starts(s->tok), ndocs = tp_tokens_document_count(s->tok);
    const uint64_t T = tp_tokens_count(s->tok), span = (uint64_t)w->L + 1;
    size_t cap = 0, n = 0;
    uint64_t pos = 0, d = 0; /* doc[d] <= pos < doc[d + 1] */
    while (pos < T) {
        if (tp__grow((void **)&s->starts, &cap, (n + 2) * sizeof(uint64_t)) < 0)
            return tp__error_set(err, -ENOMEM, "out of memory for aligned windows");
        s->starts[n++] = pos;
        uint64_t end = TP_MIN(doc[d + 1], pos + span); /* the rest of this document */
        if (w->align == TP_ALIGN_PACK && end == doc[d + 1])
            while (d + 1 < ndocs && doc[d + 2] - pos <= span) /* whole next documents */
                end = doc[++d + 1];
        if (end == doc[d + 1])
            d++;
        pos = end;
    }
    s->starts[n] = T;
    s->windows = n;
    return 0;
}

static int add_source(tp_windows *w, tp_served *ds, const char *name, tp_error *err)
{
    if (!ds->tok)
        return tp__error_set(err, TP_EUSAGE, "dataset %.200s holds samples, not tokens: "
                             "seq_len and mixtures need token datasets", name);
    wsource *s = &w->src[w->k];
    s->ds = ds;
    s->tok = ds->tok;
    s->token_bytes = (unsigned)tp_dtype_size(tp_tokens_dtype(ds->tok));
    s->windows = tp_tokens_count(ds->tok) / ((uint64_t)w->L + 1);
    if (w->align != TP_ALIGN_NONE)
        TP_TRY(aligned_starts(w, s, err));
    s->first_id = w->k ? w->src[w->k - 1].first_id + w->src[w->k - 1].windows : 0;
    if (s->windows == 0)
        return tp__error_set(err, TP_EUSAGE, "dataset %.200s has %" PRIu64 " tokens: not one "
                             "window of %u + 1", name, tp_tokens_count(ds->tok), w->L);
    if (w->dtype == TP_DTYPE_INT32 && tp_tokens_max_id(ds->tok) > INT32_MAX)
        return tp__error_set(err, TP_EUSAGE, "dataset %.200s: ids up to %" PRIu64 " do not "
                             "fit int32", name, tp_tokens_max_id(ds->tok));
    w->k++;
    return 0;
}

int tp__windows_open(tp_windows **out, tp_server *srv, tp_served *ds, const tp_msg_open *m,
                     tp_outputs *o, uint64_t *positions, bool *shuffle, tp_error *err)
{
    tp_windows *w = calloc(1, sizeof(*w));
    if (!w)
        return tp__error_set(err, -ENOMEM, "out of memory for a session");
    *out = w;
    w->L = m->seq_len;
    w->align = m->align;
    w->pad_id = m->pad_id;
    w->dtype = m->tokens & TP_TOKENS_INT32 ? TP_DTYPE_INT32 : TP_DTYPE_INT64;
    if (w->dtype == TP_DTYPE_INT32 && (w->pad_id < INT32_MIN || w->pad_id > INT32_MAX))
        return tp__error_set(err, TP_EUSAGE, "pad id %lld does not fit int32",
                             (long long)w->pad_id);
    if (w->L == 0)
        return tp__error_set(err, TP_EUSAGE, "dataset %.200s holds tokens: give seq_len to "
                             "read it as windows", m->dataset);
    TP_TRY(pick_outputs(w, m, o, err));
    if (!m->nsources) {
        TP_TRY(add_source(w, ds, m->dataset, err));
        *positions = w->src[0].windows;
        *shuffle = m->flags & TP_OPEN_SHUFFLE;
        return 0;
    }
    double weights[TP_OPEN_MAX_SOURCES];
    uint64_t n[TP_OPEN_MAX_SOURCES], total = 0;
    for (uint32_t i = 0; i < m->nsources; i++) {
        tp_served *d;
        TP_TRY(tp__server_dataset(srv, m->sources[i].dataset, &d, err));
        TP_TRY(add_source(w, d, m->sources[i].dataset, err));
        weights[i] = m->sources[i].weight;
        n[i] = w->src[i].windows;
        total += n[i];
    }
    w->mixed = true;
    TP_TRY(tp__mixture_init(&w->mix, weights, n, w->k, m->flags & TP_OPEN_SHUFFLE, m->seed,
                            err));
    *positions = m->mixture_epoch ? m->mixture_epoch : total;
    *shuffle = false; /* the interleaving keeps its order; each source shuffles its own */
    return 0;
}

void tp__windows_close(tp_windows *w)
{
    for (uint32_t i = 0; w && i < w->k; i++)
        free(w->src[i].starts);
    free(w);
}

uint64_t tp__windows_id(const tp_windows *w, uint64_t positions, uint64_t epoch, uint64_t p)
{
    if (!w->mixed)
        return p;
    uint32_t s;
    uint64_t item;
    tp__mixture_at(&w->mix, epoch * positions + p, &s, &item);
    return w->src[s].first_id + item;
}

static const wsource *source_of(const tp_windows *w, uint64_t id)
{
    uint32_t s = 0;
    while (s + 1 < w->k && id >= w->src[s + 1].first_id)
        s++;
    return &w->src[s];
}

const char *tp__windows_source(const tp_windows *w, uint64_t id)
{
    return source_of(w, id)->ds->name;
}

/* Window `local` of a source: its first id and how many it has (L + 1 but for aligned
 * windows, which may have fewer). */
static void range_of(const tp_windows *w, const wsource *s, uint64_t local, uint64_t *first,
                     uint64_t *n)
{
    if (s->starts) {
        *first = s->starts[local];
        *n = s->starts[local + 1] - s->starts[local];
    } else {
        *first = local * ((uint64_t)w->L + 1);
        *n = (uint64_t)w->L + 1;
    }
}

uint64_t tp__windows_raw_bytes(const tp_windows *w)
{
    /* L + 1 ids touch at most ceil((L + 1) / block) + 1 blocks */
    uint64_t most = 0;
    for (uint32_t i = 0; i < w->k; i++) {
        uint64_t bt = tp_tokens_block(w->src[i].tok), span = (uint64_t)w->L + 1;
        most = TP_MAX(most, ((span + bt - 1) / bt + 1) * bt * w->src[i].token_bytes);
    }
    return (most + 63) & ~(uint64_t)63;
}

void tp__windows_task(const tp_windows *w, uint64_t id, tp_task *t, unsigned char *raw)
{
    const wsource *s = source_of(w, id);
    uint64_t first, n;
    range_of(w, s, id - s->first_id, &first, &n);
    tp__tokens_span sp;
    tp__tokens_span_of(s->tok, first, n, &sp);
    tp_tokens_shard si;
    tp_tokens_shard_info(s->tok, sp.shard, &si);
    t->loc = (tp_sample_location){.shard = sp.shard, .fd = si.fd, .offset = sp.offset,
                                  .length = sp.length, .object = si.object};
    t->file = s->ds->files[sp.shard];
    t->iov[0] = (struct iovec){raw, sp.length};
    t->iovcnt = 1;
}

/* position_ids and cu_seqlens of the window starting at id `first` whose first `real`
 * inputs are ids (the rest padding: its positions 0, one more boundary before it). */
static void documents(const tp_windows *w, const wsource *s, uint64_t first, uint32_t real,
                      void *pos, int32_t *cu)
{
    const uint64_t *starts = tp__tokens_starts(s->tok);
    uint64_t d = tp_tokens_document_of(s->tok, first) + 1, ndocs = tp_tokens_document_count(s->tok);
    uint32_t from = 0, k = 0;
    if (cu)
        cu[k++] = 0;
    for (;;) {
        uint32_t to = d < ndocs && starts[d] < first + real ? (uint32_t)(starts[d] - first) : real;
        if (to == real && real < w->L) { /* the padding, a segment of its own */
            for (uint32_t j = from; pos && j < w->L; j++) {
                if (w->dtype == TP_DTYPE_INT64)
                    ((int64_t *)pos)[j] = j < real ? j - from : 0;
                else
                    ((int32_t *)pos)[j] = j < real ? (int32_t)(j - from) : 0;
            }
            if (cu && real > 0)
                cu[k++] = (int32_t)real;
            if (cu)
                cu[k++] = (int32_t)w->L;
            break;
        }
        for (uint32_t j = from; pos && j < to; j++) {
            if (w->dtype == TP_DTYPE_INT64)
                ((int64_t *)pos)[j] = j - from;
            else
                ((int32_t *)pos)[j] = (int32_t)(j - from);
        }
        if (cu)
            cu[k++] = (int32_t)to;
        if (to == w->L)
            break;
        from = to;
        d++;
    }
    for (; cu && k <= w->L; k++)
        cu[k] = (int32_t)w->L;
}

static void pad(void *dst, tp_dtype dtype, uint32_t from, uint32_t to, int64_t v)
{
    for (uint32_t j = from; j < to; j++) {
        if (dtype == TP_DTYPE_INT64)
            ((int64_t *)dst)[j] = v;
        else
            ((int32_t *)dst)[j] = (int32_t)v;
    }
}

int tp__windows_fill(const tp_windows *w, const tp_outputs *o, tp_worker *wk,
                     unsigned char *slot, uint32_t index, uint64_t id,
                     const unsigned char *data, uint64_t len, tp_error *err)
{
    const wsource *s = source_of(w, id);
    uint64_t first, n;
    range_of(w, s, id - s->first_id, &first, &n);
    const unsigned tb = s->token_bytes;
    unsigned char *dst[OUT_KINDS] = {NULL};
    for (int i = 0; i < OUT_KINDS; i++)
        if (w->out[i] >= 0)
            dst[i] = slot + o->f[w->out[i]].offset + (uint64_t)index * o->f[w->out[i]].sample_bytes;
    tp__tokens_span sp;
    tp__tokens_span_of(s->tok, first, n, &sp);
    if (len != sp.length)
        return tp__error_set(err, TP_ECORRUPT, "read %" PRIu64 " bytes of %" PRIu64, len,
                             sp.length);
    TP_TRY(tp__tokens_check_span(s->tok, &sp, data, err));
    const unsigned char *ids = data + sp.skip * tb;
    if (sp.n < n) {
        /* Into later shards: gather the window's ids in the scratch buffer, the first
         * piece from the engine, the rest read here, every block checked. */
        uint64_t have = sp.n, block = (uint64_t)tp_tokens_block(s->tok) * tb;
        if (tp__worker_scratch(wk, (size_t)(n * tb + 2 * block + n * tb)) < 0)
            return tp__error_set(err, -ENOMEM, "no memory for a window");
        unsigned char *gather = wk->scratch, *piece = wk->scratch + n * tb;
        memcpy(gather, ids, sp.n * tb);
        while (have < n) {
            tp__tokens_span more;
            tp__tokens_span_of(s->tok, first + have, n - have, &more);
            tp_tokens_shard si;
            tp_tokens_shard_info(s->tok, more.shard, &si);
            tp_sample_location at = {.fd = si.fd, .object = si.object};
            struct iovec v = {.iov_base = piece, .iov_len = more.length};
            tp_error rerr = {0};
            int rc = tp__location_read(&at, &v, 1, more.offset, more.length, &rerr);
            if (rc < 0)
                return tp__error_set(err, rc, "%s: %s", si.path,
                                     rerr.code ? rerr.msg : tp_strerror(rc));
            TP_TRY(tp__tokens_check_span(s->tok, &more, piece, err));
            memcpy(gather + have * tb, piece + more.skip * tb, more.n * tb);
            have += more.n;
        }
        ids = gather;
    }
    /* An aligned window of n <= L + 1 ids: n (at most L) inputs, n - 1 labels; inputs
     * past them are pad_id and labels -100, the index losses ignore. */
    const uint32_t inputs = (uint32_t)TP_MIN(n, w->L), labels = (uint32_t)(n - 1);
    if (dst[OUT_INPUT]) {
        tp__tokens_convert(ids, tb, inputs, dst[OUT_INPUT], w->dtype);
        pad(dst[OUT_INPUT], w->dtype, inputs, w->L, w->pad_id);
    }
    if (dst[OUT_LABELS]) {
        tp__tokens_convert(ids + tb, tb, labels, dst[OUT_LABELS], w->dtype);
        pad(dst[OUT_LABELS], w->dtype, labels, w->L, -100);
    }
    if (dst[OUT_POSITIONS] || dst[OUT_CU])
        documents(w, s, first, inputs, dst[OUT_POSITIONS], (int32_t *)(void *)dst[OUT_CU]);
    return 0;
}
