/* memcpy bandwidth on this machine, the reference for how fast batches can move through
 * memory: copies a 256 MiB buffer (larger than the caches) repeatedly for about SECONDS
 * and prints GB/s. Usage: memcpy [SECONDS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    size_t n = (size_t)256 << 20;
    char *a = malloc(n), *b = malloc(n);
    if (!a || !b)
        return 1;
    memset(a, 1, n);
    memset(b, 2, n);
    double t0 = now(), t;
    size_t copied = 0;
    do {
        memcpy(b, a, n);
        a[copied % n]++;
        copied += n;
    } while ((t = now()) - t0 < secs);
    printf("%.3f\n", (double)copied / (t - t0) / 1e9);
    return b[12345] == 0;
}
