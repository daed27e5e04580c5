/* Writes the seed messages of fuzz.protocol (tests/fuzz/corpus/protocol) for the current
 * protocol version, valid ones and ones each check must refuse, one file per message named
 * by its content's hash. Run when the protocol changes:
 *   cc -D_GNU_SOURCE -I loader -I common -I include -I <build>/include tests/fuzz/protocol_seeds.c \
 *      loader/protocol.c common/error.c common/checksum.c common/checksum_avx2.c \
 *      -o seeds && ./seeds DIR */
#include "protocol.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static const char *dir;

static void put(const void *msg, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/v%u-%016" PRIx64, dir, TP_PROTOCOL_VERSION,
             tp__hash64(msg, len));
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(msg, 1, len, f) != len || fclose(f)) {
        perror(path);
        exit(1);
    }
}

static tp_msg_open base(void)
{
    tp_msg_open m;
    memset(&m, 0, sizeof(m));
    tp__msg_init(&m.h, TP_MSG_OPEN, sizeof(m));
    strcpy(m.dataset, "train");
    strcpy(m.transform, "rrc224");
    m.batch_size = 256;
    m.world = 1;
    m.prefetch = 4;
    return m;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    tp_msg_hello h;
    memset(&h, 0, sizeof(h));
    tp__msg_init(&h.h, TP_MSG_HELLO, sizeof(h));
    h.min_version = h.max_version = TP_PROTOCOL_VERSION;
    put(&h, sizeof(h));
    tp_msg_header state;
    tp__msg_init(&state, TP_MSG_STATE, sizeof(state));
    put(&state, sizeof(state));
    tp_msg_header close_msg;
    tp__msg_init(&close_msg, TP_MSG_CLOSE, sizeof(close_msg));
    put(&close_msg, sizeof(close_msg));
    tp_msg_header detached;
    tp__msg_init(&detached, TP_MSG_DETACHED, sizeof(detached));
    put(&detached, sizeof(detached));

    tp_msg_open m = base(); /* images, the defaults */
    put(&m, sizeof(m));
    m.flags = TP_OPEN_SHUFFLE | TP_OPEN_DROP_LAST;
    m.rank = 3, m.world = 8, m.epoch = 2, m.consumed = 4096, m.seed = 7;
    strcpy(m.transform, "random_resized_crop(176, scale=0.35:1) | hflip | to(float16, chw)");
    m.nviews = 2;
    strcpy(m.views[0].name, "global0");
    strcpy(m.views[0].transform, "rrc224");
    strcpy(m.views[1].name, "local0");
    strcpy(m.views[1].field, "jpg");
    strcpy(m.views[1].transform, "random_resized_crop(96, scale=0.05:0.4)");
    put(&m, sizeof(m));

    m = base(); /* windows of a token dataset */
    strcpy(m.dataset, "corpus");
    m.transform[0] = '\0';
    m.seq_len = 2048;
    m.batch_size = 8;
    m.tokens = TP_TOKENS_POSITIONS | TP_TOKENS_CU_SEQLENS;
    m.consumed = 123456;
    put(&m, sizeof(m));
    m.tokens = TP_TOKENS_INT32;
    m.align = TP_ALIGN_PACK;
    m.pad_id = 50256;
    m.nfields = 2;
    strcpy(m.fields[0], "input_ids");
    strcpy(m.fields[1], "position_ids");
    put(&m, sizeof(m));

    m = base(); /* a mixture */
    m.dataset[0] = '\0';
    m.seq_len = 1024;
    m.nsources = 3;
    m.mixture_epoch = 100000;
    static const char *names[] = {"web", "code", "books/en"};
    static const double weights[] = {0.6, 0.3, 0.1};
    for (int i = 0; i < 3; i++) {
        strcpy(m.sources[i].dataset, names[i]);
        m.sources[i].weight = weights[i];
    }
    put(&m, sizeof(m));

    /* each refused by one check */
    tp_msg_open bad = m;
    bad.align = 3;
    put(&bad, sizeof(bad));
    bad = m;
    bad.sources[1].weight = 0;
    put(&bad, sizeof(bad));
    bad = m;
    bad.nsources = TP_OPEN_MAX_SOURCES + 1;
    put(&bad, sizeof(bad));
    bad = m;
    memset(bad.sources[2].dataset, 'a', sizeof(bad.sources[2].dataset));
    put(&bad, sizeof(bad));
    bad = m;
    bad.seq_len = TP_MAX_SEQ_LEN + 1;
    put(&bad, sizeof(bad));
    bad = m;
    bad.seq_len = 0;
    put(&bad, sizeof(bad));
    bad = m;
    bad.tokens = 1u << 7;
    put(&bad, sizeof(bad));
    bad = base();
    bad.h.length = sizeof(bad) - 8; /* a length that lies */
    put(&bad, sizeof(bad));
    return 0;
}
