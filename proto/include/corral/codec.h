/* codec.h — base64 (standard, padded), base64url (unpadded) and hex, strict on decode. */
#ifndef CORRAL_CODEC_H
#define CORRAL_CODEC_H

#include <stddef.h>
#include "corral/buf.h"

/* Bytes needed to encode n bytes, including the terminating NUL. */
size_t cr_base64_encoded_len(size_t n);    /* standard alphabet, '=' padding */
size_t cr_base64url_encoded_len(size_t n); /* URL-safe alphabet, no padding */

/* Encodes src into out (room for cr_base64*_encoded_len(n) bytes), NUL-terminated. Returns the length without NUL. */
size_t cr_base64_encode(char *out, const void *src, size_t n);
size_t cr_base64url_encode(char *out, const void *src, size_t n);

/* Decodes and appends to out. Strict: the alphabet of the variant only, correct padding (standard) or none
 * (url), no whitespace. Returns 0, CR_EENCODING (cr_error_last names the offset), CR_ETOOLARGE or CR_ENOMEM. */
int cr_base64_decode(cr_buf_t *out, const char *src, size_t n);
int cr_base64url_decode(cr_buf_t *out, const char *src, size_t n);

/* Lower-case hex: out needs 2n+1 bytes. Returns 2n. */
size_t cr_hex_encode(char *out, const void *src, size_t n);

/* Decodes exactly outlen bytes from 2*outlen hex digits (either case). Returns 0 or CR_EENCODING. */
int cr_hex_decode(void *out, size_t outlen, const char *src, size_t n);

#endif
