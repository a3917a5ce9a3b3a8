/* streamid.c — unit tests of relay/src/streamid.c: stream ids and decimal numbers as clients send them. */
#include "harness.h"
#include "streamid.h"
#include <string.h>

static void test_numbers(void)
{
    uint64_t v;
    ok(relay_parse_u64("0", 1, &v) == 0 && v == 0);
    ok(relay_parse_u64("18446744073709551615", 20, &v) == 0 && v == UINT64_MAX);
    ok(relay_parse_u64("18446744073709551616", 20, &v) == -1); /* one over */
    ok(relay_parse_u64("", 0, &v) == -1);
    ok(relay_parse_u64("12a", 3, &v) == -1);
    ok(relay_parse_u64("-1", 2, &v) == -1);
    ok(relay_parse_u64("+1", 2, &v) == -1);
}

static void test_ids(void)
{
    char out[STREAM_ID_MAX], next[STREAM_ID_MAX];
    uint64_t ms, seq;
    ok(relay_stream_id_parse("1700000000000-5", 15, &ms, &seq) == 0 && ms == 1700000000000ULL && seq == 5);
    ok(relay_stream_id_parse("1700000000000", 13, &ms, &seq) == 0 && seq == 0);
    ok(relay_stream_id_parse("1-", 2, &ms, &seq) == -1);
    ok(relay_stream_id_parse("-1", 2, &ms, &seq) == -1);
    ok(relay_stream_id_parse("1-2-3", 5, &ms, &seq) == -1);
    ok(relay_stream_id_parse("$", 1, &ms, &seq) == -1);
    ok(relay_stream_id_canon("42", 2, out, next) == 0);
    ok_str(out, "42-0");
    ok_str(next, "42-1");
    ok(relay_stream_id_canon("42-18446744073709551615", 23, out, next) == 0);
    ok_str(next, "43-0");
    ok(relay_stream_id_canon("18446744073709551615-18446744073709551615", 41, out, next) == 0);
    ok_str(next, out); /* nothing can follow the last id */
}

int main(void)
{
    subtest("numbers", test_numbers);
    subtest("stream ids", test_ids);
    return done_testing();
}
