/* The smallest libturbopump program: opens a session on a running daemon, reads one batch
 * and prints what it holds. Build it against an installed turbopump with
 *   cc first_batch.c $(pkg-config --cflags --libs turbopump)
 * and run it as: first_batch SOCKET DATASET */
#include <turbopump/client.h>

#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: first_batch SOCKET DATASET\n");
        return 2;
    }
    tp_client_options o = {.socket = argv[1], .dataset = argv[2], .batch_size = 8,
                           .shuffle = true, .seed = 1, .no_autostart = true};
    tp_client *c;
    tp_error err;
    if (tp_client_open(&c, &o, &err) < 0) {
        fprintf(stderr, "first_batch: %s\n", err.msg);
        return 1;
    }
    tp_batch b;
    int rc = tp_client_next(c, &b, &err);
    if (rc == 0) {
        printf("epoch %llu batch %llu: %u samples, first id %llu\n",
               (unsigned long long)b.epoch, (unsigned long long)b.index, b.samples,
               (unsigned long long)b.ids[0]);
        for (uint32_t i = 0; i < b.nfields; i++)
            printf("  %s: %u dims, shape[0] %lld, %llu bytes\n", b.fields[i].name,
                   b.fields[i].ndim, (long long)b.fields[i].shape[0],
                   (unsigned long long)b.fields[i].bytes);
    } else {
        fprintf(stderr, "first_batch: %s\n", err.msg);
    }
    tp_client_close(c);
    return rc < 0;
}
