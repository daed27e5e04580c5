/* The `turbopump` command: dispatches to subcommands, each with its own --help. */
#include "cli.h"

#include <turbopump/version.h>

#include <signal.h>

static const tp_cli_command commands[] = {
    {"gen", "generate synthetic datasets (ImageFolder JPEGs, raw tensors)", tp_cmd_gen,
     tp_usage_gen},
    {"pack", "convert images, shards, listings or token files into a dataset", tp_cmd_pack,
     tp_usage_pack},
    {"merge", "publish the parts of a pack --part run as one dataset", tp_cmd_merge,
     tp_usage_merge},
    {"inspect", "describe a dataset (samples, shards, fields, classes)", tp_cmd_inspect,
     tp_usage_inspect},
    {"verify", "check every checksum of a dataset (and optionally decode)", tp_cmd_verify,
     tp_usage_verify},
    {"bench", "measure turbopump's stages (bench io: the IO engine)", tp_cmd_bench,
     tp_usage_bench},
    {"serve", "the daemon: serve datasets to training processes", tp_cmd_serve,
     tp_usage_serve},
    {"consume", "read batches from a daemon as a training process would", tp_cmd_consume,
     tp_usage_consume},
    {"stat", "show a running daemon's figures", tp_cmd_stat, tp_usage_stat},
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: turbopump COMMAND [OPTIONS] [ARGS]\n\n"
                 "turbopump packs datasets into checksummed shards and serves them to\n"
                 "training processes.\n\nCommands:\n");
    for (size_t i = 0; i < TP_ARRAY_LEN(commands); i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nOptions:\n  -h, --help     show this help\n"
                 "  -V, --version  show the version\n\n"
                 "Run 'turbopump COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    /* Write errors must come back as errors (EPIPE, EFBIG), never as a killing signal. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return TP_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        if (argc > 2 && strcmp(cmd, "help") == 0)
            for (size_t i = 0; i < TP_ARRAY_LEN(commands); i++)
                if (!strcmp(argv[2], commands[i].name)) {
                    commands[i].usage(stdout);
                    return TP_EXIT_OK;
                }
        usage(stdout);
        return TP_EXIT_OK;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
        printf("turbopump %s\n", tp_version_string());
        return TP_EXIT_OK;
    }
    for (size_t i = 0; i < TP_ARRAY_LEN(commands); i++)
        if (!strcmp(cmd, commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "turbopump: unknown command '%s'\n", cmd);
    usage(stderr);
    return TP_EXIT_USAGE;
}
