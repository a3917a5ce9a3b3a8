/* tests/unit/proto/codec.c — base64, base64url and hex: RFC 4648 vectors, round trips and strict rejection. */
#include "corral/codec.h"
#include "corral/error.h"
#include "harness.h"
#include <stdio.h>
#include <string.h>

/* RFC 4648 section 10. */
static const char *const rfc_in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *const rfc_b64[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
static const char *const rfc_b64url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};

static void test_encode_vectors(void)
{
    char out[64];
    for (size_t i = 0; i < sizeof(rfc_in) / sizeof(rfc_in[0]); ++i) {
        size_t n = strlen(rfc_in[i]);
        ok(cr_base64_encoded_len(n) == strlen(rfc_b64[i]) + 1);
        ok(cr_base64url_encoded_len(n) == strlen(rfc_b64url[i]) + 1);
        ok(cr_base64_encode(out, rfc_in[i], n) == strlen(rfc_b64[i]));
        ok_str(out, rfc_b64[i]);
        ok(cr_base64url_encode(out, rfc_in[i], n) == strlen(rfc_b64url[i]));
        ok_str(out, rfc_b64url[i]);
    }
    /* Bytes that use the two alphabet-specific characters. */
    static const unsigned char hi[] = {0xfb, 0xff, 0xbf};
    cr_base64_encode(out, hi, sizeof(hi));
    ok_str(out, "+/+/");
    cr_base64url_encode(out, hi, sizeof(hi));
    ok_str(out, "-_-_");
}

static void test_decode_vectors(void)
{
    cr_buf_t b;
    cr_buf_init(&b, 1024);
    for (size_t i = 0; i < sizeof(rfc_in) / sizeof(rfc_in[0]); ++i) {
        cr_buf_reset(&b);
        ok(cr_base64_decode(&b, rfc_b64[i], strlen(rfc_b64[i])) == 0);
        ok_bytes(b.base, b.len, rfc_in[i], strlen(rfc_in[i]));
        cr_buf_reset(&b);
        ok(cr_base64url_decode(&b, rfc_b64url[i], strlen(rfc_b64url[i])) == 0);
        ok_bytes(b.base, b.len, rfc_in[i], strlen(rfc_in[i]));
    }
    /* Decoding appends. */
    cr_buf_reset(&b);
    ok(cr_buf_append(&b, "x", 1) == 0);
    ok(cr_base64_decode(&b, "Zm9v", 4) == 0);
    ok_bytes(b.base, b.len, "xfoo", 4);
    cr_buf_free(&b);
}

static void test_round_trip(void)
{
    unsigned char in[300];
    char enc[2 * 300 + 1];
    cr_buf_t b;
    int all = 1;
    for (size_t i = 0; i < sizeof(in); ++i)
        in[i] = (unsigned char)(i * 37 + 11);
    cr_buf_init(&b, 1024);
    for (size_t n = 0; n <= sizeof(in); ++n) {
        size_t len = cr_base64_encode(enc, in, n);
        cr_buf_reset(&b);
        all &= cr_base64_decode(&b, enc, len) == 0 && b.len == n && (n == 0 || memcmp(b.base, in, n) == 0);
        len = cr_base64url_encode(enc, in, n);
        cr_buf_reset(&b);
        all &= cr_base64url_decode(&b, enc, len) == 0 && b.len == n && (n == 0 || memcmp(b.base, in, n) == 0);
        len = cr_hex_encode(enc, in, n);
        unsigned char back[300];
        all &= len == 2 * n && cr_hex_decode(back, n, enc, len) == 0 && memcmp(back, in, n) == 0;
    }
    ok(all);
    cr_buf_free(&b);
}

/* Expects decoding to fail with CR_EENCODING, a message containing `needle`, and the buffer untouched. */
static void reject(int url, const char *s, const char *needle)
{
    cr_buf_t b;
    int rc;
    cr_buf_init(&b, 1024);
    cr_buf_append(&b, "keep", 4);
    cr_error_clear();
    rc = url ? cr_base64url_decode(&b, s, strlen(s)) : cr_base64_decode(&b, s, strlen(s));
    okf(rc == CR_EENCODING, "%s '%s' gave %d", url ? "base64url" : "base64", s, rc);
    ok(cr_error_last()->code == CR_EENCODING);
    okf(strstr(cr_error_last()->message, needle) != NULL, "message '%s' lacks '%s'", cr_error_last()->message, needle);
    ok_bytes(b.base, b.len, "keep", 4);
    cr_buf_free(&b);
}

static void test_strict_base64(void)
{
    reject(0, "Zg", "multiple of 4"); /* padding missing */
    reject(0, "Zg=", "multiple of 4");
    reject(0, "Zg===", "multiple of 4");
    reject(0, "Zm9v\n", "multiple of 4");
    reject(0, "Zm9vYmFy\r\n\r\n", "whitespace at offset 8");
    reject(0, "Zm 9", "whitespace at offset 2");
    reject(0, " Zm9", "whitespace at offset 0");
    reject(0, "Zm9-", "offset 3 belongs to the base64url alphabet");
    reject(0, "Zm_v", "offset 2 belongs to the base64url alphabet");
    reject(0, "Z=9v", "misplaced padding '=' at offset 1");
    reject(0, "Zg==Zg==", "misplaced padding '=' at offset 2");
    reject(0, "Z===", "misplaced padding '=' at offset 1");
    reject(0, "====", "misplaced padding '=' at offset 0");
    reject(0, "Zh==", "non-canonical trailing bits at offset 1"); /* "Zg==" is the canonical 'f' */
    reject(0, "Zm9=", "non-canonical trailing bits at offset 2"); /* "Zm8=" is the canonical "fo" */
    reject(0, "Zm9v*A==", "byte 0x2a at offset 4");
    {
        char nul[] = "Zm\0v";
        cr_buf_t b;
        cr_buf_init(&b, 64);
        ok(cr_base64_decode(&b, nul, 4) == CR_EENCODING);
        ok(strstr(cr_error_last()->message, "byte 0x00 at offset 2") != NULL);
        cr_buf_free(&b);
    }
}

static void test_strict_base64url(void)
{
    reject(1, "Zg==", "padding '=' at offset 2 (base64url is unpadded)");
    reject(1, "Zm8=", "padding '=' at offset 3");
    reject(1, "Z", "lone character at offset 0");
    reject(1, "Zm9vY", "lone character at offset 4");
    reject(1, "+/+/", "offset 0 belongs to the standard base64 alphabet");
    reject(1, "-_-/", "offset 3 belongs to the standard base64 alphabet");
    reject(1, "Zm9v Zg", "whitespace at offset 4");
    reject(1, "Zm9v\tZg", "whitespace at offset 4");
    reject(1, "Zh", "non-canonical trailing bits at offset 1");
    reject(1, "Zm9", "non-canonical trailing bits at offset 2");
    reject(1, "Zm9v!", "byte 0x21 at offset 4");
}

static void test_limit(void)
{
    cr_buf_t b;
    cr_buf_init(&b, 5);
    ok(cr_base64_decode(&b, "Zm9vYmE=", 8) == 0); /* exactly 5 bytes: fits */
    ok(b.len == 5);
    ok(cr_base64_decode(&b, "Zg==", 4) == CR_ETOOLARGE);
    ok(b.len == 5);
    cr_buf_free(&b);
    cr_buf_init(&b, 5);
    ok(cr_base64url_decode(&b, "Zm9vYmFy", 8) == CR_ETOOLARGE);
    ok(b.len == 0);
    ok(cr_base64url_decode(&b, "Zm9vYmE", 7) == 0);
    ok_bytes(b.base, b.len, "fooba", 5);
    cr_buf_free(&b);
}

static void test_hex(void)
{
    static const unsigned char bytes[] = {0x00, 0x01, 0xab, 0xcd, 0xef, 0xff};
    unsigned char out[6];
    char hex[13];
    ok(cr_hex_encode(hex, bytes, sizeof(bytes)) == 12);
    ok_str(hex, "0001abcdefff");
    ok(cr_hex_encode(hex, bytes, 0) == 0);
    ok_str(hex, "");
    ok(cr_hex_decode(out, 6, "0001ABCDEFff", 12) == 0);
    ok_bytes(out, 6, bytes, 6);
    ok(cr_hex_decode(out, 0, "", 0) == 0);

    ok(cr_hex_decode(out, 6, "0001abcdef", 10) == CR_EENCODING);
    ok(strstr(cr_error_last()->message, "expected 12 digits, got 10") != NULL);
    ok(cr_hex_decode(out, 2, "00010", 5) == CR_EENCODING);
    ok(cr_hex_decode(out, 2, "000102", 6) == CR_EENCODING);
    ok(cr_hex_decode(out, 3, "00g102", 6) == CR_EENCODING);
    okf(strstr(cr_error_last()->message, "0x67 at offset 2") != NULL, "%s", cr_error_last()->message);
    ok(cr_hex_decode(out, 3, "0011 2", 6) == CR_EENCODING);
    ok(strstr(cr_error_last()->message, "offset 4") != NULL);
    ok(cr_hex_decode(out, 2, "0x12", 4) == CR_EENCODING);
    ok(strstr(cr_error_last()->message, "offset 1") != NULL);
}

int main(void)
{
    subtest("encode vectors", test_encode_vectors);
    subtest("decode vectors", test_decode_vectors);
    subtest("round trip", test_round_trip);
    subtest("strict base64", test_strict_base64);
    subtest("strict base64url", test_strict_base64url);
    subtest("limit", test_limit);
    subtest("hex", test_hex);
    return done_testing();
}
