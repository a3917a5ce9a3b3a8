/* harness.c — the TAP test harness. */
#include "harness.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_count, test_failed, depth;
static const char *current_subtest = "";

static void indent(void)
{
    for (int i = 0; i < depth; ++i)
        printf("    ");
}

int cr_test_ok(int pass, const char *file, int line, const char *expr)
{
    ++test_count;
    if (!pass)
        ++test_failed;
    indent();
    printf("%s %d - %s:%d %s%s%s\n", pass ? "ok" : "not ok", test_count, file, line, current_subtest,
           current_subtest[0] ? ": " : "", expr);
    fflush(stdout);
    return pass;
}

int cr_test_okf(int pass, const char *file, int line, const char *expr, const char *fmt, ...)
{
    va_list ap;
    cr_test_ok(pass, file, line, expr);
    if (!pass) {
        indent();
        printf("#   ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
    }
    return pass;
}

static void hexdump(const char *label, const void *p, size_t n)
{
    const unsigned char *b = p;
    indent();
    printf("#   %s (%zu bytes): ", label, n);
    for (size_t i = 0; i < n && i < 512; ++i)
        printf("%02x", b[i]);
    printf("%s\n", n > 512 ? "..." : "");
}

int cr_test_bytes(const char *file, int line, const void *got, size_t gotlen, const void *want, size_t wantlen)
{
    int pass = gotlen == wantlen && (gotlen == 0 || memcmp(got, want, gotlen) == 0);
    cr_test_ok(pass, file, line, "bytes equal");
    if (!pass) {
        hexdump("got ", got, gotlen);
        hexdump("want", want, wantlen);
    }
    return pass;
}

int cr_test_str(const char *file, int line, const char *got, const char *want)
{
    int pass = got != NULL && want != NULL && strcmp(got, want) == 0;
    cr_test_ok(pass, file, line, "strings equal");
    if (!pass) {
        indent();
        printf("#   got:  %s\n", got != NULL ? got : "(null)");
        indent();
        printf("#   want: %s\n", want != NULL ? want : "(null)");
    }
    return pass;
}

void subtest(const char *name, void (*fn)(void))
{
    const char *saved = current_subtest;
    int failed_before = test_failed;
    indent();
    printf("# subtest %s\n", name);
    current_subtest = name;
    ++depth;
    fn();
    --depth;
    current_subtest = saved;
    indent();
    printf("# %s %s\n", test_failed == failed_before ? "passed" : "FAILED", name);
}

int done_testing(void)
{
    printf("1..%d\n", test_count);
    if (test_failed != 0)
        printf("# %d of %d checks failed\n", test_failed, test_count);
    return test_failed == 0 && test_count > 0 ? 0 : 1;
}

void note(const char *fmt, ...)
{
    va_list ap;
    indent();
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

const char *cr_test_source_dir(void)
{
    const char *d = getenv("CORRAL_SOURCE_DIR");
#ifdef CORRAL_SOURCE_DIR_DEFAULT
    if (d == NULL)
        d = CORRAL_SOURCE_DIR_DEFAULT;
#endif
    return d != NULL ? d : ".";
}

char *cr_test_read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (fp == NULL)
        return NULL;
    if (fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0)
        goto done;
    if ((buf = malloc((size_t)n + 1)) == NULL)
        goto done;
    if (fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
        goto done;
    }
    buf[n] = '\0';
    if (len != NULL)
        *len = (size_t)n;
done:
    fclose(fp);
    return buf;
}
