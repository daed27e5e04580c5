/* A one-line progress display for long jobs: done/total, rate, MB/s and ETA, redrawn in
 * place at most ten times a second on a terminal and never written into a pipe or log. */
#include "cli.h"

#include <unistd.h>

void tp_progress_start(tp_progress *p, uint64_t total, const char *unit)
{
    p->tty = isatty(STDERR_FILENO);
    p->start = p->last = tp_cli_now();
    p->total = total;
    p->unit = unit;
}

void tp_progress_update(tp_progress *p, uint64_t done, uint64_t bytes)
{
    double now = tp_cli_now();
    if (!p->tty || (now - p->last < 0.1 && done < p->total))
        return;
    p->last = now;
    double secs = TP_MAX(now - p->start, 1e-9), rate = (double)done / secs;
    double frac = p->total ? (double)done / (double)p->total : 1.0;
    int filled = (int)(frac * 24);
    char bar[25];
    for (int i = 0; i < 24; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[24] = '\0';
    double eta = rate > 0 && p->total > done ? (double)(p->total - done) / rate : 0;
    fprintf(stderr, "\r[%s] %llu/%llu %5.1f%%  %.0f %s/s  %.1f MB/s  ETA %d:%02d ", bar,
            (unsigned long long)done, (unsigned long long)p->total, 100 * frac, rate, p->unit,
            (double)bytes / secs / 1e6, (int)eta / 60, (int)eta % 60);
    fflush(stderr);
}

void tp_progress_end(tp_progress *p)
{
    if (p->tty)
        fprintf(stderr, "\r\033[K");
}
