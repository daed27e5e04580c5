/* Messages and option parsing shared by the subcommands, so every command reports errors
 * the same way: "turbopump CMD: what went wrong", exit status 2 for usage errors. */
#include "cli.h"

#include <stdarg.h>
#include <time.h>
#include <unistd.h>

static void vmessage(const char *cmd, const char *kind, const char *fmt, va_list ap)
{
    fprintf(stderr, "turbopump %s: %s", cmd, kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void tp_cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(cmd, "error: ", fmt, ap);
    va_end(ap);
}

void tp_cli_warn(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(cmd, "warning: ", fmt, ap);
    va_end(ap);
}

int tp_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(cmd, "", fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try 'turbopump %s --help'.\n", cmd);
    return TP_EXIT_USAGE;
}

int tp_cli_u64(const char *cmd, const char *opt, const char *s, uint64_t min, uint64_t max,
               uint64_t *out)
{
    if (tp__parse_u64(s, min, max, out) == 0)
        return 0;
    tp_cli_usage_error(cmd, "%s needs an integer from %llu to %llu, not '%s'", opt,
                       (unsigned long long)min, (unsigned long long)max, s);
    return -1;
}

int tp_cli_size(const char *cmd, const char *opt, const char *s, uint64_t min, uint64_t *out)
{
    if (tp__parse_size(s, out) == 0 && *out >= min)
        return 0;
    tp_cli_usage_error(cmd, "%s needs a size of at least %llu bytes such as 4096, 64K, "
                       "256M or 2G, not '%s'", opt, (unsigned long long)min, s);
    return -1;
}

int tp_cli_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double tp_cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

unsigned tp_cli_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}
