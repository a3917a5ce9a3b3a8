/* push_webpush.h — Web Push (RFC 8030): the encrypted request for one subscription and what a push service's answer
 * means (DESIGN.md §6). Encryption and VAPID are webpush.h's; no network here. */
#ifndef RELAY_PUSH_WEBPUSH_H
#define RELAY_PUSH_WEBPUSH_H

#include "push.h"
#include "webpush.h"
#include <stdint.h>

#define RELAY_WEBPUSH_TOPIC_LEN 32 /* RFC 8030 §5.4: at most 32 characters of the base64url alphabet */

/* Writes the Topic of a session into out: base64url (unpadded) of the first 24 bytes of SHA-256(sid), 32 characters
 * and a NUL. Pushes of one session replace each other while undelivered. */
void relay_webpush_topic(char out[RELAY_WEBPUSH_TOPIC_LEN + 1], const char *sid);

/* Builds the push to dev (a Web Push subscription): POST <dev->endpoint> with TTL (seconds from now_s until
 * note->expires_s, at least 0), Urgency: high, Topic (relay_webpush_topic of the sid), Content-Encoding: aes128gcm,
 * Content-Type: application/octet-stream, Authorization from relay_vapid_authorization(vapid, endpoint, subject,
 * now_s); the body relay_webpush_encrypt of the JSON {"title","body","sid","seq","k","host","id","category"?,"e"?}
 * (seq a string like FCM's; "e" the standard base64 of the sealed box, left out when the plaintext would pass
 * RELAY_WEBPUSH_MAX_PLAINTEXT, after which the body and at last the title are shortened). *out is overwritten; on
 * success the caller frees it with relay_push_req_free, on error it holds nothing. Returns 0, CR_EBODY (not a Web
 * Push device, or a bad endpoint or key), CR_ECONFIG (a bad VAPID subject), CR_ETOOLARGE (the endpoint does not fit
 * the URL), or an error of the encryption (CR_ERR, CR_ENOMEM). */
int relay_webpush_request(relay_push_req_t *out, const relay_push_note_t *note, const relay_push_device_t *dev,
                          const relay_vapid_t *vapid, const char *subject, int64_t now_s);

/* What a push service's answer means: 200, 201, 202 SENT; 404, 410 DEAD (the subscription is gone); 429, 5xx and no
 * HTTP answer RETRY (retry_after_ms from the answer); 413 and every other status FAILED — 401 and 403 mean the push
 * service refused our VAPID signature (reason "vapid_refused_401"/"_403"). reason is "http_<status>" otherwise, or
 * "transport". */
void relay_webpush_classify(relay_push_outcome_t *out, const relay_push_answer_t *ans);

#endif
