/* webpush.h — Web Push message encryption (RFC 8291 over RFC 8188's aes128gcm) and the relay's VAPID identity
 * (RFC 8292): the key pair kept in data_dir/vapid.pem and the Authorization header it signs (DESIGN.md §6). */
#ifndef RELAY_WEBPUSH_H
#define RELAY_WEBPUSH_H

#include "corral/buf.h"
#include "push_jwt.h"
#include <stddef.h>
#include <stdint.h>

#define RELAY_WEBPUSH_KEY_LEN 65       /* an uncompressed P-256 point: 0x04 || X || Y */
#define RELAY_WEBPUSH_AUTH_LEN 16      /* the subscription's auth secret */
#define RELAY_WEBPUSH_SALT_LEN 16
#define RELAY_WEBPUSH_RECORD_SIZE 4096 /* rs of the aes128gcm header */
#define RELAY_WEBPUSH_HEADER_LEN (16 + 4 + 1 + 65) /* salt || rs || idlen || keyid (the sender's public key) */
#define RELAY_WEBPUSH_MAX_PLAINTEXT 3993 /* 4096 - header - 16 (tag) - 1 (delimiter): RFC 8291 §4 */
#define RELAY_WEBPUSH_B64_KEY_LEN 87   /* base64url (unpadded) of a 65-byte key */
#define RELAY_VAPID_TTL_S (12 * 3600)  /* exp = now + 12 h (RFC 8292 allows at most 24 h) */
#define RELAY_VAPID_FILE "vapid.pem"

/* Encrypts plaintext[0..len) for a subscription (its p256dh key ua_public and its auth secret) as one aes128gcm
 * record of size RELAY_WEBPUSH_RECORD_SIZE: a fresh ephemeral P-256 key and a fresh random 16-byte salt, the
 * plaintext followed by the 0x02 delimiter and no padding. Appends the whole request body (header then
 * ciphertext, len + RELAY_WEBPUSH_HEADER_LEN + 17 bytes) to out. Returns 0, CR_ETOOLARGE (plaintext over
 * RELAY_WEBPUSH_MAX_PLAINTEXT, or out full), CR_EBODY (ua_public is not an uncompressed point on P-256; field
 * "subscription.keys.p256dh"), CR_ENOMEM or CR_ERR (OpenSSL failed); on error out keeps its old length. */
int relay_webpush_encrypt(cr_buf_t *out, const uint8_t ua_public[RELAY_WEBPUSH_KEY_LEN],
                          const uint8_t auth[RELAY_WEBPUSH_AUTH_LEN], const void *plaintext, size_t len);

/* relay_webpush_encrypt with a given ephemeral private key (a 32-byte big-endian scalar) and salt instead of fresh
 * ones, so tests can reproduce RFC 8291 §5 byte for byte. Never call it with values used before. Same returns,
 * plus CR_ERR when as_private is not a valid scalar. */
int relay_webpush__encrypt_with(cr_buf_t *out, const uint8_t ua_public[RELAY_WEBPUSH_KEY_LEN],
                                const uint8_t auth[RELAY_WEBPUSH_AUTH_LEN], const void *plaintext, size_t len,
                                const uint8_t as_private[32], const uint8_t salt[RELAY_WEBPUSH_SALT_LEN]);

/* The relay's VAPID identity: an ES256 key and its public half, as a subscribing browser needs it
 * (applicationServerKey, served by GET /v1/webpush/vapid). */
typedef struct st_relay_vapid_t {
    relay_jwt_key_t key;                               /* owned; ES256 */
    uint8_t public_key[RELAY_WEBPUSH_KEY_LEN];         /* uncompressed point */
    char public_b64[RELAY_WEBPUSH_B64_KEY_LEN + 1];    /* base64url of public_key, no padding, NUL-terminated */
} relay_vapid_t;

/* Loads the VAPID key from data_dir/vapid.pem, or on first start makes a new P-256 key and stores it there (PKCS#8
 * PEM, mode 0600, written to a temporary file that is then linked into place, so a concurrent first start or a crash
 * never leaves a partial or second key; data_dir is made, mode 0700, when it does not exist). On success *out owns
 * the key (free with relay_vapid_free). Returns 0, CR_EIO (the directory or file cannot be made or read) or
 * CR_ECONFIG (vapid.pem is not a P-256 private key), with cr_error_last() naming the file. */
int relay_vapid_load_or_create(relay_vapid_t *out, const char *data_dir);

/* Loads the VAPID key an operator keeps in path (webpush.vapid_key: relays sharing one Redis share it, because a
 * browser's subscription is bound to the key). Same returns and ownership as relay_vapid_load_or_create. */
int relay_vapid_load_file(relay_vapid_t *out, const char *path);

/* Frees the key. Idempotent. */
void relay_vapid_free(relay_vapid_t *vapid);

/* Writes the origin of an http(s) URL — "scheme://host[:port]", scheme and host lower-cased, the port left out
 * when it is the scheme's default — into out (NUL-terminated). Returns 0, CR_EBODY (not an http or https URL with a
 * host, or with user info; field "subscription.endpoint") or CR_ETOOLARGE (does not fit outlen). */
int relay_webpush_origin(char *out, size_t outlen, const char *url);

/* Appends the value of the Authorization header for a push to endpoint_url: "vapid t=<JWT>, k=<public_b64>", the JWT
 * ES256-signed with header {"typ":"JWT","alg":"ES256"} and claims {"aud":origin of endpoint_url,"exp":now +
 * RELAY_VAPID_TTL_S,"sub":subject}. subject must start with "mailto:" or "https:". On success out->base reads as a
 * C string (a NUL follows, not counted in len). Returns 0, CR_ECONFIG (bad subject), CR_EBODY (bad endpoint, as
 * relay_webpush_origin), CR_ETOOLARGE, CR_ENOMEM or CR_ERR; on error out keeps its old length. */
int relay_vapid_authorization(cr_buf_t *out, const relay_vapid_t *vapid, const char *endpoint_url, const char *subject,
                              int64_t now);

#endif
