/* tests/unit/proto/buf.c — the capped buffer: append, the limit (too_large, buffer unchanged), appendf, consume. */
#include "corral/buf.h"
#include "corral/error.h"
#include "harness.h"
#include <stdlib.h>
#include <string.h>

static void test_append(void)
{
    cr_buf_t b;
    cr_buf_init(&b, 1 << 20);
    ok(b.base == NULL && b.len == 0 && b.cap == 0 && b.limit == 1 << 20);
    ok(cr_buf_append(&b, "hello", 5) == 0);
    ok(cr_buf_append(&b, ", ", 2) == 0);
    ok(cr_buf_append(&b, "world", 5) == 0);
    ok_bytes(b.base, b.len, "hello, world", 12);
    ok(b.cap >= b.len);
    ok(cr_buf_append(&b, NULL, 0) == 0); /* nothing to add */
    ok(b.len == 12);

    /* Growing across many reallocations keeps every byte. */
    char *want = malloc(300000);
    for (size_t i = 0; i < 300000; ++i)
        want[i] = (char)(i * 7);
    cr_buf_reset(&b);
    ok(b.len == 0);
    for (size_t i = 0; i < 300000; i += 1000)
        cr_buf_append(&b, want + i, 1000);
    ok_bytes(b.base, b.len, want, 300000);
    free(want);

    cr_buf_free(&b);
    ok(b.base == NULL && b.len == 0 && b.cap == 0);
    /* Reusable after free. */
    ok(cr_buf_append(&b, "again", 5) == 0);
    ok_bytes(b.base, b.len, "again", 5);
    cr_buf_free(&b);
}

static void test_limit(void)
{
    cr_buf_t b;
    cr_buf_init(&b, 10);
    ok(cr_buf_append(&b, "0123456", 7) == 0);
    cr_error_clear();
    ok(cr_buf_append(&b, "7890", 4) == CR_ETOOLARGE);
    ok(cr_error_last()->code == CR_ETOOLARGE);
    ok(strstr(cr_error_last()->message, "10 bytes") != NULL);
    ok_bytes(b.base, b.len, "0123456", 7); /* unchanged */
    ok(cr_buf_append(&b, "789", 3) == 0);  /* exactly the limit fits */
    ok_bytes(b.base, b.len, "0123456789", 10);
    ok(b.cap <= b.limit);
    ok(cr_buf_append(&b, "x", 1) == CR_ETOOLARGE);
    ok(b.len == 10);
    ok(cr_buf_reserve(&b, 0) == 0);
    ok(cr_buf_reserve(&b, 1) == CR_ETOOLARGE);
    /* A size that would overflow len + n is too large, not a wrap-around. */
    ok(cr_buf_reserve(&b, (size_t)-1) == CR_ETOOLARGE);
    ok(cr_buf_append(&b, "x", (size_t)-1) == CR_ETOOLARGE);
    ok(b.len == 10);
    cr_buf_free(&b);

    cr_buf_init(&b, 0);
    ok(cr_buf_append(&b, "x", 1) == CR_ETOOLARGE);
    ok(b.len == 0 && b.base == NULL);
    cr_buf_free(&b);
}

static void test_appendf(void)
{
    cr_buf_t b;
    cr_buf_init(&b, 64);
    ok(cr_buf_appendf(&b, "seq=%d sid=%s", 12, "01J") == 0);
    ok_bytes(b.base, b.len, "seq=12 sid=01J", 14); /* no NUL counted */
    ok(cr_buf_appendf(&b, "%s", "") == 0);
    ok(b.len == 14);
    ok(cr_buf_appendf(&b, "|%05.1f", 3.14159) == 0);
    ok_bytes(b.base, b.len, "seq=12 sid=01J|003.1", 20);

    /* Over the limit: too_large, and the buffer keeps what it had. */
    ok(cr_buf_appendf(&b, "%50s", "x") == CR_ETOOLARGE);
    ok_bytes(b.base, b.len, "seq=12 sid=01J|003.1", 20);
    cr_buf_free(&b);

    /* Formatted text exactly up to the limit fits, as it would with cr_buf_append. */
    cr_buf_init(&b, 10);
    ok(cr_buf_appendf(&b, "%s", "01234") == 0);
    okf(cr_buf_appendf(&b, "%d", 56789) == 0, "appendf of the last 5 bytes under the limit failed");
    ok_bytes(b.base, b.len, "0123456789", 10);
    cr_buf_free(&b);
}

static void test_consume(void)
{
    cr_buf_t b;
    cr_buf_init(&b, 100);
    cr_buf_append(&b, "abcdefghij", 10);
    cr_buf_consume(&b, 3);
    ok_bytes(b.base, b.len, "defghij", 7);
    cr_buf_consume(&b, 0);
    ok_bytes(b.base, b.len, "defghij", 7);
    cr_buf_consume(&b, 7);
    ok(b.len == 0);
    cr_buf_append(&b, "xyz", 3);
    cr_buf_consume(&b, 1000); /* more than there is: empty */
    ok(b.len == 0);
    /* Room freed by consume is usable up to the limit again. */
    cr_buf_append(&b, "0123456789", 10);
    for (int i = 0; i < 9; ++i)
        cr_buf_append(&b, "0123456789", 10);
    ok(b.len == 100);
    cr_buf_consume(&b, 95);
    ok_bytes(b.base, b.len, "56789", 5);
    ok(cr_buf_append(&b, "0123456789", 10) == 0);
    ok_bytes(b.base, b.len, "567890123456789", 15);
    cr_buf_free(&b);
}

int main(void)
{
    subtest("append", test_append);
    subtest("limit", test_limit);
    subtest("appendf", test_appendf);
    subtest("consume", test_consume);
    return done_testing();
}
