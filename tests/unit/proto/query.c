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

int main(void)
{
    subtest("parameters", test_params);
    return done_testing();
}
