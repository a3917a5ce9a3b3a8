/* fake_apns.c — the APNs provider API (POST /3/device/<token> over HTTP/2 with an ES256 provider token), checked in
 * the order and answered with the statuses and reasons of Apple's "Handling notification responses from APNs". */
#include "fake.h"
#include "fake_crypto.h"
#include "fake_jwt.h"
#include <msgpack.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_CACHE 8           /* provider tokens remembered (verified once, then compared byte for byte) */
#define TOKEN_MAX_AGE_S 3600    /* Apple refuses tokens issued more than an hour ago */
#define TOKEN_FUTURE_SKEW_S 300 /* an iat this far ahead of our clock is not believed */
#define COLLAPSE_ID_MAX 64
#define PAYLOAD_MAX 4096
#define PAYLOAD_MAX_VOIP 5120
#define DEVICE_TOKEN_MAX 400    /* hex digits; Apple's tokens are 64 today but "may vary in length" */

/* Provider tokens APNs has accepted, newest last. */
static struct {
    struct {
        char *token;
        size_t len;
        int64_t iat;
        char *jwt_json; /* {"header":...,"claims":...} for the log */
        size_t jwt_json_len;
    } tokens[TOKEN_CACHE];
    size_t n;
    int64_t last_new_ns; /* when the newest token was first accepted (CLOCK_MONOTONIC) */
    cr_buf_t payload_mp;
    fk_jwt_t jwt;
    int init;
} apns;

static const struct {
    const char *type, *suffix; /* the topic a push type goes to: the bundle id plus this */
} push_types[] = {
    {"alert", ""}, {"background", ""}, {"voip", ".voip"}, {"complication", ".complication"},
    {"fileprovider", ".pushkit.fileprovider"}, {"mdm", ""}, {"location", ".location-query"},
    {"liveactivity", ".push-type.liveactivity"}, {"pushtotalk", ".voip-ptt"},
};

static void forget_token(size_t i)
{
    free(apns.tokens[i].token);
    free(apns.tokens[i].jwt_json);
    memmove(&apns.tokens[i], &apns.tokens[i + 1], (apns.n - i - 1) * sizeof(apns.tokens[0]));
    --apns.n;
}

void fk_apns_reset(void)
{
    while (apns.n > 0)
        forget_token(0);
    apns.last_new_ns = 0;
}

/* Sends an APNs answer: {"reason": ...} (with "timestamp" when >= 0) or an empty body, and apns-id. */
static void answer(fk_req_t *r, int status, const char *reason, long long timestamp, long retry_after, const char *apns_id)
{
    cr_buf_t body;
    fk_add_header(r, "apns-id", apns_id, strlen(apns_id));
    if (retry_after >= 0) {
        char ra[24];
        int rn = snprintf(ra, sizeof(ra), "%ld", retry_after);
        fk_add_header(r, "retry-after", ra, (size_t)rn);
    }
    if (status == 200) {
        fk_respond(r, 200, "", NULL, "", 0);
        return;
    }
    cr_buf_init(&body, 1024);
    cr_buf_append(&body, "{\"reason\":", 10);
    fk_json_str(&body, reason, strlen(reason));
    if (timestamp >= 0)
        cr_buf_appendf(&body, ",\"timestamp\":%lld", timestamp);
    cr_buf_append(&body, "}", 1);
    fk_respond(r, status, reason, "application/json", body.base, body.len);
    cr_buf_free(&body);
}

/* The reason Apple gives with a status when a script names none. */
static const char *default_reason(int status)
{
    switch (status) {
    case 400: return "BadDeviceToken";
    case 403: return "Forbidden";
    case 404: return "BadPath";
    case 405: return "MethodNotAllowed";
    case 410: return "Unregistered";
    case 413: return "PayloadTooLarge";
    case 429: return "TooManyRequests";
    case 503: return "ServiceUnavailable";
    default: return "InternalServerError";
    }
}

static int is_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return n > 0;
}

static int is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return 1;
}

/* apns-id: a UUID in its canonical 8-4-4-4-12 form. */
static int is_uuid(const char *s, size_t n)
{
    if (n != 36)
        return 0;
    for (size_t i = 0; i < 36; ++i) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!is_hex(s + i, 1)) {
            return 0;
        }
    }
    return 1;
}

static void new_uuid(char out[37])
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned char b[16];
    size_t o = 0;
    if (RAND_bytes(b, sizeof(b)) != 1)
        abort();
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

static int eq_str(h2o_iovec_t v, const char *s)
{
    return v.len == strlen(s) && memcmp(v.base, s, v.len) == 0;
}

/* Checks the provider token. Returns NULL when it is good, else the reason to refuse it with. */
static const char *check_token(fk_req_t *r, const char *tok, size_t len)
{
    fk_jwt_t *jwt = &apns.jwt;
    cr_span_t iss;
    double iat;
    for (size_t i = 0; i < apns.n; ++i)
        if (apns.tokens[i].len == len && memcmp(apns.tokens[i].token, tok, len) == 0) {
            fk_rec_json(r, "jwt", apns.tokens[i].jwt_json, apns.tokens[i].jwt_json_len);
            return r->now_s - apns.tokens[i].iat > TOKEN_MAX_AGE_S ? "ExpiredProviderToken" : NULL;
        }
    if (!apns.init) {
        fk_jwt_init(jwt);
        apns.init = 1;
    }
    if (fk_jwt_decode(jwt, tok, len) != 0) {
        fk_rec_str(r, "jwt_error", jwt->error, strlen(jwt->error));
        return "InvalidProviderToken";
    }
    fk_rec_json(r, "jwt", jwt->json.base, jwt->json.len);
    if (strcmp(jwt->alg, "ES256") != 0 || strcmp(jwt->kid, fk_conf.apns_key_id) != 0 || fk_jwt_str(jwt, "iss", &iss) != 0 ||
        !cr_span_eq(iss, fk_conf.apns_team_id, strlen(fk_conf.apns_team_id)) || fk_jwt_num(jwt, "iat", &iat) != 0 ||
        iat > (double)(r->now_s + TOKEN_FUTURE_SKEW_S) ||
        !fk_verify_es256(fk_conf.apns_key, tok, jwt->signed_len, jwt->sig, jwt->sig_len))
        return "InvalidProviderToken";
    if ((double)r->now_s - iat > TOKEN_MAX_AGE_S)
        return "ExpiredProviderToken";
    /* a token not seen before: Apple wants a new one at most every 20 minutes */
    if (apns.n > 0 && r->t_ns - apns.last_new_ns < fk_conf.apns_token_min_interval_s * 1000000000LL)
        return "TooManyProviderTokenUpdates";
    if (apns.n == TOKEN_CACHE)
        forget_token(0);
    apns.tokens[apns.n].token = malloc(len);
    apns.tokens[apns.n].jwt_json = malloc(jwt->json.len);
    if (apns.tokens[apns.n].token == NULL || apns.tokens[apns.n].jwt_json == NULL) {
        free(apns.tokens[apns.n].token);
        free(apns.tokens[apns.n].jwt_json);
        return NULL; /* accepted, just not remembered */
    }
    memcpy(apns.tokens[apns.n].token, tok, len);
    apns.tokens[apns.n].len = len;
    apns.tokens[apns.n].iat = (int64_t)iat;
    memcpy(apns.tokens[apns.n].jwt_json, jwt->json.base, jwt->json.len);
    apns.tokens[apns.n].jwt_json_len = jwt->json.len;
    ++apns.n;
    apns.last_new_ns = r->t_ns;
    return NULL;
}

/* The payload: a JSON object with an "aps" dictionary. Returns 0 or -1. */
static int payload_ok(const char *p, size_t n)
{
    cr_span_t aps;
    cr_mp_item_t it;
    if (apns.payload_mp.limit == 0)
        cr_buf_init(&apns.payload_mp, 4 * PAYLOAD_MAX_VOIP + 1024);
    apns.payload_mp.len = 0;
    return fk_json_parse(&apns.payload_mp, p, n) == 0 &&
                   cr_mp_read(apns.payload_mp.base, apns.payload_mp.base + apns.payload_mp.len, &it) != 0 &&
                   it.type == MSGPACK_OBJECT_MAP && cr_mp_map_get(apns.payload_mp.base, apns.payload_mp.len, "aps", &aps) == 0 &&
                   cr_mp_read(aps.base, aps.base + aps.len, &it) != 0 && it.type == MSGPACK_OBJECT_MAP
               ? 0
               : -1;
}

void fk_apns_handle(fk_req_t *r)
{
    static const char *const logged[] = {"apns-topic", "apns-push-type", "apns-priority", "apns-expiration",
                                         "apns-collapse-id", "apns-id", NULL};
    static const char *const unique[] = {"authorization", "apns-topic", "apns-push-type", "apns-priority",
                                         "apns-expiration", "apns-collapse-id", "apns-id", NULL};
    h2o_req_t *req = r->req;
    h2o_iovec_t auth, topic, type, prio, exp, collapse, id, token, body = req->entity;
    char apns_id[37];
    const char *reason, *suffix = "";
    size_t max_payload = PAYLOAD_MAX;
    fk_script_t sc;

    fk_rec_headers(r, logged);
    if (fk_header(r, "apns-id", &id) == 1 && is_uuid(id.base, id.len)) {
        memcpy(apns_id, id.base, 36);
        apns_id[36] = '\0';
    } else {
        new_uuid(apns_id);
    }
    if (req->version < 0x200) { /* HTTP/1 requests are refused before h2o sees them (fake_push.c); not reached */
        fk_respond(r, 505, "Http2Required", NULL, "", 0);
        return;
    }
    if (fk_conf.apns_key == NULL || r->path.len < 10 || memcmp(r->path.base, "/3/device/", 10) != 0 ||
        memchr(r->path.base + 10, '/', r->path.len - 10) != NULL) {
        answer(r, 404, "BadPath", -1, -1, apns_id);
        return;
    }
    token = h2o_iovec_init(r->path.base + 10, r->path.len - 10);
    fk_rec_str(r, "id", token.base, token.len);
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        answer(r, 405, "MethodNotAllowed", -1, -1, apns_id);
        return;
    }
    if (token.len == 0) {
        answer(r, 400, "MissingDeviceToken", -1, -1, apns_id);
        return;
    }
    if (token.len % 2 != 0 || token.len > DEVICE_TOKEN_MAX || !is_hex(token.base, token.len)) {
        answer(r, 400, "BadDeviceToken", -1, -1, apns_id);
        return;
    }
    for (size_t i = 0; unique[i] != NULL; ++i)
        if (fk_header(r, unique[i], &auth) > 1) {
            answer(r, 400, "DuplicateHeaders", -1, -1, apns_id);
            return;
        }

    /* the provider token */
    if (fk_header(r, "authorization", &auth) == 0 || auth.len <= 7 || strncasecmp(auth.base, "bearer ", 7) != 0) {
        answer(r, 403, "MissingProviderToken", -1, -1, apns_id);
        return;
    }
    if ((reason = check_token(r, auth.base + 7, auth.len - 7)) != NULL) {
        answer(r, strcmp(reason, "TooManyProviderTokenUpdates") == 0 ? 429 : 403, reason, -1, -1, apns_id);
        return;
    }

    /* headers */
    if (fk_header(r, "apns-topic", &topic) == 0 || topic.len == 0) {
        answer(r, 400, "MissingTopic", -1, -1, apns_id);
        return;
    }
    if (fk_header(r, "apns-push-type", &type) != 0) {
        size_t i, n = sizeof(push_types) / sizeof(push_types[0]);
        for (i = 0; i < n && !eq_str(type, push_types[i].type); ++i)
            ;
        if (i == n) {
            answer(r, 400, "InvalidPushType", -1, -1, apns_id);
            return;
        }
        suffix = push_types[i].suffix;
        if (strcmp(push_types[i].type, "voip") == 0)
            max_payload = PAYLOAD_MAX_VOIP;
    }
    {
        size_t blen = strlen(fk_conf.apns_topic), slen = strlen(suffix);
        if (topic.len != blen + slen || memcmp(topic.base, fk_conf.apns_topic, blen) != 0 ||
            memcmp(topic.base + blen, suffix, slen) != 0) {
            answer(r, 400, "TopicDisallowed", -1, -1, apns_id);
            return;
        }
    }
    if (fk_header(r, "apns-id", &id) != 0 && !is_uuid(id.base, id.len)) {
        answer(r, 400, "BadMessageId", -1, -1, apns_id);
        return;
    }
    if (fk_header(r, "apns-priority", &prio) != 0 && !eq_str(prio, "10") && !eq_str(prio, "5") && !eq_str(prio, "1")) {
        answer(r, 400, "BadPriority", -1, -1, apns_id);
        return;
    }
    if (fk_header(r, "apns-expiration", &exp) != 0 && (exp.len > 19 || !is_digits(exp.base, exp.len))) {
        answer(r, 400, "BadExpirationDate", -1, -1, apns_id);
        return;
    }
    if (fk_header(r, "apns-collapse-id", &collapse) != 0 && collapse.len > COLLAPSE_ID_MAX) {
        answer(r, 400, "BadCollapseId", -1, -1, apns_id);
        return;
    }

    /* the payload */
    if (body.base == NULL || body.len == 0) {
        answer(r, 400, "PayloadEmpty", -1, -1, apns_id);
        return;
    }
    fk_rec_int(r, "payload_len", (long long)body.len);
    if (body.len > max_payload) {
        answer(r, 413, "PayloadTooLarge", -1, -1, apns_id);
        return;
    }
    fk_rec_bytes(r, "payload", body.base, body.len);
    if (payload_ok(body.base, body.len) != 0) {
        answer(r, 400, "BadPayload", -1, -1, apns_id); /* not an Apple reason: Apple documents none for bad JSON */
        return;
    }

    if (fk_script_take(FK_APNS, token.base, token.len, &sc)) {
        answer(r, sc.status, sc.reason[0] != '\0' ? sc.reason : default_reason(sc.status),
               sc.status == 410 && sc.timestamp < 0 ? (long long)r->now_s * 1000 : sc.timestamp, sc.retry_after, apns_id);
        return;
    }
    answer(r, 200, "", -1, -1, apns_id);
}
