/* push_webpush.c — Web Push requests (RFC 8030 headers, RFC 8291 body, RFC 8292 VAPID) and push-service answers
 * (DESIGN.md §6). */
#include "push_webpush.h"
#include "corral/codec.h"
#include "corral/error.h"
#include "push_note.h"
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define LIT(b, s) cr_buf_append((b), (s), sizeof(s) - 1)

void relay_webpush_topic(char out[RELAY_WEBPUSH_TOPIC_LEN + 1], const char *sid)
{
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)sid, strlen(sid));
    cr_base64url_encode(out, h, 24); /* 24 bytes: exactly 32 characters */
}

static int build_plaintext(cr_buf_t *out, const relay_push_note_t *n, int with_sealed, const void *ctx)
{
    char seq[24];
    int rc;
    (void)ctx;
    snprintf(seq, sizeof(seq), "%" PRIu64, n->seq);
    if ((rc = LIT(out, "{")) != 0 || (rc = relay_push__json_kv(out, 0, "title", n->title)) != 0 ||
        (rc = relay_push__json_kv(out, 1, "body", n->body)) != 0 || (rc = relay_push__json_kv(out, 1, "sid", n->sid)) != 0 ||
        (rc = relay_push__json_kv(out, 1, "seq", seq)) != 0 || (rc = relay_push__json_kv(out, 1, "k", n->k)) != 0 ||
        (rc = relay_push__json_kv(out, 1, "host", n->host)) != 0 || (rc = relay_push__json_kv(out, 1, "id", n->id)) != 0 ||
        (n->category != NULL && (rc = relay_push__json_kv(out, 1, "category", n->category)) != 0) ||
        (with_sealed && (rc = relay_push__json_b64(out, 1, "e", n->sealed, n->sealed_len)) != 0) ||
        (rc = LIT(out, "}")) != 0)
        return rc;
    return 0;
}

int relay_webpush_request(relay_push_req_t *out, const relay_push_note_t *note, const relay_push_device_t *dev,
                          const relay_vapid_t *vapid, const char *subject, int64_t now_s)
{
    relay_push_note_t work;
    cr_buf_t plain, auth;
    char hv[64], topic[RELAY_WEBPUSH_TOPIC_LEN + 1];
    size_t elen = strlen(dev->endpoint);
    int rc;

    memset(out, 0, sizeof(*out));
    cr_buf_init(&out->body, RELAY_WEBPUSH_RECORD_SIZE + 1024);
    cr_buf_init(&plain, RELAY_WEBPUSH_MAX_PLAINTEXT + 4096);
    cr_buf_init(&auth, 4096);
    if (dev->provider != RELAY_PUSH_WEBPUSH || elen == 0)
        return cr_error_set(CR_EBODY, "subscription", "device %s is not a Web Push subscription", dev->id);
    if (elen >= sizeof(out->url))
        return cr_error_set(CR_ETOOLARGE, "subscription.endpoint", "the endpoint is longer than %zu bytes",
                            sizeof(out->url) - 1);
    memcpy(out->url, dev->endpoint, elen + 1);
    out->method = "POST";
    if ((rc = relay_vapid_authorization(&auth, vapid, dev->endpoint, subject, now_s)) != 0)
        goto fail;
    relay_webpush_topic(topic, note->sid);
    snprintf(hv, sizeof(hv), "%" PRId64, note->expires_s > now_s ? note->expires_s - now_s : 0);
    if (relay_push_req_header(out, "authorization", auth.base) != 0 || relay_push_req_header(out, "ttl", hv) != 0 ||
        relay_push_req_header(out, "urgency", "high") != 0 || relay_push_req_header(out, "topic", topic) != 0 ||
        relay_push_req_header(out, "content-encoding", "aes128gcm") != 0 ||
        relay_push_req_header(out, "content-type", "application/octet-stream") != 0) {
        rc = cr_error_set(CR_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    if ((rc = relay_push__fit(&plain, &work, note, RELAY_WEBPUSH_MAX_PLAINTEXT, build_plaintext, NULL)) != 0 ||
        (rc = relay_webpush_encrypt(&out->body, dev->p256dh, dev->auth, plain.base, plain.len)) != 0)
        goto fail;
    rc = 0;
    goto done;
fail:
    relay_push_req_free(out);
done:
    if (plain.base != NULL)
        sodium_memzero(plain.base, plain.len); /* the text the relay sends end-to-end encrypted */
    cr_buf_free(&plain);
    if (auth.base != NULL)
        sodium_memzero(auth.base, auth.len);
    cr_buf_free(&auth);
    return rc;
}

void relay_webpush_classify(relay_push_outcome_t *out, const relay_push_answer_t *ans)
{
    long st = ans->status;
    memset(out, 0, sizeof(*out));
    out->retry_after_ms = -1;
    snprintf(out->reason, sizeof(out->reason), "http_%ld", st);
    if (st == 0) {
        out->verdict = RELAY_PUSH_RETRY;
        relay_push__reason(out, "transport");
    } else if (st == 200 || st == 201 || st == 202) {
        out->verdict = RELAY_PUSH_SENT;
        out->reason[0] = '\0';
    } else if (st == 404 || st == 410) {
        out->verdict = RELAY_PUSH_DEAD;
    } else if (st == 429 || (st >= 500 && st <= 599)) {
        out->verdict = RELAY_PUSH_RETRY;
        out->retry_after_ms = ans->retry_after_ms;
    } else {
        out->verdict = RELAY_PUSH_FAILED;
        if (st == 401 || st == 403)
            snprintf(out->reason, sizeof(out->reason), "vapid_refused_%ld", st);
    }
}
