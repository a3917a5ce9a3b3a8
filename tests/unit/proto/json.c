/* json.c — tests of the msgpack <-> JSON converter: exact bytes and text both ways, limits, errors, round trips. */
#include "corral/error.h"
#include "corral/json.h"
#include "corral/mp.h"
#include "harness.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Decodes hex (spaces ignored) into a malloc'd buffer. */
static char *unhex(const char *hex, size_t *len)
{
    char *out = malloc(strlen(hex) / 2 + 1);
    size_t n = 0;
    for (const char *p = hex; *p != '\0';) {
        unsigned v;
        if (*p == ' ') {
            ++p;
            continue;
        }
        sscanf(p, "%2x", &v);
        out[n++] = (char)v;
        p += 2;
    }
    *len = n;
    return out;
}

/* JSON -> msgpack must give exactly `hex`. */
static void json_gives(const char *json, const char *hex)
{
    cr_buf_t b;
    size_t wlen;
    char *want = unhex(hex, &wlen);
    int rc;
    cr_buf_init(&b, 1 << 24);
    rc = cr_json_to_msgpack(&b, json, strlen(json), NULL);
    okf(rc == 0, "%s: rc %d (%s)", json, rc, cr_error_last()->message);
    ok_bytes(b.base, b.len, want, wlen);
    cr_buf_free(&b);
    free(want);
}

/* msgpack `hex` -> JSON must give exactly `json`. */
static void mp_gives(const char *hex, const char *json)
{
    cr_buf_t b;
    size_t len;
    char *mp = unhex(hex, &len);
    int rc;
    cr_buf_init(&b, 1 << 24);
    rc = cr_json_from_msgpack(&b, mp, len, NULL);
    okf(rc == 0, "%s: rc %d (%s)", hex, rc, cr_error_last()->message);
    ok_bytes(b.base, b.len, json, strlen(json));
    cr_buf_free(&b);
    free(mp);
}

/* Both directions: the canonical msgpack and the compact JSON of one value. */
static void both(const char *json, const char *hex)
{
    json_gives(json, hex);
    mp_gives(hex, json);
}

/* JSON -> msgpack fails with `code`; the buffer keeps its earlier content. */
static void json_fails(const char *json, size_t len, const cr_limits_t *lim, int code, const char *field)
{
    cr_buf_t b;
    int rc;
    cr_buf_init(&b, 1 << 24);
    cr_buf_append(&b, "keep", 4);
    cr_error_clear();
    rc = cr_json_to_msgpack(&b, json, len, lim);
    okf(rc == code, "%.*s: rc %d (%s), want %d", (int)(len > 60 ? 60 : len), json, rc, cr_error_last()->message, code);
    ok(cr_error_last()->code == code);
    ok(cr_error_last()->message[0] != '\0');
    if (field != NULL)
        ok_str(cr_error_last()->field, field);
    ok_bytes(b.base, b.len, "keep", 4);
    cr_buf_free(&b);
}

#define JSON_FAILS(json, code) json_fails((json), strlen(json), NULL, (code), NULL)

/* msgpack -> JSON fails with `code`; the buffer keeps its earlier content. */
static void mp_fails_bytes(const char *mp, size_t len, const cr_limits_t *lim, int code, const char *field)
{
    cr_buf_t b;
    int rc;
    cr_buf_init(&b, 1 << 24);
    cr_buf_append(&b, "keep", 4);
    cr_error_clear();
    rc = cr_json_from_msgpack(&b, mp, len, lim);
    okf(rc == code, "rc %d (%s), want %d", rc, cr_error_last()->message, code);
    ok(cr_error_last()->code == code);
    ok(cr_error_last()->message[0] != '\0');
    if (field != NULL)
        ok_str(cr_error_last()->field, field);
    ok_bytes(b.base, b.len, "keep", 4);
    cr_buf_free(&b);
}

static void mp_fails(const char *hex, const cr_limits_t *lim, int code, const char *field)
{
    size_t len;
    char *mp = unhex(hex, &len);
    mp_fails_bytes(mp, len, lim, code, field);
    free(mp);
}

/* to_msgpack(from_msgpack(x)) == x. */
static void mp_round_trips(const char *mp, size_t len)
{
    cr_buf_t j, m;
    cr_buf_init(&j, 1 << 24);
    cr_buf_init(&m, 1 << 24);
    ok(cr_json_from_msgpack(&j, mp, len, NULL) == 0);
    ok(cr_json_to_msgpack(&m, j.base, j.len, NULL) == 0);
    ok_bytes(m.base, m.len, mp, len);
    cr_buf_free(&j);
    cr_buf_free(&m);
}

static void test_scalars(void)
{
    both("null", "c0");
    both("false", "c2");
    both("true", "c3");
    both("\"\"", "a0");
    both("\"a\"", "a1 61");
    both("[]", "90");
    both("{}", "80");
    both("[1,2]", "92 01 02");
    both("{\"a\":1}", "81 a1 61 01");
    both("[null,true,false,\"x\",[],{}]", "96 c0 c3 c2 a1 78 90 80");
    both("{\"a\":{\"b\":[1,{\"c\":null}]}}", "81 a1 61 81 a1 62 92 01 81 a1 63 c0");
    json_gives(" \t\r\n[ 1 ,\n2 ] \n", "92 01 02");
    json_gives("{ \"a\" : 1 , \"b\" : [ ] }", "82 a1 61 01 a1 62 90");
    /* duplicate keys are kept, in order, both ways */
    both("{\"a\":1,\"a\":2}", "82 a1 61 01 a1 61 02");
}

static void test_ints(void)
{
    both("0", "00");
    both("127", "7f");
    both("128", "cc 80");
    both("255", "cc ff");
    both("256", "cd 01 00");
    both("65535", "cd ff ff");
    both("65536", "ce 00 01 00 00");
    both("4294967295", "ce ff ff ff ff");
    both("4294967296", "cf 00 00 00 01 00 00 00 00");
    both("18446744073709551615", "cf ff ff ff ff ff ff ff ff");
    both("-1", "ff");
    both("-32", "e0");
    both("-33", "d0 df");
    both("-128", "d0 80");
    both("-129", "d1 ff 7f");
    both("-32768", "d1 80 00");
    both("-32769", "d2 ff ff 7f ff");
    both("-2147483648", "d2 80 00 00 00");
    both("-2147483649", "d3 ff ff ff ff 7f ff ff ff");
    both("-9223372036854775808", "d3 80 00 00 00 00 00 00 00");
    both("9223372036854775807", "cf 7f ff ff ff ff ff ff ff");
    json_gives("-0", "00");
    /* non-canonical encodings read fine and come back canonical */
    mp_gives("cd 00 05", "5");
    mp_gives("d0 05", "5");
    mp_gives("d3 ff ff ff ff ff ff ff ff", "-1");
    JSON_FAILS("18446744073709551616", CR_EJSON);
    JSON_FAILS("-9223372036854775809", CR_EJSON);
    JSON_FAILS("99999999999999999999999", CR_EJSON);
    ok(strstr(cr_error_last()->message, "out of range") != NULL);
}

static void test_floats(void)
{
    both("0.5", "cb 3f e0 00 00 00 00 00 00");
    both("0.1", "cb 3f b9 99 99 99 99 99 9a");
    both("1e+300", "cb 7e 37 e4 3c 88 00 75 9c");
    both("-0.0", "cb 80 00 00 00 00 00 00 00");
    both("0.0", "cb 00 00 00 00 00 00 00 00");
    both("1.0", "cb 3f f0 00 00 00 00 00 00");
    both("-2.5", "cb c0 04 00 00 00 00 00 00");
    both("100.0", "cb 40 59 00 00 00 00 00 00");
    both("0.30000000000000004", "cb 3f d3 33 33 33 33 33 34");
    both("1.7976931348623157e+308", "cb 7f ef ff ff ff ff ff ff");
    both("2.2250738585072014e-308", "cb 00 10 00 00 00 00 00 00"); /* the smallest normal */
    both("5e-324", "cb 00 00 00 00 00 00 00 01");                  /* subnormals print short too */
    both("-1e-320", "cb 80 00 00 00 00 00 07 e8");
    both("1e+15", "cb 43 0c 6b f5 26 34 00 00");
    both("100000000000000.0", "cb 42 d6 bc c4 1e 90 00 00");
    both("1.5e-05", "cb 3e ef 75 10 4d 55 1d 69");
    /* other spellings read the same and print in the one form */
    json_gives("1E2", "cb 40 59 00 00 00 00 00 00");
    json_gives("1e300", "cb 7e 37 e4 3c 88 00 75 9c");
    json_gives("10e-1", "cb 3f f0 00 00 00 00 00 00");
    json_gives("1.000", "cb 3f f0 00 00 00 00 00 00");
    json_gives("5E-1", "cb 3f e0 00 00 00 00 00 00");
    json_gives("-0", "00");
    json_gives("0.1000000000000000055511151231257827021181583404541015625", "cb 3f b9 99 99 99 99 99 9a");
    json_gives("1.0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000e0",
               "cb 3f f0 00 00 00 00 00 00"); /* longer than the on-stack copy */
    json_gives("1e-400", "cb 00 00 00 00 00 00 00 00"); /* underflow rounds to zero, as any parser does */
    /* float32 reads as the double it widens to, and comes back as a float64 */
    mp_gives("ca 3f 80 00 00", "1.0");
    mp_gives("ca 3d cc cc cd", "0.10000000149011612");
    json_gives("0.10000000149011612", "cb 3f b9 99 99 a0 00 00 00");
    /* the smallest subnormal and a few awkward ones round-trip exactly */
    {
        static const char *const hexes[] = {"cb 00 00 00 00 00 00 00 01", "cb 00 0f ff ff ff ff ff ff",
                                            "cb 43 30 00 00 00 00 00 00", "cb 44 b5 2d 02 c7 e1 4a f6",
                                            "cb 3f b9 99 99 99 99 99 9a", "cb c3 e0 00 00 00 00 00 00"};
        for (size_t i = 0; i < sizeof(hexes) / sizeof(hexes[0]); ++i) {
            size_t len;
            char *mp = unhex(hexes[i], &len);
            mp_round_trips(mp, len);
            free(mp);
        }
    }
    /* NaN and infinities have no JSON form */
    mp_fails("cb 7f f8 00 00 00 00 00 00", NULL, CR_EMSGPACK, "");
    ok(strstr(cr_error_last()->message, "NaN") != NULL);
    mp_fails("cb 7f f0 00 00 00 00 00 00", NULL, CR_EMSGPACK, "");
    mp_fails("cb ff f0 00 00 00 00 00 00", NULL, CR_EMSGPACK, "");
    mp_fails("ca 7f c0 00 00", NULL, CR_EMSGPACK, "");
    mp_fails("81 a1 61 92 01 cb 7f f8 00 00 00 00 00 00", NULL, CR_EMSGPACK, "a.1");
    JSON_FAILS("1e400", CR_EJSON);
    JSON_FAILS("-1e400", CR_EJSON);
    ok(strstr(cr_error_last()->message, "out of range") != NULL);
}

static void test_strings(void)
{
    char json[80000], hex[200000];
    both("\"a\\\"b\\\\c\"", "a5 61 22 62 5c 63");
    both("\"\\b\\f\\n\\r\\t\"", "a5 08 0c 0a 0d 09");
    both("\"\\u0000\\u0001\\u001f\"", "a3 00 01 1f");
    /* 0x7f is not a JSON control character: written as is */
    json_gives("\"\\u007f\"", "a1 7f");
    mp_gives("a1 7f", "\"\x7f\"");
    both("\"/\"", "a1 2f");
    json_gives("\"\\/\"", "a1 2f");
    both("\"caf\xc3\xa9\"", "a5 63 61 66 c3 a9");
    json_gives("\"caf\\u00e9\"", "a5 63 61 66 c3 a9");
    json_gives("\"caf\\u00E9\"", "a5 63 61 66 c3 a9");
    both("\"\xe2\x82\xac\"", "a3 e2 82 ac");
    json_gives("\"\\u20ac\"", "a3 e2 82 ac");
    both("\"\xf0\x9f\x98\x80\"", "a4 f0 9f 98 80");
    json_gives("\"\\ud83d\\ude00\"", "a4 f0 9f 98 80");
    json_gives("\"\\uD83D\\uDE00x\"", "a5 f0 9f 98 80 78");
    json_gives("\"\\udbff\\udfff\"", "a4 f4 8f bf bf");
    json_gives("\"\\u2028\"", "a3 e2 80 a8");
    /* a key is a string like any other */
    both("{\"\\n\":\"\xc3\xa9\"}", "81 a1 0a a2 c3 a9");

    /* str8, str16, str32 by length */
    {
        size_t lens[] = {31, 32, 255, 256, 65535, 65536};
        const char *hdrs[] = {"bf", "d9 20", "d9 ff", "da 01 00", "da ff ff", "db 00 01 00 00"};
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); ++i) {
            size_t n = 0;
            json[0] = '"';
            memset(json + 1, 'x', lens[i]);
            json[lens[i] + 1] = '"';
            json[lens[i] + 2] = '\0';
            n = (size_t)sprintf(hex, "%s ", hdrs[i]);
            for (size_t j = 0; j < lens[i]; ++j, n += 2)
                memcpy(hex + n, "78", 2);
            hex[n] = '\0';
            both(json, hex);
        }
    }
}

static void test_bin(void)
{
    both("{\"$bin\":\"\"}", "c4 00");
    both("{\"$bin\":\"AQID\"}", "c4 03 01 02 03");
    both("{\"$bin\":\"AA==\"}", "c4 01 00");
    both("{\"$bin\":\"AAE=\"}", "c4 02 00 01");
    both("{\"$bin\":\"+/8=\"}", "c4 02 fb ff");
    both("[{\"$bin\":\"AQ==\"},1]", "92 c4 01 01 01");
    both("{\"b\":{\"$bin\":\"AQ==\"}}", "81 a1 62 c4 01 01");
    json_gives("{ \"$bin\" : \"AQID\" }", "c4 03 01 02 03");
    json_gives("{\"\\u0024bin\":\"AQID\"}", "c4 03 01 02 03");
    /* lookalikes stay maps */
    both("{\"$bin\":1}", "81 a4 24 62 69 6e 01");
    both("{\"$bin\":null}", "81 a4 24 62 69 6e c0");
    both("{\"$bin\":[]}", "81 a4 24 62 69 6e 90");
    both("{\"$bin\":\"AQID\",\"x\":1}", "82 a4 24 62 69 6e a4 41 51 49 44 a1 78 01");
    both("{\"x\":1,\"$bin\":\"AQID\"}", "82 a1 78 01 a4 24 62 69 6e a4 41 51 49 44");
    both("{\"$Bin\":\"AQID\"}", "81 a4 24 42 69 6e a4 41 51 49 44");
    both("{\"$bin \":\"AQID\"}", "81 a5 24 62 69 6e 20 a4 41 51 49 44");
    both("{\"bin\":\"AQID\"}", "81 a3 62 69 6e a4 41 51 49 44");
    both("[\"$bin\",\"AQID\"]", "92 a4 24 62 69 6e a4 41 51 49 44");
    /* a msgpack map {"$bin": str} would come back as a bin: refused rather than changed */
    mp_fails("81 a4 24 62 69 6e a4 41 51 49 44", NULL, CR_EMSGPACK, "");
    mp_fails("81 a1 62 81 a4 24 62 69 6e a0", NULL, CR_EMSGPACK, "b");
    /* bin8/16/32 by size */
    {
        static char raw[70000];
        size_t sizes[] = {255, 256, 65535, 65536}, hdrlen[] = {2, 3, 3, 5};
        const char *hdrs[] = {"\xc4\xff", "\xc5\x01\x00", "\xc5\xff\xff", "\xc6\x00\x01\x00\x00"};
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); ++i) {
            cr_buf_t mp, js;
            size_t n = sizes[i];
            cr_buf_init(&mp, 1 << 24);
            cr_buf_init(&js, 1 << 24);
            cr_buf_append(&mp, hdrs[i], hdrlen[i]);
            for (size_t j = 0; j < n; ++j)
                raw[j] = (char)(j * 7);
            cr_buf_append(&mp, raw, n);
            ok(cr_json_from_msgpack(&js, mp.base, mp.len, NULL) == 0);
            ok(js.len == 11 + (n + 2) / 3 * 4);
            ok(js.len > 12 && memcmp(js.base, "{\"$bin\":\"AAcOFRwj", 17) == 0);
            mp_round_trips(mp.base, mp.len);
            cr_buf_free(&mp);
            cr_buf_free(&js);
        }
    }
    /* bad base64 is bad_encoding naming the field */
    json_fails("{\"$bin\":\"AQ\"}", 13, NULL, CR_EENCODING, "");
    JSON_FAILS("{\"$bin\":\"AQI\"}", CR_EENCODING);
    JSON_FAILS("{\"$bin\":\"A===\"}", CR_EENCODING);
    JSON_FAILS("{\"$bin\":\"AQ==AQ==\"}", CR_EENCODING);
    JSON_FAILS("{\"$bin\":\"AQ =\"}", CR_EENCODING);
    JSON_FAILS("{\"$bin\":\"-_8=\"}", CR_EENCODING);   /* URL-safe alphabet */
    JSON_FAILS("{\"$bin\":\"AQ==\\n\"}", CR_EENCODING); /* no whitespace */
    JSON_FAILS("{\"$bin\":\"QR==\"}", CR_EENCODING);   /* non-zero padding bits: one bin, one text */
    json_fails("{\"b\":{\"audio\":{\"$bin\":\"***\"}}}", 32, NULL, CR_EENCODING, "b.audio");
    ok(strstr(cr_error_last()->message, "base64") != NULL);
}

/* A bin may be longer as base64 than a string may be; a string is still held to its own limit. */
static void test_bin_limits(void)
{
    cr_limits_t lim = cr_limits_default;
    cr_buf_t j, m;
    static char raw[3000];
    lim.max_string = 100;
    lim.max_bin = 1000;
    cr_buf_init(&j, 1 << 20);
    cr_buf_init(&m, 1 << 20);
    cr_buf_append(&m, "\xc5\x03\xe8", 3);
    cr_buf_append(&m, raw, 1000);
    ok(cr_json_from_msgpack(&j, m.base, m.len, &lim) == 0);
    m.len = 0;
    ok(cr_json_to_msgpack(&m, j.base, j.len, &lim) == 0);
    ok(m.len == 1003);
    /* as a string of a map with two keys it is over max_string */
    j.base[j.len - 1] = ',';
    cr_buf_append(&j, "\"x\":1}", 6);
    json_fails(j.base, j.len, &lim, CR_ETOOLARGE, "$bin");
    /* a bin over max_bin, either way */
    m.len = 0;
    cr_buf_append(&m, "\xc5\x03\xe9", 3);
    cr_buf_append(&m, raw, 1001);
    mp_fails_bytes(m.base, m.len, &lim, CR_ETOOLARGE, NULL);
    lim.max_bin = 1000 * 10;
    j.len = 0;
    ok(cr_json_from_msgpack(&j, m.base, m.len, &lim) == 0);
    lim.max_bin = 1000;
    json_fails(j.base, j.len, &lim, CR_ETOOLARGE, NULL);
    /* 1001 and 1002 bytes encode to as many characters as 1000 do (1336): caught after decoding */
    lim.max_bin = 1002;
    m.len = 0;
    cr_buf_append(&m, "\xc5\x03\xea", 3);
    cr_buf_append(&m, raw, 1002);
    j.len = 0;
    ok(cr_json_from_msgpack(&j, m.base, m.len, &lim) == 0);
    lim.max_bin = 1000;
    json_fails(j.base, j.len, &lim, CR_ETOOLARGE, NULL);
    cr_buf_free(&j);
    cr_buf_free(&m);
}

static void nested(char *out, unsigned depth, const char *open, const char *inner, const char *close)
{
    out[0] = '\0';
    for (unsigned i = 0; i < depth; ++i)
        strcat(out, open);
    strcat(out, inner);
    for (unsigned i = 0; i < depth; ++i)
        strcat(out, close);
}

static void test_depth(void)
{
    char json[2000], mp[200];
    cr_buf_t b;
    cr_limits_t lim = cr_limits_default;

    /* the default limit is 16, the outermost container being 1 */
    nested(json, 16, "[", "1", "]");
    cr_buf_init(&b, 1 << 20);
    ok(cr_json_to_msgpack(&b, json, strlen(json), NULL) == 0);
    ok(b.len == 17);
    ok(cr_json_from_msgpack(&b, b.base, b.len, NULL) == 0);
    cr_buf_free(&b);
    nested(json, 17, "[", "1", "]");
    json_fails(json, strlen(json), NULL, CR_ETOODEEP, "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0");
    nested(json, 16, "{\"a\":", "[]", "}");
    json_fails(json, strlen(json), NULL, CR_ETOODEEP, "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a");
    nested(json, 15, "{\"a\":", "[]", "}");
    cr_buf_init(&b, 1 << 20);
    ok(cr_json_to_msgpack(&b, json, strlen(json), NULL) == 0);
    cr_buf_free(&b);
    /* an empty container counts as a level too */
    nested(json, 17, "[", "", "]");
    JSON_FAILS(json, CR_ETOODEEP);

    /* msgpack: 16 nested arrays fine, 17 too deep */
    memset(mp, 0x91, 16);
    mp[16] = 0x01;
    mp_gives("91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 01", "[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]");
    memset(mp, 0x91, 17);
    mp[17] = 0x01;
    mp_fails_bytes(mp, 18, NULL, CR_ETOODEEP, NULL);

    /* a custom limit applies both ways */
    lim.max_depth = 2;
    json_fails("[[[]]]", 6, &lim, CR_ETOODEEP, "0.0");
    cr_buf_init(&b, 1 << 20);
    ok(cr_json_to_msgpack(&b, "[[1]]", 5, &lim) == 0);
    cr_buf_free(&b);
    mp_fails("91 91 90", &lim, CR_ETOODEEP, NULL);

    /* far deeper than any limit: an error, not a crash */
    {
        static char deep[200001];
        memset(deep, '[', 100000);
        memset(deep + 100000, ']', 100000);
        json_fails(deep, 200000, NULL, CR_ETOODEEP, NULL);
        lim.max_depth = 100000;
        json_fails(deep, 200000, &lim, CR_ETOODEEP, NULL);
    }
}

static void test_limits(void)
{
    cr_limits_t lim = cr_limits_default;
    cr_buf_t b;
    lim.max_string = 4;
    lim.max_elements = 2;

    json_fails("\"abcde\"", 7, &lim, CR_ETOOLARGE, "");
    json_fails("{\"k\":\"abcde\"}", 13, &lim, CR_ETOOLARGE, "k");
    json_fails("{\"abcde\":1}", 11, &lim, CR_ETOOLARGE, NULL);
    json_fails("\"\\u00e9\\u00e9\\u00e9\"", 20, &lim, CR_ETOOLARGE, NULL); /* 6 bytes as UTF-8 */
    json_fails("[1,2,3]", 7, &lim, CR_ETOOLARGE, "");
    json_fails("{\"a\":1,\"b\":2,\"c\":3}", 19, &lim, CR_ETOOLARGE, "");
    mp_fails("a5 61 62 63 64 65", &lim, CR_ETOOLARGE, NULL);
    mp_fails("93 01 02 03", &lim, CR_ETOOLARGE, NULL);
    mp_fails("83 a1 61 01 a1 62 02 a1 63 03", &lim, CR_ETOOLARGE, NULL);
    cr_buf_init(&b, 1 << 20);
    ok(cr_json_to_msgpack(&b, "[\"abcd\",\"\\u00e9\\u00e9\"]", 23, &lim) == 0);
    ok(cr_json_to_msgpack(&b, "{\"a\":1,\"b\":2}", 13, &lim) == 0);
    cr_buf_free(&b);

    /* the output buffer's own limit */
    cr_buf_init(&b, 8);
    cr_buf_append(&b, "ab", 2);
    ok(cr_json_to_msgpack(&b, "\"0123456789\"", 12, NULL) == CR_ETOOLARGE);
    ok(b.len == 2);
    ok(cr_json_from_msgpack(&b, "\xaa" "0123456789", 11, NULL) == CR_ETOOLARGE);
    ok(b.len == 2);
    ok(cr_json_from_msgpack(&b, "\x92\x01\x02", 3, NULL) == 0);
    ok_bytes(b.base, b.len, "ab[1,2]", 7);
    cr_buf_free(&b);
}

static void test_bad_msgpack(void)
{
    mp_fails_bytes("", 0, NULL, CR_ETRUNCATED, NULL);
    mp_fails("92 01", NULL, CR_ETRUNCATED, NULL);
    mp_fails("a3 61 62", NULL, CR_ETRUNCATED, NULL);
    mp_fails("cd 01", NULL, CR_ETRUNCATED, NULL);
    mp_fails("cb 3f e0 00", NULL, CR_ETRUNCATED, NULL);
    mp_fails("81 a1 61", NULL, CR_ETRUNCATED, NULL);
    mp_fails("c0 c0", NULL, CR_ETRAILING, "");
    mp_fails("92 01 02 03", NULL, CR_ETRAILING, NULL);
    ok(strstr(cr_error_last()->message, "offset 3") != NULL);
    mp_fails("d4 01 00", NULL, CR_EMSGPACK, NULL); /* fixext 1 */
    mp_fails("c7 01 05 00", NULL, CR_EMSGPACK, NULL); /* ext 8 */
    mp_fails("91 d6 ff 00 00 00 00", NULL, CR_EMSGPACK, "0"); /* timestamp */
    mp_fails("c1", NULL, CR_EMSGPACK, NULL);
    mp_fails("81 01 02", NULL, CR_EMSGPACK, NULL); /* int key */
    mp_fails("a1 ff", NULL, CR_EENCODING, NULL);
    mp_fails("a2 c0 80", NULL, CR_EENCODING, NULL); /* overlong */
    mp_fails("a3 ed a0 80", NULL, CR_EENCODING, NULL); /* a surrogate */
    mp_fails("81 a1 78 a1 ff", NULL, CR_EENCODING, "x");
}

static void test_bad_json(void)
{
    static const char *const bad[] = {
        "", " ", "[1,]", "{\"a\":1,}", "[1,2,,3]", "[,1]", "/* c */ 1", "1 // c", "# c\n1", "NaN", "Infinity", "-Infinity", "nan",
        "01", "-01", "00", "1.", ".5", "+1", "1e", "1e+", "-", "0x10", "1.5e", "- 1",
        "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\ud800x\"", "\"\\udbff\\ud800\"", "\"abc", "\"a\nb\"", "\"a\tb\"",
        "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"", "\"\\U0041\"", "\"\\", "\"\\u",
        "[1] x", "1 2", "{} {}", "truex", "nullnull", "tru", "nul", "True", "NULL", "fals",
        "{\"a\" 1}", "{a:1}", "{'a':1}", "'a'", "[1 2]", "{\"a\":1 \"b\":2}", "{\"a\"}", "{\"a\":}", "{1:2}", "{,}",
        "[", "{", "]", "}",
        "[1", "{\"a\":1", "\xef\xbb\xbf{}", "\xc3\xa9", "\f1", "\v1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        json_fails(bad[i], strlen(bad[i]), NULL, CR_EJSON, NULL);
    json_fails("[1]\0", 4, NULL, CR_EJSON, NULL);
    json_fails("\"a\0b\"", 5, NULL, CR_EJSON, NULL);

    /* invalid UTF-8 inside a string is bad_encoding */
    JSON_FAILS("\"\xff\"", CR_EENCODING);
    JSON_FAILS("\"\xc0\x80\"", CR_EENCODING);
    JSON_FAILS("\"\xed\xa0\x80\"", CR_EENCODING);
    JSON_FAILS("\"\xf4\x90\x80\x80\"", CR_EENCODING);
    JSON_FAILS("\"\xe2\x82\"", CR_EENCODING);
    JSON_FAILS("{\"\xe2\x82\":1}", CR_EENCODING);

    /* the error names the field and the offset */
    JSON_FAILS("{\"b\":{\"files\":[{\"path\":\"ok\"},{\"path\":\"\\ud800\"}]}}", CR_EJSON);
    ok_str(cr_error_last()->field, "b.files.1.path");
    ok(strstr(cr_error_last()->message, "surrogate") != NULL);
    ok(strstr(cr_error_last()->message, "offset 38") != NULL);
    JSON_FAILS("[1,2,]", CR_EJSON);
    ok(strstr(cr_error_last()->message, "trailing comma") != NULL);
    ok(strstr(cr_error_last()->message, "offset 5") != NULL);
    JSON_FAILS("{\"seq\":01}", CR_EJSON);
    ok_str(cr_error_last()->field, "seq");
    ok(strstr(cr_error_last()->message, "leading zero") != NULL);
    JSON_FAILS("[1] x", CR_EJSON);
    ok(strstr(cr_error_last()->message, "offset 4") != NULL);
    JSON_FAILS("\"a\nb\"", CR_EJSON);
    ok(strstr(cr_error_last()->message, "control character") != NULL);
    JSON_FAILS("\"abc", CR_EJSON);
    ok(strstr(cr_error_last()->message, "unterminated") != NULL);
    /* an error late in a long document still leaves the buffer as it was */
    JSON_FAILS("[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",{\"x\":[1,2,3,{\"$bin\":\"AQID\"}]},nope]", CR_EJSON);
    ok_str(cr_error_last()->field, "2");
}

/* An event envelope in JSON form, both ways, with its exact msgpack. */
static void test_envelope(void)
{
    static const char json[] = "{\"v\":1,\"k\":\"agent.message\",\"sid\":\"01HZX3\",\"seq\":42,\"ts\":1718000000000,\"pri\":1,"
                               "\"b\":{\"text\":\"Hello \xe2\x80\x94 \\\"world\\\"\\n\"}}";
    static const char hex[] = "87 a1 76 01 a1 6b ad 61 67 65 6e 74 2e 6d 65 73 73 61 67 65 a3 73 69 64 a6 30 31 48 5a 58 33"
                              " a3 73 65 71 2a a2 74 73 cf 00 00 01 90 00 c7 9c 00 a3 70 72 69 01"
                              " a1 62 81 a4 74 65 78 74 b2 48 65 6c 6c 6f 20 e2 80 94 20 22 77 6f 72 6c 64 22 0a";
    static const char pretty[] = "{\n  \"v\": 1, \"k\": \"approve\", \"sid\": \"s1\", \"aid\": \"a1\", \"ref\": 12,\n"
                                 "  \"b\": {\"rid\": \"r\", \"audio\": {\"$bin\": \"AAEC\"}, \"x\": [1.5, -3, null]}\n}\n";
    static const char compact[] = "{\"v\":1,\"k\":\"approve\",\"sid\":\"s1\",\"aid\":\"a1\",\"ref\":12,"
                                  "\"b\":{\"rid\":\"r\",\"audio\":{\"$bin\":\"AAEC\"},\"x\":[1.5,-3,null]}}";
    cr_buf_t m, j;
    both(json, hex);
    cr_buf_init(&m, 1 << 20);
    cr_buf_init(&j, 1 << 20);
    ok(cr_json_to_msgpack(&m, pretty, strlen(pretty), NULL) == 0);
    ok(cr_json_from_msgpack(&j, m.base, m.len, NULL) == 0);
    ok_bytes(j.base, j.len, compact, strlen(compact));
    /* appends, never replaces */
    ok(cr_json_from_msgpack(&j, "\xc3", 1, NULL) == 0);
    ok(j.len == strlen(compact) + 4 && memcmp(j.base + strlen(compact), "true", 4) == 0);
    cr_buf_free(&m);
    cr_buf_free(&j);
}

/* to_msgpack(from_msgpack(x)) == x for canonical msgpack of every kind the protocol uses. */
static void test_round_trip(void)
{
    static const char *const hexes[] = {
        "c0", "c2", "c3", "00", "7f", "cc 80", "cd 01 00", "ce 00 01 00 00", "cf 00 00 00 01 00 00 00 00", "ff", "e0", "d0 df",
        "d1 ff 7f", "d2 ff ff 7f ff", "d3 ff ff ff ff 7f ff ff ff", "cb 3f e0 00 00 00 00 00 00", "a0", "a3 e2 82 ac", "c4 00",
        "c4 02 00 ff", "90", "80", "92 90 80", "82 a1 61 c4 01 00 a1 62 92 c0 a0", "81 a4 24 62 69 6e 01", "81 a0 a0",
        "82 a4 24 62 69 6e a0 a1 78 c0", "81 a1 62 81 a4 24 62 69 6e 81 a4 24 62 69 6e c4 00",
        "a5 00 1f 22 5c 7f", "dc 00 10 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f",
        ("de 00 10 a1 61 00 a1 62 00 a1 63 00 a1 64 00 a1 65 00 a1 66 00 a1 67 00 a1 68 00 a1 69 00 a1 6a 00 a1 6b 00 a1 6c 00"
         " a1 6d 00 a1 6e 00 a1 6f 00 a1 70 00"),
    };
    for (size_t i = 0; i < sizeof(hexes) / sizeof(hexes[0]); ++i) {
        size_t len;
        char *mp = unhex(hexes[i], &len);
        mp_round_trips(mp, len);
        free(mp);
    }
    /* array16/map16 need 16 entries; 15 stay fix */
    mp_gives("9f 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00", "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]");
    json_gives("[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]", "dc 00 10 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
    /* array32 and map32 */
    {
        cr_limits_t lim = cr_limits_default;
        cr_buf_t m;
        cr_buf_init(&m, 1 << 24);
        lim.max_elements = 70000;
        cr_buf_append(&m, "\xdd\x00\x01\x00\x00", 5);
        for (size_t i = 0; i < 65536; ++i)
            cr_buf_append(&m, "\xc0", 1);
        {
            cr_buf_t j, m2;
            cr_buf_init(&j, 1 << 24);
            cr_buf_init(&m2, 1 << 24);
            ok(cr_json_from_msgpack(&j, m.base, m.len, &lim) == 0);
            ok(cr_json_to_msgpack(&m2, j.base, j.len, &lim) == 0);
            ok_bytes(m2.base, m2.len, m.base, m.len);
            lim.max_elements = 65535;
            m2.len = 0;
            ok(cr_json_to_msgpack(&m2, j.base, j.len, &lim) == CR_ETOOLARGE);
            ok(m2.len == 0);
            cr_buf_free(&j);
            cr_buf_free(&m2);
        }
        cr_buf_free(&m);
    }
}

int main(void)
{
    subtest("scalars and containers", test_scalars);
    subtest("ints", test_ints);
    subtest("floats", test_floats);
    subtest("strings", test_strings);
    subtest("bin", test_bin);
    subtest("bin limits", test_bin_limits);
    subtest("depth", test_depth);
    subtest("limits", test_limits);
    subtest("bad msgpack", test_bad_msgpack);
    subtest("bad json", test_bad_json);
    subtest("envelope", test_envelope);
    subtest("round trip", test_round_trip);
    return done_testing();
}
