/* Unit tests of token windows and mixtures through a real daemon (loader/windows.h,
 * loader/mixture.h, include/turbopump/client.h with seq_len): every window's input_ids,
 * labels, position_ids and cu_seqlens against an independent read of the dataset
 * (tp_tokens_read, the document starts) across shard and block edges; exact-once per
 * epoch over ranks; resume equal to the uninterrupted run, also under another world size
 * (elastic); mixture proportions exact over every period; a corrupt block named. */
#include "service_fx.h"

#include "mixture.h"

#include <turbopump/tokens.h>

#include <stdio.h>

enum { VOCAB = 50000 };

/* The id at stream position p of dataset `salt`. */
static uint32_t id_at(uint64_t p, uint64_t salt) { return (uint32_t)((p * 7919 + salt * 31) % VOCAB); }

/* A token dataset of `docs` documents of 1..97 ids (a few long ones), in small shards and
 * the smallest blocks, so windows cross both. */
static void write_tokens_ds(const char *root, const char *name, uint64_t docs, uint64_t salt,
                            tp_dtype dtype)
{
    char *path = tp_test_path(root, name);
    tp_tokens_writer_options o = {.dtype = dtype, .shard_bytes = 3000, .block_tokens = 256};
    tp_tokens_writer *w = NULL;
    tp_error err = {0};
    ck_assert_msg(tp_tokens_writer_create(&w, path, &o, &err) == 0, "%s", err.msg);
    uint64_t p = 0;
    uint32_t ids[700];
    for (uint64_t d = 0; d < docs; d++) {
        uint64_t len = d % 17 == 5 ? 600 : 1 + (d * 37 + salt) % 97;
        for (uint64_t i = 0; i < len; i++)
            ids[i] = id_at(p++, salt);
        ck_assert_msg(tp_tokens_writer_append(w, ids, TP_DTYPE_UINT32, len, &err) == 0, "%s",
                      err.msg);
    }
    ck_assert_msg(tp_tokens_writer_finish(w, &err) == 0, "%s", err.msg);
    tp_tokens_writer_destroy(w);
    free(path);
}

static tp_tokens *open_tokens(const char *root, const char *name)
{
    char *path = tp_test_path(root, name);
    tp_tokens *t = NULL;
    tp_error err = {0};
    ck_assert_msg(tp_tokens_open(&t, path, &err) == 0, "%s", err.msg);
    free(path);
    return t;
}

static const tp_batch_field *field_of(const tp_batch *b, const char *name)
{
    for (uint32_t i = 0; i < b->nfields; i++)
        if (!strcmp(b->fields[i].name, name))
            return &b->fields[i];
    return NULL;
}

static int64_t value(const tp_batch_field *f, uint64_t i)
{
    return f->dtype == TP_DTYPE_INT64 ? ((const int64_t *)f->data)[i]
                                      : ((const int32_t *)f->data)[i];
}

/* Checks sample j of a batch: window `id` of dataset t, read independently. */
static void check_window(const tp_batch *b, uint32_t j, const tp_tokens *t, uint64_t id,
                         uint32_t L)
{
    int64_t want[L + 1];
    tp_error err = {0};
    ck_assert_msg(tp_tokens_read(t, id * (L + 1), L + 1, want, TP_DTYPE_INT64, &err) == 0, "%s",
                  err.msg);
    const tp_batch_field *in = field_of(b, "input_ids"), *lab = field_of(b, "labels");
    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(lab);
    ck_assert_int_eq(in->ndim, 2);
    ck_assert_int_eq(in->shape[1], L);
    for (uint32_t i = 0; i < L; i++) {
        ck_assert_int_eq(value(in, (uint64_t)j * L + i), want[i]);
        ck_assert_int_eq(value(lab, (uint64_t)j * L + i), want[i + 1]);
    }
    /* Position ids and boundaries from the document starts, one id at a time. */
    const tp_batch_field *pos = field_of(b, "position_ids"), *cu = field_of(b, "cu_seqlens");
    uint64_t first = id * (L + 1);
    int64_t run = 0;
    uint32_t k = 0;
    int32_t bounds[L + 2];
    bounds[k++] = 0;
    for (uint32_t i = 0; i < L; i++) {
        uint64_t d = tp_tokens_document_of(t, first + i);
        if (i > 0 && tp_tokens_document_start(t, d) == first + i) {
            run = 0;
            bounds[k++] = (int32_t)i;
        }
        if (pos)
            ck_assert_int_eq(value(pos, (uint64_t)j * L + i), run);
        run++;
    }
    bounds[k++] = (int32_t)L;
    if (cu) {
        ck_assert_int_eq(cu->dtype, TP_DTYPE_INT32);
        const int32_t *c = (const int32_t *)cu->data + (uint64_t)j * (L + 1);
        for (uint32_t i = 0; i <= L; i++)
            ck_assert_int_eq(c[i], i < k ? bounds[i] : (int32_t)L);
    }
}

/* ---- every window's arrays */

typedef struct wconfig {
    tp_dtype stored;
    uint32_t L, outputs;
} wconfig;

static const wconfig wconfigs[] = {
    {TP_DTYPE_UINT16, 37, TP_CLIENT_TOKENS_POSITIONS | TP_CLIENT_TOKENS_CU_SEQLENS},
    {TP_DTYPE_UINT32, 37, TP_CLIENT_TOKENS_INT32 | TP_CLIENT_TOKENS_POSITIONS},
    {TP_DTYPE_UINT16, 300, TP_CLIENT_TOKENS_CU_SEQLENS}, /* windows over several blocks */
    {TP_DTYPE_UINT32, 1, 0},
};

START_TEST(test_window_values)
{
    const wconfig *c = &wconfigs[_i];
    daemon_fx f;
    fx_init(&f);
    write_tokens_ds(f.root, "tok", 400, 3, c->stored);
    fx_start(&f, false, 0);
    tp_tokens *t = open_tokens(f.root, "tok");
    ck_assert_uint_gt(tp_tokens_shard_count(t), 3);
    tp_client_options o = client_options(&f, "tok");
    o.seq_len = c->L;
    o.token_outputs = c->outputs;
    o.shuffle = true;
    o.seed = 11;
    tp_client *cl = client_open(&o);
    uint64_t windows = tp_tokens_count(t) / (c->L + 1);
    ck_assert_uint_eq(tp_client_dataset_samples(cl), windows);
    uint64_t batches = tp_client_batches_per_epoch(cl);
    unsigned char *seen = calloc(windows, 1);
    for (uint64_t k = 0; k < batches; k++) {
        tp_batch b;
        tp_error err = {0};
        ck_assert_msg(tp_client_next(cl, &b, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(b.nfields, 2 + !!(c->outputs & TP_CLIENT_TOKENS_POSITIONS) +
                                         !!(c->outputs & TP_CLIENT_TOKENS_CU_SEQLENS));
        for (uint32_t j = 0; j < b.samples; j++) {
            ck_assert_uint_lt(b.ids[j], windows);
            seen[b.ids[j]]++;
            check_window(&b, j, t, b.ids[j], c->L);
        }
    }
    for (uint64_t w = 0; w < windows; w++)
        ck_assert_msg(seen[w] == 1, "window %llu seen %u times", (unsigned long long)w, seen[w]);
    free(seen);
    tp_client_close(cl);
    tp_tokens_close(t);
    fx_done(&f);
}
END_TEST

/* ---- ranks, resume, elastic resume */

/* Reads `nbatch` batches (all when 0: to the epoch's end) of rank `rank` of `world`,
 * starting at (epoch 0, consumed), appending ids; returns the position after them. */
static uint64_t read_rank(daemon_fx *f, const char *name, uint32_t L, uint32_t rank,
                          uint32_t world, uint64_t batch, uint64_t consumed, uint64_t nbatch,
                          uint64_t *ids, size_t *n, uint64_t *epoch_after)
{
    tp_client_options o = client_options(f, name);
    o.seq_len = L;
    o.shuffle = true;
    o.seed = 4;
    o.rank = rank;
    o.world_size = world;
    o.batch_size = batch;
    o.consumed = consumed;
    tp_client *c = client_open(&o);
    for (uint64_t k = 0; nbatch == 0 || k < nbatch; k++) {
        tp_batch b;
        tp_error err = {0};
        ck_assert_msg(tp_client_next(c, &b, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(b.epoch, 0);
        memcpy(ids + *n, b.ids, b.samples * sizeof(uint64_t));
        *n += b.samples;
        if (b.resume_epoch != 0)
            break;
    }
    uint64_t e, after;
    tp_client_position(c, &e, &after);
    *epoch_after = e;
    tp_client_close(c);
    return after;
}

/* Stops every rank after k batches under W ranks and resumes under W2: the epoch delivers
 * every window exactly once, the padding repeating windows from the epoch's start as
 * DistributedSampler's does, and the same world size reproduces the uninterrupted run. */
typedef struct elastic_case {
    uint32_t world, k, world2, batch2;
} elastic_case;

static const elastic_case elastic_cases[] = {
    {4, 3, 3, 4}, {2, 5, 5, 4}, {3, 2, 3, 4}, {4, 1, 1, 7}, {2, 9, 3, 2},
};

START_TEST(test_elastic)
{
    const elastic_case *ec = &elastic_cases[_i];
    enum { L = 15, B = 4 };
    daemon_fx f;
    fx_init(&f);
    write_tokens_ds(f.root, "tok", 300, 9, TP_DTYPE_UINT16);
    fx_start(&f, false, 0);
    tp_tokens *t = open_tokens(f.root, "tok");
    uint64_t n = tp_tokens_count(t) / (L + 1);
    uint64_t *ids = calloc(4 * n, sizeof(uint64_t));
    size_t got = 0;
    uint64_t consumed = 0, e = 0;
    for (uint32_t r = 0; r < ec->world; r++) {
        uint64_t c = read_rank(&f, "tok", L, r, ec->world, B, 0, ec->k, ids, &got, &e);
        ck_assert_uint_eq(e, 0);
        ck_assert(r == 0 || c == consumed); /* every rank agrees on the position */
        consumed = c;
    }
    ck_assert_uint_eq(consumed, (uint64_t)ec->k * B * ec->world);
    ck_assert_uint_eq(got, consumed);
    size_t first = got;
    for (uint32_t r = 0; r < ec->world2; r++) {
        read_rank(&f, "tok", L, r, ec->world2, ec->batch2, consumed, 0, ids, &got, &e);
        ck_assert_uint_eq(e, 1); /* the epoch ended */
    }
    /* Every window once; the extra ones are padding from the epoch's first positions. */
    uint64_t left = n - consumed, per_rank = left / ec->world2 + (left % ec->world2 != 0);
    ck_assert_uint_eq(got - first, per_rank * ec->world2);
    unsigned *count = calloc(n, sizeof(unsigned));
    for (size_t i = 0; i < got; i++)
        count[ids[i]]++;
    uint64_t repeats = 0;
    for (uint64_t w = 0; w < n; w++) {
        ck_assert_msg(count[w] >= 1, "window %llu never delivered", (unsigned long long)w);
        repeats += count[w] - 1;
    }
    ck_assert_uint_eq(repeats, per_rank * ec->world2 - left);
    /* Under the same world and batch size, the halves equal the uninterrupted epoch. */
    if (ec->world2 == ec->world && ec->batch2 == B) {
        uint64_t *whole = calloc(4 * n, sizeof(uint64_t));
        size_t nw = 0;
        for (uint32_t r = 0; r < ec->world; r++) {
            size_t before = nw;
            read_rank(&f, "tok", L, r, ec->world, B, 0, 0, whole, &nw, &e);
            /* rank r's first k batches lie in ids[r*k*B ..], its rest after `first` */
            ck_assert_int_eq(memcmp(whole + before, ids + (size_t)r * ec->k * B,
                                    (size_t)ec->k * B * sizeof(uint64_t)), 0);
        }
        size_t at = first;
        for (uint32_t r = 0; r < ec->world; r++) {
            size_t rank_total = nw / ec->world; /* every rank gets as many */
            size_t rest = rank_total - (size_t)ec->k * B;
            ck_assert_int_eq(memcmp(whole + r * rank_total + (size_t)ec->k * B, ids + at,
                                    rest * sizeof(uint64_t)), 0);
            at += rest;
        }
        free(whole);
    }
    free(count);
    free(ids);
    tp_tokens_close(t);
    fx_done(&f);
}
END_TEST

/* ---- mixtures */

START_TEST(test_mixture_schedule)
{
    /* Exact shares, spread; any P consecutive positions hold exactly a_i of source i. */
    static const double w[] = {0.5, 0.3, 0.2};
    static const uint64_t n[] = {7, 5, 3};
    tp_mixture m;
    tp_error err = {0};
    ck_assert_int_eq(tp__mixture_init(&m, w, n, 3, true, 1, &err), 0);
    ck_assert_uint_eq(m.period, 10);
    ck_assert_uint_eq(m.a[0], 5);
    ck_assert_uint_eq(m.a[1], 3);
    ck_assert_uint_eq(m.a[2], 2);
    for (uint64_t start = 0; start < 40; start++) {
        unsigned c[3] = {0};
        for (uint64_t g = start; g < start + 10; g++) {
            uint32_t s;
            uint64_t item;
            tp__mixture_at(&m, g, &s, &item);
            c[s]++;
        }
        ck_assert(c[0] == 5 && c[1] == 3 && c[2] == 2);
    }
    /* Each source cycles through its own epochs: every n_s occurrences are a permutation. */
    for (uint32_t s = 0; s < 3; s++) {
        uint64_t occ = 0;
        unsigned seen[7] = {0};
        for (uint64_t g = 0; occ < 4 * n[s]; g++) {
            uint32_t src;
            uint64_t item;
            tp__mixture_at(&m, g, &src, &item);
            if (src != s)
                continue;
            ck_assert_uint_lt(item, n[s]);
            seen[item]++;
            occ++;
            if (occ % n[s] == 0)
                for (uint64_t i = 0; i < n[s]; i++)
                    ck_assert_uint_eq(seen[i], occ / n[s]);
        }
    }
    /* Inexpressible weights round to 4096 and keep every source. */
    static const double odd[] = {1.0, 1e-9, 3.14159};
    ck_assert_int_eq(tp__mixture_init(&m, odd, n, 3, false, 1, &err), 0);
    ck_assert_uint_eq(m.period, TP_MIXTURE_PERIOD_MAX);
    ck_assert_uint_ge(m.a[1], 1);
    ck_assert_uint_eq(m.a[0] + m.a[1] + m.a[2], TP_MIXTURE_PERIOD_MAX);
    static const double bad[] = {1.0, 0.0};
    ck_assert_int_eq(tp__mixture_init(&m, bad, n, 2, false, 1, &err), TP_EUSAGE);
}
END_TEST

START_TEST(test_mixture_batches)
{
    enum { L = 15, B = 5, W = 2 };
    daemon_fx f;
    fx_init(&f);
    write_tokens_ds(f.root, "web", 300, 1, TP_DTYPE_UINT16);
    write_tokens_ds(f.root, "code", 90, 2, TP_DTYPE_UINT32);
    fx_start(&f, false, 0);
    tp_tokens *web = open_tokens(f.root, "web"), *code = open_tokens(f.root, "code");
    uint64_t nweb = tp_tokens_count(web) / (L + 1);
    tp_client_source src[2] = {{"web", 0.7}, {"code", 0.3}};
    tp_client *c[W];
    for (uint32_t r = 0; r < W; r++) {
        tp_client_options o = client_options(&f, NULL);
        o.sources = src;
        o.nsources = 2;
        o.seq_len = L;
        o.batch_size = B;
        o.rank = r;
        o.world_size = W;
        o.shuffle = true;
        o.seed = 8;
        o.mixture_epoch = 200;
        c[r] = client_open(&o);
    }
    /* One global batch is B * W = 10 positions = one period: exactly 7 web and 3 code. */
    for (int k = 0; k < 30; k++) {
        unsigned from_web = 0;
        for (uint32_t r = 0; r < W; r++) {
            tp_batch b;
            tp_error err = {0};
            ck_assert_msg(tp_client_next(c[r], &b, &err) == 0, "%s", err.msg);
            for (uint32_t j = 0; j < b.samples; j++) {
                bool is_web = b.ids[j] < nweb;
                from_web += is_web;
                check_window(&b, j, is_web ? web : code, is_web ? b.ids[j] : b.ids[j] - nweb, L);
            }
        }
        ck_assert_uint_eq(from_web, 7);
    }
    for (uint32_t r = 0; r < W; r++)
        tp_client_close(c[r]);
    tp_tokens_close(web);
    tp_tokens_close(code);
    fx_done(&f);
}
END_TEST

/* ---- document-aligned windows */

/* Both modes, in dataset order: the windows' ids tile the stream in order; each starts a
 * document or continues one longer than L + 1 by L + 1 ids; PAD holds one document's
 * piece, PACK whole documents while the next would not fit; padding is pad_id / -100 /
 * position 0, with a boundary before it. */
START_TEST(test_aligned)
{
    const uint32_t mode = _i ? 2 : 1; /* pad, pack */
    enum { L = 40, PAD = 77 };
    daemon_fx f;
    fx_init(&f);
    write_tokens_ds(f.root, "tok", 150, 6, TP_DTYPE_UINT16);
    fx_start(&f, false, 0);
    tp_tokens *t = open_tokens(f.root, "tok");
    tp_client_options o = client_options(&f, "tok");
    o.seq_len = L;
    o.align_documents = mode;
    o.pad_id = PAD;
    o.token_outputs = TP_CLIENT_TOKENS_POSITIONS | TP_CLIENT_TOKENS_CU_SEQLENS;
    tp_client *c = client_open(&o);
    uint64_t T = tp_tokens_count(t), at = 0, expect_id = 0;
    uint64_t batches = tp_client_batches_per_epoch(c);
    int64_t *ids = malloc((T + 1) * sizeof(int64_t));
    tp_error err = {0};
    ck_assert_int_eq(tp_tokens_read(t, 0, T, ids, TP_DTYPE_INT64, &err), 0);
    for (uint64_t k = 0; k < batches; k++) {
        tp_batch b;
        ck_assert_msg(tp_client_next(c, &b, &err) == 0, "%s", err.msg);
        const tp_batch_field *in = field_of(&b, "input_ids"), *lab = field_of(&b, "labels"),
                             *pos = field_of(&b, "position_ids"), *cu = field_of(&b, "cu_seqlens");
        for (uint32_t j = 0; j < b.samples; j++, expect_id++) {
            ck_assert_uint_eq(b.ids[j], expect_id);
            uint64_t d = tp_tokens_document_of(t, at), d0 = tp_tokens_document_start(t, d);
            ck_assert_msg((at - d0) % (L + 1) == 0, "window %llu starts inside a document",
                          (unsigned long long)expect_id);
            /* the window's ids: up to L + 1, ending at a document end or L + 1 in */
            uint64_t end = TP_MIN(tp_tokens_document_start(t, d + 1), at + L + 1);
            while (mode == 2 && end == tp_tokens_document_start(t, d + 1) &&
                   d + 1 < tp_tokens_document_count(t) &&
                   tp_tokens_document_start(t, d + 2) - at <= L + 1)
                end = tp_tokens_document_start(t, ++d + 1);
            uint64_t n = end - at;
            uint32_t real = (uint32_t)TP_MIN(n, L);
            const int32_t *cj = (const int32_t *)cu->data + (uint64_t)j * (L + 1);
            uint32_t kb = 0, run = 0;
            ck_assert_int_eq(cj[kb++], 0);
            for (uint32_t i = 0; i < L; i++) {
                bool is_real = i < real;
                ck_assert_int_eq(value(in, (uint64_t)j * L + i), is_real ? ids[at + i] : PAD);
                ck_assert_int_eq(value(lab, (uint64_t)j * L + i),
                                 i + 1 < n ? ids[at + i + 1] : -100);
                if (is_real && i > 0 &&
                    tp_tokens_document_start(t, tp_tokens_document_of(t, at + i)) == at + i) {
                    ck_assert_int_eq(cj[kb++], (int32_t)i);
                    run = 0;
                }
                ck_assert_int_eq(value(pos, (uint64_t)j * L + i), is_real ? run : 0);
                run++;
            }
            if (real < L)
                ck_assert_int_eq(cj[kb++], (int32_t)real);
            for (; kb <= L; kb++)
                ck_assert_int_eq(cj[kb], L);
            at = end;
        }
    }
    ck_assert_uint_eq(at, T); /* the windows tiled the whole stream */
    ck_assert_uint_eq(expect_id, tp_client_dataset_samples(c));
    free(ids);
    tp_client_close(c);
    tp_tokens_close(t);
    fx_done(&f);
}
END_TEST

/* ---- bad input */

START_TEST(test_corrupt_block)
{
    enum { L = 31 };
    daemon_fx f;
    fx_init(&f);
    write_tokens_ds(f.root, "tok", 200, 5, TP_DTYPE_UINT16);
    char *shard = tp_test_path(f.root, "tok/shard-00001.tpt");
    tp_test_flip(shard, 4096 + 100, 0x40); /* an id of the shard's first block */
    fx_start(&f, false, 0);
    tp_client_options o = client_options(&f, "tok");
    o.seq_len = L;
    tp_client *c = client_open(&o);
    int rc = 0;
    tp_error err = {0};
    for (uint64_t k = 0; k < tp_client_batches_per_epoch(c) && rc == 0; k++) {
        tp_batch b;
        rc = tp_client_next(c, &b, &err);
    }
    ck_assert_int_eq(rc, TP_ESESSION);
    ck_assert_msg(strstr(err.msg, "shard-00001.tpt") && strstr(err.msg, "block 0") &&
                      strstr(err.msg, "checksum"), "%s", err.msg);
    tp_client_close(c);
    free(shard);
    fx_done(&f);
}
END_TEST

START_TEST(test_refusals)
{
    daemon_fx f;
    fx_init(&f);
    write_tokens_ds(f.root, "tok", 20, 5, TP_DTYPE_UINT16);
    fx_start(&f, false, 0);
    struct {
        uint32_t seq_len, outputs;
        const char *field, *want;
    } cases[] = {
        {0, 0, NULL, "give seq_len"},
        {100000, 0, NULL, "not one window"},
        {16, 0, "jpg", "no field 'jpg'"},
    };
    for (size_t i = 0; i < TP_ARRAY_LEN(cases); i++) {
        tp_client_options o = client_options(&f, "tok");
        o.seq_len = cases[i].seq_len;
        const char *fields[1] = {cases[i].field};
        if (cases[i].field) {
            o.fields = fields;
            o.nfields = 1;
        }
        tp_client *c = NULL;
        tp_error err = {0};
        ck_assert_int_lt(tp_client_open(&c, &o, &err), 0);
        ck_assert_msg(strstr(err.msg, cases[i].want), "case %zu: %s", i, err.msg);
    }
    fx_done(&f);
}
END_TEST

static Suite *windows_suite(void)
{
    Suite *s = suite_create("windows");
    TCase *tc = tcase_create("windows");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_window_values, 0, TP_ARRAY_LEN(wconfigs));
    tcase_add_loop_test(tc, test_elastic, 0, TP_ARRAY_LEN(elastic_cases));
    tcase_add_loop_test(tc, test_aligned, 0, 2);
    tcase_add_test(tc, test_mixture_schedule);
    tcase_add_test(tc, test_mixture_batches);
    tcase_add_test(tc, test_corrupt_block);
    tcase_add_test(tc, test_refusals);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tp_test_run(windows_suite()); }
