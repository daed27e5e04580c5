/* `turbopump merge`: the parts of a `pack --part I/N` run (or any compatible datasets)
 * published as one dataset, their shards hard-linked, not copied (tp_dataset_merge). */
#include "cli.h"

#include <turbopump/dataset.h>

#include <getopt.h>
#include <stdlib.h>

#define CMD "merge"

void tp_usage_merge(FILE *out)
{
    fprintf(out,
            "Usage: turbopump merge PART... DST [--force] [--quiet]\n\n"
            "Publish datasets as one dataset at DST without copying their shards: each\n"
            "shard is hard-linked into DST, so DST must be on the parts' file system, and\n"
            "the parts stay as they were (remove them once DST is in place). Parts of one\n"
            "'turbopump pack --part I/N' run must all be given, in any order; they are\n"
            "merged in part order, giving the samples in the order one pack of the whole\n"
            "input gives. Other datasets are concatenated in the order given. All must have\n"
            "the same shard format, alignment, fields, classes and zstd dictionary.\n"
            "DST appears only when complete, as with pack.\n\n"
            "Options:\n"
            "  --force     replace an existing dataset at DST\n"
            "  --quiet     no summary\n"
            "  -h, --help  show this help\n");
}

int tp_cmd_merge(int argc, char **argv)
{
    static const struct option longopts[] = {{"force", no_argument, 0, 'f'},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    bool force = false, quiet = false;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'f')
            force = true;
        else if (c == 'q')
            quiet = true;
        else if (c == 'h') {
            tp_usage_merge(stdout);
            return TP_EXIT_OK;
        } else
            return tp_cli_usage_error(CMD, "unknown option");
    }
    if (argc - optind < 2)
        return tp_cli_usage_error(CMD, "needs at least one PART and DST");
    double start = tp_cli_now();
    const char *dst = argv[argc - 1];
    tp_error err;
    if (tp_dataset_merge((const char *const *)argv + optind, (size_t)(argc - optind - 1), dst,
                         force, &err) < 0) {
        tp_cli_error(CMD, "%s", err.msg);
        return TP_EXIT_FAIL;
    }
    tp_dataset *ds;
    if (!quiet && tp_dataset_open(&ds, dst, &err) == 0) {
        printf("merged %d datasets into %s: %llu samples in %zu shards, in %.2f s\n",
               argc - optind - 1, dst, (unsigned long long)tp_dataset_sample_count(ds),
               tp_dataset_shard_count(ds), tp_cli_now() - start);
        tp_dataset_close(ds);
    }
    return TP_EXIT_OK;
}
