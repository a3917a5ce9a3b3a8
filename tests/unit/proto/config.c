/* tests/unit/proto/config.c — the config table: defaults, INI files, environment overrides, every error, help text. */
#include "corral/config.h"
#include "corral/error.h"
#include "harness.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const cr_config_entry_t table[] = {
    {"data_dir", CR_CONF_STR, "./var/test", "Directory that holds the state.", 0, 0},
    {"http.listen", CR_CONF_STR, "127.0.0.1:8080", "Address and port of the plain listener.", 0, 0},
    {"http.max_body", CR_CONF_SIZE, "256k", "Largest request body accepted.", 1, 64 << 20},
    {"http.idle_timeout", CR_CONF_MS, "20s", "How long an idle connection stays open.", 0, 0},
    {"redis.url", CR_CONF_STR, "", "Redis to use; empty starts an embedded one.", 0, 0},
    {"http.workers", CR_CONF_INT, "4", "Number of worker loops.", 1, 64},
    {"push.apns.sandbox", CR_CONF_BOOL, "false", "Use the APNs sandbox.", 0, 0},
    {"offset", CR_CONF_INT, "-5", "A signed number with no bounds, to test them.", 0, 0},
    {"push.apns.url", CR_CONF_STR, "https://api.push.apple.com",
     "Base URL of APNs; tests point it at a local fake. This sentence is long on purpose so that the help text "
     "has to wrap over more than one line of output, which the tests check.",
     0, 0},
    {"log.level", CR_CONF_STR, "info", "Least severe level logged: debug, info, warn or error.", 0, 0},
    {.name = NULL},
};

static char dir[64], path[128];

static const char *const env_names[] = {
    "CORRAL_DATA_DIR",     "CORRAL_HTTP_LISTEN",       "CORRAL_HTTP_MAX_BODY", "CORRAL_HTTP_IDLE_TIMEOUT", "CORRAL_REDIS_URL",
    "CORRAL_HTTP_WORKERS", "CORRAL_PUSH_APNS_SANDBOX", "CORRAL_OFFSET",        "CORRAL_PUSH_APNS_URL",     "CORRAL_LOG_LEVEL"};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); ++i)
        unsetenv(env_names[i]);
}

static const char *write_file(const char *text)
{
    FILE *fp = fopen(path, "w");
    fputs(text, fp);
    fclose(fp);
    return path;
}

static void test_defaults(void)
{
    cr_config_t c;
    ok(cr_config_load(&c, table, NULL) == 0);
    ok(c.count == 10);
    ok(c.table == table);
    ok_str(cr_config_str(&c, "data_dir"), "./var/test");
    ok_str(cr_config_str(&c, "http.listen"), "127.0.0.1:8080");
    ok_str(cr_config_str(&c, "http.max_body"), "256k");
    ok(cr_config_int(&c, "http.max_body") == 256 * 1024);
    ok(cr_config_int(&c, "http.idle_timeout") == 20000);
    ok_str(cr_config_str(&c, "redis.url"), "");
    ok(cr_config_int(&c, "http.workers") == 4);
    ok(cr_config_bool(&c, "push.apns.sandbox") == 0);
    ok(cr_config_int(&c, "push.apns.sandbox") == 0);
    ok(cr_config_int(&c, "offset") == -5);
    for (size_t i = 0; i < c.count; ++i)
        ok_str(c.values[i].from, "default");
    cr_config_free(&c);
    ok(c.values == NULL && c.count == 0);
    cr_config_free(&c); /* twice is harmless */
}

static void test_file(void)
{
    cr_config_t c;
    const char *p = write_file("# a comment\n"
                               "; another comment\n"
                               "\n"
                               "   data_dir   =   /srv/corral   \n"
                               "offset=12\n"
                               "[http]\n"
                               "listen = 0.0.0.0:443 # a comment after the value\n"
                               "max_body = 1MiB\r\n"
                               "  idle_timeout = 2m\n"
                               "workers = 64\n"
                               "\t\n"
                               "[ push.apns ]\n"
                               "sandbox = Yes\n"
                               "url = https://fake.test/#fragment-kept\n"
                               "[redis]\n"
                               "url = \"  redis://h:6379/0 # not a comment \\\"q\\\" \\\\ \"   # comment\n"
                               "[log]\n");
    okf(cr_config_load(&c, table, p) == 0, "%s", cr_error_last()->message);
    ok_str(cr_config_str(&c, "data_dir"), "/srv/corral");
    ok_str(c.values[0].from, "file");
    ok(cr_config_int(&c, "offset") == 12);
    ok_str(cr_config_str(&c, "http.listen"), "0.0.0.0:443");
    ok(cr_config_int(&c, "http.max_body") == 1024 * 1024);
    ok_str(cr_config_str(&c, "http.max_body"), "1MiB");
    ok(cr_config_int(&c, "http.idle_timeout") == 120000);
    ok(cr_config_int(&c, "http.workers") == 64);
    ok(cr_config_bool(&c, "push.apns.sandbox") == 1);
    ok_str(cr_config_str(&c, "push.apns.url"), "https://fake.test/#fragment-kept");
    ok_str(cr_config_str(&c, "redis.url"), "  redis://h:6379/0 # not a comment \"q\" \\ ");
    ok_str(cr_config_str(&c, "log.level"), "info");
    ok_str(c.values[9].from, "default");
    cr_config_free(&c);

    /* An empty file, a dotted key at the top level, an empty value, a BOM. */
    ok(cr_config_load(&c, table, write_file("")) == 0);
    cr_config_free(&c);
    ok(cr_config_load(&c, table, write_file("\xef\xbb\xbfhttp.listen = :1\nredis.url =\n")) == 0);
    ok_str(cr_config_str(&c, "http.listen"), ":1");
    ok_str(cr_config_str(&c, "redis.url"), "");
    ok_str(c.values[4].from, "file");
    cr_config_free(&c);
    ok(cr_config_load(&c, table, write_file("[redis]\nurl = \"\"\n")) == 0);
    ok_str(cr_config_str(&c, "redis.url"), "");
    cr_config_free(&c);
}

static void test_values(void)
{
    static const struct {
        const char *key, *value;
        int64_t num;
    } good[] = {
        {"http.max_body", "1", 1},
        {"http.max_body", "100", 100},
        {"http.max_body", "100b", 100},
        {"http.max_body", "100B", 100},
        {"http.max_body", "4k", 4096},
        {"http.max_body", "4K", 4096},
        {"http.max_body", "4kb", 4096},
        {"http.max_body", "4KiB", 4096},
        {"http.max_body", "256KiB", 256 * 1024},
        {"http.max_body", "1m", 1 << 20},
        {"http.max_body", "2 MiB", 2 << 20},
        {"http.max_body", "64MB", 64 << 20},
        {"http.idle_timeout", "0", 0},
        {"http.idle_timeout", "250", 250},
        {"http.idle_timeout", "250ms", 250},
        {"http.idle_timeout", "250MS", 250},
        {"http.idle_timeout", "20s", 20000},
        {"http.idle_timeout", "3m", 180000},
        {"http.idle_timeout", "2h", 7200000},
        {"http.idle_timeout", "2 h", 7200000},
        {"http.workers", "1", 1},
        {"http.workers", "+7", 7},
        {"http.workers", "64", 64},
        {"offset", "-9223372036854775807", -INT64_MAX},
        {"offset", "9223372036854775807", INT64_MAX},
        {"offset", "0", 0},
        {"push.apns.sandbox", "true", 1},
        {"push.apns.sandbox", "FALSE", 0},
        {"push.apns.sandbox", "yes", 1},
        {"push.apns.sandbox", "no", 0},
        {"push.apns.sandbox", "on", 1},
        {"push.apns.sandbox", "Off", 0},
        {"push.apns.sandbox", "1", 1},
        {"push.apns.sandbox", "0", 0},
    };
    static const struct {
        const char *key, *value, *why;
    } bad[] = {
        {"http.max_body", "", "not a size"},
        {"http.max_body", "k", "not a size"},
        {"http.max_body", "-1", "not a size"},
        {"http.max_body", "1.5m", "not a size"},
        {"http.max_body", "4t", "not a size"},
        {"http.max_body", "4kk", "not a size"},
        {"http.max_body", "4kibb", "not a size"},
        {"http.max_body", "4bi", "not a size"},
        {"http.max_body", "0", "out of range (1 to 67108864 bytes)"},
        {"http.max_body", "65m", "out of range"},
        {"http.max_body", "99999999999999999999", "not a size"},
        {"http.max_body", "9999999999999999g", "too large"},
        {"http.idle_timeout", "20 sec", "not a duration"},
        {"http.idle_timeout", "1d", "not a duration"},
        {"http.idle_timeout", "s", "not a duration"},
        {"http.idle_timeout", "-1s", "not a duration"},
        {"http.idle_timeout", "9223372036854775807h", "too large"},
        {"http.workers", "0", "out of range (1 to 64)"},
        {"http.workers", "65", "out of range"},
        {"http.workers", "-1", "out of range"},
        {"http.workers", "4x", "not a decimal integer"},
        {"http.workers", "0x10", "not a decimal integer"},
        {"http.workers", "", "not a decimal integer"},
        {"http.workers", "1 2", "not a decimal integer"},
        {"offset", "9223372036854775808", "not a decimal integer"},
        {"offset", "-", "not a decimal integer"},
        {"push.apns.sandbox", "maybe", "not a boolean"},
        {"push.apns.sandbox", "", "not a boolean"},
        {"push.apns.sandbox", "2", "not a boolean"},
    };
    cr_config_t c;

    ok(cr_config_load(&c, table, NULL) == 0);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); ++i) {
        int rc = cr_config_set(&c, good[i].key, good[i].value, "cli");
        okf(rc == 0 && cr_config_int(&c, good[i].key) == good[i].num, "%s = '%s': rc %d, %lld (%s)", good[i].key, good[i].value, rc,
            (long long)cr_config_int(&c, good[i].key), cr_error_last()->message);
        ok_str(cr_config_str(&c, good[i].key), good[i].value);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        char before[64];
        int64_t num = cr_config_int(&c, bad[i].key);
        snprintf(before, sizeof(before), "%s", cr_config_str(&c, bad[i].key));
        int rc = cr_config_set(&c, bad[i].key, bad[i].value, "cli");
        okf(rc == CR_ECONFIG && strstr(cr_error_last()->message, bad[i].why) != NULL, "%s = '%s': rc %d, '%s'", bad[i].key,
            bad[i].value, rc, cr_error_last()->message);
        ok_str(cr_error_last()->field, bad[i].key);
        /* A refused value leaves the old one. */
        ok(cr_config_int(&c, bad[i].key) == num);
        ok_str(cr_config_str(&c, bad[i].key), before);
    }
    ok(cr_config_set(&c, "http.lisen", "x", "cli") == CR_ENOTFOUND);
    ok_str(cr_error_last()->message, "unknown key 'http.lisen'");
    ok(cr_config_set(&c, "http.listen", "[::1]:9000", "cli") == 0);
    ok_str(cr_config_str(&c, "http.listen"), "[::1]:9000");
    ok_str(c.values[1].from, "cli");
    cr_config_free(&c);
}

static void test_env(void)
{
    cr_config_t c;
    const char *p = write_file("data_dir = /from/file\n[http]\nlisten = file:1\nworkers = 2\n");

    setenv("CORRAL_DATA_DIR", "/from/env", 1);
    setenv("CORRAL_HTTP_WORKERS", "8", 1);
    setenv("CORRAL_PUSH_APNS_SANDBOX", "on", 1);
    setenv("CORRAL_REDIS_URL", "", 1); /* set but empty: empty wins */
    ok(cr_config_load(&c, table, p) == 0);
    ok_str(cr_config_str(&c, "data_dir"), "/from/env");
    ok_str(c.values[0].from, "env");
    ok_str(cr_config_str(&c, "http.listen"), "file:1");
    ok_str(c.values[1].from, "file");
    ok(cr_config_int(&c, "http.workers") == 8);
    ok(cr_config_bool(&c, "push.apns.sandbox") == 1);
    ok_str(cr_config_str(&c, "redis.url"), "");
    ok_str(c.values[4].from, "env");
    cr_config_free(&c);

    setenv("CORRAL_HTTP_WORKERS", "many", 1);
    ok(cr_config_load(&c, table, p) == CR_ECONFIG);
    ok_str(cr_error_last()->message, "environment CORRAL_HTTP_WORKERS: bad value for 'http.workers': 'many' is not a "
                                     "decimal integer");
    ok_str(cr_error_last()->field, "http.workers");
    ok(c.values == NULL && c.count == 0);
    clear_env();

    char name[128];
    cr_config_env_name(name, sizeof(name), "http.listen");
    ok_str(name, "CORRAL_HTTP_LISTEN");
    cr_config_env_name(name, sizeof(name), "data_dir");
    ok_str(name, "CORRAL_DATA_DIR");
    cr_config_env_name(name, sizeof(name), "push.apns.url");
    ok_str(name, "CORRAL_PUSH_APNS_URL");
    cr_config_env_name(name, sizeof(name), "agent.claude-cmd");
    ok_str(name, "CORRAL_AGENT_CLAUDE_CMD");
    cr_config_env_name(name, 12, "http.listen");
    ok_str(name, "CORRAL_HTTP");
}

/* Expects loading `text` to fail with CR_ECONFIG, exactly `message` after "FILE:", and `field`. */
static void file_error(const char *text, const char *message, const char *field)
{
    cr_config_t c = {0};
    char want[512];
    int rc = cr_config_load(&c, table, write_file(text));
    snprintf(want, sizeof(want), "%s:%s", path, message);
    okf(rc == CR_ECONFIG, "rc %d for %s", rc, message);
    ok_str(cr_error_last()->message, want);
    ok_str(cr_error_last()->field, field);
    ok(c.values == NULL);
}

static void test_file_errors(void)
{
    file_error("[http]\nlisen = :80\n", "2: unknown key 'http.lisen'", "http.lisen");
    file_error("listen = :80\n", "1: unknown key 'listen'", "listen");
    file_error("[nope]\nlisten = :80\n", "2: unknown key 'nope.listen'", "nope.listen");
    file_error("[http]\nlisten = :80\n\nlisten = :81\n", "4: duplicate key 'http.listen' (first set on line 2)", "http.listen");
    file_error("http.listen = :80\n[http]\nlisten = :81\n", "3: duplicate key 'http.listen' (first set on line 1)", "http.listen");
    file_error("# ok\nthis is not a setting\n", "2: malformed line (expected 'key = value')", "");
    file_error("[http\nlisten = :80\n", "1: malformed section header (expected '[section]')", "");
    file_error("[http] junk\n", "1: malformed section header (expected '[section]')", "");
    file_error("[]\n", "1: bad section name ''", "");
    file_error("[a b]\n", "1: bad section name 'a b'", "");
    file_error("= value\n", "1: missing key before '='", "");
    file_error("[http]\nlis ten = 1\n", "2: bad key name", "");
    file_error("[http]\nworkers = 100\n", "2: bad value for 'http.workers': 100 is out of range (1 to 64)", "http.workers");
    file_error("[http]\nmax_body = lots\n",
               "2: bad value for 'http.max_body': 'lots' is not a size (bytes, or a number with k, m or g: \"256k\", "
               "\"1MiB\")",
               "http.max_body");
    file_error("[http]\nidle_timeout = soon\n",
               "2: bad value for 'http.idle_timeout': 'soon' is not a duration (milliseconds, or a number with ms, s, "
               "m or h: \"20s\")",
               "http.idle_timeout");
    file_error("[push.apns]\nsandbox = sure\n",
               "2: bad value for 'push.apns.sandbox': 'sure' is not a boolean (true, false, yes, no, on, off, 1 or 0)",
               "push.apns.sandbox");
    file_error("data_dir = \"open\n", "1: unterminated quoted value for 'data_dir'", "data_dir");
    file_error("data_dir = \"a\\nb\"\n", "1: bad escape in quoted value (only \\\" and \\\\) for 'data_dir'", "data_dir");
    file_error("data_dir = \"a\" b\n", "1: text after the closing quote for 'data_dir'", "data_dir");

    /* The first error wins, and later lines are not looked at. */
    file_error("[http]\nworkers = 0\nbogus = 1\n", "2: bad value for 'http.workers': 0 is out of range (1 to 64)", "http.workers");

    /* A NUL byte. */
    {
        FILE *fp = fopen(path, "w");
        fwrite("data_dir = a\0b\n", 1, 15, fp);
        fclose(fp);
        cr_config_t c;
        ok(cr_config_load(&c, table, path) == CR_ECONFIG);
        ok(strstr(cr_error_last()->message, ":1: NUL byte in line") != NULL);
    }

    /* A line too long to be a setting. */
    {
        FILE *fp = fopen(path, "w");
        fputs("data_dir = ", fp);
        for (int i = 0; i < 70000; ++i)
            fputc('a', fp);
        fputc('\n', fp);
        fclose(fp);
        cr_config_t c;
        ok(cr_config_load(&c, table, path) == CR_ECONFIG);
        ok(strstr(cr_error_last()->message, ":1: line longer than 65536 bytes") != NULL);
    }

    /* A file that is not there. */
    cr_config_t c;
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/missing.ini", dir);
    ok(cr_config_load(&c, table, missing) == CR_EIO);
    ok(strstr(cr_error_last()->message, "cannot open config file") != NULL);
    ok(strstr(cr_error_last()->message, "missing.ini: No such file or directory") != NULL);
    ok(c.values == NULL);
}

static void test_bad_default(void)
{
    static const cr_config_entry_t broken[] = {
        {"a", CR_CONF_INT, "12", "Fine.", 0, 0},
        {"b", CR_CONF_INT, "zero", "Not a number.", 0, 0},
        {.name = NULL},
    };
    cr_config_t c;
    ok(cr_config_load(&c, broken, NULL) == CR_ECONFIG);
    ok_str(cr_error_last()->message, "default of bad value for 'b': 'zero' is not a decimal integer");
    ok(c.values == NULL);
}

/* Runs fn in a child and reports whether it aborted. */
static int aborts(void (*fn)(void))
{
    int status = 0;
    pid_t pid;
    fflush(stdout);
    if ((pid = fork()) == 0) {
        if (freopen("/dev/null", "w", stderr) == NULL) /* the abort message is expected: keep it out of the log */
            _exit(3);
        fn();
        _exit(0);
    }
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static cr_config_t loaded;
static void get_unknown_str(void)
{
    (void)cr_config_str(&loaded, "no.such.key");
}
static void get_unknown_int(void)
{
    (void)cr_config_int(&loaded, "http.lisen");
}
static void get_bool_of_int(void)
{
    (void)cr_config_bool(&loaded, "http.workers");
}
static void get_int_of_str(void)
{
    (void)cr_config_int(&loaded, "http.listen");
}
static void get_known(void)
{
    (void)cr_config_str(&loaded, "http.listen");
    (void)cr_config_int(&loaded, "http.workers");
    (void)cr_config_bool(&loaded, "push.apns.sandbox");
}

static void test_getters_abort(void)
{
    ok(cr_config_load(&loaded, table, NULL) == 0);
    ok(aborts(get_unknown_str));
    ok(aborts(get_unknown_int));
    ok(aborts(get_bool_of_int));
    ok(aborts(get_int_of_str));
    ok(!aborts(get_known));
    cr_config_free(&loaded);
}

static char *print_to_string(int example)
{
    FILE *fp = tmpfile();
    char *text;
    long len;
    if (example)
        cr_config_print_example(fp, table, "Test example");
    else
        cr_config_print_help(fp, table);
    len = ftell(fp);
    rewind(fp);
    text = calloc((size_t)len + 1, 1);
    if (fread(text, 1, (size_t)len, fp) != (size_t)len)
        note("short read of the printed text");
    fclose(fp);
    return text;
}

static int max_line_width(const char *s)
{
    int max = 0, cur = 0;
    for (; *s != '\0'; ++s) {
        if (*s == '\n') {
            if (cur > max)
                max = cur;
            cur = 0;
        } else {
            ++cur;
        }
    }
    return max > cur ? max : cur;
}

static void test_help(void)
{
    char *text = print_to_string(0);
    int all = 1;
    for (size_t i = 0; table[i].name != NULL; ++i) {
        all &= strstr(text, table[i].name) != NULL;
        all &= strstr(text, env_names[i]) != NULL;
    }
    ok(all);
    ok(strstr(text, "KEY") != NULL && strstr(text, "ENVIRONMENT") != NULL && strstr(text, "DEFAULT") != NULL);
    ok(strstr(text, "127.0.0.1:8080") != NULL);
    ok(strstr(text, "256k") != NULL);
    ok(strstr(text, "(empty)") != NULL);
    ok(strstr(text, "duration") != NULL && strstr(text, "size") != NULL && strstr(text, "bool") != NULL);
    ok(strstr(text, "From 1 to 64.") != NULL);
    ok(strstr(text, "From 1 to 64m.") != NULL);
    ok(strstr(text, "which the tests check.") != NULL);
    okf(max_line_width(text) <= 100, "widest line %d", max_line_width(text));
    free(text);
}

static void test_example(void)
{
    char *text = print_to_string(1), *uncommented, *w;
    const char *r;
    int all = 1;
    cr_config_t c;

    for (size_t i = 0; table[i].name != NULL; ++i)
        all &= strstr(text, env_names[i]) != NULL;
    ok(all);
    ok(strncmp(text, "# Test example\n", 15) == 0);
    ok(strstr(text, "\n#data_dir = ./var/test\n") != NULL);
    ok(strstr(text, "\n[http]\n") != NULL);
    ok(strstr(text, "\n#listen = 127.0.0.1:8080\n") != NULL);
    ok(strstr(text, "\n[push.apns]\n") != NULL);
    ok(strstr(text, "\n#url = \"\"\n") != NULL); /* redis.url's empty default, visibly empty */
    ok(strstr(text, "# Environment: CORRAL_HTTP_MAX_BODY\n#max_body = 256k\n") != NULL);
    /* Top-level keys come before the first section, and each section appears once. */
    ok(strstr(text, "#offset = -5") < strstr(text, "[http]"));
    ok(strstr(strstr(text, "[http]") + 1, "[http]") == NULL);
    /* http.workers is listed after redis.url in the table but printed with the other http keys. */
    ok(strstr(text, "#workers = 4") < strstr(text, "[redis]"));
    okf(max_line_width(text) <= 100, "widest line %d", max_line_width(text));

    /* Uncommenting every key gives a file that loads and means the defaults. */
    uncommented = malloc(strlen(text) + 1);
    w = uncommented;
    for (r = text; *r != '\0';) {
        if (r[0] == '#' && r[1] >= 'a' && r[1] <= 'z' && (r == text || r[-1] == '\n'))
            ++r;
        *w++ = *r++;
    }
    *w = '\0';
    okf(cr_config_load(&c, table, write_file(uncommented)) == 0, "%s", cr_error_last()->message);
    for (size_t i = 0; table[i].name != NULL; ++i) {
        ok_str(c.values[i].from, "file");
        ok_str(c.values[i].str, table[i].defval);
    }
    cr_config_free(&c);
    free(uncommented);
    free(text);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/corral-config-test-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/test.ini", dir);
    clear_env();

    subtest("defaults", test_defaults);
    subtest("file", test_file);
    subtest("values", test_values);
    subtest("environment", test_env);
    subtest("file errors", test_file_errors);
    subtest("bad default", test_bad_default);
    subtest("getters abort on unknown keys", test_getters_abort);
    subtest("help", test_help);
    subtest("example", test_example);

    unlink(path);
    rmdir(dir);
    return done_testing();
}
