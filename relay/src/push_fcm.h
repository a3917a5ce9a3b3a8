/* push_fcm.h — Firebase Cloud Messaging HTTP v1: the OAuth2 access token traded for a service-account JWT and kept
 * until near its expiry, the messages:send request for one device, and what Google's answers mean (DESIGN.md §6).
 * No network here. */
#ifndef RELAY_PUSH_FCM_H
#define RELAY_PUSH_FCM_H

#include "push.h"
#include "push_jwt.h"
#include <stdint.h>

#define RELAY_FCM_URL "https://fcm.googleapis.com"
#define RELAY_FCM_MESSAGE_MAX 4096         /* bytes of the messages:send JSON (FCM's data limit is 4096 bytes) */
#define RELAY_FCM_ACCESS_TOKEN_MAX 4096    /* bytes of an access token we accept */
#define RELAY_FCM_TOKEN_MARGIN_S 300       /* an access token is renewed this long before it expires */

/* Builds the token request: POST token_url (NULL or "": sa->token_uri), Content-Type
 * application/x-www-form-urlencoded, body grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT of
 * relay_jwt_fcm_assertion made at now_s>. *out is overwritten; on success the caller frees it with
 * relay_push_req_free (which wipes the assertion), on error it holds nothing. Returns 0, CR_ECONFIG (the key is not
 * RS256), CR_ETOOLARGE (the URL is too long) or another error of relay_jwt_fcm_assertion. */
int relay_fcm_token_request(relay_push_req_t *out, const relay_service_account_t *sa, const char *token_url,
                            int64_t now_s);

/* A cached OAuth2 access token. */
typedef struct st_relay_fcm_token_t {
    char *access_token; /* malloc'd, NUL-terminated; NULL when there is none. A credential: never logged */
    int64_t valid_until_s; /* unix time after which it is not used: expires_in - RELAY_FCM_TOKEN_MARGIN_S (half of a
                              short expires_in) after it was given */
} relay_fcm_token_t;

/* Reads the token endpoint's answer ({"access_token","expires_in","token_type":"Bearer"}) received at now_s. On
 * success *out (whose old token is wiped and freed first) holds the new token and *outcome says SENT. Otherwise *out
 * is left as it was and *outcome says RETRY (no HTTP answer, 429, 5xx; retry_after_ms from the answer) or FAILED (any
 * other status — reason is OAuth's "error", as "invalid_grant" — or a 200 without a usable token: reason
 * "bad_token_answer"). Returns 0 on success, else -1. */
int relay_fcm_token_parse(relay_fcm_token_t *out, relay_push_outcome_t *outcome, const relay_push_answer_t *ans,
                          int64_t now_s);

/* Whether t holds a token usable at now_s. */
int relay_fcm_token_valid(const relay_fcm_token_t *t, int64_t now_s);

/* Wipes and frees the token; t is empty afterwards. Idempotent. */
void relay_fcm_token_free(relay_fcm_token_t *t);

/* Builds messages:send for dev (an FCM device): POST <base>/v1/projects/<project_id>/messages:send, base being
 * base_url when not NULL or "" (a trailing '/' dropped) else RELAY_FCM_URL; Authorization: Bearer <access_token>;
 * the JSON {"message":{"token","data":{"title","body","sid","seq","k","host","id","e"?},"android":{"priority":
 * "high","collapse_key":sid,"ttl":"<seconds until note->expires_s>s"}}}, every data value a string and "e" the
 * standard base64 of the sealed box, kept only when the whole message stays within RELAY_FCM_MESSAGE_MAX (then the
 * body, and at last the title, is shortened to fit). *out is overwritten; on success the caller frees it with
 * relay_push_req_free, on error it holds nothing. Returns 0, CR_EBODY (not an FCM device), CR_ECONFIG (no project
 * id or access token) or CR_ETOOLARGE (the URL is too long). */
int relay_fcm_request(relay_push_req_t *out, const relay_push_note_t *note, const relay_push_device_t *dev,
                      const char *base_url, const char *project_id, const char *access_token, int64_t now_s);

/* What a messages:send answer means (Google's error document {"error":{"code","message","status","details":
 * [{"errorCode"}]}}): 200 SENT; UNREGISTERED, or 400 INVALID_ARGUMENT saying "not a valid FCM registration token",
 * DEAD; 401 UNAUTHENTICATED RETRY with refresh_auth; 429, 5xx and no HTTP answer RETRY (retry_after_ms from the
 * answer); everything else FAILED (INVALID_ARGUMENT, SENDER_ID_MISMATCH, PERMISSION_DENIED, and
 * THIRD_PARTY_AUTH_ERROR — the APNs or Web Push credentials in the Firebase project are wrong, which a new access
 * token cannot mend). reason is details' errorCode, else error.status, else "http_<status>", or "transport". */
void relay_fcm_classify(relay_push_outcome_t *out, const relay_push_answer_t *ans);

#endif
