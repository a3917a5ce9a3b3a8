/* log.h — levelled logging, one line per event, carrying the session id so one session can be followed
 * through host, relay and push. Never pass a secret value to these functions. */
#ifndef CORRAL_LOG_H
#define CORRAL_LOG_H

#include <stdio.h>

typedef enum cr_log_level_t { CR_LOG_DEBUG = 0, CR_LOG_INFO = 1, CR_LOG_WARN = 2, CR_LOG_ERROR = 3 } cr_log_level_t;

/* Sets the process name shown in each line ("relay", "corrald") and the minimum level. Lines go to stderr unless
 * cr_log_set_file says otherwise. Not thread-safe to call while others log. */
void cr_log_init(const char *component, cr_log_level_t min_level);
void cr_log_set_file(FILE *fp);

/* Parses "debug", "info", "warn" or "error". Returns 0 or CR_ECONFIG. */
int cr_log_level_parse(const char *s, cr_log_level_t *out);

/* Writes one line: "2026-11-24T12:00:00.123Z INFO relay[123] sid=01J... message". `sid` may be NULL (omitted).
 * Newlines and control characters in the message are escaped so one event is always one line. */
void cr_log_sid(cr_log_level_t level, const char *sid, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define cr_log(level, ...) cr_log_sid((level), NULL, __VA_ARGS__)

/* Asserts that stay in release builds: log expression, file and line, then abort. */
#define CR_ASSERT(expr)                                                                                                 \
    ((expr) ? (void)0 : cr_log_assert_fail(#expr, __FILE__, __LINE__))
void cr_log_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#endif
