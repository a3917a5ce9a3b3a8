/* fake_crypto.h — the signatures and key agreement corral-fake-push checks with (OpenSSL 3): ES256 with JOSE's raw
 * R||S signatures, RS256, raw P-256 points, and the RFC 8291 decryption a browser does for Web Push. */
#ifndef CORRAL_FAKE_CRYPTO_H
#define CORRAL_FAKE_CRYPTO_H

#include "corral/buf.h"
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

/* Verifies an ES256 signature (64 bytes: R then S, 32 each, as JWS puts it) of data with a P-256 public key.
 * Returns 1 when valid, 0 otherwise. */
int fk_verify_es256(EVP_PKEY *key, const void *data, size_t len, const uint8_t *sig, size_t siglen);

/* Verifies an RS256 signature (RSASSA-PKCS1-v1_5 with SHA-256) of data. Returns 1 when valid, 0 otherwise. */
int fk_verify_rs256(EVP_PKEY *key, const void *data, size_t len, const uint8_t *sig, size_t siglen);

/* A P-256 public key from its 65-byte uncompressed point (0x04 || X || Y). NULL when the bytes are not a point on
 * the curve. The caller frees it with EVP_PKEY_free. */
EVP_PKEY *fk_p256_from_raw(const uint8_t *pt, size_t len);

/* A P-256 key pair from its 32-byte private scalar (to replay known test vectors, e.g. RFC 8291's). NULL when the
 * scalar is not a valid key. The caller frees it with EVP_PKEY_free. */
EVP_PKEY *fk_p256_from_private(const uint8_t d[32]);

/* The 65-byte uncompressed point of a P-256 key. Returns 0 or -1. */
int fk_p256_to_raw(EVP_PKEY *key, uint8_t out[65]);

/* Loads a public key from a PEM file holding either a public key or a private key (an APNs .p8 is PKCS#8). NULL
 * with a message on stderr when it cannot. */
EVP_PKEY *fk_load_public_pem_file(const char *path);

/* The same from PEM text (a service account's private_key). */
EVP_PKEY *fk_load_public_pem(const char *pem, size_t len);

/* Decrypts a Web Push message body (RFC 8291: aes128gcm of RFC 8188 keyed by ECDH between the user agent's key ua
 * and the application server's key in the header's keyid, and the 16-byte auth secret). Appends the plaintext to
 * out. Returns 0, or -1 with why in err (NUL-terminated). */
int fk_webpush_decrypt(cr_buf_t *out, const uint8_t *body, size_t len, EVP_PKEY *ua, const uint8_t ua_pub[65],
                       const uint8_t auth[16], char *err, size_t errlen);

#endif
