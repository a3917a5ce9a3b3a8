/* push_jwt.h — signing keys and JSON Web Tokens for the push providers: APNs provider tokens (ES256), FCM service
 * account assertions (RS256) and the Google service-account file they come from (DESIGN.md §6). */
#ifndef RELAY_PUSH_JWT_H
#define RELAY_PUSH_JWT_H

#include "corral/buf.h"
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

typedef enum relay_jwt_alg_t { RELAY_JWT_NONE = 0, RELAY_JWT_ES256 = 1, RELAY_JWT_RS256 = 2 } relay_jwt_alg_t;

/* A private signing key: a P-256 EC key (ES256) or an RSA key of at least 2048 bits (RS256). */
typedef struct st_relay_jwt_key_t {
    EVP_PKEY *pkey; /* owned; NULL when empty */
    relay_jwt_alg_t alg;
} relay_jwt_key_t;

#define RELAY_JWT_KEY_FILE_MAX (64 * 1024)       /* bytes of a PEM key file, at most */
#define RELAY_SERVICE_ACCOUNT_FILE_MAX (64 * 1024) /* bytes of a service-account JSON file, at most */
#define RELAY_FCM_SCOPE "https://www.googleapis.com/auth/firebase.messaging"
#define RELAY_FCM_ASSERTION_TTL_S 3600

/* Loads an unencrypted PEM private key: PKCS#8 ("BEGIN PRIVATE KEY", as Apple's .p8 AuthKey files are), "BEGIN EC
 * PRIVATE KEY" or "BEGIN RSA PRIVATE KEY". `what` names the key's source in error messages (a path, "service
 * account x.json"); it may be NULL. On success *out owns the key (free it with relay_jwt_key_free). Returns 0,
 * CR_EIO (the file cannot be read; load_file only) or CR_ECONFIG (not a PEM private key, encrypted, or not a
 * P-256 EC / RSA >= 2048 key), with cr_error_last() naming the file. The bytes read from the file are wiped. */
int relay_jwt_key_load_file(relay_jwt_key_t *out, const char *path);
int relay_jwt_key_load_pem(relay_jwt_key_t *out, const char *pem, size_t len, const char *what);

/* Takes ownership of pkey (which must be a P-256 EC or RSA >= 2048 private key) into *out. Returns 0 or
 * CR_ECONFIG; on error pkey is still the caller's. */
int relay_jwt_key_from_pkey(relay_jwt_key_t *out, EVP_PKEY *pkey, const char *what);

/* Frees the key and leaves it empty. Idempotent. */
void relay_jwt_key_free(relay_jwt_key_t *key);

/* "ES256", "RS256" or "none". */
const char *relay_jwt_alg_name(relay_jwt_alg_t alg);

/* Appends the compact JWS base64url(header_json) "." base64url(claims_json) "." base64url(signature) to out. The
 * JSON texts are signed as given (the caller builds them; "alg" must match the key). The signature is ES256 (the
 * raw 64-byte R || S of RFC 7518 §3.4, each half left-padded to 32 bytes) for an EC key and RS256 (RSASSA-PKCS1-v1_5
 * with SHA-256) for an RSA key. On success the token is followed by a NUL that len does not count, so out->base
 * reads as a C string. Returns 0, CR_ETOOLARGE or CR_ENOMEM (out is full), or CR_ERR (OpenSSL failed, or the key
 * is empty); on error out keeps its old length. */
int relay_jwt_sign(cr_buf_t *out, const relay_jwt_key_t *key, const char *header_json, const char *claims_json);

/* Appends an APNs provider token: header {"alg":"ES256","kid":key_id}, claims {"iss":team_id,"iat":iat}, signed with
 * key (which must be ES256: an Apple .p8 key). Strings are JSON-escaped. Same returns as relay_jwt_sign, plus
 * CR_ECONFIG when the key is not ES256 or key_id / team_id is empty. */
int relay_jwt_apns_token(cr_buf_t *out, const relay_jwt_key_t *key, const char *key_id, const char *team_id,
                         int64_t iat);

/* A Google service-account key file (the JSON a Firebase console hands out). */
typedef struct st_relay_service_account_t {
    char *project_id;     /* owned, NUL-terminated */
    char *private_key_id; /* owned */
    char *client_email;   /* owned */
    char *token_uri;      /* owned */
    relay_jwt_key_t key;  /* the parsed "private_key" (RS256) */
} relay_service_account_t;

/* Parses a service-account JSON document: "type" must be "service_account", and "project_id", "private_key_id",
 * "private_key", "client_email" and "token_uri" must be non-empty strings. `what` names the source in errors (may
 * be NULL). On success *out owns its strings and key (free with relay_service_account_free). Returns 0, CR_EIO (the
 * file cannot be read or is over RELAY_SERVICE_ACCOUNT_FILE_MAX; load_file only), CR_EJSON (not JSON),
 * CR_ECONFIG (not an object, a field missing, empty or not a string — cr_error_last's field names it — or the key
 * unusable) or CR_ENOMEM. Every copy of the private key's bytes made while parsing (the file's bytes included) is
 * wiped; the caller's json is not touched. */
int relay_service_account_load_file(relay_service_account_t *out, const char *path);
int relay_service_account_load_json(relay_service_account_t *out, const char *json, size_t len, const char *what);

/* Frees what the service account owns and leaves it empty. Idempotent. */
void relay_service_account_free(relay_service_account_t *sa);

/* Appends the JWT an FCM server trades for an OAuth2 access token at sa->token_uri: header
 * {"alg":"RS256","typ":"JWT","kid":private_key_id}, claims {"iss":client_email,"scope":RELAY_FCM_SCOPE,
 * "aud":token_uri,"iat":iat,"exp":iat+3600}. Same returns as relay_jwt_sign, plus CR_ECONFIG when the key is not
 * RS256. */
int relay_jwt_fcm_assertion(cr_buf_t *out, const relay_service_account_t *sa, int64_t iat);

/* Appends s as a JSON string literal (quotes included, escaped per RFC 8259). Returns 0, CR_ETOOLARGE or CR_ENOMEM;
 * on error out keeps its old length. Shared with webpush.c. */
int relay_jwt__json_str(cr_buf_t *out, const char *s);

#endif
