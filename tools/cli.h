/* Shared pieces of the command-line tools: the subcommand table, messages, option
 * helpers and the progress display. */
#ifndef TP_CLI_H
#define TP_CLI_H

#include "tp_common.h"

#include <stdio.h>

typedef struct tp_cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
    void (*usage)(FILE *out);
} tp_cli_command;

int tp_cmd_gen(int argc, char **argv);
int tp_cmd_pack(int argc, char **argv);
/* pack --tokens (cmd_pack_tokens.c): whether argv asks for it, the command, its help. */
bool tp_pack_wants_tokens(int argc, char **argv);
int tp_cmd_pack_tokens(int argc, char **argv);
void tp_usage_pack_tokens(FILE *out);
/* inspect and verify of token datasets (inspect_tokens.c); `range` is --tokens' FIRST:COUNT
 * or NULL. @return : an exit status. */
int tp_inspect_tokens(const char *path, bool json, const char *range);
int tp_verify_tokens(const char *path);
int tp_cmd_merge(int argc, char **argv);
int tp_cmd_inspect(int argc, char **argv);
int tp_cmd_verify(int argc, char **argv);
int tp_cmd_bench(int argc, char **argv);
int tp_cmd_serve(int argc, char **argv);
int tp_cmd_consume(int argc, char **argv);
int tp_cmd_stat(int argc, char **argv);
void tp_usage_gen(FILE *out);
void tp_usage_pack(FILE *out);
void tp_usage_merge(FILE *out);
void tp_usage_inspect(FILE *out);
void tp_usage_verify(FILE *out);
void tp_usage_bench(FILE *out);
void tp_usage_serve(FILE *out);
void tp_usage_consume(FILE *out);
void tp_usage_stat(FILE *out);

/* Exit statuses: 0 success, 1 failure (bad data, IO error), 2 usage error. */
enum { TP_EXIT_OK = 0, TP_EXIT_FAIL = 1, TP_EXIT_USAGE = 2 };

/* "turbopump CMD: message\n" on stderr. */
void tp_cli_error(const char *cmd, const char *fmt, ...) TP_PRINTF(2, 3);
void tp_cli_warn(const char *cmd, const char *fmt, ...) TP_PRINTF(2, 3);
/* Prints a usage error with a hint to --help. @return : TP_EXIT_USAGE. */
int tp_cli_usage_error(const char *cmd, const char *fmt, ...) TP_PRINTF(2, 3);

/* Option value parsers that print a usage error naming the option. @return : 0 or -1. */
int tp_cli_u64(const char *cmd, const char *opt, const char *s, uint64_t min, uint64_t max,
               uint64_t *out);
int tp_cli_size(const char *cmd, const char *opt, const char *s, uint64_t min, uint64_t *out);

double tp_cli_now(void);

/* qsort's comparison of doubles, ascending. */
int tp_cli_cmp_double(const void *a, const void *b);

/* Number of online CPUs, at least 1. */
unsigned tp_cli_cpus(void);

/* Progress on a terminal, at most ten updates a second; silent when stderr is not a TTY. */
typedef struct tp_progress {
    bool tty;
    double start;
    double last;
    uint64_t total;
    const char *unit;
} tp_progress;

void tp_progress_start(tp_progress *p, uint64_t total, const char *unit);
void tp_progress_update(tp_progress *p, uint64_t done, uint64_t bytes);
void tp_progress_end(tp_progress *p);

#endif
