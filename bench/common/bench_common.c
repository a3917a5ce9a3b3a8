/* bench_common.c — see bench_common.h. */
#include "bench_common.h"
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bench_cpu_s(pid_t pid)
{
    char path[64], buf[1024], *q;
    unsigned long ut = 0, st = 0;
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    if (fgets(buf, sizeof(buf), f) != NULL && (q = strrchr(buf, ')')) != NULL)
        sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
    fclose(f);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The kB figure of one line ("VmRSS:") of /proc/<pid>/status; -1 when it cannot be read. */
static long status_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    size_t n = strlen(field);
    long kib = -1;
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, field, n) == 0) {
            kib = strtol(line + n, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

long bench_rss_kib(pid_t pid)
{
    return status_kib(pid, "VmRSS:");
}

long bench_rss_peak_kib(pid_t pid)
{
    return status_kib(pid, "VmHWM:");
}

void bench_print_build(const char *exe)
{
    char cache[PATH_MAX + 32], line[512], type[64] = "?", san[16] = "?";
    FILE *f;
    snprintf(cache, sizeof(cache), "%s", exe);
    for (int i = 0; i < 2; ++i) {
        char *slash = strrchr(cache, '/');
        if (slash != NULL)
            *slash = '\0';
    }
    strncat(cache, "/CMakeCache.txt", sizeof(cache) - strlen(cache) - 1);
    if ((f = fopen(cache, "r")) != NULL) {
        while (fgets(line, sizeof(line), f) != NULL) {
            if (strncmp(line, "CMAKE_BUILD_TYPE:STRING=", 24) == 0)
                snprintf(type, sizeof(type), "%.*s", (int)strcspn(line + 24, "\r\n"), line + 24);
            else if (strncmp(line, "CORRAL_SANITIZE:BOOL=", 21) == 0)
                snprintf(san, sizeof(san), "%.*s", (int)strcspn(line + 21, "\r\n"), line + 21);
        }
        fclose(f);
    }
    printf("  binary %s (build type %s, sanitizers %s)\n", exe, type, san);
    if (strcmp(san, "ON") == 0)
        printf("  WARNING: a sanitizer build; the figures mean little\n");
}

typedef struct st_row_t {
    char figure[64], value[48], target[24];
    int met; /* 1 yes, 0 no, -1 no target */
} row_t;
static row_t rows[64];
static size_t nrows;

void bench_row(const char *figure, const char *target, int met, const char *fmt, ...)
{
    va_list ap;
    row_t *r;
    if (nrows == sizeof(rows) / sizeof(rows[0]))
        return;
    r = &rows[nrows++];
    snprintf(r->figure, sizeof(r->figure), "%s", figure);
    snprintf(r->target, sizeof(r->target), "%s", target != NULL ? target : "");
    r->met = target != NULL ? met : -1;
    va_start(ap, fmt);
    vsnprintf(r->value, sizeof(r->value), fmt, ap);
    va_end(ap);
}

void bench_print_table(int figure_width)
{
    printf("\n%-*s %-30s %-14s %s\n", figure_width, "figure", "value", "target", "met");
    for (size_t i = 0; i < nrows; ++i)
        printf("%-*s %-30s %-14s %s\n", figure_width, rows[i].figure, rows[i].value, rows[i].target,
               rows[i].met < 0 ? "" : rows[i].met ? "yes" : "NO");
}
