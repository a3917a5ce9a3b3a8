/* mp.c — unit tests of proto/src/mp.c: the bounded scanner's framing, limits, depth, UTF-8 and paths. */
#include "corral/error.h"
#include "corral/mp.h"
#include "harness.h"
#include <msgpack.h>
#include <string.h>

#define CHECK(lit, rc_want)                                                                                             \
    do {                                                                                                                \
        size_t used_ = 0;                                                                                               \
        int rc_ = cr_mp_check(lit, sizeof(lit) - 1, NULL, 1 << 20, NULL, &used_);                                       \
        okf(rc_ == (rc_want) && (rc_ != 0 || used_ == sizeof(lit) - 1), "%s: got %s (%s)", #lit, cr_err_code(rc_),     \
            cr_error_last()->message);                                                                                  \
    } while (0)

static void test_types(void)
{
    CHECK("\xc0", 0);
    CHECK("\xc2", 0);
    CHECK("\x7f", 0);
    CHECK("\xe0", 0);
    CHECK("\xcc\xff", 0);
    CHECK("\xcf\x00\x00\x00\x00\x00\x00\x00\x01", 0);
    CHECK("\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 0);
    CHECK("\xca\x3f\x80\x00\x00", 0);
    CHECK("\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", 0);
    CHECK("\xc4\x02\x00\xff", 0);
    CHECK("\xd9\x01x", 0);
    CHECK("\x80", 0);
    CHECK("\x90", 0);
    CHECK("\xde\x00\x01\xa1k\x90", 0);
    CHECK("\xc1", CR_EMSGPACK);
    CHECK("\xd4\x01\x00", CR_EMSGPACK);
    CHECK("\xc7\x01\x01\x00", CR_EMSGPACK);
    CHECK("\x81\x01\x02", CR_EMSGPACK);
    CHECK("\xcf\x00", CR_EAGAIN);
    CHECK("\x92\x01", CR_EAGAIN);
    CHECK("\xa3" "ab", CR_EAGAIN);

    cr_mp_item_t it;
    ok(cr_mp_read("\xd0\x05", "\xd0\x05" + 2, &it) == 2 && it.type == MSGPACK_OBJECT_POSITIVE_INTEGER && it.u == 5);
    ok(cr_mp_read("\xd1\xff\x00", "\xd1\xff\x00" + 3, &it) == 3 && it.type == MSGPACK_OBJECT_NEGATIVE_INTEGER && it.i == -256);
}

static void test_utf8(void)
{
    ok(cr_utf8_valid("plain ascii text!", 17));
    ok(cr_utf8_valid("h\xc3\xa9llo \xe4\xb8\x96 \xf0\x9f\x9a\x80", 15));
    ok(!cr_utf8_valid("\xc3\x28", 2));
    ok(!cr_utf8_valid("\xc0\xaf", 2));             /* overlong '/' */
    ok(!cr_utf8_valid("\xe0\x80\xaf", 3));         /* overlong */
    ok(!cr_utf8_valid("\xed\xa0\x80", 3));         /* surrogate */
    ok(!cr_utf8_valid("\xf4\x90\x80\x80", 4));     /* > U+10FFFF */
    ok(!cr_utf8_valid("abcdefgh\xff", 9));
    ok(!cr_utf8_valid("\xe4\xb8", 2));             /* cut */
    CHECK("\xa2\xc3\x28", CR_EENCODING);
}

static void test_depth_and_paths(void)
{
    char buf[64];
    size_t used;
    memset(buf, 0x91, 16);
    buf[16] = (char)0xc0;
    ok(cr_mp_check(buf, 17, NULL, 1 << 20, NULL, &used) == 0 && used == 17);
    memset(buf, 0x91, 17);
    buf[17] = (char)0xc0;
    ok(cr_mp_check(buf, 18, NULL, 1 << 20, NULL, &used) == CR_ETOODEEP);
    ok_str(cr_error_last()->field, "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0");
    /* an empty container counts as a level too */
    memset(buf, 0x91, 16);
    buf[16] = (char)0x90;
    ok(cr_mp_check(buf, 17, NULL, 1 << 20, NULL, &used) == CR_ETOODEEP);

    static const char m[] = "\x82\xa1" "a\x01\xa5" "files\x92\x80\x81\xa4path\xa2\xc3\x28";
    ok(cr_mp_check(m, sizeof(m) - 1, NULL, 1 << 20, "b", &used) == CR_EENCODING);
    ok_str(cr_error_last()->field, "b.files.1.path");

    cr_span_t v;
    static const char g[] = "\x83\xa1" "a\x01\xa1" "b\x92\x01\x02\xa1" "c\xa1z";
    ok(cr_mp_map_get(g, sizeof(g) - 1, "b", &v) == 0 && v.len == 3 && memcmp(v.base, "\x92\x01\x02", 3) == 0);
    ok(cr_mp_map_get(g, sizeof(g) - 1, "c", &v) == 0 && v.len == 2);
    ok(cr_mp_map_get(g, sizeof(g) - 1, "d", &v) == CR_ENOTFOUND);
    ok(cr_mp_map_get("\x90", 1, "a", &v) == CR_ENOTFOUND);

    cr_span_t sv[3];
    size_t sn = 99;
    static const char sa[] = "\x92\xa3one\xa0";
    ok(cr_mp_str_array(sa, sizeof(sa) - 1, sv, 3, &sn) == 0 && sn == 2 && sv[0].len == 3 && memcmp(sv[0].base, "one", 3) == 0 &&
       sv[1].len == 0);
    ok(cr_mp_str_array(sa, sizeof(sa) - 1, sv, 1, &sn) == CR_ETOOLARGE && sn == 0);
    ok(cr_mp_str_array("\x92\xa1x\x05", 4, sv, 3, &sn) == CR_EBODY && sn == 1); /* the second is a number */
    ok(cr_mp_str_array("\xa1x", 2, sv, 3, &sn) == CR_ENOTFOUND && sn == 0);       /* not an array */
    ok(cr_mp_str_array("\x92\xa1x", 3, sv, 3, &sn) == CR_EBODY && sn == 1);     /* cut short */
}

static void test_limits(void)
{
    cr_limits_t lim = cr_limits_default;
    size_t used;
    lim.max_string = 3;
    lim.max_bin = 2;
    lim.max_elements = 2;
    ok(cr_mp_check("\xa3" "abc", 4, &lim, 100, NULL, &used) == 0);
    ok(cr_mp_check("\xa4" "abcd", 5, &lim, 100, NULL, &used) == CR_ETOOLARGE);
    /* declared too large is known before the bytes arrive */
    ok(cr_mp_check("\xa4" "a", 2, &lim, 100, NULL, &used) == CR_ETOOLARGE);
    ok(cr_mp_check("\xc4\x03\x01\x02\x03", 5, &lim, 100, NULL, &used) == CR_ETOOLARGE);
    ok(cr_mp_check("\x93\x01\x02\x03", 4, &lim, 100, NULL, &used) == CR_ETOOLARGE);
    /* the total cap */
    ok(cr_mp_check("\x93\x01\x02\x03", 4, NULL, 3, NULL, &used) == CR_ETOOLARGE);
    ok(cr_mp_check("\x93\x01\x02\x03", 4, NULL, 4, NULL, &used) == 0);
}

static void test_writers(void)
{
    cr_buf_t b;
    char s40[40], s300[300];
    size_t used;
    memset(s40, 'x', sizeof(s40));
    memset(s300, 'y', sizeof(s300));
    cr_buf_init(&b, 1 << 20);
    ok(cr_mpw_map(&b, 2) == 0 && CR_MPW_LIT(&b, "k") == 0 && CR_MPW_LIT(&b, "ev") == 0);
    ok(cr_mpw_str(&b, "n", 1) == 0 && cr_mpw_array(&b, 3) == 0);
    ok(cr_mpw_uint(&b, 127) == 0 && cr_mpw_uint(&b, 300) == 0 && cr_mpw_bool(&b, 1) == 0);
    ok_bytes(b.base, b.len, "\x82\xa1k\xa2" "ev\xa1n\x93\x7f\xcd\x01\x2c\xc3", 14);
    /* every size class, canonical as msgpack-c writes them */
    cr_buf_reset(&b);
    ok(cr_mpw_uint(&b, 255) == 0 && cr_mpw_uint(&b, 65536) == 0 && cr_mpw_uint(&b, 1ULL << 40) == 0 && cr_mpw_nil(&b) == 0);
    ok_bytes(b.base, b.len, "\xcc\xff\xce\x00\x01\x00\x00\xcf\x00\x00\x01\x00\x00\x00\x00\x00\xc0", 17);
    cr_buf_reset(&b);
    ok(cr_mpw_str(&b, s40, sizeof(s40)) == 0 && (unsigned char)b.base[0] == 0xd9 && (unsigned char)b.base[1] == 40);
    cr_buf_reset(&b);
    ok(cr_mpw_str(&b, s300, sizeof(s300)) == 0 && (unsigned char)b.base[0] == 0xda && cr_mp_check(b.base, b.len, NULL, 1 << 20, NULL, &used) == 0);
    cr_buf_reset(&b);
    ok(cr_mpw_map(&b, 16) == 0 && (unsigned char)b.base[0] == 0xde && cr_mpw_array(&b, 70000) == 0 && (unsigned char)b.base[3] == 0xdd);
    cr_buf_free(&b);
    /* a full buffer says so */
    cr_buf_init(&b, 4);
    ok(cr_mpw_str(&b, "hello", 5) == CR_ETOOLARGE);
    cr_buf_free(&b);
}

static void test_error_doc(void)
{
    cr_buf_t b;
    cr_span_t e, v;
    cr_mp_item_t it;
    cr_buf_init(&b, 4096);
    ok(cr_mpw_error_doc(&b, "not_found", "sid", "no such session", 100) == 0);
    ok(cr_mp_skip(b.base, b.base + b.len) == b.base + b.len);
    ok(cr_mp_map_get(b.base, b.len, "error", &e) == 0);
    ok(cr_mp_map_get(e.base, e.len, "code", &v) == 0 && cr_mp_read(v.base, v.base + v.len, &it) != 0 &&
       cr_span_eq(it.bytes, "not_found", 9));
    ok(cr_mp_map_get(e.base, e.len, "field", &v) == 0 && cr_mp_read(v.base, v.base + v.len, &it) != 0 &&
       cr_span_eq(it.bytes, "sid", 3));
    cr_buf_reset(&b);
    /* no field when it is "" or NULL; the message is cut at message_max */
    ok(cr_mpw_error(&b, "internal", "", "0123456789", 4) == 0);
    ok(cr_mp_read(b.base, b.base + b.len, &it) != 0 && it.type == MSGPACK_OBJECT_MAP && it.count == 2);
    ok(cr_mp_map_get(b.base, b.len, "field", &v) == CR_ENOTFOUND);
    ok(cr_mp_map_get(b.base, b.len, "message", &v) == 0 && cr_mp_read(v.base, v.base + v.len, &it) != 0 &&
       cr_span_eq(it.bytes, "0123", 4));
    cr_buf_free(&b);
    cr_buf_init(&b, 8); /* no room: an error, not half a document passed off as whole */
    ok(cr_mpw_error_doc(&b, "not_found", NULL, "no such session", 100) != 0);
    cr_buf_free(&b);
}

int main(void)
{
    subtest("types", test_types);
    subtest("utf-8", test_utf8);
    subtest("depth and paths", test_depth_and_paths);
    subtest("limits", test_limits);
    subtest("writers", test_writers);
    subtest("error documents", test_error_doc);
    return done_testing();
}
