/* push_apns.h — Apple Push Notification service: the request for one device (URL, headers, JSON payload), the
 * provider token (ES256 JWT) kept and renewed, and what Apple's answer means (DESIGN.md §6). No network here. */
#ifndef RELAY_PUSH_APNS_H
#define RELAY_PUSH_APNS_H

#include "push.h"
#include "push_jwt.h"
#include <stdint.h>

#define RELAY_APNS_PRODUCTION_URL "https://api.push.apple.com"
#define RELAY_APNS_SANDBOX_URL "https://api.sandbox.push.apple.com"
#define RELAY_APNS_PAYLOAD_MAX 4096          /* bytes of an alert's JSON payload */
#define RELAY_APNS_COLLAPSE_ID_MAX 64        /* bytes of apns-collapse-id */
#define RELAY_APNS_TOKEN_REFRESH_S (40 * 60) /* a provider token is renewed at this age (Apple: 20 to 60 min) */
#define RELAY_APNS_TOKEN_MIN_GAP_S 60        /* a refused token is renewed at most this often */

/* Builds the request that pushes note to dev (an APNs device): POST <base>/3/device/<token>, base being base_url
 * when it is not NULL or "" (a trailing '/' dropped), else Apple's production or sandbox host by dev->sandbox;
 * headers authorization: bearer <jwt>, apns-topic: topic (the app's bundle id), apns-push-type: alert,
 * apns-priority: 10, apns-expiration: note->expires_s, apns-collapse-id: the sid; the JSON payload
 * {"aps":{"alert":{"title","body"},"category"?,"thread-id":sid,"mutable-content":1,"sound":"default"},
 * "cr":{"sid","seq","k","host","id","e"?}}, "e" being the standard base64 of the sealed box. The payload stays within
 * RELAY_APNS_PAYLOAD_MAX: "e" is left out when it does not fit, then the body (and at last the title) is shortened.
 * *out is overwritten; on success the caller frees it with relay_push_req_free, on error it holds nothing. Returns 0,
 * CR_EBODY (not an APNs device, or a token that is not hex), CR_ECONFIG (no topic or no jwt) or CR_ETOOLARGE (the URL
 * is too long). */
int relay_apns_request(relay_push_req_t *out, const relay_push_note_t *note, const relay_push_device_t *dev,
                       const char *base_url, const char *topic, const char *jwt);

/* What an APNs answer means (Apple's "Handling notification responses from APNs"): 200 SENT; 410 DEAD with the
 * answer's "timestamp" (ms) as dead_since_ms; 400 BadDeviceToken / DeviceTokenNotForTopic DEAD; 403
 * ExpiredProviderToken / InvalidProviderToken RETRY with refresh_auth; 429 and 5xx RETRY (retry_after_ms from the
 * answer); no HTTP answer (status 0) RETRY; every other status FAILED. reason is Apple's reason, else "http_<status>",
 * or "transport". */
void relay_apns_classify(relay_push_outcome_t *out, const relay_push_answer_t *ans);

/* The provider token of one Apple key, reused until RELAY_APNS_TOKEN_REFRESH_S old. */
typedef struct st_relay_apns_auth_t {
    const relay_jwt_key_t *key; /* borrowed: must outlive the struct */
    char key_id[64];
    char team_id[64];
    cr_buf_t jwt;               /* the current token, NUL-terminated; len 0 when there is none */
    int64_t iat;                /* when it was made */
    int refused;                /* Apple refused it: make a new one (at most every RELAY_APNS_TOKEN_MIN_GAP_S) */
    int64_t refused_iat;        /* the iat of the last token refused as invalid */
    unsigned invalid;           /* tokens refused as InvalidProviderToken in a row */
} relay_apns_auth_t;

/* Initialises *a for key (an ES256 Apple .p8 key, borrowed), its key id and the team id. Makes no token yet.
 * Returns 0 or CR_ECONFIG (an id empty or longer than 63 bytes). */
int relay_apns_auth_init(relay_apns_auth_t *a, const relay_jwt_key_t *key, const char *key_id, const char *team_id);

/* Points *out at the token to send at time now_s (unix seconds): the current one, or a new one when there is none,
 * when it is RELAY_APNS_TOKEN_REFRESH_S old (or its iat is more than a minute ahead of now_s), or when it was refused
 * and RELAY_APNS_TOKEN_MIN_GAP_S have passed since it was made. *out stays valid until the next call or free. Returns
 * 0 (the old token), 1 (a new one), or an error of relay_jwt_apns_token (CR_ECONFIG, CR_ERR, CR_ENOMEM), leaving no
 * token. */
int relay_apns_auth_token(relay_apns_auth_t *a, int64_t now_s, const char **out);

/* Tells *a that Apple refused its current token with an outcome whose refresh_auth is set (reason
 * ExpiredProviderToken or InvalidProviderToken): the next relay_apns_auth_token makes a new one. Returns 1 when this
 * looks like a configuration error — a second token in a row refused as InvalidProviderToken (wrong key id, team id
 * or key) — and logs that once, else 0. */
int relay_apns_auth_refused(relay_apns_auth_t *a, const char *reason);

/* Tells *a that Apple accepted its token (forgets earlier refusals). */
void relay_apns_auth_accepted(relay_apns_auth_t *a);

/* Wipes and frees the token. Idempotent; the key is not freed. */
void relay_apns_auth_free(relay_apns_auth_t *a);

#endif
