/* log.c — levelled one-line-per-event logging with UTC millisecond timestamps and escaped messages. */
#include "corral/log.h"
#include "corral/error.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* A message longer than this is cut, and the line says how much was cut. */
#define CR_LOG_MAX_MESSAGE (64 * 1024)

static char log_component[32] = "corral";
static cr_log_level_t log_min_level = CR_LOG_INFO;
static FILE *log_fp; /* NULL: stderr */

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void cr_log_init(const char *component, cr_log_level_t min_level)
{
    const char *env = getenv("CORRAL_LOG_LEVEL");
    cr_log_level_t from_env = min_level;

    snprintf(log_component, sizeof(log_component), "%s", component != NULL ? component : "corral");
    log_min_level = min_level;
    /* The environment wins, as it does for every config key (log.level is CORRAL_LOG_LEVEL). */
    if (env != NULL && env[0] != '\0') {
        if (cr_log_level_parse(env, &from_env) == 0)
            log_min_level = from_env;
        else
            cr_log(CR_LOG_WARN, "ignoring CORRAL_LOG_LEVEL=%s: not debug, info, warn or error", env);
    }
}

void cr_log_set_file(FILE *fp)
{
    log_fp = fp;
}

int cr_log_level_parse(const char *s, cr_log_level_t *out)
{
    static const struct {
        const char *name;
        cr_log_level_t level;
    } names[] = {
        {"debug", CR_LOG_DEBUG}, {"info", CR_LOG_INFO}, {"warn", CR_LOG_WARN}, {"warning", CR_LOG_WARN}, {"error", CR_LOG_ERROR}};

    for (size_t i = 0; s != NULL && i < sizeof(names) / sizeof(names[0]); ++i) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return cr_error_set(CR_ECONFIG, "log.level", "unknown log level '%s' (debug, info, warn or error)", s != NULL ? s : "");
}

/* Appends s[0..n) to the line at *pos (room up to cap), escaping control characters so the line stays one line.
 * Stops early rather than split an escape. */
static size_t cr_log__escape(char *line, size_t pos, size_t cap, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != 0x7f) {
            if (pos + 1 > cap)
                break;
            line[pos++] = (char)c;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            if (pos + 2 > cap)
                break;
            line[pos++] = '\\';
            line[pos++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
        } else {
            if (pos + 4 > cap)
                break;
            line[pos++] = '\\';
            line[pos++] = 'x';
            line[pos++] = hex[c >> 4];
            line[pos++] = hex[c & 15];
        }
    }
    return pos;
}

void cr_log_sid(cr_log_level_t level, const char *sid, const char *fmt, ...)
{
    char small[1024], *msg = small, *line = NULL, head[160];
    size_t msglen, cut = 0, pos, cap;
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;

    if ((int)level < (int)log_min_level)
        return;
    if ((int)level < CR_LOG_DEBUG || (int)level > CR_LOG_ERROR)
        level = CR_LOG_ERROR;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        snprintf(small, sizeof(small), "(unformattable log message: %s)", fmt);
        n = (int)strlen(small);
    }
    msglen = (size_t)n;
    if (msglen >= sizeof(small)) {
        if (msglen > CR_LOG_MAX_MESSAGE) {
            cut = msglen - CR_LOG_MAX_MESSAGE;
            msglen = CR_LOG_MAX_MESSAGE;
        }
        if ((msg = malloc(msglen + 1)) != NULL) {
            va_start(ap, fmt);
            vsnprintf(msg, msglen + 1, fmt, ap);
            va_end(ap);
        } else {
            msg = small;
            cut += msglen - (sizeof(small) - 1);
            msglen = sizeof(small) - 1;
        }
    }

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(head, sizeof(head), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s[%ld] ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(ts.tv_nsec / 1000000), level_names[level], log_component,
                 (long)getpid());
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(head))
        n = (int)sizeof(head) - 1;

    /* Worst case every byte of sid and message becomes "\xNN"; plus the head, "sid= ", the cut note and "\n". */
    cap = (size_t)n + 4 * (msglen + (sid != NULL ? strnlen(sid, 256) : 0)) + 64;
    if ((line = malloc(cap)) == NULL) {
        /* Out of memory: still say something, unescaped of nothing but on one line. */
        fprintf(log_fp != NULL ? log_fp : stderr, "%s(log line lost: out of memory)\n", head);
        goto done;
    }
    memcpy(line, head, (size_t)n);
    pos = (size_t)n;
    if (sid != NULL) {
        memcpy(line + pos, "sid=", 4);
        pos = cr_log__escape(line, pos + 4, cap, sid, strnlen(sid, 256));
        line[pos++] = ' ';
    }
    pos = cr_log__escape(line, pos, cap - 48, msg, msglen);
    if (cut != 0)
        pos += (size_t)snprintf(line + pos, cap - pos, " ...(%zu bytes cut)", cut);
    line[pos++] = '\n';
    {
        FILE *fp = log_fp != NULL ? log_fp : stderr;
        fwrite(line, 1, pos, fp); /* one call: lines of different threads do not interleave */
        fflush(fp);
    }

done:
    free(line);
    if (msg != small)
        free(msg);
}

void cr_log_assert_fail(const char *expr, const char *file, int line)
{
    cr_log(CR_LOG_ERROR, "assertion failed: %s (%s:%d)", expr, file, line);
    abort();
}
