/* bench_common.h — what every benchmark program shares: the monotonic clock, a process's CPU and RSS from /proc,
 * and the closing table of figures (figure, value, target, met). */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdint.h>
#include <sys/types.h>

/* Nanoseconds on CLOCK_MONOTONIC (one clock for every process on the machine). */
uint64_t bench_now_ns(void);

/* CPU seconds (user + system) pid has used, from /proc/<pid>/stat; 0 when it cannot be read. */
double bench_cpu_s(pid_t pid);

/* VmRSS of pid in KiB, from /proc/<pid>/status; -1 when it cannot be read. */
long bench_rss_kib(pid_t pid);

/* VmHWM (the peak RSS) of pid in KiB, from /proc/<pid>/status; -1 when it cannot be read. */
long bench_rss_peak_kib(pid_t pid);

/* Prints the binary measured and, when it sits in a CMake build tree (<build>/bin/NAME), the build's type and whether
 * sanitizers are on (with a warning then: the figures mean little). */
void bench_print_build(const char *exe);

/* Adds a row to the final table: figure, value (printf-formatted), target (NULL when the figure has none) and
 * whether the target was met. Rows past the table's capacity are dropped. */
void bench_row(const char *figure, const char *target, int met, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Prints the table of every row added, with the figure column figure_width wide. */
void bench_print_table(int figure_width);

#endif
