/* tests/unit/proto/ulid.c — ULID format, the spec's vector, monotonic order, parsing, protocol ids and the clock. */
#include "corral/ulid.h"
#include "harness.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MANY 100000

static int is_crockford(char c)
{
    return c != '\0' && strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", c) != NULL;
}

static void test_vector(void)
{
    static const uint8_t zero[10] = {0}, ones[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    char id[CR_ULID_LEN + 1];
    uint64_t ms = 0;

    /* The ULID spec's example time, 1469918176385, encodes as 01ARYZ6S41. */
    cr_ulid_make(id, 1469918176385ULL, zero);
    ok_str(id, "01ARYZ6S410000000000000000");
    ok(cr_ulid_parse(id, &ms) == 1);
    ok(ms == 1469918176385ULL);

    cr_ulid_make(id, 1469918176385ULL, ones);
    ok_str(id, "01ARYZ6S41ZZZZZZZZZZZZZZZZ");

    cr_ulid_make(id, 0, zero);
    ok_str(id, "00000000000000000000000000");
    cr_ulid_make(id, 0xffffffffffffULL, ones); /* the largest ULID */
    ok_str(id, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    ok(cr_ulid_parse(id, &ms) == 1);
    ok(ms == 0xffffffffffffULL);

    /* One bit at a time lands where base32 says: the last random bit is the last digit's lowest bit. */
    uint8_t r[10] = {0};
    r[9] = 1;
    cr_ulid_make(id, 0, r);
    ok_str(id, "00000000000000000000000001");
    memset(r, 0, sizeof(r));
    r[0] = 0x80;
    cr_ulid_make(id, 1, r);
    ok_str(id, "0000000001G000000000000000");
}

static void test_format(void)
{
    char id[CR_ULID_LEN + 1];
    uint64_t before = cr_now_ms(), ms = 0, after;
    int good = 1;

    cr_ulid_new(id);
    after = cr_now_ms();
    ok(strlen(id) == CR_ULID_LEN);
    for (int i = 0; i < CR_ULID_LEN; ++i)
        good &= is_crockford(id[i]);
    ok(good);
    ok(id[0] >= '0' && id[0] <= '7');
    ok(cr_ulid_parse(id, &ms) == 1);
    okf(ms >= before && ms <= after, "ms %llu not in [%llu, %llu]", (unsigned long long)ms, (unsigned long long)before,
        (unsigned long long)after);
    ok(cr_id_valid(id, strlen(id)));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_monotonic(void)
{
    char(*ids)[CR_ULID_LEN + 1] = malloc(sizeof(*ids) * MANY);
    char **sorted = malloc(sizeof(*sorted) * MANY);
    int increasing = 1, same_ms_successor = 1, same_ms = 0;

    for (int i = 0; i < MANY; ++i)
        cr_ulid_new(ids[i]);
    for (int i = 1; i < MANY; ++i) {
        if (strcmp(ids[i - 1], ids[i]) >= 0) {
            if (increasing)
                note("not increasing at %d: %s then %s", i, ids[i - 1], ids[i]);
            increasing = 0;
        }
        if (memcmp(ids[i - 1], ids[i], 10) == 0) {
            /* Same millisecond: the random part is the previous one plus one. The last digit goes up by one
             * unless it was Z (a carry). */
            const char *digits = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
            char last = ids[i - 1][25];
            ++same_ms;
            if (last != 'Z')
                same_ms_successor &= ids[i][25] == digits[strchr(digits, last) - digits + 1] && memcmp(ids[i - 1], ids[i], 25) == 0;
        }
    }
    ok(increasing);
    ok(same_ms > 0); /* 100k ids cannot all fall in different milliseconds */
    ok(same_ms_successor);
    note("%d of %d ids shared the millisecond of the one before", same_ms, MANY);

    /* Sorting the ids as strings gives creation order. */
    for (int i = 0; i < MANY; ++i)
        sorted[MANY - 1 - i] = ids[i];
    qsort(sorted, MANY, sizeof(*sorted), cmp_str);
    int in_order = 1;
    for (int i = 0; i < MANY; ++i)
        in_order &= sorted[i] == ids[i];
    ok(in_order);
    free(sorted);
    free(ids);
}

#define THREADS 4
#define PER_THREAD 20000

static char (*thread_ids)[CR_ULID_LEN + 1];

static void *make_ids(void *arg)
{
    size_t base = (size_t)arg * PER_THREAD;
    for (size_t i = 0; i < PER_THREAD; ++i)
        cr_ulid_new(thread_ids[base + i]);
    return NULL;
}

static void test_threads(void)
{
    pthread_t t[THREADS];
    char **p;
    int unique = 1, each_increasing = 1;

    thread_ids = malloc(sizeof(*thread_ids) * THREADS * PER_THREAD);
    p = malloc(sizeof(*p) * THREADS * PER_THREAD);
    for (size_t i = 0; i < THREADS; ++i)
        pthread_create(&t[i], NULL, make_ids, (void *)i);
    for (size_t i = 0; i < THREADS; ++i)
        pthread_join(t[i], NULL);
    for (size_t i = 0; i < THREADS * PER_THREAD; ++i) {
        p[i] = thread_ids[i];
        if (i % PER_THREAD != 0)
            each_increasing &= strcmp(thread_ids[i - 1], thread_ids[i]) < 0;
    }
    qsort(p, THREADS * PER_THREAD, sizeof(*p), cmp_str);
    for (size_t i = 1; i < THREADS * PER_THREAD; ++i)
        unique &= strcmp(p[i - 1], p[i]) != 0;
    ok(unique);
    ok(each_increasing);
    free(p);
    free(thread_ids);
}

static void test_parse(void)
{
    uint64_t ms = 42;
    ok(cr_ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAV", &ms) == 1);
    ok(ms == 1469918176385ULL);
    ok(cr_ulid_parse("01aryz6s41tsv4rrffq69g5fav", &ms) == 1); /* Crockford base32 is case-insensitive */
    ok(ms == 1469918176385ULL);
    ok(cr_ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAV", NULL) == 1);

    ms = 42;
    ok(cr_ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FA", &ms) == 0);   /* 25 chars */
    ok(cr_ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAVV", &ms) == 0); /* 27 chars */
    ok(cr_ulid_parse("", &ms) == 0);
    ok(cr_ulid_parse(NULL, &ms) == 0);
    ok(cr_ulid_parse("81ARYZ6S41TSV4RRFFQ69G5FAV", &ms) == 0); /* over 2^128: first digit 0-7 */
    ok(cr_ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAI", &ms) == 0); /* I, L, O and U are not ULID digits */
    ok(cr_ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAL", &ms) == 0);
    ok(cr_ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAO", &ms) == 0);
    ok(cr_ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAU", &ms) == 0);
    ok(cr_ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FA-", &ms) == 0);
    ok(cr_ulid_parse("01ARYZ6S41 TSV4RRFFQ69G5FA", &ms) == 0);
    ok(ms == 42); /* untouched on failure */
    ok(cr_ulid_parse("7ZZZZZZZZZZZZZZZZZZZZZZZZZ", &ms) == 1);
}

static void test_id_valid(void)
{
    char s[80];
    memset(s, 'a', sizeof(s));
    ok(cr_id_valid("a", 1));
    ok(cr_id_valid("feature-auth_agent.2", 20));
    ok(cr_id_valid("ABC.xyz-09_", 11));
    ok(cr_id_valid(s, 64));
    ok(!cr_id_valid(s, 65));
    ok(!cr_id_valid("", 0));
    ok(!cr_id_valid(NULL, 0));
    ok(!cr_id_valid(NULL, 3));
    ok(cr_id_valid("ab/c", 2)); /* only the first n bytes count */
    ok(!cr_id_valid("ab/c", 4));
    ok(!cr_id_valid("a b", 3));
    ok(!cr_id_valid("a:b", 3));
    ok(!cr_id_valid("a\0b", 3));
    ok(!cr_id_valid("a\nb", 3));
    ok(!cr_id_valid("caf\xc3\xa9", 5));
    ok(!cr_id_valid("{T}", 3));
    ok(!cr_id_valid("a*", 2));
}

static void test_clock(void)
{
    uint64_t a = cr_now_ms(), b = cr_now_ms();
    ok(a > 1700000000000ULL); /* after November 2023 */
    ok(a < 4102444800000ULL); /* before 2100 */
    ok(b >= a);
}

int main(void)
{
    subtest("spec vector and bit layout", test_vector);
    subtest("format", test_format);
    subtest("monotonic over 100k ids", test_monotonic);
    subtest("threads", test_threads);
    subtest("parse", test_parse);
    subtest("id valid", test_id_valid);
    subtest("clock", test_clock);
    return done_testing();
}
