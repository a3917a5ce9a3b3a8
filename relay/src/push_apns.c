/* push_apns.c — APNs requests, provider tokens and answers (DESIGN.md §6; Apple's "Sending notification requests to
 * APNs", "Establishing a token-based connection to APNs", "Handling notification responses from APNs"). */
#include "push_apns.h"
#include "corral/error.h"
#include "corral/log.h"
#include "push_note.h"
#include <inttypes.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define LIT(b, s) cr_buf_append((b), (s), sizeof(s) - 1)

#define JWT_MAX 2048 /* an ES256 provider token is about 200 bytes */

/* ---- the request ------------------------------------------------------------------------------------------------ */

static int build_payload(cr_buf_t *out, const relay_push_note_t *n, int with_sealed, const void *ctx)
{
    char seq[24];
    int rc;
    (void)ctx;
    snprintf(seq, sizeof(seq), "%" PRIu64, n->seq);
    if ((rc = LIT(out, "{\"aps\":{\"alert\":{")) != 0 || (rc = relay_push__json_kv(out, 0, "title", n->title)) != 0 ||
        (rc = relay_push__json_kv(out, 1, "body", n->body)) != 0 || (rc = LIT(out, "}")) != 0 ||
        (n->category != NULL && (rc = relay_push__json_kv(out, 1, "category", n->category)) != 0) ||
        (rc = relay_push__json_kv(out, 1, "thread-id", n->sid)) != 0 ||
        (rc = cr_buf_appendf(out, ",\"mutable-content\":1,\"sound\":\"default\"},\"cr\":{")) != 0 ||
        (rc = relay_push__json_kv(out, 0, "sid", n->sid)) != 0 ||
        (rc = cr_buf_appendf(out, ",\"seq\":%s", seq)) != 0 || (rc = relay_push__json_kv(out, 1, "k", n->k)) != 0 ||
        (rc = relay_push__json_kv(out, 1, "host", n->host)) != 0 || (rc = relay_push__json_kv(out, 1, "id", n->id)) != 0 ||
        (with_sealed && (rc = relay_push__json_b64(out, 1, "e", n->sealed, n->sealed_len)) != 0) ||
        (rc = LIT(out, "}}")) != 0)
        return rc;
    return 0;
}

static int is_hex(const char *s)
{
    for (; *s != '\0'; ++s)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F')))
            return 0;
    return 1;
}

int relay_apns_request(relay_push_req_t *out, const relay_push_note_t *note, const relay_push_device_t *dev,
                       const char *base_url, const char *topic, const char *jwt)
{
    relay_push_note_t work;
    char hv[2048];
    size_t blen;
    int rc, n;

    memset(out, 0, sizeof(*out));
    cr_buf_init(&out->body, RELAY_APNS_PAYLOAD_MAX + 4096);
    if (dev->provider != RELAY_PUSH_APNS || dev->token[0] == '\0' || !is_hex(dev->token))
        return cr_error_set(CR_EBODY, "token", "device %s is not an APNs device with a hex token", dev->id);
    if (topic == NULL || topic[0] == '\0')
        return cr_error_set(CR_ECONFIG, "apns.topic", "apns.topic (the app's bundle id) is not set");
    if (jwt == NULL || jwt[0] == '\0')
        return cr_error_set(CR_ECONFIG, "apns.key", "no APNs provider token");
    if (base_url == NULL || base_url[0] == '\0')
        base_url = dev->sandbox ? RELAY_APNS_SANDBOX_URL : RELAY_APNS_PRODUCTION_URL;
    blen = strlen(base_url);
    while (blen > 0 && base_url[blen - 1] == '/')
        --blen;
    n = snprintf(out->url, sizeof(out->url), "%.*s/3/device/%s", (int)blen, base_url, dev->token);
    if (n < 0 || (size_t)n >= sizeof(out->url)) {
        rc = cr_error_set(CR_ETOOLARGE, "apns.url", "the APNs URL is longer than %zu bytes", sizeof(out->url) - 1);
        goto fail;
    }
    out->method = "POST";
    n = snprintf(hv, sizeof(hv), "bearer %s", jwt);
    rc = (size_t)n >= sizeof(hv) ? -1 : relay_push_req_header(out, "authorization", hv);
    sodium_memzero(hv, sizeof(hv));
    if (rc != 0 || relay_push_req_header(out, "apns-topic", topic) != 0 ||
        relay_push_req_header(out, "apns-push-type", "alert") != 0 || relay_push_req_header(out, "apns-priority", "10") != 0)
        goto bad_header;
    snprintf(hv, sizeof(hv), "%" PRId64, note->expires_s > 0 ? note->expires_s : 0);
    if (relay_push_req_header(out, "apns-expiration", hv) != 0)
        goto bad_header;
    snprintf(hv, sizeof(hv), "%.*s", RELAY_APNS_COLLAPSE_ID_MAX, note->sid); /* a sid is at most 64 bytes */
    if (hv[0] != '\0' && relay_push_req_header(out, "apns-collapse-id", hv) != 0)
        goto bad_header;
    out->body.len = 0;
    if ((rc = relay_push__fit(&out->body, &work, note, RELAY_APNS_PAYLOAD_MAX, build_payload, NULL)) != 0)
        goto fail;
    return 0;
bad_header:
    rc = cr_error_set(CR_ECONFIG, "apns", "an APNs header value holds a line break or is too long");
fail:
    relay_push_req_free(out);
    return rc;
}

/* ---- answers ---------------------------------------------------------------------------------------------------- */

void relay_apns_classify(relay_push_outcome_t *out, const relay_push_answer_t *ans)
{
    cr_buf_t mp;
    char reason[sizeof(out->reason)];
    cr_span_t ts;
    cr_mp_item_t it;
    long st = ans->status;

    memset(out, 0, sizeof(*out));
    out->retry_after_ms = -1;
    if (st == 0) {
        out->verdict = RELAY_PUSH_RETRY;
        relay_push__reason(out, "transport");
        return;
    }
    reason[0] = '\0';
    if (relay_push__answer_mp(&mp, ans) == 0) {
        relay_push__mp_text(reason, sizeof(reason), mp.base, mp.len, "reason");
        if (cr_mp_map_get(mp.base, mp.len, "timestamp", &ts) == 0 && cr_mp_read(ts.base, ts.base + ts.len, &it) != 0 &&
            it.type == MSGPACK_OBJECT_POSITIVE_INTEGER && it.u <= INT64_MAX)
            out->dead_since_ms = (int64_t)it.u;
    }
    cr_buf_free(&mp);
    if (reason[0] != '\0')
        relay_push__reason(out, reason);
    else
        snprintf(out->reason, sizeof(out->reason), "http_%ld", st);

    if (st == 200) {
        out->verdict = RELAY_PUSH_SENT;
        out->reason[0] = '\0';
    } else if (st == 410 ||
               (st == 400 && (strcmp(reason, "BadDeviceToken") == 0 || strcmp(reason, "DeviceTokenNotForTopic") == 0))) {
        out->verdict = RELAY_PUSH_DEAD;
    } else if (st == 403 && (strcmp(reason, "ExpiredProviderToken") == 0 || strcmp(reason, "InvalidProviderToken") == 0)) {
        out->verdict = RELAY_PUSH_RETRY;
        out->refresh_auth = 1;
    } else if (st == 429 || (st >= 500 && st <= 599)) {
        out->verdict = RELAY_PUSH_RETRY;
        out->retry_after_ms = ans->retry_after_ms;
    } else {
        out->verdict = RELAY_PUSH_FAILED; /* PayloadTooLarge, BadTopic, TopicDisallowed, BadCertificate, BadPath ... */
    }
    if (out->verdict != RELAY_PUSH_DEAD)
        out->dead_since_ms = 0;
}

/* ---- provider tokens -------------------------------------------------------------------------------------------- */

int relay_apns_auth_init(relay_apns_auth_t *a, const relay_jwt_key_t *key, const char *key_id, const char *team_id)
{
    memset(a, 0, sizeof(*a));
    cr_buf_init(&a->jwt, JWT_MAX);
    a->key = key;
    if (key_id == NULL || key_id[0] == '\0' || strlen(key_id) >= sizeof(a->key_id))
        return cr_error_set(CR_ECONFIG, "apns.key_id", "apns.key_id must be the key's id (10 characters)");
    if (team_id == NULL || team_id[0] == '\0' || strlen(team_id) >= sizeof(a->team_id))
        return cr_error_set(CR_ECONFIG, "apns.team_id", "apns.team_id must be the team's id (10 characters)");
    memcpy(a->key_id, key_id, strlen(key_id) + 1);
    memcpy(a->team_id, team_id, strlen(team_id) + 1);
    return 0;
}

static void drop_token(relay_apns_auth_t *a)
{
    if (a->jwt.base != NULL)
        sodium_memzero(a->jwt.base, a->jwt.cap);
    a->jwt.len = 0;
}

int relay_apns_auth_token(relay_apns_auth_t *a, int64_t now_s, const char **out)
{
    int64_t age = now_s - a->iat;
    int rc;
    *out = NULL;
    if (a->jwt.len != 0 && age < RELAY_APNS_TOKEN_REFRESH_S && age >= -60 &&
        !(a->refused && age >= RELAY_APNS_TOKEN_MIN_GAP_S)) {
        *out = a->jwt.base;
        return 0;
    }
    drop_token(a);
    if (a->key == NULL)
        return cr_error_set(CR_ECONFIG, "apns.key", "no APNs key");
    if ((rc = relay_jwt_apns_token(&a->jwt, a->key, a->key_id, a->team_id, now_s)) != 0) {
        drop_token(a);
        return rc;
    }
    a->iat = now_s;
    a->refused = 0;
    *out = a->jwt.base;
    return 1;
}

int relay_apns_auth_refused(relay_apns_auth_t *a, const char *reason)
{
    a->refused = 1;
    if (reason == NULL || strcmp(reason, "InvalidProviderToken") != 0) {
        a->invalid = 0;
        return 0;
    }
    if (a->jwt.len != 0 && a->iat != a->refused_iat) { /* count each token once, however many pushes it failed */
        a->refused_iat = a->iat;
        if (++a->invalid == 2)
            cr_log(CR_LOG_ERROR, "apns: two provider tokens in a row were refused as InvalidProviderToken: check "
                                 "apns.key_id (%s), apns.team_id (%s) and the key file",
                   a->key_id, a->team_id);
    }
    return a->invalid >= 2;
}

void relay_apns_auth_accepted(relay_apns_auth_t *a)
{
    a->invalid = 0;
}

void relay_apns_auth_free(relay_apns_auth_t *a)
{
    drop_token(a);
    cr_buf_free(&a->jwt);
    a->iat = 0;
    a->refused = 0;
}
