/* tests/unit/proto/query.c — cr_query_param: values, bare names, absent names, first occurrence, prefixes. */
#include "corral/query.h"
#include "harness.h"
#include <stdio.h>
#include <string.h>

static int get(const char *q, const char *name, char *out, size_t outlen)
{
    cr_span_t v = {NULL, 0};
    int rc = cr_query_param(q, strlen(q), name, &v);
    if (rc != 0)
        snprintf(out, outlen, "%.*s", (int)v.len, v.base);
    else
        out[0] = '\0';
    return rc;
}

static void test_params(void)
{
    char v[64];
    ok(get("after=1-0&limit=5", "after", v, sizeof(v)) == 1 && strcmp(v, "1-0") == 0);
    ok(get("after=1-0&limit=5", "limit", v, sizeof(v)) == 1 && strcmp(v, "5") == 0);
    ok(get("after=1-0&limit=5", "lim", v, sizeof(v)) == 0);         /* a prefix is not the name */
    ok(get("after=1-0&limit=5", "limit=5", v, sizeof(v)) == 0);
    ok(get("keep_branch&x=1", "keep_branch", v, sizeof(v)) == 2 && v[0] == '\0');
    ok(get("keep_branch=&x=1", "keep_branch", v, sizeof(v)) == 1 && v[0] == '\0');
    ok(get("a=1&a=2", "a", v, sizeof(v)) == 1 && strcmp(v, "1") == 0); /* the first wins */
    ok(get("", "a", v, sizeof(v)) == 0);
    ok(get("&&a=x=y&", "a", v, sizeof(v)) == 1 && strcmp(v, "x=y") == 0);
}

static void test_form_decode(void)
{
    char out[64];
    ok(cr_form_decode(out, "Your+code%3A+123%2B456", 22) == 18);
    ok_str(out, "Your code: 123+456");
    ok(cr_form_decode(out, "%E9%AA%8C%e8%af%81", 18) == 6);
    ok_str(out, "\xe9\xaa\x8c\xe8\xaf\x81"); /* 验证, either case of hex */
    ok(cr_form_decode(out, "100%+sure%4", 11) == 11); /* a '%' without two hex digits stays */
    ok_str(out, "100% sure%4");
    ok(cr_form_decode(out, "a%00b", 5) == 3 && out[1] == '\0' && out[2] == 'b');
    ok(cr_form_decode(out, "", 0) == 0 && out[0] == '\0');
}

int main(void)
{
    subtest("parameters", test_params);
    subtest("form decoding", test_form_decode);
    return done_testing();
}
