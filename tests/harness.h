/* harness.h — a tiny TAP test harness in the spirit of h2o's picotest: ok(), subtest(), done_testing(). */
#ifndef CORRAL_TEST_HARNESS_H
#define CORRAL_TEST_HARNESS_H

#include <stddef.h>

/* Records one check. Prints "ok N - file:line expr" or "not ok N ..." and keeps going. */
#define ok(cond) cr_test_ok(!!(cond), __FILE__, __LINE__, #cond)

/* Like ok(), with a printf message shown on failure. */
#define okf(cond, ...) cr_test_okf(!!(cond), __FILE__, __LINE__, #cond, __VA_ARGS__)

/* Compares two byte ranges; on failure prints both in hex. */
#define ok_bytes(got, gotlen, want, wantlen) cr_test_bytes(__FILE__, __LINE__, (got), (gotlen), (want), (wantlen))

/* Compares two C strings; on failure prints both. */
#define ok_str(got, want) cr_test_str(__FILE__, __LINE__, (got), (want))

int cr_test_ok(int pass, const char *file, int line, const char *expr);
int cr_test_okf(int pass, const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int cr_test_bytes(const char *file, int line, const void *got, size_t gotlen, const void *want, size_t wantlen);
int cr_test_str(const char *file, int line, const char *got, const char *want);

/* Runs fn as a named group of checks. */
void subtest(const char *name, void (*fn)(void));

/* Prints the plan and returns the process exit status (0 when every check passed). */
int done_testing(void);

/* Prints a diagnostic line ("# ...") that TAP consumers show. */
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The directory holding the source tree's tests/ (from CORRAL_SOURCE_DIR, set by CMake). */
const char *cr_test_source_dir(void);

/* Reads a whole file into a malloc'd buffer (NUL-terminated). Returns NULL when it cannot. */
char *cr_test_read_file(const char *path, size_t *len);

#endif
