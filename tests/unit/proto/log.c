/* tests/unit/proto/log.c — the log line format, level filtering, escaping, CORRAL_LOG_LEVEL and asserts. */
#include "corral/error.h"
#include "corral/log.h"
#include "harness.h"
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static FILE *capture;

/* Everything logged since the last call, as one string (static storage). */
static const char *captured(void)
{
    static char text[200000];
    size_t n;
    fflush(capture);
    rewind(capture);
    n = fread(text, 1, sizeof(text) - 1, capture);
    text[n] = '\0';
    rewind(capture);
    if (ftruncate(fileno(capture), 0) != 0)
        note("ftruncate failed");
    return text;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s != '\0'; ++s)
        n += *s == '\n';
    return n;
}

static int matches(const char *s, const char *pattern)
{
    regex_t re;
    int rc;
    if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
        return 0;
    rc = regexec(&re, s, 0, NULL, 0);
    regfree(&re);
    return rc == 0;
}

static void test_format(void)
{
    char want[64];
    const char *s;

    cr_log_init("relay", CR_LOG_DEBUG);
    cr_log_sid(CR_LOG_INFO, "01J9ZQ3V4K8TQ5J2N6M7P8R9ST", "session %s started", "feature-auth");
    s = captured();
    okf(matches(s, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z INFO relay\\[[0-9]+\\] "
                   "sid=01J9ZQ3V4K8TQ5J2N6M7P8R9ST session feature-auth started\n$"),
        "line: %s", s);
    snprintf(want, sizeof(want), " relay[%ld] ", (long)getpid());
    ok(strstr(s, want) != NULL);

    cr_log(CR_LOG_WARN, "no sid here: %d", 7);
    s = captured();
    okf(matches(s, "^[0-9-]{10}T[0-9:]{8}\\.[0-9]{3}Z WARN relay\\[[0-9]+\\] no sid here: 7\n$"), "line: %s", s);

    cr_log(CR_LOG_DEBUG, "d");
    ok(matches(captured(), "Z DEBUG relay\\["));
    cr_log(CR_LOG_ERROR, "e");
    ok(matches(captured(), "Z ERROR relay\\["));

    /* The timestamp is now, in UTC (checked to the hour, unless an hour began while logging). */
    time_t t0 = time(NULL), t1;
    struct tm tm;
    char date[32], date1[32];
    gmtime_r(&t0, &tm);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:", &tm);
    cr_log(CR_LOG_INFO, "x");
    t1 = time(NULL);
    gmtime_r(&t1, &tm);
    strftime(date1, sizeof(date1), "%Y-%m-%dT%H:", &tm);
    s = captured();
    okf(strcmp(date, date1) != 0 || strncmp(s, date, strlen(date)) == 0, "line %s, expected it to start with %s", s, date);
}

static void test_levels(void)
{
    cr_log_init("corrald", CR_LOG_WARN);
    cr_log(CR_LOG_DEBUG, "debug");
    cr_log(CR_LOG_INFO, "info");
    cr_log(CR_LOG_WARN, "warn");
    cr_log(CR_LOG_ERROR, "error");
    const char *s = captured();
    ok(count_lines(s) == 2);
    ok(strstr(s, " WARN corrald[") != NULL);
    ok(strstr(s, " ERROR corrald[") != NULL);
    ok(strstr(s, "debug") == NULL && strstr(s, "info") == NULL);

    cr_log_init("corrald", CR_LOG_ERROR);
    cr_log(CR_LOG_WARN, "warn");
    ok(captured()[0] == '\0');

    cr_log_level_t l = CR_LOG_ERROR;
    ok(cr_log_level_parse("debug", &l) == 0 && l == CR_LOG_DEBUG);
    ok(cr_log_level_parse("info", &l) == 0 && l == CR_LOG_INFO);
    ok(cr_log_level_parse("warn", &l) == 0 && l == CR_LOG_WARN);
    ok(cr_log_level_parse("error", &l) == 0 && l == CR_LOG_ERROR);
    ok(cr_log_level_parse("INFO", &l) == 0 && l == CR_LOG_INFO);
    ok(cr_log_level_parse("warning", &l) == 0 && l == CR_LOG_WARN);
    l = CR_LOG_DEBUG;
    ok(cr_log_level_parse("verbose", &l) == CR_ECONFIG);
    ok(l == CR_LOG_DEBUG);
    ok(cr_error_last()->code == CR_ECONFIG);
    ok(strstr(cr_error_last()->message, "'verbose'") != NULL);
    ok(cr_log_level_parse("", &l) == CR_ECONFIG);
    ok(cr_log_level_parse(" info", &l) == CR_ECONFIG);
}

static void test_env_level(void)
{
    setenv("CORRAL_LOG_LEVEL", "debug", 1);
    cr_log_init("relay", CR_LOG_ERROR);
    cr_log(CR_LOG_DEBUG, "shown");
    ok(strstr(captured(), "DEBUG relay[") != NULL);

    setenv("CORRAL_LOG_LEVEL", "error", 1);
    cr_log_init("relay", CR_LOG_DEBUG);
    cr_log(CR_LOG_WARN, "hidden");
    ok(captured()[0] == '\0');

    setenv("CORRAL_LOG_LEVEL", "loud", 1);
    cr_log_init("relay", CR_LOG_INFO);
    const char *s = captured();
    okf(strstr(s, "WARN relay[") != NULL && strstr(s, "ignoring CORRAL_LOG_LEVEL=loud") != NULL, "got %s", s);
    cr_log(CR_LOG_DEBUG, "hidden");
    cr_log(CR_LOG_INFO, "shown");
    s = captured();
    ok(count_lines(s) == 1 && strstr(s, "shown") != NULL);
    unsetenv("CORRAL_LOG_LEVEL");
}

static void test_escaping(void)
{
    const char *s;
    cr_log_init("relay", CR_LOG_DEBUG);

    cr_log(CR_LOG_INFO, "two\nlines\r\tand \x01\x1b[31m\x7f end");
    s = captured();
    ok(count_lines(s) == 1);
    okf(strstr(s, "] two\\nlines\\r\\tand \\x01\\x1b[31m\\x7f end\n") != NULL, "line: %s", s);

    cr_log_sid(CR_LOG_INFO, "evil\nsid", "%s", "message");
    s = captured();
    ok(count_lines(s) == 1);
    ok(strstr(s, "sid=evil\\nsid message\n") != NULL);

    /* UTF-8 and backslashes pass through as they are. */
    cr_log(CR_LOG_INFO, "caf\xc3\xa9 C:\\path");
    ok(strstr(captured(), "] caf\xc3\xa9 C:\\path\n") != NULL);

    /* A long message stays whole up to the cap, on one line. */
    char *big = malloc(20001);
    memset(big, 'y', 20000);
    big[20000] = '\0';
    big[10000] = '\n';
    cr_log(CR_LOG_INFO, "%s", big);
    s = captured();
    ok(count_lines(s) == 1);
    ok(strlen(s) > 20000);
    free(big);

    /* Past 64 KiB it is cut, and says so. */
    big = malloc(70001);
    memset(big, 'z', 70000);
    big[70000] = '\0';
    cr_log(CR_LOG_INFO, "%s", big);
    s = captured();
    ok(count_lines(s) == 1);
    okf(strstr(s, "zzz ...(4464 bytes cut)\n") != NULL, "tail: %s", s + strlen(s) - 40);
    free(big);
}

static void test_assert(void)
{
    pid_t pid;
    int status = 0;
    const char *s;

    fflush(capture);
    if ((pid = fork()) == 0) {
        cr_log_init("relay", CR_LOG_ERROR);
        CR_ASSERT(1 + 1 == 2);
        CR_ASSERT(2 + 2 == 5);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    s = captured();
    ok(count_lines(s) == 1);
    okf(matches(s, " ERROR relay\\[[0-9]+\\] assertion failed: 2 \\+ 2 == 5 \\([^ ]*tests/unit/proto/log\\.c:[0-9]+\\)\n$"), "line: %s",
        s);
}

int main(void)
{
    unsetenv("CORRAL_LOG_LEVEL");
    capture = tmpfile();
    cr_log_set_file(capture);
    subtest("format", test_format);
    subtest("levels", test_levels);
    subtest("CORRAL_LOG_LEVEL", test_env_level);
    subtest("escaping", test_escaping);
    subtest("assert", test_assert);
    fclose(capture);
    return done_testing();
}
