/* reader.c — unit tests of proto/src/reader.c: values split anywhere come out whole, bad streams stay bad. */
#include "corral/error.h"
#include "corral/reader.h"
#include "harness.h"
#include <string.h>

/* three values: {"k":"ping"}, [1,"two",3.0], "x" */
static const char stream[] = "\x81\xa1k\xa4ping"
                             "\x93\x01\xa3two\xcb\x40\x08\x00\x00\x00\x00\x00\x00"
                             "\xa1x";
static const size_t lens[] = {8, 15, 2};

static void test_split_everywhere(void)
{
    size_t total = sizeof(stream) - 1;
    int all = 1;
    for (size_t step = 1; step <= total; ++step) {
        cr_reader_t r;
        cr_span_t v;
        size_t got = 0, off = 0;
        cr_reader_init(&r, 1024, NULL);
        while (off < total) {
            size_t n = total - off < step ? total - off : step;
            if (cr_reader_feed(&r, stream + off, n) != 0)
                all = 0;
            off += n;
            int rc;
            while ((rc = cr_reader_next(&r, &v)) == 0) {
                size_t start = 0;
                for (size_t i = 0; i < got; ++i)
                    start += lens[i];
                if (got >= 3 || v.len != lens[got] || memcmp(v.base, stream + start, v.len) != 0)
                    all = 0;
                ++got;
            }
            if (rc != CR_EAGAIN)
                all = 0;
        }
        if (got != 3 || cr_reader_pending(&r) != 0)
            all = 0;
        cr_reader_free(&r);
    }
    ok(all);
}

static void test_bad_streams(void)
{
    cr_reader_t r;
    cr_span_t v;
    cr_reader_init(&r, 1024, NULL);
    ok(cr_reader_feed(&r, "\xa1x\xc1\xa1y", 5) == 0);
    ok(cr_reader_next(&r, &v) == 0 && v.len == 2);
    ok(cr_reader_next(&r, &v) == CR_EMSGPACK);
    /* the error sticks: nothing after garbage is trusted */
    ok(cr_reader_feed(&r, "\xa1z", 2) == CR_EMSGPACK);
    ok(cr_reader_next(&r, &v) == CR_EMSGPACK);
    cr_reader_free(&r);

    /* a value larger than allowed is refused as soon as its header says so */
    cr_reader_init(&r, 100, NULL);
    ok(cr_reader_feed(&r, "\xda\x01\x00", 3) == 0);
    ok(cr_reader_next(&r, &v) == CR_ETOOLARGE);
    cr_reader_free(&r);

    /* ...or when its bytes pile up past the limit */
    cr_reader_init(&r, 100, NULL);
    char many[200];
    many[0] = (char)0xdc, many[1] = 0, many[2] = (char)190;
    memset(many + 3, 0x01, sizeof(many) - 3);
    ok(cr_reader_feed(&r, many, sizeof(many)) == 0);
    ok(cr_reader_next(&r, &v) == CR_ETOOLARGE);
    cr_reader_free(&r);

    /* nesting over the limit */
    cr_reader_init(&r, 1024, NULL);
    char deep[40];
    memset(deep, 0x91, sizeof(deep));
    ok(cr_reader_feed(&r, deep, sizeof(deep)) == 0);
    ok(cr_reader_next(&r, &v) == CR_ETOODEEP);
    cr_reader_free(&r);

    /* nothing yet */
    cr_reader_init(&r, 1024, NULL);
    ok(cr_reader_next(&r, &v) == CR_EAGAIN);
    ok(cr_reader_feed(&r, "\x82", 1) == 0 && cr_reader_next(&r, &v) == CR_EAGAIN && cr_reader_pending(&r) == 1);
    cr_reader_free(&r);
}

int main(void)
{
    subtest("split everywhere", test_split_everywhere);
    subtest("bad streams", test_bad_streams);
    return done_testing();
}
