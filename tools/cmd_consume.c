/* `turbopump consume`: a training loop without the training, on the public client API
 * alone (include/turbopump/client.h), so it is also the example of how to use it. It reads
 * E epochs of batches, optionally printing every sample id received, and reports
 * throughput and the time to the first batch. */
#include <turbopump/client.h>

#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <sys/uio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CMD "consume"

void tp_usage_consume(FILE *out)
{
    fprintf(out,
            "Usage: turbopump consume --dataset NAME [--socket PATH] [--batch-size B]\n"
            "                         [--rank R] [--world-size W] [--epochs E] [--seed S]\n"
            "                         [--drop-last] [--no-shuffle] [--transform T]\n"
            "                         [--fields A,B] [--output uint8|float32|float16]\n"
            "                         [--start-epoch E --start-batch K] [--batches N]\n"
            "                         [--start-consumed C] [--prefetch N] [--step-ms MS]\n"
            "                         [--seq-len L [--position-ids] [--cu-seqlens]\n"
            "                          [--int32] [--align pad|pack]] [--print-ids] [--digest]\n"
            "                         [--json]\n\n"
            "Reads batches from the daemon at the socket as a training process would and\n"
            "throws them away. With no daemon there, starts a private one serving NAME's\n"
            "directory (NAME is then a path). With --step-ms it emulates an accelerator:\n"
            "it holds each batch for MS milliseconds, as a training step would, and reports\n"
            "its utilisation (step time / wall time, as MLPerf Storage's AU).\n\n"
            "Options:\n"
            "  --dataset NAME      the dataset, relative to the daemon's --root (required)\n"
            "  --socket PATH       the daemon's socket (default as for serve)\n"
            "  --batch-size B      samples per batch (default 256)\n"
            "  --rank R, --world-size W   this process's share of the job (default 0 of 1)\n"
            "  --epochs E          epochs to read (default 1)\n"
            "  --seed S            the shuffle and augmentation seed (default 0)\n"
            "  --drop-last         equal shares of floor(N/W) and full batches only\n"
            "  --no-shuffle        dataset order\n"
            "  --transform T       a pipeline (docs/TRANSFORMS.md): rrc224 (default),\n"
            "                      center224, none or a description\n"
            "  --fields A,B        the fields to receive (default: all that batch)\n"
            "  --output O          images as uint8 (default), float32 or float16 (normalised)\n"
            "  --start-epoch E, --start-batch K   resume at batch K of epoch E\n"
            "  --start-consumed C  resume epoch E after C of its positions, read by the whole\n"
            "                      job under any world size (elastic resume)\n"
            "  --seq-len L         a token dataset: windows of L ids (input_ids, labels)\n"
            "  --position-ids, --cu-seqlens   the windows' document positions and boundaries\n"
            "  --int32             int32 token arrays instead of int64\n"
            "  --align pad|pack    document-aligned windows, padded\n"
            "  --batches N         stop after N batches\n"
            "  --prefetch N        batches the daemon prepares ahead (default 4)\n"
            "  --step-ms MS        emulated compute per batch, in milliseconds\n"
            "  --no-autostart      fail when no daemon answers\n"
            "  --print-ids         print 'EPOCH SAMPLE_ID' for every sample received\n"
            "  --digest            print 'EPOCH BATCH HASH' for every batch: a 64-bit hash\n"
            "                      of its ids and every field's bytes (to compare runs)\n"
            "  --json              print a JSON summary\n"
            "  -h, --help          show this help\n");
}

typedef struct consume_options {
    tp_client_options c;
    const char *fields[TP_CLIENT_MAX_FIELDS];
    uint64_t epochs, batches, step_ms;
    bool print_ids, digest, json;
    char fieldbuf[512];
} consume_options;

static int split_fields(consume_options *o, const char *list)
{
    snprintf(o->fieldbuf, sizeof(o->fieldbuf), "%s", list);
    o->c.nfields = 0;
    for (char *save = NULL, *f = strtok_r(o->fieldbuf, ",", &save); f;
         f = strtok_r(NULL, ",", &save)) {
        if (o->c.nfields == TP_CLIENT_MAX_FIELDS)
            return -1;
        o->fields[o->c.nfields++] = f;
    }
    o->c.fields = o->c.nfields ? o->fields : NULL;
    return 0;
}

static int number(int c, const char *arg, consume_options *o)
{
    uint64_t v = 0;
    static const char *const names[] = {['b'] = "--batch-size", ['r'] = "--rank",
                                        ['w'] = "--world-size", ['E'] = "--epochs",
                                        ['S'] = "--seed", ['e'] = "--start-epoch",
                                        ['k'] = "--start-batch", ['n'] = "--batches",
                                        ['P'] = "--prefetch", ['t'] = "--step-ms",
                                        ['C'] = "--start-consumed", ['q'] = "--seq-len"};
    uint64_t max = c == 'b' ? 65536 : c == 'r' || c == 'w' ? 65535 : c == 'P' ? 256
                 : c == 't' ? 3600000 : c == 'q' ? 1u << 20 : UINT64_MAX;
    uint64_t min = c == 'b' || c == 'w' || c == 'E' || c == 'P' || c == 'n' || c == 'q' ? 1 : 0;
    if (tp_cli_u64(CMD, names[c], arg, min, max, &v) < 0)
        return -1;
    switch (c) {
    case 'b': o->c.batch_size = v; break;
    case 'r': o->c.rank = (uint32_t)v; break;
    case 'w': o->c.world_size = (uint32_t)v; break;
    case 'E': o->epochs = v; break;
    case 'S': o->c.seed = v; break;
    case 'e': o->c.epoch = v; break;
    case 'k': o->c.batch = v; break;
    case 'n': o->batches = v; break;
    case 't': o->step_ms = v; break;
    case 'C': o->c.consumed = v; break;
    case 'q': o->c.seq_len = (uint32_t)v; break;
    default: o->c.prefetch = (uint32_t)v; break;
    }
    return 0;
}

static int parse(int argc, char **argv, consume_options *o)
{
    static const struct option longopts[] = {
        {"dataset", required_argument, 0, 'D'}, {"socket", required_argument, 0, 's'},
        {"batch-size", required_argument, 0, 'b'}, {"rank", required_argument, 0, 'r'},
        {"world-size", required_argument, 0, 'w'}, {"epochs", required_argument, 0, 'E'},
        {"seed", required_argument, 0, 'S'}, {"drop-last", no_argument, 0, 'L'},
        {"no-shuffle", no_argument, 0, 'N'}, {"transform", required_argument, 0, 'T'},
        {"fields", required_argument, 0, 'F'}, {"output", required_argument, 0, 'O'},
        {"start-epoch", required_argument, 0, 'e'}, {"start-batch", required_argument, 0, 'k'},
        {"batches", required_argument, 0, 'n'}, {"prefetch", required_argument, 0, 'P'},
        {"step-ms", required_argument, 0, 't'},
        {"no-autostart", no_argument, 0, 'A'}, {"print-ids", no_argument, 0, 'I'},
        {"digest", no_argument, 0, 'G'},
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'},
        {"start-consumed", required_argument, 0, 'C'}, {"seq-len", required_argument, 0, 'q'},
        {"position-ids", no_argument, 0, 'p'}, {"cu-seqlens", no_argument, 0, 'c'},
        {"int32", no_argument, 0, 'i'}, {"align", required_argument, 0, 'a'}, {0, 0, 0, 0}};
    memset(o, 0, sizeof(*o));
    o->c.shuffle = true;
    o->epochs = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (strchr("brwESeknPtCq", c) && c) {
            if (number(c, optarg, o) < 0)
                return TP_EXIT_USAGE;
        } else if (c == 'D') {
            o->c.dataset = optarg;
        } else if (c == 's') {
            o->c.socket = optarg;
        } else if (c == 'L' || c == 'N' || c == 'A' || c == 'I' || c == 'G' || c == 'j') {
            *(c == 'L' ? &o->c.drop_last : c == 'A' ? &o->c.no_autostart
              : c == 'I' ? &o->print_ids : c == 'G' ? &o->digest : c == 'j' ? &o->json
                                                                              : &o->c.shuffle) =
                c != 'N';
        } else if (c == 'p' || c == 'c' || c == 'i') {
            o->c.token_outputs |= c == 'p' ? TP_CLIENT_TOKENS_POSITIONS
                                  : c == 'c' ? TP_CLIENT_TOKENS_CU_SEQLENS : TP_CLIENT_TOKENS_INT32;
        } else if (c == 'a' && (!strcmp(optarg, "pad") || !strcmp(optarg, "pack"))) {
            o->c.align_documents = optarg[1] == 'a' && optarg[2] == 'd' ? 1 : 2;
        } else if (c == 'T') {
            o->c.transform = optarg;
        } else if (c == 'F') {
            if (split_fields(o, optarg) < 0)
                return tp_cli_usage_error(CMD, "more than %d fields", TP_CLIENT_MAX_FIELDS);
        } else if (c == 'O' && (!strcmp(optarg, "uint8") || !strcmp(optarg, "float32") ||
                                !strcmp(optarg, "float16"))) {
            o->c.output = optarg[0] == 'u' ? TP_CLIENT_UINT8 : !strcmp(optarg, "float32")
                                                                   ? TP_CLIENT_FLOAT32
                                                                   : TP_CLIENT_FLOAT16;
        } else if (c == 'h') {
            tp_usage_consume(stdout);
            exit(TP_EXIT_OK);
        } else {
            return tp_cli_usage_error(CMD, "bad option or value (see --help)");
        }
    }
    if (optind != argc)
        return tp_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!o->c.dataset)
        return tp_cli_usage_error(CMD, "--dataset NAME is required");
    uint32_t world = o->c.world_size ? o->c.world_size : 1;
    if (o->c.rank >= world)
        return tp_cli_usage_error(CMD, "--rank %u is not below --world-size %u", o->c.rank, world);
    return 0;
}

int tp_cmd_consume(int argc, char **argv)
{
    consume_options o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc;
    static char outbuf[1 << 20];
    setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));
    double t0 = tp_cli_now(), first = -1;
    o.c.max_batches = o.batches;
    /* with --epochs the daemon prepares no batch past them */
    o.c.max_epochs = o.batches ? 0 : (uint32_t)TP_MIN(o.epochs, UINT32_MAX);
    tp_client *c;
    tp_error err = {0};
    if (tp_client_open(&c, &o.c, &err) < 0) {
        tp_cli_error(CMD, "%s", err.msg);
        return TP_EXIT_FAIL;
    }
    uint64_t want = o.batches ? o.batches : o.epochs * tp_client_batches_per_epoch(c);
    uint64_t samples = 0, bytes = 0, skipped = 0, got = 0;
    tp_batch b;
    for (; got < want && (rc = tp_client_next(c, &b, &err)) == 0; got++) {
        if (first < 0)
            first = tp_cli_now() - t0;
        samples += b.samples;
        skipped += b.skipped;
        for (uint32_t i = 0; i < b.nfields; i++)
            bytes += b.fields[i].bytes;
        for (uint32_t i = 0; o.print_ids && i < b.samples; i++)
            printf("%llu %llu\n", (unsigned long long)b.epoch, (unsigned long long)b.ids[i]);
        if (o.digest) {
            struct iovec v[TP_CLIENT_MAX_FIELDS + 1] = {
                {.iov_base = (void *)b.ids, .iov_len = b.samples * sizeof(*b.ids)}};
            for (uint32_t i = 0; i < b.nfields; i++)
                v[i + 1] = (struct iovec){(void *)b.fields[i].data, b.fields[i].bytes};
            printf("%llu %llu %016llx\n", (unsigned long long)b.epoch,
                   (unsigned long long)b.index,
                   (unsigned long long)tp__hash64_pieces(v, b.nfields + 1u));
        }
        if (o.step_ms) { /* the emulated step, holding the batch as training would */
            struct timespec ts = {(time_t)(o.step_ms / 1000), (long)(o.step_ms % 1000) * 1000000};
            while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
        }
    }
    double secs = tp_cli_now() - t0;
    uint64_t epoch, batch, consumed;
    tp_client_state(c, &epoch, &batch);
    tp_client_position(c, &epoch, &consumed);
    tp_client_close(c);
    if (rc < 0) {
        fflush(stdout);
        tp_cli_error(CMD, "after %llu batches: %s; resume with --start-epoch %llu "
                     "--start-batch %llu (under another world size: --start-consumed %llu)",
                     (unsigned long long)got, err.msg, (unsigned long long)epoch,
                     (unsigned long long)batch, (unsigned long long)consumed);
        return TP_EXIT_FAIL;
    }
    double run = TP_MAX(secs - first, 1e-9), compute = (double)got * o.step_ms / 1e3;
    if (o.json)
        printf("{\"samples\": %llu, \"batches\": %llu, \"skipped\": %llu, \"seconds\": %.3f, "
               "\"samples_per_s\": %.1f, \"first_batch_ms\": %.1f, \"bytes\": %llu, "
               "\"gb_per_s\": %.3f, \"next_epoch\": %llu, \"next_batch\": %llu, "
               "\"next_consumed\": %llu, \"compute_s\": %.3f, \"au\": %.4f}\n",
               (unsigned long long)samples, (unsigned long long)got,
               (unsigned long long)skipped, secs, samples / TP_MAX(secs, 1e-9), first * 1e3,
               (unsigned long long)bytes, bytes / run / 1e9, (unsigned long long)epoch,
               (unsigned long long)batch, (unsigned long long)consumed, compute,
               compute / TP_MAX(secs, 1e-9));
    else if (!o.print_ids && !o.digest)
        printf("%llu samples in %llu batches, %.1f s: %.0f samples/s, first batch after "
               "%.1f ms; resume at epoch %llu batch %llu (consumed %llu)\n",
               (unsigned long long)samples, (unsigned long long)got, secs,
               samples / TP_MAX(secs, 1e-9), first * 1e3, (unsigned long long)epoch,
               (unsigned long long)batch, (unsigned long long)consumed);
    if (!o.json && !o.print_ids && !o.digest && o.step_ms)
        printf("accelerator utilisation %.1f%% (%.1f s of steps in %.1f s)\n",
               100 * compute / TP_MAX(secs, 1e-9), compute, secs);
    return TP_EXIT_OK;
}
