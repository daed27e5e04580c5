/* A dataset whose every byte is known, for the service tests that check whole epochs
 * (check_page_cache.c, check_ring_pool.c): field "t" (uint8 [24, 24, 3]) of N samples,
 * each a function of its id, stored raw in shards of about 64 KiB. */
#ifndef TP_PATTERN_FX_H
#define TP_PATTERN_FX_H

#include "service_fx.h"

enum { N = 203, BATCH = 8, SIDE = 24, TBYTES = SIDE * SIDE * 3 };

static inline void tensor_of(uint64_t id, unsigned char *out) { tp_test_fill(out, TBYTES, id, 11); }

/* Writes the dataset as dir/`name`. */
static inline void write_ds(const char *root, const char *name)
{
    static const tp_field_info fields[] = {{.name = "t", .kind = TP_FIELD_TENSOR,
                                            .dtype = TP_DTYPE_UINT8, .ndim = 3,
                                            .shape = {SIDE, SIDE, 3}}};
    char *path = tp_test_path(root, name);
    tp_dataset_writer_options o = {.fields = fields, .nfields = 1, .shard_bytes = 64 << 10};
    tp_dataset_writer *w;
    tp_error err = {0};
    ck_assert_msg(tp_dataset_writer_create(&w, path, &o, &err) == 0, "%s", err.msg);
    for (uint64_t id = 0; id < N; id++) {
        unsigned char t[TBYTES];
        tensor_of(id, t);
        tp_field_value v = {.field = 0, .data = t, .size = TBYTES, .raw_size = TBYTES};
        ck_assert_msg(tp_dataset_writer_append(w, &v, 1, &err) == 0, "%s", err.msg);
    }
    ck_assert_msg(tp_dataset_writer_finish(w, &err) == 0, "%s", err.msg);
    tp_dataset_writer_destroy(w);
    free(path);
}

/* Polls the daemon's figures until no session is left and no ring memory reserved but
 * the idle rings'. */
static inline bool wait_idle(tp_server *srv, int timeout_ms)
{
    for (int waited = 0;; waited += 10) {
        tp_server_figures fig;
        ck_assert_int_eq(tp_server_figures_get(srv, &fig), 0);
        bool idle = fig.nsessions == 0 && fig.memory_used == fig.idle_ring_bytes;
        tp_server_figures_free(&fig);
        if (idle)
            return true;
        if (waited >= timeout_ms)
            return false;
        usleep(10000);
    }
}

/* Two epochs in batches of `batch`, shuffled with `seed`: every sample exactly once per
 * epoch with its own bytes. */
static inline void read_epochs_seeded(daemon_fx *f, uint32_t batch, uint64_t seed)
{
    tp_client_options o = client_options(f, "ten");
    o.batch_size = batch;
    o.shuffle = seed != 0;
    o.seed = seed;
    tp_client *c = client_open(&o);
    for (int e = 0; e < 2; e++) {
        unsigned seen[N] = {0};
        uint64_t wrong = 0;
        for (uint64_t k = 0; k < (N + batch - 1) / batch; k++) {
            tp_batch b;
            tp_error err = {0};
            ck_assert_msg(tp_client_next(c, &b, &err) == 0, "epoch %d batch %llu: %s", e,
                          (unsigned long long)k, err.msg);
            const tp_batch_field *t = batch_field(&b, "t");
            for (uint32_t j = 0; j < b.samples; j++) {
                unsigned char v[TBYTES];
                ck_assert_uint_lt(b.ids[j], N);
                tensor_of(b.ids[j], v);
                wrong += memcmp((const unsigned char *)t->data + j * TBYTES, v, TBYTES) != 0;
                seen[b.ids[j]]++;
            }
        }
        ck_assert_uint_eq(wrong, 0);
        for (int id = 0; id < N; id++)
            ck_assert_msg(seen[id] == 1, "epoch %d: sample %d seen %u times", e, id, seen[id]);
    }
    tp_client_close(c);
    ck_assert(wait_idle(f->srv, 10000));
}

static inline void read_two_epochs(daemon_fx *f, uint32_t batch) { read_epochs_seeded(f, batch, 0); }

#endif
