/* codec.c — base64 (standard, padded), base64url (unpadded) and hex over libsodium's constant-time codecs, strict. */
#include "corral/codec.h"
#include "corral/error.h"
#include <sodium.h>
#include <string.h>

size_t cr_base64_encoded_len(size_t n)
{
    return sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
}

size_t cr_base64url_encoded_len(size_t n)
{
    return sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

size_t cr_base64_encode(char *out, const void *src, size_t n)
{
    sodium_bin2base64(out, cr_base64_encoded_len(n), src, n, sodium_base64_VARIANT_ORIGINAL);
    return cr_base64_encoded_len(n) - 1;
}

size_t cr_base64url_encode(char *out, const void *src, size_t n)
{
    sodium_bin2base64(out, cr_base64url_encoded_len(n), src, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return cr_base64url_encoded_len(n) - 1;
}

/* The 6-bit value of c in the variant's alphabet, or -1. Used only to explain a rejected input, never on the path
 * that decodes (which stays in libsodium's constant-time code). */
static int cr_codec__b64_value(unsigned char c, int url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

/* Finds why src[0..n) is not strict base64 of the variant and records it as CR_EENCODING with the offset. */
static int cr_codec__b64_explain(const char *src, size_t n, int url)
{
    const char *name = url ? "base64url" : "base64";
    size_t data = n, i;

    if (!url) {
        if (n % 4 != 0)
            return cr_error_set(CR_EENCODING, NULL, "bad %s: length %zu is not a multiple of 4", name, n);
        while (data > 0 && n - data < 2 && src[data - 1] == '=')
            --data;
    }
    for (i = 0; i < data; ++i) {
        unsigned char c = (unsigned char)src[i];
        if (cr_codec__b64_value(c, url) >= 0)
            continue;
        if (c == '=')
            return cr_error_set(CR_EENCODING, NULL,
                                url ? "bad %s: padding '=' at offset %zu (base64url is unpadded)"
                                    : "bad %s: misplaced padding '=' at offset %zu",
                                name, i);
        if (cr_codec__b64_value(c, !url) >= 0)
            return cr_error_set(CR_EENCODING, NULL, "bad %s: '%c' at offset %zu belongs to the %s alphabet", name, c, i,
                                url ? "standard base64" : "base64url");
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            return cr_error_set(CR_EENCODING, NULL, "bad %s: whitespace at offset %zu", name, i);
        return cr_error_set(CR_EENCODING, NULL, "bad %s: byte 0x%02x at offset %zu is not in the alphabet", name, c, i);
    }
    if (data % 4 == 1)
        return cr_error_set(CR_EENCODING, NULL, "bad %s: a lone character at offset %zu", name, data - 1);
    if (data > 0) {
        /* The last character may only carry bits that make whole bytes; the rest must be zero. */
        int v = cr_codec__b64_value((unsigned char)src[data - 1], url);
        if ((data % 4 == 2 && (v & 0x0f) != 0) || (data % 4 == 3 && (v & 0x03) != 0))
            return cr_error_set(CR_EENCODING, NULL, "bad %s: non-canonical trailing bits at offset %zu", name, data - 1);
    }
    if (!url && data % 4 != 0 && n - data != 4 - data % 4)
        return cr_error_set(CR_EENCODING, NULL, "bad %s: wrong padding at offset %zu", name, data);
    return cr_error_set(CR_EENCODING, NULL, "bad %s", name);
}

/* Decodes src into out with libsodium; on any failure out keeps its former length and content. */
static int cr_codec__b64_decode(cr_buf_t *out, const char *src, size_t n, int url)
{
    int variant = url ? sodium_base64_VARIANT_URLSAFE_NO_PADDING : sodium_base64_VARIANT_ORIGINAL;
    size_t want = n / 4 * 3, got = 0;
    int rc;

    /* The exact decoded length of a well-formed input, so that the cap of `out` is checked against what it will
     * really hold; a malformed input fails in the decoder below whatever this says. */
    if (url) {
        want += n % 4 == 0 ? 0 : n % 4 - 1;
    } else if (n % 4 != 0) {
        return cr_codec__b64_explain(src, n, url);
    } else if (n >= 4) {
        want -= (src[n - 1] == '=') + (src[n - 1] == '=' && src[n - 2] == '=');
    }
    if (url && n % 4 == 1)
        return cr_codec__b64_explain(src, n, url);
    if (n == 0)
        return 0;
    if ((rc = cr_buf_reserve(out, want)) != 0)
        return rc;
    if (sodium_base642bin((unsigned char *)out->base + out->len, want, src, n, NULL, &got, NULL, variant) != 0 || got != want) {
        sodium_memzero(out->base + out->len, want);
        return cr_codec__b64_explain(src, n, url);
    }
    out->len += got;
    return 0;
}

int cr_base64_decode(cr_buf_t *out, const char *src, size_t n)
{
    return cr_codec__b64_decode(out, src, n, 0);
}

int cr_base64url_decode(cr_buf_t *out, const char *src, size_t n)
{
    return cr_codec__b64_decode(out, src, n, 1);
}

size_t cr_hex_encode(char *out, const void *src, size_t n)
{
    sodium_bin2hex(out, 2 * n + 1, src, n);
    return 2 * n;
}

int cr_hex_decode(void *out, size_t outlen, const char *src, size_t n)
{
    size_t got = 0, at = 0;

    if (n != 2 * outlen)
        return cr_error_set(CR_EENCODING, NULL, "bad hex: expected %zu digits, got %zu", 2 * outlen, n);
    if (n == 0)
        return 0;
    if (sodium_hex2bin(out, outlen, src, n, NULL, &got, NULL) == 0 && got == outlen)
        return 0;
    /* Rejected: find the first non-digit ourselves so the offset is exact. */
    for (size_t i = 0; i < n; ++i) {
        unsigned char c = (unsigned char)src[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            at = i;
            break;
        }
    }
    sodium_memzero(out, outlen);
    return cr_error_set(CR_EENCODING, NULL, "bad hex: byte 0x%02x at offset %zu is not a hex digit", (unsigned char)src[at], at);
}
